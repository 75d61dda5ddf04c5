#!/usr/bin/env bash
# Start a private single-node Slurm (munge, slurmctld, slurmd) for tests/test_slurm.py.
#
#   tests/slurm/start-slurm.sh [STATE_DIR]        (default: /tmp/prrmse-slurm)
#   export SLURM_CONF=STATE_DIR/slurm.conf PATH=STATE_DIR/bin:$PATH   (the last line printed)
#   tests/slurm/stop-slurm.sh [STATE_DIR]
#
# Idempotent: installs the Debian packages if missing (needs root and apt-get), writes
# slurm.conf, gres.conf and cgroup.conf into STATE_DIR, starts each daemon unless the one
# named by its pidfile in STATE_DIR is already running, and waits until `sinfo` shows
# the node idle. Nothing outside STATE_DIR is written (besides the packages and the apt
# log STATE_DIR.apt.log): no /etc/slurm config, its own munge socket and its own ports,
# so a system Slurm or munge on the same host is neither used nor disturbed. Callers set
# SLURM_CONF and put STATE_DIR/bin (an srun wrapper, see below) first on PATH.
# Known traps: ../shared/notes/slurm.md (beside the checkout).
#
# The cluster: one node (this host), one partition `debug` (Default=YES, so jobs need no
# partition), one fake GPU (Gres=gpu:1 on a character device: jobs that ask for it get
# CUDA_VISIBLE_DEVICES=0, and a second GPU job waits), no accounting database (sacct
# does not work: use `squeue`, kept for MinJobAge=300 s after a job ends, or
# `scontrol show job`).
#
# Environment: PRRMSE_SLURM_CTLD_PORT (16817), PRRMSE_SLURM_SLURMD_PORT (16818),
# PRRMSE_SLURM_MEM_MB (node RealMemory; default max(90% of RAM, 16384): the rules ask
# for up to 8000 MB and SlurmdParameters=config_overrides lets a small CI host accept it),
# PRRMSE_SLURM_WAIT_S (60, how long to wait for the node).
# Exit status: 0 ready, 3 cannot be set up here (not root, no apt-get, install failed),
# 1 anything else (the daemons' logs are printed).
set -euo pipefail

STATE=${1:-/tmp/prrmse-slurm}
CTLD_PORT=${PRRMSE_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${PRRMSE_SLURM_SLURMD_PORT:-16818}
WAIT_S=${PRRMSE_SLURM_WAIT_S:-60}

die() { echo "start-slurm: $*" >&2; exit 1; }
cannot() { echo "start-slurm: cannot set up Slurm here: $*" >&2; exit 3; }  # tests skip on 3
log() { echo "start-slurm: $*" >&2; }

# A pid from a pidfile is ours and running (zombies left by a PID 1 that does not
# reap count as stopped).
alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat") != Z ]]
}

[[ $(id -u) == 0 ]] || cannot "needs root (daemons run as root, packages come from apt-get)"

# 1. Packages.
need=()
for cmd in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
    command -v "$cmd" >/dev/null || need+=("$cmd")
done
if ((${#need[@]})); then
    command -v apt-get >/dev/null || cannot "missing ${need[*]} and no apt-get to install them"
    log "installing slurm-wlm, munge (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$STATE.apt.log" 2>&1 || cannot "apt-get update failed: $STATE.apt.log"
    apt-get install -y -qq slurm-wlm slurmctld slurmd slurm-client munge >>"$STATE.apt.log" 2>&1 ||
        cannot "apt-get install failed: $STATE.apt.log"
    # apt does not start services in a container without systemd; if it did, leave
    # them alone: this cluster uses its own socket and ports.
fi

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
CONF=$STATE/slurm.conf
export SLURM_CONF=$CONF
MUNGE_DIR=$STATE/munge
SOCKET=$MUNGE_DIR/munge.socket

# 2. munge, on a socket of its own.
if ! alive "$MUNGE_DIR/munged.pid"; then
    [[ -s /etc/munge/munge.key ]] || die "no /etc/munge/munge.key (the munge package creates it)"
    id munge >/dev/null 2>&1 || die "no user munge (the munge package creates it)"
    install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
    rm -f "$SOCKET" "$SOCKET.lock"
    runuser -u munge -- /usr/sbin/munged --socket="$SOCKET" --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" ||
        die "munged did not start: $MUNGE_DIR/munged.log"
    log "munged started (pid $(<"$MUNGE_DIR/munged.pid"))"
fi

# 3. Configuration (rewritten only while slurmctld and slurmd are both stopped).
if ! alive "$STATE/slurmctld.pid" && ! alive "$STATE/slurmd.pid"; then
    # Ports are global to the host: refuse to start beside another Slurm using them.
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use (another test Slurm? stop it with tests/slurm/stop-slurm.sh <its state dir>, or set PRRMSE_SLURM_CTLD_PORT / PRRMSE_SLURM_SLURMD_PORT)"
        fi
    done
    host=$(hostname -s)
    # the hardware as slurmd sees it; at least 2 CPUs (the GPU rules ask for 2 threads)
    cpus=$(slurmd -C | sed -n 's/^NodeName=.* \(CPUs=.*\) RealMemory=.*/\1/p')
    [[ $cpus =~ ^CPUs=([0-9]+) ]] && ((BASH_REMATCH[1] >= 2)) || cpus="CPUs=2"
    mem=${PRRMSE_SLURM_MEM_MB:-}
    if [[ -z $mem ]]; then
        total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
        mem=$((total * 9 / 10))
        ((mem >= 16384)) || mem=16384
    fi
    gpu_dev=$STATE/fake-gpu0
    if [[ ! -c $gpu_dev ]]; then
        rm -f "$gpu_dev"
        mknod "$gpu_dev" c 1 3 2>/dev/null || gpu_dev=/dev/null  # no CAP_MKNOD: /dev/null is a char device too
    fi
    mkdir -p "$STATE/ctld" "$STATE/slurmd"
    cat >"$CONF" <<EOF
# Written by tests/slurm/start-slurm.sh: a private one-node test cluster.
ClusterName=prrmse-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without DefMemPerCPU a job with no --mem takes the whole node.
DefMemPerCPU=500
# Finished jobs stay visible to squeue/scontrol this long; the SLURM executor's
# squeue status checks need at least 3 x its init-seconds-before-status-checks.
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 $cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$STATE/gres.conf" <<EOF
# One fake GPU: Slurm schedules it and sets CUDA_VISIBLE_DEVICES; there is no device.
AutoDetect=off
NodeName=$host Name=gpu File=$gpu_dev
EOF
    cat >"$STATE/cgroup.conf" <<EOF
# Not used (proctrack/linuxproc, task/affinity); present so that no system file is read.
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
fi

# The SLURM executor's job step (snakemake-executor-plugin-slurm-jobstep) runs each rule
# with `srun` after dropping every SLURM_* variable but the job's id, SLURM_CONF too; with
# no /etc/slurm/slurm.conf that srun finds no cluster. Jobs get PATH (sbatch
# --export=ALL), so an srun first on PATH that sets SLURM_CONF again keeps them on this
# cluster, whatever /etc/slurm holds.
mkdir -p "$STATE/bin"
real_srun=$(PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$STATE/bin" | paste -sd:) command -v srun)
cat >"$STATE/bin/srun" <<EOF
#!/bin/sh
# Written by tests/slurm/start-slurm.sh: srun of the test cluster (see there).
SLURM_CONF='$CONF' exec '$real_srun' "\$@"
EOF
chmod 0755 "$STATE/bin/srun"

# 4. Daemons.
if ! alive "$STATE/slurmctld.pid"; then
    /usr/sbin/slurmctld -c -f "$CONF" || die "slurmctld did not start: $STATE/slurmctld.log"
    log "slurmctld started"
fi
if ! alive "$STATE/slurmd.pid"; then
    /usr/sbin/slurmd -f "$CONF" || die "slurmd did not start: $STATE/slurmd.log"
    log "slurmd started"
fi

# 5. Wait for the node.
state=""
for ((i = 0; i < WAIT_S * 2; i++)); do
    if ((i >= 10)); then  # the daemons write their pidfiles a moment after forking
        alive "$STATE/slurmctld.pid" || { state="slurmctld not running"; break; }
        alive "$STATE/slurmd.pid" || { state="slurmd not running"; break; }
    fi
    state=$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
    [[ $state == idle || $state == mix || $state == alloc ]] && break
    if [[ $state == down* || $state == drain* ]]; then
        timeout 5 scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.5
done
if [[ $state != idle && $state != mix && $state != alloc ]]; then
    {
        echo "start-slurm: node not ready (state '${state:-none}'; waited up to ${WAIT_S}s)"
        timeout 5 scontrol show node 2>&1 | sed 's/^/  /' || true
        for f in slurmctld.log slurmd.log munge/munged.log; do
            echo "--- $STATE/$f"
            tail -n 15 "$STATE/$f" 2>/dev/null || true
        done
    } >&2
    exit 1
fi
log "node $(hostname -s) $state; $(timeout 5 sinfo -h -o '%P %D %G' | head -n1)"
echo "export SLURM_CONF=$CONF PATH=$STATE/bin:\$PATH"
