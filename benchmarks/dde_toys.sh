#!/bin/sh
# Train the four shipped 2-D toy DDEs, benchmark them and release them.
#
#   sh benchmarks/dde_toys.sh OUT_DIR [train|distill|release]
#
# "train" writes OUT_DIR/dde-<toy>.pt (TOYS="rings checkerboard" trains a subset: run two such
# jobs side by side on two cores); "distill" gives each a one-pass generator distilled from its
# probability flow (dncli dde-distill; the shipped toy:<toy> where OUT_DIR has no checkpoint) in
# OUT_DIR/distilled/dde-<toy>.pt; "release" runs benchmarks/dde.py on the checkpoints of OUT_DIR
# (benchmarks/results/dde-toys.json and the side-by-side density plots) and copies them into
# weights/ with their manifest entries: "sh benchmarks/dde_toys.sh OUT_DIR/distilled release".
#
# The models are conditional: one DDE covers every noise level from 0.03 to 1.0, and its
# likelihood at 0.03 comes from 1.0 through the probability flow (engine/algorithms/sampling.py).
# Why: beating a tuned KDE needs a level of 0.04 or less, and a DDE trained at one such level
# does not learn the relative mass of modes that its noise never joins.  A generator trained on
# every level alongside (--gen-every 5, 20,000 steps) covered the plane instead of the spirals, so
# their generators are distilled from the probability flow instead, which follows the data.
# One CPU thread each: about 9 minutes per toy on one core of an AMD EPYC, and 8 more to distil.
set -eu
OUT=${1:?usage: dde_toys.sh OUT_DIR [train|release]}
STAGE=${2:-train}
HARDWARE=${HARDWARE:-"2 CPU cores (AMD EPYC), 1 thread"}
TOYS=${TOYS:-"two-spirals 8-gaussians checkerboard rings"}
mkdir -p "$OUT"
if [ "$STAGE" = train ]; then
    for toy in $TOYS; do
        dncli dde-train "toy:$toy" -o "$OUT/dde-$toy.pt" --sigma 0.03 --anneal 1.0 --conditional --no-generator \
            --width 128 --max-steps 30000 --validate-every 10000 --seed 0 --threads 1 --device cpu \
            --json > "$OUT/dde-$toy.json"
    done
elif [ "$STAGE" = distill ]; then
    mkdir -p "$OUT/distilled"
    for toy in $TOYS; do
        teacher=$OUT/dde-$toy.pt
        [ -f "$teacher" ] || teacher=toy:$toy
        dncli dde-distill --model "$teacher" -o "$OUT/distilled/dde-$toy.pt" --pairs "${PAIRS:-50000}" \
            --gen-width "${GEN_WIDTH:-512}" --gen-depth 4 --max-steps "${GEN_STEPS:-20000}" --seed 0 --threads 1 \
            --device cpu --json > "$OUT/distilled/dde-$toy.json"
    done
else
    python benchmarks/dde.py toys --checkpoints "$OUT" --threads 1 --json benchmarks/results/dde-toys.json
    for toy in $TOYS; do
        python benchmarks/release_weights.py "$OUT/dde-$toy.pt" "dde-$toy" --hardware "$HARDWARE" \
            --benchmark benchmarks/results/dde-toys.json
    done
fi
