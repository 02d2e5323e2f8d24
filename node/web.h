/*
 * web.h - a read-only web view of the ledger for ethics boards (issue 9):
 * server-rendered HTML with one inline stylesheet and inline SVG charts, no
 * JavaScript, no external assets, and nothing the ledger does not hold.
 *
 * Pages (GET):
 *   /                        consortium status: chain, nodes, members, trials
 *   /trial/<id>              a trial's timeline, consent chart, findings
 *   /trial/<id>/audit.csv    the trial's audit trail, RFC 4180 CSV
 *   /trial/<id>/audit.json   the same as JSON
 *   /block/<height>          header, txs, certificate checked here
 *   /tx/<64 hex>             the tx decoded, its receipt checked here
 * Unknown ids give 404, malformed input (over-long paths, bad hex, bad
 * ids) 400; neither ever crashes.
 *
 * Every page goes through web_render, which reads only what web_ctx points
 * at and returns a status, a content type and a body: unit tests render
 * pages without a server.
 *
 * Threads: web_render reads the ledger, which is not thread-safe (its
 * block cache changes even on reads, and the daemon's loop writes it). The
 * HTTP handler that web_register installs runs on NNG threads and locks
 * ctx->lock (when non-NULL) around each web_render, so the daemon passes a
 * mutex that its loop also holds around every ledger_* call (apply,
 * put_cert, apply_certified, and the reads for client queries). Registry
 * queries read committed state and need no lock. Rendering the largest page
 * (a trial of 2,000 entries) takes about 0.2-0.4 s under ASan. Anyone
 * calling web_render directly must hold that lock themselves.
 *
 * Wiring (daemon), tried end to end by tests/web/web_pages.sh on a private
 * copy of the tree: http_open gains a `const struct web_ctx *web` argument
 * (NULL: no web view) and, after nng_http_server_hold() and before
 * nng_http_server_start(), does
 *
 *     if (rv == 0 && web != NULL && web_register(s->server, web) != LG_OK)
 *         rv = NNG_EADDRINUSE;
 *
 * node.c, when config.json has "web": true (or --web), passes &n->web:
 *
 *     n->web = (struct web_ctx){
 *         .genesis = n->genesis, .store = n->store,
 *         .registry = n->registry, .ledger = n->ledger,
 *         .status = node_web_status, .status_arg = n,
 *         .lock = &n->ledger_mu,
 *         .audit_run = audit_trial, .audit_free = audit_report_free};
 *
 * where node_web_status fills struct web_status from n->m (under m_mu) and
 * net_peer_connected(), and audit_trial / audit_report_free need
 * tools/audit.c linked into trialchain-node (moved under node/).
 *
 * The handlers are "/" (exact) and the trees "/trial", "/block" and "/tx",
 * so they do not collide with /healthz, /readyz and /metrics.
 */
#ifndef WEB_H
#define WEB_H

#include "audit.h"
#include "genesis.h"
#include "ledger.h"
#include "lg.h"
#include "pbft.h"
#include "registry.h"
#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest request path (before the query) we look at; longer is 400. */
#define WEB_PATH_MAX 512
/* Largest page we build; beyond it (or out of memory) the answer is a 500
 * page. Lists are bounded so that real pages stay far below. */
#define WEB_BODY_MAX (8u << 20)
/* Entries of one trial read for its page and exports. */
#define WEB_TRIAL_ENTRIES_MAX 20000
/* Trials per page on the status page. */
#define WEB_TRIALS_PER_PAGE 50
/* Entries the status page audits (for its findings column) in all; trials
 * beyond link to their own page. Bounds how long one render holds the
 * ledger lock. */
#define WEB_STATUS_AUDIT_ENTRIES 20000

/* What this node knows about itself and its peers, from the daemon. */
struct web_status {
    uint32_t replica; /* this node's replica slot (genesis id) */
    uint64_t view;
    uint32_t primary; /* the primary's slot */
    uint64_t height;  /* executed height (the ledger tip) */
    bool ready;
    char not_ready[256]; /* why not ready, "" when ready */
    /* per replica slot (the genesis id for a genesis replica; the status
     * page lists the set in force): peer link up (self counts as up) and the
     * highest checkpoint height heard from it (0: unknown) */
    bool connected[PBFT_MAX_REPLICAS];
    uint64_t peer_height[PBFT_MAX_REPLICAS];
};

/* Fills *out; called under ctx->lock, must not block on the loop. */
typedef void (*web_status_fn)(void *arg, struct web_status *out);

/* The audit (tools/audit.h): audit_trial and audit_report_free. Passed in
 * so that node/ does not link against tools/; when NULL the trial page
 * says the audit is not available and shows the timeline only. */
typedef int (*web_audit_run_fn)(const struct audit_input *in,
                                struct audit_report *out);
typedef void (*web_audit_free_fn)(struct audit_report *r);

/* Borrowed pointers; they must outlive every render and the server. */
struct web_ctx {
    const struct genesis *genesis;
    struct store *store;
    struct registry *registry;
    struct ledger *ledger;
    web_status_fn status; /* NULL: the status columns say "unknown" */
    void *status_arg;
    pthread_mutex_t *lock; /* held around web_render by the handler */
    web_audit_run_fn audit_run;
    web_audit_free_fn audit_free;
};

struct web_page {
    uint16_t status;          /* 200, 400, 404, 405, 500 */
    const char *content_type; /* static string */
    char *body;               /* malloc'd; web_page_free */
    size_t len;
};

/* Renders `path` (the request path, still %-encoded, without the query)
 * with `query` (after '?', may be NULL or ""). Fills *out, also for 4xx and
 * 5xx pages; returns LG_OK, or LG_ENOMEM when not even an error page could
 * be built (then out->body is NULL). Pure with respect to ctx's objects:
 * reads them and writes nothing (only the ledger's block cache and error
 * sentence change), so the same state gives the same page. Caller holds
 * ctx->lock. */
int web_render(const struct web_ctx *ctx, const char *path, const char *query,
               struct web_page *out) LG_MUST_CHECK;
void web_page_free(struct web_page *p); /* accepts NULL; body set to NULL */

/* Adds the web view's handlers to a held, not yet started, NNG HTTP server
 * (nng_http_server from <nng/supplemental/http/http.h>). ctx must outlive
 * the server. LG_ENET (with the NNG error logged) when a handler cannot be
 * added, e.g. its path is taken. */
struct nng_http_server;
int web_register(struct nng_http_server *srv,
                 const struct web_ctx *ctx) LG_MUST_CHECK;

#endif /* WEB_H */
