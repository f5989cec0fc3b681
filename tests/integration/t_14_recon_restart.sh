# t_14_recon_restart.sh - a reconciliation run cut off by kill -9 does not stay 'running'
# (issue #15, finding 12). A run is held mid-way (a psql session locks the exceptions table, so
# the run's insert waits), tokend is killed with SIGKILL, and the restarted tokend has failed
# it ("interrupted by restart", audited) before answering; a new run then completes. Ownership
# is an advisory lock per process (sql/018): runs of a live process - another tokend on the
# same database, a psql session standing in for one, or the reaper's own process - are never
# touched, and when a process dies without a restart, a live one fails its runs within a pass.

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "recrestart-$$" 2>/dev/null)
RKEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes reports:read --test 2>/dev/null)
psql_q() { pg_psql "$T_DIR/pg" -tAc "$1"; }
api() { # METHOD URL KEY [FILE] -> "<body>\n<status>"
    if [ -n "${4:-}" ]; then
        curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $3" -H 'content-type: text/csv' \
            --data-binary "@$4" -w '\n%{http_code}' "$2"
    else
        curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $3" -w '\n%{http_code}' "$2"
    fi
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
run_status() { psql_q "SELECT status FROM ledger.reconciliation_runs WHERE id = '$1'"; }
wait_sql() { # SQL WANT SECONDS: until the query answers WANT
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt "$deadline" ]; do
        [ "$(psql_q "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
EXC_WAITING="SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
              WHERE c.relname = 'reconciliation_exceptions' AND NOT l.granted"
# hold_exceptions: a session that locks out inserts of exceptions until it is terminated
hold_exceptions() {
    PGAPPNAME=t14lock pg_psql "$T_DIR/pg" -c "BEGIN; LOCK TABLE ledger.reconciliation_exceptions IN EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT" >/dev/null 2>&1 &
    T_PIDS+=("$!")
    wait_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 't14lock' AND wait_event = 'PgSleep'" 1 10
}
release() { psql_q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null; }

printf '%s\r\n' 'balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,description' \
    'txn_1,2030-01-15 12:00:00,usd,10.00,0.59,9.41,charge,ch_3Xnotours1,x' \
    'txn_2,2030-01-15 12:00:00,usd,12.34,0.66,11.68,charge,ch_3Xnotours2,x' >"$T_DIR/t14.csv"

# --- a run held mid-way, then kill -9 ------------------------------------------------------------------
tokend_start R1 || { fail "tokend starts (recon restart)"; return; }
expect_true "a session holds the exceptions table" hold_exceptions
out=$(api POST "http://127.0.0.1:$H2C_R1/v1/reconciliations?gateway=stripe" "$RKEY" "$T_DIR/t14.csv")
RUN=$(js "$out" .id)
expect_eq "POST: 202 running" "$(st "$out") $(js "$out" .status)" "202 running"
expect_true "the run is mid-way: its exceptions insert waits" wait_sql "$EXC_WAITING" t 10
OWNER1=$(psql_q "SELECT owner FROM ledger.reconciliation_runs WHERE id = '$RUN'")
expect_match "the run records its process's owner key" "$OWNER1" '^[1-9][0-9]*$'
expect_eq "the owner's lock is held while tokend lives" \
    "$(psql_q "SELECT pg_try_advisory_xact_lock($OWNER1)")" "f"
kill -KILL "$TOKEND_PID_R1"
wait "$TOKEND_PID_R1" 2>/dev/null
release t14lock
expect_eq "after kill -9 the run is still 'running'" "$(run_status "$RUN")" "running"
expect_true "the dead process's owner lock is released by PostgreSQL" \
    wait_sql "SELECT pg_try_advisory_xact_lock($OWNER1)" t 10

# stand-ins for other processes: a live one (a session holds its key), a dead one, and a run
# from before owners were recorded
PGAPPNAME=t14peer pg_psql "$T_DIR/pg" -c "SELECT pg_advisory_lock(770001); SELECT pg_sleep(120)" >/dev/null 2>&1 &
T_PIDS+=("$!")
wait_sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 770001 AND granted" 1 10
LIVE=rec_livepeer00000000000000
DEAD=rec_deadpeer00000000000000
NOOWNER=rec_noowner000000000000000
psql_q "INSERT INTO ledger.reconciliation_runs (tenant_id, id, livemode, gateway, status, created_by, owner)
        VALUES ('$TEN', '$LIVE', false, 'stripe', 'running', 'test', 770001),
               ('$TEN', '$DEAD', false, 'stripe', 'running', 'test', 770002),
               ('$TEN', '$NOOWNER', false, 'stripe', 'running', 'test', NULL)" >/dev/null

# --- restart -------------------------------------------------------------------------------------------
tokend_start R2 || { fail "tokend restarts"; return; }
H2C="http://127.0.0.1:$H2C_R2"
out=$(api GET "$H2C/v1/reconciliations/$RUN" "$RKEY")
expect_eq "after the restart the run is failed: interrupted by restart" \
    "$(st "$out") $(js "$out" '[.status, .error.error, (.finished_at != null)]|map(tostring)|join(" ")')" \
    "200 failed interrupted by restart true"
expect_eq "the interruption is audited" \
    "$(psql_q "SELECT actor || ' ' || (detail->>'reason') FROM audit.events WHERE action = 'reconciliation.interrupted' AND object = '$RUN' AND tenant_id = '$TEN'")" \
    "tokend interrupted by restart"
expect_eq "exceptions of the failed run: readable now (not 409)" \
    "$(st "$(api GET "$H2C/v1/reconciliations/$RUN/exceptions?format=csv" "$RKEY")")" "200"
expect_eq "a dead owner's run and an ownerless run: failed; a live owner's run: untouched" \
    "$(run_status $DEAD) $(run_status $NOOWNER) $(run_status $LIVE)" "failed failed running"

out=$(api POST "$H2C/v1/reconciliations?gateway=stripe" "$RKEY" "$T_DIR/t14.csv")
RUN2=$(js "$out" .id)
expect_eq "a new run can be started" "$(st "$out")" "202"
expect_true "the new run completes" wait_sql "SELECT status FROM ledger.reconciliation_runs WHERE id = '$RUN2'" succeeded 20
OWNER2=$(psql_q "SELECT owner FROM ledger.reconciliation_runs WHERE id = '$RUN2'")
expect_true "the restarted process has a new owner key" test -n "$OWNER2" -a "$OWNER2" != "$OWNER1"
out=$(api GET "$H2C/v1/reconciliations/$RUN2" "$RKEY")
expect_eq "the new run's summary" "$(js "$out" '[.status, .summary.missing_in_ledger]|map(tostring)|join(" ")')" "succeeded 2"

# --- several processes: a live run survives a neighbour's start and its own reaper ---------------------
expect_true "a session holds the exceptions table again" hold_exceptions
out=$(api POST "$H2C/v1/reconciliations?gateway=stripe" "$RKEY" "$T_DIR/t14.csv")
RUN3=$(js "$out" .id)
expect_true "a run of R2 is mid-way" wait_sql "$EXC_WAITING" t 10
tokend_start R3 || fail "a second tokend starts on the same database"
expect_eq "a second tokend's start leaves R2's live run running" "$(run_status "$RUN3")" "running"
release t14peer # the live stand-in dies; no one restarts it
expect_true "a live tokend's reaper fails the dead neighbour's run within a pass" \
    wait_sql "SELECT status FROM ledger.reconciliation_runs WHERE id = '$LIVE'" failed 20
expect_eq "...and leaves its own live run alone" "$(run_status "$RUN3")" "running"
release t14lock
expect_true "the held run completes once released" \
    wait_sql "SELECT status FROM ledger.reconciliation_runs WHERE id = '$RUN3'" succeeded 20
expect_eq "one audit row per interrupted run" \
    "$(psql_q "SELECT count(*) FROM audit.events WHERE action = 'reconciliation.interrupted' AND tenant_id = '$TEN'")" "4"
tokend_stop R3
tokend_stop R2
