#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, with job accounting (slurmdbd + MariaDB), for the
# SLURM integration tests. Debian 12 packages, no systemd, root.
#   .ci/slurm-cluster.sh start   install (if needed), configure, start, wait until the node is idle
#   .ci/slurm-cluster.sh stop    stop every daemon started here
set -euo pipefail

STATE=/var/lib/fusion_tuner_ci_slurm
CLUSTER=ftci
HOST=$(hostname -s)

log() { echo "[slurm-cluster] $*"; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; then
    return
  fi
  log "installing munge, slurm and mariadb from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client slurmdbd mariadb-server >/dev/null
}

wait_for() {  # seconds, description, command...
  local n=$1 what=$2; shift 2
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "timed out waiting for $what"; return 1
}

start_munge() {
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged munge -n
}

start_mariadb() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  if ! pgrep -x mariadbd >/dev/null; then
    runuser -u mysql -- mariadbd --skip-networking --socket=/run/mysqld/mysqld.sock \
      --datadir=/var/lib/mysql --pid-file=/run/mysqld/mysqld.pid >"$STATE/mariadb.log" 2>&1 &
  fi
  wait_for 30 mariadb mariadb --socket=/run/mysqld/mysqld.sock -e "select 1"
  # A fresh controller state restarts job ids at 1: drop old accounting so sacct never
  # reports a new job as an old, finished one.
  mariadb --socket=/run/mysqld/mysqld.sock <<SQL
DROP DATABASE IF EXISTS slurm_acct_db;
CREATE DATABASE slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'ftci';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
  mkdir -p /etc/slurm /var/spool/slurmd /var/log/slurm /run/slurm
  rm -rf /var/spool/slurmctld && mkdir -p /var/spool/slurmctld
  chown -R slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
  local node
  node=$(slurmd -C | head -1 | sed -E 's/ (UpTime|Boards)=[^ ]*//g; s/RealMemory=([0-9]+)/RealMemory=\1/')
  node=$(echo "$node" | sed -E "s/NodeName=[^ ]+/NodeName=$HOST NodeAddr=127.0.0.1/")
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobRequeue=1
KillWait=5
ReturnToService=2
MailProg=/bin/true
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=ftci
CommunicationParameters=NoInAddrAny
CONF
  chown slurm:slurm /etc/slurm/slurmdbd.conf
  chmod 600 /etc/slurm/slurmdbd.conf
}

start() {
  install
  mkdir -p "$STATE"
  stop quiet || true
  start_munge
  start_mariadb
  write_configs
  slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  slurmctld
  wait_for 30 slurmctld scontrol ping
  slurmd
  wait_for 60 "an idle node" bash -c "sinfo -h -o %T | grep -qx idle"
  log "up: $(sinfo -h -o '%P %D %T %C')"
}

stop() {
  for daemon in slurmd slurmctld slurmdbd; do
    local pidfile=/run/slurm/$daemon.pid
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    pkill -x "$daemon" 2>/dev/null || true
  done
  [ -s /run/mysqld/mysqld.pid ] && kill "$(cat /run/mysqld/mysqld.pid)" 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  for _ in $(seq 1 20); do
    local alive=0
    for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
      pgrep -x "$daemon" >/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  [ "${1:-}" = quiet ] || log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
