# t_41_reconnect.sh - tokend follows its database across dropped connections (issue #17):
# after pg_terminate_backend of every tokend backend, the next requests all succeed (no 503:
# the database threads reconnect, and a batch whose connection broke before its COMMIT is
# sent again on a new one); a COMMIT whose answer never comes (the backend terminated while
# it waited for a synchronous standby that does not exist) is answered 503
# commit_outcome_unknown, and the client's retry is safe: deduplicate for a token, the same
# Idempotency-Key for a charge (replayed, one PaymentIntent at the gateway).

R_SK=sk_test_reconnect_$$
R_Y=$(($(date -u +%Y) + 1))
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "reconnect-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
expect_match "fixtures: tenant and key" "$TEN $KEY" '^ten_.* sk_test_'

R_MPORT=$(free_port)
tokend_start R --db-threads 3 --metrics-listen "127.0.0.1:$R_MPORT" || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_R"

post() { # post KEY PATH BODY [curl args...] -> "<json>\n<status>"
    local k=$1 p=$2 b=$3
    shift 3
    curl -s --http2-prior-knowledge --max-time 30 -H "authorization: Bearer $k" \
        -H 'content-type: application/json' --data-binary "$b" -w '\n%{http_code}' "$@" "$H2C$p"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
card() { printf '{"card":{"number":"%s","exp_month":4,"exp_year":%s,"cvc":"123"}%s}' "$1" "$R_Y" "${2:-}"; }
sql() { PGOPTIONS='-c synchronous_commit=local' pg_psql "$T_DIR/pg" -tAc "$1"; }
tokend_pids() { sql "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'tokend'"; }
# terminate PIDS: ends those backends and waits until they are gone
terminate() {
    sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid IN ($1)" >/dev/null
    local i
    for i in $(seq 1 100); do
        [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($1)")" = 0 ] && return 0
        sleep 0.05
    done
    return 1
}
metric() { curl -s "http://127.0.0.1:$R_MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

out=$(post "$KEY" /v1/tokens "$(card 4242424242424242)")
TOK=$(js "$out" .id)
expect_eq "a token before the connections drop" "$(st "$out")" "201"

# --- every tokend backend terminated, then 60 requests: none answered 503 ---------------------
pids=$(tokend_pids)
expect_match "tokend has its connections ($pids)" "$pids" '^[0-9]+(,[0-9]+){2,}$'
terminate "$pids" && ok "all tokend backends terminated" || fail "all tokend backends terminated"
codes=()
for i in $(seq 1 20); do
    codes+=("$(st "$(post "$KEY" /v1/tokens "$(card 4000056655665556 ',"deduplicate":true')")")")
done
# and again, with the next requests racing the terminations
terminate "$(tokend_pids)" >/dev/null
bgs=()
for i in $(seq 1 40); do
    if [ $((i % 2)) = 0 ]; then
        curl -s --http2-prior-knowledge --max-time 30 -H "authorization: Bearer $KEY" -o /dev/null \
            -w '%{http_code}\n' "$H2C/v1/tokens/$TOK" >"$T_DIR/r41.$i" &
    else
        post "$KEY" /v1/tokens "$(card 5555555555554444 ',"deduplicate":true')" | tail -n 1 >"$T_DIR/r41.$i" &
    fi
    bgs+=($!)
done
wait "${bgs[@]}"
for i in $(seq 1 40); do codes+=("$(cat "$T_DIR/r41.$i")"); done
summary=$(printf '%s\n' "${codes[@]}" | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' ')
expect_eq "60 requests after the terminations: all 2xx, no 503 ($summary)" \
    "$(printf '%s\n' "${codes[@]}" | grep -cv '^20[01]$')" "0"
expect_match "the pool reconnected: tokend_db_connections_up{pool=\"primary\"} 3" \
    "$(metric 'tokend_db_connections_up{pool="primary"}')" '^3$'
expect_match "tokend_db_jobs_resent_total is exposed" \
    "$(metric 'tokend_db_jobs_resent_total{pool="primary"}')" '^[0-9]+$'
expect_true "the reconnections are logged" grep -q 'database connection (re-)established' "$LOG_R"

# --- a COMMIT that never answers: 503 commit_outcome_unknown -------------------------------------
# A synchronous standby that does not exist makes every COMMIT wait for it; terminating the
# backend that waits ends the connection after the transaction committed locally, without
# an answer (PostgreSQL warns "committed locally, but might not have been replicated").
sync_off() { sql "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null; }
sync_ghost() {
    sql "ALTER SYSTEM SET synchronous_standby_names = 't41_nobody'" >/dev/null
    sql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}
# terminate_waiters PID: terminates every tokend backend that waits for the standby until
# the client PID is done (up to 15 s); fails when none waited
terminate_waiters() {
    local i p n=0
    for i in $(seq 1 300); do
        p=$(sql "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
                 WHERE application_name = 'tokend' AND wait_event = 'SyncRep'")
        [ -n "$p" ] && terminate "$p" && n=$((n + 1))
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    [ "$n" -gt 0 ]
}
tokens_of() { sql "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$TEN'"; }

before=$(tokens_of)
sync_ghost
post "$KEY" /v1/tokens "$(card 6011111111111117 ',"deduplicate":true')" >"$T_DIR/r41.unknown" &
bg=$!
if terminate_waiters "$bg"; then
    wait "$bg"
    out=$(cat "$T_DIR/r41.unknown")
    expect_eq "COMMIT unanswered: 503 commit_outcome_unknown" "$(st "$out") $(js "$out" .code)" \
        "503 commit_outcome_unknown"
else
    fail "a tokenisation waits for the synchronous standby"
    wait "$bg"
fi
sync_off
expect_eq "the token was committed all the same (why the outcome is 'unknown')" "$(tokens_of)" "$((before + 1))"
out=$(post "$KEY" /v1/tokens "$(card 6011111111111117 ',"deduplicate":true')")
expect_eq "the client's retry with deduplicate: 200, the stored token" "$(st "$out")" "200"
expect_eq "and no second token" "$(tokens_of)" "$((before + 1))"

# --- the same for a charge's outcome: the retry with its Idempotency-Key is replayed ----------------
R_PORT=$(free_port)
rm -f "$T_DIR/r41.ready"
"$BUILD/gwsim" --listen "127.0.0.1:$R_PORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$R_SK" --latency-ms 1500 --ready-file "$T_DIR/r41.ready" 2>>"$T_DIR/r41-gwsim.log" &
T_PIDS+=($!)
for i in $(seq 1 100); do [ -f "$T_DIR/r41.ready" ] && break; sleep 0.05; done
(umask 077 && printf '{"api_key":"%s"}' "$R_SK" >"$T_DIR/r41-stripe.json")
"${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$T_DIR/r41-stripe.json" \
    --base-url "https://localhost:$R_PORT" >/dev/null 2>&1 || fail "gateway added"
tokend_stop R
tokend_start R --db-threads 3 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 5000 ||
    { fail "tokend restarts with the gateway"; return; }
H2C="http://127.0.0.1:$H2C_R"
out=$(post "$KEY" /v1/tokens "$(card 4242424242424242)")
TOKG=$(js "$out" .id)
expect_eq "a token stored at the gateway" "$(st "$out")" "201"
intents() { curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$R_PORT/__gwsim/stats" | jq -r .payment_intents_created; }
i0=$(intents)
body="{\"token\":\"$TOKG\",\"amount\":4100,\"currency\":\"eur\"}"
post "$KEY" /v1/charges "$body" -H 'idempotency-key: t41-charge' >"$T_DIR/r41.charge" &
bg=$!
sleep 0.5 # the charge is begun (committed) and at the gateway: its outcome's COMMIT will wait
sync_ghost
if terminate_waiters "$bg"; then
    wait "$bg"
    out=$(cat "$T_DIR/r41.charge")
    expect_eq "charge outcome's COMMIT unanswered: 503 commit_outcome_unknown" \
        "$(st "$out") $(js "$out" .code)" "503 commit_outcome_unknown"
else
    fail "the charge's outcome waits for the synchronous standby"
    wait "$bg"
fi
sync_off
out=$(post "$KEY" /v1/charges "$body" -H 'idempotency-key: t41-charge' -D "$T_DIR/r41.h")
expect_eq "the retry with the same Idempotency-Key: the recorded charge, replayed" \
    "$(st "$out") $(js "$out" .status) $(grep -ci '^idempotent-replayed: true' "$T_DIR/r41.h")" "201 succeeded 1"
expect_eq "one PaymentIntent at the gateway" "$(($(intents) - i0))" "1"
n=$(sql "SELECT count(*) FROM ledger.charges WHERE tenant_id = '$TEN'")
expect_eq "one charge in the ledger" "$n" "1"

tokend_stop R
expect_true "tokend log: no test PAN" \
    bash -c "! grep -hE '4242424242424242|4000056655665556|5555555555554444|6011111111111117' '$LOG_R'"
