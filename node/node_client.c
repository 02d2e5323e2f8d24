/*
 * node_client.c - client requests on the loop thread: submissions (checked
 * statelessly before the core sees them), commit waiters, and queries
 * answered from the ledger and the registry.
 *
 * Waiters: a submit with wait=true holds its API context until the tx's
 * block is certified (the reply carries the Receipt, certificate included)
 * or its deadline passes (REPLY_TIMEOUT). They are bounded by
 * limits.waiting_max and found by tx id through an open-addressing index.
 */
#include "node_int.h"
#include "tx.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT   50
#define PAGE_MAX       200
#define PAGE_BYTES_MAX (8u << 20)
#define WAIT_MAX_MS    120000u
#define IDX_EMPTY      (-1)
#define IDX_TOMB       (-2)

/* ---- the waiter index
 * -------------------------------------------------------- */

static uint32_t widx_hash(const struct node *n, const uint8_t id[32])
{
    uint32_t h;
    memcpy(&h, id, sizeof(h)); /* tx ids are SHA-256: already uniform */
    return h & (n->wait_index_cap - 1);
}

int node_waiters_init(struct node *n, uint32_t max)
{
    uint32_t cap = 16;
    while (cap < 2 * max)
        cap *= 2;
    n->n_waiters_max = max;
    n->waiters_due_ms = UINT64_MAX;
    n->wait_index_cap = cap;
    n->waiters = calloc(max, sizeof(*n->waiters));
    n->wait_index = malloc(cap * sizeof(*n->wait_index));
    if (n->waiters == NULL || n->wait_index == NULL)
        return LG_ENOMEM;
    for (uint32_t i = 0; i < cap; i++)
        n->wait_index[i] = IDX_EMPTY;
    return LG_OK;
}

void node_waiters_free(struct node *n)
{
    for (uint32_t w = 0; n->waiters != NULL && w < n->n_waiters_max; w++)
        free(n->waiters[w].data);
    free(n->waiters);
    free(n->wait_index);
    n->waiters = NULL;
    n->wait_index = NULL;
}

static void widx_rebuild(struct node *n)
{
    for (uint32_t i = 0; i < n->wait_index_cap; i++)
        n->wait_index[i] = IDX_EMPTY;
    for (uint32_t w = 0; w < n->n_waiters_max; w++) {
        if (!n->waiters[w].used)
            continue;
        uint32_t h = widx_hash(n, n->waiters[w].tx_id);
        while (n->wait_index[h] != IDX_EMPTY)
            h = (h + 1) & (n->wait_index_cap - 1);
        n->wait_index[h] = (int32_t)w;
    }
}

static struct node_waiter *waiter_add(struct node *n, struct api_call *call,
                                      const struct tx_view *v,
                                      const ProtobufCBinaryData *signed_tx,
                                      uint64_t deadline_ms)
{
    if (n->n_waiters >= n->n_waiters_max)
        return NULL;
    uint8_t *copy = malloc(signed_tx->len > 0 ? signed_tx->len : 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, signed_tx->data, signed_tx->len);
    uint32_t w = 0;
    while (n->waiters[w].used)
        w++; /* bounded: fewer than max are used */
    struct node_waiter *wt = &n->waiters[w];
    memset(wt, 0, sizeof(*wt));
    wt->used = true;
    wt->call = call;
    wt->data = copy;
    wt->len = signed_tx->len;
    memcpy(wt->tx_id, v->tx_id, 32);
    memcpy(wt->client, v->signer, 32);
    wt->req_no = v->nonce;
    wt->deadline_ms = deadline_ms;
    if (deadline_ms < n->waiters_due_ms)
        n->waiters_due_ms = deadline_ms;
    n->n_waiters++;
    uint32_t h = widx_hash(n, wt->tx_id);
    while (n->wait_index[h] >= 0)
        h = (h + 1) & (n->wait_index_cap - 1);
    n->wait_index[h] = (int32_t)w;
    return wt;
}

static void waiter_remove(struct node *n, struct node_waiter *wt)
{
    int32_t w = (int32_t)(wt - n->waiters);
    uint32_t h = widx_hash(n, wt->tx_id);
    for (uint32_t i = 0; i < n->wait_index_cap; i++) {
        if (n->wait_index[h] == w) {
            n->wait_index[h] = IDX_TOMB;
            break;
        }
        if (n->wait_index[h] == IDX_EMPTY)
            break;
        h = (h + 1) & (n->wait_index_cap - 1);
    }
    wt->used = false;
    wt->call = NULL;
    free(wt->data);
    wt->data = NULL;
    n->n_waiters--;
    if (n->n_waiters == 0)
        widx_rebuild(n); /* drops the tombstones */
}

void node_waiters_executed(struct node *n, const uint8_t tx_id[32],
                           uint64_t height)
{
    if (n->n_waiters == 0)
        return;
    uint32_t h = widx_hash(n, tx_id);
    for (uint32_t i = 0; i < n->wait_index_cap; i++) {
        int32_t w = n->wait_index[h];
        if (w == IDX_EMPTY)
            break;
        if (w >= 0 && memcmp(n->waiters[w].tx_id, tx_id, 32) == 0 &&
            n->waiters[w].height == 0)
            n->waiters[w].height = height;
        h = (h + 1) & (n->wait_index_cap - 1);
    }
}

/* ---- replies
 * ------------------------------------------------------------------- */

static void reply_submit(struct api_call *call, const uint8_t tx_id[32],
                         bool committed, Tc__Receipt *receipt)
{
    Tc__SubmitReply sr = TC__SUBMIT_REPLY__INIT;
    sr.tx_id.data = (uint8_t *)tx_id;
    sr.tx_id.len = 32;
    sr.committed = committed;
    sr.receipt = receipt;
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_SUBMIT;
    r.submit = &sr;
    api_reply(call, &r);
}

/* Answers the waiter when its receipt exists; true when answered. */
static bool waiter_try_answer(struct node *n, struct node_waiter *wt)
{
    Tc__Receipt *rc = NULL;
    int rv = ledger_receipt(n->ledger, wt->tx_id, &rc);
    if (rv != LG_OK)
        return false;
    reply_submit(wt->call, wt->tx_id, true, rc);
    tc__receipt__free_unpacked(rc, NULL);
    waiter_remove(n, wt);
    return true;
}

void node_waiters_certified(struct node *n)
{
    if (n->n_waiters == 0)
        return;
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    for (uint32_t w = 0; w < n->n_waiters_max && n->n_waiters > 0; w++) {
        struct node_waiter *wt = &n->waiters[w];
        if (wt->used && wt->height != 0 && wt->height <= tip.last_certified)
            (void)waiter_try_answer(n, wt);
    }
}

void node_waiters_recheck(struct node *n)
{
    for (uint32_t w = 0; w < n->n_waiters_max && n->n_waiters > 0; w++) {
        struct node_waiter *wt = &n->waiters[w];
        struct ledger_tx_loc loc;
        if (wt->used && wt->height == 0 &&
            ledger_find_tx(n->ledger, wt->tx_id, &loc) == LG_OK)
            wt->height = loc.height;
    }
    node_waiters_certified(n);
}

void node_waiters_resubmit(struct node *n)
{
    uint32_t count = 0;
    for (uint32_t w = 0; w < n->n_waiters_max && n->pbft != NULL; w++) {
        struct node_waiter *wt = &n->waiters[w];
        if (!wt->used || wt->height != 0 || wt->data == NULL)
            continue;
        struct pbft_request req;
        memcpy(req.client, wt->client, 32);
        req.req_no = wt->req_no;
        req.len = (uint32_t)wt->len;
        req.data = wt->data;
        struct pbft_event ev = {.type = PBFT_EV_REQUEST, .now_ms = lg_now_ms()};
        ev.u.request = &req;
        struct pbft_ready r;
        memset(&r, 0, sizeof(r));
        (void)pbft_step(n->pbft, &ev, &r);
        (void)node_process(n, &r);
        count++;
    }
    if (count > 0)
        lg_log(LG_INFO, "requests_resubmitted", "count=%u", count);
}

void node_waiters_retransmitted(struct node *n,
                                const struct pbft_reply_cached *r)
{
    for (uint32_t w = 0; w < n->n_waiters_max && n->n_waiters > 0; w++) {
        struct node_waiter *wt = &n->waiters[w];
        if (!wt->used || wt->req_no != r->req_no ||
            memcmp(wt->client, r->client, 32) != 0)
            continue;
        struct ledger_tx_loc loc;
        if (ledger_find_tx(n->ledger, wt->tx_id, &loc) == LG_OK) {
            wt->height = loc.height;
            (void)waiter_try_answer(n, wt);
        }
    }
}

void node_waiters_expire(struct node *n, uint64_t now_ms)
{
    /* Runs every loop turn: the table (thousands of slots) is scanned
     * only once the earliest deadline has come. */
    if (now_ms < n->waiters_due_ms)
        return;
    n->waiters_due_ms = UINT64_MAX;
    for (uint32_t w = 0; w < n->n_waiters_max && n->n_waiters > 0; w++) {
        struct node_waiter *wt = &n->waiters[w];
        if (!wt->used)
            continue;
        if (now_ms < wt->deadline_ms) {
            if (wt->deadline_ms < n->waiters_due_ms)
                n->waiters_due_ms = wt->deadline_ms;
            continue;
        }
        /* It may have arrived by state transfer, not execution. */
        if (waiter_try_answer(n, wt))
            continue;
        api_reply_error(wt->call, TC__REPLY_CODE__REPLY_TIMEOUT,
                        "The transaction was not committed within the "
                        "timeout; it may still commit: query it by id.");
        waiter_remove(n, wt);
    }
}

void node_waiters_shutdown(struct node *n)
{
    for (uint32_t w = 0; w < n->n_waiters_max && n->n_waiters > 0; w++) {
        struct node_waiter *wt = &n->waiters[w];
        if (!wt->used)
            continue;
        api_reply_error(wt->call, TC__REPLY_CODE__REPLY_NOT_READY,
                        "The node is shutting down; query the transaction "
                        "by id later.");
        waiter_remove(n, wt);
    }
}

/* ---- submit
 * ----------------------------------------------------------------------- */

static Tc__ReplyCode submit_code(int rv)
{
    switch (rv) {
    case LG_EBADSIG:
        return TC__REPLY_CODE__REPLY_BAD_SIGNATURE;
    case LG_ECHAIN:
        return TC__REPLY_CODE__REPLY_WRONG_CHAIN;
    default:
        return TC__REPLY_CODE__REPLY_BAD_REQUEST;
    }
}

static void submit_refused(struct node *n, struct api_call *call, int rv,
                           const char *why)
{
    uint64_t total = atomic_fetch_add(&n->client_rejected, 1) + 1;
    lg_log(LG_INFO, "tx_refused", "reason=\"%s\" total=%llu", lg_strerror(rv),
           (unsigned long long)total);
    api_reply_error(call, submit_code(rv), why);
}

static void node_submit(struct node *n, struct api_call *call,
                        const Tc__Submit *sub)
{
    char why[256] = "";
    struct tx_view v;
    memset(&v, 0, sizeof(v));
    int rv =
        tx_open_cached(sub->signed_tx.data, sub->signed_tx.len,
                       n->genesis->chain_id, n->sigs, &v, why, sizeof(why));
    if (rv != LG_OK) {
        submit_refused(n, call, rv, why[0] ? why : lg_strerror(rv));
        return;
    }
    char code[40] = "";
    if (registry_signer_check(n->registry, n->store, v.signer, code, why,
                              sizeof(why)) != LG_OK) {
        /* A key outside the consortium (refused by every replica's request
         * check too, never ordered), or a member that may not sign now
         * (suspended, removed, rotated key): the registry would only
         * record the refusal, so say it here. */
        tx_view_free(&v);
        char msg[320];
        snprintf(msg, sizeof(msg), "%s: %s", code[0] ? code : "refused",
                 why[0] ? why : "the signer may not submit transactions");
        submit_refused(n, call, LG_EPERM, msg);
        return;
    }
    if (n->pbft == NULL) {
        tx_view_free(&v);
        api_reply_error(call, TC__REPLY_CODE__REPLY_NOT_READY,
                        "This node is not a replica of the current set (it "
                        "follows the ledger until governance adds it); "
                        "submit to another node.");
        return;
    }
    struct pbft_status st;
    pbft_get_status(n->pbft, &st);
    if (node_view_behind(n, st.view) != 0) {
        /* Our core would forward to a primary the others have left. */
        tx_view_free(&v);
        api_reply_error(call, TC__REPLY_CODE__REPLY_NOT_READY,
                        "This node has not yet joined the consortium's "
                        "current view; submit to another node.");
        return;
    }
    if (st.pending_requests >= n->pending_share) {
        tx_view_free(&v);
        api_reply_error(call, TC__REPLY_CODE__REPLY_BUSY,
                        "Too many transactions are waiting to be ordered; "
                        "retry shortly.");
        return;
    }
    uint64_t timeout =
        sub->timeout_ms ? sub->timeout_ms : n->cfg->limits.submit_timeout_ms;
    if (timeout > WAIT_MAX_MS)
        timeout = WAIT_MAX_MS;
    struct node_waiter *wt = NULL;
    if (sub->wait) {
        wt = waiter_add(n, call, &v, &sub->signed_tx, lg_now_ms() + timeout);
        if (wt == NULL) {
            tx_view_free(&v);
            api_reply_error(call, TC__REPLY_CODE__REPLY_BUSY,
                            "Too many clients are waiting for commits; retry "
                            "later.");
            return;
        }
        struct ledger_tx_loc loc;
        if (ledger_find_tx(n->ledger, v.tx_id, &loc) == LG_OK) {
            wt->height = loc.height; /* a resubmission of a committed tx */
            if (waiter_try_answer(n, wt)) {
                tx_view_free(&v);
                return;
            }
        }
    }
    struct pbft_request req;
    memcpy(req.client, v.signer, 32);
    req.req_no = v.nonce;
    req.len = (uint32_t)sub->signed_tx.len;
    req.data = sub->signed_tx.data;
    struct pbft_event ev = {.type = PBFT_EV_REQUEST, .now_ms = lg_now_ms()};
    ev.u.request = &req;
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    int prv = pbft_step(n->pbft, &ev, &r);
    (void)node_process(n, &r);
    uint8_t id[32];
    memcpy(id, v.tx_id, 32);
    tx_view_free(&v);
    if (prv == PBFT_EFULL || prv == PBFT_EBADMSG || prv == PBFT_EINVAL ||
        prv == PBFT_EBADSIG) {
        /* The waiter may have been answered inside node_process. */
        if (wt != NULL && wt->used && wt->call == call)
            waiter_remove(n, wt);
        if (prv == PBFT_EFULL)
            api_reply_error(call, TC__REPLY_CODE__REPLY_BUSY,
                            "The node's request pool is full; retry later.");
        else
            api_reply_error(call, TC__REPLY_CODE__REPLY_BAD_REQUEST,
                            pbft_strerror(prv));
        return;
    }
    if (!sub->wait)
        reply_submit(call, id, false, NULL);
}

/* ---- queries
 * ---------------------------------------------------------------------- */

static void query_governance(struct node *n, struct api_call *call,
                             const Tc__QueryGovernance *q)
{
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    /* Expiry is judged against the last block's time, as the registry
     * will when it executes the next approval. */
    node_gov_query(n->registry, n->store, tip.time_ms, q, &r);
    api_reply(call, &r);
    node_gov_query_clear(&r);
}

static void reply_error_rv(struct api_call *call, int rv, const char *what)
{
    char msg[256];
    Tc__ReplyCode code = TC__REPLY_CODE__REPLY_INTERNAL;
    if (rv == LG_ENOTFOUND)
        code = TC__REPLY_CODE__REPLY_NOT_FOUND;
    else if (rv == LG_EINVAL)
        code = TC__REPLY_CODE__REPLY_BAD_REQUEST;
    else if (rv == LG_ENOTREADY)
        code = TC__REPLY_CODE__REPLY_NOT_READY;
    snprintf(msg, sizeof(msg), "%s: %s.", what, lg_strerror(rv));
    api_reply_error(call, code, msg);
}

static void query_status(struct node *n, struct api_call *call)
{
    struct pbft_status st;
    struct ledger_tip tip;
    memset(&st, 0, sizeof(st));
    if (n->pbft != NULL)
        pbft_get_status(n->pbft, &st);
    ledger_tip(n->ledger, &tip);
    Tc__StatusReply s = TC__STATUS_REPLY__INIT;
    s.chain_id.data = n->genesis->chain_id;
    s.chain_id.len = 32;
    s.replica = n->slot;
    s.height = tip.height;
    s.view = st.view;
    s.primary = node_slot_of(&n->set, st.primary);
    s.last_block_hash.data = tip.block_hash;
    s.last_block_hash.len = 32;
    s.log_size = tip.log_size;
    s.log_root.data = tip.log_root;
    s.log_root.len = 32;
    uint32_t live = node_peers_live(n);
    s.peers_connected = live;
    s.n_replicas = n->set.n;
    s.stable_seq = st.stable_seq;
    s.last_certified = tip.last_certified;
    /* The same reasons as /readyz, from one place. */
    char text[1024];
    char *reasons[8];
    size_t nr = 0;
    (void)node_not_ready(n, text, sizeof(text));
    for (char *line = text; *line != '\0' && nr < 8;) {
        char *end = strchr(line, '\n');
        if (end == NULL)
            break;
        *end = '\0';
        reasons[nr++] = line;
        line = end + 1;
    }
    s.ready = nr == 0;
    s.n_not_ready_reasons = nr;
    s.not_ready_reasons = reasons;
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_STATUS;
    r.status = &s;
    api_reply(call, &r);
}

static void query_block(struct node *n, struct api_call *call, uint64_t h)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rv = ledger_get_block(n->ledger, h, &bytes, &len);
    if (rv != LG_OK) {
        reply_error_rv(call, rv, "no such block");
        return;
    }
    Tc__Block *b = tc__block__unpack(NULL, len, bytes);
    free(bytes);
    if (b == NULL) {
        api_reply_error(call, TC__REPLY_CODE__REPLY_INTERNAL,
                        "The stored block does not decode.");
        return;
    }
    Tc__Certificate *cert = NULL;
    if (ledger_get_cert(n->ledger, h, &cert) != LG_OK)
        cert = NULL; /* not certified yet: the block alone */
    Tc__BlockReply br = TC__BLOCK_REPLY__INIT;
    br.block = b;
    br.cert = cert;
    /* The replica-set changes below h, so that a client holding only the
     * genesis can check h's certificate. A change block not certified yet
     * leaves them out (the client then says it cannot check). */
    Tc__EpochLink **links = NULL;
    size_t n_links = 0;
    if (ledger_epoch_links(n->ledger, h, &links, &n_links) == LG_OK) {
        br.epochs = links;
        br.n_epochs = n_links;
    } else {
        links = NULL;
        n_links = 0;
    }
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_BLOCK;
    r.block = &br;
    api_reply(call, &r);
    ledger_epoch_links_free(links, n_links);
    tc__block__free_unpacked(b, NULL);
    if (cert != NULL)
        tc__certificate__free_unpacked(cert, NULL);
}

static void query_tx(struct node *n, struct api_call *call,
                     const ProtobufCBinaryData *id)
{
    if (id->len != 32) {
        api_reply_error(call, TC__REPLY_CODE__REPLY_BAD_REQUEST,
                        "A transaction id is 32 bytes.");
        return;
    }
    Tc__Receipt *rc = NULL;
    int rv = ledger_receipt(n->ledger, id->data, &rc);
    if (rv != LG_OK) {
        reply_error_rv(call, rv, "no receipt for this transaction");
        return;
    }
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_RECEIPT;
    r.receipt = rc;
    api_reply(call, &r);
    tc__receipt__free_unpacked(rc, NULL);
}

static void query_consistency(struct node *n, struct api_call *call,
                              const Tc__GetConsistency *q)
{
    uint8_t path[MERKLE_MAX_PATH][32];
    size_t n_path = 0;
    int rv = ledger_consistency(n->ledger, q->size1, q->size2, path, &n_path);
    if (rv != LG_OK) {
        reply_error_rv(call, rv, "no consistency proof for these sizes");
        return;
    }
    ProtobufCBinaryData items[MERKLE_MAX_PATH];
    for (size_t i = 0; i < n_path; i++) {
        items[i].data = path[i];
        items[i].len = 32;
    }
    Tc__ConsistencyProof p = TC__CONSISTENCY_PROOF__INIT;
    p.size1 = q->size1;
    p.size2 = q->size2;
    p.n_path = n_path;
    p.path = items;
    Tc__ConsistencyReply cr = TC__CONSISTENCY_REPLY__INIT;
    cr.proof = &p;
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_CONSISTENCY;
    r.consistency = &cr;
    api_reply(call, &r);
}

static void query_genesis(struct node *n, struct api_call *call)
{
    Tc__GenesisReply g = TC__GENESIS_REPLY__INIT;
    g.genesis.data = n->genesis->raw;
    g.genesis.len = n->genesis->raw_len;
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_GENESIS;
    r.genesis = &g;
    api_reply(call, &r);
}

static void page_bounds(const Tc__Page *p, uint64_t *offset, size_t *limit)
{
    *offset = p ? p->offset : 0;
    *limit = p && p->limit ? p->limit : PAGE_DEFAULT;
    if (*limit > PAGE_MAX)
        *limit = PAGE_MAX;
}

/* Replies with the entries at idx[0..k) (and summary, when set). */
static void reply_entries(struct node *n, struct api_call *call,
                          Tc__TrialSummary *summary, const uint64_t *idx,
                          size_t k, uint64_t offset, uint64_t total)
{
    Tc__LedgerEntry ents[PAGE_MAX];
    Tc__LedgerEntry *ptrs[PAGE_MAX];
    size_t got = 0, bytes = 0;
    int rv = LG_OK;
    for (size_t i = 0; i < k && bytes < PAGE_BYTES_MAX; i++) {
        tc__ledger_entry__init(&ents[got]);
        rv = ledger_entry(n->ledger, idx[i], &ents[got]);
        if (rv != LG_OK)
            break;
        bytes += ents[got].signed_tx.len + ents[got].result.len;
        ptrs[got] = &ents[got];
        got++;
    }
    if (rv != LG_OK) {
        reply_error_rv(call, rv, "cannot read the ledger");
    } else {
        Tc__EntriesReply er = TC__ENTRIES_REPLY__INIT;
        er.summary = summary;
        er.n_entries = got;
        er.entries = ptrs;
        er.total = total;
        er.more = offset + got < total;
        Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
        r.reply_case = TC__CLIENT_REPLY__REPLY_ENTRIES;
        r.entries = &er;
        api_reply(call, &r);
    }
    for (size_t i = 0; i < got; i++)
        ledger_entry_clear(&ents[i]);
}

static void query_trial(struct node *n, struct api_call *call,
                        const Tc__QueryTrial *q)
{
    Tc__TrialSummary sum;
    int rv = registry_trial_summary(n->registry, n->store, q->trial_id, &sum);
    if (rv != LG_OK) {
        reply_error_rv(call, rv, "no such trial");
        return;
    }
    uint64_t offset, total = 0;
    size_t limit, k = 0;
    uint64_t idx[PAGE_MAX];
    page_bounds(q->page, &offset, &limit);
    if (!q->summary_only)
        rv = registry_trial_entries(n->registry, n->store, q->trial_id, offset,
                                    limit, idx, &k, &total);
    if (rv != LG_OK)
        reply_error_rv(call, rv, "cannot list the trial's entries");
    else
        reply_entries(n, call, &sum, idx, k, offset, total);
    registry_trial_summary_clear(&sum);
}

static void query_pseudonym(struct node *n, struct api_call *call,
                            const Tc__QueryPseudonym *q)
{
    if (q->pseudonym.len != 32) {
        api_reply_error(call, TC__REPLY_CODE__REPLY_BAD_REQUEST,
                        "A pseudonym is 32 bytes.");
        return;
    }
    uint64_t offset, total = 0, idx[PAGE_MAX];
    size_t limit, k = 0;
    page_bounds(q->page, &offset, &limit);
    int rv = registry_pseudonym_entries(n->registry, n->store, q->trial_id,
                                        q->pseudonym.data, offset, limit, idx,
                                        &k, &total);
    if (rv != LG_OK)
        reply_error_rv(call, rv, "cannot list the pseudonym's entries");
    else
        reply_entries(n, call, NULL, idx, k, offset, total);
}

static void query_member(struct node *n, struct api_call *call,
                         const Tc__QueryMember *q)
{
    uint64_t offset, total = 0, idx[PAGE_MAX];
    size_t limit, k = 0;
    page_bounds(q->page, &offset, &limit);
    int rv = registry_member_entries(n->registry, n->store, q->member, offset,
                                     limit, idx, &k, &total);
    if (rv != LG_OK)
        reply_error_rv(call, rv, "cannot list the member's entries");
    else
        reply_entries(n, call, NULL, idx, k, offset, total);
}

static void query_list_trials(struct node *n, struct api_call *call,
                              const Tc__ListTrials *q)
{
    static char ids[PAGE_MAX][REGISTRY_ID_MAX + 1];
    uint64_t offset, total = 0;
    size_t limit, k = 0;
    page_bounds(q->page, &offset, &limit);
    int rv = registry_list_trials(n->registry, n->store, offset, limit, ids, &k,
                                  &total);
    if (rv != LG_OK) {
        reply_error_rv(call, rv, "cannot list trials");
        return;
    }
    Tc__TrialSummary sums[PAGE_MAX];
    Tc__TrialSummary *ptrs[PAGE_MAX];
    size_t got = 0;
    for (size_t i = 0; i < k; i++) {
        if (registry_trial_summary(n->registry, n->store, ids[i], &sums[got]) !=
            LG_OK)
            continue;
        ptrs[got] = &sums[got];
        got++;
    }
    Tc__TrialList tl = TC__TRIAL_LIST__INIT;
    tl.n_trials = got;
    tl.trials = ptrs;
    tl.more = offset + k < total;
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_TRIALS;
    r.trials = &tl;
    api_reply(call, &r);
    for (size_t i = 0; i < got; i++)
        registry_trial_summary_clear(&sums[i]);
}

void node_client_handle(struct node *n, struct api_call *call,
                        const Tc__ClientRequest *req)
{
    switch (req->req_case) {
    case TC__CLIENT_REQUEST__REQ_SUBMIT:
        node_submit(n, call, req->submit);
        break;
    case TC__CLIENT_REQUEST__REQ_STATUS:
        query_status(n, call);
        break;
    case TC__CLIENT_REQUEST__REQ_BLOCK:
        query_block(n, call, req->block->height);
        break;
    case TC__CLIENT_REQUEST__REQ_TX:
        query_tx(n, call, &req->tx->tx_id);
        break;
    case TC__CLIENT_REQUEST__REQ_CONSISTENCY:
        query_consistency(n, call, req->consistency);
        break;
    case TC__CLIENT_REQUEST__REQ_TRIAL:
        query_trial(n, call, req->trial);
        break;
    case TC__CLIENT_REQUEST__REQ_PSEUDONYM:
        query_pseudonym(n, call, req->pseudonym);
        break;
    case TC__CLIENT_REQUEST__REQ_MEMBER:
        query_member(n, call, req->member);
        break;
    case TC__CLIENT_REQUEST__REQ_LIST_TRIALS:
        query_list_trials(n, call, req->list_trials);
        break;
    case TC__CLIENT_REQUEST__REQ_GENESIS:
        query_genesis(n, call);
        break;
    case TC__CLIENT_REQUEST__REQ_GOVERNANCE:
        query_governance(n, call, req->governance);
        break;
    default:
        api_reply_error(call, TC__REPLY_CODE__REPLY_BAD_REQUEST,
                        "Unknown request type.");
        break;
    }
}
