# t_10_gwsim.sh - the gateway simulator (build/gwsim) over TLS with curl: Stripe and Adyen
# wire formats, every test card on both gateways, capture/cancel/refund flows, idempotency,
# authentication, validation, injected faults and latency, and the stats counters.

SK=sk_test_gwsim_it_$$
AK=adyen_it_key_$$
MERCHANT=TokendTestECOM
NEXT_YEAR=$(($(date -u +%Y) + 1))

# This file runs in a subshell of run.sh, so its T_PIDS additions do not reach run.sh's
# cleanup: stop our own simulators on the way out, whatever happens.
GW_PIDS=()
gwsim_stop_all() {
    local pid
    for pid in "${GW_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${GW_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    GW_PIDS=()
}
trap gwsim_stop_all EXIT

gwsim_start() { # gwsim_start NAME [extra args...]: sets GW_PORT_<NAME>, GW_PID_<NAME>
    local name=$1
    shift
    local port ready="$T_DIR/gwsim-$name.ready"
    port=$(free_port)
    rm -f "$ready"
    "$BUILD/gwsim" --listen "127.0.0.1:$port" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
        --stripe-key "$SK" --adyen-key "$AK" --adyen-merchant "$MERCHANT" --ready-file "$ready" \
        "$@" >>"$T_DIR/gwsim-$name.log" 2>&1 &
    local pid=$!
    T_PIDS+=("$pid")
    GW_PIDS+=("$pid")
    eval "GW_PORT_$name=$port GW_PID_$name=$pid"
    local i
    for i in $(seq 1 100); do
        [ -f "$ready" ] && return 0
        sleep 0.05
    done
    cat "$T_DIR/gwsim-$name.log" >&2
    return 1
}

gwsim_start A || { fail "gwsim starts"; return; }
ok "gwsim starts and writes its ready file"
GW="https://localhost:$GW_PORT_A"
CURL=(curl -s --cacert "$T_DIR/tls.crt")

# every helper prints "<body>\n<http status>"
stripe() { local path=$1; shift; "${CURL[@]}" -u "$SK:" -w '\n%{http_code}' "$@" "$GW$path"; }
adyen() {
    local path=$1 body=$2
    shift 2
    "${CURL[@]}" -H "X-API-Key: $AK" -H 'content-type: application/json' --data-binary "$body" \
        -w '\n%{http_code}' "$@" "$GW$path"
}
status_of() { tail -n 1 <<<"$1"; }
json_of() { sed '$d' <<<"$1"; }
jf() { json_of "$1" | jq -r "$2"; } # jf OUTPUT FILTER
stats() { "${CURL[@]}" "$GW/__gwsim/stats"; }
stat() { stats | jq -r "$1"; }

pm_create() { # pm_create PAN [CVC] -> output of POST /v1/payment_methods
    stripe /v1/payment_methods -d type=card -d "card[number]=$1" -d card[exp_month]=12 \
        -d "card[exp_year]=$NEXT_YEAR" -d "card[cvc]=${2:-123}"
}
pi_confirm() { # pi_confirm PM AMOUNT [extra curl args] -> output of POST /v1/payment_intents
    local pm=$1 amount=$2 cus=()
    shift 2
    # the reusable PaymentMethod goes with its Customer, as Stripe requires
    [ -n "${CUS_OK:-}" ] && [ "$pm" = "${PM_OK:-}" ] && cus=(-d "customer=$CUS_OK")
    stripe /v1/payment_intents -d "amount=$amount" -d currency=usd -d "payment_method=$pm" \
        -d confirm=true "${cus[@]}" "$@"
}
adyen_card() { # adyen_card PAN [HOLDER] [EXTRA JSON MEMBERS] -> /payments body
    printf '{"merchantAccount":"%s","amount":{"value":1000,"currency":"EUR"},"reference":"order-%s",%s"paymentMethod":{"type":"scheme","number":"%s","expiryMonth":"03","expiryYear":"%s","cvc":"737","holderName":"%s"}}' \
        "$MERCHANT" "$RANDOM" "${3:-}" "$1" "$NEXT_YEAR" "${2:-J Smith}"
}

# --- Stripe: PaymentMethods ----------------------------------------------------------------
out=$(pm_create 4242424242424242)
expect_eq "stripe pm: 200" "$(status_of "$out")" 200
expect_match "stripe pm: id pm_, object payment_method" "$(jf "$out" '.id + " " + .object')" '^pm_[0-9A-Za-z]{22} payment_method$'
expect_eq "stripe pm: card summary" "$(jf "$out" '[.type,.card.brand,.card.last4,.card.exp_month,.card.exp_year,.livemode]|@tsv')" \
    "$(printf 'card\tvisa\t4242\t12\t%s\tfalse' "$NEXT_YEAR")"
expect_match "stripe pm: fingerprint" "$(jf "$out" .card.fingerprint)" '^[0-9A-Za-z]{16}$'
expect_true "stripe pm: no PAN in the response" bash -c "! grep -q 4242424242424242 <<<'$out'"
FP1=$(jf "$out" .card.fingerprint)
expect_eq "stripe pm: same card, same fingerprint" "$(jf "$(pm_create 4242424242424242)" .card.fingerprint)" "$FP1"
out=$(pm_create 4242424242424241)
expect_eq "stripe pm: Luhn failure is 402 incorrect_number" "$(status_of "$out") $(jf "$out" '.error.type + " " + .error.code + " " + .error.param')" \
    "402 card_error incorrect_number card[number]"
out=$(stripe /v1/payment_methods -d type=card -d card[number]=4242424242424242 -d card[exp_month]=13 -d "card[exp_year]=$NEXT_YEAR")
expect_eq "stripe pm: month 13 is invalid_expiry_month" "$(status_of "$out") $(jf "$out" .error.code)" "402 invalid_expiry_month"
out=$(pm_create 4242424242424242 12)
expect_eq "stripe pm: 2-digit cvc is invalid_cvc" "$(status_of "$out") $(jf "$out" .error.code)" "402 invalid_cvc"

# --- Stripe: each test card at PaymentIntent confirm ----------------------------------------
declare -A STRIPE_WANT=(
    [4242424242424242]="200 succeeded"
    [4000000000000002]="402 card_error card_declined generic_decline"
    [4000000000009995]="402 card_error card_declined insufficient_funds"
    [4000000000000069]="402 card_error expired_card expired_card"
    [4000000000000127]="402 card_error incorrect_cvc incorrect_cvc"
    [4000000000000119]="402 card_error processing_error processing_error"
)
for pan in 4242424242424242 4000000000000002 4000000000009995 4000000000000069 4000000000000127 4000000000000119; do
    pm=$(jf "$(pm_create "$pan")" .id)
    out=$(pi_confirm "$pm" 1000)
    if [ "$(status_of "$out")" = 200 ]; then
        got="200 $(jf "$out" .status)"
    else
        got="$(status_of "$out") $(jf "$out" '[.error.type,.error.code,.error.decline_code]|join(" ")')"
    fi
    expect_eq "stripe card ${pan:12}: ${STRIPE_WANT[$pan]}" "$got" "${STRIPE_WANT[$pan]}"
done
pm=$(jf "$(pm_create 4000000000000002)" .id)
out=$(pi_confirm "$pm" 1000)
expect_match "stripe decline: error carries charge and the PaymentIntent" \
    "$(jf "$out" '[.error.charge,.error.payment_intent.status,.error.payment_intent.last_payment_error.decline_code,.error.doc_url]|@tsv')" \
    $'^ch_[0-9A-Za-z]+\trequires_payment_method\tgeneric_decline\thttps://stripe.com/docs/error-codes/card-declined$'
out=$(stripe /v1/payment_intents -d amount=1000 -d currency=usd -d payment_method=pm_card_chargeDeclinedInsufficientFunds -d confirm=true)
expect_eq "stripe pm_card_* test ids work" "$(status_of "$out") $(jf "$out" .error.decline_code)" "402 insufficient_funds"

# --- Stripe: succeeded charge, refunds --------------------------------------------------------
PM_OK=$(jf "$(pm_create 4242424242424242)" .id)
# --- Stripe: Customers; a PaymentMethod is reused only attached to one ----------------------
out=$(stripe /v1/customers -d "payment_method=$PM_OK" -d description=gwsim-test)
expect_match "stripe customer: 200, id cus_, object customer" "$(status_of "$out") $(jf "$out" '.id + " " + .object + " " + .description')" \
    '^200 cus_[0-9A-Za-z]{22} customer gwsim-test$'
CUS_OK=$(jf "$out" .id)
expect_eq "stripe customer: the PaymentMethod is attached" "$(jf "$(stripe "/v1/payment_methods/$PM_OK")" .customer)" "$CUS_OK"
expect_eq "stripe customer: GET" "$(jf "$(stripe "/v1/customers/$CUS_OK")" .id)" "$CUS_OK"
out=$(stripe /v1/customers -d "payment_method=$PM_OK")
expect_eq "stripe customer: a PaymentMethod attached elsewhere is refused" "$(status_of "$out") $(jf "$out" .error.type)" "400 invalid_request_error"
out=$(stripe /v1/payment_intents -d amount=1000 -d currency=usd -d "payment_method=$PM_OK" -d confirm=true)
expect_eq "stripe: an attached PaymentMethod without its customer is refused" "$(status_of "$out") $(jf "$out" .error.param)" "400 customer"
PM_ONCE=$(jf "$(pm_create 4242424242424242)" .id)
expect_eq "stripe: an unattached PaymentMethod pays once" "$(status_of "$(stripe /v1/payment_intents -d amount=100 -d currency=usd -d "payment_method=$PM_ONCE" -d confirm=true)")" 200
out=$(stripe /v1/payment_intents -d amount=100 -d currency=usd -d "payment_method=$PM_ONCE" -d confirm=true)
expect_eq "stripe: ... and is refused the second time" "$(status_of "$out") $(jf "$out" .error.code)" "400 payment_method_unexpected_state"
out=$(stripe "/v1/payment_methods/$PM_ONCE/attach" -d "customer=$CUS_OK")
expect_eq "stripe: a consumed PaymentMethod cannot be attached" "$(status_of "$out") $(jf "$out" .error.code)" "400 payment_method_unexpected_state"
PM_DET=$(jf "$(pm_create 5555555555554444)" .id)
out=$(stripe "/v1/payment_methods/$PM_DET/attach" -d "customer=$CUS_OK")
expect_eq "stripe attach: 200, customer set" "$(status_of "$out") $(jf "$out" .customer)" "200 $CUS_OK"
out=$(stripe /v1/payment_intents -d amount=100 -d currency=usd -d "payment_method=$PM_DET" -d "customer=$CUS_OK" -d confirm=true -d off_session=true)
expect_eq "stripe: attached PaymentMethod, off_session=true: succeeded" "$(status_of "$out") $(jf "$out" '.status + " " + .customer')" "200 succeeded $CUS_OK"
out=$(stripe "/v1/payment_methods/$PM_DET/detach" -X POST)
expect_eq "stripe detach: 200, no customer" "$(status_of "$out") $(jf "$out" .customer)" "200 null"
out=$(stripe "/v1/payment_methods/$PM_DET/detach" -X POST)
expect_eq "stripe detach twice: 400" "$(status_of "$out") $(jf "$out" .error.type)" "400 invalid_request_error"
out=$(stripe /v1/payment_intents -d amount=100 -d currency=usd -d "payment_method=$PM_DET" -d confirm=true)
expect_eq "stripe: a detached PaymentMethod is refused" "$(status_of "$out") $(jf "$out" .error.code)" "400 payment_method_unexpected_state"
out=$(stripe /v1/payment_intents -d amount=100 -d currency=usd -d "payment_method=$PM_OK" -d "customer=$CUS_OK" -d off_session=true)
expect_eq "stripe: off_session needs confirm=true" "$(status_of "$out") $(jf "$out" .error.param)" "400 off_session"
out=$(pi_confirm "$PM_OK" 1000 -d description=order-1 -d 'metadata[order_id]=o-1')
PI=$(jf "$out" .id)
expect_eq "stripe pi: automatic capture" "$(jf "$out" '[.object,.status,.amount,.amount_received,.amount_capturable,.capture_method,.currency,.description,.metadata.order_id]|@tsv')" \
    "$(printf 'payment_intent\tsucceeded\t1000\t1000\t0\tautomatic\tusd\torder-1\to-1')"
expect_match "stripe pi: ids" "$PI $(jf "$out" .latest_charge)" '^pi_[0-9A-Za-z]{22} ch_[0-9A-Za-z]{22}$'
out=$(stripe "/v1/payment_intents/$PI")
expect_eq "stripe pi: GET" "$(status_of "$out") $(jf "$out" .status)" "200 succeeded"
out=$(stripe /v1/refunds -d "payment_intent=$PI" -d amount=300)
expect_eq "stripe refund: partial" "$(status_of "$out") $(jf "$out" '[.object,.amount,.status,.payment_intent]|join(" ")')" "200 refund 300 succeeded $PI"
expect_match "stripe refund: id re_" "$(jf "$out" .id)" '^re_[0-9A-Za-z]{22}$'
out=$(stripe /v1/refunds -d "payment_intent=$PI" -d amount=800)
expect_eq "stripe refund: more than left is amount_too_large" "$(status_of "$out") $(jf "$out" .error.code)" "400 amount_too_large"
out=$(stripe /v1/refunds -d "payment_intent=$PI")
expect_eq "stripe refund: the rest" "$(status_of "$out") $(jf "$out" .amount)" "200 700"
out=$(stripe /v1/refunds -d "payment_intent=$PI")
expect_eq "stripe refund: nothing left is charge_already_refunded" "$(status_of "$out") $(jf "$out" .error.code)" "400 charge_already_refunded"
out=$(stripe /v1/refunds -d payment_intent=pi_nope)
expect_eq "stripe refund: unknown intent is resource_missing" "$(status_of "$out") $(jf "$out" '.error.code + " " + .error.param')" "400 resource_missing payment_intent"

# --- Stripe: manual capture and cancel ---------------------------------------------------------
out=$(pi_confirm "$PM_OK" 1000 -d capture_method=manual)
PIM=$(jf "$out" .id)
expect_eq "stripe manual: requires_capture" "$(jf "$out" '[.status,.amount_capturable,.amount_received]|@tsv')" "$(printf 'requires_capture\t1000\t0')"
out=$(stripe "/v1/payment_intents/$PIM/capture" -d amount_to_capture=1200)
expect_eq "stripe capture: above capturable is amount_too_large" "$(status_of "$out") $(jf "$out" .error.code)" "400 amount_too_large"
out=$(stripe "/v1/payment_intents/$PIM/capture" -d amount_to_capture=600)
expect_eq "stripe capture: partial" "$(status_of "$out") $(jf "$out" '[.status,.amount_received,.amount_capturable]|@tsv')" "$(printf '200 succeeded\t600\t0')"
out=$(stripe "/v1/payment_intents/$PIM/capture" -X POST)
expect_eq "stripe capture: twice is payment_intent_unexpected_state" "$(status_of "$out") $(jf "$out" .error.code)" "400 payment_intent_unexpected_state"
out=$(stripe "/v1/payment_intents/$PIM/cancel" -X POST)
expect_eq "stripe cancel: succeeded cannot be canceled" "$(status_of "$out") $(jf "$out" .error.code)" "400 payment_intent_unexpected_state"
PIC=$(jf "$(pi_confirm "$PM_OK" 1000 -d capture_method=manual)" .id)
out=$(stripe "/v1/payment_intents/$PIC/cancel" -d cancellation_reason=requested_by_customer)
expect_eq "stripe cancel: authorised intent" "$(status_of "$out") $(jf "$out" '[.status,.cancellation_reason,.amount_capturable]|@tsv')" "$(printf '200 canceled\trequested_by_customer\t0')"
out=$(stripe /v1/payment_intents/pi_missing/capture -X POST)
expect_eq "stripe capture: unknown intent is 404 resource_missing" "$(status_of "$out") $(jf "$out" .error.code)" "404 resource_missing"

# --- Stripe: validation ------------------------------------------------------------------------
out=$(stripe /v1/payment_intents -d currency=usd)
expect_eq "stripe: missing amount" "$(status_of "$out") $(jf "$out" '[.error.type,.error.code,.error.param]|join(" ")')" "400 invalid_request_error parameter_missing amount"
out=$(stripe /v1/payment_intents -d amount=0 -d currency=usd)
expect_eq "stripe: amount 0 is amount_too_small" "$(status_of "$out") $(jf "$out" .error.code)" "400 amount_too_small"
out=$(stripe /v1/payment_intents -d amount=10.5 -d currency=usd)
expect_eq "stripe: amount 10.5 is not an integer" "$(status_of "$out") $(jf "$out" .error.code)" "400 parameter_invalid_integer"
out=$(stripe /v1/payment_intents -d amount=1000 -d currency=xyz)
expect_eq "stripe: unknown currency" "$(status_of "$out") $(jf "$out" .error.param)" "400 currency"
out=$(stripe /v1/payment_intents -d amount=1005 -d currency=kwd)
expect_eq "stripe: KWD needs the last digit 0" "$(status_of "$out") $(jf "$out" .error.code)" "400 invalid_charge_amount"
out=$(stripe /v1/payment_intents -d amount=1000 -d currency=kwd)
expect_eq "stripe: KWD 1.000 is accepted" "$(status_of "$out") $(jf "$out" .status)" "200 requires_payment_method"
out=$(stripe /v1/payment_intents -d amount=500 -d currency=jpy -d "payment_method=$PM_OK" -d confirm=true -d "customer=$CUS_OK")
expect_eq "stripe: JPY 500 (zero-decimal)" "$(status_of "$out") $(jf "$out" '.amount_received|tostring') $(jf "$out" .currency)" "200 500 jpy"
out=$(stripe /v1/payment_intents -d amount=1050 -d currency=isk)
expect_eq "stripe: ISK must be divisible by 100" "$(status_of "$out") $(jf "$out" .error.code)" "400 invalid_charge_amount_no_decimal_compatible"
out=$(stripe /v1/payment_intents -d amount=1000 -d currency=usd -d colour=blue)
expect_eq "stripe: unknown parameter" "$(status_of "$out") $(jf "$out" .error.code)" "400 parameter_unknown"
out=$(stripe /v1/payment_intents -d amount=1000 -d currency=usd -d payment_method=pm_nope -d confirm=true)
expect_eq "stripe: unknown payment method" "$(status_of "$out") $(jf "$out" '.error.code + " " + .error.param')" "400 resource_missing payment_method"
out=$(stripe /v1/charges -d amount=1)
expect_eq "stripe: unknown route is 404" "$(status_of "$out") $(jf "$out" .error.type)" "404 invalid_request_error"

# --- Stripe: authentication ------------------------------------------------------------------
out=$("${CURL[@]}" -w '\n%{http_code}' "$GW/v1/payment_intents" -d amount=1000 -d currency=usd)
expect_eq "stripe auth: missing key is 401" "$(status_of "$out") $(jf "$out" .error.type)" "401 invalid_request_error"
out=$("${CURL[@]}" -w '\n%{http_code}' -H "Authorization: Bearer sk_test_wrongwrongwrong" "$GW/v1/payment_intents" -d amount=1000 -d currency=usd)
expect_eq "stripe auth: wrong key is 401" "$(status_of "$out")" 401
expect_match "stripe auth: key masked in the message" "$(jf "$out" .error.message)" 'sk_test_\*\*\*\*rong$'
out=$("${CURL[@]}" -w '\n%{http_code}' -H "Authorization: Bearer $SK" "$GW/v1/payment_intents" -d amount=1000 -d currency=usd)
expect_eq "stripe auth: Bearer works" "$(status_of "$out")" 200
hdrs=$("${CURL[@]}" -D - -o /dev/null -u "$SK:" -H 'Stripe-Version: 2023-10-16' "$GW/v1/payment_intents/$PI")
expect_match "stripe: Stripe-Version echoed" "$hdrs" $'stripe-version: 2023-10-16\r'
expect_match "stripe: request-id header" "$hdrs" 'request-id: req_'

# --- Stripe: idempotency ---------------------------------------------------------------------
C0=$(stat .charges)
KEY="idem-$$-1"
out1=$(pi_confirm "$PM_OK" 2500 -H "Idempotency-Key: $KEY")
hdrs=$("${CURL[@]}" -D - -o "$T_DIR/replay.json" -u "$SK:" -H "Idempotency-Key: $KEY" "$GW/v1/payment_intents" \
    -d amount=2500 -d currency=usd -d "payment_method=$PM_OK" -d confirm=true -d "customer=$CUS_OK")
expect_eq "stripe idempotency: same key, same params -> same intent" "$(jq -r .id "$T_DIR/replay.json")" "$(jf "$out1" .id)"
expect_match "stripe idempotency: Idempotent-Replayed: true" "$hdrs" $'idempotent-replayed: true\r'
expect_eq "stripe idempotency: exactly one charge" "$(stat .charges)" "$((C0 + 1))"
out=$(pi_confirm "$PM_OK" 2600 -H "Idempotency-Key: $KEY")
expect_eq "stripe idempotency: same key, other params -> 400 idempotency_error" "$(status_of "$out") $(jf "$out" .error.type)" "400 idempotency_error"
pm=$(jf "$(pm_create 4000000000009995)" .id)
out1=$(pi_confirm "$pm" 1000 -H "Idempotency-Key: idem-$$-decl")
out2=$(pi_confirm "$pm" 1000 -H "Idempotency-Key: idem-$$-decl")
expect_eq "stripe idempotency: a decline (402) is replayed as is" "$(status_of "$out2") $(jf "$out2" .error.payment_intent.id)" "402 $(jf "$out1" .error.payment_intent.id)"
out1=$(stripe /v1/payment_intents -d currency=usd -H "Idempotency-Key: idem-$$-val")
out2=$(stripe /v1/payment_intents -d amount=100 -d currency=usd -H "Idempotency-Key: idem-$$-val")
expect_eq "stripe idempotency: a validation error is not saved" "$(status_of "$out1") $(status_of "$out2")" "400 200"

# --- Adyen: each test card ---------------------------------------------------------------------
declare -A ADYEN_WANT=(
    [4242424242424242]="200 Authorised"
    [4000000000000002]="200 Refused Refused 2"
    [4000000000009995]="200 Refused Not enough balance 12"
    [4000000000000069]="200 Refused Expired Card 6"
    [4000000000000127]="200 Refused CVC Declined 24"
    [4000000000000119]="200 Error Acquirer Error 4"
)
for pan in 4242424242424242 4000000000000002 4000000000009995 4000000000000069 4000000000000127 4000000000000119; do
    out=$(adyen /v71/payments "$(adyen_card "$pan")")
    got="$(status_of "$out") $(jf "$out" '[.resultCode,.refusalReason,.refusalReasonCode]|map(select(. != null))|join(" ")')"
    expect_eq "adyen card ${pan:12}: ${ADYEN_WANT[$pan]}" "$got" "${ADYEN_WANT[$pan]}"
done
out=$(adyen /v71/payments "$(adyen_card 5555555555554444 NOT_ENOUGH_BALANCE)")
expect_eq "adyen holderName NOT_ENOUGH_BALANCE" "$(jf "$out" '.resultCode + "/" + .refusalReason')" "Refused/Not enough balance"
out=$(adyen /v71/payments "$(adyen_card 5555555555554444 CVC_DECLINED)")
expect_eq "adyen holderName CVC_DECLINED" "$(jf "$out" '.resultCode + "/" + .refusalReason + "/" + .refusalReasonCode')" "Refused/CVC Declined/24"
out=$(adyen /v71/payments "$(adyen_card 5555555555554444 'J Smith' '"additionalData":{"RequestedTestAcquirerResponseCode":6},')")
expect_eq "adyen RequestedTestAcquirerResponseCode 6" "$(jf "$out" '.resultCode + "/" + .refusalReason')" "Refused/Expired Card"
out=$(adyen /v71/payments "$(adyen_card 5555555555554444)")
expect_eq "adyen mastercard brand" "$(jf "$out" '.paymentMethod.brand + " " + .additionalData.cardSummary')" "mc 4444"
expect_match "adyen pspReference" "$(jf "$out" .pspReference)" '^[A-Z0-9]{16}$'

# --- Adyen: capture, refund, cancel ------------------------------------------------------------
out=$(adyen /v71/payments "$(adyen_card 4242424242424242)")
PSP=$(jf "$out" .pspReference)
expect_eq "adyen payment: amount and reference echoed" "$(jf "$out" '.amount.value|tostring') $(jf "$out" .amount.currency)" "1000 EUR"
cap() { printf '{"merchantAccount":"%s","amount":{"value":%s,"currency":"EUR"},"reference":"%s"}' "$MERCHANT" "$1" "$2"; }
out=$(adyen "/v71/payments/$PSP/captures" "$(cap 1000 cap-1)")
expect_eq "adyen capture: 201 received" "$(status_of "$out") $(jf "$out" '[.status,.paymentPspReference,.reference,.merchantAccount,(.amount.value|tostring)]|join(" ")')" \
    "201 received $PSP cap-1 $MERCHANT 1000"
expect_match "adyen capture: its own pspReference" "$(jf "$out" .pspReference)" '^[A-Z0-9]{16}$'
out=$(adyen "/v71/payments/$PSP/refunds" "$(cap 400 ref-1)")
expect_eq "adyen refund: 201 received" "$(status_of "$out") $(jf "$out" .status)" "201 received"
out=$(adyen "/v71/payments/$PSP/refunds" "$(cap 700 ref-2)")
expect_eq "adyen refund: above the captured rest is 422 137" "$(status_of "$out") $(jf "$out" '.errorCode + " " + .errorType')" "422 137 validation"
PSP2=$(jf "$(adyen /v71/payments "$(adyen_card 4242424242424242)")" .pspReference)
out=$(adyen "/v71/payments/$PSP2/cancels" "{\"merchantAccount\":\"$MERCHANT\",\"reference\":\"can-1\"}")
expect_eq "adyen cancel: 201 received" "$(status_of "$out") $(jf "$out" '.status + " " + .paymentPspReference')" "201 received $PSP2"
out=$(adyen "/v71/payments/$PSP2/captures" "$(cap 1000 cap-2)")
expect_eq "adyen capture after cancel: 422" "$(status_of "$out")" 422
out=$(adyen /v71/payments/NOSUCHPSPREFEREN/captures "$(cap 1000 cap-3)")
expect_eq "adyen capture: unknown payment" "$(status_of "$out") $(jf "$out" .errorCode)" "422 167"
out=$(adyen /v71/payments "$(adyen_card 4242424242424242 'J Smith' '"captureDelayHours":0,')")
PSP3=$(jf "$out" .pspReference)
out=$(adyen "/v71/payments/$PSP3/refunds" "$(cap 1000 ref-3)")
expect_eq "adyen captureDelayHours 0: refund without capture" "$(status_of "$out")" 201

# --- Adyen: tokens (stored payment methods) ----------------------------------------------------
store='"shopperReference":"shopper-it-1","storePaymentMethod":true,"recurringProcessingModel":"CardOnFile","shopperInteraction":"Ecommerce",'
out=$(adyen /v71/payments "$(adyen_card 4242424242424242 'J Smith' "$store")")
SPM=$(jf "$out" '.additionalData["tokenization.storedPaymentMethodId"]')
expect_match "adyen storePaymentMethod: token in additionalData" "$SPM $(jf "$out" '.additionalData["tokenization.shopperReference"]')" '^[A-Z0-9]{16} shopper-it-1$'
mit() { printf '{"merchantAccount":"%s","amount":{"value":500,"currency":"EUR"},"reference":"mit-%s","paymentMethod":{"type":"scheme","storedPaymentMethodId":"%s"},"shopperReference":"%s","shopperInteraction":"ContAuth","recurringProcessingModel":"UnscheduledCardOnFile"}' \
    "$MERCHANT" "$RANDOM" "$1" "$2"; }
out=$(adyen /v71/payments "$(mit "$SPM" shopper-it-1)")
expect_eq "adyen token payment: Authorised" "$(status_of "$out") $(jf "$out" .resultCode)" "200 Authorised"
out=$(adyen /v71/payments "$(mit "$SPM" someone-else)")
expect_eq "adyen token with another shopper: 422 800" "$(status_of "$out") $(jf "$out" .errorCode)" "422 800"
out=$(adyen /v71/storedPaymentMethods "{\"merchantAccount\":\"$MERCHANT\",\"shopperReference\":\"shopper-it-2\",\"recurringProcessingModel\":\"UnscheduledCardOnFile\",\"paymentMethod\":{\"type\":\"scheme\",\"number\":\"4000000000000002\",\"expiryMonth\":\"03\",\"expiryYear\":\"$NEXT_YEAR\",\"holderName\":\"J Smith\"}}")
SPM2=$(jf "$out" .id)
expect_eq "adyen storedPaymentMethods: 201 with lastFour" "$(status_of "$out") $(jf "$out" '.lastFour + " " + .type')" "201 0002 scheme"
out=$(adyen /v71/payments "$(mit "$SPM2" shopper-it-2)")
expect_eq "adyen token of a declining card: Refused at payment" "$(jf "$out" '.resultCode + "/" + .refusalReason')" "Refused/Refused"

# --- Adyen: idempotency, authentication, validation -------------------------------------------
C0=$(stat .charges)
body=$(adyen_card 4242424242424242)
out1=$(adyen /v71/payments "$body" -H "Idempotency-Key: adyen-$$-1")
hdrs=$("${CURL[@]}" -D - -o "$T_DIR/areplay.json" -H "X-API-Key: $AK" -H 'content-type: application/json' \
    -H "Idempotency-Key: adyen-$$-1" --data-binary "$body" "$GW/v71/payments")
expect_eq "adyen idempotency: same pspReference" "$(jq -r .pspReference "$T_DIR/areplay.json")" "$(jf "$out1" .pspReference)"
expect_match "adyen idempotency: key echoed" "$hdrs" "idempotency-key: adyen-$$-1"
expect_eq "adyen idempotency: exactly one charge" "$(stat .charges)" "$((C0 + 1))"
out=$("${CURL[@]}" -w '\n%{http_code}' -H 'X-API-Key: wrong' -H 'content-type: application/json' --data-binary "$body" "$GW/v71/payments")
expect_eq "adyen auth: wrong key is 401 security" "$(status_of "$out") $(jf "$out" '.errorCode + " " + .errorType')" "401 000 security"
out=$(adyen /v71/payments "{\"merchantAccount\":\"$MERCHANT\",\"reference\":\"x\",\"paymentMethod\":{\"type\":\"scheme\"}}")
expect_eq "adyen: missing amount is 422 100" "$(status_of "$out") $(jf "$out" .errorCode)" "422 100"
out=$(adyen /v71/payments "$(sed 's/"EUR"/"XYZ"/' <<<"$body")")
expect_eq "adyen: unknown currency is 422 138" "$(status_of "$out") $(jf "$out" .errorCode)" "422 138"
out=$(adyen /v71/payments "$(sed "s/$MERCHANT/OtherMerchant/" <<<"$body")")
expect_eq "adyen: other merchant account is 403 901" "$(status_of "$out") $(jf "$out" .errorCode)" "403 901"
out=$(adyen /v71/payments "$(adyen_card 4242424242424241)")
expect_eq "adyen: Luhn failure is 422 101" "$(status_of "$out") $(jf "$out" '.errorCode + " " + .message')" "422 101 Invalid card number"
out=$(adyen /v71/payments '{"not json')
expect_eq "adyen: malformed JSON is 400" "$(status_of "$out") $(jf "$out" .errorCode)" "400 000"

# --- faults ----------------------------------------------------------------------------------
out=$(stripe "/v1/payment_intents/$PI" -H 'X-Gwsim-Fault: 500')
expect_eq "fault 500 (stripe)" "$(status_of "$out") $(jf "$out" .error.type)" "500 api_error"
out=$(stripe "/v1/payment_intents/$PI" -H 'X-Gwsim-Fault: 429')
expect_eq "fault 429 (stripe)" "$(status_of "$out") $(jf "$out" '.error.type + " " + .error.code')" "429 invalid_request_error rate_limit"
out=$(adyen /v71/payments "$body" -H 'X-Gwsim-Fault: 500')
expect_eq "fault 500 (adyen)" "$(status_of "$out") $(jf "$out" .status)" "500 500"
"${CURL[@]}" -o /dev/null -u "$SK:" -H 'X-Gwsim-Fault: reset' "$GW/v1/payment_intents/$PI"
rc=$?
expect_true "fault reset: curl fails (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 28
"${CURL[@]}" -o /dev/null --max-time 1 -u "$SK:" -H 'X-Gwsim-Fault: timeout' "$GW/v1/payment_intents/$PI"
expect_eq "fault timeout: curl gives up (exit 28)" "$?" 28
t=$("${CURL[@]}" -o /dev/null -w '%{time_total}' -u "$SK:" -H 'X-Gwsim-Fault: latency=300' "$GW/v1/payment_intents/$PI")
expect_true "fault latency=300: took ${t}s >= 0.3" awk -v t="$t" 'BEGIN { exit !(t >= 0.3) }'
out=$(stripe "/v1/payment_intents/$PI" -H 'X-Gwsim-Fault: bogus')
expect_eq "fault: unknown value is 400" "$(status_of "$out")" 400
# the gateway charges but the answer is lost: the retry with the same key must not charge again
C0=$(stat .charges)
P0=$(stat .payment_intents_created)
KEY="idem-$$-lost"
"${CURL[@]}" -o /dev/null -u "$SK:" -H "Idempotency-Key: $KEY" -H 'X-Gwsim-Fault: reset-after' "$GW/v1/payment_intents" \
    -d amount=4200 -d currency=usd -d "payment_method=$PM_OK" -d confirm=true -d "customer=$CUS_OK"
rc=$?
expect_true "fault reset-after: the client sees no answer (exit $rc)" test "$rc" -ne 0
out=$(pi_confirm "$PM_OK" 4200 -H "Idempotency-Key: $KEY")
expect_eq "fault reset-after: the retry gets the saved intent" "$(status_of "$out") $(jf "$out" '.status + " " + (.amount|tostring)')" "200 succeeded 4200"
expect_eq "fault reset-after: exactly one charge at the simulator" "$(stat .charges) $(stat .payment_intents_created)" "$((C0 + 1)) $((P0 + 1))"

# --- a second instance: configured latency and fault rate ---------------------------------
gwsim_start B --latency-ms 250 --fault-rate-500 1 || fail "gwsim B starts"
t=$("${CURL[@]}" -o "$T_DIR/b.json" -w '%{http_code} %{time_total}' -u "$SK:" "https://localhost:$GW_PORT_B/v1/payment_intents/pi_x")
expect_eq "--fault-rate-500 1: every gateway call is 500" "${t%% *}" 500
expect_true "--latency-ms 250: took ${t#* }s >= 0.25" awk -v t="${t#* }" 'BEGIN { exit !(t >= 0.25) }'
expect_eq "--fault-rate-500 counted" "$("${CURL[@]}" "https://localhost:$GW_PORT_B/__gwsim/stats" | jq -r '.faults["500"]')" 1

# --- stats and reset --------------------------------------------------------------------------
s=$(stats)
expect_true "stats: request counters" test "$(jq -r '.requests["stripe.payment_intents.create"]' <<<"$s")" -gt 10 \
    -a "$(jq -r '.requests["adyen.payments"]' <<<"$s")" -gt 10 -a "$(jq -r '.requests["adyen.captures"]' <<<"$s")" -ge 3
expect_true "stats: replays, faults, refunds counted" test "$(jq -r .idempotent_replays <<<"$s")" -ge 4 \
    -a "$(jq -r '.faults.reset' <<<"$s")" -ge 2 -a "$(jq -r '.faults.timeout' <<<"$s")" -ge 1 -a "$(jq -r .refunds <<<"$s")" -ge 4
out=$("${CURL[@]}" -X POST "$GW/__gwsim/reset")
expect_eq "reset: state and counters cleared" "$(jq -r .status <<<"$out") $(stat '[.objects,.charges,.payment_intents_created]|join(" ")')" "reset 0 0 0"
out=$(stripe "/v1/payment_intents/$PI")
expect_eq "reset: old objects are gone" "$(status_of "$out")" 404
pm=$(jf "$(pm_create 4242424242424242)" .id)
pi_confirm "$pm" 1000 >/dev/null
expect_eq "stats after reset: exactly one charge" "$(stat '[.charges,.payment_intents_created,.stripe.payment_methods]|join(" ")')" "1 1 1"

# --- bounded store ----------------------------------------------------------------------------
gwsim_start C --max-objects 3 || fail "gwsim C starts"
for i in 1 2 3; do
    "${CURL[@]}" -o /dev/null -u "$SK:" "https://localhost:$GW_PORT_C/v1/payment_intents" -d amount=100 -d currency=usd
done
out=$("${CURL[@]}" -w '\n%{http_code}' -u "$SK:" "https://localhost:$GW_PORT_C/v1/payment_intents" -d amount=100 -d currency=usd)
expect_eq "--max-objects: full store is 503" "$(status_of "$out") $(jf "$out" .error.type)" "503 api_error"

# --- ALPN: h2 and http/1.1 like the real API hosts; --http1-only -----------------------------
expect_eq "alpn: curl gets HTTP/2" "$("${CURL[@]}" -o /dev/null -w '%{http_version}' "$GW/__gwsim/stats")" 2
expect_eq "alpn: an HTTP/1.1 client still gets HTTP/1.1" \
    "$("${CURL[@]}" --http1.1 -o /dev/null -w '%{http_version}' "$GW/__gwsim/stats")" 1.1
gwsim_start D --http1-only || fail "gwsim D (--http1-only) starts"
expect_eq "--http1-only: HTTP/1.1 even when the client offers h2" \
    "$("${CURL[@]}" --http2 -o /dev/null -w '%{http_version}' "https://localhost:$GW_PORT_D/__gwsim/stats")" 1.1
cv() { stat '[.connections_accepted, .requests_by_version.http2] | join(" ")'; }
read -r c0 h0 <<<"$(cv)"
urls=()
for i in 1 2 3 4 5 6; do urls+=("$GW/v1/payment_intents/$PI"); done
"${CURL[@]}" -Z --no-progress-meter -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -u "$SK:" "${urls[@]}"
read -r c1 h1 <<<"$(cv)"
# the second stats call is one more connection and one more request
expect_eq "h2: 6 parallel calls multiplexed on one connection" "$((c1 - c0 - 1)) $((h1 - h0 - 1))" "1 6"

# --- logs ------------------------------------------------------------------------------------
expect_true "logs: one line per request" grep -q '"gwsim: POST stripe.payment_intents.create -> 200' "$T_DIR/gwsim-A.log"
# a PAN-shaped run stands alone; not the tail of a hex address (0x602000000010) in a sanitizer report
expect_true "logs: no test PAN in any gwsim log" \
    bash -c "! grep -hE '4242424242424242|4000000000000002|4000000000009995|5555555555554444|(^|[^0-9A-Za-z])[0-9]{12,19}([^0-9A-Za-z]|\$)' '$T_DIR'/gwsim-*.log"

gwsim_stop_all
expect_true "gwsim stops on SIGTERM" bash -c "! kill -0 $GW_PID_A 2>/dev/null"
