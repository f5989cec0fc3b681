# t_06_webhooks.sh - gateway webhooks in (signatures, de-duplication, order, 1,000
# concurrent events) and signed events out (retries, restart, the receiver's own check).

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
PSQL=(psql -X -q -t -A -h "$T_DIR/pg/run" -U postgres -d tokend)
TEN=$("${CTL[@]}" tenant create "hookco-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write,reports:read,admin --test 2>/dev/null)
WHSEC="whsec_sandbox_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
STRIPE_SEC="whsec_stripe_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ADYEN_KEY=44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056
(umask 077; printf '{"webhook_secret":"%s"}' "$WHSEC" >"$T_DIR/sbx.json"
 printf '{"api_key":"sk_test_x","webhook_secret":"%s"}' "$STRIPE_SEC" >"$T_DIR/stripe.json"
 printf '{"api_key":"k","merchant_account":"TestMerchant","hmac_key":"%s"}' "$ADYEN_KEY" >"$T_DIR/adyen.json")
GW=$("${CTL[@]}" gateway add --tenant "$TEN" --kind sandbox --credentials-file "$T_DIR/sbx.json" 2>/dev/null)
expect_match "sandbox gateway account" "$GW" '^gw_'
RPORT=$(free_port)
W_ARGS=(--webhook-allow-http-loopback --webhook-retry-base-ms 1000 --gateway-ca-file "$T_DIR/tls.crt")
tokend_start W "${W_ARGS[@]}" || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_W"
Y=$(($(date -u +%Y) + 1))

api() { # METHOD PATH [BODY]
    curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
        ${3:+--data-binary "$3"} -w '\n%{http_code}' "$H2C$2"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
sign() { # SECRET T BODY -> hex
    printf '%s' "$2.$3" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1
}
hook() { # GATEWAY ACCOUNT BODY [HEADER] -> "<json>\n<status>"
    curl -s --http2-prior-knowledge -X POST -H 'content-type: application/json' ${4:+-H "$4"} \
        --data-binary "$3" -w '\n%{http_code}' "$H2C/v1/webhooks/$1/$2"
}
sbx_hook() { # BODY [T] [SECRET]
    local t=${2:-$(date +%s)} s=${3:-$WHSEC}
    hook sandbox "$GW" "$1" "tokend-signature: t=$t,v1=$(sign "$s" "$t" "$1")"
}
charge_status() { api GET "/v1/charges/$1" | sed '$d' | jq -r '.status+" "+(.amount_captured|tostring)+" "+(.amount_refunded|tostring)'; }

TOK=$(api POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}" | sed '$d' | jq -r .id)
new_charge() { # -> "<charge id> <gateway ref>" (manual capture: requires_capture)
    local out; out=$(api POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1000,\"currency\":\"usd\",\"capture\":false}")
    js "$out" '.id+" "+.gateway_reference'
}

# --- outbound endpoint with a receiver that fails twice ------------------------------------------
SECRET=$("${CTL[@]}" webhook add --tenant "$TEN" --url "http://127.0.0.1:$RPORT/hooks" 2>/dev/null)
expect_match "webhook add prints the secret once" "$SECRET" '^whsec_[0-9A-Za-z]{44}$'
printf '%s\n' "$SECRET" >"$T_DIR/recv.secret"
"$BUILD/hookrecv" --port "$RPORT" --secret-file "$T_DIR/recv.secret" --log "$T_DIR/recv.log" --fail 2 &
T_PIDS+=($!)
out=$(api POST /v1/webhook-endpoints '{"url":"ftp://example.com/x"}')
expect_eq "endpoint URL must be https" "$(st "$out") $(js "$out" .code)" "422 invalid_url"

# --- signatures -------------------------------------------------------------------------------
read -r CH REF <<<"$(new_charge)"
expect_match "fixture charge" "$CH $REF" '^ch_.* sbxch_'
EV="{\"id\":\"evt_gw_1\",\"type\":\"charge.succeeded\",\"data\":{\"object\":{\"gateway_reference\":\"$REF\",\"amount_captured\":1000}}}"
T=$(date +%s)
SIG="tokend-signature: t=$T,v1=$(sign "$WHSEC" "$T" "$EV")"
out=$(hook sandbox "$GW" "${EV/1000/999}" "$SIG")
expect_eq "tampered body refused" "$(st "$out") $(js "$out" .code)" "401 signature_invalid"
out=$(sbx_hook "$EV" "$T" "whsec_wrong")
expect_eq "wrong secret refused" "$(st "$out") $(js "$out" .code)" "401 signature_invalid"
out=$(sbx_hook "$EV" $((T - 600)))
expect_eq "stale timestamp refused" "$(st "$out") $(js "$out" .code)" "401 timestamp_out_of_tolerance"
out=$(sbx_hook "$EV" $((T + 600)))
expect_eq "future timestamp refused" "$(st "$out") $(js "$out" .code)" "401 timestamp_out_of_tolerance"
out=$(hook sandbox "$GW" "$EV")
expect_eq "missing header refused" "$(st "$out") $(js "$out" .code)" "401 signature_missing"
out=$(hook sandbox gw_0000000000000000000000 "$EV" "$SIG")
expect_eq "unknown endpoint refused" "$(st "$out") $(js "$out" .code)" "400 endpoint_not_found"
n=$("${PSQL[@]}" -c "SELECT count(*) FROM ledger.gateway_events WHERE gateway_event_id = 'evt_gw_1'" 2>/dev/null)
expect_eq "refused bodies are not stored" "$n" "0"
out=$(hook sandbox "$GW" "$EV" "tokend-signature: t=$T,v1=00,v1=$(sign "$WHSEC" "$T" "$EV")")
expect_eq "several v1: one matching is enough" "$(st "$out") $(js "$out" .applied)" "200 true"
expect_eq "signed event applied" "$(charge_status "$CH")" "succeeded 1000 0"

# --- the same event 5 times: applied once ---------------------------------------------------------
EV2="{\"id\":\"evt_gw_2\",\"type\":\"charge.refunded\",\"data\":{\"object\":{\"gateway_reference\":\"$REF\",\"amount_captured\":1000,\"amount_refunded\":300}}}"
dups=""
for i in 1 2 3 4 5; do dups+="$(sbx_hook "$EV2" | sed '$d' | jq -r .duplicate) "; done
expect_eq "5 deliveries: 1 new, 4 duplicates" "$dups" "false true true true true "
expect_eq "applied once" "$(charge_status "$CH")" "partially_refunded 1000 300"
n=$("${PSQL[@]}" -c "SELECT count(*) FROM ledger.events e WHERE e.data->>'id' = '$CH'" 2>/dev/null)
# the charge's creation through the API, then the two webhook changes
expect_eq "one outbound event per change" "$n" "3"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE object = '$CH' AND actor = '$GW' AND action LIKE 'charge.%'")
expect_eq "each change a webhook applied is audited once, by its gateway account" "$n" "2"

# --- reverse order ----------------------------------------------------------------------------------
read -r CH2 REF2 <<<"$(new_charge)"
for ev in "evt_r3 charge.refunded 1000" "evt_r2 charge.succeeded 0" "evt_r1 charge.requires_capture 0"; do
    set -- $ev
    sbx_hook "{\"id\":\"$1\",\"type\":\"$2\",\"data\":{\"object\":{\"gateway_reference\":\"$REF2\",\"amount_captured\":1000,\"amount_refunded\":$3}}}" >/dev/null
done
expect_eq "events in reverse order: final state refunded" "$(charge_status "$CH2")" "refunded 1000 1000"
n=$("${PSQL[@]}" -c "SELECT string_agg(gateway_event_id || ':' || outcome, ',' ORDER BY gateway_event_id) FROM ledger.gateway_events WHERE charge_id = '$CH2'" 2>/dev/null)
expect_eq "late earlier events recorded, not applied" "$n" "evt_r1:not_applied,evt_r2:not_applied,evt_r3:applied"

# --- Stripe and Adyen schemes --------------------------------------------------------------------
GWS=$("${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$T_DIR/stripe.json" --priority 900 2>/dev/null)
GWA=$("${CTL[@]}" gateway add --tenant "$TEN" --kind adyen --credentials-file "$T_DIR/adyen.json" --priority 901 2>/dev/null)
read -r CH3 _ <<<"$(new_charge)"
"${PSQL[@]}" -c "UPDATE ledger.charges SET gateway_ref = 'pi_hooktest$$' WHERE id = '$CH3'" >/dev/null 2>&1
SEV="{\"id\":\"evt_1Stripe$$\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\",\"data\":{\"object\":{\"id\":\"pi_hooktest$$\",\"object\":\"payment_intent\",\"amount_received\":1000}}}"
T=$(date +%s)
out=$(hook stripe "$GWS" "$SEV" "Stripe-Signature: t=$T,v1=$(sign "$STRIPE_SEC" "$T" "$SEV"),v0=ignored")
expect_eq "Stripe-Signature accepted" "$(st "$out") $(js "$out" .applied)" "200 true"
out=$(hook stripe "$GWS" "$SEV" "Stripe-Signature: t=$T,v1=$(sign "$WHSEC" "$T" "$SEV")")
expect_eq "Stripe: wrong secret refused" "$(st "$out") $(js "$out" .code)" "401 signature_invalid"
expect_eq "Stripe event applied" "$(charge_status "$CH3")" "succeeded 1000 0"
read -r CH4 _ <<<"$(new_charge)"
"${PSQL[@]}" -c "UPDATE ledger.charges SET gateway_ref = '7914073381342284' WHERE id = '$CH4'" >/dev/null 2>&1
AEV='{"live":"false","notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},"amount":{"currency":"EUR","value":1130},"eventCode":"AUTHORISATION","eventDate":"2024-01-01T00:00:00+01:00","merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","paymentMethod":"visa","pspReference":"7914073381342284","success":"true"}}]}'
out=$(hook adyen "$GWA" "$AEV")
expect_eq "Adyen HMAC (documented sample) accepted" "$(st "$out") $(sed '$d' <<<"$out")" "200 [accepted]"
out=$(hook adyen "$GWA" "${AEV/1130/1131}")
expect_eq "Adyen: tampered item refused" "$(st "$out") $(js "$out" .code)" "401 signature_invalid"

# --- delivery: 500, 500, restart, 200 -------------------------------------------------------------
EVT=$("${PSQL[@]}" -c "SELECT id FROM ledger.events WHERE data->>'id' = '$CH' ORDER BY created_at LIMIT 1" 2>/dev/null)
wait_lines() { local d=$((SECONDS + $2)); while [ $SECONDS -lt $d ]; do [ "$(grep -c "$EVT" "$T_DIR/recv.log" 2>/dev/null)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
expect_true "first attempt reaches the receiver" wait_lines 1 10
tokend_stop W
tokend_start W "${W_ARGS[@]}" || fail "tokend restarts"
H2C="http://127.0.0.1:$H2C_W"
expect_true "third attempt after a restart" wait_lines 3 30
expect_eq "receiver: 500, 500, 200, its signature check passes" \
    "$(grep "$EVT" "$T_DIR/recv.log" | head -3 | cut -d' ' -f2,3 | tr '\n' ' ')" "500 sig=ok 500 sig=ok 200 sig=ok "
sleep 0.5
out=$(api GET "/v1/events/$EVT/deliveries")
expect_eq "deliveries list: delivered after 3 recorded attempts" \
    "$(js "$out" '.data[0].status+" "+(.data[0].attempt_log|map(.http_status|tostring)|join(","))')" "delivered 500,500,200"
"${CTL[@]}" webhook replay "$EVT" 2>/dev/null
expect_true "tokenctl webhook replay redelivers" wait_lines 4 10

# --- 1,000 concurrent inbound events, each applied exactly once -------------------------------------
"${PSQL[@]}" >"$T_DIR/bulk.log" 2>&1 <<SQL
INSERT INTO ledger.charges (tenant_id, id, livemode, token_id, amount, currency, capture_method, status, gateway, gateway_ref, created_by)
SELECT '$TEN', 'ch_bulk' || lpad(g::text, 18, '0'), false, '$TOK', 500, 'usd', 'manual', 'requires_capture', 'sandbox', 'sbxch_bulk_' || g, 'test'
  FROM generate_series(1, 1000) g;
SQL
# the 1,000 signed events (one python process rather than 1,000 openssl ones), sent over one
# HTTP/2 connection (rather than 2,000 curl processes: with them t_06 took 246 s under ASan, 44 s now)
/usr/bin/python3 - "$T_DIR" "$WHSEC" "$(date +%s)" <<'PY'
import hashlib, hmac, os, sys
d, secret, t = sys.argv[1:]
os.makedirs(f"{d}/bulk", exist_ok=True)
for i in range(1, 1001):
    b = ('{"id":"evt_bulk_%d","type":"charge.succeeded","data":{"object":'
         '{"gateway_reference":"sbxch_bulk_%d","amount_captured":500}}}' % (i, i))
    with open(f"{d}/bulk/{i}.json", "w") as f:
        f.write(b)
    sig = hmac.new(secret.encode(), f"{t}.{b}".encode(), hashlib.sha256).hexdigest()
    with open(f"{d}/bulk/{i}.sig", "w") as f:
        f.write(f"tokend-signature: t={t},v1={sig}")
PY
send_bulk() { # bounded: 32 streams at a time on one connection; a 503 or a lost connection is
    # sent again, as a gateway would
    /usr/bin/python3 tests/integration/lib/h2_post_many.py "${H2C##*:}" "/v1/webhooks/sandbox/$GW" \
        "$T_DIR/bulk" 1000 32 >>"$T_DIR/bulk-send.log" 2>&1
}
send_bulk
send_bulk # all again: duplicates
n=$("${PSQL[@]}" -c "SELECT count(*) FILTER (WHERE status = 'succeeded'), (SELECT count(*) FROM ledger.gateway_events WHERE gateway_event_id LIKE 'evt_bulk_%' AND applied), (SELECT count(*) FROM ledger.events WHERE data->>'id' LIKE 'ch_bulk%') FROM ledger.charges WHERE id LIKE 'ch_bulk%'" 2>/dev/null)
expect_eq "1,000 concurrent events (sent twice): each applied exactly once" "$n" "1000|1000|1000"

# --- POST /v1/webhook-endpoints (admin scope), in a tenant of its own ------------------------------------
TEN_E=$("${CTL[@]}" tenant create "hooks-api-$$" 2>/dev/null)
KEY_E=$("${CTL[@]}" key create --tenant "$TEN_E" --scopes admin --test 2>/dev/null)
KEY_E_RO=$("${CTL[@]}" key create --tenant "$TEN_E" --scopes charges:write --test 2>/dev/null)
eapi() { curl -s --http2-prior-knowledge -X POST -H "authorization: Bearer $1" -H 'content-type: application/json' \
    --data-binary "$2" -w '\n%{http_code}' "$H2C/v1/webhook-endpoints"; }
out=$(eapi "$KEY_E" '{"url":"https://app.example.com/tokend-events"}')
expect_eq "POST /v1/webhook-endpoints: 201" "$(st "$out")" "201"
ESECRET=$(js "$out" .secret)
expect_match "the endpoint's secret is shown once" "$ESECRET" '^whsec_[0-9A-Za-z]{44}$'
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM ledger.webhook_endpoints WHERE tenant_id = '$TEN_E' AND url = 'https://app.example.com/tokend-events'")
expect_eq "the endpoint is stored" "$n" "1"
"$PG_BIN/pg_dump" -h "$T_DIR/pg/run" -U postgres tokend >"$T_DIR/hooks-dump.sql" 2>/dev/null
expect_true "its secret is not stored in the clear" bash -c "! grep -q '$ESECRET' '$T_DIR/hooks-dump.sql'"
out=$(eapi "$KEY_E_RO" '{"url":"https://app.example.com/x"}')
expect_eq "a key without the admin scope: 403" "$(st "$out")" "403"

# --- tokenctl webhook disable: the first receiver still works through the 1,000 events above
# (failing each twice); disabling its endpoint stops that, so what follows is not queued behind it
OTHER_EP=$("${CTL[@]}" webhook list --tenant "$TEN" 2>/dev/null | awk 'NR == 2 {print $1}')
"${CTL[@]}" webhook disable --tenant "$TEN" "$OTHER_EP" 2>/dev/null
expect_match "tokenctl webhook disable" "$("${CTL[@]}" webhook list --tenant "$TEN" 2>/dev/null | awk 'NR == 2 {print $5}')" '^20'
out=$("${CTL[@]}" webhook disable --tenant "hooks-api-$$" "$OTHER_EP" 2>&1)
expect_eq "tokenctl webhook disable: another tenant's endpoint is not found" "$?" "1"
sleep 1
n=$(wc -l <"$T_DIR/recv.log")
sleep 3
expect_eq "no delivery to the disabled endpoint" "$(wc -l <"$T_DIR/recv.log")" "$n"

# --- card updater: Stripe payment_method.automatically_updated -> token.updated ---------------------
# A tenant of its own whose only gateway is Stripe (gwsim), so the token has a real pm_ reference.
U_SK=sk_test_updater_$$
U_SEC="whsec_upd_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
UPORT=$(free_port)
URPORT=$(free_port)
"$BUILD/gwsim" --listen "127.0.0.1:$UPORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$U_SK" --ready-file "$T_DIR/u-gwsim.ready" 2>>"$T_DIR/u-gwsim.log" &
T_PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$T_DIR/u-gwsim.ready" ] && break; sleep 0.05; done
TEN_U=$("${CTL[@]}" tenant create "updater-$$" 2>/dev/null)
KEY_U=$("${CTL[@]}" key create --tenant "$TEN_U" --scopes tokens:write,tokens:read,charges:write,admin --test 2>/dev/null)
(umask 077; printf '{"api_key":"%s","webhook_secret":"%s"}' "$U_SK" "$U_SEC" >"$T_DIR/u-stripe.json")
GWU=$("${CTL[@]}" gateway add --tenant "$TEN_U" --kind stripe --credentials-file "$T_DIR/u-stripe.json" \
    --base-url "https://localhost:$UPORT" 2>/dev/null)
USECRET=$("${CTL[@]}" webhook add --tenant "$TEN_U" --url "http://127.0.0.1:$URPORT/hooks" 2>/dev/null)
printf '%s\n' "$USECRET" >"$T_DIR/urecv.secret"
start_urecv() {
    "$BUILD/hookrecv" --port "$URPORT" --secret-file "$T_DIR/urecv.secret" --log "$T_DIR/urecv.log" &
    URECV=$!
    T_PIDS+=("$URECV")
}
start_urecv
uapi() { # METHOD PATH [BODY]
    curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $KEY_U" -H 'content-type: application/json' \
        ${3:+--data-binary "$3"} -w '\n%{http_code}' "$H2C$2"
}
out=$(uapi POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}")
expect_eq "updater tenant: tokenised through Stripe" "$(st "$out")" "201"
TOKU=$(js "$out" .id)
out=$(uapi POST /v1/charges "{\"token\":\"$TOKU\",\"amount\":500,\"currency\":\"usd\"}")
PI=$(js "$out" .gateway_reference)
# the test learns the PaymentMethod id from the gateway, as a webhook would carry it
PM=$(curl -s --cacert "$T_DIR/tls.crt" -H "authorization: Bearer $U_SK" "https://localhost:$UPORT/v1/payment_intents/$PI" | jq -r .payment_method)
expect_match "the token's Stripe PaymentMethod" "$PM" '^pm_'
n=$("${PSQL[@]}" -c "SELECT count(*) FROM vault.gateway_refs WHERE token_id = '$TOKU' AND length(ref_lookup) = 32" 2>/dev/null)
expect_eq "the reference's lookup hash is stored at tokenisation" "$n" "1"
stripe_hook() { # BODY -> "<json>\n<status>"
    local t; t=$(date +%s)
    hook stripe "$GWU" "$1" "Stripe-Signature: t=$t,v1=$(sign "$U_SEC" "$t" "$1")"
}
pm_event() { # ID PM CARD_JSON
    printf '{"id":"%s","object":"event","type":"payment_method.automatically_updated","data":{"object":{"id":"%s","object":"payment_method","type":"card","card":%s}}}' "$1" "$2" "$3"
}
tok_card() { uapi GET "/v1/tokens/$TOKU" | sed '$d' | jq -r '.brand+" "+.last4+" "+(.exp_month|tostring)+"/"+(.exp_year|tostring)'; }
Y3=$((Y + 3))
UEV=$(pm_event "evt_upd1_$$" "$PM" "{\"brand\":\"visa\",\"exp_month\":4,\"exp_year\":$Y3,\"last4\":\"1881\",\"funding\":\"credit\"}")
res=""
for i in 1 2 3; do out=$(stripe_hook "$UEV"); res+="$(st "$out") $(js "$out" '.duplicate|tostring') $(js "$out" '.applied|tostring'), "; done
expect_eq "card update: applied once, then duplicates" "$res" "200 false true, 200 true false, 200 true false, "
expect_eq "GET /v1/tokens shows the updated card" "$(tok_card)" "visa 1881 4/$Y3"
n=$("${PSQL[@]}" -c "SELECT count(*) FROM ledger.events WHERE type = 'token.updated' AND data->>'id' = '$TOKU'" 2>/dev/null)
expect_eq "one token.updated event" "$n" "1"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE object = '$TOKU' AND actor = '$GWU' AND action = 'token.updated'")
expect_eq "the update is audited once, by its gateway account" "$n" "1"
UEVT=$("${PSQL[@]}" -c "SELECT id FROM ledger.events WHERE type = 'token.updated' AND data->>'id' = '$TOKU'" 2>/dev/null)
uwait() { # EVENT STATUS SECONDS: the receiver logged EVENT answered STATUS with a good signature
    local d=$((SECONDS + $3))
    while [ $SECONDS -lt $d ]; do grep -q " $2 sig=ok $1\$" "$T_DIR/urecv.log" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
expect_true "token.updated reaches the receiver, its signature check passes" uwait "$UEVT" 200 15
n=$("${PSQL[@]}" -c "SELECT data->>'last4', data->>'exp_month', data ? 'fingerprint', data ? 'bin' FROM ledger.events WHERE id = '$UEVT'" 2>/dev/null)
expect_eq "token.updated carries the new last4/expiry, no fingerprint or BIN" "$n" "1881|4|f|f"

out=$(stripe_hook "$(pm_event "evt_upd2_$$" pm_NoSuchPaymentMethod0001 "{\"exp_month\":5,\"exp_year\":$Y3,\"last4\":\"0005\"}")")
expect_eq "unmatched reference: 200, not applied" "$(st "$out") $(js "$out" '.applied|tostring')" "200 false"
out=$(stripe_hook "$(pm_event "evt_upd3_$$" "$PM" "{\"exp_month\":13,\"exp_year\":$Y3,\"last4\":\"0005\"}")")
expect_eq "exp_month 13: 200, not applied" "$(st "$out") $(js "$out" '.applied|tostring')" "200 false"
out=$(stripe_hook "$(pm_event "evt_upd4_$$" "$PM" "{\"exp_month\":5,\"exp_year\":$Y3,\"last4\":\"4000056655665556\"}")")
expect_eq "a card number as last4: 200, not applied" "$(st "$out") $(js "$out" '.applied|tostring')" "200 false"
out=$(stripe_hook "$(pm_event "evt_upd5_$$" "$PM" "{\"exp_month\":5,\"exp_year\":$((Y - 3)),\"last4\":\"0005\"}")")
expect_eq "an expiry in the past: 200, not applied" "$(st "$out") $(js "$out" '.applied|tostring')" "200 false"
expect_eq "refused updates leave the token as it was" "$(tok_card)" "visa 1881 4/$Y3"
n=$("${PSQL[@]}" -c "SELECT string_agg(gateway_event_id || ':' || outcome || ':' || coalesce(payload->>'last4', '-'), ',' ORDER BY gateway_event_id) FROM ledger.gateway_events WHERE gateway_event_id LIKE 'evt_upd%_$$'" 2>/dev/null)
expect_eq "recorded: applied, unmatched, not applied x3 (invalid fields not kept)" "$n" \
    "evt_upd1_$$:applied:1881,evt_upd2_$$:unmatched:0005,evt_upd3_$$:not_applied:-,evt_upd4_$$:not_applied:-,evt_upd5_$$:not_applied:-"
"$PG_BIN/pg_dump" -h "$T_DIR/pg/run" -U postgres tokend >"$T_DIR/upd-dump.sql" 2>/dev/null
expect_true "the card number sent as last4 is stored nowhere" bash -c "! grep -q 4000056655665556 '$T_DIR/upd-dump.sql'"

# --- disabling an endpoint -------------------------------------------------------------------------
out=$(uapi GET /v1/webhook-endpoints)
UEP=$(js "$out" '.data[0].id')
expect_eq "GET /v1/webhook-endpoints lists the endpoint, enabled" "$(st "$out") $(js "$out" '(.data|length|tostring)+" "+(.data[0].disabled|tostring)+" "+(.data[0]|has("secret")|tostring)')" "200 1 false false"
out=$(uapi DELETE /v1/webhook-endpoints/we_0000000000000000000000)
expect_eq "DELETE of an unknown endpoint: 404 endpoint_not_found" "$(st "$out") $(js "$out" .code)" "404 endpoint_not_found"
out=$(uapi DELETE "/v1/webhook-endpoints/$OTHER_EP")
expect_eq "DELETE of another tenant's endpoint: 404" "$(st "$out") $(js "$out" .code)" "404 endpoint_not_found"
out=$(uapi DELETE /v1/webhook-endpoints/nope)
expect_eq "DELETE of a malformed id: 404" "$(st "$out") $(js "$out" .code)" "404 endpoint_not_found"
# the receiver goes down: the next event's delivery fails and stays pending
kill -TERM "$URECV" 2>/dev/null
wait "$URECV" 2>/dev/null
stripe_hook "$(pm_event "evt_upd6_$$" "$PM" "{\"exp_month\":6,\"exp_year\":$Y3,\"last4\":\"1881\"}")" >/dev/null
EVT6=$("${PSQL[@]}" -c "SELECT id FROM ledger.events WHERE type = 'token.updated' AND data->>'id' = '$TOKU' AND data->>'exp_month' = '6'" 2>/dev/null)
attempts() { "${PSQL[@]}" -c "SELECT attempts FROM ledger.deliveries WHERE event_id = '$1'" 2>/dev/null; }
tried() { [ "$(attempts "$EVT6")" -ge 1 ] 2>/dev/null; }
wait_tried() { local d=$((SECONDS + 10)); while [ $SECONDS -lt $d ]; do tried && return 0; sleep 0.1; done; return 1; }
expect_true "a delivery to the downed receiver is tried" wait_tried
out=$(uapi DELETE "/v1/webhook-endpoints/$UEP")
expect_eq "DELETE /v1/webhook-endpoints/{id}: 200, disabled" "$(st "$out") $(js "$out" '.id+" "+(.disabled|tostring)')" "200 $UEP true"
sleep 0.5
A=$(attempts "$EVT6")
start_urecv
sleep 4
expect_eq "disabled: no further attempts (retries were due every ~1 s)" "$(attempts "$EVT6")" "$A"
expect_true "disabled: nothing reaches the receiver" bash -c "! grep -q '$EVT6' '$T_DIR/urecv.log'"
stripe_hook "$(pm_event "evt_upd7_$$" "$PM" "{\"exp_month\":7,\"exp_year\":$Y3,\"last4\":\"1881\"}")" >/dev/null
n=$("${PSQL[@]}" -c "SELECT count(*) FROM ledger.deliveries d JOIN ledger.events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id WHERE e.type = 'token.updated' AND e.data->>'exp_month' = '7' AND e.data->>'id' = '$TOKU'" 2>/dev/null)
expect_eq "an event while disabled queues no delivery for it" "$n" "0"
expect_eq "GET lists it disabled" "$(uapi GET /v1/webhook-endpoints | sed '$d' | jq -r '.data[0].disabled')" "true"
"${CTL[@]}" webhook enable --tenant "$TEN_U" "$UEP" 2>/dev/null
expect_true "enabled again: the pending delivery resumes and arrives" uwait "$EVT6" 200 20
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT string_agg(action || ':' || actor, ',' ORDER BY id) FROM audit.events WHERE object = '$UEP'")
expect_match "add, disable (by the API key) and enable are audited" "$n" \
    '^webhook_endpoint.created:tokenctl,webhook_endpoint.disabled:key_[0-9A-Za-z]{22},webhook_endpoint.enabled:tokenctl$'
tokend_stop W
