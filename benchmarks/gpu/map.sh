#!/usr/bin/env bash
# GPU release of the MAP denoiser pairs (D and R, 12 layers of 48 channels), colour (sigma_R 11)
# and gray (sigma_R 7), side by side for BUDGET seconds.
#   OUT=results DATA=.gpu bash benchmarks/gpu/map.sh
set -uo pipefail
LABEL=map
source "$(dirname "$0")/common.sh"
common="--layers 12 --width 48 --val $DATA/val8 --patch 40 --batch-size 128 --lr 4e-4 --validate-every 1000 --checkpoint-every 120 --device $device $extra"
cat >$work/jobs <<JOBS
dncli map-train $DATA/CBSD432/train $DATA/CBSD432/test -o $work/map-color.pt --channels 3 --sigma-r 11 --input-sigma 0,22 $common
dncli map-train $DATA/Train400 -o $work/map-gray.pt --channels 1 --sigma-r 7 --input-sigma 0,14 $common
JOBS
train_side_by_side map-color map-gray
