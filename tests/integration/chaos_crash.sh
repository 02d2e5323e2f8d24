#!/usr/bin/env bash
# Crash faults on four nodes, each under client load, each followed by a
# bound on committing again:
#   primary-restart-fast  kill -9 of the primary, restarted 2 s later: the
#                    cluster commits within the bound and ends in one view
#   primary-kill9    kill -9 of the primary: the others change view and the
#                    load completes; the killed node restarts and catches up
#   primary-sigstop  SIGSTOP of the primary (alive but silent): view change,
#                    commits go on; SIGCONT: it rejoins
#   reverse-restart  the whole cluster stopped and restarted in reverse
#                    order (node3 first, node0 last): it commits again
# then the invariants (scripts/chaos.sh ch_invariants): identical certified
# blocks on every node, every acknowledged tx present with a verified
# receipt, nothing executed twice, `verify ledger` accepts every node.
set -u
cd "$(dirname "$0")/../.."
source scripts/chaos.sh
ch_init chaos_crash 4
COMMIT_S=20

ch_start || { ch_result skip all "the daemon does not start: $(tail -3 "$CH_T/start.log")"; exit 0; }
ch_load 20 && ch_result pass commit "$CH_LAST_LOAD" ||
    { ch_result fail commit "$CH_LAST_LOAD"; exit 1; }

# -- kill -9 of the primary, restarted 2 s later, while only some backups
# hold requests it never ordered
p=$(ch_primary)
ch_load_bg 100
sleep 0.5
ch_kill9 "$p"
sleep 2
ch_start "$p" || ch_result fail primary-restart-fast/restarted "$(tail -3 "$CH_T/start.log")"
ch_wait_bg || ch_result fail primary-restart-fast/load-completes "$(tail -2 "$CH_T/bg.log")"
ch_commits primary-restart-fast/commits-again "$COMMIT_S"
ch_one_view primary-restart-fast/one-view

# -- kill -9 of the primary under load
p=$(ch_primary)
ch_load_bg 400
sleep 0.3
ch_kill9 "$p"
if ch_wait_bg; then
    ch_result pass primary-kill9/load-completes "$(tail -1 "$CH_T/bg.log")"
else
    ch_result fail primary-kill9/load-completes "$(tail -2 "$CH_T/bg.log")"
fi
# With the primary dead, committing at all needs the view change (the load
# above may have finished before the kill landed).
ch_commits primary-kill9/commits-again "$COMMIT_S"
np=$(ch_primary "$p")
[ "$np" != "$p" ] && ch_result pass primary-kill9/view-changed "primary $p -> $np" ||
    ch_result fail primary-kill9/view-changed "primary still $np"
ch_start "$p" && ch_result pass primary-kill9/restarted ||
    ch_result fail primary-kill9/restarted "$(tail -3 "$CH_T/start.log")"

# -- SIGSTOP of the primary: alive, connected, silent
p=$(ch_primary)
ch_sig STOP "$p"
t0=$SECONDS
if ch_load 20 $((COMMIT_S * 1000)); then
    ch_result pass primary-sigstop/commits "in $((SECONDS - t0))s: $CH_LAST_LOAD"
else
    ch_result fail primary-sigstop/commits "$CH_LAST_LOAD"
fi
np=$(ch_primary "$p")
[ "$np" != "$p" ] && ch_result pass primary-sigstop/view-changed "primary $p -> $np" ||
    ch_result fail primary-sigstop/view-changed "primary still $np"
ch_sig CONT "$p"
ch_commits primary-sigstop/commits-after-sigcont "$COMMIT_S"
ch_converged 60 && ch_result pass primary-sigstop/rejoins "node$p at the others' height" ||
    ch_result fail primary-sigstop/rejoins "heights differ after 60s"

# -- the whole cluster restarted in reverse order
ch_stop
ch_start_order 3 2 1 0 && ch_result pass reverse-restart/started ||
    ch_result fail reverse-restart/started "$(tail -3 "$CH_T/start.log")"
ch_commits reverse-restart/commits-again "$COMMIT_S"

ch_converged 60 || ch_result fail converge "heights differ after 60s"
ch_invariants invariants
exit $((CH_FAILS > 0))
