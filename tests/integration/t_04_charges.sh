# t_04_charges.sh - charges, captures, voids and refunds through the sandbox
# gateway: statuses, declines, validation, idempotency (replay, reuse,
# 50 concurrent duplicates) and the refund ceiling under 20 concurrent refunds.

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "payco-$$" 2>/dev/null)
TEN2=$("${CTL[@]}" tenant create "otherco-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
KEY_TOK=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write --test 2>/dev/null)
KEY2=$("${CTL[@]}" key create --tenant "$TEN2" --scopes tokens:write,charges:write --test 2>/dev/null)
tokend_start C || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_C"
Y=$(($(date -u +%Y) + 1))

api() { # METHOD PATH KEY [BODY] [curl args] -> "<json>\n<status>"
    local m=$1 p=$2 k=$3 b=${4:-}
    shift 4 2>/dev/null || shift $#
    if [ -n "$b" ]; then
        curl -s --http2-prior-knowledge -X "$m" -H "authorization: Bearer $k" -H 'content-type: application/json' \
            --data-binary "$b" -w '\n%{http_code}' "$@" "$H2C$p"
    else
        curl -s --http2-prior-knowledge -X "$m" -H "authorization: Bearer $k" -w '\n%{http_code}' "$@" "$H2C$p"
    fi
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
token_for() { # PAN [KEY]
    api POST /v1/tokens "${2:-$KEY}" "{\"card\":{\"number\":\"$1\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}" | sed '$d' | jq -r .id
}
TOK=$(token_for 4242424242424242)
expect_match "fixture token" "$TOK" '^tok_'

# --- charge, capture, void, refund ---------------------------------------------------------
out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":1999,\"currency\":\"USD\",\"description\":\"INV-1\",\"invoice_ref\":\"INV-1\"}")
expect_eq "automatic capture: 201 succeeded" "$(st "$out") $(js "$out" .status)" "201 succeeded"
CH=$(js "$out" .id)
expect_match "charge id" "$CH" '^ch_[0-9A-Za-z]{22}$'
expect_eq "amounts and currency" "$(js "$out" '[.amount,.amount_captured,.amount_refunded,.currency]|@tsv')" "$(printf '1999\t1999\t0\tusd')"
expect_eq "one attempt recorded" "$(js "$out" '.attempts|map(.gateway+":"+.outcome)|join(",")')" "sandbox:succeeded"
out=$(api GET "/v1/charges/$CH" "$KEY")
expect_eq "GET charge" "$(st "$out") $(js "$out" .invoice_ref)" "200 INV-1"
out=$(api GET "/v1/charges/$CH" "$KEY2")
expect_eq "another tenant gets 404" "$(st "$out") $(js "$out" .code)" "404 charge_not_found"

out=$(api POST /v1/refunds "$KEY" "{\"charge\":\"$CH\",\"amount\":500}")
expect_eq "partial refund: 201 succeeded" "$(st "$out") $(js "$out" .status)" "201 succeeded"
RF=$(js "$out" .id)
out=$(api GET "/v1/charges/$CH" "$KEY")
expect_eq "charge partially_refunded" "$(js "$out" '.status+" "+(.amount_refunded|tostring)')" "partially_refunded 500"
out=$(api POST /v1/refunds "$KEY" "{\"charge\":\"$CH\",\"amount\":1500}")
expect_eq "refund above the remainder: 422" "$(st "$out") $(js "$out" .code)" "422 amount_exceeds_refundable"
out=$(api POST /v1/refunds "$KEY" "{\"charge\":\"$CH\"}")
expect_eq "refund of the rest" "$(st "$out") $(js "$out" .amount)" "201 1499"
out=$(api GET "/v1/charges/$CH" "$KEY")
expect_eq "charge refunded" "$(js "$out" .status)" "refunded"
out=$(api POST /v1/refunds "$KEY" "{\"charge\":\"$CH\",\"amount\":1}")
expect_eq "nothing left to refund: 409" "$(st "$out") $(js "$out" .code)" "409 charge_not_refundable"
out=$(api GET "/v1/refunds/$RF" "$KEY")
expect_eq "GET refund" "$(st "$out") $(js "$out" '.charge+" "+(.amount|tostring)')" "200 $CH 500"

out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":5000,\"currency\":\"eur\",\"capture\":false}")
expect_eq "manual capture: requires_capture" "$(st "$out") $(js "$out" .status) $(js "$out" .amount_captured)" "201 requires_capture 0"
CHM=$(js "$out" .id)
out=$(api POST /v1/refunds "$KEY" "{\"charge\":\"$CHM\"}")
expect_eq "an uncaptured charge cannot be refunded" "$(st "$out")" "409"
out=$(api POST "/v1/charges/$CHM/capture" "$KEY" '{"amount":6000}')
expect_eq "capture above the amount: 422" "$(st "$out") $(js "$out" .code)" "422 amount_exceeds_capturable"
out=$(api POST "/v1/charges/$CHM/capture" "$KEY" '{"amount":3000}')
expect_eq "partial capture" "$(st "$out") $(js "$out" .status) $(js "$out" .amount_captured)" "200 succeeded 3000"
out=$(api POST "/v1/charges/$CHM/capture" "$KEY")
expect_eq "second capture: 409" "$(st "$out") $(js "$out" .code)" "409 charge_not_capturable"
out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":700,\"currency\":\"jpy\",\"capture\":false}")
CHV=$(js "$out" .id)
out=$(api POST "/v1/charges/$CHV/void" "$KEY")
expect_eq "void" "$(st "$out") $(js "$out" .status)" "200 canceled"
out=$(api POST "/v1/charges/$CHV/capture" "$KEY")
expect_eq "a voided charge cannot be captured" "$(st "$out")" "409"
# the events API-made changes announce (docs/webhooks.md), in order, for each charge above
evs() { pg_psql "$T_DIR/pg" -tAc "SELECT string_agg(type, ',' ORDER BY created_at, id) FROM ledger.events WHERE tenant_id = '$TEN' AND data->>'id' IN ('$1', '${2:-}')"; }
expect_eq "events: an automatic capture announces charge.succeeded" "$(evs "$CH")" "charge.succeeded"
expect_eq "events: refunds announce refund objects" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM ledger.events WHERE tenant_id = '$TEN' AND type = 'charge.refunded' AND data->>'charge' = '$CH'")" 2
expect_eq "events: authorize then capture" "$(evs "$CHM")" "charge.authorized,charge.captured"
expect_eq "events: authorize then void" "$(evs "$CHV")" "charge.authorized,charge.canceled"

# --- declines --------------------------------------------------------------------------------
for pair in 4000000000000002:generic_decline 4000000000009995:insufficient_funds \
    4000000000000069:expired_card 4000000000000127:incorrect_cvc; do
    t=$(token_for "${pair%%:*}")
    out=$(api POST /v1/charges "$KEY" "{\"token\":\"$t\",\"amount\":100,\"currency\":\"usd\"}")
    expect_eq "decline ${pair#*:}" "$(st "$out") $(js "$out" .status) $(js "$out" .decline_code)" "201 declined ${pair#*:}"
done

# --- validation --------------------------------------------------------------------------------
c422() { # NAME BODY CODE
    local out
    out=$(api POST /v1/charges "$KEY" "$2")
    expect_eq "$1" "$(st "$out") $(js "$out" .code)" "422 $3"
}
c422 "missing token" '{"amount":1,"currency":"usd"}' missing_field
c422 "missing amount" "{\"token\":\"$TOK\",\"currency\":\"usd\"}" missing_field
c422 "missing currency" "{\"token\":\"$TOK\",\"amount\":1}" missing_field
c422 "amount 0" "{\"token\":\"$TOK\",\"amount\":0,\"currency\":\"usd\"}" invalid_amount
c422 "amount as a string" "{\"token\":\"$TOK\",\"amount\":\"100\",\"currency\":\"usd\"}" invalid_type
c422 "amount 1.5" "{\"token\":\"$TOK\",\"amount\":1.5,\"currency\":\"usd\"}" invalid_type
c422 "amount over 8 digits" "{\"token\":\"$TOK\",\"amount\":100000000,\"currency\":\"usd\"}" invalid_amount
c422 "unknown currency" "{\"token\":\"$TOK\",\"amount\":1,\"currency\":\"xyz\"}" invalid_currency
c422 "unknown field" "{\"token\":\"$TOK\",\"amount\":1,\"currency\":\"usd\",\"card\":{}}" unknown_field
c422 "not a token id" '{"token":"pm_123","amount":1,"currency":"usd"}' invalid_id
c422 "a PAN in the description" "{\"token\":\"$TOK\",\"amount\":1,\"currency\":\"usd\",\"description\":\"4242424242424242\"}" text_contains_pan
out=$(api POST /v1/charges "$KEY" '{"token":')
expect_eq "malformed JSON: 400" "$(st "$out") $(js "$out" .code)" "400 malformed_json"
TOK2=$(token_for 4242424242424242 "$KEY2")
out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK2\",\"amount\":1,\"currency\":\"usd\"}")
expect_eq "another tenant's token: 404" "$(st "$out") $(js "$out" .code)" "404 token_not_found"
out=$(api POST /v1/charges "$KEY_TOK" "{\"token\":\"$TOK\",\"amount\":1,\"currency\":\"usd\"}")
expect_eq "a key without charges:write: 403" "$(st "$out")" "403"
TR=$(token_for 5555555555554444)
api DELETE "/v1/tokens/$TR" "$KEY" >/dev/null
out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TR\",\"amount\":1,\"currency\":\"usd\"}")
expect_eq "a redacted token is refused" "$(st "$out") $(js "$out" .code)" "422 token_redacted"
TE=$(token_for 6011111111111117)
pg_psql "$T_DIR/pg" -c "UPDATE vault.tokens SET expires_at = now() - interval '1 second' WHERE id = '$TE'"
out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TE\",\"amount\":1,\"currency\":\"usd\"}")
expect_eq "an expired token is refused" "$(st "$out") $(js "$out" .code)" "422 token_expired"

# --- idempotency -----------------------------------------------------------------------------------
body="{\"token\":\"$TOK\",\"amount\":4200,\"currency\":\"usd\"}"
a=$(api POST /v1/charges "$KEY" "$body" -H 'idempotency-key: order-42')
b=$(api POST /v1/charges "$KEY" "$body" -H 'idempotency-key: order-42' -D "$T_DIR/replay.hdr")
expect_eq "same key, same body: same response" "$(st "$b") $(js "$b" .id)" "201 $(js "$a" .id)"
expect_true "the replay is marked" grep -qi '^idempotent-replayed: true' "$T_DIR/replay.hdr"
c=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":4201,\"currency\":\"usd\"}" -H 'idempotency-key: order-42')
expect_eq "same key, other body: 422" "$(st "$c") $(js "$c" .code)" "422 idempotency_key_reused"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM ledger.charges WHERE tenant_id = '$TEN' AND amount = 4200")
expect_eq "one charge for the key" "$n" "1"
out=$(api POST /v1/charges "$KEY" "$body" -H 'idempotency-key;')
expect_eq "empty Idempotency-Key: 400" "$(st "$out")" "400"

body="{\"token\":\"$TOK\",\"amount\":777,\"currency\":\"usd\"}"
pids=()
for i in $(seq 1 50); do
    api POST /v1/charges "$KEY" "$body" -H 'idempotency-key: burst-1' >"$T_DIR/burst.$i" &
    pids+=($!)
done
wait "${pids[@]}"
codes=$(for i in $(seq 1 50); do st "$(cat "$T_DIR/burst.$i")"; done | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' ')
ids=$(for i in $(seq 1 50); do sed '$d' "$T_DIR/burst.$i" | jq -r 'select(.object=="charge")|.id'; done | sort -u | wc -l)
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM ledger.charges WHERE tenant_id = '$TEN' AND amount = 777")
expect_eq "50 concurrent duplicates: exactly one charge ($codes)" "$n" "1"
expect_eq "50 concurrent duplicates: every 201 has the same id" "$ids" "1"
expect_true "50 concurrent duplicates: only 201 and 409 ($codes)" bash -c "! grep -qvE '^(201|409):' <<<'$(tr ' ' '\n' <<<"$codes" | sed '/^$/d')'"

# --- the refund ceiling under concurrency --------------------------------------------------------------
out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":1000,\"currency\":\"usd\"}")
CHR=$(js "$out" .id)
pids=()
for i in $(seq 1 20); do
    api POST /v1/refunds "$KEY" "{\"charge\":\"$CHR\",\"amount\":150}" >"$T_DIR/refund.$i" &
    pids+=($!)
done
wait "${pids[@]}"
ok_n=$(for i in $(seq 1 20); do st "$(cat "$T_DIR/refund.$i")"; done | grep -c '^201$')
sum=$(pg_psql "$T_DIR/pg" -tAc "SELECT coalesce(sum(amount), 0) FROM ledger.refunds WHERE charge_id = '$CHR' AND status = 'succeeded'")
refunded=$(pg_psql "$T_DIR/pg" -tAc "SELECT refunded_amount FROM ledger.charges WHERE id = '$CHR'")
expect_eq "20 concurrent refunds of 150 on 1000: six accepted" "$ok_n" "6"
expect_true "accepted refunds never sum above the captured amount ($sum)" test "$sum" -le 1000
expect_eq "the ledger agrees with the refunds" "$refunded" "$sum"

n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE tenant_id = '$TEN' AND action LIKE 'charge.%'")
expect_true "charges are audited ($n)" test "$n" -ge 10
expect_match "audit chain intact" "$("$BUILD/tokenctl" --db "$T_ADMIN_DB" audit verify 2>&1)" 'chain intact'
tokend_stop C
