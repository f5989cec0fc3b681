#!/usr/bin/env bash
# dev-run.sh - `make run`: a development tokend on this machine, with its own
# PostgreSQL cluster, keys and TLS certificate under ./var (created on first
# use, reused afterwards; `rm -rf var` starts over).
#
#   scripts/dev-run.sh            set up ./var if needed, start PostgreSQL,
#                                 migrate, start tokend in the foreground
#   scripts/dev-run.sh stop-db    stop the ./var cluster (make stop-db)
#
# Ctrl-C or SIGTERM stops tokend and then the database.
# Environment: BUILD (default build), DEV_LISTEN (127.0.0.1:8080),
# DEV_LISTEN_TLS (127.0.0.1:8443).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
DEV_LISTEN=${DEV_LISTEN:-127.0.0.1:8080}
DEV_LISTEN_TLS=${DEV_LISTEN_TLS:-127.0.0.1:8443}
DEV_TENANT_NAME=dev
DEV_KEY_SCOPES=tokens:write,tokens:read,charges:write,reports:read

. tests/lib/pg.sh
. tests/lib/harness.sh

VAR="$ROOT/var"
PG="$VAR/pg"

say() { printf 'dev-run: %s\n' "$*"; }
warn() { printf 'dev-run: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'dev-run: %s\n' "$*" >&2
    exit 1
}

if [ "${1:-}" = stop-db ]; then
    if [ -f "$PG/data/postmaster.pid" ]; then
        pg_stop "$PG"
        say "database stopped"
    else
        say "database is not running"
    fi
    exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [stop-db]"

for b in tokend tokenctl; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run 'make BUILD=$BUILD all' first"
done
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    die "PostgreSQL server binaries not found (run 'make deps')"
fi
# a unix socket path is limited to 107 bytes
[ ${#PG} -le 80 ] || die "the repository path is too long for PostgreSQL's socket ($PG/run); clone it somewhere shorter"

# ---- ./var, first use only ---------------------------------------------------------
if [ ! -d "$VAR" ]; then
    say "first run: creating ./var (cluster, master key, TLS certificate)"
fi
mkdir -p "$VAR"
if [ "$(id -u)" = 0 ]; then
    # the postgres user must reach its cluster inside, and read nothing else
    chmod 0711 "$VAR"
    d=$ROOT
    while [ "$d" != / ] && id postgres >/dev/null 2>&1; do
        runuser -u postgres -- test -x "$d" 2>/dev/null ||
            die "the postgres user cannot enter $d (needed for the cluster in ./var)"
        d=$(dirname "$d")
    done
else
    chmod 0700 "$VAR"
fi

if [ ! -f "$VAR/master.key" ]; then
    if [ -f "$VAR/dev-tenant" ]; then
        die "var/master.key is gone but the database holds keys wrapped by it: 'make stop-db && rm -rf var' to start over"
    fi
    make_master_key "$VAR/master.key"
fi
chmod 0600 "$VAR/master.key"
make_tls "$VAR" || die "cannot create a TLS certificate (openssl)"
[ -f "$VAR/tls.crt" ] || die "cannot create a TLS certificate (openssl)"
# fsync on: this cluster keeps its data between runs
pg_init "$PG" on || die "cannot create the PostgreSQL cluster in $PG (see $PG/initdb.log)"

# ---- the unprivileged user tokend runs as (issue #15, finding 9) -------------------
# Started as root (CI, containers), tokend itself runs as the system user
# DEV_TOKEND_USER (default tokend): a compromise of the process is not root's, and
# it owns only its key files. setpriv execs in place, so Ctrl-C still reaches it.
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    TOKEND_USER=${DEV_TOKEND_USER:-tokend}
    if ! id "$TOKEND_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$TOKEND_USER" || die "cannot create the system user $TOKEND_USER"
        say "created the system user $TOKEND_USER (tokend runs as it)"
    fi
    d=$ROOT
    while [ "$d" != / ]; do
        setpriv --reuid="$TOKEND_USER" --regid="$TOKEND_USER" --clear-groups test -x "$d" 2>/dev/null ||
            die "the $TOKEND_USER user cannot enter $d (needed to run $BUILD/tokend)"
        d=$(dirname "$d")
    done
    chown "$TOKEND_USER:" "$VAR/master.key" "$VAR/tls.key"
    # the cluster's socket: reachable through var/pg/run by postgres and this user only
    # (trust authentication relies on that directory, not on the socket's own mode)
    grep -qx "unix_socket_permissions = 0777" "$PG/data/postgresql.conf" ||
        echo "unix_socket_permissions = 0777" >>"$PG/data/postgresql.conf"
    chgrp "$TOKEND_USER" "$PG/run"
    chmod 0710 "$PG/run"
    # libsodium locks card and key memory: the root shell lifts the limit the user inherits
    ulimit -l unlimited 2>/dev/null || warn "cannot raise RLIMIT_MEMLOCK: tokend may refuse cards under load"
    RUN_AS=(setpriv --reuid="$TOKEND_USER" --regid="$TOKEND_USER" --clear-groups --)
fi

# ---- PostgreSQL ------------------------------------------------------------------
TOKEND_PID=
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$TOKEND_PID" ] && kill -0 "$TOKEND_PID" 2>/dev/null; then
        kill -TERM "$TOKEND_PID" 2>/dev/null || true
        local _
        for _ in $(seq 1 100); do
            kill -0 "$TOKEND_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$TOKEND_PID" 2>/dev/null || true
        wait "$TOKEND_PID" 2>/dev/null || true
    fi
    if [ -f "$PG/data/postmaster.pid" ]; then
        say "stopping the database"
        pg_stop "$PG"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if pg_as "$PG_BIN/pg_ctl" -D "$PG/data" status >/dev/null 2>&1 && [ ${#RUN_AS[@]} -gt 0 ] &&
    [ "$(stat -c %a "$PG"/run/.s.PGSQL.* 2>/dev/null | head -n 1)" != 777 ]; then
    say "restarting the database so $TOKEND_USER can reach its socket"
    pg_stop "$PG"
fi
if pg_as "$PG_BIN/pg_ctl" -D "$PG/data" status >/dev/null 2>&1; then
    say "database already running: reusing it"
else
    pg_start "$PG" || {
        tail -n 20 "$PG/postgres.log" >&2 2>/dev/null || true
        die "PostgreSQL did not start (log: var/pg/postgres.log)"
    }
fi
pg_createdb "$PG" || die "cannot create the tokend database"
ADMIN_DB=$(pg_conninfo "$PG" postgres)
SERVICE_DB=$(pg_conninfo "$PG" tokend_service)
"$BUILD/tokenctl" --db "$ADMIN_DB" migrate --dir sql || die "migrations failed"

# ---- dev tenant and test key, first use only -----------------------------------------
# ctl OUT ARGS...: tokenctl with the owner role and the master key; stdout to OUT (0600)
ctl() {
    local out=$1
    shift
    (umask 077 && "$BUILD/tokenctl" --db "$ADMIN_DB" --master-key-file "$VAR/master.key" "$@" \
        >"$out" 2>"$VAR/tokenctl.err")
}

setup_dev_key() {
    local tenant rc=0
    if [ -s "$VAR/dev-tenant" ]; then
        tenant=$(cat "$VAR/dev-tenant")
    else
        ctl "$VAR/dev-tenant.tmp" tenant create "$DEV_TENANT_NAME" || rc=$?
        tenant=$(tr -d '[:space:]' <"$VAR/dev-tenant.tmp" 2>/dev/null || true)
        rm -f "$VAR/dev-tenant.tmp"
        if [ "$rc" -ne 0 ] || [[ ! "$tenant" =~ ^ten_[0-9A-Za-z]{22}$ ]]; then
            # a previous run may have created it and stopped before saving its id
            tenant=$(pg_psql "$PG" -tAc "SELECT id FROM vault.tenants WHERE name = '$DEV_TENANT_NAME'" 2>/dev/null || true)
        fi
        if [[ ! "$tenant" =~ ^ten_[0-9A-Za-z]{22}$ ]]; then
            die "'tokenctl tenant create' failed (exit $rc): $(head -c 300 "$VAR/tokenctl.err" 2>/dev/null)"
        fi
        printf '%s\n' "$tenant" >"$VAR/dev-tenant"
        say "created dev tenant $tenant"
    fi

    rc=0
    ctl "$VAR/dev-key.tmp" key create --tenant "$tenant" --scopes "$DEV_KEY_SCOPES" --test || rc=$?
    # checked in place: the secret is never held in a variable or printed
    if [ "$rc" -ne 0 ] || [ "$(grep -c "" "$VAR/dev-key.tmp")" -ne 1 ] ||
        ! grep -Eqx 'sk_test_[0-9A-Za-z]{43}' "$VAR/dev-key.tmp"; then
        rm -f "$VAR/dev-key.tmp"
        die "'tokenctl key create' failed (exit $rc): $(head -c 300 "$VAR/tokenctl.err" 2>/dev/null)"
    fi
    mv "$VAR/dev-key.tmp" "$VAR/dev-key"
    chmod 0600 "$VAR/dev-key"
    say "created a test API key for tenant $tenant (secret in var/dev-key, shown nowhere else)"
}
if [ ! -s "$VAR/dev-key" ]; then
    setup_dev_key
fi
rm -f "$VAR/tokenctl.err"

# ---- tokend -----------------------------------------------------------------------
tls_port=${DEV_LISTEN_TLS##*:}
cat <<EOF

tokend $("$BUILD/tokend" --version | awk '{print $2}') - development instance (data in ./var; Ctrl-C stops tokend and the database)
  h2c (prior knowledge):  http://$DEV_LISTEN
  TLS (h2, http/1.1):     https://localhost:$tls_port   (self-signed: var/tls.crt)

Try, from $(pwd):
  curl --http2 -k https://localhost:$tls_port/healthz
  curl --http2-prior-knowledge http://$DEV_LISTEN/readyz
EOF
if [ -s "$VAR/dev-key" ]; then
    cat <<EOF
  curl --http2 -k https://localhost:$tls_port/v1/tokens \\
       -H "Authorization: Bearer \$(cat var/dev-key)" -H 'Content-Type: application/json' \\
       -d '{"card":{"number":"4242 4242 4242 4242","exp_month":12,"exp_year":2030,"cvc":"123"}}'
  # then charge the token it returned:
  curl --http2 -k https://localhost:$tls_port/v1/charges \\
       -H "Authorization: Bearer \$(cat var/dev-key)" -H 'Content-Type: application/json' \\
       -H 'Idempotency-Key: order-1' -d '{"token":"tok_...","amount":1999,"currency":"usd"}'
EOF
else
    echo "  (no dev API key yet, so no /v1/tokens example: see the warning above)"
fi
cat <<EOF

Stop with Ctrl-C. The database alone: make stop-db. Start over: make stop-db && rm -rf var

EOF

# In the background so this shell can forward Ctrl-C/SIGTERM and then stop the database.
"${RUN_AS[@]}" "$BUILD/tokend" --listen "$DEV_LISTEN" --listen-tls "$DEV_LISTEN_TLS" \
    --tls-cert "$VAR/tls.crt" --tls-key "$VAR/tls.key" \
    --master-key-file "$VAR/master.key" --db "$SERVICE_DB" &
TOKEND_PID=$!
rc=0
wait "$TOKEND_PID" || rc=$?
TOKEND_PID=
[ "$rc" -eq 0 ] || warn "tokend exited with status $rc"
exit "$rc"
