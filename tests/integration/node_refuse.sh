#!/usr/bin/env bash
# trialchain-node refuses to start, with a sentence saying why, on a bad
# config, a key file others can read, another node's key, and a data
# directory of another chain; it logs JSON lines with --log-format=json and
# exits 0 after SIGTERM, within about 10 s even when closing hangs.
set -u
cd "$(dirname "$0")/../.."
BIN=${TRIALCHAIN_BIN:-build/bin}
BIN=$(cd "$BIN" && pwd)
T=$(mktemp -d /tmp/tc-refuse-XXXXXX)
# below the kernel's ephemeral ports (32768..), which a client connection
# could take before a node binds
BASE=$((21000 + (RANDOM % 110) * 100))
PID=
failures=0

cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

result() {
    echo "TEST-RESULT: $1 node_refuse/$2${3:+ ($3)}"
    [ "$1" = fail ] && failures=$((failures + 1))
    return 0
}

node() { timeout 20 "$BIN/trialchain-node" "$@"; }

# refuses NAME PATTERN HOME: the node must exit non-zero, saying PATTERN.
refuses() {
    local out rc
    out=$(node --home "$3" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qi -- "$2" <<<"$out"; then
        result pass "$1" "$(grep -i -- "$2" <<<"$out" | tail -1)"
    else
        result fail "$1" "rc=$rc: $(tail -2 <<<"$out")"
    fi
}

"$BIN/trialchain" testnet init "$T/a" --nodes 4 --base-port "$BASE" >/dev/null &&
    "$BIN/trialchain" testnet init "$T/b" --nodes 4 --base-port "$((BASE + 50))" \
        >/dev/null || { result fail init; exit 1; }

cp "$T/a/node0/config.json" "$T/cfg.json"
echo '{"replica_id": 0, "clinet_url": "tcp://127.0.0.1:1"}' >"$T/a/node0/config.json"
refuses bad-config 'clinet_url' "$T/a/node0"
cp "$T/cfg.json" "$T/a/node0/config.json"

chmod 0644 "$T/a/node0/node.key"
refuses key-readable-by-others 'chmod\|readable' "$T/a/node0"
chmod 0600 "$T/a/node0/node.key"

cp "$T/a/node0/node.key" "$T/key0"
cp "$T/a/node1/node.key" "$T/a/node0/node.key"
refuses foreign-key "not replica 0's key" "$T/a/node0"
cp "$T/key0" "$T/a/node0/node.key"

# start_node LOG [VAR=VALUE...] [--OPTION...]: node0 of consortium a, in
# the background (PID), with that environment and those options; returns
# once it runs (at most 10 s). stop_node: SIGTERM, then its exit code in rc.
start_node() {
    local log=$1 a envs=() opts=()
    shift
    for a in "$@"; do
        case $a in -*) opts+=("$a") ;; *) envs+=("$a") ;; esac
    done
    env "${envs[@]}" "$BIN/trialchain-node" --home "$T/a/node0" "${opts[@]}" \
        >"$log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        grep -q node_running "$log" && break
        sleep 0.1
    done
}
stop_node() {
    kill -TERM "$PID"
    wait "$PID"
    rc=$?
    PID=
}

# A clean start and stop: JSON logs, exit 0 on SIGTERM.
start_node "$T/a0.log" --log-format=json
stop_node
[ $rc -eq 0 ] && result pass sigterm-exit-0 || result fail sigterm-exit-0 "rc=$rc"
head -1 "$T/a0.log" | grep -q '^{.*"event"' && result pass json-logs ||
    result fail json-logs "$(head -1 "$T/a0.log")"

# Every thread of the node runs under the default policy (0, field 41 of
# /proc/PID/task/TID/stat), or under SCHED_BATCH (3) when cpu_policy says
# batch; a policy the node does not know is refused before it starts.
policies() { # the distinct policies of $PID's threads
    local t
    for t in /proc/"$PID"/task/*/stat; do
        sed 's/.*) //' "$t" 2>/dev/null | awk '{ print $39 }'
    done | sort -u | tr '\n' ' '
}
start_node "$T/p0.log"
got=$(policies)
stop_node
[ "$got" = "0 " ] && result pass threads-sched-normal ||
    result fail threads-sched-normal "policies: $got"
start_node "$T/p1.log" TRIALCHAIN_CPU_POLICY=batch
got=$(policies)
stop_node
[ "$got" = "3 " ] && result pass threads-sched-batch ||
    result fail threads-sched-batch "policies: $got"
TRIALCHAIN_CPU_POLICY=fifo timeout 30 "$BIN/trialchain-node" --home "$T/a/node0" >"$T/p2.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'cpu_policy "fifo" is not batch or normal' "$T/p2.log" &&
    result pass bad-cpu-policy-refused || result fail bad-cpu-policy-refused \
    "rc=$rc: $(tail -1 "$T/p2.log")"

# A close that hangs (NNG's nng_close can, over IPC) is abandoned after
# 10 s: the node says so and exits with the code it would have had, and its
# data opens again. The test mode stalls the close for 10 minutes.
start_node "$T/a1.log" TRIALCHAIN_TEST_CLOSE_STALL_MS=600000
t0=$SECONDS
kill -TERM "$PID"
for _ in $(seq 1 300); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then
    result fail stuck-close-exits "still running $((SECONDS - t0)) s after SIGTERM"
    kill -9 "$PID"
    wait "$PID" 2>/dev/null
else
    wait "$PID"
    rc=$?
    [ $rc -eq 0 ] && grep -q shutdown_stuck "$T/a1.log" &&
        result pass stuck-close-exits "rc=0 after $((SECONDS - t0)) s" ||
        result fail stuck-close-exits "rc=$rc: $(tail -2 "$T/a1.log")"
fi
PID=
start_node "$T/a2.log"
stop_node
[ $rc -eq 0 ] && grep -q resumed "$T/a2.log" && ! grep -q shutdown_stuck "$T/a2.log" &&
    result pass reopens-after-stuck-close || result fail reopens-after-stuck-close \
    "rc=$rc: $(tail -2 "$T/a2.log")"

# node0 of consortium b given consortium a's data.
cp -r "$T/a/node0/data" "$T/b/node0/data"
refuses other-chain 'another chain' "$T/b/node0"
exit $((failures > 0))
