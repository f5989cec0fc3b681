# t_22_fuzz.sh - the libFuzzer targets (tests/fuzz, README there): built with clang-14 in
# build/fuzz, then each runs over its seed corpus (the test fixtures, the crash inputs of
# bugs fixed) and 2000 more inputs from a fixed seed. A sanitizer report or a broken
# property fails the target. Also: a target that crashes is reported as failed.

if [ -n "${TOKEND_TEST_SANITIZER:-}" ]; then
    # the targets are always built with ASan and UBSan (build/fuzz), and their smoke run has a
    # fixed seed: make asan would repeat make test's run input for input
    echo "  skip  fuzz: the same sanitized targets and seed as make test (checked by make test)"
    return
fi
FZ_DIR="$T_DIR/t13"
mkdir -p "$FZ_DIR"
FUZZ_TARGETS=(adyen card csv encoding json query reconcile stripe_sig)

make --no-print-directory fuzz-build >"$FZ_DIR/build.log" 2>&1
expect_eq "fuzz: make fuzz-build (clang-14, -fsanitize=fuzzer,address,undefined)" "$?" 0
expect_eq "fuzz: one target per parser" \
    "$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//;s/\.c$//' | tr '\n' ' ')" "${FUZZ_TARGETS[*]} "

out=$(tests/fuzz/run.sh --runs 2000 2>&1)
rc=$?
echo "$out" | sed 's/^/    /'
for t in "${FUZZ_TARGETS[@]}"; do
    expect_match "fuzz: $t: seeds and up to 2000 inputs without a crash" "$(grep "^fuzz: $t:" <<<"$out")" \
        "^fuzz: $t: ok \\("
done
expect_eq "fuzz: run.sh exits 0" "$rc" 0

# the control: a target that dies is a failure, and run.sh says so
mkdir -p "$FZ_DIR/b"
printf '#!/bin/sh\necho "==1== ERROR: AddressSanitizer: heap-buffer-overflow" >&2\nexit 1\n' \
    >"$FZ_DIR/b/fuzz_json"
chmod +x "$FZ_DIR/b/fuzz_json"
out=$(FUZZ_BUILD="$FZ_DIR/b" tests/fuzz/run.sh --runs 10 json 2>&1)
expect_eq "fuzz: a crashing target fails run.sh" "$?" 1
expect_match "fuzz: and is named with its log" "$(grep '^fuzz: json:' <<<"$out")" \
    '^fuzz: json: FAILED \(exit 1; log .*json\.log\)$'
expect_eq "fuzz: the totals count it" "$(tail -n 1 <<<"$out")" "fuzz: 0 passed, 1 failed"
rm -rf "$FZ_DIR"
