/*
 * ready.c - the action buffers of one step, and the batch pool.
 *
 * Everything handed out in a ready lives in buffers allocated once in
 * pbft_new() and stays valid until pbft_advance(): batch buffers are
 * reference counted and their releases are deferred to the advance, so a
 * batch GC'd in the same step as its execute action is still readable.
 */
#include "internal.h"

#include <string.h>

static void *xcalloc(size_t n, size_t size)
{
    return calloc(n > 0 ? n : 1, size > 0 ? size : 1);
}

int ready_init(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;
    uint32_t L = p->L, n = p->n;

    rb->cap_msgs = 4 * L + 3 * n + p->R + 32;
    /* + one client-table record per executed request */
    rb->cap_msg_store = rb->cap_msgs + L * p->cfg.batch_max;
    rb->cap_persist = 6 * L + 2 * n + 32 + L * p->cfg.batch_max;
    rb->cap_execute = L + 4;
    rb->cap_certified = p->R + L + 4;
    rb->cap_replies = 16;
    rb->cap_trace = 64;
    rb->trace_cap = 64 * 200;
    rb->arena_cap = (size_t)(p->R + 2 * L + 16) * n * sizeof(struct pbft_vote) +
                    (size_t)(2 * L + 8) * sizeof(struct pbft_prepared_cert) +
                    4096;
    rb->cap_deferred = 4 * p->n_pool + 64;
    rb->msgs = xcalloc(rb->cap_msgs, sizeof(*rb->msgs));
    rb->msg_store = xcalloc(rb->cap_msg_store, sizeof(*rb->msg_store));
    rb->persist = xcalloc(rb->cap_persist, sizeof(*rb->persist));
    rb->execute = xcalloc(rb->cap_execute, sizeof(*rb->execute));
    rb->certified = xcalloc(rb->cap_certified, sizeof(*rb->certified));
    rb->replies = xcalloc(rb->cap_replies, sizeof(*rb->replies));
    rb->trace = xcalloc(rb->cap_trace, sizeof(*rb->trace));
    rb->trace_text = xcalloc(rb->trace_cap, 1);
    rb->arena = xcalloc(rb->arena_cap, 1);
    rb->deferred = xcalloc(rb->cap_deferred, sizeof(*rb->deferred));
    if (!rb->msgs || !rb->msg_store || !rb->persist || !rb->execute ||
        !rb->certified || !rb->replies || !rb->trace || !rb->trace_text ||
        !rb->arena || !rb->deferred)
        return PBFT_ENOMEM;
    return PBFT_OK;
}

void ready_free(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;

    free(rb->msgs);
    free(rb->msg_store);
    free(rb->persist);
    free(rb->execute);
    free(rb->certified);
    free(rb->replies);
    free(rb->trace);
    free(rb->trace_text);
    free(rb->arena);
    free(rb->deferred);
}

void ready_release(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;

    for (uint32_t i = 0; i < rb->n_deferred; i++) {
        struct batch *b = pool_get(p, rb->deferred[i]);

        PBFT_ASSERT(b->refs > 0);
        b->refs--;
    }
    rb->n_deferred = 0;
    rb->n_persist = rb->n_msgs = rb->n_msg_store = rb->n_execute = 0;
    rb->n_certified = rb->n_replies = rb->n_trace = 0;
    rb->trace_used = rb->arena_used = 0;
    rb->has_fetch = false;
    rb->outstanding = false;
    memset(&rb->out, 0, sizeof(rb->out));
}

void ready_begin(struct pbft *p)
{
    /* A driver that skipped pbft_advance() gets it implicitly: the previous
     * ready is invalid from the next step on. */
    if (p->rb.outstanding)
        ready_release(p);
    PBFT_ASSERT(p->rb.n_msgs == 0);
    PBFT_ASSERT(p->rb.n_deferred == 0);
}

void *ready_alloc(struct pbft *p, size_t size)
{
    struct ready_buf *rb = &p->rb;
    size_t aligned = (size + 15) & ~(size_t)15;
    void *mem;

    if (aligned > rb->arena_cap - rb->arena_used)
        return NULL;
    mem = rb->arena + rb->arena_used;
    rb->arena_used += aligned;
    return mem;
}

struct pbft_vote *ready_copy_votes(struct pbft *p, const struct pbft_vote *v,
                                   uint32_t n)
{
    struct pbft_vote *copy = ready_alloc(p, (size_t)n * sizeof(*copy));

    if (copy != NULL && n > 0)
        memcpy(copy, v, (size_t)n * sizeof(*copy));
    return copy;
}

uint32_t ready_room(const struct pbft *p)
{
    return p->rb.cap_msg_store - p->rb.n_msg_store;
}

struct pbft_msg *ready_msg(struct pbft *p, enum pbft_msg_type type)
{
    struct ready_buf *rb = &p->rb;
    struct pbft_msg *m;

    if (rb->n_msg_store == rb->cap_msg_store)
        return NULL;
    m = &rb->msg_store[rb->n_msg_store++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    return m;
}

void ready_send(struct pbft *p, uint32_t to, const struct pbft_msg *m)
{
    struct ready_buf *rb = &p->rb;

    PBFT_ASSERT(to == PBFT_BROADCAST || to < p->n);
    PBFT_ASSERT(to != p->cfg.self);
    if (m == NULL || rb->n_msgs == rb->cap_msgs) {
        rb->lost_sends++; /* as if the network lost it */
        return;
    }
    rb->msgs[rb->n_msgs].to = to;
    rb->msgs[rb->n_msgs].msg = m;
    rb->n_msgs++;
}

static struct pbft_record *persist_slot(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;
    struct pbft_record *r;

    /* Sized for the worst step; losing a record could make us equivocate
     * after a restart, so running out is a bug, not an input error. */
    PBFT_ASSERT(rb->n_persist < rb->cap_persist);
    r = &rb->persist[rb->n_persist++];
    memset(r, 0, sizeof(*r));
    return r;
}

void ready_persist_msg(struct pbft *p, const struct pbft_msg *m, pbft_seq seq,
                       pbft_view view, uint32_t replica)
{
    struct pbft_record *r;

    PBFT_ASSERT(m != NULL);
    r = persist_slot(p);
    r->type = PBFT_REC_MSG;
    r->seq = seq;
    r->view = view;
    r->replica = replica;
    r->msg = m;
}

void ready_persist_meta(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;

    /* One META record per ready, filled with the state at the end of the
     * step (ready_finish): later state is a superset of earlier. */
    for (uint32_t i = 0; i < rb->n_persist; i++)
        if (rb->persist[i].type == PBFT_REC_META)
            return;
    persist_slot(p)->type = PBFT_REC_META;
}

void ready_persist_gc(struct pbft *p, pbft_seq seq)
{
    struct pbft_record *r = persist_slot(p);

    PBFT_ASSERT(seq > 0);
    r->type = PBFT_REC_GC;
    r->seq = seq;
}

void ready_execute(struct pbft *p, const struct slot *s)
{
    struct ready_buf *rb = &p->rb;
    struct pbft_execute *e;
    const struct batch *b = pool_get(p, s->decided_batch);

    PBFT_ASSERT(rb->n_execute < rb->cap_execute);
    PBFT_ASSERT(s->decided);
    e = &rb->execute[rb->n_execute++];
    e->seq = s->seq;
    e->view = s->decided_pp.view;
    e->timestamp_ms = s->decided_pp.timestamp_ms;
    e->n_requests = b->n_requests;
    e->requests = b->reqs;
}

bool ready_certified(struct pbft *p, const struct pbft_checkpoint_cert *c)
{
    struct ready_buf *rb = &p->rb;
    struct pbft_checkpoint_cert *out;
    struct pbft_vote *votes;

    if (rb->n_certified == rb->cap_certified)
        return false;
    votes = ready_copy_votes(p, c->votes, c->n_votes);
    if (votes == NULL)
        return false;
    out = &rb->certified[rb->n_certified++];
    *out = *c;
    out->votes = votes;
    return true;
}

void ready_reply(struct pbft *p, const struct pbft_request *req)
{
    struct ready_buf *rb = &p->rb;

    if (rb->n_replies == rb->cap_replies)
        return;
    memcpy(rb->replies[rb->n_replies].client, req->client, PBFT_KEY_SIZE);
    rb->replies[rb->n_replies].req_no = req->req_no;
    rb->n_replies++;
}

void ready_fetch(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;
    struct pbft_checkpoint_cert *c = ready_alloc(p, sizeof(*c));

    if (c == NULL)
        return;
    *c = p->stable.cert;
    c->votes = ready_copy_votes(p, p->stable.cert.votes, c->n_votes);
    if (c->votes == NULL)
        return;
    rb->fetch.cert = c;
    rb->has_fetch = true;
}

static void finish_meta(struct pbft *p)
{
    struct ready_buf *rb = &p->rb;

    for (uint32_t i = 0; i < rb->n_persist; i++) {
        if (rb->persist[i].type != PBFT_REC_META)
            continue;
        rb->meta.view = p->view;
        rb->meta.in_view_change = p->in_vc;
        rb->meta.last_seq_assigned = p->last_assigned;
        rb->meta.stable = p->stable.cert;
        rb->meta.stable.votes =
            ready_copy_votes(p, p->stable.cert.votes, p->stable.cert.n_votes);
        PBFT_ASSERT(rb->meta.stable.votes != NULL ||
                    p->stable.cert.n_votes == 0);
        rb->persist[i].meta = &rb->meta;
    }
}

void ready_finish(struct pbft *p, struct pbft_ready *out)
{
    struct ready_buf *rb = &p->rb;

    finish_meta(p);
    memset(out, 0, sizeof(*out));
    out->n_persist = rb->n_persist;
    out->persist = rb->persist;
    out->n_msgs = rb->n_msgs;
    out->msgs = rb->msgs;
    out->n_execute = rb->n_execute;
    out->execute = rb->execute;
    out->n_certified = rb->n_certified;
    out->certified = rb->certified;
    out->n_replies = rb->n_replies;
    out->replies = rb->replies;
    out->fetch = rb->has_fetch ? &rb->fetch : NULL;
    out->n_trace = rb->n_trace;
    out->trace = rb->trace;
    rb->out = *out;
    rb->outstanding = true;
}

/* ---- batch pool ---------------------------------------------------------- */

struct batch *pool_get(struct pbft *p, int32_t b)
{
    PBFT_ASSERT(b >= 0);
    PBFT_ASSERT((uint32_t)b < p->n_pool);
    return &p->pool[b];
}

int32_t pool_alloc(struct pbft *p)
{
    for (uint32_t i = 0; i < p->n_pool; i++) {
        if (p->pool[i].refs == 0) {
            p->pool[i].refs = 1;
            p->pool[i].n_requests = 0;
            p->pool[i].bytes = 0;
            return (int32_t)i;
        }
    }
    return NO_BATCH;
}

void pool_ref(struct pbft *p, int32_t b)
{
    struct batch *bt = pool_get(p, b);

    PBFT_ASSERT(bt->refs > 0);
    bt->refs++;
}

void pool_unref(struct pbft *p, int32_t b)
{
    struct ready_buf *rb = &p->rb;

    PBFT_ASSERT(pool_get(p, b)->refs > 0);
    PBFT_ASSERT(rb->n_deferred < rb->cap_deferred);
    rb->deferred[rb->n_deferred++] = b;
}

void pool_set(struct pbft *p, int32_t *dst, int32_t b)
{
    if (b != NO_BATCH)
        pool_ref(p, b);
    if (*dst != NO_BATCH)
        pool_unref(p, *dst);
    *dst = b;
}

/* Copies a validated batch into a fresh buffer (one reference, which the
 * caller hands to pool_set and then drops with pool_unref). */
int32_t pool_store(struct pbft *p, const struct pbft_request *reqs, uint32_t n)
{
    int32_t b = pool_alloc(p);
    struct batch *bt;

    if (b == NO_BATCH)
        return NO_BATCH;
    bt = pool_get(p, b);
    PBFT_ASSERT(n <= p->cfg.batch_max);
    for (uint32_t i = 0; i < n; i++) {
        PBFT_ASSERT(reqs[i].len <= p->cfg.batch_bytes_max - bt->bytes);
        bt->reqs[i] = reqs[i];
        bt->reqs[i].data = bt->data + bt->bytes;
        if (reqs[i].len > 0)
            memcpy(bt->data + bt->bytes, reqs[i].data, reqs[i].len);
        bt->bytes += reqs[i].len;
    }
    bt->n_requests = n;
    return b;
}
