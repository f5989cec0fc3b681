# t_43_pkcs11.sh - the master key in a PKCS#11 token (issue #18): SoftHSM2 in this test's
# temp dir, the key made by `tokenctl keys hsm-init` (non-extractable, checked from outside
# with pkcs11-tool), then tenant create, tokenise, charge, restart, charge again with
# tokend and tokenctl both on --master-key-pkcs11. A wrong PIN, a missing token, object or
# module refuse to start with one line and exit 2, and never print the PIN. In a scratch
# database, so no other test's tenant meets a keyring it cannot open.

SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
if [ ! -f "$SOFTHSM_MODULE" ] || ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null; then
    fail "softhsm2 and opensc installed (make deps)"
    return
fi
HSM="$T_DIR/hsm43"
rm -rf "$HSM" && mkdir -p "$HSM/tokens" && chmod 700 "$HSM"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$HSM" \
    >"$HSM/softhsm2.conf"
export SOFTHSM2_CONF="$HSM/softhsm2.conf"
PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SO_PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$PIN" >"$HSM/pin" && printf 'not-%s\n' "$PIN" >"$HSM/bad.pin")
softhsm2-util --init-token --free --label tokend-t43 --pin "$PIN" --so-pin "$SO_PIN" >/dev/null ||
    { fail "SoftHSM2 token initialised"; return; }
URI="pkcs11:token=tokend-t43;object=master?module-path=$SOFTHSM_MODULE"

OUT="$T_DIR/t43.out"
ERR="$T_DIR/t43.err"
PDB=tokend_pkcs11
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists $PDB 2>/dev/null
"$PG_BIN/createdb" -h "$T_DIR/pg/run" -U postgres $PDB || { fail "scratch database"; return; }
ADB=$(pg_conninfo "$T_DIR/pg" postgres $PDB)
SDB=$(pg_conninfo "$T_DIR/pg" tokend_service $PDB)
"$BUILD/tokenctl" --db "$ADB" migrate --dir sql >/dev/null || { fail "migrate scratch"; return; }
hpsql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U postgres -d $PDB "$@"; }
CTL=("$BUILD/tokenctl" --db "$ADB" --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/pin")

# --- the key: made in the token, never extractable -----------------------------------------
out=$("${CTL[@]}" keys hsm-init 2>&1)
expect_eq "keys hsm-init makes the key" "$?|$out" \
    "0|keys hsm-init: made a non-extractable AES-256 master key in the token"
"${CTL[@]}" keys hsm-init >"$OUT" 2>"$ERR"
expect_eq "keys hsm-init twice: refused, the key is kept" "$?|$(cat "$ERR")" \
    "1|tokenctl: keys hsm-init: PKCS#11 token 'tokend-t43' already has a key 'master': hsm-init makes new keys only"
objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tokend-t43 --login --pin "$PIN" \
    --list-objects --type secrkey 2>/dev/null)
expect_match "pkcs11-tool: one AES-256 secret key labelled master" "$objs" \
    'Secret Key Object; AES length 32[[:space:]]+label:[[:space:]]+master'
access=$(grep -m1 'Access:' <<<"$objs")
expect_match "pkcs11-tool: the key is never extractable (CKA_EXTRACTABLE false)" "$access" \
    'never extractable'
expect_match "pkcs11-tool: the key is sensitive (CKA_SENSITIVE true)" "$access" 'Access: +sensitive'
expect_eq "pkcs11-tool: the token will not give the key's value" \
    "$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tokend-t43 --login --pin "$PIN" \
        --read-object --type secrkey --label master -o "$HSM/value" >/dev/null 2>&1; echo "$?:$(stat -c %s "$HSM/value" 2>/dev/null || echo none)")" \
    "1:none"

# --- tokenctl and tokend on the token --------------------------------------------------------
TEN=$("${CTL[@]}" tenant create "hsm-$$" 2>"$ERR")
expect_match "tenant create with the PKCS#11 provider" "$TEN" '^ten_'
expect_eq "wrapped keys: 72 bytes, IV then 12 reserved zero bytes (master_key.h)" \
    "$(hpsql -tAc "SELECT octet_length(wrapped_dek) || ' ' || octet_length(wrapped_fpk) || ' ' || encode(substring(wrapped_dek from 13 for 12), 'hex') FROM vault.tenant_keys WHERE tenant_id = '$TEN'")" \
    "72 72 000000000000000000000000"
# the API key's hash comes from the token's sub-key root: made here through p11-kit's proxy
# (no module-path: SoftHSM2 is registered with p11-kit), checked by tokend below
KEY=$("$BUILD/tokenctl" --db "$ADB" --master-key-pkcs11 "pkcs11:token=tokend-t43;object=master" \
    --master-key-pin-file "$HSM/pin" key create --tenant "$TEN" \
    --scopes tokens:write,tokens:read,charges:write --test 2>"$ERR")
expect_match "key create through the p11-kit proxy (no module-path)" "$KEY" '^sk_test_'
# gateway credentials are sealed under the DEK the token unwraps; a file master key cannot
# open what the token wrapped (moving from one to the other is a rotation: SECURITY.md)
(umask 077 && printf '{"api_key":"sk_test_t43"}' >"$HSM/stripe.json")
"${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$HSM/stripe.json" \
    --priority 50 >"$OUT" 2>"$ERR"
expect_match "gateway add: credentials sealed with the token-unwrapped DEK" "$?|$(cat "$ERR")" \
    '^0\|tokenctl: added stripe gateway gw_'
GW=$(grep -o 'gw_[0-9A-Za-z]*' "$ERR")
"$BUILD/tokenctl" --db "$ADB" --master-key-file "$T_DIR/master.key" gateway add --tenant "$TEN" \
    --kind stripe --credentials-file "$HSM/stripe.json" >"$OUT" 2>"$ERR"
expect_eq "a file master key does not open the token-wrapped tenant keys" "$?" 1
"${CTL[@]}" gateway remove "$GW" >/dev/null 2>&1 # charges below go to the sandbox

hsm_tokend_start() { # NAME: tokend on the token, fresh ports (tokend_start's variables)
    local name=$1 h2c
    h2c=$(free_port)
    local log="$T_DIR/tokend-$name.log"
    "$BUILD/tokend" --listen "127.0.0.1:$h2c" --db "$SDB" --threads 2 --log-level info \
        --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/pin" 2>>"$log" &
    local pid=$!
    eval "TOKEND_PID_$name=$pid H2C_$name=$h2c LOG_$name=$log"
    T_PIDS+=("$pid")
    wait_http "http://127.0.0.1:$h2c/healthz" 15 || { cat "$log" >&2; return 1; }
}
hsm_tokend_start H43 || { fail "tokend starts with --master-key-pkcs11"; return; }
ok "tokend starts with --master-key-pkcs11"
H2C="http://127.0.0.1:$H2C_H43"
Y=$(($(date -u +%Y) + 1))
api() { # METHOD PATH [BODY] -> "<json>\n<status>"
    if [ -n "${3:-}" ]; then
        curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $KEY" \
            -H 'content-type: application/json' --data-binary "$3" -w '\n%{http_code}' "$H2C$2"
    else
        curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $KEY" \
            -w '\n%{http_code}' "$H2C$2"
    fi
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
out=$(api POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}")
expect_eq "tokenise with the PKCS#11 provider" "$(st "$out")" 201
TOK=$(js "$out" .id)
out=$(api POST /v1/tokens "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}")
expect_eq "the same card again: the fingerprint key (FPK) unwrapped by the token dedups" \
    "$(js "$out" .fingerprint)" "$(js "$(api GET "/v1/tokens/$TOK")" .fingerprint)"
out=$(api POST /v1/charges "{\"token\":\"$TOK\",\"amount\":1250,\"currency\":\"eur\"}")
expect_eq "charge with the PKCS#11 provider" "$(st "$out") $(js "$out" .status)" "201 succeeded"

# a data-key rotation with the token as the master key provider, while tokend serves: the new
# data key is wrapped in the token, the token's gateway reference re-sealed under it
"${CTL[@]}" keys rotate-data --tenant "$TEN" --settle-ms 3500 >"$OUT" 2>"$ERR"
expect_eq "keys rotate-data with the PKCS#11 provider: exit 0" "$?" 0
expect_eq "... version 2 active, wrapped in the token (72 bytes); version 1 previous" \
    "$(hpsql -tAc "SELECT string_agg(version || ' ' || state || ' ' || coalesce(octet_length(wrapped_dek), 0), ',' ORDER BY version) FROM vault.tenant_keys WHERE tenant_id = '$TEN'")" \
    "1 previous 72,2 active 72"
expect_eq "... no token or gateway reference of the tenant left on version 1" \
    "$(hpsql -tAc "SELECT (SELECT count(*) FROM vault.tokens WHERE tenant_id = '$TEN' AND key_version <> 2) + (SELECT count(*) FROM vault.gateway_refs WHERE tenant_id = '$TEN' AND key_version <> 2)")" 0
out=$(api POST /v1/charges "{\"token\":\"$TOK\",\"amount\":300,\"currency\":\"eur\"}")
expect_eq "after the rotation the token charges, tokend not restarted" \
    "$(st "$out") $(js "$out" .status)" "201 succeeded"
"${CTL[@]}" keys retire --tenant "$TEN" --version 1 >"$OUT" 2>"$ERR"
expect_eq "the unused version 1 is retired" "$?" 0

tokend_stop H43
hsm_tokend_start H43b || { fail "tokend restarts with --master-key-pkcs11"; return; }
H2C="http://127.0.0.1:$H2C_H43b"
out=$(api POST /v1/charges "{\"token\":\"$TOK\",\"amount\":700,\"currency\":\"eur\"}")
expect_eq "after a restart the same token charges again" "$(st "$out") $(js "$out" .status)" \
    "201 succeeded"
out=$(api GET "/v1/tokens/$TOK")
expect_eq "after a restart the token reads back" "$(st "$out") $(js "$out" .last4)" "200 4242"
tokend_stop H43b
expect_true "tokend's log never shows the PIN" bash -c "! grep -qF -- '$PIN' '$LOG_H43' '$LOG_H43b'"

# --- refusals: one line, exit 2, never the PIN ----------------------------------------------
refused() { # NAME EXPECTED_LINE tokend-args...
    local name=$1 want=$2
    shift 2
    timeout 20 "$BUILD/tokend" --listen 127.0.0.1:1 --db "$SDB" "$@" >"$OUT" 2>"$ERR"
    local rc=$?
    expect_eq "$name: exit 2, one line" "$rc|$(wc -l <"$ERR")|$(cat "$ERR")" "2|1|$want"
    expect_true "$name: the PIN is not printed" bash -c "! grep -qF -- '$PIN' '$ERR' '$OUT'"
}
refused "wrong PIN" \
    "tokend: cannot load the master key: PKCS#11 login to token 'tokend-t43' refused: wrong PIN (CKR_PIN_INCORRECT)" \
    --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/bad.pin"
refused "missing token" \
    "tokend: cannot load the master key: PKCS#11 token 'nope' not found (module $SOFTHSM_MODULE)" \
    --master-key-pkcs11 "pkcs11:token=nope;object=master?module-path=$SOFTHSM_MODULE" \
    --master-key-pin-file "$HSM/pin"
refused "missing object" \
    "tokend: cannot load the master key: PKCS#11 token 'tokend-t43' has no secret key 'other'" \
    --master-key-pkcs11 "pkcs11:token=tokend-t43;object=other?module-path=$SOFTHSM_MODULE" \
    --master-key-pin-file "$HSM/pin"
refused "object with another id" \
    "tokend: cannot load the master key: PKCS#11 token 'tokend-t43' has no secret key 'master' with that id" \
    --master-key-pkcs11 "pkcs11:token=tokend-t43;object=master;id=%01?module-path=$SOFTHSM_MODULE" \
    --master-key-pin-file "$HSM/pin"
refused "unloadable module" \
    "tokend: cannot load the master key: PKCS#11 module cannot be loaded: $HSM/none.so: cannot open shared object file: No such file or directory" \
    --master-key-pkcs11 "pkcs11:token=tokend-t43;object=master?module-path=$HSM/none.so" \
    --master-key-pin-file "$HSM/pin"
refused "missing PIN file" \
    "tokend: cannot load the master key: PKCS#11 PIN file not found: $HSM/nope.pin" \
    --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/nope.pin"
refused "PIN in the URI" \
    "tokend: cannot load the master key: PKCS#11 URI: pin-value is refused (it shows in ps and logs): put the PIN in a file (pin-source=file:... or --master-key-pin-file)" \
    --master-key-pkcs11 "$URI&pin-value=$PIN"
refused "file and token both" \
    "tokend: bad configuration: give --master-key-file or --master-key-pkcs11, not both" \
    --master-key-file "$T_DIR/master.key" --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/pin"
refused "a PIN file without a token" \
    "tokend: bad configuration: --master-key-pin-file is for --master-key-pkcs11" \
    --master-key-file "$T_DIR/master.key" --master-key-pin-file "$HSM/pin"
# a master key rotation with the token (issue #18; t_51 runs them): a previous key file of
# another key line is refused, and so is a rotation to a key that does not carry this line's
# sub-key root
refused "a previous master key file of another key line" \
    "tokend: cannot load the previous master key: previous master key is not of this key line (its sub-key root differs): $T_DIR/master.key" \
    --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/pin" --master-key-previous "$T_DIR/master.key"
"${CTL[@]}" --master-key-previous "$T_DIR/master.key" tenant create "hsm-prev-$$" >"$OUT" 2>"$ERR"
expect_eq "tokenctl with a previous key file of another line: refused, one line, exit 2" "$?|$(cat "$ERR")" \
    "2|tokenctl: previous master key refused: previous master key is not of this key line (its sub-key root differs): $T_DIR/master.key"
"${CTL[@]}" keys rotate-master --new-master-key-file "$T_DIR/master.key" >"$OUT" 2>"$ERR"
expect_eq "keys rotate-master from the token to a file of another line: refused, exit 2" "$?|$(cat "$ERR")" \
    "2|tokenctl: keys rotate-master: $T_DIR/master.key does not carry this master key's sub-key root (API keys would stop working): make it with keys new-master --out FILE (or --pkcs11 URI)"
# an extractable key (made with pkcs11-tool's defaults plus --extractable) is refused
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tokend-t43 --login --pin "$PIN" --keygen \
    --key-type AES:32 --label loose --extractable >/dev/null 2>&1
refused "extractable key" \
    "tokend: cannot load the master key: PKCS#11 key 'loose' can leave the token (CKA_EXTRACTABLE true or CKA_SENSITIVE false): make a new one with tokenctl keys hsm-init" \
    --master-key-pkcs11 "pkcs11:token=tokend-t43;object=loose?module-path=$SOFTHSM_MODULE" \
    --master-key-pin-file "$HSM/pin"
# pin-source=file: in the URI instead of the flag (RFC 7512)
"${CTL[0]}" --db "$ADB" --master-key-pkcs11 "$URI&pin-source=file:$HSM/pin" tenant create \
    "hsm-pin-source-$$" >"$OUT" 2>"$ERR"
expect_eq "pin-source=file: in the URI works" "$?|$(cat "$ERR")" "0|"
"$BUILD/tokenctl" --db "$ADB" --master-key-pkcs11 "$URI" --master-key-pin-file "$HSM/bad.pin" \
    tenant create "hsm-wrong-pin-$$" >"$OUT" 2>"$ERR"
expect_eq "tokenctl with a wrong PIN: exit 1, one line" "$?|$(cat "$ERR")" \
    "1|tokenctl: master key refused: PKCS#11 login to token 'tokend-t43' refused: wrong PIN (CKR_PIN_INCORRECT)"
unset SOFTHSM2_CONF
