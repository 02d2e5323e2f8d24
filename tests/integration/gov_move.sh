#!/usr/bin/env bash
# An institution moves its node: governance gives replica node3 a new key and
# a new address (replica-move) while clients keep submitting. The old
# process, whose key is no longer a replica, stops with exit 0; a fresh node
# with the new key, at the new address and with empty data, catches up from
# its peers and takes slot 3 in consensus. Checks: every acknowledged
# transaction is present once, the moved replica reaches the others' height
# with the same block hashes, and `verify ledger` from the genesis crosses
# the change. Bounded: every wait has a count and a time limit.
set -u
cd "$(dirname "$0")/../.."
BIN=${TRIALCHAIN_BIN:-build/bin}
BIN=$(cd "$BIN" && pwd)
TC=$BIN/trialchain
TMP=$(mktemp -d)
NET=$TMP/net
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=${TESTNET_WAIT_S:-30}
export TRIALCHAIN_TIMEOUT_MS=20000
LOADPID=
cleanup() {
    [ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null
    timeout 30 scripts/testnet.sh stop "$NET" all >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

. tests/integration/lib/testnet.sh
testnet_up gov_move 4 1 20000
export TRIALCHAIN_NODE=tcp://127.0.0.1:$((BASE + 1))
K=$NET/keys

# Load in the background for the whole move: acknowledged ids go to a file.
(
    for round in $(seq 1 40); do
        [ -e "$TMP/stop-load" ] && break
        timeout 60 "$TC" testnet load "$NET" --count 10 --threads 2 --wait \
            --acked "$TMP/acked.$round" >/dev/null 2>&1
    done
) &
LOADPID=$!

# The new home: the spare's key and ports, slot 3 (a move keeps the slot).
NEWHOME=$NET/node4
NEWKEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$NEWHOME/node.key")
NEWURL=tcp://127.0.0.1:$((BASE + 40))
python3 - "$NEWHOME/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["replica_id"] = 3
json.dump(c, open(p, "w"), indent=2)
PY
OLDPID=$(cat "$NET/node3/node.pid")
sleep 2
if timeout 60 "$TC" --key "$K/sponsor.key" governance propose move-node3 \
    replica-move node3 --public-key "$NEWKEY" --peer-url "$NEWURL" \
    --reason "node3 moves to new hardware" >"$TMP/propose.log" 2>&1 &&
    timeout 60 "$TC" --key "$K/ethics.key" governance approve move-node3 \
        >"$TMP/approve.log" 2>&1 && grep -q "applied" "$TMP/approve.log"; then
    pass gov_move_applied
else
    fail gov_move_applied "$(cat "$TMP/propose.log" "$TMP/approve.log" | tail -4)"
fi

# A crash across the boundary: node2 is killed as the change applies and
# restarted a moment later; it must finish the switch from its disk (and
# fetch the boundary certificate if it missed it).
kill -9 "$(cat "$NET/node2/node.pid")" 2>/dev/null
sleep 1
rm -f "$NET/node2/node.pid"
if timeout 60 scripts/testnet.sh start "$NET" 2 >"$TMP/start2.log" 2>&1; then
    pass gov_move_crash_restart
else
    fail gov_move_crash_restart "$(tail -3 "$NET/node2/node.log")"
fi

# The old process is no longer a replica: it stops, exit 0, and says why.
rc=
for i in $(seq 1 60); do
    if ! kill -0 "$OLDPID" 2>/dev/null; then
        wait "$OLDPID" 2>/dev/null
        rc=done
        break
    fi
    sleep 0.5
done
if [ "$rc" = done ] && grep -q "replica_removed" "$NET/node3/node.log"; then
    pass gov_move_old_process_stopped
else
    fail gov_move_old_process_stopped "$(tail -3 "$NET/node3/node.log")"
fi
rm -f "$NET/node3/node.pid"

# The new node starts empty at the new address and joins as slot 3.
timeout 60 scripts/testnet.sh start "$NET" 4 >"$TMP/start4.log" 2>&1
joined=0
for i in $(seq 1 90); do
    st=$(timeout 10 "$TC" --node tcp://127.0.0.1:$((BASE + 41)) status --json 2>/dev/null)
    if echo "$st" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("ready") and d.get("replica")==3 and d.get("height",0)>0 else 1)' 2>/dev/null; then
        joined=1
        break
    fi
    sleep 1
done
[ $joined = 1 ] && pass gov_move_new_node_joined ||
    fail gov_move_new_node_joined "$(tail -3 "$NEWHOME/node.log")"

# More load with the moved replica in place, then stop the load.
sleep 5
touch "$TMP/stop-load"
for i in $(seq 1 120); do kill -0 "$LOADPID" 2>/dev/null || break; sleep 0.5; done
kill "$LOADPID" 2>/dev/null
LOADPID=
cat "$TMP"/acked.* 2>/dev/null | sort -u >"$TMP/acked"
nacked=$(wc -l <"$TMP/acked")
[ "$nacked" -gt 20 ] && pass gov_move_load_acknowledged ||
    fail gov_move_load_acknowledged "only $nacked acknowledged"

# Every acknowledged tx once on every running node (the moved one
# included), identical blocks at a common height.
if timeout 120 "$TC" testnet check "$NET" --nodes 0,1,2,4 --acked "$TMP/acked" --timeout-s 60 \
    >"$TMP/check.log" 2>&1; then
    pass gov_move_acked_once_identical_blocks
else
    fail gov_move_acked_once_identical_blocks "$(tail -8 "$TMP/check.log" | tr "\n" " ")"
fi
hashes=$(for p in 1 11 21 41; do
    timeout 10 "$TC" --node tcp://127.0.0.1:$((BASE + p)) block 3 --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])' 2>/dev/null
done | sort -u | wc -l)
[ "$hashes" = 1 ] && pass gov_move_same_blocks_on_moved_node ||
    fail gov_move_same_blocks_on_moved_node "$hashes distinct hashes at block 3"

# The moved node's own ledger verifies from the genesis across the move.
if timeout 120 "$TC" --node tcp://127.0.0.1:$((BASE + 41)) verify ledger \
    --genesis "$NET/genesis.json" >"$TMP/verify.log" 2>&1 &&
    grep -q "1 replica-set change" "$TMP/verify.log"; then
    pass gov_move_verify_ledger
else
    fail gov_move_verify_ledger "$(tail -3 "$TMP/verify.log")"
fi
