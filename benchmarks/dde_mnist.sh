#!/bin/sh
# Train, benchmark and (with RELEASE=1) ship the MNIST DDE with its generator.  Every setting can
# be overridden from the environment:
#
#   DEVICE=cpu THREADS=1 sh benchmarks/dde_mnist.sh              # the shipped recipe on one CPU thread
#   STEPS=20 PAIRS=500 GEN_STEPS=20 DEVICE=cpu THREADS=1 LIMIT=300 OUT=/tmp/m/m.pt RESULTS=/tmp/m \
#       BENCH_JSON=/tmp/m/b.json sh benchmarks/dde_mnist.sh        # a tiny check of the pipeline
#   RELEASE=1 HARDWARE="1 NVIDIA H100" sh benchmarks/dde_mnist.sh
#   PRECISION=bf16 DEVICE=cpu sh benchmarks/dde_mnist.sh          # the DDE under bf16 autocast
#
# Data: MNIST's training images are missing from ../shared/data (see its README), so the model
# trains on test images 0-7999 and validates on 8000-9999, the split benchmarks/dde.py uses.
#
# The shipped recipe (RECIPE=flow): one conditional DDE (Gaussian base, 16 x 256 softplus layers)
# for every level from 0.05 to 10 on the 0..1 scale, then a generator distilled from its
# probability flow (dncli dde-distill: 100000 latents carried along 20 flow steps, a plain
# 784-1024-1024-1024-784 network regressed onto them for 15000 steps).  A top level of 10 (mode
# separation rather than pixel range) balanced the classes better than 1.0 did, even against
# 60000 steps at 1.0.  STEPS=90000 took 75-89 minutes on one CPU thread, the distillation 14 on two.
#
# RECIPE=kl: the authors' recipe, a generator trained on KL(q || p) beside the DDEs: 16 x 256
# DDEs, a plain 3 x 512 generator with a 16-d latent, sigma = 0.5 (SIGMA=127.5 on the 0..255
# scale), batch 100, a generator step every 10th step.  ANNEAL=255 (with e.g. SIGMA=25.5) trains
# conditional DDEs over the levels SIGMA..ANNEAL instead.  On MNIST its generator ignored the latent
# (one level, or annealed from 1.0 down to 0.3 or 0.15): every sample came out the same.
#
# ENERGY=conv swaps the MLP for a convolutional energy network (dde-train --energy conv; WIDTH
# channels at full resolution, default 32, and DEPTH residual blocks per resolution, default 2).
# On one CPU thread it reached a validation DDE loss of 0.185 in 1,600 steps (the MLP: 0.386 after
# 90,000), but a step costs 25x more (1.5 s against 0.06 s): a GPU recipe.
#
# ENERGY=unet DEPTH=1 ACTIVATION=swish WEIGHTING=edm LR=6e-4 BATCH=64 STEPS=6000 (what
# benchmarks/gpu/dde.sh trains, wider and longer): the denoiser energy with the EDM weighting of
# the levels, 0.5 s per step on the 2 CPU cores; see README.md for what it measured.
set -eu
DATA=${DATA:-../shared/data/mnist/t10k-images-idx3-ubyte.gz}
OUT=${OUT:-runs/dde-mnist.pt}
STEPS=${STEPS:-90000}
DEVICE=${DEVICE:-cuda}
mkdir -p "$(dirname "$OUT")" benchmarks/results
if [ "${ENERGY:-mlp}" != mlp ]; then
    NETWORK="--energy $ENERGY --width ${WIDTH:-32} --depth ${DEPTH:-2} --activation ${ACTIVATION:-softplus}"
else
    NETWORK="--width ${WIDTH:-256} --depth ${DEPTH:-16}"
fi
if [ "${RECIPE:-flow}" = flow ]; then
    OPTIONS="--sigma ${SIGMA:-12.75} --anneal 2550 --conditional --no-generator --batch-size ${BATCH:-128}"
    DDE=${OUT%.pt}-dde.pt
else
    OPTIONS="--sigma ${SIGMA:-127.5} ${ANNEAL:+--anneal $ANNEAL --conditional} --base none --latent 16
        --gen-width 512 --gen-depth 3 --batch-size 100 --gen-every 10"
    DDE=$OUT
fi
# shellcheck disable=SC2086  # OPTIONS and NETWORK are lists of options
dncli dde-train "$DATA" --subset 0:8000 --val "$DATA" --val-subset 8000:10000 -o "$DDE" $OPTIONS $NETWORK \
    --lr "${LR:-1e-3}" --weighting "${WEIGHTING:-noise}" --max-steps "$STEPS" --validate-every 5000 \
    --device "$DEVICE" --precision "${PRECISION:-fp32}" --seed 0 ${THREADS:+--threads "$THREADS"} --json > "${DDE%.pt}.json"
SAMPLERS=""
if [ "${RECIPE:-flow}" = flow ]; then
    dncli dde-distill --model "$DDE" -o "$OUT" --pairs "${PAIRS:-100000}" --max-steps "${GEN_STEPS:-15000}" \
        --device "$DEVICE" --seed 0 ${THREADS:+--threads "$THREADS"} --json > "${OUT%.pt}.json"
    SAMPLERS="--flow --langevin --langevin-step-size 0.3"
fi
# shellcheck disable=SC2086
python benchmarks/dde.py mnist --model "$OUT" $SAMPLERS --device "$DEVICE" --threads "${THREADS:-1}" \
    ${LIMIT:+--limit "$LIMIT"} ${LIMIT:+--classifier-epochs 1} ${RESULTS:+--results "$RESULTS"} \
    --json "${BENCH_JSON:-benchmarks/results/dde-mnist.json}"
if [ "${RELEASE:-0}" = 1 ]; then
    python benchmarks/release_weights.py "$OUT" dde-mnist --hardware "${HARDWARE:?set HARDWARE}" \
        --benchmark "${BENCH_JSON:-benchmarks/results/dde-mnist.json}"
fi
