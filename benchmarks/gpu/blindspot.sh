#!/usr/bin/env bash
# GPU training of the blind-spot models: noisy training sets synthesised on the machine
# (benchmarks/blindspot_data.py, seed 0), then, for each colour mode of CH ("3" colour, "1" gray,
# "3 1" both), the sigma-25 and sigma 5..50 (per-image level) models, all side by side for BUDGET
# seconds, at WIDTHS (trunk,branch; default 32,16, a quarter of Laine et al.'s cost) with BATCH
# patches of 128.  INIT=1 fine-tunes the shipped models of the same names instead (their own
# widths; WIDTHS is then ignored).  GLOBAL=1 adds blindspot-<kind>-global (sigma-25 data, one
# learned level) to each colour mode's jobs.
#   OUT=results DATA=.gpu CH="3 1" BUDGET=530 bash benchmarks/gpu/blindspot.sh
# benchmarks/gpu/profile_blindspot.py measures the step rate of each layout first.
set -uo pipefail
LABEL=blindspot BUDGET=${BUDGET:-440}
source "$(dirname "$0")/common.sh"
models=() synthesis=()
: >$work/jobs
for channels in ${CH:-3}; do
    if [ "$channels" = 3 ]; then
        kind=color sources="$DATA/CBSD432/train $DATA/CBSD432/val $DATA/CBSD432/test"
    else
        kind=gray sources=$DATA/Train400
    fi
    python3 benchmarks/blindspot_data.py $work/$kind-s25 --channels $channels --sigma 25 $sources & synthesis+=($!)
    python3 benchmarks/blindspot_data.py $work/$kind-5-50 --channels $channels --sigma-range 5,50 $sources & synthesis+=($!)
    common="--channels $channels --widths ${WIDTHS:-32,16} --val $DATA/val8 --patch 128 --batch-size ${BATCH:-32} --validate-every 1000 --checkpoint-every 120 --device $device $extra"
    init_s25= init_5_50= init_global=
    if [ "${INIT:-0}" = 1 ]; then
        init_s25="--init blindspot-$kind-s25" init_5_50="--init blindspot-$kind" init_global="--init blindspot-$kind-global"
    fi
    cat >>$work/jobs <<JOBS
dncli blindspot-train $work/$kind-s25 -o $work/blindspot-$kind-s25.pt --sigma 25 $init_s25 $common
dncli blindspot-train $work/$kind-5-50 -o $work/blindspot-$kind.pt --sigma-mode per-image $init_5_50 $common
JOBS
    models+=(blindspot-$kind-s25 blindspot-$kind)
    if [ "${GLOBAL:-0}" = 1 ]; then
        echo "dncli blindspot-train $work/$kind-s25 -o $work/blindspot-$kind-global.pt --sigma-mode global $init_global $common" >>$work/jobs
        models+=(blindspot-$kind-global)
    fi
done
wait "${synthesis[@]}"  # not a bare wait: common.sh's GPU monitor runs in the background until the end
train_side_by_side "${models[@]}"
