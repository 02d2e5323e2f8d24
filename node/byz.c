/*
 * byz.c - Byzantine message transformations for tests (see byz.h).
 *
 * Copies are made by encoding and decoding through the codec, so every
 * message handed out is one allocation (codec_msg_free) whatever it points
 * to, and anything a transformation builds is checked by the same decoder
 * peers use. A transformation edits a shallow copy on the stack, then
 * takes a deep copy of it.
 */
#include "byz.h"

#include "codec.h"

#include <stdlib.h>
#include <string.h>

#define BYZ_TAG_SIZE 16
#define BYZ_STMT_MAX (BYZ_TAG_SIZE + PBFT_CHAIN_ID_SIZE + 4 + 8 + 32)
#define BYZ_WINDOWS  4 /* out-of-window copies land this many L ahead */

struct byz {
    struct byz_params p;
    struct codec_limits lim;
    uint32_t n_owned;
    struct pbft_msg *owned[BYZ_OUT_MAX]; /* freed at the next transform */
    uint32_t ring_len, ring_next;
    struct pbft_msg *ring[BYZ_REPLAY_KEEP]; /* this replica's old messages */
    uint64_t rng;
    pbft_view view_seen; /* highest view in anything sent */
    pbft_view spam_view;
    uint8_t forged_data[48];
    struct pbft_request forged;
};

static const struct {
    enum byz_mode mode;
    const char *name;
} byz_names[] = {
    {BYZ_OFF, "off"},
    {BYZ_EQUIVOCATE, "equivocate"},
    {BYZ_BADSIG, "badsig"},
    {BYZ_REPLAY, "replay"},
    {BYZ_OUT_OF_WINDOW, "out-of-window"},
    {BYZ_VC_SPAM, "vc-spam"},
};

int byz_mode_parse(const char *s, enum byz_mode *out)
{
    *out = BYZ_OFF;
    if (s == NULL || s[0] == '\0')
        return LG_OK;
    for (size_t i = 0; i < sizeof(byz_names) / sizeof(byz_names[0]); i++) {
        if (strcmp(s, byz_names[i].name) == 0) {
            *out = byz_names[i].mode;
            return LG_OK;
        }
    }
    return LG_ECONFIG;
}

const char *byz_mode_name(enum byz_mode m)
{
    for (size_t i = 0; i < sizeof(byz_names) / sizeof(byz_names[0]); i++)
        if (byz_names[i].mode == m)
            return byz_names[i].name;
    return "unknown";
}

static uint64_t byz_rand(struct byz *b)
{
    uint64_t z = (b->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int byz_new(const struct byz_params *p, struct byz **out)
{
    if (p->n < 4 || p->n > PBFT_MAX_REPLICAS || p->self >= p->n ||
        p->crypto.hash == NULL || p->crypto.sign == NULL)
        return LG_EINVAL;
    struct byz *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return LG_ENOMEM;
    b->p = *p;
    /* Copies of messages our own core made: generous limits. */
    b->lim.n = p->n;
    b->lim.batch_max = 1u << 20;
    b->lim.request_bytes_max = 1u << 26;
    b->lim.window_max = 1u << 20;
    b->lim.msg_bytes_max = CODEC_MSG_BYTES_DEFAULT;
    b->rng = p->seed ^ ((uint64_t)p->self << 32);
    /* A request nobody signed, for equivocating on an empty batch. */
    memset(b->forged_data, 0xb7, sizeof(b->forged_data));
    memset(b->forged.client, 0xb7, sizeof(b->forged.client));
    b->forged.req_no = 1;
    b->forged.len = sizeof(b->forged_data);
    b->forged.data = b->forged_data;
    *out = b;
    return LG_OK;
}

static void byz_release_owned(struct byz *b)
{
    for (uint32_t i = 0; i < b->n_owned; i++)
        codec_msg_free(b->owned[i]);
    b->n_owned = 0;
}

void byz_free(struct byz *b)
{
    if (b == NULL)
        return;
    byz_release_owned(b);
    for (uint32_t i = 0; i < b->ring_len; i++)
        codec_msg_free(b->ring[i]);
    free(b);
}

/* A deep copy (one allocation), or NULL. */
static struct pbft_msg *byz_copy(struct byz *b, const struct pbft_msg *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct pbft_msg *c = NULL;
    if (codec_encode_msg(m, &buf, &len) != LG_OK)
        return NULL;
    if (codec_decode_msg(buf, len, &b->lim, &c) != LG_OK)
        c = NULL;
    free(buf);
    return c;
}

/* A deep copy owned until the next transform. */
static struct pbft_msg *byz_own(struct byz *b, const struct pbft_msg *m)
{
    if (b->n_owned >= BYZ_OUT_MAX)
        return NULL;
    struct pbft_msg *c = byz_copy(b, m);
    if (c != NULL)
        b->owned[b->n_owned++] = c;
    return c;
}

static void byz_emit(struct byz_out *out, uint32_t to, const struct pbft_msg *m)
{
    if (m == NULL || out->n_sends >= BYZ_OUT_MAX)
        return;
    out->sends[out->n_sends].to = to;
    out->sends[out->n_sends].msg = m;
    out->n_sends++;
}

static void byz_sign_vote(const struct byz *b, enum pbft_msg_type type,
                          struct pbft_vote *v)
{
    uint8_t stmt[PBFT_VOTE_STATEMENT_MAX];
    size_t len =
        pbft_vote_statement(type, b->p.chain_id, v, stmt, sizeof(stmt));
    b->p.crypto.sign(b->p.crypto.ctx, stmt, len, v->sig);
}

/* ---- the VIEW-CHANGE statement --------------------------------------------
 * Mirrors consensus/digest.c (vc_content_digest, digest_vc_statement); the
 * unit test feeds a signed VIEW-CHANGE to a real core to keep them equal. */

struct byz_enc {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
};

static void enc_bytes(struct byz_enc *e, const void *d, size_t n)
{
    if (e->overflow || n > e->cap - e->len) {
        e->overflow = true;
        return;
    }
    if (n > 0)
        memcpy(e->buf + e->len, d, n);
    e->len += n;
}

static void enc_uint(struct byz_enc *e, uint64_t x, int width)
{
    uint8_t w[8];
    for (int i = 0; i < width; i++)
        w[i] = (uint8_t)(x >> (8 * (width - 1 - i)));
    enc_bytes(e, w, (size_t)width);
}

static void enc_vote(struct byz_enc *e, const struct pbft_vote *v)
{
    enc_uint(e, v->replica, 4);
    enc_uint(e, v->view, 8);
    enc_uint(e, v->seq, 8);
    enc_bytes(e, v->digest, PBFT_DIGEST_SIZE);
    enc_uint(e, v->timestamp_ms, 8);
    enc_bytes(e, v->sig, PBFT_SIG_SIZE);
}

static size_t vc_content_len(const struct pbft_view_change *vc)
{
    const size_t vote = 4 + 8 + 8 + PBFT_DIGEST_SIZE + 8 + PBFT_SIG_SIZE;
    size_t len = 8 + PBFT_DIGEST_SIZE + 4 + vc->stable.n_votes * vote + 4;
    for (uint32_t i = 0; i < vc->n_prepared; i++)
        len += vote + 4 + (size_t)vc->prepared[i].n_prepares * vote;
    return len;
}

void byz_sign_view_change(const struct byz_params *p,
                          struct pbft_view_change *vc)
{
    uint8_t digest[PBFT_DIGEST_SIZE];
    size_t cap = vc_content_len(vc);
    struct byz_enc e = {.buf = malloc(cap), .cap = cap};
    if (e.buf == NULL) {
        memset(vc->sig, 0, sizeof(vc->sig)); /* an unsigned VC: dropped */
        return;
    }
    enc_uint(&e, vc->stable.seq, 8);
    enc_bytes(&e, vc->stable.digest, PBFT_DIGEST_SIZE);
    enc_uint(&e, vc->stable.n_votes, 4);
    for (uint32_t i = 0; i < vc->stable.n_votes; i++)
        enc_vote(&e, &vc->stable.votes[i]);
    enc_uint(&e, vc->n_prepared, 4);
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        const struct pbft_prepared_cert *pc = &vc->prepared[i];
        enc_vote(&e, &pc->pp.hdr);
        enc_uint(&e, pc->n_prepares, 4);
        for (uint32_t j = 0; j < pc->n_prepares; j++)
            enc_vote(&e, &pc->prepares[j]);
    }
    p->crypto.hash(p->crypto.ctx, e.buf, e.len, digest);
    free(e.buf);

    uint8_t stmt[BYZ_STMT_MAX], tag[BYZ_TAG_SIZE];
    struct byz_enc s = {.buf = stmt, .cap = sizeof(stmt)};
    memset(tag, 0, sizeof(tag));
    memcpy(tag, "PBFT/VIEWCHANGE", sizeof("PBFT/VIEWCHANGE") - 1);
    enc_bytes(&s, tag, sizeof(tag));
    enc_bytes(&s, p->chain_id, PBFT_CHAIN_ID_SIZE);
    enc_uint(&s, vc->replica, 4);
    enc_uint(&s, vc->new_view, 8);
    enc_bytes(&s, digest, PBFT_DIGEST_SIZE);
    p->crypto.sign(p->crypto.ctx, stmt, s.len, vc->sig);
}

/* ---- transformations ------------------------------------------------------
 */

/* Which of the two stories replica `to` is told: the first half of the
 * other replicas (by id) hears the first. */
static int byz_side(const struct byz *b, uint32_t to)
{
    uint32_t rank = to < b->p.self ? to : to - 1;
    return rank < (b->p.n - 1) / 2 ? 0 : 1;
}

static void byz_split(struct byz *b, uint32_t to, const struct pbft_msg *a,
                      const struct pbft_msg *alt, struct byz_out *out)
{
    if (alt == NULL) {
        byz_emit(out, to, a);
        return;
    }
    if (to != PBFT_BROADCAST) {
        byz_emit(out, to, byz_side(b, to) == 0 ? a : alt);
        return;
    }
    for (uint32_t r = 0; r < b->p.n; r++)
        if (r != b->p.self)
            byz_emit(out, r, byz_side(b, r) == 0 ? a : alt);
}

static void byz_equivocate(struct byz *b, uint32_t to, const struct pbft_msg *m,
                           struct byz_out *out)
{
    struct pbft_msg alt = *m;
    if (m->type == PBFT_MSG_PREPREPARE) {
        struct pbft_preprepare *pp = &alt.u.pp;
        if (pp->n_requests > 0) {
            pp->n_requests--; /* the same batch less its last request */
        } else {
            pp->requests = &b->forged;
            pp->n_requests = 1;
        }
        pbft_batch_digest(&b->p.crypto, pp->requests, pp->n_requests,
                          pp->hdr.digest);
        byz_sign_vote(b, PBFT_MSG_PREPREPARE, &pp->hdr);
    } else if (m->type == PBFT_MSG_PREPARE || m->type == PBFT_MSG_COMMIT) {
        struct pbft_vote *v = &alt.u.vote;
        uint8_t seed[PBFT_DIGEST_SIZE + 4];
        memcpy(seed, v->digest, PBFT_DIGEST_SIZE);
        memcpy(seed + PBFT_DIGEST_SIZE, "byz!", 4);
        b->p.crypto.hash(b->p.crypto.ctx, seed, sizeof(seed), v->digest);
        byz_sign_vote(b, m->type, v);
    } else {
        byz_emit(out, to, m);
        return;
    }
    byz_split(b, to, m, byz_own(b, &alt), out);
}

static void byz_badsig(struct byz *b, uint32_t to, const struct pbft_msg *m,
                       struct byz_out *out)
{
    struct pbft_msg *c = byz_own(b, m);
    if (c == NULL)
        return;
    switch (c->type) {
    case PBFT_MSG_REQUEST:
        if (c->u.request.len > 0) {
            /* the copy's data lives in its own allocation */
            uint8_t *d = (uint8_t *)(uintptr_t)c->u.request.data;
            d[c->u.request.len - 1] ^= 0x01;
        }
        break;
    case PBFT_MSG_PREPREPARE:
        c->u.pp.hdr.sig[0] ^= 0x01;
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        c->u.vote.sig[0] ^= 0x01;
        break;
    case PBFT_MSG_VIEW_CHANGE:
        c->u.vc.sig[0] ^= 0x01;
        break;
    case PBFT_MSG_NEW_VIEW:
        c->u.nv.sig[0] ^= 0x01;
        break;
    case PBFT_MSG_FETCH:
        c->u.fetch.sig[0] ^= 0x01;
        break;
    }
    byz_emit(out, to, c);
}

static void byz_replay(struct byz *b, uint32_t to, const struct pbft_msg *m,
                       struct byz_out *out)
{
    byz_emit(out, to, m);
    struct pbft_msg *c = byz_copy(b, m);
    if (c == NULL)
        return;
    /* Remember m first; the slot it evicts is never one emitted below. */
    uint32_t slot;
    if (b->ring_len < BYZ_REPLAY_KEEP) {
        slot = b->ring_len++;
    } else {
        slot = b->ring_next;
        codec_msg_free(b->ring[slot]);
        b->ring_next = (b->ring_next + 1) % BYZ_REPLAY_KEEP;
    }
    b->ring[slot] = c;
    if (b->ring_len < 2)
        return;
    for (uint32_t i = 0; i < BYZ_REPLAY_PER_SEND; i++) {
        uint32_t k = (uint32_t)(byz_rand(b) % b->ring_len);
        if (k != slot)
            byz_emit(out, to, b->ring[k]);
    }
}

static pbft_seq byz_far(const struct byz *b, pbft_seq seq)
{
    uint64_t jump = (uint64_t)BYZ_WINDOWS * b->p.watermark_window + 1;
    return seq > UINT64_MAX - jump ? UINT64_MAX : seq + jump;
}

static void byz_out_of_window(struct byz *b, uint32_t to,
                              const struct pbft_msg *m, struct byz_out *out)
{
    byz_emit(out, to, m);
    struct pbft_msg far = *m;
    switch (m->type) {
    case PBFT_MSG_PREPREPARE:
        far.u.pp.hdr.seq = byz_far(b, m->u.pp.hdr.seq);
        byz_sign_vote(b, m->type, &far.u.pp.hdr);
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        far.u.vote.seq = byz_far(b, m->u.vote.seq);
        byz_sign_vote(b, m->type, &far.u.vote);
        break;
    default:
        return;
    }
    byz_emit(out, to, byz_own(b, &far));
}

static pbft_view byz_msg_view(const struct pbft_msg *m)
{
    switch (m->type) {
    case PBFT_MSG_PREPREPARE:
        return m->u.pp.hdr.view;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
        return m->u.vote.view;
    case PBFT_MSG_VIEW_CHANGE:
        return m->u.vc.new_view;
    case PBFT_MSG_NEW_VIEW:
        return m->u.nv.view;
    default:
        return 0;
    }
}

static void byz_vc_spam(struct byz *b, uint32_t to, const struct pbft_msg *m,
                        struct byz_out *out)
{
    byz_emit(out, to, m);
    pbft_view v = byz_msg_view(m);
    if (v > b->view_seen)
        b->view_seen = v;
    if (b->spam_view < b->view_seen)
        b->spam_view = b->view_seen;
    if (b->spam_view == UINT64_MAX)
        return;
    b->spam_view++;
    struct pbft_msg vc = {.type = PBFT_MSG_VIEW_CHANGE};
    vc.u.vc.replica = b->p.self;
    vc.u.vc.new_view = b->spam_view;
    vc.u.vc.stable.seq = 0;
    memcpy(vc.u.vc.stable.digest, b->p.genesis_digest, PBFT_DIGEST_SIZE);
    byz_sign_view_change(&b->p, &vc.u.vc);
    byz_emit(out, PBFT_BROADCAST, byz_own(b, &vc));
}

int byz_transform(struct byz *b, uint32_t to, const struct pbft_msg *m,
                  struct byz_out *out)
{
    byz_release_owned(b);
    out->n_sends = 0;
    switch (b->p.mode) {
    case BYZ_EQUIVOCATE:
        byz_equivocate(b, to, m, out);
        break;
    case BYZ_BADSIG:
        byz_badsig(b, to, m, out);
        break;
    case BYZ_REPLAY:
        byz_replay(b, to, m, out);
        break;
    case BYZ_OUT_OF_WINDOW:
        byz_out_of_window(b, to, m, out);
        break;
    case BYZ_VC_SPAM:
        byz_vc_spam(b, to, m, out);
        break;
    case BYZ_OFF:
    default:
        byz_emit(out, to, m);
        break;
    }
    return out->n_sends > 0 ? LG_OK : LG_ENOMEM;
}
