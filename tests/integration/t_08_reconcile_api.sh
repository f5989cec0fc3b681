# t_08_reconcile_api.sh - settlement matching over HTTP: POST /v1/reconciliations (Stripe and
# Adyen reports with planted differences) -> GET until done -> summary and exceptions CSV list
# exactly the planted exceptions; malformed lines with line numbers; tenant separation (404);
# scopes (403); GET /v1/events and /v1/exports/events (pagination visits each event once).

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
T_REPORTING_DB=$(pg_conninfo "$T_DIR/pg" tokend_reporting)
TEN=$("${CTL[@]}" tenant create "recapi-$$" 2>/dev/null)
TEN2=$("${CTL[@]}" tenant create "recapi-other-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,charges:write --test 2>/dev/null)
RKEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes reports:read --test 2>/dev/null)
TKEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write --test 2>/dev/null)
RKEY2=$("${CTL[@]}" key create --tenant "$TEN2" --scopes reports:read --test 2>/dev/null)
tokend_start RA --reporting-db "$T_REPORTING_DB" --body-limit 1048576 || { fail "tokend starts (reconcile api)"; return; }
H2C="http://127.0.0.1:$H2C_RA"
Y=$(($(date -u +%Y) + 1))
psql_q() { pg_psql "$T_DIR/pg" -tAc "$1"; }
api() { # METHOD PATH KEY [BODY [CONTENT-TYPE]] -> "<body>\n<status>"
    local m=$1 p=$2 k=$3 b=${4:-} ct=${5:-application/json}
    if [ -n "$b" ]; then
        curl -s --http2-prior-knowledge -X "$m" -H "authorization: Bearer $k" -H "content-type: $ct" \
            --data-binary "$b" -w '\n%{http_code}' "$H2C$p"
    else
        curl -s --http2-prior-knowledge -X "$m" -H "authorization: Bearer $k" -w '\n%{http_code}' "$H2C$p"
    fi
}
post_file() { # GATEWAY FILE KEY -> "<body>\n<status>"
    curl -s --http2-prior-knowledge -X POST -H "authorization: Bearer $3" -H 'content-type: text/csv' \
        --data-binary "@$2" -w '\n%{http_code}' "$H2C/v1/reconciliations?gateway=$1"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
wait_run() { # ID KEY -> the final GET body
    local i out
    for i in $(seq 1 200); do
        out=$(api GET "/v1/reconciliations/$1" "$2")
        [ "$(js "$out" .status)" = running ] || { sed '$d' <<<"$out"; return; }
        sleep 0.05
    done
    sed '$d' <<<"$out"
}
exc_of() { # CSV on stdin -> "kind line reference" lines, sorted, joined by ';'
    python3 -c 'import csv,sys
rows = list(csv.reader(sys.stdin))
assert rows[0] == ["kind","line","reference","object_id","report_amount","ledger_amount","report_currency","ledger_currency","reason"], rows[0]
for r in rows[1:]: print(r[0], r[1], r[2])' | sort | tr '\n' ';'
}

# --- events through the API ---------------------------------------------------------------------------
TOK=$(api POST /v1/tokens "$KEY" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}" | sed '$d' | jq -r .id)
expect_match "fixture token" "$TOK" '^tok_'
CHS=()
for i in $(seq 1 7); do
    CHS+=("$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":$((i * 100)),\"currency\":\"usd\"}" | sed '$d' | jq -r .id)")
done
expect_match "fixture charges" "${CHS[*]}" '^ch_.* ch_'
want_events=$(psql_q "SELECT count(*) FROM ledger.events WHERE tenant_id = '$TEN'")
expect_true "charges made events" test "$want_events" -ge 7
out=$(api GET /v1/events "$RKEY")
expect_eq "GET /v1/events with reports:read" "$(st "$out") $(js "$out" '.object+" "+(.data|length|tostring)+" "+(.has_more|tostring)')" "200 list $want_events false"
expect_eq "event row shape" "$(js "$out" '.data[0]|[.object,(.id|test("^evt_")|tostring),(.type|test("^charge\\.")|tostring),.data.object,(.data.id|test("^ch_")|tostring)]|@tsv')" "$(printf 'event\ttrue\ttrue\tcharge\ttrue')"
expect_eq "event data carries no token id" "$(js "$out" '[.data[].data|has("token")]|any|tostring')" "false"
seen="$T_DIR/t08.events"
: >"$seen"
cursor=""
pages=0
while :; do
    out=$(api GET "/v1/events?limit=2${cursor:+&starting_after=$cursor}" "$RKEY")
    [ "$(st "$out")" = 200 ] || { fail "events page $pages" "$(st "$out")"; break; }
    js "$out" '.data[].id' >>"$seen"
    pages=$((pages + 1))
    [ "$(js "$out" .has_more)" = true ] || break
    cursor=$(js "$out" '.data[-1].id')
    [ $pages -lt 100 ] || break
done
expect_eq "events pagination: each event once" "$(sort "$seen" | uniq | wc -l) $(wc -l <"$seen")" "$want_events $want_events"
expect_eq "events pagination: all of them" "$(sort "$seen" | tr '\n' ' ')" "$(psql_q "SELECT id FROM ledger.events WHERE tenant_id = '$TEN' ORDER BY id" | sort | tr '\n' ' ')"
out=$(api GET "/v1/events?type=charge.succeeded&limit=1000" "$KEY")
expect_eq "events: type filter, charges:write may list" "$(st "$out") $(js "$out" '[.data[].type]|unique|join(",")')" "200 charge.succeeded"
out=$(api GET "/v1/events?created_to=2000-01-01T00:00:00Z" "$RKEY")
expect_eq "events: period filter" "$(js "$out" '.data|length')" "0"
for q in "type=Bad" "status=succeeded" "currency=usd" "starting_after=ch_0000000000000000000000" "limit=0"; do
    out=$(api GET "/v1/events?$q" "$RKEY")
    expect_eq "events: 422 for $q" "$(st "$out") $(js "$out" .param)" "422 ${q%%=*}"
done
out=$(api GET /v1/events "$RKEY2")
expect_eq "events: another tenant sees none of them" "$(js "$out" '.data|length')" "0"
out=$(api GET /v1/events "$TKEY")
expect_eq "events: tokens:write only is 403" "$(st "$out")" "403"
curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" -D "$T_DIR/t08.h" "$H2C/v1/exports/events?format=csv" >"$T_DIR/t08.ev.csv"
expect_match "export events: text/csv" "$(tr -d '\r' <"$T_DIR/t08.h" | grep -i '^content-type')" 'text/csv'
n=$(python3 -c 'import csv,sys,json
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert rows[0] == ["id","livemode","type","data","created_at"], rows[0]
for r in rows[1:]: json.loads(r[3])
print(len(rows) - 1)' "$T_DIR/t08.ev.csv")
expect_eq "export events: every event, data is JSON" "$n" "$want_events"
out=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" "$H2C/v1/exports/events?format=ndjson&type=charge.succeeded" | jq -r .type | sort -u)
expect_eq "export events: ndjson with type filter" "$out" "charge.succeeded"
fps=$(psql_q "SELECT encode(fingerprint, 'hex') FROM vault.tokens WHERE tenant_id = '$TEN'")
leak=0
for s in $fps; do grep -qi "${s:0:32}" "$T_DIR/t08.ev.csv" && leak=1; done
grep -Eq "4242424242424242|fingerprint|sealed|$TOK" "$T_DIR/t08.ev.csv" && leak=1
expect_eq "export events: no fingerprint, card number or token id" "$leak" "0"

# --- settlement reports with planted differences (the t_07 fixtures) -----------------------------------
ledger() { # GATEWAY PREFIX: charges P1..P7 (P3 in usd, P7 in eur), refunds on P1 (PR1, PR2)
    local g=$1 p=$2
    psql_q "INSERT INTO ledger.charges (tenant_id, id, livemode, token_id, amount, currency, capture_method, status,
              captured_amount, refunded_amount, gateway, gateway_ref, created_by, created_at)
            SELECT '$TEN', 'ch_' || substr(md5('$p' || g), 1, 22), false, '$TOK', g * 1000,
              CASE WHEN g = 7 THEN 'eur' ELSE 'usd' END, 'automatic',
              CASE WHEN g = 1 THEN 'partially_refunded' ELSE 'succeeded' END, g * 1000,
              CASE WHEN g = 1 THEN 800 ELSE 0 END, '$g', '${p}' || g, 'test', '2030-01-15 12:00:00+00'
            FROM generate_series(1, 7) g;
            INSERT INTO ledger.refunds (tenant_id, id, livemode, charge_id, amount, currency, status, gateway,
              gateway_ref, created_by, created_at)
            SELECT '$TEN', 're_' || substr(md5('$p' || 'r' || g), 1, 22), false, 'ch_' || substr(md5('$p' || 1), 1, 22),
              g * 300 + 100 * (g - 1), 'usd', 'succeeded', '$g', '${p}R' || g, 'test', '2030-01-15 12:00:00+00'
            FROM generate_series(1, 2) g" >/dev/null
}
ledger stripe "ch_3S"
ledger adyen "PSP"
printf '\xef\xbb\xbf' >"$T_DIR/t08.stripe.csv"
cat >>"$T_DIR/t08.stripe.csv" <<'CSV'
balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,description
txn_1,2030-01-15 12:00:00,usd,10.00,0.59,9.41,charge,ch_3S1,"Order 1, ""rush""
second line"
txn_2,2030-01-15 12:00:00,usd,21.00,0.91,20.09,charge,ch_3S2,wrong amount
txn_3,2030-01-15 12:00:00,eur,30.00,1.17,28.83,charge,ch_3S3,wrong currency
txn_5,2030-01-15 12:00:00,usd,50.00,1.75,48.25,charge,ch_3S5,
txn_6,2030-01-15 12:00:00,usd,60.00,2.04,57.96,charge,ch_3S6,
txn_7,2030-01-15 12:00:00,eur,70.00,2.33,67.67,charge,ch_3S7,
txn_8,2030-01-15 12:00:00,usd,12.34,0.66,11.68,charge,ch_3EXTRA,not ours
txn_9,2030-01-15 12:00:00,usd,-3.00,0.00,-3.00,refund,ch_3SR1,refund
txn_10,2030-01-15 12:00:00,usd,-1.23,0.00,-1.23,fee,,Radar fees
txn_11,2030-01-15 12:00:00,usd,-100.00,0.00,-100.00,payout,po_1,payout
txn_12,2030-01-15 12:00:00,usd,abc,0.00,0.00,charge,ch_3S9,bad amount
txn_13,2030-01-15 12:00:00,usd,1.00,charge,ch_3S9
CSV
sed -i 's/$/\r/' "$T_DIR/t08.stripe.csv"

out=$(post_file stripe "$T_DIR/t08.stripe.csv" "$RKEY")
RUN_S=$(js "$out" .id)
expect_eq "POST stripe report: 202 running" "$(st "$out") $(js "$out" .status)" "202 running"
expect_match "run id" "$RUN_S" '^rec_[0-9A-Za-z]{22}$'
sum=$(wait_run "$RUN_S" "$RKEY")
expect_eq "stripe run: succeeded" "$(jq -r .status <<<"$sum")" "succeeded"
expect_eq "stripe run: counts (matched, missing ledger/report, amount, currency, malformed)" \
    "$(jq -r '.summary|[.matched,.missing_in_ledger,.missing_in_report,.amount_mismatches,.currency_mismatches,.malformed]|map(tostring)|join(" ")' <<<"$sum")" "5 1 2 1 1 2"
# usd: matched 4 (ch_3S1, ch_3S5, ch_3S6, ch_3SR1), fees 0.59+0.91+1.75+2.04+0.66 + the 1.23 fee line
expect_eq "stripe run: usd totals (matched, amount, charges, refunds, fees)" \
    "$(jq -r '.summary.currencies[]|select(.currency=="usd")|[.matched,.matched_amount,.charges,.refunds,.fees]|map(tostring)|join(" ")' <<<"$sum")" "4 11700 15334 300 718"
expect_eq "stripe run: malformed lines with reasons" \
    "$(jq -r '[.summary.malformed_lines[]|(.line|tostring)+":"+(.reason|length>0|tostring)]|join(",")' <<<"$sum")" "13:true,14:true"
expect_eq "stripe run: period" "$(jq -r '.summary.period.from+" "+.summary.period.to' <<<"$sum")" "2030-01-15T12:00:00Z 2030-01-15T12:00:00Z"
out=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" -D "$T_DIR/t08.eh" "$H2C/v1/reconciliations/$RUN_S/exceptions?format=csv")
expect_match "exceptions: text/csv" "$(tr -d '\r' <"$T_DIR/t08.eh" | grep -i '^content-type')" 'text/csv'
want=$(printf '%s\n' "amount_mismatch 4 ch_3S2" "currency_mismatch 5 ch_3S3" "missing_in_ledger 9 ch_3EXTRA" \
    "malformed 13 " "malformed 14 " "missing_in_report  ch_3S4" "missing_in_report  ch_3SR2" | sort | tr '\n' ';')
expect_eq "stripe exceptions CSV: exactly the planted exceptions" "$(exc_of <<<"$out")" "$want"
expect_match "stripe exceptions CSV: malformed reasons" "$out" 'gross is not an amount'

cat >"$T_DIR/t08.adyen.csv" <<'CSV'
Company Account,Merchant Account,Psp Reference,Merchant Reference,Payment Method,Creation Date,TimeZone,Type,Modification Reference,Gross Currency,Gross Debit (GC),Gross Credit (GC),Exchange Rate,Net Currency,Net Debit (NC),Net Credit (NC),Commission (NC),Markup (NC),Scheme Fees (NC),Interchange (NC),Payment Method Variant,Modification Merchant Reference,Batch Number
Co,Shop,PSP1,order-1,visa,2030-01-15 12:00:00,UTC,Settled,PSP1,USD,,10.00,1,USD,,9.70,0.10,0.05,0.05,0.10,visa,,1
Co,Shop,PSP2,order-2,visa,2030-01-15 12:00:00,UTC,Settled,PSP2,USD,,20.01,1,USD,,19.71,0.10,0.05,0.05,0.10,visa,,1
Co,Shop,PSP3,order-3,visa,2030-01-15 12:00:00,UTC,Settled,PSP3,GBP,,30.00,1,GBP,,29.70,0.10,0.05,0.05,0.10,visa,,1
Co,Shop,PSP5,order-5,mc,2030-01-15 12:00:00,UTC,Settled,PSP5,USD,,50.00,1,USD,,49.70,0.10,0.05,0.05,0.10,mc,,1
Co,Shop,PSP6,order-6,mc,2030-01-15 12:00:00,UTC,Settled,PSP6,USD,,60.00,1,USD,,59.70,0.10,0.05,0.05,0.10,mc,,1
Co,Shop,PSP7,order-7,mc,2030-01-15 12:00:00,UTC,Settled,PSP7,EUR,,70.00,1,EUR,,69.70,0.10,0.05,0.05,0.10,mc,,1
Co,Shop,PSPX,"order, ""x""",visa,2030-01-15 12:00:00,UTC,Settled,PSPX,USD,,5.00,1,USD,,4.90,0.10,,,,visa,,1
Co,Shop,PSP1,order-1,visa,2030-01-15 12:00:00,UTC,Refunded,PSPR1,USD,3.00,,1,USD,3.00,,,,,,visa,refund-1,1
Co,Shop,,,,2030-01-15 12:00:00,UTC,Fee,,,,,,USD,2.50,,,,,,,,1
Co,Shop,,,,2030-01-15 12:00:00,UTC,MerchantPayout,,,,,,USD,100.00,,,,,,,,1
Co,Shop,PSP9,order-9,visa,2030-01-15 12:00:00,UTC,Settled,PSP9,USD,,1.2.3,1,USD,,1.00,,,,,visa,,1
Co,Shop,PSP9,order-9,visa,2030-01-15 12:00:00,UTC,Settled,PSP9,XYZ,,1.00,1,USD,,1.00,,,,,visa,,1
CSV
out=$(post_file adyen "$T_DIR/t08.adyen.csv" "$RKEY")
RUN_A=$(js "$out" .id)
expect_eq "POST adyen report: 202 running" "$(st "$out") $(js "$out" .status)" "202 running"
sum=$(wait_run "$RUN_A" "$RKEY")
expect_eq "adyen run: succeeded, counts" \
    "$(jq -r '[.status,.summary.matched,.summary.missing_in_ledger,.summary.missing_in_report,.summary.amount_mismatches,.summary.currency_mismatches,.summary.malformed]|map(tostring)|join(" ")' <<<"$sum")" "succeeded 5 1 2 1 1 2"
# usd fees: 0.30 on PSP1, PSP2, PSP5, PSP6, 0.10 on PSPX, and the 2.50 Fee line
expect_eq "adyen run: usd totals include the fee line" \
    "$(jq -r '.summary.currencies[]|select(.currency=="usd")|[.matched,.matched_amount,.charges,.refunds,.fees]|map(tostring)|join(" ")' <<<"$sum")" "4 11700 14501 300 380"
out=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" "$H2C/v1/reconciliations/$RUN_A/exceptions?format=csv")
want=$(printf '%s\n' "amount_mismatch 3 PSP2" "currency_mismatch 4 PSP3" "missing_in_ledger 8 PSPX" \
    "malformed 12 " "malformed 13 " "missing_in_report  PSP4" "missing_in_report  PSPR2" | sort | tr '\n' ';')
expect_eq "adyen exceptions CSV: exactly the planted exceptions" "$(exc_of <<<"$out")" "$want"
expect_eq "run rows written through the service role" \
    "$(psql_q "SELECT count(*) FROM ledger.reconciliation_exceptions WHERE tenant_id = '$TEN' AND run_id IN ('$RUN_S', '$RUN_A')")" "14"

# --- many batches: 3,700 ledger charges, a report of 3,100 lines -------------------------------------
# (lookups of 1,000 references, exceptions written 500 at a time, missing rows read 1,000 a page)
TEN3=$("${CTL[@]}" tenant create "recapi-big-$$" 2>/dev/null)
RKEY3=$("${CTL[@]}" key create --tenant "$TEN3" --scopes reports:read --test 2>/dev/null)
KEY3=$("${CTL[@]}" key create --tenant "$TEN3" --scopes tokens:write --test 2>/dev/null)
TOK3=$(api POST /v1/tokens "$KEY3" "{\"card\":{\"number\":\"5555555555554444\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}" | sed '$d' | jq -r .id)
psql_q "INSERT INTO ledger.charges (tenant_id, id, livemode, token_id, amount, currency, capture_method, status,
          captured_amount, gateway, gateway_ref, created_by, created_at)
        SELECT '$TEN3', 'ch_' || lpad(g::text, 22, '0'), false, '$TOK3', 1000, 'usd', 'automatic', 'succeeded',
          1000, 'stripe', 'ch_3B' || g, 'test', '2030-02-01 12:00:00+00'
        FROM generate_series(1, 3700) g" >/dev/null
{
    echo "created_utc,currency,gross,fee,net,reporting_category,source_id"
    for g in $(seq 1 2500); do echo "2030-02-01 12:00:00,usd,10.00,0.30,9.70,charge,ch_3B$g"; done
    for g in $(seq 1 600); do echo "2030-02-01 12:00:00,usd,10.00,0.30,9.70,charge,ch_3BX$g"; done
} >"$T_DIR/t08.big.stripe.csv"
out=$(post_file stripe "$T_DIR/t08.big.stripe.csv" "$RKEY3")
RUN_B=$(js "$out" .id)
t0=$(date +%s%N)
tk=$(api POST /v1/tokens "$KEY3" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}")
expect_eq "tokenising while a run goes on" "$(st "$tk")" "201"
echo "  POST /v1/tokens during a run: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
sum=$(wait_run "$RUN_B" "$RKEY3")
expect_eq "big run: succeeded, matched, missing in ledger, missing in report" \
    "$(jq -r '[.status,.summary.lines,.summary.matched,.summary.missing_in_ledger,.summary.missing_in_report]|map(tostring)|join(" ")' <<<"$sum")" "succeeded 3100 2500 600 1200"
curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY3" "$H2C/v1/reconciliations/$RUN_B/exceptions?format=csv" >"$T_DIR/t08.big.exc"
got=$(python3 -c 'import csv,sys
rows = list(csv.reader(open(sys.argv[1], newline="")))[1:]
print(len(rows), len(set(r[2] for r in rows)),
      sum(1 for r in rows if r[0] == "missing_in_ledger" and r[2].startswith("ch_3BX")),
      sum(1 for r in rows if r[0] == "missing_in_report" and 2501 <= int(r[2][5:] or 0) <= 3700))' "$T_DIR/t08.big.exc")
expect_eq "big run: every exception once in the CSV (rows, distinct, extra, missing)" "$got" "1800 1800 600 1200"

# --- a report of the other gateway: the run fails with the header problem ------------------------------
out=$(post_file adyen "$T_DIR/t08.stripe.csv" "$RKEY")
sum=$(wait_run "$(js "$out" .id)" "$RKEY")
expect_eq "wrong format: run failed with the reason" "$(jq -r '.status+" "+(.error.error|test("Psp Reference")|tostring)' <<<"$sum")" "failed true"

# --- access --------------------------------------------------------------------------------------------
out=$(api GET "/v1/reconciliations/$RUN_S" "$RKEY2")
expect_eq "another tenant's run: 404" "$(st "$out") $(js "$out" .code)" "404 not_found"
out=$(api GET "/v1/reconciliations/$RUN_S/exceptions?format=csv" "$RKEY2")
expect_eq "another tenant's exceptions: 404" "$(st "$out")" "404"
out=$(api GET "/v1/reconciliations/rec_0000000000000000000000" "$RKEY")
expect_eq "unknown run: 404" "$(st "$out")" "404"
out=$(api GET "/v1/reconciliations/nope" "$RKEY")
expect_eq "malformed run id: 404" "$(st "$out")" "404"
out=$(post_file stripe "$T_DIR/t08.stripe.csv" "$TKEY")
expect_eq "tokens:write only cannot POST a report: 403" "$(st "$out")" "403"
out=$(api GET "/v1/reconciliations/$RUN_S" "$TKEY")
expect_eq "tokens:write only cannot read a run: 403" "$(st "$out")" "403"
out=$(post_file stripe "$T_DIR/t08.stripe.csv" "$KEY")
expect_eq "charges:write cannot POST a report: 403" "$(st "$out")" "403"
out=$(post_file paypal "$T_DIR/t08.stripe.csv" "$RKEY")
expect_eq "unknown gateway: 422" "$(st "$out") $(js "$out" .param)" "422 gateway"
out=$(api POST "/v1/reconciliations?gateway=stripe" "$RKEY" '{"a":1}')
expect_eq "not text/csv: 415" "$(st "$out")" "415"
out=$(api GET "/v1/reconciliations/$RUN_S/exceptions?format=xml" "$RKEY")
expect_eq "exceptions: format=xml 422" "$(st "$out")" "422"
head -c 1200000 /dev/zero | tr '\0' 'a' >"$T_DIR/t08.big.csv"
out=$(post_file stripe "$T_DIR/t08.big.csv" "$RKEY")
expect_match "a report over --body-limit: refused (413 or stream reset; use tokenctl reconcile)" "$(st "$out")" '^(413|000)$'
expect_eq "no run row for a refused report" "$(psql_q "SELECT count(*) FROM ledger.reconciliation_runs WHERE tenant_id = '$TEN'")" "3"
expect_eq "tokend still answers" "$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "$H2C/healthz")" "200"
tokend_stop RA
