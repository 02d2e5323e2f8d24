/*
 * cmd_audit.c - `trialchain audit TRIAL|--all [--attest]` and `trialchain
 * verify document FILE --trial T [--version V]`.
 *
 * The audit fetches a trial's entries page by page, decodes them, checks a
 * receipt for every entry it relies on (certificate, inclusion proofs, and
 * consistency of that block's log with the certified tip), runs the pure
 * checks of tools/audit.c and prints the report. The report is computed at
 * one certified ledger tip, and judged at that tip's block time, so two
 * auditors at the same height print the same bytes.
 */
#include "audit.h"
#include "cmd.h"
#include "crypto.h"
#include "tx.h"
#include "util.h"
#include "verify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHY_MAX    256
#define WRAP_WIDTH 78
#define LIST_PAGES 10000 /* bound on ListTrials pages */

static const char AUDIT_USAGE[] =
    "usage: trialchain audit TRIAL|--all [--json] [--attest] [--genesis G]\n"
    "\n"
    "Checks a trial (or every trial) against the ledger and prints a report\n"
    "an ethics board reads: each finding has a check id, a severity, a\n"
    "sentence, the rule it rests on and the transactions that prove it.\n"
    "Every entry's receipt (block certificate, inclusion proofs, and the\n"
    "log's consistency with the tip) is verified against the genesis.\n"
    "\n"
    "Checks: outcome-switched, registered-late, approval-missing,\n"
    "  consent-unapproved-version, data-without-consent,\n"
    "  access-outside-consent, results-late, results-overdue,\n"
    "  rejected-attempts, ledger-integrity, personal-data.\n"
    "\n"
    "  --all          audit every trial on the ledger\n"
    "  --json         the report as JSON: {trial, title, ledger{height,\n"
    "                 time_ms, log_size, log_root}, n_findings, clean,\n"
    "                 findings[{check, severity, sentence, rule,\n"
    "                 evidence[{tx_id, height, log_index, note,\n"
    "                 receipt}]}], notes[]}\n"
    "                 (--all: {ledger, n_findings, clean, trials[]})\n"
    "  --attest       sign the report as an ethics board (--key) and record\n"
    "                 an AuditAttestation: height, log size and root, the\n"
    "                 SHA-256 of the --json output, the number of findings\n"
    "  --genesis G    verify against this genesis file (default: the\n"
    "                 node's, checked against its chain id)\n"
    "\n"
    "Exit: 0 clean, 1 findings (notes do not count) or a failed\n"
    "attestation, 2 usage, 3 node unreachable.\n";

static const char DOC_USAGE[] =
    "usage: trialchain verify document FILE --trial T [--version V] [--json]"
    "\n\n"
    "Tells whether FILE is a document registered for trial T: its SHA-256\n"
    "against the protocol document of each version (or only version V),\n"
    "the consent forms consented to (under version V), the ethics decision\n"
    "documents and the results document. The matching transaction's\n"
    "receipt is verified against the genesis.\n"
    "Exit: 0 match, 1 no match, 2 usage, 3 node unreachable.\n";

/* ---- the certified tip ----------------------------------------------------
 */
struct tip {
    struct audit_tip t;
    Tc__ClientReply *block; /* BlockReply of the tip: header and cert */
    bool verified;
    char why[WHY_MAX];
};

static void tip_free(struct tip *tip)
{
    client_reply_free(tip->block);
    tip->block = NULL;
}

/* Follows the tip's epoch links (the replica-set changes below it) from
 * the genesis into ep. */
static bool tip_epoch(const struct sess *s, const Tc__BlockReply *b,
                      struct verify_epoch *ep, char *why, size_t why_len)
{
    verify_epoch_genesis(s->g, ep);
    for (size_t i = 0; i < b->n_epochs; i++) {
        const Tc__EpochLink *e = b->epochs[i];
        if (e == NULL || !verify_epoch_follow(ep, e->header.data, e->header.len,
                                              e->cert, why, why_len))
            return false;
    }
    return true;
}

/* The tip's certificate, by the replica set its epoch links reach. */
static bool tip_certified(const struct sess *s, const Tc__BlockReply *b,
                          uint64_t h, char *why, size_t why_len)
{
    if (b->cert == NULL) {
        snprintf(why, why_len, "it has no certificate");
        return false;
    }
    struct verify_epoch *ep = malloc(sizeof *ep);
    if (ep == NULL) {
        snprintf(why, why_len, "out of memory");
        return false;
    }
    bool ok = tip_epoch(s, b, ep, why, why_len);
    if (ok && b->n_epochs > 0 && ep->set.base_height >= h) {
        snprintf(why, why_len, "an epoch link is not below the tip");
        ok = false;
    }
    uint8_t hash[32];
    crypto_sha256(b->block->header.data, b->block->header.len, hash);
    if (ok)
        ok = verify_cert_with_set(&ep->set, ep->epoch_chain_id, h, hash,
                                  b->cert, why, why_len);
    free(ep);
    return ok;
}

static int fetch_tip(struct sess *s, struct tip *tip)
{
    memset(tip, 0, sizeof *tip);
    Tc__ClientReply *r = NULL;
    int rv = client_status(s->c, &r);
    if (rv != 0 || r->code != TC__REPLY_CODE__REPLY_OK || r->status == NULL) {
        util_err("the node at %s did not answer its status", cli.node_url);
        client_reply_free(r);
        return EXIT_UNREACHABLE;
    }
    /* the newest block with a certificate: the report's anchor */
    uint64_t h = r->status->height;
    if (r->status->last_certified > 0 && r->status->last_certified < h)
        h = r->status->last_certified;
    client_reply_free(r);
    tip->t.height = h;
    if (h == 0) {
        tip->verified = true;
        crypto_sha256("", 0, tip->t.log_root);
        return EXIT_OK;
    }
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__GetBlock gb = TC__GET_BLOCK__INIT;
    gb.height = h;
    req.req_case = TC__CLIENT_REQUEST__REQ_BLOCK;
    req.block = &gb;
    int code = sess_call(s, &req, &tip->block, "the tip block is missing");
    if (code != EXIT_OK)
        return code;
    const Tc__BlockReply *b = tip->block->block;
    if (b == NULL || b->block == NULL) {
        util_err("the node's reply for block %" PRIu64 " has no block", h);
        return EXIT_UNREACHABLE;
    }
    Tc__BlockHeader *hd = tc__block_header__unpack(NULL, b->block->header.len,
                                                   b->block->header.data);
    if (hd == NULL || hd->log_root.len != 32) {
        snprintf(tip->why, sizeof tip->why, "its block header does not decode");
    } else if (hd->height != h) {
        snprintf(tip->why, sizeof tip->why,
                 "the node sent the header of block %" PRIu64, hd->height);
    } else {
        tip->t.time_ms = hd->timestamp_ms;
        tip->t.log_size = hd->log_size;
        memcpy(tip->t.log_root, hd->log_root.data, 32);
        tip->verified = tip_certified(s, b, h, tip->why, sizeof tip->why);
    }
    if (hd != NULL)
        tc__block_header__free_unpacked(hd, NULL);
    return EXIT_OK;
}

/* ---- one trial's entries, decoded and verified ----------------------------
 */
struct consist {
    uint64_t size;
    uint8_t root[32];
    bool ok;
    char why[WHY_MAX];
};

struct run {
    struct trial_entries te;
    size_t n;
    struct audit_entry *e;
    Tc__Tx **tx;
    Tc__TxResult **res;
    char (*why)[WHY_MAX];
    struct consist *cons; /* consistency of a block's log with the tip */
    size_t n_cons;
};

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->tx && r->tx[i])
            tc__tx__free_unpacked(r->tx[i], NULL);
        if (r->res && r->res[i])
            tc__tx_result__free_unpacked(r->res[i], NULL);
    }
    free(r->e);
    free(r->tx);
    free(r->res);
    free(r->why);
    free(r->cons);
    trial_entries_free(&r->te);
    memset(r, 0, sizeof *r);
}

/* verify_log_extension against the tip, with the tip's certificate checked
 * by the set its epoch links reach. */
static bool verify_tip_extension(const struct sess *s, const struct tip *tip,
                                 uint64_t size, const uint8_t root[32],
                                 const Tc__Block *tb,
                                 const Tc__ConsistencyProof *proof, char *why)
{
    const Tc__BlockReply *b = tip->block->block;
    struct verify_epoch *ep = malloc(sizeof *ep);
    if (ep == NULL) {
        snprintf(why, WHY_MAX, "out of memory");
        return false;
    }
    bool ok = tip_epoch(s, b, ep, why, WHY_MAX);
    if (ok)
        ok = verify_log_extension_in(ep, size, root, tb->header.data,
                                     tb->header.len, b->cert, proof, why,
                                     WHY_MAX);
    free(ep);
    return ok;
}

/* Is the log at (size, root), certified in an entry's block, a prefix of
 * the certified tip? One consistency proof per distinct size. */
static int check_consistency(struct sess *s, struct run *r,
                             const struct tip *tip, uint64_t size,
                             const uint8_t root[32], bool *ok, char *why)
{
    for (size_t i = 0; i < r->n_cons; i++) {
        if (r->cons[i].size == size && memcmp(r->cons[i].root, root, 32) == 0) {
            *ok = r->cons[i].ok;
            snprintf(why, WHY_MAX, "%s", r->cons[i].why);
            return EXIT_OK;
        }
    }
    *ok = false;
    why[0] = '\0';
    if (size == tip->t.log_size) {
        *ok = memcmp(root, tip->t.log_root, 32) == 0;
        if (!*ok)
            snprintf(why, WHY_MAX, "two certified roots for log size %" PRIu64,
                     size);
    } else if (size > tip->t.log_size) {
        snprintf(why, WHY_MAX, "its block lies beyond the audited tip");
    } else if (!tip->verified || tip->block == NULL) {
        snprintf(why, WHY_MAX,
                 "the tip it would be checked against does not "
                 "verify");
    } else {
        Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
        Tc__GetConsistency gc = TC__GET_CONSISTENCY__INIT;
        gc.size1 = size;
        gc.size2 = tip->t.log_size;
        req.req_case = TC__CLIENT_REQUEST__REQ_CONSISTENCY;
        req.consistency = &gc;
        Tc__ClientReply *rep = NULL;
        int code = sess_call(s, &req, &rep, "no consistency proof");
        if (code == EXIT_UNREACHABLE)
            return code;
        const Tc__Block *tb = tip->block->block->block;
        if (code != EXIT_OK || rep->consistency == NULL ||
            rep->consistency->proof == NULL)
            snprintf(why, WHY_MAX, "the node gave no consistency proof");
        else
            /* the tip's certificate was checked by fetch_tip (across
             * the replica-set changes); here the log extension */
            *ok = verify_tip_extension(s, tip, size, root, tb,
                                       rep->consistency->proof, why);
        client_reply_free(rep);
    }
    struct consist *nc = realloc(r->cons, (r->n_cons + 1) * sizeof *nc);
    if (nc != NULL) {
        r->cons = nc;
        struct consist *c = &r->cons[r->n_cons++];
        c->size = size;
        memcpy(c->root, root, 32);
        c->ok = *ok;
        snprintf(c->why, sizeof c->why, "%s", why);
    }
    return EXIT_OK;
}

static bool bytes_eq(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    return a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Fetches and checks the receipt of entry i; failures become the entry's
 * proof_error. Only an unreachable node is an error. */
static int verify_entry(struct sess *s, struct run *r, const struct tip *tip,
                        size_t i)
{
    const Tc__LedgerEntry *le = r->te.v[i];
    struct audit_entry *e = &r->e[i];
    char *why = r->why[i];
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__GetTx gt = TC__GET_TX__INIT;
    gt.tx_id = util_bin(e->tx_id, 32);
    req.req_case = TC__CLIENT_REQUEST__REQ_TX;
    req.tx = &gt;
    Tc__ClientReply *rep = NULL;
    e->proof = AUDIT_PROOF_FAILED;
    e->proof_error = why;
    int code = sess_call(s, &req, &rep, "the node has no receipt");
    if (code == EXIT_UNREACHABLE)
        return code;
    struct verify_receipt_info info;
    if (code != EXIT_OK || rep->receipt == NULL) {
        snprintf(why, WHY_MAX, "the node gave no receipt for it");
    } else if (!verify_receipt(s->g, rep->receipt, &info, why, WHY_MAX)) {
        /* why is set */
    } else if (memcmp(info.tx_id, e->tx_id, 32) != 0 ||
               !bytes_eq(&rep->receipt->signed_tx, &le->signed_tx) ||
               !bytes_eq(&rep->receipt->result, &le->result)) {
        snprintf(why, WHY_MAX,
                 "the receipt is for other bytes than the "
                 "entry the node listed");
    } else if (info.height != le->height || info.log_index != le->log_index ||
               info.time_ms != le->time_ms) {
        snprintf(why, WHY_MAX,
                 "the receipt places it at height %" PRIu64
                 ", log index %" PRIu64 ", not where the node listed it",
                 info.height, info.log_index);
    } else {
        bool ok = false;
        code = check_consistency(s, r, tip, info.log_size, info.log_root, &ok,
                                 why);
        if (code == EXIT_UNREACHABLE) {
            client_reply_free(rep);
            return code;
        }
        if (ok) {
            e->proof = AUDIT_PROOF_OK;
            e->proof_error = NULL;
        } else if (why[0] == '\0') {
            snprintf(why, WHY_MAX,
                     "its block's log is not a prefix of the "
                     "certified tip");
        }
    }
    client_reply_free(rep);
    return EXIT_OK;
}

/* An earlier attestation names a log (size, root): it must be a prefix of
 * the tip, or the ledger forked between the two audits. */
static int verify_attested_log(struct sess *s, struct run *r,
                               const struct tip *tip, size_t i)
{
    struct audit_entry *e = &r->e[i];
    const Tc__AuditAttestation *a = e->tx->attestation;
    char *why = r->why[i];
    bool ok = false;
    if (a->log_root.len != 32) {
        snprintf(why, WHY_MAX, "the attestation names no log root");
    } else {
        char inner[WHY_MAX];
        int code = check_consistency(s, r, tip, a->log_size, a->log_root.data,
                                     &ok, inner);
        if (code != EXIT_OK)
            return code;
        if (!ok)
            snprintf(why, WHY_MAX,
                     "the log it attests (size %" PRIu64
                     ") is not a prefix of the audited tip: %.150s",
                     a->log_size, inner);
    }
    if (!ok) {
        e->proof = AUDIT_PROOF_FAILED;
        e->proof_error = why;
    }
    return EXIT_OK;
}

static int load_trial(struct sess *s, const struct tip *tip,
                      const char *trial_id, struct run *r)
{
    memset(r, 0, sizeof *r);
    int code = sess_trial(s, trial_id, &r->te);
    if (code != EXIT_OK)
        return code;
    size_t n = 0;
    /* the report stands at the tip: later entries are not part of it */
    while (n < r->te.n && r->te.v[n]->height <= tip->t.height)
        n++;
    r->e = calloc(n + 1, sizeof *r->e);
    r->tx = calloc(n + 1, sizeof *r->tx);
    r->res = calloc(n + 1, sizeof *r->res);
    r->why = calloc(n + 1, sizeof *r->why);
    if (!r->e || !r->tx || !r->res || !r->why) {
        util_err("out of memory");
        return EXIT_USAGE;
    }
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        const Tc__LedgerEntry *le = r->te.v[i];
        struct audit_entry *e = &r->e[i];
        e->height = le->height;
        e->time_ms = le->time_ms;
        e->log_index = le->log_index;
        e->signer_name = le->signer_name;
        tx_id(le->signed_tx.data, le->signed_tx.len, e->tx_id);
        if (entry_decode(le, &r->tx[i], &r->res[i]) == 0)
            e->tx = r->tx[i];
        if (r->res[i] != NULL) {
            e->rejected = r->res[i]->status == TC__TX_STATUS__TX_REJECTED;
            e->code = r->res[i]->code;
            e->message = r->res[i]->message;
        }
        if (e->tx != NULL && e->tx->signer.len == 32) {
            const struct genesis_member *m =
                genesis_member_by_key(s->g, e->tx->signer.data);
            e->signer_role = m ? m->role : ROLE_NONE;
        }
        if (le->tx_id.len != 32 || memcmp(le->tx_id.data, e->tx_id, 32) != 0) {
            e->proof = AUDIT_PROOF_FAILED;
            e->proof_error = "the node listed it under another tx id";
            continue;
        }
        code = verify_entry(s, r, tip, i);
        if (code == EXIT_OK && e->proof == AUDIT_PROOF_OK && e->tx != NULL &&
            e->tx->body_case == TC__TX__BODY_ATTESTATION)
            code = verify_attested_log(s, r, tip, i);
        if (code != EXIT_OK)
            return code;
    }
    return EXIT_OK;
}

/* ---- rendering ------------------------------------------------------------
 */
static void print_wrapped(const char *indent, const char *first,
                          const char *text)
{
    size_t col = strlen(indent) + strlen(first);
    fputs(indent, stdout);
    fputs(first, stdout);
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (w == 0)
            break;
        if (col > strlen(indent) + strlen(first) && col + 1 + w > WRAP_WIDTH) {
            printf("\n%s%*s", indent, (int)strlen(first), "");
            col = strlen(indent) + strlen(first);
        } else if (col > strlen(indent) + strlen(first)) {
            fputc(' ', stdout);
            col++;
        }
        fwrite(p, 1, w, stdout);
        col += w;
        p += w;
    }
    fputc('\n', stdout);
}

static void print_finding(const struct audit_finding *f)
{
    char head[128];
    snprintf(head, sizeof head, "[%s] %s", audit_severity_name(f->severity),
             f->check);
    for (char *c = head + 1; *c != ']'; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    printf("\n  %s\n", head);
    print_wrapped("    ", "", f->sentence);
    print_wrapped("    ", "rule: ", f->rule);
    for (size_t i = 0; i < f->n_evidence; i++) {
        const struct audit_evidence *ev = &f->evidence[i];
        char hex[65];
        lg_hex(ev->tx_id, 32, hex);
        printf("    %s height %-6" PRIu64 " tx %s\n",
               i ? "         " : "evidence:", ev->height, hex);
        printf("                     %s; receipt %s\n", ev->note,
               ev->proof == AUDIT_PROOF_OK       ? "verified"
               : ev->proof == AUDIT_PROOF_FAILED ? "DOES NOT VERIFY"
                                                 : "not checked");
    }
    if (f->n_evidence_omitted > 0)
        printf("              and %zu more transaction(s)\n",
               f->n_evidence_omitted);
}

static void print_report(const struct audit_report *r, size_t n_entries)
{
    char when[32], root[65];
    util_fmt_time(r->tip.time_ms, when);
    lg_hex(r->tip.log_root, 32, root);
    printf("Trial integrity audit: %s\n", r->trial_id);
    if (r->title[0] != '\0')
        print_wrapped("  ", "", r->title);
    printf("  computed at ledger height %" PRIu64 " (block time %s)\n"
           "  log size %" PRIu64 ", log root %s\n"
           "  %zu transaction(s) of this trial examined\n",
           r->tip.height, when, r->tip.log_size, root, n_entries);
    size_t n = audit_report_n_findings(r), notes = r->n_items - n;
    for (size_t i = 0; i < r->n_items; i++) {
        if (r->items[i].severity > AUDIT_INFO)
            print_finding(&r->items[i]);
    }
    if (notes > 0) {
        printf("\n  Notes (reported, not flagged):\n");
        for (size_t i = 0; i < r->n_items; i++) {
            const struct audit_finding *f = &r->items[i];
            if (f->severity != AUDIT_INFO)
                continue;
            char first[64];
            snprintf(first, sizeof first, "- %s: ", f->check);
            print_wrapped("    ", first, f->sentence);
        }
    }
    size_t by[4] = {0};
    for (size_t i = 0; i < r->n_items; i++)
        by[r->items[i].severity]++;
    if (n == 0)
        printf("\n  Result: CLEAN, no findings.\n\n");
    else
        printf("\n  Result: %zu finding(s): %zu high, %zu medium, %zu low.\n\n",
               n, by[AUDIT_HIGH], by[AUDIT_MEDIUM], by[AUDIT_LOW]);
}

static json_t *ledger_json(const struct tip *tip)
{
    char root[65];
    lg_hex(tip->t.log_root, 32, root);
    return json_pack("{s:I, s:I, s:I, s:s}", "height",
                     (json_int_t)tip->t.height, "time_ms",
                     (json_int_t)tip->t.time_ms, "log_size",
                     (json_int_t)tip->t.log_size, "log_root", root);
}

/* ---- attestation -----------------------------------------------------------
 */
static int attest(struct sess *s, const struct tip *tip, const char *trial_id,
                  const uint8_t report_hash[32], size_t n_findings,
                  const char *summary)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__AuditAttestation a = TC__AUDIT_ATTESTATION__INIT;
    a.trial_id = (char *)(trial_id ? trial_id : "");
    a.height = tip->t.height;
    a.log_size = tip->t.log_size;
    a.log_root = util_bin(tip->t.log_root, 32);
    a.report_sha256 = util_bin(report_hash, 32);
    a.n_findings = (uint32_t)n_findings;
    a.summary = (char *)summary;
    tx.body_case = TC__TX__BODY_ATTESTATION;
    tx.attestation = &a;
    int code = sess_next_nonce(s, &tx.nonce);
    if (code != EXIT_OK)
        return code;
    tx.chain_id = util_bin(s->chain_id, 32);
    tx.signer = util_bin(s->key.public_key, 32);
    tx.client_time_ms = lg_now_ms();
    uint8_t *bytes = NULL, id[32];
    size_t len = 0;
    if (tx_sign(&tx, &s->key, &bytes, &len) != 0) {
        util_err("cannot sign the attestation");
        return EXIT_USAGE;
    }
    tx_id(bytes, len, id);
    Tc__ClientReply *r = NULL;
    int rv = client_submit(s->c, bytes, len, true, &r);
    free(bytes);
    if (rv != 0) {
        util_err("cannot submit the attestation to %s (%s)", cli.node_url,
                 client_error(s->c));
        return EXIT_UNREACHABLE;
    }
    char hex[65], why[WHY_MAX] = "";
    lg_hex(id, 32, hex);
    struct verify_receipt_info info;
    if (r->code != TC__REPLY_CODE__REPLY_OK || r->submit == NULL ||
        !r->submit->committed || r->submit->receipt == NULL) {
        util_err("the attestation %s was not committed: %s%s%s", hex,
                 client_code_text(r->code), *r->error ? ": " : "", r->error);
        code = r->code == TC__REPLY_CODE__REPLY_TIMEOUT ? EXIT_UNREACHABLE
                                                        : EXIT_FINDINGS;
        client_reply_free(r);
        return code;
    }
    bool verified =
        verify_receipt(s->g, r->submit->receipt, &info, why, sizeof why);
    bool ok = verified && info.status == TC__TX_STATUS__TX_ACCEPTED;
    Tc__TxResult *res = tc__tx_result__unpack(
        NULL, r->submit->receipt->result.len, r->submit->receipt->result.data);
    /* on stderr, so that stdout stays the exact report that was hashed */
    fprintf(stderr,
            "trialchain: attestation %s: tx %s, height %" PRIu64
            ", receipt %s%s\n",
            !verified ? "UNVERIFIED"
            : ok      ? "recorded"
                      : "REJECTED",
            hex, verified ? info.height : 0,
            verified ? "verified" : "does not verify: ", verified ? "" : why);
    if (res != NULL && res->status == TC__TX_STATUS__TX_REJECTED)
        fprintf(stderr, "trialchain: refused as %s: %s\n", res->code,
                res->message);
    if (res != NULL)
        tc__tx_result__free_unpacked(res, NULL);
    client_reply_free(r);
    return ok ? EXIT_OK : EXIT_FINDINGS;
}

/* ---- trials to audit -------------------------------------------------------
 */
static int list_trials(struct sess *s, char ***ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__ListTrials lt = TC__LIST_TRIALS__INIT;
    Tc__Page page = TC__PAGE__INIT;
    lt.page = &page;
    req.req_case = TC__CLIENT_REQUEST__REQ_LIST_TRIALS;
    req.list_trials = &lt;
    for (int round = 0; round < LIST_PAGES; round++) {
        Tc__ClientReply *r = NULL;
        int code = sess_call(s, &req, &r, "no trials");
        if (code != EXIT_OK)
            return code;
        const Tc__TrialList *tl = r->trials;
        size_t got = tl ? tl->n_trials : 0;
        char **nv = realloc(*ids, (*n + got + 1) * sizeof *nv);
        if (nv == NULL) {
            client_reply_free(r);
            util_err("out of memory");
            return EXIT_USAGE;
        }
        *ids = nv;
        for (size_t i = 0; i < got; i++) {
            nv[*n] = strdup(tl->trials[i]->trial_id);
            if (nv[*n] != NULL)
                (*n)++;
        }
        bool more = tl && tl->more && got > 0;
        client_reply_free(r);
        if (!more)
            return EXIT_OK;
        page.offset += (uint32_t)got;
    }
    return EXIT_OK;
}

/* ---- audit -----------------------------------------------------------------
 */
struct audit_opts {
    bool all, attest;
    const char *genesis;
    const char *trial;
};

static int audit_one(struct sess *s, const struct tip *tip, const char *id,
                     struct audit_report *rep, size_t *n_entries)
{
    struct run r;
    int code = load_trial(s, tip, id, &r);
    if (code != EXIT_OK) {
        run_free(&r);
        return code;
    }
    struct audit_input in = {.trial_id = id,
                             .entries = r.e,
                             .n_entries = r.n,
                             .tip = tip->t,
                             .tip_error = tip->verified ? NULL : tip->why};
    int rv = audit_trial(&in, rep);
    *n_entries = r.n;
    run_free(&r);
    if (rv != 0) {
        util_err("the audit of %s failed: %s", id, lg_strerror(rv));
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static void summary_line(const struct audit_report *reps, size_t n, char *out,
                         size_t out_len)
{
    size_t o = 0, total = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        total += audit_report_n_findings(&reps[i]);
    o += (size_t)snprintf(out, out_len, "%zu finding(s) in %zu trial(s)", total,
                          n);
    /* the distinct check ids, in order of first appearance */
    const char *seen[16];
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < reps[i].n_items; k++) {
            const struct audit_finding *f = &reps[i].items[k];
            bool dup = f->severity == AUDIT_INFO;
            for (size_t j = 0; j < n_seen && !dup; j++)
                dup = strcmp(seen[j], f->check) == 0;
            if (dup || n_seen == 16 || o + 40 >= out_len)
                continue;
            seen[n_seen++] = f->check;
            o += (size_t)snprintf(out + o, out_len - o, "%s%s",
                                  n_seen == 1 ? ": " : ", ", f->check);
        }
    }
}

static int audit_run(struct sess *s, const struct audit_opts *o)
{
    struct tip tip;
    int code = fetch_tip(s, &tip);
    if (code != EXIT_OK) {
        tip_free(&tip);
        return code;
    }
    char **ids = NULL;
    size_t n_ids = 0;
    if (o->all) {
        code = list_trials(s, &ids, &n_ids);
    } else {
        ids = calloc(1, sizeof *ids);
        if (ids != NULL && (ids[0] = strdup(o->trial)) != NULL)
            n_ids = 1;
        else
            code = EXIT_USAGE;
    }
    struct audit_report *reps = calloc(n_ids + 1, sizeof *reps);
    size_t *n_entries = calloc(n_ids + 1, sizeof *n_entries);
    size_t done = 0, total = 0;
    if (reps == NULL || n_entries == NULL)
        code = EXIT_USAGE;
    for (; code == EXIT_OK && done < n_ids; done++) {
        code = audit_one(s, &tip, ids[done], &reps[done], &n_entries[done]);
        if (code == EXIT_OK)
            total += audit_report_n_findings(&reps[done]);
    }
    if (code == EXIT_OK) {
        json_t *j;
        if (o->all) {
            json_t *arr = json_array();
            for (size_t i = 0; i < done && arr != NULL; i++)
                json_array_append_new(arr, audit_report_json(&reps[i]));
            j = json_pack("{s:o, s:I, s:b, s:o}", "ledger", ledger_json(&tip),
                          "n_findings", (json_int_t)total, "clean", total == 0,
                          "trials", arr);
        } else {
            j = audit_report_json(&reps[0]);
        }
        char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        if (text == NULL) {
            util_err("out of memory");
            code = EXIT_USAGE;
        } else {
            if (cli.json) {
                fputs(text, stdout);
                fputc('\n', stdout);
            } else {
                for (size_t i = 0; i < done; i++)
                    print_report(&reps[i], n_entries[i]);
                if (o->all)
                    printf("Audit of %zu trial(s) at height %" PRIu64
                           ": %zu finding(s).\n",
                           done, tip.t.height, total);
            }
            fflush(stdout);
            code = total > 0 ? EXIT_FINDINGS : EXIT_OK;
            if (o->attest) {
                /* the hash is of the exact --json output, newline included */
                struct crypto_sha256_ctx hc;
                uint8_t hash[32];
                crypto_sha256_init(&hc);
                crypto_sha256_update(&hc, text, strlen(text));
                crypto_sha256_update(&hc, "\n", 1);
                crypto_sha256_final(&hc, hash);
                char sum[256];
                summary_line(reps, done, sum, sizeof sum);
                int ac =
                    attest(s, &tip, o->all ? "" : o->trial, hash, total, sum);
                if (ac != EXIT_OK)
                    code = ac;
            }
            free(text);
        }
    }
    for (size_t i = 0; i < n_ids; i++) {
        if (reps != NULL && i < done)
            audit_report_free(&reps[i]);
        free(ids[i]);
    }
    free(ids);
    free(reps);
    free(n_entries);
    tip_free(&tip);
    return code;
}

int cmd_audit(int argc, char **argv)
{
    struct audit_opts o = {0};
    const struct opt opts[] = {
        {"all", 0, false, NULL, &o.all},
        {"attest", 0, false, NULL, &o.attest},
        {"genesis", 0, true, &o.genesis, NULL},
    };
    const char *pos[1];
    size_t n_pos = 0;
    bool help = false;
    int code = util_opts(argc, argv, opts, sizeof opts / sizeof opts[0], pos,
                         &n_pos, 1, AUDIT_USAGE, &help);
    if (code != EXIT_OK || help)
        return code;
    if (o.all == (n_pos == 1)) {
        util_err("name one trial, or --all (not both)");
        fputs(AUDIT_USAGE, stderr);
        return EXIT_USAGE;
    }
    o.trial = n_pos ? pos[0] : NULL;
    struct sess s;
    code = sess_open(&s, o.attest);
    if (code == EXIT_OK && o.attest && s.key.role != ROLE_ETHICS_BOARD) {
        util_err("--attest needs an ethics board's key; %s is a %s key",
                 cli.key_path, role_name(s.key.role));
        code = EXIT_USAGE;
    }
    if (code == EXIT_OK)
        code = sess_genesis(&s, o.genesis);
    if (code == EXIT_OK)
        code = audit_run(&s, &o);
    sess_close(&s);
    return code;
}

/* ---- verify document -------------------------------------------------------
 */
/* Whether tx registered a document with this hash (under version, when
 * version >= 0); what it is goes to what. */
static bool doc_matches(const Tc__Tx *tx, const uint8_t hash[32], long version,
                        char *what, size_t what_len)
{
    const ProtobufCBinaryData *h = NULL;
    uint32_t v = 0;
    const char *fmt = NULL;
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        h = &tx->protocol_register->protocol_doc_hash;
        v = 1;
        fmt = "the protocol document of version";
        break;
    case TC__TX__BODY_PROTOCOL_AMEND:
        h = &tx->protocol_amend->protocol_doc_hash;
        v = tx->protocol_amend->version;
        fmt = "the protocol document of version";
        break;
    case TC__TX__BODY_CONSENT:
        h = &tx->consent->consent_form_hash;
        v = tx->consent->protocol_version;
        fmt = "a consent form participants signed under version";
        break;
    case TC__TX__BODY_ETHICS:
        h = &tx->ethics->decision_doc_hash;
        v = tx->ethics->version;
        fmt = "the ethics board's decision document on version";
        break;
    case TC__TX__BODY_RESULTS_REGISTER:
        h = &tx->results_register->results_doc_hash;
        fmt = "the results document";
        break;
    default:
        return false;
    }
    if (h->len != 32 || memcmp(h->data, hash, 32) != 0)
        return false;
    if (version >= 0 && (v == 0 || v != (uint32_t)version))
        return false;
    if (v != 0)
        snprintf(what, what_len, "%s %" PRIu32, fmt, v);
    else
        snprintf(what, what_len, "%s", fmt);
    return true;
}

static int doc_receipt(struct sess *s, const Tc__LedgerEntry *le, bool *ok,
                       char *why)
{
    *ok = false;
    if (le->tx_id.len != 32) {
        snprintf(why, WHY_MAX, "the node listed no tx id");
        return EXIT_OK;
    }
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__GetTx gt = TC__GET_TX__INIT;
    gt.tx_id = le->tx_id;
    req.req_case = TC__CLIENT_REQUEST__REQ_TX;
    req.tx = &gt;
    Tc__ClientReply *rep = NULL;
    int code = sess_call(s, &req, &rep, "the node has no receipt");
    if (code == EXIT_UNREACHABLE)
        return code;
    if (code != EXIT_OK || rep->receipt == NULL)
        snprintf(why, WHY_MAX, "the node gave no receipt");
    else if (verify_receipt(s->g, rep->receipt, NULL, why, WHY_MAX))
        *ok = bytes_eq(&rep->receipt->signed_tx, &le->signed_tx);
    if (!*ok && why[0] == '\0')
        snprintf(why, WHY_MAX, "the receipt is for other bytes");
    client_reply_free(rep);
    return EXIT_OK;
}

static int doc_run(struct sess *s, const char *file, const char *trial,
                   long version)
{
    uint8_t hash[32];
    uint64_t size = 0;
    int code = util_hash_file(file, hash, &size, NULL);
    if (code != EXIT_OK)
        return code;
    struct trial_entries te;
    code = sess_trial(s, trial, &te);
    if (code != EXIT_OK)
        return code;
    char hex[65], what[160] = "", why[WHY_MAX] = "";
    lg_hex(hash, 32, hex);
    const Tc__LedgerEntry *hit = NULL;
    for (size_t i = 0; i < te.n && hit == NULL; i++) {
        Tc__Tx *tx = NULL;
        Tc__TxResult *res = NULL;
        if (entry_decode(te.v[i], &tx, &res) == 0 && res != NULL &&
            res->status == TC__TX_STATUS__TX_ACCEPTED &&
            doc_matches(tx, hash, version, what, sizeof what))
            hit = te.v[i];
        if (tx != NULL)
            tc__tx__free_unpacked(tx, NULL);
        if (res != NULL)
            tc__tx_result__free_unpacked(res, NULL);
    }
    bool receipt_ok = false;
    if (hit != NULL)
        code = doc_receipt(s, hit, &receipt_ok, why);
    if (code != EXIT_OK) {
        trial_entries_free(&te);
        return code;
    }
    char vs[32] = "";
    if (version >= 0)
        snprintf(vs, sizeof vs, " version %ld", version);
    char idhex[65] = "";
    if (hit != NULL && hit->tx_id.len == 32)
        lg_hex(hit->tx_id.data, 32, idhex);
    if (cli.json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:b}", "file", file,
                              "sha256", hex, "size", (json_int_t)size, "trial",
                              trial, "match", hit != NULL && receipt_ok);
        if (j && version >= 0)
            json_object_set_new(j, "version", json_integer(version));
        if (j && hit != NULL) {
            json_object_set_new(j, "registered_as", json_string(what));
            json_object_set_new(j, "tx_id", json_string(idhex));
            json_object_set_new(j, "height",
                                json_integer((json_int_t)hit->height));
            json_object_set_new(j, "receipt_verified",
                                json_boolean(receipt_ok));
            if (!receipt_ok)
                json_object_set_new(j, "receipt_problem", json_string(why));
        }
        util_print_json(j);
    } else if (hit != NULL && receipt_ok) {
        printf("MATCH: %s is %s of %s.\n  sha256 %s\n  registered at height "
               "%" PRIu64 " in tx %s (receipt verified)\n",
               file, what, trial, hex, hit->height, idhex);
    } else if (hit != NULL) {
        printf("NO PROOF: %s matches %s of %s (tx %s), but its receipt does "
               "not verify: %s. Do not trust this node.\n",
               file, what, trial, idhex, why);
    } else {
        printf("NO MATCH: %s (sha256 %s) is not a document registered for "
               "%s%s.\n",
               file, hex, trial, vs);
    }
    trial_entries_free(&te);
    return hit != NULL && receipt_ok ? EXIT_OK : EXIT_FINDINGS;
}

int cmd_verify_document(int argc, char **argv)
{
    const char *trial = NULL, *version_s = NULL, *genesis = NULL;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"version", 0, true, &version_s, NULL},
        {"genesis", 0, true, &genesis, NULL},
    };
    const char *pos[1];
    size_t n_pos = 0;
    bool help = false;
    int code = util_opts(argc, argv, opts, sizeof opts / sizeof opts[0], pos,
                         &n_pos, 1, DOC_USAGE, &help);
    if (code != EXIT_OK || help)
        return code;
    if (n_pos != 1)
        return util_missing("FILE", DOC_USAGE);
    if (trial == NULL)
        return util_missing("--trial", DOC_USAGE);
    long version = -1;
    if (version_s != NULL) {
        char *end;
        version = strtol(version_s, &end, 10);
        if (*end != '\0' || version < 1 || version > 1000000) {
            util_err("--version wants a protocol version number (1, 2, ...)");
            return EXIT_USAGE;
        }
    }
    struct sess s;
    code = sess_open(&s, false);
    if (code == EXIT_OK)
        code = sess_genesis(&s, genesis);
    if (code == EXIT_OK)
        code = doc_run(&s, pos[0], trial, version);
    sess_close(&s);
    return code;
}
