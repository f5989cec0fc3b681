# t_50_adyen_3ds2.sh - Adyen 3-D Secure 2 through tokend and gwsim (issue #16):
# - the adapter asks for the redirect flow explicitly (authenticationData.threeDSRequestData.
#   nativeThreeDS "disabled") on every payment with the shopper present, and gwsim plays both
#   flows (IdentifyShopper + a threeDS2 action when asked for native, RedirectShopper
#   otherwise), so the redirect tokend gets proves what its request chose;
# - POST /v1/charges takes the customer's browser (validated field by field: 422 + stable code),
#   which the Adyen adapter sends as browserInfo with channel Web, origin (from return_url) and
#   shopperIP; gwsim refuses a 3DS2 card charged on session without browserInfo, as Adyen
#   does (refusal 38, Authentication required); Stripe ignores it;
# - a native 3DS2 answer although redirect was asked for (gwsim --adyen-native-3ds always)
#   fails the charge with failure_code native_3ds_unsupported, not a decline;
# - every Adyen request and answer of this file validates against Checkout v71 (adyen.mjs).

E_SK=sk_test_3ds2_$$
E_AK=adyen_3ds2_key_$$
E_MERCHANT=Tokend3DS2ECOM
E_Y=$(($(date -u +%Y) + 1))
E_RET=https://shop.example/checkout/return?order=50
E_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
E_UA='Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
E_BROWSER="{\"user_agent\":\"$E_UA\",\"accept_header\":\"text/html,application/xhtml+xml,*/*;q=0.8\",\"language\":\"nl-NL\",\"color_depth\":24,\"screen_height\":1080,\"screen_width\":1920,\"time_zone_offset\":-60,\"java_enabled\":false,\"ip_address\":\"203.0.113.7\"}"

if [ ! -f tests/contracts/node_modules/ajv/package.json ]; then
    fail "the contract test packages are installed (run: make lint-deps)"
    return
fi
E_REC=$(mktemp -d /tmp/tokend-3ds2.XXXXXX)
chmod 0700 "$E_REC"
e_gwsim() { # VAR NAME [extra gwsim args]: starts one, its port into VAR
    local port
    port=$(free_port)
    printf -v "$1" '%s' "$port"
    shift
    rm -f "$T_DIR/e50-$1.ready"
    "$BUILD/gwsim" --listen "127.0.0.1:$port" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
        --stripe-key "$E_SK" --adyen-key "$E_AK" --adyen-merchant "$E_MERCHANT" \
        --ready-file "$T_DIR/e50-$1.ready" "${@:2}" 2>>"$T_DIR/e50-gwsim-$1.log" &
    T_PIDS+=("$!")
    for _ in $(seq 1 100); do [ -f "$T_DIR/e50-$1.ready" ] && break; sleep 0.05; done
}
e_gwsim E_PORT main --record "$E_REC"
e_gwsim E_NPORT native --adyen-native-3ds always
[ -f "$T_DIR/e50-main.ready" ] && [ -f "$T_DIR/e50-native.ready" ] || { fail "gwsim starts (twice)"; rm -rf "$E_REC"; return; }
E_URL="https://localhost:$E_PORT"
E_NURL="https://localhost:$E_NPORT"
egs() { curl -s --cacert "$T_DIR/tls.crt" "$1/__gwsim/stats" | jq -r "$2"; }

(umask 077 && printf '{"api_key":"%s"}' "$E_SK" >"$T_DIR/e50-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s"}' "$E_AK" "$E_MERCHANT" >"$T_DIR/e50-adyen.json")
e_tenant() { # NAME KIND BASE_URL -> key
    local ten key
    ten=$("${E_CTL[@]}" tenant create "3ds2-$1-$$" 2>/dev/null)
    key=$("${E_CTL[@]}" key create --tenant "$ten" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
    "${E_CTL[@]}" gateway add --tenant "$ten" --kind "$2" --credentials-file "$T_DIR/e50-$2.json" \
        --base-url "$3" --priority 1 >/dev/null 2>>"$T_DIR/e50-ctl.err"
    echo "$key"
}
E_KA=$(e_tenant adyen adyen "$E_URL")
E_KN=$(e_tenant native adyen "$E_NURL")
E_KS=$(e_tenant stripe stripe "$E_URL")
expect_match "fixtures: Adyen, Adyen forcing native 3DS2, Stripe" "$E_KA $E_KN $E_KS" '^sk_test_\S+ sk_test_\S+ sk_test_\S+$'

tokend_start E50 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 5000 || { fail "tokend starts"; rm -rf "$E_REC"; return; }
E_H2C="http://127.0.0.1:$H2C_E50"
eapi() { # KEY METHOD PATH [BODY] -> "<json>\n<status>"
    local a=(-s --http2-prior-knowledge -X "$2" -H "authorization: Bearer $1" -w '\n%{http_code}')
    [ -n "${4:-}" ] && a+=(-H 'content-type: application/json' --data-binary "$4")
    curl "${a[@]}" "$E_H2C$3"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
etok() { # KEY PAN -> token id
    js "$(eapi "$1" POST /v1/tokens "{\"card\":{\"number\":\"$2\",\"exp_month\":3,\"exp_year\":$E_Y,\"cvc\":\"737\"}}")" .id
}
echarge() { # KEY TOKEN [extra members]
    eapi "$1" POST /v1/charges "{\"token\":\"$2\",\"amount\":2500,\"currency\":\"eur\"${3:+,$3}}"
}
summary() { js "$1" '[.status, (.failure_code // "-"), (.decline_code // "-")]|join(" ")'; }
# the last /v71/payments request gwsim recorded, as JSON
last_payment() { jq -s -c '[.[] | select(.path == "/v71/payments")] | sort_by(.seq) | last | .request_body | fromjson' "$E_REC"/*-adyen.json; }

# --- the redirect flow, asked for; the browser sent as browserInfo ------------------------------------
TOK=$(etok "$E_KA" 5454545454545454)
expect_match "adyen: the 3DS2 card 5454 tokenises" "$TOK" '^tok_'
expect_eq "the zero-value authorisation asked for the redirect flow (nativeThreeDS disabled)" \
    "$(last_payment | jq -r '.authenticationData.threeDSRequestData.nativeThreeDS')" disabled
out=$(echarge "$E_KA" "$TOK" "\"off_session\":false,\"return_url\":\"$E_RET\",\"browser\":$E_BROWSER")
CH=$(js "$out" .id)
expect_eq "on session with return_url and browser: 202 requires_action" "$(st "$out") $(js "$out" .status)" "202 requires_action"
expect_match "next_action: a redirect to gwsim's issuer page" "$(js "$out" '.next_action.type + " " + .next_action.url')" \
    "^redirect_to_url https://localhost:$E_PORT/__gwsim/acs/[A-Z0-9]{16}\$"
REQ=$(last_payment)
expect_eq "the charge asked for redirect 3DS2, explicitly" "$(jq -r '.authenticationData.threeDSRequestData.nativeThreeDS' <<<"$REQ")" disabled
expect_eq "browserInfo: the browser object in Adyen's names" \
    "$(jq -c '.browserInfo' <<<"$REQ")" \
    "{\"acceptHeader\":\"text/html,application/xhtml+xml,*/*;q=0.8\",\"colorDepth\":24,\"javaEnabled\":false,\"language\":\"nl-NL\",\"screenHeight\":1080,\"screenWidth\":1920,\"timeZoneOffset\":-60,\"userAgent\":\"$E_UA\"}"
expect_eq "channel Web, origin from return_url, shopperIP from browser.ip_address" \
    "$(jq -r '[.channel, .origin, .shopperIP, .shopperInteraction]|join(" ")' <<<"$REQ")" \
    "Web https://shop.example 203.0.113.7 Ecommerce"
expect_eq "gwsim: redirect asked twice, native never, no native action" \
    "$(egs "$E_URL" '.adyen_3ds2 | [.redirect_asked, .native_asked, .native_actions]|join(" ")')" "2 0 0"
URL=$(js "$out" .next_action.url)
curl -s --cacert "$T_DIR/tls.crt" "$URL" >/dev/null
back=$(curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -w '%{redirect_url}' "$URL/complete")
RR=$(sed -n 's/.*[?&]redirectResult=\([^&]*\).*/\1/p' <<<"$back")
out=$(eapi "$E_KA" POST "/v1/charges/$CH/complete" "{\"redirect_result\":\"$RR\"}")
expect_eq "the shopper authenticates and returns: complete -> 200 succeeded" "$(st "$out") $(js "$out" .status)" "200 succeeded"
# merchant-initiated: no authentication to choose, no browser
out=$(echarge "$E_KA" "$TOK" "\"off_session\":true")
expect_eq "off session (ContAuth): 201 succeeded" "$(st "$out") $(js "$out" .status)" "201 succeeded"
expect_eq "... sent without authenticationData, browserInfo or channel" \
    "$(last_payment | jq -c '[.shopperInteraction, .authenticationData, .browserInfo, .channel]')" '["ContAuth",null,null,null]'
# no ip_address: no shopperIP; the rest as before
out=$(echarge "$E_KA" "$TOK" "\"off_session\":false,\"return_url\":\"$E_RET\",\"browser\":$(jq -c 'del(.ip_address)' <<<"$E_BROWSER")")
expect_eq "browser without ip_address: 202, sent without shopperIP" \
    "$(st "$out") $(last_payment | jq -c '[.shopperIP, .channel, (.browserInfo|length)]')" '202 [null,"Web",8]'

# --- Adyen refuses a 3DS2 payment on session without browserInfo -----------------------------------------
out=$(echarge "$E_KA" "$TOK" "\"off_session\":false,\"return_url\":\"$E_RET\"")
expect_eq "on session without browser: 201 declined authentication_required (Adyen refusal 38)" \
    "$(st "$out") $(summary "$out")" "201 declined authentication_required authentication_required"
expect_eq "... gwsim refused it for want of browserInfo" "$(egs "$E_URL" .adyen_3ds2.browser_info_refusals)" 1
expect_eq "... with refusalReasonCode 38 Authentication required" \
    "$(jq -s -r '[.[] | select(.path == "/v71/payments")] | sort_by(.seq) | last | .response_body | fromjson | .refusalReasonCode + " " + .refusalReason' "$E_REC"/*-adyen.json)" \
    "38 Authentication required"
TOK42=$(etok "$E_KA" 4242424242424242)
out=$(echarge "$E_KA" "$TOK42" "\"off_session\":false,\"return_url\":\"$E_RET\"")
expect_eq "a card without 3DS2 needs no browser: 201 succeeded" "$(st "$out") $(js "$out" .status)" "201 succeeded"

# --- gwsim plays native 3DS2 when asked (requests made here, not by tokend) ----------------------------
SPM=$(curl -s --cacert "$T_DIR/tls.crt" -H "x-api-key: $E_AK" -H 'content-type: application/json' "$E_URL/v71/payments" \
    -d "{\"merchantAccount\":\"$E_MERCHANT\",\"reference\":\"n0\",\"amount\":{\"value\":0,\"currency\":\"EUR\"},\"storePaymentMethod\":true,\"shopperReference\":\"shopper_n\",\"shopperInteraction\":\"Ecommerce\",\"recurringProcessingModel\":\"UnscheduledCardOnFile\",\"returnUrl\":\"$E_RET\",\"paymentMethod\":{\"type\":\"scheme\",\"number\":\"4212345678901237\",\"expiryMonth\":\"03\",\"expiryYear\":\"$E_Y\",\"cvc\":\"737\"}}" |
    jq -r '.additionalData["tokenization.storedPaymentMethodId"]')
apay() { # nativeThreeDS|- [browserInfo JSON|-] -> the answer
    local ad="" bi=',"browserInfo":{"userAgent":"curl","acceptHeader":"*/*","language":"en","colorDepth":24,"screenHeight":800,"screenWidth":600,"timeZoneOffset":0,"javaEnabled":false}'
    [ "$1" != - ] && ad=",\"authenticationData\":{\"threeDSRequestData\":{\"nativeThreeDS\":\"$1\"}}"
    [ "${2:-}" = - ] && bi=""
    [ -n "${2:-}" ] && [ "$2" != - ] && bi=",\"browserInfo\":$2"
    curl -s --cacert "$T_DIR/tls.crt" -H "x-api-key: $E_AK" -H 'content-type: application/json' "${APAY_URL:-$E_URL}/v71/payments" \
        -d "{\"merchantAccount\":\"$E_MERCHANT\",\"reference\":\"n1\",\"amount\":{\"value\":100,\"currency\":\"EUR\"},\"shopperReference\":\"shopper_n\",\"shopperInteraction\":\"Ecommerce\",\"recurringProcessingModel\":\"CardOnFile\",\"returnUrl\":\"$E_RET\",\"channel\":\"Web\",\"origin\":\"https://shop.example\"$ad$bi,\"paymentMethod\":{\"type\":\"scheme\",\"storedPaymentMethodId\":\"$SPM\"}}"
}
out=$(apay preferred)
expect_eq "gwsim, nativeThreeDS preferred: IdentifyShopper, action threeDS2 fingerprint with a token, no url" \
    "$(jq -r '[.resultCode, .action.type, .action.subtype, (.action.token|length > 0), (.action.url // "-")]|join(" ")' <<<"$out")" \
    "IdentifyShopper threeDS2 fingerprint true -"
expect_eq "... the token is base64 of the 3DS method data" \
    "$(jq -r .action.token <<<"$out" | base64 -d | jq -r .threeDSMessageVersion)" "2.2.0"
PSPN=$(jq -r .pspReference <<<"$out")
code=$(curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -w '%{http_code}' "$E_URL/__gwsim/acs/$PSPN")
expect_eq "... no issuer page for it (the challenge would run in the shopper's browser)" "$code" 404
code=$(curl -s --cacert "$T_DIR/tls.crt" -o /dev/null -w '%{http_code}' -H "x-api-key: $E_AK" -H 'content-type: application/json' \
    "$E_URL/v71/payments/$PSPN/captures" -d "{\"merchantAccount\":\"$E_MERCHANT\",\"amount\":{\"value\":100,\"currency\":\"EUR\"}}")
expect_eq "... and nothing to capture while it waits" "$code" 422
expect_eq "gwsim, nativeThreeDS disabled: RedirectShopper with a url" \
    "$(apay disabled | jq -r '[.resultCode, .action.type, (.action.url|startswith("https://"))]|join(" ")')" "RedirectShopper redirect true"
expect_eq "gwsim, nativeThreeDS not given: RedirectShopper (the redirect default)" "$(apay - | jq -r .resultCode)" RedirectShopper
# requests Adyen's schema refuses go to the gwsim that does not record (adyen.mjs checks the rest)
expect_eq "gwsim, nativeThreeDS of another value: 422" "$(APAY_URL=$E_NURL apay sometimes | jq -r '.status')" 422
expect_eq "gwsim, no browserInfo: Refused, Authentication required" "$(apay disabled - | jq -r '.resultCode + " " + .refusalReason')" \
    "Refused Authentication required"
out=$(APAY_URL=$E_NURL apay disabled '{"userAgent":"curl","acceptHeader":"*/*","language":"en","colorDepth":24,"screenHeight":800,"screenWidth":600,"timeZoneOffset":0}')
expect_eq "gwsim, browserInfo without javaEnabled: 422 naming it" "$(jq -r '(.status|tostring) + " " + .message' <<<"$out")" \
    "422 Required field 'browserInfo.javaEnabled' is not provided."
expect_eq "gwsim counted the flows asked for" "$(egs "$E_URL" '.adyen_3ds2 | [.native_asked, .native_actions]|join(" ")')" "1 1"

# --- an account that answers native anyway: a clear failure, not a decline ------------------------------
TOKN=$(etok "$E_KN" 5454545454545454)
out=$(echarge "$E_KN" "$TOKN" "\"off_session\":false,\"return_url\":\"$E_RET\",\"browser\":$E_BROWSER")
expect_eq "native 3DS2 although redirect was asked for: 201 failed native_3ds_unsupported" \
    "$(st "$out") $(summary "$out")" "201 failed native_3ds_unsupported -"
expect_eq "... no next_action, the attempt recorded as an error" \
    "$(js "$out" '(.next_action|tostring) + " " + .attempts[0].outcome + " " + .attempts[0].code')" "null error native_3ds_unsupported"
expect_eq "... gwsim answered IdentifyShopper once" "$(egs "$E_NURL" .adyen_3ds2.native_actions)" 1
out=$(echarge "$E_KN" "$TOKN" "\"off_session\":false,\"browser\":$E_BROWSER")
expect_eq "... without return_url (nowhere to send the shopper): declined authentication_required" \
    "$(st "$out") $(summary "$out")" "201 declined authentication_required authentication_required"

# --- the browser object, validated ------------------------------------------------------------------------
bad() { # LABEL BROWSER_JSON WANT("<status> <code> <param>")
    local o
    o=$(echarge "$E_KA" "$TOK" "\"off_session\":false,\"return_url\":\"$E_RET\",\"browser\":$2")
    expect_eq "browser refused: $1" "$(st "$o") $(js "$o" '.code + " " + (.param // "-")')" "$3"
}
B() { jq -c "$1" <<<"$E_BROWSER"; }
bad "not an object" '"Firefox"' "422 invalid_type browser"
bad "an unknown field" "$(B '.plugins = []')" "422 unknown_field browser"
bad "user_agent missing" "$(B 'del(.user_agent)')" "422 missing_field browser.user_agent"
bad "java_enabled missing" "$(B 'del(.java_enabled)')" "422 missing_field browser.java_enabled"
bad "user_agent not a string" "$(B '.user_agent = 5')" "422 invalid_type browser.user_agent"
bad "user_agent empty" "$(B '.user_agent = ""')" "422 invalid_browser browser.user_agent"
bad "user_agent beyond ASCII (UTF-8 é)" "$(B '.user_agent = "Navigateur é"')" "422 invalid_browser browser.user_agent"
bad "user_agent with a control character" "$(B '.user_agent = "a\u0007b"')" "422 invalid_browser browser.user_agent"
bad "user_agent of 513 bytes" "$(B ".user_agent = \"$(head -c 513 /dev/zero | tr '\0' a)\"")" "422 too_long browser.user_agent"
bad "accept_header of 257 bytes" "$(B ".accept_header = \"$(head -c 257 /dev/zero | tr '\0' a)\"")" "422 too_long browser.accept_header"
bad "a card number in user_agent" "$(B '.user_agent = "Mozilla 4242424242424242"')" "422 text_contains_pan browser.user_agent"
bad "language not a BCP 47 tag" "$(B '.language = "en_GB"')" "422 invalid_browser browser.language"
bad "language of 36 characters" "$(B ".language = \"$(head -c 36 /dev/zero | tr '\0' a)\"")" "422 too_long browser.language"
bad "color_depth 23" "$(B '.color_depth = 23')" "422 invalid_browser browser.color_depth"
bad "color_depth as a string" "$(B '.color_depth = "24"')" "422 invalid_type browser.color_depth"
bad "color_depth not whole" "$(B '.color_depth = 24.5')" "422 invalid_type browser.color_depth"
bad "screen_height 0" "$(B '.screen_height = 0')" "422 invalid_browser browser.screen_height"
bad "screen_width 1000000" "$(B '.screen_width = 1000000')" "422 invalid_browser browser.screen_width"
bad "time_zone_offset 721" "$(B '.time_zone_offset = 721')" "422 invalid_browser browser.time_zone_offset"
bad "time_zone_offset -841" "$(B '.time_zone_offset = -841')" "422 invalid_browser browser.time_zone_offset"
bad "java_enabled as a string" "$(B '.java_enabled = "no"')" "422 invalid_type browser.java_enabled"
bad "ip_address not an address" "$(B '.ip_address = "300.1.1.1"')" "422 invalid_browser browser.ip_address"
bad "ip_address with a port" "$(B '.ip_address = "203.0.113.7:443"')" "422 invalid_browser browser.ip_address"
o=$(echarge "$E_KA" "$TOK" "\"off_session\":true,\"browser\":$E_BROWSER")
expect_eq "browser refused: with off_session true" "$(st "$o") $(js "$o" '.code + " " + .param')" "422 browser_requires_customer browser"
o=$(echarge "$E_KA" "$TOK" "\"browser\":$E_BROWSER")
expect_eq "browser refused: off_session left to its default (true)" "$(st "$o") $(js "$o" .code)" "422 browser_requires_customer"
LONGRET="https://shop.example/$(head -c 400 /dev/zero | tr '\0' r)"
o=$(echarge "$E_KA" "$TOK" "\"off_session\":false,\"return_url\":\"$LONGRET\",\"browser\":$(B ".user_agent = \"$(head -c 400 /dev/zero | tr '\0' u)\"")")
expect_eq "browser refused: return_url and browser texts beyond the gateway request's room" \
    "$(st "$o") $(js "$o" '.code + " " + .param')" "422 too_long browser"
o=$(printf '{"token":"%s","amount":100,"currency":"eur","off_session":false,"browser":{"user_agent":"\xff\xfe"}}' "$TOK" |
    curl -s --http2-prior-knowledge -H "authorization: Bearer $E_KA" -H 'content-type: application/json' \
        --data-binary @- -w '\n%{http_code}' "$E_H2C/v1/charges")
expect_eq "browser refused: a user_agent that is not UTF-8 (the body is refused)" "$(st "$o")" 400
expect_eq "ip_address IPv6 accepted" "$(st "$(echarge "$E_KA" "$TOK42" "\"off_session\":false,\"browser\":$(B '.ip_address = "2001:db8::1"')")")" 201
expect_eq "browser: null is no browser" "$(st "$(echarge "$E_KA" "$TOK42" "\"off_session\":false,\"browser\":null")")" 201

# --- Stripe ignores the browser -----------------------------------------------------------------------------
TOKS=$(etok "$E_KS" 4242424242424242)
out=$(echarge "$E_KS" "$TOKS" "\"off_session\":false,\"return_url\":\"$E_RET\",\"browser\":$E_BROWSER")
expect_eq "stripe with a browser: 201 succeeded" "$(st "$out") $(js "$out" .status)" "201 succeeded"
SBODY=$(jq -s -r '[.[] | select(.path == "/v1/payment_intents")] | sort_by(.seq) | last | .request_body' "$E_REC"/*-stripe.json)
expect_eq "... the PaymentIntent carries nothing of it (no user agent, no browser field)" \
    "$(grep -ciE 'browser|Mozilla|user_agent|203\.0\.113' <<<"$SBODY")" 0
expect_match "... (the PaymentIntent request was recorded)" "$SBODY" 'amount=2500'

tokend_stop E50

# --- every Adyen exchange of this file against Checkout v71 -------------------------------------------------
out=$(cd tests/contracts && node adyen.mjs adyen/CheckoutService-v71.json "$E_REC" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /' >&2
expect_eq "adyen: every request (browserInfo, authenticationData) and answer (IdentifyShopper too) validates against Checkout v71" "$rc" 0
expect_true "tokend log: no test PAN, no gateway key" \
    bash -c "! grep -hE '5454545454545454|4242424242424242|$E_SK|$E_AK' '$LOG_E50'"
rm -rf "$E_REC"
