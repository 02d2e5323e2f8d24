/*
 * web_trial.c - a trial's entries loaded once, the audit hook, the trial
 * page (timeline, consent chart, findings) and the audit-trail exports.
 */
#include "tx.h"
#include "verify.h"
#include "web_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Rows shown per timeline section; the exports hold every entry. */
#define WEB_ROWS_MAX 200
/* Protocol versions shown with their outcome lists (up to 200 each). */
#define WEB_VERSIONS_MAX 50
/* Sites drawn as their own line in the consent chart. */
#define CHART_SITES_MAX 8

/* ---- loading -------------------------------------------------------------
 */

static void entry_decode(struct web_entry *e)
{
    const Tc__LedgerEntry *le = &e->le;
    tx_id(le->signed_tx.data, le->signed_tx.len, e->id);
    Tc__SignedTx *st =
        tc__signed_tx__unpack(NULL, le->signed_tx.len, le->signed_tx.data);
    if (st != NULL) {
        e->tx = tc__tx__unpack(NULL, st->body.len, st->body.data);
        tc__signed_tx__free_unpacked(st, NULL);
    }
    e->res = tc__tx_result__unpack(NULL, le->result.len, le->result.data);
}

int web_trial_load(const struct web_ctx *ctx, const char *id,
                   struct web_trial *t)
{
    memset(t, 0, sizeof(*t));
    tc__trial_summary__init(&t->sum);
    snprintf(t->id, sizeof(t->id), "%s", id);
    int rv = registry_trial_summary(ctx->registry, ctx->store, id, &t->sum);
    t->has_sum = rv == LG_OK;
    if (rv != LG_OK)
        return rv;
    uint64_t *idx = malloc(WEB_TRIAL_ENTRIES_MAX * sizeof(*idx));
    if (idx == NULL)
        return LG_ENOMEM;
    size_t n = 0;
    rv = registry_trial_entries(ctx->registry, ctx->store, id, 0,
                                WEB_TRIAL_ENTRIES_MAX, idx, &n, &t->total);
    if (rv == LG_OK && n > WEB_TRIAL_ENTRIES_MAX)
        rv = LG_ECORRUPT;
    if (rv == LG_OK) {
        t->e = calloc(n ? n : 1, sizeof(*t->e));
        if (t->e == NULL)
            rv = LG_ENOMEM;
    }
    for (size_t i = 0; rv == LG_OK && i < n; i++) {
        rv = ledger_entry(ctx->ledger, idx[i], &t->e[i].le);
        if (rv != LG_OK)
            break;
        t->n = i + 1;
        entry_decode(&t->e[i]);
    }
    free(idx);
    return rv;
}

void web_trial_free(struct web_trial *t)
{
    for (size_t i = 0; i < t->n; i++) {
        ledger_entry_clear(&t->e[i].le);
        if (t->e[i].tx != NULL)
            tc__tx__free_unpacked(t->e[i].tx, NULL);
        if (t->e[i].res != NULL)
            tc__tx_result__free_unpacked(t->e[i].res, NULL);
    }
    free(t->e);
    registry_trial_summary_clear(&t->sum);
    memset(t, 0, sizeof(*t));
}

static bool entry_rejected(const struct web_entry *e)
{
    return e->res == NULL || e->res->status != TC__TX_STATUS__TX_ACCEPTED;
}

/* ---- audit ---------------------------------------------------------------
 */

/* The audit stands at the last certified block, checked here with the
 * genesis (as `trialchain audit` does); before any certificate, at the
 * tip with the reason it is not certified. */
static void audit_tip(const struct web_ctx *ctx, struct audit_tip *at,
                      char *why, size_t why_len, bool *verified)
{
    struct ledger_tip tip;
    ledger_tip(ctx->ledger, &tip);
    *verified = false;
    *at = (struct audit_tip){
        .height = tip.height, .time_ms = tip.time_ms, .log_size = tip.log_size};
    memcpy(at->log_root, tip.log_root, 32);
    if (tip.last_certified == 0) {
        snprintf(why, why_len, "no block is certified yet");
        return;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    Tc__Certificate *cert = NULL;
    struct verify_block_info info;
    snprintf(why, why_len, "block %" PRIu64 " cannot be read",
             tip.last_certified);
    if (ledger_get_block(ctx->ledger, tip.last_certified, &bytes, &len) ==
            LG_OK &&
        ledger_get_cert(ctx->ledger, tip.last_certified, &cert) == LG_OK &&
        web_verify_block(ctx, bytes, len, cert, NULL, tip.last_certified, &info,
                         why, why_len)) {
        *at = (struct audit_tip){.height = info.height,
                                 .time_ms = info.time_ms,
                                 .log_size = info.log_size};
        memcpy(at->log_root, info.log_root, 32);
        *verified = true;
    }
    free(bytes);
    if (cert != NULL)
        tc__certificate__free_unpacked(cert, NULL);
}

int web_trial_audit(const struct web_ctx *ctx, const struct web_trial *t,
                    struct audit_report *r, bool *have)
{
    *have = false;
    memset(r, 0, sizeof(*r));
    if (ctx->audit_run == NULL || ctx->audit_free == NULL || t->total > t->n)
        return LG_OK;
    char why[256];
    bool verified;
    struct audit_input in = {.trial_id = t->id};
    audit_tip(ctx, &in.tip, why, sizeof(why), &verified);
    in.tip_error = verified ? NULL : why;
    struct audit_entry *ae = calloc(t->n ? t->n : 1, sizeof(*ae));
    if (ae == NULL)
        return LG_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < t->n && t->e[i].le.height <= in.tip.height; i++) {
        const struct web_entry *e = &t->e[i];
        struct audit_entry *a = &ae[n++];
        a->tx = e->tx;
        a->rejected = entry_rejected(e);
        a->code = e->res ? e->res->code : "";
        a->message = e->res ? e->res->message : NULL;
        a->height = e->le.height;
        a->time_ms = e->le.time_ms;
        a->log_index = e->le.log_index;
        memcpy(a->tx_id, e->id, 32);
        a->signer_name = e->le.signer_name;
        struct gov_member m;
        if (e->tx != NULL && e->tx->signer.len == 32)
            a->signer_role = web_member_by_key(ctx, e->tx->signer.data, &m)
                                 ? m.role
                                 : ROLE_NONE;
        /* receipts are checked one by one on each /tx page */
        a->proof = AUDIT_PROOF_UNCHECKED;
    }
    in.entries = ae;
    in.n_entries = n;
    int rv = ctx->audit_run(&in, r);
    free(ae);
    if (rv != LG_OK) {
        ctx->audit_free(r);
        return rv;
    }
    *have = true;
    return LG_OK;
}

static bool evidence_has(const struct audit_finding *f, const uint8_t id[32])
{
    for (size_t k = 0; k < f->n_evidence; k++)
        if (memcmp(f->evidence[k].tx_id, id, 32) == 0)
            return true;
    return false;
}

/* Check ids of the findings (not notes) that cite this tx, as tags. */
static void wb_flags(struct wbuf *b, const struct audit_report *r,
                     const uint8_t id[32])
{
    for (size_t i = 0; r != NULL && i < r->n_items; i++) {
        const struct audit_finding *f = &r->items[i];
        if (f->severity == AUDIT_INFO)
            continue;
        bool seen = false; /* one flag per check id */
        for (size_t j = 0; j < i && !seen; j++)
            seen = r->items[j].severity != AUDIT_INFO &&
                   strcmp(r->items[j].check, f->check) == 0 &&
                   evidence_has(&r->items[j], id);
        if (seen || !evidence_has(f, id))
            continue;
        wb_printf(b, " <a class=\"flag %s\" href=\"#f%zu\">&#9873; ",
                  web_severity(f->severity), i);
        wb_esc(b, f->check);
        wb_puts(b, "</a>");
    }
}

/* ---- sections ------------------------------------------------------------
 */

static void wb_block_link(struct wbuf *b, uint64_t h)
{
    wb_printf(b, "<a href=\"/block/%" PRIu64 "\">%" PRIu64 "</a>", h, h);
}

static void wb_bin(struct wbuf *b, const ProtobufCBinaryData *d)
{
    if (d->len == 0) {
        wb_puts(b, "<span class=muted>none</span>");
        return;
    }
    wb_puts(b, "<span class=h>");
    wb_hex(b, d->data, d->len);
    wb_puts(b, "</span>");
}

static const char *outcome_type(Tc__OutcomeType t)
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

static void outcomes_table(struct wbuf *b, Tc__Outcome **o, size_t n)
{
    wb_puts(b, "<table><tr><th>Id</th><th>Type</th><th>Measure</th>"
               "<th>Time frame</th></tr>");
    for (size_t i = 0; i < n; i++) {
        wb_puts(b, "<tr><td>");
        wb_esc(b, o[i]->id);
        wb_printf(b, "</td><td>%s</td><td>", outcome_type(o[i]->type));
        wb_esc(b, o[i]->measure);
        wb_puts(b, "</td><td>");
        wb_esc(b, o[i]->time_frame);
        wb_puts(b, "</td></tr>");
    }
    wb_puts(b, "</table>");
}

/* When, block, tx (with finding flags), signer: the first cells of a row. */
/* Closes a table that shows `shown` of `n` rows; the rest are in the
 * trial's audit trail export. */
static void table_end(struct wbuf *b, size_t shown, size_t n)
{
    wb_puts(b, "</table>");
    if (shown < n)
        wb_printf(b,
                  "<p class=muted>%zu more in the <a href=\"audit.csv\">"
                  "audit trail</a>.</p>",
                  n - shown);
}

static void row_start(struct wbuf *b, const struct web_entry *e,
                      const struct audit_report *r)
{
    wb_puts(b, entry_rejected(e) ? "<tr class=rejected><td>" : "<tr><td>");
    wb_time(b, e->le.time_ms);
    wb_puts(b, "</td><td>");
    wb_block_link(b, e->le.height);
    wb_puts(b, "</td><td>");
    wb_tx_link(b, e->id, 32);
    wb_flags(b, r, e->id);
    wb_puts(b, "</td><td>");
    wb_esc(b, e->le.signer_name);
    wb_puts(b, "</td><td>");
}

static void versions_section(struct wbuf *b, const struct web_trial *t,
                             const struct audit_report *r)
{
    wb_puts(b, "<h2 id=versions>Protocol versions</h2>");
    size_t shown = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct web_entry *e = &t->e[i];
        if (e->tx == NULL || entry_rejected(e) ||
            (e->tx->body_case != TC__TX__BODY_PROTOCOL_REGISTER &&
             e->tx->body_case != TC__TX__BODY_PROTOCOL_AMEND))
            continue;
        if (shown == WEB_VERSIONS_MAX) {
            wb_printf(b,
                      "<p class=muted>Versions after the first %d are in the "
                      "<a href=\"audit.csv\">audit trail</a>.</p>",
                      WEB_VERSIONS_MAX);
            break;
        }
        Tc__Outcome **oc;
        size_t n_oc;
        const ProtobufCBinaryData *doc;
        if (e->tx->body_case == TC__TX__BODY_PROTOCOL_REGISTER) {
            const Tc__ProtocolRegister *p = e->tx->protocol_register;
            wb_puts(b, "<h3>Version 1 (registered)</h3><dl><dt>Title</dt><dd>");
            wb_esc(b, p->brief_title);
            wb_puts(b, "</dd><dt>Official title</dt><dd>");
            wb_esc(b, p->official_title);
            wb_puts(b, "</dd><dt>Sponsor</dt><dd>");
            wb_esc(b, p->sponsor_name);
            wb_puts(b, "</dd><dt>Phase, type</dt><dd>");
            wb_esc(b, p->phase);
            wb_puts(b, ", ");
            wb_esc(b, p->study_type);
            wb_printf(b,
                      "</dd><dt>Enrolment</dt><dd>%" PRIu32
                      "</dd><dt>Start, primary completion</dt><dd>",
                      p->enrollment);
            wb_esc(b, p->start_date);
            wb_puts(b, ", ");
            wb_esc(b, p->primary_completion_date);
            wb_puts(b, "</dd><dt>Source</dt><dd>");
            wb_esc(b, p->source);
            if (p->registry_first_submitted[0] != '\0') {
                wb_puts(b, ", first submitted ");
                wb_esc(b, p->registry_first_submitted);
            }
            oc = p->outcomes;
            n_oc = p->n_outcomes;
            doc = &p->protocol_doc_hash;
        } else if (e->tx->body_case == TC__TX__BODY_PROTOCOL_AMEND) {
            const Tc__ProtocolAmend *a = e->tx->protocol_amend;
            wb_printf(b,
                      "<h3>Version %" PRIu32 " (amendment)</h3><dl>"
                      "<dt>Reason</dt><dd>",
                      a->version);
            wb_esc(b, a->reason);
            oc = a->outcomes;
            n_oc = a->n_outcomes;
            doc = &a->protocol_doc_hash;
        } else {
            continue;
        }
        wb_puts(b, "</dd><dt>Protocol document</dt><dd>");
        wb_bin(b, doc);
        wb_puts(b, "</dd><dt>Recorded</dt><dd>");
        wb_time(b, e->le.time_ms);
        wb_puts(b, ", block ");
        wb_block_link(b, e->le.height);
        wb_puts(b, ", tx ");
        wb_tx_link(b, e->id, 32);
        wb_flags(b, r, e->id);
        wb_puts(b, "</dd></dl>");
        outcomes_table(b, oc, n_oc);
        shown++;
    }
    if (shown == 0)
        wb_puts(b, "<p class=muted>None.</p>");
}

static const char *ethics_action(Tc__EthicsAction a)
{
    switch (a) {
    case TC__ETHICS_ACTION__ETHICS_APPROVE:
        return "approve";
    case TC__ETHICS_ACTION__ETHICS_SUSPEND:
        return "suspend";
    case TC__ETHICS_ACTION__ETHICS_TERMINATE:
        return "terminate";
    default:
        return "unspecified";
    }
}

static bool has_scope(const Tc__Consent *c, const char *scope)
{
    for (size_t i = 0; i < c->n_scopes; i++)
        if (strcmp(c->scopes[i], scope) == 0)
            return true;
    return false;
}

/* The "What" cell of an accepted entry, by type. */
static void what_cell(struct wbuf *b, const Tc__Tx *tx)
{
    switch (tx->body_case) {
    case TC__TX__BODY_ETHICS:
        wb_printf(b, "%s version %" PRIu32 ": ",
                  ethics_action(tx->ethics->action), tx->ethics->version);
        wb_esc(b, tx->ethics->note);
        break;
    case TC__TX__BODY_SITE_AUTHORIZE:
        wb_puts(b, tx->site_authorize->revoke ? "revoke " : "authorize ");
        wb_esc(b, tx->site_authorize->site);
        break;
    case TC__TX__BODY_CONSENT: {
        const Tc__Consent *c = tx->consent;
        wb_puts(b, c->action == TC__CONSENT_ACTION__CONSENT_WITHDRAW
                       ? "withdraw"
                       : "record");
        wb_printf(b, " v%" PRIu32 " <span class=h>", c->protocol_version);
        wb_hex(b, c->pseudonym.data,
               c->pseudonym.len < 8 ? c->pseudonym.len : 8);
        wb_puts(b, "</span>");
        for (size_t i = 0; i < c->n_scopes; i++) {
            wb_puts(b, i ? ", " : " ");
            wb_esc(b, c->scopes[i]);
        }
        break;
    }
    case TC__TX__BODY_DATASET_REGISTER: {
        const Tc__DatasetRegister *d = tx->dataset_register;
        wb_esc(b, d->dataset_id);
        wb_printf(b,
                  ": %" PRIu64 " bytes, %" PRIu64 " records, %zu "
                  "participants, ",
                  d->size_bytes, d->record_count, d->n_participants);
        wb_esc(b, d->anonymization);
        wb_puts(b, "; sha256 ");
        wb_bin(b, &d->sha256);
        break;
    }
    case TC__TX__BODY_ACCESS_GRANT: {
        const Tc__AccessGrant *g = tx->access_grant;
        wb_esc(b, g->dataset_id);
        wb_puts(b, " to ");
        wb_esc(b, g->grantee);
        wb_puts(b, " for ");
        wb_esc(b, g->purpose);
        wb_puts(b, ", expires ");
        wb_time(b, g->expires_ms);
        break;
    }
    case TC__TX__BODY_ACCESS_REVOKE:
        wb_puts(b, "grant ");
        wb_tx_link(b, tx->access_revoke->grant_tx.data,
                   tx->access_revoke->grant_tx.len);
        wb_puts(b, ": ");
        wb_esc(b, tx->access_revoke->reason);
        break;
    case TC__TX__BODY_ACCESS_EVENT:
        wb_puts(b, "under grant ");
        wb_tx_link(b, tx->access_event->grant_tx.data,
                   tx->access_event->grant_tx.len);
        wb_puts(b, " for ");
        wb_esc(b, tx->access_event->purpose);
        wb_puts(b, "; file ");
        wb_bin(b, &tx->access_event->file_sha256);
        break;
    case TC__TX__BODY_ATTESTATION: {
        const Tc__AuditAttestation *a = tx->attestation;
        wb_printf(b,
                  "at height %" PRIu64 ", %" PRIu32 " finding(s): ", a->height,
                  a->n_findings);
        wb_esc(b, a->summary);
        break;
    }
    default:
        wb_esc(b, web_tx_type(tx));
    }
}

/* A table of the accepted entries of one body type. */
static void entries_section(struct wbuf *b, const struct web_trial *t,
                            const struct audit_report *r, const char *anchor,
                            const char *title, Tc__Tx__BodyCase which)
{
    size_t n = 0, shown = 0;
    for (size_t i = 0; i < t->n; i++)
        n += t->e[i].tx != NULL && !entry_rejected(&t->e[i]) &&
             t->e[i].tx->body_case == which;
    wb_printf(b, "<h2 id=%s>", anchor);
    wb_esc(b, title);
    wb_printf(b, " (%zu)</h2>", n);
    if (n == 0) {
        wb_puts(b, "<p class=muted>None.</p>");
        return;
    }
    wb_puts(b, "<table><tr><th>When</th><th>Block</th><th>Tx</th><th>By</th>"
               "<th>What</th></tr>\n");
    for (size_t i = 0; i < t->n && shown < WEB_ROWS_MAX; i++) {
        const struct web_entry *e = &t->e[i];
        if (e->tx == NULL || entry_rejected(e) || e->tx->body_case != which)
            continue;
        row_start(b, e, r);
        what_cell(b, e->tx);
        wb_puts(b, "</td></tr>\n");
        shown++;
    }
    table_end(b, shown, n);
}

static void results_section(struct wbuf *b, const struct web_trial *t,
                            const struct audit_report *r)
{
    wb_puts(b, "<h2 id=results>Results</h2>");
    size_t shown = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct web_entry *e = &t->e[i];
        if (e->tx == NULL || entry_rejected(e) ||
            e->tx->body_case != TC__TX__BODY_RESULTS_REGISTER)
            continue;
        const Tc__ResultsRegister *res = e->tx->results_register;
        wb_puts(b, "<dl><dt>Recorded</dt><dd>");
        wb_time(b, e->le.time_ms);
        wb_puts(b, ", block ");
        wb_block_link(b, e->le.height);
        wb_puts(b, ", tx ");
        wb_tx_link(b, e->id, 32);
        wb_flags(b, r, e->id);
        wb_puts(b, "</dd><dt>Primary completion</dt><dd>");
        wb_esc(b, res->actual_primary_completion_date);
        wb_puts(b, "</dd><dt>Datasets used</dt><dd>");
        for (size_t k = 0; k < res->n_datasets_used; k++) {
            wb_puts(b, k ? ", " : "");
            wb_esc(b, res->datasets_used[k]);
        }
        wb_puts(b, "</dd><dt>Document</dt><dd>");
        wb_bin(b, &res->results_doc_hash);
        wb_puts(b, "</dd></dl><table><tr><th>Outcome</th><th>Type</th>"
                   "<th>Measure</th><th>Time frame</th></tr>");
        for (size_t k = 0; k < res->n_outcomes; k++) {
            const Tc__ReportedOutcome *o = res->outcomes[k];
            wb_puts(b, "<tr><td>");
            if (o->not_prespecified)
                wb_puts(b, "<em>not pre-specified</em> ");
            wb_esc(b, o->outcome_id);
            wb_printf(b, "</td><td>%s</td><td>", outcome_type(o->type));
            wb_esc(b, o->measure);
            wb_puts(b, "</td><td>");
            wb_esc(b, o->time_frame);
            wb_puts(b, "</td></tr>");
        }
        wb_puts(b, "</table>");
        shown++;
    }
    if (shown == 0)
        wb_puts(b, "<p class=muted>None registered.</p>");
}

static void rejected_section(struct wbuf *b, const struct web_trial *t,
                             const struct audit_report *r)
{
    size_t n = 0, shown = 0;
    for (size_t i = 0; i < t->n; i++)
        n += entry_rejected(&t->e[i]);
    wb_printf(b, "<h2 id=rejected>Rejected attempts (%zu)</h2>", n);
    if (n == 0) {
        wb_puts(b, "<p class=muted>None.</p>");
        return;
    }
    wb_puts(b, "<table><tr><th>When</th><th>Block</th><th>Tx</th><th>By</th>"
               "<th>Attempt</th><th>Refused as</th></tr>\n");
    for (size_t i = 0; i < t->n && shown < WEB_ROWS_MAX; i++) {
        const struct web_entry *e = &t->e[i];
        if (!entry_rejected(e))
            continue;
        row_start(b, e, r);
        wb_esc(b, web_tx_type(e->tx));
        wb_puts(b, "</td><td><code>");
        wb_esc(b, e->res ? e->res->code : "undecodable result");
        wb_puts(b, "</code> ");
        wb_esc(b, e->res ? e->res->message : "");
        wb_puts(b, "</td></tr>\n");
        shown++;
    }
    table_end(b, shown, n);
}

static void findings_section(struct wbuf *b, const struct web_trial *t,
                             const struct audit_report *r, bool have)
{
    wb_puts(b, "<h2 id=findings>Audit findings</h2>");
    if (!have) {
        wb_puts(b, t->total > t->n
                       ? "<p class=muted>This trial has too many entries to "
                         "audit here; run <code>trialchain audit</code>.</p>"
                       : "<p class=muted>The audit is not available on this "
                         "node.</p>");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->n_items; i++)
        n += r->items[i].severity > AUDIT_INFO;
    wb_printf(b, "<p>At block %" PRIu64 " (", r->tip.height);
    wb_time(b, r->tip.time_ms);
    wb_printf(b, "), %zu entries: ", t->n);
    if (n == 0)
        wb_puts(b, "<span class=ok>no findings</span>.</p>");
    else
        wb_printf(b, "<span class=bad>%zu finding(s)</span>.</p>", n);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            wb_puts(b, "<details><summary>Notes</summary>");
        for (size_t i = 0; i < r->n_items; i++) {
            const struct audit_finding *f = &r->items[i];
            if ((f->severity == AUDIT_INFO) != (pass == 1))
                continue;
            wb_printf(b,
                      "<div class=\"finding %s\" id=f%zu><span class=sev>%s"
                      "</span> <code>",
                      web_severity(f->severity), i, web_severity(f->severity));
            wb_esc(b, f->check);
            wb_puts(b, "</code><p>");
            wb_esc(b, f->sentence);
            wb_puts(b, "</p><p class=muted>Rule: ");
            wb_esc(b, f->rule);
            wb_puts(b, "</p>");
            if (f->n_evidence > 0)
                wb_puts(b, "<p>Evidence:");
            for (size_t k = 0; k < f->n_evidence; k++) {
                const struct audit_evidence *ev = &f->evidence[k];
                wb_puts(b, k ? "; " : " ");
                wb_tx_link(b, ev->tx_id, 32);
                wb_puts(b, " (block ");
                wb_block_link(b, ev->height);
                if (ev->note[0] != '\0') {
                    wb_puts(b, ", ");
                    wb_esc(b, ev->note);
                }
                wb_puts(b, ")");
            }
            if (f->n_evidence_omitted > 0)
                wb_printf(b, " and %zu more", f->n_evidence_omitted);
            if (f->n_evidence > 0)
                wb_puts(b, "</p>");
            wb_puts(b, "</div>");
        }
        if (pass == 1)
            wb_puts(b, "</details>");
    }
}

/* ---- consent chart -------------------------------------------------------
 */

struct chart_point {
    uint64_t height;
    uint32_t count;
};

struct chart_line {
    char site[GENESIS_NAME_MAX];
    struct chart_point *p;
    size_t n, cap;
    uint32_t count;
};

struct chart {
    struct chart_line line[CHART_SITES_MAX + 1]; /* last: other sites */
    size_t n_lines;
    /* open addressing over pseudonyms: slot -> entry index + 1 */
    uint32_t *slot;
    size_t n_slots;
    bool *active; /* per entry index that owns a slot */
    uint8_t *line_of;
    uint32_t max;
    bool failed;
};

static size_t chart_line_of(struct chart *c, const char *site)
{
    for (size_t i = 0; i < c->n_lines; i++)
        if (strcmp(c->line[i].site, site) == 0)
            return i;
    if (c->n_lines < CHART_SITES_MAX) {
        snprintf(c->line[c->n_lines].site, GENESIS_NAME_MAX, "%s", site);
        return c->n_lines++;
    }
    snprintf(c->line[CHART_SITES_MAX].site, GENESIS_NAME_MAX, "other sites");
    return CHART_SITES_MAX;
}

static void chart_add(struct chart *c, size_t li, uint64_t height, int delta)
{
    struct chart_line *l = &c->line[li];
    if (delta < 0 && l->count == 0)
        return;
    l->count = delta > 0 ? l->count + 1 : l->count - 1;
    if (l->count > c->max)
        c->max = l->count;
    if (l->n > 0 && l->p[l->n - 1].height == height) {
        l->p[l->n - 1].count = l->count;
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct chart_point *p = realloc(l->p, cap * sizeof(*p));
        if (p == NULL) {
            c->failed = true;
            return;
        }
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = (struct chart_point){height, l->count};
}

/* The slot of pseudonym p (32 bytes) among the entries; *fresh when new. */
static size_t chart_slot(struct chart *c, const struct web_trial *t,
                         const uint8_t *p, size_t entry, bool *fresh)
{
    uint64_t h;
    memcpy(&h, p, sizeof(h)); /* keyed HMAC output: already uniform */
    size_t i = (size_t)(h & (c->n_slots - 1));
    for (;;) {
        uint32_t s = c->slot[i];
        if (s == 0) {
            c->slot[i] = (uint32_t)entry + 1;
            *fresh = true;
            return entry;
        }
        const Tc__Consent *o = t->e[s - 1].tx->consent;
        if (memcmp(o->pseudonym.data, p, 32) == 0) {
            *fresh = false;
            return s - 1;
        }
        i = (i + 1) & (c->n_slots - 1);
    }
}

/* Replays accepted consents: a record with PARTICIPATION puts the
 * participant in force at its site, a withdrawal of all scopes or of
 * PARTICIPATION takes them out (the registry's rules, registry.h). */
static void chart_build(struct chart *c, const struct web_trial *t)
{
    memset(c, 0, sizeof(*c));
    c->n_slots = 16;
    while (c->n_slots < 2 * t->n + 2)
        c->n_slots *= 2;
    c->slot = calloc(c->n_slots, sizeof(*c->slot));
    c->active = calloc(t->n ? t->n : 1, sizeof(*c->active));
    c->line_of = calloc(t->n ? t->n : 1, sizeof(*c->line_of));
    if (c->slot == NULL || c->active == NULL || c->line_of == NULL) {
        c->failed = true;
        return;
    }
    for (size_t i = 0; i < t->n && !c->failed; i++) {
        const struct web_entry *e = &t->e[i];
        if (e->tx == NULL || entry_rejected(e) ||
            e->tx->body_case != TC__TX__BODY_CONSENT ||
            e->tx->consent->pseudonym.len != 32)
            continue;
        const Tc__Consent *cs = e->tx->consent;
        bool fresh;
        size_t k = chart_slot(c, t, cs->pseudonym.data, i, &fresh);
        if (fresh)
            c->line_of[k] = (uint8_t)chart_line_of(c, e->le.signer_name);
        bool on;
        if (cs->action == TC__CONSENT_ACTION__CONSENT_WITHDRAW)
            on = cs->n_scopes == 0 || has_scope(cs, "PARTICIPATION")
                     ? false
                     : c->active[k];
        else
            on = has_scope(cs, "PARTICIPATION") ? true : c->active[k];
        if (on != c->active[k])
            chart_add(c, c->line_of[k], e->le.height, on ? 1 : -1);
        c->active[k] = on;
    }
}

static void chart_free(struct chart *c)
{
    for (size_t i = 0; i <= CHART_SITES_MAX; i++)
        free(c->line[i].p);
    free(c->slot);
    free(c->active);
    free(c->line_of);
}

static const char *const chart_colors[CHART_SITES_MAX + 1] = {
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};

#define CW 720
#define CH 240
#define CL 50 /* left margin */
#define CR 20
#define CT 15
#define CB 40

static double chart_x(uint64_t h, uint64_t h0, uint64_t h1)
{
    return CL + (double)(h - h0) * (CW - CL - CR) / (double)(h1 - h0);
}

static double chart_y(uint32_t v, uint32_t max)
{
    return CT + (CH - CT - CB) * (1.0 - (double)v / max);
}

/* x runs over block heights h0..h1 (block times t0_ms, t1_ms). */
static void chart_svg(struct wbuf *b, const struct chart *c, uint64_t h0,
                      uint64_t t0_ms, uint64_t h1, uint64_t t1_ms)
{
    char d0[32], d1[32];
    web_fmt_time(t0_ms, d0);
    web_fmt_time(t1_ms, d1);
    d0[10] = d1[10] = '\0'; /* the date */
    uint32_t max = c->max ? c->max : 1;
    if (h1 <= h0)
        h1 = h0 + 1;
    wb_printf(
        b,
        "<svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
        "aria-label=\"Active consents per site by block height\">",
        CW, CH, CW, CH);
    /* axes, with the count at 0, half and max and the heights at ends */
    wb_printf(b,
              "<path d=\"M%d %d V%d H%d\" stroke=\"#889\" fill=\"none\"/>"
              "<g font-size=\"11\" fill=\"#445\">",
              CL, CT, CH - CB, CW - CR);
    uint32_t ticks[3] = {0, (max + 1) / 2, max};
    for (int i = 0; i < 3; i++) {
        if (i == 1 && (ticks[1] == 0 || ticks[1] == max))
            continue;
        double y = chart_y(ticks[i], max);
        wb_printf(b,
                  "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%" PRIu32
                  "</text><path d=\"M%d %.1f H%d\" stroke=\"#e3e6ea\"/>",
                  CL - 6, y + 4, ticks[i], CL + 1, y, CW - CR);
    }
    wb_printf(b,
              "<text x=\"%d\" y=\"%d\">block %" PRIu64 " &#183; %s</text>"
              "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">block %" PRIu64
              " &#183; %s</text><text x=\"%d\" y=\"%d\" "
              "text-anchor=\"middle\">active consents by block height"
              "</text></g>",
              CL, CH - CB + 16, h0, d0, CW - CR, CH - CB + 16, h1, d1,
              (CL + CW - CR) / 2, CH - 8);
    for (size_t i = 0; i <= CHART_SITES_MAX; i++) {
        const struct chart_line *l = &c->line[i];
        if (l->n == 0)
            continue;
        /* earlier lines wider, so a line hidden under a later one with
         * the same counts still shows at its edges */
        wb_printf(b,
                  "<path fill=\"none\" stroke-width=\"%.1f\" stroke=\"%s\" "
                  "stroke-opacity=\"0.85\" d=\"M%.1f %.1f",
                  2.0 +
                      2.0 * (double)(c->n_lines - 1 - (i < c->n_lines ? i : 0)),
                  chart_colors[i], chart_x(h0, h0, h1), chart_y(0, max));
        for (size_t k = 0; k < l->n; k++) {
            uint64_t h = l->p[k].height < h0   ? h0
                         : l->p[k].height > h1 ? h1
                                               : l->p[k].height;
            wb_printf(b, " H%.1f V%.1f", chart_x(h, h0, h1),
                      chart_y(l->p[k].count, max));
        }
        wb_printf(b, " H%.1f\"/>", chart_x(h1, h0, h1));
    }
    wb_puts(b, "</svg><p>");
    for (size_t i = 0; i <= CHART_SITES_MAX; i++) {
        const struct chart_line *l = &c->line[i];
        if (l->n == 0)
            continue;
        wb_printf(b, "<span style=\"color:%s\">&#9632;</span> ",
                  chart_colors[i]);
        wb_esc(b, l->site);
        wb_printf(b, ": %" PRIu32 " active &nbsp; ", l->count);
    }
    wb_puts(b, "</p>");
}

static void consents_section(struct wbuf *b, const struct web_trial *t,
                             const struct audit_report *r,
                             const struct ledger_tip *tip)
{
    const Tc__TrialSummary *s = &t->sum;
    wb_puts(b, "<h2 id=consents>Consents per site</h2>");
    if (s->n_consents > 0) {
        wb_puts(b, "<table><tr><th>Site</th><th>Active</th><th>Withdrawn</th>"
                   "<th>Some scopes withdrawn</th></tr>");
        for (size_t i = 0; i < s->n_consents; i++) {
            const Tc__ConsentCount *cc = s->consents[i];
            wb_puts(b, "<tr><td>");
            wb_esc(b, cc->site);
            wb_printf(b,
                      "</td><td>%" PRIu32 "</td><td>%" PRIu32
                      "</td><td>%" PRIu32 "</td></tr>",
                      cc->active, cc->withdrawn, cc->partial);
        }
        wb_puts(b, "</table>");
    }
    struct chart c;
    chart_build(&c, t);
    if (c.failed)
        wb_puts(b, "<p class=bad>The chart could not be drawn (out of "
                   "memory).</p>");
    else if (c.n_lines == 0)
        wb_puts(b, "<p class=muted>No consent recorded.</p>");
    else
        chart_svg(b, &c, t->n > 0 ? t->e[0].le.height : 1,
                  t->n > 0 ? t->e[0].le.time_ms : 0, tip->height, tip->time_ms);
    chart_free(&c);
    entries_section(b, t, r, "consent-log", "Consent records",
                    TC__TX__BODY_CONSENT);
}

/* ---- the trial page ------------------------------------------------------
 */

static void trial_header(struct wbuf *b, const struct web_ctx *ctx,
                         const struct web_trial *t)
{
    const Tc__TrialSummary *s = &t->sum;
    wb_puts(b, "<h1>");
    wb_esc(b, s->trial_id);
    wb_puts(b, ": ");
    wb_esc(b, s->brief_title);
    wb_puts(b, "</h1><dl><dt>Sponsor</dt><dd>");
    wb_member(b, ctx->genesis, s->sponsor);
    wb_puts(b, "</dd><dt>Status</dt><dd>");
    wb_esc(b, s->status);
    wb_printf(b, ", protocol version %" PRIu32, s->latest_version);
    wb_puts(b, "</dd><dt>Registered</dt><dd>block ");
    wb_block_link(b, s->registered_height);
    if (s->first_consent_height > 0) {
        wb_puts(b, "; first consent at block ");
        wb_block_link(b, s->first_consent_height);
    }
    wb_puts(b, "</dd><dt>Sites authorized</dt><dd>");
    for (size_t i = 0; i < s->n_sites; i++) {
        wb_puts(b, i ? ", " : "");
        wb_esc(b, s->sites[i]);
    }
    if (s->n_sites == 0)
        wb_puts(b, "<span class=muted>none</span>");
    wb_printf(b,
              "</dd><dt>Datasets, grants, access events</dt><dd>%" PRIu32
              ", %" PRIu32 ", %" PRIu32 "</dd><dt>Results</dt><dd>%s</dd>"
              "<dt>Ledger entries</dt><dd>%" PRIu64 " (%" PRIu32
              " rejected)</dd><dt>Audit trail</dt><dd><a href=\"",
              s->n_datasets, s->n_grants, s->n_access_events,
              s->has_results ? "registered" : "none yet", t->total,
              s->n_rejected);
    wb_esc(b, s->trial_id);
    wb_puts(b, "/audit.csv\">CSV</a> · <a href=\"");
    wb_esc(b, s->trial_id);
    wb_puts(b, "/audit.json\">JSON</a></dd></dl>");
    if (t->total > t->n)
        wb_printf(b,
                  "<p class=bad>Only the first %zu of %" PRIu64
                  " entries are shown.</p>",
                  t->n, t->total);
}

int web_page_trial(const struct web_ctx *ctx, const char *id,
                   struct web_page *out)
{
    struct web_trial t;
    int rv = web_trial_load(ctx, id, &t);
    if (rv != LG_OK) {
        web_trial_free(&t);
        if (rv == LG_ENOTFOUND)
            return web_error_page(ctx, 404, "Trial not found",
                                  "No trial with this id is registered on "
                                  "the ledger.",
                                  out);
        return web_error_page(ctx, 500, "Cannot read the trial",
                              lg_strerror(rv), out);
    }
    struct audit_report rep;
    bool have = false;
    rv = web_trial_audit(ctx, &t, &rep, &have);
    struct ledger_tip tip;
    ledger_tip(ctx->ledger, &tip);
    const struct audit_report *r = have ? &rep : NULL;
    struct wbuf b = {0};
    char title[REGISTRY_ID_MAX + 16];
    snprintf(title, sizeof(title), "Trial %s", t.id);
    web_page_begin(&b, ctx, title);
    trial_header(&b, ctx, &t);
    if (rv != LG_OK)
        wb_printf(&b, "<p class=bad>The audit failed: %s.</p>",
                  lg_strerror(rv));
    findings_section(&b, &t, r, have);
    versions_section(&b, &t, r);
    entries_section(&b, &t, r, "ethics", "Ethics decisions",
                    TC__TX__BODY_ETHICS);
    entries_section(&b, &t, r, "sites", "Site authorizations",
                    TC__TX__BODY_SITE_AUTHORIZE);
    consents_section(&b, &t, r, &tip);
    entries_section(&b, &t, r, "datasets", "Datasets",
                    TC__TX__BODY_DATASET_REGISTER);
    entries_section(&b, &t, r, "grants", "Access grants",
                    TC__TX__BODY_ACCESS_GRANT);
    entries_section(&b, &t, r, "revocations", "Grant revocations",
                    TC__TX__BODY_ACCESS_REVOKE);
    entries_section(&b, &t, r, "access", "Access events",
                    TC__TX__BODY_ACCESS_EVENT);
    results_section(&b, &t, r);
    entries_section(&b, &t, r, "attestations", "Audit attestations",
                    TC__TX__BODY_ATTESTATION);
    rejected_section(&b, &t, r);
    web_page_end(&b);
    if (have)
        ctx->audit_free(&rep);
    web_trial_free(&t);
    return web_finish(&b, 200, "text/html; charset=utf-8", out);
}

/* ---- exports -------------------------------------------------------------
 */

static void iso_time(uint64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms == 0 || gmtime_r(&s, &tm) == NULL)
        out[0] = '\0';
    else
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int export_load(const struct web_ctx *ctx, const char *id,
                       struct web_trial *t, struct web_page *out, bool *done)
{
    int rv = web_trial_load(ctx, id, t);
    *done = rv != LG_OK;
    if (rv == LG_ENOTFOUND)
        return web_error_page(ctx, 404, "Trial not found",
                              "No trial with this id is registered on the "
                              "ledger.",
                              out);
    if (rv != LG_OK)
        return web_error_page(ctx, 500, "Cannot read the trial",
                              lg_strerror(rv), out);
    return LG_OK;
}

int web_page_trial_csv(const struct web_ctx *ctx, const char *id,
                       struct web_page *out)
{
    struct web_trial t;
    bool done;
    int rv = export_load(ctx, id, &t, out, &done);
    if (done) {
        web_trial_free(&t);
        return rv;
    }
    struct wbuf b = {0};
    wb_puts(&b, "height,time,log_index,tx_id,type,signer,status,reason,"
                "message\r\n");
    for (size_t i = 0; i < t.n; i++) {
        const struct web_entry *e = &t.e[i];
        char when[32];
        iso_time(e->le.time_ms, when);
        wb_printf(&b, "%" PRIu64 ",%s,%" PRIu64 ",", e->le.height, when,
                  e->le.log_index);
        wb_hex(&b, e->id, 32);
        wb_printf(&b, ",%s,", web_tx_type(e->tx));
        wb_csv(&b, e->le.signer_name);
        wb_printf(&b, ",%s,", web_tx_status(e->res));
        wb_csv(&b, e->res ? e->res->code : "");
        wb_put(&b, ",", 1);
        wb_csv(&b, e->res ? e->res->message : "");
        wb_put(&b, "\r\n", 2);
    }
    web_trial_free(&t);
    return web_finish(&b, 200, "text/csv; charset=utf-8; header=present", out);
}

static json_t *entry_json(const struct web_entry *e)
{
    char when[32], hex[65];
    iso_time(e->le.time_ms, when);
    lg_hex(e->id, 32, hex);
    return json_pack(
        "{s:I,s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "height",
        (json_int_t)e->le.height, "time", when, "time_ms",
        (json_int_t)e->le.time_ms, "log_index", (json_int_t)e->le.log_index,
        "tx_id", hex, "type", web_tx_type(e->tx), "signer",
        e->le.signer_name ? e->le.signer_name : "", "status",
        web_tx_status(e->res), "reason", e->res ? e->res->code : "", "message",
        e->res ? e->res->message : "");
}

int web_page_trial_json(const struct web_ctx *ctx, const char *id,
                        struct web_page *out)
{
    struct web_trial t;
    bool done;
    int rv = export_load(ctx, id, &t, out, &done);
    if (done) {
        web_trial_free(&t);
        return rv;
    }
    struct ledger_tip tip;
    ledger_tip(ctx->ledger, &tip);
    char root[65];
    lg_hex(tip.log_root, 32, root);
    json_t *arr = json_array();
    json_t *o =
        json_pack("{s:s,s:I,s:I,s:s,s:I,s:b,s:O}", "trial_id", t.id, "height",
                  (json_int_t)tip.height, "log_size", (json_int_t)tip.log_size,
                  "log_root", root, "entries_total", (json_int_t)t.total,
                  "truncated", t.total > t.n, "entries", arr);
    bool ok = arr != NULL && o != NULL;
    for (size_t i = 0; ok && i < t.n; i++)
        ok = json_array_append_new(arr, entry_json(&t.e[i])) == 0;
    web_trial_free(&t);
    char *text = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    json_decref(arr);
    struct wbuf b = {0};
    if (text == NULL)
        b.failed = true;
    wb_puts(&b, text);
    wb_put(&b, "\n", 1);
    free(text);
    return web_finish(&b, 200, "application/json", out);
}
