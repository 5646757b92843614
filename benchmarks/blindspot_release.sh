#!/usr/bin/env bash
# The blind-spot release, end to end: noisy training sets synthesised once with a fixed seed,
# the sigma-25 (known level) and sigma 5..50 (level estimated per image) models, the benchmark
# tables and plot, and the weights with their manifest entries.  Rerunning resumes.
#
#   bash benchmarks/blindspot_release.sh WORK CHANNELS STEPS [TRAINER OPTIONS...]
#   bash benchmarks/blindspot_release.sh /tmp/bs 3 3200 --patch 64 --batch-size 16 --threads 1      # CPU
#   bash benchmarks/blindspot_release.sh /tmp/bs 1 60000 --patch 128 --batch-size 32 --precision bf16  # GPU
#
# CHANNELS 3 trains on CBSD432 and scores CBSD68/Kodak24, 1 on Train400 and Set12/BSD68.
# WIDTHS (default 32,16: a quarter of Laine et al.'s cost) sets --widths; DATA the shared data;
# BENCH adds options to benchmarks/blindspot.py (e.g. BENCH='--sigmas 25 --sweep-limit 8' on a CPU).
# Only the noisy sets reach the trainer: the clean images are read by blindspot_data.py alone.
set -euo pipefail
work=$1 channels=$2 steps=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
data=${DATA:-$here/../../shared/data}
widths=${WIDTHS:-32,16}
if [ "$channels" = 3 ]; then
    kind=color sources=("$data/train/CBSD432/train" "$data/train/CBSD432/val" "$data/train/CBSD432/test")
    sets=CBSD68,Kodak24 sweep_set=Kodak24
else
    kind=gray sources=("$data/train/Train400") sets=Set12,BSD68 sweep_set=Set12
fi
mkdir -p "$work"
[ -d "$work/$kind-s25" ] || python "$here/blindspot_data.py" "$work/$kind-s25" --channels "$channels" --sigma 25 "${sources[@]}"
[ -d "$work/$kind-5-50" ] || python "$here/blindspot_data.py" "$work/$kind-5-50" --channels "$channels" --sigma-range 5,50 "${sources[@]}"

train() {  # NAME DATA MODE-OPTIONS...
    local name=$1 noisy=$2
    shift 2
    local resume=()
    [ -f "$work/$name.pt" ] && resume=(--resume)
    dncli blindspot-train "$noisy" -o "$work/$name.pt" "$@" --channels "$channels" --widths "$widths" \
        --max-steps "$steps" "${resume[@]}" "${extra[@]}"
}
extra=("$@")
train "blindspot-$kind-s25" "$work/$kind-s25" --sigma 25
train "blindspot-$kind" "$work/$kind-5-50" --sigma-mode per-image

python "$here/blindspot.py" "--weights-$kind" "$work/blindspot-$kind-s25.pt" "$work/blindspot-$kind.pt" \
    --data "$data/testsets" --sets "$sets" --sigmas 15,25,50 --sweep 5,10,15,20,25,30,40,50 --sweep-set "$sweep_set" \
    --json "$here/results/blindspot-$kind.json" --plot "$here/results/blindspot-$kind-sweep.png" ${BENCH:-} \
    | tee "$here/results/blindspot-$kind.md"
made="made by benchmarks/blindspot_data.py --seed 0 from ${sources[*]#$data/}"
python "$here/release_weights.py" "$work/blindspot-$kind-s25.pt" "blindspot-$kind-s25" \
    --benchmark "$here/results/blindspot-$kind.json" --hardware "${HARDWARE:?say where it trained}" \
    --training-data "noisy copies (sigma 25, float32 TIFF) $made"
python "$here/release_weights.py" "$work/blindspot-$kind.pt" "blindspot-$kind" \
    --benchmark "$here/results/blindspot-$kind.json" --hardware "$HARDWARE" \
    --training-data "noisy copies (sigma uniform in 5..50 per image, float32 TIFF) $made"
