#!/usr/bin/env bash
# Runs every suite that can run here and ends with one "N passed, N failed"
# line. Counting: a cmocka binary counts its tests; any other suite may print
# lines "TEST-RESULT: pass|fail|skip NAME" (each counted), else it counts as
# one test by its exit code (77 = skipped). Logs go to $BUILD/test-logs/.
#
# Environment: BUILD (default build/asan), SUITES (space-separated subset of
# unit sim fuzz integration web), SIM_SEEDS (default 2000).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/asan}
BIN=$BUILD/bin
LOGS=$BUILD/test-logs
SUITES=${SUITES:-unit core sim fuzz integration web}
mkdir -p "$LOGS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TRIALCHAIN_BIN=$BIN
# For the node processes of the integration and web suites only: NNG 1.5.2
# can strand a reply at a connection's close (see the file).
NODE_LSAN="suppressions=$PWD/tests/integration/lsan-nng.supp"
passed=0 failed=0 skipped=0
failures=()

# run_suite NAME TIMEOUT_S CMD...
run_suite() {
    local name=$1 limit=$2
    shift 2
    local log="$LOGS/$name.log" rc
    mkdir -p "$(dirname "$log")"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    local p f s
    p=$(grep -c '^TEST-RESULT: pass' "$log")
    f=$(grep -c '^TEST-RESULT: fail' "$log")
    s=$(grep -c '^TEST-RESULT: skip' "$log")
    if [ $((p + f + s)) -gt 0 ]; then
        # a suite that crashed after reporting some results still fails once
        if [ $rc -ne 0 ] && [ "$f" -eq 0 ] && [ $rc -ne 77 ]; then f=1; fi
    elif grep -q '^\[==========\] .* test(s) run' "$log"; then
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    elif [ $rc -eq 77 ]; then
        s=1
    elif [ $rc -eq 0 ]; then
        p=1
    else
        f=1
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    local verdict=ok
    [ "$f" -gt 0 ] && { verdict=FAILED; failures+=("$name ($log)"); }
    [ $rc -eq 124 ] && verdict="FAILED (timeout ${limit}s)"
    printf '%-40s %-8s %4d passed %3d failed %3d skipped  %4ds\n' \
        "$name" "$verdict" "$p" "$f" "$s" $((SECONDS - t0))
    if [ "$f" -gt 0 ]; then
        grep -E 'TEST-RESULT: fail|FAILED|ERROR|Assert|error:|runtime error|Sanitizer' "$log" | head -15 | sed 's/^/    | /'
    fi
    grep '^TEST-RESULT: skip' "$log" | sed 's/^TEST-RESULT: skip/    skipped:/' | head -5
}

for suite in $SUITES; do
    case $suite in
    unit)
        for t in "$BIN"/test_*; do
            [ -x "$t" ] || continue
            run_suite "unit/$(basename "$t")" 300 "$t"
        done ;;
    core)
        run_suite "core/libc-only" 60 "$BIN/core-libc-only" ;;
    sim)
        [ -x "$BIN/sim" ] && run_suite "sim/campaign" 600 "$BIN/sim" --test \
            --seeds "${SIM_SEEDS:-2000}" ;;
    fuzz)
        for r in "$BIN"/fuzz_*_replay; do
            [ -x "$r" ] || continue
            n=$(basename "$r" _replay); n=${n#fuzz_}
            [ -d "tests/fuzz/corpus/$n" ] || continue
            run_suite "fuzz/$n" 300 "$r" "tests/fuzz/corpus/$n"
        done ;;
    integration)
        export LSAN_OPTIONS=$NODE_LSAN
        for s in tests/integration/*.sh; do
            [ -f "$s" ] || continue
            run_suite "integration/$(basename "$s" .sh)" 900 bash "$s"
        done
        unset LSAN_OPTIONS ;;
    web)
        export LSAN_OPTIONS=$NODE_LSAN
        for s in tests/web/*.sh; do
            [ -f "$s" ] || continue
            run_suite "web/$(basename "$s" .sh)" 300 bash "$s"
        done
        unset LSAN_OPTIONS ;;
    esac
done

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed suites:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
