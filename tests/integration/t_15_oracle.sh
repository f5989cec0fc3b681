# t_15_oracle.sh - issue #15, findings 1, 2 and 6, over real HTTP/2 (curl --http2-prior-knowledge)
# against real PostgreSQL:
#   1. a publishable key never learns whether a card is stored (no deduplicate, the same answer
#      for a stored and a new card, no fingerprint or stored metadata); a secret key's
#      de-duplication hits are bounded per key (429 dedup_limit_exceeded + Retry-After),
#      audited, logged and counted by `tokenctl audit dedup`;
#   2. a publishable key may create tokens and load the card element, nothing else: every route
#      of service/routes.c is tried with one;
#   6. text PostgreSQL cannot store (NUL) is refused (422 invalid_text) before any gateway call.

O_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
O_SHOP=https://shop.example
O_TEN=$("${O_CTL[@]}" tenant create "oracle-$$" 2>/dev/null)
O_SK=$("${O_CTL[@]}" key create --tenant "$O_TEN" --scopes tokens:write,tokens:read,charges:write,reports:read --test 2>/dev/null)
O_SK2=$("${O_CTL[@]}" key create --tenant "$O_TEN" --scopes tokens:write,tokens:read --test 2>/dev/null)
O_PK=$("${O_CTL[@]}" key create --tenant "$O_TEN" --publishable --origin "$O_SHOP" --test 2>/dev/null)
expect_match "oracle fixtures: tenant, secret and publishable keys" "$O_TEN $O_SK $O_SK2 $O_PK" \
    '^ten_.* sk_test_.* sk_test_.* pk_test_'
O_PSQL() { PGOPTIONS= pg_psql "$T_DIR/pg" -tAc "$1"; }
O_PK_ID=$(O_PSQL "SELECT id FROM vault.api_keys WHERE tenant_id = '$O_TEN' AND publishable")
O_SK_ID=$(O_PSQL "SELECT id FROM vault.api_keys WHERE tenant_id = '$O_TEN' AND NOT publishable ORDER BY created_at LIMIT 1")
expect_eq "a new publishable key's scopes: {tokens:create} only" \
    "$(O_PSQL "SELECT scopes FROM vault.api_keys WHERE id = '$O_PK_ID'")" "{tokens:create}"

# sql/015 moves publishable keys made before it: put one back as it was, re-run the migration
O_PSQL "ALTER TABLE vault.api_keys DROP CONSTRAINT api_keys_publishable_scopes;
        UPDATE vault.api_keys SET scopes = ARRAY['tokens:write'] WHERE id = '$O_PK_ID'" >/dev/null
expect_eq "(an old publishable key carries tokens:write)" \
    "$(O_PSQL "SELECT scopes FROM vault.api_keys WHERE id = '$O_PK_ID'")" "{tokens:write}"
O_PSQL "DELETE FROM tokend_meta.schema_migrations WHERE version = 15" >/dev/null
"${O_CTL[@]}" migrate --dir sql >"$T_DIR/o15-migrate.log" 2>&1
expect_eq "migration 015 converts it to {tokens:create}" \
    "$(O_PSQL "SELECT scopes FROM vault.api_keys WHERE id = '$O_PK_ID'")" "{tokens:create}"
err=$(O_PSQL "UPDATE vault.api_keys SET scopes = ARRAY['tokens:write'] WHERE id = '$O_PK_ID'" 2>&1)
expect_match "the schema refuses tokens:write on a publishable key" "$err" 'api_keys_publishable_scopes'
"${O_CTL[@]}" migrate --dir sql >>"$T_DIR/o15-migrate.log" 2>&1
expect_eq "migration 015 runs again without harm" "$?" 0

tokend_start O15 --dedup-hits-max 2 --dedup-window-s 3600 || { fail "tokend starts"; return; }
O_H2C="http://127.0.0.1:$H2C_O15"
O_Y=$(($(date -u +%Y) + 1))

# o_req METHOD PATH KEY [BODY] [curl args...] -> "<body>\n<status>" (headers in $T_DIR/o15.hdr)
o_req() {
    local m=$1 path=$2 key=$3 body=${4:-}
    shift 3
    [ $# -gt 0 ] && shift
    local a=(-s --http2-prior-knowledge -X "$m" -D "$T_DIR/o15.hdr" -w '\n%{http_code}')
    [ -n "$key" ] && a+=(-H "authorization: Bearer $key")
    [ -n "$body" ] && a+=(-H 'content-type: application/json' --data-binary "$body")
    curl "${a[@]}" "$@" "$O_H2C$path"
}
o_st() { tail -n 1 <<<"$1"; }
o_js() { sed '$d' <<<"$1"; }
o_card() { # PAN [extra top-level JSON members]
    printf '{"card":{"number":"%s","exp_month":12,"exp_year":%s,"cvc":"123"}%s}' "$1" "$O_Y" "${2:+,$2}"
}
o_tokens() { O_PSQL "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$O_TEN'"; }

# --- 1. no oracle for a publishable key -------------------------------------------------------
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4000056655665556 '"metadata":{"customer":"C-victim"}')")
expect_eq "a secret key stores the victim's card" "$(o_st "$out")" 201
O_VICTIM=$(o_js "$out" | jq -r .id)
PKH=(-H "origin: $O_SHOP")
for pan in 4000056655665556 5200828282828210; do # stored, never stored
    out=$(o_req POST /v1/tokens "$O_PK" "$(o_card $pan '"deduplicate":true')" "${PKH[@]}")
    expect_eq "publishable key + deduplicate ($pan): 422 deduplicate_not_allowed" \
        "$(o_st "$out") $(o_js "$out" | jq -r '.code + " " + .param')" "422 deduplicate_not_allowed deduplicate"
    o_js "$out" | jq -c 'del(.instance, .request_id)' >"$T_DIR/o15-dd-$pan.json"
done
expect_eq "... the same answer, byte for byte, for a stored and a new card" \
    "$(cat "$T_DIR/o15-dd-4000056655665556.json")" "$(cat "$T_DIR/o15-dd-5200828282828210.json")"
out=$(o_req POST /v1/tokens "$O_PK" "$(o_card 4000056655665556 '"deduplicate":false')" "${PKH[@]}")
expect_eq "publishable key + deduplicate:false: 201" "$(o_st "$out")" 201
PK_KEYS='["brand","created_at","exp_month","exp_year","expires_at","format","id","last4","livemode","object"]'
for pan in 4000056655665556 5200828282828210; do
    out=$(o_req POST /v1/tokens "$O_PK" "$(o_card $pan)" "${PKH[@]}")
    j=$(o_js "$out")
    expect_eq "publishable key, card $pan: 201 and a new token" \
        "$(o_st "$out") $(jq -r '.id != "'"$O_VICTIM"'"' <<<"$j")" "201 true"
    expect_eq "... its answer holds display data only (no fingerprint, bin, metadata, gateways)" \
        "$(jq -c 'keys' <<<"$j")" "$PK_KEYS"
    expect_true "... nothing of the stored token's metadata" bash -c "! grep -q C-victim <<<'$j'"
done
# the card element's own POST (same origin, the shop's in Tokend-Parent-Origin)
EH=(-H "origin: http://127.0.0.1:$H2C_O15" -H "tokend-parent-origin: $O_SHOP")
out=$(o_req POST /v1/tokens "$O_PK" "$(o_card 4000056655665556)" "${EH[@]}")
expect_eq "element POST of a stored card: 201, display data only" \
    "$(o_st "$out") $(o_js "$out" | jq -c keys)" "201 $PK_KEYS"
out=$(o_req POST /v1/tokens "$O_PK" "$(o_card 4000056655665556 '"deduplicate":true')" "${EH[@]}")
expect_eq "element POST with deduplicate: 422 deduplicate_not_allowed" \
    "$(o_st "$out") $(o_js "$out" | jq -r .code)" "422 deduplicate_not_allowed"
out=$(o_req GET "/v1/tokens/$O_VICTIM" "$O_SK")
expect_eq "a secret key still reads the full token" \
    "$(o_st "$out") $(o_js "$out" | jq -r '[.metadata.customer, (.fingerprint|length)]|join(" ")')" "200 C-victim 64"

# --- 1. a secret key's budget of de-duplication hits (--dedup-hits-max 2) ------------------------
n0=$(o_tokens)
for pan in 6011000990139424 3566111111111113 5105105105105100; do
    out=$(o_req POST /v1/tokens "$O_SK" "$(o_card $pan '"deduplicate":true')")
    expect_eq "dedup miss ($pan): 201 (misses are tokenisations, not hits)" "$(o_st "$out")" 201
done
for i in 1 2; do
    out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4000056655665556 '"deduplicate":true')")
    expect_eq "dedup hit $i of 2: 200, the stored token" "$(o_st "$out") $(o_js "$out" | jq -r .id)" "200 $O_VICTIM"
done
n1=$(o_tokens)
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4000056655665556 '"deduplicate":true')")
expect_eq "third hit: 429 dedup_limit_exceeded (problem+json)" \
    "$(o_st "$out") $(o_js "$out" | jq -r '.code + " " + (.status|tostring)')" "429 dedup_limit_exceeded 429"
expect_match "... with Retry-After in seconds (at most the window)" \
    "$(grep -i '^retry-after:' "$T_DIR/o15.hdr" | tr -d '\r' | cut -d' ' -f2)" '^([1-9][0-9]{0,2}|[1-2][0-9]{3}|3[0-5][0-9]{2}|3600)$'
expect_match "... content-type problem+json" "$(grep -i '^content-type:' "$T_DIR/o15.hdr")" 'application/problem\+json'
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4111111111111111 '"deduplicate":true')")
expect_eq "at the limit a never-stored card gets the same 429 (the refusal tells nothing)" \
    "$(o_st "$out") $(o_js "$out" | jq -r .code)" "429 dedup_limit_exceeded"
expect_eq "... and nothing was stored for the refused requests" "$(o_tokens)" "$n1"
expect_eq "(the three misses were stored)" "$((n1 - n0))" 3
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4000056655665556)")
expect_eq "the same key still tokenises without deduplicate" "$(o_st "$out")" 201
out=$(o_req POST /v1/tokens "$O_SK2" "$(o_card 4000056655665556 '"deduplicate":true')")
expect_eq "another key has its own budget" "$(o_st "$out") $(o_js "$out" | jq -r .id)" "200 $O_VICTIM"
sleep 0.5 # the audit inserts are fire-and-forget
expect_eq "each hit audited (token.deduplicated) and each refusal (token.dedup_limited)" \
    "$(O_PSQL "SELECT count(*) FILTER (WHERE action = 'token.deduplicated') || ' ' ||
                      count(*) FILTER (WHERE action = 'token.dedup_limited')
                 FROM audit.events WHERE actor = '$O_SK_ID'")" "2 2"
expect_eq "the trip is logged once, with the key" \
    "$(grep -c "key $O_SK_ID reached its de-duplication limit" "$LOG_O15")" 1
stats=$("${O_CTL[@]}" audit dedup --minutes 60 2>&1)
expect_match "tokenctl audit dedup: the key's hits and refusals" "$stats" "$O_SK_ID	$O_TEN	2	2"
expect_match "tokenctl audit dedup: a header" "$(head -n 1 <<<"$stats")" '^key	tenant	hits	refused$'
"${O_CTL[@]}" audit dedup --minutes 0 >/dev/null 2>&1
expect_eq "tokenctl audit dedup --minutes 0: usage error (exit 2)" "$?" 2

# --- 2. every route with a publishable key ------------------------------------------------------
out=$(o_req POST /v1/charges "$O_SK" "{\"token\":\"$O_VICTIM\",\"amount\":500,\"currency\":\"usd\"}")
O_CH=$(o_js "$out" | jq -r .id)
expect_match "(a charge to aim at)" "$O_CH" '^ch_'
ROUTE_TABLE="$T_DIR/o15-routes.txt"
# METHOD PATH STATUS CODE (CODE - : not problem+json, a success). /healthz, /readyz, the
# OpenAPI document and the element's assets are public; the inbound webhook route takes no API key at all (the
# gateway's signature is its authentication), so a key changes nothing there.
cat >"$ROUTE_TABLE" <<TABLE
GET /healthz 200 -
GET /readyz 200 -
GET /v1/openapi.json 200 -
POST /v1/tokens 201 -
OPTIONS /v1/tokens 204 -
GET /v1/tokens/$O_VICTIM 403 forbidden
DELETE /v1/tokens/$O_VICTIM 403 forbidden
POST /v1/charges 403 forbidden
GET /v1/charges/$O_CH 403 forbidden
POST /v1/charges/$O_CH/capture 403 forbidden
POST /v1/charges/$O_CH/void 403 forbidden
POST /v1/charges/$O_CH/complete 403 forbidden
POST /v1/refunds 403 forbidden
GET /v1/refunds/re_0000000000000000000000 403 forbidden
GET /v1/charges 403 forbidden
GET /v1/refunds 403 forbidden
GET /v1/exports/charges 403 forbidden
GET /v1/exports/refunds 403 forbidden
GET /v1/events 403 forbidden
GET /v1/exports/events 403 forbidden
POST /v1/reconciliations 403 forbidden
GET /v1/reconciliations/rr_0000000000000000000000 403 forbidden
GET /v1/reconciliations/rr_0000000000000000000000/exceptions 403 forbidden
POST /v1/webhooks/stripe/we_0000000000000000000000 400 endpoint_not_found
POST /v1/webhook-endpoints 403 forbidden
GET /v1/webhook-endpoints 403 forbidden
DELETE /v1/webhook-endpoints/we_0000000000000000000000 403 forbidden
GET /v1/events/ev_0000000000000000000000/deliveries 403 forbidden
GET /v1/elements/card?key=$O_PK&origin=https%3A%2F%2Fshop.example 200 -
GET /v1/elements/card.js 200 -
GET /v1/elements/card.css 200 -
GET /v1/elements/iin.json 200 -
TABLE
# the table covers every route of service/routes.c (a new route needs its line here)
routes=$(sed -n 's/^ *{"\([A-Z]*\)", "\([^"]*\)", tok_.*/\1 \2/p' service/routes.c)
missing=""
while read -r m p; do
    re="^$m $(sed -e 's/{[a-z_]*}/[^ \/?]*/g' <<<"$p")(\?[^ ]*)? "
    grep -qE "$re" "$ROUTE_TABLE" || missing="$missing $m:$p"
done <<<"$routes"
expect_eq "every route of routes.c ($(wc -l <<<"$routes")) is in the publishable-key table" "${missing:-none}" none
while read -r m p want code; do
    body=""
    [ "$m" = POST ] && body='{}'
    [ "$p" = /v1/tokens ] && [ "$m" = POST ] && body=$(o_card 4242424242424242)
    out=$(o_req "$m" "$p" "$O_PK" "$body" "${PKH[@]}")
    got_code=-
    if grep -qi '^content-type: application/problem+json' "$T_DIR/o15.hdr"; then
        got_code=$(o_js "$out" | jq -r .code)
    fi
    expect_eq "publishable key: $m ${p%%\?*}" "$(o_st "$out") $got_code" "$want $code"
done <"$ROUTE_TABLE"
out=$(o_req GET "/v1/tokens/$O_VICTIM" "$O_SK")
expect_eq "after all that the victim's token is not redacted" \
    "$(o_st "$out") $(o_js "$out" | jq -r '.redacted, (.gateways|map(.status)|join(","))' | paste -sd' ')" \
    "200 false active"
out=$(o_req DELETE "/v1/tokens/$O_VICTIM" "$O_PK" "" "${EH[@]}")
expect_eq "publishable key from the element's origin cannot redact either" \
    "$(o_st "$out") $(o_js "$out" | jq -r .code)" "403 forbidden"
out=$(o_req DELETE "/v1/tokens/$O_VICTIM" "$O_SK2")
expect_eq "a secret key with tokens:write still redacts" "$(o_st "$out") $(o_js "$out" | jq -r .redacted)" "200 true"

# --- 6. text PostgreSQL cannot store is refused before the gateway ------------------------------
n0=$(o_tokens)
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4242424242424242 '"metadata":{"k":"a\u0000b"}')")
expect_eq "metadata value with \\u0000: 422 invalid_text" \
    "$(o_st "$out") $(o_js "$out" | jq -r '.code + " " + .param')" "422 invalid_text metadata"
out=$(o_req POST /v1/tokens "$O_PK" "$(o_card 4242424242424242 '"metadata":{"k":"\u0000"}')" "${PKH[@]}")
expect_eq "... from a publishable key too" "$(o_st "$out") $(o_js "$out" | jq -r .code)" "422 invalid_text"
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4242424242424242 '"metadata":{"k":"a\ud800b"}')")
expect_eq "metadata with a lone surrogate: 400 invalid_utf8 (the parser's)" \
    "$(o_st "$out") $(o_js "$out" | jq -r .code)" "400 invalid_utf8"
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4242424242424242 '"metadata":{"k":"\udc00"}')")
expect_eq "metadata with a lone low surrogate: 400 invalid_utf8" \
    "$(o_st "$out") $(o_js "$out" | jq -r .code)" "400 invalid_utf8"
expect_eq "nothing stored for refused text" "$(o_tokens)" "$n0"
expect_eq "no gateway failure recorded for them (the sandbox was never asked)" \
    "$(O_PSQL "SELECT count(*) FROM audit.events WHERE tenant_id = '$O_TEN' AND action = 'token.gateway_failed'")" 0
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4242424242424242 '"metadata":{"k":"a\u0001b \u00e9"}')")
expect_eq "other control characters and UTF-8 are stored as sent" \
    "$(o_st "$out") $(o_js "$out" | jq -c .metadata)" '201 {"k":"a\u0001b é"}'
out=$(o_req POST /v1/tokens "$O_SK" "$(o_card 4242424242424242)")
O_TOK2=$(o_js "$out" | jq -r .id)
for f in description invoice_ref; do
    out=$(o_req POST /v1/charges "$O_SK" "{\"token\":\"$O_TOK2\",\"amount\":100,\"currency\":\"usd\",\"$f\":\"x\\u0000y\"}")
    expect_eq "charge $f with \\u0000: 422 invalid_text" \
        "$(o_st "$out") $(o_js "$out" | jq -r '.code + " " + .param')" "422 invalid_text $f"
done
expect_eq "no charge stored for them" \
    "$(O_PSQL "SELECT count(*) FROM ledger.charges WHERE tenant_id = '$O_TEN' AND token_id = '$O_TOK2'")" 0

# with a real gateway adapter (Stripe's wire format, gwsim): the refused card never reaches it
O_GSK=sk_test_oracle_$$
O_GPORT=$(free_port)
"$BUILD/gwsim" --listen "127.0.0.1:$O_GPORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$O_GSK" --ready-file "$T_DIR/o15-gwsim.ready" 2>>"$T_DIR/o15-gwsim.log" &
T_PIDS+=($!)
for i in $(seq 1 100); do [ -f "$T_DIR/o15-gwsim.ready" ] && break; sleep 0.05; done
O_TEN2=$("${O_CTL[@]}" tenant create "oracle-gw-$$" 2>/dev/null)
O_GKEY=$("${O_CTL[@]}" key create --tenant "$O_TEN2" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
(umask 077 && printf '{"api_key":"%s"}' "$O_GSK" >"$T_DIR/o15-stripe.json")
"${O_CTL[@]}" gateway add --tenant "$O_TEN2" --kind stripe --credentials-file "$T_DIR/o15-stripe.json" \
    --base-url "https://localhost:$O_GPORT" >/dev/null 2>>"$T_DIR/o15-ctl.err"
tokend_stop O15
if tokend_start O15G --gateway-ca-file "$T_DIR/tls.crt"; then
    O_H2C="http://127.0.0.1:$H2C_O15G"
    gwreq() { curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$O_GPORT/__gwsim/stats" | jq -r '.requests["stripe.payment_methods.create"]'; }
    out=$(o_req POST /v1/tokens "$O_GKEY" "$(o_card 4242424242424242)")
    expect_eq "through gwsim: a good card is tokenised (201) with one payment method" "$(o_st "$out") $(gwreq)" "201 1"
    O_GTOK=$(o_js "$out" | jq -r .id)
    out=$(o_req POST /v1/tokens "$O_GKEY" "$(o_card 4242424242424242 '"metadata":{"k":"a\u0000b"}')")
    expect_eq "through gwsim: \\u0000 in metadata is 422 invalid_text and gwsim saw no new request" \
        "$(o_st "$out") $(o_js "$out" | jq -r .code) $(gwreq)" "422 invalid_text 1"
    gwall() { curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$O_GPORT/__gwsim/stats" | jq -r '.requests_total - .requests.control'; }
    before=$(gwall)
    out=$(o_req POST /v1/charges "$O_GKEY" "{\"token\":\"$O_GTOK\",\"amount\":100,\"currency\":\"usd\",\"description\":\"a\\u0000\"}")
    expect_eq "through gwsim: a charge with \\u0000 is 422 invalid_text and gwsim saw no request" \
        "$(o_st "$out") $(o_js "$out" | jq -r .code) $(($(gwall) - before))" "422 invalid_text 0"
else
    fail "tokend (with gwsim) starts"
fi
