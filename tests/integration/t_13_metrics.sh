# t_13_metrics.sh - /metrics on its own listener: what a few known requests leave in it, the
# exposition format as Prometheus' own promtool reads it, what the listener refuses, and the
# shipped alerting rules tested with promtool test rules.

M_DIR="$T_DIR/t13"
mkdir -p "$M_DIR"
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "metrics-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
MPORT=$(free_port)
tokend_start M --metrics-listen "127.0.0.1:$MPORT" --reporting-db "$(pg_conninfo "$T_DIR/pg" tokend_reporting)" ||
    { fail "tokend starts with --metrics-listen"; return; }
H2C="http://127.0.0.1:$H2C_M"
MURL="http://127.0.0.1:$MPORT/metrics"
Y=$(($(date -u +%Y) + 1))
scrape() { curl -s --max-time 5 "$MURL"; }
# series NAME LABELS: the value of one sample, or "absent"
series() { scrape | awk -v s="$1{$2}" 'index($0, s" ") == 1 { print $2; f = 1 } END { if (!f) print "absent" }'; }

for i in 1 2 3; do
    curl -s -o /dev/null --http2-prior-knowledge -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
        --data-binary "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y,\"cvc\":\"123\"}}" "$H2C/v1/tokens"
done
curl -s -o /dev/null --http2-prior-knowledge -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    --data-binary '{"card":{"number":"4242424242424241","exp_month":12,"exp_year":2099,"cvc":"123"}}' "$H2C/v1/tokens"
curl -s -o /dev/null --http2-prior-knowledge "$H2C/v1/no-such-route"
curl -s -o /dev/null --http2-prior-knowledge -H "authorization: Bearer sk_test_nope" "$H2C/v1/tokens/tok_x"
sleep 0.2 # a request is counted when h2o frees it, just after the answer

expect_eq "metrics: three tokenisations counted as 201" \
    "$(series tokend_http_requests_total 'route="/v1/tokens",method="POST",status="201"')" 3
expect_eq "metrics: the refused card counted as 422" \
    "$(series tokend_http_requests_total 'route="/v1/tokens",method="POST",status="422"')" 1
expect_eq "metrics: an unknown path is route unmatched, not its own series" \
    "$(series tokend_http_requests_total 'route="unmatched",method="any",status="404"')" 1
expect_eq "metrics: a bad key is a 401 on the token route" \
    "$(series tokend_http_requests_total 'route="/v1/tokens/{id}",method="GET",status="401"')" 1
expect_eq "metrics: latency histogram counts the four POSTs" \
    "$(series tokend_http_request_duration_seconds_count 'route="/v1/tokens",method="POST"')" 4
expect_eq "metrics: +Inf bucket equals the count" \
    "$(series tokend_http_request_duration_seconds_bucket 'route="/v1/tokens",method="POST",le="+Inf"')" 4
expect_match "metrics: the primary pool ran jobs" "$(series tokend_db_jobs_total 'pool="primary"')" '^[1-9][0-9]*$'
expect_eq "metrics: both pools' connections up" \
    "$(series tokend_db_connections_up 'pool="primary"') $(series tokend_db_connections_up 'pool="reporting"')" "2 2"
expect_eq "metrics: no job errors" "$(series tokend_db_job_errors_total 'pool="primary"')" 0

scrape >"$M_DIR/metrics.txt"
out=$(promtool check metrics <"$M_DIR/metrics.txt" 2>&1)
expect_eq "metrics: promtool check metrics finds nothing to say" "$?:$out" "0:"
expect_eq "metrics: no card number in the scrape" "$(grep -c 424242 "$M_DIR/metrics.txt")" 0
expect_eq "metrics: no tenant, key or token id in the scrape" "$(grep -cE 'ten_|sk_test|tok_[0-9A-Za-z]{5}' "$M_DIR/metrics.txt")" 0
expect_match "metrics: content type of the exposition format" \
    "$(curl -s -o /dev/null -w '%{content_type}' "$MURL")" '^text/plain; version=0\.0\.4'
expect_eq "metrics: only /metrics on the metrics listener" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/v1/tokens")" 404
expect_eq "metrics: not on the API listener" "$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "$H2C/metrics")" 404
# a client that connects and says nothing holds the listener at most its timeout
exec 7<>"/dev/tcp/127.0.0.1/$MPORT"
t0=$SECONDS
expect_eq "metrics: a scrape waits behind a silent client at most its timeout" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 8 "$MURL")" 200
expect_true "metrics: ... which is 2 s" test $((SECONDS - t0)) -le 4
exec 7>&-

out=$("$BUILD/tokend" --metrics-listen "nowhere" --listen "127.0.0.1:$(free_port)" \
    --master-key-file "$T_DIR/master.key" --db "$T_SERVICE_DB" 2>&1)
expect_eq "metrics: a bad address refuses to start (exit 2)" "$?" 2
expect_match "metrics: ... saying which option" "$out" "bad --metrics-listen address 'nowhere'"
tokend_stop M

# the alerting rules operators get (docs/alerts.yml), tested on made-up series
out=$(promtool check rules docs/alerts.yml 2>&1)
expect_eq "alerts: promtool check rules" "$?" 0
out=$(cd docs && promtool test rules alerts.test.yml 2>&1)
expect_eq "alerts: promtool test rules" "$?:$(grep -c FAILED <<<"$out")" "0:0"
rm -rf "$M_DIR"
