# harness.sh - integration test helpers: counters, assertions, a tokend
# instance on free loopback ports, and cleanup on any exit.
# Used by tests/integration/run.sh; needs BUILD and ROOT set.

T_PASS=0
T_FAIL=0
T_FAILED_NAMES=()

ok() { T_PASS=$((T_PASS + 1)); printf '  ok    %s\n' "$*"; }
fail() {
    T_FAIL=$((T_FAIL + 1))
    T_FAILED_NAMES+=("$1")
    printf '  FAIL  %s\n' "$*"
}

# expect_eq NAME ACTUAL EXPECTED
expect_eq() {
    if [ "$2" == "$3" ]; then ok "$1"; else fail "$1" "(expected '$3', got '$2')"; fi
}
# expect_match NAME ACTUAL REGEX
expect_match() {
    if [[ "$2" =~ $3 ]]; then ok "$1"; else fail "$1" "(got '$2', want /$3/)"; fi
}
# expect_true NAME COMMAND...
expect_true() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

free_port() {
    python3 - 2>/dev/null <<'PY' || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# wait_http URL [seconds]: until the URL answers anything
wait_http() {
    local url=$1 deadline=$((SECONDS + ${2:-10}))
    while [ $SECONDS -lt $deadline ]; do
        curl -s -o /dev/null --http2-prior-knowledge --max-time 1 "$url" && return 0
        sleep 0.05
    done
    return 1
}

# make_tls DIR: a self-signed certificate for localhost
make_tls() {
    local dir=$1
    [ -f "$dir/tls.crt" ] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" >/dev/null 2>&1
    chmod 600 "$dir/tls.key"
}

# make_master_key FILE
make_master_key() {
    (umask 077 && head -c 32 /dev/urandom >"$1")
}

# tokend_start NAME [extra args...]: starts tokend with the suite's defaults on
# fresh ports; sets TOKEND_PID_<NAME>, H2C_<NAME>, TLS_<NAME>, LOG_<NAME>.
tokend_start() {
    local name=$1
    shift
    local h2c tls
    h2c=$(free_port)
    tls=$(free_port)
    local log="$T_DIR/tokend-$name.log"
    "$BUILD/tokend" --listen "127.0.0.1:$h2c" --listen-tls "127.0.0.1:$tls" \
        --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
        --master-key-file "$T_DIR/master.key" --db "$T_SERVICE_DB" --threads 2 \
        --log-level info "$@" 2>>"$log" &
    local pid=$!
    eval "TOKEND_PID_$name=$pid H2C_$name=$h2c TLS_$name=$tls LOG_$name=$log"
    T_PIDS+=("$pid")
    if ! wait_http "http://127.0.0.1:$h2c/healthz" 15; then
        echo "tokend $name did not start; its log:" >&2
        cat "$log" >&2
        return 1
    fi
}

tokend_stop() {
    local pid_var="TOKEND_PID_$1"
    local pid=${!pid_var}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# rss_kb PID
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
