#!/usr/bin/env bash
# cli_governance.sh - `trialchain governance` against a running local 4-node
# testnet (genesis: voters sponsor and ethics, threshold 2 organisations):
# a member added by proposal + approval signs transactions; a proposal
# below the threshold changes nothing; a non-voter's approval, a duplicate
# approval, a duplicate id, an unknown id and a late approval are refused
# with their reason codes; suspend / reinstate / remove a member and its
# next transaction is refused with the reason; a rotated key is refused
# ("key-rotated"), the new one works, and a receipt signed before the
# rotation still verifies; every --json output parses.
set -u
cd "$(dirname "$0")/../.." || exit 2
BIN=${TRIALCHAIN_BIN:-build/bin}
TC="$BIN/trialchain"
for b in trialchain trialchain-node; do
    [ -x "$BIN/$b" ] || { echo "TEST-RESULT: skip cli_governance (no $BIN/$b)"; exit 77; }
done
SHARED=${TRIALCHAIN_SHARED:-}
for d in "$SHARED" ../shared /work/shared; do
    [ -n "$d" ] && [ -d "$d/data/ctgov" ] && { SHARED=$d; break; }
done
[ -d "$SHARED/data/ctgov" ] || {
    echo "TEST-RESULT: skip cli_governance (no shared ClinicalTrials.gov records)"
    exit 77
}
TMP=$(mktemp -d)
NET=$TMP/net
export TRIALCHAIN_BIN=$BIN TESTNET_WAIT_S=${TESTNET_WAIT_S:-30}
cleanup() {
    timeout 30 scripts/testnet.sh stop "$NET" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
# a port in use by another test moves us to another range
. tests/integration/lib/testnet.sh
testnet_up cli_governance 4 0 36000
export TRIALCHAIN_NODE=tcp://127.0.0.1:$((BASE + 1))
export TRIALCHAIN_TIMEOUT_MS=20000
K=$NET/keys G=$NET/genesis.json
CT=$SHARED/data/ctgov
mapfile -t RECS < <(ls "$CT"/*.json | sort)

# expect NAME CODE CMD...: runs CMD (bounded); stdout in $TMP/out
expect() {
    local name=$1 want=$2 rc
    shift 2
    timeout 60 "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -eq "$want" ]; then pass "$name"; else
        fail "$name" "exit $rc, want $want: $(head -c 400 "$TMP/err") $(head -c 400 "$TMP/out")"
    fi
}
# expect_text NAME FILE REGEX
expect_text() {
    if grep -Eq "$3" "$2"; then pass "$1"; else fail "$1" "no /$3/ in $(head -c 300 "$2")"; fi
}
# json_ok NAME FILE JQ PY: FILE parses as JSON and JQ holds (jq), or the
# Python expression PY over d = the document does (no jq installed).
json_ok() {
    local ok
    if command -v jq >/dev/null; then
        jq -e "$3" "$2" >/dev/null 2>&1 && ok=1 || ok=0
    else
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($4) else 1)" \
            "$2" 2>/dev/null && ok=1 || ok=0
    fi
    if [ $ok = 1 ]; then pass "$1"; else fail "$1" "$(head -c 400 "$2")"; fi
}
# jval KEY: the top-level string KEY of the JSON document on stdin
jval() {
    if command -v jq >/dev/null; then jq -r ".$1"; else
        python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
    fi
}

# ---- the state at genesis ---------------------------------------------------------
expect gov_help 0 "$TC" governance --help
expect_text gov_help_names_actions "$TMP/out" "member-rotate-key.*replica-add|replica-add"
expect gov_members 0 "$TC" governance members
expect_text gov_members_replica_set "$TMP/out" "n=4 f=1 quorum=3"
expect gov_members_json 0 "$TC" --json governance members
json_ok gov_members_json_parses "$TMP/out" \
    '(.members | length == 5) and .replicas.n == 4 and .replicas.quorum == 3 and .threshold == 2' \
    'len(d["members"]) == 5 and d["replicas"]["n"] == 4 and d["replicas"]["quorum"] == 3'
expect gov_list_empty 0 "$TC" governance list
expect gov_list_empty_json 0 "$TC" --json governance list
json_ok gov_list_empty_json_parses "$TMP/out" '.proposals == []' 'd["proposals"] == []'

# ---- member-add below the threshold changes nothing --------------------------------
"$TC" keygen --name beta --role sponsor -o "$TMP/beta.key" >/dev/null 2>&1
expect gov_new_key_not_member_yet 2 "$TC" --key "$TMP/beta.key" protocol register "${RECS[0]}"
expect gov_propose_member_add 0 "$TC" --key "$K/sponsor.key" governance propose p-beta \
    member-add beta --organisation "Beta Biotech" --role sponsor --key-file "$TMP/beta.key" \
    --reason "joins the consortium"
expect_text gov_propose_says_open "$TMP/out" "open, approved by 1/2 organisations"
expect gov_show_open 0 "$TC" --json governance show p-beta
json_ok gov_show_open_json "$TMP/out" \
    '.status == "open" and (.organisations | length == 1) and .threshold == 2 and .applied == false' \
    'd["status"] == "open" and len(d["organisations"]) == 1 and d["threshold"] == 2'
expect gov_members_below_threshold 0 "$TC" --json governance members
json_ok gov_below_threshold_changes_nothing "$TMP/out" \
    '[.members[].name] | index("beta") == null' \
    '"beta" not in [m["name"] for m in d["members"]]'
expect gov_below_threshold_key_still_refused 2 "$TC" --key "$TMP/beta.key" protocol register "${RECS[0]}"
expect gov_propose_same_id 1 "$TC" --key "$K/sponsor.key" governance propose p-beta \
    member-suspend site-b
expect_text gov_propose_same_id_code "$TMP/out" "proposal-exists"
expect gov_approve_non_voter 1 "$TC" --key "$K/site-a.key" governance approve p-beta
expect_text gov_approve_non_voter_code "$TMP/out" "not-a-voter"
expect gov_approve_twice 1 "$TC" --key "$K/sponsor.key" governance approve p-beta
expect_text gov_approve_twice_code "$TMP/out" "already-approved"
expect gov_approve_unknown 1 "$TC" --key "$K/ethics.key" governance approve p-none
expect_text gov_approve_unknown_code "$TMP/out" "unknown-proposal"
expect gov_show_unknown 2 "$TC" governance show p-none
expect gov_propose_non_voter 1 "$TC" --key "$K/site-a.key" governance propose p-x \
    member-suspend site-b
expect_text gov_propose_non_voter_code "$TMP/out" "not-a-voter"
expect gov_propose_existing_member 1 "$TC" --key "$K/sponsor.key" governance propose p-dup \
    member-add site-a --organisation X --role site --key-file "$TMP/beta.key"
expect_text gov_propose_existing_member_code "$TMP/out" "member-exists|key-in-use"

# ---- the threshold is met: applied, and the new member signs ------------------------
expect gov_approve_applies 0 "$TC" --key "$K/ethics.key" --json governance approve p-beta
json_ok gov_approve_applies_json "$TMP/out" \
    '.status == "accepted" and .applied == true and .proposal.status == "applied" and .proposal.applied_height > 0' \
    'd["applied"] and d["proposal"]["status"] == "applied"'
expect gov_approve_closed 1 "$TC" --key "$TMP/beta.key" governance approve p-beta
expect_text gov_approve_closed_code "$TMP/out" "proposal-closed"
expect gov_new_member_signs 0 "$TC" --key "$TMP/beta.key" protocol register "${RECS[0]}"
expect gov_new_member_signs_again 0 "$TC" --key "$TMP/beta.key" protocol register "${RECS[1]}"
expect gov_members_after 0 "$TC" --json governance members
json_ok gov_member_added_json "$TMP/out" \
    '.members[] | select(.name == "beta") | .status == "active" and .since_height > 0 and .voter' \
    '[m for m in d["members"] if m["name"] == "beta" and m["status"] == "active"] != []'
expect gov_list 0 "$TC" governance list
expect_text gov_list_approvals "$TMP/out" "p-beta +member-add +beta +applied +2/2 organisations"
expect gov_list_json 0 "$TC" --json governance list
json_ok gov_list_json_parses "$TMP/out" \
    '(.proposals | length) >= 1 and (.proposals[] | select(.proposal_id == "p-beta") | .approvals == ["sponsor","ethics"])' \
    '[p for p in d["proposals"] if p["proposal_id"] == "p-beta"][0]["approvals"] == ["sponsor","ethics"]'
expect gov_show 0 "$TC" governance show p-beta
expect_text gov_show_full "$TMP/out" "approved by +sponsor, ethics"
PTX=$("$TC" --json governance show p-beta | jval tx_id)
expect gov_tx_describes_proposal 0 "$TC" tx "$PTX"
expect_text gov_tx_describes_proposal_text "$TMP/out" "governance change p-beta: member-add beta"

# ---- expiry -----------------------------------------------------------------------
expect gov_propose_short_expiry 0 "$TC" --key "$K/sponsor.key" governance propose p-late \
    member-add gamma --organisation "Gamma Labs" --role site \
    --public-key "$(printf 'ab%.0s' $(seq 32))" --expires-in 2s
sleep 3
expect gov_approve_expired 1 "$TC" --key "$K/ethics.key" governance approve p-late
expect_text gov_approve_expired_code "$TMP/out" "proposal-expired"
expect gov_show_expired 0 "$TC" --json governance show p-late
json_ok gov_expired_not_applied "$TMP/out" '.status != "applied"' 'd["status"] != "applied"'

# ---- suspend, reinstate, remove ---------------------------------------------------
expect gov_propose_suspend 0 "$TC" --key "$K/sponsor.key" governance propose p-susp \
    member-suspend beta --reason "audit pending"
expect gov_approve_suspend 0 "$TC" --key "$K/ethics.key" governance approve p-susp
expect_text gov_approve_suspend_applied "$TMP/out" "applied at block"
expect gov_suspended_member_refused 1 "$TC" --key "$TMP/beta.key" protocol register "${RECS[2]}"
expect_text gov_suspended_member_reason "$TMP/out" "member-suspended"
expect gov_propose_reinstate 0 "$TC" --key "$K/sponsor.key" governance propose p-back \
    member-reinstate beta
expect gov_approve_reinstate 0 "$TC" --key "$K/ethics.key" governance approve p-back
expect gov_reinstated_member_signs 0 "$TC" --key "$TMP/beta.key" protocol register "${RECS[2]}"
expect gov_propose_remove 0 "$TC" --key "$K/sponsor.key" governance propose p-rm \
    member-remove beta
expect gov_approve_remove 0 "$TC" --key "$K/ethics.key" governance approve p-rm
expect gov_removed_member_refused 1 "$TC" --key "$TMP/beta.key" protocol register "${RECS[3]}"
expect_text gov_removed_member_reason "$TMP/out" "member-removed"
expect gov_removed_member_refused_json 1 "$TC" --key "$TMP/beta.key" --json protocol register "${RECS[3]}"
json_ok gov_removed_member_json "$TMP/out" '.code == "member-removed"' 'd["code"] == "member-removed"'
expect gov_members_removed 0 "$TC" --json governance members
json_ok gov_members_shows_removed "$TMP/out" \
    '.members[] | select(.name == "beta") | .status == "removed"' \
    '[m for m in d["members"] if m["name"] == "beta"][0]["status"] == "removed"'

# ---- key rotation -----------------------------------------------------------------
expect gov_sponsor_signs_before 0 "$TC" --key "$K/sponsor.key" --json protocol register "${RECS[4]}"
BEFORE=$(jval tx_id <"$TMP/out" 2>/dev/null)
expect gov_proof_before_rotation 0 "$TC" proof "$BEFORE" -o "$TMP/before.json"
"$TC" keygen --name sponsor --role sponsor -o "$TMP/sponsor2.key" >/dev/null 2>&1
expect gov_propose_rotate 0 "$TC" --key "$K/ethics.key" governance propose p-rot \
    member-rotate-key sponsor --key-file "$TMP/sponsor2.key"
expect gov_approve_rotate 0 "$TC" --key "$K/sponsor.key" governance approve p-rot
expect_text gov_approve_rotate_applied "$TMP/out" "applied at block"
expect gov_old_key_refused 1 "$TC" --key "$K/sponsor.key" protocol register "${RECS[5]}"
expect_text gov_old_key_reason "$TMP/out" "key-rotated"
expect gov_new_key_signs 0 "$TC" --key "$TMP/sponsor2.key" protocol register "${RECS[5]}"
expect gov_receipt_before_rotation_verifies 0 "$TC" verify receipt "$TMP/before.json" --genesis "$G"

# ---- input errors (no node needed past the session) -----------------------------------
expect gov_propose_bad_action 2 "$TC" --key "$K/ethics.key" governance propose p-e frobnicate x
expect gov_propose_missing_peer_url 2 "$TC" --key "$K/ethics.key" governance propose p-e \
    replica-add node9 --public-key "$(printf 'cd%.0s' $(seq 32))"
expect gov_propose_bad_duration 2 "$TC" --key "$K/ethics.key" governance propose p-e \
    member-suspend site-b --expires-in soon
expect gov_approve_no_key 2 env -u TRIALCHAIN_KEY "$TC" governance approve p-rot
exit 0
