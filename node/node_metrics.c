/*
 * node_metrics.c - /healthz, /readyz and /metrics (Prometheus text format,
 * written directly: no C client library is packaged).
 *
 * The loop copies what it owns into n->m under m_mu once per turn; the
 * HTTP thread reads that copy plus the links' and API's atomic counters.
 */
#include "node_int.h"
#include "tx.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 8192

uint32_t node_peers_live(const struct node *n)
{
    uint32_t live = 0;
    unsigned long long mono = lg_mono_ms();
    for (uint32_t k = 0; k < n->set.n; k++) {
        uint32_t i = n->set.r[k].slot;
        if (i != n->slot && i < GOV_SLOTS_MAX && n->peer_seen_ms[i] != 0 &&
            mono - n->peer_seen_ms[i] < NODE_PEER_LIVE_MS)
            live++;
    }
    return live;
}

uint64_t node_view_behind(const struct node *n, uint64_t my_view)
{
    uint32_t ahead = 0;
    uint64_t lowest = UINT64_MAX;
    unsigned long long mono = lg_mono_ms();
    for (uint32_t k = 0; k < n->set.n; k++) {
        uint32_t i = n->set.r[k].slot;
        if (i == n->slot || i >= GOV_SLOTS_MAX || n->peer_seen_ms[i] == 0 ||
            mono - n->peer_seen_ms[i] >= NODE_PEER_LIVE_MS ||
            n->peer_view[i] <= my_view)
            continue;
        ahead++;
        if (n->peer_view[i] < lowest)
            lowest = n->peer_view[i];
    }
    return ahead >= pbft_faults(n->set.n) + 1 ? lowest : 0;
}

void node_metrics_update(struct node *n)
{
    struct node_metrics m;
    memset(&m, 0, sizeof(m));
    if (n->pbft != NULL)
        pbft_get_status(n->pbft, &m.st);
    /* Replicas are shown by slot, their stable name. */
    m.st.primary = node_slot_of(&n->set, m.st.primary);
    m.replica = n->pbft != NULL;
    m.n_replicas = n->set.n;
    m.epoch_base = n->set.base_height;
    if (n->net != NULL)
        net_get_stats(n->net, &m.net);
    ledger_tip(n->ledger, &m.tip);
    m.commits_total = n->commits_total;
    m.txs_total = n->txs_total;
    m.synced_writes = n->group_syncs;
    m.loop_turns = n->loop_turns;
    m.early_forwards = n->early_forwards;
    tx_sigcache_stats(n->sigs, &m.sig_hits, &m.sig_misses);
    m.last_batch_size = n->last_batch_size;
    m.waiting = n->n_waiters;
    m.fetching = n->fetch.active || m.st.fetching_state;
    m.fetch_target = n->fetch.target;
    m.peer_tip = n->peer_tip;
    m.peers_live = node_peers_live(n);
    m.view_behind = node_view_behind(n, m.st.view);
    pthread_mutex_lock(&n->q_mu);
    m.queue_len = (uint32_t)n->q_len;
    pthread_mutex_unlock(&n->q_mu);
    if (m.st.view != n->last_view_logged) {
        lg_log(LG_INFO, "view_entered", "view=%llu primary=%u height=%llu",
               (unsigned long long)m.st.view, m.st.primary,
               (unsigned long long)m.tip.height);
        n->last_view_logged = m.st.view;
    }
    pthread_mutex_lock(&n->m_mu);
    n->m = m;
    pthread_mutex_unlock(&n->m_mu);
}

struct body {
    char *buf;
    size_t len;
};

static void body_printf(struct body *b, const char *fmt, ...) LG_PRINTF(2, 3);

static void body_printf(struct body *b, const char *fmt, ...)
{
    if (b->len >= BODY_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->buf + b->len, BODY_MAX - b->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        b->len += (size_t)k;
    if (b->len >= BODY_MAX)
        b->len = BODY_MAX - 1;
}

static void render_metric(struct body *b, const char *name, const char *type,
                          const char *help, unsigned long long v)
{
    body_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
                type, name, v);
}

static void render_metrics(struct node *n, const struct node_metrics *m,
                           struct body *b)
{
    /* The links' counters come from the loop's copy: the loop reopens the
     * links when the replica set changes. */
    struct net_stats ns = m->net;
    struct api_stats as;
    api_get_stats(n->api, &as);
    render_metric(b, "trialchain_view", "gauge", "Current PBFT view.",
                  m->st.view);
    render_metric(b, "trialchain_replicas", "gauge",
                  "Replicas in the set in force.", m->n_replicas);
    render_metric(b, "trialchain_replica_set_height", "gauge",
                  "Block whose governance made the replica set in force "
                  "(0: the genesis set).",
                  m->epoch_base);
    render_metric(b, "trialchain_primary", "gauge",
                  "Primary replica of the current view.", m->st.primary);
    render_metric(b, "trialchain_last_executed_seq", "gauge",
                  "Last executed sequence number.", m->st.last_executed);
    render_metric(b, "trialchain_stable_seq", "gauge",
                  "Stable checkpoint (low water mark).", m->st.stable_seq);
    render_metric(b, "trialchain_height", "gauge", "Ledger height.",
                  m->tip.height);
    render_metric(b, "trialchain_last_certified", "gauge",
                  "Highest certified block.", m->tip.last_certified);
    render_metric(b, "trialchain_log_size", "gauge",
                  "Transactions in the ledger.", m->tip.log_size);
    render_metric(b, "trialchain_commits_total", "counter",
                  "Blocks executed by this process.", m->commits_total);
    render_metric(b, "trialchain_txs_committed_total", "counter",
                  "Transactions executed by this process.", m->txs_total);
    render_metric(b, "trialchain_synced_writes_total", "counter",
                  "Synced store writes (one per loop turn that wrote).",
                  m->synced_writes);
    render_metric(b, "trialchain_loop_turns_total", "counter",
                  "Turns of the node's loop (wake-ups).", m->loop_turns);
    render_metric(b, "trialchain_early_forwards_total", "counter",
                  "Client requests forwarded to the primary, sent ahead of "
                  "their turn's synced write.",
                  m->early_forwards);
    render_metric(b, "trialchain_tx_sig_cache_hits_total", "counter",
                  "Transaction signatures found already verified.",
                  m->sig_hits);
    render_metric(b, "trialchain_tx_sig_cache_misses_total", "counter",
                  "Transaction signatures verified (not found in the cache).",
                  m->sig_misses);
    render_metric(b, "trialchain_view_changes_total", "counter",
                  "Views entered after the first.", m->st.view_changes);
    render_metric(b, "trialchain_peers_connected", "gauge",
                  "Peers heard from in the last few seconds.", m->peers_live);
    render_metric(b, "trialchain_peer_links_up", "gauge",
                  "Outgoing peer links up (TCP).", ns.peers_connected);
    render_metric(b, "trialchain_peer_certified_max", "gauge",
                  "Highest certified height a peer reported.", m->peer_tip);
    render_metric(b, "trialchain_bad_signatures_total", "counter",
                  "Consensus messages with a bad signature.",
                  m->st.bad_signatures);
    render_metric(b, "trialchain_vote_verifies_total", "counter",
                  "Consensus signatures verified by the current replica set's "
                  "core (votes, and votes in certificates).",
                  m->st.signatures_verified);
    render_metric(b, "trialchain_request_pool_size", "gauge",
                  "Client requests waiting to be ordered.",
                  m->st.pending_requests);
    render_metric(b, "trialchain_batch_size", "gauge",
                  "Transactions in the last executed block.",
                  m->last_batch_size);
    render_metric(b, "trialchain_commit_waiters", "gauge",
                  "Clients waiting for their commit.", m->waiting);
    render_metric(b, "trialchain_input_queue", "gauge",
                  "Inputs queued for the event loop.", m->queue_len);
    render_metric(b, "trialchain_catching_up", "gauge",
                  "1 while fetching blocks from peers.", m->fetching);
    render_metric(b, "trialchain_client_requests_total", "counter",
                  "Client API requests received.", as.requests);
    render_metric(b, "trialchain_peer_frames_in_total", "counter",
                  "Peer frames accepted.", ns.frames_in);
    render_metric(b, "trialchain_peer_frames_out_total", "counter",
                  "Peer frames sent.", ns.frames_out);
    body_printf(b,
                "# HELP trialchain_dropped_messages_total Input dropped, by "
                "reason.\n# TYPE trialchain_dropped_messages_total counter\n");
    const struct {
        const char *reason;
        unsigned long long v;
    } drops[] = {
        {"bad_frame", ns.dropped_bad_frame},
        {"throttled", ns.dropped_throttled},
        {"send_buffer_full", ns.dropped_send_full},
        {"queue_full", atomic_load(&n->dropped_queue_full)},
        {"undecodable", atomic_load(&n->dropped_undecodable)},
        {"unwanted", atomic_load(&n->dropped_unwanted)},
        {"core_rejected", m->st.dropped},
        {"bad_client_request", as.bad_requests},
        {"client_throttled", as.throttled},
        {"tx_refused", atomic_load(&n->client_rejected)},
    };
    for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
        body_printf(b,
                    "trialchain_dropped_messages_total{reason=\"%s\"} %llu\n",
                    drops[i].reason, drops[i].v);
}

/* One reason per line; none means ready. */
static void render_readyz(struct node *n, const struct node_metrics *m,
                          struct body *b, uint16_t *status)
{
    uint32_t total = m->n_replicas;
    uint32_t q = pbft_quorum(total);
    size_t before = b->len;
    if (!m->replica)
        body_printf(b,
                    "not a replica of the current set of %u: following "
                    "the ledger until governance adds this node\n",
                    total);
    if (m->peers_live + 1 < q)
        body_printf(b, "hearing from %u of %u replicas, quorum is %u\n",
                    m->peers_live + 1, total, q);
    if (m->fetching)
        body_printf(b, "catching up: at height %llu, fetching up to %llu\n",
                    (unsigned long long)m->tip.height,
                    (unsigned long long)m->fetch_target);
    if (m->view_behind != 0)
        body_printf(b, "in view %llu while peers are in view %llu or later\n",
                    (unsigned long long)m->st.view,
                    (unsigned long long)m->view_behind);
    if (!m->fetching && m->peer_tip > m->tip.height + NODE_BEHIND_SLACK)
        body_printf(b, "behind: at height %llu, peers certified %llu\n",
                    (unsigned long long)m->tip.height,
                    (unsigned long long)m->peer_tip);
    if (atomic_load(&n->stopping))
        body_printf(b, "shutting down\n");
    if (b->len == before) {
        body_printf(b, "ready: height %llu, view %llu\n",
                    (unsigned long long)m->tip.height,
                    (unsigned long long)m->st.view);
        *status = 200;
    } else {
        *status = 503;
    }
}

size_t node_not_ready(struct node *n, char *buf, size_t cap)
{
    node_metrics_update(n);
    struct body b = {.buf = malloc(BODY_MAX), .len = 0};
    if (b.buf == NULL || cap == 0) {
        free(b.buf);
        return 0;
    }
    uint16_t status = 503;
    render_readyz(n, &n->m, &b, &status); /* loop thread: n->m is ours */
    size_t lines = 0;
    buf[0] = '\0';
    if (status != 200) {
        snprintf(buf, cap, "%.*s", (int)b.len, b.buf);
        for (char *p = buf; *p != '\0'; p++)
            lines += *p == '\n';
    }
    free(b.buf);
    return lines;
}

int node_http_render(void *arg, const char *path, char **body, size_t *len,
                     uint16_t *status)
{
    struct node *n = arg;
    struct body b = {.buf = malloc(BODY_MAX), .len = 0};
    if (b.buf == NULL)
        return LG_ENOMEM;
    struct node_metrics m;
    pthread_mutex_lock(&n->m_mu);
    m = n->m;
    pthread_mutex_unlock(&n->m_mu);
    *status = 200;
    if (strcmp(path, "/metrics") == 0) {
        render_metrics(n, &m, &b);
    } else if (strcmp(path, "/readyz") == 0) {
        render_readyz(n, &m, &b, status);
    } else if (strcmp(path, "/healthz") == 0) {
        body_printf(&b, "ok\n");
    } else {
        body_printf(&b, "not found\n");
        *status = 404;
    }
    *body = b.buf;
    *len = b.len;
    return LG_OK;
}

/* The web view's status columns (called with ledger_mu held, so the loop
 * is waiting for input and its peer tables are still). */
void node_web_status(void *arg, struct web_status *out)
{
    struct node *n = arg;
    struct node_metrics m;
    pthread_mutex_lock(&n->m_mu);
    m = n->m;
    pthread_mutex_unlock(&n->m_mu);
    memset(out, 0, sizeof(*out));
    out->replica = n->slot;
    out->view = m.st.view;
    out->primary = m.st.primary;
    out->height = m.tip.height;
    struct body b = {.buf = malloc(BODY_MAX), .len = 0};
    uint16_t status = 503;
    if (b.buf != NULL) {
        render_readyz(n, &m, &b, &status);
        if (status != 200) {
            size_t k = strcspn(b.buf, "\n");
            snprintf(out->not_ready, sizeof(out->not_ready), "%.*s", (int)k,
                     b.buf);
        }
        free(b.buf);
    }
    out->ready = status == 200;
    for (uint32_t k = 0; k < n->set.n; k++) {
        uint32_t i = n->set.r[k].slot;
        if (i >= PBFT_MAX_REPLICAS)
            continue;
        out->connected[i] = i == n->slot || net_peer_connected(n->net, i);
        out->peer_height[i] =
            i == n->slot ? m.tip.last_certified : n->peer_certified[i];
    }
}
