#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests (tests/slurm_cluster.py) and for trying
# hydra/launcher=slurm by hand:
#
#   scripts/slurm/up.sh [STATE_DIR]      # default: $SLURM_TEST_DIR, else a new /tmp/slurm-test.XXXXXX
#   source STATE_DIR/env                 # SLURM_CONF=...: sbatch, squeue, scancel, ... use this cluster
#   sbatch --wrap 'sleep 1; echo ok'
#   scripts/slurm/down.sh STATE_DIR      # stops every daemon it started, removes STATE_DIR
#
# Runs as root only. Installs Debian's slurm-wlm and munge with apt-get when they are missing. Everything
# else lives in STATE_DIR: slurm.conf, a munge key and socket, the daemons' spool, logs and PID
# files (STATE_DIR/pids/*.pid, read by down.sh), on ports chosen free at start, so it neither uses
# nor disturbs a system SLURM or munge. The node is this host (hostname -s) with all its CPUs, one
# job per CPU (select/cons_tres, CR_CPU_Memory), no accounting, no cgroups.
#
# Prints `export SLURM_CONF=...` on stdout (the same lines as STATE_DIR/env); everything else goes
# to stderr. Exit status: 0 when the node is idle, 3 when not root or SLURM is not installed and
# cannot be (no apt-get, apt-get failed: the tests skip with this message), 1 on any other failure (the daemons
# it started are stopped again and the logs' tails printed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WAIT_S="${SLURM_UP_TIMEOUT_S:-30}"         # for the node to show idle
HEADROOM_MB="${SLURM_MEM_HEADROOM_MB:-1024}"  # RealMemory = MemTotal minus this

log() { echo "slurm-up: $*" >&2; }
die() { log "$1"; exit "${2:-1}"; }

# ---- install ---------------------------------------------------------------------------------
# slurmd runs the jobs as their users and munged and slurmctld as SlurmUser: root for all here.
[ "$(id -u)" -eq 0 ] || die "scripts/slurm/up.sh must run as root (it starts slurmctld, slurmd and munged as root, and installs them if missing)" 3
have_all() { command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged; } >/dev/null 2>&1

if ! have_all; then
    command -v apt-get >/dev/null 2>&1 || die "SLURM is not installed and there is no apt-get to install slurm-wlm munge" 3
    log "installing slurm-wlm and munge with apt-get (once per machine)"
    t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    # The packages must not start the system's munge, slurmctld and slurmd services (this script
    # starts its own daemons): where no policy-rc.d says so already (Debian's docker images have
    # one), one that refuses is in place for the install only.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# scripts/slurm/up.sh: no service starts while it installs SLURM\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    apt_log="$(mktemp /tmp/slurm-apt.XXXXXX.log)"
    apt_ok=1
    apt-get update -qq -o DPkg::Lock::Timeout=300 >>"$apt_log" 2>&1 &&
        apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 \
            slurm-wlm munge >>"$apt_log" 2>&1 || apt_ok=""
    [ -n "$policy" ] && rm -f "$policy"
    if [ -z "$apt_ok" ]; then
        tail -n 20 "$apt_log" >&2
        die "apt-get install slurm-wlm munge failed (whole output in $apt_log)" 3
    fi
    rm -f "$apt_log"
    have_all || die "apt-get installed slurm-wlm and munge, but slurmctld/slurmd/sbatch/munged are still not on PATH" 3
    log "installed in $((SECONDS - t0)) s"
fi

# ---- state folder ----------------------------------------------------------------------------
STATE="${1:-${SLURM_TEST_DIR:-}}"
if [ -z "$STATE" ]; then
    STATE="$(mktemp -d /tmp/slurm-test.XXXXXX)"
else
    mkdir -p "$STATE"
fi
STATE="$(cd "$STATE" && pwd)"
[ -e "$STATE/pids" ] && die "$STATE already holds a cluster (pids/): run scripts/slurm/down.sh $STATE first"
# munged refuses group/other-writable folders on its socket's and key's path, /tmp's sticky bit aside.
chmod 700 "$STATE"
mkdir -p "$STATE"/{pids,log,munge,ctld,spool}
chmod 700 "$STATE"/munge
MARK="SLURM_TEST_DAEMON_OF=$STATE"   # in every daemon's environment: down.sh finds strays by it

cleanup_on_fail() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -z "${UP_OK:-}" ]; then
        for f in "$STATE"/log/*.log; do
            [ -s "$f" ] && { log "--- tail of $f"; tail -n 15 "$f" >&2; }
        done
        "$HERE/down.sh" --keep "$STATE" >&2 || true
    fi
}
trap cleanup_on_fail EXIT

# ---- node description ------------------------------------------------------------------------
HOST="$(hostname -s)"
NCPU="$(nproc)"
MEM_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - HEADROOM_MB ))
[ "$MEM_MB" -ge 512 ] || MEM_MB=512

free_port() {  # a TCP port nothing listens on now (bind to 0 and read it back)
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo $(( 20000 + RANDOM % 20000 ))
    fi
}
CTLD_PORT="$(free_port)"
SLURMD_PORT="$(free_port)"
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT="$(free_port)"; done

# ---- munge -----------------------------------------------------------------------------------
SOCKET="$STATE/munge/munge.socket"
KEY="$STATE/munge/munge.key"
if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile="$KEY" >&2
else
    dd if=/dev/urandom bs=1 count=1024 of="$KEY" status=none
fi
chmod 600 "$KEY"

# ---- slurm.conf ------------------------------------------------------------------------------
CONF="$STATE/slurm.conf"
cat >"$CONF" <<EOF
# Written by scripts/slurm/up.sh for a one-node test cluster; removed by scripts/slurm/down.sh.
ClusterName=alexnet-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it starts again (default 120 s).
AuthInfo=socket=$SOCKET,cred_expire=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/pids/slurmctld.daemon.pid
SlurmdPidFile=$STATE/pids/slurmd.daemon.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting (submitit's sacct calls fail; it falls back to squeue/scontrol).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# One job per CPU: two 1-CPU jobs run at once on a 2-CPU node.
SchedulerType=sched/backfill
# Pending jobs tried every second (defaults 60 s and 30 s), so a requeued job starts again soon.
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((MEM_MB / NCPU))
# Requeue (scontrol requeue, submitit's requeue on USR2/time-out) allowed; finished jobs forgotten fast.
JobRequeue=1
MinJobAge=5
# SIGTERM to SIGKILL on scancel/requeue/time-out: the run finishes its batch and writes last.ckpt
# in between (Slurm's default, 30 s; a few seconds are not enough on a busy 2-core machine).
KillWait=30
SlurmdTimeout=10
SlurmctldTimeout=10
InactiveLimit=0
ReturnToService=2
MailProg=/bin/true
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

cat >"$STATE/env" <<EOF
export SLURM_CONF=$CONF
export SLURM_TEST_STATE=$STATE
EOF

# ---- daemons ---------------------------------------------------------------------------------
# Each runs in the foreground (-D / --foreground) as a background job of this script, so $! is
# the daemon itself; setsid detaches it from this script's process group and terminal.
start() {  # name command...
    local name="$1"; shift
    env "$MARK" SLURM_CONF="$CONF" setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    echo $! >"$STATE/pids/$name.pid"
    log "started $name (pid $!)"
}
alive() { kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }

t_start=$SECONDS
start munged munged --foreground --force --socket="$SOCKET" --key-file="$KEY" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munge.seed"
for _ in $(seq 50); do
    [ -S "$SOCKET" ] && break
    alive munged || die "munged exited at once (see $STATE/log/munged.log)"
    sleep 0.1
done
[ -S "$SOCKET" ] || die "munged did not create its socket $SOCKET within 5 s"

start slurmctld slurmctld -D -c -f "$CONF"
start slurmd slurmd -D -f "$CONF" -N "$HOST"

deadline=$((SECONDS + WAIT_S))
state=""
while [ $SECONDS -lt $deadline ]; do
    alive slurmctld || die "slurmctld exited (see $STATE/log/slurmctld.log)"
    alive slurmd || die "slurmd exited (see $STATE/log/slurmd.log)"
    state="$(SLURM_CONF="$CONF" sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1 || true)"
    [ "$state" = "idle" ] && break
    sleep 0.5
done
[ "$state" = "idle" ] || die "node $HOST not idle after ${WAIT_S} s (sinfo says '${state:-nothing}'); logs in $STATE/log"

UP_OK=1
log "node $HOST idle with $NCPU CPUs and ${MEM_MB} MB after $((SECONDS - t_start)) s; state in $STATE"
cat "$STATE/env"
