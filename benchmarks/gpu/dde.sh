#!/usr/bin/env bash
# GPU release of dde-mnist with the denoiser energy (dde-train --energy unet --weighting edm), the
# recipe of benchmarks/dde_mnist.sh scaled to a lent machine, in two calls of at most 10 minutes:
#
#   OUT=results DATA=.gpu bash benchmarks/gpu/dde.sh
#       trains the conditional DDE for BUDGET seconds (benchmarks/timed_training.sh fits the
#       cosine schedule into them) and writes $OUT/dde-mnist-dde.pt without optimiser state;
#   OUT=results DATA=.gpu DDE=.gpu/dde-mnist-dde.pt bash benchmarks/gpu/dde.sh
#       distils the one-pass generator from that DDE's probability flow (dncli dde-distill) into
#       dde-mnist.pt, returned in parts ($OUT/dde-mnist.pt.part*), and benchmarks it
#       (benchmarks/dde.py mnist --flow, plots and bench_dde.json in $OUT).
#
# DATA holds mnist/t10k-images-idx3-ubyte.gz and mnist/t10k-labels-idx1-ubyte.gz (see README.md
# here); the DDE trains on test images 0-7999 and validates on 8000-9999, as dde_mnist.sh does.
# ENERGY (default unet), WIDTH (64), DEPTH (1), BATCH (256), PAIRS (100000), FLOW_STEPS (6: the
# shipped mnist-unet's flow samples scored as well at 4-6 steps as at 20), GEN_DEPTH (3: hidden
# layers after the first, as shipped), GEN_STEPS (15000) and BENCH (extra options of
# benchmarks/dde.py) override the recipe.  On 2 CPU cores the unet energy of width 32 made
# 2 steps/s at batch 64 (benchmarks/dde_mnist.sh).
set -uo pipefail
LABEL=dde BUDGET=${BUDGET:-480}
source "$(dirname "$0")/common.sh"
mnist=$DATA/mnist/t10k-images-idx3-ubyte.gz
if [ -z "${DDE:-}" ]; then
    cat >"$work/jobs" <<JOBS
dncli dde-train $mnist --subset 0:8000 --val $mnist --val-subset 8000:10000 -o $work/dde-mnist-dde.pt --sigma 12.75 --anneal 2550 --conditional --no-generator --energy ${ENERGY:-unet} --activation swish --weighting edm --width ${WIDTH:-64} --depth ${DEPTH:-1} --batch-size ${BATCH:-256} --lr 6e-4 --validate-every 2000 --checkpoint-every 120 --device $device --seed 0 $extra
JOBS
    train_side_by_side dde-mnist-dde
else
    dncli dde-distill --model "$DDE" -o "$work/dde-mnist-checkpoint.pt" --pairs "${PAIRS:-100000}" \
        --flow-steps "${FLOW_STEPS:-6}" --gen-depth "${GEN_DEPTH:-3}" --max-steps "${GEN_STEPS:-15000}" \
        --device "$device" --seed 0 $extra --json >"$OUT/distill.json"
    echo "distillation rc=$?"
    # The DDE with its generator exceeds the 16 MiB a returned file may have: it comes back in
    # parts; rejoin them with  cat dde-mnist.pt.part* > dde-mnist.pt
    without_optimizer "$work/dde-mnist-checkpoint.pt" "$work/dde-mnist.pt"
    split -b 15M -d "$work/dde-mnist.pt" "$OUT/dde-mnist.pt.part"
    # shellcheck disable=SC2086  # BENCH is a list of options
    python3 benchmarks/dde.py mnist --model "$work/dde-mnist.pt" --data "$mnist" \
        --labels "$DATA/mnist/t10k-labels-idx1-ubyte.gz" --flow --device "$device" \
        --results "$OUT" --json "$OUT/bench_dde.json" ${BENCH:-}
fi
