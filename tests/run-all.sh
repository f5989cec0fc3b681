#!/usr/bin/env bash
# Runs the unit suites (Check) and the integration tests, then prints one
# closing line with the totals: 'tests: N passed, M failed'.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
cd "$ROOT"

unit_out=$(mktemp)
"$BUILD/check_unit" 2>&1 | tee "$unit_out"
unit_rc=${PIPESTATUS[0]}
# "100%: Checks: 73, Failures: 0, Errors: 0"
read -r u_total u_fail u_err < <(sed -nE 's/.*Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$unit_out" | tail -n 1)
rm -f "$unit_out"
u_total=${u_total:-0}
u_bad=$(( ${u_fail:-0} + ${u_err:-0} ))
if [ "$unit_rc" -ne 0 ] && [ "$u_bad" -eq 0 ]; then u_bad=1; fi

it_out=$(mktemp)
BUILD="$BUILD" tests/integration/run.sh 2>&1 | tee "$it_out"
it_rc=${PIPESTATUS[0]}
read -r i_pass i_fail < <(sed -nE 's/^integration: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$it_out" | tail -n 1)
rm -f "$it_out"
i_pass=${i_pass:-0}
i_fail=${i_fail:-0}
if [ "$it_rc" -ne 0 ] && [ "$i_fail" -eq 0 ]; then i_fail=1; fi

echo "unit: $((u_total - u_bad)) passed, $u_bad failed"
echo "integration: $i_pass passed, $i_fail failed"
echo "tests: $((u_total - u_bad + i_pass)) passed, $((u_bad + i_fail)) failed"
[ "$u_bad" -eq 0 ] && [ "$i_fail" -eq 0 ]
