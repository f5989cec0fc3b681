# t_21_walkthrough.sh - `make run` as a new user meets it: scripts/dev-run.sh brings up the
# whole system (its own PostgreSQL, gwsim as Stripe and Adyen, a webhook receiver, the demo
# shop, tokend with reporting and metrics), the walkthrough it prints runs as printed, Ctrl-C
# stops everything it started, and a second start reuses what the first made.

WT="$T_DIR/t21"
mkdir -p "$WT" && chmod 0711 "$WT"
wt_env=(DEV_VAR="$WT/var" DEV_LISTEN="127.0.0.1:$(free_port)" DEV_LISTEN_TLS="127.0.0.1:$(free_port)"
    DEV_METRICS="127.0.0.1:$(free_port)" DEV_GWSIM_PORT="$(free_port)" DEV_HOOK_PORT="$(free_port)"
    DEV_SHOP_PORT="$(free_port)" DEV_SHOP_OTHER_PORT="$(free_port)" BUILD="$BUILD")
wt_start() { # LOG: dev-run in its own process group; waits for var/ready
    env "${wt_env[@]}" setsid scripts/dev-run.sh >"$1" 2>&1 &
    WT_PID=$!
    T_PIDS+=("$WT_PID")
    local i
    for i in $(seq 1 240); do
        [ -f "$WT/var/ready" ] && return 0
        kill -0 "$WT_PID" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}
wt_stop() { # Ctrl-C, as a terminal sends it: SIGINT to the process group
    kill -INT -- "-$WT_PID" 2>/dev/null
    local i
    for i in $(seq 1 120); do
        kill -0 "$WT_PID" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -KILL -- "-$WT_PID" 2>/dev/null
    return 1
}

if ! wt_start "$WT/run1.log"; then
    fail "make run: everything starts" "$(tail -n 20 "$WT/run1.log")"
    wt_stop
    return
fi
ok "make run: everything starts"
out=$(cat "$WT/run1.log")
for what in "tokend h2c:" "gwsim:" "webhooks:" "metrics:" "demo shop:" "1. Checkout" "2. Invoicing" \
    "3. Gateway webhook" "4. Finance" "5. Operations"; do
    expect_match "make run prints: $what" "$out" "$what"
done
expect_eq "the printed commands have no placeholders" "$(grep -cE 'tok_\.\.\.|<[a-z_]+>|REPLACE|YOUR_' "$WT/run1.log")" 0
# the printed walkthrough is the saved script, line for line (tokend logs to the same terminal:
# a JSON log line it writes meanwhile is not part of what was printed)
sed -n '3,$p' "$WT/var/walkthrough.sh" >"$WT/saved.txt"
sed -n '/^The walkthrough, one user at a time/,/^Stop with Ctrl-C/p' "$WT/run1.log" | grep -v '^{"ts":' |
    sed '1d;$d' | sed '$d' >"$WT/printed.txt"
if cmp -s "$WT/saved.txt" "$WT/printed.txt"; then
    ok "what it prints is what var/walkthrough.sh runs, line for line"
else
    fail "what it prints is what var/walkthrough.sh runs, line for line" \
        "$(diff "$WT/saved.txt" "$WT/printed.txt" | head -n 20)"
fi

bash "$WT/var/walkthrough.sh" >"$WT/walk.out" 2>"$WT/walk.err"
expect_eq "the walkthrough runs as printed (exit 0)" "$?" 0
w=$(cat "$WT/walk.out")
expect_match "walkthrough: a token" "$w" 'token: tok_[0-9A-Za-z]{22}'
expect_match "walkthrough: the charge succeeded at gwsim's Stripe" "$w" '"status":"succeeded","amount":1999'
expect_match "walkthrough: the refund" "$w" '"status":"succeeded","amount":500'
expect_match "walkthrough: the signed gateway event applied" "$w" '"applied":true'
expect_match "walkthrough: which captured the authorised charge" "$w" '"status":"succeeded","amount_captured":1000'
expect_match "walkthrough: the receiver verified tokend's signatures" "$w" 'sig=ok evt_'
expect_match "walkthrough: the export has a header row" "$w" 'id,livemode,amount'
expect_match "walkthrough: the settlement file matched the charge" "$w" '"status":"succeeded".*"matched":1'
expect_match "walkthrough: metrics counted the requests" "$w" 'tokend_http_requests_total\{route="/v1/tokens",method="POST",status="201"\}'
expect_match "walkthrough: ends" "$w" 'walkthrough: done'
shop=$(env "${wt_env[@]}" bash -c 'curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$DEV_SHOP_PORT/"')
if command -v node >/dev/null; then expect_eq "the demo shop answers" "$shop" 200; fi
expect_eq "no card number in any log under var/" "$(cat "$WT"/var/*.log "$WT"/var/pg/*.log 2>/dev/null | grep -c 4242424242424242)" 0

pids=$(pgrep -g "$WT_PID" | tr '\n' ' ')
expect_true "Ctrl-C stops make run" wt_stop
left=0
for p in $pids; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
expect_eq "Ctrl-C stopped every process it started" "$left" 0
expect_true "... and the database" test ! -f "$WT/var/pg/data/postmaster.pid"

key1=$(md5sum <"$WT/var/dev-key")
if wt_start "$WT/run2.log"; then
    ok "a second make run starts on the same var/"
    expect_eq "... with the same dev key" "$(md5sum <"$WT/var/dev-key")" "$key1"
    expect_eq "... and no new tenant, gateway or receiver" "$(grep -cE 'created dev tenant|added the dev|subscribed' "$WT/run2.log")" 0
else
    fail "a second make run starts on the same var/" "$(tail -n 20 "$WT/run2.log")"
fi
wt_stop
rm -rf "$WT"
