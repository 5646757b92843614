#!/bin/sh
# The high-dimensional DDE experiment of issue 6: log-likelihood of 8x8 gray patches (d = 64) of
# BSDS500 photos, DDE against the best-bandwidth KDE and a full-covariance Gaussian.
#
#   sh benchmarks/dde_patches.sh WORK_DIR          # data, training (1 CPU thread), benchmark
#
# Patches: 100000 for training from CBSD432/train, 5000 for validation (KDE bandwidth) from
# CBSD432/val and 10000 for testing from CBSD432/test, so the three come from disjoint photos.
# The DDE trains on the patches alone (no generator), at one level, with the Gaussian base that
# dde-train gives 64-dimensional data by default (engine/models/dde.py says why; BASE=none trains
# the plain network).  Every setting can be overridden from the environment (SIGMA, STEPS,
# WIDTH, DEPTH, BASE, THREADS).
set -eu
WORK=${1:?usage: dde_patches.sh WORK_DIR}
SIGMA=${SIGMA:-0.02}
mkdir -p "$WORK"
[ -f "$WORK/test.npy" ] || python benchmarks/dde.py patches --write-data "$WORK"
[ -f "$WORK/dde-patches.pt" ] && RESUME=--resume || RESUME=
dncli dde-train "$WORK/train.npy" --val "$WORK/val.npy" -o "$WORK/dde-patches.pt" $RESUME --no-generator \
    --sigma "$SIGMA" --base "${BASE:-gaussian}" --width "${WIDTH:-256}" --depth "${DEPTH:-4}" --batch-size 512 \
    --max-steps "${STEPS:-6000}" --validate-every 1000 --seed 0 --threads "${THREADS:-1}" --device cpu \
    --json > "$WORK/dde-patches.json"
python benchmarks/dde.py patches --data "$WORK" --model "$WORK/dde-patches.pt" --threads "${THREADS:-1}" \
    --json "${BENCH_JSON:-benchmarks/results/dde-patches.json}"
