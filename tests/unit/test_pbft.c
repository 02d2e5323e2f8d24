/*
 * test_pbft.c - unit tests of the PBFT core (consensus/) through pbft.h.
 *
 * A tiny in-test cluster: n = 4 or 7 cores exchanging messages through a
 * FIFO queue (deep copies, since a ready is borrowed), a fake signature
 * scheme (sig = SHA-256(replica id || statement)), a toy application whose
 * state digest chains the executed batches, and a record store for
 * restarts. Everything is bounded; nothing touches the network.
 */
/* cmocka needs these first; keep the order. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "../../consensus/internal.h" /* statements, to forge NEW-VIEWs */
#include "pbft.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_N     7
#define MAX_EXEC  512
#define MAX_QUEUE 20000
#define MAX_RECS  4096
#define REQ_LEN   24

/* ---- fake crypto --------------------------------------------------------- */

struct fake {
    uint32_t self;
    uint64_t verify_calls;
    uint64_t verify_request_calls;
};

static void fake_hash(void *ctx, const uint8_t *data, size_t len,
                      uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    crypto_hash_sha256(out, data, len);
}

static void fake_sig(uint32_t id, const uint8_t *msg, size_t len,
                     uint8_t sig[PBFT_SIG_SIZE])
{
    crypto_hash_sha256_state st;
    uint8_t key[4] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16),
                      (uint8_t)(id >> 8), (uint8_t)id};

    memset(sig, 0, PBFT_SIG_SIZE);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, key, sizeof(key));
    crypto_hash_sha256_update(&st, msg, len);
    crypto_hash_sha256_final(&st, sig);
}

static void fake_sign(void *ctx, const uint8_t *msg, size_t len,
                      uint8_t sig[PBFT_SIG_SIZE])
{
    fake_sig(((struct fake *)ctx)->self, msg, len, sig);
}

static bool fake_verify(void *ctx, uint32_t replica, const uint8_t *msg,
                        size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    uint8_t want[PBFT_SIG_SIZE];

    ((struct fake *)ctx)->verify_calls++;
    fake_sig(replica, msg, len, want);
    return memcmp(want, sig, PBFT_SIG_SIZE) == 0;
}

/* A request is "validly signed" when its data starts with 'R'. */
static bool fake_verify_request(void *ctx, const struct pbft_request *req)
{
    ((struct fake *)ctx)->verify_request_calls++;
    return req->len >= 1 && req->data[0] == 'R';
}

/* ---- deep copies of messages ----------------------------------------------
 */

static void *dup_mem(const void *src, size_t len)
{
    void *d = malloc(len > 0 ? len : 1);

    assert_non_null(d);
    if (len > 0)
        memcpy(d, src, len);
    return d;
}

static struct pbft_request *dup_reqs(const struct pbft_request *r, uint32_t n)
{
    struct pbft_request *d = dup_mem(r, n * sizeof(*r));

    for (uint32_t i = 0; i < n; i++)
        d[i].data = dup_mem(r[i].data, r[i].len);
    return d;
}

static void free_reqs(struct pbft_request *r, uint32_t n)
{
    for (uint32_t i = 0; r != NULL && i < n; i++)
        free((void *)r[i].data);
    free(r);
}

static void dup_vc(struct pbft_view_change *d, const struct pbft_view_change *s)
{
    *d = *s;
    d->stable.votes =
        dup_mem(s->stable.votes, s->stable.n_votes * sizeof(struct pbft_vote));
    d->prepared = dup_mem(s->prepared, s->n_prepared * sizeof(*s->prepared));
    for (uint32_t i = 0; i < s->n_prepared; i++) {
        const struct pbft_prepared_cert *pc = &s->prepared[i];

        d->prepared[i].pp.requests =
            dup_reqs(pc->pp.requests, pc->pp.n_requests);
        d->prepared[i].prepares =
            dup_mem(pc->prepares, pc->n_prepares * sizeof(struct pbft_vote));
    }
}

static void free_vc(struct pbft_view_change *vc)
{
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        free_reqs(vc->prepared[i].pp.requests, vc->prepared[i].pp.n_requests);
        free(vc->prepared[i].prepares);
    }
    free(vc->prepared);
    free(vc->stable.votes);
}

static struct pbft_msg *msg_clone(const struct pbft_msg *m)
{
    struct pbft_msg *d = dup_mem(m, sizeof(*m));

    switch (m->type) {
    case PBFT_MSG_REQUEST:
        d->u.request.data = dup_mem(m->u.request.data, m->u.request.len);
        break;
    case PBFT_MSG_PREPREPARE:
        d->u.pp.requests = dup_reqs(m->u.pp.requests, m->u.pp.n_requests);
        break;
    case PBFT_MSG_VIEW_CHANGE:
        dup_vc(&d->u.vc, &m->u.vc);
        break;
    case PBFT_MSG_NEW_VIEW:
        d->u.nv.view_changes =
            dup_mem(m->u.nv.view_changes,
                    m->u.nv.n_view_changes * sizeof(struct pbft_view_change));
        for (uint32_t i = 0; i < m->u.nv.n_view_changes; i++)
            dup_vc(&d->u.nv.view_changes[i], &m->u.nv.view_changes[i]);
        d->u.nv.preprepares =
            dup_mem(m->u.nv.preprepares,
                    m->u.nv.n_preprepares * sizeof(struct pbft_preprepare));
        for (uint32_t i = 0; i < m->u.nv.n_preprepares; i++)
            d->u.nv.preprepares[i].requests =
                dup_reqs(m->u.nv.preprepares[i].requests,
                         m->u.nv.preprepares[i].n_requests);
        break;
    default:
        break;
    }
    return d;
}

static void msg_free(struct pbft_msg *m)
{
    if (m == NULL)
        return;
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        free((void *)m->u.request.data);
        break;
    case PBFT_MSG_PREPREPARE:
        free_reqs(m->u.pp.requests, m->u.pp.n_requests);
        break;
    case PBFT_MSG_VIEW_CHANGE:
        free_vc(&m->u.vc);
        break;
    case PBFT_MSG_NEW_VIEW:
        for (uint32_t i = 0; i < m->u.nv.n_view_changes; i++)
            free_vc(&m->u.nv.view_changes[i]);
        free(m->u.nv.view_changes);
        for (uint32_t i = 0; i < m->u.nv.n_preprepares; i++)
            free_reqs(m->u.nv.preprepares[i].requests,
                      m->u.nv.preprepares[i].n_requests);
        free(m->u.nv.preprepares);
        break;
    default:
        break;
    }
    free(m);
}

/* ---- the cluster ------------------------------------------------------------
 */

struct rec {
    bool used;
    struct pbft_record r;
    struct pbft_meta meta;
    struct pbft_msg *msg;
};

struct node {
    struct pbft *p;
    struct fake fake;
    bool down; /* hears and says nothing */
    uint64_t n_exec;
    pbft_seq exec_seq[MAX_EXEC];
    uint32_t exec_reqs[MAX_EXEC];
    uint64_t exec_req_no[MAX_EXEC][8];
    uint8_t state[PBFT_DIGEST_SIZE];
    uint8_t state_at[MAX_EXEC][PBFT_DIGEST_SIZE]; /* by seq */
    pbft_seq last_seq;
    pbft_seq certified[MAX_EXEC];
    uint32_t n_certified;
    uint32_t n_replies;
    uint32_t n_fetch;
    uint32_t n_complaints; /* trace lines "complain n=K requests" */
    uint32_t n_traces;     /* trace lines of every kind */
    struct rec recs[MAX_RECS];
    struct pbft_msg *last_sent[PBFT_MSG_TYPE_MAX + 1]; /* copies */
};

struct qmsg {
    uint32_t from, to;
    struct pbft_msg *msg;
};

typedef bool (*drop_fn)(uint32_t from, uint32_t to, const struct pbft_msg *m);

struct cluster {
    uint32_t n;
    struct pbft_config cfg;
    uint64_t now;
    struct node nodes[MAX_N];
    struct qmsg *queue;
    uint32_t q_head, q_tail;
    drop_fn drop;
    bool transfer; /* answer ready.fetch from a peer's state */
};

static struct cluster *C;

static void node_handle(struct cluster *c, uint32_t i, struct pbft_ready *rd);

static void store_record(struct node *nd, const struct pbft_record *r)
{
    struct rec *slot = NULL;

    if (r->type == PBFT_REC_GC) {
        for (uint32_t i = 0; i < MAX_RECS; i++)
            if (nd->recs[i].used && nd->recs[i].r.type == PBFT_REC_MSG &&
                nd->recs[i].r.seq <= r->seq) {
                msg_free(nd->recs[i].msg);
                nd->recs[i].used = false;
            }
        return;
    }
    for (uint32_t i = 0; i < MAX_RECS && slot == NULL; i++)
        if (nd->recs[i].used && nd->recs[i].r.type == r->type &&
            (r->type == PBFT_REC_META ||
             (nd->recs[i].r.seq == r->seq && nd->recs[i].r.view == r->view &&
              nd->recs[i].r.replica == r->replica &&
              nd->recs[i].msg->type == r->msg->type)))
            slot = &nd->recs[i];
    for (uint32_t i = 0; i < MAX_RECS && slot == NULL; i++)
        if (!nd->recs[i].used)
            slot = &nd->recs[i];
    assert_non_null(slot);
    if (slot->used) {
        msg_free(slot->msg);
        free(slot->meta.stable.votes);
    }
    memset(slot, 0, sizeof(*slot));
    slot->used = true;
    slot->r = *r;
    if (r->type == PBFT_REC_META) {
        slot->meta = *r->meta;
        slot->meta.stable.votes =
            dup_mem(r->meta->stable.votes,
                    r->meta->stable.n_votes * sizeof(struct pbft_vote));
        slot->r.meta = &slot->meta;
    } else {
        slot->msg = msg_clone(r->msg);
        slot->r.msg = slot->msg;
    }
}

static void enqueue(struct cluster *c, uint32_t from, uint32_t to,
                    const struct pbft_msg *m)
{
    if (c->nodes[from].down || c->nodes[to].down)
        return;
    if (c->drop != NULL && c->drop(from, to, m))
        return;
    assert_true(c->q_tail < MAX_QUEUE);
    c->queue[c->q_tail].from = from;
    c->queue[c->q_tail].to = to;
    c->queue[c->q_tail].msg = msg_clone(m);
    c->q_tail++;
}

static void app_execute(struct node *nd, const struct pbft_execute *e)
{
    crypto_hash_sha256_state st;
    uint8_t bd[PBFT_DIGEST_SIZE];
    struct pbft_crypto cr = {.hash = fake_hash};

    assert_int_equal(e->seq, nd->last_seq + 1); /* strictly in order */
    assert_true(nd->n_exec < MAX_EXEC);
    nd->exec_seq[nd->n_exec] = e->seq;
    nd->exec_reqs[nd->n_exec] = e->n_requests;
    for (uint32_t i = 0; i < e->n_requests && i < 8; i++)
        nd->exec_req_no[nd->n_exec][i] = e->requests[i].req_no;
    nd->n_exec++;
    pbft_batch_digest(&cr, e->requests, e->n_requests, bd);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, nd->state, sizeof(nd->state));
    crypto_hash_sha256_update(&st, bd, sizeof(bd));
    crypto_hash_sha256_final(&st, nd->state);
    nd->last_seq = e->seq;
    memcpy(nd->state_at[e->seq % MAX_EXEC], nd->state, PBFT_DIGEST_SIZE);
}

static void step(struct cluster *c, uint32_t i, const struct pbft_event *ev)
{
    struct pbft_ready rd;

    (void)pbft_step(c->nodes[i].p, ev, &rd);
    node_handle(c, i, &rd);
}

/* Answers a fetch from any peer that executed cert->seq. */
static void transfer(struct cluster *c, uint32_t i, pbft_seq seq)
{
    struct pbft_event ev = {.type = PBFT_EV_STATE_TRANSFERRED,
                            .now_ms = c->now};
    struct node *nd = &c->nodes[i];

    for (uint32_t j = 0; j < c->n; j++) {
        if (j == i || c->nodes[j].last_seq < seq)
            continue;
        memcpy(nd->state, c->nodes[j].state_at[seq % MAX_EXEC],
               PBFT_DIGEST_SIZE);
        memcpy(nd->state_at[seq % MAX_EXEC], nd->state, PBFT_DIGEST_SIZE);
        nd->last_seq = seq;
        ev.u.transferred.seq = seq;
        memcpy(ev.u.transferred.digest, nd->state, PBFT_DIGEST_SIZE);
        step(c, i, &ev);
        return;
    }
}

static void node_handle(struct cluster *c, uint32_t i, struct pbft_ready *rd)
{
    struct node *nd = &c->nodes[i];
    pbft_seq done[64];
    uint32_t n_done = 0;
    pbft_seq fetch_seq = 0;

    nd->n_traces += rd->n_trace;
    for (uint32_t k = 0; k < rd->n_trace; k++) {
        if (strstr(rd->trace[k].line, "> complain n=") != NULL)
            nd->n_complaints++;
        if (getenv("PBFT_TRACE") != NULL)
            fprintf(stderr, "%s\n", rd->trace[k].line);
    }
    for (uint32_t k = 0; k < rd->n_persist; k++)
        store_record(nd, &rd->persist[k]);
    for (uint32_t k = 0; k < rd->n_msgs; k++) {
        const struct pbft_send *s = &rd->msgs[k];
        enum pbft_msg_type t = s->msg->type;

        msg_free(nd->last_sent[t]);
        nd->last_sent[t] = msg_clone(s->msg);
        for (uint32_t to = 0; to < c->n; to++)
            if (to != i && (s->to == PBFT_BROADCAST || s->to == to))
                enqueue(c, i, to, s->msg);
    }
    for (uint32_t k = 0; k < rd->n_execute; k++) {
        app_execute(nd, &rd->execute[k]);
        assert_true(n_done < 64);
        done[n_done++] = rd->execute[k].seq;
    }
    for (uint32_t k = 0; k < rd->n_certified; k++) {
        assert_true(nd->n_certified < MAX_EXEC);
        nd->certified[nd->n_certified++] = rd->certified[k].seq;
    }
    nd->n_replies += rd->n_replies;
    if (rd->fetch != NULL) {
        nd->n_fetch++;
        fetch_seq = rd->fetch->cert->seq;
    }
    pbft_advance(nd->p);
    for (uint32_t k = 0; k < n_done; k++) {
        struct pbft_event ev = {.type = PBFT_EV_EXECUTED, .now_ms = c->now};

        ev.u.executed.seq = done[k];
        memcpy(ev.u.executed.digest, nd->state_at[done[k] % MAX_EXEC],
               PBFT_DIGEST_SIZE);
        step(c, i, &ev);
    }
    if (fetch_seq > 0 && c->transfer)
        transfer(c, i, fetch_seq);
}

static void node_start(struct cluster *c, uint32_t i)
{
    struct node *nd = &c->nodes[i];
    struct pbft_config cfg = c->cfg;
    struct pbft_ready rd;
    const char *why = NULL;

    cfg.self = i;
    nd->fake.self = i;
    cfg.crypto.ctx = &nd->fake;
    nd->p = pbft_new(&cfg, &why);
    assert_non_null(nd->p);
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (nd->recs[k].used)
            assert_int_equal(pbft_restore(nd->p, &nd->recs[k].r), PBFT_OK);
    assert_int_equal(pbft_start(nd->p, nd->last_seq,
                                nd->last_seq == c->cfg.base_seq
                                    ? c->cfg.genesis_digest
                                    : nd->state_at[nd->last_seq % MAX_EXEC],
                                c->now, &rd),
                     PBFT_OK);
    node_handle(c, i, &rd);
}

static void cluster_config(struct pbft_config *cfg, uint32_t n)
{
    memset(cfg, 0, sizeof(*cfg));
    pbft_config_defaults(cfg);
    cfg->n = n;
    memset(cfg->chain_id, 0xc1, sizeof(cfg->chain_id));
    memset(cfg->genesis_digest, 0, sizeof(cfg->genesis_digest));
    cfg->batch_max = 4;
    cfg->batch_bytes_max = 4096;
    cfg->request_bytes_max = 256;
    cfg->batch_delay_ms = 10;
    cfg->checkpoint_interval = 1;
    cfg->watermark_window = 8;
    cfg->pending_max = 64;
    cfg->clients_max = 16;
    cfg->view_timeout_ms = 500;
    cfg->view_timeout_max_ms = 4000;
    cfg->clock_skew_max_ms = 1000;
    cfg->fetch_timeout_ms = 300;
    cfg->crypto.hash = fake_hash;
    cfg->crypto.sign = fake_sign;
    cfg->crypto.verify = fake_verify;
    cfg->crypto.verify_request = fake_verify_request;
}

static struct cluster *cluster_new(uint32_t n, const struct pbft_config *cfg)
{
    struct cluster *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    c->n = n;
    c->now = 100000;
    c->transfer = true;
    if (cfg != NULL)
        c->cfg = *cfg;
    else
        cluster_config(&c->cfg, n);
    c->queue = calloc(MAX_QUEUE, sizeof(*c->queue));
    assert_non_null(c->queue);
    for (uint32_t i = 0; i < n; i++) {
        /* a later epoch: the application already stands at its base */
        c->nodes[i].last_seq = c->cfg.base_seq;
        memcpy(c->nodes[i].state, c->cfg.genesis_digest, PBFT_DIGEST_SIZE);
        node_start(c, i);
    }
    C = c;
    return c;
}

static void node_stop(struct cluster *c, uint32_t i)
{
    pbft_free(c->nodes[i].p);
    c->nodes[i].p = NULL;
}

static void cluster_free(struct cluster *c)
{
    for (uint32_t i = c->q_head; i < c->q_tail; i++)
        msg_free(c->queue[i].msg);
    for (uint32_t i = 0; i < c->n; i++) {
        struct node *nd = &c->nodes[i];

        node_stop(c, i);
        for (uint32_t k = 0; k < MAX_RECS; k++)
            if (nd->recs[k].used) {
                msg_free(nd->recs[k].msg);
                free(nd->recs[k].meta.stable.votes);
            }
        for (uint32_t t = 0; t <= PBFT_MSG_TYPE_MAX; t++)
            msg_free(nd->last_sent[t]);
    }
    free(c->queue);
    free(c);
    C = NULL;
}

/* Delivers queued messages; when idle, advances the clock to the next
 * deadline (no further than `horizon_ms` from the start). Bounded. */
static void cluster_run_mode(struct cluster *c, uint64_t horizon_ms,
                             bool timers)
{
    uint64_t end = c->now + horizon_ms;

    for (uint32_t guard = 0; guard < 200000; guard++) {
        if (c->q_head < c->q_tail) {
            struct qmsg q = c->queue[c->q_head++];
            struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = c->now};

            if (!c->nodes[q.to].down && c->nodes[q.to].p != NULL) {
                ev.u.receive.from = q.from;
                ev.u.receive.msg = q.msg;
                step(c, q.to, &ev);
            }
            msg_free(q.msg);
            continue;
        }
        c->q_head = c->q_tail = 0;
        if (!timers)
            return;
        uint64_t next = UINT64_MAX;
        uint32_t who = 0;

        for (uint32_t i = 0; i < c->n; i++) {
            uint64_t d;

            if (c->nodes[i].down || c->nodes[i].p == NULL)
                continue;
            d = pbft_deadline_ms(c->nodes[i].p);
            if (d < next) {
                next = d;
                who = i;
            }
        }
        if (next == UINT64_MAX || next > end)
            return;
        if (next > c->now)
            c->now = next;
        struct pbft_event ev = {.type = PBFT_EV_TIMEOUT, .now_ms = c->now};
        step(c, who, &ev);
    }
    fail_msg("cluster did not settle");
}

static void cluster_run(struct cluster *c, uint64_t horizon_ms)
{
    cluster_run_mode(c, horizon_ms, true);
}

/* Delivers queued messages only (no timers). */
static void cluster_deliver(struct cluster *c)
{
    cluster_run_mode(c, 0, false);
}

static struct pbft_request make_req(uint8_t client, uint64_t req_no,
                                    uint8_t *buf, bool valid)
{
    struct pbft_request r;

    memset(&r, 0, sizeof(r));
    memset(r.client, client, sizeof(r.client));
    r.req_no = req_no;
    r.len = REQ_LEN;
    memset(buf, (int)(client + req_no), REQ_LEN);
    buf[0] = valid ? 'R' : 'X';
    r.data = buf;
    return r;
}

static void submit(struct cluster *c, uint32_t to, uint8_t client,
                   uint64_t req_no)
{
    uint8_t buf[REQ_LEN];
    struct pbft_request r = make_req(client, req_no, buf, true);
    struct pbft_event ev = {.type = PBFT_EV_REQUEST, .now_ms = c->now};

    ev.u.request = &r;
    step(c, to, &ev);
}

static struct pbft_status status(struct cluster *c, uint32_t i)
{
    struct pbft_status st;

    pbft_get_status(c->nodes[i].p, &st);
    return st;
}

/* Every live node executed the same batches (by state digest). */
static void assert_agreement(struct cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        for (uint32_t j = 0; j < c->n; j++) {
            pbft_seq s = c->nodes[i].last_seq < c->nodes[j].last_seq
                             ? c->nodes[i].last_seq
                             : c->nodes[j].last_seq;
            if (s == 0 || c->nodes[i].p == NULL || c->nodes[j].p == NULL)
                continue;
            assert_memory_equal(c->nodes[i].state_at[s % MAX_EXEC],
                                c->nodes[j].state_at[s % MAX_EXEC],
                                PBFT_DIGEST_SIZE);
        }
}

/* How many times (client, req_no) was executed at node i. */
static uint32_t executed_count(const struct node *nd, uint64_t req_no)
{
    uint32_t k = 0;

    for (uint64_t e = 0; e < nd->n_exec; e++)
        for (uint32_t r = 0; r < nd->exec_reqs[e] && r < 8; r++)
            k += nd->exec_req_no[e][r] == req_no ? 1u : 0u;
    return k;
}

/* ---- tests ------------------------------------------------------------------
 */

static void test_quorum_arithmetic(void **state)
{
    (void)state;
    for (uint32_t n = 4; n <= 10; n++) {
        uint32_t f = pbft_faults(n), q = pbft_quorum(n);

        assert_int_equal(f, (n - 1) / 3);
        assert_int_equal(q, (n + f + 2) / 2);
        assert_true(2 * q - n >= f + 1); /* two quorums share an honest one */
        assert_true(q <= n - f);         /* the honest ones form a quorum */
    }
    assert_int_equal(pbft_quorum(4), 3);
    assert_int_equal(pbft_quorum(5), 4);
    assert_int_equal(pbft_quorum(7), 5);
    assert_int_equal(pbft_quorum(8), 6);
}

static void test_new_rejects_bad_config(void **state)
{
    struct pbft_config cfg;
    const char *why = NULL;

    (void)state;
    cluster_config(&cfg, 4);
    cfg.crypto.verify = NULL;
    assert_null(pbft_new(&cfg, &why));
    assert_non_null(why);
    cluster_config(&cfg, 3);
    assert_null(pbft_new(&cfg, &why));
    cluster_config(&cfg, 4);
    cfg.watermark_window = 1;
    assert_null(pbft_new(&cfg, &why));
}

static void normal_case_cfg(uint32_t n, bool trace_off)
{
    struct pbft_config cfg;
    cluster_config(&cfg, n);
    cfg.trace_off = trace_off;
    struct cluster *c = cluster_new(n, &cfg);

    for (uint64_t r = 1; r <= 10; r++) {
        submit(c, 0, 1, r);
        cluster_run(c, 50);
    }
    cluster_run(c, 1000);
    for (uint32_t i = 0; i < n; i++) {
        assert_true(c->nodes[i].last_seq >= 3);
        for (uint64_t r = 1; r <= 10; r++)
            assert_int_equal(executed_count(&c->nodes[i], r), 1);
        assert_int_equal(status(c, i).view, 0);
        /* The driver that turned traces off gets none; by default every
         * replica traces its steps. */
        if (trace_off)
            assert_int_equal(c->nodes[i].n_traces, 0);
        else
            assert_true(c->nodes[i].n_traces > 0);
    }
    assert_agreement(c);
    cluster_free(c);
}

static void normal_case(uint32_t n)
{
    normal_case_cfg(n, false);
}

static void test_normal_commit_traces_off(void **state)
{
    (void)state;
    normal_case_cfg(4, true);
}

static void test_normal_commit_n4(void **state)
{
    (void)state;
    normal_case(4);
}

static void test_normal_commit_n7(void **state)
{
    (void)state;
    normal_case(7);
}

static void test_batching_by_size(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    for (uint64_t r = 1; r <= 9; r++)
        submit(c, 0, 2, r); /* batch_max 4: two full batches at once */
    assert_int_equal(c->nodes[0].last_seq, 0);
    cluster_run(c, 0); /* no clock advance: only full batches go */
    assert_int_equal(c->nodes[1].last_seq, 2);
    assert_int_equal(c->nodes[1].exec_reqs[0], 4);
    assert_int_equal(c->nodes[1].exec_reqs[1], 4);
    cluster_run(c, 100); /* the delay cuts the ninth */
    assert_int_equal(c->nodes[1].last_seq, 3);
    assert_int_equal(c->nodes[1].exec_reqs[2], 1);
    assert_agreement(c);
    cluster_free(c);
}

static void test_batching_by_delay(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    uint64_t t0 = c->now;

    (void)state;
    submit(c, 0, 3, 1);
    cluster_run(c, 0);
    assert_int_equal(c->nodes[0].last_seq, 0);
    assert_int_equal(pbft_deadline_ms(c->nodes[0].p), t0 + 10);
    cluster_run(c, 100);
    assert_int_equal(c->nodes[0].last_seq, 1);
    assert_int_equal(c->nodes[2].last_seq, 1);
    cluster_free(c);
}

static void test_exactly_once_cached_reply(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    submit(c, 0, 4, 1);
    submit(c, 0, 4, 1); /* duplicate while queued: ignored */
    cluster_run(c, 100);
    assert_int_equal(executed_count(&c->nodes[0], 1), 1);
    submit(c, 0, 4, 1); /* retransmission after execution */
    submit(c, 2, 4, 1); /* also at a backup */
    cluster_run(c, 100);
    assert_int_equal(c->nodes[0].n_replies, 1);
    assert_int_equal(c->nodes[2].n_replies, 1);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    cluster_free(c);
}

/* A pre-prepare forged as the primary (the fake scheme lets tests sign as
 * anyone), delivered to backup 1 alone. */
static int deliver_pp(struct cluster *c, pbft_seq seq, uint64_t ts,
                      struct pbft_request *reqs, uint32_t n, bool bad_digest)
{
    struct pbft_msg m;
    uint8_t buf[PBFT_VOTE_STATEMENT_MAX];
    size_t len;
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = c->now};
    struct pbft_ready rd;
    int rv;

    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_PREPREPARE;
    m.u.pp.hdr.replica = 0;
    m.u.pp.hdr.view = 0;
    m.u.pp.hdr.seq = seq;
    m.u.pp.hdr.timestamp_ms = ts;
    pbft_batch_digest(&c->cfg.crypto, reqs, n, m.u.pp.hdr.digest);
    if (bad_digest)
        m.u.pp.hdr.digest[0] ^= 1;
    len = pbft_vote_statement(PBFT_MSG_PREPREPARE, c->cfg.chain_id, &m.u.pp.hdr,
                              buf, sizeof(buf));
    fake_sig(0, buf, len, m.u.pp.hdr.sig);
    m.u.pp.n_requests = n;
    m.u.pp.requests = reqs;
    ev.u.receive.from = 0;
    ev.u.receive.msg = &m;
    rv = pbft_step(c->nodes[1].p, &ev, &rd);
    node_handle(c, 1, &rd);
    return rv;
}

static void test_preprepare_refusals(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    uint8_t b1[REQ_LEN], b2[REQ_LEN];
    struct pbft_request good = make_req(5, 1, b1, true);
    struct pbft_request bad = make_req(5, 2, b2, false);
    uint64_t skew = c->cfg.clock_skew_max_ms;
    uint64_t dropped = status(c, 1).dropped;

    (void)state;
    c->nodes[1].last_sent[PBFT_MSG_PREPARE] = NULL;
    assert_int_not_equal(deliver_pp(c, 1, c->now, &bad, 1, false), PBFT_OK);
    assert_int_not_equal(deliver_pp(c, 1, c->now, &good, 1, true), PBFT_OK);
    assert_int_not_equal(deliver_pp(c, 1, c->now + skew + 1, &good, 1, false),
                         PBFT_OK);
    assert_int_not_equal(deliver_pp(c, 1, c->now - skew - 1, &good, 1, false),
                         PBFT_OK);
    assert_int_equal(status(c, 1).dropped, dropped + 4);
    assert_null(c->nodes[1].last_sent[PBFT_MSG_PREPARE]);
    /* accepted: sends a PREPARE */
    assert_int_equal(deliver_pp(c, 1, c->now, &good, 1, false), PBFT_OK);
    assert_non_null(c->nodes[1].last_sent[PBFT_MSG_PREPARE]);
    /* the next seq must be later than this one */
    good = make_req(5, 3, b1, true);
    assert_int_not_equal(deliver_pp(c, 2, c->now, &good, 1, false), PBFT_OK);
    assert_int_equal(deliver_pp(c, 2, c->now + 1, &good, 1, false), PBFT_OK);
    /* equivocation: another batch for seq 2 */
    good = make_req(5, 4, b1, true);
    assert_int_not_equal(deliver_pp(c, 2, c->now + 2, &good, 1, false),
                         PBFT_OK);
    cluster_free(c);
}

static void test_checkpoint_stable_gc_certified(void **state)
{
    struct pbft_config cfg;
    struct cluster *c;

    (void)state;
    cluster_config(&cfg, 4);
    cfg.checkpoint_interval = 2;
    cfg.watermark_window = 4;
    c = cluster_new(4, &cfg);
    for (uint64_t r = 1; r <= 10; r++) {
        submit(c, 0, 6, r);
        cluster_run(c, 20); /* one request per batch */
    }
    cluster_run(c, 200);
    for (uint32_t i = 0; i < 4; i++) {
        struct pbft_status st = status(c, i);

        assert_int_equal(c->nodes[i].last_seq, 10);
        assert_int_equal(st.stable_seq, 10);
        assert_int_equal(st.high_watermark, 14);
        assert_int_equal(c->nodes[i].n_certified, 5);
        for (uint32_t k = 0; k < 5; k++)
            assert_int_equal(c->nodes[i].certified[k], 2 * (k + 1));
    }
    /* the log below the stable checkpoint was GC'd on disk as well */
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (c->nodes[1].recs[k].used &&
            c->nodes[1].recs[k].r.type == PBFT_REC_MSG)
            assert_true(c->nodes[1].recs[k].r.seq > 10);
    cluster_free(c);
}

static void test_watermarks_drop_before_verify(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct pbft_msg m;
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = c->now};
    struct pbft_ready rd;
    uint64_t calls = c->nodes[1].fake.verify_calls;
    struct pbft_status st = status(c, 1);

    (void)state;
    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_PREPARE;
    m.u.vote.replica = 2;
    m.u.vote.seq = st.high_watermark + 1;
    ev.u.receive.from = 2;
    ev.u.receive.msg = &m;
    assert_false(pbft_wants(c->nodes[1].p, 2, PBFT_MSG_PREPARE, 0,
                            st.high_watermark + 1));
    assert_true(pbft_wants(c->nodes[1].p, 2, PBFT_MSG_PREPARE, 0, 1));
    assert_int_equal(pbft_step(c->nodes[1].p, &ev, &rd), PBFT_EWINDOW);
    node_handle(c, 1, &rd);
    m.u.vote.seq = 1;
    m.u.vote.view = 3; /* a view above ours: one verify, as news of r2 */
    assert_int_equal(pbft_step(c->nodes[1].p, &ev, &rd), PBFT_ESTALE);
    node_handle(c, 1, &rd);
    assert_int_equal(c->nodes[1].fake.verify_calls, calls + 1);
    assert_int_equal(status(c, 1).dropped, st.dropped + 2);
    assert_int_equal(status(c, 1).view, 0); /* unsigned: no news */
    /* in the window, a bad signature costs one verify and is counted */
    m.u.vote.view = 0;
    assert_int_equal(pbft_step(c->nodes[1].p, &ev, &rd), PBFT_EBADSIG);
    node_handle(c, 1, &rd);
    assert_int_equal(c->nodes[1].fake.verify_calls, calls + 2);
    assert_int_equal(status(c, 1).bad_signatures, st.bad_signatures + 2);
    cluster_free(c);
}

static uint64_t vote_verifies(struct cluster *c)
{
    uint64_t total = 0;

    for (uint32_t i = 0; i < c->n; i++)
        total += c->nodes[i].fake.verify_calls;
    return total;
}

/* A PREPARE or COMMIT that comes after its phase's quorum changes nothing
 * and is dropped before any signature check. At n = 4 one batch costs the
 * replicas 16 PREPARE and COMMIT verifies, not 24: 3 PRE-PREPAREs, 5
 * PREPAREs (not 9) and 8 COMMITs (not 12). (K = 2 here, so seq 1 has no
 * checkpoint and stays in the window for the rest.) A second late vote
 * from the same replica is a retransmission and is answered. */
static void test_late_votes_not_verified(void **state)
{
    struct pbft_config cfg;

    (void)state;
    cluster_config(&cfg, 4);
    cfg.checkpoint_interval = 2;
    cfg.watermark_window = 4;
    struct cluster *c = cluster_new(4, &cfg);
    cluster_run(c, 0); /* the start's FETCH exchange */
    uint64_t before = vote_verifies(c);
    submit(c, 0, 3, 1);
    cluster_run(c, 100);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    assert_int_equal(vote_verifies(c) - before, 16);
    /* Node 1 committed seq 1 on its own COMMIT and two others; the third
     * came late and was dropped unverified. Now each replica's COMMIT
     * comes again, with a bad signature even, twice: no verify at all.
     * The late one's copies are its repeats, and the first is answered
     * with node 1's COMMIT (the second falls in the same retransmission
     * period); the two held ones are dropped as duplicates. */
    struct pbft_msg m;
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = c->now + 5000};
    struct pbft_ready rd;
    uint64_t calls = c->nodes[1].fake.verify_calls;
    struct pbft_status st = status(c, 1);
    uint32_t answered = 0;

    for (uint32_t r = 0; r < 4; r++) {
        if (r == 1)
            continue;
        memset(&m, 0, sizeof(m));
        m.type = PBFT_MSG_COMMIT;
        m.u.vote.replica = r;
        m.u.vote.seq = 1;
        m.u.vote.sig[0] = 0xee;
        ev.u.receive.from = r;
        ev.u.receive.msg = &m;
        for (int copy = 0; copy < 2; copy++) {
            assert_int_equal(pbft_step(c->nodes[1].p, &ev, &rd), PBFT_ESTALE);
            for (uint32_t k = 0; k < rd.n_msgs; k++) {
                if (rd.msgs[k].to != r ||
                    rd.msgs[k].msg->type != PBFT_MSG_COMMIT)
                    continue;
                answered++;
            }
            pbft_advance(c->nodes[1].p);
        }
    }
    assert_int_equal(answered, 1);
    assert_int_equal(c->nodes[1].fake.verify_calls, calls);
    assert_int_equal(status(c, 1).bad_signatures, st.bad_signatures);
    cluster_free(c);
}

static void silent_primary(uint32_t n)
{
    struct cluster *c = cluster_new(n, NULL);

    c->nodes[0].down = true;
    for (uint32_t i = 1; i < n; i++) /* the client tries everyone */
        submit(c, i, 7, 1);
    cluster_run(c, 5000);
    for (uint32_t i = 1; i < n; i++) {
        struct pbft_status st = status(c, i);

        assert_int_equal(st.view, 1);
        assert_false(st.in_view_change);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    }
    assert_agreement(c);
    cluster_free(c);
}

static void test_view_change_silent_primary_n4(void **state)
{
    (void)state;
    silent_primary(4);
}

static void test_view_change_silent_primary_n7(void **state)
{
    (void)state;
    silent_primary(7);
}

/* Drops every COMMIT of view 0: requests prepare everywhere but commit
 * nowhere (retransmissions included) until a view change. */
static bool drop_commits(uint32_t from, uint32_t to, const struct pbft_msg *m)
{
    (void)from;
    (void)to;
    return m->type == PBFT_MSG_COMMIT && m->u.vote.view == 0;
}

static void test_view_change_carries_prepared(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    c->drop = drop_commits;
    submit(c, 0, 8, 1);
    cluster_run(c, 20); /* prepared at all, committed at none */
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(c->nodes[i].last_seq, 0);
    c->nodes[0].down = true; /* the primary goes silent */
    for (uint32_t i = 1; i < 4; i++)
        submit(c, i, 8, 1); /* the client retransmits to everyone */
    cluster_run(c, 5000);
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(status(c, i).view, 1);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
        assert_int_equal(c->nodes[i].exec_seq[0], 1); /* same seq as before */
    }
    assert_agreement(c);
    cluster_free(c);
}

/* Holds every NEW-VIEW back so the test can tamper with it. */
static struct pbft_msg *held_nv;

static bool hold_new_view(uint32_t from, uint32_t to, const struct pbft_msg *m)
{
    if (drop_commits(from, to, m))
        return true;
    if (m->type != PBFT_MSG_NEW_VIEW)
        return false;
    if (to == 2 && held_nv == NULL)
        held_nv = msg_clone(m);
    return true;
}

static void test_new_view_wrong_o_rejected(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE};
    struct pbft_ready rd;
    uint8_t buf[128];
    size_t len;
    struct pbft_new_view *nv;

    (void)state;
    held_nv = NULL;
    c->drop = drop_commits;
    submit(c, 0, 9, 1);
    cluster_run(c, 20);
    c->drop = hold_new_view;
    c->nodes[0].down = true;
    for (uint32_t i = 1; i < 4; i++)
        submit(c, i, 9, 1);
    cluster_run(c, 1200); /* long enough for the complaint, one view change */
    assert_non_null(held_nv);
    nv = &held_nv->u.nv;
    assert_int_equal(nv->n_preprepares, 1);
    assert_true(status(c, 2).in_view_change);
    /* Forge an O with a null request instead of the prepared batch,
     * signed correctly by the new primary: only recomputing O catches it. */
    {
        struct pbft_preprepare *pp = &nv->preprepares[0];
        uint8_t vb[PBFT_VOTE_STATEMENT_MAX];
        size_t vl;

        free_reqs(pp->requests, pp->n_requests);
        pp->requests = NULL;
        pp->n_requests = 0;
        pbft_batch_digest(&c->cfg.crypto, NULL, 0, pp->hdr.digest);
        vl = pbft_vote_statement(PBFT_MSG_PREPREPARE, c->cfg.chain_id, &pp->hdr,
                                 vb, sizeof(vb));
        fake_sig(1, vb, vl, pp->hdr.sig);
    }
    len = digest_nv_statement(c->nodes[2].p, nv, buf, sizeof(buf));
    assert_true(len > 0);
    fake_sig(1, buf, len, nv->sig);
    ev.now_ms = c->now;
    ev.u.receive.from = 1;
    ev.u.receive.msg = held_nv;
    assert_int_equal(pbft_step(c->nodes[2].p, &ev, &rd), PBFT_EBADMSG);
    node_handle(c, 2, &rd);
    assert_true(status(c, 2).in_view_change);
    msg_free(held_nv);
    held_nv = NULL;
    cluster_free(c);
}

static void test_f_plus_one_joins_higher_view(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct pbft_event ev = {.type = PBFT_EV_TIMEOUT};

    (void)state;
    /* Replicas 1 and 2 time out (f+1 = 2 for n = 4); 3 has no timer. */
    c->nodes[0].down = true;
    submit(c, 1, 10, 1);
    submit(c, 2, 10, 2);
    c->drop = hold_new_view; /* keep everyone in view change */
    c->now += 600;
    ev.now_ms = c->now;
    step(c, 1, &ev); /* first expiry: complaints only */
    step(c, 2, &ev);
    cluster_deliver(c);
    assert_int_equal(status(c, 1).view, 0);
    assert_false(status(c, 1).in_view_change);
    c->now += 600;
    ev.now_ms = c->now;
    step(c, 1, &ev);
    cluster_deliver(c);
    assert_int_equal(status(c, 3).view, 0); /* one VIEW-CHANGE: not yet */
    step(c, 2, &ev);
    cluster_deliver(c);
    assert_int_equal(status(c, 3).view, 1); /* f+1: joined */
    assert_true(status(c, 3).in_view_change);
    msg_free(held_nv);
    held_nv = NULL;
    cluster_free(c);
}

static void test_restart_does_not_equivocate(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    uint8_t b1[REQ_LEN];
    struct pbft_request other = make_req(11, 9, b1, true);
    struct pbft_msg *vc;

    (void)state;
    c->drop = drop_commits;
    submit(c, 0, 11, 1);
    cluster_run(c, 20); /* backup 1 accepted, prepared, sent COMMIT */
    node_stop(c, 1);
    node_start(c, 1); /* from its records */
    /* the primary (forged here) now proposes another batch at seq 1 */
    assert_int_not_equal(deliver_pp(c, 1, c->now + 5, &other, 1, false),
                         PBFT_OK);
    /* and the restarted replica reports its prepared certificate */
    msg_free(c->nodes[1].last_sent[PBFT_MSG_VIEW_CHANGE]);
    c->nodes[1].last_sent[PBFT_MSG_VIEW_CHANGE] = NULL;
    c->nodes[0].down = true;
    for (uint32_t i = 1; i < 4; i++)
        submit(c, i, 11, 1);
    c->drop = hold_new_view;
    cluster_run(c, 1200); /* the complaint, then the view change */
    vc = c->nodes[1].last_sent[PBFT_MSG_VIEW_CHANGE];
    assert_non_null(vc);
    assert_int_equal(vc->u.vc.n_prepared, 1);
    assert_int_equal(vc->u.vc.prepared[0].pp.hdr.seq, 1);
    assert_int_equal(vc->u.vc.prepared[0].pp.n_requests, 1);
    assert_int_equal(vc->u.vc.prepared[0].pp.requests[0].req_no, 1);
    msg_free(held_nv);
    held_nv = NULL;
    cluster_free(c);
}

static void test_state_transfer_far_behind(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    c->nodes[3].down = true;
    for (uint64_t r = 1; r <= 20; r++) {
        submit(c, 0, 12, r);
        cluster_run(c, 20);
    }
    assert_int_equal(c->nodes[0].last_seq, 20);
    assert_int_equal(c->nodes[3].last_seq, 0);
    c->nodes[3].down = false;
    for (uint64_t r = 21; r <= 24; r++) {
        submit(c, 0, 12, r);
        cluster_run(c, 20);
    }
    cluster_run(c, 2000);
    assert_true(c->nodes[3].n_fetch >= 1);
    assert_int_equal(c->nodes[3].last_seq, c->nodes[0].last_seq);
    assert_memory_equal(c->nodes[3].state, c->nodes[0].state, PBFT_DIGEST_SIZE);
    assert_false(status(c, 3).fetching_state);
    /* and it keeps up from there on */
    submit(c, 0, 12, 25);
    cluster_run(c, 100);
    assert_int_equal(executed_count(&c->nodes[3], 25), 1);
    assert_agreement(c);
    cluster_free(c);
}

/* Loses the first PRE-PREPARE on its way to replica 2. */
static bool lost_once;

static bool lose_first_pp(uint32_t from, uint32_t to, const struct pbft_msg *m)
{
    (void)from;
    if (m->type != PBFT_MSG_PREPREPARE || to != 2 || lost_once)
        return false;
    lost_once = true;
    return true;
}

static void test_retransmit_heals_lost_preprepare(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    lost_once = false;
    c->drop = lose_first_pp;
    c->nodes[3].down = true; /* so replica 2 is needed for every quorum */
    submit(c, 0, 13, 1);
    cluster_run(c, 20);
    assert_true(lost_once);
    assert_int_equal(c->nodes[2].last_seq, 0); /* it never saw the batch */
    assert_int_equal(c->nodes[0].last_seq, 0);
    cluster_run(c, 400); /* < view timeout: retransmission, no view change */
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(c->nodes[i].last_seq, 1);
        assert_int_equal(status(c, i).view, 0);
    }
    assert_agreement(c);
    cluster_free(c);
}

static void test_restart_with_wiped_log_catches_up(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct node *nd = &c->nodes[3];

    (void)state;
    for (uint64_t r = 1; r <= 6; r++) {
        submit(c, 0, 14, r);
        cluster_run(c, 20);
    }
    assert_int_equal(nd->last_seq, 6);
    c->now += 1000;  /* a restart takes a while */
    node_stop(c, 3); /* disk lost: no records, no application state */
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (nd->recs[k].used) {
            msg_free(nd->recs[k].msg);
            free(nd->recs[k].meta.stable.votes);
            nd->recs[k].used = false;
        }
    memset(nd->state, 0, sizeof(nd->state));
    nd->last_seq = 0;
    node_start(c, 3);
    cluster_run(c, 1000); /* its FETCH brings the others' checkpoints */
    assert_true(nd->n_fetch >= 1);
    assert_int_equal(nd->last_seq, 6);
    submit(c, 0, 14, 7);
    cluster_run(c, 100);
    assert_int_equal(nd->last_seq, 7);
    assert_agreement(c);
    cluster_free(c);
}

static void test_malformed_view_change_dropped(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct pbft_msg m;
    struct pbft_prepared_cert certs[1];
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE};
    struct pbft_ready rd;
    uint64_t calls = c->nodes[1].fake.verify_calls;
    uint64_t bad = status(c, 1).bad_signatures;

    (void)state;
    memset(&m, 0, sizeof(m));
    memset(certs, 0, sizeof(certs));
    m.type = PBFT_MSG_VIEW_CHANGE;
    m.u.vc.replica = 2;
    m.u.vc.new_view = 1;
    m.u.vc.n_prepared = c->cfg.watermark_window + 1; /* more than L */
    m.u.vc.prepared = certs;
    ev.now_ms = c->now;
    ev.u.receive.from = 2;
    ev.u.receive.msg = &m;
    assert_int_not_equal(pbft_step(c->nodes[1].p, &ev, &rd), PBFT_OK);
    node_handle(c, 1, &rd);
    assert_int_equal(c->nodes[1].fake.verify_calls, calls); /* no crypto */
    m.u.vc.n_prepared = 0; /* well formed, but not signed */
    assert_int_not_equal(pbft_step(c->nodes[1].p, &ev, &rd), PBFT_OK);
    node_handle(c, 1, &rd);
    assert_int_equal(status(c, 1).bad_signatures, bad + 1);
    assert_int_equal(status(c, 1).view, 0);
    cluster_free(c);
}

/* Loses every CHECKPOINT for seq 2 sent to replica 1, until lifted. */
static bool ckpt2_lost;

static bool lose_checkpoint_2(uint32_t from, uint32_t to,
                              const struct pbft_msg *m)
{
    (void)from;
    return ckpt2_lost && to == 1 && m->type == PBFT_MSG_CHECKPOINT &&
           m->u.vote.seq == 2;
}

static void test_certified_in_order_and_refetched(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct node *nd = &c->nodes[1];

    (void)state;
    ckpt2_lost = true;
    c->drop = lose_checkpoint_2;
    for (uint64_t r = 1; r <= 5; r++) {
        submit(c, 0, 15, r);
        cluster_run(c, 20);
    }
    /* seq 2 lacks its votes here: 3..5 are held back, in order */
    assert_int_equal(nd->last_seq, 5);
    assert_int_equal(nd->n_certified, 1);
    assert_int_equal(nd->certified[0], 1);
    assert_int_equal(status(c, 1).stable_seq, 5);
    ckpt2_lost = false;
    cluster_run(c, 2000); /* the certificate gap makes it FETCH the votes */
    assert_int_equal(nd->n_certified, 5);
    for (uint32_t k = 0; k < 5; k++)
        assert_int_equal(nd->certified[k], k + 1);
    cluster_free(c);
}

/* Restarted at genesis (stable certificate without votes) with a prepared
 * certificate: the view change copies empty vote arrays (UBSan aborts on
 * memcpy from NULL even with length 0). */
static void test_view_change_after_restart_at_genesis(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    c->drop = drop_commits;
    submit(c, 0, 20, 1);
    cluster_run(c, 20); /* prepared everywhere, h = 0 */
    for (uint32_t i = 1; i < 4; i++) {
        node_stop(c, i);
        node_start(c, i);
    }
    c->nodes[0].down = true;
    for (uint32_t i = 1; i < 4; i++)
        submit(c, i, 20, 1);
    cluster_run(c, 5000);
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(status(c, i).view, 1);
        assert_int_equal(status(c, i).stable_seq, 1);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    }
    assert_agreement(c);
    cluster_free(c);
}

/* Replica `cut_off` hears and says nothing; the primary of view 0 sends no
 * PRE-PREPARE, so the others change view without it. */
static uint32_t cut_off = UINT32_MAX;
static struct pbft_msg *cut_nv; /* the NEW-VIEW cut_off did not get */

static bool drop_cut_off(uint32_t from, uint32_t to, const struct pbft_msg *m)
{
    if (m->type == PBFT_MSG_PREPREPARE && m->u.pp.hdr.view == 0)
        return true;
    if (to == cut_off && m->type == PBFT_MSG_NEW_VIEW && cut_nv == NULL)
        cut_nv = msg_clone(m);
    return from == cut_off || to == cut_off;
}

/* Replicas 0-2 move to view 1 while 3 is cut off (3 itself timing out or
 * not); reconnected, 3 hears f+1 replicas in view 1, asks with a
 * VIEW-CHANGE, gets the NEW-VIEW resent and executes new requests. */
static struct cluster *cut_off_view_change(bool three_times_out)
{
    struct cluster *c = cluster_new(4, NULL);

    cut_off = 3;
    c->drop = drop_cut_off;
    for (uint32_t i = 0; i < (three_times_out ? 4u : 3u); i++)
        submit(c, i, 21, 1);
    cluster_run(c, 3000);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(status(c, i).view, 1);
        assert_false(status(c, i).in_view_change);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    }
    assert_int_equal(status(c, 3).view, three_times_out ? 1 : 0);
    assert_int_equal(c->nodes[3].last_seq, 0);
    for (uint64_t r = 2; r <= 4; r++) { /* the others move on (and GC) */
        submit(c, 1, 21, r);
        cluster_run(c, 50);
    }
    assert_true(status(c, 1).stable_seq > 1);
    return c;
}

static void view_sync_rejoins(bool three_times_out)
{
    struct cluster *c = cut_off_view_change(three_times_out);

    cut_off = UINT32_MAX; /* reconnected */
    submit(c, 1, 21, 5);
    cluster_run(c, 5000);
    assert_int_equal(status(c, 3).view, 1);
    assert_false(status(c, 3).in_view_change);
    assert_int_equal(c->nodes[3].last_seq, c->nodes[1].last_seq);
    submit(c, 1, 21, 6);
    cluster_run(c, 100);
    assert_int_equal(executed_count(&c->nodes[3], 6), 1);
    assert_int_equal(c->nodes[3].last_seq, c->nodes[1].last_seq);
    assert_agreement(c);
    msg_free(cut_nv);
    cut_nv = NULL;
    cluster_free(c);
}

static void test_view_sync_cut_off_replica_rejoins(void **state)
{
    (void)state;
    view_sync_rejoins(false);
}

static void test_view_sync_cut_off_in_view_change_rejoins(void **state)
{
    (void)state;
    view_sync_rejoins(true);
}

/* A valid NEW-VIEW for a higher view proves a quorum moved: accepted
 * without a VIEW-CHANGE of our own. */
static void test_view_sync_new_view_without_own_view_change(void **state)
{
    struct cluster *c = cut_off_view_change(false);
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = c->now};

    (void)state;
    cut_off = UINT32_MAX;
    c->drop = NULL;
    assert_non_null(cut_nv);
    assert_null(c->nodes[3].last_sent[PBFT_MSG_VIEW_CHANGE]);
    ev.u.receive.from = 1;
    ev.u.receive.msg = cut_nv;
    step(c, 3, &ev);
    assert_int_equal(status(c, 3).view, 1);
    assert_false(status(c, 3).in_view_change);
    assert_null(c->nodes[3].last_sent[PBFT_MSG_VIEW_CHANGE]);
    submit(c, 1, 21, 5);
    cluster_run(c, 2000); /* its checkpoint brings the state */
    submit(c, 1, 21, 6);
    cluster_run(c, 100);
    assert_int_equal(executed_count(&c->nodes[3], 6), 1);
    assert_int_equal(c->nodes[3].last_seq, c->nodes[1].last_seq);
    assert_agreement(c);
    msg_free(cut_nv);
    cut_nv = NULL;
    cluster_free(c);
}

/* Restarted with a wiped log after the others changed view: state
 * transfer, then view sync, then normal execution. */
static void test_view_sync_wiped_restart_rejoins(void **state)
{
    struct cluster *c = cut_off_view_change(false);
    struct node *nd = &c->nodes[3];

    (void)state;
    node_stop(c, 3);
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (nd->recs[k].used) {
            msg_free(nd->recs[k].msg);
            free(nd->recs[k].meta.stable.votes);
            nd->recs[k].used = false;
        }
    memset(nd->state, 0, sizeof(nd->state));
    nd->last_seq = 0;
    cut_off = UINT32_MAX;
    c->now += 1000;
    node_start(c, 3);
    cluster_run(c, 1000);
    submit(c, 1, 21, 5);
    cluster_run(c, 5000);
    assert_int_equal(status(c, 3).view, 1);
    assert_false(status(c, 3).in_view_change);
    submit(c, 1, 21, 6);
    cluster_run(c, 100);
    assert_int_equal(executed_count(nd, 6), 1);
    assert_int_equal(nd->last_seq, c->nodes[1].last_seq);
    assert_agreement(c);
    msg_free(cut_nv);
    cut_nv = NULL;
    cluster_free(c);
}

/* Delivers to `to` a message signed by `hdr->replica` (a PRE-PREPARE when
 * reqs is not NULL, else a vote of `type`). */
static int forge(struct cluster *c, uint32_t to, enum pbft_msg_type type,
                 struct pbft_vote *hdr, struct pbft_request *reqs, uint32_t n)
{
    struct pbft_msg m;
    uint8_t buf[PBFT_VOTE_STATEMENT_MAX];
    size_t len;
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = c->now};
    struct pbft_ready rd;
    int rv;

    memset(&m, 0, sizeof(m));
    m.type = type;
    if (type == PBFT_MSG_PREPREPARE)
        pbft_batch_digest(&c->cfg.crypto, reqs, n, hdr->digest);
    len = pbft_vote_statement(type, c->cfg.chain_id, hdr, buf, sizeof(buf));
    fake_sig(hdr->replica, buf, len, hdr->sig);
    if (type == PBFT_MSG_PREPREPARE) {
        m.u.pp.hdr = *hdr;
        m.u.pp.n_requests = n;
        m.u.pp.requests = reqs;
    } else {
        m.u.vote = *hdr;
    }
    ev.u.receive.from = hdr->replica;
    ev.u.receive.msg = &m;
    rv = pbft_step(c->nodes[to].p, &ev, &rd);
    node_handle(c, to, &rd);
    return rv;
}

/* Signed votes from f+1 replicas in higher views move a replica to the
 * smallest of them; one replica alone does not, and repeating its news
 * costs no signature check. */
static void test_view_sync_f_plus_one_signed_votes(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct pbft_vote v;
    uint64_t calls;

    (void)state;
    memset(&v, 0, sizeof(v));
    v.replica = 2;
    v.view = 5;
    v.seq = 1;
    calls = c->nodes[1].fake.verify_calls;
    assert_int_equal(forge(c, 1, PBFT_MSG_PREPARE, &v, NULL, 0), PBFT_ESTALE);
    assert_int_equal(c->nodes[1].fake.verify_calls, calls + 1);
    assert_int_equal(forge(c, 1, PBFT_MSG_PREPARE, &v, NULL, 0), PBFT_ESTALE);
    assert_int_equal(c->nodes[1].fake.verify_calls, calls + 1);
    assert_int_equal(status(c, 1).view, 0);
    assert_false(pbft_wants(c->nodes[1].p, 2, PBFT_MSG_PREPARE, 5, 1));
    assert_true(pbft_wants(c->nodes[1].p, 3, PBFT_MSG_COMMIT, 7, 1));
    v.replica = 3;
    v.view = 7;
    assert_int_equal(forge(c, 1, PBFT_MSG_COMMIT, &v, NULL, 0), PBFT_ESTALE);
    assert_int_equal(status(c, 1).view, 5); /* the smallest f+1 vouch for */
    assert_true(status(c, 1).in_view_change);
    assert_non_null(c->nodes[1].last_sent[PBFT_MSG_VIEW_CHANGE]);
    cluster_free(c);
}

/* A new primary does not re-propose an executed request, and backups
 * refuse a PRE-PREPARE outside O that repeats an executed or in-flight
 * request. */
static void test_new_view_does_not_repropose_executed(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    uint8_t b1[REQ_LEN], b3[REQ_LEN];
    struct pbft_request r1 = make_req(22, 1, b1, true);
    struct pbft_request r3 = make_req(22, 3, b3, true);
    struct pbft_vote hdr;
    pbft_seq next;

    (void)state;
    submit(c, 0, 22, 1);
    cluster_run(c, 50);
    c->nodes[0].down = true;
    for (uint32_t i = 1; i < 4; i++) {
        submit(c, i, 22, 1); /* retransmitted: answered from the cache */
        submit(c, i, 22, 2);
    }
    cluster_run(c, 5000);
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(status(c, i).view, 1);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
        assert_int_equal(executed_count(&c->nodes[i], 2), 1);
    }
    next = c->nodes[2].last_seq + 1;
    memset(&hdr, 0, sizeof(hdr));
    hdr.replica = 1; /* primary of view 1 */
    hdr.view = 1;
    hdr.seq = next;
    hdr.timestamp_ms = c->now + 1;
    assert_int_not_equal(forge(c, 2, PBFT_MSG_PREPREPARE, &hdr, &r1, 1),
                         PBFT_OK);
    assert_int_equal(forge(c, 2, PBFT_MSG_PREPREPARE, &hdr, &r3, 1), PBFT_OK);
    hdr.seq = next + 1;
    hdr.timestamp_ms = c->now + 2;
    assert_int_not_equal(forge(c, 2, PBFT_MSG_PREPREPARE, &hdr, &r3, 1),
                         PBFT_OK);
    cluster_free(c);
}

/* A primary whose queue is full refuses a forwarded request with EFULL and
 * counts it (the node answers BUSY at admission). */
static void test_forwarded_request_pool_full_counted(void **state)
{
    struct pbft_config cfg;
    struct cluster *c;
    struct pbft_msg m;
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE};
    struct pbft_ready rd;
    uint8_t buf[REQ_LEN];
    uint64_t dropped;

    (void)state;
    cluster_config(&cfg, 4);
    cfg.pending_max = 2;
    c = cluster_new(4, &cfg);
    dropped = status(c, 0).dropped;
    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_REQUEST;
    ev.now_ms = c->now;
    ev.u.receive.from = 1;
    ev.u.receive.msg = &m;
    for (uint8_t k = 0; k < 3; k++) {
        m.u.request = make_req((uint8_t)(30 + k), 1, buf, true);
        assert_int_equal(pbft_step(c->nodes[0].p, &ev, &rd),
                         k < 2 ? PBFT_OK : PBFT_EFULL);
        node_handle(c, 0, &rd);
    }
    assert_int_equal(status(c, 0).pending_requests, 2);
    assert_int_equal(status(c, 0).dropped, dropped + 1);
    cluster_free(c);
}

/* The primary misses a request (down when replica 1 forwarded it) and is
 * back within one timeout: replica 1's first expiry only complains (sends
 * the request to everyone), the primary orders it, no view change. */
static void test_complaint_primary_back_no_view_change(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    c->nodes[0].down = true;
    submit(c, 1, 40, 1); /* forwarded to the primary, lost */
    cluster_run(c, 300); /* no timer due yet */
    c->now += 300;
    node_stop(c, 0); /* restarts from its records */
    c->nodes[0].down = false;
    node_start(c, 0);
    cluster_run(c, 5000);
    assert_int_equal(c->nodes[1].n_complaints, 1);
    for (uint32_t i = 0; i < 4; i++) {
        struct pbft_status st = status(c, i);

        assert_int_equal(st.view, 0);
        assert_false(st.in_view_change);
        assert_int_equal(st.view_changes, 0);
        assert_int_equal(st.pending_requests, 0);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
        assert_null(c->nodes[i].last_sent[PBFT_MSG_VIEW_CHANGE]);
    }
    assert_agreement(c);
    cluster_free(c);
}

/* The primary is gone for good and only replica 1 holds the request: its
 * complaint arms the other backups' timers at the voting stage, so all of
 * them send VIEW-CHANGE one timeout later; the request executes in view 1. */
static void test_complaint_dead_primary_view_change(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    c->nodes[0].down = true;
    submit(c, 1, 41, 1);
    cluster_run(c, 10000);
    assert_int_equal(c->nodes[1].n_complaints, 1);
    for (uint32_t i = 1; i < 4; i++) {
        struct pbft_status st = status(c, i);

        assert_int_equal(st.view, 1);
        assert_int_equal(st.view_changes, 1);
        assert_false(st.in_view_change);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    }
    assert_agreement(c);
    cluster_free(c);
}

/* The primary restarts after replica 1's complaint but before its second
 * expiry (chaos_crash primary-restart-fast): the other backups, armed at
 * the voting stage by the complaint, change view together with replica 1,
 * so none is left alone in a view change; the primary follows. */
static void test_complaint_missed_by_primary_nobody_left_behind(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    uint64_t t0 = c->now;

    (void)state;
    c->nodes[0].down = true;
    submit(c, 1, 43, 1);
    cluster_run(c,
                600); /* replica 1 complains at +500: the primary misses it */
    assert_int_equal(c->nodes[1].n_complaints, 1);
    assert_false(status(c, 1).in_view_change);
    c->now = t0 + 700;
    node_stop(c, 0);
    c->nodes[0].down = false;
    node_start(c, 0);
    cluster_run(c, 10000);
    for (uint32_t i = 0; i < 4; i++) {
        struct pbft_status st = status(c, i);

        assert_int_equal(st.view, 1);
        assert_false(st.in_view_change);
        assert_int_equal(executed_count(&c->nodes[i], 1), 1);
    }
    assert_agreement(c);
    cluster_free(c);
}

/* A stable checkpoint at UINT64_MAX - L puts the high water mark at
 * UINT64_MAX: building the VIEW-CHANGE must still end. */
/* ---- reconfiguration: base_seq, initial_view, pbft_set_stop -------------- */

static bool certified_has(const struct node *nd, pbft_seq seq)
{
    for (uint32_t k = 0; k < nd->n_certified; k++)
        if (nd->certified[k] == seq)
            return true;
    return false;
}

static struct pbft_config epoch_config(pbft_seq base, pbft_view view)
{
    struct pbft_config cfg;

    cluster_config(&cfg, 4);
    cfg.base_seq = base;
    cfg.initial_view = view;
    memset(cfg.genesis_digest, 0x5a, sizeof(cfg.genesis_digest));
    memset(cfg.chain_id, 0xe1, sizeof(cfg.chain_id)); /* the epoch's own */
    return cfg;
}

static void test_epoch_base_seq_commits_next(void **state)
{
    struct pbft_config cfg = epoch_config(100, 0);
    struct cluster *c;
    struct pbft_ready rd;
    struct pbft *p;

    (void)state;
    c = cluster_new(4, &cfg);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(status(c, i).stable_seq, 100);
        assert_int_equal(status(c, i).high_watermark, 108);
    }
    submit(c, 0, 1, 1);
    cluster_run(c, 1000);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(c->nodes[i].n_exec, 1);
        assert_int_equal(c->nodes[i].exec_seq[0], 101);
        assert_true(certified_has(&c->nodes[i], 101));
        assert_false(certified_has(&c->nodes[i], 100)); /* implicit */
        assert_int_equal(status(c, i).stable_seq, 101);
    }
    assert_agreement(c);
    /* A start below the base is refused; a base off the checkpoint grid
     * is a bad config. */
    cfg.self = 1;
    cfg.crypto.ctx = &c->nodes[1].fake;
    p = pbft_new(&cfg, NULL);
    assert_non_null(p);
    assert_int_equal(pbft_start(p, 99, cfg.genesis_digest, c->now, &rd),
                     PBFT_EINVAL);
    pbft_free(p);
    cfg.checkpoint_interval = 8;
    cfg.watermark_window = 16;
    cfg.base_seq = 100;
    assert_null(pbft_new(&cfg, NULL));
    cluster_free(c);
}

/* A replica whose application already went past the base (a restart)
 * starts there and goes on with the others. */
static void test_epoch_start_beyond_base(void **state)
{
    struct pbft_config cfg = epoch_config(100, 0);
    struct cluster *c;

    (void)state;
    c = cluster_new(4, &cfg);
    submit(c, 0, 1, 1);
    cluster_run(c, 1000);
    node_stop(c, 3);
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (c->nodes[3].recs[k].used) { /* a fresh store, state at 101 */
            msg_free(c->nodes[3].recs[k].msg);
            free(c->nodes[3].recs[k].meta.stable.votes);
            c->nodes[3].recs[k].used = false;
        }
    node_start(c, 3);
    submit(c, 0, 1, 2);
    cluster_run(c, 1000);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(c->nodes[i].last_seq, 102);
    assert_agreement(c);
    cluster_free(c);
}

static void test_epoch_initial_view_primary(void **state)
{
    struct pbft_config cfg = epoch_config(40, 6);
    struct cluster *c;

    (void)state;
    c = cluster_new(4, &cfg);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(status(c, i).view, 6);
        assert_int_equal(status(c, i).primary, 2);
        assert_false(status(c, i).in_view_change);
    }
    submit(c, 0, 1, 1); /* a backup forwards it to r2 */
    cluster_run(c, 1000);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(c->nodes[i].last_seq, 41);
        assert_int_equal(status(c, i).view, 6);
        assert_int_equal(status(c, i).view_changes, 0);
    }
    cluster_free(c);
}

static bool drop_checkpoints_on;

static bool drop_checkpoints(uint32_t from, uint32_t to,
                             const struct pbft_msg *m)
{
    (void)from;
    (void)to;
    return drop_checkpoints_on && m->type == PBFT_MSG_CHECKPOINT;
}

static void test_set_stop_ends_epoch(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct pbft_msg *last;

    (void)state;
    c->drop = drop_checkpoints;
    drop_checkpoints_on = true;
    submit(c, 0, 1, 1);
    cluster_run(c, 200);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(c->nodes[i].last_seq, 1);
        assert_int_equal(status(c, i).stable_seq, 0); /* votes lost */
    }
    /* The backups executed seq 1, the switch: their epoch ends there. */
    assert_int_equal(pbft_set_stop(c->nodes[1].p, 0), PBFT_EINVAL); /* ran */
    for (uint32_t i = 1; i < 4; i++)
        assert_int_equal(pbft_set_stop(c->nodes[i].p, 1), PBFT_OK);
    assert_int_equal(pbft_set_stop(c->nodes[1].p, 2), PBFT_EINVAL); /* up */
    /* seq 2 commits at the backups but is not handed out there; the
     * primary, not stopped, executes it and can no longer stop at 1. */
    submit(c, 0, 1, 2);
    submit(c, 1, 1, 3); /* a stopped backup does not watch its primary */
    cluster_run(c, 3000);
    assert_int_equal(c->nodes[0].last_seq, 2);
    assert_int_equal(pbft_set_stop(c->nodes[0].p, 1), PBFT_EINVAL);
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(c->nodes[i].n_exec, 1);
        assert_true(status(c, i).last_committed >= 2);
        assert_int_equal(status(c, i).view, 0);
        assert_int_equal(status(c, i).view_changes, 0);
        assert_false(status(c, i).in_view_change);
        assert_int_equal(c->nodes[i].n_complaints, 0);
        /* still resending its vote for 1 */
        assert_true(pbft_deadline_ms(c->nodes[i].p) <= c->now + 125);
        last = c->nodes[i].last_sent[PBFT_MSG_CHECKPOINT];
        assert_non_null(last);
        assert_int_equal(last->u.vote.seq, 1);
    }
    /* The network heals: the resent votes form the certificate of 1, and
     * the resending stops. */
    drop_checkpoints_on = false;
    cluster_run(c, 1000);
    for (uint32_t i = 1; i < 4; i++) {
        assert_true(certified_has(&c->nodes[i], 1));
        assert_false(certified_has(&c->nodes[i], 2));
        assert_int_equal(status(c, i).stable_seq, 1);
        assert_int_equal(pbft_deadline_ms(c->nodes[i].p), UINT64_MAX);
        assert_int_equal(c->nodes[i].n_exec, 1);
    }
    cluster_free(c);
}

/* A stopped primary proposes nothing beyond the stop. */
static void test_set_stop_primary_proposes_nothing(void **state)
{
    struct cluster *c = cluster_new(4, NULL);

    (void)state;
    submit(c, 0, 1, 1);
    cluster_run(c, 500);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(pbft_set_stop(c->nodes[i].p, 1), PBFT_OK);
    submit(c, 0, 1, 2);
    cluster_run(c, 3000);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(c->nodes[i].last_seq, 1);
        assert_int_equal(status(c, i).last_committed, 1);
        assert_int_equal(status(c, i).view_changes, 0);
        assert_true(certified_has(&c->nodes[i], 1));
    }
    cluster_free(c);
}

/* A restart after the switch executed but before its vote was durable
 * (EXECUTED never fed): the stopped core signs and sends it at start. */
static void test_set_stop_restart_signs_vote(void **state)
{
    struct cluster *c = cluster_new(4, NULL);
    struct node *nd = &c->nodes[3];
    struct pbft_config cfg = c->cfg;
    struct pbft_ready rd;
    bool sent = false;

    (void)state;
    c->drop = drop_checkpoints;
    drop_checkpoints_on = true;
    submit(c, 0, 1, 1);
    cluster_run(c, 200);
    node_stop(c, 3);
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (nd->recs[k].used && nd->recs[k].r.type == PBFT_REC_MSG &&
            nd->recs[k].msg->type == PBFT_MSG_CHECKPOINT) {
            msg_free(nd->recs[k].msg);
            nd->recs[k].used = false;
        }
    cfg.self = 3;
    cfg.crypto.ctx = &nd->fake;
    nd->p = pbft_new(&cfg, NULL);
    assert_non_null(nd->p);
    for (uint32_t k = 0; k < MAX_RECS; k++)
        if (nd->recs[k].used)
            assert_int_equal(pbft_restore(nd->p, &nd->recs[k].r), PBFT_OK);
    assert_int_equal(pbft_set_stop(nd->p, 1), PBFT_OK);
    assert_int_equal(pbft_start(nd->p, 2, nd->state, c->now, &rd),
                     PBFT_EINVAL); /* beyond its stop */
    assert_int_equal(pbft_start(nd->p, 1, nd->state_at[1], c->now, &rd),
                     PBFT_OK);
    for (uint32_t k = 0; k < rd.n_msgs; k++)
        if (rd.msgs[k].msg->type == PBFT_MSG_CHECKPOINT &&
            rd.msgs[k].msg->u.vote.seq == 1 &&
            rd.msgs[k].msg->u.vote.replica == 3)
            sent = true;
    assert_true(sent);
    node_handle(c, 3, &rd);
    drop_checkpoints_on = false;
    cluster_run(c, 1000);
    assert_true(certified_has(nd, 1));
    cluster_free(c);
}

static void test_view_change_window_at_seq_max(void **state)
{
    struct pbft_config cfg;
    struct fake fk = {.self = 1};
    struct pbft_vote votes[3];
    struct pbft_meta meta;
    struct pbft_record rec;
    struct pbft_ready rd;
    struct pbft_event ev = {.type = PBFT_EV_REQUEST};
    uint8_t digest[PBFT_DIGEST_SIZE] = {0};
    uint8_t buf[REQ_LEN];
    struct pbft_request r = make_req(42, 1, buf, true);
    const char *why = NULL;
    struct pbft *p;
    struct pbft_status st;
    pbft_seq h;

    (void)state;
    cluster_config(&cfg, 4);
    cfg.self = 1;
    cfg.crypto.ctx = &fk;
    h = UINT64_MAX - cfg.watermark_window;
    p = pbft_new(&cfg, &why);
    assert_non_null(p);
    memset(votes, 0, sizeof(votes));
    memset(&meta, 0, sizeof(meta));
    for (uint32_t i = 0; i < 3; i++) {
        votes[i].replica = i;
        votes[i].seq = h;
    }
    meta.stable.seq = h;
    meta.stable.n_votes = 3;
    meta.stable.votes = votes;
    memset(&rec, 0, sizeof(rec));
    rec.type = PBFT_REC_META;
    rec.meta = &meta;
    assert_int_equal(pbft_restore(p, &rec), PBFT_OK);
    assert_int_equal(pbft_start(p, h, digest, 1000, &rd), PBFT_OK);
    pbft_advance(p);
    pbft_get_status(p, &st);
    assert_int_equal(st.high_watermark, UINT64_MAX);
    ev.now_ms = 1000;
    ev.u.request = &r;
    assert_int_equal(pbft_step(p, &ev, &rd), PBFT_OK);
    pbft_advance(p);
    /* complaint, then the view change (bounded: a few timers at most) */
    for (uint32_t i = 0; i < 8 && !st.in_view_change; i++) {
        struct pbft_event t = {.type = PBFT_EV_TIMEOUT};

        t.now_ms = pbft_deadline_ms(p);
        assert_true(t.now_ms != UINT64_MAX);
        (void)pbft_step(p, &t, &rd);
        pbft_advance(p);
        pbft_get_status(p, &st);
    }
    assert_true(st.in_view_change);
    assert_int_equal(st.view, 1);
    pbft_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quorum_arithmetic),
        cmocka_unit_test(test_new_rejects_bad_config),
        cmocka_unit_test(test_normal_commit_n4),
        cmocka_unit_test(test_normal_commit_n7),
        cmocka_unit_test(test_normal_commit_traces_off),
        cmocka_unit_test(test_batching_by_size),
        cmocka_unit_test(test_batching_by_delay),
        cmocka_unit_test(test_exactly_once_cached_reply),
        cmocka_unit_test(test_preprepare_refusals),
        cmocka_unit_test(test_checkpoint_stable_gc_certified),
        cmocka_unit_test(test_watermarks_drop_before_verify),
        cmocka_unit_test(test_late_votes_not_verified),
        cmocka_unit_test(test_view_change_silent_primary_n4),
        cmocka_unit_test(test_view_change_silent_primary_n7),
        cmocka_unit_test(test_view_change_carries_prepared),
        cmocka_unit_test(test_new_view_wrong_o_rejected),
        cmocka_unit_test(test_f_plus_one_joins_higher_view),
        cmocka_unit_test(test_restart_does_not_equivocate),
        cmocka_unit_test(test_state_transfer_far_behind),
        cmocka_unit_test(test_retransmit_heals_lost_preprepare),
        cmocka_unit_test(test_restart_with_wiped_log_catches_up),
        cmocka_unit_test(test_malformed_view_change_dropped),
        cmocka_unit_test(test_certified_in_order_and_refetched),
        cmocka_unit_test(test_view_change_after_restart_at_genesis),
        cmocka_unit_test(test_view_sync_cut_off_replica_rejoins),
        cmocka_unit_test(test_view_sync_cut_off_in_view_change_rejoins),
        cmocka_unit_test(test_view_sync_new_view_without_own_view_change),
        cmocka_unit_test(test_view_sync_wiped_restart_rejoins),
        cmocka_unit_test(test_view_sync_f_plus_one_signed_votes),
        cmocka_unit_test(test_new_view_does_not_repropose_executed),
        cmocka_unit_test(test_forwarded_request_pool_full_counted),
        cmocka_unit_test(test_complaint_primary_back_no_view_change),
        cmocka_unit_test(test_complaint_dead_primary_view_change),
        cmocka_unit_test(test_complaint_missed_by_primary_nobody_left_behind),
        cmocka_unit_test(test_view_change_window_at_seq_max),
        cmocka_unit_test(test_epoch_base_seq_commits_next),
        cmocka_unit_test(test_epoch_start_beyond_base),
        cmocka_unit_test(test_epoch_initial_view_primary),
        cmocka_unit_test(test_set_stop_ends_epoch),
        cmocka_unit_test(test_set_stop_primary_proposes_nothing),
        cmocka_unit_test(test_set_stop_restart_signs_vote),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests_name("pbft", tests, NULL, NULL);
}
