#!/usr/bin/env bash
# Seconds per training step in float32 and under bf16 autocast, for each trainer with the batch
# and patch of its shipped CPU recipe, printed as a Markdown table.  The step time is the
# trainer's own clock (start-up and data loading excluded) over STEPS steps, the precisions
# taking turns per trainer so that a slow moment of a shared machine falls on both.
#
#   bash benchmarks/training_precision.sh WORK [STEPS]            # STEPS defaults to 30
#   THREADS=1 DEVICE=cpu bash benchmarks/training_precision.sh /tmp/tp
#
# bf16 halves a step on CPUs with AVX512-BF16 or AMX ('dncli doctor' says cpu_native_bf16);
# elsewhere it is emulated and slower.  DATA is the shared data folder.
set -euo pipefail
work=$1 steps=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
data=${DATA:-$here/../../shared/data}
device=${DEVICE:-cpu} threads=${THREADS:-2}
mkdir -p "$work"
# The blind-spot trainer reads noisy images only: noise a few training photos once.
[ -d "$work/noisy" ] || python "$here/blindspot_data.py" "$work/noisy" --channels 3 --sigma 25 \
    "$data/train/CBSD432/val" >/dev/null

mnist=$data/mnist/t10k-images-idx3-ubyte.gz
names=(
    "train, unet3 colour, 16 x 96x96"
    "train, unet3 gray, 16 x 96x96"
    "map-train, gray, defaults"
    "blindspot-train, colour 32,16, 16 x 64x64"
    "dde-train, MNIST unet energy, 64"
)
recipes=(
    "train $data/train/CBSD432/val --channels 3 --patch 96 --batch-size 16"
    "train $data/train/Train400 --channels 1 --patch 96 --batch-size 16"
    "map-train $data/train/Train400 --channels 1"
    "blindspot-train $work/noisy --sigma 25 --widths 32,16 --patch 64 --batch-size 16"
    "dde-train $mnist --subset 0:8000 --energy unet --width 32 --depth 1 --activation swish --weighting edm
        --sigma 12.75 --anneal 2550 --conditional --no-generator --batch-size 64"
)

seconds_per_step() {  # PRECISION RECIPE...: one short run; prints its seconds per step
    local precision=$1 output="$work/run.pt"
    shift
    rm -f "$output"
    dncli "$@" -o "$output" --max-steps "$steps" --validate-every 0 --device "$device" --threads "$threads" \
        --precision "$precision" --seed 0 --json 2>"$work/last.log" \
        | python -c "import json, sys; print(f'{json.load(sys.stdin)[\"elapsed\"] / $steps:.3f}')" \
        || { echo "failed: dncli $* (log: $work/last.log)" >&2; return 1; }
    rm -f "$output"
}

echo "Training step time, device $device, $threads threads, $steps steps per run ($(date -u +%F))"
echo
echo "| trainer, batch | fp32 s/step | bf16 s/step | fp32 / bf16 |"
echo "|---|---|---|---|"
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086  # the recipe is a list of words
    fp32=$(seconds_per_step fp32 ${recipes[$i]})
    # shellcheck disable=SC2086
    bf16=$(seconds_per_step bf16 ${recipes[$i]})
    echo "| ${names[$i]} | $fp32 | $bf16 | $(python -c "print(f'{$fp32 / $bf16:.2f}')") |"
done
