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

warmup_end=50 measure_end=190  # both inside the trainer's 200 warm-up steps, which no --max-steps changes
declare -a job_options  # per job, added to a stretch's own options

stretch() {  # PHASE OPTIONS...: every job for one stretch, side by side; fails if any job failed
    local phase=$1 pids=() i failed=0
    shift
    for i in "${!jobs[@]}"; do
        bash -c "${jobs[$i]} $* ${job_options[$i]:-} --json" >"$logs/job$i.$phase.json" 2>"$logs/job$i.$phase.log" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { echo "job $i failed in $phase:" >&2; tail -5 "$logs/job$i.$phase.log" >&2; failed=1; }
    done
    return $failed
}

stretch warmup --max-steps $warmup_end
stretch measure --max-steps $measure_end --resume
left=$(( budget - ($(date +%s) - started) ))
for i in "${!jobs[@]}"; do
    # Steps per second from the elapsed training time of the two stretches; 15% spare (measured
    # rates run high when the jobs do not overlap exactly) for validation, checkpoints and the
    # start of each process.
    read -r rate steps < <(python3 -c '
import json, sys
warmup, measure, left, first, last = sys.argv[1:]
elapsed = [json.load(open(path))["elapsed"] for path in (warmup, measure)]
rate = (int(last) - int(first)) / (elapsed[1] - elapsed[0])
print(rate, int(last) + int(0.85 * rate * float(left)))' \
        "$logs/job$i.warmup.json" "$logs/job$i.measure.json" "$left" $warmup_end $measure_end)
    job_options[$i]="--max-steps $steps"
    echo "job $i: $rate steps/s, training to step $steps in ${left}s" >&2
done
stretch train --max-time $((left - 10)) --resume
