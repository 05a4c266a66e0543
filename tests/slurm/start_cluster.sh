#!/usr/bin/env bash
# Start a real single-node Slurm cluster (slurmctld + slurmd + slurmdbd/MariaDB
# accounting + munge) on this machine, bound to localhost, for tests.
#
#   SLURM_TEST_DIR      state/log/pid directory   (default /tmp/inferbench-slurm)
#   SLURM_TEST_TIMEOUT  seconds to wait per step   (default 60)
#   SLURM_TEST_CLUSTER  ClusterName                (default inferbench)
#   SLURM_TEST_GPUS     fake GPUs on the node      (default 1)
#   SLURM_TEST_GPU_TYPE their type, as `--gpus=<type>:1` asks for it (default testgpu);
#                       untyped requests (`--gpus=1`) get them too
#
# Needs root (writes /etc/slurm/*.conf; backs up existing ones for
# stop_cluster.sh to restore).  Every start gives a fresh cluster: Slurm state
# and the accounting database are wiped.  Stop with stop_cluster.sh.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/inferbench-slurm}
TIMEOUT=${SLURM_TEST_TIMEOUT:-60}
CLUSTER=${SLURM_TEST_CLUSTER:-inferbench}
NGPU=${SLURM_TEST_GPUS:-1}
GPU_TYPE=${SLURM_TEST_GPU_TYPE:-testgpu}
ETC=/etc/slurm
MARK="# inferbench-slurm-test: written by tests/slurm/start_cluster.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=$(date +%s.%N)
PATH=$PATH:/usr/sbin:/sbin
STARTED=0

# Every daemon started here inherits this marker; stop_cluster.sh's fallback
# only kills processes carrying it (never unrelated daemons of the same name).
export INFERBENCH_SLURM_TEST_DIR="$DIR"

log() { printf '[start_cluster] %5.1fs %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')" "$*"; }
die() {
    printf '[start_cluster] ERROR: %s\n' "$1" >&2
    shift
    for f in "$@"; do
        [ -e "$f" ] || continue
        printf -- '----- tail of %s -----\n' "$f" >&2
        tail -n 30 "$f" >&2 || true
    done
    if [ "$STARTED" = 1 ]; then   # do not leave a half-started cluster behind
        printf '[start_cluster] cleaning up (logs stay in %s/log)\n' "$DIR" >&2
        SLURM_TEST_DIR="$DIR" bash "$HERE/stop_cluster.sh" >&2 || true
    fi
    exit 1
}
# alive PID: process exists and is not a zombie waiting to be reaped.
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_for DESCRIPTION COMMAND... : poll COMMAND until it succeeds or TIMEOUT.
wait_for() {
    shift   # $1 only names what is awaited
    local end=$(( $(date +%s) + TIMEOUT ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.5
    done
}
# Wait for a daemon's pid file, record the pid under $DIR/pids.
record_pid() {  # name pidfile
    local name=$1 pf=$2 pid=""
    local end=$(( $(date +%s) + TIMEOUT ))
    while :; do
        pid=$(cat "$pf" 2>/dev/null || true)
        alive "$pid" && break
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
    echo "$pid" > "$DIR/pids/$name.pid"
}

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- already running? --------------------------------------------------------
if [ -f "$DIR/pids/slurmctld.pid" ] && alive "$(cat "$DIR/pids/slurmctld.pid")" \
   && [ -f "$DIR/pids/slurmd.pid" ] && alive "$(cat "$DIR/pids/slurmd.pid")" \
   && grep -qF "$MARK" "$ETC/slurm.conf" 2>/dev/null \
   && timeout 10 sinfo -h -n localhost -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' \
   && timeout 10 sacct -n -X >/dev/null 2>&1; then
    log "cluster already running (state in $DIR)"
    echo "Slurm test cluster '$CLUSTER' already up: node localhost $(sinfo -h -n localhost -o '%c CPUs, %G, %t'), accounting OK, dir $DIR"
    exit 0
fi
# Leftovers of an earlier, half-dead start from this dir: clean them first.
if [ -d "$DIR/pids" ] && ls "$DIR"/pids/*.pid >/dev/null 2>&1; then
    log "found leftovers of a previous run in $DIR; stopping them first"
    SLURM_TEST_DIR="$DIR" bash "$HERE/stop_cluster.sh" || true
fi

# --- packages ------------------------------------------------------------------
need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v slurmd    >/dev/null || need+=(slurm-wlm)
command -v slurmdbd  >/dev/null || need+=(slurmdbd)
command -v munged    >/dev/null || [ -x /usr/sbin/munged ] || need+=(munge)
command -v mariadbd  >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >"${TMPDIR:-/tmp}/inferbench-slurm-apt.log" 2>&1 \
        || die "apt-get install failed" "${TMPDIR:-/tmp}/inferbench-slurm-apt.log"
fi

# --- directories -----------------------------------------------------------------
mkdir -p "$DIR"
chmod 755 "$DIR"                       # mysql user must traverse it
rm -rf "$DIR/state" "$DIR/spool" "$DIR/pids" "$DIR/run"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/pids" "$DIR/run" "$DIR/log" "$DIR/backup" "$ETC"
: > "$DIR/log/slurmctld.log"; : > "$DIR/log/slurmd.log"; : > "$DIR/log/slurmdbd.log"

# Ports must be free (another Slurm/MariaDB on this host would collide).
for p in 6817 6818 6819; do
    port_busy "$p" && die "port $p is already in use (another Slurm running?)"
done
DBPORT=""
for p in 3306 3307 3308 3309 3310 13306; do
    port_busy "$p" || { DBPORT=$p; break; }
done
[ -n "$DBPORT" ] || die "no free port for MariaDB"

STARTED=1
# --- back up configs we overwrite ----------------------------------------------------
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "$ETC/$f" ] && ! grep -qF "$MARK" "$ETC/$f" 2>/dev/null; then
        cp -a "$ETC/$f" "$DIR/backup/$f"        # original, restored by stop
        rm -f "$DIR/backup/$f.absent"
    elif [ ! -e "$ETC/$f" ] && [ ! -e "$DIR/backup/$f" ]; then
        touch "$DIR/backup/$f.absent"           # stop removes ours
    fi
done

# --- munge ---------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running (not started here, will not be stopped)"
else
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || die "munged failed to start" /var/log/munge/munged.log
    record_pid munged /run/munge/munged.pid || die "munged did not write its pid" /var/log/munge/munged.log
    wait_for munge sh -c 'munge -n | unmunge' || die "munge does not work" /var/log/munge/munged.log
fi

# --- MariaDB (private instance, datadir in $DIR/mysql, 127.0.0.1 only) -------------------
log "starting MariaDB"
MYSQL_SOCK=$DIR/run/mysqld.sock
if [ ! -d "$DIR/mysql/mysql" ]; then
    log "initialising MariaDB datadir $DIR/mysql"
    rm -rf "$DIR/mysql"; mkdir -p "$DIR/mysql"; chown mysql:mysql "$DIR/mysql"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql" \
        --auth-root-authentication-method=socket --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed" "$DIR/log/mariadb-install.log"
fi
chown mysql:mysql "$DIR/run"
: > "$DIR/log/mariadb.log"; chown mysql:mysql "$DIR/log/mariadb.log"
mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql" --bind-address=127.0.0.1 \
    --port="$DBPORT" --socket="$MYSQL_SOCK" --pid-file="$DIR/run/mariadbd.pid" \
    --log-error="$DIR/log/mariadb.log" --skip-name-resolve \
    --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 >/dev/null 2>&1 &
echo $! > "$DIR/pids/mariadbd.pid"
sql() { mariadb --no-defaults -S "$MYSQL_SOCK" -u root -N -e "$1"; }
wait_for mariadb sql 'SELECT 1' || die "MariaDB did not come up" "$DIR/log/mariadb.log"
DBPASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
sql "DROP DATABASE IF EXISTS slurm_acct_db; CREATE DATABASE slurm_acct_db;
     CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
     ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
    || die "could not create the accounting database" "$DIR/log/mariadb.log"

# --- Slurm configs -------------------------------------------------------------------------
# Slurm binds its listening sockets to INADDR_ANY unless CommunicationParameters
# has NoInAddrAny (slurmd, slurmdbd, srun) / NoCtldInAddrAny (slurmctld); those
# bind to the address *this host's name* resolves to, so only use them when
# that is 127.0.0.1 (else the daemons could not reach each other via localhost).
COMM_PARAMS=""
if [ "$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR==1 {print $1}')" = 127.0.0.1 ]; then
    COMM_PARAMS="CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"
else
    log "WARNING: hostname $(hostname) does not resolve to 127.0.0.1; slurmctld/slurmd/slurmdbd" \
        "will listen on all interfaces (munge-authenticated). MariaDB stays on 127.0.0.1."
fi
NCPU=$(getconf _NPROCESSORS_ONLN)
MEM_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
DEFMEM=$(( MEM_MB / NCPU ))
GRES_LINE=""; NODE_GRES=""
if [ "$NGPU" -gt 0 ]; then
    NODE_GRES="Gres=gpu:$GPU_TYPE:$NGPU"
    # File=/dev/null etc.: fake devices, one per GPU, so the GPUs are schedulable but nothing real (a
    # plain count without files is reported by slurmd as 0 GPUs, and the node is drained as invalid)
    FAKE_DEVICES=(/dev/null /dev/zero /dev/full /dev/urandom)
    [ "$NGPU" -le ${#FAKE_DEVICES[@]} ] || die "SLURM_TEST_GPUS=$NGPU: at most ${#FAKE_DEVICES[@]} fake GPUs"
    GRES_LINE=$(for dev in "${FAKE_DEVICES[@]:0:$NGPU}"; do
        echo "NodeName=localhost Name=gpu Type=$GPU_TYPE File=$dev"; done)
fi

cat > "$ETC/slurm.conf" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=6817
SlurmdPort=6818
$COMM_PARAMS
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEFMEM
GresTypes=gpu
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu,gres/gpu:$GPU_TYPE
AccountingStoreFlags=job_comment
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB $NODE_GRES State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 "$ETC/slurm.conf"

{ echo "$MARK"; echo "AutoDetect=off"; [ -z "$GRES_LINE" ] || echo "$GRES_LINE"; } > "$ETC/gres.conf"
chmod 644 "$ETC/gres.conf"

( umask 077
cat > "$ETC/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
${COMM_PARAMS%,NoCtldInAddrAny}
SlurmUser=root
DebugLevel=info
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
)
chown root:root "$ETC/slurmdbd.conf"; chmod 600 "$ETC/slurmdbd.conf"

# --- slurmdbd, cluster registration, slurmctld, slurmd -----------------------------------------
log "starting slurmdbd"
slurmdbd || die "slurmdbd failed to start" "$DIR/log/slurmdbd.log"
record_pid slurmdbd "$DIR/run/slurmdbd.pid" || die "slurmdbd did not start" "$DIR/log/slurmdbd.log"
wait_for slurmdbd sh -c 'sacctmgr -n -P show cluster format=cluster' \
    || die "slurmdbd does not answer" "$DIR/log/slurmdbd.log" "$DIR/log/mariadb.log"
if ! sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed" "$DIR/log/slurmdbd.log"
fi

log "starting slurmctld + slurmd"
slurmctld || die "slurmctld failed to start" "$DIR/log/slurmctld.log"
record_pid slurmctld "$DIR/run/slurmctld.pid" || die "slurmctld did not start" "$DIR/log/slurmctld.log"
slurmd -N localhost || die "slurmd failed to start" "$DIR/log/slurmd.log"
record_pid slurmd "$DIR/run/slurmd.pid" || die "slurmd did not start" "$DIR/log/slurmd.log"

log "waiting for node idle + sacct"
node_idle() { timeout 10 sinfo -h -n localhost -o %t | grep -qx idle; }
wait_for "node idle" node_idle \
    || die "node localhost is not idle after ${TIMEOUT}s: $(sinfo -h -N -o '%N %t %E' 2>&1)" \
           "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"
wait_for sacct sh -c 'timeout 10 sacct -n -X 2>&1 >/dev/null | grep -q . && exit 1; timeout 10 sacct -n -X' \
    || die "sacct does not work: $(sacct -n -X 2>&1 | tail -3)" "$DIR/log/slurmdbd.log" "$DIR/log/slurmctld.log"

cat > "$DIR/cluster.env" <<EOF
SLURM_TEST_DIR=$DIR
SLURM_TEST_CLUSTER=$CLUSTER
SLURM_TEST_DBPORT=$DBPORT
EOF
SECS=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
echo "Slurm test cluster '$CLUSTER' up in ${SECS}s: node localhost $NCPU CPUs ${MEM_MB}MB gpu:$GPU_TYPE:$NGPU idle, partition debug, accounting via slurmdbd+MariaDB:$DBPORT, dir $DIR"
