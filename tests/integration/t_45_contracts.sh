# t_45_contracts.sh - contract tests, so that gwsim is not the only judge of the wire format
# (issue #16): the adapters and gwsim are checked against the gateways' own published
# descriptions (tests/contracts/README.md):
# - Adyen: every request the Adyen adapter sends here (build/gwcall drives it through tok_httpc,
#   and tokend itself for tokenise, charges, refund and redaction) validates against the request schema of its path in Adyen's OpenAPI 3.1
#   document for Checkout v71, and every answer gwsim gives against the response schema
#   (tests/contracts/adyen.mjs, ajv with JSON Schema 2020-12);
# - Stripe: the objects gwsim answers carry the members of Stripe's published fixtures
#   (stripe-fixtures.mjs); the official stripe npm library, pointed at gwsim, parses every
#   answer, and the same operations made with it put the same parameters on the wire as the
#   adapter does (stripe-wire.mjs).
# gwsim records each exchange (--record, into a temp dir removed at the end) with card numbers
# and CVCs masked: no test card number or CVC reaches the disk.

C45=tests/contracts
C45_SK=sk_test_contracts_$$
C45_AK=adyen_contracts_key_$$
C45_MERCHANT=TokendContractsECOM
C45_Y=$(($(date -u +%Y) + 1))

if [ ! -f "$C45/node_modules/ajv/package.json" ] || [ ! -f "$C45/node_modules/stripe/package.json" ]; then
    fail "the contract test packages are installed (run: make lint-deps)"
    return
fi
ok "the contract test packages are installed (ajv, ajv-formats, stripe from package-lock.json)"

C45_REC=$(mktemp -d /tmp/tokend-contracts.XXXXXX)
chmod 0700 "$C45_REC"
C45_PORT=$(free_port)
rm -f "$T_DIR/c45.ready"
"$BUILD/gwsim" --listen "127.0.0.1:$C45_PORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$C45_SK" --adyen-key "$C45_AK" --adyen-merchant "$C45_MERCHANT" \
    --record "$C45_REC" --ready-file "$T_DIR/c45.ready" 2>>"$T_DIR/c45-gwsim.log" &
T_PIDS+=("$!")
for _ in $(seq 1 100); do [ -f "$T_DIR/c45.ready" ] && break; sleep 0.05; done
[ -f "$T_DIR/c45.ready" ] || { fail "gwsim --record starts"; rm -rf "$C45_REC"; return; }
ok "gwsim --record starts"

C45_ERR="$T_DIR/c45-gwcall.err"
gw45() { # KIND [gwcall args...] -> one JSON line
    local kind=$1 key=$C45_SK
    shift
    [ "$kind" = adyen ] && key=$C45_AK
    GWCALL_API_KEY=$key "$BUILD/gwcall" --kind "$kind" --base-url "https://localhost:$C45_PORT" \
        --ca-file "$T_DIR/tls.crt" --merchant "$C45_MERCHANT" --timeout-ms 5000 "$@" 2>>"$C45_ERR"
}
tok45() { # KIND PAN [extra]
    local kind=$1 pan=$2
    shift 2
    gw45 "$kind" --op tokenise --pan "$pan" --exp-month 3 --exp-year "$C45_Y" --cvc 737 "$@"
}
sum45() { jq -r '[.outcome, .code // "-", .decline_code // "-"]|join(" ")' <<<"$1"; }

# --- Adyen: every operation the adapter has, accepted and refused ------------------------------
out=$(tok45 adyen 4242424242424242 --name "J Smith")
expect_eq "adyen tokenise: ok" "$(sum45 "$out")" "ok - -"
REF=$(jq -r .ref <<<"$out")
out=$(gw45 adyen --op charge --pm-ref "$REF" --amount 1000 --currency eur --capture false --off-session true)
expect_eq "adyen charge off session (ContAuth), authorise only: ok" "$(sum45 "$out")" "ok - -"
PSP=$(jq -r .ref <<<"$out")
expect_eq "adyen capture: ok" "$(sum45 "$(gw45 adyen --op capture --charge-ref "$PSP" --amount 1000 --currency eur)")" "ok - -"
expect_eq "adyen refund: ok" "$(sum45 "$(gw45 adyen --op refund --charge-ref "$PSP" --amount 300 --currency eur)")" "ok - -"
out=$(gw45 adyen --op charge --pm-ref "$REF" --amount 1000 --currency eur --capture true --off-session false)
expect_eq "adyen charge on session (Ecommerce), captured: ok" "$(sum45 "$out")" "ok - -"
PSP=$(jq -r .ref <<<"$(gw45 adyen --op charge --pm-ref "$REF" --amount 500 --currency jpy --capture false --off-session true)")
expect_eq "adyen void: ok" "$(sum45 "$(gw45 adyen --op void --charge-ref "$PSP")")" "ok - -"
expect_eq "adyen refund above the captured rest: refused (422)" \
    "$(sum45 "$(gw45 adyen --op refund --charge-ref "$PSP" --amount 99999 --currency jpy)")" "error gateway_invalid_request -"
expect_eq "adyen detach: ok" "$(sum45 "$(gw45 adyen --op detach --pm-ref "$REF")")" "ok - -"
expect_eq "adyen charge after detach: refused (422 Contract not found)" \
    "$(sum45 "$(gw45 adyen --op charge --pm-ref "$REF" --amount 100 --currency eur --off-session true)")" "error gateway_invalid_request -"
expect_eq "adyen detach again: refused" "$(sum45 "$(gw45 adyen --op detach --pm-ref "$REF")")" "error gateway_invalid_request -"
# refusals (Refused, Error) and the holder-name trigger: refusalReason, refusalReasonCode
expect_eq "adyen declining card: declined" "$(sum45 "$(tok45 adyen 4000000000000002)")" "declined card_declined generic_decline"
expect_eq "adyen insufficient funds: declined" "$(sum45 "$(tok45 adyen 4000000000009995)")" "declined card_declined insufficient_funds"
expect_eq "adyen acquirer error: error" "$(sum45 "$(tok45 adyen 4000000000000119)")" "error processing_error -"
expect_eq "adyen refusal by holder name" "$(sum45 "$(tok45 adyen 5555555555554444 --name CVC_DECLINED)")" "declined incorrect_cvc incorrect_cvc"
# gwsim's error answers: a wrong API key (401), injected 500 and 429, to the adapter's own request
C45_BODY=$(jq -r 'select(.path == "/v71/payments") | .request_body
    | select(fromjson | .paymentMethod.storedPaymentMethodId != null)' "$C45_REC"/*-adyen.json | head -n 1)
for h in "X-API-Key: wrong_$$" "X-Gwsim-Fault: 500" "X-Gwsim-Fault: 429"; do
    key=$C45_AK
    [ "${h%%:*}" = X-API-Key ] && key=${h#*: } && h="X-Gwsim-None: 1"
    curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -w '%{http_code} ' -H "X-API-Key: $key" -H "$h" \
        -H 'content-type: application/json' --data-binary "$C45_BODY" "https://localhost:$C45_PORT/v71/payments"
done >"$T_DIR/c45-errors.out"
expect_eq "adyen errors answered: 401, 500, 429" "$(cat "$T_DIR/c45-errors.out")" "401 500 429 "
# gwsim's tokenisation without a payment (/storedPaymentMethods), which the adapter does not use
curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -H "X-API-Key: $C45_AK" -H 'content-type: application/json' \
    --data-binary "{\"merchantAccount\":\"$C45_MERCHANT\",\"shopperReference\":\"tokend_contracts\",\"recurringProcessingModel\":\"UnscheduledCardOnFile\",\"paymentMethod\":{\"type\":\"scheme\",\"number\":\"5555555555554444\",\"expiryMonth\":\"03\",\"expiryYear\":\"$C45_Y\",\"cvc\":\"737\",\"holderName\":\"J Smith\"}}" \
    "https://localhost:$C45_PORT/v71/storedPaymentMethods"

# --- and through tokend: its gateway calls go into the same records -------------------------------
C45_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
C45_TEN=$("${C45_CTL[@]}" tenant create "contracts-$$" 2>/dev/null)
C45_KEY=$("${C45_CTL[@]}" key create --tenant "$C45_TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
(umask 077 && printf '{"api_key":"%s"}' "$C45_SK" >"$T_DIR/c45-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s"}' "$C45_AK" "$C45_MERCHANT" >"$T_DIR/c45-adyen.json")
# Adyen first, so that charges go there; tokenisation stores the card at both
"${C45_CTL[@]}" gateway add --tenant "$C45_TEN" --kind adyen --credentials-file "$T_DIR/c45-adyen.json" \
    --base-url "https://localhost:$C45_PORT" --priority 1 >/dev/null 2>>"$T_DIR/c45-ctl.err"
"${C45_CTL[@]}" gateway add --tenant "$C45_TEN" --kind stripe --credentials-file "$T_DIR/c45-stripe.json" \
    --base-url "https://localhost:$C45_PORT" --priority 2 >/dev/null 2>>"$T_DIR/c45-ctl.err"
if tokend_start C45 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 5000; then
    api45() { # METHOD PATH [BODY] -> "<json>\n<status>"
        local a=(-s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $C45_KEY" -w '\n%{http_code}')
        [ -n "${3:-}" ] && a+=(-H 'content-type: application/json' --data-binary "$3")
        curl "${a[@]}" "http://127.0.0.1:$H2C_C45$2"
    }
    out=$(api45 POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":3,\"exp_year\":$C45_Y,\"cvc\":\"737\",\"name\":\"J Smith\"}}")
    expect_eq "tokend tokenise at adyen and stripe: 201" "$(tail -n 1 <<<"$out")" 201
    TOK=$(sed '$d' <<<"$out" | jq -r .id)
    for os in false true; do
        out=$(api45 POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1234,\"currency\":\"EUR\",\"off_session\":$os}")
        expect_eq "tokend charge (off_session $os) at adyen: succeeded" "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out" | jq -r .status)" "201 succeeded"
    done
    CH=$(sed '$d' <<<"$out" | jq -r .id)
    out=$(api45 POST /v1/refunds "{\"charge\":\"$CH\",\"amount\":400}")
    expect_eq "tokend refund at adyen: succeeded" "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out" | jq -r .status)" "201 succeeded"
    out=$(api45 DELETE "/v1/tokens/$TOK")
    expect_eq "tokend redaction: detached at both" "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out" | jq -r '.gateways|map(.status)|unique|join(",")')" "200 destroyed"
    tokend_stop C45
else
    fail "tokend starts (gateways at the recording gwsim)"
fi

out=$(cd "$C45" && node adyen.mjs adyen/CheckoutService-v71.json "$C45_REC" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /' >&2
expect_eq "adyen: every request and answer validates against Checkout v71 (adyen.mjs)" "$rc" "0"
for op in "POST /payments:" "POST /payments/{paymentPspReference}/captures:" \
    "POST /payments/{paymentPspReference}/cancels:" "POST /payments/{paymentPspReference}/refunds:" \
    "DELETE /storedPaymentMethods/{storedPaymentMethodId}:" "POST /storedPaymentMethods:"; do
    expect_match "adyen.mjs checked $op" "$(grep -F -- " $op" <<<"$out")" '^ok '
done
expect_match "adyen.mjs saw refusals and errors too" "$(grep -F ' POST /payments:' <<<"$out")" '401x1 422x1 429x1 500x1'

# the validator has teeth: a request without returnUrl (what the adapter sent before the
# contract tests), an answer with a resultCode Adyen does not define, an undeclared query parameter
C45_BAD=$(mktemp -d /tmp/tokend-contracts-bad.XXXXXX)
f=$(grep -l '"path":"/v71/payments"' "$C45_REC"/*-adyen.json | head -n 1)
jq -c '.request_body |= (fromjson | del(.returnUrl) | tojson)' "$f" >"$C45_BAD/1.json"
jq -c '.response_body |= (fromjson | .resultCode = "Approved" | tojson)' "$f" >"$C45_BAD/2.json"
f=$(grep -l '"method":"DELETE"' "$C45_REC"/*-adyen.json | head -n 1)
jq -c '.query += "&shopperEmail=x"' "$f" >"$C45_BAD/3.json"
out=$(cd "$C45" && node adyen.mjs adyen/CheckoutService-v71.json "$C45_BAD" 2>&1)
expect_eq "adyen.mjs refuses bad exchanges (exit 1, 3 failed)" "$?:$(tail -n 1 <<<"$out")" "1:adyen: 3 exchanges, 3 failed"
expect_match "adyen.mjs names the missing returnUrl" "$out" "must have required property 'returnUrl'"
expect_match "adyen.mjs names the unknown resultCode" "$out" '/resultCode must be equal to one of the allowed values'
expect_match "adyen.mjs names the undeclared query parameter" "$out" 'query parameter shopperEmail is not declared'
rm -rf "$C45_BAD"

# --- Stripe: the adapter and stripe-node, the same operations -----------------------------------
for pan in 4000000000009995 4000000000000069; do # declines, recorded for the fixture comparison
    PM=$(jq -r .ref <<<"$(tok45 stripe "$pan")")
    gw45 stripe --op charge --pm-ref "$PM" --amount 1000 --currency usd >/dev/null
done
out=$(cd "$C45" && NODE_EXTRA_CA_CERTS="$T_DIR/tls.crt" GWCALL_API_KEY=$C45_SK node stripe-wire.mjs \
    --port "$C45_PORT" --dir "$C45_REC" --gwcall "$BUILD/gwcall" --ca "$T_DIR/tls.crt" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /' >&2
expect_eq "stripe: stripe-node and the adapter put the same parameters on the wire; stripe-node parses every answer (stripe-wire.mjs)" "$rc" "0"
expect_eq "stripe-wire.mjs: 12 operations compared" "$(tail -n 1 <<<"$out")" "stripe-wire: 12 operations, 0 failed"
# ... and a parameter only one side sends fails the comparison
out=$(cd "$C45" && STRIPE_WIRE_SELFTEST=1 NODE_EXTRA_CA_CERTS="$T_DIR/tls.crt" GWCALL_API_KEY=$C45_SK \
    node stripe-wire.mjs --port "$C45_PORT" --dir "$C45_REC" --gwcall "$BUILD/gwcall" --ca "$T_DIR/tls.crt" 2>&1)
expect_eq "stripe-wire.mjs refuses a difference on the wire (exit 1, 2 failed)" "$?:$(tail -n 1 <<<"$out")" \
    "1:stripe-wire: 12 operations, 2 failed"
expect_match "stripe-wire.mjs names the parameter" "$out" 'POST /v1/payment_intents: only stripe-node sends description=selftest'

out=$(cd "$C45" && node stripe-fixtures.mjs stripe/fixtures3.json "$C45_REC" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /' >&2
expect_eq "stripe: gwsim's objects carry the members of Stripe's fixtures (stripe-fixtures.mjs)" "$rc" "0"
for t in payment_method customer payment_intent refund; do
    expect_match "stripe-fixtures.mjs compared $t" "$(grep " $t:" <<<"$out")" '^ok '
done
# ... and would notice a missing member
C45_BAD=$(mktemp -d /tmp/tokend-contracts-bad.XXXXXX)
f=$(grep -l '"path":"/v1/customers"' "$C45_REC"/*-stripe.json | head -n 1)
jq -c '.response_body |= (fromjson | del(.invoice_settings) | tojson)' "$f" >"$C45_BAD/1.json"
out=$(cd "$C45" && node stripe-fixtures.mjs stripe/fixtures3.json "$C45_BAD" 2>&1)
expect_match "stripe-fixtures.mjs names a missing member" "$?:$out" '^1:FAIL customer: 1 objects; missing: customer.invoice_settings'
rm -rf "$C45_BAD"

# --- the records hold no card data ---------------------------------------------------------------
# a card number where none belongs (metadata) is masked too
PI=$(curl -s --cacert "$T_DIR/tls.crt" -u "$C45_SK:" "https://localhost:$C45_PORT/v1/payment_intents" \
    -d amount=100 -d currency=usd -d "metadata[note]=card 4000000000000002 given by phone" | jq -r .id)
expect_match "a PaymentIntent with a card number in its metadata" "$PI" '^pi_'
curl -s --cacert "$T_DIR/tls.crt" -u "$C45_SK:" -o /dev/null \
    "https://localhost:$C45_PORT/v1/payment_intents/$PI?card%5Bnumber%5D=4000000000009995&note=5555555555554444"
total=$(curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$C45_PORT/__gwsim/stats" | jq '.requests_total - .requests["control"]')
expect_eq "gwsim recorded every Stripe and Adyen exchange" "$(ls "$C45_REC" | wc -l)" "$total"
expect_eq "no recording failed" "$(grep -c 'not recorded' "$T_DIR/c45-gwsim.log")" "0"
leak=$(grep -lE '4242424242424242|5555555555554444|4000000000000002|4000000000009995|4000000000000069|4000000000000119' "$C45_REC"/* | wc -l)
expect_eq "no test card number in any record" "$leak" "0"
expect_eq "no CVC in any record" "$(grep -lE 'cvc%5D=737|cvc\]=737|cvc\\":\\"737' "$C45_REC"/* | wc -l)" "0"
expect_match "card numbers are masked to their last 4" "$(cat "$C45_REC"/*)" '\*{12}4242'
expect_match "CVCs are masked" "$(cat "$C45_REC"/*)" '\\"cvc\\":\\"\*\*\*\\"'
expect_match "a card number in another field is masked" "$(cat "$C45_REC"/*)" 'card%20\*{12}0002%20given'
expect_match "... and in the answer that echoes it" "$(cat "$C45_REC"/*)" 'card \*{12}0002 given'
expect_match "... and in a query string" "$(cat "$C45_REC"/*)" '"query":"card%5Bnumber%5D=\*{12}9995&note=\*{12}4444"'
expect_eq "records are private to their owner" "$(stat -c %a "$(ls -d "$C45_REC"/* | head -n 1)")" "600"

rm -rf "$C45_REC"
expect_true "the record directory is removed" [ ! -e "$C45_REC" ]
