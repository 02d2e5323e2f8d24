/* sim_cluster.c - the simulated cluster: clock, network, disks, clients,
 * the driver that carries out each ready, faults and the checkers.
 *
 * One event heap ordered by (time, insertion order) holds everything that
 * happens; replica timers are read from pbft_deadline_ms() between events.
 * Nothing here reads the wall clock or libc's rand(). */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ev_kind {
    EV_DELIVER = 1, /* a replica message reaches node `slot` */
    EV_CLIENT_REQ,  /* a client request reaches replica `from` */
    EV_REPLY,       /* replica `from` answers client `client` */
    EV_CLIENT_TIMER,
    EV_EXECUTED,  /* feed PBFT_EV_EXECUTED */
    EV_TRANSFER,  /* a state transfer completes */
    EV_FAULT,     /* the fault scheduler ticks */
    EV_PART_HEAL, /* a partition ends */
    EV_RESTART,   /* a crashed node comes back */
    EV_HEAL,      /* end of the fault phase */
    EV_BYZ_TICK,  /* a Byzantine replica acts on its own */
};

struct sim_ev {
    uint64_t at, order;
    enum ev_kind kind;
    uint32_t slot, from, client;
    uint64_t gen, req_no;
    pbft_seq seq;
    uint8_t digest[PBFT_DIGEST_SIZE];
    struct pbft_msg *msg;
};

static const char *const family_names[FAM_COUNT] = {
    "net",    "crash",   "wipe",  "equivocate", "votes",    "sig-replay",
    "silent", "fake-vc", "twins", "mix",        "reconfig",
};

const char *sim_family_name(int fam)
{
    if (fam < 0 || fam >= FAM_COUNT)
        return "?";
    return family_names[fam];
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (q == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return q;
}

/* ---- event heap --------------------------------------------------------- */

static bool ev_before(const struct sim_ev *a, const struct sim_ev *b)
{
    if (a->at != b->at)
        return a->at < b->at;
    return a->order < b->order;
}

static struct sim_ev *ev_new(struct sim *s, enum ev_kind kind, uint64_t at)
{
    struct sim_ev *e = xcalloc(1, sizeof(*e));

    e->kind = kind;
    e->at = at < s->now ? s->now : at;
    return e;
}

static void ev_push(struct sim *s, struct sim_ev *e)
{
    size_t i;

    e->order = s->order++;
    if (s->heap_len == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    i = s->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!ev_before(e, s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = e;
}

static struct sim_ev *ev_pop(struct sim *s)
{
    struct sim_ev *top, *last;
    size_t i = 0;

    if (s->heap_len == 0)
        return NULL;
    top = s->heap[0];
    last = s->heap[--s->heap_len];
    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->heap_len)
            break;
        if (c + 1 < s->heap_len && ev_before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!ev_before(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_len > 0)
        s->heap[i] = last;
    return top;
}

static void ev_free(struct sim_ev *e)
{
    sim_msg_free(e->msg);
    free(e);
}

/* ---- reporting ---------------------------------------------------------- */

/* Core lines arrive rendered ("[local ms] rN > ..."); the simulator's own
 * notes use the same shape with "~" so they stand out. */
static void trace_add(struct sim *s, struct sim_node *nd, const char *line)
{
    char *dst = nd->trace[nd->trace_head];

    snprintf(dst, SIM_TRACE_LEN, "%s%s", nd->slot != nd->id ? "(twin) " : "",
             line);
    nd->trace_head = (nd->trace_head + 1) % SIM_TRACE_RING;
    if (nd->trace_count < SIM_TRACE_RING)
        nd->trace_count++;
    if (s->prm.trace_all)
        printf("%s\n", dst);
}

void sim_note(struct sim *s, struct sim_node *nd, const char *fmt, ...)
{
    char line[SIM_TRACE_LEN], full[SIM_TRACE_LEN + 32];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "[%" PRIu64 "] r%u ~ %s", sim_local_now(s, nd),
             nd->id, line);
    trace_add(s, nd, full);
}

void sim_fail(struct sim *s, int a, int b, const char *fmt, ...)
{
    va_list ap;

    if (s->failed)
        return;
    s->failed = true;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    s->suspects[0] = a;
    s->suspects[1] = b;
    if (s->prm.trace_all)
        printf("VIOLATION: %s\n", s->why);
}

uint64_t sim_local_now(const struct sim *s, const struct sim_node *nd)
{
    return (uint64_t)((int64_t)s->now + nd->skew_ms);
}

static bool honest(const struct sim_node *nd)
{
    return nd->byz == BYZ_NONE;
}

/* ---- durable consensus state -------------------------------------------- */

static void store_apply(struct sim_node *nd, const struct pbft_record *r)
{
    switch (r->type) {
    case PBFT_REC_META:
        if (r->meta == NULL)
            return;
        sim_meta_free(nd->meta);
        nd->meta = sim_meta_clone(r->meta);
        return;
    case PBFT_REC_MSG: {
        uint32_t type;

        if (r->msg == NULL)
            return;
        type = (uint32_t)r->msg->type;
        for (size_t i = 0; i < nd->n_recs; i++) {
            struct sim_rec *x = &nd->recs[i];

            if (x->type == type && x->seq == r->seq && x->view == r->view &&
                x->replica == r->replica) {
                sim_msg_free(x->msg);
                x->msg = sim_msg_clone(r->msg);
                return;
            }
        }
        if (nd->n_recs == nd->cap_recs) {
            nd->cap_recs = nd->cap_recs ? nd->cap_recs * 2 : 64;
            nd->recs = xrealloc(nd->recs, nd->cap_recs * sizeof(*nd->recs));
        }
        nd->recs[nd->n_recs].type = type;
        nd->recs[nd->n_recs].seq = r->seq;
        nd->recs[nd->n_recs].view = r->view;
        nd->recs[nd->n_recs].replica = r->replica;
        nd->recs[nd->n_recs].msg = sim_msg_clone(r->msg);
        nd->n_recs++;
        return;
    }
    case PBFT_REC_GC: {
        size_t j = 0;

        for (size_t i = 0; i < nd->n_recs; i++) {
            if (nd->recs[i].seq <= r->seq)
                sim_msg_free(nd->recs[i].msg);
            else
                nd->recs[j++] = nd->recs[i];
        }
        nd->n_recs = j;
        return;
    }
    }
}

static void store_wipe(struct sim_node *nd)
{
    for (size_t i = 0; i < nd->n_recs; i++)
        sim_msg_free(nd->recs[i].msg);
    free(nd->recs);
    nd->recs = NULL;
    nd->n_recs = nd->cap_recs = 0;
    sim_meta_free(nd->meta);
    nd->meta = NULL;
}

/* Key order of a LevelDB store with key (type, seq, view, replica). */
static int rec_cmp(const void *a, const void *b)
{
    const struct sim_rec *x = a, *y = b;

    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->view != y->view)
        return x->view < y->view ? -1 : 1;
    if (x->replica != y->replica)
        return x->replica < y->replica ? -1 : 1;
    return 0;
}

/* ---- application: a hash chain over executed batches ------------------- */

static void app_entry_free(struct sim_app_entry *e)
{
    free(e->clients);
    free(e->req_nos);
    e->clients = NULL;
    e->req_nos = NULL;
}

static void app_wipe(struct sim *s, struct sim_node *nd)
{
    for (size_t i = 0; i < nd->n_log; i++)
        app_entry_free(&nd->log[i]);
    free(nd->log);
    nd->log = NULL;
    nd->n_log = nd->cap_log = 0;
    memcpy(nd->state, s->genesis, PBFT_DIGEST_SIZE);
    memset(nd->executed, 0, s->n_clients * s->req_cap);
}

static void app_append(struct sim_node *nd, const struct sim_app_entry *e)
{
    if (nd->n_log == nd->cap_log) {
        nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
        nd->log = xrealloc(nd->log, nd->cap_log * sizeof(*nd->log));
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

static void agree_check(struct sim *s, struct sim_node *nd,
                        const struct sim_app_entry *e)
{
    struct sim_agree *a;

    if (e->seq >= s->n_agree) {
        size_t cap = s->n_agree ? s->n_agree : 64;

        while (cap <= e->seq)
            cap *= 2;
        s->agree = xrealloc(s->agree, cap * sizeof(*s->agree));
        memset(s->agree + s->n_agree, 0,
               (cap - s->n_agree) * sizeof(*s->agree));
        s->n_agree = cap;
    }
    a = &s->agree[e->seq];
    if (!a->set) {
        a->set = true;
        a->by = nd->id;
        memcpy(a->batch, e->batch, 32);
        memcpy(a->state, e->state, 32);
        return;
    }
    if (memcmp(a->batch, e->batch, 32) != 0)
        sim_fail(s, (int)a->by, (int)nd->id,
                 "agreement: r%u and r%u executed different batches at "
                 "seq %" PRIu64,
                 a->by, nd->id, e->seq);
    else if (memcmp(a->state, e->state, 32) != 0)
        sim_fail(s, (int)a->by, (int)nd->id,
                 "agreement: r%u and r%u reached different states at "
                 "seq %" PRIu64,
                 a->by, nd->id, e->seq);
}

static void client_reply(struct sim *s, struct sim_node *nd, uint32_t client,
                         uint64_t req_no, pbft_view view);

static void note_quorum_exec(struct sim *s, uint32_t client, uint64_t req_no);

static void app_execute(struct sim *s, struct sim_node *nd,
                        const struct pbft_execute *ex)
{
    struct sim_app_entry e;
    pbft_seq last = nd->n_log;
    bool h = honest(nd);
    struct sim_ev *ev;
    uint64_t at;

    if (ex->seq != last + 1) {
        if (h)
            sim_fail(s, (int)nd->id, -1,
                     "r%u executed seq %" PRIu64 " after seq %" PRIu64, nd->id,
                     ex->seq, last);
        return;
    }
    if (ex->n_requests > 0 && ex->requests == NULL) {
        sim_fail(s, (int)nd->id, -1, "r%u: execute with NULL requests", nd->id);
        return;
    }
    memset(&e, 0, sizeof(e));
    e.seq = ex->seq;
    e.n_reqs = ex->n_requests;
    e.clients = xcalloc(ex->n_requests, sizeof(*e.clients));
    e.req_nos = xcalloc(ex->n_requests, sizeof(*e.req_nos));
    pbft_batch_digest(&nd->cfg.crypto, ex->requests, ex->n_requests, e.batch);
    for (uint32_t i = 0; i < ex->n_requests; i++) {
        const struct pbft_request *rq = &ex->requests[i];
        int c = sim_request_check(s, rq);

        e.clients[i] = UINT32_MAX;
        e.req_nos[i] = rq->req_no;
        if (c < 0 || rq->req_no >= s->req_cap) {
            if (h)
                sim_fail(s, (int)nd->id, -1,
                         "r%u executed a request not signed by its client "
                         "at seq %" PRIu64,
                         nd->id, ex->seq);
            continue;
        }
        /* PBFT may order one request at two seqs across view changes
         * (a re-proposed request and an old view's prepared certificate in
         * O); Castro and Liskov drop the repeat at execution with the client
         * table, which is replicated state. This application does the same
         * with its executed set (copied on state transfer, like the node's
         * tx index), so a request takes effect once and every replica
         * skips the same repeats: agree_check compares the results. */
        if (nd->executed[(size_t)c * s->req_cap + rq->req_no]) {
            sim_note(s, nd,
                     "sim: client %d request %" PRIu64
                     " ordered again at seq %" PRIu64 ", skipped",
                     c, rq->req_no, ex->seq);
            s->repeats_skipped += h;
            continue;
        }
        e.clients[i] = (uint32_t)c;
        nd->executed[(size_t)c * s->req_cap + rq->req_no] = 1;
    }
    chain_next(nd->state, ex->seq, e.batch, e.state);
    memcpy(nd->state, e.state, 32);
    app_append(nd, &e);
    if (h) {
        agree_check(s, nd, &e);
        for (uint32_t i = 0; i < e.n_reqs; i++) {
            if (e.clients[i] == UINT32_MAX)
                continue;
            client_reply(s, nd, e.clients[i], e.req_nos[i], ex->view);
            note_quorum_exec(s, e.clients[i], e.req_nos[i]);
        }
    }
    sim_note(s, nd, "sim: executed seq %" PRIu64 " (%u requests)", ex->seq,
             ex->n_requests);
    /* Fed back after a short delay, but in execution order, like a driver
     * that executes on another thread. */
    at = s->now + (s->faults_active ? sim_rng_below(&s->rng, 3) : 0);
    if (at < nd->exec_feed_at)
        at = nd->exec_feed_at;
    nd->exec_feed_at = at;
    ev = ev_new(s, EV_EXECUTED, at);
    ev->slot = nd->slot;
    ev->gen = nd->incarnation;
    ev->req_no = nd->exec_gen;
    ev->seq = ex->seq;
    memcpy(ev->digest, e.state, 32);
    ev_push(s, ev);
}

/* Installs the donor's state up to seq (a prefix of its hash chain). */
static void app_install(struct sim *s, struct sim_node *nd,
                        const struct sim_node *donor, pbft_seq seq)
{
    app_wipe(s, nd);
    for (pbft_seq i = 0; i < seq; i++) {
        const struct sim_app_entry *d = &donor->log[i];
        struct sim_app_entry e = *d;

        e.clients = xcalloc(d->n_reqs, sizeof(*e.clients));
        e.req_nos = xcalloc(d->n_reqs, sizeof(*e.req_nos));
        if (d->n_reqs > 0) {
            memcpy(e.clients, d->clients, d->n_reqs * sizeof(*e.clients));
            memcpy(e.req_nos, d->req_nos, d->n_reqs * sizeof(*e.req_nos));
        }
        for (uint32_t j = 0; j < e.n_reqs; j++)
            if (e.clients[j] != UINT32_MAX && e.req_nos[j] < s->req_cap)
                nd->executed[(size_t)e.clients[j] * s->req_cap + e.req_nos[j]] =
                    1;
        app_append(nd, &e);
    }
    if (seq > 0)
        memcpy(nd->state, donor->log[seq - 1].state, 32);
}

/* ---- the sent log: an honest replica never contradicts itself ---------- */

enum { CLASS_ORDER = 1, CLASS_CHECKPOINT = 2 };

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static void sentlog_grow(struct sim *s);

static void sentlog_check(struct sim *s, struct sim_node *nd, int cls,
                          pbft_view view, pbft_seq seq, const uint8_t *digest,
                          const char *what)
{
    uint64_t k1 =
        ((uint64_t)nd->id << 40) | ((uint64_t)nd->epoch << 8) | (uint64_t)cls;
    size_t i;

    if (s->sent_len * 2 >= s->sent_cap)
        sentlog_grow(s);
    i = mix64(k1 ^ mix64(view ^ mix64(seq))) & (s->sent_cap - 1);
    for (;;) {
        struct sim_sentlog_entry *e = &s->sent[i];

        if (!e->used) {
            e->used = true;
            e->k1 = k1;
            e->k2 = view;
            e->k3 = seq;
            memcpy(e->digest, digest, PBFT_DIGEST_SIZE);
            s->sent_len++;
            return;
        }
        if (e->k1 == k1 && e->k2 == view && e->k3 == seq) {
            if (memcmp(e->digest, digest, PBFT_DIGEST_SIZE) != 0)
                sim_fail(s, (int)nd->id, -1,
                         "honest r%u sent a conflicting %s for view %" PRIu64
                         " seq %" PRIu64,
                         nd->id, what, view, seq);
            return;
        }
        i = (i + 1) & (s->sent_cap - 1);
    }
}

static void sentlog_grow(struct sim *s)
{
    struct sim_sentlog_entry *old = s->sent;
    size_t old_cap = s->sent_cap;

    s->sent_cap = old_cap ? old_cap * 2 : 4096;
    s->sent = xcalloc(s->sent_cap, sizeof(*s->sent));
    s->sent_len = 0;
    for (size_t i = 0; i < old_cap; i++) {
        struct sim_sentlog_entry *e = &old[i];
        size_t j;

        if (!e->used)
            continue;
        j = mix64(e->k1 ^ mix64(e->k2 ^ mix64(e->k3))) & (s->sent_cap - 1);
        while (s->sent[j].used)
            j = (j + 1) & (s->sent_cap - 1);
        s->sent[j] = *e;
        s->sent_len++;
    }
    free(old);
}

/* Persist-before-send: an honest replica's own ordering vote goes out only
 * once a record of it is durable (else a restart could contradict it). */
static void check_durable(struct sim *s, struct sim_node *nd,
                          const struct pbft_msg *m)
{
    const struct pbft_vote *v;

    if (m->type == PBFT_MSG_PREPREPARE)
        v = &m->u.pp.hdr;
    else if (m->type == PBFT_MSG_PREPARE || m->type == PBFT_MSG_COMMIT)
        v = &m->u.vote;
    else
        return;
    if (v->replica != nd->id)
        return;
    for (size_t i = 0; i < nd->n_recs; i++) {
        const struct sim_rec *r = &nd->recs[i];
        const struct pbft_vote *rv;

        if (r->type != (uint32_t)m->type || r->seq != v->seq ||
            r->view != v->view)
            continue;
        rv = m->type == PBFT_MSG_PREPREPARE ? &r->msg->u.pp.hdr
                                            : &r->msg->u.vote;
        if (rv->replica == nd->id &&
            memcmp(rv->digest, v->digest, PBFT_DIGEST_SIZE) == 0)
            return;
    }
    sim_fail(s, (int)nd->id, -1,
             "persist-before-send: r%u sent %s v=%" PRIu64 " n=%" PRIu64
             " with no durable record of it",
             nd->id, sim_msg_type_name(m->type), v->view, v->seq);
}

static void check_sent(struct sim *s, struct sim_node *nd,
                       const struct pbft_msg *m)
{
    check_durable(s, nd, m);
    const struct pbft_vote *v;

    switch (m->type) {
    case PBFT_MSG_PREPREPARE:
        v = &m->u.pp.hdr;
        if (v->replica == nd->id)
            sentlog_check(s, nd, CLASS_ORDER, v->view, v->seq, v->digest,
                          "PRE-PREPARE");
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
        v = &m->u.vote;
        if (v->replica == nd->id)
            sentlog_check(s, nd, CLASS_ORDER, v->view, v->seq, v->digest,
                          sim_msg_type_name(m->type));
        break;
    case PBFT_MSG_CHECKPOINT:
        v = &m->u.vote;
        if (v->replica == nd->id)
            sentlog_check(s, nd, CLASS_CHECKPOINT, 0, v->seq, v->digest,
                          "CHECKPOINT");
        break;
    case PBFT_MSG_NEW_VIEW:
        for (uint32_t i = 0; i < m->u.nv.n_preprepares; i++) {
            v = &m->u.nv.preprepares[i].hdr;
            if (v->replica == nd->id)
                sentlog_check(s, nd, CLASS_ORDER, v->view, v->seq, v->digest,
                              "PRE-PREPARE (in NEW-VIEW)");
        }
        break;
    default:
        break;
    }
}

/* ---- network ------------------------------------------------------------ */

static uint64_t net_delay(struct sim *s)
{
    uint64_t d;

    if (s->prm.cost_mode)
        return s->prm.unit_delay_ms;
    d = sim_rng_range(&s->rng, s->delay_min, s->delay_max);
    if (s->faults_active && sim_rng_chance(&s->rng, s->long_delay_pm))
        d += sim_rng_range(&s->rng, 50, 300);
    return d;
}

/* How many copies of one message the network delivers (0 = lost). */
static uint32_t net_copies(struct sim *s)
{
    if (!s->faults_active)
        return 1;
    if (sim_rng_chance(&s->rng, s->loss_pm))
        return 0;
    return sim_rng_chance(&s->rng, s->dup_pm) ? 2 : 1;
}

/* Twins: when either end is the twinned replica, a message flows only
 * between nodes on the same side. */
static bool twin_route_ok(const struct sim *s, const struct sim_node *from,
                          const struct sim_node *to)
{
    if (s->twin_of < 0)
        return true;
    if (from->id != (uint32_t)s->twin_of && to->id != (uint32_t)s->twin_of)
        return true;
    return from->twin_side == to->twin_side;
}

void sim_net_send(struct sim *s, struct sim_node *from, uint32_t to,
                  const struct pbft_msg *m)
{
    for (uint32_t k = 0; k < s->n_slots; k++) {
        struct sim_node *dst = &s->nodes[k];
        uint32_t copies;

        if (dst->id == from->id)
            continue;
        if (to != PBFT_BROADCAST && dst->id != to)
            continue;
        if (!twin_route_ok(s, from, dst))
            continue;
        s->msgs_sent++;
        if ((uint32_t)m->type <= PBFT_MSG_TYPE_MAX)
            s->msgs_by_type[m->type]++;
        copies = net_copies(s);
        for (uint32_t c = 0; c < copies; c++) {
            struct sim_ev *e = ev_new(s, EV_DELIVER, s->now + net_delay(s));

            e->slot = k;
            e->from = from->id;
            e->msg = sim_msg_clone(m);
            ev_push(s, e);
        }
    }
}

static bool msg_wanted(const struct sim_node *nd, uint32_t from,
                       const struct pbft_msg *m)
{
    switch (m->type) {
    case PBFT_MSG_PREPREPARE:
        return pbft_wants(nd->core, from, m->type, m->u.pp.hdr.view,
                          m->u.pp.hdr.seq);
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        return pbft_wants(nd->core, from, m->type, m->u.vote.view,
                          m->u.vote.seq);
    default:
        return true;
    }
}

/* ---- clients ------------------------------------------------------------ */

static void client_arm(struct sim *s, uint32_t c, uint64_t at)
{
    struct sim_client *cl = &s->clients[c];
    struct sim_ev *e = ev_new(s, EV_CLIENT_TIMER, at);

    cl->timer_gen++;
    cl->timer_at = at;
    e->client = c;
    e->gen = cl->timer_gen;
    ev_push(s, e);
}

static void client_send(struct sim *s, uint32_t c, uint32_t replica)
{
    uint32_t copies = s->faults_active ? net_copies(s) : 1;

    s->msgs_client++;
    for (uint32_t i = 0; i < copies; i++) {
        struct sim_ev *e = ev_new(s, EV_CLIENT_REQ, s->now + net_delay(s));

        e->client = c;
        e->from = replica;
        e->req_no = s->clients[c].outstanding;
        ev_push(s, e);
    }
}

static uint64_t client_retry_ms(const struct sim *s)
{
    return s->prm.cost_mode ? 1000000 : 700;
}

static uint32_t client_total(const struct sim *s)
{
    return s->prm.reqs_pre + s->prm.reqs_post;
}

static void client_timer(struct sim *s, uint32_t c)
{
    struct sim_client *cl = &s->clients[c];

    if (cl->outstanding != 0) {
        /* PBFT's client: on a timeout, send to every replica. */
        for (uint32_t r = 0; r < s->n; r++)
            client_send(s, c, r);
        client_arm(s, c, s->now + client_retry_ms(s));
        return;
    }
    if (cl->n_done >= client_total(s))
        return;
    if (cl->n_done >= s->prm.reqs_pre && s->now < s->heal_at) {
        client_arm(s, c, s->heal_at);
        return;
    }
    cl->outstanding = cl->next_req_no++;
    cl->sent_at = s->now;
    cl->replied_mask = 0;
    cl->exec_count = 0;
    client_send(s, c, cl->view_guess % s->n);
    client_arm(s, c, s->now + client_retry_ms(s));
}

static void client_got_reply(struct sim *s, uint32_t c, uint32_t from,
                             uint64_t req_no, uint64_t view)
{
    struct sim_client *cl = &s->clients[c];
    uint32_t count = 0;

    if (view > cl->view_guess)
        cl->view_guess = (uint32_t)view;
    if (cl->outstanding == 0 || req_no != cl->outstanding)
        return;
    cl->replied_mask |= 1ULL << from;
    for (uint32_t r = 0; r < s->n; r++)
        count += (cl->replied_mask >> r) & 1;
    if (count < s->f + 1)
        return;
    cl->outstanding = 0;
    cl->n_done++;
    client_arm(s, c,
               s->now + (s->prm.cost_mode ? 0 : sim_rng_below(&s->rng, 150)));
}

static void client_reply(struct sim *s, struct sim_node *nd, uint32_t client,
                         uint64_t req_no, pbft_view view)
{
    uint32_t copies = net_copies(s);

    s->msgs_client++;
    for (uint32_t i = 0; i < copies; i++) {
        struct sim_ev *e = ev_new(s, EV_REPLY, s->now + net_delay(s));

        e->client = client;
        e->from = nd->id;
        e->req_no = req_no;
        e->gen = view;
        ev_push(s, e);
    }
}

/* Cost report: commit latency is measured when a quorum has executed. */
static void note_quorum_exec(struct sim *s, uint32_t client, uint64_t req_no)
{
    struct sim_client *cl = &s->clients[client];

    if (!s->prm.cost_mode || req_no != cl->outstanding)
        return;
    if (++cl->exec_count == s->quorum) {
        s->reqs_committed++;
        s->latency_sum_ms += s->now - cl->sent_at;
        s->latency_n++;
    }
}

/* ---- replicas ----------------------------------------------------------- */

static void node_crash(struct sim *s, struct sim_node *nd, bool wipe);
static void schedule_restart(struct sim *s, struct sim_node *nd, uint64_t at);
static void schedule_transfer(struct sim *s, struct sim_node *nd,
                              const struct pbft_checkpoint_cert *cert);

static void check_certified(struct sim *s, struct sim_node *nd,
                            const struct pbft_checkpoint_cert *c)
{
    if (s->prm.cost_mode || !honest(nd))
        return;
    if (c->seq > 0 &&
        !pbft_checkpoint_cert_valid(&nd->cfg.crypto, s->n, s->chain_id, c)) {
        sim_fail(s, (int)nd->id, -1,
                 "r%u formed an invalid checkpoint certificate for seq "
                 "%" PRIu64,
                 nd->id, c->seq);
        return;
    }
    if (c->seq < s->n_agree && s->agree[c->seq].set &&
        memcmp(s->agree[c->seq].state, c->digest, 32) != 0)
        sim_fail(s, (int)nd->id, (int)s->agree[c->seq].by,
                 "r%u certified a state at seq %" PRIu64
                 " that correct replicas did not reach",
                 nd->id, c->seq);
}

static void node_process_ready(struct sim *s, struct sim_node *nd,
                               struct pbft_ready *rd)
{
    bool h = honest(nd);
    bool crash_now = false;

    for (uint32_t i = 0; i < rd->n_trace; i++)
        if (rd->trace[i].line != NULL)
            trace_add(s, nd, rd->trace[i].line);
    /* Driver contract step 2: persist first. */
    for (uint32_t i = 0; i < rd->n_persist; i++)
        store_apply(nd, &rd->persist[i]);
    /* A crash after the write but before the sends must be harmless. */
    if (s->faults_active && s->crash_enabled && h && rd->n_persist > 0 &&
        sim_rng_chance(&s->rng, 3))
        crash_now = true;
    if (!crash_now) {
        for (uint32_t i = 0; i < rd->n_msgs; i++) {
            const struct pbft_send *snd = &rd->msgs[i];

            if (snd->msg == NULL)
                continue;
            if (h) {
                check_sent(s, nd, snd->msg);
                if ((snd->msg->type == PBFT_MSG_VIEW_CHANGE ||
                     snd->msg->type == PBFT_MSG_NEW_VIEW) &&
                    !s->prm.cost_mode && !sim_stmt_check(s, snd->msg))
                    s->stmt_drift++;
                sim_net_send(s, nd, snd->to, snd->msg);
            } else {
                sim_byz_send(s, nd, snd);
            }
        }
        for (uint32_t i = 0; i < rd->n_execute; i++)
            app_execute(s, nd, &rd->execute[i]);
        for (uint32_t i = 0; i < rd->n_certified; i++)
            check_certified(s, nd, &rd->certified[i]);
        for (uint32_t i = 0; i < rd->n_replies && h; i++) {
            int c = -1;

            for (uint32_t k = 0; k < s->n_clients; k++)
                if (memcmp(s->clients[k].key, rd->replies[i].client,
                           PBFT_KEY_SIZE) == 0)
                    c = (int)k;
            if (c >= 0)
                client_reply(s, nd, (uint32_t)c, rd->replies[i].req_no, 0);
        }
        if (rd->fetch != NULL && rd->fetch->cert != NULL)
            schedule_transfer(s, nd, rd->fetch->cert);
    }
    pbft_advance(nd->core);
    if (crash_now) {
        sim_note(s, nd, "sim: crash after persist, before send");
        node_crash(s, nd, false);
        schedule_restart(s, nd, s->now + sim_rng_range(&s->rng, 20, 800));
    }
}

void sim_node_step(struct sim *s, struct sim_node *nd, struct pbft_event *ev)
{
    struct pbft_ready rd;

    if (!nd->alive || nd->core == NULL)
        return;
    memset(&rd, 0, sizeof(rd));
    ev->now_ms = sim_local_now(s, nd);
    (void)pbft_step(nd->core, ev, &rd); /* bad input is refused: fine */
    node_process_ready(s, nd, &rd);
}

static void node_boot(struct sim *s, struct sim_node *nd)
{
    const char *err = NULL;
    struct pbft_ready rd;
    int rv;

    nd->core = pbft_new(&nd->cfg, &err);
    if (nd->core == NULL) {
        sim_fail(s, (int)nd->id, -1, "pbft_new failed for r%u: %s", nd->id,
                 err ? err : "?");
        return;
    }
    if (nd->meta != NULL) {
        struct pbft_record rec;

        memset(&rec, 0, sizeof(rec));
        rec.type = PBFT_REC_META;
        rec.meta = nd->meta;
        rv = pbft_restore(nd->core, &rec);
        if (rv != 0)
            sim_fail(s, (int)nd->id, -1, "r%u refused its own META record: %s",
                     nd->id, pbft_strerror(rv));
    }
    if (nd->n_recs > 1)
        qsort(nd->recs, nd->n_recs, sizeof(*nd->recs), rec_cmp);
    for (size_t i = 0; i < nd->n_recs; i++) {
        struct pbft_record rec;

        memset(&rec, 0, sizeof(rec));
        rec.type = PBFT_REC_MSG;
        rec.seq = nd->recs[i].seq;
        rec.view = nd->recs[i].view;
        rec.replica = nd->recs[i].replica;
        rec.msg = nd->recs[i].msg;
        rv = pbft_restore(nd->core, &rec);
        if (rv != 0)
            sim_fail(s, (int)nd->id, -1,
                     "r%u refused its own %s record seq %" PRIu64 ": %s",
                     nd->id, sim_msg_type_name(rec.msg->type), rec.seq,
                     pbft_strerror(rv));
    }
    nd->alive = true;
    nd->timer_spins = 0;
    memset(&rd, 0, sizeof(rd));
    rv = pbft_start(nd->core, nd->n_log, nd->state, sim_local_now(s, nd), &rd);
    if (rv != 0)
        sim_fail(s, (int)nd->id, -1, "pbft_start failed for r%u: %s", nd->id,
                 pbft_strerror(rv));
    sim_note(s, nd, "sim: started (last executed %zu, %zu records)", nd->n_log,
             nd->n_recs);
    node_process_ready(s, nd, &rd);
}

static void node_crash(struct sim *s, struct sim_node *nd, bool wipe)
{
    if (!nd->alive)
        return;
    sim_note(s, nd, "sim: crash%s", wipe ? " (state wiped)" : "");
    pbft_free(nd->core);
    nd->core = NULL;
    nd->alive = false;
    nd->incarnation++;
    if (wipe) {
        store_wipe(nd);
        app_wipe(s, nd);
        nd->epoch++; /* an amnesiac replica is faulty: forget its sends */
    }
}

static void schedule_restart(struct sim *s, struct sim_node *nd, uint64_t at)
{
    struct sim_ev *e = ev_new(s, EV_RESTART, at);

    e->slot = nd->slot;
    e->gen = nd->incarnation;
    ev_push(s, e);
}

static void schedule_transfer(struct sim *s, struct sim_node *nd,
                              const struct pbft_checkpoint_cert *cert)
{
    struct sim_ev *e =
        ev_new(s, EV_TRANSFER,
               s->now + (s->prm.cost_mode ? 1 : sim_rng_range(&s->rng, 2, 30)));

    e->slot = nd->slot;
    e->gen = nd->incarnation;
    e->req_no = ++nd->fetch_gen;
    e->seq = cert->seq;
    memcpy(e->digest, cert->digest, PBFT_DIGEST_SIZE);
    ev_push(s, e);
    sim_note(s, nd, "sim: fetch state up to seq %" PRIu64, cert->seq);
}

static void do_transfer(struct sim *s, struct sim_ev *ev)
{
    struct sim_node *nd = &s->nodes[ev->slot];
    const struct sim_node *donor = NULL;
    struct pbft_event pe;

    if (!nd->alive || nd->incarnation != ev->gen || nd->fetch_gen != ev->req_no)
        return; /* crashed meanwhile, or superseded by a newer fetch */
    if (s->faults_active && sim_rng_chance(&s->rng, 100)) {
        sim_note(s, nd, "sim: state transfer lost");
        return; /* the core retries after fetch_timeout_ms */
    }
    if (ev->seq == 0) {
        if (memcmp(ev->digest, s->genesis, 32) != 0) {
            sim_fail(s, (int)nd->id, -1,
                     "r%u asked for a seq 0 state that is not genesis", nd->id);
            return;
        }
    } else {
        for (uint32_t k = 0; k < s->n_slots && donor == NULL; k++) {
            const struct sim_node *d = &s->nodes[k];

            if (k == nd->slot || !honest(d) || d->n_log < ev->seq)
                continue;
            if (memcmp(d->log[ev->seq - 1].state, ev->digest, 32) == 0)
                donor = d;
        }
        if (donor == NULL) {
            if (honest(nd))
                sim_fail(s, (int)nd->id, -1,
                         "r%u fetched certified state seq %" PRIu64
                         " that no correct replica holds",
                         nd->id, ev->seq);
            return;
        }
    }
    if (donor != NULL)
        app_install(s, nd, donor, ev->seq);
    else
        app_wipe(s, nd);
    nd->exec_gen++; /* executions not yet reported are superseded */
    sim_note(s, nd, "sim: state transferred up to seq %" PRIu64 " from r%d",
             ev->seq, donor ? (int)donor->id : -1);
    memset(&pe, 0, sizeof(pe));
    pe.type = PBFT_EV_STATE_TRANSFERRED;
    pe.u.transferred.seq = ev->seq;
    memcpy(pe.u.transferred.digest, ev->digest, 32);
    sim_node_step(s, nd, &pe);
}

/* ---- faults ------------------------------------------------------------- */

static void partition_clear(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
}

static uint32_t current_primary(struct sim *s)
{
    pbft_view v = 0;

    for (uint32_t k = 0; k < s->n_slots; k++) {
        struct pbft_status st;

        if (!s->nodes[k].alive || !honest(&s->nodes[k]))
            continue;
        pbft_get_status(s->nodes[k].core, &st);
        if (st.view > v)
            v = st.view;
    }
    return (uint32_t)(v % s->n);
}

static void partition_start(struct sim *s)
{
    uint32_t kind = (uint32_t)sim_rng_below(&s->rng, 3);
    struct sim_ev *e;
    uint32_t x;

    partition_clear(s);
    if (kind == 0) {
        x = current_primary(s);
        for (uint32_t r = 0; r < s->n; r++)
            s->blocked[x][r] = s->blocked[r][x] = (r != x);
        sim_note(s, &s->nodes[x], "sim: partition isolates primary r%u", x);
    } else if (kind == 1) {
        uint32_t perm[SIM_MAX_N], half = s->n / 2;

        for (uint32_t i = 0; i < s->n; i++)
            perm[i] = i;
        for (uint32_t i = s->n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)sim_rng_below(&s->rng, i + 1), t = perm[i];

            perm[i] = perm[j];
            perm[j] = t;
        }
        for (uint32_t i = 0; i < half; i++)
            for (uint32_t j = half; j < s->n; j++)
                s->blocked[perm[i]][perm[j]] = s->blocked[perm[j]][perm[i]] =
                    true;
        sim_note(s, &s->nodes[perm[0]], "sim: partition splits %u|%u", half,
                 s->n - half);
    } else {
        x = (uint32_t)sim_rng_below(&s->rng, s->n);
        for (uint32_t r = 0; r < s->n; r++)
            s->blocked[r][x] = (r != x);
        sim_note(s, &s->nodes[x], "sim: r%u hears nothing (sends still go)", x);
    }
    e = ev_new(s, EV_PART_HEAL, s->now + sim_rng_range(&s->rng, 150, 2500));
    e->gen = ++s->partition_gen;
    ev_push(s, e);
}

static void fault_crash(struct sim *s)
{
    struct sim_node *nd = &s->nodes[sim_rng_below(&s->rng, s->n)];
    bool wipe;

    if (!nd->alive || !honest(nd))
        return;
    wipe = s->wipe_enabled && nd->amnesiac && sim_rng_chance(&s->rng, 600);
    node_crash(s, nd, wipe);
    schedule_restart(s, nd, s->now + sim_rng_range(&s->rng, 30, 1500));
}

static void fault_tick(struct sim *s)
{
    uint64_t r = sim_rng_below(&s->rng, 100);
    struct sim_ev *e;

    if (!s->faults_active)
        return;
    if (r < 25) {
        s->loss_pm = (uint32_t)sim_rng_range(&s->rng, 0, 150);
        s->dup_pm = (uint32_t)sim_rng_range(&s->rng, 0, 100);
        s->long_delay_pm = (uint32_t)sim_rng_range(&s->rng, 0, 40);
        s->delay_min = 1;
        s->delay_max = sim_rng_range(&s->rng, 2, 60);
    } else if (r < 45) {
        partition_start(s);
    } else if (r < 70 && s->crash_enabled) {
        fault_crash(s);
    }
    e = ev_new(s, EV_FAULT, s->now + sim_rng_range(&s->rng, 50, 400));
    if (e->at < s->heal_at)
        ev_push(s, e);
    else
        free(e);
}

static void heal(struct sim *s)
{
    s->faults_active = false;
    partition_clear(s);
    s->partition_gen++;
    s->loss_pm = s->dup_pm = s->long_delay_pm = 0;
    s->delay_min = 1;
    s->delay_max = 10;
    for (uint32_t k = 0; k < s->n_slots; k++)
        if (!s->nodes[k].alive)
            node_boot(s, &s->nodes[k]);
    sim_note(s, &s->nodes[0], "sim: network healed, faults stop");
}

/* ---- event dispatch ----------------------------------------------------- */

static void deliver(struct sim *s, struct sim_ev *e)
{
    struct sim_node *nd = &s->nodes[e->slot];
    struct pbft_event pe;

    if (!nd->alive || s->blocked[e->from][nd->id])
        return;
    if (!msg_wanted(nd, e->from, e->msg))
        return;
    if (!honest(nd))
        sim_byz_received(s, nd, e->from, e->msg);
    memset(&pe, 0, sizeof(pe));
    pe.type = PBFT_EV_RECEIVE;
    pe.u.receive.from = e->from;
    pe.u.receive.msg = e->msg;
    sim_node_step(s, nd, &pe);
}

static void client_request_arrives(struct sim *s, struct sim_ev *e)
{
    uint8_t buf[SIM_REQ_LEN];
    struct pbft_request rq;

    sim_request_build(s, e->client, e->req_no, buf, &rq);
    for (uint32_t k = 0; k < s->n_slots; k++) {
        struct sim_node *nd = &s->nodes[k];
        struct pbft_event pe;

        if (nd->id != e->from || !nd->alive)
            continue;
        memset(&pe, 0, sizeof(pe));
        pe.type = PBFT_EV_REQUEST;
        pe.u.request = &rq;
        sim_node_step(s, nd, &pe);
    }
}

static void dispatch(struct sim *s, struct sim_ev *e)
{
    struct sim_node *nd = &s->nodes[e->slot];
    struct pbft_event pe;

    switch (e->kind) {
    case EV_DELIVER:
        deliver(s, e);
        break;
    case EV_CLIENT_REQ:
        client_request_arrives(s, e);
        break;
    case EV_REPLY:
        client_got_reply(s, e->client, e->from, e->req_no, e->gen);
        break;
    case EV_CLIENT_TIMER:
        if (e->gen == s->clients[e->client].timer_gen)
            client_timer(s, e->client);
        break;
    case EV_EXECUTED:
        if (!nd->alive || nd->incarnation != e->gen ||
            nd->exec_gen != e->req_no)
            break;
        memset(&pe, 0, sizeof(pe));
        pe.type = PBFT_EV_EXECUTED;
        pe.u.executed.seq = e->seq;
        memcpy(pe.u.executed.digest, e->digest, 32);
        sim_node_step(s, nd, &pe);
        break;
    case EV_TRANSFER:
        do_transfer(s, e);
        break;
    case EV_FAULT:
        fault_tick(s);
        break;
    case EV_PART_HEAL:
        if (e->gen == s->partition_gen) {
            partition_clear(s);
            sim_note(s, &s->nodes[0], "sim: partition healed");
        }
        break;
    case EV_RESTART:
        if (!nd->alive && nd->incarnation == e->gen)
            node_boot(s, nd);
        break;
    case EV_HEAL:
        heal(s);
        break;
    case EV_BYZ_TICK:
        if (nd->alive) {
            sim_byz_tick(s, nd);
            {
                struct sim_ev *n = ev_new(
                    s, EV_BYZ_TICK, s->now + sim_rng_range(&s->rng, 80, 300));
                n->slot = e->slot;
                if (n->at < s->heal_at + s->prm.liveness_ms)
                    ev_push(s, n);
                else
                    free(n);
            }
        }
        break;
    }
}

/* Global time of a node's next timer, UINT64_MAX when none. */
static uint64_t node_timer_at(const struct sim *s, const struct sim_node *nd)
{
    uint64_t d;
    int64_t g;

    if (!nd->alive)
        return UINT64_MAX;
    d = pbft_deadline_ms(nd->core);
    if (d == UINT64_MAX)
        return UINT64_MAX;
    g = (int64_t)d - nd->skew_ms;
    if (g < (int64_t)s->now)
        return s->now;
    return (uint64_t)g;
}

static void fire_timer(struct sim *s, struct sim_node *nd)
{
    struct pbft_event pe;

    memset(&pe, 0, sizeof(pe));
    pe.type = PBFT_EV_TIMEOUT;
    sim_node_step(s, nd, &pe);
    if (nd->alive && pbft_deadline_ms(nd->core) <= sim_local_now(s, nd)) {
        if (++nd->timer_spins > 1000)
            sim_fail(s, (int)nd->id, -1,
                     "r%u: timer keeps firing without moving its deadline",
                     nd->id);
    } else {
        nd->timer_spins = 0;
    }
}

static bool clients_done(const struct sim *s)
{
    for (uint32_t c = 0; c < s->n_clients; c++)
        if (s->clients[c].n_done < client_total(s))
            return false;
    return true;
}

static void liveness_report(struct sim *s)
{
    uint32_t worst = 0;

    for (uint32_t c = 0; c < s->n_clients; c++)
        if (s->clients[c].n_done < s->clients[worst].n_done)
            worst = c;
    sim_fail(s, (int)current_primary(s), -1,
             "liveness: %" PRIu64
             " ms after the heal, client %u has %u of %u requests done "
             "(outstanding req %" PRIu64 ")",
             s->prm.liveness_ms, worst, s->clients[worst].n_done,
             client_total(s), s->clients[worst].outstanding);
}

static void loop(struct sim *s)
{
    uint64_t deadline = s->heal_at + s->prm.liveness_ms;

    while (!s->failed) {
        uint64_t t_timer = UINT64_MAX;
        struct sim_node *tn = NULL;
        struct sim_ev *e;

        if (s->now >= s->heal_at && clients_done(s))
            return;
        if (++s->n_events > s->prm.max_events) {
            sim_fail(s, (int)current_primary(s), -1,
                     "event budget of %" PRIu64 " exhausted at t=%" PRIu64
                     " (livelock?)",
                     s->prm.max_events, s->now - SIM_T0_MS);
            return;
        }
        if (s->now >= s->storm_window_at + 10) {
            s->storm_window_at = s->now;
            s->storm_events = 0;
        } else if (++s->storm_events > 20000) {
            sim_fail(s, (int)current_primary(s), -1,
                     "message storm: over 20000 events within 10 ms at "
                     "t=%" PRIu64,
                     s->now - SIM_T0_MS);
            return;
        }
        for (uint32_t k = 0; k < s->n_slots; k++) {
            uint64_t t = node_timer_at(s, &s->nodes[k]);

            if (t < t_timer) {
                t_timer = t;
                tn = &s->nodes[k];
            }
        }
        if (s->heap_len > 0 && s->heap[0]->at <= t_timer) {
            if (s->heap[0]->at > deadline) {
                liveness_report(s);
                return;
            }
            e = ev_pop(s);
            if (e->at > s->now)
                s->now = e->at;
            dispatch(s, e);
            ev_free(e);
        } else if (tn != NULL) {
            if (t_timer > deadline) {
                liveness_report(s);
                return;
            }
            if (t_timer > s->now)
                s->now = t_timer;
            fire_timer(s, tn);
        } else {
            liveness_report(s);
            return;
        }
    }
}

/* ---- setup -------------------------------------------------------------- */

void sim_params_for_seed(uint64_t seed, uint32_t n, struct sim_params *p)
{
    struct sim_rng r;
    static const uint32_t batches[] = {1, 2, 4, 10};
    static const uint32_t ks[] = {2, 4, 8};

    sim_rng_seed(&r, seed ^ 0x5eedf00dULL);
    memset(p, 0, sizeof(*p));
    p->seed = seed;
    p->n = n;
    p->family = (int)(seed % FAM_CYCLE);
    p->batch_max = batches[sim_rng_below(&r, 4)];
    p->batch_delay_ms = sim_rng_below(&r, 6);
    p->checkpoint_interval = ks[sim_rng_below(&r, 3)];
    p->watermark_window =
        p->checkpoint_interval * (uint32_t)sim_rng_range(&r, 2, 4);
    p->n_clients = (uint32_t)sim_rng_range(&r, 1, 5);
    p->reqs_pre = (uint32_t)sim_rng_range(&r, 3, 14);
    p->reqs_post = (uint32_t)sim_rng_range(&r, 1, 4);
    p->fault_ms = sim_rng_range(&r, 1000, 6000);
    p->liveness_ms = 60000;
    p->max_events = 400000;
}

static void node_setup(struct sim *s, struct sim_node *nd, uint32_t id,
                       uint32_t slot)
{
    const struct sim_params *p = &s->prm;
    struct pbft_config *cfg = &nd->cfg;

    nd->id = id;
    nd->slot = slot;
    pbft_config_defaults(cfg);
    cfg->n = s->n;
    cfg->self = id;
    memcpy(cfg->chain_id, s->chain_id, PBFT_CHAIN_ID_SIZE);
    memcpy(cfg->genesis_digest, s->genesis, PBFT_DIGEST_SIZE);
    cfg->batch_max = p->batch_max;
    cfg->batch_delay_ms = p->batch_delay_ms;
    cfg->checkpoint_interval = p->checkpoint_interval;
    cfg->watermark_window = p->watermark_window;
    cfg->view_timeout_ms = 500;
    cfg->view_timeout_max_ms = 4000;
    cfg->clock_skew_max_ms = 2000;
    cfg->fetch_timeout_ms = 300;
    /* Sized for the simulated clients (the defaults are sized for the
     * node and cost megabytes per core under ASan). */
    cfg->request_bytes_max = 256;
    cfg->batch_bytes_max = p->batch_max * 256;
    cfg->pending_max = 64 + 2 * s->n_clients;
    cfg->clients_max = s->n_clients + 8;
    nd->cctx.sim = s;
    nd->cctx.replica = id;
    sim_crypto_fill(&cfg->crypto, &nd->cctx);
    nd->executed = xcalloc((size_t)s->n_clients * s->req_cap, 1);
    memcpy(nd->state, s->genesis, PBFT_DIGEST_SIZE);
    if (s->skew_enabled)
        nd->skew_ms = (int64_t)sim_rng_range(&s->rng, 0, 800) - 400;
}

static void pick_distinct(struct sim *s, uint32_t count, uint32_t *out,
                          bool *taken)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t r;

        do {
            r = (uint32_t)sim_rng_below(&s->rng, s->n);
        } while (taken[r]);
        taken[r] = true;
        out[i] = r;
    }
}

static void assign_faults(struct sim *s)
{
    bool taken[SIM_MAX_N] = {false};
    uint32_t ids[SIM_MAX_N];
    uint32_t f = s->f, b;
    int fam = s->prm.family;

    s->crash_enabled = fam != FAM_NET;
    s->skew_enabled = true;
    s->wipe_enabled = fam == FAM_WIPE || fam == FAM_MIX;
    switch (fam) {
    case FAM_WIPE:
        b = (uint32_t)sim_rng_range(&s->rng, 1, f);
        pick_distinct(s, b, ids, taken);
        for (uint32_t i = 0; i < b; i++)
            s->nodes[ids[i]].amnesiac = true;
        break;
    case FAM_EQUIV:
    case FAM_SILENT: {
        /* Byzantine primaries: of the first view, or of the first views
         * after a view change (where a forged NEW-VIEW matters). */
        uint32_t first = (uint32_t)sim_rng_below(&s->rng, 2);

        b = (uint32_t)sim_rng_range(&s->rng, 1, f);
        for (uint32_t i = first; i < first + b; i++)
            s->nodes[i].byz = fam == FAM_EQUIV ? BYZ_EQUIVOCATE : BYZ_SILENT;
        break;
    }
    case FAM_VOTES:
    case FAM_SIGREPLAY:
    case FAM_FAKEVC:
        b = (uint32_t)sim_rng_range(&s->rng, 1, f);
        pick_distinct(s, b, ids, taken);
        for (uint32_t i = 0; i < b; i++)
            s->nodes[ids[i]].byz = fam == FAM_VOTES       ? BYZ_VOTES
                                   : fam == FAM_SIGREPLAY ? BYZ_SIGREPLAY
                                                          : BYZ_FAKEVC;
        break;
    case FAM_TWINS:
        s->twin_of = sim_rng_chance(&s->rng, 500)
                         ? 0
                         : (int)sim_rng_below(&s->rng, s->n);
        s->nodes[s->twin_of].byz = BYZ_TWIN;
        taken[s->twin_of] = true;
        if (f > 1 && sim_rng_chance(&s->rng, 500)) {
            pick_distinct(s, 1, ids, taken);
            s->nodes[ids[0]].byz = BYZ_EQUIVOCATE;
        }
        break;
    case FAM_MIX: {
        static const enum sim_byz kinds[] = {
            BYZ_SILENT, BYZ_EQUIVOCATE, BYZ_VOTES, BYZ_SIGREPLAY, BYZ_FAKEVC};
        uint32_t w;

        b = (uint32_t)sim_rng_range(&s->rng, 0, f);
        w = (uint32_t)sim_rng_range(&s->rng, 0, f - b);
        pick_distinct(s, b + w, ids, taken);
        for (uint32_t i = 0; i < b; i++)
            s->nodes[ids[i]].byz = kinds[sim_rng_below(&s->rng, 5)];
        for (uint32_t i = b; i < b + w; i++)
            s->nodes[ids[i]].amnesiac = true;
        break;
    }
    default:
        break;
    }
}

static void world_init(struct sim *s, const struct sim_params *prm)
{
    uint8_t buf[64];

    memset(s, 0, sizeof(*s));
    s->prm = *prm;
    sim_rng_seed(&s->rng, prm->seed * 0x9e3779b97f4a7c15ULL + prm->n);
    s->n = prm->n;
    s->f = pbft_faults(s->n);
    s->quorum = pbft_quorum(s->n);
    s->now = SIM_T0_MS;
    s->twin_of = -1;
    s->n_clients = prm->n_clients;
    s->req_cap = prm->reqs_pre + prm->reqs_post + 2;
    s->delay_min = 1;
    s->delay_max = 10;
    sim_sha256("sim-chain", 9, s->chain_id);
    sim_sha256("sim-genesis", 11, s->genesis);
    for (uint32_t r = 0; r < s->n; r++) {
        snprintf((char *)buf, sizeof(buf), "sim-replica-secret-%u", r);
        sim_sha256(buf, strlen((char *)buf), s->replica_secret[r]);
    }
    for (uint32_t c = 0; c < s->n_clients; c++) {
        struct sim_client *cl = &s->clients[c];

        snprintf((char *)buf, sizeof(buf), "sim-client-%u", c);
        sim_sha256(buf, strlen((char *)buf), cl->key);
        cl->key[0] = (uint8_t)(c >> 8); /* the index, for O(1) lookup */
        cl->key[1] = (uint8_t)c;
        snprintf((char *)buf, sizeof(buf), "sim-client-secret-%u", c);
        sim_sha256(buf, strlen((char *)buf), cl->secret);
        cl->next_req_no = 1;
    }
}

static void world_free(struct sim *s)
{
    for (uint32_t k = 0; k < s->n_slots; k++) {
        struct sim_node *nd = &s->nodes[k];

        pbft_free(nd->core);
        nd->core = NULL;
        store_wipe(nd);
        app_wipe(s, nd);
        free(nd->executed);
        sim_byz_forget(nd);
    }
    while (s->heap_len > 0)
        ev_free(ev_pop(s));
    free(s->heap);
    free(s->agree);
    free(s->sent);
}

static void print_failure(struct sim *s)
{
    printf("SEED=%" PRIu64 " NODES=%u FAMILY=%s: %s\n", s->prm.seed, s->n,
           sim_family_name(s->prm.family), s->why);
    printf("  replay: make sim SEED=%" PRIu64 " NODES=%u   "
           "(trace: build/asan/bin/sim --seed %" PRIu64
           " --nodes %u --trace)\n",
           s->prm.seed, s->n, s->prm.seed, s->n);
    printf("  t=%" PRIu64 " ms, %" PRIu64 " events; byzantine:",
           s->now - SIM_T0_MS, s->n_events);
    for (uint32_t k = 0; k < s->n_slots; k++)
        if (s->nodes[k].byz != BYZ_NONE || s->nodes[k].amnesiac)
            printf(" r%u(%s)", s->nodes[k].id,
                   s->nodes[k].amnesiac ? "amnesiac" : "byz");
    printf("\n");
    for (int i = 0; i < 2; i++) {
        int r = s->suspects[i];

        if (r < 0 || (uint32_t)r >= s->n)
            continue;
        for (uint32_t k = 0; k < s->n_slots; k++) {
            struct sim_node *nd = &s->nodes[k];
            uint32_t start;

            if (nd->id != (uint32_t)r)
                continue;
            printf("  --- last %u trace lines of r%u ---\n", nd->trace_count,
                   nd->id);
            start = (nd->trace_head + SIM_TRACE_RING - nd->trace_count) %
                    SIM_TRACE_RING;
            for (uint32_t j = 0; j < nd->trace_count; j++)
                printf("  %s\n", nd->trace[(start + j) % SIM_TRACE_RING]);
        }
    }
    fflush(stdout);
}

static void run_world(struct sim *s)
{
    struct sim_ev *e;

    s->n_slots = s->n;
    for (uint32_t r = 0; r < s->n; r++)
        node_setup(s, &s->nodes[r], r, r);
    if (!s->prm.cost_mode)
        assign_faults(s);
    if (s->twin_of >= 0) {
        /* the twin copy lives in slot n; each other replica picks a side */
        struct sim_node *t = &s->nodes[s->n];

        node_setup(s, t, (uint32_t)s->twin_of, s->n);
        t->skew_ms = s->nodes[s->twin_of].skew_ms;
        t->byz = BYZ_TWIN;
        t->twin_side = 1;
        s->n_slots = s->n + 1;
        for (uint32_t r = 0; r < s->n; r++)
            if (r != (uint32_t)s->twin_of)
                s->nodes[r].twin_side = (uint32_t)sim_rng_below(&s->rng, 2);
    }
    for (uint32_t k = 0; k < s->n_slots; k++)
        if (s->nodes[k].byz == BYZ_FAKEVC)
            s->nodes[k].cctx.accept_all = true; /* it believes anything */
    if (s->prm.cost_mode) {
        s->heal_at = s->now;
        s->faults_active = false;
    } else {
        s->heal_at = s->now + s->prm.fault_ms;
        s->faults_active = true;
        e = ev_new(s, EV_FAULT, s->now + sim_rng_range(&s->rng, 20, 200));
        ev_push(s, e);
        ev_push(s, ev_new(s, EV_HEAL, s->heal_at));
    }
    for (uint32_t k = 0; k < s->n_slots && !s->failed; k++) {
        node_boot(s, &s->nodes[k]);
        if (s->nodes[k].byz != BYZ_NONE && s->nodes[k].byz != BYZ_SILENT) {
            e = ev_new(s, EV_BYZ_TICK,
                       s->now + sim_rng_range(&s->rng, 50, 300));
            e->slot = k;
            ev_push(s, e);
        }
    }
    for (uint32_t c = 0; c < s->n_clients; c++)
        client_arm(s, c,
                   s->now +
                       (s->prm.cost_mode ? 0 : sim_rng_below(&s->rng, 100)));
    loop(s);
}

static uint64_t max_view_changes(struct sim *s)
{
    uint64_t v = 0;

    for (uint32_t k = 0; k < s->n_slots; k++) {
        struct pbft_status st;

        if (!s->nodes[k].alive || s->nodes[k].core == NULL)
            continue;
        pbft_get_status(s->nodes[k].core, &st);
        if (st.view_changes > v)
            v = st.view_changes;
    }
    return v;
}

void sim_run(const struct sim_params *prm, struct sim_result *res,
             bool print_failure_report)
{
    struct sim *s;

    if (prm->family == FAM_RECONFIG) {
        sim_reconfig_run(prm, res, print_failure_report);
        return;
    }
    s = xcalloc(1, sizeof(*s));
    world_init(s, prm);
    run_world(s);
    res->ok = !s->failed;
    res->events = s->n_events;
    res->sim_ms = s->now - SIM_T0_MS;
    res->view_changes = max_view_changes(s);
    snprintf(res->why, sizeof(res->why), "%s", s->why);
    if (s->failed && print_failure_report)
        print_failure(s);
    if (s->stmt_drift > 0) {
        static bool warned;

        if (!warned)
            printf("sim: warning: the core's VIEW-CHANGE/NEW-VIEW statement "
                   "framing no longer matches tests/sim/sim_stmt.c; forged "
                   "view changes only test signatures now\n");
        warned = true;
    }
    world_free(s);
    free(s);
}

bool sim_cost_run(uint32_t n, uint32_t batch, uint32_t k, struct sim_cost *out)
{
    struct sim_params p;
    struct sim *s = xcalloc(1, sizeof(*s));
    uint32_t rounds = batch >= 100 ? 32 : batch >= 10 ? 64 : 256;
    bool ok;

    memset(&p, 0, sizeof(p));
    p.seed = 1;
    p.n = n;
    p.family = FAM_NET;
    p.batch_max = batch;
    p.batch_delay_ms = batch > 1 ? 1 : 0;
    p.checkpoint_interval = k;
    p.watermark_window = k * 4 > 64 ? k * 4 : 64;
    p.n_clients = batch;
    p.reqs_pre = 0;
    p.reqs_post = rounds;
    p.liveness_ms = 10000000;
    p.max_events = 50000000;
    p.cost_mode = true;
    p.unit_delay_ms = 10;
    world_init(s, &p);
    run_world(s);
    ok = !s->failed;
    if (!ok)
        print_failure(s);
    memset(out, 0, sizeof(*out));
    out->requests = s->reqs_committed;
    if (s->reqs_committed > 0) {
        double q = (double)s->reqs_committed;

        out->msgs_per_req = (double)s->msgs_sent / q;
        out->client_msgs_per_req = (double)s->msgs_client / q;
        for (int t = 0; t <= PBFT_MSG_TYPE_MAX; t++)
            out->by_type_per_req[t] = (double)s->msgs_by_type[t] / q;
        out->sigops_per_req = (double)(s->sign_ops + s->verify_ops) / q;
        out->req_verifies_per_req = (double)s->verify_req_ops / q;
        out->latency_delays = (double)s->latency_sum_ms / (double)s->latency_n /
                              (double)p.unit_delay_ms;
    }
    world_free(s);
    free(s);
    return ok && out->requests > 0;
}
