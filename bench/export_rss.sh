#!/usr/bin/env bash
# bench/export_rss.sh - tokend's resident memory while it streams a 1,000,000-row CSV export
# (GET /v1/exports/charges?format=csv), against its idle size. Called at the end of
# bench/run.sh (BENCH_EXPORT_RSS=0 skips it); runs alone too: `BUILD=build bench/export_rss.sh`.
#
# Starts its own PostgreSQL (fsync off: the rows are inserted with one generate_series, this
# measures tokend, not the disk) and tokend with --reporting-db, inserts EXPORT_ROWS (1,000,000)
# charges for one tenant, samples VmRSS every 50 ms during the export, checks that every row
# arrived, and prints
#   EXPORT_1M_RSS_GROWTH_MB <peak - idle, MB>
# Exit 1 when the growth exceeds EXPORT_RSS_MAX_MB (20) or the export is incomplete. The whole
# run is bounded by EXPORT_DEADLINE seconds (170).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"
. tests/lib/pg.sh
. tests/lib/harness.sh

ROWS=${EXPORT_ROWS:-1000000}
MAX_MB=${EXPORT_RSS_MAX_MB:-20}
DEADLINE=${EXPORT_DEADLINE:-170}
say() { printf 'export_rss: %s\n' "$*"; }
die() {
    printf 'export_rss: FAILED: %s\n' "$*" >&2
    exit 1
}
for b in tokend tokenctl; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run 'make BUILD=$BUILD all' first"
done

E_DIR=$(mktemp -d /tmp/tokend-export.XXXXXX)
chmod 0711 "$E_DIR"
TOKEND_PID=
CURL_PID=
WATCHDOG_PID=
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$CURL_PID" ] && kill "$CURL_PID" 2>/dev/null
    if [ -n "$TOKEND_PID" ]; then
        kill -TERM "$TOKEND_PID" 2>/dev/null
        local _
        for _ in $(seq 1 100); do
            kill -0 "$TOKEND_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$TOKEND_PID" 2>/dev/null
        wait "$TOKEND_PID" 2>/dev/null
    fi
    pg_stop "$E_DIR/pg"
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    if [ "${KEEP_BENCH_DIR:-}" = 1 ]; then say "kept $E_DIR"; else rm -rf "$E_DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'say "stopped (deadline of ${DEADLINE}s or SIGTERM)"; exit 143' TERM
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$DEADLINE" &
    sp=$!
    wait "$sp" && kill -TERM $$ 2>/dev/null
) </dev/null >/dev/null 2>&1 &
WATCHDOG_PID=$!

T0=$(date +%s)
pg_init "$E_DIR/pg" off && pg_start "$E_DIR/pg" && pg_createdb "$E_DIR/pg" ||
    die "cannot start PostgreSQL (see $E_DIR/pg/postgres.log)"
ADMIN_DB=$(pg_conninfo "$E_DIR/pg" postgres)
"$BUILD/tokenctl" --db "$ADMIN_DB" migrate --dir sql >"$E_DIR/migrate.log" 2>&1 ||
    die "migrations failed: $(tail -n 3 "$E_DIR/migrate.log")"
make_master_key "$E_DIR/master.key"
CTL=("$BUILD/tokenctl" --db "$ADMIN_DB" --master-key-file "$E_DIR/master.key")
TENANT=$("${CTL[@]}" tenant create "export-$$" 2>"$E_DIR/ctl.err") || die "tenant create: $(cat "$E_DIR/ctl.err")"
(umask 077 && "${CTL[@]}" key create --tenant "$TENANT" --scopes tokens:write,reports:read --test \
    >"$E_DIR/key" 2>"$E_DIR/ctl.err") || die "key create: $(cat "$E_DIR/ctl.err")"
AUTH="authorization: Bearer $(cat "$E_DIR/key")"

PORT=$(free_port)
"$BUILD/tokend" --listen "127.0.0.1:$PORT" --listen-tls '' --master-key-file "$E_DIR/master.key" \
    --db "$(pg_conninfo "$E_DIR/pg" tokend_service)" \
    --reporting-db "$(pg_conninfo "$E_DIR/pg" tokend_reporting)" --threads 2 \
    --log-level warn 2>>"$E_DIR/tokend.log" &
TOKEND_PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" 15 || die "tokend did not start: $(tail -n 5 "$E_DIR/tokend.log")"
URL="http://127.0.0.1:$PORT"

TOK=$(curl -s --http2-prior-knowledge -H "$AUTH" -H 'content-type: application/json' \
    --data-binary "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$(($(date -u +%Y) + 1)),\"cvc\":\"123\"}}" \
    "$URL/v1/tokens" | sed -nE 's/.*"id":"(tok_[0-9A-Za-z]+)".*/\1/p')
[ -n "$TOK" ] || die "no token"
pg_psql "$E_DIR/pg" -qtAc "INSERT INTO ledger.charges (tenant_id, id, livemode, token_id, amount, currency,
      capture_method, status, captured_amount, gateway, gateway_ref, invoice_ref, created_by, created_at)
    SELECT '$TENANT', 'ch_' || lpad(g::text, 22, '0'), false, '$TOK', 100 + g % 5000,
      (ARRAY['usd','eur','gbp'])[1 + g % 3], 'automatic', 'succeeded', 100 + g % 5000, 'stripe',
      'ch_3' || lpad(g::text, 20, '0'),
      CASE WHEN g % 1000 = 7 THEN 'INV, \"quoted\"' || chr(10) || 'line ' || g ELSE 'INV-' || g END,
      'bench', timestamptz '2030-01-01' + g * interval '1 second'
    FROM generate_series(1, $ROWS) g; ANALYZE ledger.charges" >/dev/null || die "insert failed"
say "$ROWS charges inserted in $(($(date +%s) - T0))s"

sleep 0.5
IDLE=$(rss_kb "$TOKEND_PID")
PEAK=$IDLE
T1=$(date +%s%N)
curl -s --http2-prior-knowledge -H "$AUTH" -o "$E_DIR/export.csv" "$URL/v1/exports/charges?format=csv" &
CURL_PID=$!
while kill -0 "$CURL_PID" 2>/dev/null; do
    r=$(rss_kb "$TOKEND_PID")
    [ "${r:-0}" -gt "$PEAK" ] && PEAK=$r
    sleep 0.05
done
wait "$CURL_PID"
CURL_RC=$?
CURL_PID=
MS=$((($(date +%s%N) - T1) / 1000000))
# records = lines minus the header minus the embedded newlines of the quoted invoice_refs
LINES=$(wc -l <"$E_DIR/export.csv")
RECORDS=$((LINES - 1 - ROWS / 1000))
GROWTH_MB=$(awk -v p="$PEAK" -v i="$IDLE" 'BEGIN { printf "%.1f", (p - i) / 1024 }')
say "export: $RECORDS rows, $(du -m "$E_DIR/export.csv" | cut -f1) MB in ${MS} ms; RSS idle ${IDLE} kB, peak ${PEAK} kB"
echo "EXPORT_1M_RSS_GROWTH_MB $GROWTH_MB"
[ "$CURL_RC" = 0 ] || die "curl failed ($CURL_RC)"
[ "$RECORDS" = "$ROWS" ] || die "export has $RECORDS rows, want $ROWS"
awk -v g="$GROWTH_MB" -v m="$MAX_MB" 'BEGIN { exit !(g <= m) }' || die "RSS grew by $GROWTH_MB MB (> $MAX_MB MB)"
say "ok: RSS growth $GROWTH_MB MB <= $MAX_MB MB (total $(($(date +%s) - T0))s)"
