#!/usr/bin/env bash
# Seven nodes (f = 2): two nodes killed with kill -9 one after the other
# under load, first a backup, then the primary; the remaining five (a
# quorum of ceil((7+2+1)/2) = 5) keep committing through the view change.
# Both restart and catch up; the invariants (scripts/chaos.sh
# ch_invariants) end it.
set -u
cd "$(dirname "$0")/../.."
source scripts/chaos.sh
ch_init chaos_seven 7
COMMIT_S=30

ch_start || { ch_result skip all "the daemon does not start: $(tail -3 "$CH_T/start.log")"; exit 0; }
ch_load 20 && ch_result pass commit "$CH_LAST_LOAD" ||
    { ch_result fail commit "$CH_LAST_LOAD"; exit 1; }

p=$(ch_primary)
b=$(((p + 3) % 7))
ch_load_bg 300
sleep 0.5
ch_kill9 "$b"
sleep 1
ch_kill9 "$p"
if ch_wait_bg; then
    ch_result pass two-killed/load-completes "$(tail -1 "$CH_T/bg.log")"
else
    ch_result fail two-killed/load-completes "$(tail -2 "$CH_T/bg.log")"
fi
np=$(ch_primary "$p")
[ "$np" != "$p" ] && ch_result pass two-killed/view-changed "primary $p -> $np" ||
    ch_result fail two-killed/view-changed "primary still $np"
ch_commits two-killed/commits-with-five "$COMMIT_S"

ch_start "$b" "$p" && ch_result pass two-killed/restarted ||
    ch_result fail two-killed/restarted "$(tail -3 "$CH_T/start.log")"
ch_commits commits-again "$COMMIT_S"
ch_converged 60 || ch_result fail converge "heights differ after 60s"
ch_invariants invariants
exit $((CH_FAILS > 0))
