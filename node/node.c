/*
 * node.c - the event loop that drives the consensus core (see node.h).
 *
 * Threads: NNG threads only decrypt peer frames and decode client
 * envelopes, then push into the bounded input queue; everything that
 * touches the core, the ledger or the store runs on the loop thread.
 */
#include "node.h"

#include "api.h"
#include "audit.h"
#include "codec.h"
#include "crypto.h"
#include "genesis.h"
#include "http.h"
#include "ledger.h"
#include "net.h"
#include "node_int.h"
#include "pbft.h"
#include "peer.pb-c.h"
#include "registry.h"
#include "store.h"
#include "tx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NODE_DRAIN_MAX    256 /* inputs handled per loop turn */
#define NODE_IDLE_WAIT_MS 100 /* housekeeping at least this often */
#define NODE_EXEC_Q       4096
#define NODE_OUTBOX_MAX   4096 /* frames per group commit, at most */

/* ---- the input queue ------------------------------------------------------
 */

static bool node_queue_push(struct node *n, const struct node_input *in,
                            bool force)
{
    bool ok = false;
    pthread_mutex_lock(&n->q_mu);
    if (n->q_len < n->q_cap || (force && n->q_len < n->q_cap + 1)) {
        n->q[(n->q_head + n->q_len) % (n->q_cap + 1)] = *in;
        n->q_len++;
        ok = true;
        pthread_cond_signal(&n->q_cv);
    }
    pthread_mutex_unlock(&n->q_mu);
    return ok;
}

/* Pops up to max inputs, waiting until one arrives or deadline_ms (wall
 * clock) passes. */
static size_t node_queue_pop(struct node *n, struct node_input *out, size_t max,
                             uint64_t wait_ms)
{
    pthread_mutex_lock(&n->q_mu);
    if (n->q_len == 0 && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (wait_ms % 1000) * 1000000u;
        ts.tv_sec += (time_t)(wait_ms / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&n->q_cv, &n->q_mu, &ts);
    }
    size_t k = 0;
    while (k < max && n->q_len > 0) {
        out[k++] = n->q[n->q_head];
        n->q_head = (n->q_head + 1) % (n->q_cap + 1);
        n->q_len--;
    }
    pthread_mutex_unlock(&n->q_mu);
    return k;
}

static void node_input_free(struct node_input *in)
{
    free(in->data);
    if (in->req != NULL)
        tc__client_request__free_unpacked(in->req, NULL);
    if (in->call != NULL)
        api_reply_error(in->call, TC__REPLY_CODE__REPLY_NOT_READY,
                        "The node is shutting down.");
}

/* Runs on an NNG thread. */
void node_peer_recv(void *arg, uint32_t from, uint8_t *data, size_t len)
{
    struct node *n = arg;
    struct node_input in = {
        .type = NODE_IN_PEER, .from = from, .data = data, .len = len};
    if (!node_queue_push(n, &in, false)) {
        free(data);
        atomic_fetch_add(&n->dropped_queue_full, 1);
    }
}

/* Runs on an NNG thread. */
static void node_client_request(void *arg, struct api_call *call,
                                Tc__ClientRequest *req)
{
    struct node *n = arg;
    struct node_input in = {.type = NODE_IN_CLIENT, .call = call, .req = req};
    if (!node_queue_push(n, &in, false)) {
        tc__client_request__free_unpacked(req, NULL);
        atomic_fetch_add(&n->dropped_queue_full, 1);
        api_reply_error(call, TC__REPLY_CODE__REPLY_BUSY,
                        "The node's input queue is full; retry later.");
    }
}

bool node_stop_requested(struct node *n)
{
    return atomic_load(&n->stopping);
}

bool node_was_removed(struct node *n)
{
    return n->removed;
}

void node_stop(struct node *n)
{
    struct node_input in = {.type = NODE_IN_STOP};
    atomic_store(&n->stopping, true);
    (void)node_queue_push(n, &in, true);
}

/* ---- driving the core -----------------------------------------------------
 */

/* Writes the core's records without syncing: node_flush syncs once for
 * everything written in this loop turn before any message leaves. */
static int node_persist(struct node *n, const struct pbft_ready *r)
{
    if (r->n_persist == 0)
        return LG_OK;
    struct store_batch *b = store_batch_new();
    if (b == NULL)
        return LG_ENOMEM;
    int rv = LG_OK;
    for (uint32_t i = 0; rv == LG_OK && i < r->n_persist; i++) {
        const struct pbft_record *rec = &r->persist[i];
        if (rec->type == PBFT_REC_GC) {
            rv = node_store_gc(n, b, rec->seq);
            continue;
        }
        uint8_t key[CODEC_RECORD_KEY_SIZE];
        size_t klen;
        uint8_t *val = NULL;
        size_t vlen = 0;
        rv = codec_record_key(rec, key, &klen);
        if (rv == LG_OK)
            rv = codec_encode_record(rec, &val, &vlen);
        if (rv == LG_OK)
            store_batch_put(b, key, klen, val, vlen);
        free(val);
    }
    if (rv == LG_OK)
        rv = store_write(n->store, b, false);
    if (rv == LG_OK)
        n->unsynced = true;
    store_batch_free(b);
    return rv;
}

/* TRIALCHAIN_FAULTS: each frame to each peer is delivered, dropped,
 * duplicated or held back as faultnet decides; held frames wait in a
 * bounded queue that node_timers releases. */
static void node_hold(struct node *n, uint32_t to, const uint8_t *buf,
                      size_t len, uint64_t at_ms)
{
    if (n->n_delayed == NODE_DELAYED_MAX)
        return; /* a full hold queue drops, like a congested link */
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return;
    memcpy(copy, buf, len);
    n->delayed[n->n_delayed] =
        (struct node_out){.to = to, .buf = copy, .len = len};
    n->delayed_at[n->n_delayed++] = at_ms;
}

static void node_send_faulty_to(struct node *n, uint32_t to,
                                const struct node_out *o, uint64_t now)
{
    struct faultnet_verdict v;
    faultnet_decide(&n->faults, n->slot, to, now, &v);
    for (uint32_t k = 0; k < v.n_copies && k < 2; k++) {
        if (v.at_ms[k] <= now)
            (void)net_send(n->net, to, o->buf, o->len);
        else
            node_hold(n, to, o->buf, o->len, v.at_ms[k]);
    }
}

static void node_send_faulty(struct node *n, const struct node_out *o)
{
    uint64_t now = lg_mono_ms();
    if (o->to != PBFT_BROADCAST) {
        node_send_faulty_to(n, o->to, o, now);
        return;
    }
    for (uint32_t to = 0; to < GOV_SLOTS_MAX; to++) {
        if (to != n->slot && net_peer_present(n->net, to))
            node_send_faulty_to(n, to, o, now);
    }
}

/* Sends the held frames that are due (in any order: reordering is one of
 * the faults). Returns ms until the next one, or UINT64_MAX. */
static uint64_t node_release_held(struct node *n)
{
    uint64_t now = lg_mono_ms(), next = UINT64_MAX;
    size_t k = 0;
    for (size_t i = 0; i < n->n_delayed; i++) {
        struct node_out *d = &n->delayed[i];
        if (n->delayed_at[i] <= now) {
            (void)net_send(n->net, d->to, d->buf, d->len);
            free(d->buf);
            continue;
        }
        if (n->delayed_at[i] - now < next)
            next = n->delayed_at[i] - now;
        n->delayed_at[k] = n->delayed_at[i];
        n->delayed[k++] = *d;
    }
    n->n_delayed = k;
    return next;
}

/* Sends the outbox entries still held (early ones only, or all): what
 * goes to one peer travels in as few frames as net_send_parts makes of it,
 * in the order it was queued. */
static void node_send_bundled(struct node *n, bool early_only)
{
    const uint8_t *parts[NODE_OUTBOX_MAX];
    size_t lens[NODE_OUTBOX_MAX];
    for (uint32_t to = 0; to < GOV_SLOTS_MAX; to++) {
        if (to == n->slot || !net_peer_present(n->net, to))
            continue;
        size_t k = 0;
        for (size_t i = 0; i < n->n_out; i++) {
            const struct node_out *o = &n->outbox[i];
            if (o->buf != NULL && (o->early || !early_only) &&
                (o->to == to || o->to == PBFT_BROADCAST)) {
                parts[k] = o->buf;
                lens[k++] = o->len;
            }
        }
        if (k > 0)
            (void)net_send_parts(n->net, to, parts, lens, k);
    }
}

/* Sends and releases the entries held (early ones only, or all). */
static void node_send_out(struct node *n, bool early_only)
{
    if (n->net != NULL && !n->faults.enabled)
        node_send_bundled(n, early_only);
    for (size_t i = 0; i < n->n_out; i++) {
        struct node_out *o = &n->outbox[i];
        if (o->buf == NULL || (early_only && !o->early))
            continue;
        if (n->net != NULL && n->faults.enabled)
            node_send_faulty(n, o); /* frame by frame, as faultnet decides */
        if (early_only)
            n->early_forwards++;
        free(o->buf);
        o->buf = NULL;
    }
}

int node_flush(struct node *n)
{
    /* Forwarded requests leave first: waiting for the sync would only
     * delay the primary's batch. */
    node_send_out(n, true);
    if (n->unsynced) {
        /* A synced LevelDB write syncs its log, and with it every earlier
         * unsynced write: one fsync covers the whole turn. */
        struct store_batch *b = store_batch_new();
        int rv = b ? store_write(n->store, b, true) : LG_ENOMEM;
        store_batch_free(b);
        if (rv != LG_OK) {
            lg_log(LG_ERROR, "persist_failed", "err=\"%s\"", lg_strerror(rv));
            n->fatal = rv;
            return rv;
        }
        n->unsynced = false;
        n->group_syncs++;
    }
    node_send_out(n, false);
    n->n_out = 0;
    return LG_OK;
}

static void node_queue_frame(struct node *n, uint32_t to,
                             const Tc__PeerFrame *f, bool early);

void node_send_core(struct node *n, const struct gov_replica_set *set,
                    uint32_t to, const struct pbft_msg *msg)
{
    uint8_t *body = NULL;
    size_t blen = 0;
    if (codec_encode_msg(msg, &body, &blen) != LG_OK) {
        lg_log(LG_ERROR, "encode_failed", "type=%d", (int)msg->type);
        return;
    }
    Tc__PeerFrame f;
    tc__peer_frame__init(&f);
    f.body_case = TC__PEER_FRAME__BODY_CONSENSUS;
    f.consensus.data = body;
    f.consensus.len = blen;
    f.epoch = set->base_height;
    node_queue_frame(n, node_slot_of(set, to), &f,
                     msg->type == PBFT_MSG_REQUEST);
    free(body);
}

static void node_send(struct node *n, const struct pbft_send *s)
{
    struct byz_out out;
    if (n->byz == NULL) {
        node_send_core(n, &n->set, s->to, s->msg);
        return;
    }
    /* Byzantine test mode: what this replica says instead (its records
     * were persisted honestly; only the wire lies). */
    if (byz_transform(n->byz, s->to, s->msg, &out) != LG_OK)
        return;
    for (uint32_t i = 0; i < out.n_sends; i++)
        node_send_core(n, &n->set, out.sends[i].to, out.sends[i].msg);
}

static void node_queue_frame(struct node *n, uint32_t to,
                             const Tc__PeerFrame *f, bool early)
{
    if (to == n->slot)
        return;
    if (n->n_out == n->out_cap && node_flush(n) != LG_OK)
        return;
    size_t len = tc__peer_frame__get_packed_size(f);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return;
    tc__peer_frame__pack(f, buf);
    n->outbox[n->n_out++] =
        (struct node_out){.to = to, .buf = buf, .len = len, .early = early};
}

void node_send_frame(struct node *n, uint32_t to, const Tc__PeerFrame *f)
{
    node_queue_frame(n, to, f, false);
}

static int node_execute(struct node *n, const struct pbft_execute *ex)
{
    uint8_t hash[32];
    if (n->switch_at != 0)
        return LG_OK; /* beyond a replica-set change: void (node_epoch.c) */
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    int rv;
    if (ex->seq <= tip.height) {
        /* State transfer already installed this block. */
        rv = ledger_block_hash(n->ledger, ex->seq, hash);
    } else {
        rv = ledger_apply(n->ledger, ex, hash);
        if (rv == LG_OK)
            n->unsynced = true; /* deferred: node_flush syncs the block */
    }
    if (rv != LG_OK) {
        lg_log(LG_ERROR, "execute_failed", "seq=%llu err=\"%s\" why=\"%s\"",
               (unsigned long long)ex->seq, lg_strerror(rv),
               ledger_errmsg(n->ledger));
        return rv;
    }
    n->commits_total++;
    n->txs_total += ex->n_requests;
    n->last_batch_size = ex->n_requests;
    for (uint32_t i = 0; i < ex->n_requests; i++) {
        uint8_t id[32];
        tx_id(ex->requests[i].data, ex->requests[i].len, id);
        node_waiters_executed(n, id, ex->seq);
    }
    if (n->exec_len >= NODE_EXEC_Q) {
        lg_log(LG_ERROR, "exec_queue_full", "seq=%llu",
               (unsigned long long)ex->seq);
        return LG_ENOMEM;
    }
    struct node_exec *e =
        &n->exec_q[(n->exec_head + n->exec_len) % NODE_EXEC_Q];
    e->seq = ex->seq;
    memcpy(e->digest, hash, 32);
    n->exec_len++;
    (void)node_epoch_changed(n, ex->seq);
    char hex[65];
    lg_hex(hash, 32, hex);
    lg_log(LG_DEBUG, "block_committed", "height=%llu view=%llu txs=%u hash=%s",
           (unsigned long long)ex->seq, (unsigned long long)ex->view,
           ex->n_requests, hex);
    return LG_OK;
}

static int node_certified(struct node *n, const struct pbft_checkpoint_cert *c)
{
    int rv = ledger_put_cert(n->ledger, c);
    if (rv == LG_OK)
        n->unsynced = true; /* deferred, as blocks */
    if (rv == LG_ECORRUPT) {
        lg_log(LG_ERROR, "diverged", "height=%llu why=\"%s\"",
               (unsigned long long)c->seq, ledger_errmsg(n->ledger));
        return rv;
    }
    if (rv != LG_OK && rv != LG_EINVAL) {
        lg_log(LG_ERROR, "cert_store_failed", "height=%llu err=\"%s\"",
               (unsigned long long)c->seq, lg_strerror(rv));
        return rv;
    }
    node_waiters_certified(n);
    return LG_OK;
}

/* Acts on one ready, advances, then feeds back every executed block (each
 * may yield more work) until none is left. */
static int node_handle_ready(struct node *n, const struct pbft_ready *r)
{
    for (uint32_t i = 0; i < r->n_trace; i++)
        lg_log(LG_DEBUG, "pbft", "%s", r->trace[i].line);
    /* Persist before send: a restart must not contradict what was said. */
    int rv = node_persist(n, r);
    if (rv != LG_OK) {
        lg_log(LG_ERROR, "persist_failed", "err=\"%s\"", lg_strerror(rv));
        return rv;
    }
    /* Queued, not sent: they leave after node_flush's synced write. */
    for (uint32_t i = 0; i < r->n_msgs; i++)
        node_send(n, &r->msgs[i]);
    for (uint32_t i = 0; i < r->n_execute && n->switch_at == 0; i++) {
        rv = node_execute(n, &r->execute[i]);
        if (rv != LG_OK)
            return rv;
    }
    for (uint32_t i = 0; i < r->n_certified; i++) {
        rv = node_certified(n, &r->certified[i]);
        if (rv != LG_OK)
            return rv;
    }
    for (uint32_t i = 0; i < r->n_replies; i++)
        node_waiters_retransmitted(n, &r->replies[i]);
    if (r->fetch != NULL)
        node_fetch_start(n, r->fetch->cert->seq, r->fetch->cert->digest);
    return LG_OK;
}

int node_step(struct node *n, const struct pbft_event *ev)
{
    if (n->pbft == NULL)
        return LG_OK; /* not a replica of the current set */
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    int prv = pbft_step(n->pbft, ev, &r);
    if (prv != PBFT_OK)
        lg_log(LG_DEBUG, "pbft_rejected", "event=%d err=\"%s\"", (int)ev->type,
               pbft_strerror(prv));
    return node_process(n, &r);
}

int node_process(struct node *n, struct pbft_ready *first)
{
    struct pbft_ready r;
    int rv = node_handle_ready(n, first);
    pbft_advance(n->pbft);
    while (rv == LG_OK && n->exec_len > 0) {
        struct node_exec e = n->exec_q[n->exec_head];
        n->exec_head = (n->exec_head + 1) % NODE_EXEC_Q;
        n->exec_len--;
        struct pbft_event ex = {.type = PBFT_EV_EXECUTED,
                                .now_ms = lg_now_ms()};
        ex.u.executed.seq = e.seq;
        memcpy(ex.u.executed.digest, e.digest, 32);
        memset(&r, 0, sizeof(r));
        (void)pbft_step(n->pbft, &ex, &r);
        rv = node_handle_ready(n, &r);
        pbft_advance(n->pbft);
    }
    if (rv == LG_OK && n->switch_at != 0)
        rv = node_epoch_switch(n);
    if (rv != LG_OK)
        n->fatal = rv;
    return rv;
}

/* ---- peer input ------------------------------------------------------------
 */

static void node_peer_consensus(struct node *n, uint32_t slot, uint64_t epoch,
                                const uint8_t *buf, size_t len)
{
    /* Route by epoch to the core of that replica set, naming the sender
     * by its index there; anything else is of no use to us. */
    const struct gov_replica_set *set = NULL;
    struct pbft *core = NULL;
    if (n->pbft != NULL && epoch == n->set.base_height) {
        set = &n->set;
        core = n->pbft;
    }
    struct node_old_core *old = set == NULL ? node_old_find(n, epoch) : NULL;
    if (old != NULL) {
        set = &old->set;
        core = old->pbft;
    }
    int idx = set != NULL ? gov_replica_index(set, slot) : -1;
    if (idx < 0) {
        atomic_fetch_add(&n->dropped_unwanted, 1);
        return;
    }
    uint32_t from = (uint32_t)idx;
    struct pbft_msg *m = NULL;
    if (codec_decode_msg(buf, len, &n->limits, &m) != LG_OK) {
        atomic_fetch_add(&n->dropped_undecodable, 1);
        node_log_dropped(n, "undecodable", from);
        return;
    }
    pbft_view view = 0;
    pbft_seq seq = 0;
    switch (m->type) {
    case PBFT_MSG_PREPREPARE:
        view = m->u.pp.hdr.view;
        seq = m->u.pp.hdr.seq;
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        view = m->u.vote.view;
        seq = m->u.vote.seq;
        break;
    case PBFT_MSG_VIEW_CHANGE:
        view = m->u.vc.new_view;
        break;
    case PBFT_MSG_NEW_VIEW:
        view = m->u.nv.view;
        break;
    case PBFT_MSG_FETCH:
        seq = m->u.fetch.seq;
        break;
    default:
        break;
    }
    if (!pbft_wants(core, from, m->type, view, seq)) {
        atomic_fetch_add(&n->dropped_unwanted, 1);
        codec_msg_free(m);
        return;
    }
    if (old != NULL) {
        node_old_receive(n, old, from, m);
        codec_msg_free(m);
        return;
    }
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = lg_now_ms()};
    ev.u.receive.from = from;
    ev.u.receive.msg = m;
    (void)node_step(n, &ev);
    codec_msg_free(m);
}

static void node_peer_input(struct node *n, uint32_t from, const uint8_t *buf,
                            size_t len)
{
    Tc__PeerFrame *f = tc__peer_frame__unpack(NULL, len, buf);
    if (f == NULL) {
        atomic_fetch_add(&n->dropped_undecodable, 1);
        node_log_dropped(n, "undecodable-frame", from);
        return;
    }
    n->peer_seen_ms[from] = lg_mono_ms();
    switch (f->body_case) {
    case TC__PEER_FRAME__BODY_HEARTBEAT:
        n->peer_certified[from] = f->heartbeat->last_certified;
        n->peer_view[from] = f->heartbeat->view;
        if (f->heartbeat->last_certified > n->peer_tip)
            n->peer_tip = f->heartbeat->last_certified;
        break;
    case TC__PEER_FRAME__BODY_CONSENSUS:
        node_peer_consensus(n, from, f->epoch, f->consensus.data,
                            f->consensus.len);
        break;
    case TC__PEER_FRAME__BODY_BLOCK_REQUEST:
        node_fetch_serve(n, from, f->block_request);
        break;
    case TC__PEER_FRAME__BODY_BLOCK_CHUNK:
        node_fetch_chunk(n, from, f->block_chunk);
        break;
    default:
        atomic_fetch_add(&n->dropped_undecodable, 1);
        node_log_dropped(n, "unknown-frame-type", from);
        break;
    }
    tc__peer_frame__free_unpacked(f, NULL);
}

void node_log_dropped(struct node *n, const char *why, uint32_t from)
{
    unsigned long long now = lg_mono_ms();
    if (now - n->drop_logged_ms < 1000)
        return;
    n->drop_logged_ms = now;
    lg_log(LG_WARN, "peer_message_dropped",
           "reason=%s peer=%u undecodable_total=%llu", why, from,
           (unsigned long long)atomic_load(&n->dropped_undecodable));
}

/* ---- the loop ---------------------------------------------------------------
 */

static void node_input(struct node *n, struct node_input *in)
{
    switch (in->type) {
    case NODE_IN_PEER:
        node_peer_input(n, in->from, in->data, in->len);
        free(in->data);
        break;
    case NODE_IN_CLIENT:
        node_client_handle(n, in->call, in->req);
        tc__client_request__free_unpacked(in->req, NULL);
        break;
    case NODE_IN_STOP:
        n->running = false;
        break;
    }
}

static void node_heartbeat(struct node *n)
{
    unsigned long long mono = lg_mono_ms();
    if (mono - n->heartbeat_ms < NODE_HEARTBEAT_MS)
        return;
    n->heartbeat_ms = mono;
    struct ledger_tip tip;
    struct pbft_status st;
    ledger_tip(n->ledger, &tip);
    memset(&st, 0, sizeof(st));
    if (n->pbft != NULL)
        pbft_get_status(n->pbft, &st);
    Tc__Heartbeat hb = TC__HEARTBEAT__INIT;
    hb.height = tip.height;
    hb.last_certified = tip.last_certified;
    hb.view = st.view;
    Tc__PeerFrame f;
    tc__peer_frame__init(&f);
    f.body_case = TC__PEER_FRAME__BODY_HEARTBEAT;
    f.heartbeat = &hb;
    node_send_frame(n, PBFT_BROADCAST, &f);
}

static void node_timers(struct node *n)
{
    uint64_t now = lg_now_ms();
    node_heartbeat(n);
    node_old_tick(n, now);
    if (n->pbft != NULL && now >= pbft_deadline_ms(n->pbft)) {
        struct pbft_event ev = {.type = PBFT_EV_TIMEOUT, .now_ms = now};
        (void)node_step(n, &ev);
    }
    node_waiters_expire(n, now);
    node_fetch_tick(n, now);
    node_metrics_update(n);
}

int node_run(struct node *n)
{
    struct node_input batch[NODE_DRAIN_MAX];
    lg_log(LG_INFO, "node_running", "replica=%u n=%u", n->slot, n->set.n);
    while (n->running && n->fatal == LG_OK) {
        uint64_t now = lg_now_ms();
        uint64_t deadline =
            n->pbft != NULL ? pbft_deadline_ms(n->pbft) : UINT64_MAX;
        if (node_old_deadline(n) < deadline)
            deadline = node_old_deadline(n);
        uint64_t wait = deadline <= now ? 0 : deadline - now;
        if (wait > NODE_IDLE_WAIT_MS)
            wait = NODE_IDLE_WAIT_MS;
        if (n->n_delayed > 0) {
            uint64_t held = node_release_held(n);
            if (held < wait)
                wait = held;
        }
        /* The web view reads the ledger only while the loop waits. */
        pthread_mutex_unlock(&n->ledger_mu);
        size_t k = node_queue_pop(n, batch, NODE_DRAIN_MAX, wait);
        pthread_mutex_lock(&n->ledger_mu);
        n->loop_turns++;
        for (size_t i = 0; i < k; i++) {
            if (n->running && n->fatal == LG_OK) {
                node_input(n, &batch[i]);
            } else {
                node_input_free(&batch[i]);
            }
        }
        node_timers(n);
        (void)node_flush(n);
    }
    node_waiters_shutdown(n);
    lg_log(n->fatal ? LG_ERROR : LG_INFO, "node_stopping", "err=\"%s\"",
           lg_strerror(n->fatal));
    return n->fatal;
}

/* ---- open / close
 * ------------------------------------------------------------ */

static int node_open_data(struct node *n, char *err, size_t err_len)
{
    const struct node_config *c = n->cfg;
    int rv;
    if (c->repair) {
        rv = store_repair(c->data_dir, err, err_len);
        if (rv != LG_OK)
            return rv;
        lg_log(LG_INFO, "repaired", "dir=%s", c->data_dir);
    }
    char why[512];
    rv = store_open(c->data_dir, true, &n->store, why, sizeof(why));
    if (rv != LG_OK) {
        snprintf(err, err_len,
                 "%s (if the data is damaged: run trialchain-node --home %s "
                 "--repair, or wipe %s and let the node rebuild from "
                 "peers).",
                 why, c->home, c->data_dir);
        return rv;
    }
    rv = registry_new(n->genesis, &n->registry);
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot set up the registry: %s.",
                 lg_strerror(rv));
        return rv;
    }
    /* LevelDB's repair keeps the records it can read and drops the rest,
     * so everything derived (tip, tx index, log, registry state) is rebuilt
     * from the stored blocks, each required to reproduce its header; the
     * ledger stops at the first block lost, and catch-up fetches the rest
     * from peers with their certificates. */
    if (c->repair) {
        uint64_t height = 0;
        rv = ledger_rebuild(n->store, n->genesis, n->registry, &height, why,
                            sizeof(why));
        if (rv != LG_OK) {
            snprintf(err, err_len,
                     "the repair could not rebuild the ledger in %s: %s; "
                     "wipe %s and let the node rebuild from peers.",
                     c->data_dir, why, c->data_dir);
            return rv;
        }
        lg_log(LG_INFO, "ledger_rebuilt", "height=%llu",
               (unsigned long long)height);
    }
    rv = ledger_open(n->store, n->genesis, n->registry, &n->ledger, why,
                     sizeof(why));
    if (rv == LG_ECHAIN) {
        snprintf(err, err_len,
                 "the data directory %s belongs to another chain: %s",
                 c->data_dir, why);
    } else if (rv == LG_ECORRUPT) {
        snprintf(err, err_len,
                 "the data in %s is corrupt: %s (run trialchain-node --home "
                 "%s --repair, or wipe %s and let the node rebuild from "
                 "peers).",
                 c->data_dir, why, c->home, c->data_dir);
    } else if (rv != LG_OK) {
        snprintf(err, err_len, "cannot open the ledger in %s: %s", c->data_dir,
                 why);
    }
    /* Blocks and certificates become durable with the loop turn's one
     * synced write (node_flush), before any vote or frame leaves. */
    if (rv == LG_OK)
        ledger_set_deferred_sync(n->ledger, true);
    /* LevelDB's repair keeps what it can read and drops the rest: the
     * ledger must still be whole, or the node must not serve it. */
    if (rv == LG_OK && c->repair &&
        node_verify_chain(n, why, sizeof(why)) != LG_OK) {
        snprintf(err, err_len,
                 "the repaired data in %s is incomplete: %s; wipe %s and let "
                 "the node rebuild from peers.",
                 c->data_dir, why, c->data_dir);
        rv = LG_ECORRUPT;
    }
    return rv;
}

/* The test modes (never set in production): TRIALCHAIN_FAULTS makes this
 * node's outgoing links lossy (faultnet.h), TRIALCHAIN_BYZANTINE makes the
 * replica lie on the wire (byz.h). Both are logged loudly at start. */
static int node_open_test_modes(struct node *n, const struct pbft_config *pc,
                                char *err, size_t err_len)
{
    char why[256];
    int rv = faultnet_from_env(&n->faults, why, sizeof(why));
    if (rv != LG_OK) {
        snprintf(err, err_len, "%s: %s", FAULTNET_ENV, why);
        return LG_ECONFIG;
    }
    if (n->faults.enabled) {
        faultnet_describe(&n->faults, why, sizeof(why));
        lg_log(LG_WARN, "test_faults_enabled", "spec=\"%s\"", why);
    }
    enum byz_mode mode = BYZ_OFF;
    const char *spec = getenv(BYZ_ENV);
    if (spec != NULL && spec[0] != '\0' &&
        byz_mode_parse(spec, &mode) != LG_OK) {
        snprintf(err, err_len,
                 "%s=\"%s\" is not a Byzantine mode (equivocate, badsig, "
                 "replay, out-of-window, vc-spam).",
                 BYZ_ENV, spec);
        return LG_ECONFIG;
    }
    if (mode == BYZ_OFF)
        return LG_OK;
    struct byz_params bp = {
        .mode = mode,
        .self = n->self,
        .n = pc->n,
        .watermark_window = pc->watermark_window,
        .seed = n->self + 1,
        .crypto = pc->crypto,
    };
    memcpy(bp.chain_id, pc->chain_id, 32);
    memcpy(bp.genesis_digest, pc->genesis_digest, 32);
    rv = byz_new(&bp, &n->byz);
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot start the Byzantine test mode: %s.",
                 lg_strerror(rv));
        return rv;
    }
    lg_log(LG_WARN, "test_byzantine_enabled", "mode=%s", byz_mode_name(mode));
    return LG_OK;
}

static int node_open_core(struct node *n, char *err, size_t err_len)
{
    int rv = node_epoch_open(n, err, err_len);
    if (rv != LG_OK || n->pbft == NULL)
        return rv;
    struct pbft_config pc;
    pbft_config_defaults(&pc);
    genesis_pbft_config(n->genesis, &pc);
    pc.n = n->set.n;
    pc.self = n->self;
    pc.crypto = n->crypto;
    memcpy(pc.chain_id, n->keys->chain_id, 32);
    if (ledger_block_hash(n->ledger, n->set.base_height, pc.genesis_digest) !=
        LG_OK)
        return LG_ECORRUPT;
    rv = node_open_test_modes(n, &pc, err, err_len);
    if (rv != LG_OK)
        return rv;
    return node_restore(n, err, err_len);
}

static int node_open_io(struct node *n, char *err, size_t err_len)
{
    const struct node_config *c = n->cfg;
    int rv = node_net_open(n, err, err_len);
    if (rv != LG_OK)
        return rv;
    struct api_params ap = {
        .url = c->client_url,
        .n_contexts = c->limits.api_contexts,
        .recv_max_bytes = c->limits.client_recv_max_bytes,
        .reqs_per_s = c->limits.client_reqs_per_s,
        .handle = node_client_request,
        .arg = n,
    };
    rv = api_open(&ap, &n->api, err, err_len);
    if (rv != LG_OK)
        return rv;
    n->web = (struct web_ctx){
        .genesis = n->genesis,
        .store = n->store,
        .registry = n->registry,
        .ledger = n->ledger,
        .status = node_web_status,
        .status_arg = n,
        .lock = &n->ledger_mu,
        .audit_run = audit_trial,
        .audit_free = audit_report_free,
    };
    if (c->web && c->http_addr[0] == '\0') {
        snprintf(err, err_len,
                 "the web view needs an HTTP address: set \"http_addr\".");
        return LG_ECONFIG;
    }
    if (c->http_addr[0] != '\0')
        rv = http_open(c->http_addr, node_http_render, n,
                       c->web ? &n->web : NULL, &n->http, err, err_len);
    return rv;
}

static int node_alloc(const struct node_config *cfg, struct node **out)
{
    struct node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return LG_ENOMEM;
    n->cfg = cfg;
    n->self = NODE_NO_INDEX;
    n->slot = cfg->replica_id;
    n->running = true;
    n->q_cap = cfg->limits.queue_max;
    n->q = calloc((size_t)n->q_cap + 1, sizeof(*n->q));
    n->exec_q = calloc(NODE_EXEC_Q, sizeof(*n->exec_q));
    n->out_cap = NODE_OUTBOX_MAX;
    n->outbox = calloc(n->out_cap, sizeof(*n->outbox));
    n->genesis = calloc(1, sizeof(*n->genesis));
    n->sigs = tx_sigcache_new();
    pthread_mutex_init(&n->q_mu, NULL);
    pthread_cond_init(&n->q_cv, NULL);
    pthread_mutex_init(&n->m_mu, NULL);
    pthread_mutex_init(&n->ledger_mu, NULL);
    pthread_mutex_lock(&n->ledger_mu);
    n->ledger_mu_held = true;
    *out = n;
    if (n->q == NULL || n->exec_q == NULL || n->genesis == NULL ||
        n->outbox == NULL || n->sigs == NULL)
        return LG_ENOMEM;
    return node_waiters_init(n, cfg->limits.waiting_max);
}

int node_open(const struct node_config *cfg, struct node **out, char *err,
              size_t err_len)
{
    struct node *n = NULL;
    char why[512];
    int rv = crypto_setup();
    if (rv != LG_OK) {
        snprintf(err, err_len, "libsodium cannot start.");
        return rv;
    }
    rv = node_alloc(cfg, &n);
    if (rv != LG_OK) {
        snprintf(err, err_len, "out of memory.");
        node_close(n);
        return rv;
    }
    rv = genesis_load(cfg->genesis_path, n->genesis, why, sizeof(why));
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot use %s: %s", cfg->genesis_path, why);
        goto out_close;
    }
    rv = keyfile_load(cfg->key_path, &n->key, why, sizeof(why));
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot use %s: %s", cfg->key_path, why);
        goto out_close;
    }
    n->key_loaded = true;
    rv = node_open_data(n, err, err_len);
    if (rv == LG_OK)
        rv = node_open_core(n, err, err_len);
    if (rv == LG_OK)
        rv = node_open_io(n, err, err_len);
    if (rv == LG_OK)
        rv = node_start(n, err, err_len);
    if (rv != LG_OK)
        goto out_close;
    *out = n;
    return LG_OK;
out_close:
    node_close(n);
    return rv;
}

void node_close(struct node *n)
{
    if (n == NULL)
        return;
    /* Listeners first, so no callback pushes into a freed queue. A web
     * render waiting for the ledger lock must get it, or closing the HTTP
     * server would wait for that render forever. */
    if (n->ledger_mu_held) {
        pthread_mutex_unlock(&n->ledger_mu);
        n->ledger_mu_held = false;
    }
    http_close(n->http);
    api_close(n->api);
    net_close(n->net);
    /* Calls and frames still queued: drop them (the api is gone). */
    for (size_t i = 0; i < n->q_len; i++) {
        struct node_input *in = &n->q[(n->q_head + i) % (n->q_cap + 1)];
        free(in->data);
        if (in->req != NULL)
            tc__client_request__free_unpacked(in->req, NULL);
    }
    node_waiters_free(n);
    pbft_free(n->pbft);
    node_keys_free(n->keys);
    node_old_free_all(n);
    byz_free(n->byz);
    for (size_t i = 0; i < n->n_delayed; i++)
        free(n->delayed[i].buf);
    ledger_close(n->ledger);
    registry_free(n->registry);
    store_close(n->store);
    tx_sigcache_free(n->sigs);
    if (n->key_loaded)
        keyfile_free(&n->key);
    genesis_free(n->genesis);
    free(n->genesis);
    free(n->q);
    free(n->exec_q);
    for (size_t i = 0; n->outbox != NULL && i < n->n_out; i++)
        free(n->outbox[i].buf);
    free(n->outbox);
    pthread_mutex_destroy(&n->ledger_mu);
    pthread_mutex_destroy(&n->q_mu);
    pthread_cond_destroy(&n->q_cv);
    pthread_mutex_destroy(&n->m_mu);
    free(n);
}
