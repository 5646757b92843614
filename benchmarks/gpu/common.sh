# Sourced by the GPU release scripts: a `dncli` that runs this checkout (the lent machine has
# torch but not dncli installed), a GPU-utilisation log, and checkpoint stripping (what comes
# back from the machine is limited to 16 MiB per file, so the optimiser state stays there).
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD PATH=/tmp/bin:$PATH
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec python3 -m denoise_cli "$@"\n' >/tmp/bin/dncli
chmod +x /tmp/bin/dncli
OUT=${OUT:?the folder whose files come back}
DATA=${DATA:-.gpu}

log_gpu_utilisation() {  # FILE: one line every 15 s while the script runs
    (while sleep 15; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) >"$1" 2>&1 &
}

strip_optimiser() {  # CHECKPOINT TARGET: the weights, step count and history without Adam's state
    python3 -c "import torch, sys; r = torch.load(sys.argv[1], weights_only=True); r.pop('optimizer'); torch.save(r, sys.argv[2])" "$1" "$2"
}
