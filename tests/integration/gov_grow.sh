#!/usr/bin/env bash
# gov_grow.sh - a 4-node consortium under continuous load grows to 5 and
# then 7 replicas by governance (replica-add proposed by the sponsor,
# approved by the ethics board, then the spare node started: it catches up
# and joins), and shrinks back to 4 (replica-remove of the three added:
# each stops by itself with exit 0). Then: the ledger kept committing after
# every change; every acknowledged tx is on the ledger exactly once with a
# verified receipt on every remaining node; the remaining nodes hold
# identical blocks; `trialchain verify ledger` from the genesis passes and
# crosses all six changes. Bounded: about three minutes.
set -u
cd "$(dirname "$0")/../.." || exit 2
BIN=${TRIALCHAIN_BIN:-build/bin}
TC="$BIN/trialchain"
for b in trialchain trialchain-node; do
    [ -x "$BIN/$b" ] || { echo "TEST-RESULT: skip gov_grow (no $BIN/$b)"; exit 77; }
done
command -v jq >/dev/null || { echo "TEST-RESULT: skip gov_grow (no jq)"; exit 77; }
TMP=$(mktemp -d)
NET=$TMP/net
ACKED=$TMP/acked.txt
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=${TESTNET_WAIT_S:-30}
export TRIALCHAIN_TIMEOUT_MS=20000
declare -A PIDS=()
LOADPID=
T0=$SECONDS
cleanup() {
    touch "$TMP/stop-load"
    # the loop's current `testnet load` (timeout passes TERM on), then it
    [ -n "$LOADPID" ] && { pkill -TERM -P "$LOADPID" 2>/dev/null; kill "$LOADPID" 2>/dev/null; }
    for i in "${!PIDS[@]}"; do kill -TERM "${PIDS[$i]}" 2>/dev/null; done
    timeout 30 scripts/testnet.sh stop "$NET" >/dev/null 2>&1
    # GOV_GROW_KEEP=1 keeps the homes and logs for a look after a failure
    if [ -n "${GOV_GROW_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
# seven homes (4 + 3 spares) below the kernel's ephemeral ports (32768..),
# which a client connection could take before a spare node binds
. tests/integration/lib/testnet.sh
testnet_up gov_grow 4 3 12000
export TRIALCHAIN_NODE=tcp://127.0.0.1:$((BASE + 1))
K=$NET/keys
client_url() { echo "tcp://127.0.0.1:$((BASE + 10 * $1 + 1))"; }
acks() { [ -f "$ACKED" ] && wc -l <"$ACKED" || echo 0; }
log() { echo "[$((SECONDS - T0))s] $*"; }

# ---- continuous load: site-a and site-b sign (the voters' keys stay free) ----------
(
    while [ ! -e "$TMP/stop-load" ]; do
        timeout 120 "$TC" testnet load "$NET" --count 10 --threads 2 \
            --members site-a,site-b --wait --timeout-ms 15000 --acked "$ACKED" \
            >>"$TMP/load.log" 2>&1
    done
) &
LOADPID=$!

# progress NAME: at least 5 more acknowledged txs within 40 s
progress() {
    local from deadline
    from=$(acks)
    deadline=$((SECONDS + 40))
    while [ "$(acks)" -lt $((from + 5)) ] && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
    if [ "$(acks)" -ge $((from + 5)) ]; then pass "$1"; else
        fail "$1" "$(($(acks) - from)) txs acknowledged in 40 s; load: $(tail -2 "$TMP/load.log")"
        return 1
    fi
}

# replicas_now: n of the set in force, from node0
replicas_now() { "$TC" --json governance members 2>/dev/null | jq -r '.replicas.n // 0'; }

# change ID VERB ARGS...: proposed by the sponsor, approved by the ethics board
change() {
    local id=$1
    shift
    if ! timeout 60 "$TC" --key "$K/sponsor.key" governance propose "$id" "$@" \
        >"$TMP/out" 2>&1; then
        fail "gov_grow_propose_$id" "$(head -c 400 "$TMP/out")"
        return 1
    fi
    if timeout 60 "$TC" --key "$K/ethics.key" governance approve "$id" >"$TMP/out" 2>&1 &&
        grep -q "applied at block" "$TMP/out"; then
        pass "gov_grow_applied_$id"
    else
        fail "gov_grow_applied_$id" "$(head -c 400 "$TMP/out")"
        return 1
    fi
}

# grow I N: add spare node I, start it, wait until it serves as one of N
grow() {
    local i=$1 n=$2 deadline h0 st
    change "add-node$i" replica-add "node$i" --key-file "$NET/node$i/node.key" \
        --peer-url "tcp://127.0.0.1:$((BASE + 10 * i))" || return 1
    [ "$(replicas_now)" = "$n" ] && pass "gov_grow_set_is_$n" ||
        fail "gov_grow_set_is_$n" "governance members says n=$(replicas_now)"
    h0=$("$TC" --json status | jq -r .height)
    "$BIN/trialchain-node" --home "$NET/node$i" >>"$NET/node$i/node.log" 2>&1 &
    PIDS[$i]=$!
    echo "${PIDS[$i]}" >"$NET/node$i/node.pid"
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        st=$("$TC" --node "$(client_url "$i")" --timeout 2000 --json status 2>/dev/null)
        if [ -n "$st" ] && echo "$st" | jq -e --argjson n "$n" --argjson h "$h0" \
            '.n_replicas == $n and .height >= $h and .ready' >/dev/null 2>&1; then
            pass "gov_grow_node${i}_joined"
            log "node$i joined: $(echo "$st" | jq -c '{height, n_replicas, view}')"
            return 0
        fi
        kill -0 "${PIDS[$i]}" 2>/dev/null || break
        sleep 0.5
    done
    fail "gov_grow_node${i}_joined" "status: ${st:-none}; log: $(tail -3 "$NET/node$i/node.log")"
    return 1
}

# shrink I N: remove node I; it must stop by itself, exit 0, and say why
shrink() {
    local i=$1 n=$2 deadline rc
    change "rm-node$i" replica-remove "node$i" || return 1
    [ "$(replicas_now)" = "$n" ] && pass "gov_grow_set_is_${n}_again_$i" ||
        fail "gov_grow_set_is_${n}_again_$i" "governance members says n=$(replicas_now)"
    deadline=$((SECONDS + 60))
    while kill -0 "${PIDS[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
        # what it was doing, for whoever reads the failure
        local st
        st=$("$TC" --node "$(client_url "$i")" --timeout 2000 --json status 2>/dev/null |
            jq -c '{height, n_replicas, ready, view}' 2>/dev/null)
        fail "gov_grow_node${i}_stops_when_removed" "still running 60 s after its removal;
 status: ${st:-none}; log: $(grep -v ' debug ' "$NET/node$i/node.log" | tail -8)"
        return 1
    fi
    wait "${PIDS[$i]}"
    rc=$?
    unset "PIDS[$i]"
    rm -f "$NET/node$i/node.pid"
    [ $rc = 0 ] && pass "gov_grow_node${i}_exit_0" ||
        fail "gov_grow_node${i}_exit_0" "exit $rc: $(tail -3 "$NET/node$i/node.log")
 sanitizer: $(grep -E -A40 'ERROR: (Leak|Address)Sanitizer' "$NET/node$i/node.log" |
            grep -E 'leak of|#[0-9]+ ' | grep -v -E '/(asan|lsan)/|libc_start' | head -24)"
    grep -Eq "removed.*height=[0-9]+|removed at height" "$NET/node$i/node.log" &&
        pass "gov_grow_node${i}_logs_removal" ||
        fail "gov_grow_node${i}_logs_removal" "$(tail -3 "$NET/node$i/node.log")"
}

progress gov_grow_load_before || true
log "n=4, $(acks) acknowledged"
grow 4 5 && progress gov_grow_load_at_5
log "n=5, $(acks) acknowledged"
grow 5 6 && grow 6 7 && progress gov_grow_load_at_7
log "n=7, $(acks) acknowledged"
shrink 6 6 && shrink 5 5 && shrink 4 4 && progress gov_grow_load_back_at_4
log "n=4 again, $(acks) acknowledged"

# ---- stop the load, then check ---------------------------------------------------------
touch "$TMP/stop-load"
deadline=$((SECONDS + 60))
while kill -0 "$LOADPID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
kill "$LOADPID" 2>/dev/null
wait "$LOADPID" 2>/dev/null
LOADPID=
N_ACKED=$(acks)
[ "$N_ACKED" -gt 0 ] && pass gov_grow_load_acknowledged ||
    fail gov_grow_load_acknowledged "no tx acknowledged: $(tail -3 "$TMP/load.log")"
log "load stopped: $N_ACKED acknowledged"

if timeout 120 "$TC" testnet check "$NET" --acked "$ACKED" --timeout-s 60 >"$TMP/check.log" 2>&1; then
    pass gov_grow_acked_once_identical_blocks
else
    fail gov_grow_acked_once_identical_blocks "$(grep check: "$TMP/check.log" | head -5)"
fi
grep -q "6 replica-set changes crossed" "$TMP/check.log" && pass gov_grow_check_crossed_6 ||
    fail gov_grow_check_crossed_6 "$(tail -2 "$TMP/check.log")"
if timeout 120 "$TC" --json verify ledger --genesis "$NET/genesis.json" >"$TMP/verify.json" 2>"$TMP/verify.err" &&
    jq -e '.valid and .replica_set_changes == 6 and .replicas == 4' "$TMP/verify.json" >/dev/null; then
    pass gov_grow_verify_ledger_crosses_changes
else
    fail gov_grow_verify_ledger_crosses_changes "$(head -c 400 "$TMP/verify.json") $(head -c 300 "$TMP/verify.err")"
fi
"$TC" --json governance members >"$TMP/members.json" 2>&1
jq -e '[.replicas.set[].slot] == [0,1,2,3]' "$TMP/members.json" >/dev/null &&
    pass gov_grow_back_to_genesis_slots || fail gov_grow_back_to_genesis_slots "$(head -c 300 "$TMP/members.json")"
log "done"
[ $((SECONDS - T0)) -le 240 ] && pass gov_grow_within_4_minutes ||
    fail gov_grow_within_4_minutes "took $((SECONDS - T0)) s"
exit 0
