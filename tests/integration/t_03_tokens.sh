# t_03_tokens.sh - POST/GET/DELETE /v1/tokens over HTTP/2 against real
# PostgreSQL: validation codes, tenants and modes kept apart, scopes, origins,
# dedup, redaction, gateway failure, and no PAN at rest or in logs.

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN_A=$("${CTL[@]}" tenant create "acme-$$" 2>/dev/null)
TEN_B=$("${CTL[@]}" tenant create "globex-$$" 2>/dev/null)
KEY_A=$("${CTL[@]}" key create --tenant "$TEN_A" --scopes tokens:write,tokens:read --test 2>/dev/null)
KEY_A_RO=$("${CTL[@]}" key create --tenant "$TEN_A" --scopes tokens:read --test 2>/dev/null)
KEY_A_LIVE=$("${CTL[@]}" key create --tenant "$TEN_A" --scopes tokens:write,tokens:read --live 2>/dev/null)
KEY_B=$("${CTL[@]}" key create --tenant "$TEN_B" --scopes tokens:write,tokens:read --test 2>/dev/null)
PK_A=$("${CTL[@]}" key create --tenant "$TEN_A" --publishable --origin https://shop.example --test 2>/dev/null)
expect_match "fixtures: tenants and keys created" "$TEN_A $KEY_A $PK_A $KEY_A_LIVE" '^ten_.* sk_test_.* pk_test_.* sk_live_'

tokend_start T || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_T"
NEXT_YEAR=$(($(date -u +%Y) + 1))

# post KEY BODY [curl args...] -> "<json>\n<status>"
post() {
    local key=$1 body=$2
    shift 2
    curl -s --http2-prior-knowledge -H "authorization: Bearer $key" -H 'content-type: application/json' \
        --data-binary "$body" -w '\n%{http_code}' "$@" "$H2C/v1/tokens"
}
card() { # card NUMBER [CVC] -> request body
    printf '{"card":{"number":"%s","exp_month":12,"exp_year":%s,"cvc":"%s"}}' "$1" "$NEXT_YEAR" "${2:-123}"
}
status_of() { tail -n 1 <<<"$1"; }
json_of() { sed '$d' <<<"$1"; }
luhn_ok() {
    local s=$1 sum=0 i d alt=0
    for ((i = ${#s} - 1; i >= 0; i--)); do
        d=${s:i:1}
        if [ $alt = 1 ]; then d=$((d * 2)); [ $d -gt 9 ] && d=$((d - 9)); fi
        sum=$((sum + d))
        alt=$((1 - alt))
    done
    [ $((sum % 10)) = 0 ]
}

# --- a good card -----------------------------------------------------------------
out=$(post "$KEY_A" "$(card 4242424242424242)")
expect_eq "visa test card: 201" "$(status_of "$out")" "201"
j=$(json_of "$out")
TOK1=$(jq -r .id <<<"$j")
expect_match "token id is tok_ + 22 base62" "$TOK1" '^tok_[0-9A-Za-z]{22}$'
expect_eq "brand, last4, bin, expiry" "$(jq -r '[.brand,.last4,.bin,.exp_month,.exp_year,.livemode]|@tsv' <<<"$j")" \
    "$(printf 'visa\t4242\t424242\t12\t%s\tfalse' "$NEXT_YEAR")"
expect_match "fingerprint is 64 hex" "$(jq -r .fingerprint <<<"$j")" '^[0-9a-f]{64}$'
expect_eq "gateway list" "$(jq -c .gateways <<<"$j")" '[{"gateway":"sandbox","status":"active"}]'
expect_true "response never holds the PAN" bash -c "! grep -q 4242424242424242 <<<'$j'"
expect_true "response never holds the CVC field" bash -c "! jq -e '.cvc // .card' <<<'$j' >/dev/null"

out=$(post "$KEY_A" "$(card '4242 4242 4242 4242')")
expect_eq "spaces in the number are accepted" "$(status_of "$out")" "201"
FP1=$(jq -r .fingerprint <<<"$j")
expect_eq "same PAN, same tenant: same fingerprint" "$(json_of "$out" | jq -r .fingerprint)" "$FP1"
out=$(post "$KEY_A" "$(card '4242-4242-4242-4242')")
expect_eq "dashes in the number are accepted" "$(status_of "$out")" "201"
out=$(post "$KEY_B" "$(card 4242424242424242)")
expect_eq "tenant B tokenises too" "$(status_of "$out")" "201"
TOK_B=$(json_of "$out" | jq -r .id)
expect_true "same PAN, other tenant: other fingerprint" test "$(json_of "$out" | jq -r .fingerprint)" != "$FP1"

for pair in 5555555555554444:mastercard 2223003122003222:mastercard 6011111111111117:discover \
    3566002020360505:jcb 36227206271667:diners 6200000000000005:unionpay; do
    out=$(post "$KEY_A" "$(card "${pair%%:*}")")
    expect_eq "brand ${pair#*:} (${pair%%:*} test card)" "$(status_of "$out") $(json_of "$out" | jq -r .brand)" "201 ${pair#*:}"
done
out=$(post "$KEY_A" "$(card 378282246310005 1234)")
expect_eq "amex with a 4-digit CVC" "$(status_of "$out") $(json_of "$out" | jq -r .brand)" "201 amex"

# --- validation: 422 with code and param -------------------------------------------------
check422() { # NAME BODY CODE PARAM
    local out
    out=$(post "$KEY_A" "$2")
    expect_eq "$1" "$(status_of "$out") $(json_of "$out" | jq -r '[.code, .param // "-"]|join(" ")')" "422 $3 $4"
}
Y=$NEXT_YEAR
check422 "missing card" '{}' missing_field card
check422 "card not an object" '{"card":"x"}' invalid_type card
check422 "missing number" "{\"card\":{\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"}}" missing_field 'card[number]'
check422 "number as a JSON number" "{\"card\":{\"number\":4242424242424242,\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"}}" invalid_type 'card[number]'
check422 "Luhn failure" "$(card 4242424242424241)" luhn_check_failed 'card[number]'
check422 "empty number" "$(card '')" invalid_number 'card[number]'
check422 "11 digits" "$(card 42424242424)" invalid_number 'card[number]'
check422 "20 digits" "$(card 42424242424242424242)" invalid_number 'card[number]'
check422 "letters in the number" "$(card 4242abcd42424242)" invalid_number 'card[number]'
big=$(head -c 10240 /dev/zero | tr '\0' '4')
check422 "10 KB number" "$(card "$big")" invalid_number 'card[number]'
check422 "exp_month as a string" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":\"12\",\"exp_year\":$Y,\"cvc\":\"123\"}}" invalid_type 'card[exp_month]'
check422 "exp_month 13" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":13,\"exp_year\":$Y,\"cvc\":\"123\"}}" invalid_expiry_month 'card[exp_month]'
check422 "expired card" '{"card":{"number":"4242424242424242","exp_month":1,"exp_year":2020,"cvc":"123"}}' expired_card 'card[exp_year]'
check422 "expiry 21 years ahead" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$(($(date -u +%Y) + 21)),\"cvc\":\"123\"}}" invalid_expiry_year 'card[exp_year]'
check422 "exp_year 1.5" '{"card":{"number":"4242424242424242","exp_month":1,"exp_year":1.5,"cvc":"123"}}' invalid_type 'card[exp_year]'
check422 "CVC of 2 digits" "$(card 4242424242424242 12)" invalid_cvc 'card[cvc]'
check422 "CVC as a number" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":123}}" invalid_type 'card[cvc]'
check422 "amex with a 3-digit CVC" "$(card 378282246310005 123)" invalid_cvc 'card[cvc]'
check422 "visa with a 4-digit CVC" "$(card 4242424242424242 1234)" invalid_cvc 'card[cvc]'
check422 "missing CVC (tenant requires it)" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y}}" missing_field 'card[cvc]'
long=$(head -c 101 /dev/zero | tr '\0' 'n')
check422 "name of 101 bytes" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\",\"name\":\"$long\"}}" invalid_name 'card[name]'
check422 "name with a control character" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\",\"name\":\"a\\u0007b\"}}" invalid_name 'card[name]'
check422 "unknown top-level field" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"foo\":1}" unknown_field '-'
check422 "unknown card field" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\",\"pin\":\"1\"}}" unknown_field card
meta21=$(for i in $(seq 1 21); do printf '"k%d":"v",' "$i"; done | sed 's/,$//')
check422 "21 metadata keys" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"metadata\":{$meta21}}" metadata_too_many_keys metadata
v501=$(head -c 501 /dev/zero | tr '\0' 'v')
check422 "metadata value of 501 bytes" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"metadata\":{\"k\":\"$v501\"}}" metadata_value_too_long metadata
check422 "metadata value not a string" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"metadata\":{\"k\":1}}" invalid_type metadata
check422 "a card number in metadata" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"metadata\":{\"note\":\"card 5555 5555 5555 4444\"}}" metadata_contains_pan metadata
check422 "unknown format" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"format\":\"x\"}" invalid_format format
check422 "expires_at not RFC 3339" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"expires_at\":\"tomorrow\"}" invalid_expires_at expires_at
check422 "expires_at in the past" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"expires_at\":\"2001-01-01T00:00:00Z\"}" invalid_expires_at expires_at
check422 "deduplicate as a string" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"deduplicate\":\"yes\"}" invalid_type deduplicate
check422 "body is an array" '[]' invalid_type body

# --- malformed bodies: 400 with a code, never a crash ------------------------------------------
check400() { # NAME BODY CODE
    local out
    out=$(post "$KEY_A" "$2")
    expect_eq "$1" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "400 $3"
}
check400 "malformed JSON" '{"card":' malformed_json
check400 "trailing garbage" '{}x' malformed_json
check400 "empty body" '' malformed_json
check400 "duplicate keys" "{\"card\":{\"number\":\"4242424242424242\",\"number\":\"5555555555554444\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"}}" duplicate_key
deep=$(head -c 10000 /dev/zero | tr '\0' '[')
check400 "nesting 10,000 deep" "$deep" json_too_deep
printf '{"card":{"number":"4242424242424242","exp_month":1,"exp_year":%s,"cvc":"123","name":"\xff\xfe"}}' "$Y" >"$T_DIR/bad-utf8.json"
out=$(post "$KEY_A" @"$T_DIR/bad-utf8.json")
expect_eq "non-UTF-8 bytes" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "400 invalid_utf8"
out=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY_A" -H 'content-type: text/plain' \
    --data-binary '{}' -w '\n%{http_code}' "$H2C/v1/tokens")
expect_eq "wrong content type: 415" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "415 unsupported_media_type"
expect_eq "still serving after bad input" "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$H2C/healthz")" "200"

# --- pan_shaped -----------------------------------------------------------------------------------
out=$(post "$KEY_A" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"format\":\"pan_shaped\"}")
ps=$(json_of "$out" | jq -r .pan_shaped)
expect_match "pan_shaped keeps length, BIN and last 4" "$(status_of "$out") $ps" '^201 424242[0-9]{6}4242$'
if luhn_ok "$ps"; then fail "pan_shaped is never Luhn-valid ($ps)"; else ok "pan_shaped is never Luhn-valid"; fi
# a pan_shaped value is unique per tenant (sql/009's partial index; tokenisation retries
# with its next candidate when one is taken)
err=$(pg_psql "$T_DIR/pg" -tA -c "INSERT INTO vault.tokens (tenant_id, id, livemode, format, pan_shaped,
    fingerprint, brand, last4, exp_month, exp_year, key_version, created_by)
    SELECT tenant_id, 'tok_' || repeat('Z', 22), livemode, format, pan_shaped, fingerprint, brand,
           last4, exp_month, exp_year, key_version, created_by
      FROM vault.tokens WHERE pan_shaped = '$ps'" 2>&1)
expect_match "a pan_shaped value cannot be stored twice for a tenant" "$err" 'duplicate key.*tokens_pan_shaped'

# --- metadata and expiry round trip ----------------------------------------------------------------
out=$(post "$KEY_A" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":1,\"exp_year\":$Y,\"cvc\":\"123\"},\"metadata\":{\"invoice\":\"INV-1\",\"caf\\u00e9\":\"\\u00fc\"},\"expires_at\":\"$Y-06-01T00:00:00+02:00\"}")
expect_eq "metadata is returned" "$(json_of "$out" | jq -c .metadata)" '{"café":"ü","invoice":"INV-1"}'
expect_eq "expires_at normalised to UTC" "$(json_of "$out" | jq -r .expires_at)" "$Y-05-31T22:00:00Z"

# --- deduplicate ----------------------------------------------------------------------------------
out=$(post "$KEY_A" "$(card 4000056655665556)")
first=$(json_of "$out" | jq -r .id)
out=$(post "$KEY_A" "{\"card\":{\"number\":\"4000056655665556\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"},\"deduplicate\":true}")
expect_eq "deduplicate returns the existing token (200)" "$(status_of "$out")" "200"
expect_eq "deduplicate: same id" "$(json_of "$out" | jq -r .id)" "$first"
out=$(post "$KEY_A" "{\"card\":{\"number\":\"3056930009020004\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"},\"deduplicate\":true}")
expect_eq "deduplicate of a new card creates it (201)" "$(status_of "$out")" "201"
# issue #15: de-duplication tells whether a card is stored; a publishable key (a web page's)
# never gets it, for a stored card or a new one alike
out=$(post "$PK_A" "{\"card\":{\"number\":\"4000056655665556\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"},\"deduplicate\":true}" -H 'origin: https://shop.example')
expect_eq "deduplicate with a publishable key: 422 deduplicate_not_allowed" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "422 deduplicate_not_allowed"
out=$(post "$PK_A" "{\"card\":{\"number\":\"6011000990139424\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"},\"deduplicate\":true}" -H 'origin: https://shop.example')
expect_eq "... the same for a card never stored" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "422 deduplicate_not_allowed"

# --- reading and separation -----------------------------------------------------------------------
get() { curl -s --http2-prior-knowledge -H "authorization: Bearer $1" -w '\n%{http_code}' "$H2C/v1/tokens/$2"; }
out=$(get "$KEY_A" "$TOK1")
expect_eq "GET own token: 200, same last4" "$(status_of "$out") $(json_of "$out" | jq -r .last4)" "200 4242"
out=$(get "$KEY_A_RO" "$TOK1")
expect_eq "GET with a read-only key" "$(status_of "$out")" "200"
out=$(get "$KEY_B" "$TOK1")
expect_eq "tenant B cannot read tenant A's token (404)" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "404 token_not_found"
out=$(get "$KEY_A" "tok_0000000000000000000000")
expect_eq "missing token: the same 404" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "404 token_not_found"
out=$(get "$KEY_A_LIVE" "$TOK1")
expect_eq "a live key never sees a test token" "$(status_of "$out")" "404"
out=$(post "$KEY_A_LIVE" "$(card 4242424242424242)")
expect_eq "live mode has no sandbox gateway" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "422 no_live_gateway"
n=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c BEGIN \
    -c "SELECT set_config('tokend.tenant_id', '$TEN_B', true)" \
    -c "SELECT 'count=' || count(*) FROM vault.tokens WHERE tenant_id = '$TEN_A'" -c COMMIT 2>&1 |
    sed -n 's/^count=//p')
m=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c BEGIN \
    -c "SELECT set_config('tokend.tenant_id', '$TEN_A', true)" \
    -c "SELECT 'count=' || count(*) FROM vault.tokens WHERE tenant_id = '$TEN_A'" -c COMMIT 2>&1 |
    sed -n 's/^count=//p')
expect_true "service role with tenant A set sees A's rows ($m)" test "${m:-0}" -gt 0
expect_eq "service role with tenant B set sees none of A's rows" "$n" "0"
n=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c "SELECT count(*) FROM vault.tokens" 2>&1)
expect_eq "service role with no tenant set sees no rows" "$n" "0"
err=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c "DELETE FROM audit.events" 2>&1)
expect_match "service role cannot delete audit rows" "$err" 'permission denied'
err=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend \
    -c "INSERT INTO audit.events (actor, action, seq, hash) VALUES ('x', 'forged', 1, '\\x00')" 2>&1)
expect_match "service role cannot write the chain columns of an audit row" "$err" 'permission denied'
# the chain's own tables (sql/011) are the owner's: the service role may only call the pass
for q in "INSERT INTO audit.blocks (block, first_id, last_id, n_rows, digests, prev_hash, hash) VALUES (99, 1, 1, 1, '\\x00', '\\x00', '\\x00')" \
    "UPDATE audit.chain_state SET chained_to = 0" "SELECT count(*) FROM audit.blocks"; do
    err=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c "$q" 2>&1)
    expect_match "service role refused: ${q%% (*}" "$err" 'permission denied'
done
n=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c "SELECT count(*) FROM audit.chain_pending(10, 0)" 2>&1)
expect_eq "service role may run a chaining pass" "$n" 1
err=$("$PG_BIN/psql" -X -qtA -h "$T_DIR/pg/run" -U tokend_service -d tokend -c "SELECT * FROM vault.api_keys" 2>&1)
expect_match "service role cannot read API keys" "$err" 'permission denied'

# --- auth and scopes --------------------------------------------------------------------------
out=$(curl -s --http2-prior-knowledge -w '\n%{http_code}' -X POST --data-binary '{}' "$H2C/v1/tokens")
expect_eq "no key: 401 unauthenticated" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "401 unauthenticated"
out=$(post "sk_test_0000000000000000000000000000000000000000000" "$(card 4242424242424242)")
expect_eq "unknown key: 401" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "401 unauthenticated"
out=$(post "not-a-key" "{}")
expect_eq "malformed key: 401" "$(status_of "$out")" "401"
out=$(post "$KEY_A_RO" "$(card 4242424242424242)")
expect_eq "read-only key cannot create: 403 forbidden" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "403 forbidden"
out=$(post "$PK_A" "$(card 4242424242424242)" -H 'origin: https://shop.example' -D "$T_DIR/pk.hdr")
expect_eq "publishable key from its origin: 201" "$(status_of "$out")" "201"
expect_true "CORS: the allowed origin is echoed" grep -qi '^access-control-allow-origin: https://shop.example' "$T_DIR/pk.hdr"
expect_eq "publishable key's answer: the new token's display data, no fingerprint, bin, metadata or gateways" \
    "$(json_of "$out" | jq -c keys)" '["brand","created_at","exp_month","exp_year","expires_at","format","id","last4","livemode","object"]'
out=$(post "$PK_A" "$(card 4242424242424242)" -H 'origin: https://evil.example')
expect_eq "publishable key from another origin: 403" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "403 origin_not_allowed"
out=$(post "$PK_A" "$(card 4242424242424242)")
expect_eq "publishable key without an origin: 403" "$(status_of "$out")" "403"
out=$(get "$PK_A" "$TOK1")
expect_eq "publishable key cannot read tokens" "$(status_of "$out")" "403"
out=$(curl -s --http2-prior-knowledge -X DELETE -H "authorization: Bearer $PK_A" -H 'origin: https://shop.example' -w '\n%{http_code}' "$H2C/v1/tokens/$TOK1")
expect_eq "publishable key cannot redact tokens (tokens:create only)" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "403 forbidden"
out=$(post "$KEY_A" "$(card 4242424242424242)" -H 'origin: https://shop.example')
expect_eq "secret key from a browser origin: 403" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "403 secret_key_in_browser"
KEY_TMP=$("${CTL[@]}" key create --tenant "$TEN_A" --scopes tokens:read --test 2>/dev/null)
expect_eq "a fresh key works" "$(status_of "$(get "$KEY_TMP" "$TOK1")")" "200"
KEY_TMP_ID=$(PGOPTIONS= pg_psql "$T_DIR/pg" -tAc "SELECT id FROM vault.api_keys ORDER BY created_at DESC LIMIT 1")
"${CTL[@]}" key revoke "$KEY_TMP_ID" >/dev/null 2>&1
code=200
for i in $(seq 1 50); do
    code=$(status_of "$(get "$KEY_TMP" "$TOK1")")
    [ "$code" = 401 ] && break
    sleep 0.2
done
expect_eq "a revoked key is refused within seconds" "$code" "401"

# --- redaction --------------------------------------------------------------------------------------
out=$(curl -s --http2-prior-knowledge -X DELETE -H "authorization: Bearer $KEY_A" -w '\n%{http_code}' "$H2C/v1/tokens/$TOK1")
expect_eq "DELETE redacts: 200, redacted" "$(status_of "$out") $(json_of "$out" | jq -r .redacted)" "200 true"
expect_eq "redaction destroys gateway references" "$(json_of "$out" | jq -r '.gateways[0].status')" "destroyed"
out=$(get "$KEY_A" "$TOK1")
expect_eq "GET after redaction shows the tombstone" "$(json_of "$out" | jq -r .redacted)" "true"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.gateway_refs WHERE token_id = '$TOK1' AND ref_sealed IS NOT NULL")
expect_eq "no ciphertext left for a redacted token" "$n" "0"
out=$(curl -s --http2-prior-knowledge -X DELETE -H "authorization: Bearer $KEY_B" -w '\n%{http_code}' "$H2C/v1/tokens/$TOK1")
expect_eq "tenant B cannot redact A's token" "$(status_of "$out")" "404"

# --- references between vault tables without foreign keys (sql/012) --------------------------------
# Statement triggers check tokens -> tenants and gateway_refs -> tokens; parents are never
# deleted and keys never change. As the owner unless noted; whatever could destroy rows if
# a check were missing runs inside a transaction that is rolled back.
sql_err() { pg_psql "$T_DIR/pg" -tA -c '\set VERBOSITY verbose' "$@" 2>&1; } # -> "ERROR:  SQLSTATE: ..."
svc_sql() { # TENANT SQL -> output, verbose errors, rolled back
    "$PG_BIN/psql" -X -qtA -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U tokend_service -d tokend \
        -c '\set VERBOSITY verbose' -c BEGIN -c "SELECT set_config('tokend.tenant_id', '$1', true)" \
        -c "$2" -c ROLLBACK 2>&1
}
TOK_F="tok_$(printf 'F%.0s' $(seq 1 22))"
TOK_ORPHAN="tok_$(printf 'Q%.0s' $(seq 1 22))"
TEN_NONE="ten_$(printf '0%.0s' $(seq 1 22))"
refs_of() { pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.gateway_refs WHERE token_id = '$1'"; }
new_token() { # TENANT ID -> a tokens row without card data (last4 of a test card, zero fingerprint)
    printf "INSERT INTO vault.tokens (tenant_id, id, livemode, format, fingerprint, brand, last4,
        exp_month, exp_year, key_version, created_by) VALUES ('%s', '%s', false, 'opaque',
        decode(repeat('00', 32), 'hex'), 'visa', '4242', 12, %s, 1, 't03')" "$1" "$2" "$NEXT_YEAR"
}
new_ref() { printf "('%s', '%s', '%s', 'active', 1)" "$1" "$2" "$3"; } # TENANT TOKEN GATEWAY
REFS_INSERT="INSERT INTO vault.gateway_refs (tenant_id, token_id, gateway, status, key_version) VALUES"

n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND
    ((conrelid = 'vault.tokens'::regclass AND confrelid = 'vault.tenants'::regclass) OR
     (conrelid = 'vault.gateway_refs'::regclass AND confrelid = 'vault.tokens'::regclass))")
expect_eq "refs: the two foreign keys of the tokenise path are dropped" "$n" "0"

err=$(sql_err -c "$(new_token "$TEN_NONE" "$TOK_ORPHAN")")
expect_match "refs: a token of a tenant that does not exist is 23503" "$err" \
    "ERROR:  23503: insert on table \"tokens\" violates foreign key check \"tokens_tenant_ref\""
expect_match "refs: its detail names the missing tenant" "$err" \
    "DETAIL:  Key \\(tenant_id\\)=\\($TEN_NONE\\) is not present in table \"tenants\"\\."
expect_eq "refs: the token without a tenant was not stored" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens WHERE id = '$TOK_ORPHAN'")" "0"
err=$(sql_err -c "$(new_token "$TEN_A" "$TOK_F")")
expect_eq "refs: a token of an existing tenant is stored" "$err" ""

err=$(sql_err -c "$REFS_INSERT $(new_ref "$TEN_A" "$TOK_ORPHAN" fk_a)")
expect_match "refs: a gateway reference to a token that does not exist is 23503" "$err" \
    "ERROR:  23503: insert on table \"gateway_refs\" violates foreign key check \"gateway_refs_token_ref\""
expect_match "refs: its detail names the missing key" "$err" \
    "DETAIL:  Key \\(tenant_id, token_id\\)=\\($TEN_A, $TOK_ORPHAN\\) is not present in table \"tokens\"\\."
err=$(sql_err -c "$REFS_INSERT $(new_ref "$TEN_A" "$TOK_F" fk_a), $(new_ref "$TEN_A" "$TOK_ORPHAN" fk_b), $(new_ref "$TEN_A" "$TOK_F" fk_c)")
expect_match "refs: a multi-row insert with one orphan is 23503" "$err" "ERROR:  23503: .*$TOK_ORPHAN"
expect_eq "refs: ... and inserts none of its rows" "$(refs_of "$TOK_F")" "0"
err=$(sql_err -c "$REFS_INSERT $(new_ref "$TEN_B" "$TOK_F" fk_a)")
expect_match "refs: a reference to another tenant's token is 23503" "$err" "ERROR:  23503: .*\\($TEN_B, $TOK_F\\)"
err=$(sql_err -c "$REFS_INSERT $(new_ref "$TEN_A" "$TOK_F" fk_a), $(new_ref "$TEN_A" "$TOK_F" fk_c)")
expect_eq "refs: references to an existing token are stored" "$err:$(refs_of "$TOK_F")" ":2"
err=$(sql_err -c "WITH t AS ($(new_token "$TEN_A" "${TOK_F%FF}GG") RETURNING tenant_id, id)
    INSERT INTO vault.gateway_refs (tenant_id, token_id, gateway, status, key_version)
    SELECT tenant_id, id, 'fk_a', 'active', 1 FROM t")
expect_eq "refs: a token and its reference stored by one statement pass" "$err:$(refs_of "${TOK_F%FF}GG")" ":1"

# as tokend: the parent look-up is not hidden by row-level security or missing grants
out=$(svc_sql "$TEN_A" "$REFS_INSERT $(new_ref "$TEN_A" "$TOK_ORPHAN" fk_s)")
expect_match "refs: service role, orphan reference: 23503 (not a permission error)" "$out" "ERROR:  23503: "
out=$(svc_sql "$TEN_A" "$REFS_INSERT $(new_ref "$TEN_A" "$TOK_F" fk_s); SELECT 'n=' || count(*) FROM vault.gateway_refs WHERE token_id = '$TOK_F'")
expect_match "refs: service role, reference to its tenant's token: stored" "$out" "n=3"
out=$(svc_sql "$TEN_A" "$(new_token "$TEN_A" "${TOK_F%FF}HH"); SELECT 'n=' || count(*) FROM vault.tokens WHERE id = '${TOK_F%FF}HH'")
expect_match "refs: service role, token of its tenant (no grant on vault.tenants): stored" "$out" "n=1"
out=$(svc_sql "$TEN_A" "UPDATE vault.tokens SET tenant_id = '$TEN_A' WHERE id = '$TOK_F'")
expect_match "refs: service role may not update a token's tenant (column grant)" "$out" "ERROR:  42501: permission denied for table tokens"
out=$(svc_sql "$TEN_A" "UPDATE vault.tokens SET metadata = '{}' WHERE id = '$TOK_F'")
expect_match "refs: service role may update only the columns tokend updates" "$out" "ERROR:  42501: permission denied"
out=$(svc_sql "$TEN_A" "UPDATE vault.gateway_refs SET token_id = '$TOK_F' WHERE token_id = '$TOK_F'")
expect_match "refs: service role may not update a reference's token (column grant)" "$out" "ERROR:  42501: permission denied"

# parents are never deleted, keys never change: refused even for the owner
refused() { # NAME SQL: SQLSTATE 23001 and PostgreSQL's message, nothing changed
    local err
    err=$(sql_err -c BEGIN -c "$2" -c ROLLBACK)
    expect_match "$1" "$err" "ERROR:  23001: $3"
}
refused "refs: owner cannot DELETE a token" "DELETE FROM vault.tokens WHERE id = '$TOK_F'" \
    'DELETE of table "tokens" is not allowed'
refused "refs: owner cannot DELETE a tenant" "DELETE FROM vault.tenants WHERE id = '$TEN_B'" \
    'DELETE of table "tenants" is not allowed'
refused "refs: owner cannot TRUNCATE vault.tokens (CASCADE)" "TRUNCATE vault.tokens CASCADE" \
    'TRUNCATE of table "tokens" is not allowed'
refused "refs: owner cannot TRUNCATE vault.tenants (CASCADE)" "TRUNCATE vault.tenants CASCADE" \
    'TRUNCATE of table "tenants" is not allowed'
refused "refs: owner cannot change a token's id" "UPDATE vault.tokens SET id = '${TOK_F%FF}JJ' WHERE id = '$TOK_F'" \
    'UPDATE of the key of table "tokens" is not allowed'
refused "refs: owner cannot move a token to another tenant" "UPDATE vault.tokens SET tenant_id = '$TEN_B' WHERE id = '$TOK_F'" \
    'UPDATE of the key of table "tokens" is not allowed'
refused "refs: owner cannot change a tenant's id" "UPDATE vault.tenants SET id = '$TEN_NONE' WHERE id = '$TEN_B'" \
    'UPDATE of the key of table "tenants" is not allowed'
refused "refs: owner cannot point a reference at another token" \
    "UPDATE vault.gateway_refs SET token_id = '$TOK_ORPHAN' WHERE token_id = '$TOK_F'" \
    'UPDATE of the key of table "gateway_refs" is not allowed'
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens WHERE id = '$TOK_F'")
expect_eq "refs: the token is still there with its references" "$n:$(refs_of "$TOK_F")" "1:2"
err=$(sql_err -c BEGIN -c "UPDATE vault.tokens SET redacted_at = now() WHERE id = '$TOK_F'" \
    -c "UPDATE vault.gateway_refs SET status = 'destroyed' WHERE token_id = '$TOK_F'" -c ROLLBACK)
expect_eq "refs: the updates redaction makes still pass" "$err" ""

# the migration can run again (tokenctl records it, but it must be idempotent on its own)
catalog() {
    pg_psql "$T_DIR/pg" -tAc "SELECT string_agg(x, ' | ' ORDER BY x) FROM (
        SELECT pg_get_triggerdef(t.oid) AS x FROM pg_trigger t
         WHERE t.tgrelid IN ('vault.tenants'::regclass, 'vault.tokens'::regclass, 'vault.gateway_refs'::regclass)
           AND NOT t.tgisinternal
        UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass)
        UNION ALL SELECT c.relname || ' ' || coalesce(c.relacl::text, '') FROM pg_class c
         WHERE c.oid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass)
        UNION ALL SELECT attrelid::regclass || '.' || attname || ' ' || attacl::text FROM pg_attribute
         WHERE attrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass) AND attacl IS NOT NULL) s"
}
before=$(catalog)
err=$(pg_psql "$T_DIR/pg" -1 -c 'SET client_min_messages = warning' -f sql/012_vault_refs.sql 2>&1)
expect_eq "refs: sql/012 runs again without error" "$err" ""
expect_eq "refs: ... and changes nothing" "$(catalog)" "$before"
expect_match "refs: (the catalog snapshot covers the triggers and column grants)" "$before" \
    'gateway_refs_token_ref AFTER INSERT.*tokend_service=w'
# 012 run alone again redefines its functions without the settings 014 gives them: apply
# the migrations after it again, as `tokenctl migrate` would have them
err=$(pg_psql "$T_DIR/pg" -1 -c 'SET client_min_messages = warning' -f sql/014_ref_check_plans.sql 2>&1)
expect_eq "refs: sql/014 runs again without error" "$err" ""

# --- sql/013: the identifier columns on the write path compare bytes -----------------------------------
expect_eq "tokens and gateway refs: id columns in the C collation (btree compares with memcmp)" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT string_agg(a.attrelid::regclass || '.' || a.attname || '=' || c.collname, ' ' ORDER BY a.attrelid::regclass::text, a.attname)
        FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
       WHERE a.attrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass)
         AND a.attname IN ('tenant_id', 'id', 'token_id', 'gateway', 'pan_shaped')")" \
    "vault.gateway_refs.gateway=C vault.gateway_refs.tenant_id=C vault.gateway_refs.token_id=C vault.tokens.id=C vault.tokens.pan_shaped=C vault.tokens.tenant_id=C"
expect_eq "sql/013 kept the policies and triggers it had to drop and make again" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT (SELECT count(*) FROM pg_policy WHERE polrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass)) || '/' || (SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass) AND NOT tgisinternal)")" "4/6"

expect_eq "sql/014: the reference checks are planned as primary-key probes, never a scan of the parent" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT string_agg(proname || ':' || array_to_string(proconfig, ','), ' ' ORDER BY proname) FROM pg_proc WHERE proname IN ('tokens_tenant_check', 'gateway_refs_token_check')")" \
    "gateway_refs_token_check:search_path=pg_catalog, vault,enable_seqscan=off tokens_tenant_check:search_path=pg_catalog, vault,enable_seqscan=off"

# --- single flight: a burst of requests with a cold key costs one look-up ----------------------------------
# (each request used to run vault.authenticate and unwrap the tenant keys on its own until the
# first answer was cached). Counted with track_functions on a tokend of its own.
pg_psql "$T_DIR/pg" -qc "ALTER ROLE tokend_service SET track_functions = 'all'"
auth_calls() {
    pg_psql "$T_DIR/pg" -tAc "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'vault' AND funcname = 'authenticate'"
}
settled_calls() { # function statistics reach the view once the backend is idle (at most 1 s)
    local prev now i
    prev=$(auth_calls)
    for i in 1 2 3 4 5 6; do
        sleep 0.5
        now=$(auth_calls)
        [ "$now" = "$prev" ] && [ "$i" -ge 4 ] && break
        prev=$now
    done
    echo "$now"
}
if tokend_start SF; then
    KEY_SF=$("${CTL[@]}" key create --tenant "$TEN_A" --scopes tokens:read --test 2>/dev/null)
    c0=$(settled_calls)
    # nghttp: 40 streams on one connection (curl 7.88's --parallel misreads the responses
    # of many streams arriving in one read as a framing error)
    burst() { # KEY -> "STATUS:COUNT ..."
        nghttp -nv -m 40 -H "authorization: Bearer $1" "http://127.0.0.1:$H2C_SF/v1/tokens/tok_0000000000000000000000" 2>&1 |
            sed -nE 's/.*recv \(stream_id=[0-9]+\) :status: ([0-9]+).*/\1/p' | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' '
    }
    codes=$(burst "$KEY_SF")
    c1=$(settled_calls)
    expect_eq "single flight: 40 concurrent requests with a cold key all authenticated (404 for the token)" "$codes" "404:40 "
    expect_true "single flight: they cost at most one look-up per loop ($((c1 - c0)) calls)" \
        test "$((c1 - c0))" -ge 1 -a "$((c1 - c0))" -le 2
    codes=$(burst "sk_test_$(printf 'Z%.0s' $(seq 1 43))")
    c2=$(settled_calls)
    expect_eq "single flight: the waiters on an unknown key are refused too" "$codes" "401:40 "
    expect_true "single flight: an unknown key's burst costs at most one look-up per loop ($((c2 - c1)))" \
        test "$((c2 - c1))" -ge 1 -a "$((c2 - c1))" -le 2
    tokend_stop SF
else
    fail "tokend starts (single flight)"
fi
pg_psql "$T_DIR/pg" -qc "ALTER ROLE tokend_service RESET track_functions"

# --- gateway failure stores nothing -------------------------------------------------------------------
before=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens")
out=$(post "$KEY_A" "$(card 4000000000000119)")
expect_eq "gateway processing error: 502 gateway_error" "$(status_of "$out") $(json_of "$out" | jq -r .code)" "502 gateway_error"
after=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tokens")
expect_eq "gateway failure stores no token" "$after" "$before"

# --- what is at rest ------------------------------------------------------------------------------------
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.gateway_refs WHERE ref_sealed IS NOT NULL AND ref_sealed::text LIKE '%sbxpm%'")
expect_eq "gateway references are stored sealed" "$n" "0"
"$PG_BIN/pg_dumpall" -h "$T_DIR/pg/run" -U postgres >"$T_DIR/dump.sql" 2>/dev/null
expect_true "pg_dumpall produced a dump" test -s "$T_DIR/dump.sql"
leaks=""
for pan in 4242424242424242 5555555555554444 2223003122003222 6011111111111117 3566002020360505 \
    36227206271667 6200000000000005 378282246310005 3056930009020004 4000000000000119 4000056655665556; do
    grep -q "$pan" "$T_DIR/dump.sql" && leaks="$leaks dump:$pan"
    grep -q "$pan" "$LOG_T" && leaks="$leaks log:$pan"
done
expect_eq "no test PAN in pg_dumpall or tokend's log" "$leaks" ""
expect_true "the log has no CVC-bearing body" bash -c "! grep -q '\"cvc\"' '$LOG_T'"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE action = 'token.created' AND tenant_id = '$TEN_A'")
expect_true "token creations are audited ($n)" test "$n" -ge 10
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE action IN ('auth.refused','auth.forbidden')")
expect_true "refused requests are audited ($n)" test "$n" -ge 5
out=$("$BUILD/tokenctl" --db "$T_ADMIN_DB" audit verify 2>&1)
expect_match "tokenctl audit verify passes after the suite" "$out" 'chain intact'
tokend_stop T
