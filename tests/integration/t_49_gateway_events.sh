# t_49_gateway_events.sh - what gateways do after the fact, through tokend and gwsim (issue #16):
# Stripe's 4000000000000341 (stores, then every charge declined) and 4000008400001629 (3-D
# Secure, authenticated, then declined) on both adapters; disputes sent by gwsim as signed
# webhooks (Stripe 0259: charge.dispute.created; Adyen's holderName "Chargeback:10.4":
# NOTIFICATION_OF_CHARGEBACK) that tokend applies (charge disputed, charge.disputed relayed);
# refunds that fail later (Stripe 5126: charge.refund.updated with the Refund failed; the same
# card at Adyen: REFUND_FAILED), recorded failed with their amount given back to the charge
# exactly once, however often the webhook comes (gwsim's resend, a second event for the same
# refund).

E_SK=sk_test_gwev_$$
E_AK=adyen_gwev_key_$$
E_MERCHANT=TokendGwevECOM
E_WHSEC=whsec_gwev_$$
E_HMAC=$(openssl rand -hex 32)
E_Y=$(($(date -u +%Y) + 1))
E_RET=https://shop.example/checkout/return
E_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
E_PSQL() { psql "$T_ADMIN_DB" -XAtq -c "$1"; }

E_PORT=$(free_port)
"$BUILD/gwsim" --listen "127.0.0.1:$E_PORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$E_SK" --adyen-key "$E_AK" --adyen-merchant "$E_MERCHANT" \
    --ready-file "$T_DIR/e49.ready" 2>>"$T_DIR/e49-gwsim.log" &
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -f "$T_DIR/e49.ready" ] && break; sleep 0.05; done
[ -f "$T_DIR/e49.ready" ] || { fail "gwsim starts"; return; }
E_GW="https://localhost:$E_PORT"
gctl() { # METHOD PATH [BODY]
    curl -s --cacert "$T_DIR/tls.crt" -X "$1" ${3:+-H 'content-type: application/json' --data-binary "$3"} "$E_GW$2"
}
gs() { gctl GET /__gwsim/stats | jq -r "$1"; }

(umask 077 && printf '{"api_key":"%s","webhook_secret":"%s"}' "$E_SK" "$E_WHSEC" >"$T_DIR/e49-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s","hmac_key":"%s"}' "$E_AK" "$E_MERCHANT" "$E_HMAC" >"$T_DIR/e49-adyen.json")
E_TS=$("${E_CTL[@]}" tenant create "gwev-stripe-$$" 2>/dev/null)
E_KS=$("${E_CTL[@]}" key create --tenant "$E_TS" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
E_GS=$("${E_CTL[@]}" gateway add --tenant "$E_TS" --kind stripe --credentials-file "$T_DIR/e49-stripe.json" \
    --base-url "$E_GW" --priority 1 2>>"$T_DIR/e49-ctl.err")
E_TA=$("${E_CTL[@]}" tenant create "gwev-adyen-$$" 2>/dev/null)
E_KA=$("${E_CTL[@]}" key create --tenant "$E_TA" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
E_GA=$("${E_CTL[@]}" gateway add --tenant "$E_TA" --kind adyen --credentials-file "$T_DIR/e49-adyen.json" \
    --base-url "$E_GW" --priority 1 2>>"$T_DIR/e49-ctl.err")
expect_match "fixtures: a Stripe tenant and an Adyen tenant" "$E_GS $E_GA" '^gw_[0-9A-Za-z]{22} gw_[0-9A-Za-z]{22}$'

tokend_start E49 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 5000 || { fail "tokend starts"; return; }
E_H2C="http://127.0.0.1:$H2C_E49"

# gwsim's webhook endpoints: tokend's inbound routes for the two gateway accounts
out=$(gctl POST /__gwsim/webhooks "{\"stripe\":{\"url\":\"http://192.0.2.1:80/x\",\"secret\":\"$E_WHSEC\"}}")
expect_eq "gwsim refuses a webhook URL off the loopback" "$(jq -r .error <<<"$out" | cut -c1-7)" "stripe:"
out=$(gctl POST /__gwsim/webhooks "{\"stripe\":{\"url\":\"$E_H2C/v1/webhooks/stripe/$E_GS\",\"secret\":\"$E_WHSEC\"},\"adyen\":{\"url\":\"$E_H2C/v1/webhooks/adyen/$E_GA\",\"hmac_key\":\"$E_HMAC\"},\"delay_ms\":300}")
expect_eq "gwsim: webhook endpoints configured (loopback http)" "$(jq -r .status <<<"$out")" configured

eapi() { # KEY METHOD PATH [BODY] -> "<json>\n<status>"
    local a=(-s --http2-prior-knowledge -X "$2" -H "authorization: Bearer $1" -w '\n%{http_code}')
    [ -n "${4:-}" ] && a+=(-H 'content-type: application/json' --data-binary "$4")
    curl "${a[@]}" "$E_H2C$3"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
tokenise() { # KEY PAN [NAME] -> token id
    js "$(eapi "$1" POST /v1/tokens "{\"card\":{\"number\":\"$2\",\"exp_month\":3,\"exp_year\":$E_Y,\"cvc\":\"737\"${3:+,\"name\":\"$3\"}}}")" .id
}
charge() { # KEY TOKEN OFF_SESSION [extra members]
    eapi "$1" POST /v1/charges "{\"token\":\"$2\",\"amount\":2500,\"currency\":\"eur\",\"off_session\":$3${4:+,$4}}"
}
acs() { # URL complete|fail -> "<status> <location>"
    curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -w '%{http_code} %{redirect_url}' "$1/$2"
}
qparam() { sed -n "s/.*[?&]$2=\([^&]*\).*/\1/p" <<<"$1"; }
summary() { js "$1" '[.status, (.failure_code // "-"), (.decline_code // "-")]|join(" ")'; }
wait_for() { # SECONDS COMMAND...: until the command succeeds
    local n=$(($1 * 10))
    shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
charge_is() { # KEY CHARGE JQ WANT
    [ "$(js "$(eapi "$1" GET "/v1/charges/$2")" "$3")" = "$4" ]
}
events_of() { # TENANT OBJECT_ID -> "type,type,..." in order
    E_PSQL "SELECT coalesce(string_agg(type, ',' ORDER BY created_at, type), '') FROM ledger.events WHERE tenant_id = '$1' AND data->>'id' = '$2'"
}
gw_event() { # GATEWAY_EVENT_TYPE -> the newest such event gwsim kept: "<id> <delivered>"
    gctl GET /__gwsim/webhooks | jq -r --arg t "$1" '[.events[] | select(.type == $t)] | last | "\(.id) \(.delivered)"'
}
delivered_count() { gs .webhooks.delivered; }

# --- 4000000000000341: stores (attaches), then every charge is declined ----------------------------------
T41=$(tokenise "$E_KS" 4000000000000341)
expect_match "stripe 0341: tokenisation succeeds (the PaymentMethod attaches to its Customer)" "$T41" '^tok_'
D0=$(gs .stripe.declines)
out=$(charge "$E_KS" "$T41" true)
expect_eq "stripe 0341 off session: 201 declined card_declined generic_decline" "$(st "$out") $(summary "$out")" \
    "201 declined card_declined generic_decline"
out=$(charge "$E_KS" "$T41" false)
expect_eq "stripe 0341 on session: declined too" "$(summary "$out")" "declined card_declined generic_decline"
expect_eq "... gwsim declined both (402 card_error)" "$(($(gs .stripe.declines) - D0))" 2
T41A=$(tokenise "$E_KA" 4000000000000341)
expect_match "adyen 0341: tokenisation succeeds (the zero-value authorisation is approved)" "$T41A" '^tok_'
out=$(charge "$E_KA" "$T41A" true)
expect_eq "adyen 0341 charge: 201 declined card_declined generic_decline (Refused 2)" "$(st "$out") $(summary "$out")" \
    "201 declined card_declined generic_decline"

# --- 4000008400001629: 3-D Secure required, authenticated, then declined ------------------------------------
T29=$(tokenise "$E_KS" 4000008400001629)
out=$(charge "$E_KS" "$T29" false "\"return_url\":\"$E_RET\"")
CH=$(js "$out" .id)
URL=$(js "$out" .next_action.url)
expect_eq "stripe 1629 customer present: 202 requires_action" "$(st "$out") $(js "$out" .status)" "202 requires_action"
back=$(acs "$URL" complete)
expect_match "the customer authenticates and is sent back to return_url" "$back" "^302 $E_RET\\?payment_intent=${URL##*/}&"
expect_eq "... redirect_status=failed (the issuer declined after authentication)" "$(qparam "$back" redirect_status)" failed
out=$(eapi "$E_KS" POST "/v1/charges/$CH/complete" '{}')
expect_eq "stripe 1629 complete: 200 declined card_declined generic_decline" "$(st "$out") $(summary "$out")" \
    "200 declined card_declined generic_decline"
expect_eq "... events: requires_action, then declined" "$(events_of "$E_TS" "$CH")" "charge.requires_action,charge.declined"
out=$(charge "$E_KS" "$T29" true)
expect_eq "stripe 1629 off session: declined authentication_required" "$(summary "$out")" \
    "declined authentication_required authentication_required"
T29A=$(tokenise "$E_KA" 4000008400001629)
# Adyen's 3-D Secure 2 needs the customer's browser described (t_50), else it refuses
BROWSER='"browser":{"user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0","accept_header":"text/html,*/*;q=0.8","language":"en-GB","color_depth":24,"screen_height":1080,"screen_width":1920,"time_zone_offset":-60,"java_enabled":false}'
out=$(charge "$E_KA" "$T29A" false "\"return_url\":\"$E_RET\",$BROWSER")
CHA=$(js "$out" .id)
expect_eq "adyen 1629 shopper present: 202 requires_action (RedirectShopper)" "$(st "$out") $(js "$out" .status)" "202 requires_action"
back=$(acs "$(js "$out" .next_action.url)" complete)
out=$(eapi "$E_KA" POST "/v1/charges/$CHA/complete" "{\"redirect_result\":\"$(qparam "$back" redirectResult)\"}")
expect_eq "adyen 1629 complete: declined card_declined generic_decline (Refused 2 after the challenge)" \
    "$(st "$out") $(summary "$out")" "200 declined card_declined generic_decline"

# --- disputes ---------------------------------------------------------------------------------------------
T59=$(tokenise "$E_KS" 4000000000000259)
out=$(charge "$E_KS" "$T59" true)
CHD=$(js "$out" .id)
expect_eq "stripe 0259: the charge succeeds" "$(st "$out") $(js "$out" .status)" "201 succeeded"
wait_for 10 charge_is "$E_KS" "$CHD" .status disputed
expect_eq "gwsim's charge.dispute.created (signed) makes the charge disputed" \
    "$(js "$(eapi "$E_KS" GET "/v1/charges/$CHD")" '.status + " " + (.amount_captured|tostring)')" "disputed 2500"
read -r EVD DLV <<<"$(gw_event charge.dispute.created)"
expect_match "... the event gwsim sent: a Stripe evt_, delivered (tokend answered 2xx)" "$EVD $DLV" '^evt_[0-9A-Za-z]{22} true$'
expect_eq "... tokend relayed charge.disputed once" "$(events_of "$E_TS" "$CHD")" "charge.succeeded,charge.disputed"
expect_eq "... recorded as applied, with the PaymentIntent as reference" \
    "$(E_PSQL "SELECT outcome || ' ' || (gateway_ref LIKE 'pi_%') FROM ledger.gateway_events WHERE tenant_id = '$E_TS' AND gateway_event_id = '$EVD'")" \
    "applied true"
N0=$(delivered_count)
out=$(gctl POST "/__gwsim/webhooks/$EVD/resend")
expect_eq "gwsim resends the dispute event (a redelivery)" "$(jq -r .status <<<"$out")" resending
wait_for 10 bash -c "[ \"\$(curl -s --cacert '$T_DIR/tls.crt' '$E_GW/__gwsim/stats' | jq -r .webhooks.delivered)\" -gt $N0 ]"
expect_eq "... delivered again; nothing applied twice (one event, one charge.disputed)" \
    "$(E_PSQL "SELECT count(*) FROM ledger.gateway_events WHERE tenant_id = '$E_TS' AND gateway_event_id = '$EVD'") $(events_of "$E_TS" "$CHD")" \
    "1 charge.succeeded,charge.disputed"

TCB=$(tokenise "$E_KA" 4242424242424242 "Chargeback:10.4")
expect_match "adyen: a card stored with holderName Chargeback:10.4 (Adyen's test trigger)" "$TCB" '^tok_'
out=$(charge "$E_KA" "$TCB" true)
CHB=$(js "$out" .id)
expect_eq "adyen chargeback trigger: the charge succeeds" "$(st "$out") $(js "$out" .status)" "201 succeeded"
wait_for 10 charge_is "$E_KA" "$CHB" .status disputed
expect_eq "gwsim's NOTIFICATION_OF_CHARGEBACK (HMAC-signed) makes the charge disputed" \
    "$(js "$(eapi "$E_KA" GET "/v1/charges/$CHB")" .status)" disputed
expect_eq "... tokend relayed charge.disputed once" "$(events_of "$E_TA" "$CHB")" "charge.succeeded,charge.disputed"
read -r EVA _ <<<"$(gw_event NOTIFICATION_OF_CHARGEBACK)"
expect_eq "... recorded applied against the payment (originalReference)" \
    "$(E_PSQL "SELECT outcome || ' ' || type FROM ledger.gateway_events WHERE tenant_id = '$E_TA' AND type = 'NOTIFICATION_OF_CHARGEBACK'")" \
    "applied NOTIFICATION_OF_CHARGEBACK"
N0=$(delivered_count)
gctl POST "/__gwsim/webhooks/$EVA/resend" >/dev/null
wait_for 10 bash -c "[ \"\$(curl -s --cacert '$T_DIR/tls.crt' '$E_GW/__gwsim/stats' | jq -r .webhooks.delivered)\" -gt $N0 ]"
expect_eq "adyen redelivery: nothing applied twice" \
    "$(E_PSQL "SELECT count(*) FROM ledger.gateway_events WHERE tenant_id = '$E_TA' AND type = 'NOTIFICATION_OF_CHARGEBACK'") $(events_of "$E_TA" "$CHB")" \
    "1 charge.succeeded,charge.disputed"
T42=$(tokenise "$E_KA" 4242424242424242 "Jane Doe")
out=$(charge "$E_KA" "$T42" true)
CHN=$(js "$out" .id)
sleep 1
expect_eq "adyen, another holder name: no chargeback" "$(js "$(eapi "$E_KA" GET "/v1/charges/$CHN")" .status)" succeeded

# --- refunds that fail later ------------------------------------------------------------------------------
T26=$(tokenise "$E_KS" 4000000000005126)
out=$(charge "$E_KS" "$T26" true)
CHR=$(js "$out" .id)
out=$(eapi "$E_KS" POST /v1/refunds "{\"charge\":\"$CHR\",\"amount\":1000}")
RF=$(js "$out" .id)
expect_eq "stripe 5126: the refund is 201 succeeded at first" "$(st "$out") $(js "$out" .status)" "201 succeeded"
wait_for 10 bash -c "curl -s --http2-prior-knowledge -H 'authorization: Bearer $E_KS' '$E_H2C/v1/refunds/$RF' | jq -e '.status == \"failed\"' >/dev/null"
out=$(eapi "$E_KS" GET "/v1/refunds/$RF")
expect_eq "gwsim's charge.refund.updated (status failed): the refund is failed" \
    "$(js "$out" '.status + " " + .failure_code')" "failed expired_or_canceled_card"
out=$(eapi "$E_KS" GET "/v1/charges/$CHR")
expect_eq "... its amount is back on the charge: succeeded, amount_refunded 0" \
    "$(js "$out" '.status + " " + (.amount_refunded|tostring)')" "succeeded 0"
expect_eq "... tokend relayed refund.failed (the refund) once" "$(events_of "$E_TS" "$RF")" "charge.refunded,refund.failed"
expect_eq "... and charge.updated (the charge, amount_refunded 0)" \
    "$(E_PSQL "SELECT string_agg(type || ':' || (data->>'amount_refunded'), ',' ORDER BY created_at) FROM ledger.events WHERE tenant_id = '$E_TS' AND data->>'id' = '$CHR' AND type = 'charge.updated'")" \
    "charge.updated:0"
read -r EVR _ <<<"$(gw_event charge.refund.updated)"
N0=$(delivered_count)
gctl POST "/__gwsim/webhooks/$EVR/resend" >/dev/null
wait_for 10 bash -c "[ \"\$(curl -s --cacert '$T_DIR/tls.crt' '$E_GW/__gwsim/stats' | jq -r .webhooks.delivered)\" -gt $N0 ]"
out=$(eapi "$E_KS" GET "/v1/charges/$CHR")
expect_eq "stripe redelivery: the amount is given back once (amount_refunded 0, one refund.failed)" \
    "$(js "$out" '.status + " " + (.amount_refunded|tostring)') $(events_of "$E_TS" "$RF")" "succeeded 0 charge.refunded,refund.failed"
# the same failure under another event id and Stripe's newer type: the refund is already failed
PI=$(js "$out" .gateway_reference)
EV="{\"id\":\"evt_gwev_rf_$$\",\"object\":\"event\",\"type\":\"refund.failed\",\"data\":{\"object\":{\"id\":\"$(js "$(eapi "$E_KS" GET "/v1/refunds/$RF")" .gateway_reference)\",\"object\":\"refund\",\"amount\":1000,\"payment_intent\":\"$PI\",\"status\":\"failed\",\"failure_reason\":\"lost_or_stolen_card\"}}}"
T=$(date +%s)
SIG=$(printf '%s' "$T.$EV" | openssl dgst -sha256 -hmac "$E_WHSEC" -r | cut -d' ' -f1)
out=$(curl -s --http2-prior-knowledge -X POST -H 'content-type: application/json' -H "Stripe-Signature: t=$T,v1=$SIG" \
    --data-binary "$EV" -w '\n%{http_code}' "$E_H2C/v1/webhooks/stripe/$E_GS")
expect_eq "refund.failed for a refund already failed: received, not applied" "$(st "$out") $(js "$out" .applied)" "200 false"
out=$(eapi "$E_KS" GET "/v1/charges/$CHR")
expect_eq "... amount_refunded stays 0 (never below), the failure code stays the first" \
    "$(js "$out" '(.amount_refunded|tostring)') $(js "$(eapi "$E_KS" GET "/v1/refunds/$RF")" .failure_code)" "0 expired_or_canceled_card"

# two refunds on one charge, both failing later: partially_refunded, then succeeded
gctl POST /__gwsim/webhooks '{"delay_ms":1500}' >/dev/null
out=$(charge "$E_KS" "$T26" true)
CH2=$(js "$out" .id)
eapi "$E_KS" POST /v1/refunds "{\"charge\":\"$CH2\",\"amount\":1000}" >/dev/null
out=$(eapi "$E_KS" POST /v1/refunds "{\"charge\":\"$CH2\"}")
expect_eq "a second refund of the rest: the charge is refunded (2500)" \
    "$(js "$(eapi "$E_KS" GET "/v1/charges/$CH2")" '.status + " " + (.amount_refunded|tostring)')" "refunded 2500"
wait_for 10 charge_is "$E_KS" "$CH2" .amount_refunded 0
expect_eq "both fail: charge.updated partially_refunded (1500 left), then succeeded (0)" \
    "$(E_PSQL "SELECT string_agg((data->>'status') || ':' || (data->>'amount_refunded'), ',' ORDER BY created_at) FROM ledger.events WHERE tenant_id = '$E_TS' AND data->>'id' = '$CH2' AND type = 'charge.updated'")" \
    "partially_refunded:1500,succeeded:0"
gctl POST /__gwsim/webhooks '{"delay_ms":300}' >/dev/null

T26A=$(tokenise "$E_KA" 4000000000005126)
out=$(charge "$E_KA" "$T26A" true)
CHRA=$(js "$out" .id)
out=$(eapi "$E_KA" POST /v1/refunds "{\"charge\":\"$CHRA\",\"amount\":1000}")
RFA=$(js "$out" .id)
expect_eq "adyen 5126: the refund is 201 succeeded (Adyen: received)" "$(st "$out") $(js "$out" .status)" "201 succeeded"
wait_for 10 charge_is "$E_KA" "$CHRA" .amount_refunded 0
out=$(eapi "$E_KA" GET "/v1/refunds/$RFA")
expect_eq "gwsim's REFUND_FAILED: the refund is failed" "$(js "$out" '.status + " " + .failure_code')" "failed refund_failed"
expect_eq "... the charge is succeeded again, refund.failed relayed once" \
    "$(js "$(eapi "$E_KA" GET "/v1/charges/$CHRA")" '.status + " " + (.amount_refunded|tostring)') $(events_of "$E_TA" "$RFA")" \
    "succeeded 0 charge.refunded,refund.failed"
read -r EVF _ <<<"$(gw_event REFUND_FAILED)"
N0=$(delivered_count)
gctl POST "/__gwsim/webhooks/$EVF/resend" >/dev/null
wait_for 10 bash -c "[ \"\$(curl -s --cacert '$T_DIR/tls.crt' '$E_GW/__gwsim/stats' | jq -r .webhooks.delivered)\" -gt $N0 ]"
expect_eq "adyen redelivery of REFUND_FAILED: nothing applied twice" \
    "$(js "$(eapi "$E_KA" GET "/v1/charges/$CHRA")" '(.amount_refunded|tostring)') $(events_of "$E_TA" "$RFA") $(E_PSQL "SELECT count(*) FROM ledger.gateway_events WHERE tenant_id = '$E_TA' AND type = 'REFUND_FAILED'")" \
    "0 charge.refunded,refund.failed 1"

# --- the events' shapes as gwsim sends them: a receiver on the loopback takes the resends -------------------
cat >"$T_DIR/e49-recv.py" <<'PY'
import http.server, json, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(out + "/" + self.path.strip("/").replace("/", "_") + ".json", "wb") as f:
            f.write(body)
        with open(out + "/" + self.path.strip("/").replace("/", "_") + ".sig", "w") as f:
            f.write(self.headers.get("stripe-signature", ""))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
E_RPORT=$(free_port)
mkdir -p "$T_DIR/e49-recv"
python3 "$T_DIR/e49-recv.py" "$E_RPORT" "$T_DIR/e49-recv" &
T_PIDS+=("$!")
wait_for 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$E_RPORT" 2>/dev/null
gctl POST /__gwsim/webhooks "{\"stripe\":{\"url\":\"http://127.0.0.1:$E_RPORT/stripe/dispute\",\"secret\":\"$E_WHSEC\"},\"adyen\":{\"url\":\"http://localhost:$E_RPORT/adyen/chargeback\",\"hmac_key\":\"$E_HMAC\"}}" >/dev/null
gctl POST "/__gwsim/webhooks/$EVD/resend" >/dev/null
gctl POST "/__gwsim/webhooks/$EVA/resend" >/dev/null
wait_for 10 test -s "$T_DIR/e49-recv/stripe_dispute.json"
wait_for 10 test -s "$T_DIR/e49-recv/adyen_chargeback.json"
gctl POST /__gwsim/webhooks "{\"stripe\":{\"url\":\"http://127.0.0.1:$E_RPORT/stripe/refund\",\"secret\":\"$E_WHSEC\"},\"adyen\":{\"url\":\"http://127.0.0.1:$E_RPORT/adyen/refund\",\"hmac_key\":\"$E_HMAC\"}}" >/dev/null
gctl POST "/__gwsim/webhooks/$EVR/resend" >/dev/null
wait_for 10 test -s "$T_DIR/e49-recv/stripe_refund.json"
E_DJ="$T_DIR/e49-recv/stripe_dispute.json"
expect_eq "stripe dispute event: type, Dispute reason/status, its charge, PaymentIntent and amount" \
    "$(jq -r '[.id == "'"$EVD"'", .type, .data.object.object, .data.object.reason, .data.object.status, (.data.object.charge|startswith("ch_")), (.data.object.payment_intent|startswith("pi_")), .data.object.amount]|join(" ")' "$E_DJ")" \
    "true charge.dispute.created dispute fraudulent needs_response true true 2500"
SIGH=$(cat "$T_DIR/e49-recv/stripe_dispute.sig")
ST=${SIGH#t=}; ST=${ST%%,*}
expect_eq "... Stripe-Signature verifies (HMAC-SHA256 of t.body under the endpoint secret)" \
    "${SIGH#*v1=}" "$( (printf '%s.' "$ST"; cat "$E_DJ") | openssl dgst -sha256 -hmac "$E_WHSEC" -r | cut -d' ' -f1)"
E_FIX=""
for c in "${TOKEND_CONTRACTS:-}" "$PWD/../shared/contracts" /work/shared/contracts; do
    [ -n "$c" ] && [ -f "$c/stripe/fixtures3.json" ] && { E_FIX="$c/stripe/fixtures3.json"; break; }
done
if [ -n "$E_FIX" ]; then
    expect_eq "... the Dispute has the members of Stripe's fixture, the Event those of its Event" \
        "$(jq -c '.data.object|keys' "$E_DJ") $(jq -c 'keys' "$E_DJ")" \
        "$(jq -c '.resources.dispute|keys' "$E_FIX") $(jq -c '.resources.event|keys' "$E_FIX")"
    expect_eq "stripe charge.refund.updated: the Refund's members (the fixture's, failure_* added), failed" \
        "$(jq -c '[(.data.object|keys), .data.object.status, .data.object.failure_reason, .data.previous_attributes.status]' "$T_DIR/e49-recv/stripe_refund.json")" \
        "$(jq -c '[(.resources.refund + {failure_reason: 1, failure_balance_transaction: 1}|keys), "failed", "expired_or_canceled_card", "succeeded"]' "$E_FIX")"
else
    echo "  note  Stripe's fixtures not found (TOKEND_CONTRACTS, ../shared/contracts): member check not run" >&2
fi
E_AJ="$T_DIR/e49-recv/adyen_chargeback.json"
expect_eq "adyen NOTIFICATION_OF_CHARGEBACK: one item, the payment as originalReference, reason code 10.4" \
    "$(jq -r '.notificationItems[0].NotificationRequestItem | [.eventCode, .success, (.originalReference|length), .additionalData.chargebackReasonCode, .merchantAccountCode]|join(" ")' "$E_AJ")" \
    "NOTIFICATION_OF_CHARGEBACK true 16 10.4 $E_MERCHANT"
SIGN=$(jq -r '.notificationItems[0].NotificationRequestItem | [.pspReference, .originalReference, .merchantAccountCode, .merchantReference, (.amount.value|tostring), .amount.currency, .eventCode, .success]|join(":")' "$E_AJ")
expect_eq "... its hmacSignature verifies (Adyen's signing string, the hex key)" \
    "$(jq -r '.notificationItems[0].NotificationRequestItem.additionalData.hmacSignature' "$E_AJ")" \
    "$(printf '%s' "$SIGN" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$E_HMAC" -binary | base64)"
gctl POST "/__gwsim/webhooks/$EVF/resend" >/dev/null
wait_for 10 test -s "$T_DIR/e49-recv/adyen_refund.json"
expect_eq "adyen REFUND_FAILED: the refund's pspReference, the payment as originalReference" \
    "$(jq -r '.notificationItems[0].NotificationRequestItem | [.eventCode, (.pspReference != .originalReference), .amount.value]|join(" ")' "$T_DIR/e49-recv/adyen_refund.json")" \
    "REFUND_FAILED true 1000"

expect_eq "gwsim: every webhook delivered, none given up or dropped" \
    "$(gs '[.webhooks.given_up, .webhooks.dropped, .webhooks.unconfigured]|join(" ")') $(gctl GET /__gwsim/webhooks | jq '[.events[] | select(.delivered | not)] | length')" "0 0 0 0"

tokend_stop E49
expect_true "tokend log: no test PAN, no gateway key or webhook secret" \
    bash -c "! grep -hE '4000000000005126|4000000000000259|4000008400001629|$E_SK|$E_AK|$E_WHSEC|$E_HMAC' '$LOG_E49'"
expect_true "gwsim log: no PAN-shaped digits, no webhook secret" \
    bash -c "! grep -hE '(^|[^0-9A-Za-z])[0-9]{12,19}([^0-9A-Za-z]|\$)|$E_WHSEC|$E_HMAC' '$T_DIR/e49-gwsim.log'"
