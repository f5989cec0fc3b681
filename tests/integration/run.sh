#!/usr/bin/env bash
# Integration tests: a throwaway PostgreSQL cluster in a temp dir, tokend on
# free loopback ports, real HTTP/2 clients (curl, nghttp). Everything started
# here is stopped on exit, whatever happened. Prints 'integration: N passed, M failed'.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"
. tests/lib/pg.sh
. tests/lib/harness.sh

T_DIR=$(mktemp -d /tmp/tokend-it.XXXXXX)
chmod 0711 "$T_DIR" # the postgres user must reach its cluster inside
T_PIDS=()
cleanup() {
    local pid
    for pid in "${T_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${T_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    pg_stop "$T_DIR/pg"
    if [ "${KEEP_TEST_DIR:-}" = 1 ]; then echo "kept $T_DIR"; else rm -rf "$T_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "integration: cluster in $T_DIR"
pg_init "$T_DIR/pg" off && pg_start "$T_DIR/pg" && pg_createdb "$T_DIR/pg" || {
    echo "integration: cannot start PostgreSQL"; echo "integration: 0 passed, 1 failed"; exit 1; }
T_ADMIN_DB=$(pg_conninfo "$T_DIR/pg" postgres)
T_SERVICE_DB=$(pg_conninfo "$T_DIR/pg" tokend_service)
"$BUILD/tokenctl" --db "$T_ADMIN_DB" migrate --dir sql >"$T_DIR/migrate.log" 2>&1 || {
    cat "$T_DIR/migrate.log"; echo "integration: 0 passed, 1 failed"; exit 1; }
make_tls "$T_DIR"
make_master_key "$T_DIR/master.key"

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests/integration/t_*.sh)
for t in "${tests[@]}"; do
    echo "== $(basename "$t")"
    t_start=$SECONDS
    # each file runs in a subshell so a crash in one cannot stop the others;
    # it reports its counts on fd 3
    counts=$( (
        T_PASS=0 T_FAIL=0 T_FAILED_NAMES=() T_PIDS=()
        # whatever this file started (tokend_start, simulators) ends with it
        trap 'for p in "${T_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done' EXIT
        . "$t" 3>&-
        echo "$T_PASS $T_FAIL ${T_FAILED_NAMES[*]:-}" >&3
    ) 3>&1 >&2 )
    read -r p f names <<<"${counts:-0 1 crashed:$(basename "$t")}"
    echo "== $(basename "$t"): $p passed, $f failed, $((SECONDS - t_start)) s"
    # a tokend that died under a sanitizer leaves its report only in its log, which the cleanup
    # removes: show the report here (once per log) so an intermittent abort can be diagnosed
    for log in "$T_DIR"/*.log; do
        [ -f "$log" ] && ! [ -e "$log.shown" ] || continue
        if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
            echo "  sanitizer report in $(basename "$log") (after $(basename "$t")):"
            grep -A40 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | head -80 | sed 's/^/    /'
            : >"$log.shown"
        fi
    done
    T_PASS=$((T_PASS + p))
    T_FAIL=$((T_FAIL + f))
    [ -n "${names:-}" ] && T_FAILED_NAMES+=($names)
done 2>&1

if [ "$T_FAIL" -gt 0 ]; then
    echo "integration: failed: ${T_FAILED_NAMES[*]}"
fi
echo "integration: $T_PASS passed, $T_FAIL failed"
[ "$T_FAIL" -eq 0 ]
