/*
 * view_change.c - VIEW-CHANGE and NEW-VIEW (paper section 4.4, with
 * signatures: prepared certificates carry signed PREPAREs).
 *
 * A replica moving to view w sends VIEW-CHANGE <w, stable checkpoint cert,
 * P> where P holds its highest-view prepared certificate per seq above the
 * stable checkpoint. The primary of w collects a quorum V of valid ones and
 * computes O: for each seq between min-s (the highest stable checkpoint in
 * V) and max-s (the highest prepared seq in V), the pre-prepare of the
 * highest-view certificate, or a null request. Every backup recomputes O
 * from V and rejects a NEW-VIEW that differs.
 */
#include "internal.h"

#include <string.h>

#define VC_STATEMENT_MAX 128
/* One bit per window offset 1..L. */
#define WINDOW_WORDS (WINDOW_MAX / 64 + 1)

static int store_alloc(struct vc_store *s, uint32_t n, uint32_t L)
{
    s->stable_votes = calloc(n, sizeof(*s->stable_votes));
    s->certs = calloc(L, sizeof(*s->certs));
    s->prepares = calloc((size_t)L * n, sizeof(*s->prepares));
    return s->stable_votes && s->certs && s->prepares ? PBFT_OK : PBFT_ENOMEM;
}

static void store_free(struct vc_store *s)
{
    free(s->stable_votes);
    free(s->certs);
    free(s->prepares);
}

int vc_init(struct pbft *p)
{
    int rv = PBFT_OK;

    p->vcs = calloc(p->n, sizeof(*p->vcs));
    p->nv_vcs = calloc(p->n, sizeof(*p->nv_vcs));
    p->nv_vc_list = calloc(p->n, sizeof(*p->nv_vc_list));
    p->nv_pps = calloc(p->L, sizeof(*p->nv_pps));
    p->vcb = calloc(2 * (size_t)p->L, sizeof(*p->vcb));
    p->own_vc_refs = calloc(p->L, sizeof(*p->own_vc_refs));
    p->nv_refs = calloc(p->L, sizeof(*p->nv_refs));
    p->seen_view = calloc(p->n, sizeof(*p->seen_view));
    if (!p->vcs || !p->nv_vcs || !p->nv_vc_list || !p->nv_pps || !p->vcb ||
        !p->own_vc_refs || !p->nv_refs || !p->seen_view)
        return PBFT_ENOMEM;
    for (uint32_t i = 0; i < p->n && rv == PBFT_OK; i++) {
        rv = store_alloc(&p->vcs[i], p->n, p->L);
        if (rv == PBFT_OK)
            rv = store_alloc(&p->nv_vcs[i], p->n, p->L);
    }
    if (rv == PBFT_OK)
        rv = store_alloc(&p->own_vc, p->n, p->L);
    for (uint32_t i = 0; i < 2 * p->L; i++)
        p->vcb[i].batch = NO_BATCH;
    for (uint32_t i = 0; i < p->L; i++)
        p->own_vc_refs[i] = p->nv_refs[i] = NO_BATCH;
    return rv;
}

void vc_free(struct pbft *p)
{
    for (uint32_t i = 0; p->vcs != NULL && i < p->n; i++)
        store_free(&p->vcs[i]);
    for (uint32_t i = 0; p->nv_vcs != NULL && i < p->n; i++)
        store_free(&p->nv_vcs[i]);
    store_free(&p->own_vc);
    free(p->vcs);
    free(p->nv_vcs);
    free(p->nv_vc_list);
    free(p->nv_pps);
    free(p->vcb);
    free(p->own_vc_refs);
    free(p->nv_refs);
    free(p->seen_view);
}

/* Copies a validated VIEW-CHANGE into a store. Batches are stripped (the
 * headers' digests bind them); they are kept in vcb where needed. */
static void store_copy(struct pbft *p, struct vc_store *dst,
                       const struct pbft_view_change *vc)
{
    PBFT_ASSERT(vc->n_prepared <= p->L);
    PBFT_ASSERT(vc->stable.n_votes <= p->n);
    dst->vc = *vc;
    dst->vc.stable.votes = dst->stable_votes;
    if (vc->stable.n_votes > 0)
        memcpy(dst->stable_votes, vc->stable.votes,
               (size_t)vc->stable.n_votes * sizeof(struct pbft_vote));
    dst->vc.prepared = dst->certs;
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        const struct pbft_prepared_cert *pc = &vc->prepared[i];
        struct pbft_vote *pv = dst->prepares + (size_t)i * p->n;

        PBFT_ASSERT(pc->n_prepares < p->n);
        dst->certs[i] = *pc;
        dst->certs[i].pp.n_requests = 0;
        dst->certs[i].pp.requests = NULL;
        dst->certs[i].prepares = pv;
        if (pc->n_prepares > 0)
            memcpy(pv, pc->prepares, (size_t)pc->n_prepares * sizeof(*pv));
    }
    dst->valid = true;
}

static void vcb_put(struct pbft *p, const struct pbft_preprepare *pp)
{
    struct vc_batch *e = &p->vcb[pp->hdr.seq % (2 * p->L)];
    int32_t b;

    if (e->batch != NO_BATCH &&
        (e->seq > pp->hdr.seq ||
         (e->seq == pp->hdr.seq && e->view >= pp->hdr.view)))
        return;
    b = pool_store(p, pp->requests, pp->n_requests);
    if (b == NO_BATCH)
        return;
    e->seq = pp->hdr.seq;
    e->view = pp->hdr.view;
    memcpy(e->digest, pp->hdr.digest, PBFT_DIGEST_SIZE);
    pool_set(p, &e->batch, b);
    pool_unref(p, b);
}

static int32_t vcb_get(struct pbft *p, pbft_seq seq,
                       const uint8_t digest[PBFT_DIGEST_SIZE])
{
    const struct vc_batch *e = &p->vcb[seq % (2 * p->L)];
    const struct slot *s = log_find(p, seq);

    if (e->batch != NO_BATCH && e->seq == seq &&
        memcmp(e->digest, digest, PBFT_DIGEST_SIZE) == 0)
        return e->batch;
    if (s != NULL && s->has_pcert &&
        memcmp(s->pcert_pp.digest, digest, PBFT_DIGEST_SIZE) == 0)
        return s->pcert_batch;
    return NO_BATCH;
}

/* ---- validation -------------------------------------------------------- */

static bool batch_shape_ok(const struct pbft *p,
                           const struct pbft_preprepare *pp)
{
    uint64_t bytes = 0;

    if (pp->n_requests > p->cfg.batch_max ||
        (pp->n_requests > 0 && pp->requests == NULL))
        return false;
    for (uint32_t i = 0; i < pp->n_requests; i++) {
        if (pp->requests[i].len > p->cfg.request_bytes_max ||
            (pp->requests[i].len > 0 && pp->requests[i].data == NULL))
            return false;
        bytes += pp->requests[i].len;
    }
    return bytes <= p->cfg.batch_bytes_max;
}

/* Counts and ranges, no signature: bounded work for any input. */
static bool vc_shape_ok(const struct pbft *p, const struct pbft_view_change *vc,
                        bool batches)
{
    uint64_t seen[WINDOW_WORDS];

    if (vc->replica >= p->n || vc->n_prepared > p->L ||
        vc->stable.n_votes > p->n)
        return false;
    if ((vc->n_prepared > 0 && vc->prepared == NULL) ||
        (vc->stable.n_votes > 0 && vc->stable.votes == NULL))
        return false;
    memset(seen, 0, sizeof(seen));
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        const struct pbft_prepared_cert *pc = &vc->prepared[i];
        pbft_seq off = pc->pp.hdr.seq - vc->stable.seq;

        if (pc->pp.hdr.seq <= vc->stable.seq || off > p->L)
            return false;
        if (pc->n_prepares >= p->n || pc->prepares == NULL)
            return false;
        if ((seen[off / 64] & (UINT64_C(1) << (off % 64))) != 0)
            return false; /* one certificate per seq */
        seen[off / 64] |= UINT64_C(1) << (off % 64);
        if (batches && !batch_shape_ok(p, &pc->pp))
            return false;
    }
    return true;
}

/* Full check of a VIEW-CHANGE: its signature, its stable checkpoint
 * certificate, every prepared certificate (and, for a standalone message,
 * that each carries its batch, so the new primary can re-propose it). */
static bool vc_invalid(struct pbft *p, const struct pbft_view_change *vc,
                       const char *why)
{
    trace(p, "invalid VIEW-CHANGE v=%llu from r%u: %s",
          (unsigned long long)vc->new_view, (unsigned)vc->replica, why);
    return false;
}

static bool vc_valid(struct pbft *p, const struct pbft_view_change *vc,
                     bool batches)
{
    uint8_t buf[VC_STATEMENT_MAX];
    size_t len;
    pbft_seq lo = vc->stable.seq;

    if (!vc_shape_ok(p, vc, batches))
        return vc_invalid(p, vc, "shape");
    len = digest_vc_statement(p, vc, buf, sizeof(buf));
    p->verify_calls++;
    if (len == 0 || !p->cfg.crypto.verify(p->cfg.crypto.ctx, vc->replica, buf,
                                          len, vc->sig)) {
        p->bad_signatures++;
        return vc_invalid(p, vc, "signature");
    }
    if (!sig_cert_valid(p, &vc->stable))
        return vc_invalid(p, vc, "stable checkpoint certificate");
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        const struct pbft_prepared_cert *pc = &vc->prepared[i];

        if (!sig_pcert_valid(p, pc, vc->new_view, lo, lo + p->L))
            return vc_invalid(p, vc, "prepared certificate");
        if (batches && !digest_batch_matches(p, &pc->pp))
            return vc_invalid(p, vc, "batch of a prepared certificate");
    }
    return true;
}

/* ---- computing O ------------------------------------------------------- */

struct o_set {
    pbft_seq min_s, max_s;
    const struct pbft_checkpoint_cert *stable;
    uint32_t n;
    struct pbft_vote *hdrs; /* L */
};

static const struct pbft_prepared_cert *
best_cert(const struct pbft_view_change *const *v, uint32_t n_v, pbft_seq seq)
{
    const struct pbft_prepared_cert *best = NULL;

    for (uint32_t i = 0; i < n_v; i++) {
        for (uint32_t j = 0; j < v[i]->n_prepared; j++) {
            const struct pbft_prepared_cert *pc = &v[i]->prepared[j];

            if (pc->pp.hdr.seq != seq)
                continue;
            if (best == NULL || pc->pp.hdr.view > best->pp.hdr.view ||
                (pc->pp.hdr.view == best->pp.hdr.view &&
                 memcmp(pc->pp.hdr.digest, best->pp.hdr.digest,
                        PBFT_DIGEST_SIZE) < 0))
                best = pc;
        }
    }
    return best;
}

/* Deterministic in V alone: the primary and every backup get the same O. */
static void compute_o(struct pbft *p, pbft_view w,
                      const struct pbft_view_change *const *v, uint32_t n_v,
                      struct o_set *o)
{
    uint64_t ts = 0;

    PBFT_ASSERT(n_v > 0);
    PBFT_ASSERT(n_v <= p->n);
    o->stable = &v[0]->stable;
    for (uint32_t i = 1; i < n_v; i++)
        if (v[i]->stable.seq > o->stable->seq)
            o->stable = &v[i]->stable;
    o->min_s = o->max_s = o->stable->seq;
    for (uint32_t i = 0; i < n_v; i++)
        for (uint32_t j = 0; j < v[i]->n_prepared; j++)
            if (v[i]->prepared[j].pp.hdr.seq > o->max_s &&
                v[i]->prepared[j].pp.hdr.seq - o->min_s <= p->L)
                o->max_s = v[i]->prepared[j].pp.hdr.seq;
    o->n = 0;
    /* By offset: max_s may be UINT64_MAX, where s <= max_s never fails. */
    for (pbft_seq d = 1; d <= o->max_s - o->min_s; d++) {
        pbft_seq s = o->min_s + d;
        const struct pbft_prepared_cert *pc = best_cert(v, n_v, s);
        struct pbft_vote *h = &o->hdrs[o->n++];

        memset(h, 0, sizeof(*h));
        h->replica = pbft_primary(p, w);
        h->view = w;
        h->seq = s;
        if (pc != NULL) {
            memcpy(h->digest, pc->pp.hdr.digest, PBFT_DIGEST_SIZE);
            ts = pc->pp.hdr.timestamp_ms;
        } else {
            digest_null_batch(&p->cfg.crypto, h->digest);
        }
        h->timestamp_ms = ts; /* a null request keeps the time before it */
    }
    PBFT_ASSERT(o->n <= p->L);
}

/* ---- sending VIEW-CHANGE ------------------------------------------------- */

static void own_vc_sign(struct pbft *p)
{
    uint8_t buf[VC_STATEMENT_MAX];
    size_t len = digest_vc_statement(p, &p->own_vc.vc, buf, sizeof(buf));

    PBFT_ASSERT(len > 0);
    p->cfg.crypto.sign(p->cfg.crypto.ctx, buf, len, p->own_vc.vc.sig);
}

/* Builds our VIEW-CHANGE for p->view from the stable checkpoint and the
 * prepared certificates in the window. */
static void own_vc_build(struct pbft *p)
{
    struct pbft_view_change *vc = &p->own_vc.vc;
    uint32_t k = 0;

    memset(vc, 0, sizeof(*vc));
    vc->replica = p->cfg.self;
    vc->new_view = p->view;
    vc->stable = p->stable.cert;
    vc->stable.votes = p->own_vc.stable_votes;
    if (p->stable.cert.n_votes > 0) /* genesis: no votes */
        memcpy(p->own_vc.stable_votes, p->stable.votes,
               (size_t)p->stable.cert.n_votes * sizeof(struct pbft_vote));
    vc->prepared = p->own_vc.certs;
    /* By offset: h + L may be UINT64_MAX, where seq <= h + L never fails. */
    for (uint32_t d = 1; d <= p->L; d++) {
        const struct slot *s = log_find(p, p->h + d);
        struct pbft_prepared_cert *pc = &p->own_vc.certs[k];
        const struct batch *b;

        if (s == NULL || !s->has_pcert)
            continue;
        b = pool_get(p, s->pcert_batch);
        pc->pp.hdr = s->pcert_pp;
        pc->pp.n_requests = b->n_requests;
        pc->pp.requests = b->reqs;
        pc->n_prepares = s->n_pcert_prepares;
        pc->prepares = p->own_vc.prepares + (size_t)k * p->n;
        if (s->n_pcert_prepares > 0)
            memcpy(pc->prepares, s->pcert_prepares,
                   (size_t)s->n_pcert_prepares * sizeof(struct pbft_vote));
        pool_set(p, &p->own_vc_refs[k], s->pcert_batch);
        k++;
    }
    for (uint32_t i = k; i < p->L; i++)
        pool_set(p, &p->own_vc_refs[i], NO_BATCH);
    vc->n_prepared = k;
    own_vc_sign(p);
    p->own_vc.valid = true;
    p->has_own_vc = true;
}

static void own_vc_send(struct pbft *p, bool persist)
{
    struct pbft_msg *m = ready_msg(p, PBFT_MSG_VIEW_CHANGE);

    PBFT_ASSERT(p->has_own_vc);
    PBFT_ASSERT(m != NULL);
    m->u.vc = p->own_vc.vc;
    if (persist)
        ready_persist_msg(p, m, OWN_VC_SEQ, 0, p->cfg.self);
    ready_send(p, PBFT_BROADCAST, m);
    trace(p, "send VIEW-CHANGE v=%llu h=%llu P=%u",
          (unsigned long long)p->own_vc.vc.new_view,
          (unsigned long long)p->own_vc.vc.stable.seq, p->own_vc.vc.n_prepared);
}

/* Our own VIEW-CHANGE also counts toward V and feeds vcb. */
static void own_vc_record(struct pbft *p)
{
    store_copy(p, &p->vcs[p->cfg.self], &p->own_vc.vc);
    for (uint32_t i = 0; i < p->own_vc.vc.n_prepared; i++)
        vcb_put(p, &p->own_vc.vc.prepared[i].pp);
}

static void vc_try_new_view(struct pbft *p);

void vc_start(struct pbft *p, pbft_view w)
{
    PBFT_ASSERT(w > p->view || (w == p->view && !p->in_vc));
    PBFT_ASSERT(p->started);
    trace(p, "view change to v=%llu", (unsigned long long)w);
    p->view = w;
    p->in_vc = true;
    p->has_nv = false;
    for (uint32_t i = 0; i < p->L; i++)
        pool_set(p, &p->nv_refs[i], NO_BATCH);
    if (p->backoff < 32)
        p->backoff++;
    p->view_deadline = p->now + normal_view_timeout(p);
    log_new_view(p);
    own_vc_build(p);
    ready_persist_meta(p);
    own_vc_send(p, true);
    own_vc_record(p);
    vc_try_new_view(p);
}

/* ---- NEW-VIEW ------------------------------------------------------------ */

static uint32_t collect_v(struct pbft *p, pbft_view w,
                          const struct pbft_view_change **v)
{
    uint32_t k = 0;

    for (uint32_t r = 0; r < p->n; r++)
        if (p->vcs[r].valid && p->vcs[r].vc.new_view == w)
            v[k++] = &p->vcs[r].vc;
    return k;
}

/* Enters view w with O installed (primary and backups alike). batches[i]
 * is the pool batch of o->hdrs[i]. */
static void enter_view(struct pbft *p, pbft_view w, const struct o_set *o,
                       const int32_t *batches)
{
    bool primary;

    PBFT_ASSERT(w >= p->view);
    PBFT_ASSERT(o->n <= p->L);
    /* Still in view change while O goes in: nothing may be proposed in
     * between (adopting a stable checkpoint moves the window). */
    p->view = w;
    p->in_vc = true;
    log_new_view(p);
    /* Numbering in the new view continues right after O (seqs assigned in
     * older views but not in O are free again). */
    p->last_assigned = o->max_s;
    if (o->stable->seq > p->h)
        checkpoint_adopt_stable(p, o->stable);
    primary = pbft_is_primary(p);
    for (uint32_t i = 0; i < o->n; i++) {
        struct slot *s;

        if (!log_in_window(p, o->hdrs[i].seq))
            continue;
        s = log_slot(p, o->hdrs[i].seq);
        normal_install_pp(p, s, &o->hdrs[i], batches[i]);
        if (!primary)
            normal_accepted_pp(p, s);
    }
    if (p->last_assigned < p->h)
        p->last_assigned = p->h;
    p->in_vc = false;
    p->view_changes++;
    ready_persist_meta(p);
    p->view_deadline = NO_TIMER;
    request_new_view(p);
    request_arm_timer(p);
    trace(p, "enter view v=%llu O=%u", (unsigned long long)w, o->n);
}

static void send_nv(struct pbft *p, uint32_t to)
{
    struct pbft_msg *m = ready_msg(p, PBFT_MSG_NEW_VIEW);

    if (m == NULL)
        return;
    m->u.nv = p->nv;
    ready_send(p, to, m);
}

static void nv_sign(struct pbft *p)
{
    uint8_t buf[VC_STATEMENT_MAX];
    size_t len = digest_nv_statement(p, &p->nv, buf, sizeof(buf));

    PBFT_ASSERT(len > 0);
    p->cfg.crypto.sign(p->cfg.crypto.ctx, buf, len, p->nv.sig);
}

static void nv_build(struct pbft *p, const struct pbft_view_change **v,
                     uint32_t n_v, const struct o_set *o)
{
    memset(&p->nv, 0, sizeof(p->nv));
    p->nv.replica = p->cfg.self;
    p->nv.view = p->view;
    for (uint32_t i = 0; i < n_v; i++) {
        store_copy(p, &p->nv_vcs[i], v[i]);
        p->nv_vc_list[i] = p->nv_vcs[i].vc;
    }
    p->nv.n_view_changes = n_v;
    p->nv.view_changes = p->nv_vc_list;
    for (uint32_t i = 0; i < o->n; i++) {
        const struct batch *b = pool_get(p, p->o_batches[i]);

        sig_vote_sign(p, PBFT_MSG_PREPREPARE, &o->hdrs[i]);
        p->nv_pps[i].hdr = o->hdrs[i];
        p->nv_pps[i].n_requests = b->n_requests;
        p->nv_pps[i].requests = b->reqs;
        /* Held past GC of the slots: a late replica may still ask. */
        pool_set(p, &p->nv_refs[i], p->o_batches[i]);
    }
    for (uint32_t i = o->n; i < p->L; i++)
        pool_set(p, &p->nv_refs[i], NO_BATCH);
    p->nv.n_preprepares = o->n;
    p->nv.preprepares = p->nv_pps;
    nv_sign(p);
    p->has_nv = true;
    p->nv_min_s = o->min_s;
}

/* The batches of O: null requests get a fresh empty buffer; the others
 * come from the VIEW-CHANGEs (or our own prepared certificates). */
static bool o_batches(struct pbft *p, const struct o_set *o)
{
    uint8_t null_digest[PBFT_DIGEST_SIZE];

    digest_null_batch(&p->cfg.crypto, null_digest);
    for (uint32_t i = 0; i < o->n; i++) {
        const struct pbft_vote *h = &o->hdrs[i];

        p->o_batches[i] = vcb_get(p, h->seq, h->digest);
        if (p->o_batches[i] == NO_BATCH &&
            memcmp(h->digest, null_digest, PBFT_DIGEST_SIZE) == 0) {
            p->o_batches[i] = pool_store(p, NULL, 0);
            if (p->o_batches[i] != NO_BATCH)
                pool_unref(p, p->o_batches[i]); /* held by the slot next */
        }
        if (p->o_batches[i] == NO_BATCH)
            return false;
    }
    return true;
}

/* The primary of p->view, in view change: with a quorum of VIEW-CHANGEs
 * for it, send NEW-VIEW and enter the view. */
static void vc_try_new_view(struct pbft *p)
{
    const struct pbft_view_change *v[PBFT_MAX_REPLICAS];
    struct o_set o = {.hdrs = p->o_hdrs};
    uint32_t n_v;

    if (!p->in_vc || !pbft_is_primary(p))
        return;
    n_v = collect_v(p, p->view, v);
    if (n_v < p->q)
        return;
    compute_o(p, p->view, v, n_v, &o);
    if (!o_batches(p, &o)) {
        pbft_drop(p, PBFT_EFULL, "new view: batch missing");
        return;
    }
    nv_build(p, v, n_v, &o);
    send_nv(p, PBFT_BROADCAST);
    trace(p, "send NEW-VIEW v=%llu V=%u O=%u", (unsigned long long)p->view, n_v,
          o.n);
    enter_view(p, p->view, &o, p->o_batches);
    /* The O pre-prepares are ours now: persist them like any we send. */
    for (uint32_t i = 0; i < o.n; i++) {
        struct slot *s = log_find(p, o.hdrs[i].seq);
        struct pbft_msg *m;

        if (s == NULL || !s->has_pp)
            continue;
        m = ready_msg(p, PBFT_MSG_PREPREPARE);
        PBFT_ASSERT(m != NULL);
        m->u.pp = p->nv_pps[i];
        ready_persist_msg(p, m, s->seq, s->pp.view, p->cfg.self);
    }
}

/* ---- receiving ----------------------------------------------------------- */

/* f+1 replicas proved (by a valid signed message) a view above ours: join
 * the smallest of those views (we cannot be left behind by a quorum, and f
 * liars cannot drag us). Its primary answers our VIEW-CHANGE with its
 * NEW-VIEW if the view change is already over. */
static void vc_join_rule(struct pbft *p)
{
    uint32_t count = 0;
    pbft_view min = 0;

    for (uint32_t r = 0; r < p->n; r++) {
        pbft_view w = p->seen_view[r];

        if (r == p->cfg.self || w <= p->view)
            continue;
        if (count == 0 || w < min)
            min = w;
        count++;
    }
    if (count >= p->f + 1)
        vc_start(p, min);
}

static void vc_note_view(struct pbft *p, uint32_t r, pbft_view w)
{
    if (w > p->seen_view[r])
        p->seen_view[r] = w;
}

/* A PRE-PREPARE, PREPARE or COMMIT for a view above ours (dropped as
 * stale): if validly signed, its sender is in that view. Cheap checks
 * first; at most one signature check per message that raises what we know
 * of its sender. */
void vc_view_hint(struct pbft *p, enum pbft_msg_type type,
                  const struct pbft_vote *v)
{
    uint32_t r = v->replica;
    bool from_primary;

    if (r >= p->n || r == p->cfg.self || v->view <= p->view ||
        v->view <= p->seen_view[r])
        return;
    from_primary = r == pbft_primary(p, v->view);
    if ((type == PBFT_MSG_PREPREPARE && !from_primary) ||
        (type == PBFT_MSG_PREPARE && from_primary))
        return;
    if (!sig_vote_verify(p, type, v))
        return;
    vc_note_view(p, r, v->view);
    trace(p, "r%u is in v=%llu (%s)", (unsigned)r, (unsigned long long)v->view,
          trace_type(type));
    vc_join_rule(p);
}

int vc_receive(struct pbft *p, uint32_t from, const struct pbft_view_change *vc)
{
    uint32_t r = vc->replica;

    (void)from;
    if (r >= p->n || r == p->cfg.self)
        return pbft_drop(p, PBFT_EBADMSG, "view-change sender");
    if (vc->new_view == p->view && !p->in_vc) {
        /* r missed our NEW-VIEW (or the whole view change): resend it. Its
         * batches are held, so it stays valid after GC; r adopts its
         * checkpoint and fetches the state it lacks. */
        if (pbft_is_primary(p) && p->has_nv && p->nv.view == p->view)
            send_nv(p, r);
        return pbft_drop(p, PBFT_ESTALE, "view-change for current view");
    }
    if (vc->new_view < p->view)
        return pbft_drop(p, PBFT_ESTALE, "old view-change");
    if (p->vcs[r].valid && p->vcs[r].vc.new_view >= vc->new_view)
        return pbft_drop(p, PBFT_ESTALE, "duplicate view-change");
    if (!vc_valid(p, vc, true))
        return pbft_drop(p, PBFT_EBADMSG, "invalid view-change");
    store_copy(p, &p->vcs[r], vc);
    vc_note_view(p, r, vc->new_view);
    for (uint32_t i = 0; i < vc->n_prepared; i++)
        vcb_put(p, &vc->prepared[i].pp);
    trace(p, "recv VIEW-CHANGE v=%llu from r%u",
          (unsigned long long)vc->new_view, (unsigned)r);
    vc_join_rule(p);
    if (vc->new_view == p->view)
        vc_try_new_view(p);
    return PBFT_OK;
}

/* V of a NEW-VIEW: a quorum of distinct, valid VIEW-CHANGEs for its view. */
static bool nv_v_valid(struct pbft *p, const struct pbft_new_view *nv)
{
    uint64_t seen = 0;

    for (uint32_t i = 0; i < nv->n_view_changes; i++) {
        const struct pbft_view_change *vc = &nv->view_changes[i];

        if (vc->replica >= p->n || vc->new_view != nv->view ||
            (seen & (UINT64_C(1) << vc->replica)) != 0)
            return false;
        seen |= UINT64_C(1) << vc->replica;
    }
    for (uint32_t i = 0; i < nv->n_view_changes; i++)
        if (!vc_valid(p, &nv->view_changes[i], false))
            return false;
    return true;
}

/* O of a NEW-VIEW equals the one we compute from its V, each pre-prepare
 * signed by the new primary and carrying its batch. */
static bool nv_o_valid(struct pbft *p, const struct pbft_new_view *nv,
                       const struct o_set *o)
{
    if (nv->n_preprepares != o->n || (o->n > 0 && nv->preprepares == NULL))
        return false;
    for (uint32_t i = 0; i < o->n; i++) {
        const struct pbft_vote *a = &nv->preprepares[i].hdr;
        const struct pbft_vote *b = &o->hdrs[i];

        if (a->replica != b->replica || a->view != b->view ||
            a->seq != b->seq || a->timestamp_ms != b->timestamp_ms ||
            memcmp(a->digest, b->digest, PBFT_DIGEST_SIZE) != 0)
            return false;
        if (!batch_shape_ok(p, &nv->preprepares[i]))
            return false;
    }
    for (uint32_t i = 0; i < o->n; i++) {
        if (!sig_vote_verify(p, PBFT_MSG_PREPREPARE, &nv->preprepares[i].hdr))
            return false;
        if (!digest_batch_matches(p, &nv->preprepares[i]))
            return false;
    }
    return true;
}

static bool nv_sig_ok(struct pbft *p, const struct pbft_new_view *nv)
{
    uint8_t buf[VC_STATEMENT_MAX];
    size_t len = digest_nv_statement(p, nv, buf, sizeof(buf));

    p->verify_calls++;
    if (len > 0 &&
        p->cfg.crypto.verify(p->cfg.crypto.ctx, nv->replica, buf, len, nv->sig))
        return true;
    p->bad_signatures++;
    return false;
}

int vc_new_view_receive(struct pbft *p, uint32_t from,
                        const struct pbft_new_view *nv)
{
    const struct pbft_view_change *v[PBFT_MAX_REPLICAS];
    struct o_set o = {.hdrs = p->o_hdrs};

    (void)from;
    if (nv->replica != pbft_primary(p, nv->view) || nv->replica == p->cfg.self)
        return pbft_drop(p, PBFT_EBADMSG, "new-view sender");
    if (nv->view < p->view || (nv->view == p->view && !p->in_vc))
        return pbft_drop(p, PBFT_ESTALE, "old new-view");
    if (nv->n_view_changes < p->q || nv->n_view_changes > p->n ||
        nv->view_changes == NULL || nv->n_preprepares > p->L)
        return pbft_drop(p, PBFT_EBADMSG, "new-view counts");
    if (!nv_sig_ok(p, nv))
        return pbft_drop(p, PBFT_EBADSIG, "new-view signature");
    if (!nv_v_valid(p, nv))
        return pbft_drop(p, PBFT_EBADMSG, "new-view V");
    for (uint32_t i = 0; i < nv->n_view_changes; i++)
        v[i] = &nv->view_changes[i];
    compute_o(p, nv->view, v, nv->n_view_changes, &o);
    if (!nv_o_valid(p, nv, &o))
        return pbft_drop(p, PBFT_EBADMSG, "new-view O differs");
    /* The stable checkpoint and O live in the message: copy before use.
     * The recomputed headers take the primary's verified signatures. */
    for (uint32_t i = 0; i < o.n; i++) {
        memcpy(o.hdrs[i].sig, nv->preprepares[i].hdr.sig, PBFT_SIG_SIZE);
        p->o_batches[i] = pool_store(p, nv->preprepares[i].requests,
                                     nv->preprepares[i].n_requests);
        if (p->o_batches[i] == NO_BATCH)
            return pbft_drop(p, PBFT_EFULL, "batch pool exhausted");
        pool_unref(p, p->o_batches[i]);
    }
    trace(p, "recv NEW-VIEW v=%llu V=%u O=%u -> accepted",
          (unsigned long long)nv->view, nv->n_view_changes, o.n);
    if (p->view < nv->view)
        p->view = nv->view;
    enter_view(p, nv->view, &o, p->o_batches);
    return PBFT_OK;
}

/* ---- timer, restart ------------------------------------------------------ */

static bool someone_ahead(const struct pbft *p)
{
    for (uint32_t r = 0; r < p->n; r++)
        if (r != p->cfg.self && p->vcs[r].valid &&
            p->vcs[r].vc.new_view > p->view)
            return true;
    return false;
}

void vc_timeout(struct pbft *p)
{
    const struct pbft_view_change *v[PBFT_MAX_REPLICAS];

    if (p->stopped) {
        p->view_deadline = NO_TIMER; /* see pbft_set_stop() */
        return;
    }
    if (p->view_deadline == NO_TIMER || p->now < p->view_deadline)
        return;
    if (!p->in_vc) {
        /* First expiry: the primary may just have missed the requests
         * (restarted, or they reached only us). Hand them to everyone;
         * only a second expiry without progress votes it out. */
        if (!p->complained) {
            request_complain(p);
            return;
        }
        trace(p, "timeout v=%llu", (unsigned long long)p->view);
        vc_start(p, p->view + 1);
        return;
    }
    /* A quorum moved to this view but its primary stayed silent, or some
     * replica is already past it: go on. Otherwise resend, so one replica
     * that cannot hear the others does not run ahead of everyone. */
    if (collect_v(p, p->view, v) >= p->q || someone_ahead(p)) {
        vc_start(p, p->view + 1);
        return;
    }
    if (p->backoff < 32)
        p->backoff++;
    p->view_deadline = p->now + normal_view_timeout(p);
    own_vc_send(p, false);
}

/* Restore: our last VIEW-CHANGE, batches included, resent as it was. */
int vc_restore_own(struct pbft *p, const struct pbft_view_change *vc)
{
    if (vc->replica != p->cfg.self || !vc_shape_ok(p, vc, true))
        return PBFT_ECORRUPT;
    store_copy(p, &p->own_vc, vc);
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        const struct pbft_preprepare *pp = &vc->prepared[i].pp;
        int32_t b = pool_store(p, pp->requests, pp->n_requests);

        if (b == NO_BATCH)
            return PBFT_ENOMEM;
        pool_set(p, &p->own_vc_refs[i], b);
        pool_unref(p, b);
        p->own_vc.certs[i].pp.n_requests = pp->n_requests;
        p->own_vc.certs[i].pp.requests = pool_get(p, b)->reqs;
    }
    p->has_own_vc = true;
    return PBFT_OK;
}

void vc_after_start(struct pbft *p)
{
    if (!p->in_vc)
        return;
    if (!p->has_own_vc || p->own_vc.vc.new_view != p->view)
        own_vc_build(p); /* crashed between META and the VIEW-CHANGE */
    own_vc_send(p, true);
    own_vc_record(p);
    p->view_deadline = p->now + normal_view_timeout(p);
    vc_try_new_view(p);
}
