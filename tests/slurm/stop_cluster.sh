#!/usr/bin/env bash
# Stop the test Slurm cluster started by start_cluster.sh and restore the
# /etc/slurm configs it replaced.  Always exits 0; safe to call twice.
#
#   SLURM_TEST_DIR    same directory start_cluster.sh used (default /tmp/inferbench-slurm)
#   SLURM_TEST_GRACE  seconds between SIGTERM and SIGKILL   (default 15)
set -u

DIR=${SLURM_TEST_DIR:-/tmp/inferbench-slurm}
GRACE=${SLURM_TEST_GRACE:-15}
ETC=/etc/slurm
MARK="# inferbench-slurm-test: written by tests/slurm/start_cluster.sh"
PATH=$PATH:/usr/sbin:/sbin

log() { printf '[stop_cluster] %s\n' "$*"; }
# alive PID: process exists and is not a zombie waiting to be reaped.
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# PIDs of processes named NAME that start_cluster.sh started for this $DIR:
# they carry INFERBENCH_SLURM_TEST_DIR=$DIR in their environment.  This is the
# "pkill" fallback, narrowed so that a system munged/mariadbd/Slurm of the
# same name is never touched.
marked_pids() {  # name
    local pid
    for pid in $(pgrep -x "$1" 2>/dev/null); do
        tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" \
            | grep -qxF "INFERBENCH_SLURM_TEST_DIR=$DIR" && echo "$pid"
    done
}

# stop NAME...: SIGTERM the recorded pids and any marked processes of these
# daemons (together), wait up to GRACE seconds, then SIGKILL what is left.
stop_daemons() {
    local name p pids="" left t0=$SECONDS end
    for name in "$@"; do
        p=$(cat "$DIR/pids/$name.pid" 2>/dev/null || true)
        # Only trust a recorded pid if it still is a process of that name.
        if alive "$p" && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$name" ]; then pids+=" $p"; fi
        pids+=" $(marked_pids "$name" | tr '\n' ' ')"
        rm -f "$DIR/pids/$name.pid"
    done
    pids=$(printf '%s\n' $pids | sort -u | tr '\n' ' ')
    [ -n "${pids// /}" ] || return 0
    ALL_PIDS+=" $pids"
    log "stopping $* (pid $pids)"
    kill -TERM $pids 2>/dev/null
    end=$(( SECONDS + GRACE ))
    while :; do
        left=""
        for p in $pids; do alive "$p" && left+=" $p"; done
        if [ -z "$left" ]; then log "  stopped after $(( SECONDS - t0 ))s"; return 0; fi
        [ "$SECONDS" -lt "$end" ] || break
        sleep 0.1
    done
    log "  still alive after ${GRACE}s:$left - sending SIGKILL"
    kill -KILL $left 2>/dev/null
    for _ in $(seq 1 30); do
        left=""
        for p in $pids; do alive "$p" && left+=" $p"; done
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    log "  WARNING: could not kill:$left"
    return 0
}

# Cancel jobs still on our cluster so their steps do not outlive slurmd.
if grep -qF "$MARK" "$ETC/slurm.conf" 2>/dev/null \
   && alive "$(cat "$DIR/pids/slurmctld.pid" 2>/dev/null)"; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
        log "cancelling jobs: $(echo $jobs)"
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 1 25); do
            [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

ALL_PIDS=""
# Order: compute + controller, then accounting daemon, then its database and munge.
stop_daemons slurmd slurmstepd slurmctld
stop_daemons slurmdbd
stop_daemons mariadbd munged

# Dead daemons stay zombies until their parent (init) reaps them; give that a
# moment so that pgrep right after this script shows nothing.
for _ in $(seq 1 50); do
    z=""
    for p in $ALL_PIDS; do [ -e "/proc/$p" ] && z+=" $p"; done
    [ -z "$z" ] && break
    sleep 0.1
done

# Restore the configs start_cluster.sh replaced (or remove the ones it added).
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "$DIR/backup/$f" ]; then
        cp -a "$DIR/backup/$f" "$ETC/$f" && rm -f "$DIR/backup/$f" && log "restored $ETC/$f"
    elif [ -e "$DIR/backup/$f.absent" ]; then
        if grep -qF "$MARK" "$ETC/$f" 2>/dev/null; then rm -f "$ETC/$f" && log "removed $ETC/$f"; fi
        rm -f "$DIR/backup/$f.absent"
    fi
done
rm -f "$DIR/cluster.env"

left=""
for n in slurmd slurmstepd slurmctld slurmdbd mariadbd munged; do
    [ -n "$(marked_pids "$n")" ] && left+=" $n"
done
if [ -n "$left" ]; then log "WARNING: still running:$left"; else log "Slurm test cluster stopped (dir $DIR)"; fi
exit 0
