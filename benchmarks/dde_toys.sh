#!/bin/sh
# Train the four shipped 2-D toy DDEs (with generators), benchmark them and release them.
#
#   sh benchmarks/dde_toys.sh OUT_DIR [train|release]
#
# "train" writes OUT_DIR/dde-<toy>.pt and OUT_DIR/dde-<toy>.png (data | density | generator);
# "release" runs benchmarks/dde.py on those checkpoints (benchmarks/results/dde-toys.json and
# the side-by-side density plots) and copies them into weights/ with their manifest entries.
# One CPU thread each; about 2 minutes per toy on one core of an AMD EPYC.  The generator steps
# every 2nd iteration (the command's default is every 10th): 11000 iterations allow only 1100
# generator steps at k = 10, and in short trial runs such generators had not left their initial
# shape.  Even at k = 2 the generators stay rough at this budget (benchmarks/results/dde-*.png);
# the densities are what these models are for.  The noise level anneals from 0.5 to 0.1 so the
# early DDEs give the generator gradients over the whole plane.
set -eu
OUT=${1:?usage: dde_toys.sh OUT_DIR [train|release]}
STAGE=${2:-train}
HARDWARE=${HARDWARE:-"2 CPU cores (AMD EPYC), 1 thread"}
TOYS="two-spirals 8-gaussians checkerboard rings"
mkdir -p "$OUT"
if [ "$STAGE" = train ]; then
    for toy in $TOYS; do
        dncli dde-train "toy:$toy" -o "$OUT/dde-$toy.pt" --sigma 0.1 --anneal 0.5 --max-steps 11000 \
            --max-time 170 --batch-size 512 --gen-every 2 --gen-lr 5e-4 --validate-every 2750 --seed 0 \
            --threads 1 --device cpu --plot "$OUT/dde-$toy.png" --json > "$OUT/dde-$toy.json"
    done
else
    python benchmarks/dde.py toys --checkpoints "$OUT" --threads 1 --json benchmarks/results/dde-toys.json
    for toy in $TOYS; do
        python benchmarks/release_weights.py "$OUT/dde-$toy.pt" "dde-$toy" --hardware "$HARDWARE" \
            --benchmark benchmarks/results/dde-toys.json
    done
fi
