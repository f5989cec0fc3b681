#!/usr/bin/env bash
# bench/run.sh - `make bench`: tokend against the ceilings of this machine, in
# ONE run, with the same client counts (see bench/README.md).
#
#   1. HTTP/2 ceiling      h2load GET /healthz (h2c)
#   2. durable writes      pgbench, one single-row INSERT of a token-sized row
#                          per transaction, same PostgreSQL (fsync on,
#                          synchronous_commit on)
#   3. tokenise            h2load POST /v1/tokens (sandbox gateway); every 201
#                          is checked against the rows in vault.tokens
#   4. latency             POST /v1/tokens at half the peak rate: p50 / p99
#                          (after 2 s at that rate, not counted); then the commit
#                          latency floors: pgbench -c 1, and -R at the same rate
#   5. 50 ms gateway       needs the gateway simulator and the stripe adapter
#                          (issue #5): run_gateway50ms below
#   6. export RSS          bench/export_rss.sh: 1,000,000 charges exported as CSV,
#                          EXPORT_1M_RSS_GROWTH_MB (BENCH_EXPORT_RSS=0 skips it)
#
# Starts its own PostgreSQL and tokend on free loopback ports and stops them on
# exit. Every step is bounded by a timeout and the whole run by a watchdog.
# Environment: BUILD (build), BENCH_SECONDS (10), BENCH_CLIENTS (32),
# BENCH_STREAMS (16), BENCH_DB_THREADS (2), BENCH_DB_BATCH_MAX (256),
# BENCH_DB_WINDOW_US (0), BENCH_THREADS (CPUs), BENCH_PROFILE=1 (perf record
# the whole machine during the tokenise run, =tokend: tokend only; report in
# the bench dir, kept),
# KEEP_BENCH_DIR=1, BENCH_LATENCY_RPS (the latency run's rate; default half
# the peak), BENCH_LOG_LEVEL (tokend's; default warn), BENCH_WAL_PREFILL_MB
# (1536: WAL segments created before the run).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"
. tests/lib/pg.sh
. tests/lib/harness.sh

SECS=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-32}
STREAMS=${BENCH_STREAMS:-16}
DB_THREADS=${BENCH_DB_THREADS:-2}
DB_BATCH_MAX=${BENCH_DB_BATCH_MAX:-256}
DB_WINDOW_US=${BENCH_DB_WINDOW_US:-0}
LOOP_THREADS=${BENCH_THREADS:-$(nproc 2>/dev/null || echo 2)}
DEADLINE=${BENCH_DEADLINE:-570} # seconds; make bench must finish in under 10 minutes

say() { printf 'bench: %s\n' "$*"; }
die() {
    printf 'bench: FAILED: %s\n' "$*" >&2
    exit 1
}

for b in tokend tokenctl; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run 'make BUILD=$BUILD all' first"
done
for t in h2load pgbench; do
    command -v "$t" >/dev/null || die "$t is missing: run 'make deps' (nghttp2-client, postgresql-contrib)"
done
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found (make deps)"

B_DIR=$(mktemp -d /tmp/tokend-bench.XXXXXX)
chmod 0711 "$B_DIR" # the postgres user must reach its cluster inside
TOKEND_PID=
WATCHDOG_PID=
PERF_PID=
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null
    if [ -n "$TOKEND_PID" ] && kill -0 "$TOKEND_PID" 2>/dev/null; then
        kill -TERM "$TOKEND_PID" 2>/dev/null || true
        local _
        for _ in $(seq 1 100); do
            kill -0 "$TOKEND_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$TOKEND_PID" 2>/dev/null || true
        wait "$TOKEND_PID" 2>/dev/null || true
    fi
    pg_stop "$B_DIR/pg"
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    if [ "${KEEP_BENCH_DIR:-}" = 1 ] || [ -n "${BENCH_PROFILE:-}" ]; then
        say "kept $B_DIR"
    else
        rm -rf "$B_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'say "stopped (watchdog or SIGTERM)"; exit 143' TERM
# the watchdog: a stuck step cannot keep the bench running past the deadline
# (its own streams to /dev/null, and its sleep ends with it, so no pipe stays open)
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$DEADLINE" &
    sp=$!
    wait "$sp" && kill -TERM $$ 2>/dev/null
) </dev/null >/dev/null 2>&1 &
WATCHDOG_PID=$!

# ---- PostgreSQL, schema, tenant, key --------------------------------------------------
say "cluster in $B_DIR (fsync on, synchronous_commit on)"
# sized like a database server rather than the tests' throwaway clusters: a checkpoint
# or buffer eviction in the middle of a 10 s run would measure the cluster's defaults
# (128 MB of buffers, a checkpoint per 1 GB of WAL), for pgbench and tokend alike
pg_init "$B_DIR/pg" on && cat >>"$B_DIR/pg/data/postgresql.conf" <<CONF &&
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_buffers = 16MB
min_wal_size = 2GB
log_autovacuum_min_duration = 0
CONF
    pg_start "$B_DIR/pg" && pg_createdb "$B_DIR/pg" ||
    die "cannot start PostgreSQL (see $B_DIR/pg/postgres.log)"
# A server that has run a while writes its WAL into recycled segment files. A fresh
# cluster creates each 16 MB segment as it goes (zero-filled and synced while holding
# the WAL write lock): every commit waits 100-300 ms on this disk, once per ~8,000
# tokens, which measured the cluster's youth as tokend's p99. So create the segments
# the run will need now and let a checkpoint keep them for reuse (min_wal_size).
WAL_PREFILL=${BENCH_WAL_PREFILL_MB:-1536}
say "pre-creating ${WAL_PREFILL} MB of WAL segments for reuse (steady state)"
pg_psql "$B_DIR/pg" -qtA >/dev/null <<SQL || die "WAL prefill failed"
DO \$\$ BEGIN
    FOR i IN 1 .. $WAL_PREFILL / 16 LOOP
        PERFORM pg_logical_emit_message(false, 'bench', 'prefill'), pg_switch_wal();
    END LOOP;
END \$\$;
CHECKPOINT;
SELECT pg_logical_emit_message(false, 'bench', 'prefill'), pg_switch_wal();
CHECKPOINT;
SQL
ADMIN_DB=$(pg_conninfo "$B_DIR/pg" postgres)
SERVICE_DB=$(pg_conninfo "$B_DIR/pg" tokend_service)
"$BUILD/tokenctl" --db "$ADMIN_DB" migrate --dir sql >"$B_DIR/migrate.log" 2>&1 ||
    die "migrations failed: $(tail -n 3 "$B_DIR/migrate.log")"
make_tls "$B_DIR"
make_master_key "$B_DIR/master.key"
CTL=("$BUILD/tokenctl" --db "$ADMIN_DB" --master-key-file "$B_DIR/master.key")
TENANT=$("${CTL[@]}" tenant create "bench-$$" 2>"$B_DIR/ctl.err") || die "tenant create: $(cat "$B_DIR/ctl.err")"
(umask 077 && "${CTL[@]}" key create --tenant "$TENANT" --scopes tokens:write,tokens:read --test \
    >"$B_DIR/key" 2>"$B_DIR/ctl.err") || die "key create: $(cat "$B_DIR/ctl.err")"
grep -Eqx 'sk_test_[0-9A-Za-z]{43}' "$B_DIR/key" || die "key create printed no key"
# the key is a throwaway test key of a throwaway database; it never reaches the output
AUTH_HEADER="authorization: Bearer $(cat "$B_DIR/key")"
NEXT_YEAR=$(($(date -u +%Y) + 1))
printf '{"card":{"number":"4242424242424242","exp_month":12,"exp_year":%s,"cvc":"123"},"metadata":{"order":"bench"}}' \
    "$NEXT_YEAR" >"$B_DIR/card.json"

# ---- tokend ------------------------------------------------------------------------
# The bench drives ONE key at 20-30k tokenisations/s, far past the default per-key limit
# (100/s, burst 500: a production budget, README "Configuration"). The limits stay on, at
# their largest, so every request still pays for the shared bucket (issue #15, finding 3).
RATE_LIMITS=(--rate-tokenise 1000000 --burst-tokenise 1000000 --rate-charge 1000000 --burst-charge 1000000)
PORT=$(free_port)
"$BUILD/tokend" --listen "127.0.0.1:$PORT" --listen-tls '' \
    --master-key-file "$B_DIR/master.key" --db "$SERVICE_DB" --threads "$LOOP_THREADS" \
    --gateway-ca-file "$B_DIR/tls.crt" \
    --db-threads "$DB_THREADS" --db-batch-max "$DB_BATCH_MAX" --db-batch-window-us "$DB_WINDOW_US" \
    "${RATE_LIMITS[@]}" --log-level "${BENCH_LOG_LEVEL:-warn}" 2>>"$B_DIR/tokend.log" &
TOKEND_PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" 15 || die "tokend did not start: $(tail -n 5 "$B_DIR/tokend.log")"
URL="http://127.0.0.1:$PORT"
say "tokend pid $TOKEND_PID on 127.0.0.1:$PORT: --threads $LOOP_THREADS --db-threads $DB_THREADS" \
    "--db-batch-max $DB_BATCH_MAX --db-batch-window-us $DB_WINDOW_US; $CLIENTS clients x $STREAMS streams, ${SECS}s runs"

# ---- helpers -----------------------------------------------------------------------
# h2load_field OUT WHAT: req/s, 2xx, non2xx, succeeded, failed, errored
h2load_field() {
    local f=$1
    case $2 in
    rps) sed -nE 's/^finished in [^,]*, ([0-9.]+) req\/s.*/\1/p' "$f" ;;
    2xx) sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$f" ;;
    non2xx) sed -nE 's/^status codes: [0-9]+ 2xx, ([0-9]+) 3xx, ([0-9]+) 4xx, ([0-9]+) 5xx.*/\1 \2 \3/p' "$f" |
        awk '{print $1 + $2 + $3}' ;;
    done) sed -nE 's/^requests: .* ([0-9]+) done.*/\1/p' "$f" ;;
    failed) sed -nE 's/^requests: .*, ([0-9]+) failed, ([0-9]+) errored, ([0-9]+) timeout.*/\1 \2 \3/p' "$f" |
        awk '{print $1 + $2 + $3}' ;;
    esac
}

rows() { pg_psql "$B_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens"; }
# cpu_ticks PID...: user + system clock ticks of the processes so far
cpu_ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
pg_cpu_ticks() { # of the postmaster and its backends
    local pids
    read -ra pids <<<"$(pg_pids)"
    cpu_ticks "${pids[@]}"
}
pg_pids() { # the postmaster and its backends
    local pm
    pm=$(head -n 1 "$B_DIR/pg/data/postmaster.pid" 2>/dev/null) || return 0
    echo "$pm $(ps -o pid= --ppid "$pm" 2>/dev/null | tr '\n' ' ')"
}
us_per() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "nan" }'; }
rss_hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$TOKEND_PID/status" 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
FAILS=()
check() { # NAME CONDITION-RESULT(0/1)
    if [ "$2" = 0 ]; then say "check ok:   $1"; else say "check FAIL: $1"; FAILS+=("$1"); fi
}

# tokenise N RPS_PER_CLIENT LOG: POST /v1/tokens N times; leaves the h2load output in $B_DIR/$LOG.out
tokenise() {
    local n=$1 rps=$2 log=$3 extra=()
    [ "$rps" != 0 ] && extra=(--rps "$rps")
    timeout $((SECS * 6 + 60)) h2load -c "$CLIENTS" -m "$STREAMS" -t 1 -n "$n" "${extra[@]}" \
        -d "$B_DIR/card.json" -H "$AUTH_HEADER" -H 'content-type: application/json' \
        --log-file "$B_DIR/$log.tsv" "$URL/v1/tokens" >"$B_DIR/$log.out" 2>&1
}
count_status() { awk -v s="$2" '$2 == s {n++} END {print n + 0}' "$B_DIR/$1.tsv"; }
count_not2xx() { awk '$2 < 200 || $2 > 299 {n++} END {print n + 0}' "$B_DIR/$1.tsv"; }

# ---- 1. HTTP/2 ceiling: GET /healthz ----------------------------------------------------
say "1/4 GET /healthz, h2load -c $CLIENTS -m $STREAMS -D $SECS"
timeout $((SECS + 60)) h2load -c "$CLIENTS" -m "$STREAMS" -t 1 -D "$SECS" --warm-up-time 1 \
    "$URL/healthz" >"$B_DIR/healthz.out" 2>&1 || die "h2load /healthz: $(tail -n 3 "$B_DIR/healthz.out")"
HEALTHZ_RPS=$(h2load_field "$B_DIR/healthz.out" rps)
HEALTHZ_NON2XX=$(h2load_field "$B_DIR/healthz.out" non2xx)
check "healthz: no non-2xx (${HEALTHZ_NON2XX:-?})" "$([ "${HEALTHZ_NON2XX:-1}" = 0 ]; echo $?)"

# ---- 2. durable-write ceiling: pgbench, one INSERT per commit -------------------------------
say "2/4 pgbench -c $CLIENTS -T $SECS, one single-row INSERT per transaction"
pg_psql "$B_DIR/pg" -c "CREATE SCHEMA IF NOT EXISTS bench;
    DROP TABLE IF EXISTS bench.tokens;
    CREATE TABLE bench.tokens (LIKE vault.tokens INCLUDING ALL);" || die "cannot create bench.tokens"
cat >"$B_DIR/insert.sql" <<SQL
INSERT INTO bench.tokens (tenant_id, id, livemode, format, fingerprint, brand, last4, bin,
                          exp_month, exp_year, metadata, key_version, created_by)
VALUES ('$TENANT', 'tok_' || substr(md5(random()::text), 1, 22), false, 'opaque',
        sha256(convert_to(random()::text, 'UTF8')), 'visa', '4242', '424242', 12, $NEXT_YEAR,
        '{"order":"bench"}', 1, 'key_0123456789012345678901');
SQL
PGB_JOBS=$((CLIENTS < LOOP_THREADS ? CLIENTS : LOOP_THREADS))
timeout $((SECS + 60)) "$PG_BIN/pgbench" -h "$B_DIR/pg/run" -U postgres -n -c "$CLIENTS" -j "$PGB_JOBS" \
    -T "$SECS" -f "$B_DIR/insert.sql" tokend >"$B_DIR/pgbench.out" 2>&1 ||
    die "pgbench: $(tail -n 3 "$B_DIR/pgbench.out")"
PGBENCH_TPS=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$B_DIR/pgbench.out" | tail -n 1)
PGBENCH_FAILED=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$B_DIR/pgbench.out")
check "pgbench: no failed transactions (${PGBENCH_FAILED:-0})" "$([ "${PGBENCH_FAILED:-0}" = 0 ]; echo $?)"

# ---- 3. tokenise: peak ---------------------------------------------------------------
say "3/4 POST /v1/tokens, h2load -c $CLIENTS -m $STREAMS (warm-up, then ~${SECS}s at the measured rate)"
tokenise $((CLIENTS * STREAMS * 4)) 0 warmup || die "h2load warm-up: $(tail -n 3 "$B_DIR/warmup.out")"
WARM_RPS=$(h2load_field "$B_DIR/warmup.out" rps)
N=$(awk -v r="${WARM_RPS:-0}" -v s="$SECS" -v m=$((CLIENTS * STREAMS)) \
    'BEGIN { n = int(r * s); if (n < 4 * m) n = 4 * m; if (n > 300000) n = 300000; print n }')
# fresh tables: let the planner see their size once (production tables are
# analysed by autovacuum long before; a plan made for an empty table would
# otherwise measure the planner, not tokend)
pg_psql "$B_DIR/pg" -c "ANALYZE vault.tokens; ANALYZE vault.gateway_refs; ANALYZE audit.events" ||
    die "ANALYZE failed"
ROWS_BEFORE=$(rows)
if [ -n "${BENCH_PROFILE:-}" ] && command -v perf >/dev/null; then
    PERF_WHAT=(-a)
    [ "$BENCH_PROFILE" = tokend ] && PERF_WHAT=(-p "$TOKEND_PID")
    perf record -F 999 -e cpu-clock -g "${PERF_WHAT[@]}" -o "$B_DIR/perf.data" >"$B_DIR/perf.log" 2>&1 &
    PERF_PID=$!
fi
CPU_T0=$(cpu_ticks "$TOKEND_PID")
CPU_P0=$(pg_cpu_ticks)
tokenise "$N" 0 peak || die "h2load tokenise: $(tail -n 3 "$B_DIR/peak.out")"
CPU_T1=$(cpu_ticks "$TOKEND_PID")
CPU_P1=$(pg_cpu_ticks)
if [ -n "$PERF_PID" ]; then
    kill -INT "$PERF_PID" 2>/dev/null
    wait "$PERF_PID" 2>/dev/null
    PERF_PID=
    perf report -i "$B_DIR/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -v '^$' | head -n 60 >"$B_DIR/perf.top"
    say "profile: $B_DIR/perf.top"
fi
ROWS_AFTER=$(rows)
RSS_KB=$(rss_hwm_kb) # again after step 4, if tokend is still there
TOK_RPS=$(h2load_field "$B_DIR/peak.out" rps)
TOK_201=$(count_status peak 201)
TOK_BAD=$(count_not2xx peak)
TOK_DONE=$(wc -l <"$B_DIR/peak.tsv")
TOK_ROWS=$((ROWS_AFTER - ROWS_BEFORE))
TOK_CPU_US=$(us_per $((CPU_T1 - CPU_T0)) "$TOK_DONE")
PG_CPU_US=$(us_per $((CPU_P1 - CPU_P0)) "$TOK_DONE")
check "tokenise: $N requests answered ($TOK_DONE)" "$([ "$TOK_DONE" = "$N" ]; echo $?)"
check "tokenise: zero non-2xx ($TOK_BAD)" "$([ "$TOK_BAD" = 0 ]; echo $?)"
check "tokenise: rows in vault.tokens ($TOK_ROWS) == 201s ($TOK_201)" "$([ "$TOK_ROWS" = "$TOK_201" ]; echo $?)"

# ---- 4. latency at half the peak rate ------------------------------------------------------
HALF=${BENCH_LATENCY_RPS:-$(awk -v r="$TOK_RPS" 'BEGIN { printf "%d", r / 2 }')}
PER_CLIENT=$(awk -v h="$HALF" -v c="$CLIENTS" 'BEGIN { v = int(h / c + 0.5); print v < 1 ? 1 : v }')
N_LAT=$((PER_CLIENT * CLIENTS * SECS))
say "4/4 POST /v1/tokens at half the peak: --rps $PER_CLIENT x $CLIENTS clients = $((PER_CLIENT * CLIENTS))/s, $N_LAT requests"
ROWS_BEFORE=$(rows)
# 2 s at the same rate first, not measured: the peak run leaves a backlog behind it (the
# audit chainer's, autovacuum's, dirty buffers) that the first second would otherwise count
N_LAT_WARM=$((PER_CLIENT * CLIENTS * 2))
tokenise "$N_LAT_WARM" "$PER_CLIENT" half-warmup || die "h2load latency warm-up: $(tail -n 3 "$B_DIR/half-warmup.out")"
tokenise "$N_LAT" "$PER_CLIENT" half || die "h2load latency: $(tail -n 3 "$B_DIR/half.out")"
ROWS_AFTER=$(rows)
LAT_RPS=$(h2load_field "$B_DIR/half.out" rps)
LAT_201=$(($(count_status half 201) + $(count_status half-warmup 201)))
LAT_BAD=$(($(count_not2xx half) + $(count_not2xx half-warmup)))
check "latency run: zero non-2xx ($LAT_BAD)" "$([ "$LAT_BAD" = 0 ]; echo $?)"
check "latency run: rows ($((ROWS_AFTER - ROWS_BEFORE))) == 201s ($LAT_201)" \
    "$([ "$((ROWS_AFTER - ROWS_BEFORE))" = "$LAT_201" ]; echo $?)"
# the third column of h2load's log: microseconds from request start to end of response
read -r P50 P90 P99 PMAX < <(awk '{print $3}' "$B_DIR/half.tsv" | sort -n | awk '
    { v[NR] = $1 }
    function pct(p,  i) { i = int(NR * p + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
    END { if (NR == 0) print "nan nan nan nan"; else printf "%.2f %.2f %.2f %.2f\n", pct(0.5), pct(0.9), pct(0.99), v[NR] / 1000 }')

# Floors under those figures, from pgbench's per-transaction log (latency counted from the
# scheduled start, like h2load's): one client committing one single-row INSERT at a time
# (what one durable commit costs on this disk and these CPUs), and the same rate as the run
# above with one commit per request (what tokend would see without group commit).
pgb_latency() { # NAME PGBENCH-ARGS...: prints "p50 p99 tps"
    local name=$1
    shift
    rm -f "$B_DIR/$name".*
    (cd "$B_DIR" && timeout $((SECS + 60)) "$PG_BIN/pgbench" -h "$B_DIR/pg/run" -U postgres -n -T "$SECS" \
        -l --log-prefix="$name" -f "$B_DIR/insert.sql" "$@" tokend >"$B_DIR/$name.out" 2>&1) ||
        die "pgbench $*: $(tail -n 3 "$B_DIR/$name.out")"
    cat "$B_DIR/$name".[0-9]* | awk '{print $3}' | sort -n | awk -v tps="$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$B_DIR/$name.out" | tail -n 1)" '
        { v[NR] = $1 }
        function pct(p,  i) { i = int(NR * p + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
        END { if (NR == 0) print "nan nan nan"; else printf "%.2f %.2f %.0f\n", pct(0.5), pct(0.99), tps }'
}
say "4b pgbench -c 1, then -R $((PER_CLIENT * CLIENTS)) -c $CLIENTS: commit latency floors"
read -r F1_50 F1_99 F1_TPS < <(pgb_latency pgb_one -c 1)
read -r FR_50 FR_99 FR_TPS < <(pgb_latency pgb_rate -c "$CLIENTS" -j "$PGB_JOBS" -R "$((PER_CLIENT * CLIENTS))")

# ---- 5. 50 ms gateway: Little's law -------------------------------------------------------
# Runs when the gateway simulator (BUILD/gwsim) exists: it serves h2 over TLS,
# like Stripe, and a tenant of its own has a stripe gateway at it. 1,000
# concurrent streams through a gateway adding 50 ms allow 1000 / 0.05 = 20,000
# tokenisations/s (Little's law).
run_gateway50ms() {
    if [ ! -f "$BUILD/gwsim" ] || [ ! -x "$BUILD/gwsim" ]; then
        echo "RATIO gateway50ms_vs_littles_law SKIPPED (build/gwsim is missing)"
        return 0
    fi
    local gwport pid rps hwm0 hwm key tenant i ready="$B_DIR/gwsim.ready"
    gwport=$(free_port)
    "$BUILD/gwsim" --listen "127.0.0.1:$gwport" --latency-ms 50 --tls-cert "$B_DIR/tls.crt" \
        --tls-key "$B_DIR/tls.key" --stripe-key sk_test_bench50 --ready-file "$ready" \
        --log-level warn >"$B_DIR/gwsim.log" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do [ -f "$ready" ] && break; sleep 0.05; done
    # a tenant of its own whose only gateway is the stripe adapter at the simulator
    tenant=$("${CTL[@]}" tenant create "bench-gw-$$" 2>>"$B_DIR/gw.log")
    (umask 077 && printf '{"api_key":"sk_test_bench50"}' >"$B_DIR/gw-cred.json")
    "${CTL[@]}" gateway add --tenant "$tenant" --kind stripe --credentials-file "$B_DIR/gw-cred.json" \
        --base-url "https://localhost:$gwport" >>"$B_DIR/gw.log" 2>&1
    key=$("${CTL[@]}" key create --tenant "$tenant" --scopes tokens:write --test 2>>"$B_DIR/gw.log")
    hwm0=$(rss_hwm_kb)
    local rows0 t0 p0
    rows0=$(rows)
    t0=$(cpu_ticks "$TOKEND_PID")
    p0=$(pg_cpu_ticks)
    # 1,000 concurrent streams: 100 connections x 10 streams
    timeout $((SECS * 4 + 60)) h2load -c 100 -m 10 -t 1 -D "$SECS" --warm-up-time 1 -d "$B_DIR/card.json" \
        -H "authorization: Bearer $key" -H 'content-type: application/json' \
        "$URL/v1/tokens" >"$B_DIR/gw50.out" 2>&1
    # how tokend reached the simulator: connections opened, calls per HTTP version
    local conns
    conns=$(curl -s --max-time 5 --cacert "$B_DIR/tls.crt" "https://localhost:$gwport/__gwsim/stats" |
        jq -r '"\(.connections_accepted) connections, \(.requests_by_version.http2) calls over h2, \(.requests_by_version.http1) over http/1.1"' 2>/dev/null)
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    # CPU per stored token (warm-up included in both): where the 2 CPUs go
    local stored cpu
    stored=$(($(rows) - rows0))
    cpu=$(awk -v t=$(($(cpu_ticks "$TOKEND_PID") - t0)) -v p=$(($(pg_cpu_ticks) - p0)) \
        -v n="$stored" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "tokend %.0f us, postgres %.0f us", t * 1e6 / hz / n, p * 1e6 / hz / n }')
    rps=$(h2load_field "$B_DIR/gw50.out" rps)
    hwm=$(rss_hwm_kb)
    local bad
    bad=$(h2load_field "$B_DIR/gw50.out" non2xx)
    echo "gateway50ms: ${rps:-?} tokenisations/s through a 50 ms gateway, 1000 streams; non-2xx ${bad:-?}; VmHWM ${hwm0} -> ${hwm} kB"
    echo "gateway50ms: simulator saw ${conns:-?} (one of them the stats call)"
    echo "gateway50ms: CPU per stored token: ${cpu:-?} ($stored tokens)"
    check "gateway50ms: zero non-2xx (${bad:-?})" "$([ "${bad:-1}" = 0 ] && echo 0 || echo 1)"
    GW_RSS_KB=$hwm
    echo "RATIO gateway50ms_vs_littles_law $(ratio "${rps:-0}" 20000)"
}

# ---- report ------------------------------------------------------------------------
kill -0 "$TOKEND_PID" 2>/dev/null || check "tokend still running after the runs" 1
RSS_NOW=$(rss_hwm_kb)
[ -n "$RSS_NOW" ] && RSS_KB=$RSS_NOW
cat <<EOF

== raw figures ($(nproc) CPUs, ${SECS}s runs, $CLIENTS clients x $STREAMS streams) ==
healthz:           $HEALTHZ_RPS req/s   (non-2xx $HEALTHZ_NON2XX)
pgbench insert:    $PGBENCH_TPS tps     (one INSERT per commit, -c $CLIENTS -j $PGB_JOBS)
tokenise peak:     $TOK_RPS req/s   ($N requests, $TOK_201 x 201, non-2xx $TOK_BAD, rows +$TOK_ROWS)
tokenise cpu:      tokend $TOK_CPU_US us + postgres $PG_CPU_US us of CPU per tokenisation (peak run)
tokenise half:     $LAT_RPS req/s   (target $((PER_CLIENT * CLIENTS))/s after a 2 s warm-up at that rate; both: $LAT_201 x 201, non-2xx $LAT_BAD)
latency at half:   p50 $P50 ms, p90 $P90 ms, p99 $P99 ms, max $PMAX ms
commit latency:    p50 $F1_50 ms, p99 $F1_99 ms (pgbench -c 1: one INSERT per commit, one at a time, $F1_TPS tps)
                   p50 $FR_50 ms, p99 $FR_99 ms (pgbench -c $CLIENTS -R $((PER_CLIENT * CLIENTS)): one commit per request at the same rate, $FR_TPS tps)
tokend VmHWM:      $RSS_KB kB
EOF
echo
echo "RATIO tokenise_vs_pgbench_single_insert $(ratio "$TOK_RPS" "$PGBENCH_TPS")"
echo "RATIO tokenise_vs_healthz $(ratio "$TOK_RPS" "$HEALTHZ_RPS")"
run_gateway50ms
RSS_NOW=$(rss_hwm_kb) # VmHWM: the peak, now including the 50 ms gateway run
[ -n "$RSS_NOW" ] && RSS_KB=$RSS_NOW
echo "LATENCY_P50_MS $P50"
echo "LATENCY_P99_MS $P99"
echo "COMMIT_LATENCY_P99_MS $F1_99"
echo "PEAK_RSS_MB $(awk -v k="${RSS_KB:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"
# 6. memory during a 1,000,000-row CSV export (its own cluster and tokend; ~25 s; BENCH_EXPORT_RSS=0 skips)
if [ "${BENCH_EXPORT_RSS:-1}" = 1 ]; then
    BUILD="$BUILD" timeout 180 bench/export_rss.sh 2>&1 | tee "$B_DIR/export_rss.out"
    check "export of 1,000,000 rows: RSS within 20 MB of idle" "${PIPESTATUS[0]}"
fi
if [ ${#FAILS[@]} -gt 0 ]; then
    say "FAILED checks: ${FAILS[*]}"
    exit 1
fi
say "all checks passed"
