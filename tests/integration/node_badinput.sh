#!/usr/bin/env bash
# Bad input at both sockets of a running node (garbage, truncated and
# oversized frames, deeply nested protobuf, unknown message types, forged
# senders, bad signatures, replays, wrong-chain and malformed transactions):
# each is dropped or refused with a log line and a counter, and the node
# keeps serving and committing.
set -u
cd "$(dirname "$0")/../.."
BIN=${TRIALCHAIN_BIN:-build/bin}
BIN=$(cd "$BIN" && pwd)
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=60
TMP=$(mktemp -d /tmp/tc-badinput-XXXXXX)
NET=$TMP/net
T=$NET
TC="$BIN/trialchain"
failures=0

cleanup() {
    for f in "$T"/node*/node.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

result() {
    echo "TEST-RESULT: $1 node_badinput/$2${3:+ ($3)}"
    [ "$1" = fail ] && failures=$((failures + 1))
    return 0
}

tc() { timeout 180 "$BIN/trialchain" "$@"; }

metric() { # metric NODE NAME-WITH-LABELS
    curl -s -m 5 "http://127.0.0.1:$((BASE + 10 * $1 + 2))/metrics" |
        grep -F "$2 " | grep -v "^#" | awk '{print $2}' | head -1
}

# Ports below the kernel's ephemeral range, checked free first (a client
# connection's local port once took a node's peer port here).
. tests/integration/lib/testnet.sh
testnet_up node_badinput 4 0 21000

# The poke prints its own TEST-RESULT lines (badinput/...).
tc testnet poke "$T" --replica 1 || failures=$((failures + 1))

sleep 1
for m in 'reason="bad_frame"' 'reason="undecodable"' \
    'reason="bad_client_request"' 'reason="tx_refused"'; do
    v=$(metric 1 "trialchain_dropped_messages_total{$m}")
    [ "${v:-0}" -gt 0 ] && result pass "counted-$m" "$v" ||
        result fail "counted-$m" "${v:-none}"
done
v=$(metric 1 trialchain_bad_signatures_total)
[ "${v:-0}" -gt 0 ] && result pass counted-bad-signatures "$v" ||
    result fail counted-bad-signatures "${v:-none}"
# every signature check is counted, the bad ones among them
w=$(metric 1 trialchain_vote_verifies_total)
[ "${w:-0}" -ge "${v:-1}" ] && [ "${w:-0}" -gt 0 ] &&
    result pass counted-vote-verifies "$w" ||
    result fail counted-vote-verifies "${w:-none} (bad: ${v:-none})"
# the loop counts its turns and its synced writes; blocks were committed
# here, so both moved
blocks=$(metric 1 trialchain_commits_total)
syncs=$(metric 1 trialchain_synced_writes_total)
turns=$(metric 1 trialchain_loop_turns_total)
[ "${blocks:-0}" -gt 0 ] && [ "${syncs:-0}" -gt 0 ] && [ "${turns:-0}" -gt 0 ] &&
    result pass counted-syncs-and-turns "blocks $blocks syncs $syncs turns $turns" ||
    result fail counted-syncs-and-turns "blocks ${blocks:-none} syncs ${syncs:-none} turns ${turns:-none}"
grep -q 'peer_frame_dropped' "$T/node1/node.log" &&
    grep -q 'client_request_dropped' "$T/node1/node.log" &&
    grep -q 'tx_refused' "$T/node1/node.log" &&
    result pass logged || result fail logged

out=$(tc testnet load "$T" --count 40 --threads 4 --wait --acked "$T/acked")
[ $? -eq 0 ] && result pass still-committing "$out" ||
    result fail still-committing "$out"
# node1 (a backup) forwarded the requests it got to the primary, each
# ahead of its turn's synced write
e=$(metric 1 trialchain_early_forwards_total)
[ "${e:-0}" -gt 0 ] && result pass forwards-sent-early "$e" ||
    result fail forwards-sent-early "${e:-none}"
out=$(tc testnet check "$T" --acked "$T/acked" --timeout-s 60)
[ $? -eq 0 ] && result pass still-agreeing "$out" || result fail still-agreeing "$out"
exit $((failures > 0))
