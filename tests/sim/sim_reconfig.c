/* sim_reconfig.c - the reconfig family: replica sets change under load.
 *
 * Replicas have stable identities (ids 0..7); an epoch's set maps them to
 * core indexes in id order. A governance client's request k means "switch
 * to set k" (4 -> 5 -> 7 -> 4 members, or 7 -> 4 -> 5 -> 7; the shrink
 * removes the primary of the moment). It is decided where it executes
 * (seq s) and takes effect at the next checkpoint h >= s. Each node is
 * driven the way the node binary drives its cores:
 *   - on executing h it calls pbft_set_stop(old, h) and starts a new core
 *     (base_seq = h, genesis = state after h, chain id of the epoch,
 *     initial_view = the view h executed in); nothing the old core hands
 *     out beyond h executes;
 *   - the old core is freed once ready.certified holds h, or the driver
 *     got that certificate from a peer (block sync);
 *   - a replica added to the set starts only once it copied a correct
 *     replica's state at h (with the certificate), after some delay;
 *   - records are kept per epoch; a restart brings back the old core (with
 *     pbft_set_stop) while certificate h is unknown, plus the new one.
 * Faults: loss, duplication, delay; crashes (also right after a persist);
 * the primary crashing around a switch. Checkers: every correct replica
 * executes the same batches and states per seq across epochs, a switch
 * takes effect at the same seq everywhere, every certificate is a valid
 * one of the right set, every request executes at most once per replica
 * and none is lost, and the run finishes once the network is good. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RC_MAX_IDS    8
#define RC_EPOCHS     4
#define RC_GOV_CLIENT 0 /* client 0 proposes the changes */
#define RC_STALL_MS   1500

enum rc_kind {
    RC_DELIVER = 1,
    RC_CLIENT_REQ,
    RC_REPLY,
    RC_CLIENT_TIMER,
    RC_EXECUTED,
    RC_TRANSFER,
    RC_FAULT,
    RC_RESTART,
    RC_HEAL,
    RC_SYNC,
    RC_CRASH_PRIMARY,
};

struct rc_ev {
    uint64_t at, order;
    enum rc_kind kind;
    uint32_t id, from, client, epoch;
    uint64_t gen, req_no;
    pbft_seq seq;
    uint8_t digest[PBFT_DIGEST_SIZE];
    struct pbft_msg *msg;
};

struct rc_set {
    uint32_t n;
    uint32_t ids[RC_MAX_IDS]; /* ascending: core index i is ids[i] */
};

struct rc_world;

struct rc_cctx {
    struct rc_world *w;
    uint32_t epoch;
    uint32_t id;
};

struct rc_core {
    struct pbft *core; /* NULL: none */
    uint32_t epoch;
    struct pbft_config cfg;
    struct rc_cctx cctx;
    bool free_after; /* its certificate is known: free after this ready */
    pbft_seq stop;   /* pbft_set_stop() called with it, or UINT64_MAX */
};

struct rc_store {
    struct pbft_meta *meta;
    struct sim_rec *recs;
    size_t n, cap;
};

struct rc_entry {
    pbft_seq seq;
    pbft_view view;
    uint8_t batch[PBFT_DIGEST_SIZE];
    uint8_t state[PBFT_DIGEST_SIZE];
    uint32_t n_reqs;
    uint32_t *clients; /* UINT32_MAX: skipped repeat */
    uint64_t *req_nos;
};

struct rc_cert {
    bool known;
    struct pbft_checkpoint_cert cert;
    struct pbft_vote votes[RC_MAX_IDS];
};

struct rc_node {
    uint32_t id;
    bool alive;
    uint64_t incarnation;
    /* by epoch: every old one stays until its certificate is known (a
     * second switch right after a first must not drop the first's) */
    struct rc_core cores[RC_EPOCHS];
    /* durable */
    struct rc_store store[RC_EPOCHS];
    struct rc_cert cert[RC_EPOCHS]; /* [k]: certificate of base k by k-1 */
    struct rc_entry *log;
    size_t n_log, cap_log;
    uint8_t state[PBFT_DIGEST_SIZE];
    uint8_t *executed;
    /* derived from the log (app_derive) */
    uint32_t app_epoch;
    uint32_t pending_k; /* decided, not yet effective: 0 for none */
    pbft_seq pending_base;
    /* volatile */
    uint64_t exec_feed_at, exec_gen, fetch_gen;
    uint64_t progress_at;
    char trace[SIM_TRACE_RING][SIM_TRACE_LEN];
    uint32_t trace_head, trace_count;
};

struct rc_world {
    struct sim base; /* clients, PRNG, clock, counters, failure report */
    uint32_t n_epochs, n_ids, K;
    struct rc_set sets[RC_EPOCHS];
    bool planned[RC_EPOCHS];
    bool known[RC_EPOCHS]; /* some replica executed base k */
    pbft_seq base_seq[RC_EPOCHS];
    bool cert_formed[RC_EPOCHS]; /* by an old core, not by a copy */
    uint8_t chain[RC_EPOCHS][PBFT_CHAIN_ID_SIZE];
    uint8_t secret[RC_MAX_IDS][32];
    struct rc_node nodes[RC_MAX_IDS];
    struct rc_ev **heap;
    size_t heap_len, heap_cap;
    uint64_t order;
    struct sim_agree *agree;
    size_t n_agree;
    uint64_t certs_copied, certs_own, catchups;
};

/* ---- small helpers ------------------------------------------------------ */

static void *rc_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static void *rc_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (q == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return q;
}

static struct sim_rng *rng(struct rc_world *w)
{
    return &w->base.rng;
}

static bool in_set(const struct rc_set *set, uint32_t id, uint32_t *index)
{
    for (uint32_t i = 0; i < set->n; i++)
        if (set->ids[i] == id) {
            if (index != NULL)
                *index = i;
            return true;
        }
    return false;
}

static void set_sort(struct rc_set *set)
{
    for (uint32_t i = 1; i < set->n; i++)
        for (uint32_t j = i; j > 0 && set->ids[j - 1] > set->ids[j]; j--) {
            uint32_t t = set->ids[j];

            set->ids[j] = set->ids[j - 1];
            set->ids[j - 1] = t;
        }
}

static void note(struct rc_world *w, struct rc_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void trace_line(struct rc_world *w, struct rc_node *nd, const char *line)
{
    char *dst = nd->trace[nd->trace_head];
    size_t len = strlen(line);

    if (len >= SIM_TRACE_LEN)
        len = SIM_TRACE_LEN - 1; /* long lines are cut */
    memcpy(dst, line, len);
    dst[len] = '\0';
    nd->trace_head = (nd->trace_head + 1) % SIM_TRACE_RING;
    if (nd->trace_count < SIM_TRACE_RING)
        nd->trace_count++;
    if (w->base.prm.trace_all)
        printf("%s\n", line);
}

static void note(struct rc_world *w, struct rc_node *nd, const char *fmt, ...)
{
    char line[SIM_TRACE_LEN], full[SIM_TRACE_LEN + 32];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "[%" PRIu64 "] id%u ~ %s", w->base.now, nd->id,
             line);
    trace_line(w, nd, full);
}

/* ---- event heap --------------------------------------------------------- */

static bool ev_before(const struct rc_ev *a, const struct rc_ev *b)
{
    return a->at != b->at ? a->at < b->at : a->order < b->order;
}

static struct rc_ev *ev_new(struct rc_world *w, enum rc_kind kind, uint64_t at)
{
    struct rc_ev *e = rc_calloc(1, sizeof(*e));

    e->kind = kind;
    e->at = at < w->base.now ? w->base.now : at;
    return e;
}

static void ev_push(struct rc_world *w, struct rc_ev *e)
{
    size_t i;

    e->order = w->order++;
    if (w->heap_len == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 1024;
        w->heap = rc_realloc(w->heap, w->heap_cap * sizeof(*w->heap));
    }
    i = w->heap_len++;
    while (i > 0 && ev_before(e, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = e;
}

static struct rc_ev *ev_pop(struct rc_world *w)
{
    struct rc_ev *top, *last;
    size_t i = 0;

    if (w->heap_len == 0)
        return NULL;
    top = w->heap[0];
    last = w->heap[--w->heap_len];
    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= w->heap_len)
            break;
        if (c + 1 < w->heap_len && ev_before(w->heap[c + 1], w->heap[c]))
            c++;
        if (!ev_before(w->heap[c], last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_len > 0)
        w->heap[i] = last;
    return top;
}

static void ev_free(struct rc_ev *e)
{
    sim_msg_free(e->msg);
    free(e);
}

/* ---- crypto: keys belong to identities, cores see indexes -------------- */

static void rc_hash(void *ctx, const uint8_t *data, size_t len,
                    uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    sim_sha256(data, len, out);
}

static void rc_sign(void *ctx, const uint8_t *msg, size_t len,
                    uint8_t sig[PBFT_SIG_SIZE])
{
    struct rc_cctx *c = ctx;

    c->w->base.sign_ops++;
    sim_keyed_sig(c->w->secret[c->id], msg, len, sig);
}

static bool rc_verify(void *ctx, uint32_t replica, const uint8_t *msg,
                      size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    struct rc_cctx *c = ctx;
    const struct rc_set *set = &c->w->sets[c->epoch];
    uint8_t want[PBFT_SIG_SIZE];

    c->w->base.verify_ops++;
    if (replica >= set->n)
        return false;
    sim_keyed_sig(c->w->secret[set->ids[replica]], msg, len, want);
    return memcmp(want, sig, PBFT_SIG_SIZE) == 0;
}

static bool rc_verify_request(void *ctx, const struct pbft_request *req)
{
    struct rc_cctx *c = ctx;

    return sim_request_check(&c->w->base, req) >= 0;
}

static void crypto_fill(struct pbft_crypto *k, struct rc_cctx *c)
{
    k->ctx = c;
    k->hash = rc_hash;
    k->sign = rc_sign;
    k->verify = rc_verify;
    k->verify_request = rc_verify_request;
}

/* ---- durable state ------------------------------------------------------ */

static void store_apply(struct rc_store *st, const struct pbft_record *r)
{
    if (r->type == PBFT_REC_META && r->meta != NULL) {
        sim_meta_free(st->meta);
        st->meta = sim_meta_clone(r->meta);
    } else if (r->type == PBFT_REC_MSG && r->msg != NULL) {
        for (size_t i = 0; i < st->n; i++) {
            struct sim_rec *x = &st->recs[i];

            if (x->type == (uint32_t)r->msg->type && x->seq == r->seq &&
                x->view == r->view && x->replica == r->replica) {
                sim_msg_free(x->msg);
                x->msg = sim_msg_clone(r->msg);
                return;
            }
        }
        if (st->n == st->cap) {
            st->cap = st->cap ? st->cap * 2 : 64;
            st->recs = rc_realloc(st->recs, st->cap * sizeof(*st->recs));
        }
        st->recs[st->n].type = (uint32_t)r->msg->type;
        st->recs[st->n].seq = r->seq;
        st->recs[st->n].view = r->view;
        st->recs[st->n].replica = r->replica;
        st->recs[st->n].msg = sim_msg_clone(r->msg);
        st->n++;
    } else if (r->type == PBFT_REC_GC) {
        size_t j = 0;

        for (size_t i = 0; i < st->n; i++) {
            if (st->recs[i].seq <= r->seq)
                sim_msg_free(st->recs[i].msg);
            else
                st->recs[j++] = st->recs[i];
        }
        st->n = j;
    }
}

static void store_wipe(struct rc_store *st)
{
    for (size_t i = 0; i < st->n; i++)
        sim_msg_free(st->recs[i].msg);
    free(st->recs);
    sim_meta_free(st->meta);
    memset(st, 0, sizeof(*st));
}

static void cert_keep(struct rc_cert *dst, const struct pbft_checkpoint_cert *c)
{
    dst->known = true;
    dst->cert = *c;
    dst->cert.n_votes = c->n_votes < RC_MAX_IDS ? c->n_votes : RC_MAX_IDS;
    memcpy(dst->votes, c->votes, dst->cert.n_votes * sizeof(*c->votes));
    dst->cert.votes = dst->votes;
}

/* ---- application -------------------------------------------------------- */

static pbft_seq round_up(pbft_seq s, uint32_t k)
{
    return (s + k - 1) / k * k;
}

/* Epoch state from the log alone, so every replica with the same log
 * (executed or copied) switches at the same seq. */
static void app_derive(struct rc_world *w, struct rc_node *nd)
{
    nd->app_epoch = 0;
    nd->pending_k = 0;
    for (size_t i = 0; i < nd->n_log; i++) {
        const struct rc_entry *e = &nd->log[i];

        for (uint32_t j = 0; j < e->n_reqs && nd->pending_k == 0; j++)
            if (e->clients[j] == RC_GOV_CLIENT &&
                e->req_nos[j] == nd->app_epoch + 1 &&
                e->req_nos[j] < w->n_epochs) {
                nd->pending_k = (uint32_t)e->req_nos[j];
                nd->pending_base = round_up(e->seq, w->K);
            }
        if (nd->pending_k != 0 && e->seq == nd->pending_base) {
            nd->app_epoch = nd->pending_k;
            nd->pending_k = 0;
        }
    }
}

static void entry_free(struct rc_entry *e)
{
    free(e->clients);
    free(e->req_nos);
}

static void app_wipe(struct rc_world *w, struct rc_node *nd)
{
    for (size_t i = 0; i < nd->n_log; i++)
        entry_free(&nd->log[i]);
    free(nd->log);
    nd->log = NULL;
    nd->n_log = nd->cap_log = 0;
    memcpy(nd->state, w->base.genesis, 32);
    memset(nd->executed, 0, w->base.n_clients * w->base.req_cap);
}

static void app_append(struct rc_node *nd, const struct rc_entry *e)
{
    if (nd->n_log == nd->cap_log) {
        nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
        nd->log = rc_realloc(nd->log, nd->cap_log * sizeof(*nd->log));
    }
    nd->log[nd->n_log++] = *e;
}

static void chain_next(const uint8_t prev[32], pbft_seq seq,
                       const uint8_t batch[32], uint8_t out[32])
{
    uint8_t buf[72];

    memcpy(buf, prev, 32);
    for (int i = 0; i < 8; i++)
        buf[32 + i] = (uint8_t)(seq >> (56 - 8 * i));
    memcpy(buf + 40, batch, 32);
    sim_sha256(buf, sizeof(buf), out);
}

static void agree_check(struct rc_world *w, struct rc_node *nd,
                        const struct rc_entry *e)
{
    struct sim_agree *a;

    if (e->seq >= w->n_agree) {
        size_t cap = w->n_agree ? w->n_agree : 64;

        while (cap <= e->seq)
            cap *= 2;
        w->agree = rc_realloc(w->agree, cap * sizeof(*w->agree));
        memset(w->agree + w->n_agree, 0,
               (cap - w->n_agree) * sizeof(*w->agree));
        w->n_agree = cap;
    }
    a = &w->agree[e->seq];
    if (!a->set) {
        a->set = true;
        a->by = nd->id;
        memcpy(a->batch, e->batch, 32);
        memcpy(a->state, e->state, 32);
    } else if (memcmp(a->batch, e->batch, 32) != 0 ||
               memcmp(a->state, e->state, 32) != 0) {
        sim_fail(&w->base, (int)a->by, (int)nd->id,
                 "agreement: id%u and id%u differ at seq %" PRIu64, a->by,
                 nd->id, e->seq);
    }
}

/* The whole cluster learns where switch k took effect; all must agree. */
static void switch_check(struct rc_world *w, struct rc_node *nd, uint32_t k,
                         pbft_seq base)
{
    if (!w->known[k]) {
        w->known[k] = true;
        w->base_seq[k] = base;
        note(w, nd, "sim: epoch %u starts at seq %" PRIu64 " (first here)", k,
             base);
    } else if (w->base_seq[k] != base) {
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u switched to epoch %u at seq %" PRIu64
                 ", others at %" PRIu64,
                 nd->id, k, base, w->base_seq[k]);
    }
}

static void client_reply(struct rc_world *w, uint32_t from_id, uint32_t client,
                         uint64_t req_no, uint32_t epoch);

static void app_execute(struct rc_world *w, struct rc_node *nd, uint32_t epoch,
                        const struct pbft_execute *ex)
{
    struct rc_entry e;
    struct rc_ev *ev;
    uint64_t at;

    if (nd->cores[epoch].stop < ex->seq)
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u: a core stopped at %" PRIu64 " handed out seq %" PRIu64,
                 nd->id, nd->cores[epoch].stop, ex->seq);
    if (epoch != nd->app_epoch) {
        note(w, nd, "sim: old epoch %u batch seq %" PRIu64 " dropped", epoch,
             ex->seq);
        return; /* beyond the switch: proposed again in the new epoch */
    }
    if (ex->seq != nd->n_log + 1) {
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u executed seq %" PRIu64 " after %zu", nd->id, ex->seq,
                 nd->n_log);
        return;
    }
    memset(&e, 0, sizeof(e));
    e.seq = ex->seq;
    e.view = ex->view;
    e.n_reqs = ex->n_requests;
    e.clients = rc_calloc(ex->n_requests, sizeof(*e.clients));
    e.req_nos = rc_calloc(ex->n_requests, sizeof(*e.req_nos));
    pbft_batch_digest(&nd->cores[epoch].cfg.crypto, ex->requests,
                      ex->n_requests, e.batch);
    for (uint32_t i = 0; i < ex->n_requests; i++) {
        const struct pbft_request *rq = &ex->requests[i];
        int c = sim_request_check(&w->base, rq);
        uint8_t *done;

        e.clients[i] = UINT32_MAX;
        e.req_nos[i] = rq->req_no;
        if (c < 0 || rq->req_no >= w->base.req_cap) {
            sim_fail(&w->base, (int)nd->id, -1,
                     "id%u executed an unsigned request at seq %" PRIu64,
                     nd->id, ex->seq);
            continue;
        }
        done = &nd->executed[(size_t)c * w->base.req_cap + rq->req_no];
        if (*done) {
            w->base.repeats_skipped++;
            continue; /* exactly once: the new core's client table is empty */
        }
        *done = 1;
        e.clients[i] = (uint32_t)c;
    }
    chain_next(nd->state, e.seq, e.batch, e.state);
    memcpy(nd->state, e.state, 32);
    app_append(nd, &e);
    agree_check(w, nd, &e);
    nd->progress_at = w->base.now;
    for (uint32_t i = 0; i < e.n_reqs; i++)
        if (e.clients[i] != UINT32_MAX)
            client_reply(w, nd->id, e.clients[i], e.req_nos[i], epoch);
    at = w->base.now + (w->base.faults_active ? sim_rng_below(rng(w), 3) : 0);
    if (at < nd->exec_feed_at)
        at = nd->exec_feed_at;
    nd->exec_feed_at = at;
    ev = ev_new(w, RC_EXECUTED, at);
    ev->id = nd->id;
    ev->epoch = epoch;
    ev->gen = nd->incarnation;
    ev->req_no = nd->exec_gen;
    ev->seq = e.seq;
    memcpy(ev->digest, e.state, 32);
    ev_push(w, ev);
    app_derive(w, nd);
    if (nd->app_epoch != epoch)
        switch_check(w, nd, nd->app_epoch, e.seq);
}

/* Copies a correct donor's log up to seq (state transfer, block sync). */
static void app_install(struct rc_world *w, struct rc_node *nd,
                        const struct rc_node *donor, pbft_seq seq)
{
    app_wipe(w, nd);
    for (pbft_seq i = 0; i < seq; i++) {
        const struct rc_entry *d = &donor->log[i];
        struct rc_entry e = *d;

        e.clients = rc_calloc(d->n_reqs, sizeof(*e.clients));
        e.req_nos = rc_calloc(d->n_reqs, sizeof(*e.req_nos));
        if (d->n_reqs > 0) {
            memcpy(e.clients, d->clients, d->n_reqs * sizeof(*e.clients));
            memcpy(e.req_nos, d->req_nos, d->n_reqs * sizeof(*e.req_nos));
        }
        for (uint32_t j = 0; j < e.n_reqs; j++)
            if (e.clients[j] != UINT32_MAX)
                nd->executed[(size_t)e.clients[j] * w->base.req_cap +
                             e.req_nos[j]] = 1;
        app_append(nd, &e);
    }
    if (seq > 0)
        memcpy(nd->state, donor->log[seq - 1].state, 32);
    nd->exec_gen++;
    nd->progress_at = w->base.now;
    app_derive(w, nd);
}

/* ---- network and clients ------------------------------------------------ */

static uint64_t net_delay(struct rc_world *w)
{
    uint64_t d = sim_rng_range(rng(w), w->base.delay_min, w->base.delay_max);

    if (w->base.faults_active && sim_rng_chance(rng(w), w->base.long_delay_pm))
        d += sim_rng_range(rng(w), 50, 300);
    return d;
}

static uint32_t net_copies(struct rc_world *w)
{
    if (!w->base.faults_active)
        return 1;
    if (sim_rng_chance(rng(w), w->base.loss_pm))
        return 0;
    return sim_rng_chance(rng(w), w->base.dup_pm) ? 2 : 1;
}

/* A message of epoch `epoch` from id `from` to core index `to` (or all
 * others of that epoch's set). */
static void net_send(struct rc_world *w, uint32_t from, uint32_t epoch,
                     uint32_t to, const struct pbft_msg *m)
{
    const struct rc_set *set = &w->sets[epoch];

    for (uint32_t i = 0; i < set->n; i++) {
        uint32_t copies;

        if (set->ids[i] == from || (to != PBFT_BROADCAST && to != i))
            continue;
        w->base.msgs_sent++;
        copies = net_copies(w);
        for (uint32_t c = 0; c < copies; c++) {
            struct rc_ev *e = ev_new(w, RC_DELIVER, w->base.now + net_delay(w));

            e->id = set->ids[i];
            e->from = from;
            e->epoch = epoch;
            e->msg = sim_msg_clone(m);
            ev_push(w, e);
        }
    }
}

static uint32_t latest_epoch(const struct rc_world *w)
{
    uint32_t k = 0;

    while (k + 1 < w->n_epochs && w->known[k + 1])
        k++;
    return k;
}

static void client_arm(struct rc_world *w, uint32_t c, uint64_t at)
{
    struct sim_client *cl = &w->base.clients[c];
    struct rc_ev *e = ev_new(w, RC_CLIENT_TIMER, at);

    cl->timer_gen++;
    e->client = c;
    e->gen = cl->timer_gen;
    ev_push(w, e);
}

static void client_send(struct rc_world *w, uint32_t c, uint32_t id)
{
    uint32_t copies = net_copies(w);

    w->base.msgs_client++;
    for (uint32_t i = 0; i < copies; i++) {
        struct rc_ev *e = ev_new(w, RC_CLIENT_REQ, w->base.now + net_delay(w));

        e->client = c;
        e->id = id;
        e->req_no = w->base.clients[c].outstanding;
        ev_push(w, e);
    }
}

static uint32_t client_total(const struct rc_world *w, uint32_t c)
{
    if (c == RC_GOV_CLIENT)
        return w->n_epochs - 1;
    return w->base.prm.reqs_pre + w->base.prm.reqs_post;
}

static uint32_t current_primary_id(struct rc_world *w, uint32_t epoch);

/* The governance client fixes set k when it proposes it: the shrink
 * removes whoever is primary now (and then others, at random). */
static void plan_set(struct rc_world *w, uint32_t k)
{
    const struct rc_set *prev = &w->sets[k - 1];
    struct rc_set *set = &w->sets[k];
    uint32_t want = w->base.prm.n == 4 ? (k == 1   ? 5
                                          : k == 2 ? 7
                                                   : 4)
                                       : (k == 1   ? 4
                                          : k == 2 ? 5
                                                   : 7);
    bool taken[RC_MAX_IDS] = {false};

    memset(set, 0, sizeof(*set));
    if (want < prev->n) {
        uint32_t primary = current_primary_id(w, k - 1);

        for (uint32_t i = 0; i < prev->n; i++)
            taken[prev->ids[i]] = prev->ids[i] != primary;
        for (uint32_t have = prev->n - 1; have > want; have--) {
            uint32_t x;

            do
                x = (uint32_t)sim_rng_below(rng(w), w->n_ids);
            while (!taken[x]);
            taken[x] = false;
        }
    } else {
        for (uint32_t i = 0; i < prev->n; i++)
            taken[prev->ids[i]] = true;
        for (uint32_t have = prev->n; have < want; have++) {
            uint32_t x;

            do
                x = (uint32_t)sim_rng_below(rng(w), w->n_ids);
            while (taken[x]);
            taken[x] = true;
        }
    }
    for (uint32_t x = 0; x < w->n_ids; x++)
        if (taken[x])
            set->ids[set->n++] = x;
    set_sort(set);
    w->planned[k] = true;
}

static void client_timer(struct rc_world *w, uint32_t c)
{
    struct sim_client *cl = &w->base.clients[c];
    uint32_t e = latest_epoch(w);
    const struct rc_set *set = &w->sets[e];

    if (cl->outstanding != 0) {
        for (uint32_t id = 0; id < w->n_ids; id++)
            client_send(w, c, id);
        client_arm(w, c, w->base.now + 700);
        return;
    }
    if (cl->n_done >= client_total(w, c))
        return;
    if (c != RC_GOV_CLIENT && cl->n_done >= w->base.prm.reqs_pre &&
        (w->base.now < w->base.heal_at || !w->known[w->n_epochs - 1])) {
        /* progress after the last switch, on a good network */
        client_arm(w, c, w->base.now + 200);
        return;
    }
    cl->outstanding = cl->next_req_no++;
    cl->replied_mask = 0;
    if (c == RC_GOV_CLIENT) {
        plan_set(w, (uint32_t)cl->outstanding);
        if (w->base.faults_active && sim_rng_chance(rng(w), 600)) {
            struct rc_ev *x = ev_new(w, RC_CRASH_PRIMARY,
                                     w->base.now + sim_rng_below(rng(w), 150));

            x->epoch = e;
            ev_push(w, x);
        }
    }
    client_send(w, c, set->ids[cl->view_guess % set->n]);
    client_arm(w, c, w->base.now + 700);
}

static void client_reply(struct rc_world *w, uint32_t from_id, uint32_t client,
                         uint64_t req_no, uint32_t epoch)
{
    uint32_t copies = net_copies(w);

    w->base.msgs_client++;
    for (uint32_t i = 0; i < copies; i++) {
        struct rc_ev *e = ev_new(w, RC_REPLY, w->base.now + net_delay(w));

        e->client = client;
        e->from = from_id;
        e->req_no = req_no;
        e->epoch = epoch;
        ev_push(w, e);
    }
}

static void client_got_reply(struct rc_world *w, const struct rc_ev *e)
{
    struct sim_client *cl = &w->base.clients[e->client];
    uint32_t count = 0;

    if (cl->outstanding == 0 || e->req_no != cl->outstanding)
        return;
    cl->replied_mask |= 1ULL << e->from;
    for (uint32_t id = 0; id < w->n_ids; id++)
        count += (cl->replied_mask >> id) & 1;
    if (count < pbft_faults(w->sets[e->epoch].n) + 1)
        return;
    cl->outstanding = 0;
    cl->n_done++;
    client_arm(w, e->client,
               w->base.now + (e->client == RC_GOV_CLIENT
                                  ? sim_rng_range(rng(w), 100, 900)
                                  : sim_rng_below(rng(w), 450)));
}

/* ---- replicas ----------------------------------------------------------- */

static void node_crash(struct rc_world *w, struct rc_node *nd);
static void schedule_restart(struct rc_world *w, struct rc_node *nd,
                             uint64_t at);

static void core_free(struct rc_world *w, struct rc_node *nd,
                      struct rc_core *rc, const char *why)
{
    if (rc->core == NULL)
        return;
    note(w, nd, "sim: epoch %u core freed (%s)", rc->epoch, why);
    pbft_free(rc->core);
    rc->core = NULL;
    rc->free_after = false;
}

/* A certificate for base k, checked against the set of epoch k-1. */
static bool cert_ok(struct rc_world *w, struct rc_node *nd, uint32_t k,
                    const struct pbft_checkpoint_cert *c)
{
    struct rc_cctx cc = {.w = w, .epoch = k - 1, .id = nd->id};
    struct pbft_crypto cr;

    crypto_fill(&cr, &cc);
    if (!w->known[k] || c->seq != w->base_seq[k] ||
        !pbft_checkpoint_cert_valid(&cr, w->sets[k - 1].n, w->chain[k - 1],
                                    c)) {
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u: certificate for the end of epoch %u is not one of "
                 "its set",
                 nd->id, k - 1);
        return false;
    }
    if (c->seq < w->n_agree && w->agree[c->seq].set &&
        memcmp(w->agree[c->seq].state, c->digest, 32) != 0) {
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u: certificate for seq %" PRIu64 " names another state",
                 nd->id, c->seq);
        return false;
    }
    return true;
}

static void check_certified(struct rc_world *w, struct rc_node *nd,
                            struct rc_core *rc,
                            const struct pbft_checkpoint_cert *c)
{
    uint32_t k = rc->epoch + 1;

    if (c->seq > rc->cfg.base_seq &&
        !pbft_checkpoint_cert_valid(&rc->cfg.crypto, rc->cfg.n,
                                    rc->cfg.chain_id, c)) {
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u formed an invalid certificate for seq %" PRIu64, nd->id,
                 c->seq);
        return;
    }
    if (c->seq < w->n_agree && w->agree[c->seq].set &&
        memcmp(w->agree[c->seq].state, c->digest, 32) != 0)
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u certified a state at seq %" PRIu64
                 " no correct replica reached",
                 nd->id, c->seq);
    /* The certificate ending the epoch: kept even when it comes before
     * the state transfer to it; the core goes once the switch is done. */
    if (k < w->n_epochs && w->known[k] && c->seq == w->base_seq[k]) {
        if (!cert_ok(w, nd, k, c))
            return;
        cert_keep(&nd->cert[k], c);
        w->cert_formed[k] = true;
        w->certs_own++;
        rc->free_after = nd->app_epoch >= k;
    }
}

static void switch_to(struct rc_world *w, struct rc_node *nd);

static void process_ready(struct rc_world *w, struct rc_node *nd,
                          struct rc_core *rc, struct pbft_ready *rd)
{
    bool crash_now = false;
    uint32_t epoch_before = nd->app_epoch;

    for (uint32_t i = 0; i < rd->n_trace; i++)
        if (rd->trace[i].line != NULL) {
            char line[SIM_TRACE_LEN];

            snprintf(line, sizeof(line), "e%u id%u %s", rc->epoch, nd->id,
                     rd->trace[i].line);
            trace_line(w, nd, line);
        }
    for (uint32_t i = 0; i < rd->n_persist; i++)
        store_apply(&nd->store[rc->epoch], &rd->persist[i]);
    if (w->base.faults_active && rd->n_persist > 0 && sim_rng_chance(rng(w), 3))
        crash_now = true;
    if (!crash_now) {
        for (uint32_t i = 0; i < rd->n_msgs; i++)
            if (rd->msgs[i].msg != NULL)
                net_send(w, nd->id, rc->epoch, rd->msgs[i].to, rd->msgs[i].msg);
        for (uint32_t i = 0; i < rd->n_execute && !w->base.failed; i++)
            app_execute(w, nd, rc->epoch, &rd->execute[i]);
        for (uint32_t i = 0; i < rd->n_certified; i++)
            check_certified(w, nd, rc, &rd->certified[i]);
        for (uint32_t i = 0; i < rd->n_replies; i++) {
            uint32_t c = ((uint32_t)rd->replies[i].client[0] << 8) |
                         rd->replies[i].client[1];

            if (c < w->base.n_clients)
                client_reply(w, nd->id, c, rd->replies[i].req_no, rc->epoch);
        }
        if (rd->fetch != NULL && rd->fetch->cert != NULL) {
            struct rc_ev *e = ev_new(
                w, RC_TRANSFER, w->base.now + sim_rng_range(rng(w), 2, 30));

            e->id = nd->id;
            e->epoch = rc->epoch;
            e->gen = nd->incarnation;
            e->req_no = ++nd->fetch_gen;
            e->seq = rd->fetch->cert->seq;
            memcpy(e->digest, rd->fetch->cert->digest, 32);
            ev_push(w, e);
        }
    }
    pbft_advance(rc->core);
    if (crash_now) {
        note(w, nd, "sim: crash after persist, before send");
        node_crash(w, nd);
        schedule_restart(w, nd, w->base.now + sim_rng_range(rng(w), 20, 800));
        return;
    }
    if (nd->app_epoch != epoch_before)
        switch_to(w, nd);
    for (int i = 0; i < RC_EPOCHS; i++)
        if (nd->cores[i].free_after)
            core_free(w, nd, &nd->cores[i], "certificate formed");
}

static void node_step(struct rc_world *w, struct rc_node *nd,
                      struct rc_core *rc, struct pbft_event *ev)
{
    struct pbft_ready rd;

    if (!nd->alive || rc->core == NULL)
        return;
    memset(&rd, 0, sizeof(rd));
    ev->now_ms = w->base.now;
    (void)pbft_step(rc->core, ev, &rd);
    process_ready(w, nd, rc, &rd);
}

static const uint8_t *state_at(struct rc_world *w, const struct rc_node *nd,
                               pbft_seq seq)
{
    return seq == 0 ? w->base.genesis : nd->log[seq - 1].state;
}

/* Creates, restores and starts the core of epoch k (stopped at stop when
 * stop is not UINT64_MAX). */
static void core_boot(struct rc_world *w, struct rc_node *nd, uint32_t k,
                      pbft_seq stop)
{
    struct rc_core *rc = &nd->cores[k];
    struct pbft_config *cfg = &rc->cfg;
    struct rc_store *st = &nd->store[k];
    pbft_seq base = w->base_seq[k];
    pbft_seq last = stop != UINT64_MAX ? stop : nd->n_log;
    const char *err = NULL;
    struct pbft_ready rd;
    uint32_t self = 0;
    int rv;

    if (rc->core != NULL)
        core_free(w, nd, rc, "superseded");
    (void)in_set(&w->sets[k], nd->id, &self);
    pbft_config_defaults(cfg);
    cfg->n = w->sets[k].n;
    cfg->self = self;
    memcpy(cfg->chain_id, w->chain[k], PBFT_CHAIN_ID_SIZE);
    memcpy(cfg->genesis_digest, state_at(w, nd, base), PBFT_DIGEST_SIZE);
    cfg->base_seq = base;
    cfg->initial_view = base == 0 ? 0 : nd->log[base - 1].view;
    cfg->batch_max = w->base.prm.batch_max;
    cfg->batch_delay_ms = w->base.prm.batch_delay_ms;
    cfg->checkpoint_interval = w->K;
    cfg->watermark_window = w->base.prm.watermark_window;
    cfg->view_timeout_ms = 500;
    cfg->view_timeout_max_ms = 4000;
    cfg->fetch_timeout_ms = 300;
    cfg->request_bytes_max = 256;
    cfg->batch_bytes_max = w->base.prm.batch_max * 256;
    cfg->pending_max = 64 + 2 * w->base.n_clients;
    cfg->clients_max = w->base.n_clients + 8;
    rc->epoch = k;
    rc->cctx.w = w;
    rc->cctx.epoch = k;
    rc->cctx.id = nd->id;
    crypto_fill(&cfg->crypto, &rc->cctx);
    rc->free_after = false;
    rc->stop = stop;
    rc->core = pbft_new(cfg, &err);
    if (rc->core == NULL) {
        sim_fail(&w->base, (int)nd->id, -1, "pbft_new: %s", err ? err : "?");
        return;
    }
    if (st->meta != NULL) {
        struct pbft_record rec = {.type = PBFT_REC_META, .meta = st->meta};

        if (pbft_restore(rc->core, &rec) != 0)
            sim_fail(&w->base, (int)nd->id, -1, "id%u: META refused", nd->id);
    }
    for (size_t i = 0; i < st->n; i++) {
        struct pbft_record rec = {.type = PBFT_REC_MSG,
                                  .seq = st->recs[i].seq,
                                  .view = st->recs[i].view,
                                  .replica = st->recs[i].replica,
                                  .msg = st->recs[i].msg};

        rv = pbft_restore(rc->core, &rec);
        if (rv != 0)
            sim_fail(&w->base, (int)nd->id, -1,
                     "id%u refused its own epoch %u record: %s", nd->id, k,
                     pbft_strerror(rv));
    }
    if (stop != UINT64_MAX && pbft_set_stop(rc->core, stop) != 0)
        sim_fail(&w->base, (int)nd->id, -1, "id%u: pbft_set_stop refused",
                 nd->id);
    memset(&rd, 0, sizeof(rd));
    rv = pbft_start(rc->core, last, state_at(w, nd, last), w->base.now, &rd);
    if (rv != 0) {
        sim_fail(&w->base, (int)nd->id, -1, "id%u: pbft_start: %s", nd->id,
                 pbft_strerror(rv));
        return;
    }
    note(w, nd,
         "sim: epoch %u core started (index %u of %u, base %" PRIu64
         ", executed %" PRIu64 "%s)",
         k, self, cfg->n, base, last, stop != UINT64_MAX ? ", stopped" : "");
    process_ready(w, nd, rc, &rd);
}

/* The application just reached app_epoch: stop the old core, start the
 * new one if this replica is in the new set. */
static void switch_to(struct rc_world *w, struct rc_node *nd)
{
    uint32_t k = nd->app_epoch;
    struct rc_core *old = &nd->cores[k - 1];

    if (old->core != NULL && old->epoch == k - 1 && nd->cert[k].known) {
        core_free(w, nd, old, "certificate known");
    } else if (old->core != NULL && old->epoch == k - 1) {
        old->stop = w->base_seq[k];
        if (pbft_set_stop(old->core, old->stop) != 0)
            sim_fail(&w->base, (int)nd->id, -1,
                     "id%u: pbft_set_stop(%" PRIu64 ") refused", nd->id,
                     old->stop);
        note(w, nd, "sim: epoch %u core stopped at %" PRIu64, k - 1, old->stop);
    }
    if (in_set(&w->sets[k], nd->id, NULL) && !w->base.failed)
        core_boot(w, nd, k, UINT64_MAX);
}

/* A restart: the cores the durable state calls for. */
static void node_boot(struct rc_world *w, struct rc_node *nd)
{
    uint32_t k;

    nd->alive = true;
    nd->progress_at = w->base.now;
    app_derive(w, nd);
    k = nd->app_epoch;
    note(w, nd, "sim: boot (executed %zu, epoch %u)", nd->n_log, k);
    /* every old epoch whose certificate is still missing: stopped */
    for (uint32_t j = 1; j <= k && nd->alive && !w->base.failed; j++)
        if (!nd->cert[j].known && in_set(&w->sets[j - 1], nd->id, NULL))
            core_boot(w, nd, j - 1, w->base_seq[j]);
    if (in_set(&w->sets[k], nd->id, NULL) && nd->alive && !w->base.failed)
        core_boot(w, nd, k, UINT64_MAX);
}

static void node_crash(struct rc_world *w, struct rc_node *nd)
{
    if (!nd->alive)
        return;
    note(w, nd, "sim: crash");
    for (int i = 0; i < RC_EPOCHS; i++)
        if (nd->cores[i].core != NULL) {
            pbft_free(nd->cores[i].core);
            nd->cores[i].core = NULL;
        }
    nd->alive = false;
    nd->incarnation++;
}

static void schedule_restart(struct rc_world *w, struct rc_node *nd,
                             uint64_t at)
{
    struct rc_ev *e = ev_new(w, RC_RESTART, at);

    e->id = nd->id;
    e->gen = nd->incarnation;
    ev_push(w, e);
}

static struct rc_core *core_of(struct rc_node *nd, uint32_t epoch)
{
    struct rc_core *rc = &nd->cores[epoch];

    return rc->core != NULL && rc->epoch == epoch ? rc : NULL;
}

static const struct rc_node *donor_for(struct rc_world *w,
                                       const struct rc_node *nd, pbft_seq seq,
                                       const uint8_t *digest)
{
    for (uint32_t id = 0; id < w->n_ids; id++) {
        const struct rc_node *d = &w->nodes[id];

        if (d == nd || d->n_log < seq || seq == 0)
            continue;
        if (digest == NULL || memcmp(d->log[seq - 1].state, digest, 32) == 0)
            return d;
    }
    return NULL;
}

/* A core asked for state up to a certified checkpoint of its epoch. */
static void do_transfer(struct rc_world *w, const struct rc_ev *ev)
{
    struct rc_node *nd = &w->nodes[ev->id];
    struct rc_core *rc = core_of(nd, ev->epoch);
    uint32_t before = nd->app_epoch;
    struct pbft_event pe;

    if (!nd->alive || rc == NULL || nd->incarnation != ev->gen ||
        nd->fetch_gen != ev->req_no)
        return;
    if (w->base.faults_active && sim_rng_chance(rng(w), 100))
        return; /* lost: the core retries */
    if (ev->epoch + 1 < w->n_epochs && w->known[ev->epoch + 1] &&
        ev->seq > w->base_seq[ev->epoch + 1]) {
        sim_fail(&w->base, (int)nd->id, -1,
                 "id%u: epoch %u certified seq %" PRIu64 " beyond its end",
                 nd->id, ev->epoch, ev->seq);
        return;
    }
    if (nd->n_log < ev->seq) {
        const struct rc_node *d = donor_for(w, nd, ev->seq, ev->digest);

        if (d == NULL) {
            sim_fail(&w->base, (int)nd->id, -1,
                     "id%u fetched certified state seq %" PRIu64
                     " no correct replica holds",
                     nd->id, ev->seq);
            return;
        }
        app_install(w, nd, d, ev->seq);
        note(w, nd, "sim: state transferred up to %" PRIu64 " from id%u",
             ev->seq, d->id);
    }
    memset(&pe, 0, sizeof(pe));
    pe.type = PBFT_EV_STATE_TRANSFERRED;
    pe.u.transferred.seq = ev->seq;
    memcpy(pe.u.transferred.digest, ev->digest, 32);
    node_step(w, nd, rc, &pe);
    if (nd->alive && nd->app_epoch != before) {
        switch_check(w, nd, nd->app_epoch, w->base_seq[nd->app_epoch]);
        switch_to(w, nd);
    }
}

/* Block sync, the driver's fallback: a lingering old core gets its
 * certificate from a peer; a replica left behind (or added) copies a
 * correct replica's state up to the next switch, with its certificate. */
static void node_sync(struct rc_world *w, struct rc_node *nd)
{
    uint32_t k = nd->app_epoch;
    struct rc_node *d = NULL;

    if (!nd->alive || w->base.failed)
        return;
    for (uint32_t j = 1; j <= k; j++) {
        struct rc_core *old = core_of(nd, j - 1);

        if (nd->cert[j].known)
            continue;
        d = NULL;
        for (uint32_t id = 0; id < w->n_ids && d == NULL; id++)
            if (w->nodes[id].alive && w->nodes[id].cert[j].known)
                d = &w->nodes[id];
        if (d == NULL)
            return; /* not before the certificates it lacks */
        if (!cert_ok(w, nd, j, &d->cert[j].cert))
            return;
        cert_keep(&nd->cert[j], &d->cert[j].cert);
        w->certs_copied++;
        if (old != NULL)
            core_free(w, nd, old, "certificate from a peer");
    }
    d = NULL;
    if (k + 1 >= w->n_epochs || !w->known[k + 1] ||
        nd->n_log >= w->base_seq[k + 1])
        return;
    if (in_set(&w->sets[k], nd->id, NULL) &&
        w->base.now < nd->progress_at + RC_STALL_MS)
        return; /* a member catches up through its core first */
    for (uint32_t id = 0; id < w->n_ids && d == NULL; id++) {
        struct rc_node *x = &w->nodes[id];

        if (x != nd && x->alive && x->cert[k + 1].known &&
            x->n_log >= w->base_seq[k + 1])
            d = x;
    }
    if (d == NULL)
        return;
    app_install(w, nd, d, w->base_seq[k + 1]);
    cert_keep(&nd->cert[k + 1], &d->cert[k + 1].cert);
    w->catchups++;
    note(w, nd, "sim: caught up to epoch %u at %" PRIu64 " from id%u", k + 1,
         w->base_seq[k + 1], d->id);
    if (nd->app_epoch != k + 1) {
        sim_fail(&w->base, (int)nd->id, -1, "id%u: catch-up missed a switch",
                 nd->id);
        return;
    }
    if (core_of(nd, k) != NULL)
        core_free(w, nd, core_of(nd, k), "caught up past it");
    switch_to(w, nd);
}

/* ---- faults ------------------------------------------------------------- */

static uint32_t current_primary_id(struct rc_world *w, uint32_t epoch)
{
    pbft_view v = 0;
    bool any = false;

    for (uint32_t id = 0; id < w->n_ids; id++) {
        struct rc_core *rc;
        struct pbft_status st;

        if (!w->nodes[id].alive)
            continue;
        rc = core_of(&w->nodes[id], epoch);
        if (rc == NULL)
            continue;
        pbft_get_status(rc->core, &st);
        if (!any || st.view > v)
            v = st.view;
        any = true;
    }
    return w->sets[epoch].ids[v % w->sets[epoch].n];
}

static uint32_t crashed_count(const struct rc_world *w)
{
    uint32_t k = 0;

    for (uint32_t id = 0; id < w->n_ids; id++)
        k += !w->nodes[id].alive;
    return k;
}

static void fault_tick(struct rc_world *w)
{
    uint64_t r = sim_rng_below(rng(w), 100);
    struct rc_ev *e;

    if (!w->base.faults_active)
        return;
    if (r < 35) {
        w->base.loss_pm = (uint32_t)sim_rng_range(rng(w), 0, 120);
        w->base.dup_pm = (uint32_t)sim_rng_range(rng(w), 0, 100);
        w->base.long_delay_pm = (uint32_t)sim_rng_range(rng(w), 0, 40);
        w->base.delay_max = sim_rng_range(rng(w), 2, 60);
    } else if (r < 60 && crashed_count(w) == 0) {
        struct rc_node *nd = &w->nodes[sim_rng_below(rng(w), w->n_ids)];

        node_crash(w, nd);
        schedule_restart(w, nd, w->base.now + sim_rng_range(rng(w), 30, 1500));
    }
    e = ev_new(w, RC_FAULT, w->base.now + sim_rng_range(rng(w), 50, 400));
    if (e->at < w->base.heal_at)
        ev_push(w, e);
    else
        free(e);
}

static void heal(struct rc_world *w)
{
    w->base.faults_active = false;
    w->base.loss_pm = w->base.dup_pm = w->base.long_delay_pm = 0;
    w->base.delay_min = 1;
    w->base.delay_max = 10;
    for (uint32_t id = 0; id < w->n_ids && !w->base.failed; id++)
        if (!w->nodes[id].alive) {
            w->nodes[id].incarnation++; /* a pending restart is void */
            node_boot(w, &w->nodes[id]);
        }
}

/* ---- dispatch and the main loop ----------------------------------------- */

static bool msg_wanted(struct pbft *core, uint32_t from,
                       const struct pbft_msg *m)
{
    if (m->type == PBFT_MSG_PREPREPARE)
        return pbft_wants(core, from, m->type, m->u.pp.hdr.view,
                          m->u.pp.hdr.seq);
    if (m->type == PBFT_MSG_PREPARE || m->type == PBFT_MSG_COMMIT ||
        m->type == PBFT_MSG_CHECKPOINT)
        return pbft_wants(core, from, m->type, m->u.vote.view, m->u.vote.seq);
    return true;
}

static void deliver(struct rc_world *w, const struct rc_ev *e)
{
    struct rc_node *nd = &w->nodes[e->id];
    struct rc_core *rc = core_of(nd, e->epoch);
    struct pbft_event pe;
    uint32_t from = 0;

    if (!nd->alive || rc == NULL || !in_set(&w->sets[e->epoch], e->from, &from))
        return; /* no core of that epoch here (yet, or any more) */
    if (!msg_wanted(rc->core, from, e->msg))
        return;
    memset(&pe, 0, sizeof(pe));
    pe.type = PBFT_EV_RECEIVE;
    pe.u.receive.from = from;
    pe.u.receive.msg = e->msg;
    node_step(w, nd, rc, &pe);
}

/* A client request goes to the newest core that is not stopped. */
static void client_request_arrives(struct rc_world *w, const struct rc_ev *e)
{
    struct rc_node *nd = &w->nodes[e->id];
    struct rc_core *rc = NULL;
    uint8_t buf[SIM_REQ_LEN];
    struct pbft_request rq;
    struct pbft_event pe;

    if (!nd->alive)
        return;
    for (int i = 0; i < RC_EPOCHS; i++)
        if (nd->cores[i].core != NULL && nd->cores[i].epoch == nd->app_epoch)
            rc = &nd->cores[i];
    if (rc == NULL)
        return;
    sim_request_build(&w->base, e->client, e->req_no, buf, &rq);
    memset(&pe, 0, sizeof(pe));
    pe.type = PBFT_EV_REQUEST;
    pe.u.request = &rq;
    node_step(w, nd, rc, &pe);
}

static void sync_tick(struct rc_world *w)
{
    struct rc_ev *e;

    for (uint32_t id = 0; id < w->n_ids; id++)
        node_sync(w, &w->nodes[id]);
    e = ev_new(w, RC_SYNC, w->base.now + sim_rng_range(rng(w), 150, 400));
    ev_push(w, e);
}

static void dispatch(struct rc_world *w, struct rc_ev *e)
{
    struct rc_node *nd = &w->nodes[e->id];
    struct rc_core *rc;
    struct pbft_event pe;

    switch (e->kind) {
    case RC_DELIVER:
        deliver(w, e);
        break;
    case RC_CLIENT_REQ:
        client_request_arrives(w, e);
        break;
    case RC_REPLY:
        client_got_reply(w, e);
        break;
    case RC_CLIENT_TIMER:
        if (e->gen == w->base.clients[e->client].timer_gen)
            client_timer(w, e->client);
        break;
    case RC_EXECUTED:
        rc = core_of(nd, e->epoch);
        if (!nd->alive || rc == NULL || nd->incarnation != e->gen ||
            nd->exec_gen != e->req_no)
            break;
        memset(&pe, 0, sizeof(pe));
        pe.type = PBFT_EV_EXECUTED;
        pe.u.executed.seq = e->seq;
        memcpy(pe.u.executed.digest, e->digest, 32);
        node_step(w, nd, rc, &pe);
        break;
    case RC_TRANSFER:
        do_transfer(w, e);
        break;
    case RC_FAULT:
        fault_tick(w);
        break;
    case RC_RESTART:
        if (!nd->alive && nd->incarnation == e->gen)
            node_boot(w, nd);
        break;
    case RC_HEAL:
        heal(w);
        break;
    case RC_SYNC:
        sync_tick(w);
        break;
    case RC_CRASH_PRIMARY:
        if (w->base.faults_active) {
            nd = &w->nodes[current_primary_id(w, e->epoch)];
            if (nd->alive) {
                note(w, nd, "sim: the primary of epoch %u crashes", e->epoch);
                node_crash(w, nd);
                schedule_restart(
                    w, nd, w->base.now + sim_rng_range(rng(w), 500, 2500));
            }
        }
        break;
    }
}

static uint64_t node_timer(const struct rc_node *nd, int *which)
{
    uint64_t t = UINT64_MAX;

    for (int i = 0; i < RC_EPOCHS && nd->alive; i++) {
        uint64_t d;

        if (nd->cores[i].core == NULL)
            continue;
        d = pbft_deadline_ms(nd->cores[i].core);
        if (d < t) {
            t = d;
            *which = i;
        }
    }
    return t;
}

/* Done: every change happened, every client finished, every old core is
 * gone and exactly the final set runs a core of the final epoch. */
static bool finished(struct rc_world *w)
{
    uint32_t last = w->n_epochs - 1;

    if (w->base.now < w->base.heal_at || !w->known[last])
        return false;
    for (uint32_t c = 0; c < w->base.n_clients; c++)
        if (w->base.clients[c].n_done < client_total(w, c))
            return false;
    for (uint32_t id = 0; id < w->n_ids; id++) {
        const struct rc_node *nd = &w->nodes[id];
        bool member = in_set(&w->sets[last], id, NULL);

        for (int i = 0; i < RC_EPOCHS; i++)
            if (nd->cores[i].core != NULL && nd->cores[i].epoch != last)
                return false;
        if (member && core_of((struct rc_node *)nd, last) == NULL)
            return false;
        if (!member && core_of((struct rc_node *)nd, last) != NULL)
            return false;
    }
    return true;
}

static void liveness_report(struct rc_world *w)
{
    char buf[256];
    size_t used = 0;

    for (uint32_t id = 0; id < w->n_ids && used < sizeof(buf); id++) {
        const struct rc_node *nd = &w->nodes[id];
        uint32_t cores = 0;
        int k;

        for (uint32_t e = 0; e < RC_EPOCHS; e++)
            cores += nd->cores[e].core != NULL;
        /* idN:e<epoch>/<executed>/<cores>, X when down */
        k = snprintf(buf + used, sizeof(buf) - used, " id%u:e%u/%zu/%u%s", id,
                     nd->app_epoch, nd->n_log, cores, nd->alive ? "" : "X");

        if (k < 0)
            break;
        used += (size_t)k;
    }
    sim_fail(&w->base, -1, -1,
             "liveness: not finished %" PRIu64
             " ms after the heal (gov %u/%u, known epochs up to %u;%s)",
             w->base.prm.liveness_ms, w->base.clients[0].n_done,
             client_total(w, 0), latest_epoch(w), buf);
}

static void final_checks(struct rc_world *w)
{
    const struct rc_node *best = &w->nodes[0];

    for (uint32_t k = 1; k < w->n_epochs; k++)
        if (!w->cert_formed[k])
            sim_fail(&w->base, -1, -1,
                     "no old core formed the certificate ending epoch %u",
                     k - 1);
    for (uint32_t id = 1; id < w->n_ids; id++)
        if (w->nodes[id].n_log > best->n_log)
            best = &w->nodes[id];
    for (uint32_t c = 0; c < w->base.n_clients; c++)
        for (uint64_t r = 1; r <= w->base.clients[c].n_done; r++)
            if (!best->executed[(size_t)c * w->base.req_cap + r])
                sim_fail(&w->base, (int)best->id, -1,
                         "client %u request %" PRIu64
                         " was answered but is not in the longest log",
                         c, r);
}

static void loop(struct rc_world *w)
{
    uint64_t deadline = w->base.heal_at + w->base.prm.liveness_ms;

    while (!w->base.failed) {
        uint64_t t_timer = UINT64_MAX;
        struct rc_node *tn = NULL;
        int which = 0;

        if (finished(w)) {
            final_checks(w);
            return;
        }
        if (++w->base.n_events > w->base.prm.max_events) {
            sim_fail(&w->base, -1, -1, "event budget exhausted (livelock?)");
            return;
        }
        for (uint32_t id = 0; id < w->n_ids; id++) {
            int i = 0;
            uint64_t t = node_timer(&w->nodes[id], &i);

            if (t < t_timer) {
                t_timer = t;
                tn = &w->nodes[id];
                which = i;
            }
        }
        if (w->heap_len > 0 && w->heap[0]->at <= t_timer) {
            struct rc_ev *e = ev_pop(w);

            if (e->at > deadline) {
                ev_free(e);
                liveness_report(w);
                return;
            }
            if (e->at > w->base.now)
                w->base.now = e->at;
            dispatch(w, e);
            ev_free(e);
        } else if (tn != NULL) {
            struct pbft_event pe;

            if (t_timer > deadline) {
                liveness_report(w);
                return;
            }
            if (t_timer > w->base.now)
                w->base.now = t_timer;
            memset(&pe, 0, sizeof(pe));
            pe.type = PBFT_EV_TIMEOUT;
            node_step(w, tn, &tn->cores[which], &pe);
        } else {
            liveness_report(w);
            return;
        }
    }
}

/* ---- setup and report --------------------------------------------------- */

static void world_init(struct rc_world *w, const struct sim_params *prm)
{
    uint8_t buf[64];
    struct sim *s = &w->base;

    memset(w, 0, sizeof(*w));
    s->prm = *prm;
    sim_rng_seed(&s->rng, prm->seed * 0x9e3779b97f4a7c15ULL + prm->n + 77);
    s->now = SIM_T0_MS;
    s->n = prm->n;
    s->twin_of = -1;
    s->n_clients = prm->n_clients + 1; /* + the governance client */
    s->req_cap = prm->reqs_pre + prm->reqs_post + RC_EPOCHS + 2;
    s->delay_min = 1;
    s->delay_max = 10;
    sim_sha256("sim-genesis", 11, s->genesis);
    w->n_epochs = RC_EPOCHS;
    w->n_ids = prm->n == 4 ? 7 : 8;
    /* K = 1 as in the node: every block certified, a switch decided at s
     * takes effect at s. (With K > 1 it waits for the checkpoint after s,
     * which needs more batches: an idle cluster would never get there.) */
    w->K = 1;
    w->base.prm.watermark_window = 4u << sim_rng_below(&s->rng, 3);
    for (uint32_t k = 0; k < RC_EPOCHS; k++) {
        snprintf((char *)buf, sizeof(buf), "sim-chain-epoch-%u", k);
        sim_sha256(buf, strlen((char *)buf), w->chain[k]);
    }
    for (uint32_t id = 0; id < RC_MAX_IDS; id++) {
        snprintf((char *)buf, sizeof(buf), "sim-replica-secret-%u", id);
        sim_sha256(buf, strlen((char *)buf), w->secret[id]);
    }
    for (uint32_t c = 0; c < s->n_clients; c++) {
        struct sim_client *cl = &s->clients[c];

        snprintf((char *)buf, sizeof(buf), "sim-client-%u", c);
        sim_sha256(buf, strlen((char *)buf), cl->key);
        cl->key[0] = (uint8_t)(c >> 8);
        cl->key[1] = (uint8_t)c;
        snprintf((char *)buf, sizeof(buf), "sim-client-secret-%u", c);
        sim_sha256(buf, strlen((char *)buf), cl->secret);
        cl->next_req_no = 1;
    }
    w->sets[0].n = prm->n;
    for (uint32_t i = 0; i < prm->n; i++)
        w->sets[0].ids[i] = i;
    w->planned[0] = w->known[0] = true;
    for (uint32_t id = 0; id < w->n_ids; id++) {
        struct rc_node *nd = &w->nodes[id];

        nd->id = id;
        nd->executed = rc_calloc((size_t)s->n_clients * s->req_cap, 1);
        memcpy(nd->state, s->genesis, 32);
    }
}

static void world_free(struct rc_world *w)
{
    for (uint32_t id = 0; id < w->n_ids; id++) {
        struct rc_node *nd = &w->nodes[id];

        for (int i = 0; i < RC_EPOCHS; i++)
            pbft_free(nd->cores[i].core);
        for (uint32_t k = 0; k < RC_EPOCHS; k++)
            store_wipe(&nd->store[k]);
        app_wipe(w, nd);
        free(nd->executed);
    }
    while (w->heap_len > 0)
        ev_free(ev_pop(w));
    free(w->heap);
    free(w->agree);
}

static void print_failure(struct rc_world *w)
{
    struct sim *s = &w->base;

    printf("SEED=%" PRIu64 " NODES=%u FAMILY=reconfig: %s\n", s->prm.seed,
           s->prm.n, s->why);
    printf("  replay: build/asan/bin/sim --family reconfig --seed %" PRIu64
           " --nodes %u --trace\n",
           s->prm.seed, s->prm.n);
    printf("  t=%" PRIu64 " ms, %" PRIu64 " events; sets:", s->now - SIM_T0_MS,
           s->n_events);
    for (uint32_t k = 0; k < w->n_epochs && w->planned[k]; k++) {
        printf(" e%u{", k);
        for (uint32_t i = 0; i < w->sets[k].n; i++)
            printf("%s%u", i ? "," : "", w->sets[k].ids[i]);
        printf("}@%" PRIu64 "%s", w->base_seq[k], w->known[k] ? "" : "?");
    }
    printf("\n");
    for (int i = 0; i < 2; i++) {
        int r = s->suspects[i];
        struct rc_node *nd;
        uint32_t start;

        if (r < 0 || (uint32_t)r >= w->n_ids)
            continue;
        nd = &w->nodes[r];
        printf("  --- last %u trace lines of id%u ---\n", nd->trace_count,
               nd->id);
        start = (nd->trace_head + SIM_TRACE_RING - nd->trace_count) %
                SIM_TRACE_RING;
        for (uint32_t j = 0; j < nd->trace_count; j++)
            printf("  %s\n", nd->trace[(start + j) % SIM_TRACE_RING]);
    }
    fflush(stdout);
}

void sim_reconfig_run(const struct sim_params *prm, struct sim_result *res,
                      bool print_failure_report)
{
    struct rc_world *w = rc_calloc(1, sizeof(*w));
    struct sim *s = &w->base;
    uint64_t vc = 0;

    world_init(w, prm);
    s->heal_at = s->now + prm->fault_ms;
    s->faults_active = true;
    ev_push(w, ev_new(w, RC_FAULT, s->now + sim_rng_range(rng(w), 20, 200)));
    ev_push(w, ev_new(w, RC_HEAL, s->heal_at));
    ev_push(w, ev_new(w, RC_SYNC, s->now + 200));
    for (uint32_t id = 0; id < prm->n && !s->failed; id++)
        node_boot(w, &w->nodes[id]);
    client_arm(w, RC_GOV_CLIENT,
               s->now + sim_rng_range(rng(w), 100, prm->fault_ms / 2));
    for (uint32_t c = 1; c < s->n_clients; c++)
        client_arm(w, c, s->now + sim_rng_below(rng(w), 100));
    loop(w);
    for (uint32_t id = 0; id < w->n_ids; id++)
        for (int i = 0; i < RC_EPOCHS; i++)
            if (w->nodes[id].cores[i].core != NULL) {
                struct pbft_status st;

                pbft_get_status(w->nodes[id].cores[i].core, &st);
                if (st.view_changes > vc)
                    vc = st.view_changes;
            }
    res->ok = !s->failed;
    res->events = s->n_events;
    res->sim_ms = s->now - SIM_T0_MS;
    res->view_changes = vc;
    snprintf(res->why, sizeof(res->why), "%s", s->why);
    if (s->failed && print_failure_report)
        print_failure(w);
    if (prm->trace_all)
        printf("reconfig: %" PRIu64
               " certificates formed by old cores, %" PRIu64 " copied, %" PRIu64
               " catch-ups, %" PRIu64 " repeats skipped\n",
               w->certs_own, w->certs_copied, w->catchups, s->repeats_skipped);
    world_free(w);
    free(w);
}
