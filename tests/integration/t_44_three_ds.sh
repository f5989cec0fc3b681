# t_44_three_ds.sh - customer authentication (3-D Secure, issue #16) through tokend and gwsim:
# a charge with the customer present that the issuer wants authenticated is 202
# requires_action with next_action.redirect_to_url; the customer (curl) follows it to gwsim's
# simulated issuer page, completes or fails, is sent back to the app's return_url, and
# POST /v1/charges/{id}/complete decides the charge (Stripe: the PaymentIntent retrieved;
# Adyen: /payments/details with the redirectResult). Off session, the same card is an
# authentication_required decline. A webhook decides a waiting charge too. Stripe's 3-D
# Secure cards (3184 always, 3155 unless set up, 3220) and Adyen's 3DS2 test cards; then
# every published decline card through tokend on both gateways (table-driven).

D_SK=sk_test_threeds_$$
D_AK=adyen_threeds_key_$$
D_MERCHANT=TokendThreeDSECOM
D_WHSEC=whsec_threeds_$$
D_HMAC=$(openssl rand -hex 32)
D_Y=$(($(date -u +%Y) + 1))
D_RET=https://shop.example/checkout/return
# the customer's browser, which Adyen's 3-D Secure 2 needs described (t_50 tests it in detail)
D_BROWSER='"browser":{"user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0","accept_header":"text/html,*/*;q=0.8","language":"en-GB","color_depth":24,"screen_height":1080,"screen_width":1920,"time_zone_offset":-60,"java_enabled":false}'
D_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
D_PSQL() { psql "$T_ADMIN_DB" -XAtq -c "$1"; }

D_PORT=$(free_port)
"$BUILD/gwsim" --listen "127.0.0.1:$D_PORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$D_SK" --adyen-key "$D_AK" --adyen-merchant "$D_MERCHANT" \
    --ready-file "$T_DIR/d44.ready" 2>>"$T_DIR/d44-gwsim.log" &
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -f "$T_DIR/d44.ready" ] && break; sleep 0.05; done
[ -f "$T_DIR/d44.ready" ] || { fail "gwsim starts"; return; }
GWURL="https://localhost:$D_PORT"
gs() { curl -s --cacert "$T_DIR/tls.crt" "$GWURL/__gwsim/stats" | jq -r "$1"; }

(umask 077 && printf '{"api_key":"%s","webhook_secret":"%s"}' "$D_SK" "$D_WHSEC" >"$T_DIR/d44-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s","hmac_key":"%s"}' "$D_AK" "$D_MERCHANT" "$D_HMAC" >"$T_DIR/d44-adyen.json")
D_TS=$("${D_CTL[@]}" tenant create "threeds-stripe-$$" 2>/dev/null)
D_KS=$("${D_CTL[@]}" key create --tenant "$D_TS" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
D_GS=$("${D_CTL[@]}" gateway add --tenant "$D_TS" --kind stripe --credentials-file "$T_DIR/d44-stripe.json" \
    --base-url "$GWURL" --priority 1 2>>"$T_DIR/d44-ctl.err")
D_TA=$("${D_CTL[@]}" tenant create "threeds-adyen-$$" 2>/dev/null)
D_KA=$("${D_CTL[@]}" key create --tenant "$D_TA" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
D_GA=$("${D_CTL[@]}" gateway add --tenant "$D_TA" --kind adyen --credentials-file "$T_DIR/d44-adyen.json" \
    --base-url "$GWURL" --priority 1 2>>"$T_DIR/d44-ctl.err")
expect_match "fixtures: a Stripe tenant and an Adyen tenant" "$D_GS $D_GA" '^gw_[0-9A-Za-z]{22} gw_[0-9A-Za-z]{22}$'

tokend_start D44 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 5000 || { fail "tokend starts"; return; }
D_H2C="http://127.0.0.1:$H2C_D44"

dapi() { # KEY METHOD PATH [BODY] -> "<json>\n<status>"
    local a=(-s --http2-prior-knowledge -X "$2" -H "authorization: Bearer $1" -w '\n%{http_code}')
    [ -n "${4:-}" ] && a+=(-H 'content-type: application/json' --data-binary "$4")
    curl "${a[@]}" "$D_H2C$3"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
tokenise() { # KEY PAN -> token id
    js "$(dapi "$1" POST /v1/tokens "{\"card\":{\"number\":\"$2\",\"exp_month\":3,\"exp_year\":$D_Y,\"cvc\":\"737\"}}")" .id
}
charge() { # KEY TOKEN OFF_SESSION [extra members]
    dapi "$1" POST /v1/charges "{\"token\":\"$2\",\"amount\":2500,\"currency\":\"eur\",\"off_session\":$3${4:+,$4}}"
}
# the customer's browser: the issuer page, then the button; prints the Location it is sent to
acs() { # URL complete|fail
    local page
    page=$(curl -s --cacert "$T_DIR/tls.crt" "$1")
    grep -q "id=\"$2\"" <<<"$page" || { echo "no-$2-button"; return; }
    curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -w '%{http_code} %{redirect_url}' "$1/$2"
}
qparam() { sed -n "s/.*[?&]$2=\([^&]*\).*/\1/p" <<<"$1"; }
summary() { js "$1" '[.status, (.failure_code // "-"), (.decline_code // "-")]|join(" ")'; }

# --- Stripe: 4000002760003184 authenticates every payment ------------------------------------------
TOK=$(tokenise "$D_KS" 4000002760003184)
expect_match "stripe: the 3-D Secure card tokenises (a PaymentMethod is not a payment)" "$TOK" '^tok_'
out=$(charge "$D_KS" "$TOK" false "\"return_url\":\"$D_RET\"")
CH=$(js "$out" .id)
expect_eq "stripe 3184, customer present: 202 requires_action" "$(st "$out") $(js "$out" .status)" "202 requires_action"
URL=$(js "$out" .next_action.url)
expect_eq "next_action is redirect_to_url" "$(js "$out" .next_action.type)" "redirect_to_url"
expect_match "next_action.url: gwsim's issuer page for the PaymentIntent" "$URL" "^https://localhost:$D_PORT/__gwsim/acs/pi_[0-9A-Za-z]{22}\$"
expect_eq "the charge names the PaymentIntent; nothing captured yet" \
    "$(js "$out" '.gateway_reference + " " + (.amount_captured|tostring) + " " + (.attempts[0].outcome)')" \
    "${URL##*/} 0 requires_action"
out=$(dapi "$D_KS" GET "/v1/charges/$CH")
expect_eq "GET: requires_action with the same next_action" "$(js "$out" '.status + " " + .next_action.url')" "requires_action $URL"
back=$(acs "$URL" complete)
expect_match "the issuer page sends the customer back to return_url (302)" "$back" "^302 $D_RET\\?payment_intent=${URL##*/}&"
expect_eq "... with redirect_status=succeeded" "$(qparam "$back" redirect_status)" succeeded
G0=$(gs '.requests["stripe.payment_intents.get"]')
out=$(dapi "$D_KS" POST "/v1/charges/$CH/complete" '{}')
expect_eq "complete: 200 succeeded, captured, next_action gone" \
    "$(st "$out") $(js "$out" '.status + " " + (.amount_captured|tostring) + " " + (.next_action|tostring)')" "200 succeeded 2500 null"
expect_eq "complete retrieved the PaymentIntent once" "$(($(gs '.requests["stripe.payment_intents.get"]') - G0))" 1
out=$(dapi "$D_KS" POST "/v1/charges/$CH/complete")
expect_eq "complete again: the decided charge as it is, no gateway call" \
    "$(st "$out") $(js "$out" .status) $(($(gs '.requests["stripe.payment_intents.get"]') - G0))" "200 succeeded 1"
expect_eq "events: requires_action, then succeeded" \
    "$(D_PSQL "SELECT string_agg(type, ',' ORDER BY created_at, type) FROM ledger.events WHERE tenant_id = '$D_TS' AND data->>'id' = '$CH'")" \
    "charge.requires_action,charge.succeeded"

# the customer fails the challenge
out=$(charge "$D_KS" "$TOK" false "\"return_url\":\"$D_RET\"")
CH2=$(js "$out" .id)
back=$(acs "$(js "$out" .next_action.url)" fail)
expect_eq "failed challenge: sent back with redirect_status=failed" "$(qparam "$back" redirect_status)" failed
out=$(dapi "$D_KS" POST "/v1/charges/$CH2/complete")
expect_eq "complete after a failed challenge: declined authentication_failed" "$(st "$out") $(summary "$out")" \
    "200 declined authentication_failed authentication_failed"
# off session: nobody to authenticate
out=$(charge "$D_KS" "$TOK" true)
expect_eq "stripe 3184 off session: 201 declined authentication_required" "$(st "$out") $(summary "$out")" \
    "201 declined authentication_required authentication_required"
expect_eq "... gwsim declined it as Stripe does (402 authentication_required)" "$(gs .authentication.required_declines)" 1

# --- Stripe: 4000002500003155 authenticates unless set up; 4000000000003220 -------------------------
TOK55=$(tokenise "$D_KS" 4000002500003155)
out=$(charge "$D_KS" "$TOK55" true)
expect_eq "stripe 3155 off session before any set-up: declined authentication_required" "$(summary "$out")" \
    "declined authentication_required authentication_required"
out=$(charge "$D_KS" "$TOK55" false "\"return_url\":\"$D_RET\"")
CH3=$(js "$out" .id)
expect_eq "stripe 3155 customer present: 202 requires_action" "$(st "$out") $(js "$out" .status)" "202 requires_action"
acs "$(js "$out" .next_action.url)" complete >/dev/null
out=$(dapi "$D_KS" POST "/v1/charges/$CH3/complete")
expect_eq "... authenticated with setup_future_usage=off_session: succeeded" "$(js "$out" .status)" succeeded
out=$(charge "$D_KS" "$TOK55" true)
expect_eq "stripe 3155 off session once set up: 201 succeeded (an invoice run)" "$(st "$out") $(js "$out" .status)" "201 succeeded"
TOK20=$(tokenise "$D_KS" 4000000000003220)
out=$(charge "$D_KS" "$TOK20" false)
expect_eq "stripe 3220 customer present without return_url: declined authentication_required (only Stripe.js could follow)" \
    "$(st "$out") $(summary "$out")" "201 declined authentication_required authentication_required"
out=$(charge "$D_KS" "$TOK20" false "\"return_url\":\"$D_RET?order=7\"" )
CH4=$(js "$out" .id)
back=$(acs "$(js "$out" .next_action.url)" complete)
expect_match "stripe 3220: a return_url with a query keeps it (&payment_intent=...)" "$back" "^302 $D_RET\\?order=7&payment_intent=pi_"
# a manual-capture charge: authenticated, then requires_capture, then captured
out=$(charge "$D_KS" "$TOK20" false "\"return_url\":\"$D_RET\",\"capture\":false")
CH5=$(js "$out" .id)
acs "$(js "$out" .next_action.url)" complete >/dev/null
out=$(dapi "$D_KS" POST "/v1/charges/$CH5/complete")
expect_eq "authorise-only charge after authentication: requires_capture" "$(js "$out" '.status + " " + (.amount_captured|tostring)')" "requires_capture 0"
out=$(dapi "$D_KS" POST "/v1/charges/$CH5/capture" '{}')
expect_eq "... then captured" "$(st "$out") $(js "$out" .status)" "200 succeeded"

# --- a webhook decides a waiting charge ---------------------------------------------------------------
out=$(dapi "$D_KS" POST "/v1/charges/$CH4/complete")
expect_eq "(3220 completed through the API)" "$(js "$out" .status)" succeeded
out=$(charge "$D_KS" "$TOK" false "\"return_url\":\"$D_RET\"")
CH6=$(js "$out" .id)
PI6=$(js "$out" .gateway_reference)
acs "$(js "$out" .next_action.url)" complete >/dev/null
EV="{\"id\":\"evt_3ds_$$\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\",\"data\":{\"object\":{\"id\":\"$PI6\",\"object\":\"payment_intent\",\"amount_received\":2500}}}"
T=$(date +%s)
SIG=$(printf '%s' "$T.$EV" | openssl dgst -sha256 -hmac "$D_WHSEC" -r | cut -d' ' -f1)
out=$(curl -s --http2-prior-knowledge -X POST -H 'content-type: application/json' -H "Stripe-Signature: t=$T,v1=$SIG" \
    --data-binary "$EV" -w '\n%{http_code}' "$D_H2C/v1/webhooks/stripe/$D_GS")
expect_eq "stripe webhook payment_intent.succeeded for a requires_action charge: applied" "$(st "$out") $(js "$out" .applied)" "200 true"
out=$(dapi "$D_KS" GET "/v1/charges/$CH6")
expect_eq "... the charge is succeeded, next_action gone" "$(js "$out" '.status + " " + (.amount_captured|tostring) + " " + (.next_action|tostring)')" "succeeded 2500 null"
G0=$(gs '.requests["stripe.payment_intents.get"]')
out=$(dapi "$D_KS" POST "/v1/charges/$CH6/complete")
expect_eq "complete after the webhook: 200 succeeded, no gateway call" \
    "$(st "$out") $(js "$out" .status) $(($(gs '.requests["stripe.payment_intents.get"]') - G0))" "200 succeeded 0"

# --- validation ------------------------------------------------------------------------------------------
TOK42=$(tokenise "$D_KS" 4242424242424242)
for bad in '"return_url":"javascript:alert(1)"' '"return_url":"https://x.example/a b"' '"return_url":17'; do
    out=$(charge "$D_KS" "$TOK42" false "$bad")
    expect_match "return_url refused: $bad" "$(st "$out") $(js "$out" '.code + " " + .param')" '^422 (invalid_return_url|invalid_type) return_url$'
done
out=$(charge "$D_KS" "$TOK42" false "\"return_url\":\"$D_RET\"")
expect_eq "an ordinary card with a return_url: 201 succeeded, no action" "$(st "$out") $(js "$out" '.status + " " + (.next_action|tostring)')" "201 succeeded null"
out=$(dapi "$D_KS" POST /v1/charges/ch_0000000000000000000000/complete)
expect_eq "complete of an unknown charge: 404" "$(st "$out") $(js "$out" .code)" "404 charge_not_found"
out=$(dapi "$D_KS" POST "/v1/charges/$CH/complete" '{"redirect_result":"a b"}')
expect_eq "complete: redirect_result must be printable, no spaces" "$(st "$out") $(js "$out" .code)" "422 invalid_redirect_result"
out=$(dapi "$D_KS" POST "/v1/charges/$CH/complete" '{"amount":1}')
expect_eq "complete: unknown field" "$(st "$out") $(js "$out" .code)" "422 unknown_field"

# --- Adyen: RedirectShopper, the shopper back with redirectResult, /payments/details ----------------------
TOKA=$(tokenise "$D_KA" 5454545454545454)
expect_match "adyen: the 3DS2 test card stores (the zero-value authorisation is not challenged)" "$TOKA" '^tok_'
out=$(charge "$D_KA" "$TOKA" false "\"return_url\":\"$D_RET\",$D_BROWSER")
CHA=$(js "$out" .id)
URLA=$(js "$out" .next_action.url)
expect_eq "adyen 5454 shopper present: 202 requires_action" "$(st "$out") $(js "$out" .status)" "202 requires_action"
expect_match "next_action.url: gwsim's issuer page for the pspReference" "$URLA" "^https://localhost:$D_PORT/__gwsim/acs/[A-Z0-9]{16}\$"
expect_eq "gateway_reference is the pspReference" "$(js "$out" .gateway_reference)" "${URLA##*/}"
back=$(acs "$URLA" complete)
RR=$(qparam "$back" redirectResult)
expect_match "the shopper is sent back to return_url with a redirectResult" "$back" "^302 $D_RET\\?redirectResult="
out=$(dapi "$D_KA" POST "/v1/charges/$CHA/complete" '{"redirect_result":"NOPE.000"}')
expect_eq "complete with a wrong redirect_result: 502 (Adyen refused the details)" "$(st "$out")" 502
out=$(dapi "$D_KA" GET "/v1/charges/$CHA")
expect_eq "... the charge still waits" "$(js "$out" .status)" requires_action
D0=$(gs '.requests["adyen.payments.details"]')
out=$(dapi "$D_KA" POST "/v1/charges/$CHA/complete" "{\"redirect_result\":\"$RR\"}")
expect_eq "complete with the redirectResult: 200 succeeded" "$(st "$out") $(js "$out" '.status + " " + (.amount_captured|tostring)')" "200 succeeded 2500"
expect_eq "... one /payments/details at Adyen" "$(($(gs '.requests["adyen.payments.details"]') - D0))" 1
out=$(charge "$D_KA" "$TOKA" false "\"return_url\":\"$D_RET\",$D_BROWSER")
CHA2=$(js "$out" .id)
back=$(acs "$(js "$out" .next_action.url)" fail)
out=$(dapi "$D_KA" POST "/v1/charges/$CHA2/complete" "{\"redirect_result\":\"$(qparam "$back" redirectResult)\"}")
expect_eq "adyen failed challenge: declined authentication_failed (refusal 11 after the challenge)" "$(summary "$out")" \
    "declined authentication_failed authentication_failed"
out=$(charge "$D_KA" "$TOKA" true)
expect_eq "adyen 5454 merchant-initiated (ContAuth): 201 succeeded (out of scope for SCA)" "$(st "$out") $(js "$out" .status)" "201 succeeded"
# Adyen's AUTHORISATION webhook decides a waiting charge (HMAC over Adyen's signing string)
out=$(charge "$D_KA" "$TOKA" false "\"return_url\":\"$D_RET\",$D_BROWSER")
CHA3=$(js "$out" .id)
PSP3=$(js "$out" .gateway_reference)
SIGN="$PSP3::$D_MERCHANT:tokend_${CHA3}_$D_GA:2500:EUR:AUTHORISATION:true"
HS=$(printf '%s' "$SIGN" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$D_HMAC" -binary | base64)
AEV="{\"live\":\"false\",\"notificationItems\":[{\"NotificationRequestItem\":{\"additionalData\":{\"hmacSignature\":\"$HS\"},\"amount\":{\"currency\":\"EUR\",\"value\":2500},\"eventCode\":\"AUTHORISATION\",\"eventDate\":\"2026-01-01T00:00:00+01:00\",\"merchantAccountCode\":\"$D_MERCHANT\",\"merchantReference\":\"tokend_${CHA3}_$D_GA\",\"paymentMethod\":\"mc\",\"pspReference\":\"$PSP3\",\"success\":\"true\"}}]}"
out=$(curl -s --http2-prior-knowledge -X POST -H 'content-type: application/json' --data-binary "$AEV" \
    -w '\n%{http_code}' "$D_H2C/v1/webhooks/adyen/$D_GA")
expect_eq "adyen AUTHORISATION webhook for a requires_action charge: accepted" "$(st "$out")" 200
out=$(dapi "$D_KA" GET "/v1/charges/$CHA3")
expect_eq "... the charge is succeeded, next_action gone" "$(js "$out" '.status + " " + (.next_action|tostring)')" "succeeded null"
TOKA84=$(tokenise "$D_KA" 4000002760003184)
out=$(charge "$D_KA" "$TOKA84" true)
expect_eq "adyen, an always-authenticate card off session: declined authentication_required (refusal 11)" \
    "$(st "$out") $(summary "$out")" "201 declined authentication_required authentication_required"
out=$(charge "$D_KA" "$TOKA" false)
expect_eq "adyen shopper present without return_url: declined authentication_required" "$(summary "$out")" \
    "declined authentication_required authentication_required"

# --- each published decline card, both gateways, through tokend ------------------------------------------
# PAN -> "stripe summary|adyen summary": Stripe declines at the charge; Adyen's zero-value
# authorisation refuses at tokenisation (402 + decline_code), Adyen's names for lost, stolen
# and velocity being restricted_card and withdrawal_count_limit_exceeded
declare -A WANT=(
    [4000000000000002]="declined card_declined generic_decline|402 card_declined generic_decline"
    [4000000000009995]="declined card_declined insufficient_funds|402 card_declined insufficient_funds"
    [4000000000009987]="declined card_declined lost_card|402 card_declined restricted_card"
    [4000000000009979]="declined card_declined stolen_card|402 card_declined restricted_card"
    [4000000000000069]="declined expired_card expired_card|402 card_declined expired_card"
    [4000000000000127]="declined incorrect_cvc incorrect_cvc|402 card_declined incorrect_cvc"
    [4000000000000119]="failed processing_error -|502 gateway_error -"
    [4100000000000019]="declined card_declined fraudulent|402 card_declined fraudulent"
    [4000000000006975]="declined card_declined card_velocity_exceeded|402 card_declined withdrawal_count_limit_exceeded"
    [4000000000000259]="succeeded - -|201 - -"
)
for pan in "${!WANT[@]}"; do
    t=$(tokenise "$D_KS" "$pan")
    out=$(charge "$D_KS" "$t" true)
    expect_eq "stripe ${pan}: ${WANT[$pan]%%|*}" "$(summary "$out")" "${WANT[$pan]%%|*}"
    out=$(dapi "$D_KA" POST /v1/tokens "{\"card\":{\"number\":\"$pan\",\"exp_month\":3,\"exp_year\":$D_Y,\"cvc\":\"737\"}}")
    expect_eq "adyen ${pan}: ${WANT[$pan]#*|}" "$(st "$out") $(js "$out" '[(.code // "-"), (.decline_code // "-")]|join(" ")')" "${WANT[$pan]#*|}"
done

# --- gwsim's 3-D Secure answers against Adyen's published schemas (Checkout v71) -------------------------
# ajv from tests/openapi (make lint-deps installs it, as t_30 needs)
acurl() { curl -s --cacert "$T_DIR/tls.crt" -H "x-api-key: $D_AK" -H 'content-type: application/json' "$GWURL$1" -d "$2"; }
SPM=$(acurl /v71/payments "{\"merchantAccount\":\"$D_MERCHANT\",\"reference\":\"c0\",\"amount\":{\"value\":0,\"currency\":\"EUR\"},\"storePaymentMethod\":true,\"shopperReference\":\"shopper_c\",\"shopperInteraction\":\"Ecommerce\",\"recurringProcessingModel\":\"UnscheduledCardOnFile\",\"paymentMethod\":{\"type\":\"scheme\",\"number\":\"4212345678901237\",\"expiryMonth\":\"03\",\"expiryYear\":\"$D_Y\",\"cvc\":\"737\"}}" |
    jq -r '.additionalData["tokenization.storedPaymentMethodId"]')
acurl /v71/payments "{\"merchantAccount\":\"$D_MERCHANT\",\"reference\":\"c1\",\"amount\":{\"value\":100,\"currency\":\"EUR\"},\"shopperReference\":\"shopper_c\",\"shopperInteraction\":\"Ecommerce\",\"recurringProcessingModel\":\"CardOnFile\",\"returnUrl\":\"$D_RET\",\"browserInfo\":{\"userAgent\":\"curl\",\"acceptHeader\":\"*/*\",\"language\":\"en\",\"colorDepth\":24,\"screenHeight\":1080,\"screenWidth\":1920,\"timeZoneOffset\":0,\"javaEnabled\":false},\"paymentMethod\":{\"type\":\"scheme\",\"storedPaymentMethodId\":\"$SPM\"}}" >"$T_DIR/d44-redirect.json"
back=$(acs "$(jq -r .action.url "$T_DIR/d44-redirect.json")" complete)
acurl /v71/payments/details "{\"details\":{\"redirectResult\":\"$(qparam "$back" redirectResult)\"}}" >"$T_DIR/d44-details.json"
expect_eq "gwsim adyen (the contract's example card 4212...1237): RedirectShopper, then Authorised" \
    "$(jq -r .resultCode "$T_DIR/d44-redirect.json") $(jq -r .resultCode "$T_DIR/d44-details.json")" "RedirectShopper Authorised"
cat >"$T_DIR/d44-contract.mjs" <<'MJS'
import fs from "fs";
const nm = process.argv[2] + "/node_modules/";
const Ajv2020 = (await import(nm + "ajv/dist/2020.js")).default;
const addFormats = (await import(nm + "ajv-formats/dist/index.js")).default;
const doc = JSON.parse(fs.readFileSync(process.argv[3]));
const ajv = new Ajv2020({strict: false, allErrors: true});
addFormats(ajv);
ajv.addSchema({$id: "adyen", components: doc.components});
let bad = 0;
for (const arg of process.argv.slice(4)) {
  const [file, schema] = arg.split(":");
  const v = ajv.compile({$ref: "adyen#/components/schemas/" + schema});
  if (!v(JSON.parse(fs.readFileSync(file)))) { bad++; console.log(schema, JSON.stringify(v.errors)); }
}
console.log(bad === 0 ? "conform" : "differ");
MJS
printf '{"details":{"redirectResult":"%s"}}' "$(qparam "$back" redirectResult)" >"$T_DIR/d44-details-req.json"
D_CONTRACT=""
for c in "${TOKEND_CONTRACTS:-}" "$PWD/../shared/contracts" /work/shared/contracts; do
    [ -n "$c" ] && [ -f "$c/adyen/CheckoutService-v71.json" ] && { D_CONTRACT="$c/adyen/CheckoutService-v71.json"; break; }
done
if [ -z "$D_CONTRACT" ]; then
    echo "  note  Adyen's OpenAPI document not found (TOKEND_CONTRACTS, ../shared/contracts): contract check not run" >&2
elif [ -d tests/openapi/node_modules/ajv ]; then
    out=$(node "$T_DIR/d44-contract.mjs" "$PWD/tests/openapi" "$D_CONTRACT" \
        "$T_DIR/d44-redirect.json:PaymentResponse" "$T_DIR/d44-details.json:PaymentDetailsResponse" \
        "$T_DIR/d44-details-req.json:PaymentDetailsRequest" 2>&1)
    expect_eq "gwsim's RedirectShopper and /payments/details answers (and the request) match Adyen's schemas" "$(tail -n1 <<<"$out")" conform
else
    fail "ajv is installed for the Adyen contract check (run: make lint-deps)"
fi

tokend_stop D44
expect_true "tokend log: no test PAN, no gateway key" \
    bash -c "! grep -hE '4000002760003184|5454545454545454|$D_SK|$D_AK' '$LOG_D44'"
expect_true "gwsim log: no PAN-shaped digits" \
    bash -c "! grep -hE '(^|[^0-9A-Za-z])[0-9]{12,19}([^0-9A-Za-z]|\$)' '$T_DIR/d44-gwsim.log'"
