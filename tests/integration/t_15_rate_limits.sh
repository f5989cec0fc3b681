# t_15_rate_limits.sh - rate limits (issue #15, finding 3): tokenisations and charge calls per
# API key, failed authentications per client address; 429 problem+json `rate_limited` with
# Retry-After; one budget per key across every loop thread; the refusals counted and logged
# without secrets. Real curl --http2 over TLS, each request on its own connection (the
# kernel spreads them over both loop threads).

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "limited-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
KEY2=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
PK=$("${CTL[@]}" key create --tenant "$TEN" --publishable --origin https://shop.example --test 2>/dev/null)
expect_match "rate limits: fixtures" "$KEY $KEY2 $PK" '^sk_test_.* sk_test_.* pk_test_'

out=$("$BUILD/tokend" --rate-tokenise 1000001 --master-key-file "$T_DIR/master.key" --db x 2>&1)
expect_eq "rate limits: a rate above the maximum is refused at start (exit 2)" "$?" 2
expect_match "... naming the option" "$out" 'rate-tokenise must be a number from 0 to 1000000'
"$BUILD/tokend" --rate-charge 0.0001 --master-key-file "$T_DIR/master.key" --db x >/dev/null 2>&1
expect_eq "rate limits: more than 3 decimals is refused (exit 2)" "$?" 2

# small budgets that do not refill while the test runs (one token per 100 s): 5
# tokenisations, 3 charge calls, 4 failed authentications per address; a long cache TTL so
# a key used on both loops stays known on both (the failed-authentication part relies on it)
tokend_start RL --rate-tokenise 0.01 --burst-tokenise 5 --rate-charge 0.01 --burst-charge 3 \
    --rate-auth-failures 0.01 --burst-auth-failures 4 --auth-cache-ttl-ms 600000 ||
    { fail "tokend starts (rate limits)"; return; }
BASE="https://localhost:$TLS_RL"
Y=$(($(date -u +%Y) + 1))
CARD="{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}"
# rl METHOD PATH KEY [BODY] [curl args...] -> status; headers in $T_DIR/rl.h, body in $T_DIR/rl.b
rl() {
    local m=$1 p=$2 k=$3 b=${4:-}
    shift 4 2>/dev/null || shift $#
    local auth=()
    [ -n "$k" ] && auth=(-H "authorization: Bearer $k")
    if [ -n "$b" ]; then
        curl -s --http2 --cacert "$T_DIR/tls.crt" -X "$m" "${auth[@]}" -H 'content-type: application/json' \
            --data-binary "$b" -D "$T_DIR/rl.h" -o "$T_DIR/rl.b" -w '%{http_code}' "$@" "$BASE$p"
    else
        curl -s --http2 --cacert "$T_DIR/tls.crt" -X "$m" "${auth[@]}" \
            -D "$T_DIR/rl.h" -o "$T_DIR/rl.b" -w '%{http_code}' "$@" "$BASE$p"
    fi
}
hdr() { grep -i "^$1:" "$T_DIR/rl.h" | tail -n 1 | cut -d' ' -f2- | tr -d '\r'; }
TOK429=0 # tokenise refusals seen, checked against tokend's own count at the end

# --- tokenisations per key, across connections and loop threads ----------------------------
codes=()
for i in $(seq 1 10); do
    codes+=("$(rl POST /v1/tokens "$KEY" "$CARD")")
    [ "${codes[-1]}" = 429 ] && cp "$T_DIR/rl.h" "$T_DIR/rl429.h" && cp "$T_DIR/rl.b" "$T_DIR/rl429.b"
done
n201=$(printf '%s\n' "${codes[@]}" | grep -c '^201$')
n429=$(printf '%s\n' "${codes[@]}" | grep -c '^429$')
TOK429=$((TOK429 + n429))
# one budget for the process: per-thread buckets would have let up to 10 through
expect_eq "tokenise: 10 requests on 10 connections (2 loop threads share one budget), burst 5: 5 got 201" "$n201" 5
expect_eq "tokenise: every other one 429" "$((n201 + n429))" 10
expect_match "429: problem+json" "$(grep -i '^content-type:' "$T_DIR/rl429.h" | tr -d '\r')" 'application/problem\+json'
expect_eq "429: stable code rate_limited, status 429" "$(jq -r '.code+" "+(.status|tostring)' "$T_DIR/rl429.b")" "rate_limited 429"
ra=$(grep -i '^retry-after:' "$T_DIR/rl429.h" | cut -d' ' -f2 | tr -d '\r')
expect_match "429: Retry-After in whole seconds (>= 1)" "$ra" '^[1-9][0-9]*$'
expect_true "429: Retry-After is the time to the next token (<= 100 s at 0.01/s): $ra" test "${ra:-0}" -le 100
expect_match "429: the detail names the limit" "$(jq -r .detail "$T_DIR/rl429.b")" 'tokenisations with this API key'

expect_eq "tokenise: another key of the same tenant has its own budget" "$(rl POST /v1/tokens "$KEY2" "$CARD")" 201
TOK=$(jq -r .id "$T_DIR/rl.b")
expect_eq "tokenise: reads are not limited" "$(rl GET "/v1/tokens/$TOK" "$KEY")" 200

# --- the card element: a publishable key's budget is per key and client address -------------
SHOP=https://shop.example
pk_codes=""
for i in $(seq 1 7); do pk_codes+="$(rl POST /v1/tokens "$PK" "$CARD" -H "origin: $SHOP") "; done
expect_eq "publishable key: 5 x 201 then 429" "$pk_codes" "201 201 201 201 201 429 429 "
TOK429=$((TOK429 + 2))
expect_eq "... and the 429 carries the CORS grant (the page can read it)" "$(hdr access-control-allow-origin)" "$SHOP"
expect_eq "the element's own POST (self origin + parent origin) shares that budget: 429" \
    "$(rl POST /v1/tokens "$PK" "$CARD" -H "origin: $BASE" -H "tokend-parent-origin: $SHOP")" 429
TOK429=$((TOK429 + 1))

# --- charge calls per key: charges and refunds share one budget ------------------------------
ch_codes=""
for i in 1 2 3 4; do
    ch_codes+="$(rl POST /v1/charges "$KEY2" "{\"token\":\"$TOK\",\"amount\":100,\"currency\":\"usd\"}") "
    [ "$i" = 1 ] && CH=$(jq -r .id "$T_DIR/rl.b")
done
expect_match "charges: burst 3, then 429" "$ch_codes" '^201 201 201 429 $'
expect_eq "refunds count against the same budget: 429" "$(rl POST /v1/refunds "$KEY2" "{\"charge\":\"$CH\",\"amount\":1}")" 429
expect_match "... detail" "$(jq -r .detail "$T_DIR/rl.b")" 'charge requests'
expect_eq "charges: another key still charges" "$(rl POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":100,\"currency\":\"usd\"}")" 201

# --- failed authentications per client address ------------------------------------------------
# KEY known on both loops (many connections; the TTL is long): it must keep working
for i in $(seq 1 16); do rl GET "/v1/tokens/$TOK" "$KEY" >/dev/null; done
BAD="sk_test_$(printf 'Q%.0s' $(seq 1 43))"
af=""
for i in 1 2 3 4 5; do af+="$(rl GET "/v1/tokens/$TOK" "$BAD") "; done
expect_eq "auth failures: 4 unknown keys get 401, the 5th 429" "$af" "401 401 401 401 429 "
expect_match "... with Retry-After" "$(hdr retry-after)" '^[1-9][0-9]*$'
expect_match "... and its detail" "$(jq -r .detail "$T_DIR/rl.b")" 'failed authentications from this address'
expect_eq "auth failures: a malformed key from that address: 429" "$(rl GET "/v1/tokens/$TOK" "sk_test_short")" 429
expect_eq "auth failures: no key at all from that address: 429" "$(rl GET "/v1/tokens/$TOK" "")" 429
ok_codes=""
for i in 1 2 3 4; do ok_codes+="$(rl GET "/v1/tokens/$TOK" "$KEY") "; done
expect_eq "auth failures: a key already known good from that address still works" "$ok_codes" "200 200 200 200 "

# --- counters and logs ------------------------------------------------------------------------
LOG=$LOG_RL
expect_match "log: a line per refusal with class and key id" "$(grep -c 'rate_limited: class tokenise, key key_' "$LOG")" "^$TOK429$"
expect_true "log: auth-failure refusals logged with the client address" grep -q 'rate_limited: class auth_failure, key -, client 127.0.0.1' "$LOG"
expect_true "log: no API key secret in tokend's log" sh -c "! grep -qF -e '$KEY' -e '$KEY2' -e '$PK' -e '$BAD' '$LOG'"
tokend_stop RL
expect_true "counters: tokenise refusals ($TOK429) counted by class at stop" \
    grep -q "ratelimit: tokenise: rate 0.010/s burst 5: 11 allowed, $TOK429 refused" "$LOG"
expect_true "counters: 2 charge refusals counted" grep -q "ratelimit: charge: rate 0.010/s burst 3: 4 allowed, 2 refused" "$LOG"
expect_true "counters: 3 auth-failure refusals, 4 failures recorded" \
    grep -q "ratelimit: auth_failure: rate 0.010/s burst 4: 0 allowed, 3 refused, 4 recorded, 1 buckets" "$LOG"

# --- the bucket refills: after Retry-After seconds the key works again ----------------------
tokend_start RR --rate-tokenise 0.2 --burst-tokenise 1 || { fail "tokend starts (refill)"; return; }
BASE="https://localhost:$TLS_RR"
expect_eq "refill: one tokenisation (burst 1)" "$(rl POST /v1/tokens "$KEY" "$CARD")" 201
expect_eq "refill: the next one at once: 429" "$(rl POST /v1/tokens "$KEY" "$CARD")" 429
ra=$(hdr retry-after)
expect_true "refill: Retry-After at most 5 s at 0.2/s ($ra)" test "${ra:-0}" -ge 1 -a "${ra:-9}" -le 5
sleep "${ra:-5}"
expect_eq "refill: after Retry-After seconds the key tokenises again" "$(rl POST /v1/tokens "$KEY" "$CARD")" 201
tokend_stop RR
