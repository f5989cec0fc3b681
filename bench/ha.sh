#!/usr/bin/env bash
# bench/ha.sh - `make bench-ha` (issue #17): bench/run.sh's tokenise-versus-pgbench ratio on a
# replicated cluster, where every commit also waits for the synchronous standby (Patroni,
# synchronous_mode strict: tests/ha/lib.sh), both measured against the same cluster in the same
# run:
#   1. pgbench -c CLIENTS -T SECS on the primary, one single-row INSERT of a token-sized row
#      per transaction (each one a commit that waits for the standby)
#   2. h2load POST /v1/tokens, CLIENTS x STREAMS, ~SECS s: every 201 checked against the rows
# and prints RATIO tokenise_vs_pgbench_sync_standby N (tokenisations/s over pgbench TPS).
# fsync is on (HA_FSYNC), as in bench/run.sh. Environment: BUILD, BENCH_SECONDS (10),
# BENCH_CLIENTS (32), BENCH_STREAMS (16), BENCH_DB_THREADS (2), KEEP_BENCH_DIR=1.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"
. tests/lib/pg.sh
. tests/lib/harness.sh
. tests/ha/lib.sh

SECS=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-32}
STREAMS=${BENCH_STREAMS:-16}
DB_THREADS=${BENCH_DB_THREADS:-2}
LOOP_THREADS=${BENCH_THREADS:-$(nproc 2>/dev/null || echo 2)}
say() { printf 'bench-ha: %s\n' "$*"; }
die() {
    printf 'bench-ha: FAILED: %s\n' "$*" >&2
    exit 1
}
for t in h2load patroni etcd; do
    command -v "$t" >/dev/null || die "$t is missing: run 'make ha-deps' and 'make deps'"
done

B_DIR=$(mktemp -d /tmp/tokend-bench-ha.XXXXXX)
chmod 0711 "$B_DIR"
TOKEND_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$TOKEND_PID" ] && { kill -TERM "$TOKEND_PID" 2>/dev/null; wait "$TOKEND_PID" 2>/dev/null; }
    ha_down
    if [ "${KEEP_BENCH_DIR:-}" = 1 ]; then say "kept $B_DIR"; else rm -rf "$B_DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Patroni cluster in $B_DIR (fsync on, synchronous_mode strict)"
HA_FSYNC=on ha_up "$B_DIR/ha" || die "the Patroni cluster did not come up"
L=$(ha_leader)
S=$(ha_standby)
lp="HA_PORT_$L"
ADMIN_DB="host=127.0.0.1 port=${!lp} user=postgres dbname=tokend"
ha_psql "$L" -qc "ALTER SYSTEM SET max_wal_size = '4GB'" -c "SELECT pg_reload_conf()" >/dev/null ||
    die "cannot raise max_wal_size"
"$BUILD/tokenctl" --db "$ADMIN_DB" migrate --dir sql >"$B_DIR/migrate.log" 2>&1 ||
    die "migrations failed: $(tail -n 3 "$B_DIR/migrate.log")"
make_master_key "$B_DIR/master.key"
CTL=("$BUILD/tokenctl" --db "$ADMIN_DB" --master-key-file "$B_DIR/master.key")
TENANT=$("${CTL[@]}" tenant create "bench-ha-$$" 2>/dev/null) || die "tenant create"
(umask 077 && "${CTL[@]}" key create --tenant "$TENANT" --scopes tokens:write --test >"$B_DIR/key" 2>/dev/null) ||
    die "key create"
AUTH_HEADER="authorization: Bearer $(cat "$B_DIR/key")"
NEXT_YEAR=$(($(date -u +%Y) + 1))
printf '{"card":{"number":"4242424242424242","exp_month":12,"exp_year":%s,"cvc":"123"},"metadata":{"order":"bench"}}' \
    "$NEXT_YEAR" >"$B_DIR/card.json"
say "primary $L, synchronous standby $S: $(ha_psql "$L" -tAc "SHOW synchronous_standby_names")"

PORT=$(free_port)
"$BUILD/tokend" --listen "127.0.0.1:$PORT" --listen-tls '' --master-key-file "$B_DIR/master.key" \
    --db "$(ha_conninfo tokend_service read-write)" --threads "$LOOP_THREADS" --db-threads "$DB_THREADS" \
    --rate-tokenise 1000000 --burst-tokenise 1000000 --log-level warn 2>>"$B_DIR/tokend.log" &
TOKEND_PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" 15 || die "tokend did not start: $(tail -n 5 "$B_DIR/tokend.log")"

# ---- 1. pgbench on the same cluster ------------------------------------------------------
say "1/2 pgbench -c $CLIENTS -T $SECS, one single-row INSERT per transaction, sync standby"
PGOPTIONS='-c client_min_messages=warning' ha_psql "$L" -qc "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.tokens;
    CREATE TABLE bench.tokens (LIKE vault.tokens INCLUDING ALL);" || die "cannot create bench.tokens"
cat >"$B_DIR/insert.sql" <<SQL
INSERT INTO bench.tokens (tenant_id, id, livemode, format, fingerprint, brand, last4, bin,
                          exp_month, exp_year, metadata, key_version, created_by)
VALUES ('$TENANT', 'tok_' || substr(md5(random()::text), 1, 22), false, 'opaque',
        sha256(convert_to(random()::text, 'UTF8')), 'visa', '4242', '424242', 12, $NEXT_YEAR,
        '{"order":"bench"}', 1, 'key_0123456789012345678901');
SQL
PGB_JOBS=$((CLIENTS < LOOP_THREADS ? CLIENTS : LOOP_THREADS))
timeout $((SECS + 60)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "${!lp}" -U postgres -n -c "$CLIENTS" \
    -j "$PGB_JOBS" -T "$SECS" -f "$B_DIR/insert.sql" tokend >"$B_DIR/pgbench.out" 2>&1 ||
    die "pgbench: $(tail -n 3 "$B_DIR/pgbench.out")"
PGBENCH_TPS=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$B_DIR/pgbench.out" | tail -n 1)

# ---- 2. tokenise --------------------------------------------------------------------------
rows() { ha_psql "$L" -tAc "SELECT count(*) FROM vault.tokens"; }
tokenise() { # N LOG
    timeout $((SECS * 6 + 60)) h2load -c "$CLIENTS" -m "$STREAMS" -t 1 -n "$1" -d "$B_DIR/card.json" \
        -H "$AUTH_HEADER" -H 'content-type: application/json' --log-file "$B_DIR/$2.tsv" \
        "http://127.0.0.1:$PORT/v1/tokens" >"$B_DIR/$2.out" 2>&1
}
rps_of() { sed -nE 's/^finished in [^,]*, ([0-9.]+) req\/s.*/\1/p' "$B_DIR/$1.out"; }
say "2/2 POST /v1/tokens, h2load -c $CLIENTS -m $STREAMS (warm-up, then ~${SECS}s)"
tokenise $((CLIENTS * STREAMS * 2)) warmup || die "h2load warm-up: $(tail -n 3 "$B_DIR/warmup.out")"
N=$(awk -v r="$(rps_of warmup)" -v s="$SECS" -v m=$((CLIENTS * STREAMS)) \
    'BEGIN { n = int(r * s); if (n < 2 * m) n = 2 * m; if (n > 300000) n = 300000; print n }')
ha_psql "$L" -qc "ANALYZE vault.tokens; ANALYZE audit.events" >/dev/null
R0=$(rows)
tokenise "$N" peak || die "h2load tokenise: $(tail -n 3 "$B_DIR/peak.out")"
R1=$(rows)
TOK_RPS=$(rps_of peak)
N201=$(awk '$2 == 201 {n++} END {print n + 0}' "$B_DIR/peak.tsv")
BAD=$(awk '$2 < 200 || $2 > 299 {n++} END {print n + 0}' "$B_DIR/peak.tsv")
SYNC=$(ha_psql "$L" -tAc "SELECT sync_state FROM pg_stat_replication" | tr '\n' ' ')
say "pgbench: ${PGBENCH_TPS:-?} tps; tokenise: ${TOK_RPS:-?} req/s, $N201 x 201, $BAD not 2xx," \
    "$((R1 - R0)) rows; the standby's state at the end: $SYNC"
[ "$BAD" = 0 ] || die "tokenise: $BAD answers were not 2xx"
[ "$((R1 - R0))" = "$N201" ] || die "tokenise: $((R1 - R0)) rows for $N201 answers 201"
echo "RATIO tokenise_vs_pgbench_sync_standby $(awk -v a="$TOK_RPS" -v b="$PGBENCH_TPS" \
    'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }')"
