# t_18_audit_report.sh - `tokenctl audit report`: what was done since a time, by which API key
# or admin, to which tenants' objects (breach scoping, issue #18), as text and JSON.

OUT="$T_DIR/t31.out"
ERR="$T_DIR/t31.err"
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
SINCE=$(pg_psql "$T_DIR/pg" -tAc "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
TA=$("${CTL[@]}" tenant create "report-a-$$" 2>/dev/null)
TB=$("${CTL[@]}" tenant create "report-b-$$" 2>/dev/null)
KA=$("${CTL[@]}" key create --tenant "$TA" --scopes tokens:write,tokens:read --test 2>/dev/null)
KB=$("${CTL[@]}" key create --tenant "$TB" --scopes tokens:write --test 2>/dev/null)
KA_ID=$(pg_psql "$T_DIR/pg" -tAc "SELECT id FROM vault.api_keys WHERE tenant_id = '$TA'")
tokend_start R31 || { fail "tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_R31"
NEXT_YEAR=$(($(date -u +%Y) + 1))
tokenise() {
    curl -s --http2-prior-knowledge -H "authorization: Bearer $1" -H 'content-type: application/json' \
        --data-binary "{\"card\":{\"number\":\"$2\",\"exp_month\":12,\"exp_year\":$NEXT_YEAR,\"cvc\":\"123\"}}" \
        "$H2C/v1/tokens" | jq -r .id
}
A1=$(tokenise "$KA" 4242424242424242)
A2=$(tokenise "$KA" 5555555555554444)
B1=$(tokenise "$KB" 4242424242424242)
expect_match "fixtures: three tokens" "$A1 $A2 $B1" '^tok_[^ ]+ tok_[^ ]+ tok_[^ ]+$'
tokend_stop R31

r() { "${CTL[@]}" audit report "$@" >"$OUT" 2>"$ERR"; printf %s "$?"; }
expect_eq "report for tenant A exits 0" "$(r --since "$SINCE" --tenant "$TA")" 0
expect_eq "text: tenant, then each actor with its kind, then each action" "$(cat "$OUT")" \
"audit report: events since $SINCE: 3 groups
tenant $TA \"report-a-$$\"
  by $KA_ID [api key sk_test_...${KA: -4} (tokens:write,tokens:read)]
    token.created: 2 events on 2 objects, $(sed -n 's/.*token.created: 2 events on 2 objects, \(.*\); e.g.*/\1/p' "$OUT"); e.g. $(printf '%s\n' "$A1" "$A2" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
  by tokenctl [admin (tokenctl)]
    key.created: 1 events on 1 objects, $(sed -n 's/.*key.created: 1 events on 1 objects, \(.*\); e.g.*/\1/p' "$OUT"); e.g. $KA_ID
    tenant.created: 1 events on 1 objects, $(sed -n 's/.*tenant.created: 1 events on 1 objects, \(.*\); e.g.*/\1/p' "$OUT"); e.g. $TA"
expect_match "times are UTC ranges" "$(grep token.created "$OUT")" \
    'objects, [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \.\. [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z;'
expect_eq "tenant B's token is not in A's report" "$(grep -c "$B1" "$OUT")" 0

expect_eq "--tenant takes a name too" "$(r --since "$SINCE" --tenant "report-b-$$" --json)" 0
expect_eq "json: one object per group, tenant B's" \
    "$(jq -c '[.[] | {tenant_id, actor_kind, action, events, objects, sample_objects}]' "$OUT")" \
    "$(jq -cn --arg t "$TB" --arg b1 "$B1" --arg k "$(pg_psql "$T_DIR/pg" -tAc "SELECT id FROM vault.api_keys WHERE tenant_id = '$TB'")" --arg hint "${KB: -4}" \
      '[{tenant_id:$t, actor_kind:("api key sk_test_..." + $hint + " (tokens:write)"), action:"token.created", events:1, objects:1, sample_objects:[$b1]},
        {tenant_id:$t, actor_kind:"admin (tokenctl)", action:"key.created", events:1, objects:1, sample_objects:[$k]},
        {tenant_id:$t, actor_kind:"admin (tokenctl)", action:"tenant.created", events:1, objects:1, sample_objects:[$t]}]')"
expect_eq "all tenants: both appear" "$(r --since "$SINCE" --json; jq -r '[.[].tenant_id] | unique | map(select(. == "'"$TA"'" or . == "'"$TB"'")) | length' "$OUT")" "02"
expect_eq "--until before everything: no groups" \
    "$(r --since "$SINCE" --until "$SINCE" --tenant "$TA"; cat "$OUT")" "0audit report: events since $SINCE until $SINCE: 0 groups"
expect_eq "a bad time: exit 2 and one line" "$(r --since yesterdayish; cat "$ERR")" \
    "2tokenctl: audit report: --since/--until: not a time (e.g. 2024-05-01T12:00:00Z)"
expect_eq "no --since: usage, exit 2" "$(r --tenant "$TA")" 2
expect_eq "unknown tenant: exit 1, named" "$(r --since "$SINCE" --tenant nobody-$$; cat "$ERR")" \
    "1tokenctl: audit report: no such tenant: nobody-$$"
