# t_20_e2e.sh - the card element (GET /v1/elements/*), the CORS preflight of POST /v1/tokens,
# then the browser test: the demo invoicing app (tests/e2e/demo) embeds the element in
# headless Debian chromium, gets a token and charges it (tests/e2e/checkout.spec.mjs).
# Without /usr/bin/chromium the browser part says SKIPPED loudly and counts nothing as passed.

E2E_DIR="$ROOT/tests/e2e"
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
DEMO_PORT=$(free_port)
EVIL_PORT=$(free_port)
while [ "$EVIL_PORT" = "$DEMO_PORT" ]; do EVIL_PORT=$(free_port); done
SHOP="http://127.0.0.1:$DEMO_PORT"
EVIL="http://127.0.0.1:$EVIL_PORT"
TEN=$("${CTL[@]}" tenant create "invoicing-$$" 2>/dev/null)
PK=$("${CTL[@]}" key create --tenant "$TEN" --publishable --origin "$SHOP" --origin https://shop.example --test 2>/dev/null)
SK=$("${CTL[@]}" key create --tenant "$TEN" --scopes charges:write,tokens:read,tokens:write --test 2>/dev/null)
expect_match "e2e fixtures: tenant, publishable and secret key" "$TEN $PK $SK" '^ten_.* pk_test_.* sk_test_'

tokend_start E || { fail "tokend starts"; return; }
DEMO_PID=
# this file runs in a subshell: run.sh's cleanup never sees its PIDs, so it stops them itself
e2e_stop() {
    [ -n "$DEMO_PID" ] && { kill -TERM "$DEMO_PID" 2>/dev/null; wait "$DEMO_PID" 2>/dev/null; }
    tokend_stop E
}
TOKEND="http://127.0.0.1:$H2C_E"
urlenc() { jq -rn --arg v "$1" '$v|@uri'; }
CARD_URL="$TOKEND/v1/elements/card?key=$PK&origin=$(urlenc "$SHOP")"

# --- the element page over HTTP/1.1 (what a browser uses on a plain loopback port) ---------------
hdr=$(curl -s --http1.1 -D - -o "$T_DIR/card.html" -w '%{http_code}' "$CARD_URL")
expect_match "element page: 200 over HTTP/1.1" "$(tail -n 1 <<<"$hdr")" '200$'
csp=$(grep -i '^content-security-policy:' <<<"$hdr" | tr -d '\r')
expect_match "CSP: frame-ancestors is the shop's origin only" "$csp" "frame-ancestors $SHOP\$"
for d in "default-src 'none'" "script-src 'self'" "style-src 'self'" "connect-src 'self'" \
    "form-action 'none'" "base-uri 'none'"; do
    expect_match "CSP has $d" "$csp" "$d"
done
expect_eq "exactly one CSP header" "$(grep -ci '^content-security-policy:' <<<"$hdr")" "1"
expect_match "nosniff" "$(grep -i '^x-content-type-options:' <<<"$hdr" | tr -d '\r')" 'nosniff$'
expect_match "no-referrer" "$(grep -i '^referrer-policy:' <<<"$hdr" | tr -d '\r')" 'no-referrer$'
expect_match "the page is not cached" "$(grep -i '^cache-control:' <<<"$hdr" | tr -d '\r')" 'no-store'
for a in 'autocomplete="cc-number"' 'autocomplete="cc-exp"' 'autocomplete="cc-csc"' 'autocomplete="cc-name"' \
    'inputmode="numeric"' '<label for="number">' 'aria-live="polite"' "data-origin=\"$SHOP\""; do
    expect_true "page has $a" grep -qF "$a" "$T_DIR/card.html"
done
expect_true "page has no inline script or style" bash -c "! grep -Eq '<script>|<style|style=|onclick|javascript:' '$T_DIR/card.html'"
expect_true "no third-party URL in the page" bash -c "! grep -Eo '(src|href)=\"[^\"]*\"' '$T_DIR/card.html' | grep -q '//'"
iin_page=$(sed -n 's/.*<script type="application\/json" id="tokend-iin">\(.*\)/\1/p' "$T_DIR/card.html" | sed 's/<\/script>.*//')
iin_api=$(curl -s --http1.1 "$TOKEND/v1/elements/iin.json")
expect_eq "embedded IIN table = /v1/elements/iin.json" "$(jq -c . <<<"$iin_page")" "$(jq -c . <<<"$iin_api")"
expect_eq "IIN JSON: visa row" "$(jq -c '.ranges[]|select(.brand=="visa")|.lengths' <<<"$iin_api")" '[13,16,19]'

out=$(curl -s --http1.1 -D - -o /dev/null "$TOKEND/v1/elements/card.js")
expect_match "card.js served as JavaScript" "$(grep -i '^content-type:' <<<"$out" | tr -d '\r')" 'text/javascript'
out=$(curl -s --http1.1 -D - -o /dev/null "$TOKEND/v1/elements/card.css")
expect_match "card.css served as CSS" "$(grep -i '^content-type:' <<<"$out" | tr -d '\r')" 'text/css'

code_of() { curl -s --http1.1 "$@" | jq -r .code; }
expect_eq "origin not among the key's: 403" "$(code_of "$TOKEND/v1/elements/card?key=$PK&origin=$(urlenc "$EVIL")")" origin_not_allowed
expect_eq "missing origin: 400" "$(code_of "$TOKEND/v1/elements/card?key=$PK")" missing_param
expect_eq "bad origin: 400" "$(code_of "$TOKEND/v1/elements/card?key=$PK&origin=javascript:alert(1)")" invalid_origin
expect_eq "missing key: 400" "$(code_of "$TOKEND/v1/elements/card?origin=$(urlenc "$SHOP")")" missing_param
expect_eq "secret key in the URL: 401 without a lookup" "$(code_of "$TOKEND/v1/elements/card?key=$SK&origin=$(urlenc "$SHOP")")" unauthenticated
expect_eq "unknown publishable key: 401" "$(code_of "$TOKEND/v1/elements/card?key=${PK%?????}AAAAA&origin=$(urlenc "$SHOP")")" unauthenticated
expect_eq "key given twice: 400" "$(code_of "$TOKEND/v1/elements/card?key=$PK&key=$PK&origin=$(urlenc "$SHOP")")" invalid_param
err_csp=$(curl -s --http1.1 -D - -o /dev/null "$TOKEND/v1/elements/card?key=$PK&origin=$(urlenc "$EVIL")" | grep -i '^content-security-policy:' | tr -d '\r')
expect_match "a refused page may not be framed" "$err_csp" "frame-ancestors 'none'"

# --- CORS -------------------------------------------------------------------------------------------
pre=$(curl -s --http1.1 -X OPTIONS -D - -o /dev/null -w '%{http_code}' -H "origin: https://shop.example" \
    -H 'access-control-request-method: POST' -H 'access-control-request-headers: authorization, content-type' "$TOKEND/v1/tokens")
expect_match "preflight: 204" "$(tail -n 1 <<<"$pre")" '204$'
expect_eq "preflight echoes the origin" "$(grep -i '^access-control-allow-origin:' <<<"$pre" | tr -d '\r' | cut -d' ' -f2)" "https://shop.example"
expect_match "preflight allows POST" "$(grep -i '^access-control-allow-methods:' <<<"$pre" | tr -d '\r')" 'POST'
expect_match "preflight allows authorization, content-type, idempotency-key" \
    "$(grep -i '^access-control-allow-headers:' <<<"$pre" | tr -d '\r')" 'authorization, content-type, idempotency-key'
expect_match "preflight has a max-age" "$(grep -i '^access-control-max-age:' <<<"$pre" | tr -d '\r')" '[0-9]+'
expect_match "preflight varies on Origin" "$(grep -i '^vary:' <<<"$pre" | tr -d '\r')" 'Origin'
expect_eq "preflight never allows credentials" "$(grep -ci '^access-control-allow-credentials:' <<<"$pre")" "0"
pre=$(curl -s --http1.1 -X OPTIONS -D - -o /dev/null -H "origin: null" "$TOKEND/v1/tokens")
expect_eq "preflight from Origin: null gets no CORS grant" "$(grep -ci '^access-control-allow-origin:' <<<"$pre")" "0"
pre=$(curl -s --http1.1 -X OPTIONS -D - -o /dev/null -H "origin: HTTPS://Shop.Example" "$TOKEND/v1/tokens")
expect_eq "preflight: a non-canonical origin is not echoed" "$(grep -ci '^access-control-allow-origin:' <<<"$pre")" "0"

NEXT_YEAR=$(($(date -u +%Y) + 1))
CARD="{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$NEXT_YEAR,\"cvc\":\"123\"}}"
tok() { curl -s --http1.1 -D "$T_DIR/h" -o "$T_DIR/b" -w '%{http_code}' -H 'content-type: application/json' --data-binary "$CARD" "$@" "$TOKEND/v1/tokens"; }
expect_eq "CORS POST from an allowed origin: 201" "$(tok -H "authorization: Bearer $PK" -H "origin: https://shop.example")" 201
expect_eq "... with Access-Control-Allow-Origin" "$(grep -i '^access-control-allow-origin:' "$T_DIR/h" | tr -d '\r' | cut -d' ' -f2)" "https://shop.example"
expect_match "... and Vary: Origin" "$(grep -i '^vary:' "$T_DIR/h" | tr -d '\r')" 'Origin'
expect_eq "... the answer: display data only (no fingerprint: issue #15)" "$(jq -c keys "$T_DIR/b")" \
    '["brand","created_at","exp_month","exp_year","expires_at","format","id","last4","livemode","object"]'
expect_eq "CORS POST from another origin: 403" "$(tok -H "authorization: Bearer $PK" -H "origin: $EVIL")" 403
expect_eq "... no Access-Control-Allow-Origin" "$(grep -ci '^access-control-allow-origin:' "$T_DIR/h")" 0
expect_eq "secret key with an Origin: 403 secret_key_in_browser" "$(tok -H "authorization: Bearer $SK" -H "origin: $SHOP"; echo " $(jq -r .code "$T_DIR/b")")" "403 secret_key_in_browser"
# the element's own POST: Origin is tokend's, the shop's origin in Tokend-Parent-Origin
expect_eq "element POST (self origin + parent origin): 201" \
    "$(tok -H "authorization: Bearer $PK" -H "origin: $TOKEND" -H "tokend-parent-origin: $SHOP")" 201
expect_eq "... and no CORS header (same origin)" "$(grep -ci '^access-control-allow-origin:' "$T_DIR/h")" 0
expect_eq "... the answer holds what the element shows, no fingerprint" "$(jq -r '[.id[0:4], .last4, (has("fingerprint")|tostring)]|join(" ")' "$T_DIR/b")" "tok_ 4242 false"
DEDUP="${CARD%?},\"deduplicate\":true}"
expect_eq "element POST with deduplicate: 422 deduplicate_not_allowed (issue #15)" \
    "$(curl -s --http1.1 -o "$T_DIR/b" -w '%{http_code}' -H 'content-type: application/json' --data-binary "$DEDUP" \
        -H "authorization: Bearer $PK" -H "origin: $TOKEND" -H "tokend-parent-origin: $SHOP" "$TOKEND/v1/tokens") $(jq -r .code "$T_DIR/b")" \
    "422 deduplicate_not_allowed"
expect_eq "element POST without the parent origin: 403" \
    "$(tok -H "authorization: Bearer $PK" -H "origin: $TOKEND"; echo " $(jq -r .code "$T_DIR/b")")" "403 origin_not_allowed"
expect_eq "element POST for a parent origin the key lacks: 403" \
    "$(tok -H "authorization: Bearer $PK" -H "origin: $TOKEND" -H "tokend-parent-origin: $EVIL")" 403
expect_eq "parent-origin header from another site's page is ignored: 403" \
    "$(tok -H "authorization: Bearer $PK" -H "origin: $EVIL" -H "tokend-parent-origin: $SHOP")" 403
expect_eq "secret key from the element's origin: 403" \
    "$(tok -H "authorization: Bearer $SK" -H "origin: $TOKEND" -H "tokend-parent-origin: $SHOP")" 403

# --- the browser -----------------------------------------------------------------------------------
CHROMIUM=${E2E_CHROMIUM:-/usr/bin/chromium} # E2E_CHROMIUM=/nonexistent shows the skip
if [ ! -x "$CHROMIUM" ]; then
    echo "  ######################################################################"
    echo "  ###  SKIPPED: chromium not available ($CHROMIUM missing)"
    echo "  ###  the browser end-to-end test of the card element did NOT run.  ###"
    echo "  ###  Install it with: make e2e-deps (apt-get install -y chromium)"
    echo "  ######################################################################"
    e2e_stop
    return 0
fi
if ! command -v node >/dev/null; then
    fail "e2e: node is installed"
    e2e_stop
    return 0
fi
if [ ! -d "$E2E_DIR/node_modules/playwright-core" ]; then
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund >"$T_DIR/npm-ci.log" 2>&1) ||
        { cat "$T_DIR/npm-ci.log" >&2; fail "e2e: npm ci in tests/e2e"; e2e_stop; return 0; }
fi

DEMO_LOG="$T_DIR/demo-requests.log"
: >"$DEMO_LOG"
DEMO_PORT=$DEMO_PORT EVIL_PORT=$EVIL_PORT TOKEND_URL=$TOKEND TOKEND_PK=$PK TOKEND_SK=$SK DEMO_LOG=$DEMO_LOG \
    node "$E2E_DIR/demo/server.mjs" >>"$T_DIR/demo.out" 2>&1 &
DEMO_PID=$!
T_PIDS+=("$DEMO_PID")
for _ in $(seq 1 100); do curl -s -o /dev/null "$SHOP/" && curl -s -o /dev/null "$EVIL/listener.html" && break; sleep 0.05; done

ARTIFACTS="$ROOT/build/e2e-artifacts"
case "$BUILD" in "$ROOT"/build/*) ARTIFACTS="$BUILD/../e2e-artifacts" ;; esac
mkdir -p "$ARTIFACTS"
E2E_OUT="$T_DIR/e2e.out"
CHROMIUM=$CHROMIUM DEMO_URL=$SHOP EVIL_URL=$EVIL TOKEND_URL=$TOKEND E2E_ARTIFACTS=$ARTIFACTS \
    E2E_PROFILE_DIR="$T_DIR" timeout 180 node "$E2E_DIR/checkout.spec.mjs" >"$E2E_OUT" 2>"$T_DIR/e2e.err"
e2e_rc=$?
done_seen=0
while IFS= read -r line; do
    case "$line" in
    "ok "*) ok "e2e: ${line#ok }" ;;
    "FAIL "*) fail "e2e: ${line#FAIL }" ;;
    "DONE"*) done_seen=1 ;;
    *) printf '        %s\n' "$line" ;;
    esac
done <"$E2E_OUT"
if [ "$done_seen" = 1 ]; then ok "e2e: the browser run completed"; else
    sed 's/^/        /' "$T_DIR/e2e.err" | tail -n 30
    fail "e2e: the browser run completed (exit $e2e_rc)"
fi
expect_true "e2e: demo app request log holds no card number" \
    bash -c "[ -s '$DEMO_LOG' ] && ! grep -Eq '4242 ?4242 ?4242 ?424[0-9]|(^|[^0-9])[0-9]{13,19}([^0-9]|\$)' '$DEMO_LOG'"
expect_true "e2e: tokend's log holds no card number" bash -c "! grep -Eq '4242 ?4242 ?4242 ?4242' '$LOG_E'"
[ -s "$ARTIFACTS/checkout.png" ] && ok "e2e: screenshot saved ($ARTIFACTS/checkout.png)" || fail "e2e: screenshot saved"
e2e_stop
