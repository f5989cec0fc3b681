# t_51_hsm_rotation.sh - master key rotation with a PKCS#11 token (issue #18): a file master
# key moved into a SoftHSM2 token (file -> token), then rotated to another key object in the
# same token (token -> token), then out to a file again (token -> file), the first two while
# tokend serves charges under a bounded load with zero failures; the first rotation killed
# (kill -9) half-way and resumed, tenants under either master version served meanwhile; tokend
# restarted on the new key alone after the old version is retired (keys status --master shows
# it), the old token key destroyed in the token; the API key made before the first rotation
# works throughout (the token keys carry the line's sub-key root). Wrong configurations (the
# previous key's URI or PIN, the same key twice, a key of another line) refuse with one line
# and exit 2. In a database of its own.

SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
if [ ! -f "$SOFTHSM_MODULE" ] || ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null; then
    fail "softhsm2 and opensc installed (make deps)"
    return
fi
H_DIR="$T_DIR/hsm51"
rm -rf "$H_DIR" && mkdir -p "$H_DIR/tokens" && chmod 700 "$H_DIR"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$H_DIR" \
    >"$H_DIR/softhsm2.conf"
export SOFTHSM2_CONF="$H_DIR/softhsm2.conf"
H_PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$H_PIN" >"$H_DIR/pin" && printf 'not-%s\n' "$H_PIN" >"$H_DIR/bad.pin")
softhsm2-util --init-token --free --label tokend-t51 --pin "$H_PIN" \
    --so-pin "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >/dev/null ||
    { fail "SoftHSM2 token initialised"; return; }
H_URI_A="pkcs11:token=tokend-t51;object=master-a?module-path=$SOFTHSM_MODULE"
H_URI_B="pkcs11:token=tokend-t51;object=master-b?module-path=$SOFTHSM_MODULE"

H_OUT="$T_DIR/t51.out"
H_ERR="$T_DIR/t51.err"
H_DB=tokend_t51
"$PG_BIN/createdb" -h "$T_DIR/pg/run" -U postgres "$H_DB" || { fail "t_51's database"; return; }
H_ADB=$(pg_conninfo "$T_DIR/pg" postgres "$H_DB")
H_SDB=$(pg_conninfo "$T_DIR/pg" tokend_service "$H_DB")
"$BUILD/tokenctl" --db "$H_ADB" migrate --dir sql >"$H_OUT" 2>&1 || { fail "t_51's migrations"; return; }
h_sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U postgres -d "$H_DB" -tAc "$1"; }
H_M1="$T_DIR/t51-master1.key"
make_master_key "$H_M1"
CTL_F=("$BUILD/tokenctl" --db "$H_ADB" --master-key-file "$H_M1")
CTL_A=("$BUILD/tokenctl" --db "$H_ADB" --master-key-pkcs11 "$H_URI_A" --master-key-pin-file "$H_DIR/pin")
CTL_B=("$BUILD/tokenctl" --db "$H_ADB" --master-key-pkcs11 "$H_URI_B" --master-key-pin-file "$H_DIR/pin")

# --- fixture on the file master key: a tenant to charge, 30 more so a rotation has rows -----
H_TEN=$("${CTL_F[@]}" tenant create "hsmrot-$$" 2>/dev/null)
H_KEY=$("${CTL_F[@]}" key create --tenant "$H_TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
(umask 077 && printf '{"webhook_secret":"whsec_t51"}' >"$H_DIR/gw.json")
H_GW=$("${CTL_F[@]}" gateway add --tenant "$H_TEN" --kind sandbox --credentials-file "$H_DIR/gw.json" --test 2>/dev/null)
for i in $(seq 1 30); do "${CTL_F[@]}" tenant create "hsmrot-filler-$i-$$" >/dev/null 2>&1; done
expect_eq "fixture: 31 tenants, an API key and a gateway account, all under master version 1" \
    "$(h_sql "SELECT count(*) || ' ' || max(master_version) FROM vault.tenant_keys") $([[ $H_KEY == sk_test_* && -n $H_GW ]] && echo ok)" \
    "31 1 ok"

# tokend with any key options, fresh port (NAME ARGS...)
h_tokend_start() {
    local name=$1 p
    shift
    p=$(free_port)
    local log="$T_DIR/tokend-$name.log"
    "$BUILD/tokend" --listen "127.0.0.1:$p" --db "$H_SDB" --threads 2 --log-level info \
        --rate-tokenise 0 --rate-charge 0 "$@" 2>>"$log" &
    local pid=$!
    eval "TOKEND_PID_$name=$pid H2C_$name=$p LOG_$name=$log"
    T_PIDS+=("$pid")
    wait_http "http://127.0.0.1:$p/healthz" 15 || { cat "$log" >&2; return 1; }
}
h_url() { local v="H2C_$1"; echo "http://127.0.0.1:${!v}"; }
h_post() { # NAME PATH BODY -> "<json>\n<status>"
    curl -s --http2-prior-knowledge -H "authorization: Bearer $H_KEY" -H 'content-type: application/json' \
        --data-binary "$3" -w '\n%{http_code}' "$(h_url "$1")$2"
}
H_Y=$(($(date -u +%Y) + 1))
h_card() { echo "{\"card\":{\"number\":\"$1\",\"exp_month\":12,\"exp_year\":$H_Y,\"cvc\":\"123\"}}"; }
h_charge() { h_post "$1" /v1/charges "{\"token\":\"$2\",\"amount\":100,\"currency\":\"USD\"}" | tail -1; echo; }
# h_charge_loop NAME OUT STOPFILE: the 10 tokens round-robin until STOPFILE (at most 300)
h_charge_loop() {
    local i=0
    while [ ! -f "$3" ] && [ $i -lt 300 ]; do
        h_charge "$1" "${H_TOKS[$((i % 10))]}" >>"$2"
        i=$((i + 1))
    done
}
# h_load_check NAME OUT: charges before, during (between the markers) and after, none failed
h_load_check() {
    local before during after bad
    before=$(sed -n '/^start$/q;p' "$2" | grep -c '^201$')
    during=$(sed -n '/^start$/,/^end$/p' "$2" | grep -c '^201$')
    after=$(sed -n '/^end$/,$p' "$2" | grep -c '^201$')
    bad=$(grep -v '^start$\|^end$' "$2" | grep -vc '^201$')
    if [ "$before" -gt 0 ] && [ "$during" -gt 0 ] && [ "$after" -gt 0 ] && [ "$bad" -eq 0 ]; then
        ok "$1 ($before before, $during during, $after after, 0 failed)"
    else
        fail "$1" "($before before, $during during, $after after: $(sort "$2" | uniq -c | tr '\n' ' '))"
    fi
}
h_master() { h_sql "SELECT master_version || ':' || count(*) FROM vault.tenant_keys WHERE wrapped_dek IS NOT NULL GROUP BY master_version ORDER BY master_version" | tr '\n' ' '; }
h_on() { h_sql "SELECT count(*) FROM vault.tenant_keys WHERE wrapped_dek IS NOT NULL AND master_version = $1"; }

h_tokend_start F1 --master-key-file "$H_M1" || { fail "tokend starts on the file key"; return; }
H_TOKS=()
for i in $(seq 1 10); do
    H_TOKS+=("$(h_post F1 /v1/tokens "$(h_card 4242424242424242)" | sed '$d' | jq -r .id)")
done
expect_eq "10 tokens to charge" "$(printf '%s\n' "${H_TOKS[@]}" | grep -c '^tok_')" 10

# --- file -> token ----------------------------------------------------------------------------
"${CTL_F[@]}" keys new-master --pkcs11 "$H_URI_A" >"$H_OUT" 2>"$H_ERR"
expect_eq "keys new-master --pkcs11 without a PIN for the token: exit 2, one line" \
    "$?|$(wc -l <"$H_ERR")|$(cat "$H_ERR")" \
    "2|1|tokenctl: keys new-master: no PKCS#11 PIN: set --master-key-pin-file or pin-source=file:... in the URI"
"${CTL_F[@]}" keys new-master --pkcs11 "$H_URI_A" --pin-file "$H_DIR/pin" >"$H_OUT" 2>"$H_ERR"
expect_match "keys new-master --pkcs11: the next key made in the token, exit 0" "$?|$(cat "$H_ERR")" \
    '^0\|tokenctl: made the next master key in the token .* --master-key-previous, then run keys rotate-master --new-master-key-pkcs11$'
h_objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tokend-t51 --login --pin "$H_PIN" --list-objects 2>/dev/null)
expect_match "pkcs11-tool: the new key is a never-extractable, sensitive AES-256 key" \
    "$(grep -B1 -A2 'label: *master-a$' <<<"$h_objs" | tr '\n' ' ')" \
    'AES length 32 .*Access: +sensitive, always sensitive, never extractable'
expect_match "pkcs11-tool: beside it, a private data object (the wrapped sub-key root)" \
    "$h_objs" "Data object [0-9]+[[:space:]]+label: +'master-a'[[:space:]]+application: +'tokend:v1:subkey-root'[[:space:]].*flags: +private"

# tokend on the token key with the file as the previous version, before the rotation
tokend_stop F1
h_tokend_start A1 --master-key-pkcs11 "$H_URI_A" --master-key-pin-file "$H_DIR/pin" \
    --master-key-previous "$H_M1" || { fail "tokend starts on the token key, previous a file"; return; }
expect_match "tokend starts on the new token key with the file key as --master-key-previous (logged)" \
    "$(grep -c '"main: master key: pkcs11, previous version: file"' "$LOG_A1")" '^1$'
expect_eq "the API key made under the file key authenticates (the root moved into the token)" \
    "$(h_charge A1 "${H_TOKS[0]}")" 201

rm -f "$H_DIR/stop" "$H_DIR/load1"
h_charge_loop A1 "$H_DIR/load1" "$H_DIR/stop" &
H_LOAD=$!
T_PIDS+=("$H_LOAD")
sleep 0.5
echo start >>"$H_DIR/load1"
"${CTL_F[@]}" keys rotate-master --new-master-key-pkcs11 "$H_URI_A" --new-master-key-pin-file "$H_DIR/pin" \
    --batch 1 --pause-ms 100 >"$H_OUT" 2>"$T_DIR/t51-kill.err" &
H_ROT=$!
for i in $(seq 1 100); do
    [ "$(h_on 2)" -ge 8 ] && break
    sleep 0.1
done
kill -KILL "$H_ROT" 2>/dev/null
wait "$H_ROT" 2>/dev/null
H_V1=$(h_on 1)
H_V2=$(h_on 2)
if [ "$H_V1" -gt 0 ] && [ "$H_V2" -gt 0 ]; then
    ok "rotate-master file -> token killed half-way: $H_V2 key pairs under version 2, $H_V1 under 1"
else
    fail "rotate-master killed half-way" "(version 1: $H_V1, version 2: $H_V2)"
fi
"${CTL_F[@]}" keys status --master >"$H_OUT" 2>"$H_ERR"
expect_eq "keys status --master half-way: both versions, the rotation running" "$(cat "$H_OUT")" \
"master_version	wrapped_key_pairs	state	rotation
1	$H_V1	previous	master 1->2 running
2	$H_V2	current	master 1->2 running"
"${CTL_F[@]}" keys retire-master --version 1 >"$H_OUT" 2>"$H_ERR"
expect_eq "retire master version 1 while it wraps keys: refused, exit 1" "$?|$(cat "$H_ERR")" \
    "1|tokenctl: keys retire-master: master key version 1 still wraps $H_V1 tenant key pairs: finish the rotation first (keys rotate-master)"
# half-way, tokend opens the tenant keys still under the file key (version 1) and those
# re-wrapped in the token (version 2): a tenant of each tokenises with a key made now
h_half=""
for v in 1 2; do
    t=$(h_sql "SELECT tenant_id FROM vault.tenant_keys WHERE master_version = $v AND wrapped_dek IS NOT NULL ORDER BY tenant_id LIMIT 1")
    k=$("${CTL_F[@]}" key create --tenant "$t" --scopes tokens:write --test 2>/dev/null)
    h_half+="$v:$(curl -s --http2-prior-knowledge -H "authorization: Bearer $k" -H 'content-type: application/json' \
        --data-binary "$(h_card 4000056655665556)" -o /dev/null -w '%{http_code}' "$(h_url A1)/v1/tokens") "
done
expect_eq "half-way: a tenant under master version 1 and one under 2 both tokenise" "$h_half" "1:201 2:201 "
sleep 1 # charges half-way
"${CTL_F[@]}" keys rotate-master --new-master-key-pkcs11 "$H_URI_A" --new-master-key-pin-file "$H_DIR/pin" \
    --batch 5 >"$H_OUT" 2>"$H_ERR"
H_RC=$?
echo end >>"$H_DIR/load1"
sleep 1
touch "$H_DIR/stop"
wait "$H_LOAD"
expect_eq "rerun: exit 0, says it resumes" "$H_RC|$(head -1 "$H_ERR")" \
    "0|tokenctl: keys rotate-master: resuming the rotation to master key version 2 ($H_V2 rows done before)"
h_load_check "charges across the file -> token rotation, its kill and resume: none failed" "$H_DIR/load1"
expect_eq "every wrapped key pair under master version 2, 72-byte token format (IV, 12 zero bytes)" \
    "$(h_master)|$(h_sql "SELECT DISTINCT octet_length(wrapped_dek) || ' ' || encode(substring(wrapped_dek from 13 for 12), 'hex') FROM vault.tenant_keys")" \
    "2:31 |72 000000000000000000000000"
expect_eq "the rotation's row count adds up across both runs" \
    "$(h_sql "SELECT state, rows_done FROM vault.key_rotations WHERE kind = 'master' AND to_version = 2")" "done|31"

# retire version 1, restart on the token key alone
"${CTL_A[@]}" keys retire-master --version 2 >"$H_OUT" 2>"$H_ERR"
expect_eq "retire the current master version: refused, exit 1" "$?|$(cat "$H_ERR")" \
    "1|tokenctl: keys retire-master: master key version 2 is the current one: rotate to a new master key first (keys rotate-master)"
"${CTL_A[@]}" keys retire-master --version 1 >"$H_OUT" 2>"$H_ERR"
expect_match "retire master version 1, which wraps nothing now: exit 0" "$?|$(cat "$H_ERR")" \
    '^0\|tokenctl: retired master key version 1: no wrapped key uses it; destroy its key now'
"${CTL_A[@]}" keys retire-master --version 1 >"$H_OUT" 2>"$H_ERR"
expect_eq "retire it again: exit 1" "$?|$(cat "$H_ERR")" \
    "1|tokenctl: keys retire-master: master key version 1 is already retired"
"${CTL_A[@]}" keys status --master >"$H_OUT" 2>"$H_ERR"
expect_eq "keys status --master: version 1 retired, 2 current" "$(cat "$H_OUT")" \
"master_version	wrapped_key_pairs	state	rotation
1	0	retired	master 1->2 done
2	31	current	master 1->2 done"
expect_eq "audit: key.rotated and key.retired for the master key" \
    "$(h_sql "SELECT string_agg(action || ' ' || (detail->>'from_version') || '->' || (detail->>'to_version'), ',' ORDER BY id) FROM audit.events WHERE object = 'master_key' AND action IN ('key.rotated', 'key.retired')")" \
    "key.rotated 1->2,key.retired 1->1"
tokend_stop A1
h_tokend_start A2 --master-key-pkcs11 "$H_URI_A" --master-key-pin-file "$H_DIR/pin" ||
    { fail "tokend restarts on the token key alone"; return; }
ok "after retire, tokend restarts on the token key alone"
expect_eq "a token made under the file key charges" "$(h_charge A2 "${H_TOKS[3]}")" 201
out=$(h_post A2 /v1/tokens "$(h_card 5555555555554444)")
expect_eq "and a new card tokenises" "$(tail -1 <<<"$out")" 201
expect_eq "the file key alone is refused now: one line, exit 2" \
    "$(timeout 20 "$BUILD/tokend" --listen "127.0.0.1:$(free_port)" --db "$H_SDB" --master-key-file "$H_M1" >"$H_OUT" 2>"$H_ERR"; echo "$?|$(wc -l <"$H_ERR")|$(cat "$H_ERR")")" \
    "2|1|tokend: master key refused: it does not open the tenant keys wrapped under master key version 2 (give that version's file: --master-key-file, or --master-key-previous while a rotation runs)"

# --- token -> token (a new key object in the same token) ---------------------------------------
"${CTL_A[@]}" keys new-master --pkcs11 "$H_URI_B" >"$H_OUT" 2>"$H_ERR"
expect_match "keys new-master --pkcs11 from a token key (its PIN by default): exit 0" "$?|$(cat "$H_ERR")" \
    '^0\|tokenctl: made the next master key in the token .*--master-key-previous-pkcs11, then run'
tokend_stop A2
h_tokend_start B1 --master-key-pkcs11 "$H_URI_B" --master-key-pin-file "$H_DIR/pin" \
    --master-key-previous-pkcs11 "$H_URI_A" || { fail "tokend starts on key B, previous key A in the same token"; return; }
expect_match "tokend starts on token key B with token key A as --master-key-previous-pkcs11 (logged)" \
    "$(grep -c '"main: master key: pkcs11, previous version: pkcs11"' "$LOG_B1")" '^1$'
rm -f "$H_DIR/stop" "$H_DIR/load2"
h_charge_loop B1 "$H_DIR/load2" "$H_DIR/stop" &
H_LOAD=$!
T_PIDS+=("$H_LOAD")
sleep 0.5
echo start >>"$H_DIR/load2"
"${CTL_A[@]}" keys rotate-master --new-master-key-pkcs11 "$H_URI_A" >"$H_OUT" 2>"$H_ERR"
expect_eq "rotate-master to the current key: refused, one line, exit 2" "$?|$(cat "$H_ERR")" \
    "2|tokenctl: keys rotate-master: the new PKCS#11 key is the current master key"
"${CTL_A[@]}" keys rotate-master --new-master-key-pkcs11 "$H_URI_B" --batch 2 --pause-ms 30 >"$H_OUT" 2>"$H_ERR"
H_RC=$?
echo end >>"$H_DIR/load2"
sleep 1
touch "$H_DIR/stop"
wait "$H_LOAD"
expect_eq "rotate-master token -> token: exit 0" "$H_RC" 0
h_load_check "charges across the token -> token rotation: none failed" "$H_DIR/load2"
expect_eq "every wrapped key pair under master version 3" "$(h_master)" "3:31 "
"${CTL_B[@]}" keys retire-master --version 2 --destroy-pkcs11 "$H_URI_B" >"$H_OUT" 2>"$H_ERR"
expect_eq "retire-master --destroy-pkcs11 naming the current key: refused, nothing destroyed" \
    "$?|$(cat "$H_ERR")|$(h_sql "SELECT count(*) FROM audit.events WHERE action = 'key.retired' AND object = 'master_key' AND detail->>'from_version' = '2'")" \
    "1|tokenctl: keys retire-master: that key still opens tenant keys of master key version 3: not destroyed|0"
"${CTL_B[@]}" keys retire-master --version 2 --destroy-pkcs11 "$H_URI_A" >"$H_OUT" 2>"$H_ERR"
expect_eq "retire master version 2 and destroy key A in the token: exit 0" "$?|$(cat "$H_ERR")" \
    "0|tokenctl: retired master key version 2: no wrapped key uses it; its key and sub-key root object are destroyed in the token"
h_objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tokend-t51 --login --pin "$H_PIN" --list-objects 2>/dev/null)
expect_eq "pkcs11-tool: key A and its root object are gone, key B and its root stay" \
    "$(grep -c "label: *'\?master-a'\?$" <<<"$h_objs") $(grep -c "label: *'\?master-b'\?$" <<<"$h_objs")" "0 2"
tokend_stop B1
h_tokend_start B2 --master-key-pkcs11 "$H_URI_B" --master-key-pin-file "$H_DIR/pin" ||
    { fail "tokend restarts on key B alone"; return; }
expect_eq "restarted on key B alone: a token from the start charges, same API key" \
    "$(h_charge B2 "${H_TOKS[5]}")" 201
"${CTL_B[@]}" keys status --master >"$H_OUT" 2>"$H_ERR"
expect_eq "keys status --master after two rotations" "$(cat "$H_OUT")" \
"master_version	wrapped_key_pairs	state	rotation
1	0	retired	master 1->2 done
2	0	retired	master 2->3 done
3	31	current	master 2->3 done"

# --- wrong configurations: one line, exit 2, never the PIN ------------------------------------
h_refused() { # NAME EXPECTED_LINE tokend-args...
    local name=$1 want=$2
    shift 2
    timeout 20 "$BUILD/tokend" --listen "127.0.0.1:$(free_port)" --db "$H_SDB" "$@" >"$H_OUT" 2>"$H_ERR"
    expect_eq "$name: exit 2, one line" "$?|$(wc -l <"$H_ERR")|$(cat "$H_ERR")" "2|1|$want"
    expect_true "$name: the PIN is not printed" bash -c "! grep -qF -- '$H_PIN' '$H_ERR' '$H_OUT'"
}
H_BASE=(--master-key-pkcs11 "$H_URI_B" --master-key-pin-file "$H_DIR/pin")
h_refused "previous key URI names no key (destroyed key A)" \
    "tokend: cannot load the previous master key: PKCS#11 token 'tokend-t51' has no secret key 'master-a'" \
    "${H_BASE[@]}" --master-key-previous-pkcs11 "$H_URI_A"
h_refused "previous key URI names no token" \
    "tokend: cannot load the previous master key: PKCS#11 token 'nope' not found (module $SOFTHSM_MODULE)" \
    "${H_BASE[@]}" --master-key-previous-pkcs11 "pkcs11:token=nope;object=master-a?module-path=$SOFTHSM_MODULE"
h_refused "previous key URI malformed" \
    "tokend: cannot load the previous master key: not a PKCS#11 URI (pkcs11:token=...;object=...)" \
    "${H_BASE[@]}" --master-key-previous-pkcs11 "token=tokend-t51;object=master-a"
h_refused "previous key the same as the current one" \
    "tokend: cannot load the previous master key: previous master key is the current master key: $H_URI_B" \
    "${H_BASE[@]}" --master-key-previous-pkcs11 "$H_URI_B"
h_refused "wrong PIN for the previous key (same token)" \
    "tokend: cannot load the previous master key: PKCS#11 login to token 'tokend-t51' refused: wrong PIN (not the one this process logged in with)" \
    "${H_BASE[@]}" --master-key-previous-pkcs11 "$H_URI_B" --master-key-previous-pin-file "$H_DIR/bad.pin"
h_refused "wrong PIN for the new key in the token, previous a file" \
    "tokend: cannot load the master key: PKCS#11 login to token 'tokend-t51' refused: wrong PIN (CKR_PIN_INCORRECT)" \
    --master-key-pkcs11 "$H_URI_B" --master-key-pin-file "$H_DIR/bad.pin" --master-key-previous "$H_M1"
"$BUILD/tokenctl" --db "$H_ADB" --master-key-pkcs11 "pkcs11:token=tokend-t51;object=stranger?module-path=$SOFTHSM_MODULE" \
    --master-key-pin-file "$H_DIR/pin" keys hsm-init >"$H_OUT" 2>&1
h_refused "previous key of another key line (made by hsm-init)" \
    "tokend: cannot load the previous master key: previous master key is not of this key line (its sub-key root differs): pkcs11:token=tokend-t51;object=stranger?module-path=$SOFTHSM_MODULE" \
    "${H_BASE[@]}" --master-key-previous-pkcs11 "pkcs11:token=tokend-t51;object=stranger?module-path=$SOFTHSM_MODULE"
h_refused "a previous file and a previous token key both" \
    "tokend: bad configuration: give --master-key-previous or --master-key-previous-pkcs11, not both" \
    "${H_BASE[@]}" --master-key-previous "$H_M1" --master-key-previous-pkcs11 "$H_URI_A"
"${CTL_B[@]}" keys rotate-master --new-master-key-pkcs11 "pkcs11:token=tokend-t51;object=stranger?module-path=$SOFTHSM_MODULE" >"$H_OUT" 2>"$H_ERR"
expect_eq "tokenctl rotate-master to a token key of another line: one line, exit 2" \
    "$?|$(cat "$H_ERR")" \
    "2|tokenctl: keys rotate-master: the new PKCS#11 key does not carry this master key's sub-key root (API keys would stop working): make it with keys new-master --out FILE (or --pkcs11 URI)"
"${CTL_B[@]}" --master-key-previous-pkcs11 "$H_URI_B" --master-key-previous-pin-file "$H_DIR/bad.pin" tenant create "nope-$$" >"$H_OUT" 2>"$H_ERR"
expect_eq "tokenctl with a wrong previous PIN: one line, exit 2" "$?|$(cat "$H_ERR")" \
    "2|tokenctl: previous master key refused: PKCS#11 login to token 'tokend-t51' refused: wrong PIN (not the one this process logged in with)"
"${CTL_B[@]}" --master-key-previous-pkcs11 "$H_URI_A" tenant create "nope-$$" >"$H_OUT" 2>"$H_ERR"
expect_eq "tokenctl with a previous key URI that names no key: one line, exit 2" "$?|$(cat "$H_ERR")" \
    "2|tokenctl: previous master key refused: PKCS#11 token 'tokend-t51' has no secret key 'master-a'"

"${CTL_B[@]}" keys rotate-master --new-master-key-pkcs11 "$H_URI_A" --new-master-key-pin-file "$H_DIR/bad.pin" >"$H_OUT" 2>"$H_ERR"
expect_eq "tokenctl rotate-master with a wrong PIN for the new key: one line, exit 2" "$?|$(cat "$H_ERR")" \
    "2|tokenctl: keys rotate-master: new master key refused: PKCS#11 login to token 'tokend-t51' refused: wrong PIN (not the one this process logged in with)"
"$BUILD/tokenctl" --db "$H_ADB" --master-key-file "$H_M1" keys new-master --pkcs11 "$H_URI_A" --pin-file "$H_DIR/bad.pin" >"$H_OUT" 2>"$H_ERR"
expect_eq "tokenctl keys new-master --pkcs11 with a wrong PIN: one line, exit 2" "$?|$(cat "$H_ERR")" \
    "2|tokenctl: keys new-master: PKCS#11 login to token 'tokend-t51' refused: wrong PIN (CKR_PIN_INCORRECT)"

# --- token -> file: the token key's line carried out to a key file ----------------------------
H_M4="$T_DIR/t51-master4.key"
"${CTL_B[@]}" keys new-master --out "$H_M4" >"$H_OUT" 2>"$H_ERR"
expect_eq "keys new-master --out from a token key: exit 0, 128 hex characters" \
    "$?|$(head -c 128 "$H_M4" | tr -d '0-9a-f' | wc -c)|$(wc -c <"$H_M4")" "0|0|129"
tokend_stop B2
h_tokend_start B3 --master-key-file "$H_M4" --master-key-previous-pkcs11 "$H_URI_B" \
    --master-key-previous-pin-file "$H_DIR/pin" || { fail "tokend on the file key, previous in the token"; return; }
expect_eq "tokend on the new file key with the token key as previous: charges" \
    "$(h_charge B3 "${H_TOKS[6]}")" 201
"${CTL_B[@]}" keys rotate-master --new-master-key-file "$H_M4" >"$H_OUT" 2>"$H_ERR"
expect_eq "rotate-master token -> file: exit 0, every pair under version 4" "$?|$(h_master)" "0|4:31 "
expect_eq "after it, the same tokend still charges" "$(h_charge B3 "${H_TOKS[6]}")" 201
tokend_stop B3
h_tokend_start M4 --master-key-file "$H_M4" || { fail "tokend on the file key after token -> file"; return; }
expect_eq "tokend on the new file key alone: same API key, a token from the start charges" \
    "$(h_charge M4 "${H_TOKS[7]}")" 201
tokend_stop M4
h_refused "wrong PIN for the previous key, its token not logged in yet" \
    "tokend: cannot load the previous master key: PKCS#11 login to token 'tokend-t51' refused: wrong PIN (CKR_PIN_INCORRECT)" \
    --master-key-file "$H_M4" --master-key-previous-pkcs11 "$H_URI_B" --master-key-previous-pin-file "$H_DIR/bad.pin"
h_refused "a previous token key without any PIN" \
    "tokend: cannot load the previous master key: no PKCS#11 PIN: set --master-key-pin-file or pin-source=file:... in the URI" \
    --master-key-file "$H_M4" --master-key-previous-pkcs11 "$H_URI_B"
h_tokend_start M5 --master-key-file "$H_M4" --master-key-previous-pkcs11 "$H_URI_B&pin-source=file:$H_DIR/pin" ||
    { fail "tokend with the previous key's PIN from its URI's pin-source"; return; }
expect_eq "the previous key's PIN from its URI's pin-source: tokend starts and charges" \
    "$(h_charge M5 "${H_TOKS[8]}")" 201
tokend_stop M5
for l in A1 A2 B1 B2 B3; do
    v="LOG_$l"
    grep -qF -- "$H_PIN" "${!v}" && fail "tokend's log $l shows the PIN"
done
unset SOFTHSM2_CONF
