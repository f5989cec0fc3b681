# t_30_openapi.sh - the OpenAPI contract (docs/openapi.json) cannot drift from the code:
# - its operations are exactly service/routes.c's table (tests/openapi/routes_vs_spec.py);
# - @redocly/cli lints it;
# - tokend serves the same bytes at GET /v1/openapi.json;
# - the responses of the main flows (tokenise, get token, charge, capture, void, refund, lists,
#   exports, reconciliation, webhook endpoints and events, elements, errors), captured here from
#   a real tokend over HTTP/2, are each declared by the spec for their operation and status and
#   validate against its schema (tests/openapi/validate.mjs, ajv with JSON Schema 2020-12).

OA=tests/openapi
SPEC=docs/openapi.json

out=$(python3 "$OA/routes_vs_spec.py" service/routes.c "$SPEC" 2>&1)
expect_eq "spec operations = routes.c's table" "$?:$out" "0:routes and spec agree: $(grep -c '^    {"[A-Z]*", "/' service/routes.c) operations"

if [ -x "$OA/node_modules/.bin/redocly" ]; then
    # offline and quiet: no telemetry, no update check
    lint=$(cd "$OA" && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
        node_modules/.bin/redocly lint --config redocly.yaml --format stylish "../../$SPEC" 2>&1)
    expect_eq "redocly lint passes" "$?" "0" || printf '%s\n' "$lint" | tail -n 30 >&2
    expect_eq "redocly lint: no warnings either" "$(grep -cE '^ +[0-9]+:[0-9]+ +(warning|error)' <<<"$lint")" "0"
else
    fail "redocly is installed (run: make lint-deps)"
fi

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
T_REPORTING_DB=$(pg_conninfo "$T_DIR/pg" tokend_reporting)
TEN=$("${CTL[@]}" tenant create "oaco-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write,admin --test 2>/dev/null)
RKEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes reports:read --test 2>/dev/null)
PKEY=$("${CTL[@]}" key create --tenant "$TEN" --publishable --origin https://shop.example --test 2>/dev/null)
WHSEC="whsec_sandbox_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(umask 077; printf '{"webhook_secret":"%s"}' "$WHSEC" >"$T_DIR/t30-sbx.json")
GW=$("${CTL[@]}" gateway add --tenant "$TEN" --kind sandbox --credentials-file "$T_DIR/t30-sbx.json" 2>/dev/null)
expect_match "fixtures: keys and a sandbox account" "$KEY $RKEY $PKEY $GW" '^sk_test_.* sk_test_.* pk_test_.* gw_'
tokend_start OA --reporting-db "$T_REPORTING_DB" || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_OA"
Y=$(($(date -u +%Y) + 1))
CAPS="$T_DIR/t30-captures.ndjson"
: >"$CAPS"

# cap TEMPLATE METHOD PATH KEY [BODY [CONTENT-TYPE [HEADER]]]: one request; its status, content
# type and body are appended to $CAPS under the spec's path template; prints the body.
cap() {
    local tpl=$1 m=$2 p=$3 k=$4 b=${5:-} ct=${6:-application/json} hdr=${7:-}
    local args=(-s --http2-prior-knowledge -X "$m" -o "$T_DIR/t30.body" -w '%{http_code} %{content_type}')
    [ -n "$k" ] && args+=(-H "authorization: Bearer $k")
    [ -n "$hdr" ] && args+=(-H "$hdr")
    [ -n "$b" ] && args+=(-H "content-type: $ct" --data-binary "$b")
    local meta status ctype
    meta=$(curl "${args[@]}" "$H2C$p")
    status=${meta%% *}
    ctype=${meta#* }
    jq -cn --arg path "$tpl" --arg method "$m" --argjson status "$status" --arg ct "$ctype" \
        --rawfile body "$T_DIR/t30.body" '{path:$path,method:$method,status:$status,content_type:$ct,body:$body}' >>"$CAPS"
    cat "$T_DIR/t30.body"
}
card() { printf '{"card":{"number":"%s","exp_month":12,"exp_year":%s,"cvc":"123"}%s}' "$1" "$Y" "${2:-}"; }

# --- the spec served by tokend --------------------------------------------------------------------
curl -s --http2-prior-knowledge -o "$T_DIR/t30.served" -D "$T_DIR/t30.h" "$H2C/v1/openapi.json"
expect_true "GET /v1/openapi.json serves docs/openapi.json byte for byte" cmp -s "$T_DIR/t30.served" "$SPEC"
expect_match "it is application/json, unauthenticated" "$(tr -d '\r' <"$T_DIR/t30.h" | grep -i '^content-type:')" 'application/json'
expect_eq "the served spec parses" "$(jq -r .openapi "$T_DIR/t30.served")" "3.1.0"

# --- probes and routing errors --------------------------------------------------------------------
cap /healthz GET /healthz "" >/dev/null
cap /readyz GET /readyz "" >/dev/null
cap /v1/openapi.json GET /v1/openapi.json "" >/dev/null
# 405 method_not_allowed belongs to no operation: checked here by hand
out=$(curl -s --http2-prior-knowledge -X PUT -w '\n%{http_code}' "$H2C/v1/tokens")
expect_eq "405 is problem+json method_not_allowed" "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out" | jq -r .code)" "405 method_not_allowed"

# --- tokens ---------------------------------------------------------------------------------------
TOK=$(cap /v1/tokens POST /v1/tokens "$KEY" "$(card 4242424242424242 ',"metadata":{"customer":"C-1"}')" | jq -r .id)
expect_match "tokenise" "$TOK" '^tok_'
cap /v1/tokens POST /v1/tokens "$KEY" "$(card 4242424242424242 ',"deduplicate":true')" >/dev/null
cap /v1/tokens POST /v1/tokens "$KEY" "$(card 5555555555554444 ',"format":"pan_shaped"')" >/dev/null
cap /v1/tokens POST /v1/tokens "$KEY" "$(card 4242424242424241)" >/dev/null
cap /v1/tokens POST /v1/tokens "$KEY" '{"card":' >/dev/null
cap /v1/tokens POST /v1/tokens "$KEY" 'x=1' application/x-www-form-urlencoded >/dev/null
cap /v1/tokens POST /v1/tokens "" "$(card 4242424242424242)" >/dev/null
cap /v1/tokens POST /v1/tokens "$RKEY" "$(card 4242424242424242)" >/dev/null
cap /v1/tokens POST /v1/tokens "$PKEY" "$(card 4242424242424242)" application/json 'origin: https://evil.example' >/dev/null
cap /v1/tokens POST /v1/tokens "$PKEY" "$(card 4242424242424242)" application/json 'origin: https://shop.example' >/dev/null
cap /v1/tokens POST /v1/tokens "$KEY" "$(card 4000000000000119)" >/dev/null
cap /v1/tokens OPTIONS /v1/tokens "" "" application/json 'origin: https://shop.example' >/dev/null
cap '/v1/tokens/{id}' GET "/v1/tokens/$TOK" "$KEY" >/dev/null
cap '/v1/tokens/{id}' GET /v1/tokens/tok_nope "$KEY" >/dev/null

# --- charges and refunds --------------------------------------------------------------------------
CH=$(cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":1999,\"currency\":\"usd\",\"invoice_ref\":\"INV-42\"}" | jq -r .id)
expect_match "charge" "$CH" '^ch_'
AUTH=$(cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":500,\"currency\":\"eur\",\"capture\":false}" | jq -r .id)
AUTH2=$(cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":700,\"currency\":\"eur\",\"capture\":false}" | jq -r .id)
DTOK=$(api_tok=$(cap /v1/tokens POST /v1/tokens "$KEY" "$(card 4000000000000002)"); jq -r .id <<<"$api_tok")
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$DTOK\",\"amount\":100,\"currency\":\"usd\"}" >/dev/null
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":0,\"currency\":\"usd\"}" >/dev/null
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"tok_0000000000000000000000\",\"amount\":1,\"currency\":\"usd\"}" >/dev/null
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":1,\"currency\":\"usd\"}" application/json 'idempotency-key: oa-1' >/dev/null
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":1,\"currency\":\"usd\"}" application/json 'idempotency-key: oa-1' >/dev/null
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":2,\"currency\":\"usd\"}" application/json 'idempotency-key: oa-1' >/dev/null
cap '/v1/charges/{id}' GET "/v1/charges/$CH" "$KEY" >/dev/null
cap '/v1/charges/{id}' GET /v1/charges/ch_nope "$KEY" >/dev/null
cap '/v1/charges/{id}/capture' POST "/v1/charges/$AUTH/capture" "$KEY" '{"amount":400}' >/dev/null
cap '/v1/charges/{id}/capture' POST "/v1/charges/$CH/capture" "$KEY" '{}' >/dev/null
cap '/v1/charges/{id}/void' POST "/v1/charges/$AUTH2/void" "$KEY" '{}' >/dev/null
cap '/v1/charges/{id}/void' POST "/v1/charges/$CH/void" "$KEY" '{}' >/dev/null
RF=$(cap /v1/refunds POST /v1/refunds "$KEY" "{\"charge\":\"$CH\",\"amount\":500}" | jq -r .id)
expect_match "refund" "$RF" '^re_'
cap /v1/refunds POST /v1/refunds "$KEY" "{\"charge\":\"$CH\",\"amount\":99999}" >/dev/null
cap '/v1/refunds/{id}' GET "/v1/refunds/$RF" "$RKEY" >/dev/null
cap '/v1/refunds/{id}' GET /v1/refunds/re_nope "$KEY" >/dev/null
cap '/v1/tokens/{id}' DELETE "/v1/tokens/$DTOK" "$KEY" >/dev/null
cap /v1/charges POST /v1/charges "$KEY" "{\"token\":\"$DTOK\",\"amount\":100,\"currency\":\"usd\"}" >/dev/null

# --- lists and exports (reports:read) ------------------------------------------------------------
cap /v1/charges GET '/v1/charges?limit=2' "$RKEY" >/dev/null
cap /v1/charges GET '/v1/charges?limit=0' "$RKEY" >/dev/null
cap /v1/refunds GET /v1/refunds "$RKEY" >/dev/null
cap /v1/events GET /v1/events "$RKEY" >/dev/null
cap /v1/exports/charges GET '/v1/exports/charges?format=csv' "$RKEY" >/dev/null
cap /v1/exports/refunds GET '/v1/exports/refunds?format=ndjson' "$RKEY" >/dev/null
cap /v1/exports/events GET '/v1/exports/events?format=ndjson' "$RKEY" >/dev/null
cap /v1/exports/charges GET '/v1/exports/charges?format=xml' "$RKEY" >/dev/null
cap /v1/charges GET /v1/charges "$PKEY" >/dev/null

# --- reconciliation -------------------------------------------------------------------------------
REC=$(cap /v1/reconciliations POST '/v1/reconciliations?gateway=stripe' "$RKEY" \
    $'source_id,reporting_category,currency,gross,fee,net,created_utc\r\nsbxch_none,charge,usd,10.00,0.30,9.70,2025-01-01 00:00:00\r\n' text/csv | jq -r .id)
expect_match "reconciliation started" "$REC" '^rec_'
for _ in $(seq 1 100); do
    [ "$(curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" "$H2C/v1/reconciliations/$REC" | jq -r .status)" != running ] && break
    sleep 0.05
done
cap '/v1/reconciliations/{id}' GET "/v1/reconciliations/$REC" "$RKEY" >/dev/null
cap '/v1/reconciliations/{id}/exceptions' GET "/v1/reconciliations/$REC/exceptions?format=csv" "$RKEY" >/dev/null
cap '/v1/reconciliations/{id}' GET /v1/reconciliations/rec_nope "$RKEY" >/dev/null
cap /v1/reconciliations POST '/v1/reconciliations?gateway=paypal' "$RKEY" 'a,b' text/csv >/dev/null

# --- webhooks in and out, events' deliveries ------------------------------------------------------
WE=$(cap /v1/webhook-endpoints POST /v1/webhook-endpoints "$KEY" '{"url":"https://hooks.example/tokend"}' | jq -r .id)
expect_match "webhook endpoint" "$WE" '^we_'
cap /v1/webhook-endpoints POST /v1/webhook-endpoints "$KEY" '{"url":"ftp://hooks.example/x"}' >/dev/null
cap /v1/webhook-endpoints GET /v1/webhook-endpoints "$KEY" >/dev/null
REF=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY" "$H2C/v1/charges/$AUTH" | jq -r .gateway_reference)
EV="{\"id\":\"evt_oa_1\",\"type\":\"charge.refunded\",\"data\":{\"object\":{\"gateway_reference\":\"$REF\",\"amount_captured\":400,\"amount_refunded\":100}}}"
T=$(date +%s)
SIG=$(printf '%s' "$T.$EV" | openssl dgst -sha256 -hmac "$WHSEC" -r | cut -d' ' -f1)
cap '/v1/webhooks/{gateway}/{endpoint_id}' POST "/v1/webhooks/sandbox/$GW" "" "$EV" application/json "tokend-signature: t=$T,v1=$SIG" >/dev/null
cap '/v1/webhooks/{gateway}/{endpoint_id}' POST "/v1/webhooks/sandbox/$GW" "" "$EV" application/json "tokend-signature: t=$T,v1=00" >/dev/null
EVT=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" "$H2C/v1/events" | jq -r '[.data[]|select(.type=="charge.refunded")][0].id')
expect_match "the webhook made an event" "$EVT" '^evt_'
cap '/v1/events/{id}/deliveries' GET "/v1/events/$EVT/deliveries" "$RKEY" >/dev/null
cap '/v1/webhook-endpoints/{id}' DELETE "/v1/webhook-endpoints/$WE" "$KEY" >/dev/null
cap '/v1/webhook-endpoints/{id}' DELETE /v1/webhook-endpoints/we_nope "$KEY" >/dev/null

# --- the card element -----------------------------------------------------------------------------
cap /v1/elements/card GET "/v1/elements/card?key=$PKEY&origin=https%3A%2F%2Fshop.example" "" >/dev/null
cap /v1/elements/card GET "/v1/elements/card?key=$PKEY" "" >/dev/null
cap /v1/elements/card.js GET /v1/elements/card.js "" >/dev/null
cap /v1/elements/card.css GET /v1/elements/card.css "" >/dev/null
cap /v1/elements/iin.json GET /v1/elements/iin.json "" >/dev/null

# --- every captured response against the spec -----------------------------------------------------
n=$(wc -l <"$CAPS")
out=$(node "$OA/validate.mjs" "$SPEC" "$CAPS" 2>&1)
expect_eq "all $n captured responses conform to the spec" "$?" "0" || printf '%s\n' "$out" | tail -n 40 >&2
expect_match "the validator saw them all" "$out" "^validate: $n responses, 0 failed"
# statuses the main flows must have shown (so a flow that silently broke cannot pass)
seen=$(jq -r '"\(.method) \(.path) \(.status)"' "$CAPS" | sort -u | tr '\n' ';')
for want in "POST /v1/tokens 201" "POST /v1/tokens 200" "POST /v1/tokens 422" "POST /v1/tokens 400" \
    "POST /v1/tokens 415" "POST /v1/tokens 401" "POST /v1/tokens 403" "POST /v1/tokens 502" \
    "GET /v1/tokens/{id} 200" "GET /v1/tokens/{id} 404" "POST /v1/charges 201" "POST /v1/charges 422" \
    "POST /v1/charges 404" "POST /v1/refunds 201" "POST /v1/refunds 422" "GET /v1/charges 200" \
    "GET /v1/charges 422" "GET /v1/events 200" "POST /v1/reconciliations 202" \
    "GET /v1/reconciliations/{id} 200" "POST /v1/webhook-endpoints 201" \
    "POST /v1/webhooks/{gateway}/{endpoint_id} 200" "POST /v1/webhooks/{gateway}/{endpoint_id} 401"; do
    expect_true "captured: $want" grep -qF ";$want;" <<<";$seen"
done

# the validator itself catches a drifted response
jq -c 'if .path == "/v1/tokens" and .status == 201 then .body = (.body|fromjson|del(.last4)|tojson) else . end' "$CAPS" >"$T_DIR/t30-bad.ndjson"
out=$(node "$OA/validate.mjs" "$SPEC" "$T_DIR/t30-bad.ndjson" 2>&1)
expect_match "a token without last4 fails validation" "$out" "POST /v1/tokens 201.*last4"
jq -c 'if .path == "/v1/charges" and .status == 422 then .status = 418 else . end' "$CAPS" >"$T_DIR/t30-bad.ndjson"
out=$(node "$OA/validate.mjs" "$SPEC" "$T_DIR/t30-bad.ndjson" 2>&1)
expect_match "an undeclared status fails validation" "$out" "POST /v1/charges 418: status not declared"
