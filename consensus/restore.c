/*
 * restore.c - re-ingesting persisted records after a restart.
 *
 * Records come back in any order. Message records land in their slot by
 * seq mod L (a newer seq or view replaces an older one); pbft_start() then
 * keeps only what belongs to the restored window and view. What matters
 * for never contradicting ourselves: our pre-prepares/accepted pre-prepares
 * and PREPARE/COMMIT votes of the current view, our prepared certificates
 * (reported in the next VIEW-CHANGE), our last VIEW-CHANGE and checkpoints.
 */
#include "internal.h"

#include <string.h>

static struct slot *restore_slot(struct pbft *p, pbft_seq seq)
{
    struct slot *s = &p->slots[seq % p->L];

    if (seq <= p->cfg.base_seq || seq == OWN_VC_SEQ || s->seq > seq)
        return NULL;
    if (s->seq < seq) {
        log_drop_slot(p, s);
        s->seq = seq;
    }
    return s;
}

static int restore_meta(struct pbft *p, const struct pbft_meta *m)
{
    const struct pbft_checkpoint_cert *c = &m->stable;

    if (c->n_votes > p->n || (c->n_votes > 0 && c->votes == NULL) ||
        c->seq % p->K != 0 || c->seq < p->cfg.base_seq ||
        (c->seq > p->cfg.base_seq && c->n_votes < p->q))
        return PBFT_ECORRUPT;
    p->view = m->view;
    p->in_vc = m->in_view_change;
    p->last_assigned = m->last_seq_assigned;
    p->stable.cert = *c;
    p->stable.cert.votes = p->stable.votes;
    if (c->n_votes > 0)
        memcpy(p->stable.votes, c->votes, c->n_votes * sizeof(*c->votes));
    p->h = c->seq;
    p->restored_meta = true;
    return PBFT_OK;
}

static int restore_pp(struct pbft *p, const struct pbft_preprepare *pp)
{
    struct slot *s = restore_slot(p, pp->hdr.seq);
    int32_t b;

    if (pp->n_requests > p->cfg.batch_max ||
        (pp->n_requests > 0 && pp->requests == NULL))
        return PBFT_ECORRUPT;
    if (s == NULL || (s->has_pp && s->pp.view >= pp->hdr.view))
        return PBFT_OK;
    if (!digest_batch_matches(p, pp))
        return PBFT_ECORRUPT; /* paired with the check at acceptance */
    b = pool_store(p, pp->requests, pp->n_requests);
    if (b == NO_BATCH)
        return PBFT_ENOMEM;
    s->has_pp = true;
    s->pp = pp->hdr;
    pool_set(p, &s->pp_batch, b);
    pool_unref(p, b);
    return PBFT_OK;
}

static int restore_vote(struct pbft *p, enum pbft_msg_type type,
                        const struct pbft_vote *v)
{
    struct slot *s;

    if (v->replica != p->cfg.self)
        return PBFT_OK; /* older stores kept others' prepares; unneeded */
    if (type == PBFT_MSG_CHECKPOINT) {
        if (v->seq <= p->cfg.base_seq || v->seq % p->K != 0)
            return PBFT_ECORRUPT;
        checkpoint_store_own(p, v);
        return PBFT_OK;
    }
    s = restore_slot(p, v->seq);
    if (s == NULL)
        return PBFT_OK;
    if (type == PBFT_MSG_PREPARE &&
        (!s->sent_prepare || s->prepares[p->cfg.self].view < v->view)) {
        s->prepares[p->cfg.self] = *v;
        s->sent_prepare = true;
    }
    if (type == PBFT_MSG_COMMIT &&
        (!s->sent_commit || s->commits[p->cfg.self].view < v->view)) {
        s->commits[p->cfg.self] = *v;
        s->sent_commit = true;
    }
    return PBFT_OK;
}

static int restore_pcert(struct pbft *p, const struct pbft_view_change *vc)
{
    const struct pbft_prepared_cert *pc = vc->prepared;
    struct slot *s;
    int32_t b;

    if (vc->n_prepared != 1 || pc == NULL || pc->n_prepares + 1 != p->q ||
        pc->prepares == NULL || pc->pp.n_requests > p->cfg.batch_max ||
        (pc->pp.n_requests > 0 && pc->pp.requests == NULL))
        return PBFT_ECORRUPT;
    s = restore_slot(p, pc->pp.hdr.seq);
    if (s == NULL || (s->has_pcert && s->pcert_pp.view >= pc->pp.hdr.view))
        return PBFT_OK;
    if (!digest_batch_matches(p, &pc->pp))
        return PBFT_ECORRUPT;
    b = pool_store(p, pc->pp.requests, pc->pp.n_requests);
    if (b == NO_BATCH)
        return PBFT_ENOMEM;
    s->has_pcert = true;
    s->pcert_pp = pc->pp.hdr;
    pool_set(p, &s->pcert_batch, b);
    pool_unref(p, b);
    s->n_pcert_prepares = pc->n_prepares;
    if (pc->n_prepares > 0)
        memcpy(s->pcert_prepares, pc->prepares,
               pc->n_prepares * sizeof(*pc->prepares));
    return PBFT_OK;
}

static int restore_msg(struct pbft *p, const struct pbft_record *rec)
{
    const struct pbft_msg *m = rec->msg;

    if (m == NULL)
        return PBFT_ECORRUPT;
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        request_executed(p, &m->u.request); /* the client table */
        return PBFT_OK;
    case PBFT_MSG_PREPREPARE:
        return restore_pp(p, &m->u.pp);
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        return restore_vote(p, m->type, &m->u.vote);
    case PBFT_MSG_VIEW_CHANGE:
        if (rec->seq == OWN_VC_SEQ)
            return vc_restore_own(p, &m->u.vc);
        return restore_pcert(p, &m->u.vc);
    default:
        return PBFT_ECORRUPT;
    }
}

int restore_record(struct pbft *p, const struct pbft_record *rec)
{
    switch (rec->type) {
    case PBFT_REC_META:
        return rec->meta == NULL ? PBFT_ECORRUPT : restore_meta(p, rec->meta);
    case PBFT_REC_MSG:
        return restore_msg(p, rec);
    case PBFT_REC_GC:
        return PBFT_OK; /* the driver applies deletions itself */
    }
    return PBFT_ECORRUPT;
}

/* Keeps what belongs to the restored window and view (pbft_start). */
void restore_finish(struct pbft *p)
{
    for (uint32_t i = 0; i < p->L; i++) {
        struct slot *s = &p->slots[i];

        if (s->seq == 0)
            continue;
        if (!log_in_window(p, s->seq)) {
            log_drop_slot(p, s);
            continue;
        }
        if (s->has_pp && s->pp.view != p->view) {
            pool_set(p, &s->pp_batch, NO_BATCH);
            s->has_pp = false;
        }
        if (s->sent_prepare && s->prepares[p->cfg.self].view != p->view)
            s->sent_prepare = false;
        if (s->sent_commit && s->commits[p->cfg.self].view != p->view)
            s->sent_commit = false;
        s->prepare_mask = s->sent_prepare ? UINT64_C(1) << p->cfg.self : 0;
        s->commit_mask = s->sent_commit ? UINT64_C(1) << p->cfg.self : 0;
        s->late_prepare_mask = s->late_commit_mask = 0;
        s->prepared = s->has_pp && s->has_pcert && s->pcert_pp.view == p->view;
        if (s->has_pp && s->pp.replica == p->cfg.self &&
            s->seq > p->last_assigned)
            p->last_assigned = s->seq;
    }
}
