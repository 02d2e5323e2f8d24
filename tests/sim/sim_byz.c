/* sim_byz.c - Byzantine replicas.
 *
 * A Byzantine replica runs a real core; what it sends passes through here
 * and is dropped, mutated, duplicated or replayed. It may re-sign with its
 * own key (pbft_vote_statement, sim_stmt.c), never with another replica's.
 *
 *   SILENT      sends nothing (a silent primary when it is one)
 *   EQUIVOCATE  as primary: another batch for the same seq to half the
 *               backups (sometimes under the original header, a swapped
 *               batch); as new primary: a NEW-VIEW whose O nulls every batch
 *   VOTES       conflicting PREPARE/COMMIT/CHECKPOINT digests, votes for
 *               unknown digests, premature COMMITs, VIEW-CHANGEs that hide
 *               its prepared certificates
 *   SIGREPLAY   corrupted signatures, malformed messages, replays of old
 *               messages of other replicas
 *   FAKEVC      VIEW-CHANGEs with a forged stable checkpoint or a forged
 *               prepared certificate; its core also verifies nothing and is
 *               fed fabricated pre-prepares and prepares
 *   TWIN        two cores with one key, each seeing part of the network
 *               (routing in sim_cluster.c)
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

static void random_digest(struct sim *s, uint8_t d[PBFT_DIGEST_SIZE])
{
    for (int i = 0; i < PBFT_DIGEST_SIZE; i += 8) {
        uint64_t x = sim_rng_next(&s->rng);

        memcpy(d + i, &x, 8);
    }
}

/* A request that claims to come from client 0 but is not signed by it. */
static void forged_request(struct sim *s, uint8_t buf[SIM_REQ_LEN],
                           struct pbft_request *rq)
{
    sim_request_build(s, 0, s->req_cap - 1, buf, rq);
    buf[SIM_REQ_LEN - 1] ^= 0x5a;
}

static void send_copy(struct sim *s, struct sim_node *nd, uint32_t to,
                      struct pbft_msg *m)
{
    sim_net_send(s, nd, to, m);
    sim_msg_free(m);
}

/* Equivocation: the same (view, seq) with another batch. */
static struct pbft_msg *alternate_pp(struct sim *s, struct sim_node *nd,
                                     const struct pbft_msg *orig)
{
    struct pbft_msg *m = sim_msg_clone(orig);
    struct pbft_preprepare *pp = &m->u.pp;
    uint8_t buf[SIM_REQ_LEN];

    if (pp->n_requests >= 2) {
        for (uint32_t i = 0; i < pp->n_requests / 2; i++) {
            struct pbft_request t = pp->requests[i];

            pp->requests[i] = pp->requests[pp->n_requests - 1 - i];
            pp->requests[pp->n_requests - 1 - i] = t;
        }
    } else if (pp->n_requests == 1) {
        sim_pp_free(pp);
    } else {
        struct pbft_request rq;

        forged_request(s, buf, &rq);
        free(pp->requests); /* the clone's empty array */
        pp->requests = malloc(sizeof(*pp->requests));
        if (pp->requests == NULL)
            abort();
        sim_request_copy(&pp->requests[0], &rq);
        pp->n_requests = 1;
    }
    /* Half the time the header keeps the original digest (and signature):
     * a batch swapped under a valid header. */
    if (sim_rng_chance(&s->rng, 500))
        return m;
    pbft_batch_digest(&nd->cfg.crypto, pp->requests, pp->n_requests,
                      pp->hdr.digest);
    sim_vote_resign(s, PBFT_MSG_PREPREPARE, &pp->hdr);
    return m;
}

static void corrupt_sig(struct pbft_msg *m)
{
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        if (m->u.request.len > 0 && m->u.request.data != NULL)
            ((uint8_t *)m->u.request.data)[m->u.request.len - 1] ^= 1;
        break;
    case PBFT_MSG_PREPREPARE:
        m->u.pp.hdr.sig[0] ^= 1;
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        m->u.vote.sig[0] ^= 1;
        break;
    case PBFT_MSG_VIEW_CHANGE:
        m->u.vc.sig[0] ^= 1;
        break;
    case PBFT_MSG_NEW_VIEW:
        m->u.nv.sig[0] ^= 1;
        break;
    case PBFT_MSG_FETCH:
        m->u.fetch.sig[0] ^= 1;
        break;
    }
}

static void drop_prepared_upto(struct pbft_view_change *vc, pbft_seq seq);

/* Structurally malformed variants (what a hostile peer's decoder may
 * hand the core): a count with no array, an empty array with no pointer,
 * out-of-range fields. The core must refuse them without crashing. */
static void malform(struct sim *s, struct pbft_msg *m)
{
    switch (m->type) {
    case PBFT_MSG_PREPREPARE:
        sim_pp_free(&m->u.pp);
        m->u.pp.n_requests = (uint32_t)sim_rng_range(&s->rng, 0, 3);
        break;
    case PBFT_MSG_VIEW_CHANGE:
        free(m->u.vc.stable.votes);
        m->u.vc.stable.votes = NULL;
        if (sim_rng_chance(&s->rng, 500)) {
            m->u.vc.stable.n_votes = s->quorum;
        } else {
            drop_prepared_upto(&m->u.vc, UINT64_MAX);
            free(m->u.vc.prepared);
            m->u.vc.prepared = NULL;
            m->u.vc.n_prepared = 1000;
        }
        break;
    case PBFT_MSG_NEW_VIEW:
        sim_nv_free_arrays(&m->u.nv);
        if (sim_rng_chance(&s->rng, 500))
            m->u.nv.n_preprepares = 2;
        else
            m->u.nv.n_view_changes = UINT32_MAX;
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        if (sim_rng_chance(&s->rng, 500))
            m->u.vote.replica = s->n + 3;
        else
            m->u.vote.seq = UINT64_MAX;
        break;
    case PBFT_MSG_REQUEST:
        free((void *)m->u.request.data);
        m->u.request.data = NULL;
        m->u.request.len = 40; /* a length with no data */
        break;
    default:
        m->type = (enum pbft_msg_type)(PBFT_MSG_TYPE_MAX + 1);
        break;
    }
}

static bool is_own_vote(const struct sim_node *nd, const struct pbft_msg *m)
{
    return (m->type == PBFT_MSG_PREPARE || m->type == PBFT_MSG_COMMIT ||
            m->type == PBFT_MSG_CHECKPOINT) &&
           m->u.vote.replica == nd->id;
}

static void
send_each(struct sim *s, struct sim_node *nd, const struct pbft_send *snd,
          struct pbft_msg *(*mutate)(struct sim *, struct sim_node *,
                                     const struct pbft_msg *))
{
    for (uint32_t r = 0; r < s->n; r++) {
        if (r == nd->id || (snd->to != PBFT_BROADCAST && snd->to != r))
            continue;
        if (sim_rng_chance(&s->rng, 500))
            send_copy(s, nd, r, mutate(s, nd, snd->msg));
        else
            sim_net_send(s, nd, r, snd->msg);
    }
}

static struct pbft_msg *conflicting_vote(struct sim *s, struct sim_node *nd,
                                         const struct pbft_msg *orig)
{
    struct pbft_msg *m = sim_msg_clone(orig);

    (void)nd;
    random_digest(s, m->u.vote.digest);
    sim_vote_resign(s, m->type, &m->u.vote);
    return m;
}

/* NEW-VIEW whose O replaces every batch with the null request: the
 * pre-prepares are validly signed by this (primary) replica and so is the
 * NEW-VIEW, but O is not what V implies. Backups must recompute O. */
static struct pbft_msg *forged_new_view(struct sim *s, struct sim_node *nd,
                                        const struct pbft_msg *orig)
{
    struct pbft_msg *m = sim_msg_clone(orig);
    struct pbft_new_view *nv = &m->u.nv;

    for (uint32_t i = 0; i < nv->n_preprepares; i++) {
        struct pbft_preprepare *pp = &nv->preprepares[i];

        if (pp->n_requests == 0 || pp->hdr.replica != nd->id)
            continue;
        sim_pp_free(pp);
        pbft_batch_digest(&nd->cfg.crypto, NULL, 0, pp->hdr.digest);
        sim_vote_resign(s, PBFT_MSG_PREPREPARE, &pp->hdr);
    }
    sim_nv_resign(s, nv);
    return m;
}

static void fabricated_votes(struct sim *s, struct sim_node *nd,
                             enum pbft_msg_type type, pbft_view view,
                             pbft_seq seq, const uint8_t *digest, uint32_t skip,
                             uint32_t count, struct pbft_vote *out)
{
    uint32_t k = 0;

    for (uint32_t r = 0; r < s->n && k < count; r++) {
        struct pbft_vote *v = &out[k];

        if (r == skip)
            continue;
        memset(v, 0, sizeof(*v));
        v->replica = r;
        v->view = view;
        v->seq = seq;
        memcpy(v->digest, digest, PBFT_DIGEST_SIZE);
        if (r == nd->id)
            sim_vote_resign(s, type, v); /* its own vote can be genuine */
        else
            random_digest(s, v->sig); /* no key: garbage */
        k++;
    }
}

static void drop_prepared_upto(struct pbft_view_change *vc, pbft_seq seq)
{
    uint32_t j = 0;

    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        if (vc->prepared[i].pp.hdr.seq <= seq) {
            sim_pp_free(&vc->prepared[i].pp);
            free(vc->prepared[i].prepares);
        } else {
            vc->prepared[j++] = vc->prepared[i];
        }
    }
    vc->n_prepared = j;
}

/* VIEW-CHANGE validly signed by this replica that hides every prepared
 * certificate it holds. */
static struct pbft_msg *hiding_view_change(struct sim *s, struct sim_node *nd,
                                           const struct pbft_msg *orig)
{
    struct pbft_msg *m = sim_msg_clone(orig);

    (void)nd;
    drop_prepared_upto(&m->u.vc, UINT64_MAX);
    sim_vc_resign(s, &m->u.vc);
    return m;
}

/* A COMMIT sent before this replica could know the batch prepared. */
static void premature_commit(struct sim *s, struct sim_node *nd,
                             const struct pbft_msg *prepare)
{
    struct pbft_msg m = *prepare;

    m.type = PBFT_MSG_COMMIT;
    sim_vote_resign(s, PBFT_MSG_COMMIT, &m.u.vote);
    sim_net_send(s, nd, PBFT_BROADCAST, &m);
}

/* VIEW-CHANGE validly signed by this replica but carrying either a stable
 * checkpoint no quorum signed or a prepared certificate nobody prepared. */
static struct pbft_msg *forged_view_change(struct sim *s, struct sim_node *nd,
                                           const struct pbft_msg *orig)
{
    struct pbft_msg *m = sim_msg_clone(orig);
    struct pbft_view_change *vc = &m->u.vc;
    uint32_t k = s->prm.checkpoint_interval;

    if (sim_rng_chance(&s->rng, 500)) {
        struct pbft_checkpoint_cert *c = &vc->stable;

        free(c->votes);
        c->seq = (c->seq / k + 2) * k;
        random_digest(s, c->digest);
        c->n_votes = s->quorum;
        c->votes = calloc(s->quorum, sizeof(*c->votes));
        if (c->votes == NULL)
            abort();
        fabricated_votes(s, nd, PBFT_MSG_CHECKPOINT, 0, c->seq, c->digest,
                         UINT32_MAX, s->quorum, c->votes);
        drop_prepared_upto(vc, c->seq); /* keep the rest consistent */
        sim_note(s, nd,
                 "byz: VIEW-CHANGE v=%llu with a forged checkpoint "
                 "n=%llu",
                 (unsigned long long)vc->new_view, (unsigned long long)c->seq);
    } else if (vc->new_view > 0) {
        struct pbft_prepared_cert *pc;
        struct pbft_request rq;
        uint8_t buf[SIM_REQ_LEN];
        pbft_view v = vc->new_view - 1;
        uint32_t primary = (uint32_t)(v % s->n);
        pbft_seq seq = vc->stable.seq + 1;
        uint32_t at = vc->n_prepared;

        for (uint32_t i = 0; i < vc->n_prepared; i++)
            if (vc->prepared[i].pp.hdr.seq == seq)
                at = i;
        if (at == vc->n_prepared) {
            vc->prepared =
                realloc(vc->prepared, (vc->n_prepared + 1) * sizeof(*pc));
            if (vc->prepared == NULL)
                abort();
            vc->n_prepared++;
        } else {
            sim_pp_free(&vc->prepared[at].pp);
            free(vc->prepared[at].prepares);
        }
        pc = &vc->prepared[at];
        memset(pc, 0, sizeof(*pc));
        forged_request(s, buf, &rq);
        pc->pp.hdr.replica = primary;
        pc->pp.hdr.view = v;
        pc->pp.hdr.seq = seq;
        pc->pp.hdr.timestamp_ms = sim_local_now(s, nd);
        pc->pp.n_requests = 1;
        pc->pp.requests = malloc(sizeof(*pc->pp.requests));
        if (pc->pp.requests == NULL)
            abort();
        sim_request_copy(&pc->pp.requests[0], &rq);
        pbft_batch_digest(&nd->cfg.crypto, pc->pp.requests, 1,
                          pc->pp.hdr.digest);
        if (primary == nd->id)
            sim_vote_resign(s, PBFT_MSG_PREPREPARE, &pc->pp.hdr);
        else
            random_digest(s, pc->pp.hdr.sig);
        pc->n_prepares = s->quorum - 1;
        pc->prepares = calloc(pc->n_prepares, sizeof(*pc->prepares));
        if (pc->prepares == NULL)
            abort();
        fabricated_votes(s, nd, PBFT_MSG_PREPARE, v, seq, pc->pp.hdr.digest,
                         primary, pc->n_prepares, pc->prepares);
        sim_note(s, nd,
                 "byz: VIEW-CHANGE v=%llu with a forged prepared "
                 "certificate n=%llu",
                 (unsigned long long)vc->new_view, (unsigned long long)seq);
    }
    sim_vc_resign(s, vc);
    return m;
}

void sim_byz_send(struct sim *s, struct sim_node *nd,
                  const struct pbft_send *snd)
{
    const struct pbft_msg *m = snd->msg;

    switch (nd->byz) {
    case BYZ_NONE:
    case BYZ_TWIN:
        sim_net_send(s, nd, snd->to, m);
        return;
    case BYZ_FAKEVC:
        if (m->type == PBFT_MSG_VIEW_CHANGE && m->u.vc.replica == nd->id) {
            send_copy(s, nd, snd->to, forged_view_change(s, nd, m));
            return;
        }
        sim_net_send(s, nd, snd->to, m);
        return;
    case BYZ_SILENT:
        return;
    case BYZ_EQUIVOCATE:
        if (m->type == PBFT_MSG_PREPREPARE && m->u.pp.hdr.replica == nd->id) {
            send_each(s, nd, snd, alternate_pp);
            return;
        }
        if (m->type == PBFT_MSG_NEW_VIEW && m->u.nv.replica == nd->id) {
            sim_note(s, nd, "byz: NEW-VIEW v=%llu with a forged O",
                     (unsigned long long)m->u.nv.view);
            send_each(s, nd, snd, forged_new_view);
            return;
        }
        sim_net_send(s, nd, snd->to, m);
        return;
    case BYZ_VOTES:
        if (is_own_vote(nd, m)) {
            send_each(s, nd, snd, conflicting_vote);
            if (m->type == PBFT_MSG_PREPARE && sim_rng_chance(&s->rng, 500))
                premature_commit(s, nd, m);
            return;
        }
        if (m->type == PBFT_MSG_VIEW_CHANGE && m->u.vc.replica == nd->id) {
            send_copy(s, nd, snd->to, hiding_view_change(s, nd, m));
            return;
        }
        sim_net_send(s, nd, snd->to, m);
        return;
    case BYZ_SIGREPLAY:
        if (sim_rng_chance(&s->rng, 400)) {
            struct pbft_msg *c = sim_msg_clone(m);

            corrupt_sig(c);
            send_copy(s, nd, snd->to, c);
        }
        if (sim_rng_chance(&s->rng, 100)) {
            struct pbft_msg *c = sim_msg_clone(m);

            malform(s, c);
            send_copy(s, nd, snd->to, c);
        }
        if (sim_rng_chance(&s->rng, 700))
            sim_net_send(s, nd, snd->to, m);
        return;
    }
}

void sim_byz_received(struct sim *s, struct sim_node *nd, uint32_t from,
                      const struct pbft_msg *m)
{
    uint32_t i;

    (void)s;
    if (nd->byz != BYZ_SIGREPLAY)
        return;
    if (nd->n_replay < SIM_REPLAY_RING) {
        i = nd->n_replay++;
    } else {
        /* keep old messages around: replace one at random */
        i = (uint32_t)sim_rng_below(&s->rng, SIM_REPLAY_RING);
        sim_msg_free(nd->replay[i]);
    }
    nd->replay[i] = sim_msg_clone(m);
    nd->replay_from[i] = from;
}

void sim_byz_forget(struct sim_node *nd)
{
    for (uint32_t i = 0; i < nd->n_replay; i++)
        sim_msg_free(nd->replay[i]);
    nd->n_replay = 0;
}

static void tick_votes(struct sim *s, struct sim_node *nd)
{
    struct pbft_status st;
    struct pbft_msg m;

    pbft_get_status(nd->core, &st);
    memset(&m, 0, sizeof(m));
    m.type = sim_rng_chance(&s->rng, 500) ? PBFT_MSG_PREPARE : PBFT_MSG_COMMIT;
    m.u.vote.replica = nd->id;
    m.u.vote.view = st.view;
    m.u.vote.seq =
        sim_rng_range(&s->rng, st.stable_seq + 1,
                      st.high_watermark > st.stable_seq ? st.high_watermark
                                                        : st.stable_seq + 1);
    random_digest(s, m.u.vote.digest);
    sim_vote_resign(s, m.type, &m.u.vote);
    sim_note(s, nd, "byz: vote for an unknown digest at seq %llu",
             (unsigned long long)m.u.vote.seq);
    sim_net_send(s, nd, PBFT_BROADCAST, &m);
}

static void tick_replay(struct sim *s, struct sim_node *nd)
{
    uint32_t k, to;

    if (nd->n_replay == 0)
        return;
    k = (uint32_t)sim_rng_below(&s->rng, nd->n_replay);
    to = (uint32_t)sim_rng_below(&s->rng, s->n);
    if (to == nd->id)
        to = PBFT_BROADCAST;
    sim_note(s, nd, "byz: replays an old %s from r%u",
             sim_msg_type_name(nd->replay[k]->type), nd->replay_from[k]);
    sim_net_send(s, nd, to, nd->replay[k]);
}

static void feed(struct sim *s, struct sim_node *nd, uint32_t from,
                 const struct pbft_msg *m)
{
    struct pbft_event ev;

    if (!nd->alive)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.type = PBFT_EV_RECEIVE;
    ev.u.receive.from = from;
    ev.u.receive.msg = m;
    sim_node_step(s, nd, &ev);
}

/* Makes the core believe a batch with a forged request prepared, then
 * (sometimes) that f+1 replicas moved to the next view, so that its own
 * VIEW-CHANGE carries the fabricated certificate. */
static void tick_fakevc(struct sim *s, struct sim_node *nd)
{
    struct pbft_status st;
    struct pbft_msg pp, vote, vc;
    struct pbft_request rq;
    uint8_t buf[SIM_REQ_LEN];
    uint32_t primary, fed = 0;

    pbft_get_status(nd->core, &st);
    primary = (uint32_t)(st.view % s->n);
    memset(&pp, 0, sizeof(pp));
    pp.type = PBFT_MSG_PREPREPARE;
    pp.u.pp.hdr.replica = primary;
    pp.u.pp.hdr.view = st.view;
    pp.u.pp.hdr.seq = st.last_executed + 1 + sim_rng_below(&s->rng, 3);
    pp.u.pp.hdr.timestamp_ms = sim_local_now(s, nd);
    forged_request(s, buf, &rq);
    pp.u.pp.n_requests = 1;
    pp.u.pp.requests = &rq;
    pbft_batch_digest(&nd->cfg.crypto, &rq, 1, pp.u.pp.hdr.digest);
    if (primary == nd->id)
        sim_vote_resign(s, PBFT_MSG_PREPREPARE, &pp.u.pp.hdr);
    else
        random_digest(s, pp.u.pp.hdr.sig); /* no key: garbage */
    sim_note(s, nd, "byz: fabricates a prepared certificate at seq %llu",
             (unsigned long long)pp.u.pp.hdr.seq);
    if (primary != nd->id)
        feed(s, nd, primary, &pp);
    for (uint32_t r = 0; r < s->n && fed < s->quorum; r++) {
        if (r == nd->id || r == primary)
            continue;
        memset(&vote, 0, sizeof(vote));
        vote.type = PBFT_MSG_PREPARE;
        vote.u.vote.replica = r;
        vote.u.vote.view = st.view;
        vote.u.vote.seq = pp.u.pp.hdr.seq;
        memcpy(vote.u.vote.digest, pp.u.pp.hdr.digest, PBFT_DIGEST_SIZE);
        random_digest(s, vote.u.vote.sig);
        feed(s, nd, r, &vote);
        fed++;
    }
    if (!sim_rng_chance(&s->rng, 400))
        return;
    fed = 0;
    for (uint32_t r = 0; r < s->n && fed < s->f + 1; r++) {
        if (r == nd->id)
            continue;
        memset(&vc, 0, sizeof(vc));
        vc.type = PBFT_MSG_VIEW_CHANGE;
        vc.u.vc.replica = r;
        vc.u.vc.new_view = st.view + 1;
        if (nd->meta != NULL)
            vc.u.vc.stable = nd->meta->stable; /* borrowed, not freed */
        memcpy(vc.u.vc.stable.digest,
               nd->meta ? nd->meta->stable.digest : nd->cfg.genesis_digest,
               PBFT_DIGEST_SIZE);
        random_digest(s, vc.u.vc.sig);
        feed(s, nd, r, &vc);
        fed++;
    }
}

void sim_byz_tick(struct sim *s, struct sim_node *nd)
{
    switch (nd->byz) {
    case BYZ_VOTES:
        tick_votes(s, nd);
        break;
    case BYZ_SIGREPLAY:
        tick_replay(s, nd);
        break;
    case BYZ_FAKEVC:
        tick_fakevc(s, nd);
        break;
    default:
        break;
    }
}
