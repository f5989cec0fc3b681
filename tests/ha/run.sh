#!/usr/bin/env bash
# tests/ha/run.sh - `make test-ha` (issue #17): tokend on a Patroni cluster (tests/ha/lib.sh:
# one etcd, a primary and a synchronous standby, strict), under a tokenise + charge + refund
# load, through three faults:
#   kill9       kill -9 of the primary's postmaster
#   switchover  a planned switchover (patronictl switchover)
#   standby     the synchronous standby stopped, then started again
# After each: every request acknowledged 2xx is on the (new) primary, tokend recovered
# without a restart, and the seconds from the fault to service back are printed as
#   FAILOVER case=<name> acknowledged=N found=N lost=0 recovery_s=X
# Then reporting reads from the standby (--reporting-db with target_session_attrs=
# prefer-standby), and tests/ha/t_*.sh run (the backup and restore test). Everything runs on
# loopback in one temp dir, removed on exit. Prints 'test-ha: N passed, M failed'.
# Environment: HA_LOAD_WORKERS (4), HA_CASES ("kill9 switchover standby"), KEEP_TEST_DIR=1.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"
. tests/lib/pg.sh
. tests/lib/harness.sh
. tests/ha/lib.sh

for b in patroni patronictl etcd; do
    command -v "$b" >/dev/null || { echo "test-ha: $b is missing (make test-ha installs HA_DEB_PKGS)"; exit 1; }
done
T_DIR=$(mktemp -d /tmp/tokend-ha.XXXXXX)
chmod 0711 "$T_DIR" # the postgres user (Patroni, PostgreSQL) must reach its dirs inside
T_PIDS=()
cleanup() {
    local pid
    touch "$T_DIR/stop" 2>/dev/null
    for pid in "${T_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${T_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    ha_down
    if [ "${KEEP_TEST_DIR:-}" = 1 ]; then echo "kept $T_DIR"; else rm -rf "$T_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "test-ha: cluster in $T_DIR"
# WAL archived into pgBackRest's repository from the start (t_backup.sh); until its stanza
# exists, archive-push fails and PostgreSQL keeps the segments to push them again
HA_ARCHIVE_MODE=on
HA_ARCHIVE_COMMAND="pgbackrest --config=$T_DIR/backrest/@NODE@.conf --stanza=tokend archive-push %p"
t0=$SECONDS
ha_up "$T_DIR/ha" || { echo "test-ha: 0 passed, 1 failed"; exit 1; }
echo "test-ha: Patroni cluster up in $((SECONDS - t0)) s: leader $(ha_leader), sync standby $(ha_standby)"
LEADER=$(ha_leader)
lport() { local v="HA_PORT_$(ha_leader)"; echo "${!v}"; }
T_ADMIN_DB="host=127.0.0.1 port=$(lport) user=postgres dbname=tokend"
T_SERVICE_DB=$(ha_conninfo tokend_service read-write)
"$BUILD/tokenctl" --db "$T_ADMIN_DB" migrate --dir sql >"$T_DIR/migrate.log" 2>&1 ||
    { cat "$T_DIR/migrate.log"; echo "test-ha: 0 passed, 1 failed"; exit 1; }
make_tls "$T_DIR"
make_master_key "$T_DIR/master.key"

# ---- fixtures: a tenant with a (simulated) Stripe account, tokend on both nodes ----------------
H_SK=sk_test_ha_$$
H_Y=$(($(date -u +%Y) + 1))
GW_PORT=$(free_port)
"$BUILD/gwsim" --listen "127.0.0.1:$GW_PORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$H_SK" --ready-file "$T_DIR/gw.ready" 2>>"$T_DIR/gwsim.log" &
T_PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$T_DIR/gw.ready" ] && break; sleep 0.05; done
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "ha-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
RKEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes reports:read --test 2>/dev/null)
(umask 077 && printf '{"api_key":"%s"}' "$H_SK" >"$T_DIR/stripe.json")
"${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$T_DIR/stripe.json" \
    --base-url "https://localhost:$GW_PORT" >/dev/null 2>&1 || fail "gateway added"
expect_match "fixtures: tenant, keys" "$TEN $KEY $RKEY" '^ten_.* sk_test_.* sk_test_'
tokend_start H --db-threads 3 --gateway-ca-file "$T_DIR/tls.crt" \
    --reporting-db "$(ha_conninfo tokend_reporting prefer-standby)" ||
    { echo "test-ha: 0 passed, 1 failed"; exit 1; }
H2C="http://127.0.0.1:$H2C_H"

api() { # api KEY METHOD PATH [BODY] [curl args...] -> "<json>\n<status>"
    local k=$1 m=$2 p=$3 b=${4:-}
    shift 4 2>/dev/null || shift $#
    curl -s --http2-prior-knowledge --max-time 20 -X "$m" -H "authorization: Bearer $k" \
        -H 'content-type: application/json' ${b:+--data-binary "$b"} -w '\n%{http_code}' "$@" "$H2C$p"
}
now() { date +%s.%N; }
# status RES: the HTTP status, with the problem code after a 5xx (503:database_unavailable)
status() {
    local code
    code=$(tail -n 1 <<<"$1")
    case $code in
    5*) echo "$code:$(sed '$d' <<<"$1" | jq -r '.code // "none"' 2>/dev/null)" ;;
    *) echo "$code" ;;
    esac
}

# ---- the load: each worker tokenises, charges the token, refunds half; logs every answer ------
# log line: start end status kind id
load_worker() {
    local w=$1 k=0 out="$T_DIR/load.$1" res t0 code id body tag
    tag=$(date +%s%N) # Idempotency-Keys unique to this run of the worker
    while [ ! -f "$T_DIR/stop" ]; do
        k=$((k + 1))
        t0=$(now)
        res=$(api "$KEY" POST /v1/tokens \
            "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":5,\"exp_year\":$H_Y,\"cvc\":\"123\"}}")
        code=$(status "$res")
        id=$(sed '$d' <<<"$res" | jq -r '.id // empty' 2>/dev/null)
        echo "$t0 $(now) $code token $id" >>"$out"
        [ "$code" = 201 ] || { sleep 0.05; continue; }
        t0=$(now)
        body="{\"token\":\"$id\",\"amount\":1000,\"currency\":\"eur\"}"
        res=$(api "$KEY" POST /v1/charges "$body" -H "idempotency-key: ha-$tag-$w-$k")
        code=$(status "$res")
        id=$(sed '$d' <<<"$res" | jq -r 'select(.status == "succeeded") | .id // empty' 2>/dev/null)
        [ "$code" = 201 ] && [ -z "$id" ] && code=201x # answered, but not a succeeded charge
        echo "$t0 $(now) $code charge $id" >>"$out"
        [ "$code" = 201 ] || continue
        t0=$(now)
        res=$(api "$KEY" POST /v1/refunds "{\"charge\":\"$id\",\"amount\":400}" -H "idempotency-key: ha-r-$tag-$w-$k")
        code=$(status "$res")
        id=$(sed '$d' <<<"$res" | jq -r 'select(.status == "succeeded") | .id // empty' 2>/dev/null)
        [ "$code" = 201 ] && [ -z "$id" ] && code=201x
        echo "$t0 $(now) $code refund $id" >>"$out"
    done
}

# found IDS_FILE TABLE: how many of the ids are rows of TABLE on the current primary
found() {
    local n
    n=$({ echo "CREATE TEMP TABLE ack (id text); COPY ack FROM STDIN;"; cat "$1"; echo '\.'
          echo "SELECT count(*) FROM ack a WHERE EXISTS (SELECT 1 FROM $2 t WHERE t.id = a.id);"; } |
        ha_psql "$(ha_leader)" -tA 2>>"$T_DIR/found.err")
    echo "${n:-0}"
}

# run_case NAME FAULT: load, the fault, load until the cluster is whole again, then the count
run_case() {
    local name=$1 fault=$2 pids=() w
    rm -f "$T_DIR/stop" "$T_DIR"/load.*
    for w in $(seq 1 "${HA_LOAD_WORKERS:-4}"); do
        load_worker "$w" &
        pids+=($!)
    done
    sleep 4
    local fault_ts
    fault_ts=$(now)
    echo "test-ha: $name: fault at $(date -u +%T) (leader $(ha_leader 2>/dev/null || echo none))"
    "$fault"
    ha_wait_sync 120 || fail "$name: the cluster has a leader and a sync standby again"
    sleep 3 # and load on the healed cluster
    touch "$T_DIR/stop"
    wait "${pids[@]}"
    cat "$T_DIR"/load.* >"$T_DIR/case-$name.log"
    local kind table ack=0 fnd=0
    for kind in token:vault.tokens charge:ledger.charges refund:ledger.refunds; do
        table=${kind#*:}
        kind=${kind%%:*}
        awk -v k="$kind" '$3 == 201 && $4 == k && $5 != "" {print $5}' "$T_DIR/case-$name.log" | sort -u >"$T_DIR/ack-$kind"
        ack=$((ack + $(wc -l <"$T_DIR/ack-$kind")))
        fnd=$((fnd + $(found "$T_DIR/ack-$kind" "$table")))
    done
    # recovery: from the fault to the first 2xx after the last failed answer (5xx, or none in
    # time), or to the first 2xx after the fault when nothing failed
    local rec errs
    rec=$(sort -k2,2n "$T_DIR/case-$name.log" | awk -v f="$fault_ts" '
        $2 > f { if ($3 ~ /^20/) { if (!ok) { ok = $2 } } else if ($3 !~ /^4/) { ok = 0 } }
        END { if (ok) printf "%.2f", ok - f; else print "none" }')
    errs=$(awk -v f="$fault_ts" '$2 > f && $3 !~ /^2/ {print $3}' "$T_DIR/case-$name.log" | sort | uniq -c |
        awk '{printf "%s:%s ", $2, $1}')
    echo "FAILOVER case=$name acknowledged=$ack found=$fnd lost=$((ack - fnd)) recovery_s=$rec"
    echo "test-ha: $name: answers after the fault that were not 2xx: ${errs:-none}; leader now $(ha_leader)"
    expect_eq "$name: every acknowledged request is on the primary (acknowledged=$ack)" "$((ack - fnd))" "0"
    expect_true "$name: load was acknowledged before and after the fault" [ "$ack" -gt 0 ]
    expect_match "$name: tokend recovered without a restart (recovery_s=$rec)" "$rec" '^[0-9.]+$'
    expect_true "$name: the same tokend process" kill -0 "$TOKEND_PID_H"
}

fault_kill9() {
    local l pid
    l=$(ha_leader)
    pid=$(ha_pm_pid "$l")
    kill -KILL "$pid"
}
fault_switchover() {
    ha_patronictl switchover --leader "$(ha_leader)" --candidate "$(ha_standby)" --force \
        >>"$T_DIR/patronictl.log" 2>&1 || fail "switchover: patronictl"
}
fault_standby() {
    local s
    s=$(ha_standby)
    ha_node_stop "$s"
    sleep 3
    ha_node_start "$s"
}

# ---- reporting reads from the standby -------------------------------------------------------------
TOKR=$(api "$KEY" POST /v1/tokens \
    "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":5,\"exp_year\":$H_Y,\"cvc\":\"123\"}}" | sed '$d' | jq -r .id)
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOKR\",\"amount\":700,\"currency\":\"eur\"}")
expect_eq "a charge before the faults" "$(tail -n 1 <<<"$out")" "201"
out=$(api "$RKEY" GET "/v1/charges?limit=5")
expect_eq "reporting: GET /v1/charges (reports:read) answers, from the standby" \
    "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out" | jq -r '.data | length')" "200 1"
S=$(ha_standby)
n_s=$(ha_psql "$S" -tAc "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tokend_reporting'")
n_p=$(ha_psql "$(ha_leader)" -tAc "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tokend_reporting'")
expect_eq "reporting: its connections are on the standby ($S: $n_s), none on the primary" "$((n_s > 0)) $n_p" "1 0"

for c in ${HA_CASES:-kill9 switchover standby}; do
    run_case "$c" "fault_$c"
done

# ---- the other HA tests (tests/ha/t_*.sh) ---------------------------------------------------------
for t in tests/ha/t_*.sh; do
    [ -f "$t" ] || continue
    echo "== $(basename "$t")"
    . "$t"
done

tokend_stop H
expect_true "tokend log: no test PAN" bash -c "! grep -q 4242424242424242 '$LOG_H'"
[ "$T_FAIL" -gt 0 ] && echo "test-ha: failed: ${T_FAILED_NAMES[*]}"
echo "test-ha: $T_PASS passed, $T_FAIL failed"
[ "$T_FAIL" -eq 0 ]
