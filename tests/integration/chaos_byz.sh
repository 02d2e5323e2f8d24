#!/usr/bin/env bash
# Real nodes under the two test modes (never set in production):
#   lossy-links  every node's outgoing links drop, duplicate, delay and
#                reorder frames (TRIALCHAIN_FAULTS, node/faultnet.h; this
#                kernel has no netem): the cluster still commits everything
#   equivocate   the primary sends different PRE-PREPAREs for one seq to
#                different backups (TRIALCHAIN_BYZANTINE, node/byz.h)
#   vc-spam      a backup sends VIEW-CHANGEs for ever higher views
#   badsig       a backup's messages carry broken signatures
# With at most f = 1 Byzantine replica at a time, the honest nodes stay safe
# (identical certified blocks, every acknowledged transaction present once,
# every certificate verifies) and live (they commit within a bound).
set -u
cd "$(dirname "$0")/../.."
source scripts/chaos.sh
ch_init chaos_byz 4
COMMIT_S=40

# restart NODE with extra environment (VAR=VALUE ...), all others as they are
restart_with() {
    local i=$1
    shift
    ch_stop "$i"
    env "$@" timeout 120 "$CH_ROOT/scripts/testnet.sh" start "$CH_T" "$i" \
        >>"$CH_T/start.log" 2>&1
}

# -- lossy links on every node
ch_stop
TRIALCHAIN_FAULTS="drop=0.05,dup=0.05,delay=1-20,reorder=0.1,seed=7" ch_start ||
    { ch_result skip all "the daemon does not start: $(tail -3 "$CH_T/start.log")"; exit 0; }
if ch_load 30 $((COMMIT_S * 1000)); then
    ch_result pass lossy-links/commits "$CH_LAST_LOAD"
else
    ch_result fail lossy-links/commits "$CH_LAST_LOAD"
fi
grep -q test_faults_enabled "$CH_T/node0/node.log" &&
    ch_result pass lossy-links/enabled "node0 logged test_faults_enabled" ||
    ch_result fail lossy-links/enabled "no test_faults_enabled line in node0's log"
ch_stop
ch_start || { ch_result fail restart "$(tail -3 "$CH_T/start.log")"; exit 1; }

# -- one Byzantine replica at a time
for attack in equivocate vc-spam badsig; do
    if [ "$attack" = equivocate ]; then
        b=$(ch_primary)
    else
        b=$((($(ch_primary) + 1) % 4))
    fi
    restart_with "$b" TRIALCHAIN_BYZANTINE=$attack
    t0=$SECONDS
    if ch_load 20 $((COMMIT_S * 1000)); then
        ch_result pass "$attack/honest-commit" "node$b Byzantine; in $((SECONDS - t0))s: $CH_LAST_LOAD"
    else
        ch_result fail "$attack/honest-commit" "node$b Byzantine: $CH_LAST_LOAD"
    fi
    grep -q "test_byzantine_enabled.*$attack" "$CH_T/node$b/node.log" &&
        ch_result pass "$attack/enabled" "node$b logged test_byzantine_enabled" ||
        ch_result fail "$attack/enabled" "no test_byzantine_enabled line in node$b's log"
    ch_stop "$b"
    ch_start "$b"
done

ch_commits commits-again 30
ch_invariants invariants
exit $((CH_FAILS > 0))
