#!/usr/bin/env bash
# Stops the test cluster that scripts/slurm/up.sh started in STATE_DIR and removes STATE_DIR:
#
#   scripts/slurm/down.sh [--keep] [STATE_DIR]     # default: $SLURM_TEST_DIR, else $SLURM_TEST_STATE
#
# 1. cancels the cluster's jobs (scancel) and waits for them to end (bounded);
# 2. stops slurmd, slurmctld and munged by the PIDs up.sh recorded in STATE_DIR/pids (TERM, then
#    KILL after a bounded wait), never by name;
# 3. kills what is left that belongs to this cluster only: processes whose environment carries
#    up.sh's mark SLURM_TEST_DAEMON_OF=STATE_DIR (slurmstepd and friends) or SLURM_CONF=STATE_DIR/slurm.conf
#    together with a SLURM_JOB_ID (a job's processes);
# 4. removes STATE_DIR (kept with --keep, e.g. to read its logs).
# Safe to run twice, and on a half-started cluster.
set -uo pipefail

KEEP=""
if [ "${1:-}" = "--keep" ]; then KEEP=1; shift; fi
STATE="${1:-${SLURM_TEST_DIR:-${SLURM_TEST_STATE:-}}}"
log() { echo "slurm-down: $*" >&2; }

[ -n "$STATE" ] || { log "usage: $0 [--keep] STATE_DIR"; exit 2; }
if [ ! -d "$STATE" ]; then log "$STATE does not exist: nothing to stop"; exit 0; fi
STATE="$(cd "$STATE" && pwd)"
# Only ever stop and delete what up.sh made.
if [ ! -d "$STATE/pids" ] && ! head -n1 "$STATE/slurm.conf" 2>/dev/null | grep -q 'scripts/slurm/up.sh'; then
    log "$STATE was not made by scripts/slurm/up.sh (no pids/, no slurm.conf of ours): left alone"
    exit 2
fi
CONF="$STATE/slurm.conf"
MARK="SLURM_TEST_DAEMON_OF=$STATE"

pid_of() { local f="$STATE/pids/$1.pid"; [ -s "$f" ] && cat "$f"; }
alive() {  # a zombie (exited, not yet reaped by its parent) counts as gone
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local stat; stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"; [ "${stat%% *}" != Z ]
}

wait_gone() {  # seconds pid...: wait until none of the pids is alive; 0 if so
    local until=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $until ]; do
        local any=""
        for p in "$@"; do alive "$p" && any=1; done
        [ -z "$any" ] && return 0
        sleep 0.2
    done
    return 1
}

stop_pids() {  # label pid...: TERM, 10 s, KILL, 5 s
    local label="$1" t0=$SECONDS; shift
    local live=()
    for p in "$@"; do alive "$p" && live+=("$p"); done
    [ ${#live[@]} -gt 0 ] || return 0
    kill -TERM "${live[@]}" 2>/dev/null
    if ! wait_gone 10 "${live[@]}"; then
        log "$label (${live[*]}) still alive 10 s after SIGTERM: SIGKILL"
        kill -KILL "${live[@]}" 2>/dev/null
        wait_gone 5 "${live[@]}" || log "$label (${live[*]}) survived SIGKILL"
    fi
    log "stopped $label (${live[*]}) in $((SECONDS - t0)) s"
}

# 1. jobs
CTLD="$(pid_of slurmctld)"
if alive "$CTLD" && [ -f "$CONF" ]; then
    jobs="$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        SLURM_CONF="$CONF" timeout 10 scancel $jobs 2>/dev/null
        until=$((SECONDS + 20))
        while [ $SECONDS -lt $until ] && [ -n "$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %A 2>/dev/null)" ]; do
            sleep 0.5
        done
    fi
fi

# 2. daemons, by recorded PID: slurmd first (it reports to slurmctld), munged last (both use it)
stop_pids slurmd "$(pid_of slurmd)"
stop_pids slurmctld "$CTLD"
stop_pids munged "$(pid_of munged)"

# 3. strays of this cluster only, found by their environment
strays=()
for env_file in /proc/[0-9]*/environ; do
    p="${env_file#/proc/}"; p="${p%/environ}"
    [ "$p" = "$$" ] && continue
    vars="$(tr '\0' '\n' 2>/dev/null <"$env_file")" || continue
    if grep -qxF "$MARK" <<<"$vars" ||
       { grep -qxF "SLURM_CONF=$CONF" <<<"$vars" && grep -q '^SLURM_JOB_ID=' <<<"$vars"; }; then
        strays+=("$p")
    fi
done
if [ ${#strays[@]} -gt 0 ]; then
    log "stopping leftover processes of this cluster: ${strays[*]}"
    stop_pids leftovers "${strays[@]}"
fi

# 4. state
if [ -n "$KEEP" ]; then
    log "stopped; state kept in $STATE"
else
    rm -rf "$STATE"
    log "stopped; removed $STATE"
fi
exit 0
