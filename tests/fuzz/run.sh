#!/usr/bin/env bash
# tests/fuzz/run.sh - runs the libFuzzer targets built by `make fuzz-build` (README.md here).
#
#   run.sh --seconds N [name...]   fuzz each target N seconds; new inputs are kept in
#                                  $BUILD/corpus/<name>, the checked-in seeds stay as they are
#   run.sh --runs N [name...]      the CI smoke: each target over its seeds, then N more
#                                  inputs with a fixed seed (-seed=1), at most
#                                  FUZZ_SMOKE_MAX_S (8) seconds each; nothing kept
#
# FUZZ_BUILD: where the targets are (build/fuzz).
# A crash (sanitizer report, a broken property, a leak, a timeout) fails the target: its
# input is saved as $BUILD/crashes/<name>-crash-<sha1> and the log's end is printed.
# One line per target, then 'fuzz: N passed, M failed'; exit status 1 when any failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-build/fuzz}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"

mode=${1:-}; n=${2:-}
case "$mode" in --seconds | --runs) ;; *) echo "usage: $0 --seconds N | --runs N [name...]" >&2; exit 2 ;; esac
[[ "$n" =~ ^[0-9]+$ ]] || { echo "$0: $mode needs a number" >&2; exit 2; }
shift 2
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do names+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
fi

mkdir -p "$BUILD/crashes" "$BUILD/logs"
pass=0 fail=0
for name in "${names[@]}"; do
    bin="$BUILD/fuzz_$name" seeds="tests/fuzz/corpus/$name" log="$BUILD/logs/$name.log"
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "fuzz: $name: FAILED (no $bin or no $seeds)"; fail=$((fail + 1)); continue
    fi
    if [ "$mode" = --runs ]; then
        work=$(mktemp -d "${TMPDIR:-/tmp}/tokend-fuzz.XXXXXX")
        args=(-runs="$n" -seed=1 -max_total_time="${FUZZ_SMOKE_MAX_S:-8}" "$work" "$seeds")
    else
        work="$BUILD/corpus/$name"
        mkdir -p "$work"
        args=(-max_total_time="$n" "$work" "$seeds")
    fi
    # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: a leak or a runaway
    "$bin" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$BUILD/crashes/$name-" "${args[@]}" >"$log" 2>&1
    rc=$?
    [ "$mode" = --runs ] && rm -rf "$work"
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n 1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -nE 's/.* cov: ([0-9]+) .*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9A-Za-z]+) .*/\1/p' <<<"$last")
    if [ "$rc" -eq 0 ] && grep -q '^stat::number_of_executed_units' "$log"; then
        echo "fuzz: $name: ok (${runs:-?} runs, ${rate:-?}/s, cov ${cov:-?}, corpus ${corp:-?})"
        pass=$((pass + 1))
    else
        echo "fuzz: $name: FAILED (exit $rc; log $log)"
        grep -E 'ERROR|SUMMARY|property broken|Test unit written|^#' "$log" | tail -n 15 | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
