# t_17_audit_proof.sh - the audit log proves itself (issue #18): tokend keys each audit block
# with a MAC under the audit key and appends a signed checkpoint line per block to a file;
# `tokenctl audit verify` checks both. A superuser who rewrites a row and recomputes the
# plain chain (every later digest and hash, the way the chainer does, without the keys)
# fools the plain check but not the MACs nor the checkpoints. In a scratch database, so the
# suite's own chain stays intact.

OUT="$T_DIR/t30.out"
ERR="$T_DIR/t30.err"
PDB=tokend_proof
ppsql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T_DIR/pg/run" -U postgres -d $PDB "$@"; }
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists $PDB 2>/dev/null
"$PG_BIN/createdb" -h "$T_DIR/pg/run" -U postgres $PDB || { fail "scratch database"; return; }
ADB=$(pg_conninfo "$T_DIR/pg" postgres $PDB)
SDB=$(pg_conninfo "$T_DIR/pg" tokend_service $PDB)
"$BUILD/tokenctl" --db "$ADB" migrate --dir sql >/dev/null || { fail "migrate scratch"; return; }
expect_eq "sql/017: audit.blocks has a mac column" \
    "$(ppsql -tAc "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'audit' AND table_name = 'blocks' AND column_name = 'mac'")" 1

AK="$T_DIR/t30-audit.key"
AK2="$T_DIR/t30-audit2.key"
(umask 077 && head -c 32 /dev/urandom >"$AK" && head -c 32 /dev/urandom >"$AK2")
CP="$T_DIR/t30-checkpoints.log"
rm -f "$CP"
CTL=("$BUILD/tokenctl" --db "$ADB" --master-key-file "$T_DIR/master.key")
PUB=$("${CTL[@]}" audit pubkey --audit-key-file "$AK")
expect_match "audit pubkey prints the Ed25519 public key in hex" "$PUB" '^[0-9a-f]{64}$'

# tokend refuses a missing audit key with one line and exit 2; checkpoints need the key
"$BUILD/tokend" --db "$SDB" --master-key-file "$T_DIR/master.key" --audit-key-file "$T_DIR/nope" \
    >"$OUT" 2>"$ERR"
expect_eq "missing audit key: exit 2, one clear line" "$?|$(cat "$ERR")" \
    "2|tokend: cannot load the audit key: audit key file not found: $T_DIR/nope"
"$BUILD/tokend" --db "$SDB" --master-key-file "$T_DIR/master.key" --audit-checkpoints "$CP" \
    >"$OUT" 2>"$ERR"
expect_eq "checkpoints without a key: exit 2" "$?|$(cat "$ERR")" \
    "2|tokend: bad configuration: --audit-checkpoints needs --audit-key-file (checkpoints are signed)"

TEN=$("${CTL[@]}" tenant create "proof-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read --test 2>/dev/null)
tokend_start P30 --db "$SDB" --audit-key-file "$AK" --audit-checkpoints "$CP" \
    --audit-chain-interval-ms 20 || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_P30"
NEXT_YEAR=$(($(date -u +%Y) + 1))
tokenise() {
    curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
        --data-binary "{\"card\":{\"number\":\"$1\",\"exp_month\":12,\"exp_year\":$NEXT_YEAR,\"cvc\":\"123\"}}" \
        -o /dev/null -w '%{http_code}' "$H2C/v1/tokens"
}
codes=""
for c in 4242424242424242 4000056655665556 5555555555554444 4111111111111111 5105105105105100 \
         6011111111111117; do
    codes="$codes$(tokenise $c) "
    sleep 0.15 # a block or more per request
done
expect_eq "six cards tokenised" "$codes" "201 201 201 201 201 201 "
# every block sealed and checkpointed (the chainer runs every 20 ms)
sealed() { ppsql -tAc "SELECT count(*) FILTER (WHERE mac IS NULL) || '/' || count(*) FROM audit.blocks"; }
for i in $(seq 1 100); do
    s=$(sealed)
    [ "${s%%/*}" = 0 ] && [ "$(wc -l <"$CP")" = "${s#*/}" ] && break
    sleep 0.1
done
nblocks=$(ppsql -tAc "SELECT count(*) FROM audit.blocks")
nev=$(ppsql -tAc "SELECT count(*) FROM audit.events")
expect_true "several blocks chained" test "$nblocks" -ge 4
expect_eq "every block sealed, one checkpoint line each" "$(sealed)|$(wc -l <"$CP")" "0/$nblocks|$nblocks"
expect_match "a checkpoint line: block, ids, hash, mac, time, key, signature" "$(head -n 1 "$CP")" \
    "^tokend-audit-checkpoint v1 block=1 ids=1-[0-9]+ hash=[0-9a-f]{64} mac=[0-9a-f]{64} time=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z pk=$PUB sig=[0-9a-f]{128}\$"
expect_eq "the checkpoint's hash is the block's" \
    "$(sed -n 's/.*block=2 .*hash=\([0-9a-f]*\) .*/\1/p' "$CP")" \
    "$(ppsql -tAc "SELECT encode(hash, 'hex') FROM audit.blocks WHERE block = 2")"
expect_eq "the checkpoint file holds no card data" "$(grep -c '4242424242424242\|424242' "$CP")" 0
tokend_stop P30

v() { "${CTL[@]}" audit verify "$@" >"$OUT" 2>"$ERR"; echo "$?:$(tr '\n' '|' <"$OUT")"; }
expect_eq "untouched: verify with the key and the checkpoints passes" \
    "$(v --audit-key-file "$AK" --checkpoints "$CP")" \
    "0:audit: $nev events, chain intact|audit: $nblocks block MACs match|audit: $nblocks signed checkpoints match|"
expect_eq "untouched: the public key alone checks the checkpoints" \
    "$(v --audit-pubkey "$PUB" --checkpoints "$CP")" \
    "0:audit: $nev events, chain intact|audit: $nblocks signed checkpoints match|"
expect_eq "checkpoints trusted only for the given key" \
    "$(v --audit-key-file "$AK2" --checkpoints "$CP")" \
    "1:audit: checkpoint file $CP line 1: signed by another key|"
expect_eq "--checkpoints needs a key to trust" "$(v --checkpoints "$CP")$(cat "$ERR")" \
    "2:tokenctl: audit verify: --checkpoints needs --audit-key-file or --audit-pubkey (whose signatures to trust)"

# a forged line: one hex digit of the hash changed
sed '2s/hash=\(.\)/hash=X\1/; 2s/hash=X0/hash=1/; 2s/hash=X[^ ]/hash=0/' "$CP" >"$CP.forged"
expect_eq "an edited checkpoint line: named, exit 1" \
    "$(v --audit-pubkey "$PUB" --checkpoints "$CP.forged")" \
    "1:audit: checkpoint file $CP.forged line 2: signature does not verify|"

# --- the superuser: cut the last block and make chain_state agree ---------------------
last=$nblocks
ppsql -c "CREATE TABLE public.t30_b AS SELECT * FROM audit.blocks WHERE block = $last" \
      -c "CREATE TABLE public.t30_s AS SELECT * FROM audit.chain_state" \
      -c "DELETE FROM audit.blocks WHERE block = $last" \
      -c "UPDATE audit.chain_state SET last_block = $((last - 1)), last_hash = (SELECT hash FROM audit.blocks WHERE block = $((last - 1))), chained_to = (SELECT last_id FROM audit.blocks WHERE block = $((last - 1)))" \
      -c "DELETE FROM audit.events WHERE id > (SELECT chained_to FROM audit.chain_state)"
expect_match "tail cut: the plain chain is fooled" "$(v)" "^0:audit: [0-9]+ events, chain intact\|\$"
expect_eq "tail cut: the checkpoints name the missing block" \
    "$(v --audit-pubkey "$PUB" --checkpoints "$CP")" \
    "1:audit: chain broken at block $last: block named by a signed checkpoint missing (chain cut or rewritten)|"
ppsql -c "DROP TABLE public.t30_b, public.t30_s"

# --- the superuser: rewrite a row in block 2 and recompute every later digest and hash ---
k=2
victim=$(ppsql -tAc "SELECT min(e.id) FROM audit.events e, audit.blocks b WHERE b.block = $k AND e.id BETWEEN b.first_id AND b.last_id")
ppsql -c "UPDATE audit.events SET tenant_id = NULL, object = 'nothing to see' WHERE id = $victim" -c "
DO \$\$ DECLARE b record; prev bytea; d bytea; BEGIN
    SELECT prev_hash INTO prev FROM audit.blocks WHERE block = $k;
    FOR b IN SELECT * FROM audit.blocks WHERE block >= $k ORDER BY block LOOP
        SELECT string_agg(audit.row_digest(e), ''::bytea ORDER BY e.id) INTO d
          FROM audit.events e WHERE e.id BETWEEN b.first_id AND b.last_id;
        UPDATE audit.blocks SET digests = d, prev_hash = prev, hash = sha256(prev || d) WHERE block = b.block;
        prev := sha256(prev || d);
    END LOOP;
    UPDATE audit.chain_state SET last_hash = prev;
END \$\$;"
nev=$(ppsql -tAc "SELECT count(*) FROM audit.events")
nb=$(ppsql -tAc "SELECT count(*) FROM audit.blocks")
expect_eq "rewritten and rehashed: the plain chain is fooled" "$(v)" "0:audit: $nev events, chain intact|"
expect_eq "rewritten: the signed checkpoints name the block" \
    "$(v --audit-pubkey "$PUB" --checkpoints "$CP")" \
    "1:audit: chain broken at block $k: block differs from the signed checkpoint (rewritten)|"
expect_eq "rewritten: the MACs name the block" "$(v --audit-key-file "$AK")" \
    "1:audit: chain broken at block $k: block altered: its MAC does not match (rewritten without the audit key)|"
# the MACs thrown away too: between checkpoints that looks like blocks not sealed yet (the
# limit SECURITY.md states), the checkpoints still catch it
ppsql -c "UPDATE audit.blocks SET mac = NULL WHERE block >= $k"
expect_eq "MACs removed: without checkpoints only 'not sealed yet'" "$(v --audit-key-file "$AK")" \
    "0:audit: $nev events, chain intact|audit: $((k - 1)) block MACs match|audit: blocks from $k on not sealed yet (tokend seals them)|"
ppsql -c "UPDATE audit.blocks SET mac = NULL WHERE block = 1"
expect_eq "a MAC removed before sealed blocks: named" "$(ppsql -c "UPDATE audit.blocks SET mac = '\\x00' || substr(sha256('x'), 2) WHERE block = $k" >/dev/null; v --audit-key-file "$AK")" \
    "1:audit: chain broken at block 1: block's MAC removed|"
ppsql -c "UPDATE audit.blocks SET mac = NULL"
# a restarted tokend seals the rewritten blocks anew: the new checkpoints disagree with the
# shipped ones, which still name the rewrite
tokend_start P30B --db "$SDB" --audit-key-file "$AK" --audit-checkpoints "$CP" \
    --audit-chain-interval-ms 20 || { fail "tokend restarts"; return; }
for i in $(seq 1 100); do
    [ "$(ppsql -tAc "SELECT count(*) FROM audit.blocks WHERE mac IS NULL")" = 0 ] && break
    sleep 0.1
done
tokend_stop P30B
expect_eq "re-sealed after the rewrite: the shipped checkpoints still name it" \
    "$(v --audit-key-file "$AK" --checkpoints "$CP")" \
    "1:audit: chain broken at block $k: block differs from the signed checkpoint (rewritten)|"
"$PG_BIN/dropdb" -h "$T_DIR/pg/run" -U postgres --if-exists $PDB 2>/dev/null
