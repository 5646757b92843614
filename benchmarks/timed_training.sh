#!/usr/bin/env bash
# Train within a wall-clock budget and still finish the learning-rate schedule: the jobs run
# side by side (as they will share the machine) for two short stretches inside the warm-up,
# which measure each job's steps per second, then each resumes with --max-steps set to what
# fits in the time left, so that its cosine decay ends when the budget does.  Used for the
# GPU releases, where a machine is lent for minutes.
#
#   bash benchmarks/timed_training.sh SECONDS JOBFILE LOGDIR
#
# JOBFILE has one dncli training command per line (no --max-steps, --max-time, --resume or
# --json: they are added here); its -o checkpoint must not exist yet.  Logs go to LOGDIR.
set -euo pipefail
budget=$1 jobfile=$2 logs=$3
mkdir -p "$logs"
started=$(date +%s)
mapfile -t jobs < <(grep -v '^\s*\(#\|$\)' "$jobfile")

stretch() {  # PHASE OPTIONS...: every job for one stretch, side by side; stops at the first failure
    local phase=$1 pids=() i
    shift
    for i in "${!jobs[@]}"; do
        bash -c "${jobs[$i]} $* --json" >"$logs/job$i.$phase.json" 2>"$logs/job$i.$phase.log" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { echo "job $i failed in $phase:" >&2; tail -5 "$logs/job$i.$phase.log" >&2; exit 1; }
    done
}

elapsed_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["elapsed"])' "$1"; }

stretch warmup --max-steps 50
stretch measure --max-steps 190 --resume
left=$(( budget - ($(date +%s) - started) ))
declare -a steps
for i in "${!jobs[@]}"; do
    rate=$(python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print(140 / (b - a))' \
        "$(elapsed_of "$logs/job$i.warmup.json")" "$(elapsed_of "$logs/job$i.measure.json")")
    # 15% spare (measured rates run high when the jobs do not overlap exactly) for validation, checkpoints and the start of each process
    steps[$i]=$(python3 -c 'import sys; r, t = map(float, sys.argv[1:]); print(190 + int(0.85 * r * t))' "$rate" "$left")
    echo "job $i: $rate steps/s, training to step ${steps[$i]} in ${left}s" >&2
done
pids=()
for i in "${!jobs[@]}"; do
    bash -c "${jobs[$i]} --max-steps ${steps[$i]} --max-time $((left - 10)) --resume --json" \
        >"$logs/job$i.train.json" 2>"$logs/job$i.train.log" &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "job $i failed:" >&2; tail -5 "$logs/job$i.train.log" >&2; status=1; }
done
exit $status
