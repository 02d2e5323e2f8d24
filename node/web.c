/*
 * web.c - the web view's router, output buffer and escaping, page frame,
 * the status page and the NNG HTTP handlers (see web.h).
 */
#include "web.h"

#include "web_int.h"

#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- output buffer -------------------------------------------------------
 */

void wb_put(struct wbuf *b, const char *s, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (n > WEB_BODY_MAX - b->len) {
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void wb_puts(struct wbuf *b, const char *s)
{
    if (s != NULL)
        wb_put(b, s, strlen(s));
}

void wb_printf(struct wbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        wb_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    wb_put(b, big, (size_t)n);
    free(big);
}

void wb_esc_n(struct wbuf *b, const char *s, size_t n)
{
    size_t run = 0; /* start of the pending unescaped run */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                rep = "\xEF\xBF\xBD";
        }
        if (rep == NULL)
            continue;
        wb_put(b, s + run, i - run);
        wb_puts(b, rep);
        run = i + 1;
    }
    wb_put(b, s + run, n - run);
}

void wb_esc(struct wbuf *b, const char *s)
{
    if (s != NULL)
        wb_esc_n(b, s, strlen(s));
}

void wb_csv(struct wbuf *b, const char *s)
{
    if (s == NULL)
        return;
    if (strpbrk(s, ",\"\r\n") == NULL) {
        wb_puts(b, s);
        return;
    }
    wb_put(b, "\"", 1);
    for (const char *q = s; *q != '\0'; q++) {
        if (*q == '"')
            wb_put(b, "\"\"", 2);
        else
            wb_put(b, q, 1);
    }
    wb_put(b, "\"", 1);
}

void wb_hex(struct wbuf *b, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char two[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
        wb_put(b, two, 2);
    }
}

void wb_tx_link(struct wbuf *b, const uint8_t *id, size_t n)
{
    if (n != 32) {
        wb_puts(b, "<span class=bad>(no valid id)</span>");
        return;
    }
    wb_puts(b, "<a class=h href=\"/tx/");
    wb_hex(b, id, 32);
    wb_puts(b, "\">");
    wb_hex(b, id, 8);
    wb_puts(b, "</a>");
}

void web_fmt_time(uint64_t ms, char out[32])
{
    if (ms == 0) {
        snprintf(out, 32, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 32, "%" PRIu64 " ms", ms);
        return;
    }
    strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

void wb_time(struct wbuf *b, uint64_t ms)
{
    char t[32];
    web_fmt_time(ms, t);
    wb_puts(b, t);
}

void wb_member(struct wbuf *b, const struct genesis *g, const char *name)
{
    const struct genesis_member *m = name != NULL && name[0] != '\0'
                                         ? genesis_member_by_name(g, name)
                                         : NULL;
    wb_esc(b, name);
    if (m != NULL && m->organisation[0] != '\0') {
        wb_puts(b, " <span class=muted>(");
        wb_esc(b, m->organisation);
        wb_puts(b, ")</span>");
    }
}

bool web_member_by_key(const struct web_ctx *ctx, const uint8_t pk[32],
                       struct gov_member *out)
{
    const struct genesis_member *m;

    if (ctx->registry != NULL && ctx->store != NULL &&
        registry_member_by_key(ctx->registry, ctx->store, pk, out) == LG_OK)
        return true;
    m = genesis_member_by_key(ctx->genesis, pk);
    if (m == NULL)
        return false;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", m->name);
    snprintf(out->organisation, sizeof(out->organisation), "%s",
             m->organisation);
    out->role = m->role;
    out->status = GOV_MEMBER_ACTIVE;
    memcpy(out->public_key, pk, 32);
    out->key_current = true;
    return true;
}

/* ---- page frame ----------------------------------------------------------
 */

static const char web_css[] =
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;"
    "background:#f6f7f9}"
    "header{background:#12355b;color:#fff;padding:.6em 1.2em}"
    "header a{color:#fff;text-decoration:none;font-weight:600}"
    "main{max-width:72em;margin:0 auto;padding:.5em 1.2em 2em}"
    "h1{font-size:1.5em;margin:.6em 0 .2em}"
    "h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccd}"
    "table{border-collapse:collapse;width:100%;background:#fff;"
    "font-size:.93em}"
    "th,td{border:1px solid #d5d9e0;padding:.25em .5em;text-align:left;"
    "vertical-align:top}"
    "th{background:#e9edf3}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}"
    "dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}"
    ".h,code{font-family:ui-monospace,monospace;font-size:.9em;"
    "overflow-wrap:anywhere}"
    ".ok{color:#11662f;font-weight:600}.bad{color:#a11;font-weight:600}"
    ".muted{color:#667}"
    ".finding{border-left:6px solid #a11;background:#fff1f0;"
    "padding:.4em .8em;margin:.5em 0}"
    ".finding.medium{border-color:#d9730d;background:#fff7ec}"
    ".finding.low{border-color:#c9a400;background:#fffbe6}"
    ".finding.info{border-color:#889;background:#f1f2f5}"
    ".sev{text-transform:uppercase;font-size:.8em;font-weight:700}"
    "tr.rejected td{background:#fff1f0}"
    "svg{background:#fff;border:1px solid #d5d9e0}";

void web_page_begin(struct wbuf *b, const struct web_ctx *ctx,
                    const char *title)
{
    wb_puts(b, "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
               "<meta name=viewport content=\"width=device-width\">"
               "<title>");
    wb_esc(b, title);
    wb_puts(b, " · trialchain</title><style>");
    wb_puts(b, web_css);
    wb_puts(b, "</style></head><body><header><a href=\"/\">trialchain");
    if (ctx->genesis != NULL && ctx->genesis->chain_name[0] != '\0') {
        wb_puts(b, " · ");
        wb_esc(b, ctx->genesis->chain_name);
    }
    wb_puts(b, "</a> <span class=muted>read-only view of the "
               "ledger</span></header><main>\n");
}

void web_page_end(struct wbuf *b)
{
    wb_puts(b, "</main></body></html>\n");
}

int web_finish(struct wbuf *b, uint16_t status, const char *type,
               struct web_page *out)
{
    if (b->failed) {
        free(b->p);
        *b = (struct wbuf){0};
        static const char msg[] =
            "<!doctype html><title>Error</title><h1>Page too large</h1>"
            "<p>This page would exceed the size the node serves, or the "
            "node ran out of memory.</p>\n";
        out->status = 500;
        out->content_type = "text/html; charset=utf-8";
        out->body = strdup(msg);
        out->len = out->body ? strlen(msg) : 0;
        return out->body ? LG_OK : LG_ENOMEM;
    }
    if (b->p == NULL)
        b->p = calloc(1, 1);
    if (b->p == NULL)
        return LG_ENOMEM;
    out->status = status;
    out->content_type = type;
    out->body = b->p;
    out->len = b->len;
    *b = (struct wbuf){0};
    return LG_OK;
}

int web_error_page(const struct web_ctx *ctx, uint16_t status,
                   const char *title, const char *sentence,
                   struct web_page *out)
{
    struct wbuf b = {0};
    web_page_begin(&b, ctx, title);
    wb_puts(&b, "<h1>");
    wb_esc(&b, title);
    wb_puts(&b, "</h1><p>");
    wb_esc(&b, sentence);
    wb_puts(&b, "</p><p><a href=\"/\">Consortium status</a></p>");
    web_page_end(&b);
    return web_finish(&b, status, "text/html; charset=utf-8", out);
}

void web_page_free(struct web_page *p)
{
    if (p == NULL)
        return;
    free(p->body);
    p->body = NULL;
    p->len = 0;
}

/* ---- names ---------------------------------------------------------------
 */

const char *web_tx_type(const Tc__Tx *tx)
{
    if (tx == NULL)
        return "undecodable";
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        return "protocol-register";
    case TC__TX__BODY_PROTOCOL_AMEND:
        return "protocol-amend";
    case TC__TX__BODY_ETHICS:
        return "ethics-decision";
    case TC__TX__BODY_SITE_AUTHORIZE:
        return "site-authorize";
    case TC__TX__BODY_CONSENT:
        return "consent";
    case TC__TX__BODY_DATASET_REGISTER:
        return "dataset-register";
    case TC__TX__BODY_ACCESS_GRANT:
        return "access-grant";
    case TC__TX__BODY_ACCESS_REVOKE:
        return "access-revoke";
    case TC__TX__BODY_ACCESS_EVENT:
        return "access-event";
    case TC__TX__BODY_RESULTS_REGISTER:
        return "results-register";
    case TC__TX__BODY_ATTESTATION:
        return "audit-attestation";
    default:
        return "empty";
    }
}

const char *web_tx_status(const Tc__TxResult *res)
{
    if (res == NULL)
        return "unknown";
    switch (res->status) {
    case TC__TX_STATUS__TX_ACCEPTED:
        return "accepted";
    case TC__TX_STATUS__TX_REJECTED:
        return "rejected";
    default:
        return "unknown";
    }
}

const char *web_severity(enum audit_severity s)
{
    switch (s) {
    case AUDIT_HIGH:
        return "high";
    case AUDIT_MEDIUM:
        return "medium";
    case AUDIT_LOW:
        return "low";
    default:
        return "info";
    }
}

/* ---- status page ---------------------------------------------------------
 */

static void status_chain(struct wbuf *b, const struct web_ctx *ctx,
                         const struct ledger_tip *tip,
                         const struct web_status *st, bool have_st)
{
    const struct genesis *g = ctx->genesis;
    wb_puts(b, "<h1>Consortium status</h1><dl><dt>Chain</dt><dd>");
    wb_esc(b, g->chain_name);
    wb_puts(b, "</dd><dt>Chain id</dt><dd class=h>");
    wb_hex(b, g->chain_id, 32);
    wb_puts(b, "</dd><dt>Created</dt><dd>");
    wb_time(b, g->created_ms);
    wb_printf(b, "</dd><dt>Height</dt><dd>");
    if (tip->height > 0)
        wb_printf(b, "<a href=\"/block/%" PRIu64 "\">%" PRIu64 "</a>",
                  tip->height, tip->height);
    else
        wb_puts(b, "0 (no blocks yet)");
    wb_puts(b, " at ");
    wb_time(b, tip->time_ms);
    wb_printf(b,
              "</dd><dt>Last certified</dt><dd>%" PRIu64
              "</dd><dt>Transactions</dt><dd>%" PRIu64
              "</dd><dt>Log root</dt><dd class=h>",
              tip->last_certified, tip->log_size);
    wb_hex(b, tip->log_root, 32);
    wb_puts(b, "</dd>");
    if (have_st) {
        wb_printf(b,
                  "<dt>This node</dt><dd>replica %" PRIu32 ", view %" PRIu64
                  ", primary %" PRIu32 ", ",
                  st->replica, st->view, st->primary);
        if (st->ready) {
            wb_puts(b, "<span class=ok>ready</span>");
        } else {
            wb_puts(b, "<span class=bad>not ready</span>: ");
            wb_esc(b, st->not_ready);
        }
        wb_puts(b, "</dd>");
    }
    wb_puts(b, "</dl>\n");
}

/* One replica's row. web_status is indexed by slot (the genesis id for
 * the genesis replicas). */
static void status_node_row(struct wbuf *b, const struct gov_replica *r,
                            const struct ledger_tip *tip,
                            const struct web_status *st, bool have_st)
{
    uint32_t id = r->slot < PBFT_MAX_REPLICAS ? r->slot : 0;
    bool self = have_st && st->replica == r->slot;
    wb_printf(b, "<tr><td>%" PRIu32 "</td><td>", r->slot);
    wb_esc(b, r->name);
    wb_puts(b, "</td><td class=h>");
    wb_esc(b, r->peer_url);
    wb_puts(b, "</td><td class=h>");
    wb_hex(b, r->public_key, 8);
    wb_puts(b, "</td><td>");
    if (!have_st)
        wb_puts(b, "<span class=muted>unknown</span>");
    else
        wb_puts(b, st->primary == r->slot ? "primary" : "backup");
    wb_puts(b, "</td><td>");
    if (self)
        wb_printf(b, "%" PRIu64, tip->height);
    else if (have_st && st->peer_height[id] > 0)
        wb_printf(b, "%" PRIu64 " <span class=muted>(checkpoint)</span>",
                  st->peer_height[id]);
    else
        wb_puts(b, "<span class=muted>unknown</span>");
    wb_puts(b, "</td><td>");
    if (!have_st)
        wb_puts(b, "<span class=muted>unknown</span>");
    else if (self)
        wb_puts(b, st->ready ? "<span class=ok>this node, ready</span>"
                             : "<span class=bad>this node, not "
                               "ready</span>");
    else if (st->connected[id])
        wb_puts(b, "<span class=ok>connected</span>");
    else
        wb_puts(b, "<span class=bad>unreachable</span>");
    wb_puts(b, "</td></tr>\n");
}

/* The members from state (governance adds, suspends, removes and rotates
 * them), or from the genesis when the registry cannot tell. */
static void status_members(struct wbuf *b, const struct web_ctx *ctx,
                           const struct ledger_tip *tip)
{
    const struct genesis *g = ctx->genesis;
    Tc__GovernanceReply gr;
    int rv = ctx->registry != NULL
                 ? registry_governance(ctx->registry, ctx->store, NULL,
                                       tip->time_ms, 0, 0, &gr)
                 : LG_EINVAL;
    wb_puts(b, "<h2>Members</h2><table><tr><th>Name</th>"
               "<th>Organisation</th><th>Role</th><th>Status</th></tr>\n");
    for (size_t i = 0; rv == LG_OK && i < gr.n_members; i++) {
        const Tc__GovMember *m = gr.members[i];
        bool active = m->status != NULL && strcmp(m->status, "active") == 0;
        wb_puts(b, active ? "<tr><td>" : "<tr class=rejected><td>");
        wb_esc(b, m->name);
        wb_puts(b, "</td><td>");
        wb_esc(b, m->organisation);
        wb_puts(b, "</td><td>");
        wb_esc(b, m->role);
        wb_puts(b, "</td><td>");
        wb_esc(b, m->status);
        if (m->since_height > 0)
            wb_printf(b,
                      " <span class=muted>(since <a href=\"/block/%" PRIu64
                      "\">block %" PRIu64 "</a>)</span>",
                      m->since_height, m->since_height);
        wb_puts(b, "</td></tr>\n");
    }
    for (uint32_t i = 0;
         rv != LG_OK && i < g->n_members && i < GENESIS_MEMBERS_MAX; i++) {
        wb_puts(b, "<tr><td>");
        wb_esc(b, g->members[i].name);
        wb_puts(b, "</td><td>");
        wb_esc(b, g->members[i].organisation);
        wb_puts(b, "</td><td>");
        wb_esc(b, role_name(g->members[i].role));
        wb_puts(b, "</td><td>active</td></tr>\n");
    }
    if (rv == LG_OK)
        registry_governance_clear(&gr);
    wb_puts(b, "</table>\n");
}

/* The replica set in force (registry state: the genesis set until a
 * governance change) and the members. */
static void status_nodes(struct wbuf *b, const struct web_ctx *ctx,
                         const struct ledger_tip *tip,
                         const struct web_status *st, bool have_st)
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    if (set == NULL) {
        b->failed = true;
        return;
    }
    if (ctx->registry == NULL ||
        registry_replica_set(ctx->registry, ctx->store, set) != LG_OK)
        gov_replica_set_genesis(ctx->genesis, set);
    wb_printf(b, "<h2>Nodes (%" PRIu32 ", quorum %" PRIu32 ")</h2>", set->n,
              set->n > 0 ? pbft_quorum(set->n) : 0);
    if (set->base_height > 0)
        wb_printf(b,
                  "<p class=muted>The replica set in force since <a "
                  "href=\"/block/%" PRIu64 "\">block %" PRIu64
                  "</a>, changed by governance from the genesis set.</p>",
                  set->base_height, set->base_height);
    wb_puts(b, "<table><tr><th>Slot</th><th>Name</th><th>Address</th>"
               "<th>Key</th><th>Role</th><th>Height</th><th>Health</th>"
               "</tr>\n");
    for (uint32_t i = 0; i < set->n && i < PBFT_MAX_REPLICAS; i++)
        status_node_row(b, &set->r[i], tip, st, have_st);
    wb_puts(b, "</table>\n");
    free(set);
    status_members(b, ctx, tip);
}

static uint32_t active_consents(const Tc__TrialSummary *s)
{
    uint32_t n = 0;
    for (size_t i = 0; i < s->n_consents; i++)
        n += s->consents[i]->active;
    return n;
}

/* The findings cell: the audit runs per trial while *budget (entries
 * audited on this page) lasts, since the page renders under the daemon's
 * ledger lock; past it the cell links to the trial page. */
static void status_findings(struct wbuf *b, const struct web_ctx *ctx,
                            const char *id, uint64_t *budget)
{
    size_t n = 0;
    uint64_t total = 0;
    if (ctx->audit_run == NULL ||
        registry_trial_entries(ctx->registry, ctx->store, id, 0, 0, NULL, &n,
                               &total) != LG_OK) {
        wb_puts(b, "<span class=muted>n/a</span>");
        return;
    }
    if (total > *budget) {
        wb_puts(b, "<a class=muted href=\"/trial/");
        wb_esc(b, id);
        wb_puts(b, "#findings\">see trial</a>");
        return;
    }
    *budget -= total;
    struct web_trial t;
    struct audit_report rep;
    bool have = false;
    if (web_trial_load(ctx, id, &t) == LG_OK &&
        web_trial_audit(ctx, &t, &rep, &have) == LG_OK && have) {
        n = 0;
        for (size_t i = 0; i < rep.n_items; i++)
            n += rep.items[i].severity > AUDIT_INFO;
        wb_printf(b, "<a class=%s href=\"/trial/", n ? "bad" : "ok");
        wb_esc(b, id);
        wb_printf(b, "#findings\">%zu</a>", n);
        ctx->audit_free(&rep);
    } else {
        wb_puts(b, "<span class=muted>n/a</span>");
    }
    web_trial_free(&t);
}

/* One row of the trials table. */
static void status_trial_row(struct wbuf *b, const struct web_ctx *ctx,
                             const char *id, uint64_t *budget)
{
    Tc__TrialSummary s;
    int rv = registry_trial_summary(ctx->registry, ctx->store, id, &s);
    wb_puts(b, "<tr><td><a href=\"/trial/");
    wb_esc(b, id);
    wb_puts(b, "\">");
    wb_esc(b, id);
    wb_puts(b, "</a></td>");
    if (rv != LG_OK) {
        wb_printf(b, "<td colspan=7 class=bad>cannot read: %s</td></tr>\n",
                  lg_strerror(rv));
        registry_trial_summary_clear(&s);
        return;
    }
    wb_puts(b, "<td>");
    wb_esc(b, s.brief_title);
    wb_puts(b, "</td><td>");
    wb_member(b, ctx->genesis, s.sponsor);
    wb_puts(b, "</td><td>");
    wb_esc(b, s.status);
    wb_printf(b,
              "</td><td>%" PRIu32 "</td><td>%" PRIu32 "</td><td>%" PRIu32
              "</td><td>",
              s.latest_version, active_consents(&s), s.n_rejected);
    registry_trial_summary_clear(&s);
    status_findings(b, ctx, id, budget);
    wb_puts(b, "</td></tr>\n");
}

static uint64_t query_page(const char *query)
{
    if (query == NULL)
        return 1;
    const char *p = strstr(query, "page=");
    if (p == NULL || (p != query && p[-1] != '&'))
        return 1;
    char *end = NULL;
    unsigned long long v = strtoull(p + 5, &end, 10);
    if (end == p + 5 || v == 0 || v > 1000000)
        return 1;
    return v;
}

static void status_trials(struct wbuf *b, const struct web_ctx *ctx,
                          const char *query)
{
    char ids[WEB_TRIALS_PER_PAGE][REGISTRY_ID_MAX + 1];
    size_t n = 0;
    uint64_t total = 0, page = query_page(query);
    uint64_t offset = (page - 1) * WEB_TRIALS_PER_PAGE;
    int rv = registry_list_trials(ctx->registry, ctx->store, offset,
                                  WEB_TRIALS_PER_PAGE, ids, &n, &total);
    if (rv != LG_OK) {
        wb_printf(b,
                  "<h2>Trials</h2><p class=bad>The trial list cannot be "
                  "read: %s.</p>",
                  lg_strerror(rv));
        return;
    }
    wb_printf(b, "<h2>Trials (%" PRIu64 ")</h2>", total);
    if (total == 0) {
        wb_puts(b, "<p class=muted>No trial is registered yet.</p>");
        return;
    }
    wb_puts(b, "<table><tr><th>Trial</th><th>Title</th><th>Sponsor</th>"
               "<th>Status</th><th>Version</th><th>Active consents</th>"
               "<th>Rejected</th><th>Findings</th></tr>\n");
    uint64_t budget = WEB_STATUS_AUDIT_ENTRIES;
    for (size_t i = 0; i < n; i++) {
        ids[i][REGISTRY_ID_MAX] = '\0';
        status_trial_row(b, ctx, ids[i], &budget);
    }
    wb_puts(b, "</table>");
    if (offset + n < total || page > 1) {
        wb_puts(b, "<p>");
        if (page > 1)
            wb_printf(b, "<a href=\"/?page=%" PRIu64 "\">previous</a> ",
                      page - 1);
        if (offset + n < total)
            wb_printf(b, "<a href=\"/?page=%" PRIu64 "\">next</a>", page + 1);
        wb_puts(b, "</p>");
    }
}

int web_page_status(const struct web_ctx *ctx, const char *query,
                    struct web_page *out)
{
    struct ledger_tip tip;
    struct web_status st;
    bool have_st = ctx->status != NULL;
    memset(&st, 0, sizeof(st));
    ledger_tip(ctx->ledger, &tip);
    if (have_st)
        ctx->status(ctx->status_arg, &st);
    st.not_ready[sizeof(st.not_ready) - 1] = '\0';
    struct wbuf b = {0};
    web_page_begin(&b, ctx, "Consortium status");
    status_chain(&b, ctx, &tip, &st, have_st);
    status_nodes(&b, ctx, &tip, &st, have_st);
    status_trials(&b, ctx, query);
    web_page_end(&b);
    return web_finish(&b, 200, "text/html; charset=utf-8", out);
}

/* ---- router --------------------------------------------------------------
 */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %-decodes path into out (capacity WEB_PATH_MAX + 1). False on a bad
 * escape, an encoded NUL or '/', or a control byte. */
static bool path_decode(const char *path, char *out)
{
    size_t o = 0;
    for (size_t i = 0; path[i] != '\0'; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%') {
            int hi = hexval(path[i + 1]);
            int lo = hi < 0 ? -1 : hexval(path[i + 2]);
            if (lo < 0)
                return false;
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0 || c == '/')
                return false;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o >= WEB_PATH_MAX)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* The registry's id alphabet (registry.c reg_id_valid). */
static bool trial_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > REGISTRY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int route_trial(const struct web_ctx *ctx, const char *rest,
                       struct web_page *out)
{
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!trial_id_ok(rest, n))
        return web_error_page(ctx, 400, "Bad request",
                              "A trial id is 1 to 64 letters, digits, '.', "
                              "'_', ':' or '-'.",
                              out);
    char id[REGISTRY_ID_MAX + 1];
    memcpy(id, rest, n);
    id[n] = '\0';
    if (slash == NULL)
        return web_page_trial(ctx, id, out);
    if (strcmp(slash, "/audit.csv") == 0)
        return web_page_trial_csv(ctx, id, out);
    if (strcmp(slash, "/audit.json") == 0)
        return web_page_trial_json(ctx, id, out);
    return web_error_page(ctx, 404, "Not found",
                          "There is no such page for this trial.", out);
}

static int route_block(const struct web_ctx *ctx, const char *rest,
                       struct web_page *out)
{
    size_t n = strlen(rest);
    bool digits = n > 0 && n <= 19;
    for (size_t i = 0; digits && i < n; i++)
        digits = rest[i] >= '0' && rest[i] <= '9';
    if (!digits)
        return web_error_page(ctx, 400, "Bad request",
                              "A block is named by its height, a decimal "
                              "number.",
                              out);
    return web_page_block(ctx, strtoull(rest, NULL, 10), out);
}

static int route_tx(const struct web_ctx *ctx, const char *rest,
                    struct web_page *out)
{
    uint8_t id[32];
    if (strlen(rest) != 64 || lg_unhex(rest, id, 32) != 0)
        return web_error_page(ctx, 400, "Bad request",
                              "A transaction is named by its id, 64 hex "
                              "digits.",
                              out);
    return web_page_tx(ctx, id, out);
}

int web_render(const struct web_ctx *ctx, const char *path, const char *query,
               struct web_page *out)
{
    char decoded[WEB_PATH_MAX + 1];
    memset(out, 0, sizeof(*out));
    if (path == NULL || path[0] != '/' || strlen(path) > WEB_PATH_MAX ||
        !path_decode(path, decoded))
        return web_error_page(ctx, 400, "Bad request",
                              "The address is malformed or too long.", out);
    if (strcmp(decoded, "/") == 0)
        return web_page_status(ctx, query, out);
    if (strncmp(decoded, "/trial/", 7) == 0)
        return route_trial(ctx, decoded + 7, out);
    if (strncmp(decoded, "/block/", 7) == 0)
        return route_block(ctx, decoded + 7, out);
    if (strncmp(decoded, "/tx/", 4) == 0)
        return route_tx(ctx, decoded + 4, out);
    return web_error_page(ctx, 404, "Not found",
                          "There is no page at this address.", out);
}

/* ---- NNG handlers --------------------------------------------------------
 */

static void web_set_headers(nng_http_res *res, const struct web_page *p)
{
    (void)nng_http_res_set_header(res, "Content-Type", p->content_type);
    (void)nng_http_res_set_header(res, "Cache-Control", "no-store");
    (void)nng_http_res_set_header(res, "X-Content-Type-Options", "nosniff");
    (void)nng_http_res_set_header(res, "Referrer-Policy", "no-referrer");
    (void)nng_http_res_set_header(
        res, "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
}

static void web_handle(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    const struct web_ctx *ctx = nng_http_handler_get_data(h);
    const char *uri = nng_http_req_get_uri(req);
    char path[WEB_PATH_MAX + 2];
    size_t n = strcspn(uri, "?");
    const char *query = uri[n] == '?' ? uri + n + 1 : "";
    /* one byte more than allowed, so an over-long path stays over-long */
    snprintf(path, sizeof(path), "%.*s",
             (int)(n < WEB_PATH_MAX + 1 ? n : WEB_PATH_MAX + 1), uri);
    struct web_page page;
    if (ctx->lock != NULL)
        pthread_mutex_lock(ctx->lock);
    int rv = web_render(ctx, path, query, &page);
    if (ctx->lock != NULL)
        pthread_mutex_unlock(ctx->lock);
    nng_http_res *res = NULL;
    if (rv != LG_OK || nng_http_res_alloc(&res) != 0) {
        web_page_free(&page);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    (void)nng_http_res_set_status(res, page.status);
    web_set_headers(res, &page);
    int nrv = nng_http_res_copy_data(res, page.body, page.len);
    web_page_free(&page);
    if (nrv != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, nrv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

int web_register(struct nng_http_server *srv, const struct web_ctx *ctx)
{
    static const struct {
        const char *path;
        bool tree;
    } routes[] = {
        {"/", false}, {"/trial", true}, {"/block", true}, {"/tx", true}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
        nng_http_handler *h = NULL;
        int rv = nng_http_handler_alloc(&h, routes[i].path, web_handle);
        if (rv == 0 && routes[i].tree)
            rv = nng_http_handler_set_tree(h);
        if (rv == 0)
            rv = nng_http_handler_set_data(h, (void *)ctx, NULL);
        if (rv == 0)
            rv = nng_http_server_add_handler(srv, h);
        if (rv != 0) {
            if (h != NULL)
                nng_http_handler_free(h);
            lg_log(LG_ERROR, "web_register_failed", "path=%s err=\"%s\"",
                   routes[i].path, nng_strerror(rv));
            return LG_ENET;
        }
    }
    return LG_OK;
}
