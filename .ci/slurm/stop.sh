#!/usr/bin/env bash
# Stop what start.sh started: slurmd, slurmctld (by their pid files) and munged; wait until they are gone.
DIR=${DREAMMAKE_SLURM_DIR:-/tmp/dreammake-slurm}
pids=()
for file in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" /run/munge/munged.pid; do
    pid=$(cat "$file" 2>/dev/null) || continue
    if [[ -n $pid ]] && kill "$pid" 2>/dev/null; then
        pids+=("$pid")
    fi
done
for _ in $(seq 50); do  # up to 5 s; a zombie (not reaped by PID 1) counts as gone
    running=0
    for pid in "${pids[@]}"; do
        if ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z'; then running=1; fi
    done
    (( running )) || exit 0
    sleep 0.1
done
exit 0
