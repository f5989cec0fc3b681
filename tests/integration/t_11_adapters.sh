# t_11_adapters.sh - the Stripe and Adyen adapters over real TLS against gwsim: every
# operation on both gateways (build/gwcall drives an adapter through tok_httpc), each mapped
# decline and error, 500 / 429 / timeout / connection refused / reset -> unavailable, TLS
# refusals (certificate for another name, untrusted CA) -> error and never a success; then
# end to end through tokend (tokenctl gateway add, tokenise, charge, failover); no test PAN
# or API key in any log.

A11_SK=sk_test_adapters_$$
A11_AK=adyen_adapters_key_$$
A11_MERCHANT=TokendAdaptersECOM
A11_Y=$(($(date -u +%Y) + 1))

a11_gwsim() { # a11_gwsim NAME CERT KEY [extra args...]: sets A11_PORT_<NAME>, A11_PID_<NAME>
    local name=$1 cert=$2 key=$3
    shift 3
    local port ready="$T_DIR/a11-$name.ready"
    port=$(free_port)
    rm -f "$ready"
    "$BUILD/gwsim" --listen "127.0.0.1:$port" --tls-cert "$cert" --tls-key "$key" \
        --stripe-key "$A11_SK" --adyen-key "$A11_AK" --adyen-merchant "$A11_MERCHANT" \
        --ready-file "$ready" "$@" 2>>"$T_DIR/a11-gwsim-$name.log" &
    local pid=$!
    T_PIDS+=("$pid")
    eval "A11_PORT_$name=$port A11_PID_$name=$pid"
    local i
    for i in $(seq 1 100); do
        [ -f "$ready" ] && return 0
        sleep 0.05
    done
    return 1
}

# a certificate for another host name, and an unrelated self-signed CA
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=otherhost \
    -addext "subjectAltName=DNS:otherhost" -keyout "$T_DIR/a11-other.key" -out "$T_DIR/a11-other.crt" >/dev/null 2>&1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost" -keyout "$T_DIR/a11-stranger.key" -out "$T_DIR/a11-stranger.crt" >/dev/null 2>&1

a11_gwsim OK "$T_DIR/tls.crt" "$T_DIR/tls.key" || { fail "gwsim starts"; return; }
a11_gwsim OTHER "$T_DIR/a11-other.crt" "$T_DIR/a11-other.key" || fail "gwsim (otherhost) starts"
a11_gwsim F500 "$T_DIR/tls.crt" "$T_DIR/tls.key" --fault-rate-500 1 || fail "gwsim (500) starts"
a11_gwsim F429 "$T_DIR/tls.crt" "$T_DIR/tls.key" --fault-rate-429 1 || fail "gwsim (429) starts"
a11_gwsim SLOW "$T_DIR/tls.crt" "$T_DIR/tls.key" --latency-ms 3000 || fail "gwsim (slow) starts"
ok "gwsim instances start"

A11_ERR="$T_DIR/a11-gwcall.err"
# gw KIND PORT [gwcall args...] -> one JSON line per call
gw() {
    local kind=$1 port=$2 key=$A11_SK
    shift 2
    [ "$kind" = adyen ] && key=$A11_AK
    GWCALL_API_KEY=$key "$BUILD/gwcall" --kind "$kind" --base-url "https://localhost:$port" \
        --ca-file "$T_DIR/tls.crt" --merchant "$A11_MERCHANT" --timeout-ms 1500 "$@" 2>>"$A11_ERR"
}
tokenise() { # KIND PORT PAN [extra]
    local kind=$1 port=$2 pan=$3
    shift 3
    gw "$kind" "$port" --op tokenise --pan "$pan" --exp-month 3 --exp-year "$A11_Y" --cvc 737 "$@"
}
summary() { jq -r '[.outcome, .code // "-", .decline_code // "-", (.captured|tostring)]|join(" ")' <<<"$1"; }
P=$A11_PORT_OK

# --- each operation, both gateways ------------------------------------------------------------
for kind in stripe adyen; do
    out=$(tokenise $kind "$P" 4242424242424242 --name "J Smith")
    PM=$(jq -r .ref <<<"$out")
    expect_eq "$kind tokenise: ok" "$(summary "$out")" "ok - - false"
    if [ $kind = stripe ]; then
        expect_match "stripe tokenise: ref is PaymentMethod|Customer" "$PM" '^pm_[0-9A-Za-z]{22}\|cus_[0-9A-Za-z]{22}$'
    else
        expect_match "adyen tokenise: ref is storedPaymentMethodId|shopperReference" "$PM" '^[A-Z0-9]{16}\|tokend_[0-9A-Za-z]{22}$'
    fi
    out=$(gw $kind "$P" --op charge --pm-ref "$PM" --amount 1000 --currency eur --capture true)
    expect_eq "$kind charge (capture): ok, captured" "$(summary "$out")" "ok - - true"
    CH=$(jq -r .ref <<<"$out")
    out=$(gw $kind "$P" --op refund --charge-ref "$CH" --amount 300 --currency eur)
    expect_eq "$kind refund: ok" "$(summary "$out")" "ok - - false"
    expect_match "$kind refund: has a reference" "$(jq -r .ref <<<"$out")" '^(re_[0-9A-Za-z]{22}|[A-Z0-9]{16})$'
    out=$(gw $kind "$P" --op charge --pm-ref "$PM" --amount 1000 --currency eur --capture false)
    expect_eq "$kind charge (authorise only): ok, not captured" "$(summary "$out")" "ok - - false"
    CH=$(jq -r .ref <<<"$out")
    out=$(gw $kind "$P" --op capture --charge-ref "$CH" --amount 600 --currency eur)
    expect_eq "$kind capture (partial): ok" "$(summary "$out")" "ok - - false"
    CH=$(jq -r .ref <<<"$(gw $kind "$P" --op charge --pm-ref "$PM" --amount 1000 --currency eur --capture false)")
    out=$(gw $kind "$P" --op void --charge-ref "$CH" --currency eur)
    expect_eq "$kind void: ok" "$(summary "$out")" "ok - - false"
    out=$(gw $kind "$P" --op capture --charge-ref "$CH" --amount 1000 --currency eur)
    expect_eq "$kind capture after void: error gateway_invalid_request" "$(summary "$out")" "error gateway_invalid_request - false"
    out=$(gw $kind "$P" --op charge --pm-ref "$PM" --amount 1000 --currency eur --repeat 8)
    expect_eq "$kind: 8 concurrent charges all succeed" "$(jq -r .outcome <<<"$out" | sort | uniq -c | awk '{print $1, $2}')" "8 ok"
done

# idempotency: the same key twice charges once
C0=$(curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$P/__gwsim/stats" | jq -r .charges)
PM=$(jq -r .ref <<<"$(tokenise stripe "$P" 4242424242424242)")
r1=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 700 --currency usd --idempotency-key "a11-$$-k1" | jq -r .ref)
r2=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 700 --currency usd --idempotency-key "a11-$$-k1" | jq -r .ref)
C1=$(curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$P/__gwsim/stats" | jq -r .charges)
expect_eq "stripe idempotency: same key, same PaymentIntent, one charge" "$r1 $((C1 - C0))" "$r2 1"
# ISK: tokend's minor units are whole kronur, Stripe's are hundredths
out=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 1050 --currency isk)
expect_eq "stripe ISK 1050 kr is sent as 105000 (accepted)" "$(summary "$out")" "ok - - true"

# --- declines and errors, by test card -------------------------------------------------------
# each published decline card, its decline code on both adapters (Adyen names lost and stolen
# cards "Blocked Card" and velocity "Withdrawal count exceeded": tok_adyen_refusal's codes)
declare -A A11_WANT=(
    [4000000000000002]="declined card_declined generic_decline false"
    [4000000000009995]="declined card_declined insufficient_funds false"
    [4000000000000069]="declined expired_card expired_card false"
    [4000000000000127]="declined incorrect_cvc incorrect_cvc false"
    [4000000000000119]="error processing_error - false"
    [4000000000009987]="declined card_declined lost_card false"
    [4000000000009979]="declined card_declined stolen_card false"
    [4100000000000019]="declined card_declined fraudulent false"
    [4000000000006975]="declined card_declined card_velocity_exceeded false"
)
declare -A A11_WANT_ADYEN=(
    [4000000000009987]="declined card_declined restricted_card false"
    [4000000000009979]="declined card_declined restricted_card false"
    [4000000000006975]="declined card_declined withdrawal_count_limit_exceeded false"
)
for pan in "${!A11_WANT[@]}"; do
    # Stripe declines at the charge; Adyen's zero-value authorisation declines at tokenisation
    PM=$(jq -r .ref <<<"$(tokenise stripe "$P" "$pan")")
    out=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 1000 --currency usd)
    expect_eq "stripe card ${pan:12}: ${A11_WANT[$pan]}" "$(summary "$out")" "${A11_WANT[$pan]}"
    want=${A11_WANT_ADYEN[$pan]:-${A11_WANT[$pan]}}
    out=$(tokenise adyen "$P" "$pan")
    expect_eq "adyen card ${pan:12}: $want" "$(summary "$out")" "$want"
done
out=$(tokenise adyen "$P" 5555555555554444 --name NOT_ENOUGH_BALANCE)
expect_eq "adyen refusal by holder name" "$(summary "$out")" "declined card_declined insufficient_funds false"
out=$(gw adyen "$P" --op charge --pm-ref "NOSUCHTOKEN00000|tokend_nobody" --amount 100 --currency eur)
expect_eq "adyen unknown stored method: error" "$(summary "$out")" "error gateway_invalid_request - false"
out=$(gw stripe "$P" --op refund --charge-ref pi_missing --amount 100 --currency usd)
expect_eq "stripe unknown intent: error" "$(summary "$out")" "error gateway_invalid_request - false"
for kind in stripe adyen; do
    ref="pm_card_visa"
    [ $kind = adyen ] && ref="NOSUCHTOKEN00000|tokend_nobody"
    out=$(GWCALL_API_KEY=wrong_key "$BUILD/gwcall" --kind $kind --base-url "https://localhost:$P" --ca-file "$T_DIR/tls.crt" \
        --merchant "$A11_MERCHANT" --op charge --pm-ref "$ref" --amount 100 --currency eur 2>>"$A11_ERR")
    expect_eq "$kind wrong API key: error gateway_auth_failed" "$(summary "$out")" "error gateway_auth_failed - false"
done

# --- unavailable: 500, 429, timeout, refused, reset ------------------------------------------
for kind in stripe adyen; do
    expect_eq "$kind 500: unavailable" "$(summary "$(tokenise $kind "$A11_PORT_F500" 4242424242424242)")" "unavailable gateway_unavailable - false"
    expect_eq "$kind 429: unavailable rate_limited" "$(summary "$(tokenise $kind "$A11_PORT_F429" 4242424242424242)")" "unavailable rate_limited - false"
    expect_eq "$kind timeout: unavailable gateway_timeout" "$(summary "$(tokenise $kind "$A11_PORT_SLOW" 4242424242424242)")" "unavailable gateway_timeout - false"
    expect_eq "$kind connection refused: unavailable" "$(summary "$(tokenise $kind "$(free_port)" 4242424242424242)")" "unavailable gateway_unavailable - false"
done
# a TLS server that completes the handshake, reads the request and resets the connection
RST_PORT=$(free_port)
python3 - "$RST_PORT" "$T_DIR/tls.crt" "$T_DIR/tls.key" "$T_DIR/a11-rst.ready" <<'PY' 2>>"$T_DIR/a11-rst.log" &
import socket, ssl, struct, sys
port, cert, key, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(8)
open(ready, "w").close()
while True:
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(65536)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t.close()
    except Exception:
        c.close()
PY
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -f "$T_DIR/a11-rst.ready" ] && break; sleep 0.05; done
for kind in stripe adyen; do
    expect_eq "$kind reset after the request: unavailable" "$(summary "$(tokenise $kind "$RST_PORT" 4242424242424242)")" "unavailable gateway_unavailable - false"
done

# --- TLS refusals: an error, never a success, never a silent failover -------------------------
for kind in stripe adyen; do
    out=$(gw $kind "$A11_PORT_OTHER" --op tokenise --pan 4242424242424242 --exp-month 3 --exp-year "$A11_Y" --ca-file "$T_DIR/a11-other.crt")
    expect_eq "$kind certificate for another host name: error gateway_tls_failed" "$(summary "$out")" "error gateway_tls_failed - false"
    out=$(gw $kind "$P" --op tokenise --pan 4242424242424242 --exp-month 3 --exp-year "$A11_Y" --ca-file "$T_DIR/a11-stranger.crt")
    expect_eq "$kind untrusted CA: error gateway_tls_failed" "$(summary "$out")" "error gateway_tls_failed - false"
    out=$(GWCALL_API_KEY=$A11_SK "$BUILD/gwcall" --kind $kind --base-url "https://localhost:$P" --merchant "$A11_MERCHANT" \
        --op tokenise --pan 4242424242424242 --exp-month 3 --exp-year "$A11_Y" 2>>"$A11_ERR")
    expect_eq "$kind self-signed, no CA file (system store): error gateway_tls_failed" "$(summary "$out")" "error gateway_tls_failed - false"
done
expect_true "gwsim saw no request from a refused TLS connection" \
    test "$(curl -s --cacert "$T_DIR/a11-other.crt" --resolve "otherhost:$A11_PORT_OTHER:127.0.0.1" "https://otherhost:$A11_PORT_OTHER/__gwsim/stats" | jq -r .requests_total)" = 1

# --- saved cards: charged again, customer present or not; refused when not stored --------------
gs() { curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$P/__gwsim/stats" | jq -r "$1"; }
S0=$(gs .stripe.customers)
PM=$(jq -r .ref <<<"$(tokenise stripe "$P" 4242424242424242)")
expect_eq "stripe tokenise: one Customer, the PaymentMethod attached" \
    "$(($(gs .stripe.customers) - S0)) $(curl -s --cacert "$T_DIR/tls.crt" -u "$A11_SK:" "https://localhost:$P/v1/payment_methods/${PM%%|*}" | jq -r .customer)" \
    "1 ${PM#*|}"
out=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur --off-session false)
expect_eq "stripe saved card, 1st charge (customer present): ok" "$(summary "$out")" "ok - - true"
out=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur --off-session true)
expect_eq "stripe saved card, 2nd charge (off session): ok" "$(summary "$out")" "ok - - true"
out=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur)
expect_eq "stripe saved card, 3rd charge: ok" "$(summary "$out")" "ok - - true"
# what Stripe refuses: a PaymentMethod without a Customer, charged a second time
R0=$(gs .stripe.reuse_refusals)
BARE=$(curl -s --cacert "$T_DIR/tls.crt" -u "$A11_SK:" "https://localhost:$P/v1/payment_methods" \
    -d type=card -d 'card[number]=4242424242424242' -d 'card[exp_month]=3' -d "card[exp_year]=$A11_Y" | jq -r .id)
out=$(gw stripe "$P" --op charge --pm-ref "$BARE" --amount 1500 --currency eur)
expect_eq "stripe unattached PaymentMethod, 1st charge: ok" "$(summary "$out")" "ok - - true"
out=$(gw stripe "$P" --op charge --pm-ref "$BARE" --amount 1500 --currency eur)
expect_eq "stripe unattached PaymentMethod, 2nd charge: refused by gwsim" "$(summary "$out") $(($(gs .stripe.reuse_refusals) - R0))" \
    "error gateway_invalid_request - false 1"
out=$(curl -s --cacert "$T_DIR/tls.crt" -u "$A11_SK:" "https://localhost:$P/v1/payment_intents" -d amount=100 -d currency=eur \
    -d payment_method="$BARE" -d confirm=true -w '\n%{http_code}')
expect_eq "gwsim: reuse refused as Stripe words it" "$(tail -n1 <<<"$out") $(sed '$d' <<<"$out" | jq -r .error.code)" "400 payment_method_unexpected_state"
# detach (redaction): the PaymentMethod is gone for good
out=$(gw stripe "$P" --op detach --pm-ref "$PM")
expect_eq "stripe detach: ok" "$(summary "$out")" "ok - - false"
expect_eq "stripe detach: the PaymentMethod has no Customer" \
    "$(curl -s --cacert "$T_DIR/tls.crt" -u "$A11_SK:" "https://localhost:$P/v1/payment_methods/${PM%%|*}" | jq -r .customer)" null
out=$(gw stripe "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur)
expect_eq "stripe charge after detach: refused" "$(summary "$out")" "error gateway_invalid_request - false"
# Adyen: the shopper present (Ecommerce, CardOnFile) and not (ContAuth, UnscheduledCardOnFile)
PM=$(jq -r .ref <<<"$(tokenise adyen "$P" 4242424242424242)")
out=$(gw adyen "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur --off-session false)
expect_eq "adyen saved card, shopper present: ok" "$(summary "$out")" "ok - - true"
out=$(gw adyen "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur --off-session true)
expect_eq "adyen saved card, merchant-initiated: ok" "$(summary "$out")" "ok - - true"
out=$(curl -s --cacert "$T_DIR/tls.crt" -H "x-api-key: $A11_AK" -H 'content-type: application/json' "https://localhost:$P/v71/payments" \
    -d "{\"merchantAccount\":\"$A11_MERCHANT\",\"reference\":\"r1\",\"amount\":{\"value\":100,\"currency\":\"EUR\"},\"shopperReference\":\"shopper1\",\"shopperInteraction\":\"ContAuth\",\"recurringProcessingModel\":\"UnscheduledCardOnFile\",\"paymentMethod\":{\"type\":\"scheme\",\"number\":\"4242424242424242\",\"expiryMonth\":\"03\",\"expiryYear\":\"$A11_Y\",\"cvc\":\"737\"}}" -w '\n%{http_code}')
expect_eq "gwsim adyen: ContAuth without a stored method is refused" "$(tail -n1 <<<"$out") $(gs .adyen.contauth_refusals)" "422 1"
out=$(gw adyen "$P" --op detach --pm-ref "$PM")
expect_eq "adyen detach (DELETE storedPaymentMethods): ok" "$(summary "$out") $(gs '.requests["adyen.storedPaymentMethods.delete"]')" "ok - - false 1"
out=$(gw adyen "$P" --op charge --pm-ref "$PM" --amount 1500 --currency eur)
expect_eq "adyen charge after the stored method was deleted: refused" "$(summary "$out")" "error gateway_invalid_request - false"

# --- end to end through tokend ---------------------------------------------------------------
A11_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
A11_TEN=$("${A11_CTL[@]}" tenant create "adapters-$$" 2>/dev/null)
A11_KEY=$("${A11_CTL[@]}" key create --tenant "$A11_TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
(umask 077 && printf '{"api_key":"%s"}' "$A11_SK" >"$T_DIR/a11-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s"}' "$A11_AK" "$A11_MERCHANT" >"$T_DIR/a11-adyen.json")
a11_gwsim S2 "$T_DIR/tls.crt" "$T_DIR/tls.key" || fail "gwsim (stripe for tokend) starts"
GS=$("${A11_CTL[@]}" gateway add --tenant "$A11_TEN" --kind stripe --credentials-file "$T_DIR/a11-stripe.json" \
    --base-url "https://localhost:$A11_PORT_S2" --priority 1 2>>"$T_DIR/a11-ctl.err")
GA=$("${A11_CTL[@]}" gateway add --tenant "$A11_TEN" --kind adyen --credentials-file "$T_DIR/a11-adyen.json" \
    --base-url "https://localhost:$P" --priority 2 2>>"$T_DIR/a11-ctl.err")
expect_match "tokenctl gateway add stripe and adyen" "$GS $GA" '^gw_[0-9A-Za-z]{22} gw_[0-9A-Za-z]{22}$'
# one gateway call at a time: every other call waits its turn in tokend (httpc.h)
if tokend_start A11 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 3000 --gateway-max-inflight 1; then
    H2C="http://127.0.0.1:$H2C_A11"
    tapi() { # METHOD PATH [BODY] -> "<json>\n<status>"
        if [ -n "${3:-}" ]; then
            curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $A11_KEY" -H 'content-type: application/json' \
                --data-binary "$3" -w '\n%{http_code}' "$H2C$2"
        else
            curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $A11_KEY" -w '\n%{http_code}' "$H2C$2"
        fi
    }
    tst() { tail -n 1 <<<"$1"; }
    tjs() { sed '$d' <<<"$1" | jq -r "$2"; }
    out=$(tapi POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":3,\"exp_year\":$A11_Y,\"cvc\":\"737\"}}")
    expect_eq "tokend tokenise through stripe and adyen: 201" "$(tst "$out")" 201
    TOK=$(tjs "$out" .id)
    # 4 tokenisations at once, 2 gateway calls each, through --gateway-max-inflight 1
    par=()
    for i in 1 2 3 4; do
        tapi POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":4,\"exp_year\":$A11_Y,\"cvc\":\"737\"}}" \
            >"$T_DIR/a11-par-$i.out" &
        par+=($!)
    done
    wait "${par[@]}" # not a bare wait: tokend and gwsim are children of this shell too
    expect_eq "tokend: 4 concurrent tokenisations through one gateway call at a time: all 201" \
        "$(for i in 1 2 3 4; do tst "$(cat "$T_DIR/a11-par-$i.out")"; done | sort | uniq -c | tr -s ' ')" " 4 201"
    out=$(tapi POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1234,\"currency\":\"EUR\"}")
    expect_eq "tokend charge: stripe first (priority 1)" "$(tst "$out") $(tjs "$out" '.status + " " + (.attempts|map(.outcome)|join(","))')" "201 succeeded succeeded"
    out=$(tapi POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1234,\"currency\":\"EUR\",\"off_session\":false}")
    expect_eq "tokend charge of the saved card, customer present: succeeded" "$(tst "$out") $(tjs "$out" .status)" "201 succeeded"
    out=$(tapi POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1234,\"currency\":\"EUR\",\"off_session\":true}")
    expect_eq "tokend charge of the saved card again, off session: succeeded" "$(tst "$out") $(tjs "$out" .status)" "201 succeeded"
    out=$(tapi POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1234,\"currency\":\"EUR\",\"off_session\":\"yes\"}")
    expect_eq "tokend charge: off_session must be a boolean" "$(tst "$out") $(tjs "$out" .code) $(tjs "$out" .param)" "422 invalid_type off_session"
    # a declined charge says why: failure_code and decline_code
    out=$(tapi POST /v1/tokens "{\"card\":{\"number\":\"4000000000009995\",\"exp_month\":3,\"exp_year\":$A11_Y,\"cvc\":\"737\"}}")
    expect_eq "tokend tokenise 9995: stripe stores it, adyen's zero-value authorisation refuses it" \
        "$(tst "$out") $(tjs "$out" '.gateways|map(select(.gateway == "'"$GS"'"))[0].status') $(tjs "$out" '.gateways|map(select(.gateway == "'"$GA"'"))[0].status')" \
        "201 active failed"
    out=$(tapi POST /v1/charges "{\"token\":\"$(tjs "$out" .id)\",\"amount\":1000,\"currency\":\"EUR\"}")
    expect_eq "tokend declined charge: failure_code and decline_code" \
        "$(tst "$out") $(tjs "$out" '.status + " " + .failure_code + " " + .decline_code')" "201 declined card_declined insufficient_funds"
    # redaction: the card is forgotten at both gateways
    out=$(tapi POST /v1/tokens "{\"card\":{\"number\":\"5555555555554444\",\"exp_month\":5,\"exp_year\":$A11_Y,\"cvc\":\"737\"}}")
    TOK2=$(tjs "$out" .id)
    D0=$(curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$A11_PORT_S2/__gwsim/stats" | jq -r .stripe.payment_methods_detached)
    A0=$(gs .adyen.stored_payment_methods_disabled)
    out=$(tapi DELETE "/v1/tokens/$TOK2")
    expect_eq "tokend redaction: 200, references destroyed" "$(tst "$out") $(tjs "$out" '.redacted|tostring') $(tjs "$out" '.gateways|map(.status)|unique|join(",")')" "200 true destroyed"
    expect_eq "tokend redaction: stripe detached the PaymentMethod, adyen deleted the stored method" \
        "$(($(curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$A11_PORT_S2/__gwsim/stats" | jq -r .stripe.payment_methods_detached) - D0)) $(($(gs .adyen.stored_payment_methods_disabled) - A0))" "1 1"
    kill -TERM "$A11_PID_S2" 2>/dev/null
    wait "$A11_PID_S2" 2>/dev/null
    out=$(tapi POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1000,\"currency\":\"EUR\"}")
    expect_eq "tokend charge: stripe down -> fails over to adyen" "$(tst "$out") $(tjs "$out" '.status + " " + (.attempts|map(.outcome)|join(","))')" \
        "201 succeeded unavailable,succeeded"
    CH=$(tjs "$out" .id)
    out=$(tapi POST /v1/refunds "{\"charge\":\"$CH\",\"amount\":400}")
    expect_eq "tokend refund at adyen" "$(tst "$out") $(tjs "$out" .status)" "201 succeeded"
    expect_true "adyen saw the refund" \
        test "$(curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$P/__gwsim/stats" | jq -r '.requests["adyen.refunds"]')" -ge 1
    tokend_stop A11
    expect_true "tokend log: no test PAN, no gateway API key" \
        bash -c "! grep -hE '4242424242424242|$A11_SK|$A11_AK' '$LOG_A11'"
    # a card refused at tokenisation is a decline (402), not a gateway failure (502)
    A11_TEN2=$("${A11_CTL[@]}" tenant create "adapters-adyen-$$" 2>/dev/null)
    A11_KEY=$("${A11_CTL[@]}" key create --tenant "$A11_TEN2" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
    "${A11_CTL[@]}" gateway add --tenant "$A11_TEN2" --kind adyen --credentials-file "$T_DIR/a11-adyen.json" \
        --base-url "https://localhost:$P" --priority 1 >/dev/null 2>>"$T_DIR/a11-ctl.err"
    if tokend_start A11B --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 3000; then
        H2C="http://127.0.0.1:$H2C_A11B"
        out=$(tapi POST /v1/tokens "{\"card\":{\"number\":\"4000000000000069\",\"exp_month\":3,\"exp_year\":$A11_Y,\"cvc\":\"737\"}}")
        expect_eq "tokend tokenise refused by the issuer (adyen): 402 card_declined + decline_code" \
            "$(tst "$out") $(tjs "$out" '.code + " " + .decline_code')" "402 card_declined expired_card"
        out=$(tapi POST /v1/tokens "{\"card\":{\"number\":\"4000000000000119\",\"exp_month\":3,\"exp_year\":$A11_Y,\"cvc\":\"737\"}}")
        expect_eq "tokend tokenise, gateway processing error: still 502 gateway_error" "$(tst "$out") $(tjs "$out" .code)" "502 gateway_error"
        tokend_stop A11B
    else
        fail "tokend (adyen only) starts"
    fi
else
    fail "tokend starts with --gateway-ca-file"
fi

# --- no secrets in any log --------------------------------------------------------------------
expect_true "gwcall stderr: no test PAN, no API key" \
    bash -c "! grep -hE '4242424242424242|4000000000000002|4000000000009995|5555555555554444|$A11_SK|$A11_AK' '$A11_ERR'"
# a digit run standing alone; not the tail of a hex address (0x602000000010) in a sanitizer report
expect_true "gwsim logs: no PAN-shaped digits" \
    bash -c "! grep -hE '(^|[^0-9A-Za-z])[0-9]{12,19}([^0-9A-Za-z]|\$)' '$T_DIR'/a11-gwsim-*.log"
