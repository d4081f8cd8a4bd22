#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine for the tests: munged, slurmctld, slurmd.
# Writes /etc/slurm/slurm.conf and gres.conf (only if absent or written by this script); state and logs go to
# $DREAMMAKE_SLURM_DIR (default /tmp/dreammake-slurm). Waits until the node is idle. Needs root.
set -euo pipefail
DIR=${DREAMMAKE_SLURM_DIR:-/tmp/dreammake-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by dreammake .ci/slurm/start.sh"
NODE=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    echo "start.sh: $CONF exists and was not written by this script; not touching it" >&2
    exit 1
fi
mkdir -p "$DIR/state" "$DIR/spool" /etc/slurm
cat > "$CONF" <<CONF
$MARK
ClusterName=dreammake-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
GresTypes=gpu
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
# two stand-in "GPUs" (gres/gpu wants device files; nothing uses them): enough to check that
# `--gres=gpu:N` requests are granted
cat > /etc/slurm/gres.conf <<GRES
$MARK
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
GRES

alive() {  # a pid file's process exists and is not a zombie (PID 1 in a container may not reap them)
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -n $pid ]] && ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z'
}

# munge: its key comes with the package; create one if missing
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
fi
alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld -c   # -c: a clean state, no jobs from an earlier run
alive "$DIR/slurmd.pid" || /usr/sbin/slurmd

deadline=$(( $(date +%s) + 60 ))
while (( $(date +%s) < deadline )); do
    state=$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -1 || true)
    if [[ $state == idle* || $state == mix* ]]; then
        echo "start.sh: Slurm is up (node $NODE, $CPUS CPUs, state $state)"
        exit 0
    fi
    sleep 0.5
done
echo "start.sh: the node did not become idle; logs follow" >&2
sinfo -N -l >&2 || true
tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
exit 1
