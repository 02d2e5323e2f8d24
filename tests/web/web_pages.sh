#!/usr/bin/env bash
# The web view (issue 9) in a real browser: loads its pages in headless
# Chromium, checks what they show (--dump-dom and grep) and saves
# screenshots under $BUILD/web-shots/.
#
#   1. pages rendered by web_render from the ledger test_web builds
#      (TEST_WEB_DUMP), loaded from files: the HTML and CSS as a browser
#      sees them, the hostile title inert;
#   2. a 4-node demo consortium (trialchain testnet init, scripts/testnet.sh)
#      with the web view enabled ("web": true in each node's config.json), a
#      few transactions through the tool, then every page over HTTP from
#      127.0.0.1. Skipped until the daemon serves the view (node/http.c or
#      node/node.c calls web_register).
#
# Prints TEST-RESULT lines; skips (with the reason) without chromium or a
# daemon. Environment: BUILD (build/asan), TRIALCHAIN_BIN ($BUILD/bin),
# CHROMIUM (/usr/bin/chromium), WEB_BASE_PORT (a free one), CTGOV_DIR.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build/asan}
BIN=${TRIALCHAIN_BIN:-$ROOT/$BUILD/bin}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
SHOTS=$(dirname "$BIN")/web-shots
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PORT=${WEB_BASE_PORT:-}
TMP=$(mktemp -d /tmp/web_pages.XXXXXX)
NET=$TMP/net

pass() { echo "TEST-RESULT: pass $1"; }
fail() { echo "TEST-RESULT: fail $1: $2"; }
skip() { echo "TEST-RESULT: skip $1 ($2)"; }

cleanup() {
    [ -d "$NET" ] && timeout 30 scripts/testnet.sh stop "$NET" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# browse URL NAME: NAME.dom (the DOM after parsing) in $TMP and NAME.png in
# $SHOTS. Each run gets a fresh profile; both are bounded by timeout.
browse() {
    local url=$1 name=$2 prof
    prof=$(mktemp -d "$TMP/profile.XXXXXX")
    local flags=(--headless --no-sandbox --disable-gpu --disable-quic
        --no-first-run --disable-background-networking
        --disable-component-update --disable-sync --user-data-dir="$prof")
    timeout 60 "$CHROMIUM" "${flags[@]}" --dump-dom "$url" \
        >"$TMP/$name.dom" 2>>"$TMP/chromium.log"
    timeout 60 "$CHROMIUM" "${flags[@]}" --window-size=1200,1500 \
        --hide-scrollbars --screenshot="$SHOTS/$name.png" "$url" \
        >>"$TMP/chromium.log" 2>&1
    rm -rf "$prof"
}

# expect NAME TEST PATTERN...: every fixed string is in NAME.dom, and the
# screenshot exists and is not blank (a few KB at least).
expect() {
    local name=$1 test=$2 s
    shift 2
    for s in "$@"; do
        grep -qF -- "$s" "$TMP/$name.dom" 2>/dev/null || {
            fail "$test" "the page lacks \"$s\""
            return 1
        }
    done
    local size
    size=$(stat -c %s "$SHOTS/$name.png" 2>/dev/null || echo 0)
    [ "$size" -gt 4000 ] || {
        fail "$test" "no screenshot ($SHOTS/$name.png, $size bytes)"
        return 1
    }
    pass "$test"
}

if [ ! -x "$CHROMIUM" ]; then
    skip web/static-pages "chromium is not installed ($CHROMIUM)"
    skip web/daemon-pages "chromium is not installed ($CHROMIUM)"
    exit 0
fi
mkdir -p "$SHOTS"

# ---- 1. pages from the unit-test ledger -------------------------------------
static_pages() {
    local t=$BIN/test_web dir=$TMP/static
    if [ ! -x "$t" ]; then
        skip web/static-pages "$t is not built"
        return
    fi
    mkdir -p "$dir"
    if ! TEST_WEB_DUMP=$dir timeout 120 "$t" >"$TMP/test_web.log" 2>&1 ||
        [ ! -s "$dir/trial.html" ]; then
        fail web/static-pages "test_web could not render the pages"
        sed 's/^/    | /' "$TMP/test_web.log" | tail -5
        return
    fi
    browse "file://$dir/status.html" static-status
    expect static-status web/static-status "Consortium status" \
        "Nodes (4, quorum 3)" "node3" "NCT02210780" "Org &lt;2&gt; &amp; Co"
    browse "file://$dir/trial.html" static-trial
    expect static-trial web/static-trial "Audit findings" \
        "outcome-switched" "rejected-attempts" "<svg" "site-a: 2 active" \
        "Rejected attempts (1)" "site-not-authorized"
    browse "file://$dir/evil.html" static-hostile
    if grep -qi '<script' "$TMP/static-hostile.dom" 2>/dev/null; then
        fail web/static-hostile-title "a <script> element reached the DOM"
    else
        expect static-hostile web/static-hostile-title \
            "&lt;script&gt;alert(1)&lt;/script&gt;"
    fi
    browse "file://$dir/block.html" static-block
    expect static-block web/static-block \
        "Certificate verified: 3 of 4 replica signatures, quorum 3"
    browse "file://$dir/tx.html" static-tx
    expect static-tx web/static-tx "Receipt verified" "PARTICIPATION, GRU"
}
static_pages

# ---- 2. a demo consortium over HTTP -----------------------------------------
if ! grep -q 'web_register' node/http.c node/node.c 2>/dev/null; then
    skip web/daemon-pages "the daemon does not serve the web view yet: \
node/http.c does not call web_register"
    exit 0
fi
for b in trialchain trialchain-node; do
    if [ ! -x "$BIN/$b" ]; then
        skip web/daemon-pages "$BIN/$b is not built"
        exit 0
    fi
done
if [ -z "${CTGOV_DIR:-}" ]; then
    for d in "$ROOT/../shared/data/ctgov" /work/shared/data/ctgov; do
        [ -d "$d" ] && { CTGOV_DIR=$(cd "$d" && pwd); break; }
    done
fi
if [ ! -f "${CTGOV_DIR:-}/NCT02210780.json" ]; then
    skip web/daemon-pages "no ClinicalTrials.gov records (set CTGOV_DIR)"
    exit 0
fi
# A base port whose 50 ports nothing listens on (a testnet uses P..P+49).
port_free() {
    local p
    for p in $(seq "$1" $(($1 + 49))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 1
    done
    return 0
}
if [ -z "$PORT" ]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$((12000 + (RANDOM % 150) * 50))
        port_free "$PORT" && break
    done
fi
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=${TESTNET_WAIT_S:-60}
DATA=$ROOT/tests/data/demo
LOG=$TMP/tool.log

tc() {
    local who=$1 key=()
    shift
    [ "$who" != - ] && key=(--key "$NET/keys/$who.key")
    timeout 60 "$BIN/trialchain" --node "tcp://127.0.0.1:$((PORT + 1))" \
        --timeout 20000 "${key[@]}" "$@" >>"$LOG" 2>&1
}

consortium() {
    tc - testnet init "$NET" --nodes 4 --base-port "$PORT" || {
        fail web/daemon-start "testnet init failed: $(tail -1 "$LOG")"
        return 1
    }
    local c
    for c in "$NET"/node*/config.json; do
        python3 - "$c" <<'EOF' || return 1
import json, sys
p = sys.argv[1]
with open(p) as f:
    c = json.load(f)
c["web"] = True
with open(p, "w") as f:
    json.dump(c, f, indent=2)
EOF
    done
    scripts/testnet.sh start "$NET" >>"$LOG" 2>&1 || {
        fail web/daemon-start "the nodes did not start"
        tail -5 "$NET"/node0/node.log 2>/dev/null | sed 's/^/    | /'
        return 1
    }
    local T=NCT02210780 ok=0
    tc sponsor protocol register "$CTGOV_DIR/$T.json" --ctgov &&
        tc ethics protocol approve --trial $T --version 1 &&
        tc sponsor site authorize --trial $T --site site-a &&
        tc site-a consent record --trial $T --participant A-1 \
            --scopes PARTICIPATION,HMB --version 1 \
            --form "$DATA/consent-form-v1.txt" &&
        tc site-a consent record --trial $T --participant A-2 \
            --scopes PARTICIPATION,HMB --version 1 \
            --form "$DATA/consent-form-v1.txt" || ok=1
    # refused and kept: site-b is not authorized (exit 1)
    tc site-b consent record --trial $T --participant B-1 \
        --scopes PARTICIPATION,HMB --version 1 \
        --form "$DATA/consent-form-v1.txt"
    [ $? -eq 1 ] || ok=1
    if [ $ok -ne 0 ]; then
        fail web/daemon-start "a transaction failed: $(tail -2 "$LOG")"
        return 1
    fi
    pass web/daemon-start
}

http_code() {
    curl -s -m 10 -o /dev/null -w '%{http_code}' "$1" 2>/dev/null
}

daemon_pages() {
    local addr base tip=0 i
    addr=$(sed -n 's/.*"http_addr"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
        "$NET/node0/config.json")
    base=http://$addr
    # wait (bounded) for the last block to be certified
    for i in $(seq 1 50); do
        curl -s -m 5 "$base/" >"$TMP/index.html" 2>/dev/null
        tip=$(grep -o 'Last certified</dt><dd>[0-9]*' "$TMP/index.html" |
            grep -o '[0-9]*$')
        [ "${tip:-0}" -ge 6 ] && break
        sleep 0.2
    done
    browse "$base/" daemon-status
    expect daemon-status web/daemon-status "Consortium status" "node0" \
        "node3" "NCT02210780" "quorum 3"
    browse "$base/trial/NCT02210780" daemon-trial
    expect daemon-trial web/daemon-trial "Consents per site" "<svg" \
        "site-a: 2 active" "Rejected attempts (1)" "site-not-authorized"
    if grep -qF "The audit is not available" "$TMP/daemon-trial.dom"; then
        skip web/daemon-findings "the daemon passes no audit hook \
(web_ctx.audit_run)"
    else
        expect daemon-trial web/daemon-findings "rejected-attempts" \
            "class=\"finding low\""
    fi
    browse "$base/block/1" daemon-block
    expect daemon-block web/daemon-block "Certificate verified:" \
        "replica signatures, quorum 3"
    local tx
    tx=$(grep -o '/tx/[0-9a-f]\{64\}' "$TMP/daemon-trial.dom" | head -1)
    if [ -z "$tx" ]; then
        fail web/daemon-tx "the trial page links no transaction"
    else
        browse "$base$tx" daemon-tx
        expect daemon-tx web/daemon-tx "Receipt verified" "protocol-register"
    fi
    curl -s -m 10 "$base/trial/NCT02210780/audit.csv" >"$TMP/audit.csv"
    if head -1 "$TMP/audit.csv" | grep -q '^height,time,log_index,tx_id,' &&
        [ "$(wc -l <"$TMP/audit.csv")" -ge 7 ]; then
        pass web/daemon-audit-csv
    else
        fail web/daemon-audit-csv "no CSV audit trail"
    fi
    local long
    long=/trial/$(head -c 700 /dev/zero | tr '\0' a)
    local got
    got="$(http_code "$base/tx/zz") $(http_code "$base/trial/NCT00000000")"
    got="$got $(http_code "$base$long") $(http_code "$base/block/99999")"
    if [ "$got" = "400 404 400 404" ]; then
        pass web/daemon-bad-input
    else
        fail web/daemon-bad-input "status codes $got, want 400 404 400 404"
    fi
    # still serving after the bad input
    [ "$(http_code "$base/")" = 200 ] && pass web/daemon-still-up ||
        fail web/daemon-still-up "/ no longer answers 200"
}

if consortium; then
    daemon_pages
fi
exit 0
