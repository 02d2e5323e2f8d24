#!/usr/bin/env bash
# make sim-mutants: the simulator's checkers must be able to fail.
#
# For each tests/sim/mutants/<name>.patch: copy consensus/ into
# build/mutants/<name>/consensus, apply the patch (a patch that no longer
# applies is an error: fix the patch, don't skip it), build the simulator
# against that core with the project's warning flags (no sanitizers, for
# speed), and run a campaign that stops at the first violation. Succeeds
# only if the simulator reports a violation (a "SEED=" line) for every
# mutant. A "Family: NAME" line in a patch's header runs that family only
# (reconfig is outside the default cycle). Environment: MUTANT_SEEDS
# (default 2000 per mutant), JOBS (2).
set -u
cd "$(dirname "$0")/.."
SEEDS=${MUTANT_SEEDS:-2000}
JOBS=${JOBS:-2}
CC=${CC:-gcc}
WARN="-std=c17 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
 -Wmissing-prototypes -Wformat=2 -Wcast-align -Wvla -Wundef \
 -Wimplicit-fallthrough -Wnull-dereference -Wwrite-strings -Werror"
CORE_WARN="-Wconversion -Wsign-conversion"
OPT="-O2 -g"

patches=(tests/sim/mutants/*.patch)
if [ ! -e "${patches[0]}" ]; then
    echo "sim-mutants: no patches in tests/sim/mutants" >&2
    exit 1
fi

# One run at a time: two runs would share build/mutants/<name>.
mkdir -p build/mutants
exec 9>build/mutants/.lock
if ! flock -w 1800 9; then
    echo "sim-mutants: another run holds build/mutants/.lock" >&2
    exit 1
fi

caught=0 missed=0 broken=0
summary=()
for patch in "${patches[@]}"; do
    name=$(basename "$patch" .patch)
    dir=build/mutants/$name
    rm -rf "$dir/consensus" "$dir/obj"
    mkdir -p "$dir/obj" "$dir/bin"
    cp -r consensus "$dir/consensus"
    if ! patch -s -p1 -d "$dir" --no-backup-if-mismatch -r - <"$patch"; then
        echo "sim-mutants: $patch no longer applies to consensus/" >&2
        summary+=("$name: PATCH DOES NOT APPLY")
        broken=$((broken + 1))
        continue
    fi
    ok=1
    objs=()
    for src in "$dir"/consensus/*.c; do
        o=$dir/obj/core_$(basename "$src" .c).o
        $CC $WARN $CORE_WARN $OPT -D_GNU_SOURCE -I"$dir/consensus/include" \
            -c "$src" -o "$o" || { ok=0; break; }
        objs+=("$o")
    done
    if [ $ok -eq 1 ]; then
        for src in tests/sim/*.c; do
            o=$dir/obj/sim_$(basename "$src" .c).o
            $CC $WARN $OPT -D_GNU_SOURCE -I"$dir/consensus/include" \
                -Itests/sim -c "$src" -o "$o" || { ok=0; break; }
            objs+=("$o")
        done
    fi
    if [ $ok -eq 1 ]; then
        $CC $OPT "${objs[@]}" -lsodium -o "$dir/bin/sim" || ok=0
    fi
    if [ $ok -eq 0 ]; then
        echo "sim-mutants: $name does not build" >&2
        summary+=("$name: DOES NOT BUILD")
        broken=$((broken + 1))
        continue
    fi
    t0=$SECONDS
    log=$dir/campaign.log
    family=$(sed -n 's/^Family: *\([a-z-]*\).*/\1/p' "$patch" | head -n 1)
    timeout --kill-after=10 900 "$dir/bin/sim" --seeds "$SEEDS" \
        --jobs "$JOBS" --until-fail ${family:+--family "$family"} \
        >"$log" 2>&1
    first=$(grep -m1 '^SEED=' "$log")
    if [ -n "$first" ]; then
        caught=$((caught + 1))
        summary+=("$name: caught in $((SECONDS - t0))s: $first")
    else
        missed=$((missed + 1))
        summary+=("$name: NOT CAUGHT in $SEEDS seeds ($((SECONDS - t0))s, log $log)")
    fi
done

echo "sim-mutants:"
printf '  %s\n' "${summary[@]}"
echo "$caught caught, $missed missed, $broken broken"
[ $missed -eq 0 ] && [ $broken -eq 0 ]
