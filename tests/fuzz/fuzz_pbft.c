/*
 * fuzz_pbft.c - the consensus core fed arbitrary event sequences.
 *
 * The input drives one replica of four (which one, and K, come from the
 * first bytes) through up to FUZZ_EVENTS events: messages from the other
 * replicas built field by field from the input, client requests, timers,
 * executions and state transfers. Crypto is fake (signature = SHA-256 of
 * signer id || statement) and the input decides, per message, whether it is
 * signed properly, so both the signature checks and what lies behind them
 * are reached; "vote" events echo the replica's own proposals back, signed
 * by the others, so runs commit.
 *
 * Invariants: no crash, no sanitizer report, no assert; pbft_step never
 * aborts; view, stable checkpoint and executed seq never go back; a seq is
 * handed out for execution at most once and in increasing order; primary =
 * view mod n; every message and record the core emits encodes (codec) and
 * every message decodes back under the replica's own limits.
 * FUZZ_VERBOSE=1 prints the status after every event.
 */
#include "byz.h"
#include "codec.h"

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N           4
#define FUZZ_EVENTS 200
#define MAX_REQS    3
#define MAX_VOTES   5
#define MAX_CERTS   2
#define DATA_MAX    24
/* request storage: the message, each prepared cert, each NEW-VIEW pp */
#define REQ_SLOTS (1 + N * MAX_CERTS + MAX_CERTS)

struct in {
    const uint8_t *p;
    size_t left;
};

static uint8_t u8(struct in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static uint64_t u64(struct in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(in);
    return v;
}

/* Mostly small numbers (near the action), sometimes anything. */
static uint64_t num(struct in *in, uint64_t base)
{
    uint8_t b = u8(in);
    if (b == 0xff)
        return u64(in);
    if (b >= 0xf0)
        return base > (uint64_t)(b & 0x0f) ? base - (b & 0x0f) : 0;
    return base + (b % 24);
}

/* A driver's lie about what it executed or installed: near the truth,
 * never near 2^64 (no replica runs that long; build/fuzz/findings notes
 * what the core does with h + L == 2^64 - 1). */
static uint64_t lie(struct in *in, uint64_t base)
{
    return base + (u8(in) % 64) - (base >= 32 ? 32 : base);
}

/* ---- fake crypto ------------------------------------------------------- */

static void fz_hash(void *ctx, const uint8_t *d, size_t len,
                    uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    crypto_hash_sha256(out, d, len);
}

static void fz_sig(uint32_t id, const uint8_t *msg, size_t len,
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

static void fz_sign(void *ctx, const uint8_t *msg, size_t len,
                    uint8_t sig[PBFT_SIG_SIZE])
{
    fz_sig(*(const uint32_t *)ctx, msg, len, sig);
}

static bool fz_verify(void *ctx, uint32_t replica, const uint8_t *msg,
                      size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    (void)ctx;
    uint8_t want[PBFT_SIG_SIZE];
    fz_sig(replica, msg, len, want);
    return memcmp(want, sig, PBFT_SIG_SIZE) == 0;
}

/* A request is validly signed when its data starts with 'R'. */
static bool fz_verify_request(void *ctx, const struct pbft_request *req)
{
    (void)ctx;
    return req->len >= 1 && req->data != NULL && req->data[0] == 'R';
}

/* ---- the run ---------------------------------------------------------- */

struct run {
    struct pbft *p;
    struct pbft_config cfg;
    struct codec_limits lim;
    uint32_t self_id;
    uint64_t now;
    uint8_t chain[PBFT_CHAIN_ID_SIZE];
    /* what the replica last proposed or certified, for echoes */
    struct pbft_vote last_pp;
    bool has_pp;
    pbft_seq exec_queue[64];
    uint32_t n_exec_queue;
    pbft_seq last_exec_seq;
    pbft_seq stop_seq; /* pbft_set_stop() before start, or UINT64_MAX */
    struct pbft_checkpoint_cert fetch_cert;
    struct pbft_vote fetch_votes[N];
    bool has_fetch;
    struct pbft_status st;
    /* storage for one message under construction */
    struct pbft_request reqs[REQ_SLOTS][MAX_REQS];
    uint8_t req_data[REQ_SLOTS][MAX_REQS][DATA_MAX];
    struct pbft_vote stable_votes[N][MAX_VOTES];
    struct pbft_vote prep_votes[N][MAX_CERTS][N];
    struct pbft_prepared_cert certs[N][MAX_CERTS];
    bool driver_lied; /* fed EXECUTED/TRANSFERRED the core never asked for */
    struct pbft_view_change vcs[N];
    struct pbft_preprepare pps[MAX_CERTS];
};

static void exec_digest(pbft_seq seq, uint8_t d[PBFT_DIGEST_SIZE])
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(seq >> (56 - 8 * i));
    crypto_hash_sha256(d, b, sizeof(b));
}

static void sign_vote(struct run *r, enum pbft_msg_type type,
                      struct pbft_vote *v, bool good, struct in *in)
{
    if (!good) {
        for (int i = 0; i < PBFT_SIG_SIZE; i += 8) {
            uint64_t x = u64(in);
            memcpy(v->sig + i, &x, 8);
        }
        return;
    }
    uint8_t stmt[PBFT_VOTE_STATEMENT_MAX];
    size_t len = pbft_vote_statement(type, r->chain, v, stmt, sizeof(stmt));
    fz_sig(v->replica, stmt, len, v->sig);
}

static void pick_digest(struct run *r, struct in *in,
                        uint8_t d[PBFT_DIGEST_SIZE])
{
    switch (u8(in) % 4) {
    case 0:
        memcpy(d, r->last_pp.digest, PBFT_DIGEST_SIZE);
        break;
    case 1:
        exec_digest(num(in, r->st.last_executed), d);
        break;
    case 2:
        memcpy(d, r->cfg.genesis_digest, PBFT_DIGEST_SIZE);
        break;
    default:
        memset(d, u8(in), PBFT_DIGEST_SIZE);
        break;
    }
}

static void build_vote(struct run *r, struct in *in, enum pbft_msg_type type,
                       uint32_t from, struct pbft_vote *v)
{
    memset(v, 0, sizeof(*v));
    uint8_t flags = u8(in);
    v->replica = (flags & 0x80) ? u8(in) % (N + 1) : from;
    v->view = type == PBFT_MSG_CHECKPOINT ? 0 : num(in, r->st.view);
    v->seq = num(in, r->st.last_executed);
    pick_digest(r, in, v->digest);
    if (type == PBFT_MSG_PREPREPARE)
        v->timestamp_ms = (flags & 0x20) ? u64(in) : r->now;
    sign_vote(r, type, v, (flags & 0x40) == 0, in);
}

static uint32_t build_requests(struct run *r, struct in *in, uint32_t slot)
{
    uint32_t n = u8(in) % (MAX_REQS + 1);
    for (uint32_t i = 0; i < n; i++) {
        struct pbft_request *q = &r->reqs[slot][i];
        memset(q, 0, sizeof(*q));
        q->client[0] = u8(in) % 4;
        q->req_no = num(in, 1);
        q->len = u8(in) % DATA_MAX;
        for (uint32_t k = 0; k < q->len; k++)
            r->req_data[slot][i][k] = u8(in);
        if (q->len > 0 && (r->req_data[slot][i][0] & 1) == 0)
            r->req_data[slot][i][0] = 'R';
        q->data = r->req_data[slot][i];
    }
    return n;
}

static void build_pp(struct run *r, struct in *in, uint32_t from,
                     struct pbft_preprepare *pp, uint32_t slot)
{
    pp->n_requests = build_requests(r, in, slot);
    pp->requests = r->reqs[slot];
    build_vote(r, in, PBFT_MSG_PREPREPARE, from, &pp->hdr);
    if ((u8(in) & 3) != 0) {
        pbft_batch_digest(&r->cfg.crypto, pp->requests, pp->n_requests,
                          pp->hdr.digest);
        sign_vote(r, PBFT_MSG_PREPREPARE, &pp->hdr, true, in);
    }
}

static void build_cert(struct run *r, struct in *in,
                       struct pbft_checkpoint_cert *c, uint32_t k)
{
    c->seq = num(in, r->st.stable_seq);
    exec_digest(c->seq, c->digest);
    c->n_votes = u8(in) % MAX_VOTES;
    c->votes = r->stable_votes[k];
    for (uint32_t i = 0; i < c->n_votes; i++) {
        build_vote(r, in, PBFT_MSG_CHECKPOINT, i, &c->votes[i]);
        c->votes[i].seq = c->seq;
        memcpy(c->votes[i].digest, c->digest, PBFT_DIGEST_SIZE);
        sign_vote(r, PBFT_MSG_CHECKPOINT, &c->votes[i], true, in);
    }
}

static void build_vc(struct run *r, struct in *in, uint32_t from,
                     struct pbft_view_change *vc, uint32_t k)
{
    memset(vc, 0, sizeof(*vc));
    vc->replica = from;
    vc->new_view = num(in, r->st.view + 1);
    build_cert(r, in, &vc->stable, k);
    vc->n_prepared = u8(in) % (MAX_CERTS + 1);
    vc->prepared = r->certs[k];
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        struct pbft_prepared_cert *pc = &r->certs[k][i];
        build_pp(r, in, vc->new_view % N, &pc->pp, 1 + k * MAX_CERTS + i);
        pc->n_prepares = u8(in) % N;
        pc->prepares = r->prep_votes[k][i];
        for (uint32_t j = 0; j < pc->n_prepares; j++) {
            struct pbft_vote *v = &r->prep_votes[k][i][j];
            *v = pc->pp.hdr;
            v->replica = j + 1;
            v->timestamp_ms = 0;
            sign_vote(r, PBFT_MSG_PREPARE, v, true, in);
        }
    }
    struct byz_params bp;
    memset(&bp, 0, sizeof(bp));
    memcpy(bp.chain_id, r->chain, sizeof(bp.chain_id));
    uint32_t signer = from;
    bp.crypto = r->cfg.crypto;
    bp.crypto.ctx = &signer;
    if ((u8(in) & 7) != 0)
        byz_sign_view_change(&bp, vc);
}

static void build_msg(struct run *r, struct in *in, uint32_t from,
                      struct pbft_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = (enum pbft_msg_type)(u8(in) % PBFT_MSG_TYPE_MAX + 1);
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        if (build_requests(r, in, 0) > 0)
            m->u.request = r->reqs[0][0];
        break;
    case PBFT_MSG_PREPREPARE:
        build_pp(r, in, from, &m->u.pp, 0);
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        build_vote(r, in, m->type, from, &m->u.vote);
        break;
    case PBFT_MSG_VIEW_CHANGE:
        build_vc(r, in, from, &m->u.vc, 0);
        break;
    case PBFT_MSG_NEW_VIEW: {
        struct pbft_new_view *nv = &m->u.nv;
        nv->replica = from;
        nv->view = num(in, r->st.view + 1);
        nv->n_view_changes = u8(in) % (N + 1);
        nv->view_changes = r->vcs;
        for (uint32_t i = 0; i < nv->n_view_changes; i++)
            build_vc(r, in, i, &r->vcs[i], i);
        nv->n_preprepares = u8(in) % (MAX_CERTS + 1);
        nv->preprepares = r->pps;
        for (uint32_t i = 0; i < nv->n_preprepares; i++)
            build_pp(r, in, from, &r->pps[i], 1 + N * MAX_CERTS + i);
        for (int i = 0; i < PBFT_SIG_SIZE; i++)
            nv->sig[i] = u8(in);
        break;
    }
    case PBFT_MSG_FETCH:
        m->u.fetch.replica = from;
        m->u.fetch.seq = num(in, 0);
        for (int i = 0; i < PBFT_SIG_SIZE; i++)
            m->u.fetch.sig[i] = u8(in);
        break;
    }
}

/* What the replica handed out: everything readable, encodable, sane. */
static void check_ready(struct run *r, const struct pbft_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_msgs; i++) {
        const struct pbft_msg *m = rd->msgs[i].msg;
        uint8_t *buf = NULL;
        size_t len = 0;
        struct pbft_msg *back = NULL;
        LG_ASSERT(rd->msgs[i].to == PBFT_BROADCAST || rd->msgs[i].to < N);
        LG_ASSERT(codec_encode_msg(m, &buf, &len) == LG_OK);
        LG_ASSERT(codec_decode_msg(buf, len, &r->lim, &back) == LG_OK);
        codec_msg_free(back);
        free(buf);
        if (m->type == PBFT_MSG_PREPREPARE) {
            r->last_pp = m->u.pp.hdr;
            r->has_pp = true;
        }
    }
    for (uint32_t i = 0; i < rd->n_persist; i++) {
        const struct pbft_record *rec = &rd->persist[i];
        if (rec->type == PBFT_REC_GC)
            continue;
        uint8_t *buf = NULL;
        size_t len = 0;
        LG_ASSERT(codec_encode_record(rec, &buf, &len) == LG_OK);
        free(buf);
    }
    for (uint32_t i = 0; i < rd->n_execute; i++) {
        const struct pbft_execute *e = &rd->execute[i];
        /* once each, in order (while the driver kept its contract), never
         * beyond a stop */
        LG_ASSERT(r->driver_lied || e->seq > r->last_exec_seq);
        LG_ASSERT(r->driver_lied || e->seq <= r->stop_seq);
        r->last_exec_seq = e->seq;
        if (r->n_exec_queue < 64)
            r->exec_queue[r->n_exec_queue++] = e->seq;
        for (uint32_t k = 0; k < e->n_requests; k++)
            LG_ASSERT(e->requests[k].len == 0 || e->requests[k].data != NULL);
    }
    if (rd->fetch != NULL && rd->fetch->cert != NULL) {
        const struct pbft_checkpoint_cert *c = rd->fetch->cert;
        r->fetch_cert = *c;
        r->fetch_cert.n_votes = c->n_votes < N ? c->n_votes : N;
        memcpy(r->fetch_votes, c->votes,
               r->fetch_cert.n_votes * sizeof(*c->votes));
        r->fetch_cert.votes = r->fetch_votes;
        r->has_fetch = true;
    }
    for (uint32_t i = 0; i < rd->n_trace; i++)
        LG_ASSERT(rd->trace[i].line != NULL);
}

static void step(struct run *r, const struct pbft_event *ev)
{
    struct pbft_ready rd;
    memset(&rd, 0, sizeof(rd));
    (void)pbft_step(r->p, ev, &rd);
    check_ready(r, &rd);
    pbft_advance(r->p);

    struct pbft_status st;
    pbft_get_status(r->p, &st);
    LG_ASSERT(st.view >= r->st.view);
    LG_ASSERT(st.stable_seq >= r->st.stable_seq);
    LG_ASSERT(st.last_executed >= r->st.last_executed);
    LG_ASSERT(st.primary == st.view % N);
    /* h + L may wrap only after the driver installed a state it was never
     * asked for (the core trusts STATE_TRANSFERRED) */
    LG_ASSERT(r->driver_lied || st.high_watermark >= st.stable_seq);
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr,
                "ev %d: view %llu h %llu executed %llu committed %llu%s\n",
                (int)ev->type, (unsigned long long)st.view,
                (unsigned long long)st.stable_seq,
                (unsigned long long)st.last_executed,
                (unsigned long long)st.last_committed,
                r->driver_lied ? " (driver lied)" : "");
    r->st = st;
}

/* The other replicas vote for the replica's last proposal or for the
 * checkpoint it last executed: properly signed, so runs make progress. */
static void echo_votes(struct run *r, struct in *in)
{
    uint8_t b = u8(in);
    struct pbft_msg m = {.type = PBFT_MSG_PREPARE + b % 3};
    if (m.type == PBFT_MSG_CHECKPOINT) {
        m.u.vote.seq = r->st.last_executed;
        exec_digest(m.u.vote.seq, m.u.vote.digest);
    } else {
        if (!r->has_pp)
            return;
        m.u.vote = r->last_pp;
        m.u.vote.timestamp_ms = 0;
    }
    for (uint32_t from = 0; from < N; from++) {
        if (from == r->cfg.self || ((b >> 4) & (1u << from)) != 0)
            continue;
        m.u.vote.replica = from;
        sign_vote(r, m.type, &m.u.vote, true, in);
        struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = r->now};
        ev.u.receive.from = from;
        ev.u.receive.msg = &m;
        step(r, &ev);
    }
}

static void one_event(struct run *r, struct in *in)
{
    struct pbft_event ev = {.now_ms = r->now};
    struct pbft_msg m;
    uint8_t op = u8(in);
    switch (op % 8) {
    case 0:
    case 1: {
        uint32_t from = u8(in) % N;
        build_msg(r, in, from, &m);
        ev.type = PBFT_EV_RECEIVE;
        ev.u.receive.from = from;
        ev.u.receive.msg = &m;
        if (pbft_wants(r->p, from, m.type, m.u.vote.view, m.u.vote.seq) ||
            (op & 0x80))
            step(r, &ev);
        return;
    }
    case 2:
        if (build_requests(r, in, 0) == 0)
            return;
        ev.type = PBFT_EV_REQUEST;
        ev.u.request = &r->reqs[0][0];
        step(r, &ev);
        return;
    case 3: {
        uint64_t d = pbft_deadline_ms(r->p);
        r->now = d != UINT64_MAX && d > r->now ? d : r->now + 1;
        ev.type = PBFT_EV_TIMEOUT;
        ev.now_ms = r->now;
        step(r, &ev);
        return;
    }
    case 4:
        ev.type = PBFT_EV_EXECUTED;
        if (r->n_exec_queue > 0 && (op & 0x80) == 0) {
            ev.u.executed.seq = r->exec_queue[0];
            memmove(r->exec_queue, r->exec_queue + 1,
                    --r->n_exec_queue * sizeof(r->exec_queue[0]));
        } else {
            ev.u.executed.seq = lie(in, r->st.last_executed);
            r->driver_lied = true;
        }
        exec_digest(ev.u.executed.seq, ev.u.executed.digest);
        step(r, &ev);
        return;
    case 5:
        ev.type = PBFT_EV_STATE_TRANSFERRED;
        if (r->has_fetch && (op & 0x80) == 0) {
            ev.u.transferred.seq = r->fetch_cert.seq;
            memcpy(ev.u.transferred.digest, r->fetch_cert.digest,
                   PBFT_DIGEST_SIZE);
        } else {
            ev.u.transferred.seq = lie(in, r->st.last_executed);
            r->driver_lied = true;
            exec_digest(ev.u.transferred.seq, ev.u.transferred.digest);
        }
        r->n_exec_queue = 0;
        step(r, &ev);
        return;
    case 6:
        echo_votes(r, in);
        return;
    default:
        r->now += (uint64_t)u8(in) * 16;
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        LG_ASSERT(sodium_init() >= 0);
        ready = true;
    }
    struct in in = {.p = data, .left = size};
    struct run *r = calloc(1, sizeof(*r));
    LG_ASSERT(r != NULL);
    uint8_t hdr = u8(&in);
    pbft_config_defaults(&r->cfg);
    r->cfg.n = N;
    r->cfg.self = hdr % N;
    r->self_id = r->cfg.self;
    memset(r->chain, 0xc1, sizeof(r->chain));
    memcpy(r->cfg.chain_id, r->chain, sizeof(r->chain));
    memset(r->cfg.genesis_digest, 0, PBFT_DIGEST_SIZE);
    r->cfg.batch_max = MAX_REQS;
    r->cfg.batch_bytes_max = 4096;
    r->cfg.request_bytes_max = DATA_MAX;
    r->cfg.batch_delay_ms = 5;
    r->cfg.checkpoint_interval = (hdr & 0x10) ? 2 : 1;
    r->cfg.watermark_window = 4 * r->cfg.checkpoint_interval;
    r->cfg.pending_max = 8;
    r->cfg.clients_max = 4;
    r->cfg.view_timeout_ms = 100;
    r->cfg.view_timeout_max_ms = 800;
    r->cfg.clock_skew_max_ms = 500;
    r->cfg.fetch_timeout_ms = 100;
    r->cfg.crypto.ctx = &r->self_id;
    r->cfg.crypto.hash = fz_hash;
    r->cfg.crypto.sign = fz_sign;
    r->cfg.crypto.verify = fz_verify;
    r->cfg.crypto.verify_request = fz_verify_request;
    /* a later epoch of a reconfigured chain, maybe ending soon */
    if (hdr & 0x20) {
        r->cfg.base_seq = 64 * (pbft_seq)r->cfg.checkpoint_interval;
        r->cfg.initial_view = hdr >> 7;
    }
    r->stop_seq = UINT64_MAX;
    if (hdr & 0x40)
        r->stop_seq = r->cfg.base_seq + 2 * r->cfg.checkpoint_interval;
    codec_limits_from_config(&r->cfg, &r->lim);
    const char *why = NULL;
    r->p = pbft_new(&r->cfg, &why);
    LG_ASSERT(r->p != NULL);
    r->now = 1000;

    struct pbft_ready rd;
    memset(&rd, 0, sizeof(rd));
    if (r->stop_seq != UINT64_MAX)
        LG_ASSERT(pbft_set_stop(r->p, r->stop_seq) == PBFT_OK);
    LG_ASSERT(pbft_start(r->p, r->cfg.base_seq, r->cfg.genesis_digest, r->now,
                         &rd) == PBFT_OK);
    check_ready(r, &rd);
    pbft_advance(r->p);
    pbft_get_status(r->p, &r->st);

    for (int i = 0; i < FUZZ_EVENTS && in.left > 0; i++)
        one_event(r, &in);
    pbft_free(r->p);
    free(r);
    return 0;
}
