# t_12_failover.sh - tokend with two real-format gateways (gwsim over TLS): a primary that
# answers 500 or times out fails over to the secondary with both attempts recorded; a
# decline never fails over; 50 concurrent identical charges with one Idempotency-Key reach
# the gateway once; a gateway timeout during tokenisation stores nothing.

F_SK=sk_test_failover_$$
F_AK=adyen_failover_key_$$
F_MERCHANT=TokendFailoverECOM
F_Y=$(($(date -u +%Y) + 1))
F_PORT_S=$(free_port)
F_PORT_A=$(free_port)

f_gwsim() { # f_gwsim NAME PORT [extra args...]: (re)starts a simulator on PORT
    local name=$1 port=$2 ready="$T_DIR/f-$1.ready"
    shift 2
    rm -f "$ready"
    "$BUILD/gwsim" --listen "127.0.0.1:$port" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
        --stripe-key "$F_SK" --adyen-key "$F_AK" --adyen-merchant "$F_MERCHANT" \
        --ready-file "$ready" "$@" 2>>"$T_DIR/f-gwsim.log" &
    local pid=$!
    T_PIDS+=("$pid")
    eval "F_PID_$name=$pid"
    local i
    for i in $(seq 1 100); do
        [ -f "$ready" ] && return 0
        sleep 0.05
    done
    return 1
}
f_stop() { # f_stop NAME
    local v="F_PID_$1"
    kill -TERM "${!v}" 2>/dev/null
    wait "${!v}" 2>/dev/null
}
stats() { curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$1/__gwsim/stats" | jq -r "$2"; }

f_gwsim S "$F_PORT_S" && f_gwsim A "$F_PORT_A" || { fail "simulators start"; return; }
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "failover-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
(umask 077 && printf '{"api_key":"%s"}' "$F_SK" >"$T_DIR/f-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s"}' "$F_AK" "$F_MERCHANT" >"$T_DIR/f-adyen.json")
GS=$("${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$T_DIR/f-stripe.json" \
    --base-url "https://localhost:$F_PORT_S" --priority 1 2>/dev/null)
GA=$("${CTL[@]}" gateway add --tenant "$TEN" --kind adyen --credentials-file "$T_DIR/f-adyen.json" \
    --base-url "https://localhost:$F_PORT_A" --priority 2 2>/dev/null)
TEN1=$("${CTL[@]}" tenant create "slowtok-$$" 2>/dev/null)
KEY1=$("${CTL[@]}" key create --tenant "$TEN1" --scopes tokens:write,tokens:read --test 2>/dev/null)
F_PORT_SLOW=$(free_port)
"${CTL[@]}" gateway add --tenant "$TEN1" --kind stripe --credentials-file "$T_DIR/f-stripe.json" \
    --base-url "https://localhost:$F_PORT_SLOW" >/dev/null 2>&1
f_gwsim SLOW "$F_PORT_SLOW" --latency-ms 2500 || fail "slow simulator starts"
tokend_start F --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 1000 || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_F"

api() { # KEY METHOD PATH [BODY] [curl args]
    local k=$1 m=$2 p=$3 b=${4:-}
    shift 4 2>/dev/null || shift $#
    curl -s --http2-prior-knowledge -X "$m" -H "authorization: Bearer $k" -H 'content-type: application/json' \
        ${b:+--data-binary "$b"} -w '\n%{http_code}' "$@" "$H2C$p"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
attempts() { js "$1" '.status + " " + (.attempts|map(.outcome)|join(","))'; }
card() { printf '{"card":{"number":"%s","exp_month":3,"exp_year":%s,"cvc":"737"}}' "$1" "$F_Y"; }

out=$(api "$KEY" POST /v1/tokens "$(card 4242424242424242)")
TOK=$(js "$out" .id)
expect_eq "tokenised at both gateways" "$(st "$out") $(js "$out" '.gateways|map(.status)|join(",")')" "201 active,active"

# --- the primary answers 500 ------------------------------------------------------------------
f_stop S
f_gwsim S "$F_PORT_S" --fault-rate-500 1 || fail "stripe (500) restarts"
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1500,\"currency\":\"eur\"}")
expect_eq "primary 500 -> charged at the secondary, both attempts recorded" "$(st "$out") $(attempts "$out")" \
    "201 succeeded unavailable,succeeded"
expect_eq "the charge names the secondary" "$(js "$out" .gateway)" "$GA"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM ledger.charge_attempts WHERE charge_id = '$(js "$out" .id)'")
expect_eq "two attempt rows in the ledger" "$n" "2"

# --- the primary times out ----------------------------------------------------------------------
f_stop S
f_gwsim S "$F_PORT_S" --latency-ms 2500 || fail "stripe (slow) restarts"
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1600,\"currency\":\"eur\"}")
expect_eq "primary timeout -> charged at the secondary" "$(st "$out") $(attempts "$out")" \
    "201 succeeded unavailable,succeeded"
expect_match "the timeout is named" "$(js "$out" '.attempts[0].code')" 'timeout'

# --- a decline does not fail over ------------------------------------------------------------------
f_stop S
f_gwsim S "$F_PORT_S" || fail "stripe restarts"
out=$(api "$KEY" POST /v1/tokens "$(card 4000000000000002)")
TOKD=$(js "$out" .id)
expect_eq "a declining card tokenises at stripe (adyen refuses it at once)" \
    "$(st "$out") $(js "$out" "(.gateways|map({(.gateway): .status})|add) as \$g | \$g[\"$GS\"] + \",\" + \$g[\"$GA\"]")" \
    "201 active,failed"
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOKD\",\"amount\":900,\"currency\":\"eur\"}")
expect_eq "a decline stays a decline: one attempt" "$(st "$out") $(attempts "$out") $(js "$out" .decline_code)" \
    "201 declined declined generic_decline"

# --- 50 concurrent duplicates reach the gateway once ----------------------------------------------------
# (a fresh token: the restarted simulator forgot the earlier payment methods)
TOK2=$(api "$KEY" POST /v1/tokens "$(card 4242424242424242)" | sed '$d' | jq -r .id)
before=$(stats "$F_PORT_S" .payment_intents_created)
body="{\"token\":\"$TOK2\",\"amount\":2500,\"currency\":\"eur\"}"
pids=()
for i in $(seq 1 50); do
    api "$KEY" POST /v1/charges "$body" -H 'idempotency-key: f-burst' >"$T_DIR/f-burst.$i" &
    pids+=($!)
done
wait "${pids[@]}"
after=$(stats "$F_PORT_S" .payment_intents_created)
codes=$(for i in $(seq 1 50); do st "$(cat "$T_DIR/f-burst.$i")"; done | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' ')
expect_eq "50 identical requests, one Idempotency-Key: one PaymentIntent at the gateway ($codes)" "$((after - before))" "1"
ids=$(for i in $(seq 1 50); do sed '$d' "$T_DIR/f-burst.$i" | jq -r 'select(.object=="charge")|.id'; done | sort -u | wc -l)
expect_eq "every charge answer names the same charge" "$ids" "1"
res=$(for i in $(seq 1 50); do sed '$d' "$T_DIR/f-burst.$i" | jq -r 'select(.object=="charge")|.status + " " + .gateway'; done | sort -u)
expect_eq "and it succeeded at the primary" "$res" "succeeded $GS"
expect_true "the others were replays or 409 ($codes)" bash -c "! tr ' ' '\n' <<<'$codes' | sed '/^$/d' | grep -qvE '^(201|409):'"

# --- authorise, then capture and void, through the real adapter --------------------------------------------
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOK2\",\"amount\":3000,\"currency\":\"eur\",\"capture\":false}")
CHM=$(js "$out" .id)
expect_eq "stripe: authorise only" "$(st "$out") $(js "$out" .status) $(js "$out" .gateway)" "201 requires_capture $GS"
out=$(api "$KEY" POST "/v1/charges/$CHM/capture" '{"amount":2000}')
expect_eq "stripe: partial capture through tokend" "$(st "$out") $(js "$out" .status) $(js "$out" .amount_captured)" "200 succeeded 2000"
out=$(api "$KEY" POST /v1/refunds "{\"charge\":\"$CHM\",\"amount\":500}")
expect_eq "stripe: refund through tokend" "$(st "$out") $(js "$out" .status)" "201 succeeded"
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOK2\",\"amount\":700,\"currency\":\"eur\",\"capture\":false}")
out=$(api "$KEY" POST "/v1/charges/$(js "$out" .id)/void")
expect_eq "stripe: void through tokend" "$(st "$out") $(js "$out" .status)" "200 canceled"

# --- a gateway timeout during tokenisation stores nothing --------------------------------------------------
before=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$TEN1'")
out=$(api "$KEY1" POST /v1/tokens "$(card 5555555555554444)")
expect_eq "tokenisation timeout: 502 gateway_error" "$(st "$out") $(js "$out" .code)" "502 gateway_error"
after=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$TEN1'")
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.gateway_refs WHERE tenant_id = '$TEN1'")
expect_eq "no token and no gateway reference were stored" "$after $n" "$before 0"

tokend_stop F
expect_true "tokend log: no test PAN, no gateway API key" \
    bash -c "! grep -hE '4242424242424242|4000000000000002|5555555555554444|$F_SK|$F_AK' '$LOG_F'"
"$PG_BIN/pg_dumpall" -h "$T_DIR/pg/run" -U postgres >"$T_DIR/f-dump.sql" 2>/dev/null
expect_true "pg_dumpall: no test PAN, no gateway API key" \
    bash -c "! grep -qE '4242424242424242|4000000000000002|5555555555554444|$F_SK|$F_AK' '$T_DIR/f-dump.sql'"
