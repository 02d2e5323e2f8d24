# tests/integration/lib/testnet.sh - sourced by integration tests (not a
# test itself: scripts/run-tests.sh runs tests/integration/*.sh only).
#
# testnet_up TEST NODES SPARE FIRST_PORT
#   Makes a testnet in $NET (the caller sets TMP, NET and TC) with NODES
#   genesis nodes and SPARE spare homes, on a port range picked from
#   FIRST_PORT .. FIRST_PORT+7962 whose ports are all free now (the spares
#   bind theirs only later, so a range in use must be noticed up front;
#   keep the range below the kernel's ephemeral ports, 32768.., when there
#   are spares), and starts the genesis nodes. Up to 5 ranges are tried.
#   Sets BASE (home i uses BASE+10i+{0 peer, 1 client, 2 http}) and prints
#   "TEST-RESULT: pass TEST_start"; on failure prints the fail line and the
#   logs, and exits 1.

# pass NAME / fail NAME [WHY]: the result lines scripts/run-tests.sh counts.
pass() { echo "TEST-RESULT: pass $1"; }
fail() { echo "TEST-RESULT: fail $1${2:+ ($2)}"; }

# testnet_ports_free BASE HOMES: every port of HOMES homes can be bound.
testnet_ports_free() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
base, homes = int(sys.argv[1]), int(sys.argv[2])
for i in range(homes):
    for k in range(3):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", base + 10 * i + k))
        except OSError:
            sys.exit(1)
        finally:
            s.close()
PY
}

testnet_up() {
    local test=$1 nodes=$2 spare=$3 first=$4 try
    for try in 1 2 3 4 5; do
        BASE=$((first + (($$ + try * 211) % 80) * 100))
        testnet_ports_free $BASE $((nodes + spare)) || continue
        rm -rf "$NET"
        if timeout 30 "$TC" testnet init "$NET" --nodes "$nodes" \
            --spare "$spare" --base-port $BASE >"$TMP/init.log" 2>&1 &&
            timeout 60 scripts/testnet.sh start "$NET" >"$TMP/start.log" 2>&1; then
            echo "TEST-RESULT: pass ${test}_start"
            return 0
        fi
        timeout 30 scripts/testnet.sh stop "$NET" all >/dev/null 2>&1
    done
    echo "TEST-RESULT: fail ${test}_start"
    cat "$TMP/init.log" "$TMP/start.log" 2>/dev/null
    tail -20 "$NET"/node0/node.log 2>/dev/null
    exit 1
}
