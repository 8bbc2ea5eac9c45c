#!/usr/bin/env bash
# Single-node SLURM "cluster" on this machine (Debian 12 packages, Slurm 22.05, MUNGE 0.5.15),
# for testing `townlet-train -m launcher=slurm ...` against a real slurmctld/slurmd.
#
#   sudo ./local-cluster.sh                            # minimal: munged + slurmctld + slurmd
#   sudo LOCAL_SLURM_ACCOUNTING=1 ./local-cluster.sh   # + MariaDB + slurmdbd, so `sacct` works
#   sudo ./stop-cluster.sh                             # stop only what this script started
#
# Idempotent: running it again keeps daemons that are already up and only starts the missing ones
# (a changed slurm.conf restarts the slurmctld/slurmd that this script started).
# Container-friendly: no systemd, no cgroups (proctrack/linuxproc, task/none).
# One node named `localhost` (slurmd is started with -N localhost, so the machine's hostname does not
# matter), one partition (default "debug"). Memory is not enforced (no cgroups): --mem is only checked
# against the node's RealMemory at submission.
#
# Environment knobs (all optional):
#   LOCAL_SLURM_PARTITION  partition name            (default: debug)
#   LOCAL_SLURM_CPUS       CPUs of the node          (default: 2)
#   LOCAL_SLURM_MEM_MB     RealMemory of the node    (default: what `slurmd -C` reports, minus 1 GiB)
#   LOCAL_SLURM_KILLWAIT   seconds between SIGTERM and SIGKILL on scancel/timeout (default: 10;
#                          Slurm's own default is 30)
#   LOCAL_SLURM_CRED_EXPIRE  credential lifetime in seconds, which is also how long a requeued job waits
#                          before it may start again (default: 120, Slurm's default; the test suite uses 10)
#   LOCAL_SLURM_FORCE=1    overwrite an /etc/slurm/slurm.conf that this script did not write
#   LOCAL_SLURM_ACCOUNTING=1  also install and start MariaDB + slurmdbd so that `sacct` works.
#                          submitit polls job states with sacct: without it, a job that dies without
#                          writing its result (scancel, OOM kill, node loss) stays "UNKNOWN" and the
#                          submitting `townlet-train -m` process waits forever. Real clusters run slurmdbd.
#
# Files touched: /etc/slurm/slurm.conf, /etc/munge/munge.key (created only if missing),
# /var/spool/slurmctld, /var/spool/slurmd, /var/log/slurm, /var/log/munge, /run/munge, /run/local-slurm;
# with accounting also /etc/slurm/slurmdbd.conf, /etc/slurm/.slurmdbd.pass, /var/lib/mysql
# (database slurm_acct_db, user slurm@localhost) and /run/mysqld.
set -euo pipefail

PARTITION="${LOCAL_SLURM_PARTITION:-debug}"
CPUS="${LOCAL_SLURM_CPUS:-2}"
KILLWAIT="${LOCAL_SLURM_KILLWAIT:-10}"
CRED_EXPIRE="${LOCAL_SLURM_CRED_EXPIRE:-120}"
ACCT="${LOCAL_SLURM_ACCOUNTING:-0}"
NODE=localhost
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by local-cluster.sh"
STATE=/run/local-slurm          # pid files of the daemons THIS script started (read by stop-cluster.sh)

say() { printf '[local-slurm] %s\n' "$*"; }
die() { printf '[local-slurm] ERROR: %s\n' "$*" >&2; exit 1; }
alive() {  # alive PID NAME: the pid exists and its command name is NAME
  [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
pid_of() { if [ -s "$1" ]; then tr -dc '0-9' < "$1"; fi; }
wait_gone() { for _ in $(seq 150); do [ -e "/proc/$1" ] || return 0; sleep 0.1; done; return 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it writes /etc/slurm and starts system daemons)"

# --- 1. packages -----------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sinfo >/dev/null; then
  say "installing slurm-wlm + munge (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    slurm-wlm slurmctld slurmd slurm-client munge >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         slurm-wlm slurmctld slurmd slurm-client munge >/dev/null; }  # a fresh machine has no package lists
fi
if [ "$ACCT" = 1 ] && { ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; }; then
  say "installing slurmdbd + mariadb-server (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurmdbd mariadb-server >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         slurmdbd mariadb-server >/dev/null; }
fi
say "$(slurmctld -V) / $(munged --version 2>&1 | head -n1)"

# --- 2. directories ----------------------------------------------------------------------------------
install -d -m 0755 "$STATE"
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/spool/slurmd /etc/slurm

# --- 3. munge key (kept if present: the Debian package usually creates one) ---------------------------
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

# --- 4. slurm.conf -----------------------------------------------------------------------------------
if [ -n "${LOCAL_SLURM_MEM_MB:-}" ]; then
  MEM_MB="$LOCAL_SLURM_MEM_MB"
else
  MEM_MB="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)"
  MEM_MB="${MEM_MB:-4096}"
  MEM_MB=$(( MEM_MB > 2048 ? MEM_MB - 1024 : MEM_MB ))   # leave a little for the daemons
fi
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF" && [ "${LOCAL_SLURM_FORCE:-0}" != 1 ]; then
  die "$CONF exists and was not written by this script (set LOCAL_SLURM_FORCE=1 to overwrite)"
fi
if [ "$ACCT" = 1 ]; then
  ACCT_LINES="JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE"
else
  ACCT_LINES="JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none"
fi
NEW_CONF="$(cat <<SLURMCONF
$MARK; regenerate rather than edit
ClusterName=local
SlurmctldHost=$NODE
AuthType=auth/munge
AuthInfo=cred_expire=$CRED_EXPIRE
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd: track processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT_LINES
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# scancel/timeout: SIGTERM, then SIGKILL after KillWait seconds
KillWait=$KILLWAIT
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
SLURMCONF
)"
CONF_CHANGED=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEW_CONF" ]; then
  say "writing $CONF (node $NODE: CPUs=$CPUS RealMemory=$MEM_MB, partition $PARTITION, accounting=$ACCT)"
  printf '%s\n' "$NEW_CONF" > "$CONF"
  chmod 0644 "$CONF"
  CONF_CHANGED=1
fi

# --- 5. munged ---------------------------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running"
else
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged        # daemonizes, writes /run/munge/munged.pid
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$STATE/munged.pid"
  munge -n | unmunge >/dev/null || die "munge credential round trip failed (see /var/log/munge/munged.log)"
fi

# --- 6. accounting: MariaDB + slurmdbd (LOCAL_SLURM_ACCOUNTING=1) ------------------------------------
if [ "$ACCT" = 1 ]; then
  install -d -o mysql -g root -m 0755 /run/mysqld
  if mariadb -e 'select 1' >/dev/null 2>&1; then
    say "mariadb already running"
  else
    say "starting mariadbd (unix socket only, no TCP)"
    setsid nohup /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
      --pid-file=/run/mysqld/mysqld.pid --innodb-buffer-pool-size=64M \
      >>/var/log/slurm/mariadbd.log 2>&1 </dev/null &
    echo $! > "$STATE/mariadbd.pid"
    for _ in $(seq 150); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    mariadb -e 'select 1' >/dev/null || die "mariadbd did not start (see /var/log/slurm/mariadbd.log)"
  fi
  PASS_FILE=/etc/slurm/.slurmdbd.pass
  if [ ! -s "$PASS_FILE" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$PASS_FILE")
  fi
  DBPASS="$(cat "$PASS_FILE")"
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
              ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  (umask 077; cat > "$DBD_CONF" <<DBDCONF
$MARK
AuthType=auth/munge
DbdHost=$NODE
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
DBDCONF
  )
  chown slurm:slurm "$DBD_CONF"
  chmod 0600 "$DBD_CONF"
  PID="$(pid_of /run/slurmdbd.pid)"
  if alive "$PID" slurmdbd; then
    say "slurmdbd already running (pid $PID)"
  else
    say "starting slurmdbd"
    /usr/sbin/slurmdbd                        # daemonizes, writes PidFile
    for _ in $(seq 100); do PID="$(pid_of /run/slurmdbd.pid)"; alive "$PID" slurmdbd && break; sleep 0.1; done
    alive "$PID" slurmdbd || die "slurmdbd did not start (see /var/log/slurm/slurmdbd.log)"
    echo "$PID" > "$STATE/slurmdbd.pid"
    for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx local; then
    say "registering cluster 'local' in slurmdbd"
    sacctmgr -i add cluster local >/dev/null
  fi
fi

# --- 7. slurmctld ------------------------------------------------------------------------------------
PID="$(pid_of /run/slurmctld.pid)"
if alive "$PID" slurmctld && [ "$CONF_CHANGED" = 1 ]; then
  if [ "$(pid_of "$STATE/slurmctld.pid")" = "$PID" ]; then
    # plugin changes (accounting on/off) need a restart; done only for daemons this script started
    say "slurm.conf changed: restarting the slurmd/slurmctld that this script started"
    for d in slurmd slurmctld; do
      p="$(pid_of "$STATE/$d.pid")"
      if alive "$p" "$d"; then kill -TERM "$p"; wait_gone "$p" || die "$d (pid $p) did not stop"; fi
      rm -f "$STATE/$d.pid"
    done
    PID=""
  else
    say "slurm.conf changed: scontrol reconfigure (slurmctld was not started by this script)"
    scontrol reconfigure || true
  fi
fi
if alive "$PID" slurmctld; then
  say "slurmctld already running (pid $PID)"
else
  say "starting slurmctld"
  /usr/sbin/slurmctld          # daemonizes, writes SlurmctldPidFile
  for _ in $(seq 100); do PID="$(pid_of /run/slurmctld.pid)"; alive "$PID" slurmctld && break; sleep 0.1; done
  alive "$PID" slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
  echo "$PID" > "$STATE/slurmctld.pid"
fi

# --- 8. slurmd ---------------------------------------------------------------------------------------
PID="$(pid_of /run/slurmd.pid)"
if alive "$PID" slurmd; then
  say "slurmd already running (pid $PID)"
else
  say "starting slurmd -N $NODE"
  /usr/sbin/slurmd -N "$NODE"  # daemonizes, writes SlurmdPidFile
  for _ in $(seq 100); do PID="$(pid_of /run/slurmd.pid)"; alive "$PID" slurmd && break; sleep 0.1; done
  alive "$PID" slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
  echo "$PID" > "$STATE/slurmd.pid"
fi

# --- 9. wait for the node --------------------------------------------------------------------------
say "waiting for node $NODE"
st=""
for i in $(seq 60); do
  st="$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n1 || true)"
  case "$st" in
    idle|mix|alloc|comp) break ;;
    down*|drain*|drng*|fail*)
      if [ $((i % 5)) -eq 0 ]; then scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true; fi ;;
  esac
  sleep 1
done
case "$st" in idle|mix|alloc|comp) ;; *) sinfo -N -l || true; die "node $NODE is '$st', not idle";; esac
sinfo
if [ "$ACCT" = 1 ]; then
  say "accounting on: sacct works (cluster: $(sacctmgr -n -P list cluster format=cluster | xargs))"
else
  say "accounting off: sacct fails, so submitit cannot see a job that died without writing a result"
  say "  (scancel, OOM kill): its submitter then waits forever. LOCAL_SLURM_ACCOUNTING=1 adds slurmdbd."
fi
say "ready: partition '$PARTITION' (e.g. srun -p $PARTITION hostname)"
