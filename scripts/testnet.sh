#!/usr/bin/env bash
# Runs a local consortium made by `trialchain testnet init DIR`.
#
#   scripts/testnet.sh start DIR [NODE...]   start nodes (all by default) in
#                                            the background, wait for /readyz
#   scripts/testnet.sh stop DIR [NODE...]    SIGTERM, then SIGKILL after 10 s
#   scripts/testnet.sh status DIR            pid, readiness, height per node
#
# A spare home (`trialchain testnet init --spare K`: a file "spare" in it)
# is not a genesis replica: start and status leave it out unless it is
# named or has been started; stop stops it too.
#
# Each node's pid is in DIR/node<i>/node.pid and its log in
# DIR/node<i>/node.log. TRIALCHAIN_BIN (default build/bin) holds
# trialchain-node; TESTNET_WAIT_S bounds the wait for readiness (default 30).
set -u
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] && [ -d "$dir" ] || {
    echo "usage: $0 start|stop|status DIR [NODE...]" >&2
    exit 2
}
shift 2
BIN=${TRIALCHAIN_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
WAIT_S=${TESTNET_WAIT_S:-30}

# The homes named, else every home but the spares never started (with
# "all", every home).
nodes() {
    local home
    if [ $# -gt 0 ] && [ "$1" != all ]; then
        for i in "$@"; do echo "$dir/node${i#node}"; done
        return
    fi
    for home in $(ls -d "$dir"/node* 2>/dev/null | sort -V); do
        [ $# -eq 0 ] && [ -e "$home/spare" ] && [ ! -e "$home/node.pid" ] &&
            continue
        echo "$home"
    done
}

http_addr() {
    sed -n 's/.*"http_addr"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
        "$1/config.json"
}

alive() {
    local pid
    pid=$(cat "$1/node.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

readyz() {
    curl -s -m 2 "http://$(http_addr "$1")/readyz" 2>/dev/null
}

ready() {
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' \
        "http://$(http_addr "$1")/readyz" 2>/dev/null)" = 200 ]
}

start() {
    local home pids=()
    for home in $(nodes "$@"); do
        if alive "$home"; then
            echo "$(basename "$home"): already running (pid $(cat "$home/node.pid"))"
            continue
        fi
        "$BIN/trialchain-node" --home "$home" >>"$home/node.log" 2>&1 &
        echo $! >"$home/node.pid"
        echo "$(basename "$home"): started (pid $!)"
    done
    local deadline=$((SECONDS + WAIT_S)) pending
    while :; do
        pending=""
        for home in $(nodes "$@"); do
            alive "$home" || {
                echo "$(basename "$home"): exited; last lines of its log:" >&2
                tail -5 "$home/node.log" >&2
                return 1
            }
            ready "$home" || pending="$pending $(basename "$home")"
        done
        [ -z "$pending" ] && { echo "all nodes ready"; return 0; }
        [ $SECONDS -ge $deadline ] && {
            echo "not ready after ${WAIT_S}s:$pending" >&2
            return 1
        }
        sleep 0.2
    done
}

stop() {
    local home pid
    [ $# -eq 0 ] && set -- all
    for home in $(nodes "$@"); do
        alive "$home" || { rm -f "$home/node.pid"; continue; }
        pid=$(cat "$home/node.pid")
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$home"): did not stop in 10 s, killing" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$home/node.pid"
        echo "$(basename "$home"): stopped"
    done
}

status() {
    local home rc=0
    for home in $(nodes "$@"); do
        if alive "$home"; then
            printf '%s: running (pid %s) %s\n' "$(basename "$home")" \
                "$(cat "$home/node.pid")" "$(readyz "$home" | head -1)"
        else
            printf '%s: stopped\n' "$(basename "$home")"
            rc=1
        fi
    done
    return $rc
}

case $cmd in
start) start "$@" ;;
stop) stop "$@" ;;
status) status "$@" ;;
*) echo "usage: $0 start|stop|status DIR [NODE...]" >&2; exit 2 ;;
esac
