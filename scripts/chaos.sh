#!/usr/bin/env bash
# `make chaos`: a long seeded campaign of faults against a real local
# consortium (trialchain-node processes on 127.0.0.1), bounded in time.
#
# Each step picks a fault from the seed: kill -9 of the primary or of a
# random node (restarted a little later), SIGSTOP/SIGCONT of the primary or
# of a backup, the whole cluster stopped and restarted in reverse order,
# one node's data directory wiped (it rebuilds from its peers). At most f
# nodes are faulty at once; a client load runs during every fault. After
# each step the faults stop and the cluster must commit again within
# CHAOS_COMMIT_S; every few steps, and at the end, the invariants are
# checked: identical certified blocks at every height on every node, every
# acknowledged transaction present with a verified receipt on every node,
# no more transactions in the ledger than were ever submitted (nothing is
# executed twice), and `trialchain verify ledger --genesis` accepts every
# node's ledger (hash chain, certificates, roots).
#
# Environment:
#   CHAOS_SEED      the seed (default: from the clock); printed first, and a
#                   failed run prints how to replay it
#   CHAOS_MINUTES   time budget (default 10); the campaign stops starting
#                   steps after it and always ends with the full check
#   CHAOS_NODES     4 or 7 (default: chosen by the seed)
#   CHAOS_COMMIT_S  bound for committing again after a fault (default 30)
#   CHAOS_FAULTS    passed to every node as TRIALCHAIN_FAULTS (the
#                   fault-injecting transport, node/faultnet.h), e.g.
#                   "drop=0.05,dup=0.05,delay=0-20,reorder=0.1"
#   TRIALCHAIN_BIN  the binaries (make chaos: build/asan/bin)
#   KEEP=1          keep the testnet directory
# Replay a failure: CHAOS_SEED=<seed> CHAOS_NODES=<n> make chaos
#
# Sourced (by tests/integration/chaos_*.sh) this file only defines the ch_*
# helpers below and runs nothing.

CH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CH_BIN=${TRIALCHAIN_BIN:-$CH_ROOT/build/bin}
CH_BIN=$(cd "$CH_BIN" 2>/dev/null && pwd || echo "$CH_BIN")
CH_LOADS=()
CH_FAILS=0
CH_SUBMITTED=0

# ch_result pass|fail|skip NAME [detail]
ch_result() {
    local verdict=$1 name=$2 detail=${3:-}
    detail=$(printf '%s' "$detail" | tr '\n' ' ' | cut -c1-300)
    if [ "$verdict" = skip ]; then
        echo "TEST-RESULT: skip $CH_NAME/$name (${detail:-no reason})"
    else
        echo "TEST-RESULT: $verdict $CH_NAME/$name${detail:+ ($detail)}"
    fi
    [ "$verdict" = fail ] && CH_FAILS=$((CH_FAILS + 1))
    return 0
}

ch_log() { echo "[$(date -u +%H:%M:%S)] $CH_NAME: $*"; }

ch_cleanup() {
    local p f
    for p in "${CH_LOADS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for f in "$CH_T"/node*/node.pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        kill -CONT "$p" 2>/dev/null
        kill -9 "$p" 2>/dev/null
    done
    wait 2>/dev/null
    if [ -n "${KEEP:-}" ]; then
        echo "kept $CH_T"
    else
        rm -rf "$CH_T"
    fi
}

# ch_pick_ports N: CH_BASE such that no port of N nodes (base + 10*i +
# 0..2) is listening, below the kernel's ephemeral range (32768+) so no
# outgoing connection can hold one either.
ch_pick_ports() {
    local try end
    for try in $(seq 20); do
        CH_BASE=$((10000 + (RANDOM % 220) * 100))
        end=$((CH_BASE + 10 * $1 + 2))
        if ! ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' |
            awk -v b="$CH_BASE" -v e="$end" '$1 >= b && $1 <= e {f=1} END {exit !f}'; then
            return 0
        fi
    done
}

# ch_init NAME N: a fresh testnet of N nodes in a temporary directory, with
# the cleanup trap set. Exits 0 with a skip result when it cannot be made.
ch_init() {
    CH_NAME=$1
    CH_N=$2
    CH_T=$(mktemp -d "/tmp/tc-$CH_NAME-XXXXXX")
    ch_pick_ports "$CH_N"
    export TRIALCHAIN_BIN=$CH_BIN TESTNET_WAIT_S=${TESTNET_WAIT_S:-60}
    trap ch_cleanup EXIT
    if [ ! -x "$CH_BIN/trialchain-node" ] || [ ! -x "$CH_BIN/trialchain" ]; then
        ch_result skip all "no trialchain-node/trialchain in $CH_BIN"
        exit 0
    fi
    if ! timeout 60 "$CH_BIN/trialchain" testnet init "$CH_T" --nodes "$CH_N" \
        --base-port "$CH_BASE" >"$CH_T/init.log" 2>&1; then
        ch_result skip all "testnet init failed: $(tail -2 "$CH_T/init.log")"
        exit 0
    fi
    : >"$CH_T/acked"
}

# ch_start [NODE...]: start nodes (all by default) and wait until ready.
ch_start() {
    timeout 120 "$CH_ROOT/scripts/testnet.sh" start "$CH_T" "$@" \
        >>"$CH_T/start.log" 2>&1
}

# ch_start_order NODE...: start the nodes one after the other in this order
# (not waiting for each to be ready: one node alone has no quorum), then
# wait until all are ready.
ch_start_order() {
    local i
    for i in "$@"; do
        TESTNET_WAIT_S=1 ch_start "$i"
        sleep 1
    done
    ch_start "$@"
}

ch_stop() {
    timeout 60 "$CH_ROOT/scripts/testnet.sh" stop "$CH_T" "$@" \
        >>"$CH_T/start.log" 2>&1
}

ch_pid() { cat "$CH_T/node$1/node.pid" 2>/dev/null; }

ch_kill9() {
    local p
    p=$(ch_pid "$1")
    [ -n "$p" ] || return 0
    kill -CONT "$p" 2>/dev/null
    kill -9 "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    rm -f "$CH_T/node$1/node.pid"
}

ch_sig() { # ch_sig STOP|CONT NODE
    local p
    p=$(ch_pid "$2")
    [ -n "$p" ] && kill -"$1" "$p" 2>/dev/null
}

ch_url() { echo "tcp://127.0.0.1:$((CH_BASE + 10 * $1 + 1))"; }

ch_tc() { timeout 120 "$CH_BIN/trialchain" "$@"; }

# ch_field NODE FIELD: a number from the node's JSON status ("" if down).
ch_field() {
    timeout 10 "$CH_BIN/trialchain" --node "$(ch_url "$1")" --json status \
        2>/dev/null | sed -n "s/.*\"$2\"[^0-9]*\([0-9]*\).*/\1/p" | head -1
}

# ch_primary: the primary as the first answering node (not in $1) sees it.
ch_primary() {
    local i p
    for i in $(seq 0 $((CH_N - 1))); do
        [ "$i" = "${1:-x}" ] && continue
        p=$(ch_field "$i" primary)
        [ -n "$p" ] && { echo "$p"; return; }
    done
    echo 0
}

# ch_load COUNT [TIMEOUT_MS]: submit and wait for COUNT txs; returns the
# tool's status, appends acknowledged tx ids to $CH_T/acked.
ch_load() {
    local out rc n
    out=$(ch_tc testnet load "$CH_T" --count "$1" --threads 2 --wait \
        --acked "$CH_T/acked" --timeout-ms "${2:-20000}" 2>&1)
    rc=$?
    n=$(printf '%s' "$out" | sed -n 's/.*submitted=\([0-9]*\).*/\1/p' | tail -1)
    CH_SUBMITTED=$((CH_SUBMITTED + ${n:-$1}))
    CH_LAST_LOAD=$out
    return $rc
}

# ch_load_bg COUNT: a load in the background; its output in $CH_T/bg.log.
ch_load_bg() {
    ch_tc testnet load "$CH_T" --count "$1" --threads 2 --wait \
        --acked "$CH_T/acked" --timeout-ms 10000 >"$CH_T/bg.log" 2>&1 &
    CH_LOADS+=($!)
    CH_SUBMITTED=$((CH_SUBMITTED + $1))
}

ch_wait_bg() { # waits for the last background load; its status
    local p=${CH_LOADS[-1]}
    wait "$p"
}

# ch_commits NAME SECS: the cluster commits a small load within SECS.
ch_commits() {
    local t0=$SECONDS
    if ch_load 8 $(($2 * 1000)) && [ $((SECONDS - t0)) -lt "$2" ]; then
        ch_result pass "$1" "committed again in $((SECONDS - t0))s"
    elif [ $((SECONDS - t0)) -ge "$2" ]; then
        ch_result fail "$1" "committed only after $((SECONDS - t0))s (bound $2s): $CH_LAST_LOAD"
    else
        ch_result fail "$1" "no commit within $2s: $CH_LAST_LOAD"
    fi
}

# ch_one_view NAME: every node reports the same view: no replica left
# behind in a view the others never joined (it cannot order anything, and
# its clients wait for their whole timeout).
ch_one_view() {
    local views="" v i
    for i in $(seq 0 $((CH_N - 1))); do
        v=$(ch_field "$i" view)
        views="$views node$i:${v:-down}"
    done
    if [ "$(echo "$views" | tr ' ' '\n' | sed -n 's/.*://p' | sort -u | wc -l)" = 1 ]; then
        ch_result pass "$1" "$views"
    else
        ch_result fail "$1" "replicas in different views:$views"
    fi
}

# ch_invariants NAME: every node up; identical blocks, acknowledged txs on
# every node, nothing executed twice, all in one view, every ledger
# verifies.
ch_invariants() {
    local name=$1 out i log_size bad=""
    out=$(ch_tc testnet check "$CH_T" --acked "$CH_T/acked" --timeout-s 90 2>&1)
    if [ $? -eq 0 ]; then
        ch_result pass "$name/identical-blocks-acked-present" "$out"
    else
        ch_result fail "$name/identical-blocks-acked-present" "$out"
    fi
    log_size=$(ch_field 0 log_size)
    if [ -n "$log_size" ] && [ "$log_size" -le "$CH_SUBMITTED" ] &&
        [ "$log_size" -ge "$(sort -u "$CH_T/acked" | wc -l)" ]; then
        ch_result pass "$name/exactly-once" \
            "$log_size txs in the ledger, $(sort -u "$CH_T/acked" | wc -l) acknowledged, $CH_SUBMITTED submitted"
    else
        ch_result fail "$name/exactly-once" \
            "log size ${log_size:-?}, submitted $CH_SUBMITTED, acknowledged $(wc -l <"$CH_T/acked")"
    fi
    ch_one_view "$name/one-view"
    for i in $(seq 0 $((CH_N - 1))); do
        out=$(timeout 120 "$CH_BIN/trialchain" --node "$(ch_url "$i")" verify \
            ledger --genesis "$CH_T/genesis.json" 2>&1) || bad="$bad node$i: $(echo "$out" | head -2)"
    done
    if [ -z "$bad" ]; then
        ch_result pass "$name/certificates-verify" "verify ledger on $CH_N nodes"
    else
        ch_result fail "$name/certificates-verify" "$bad"
    fi
}

# ch_converged SECS: every node reports one height within SECS.
ch_converged() {
    local end=$((SECONDS + $1)) i h first ok
    while [ $SECONDS -lt $end ]; do
        ok=1 first=""
        for i in $(seq 0 $((CH_N - 1))); do
            h=$(ch_field "$i" height)
            [ -z "$h" ] && { ok=0; break; }
            [ -z "$first" ] && first=$h
            [ "$h" = "$first" ] || { ok=0; break; }
        done
        [ $ok = 1 ] && return 0
        sleep 0.5
    done
    return 1
}

# Library mode: stop here when sourced.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    return 0
fi

# ---- the campaign ---------------------------------------------------------
set -u
SEED=${CHAOS_SEED:-$(date +%s)}
MINUTES=${CHAOS_MINUTES:-10}
COMMIT_S=${CHAOS_COMMIT_S:-30}
RANDOM=$SEED
if [ -n "${CHAOS_NODES:-}" ]; then
    NODES=$CHAOS_NODES
elif [ $((RANDOM % 2)) = 0 ]; then
    NODES=4
else
    NODES=7
fi
F=$(((NODES - 1) / 3))
[ -n "${CHAOS_FAULTS:-}" ] && export TRIALCHAIN_FAULTS=$CHAOS_FAULTS
echo "chaos: seed=$SEED nodes=$NODES f=$F minutes=$MINUTES faults=${CHAOS_FAULTS:-none}"
echo "chaos: replay with CHAOS_SEED=$SEED CHAOS_NODES=$NODES make chaos"
ch_init chaos "$NODES"
# RANDOM was reseeded by ch_init's port choice: reseed for the steps.
RANDOM=$SEED
ch_start || { ch_result fail start "$(tail -3 "$CH_T/start.log")"; exit 1; }
ch_load 20 || ch_result fail first-commit "$CH_LAST_LOAD"

deadline=$((SECONDS + MINUTES * 60))
step=0
while [ $SECONDS -lt $deadline ]; do
    step=$((step + 1))
    kind=$((RANDOM % 6))
    p=$(ch_primary)
    victim=$((RANDOM % NODES))
    ch_load_bg 100
    sleep 0.$((RANDOM % 9 + 1))
    case $kind in
    0) what="kill -9 primary node$p"; ch_kill9 "$p"; sleep $((RANDOM % 4 + 1)); ch_start "$p" ;;
    1) what="kill -9 node$victim"; ch_kill9 "$victim"; sleep $((RANDOM % 4 + 1)); ch_start "$victim" ;;
    2) what="SIGSTOP primary node$p"; ch_sig STOP "$p"; sleep $((RANDOM % 5 + 2)); ch_sig CONT "$p" ;;
    3) if [ "$F" -ge 2 ]; then
           other=$(((victim + 1 + RANDOM % (NODES - 1)) % NODES))
           what="kill -9 node$victim then node$other"
           ch_kill9 "$victim"; sleep 1; ch_kill9 "$other"; sleep 2
           ch_start "$victim" "$other"
       else
           what="SIGSTOP node$victim"; ch_sig STOP "$victim"; sleep 3; ch_sig CONT "$victim"
       fi ;;
    4) what="restart all in reverse order"; ch_stop
       ch_start_order $(seq $((NODES - 1)) -1 0) ;;
    5) what="wipe node$victim's data"; ch_stop "$victim"
       rm -rf "$CH_T/node$victim/data"; ch_start "$victim" ;;
    esac
    ch_wait_bg >/dev/null 2>&1
    ch_log "step $step: $what; load: $(tail -1 "$CH_T/bg.log")"
    ch_commits "step$step-commits-after-${what// /-}" "$COMMIT_S"
    if [ $((step % 5)) = 0 ]; then
        ch_converged 60 || ch_result fail "step$step-converge" "heights differ after 60s"
        ch_invariants "step$step"
    fi
    [ "$CH_FAILS" -gt 0 ] && break
done
ch_converged 90 || ch_result fail final-converge "heights differ after 90s"
ch_invariants final
echo "chaos: $step steps, $CH_SUBMITTED txs submitted, $CH_FAILS failures (seed=$SEED nodes=$NODES)"
if [ "$CH_FAILS" -gt 0 ]; then
    echo "chaos: FAILED; replay with CHAOS_SEED=$SEED CHAOS_NODES=$NODES make chaos (KEEP=1 keeps $CH_T)"
    exit 1
fi
exit 0
