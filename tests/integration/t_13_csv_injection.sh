# t_13_csv_injection.sh - CSV exports opened in a spreadsheet (issue #15, finding 11): text a
# client or a gateway chose (invoice_ref, settlement references) that starts with = + - @ TAB or
# CR comes out of every CSV route as "'..." (quoted, a ' in front: OWASP's rule), while the
# amounts tokend computes stay plain numbers. Routes: GET /v1/exports/{charges,refunds,events}
# ?format=csv, GET /v1/reconciliations/{id}/exceptions?format=csv, tokenctl reconcile --exceptions.

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
T_REPORTING_DB=$(pg_conninfo "$T_DIR/pg" tokend_reporting)
TEN=$("${CTL[@]}" tenant create "csvinj-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,charges:write --test 2>/dev/null)
RKEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes reports:read --test 2>/dev/null)
tokend_start CI --reporting-db "$T_REPORTING_DB" || { fail "tokend starts (csv injection)"; return; }
H2C="http://127.0.0.1:$H2C_CI"
Y=$(($(date -u +%Y) + 1))
api() { # METHOD PATH KEY [BODY] -> "<body>\n<status>"
    if [ -n "${4:-}" ]; then
        curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $3" \
            -H 'content-type: application/json' --data-binary "$4" -w '\n%{http_code}' "$H2C$2"
    else
        curl -s --http2-prior-knowledge -X "$1" -H "authorization: Bearer $3" -w '\n%{http_code}' "$H2C$2"
    fi
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
get_csv() { # PATH OUT: a CSV export over HTTP/2, headers kept apart
    curl -s --http2 --http2-prior-knowledge -H "authorization: Bearer $RKEY" -D "$2.h" -o "$2" "$H2C$1"
}
# check_csv FILE NUMERIC_COLUMNS: every cell that starts with a formula character must be a
# plain integer in a numeric column; prints "ok" or the first offending cell
check_csv() {
    python3 - "$1" "$2" <<'PY'
import csv, re, sys
numeric = set(sys.argv[2].split(",")) if sys.argv[2] else set()
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
head = rows[0]
for r in rows[1:]:
    for name, cell in zip(head, r):
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            if name in numeric and re.fullmatch(r"-?[0-9]+", cell):
                continue
            print("formula cell in", name, repr(cell)); sys.exit(0)
print("ok")
PY
}

# --- charges and a refund whose invoice_ref is a formula ------------------------------------------------
TOK=$(api POST /v1/tokens "$KEY" "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}" | sed '$d' | jq -r .id)
expect_match "fixture token" "$TOK" '^tok_'
# JSON strings: =HYPERLINK("http://x"), +1+1, @SUM(A1), -2+3, TAB=1+1, CR=1+1
EVIL=('=HYPERLINK(\"http://x\")' '+1+1' '@SUM(A1)' '-2+3' '\t=1+1' '\r=1+1')
CHS=()
for i in "${!EVIL[@]}"; do
    out=$(api POST /v1/charges "$KEY" "{\"token\":\"$TOK\",\"amount\":$((i * 100 + 100)),\"currency\":\"usd\",\"invoice_ref\":\"${EVIL[$i]}\",\"description\":\"${EVIL[$i]}\"}")
    CHS+=("$(js "$out" .id)")
done
expect_eq "six charges with formula invoice refs stored as sent" \
    "$(pg_psql "$T_DIR/pg" -tAc "SELECT string_agg(invoice_ref, '|' ORDER BY amount) FROM ledger.charges WHERE tenant_id = '$TEN'")" \
    "$(printf '=HYPERLINK("http://x")|+1+1|@SUM(A1)|-2+3|\t=1+1|\r=1+1')"
out=$(api POST /v1/refunds "$KEY" "{\"charge\":\"${CHS[0]}\",\"amount\":40}")
expect_match "refund of the =HYPERLINK charge" "$(st "$out")" "^20[01]$"

# --- /v1/exports/charges ---------------------------------------------------------------------------------
get_csv "/v1/exports/charges?format=csv" "$T_DIR/t13.ch.csv"
expect_match "charges export over HTTP/2: 200 text/csv" "$(tr -d '\r' <"$T_DIR/t13.ch.csv.h" | grep -iE '^(HTTP/2|content-type)' | tr '\n' ' ')" '^HTTP/2 200 .*text/csv'
expect_match "charges export: =HYPERLINK written as a quoted text cell with a ' in front" \
    "$(cat "$T_DIR/t13.ch.csv")" ",\"'=HYPERLINK\(\"\"http://x\"\"\)\","
got=$(python3 -c 'import csv,json,sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
h = rows[0]
for r in sorted(rows[1:], key=lambda r: int(r[h.index("amount")])):
    print(json.dumps(r[h.index("invoice_ref")]) + " " + r[h.index("amount")])' "$T_DIR/t13.ch.csv" | tr '\n' ';')
read -r want <<'EOF_WANT'
"'=HYPERLINK(\"http://x\")" 100;"'+1+1" 200;"'@SUM(A1)" 300;"'-2+3" 400;"'\t=1+1" 500;"'\r=1+1" 600;
EOF_WANT
expect_eq "charges export: each formula invoice_ref neutralised, amounts plain numbers" "$got" "$want"
expect_eq "charges export: no formula cell anywhere" "$(check_csv "$T_DIR/t13.ch.csv" amount,amount_captured,amount_refunded)" "ok"
expect_match "charges export: amounts unquoted" "$(grep -F "${CHS[3]}" "$T_DIR/t13.ch.csv")" "^${CHS[3]},false,400,400,0,usd,"

# --- /v1/exports/refunds -----------------------------------------------------------------------------------
get_csv "/v1/exports/refunds?format=csv" "$T_DIR/t13.rf.csv"
expect_match "refunds export: the charge's invoice_ref neutralised, amount a number" \
    "$(grep -F "${CHS[0]}" "$T_DIR/t13.rf.csv")" "^re_[0-9A-Za-z]+,false,${CHS[0]},40,usd,[a-z]+,[^,]*,[^,]*,\"'=HYPERLINK\(\"\"http://x\"\"\)\","
expect_eq "refunds export: no formula cell anywhere" "$(check_csv "$T_DIR/t13.rf.csv" amount)" "ok"
# NDJSON is for programs: the values there are exactly what was stored
expect_eq "refunds ndjson: invoice_ref as stored" \
    "$(curl -s --http2-prior-knowledge -H "authorization: Bearer $RKEY" "$H2C/v1/exports/refunds?format=ndjson" | jq -r .invoice_ref)" \
    '=HYPERLINK("http://x")'

# --- /v1/exports/events (data is JSON: it starts with {, but its cells go through the same writer) --------
get_csv "/v1/exports/events?format=csv" "$T_DIR/t13.ev.csv"
expect_eq "events export: no formula cell anywhere" "$(check_csv "$T_DIR/t13.ev.csv" "")" "ok"
expect_true "events export: rows present" test "$(wc -l <"$T_DIR/t13.ev.csv")" -ge 7

# --- reconciliation exceptions: references from the gateway's settlement file --------------------------------
printf '%s\r\n' 'balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,description' \
    'txn_1,2030-01-15 12:00:00,usd,10.00,0.59,9.41,charge,=HYPERLINK(A1),x' \
    'txn_2,2030-01-15 12:00:00,usd,12.34,0.66,11.68,charge,+1+1,x' \
    'txn_3,2030-01-15 12:00:00,usd,1.00,0.00,1.00,charge,@SUM(A1),x' \
    'txn_4,2030-01-15 12:00:00,usd,-3.00,0.00,-3.00,refund,-2+3,x' \
    "txn_5,2030-01-15 12:00:00,usd,2.00,0.00,2.00,charge,=cmd|'/Ccalc'!A0,x" >"$T_DIR/t13.stripe.csv"
out=$(curl -s --http2-prior-knowledge -X POST -H "authorization: Bearer $RKEY" -H 'content-type: text/csv' \
    --data-binary "@$T_DIR/t13.stripe.csv" -w '\n%{http_code}' "$H2C/v1/reconciliations?gateway=stripe")
RUN=$(js "$out" .id)
expect_eq "POST a report with formula references: 202" "$(st "$out")" "202"
for i in $(seq 1 200); do
    s=$(api GET "/v1/reconciliations/$RUN" "$RKEY" | sed '$d' | jq -r .status)
    [ "$s" = running ] || break
    sleep 0.05
done
expect_eq "the run succeeded" "$s" "succeeded"
get_csv "/v1/reconciliations/$RUN/exceptions?format=csv" "$T_DIR/t13.exc.csv"
exc_refs() { # FILE -> "reference report_amount line" of the missing_in_ledger rows, sorted
    python3 -c 'import csv,sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
h = rows[0]
out = [r[h.index("reference")] + " " + r[h.index("report_amount")] + " " + r[h.index("line")]
       for r in rows[1:] if r[0] == "missing_in_ledger"]
print(";".join(sorted(out)))' "$1"
}
WANT_EXC="'+1+1 1234 3;'-2+3 300 5;'=HYPERLINK(A1) 1000 2;'=cmd|'/Ccalc'!A0 200 6;'@SUM(A1) 100 4"
expect_eq "exceptions CSV (API): every reference neutralised, amounts and lines numbers" "$(exc_refs "$T_DIR/t13.exc.csv")" "$WANT_EXC"
expect_match "exceptions CSV (API): the raw cell is quoted" "$(cat "$T_DIR/t13.exc.csv")" "missing_in_ledger,2,\"'=HYPERLINK\(A1\)\",,1000,"
expect_eq "exceptions CSV (API): no formula cell anywhere" "$(check_csv "$T_DIR/t13.exc.csv" line,report_amount,ledger_amount)" "ok"

"${CTL[@]}" reconcile --gateway stripe --file "$T_DIR/t13.stripe.csv" --tenant "$TEN" --test \
    --exceptions "$T_DIR/t13.ctl.csv" >/dev/null 2>"$T_DIR/t13.ctl.err"
expect_eq "exceptions CSV (tokenctl): every reference neutralised" "$(exc_refs "$T_DIR/t13.ctl.csv")" "$WANT_EXC"
expect_eq "exceptions CSV (tokenctl): no formula cell anywhere" "$(check_csv "$T_DIR/t13.ctl.csv" line,report_amount,ledger_amount)" "ok"

tokend_stop CI
