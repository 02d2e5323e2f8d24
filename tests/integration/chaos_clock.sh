#!/usr/bin/env bash
# One node's clock skewed beyond the bound (faketime, +30 minutes; the
# genesis bound clock_skew_max_ms is seconds): first a backup, then the
# primary itself. Backups accept a pre-prepare only when its time is
# within the bound of their own clock, so:
#   skewed-backup    the skewed backup cannot vouch for blocks, the other
#                    three go on committing with correct block times
#   skewed-primary   the skewed primary's proposals are refused, the others
#                    change view and commit again within a bound
# Every block time stays within the bound of the honest clocks (checked on
# the tip block), and once the clock is fixed the node catches up; the
# invariants (scripts/chaos.sh ch_invariants) end it.
set -u
cd "$(dirname "$0")/../.."
source scripts/chaos.sh
ch_init chaos_clock 4
COMMIT_S=30
SKEW=+30m
LIBFAKETIME=${LIBFAKETIME:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}

[ -r "$LIBFAKETIME" ] || { ch_result skip all "libfaketime not installed ($LIBFAKETIME)"; exit 0; }
ch_start || { ch_result skip all "the daemon does not start: $(tail -3 "$CH_T/start.log")"; exit 0; }
ch_load 20 && ch_result pass commit "$CH_LAST_LOAD" ||
    { ch_result fail commit "$CH_LAST_LOAD"; exit 1; }

# start_skewed NODE: restart the node under libfaketime (preloaded into
# the same pid, so testnet.sh's pid file and readiness wait still apply).
start_skewed() {
    local home=$CH_T/node$1
    ch_stop "$1"
    FAKETIME=$SKEW LD_PRELOAD=$LIBFAKETIME \
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        "$CH_BIN/trialchain-node" --home "$home" >>"$home/node.log" 2>&1 &
    echo $! >"$home/node.pid"
    TESTNET_WAIT_S=20 ch_start "$1" # waits for readiness (may never come)
}

# The tip block's time must be within 5 minutes of the real clock.
tip_time_sane() { # NAME NODE
    local h iso t now d
    h=$(ch_field "$2" height)
    iso=$(ch_tc --node "$(ch_url "$2")" --json block "$h" 2>/dev/null |
        sed -n 's/^  "time"[^"]*"\([^"]*\)".*/\1/p' | head -1)
    t=$(date -d "$iso" +%s 2>/dev/null)
    now=$(date +%s)
    if [ -z "$t" ]; then
        ch_result fail "$1/block-time" "no block time for block $h: '$iso'"
        return
    fi
    d=$((t > now ? t - now : now - t))
    if [ $d -lt 300 ]; then
        ch_result pass "$1/block-time" "tip block $h at $iso, ${d}s from the real clock"
    else
        ch_result fail "$1/block-time" "tip block $h at $iso, ${d}s from the real clock"
    fi
}

# -- a skewed backup
p=$(ch_primary)
b=$(((p + 1) % 4))
start_skewed "$b"
if ch_load 20 $((COMMIT_S * 1000)); then
    ch_result pass skewed-backup/commits "$CH_LAST_LOAD"
else
    ch_result fail skewed-backup/commits "$CH_LAST_LOAD"
fi
tip_time_sane skewed-backup "$p"
ch_stop "$b"
ch_start "$b"

# -- a skewed primary
p=$(ch_primary)
start_skewed "$p"
t0=$SECONDS
if ch_load 20 $((COMMIT_S * 1000)); then
    ch_result pass skewed-primary/commits "in $((SECONDS - t0))s: $CH_LAST_LOAD"
else
    ch_result fail skewed-primary/commits "$CH_LAST_LOAD"
fi
np=$(ch_primary "$p")
[ "$np" != "$p" ] && ch_result pass skewed-primary/view-changed "primary $p -> $np" ||
    ch_result fail skewed-primary/view-changed "primary still $np"
tip_time_sane skewed-primary "$np"

# the clock fixed: the node rejoins
ch_stop "$p"
ch_start "$p" || ch_result fail clock-fixed/restart "$(tail -3 "$CH_T/start.log")"
ch_commits clock-fixed/commits-again "$COMMIT_S"
ch_converged 60 || ch_result fail converge "heights differ after 60s"
ch_invariants invariants
exit $((CH_FAILS > 0))
