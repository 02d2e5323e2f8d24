#!/usr/bin/env bash
# Damaged data directories on four nodes (one node at a time, the others
# committing meanwhile):
#   empty-datadir   a node restarted on an empty data directory rebuilds
#                   its ledger from its peers (state transfer)
#   truncated       a node's LevelDB files cut to half their size
#   corrupted       a node's LevelDB files overwritten with garbage in the
#                   middle
# For the damaged ones the node must either recover by itself, or refuse
# to start with a message that names the repair (`--repair`, or wiping
# the directory) and then come back with that repair; it must never crash
# (no sanitizer report in its log) nor serve a ledger that differs from
# the others'. The invariants (scripts/chaos.sh ch_invariants) end it.
set -u
cd "$(dirname "$0")/../.."
source scripts/chaos.sh
ch_init chaos_disk 4
COMMIT_S=20

ch_start || { ch_result skip all "the daemon does not start: $(tail -3 "$CH_T/start.log")"; exit 0; }
ch_load 40 && ch_result pass commit "$CH_LAST_LOAD" ||
    { ch_result fail commit "$CH_LAST_LOAD"; exit 1; }

no_sanitizer_report() { # NODE NAME
    if grep -q 'Sanitizer\|runtime error' "$CH_T/node$1/node.log"; then
        ch_result fail "$2/no-crash" "$(grep -m2 'Sanitizer\|runtime error' "$CH_T/node$1/node.log")"
    fi
}

# -- a node restarted on an empty data directory
ch_stop 2
rm -rf "$CH_T/node2/data"
mkdir "$CH_T/node2/data"
ch_load 20 || ch_result fail empty-datadir/commits-meanwhile "$CH_LAST_LOAD"
if ch_start 2 && ch_converged 60; then
    ch_result pass empty-datadir/rebuilt-from-peers "height $(ch_field 2 height)"
else
    ch_result fail empty-datadir/rebuilt-from-peers "$(tail -3 "$CH_T/node2/node.log")"
fi
no_sanitizer_report 2 empty-datadir

# damage NODE NAME HOW: stop the node, damage its files, restart it, and
# judge what it does.
damage() {
    local i=$1 name=$2 how=$3 f size
    ch_stop "$i"
    ch_load 20 || ch_result fail "$name/commits-meanwhile" "$CH_LAST_LOAD"
    for f in "$CH_T/node$i/data"/*.ldb "$CH_T/node$i/data"/*.log; do
        [ -f "$f" ] || continue
        size=$(stat -c %s "$f")
        [ "$size" -gt 64 ] || continue
        if [ "$how" = truncate ]; then
            truncate -s $((size / 2)) "$f"
        else
            # deterministic garbage over 512 bytes in the middle
            head -c 512 /dev/zero | tr '\0' '\307' |
                dd of="$f" bs=1 seek=$((size / 2 - 256)) conv=notrunc 2>/dev/null
        fi
    done
    local before
    before=$(wc -l <"$CH_T/node$i/node.log")
    if TESTNET_WAIT_S=30 ch_start "$i" && ch_converged 60; then
        ch_result pass "$name/recovered" "node$i restarted and caught up"
    else
        local said
        said=$(tail -n +"$before" "$CH_T/node$i/node.log" | grep -v '^\s*$' | tail -2)
        if grep -q 'repair' <<<"$said"; then
            ch_result pass "$name/refused-naming-repair" "$(cut -c1-240 <<<"$said")"
        else
            ch_result fail "$name/refused-naming-repair" \
                "neither recovered nor named the repair: $(cut -c1-240 <<<"$said")"
        fi
        # the operator's repair: --repair first, else wipe and rebuild
        ch_kill9 "$i"
        "$CH_BIN/trialchain-node" --home "$CH_T/node$i" --repair \
            >>"$CH_T/node$i/node.log" 2>&1 &
        echo $! >"$CH_T/node$i/node.pid"
        if ch_start "$i" && ch_converged 60; then
            ch_result pass "$name/repaired" "--repair, then caught up"
        else
            ch_kill9 "$i"
            rm -rf "$CH_T/node$i/data"
            if ch_start "$i" && ch_converged 60; then
                ch_result pass "$name/repaired" "--repair was not enough; wiped and rebuilt from peers"
            else
                ch_result fail "$name/repaired" "$(tail -3 "$CH_T/node$i/node.log")"
            fi
        fi
    fi
    no_sanitizer_report "$i" "$name"
}

damage 1 truncated truncate
damage 3 corrupted corrupt
ch_commits commits-again "$COMMIT_S"
ch_converged 60 || ch_result fail converge "heights differ after 60s"
ch_invariants invariants
exit $((CH_FAILS > 0))
