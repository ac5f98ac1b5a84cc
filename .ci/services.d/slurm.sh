# shellcheck shell=bash
# A one-node SLURM cluster on this machine, for the cluster tests (tests/trainers/test_lightning_cluster.py):
# Debian's slurm-wlm and munge, a slurm.conf written for this host, and munged, slurmctld and slurmd
# started as daemons. Jobs run as root. Sourced by .ci/services (which provides need_packages and SUDO).
#
# Safe to run again and beside a second run of the suite: one lock serialises the set-up (the
# install included), the configuration is rewritten only when it changed, and a daemon is started
# only when it does not answer, so two suites share one cluster. The node announces SLURM_NODE_CPUS
# CPU slots (16 by default, more than this machine's cores, through SlurmdParameters=config_overrides)
# so that the jobs of two suites can run at the same time; the tests' processes use one thread each.
# proctrack/linuxproc and task/none need no cgroups, so the daemons start in seconds in a container.

_slurm_node_cpus="${SLURM_NODE_CPUS:-16}"
_slurm_lock=/run/lock/neuromancer-ci-slurm.lock

# _slurm_config HOST: the slurm.conf of the one-node cluster on HOST.
_slurm_config() {
    cat <<CONF
# Written by .ci/services.d/slurm.sh: a one-node cluster for the test suite.
ClusterName=neuromancer-ci
SlurmctldHost=$1
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits for the credential lifetime before it starts again: 120 s by default.
AuthInfo=cred_expire=20
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobRequeue=1
ReturnToService=2
KillWait=10
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$1 NodeAddr=127.0.0.1 CPUs=$_slurm_node_cpus RealMemory=4096 State=UNKNOWN
PartitionName=ci Nodes=$1 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

# _slurm_running munged|slurmctld|slurmd: whether that daemon answers.
_slurm_running() {
    case "$1" in
        munged) munge -n 2>/dev/null | unmunge >/dev/null 2>&1 ;;
        slurmctld) scontrol ping 2>/dev/null | grep -q "is UP" ;;
        slurmd) scontrol show slurmd >/dev/null 2>&1 ;;
    esac
}

_slurm_start() {
    local host config
    need_packages slurm-wlm munge
    host="$(hostname -s)"
    config="$(_slurm_config "$host")"

    if [ ! -s /etc/munge/munge.key ]; then
        "${SUDO[@]}" mungekey --create --keyfile=/etc/munge/munge.key
        "${SUDO[@]}" chown munge:munge /etc/munge/munge.key
        "${SUDO[@]}" chmod 0400 /etc/munge/munge.key
    fi
    if ! _slurm_running munged; then
        "${SUDO[@]}" install -d -o munge -g munge -m 0755 /run/munge
        "${SUDO[@]}" runuser -u munge -- /usr/sbin/munged
    fi

    "${SUDO[@]}" install -d -m 0755 /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$config" ]; then
        printf '%s\n' "$config" | "${SUDO[@]}" tee /etc/slurm/slurm.conf >/dev/null
        if _slurm_running slurmctld; then
            "${SUDO[@]}" scontrol reconfigure
        fi
    fi
    _slurm_running slurmctld || "${SUDO[@]}" slurmctld
    _slurm_running slurmd || "${SUDO[@]}" slurmd

    # Wait until the node takes jobs (seconds); report the logs if it never does.
    local attempt
    for attempt in $(seq 1 60); do
        if sinfo --noheader --nodes="$host" --format=%T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            return 0
        fi
        [ "$attempt" -eq 20 ] && "${SUDO[@]}" scontrol update nodename="$host" state=resume 2>/dev/null || true
        sleep 1
    done
    echo "slurm: node $host did not become ready; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
    sinfo >&2 || true
    return 1
}

"${SUDO[@]}" install -d -m 0755 /run/lock
exec {_slurm_lock_fd}>"$_slurm_lock"
flock "$_slurm_lock_fd"
_slurm_start
flock -u "$_slurm_lock_fd"
exec {_slurm_lock_fd}>&-
