#!/usr/bin/env bash
# `make fuzz`: builds every libFuzzer target (tests/fuzz/fuzz_*.c) with
# clang -fsanitize=fuzzer,address,undefined into build/fuzz and runs each
# for FUZZ_SECONDS (default 60), starting from its seed corpus
# tests/fuzz/corpus/<name>/. Every run is bounded (timeout), one target
# after the other.
#
# Every crash found becomes a corpus entry: a crash, leak, timeout or
# out-of-memory input is copied into tests/fuzz/corpus/<name>/ as
# crash-<sha1> (leak-, timeout-, oom-), so `make test` replays it under
# ASan/UBSan from then on and fails until the bug is fixed; commit it with
# the fix. The script then fails, naming each new input.
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   space-separated subset, e.g. "pbft registry"
#   FUZZ_JOBS      parallel make jobs for the build (default 2)
#   FUZZ_MERGE=1   after the runs, merge the inputs that add coverage into
#                  tests/fuzz/corpus/<name>/ (libFuzzer -merge=1)
# Inputs found during the runs stay in build/fuzz/corpus/<name>/, the
# fuzzer logs in build/fuzz/logs/<name>.log.
#
# Replay one input with the gcc build: build/asan/bin/fuzz_<name>_replay FILE
# or with the fuzzer binary: build/fuzz/fuzzbin/fuzz_<name> FILE
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
B=build/fuzz
OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
LDLIBS="-lnng -lsodium -lleveldb -lprotobuf-c -ljansson -lpthread -lm"

command -v clang >/dev/null || { echo "fuzz: clang is not installed" >&2; exit 2; }

if [ -n "${FUZZ_TARGETS:-}" ]; then
    targets=$FUZZ_TARGETS
else
    targets=$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_\(.*\)\.c|\1|')
fi

# Naming the generated headers as goals keeps make from deleting them as
# intermediate files (which would rebuild everything next time).
gen=$(ls proto/*.proto | sed "s|proto/\(.*\)\.proto|$B/gen/\1.pb-c.h|")
objs=$(for t in $targets; do echo "$B/obj/tests/fuzz/fuzz_$t.o"; done)
echo "fuzz: building $(echo $targets | wc -w) targets with clang into $B"
make --no-print-directory BUILD=$B CC=clang OPT="$OPT" -j"$JOBS" $gen \
    $B/lib/libpbft.a $B/lib/libnode.a $B/lib/libtctool.a $objs ||
    { echo "fuzz: build failed" >&2; exit 1; }
mkdir -p $B/fuzzbin $B/logs
for t in $targets; do
    clang $OPT -fsanitize=fuzzer $B/obj/tests/fuzz/fuzz_$t.o \
        $B/lib/libtctool.a $B/lib/libnode.a $B/lib/libpbft.a $LDLIBS \
        -o $B/fuzzbin/fuzz_$t || { echo "fuzz: link of $t failed" >&2; exit 1; }
done

new_inputs=()
for t in $targets; do
    seeds=tests/fuzz/corpus/$t
    work=$B/corpus/$t
    art=$B/artifacts/$t
    mkdir -p "$seeds" "$work" "$art"
    rm -f "$art"/*
    log=$B/logs/$t.log
    maxlen=16384
    [ "$t" = ctgov ] || [ "$t" = genesis ] && maxlen=131072
    echo "fuzz: $t for ${SECONDS_EACH}s (seeds: $(ls "$seeds" | wc -l))"
    timeout --kill-after=10 $((SECONDS_EACH + 120)) \
        $B/fuzzbin/fuzz_$t -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1 \
        -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $t: exit $rc, ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l)"
    for a in "$art"/*; do
        [ -f "$a" ] || continue
        kind=$(basename "$a" | cut -d- -f1)
        dest="$seeds/$kind-$(sha1sum "$a" | cut -c1-16)"
        cp "$a" "$dest"
        new_inputs+=("$dest")
        echo "fuzz: $t: NEW $kind input saved as $dest"
        grep -m3 -E 'ERROR|runtime error|assertion failed' "$log" | sed 's/^/    | /'
    done
    if [ $rc -ne 0 ] && ! ls "$art"/* >/dev/null 2>&1; then
        echo "fuzz: $t: the fuzzer failed without an artifact; see $log" >&2
        new_inputs+=("$t (no artifact, exit $rc)")
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        $B/fuzzbin/fuzz_$t -merge=1 "$seeds" "$work" >>"$log" 2>&1
        echo "fuzz: $t: seed corpus now $(ls "$seeds" | wc -l) inputs"
    fi
done

if [ ${#new_inputs[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${#new_inputs[@]} new failing input(s):"
    printf '  %s\n' "${new_inputs[@]}"
    echo "fuzz: reproduce with build/fuzz/fuzzbin/fuzz_<name> FILE; fix the bug, keep the input in the corpus"
    exit 1
fi
echo "fuzz: ok, no crash in ${SECONDS_EACH}s per target"
