# Sourced by the GPU release scripts: a `dncli` that runs this checkout (the lent machine has
# torch but not dncli installed), and the steps every release shares.  LABEL names the release.
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD PATH=/tmp/bin:$PATH
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec python3 -m denoise_cli "$@"\n' >/tmp/bin/dncli
chmod +x /tmp/bin/dncli
OUT=${OUT:?the folder whose files come back}
DATA=${DATA:-.gpu}

budget=${BUDGET:-470} device=${DEVICE:-cuda} extra=${EXTRA:-}
work=/tmp/$LABEL-release
rm -rf "$work"
mkdir -p "$work"
# GPU utilisation every 15 s while the release runs
(while sleep 15; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) \
    >"$OUT/gpu_util_$LABEL.txt" 2>&1 &

without_optimizer() {  # CHECKPOINT WEIGHTS: what comes back is limited to 16 MiB per file
    python3 -c "import torch, sys; r = torch.load(sys.argv[1], weights_only=True); r.pop('optimizer'); torch.save(r, sys.argv[2])" "$1" "$2"
}

train_side_by_side() {  # MODEL...: the jobs of $work/jobs within the budget, then each $work/MODEL.pt
    # to $OUT without its optimiser state, and the logs
    bash benchmarks/timed_training.sh "$budget" "$work/jobs" "$work/logs"
    echo "training rc=$?"
    local model
    for model in "$@"; do
        without_optimizer "$work/$model.pt" "$OUT/$model.pt"
    done
    grep -h validation "$work"/logs/*.train.log | tail -n 8
    tail -n 2 "$work"/logs/*.train.log
    tar czf "$OUT/logs_$LABEL.tgz" -C "$work" logs
}
