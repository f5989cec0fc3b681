# t_42_rotation.sh - online key rotation (issue #18): a tenant's data key rotated under a
# bounded charge load with zero failed charges; a rotation killed (kill -9) half-way resumes
# and every token stays chargeable; retire refused while a version is in use; status counts;
# audit events; the fingerprint key rotated only on explicit request (de-duplication breaks,
# by design); the master key rotated while tokend serves, then tokend restarted on the new key;
# wrong or missing key files refused with one line and exit 2. It runs in a database of its
# own: a master rotation re-wraps every tenant, and must neither touch the other files' tenants
# nor trip on one wrapped by another key (another provider's test).

R_OUT="$T_DIR/t42.out"
R_ERR="$T_DIR/t42.err"
R_DB=tokend_t42
"$PG_BIN/createdb" -h "$T_DIR/pg/run" -U postgres "$R_DB" || { fail "t_42's database"; return; }
T_ADMIN_DB=$(pg_conninfo "$T_DIR/pg" postgres "$R_DB")
T_SERVICE_DB=$(pg_conninfo "$T_DIR/pg" tokend_service "$R_DB")
"$BUILD/tokenctl" --db "$T_ADMIN_DB" migrate --dir sql >"$R_OUT" 2>&1 || { fail "t_42's migrations"; return; }
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
R_TEN=$("${CTL[@]}" tenant create "rot-$$" 2>/dev/null)
R_KEY=$("${CTL[@]}" key create --tenant "$R_TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
(umask 077 && printf '{"webhook_secret":"whsec_t42"}' >"$T_DIR/t42-gw.json")
R_GW=$("${CTL[@]}" gateway add --tenant "$R_TEN" --kind sandbox --credentials-file "$T_DIR/t42-gw.json" --test 2>/dev/null)
expect_match "fixture: tenant, key, a sandbox account with sealed credentials" "$R_TEN $R_GW" '^ten_.* .+$'
R_TOKEND_ARGS=(--rate-tokenise 0 --rate-charge 0)
tokend_start R42 "${R_TOKEND_ARGS[@]}" || { fail "tokend starts"; return; }
R_Y=$(($(date -u +%Y) + 1))
r_sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U postgres -d "$R_DB" -tAc "$1"; }
r_url() { local v="H2C_$1"; echo "http://127.0.0.1:${!v}"; }
r_post() { # NAME PATH BODY -> "<json>\n<status>"
    curl -s --http2-prior-knowledge -H "authorization: Bearer $R_KEY" -H 'content-type: application/json' \
        --data-binary "$3" -w '\n%{http_code}' "$(r_url "$1")$2"
}
r_card() { echo "{\"card\":{\"number\":\"$1\",\"exp_month\":12,\"exp_year\":$R_Y,\"cvc\":\"123\"}${2:+,$2}}"; }
r_refs() { r_sql "SELECT count(*) FROM vault.gateway_refs WHERE tenant_id = '$R_TEN' AND key_version = $1"; }

# --- fixture: 20 tokens to charge, then 1500 more made cheaply with h2load -------------------
R_TOKS=()
for i in $(seq 1 20); do
    R_TOKS+=("$(r_post R42 /v1/tokens "$(r_card 4242424242424242)" | sed '$d' | jq -r .id)")
done
expect_eq "20 tokens to charge" "$(printf '%s\n' "${R_TOKS[@]}" | grep -c '^tok_')" 20
r_card 5555555555554444 >"$T_DIR/t42-card.json"
h2load -n 1500 -c 2 -m 8 -d "$T_DIR/t42-card.json" -H "authorization: Bearer $R_KEY" \
    -H 'content-type: application/json' "$(r_url R42)/v1/tokens" >"$R_OUT" 2>&1
expect_match "h2load: 1500 tokens created" "$(grep -o '[0-9]* 2xx' "$R_OUT")" '^1500 2xx$'
R_NREFS=$(r_refs 1)
expect_eq "1520 tokens, each with a sealed reference, on version 1" \
    "$(r_sql "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$R_TEN' AND key_version = 1") $R_NREFS" "1520 1520"

# charge_loop NAME OUT STOPFILE: charges the 20 tokens round-robin, one status per line, until
# STOPFILE exists (at most 400 requests: the load is bounded)
r_charge_loop() {
    local i=0 s
    while [ ! -f "$3" ] && [ $i -lt 400 ]; do
        s=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $R_KEY" -H 'content-type: application/json' \
            --data-binary "{\"token\":\"${R_TOKS[$((i % 20))]}\",\"amount\":100,\"currency\":\"USD\"}" \
            -o /dev/null -w '%{http_code}' "$(r_url "$1")/v1/charges")
        echo "$s" >>"$2"
        i=$((i + 1))
    done
}
# r_load_check NAME OUTFILE: every charge 201, and charges were made before the rotation
# started, while it ran (the lines between the markers the script appends) and after it ended
r_load_check() {
    local before during after bad
    before=$(sed -n '/^start$/q;p' "$2" | grep -c '^201$')
    during=$(sed -n '/^start$/,/^end$/p' "$2" | grep -c '^201$')
    after=$(sed -n '/^end$/,$p' "$2" | grep -c '^201$')
    bad=$(grep -v '^start$\|^end$' "$2" | grep -vc '^201$')
    if [ "$before" -gt 0 ] && [ "$during" -ge "$3" ] && [ "$after" -gt 0 ] && [ "$bad" -eq 0 ]; then
        ok "$1 ($before before, $during during, $after after, 0 failed)"
    else
        fail "$1" "($before before, $during during, $after after: $(sort "$2" | uniq -c | tr '\n' ' '))"
    fi
}

# --- rotate-data under load -------------------------------------------------------------------
rm -f "$T_DIR/t42-stop" "$T_DIR/t42-load1"
r_charge_loop R42 "$T_DIR/t42-load1" "$T_DIR/t42-stop" &
R_LOAD=$!
T_PIDS+=("$R_LOAD")
sleep 0.5 # the loop's principal is cached with version 1 before the rotation starts
echo start >>"$T_DIR/t42-load1"
"${CTL[@]}" keys rotate-data --tenant "$R_TEN" --batch 100 --pause-ms 20 --settle-ms 3500 >"$R_OUT" 2>"$R_ERR"
R_RC=$?
echo end >>"$T_DIR/t42-load1"
sleep 1
touch "$T_DIR/t42-stop"
wait "$R_LOAD"
expect_eq "rotate-data exits 0" "$R_RC" 0
r_load_check "charges while the data key rotates: none failed" "$T_DIR/t42-load1" 5
expect_eq "every reference and token moved to version 2, none left on 1" \
    "$(r_refs 1) $(r_refs 2) $(r_sql "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$R_TEN' AND key_version = 2")" "0 $R_NREFS 1520"
expect_eq "the gateway account's credentials re-sealed under version 2" \
    "$(r_sql "SELECT key_version FROM vault.gateways WHERE tenant_id = '$R_TEN'")" 2
expect_match "plain progress lines off a terminal (done/total, rate, time left)" \
    "$(grep -m1 'rotate-data: [0-9]*/[0-9]* rows' "$R_ERR")" \
    '^tokenctl: rotate-data: [0-9]+/[0-9]+ rows \([0-9]+%\), [0-9]+ rows/s, [0-9]+ s left$'
expect_match "it ends with 3040 rows of 3040" "$(grep 'rows (' "$R_ERR" | tail -1)" 'rotate-data: 3040/3040 rows \(100%\)'
"${CTL[@]}" keys status --tenant "$R_TEN" >"$R_OUT" 2>"$R_ERR"
expect_eq "keys status: versions, states, row counts per version, master version, rotation" \
    "$(cut -f3,4,6- "$R_OUT")" \
"version	state	tokens	gateway_refs	gateways	webhooks	master_version	rotation
1	previous	0	0	0	0	1	data 1->2 done
2	active	1520	$R_NREFS	1	0	1	data 1->2 done"
expect_eq "audit: key.rotation_started and key.rotated with versions and rows" \
    "$(r_sql "SELECT action || ' ' || (detail->>'kind') || ' ' || (detail->>'from_version') || '->' || (detail->>'to_version') || ' ' || (detail->>'rows')
              FROM audit.events WHERE tenant_id = '$R_TEN' AND action LIKE 'key.rot%' ORDER BY id")" \
"key.rotation_started data 1->2 0
key.rotated data 1->2 3040"

# --- retire -------------------------------------------------------------------------------------
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 2 >"$R_OUT" 2>"$R_ERR"
expect_eq "retire the active version: refused, exit 1" "$?|$(cat "$R_ERR")" \
    "1|tokenctl: keys retire: version 2 of tenant $R_TEN is active: rotate to a new version first (keys rotate-data --tenant $R_TEN)"
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 1 >"$R_OUT" 2>"$R_ERR"
expect_eq "retire version 1, which no row uses: exit 0" "$?" 0
expect_eq "its wrapped keys are destroyed" \
    "$(r_sql "SELECT state, wrapped_dek IS NULL AND wrapped_fpk IS NULL FROM vault.tenant_keys WHERE tenant_id = '$R_TEN' AND version = 1")" "retired|t"
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 1 >"$R_OUT" 2>"$R_ERR"
expect_eq "retire it again: exit 1, said" "$?|$(cat "$R_ERR")" "1|tokenctl: keys retire: version 1 of tenant $R_TEN is already retired"
"${CTL[@]}" keys retire --tenant "$R_TEN" >"$R_OUT" 2>"$R_ERR"
expect_eq "retire without --version: usage, exit 2" "$?|$(cat "$R_ERR")" "2|tokenctl: usage: keys retire --tenant T --version N"
expect_eq "audit: key.retired" \
    "$(r_sql "SELECT count(*) FROM audit.events WHERE tenant_id = '$R_TEN' AND action = 'key.retired' AND (detail->>'from_version') = '1'")" 1

# --- kill -9 half-way, then resume --------------------------------------------------------------
"${CTL[@]}" keys rotate-data --tenant "$R_TEN" --batch 50 --pause-ms 150 --settle-ms 0 >"$R_OUT" 2>"$T_DIR/t42-kill.err" &
R_ROT=$!
for i in $(seq 1 100); do
    [ "$(r_refs 3)" -ge 200 ] && break
    sleep 0.1
done
kill -KILL "$R_ROT" 2>/dev/null
wait "$R_ROT" 2>/dev/null
R_V2=$(r_refs 2)
R_V3=$(r_refs 3)
if [ "$R_V2" -gt 0 ] && [ "$R_V3" -gt 0 ]; then
    ok "killed half-way: $R_V3 references on version 3, $R_V2 still on 2"
else
    fail "killed half-way" "(version 2: $R_V2, version 3: $R_V3)"
fi
expect_eq "the rotation is recorded as running" \
    "$(r_sql "SELECT kind, from_version, to_version FROM vault.key_rotations WHERE tenant_id = '$R_TEN' AND state = 'running'")" "data|2|3"
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 2 >"$R_OUT" 2>"$R_ERR"
R_RC=$?
expect_match "retire version 2 while rows use it: refused, exit 1, with the counts" "$R_RC|$(cat "$R_ERR")" \
    "^1\|tokenctl: keys retire: version 2 of tenant $R_TEN is still in use \([0-9]+ tokens, $R_V2 gateway references, 0 gateway accounts, 0 webhook endpoints\): finish the rotation first"
"${CTL[@]}" keys status --tenant "$R_TEN" >"$R_OUT" 2>"$R_ERR"
expect_eq "keys status half-way: rows on both versions, the rotation running" \
    "$(cut -f3,4,7,11 "$R_OUT" | sed 1d)" \
"1	retired	0	data 1->2 done
2	previous	$R_V2	data 2->3 running
3	active	$R_V3	data 2->3 running"
# charges half-way, on rows of both versions (a tokend that cached version 2 as active)
R_MIXED=$(r_sql "(SELECT token_id FROM vault.gateway_refs WHERE tenant_id = '$R_TEN' AND key_version = 2 LIMIT 5)
                 UNION ALL (SELECT token_id FROM vault.gateway_refs WHERE tenant_id = '$R_TEN' AND key_version = 3 LIMIT 5)")
R_BAD=0
for t in $R_MIXED; do
    s=$(r_post R42 /v1/charges "{\"token\":\"$t\",\"amount\":100,\"currency\":\"USD\"}" | tail -1)
    [ "$s" = 201 ] || R_BAD=$((R_BAD + 1))
done
expect_eq "half-way: tokens on either version charge (10 of 10)" "$R_BAD" 0
"${CTL[@]}" keys rotate-data --tenant "$R_TEN" --batch 500 --settle-ms 0 >"$R_OUT" 2>"$R_ERR"
expect_eq "rerun: exit 0" "$?" 0
expect_match "rerun: says it resumes" "$(head -1 "$R_ERR")" \
    "^tokenctl: keys rotate-data: resuming the rotation of tenant $R_TEN from version 2 to 3 \([0-9]+ rows done before\)$"
expect_match "rerun: continues from where it stopped, not from 0" "$(grep 'rows (' "$R_ERR" | head -1)" \
    'rotate-data: ([3-9][0-9]{2}|[0-9]{4})/3040 rows'
expect_eq "after resuming: every row on version 3" "$(r_refs 2) $(r_refs 3)" "0 $R_NREFS"
expect_eq "the rotation's row count adds up across both runs" \
    "$(r_sql "SELECT state, rows_done FROM vault.key_rotations WHERE tenant_id = '$R_TEN' AND to_version = 3")" "done|3040"
# every token stays chargeable: one charge each, 1520 requests over one curl process
R_CFG="$T_DIR/t42-charges.cfg"
(umask 077 && : >"$R_CFG")
for t in $(r_sql "SELECT id FROM vault.tokens WHERE tenant_id = '$R_TEN'"); do
    # options between two `next` are that transfer's own: every block carries its headers.
    # HTTP/1.1 (the h2c listener speaks it too): curl 7.88 in parallel mode loses transfers
    # multiplexed over a prior-knowledge HTTP/2 connection
    [ -s "$R_CFG" ] && echo next >>"$R_CFG"
    printf 'url = "%s/v1/charges"\nheader = "authorization: Bearer %s"\nheader = "content-type: application/json"\ndata-binary = "{\\"token\\":\\"%s\\",\\"amount\\":100,\\"currency\\":\\"USD\\"}"\nwrite-out = "%%{http_code}\\n"\noutput = /dev/null\nsilent\n' \
        "$(r_url R42)" "$R_KEY" "$t" >>"$R_CFG"
done
curl -s -Z --parallel-max 4 -K "$R_CFG" >"$R_OUT" 2>"$R_ERR"
expect_eq "after the kill and resume, every one of the 1520 tokens charges (201)" \
    "$(sort "$R_OUT" | uniq -c | awk '{print $2 ":" $1}' | tr '\n' ' ')" "201:1520 "

# --- a terminal gets a progress bar -------------------------------------------------------------
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 2 >/dev/null 2>&1
script -qec "$(printf '%q ' "${CTL[@]}") keys rotate-data --tenant $R_TEN --batch 200 --settle-ms 0" /dev/null >"$R_OUT" 2>&1
expect_eq "rotate-data on a terminal: exit 0" "$?" 0
expect_match "on a terminal: a bar with rows done/total, rate and time left" "$(tr '\r' '\n' <"$R_OUT" | grep -m1 'rotate-data \[')" \
    '^rotate-data \[[#.]{30}\] [0-9]+/3040 rows +[0-9]+%  [0-9]+ rows/s  [0-9]+:[0-9]{2} left'
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 3 >/dev/null 2>&1

# --- rows left on a finished rotation's old version get moved, without a new version ----------
# (what a tokend that missed the reload could leave: played by a rotation killed half-way and
# then marked done by hand)
"${CTL[@]}" keys rotate-data --tenant "$R_TEN" --batch 50 --pause-ms 150 --settle-ms 0 >"$R_OUT" 2>"$R_ERR" &
R_ROT=$!
for i in $(seq 1 100); do
    [ "$(r_refs 5)" -ge 100 ] && break
    sleep 0.1
done
kill -KILL "$R_ROT" 2>/dev/null
wait "$R_ROT" 2>/dev/null
r_sql "UPDATE vault.key_rotations SET state = 'done' WHERE tenant_id = '$R_TEN' AND state = 'running'" >/dev/null
R_V4=$(r_refs 4)
"${CTL[@]}" keys rotate-data --tenant "$R_TEN" --settle-ms 0 >"$R_OUT" 2>"$R_ERR"
expect_eq "stray rows on the 'previous' version: moved to the active one, exit 0" \
    "$?|$(head -1 "$R_ERR")" "0|tokenctl: keys rotate-data: version 4 of tenant $R_TEN still has rows: moving them to version 5"
expect_eq "no new version; none left on 4 ($R_V4 were)" \
    "$(r_sql "SELECT max(version) FROM vault.tenant_keys WHERE tenant_id = '$R_TEN'") $(r_refs 4) $(r_refs 5)" "5 0 $R_NREFS"
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 4 >/dev/null 2>&1

# --- fingerprint key: explicit opt-in, de-duplication breaks as documented ----------------------
out=$(r_post R42 /v1/tokens "$(r_card 4242424242424242 '"deduplicate":true')")
expect_match "before: the same card de-duplicates to an existing token (200)" "$(tail -1 <<<"$out")" '^200$'
R_OLD_DUP=$(sed '$d' <<<"$out" | jq -r .id)
"${CTL[@]}" keys rotate-fingerprint --tenant "$R_TEN" >"$R_OUT" 2>"$R_ERR"
expect_eq "rotate-fingerprint without --yes-break-dedup: refused, exit 2, says why" "$?|$(cat "$R_ERR")" \
    "2|tokenctl: keys rotate-fingerprint: a new fingerprint key means cards tokenised from now on never de-duplicate against older tokens (SECURITY.md): add --yes-break-dedup"
"${CTL[@]}" keys rotate-data --tenant "$R_TEN" --settle-ms 0 >/dev/null 2>&1 # v6 active, v5 previous
"${CTL[@]}" keys rotate-fingerprint --tenant "$R_TEN" --yes-break-dedup --settle-ms 0 >"$R_OUT" 2>"$R_ERR"
expect_match "a 'previous' version not retired yet: refused, exit 1" "$?|$(tail -1 "$R_ERR")" \
    "^1\|tokenctl: keys rotate-fingerprint: version 5 of tenant $R_TEN is still 'previous': retire it first"
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 5 >/dev/null 2>&1
"${CTL[@]}" keys rotate-fingerprint --tenant "$R_TEN" --yes-break-dedup --settle-ms 3500 >"$R_OUT" 2>"$R_ERR"
expect_eq "rotate-fingerprint --yes-break-dedup: exit 0" "$?" 0
out=$(r_post R42 /v1/tokens "$(r_card 4242424242424242 '"deduplicate":true')")
R_NEW_DUP=$(sed '$d' <<<"$out" | jq -r .id)
expect_match "after: the same card makes a new token (201), not the old one" \
    "$(tail -1 <<<"$out") $([ "$R_NEW_DUP" != "$R_OLD_DUP" ] && echo differs)" '^201 differs$'
out=$(r_post R42 /v1/tokens "$(r_card 4242424242424242 '"deduplicate":true')")
expect_eq "cards tokenised after the rotation de-duplicate among themselves" \
    "$(tail -1 <<<"$out") $(sed '$d' <<<"$out" | jq -r .id)" "200 $R_NEW_DUP"
out=$(r_post R42 /v1/charges "{\"token\":\"$R_OLD_DUP\",\"amount\":100,\"currency\":\"USD\"}")
expect_eq "older tokens still charge" "$(tail -1 <<<"$out")" 201
expect_eq "audit: key.rotated kind fingerprint" \
    "$(r_sql "SELECT count(*) FROM audit.events WHERE tenant_id = '$R_TEN' AND action = 'key.rotated' AND detail->>'kind' = 'fingerprint'")" 1
"${CTL[@]}" keys retire --tenant "$R_TEN" --version 6 >/dev/null 2>&1

# --- master key ---------------------------------------------------------------------------------
M2="$T_DIR/master2.key"
"${CTL[@]}" keys new-master --out "$M2" >"$R_OUT" 2>"$R_ERR"
expect_eq "keys new-master: exit 0, a 0600 file of 128 hex characters" \
    "$?|$(stat -c %a "$M2")|$(head -c 128 "$M2" | tr -d '0-9a-f' | wc -c)|$(wc -c <"$M2")" "0|600|0|129"
"${CTL[@]}" keys new-master --out "$M2" >"$R_OUT" 2>"$R_ERR"
expect_match "keys new-master never overwrites: exit 2" "$?|$(cat "$R_ERR")" "^2\|tokenctl: keys new-master: cannot create $M2 \(it must not exist yet\)"
"${CTL[@]}" keys rotate-master --new-master-key-file "$T_DIR/nope.key" >"$R_OUT" 2>"$R_ERR"
expect_eq "rotate-master, missing new key file: one line, exit 2" "$?|$(cat "$R_ERR")" \
    "2|tokenctl: keys rotate-master: new master key refused: master key file not found: $T_DIR/nope.key"
make_master_key "$T_DIR/stranger.key"
"${CTL[@]}" keys rotate-master --new-master-key-file "$T_DIR/stranger.key" >"$R_OUT" 2>"$R_ERR"
expect_eq "rotate-master, a key of another line (API keys would break): one line, exit 2" "$?|$(wc -l <"$R_ERR")|$(grep -c 'does not carry this master key' "$R_ERR")" "2|1|1"

# tokenctl on the next key alone cannot open keys still under the current one; with it as
# --master-key-previous it can (its other commands keep working while a rotation is half done)
"${CTL[@]}" --master-key-file "$M2" gateway add --tenant "$R_TEN" --kind sandbox \
    --credentials-file "$T_DIR/t42-gw.json" --test >"$R_OUT" 2>"$R_ERR"
expect_eq "tokenctl on the next master key alone, before the rotation: the tenant's keys do not open" \
    "$?|$(tail -1 "$R_ERR")" "1|tokenctl: gateway add: the tenant's keys do not open with this master key"
"${CTL[@]}" --master-key-file "$M2" --master-key-previous "$T_DIR/master.key" gateway add --tenant "$R_TEN" \
    --kind sandbox --credentials-file "$T_DIR/t42-gw.json" --priority 200 --test >"$R_OUT" 2>"$R_ERR"
expect_match "with --master-key-previous: they do (gateway add, exit 0)" "$?|$(cat "$R_OUT")" '^0\|.+$'

# tokend restarted with the next key and the current one as previous, before the rotation
tokend_stop R42
tokend_start R42B "${R_TOKEND_ARGS[@]}" --master-key-file "$M2" --master-key-previous "$T_DIR/master.key" ||
    { fail "tokend starts with --master-key-previous"; return; }
rm -f "$T_DIR/t42-stop" "$T_DIR/t42-load2"
r_charge_loop R42B "$T_DIR/t42-load2" "$T_DIR/t42-stop" &
R_LOAD=$!
T_PIDS+=("$R_LOAD")
sleep 0.5 # tenant keys cached, opened from their version-1 wrapping
echo start >>"$T_DIR/t42-load2"
"${CTL[@]}" keys rotate-master --new-master-key-file "$M2" --batch 1 >"$R_OUT" 2>"$R_ERR"
R_RC=$?
echo end >>"$T_DIR/t42-load2"
sleep 3.5 # past the auth cache TTL: the principal is reloaded from the re-wrapped keys
touch "$T_DIR/t42-stop"
wait "$R_LOAD"
expect_eq "rotate-master exits 0" "$R_RC" 0
r_load_check "charges while the master key rotates and after: none failed" "$T_DIR/t42-load2" 0
expect_eq "every live wrapped key is under master version 2" \
    "$(r_sql "SELECT DISTINCT master_version FROM vault.tenant_keys WHERE wrapped_dek IS NOT NULL")" 2
expect_match "audit: key.rotated for the master key, 1 -> 2, with its row count" \
    "$(r_sql "SELECT detail->>'kind', detail->>'from_version', detail->>'to_version', detail->>'rows' FROM audit.events WHERE action = 'key.rotated' AND object = 'master_key' ORDER BY id DESC LIMIT 1")" \
    '^master\|1\|2\|[1-9][0-9]*$'
tokend_stop R42B
tokend_start R42C "${R_TOKEND_ARGS[@]}" --master-key-file "$M2" || { fail "tokend starts on the new master key alone"; return; }
out=$(r_post R42C /v1/charges "{\"token\":\"${R_TOKS[0]}\",\"amount\":100,\"currency\":\"USD\"}")
expect_eq "tokend restarted on the new master key alone: a token made before charges" "$(tail -1 <<<"$out")" 201
out=$(r_post R42C /v1/tokens "$(r_card 4000056655665556)")
expect_eq "and tokenises" "$(tail -1 <<<"$out")" 201
tokend_stop R42C

# a wrong or missing key file: tokend refuses at start, one line, exit 2
r_tokend_refusal() { # ARGS... -> "<exit code>|<lines>|<last line>"
    local p
    p=$(free_port)
    timeout 20 "$BUILD/tokend" --listen "127.0.0.1:$p" --db "$T_SERVICE_DB" --threads 1 "$@" >"$R_OUT" 2>"$R_ERR"
    echo "$?|$(wc -l <"$R_ERR")|$(tail -1 "$R_ERR")"
}
expect_eq "tokend on the old master key after the rotation: refused, one line, exit 2" \
    "$(r_tokend_refusal --master-key-file "$T_DIR/master.key")" \
    "2|1|tokend: master key refused: it does not open the tenant keys wrapped under master key version 2 (give that version's file: --master-key-file, or --master-key-previous while a rotation runs)"
expect_eq "tokend with a missing --master-key-previous: refused, one line, exit 2" \
    "$(r_tokend_refusal --master-key-file "$M2" --master-key-previous "$T_DIR/nope.key")" \
    "2|1|tokend: cannot load the previous master key: previous master key file not found: $T_DIR/nope.key"
expect_eq "tokend with a previous key of another line: refused, one line, exit 2" \
    "$(r_tokend_refusal --master-key-file "$M2" --master-key-previous "$T_DIR/stranger.key")" \
    "2|1|tokend: cannot load the previous master key: previous master key is not of this key line (its sub-key root differs): $T_DIR/stranger.key"

# back to a key of the same line without a carried root (the first key itself): master version 3
"${CTL[@]}" --master-key-file "$M2" keys rotate-master --new-master-key-file "$T_DIR/master.key" >"$R_OUT" 2>"$R_ERR"
expect_eq "rotate back to the suite's master key: exit 0, master version 3 everywhere" \
    "$?|$(r_sql "SELECT DISTINCT master_version FROM vault.tenant_keys WHERE wrapped_dek IS NOT NULL")" "0|3"
# a tenant wrapped by another key (another provider, a restore from elsewhere) is the newest row
# of the version: the start-up check still passes on the others, and only that tenant fails
"$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/stranger.key" tenant create "stranger-$$" >/dev/null 2>&1
expect_eq "a foreign tenant's keys are the newest of master version 3" \
    "$(r_sql "SELECT t.name FROM vault.tenant_keys k JOIN vault.tenants t ON t.id = k.tenant_id
              WHERE k.master_version = 3 ORDER BY k.created_at DESC LIMIT 1")" "stranger-$$"
tokend_start R42D "${R_TOKEND_ARGS[@]}" || { fail "tokend starts beside a foreign tenant"; return; }
ok "tokend starts on the suite's key beside a tenant it cannot open"
out=$(r_post R42D /v1/charges "{\"token\":\"${R_TOKS[1]}\",\"amount\":100,\"currency\":\"USD\"}")
expect_eq "and charges" "$(tail -1 <<<"$out")" 201
tokend_stop R42D
