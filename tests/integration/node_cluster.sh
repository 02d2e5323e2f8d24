#!/usr/bin/env bash
# Four trialchain-node processes on 127.0.0.1: they commit; a backup, then
# the primary, are killed with SIGKILL under load and the rest go on (view
# change); the killed ones restart and catch up; one node's data is wiped
# and rebuilt from peers; at the end every node holds the same certified
# blocks and every acknowledged transaction, with a receipt that verifies.
set -u
cd "$(dirname "$0")/../.."
BIN=${TRIALCHAIN_BIN:-build/bin}
BIN=$(cd "$BIN" && pwd)
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=60
T=$(mktemp -d /tmp/tc-cluster-XXXXXX)
# below the kernel's ephemeral ports (32768..), which a client connection
# could take before a node binds
BASE=$((21000 + (RANDOM % 110) * 100))
LOADS=()
failures=0

cleanup() {
    for p in "${LOADS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for f in "$T"/node*/node.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

result() { # result pass|fail NAME [detail]
    echo "TEST-RESULT: $1 node_cluster/$2${3:+ ($3)}"
    [ "$1" = fail ] && failures=$((failures + 1))
    return 0
}

tc() { timeout 240 "$BIN/trialchain" "$@"; }

primary() { # the primary as node$i reports it
    tc --node "tcp://127.0.0.1:$((BASE + 10 * $1 + 1))" --json status 2>/dev/null |
        sed -n 's/.*"primary"[^0-9]*\([0-9]*\).*/\1/p' | head -1
}

kill9() {
    local pid
    pid=$(cat "$T/node$1/node.pid")
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$T/node$1/node.pid"
}

tc testnet init "$T" --nodes 4 --base-port "$BASE" >/dev/null ||
    { result fail init; exit 1; }
scripts/testnet.sh start "$T" >"$T/start.log" 2>&1 &&
    result pass start || { result fail start "$(tail -3 "$T/start.log")"; exit 1; }

out=$(tc testnet load "$T" --count 40 --threads 4 --wait --acked "$T/acked")
[ $? -eq 0 ] && result pass commit "$out" || result fail commit "$out"

# A backup dies (SIGKILL) under load: the others go on committing; it
# restarts and catches up.
b=$(( ($(primary 1) + 3) % 4 ))
tc testnet load "$T" --count 1000 --threads 4 --wait --acked "$T/acked" \
    --timeout-ms 10000 >"$T/load1.log" 2>&1 &
LOADS+=($!)
sleep 2
kill9 "$b"
wait "${LOADS[-1]}" && result pass backup-killed "$(cat "$T/load1.log")" ||
    result fail backup-killed "$(cat "$T/load1.log")"
scripts/testnet.sh start "$T" "$b" >"$T/restart1.log" 2>&1 &&
    result pass backup-restarted || result fail backup-restarted "$(tail -3 "$T/restart1.log")"

# The primary dies under load: the remaining three change view.
p=$(primary "$b")
p=${p:-0}
tc testnet load "$T" --count 1000 --threads 4 --wait --acked "$T/acked" \
    --timeout-ms 10000 >"$T/load2.log" 2>&1 &
LOADS+=($!)
sleep 2
kill9 "$p"
wait "${LOADS[-1]}" && result pass primary-killed "$(cat "$T/load2.log")" ||
    result fail primary-killed "$(cat "$T/load2.log")"
np=$(primary "$(( (p + 1) % 4 ))")
[ -n "$np" ] && [ "$np" != "$p" ] && result pass view-changed "primary $p -> $np" ||
    result fail view-changed "primary still ${np:-unknown}"
scripts/testnet.sh start "$T" "$p" >"$T/restart2.log" 2>&1 &&
    result pass primary-restarted || result fail primary-restarted "$(tail -3 "$T/restart2.log")"

# One node loses its data and rebuilds it from its peers.
victim=$(( (p + 2) % 4 ))
scripts/testnet.sh stop "$T" "$victim" >/dev/null
rm -rf "$T/node$victim/data"
TESTNET_WAIT_S=5 scripts/testnet.sh start "$T" "$victim" >"$T/wipe.log" 2>&1
height() {
    tc --node "tcp://127.0.0.1:$((BASE + 10 * $1 + 1))" --json status 2>/dev/null |
        sed -n 's/.*"height"[^0-9]*\([0-9]*\).*/\1/p' | head -1
}
want=$(height "$p")
for _ in $(seq 1 120); do
    [ "$(height "$victim")" -ge "${want:-1}" ] 2>/dev/null && break
    sleep 0.5
done
[ "$(height "$victim")" -ge "${want:-1}" ] 2>/dev/null &&
    result pass wiped-rebuilt "height $(height "$victim") of $want" ||
    result fail wiped-rebuilt "height $(height "$victim") of $want"
# Rejoining means also joining the current view. A replica learns a view
# only from signed messages in it (f+1 of them, PBFT's rule), and an idle
# consortium sends none: so the check runs once traffic flows again, and
# the node must be ready (readiness says when its view lags) within 60 s.
out=$(tc testnet load "$T" --count 40 --threads 4 --wait --acked "$T/acked")
[ $? -eq 0 ] && result pass commit-after "$out" || result fail commit-after "$out"
TESTNET_WAIT_S=60 scripts/testnet.sh start "$T" "$victim" >>"$T/wipe.log" 2>&1 &&
    result pass wiped-rejoined || result fail wiped-rejoined \
    "$(curl -s "http://127.0.0.1:$((BASE + 10 * victim + 2))/readyz")"

out=$(tc testnet check "$T" --acked "$T/acked" --timeout-s 90)
[ $? -eq 0 ] && result pass identical-and-nothing-lost "$out" ||
    result fail identical-and-nothing-lost "$out"
grep -h '"catchup_done"\|catchup_done' "$T"/node*/node.log | head -3

scripts/testnet.sh stop "$T" >/dev/null
unclean=""
for i in 0 1 2 3; do
    tail -1 "$T/node$i/node.log" | grep -q 'stopped signal=15' ||
        unclean="$unclean node$i"
done
[ -z "$unclean" ] && result pass clean-stop || result fail clean-stop "$unclean"
exit $((failures > 0))
