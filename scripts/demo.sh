#!/usr/bin/env bash
# make demo: a local 4-node consortium, a scenario driven through the
# trialchain tool only, and the integrity audit an ethics board runs.
#
#   scripts/demo.sh            everything under ./demo-out (or $DEMO_DIR)
#
# Trials are imported from the ClinicalTrials.gov records in
# ../shared/data/ctgov (their real registry dates drive registered-late and
# the results deadlines); tests/data/demo holds what the scenario derives
# from them (a results file with switched outcomes, amended outcome lists,
# consent forms, protocol documents, participant lists, small datasets).
#
# Expected audit (one trial per finding, one clean trial):
#   NCT06388018  clean: prospective, consented, dataset shared and opened
#   NCT02210780  outcome-switched, results-late, rejected-attempts
#   NCT04207047  registered-late (first submitted 14 months after start)
#   NCT00763412  registered-late, results-late
#   NCT03630471  results-overdue (completed 2019, no results)
#   NCT03064438  consent-unapproved-version, approval-missing,
#                data-without-consent, access-outside-consent,
#                rejected-attempts
#   NCT03475563  personal-data (a person's name in an amendment reason)
#   and ledger-integrity: the same ledger audited with a genesis from
#   another consortium, as a forged view would be.
#
# Idempotent (a fresh consortium each run; DEMO_DIR is only ever cleared
# when it holds our marker file), bounded (every call has a timeout), and
# the nodes are stopped on exit whatever happens.
#
# Environment: DEMO_DIR (default ./demo-out), DEMO_BASE_PORT (27400),
# TRIALCHAIN_BIN (build/bin), CTGOV_DIR (../shared/data/ctgov),
# DEMO_QUIET=1 prints only the audit.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${TRIALCHAIN_BIN:-$ROOT/build/bin}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
DEMO_DIR=${DEMO_DIR:-$ROOT/demo-out}
case $DEMO_DIR in /*) ;; *) DEMO_DIR=$ROOT/$DEMO_DIR ;; esac
BASE_PORT=${DEMO_BASE_PORT:-27400}
DATA=$ROOT/tests/data/demo
QUIET=${DEMO_QUIET:-0}
MARKER=.trialchain-demo
T0=$SECONDS

if [ -z "${CTGOV_DIR:-}" ]; then
    for d in "$ROOT/../shared/data/ctgov" /work/shared/data/ctgov; do
        [ -d "$d" ] && { CTGOV_DIR=$(cd "$d" && pwd); break; }
    done
fi
[ -d "${CTGOV_DIR:-}" ] || {
    echo "demo: no ClinicalTrials.gov records (looked in ../shared/data/ctgov;" \
        "set CTGOV_DIR)" >&2
    exit 2
}
for b in trialchain trialchain-node; do
    [ -x "$BIN/$b" ] || {
        echo "demo: $BIN/$b is missing; run make first" >&2
        exit 2
    }
done

NET=$DEMO_DIR/net
LOG=$DEMO_DIR/demo.log
OUT=$DEMO_DIR/files
export TRIALCHAIN_BIN=$BIN
export TESTNET_WAIT_S=${TESTNET_WAIT_S:-30}

say() { [ "$QUIET" = 1 ] || printf '%s\n' "$*"; }
step() { say ""; say "== $*"; }

# A fresh directory: stop what a previous run left, clear only our own.
if [ -e "$DEMO_DIR" ]; then
    if [ ! -e "$DEMO_DIR/$MARKER" ] && [ -n "$(ls -A "$DEMO_DIR" 2>/dev/null)" ]; then
        echo "demo: $DEMO_DIR exists and is not a demo directory; set DEMO_DIR" >&2
        exit 2
    fi
    [ -d "$NET" ] && scripts/testnet.sh stop "$NET" >/dev/null 2>&1
    rm -rf "$DEMO_DIR"
fi
mkdir -p "$DEMO_DIR" "$OUT" && touch "$DEMO_DIR/$MARKER"
: >"$LOG"

cleanup() {
    [ -d "$NET" ] && scripts/testnet.sh stop "$NET" >>"$LOG" 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NODE_URL=tcp://127.0.0.1:$((BASE_PORT + 1))
# tc MEMBER ARGS...: the tool as that member (or "-" for no key)
tc() {
    local who=$1
    shift
    local key=()
    [ "$who" != - ] && key=(--key "$NET/keys/$who.key")
    timeout 60 "$BIN/trialchain" --node "$NODE_URL" --timeout 20000 \
        "${key[@]}" "$@"
}

# run EXPECT MEMBER ARGS...: EXPECT is ok (exit 0) or rejected (exit 1, the
# registry refused and kept the attempt); anything else stops the demo.
FAILED=0
run() {
    local expect=$1 who=$2 rc
    shift 2
    echo "\$ trialchain [$who] $*" >>"$LOG"
    tc "$who" "$@" >>"$LOG" 2>&1
    rc=$?
    case $expect:$rc in
    ok:0) say "   ok        $who: $*" ;;
    rejected:1) say "   REJECTED  $who: $* (kept as evidence)" ;;
    *)
        say "   FAILED    $who: $* (exit $rc, expected $expect)"
        echo "demo: unexpected exit $rc; the log is $LOG" >&2
        tail -5 "$LOG" >&2
        FAILED=1
        return 1
        ;;
    esac
}

# grant id of the last `dataset share` in the log
last_grant() {
    grep -o 'tx [0-9a-f]\{64\}' "$LOG" | tail -1 | cut -c4-
}

step "1. a 4-node consortium in $NET"
tc - testnet init "$NET" --nodes 4 --base-port "$BASE_PORT" >>"$LOG" 2>&1 || {
    echo "demo: testnet init failed; see $LOG" >&2
    exit 1
}
# The nodes serve the read-only web view on their 127.0.0.1 HTTP port.
export TRIALCHAIN_WEB=1
scripts/testnet.sh start "$NET" >>"$LOG" 2>&1 || {
    echo "demo: the nodes did not start; see $LOG and $NET/node*/node.log" >&2
    exit 3
}
say "   4 nodes ready; members: sponsor, site-a, site-b, ethics, auditor"

scenario() {
    step "2. the sponsor registers seven trials from ClinicalTrials.gov"
    for t in NCT06388018 NCT02210780 NCT04207047 NCT00763412 NCT03630471 \
        NCT03475563; do
        run ok sponsor protocol register "$CTGOV_DIR/$t.json" --ctgov || return
    done
    run ok sponsor protocol register "$CTGOV_DIR/NCT03064438.json" --ctgov \
        --doc "$DATA/protocol-v1.txt" || return

    step "3. the ethics board approves version 1; the sponsor authorizes sites"
    for t in NCT06388018 NCT02210780 NCT04207047 NCT00763412 NCT03630471 \
        NCT03064438 NCT03475563; do
        run ok ethics protocol approve --trial "$t" --version 1 || return
    done
    run ok sponsor site authorize --trial NCT06388018 --site site-a || return
    run ok sponsor site authorize --trial NCT02210780 --site site-a || return
    run ok sponsor site authorize --trial NCT03064438 --site site-a || return
    run ok sponsor site authorize --trial NCT03064438 --site site-b || return

    step "4. NCT06388018 (clean): consent, a dataset, a share and an open"
    for p in A-001 A-002 A-003; do
        run ok site-a consent record --trial NCT06388018 --participant "$p" \
            --scopes PARTICIPATION,GRU --version 1 \
            --form "$DATA/consent-form-v1.txt" || return
    done
    run ok site-a dataset register "$DATA/dataset-clean.csv" \
        --trial NCT06388018 --dataset ds-06388018-a \
        --participants "$DATA/participants-clean.txt" --records 3 \
        --anonymization "k-anonymity k=3" || return
    run ok site-a dataset share --dataset ds-06388018-a --to site-b \
        --file "$DATA/dataset-clean.csv" -o "$OUT/ds-06388018-a.enc" \
        --purpose HMB --expires 2030-12-31 --trial NCT06388018 || return
    run ok site-b dataset open "$OUT/ds-06388018-a.enc" \
        --grant "$(last_grant)" -o "$OUT/ds-06388018-a.csv" \
        --trial NCT06388018 || return

    step "5. NCT02210780: consents, an unauthorized site, switched outcomes"
    for p in A-201 A-202; do
        run ok site-a consent record --trial NCT02210780 --participant "$p" \
            --scopes PARTICIPATION,HMB --version 1 \
            --form "$DATA/consent-form-v1.txt" || return
    done
    run rejected site-b consent record --trial NCT02210780 \
        --participant B-201 --scopes PARTICIPATION,HMB --version 1 \
        --form "$DATA/consent-form-v1.txt" || return
    run ok sponsor results register "$DATA/NCT02210780-results-switched.json" \
        --trial NCT02210780 || return

    step "6. NCT00763412: results from its record's results section"
    run ok sponsor results register "$CTGOV_DIR/NCT00763412.json" --ctgov \
        --trial NCT00763412 || return

    step "7. NCT03064438: amendments, consent on old and draft versions," \
        "a withdrawal, data"
    for p in A-101 A-102; do
        run ok site-a consent record --trial NCT03064438 --participant "$p" \
            --scopes PARTICIPATION,GRU --version 1 \
            --form "$DATA/consent-form-v1.txt" || return
    done
    run ok sponsor protocol amend --trial NCT03064438 \
        --reason "Adds a follow-up visit at week 16" \
        --outcomes "$DATA/NCT03064438-outcomes-v2.json" \
        --doc "$DATA/protocol-v2.txt" || return
    run ok ethics protocol approve --trial NCT03064438 --version 2 || return
    # site-b still uses the superseded version 1 form
    run ok site-b consent record --trial NCT03064438 --participant B-001 \
        --scopes PARTICIPATION,GRU --version 1 \
        --form "$DATA/consent-form-v1.txt" || return
    run ok site-b consent record --trial NCT03064438 --participant B-002 \
        --scopes PARTICIPATION,GRU --version 2 \
        --form "$DATA/consent-form-v2.txt" || return
    run ok sponsor protocol amend --trial NCT03064438 \
        --reason "Extends enrolment by six months" \
        --outcomes "$DATA/NCT03064438-outcomes-v2.json" \
        --doc "$DATA/protocol-v3.txt" || return
    # consent on the draft version 3 before any approval
    run rejected site-a consent record --trial NCT03064438 \
        --participant A-103 --scopes PARTICIPATION,GRU --version 3 \
        --form "$DATA/consent-form-v3.txt" || return
    run ok site-a dataset register "$DATA/dataset-site-a.csv" \
        --trial NCT03064438 --dataset ds-03064438-a \
        --participants "$DATA/participants-site-a.txt" --records 2 \
        --anonymization "k-anonymity k=2" || return
    run ok site-a dataset share --dataset ds-03064438-a --to site-b \
        --file "$DATA/dataset-site-a.csv" -o "$OUT/ds-03064438-a.enc" \
        --purpose HMB --expires 2030-12-31 --trial NCT03064438 || return
    local grant
    grant=$(last_grant)
    run ok site-a consent withdraw --trial NCT03064438 --participant A-102 ||
        return
    # the grantee opens after the withdrawal
    run rejected site-b dataset open "$OUT/ds-03064438-a.enc" \
        --grant "$grant" -o "$OUT/ds-03064438-a.csv" \
        --trial NCT03064438 || return
    # a dataset holding someone who never consented
    run rejected site-a dataset register "$DATA/dataset-unconsented.csv" \
        --trial NCT03064438 --dataset ds-03064438-x \
        --participants "$DATA/participants-unconsented.txt" --records 2 \
        --anonymization "k-anonymity k=2" || return

    step "8. NCT03475563: an amendment whose reason names a person"
    run ok sponsor protocol amend --trial NCT03475563 \
        --reason "Follow-up calls moved to the clinic of Dr. Jane Roe" \
        --outcomes "$DATA/NCT03475563-outcomes-v2.json" || return
}
scenario

if true; then # the audit runs even after a failed step: it shows how far it got
    step "9. the ethics board's audit of every trial"
    # the report a person reads, then the same report as JSON, signed and
    # recorded by the ethics board (both at the same height: the audit
    # itself writes nothing)
    tc - audit --all >"$DEMO_DIR/audit.txt" 2>>"$LOG"
    echo
    cat "$DEMO_DIR/audit.txt"
    tc ethics audit --all --attest --json >"$DEMO_DIR/audit.json" \
        2>>"$LOG"
    say "   $(grep 'attestation' "$LOG" | tail -1 | sed 's/^trialchain: //')"
    say "   it holds the SHA-256 of audit.json:" \
        "$(sha256sum "$DEMO_DIR/audit.json" | cut -c1-64)"
    # anyone can check that the attestation on the ledger names this report
    local_att=$(grep 'attestation recorded' "$LOG" | tail -1 |
        grep -o 'tx [0-9a-f]\{64\}' | cut -c4-)
    if [ -n "$local_att" ] && tc - tx "$local_att" --json 2>>"$LOG" |
        grep -q "$(sha256sum "$DEMO_DIR/audit.json" | cut -c1-64)"; then
        echo "attestation-hash-matches $local_att" >>"$LOG"
        say "   checked: attestation $(echo "$local_att" | cut -c1-16)... on" \
            "the ledger names exactly this report"
    else
        say "   the attestation on the ledger does NOT name this report"
        FAILED=1
    fi
    mkdir -p "$DEMO_DIR/reports"
    for t in NCT06388018 NCT02210780 NCT04207047 NCT00763412 NCT03630471 \
        NCT03064438 NCT03475563; do
        tc - audit "$t" --json >"$DEMO_DIR/reports/$t.json" 2>>"$LOG"
    done
    say "   one JSON report per trial in $DEMO_DIR/reports/"

    step "10. is the protocol document an auditor holds the registered one?"
    tc - verify document "$DATA/protocol-v2.txt" --trial NCT03064438 \
        --version 2 2>&1 | sed 's/^/   /'
    tc - verify document "$DATA/protocol-v3.txt" --trial NCT03064438 \
        --version 2 2>&1 | sed 's/^/   /'

    step "11. the same ledger seen through another consortium's genesis"
    tc - testnet init "$DEMO_DIR/foreign" --nodes 4 \
        --base-port $((BASE_PORT + 500)) >>"$LOG" 2>&1
    tc - audit NCT06388018 --genesis "$DEMO_DIR/foreign/genesis.json" \
        >"$DEMO_DIR/audit-foreign-genesis.txt" 2>>"$LOG"
    grep -m2 -A3 'ledger-integrity' "$DEMO_DIR/audit-foreign-genesis.txt" |
        grep -v '^--' | sed 's/^/   /'
fi

cleanup
trap - EXIT
step "done in $((SECONDS - T0)) s"
say "   consortium, keys, genesis:  $NET (stopped)"
say "   audit report:               $DEMO_DIR/audit.txt"
say "   audit JSON (attested):      $DEMO_DIR/audit.json"
say "   per-trial JSON reports:     $DEMO_DIR/reports/"
say "   forged-view audit:          $DEMO_DIR/audit-foreign-genesis.txt"
say "   every command and output:   $LOG"
say "   restart the nodes:          TRIALCHAIN_WEB=1 scripts/testnet.sh start $NET"
say "   then browse the web view:   http://127.0.0.1:$((BASE_PORT + 2))/"
[ "$FAILED" = 0 ]
