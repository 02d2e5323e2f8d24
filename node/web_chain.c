/*
 * web_chain.c - the block and transaction pages: header fields, the txs
 * decoded by type, and the certificate or receipt checked right here with
 * the genesis (verify.h), so the page says what holds, not what a node
 * claims.
 */
#include "crypto.h"
#include "tx.h"
#include "verify.h"
#include "web_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTICIPANTS_SHOWN 50

/* ---- definition-list rows ------------------------------------------------
 */

static void dt(struct wbuf *b, const char *label)
{
    wb_puts(b, "<dt>");
    wb_esc(b, label);
    wb_puts(b, "</dt><dd>");
}

static void dt_text(struct wbuf *b, const char *label, const char *v)
{
    dt(b, label);
    wb_esc(b, v);
    wb_puts(b, "</dd>");
}

static void dt_u64(struct wbuf *b, const char *label, uint64_t v)
{
    dt(b, label);
    wb_printf(b, "%" PRIu64 "</dd>", v);
}

static void dt_hex(struct wbuf *b, const char *label,
                   const ProtobufCBinaryData *v)
{
    dt(b, label);
    if (v->len == 0) {
        wb_puts(b, "<span class=muted>none</span></dd>");
        return;
    }
    wb_puts(b, "<span class=h>");
    wb_hex(b, v->data, v->len);
    wb_puts(b, "</span></dd>");
}

static void dt_time(struct wbuf *b, const char *label, uint64_t ms)
{
    dt(b, label);
    wb_time(b, ms);
    wb_puts(b, "</dd>");
}

static void dt_trial(struct wbuf *b, const char *id)
{
    dt(b, "Trial");
    wb_puts(b, "<a href=\"/trial/");
    wb_esc(b, id);
    wb_puts(b, "\">");
    wb_esc(b, id);
    wb_puts(b, "</a></dd>");
}

static void dt_tx(struct wbuf *b, const char *label,
                  const ProtobufCBinaryData *id)
{
    dt(b, label);
    if (id->len == 32) {
        wb_puts(b, "<a class=h href=\"/tx/");
        wb_hex(b, id->data, 32);
        wb_puts(b, "\">");
        wb_hex(b, id->data, 32);
        wb_puts(b, "</a>");
    } else {
        wb_puts(b, "<span class=bad>not a tx id</span>");
    }
    wb_puts(b, "</dd>");
}

static const char *otype(Tc__OutcomeType t)
{
    switch (t) {
    case TC__OUTCOME_TYPE__OUTCOME_PRIMARY:
        return "primary";
    case TC__OUTCOME_TYPE__OUTCOME_SECONDARY:
        return "secondary";
    case TC__OUTCOME_TYPE__OUTCOME_OTHER:
        return "other";
    default:
        return "unspecified";
    }
}

static void outcomes(struct wbuf *b, Tc__Outcome **o, size_t n)
{
    dt(b, "Outcomes");
    wb_printf(b,
              "%zu</dd></dl><table><tr><th>Id</th><th>Type</th>"
              "<th>Measure</th><th>Time frame</th><th>Description</th>"
              "</tr>",
              n);
    for (size_t i = 0; i < n; i++) {
        wb_puts(b, "<tr><td>");
        wb_esc(b, o[i]->id);
        wb_printf(b, "</td><td>%s</td><td>", otype(o[i]->type));
        wb_esc(b, o[i]->measure);
        wb_puts(b, "</td><td>");
        wb_esc(b, o[i]->time_frame);
        wb_puts(b, "</td><td>");
        wb_esc(b, o[i]->description);
        wb_puts(b, "</td></tr>");
    }
    wb_puts(b, "</table><dl>");
}

/* ---- tx bodies -----------------------------------------------------------
 */

static void body_register(struct wbuf *b, const Tc__ProtocolRegister *p)
{
    dt_trial(b, p->trial_id);
    dt_text(b, "Brief title", p->brief_title);
    dt_text(b, "Official title", p->official_title);
    dt_text(b, "Sponsor", p->sponsor_name);
    dt_text(b, "Phase", p->phase);
    dt_text(b, "Study type", p->study_type);
    dt_u64(b, "Planned enrolment", p->enrollment);
    dt(b, "Start date");
    wb_esc(b, p->start_date);
    wb_puts(b, p->start_date_actual ? " (actual)</dd>" : " (planned)</dd>");
    dt(b, "Primary completion");
    wb_esc(b, p->primary_completion_date);
    wb_puts(b, p->primary_completion_actual ? " (actual)</dd>"
                                            : " (planned)</dd>");
    dt_hex(b, "Protocol document SHA-256", &p->protocol_doc_hash);
    dt_hex(b, "Source record SHA-256", &p->source_record_hash);
    dt_text(b, "Source", p->source);
    dt_text(b, "Registry first submitted", p->registry_first_submitted);
    outcomes(b, p->outcomes, p->n_outcomes);
}

static void body_amend(struct wbuf *b, const Tc__ProtocolAmend *a)
{
    dt_trial(b, a->trial_id);
    dt_u64(b, "Version", a->version);
    dt_tx(b, "Previous version (tx)", &a->prev_version_hash);
    dt_text(b, "Reason", a->reason);
    dt_hex(b, "Protocol document SHA-256", &a->protocol_doc_hash);
    outcomes(b, a->outcomes, a->n_outcomes);
}

static void body_ethics(struct wbuf *b, const Tc__EthicsDecision *d)
{
    static const char *const actions[] = {"unspecified", "approve", "suspend",
                                          "terminate"};
    dt_trial(b, d->trial_id);
    dt_u64(b, "Protocol version", d->version);
    dt_text(b, "Action",
            (unsigned)d->action < 4 ? actions[d->action] : "unknown");
    dt_text(b, "Note", d->note);
    dt_hex(b, "Decision document SHA-256", &d->decision_doc_hash);
}

static void body_consent(struct wbuf *b, const Tc__Consent *c)
{
    dt_trial(b, c->trial_id);
    dt_hex(b, "Pseudonym", &c->pseudonym);
    dt_u64(b, "Protocol version", c->protocol_version);
    dt_hex(b, "Consent form SHA-256", &c->consent_form_hash);
    dt_text(b, "Action",
            c->action == TC__CONSENT_ACTION__CONSENT_RECORD     ? "record"
            : c->action == TC__CONSENT_ACTION__CONSENT_WITHDRAW ? "withdraw"
                                                                : "unknown");
    dt(b, "Scopes");
    for (size_t i = 0; i < c->n_scopes; i++) {
        wb_puts(b, i ? ", " : "");
        wb_esc(b, c->scopes[i]);
    }
    if (c->n_scopes == 0)
        wb_puts(b, "<span class=muted>none listed</span>");
    wb_puts(b, "</dd>");
}

static void body_dataset(struct wbuf *b, const Tc__DatasetRegister *d)
{
    dt_text(b, "Dataset", d->dataset_id);
    dt_trial(b, d->trial_id);
    dt_hex(b, d->is_manifest ? "Manifest SHA-256" : "File SHA-256", &d->sha256);
    dt_u64(b, "Size (bytes)", d->size_bytes);
    dt_u64(b, "Records", d->record_count);
    dt_text(b, "Anonymization", d->anonymization);
    dt(b, "Participants (pseudonyms)");
    wb_printf(b, "%zu:", d->n_participants);
    for (size_t i = 0; i < d->n_participants && i < PARTICIPANTS_SHOWN; i++) {
        wb_puts(b, " <span class=h>");
        wb_hex(b, d->participants[i].data, d->participants[i].len);
        wb_puts(b, "</span>");
    }
    if (d->n_participants > PARTICIPANTS_SHOWN)
        wb_printf(b, " and %zu more", d->n_participants - PARTICIPANTS_SHOWN);
    wb_puts(b, "</dd>");
}

static void body_grant(struct wbuf *b, const Tc__AccessGrant *g)
{
    dt_text(b, "Dataset", g->dataset_id);
    dt_text(b, "Grantee", g->grantee);
    dt_text(b, "Purpose", g->purpose);
    dt_time(b, "Expires", g->expires_ms);
    dt(b, "Sealed data key");
    wb_printf(b, "%zu bytes, readable by the grantee only</dd>",
              g->sealed_key.len);
    dt_hex(b, "Ciphertext SHA-256", &g->ciphertext_sha256);
}

static void body_results(struct wbuf *b, const Tc__ResultsRegister *r)
{
    dt_trial(b, r->trial_id);
    dt_hex(b, "Results document SHA-256", &r->results_doc_hash);
    dt_text(b, "Actual primary completion", r->actual_primary_completion_date);
    dt_text(b, "Source", r->source);
    dt(b, "Datasets used");
    for (size_t i = 0; i < r->n_datasets_used; i++) {
        wb_puts(b, i ? ", " : "");
        wb_esc(b, r->datasets_used[i]);
    }
    wb_printf(b,
              "</dd><dt>Reported outcomes</dt><dd>%zu</dd></dl><table>"
              "<tr><th>Outcome</th><th>Pre-specified</th><th>Type</th>"
              "<th>Measure</th><th>Time frame</th></tr>",
              r->n_outcomes);
    for (size_t i = 0; i < r->n_outcomes; i++) {
        const Tc__ReportedOutcome *o = r->outcomes[i];
        wb_puts(b, "<tr><td>");
        wb_esc(b, o->outcome_id);
        wb_printf(b, "</td><td>%s</td><td>%s</td><td>",
                  o->not_prespecified ? "no" : "yes", otype(o->type));
        wb_esc(b, o->measure);
        wb_puts(b, "</td><td>");
        wb_esc(b, o->time_frame);
        wb_puts(b, "</td></tr>");
    }
    wb_puts(b, "</table><dl>");
}

static void body_attestation(struct wbuf *b, const Tc__AuditAttestation *a)
{
    if (a->trial_id[0] != '\0')
        dt_trial(b, a->trial_id);
    else
        dt_text(b, "Trial", "all trials");
    dt(b, "Audited at block");
    wb_printf(b, "<a href=\"/block/%" PRIu64 "\">%" PRIu64 "</a></dd>",
              a->height, a->height);
    dt_u64(b, "Log size", a->log_size);
    dt_hex(b, "Log root", &a->log_root);
    dt_hex(b, "Report SHA-256", &a->report_sha256);
    dt_u64(b, "Findings", a->n_findings);
    dt_text(b, "Summary", a->summary);
}

static void tx_body(struct wbuf *b, const Tc__Tx *tx)
{
    wb_puts(b, "<dl>");
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        body_register(b, tx->protocol_register);
        break;
    case TC__TX__BODY_PROTOCOL_AMEND:
        body_amend(b, tx->protocol_amend);
        break;
    case TC__TX__BODY_ETHICS:
        body_ethics(b, tx->ethics);
        break;
    case TC__TX__BODY_SITE_AUTHORIZE:
        dt_trial(b, tx->site_authorize->trial_id);
        dt_text(b, "Site", tx->site_authorize->site);
        dt_text(b, "Action",
                tx->site_authorize->revoke ? "revoke" : "authorize");
        break;
    case TC__TX__BODY_CONSENT:
        body_consent(b, tx->consent);
        break;
    case TC__TX__BODY_DATASET_REGISTER:
        body_dataset(b, tx->dataset_register);
        break;
    case TC__TX__BODY_ACCESS_GRANT:
        body_grant(b, tx->access_grant);
        break;
    case TC__TX__BODY_ACCESS_REVOKE:
        dt_tx(b, "Grant", &tx->access_revoke->grant_tx);
        dt_text(b, "Reason", tx->access_revoke->reason);
        break;
    case TC__TX__BODY_ACCESS_EVENT:
        dt_tx(b, "Grant", &tx->access_event->grant_tx);
        dt_hex(b, "File SHA-256", &tx->access_event->file_sha256);
        dt_text(b, "Purpose", tx->access_event->purpose);
        break;
    case TC__TX__BODY_RESULTS_REGISTER:
        body_results(b, tx->results_register);
        break;
    case TC__TX__BODY_ATTESTATION:
        body_attestation(b, tx->attestation);
        break;
    default:
        dt_text(b, "Body", "none");
    }
    wb_puts(b, "</dl>");
}

/* ---- certificate sentence ------------------------------------------------
 */

/* The voters by name: a vote's replica is its index in the set. */
static void cert_voters(struct wbuf *b, const struct gov_replica_set *set,
                        const Tc__Certificate *c)
{
    wb_puts(b, " ");
    for (size_t i = 0; i < c->n_votes; i++) {
        uint32_t r = c->votes[i] ? c->votes[i]->replica : UINT32_MAX;
        wb_puts(b, i ? ", " : "");
        if (r < set->n)
            wb_esc(b, set->r[r].name);
        else
            wb_printf(b, "replica %" PRIu32, r);
    }
}

static void cert_ok(struct wbuf *b, const struct gov_replica_set *set,
                    const Tc__Certificate *c, const char *what)
{
    wb_printf(b,
              "<p class=ok>%s verified: %zu of %" PRIu32
              " replica signatures, quorum %" PRIu32 "</p>",
              what, c->n_votes, set->n, pbft_quorum(set->n));
    wb_puts(b, "<p>Signed by");
    cert_voters(b, set, c);
    if (set->base_height == 0)
        wb_puts(b, "; checked here against the genesis.</p>");
    else
        wb_printf(b,
                  "; checked here against the replica set in force since "
                  "<a href=\"/block/%" PRIu64 "\">block %" PRIu64
                  "</a>, which the genesis reaches through each change.</p>",
                  set->base_height, set->base_height);
}

struct verify_epoch *web_epoch_at(const struct web_ctx *ctx, uint64_t height,
                                  char *why, size_t why_len)
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    struct verify_epoch *ep = malloc(sizeof(*ep));
    int rv = set != NULL && ep != NULL ? LG_OK : LG_ENOMEM;

    if (rv == LG_OK)
        rv = ledger_replica_set_at(ctx->ledger, height, set);
    if (rv == LG_OK)
        verify_epoch_of_set(ctx->genesis->chain_id, set, ep);
    else
        snprintf(why, why_len,
                 "the replica set of block %" PRIu64 " cannot be read: %s",
                 height, lg_strerror(rv));
    free(set);
    if (rv != LG_OK) {
        free(ep);
        return NULL;
    }
    return ep;
}

bool web_verify_block(const struct web_ctx *ctx, const uint8_t *bytes,
                      size_t len, const Tc__Certificate *cert,
                      const uint8_t prev[32], uint64_t height,
                      struct verify_block_info *info, char *why, size_t why_len)
{
    struct verify_epoch *ep = web_epoch_at(ctx, height, why, why_len);
    bool ok;

    if (ep == NULL)
        return false;
    ok = verify_block_walk(ep, bytes, len, cert, prev, height, info, why,
                           why_len);
    free(ep);
    return ok;
}

static void cert_bad(struct wbuf *b, const char *what, const char *why)
{
    wb_printf(b, "<p class=bad>%s DOES NOT VERIFY: ", what);
    wb_esc(b, why);
    wb_puts(b, "</p>");
}

/* cert_ok with the set that certifies block `height`. */
static void cert_ok_at(struct wbuf *b, const struct web_ctx *ctx,
                       uint64_t height, const Tc__Certificate *c)
{
    char why[200];
    struct verify_epoch *ep = web_epoch_at(ctx, height, why, sizeof(why));

    if (ep == NULL) {
        cert_bad(b, "Certificate", why);
        return;
    }
    cert_ok(b, &ep->set, c, "Certificate");
    free(ep);
}

/* ---- block page ----------------------------------------------------------
 */

static void block_txs(struct wbuf *b, const struct web_ctx *ctx,
                      const Tc__Block *blk)
{
    wb_printf(b, "<h2>Transactions (%zu)</h2>", blk->n_txs);
    if (blk->n_txs == 0) {
        wb_puts(b, "<p class=muted>An empty block.</p>");
        return;
    }
    wb_puts(b, "<table><tr><th>#</th><th>Tx</th><th>Type</th><th>Signer</th>"
               "<th>Status</th><th>Reason</th></tr>\n");
    for (size_t i = 0; i < blk->n_txs; i++) {
        struct web_entry e = {0};
        tx_id(blk->txs[i].data, blk->txs[i].len, e.id);
        Tc__SignedTx *st =
            tc__signed_tx__unpack(NULL, blk->txs[i].len, blk->txs[i].data);
        if (st != NULL) {
            e.tx = tc__tx__unpack(NULL, st->body.len, st->body.data);
            tc__signed_tx__free_unpacked(st, NULL);
        }
        if (i < blk->n_results)
            e.res = tc__tx_result__unpack(NULL, blk->results[i].len,
                                          blk->results[i].data);
        struct gov_member gm;
        const struct gov_member *m =
            e.tx && e.tx->signer.len == 32 &&
                    web_member_by_key(ctx, e.tx->signer.data, &gm)
                ? &gm
                : NULL;
        bool rej = e.res == NULL || e.res->status != TC__TX_STATUS__TX_ACCEPTED;
        wb_printf(b, "<tr%s><td>%zu</td><td>", rej ? " class=rejected" : "", i);
        wb_tx_link(b, e.id, 32);
        wb_printf(b, "</td><td>%s</td><td>", web_tx_type(e.tx));
        wb_esc(b, m ? m->name : "unknown");
        wb_printf(b, "</td><td>%s</td><td>", web_tx_status(e.res));
        wb_esc(b, e.res ? e.res->code : "");
        wb_puts(b, "</td></tr>\n");
        if (e.tx != NULL)
            tc__tx__free_unpacked(e.tx, NULL);
        if (e.res != NULL)
            tc__tx_result__free_unpacked(e.res, NULL);
    }
    wb_puts(b, "</table>");
}

/* A change block: the set that certifies the blocks after it. */
static void block_next_replicas(struct wbuf *b, const Tc__ReplicaSet *rs)
{
    dt(b, "New replica set");
    wb_printf(b,
              "%zu replicas (quorum %" PRIu32 ") certify the blocks after "
              "this one: ",
              rs->n_replicas,
              rs->n_replicas >= 1 && rs->n_replicas <= PBFT_MAX_REPLICAS
                  ? pbft_quorum((uint32_t)rs->n_replicas)
                  : 0);
    for (size_t i = 0; i < rs->n_replicas; i++) {
        const Tc__ReplicaInfo *r = rs->replicas[i];
        wb_puts(b, i ? ", " : "");
        if (r == NULL)
            continue;
        wb_esc(b, r->name);
        wb_printf(b,
                  " <span class=muted>(slot %" PRIu32 ", key <span "
                  "class=h>",
                  r->slot);
        wb_hex(b, r->public_key.data,
               r->public_key.len < 8 ? r->public_key.len : 8);
        wb_puts(b, "</span>)</span>");
    }
    wb_puts(b, "</dd>");
}

static void block_header(struct wbuf *b, const Tc__BlockHeader *h,
                         const uint8_t hash[32], uint64_t tip)
{
    wb_puts(b, "<dl>");
    dt_u64(b, "Height", h->height);
    dt_u64(b, "View", h->view);
    dt_time(b, "Time", h->timestamp_ms);
    dt(b, "Block hash");
    wb_puts(b, "<span class=h>");
    wb_hex(b, hash, 32);
    wb_puts(b, "</span></dd>");
    dt(b, "Previous hash");
    wb_puts(b, "<span class=h>");
    wb_hex(b, h->prev_hash.data, h->prev_hash.len);
    wb_puts(b, "</span>");
    if (h->height > 1)
        wb_printf(b, " (<a href=\"/block/%" PRIu64 "\">block %" PRIu64 "</a>)",
                  h->height - 1, h->height - 1);
    else
        wb_puts(b, " (the chain id)");
    wb_puts(b, "</dd>");
    dt_u64(b, "Transactions", h->n_txs);
    dt_hex(b, "Tx root", &h->tx_root);
    dt_hex(b, "Results root", &h->results_root);
    dt_u64(b, "Log size", h->log_size);
    dt_hex(b, "Log root", &h->log_root);
    if (h->next_replicas != NULL)
        block_next_replicas(b, h->next_replicas);
    wb_puts(b, "</dl><p>");
    if (h->height > 1)
        wb_printf(b, "<a href=\"/block/%" PRIu64 "\">&larr; previous</a> ",
                  h->height - 1);
    if (h->height < tip)
        wb_printf(b, "<a href=\"/block/%" PRIu64 "\">next &rarr;</a>",
                  h->height + 1);
    wb_puts(b, "</p>");
}

int web_page_block(const struct web_ctx *ctx, uint64_t height,
                   struct web_page *out)
{
    struct ledger_tip tip;
    ledger_tip(ctx->ledger, &tip);
    if (height == 0 || height > tip.height)
        return web_error_page(ctx, 404, "Block not found",
                              "The ledger has no block at this height.", out);
    uint8_t *bytes = NULL, prev[32];
    size_t len = 0;
    int rv = ledger_get_block(ctx->ledger, height, &bytes, &len);
    if (rv != LG_OK)
        return web_error_page(ctx, rv == LG_ENOTFOUND ? 404 : 500,
                              "Block not readable", lg_strerror(rv), out);
    Tc__Block *blk = tc__block__unpack(NULL, len, bytes);
    Tc__BlockHeader *h =
        blk ? tc__block_header__unpack(NULL, blk->header.len, blk->header.data)
            : NULL;
    struct wbuf b = {0};
    char title[48];
    snprintf(title, sizeof(title), "Block %" PRIu64, height);
    web_page_begin(&b, ctx, title);
    wb_printf(&b, "<h1>Block %" PRIu64 "</h1>", height);
    if (h == NULL) {
        cert_bad(&b, "Block", "the stored block does not decode");
    } else {
        Tc__Certificate *cert = NULL;
        char why[256] = "";
        uint8_t hash[32];
        crypto_sha256(blk->header.data, blk->header.len, hash);
        int crv = ledger_get_cert(ctx->ledger, height, &cert);
        bool have_prev =
            ledger_block_hash(ctx->ledger, height - 1, prev) == LG_OK;
        if (crv == LG_ENOTFOUND)
            wb_puts(&b, "<p class=muted>Not certified yet: the replicas' "
                        "signatures have not arrived.</p>");
        else if (crv != LG_OK)
            cert_bad(&b, "Certificate", lg_strerror(crv));
        else if (web_verify_block(ctx, bytes, len, cert,
                                  have_prev ? prev : NULL, height, NULL, why,
                                  sizeof(why)))
            cert_ok_at(&b, ctx, height, cert);
        else
            cert_bad(&b, "Certificate", why);
        block_header(&b, h, hash, tip.height);
        block_txs(&b, ctx, blk);
        if (cert != NULL)
            tc__certificate__free_unpacked(cert, NULL);
    }
    web_page_end(&b);
    if (h != NULL)
        tc__block_header__free_unpacked(h, NULL);
    if (blk != NULL)
        tc__block__free_unpacked(blk, NULL);
    free(bytes);
    return web_finish(&b, 200, "text/html; charset=utf-8", out);
}

/* ---- tx page -------------------------------------------------------------
 */

static void tx_receipt(struct wbuf *b, const struct web_ctx *ctx,
                       const uint8_t id[32])
{
    Tc__Receipt *r = NULL;
    int rv = ledger_receipt(ctx->ledger, id, &r);
    if (rv == LG_ENOTREADY) {
        wb_puts(b, "<p class=muted>Its block is not certified yet: no "
                   "receipt.</p>");
        return;
    }
    if (rv != LG_OK) {
        cert_bad(b, "Receipt", lg_strerror(rv));
        return;
    }
    struct verify_receipt_info info;
    char why[256] = "";
    if (!verify_receipt(ctx->genesis, r, &info, why, sizeof(why))) {
        cert_bad(b, "Receipt", why);
    } else if (memcmp(info.tx_id, id, 32) != 0) {
        cert_bad(b, "Receipt", "it is for another transaction");
    } else {
        cert_ok_at(b, ctx, info.height, r->cert);
        wb_printf(b,
                  "<p class=ok>Receipt verified: transaction %" PRIu32
                  " of block %" PRIu64 ", leaf %" PRIu64
                  " of the log of %" PRIu64 " transactions (root <span "
                  "class=h>",
                  info.block_index, info.height, info.log_index, info.log_size);
        wb_hex(b, info.log_root, 8);
        wb_puts(b, "</span>).</p>");
    }
    tc__receipt__free_unpacked(r, NULL);
}

static void tx_summary(struct wbuf *b, const struct web_ctx *ctx,
                       const Tc__LedgerEntry *le, const Tc__Tx *tx,
                       const Tc__TxResult *res, const struct ledger_tx_loc *l)
{
    wb_puts(b, "<dl>");
    dt_text(b, "Type", web_tx_type(tx));
    dt(b, "Block");
    wb_printf(b,
              "<a href=\"/block/%" PRIu64 "\">%" PRIu64 "</a>, index %" PRIu32
              ", log index %" PRIu64 "</dd>",
              l->height, l->height, l->index, l->log_index);
    dt_time(b, "Block time", le->time_ms);
    struct gov_member gm;
    const struct gov_member *m =
        tx && tx->signer.len == 32 &&
                web_member_by_key(ctx, tx->signer.data, &gm)
            ? &gm
            : NULL;
    dt(b, "Signer");
    if (m != NULL) {
        wb_esc(b, m->name);
        wb_puts(b, " (");
        wb_esc(b, role_name(m->role));
        wb_puts(b, ", ");
        wb_esc(b, m->organisation);
        wb_puts(b, ")");
    } else {
        wb_puts(b, "<span class=bad>not a member</span>");
    }
    wb_puts(b, "</dd>");
    if (tx != NULL) {
        dt_hex(b, "Signer key", &tx->signer);
        dt_u64(b, "Nonce", tx->nonce);
        dt_time(b, "Client time", tx->client_time_ms);
    }
    dt(b, "Status");
    if (res != NULL && res->status == TC__TX_STATUS__TX_ACCEPTED) {
        wb_puts(b, "<span class=ok>accepted</span></dd>");
    } else {
        wb_printf(b, "<span class=bad>%s</span> <code>", web_tx_status(res));
        wb_esc(b, res ? res->code : "");
        wb_puts(b, "</code> ");
        wb_esc(b, res ? res->message : "the result does not decode");
        wb_puts(b, "</dd>");
    }
    wb_puts(b, "</dl>");
}

int web_page_tx(const struct web_ctx *ctx, const uint8_t id[32],
                struct web_page *out)
{
    struct ledger_tx_loc loc;
    int rv = ledger_find_tx(ctx->ledger, id, &loc);
    if (rv == LG_ENOTFOUND)
        return web_error_page(ctx, 404, "Transaction not found",
                              "No transaction with this id is on the "
                              "ledger.",
                              out);
    Tc__LedgerEntry le = TC__LEDGER_ENTRY__INIT;
    if (rv == LG_OK)
        rv = ledger_entry(ctx->ledger, loc.log_index, &le);
    if (rv != LG_OK)
        return web_error_page(ctx, 500, "Transaction not readable",
                              lg_strerror(rv), out);
    struct web_entry e = {0};
    tx_id(le.signed_tx.data, le.signed_tx.len, e.id);
    Tc__SignedTx *st =
        tc__signed_tx__unpack(NULL, le.signed_tx.len, le.signed_tx.data);
    if (st != NULL) {
        e.tx = tc__tx__unpack(NULL, st->body.len, st->body.data);
        tc__signed_tx__free_unpacked(st, NULL);
    }
    e.res = tc__tx_result__unpack(NULL, le.result.len, le.result.data);
    struct wbuf b = {0};
    web_page_begin(&b, ctx, "Transaction");
    wb_puts(&b, "<h1>Transaction</h1><p class=h>");
    wb_hex(&b, id, 32);
    wb_puts(&b, "</p>");
    if (memcmp(e.id, id, 32) != 0)
        cert_bad(&b, "Stored transaction", "its bytes hash to another id");
    tx_receipt(&b, ctx, id);
    tx_summary(&b, ctx, &le, e.tx, e.res, &loc);
    wb_printf(&b, "<h2>%s</h2>", web_tx_type(e.tx));
    if (e.tx != NULL)
        tx_body(&b, e.tx);
    else
        wb_puts(&b, "<p class=bad>The stored bytes do not decode.</p>");
    web_page_end(&b);
    if (e.tx != NULL)
        tc__tx__free_unpacked(e.tx, NULL);
    if (e.res != NULL)
        tc__tx_result__free_unpacked(e.res, NULL);
    ledger_entry_clear(&le);
    return web_finish(&b, 200, "text/html; charset=utf-8", out);
}
