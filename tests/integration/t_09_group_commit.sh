# t_09_group_commit.sh - group commit: concurrent POST /v1/tokens share one
# transaction, a request whose row fails in the database gets a 5xx
# problem+json, and its neighbours in the same batch still commit.
#
# The failure is a test-only trigger (installed here as the superuser, removed
# at the end) that raises for a token whose metadata has "fail":"yes", and
# records the transaction id of every other insert, so the test can see that
# the neighbours really were in one transaction.

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN_G=$("${CTL[@]}" tenant create "groupcommit-$$" 2>/dev/null)
KEY_G=$("${CTL[@]}" key create --tenant "$TEN_G" --scopes tokens:write,tokens:read --test 2>/dev/null)
expect_match "group commit: tenant and key" "$TEN_G $KEY_G" '^ten_.* sk_test_'

gc_sql() { pg_psql "$T_DIR/pg" "$@"; }
gc_sql -c "
    SET client_min_messages = warning;
    DROP TABLE IF EXISTS public.t09_probe;
    CREATE TABLE public.t09_probe (xid bigint NOT NULL, n text, st timestamptz NOT NULL);
    TRUNCATE public.t09_probe;
    CREATE OR REPLACE FUNCTION public.t09_fail() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS \$\$
    BEGIN
        IF NEW.metadata->>'t09' IS NULL THEN RETURN NEW; END IF;
        IF NEW.metadata->>'fail' = 'yes' THEN
            RAISE EXCEPTION 't09: forced failure' USING ERRCODE = 'P0001';
        END IF;
        INSERT INTO public.t09_probe VALUES (txid_current(), NEW.metadata->>'t09', statement_timestamp());
        RETURN NEW;
    END \$\$;
    DROP TRIGGER IF EXISTS t09_fail ON vault.tokens;
    CREATE TRIGGER t09_fail BEFORE INSERT ON vault.tokens FOR EACH ROW EXECUTE FUNCTION public.t09_fail();" ||
    fail "group commit: install the test trigger"

# one database thread and a 100 ms window: concurrent requests share a batch
tokend_start G --db-threads 1 --db-batch-window-us 100000 --db-batch-max 64 || { fail "tokend starts (group commit)"; return; }
GC_URL="http://127.0.0.1:$H2C_G/v1/tokens"
GC_YEAR=$(($(date -u +%Y) + 1))
gc_post() { # N FAIL OUT
    curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY_G" -H 'content-type: application/json' \
        --data-binary "$(printf '{"card":{"number":"4242424242424242","exp_month":12,"exp_year":%s,"cvc":"123"},"metadata":{"t09":"%s","fail":"%s"}}' \
            "$GC_YEAR" "$1" "$2")" \
        -o "$3.body" -w '%{http_code} %{content_type}' "$GC_URL" >"$3.status"
}
# warm each loop thread's principal cache, so the burst below reaches the
# database together instead of behind an authentication lookup
for i in 1 2 3 4; do gc_post "warm$i" no "$T_DIR/gc-warm"; done

GC_N=8
GC_FAIL=4
# gc_burst ROUND: GC_N concurrent requests tagged rROUNDnI, request GC_FAIL forced to fail
gc_burst() {
    local round=$1 i f pids=()
    for i in $(seq 1 $GC_N); do
        f=no
        [ "$i" = "$GC_FAIL" ] && f=yes
        gc_post "r${round}n$i" "$f" "$T_DIR/gc-$round-$i" &
        pids+=($!)
    done
    wait "${pids[@]}" # not a bare wait: tokend is a child of this shell too
}
# transactions the neighbours of a round committed in (a shared machine may
# start the curls too far apart for one window: then try another round)
gc_xids() { gc_sql -tAc "SELECT count(DISTINCT xid) FROM public.t09_probe WHERE n LIKE 'r$1n%'"; }
round=1
gc_burst $round
while [ "$(gc_xids $round)" != 1 ] && [ $round -lt 4 ]; do
    round=$((round + 1))
    gc_burst $round
done

ok201=0
for i in $(seq 1 $GC_N); do
    [ "$i" = "$GC_FAIL" ] && continue
    [ "$(cut -d' ' -f1 <"$T_DIR/gc-$round-$i.status")" = 201 ] && ok201=$((ok201 + 1))
done
expect_eq "group commit: every neighbour of the failing request got 201" "$ok201" "$((GC_N - 1))"
expect_match "group commit: the failing request gets a 5xx problem+json" \
    "$(cat "$T_DIR/gc-$round-$GC_FAIL.status")" '^5[0-9][0-9] application/problem\+json'
expect_match "group commit: the failure says the token was not stored" \
    "$(jq -r '.status' <"$T_DIR/gc-$round-$GC_FAIL.body" 2>/dev/null)" '^5[0-9][0-9]$'

rows=$(gc_sql -tAc "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$TEN_G' AND metadata->>'t09' LIKE 'r${round}n%'")
expect_eq "group commit: the neighbours' rows are stored, the failing one is not" "$rows" "$((GC_N - 1))"
failed_rows=$(gc_sql -tAc "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$TEN_G' AND metadata->>'fail' = 'yes'")
expect_eq "group commit: no row for any failing request" "$failed_rows" 0
refs=$(gc_sql -tAc "SELECT count(*) FROM vault.gateway_refs g JOIN vault.tokens t ON t.tenant_id = g.tenant_id
    AND t.id = g.token_id WHERE t.tenant_id = '$TEN_G' AND t.metadata->>'t09' LIKE 'r${round}n%'")
expect_eq "group commit: each stored token has its gateway reference" "$refs" "$((GC_N - 1))"
expect_eq "group commit: the neighbours committed in ONE transaction (round $round)" "$(gc_xids $round)" 1
audit=$(gc_sql -tAc "SELECT count(*) FROM audit.events WHERE tenant_id = '$TEN_G' AND action = 'token.created'")
expect_eq "group commit: one audit event per stored token (warm-up + neighbours)" "$audit" "$((4 + round * (GC_N - 1)))"

# a burst where nothing fails: the batch's tokens are stored by ONE multi-row statement
GC_FAIL=0
gc_stmts() { gc_sql -tAc "SELECT count(DISTINCT xid) || ' ' || count(DISTINCT st) FROM public.t09_probe WHERE n LIKE 'r$1n%'"; }
round=10
gc_burst $round
while [ "$(gc_stmts $round)" != "1 1" ] && [ $round -lt 13 ]; do
    round=$((round + 1))
    gc_burst $round
done
expect_eq "group commit: a batch's tokens share one transaction and one statement (round $round)" \
    "$(gc_stmts $round)" "1 1"
GC_FAIL=4

# --- what a batch stores is what was sent (issue #9) -------------------------------------------
# token_store_sql takes the batch as binary arrays, one per column (service/store/pgarr.c): varied
# tokens in one batch, each stored column read back and compared with the request. One
# pan_shaped candidate collides (a test trigger takes it just before the insert), so its
# token is left out of the batch's statement and retried alone, at position 1 of the retry's
# arrays. Every token is then charged: that unseals its stored reference.
TEN_R=$("${CTL[@]}" tenant create "roundtrip-$$" 2>/dev/null)
KEY_R=$("${CTL[@]}" key create --tenant "$TEN_R" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
KEY_R_ID=$(gc_sql -tAc "SELECT id FROM vault.api_keys WHERE tenant_id = '$TEN_R'")
KV_R=$(gc_sql -tAc "SELECT max(version) FROM vault.tenant_keys WHERE tenant_id = '$TEN_R'")
expect_match "round trip: tenant, key and key version" "$TEN_R $KEY_R_ID $KV_R" '^ten_.* .+ [0-9]+$'
gc_sql -c "
    SET client_min_messages = warning;
    CREATE OR REPLACE FUNCTION public.t09_collide() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS \$\$
    DECLARE dummy text := 'tok_' || rpad('C' || coalesce(NEW.metadata->>'t09c', ''), 22, 'C');
    BEGIN
        IF NEW.metadata->>'t09c' IS NULL OR EXISTS (SELECT 1 FROM vault.tokens WHERE id = dummy) THEN
            RETURN NEW;
        END IF;
        INSERT INTO vault.tokens (tenant_id, id, livemode, format, pan_shaped, fingerprint, brand,
                                  last4, exp_month, exp_year, key_version, created_by)
        VALUES (NEW.tenant_id, dummy, NEW.livemode, 'pan_shaped', NEW.pan_shaped, NEW.fingerprint,
                NEW.brand, NEW.last4, NEW.exp_month, NEW.exp_year, NEW.key_version, 't09');
        RETURN NEW;
    END \$\$;
    DROP TRIGGER IF EXISTS t09_collide ON vault.tokens;
    CREATE TRIGGER t09_collide BEFORE INSERT ON vault.tokens FOR EACH ROW EXECUTE FUNCTION public.t09_collide();" ||
    fail "round trip: install the collision trigger"

# request i: PAN, month, year offset, cvc, extra body, extra metadata; expected brand, BIN,
# format and expires_at (UTC, '-' for none)
RT_PAN=(4242424242424242 5555555555554444 378282246310005 6011111111111117 4242424242424242)
RT_MON=(1 12 7 2 9)
RT_YOFF=(0 5 2 0 1)
RT_CVC=(123 321 1234 456 789)
RT_BODY=('' ',"expires_at":"'$GC_YEAR'-06-01T00:00:00+02:00","format":"pan_shaped"'
    ',"format":"pan_shaped"' ',"expires_at":"'$((GC_YEAR + 1))'-12-31T23:59:59Z"' ',"format":"pan_shaped"')
RT_META=(',"quote":"a\"b\\c","uni":"caf\u00e9 \u2603 \ud83d\ude00"' ',"k":"v"' ',"t09c":"ROUND","empty":""' '' ',"x":"y"')
RT_BRAND=(visa mastercard amex discover visa)
RT_BIN=(424242 555555 378282 601111 424242)
RT_FORMAT=(opaque pan_shaped pan_shaped opaque pan_shaped)
RT_EXP=(- "$GC_YEAR-05-31T22:00:00Z" - "$((GC_YEAR + 1))-12-31T23:59:59Z" -)
rt_meta() { printf '{"t09":"v%sn%s"%s}' "$1" "$2" "${RT_META[$(($2 - 1))]//ROUND/v$1}"; }
rt_post() { # ROUND I
    local i=$(($2 - 1))
    curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY_R" -H 'content-type: application/json' \
        --data-binary "$(printf '{"card":{"number":"%s","exp_month":%s,"exp_year":%s,"cvc":"%s"},"metadata":%s%s}' \
            "${RT_PAN[$i]}" "${RT_MON[$i]}" "$((GC_YEAR + RT_YOFF[i]))" "${RT_CVC[$i]}" "$(rt_meta "$1" "$2")" "${RT_BODY[$i]}")" \
        -D "$T_DIR/rt-$1-$2.headers" -o "$T_DIR/rt-$1-$2.body" -w '%{http_code}' "$GC_URL" >"$T_DIR/rt-$1-$2.status"
}
rt_burst() {
    local i pids=()
    for i in 1 2 3 4 5; do
        rt_post "$1" "$i" &
        pids+=($!)
    done
    wait "${pids[@]}" # not a bare wait: tokend is a child of this shell too
}
# the batch's rows: one transaction, and one statement for all but the retried token
rt_batched() {
    gc_sql -tAc "SELECT count(DISTINCT xid) || ' ' || count(DISTINCT st) FILTER (WHERE n <> 'v$1n3')
                 FROM public.t09_probe WHERE n LIKE 'v$1n%'"
}
for i in 1 2 3 4; do rt_post "warm$i" 4; done # fill each loop thread's principal cache
round=1
rt_burst $round
while [ "$(rt_batched $round)" != "1 1" ] && [ $round -lt 4 ]; do
    round=$((round + 1))
    rt_burst $round
done
expect_eq "round trip: the batch is one transaction and one statement (round $round)" "$(rt_batched $round)" "1 1"

rt_json() { jq -r "$2" <"$T_DIR/rt-$round-$1.body"; }
for n in 1 2 3 4 5; do
    i=$((n - 1))
    expect_eq "round trip $n: 201" "$(cat "$T_DIR/rt-$round-$n.status")" 201
    id=$(rt_json $n .id)
    meta=$(rt_meta $round $n)
    ps=$(rt_json $n '.pan_shaped // "-"')
    fp=$(rt_json $n .fingerprint)
    pan=${RT_PAN[$i]}
    row=$(gc_sql -tAc "SELECT concat_ws('|', brand, last4, coalesce(bin, '-'), exp_month, exp_year, livemode,
            format, coalesce(pan_shaped, '-'), encode(fingerprint, 'hex'), created_by, key_version,
            coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'),
            metadata = '$meta'::jsonb)
          FROM vault.tokens WHERE tenant_id = '$TEN_R' AND id = '$id'")
    expect_eq "round trip $n: stored columns are the request's" "$row" \
        "${RT_BRAND[$i]}|${pan: -4}|${RT_BIN[$i]}|${RT_MON[$i]}|$((GC_YEAR + RT_YOFF[i]))|f|${RT_FORMAT[$i]}|$ps|$fp|$KEY_R_ID|$KV_R|${RT_EXP[$i]}|t"
    expect_eq "round trip $n: the answer's metadata is the request's" \
        "$(rt_json $n '.metadata' | jq -cS .)" "$(jq -cS . <<<"$meta")"
    if [ "${RT_FORMAT[$i]}" = pan_shaped ]; then
        expect_match "round trip $n: pan_shaped keeps the PAN's length, BIN and last 4" "$ps" \
            "^${pan:0:6}[0-9]{$((${#pan} - 10))}${pan: -4}\$"
    fi
    refs=$(gc_sql -tAc "SELECT string_agg(concat_ws(':', g.gateway, g.status, length(g.ref_sealed) > 41,
                length(g.ref_lookup), g.key_version = t.key_version), ' ')
            FROM vault.gateway_refs g JOIN vault.tokens t ON t.tenant_id = g.tenant_id AND t.id = g.token_id
            WHERE t.tenant_id = '$TEN_R' AND t.id = '$id'")
    expect_eq "round trip $n: one sealed reference with its lookup hash and key version" "$refs" \
        "sandbox:active:t:32:t"
    rid=$(tr -d '\r' <"$T_DIR/rt-$round-$n.headers" | sed -nE 's/^x-request-id: (.*)$/\1/p')
    audit=$(gc_sql -tAc "SELECT string_agg(actor || ' ' || request_id, ',') FROM audit.events
            WHERE tenant_id = '$TEN_R' AND action = 'token.created' AND object = '$id'")
    expect_eq "round trip $n: one audit event, by the key, with the request id" "$audit" "$KEY_R_ID $rid"
    ch=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY_R" -H 'content-type: application/json' \
        --data-binary "{\"token\":\"$id\",\"amount\":100,\"currency\":\"eur\"}" "${GC_URL%/tokens}/charges" | jq -r .status)
    expect_eq "round trip $n: the stored reference unseals (a charge succeeds)" "$ch" succeeded
done
fp1=$(rt_json 1 .fingerprint)
expect_eq "round trip: one PAN, one fingerprint; another PAN, another" \
    "$([ "$fp1" = "$(rt_json 5 .fingerprint)" ] && [ "$fp1" != "$(rt_json 2 .fingerprint)" ] && echo yes)" yes
taken=$(gc_sql -tAc "SELECT pan_shaped FROM vault.tokens WHERE id = 'tok_' || rpad('Cv$round', 22, 'C')")
expect_match "round trip: the collision happened (a first candidate was taken)" "$taken" '^378282[0-9]{5}0005$'
expect_true "round trip: the collided token was stored with its next candidate" \
    test "$taken" != "$(rt_json 3 .pan_shaped)"
n=$(gc_sql -tAc "SELECT count(*) || ' ' || (SELECT count(*) FROM vault.gateway_refs WHERE tenant_id = '$TEN_R'
        AND token_id IN (SELECT id FROM vault.tokens WHERE metadata->>'t09' LIKE 'v${round}n%'))
        || ' ' || (SELECT count(*) FROM audit.events WHERE tenant_id = '$TEN_R' AND action = 'token.created'
        AND object IN (SELECT id FROM vault.tokens WHERE metadata->>'t09' LIKE 'v${round}n%'))
    FROM vault.tokens WHERE tenant_id = '$TEN_R' AND metadata->>'t09' LIKE 'v${round}n%'")
expect_eq "round trip: five tokens, five references, five audit events (none for the left-out attempt)" "$n" "5 5 5"
gc_sql -c "DROP TRIGGER IF EXISTS t09_collide ON vault.tokens; DROP FUNCTION IF EXISTS public.t09_collide();" ||
    fail "round trip: remove the collision trigger"

# every element type pgarr.c encodes, as PostgreSQL reads it back (tests/tools/pgarr_echo.c):
# NULLs, extremes, escapes, empty arrays; and a text array sent for an int4[] is refused
# (42804 datatype_mismatch), never reinterpreted
echo_out=$(PGARR_ECHO_DB="$T_SERVICE_DB" "$BUILD/pgarr_echo" 2>&1)
expect_eq "pgarr: PostgreSQL reads every encoded array back as intended" "$echo_out" "$(cat <<'WANT'
1 bool {t,f,NULL}
2 int2 {32767,-32768,0}
3 int4 {2147483647,-2147483648,NULL}
4 float8 {1.5,-0,0.1,-Infinity,NULL}
5 timestamptz {"2000-01-01 00:00:00+00","1970-01-01 00:00:00+00","2023-11-14 22:13:20.123456+00",NULL}
6 text {"a\"b\\c","",café,NULL}
7 bytea {"\\x00ff","\\x",NULL}
8 text-empty {} 0
9 int4-empty {} 0
mismatch 42804
WANT
)"

# a batch with only the failing request: its own transaction rolls back, the server carries on
gc_post 99 yes "$T_DIR/gc-alone"
expect_match "group commit: a lone failing request gets a 5xx too" "$(cat "$T_DIR/gc-alone.status")" '^5[0-9][0-9] '
gc_post 100 no "$T_DIR/gc-after"
expect_match "group commit: the next request commits" "$(cat "$T_DIR/gc-after.status")" '^201 '

tokend_stop G

# the audit chainer (sql/009): tokend's audit rows are chained by its own thread, not at
# the request's commit; with a long interval they wait, and tokend's last pass at stop
# chains them all
unchained() { gc_sql -tAc "SELECT count(*) FROM audit.events WHERE id > (SELECT chained_to FROM audit.chain_state)"; }
tokend_start C --audit-chain-interval-ms 60000 || { fail "tokend starts (chainer)"; return; }
H2C_SAVE=$GC_URL
GC_URL="http://127.0.0.1:$H2C_C/v1/tokens"
sleep 0.3 # past the pass at start
for i in 1 2 3; do gc_post "chain$i" no "$T_DIR/gc-chain"; done
GC_URL=$H2C_SAVE
expect_true "audit chainer: tokend's new rows wait for the chainer, not the commit ($(unchained))" \
    test "$(unchained)" -ge 3
tokend_stop C
expect_eq "audit chainer: the last pass at stop chains every row" "$(unchained)" 0
tokend_start D --audit-chain-interval-ms 50 || { fail "tokend starts (chainer, 50 ms)"; return; }
GC_URL="http://127.0.0.1:$H2C_D/v1/tokens"
for i in 1 2 3; do gc_post "chainD$i" no "$T_DIR/gc-chain"; done
GC_URL=$H2C_SAVE
chained_soon() { for _ in $(seq 1 40); do [ "$(unchained)" = 0 ] && return 0; sleep 0.05; done; return 1; }
expect_true "audit chainer: rows are chained within the interval while tokend runs" chained_soon
tokend_stop D
gc_verify() { "${CTL[@]}" audit verify >/dev/null 2>&1; }
expect_true "group commit: the audit chain still verifies" gc_verify
gc_sql -c "DROP TRIGGER IF EXISTS t09_fail ON vault.tokens; DROP FUNCTION IF EXISTS public.t09_fail();
    DROP TABLE IF EXISTS public.t09_probe;" || fail "group commit: remove the test trigger"
