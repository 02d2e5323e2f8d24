/*
 * normal.c - the normal case: PRE-PREPARE, PREPARE, COMMIT, execution.
 *
 * From the paper (section 4.2): a backup accepts a pre-prepare for (v, n)
 * when it is in view v, n is between the water marks and it accepted no
 * other pre-prepare for (v, n). prepared(m, v, n) holds with the
 * pre-prepare and quorum-1 matching PREPAREs from distinct backups;
 * committed-local adds a quorum of matching COMMITs. Batches execute
 * strictly in seq order.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

uint64_t normal_view_timeout(const struct pbft *p)
{
    uint64_t t = p->cfg.view_timeout_ms;

    for (uint32_t i = 0; i < p->backoff && t < p->cfg.view_timeout_max_ms; i++)
        t *= 2;
    return t < p->cfg.view_timeout_max_ms ? t : p->cfg.view_timeout_max_ms;
}

static uint64_t retransmit_period(const struct pbft *p)
{
    uint64_t t = p->cfg.view_timeout_ms / 4;

    return t > 0 ? t : 1;
}

/* Timestamp of the batch before seq, as far as this replica knows. */
static uint64_t prev_timestamp(struct pbft *p, pbft_seq seq)
{
    const struct slot *s = log_find(p, seq - 1);

    if (s != NULL && s->has_pp)
        return s->pp.timestamp_ms;
    if (s != NULL && s->decided)
        return s->decided_pp.timestamp_ms;
    return p->last_exec_ts;
}

void normal_install_pp(struct pbft *p, struct slot *s,
                       const struct pbft_vote *hdr, int32_t batch)
{
    PBFT_ASSERT(s->seq == hdr->seq);
    PBFT_ASSERT(!s->has_pp);
    if (normal_retransmit_deadline(p) == NO_TIMER)
        p->last_retransmit = p->now; /* first retransmission a period on */
    s->has_pp = true;
    s->pp = *hdr;
    pool_set(p, &s->pp_batch, batch);
}

static struct pbft_msg *pp_msg_try(struct pbft *p, const struct slot *s)
{
    struct pbft_msg *m = ready_msg(p, PBFT_MSG_PREPREPARE);
    const struct batch *b = pool_get(p, s->pp_batch);

    if (m == NULL)
        return NULL;
    m->u.pp.hdr = s->pp;
    m->u.pp.n_requests = b->n_requests;
    m->u.pp.requests = b->reqs;
    return m;
}

/* A pre-prepare we must persist: running out of room is a sizing bug. */
static struct pbft_msg *pp_msg(struct pbft *p, const struct slot *s)
{
    struct pbft_msg *m = pp_msg_try(p, s);

    PBFT_ASSERT(m != NULL); /* sized for the worst step */
    PBFT_ASSERT(m->u.pp.hdr.seq == s->seq);
    return m;
}

void normal_propose(struct pbft *p, const struct pbft_request *reqs, uint32_t n)
{
    struct pbft_vote hdr;
    struct slot *s;
    int32_t b;
    uint64_t prev;

    PBFT_ASSERT(pbft_is_primary(p));
    PBFT_ASSERT(!p->in_vc);
    PBFT_ASSERT(log_in_window(p, p->last_assigned + 1));
    b = pool_store(p, reqs, n);
    if (b == NO_BATCH) {
        pbft_drop(p, PBFT_EFULL, "batch pool exhausted");
        return;
    }
    memset(&hdr, 0, sizeof(hdr));
    hdr.replica = p->cfg.self;
    hdr.view = p->view;
    hdr.seq = ++p->last_assigned;
    prev = prev_timestamp(p, hdr.seq);
    hdr.timestamp_ms = p->now > prev ? p->now : prev + 1;
    PBFT_ASSERT(digest_batch(p, pool_get(p, b)->reqs, n, hdr.digest));
    sig_vote_sign(p, PBFT_MSG_PREPREPARE, &hdr);
    s = log_slot(p, hdr.seq);
    normal_install_pp(p, s, &hdr, b);
    pool_unref(p, b);
    {
        struct pbft_msg *m = pp_msg(p, s);

        ready_persist_msg(p, m, hdr.seq, hdr.view, p->cfg.self);
        ready_send(p, PBFT_BROADCAST, m);
    }
    trace(p, "send PRE-PREPARE v=%llu n=%llu reqs=%u",
          (unsigned long long)hdr.view, (unsigned long long)hdr.seq, n);
    (void)normal_check(p, s); /* nothing to report yet */
}

/* Cheap structural checks of a pre-prepare; no signature is read. */
static int pp_shape(struct pbft *p, const struct pbft_preprepare *pp)
{
    uint64_t bytes = 0;

    if (pp->hdr.view != p->view || p->in_vc)
        return PBFT_ESTALE;
    if (pp->hdr.replica != pbft_primary(p, p->view) || pbft_is_primary(p))
        return PBFT_EBADMSG;
    if (!log_in_window(p, pp->hdr.seq))
        return PBFT_EWINDOW;
    if (pp->n_requests > p->cfg.batch_max ||
        (pp->n_requests > 0 && pp->requests == NULL))
        return PBFT_EBADMSG;
    for (uint32_t i = 0; i < pp->n_requests; i++) {
        if (pp->requests[i].len > p->cfg.request_bytes_max ||
            (pp->requests[i].len > 0 && pp->requests[i].data == NULL))
            return PBFT_EBADMSG;
        bytes += pp->requests[i].len;
    }
    return bytes > p->cfg.batch_bytes_max ? PBFT_EBADMSG : PBFT_OK;
}

/* The requests of a proposed batch: each signed by its client, none twice,
 * none already executed here, none in flight at another seq. Honest
 * backups refusing in-flight duplicates is what keeps an equivocating
 * primary from ordering one request at two seqs: two prepared
 * certificates would need an honest backup in both. */
static bool pp_requests_ok(struct pbft *p, const struct pbft_preprepare *pp)
{
    for (uint32_t i = 0; i < pp->n_requests; i++) {
        const struct pbft_request *r = &pp->requests[i];

        for (uint32_t j = 0; j < i; j++)
            if (r->req_no == pp->requests[j].req_no &&
                memcmp(r->client, pp->requests[j].client, PBFT_KEY_SIZE) == 0)
                return false;
        if (r->req_no <= request_last_executed(p, r->client))
            return false;
        if (request_in_window(p, r, pp->hdr.seq))
            return false;
        if (!p->cfg.crypto.verify_request(p->cfg.crypto.ctx, r))
            return false;
    }
    return true;
}

static bool pp_time_ok(struct pbft *p, const struct pbft_vote *hdr)
{
    uint64_t ts = hdr->timestamp_ms, skew = p->cfg.clock_skew_max_ms;

    if (ts > p->now && ts - p->now > skew)
        return false;
    if (ts < p->now && p->now - ts > skew)
        return false;
    return ts > prev_timestamp(p, hdr->seq);
}

static void send_vote(struct pbft *p, enum pbft_msg_type type, struct slot *s)
{
    struct pbft_vote v;
    struct pbft_msg *m;

    memset(&v, 0, sizeof(v));
    v.replica = p->cfg.self;
    v.view = p->view;
    v.seq = s->seq;
    memcpy(v.digest, s->pp.digest, PBFT_DIGEST_SIZE);
    sig_vote_sign(p, type, &v);
    if (type == PBFT_MSG_PREPARE) {
        s->prepares[p->cfg.self] = v;
        s->prepare_mask |= UINT64_C(1) << p->cfg.self;
        s->sent_prepare = true;
    } else {
        s->commits[p->cfg.self] = v;
        s->commit_mask |= UINT64_C(1) << p->cfg.self;
        s->sent_commit = true;
    }
    m = ready_msg(p, type);
    PBFT_ASSERT(m != NULL);
    m->u.vote = v;
    ready_persist_msg(p, m, v.seq, v.view, v.replica);
    ready_send(p, PBFT_BROADCAST, m);
}

static void resend_vote(struct pbft *p, const struct pbft_vote *v,
                        enum pbft_msg_type type, uint32_t to)
{
    struct pbft_msg *m = ready_msg(p, type);

    if (m == NULL)
        return;
    m->u.vote = *v;
    ready_send(p, to, m);
}

/* Sends our own messages for slot s again, to one replica or to all. */
static void resend_own(struct pbft *p, struct slot *s, uint32_t to)
{
    if (s->has_pp && s->pp.replica == p->cfg.self)
        ready_send(p, to, pp_msg_try(p, s)); /* NULL: lost, like the net */
    if (s->sent_prepare && s->prepares[p->cfg.self].view == p->view)
        resend_vote(p, &s->prepares[p->cfg.self], PBFT_MSG_PREPARE, to);
    if (s->sent_commit && s->commits[p->cfg.self].view == p->view)
        resend_vote(p, &s->commits[p->cfg.self], PBFT_MSG_COMMIT, to);
}

/* At most one answer per peer and retransmission period, or two replicas
 * answering each other's answers would never stop. */
static void answer_peer(struct pbft *p, struct slot *s, uint32_t to)
{
    if (to >= p->n || to == p->cfg.self || p->in_vc)
        return;
    if (p->answered_at[to] != 0 &&
        p->now < p->answered_at[to] - 1 + retransmit_period(p))
        return;
    p->answered_at[to] = p->now + 1;
    for (uint32_t i = 0; i < p->L; i++) {
        struct slot *o = &p->slots[i];

        /* everything the peer may miss in this view, not just this slot */
        if (o->seq > p->h && o->has_pp && o->seq != s->seq)
            resend_own(p, o, to);
    }
    resend_own(p, s, to);
}

/* A backup accepted a pre-prepare (from the primary or a NEW-VIEW): persist
 * it with our PREPARE and send the PREPARE. */
void normal_accepted_pp(struct pbft *p, struct slot *s)
{
    PBFT_ASSERT(s->has_pp);
    PBFT_ASSERT(!pbft_is_primary(p));
    ready_persist_msg(p, pp_msg(p, s), s->seq, s->pp.view, s->pp.replica);
    if (!s->sent_prepare)
        send_vote(p, PBFT_MSG_PREPARE, s);
}

int normal_preprepare(struct pbft *p, uint32_t from,
                      const struct pbft_preprepare *pp)
{
    struct slot *s;
    int32_t b;
    int rv = pp_shape(p, pp);

    (void)from; /* the signature names the sender */
    if (rv == PBFT_ESTALE)
        vc_view_hint(p, PBFT_MSG_PREPREPARE, &pp->hdr);
    if (rv != PBFT_OK)
        return pbft_drop(p, rv, "pre-prepare");
    s = log_find(p, pp->hdr.seq);
    if (s != NULL && s->has_pp) {
        if (memcmp(&s->pp, &pp->hdr, sizeof(s->pp)) != 0)
            return pbft_drop(p, PBFT_ESTALE, "conflicting pre-prepare");
        answer_peer(p, s, pp->hdr.replica); /* the primary retransmits */
        return pbft_drop(p, PBFT_ESTALE, "duplicate pre-prepare");
    }
    if (!sig_vote_verify(p, PBFT_MSG_PREPREPARE, &pp->hdr))
        return pbft_drop(p, PBFT_EBADSIG, "pre-prepare signature");
    if (!digest_batch_matches(p, pp))
        return pbft_drop(p, PBFT_EBADMSG, "pre-prepare digest");
    if (!pp_time_ok(p, &pp->hdr))
        return pbft_drop(p, PBFT_EBADMSG, "pre-prepare timestamp");
    if (!pp_requests_ok(p, pp))
        return pbft_drop(p, PBFT_EBADSIG, "pre-prepare request");
    b = pool_store(p, pp->requests, pp->n_requests);
    if (b == NO_BATCH)
        return pbft_drop(p, PBFT_EFULL, "batch pool exhausted");
    s = log_slot(p, pp->hdr.seq);
    normal_install_pp(p, s, &pp->hdr, b);
    pool_unref(p, b);
    normal_accepted_pp(p, s);
    const char *now = normal_check(p, s); /* not inside trace(): it acts */
    trace(p, "recv PRE-PREPARE v=%llu n=%llu reqs=%u -> accepted%s",
          (unsigned long long)pp->hdr.view, (unsigned long long)pp->hdr.seq,
          pp->n_requests, now);
    normal_execute_ready(p);
    return PBFT_OK;
}

/* Shared checks of PREPARE and COMMIT before any signature work. */
static int vote_shape(struct pbft *p, const struct pbft_vote *v,
                      bool is_prepare)
{
    if (v->replica >= p->n || v->replica == p->cfg.self)
        return PBFT_EBADMSG;
    if (is_prepare && v->replica == pbft_primary(p, v->view))
        return PBFT_EBADMSG;
    if (v->view != p->view || p->in_vc)
        return PBFT_ESTALE;
    if (!log_in_window(p, v->seq))
        return PBFT_EWINDOW;
    return PBFT_OK;
}

static int receive_vote(struct pbft *p, const struct pbft_vote *v,
                        enum pbft_msg_type type)
{
    bool is_prepare = type == PBFT_MSG_PREPARE;
    int rv = vote_shape(p, v, is_prepare);
    struct slot *s;
    uint64_t bit, *mask;
    struct pbft_vote *store;

    if (rv == PBFT_ESTALE)
        vc_view_hint(p, type, v);
    if (rv != PBFT_OK)
        return pbft_drop(p, rv, trace_type(type));
    s = log_find(p, v->seq);
    bit = UINT64_C(1) << v->replica;
    if (s != NULL) {
        mask = is_prepare ? &s->prepare_mask : &s->commit_mask;
        store = is_prepare ? s->prepares : s->commits;
        if ((*mask & bit) != 0) {
            /* The very vote again: its sender retransmits, so it probably
             * misses ours. The copy we hold was verified: no signature
             * work for an exact repeat. */
            if (memcmp(&store[v->replica], v, sizeof(*v)) == 0)
                answer_peer(p, s, v->replica);
            return pbft_drop(p, PBFT_ESTALE, "duplicate vote");
        }
        /* The phase has its quorum here, in this view: the vote can change
         * nothing (a view change carries the prepared certificate already
         * kept), so it goes before any signature work. That is one vote in
         * three per phase at n = 4. A second one from the same replica is
         * a retransmission: its sender misses ours. */
        if (is_prepare ? s->prepared : s->committed) {
            uint64_t *late =
                is_prepare ? &s->late_prepare_mask : &s->late_commit_mask;
            if ((*late & bit) != 0)
                answer_peer(p, s, v->replica);
            *late |= bit;
            return pbft_drop(p, PBFT_ESTALE, "vote after its quorum");
        }
    }
    if (!sig_vote_verify(p, type, v))
        return pbft_drop(p, PBFT_EBADSIG, trace_type(type));
    s = log_slot(p, v->seq);
    mask = is_prepare ? &s->prepare_mask : &s->commit_mask;
    store = is_prepare ? s->prepares : s->commits;
    store[v->replica] = *v;
    *mask |= bit;
    const char *now = normal_check(p, s); /* not inside trace(): it acts */
    trace(p, "recv %s v=%llu n=%llu from r%u%s", trace_type(type),
          (unsigned long long)v->view, (unsigned long long)v->seq,
          (unsigned)v->replica, now);
    normal_execute_ready(p);
    return PBFT_OK;
}

int normal_prepare(struct pbft *p, uint32_t from, const struct pbft_vote *v)
{
    (void)from;
    return receive_vote(p, v, PBFT_MSG_PREPARE);
}

int normal_commit(struct pbft *p, uint32_t from, const struct pbft_vote *v)
{
    (void)from;
    return receive_vote(p, v, PBFT_MSG_COMMIT);
}

static uint32_t count_matching(const struct pbft *p, const struct slot *s,
                               uint64_t mask, const struct pbft_vote *votes)
{
    uint32_t k = 0;

    for (uint32_t r = 0; r < p->n; r++)
        if ((mask & (UINT64_C(1) << r)) != 0 &&
            memcmp(votes[r].digest, s->pp.digest, PBFT_DIGEST_SIZE) == 0)
            k++;
    return k;
}

static void decide(struct pbft *p, struct slot *s)
{
    PBFT_ASSERT(s->committed);
    PBFT_ASSERT(s->has_pp);
    if (s->decided) {
        /* Decided in an earlier view: quorum intersection makes it the same
         * batch unless more than f replicas are faulty. */
        if (memcmp(s->decided_pp.digest, s->pp.digest, PBFT_DIGEST_SIZE))
            pbft_drop(p, PBFT_EBADMSG, "commit differs from decided batch");
        return;
    }
    s->decided = true;
    s->decided_pp = s->pp;
    pool_set(p, &s->decided_batch, s->pp_batch);
    if (s->seq > p->last_committed)
        p->last_committed = s->seq;
}

/* Evaluates prepared and committed-local for s, acting on each change.
 * Returns what changed, for the trace line of the message that caused it;
 * the caller then runs normal_execute_ready(). */
const char *normal_check(struct pbft *p, struct slot *s)
{
    bool prepared_now = false;

    if (!s->has_pp || p->in_vc)
        return "";
    if (!s->prepared &&
        count_matching(p, s, s->prepare_mask, s->prepares) + 1 >= p->q) {
        s->prepared = prepared_now = true;
        log_set_pcert(p, s);
        if (!s->sent_commit)
            send_vote(p, PBFT_MSG_COMMIT, s);
    }
    if (s->prepared && !s->committed &&
        count_matching(p, s, s->commit_mask, s->commits) >= p->q) {
        s->committed = true;
        decide(p, s);
        return prepared_now ? " -> prepared, committed" : " -> committed";
    }
    return prepared_now ? " -> prepared" : "";
}

/* "execute n=7 reqs=2 [3a:5 3a:6]": the first requests by a one-byte tag
 * of the client key and req_no, so traces show what ran where. */
static void trace_batch(struct pbft *p, const char *what, pbft_seq seq,
                        const struct batch *b)
{
    char ids[64];
    size_t used = 0;

    if (p->cfg.trace_off)
        return; /* no line: spare the formatting */
    ids[0] = 0;
    for (uint32_t i = 0; i < b->n_requests && i < 4; i++) {
        int k = snprintf(ids + used, sizeof(ids) - used, "%s%02x:%llu",
                         i > 0 ? " " : "", trace_client_tag(b->reqs[i].client),
                         (unsigned long long)b->reqs[i].req_no);

        if (k < 0 || (size_t)k >= sizeof(ids) - used)
            break;
        used += (size_t)k;
    }
    trace(p, "%s n=%llu reqs=%u [%s%s]", what, (unsigned long long)seq,
          b->n_requests, ids, b->n_requests > 4 ? " ..." : "");
}

void normal_execute_ready(struct pbft *p)
{
    for (uint32_t i = 0; i < p->L && !p->fetching; i++) {
        struct slot *s = log_find(p, p->exec_queued + 1);
        const struct batch *b;

        if (s == NULL || !s->decided || s->seq > p->stop_seq)
            return;
        b = pool_get(p, s->decided_batch);
        PBFT_ASSERT(s->seq == p->exec_queued + 1); /* strictly in order */
        ready_execute(p, s);
        p->exec_queued = s->seq;
        p->last_exec_ts = s->decided_pp.timestamp_ms;
        for (uint32_t j = 0; j < b->n_requests; j++) {
            request_executed(p, &b->reqs[j]);
            request_persist_executed(p, &b->reqs[j]);
        }
        request_forget_batch(p, b);
        trace_batch(p, "execute", s->seq, b);
        if (b->n_requests > 0 && !p->in_vc) {
            /* Progress: the primary is doing its job. */
            p->backoff = 0;
            p->view_deadline = NO_TIMER;
            request_arm_timer(p);
        }
    }
}

/* Retransmission: while a slot of this view waits to commit here, resend
 * our own messages for it every quarter view timeout. Peers that already
 * have them answer with theirs (answer_peer), so lost messages heal
 * without a view change. */
static bool has_uncommitted(const struct pbft *p)
{
    for (uint32_t i = 0; i < p->L; i++) {
        const struct slot *s = &p->slots[i];

        /* Beyond a stop nothing executes: no use healing it. */
        if (s->seq > p->h && s->seq <= p->stop_seq && s->has_pp &&
            !s->committed && !s->decided)
            return true;
    }
    return false;
}

uint64_t normal_retransmit_deadline(const struct pbft *p)
{
    if (p->in_vc || !p->started || !has_uncommitted(p))
        return NO_TIMER;
    return p->last_retransmit + retransmit_period(p);
}

void normal_retransmit(struct pbft *p)
{
    uint64_t due = normal_retransmit_deadline(p);

    if (due == NO_TIMER || p->now < due)
        return;
    p->last_retransmit = p->now;
    for (uint32_t i = 0; i < p->L; i++) {
        struct slot *s = &p->slots[i];

        if (s->seq > p->h && s->seq <= p->stop_seq && s->has_pp &&
            !s->committed && !s->decided)
            resend_own(p, s, PBFT_BROADCAST);
    }
    trace(p, "retransmit v=%llu", (unsigned long long)p->view);
}
