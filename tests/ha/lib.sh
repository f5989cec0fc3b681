# tests/ha/lib.sh - a Patroni cluster for the tests (issue #17): one etcd member, two
# PostgreSQL nodes managed by Patroni (a primary and a synchronous standby, strict by
# default), every port on loopback, everything in one temp dir that ha_down removes.
# Source it after tests/lib/pg.sh and tests/lib/harness.sh; needs ROOT and BUILD.
#
#   ha_up DIR            starts etcd and node1, node2; waits for a leader and a sync standby
#   ha_down              stops everything ha_up started (Patroni stops its PostgreSQL)
#   ha_leader / ha_standby  the name (node1 / node2) of the current leader / sync standby
#   ha_psql NODE ARGS    psql as postgres on NODE's tokend database (TCP)
#   ha_conninfo USER [attrs]  a multi-host conninfo over both nodes
#   ha_wait_sync [s]     until the cluster has a leader and a streaming sync standby
#
# Patroni's timings are small so that a failed primary is replaced within seconds:
# ttl 10, loop_wait 1, retry_timeout 5 (HA_TTL, HA_LOOP_WAIT, HA_RETRY_TIMEOUT).
# HA_STRICT=false relaxes synchronous_mode_strict (docs/replication.md). HA_ARCHIVE_MODE=on
# and HA_ARCHIVE_COMMAND (where @NODE@ is the node's name) archive the WAL (pgBackRest).

HA_SCOPE=tokend-ha
HA_PIDS=()

ha_as() { # runs a command as the postgres user when we are root (Patroni starts postgres)
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# ha_node_conf NAME REST_PORT PG_PORT
ha_node_conf() {
    local n=$1 rest=$2 port=$3 d="$HA_DIR/$1"
    mkdir -p "$d/run"
    cat >"$d/patroni.yml" <<YML
scope: $HA_SCOPE
name: $n
log:
  level: WARNING
  dir: $d
restapi:
  listen: 127.0.0.1:$rest
  connect_address: 127.0.0.1:$rest
etcd:
  host: 127.0.0.1:$HA_ETCD_PORT
bootstrap:
  dcs:
    ttl: ${HA_TTL:-10}
    loop_wait: ${HA_LOOP_WAIT:-1}
    retry_timeout: ${HA_RETRY_TIMEOUT:-5}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: ${HA_STRICT:-true}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: 'on'
        wal_log_hints: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 100
        shared_buffers: 64MB
        synchronous_commit: 'on'
        fsync: '${HA_FSYNC:-off}'
        wal_keep_size: 256MB
        archive_mode: '${HA_ARCHIVE_MODE:-off}'
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - auth: trust
postgresql:
  listen: 127.0.0.1:$port
  connect_address: 127.0.0.1:$port
  data_dir: $d/data
  bin_dir: $PG_BIN
  pgpass: $d/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
  parameters:
    unix_socket_directories: '$d/run'
    log_min_messages: warning
    archive_command: '${HA_ARCHIVE_COMMAND//@NODE@/$n}'
    archive_timeout: 5
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
YML
    eval "HA_REST_$n=$rest HA_PORT_$n=$port"
}

# ha_node_start NAME: starts (or restarts) the node's Patroni
ha_node_start() {
    local n=$1 d="$HA_DIR/$1"
    ha_as patroni "$d/patroni.yml" >>"$d/patroni.out" 2>&1 &
    eval "HA_PID_$n=$!"
    HA_PIDS+=($!)
}

# ha_node_stop NAME: stops the node's Patroni, which stops its PostgreSQL (fast)
ha_node_stop() {
    local v="HA_PID_$1" i
    local pid=${!v}
    [ -n "$pid" ] || return 0
    # runuser's child is patroni: signal the whole process group of that child
    pkill -TERM -P "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    wait "$pid" 2>/dev/null
    eval "HA_PID_$1="
}

ha_rest() { # ha_rest NAME PATH: the HTTP status of Patroni's REST endpoint
    local v="HA_REST_$1"
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${!v}$2"
}

ha_leader() {
    local n
    for n in node1 node2; do
        [ "$(ha_rest "$n" /leader)" = 200 ] && { echo "$n"; return 0; }
    done
    return 1
}

ha_standby() {
    local n
    for n in node1 node2; do
        [ "$(ha_rest "$n" /sync)" = 200 ] && { echo "$n"; return 0; }
    done
    return 1
}

ha_wait_sync() { # until a leader and a synchronous standby that streams (default 90 s)
    local deadline=$((SECONDS + ${1:-90}))
    while [ $SECONDS -lt $deadline ]; do
        local l s
        if l=$(ha_leader) && s=$(ha_standby) && [ "$l" != "$s" ]; then
            [ "$(HA_DB=postgres ha_psql "$l" -tAc "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'" 2>/dev/null)" = 1 ] &&
                return 0
        fi
        sleep 0.2
    done
    return 1
}

ha_psql() { # ha_psql NAME [psql args...]: as postgres on the node's tokend database (HA_DB)
    local v="HA_PORT_$1"
    shift
    PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${!v}" -U postgres \
        -d "${HA_DB:-tokend}" "$@"
}

ha_pm_pid() { head -n 1 "$HA_DIR/$1/data/postmaster.pid" 2>/dev/null; }

# ha_conninfo USER [target_session_attrs]: both nodes, the primary first found wins
ha_conninfo() {
    printf 'host=127.0.0.1,127.0.0.1 port=%s,%s user=%s dbname=tokend target_session_attrs=%s connect_timeout=2' \
        "$HA_PORT_node1" "$HA_PORT_node2" "$1" "${2:-read-write}"
}

ha_patronictl() { patronictl -c "$HA_DIR/node1/patroni.yml" "$@"; }

ha_up() {
    HA_DIR=$1
    HA_ARCHIVE_COMMAND=${HA_ARCHIVE_COMMAND:-/bin/true}
    mkdir -p "$HA_DIR/etcd"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown postgres: "$HA_DIR"
    fi
    chmod 0711 "$HA_DIR"
    HA_ETCD_PORT=$(free_port)
    local peer
    peer=$(free_port)
    etcd --name ha0 --data-dir "$HA_DIR/etcd/data" --enable-v2=true \
        --listen-client-urls "http://127.0.0.1:$HA_ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$HA_ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "ha0=http://127.0.0.1:$peer" --log-level warn \
        >"$HA_DIR/etcd/etcd.log" 2>&1 &
    HA_ETCD_PID=$!
    local i
    for i in $(seq 1 100); do
        curl -s --max-time 1 "http://127.0.0.1:$HA_ETCD_PORT/health" | grep -q true && break
        sleep 0.1
    done
    ha_node_conf node1 "$(free_port)" "$(free_port)"
    ha_node_conf node2 "$(free_port)" "$(free_port)"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$HA_DIR/node1" "$HA_DIR/node2"
    ha_node_start node1
    for i in $(seq 1 300); do
        [ "$(ha_rest node1 /leader)" = 200 ] && break
        sleep 0.1
    done
    ha_node_start node2
    ha_wait_sync 120 || { echo "ha: no leader with a synchronous standby" >&2; return 1; }
    HA_DB=postgres ha_psql "$(ha_leader)" -tAc "CREATE DATABASE tokend" >/dev/null
}

ha_down() {
    ha_node_stop node1
    ha_node_stop node2
    [ -n "${HA_ETCD_PID:-}" ] && { kill -TERM "$HA_ETCD_PID" 2>/dev/null; wait "$HA_ETCD_PID" 2>/dev/null; }
    # a postgres left behind (Patroni killed under it) is stopped here
    local n
    for n in node1 node2; do
        [ -f "$HA_DIR/$n/data/postmaster.pid" ] &&
            ha_as "$PG_BIN/pg_ctl" -D "$HA_DIR/$n/data" -m immediate -w -t 10 stop >/dev/null 2>&1
    done
    return 0
}
