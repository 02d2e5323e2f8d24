#!/usr/bin/env bash
# cli_testnet.sh - every trialchain subcommand against a running local
# 4-node testnet: a sponsor's, a site's and an ethics board's day, the
# data-sharing round trip, receipts and the whole-ledger check, and the
# error paths (unauthorized -> 1 with the reason, a key of another
# consortium -> 2, a missing file -> 2, an unreachable node -> 3).
set -u
cd "$(dirname "$0")/../.."
BIN=${TRIALCHAIN_BIN:-build/bin}
TC="$BIN/trialchain"
for b in trialchain trialchain-node; do
    [ -x "$BIN/$b" ] || { echo "TEST-RESULT: skip cli_testnet (no $BIN/$b)"; exit 77; }
done
SHARED=${TRIALCHAIN_SHARED:-}
for d in "$SHARED" ../shared /work/shared; do
    [ -n "$d" ] && [ -d "$d/data/ctgov" ] && { SHARED=$d; break; }
done
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
testnet_up cli_testnet 4 0 44000
export TRIALCHAIN_NODE=tcp://127.0.0.1:$((BASE + 1))
export TRIALCHAIN_TIMEOUT_MS=20000
K=$NET/keys G=$NET/genesis.json

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
txid() { jq -r .tx_id "$TMP/out"; }

T=NCT02210780
REC=$SHARED/data/ctgov/$T.json
echo "consent form v1" >"$TMP/form.pdf"

# ---- the sponsor registers, the ethics board approves ---------------------------
expect cli_status 0 "$TC" status
expect cli_status_json 0 "$TC" --json status
jq -e '.chain_id | length == 64' "$TMP/out" >/dev/null && pass cli_status_json_chain_id ||
    fail cli_status_json_chain_id
expect cli_protocol_register_ctgov 0 "$TC" --key "$K/sponsor.key" --json protocol register "$REC"
REG=$(txid)
expect cli_protocol_register_twice_rejected 1 "$TC" --key "$K/sponsor.key" protocol register "$REC"
expect cli_protocol_register_by_site_rejected 1 "$TC" --key "$K/site-a.key" protocol register \
    "$SHARED/data/ctgov/NCT03630471.json"
expect_text cli_rejection_says_why "$TMP/out" "REJECTED \([a-z-]+\)"
expect cli_protocol_approve 0 "$TC" --key "$K/ethics.key" protocol approve --trial $T --version 1
expect cli_protocol_approve_by_sponsor_rejected 1 "$TC" --key "$K/sponsor.key" protocol approve \
    --trial $T --version 1
expect cli_site_authorize 0 "$TC" --key "$K/sponsor.key" site authorize --trial $T --site site-a
# the nonce stays above the ledger's last one when the clock steps back
expect cli_site_authorize_second 0 "$TC" --key "$K/sponsor.key" site authorize --trial $T --site site-b
if command -v faketime >/dev/null; then
    expect cli_nonce_survives_clock_step_back 0 env \
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        faketime -f "-3m" "$TC" --key "$K/sponsor.key" site authorize --trial $T --site site-b --revoke
else
    echo "TEST-RESULT: skip cli_nonce_survives_clock_step_back (no faketime)"
fi

# ---- the site records consent ---------------------------------------------------
expect cli_consent_record 0 "$TC" --key "$K/site-a.key" consent record --trial $T \
    --participant P-001 --scopes PARTICIPATION,GRU,HMB --version 1 --form "$TMP/form.pdf"
expect cli_consent_record_second 0 "$TC" --key "$K/site-a.key" consent record --trial $T \
    --participant P-002 --scopes PARTICIPATION,GRU --version 1 --form "$TMP/form.pdf"
expect cli_consent_unauthorized_site 1 "$TC" --key "$K/site-b.key" consent record --trial $T \
    --participant P-003 --scopes PARTICIPATION,GRU --version 1 --form "$TMP/form.pdf"
expect_text cli_consent_unauthorized_reason "$TMP/out" "not-authorized|not an authorized"
expect cli_consent_unknown_trial 1 "$TC" --key "$K/site-a.key" consent record --trial NCT99999999 \
    --participant P-001 --scopes PARTICIPATION --version 1 --form "$TMP/form.pdf"
expect_text cli_consent_unknown_trial_reason "$TMP/out" "unknown-trial|not registered"
expect cli_consent_missing_form 2 "$TC" --key "$K/site-a.key" consent record --trial $T \
    --participant P-009 --scopes PARTICIPATION --version 1 --form "$TMP/nope.pdf"
expect cli_consent_with_sponsor_key 2 "$TC" --key "$K/sponsor.key" consent record --trial $T \
    --participant P-009 --scopes PARTICIPATION --version 1 --form "$TMP/form.pdf"
expect cli_consent_withdraw 0 "$TC" --key "$K/site-a.key" consent withdraw --trial $T --participant P-002
if "$TC" trial history $T --json | grep -q "P-00"; then
    fail cli_local_ids_never_leave
else pass cli_local_ids_never_leave; fi
expect cli_consent_export_fhir 0 "$TC" consent export --fhir --trial $T -o "$TMP/fhir.json"
if jq -e '.resourceType == "Bundle" and .total == 3 and
    ([.entry[].resource.policyRule.coding[0].code] == ["OPTIN","OPTIN","OPTOUT"]) and
    ([.entry[].resource.status] == ["active","inactive","active"])' "$TMP/fhir.json" >/dev/null; then
    pass cli_consent_export_fhir_content
else fail cli_consent_export_fhir_content "$(head -c 300 "$TMP/fhir.json")"; fi

# ---- datasets: register, verify, share, open, revoke ------------------------------
head -c 300000 /dev/urandom >"$TMP/data.csv"
printf 'P-001\n# a comment\n\n' >"$TMP/parts.txt"
printf 'P-001\nP-002\n' >"$TMP/parts2.txt"
mkdir -p "$TMP/dir/sub" && echo a >"$TMP/dir/a.txt" && echo b >"$TMP/dir/sub/b.txt"
expect cli_dataset_register_withdrawn_participant 1 "$TC" --key "$K/site-a.key" dataset register \
    "$TMP/data.csv" --trial $T --dataset ds-x --participants "$TMP/parts2.txt"
expect cli_dataset_register 0 "$TC" --key "$K/site-a.key" dataset register "$TMP/data.csv" \
    --trial $T --dataset ds-1 --participants "$TMP/parts.txt" --records 1 --anonymization k-anonymity
expect_text cli_dataset_register_sha256sum "$TMP/out" "$(sha256sum "$TMP/data.csv" | cut -c1-64)"
expect cli_dataset_register_dir 0 "$TC" --key "$K/site-a.key" dataset register "$TMP/dir" \
    --trial $T --dataset ds-dir --participants "$TMP/parts.txt"
manifest=$(cd "$TMP/dir" && find . -type f | sed 's|^\./||' | LC_ALL=C sort |
    while read -r f; do printf '%s  %s\n' "$(sha256sum "$f" | cut -c1-64)" "$f"; done | sha256sum | cut -c1-64)
expect_text cli_dataset_manifest_is_sha256sum_of_lines "$TMP/out" "$manifest"
expect cli_dataset_verify 0 "$TC" dataset verify "$TMP/data.csv" --dataset ds-1
expect cli_dataset_verify_dir 0 "$TC" dataset verify "$TMP/dir" --dataset ds-dir --trial $T
cp "$TMP/data.csv" "$TMP/other.csv" && echo x >>"$TMP/other.csv"
expect cli_dataset_verify_mismatch 1 "$TC" dataset verify "$TMP/other.csv" --dataset ds-1
expect cli_dataset_verify_unknown 2 "$TC" dataset verify "$TMP/data.csv" --dataset ds-none
expect cli_dataset_share 0 "$TC" --key "$K/site-a.key" --json dataset share --dataset ds-1 --to site-b \
    --file "$TMP/data.csv" -o "$TMP/share.enc" --purpose HMB --expires 2099-12-31
GRANT=$(txid)
expect cli_dataset_share_wrong_file 1 "$TC" --key "$K/site-a.key" dataset share --dataset ds-1 \
    --to site-b --file "$TMP/other.csv" -o "$TMP/bad.enc" --purpose HMB --expires 2099-12-31
[ ! -e "$TMP/bad.enc" ] && pass cli_dataset_share_refused_leaves_nothing ||
    fail cli_dataset_share_refused_leaves_nothing
expect cli_dataset_open_not_grantee 2 "$TC" --key "$K/site-a.key" dataset open "$TMP/share.enc" \
    --grant "$GRANT" -o "$TMP/x.csv"
head -c 100000 "$TMP/share.enc" >"$TMP/trunc.enc"
expect cli_dataset_open_truncated 1 "$TC" --key "$K/site-b.key" dataset open "$TMP/trunc.enc" \
    --grant "$GRANT" -o "$TMP/t.csv"
cp "$TMP/share.enc" "$TMP/tampered.enc"
printf 'X' | dd of="$TMP/tampered.enc" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect cli_dataset_open_tampered 1 "$TC" --key "$K/site-b.key" dataset open "$TMP/tampered.enc" \
    --grant "$GRANT" -o "$TMP/t.csv"
[ ! -e "$TMP/t.csv" ] && pass cli_dataset_open_refused_leaves_nothing ||
    fail cli_dataset_open_refused_leaves_nothing
expect cli_dataset_open 0 "$TC" --key "$K/site-b.key" dataset open "$TMP/share.enc" \
    --grant "$GRANT" -o "$TMP/got.csv"
cmp -s "$TMP/got.csv" "$TMP/data.csv" && pass cli_dataset_open_round_trip ||
    fail cli_dataset_open_round_trip
expect cli_access_revoke_by_grantee_rejected 1 "$TC" --key "$K/site-b.key" access revoke --grant "$GRANT"
expect cli_access_revoke 0 "$TC" --key "$K/site-a.key" access revoke --grant "$GRANT" --reason done
expect cli_dataset_open_after_revoke 1 "$TC" --key "$K/site-b.key" dataset open "$TMP/share.enc" \
    --grant "$GRANT" -o "$TMP/late.csv"
expect_text cli_dataset_open_after_revoke_reason "$TMP/out" "revoked"
[ ! -e "$TMP/late.csv" ] && pass cli_dataset_open_revoked_leaves_nothing ||
    fail cli_dataset_open_revoked_leaves_nothing

expect cli_consent_withdraw_one_scope 0 "$TC" --key "$K/site-a.key" consent withdraw --trial $T \
    --participant P-001 --scopes GRU,HMB
expect cli_dataset_share_beyond_consent 1 "$TC" --key "$K/site-a.key" dataset share --dataset ds-1 \
    --to site-b --file "$TMP/data.csv" -o "$TMP/hmb.enc" --purpose HMB --expires 2099-12-31
expect_text cli_dataset_share_beyond_consent_reason "$TMP/out" "REJECTED \([a-z-]+\)"
[ ! -e "$TMP/hmb.enc" ] && pass cli_dataset_share_rejected_leaves_nothing ||
    fail cli_dataset_share_rejected_leaves_nothing

# ---- amendment, results -----------------------------------------------------------
cat >"$TMP/amend.json" <<'JSON'
{"outcomes": [{"type": "primary", "measure": "Serious adverse events", "time_frame": "Week 32"}]}
JSON
expect cli_protocol_amend 0 "$TC" --key "$K/sponsor.key" protocol amend --trial $T \
    --reason "safety endpoint" --outcomes "$TMP/amend.json"
expect cli_protocol_amend_by_other_rejected 1 "$TC" --key "$K/site-a.key" protocol amend --trial $T \
    --reason x --outcomes "$TMP/amend.json"
expect cli_protocol_amend_unknown_trial 2 "$TC" --key "$K/sponsor.key" protocol amend --trial NCT00000000 \
    --reason x --outcomes "$TMP/amend.json"
expect cli_results_register 0 "$TC" --key "$K/sponsor.key" --json results register "$REC" --trial $T
RES=$(txid)
expect cli_results_not_prespecified_marked 0 "$TC" --json tx "$RES"
# After the amendment replaced every outcome, none of the record's 11 matches
# a registered one; the record declares none post hoc, so all stay unlinked
# (no id, not marked) for the audit to flag.
jq -e '.body.results_register.outcomes | map(select((.not_prespecified | not) and ((.outcome_id // "") == ""))) | length == 11' "$TMP/out" \
    >/dev/null && pass cli_results_unmatched_after_switch || fail cli_results_unmatched_after_switch

# ---- trial views ---------------------------------------------------------------------
expect cli_trial_list 0 "$TC" trial list
expect_text cli_trial_list_names_trial "$TMP/out" "$T"
expect cli_trial_show 0 "$TC" trial show $T
expect_text cli_trial_show_summary "$TMP/out" "sponsor +sponsor"
expect_text cli_trial_show_consent_counts "$TMP/out" "1 partly withdrawn, 1 withdrawn"
expect cli_trial_show_json 0 "$TC" --json trial show $T
jq -e '.summary.trial_id == "'$T'" and (.timeline | length) > 10' "$TMP/out" >/dev/null &&
    pass cli_trial_show_json_content || fail cli_trial_show_json_content
# show lists the latest entries (--last N, default 20) after the summary,
# --all every one; both page the node's query and agree with history.
expect cli_trial_show_all_json 0 "$TC" --json trial show $T --all
cp "$TMP/out" "$TMP/all.json"
expect cli_trial_show_last_json 0 "$TC" --json trial show $T --last 3
jq -e --slurpfile all "$TMP/all.json" '.timeline == $all[0].timeline[-3:] and
    .total_entries == ($all[0].timeline | length) and
    .first_entry == .total_entries - 3' "$TMP/out" >/dev/null &&
    pass cli_trial_show_last_is_latest || fail cli_trial_show_last_is_latest
expect cli_trial_show_last_text 0 "$TC" trial show $T --last 2
expect_text cli_trial_show_last_says_so "$TMP/out" "the latest 2 of [0-9]+ entries"
expect cli_trial_show_bad_last 2 "$TC" trial show $T --last x
expect cli_trial_history_json 0 "$TC" --json trial history $T
jq -e --slurpfile all "$TMP/all.json" '.history == $all[0].timeline' "$TMP/out" >/dev/null &&
    pass cli_trial_history_is_show_all || fail cli_trial_history_is_show_all
expect cli_trial_history 0 "$TC" trial history $T
expect_text cli_trial_history_marks_rejected "$TMP/out" "REJECTED attempt"
expect cli_trial_unknown 2 "$TC" trial show NCT00000000
expect_text cli_trial_unknown_says_so "$TMP/err" "unknown trial"

# ---- blocks, txs, receipts, the ledger ------------------------------------------------
expect cli_block 0 "$TC" block 1
expect cli_block_json 0 "$TC" --json block 1
expect cli_block_missing 2 "$TC" block 999999
expect cli_tx 0 "$TC" tx "$REG"
expect cli_tx_bad_id 2 "$TC" tx 1234
expect cli_proof 0 "$TC" proof "$REG" -o "$TMP/receipt.json"
expect cli_verify_receipt 0 "$TC" verify receipt "$TMP/receipt.json" --genesis "$G"
expect cli_verify_receipt_expected_tx 0 "$TC" verify receipt "$TMP/receipt.json" --genesis "$G" --tx "$REG"
expect cli_verify_receipt_other_tx 1 "$TC" verify receipt "$TMP/receipt.json" --genesis "$G" --tx "$RES"
jq '.receipt |= (.[0:120] + (if .[120:121] == "A" then "B" else "A" end) + .[121:])' \
    "$TMP/receipt.json" >"$TMP/forged.json"
expect cli_verify_receipt_forged 1 "$TC" verify receipt "$TMP/forged.json" --genesis "$G"
expect cli_verify_ledger 0 "$TC" verify ledger --genesis "$G"
expect_text cli_verify_ledger_valid "$TMP/out" "^VALID"

# ---- another consortium's key and genesis --------------------------------------------
timeout 30 "$TC" testnet init "$TMP/other" --nodes 4 --base-port $((BASE + 45)) >/dev/null 2>&1
expect cli_key_of_other_consortium 2 "$TC" --key "$TMP/other/keys/sponsor.key" protocol register \
    "$SHARED/data/ctgov/NCT03630471.json"
expect_text cli_key_of_other_consortium_says_so "$TMP/err" "another consortium"
expect cli_keygen_bound_to_genesis 0 "$TC" keygen --name stranger --role sponsor \
    --genesis "$TMP/other/genesis.json" -o "$TMP/stranger.key"
expect cli_key_bound_to_other_chain 2 "$TC" --key "$TMP/stranger.key" site authorize --trial $T --site site-b
expect_text cli_key_bound_to_other_chain_says_so "$TMP/err" "another consortium"
expect cli_verify_receipt_other_genesis 1 "$TC" verify receipt "$TMP/receipt.json" \
    --genesis "$TMP/other/genesis.json"
expect cli_verify_ledger_other_genesis 1 "$TC" verify ledger --genesis "$TMP/other/genesis.json"

# ---- an unreachable node ------------------------------------------------------------
expect cli_unreachable 3 "$TC" --node tcp://127.0.0.1:9 --timeout 2000 trial list
exit 0
