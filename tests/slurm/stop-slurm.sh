#!/usr/bin/env bash
# Stop what tests/slurm/start-slurm.sh started: cancel the test cluster's jobs, then
# slurmd, slurmctld and munged, each by the pidfile in STATE_DIR (nothing by name).
#
#   tests/slurm/stop-slurm.sh [STATE_DIR]      (default: /tmp/prrmse-slurm)
#
# The state directory (configuration and logs) is kept for inspection; the packages
# stay installed. Stopped daemons may linger as <defunct> zombies when PID 1 does not
# reap: harmless.
set -uo pipefail

STATE=${1:-/tmp/prrmse-slurm}
[[ -d $STATE ]] || { echo "stop-slurm: no $STATE: nothing to stop" >&2; exit 0; }
STATE=$(cd "$STATE" && pwd)
export SLURM_CONF=$STATE/slurm.conf

alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat") != Z ]]
}

stop() {  # pidfile name
    local pidfile=$1 name=$2 pid i
    alive "$pidfile" || return 0
    pid=$(<"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        alive "$pidfile" || { echo "stop-slurm: $name stopped (pid $pid)" >&2; rm -f "$pidfile"; return 0; }
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
    echo "stop-slurm: $name killed (pid $pid)" >&2
    rm -f "$pidfile"
}

# Jobs still in this private cluster (e.g. after a test timed out) belong to the test.
if alive "$STATE/slurmctld.pid" && [[ -f $SLURM_CONF ]]; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        timeout 10 scancel $jobs 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            [[ -z $(timeout 5 squeue -h -t PD,R,CG -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
fi

stop "$STATE/slurmd.pid" slurmd
stop "$STATE/slurmctld.pid" slurmctld
stop "$STATE/munge/munged.pid" munged
exit 0
