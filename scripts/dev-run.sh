#!/usr/bin/env bash
# dev-run.sh - `make run`: the whole system on this machine, for every user of tokend: its
# own PostgreSQL cluster (service and reporting roles), keys and TLS certificate under ./var,
# gwsim as a local "Stripe" and "Adyen" (its certificate trusted by tokend), a webhook
# receiver subscribed to the dev tenant's events, the demo checkout page, and /metrics.
# Created on first use, reused afterwards; `rm -rf var` starts over.
#
#   scripts/dev-run.sh            set up ./var if needed, start everything, print the
#                                 walkthrough (also in var/walkthrough.sh), wait
#   scripts/dev-run.sh stop-db    stop the ./var cluster (make stop-db)
#
# Ctrl-C or SIGTERM stops everything it started, the database last.
# Environment: BUILD (default build), DEV_VAR (./var), DEV_LISTEN (127.0.0.1:8080),
# DEV_LISTEN_TLS (127.0.0.1:8443), DEV_METRICS (127.0.0.1:9464), DEV_GWSIM_PORT (8444),
# DEV_HOOK_PORT (8090), DEV_SHOP_PORT (8081), DEV_SHOP_OTHER_PORT (8082).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
DEV_LISTEN=${DEV_LISTEN:-127.0.0.1:8080}
DEV_LISTEN_TLS=${DEV_LISTEN_TLS:-127.0.0.1:8443}
DEV_METRICS=${DEV_METRICS:-127.0.0.1:9464}
DEV_GWSIM_PORT=${DEV_GWSIM_PORT:-8444}
DEV_HOOK_PORT=${DEV_HOOK_PORT:-8090}
DEV_SHOP_PORT=${DEV_SHOP_PORT:-8081}
DEV_SHOP_OTHER_PORT=${DEV_SHOP_OTHER_PORT:-8082}
DEV_TENANT_NAME=dev
DEV_KEY_SCOPES=tokens:write,tokens:read,charges:write,reports:read
# the local gateways' credentials: gwsim checks them like the real services would
DEV_STRIPE_KEY=sk_test_tokenddev
DEV_ADYEN_KEY=tokend-dev-adyen-key
DEV_ADYEN_MERCHANT=TokendDevECOM

. tests/lib/pg.sh
. tests/lib/harness.sh

VAR=${DEV_VAR:-$ROOT/var}
mkdir -p "$VAR" && VAR=$(cd "$VAR" && pwd)
PG="$VAR/pg"

say() { printf 'dev-run: %s\n' "$*"; }
warn() { printf 'dev-run: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'dev-run: %s\n' "$*" >&2
    exit 1
}

if [ "${1:-}" = stop-db ]; then
    if [ -f "$PG/data/postmaster.pid" ]; then
        pg_stop "$PG"
        say "database stopped"
    else
        say "database is not running"
    fi
    exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [stop-db]"

for b in tokend tokenctl gwsim hookrecv; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run 'make BUILD=$BUILD all' first"
done
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    die "PostgreSQL server binaries not found (run 'make deps')"
fi
# a unix socket path is limited to 107 bytes
[ ${#PG} -le 80 ] || die "the repository path is too long for PostgreSQL's socket ($PG/run); clone it somewhere shorter"

# ---- ./var, first use only ---------------------------------------------------------
if [ ! -d "$VAR" ]; then
    say "first run: creating ./var (cluster, master key, TLS certificate)"
fi
mkdir -p "$VAR"
if [ "$(id -u)" = 0 ]; then
    # the postgres user must reach its cluster inside, and read nothing else
    chmod 0711 "$VAR"
    d=$ROOT
    while [ "$d" != / ] && id postgres >/dev/null 2>&1; do
        runuser -u postgres -- test -x "$d" 2>/dev/null ||
            die "the postgres user cannot enter $d (needed for the cluster in ./var)"
        d=$(dirname "$d")
    done
else
    chmod 0700 "$VAR"
fi

if [ ! -f "$VAR/master.key" ]; then
    if [ -f "$VAR/dev-tenant" ]; then
        die "var/master.key is gone but the database holds keys wrapped by it: 'make stop-db && rm -rf var' to start over"
    fi
    make_master_key "$VAR/master.key"
fi
chmod 0600 "$VAR/master.key"
make_tls "$VAR" || die "cannot create a TLS certificate (openssl)"
[ -f "$VAR/tls.crt" ] || die "cannot create a TLS certificate (openssl)"
# fsync on: this cluster keeps its data between runs
pg_init "$PG" on || die "cannot create the PostgreSQL cluster in $PG (see $PG/initdb.log)"

# ---- the unprivileged user tokend runs as (issue #15, finding 9) -------------------
# Started as root (CI, containers), tokend itself runs as the system user
# DEV_TOKEND_USER (default tokend): a compromise of the process is not root's, and
# it owns only its key files. setpriv execs in place, so Ctrl-C still reaches it.
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    TOKEND_USER=${DEV_TOKEND_USER:-tokend}
    if ! id "$TOKEND_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$TOKEND_USER" || die "cannot create the system user $TOKEND_USER"
        say "created the system user $TOKEND_USER (tokend runs as it)"
    fi
    d=$ROOT
    while [ "$d" != / ]; do
        setpriv --reuid="$TOKEND_USER" --regid="$TOKEND_USER" --clear-groups test -x "$d" 2>/dev/null ||
            die "the $TOKEND_USER user cannot enter $d (needed to run $BUILD/tokend)"
        d=$(dirname "$d")
    done
    chown "$TOKEND_USER:" "$VAR/master.key" "$VAR/tls.key"
    # the cluster's socket: reachable through var/pg/run by postgres and this user only
    # (trust authentication relies on that directory, not on the socket's own mode)
    grep -qx "unix_socket_permissions = 0777" "$PG/data/postgresql.conf" ||
        echo "unix_socket_permissions = 0777" >>"$PG/data/postgresql.conf"
    chgrp "$TOKEND_USER" "$PG/run"
    chmod 0710 "$PG/run"
    # libsodium locks card and key memory: the root shell lifts the limit the user inherits
    ulimit -l unlimited 2>/dev/null || warn "cannot raise RLIMIT_MEMLOCK: tokend may refuse cards under load"
    RUN_AS=(setpriv --reuid="$TOKEND_USER" --regid="$TOKEND_USER" --clear-groups --)
fi

# ---- PostgreSQL ------------------------------------------------------------------
PIDS=() # everything started here, stopped in reverse order before the database
TOKEND_PID=
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$? i pid _
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -f "$VAR/ready"
    if [ -f "$PG/data/postmaster.pid" ]; then
        say "stopping the database"
        pg_stop "$PG"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if pg_as "$PG_BIN/pg_ctl" -D "$PG/data" status >/dev/null 2>&1 && [ ${#RUN_AS[@]} -gt 0 ] &&
    [ "$(stat -c %a "$PG"/run/.s.PGSQL.* 2>/dev/null | head -n 1)" != 777 ]; then
    say "restarting the database so $TOKEND_USER can reach its socket"
    pg_stop "$PG"
fi
if pg_as "$PG_BIN/pg_ctl" -D "$PG/data" status >/dev/null 2>&1; then
    say "database already running: reusing it"
else
    pg_start "$PG" || {
        tail -n 20 "$PG/postgres.log" >&2 2>/dev/null || true
        die "PostgreSQL did not start (log: var/pg/postgres.log)"
    }
fi
pg_createdb "$PG" || die "cannot create the tokend database"
ADMIN_DB=$(pg_conninfo "$PG" postgres)
SERVICE_DB=$(pg_conninfo "$PG" tokend_service)
REPORTING_DB=$(pg_conninfo "$PG" tokend_reporting)
"$BUILD/tokenctl" --db "$ADMIN_DB" migrate --dir sql || die "migrations failed"

# ---- dev tenant and test key, first use only -----------------------------------------
# ctl OUT ARGS...: tokenctl with the owner role and the master key; stdout to OUT (0600)
ctl() {
    local out=$1
    shift
    (umask 077 && "$BUILD/tokenctl" --db "$ADMIN_DB" --master-key-file "$VAR/master.key" "$@" \
        >"$out" 2>"$VAR/tokenctl.err")
}

setup_dev_key() {
    local tenant rc=0
    if [ -s "$VAR/dev-tenant" ]; then
        tenant=$(cat "$VAR/dev-tenant")
    else
        ctl "$VAR/dev-tenant.tmp" tenant create "$DEV_TENANT_NAME" || rc=$?
        tenant=$(tr -d '[:space:]' <"$VAR/dev-tenant.tmp" 2>/dev/null || true)
        rm -f "$VAR/dev-tenant.tmp"
        if [ "$rc" -ne 0 ] || [[ ! "$tenant" =~ ^ten_[0-9A-Za-z]{22}$ ]]; then
            # a previous run may have created it and stopped before saving its id
            tenant=$(pg_psql "$PG" -tAc "SELECT id FROM vault.tenants WHERE name = '$DEV_TENANT_NAME'" 2>/dev/null || true)
        fi
        if [[ ! "$tenant" =~ ^ten_[0-9A-Za-z]{22}$ ]]; then
            die "'tokenctl tenant create' failed (exit $rc): $(head -c 300 "$VAR/tokenctl.err" 2>/dev/null)"
        fi
        printf '%s\n' "$tenant" >"$VAR/dev-tenant"
        say "created dev tenant $tenant"
    fi

    rc=0
    ctl "$VAR/dev-key.tmp" key create --tenant "$tenant" --scopes "$DEV_KEY_SCOPES" --test || rc=$?
    # checked in place: the secret is never held in a variable or printed
    if [ "$rc" -ne 0 ] || [ "$(grep -c "" "$VAR/dev-key.tmp")" -ne 1 ] ||
        ! grep -Eqx 'sk_test_[0-9A-Za-z]{43}' "$VAR/dev-key.tmp"; then
        rm -f "$VAR/dev-key.tmp"
        die "'tokenctl key create' failed (exit $rc): $(head -c 300 "$VAR/tokenctl.err" 2>/dev/null)"
    fi
    mv "$VAR/dev-key.tmp" "$VAR/dev-key"
    chmod 0600 "$VAR/dev-key"
    say "created a test API key for tenant $tenant (secret in var/dev-key, shown nowhere else)"
}
if [ ! -s "$VAR/dev-key" ]; then
    setup_dev_key
fi
rm -f "$VAR/tokenctl.err"

# ---- the rest of the dev tenant, first use only: every user's flow ------------------------
# save OUT ARGS...: tokenctl's one-line answer into OUT (0600), checked against a pattern
save() {
    local out=$1 pattern=$2 rc=0
    shift 2
    ctl "$out.tmp" "$@" || rc=$?
    if [ "$rc" -ne 0 ] || ! grep -Eqx "$pattern" "$out.tmp"; then
        rm -f "$out.tmp"
        die "'tokenctl $1 $2' failed (exit $rc): $(head -c 300 "$VAR/tokenctl.err" 2>/dev/null)"
    fi
    mv "$out.tmp" "$out"
}
TENANT=$(cat "$VAR/dev-tenant")
SHOP="http://127.0.0.1:$DEV_SHOP_PORT"
GWSIM_URL="https://localhost:$DEV_GWSIM_PORT"
if [ ! -s "$VAR/dev-pk" ]; then
    save "$VAR/dev-pk" 'pk_test_[0-9A-Za-z]+' key create --tenant "$TENANT" --publishable --origin "$SHOP" --test
    say "created a publishable key for the demo shop at $SHOP"
fi
if [ ! -s "$VAR/gw-stripe" ]; then
    # credentials files are read once by tokenctl, sealed under the tenant's key, then removed
    (umask 077
     head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/whsec_dev_/' >"$VAR/stripe-whsec"
     printf '{"api_key":"%s","webhook_secret":"%s"}' "$DEV_STRIPE_KEY" "$(cat "$VAR/stripe-whsec")" >"$VAR/cred.json")
    save "$VAR/gw-stripe" 'gw_[0-9A-Za-z]{22}' gateway add --tenant "$TENANT" --kind stripe \
        --credentials-file "$VAR/cred.json" --base-url "$GWSIM_URL" --priority 1 --test
    (umask 077 && printf '{"api_key":"%s","merchant_account":"%s"}' "$DEV_ADYEN_KEY" "$DEV_ADYEN_MERCHANT" >"$VAR/cred.json")
    save "$VAR/gw-adyen" 'gw_[0-9A-Za-z]{22}' gateway add --tenant "$TENANT" --kind adyen \
        --credentials-file "$VAR/cred.json" --base-url "$GWSIM_URL" --priority 2 --test
    (umask 077 && printf '{}' >"$VAR/cred.json")
    save "$VAR/gw-sandbox" 'gw_[0-9A-Za-z]{22}' gateway add --tenant "$TENANT" --kind sandbox \
        --credentials-file "$VAR/cred.json" --priority 3 --test
    rm -f "$VAR/cred.json"
    printf '%s\n' "$DEV_GWSIM_PORT" >"$VAR/gwsim-port"
    say "added the dev tenant's gateways: stripe and adyen (gwsim at $GWSIM_URL), sandbox"
fi
[ "$(cat "$VAR/gwsim-port" 2>/dev/null)" = "$DEV_GWSIM_PORT" ] ||
    warn "the dev tenant's Stripe and Adyen accounts point at port $(cat "$VAR/gwsim-port" 2>/dev/null), not DEV_GWSIM_PORT=$DEV_GWSIM_PORT: start over with 'make stop-db && rm -rf var'"
if [ ! -s "$VAR/hook-secret" ]; then
    save "$VAR/hook-secret" 'whsec_[0-9A-Za-z]+' webhook add --tenant "$TENANT" \
        --url "http://127.0.0.1:$DEV_HOOK_PORT/hooks" --test
    say "subscribed a local webhook receiver (port $DEV_HOOK_PORT) to the dev tenant's events"
fi
rm -f "$VAR/tokenctl.err"

# ---- the local gateways, the webhook receiver, tokend, the demo shop ----------------------
# wait_file FILE SECONDS / wait_url URL SECONDS
wait_file() { local i; for i in $(seq 1 $(($2 * 20))); do [ -f "$1" ] && return 0; sleep 0.05; done; return 1; }
rm -f "$VAR/gwsim.ready" "$VAR/ready"
"$BUILD/gwsim" --listen "127.0.0.1:$DEV_GWSIM_PORT" --tls-cert "$VAR/tls.crt" --tls-key "$VAR/tls.key" \
    --stripe-key "$DEV_STRIPE_KEY" --adyen-key "$DEV_ADYEN_KEY" --adyen-merchant "$DEV_ADYEN_MERCHANT" \
    --ready-file "$VAR/gwsim.ready" 2>>"$VAR/gwsim.log" &
PIDS+=($!)
wait_file "$VAR/gwsim.ready" 10 || die "gwsim did not start (log: $VAR/gwsim.log)"
"$BUILD/hookrecv" --port "$DEV_HOOK_PORT" --secret-file "$VAR/hook-secret" --log "$VAR/hooks.log" \
    2>>"$VAR/hookrecv.log" &
PIDS+=($!)
# In the background so this shell can forward Ctrl-C/SIGTERM and then stop the rest.
"${RUN_AS[@]}" "$BUILD/tokend" --listen "$DEV_LISTEN" --listen-tls "$DEV_LISTEN_TLS" \
    --tls-cert "$VAR/tls.crt" --tls-key "$VAR/tls.key" \
    --master-key-file "$VAR/master.key" --db "$SERVICE_DB" --reporting-db "$REPORTING_DB" \
    --metrics-listen "$DEV_METRICS" --gateway-ca-file "$VAR/tls.crt" \
    --webhook-allow-http-loopback --webhook-retry-base-ms 1000 &
TOKEND_PID=$!
PIDS+=("$TOKEND_PID")
wait_http "http://$DEV_LISTEN/healthz" 15 || die "tokend did not start"
SHOP_NOTE="(node is not installed: no demo shop; the API steps below work without it)"
if command -v node >/dev/null 2>&1; then
    DEMO_PORT=$DEV_SHOP_PORT EVIL_PORT=$DEV_SHOP_OTHER_PORT TOKEND_URL="http://$DEV_LISTEN" \
        TOKEND_PK="$(cat "$VAR/dev-pk")" TOKEND_SK="$(cat "$VAR/dev-key")" DEMO_LOG="$VAR/shop.log" \
        node tests/e2e/demo/server.mjs 2>>"$VAR/shop.err" &
    PIDS+=($!)
    SHOP_NOTE="open $SHOP/ in a browser, pay with 4242 4242 4242 4242 (any future date, any CVC), see the token and its charge"
fi

# ---- the walkthrough: printed, and saved as a script that runs as printed ------------------
tls_port=${DEV_LISTEN_TLS##*:}
cat >"$VAR/walkthrough.sh" <<EOF
# tokend walkthrough (made by 'make run'; run it whole with: bash $VAR/walkthrough.sh)
set -euo pipefail
V=$VAR
TOKEND=https://localhost:$tls_port
SK=\$(cat \$V/dev-key)
api() { curl -sS --fail-with-body --http2 --cacert \$V/tls.crt -H "Authorization: Bearer \$SK" "\$@"; }
Y=\$((\$(date -u +%Y) + 1))

# 1. Checkout: $SHOP_NOTE
#    The card element does this with the publishable key; here the app's server does it:
TOK=\$(api \$TOKEND/v1/tokens -H 'Content-Type: application/json' \\
      -d "{\\"card\\":{\\"number\\":\\"4242 4242 4242 4242\\",\\"exp_month\\":12,\\"exp_year\\":\$Y,\\"cvc\\":\\"123\\"}}" | jq -r .id)
echo "token: \$TOK"

# 2. Invoicing: charge the token (at "Stripe", gwsim), then refund part of it
CH=\$(api \$TOKEND/v1/charges -H 'Content-Type: application/json' -H "Idempotency-Key: inv-\$TOK" \\
      -d "{\\"token\\":\\"\$TOK\\",\\"amount\\":1999,\\"currency\\":\\"usd\\",\\"invoice_ref\\":\\"INV-1\\"}" | jq -r .id)
api \$TOKEND/v1/charges/\$CH | jq -c '{id, status, amount, gateway}'
api \$TOKEND/v1/refunds -H 'Content-Type: application/json' -d "{\\"charge\\":\\"\$CH\\",\\"amount\\":500}" | jq -c '{id, status, amount}'

# 3. Gateway webhook: an authorised charge, then Stripe's signed event that captures it
CH2=\$(api \$TOKEND/v1/charges -H 'Content-Type: application/json' \\
       -d "{\\"token\\":\\"\$TOK\\",\\"amount\\":1000,\\"currency\\":\\"usd\\",\\"capture\\":false}" | jq -r .id)
PI=\$(api \$TOKEND/v1/charges/\$CH2 | jq -r .gateway_reference)
BODY="{\\"id\\":\\"evt_dev_\$CH2\\",\\"object\\":\\"event\\",\\"type\\":\\"payment_intent.succeeded\\",\\"data\\":{\\"object\\":{\\"id\\":\\"\$PI\\",\\"object\\":\\"payment_intent\\",\\"amount_received\\":1000}}}"
TS=\$(date +%s)
SIG=\$(printf '%s' "\$TS.\$BODY" | openssl dgst -sha256 -hmac "\$(cat \$V/stripe-whsec)" -r | cut -d' ' -f1)
curl -sS --fail-with-body --http2 --cacert \$V/tls.crt \$TOKEND/v1/webhooks/stripe/\$(cat \$V/gw-stripe) \\
     -H 'Content-Type: application/json' -H "Stripe-Signature: t=\$TS,v1=\$SIG" -d "\$BODY"; echo
api \$TOKEND/v1/charges/\$CH2 | jq -c '{id, status, amount_captured}'
sleep 2; tail -n 3 \$V/hooks.log   # the dev tenant's receiver got the signed events

# 4. Finance: list, export, and reconcile a settlement file that names the first charge
api "\$TOKEND/v1/charges?limit=3" | jq -c '.data[] | {id, status, amount, gateway}'
api "\$TOKEND/v1/exports/charges?format=csv" | head -n 3
REF=\$(api \$TOKEND/v1/charges/\$CH | jq -r .gateway_reference)
printf 'balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id\\ntxn_dev_1,%s,usd,19.99,0.88,19.11,charge,%s\\n' \\
       "\$(date -u '+%Y-%m-%d %H:%M:%S')" "\$REF" >\$V/settlement.csv
RUN=\$(api "\$TOKEND/v1/reconciliations?gateway=stripe" -H 'Content-Type: text/csv' --data-binary @\$V/settlement.csv | jq -r .id)
sleep 1; api \$TOKEND/v1/reconciliations/\$RUN | jq -c '{status, summary}'

# 5. Operations: what a Prometheus server scrapes
curl -sS http://$DEV_METRICS/metrics | grep '^tokend_http_requests_total' | head -n 5
echo "walkthrough: done"
EOF
chmod 0700 "$VAR/walkthrough.sh"
cat <<EOF

tokend $("$BUILD/tokend" --version | awk '{print $2}') - the whole system, for development (data in $VAR; Ctrl-C stops everything)
  tokend h2c:    http://$DEV_LISTEN        TLS (h2, http/1.1): https://localhost:$tls_port (CA: $VAR/tls.crt)
  gwsim:         $GWSIM_URL ("Stripe" and "Adyen" for the dev tenant)
  webhooks:      http://127.0.0.1:$DEV_HOOK_PORT/hooks (log: $VAR/hooks.log)
  metrics:       http://$DEV_METRICS/metrics
  demo shop:     $SHOP/

The walkthrough, one user at a time (paste into a shell in $(pwd), or run: bash $VAR/walkthrough.sh):
EOF
sed -n '3,$p' "$VAR/walkthrough.sh"
cat <<EOF

Stop with Ctrl-C. The database alone: make stop-db. Start over: make stop-db && rm -rf var

EOF
touch "$VAR/ready"
rc=0
wait "$TOKEND_PID" || rc=$?
[ "$rc" -eq 0 ] || warn "tokend exited with status $rc"
exit "$rc"
