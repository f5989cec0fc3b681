# t_48_ops.sh - what an operator watches and reads (issue #19): each /metrics family added for
# the failure modes is provoked and read moving (gateway declines and failures through gwsim,
# webhook deliveries to a receiver that fails and to one that is not there, rate-limit
# refusals, the audit chain's lag, open and refused connections); the access log's modes
# counted line by line; and the runbook's tokenctl commands checked against tokenctl help.

O_DIR="$T_DIR/t48"
mkdir -p "$O_DIR"
O_SK=sk_test_ops_$$
O_Y=$(($(date -u +%Y) + 1))
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")

o_gwsim() { # o_gwsim NAME PORT [extra args...]
    local name=$1 port=$2 ready="$O_DIR/$1.ready"
    shift 2
    "$BUILD/gwsim" --listen "127.0.0.1:$port" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
        --stripe-key "$O_SK" --ready-file "$ready" "$@" 2>>"$O_DIR/gwsim.log" &
    T_PIDS+=($!)
    local i
    for i in $(seq 1 100); do
        [ -f "$ready" ] && return 0
        sleep 0.05
    done
    return 1
}
card() { printf '{"card":{"number":"%s","exp_month":3,"exp_year":%s,"cvc":"737"}}' "$1" "$O_Y"; }
api() { # KEY METHOD PATH [BODY]: body then status on the last line
    curl -s --http2-prior-knowledge -X "$2" -H "authorization: Bearer $1" -H 'content-type: application/json' \
        ${4:+--data-binary "$4"} -w '\n%{http_code}' "$H2C$3"
}
st() { tail -n 1 <<<"$1"; }
js() { sed '$d' <<<"$1" | jq -r "$2"; }
scrape() { curl -s --max-time 5 "$MURL"; }
# series NAME LABELS: one sample's value, or "absent"
series() {
    local s=$1
    [ -z "${2:-}" ] || s="$1{$2}"
    scrape | awk -v s="$s" 'index($0, s" ") == 1 { print $2; f = 1 } END { if (!f) print "absent" }'
}
# wait_series NAME LABELS MIN [SECONDS] [MAX]: until MIN <= the sample (<= MAX); prints its last value
wait_series() {
    local v i
    for i in $(seq 1 $((${4:-10} * 5))); do
        v=$(series "$1" "$2")
        [ "$v" != absent ] && awk -v v="$v" -v m="$3" -v x="${5:-1e300}" \
            'BEGIN { exit !(v + 0 >= m + 0 && v + 0 <= x + 0) }' && break
        sleep 0.2
    done
    printf '%s' "$v"
}

# --- gateways: a decline and a gateway that fails, through the real Stripe adapter -----------------
PORT_OK=$(free_port)
PORT_BAD=$(free_port)
o_gwsim OK "$PORT_OK" && o_gwsim BAD "$PORT_BAD" --fault-rate-500 1 || { fail "ops: simulators start"; return; }
(umask 077 && printf '{"api_key":"%s"}' "$O_SK" >"$O_DIR/stripe.json")
TEN=$("${CTL[@]}" tenant create "ops-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write,tokens:read,charges:write --test 2>/dev/null)
"${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$O_DIR/stripe.json" \
    --base-url "https://localhost:$PORT_OK" >/dev/null 2>&1
TEN_BAD=$("${CTL[@]}" tenant create "ops-bad-$$" 2>/dev/null)
KEY_BAD=$("${CTL[@]}" key create --tenant "$TEN_BAD" --scopes tokens:write --test 2>/dev/null)
"${CTL[@]}" gateway add --tenant "$TEN_BAD" --kind stripe --credentials-file "$O_DIR/stripe.json" \
    --base-url "https://localhost:$PORT_BAD" >/dev/null 2>&1
KEY_RL=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write --test 2>/dev/null)
# webhooks: one receiver that answers 500 once, one address where nobody listens
RPORT=$(free_port)
DEAD_PORT=$(free_port)
TEN_W=$("${CTL[@]}" tenant create "ops-hooks-$$" 2>/dev/null)
KEY_W=$("${CTL[@]}" key create --tenant "$TEN_W" --scopes tokens:write,charges:write --test 2>/dev/null)
"${CTL[@]}" webhook add --tenant "$TEN_W" --url "http://127.0.0.1:$RPORT/hooks" >"$O_DIR/recv.secret" 2>/dev/null
"${CTL[@]}" webhook add --tenant "$TEN_W" --url "http://127.0.0.1:$DEAD_PORT/hooks" >/dev/null 2>&1
"$BUILD/hookrecv" --port "$RPORT" --secret-file "$O_DIR/recv.secret" --log "$O_DIR/recv.log" --fail 1 &
T_PIDS+=($!)

MPORT=$(free_port)
make_master_key "$O_DIR/audit.key"
tokend_start O --metrics-listen "127.0.0.1:$MPORT" --gateway-ca-file "$T_DIR/tls.crt" \
    --audit-key-file "$O_DIR/audit.key" --audit-checkpoints "$O_DIR/checkpoints" \
    --rate-tokenise 0.01 --burst-tokenise 3 --webhook-allow-http-loopback --webhook-retry-base-ms 1000 \
    --audit-chain-interval-ms 3000 || { fail "ops: tokend starts"; return; }
H2C="http://127.0.0.1:$H2C_O"
MURL="http://127.0.0.1:$MPORT/metrics"

out=$(api "$KEY" POST /v1/tokens "$(card 4000000000000002)")
TOKD=$(js "$out" .id)
expect_eq "ops: a declining card tokenises at stripe" "$(st "$out")" 201
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOKD\",\"amount\":900,\"currency\":\"eur\"}")
expect_eq "ops: ... and its charge is declined" "$(st "$out") $(js "$out" .status)" "201 declined"
out=$(api "$KEY_BAD" POST /v1/tokens "$(card 4242424242424242)")
expect_eq "ops: a gateway answering 500 fails the tokenisation" "$(st "$out") $(js "$out" .code)" "502 gateway_error"
expect_eq "metrics: the tokenisation at stripe counted ok" \
    "$(series tokend_gateway_calls_total 'gateway="stripe",op="tokenise",outcome="ok"')" 1
expect_eq "metrics: the decline counted as declined" \
    "$(series tokend_gateway_calls_total 'gateway="stripe",op="charge",outcome="declined"')" 1
expect_eq "metrics: the 500 counted as unavailable" \
    "$(series tokend_gateway_calls_total 'gateway="stripe",op="tokenise",outcome="unavailable"')" 1
expect_eq "metrics: the charge's other outcomes are there, at 0" \
    "$(series tokend_gateway_calls_total 'gateway="stripe",op="charge",outcome="error"')" 0
expect_eq "metrics: gateway latency histogram counts both tokenisations" \
    "$(series tokend_gateway_call_duration_seconds_count 'gateway="stripe",op="tokenise"')" 2
expect_match "metrics: ... which took some time over TLS" \
    "$(series tokend_gateway_call_duration_seconds_sum 'gateway="stripe",op="tokenise"')" '^[0-9.e-]+$'

# --- rate limits: a key with a burst of 3 ---------------------------------------------------------
before=$(series tokend_ratelimit_refused_total 'limiter="tokenise"')
codes=""
for i in 1 2 3 4 5; do codes+="$(st "$(api "$KEY_RL" POST /v1/tokens "$(card 4242424242424242)")") "; done
expect_eq "ops: burst 3, then 429" "$codes" "201 201 201 429 429 "
expect_eq "metrics: the two refusals counted on the tokenise limiter" \
    "$(($(series tokend_ratelimit_refused_total 'limiter="tokenise"') - before))" 2
expect_eq "metrics: the charge limiter refused nothing" \
    "$(series tokend_ratelimit_refused_total 'limiter="charge"')" 0

# --- webhooks: a receiver that fails once, and one that is not there -----------------------------
TOKW=$(api "$KEY_W" POST /v1/tokens "$(card 4242424242424242)" | sed '$d' | jq -r .id)
out=$(api "$KEY_W" POST /v1/charges "{\"token\":\"$TOKW\",\"amount\":1200,\"currency\":\"eur\"}")
expect_eq "ops: a charge whose event goes to two receivers" "$(st "$out")" 201
v=$(wait_series tokend_webhook_attempts_total 'outcome="transport_error"' 1)
expect_true "metrics: the absent receiver is a transport error ($v)" test "$v" -ge 1
expect_eq "metrics: the failing receiver's 500 is an http error" \
    "$(wait_series tokend_webhook_attempts_total 'outcome="http_error"' 1)" 1
v=$(wait_series tokend_webhook_retries_scheduled_total '' 2)
expect_true "metrics: ... each failure scheduled a retry ($v; the absent one keeps retrying)" test "$v" -ge 2
expect_eq "metrics: the retry reaches the receiver that came back (1 s backoff)" \
    "$(wait_series tokend_webhook_attempts_total 'outcome="delivered"' 1 15)" 1
expect_match "metrics: the first try's lag is a number of seconds" \
    "$(series tokend_webhook_first_attempt_lag_seconds '')" '^[0-9.e+-]+$'
expect_eq "metrics: nothing given up yet (3-day deadline)" "$(series tokend_webhook_deliveries_failed_total '')" 0

# --- the audit chain's lag: rows wait up to a pass (every 3 s here) ------------------------------
before=$(series tokend_audit_chain_rows_total '')
for i in 1 2 3; do api "$KEY" GET "/v1/tokens/$TOKD" >/dev/null; done
api "$KEY" POST /v1/tokens "$(card 5555555555554444)" >/dev/null
seen=0
for i in $(seq 1 50); do
    v=$(series tokend_audit_unchained_rows '')
    [ "$v" != absent ] && [ "$v" -ge 1 ] && { seen=$v; break; }
    sleep 0.2
done
expect_true "metrics: audit rows not yet in a block are counted ($seen)" test "$seen" -ge 1
expect_eq "metrics: ... and chained by a later pass" "$(wait_series tokend_audit_unchained_rows '' 0 12 0)" 0
v=$(wait_series tokend_audit_chain_rows_total '' $((before + 1)) 12)
expect_true "metrics: rows chained grew ($before -> $v)" test "$v" -gt "$before"
last=$(series tokend_audit_chain_last_pass_timestamp_seconds '')
expect_true "metrics: the last pass was less than 10 s ago" \
    awk -v l="$last" -v n="$(date +%s)" 'BEGIN { exit !(n - l < 10 && l > 0) }'
expect_eq "metrics: no pass failed" "$(series tokend_audit_chain_passes_total 'result="failed"')" 0
v=$(wait_series tokend_audit_blocks_sealed_total '' 1)
expect_true "metrics: the blocks were sealed under the audit key ($v)" test "$v" -ge 1
expect_true "metrics: ... each with its checkpoint line (written before it is counted)" \
    test "$(wc -l <"$O_DIR/checkpoints")" -ge "$v"
expect_eq "metrics: no sealing pass failed" "$(series tokend_audit_seal_failures_total '')" 0

# --- connections ----------------------------------------------------------------------------------
exec 7<>"/dev/tcp/127.0.0.1/$H2C_O"
sleep 0.3
expect_true "metrics: an idle client connection is open" test "$(series tokend_http_connections_open '')" -ge 1
exec 7>&-
expect_match "metrics: the cap is reported" "$(series tokend_http_connections_max '')" '^[1-9][0-9]*$'

scrape >"$O_DIR/metrics.txt"
out=$(promtool check metrics <"$O_DIR/metrics.txt" 2>&1)
expect_eq "metrics: promtool check metrics passes with the new families" "$?:$out" "0:"
expect_eq "metrics: no card number, tenant, key or secret in the scrape" \
    "$(grep -cE '(^|[^0-9.])(4242424242424242|4000000000000002|5555555555554444)([^0-9]|$)|ten_|sk_test|whsec_' \
        "$O_DIR/metrics.txt")" 0
tokend_stop O

# a loop at its cap closes new connections at once, and says so
MPORT=$(free_port)
# the two held connections send nothing: a long handshake deadline keeps them open however
# slow the machine, and the third is tried only once both are counted
tokend_start C --metrics-listen "127.0.0.1:$MPORT" --threads 1 --max-connections 2 \
    --handshake-timeout-ms 60000 ||
    { fail "ops: tokend starts with a cap of 2"; return; }
MURL="http://127.0.0.1:$MPORT/metrics"
exec 7<>"/dev/tcp/127.0.0.1/$H2C_C"
exec 8<>"/dev/tcp/127.0.0.1/$H2C_C"
wait_series tokend_http_connections_open '' 2 10 >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --http2-prior-knowledge "http://127.0.0.1:$H2C_C/healthz")
expect_eq "ops: a third connection is refused" "$code" "000"
expect_eq "metrics: two open, at the cap of 2" \
    "$(series tokend_http_connections_open '') $(series tokend_http_connections_max '')" "2 2"
expect_eq "metrics: the refusal counted" "$(series tokend_http_connections_refused_total '')" 1
exec 7>&- 8>&-
tokend_stop C

# --- the access log: all, sample:10, errors, off ---------------------------------------------------
access_lines() { grep -c '"msg":"request"' "$1"; }
n_mode=0
lines=()
for mode in all sample:10 errors off; do
    name=A$((++n_mode))
    tokend_start "$name" --access-log "$mode" || { fail "ops: tokend starts with --access-log $mode"; continue; }
    h2c_var="H2C_$name" log_var="LOG_$name"
    before=$(access_lines "${!log_var}")
    for i in $(seq 1 40); do
        curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:${!h2c_var}/healthz"
    done
    for i in 1 2 3; do
        curl -s -o /dev/null --http2-prior-knowledge -H 'authorization: Bearer sk_test_nope' \
            "http://127.0.0.1:${!h2c_var}/v1/tokens/tok_x"
    done
    sleep 0.2
    tokend_stop "$name"
    lines[$n_mode]=$(($(access_lines "${!log_var}") - before))
    [ "$mode" = sample:10 ] && cp "${!log_var}" "$O_DIR/sampled.log"
done
expect_eq "access log: all writes 43 lines for 40 answers and 3 refused keys" "${lines[1]}" 43
expect_eq "access log: sample:10 writes 1 in 10 of the 40, and every 401" "${lines[2]}" 7
expect_eq "access log: a sampled line says how many it stands for" \
    "$(grep '"msg":"request"' "$O_DIR/sampled.log" | grep '"status":200' | grep -c '"sampled":10')" \
    "$(grep '"msg":"request"' "$O_DIR/sampled.log" | grep -c '"status":200')"
expect_eq "access log: errors writes the 401s only" "${lines[3]}" 3
expect_eq "access log: off writes none" "${lines[4]}" 0
out=$("$BUILD/tokend" --access-log sample:0 2>&1)
expect_eq "access log: sample:0 refused (exit 2)" "$?" 2
expect_match "access log: ... naming the option" "$out" 'access-log must be all, errors, off or sample:N'

# --- the runbook: every tokenctl command in it exists ----------------------------------------------
# tokenctl help's commands, one a line: "tenant create", "webhook disable", "webhook enable"...
help=$("$BUILD/tokenctl" help 2>&1 | awk '/^  [a-z]/ { print $1; if ($2 ~ /^[a-z][a-z|-]*$/) {
    n = split($2, a, "|"); for (k = 1; k <= n; k++) print $1 " " a[k] } }' | sort -u)
cmds=$(awk '/^ *```/ { code = !code; next } code && /tokenctl/' docs/operations.md |
    sed -E 's/.*tokenctl//; s/\$\{?CTL\}?//' |
    awk '{ i = 1; while (i <= NF && $i ~ /^--/) { if ($i !~ /=/ && $i != "--json") i++; i++ }
           c = $i; if ($(i + 1) ~ /^[a-z][a-z-]*$/ && c ~ /^(tenant|key|gateway|webhook|audit|keys)$/) c = c " " $(i + 1)
           if (c != "") print c }' | sort -u)
expect_true "runbook: has tokenctl commands to check" test "$(wc -l <<<"$cmds")" -ge 8
missing=""
while read -r c; do
    [ -n "$c" ] || continue
    grep -qxF "$c" <<<"$help" || missing+="[$c] "
done <<<"$cmds"
expect_eq "runbook: every tokenctl command in docs/operations.md is in tokenctl help" "$missing" ""
flags=$(grep -oE '^\| `--[a-z0-9-]+`' docs/operations.md | sed -E 's/^\| `//; s/`$//' | sort -u)
tflags=$("$BUILD/tokend" --help | grep -oE '^  --[a-z0-9-]+' | sed 's/^  //' | sort -u)
expect_eq "runbook: its configuration table lists every tokend flag, and only those" "$flags" "$tflags"
for f in $(grep -oE 'docs/[a-z_.]+\.(md|yml)|SECURITY\.md|README\.md' docs/operations.md | sort -u); do
    case "$f" in docs/replication.md) continue ;; esac # written alongside (issue #20)
    expect_true "runbook: $f exists" test -f "$f"
done
rm -rf "$O_DIR"
