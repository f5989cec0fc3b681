# pg.sh - a throwaway PostgreSQL cluster for tests, benchmarks and `make run`.
# Source it, then: pg_init DIR; pg_start DIR; pg_stop DIR. The cluster listens
# only on a unix socket in DIR/run (no TCP). initdb refuses to run as root, so
# as root the cluster belongs to the 'postgres' user.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

pg_as() {
    if [ "$(id -u)" = 0 ]; then
        # from /: postgres cannot start in a directory its user may not enter (a root-only checkout)
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# pg_init DIR [fsync on|off]: creates the cluster if DIR/data does not exist yet.
pg_init() {
    local dir=$1 fsync=${2:-off}
    mkdir -p "$dir/run"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown postgres: "$dir" "$dir/run"
        chmod 0755 "$dir"
    fi
    chmod 0700 "$dir/run" 2>/dev/null || true
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_as "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
        cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir/run'
unix_socket_permissions = 0700
fsync = $fsync
synchronous_commit = on
max_connections = 100
shared_buffers = 128MB
log_min_messages = warning
log_statement = 'none'
log_min_error_statement = panic
CONF
        # trust on the socket only: the socket directory is 0700, reachable by its owner (and root)
        printf 'local all all trust\n' >"$dir/data/pg_hba.conf"
        chown postgres: "$dir/data/pg_hba.conf" 2>/dev/null || true
    fi
}

pg_start() {
    local dir=$1
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start >/dev/null
}

pg_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# pg_conninfo DIR USER [DB]
pg_conninfo() {
    printf 'host=%s user=%s dbname=%s' "$1/run" "$2" "${3:-tokend}"
}

# pg_psql DIR [psql args...]: as the superuser, on the tokend database
pg_psql() {
    local dir=$1
    shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -U postgres -d tokend "$@"
}

pg_createdb() {
    local dir=$1
    "$PG_BIN/psql" -X -q -h "$dir/run" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'tokend'" | grep -q 1 ||
        "$PG_BIN/createdb" -h "$dir/run" -U postgres tokend
}
