#!/usr/bin/env bash
# cli_offline.sh - the trialchain command without a node: --help on every
# subcommand, keygen, ClinicalTrials.gov import (--dry-run) of every shared
# record, input errors (exit 2), an unreachable node (exit 3), and the raw
# RFC 9162 proof checks over every transparency-dev vector (exit 0 holds,
# 1 does not).
set -u
cd "$(dirname "$0")/../.."
BIN=${TRIALCHAIN_BIN:-build/bin}
TC="$BIN/trialchain"
[ -x "$TC" ] || { echo "TEST-RESULT: skip cli_offline (no $TC)"; exit 77; }
SHARED=${TRIALCHAIN_SHARED:-}
for d in "$SHARED" ../shared /work/shared; do
    [ -n "$d" ] && [ -d "$d/data/ctgov" ] && { SHARED=$d; break; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# nothing listens here: every node call must fail fast with exit 3
export TRIALCHAIN_NODE=tcp://127.0.0.1:9
export TRIALCHAIN_TIMEOUT_MS=2000

pass() { echo "TEST-RESULT: pass $1"; }
fail() { echo "TEST-RESULT: fail $1${2:+ ($2)}"; }
# expect NAME CODE CMD...: runs CMD (bounded), checks its exit code
expect() {
    local name=$1 want=$2 rc
    shift 2
    timeout 30 "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -eq "$want" ]; then pass "$name"; else
        fail "$name" "exit $rc, want $want: $(head -c 300 "$TMP/err")"
    fi
}

# ---- help everywhere --------------------------------------------------------
ok=1
for c in "" keygen status block tx "protocol" "protocol register" \
    "protocol amend" "protocol approve" "site" "site authorize" consent \
    "consent record" "consent withdraw" "consent export" dataset \
    "dataset register" "dataset verify" "dataset share" "dataset open" \
    access "access revoke" results "results register" trial "trial show" \
    "trial history" "trial list" proof verify "verify receipt" \
    "verify ledger" "verify inclusion" "verify consistency"; do
    # shellcheck disable=SC2086
    if ! timeout 10 "$TC" $c --help >"$TMP/help" 2>&1 ||
        ! grep -q usage "$TMP/help"; then
        ok=0
        echo "no help for '$c'"
    fi
done
[ $ok = 1 ] && pass cli_help_everywhere || fail cli_help_everywhere
expect cli_unknown_command 2 "$TC" frobnicate
expect cli_unknown_option 2 "$TC" status --frob

# ---- keygen -----------------------------------------------------------------
expect cli_keygen 0 "$TC" keygen --name site-z --role site -o "$TMP/z.key"
if [ "$(stat -c %a "$TMP/z.key" 2>/dev/null)" = 600 ]; then
    pass cli_keygen_mode_0600
else fail cli_keygen_mode_0600; fi
expect cli_keygen_never_overwrites 2 "$TC" keygen --name x --role site -o "$TMP/z.key"
expect cli_keygen_bad_role 2 "$TC" keygen --name x --role boss -o "$TMP/b.key"
expect cli_keygen_missing_output 2 "$TC" keygen --name x --role site
"$TC" --json keygen --name s --role sponsor -o "$TMP/s.key" >"$TMP/k.json" 2>&1
if jq -e '.public_key | length == 64' "$TMP/k.json" >/dev/null; then
    pass cli_keygen_json
else fail cli_keygen_json; fi

# ---- ClinicalTrials.gov import ------------------------------------------------
if [ -d "$SHARED/data/ctgov" ]; then
    ok=1
    for f in "$SHARED"/data/ctgov/*.json; do
        nct=$(basename "$f" .json)
        if ! timeout 10 "$TC" protocol register "$f" --dry-run >"$TMP/p.json" 2>"$TMP/err" ||
            [ "$(jq -r .trial_id "$TMP/p.json")" != "$nct" ] ||
            [ "$(jq -r .source_record_hash "$TMP/p.json")" != "$(sha256sum "$f" | cut -c1-64)" ] ||
            jq -r '.. | strings' "$TMP/p.json" | grep -q '@'; then
            ok=0
            echo "import of $nct failed: $(head -c 300 "$TMP/err")"
        fi
    done
    [ $ok = 1 ] && pass cli_ctgov_every_record_imports || fail cli_ctgov_every_record_imports
    expect cli_ctgov_classic_v1_refused 2 "$TC" protocol register \
        "$SHARED/data/ctgov/classic-v1/NCT04780763.json" --dry-run
    grep -q "classic API v1" "$TMP/err" && pass cli_ctgov_classic_v1_message ||
        fail cli_ctgov_classic_v1_message
    expect cli_results_dry_run 0 "$TC" results register \
        "$SHARED/data/ctgov/NCT02210780.json" --trial NCT02210780 --dry-run
else
    echo "TEST-RESULT: skip cli_ctgov_every_record_imports (no shared data)"
fi
echo '{"trial_id": "TC-1"}' >"$TMP/noout.json"
expect cli_protocol_without_outcomes 2 "$TC" protocol register "$TMP/noout.json" --dry-run
expect cli_missing_file 2 "$TC" protocol register "$TMP/nope.json" --dry-run
expect cli_missing_key 2 env -u TRIALCHAIN_KEY "$TC" site authorize --trial T --site s

# ---- an unreachable node --------------------------------------------------------
expect cli_unreachable_status 3 "$TC" status
expect cli_unreachable_trial 3 "$TC" trial list
expect cli_unreachable_submit 3 "$TC" --key "$TMP/s.key" site authorize --trial T --site s
grep -q "cannot reach the node" "$TMP/err" && pass cli_unreachable_message ||
    fail cli_unreachable_message

# ---- raw proofs: every RFC 9162 vector ------------------------------------------
b64hex() { if [ -z "$1" ] || [ "$1" = null ]; then echo; else echo "$1" | base64 -d | xxd -p -c 256; fi; }
V="$SHARED/merkle-vectors/transparency-dev-merkle/testdata"
if [ -d "$V" ]; then
    bad=0 n=0
    while IFS= read -r f; do
        n=$((n + 1))
        want=$(jq -r 'if .wantErr then 1 else 0 end' "$f")
        # the tool takes 32-byte hashes only: a vector with shorter
        # "don't care" roots cannot be expressed on its command line
        if [ "$want" = 0 ] && jq -e '[.root, .root1, .root2, .leafHash] |
            map(select(. != null) | (length != 44)) | any' "$f" >/dev/null; then
            n=$((n - 1)); continue
        fi
        path=$(jq -r '(.proof // [])[]' "$f" | while read -r p; do b64hex "$p"; done | paste -sd, -)
        # a proof of one empty hash must reach the tool as an empty item
        [ -z "$path" ] && [ "$(jq '.proof // [] | length' "$f")" -gt 0 ] && path=","
        if [[ $f == */inclusion/* ]]; then
            timeout 10 "$TC" verify inclusion --leaf-hash "$(b64hex "$(jq -r .leafHash "$f")")" \
                --index "$(jq -r .leafIdx "$f")" --size "$(jq -r .treeSize "$f")" \
                --root "$(b64hex "$(jq -r .root "$f")")" --path "$path" >/dev/null 2>&1
        else
            timeout 10 "$TC" verify consistency --size1 "$(jq -r .size1 "$f")" \
                --size2 "$(jq -r .size2 "$f")" --root1 "$(b64hex "$(jq -r .root1 "$f")")" \
                --root2 "$(b64hex "$(jq -r .root2 "$f")")" --path "$path" >/dev/null 2>&1
        fi
        rc=$?
        # a malformed vector field (e.g. an empty root) is a usage error: not holding
        [ $rc -eq 2 ] && rc=1
        if [ "$rc" != "$want" ]; then bad=$((bad + 1)); echo "vector $f: exit $rc, want $want"; fi
    done < <(find "$V" -name '*.json' | sort)
    [ $bad = 0 ] && [ $n -gt 100 ] && pass "cli_verify_proofs_all_${n}_vectors" ||
        fail cli_verify_proofs "$bad of $n vectors"
else
    echo "TEST-RESULT: skip cli_verify_proofs (no vectors)"
fi
expect cli_verify_inclusion_bad_hex 2 "$TC" verify inclusion --leaf-hash zz --index 0 --size 1 --root 00
echo garbage >"$TMP/receipt.json"
expect cli_verify_receipt_missing_genesis 2 "$TC" verify receipt "$TMP/receipt.json"
exit 0
