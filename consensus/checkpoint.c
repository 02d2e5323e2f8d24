/*
 * checkpoint.c - checkpoints, the stable checkpoint, block certificates and
 * state transfer.
 *
 * Each replica's latest R checkpoint votes are kept (by (seq/K) mod R), even
 * beyond the window, so a replica far behind sees a quorum for a seq past
 * its window and fetches state. Certificates leave in ready.certified in
 * increasing seq, one per checkpoint seq: a seq this replica executed is
 * never skipped (FETCH asks peers to resend votes that were lost).
 */
#include "internal.h"

#include <string.h>

static struct pbft_vote *ring(struct pbft *p, uint32_t r, pbft_seq seq)
{
    PBFT_ASSERT(r < p->n);
    return &p->ckpt[(size_t)r * p->R + (size_t)((seq / p->K) % p->R)];
}

void checkpoint_store_own(struct pbft *p, const struct pbft_vote *v)
{
    struct pbft_vote *slot = ring(p, v->replica, v->seq);

    if (slot->seq < v->seq)
        *slot = *v;
}

/* Collects a certificate for (seq, digest) from the rings into
 * p->scratch_cert; false without a quorum. */
static bool tally(struct pbft *p, pbft_seq seq,
                  const uint8_t digest[PBFT_DIGEST_SIZE])
{
    struct pbft_checkpoint_cert *c = &p->scratch_cert.cert;

    c->seq = seq;
    memcpy(c->digest, digest, PBFT_DIGEST_SIZE);
    c->n_votes = 0;
    c->votes = p->scratch_cert.votes;
    for (uint32_t r = 0; r < p->n && c->n_votes < p->q; r++) {
        const struct pbft_vote *v = ring(p, r, seq);

        if (v->seq == seq && memcmp(v->digest, digest, PBFT_DIGEST_SIZE) == 0)
            c->votes[c->n_votes++] = *v;
    }
    return c->n_votes >= p->q;
}

/* Any certificate for seq (whatever digest a quorum agrees on). */
static bool tally_any(struct pbft *p, pbft_seq seq)
{
    if (seq == p->stable.cert.seq && seq > p->cfg.base_seq) {
        p->scratch_cert.cert = p->stable.cert;
        p->scratch_cert.cert.votes = p->scratch_cert.votes;
        if (p->stable.cert.n_votes > 0)
            memcpy(p->scratch_cert.votes, p->stable.cert.votes,
                   (size_t)p->stable.cert.n_votes * sizeof(struct pbft_vote));
        return true;
    }
    for (uint32_t r = 0; r < p->n; r++) {
        const struct pbft_vote *v = ring(p, r, seq);

        if (v->seq == seq && tally(p, seq, v->digest))
            return true;
    }
    return false;
}

static void emit_certified_loop(struct pbft *p)
{
    for (uint32_t i = 0; i < p->R + p->L; i++) {
        pbft_seq next = p->last_certified + p->K;
        bool behind = next <= p->h && next > p->exec_queued;
        bool evicted = p->h >= next && p->h - next >= (pbft_seq)p->R * p->K;
        /* The epoch is over and its last checkpoint stable: no later one
         * will push the window on, so what has not formed below it is
         * skipped now (the stop's certificate covers the chain before). */
        bool ended = p->stopped && p->h >= p->stop_seq && next < p->h;

        if (tally_any(p, next)) {
            if (!ready_certified(p, &p->scratch_cert.cert))
                return; /* out of room this step; resumes next step */
            trace(p, "certified n=%llu", (unsigned long long)next);
        } else if (!behind && !evicted && !ended) {
            return;
        }
        /* A seq we never executed (state transfer covers it) or whose
         * votes are gone is skipped. */
        p->last_certified = next;
    }
}

static void emit_certified(struct pbft *p)
{
    emit_certified_loop(p);
    if (p->last_certified + p->K > p->last_executed)
        p->cert_gap_since = 0; /* nothing executed is waiting */
}

static void start_fetch(struct pbft *p)
{
    p->fetching = true;
    p->fetch_seq = p->h;
    p->fetch_deadline = p->now + p->cfg.fetch_timeout_ms;
    ready_fetch(p);
    trace(p, "fetch state n=%llu", (unsigned long long)p->h);
}

static void make_stable(struct pbft *p, const struct pbft_checkpoint_cert *c)
{
    PBFT_ASSERT(c->seq > p->h);
    PBFT_ASSERT(c->n_votes <= p->n);
    p->stable.cert = *c;
    p->stable.cert.votes = p->stable.votes;
    if (c->n_votes > 0) /* votes may be NULL then (memcpy UB) */
        memcpy(p->stable.votes, c->votes,
               (size_t)c->n_votes * sizeof(*c->votes));
    p->h = c->seq;
    log_gc(p, p->h);
    PBFT_ASSERT(p->slots[p->h % p->L].seq == 0 ||
                p->slots[p->h % p->L].seq > p->h); /* GC'd up to h */
    if (p->last_assigned < p->h)
        p->last_assigned = p->h;
    ready_persist_meta(p);
    ready_persist_gc(p, p->h);
    trace(p, "stable n=%llu", (unsigned long long)p->h);
    {
        const struct pbft_vote *own = ring(p, p->cfg.self, p->h);

        /* Our application computed another state for the same batches:
         * it is not deterministic. Say so loudly; the quorum decides. */
        if (own->seq == p->h &&
            memcmp(own->digest, c->digest, PBFT_DIGEST_SIZE) != 0)
            trace(p, "STATE DIVERGED at n=%llu", (unsigned long long)p->h);
    }
    if (p->h > p->exec_queued)
        start_fetch(p);
    request_cut_batches(p);
}

void checkpoint_adopt_stable(struct pbft *p,
                             const struct pbft_checkpoint_cert *c)
{
    if (c->seq <= p->h)
        return;
    make_stable(p, c);
    emit_certified(p);
}

int checkpoint_receive(struct pbft *p, uint32_t from, const struct pbft_vote *v)
{
    struct pbft_vote *slot;

    (void)from; /* votes may be relayed (FETCH answers); the key decides */
    if (v->replica >= p->n || v->replica == p->cfg.self || v->view != 0 ||
        v->seq <= p->cfg.base_seq || v->seq % p->K != 0)
        return pbft_drop(p, PBFT_EBADMSG, "checkpoint");
    if (v->seq <= p->last_certified && v->seq <= p->h)
        return pbft_drop(p, PBFT_ESTALE, "old checkpoint");
    slot = ring(p, v->replica, v->seq);
    if (slot->seq >= v->seq)
        return pbft_drop(p, PBFT_ESTALE, "duplicate checkpoint");
    if (!sig_vote_verify(p, PBFT_MSG_CHECKPOINT, v))
        return pbft_drop(p, PBFT_EBADSIG, "checkpoint signature");
    *slot = *v;
    trace(p, "recv CHECKPOINT n=%llu from r%u", (unsigned long long)v->seq,
          (unsigned)v->replica);
    if (tally(p, v->seq, v->digest) && v->seq > p->h)
        make_stable(p, &p->scratch_cert.cert);
    emit_certified(p);
    return PBFT_OK;
}

/* Signs, persists and broadcasts our CHECKPOINT vote for seq. */
static void own_vote(struct pbft *p, pbft_seq seq,
                     const uint8_t digest[PBFT_DIGEST_SIZE])
{
    struct pbft_vote v;
    struct pbft_msg *m;

    PBFT_ASSERT(seq % p->K == 0);
    PBFT_ASSERT(seq > p->cfg.base_seq);
    memset(&v, 0, sizeof(v));
    v.replica = p->cfg.self;
    v.seq = seq;
    memcpy(v.digest, digest, PBFT_DIGEST_SIZE);
    sig_vote_sign(p, PBFT_MSG_CHECKPOINT, &v);
    checkpoint_store_own(p, &v);
    m = ready_msg(p, PBFT_MSG_CHECKPOINT);
    PBFT_ASSERT(m != NULL);
    m->u.vote = v;
    ready_persist_msg(p, m, seq, 0, p->cfg.self);
    ready_send(p, PBFT_BROADCAST, m);
    trace(p, "send CHECKPOINT n=%llu", (unsigned long long)seq);
    if (tally(p, seq, digest) && seq > p->h)
        make_stable(p, &p->scratch_cert.cert);
    emit_certified(p);
}

int checkpoint_executed(struct pbft *p, pbft_seq seq,
                        const uint8_t digest[PBFT_DIGEST_SIZE])
{
    if (seq <= p->last_executed || seq > p->exec_queued)
        return pbft_drop(p, PBFT_EINVAL, "executed out of order");
    p->last_executed = seq;
    PBFT_ASSERT(p->last_executed <= p->exec_queued);
    memcpy(p->last_exec_digest, digest, PBFT_DIGEST_SIZE);
    if (p->cert_gap_since == 0)
        p->cert_gap_since = p->now + 1;
    if (seq % p->K == 0)
        own_vote(p, seq, digest);
    return PBFT_OK;
}

/* ---- the end of an epoch (pbft_set_stop) ------------------------------- */

static void answer_vote(struct pbft *p, uint32_t to, const struct pbft_vote *v);
static void send_fetch(struct pbft *p, pbft_seq seq);

static bool has_own_stop_vote(struct pbft *p)
{
    return ring(p, p->cfg.self, p->stop_seq)->seq == p->stop_seq;
}

/* pbft_start() of a stopped core: the driver executed the stop seq but our
 * vote for it never became durable (a crash before EXECUTED was fed). */
void checkpoint_stop_start(struct pbft *p)
{
    PBFT_ASSERT(p->stopped);
    PBFT_ASSERT(p->last_executed <= p->stop_seq);
    p->stop_resend_at = p->now;
    if (p->last_executed == p->stop_seq && p->stop_seq > p->h &&
        p->stop_seq > p->cfg.base_seq && !has_own_stop_vote(p))
        own_vote(p, p->stop_seq, p->last_exec_digest);
    /* Stable before the restart: the driver may have lost the certificate
     * with the crash, and it is what this core is kept for. Again. */
    if (p->h == p->stop_seq && p->stop_seq > p->cfg.base_seq &&
        p->last_certified >= p->stop_seq) {
        p->last_certified = p->stop_seq - p->K;
        emit_certified(p);
    }
    trace(p, "stopped at n=%llu", (unsigned long long)p->stop_seq);
}

/* Until the stop seq is stable here, our vote for it goes out again every
 * quarter view timeout: its certificate is the last thing this epoch owes,
 * and no view change or later checkpoint will carry it. */
uint64_t checkpoint_stop_deadline(const struct pbft *p)
{
    uint64_t period = p->cfg.view_timeout_ms / 4;
    const struct pbft_vote *own;

    if (!p->stopped || !p->started || p->h >= p->stop_seq ||
        p->stop_seq <= p->cfg.base_seq)
        return NO_TIMER;
    own = &p->ckpt[(size_t)p->cfg.self * p->R +
                   (size_t)((p->stop_seq / p->K) % p->R)];
    if (own->seq != p->stop_seq)
        return NO_TIMER; /* not executed yet: nothing to resend */
    return p->stop_resend_at + (period > 0 ? period : 1);
}

static void stop_resend(struct pbft *p)
{
    uint64_t due = checkpoint_stop_deadline(p);

    if (due == NO_TIMER || p->now < due)
        return;
    p->stop_resend_at = p->now;
    answer_vote(p, PBFT_BROADCAST, ring(p, p->cfg.self, p->stop_seq));
    /* and ask for theirs: a peer that is not stopped resends nothing */
    send_fetch(p, p->stop_seq - p->K);
    trace(p, "resend CHECKPOINT n=%llu (stopped)",
          (unsigned long long)p->stop_seq);
}

static void send_fetch(struct pbft *p, pbft_seq seq)
{
    uint8_t buf[128];
    struct pbft_msg *m = ready_msg(p, PBFT_MSG_FETCH);
    size_t len;

    if (m == NULL)
        return;
    m->u.fetch.replica = p->cfg.self;
    m->u.fetch.seq = seq;
    len = digest_fetch_statement(p, &m->u.fetch, buf, sizeof(buf));
    PBFT_ASSERT(len > 0);
    p->cfg.crypto.sign(p->cfg.crypto.ctx, buf, len, m->u.fetch.sig);
    ready_send(p, PBFT_BROADCAST, m);
    trace(p, "send FETCH n=%llu", (unsigned long long)seq);
}

static void answer_vote(struct pbft *p, uint32_t to, const struct pbft_vote *v)
{
    struct pbft_msg *m = ready_msg(p, PBFT_MSG_CHECKPOINT);

    if (m == NULL)
        return;
    m->u.vote = *v;
    ready_send(p, to, m);
}

int checkpoint_fetch_receive(struct pbft *p, uint32_t from,
                             const struct pbft_fetch *fe)
{
    uint8_t buf[128];
    size_t len;
    uint32_t r = fe->replica;

    (void)from;
    if (r >= p->n || r == p->cfg.self)
        return pbft_drop(p, PBFT_EBADMSG, "fetch");
    /* At most one answer per fetch period and asker. */
    if (p->fetch_answered[r] != 0 &&
        p->now + 1 < p->fetch_answered[r] + p->cfg.fetch_timeout_ms / 2)
        return pbft_drop(p, PBFT_ESTALE, "fetch too soon");
    len = digest_fetch_statement(p, fe, buf, sizeof(buf));
    p->verify_calls++;
    if (len == 0 ||
        !p->cfg.crypto.verify(p->cfg.crypto.ctx, r, buf, len, fe->sig)) {
        p->bad_signatures++;
        return pbft_drop(p, PBFT_EBADSIG, "fetch signature");
    }
    p->fetch_answered[r] = p->now + 1;
    for (uint32_t i = 0; i < p->R; i++) {
        const struct pbft_vote *v = &p->ckpt[(size_t)p->cfg.self * p->R + i];

        if (v->seq > fe->seq)
            answer_vote(p, r, v);
    }
    /* Our own vote in the stable certificate goes too when the ring lost
     * it (restored after a restart: its record went with the GC). */
    if (p->stable.cert.seq > fe->seq)
        for (uint32_t i = 0; i < p->stable.cert.n_votes; i++)
            if (p->stable.votes[i].replica != p->cfg.self ||
                ring(p, p->cfg.self, p->stable.cert.seq)->seq !=
                    p->stable.cert.seq)
                answer_vote(p, r, &p->stable.votes[i]);
    trace(p, "recv FETCH n=%llu from r%u", (unsigned long long)fe->seq,
          (unsigned)r);
    return PBFT_OK;
}

int checkpoint_transferred(struct pbft *p, pbft_seq seq,
                           const uint8_t digest[PBFT_DIGEST_SIZE])
{
    if (seq <= p->last_executed)
        return pbft_drop(p, PBFT_ESTALE, "transferred state is old");
    p->last_executed = seq;
    if (p->exec_queued < seq)
        p->exec_queued = seq;
    memcpy(p->last_exec_digest, digest, PBFT_DIGEST_SIZE);
    if (seq >= p->fetch_seq)
        p->fetching = false;
    if (seq == p->stable.cert.seq && p->last_certified < seq)
        p->last_certified = seq - p->K; /* emit the transferred block's */
    else if (p->last_certified < seq)
        p->last_certified = seq - seq % p->K;
    trace(p, "state transferred n=%llu", (unsigned long long)seq);
    request_forget_all(p);
    /* Still fetching when the stable checkpoint moved on meanwhile: that
     * target was already handed out; the retry timer repeats it. */
    emit_certified(p);
    normal_execute_ready(p);
    return PBFT_OK;
}

uint64_t checkpoint_deadline(const struct pbft *p)
{
    if (p->fetching)
        return p->fetch_deadline;
    if (p->cert_gap_since != 0 && p->last_certified < p->last_executed &&
        p->last_executed >= p->last_certified + p->K)
        return p->cert_gap_since - 1 + p->cfg.fetch_timeout_ms;
    return NO_TIMER;
}

void checkpoint_timeout(struct pbft *p)
{
    uint64_t due = checkpoint_deadline(p);

    stop_resend(p);
    if (due == NO_TIMER || p->now < due)
        return;
    if (p->fetching) {
        /* Retry: the driver may pick another peer; peers resend votes. */
        start_fetch(p);
        send_fetch(p, p->last_executed);
        return;
    }
    p->cert_gap_since = p->now + 1;
    send_fetch(p, p->last_certified);
}

void checkpoint_after_start(struct pbft *p)
{
    /* Learn how far the others are (a restarted or wiped replica) and get
     * the votes for blocks executed but not yet certified here. */
    send_fetch(p, p->last_certified);
    if (p->h > p->exec_queued)
        start_fetch(p);
    emit_certified(p);
}
