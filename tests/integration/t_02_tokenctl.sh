# t_02_tokenctl.sh - tokenctl's tenant, API key and audit commands against the
# suite's database, and the audit chain check against a scratch database that
# the test tampers with (the suite's own chain must stay intact for later files).

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
OUT="$T_DIR/t02.out"
ERR="$T_DIR/t02.err"
SECRETS=()

# ctl ARGS...: runs tokenctl, stdout in $OUT, stderr in $ERR; returns its exit code
ctl() { "${CTL[@]}" "$@" >"$OUT" 2>"$ERR"; }

# --- tenants ---------------------------------------------------------------------------
ctl tenant create "Acme t02" --bin 8 --cvc-optional
rc=$?
ten=$(cat "$OUT")
expect_eq "tenant create exits 0" "$rc" 0
expect_match "tenant create prints a tenant id" "$ten" '^ten_[0-9A-Za-z]{22}$'
expect_eq "tenant create prints exactly one line" "$(wc -l <"$OUT")" 1
expect_eq "tenant stored with bin_mode 8 and cvc_optional" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT name, bin_mode, cvc_optional FROM vault.tenants WHERE id = '$ten'")" \
    "Acme t02|8|t"
expect_eq "tenant has one active version-1 key pair of 72-byte wrapped keys" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT version, state, length(wrapped_dek), length(wrapped_fpk) FROM vault.tenant_keys WHERE tenant_id = '$ten'")" \
    "1|active|72|72"
expect_eq "tenant.created audit event" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT actor, object, detail->>'name' FROM audit.events WHERE action = 'tenant.created' AND tenant_id = '$ten'")" \
    "tokenctl|$ten|Acme t02"

ctl tenant create "Acme t02"
rc=$?
expect_eq "duplicate tenant name: exit 1" "$rc" 1
expect_match "duplicate tenant name: clear message" "$(cat "$ERR")" "^tokenctl: .*already exists"
expect_eq "duplicate tenant name: nothing on stdout" "$(cat "$OUT")" ""
expect_eq "duplicate tenant name: no second tenant" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.tenants WHERE name = 'Acme t02'")" 1

ctl tenant create "Bad bin" --bin 7
expect_eq "tenant create --bin 7: usage exit 2" "$?" 2
"$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/nope.key" tenant create "No key" \
    >"$OUT" 2>"$ERR"
expect_eq "tenant create without a readable master key: exit 1" "$?" 1
expect_match "missing master key: the reason is given" "$(cat "$ERR")" '^tokenctl: master key refused: .*not found'
cp "$T_DIR/master.key" "$T_DIR/open.key" && chmod 644 "$T_DIR/open.key"
"$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/open.key" tenant create "No key" \
    >"$OUT" 2>"$ERR"
expect_eq "master key readable by others is refused" "$?" 1
expect_match "open master key: the reason is given" "$(cat "$ERR")" 'group or others'
rm -f "$T_DIR/open.key"
TOKEND_MASTER_KEY_FILE="$T_DIR/master.key" "$BUILD/tokenctl" --db "$T_ADMIN_DB" \
    tenant create "Env t02" >"$OUT" 2>"$ERR"
expect_eq "TOKEND_MASTER_KEY_FILE is honoured" "$?" 0
ten2=$(cat "$OUT")

ctl tenant list
rc=$?
expect_eq "tenant list exits 0" "$rc" 0
expect_eq "tenant list header" "$(head -n 1 "$OUT")" "$(printf 'id\tname\tbin_mode\tcvc_optional\tcreated_at')"
expect_match "tenant list shows the tenant" "$(grep "^$ten" "$OUT")" \
    "^$ten	Acme t02	8	true	[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"

# --- API keys --------------------------------------------------------------------------
ctl key create --tenant "$ten" --scopes tokens:write,tokens:read
rc=$?
sk=$(cat "$OUT")
SECRETS+=("$sk")
expect_eq "key create (test secret key) exits 0" "$rc" 0
expect_match "test secret key: sk_test_ and 43 base62 characters" "$sk" '^sk_test_[0-9A-Za-z]{43}$'
expect_eq "secret key is 51 characters" "${#sk}" 51
expect_eq "key create prints exactly one line" "$(wc -l <"$OUT")" 1
kid=$(sed -nE 's/^tokenctl: created key (key_[0-9A-Za-z]{22}) .*/\1/p' "$ERR")
expect_match "key create notes the key id on stderr" "$kid" '^key_[0-9A-Za-z]{22}$'
expect_eq "key stored with prefix, hint, scopes, test mode" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT tenant_id, prefix, hint, publishable, livemode, scopes, origins, length(secret_hash) FROM vault.api_keys WHERE id = '$kid'")" \
    "$ten|sk_test_|${sk: -4}|f|f|{tokens:write,tokens:read}|{}|32"
expect_eq "key.created audit event with scopes, livemode, publishable" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT tenant_id, object, detail::text FROM audit.events WHERE action = 'key.created' AND object = '$kid'")" \
    "$ten|$kid|{\"scopes\": [\"tokens:write\", \"tokens:read\"], \"livemode\": false, \"publishable\": false}"

ctl key create --tenant "Acme t02" --scopes admin,reports:read --live
rc=$?
lk=$(cat "$OUT")
SECRETS+=("$lk")
expect_eq "live key by tenant name exits 0" "$rc" 0
expect_match "live key: sk_live_" "$lk" '^sk_live_[0-9A-Za-z]{43}$'

ctl key create --tenant "$ten" --publishable --origin https://shop.example.com \
    --origin http://localhost:3000 --origin HTTPS://Shop.Example.com:443
rc=$?
pk=$(cat "$OUT")
SECRETS+=("$pk")
pkid=$(sed -nE 's/^tokenctl: created key (key_[0-9A-Za-z]{22}) .*/\1/p' "$ERR")
expect_eq "publishable key exits 0" "$rc" 0
expect_match "publishable key: pk_test_" "$pk" '^pk_test_[0-9A-Za-z]{43}$'
# issue #15: its own scope, tokens:create (tokens:write would also let a page's script redact)
expect_eq "publishable key: scopes {tokens:create}, origins normalised and deduplicated" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT publishable, scopes, origins FROM vault.api_keys WHERE id = '$pkid'")" \
    "t|{tokens:create}|{https://shop.example.com,http://localhost:3000}"

ctl key create --tenant "$ten" --publishable
expect_eq "publishable key without --origin: refused (exit 2)" "$?" 2
expect_match "publishable without origin: message" "$(cat "$ERR")" '^tokenctl: .*origin'
expect_eq "refused key: nothing on stdout" "$(cat "$OUT")" ""
for bad in https://shop.example.com/ https://shop.example.com/path http://shop.example.com \
    ftp://x.example https://user@x.example 'https://x.example:0' 'https://x.example:65536' \
    'https://-x.example' 'https://x..example' 'https://' 'https://x.example?q=1'; do
    ctl key create --tenant "$ten" --publishable --origin "$bad"
    rc=$?
    [ "$rc" = 2 ] || fail "origin $bad refused" "(exit $rc)"
done
ok "bad origins refused (trailing slash, path, plain http, other schemes, user info, ports, labels, query)"
ctl key create --tenant "$ten" --scopes tokens:write,tokens:delete
expect_eq "unknown scope refused (exit 2)" "$?" 2
expect_match "unknown scope: message names it" "$(cat "$ERR")" "tokens:delete"
ctl key create --tenant "$ten" --scopes ""
expect_eq "empty scopes refused" "$?" 2
ctl key create --tenant "$ten" --scopes tokens:read,
expect_eq "empty scope element refused" "$?" 2
ctl key create --tenant "$ten" --scopes tokens:read --publishable --origin https://a.example
expect_eq "--scopes with --publishable refused" "$?" 2
ctl key create --tenant "$ten" --scopes tokens:read --origin https://a.example
expect_eq "--origin on a secret key refused" "$?" 2
ctl key create --tenant "$ten" --scopes tokens:read --live --test
expect_eq "--live with --test refused" "$?" 2
ctl key create --tenant "no such tenant t02" --scopes tokens:read
expect_eq "unknown tenant: exit 1" "$?" 1
expect_match "unknown tenant: message" "$(cat "$ERR")" "no such tenant"

ctl key list
rc=$?
expect_eq "key list exits 0" "$rc" 0
expect_eq "key list header" "$(head -n 1 "$OUT")" \
    "$(printf 'id\ttenant\tkey\tscopes\torigins\tlivemode\trevoked_at\tcreated_at')"
expect_match "key list shows prefix…hint and scopes" "$(grep "^$kid" "$OUT")" \
    "^$kid	$ten	sk_test_…${sk: -4}	tokens:write,tokens:read	-	false	-	[0-9T:Z-]+$"
leaked=0
for s in "${SECRETS[@]}"; do grep -qF "$s" "$OUT" && leaked=1; done
expect_eq "key list never prints a secret" "$leaked" 0
ctl key list --tenant "Env t02"
expect_eq "key list --tenant with no keys: header only" "$(wc -l <"$OUT")" 1
ctl key list --tenant "$ten"
expect_eq "key list --tenant: the tenant's 3 keys" "$(($(wc -l <"$OUT") - 1))" 3

"$PG_BIN/pg_dump" -h "$T_DIR/pg/run" -U postgres tokend >"$T_DIR/t02.dump" 2>/dev/null
expect_true "pg_dump of the database succeeds" test -s "$T_DIR/t02.dump"
leaked=0
for s in "${SECRETS[@]}"; do grep -qF "$s" "$T_DIR/t02.dump" && leaked=1; done
expect_eq "the database never contains a secret" "$leaked" 0
rm -f "$T_DIR/t02.dump"

ctl key revoke "$kid"
expect_eq "key revoke exits 0" "$?" 0
expect_eq "revoked_at is set" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT revoked_at IS NOT NULL FROM vault.api_keys WHERE id = '$kid'")" t
expect_eq "key.revoked audit event" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE action = 'key.revoked' AND object = '$kid' AND tenant_id = '$ten'")" 1
ctl key list --tenant "$ten"
expect_match "key list shows the revocation time" "$(grep "^$kid" "$OUT")" \
    "	false	[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z	[0-9T:Z-]+$"
ctl key revoke "$kid"
expect_eq "second revoke: exit 1" "$?" 1
expect_match "second revoke: already revoked" "$(cat "$ERR")" "already revoked"
ctl key revoke key_0000000000000000000000
expect_eq "revoke of an unknown key: exit 1" "$?" 1
expect_match "revoke of an unknown key: no such key" "$(cat "$ERR")" "^tokenctl: .*no such key"

# --- audit chain -----------------------------------------------------------------------
ctl audit verify
rc=$?
expect_eq "audit verify exits 0" "$rc" 0
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events")
expect_eq "audit verify: chain intact" "$(cat "$OUT")" "audit: $n events, chain intact"

# tampering happens in a scratch database, so the suite's chain stays intact
TAMPER_DB="host=$T_DIR/pg/run user=postgres dbname=tokend_tamper"
tpsql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U postgres -d tokend_tamper "$@"; }
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists tokend_tamper 2>/dev/null
if "$PG_BIN/createdb" -h "$T_DIR/pg/run" -U postgres tokend_tamper &&
    "$BUILD/tokenctl" --db "$TAMPER_DB" migrate --dir sql >/dev/null 2>"$ERR"; then
    TCTL=("$BUILD/tokenctl" --db "$TAMPER_DB" --master-key-file "$T_DIR/master.key")
    "${TCTL[@]}" audit verify >"$OUT" 2>"$ERR"
    expect_eq "empty audit log verifies" "$?:$(cat "$OUT")" "0:audit: 0 events, chain intact"
    tt=$("${TCTL[@]}" tenant create "Tamper" 2>/dev/null)
    for i in 1 2 3 4; do
        "${TCTL[@]}" key create --tenant "$tt" --scopes tokens:read >/dev/null 2>&1
    done
    # a few thousand more rows, so the cursor has to FETCH more than once
    tpsql -c "INSERT INTO audit.events (actor, action) SELECT 'test', 'bulk' FROM generate_series(1, 12000)"
    "${TCTL[@]}" audit verify >"$OUT" 2>"$ERR"
    expect_eq "12005 events across several FETCHes verify" "$?:$(cat "$OUT")" \
        "0:audit: 12005 events, chain intact"

    # sql/011: rows are chained in blocks (digests of the rows in an id range, hash linked
    # to the previous block); verify chained up to 10,000 rows per block
    expect_true "the rows are chained in more than one block" \
        test "$(tpsql -tAc "SELECT count(*) FROM audit.blocks")" -ge 2
    tv() { "${TCTL[@]}" audit verify >"$OUT" 2>"$ERR"; echo "$?:$(cat "$OUT")"; }
    e1=$(tpsql -tAc "SELECT id FROM audit.events ORDER BY id OFFSET 1 LIMIT 1")
    act=$(tpsql -tAc "SELECT action FROM audit.events WHERE id = $e1")
    expect_eq "the second row is a tokenctl event" "$act" "key.created"
    tpsql -c "UPDATE audit.events SET action = 'x' WHERE id = $e1"
    expect_eq "altered row: named, exit 1" "$(tv)" "1:audit: chain broken at event $e1: row altered"
    # putting the row back as it was restores the chain
    tpsql -c "UPDATE audit.events SET action = '$act' WHERE id = $e1"
    expect_eq "restored row: chain intact again" "$(tv)" "0:audit: 12005 events, chain intact"

    # an altered row whose block digests and hash were recomputed breaks the next block's link
    blk=$(tpsql -tAc "SELECT block FROM audit.blocks WHERE $e1 BETWEEN first_id AND last_id")
    tpsql -c "CREATE TABLE public.t02_block AS SELECT * FROM audit.blocks WHERE block = $blk" \
        -c "UPDATE audit.events SET action = 'x' WHERE id = $e1" \
        -c "UPDATE audit.blocks b SET digests = r.d, hash = sha256(b.prev_hash || r.d)
              FROM (SELECT string_agg(audit.row_digest(e), ''::bytea ORDER BY e.id) AS d
                      FROM audit.events e, audit.blocks k WHERE k.block = $blk AND e.id BETWEEN k.first_id AND k.last_id) r
             WHERE b.block = $blk"
    expect_eq "rehashed block: the next block is named" "$(tv)" \
        "1:audit: chain broken at block $((blk + 1)): previous block missing or altered"
    tpsql -c "UPDATE audit.events SET action = '$act' WHERE id = $e1" \
        -c "UPDATE audit.blocks b SET digests = o.digests, hash = o.hash FROM public.t02_block o WHERE b.block = o.block" \
        -c "DROP TABLE public.t02_block"
    expect_eq "restored again: chain intact" "$(tv)" "0:audit: 12005 events, chain intact"

    # a row slipped into a chained range under an id nobody used (an aborted transaction's)
    tpsql -c "BEGIN" -c "INSERT INTO audit.events (actor, action) VALUES ('t02', 'aborted')" -c "ROLLBACK"
    tpsql -c "INSERT INTO audit.events (actor, action) VALUES ('t02', 'after the gap')"
    "${TCTL[@]}" audit verify >/dev/null 2>&1
    gap=$(tpsql -tAc "SELECT id - 1 FROM audit.events WHERE action = 'after the gap'")
    expect_eq "the aborted id is a gap inside a block" \
        "$(tpsql -tAc "SELECT count(*) FROM audit.events WHERE id = $gap")|$(tpsql -tAc "SELECT count(*) FROM audit.blocks WHERE $gap BETWEEN first_id AND last_id")" "0|1"
    tpsql -c "INSERT INTO audit.events (id, actor, action) VALUES ($gap, 'forger', 'backdated')"
    expect_eq "row added inside a chained range: named" "$(tv)" "1:audit: chain broken at event $gap: row added"
    tpsql -c "DELETE FROM audit.events WHERE id = $gap"
    expect_eq "the gap again: chain intact" "$(tv)" "0:audit: 12006 events, chain intact"

    last=$(tpsql -tAc "SELECT max(block) FROM audit.blocks")
    tpsql -c "CREATE TABLE public.t02_block AS SELECT * FROM audit.blocks WHERE block = $last" \
        -c "DELETE FROM audit.blocks WHERE block = $last"
    expect_eq "deleted last block: named" "$(tv)" \
        "1:audit: chain broken at block $last: chain ends early: blocks or rows removed from its end"
    tpsql -c "INSERT INTO audit.blocks SELECT * FROM public.t02_block" -c "DROP TABLE public.t02_block"
    expect_eq "block put back: chain intact" "$(tv)" "0:audit: 12006 events, chain intact"

    e2=$(tpsql -tAc "SELECT id FROM audit.events ORDER BY id OFFSET 2 LIMIT 1")
    e3=$(tpsql -tAc "SELECT min(id) FROM audit.events WHERE id > $e2")
    tpsql -c "DELETE FROM audit.events WHERE id = $e2"
    expect_eq "deleted middle row: the next row is named" "$(tv)" \
        "1:audit: chain broken at event $e3: a row before it is missing"
else
    fail "scratch database for the tamper test" "$(cat "$ERR")"
fi
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists tokend_tamper
expect_eq "scratch database dropped" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM pg_database WHERE datname = 'tokend_tamper'")" 0

# an upgrade: rows chained one by one before sql/011 stay verifiable, and the blocks link on
LEGACY_DB="host=$T_DIR/pg/run user=postgres dbname=tokend_legacy"
lpsql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U postgres -d tokend_legacy "$@"; }
mkdir -p "$T_DIR/sql-010" && cp sql/00*.sql sql/010_*.sql "$T_DIR/sql-010/"
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists tokend_legacy 2>/dev/null
if "$PG_BIN/createdb" -h "$T_DIR/pg/run" -U postgres tokend_legacy &&
    "$BUILD/tokenctl" --db "$LEGACY_DB" migrate --dir "$T_DIR/sql-010" >/dev/null 2>"$ERR"; then
    LCTL=("$BUILD/tokenctl" --db "$LEGACY_DB" --master-key-file "$T_DIR/master.key")
    lv() { "${LCTL[@]}" audit verify >"$OUT" 2>"$ERR"; echo "$?:$(cat "$OUT")"; }
    "${LCTL[@]}" tenant create "Legacy" >/dev/null 2>&1
    lpsql -c "INSERT INTO audit.events (actor, action) SELECT 'test', 'old' FROM generate_series(1, 50)"
    lpsql -tAc "SELECT nextval('audit.events_id_seq')" >/dev/null # an id nobody uses
    lpsql -c "INSERT INTO audit.events (actor, action) VALUES ('test', 'old, after a gap')"
    expect_eq "before 011 every row is chained row by row" \
        "$(lpsql -tAc "SELECT count(*) FILTER (WHERE seq IS NULL) FROM audit.events")" 0
    "$BUILD/tokenctl" --db "$LEGACY_DB" migrate --dir sql >/dev/null 2>"$ERR"
    expect_eq "011 applied over a chained log" "$(lpsql -tAc "SELECT legacy_to = (SELECT max(id) FROM audit.events) FROM audit.chain_state")" t
    lpsql -c "INSERT INTO audit.events (actor, action) SELECT 'test', 'new' FROM generate_series(1, 30)"
    "${LCTL[@]}" tenant create "Legacy 2" >/dev/null 2>&1
    n=$(lpsql -tAc "SELECT count(*) FROM audit.events")
    expect_eq "old and new rows verify together" "$(lv)" "0:audit: $n events, chain intact"
    expect_eq "the new rows are in blocks, the old ones keep their seq" \
        "$(lpsql -tAc "SELECT (SELECT count(*) FROM audit.events WHERE seq IS NULL) = (SELECT sum(n_rows) FROM audit.blocks)")" t
    s2=$(lpsql -tAc "SELECT seq FROM audit.events WHERE seq IS NOT NULL ORDER BY seq OFFSET 1 LIMIT 1")
    lpsql -c "UPDATE audit.events SET action = 'x' WHERE seq = $s2"
    expect_eq "an altered old row: named by its seq" "$(lv)" "1:audit: chain broken at seq $s2: row altered"
    lpsql -c "UPDATE audit.events SET action = 'old' WHERE seq = $s2"
    gap=$(lpsql -tAc "SELECT id - 1 FROM audit.events WHERE action = 'old, after a gap'")
    lpsql -c "INSERT INTO audit.events (id, actor, action) VALUES ($gap, 'forger', 'backdated')"
    expect_eq "a row added among the old ones: named" "$(lv)" "1:audit: chain broken at event $gap: row added"
else
    fail "scratch database for the upgrade test" "$(cat "$ERR")"
fi
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists tokend_legacy

ctl audit verify
expect_eq "the suite's own chain is still intact" "$?" 0
ctl audit verify extra
expect_eq "audit verify with extra arguments: usage exit 2" "$?" 2
ctl frobnicate
expect_eq "unknown command: usage exit 2" "$?" 2
rm -f "$OUT" "$ERR"
unset SECRETS sk lk pk
