/*
 * log.c - the window of sequence numbers (h, h+L], one slot each.
 *
 * Slots are indexed by seq mod L; a slot is reused only after the stable
 * checkpoint passed its seq (log_gc). Per-view state is cleared when a view
 * is entered; the prepared certificate and a decided (committed, not yet
 * executed) batch survive view changes.
 */
#include "internal.h"

#include <string.h>

int log_init(struct pbft *p)
{
    size_t per_slot = 2 * (size_t)p->n + p->q;

    p->slots = calloc(p->L, sizeof(*p->slots));
    p->slot_votes = calloc((size_t)p->L * per_slot, sizeof(*p->slot_votes));
    if (p->slots == NULL || p->slot_votes == NULL)
        return PBFT_ENOMEM;
    for (uint32_t i = 0; i < p->L; i++) {
        struct slot *s = &p->slots[i];
        struct pbft_vote *base = p->slot_votes + (size_t)i * per_slot;

        s->prepares = base;
        s->commits = base + p->n;
        s->pcert_prepares = base + 2 * (size_t)p->n;
        s->pp_batch = s->pcert_batch = s->decided_batch = NO_BATCH;
    }
    return PBFT_OK;
}

bool log_in_window(const struct pbft *p, pbft_seq seq)
{
    return seq > p->h && seq - p->h <= p->L;
}

static void slot_clear_view(struct pbft *p, struct slot *s)
{
    pool_set(p, &s->pp_batch, NO_BATCH);
    s->has_pp = false;
    s->prepare_mask = s->commit_mask = 0;
    s->late_prepare_mask = s->late_commit_mask = 0;
    s->sent_prepare = s->sent_commit = false;
    s->prepared = s->committed = false;
}

void log_drop_slot(struct pbft *p, struct slot *s)
{
    slot_clear_view(p, s);
    pool_set(p, &s->pcert_batch, NO_BATCH);
    pool_set(p, &s->decided_batch, NO_BATCH);
    s->has_pcert = s->decided = false;
    s->n_pcert_prepares = 0;
    s->seq = 0;
}

struct slot *log_find(struct pbft *p, pbft_seq seq)
{
    struct slot *s;

    if (!log_in_window(p, seq))
        return NULL;
    s = &p->slots[seq % p->L];
    return s->seq == seq ? s : NULL;
}

struct slot *log_slot(struct pbft *p, pbft_seq seq)
{
    struct slot *s;

    PBFT_ASSERT(log_in_window(p, seq));
    s = &p->slots[seq % p->L];
    if (s->seq != seq) {
        /* Anything still here is below the window (GC is lazy about
         * nothing, but stay defensive about our own bookkeeping). */
        PBFT_ASSERT(s->seq == 0 || s->seq <= p->h);
        log_drop_slot(p, s);
        s->seq = seq;
    }
    return s;
}

void log_gc(struct pbft *p, pbft_seq upto)
{
    for (uint32_t i = 0; i < p->L; i++) {
        struct slot *s = &p->slots[i];

        if (s->seq != 0 && s->seq <= upto)
            log_drop_slot(p, s);
    }
}

void log_new_view(struct pbft *p)
{
    for (uint32_t i = 0; i < p->L; i++)
        if (p->slots[i].seq != 0)
            slot_clear_view(p, &p->slots[i]);
}

/* The slot just became prepared in the current view: keep its certificate
 * (the pre-prepare and quorum-1 matching PREPAREs) for view changes, and
 * persist it as a one-certificate VIEW-CHANGE record keyed by seq. */
void log_set_pcert(struct pbft *p, struct slot *s)
{
    struct pbft_msg *m;
    struct pbft_prepared_cert *pc;
    uint32_t k = 0;

    PBFT_ASSERT(s->prepared);
    PBFT_ASSERT(s->has_pp);
    s->pcert_pp = s->pp;
    pool_set(p, &s->pcert_batch, s->pp_batch);
    for (uint32_t r = 0; r < p->n && k + 1 < p->q; r++) {
        if ((s->prepare_mask & (UINT64_C(1) << r)) == 0)
            continue;
        if (memcmp(s->prepares[r].digest, s->pp.digest, PBFT_DIGEST_SIZE))
            continue;
        s->pcert_prepares[k++] = s->prepares[r];
    }
    PBFT_ASSERT(k + 1 == p->q);
    s->n_pcert_prepares = k;
    s->has_pcert = true;

    m = ready_msg(p, PBFT_MSG_VIEW_CHANGE);
    pc = ready_alloc(p, sizeof(*pc));
    PBFT_ASSERT(m != NULL && pc != NULL); /* sized for the worst step */
    pc->pp.hdr = s->pcert_pp;
    pc->pp.n_requests = pool_get(p, s->pcert_batch)->n_requests;
    pc->pp.requests = pool_get(p, s->pcert_batch)->reqs;
    pc->n_prepares = k;
    pc->prepares = ready_copy_votes(p, s->pcert_prepares, k);
    PBFT_ASSERT(pc->prepares != NULL);
    m->u.vc.replica = p->cfg.self;
    m->u.vc.n_prepared = 1;
    m->u.vc.prepared = pc;
    ready_persist_msg(p, m, s->seq, 0, p->cfg.self);
}
