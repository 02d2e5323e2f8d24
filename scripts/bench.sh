#!/usr/bin/env bash
# `make bench`: throughput and latency of a local consortium near this
# machine's limit (issue 7). Starts NODES nodes (default 4) from
# `trialchain testnet init` in a temp dir under build/, with bench site and
# sponsor members added to the genesis (every concurrent client needs its
# own signer), drives them with tests/bench/bench_load and stops them on
# every exit. The last line of output is one JSON object:
#   {"nodes":4,"tps":...,"p50_ms":...,"p95_ms":...,"p99_ms":...,
#    "bound_tps":...,"ratio":...,...}
#
# Environment:
#   NODES=4              replicas (4..32)
#   BENCH_LEVELS=16,32,64,128 client counts of the saturation phase (the
#                        overload runs 4x the peak's, at most 755 clients:
#                        a genesis holds at most 768 members)
#   BENCH_SECONDS=15     measured seconds per phase (plus 1 s ramp)
#   BENCH_OVERLOAD=4     overload = the peak's clients times this
#   BENCH_RATE=R         run the latency phase at R tx/s, not half the peak
#                        (to compare builds at one rate)
#   BENCH_LARGE=1        also grow the ledger to BENCH_LARGE_TXS (1000000)
#                        and measure restart-to-ready, `trial show` of the
#                        second trial (~10,000 consents; median of 5 runs)
#                        and disk bytes per tx (takes long: ~1,000 tx/s)
#   BENCH_KEEP=1         keep the temp dir (node logs) after the run
#   BENCH_PORT=P         base port (default: a free one)
#   BUILD=build          where bin/ is (make passes it through)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BIN=${BUILD:-build}/bin
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
NODES=${NODES:-4}
LEVELS=${BENCH_LEVELS:-16,32,64,128}
SECS=${BENCH_SECONDS:-15}
OVER=${BENCH_OVERLOAD:-4}
LARGE=${BENCH_LARGE:-0}
LARGE_TXS=${BENCH_LARGE_TXS:-1000000}

for b in trialchain trialchain-node bench_load bench_bound; do
    [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b missing (make bench builds it)" >&2; exit 2; }
done

# Bench sites: enough for the overload phase, within the genesis limit of
# 768 members (5 demo members and 8 bench sponsors besides).
max_level=$(echo "$LEVELS" | tr ',' '\n' | sort -n | tail -1)
SITES=$(awk -v m="$max_level" -v f="$OVER" 'BEGIN { s = int(m * f + 0.5); if (s > 755) s = 755; print s }')

# A base port whose peer, client and HTTP ports are all free now.
free_base() {
    local used base i ok
    used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
    for _ in $(seq 1 50); do
        base=$((20000 + (RANDOM % 400) * 100))
        ok=1
        for i in $(seq 0 $((NODES - 1))); do
            for d in 0 1 2; do
                echo "$used" | grep -qx "$((base + 10 * i + d))" && ok=0
            done
        done
        [ $ok = 1 ] && { echo $base; return; }
    done
    echo $((20000 + (RANDOM % 400) * 100))
}

mkdir -p "$ROOT/build"
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=30
DIR=""
cleanup() {
    [ -n "$DIR" ] || return
    scripts/testnet.sh stop "$DIR" >/dev/null 2>&1
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Another test may take a port between our check and the nodes' listen:
# then start over in a new directory on other ports (3 attempts).
for attempt in 1 2 3; do
    cleanup
    DIR=$(mktemp -d "$ROOT/build/bench-run.XXXXXX") || exit 1
    PORT=${BENCH_PORT:-$(free_base)}
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: keeping $DIR (node logs)" >&2
    echo "bench: $NODES nodes in $DIR (ports from $PORT), $SITES bench sites," \
        "levels $LEVELS, ${SECS}s per phase" >&2
    "$BIN/trialchain" testnet init "$DIR" --nodes "$NODES" --base-port "$PORT" \
        >/dev/null || exit 1
    "$BIN/bench_load" prepare "$DIR" --sites "$SITES" --sponsors 8 || exit 1
    scripts/testnet.sh start "$DIR" >&2 && break
    [ $attempt = 3 ] && { echo "bench: the nodes did not start" >&2; exit 1; }
    echo "bench: start failed (attempt $attempt), retrying on other ports" >&2
done

args=(run "$DIR" --levels "$LEVELS" --seconds "$SECS" --overload "$OVER"
    --bound "$BIN/bench_bound")
[ -n "${BENCH_RATE:-}" ] && args+=(--rate "$BENCH_RATE")
[ "$LARGE" = 1 ] && args+=(--grow-to "$LARGE_TXS" --grow-seconds "${BENCH_LARGE_SECONDS:-7200}")
"$BIN/bench_load" "${args[@]}" >"$DIR/result.json" || {
    echo "bench: the load run failed; last lines of node0's log:" >&2
    tail -5 "$DIR/node0/node.log" >&2
    exit 1
}
result=$(tail -1 "$DIR/result.json")

# Work per transaction over the whole run, from every node's /metrics:
# peer frames sent, transaction signatures verified (cache misses) and
# blocks per committed transaction. Counts, not times: they do not drift
# with the machine's speed.
metric_sum() { # NAME: the sum over the nodes of one counter
    local total=0 d http v
    for d in "$DIR"/node*/; do
        http=$(sed -n 's/.*"http_addr"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
            "$d/config.json")
        v=$(curl -s -m 2 "http://$http/metrics" | awk -v m="$1" '$1 == m { print $2 }')
        total=$((total + ${v:-0}))
    done
    echo $total
}
frames=$(metric_sum trialchain_peer_frames_out_total)
verifies=$(metric_sum trialchain_tx_sig_cache_misses_total)
votes=$(metric_sum trialchain_vote_verifies_total)
txs=$(metric_sum trialchain_txs_committed_total)
blocks=$(metric_sum trialchain_commits_total)
syncs=$(metric_sum trialchain_synced_writes_total)
turns=$(metric_sum trialchain_loop_turns_total)
if [ "$txs" -gt 0 ] && [ "$blocks" -gt 0 ]; then
    # txs and blocks are summed over NODES nodes: per transaction of the
    # ledger, frames and verifies are over the whole consortium.
    result=$(echo "$result" | jq -c --argjson f "$frames" --argjson v "$verifies" \
        --argjson t "$txs" --argjson b "$blocks" --argjson n "$NODES" \
        --argjson vv "$votes" --argjson sy "$syncs" --argjson tu "$turns" \
        '. + {frames_per_tx: ($f * $n / $t * 100 | round / 100),
              tx_verifies_per_tx: ($v * $n / $t * 100 | round / 100),
              frames_per_block: ($f * $n / $b * 10 | round / 10),
              vote_verifies_per_block: ($vv * $n / $b * 10 | round / 10),
              syncs_per_block: ($sy * $n / $b * 10 | round / 10),
              turns_per_block: ($tu * $n / $b * 10 | round / 10)}')
    echo "bench: whole run: $((frames)) peer frames, $verifies tx signature" \
        "verifies, $votes vote signature verifies, $((txs / NODES)) txs in" \
        "$((blocks / NODES)) blocks" >&2
fi

if [ "$LARGE" = 1 ]; then
    http=$(sed -n 's/.*"http_addr"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
        "$DIR/node0/config.json")
    url=$(sed -n 's/.*"client_url"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
        "$DIR/node0/config.json")
    # the second trial of the growth phase holds ~10,000 consents
    trial=$(echo "$result" | jq -r .small_trial)
    log_size=$("$BIN/trialchain" --node "$url" --json status | jq -r .log_size)
    disk=$(du -sb "$DIR/node0/data" | cut -f1)
    consents=$("$BIN/trialchain" --node "$url" --json trial show "$trial" --last 0 \
        2>/dev/null | jq '[.summary.consents[]?.active] | add // 0' 2>/dev/null)
    # the real command as a person runs it (summary and the latest entries),
    # 5 runs: the median, since this machine's speed drifts
    show_runs=()
    for _ in 1 2 3 4 5; do
        t0=$(date +%s%N)
        "$BIN/trialchain" --node "$url" trial show "$trial" >"$DIR/trial-show.txt" 2>&1
        show_runs+=($((($(date +%s%N) - t0) / 1000000)))
    done
    show_ms=$(printf '%s\n' "${show_runs[@]}" | sort -n | sed -n 3p)
    echo "bench: trial show runs (ms): ${show_runs[*]}" >&2
    scripts/testnet.sh stop "$DIR" 0 >&2
    t0=$(date +%s%N)
    "$BIN/trialchain-node" --home "$DIR/node0" >>"$DIR/node0/node.log" 2>&1 &
    echo $! >"$DIR/node0/node.pid"
    ready_ms=-1
    for _ in $(seq 1 600); do
        if [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$http/readyz")" = 200 ]; then
            ready_ms=$((($(date +%s%N) - t0) / 1000000))
            break
        fi
        sleep 0.05
    done
    echo "bench: at $log_size txs: restart to ready ${ready_ms} ms, trial show" \
        "(${consents:-?} consents) ${show_ms} ms," \
        "$((disk / (log_size > 0 ? log_size : 1))) disk bytes/tx" >&2
    result=$(echo "$result" | jq -c --argjson n "$log_size" --argjson d "$disk" \
        --argjson r "$ready_ms" --argjson s "$show_ms" --argjson c "${consents:-0}" \
        '. + {large_log_size: $n, restart_ready_ms: $r, trial_show_ms: $s,
              trial_show_consents: $c,
              disk_bytes_per_tx: (if $n > 0 then ($d / $n | floor) else 0 end)}')
fi
echo "$result"
