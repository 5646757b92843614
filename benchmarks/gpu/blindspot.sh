#!/usr/bin/env bash
# GPU training of the blind-spot models of one colour mode (CH=3 colour, CH=1 gray): noisy
# training sets synthesised on the machine (benchmarks/blindspot_data.py, seed 0), then the
# sigma-25 and sigma 5..50 (per-image level) models side by side for BUDGET seconds.
#   OUT=results DATA=.gpu CH=3 BUDGET=440 bash benchmarks/gpu/blindspot.sh
# Measured on an H100 (2026-11-23): 1.4 steps/s at figure widths, batch 32, patch 128, fp32,
# with the GPU idle most of the time: profile a few steps before a long run.
set -uo pipefail
LABEL=blindspot BUDGET=${BUDGET:-440}
source "$(dirname "$0")/common.sh"
channels=${CH:-3}
if [ "$channels" = 3 ]; then
    kind=color sources="$DATA/CBSD432/train $DATA/CBSD432/val $DATA/CBSD432/test"
else
    kind=gray sources=$DATA/Train400
fi
python3 benchmarks/blindspot_data.py $work/s25 --channels $channels --sigma 25 $sources & made=$!
python3 benchmarks/blindspot_data.py $work/5-50 --channels $channels --sigma-range 5,50 $sources
wait $made
common="--channels $channels --val $DATA/val8 --patch 128 --batch-size 32 --validate-every 1000 --checkpoint-every 120 --device $device $extra"
cat >$work/jobs <<JOBS
dncli blindspot-train $work/s25 -o $work/blindspot-$kind-s25.pt --sigma 25 $common
dncli blindspot-train $work/5-50 -o $work/blindspot-$kind.pt --sigma-mode per-image $common
JOBS
train_side_by_side blindspot-$kind-s25 blindspot-$kind
