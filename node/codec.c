/*
 * codec.c - pbft.h structs <-> protobuf (consensus.proto, ledger.proto).
 *
 * Decoding: size cap, protobuf-c unpack under an allocation budget (so a
 * message of many tiny elements cannot amplify into gigabytes), validation
 * of the whole tree, then one arena allocation sized exactly for the struct
 * tree, filled in a second pass. Encoding mirrors it: one arena holds the
 * protobuf-c structs that point at the caller's bytes, then pack.
 */
#include "codec.h"

#include "store.h"

#include <string.h>

#define ALIGN(x) (((x) + 15u) & ~(size_t)15u)

/* ---- bump arena --------------------------------------------------------- */

struct bump {
    uint8_t *p;
    size_t used, cap;
};

static void *bump(struct bump *b, size_t n)
{
    size_t a = ALIGN(n);
    /* Sizes were computed from the same tree: a shortfall is our bug. */
    LG_ASSERT(a <= b->cap - b->used);
    void *r = b->p + b->used;
    b->used += a;
    return r;
}

/* Array of count elements, NULL when empty. */
static void *bump_array(struct bump *b, size_t count, size_t size)
{
    return count == 0 ? NULL : bump(b, count * size);
}

/* ---- budgeted allocator for protobuf-c ----------------------------------- */

struct budget {
    size_t used, max;
};

struct budget_hdr {
    size_t size;
    size_t pad; /* keeps the payload 16-byte aligned */
};

static void *budget_alloc(void *data, size_t size)
{
    struct budget *b = data;
    size_t total = size + sizeof(struct budget_hdr);
    if (total < size || total > b->max - b->used)
        return NULL;
    struct budget_hdr *h = malloc(total);
    if (h == NULL)
        return NULL;
    h->size = total;
    b->used += total;
    return h + 1;
}

static void budget_free(void *data, void *ptr)
{
    struct budget *b = data;
    if (ptr == NULL)
        return;
    struct budget_hdr *h = (struct budget_hdr *)ptr - 1;
    b->used -= h->size;
    free(h);
}

/* Legitimate messages expand about 3x when unpacked; 8x plus slack leaves
 * room and stops the 50x blow-up of empty repeated submessages. */
static void budget_init(struct budget *b, ProtobufCAllocator *a, size_t len)
{
    b->used = 0;
    b->max = len * 8 + 65536;
    a->alloc = budget_alloc;
    a->free = budget_free;
    a->allocator_data = b;
}

/* ---- limits ------------------------------------------------------------- */

void codec_limits_from_config(const struct pbft_config *cfg,
                              struct codec_limits *lim)
{
    lim->n = cfg->n;
    lim->batch_max = cfg->batch_max;
    lim->request_bytes_max = cfg->request_bytes_max;
    lim->window_max = cfg->watermark_window;
    lim->msg_bytes_max = CODEC_MSG_BYTES_DEFAULT;
}

/* ---- validation of a decoded protobuf tree ------------------------------ */

static bool v_vote(const Tc__Vote *v, const struct codec_limits *lim)
{
    return v != NULL && v->replica < lim->n &&
           v->digest.len == PBFT_DIGEST_SIZE && v->sig.len == PBFT_SIG_SIZE;
}

static bool v_votes(Tc__Vote *const *votes, size_t n,
                    const struct codec_limits *lim)
{
    if (n > lim->n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!v_vote(votes[i], lim))
            return false;
    return true;
}

static bool v_request(const Tc__Request *r, const struct codec_limits *lim)
{
    return r != NULL && r->client.len == PBFT_KEY_SIZE &&
           r->data.len <= lim->request_bytes_max;
}

static bool v_pp(const Tc__PrePrepare *pp, const struct codec_limits *lim)
{
    if (pp == NULL || !v_vote(pp->hdr, lim) || pp->n_requests > lim->batch_max)
        return false;
    for (size_t i = 0; i < pp->n_requests; i++)
        if (!v_request(pp->requests[i], lim))
            return false;
    return true;
}

static bool v_ckpt(const Tc__CheckpointCert *c, const struct codec_limits *lim)
{
    return c != NULL && c->digest.len == PBFT_DIGEST_SIZE &&
           v_votes(c->votes, c->n_votes, lim);
}

static bool v_prepared(const Tc__PreparedCert *pc,
                       const struct codec_limits *lim)
{
    return pc != NULL && v_pp(pc->pp, lim) &&
           v_votes(pc->prepares, pc->n_prepares, lim);
}

static bool v_vc(const Tc__ViewChange *vc, const struct codec_limits *lim)
{
    if (vc == NULL || vc->replica >= lim->n || vc->sig.len != PBFT_SIG_SIZE ||
        !v_ckpt(vc->stable, lim) || vc->n_prepared > lim->window_max)
        return false;
    for (size_t i = 0; i < vc->n_prepared; i++)
        if (!v_prepared(vc->prepared[i], lim))
            return false;
    return true;
}

static bool v_nv(const Tc__NewView *nv, const struct codec_limits *lim)
{
    if (nv == NULL || nv->replica >= lim->n || nv->sig.len != PBFT_SIG_SIZE ||
        nv->n_view_changes > lim->n || nv->n_preprepares > lim->window_max)
        return false;
    for (size_t i = 0; i < nv->n_view_changes; i++)
        if (!v_vc(nv->view_changes[i], lim))
            return false;
    for (size_t i = 0; i < nv->n_preprepares; i++)
        if (!v_pp(nv->preprepares[i], lim))
            return false;
    return true;
}

static bool v_fetch(const Tc__Fetch *f, const struct codec_limits *lim)
{
    return f != NULL && f->replica < lim->n && f->sig.len == PBFT_SIG_SIZE;
}

static bool v_msg(const Tc__ConsensusMsg *m, const struct codec_limits *lim)
{
    switch (m->body_case) {
    case TC__CONSENSUS_MSG__BODY_REQUEST:
        return v_request(m->request, lim);
    case TC__CONSENSUS_MSG__BODY_PREPREPARE:
        return v_pp(m->preprepare, lim);
    case TC__CONSENSUS_MSG__BODY_PREPARE:
        return v_vote(m->prepare, lim);
    case TC__CONSENSUS_MSG__BODY_COMMIT:
        return v_vote(m->commit, lim);
    case TC__CONSENSUS_MSG__BODY_CHECKPOINT:
        return v_vote(m->checkpoint, lim);
    case TC__CONSENSUS_MSG__BODY_VIEW_CHANGE:
        return v_vc(m->view_change, lim);
    case TC__CONSENSUS_MSG__BODY_NEW_VIEW:
        return v_nv(m->new_view, lim);
    case TC__CONSENSUS_MSG__BODY_FETCH:
        return v_fetch(m->fetch, lim);
    default:
        return false;
    }
}

/* ---- arena sizes of the struct tree (validated input only) ------------- */

static size_t sz_pp(const Tc__PrePrepare *pp)
{
    size_t s = ALIGN(pp->n_requests * sizeof(struct pbft_request));
    for (size_t i = 0; i < pp->n_requests; i++)
        s += ALIGN(pp->requests[i]->data.len);
    return s;
}

static size_t sz_votes(size_t n)
{
    return ALIGN(n * sizeof(struct pbft_vote));
}

static size_t sz_vc(const Tc__ViewChange *vc)
{
    size_t s = sz_votes(vc->stable->n_votes) +
               ALIGN(vc->n_prepared * sizeof(struct pbft_prepared_cert));
    for (size_t i = 0; i < vc->n_prepared; i++)
        s += sz_pp(vc->prepared[i]->pp) + sz_votes(vc->prepared[i]->n_prepares);
    return s;
}

static size_t sz_nv(const Tc__NewView *nv)
{
    size_t s = ALIGN(nv->n_view_changes * sizeof(struct pbft_view_change)) +
               ALIGN(nv->n_preprepares * sizeof(struct pbft_preprepare));
    for (size_t i = 0; i < nv->n_view_changes; i++)
        s += sz_vc(nv->view_changes[i]);
    for (size_t i = 0; i < nv->n_preprepares; i++)
        s += sz_pp(nv->preprepares[i]);
    return s;
}

static size_t sz_msg(const Tc__ConsensusMsg *m)
{
    size_t s = ALIGN(sizeof(struct pbft_msg));
    switch (m->body_case) {
    case TC__CONSENSUS_MSG__BODY_REQUEST:
        return s + ALIGN(m->request->data.len);
    case TC__CONSENSUS_MSG__BODY_PREPREPARE:
        return s + sz_pp(m->preprepare);
    case TC__CONSENSUS_MSG__BODY_VIEW_CHANGE:
        return s + sz_vc(m->view_change);
    case TC__CONSENSUS_MSG__BODY_NEW_VIEW:
        return s + sz_nv(m->new_view);
    default:
        return s;
    }
}

/* ---- fill the struct tree from validated protobuf ---------------------- */

static void f_vote(struct pbft_vote *d, const Tc__Vote *s)
{
    d->replica = s->replica;
    d->view = s->view;
    d->seq = s->seq;
    memcpy(d->digest, s->digest.data, PBFT_DIGEST_SIZE);
    d->timestamp_ms = s->timestamp_ms;
    memcpy(d->sig, s->sig.data, PBFT_SIG_SIZE);
}

static struct pbft_vote *f_votes(struct bump *b, Tc__Vote *const *s, size_t n)
{
    struct pbft_vote *v = bump_array(b, n, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        f_vote(&v[i], s[i]);
    return v;
}

static void f_request(struct bump *b, struct pbft_request *d,
                      const Tc__Request *s)
{
    memcpy(d->client, s->client.data, PBFT_KEY_SIZE);
    d->req_no = s->req_no;
    d->len = (uint32_t)s->data.len;
    uint8_t *data = bump_array(b, s->data.len, 1);
    if (s->data.len > 0)
        memcpy(data, s->data.data, s->data.len);
    d->data = data;
}

static void f_pp(struct bump *b, struct pbft_preprepare *d,
                 const Tc__PrePrepare *s)
{
    f_vote(&d->hdr, s->hdr);
    d->n_requests = (uint32_t)s->n_requests;
    d->requests = bump_array(b, s->n_requests, sizeof(*d->requests));
    for (size_t i = 0; i < s->n_requests; i++)
        f_request(b, &d->requests[i], s->requests[i]);
}

static void f_ckpt(struct bump *b, struct pbft_checkpoint_cert *d,
                   const Tc__CheckpointCert *s)
{
    d->seq = s->seq;
    memcpy(d->digest, s->digest.data, PBFT_DIGEST_SIZE);
    d->n_votes = (uint32_t)s->n_votes;
    d->votes = f_votes(b, s->votes, s->n_votes);
}

static void f_vc(struct bump *b, struct pbft_view_change *d,
                 const Tc__ViewChange *s)
{
    d->replica = s->replica;
    d->new_view = s->new_view;
    f_ckpt(b, &d->stable, s->stable);
    d->n_prepared = (uint32_t)s->n_prepared;
    d->prepared = bump_array(b, s->n_prepared, sizeof(*d->prepared));
    for (size_t i = 0; i < s->n_prepared; i++) {
        const Tc__PreparedCert *pc = s->prepared[i];
        f_pp(b, &d->prepared[i].pp, pc->pp);
        d->prepared[i].n_prepares = (uint32_t)pc->n_prepares;
        d->prepared[i].prepares = f_votes(b, pc->prepares, pc->n_prepares);
    }
    memcpy(d->sig, s->sig.data, PBFT_SIG_SIZE);
}

static void f_nv(struct bump *b, struct pbft_new_view *d, const Tc__NewView *s)
{
    d->replica = s->replica;
    d->view = s->view;
    d->n_view_changes = (uint32_t)s->n_view_changes;
    d->view_changes =
        bump_array(b, s->n_view_changes, sizeof(*d->view_changes));
    for (size_t i = 0; i < s->n_view_changes; i++)
        f_vc(b, &d->view_changes[i], s->view_changes[i]);
    d->n_preprepares = (uint32_t)s->n_preprepares;
    d->preprepares = bump_array(b, s->n_preprepares, sizeof(*d->preprepares));
    for (size_t i = 0; i < s->n_preprepares; i++)
        f_pp(b, &d->preprepares[i], s->preprepares[i]);
    memcpy(d->sig, s->sig.data, PBFT_SIG_SIZE);
}

static void f_msg(struct bump *b, struct pbft_msg *d, const Tc__ConsensusMsg *s)
{
    switch (s->body_case) {
    case TC__CONSENSUS_MSG__BODY_REQUEST:
        d->type = PBFT_MSG_REQUEST;
        f_request(b, &d->u.request, s->request);
        break;
    case TC__CONSENSUS_MSG__BODY_PREPREPARE:
        d->type = PBFT_MSG_PREPREPARE;
        f_pp(b, &d->u.pp, s->preprepare);
        break;
    case TC__CONSENSUS_MSG__BODY_PREPARE:
        d->type = PBFT_MSG_PREPARE;
        f_vote(&d->u.vote, s->prepare);
        break;
    case TC__CONSENSUS_MSG__BODY_COMMIT:
        d->type = PBFT_MSG_COMMIT;
        f_vote(&d->u.vote, s->commit);
        break;
    case TC__CONSENSUS_MSG__BODY_CHECKPOINT:
        d->type = PBFT_MSG_CHECKPOINT;
        f_vote(&d->u.vote, s->checkpoint);
        break;
    case TC__CONSENSUS_MSG__BODY_VIEW_CHANGE:
        d->type = PBFT_MSG_VIEW_CHANGE;
        f_vc(b, &d->u.vc, s->view_change);
        break;
    case TC__CONSENSUS_MSG__BODY_NEW_VIEW:
        d->type = PBFT_MSG_NEW_VIEW;
        f_nv(b, &d->u.nv, s->new_view);
        break;
    case TC__CONSENSUS_MSG__BODY_FETCH:
        d->type = PBFT_MSG_FETCH;
        d->u.fetch.replica = s->fetch->replica;
        d->u.fetch.seq = s->fetch->seq;
        memcpy(d->u.fetch.sig, s->fetch->sig.data, PBFT_SIG_SIZE);
        break;
    default:
        LG_ASSERT(0); /* v_msg rejected every other case */
    }
}

/* Builds the struct tree of a validated message in one allocation. */
static int build_msg(const Tc__ConsensusMsg *pm, struct pbft_msg **out)
{
    struct bump b = {.used = 0, .cap = sz_msg(pm)};
    b.p = calloc(1, b.cap);
    if (b.p == NULL)
        return LG_ENOMEM;
    struct pbft_msg *m = bump(&b, sizeof(*m));
    f_msg(&b, m, pm);
    LG_ASSERT(b.used == b.cap);
    *out = m;
    return LG_OK;
}

int codec_decode_msg(const uint8_t *buf, size_t len,
                     const struct codec_limits *lim, struct pbft_msg **out)
{
    if (buf == NULL || len == 0)
        return LG_EBADMSG;
    if (len > lim->msg_bytes_max)
        return LG_ETOOBIG;
    struct budget bud;
    ProtobufCAllocator alloc;
    budget_init(&bud, &alloc, len);
    Tc__ConsensusMsg *pm = tc__consensus_msg__unpack(&alloc, len, buf);
    if (pm == NULL)
        return LG_EBADMSG;
    int rv = v_msg(pm, lim) ? build_msg(pm, out) : LG_EBADMSG;
    tc__consensus_msg__free_unpacked(pm, &alloc);
    return rv;
}

void codec_msg_free(struct pbft_msg *m)
{
    free(m); /* the message is the start of its arena */
}

/* ---- encoding ------------------------------------------------------------
 * The protobuf-c structs live in one arena and point at the caller's bytes
 * (never written: pack only reads them). */

static uint8_t *unconst(const uint8_t *p)
{
    return (uint8_t *)(uintptr_t)p;
}

static size_t e_sz_votes(size_t n)
{
    return ALIGN(n * sizeof(Tc__Vote *)) + n * ALIGN(sizeof(Tc__Vote));
}

static size_t e_sz_pp(const struct pbft_preprepare *pp)
{
    return ALIGN(sizeof(Tc__PrePrepare)) + ALIGN(sizeof(Tc__Vote)) +
           ALIGN(pp->n_requests * sizeof(Tc__Request *)) +
           pp->n_requests * ALIGN(sizeof(Tc__Request));
}

static size_t e_sz_ckpt(const struct pbft_checkpoint_cert *c)
{
    return ALIGN(sizeof(Tc__CheckpointCert)) + e_sz_votes(c->n_votes);
}

static size_t e_sz_vc(const struct pbft_view_change *vc)
{
    size_t s = ALIGN(sizeof(Tc__ViewChange)) + e_sz_ckpt(&vc->stable) +
               ALIGN(vc->n_prepared * sizeof(Tc__PreparedCert *));
    for (uint32_t i = 0; i < vc->n_prepared; i++)
        s += ALIGN(sizeof(Tc__PreparedCert)) + e_sz_pp(&vc->prepared[i].pp) +
             e_sz_votes(vc->prepared[i].n_prepares);
    return s;
}

static size_t e_sz_nv(const struct pbft_new_view *nv)
{
    size_t s = ALIGN(sizeof(Tc__NewView)) +
               ALIGN(nv->n_view_changes * sizeof(Tc__ViewChange *)) +
               ALIGN(nv->n_preprepares * sizeof(Tc__PrePrepare *));
    for (uint32_t i = 0; i < nv->n_view_changes; i++)
        s += e_sz_vc(&nv->view_changes[i]);
    for (uint32_t i = 0; i < nv->n_preprepares; i++)
        s += e_sz_pp(&nv->preprepares[i]);
    return s;
}

static size_t e_sz_msg(const struct pbft_msg *m)
{
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        return ALIGN(sizeof(Tc__Request));
    case PBFT_MSG_PREPREPARE:
        return e_sz_pp(&m->u.pp);
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        return ALIGN(sizeof(Tc__Vote));
    case PBFT_MSG_VIEW_CHANGE:
        return e_sz_vc(&m->u.vc);
    case PBFT_MSG_NEW_VIEW:
        return e_sz_nv(&m->u.nv);
    case PBFT_MSG_FETCH:
        return ALIGN(sizeof(Tc__Fetch));
    }
    return 0;
}

static Tc__Vote *b_vote(struct bump *b, const struct pbft_vote *s)
{
    Tc__Vote *v = bump(b, sizeof(*v));
    tc__vote__init(v);
    v->replica = s->replica;
    v->view = s->view;
    v->seq = s->seq;
    v->digest.data = unconst(s->digest);
    v->digest.len = PBFT_DIGEST_SIZE;
    v->timestamp_ms = s->timestamp_ms;
    v->sig.data = unconst(s->sig);
    v->sig.len = PBFT_SIG_SIZE;
    return v;
}

static Tc__Vote **b_votes(struct bump *b, const struct pbft_vote *s, uint32_t n)
{
    Tc__Vote **v = bump_array(b, n, sizeof(*v));
    for (uint32_t i = 0; i < n; i++)
        v[i] = b_vote(b, &s[i]);
    return v;
}

static Tc__Request *b_request(struct bump *b, const struct pbft_request *s)
{
    Tc__Request *r = bump(b, sizeof(*r));
    tc__request__init(r);
    r->client.data = unconst(s->client);
    r->client.len = PBFT_KEY_SIZE;
    r->req_no = s->req_no;
    r->data.data = unconst(s->data);
    r->data.len = s->len;
    return r;
}

static Tc__PrePrepare *b_pp(struct bump *b, const struct pbft_preprepare *s)
{
    Tc__PrePrepare *pp = bump(b, sizeof(*pp));
    tc__pre_prepare__init(pp);
    pp->hdr = b_vote(b, &s->hdr);
    pp->n_requests = s->n_requests;
    pp->requests = bump_array(b, s->n_requests, sizeof(*pp->requests));
    for (uint32_t i = 0; i < s->n_requests; i++)
        pp->requests[i] = b_request(b, &s->requests[i]);
    return pp;
}

static Tc__CheckpointCert *b_ckpt(struct bump *b,
                                  const struct pbft_checkpoint_cert *s)
{
    Tc__CheckpointCert *c = bump(b, sizeof(*c));
    tc__checkpoint_cert__init(c);
    c->seq = s->seq;
    c->digest.data = unconst(s->digest);
    c->digest.len = PBFT_DIGEST_SIZE;
    c->n_votes = s->n_votes;
    c->votes = b_votes(b, s->votes, s->n_votes);
    return c;
}

static Tc__ViewChange *b_vc(struct bump *b, const struct pbft_view_change *s)
{
    Tc__ViewChange *vc = bump(b, sizeof(*vc));
    tc__view_change__init(vc);
    vc->replica = s->replica;
    vc->new_view = s->new_view;
    vc->stable = b_ckpt(b, &s->stable);
    vc->n_prepared = s->n_prepared;
    vc->prepared = bump_array(b, s->n_prepared, sizeof(*vc->prepared));
    for (uint32_t i = 0; i < s->n_prepared; i++) {
        Tc__PreparedCert *pc = bump(b, sizeof(*pc));
        tc__prepared_cert__init(pc);
        pc->pp = b_pp(b, &s->prepared[i].pp);
        pc->n_prepares = s->prepared[i].n_prepares;
        pc->prepares =
            b_votes(b, s->prepared[i].prepares, s->prepared[i].n_prepares);
        vc->prepared[i] = pc;
    }
    vc->sig.data = unconst(s->sig);
    vc->sig.len = PBFT_SIG_SIZE;
    return vc;
}

static Tc__NewView *b_nv(struct bump *b, const struct pbft_new_view *s)
{
    Tc__NewView *nv = bump(b, sizeof(*nv));
    tc__new_view__init(nv);
    nv->replica = s->replica;
    nv->view = s->view;
    nv->n_view_changes = s->n_view_changes;
    nv->view_changes =
        bump_array(b, s->n_view_changes, sizeof(*nv->view_changes));
    for (uint32_t i = 0; i < s->n_view_changes; i++)
        nv->view_changes[i] = b_vc(b, &s->view_changes[i]);
    nv->n_preprepares = s->n_preprepares;
    nv->preprepares = bump_array(b, s->n_preprepares, sizeof(*nv->preprepares));
    for (uint32_t i = 0; i < s->n_preprepares; i++)
        nv->preprepares[i] = b_pp(b, &s->preprepares[i]);
    nv->sig.data = unconst(s->sig);
    nv->sig.len = PBFT_SIG_SIZE;
    return nv;
}

static void b_msg(struct bump *b, Tc__ConsensusMsg *pm,
                  const struct pbft_msg *m)
{
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        pm->body_case = TC__CONSENSUS_MSG__BODY_REQUEST;
        pm->request = b_request(b, &m->u.request);
        break;
    case PBFT_MSG_PREPREPARE:
        pm->body_case = TC__CONSENSUS_MSG__BODY_PREPREPARE;
        pm->preprepare = b_pp(b, &m->u.pp);
        break;
    case PBFT_MSG_PREPARE:
        pm->body_case = TC__CONSENSUS_MSG__BODY_PREPARE;
        pm->prepare = b_vote(b, &m->u.vote);
        break;
    case PBFT_MSG_COMMIT:
        pm->body_case = TC__CONSENSUS_MSG__BODY_COMMIT;
        pm->commit = b_vote(b, &m->u.vote);
        break;
    case PBFT_MSG_CHECKPOINT:
        pm->body_case = TC__CONSENSUS_MSG__BODY_CHECKPOINT;
        pm->checkpoint = b_vote(b, &m->u.vote);
        break;
    case PBFT_MSG_VIEW_CHANGE:
        pm->body_case = TC__CONSENSUS_MSG__BODY_VIEW_CHANGE;
        pm->view_change = b_vc(b, &m->u.vc);
        break;
    case PBFT_MSG_NEW_VIEW:
        pm->body_case = TC__CONSENSUS_MSG__BODY_NEW_VIEW;
        pm->new_view = b_nv(b, &m->u.nv);
        break;
    case PBFT_MSG_FETCH:
        pm->body_case = TC__CONSENSUS_MSG__BODY_FETCH;
        pm->fetch = bump(b, sizeof(*pm->fetch));
        tc__fetch__init(pm->fetch);
        pm->fetch->replica = m->u.fetch.replica;
        pm->fetch->seq = m->u.fetch.seq;
        pm->fetch->sig.data = unconst(m->u.fetch.sig);
        pm->fetch->sig.len = PBFT_SIG_SIZE;
        break;
    }
}

/* Packs any protobuf-c message into a malloc'd buffer. */
static int pack_message(const ProtobufCMessage *pm, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(pm);
    uint8_t *buf = malloc(n > 0 ? n : 1);
    if (buf == NULL)
        return LG_ENOMEM;
    size_t w = protobuf_c_message_pack(pm, buf);
    LG_ASSERT(w == n);
    *out = buf;
    *len = n;
    return LG_OK;
}

int codec_encode_msg(const struct pbft_msg *m, uint8_t **out, size_t *len)
{
    if (m == NULL || m->type < PBFT_MSG_REQUEST || m->type > PBFT_MSG_TYPE_MAX)
        return LG_EINVAL;
    struct bump b = {.used = 0, .cap = e_sz_msg(m)};
    b.p = malloc(b.cap);
    if (b.p == NULL)
        return LG_ENOMEM;
    Tc__ConsensusMsg pm = TC__CONSENSUS_MSG__INIT;
    b_msg(&b, &pm, m);
    LG_ASSERT(b.used == b.cap);
    int rv = pack_message(&pm.base, out, len);
    free(b.p);
    return rv;
}

/* ---- records ------------------------------------------------------------ */

int codec_record_key(const struct pbft_record *r,
                     uint8_t key[CODEC_RECORD_KEY_SIZE], size_t *klen)
{
    memset(key, 0, CODEC_RECORD_KEY_SIZE);
    key[0] = 'p';
    key[1] = '/';
    if (r->type == PBFT_REC_META) {
        key[2] = PBFT_REC_META;
    } else if (r->type == PBFT_REC_MSG && r->msg != NULL) {
        key[2] = PBFT_REC_MSG;
        store_put_be64(key + 3, r->seq);
        key[11] = (uint8_t)r->msg->type;
        store_put_be64(key + 12, r->view);
        key[20] = (uint8_t)(r->replica >> 24);
        key[21] = (uint8_t)(r->replica >> 16);
        key[22] = (uint8_t)(r->replica >> 8);
        key[23] = (uint8_t)r->replica;
    } else {
        return LG_EINVAL;
    }
    *klen = CODEC_RECORD_KEY_SIZE;
    return LG_OK;
}

bool codec_record_key_seq(const uint8_t *key, size_t klen, pbft_seq *seq)
{
    if (klen != CODEC_RECORD_KEY_SIZE || key[0] != 'p' || key[1] != '/' ||
        key[2] != PBFT_REC_MSG)
        return false;
    *seq = store_get_be64(key + 3);
    return true;
}

int codec_encode_record(const struct pbft_record *r, uint8_t **out, size_t *len)
{
    if (r->type == PBFT_REC_MSG && r->msg != NULL)
        return codec_encode_msg(r->msg, out, len);
    if (r->type != PBFT_REC_META || r->meta == NULL)
        return LG_EINVAL;
    const struct pbft_meta *m = r->meta;
    struct bump b = {.used = 0, .cap = e_sz_ckpt(&m->stable)};
    b.p = malloc(b.cap);
    if (b.p == NULL)
        return LG_ENOMEM;
    Tc__ConsensusMeta pm = TC__CONSENSUS_META__INIT;
    pm.view = m->view;
    pm.in_view_change = m->in_view_change;
    pm.stable = b_ckpt(&b, &m->stable);
    pm.last_seq_assigned = m->last_seq_assigned;
    int rv = pack_message(&pm.base, out, len);
    free(b.p);
    return rv;
}

static int decode_meta(const uint8_t *val, size_t vlen,
                       const struct codec_limits *lim,
                       struct codec_record **out)
{
    if (vlen > lim->msg_bytes_max)
        return LG_ECORRUPT;
    struct budget bud;
    ProtobufCAllocator alloc;
    budget_init(&bud, &alloc, vlen);
    Tc__ConsensusMeta *pm = tc__consensus_meta__unpack(&alloc, vlen, val);
    if (pm == NULL)
        return LG_ECORRUPT;
    if (!v_ckpt(pm->stable, lim)) {
        tc__consensus_meta__free_unpacked(pm, &alloc);
        return LG_ECORRUPT;
    }
    struct bump b = {.used = 0};
    b.cap = ALIGN(sizeof(struct codec_record)) + sz_votes(pm->stable->n_votes);
    b.p = calloc(1, b.cap);
    if (b.p == NULL) {
        tc__consensus_meta__free_unpacked(pm, &alloc);
        return LG_ENOMEM;
    }
    struct codec_record *cr = bump(&b, sizeof(*cr));
    cr->meta.view = pm->view;
    cr->meta.in_view_change = pm->in_view_change;
    cr->meta.last_seq_assigned = pm->last_seq_assigned;
    f_ckpt(&b, &cr->meta.stable, pm->stable);
    cr->rec.type = PBFT_REC_META;
    cr->rec.meta = &cr->meta;
    tc__consensus_meta__free_unpacked(pm, &alloc);
    *out = cr;
    return LG_OK;
}

int codec_decode_record(const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen, const struct codec_limits *lim,
                        struct codec_record **out)
{
    if (klen != CODEC_RECORD_KEY_SIZE || key[0] != 'p' || key[1] != '/')
        return LG_ECORRUPT;
    if (key[2] == PBFT_REC_META)
        return decode_meta(val, vlen, lim, out);
    if (key[2] != PBFT_REC_MSG)
        return LG_ECORRUPT;
    struct pbft_msg *m = NULL;
    int rv = codec_decode_msg(val, vlen, lim, &m);
    if (rv != LG_OK)
        return rv == LG_ENOMEM ? rv : LG_ECORRUPT;
    if ((uint8_t)m->type != key[11]) {
        codec_msg_free(m);
        return LG_ECORRUPT;
    }
    struct codec_record *cr = calloc(1, sizeof(*cr));
    if (cr == NULL) {
        codec_msg_free(m);
        return LG_ENOMEM;
    }
    cr->msg = m;
    cr->rec.type = PBFT_REC_MSG;
    cr->rec.seq = store_get_be64(key + 3);
    cr->rec.view = store_get_be64(key + 12);
    cr->rec.replica = (uint32_t)key[20] << 24 | (uint32_t)key[21] << 16 |
                      (uint32_t)key[22] << 8 | key[23];
    cr->rec.msg = m;
    *out = cr;
    return LG_OK;
}

void codec_record_free(struct codec_record *r)
{
    if (r == NULL)
        return;
    codec_msg_free(r->msg);
    free(r);
}

/* ---- certificates ------------------------------------------------------- */

/* One arena: the vote pointer array first (so clear frees it), then the
 * votes. */
static Tc__Vote **cert_votes_to_proto(const struct pbft_checkpoint_cert *c,
                                      int *rv)
{
    *rv = LG_OK;
    if (c->n_votes == 0)
        return NULL;
    struct bump b = {.used = 0, .cap = e_sz_votes(c->n_votes)};
    b.p = malloc(b.cap);
    if (b.p == NULL) {
        *rv = LG_ENOMEM;
        return NULL;
    }
    Tc__Vote **v = b_votes(&b, c->votes, c->n_votes);
    LG_ASSERT((uint8_t *)v == b.p);
    return v;
}

int codec_cert_to_proto(const struct pbft_checkpoint_cert *c,
                        Tc__Certificate *out)
{
    int rv;
    tc__certificate__init(out);
    out->height = c->seq;
    out->block_hash.data = unconst(c->digest);
    out->block_hash.len = PBFT_DIGEST_SIZE;
    out->votes = cert_votes_to_proto(c, &rv);
    out->n_votes = rv == LG_OK ? c->n_votes : 0;
    return rv;
}

void codec_cert_proto_clear(Tc__Certificate *p)
{
    free(p->votes);
    p->votes = NULL;
    p->n_votes = 0;
}

int codec_ckpt_to_proto(const struct pbft_checkpoint_cert *c,
                        Tc__CheckpointCert *out)
{
    int rv;
    tc__checkpoint_cert__init(out);
    out->seq = c->seq;
    out->digest.data = unconst(c->digest);
    out->digest.len = PBFT_DIGEST_SIZE;
    out->votes = cert_votes_to_proto(c, &rv);
    out->n_votes = rv == LG_OK ? c->n_votes : 0;
    return rv;
}

void codec_ckpt_proto_clear(Tc__CheckpointCert *p)
{
    free(p->votes);
    p->votes = NULL;
    p->n_votes = 0;
}

int codec_cert_from_proto(const Tc__Certificate *in, uint32_t n,
                          struct pbft_checkpoint_cert **out)
{
    struct codec_limits lim = {.n = n};
    if (in == NULL || in->block_hash.len != PBFT_DIGEST_SIZE ||
        !v_votes(in->votes, in->n_votes, &lim))
        return LG_EBADMSG;
    struct bump b = {.used = 0};
    b.cap = ALIGN(sizeof(struct pbft_checkpoint_cert)) + sz_votes(in->n_votes);
    b.p = calloc(1, b.cap);
    if (b.p == NULL)
        return LG_ENOMEM;
    struct pbft_checkpoint_cert *c = bump(&b, sizeof(*c));
    c->seq = in->height;
    memcpy(c->digest, in->block_hash.data, PBFT_DIGEST_SIZE);
    c->n_votes = (uint32_t)in->n_votes;
    c->votes = f_votes(&b, in->votes, in->n_votes);
    *out = c;
    return LG_OK;
}

int codec_encode_cert(const struct pbft_checkpoint_cert *c, uint8_t **out,
                      size_t *len)
{
    Tc__Certificate pc;
    int rv = codec_cert_to_proto(c, &pc);
    if (rv == LG_OK)
        rv = pack_message(&pc.base, out, len);
    codec_cert_proto_clear(&pc);
    return rv;
}

int codec_decode_cert(const uint8_t *buf, size_t len, uint32_t n,
                      struct pbft_checkpoint_cert **out)
{
    /* A certificate is at most n votes of ~130 bytes. */
    if (buf == NULL || len > 4096 + (size_t)n * 256)
        return LG_EBADMSG;
    struct budget bud;
    ProtobufCAllocator alloc;
    budget_init(&bud, &alloc, len);
    Tc__Certificate *pc = tc__certificate__unpack(&alloc, len, buf);
    if (pc == NULL)
        return LG_EBADMSG;
    int rv = codec_cert_from_proto(pc, n, out);
    tc__certificate__free_unpacked(pc, &alloc);
    return rv;
}
