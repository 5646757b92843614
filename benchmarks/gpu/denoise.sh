#!/usr/bin/env bash
# GPU release of unet3-color and unet3-gray: both fine-tuned from the shipped models side by side
# for BUDGET seconds (benchmarks/timed_training.sh), then a Set12 check with the GPU's speed.
# The gray model trains on Train400 and the luma of CBSD432 (train and test; val is held out).
#   OUT=results DATA=.gpu bash benchmarks/gpu/denoise.sh      (DATA: see benchmarks/gpu/README.md)
set -uo pipefail
LABEL=denoise
source "$(dirname "$0")/common.sh"
common="--val $DATA/val8 --patch 128 --batch-size 32 --validate-every 1000 --checkpoint-every 120 --device $device $extra"
cat >$work/jobs <<JOBS
dncli train $DATA/CBSD432/train $DATA/CBSD432/test -o $work/color.pt --channels 3 --init unet3-color $common
dncli train $DATA/Train400 $DATA/CBSD432/train $DATA/CBSD432/test -o $work/gray.pt --channels 1 --init unet3-gray $common
JOBS
train_side_by_side color gray
python3 benchmarks/denoise.py --data $DATA --sets Set12 --sigmas 15,25,50 --weights-color $OUT/color.pt \
    --weights-gray $OUT/gray.pt --device $device --json $OUT/bench_denoise.json ${BENCH:-}
