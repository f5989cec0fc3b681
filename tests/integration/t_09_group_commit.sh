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
