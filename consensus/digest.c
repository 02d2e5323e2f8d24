/*
 * digest.c - the exact bytes that are hashed and signed.
 *
 * Every signed statement starts with a 16-byte domain tag naming what is
 * signed, then the chain id, then fixed-width big-endian fields, so no
 * signature can be replayed in another role or another consortium. Variable
 * contents (VIEW-CHANGE, NEW-VIEW) enter a statement as a SHA-256 over a
 * framed encoding (every count and length written before what it counts).
 */
#include "internal.h"

#include <string.h>

#define TAG_SIZE  16
#define VOTE_ENC  (4 + 8 + 8 + PBFT_DIGEST_SIZE + 8 + PBFT_SIG_SIZE)
#define REQ_FRAME (PBFT_KEY_SIZE + 8 + 4)

_Static_assert(TAG_SIZE + PBFT_CHAIN_ID_SIZE + 4 + 8 + 8 + PBFT_DIGEST_SIZE +
                       8 <=
                   PBFT_VOTE_STATEMENT_MAX,
               "vote statement fits its buffer");

struct enc {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

static void enc_bytes(struct enc *e, const void *data, size_t len)
{
    if (e->overflow || len > e->cap - e->len) {
        e->overflow = true;
        return;
    }
    if (len > 0)
        memcpy(e->buf + e->len, data, len);
    e->len += len;
}

static void enc_u64(struct enc *e, uint64_t x)
{
    uint8_t b[8];

    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(x >> (56 - 8 * i));
    enc_bytes(e, b, sizeof(b));
}

static void enc_u32(struct enc *e, uint32_t x)
{
    uint8_t b[4];

    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(x >> (24 - 8 * i));
    enc_bytes(e, b, sizeof(b));
}

static void enc_tag(struct enc *e, const char *tag)
{
    uint8_t t[TAG_SIZE];
    size_t len = strlen(tag);

    PBFT_ASSERT(len < TAG_SIZE);
    memset(t, 0, sizeof(t));
    memcpy(t, tag, len);
    enc_bytes(e, t, sizeof(t));
}

static void enc_vote(struct enc *e, const struct pbft_vote *v)
{
    enc_u32(e, v->replica);
    enc_u64(e, v->view);
    enc_u64(e, v->seq);
    enc_bytes(e, v->digest, PBFT_DIGEST_SIZE);
    enc_u64(e, v->timestamp_ms);
    enc_bytes(e, v->sig, PBFT_SIG_SIZE);
}

static const char *vote_tag(enum pbft_msg_type type)
{
    switch (type) {
    case PBFT_MSG_PREPREPARE:
        return "PBFT/PREPREPARE";
    case PBFT_MSG_PREPARE:
        return "PBFT/PREPARE";
    case PBFT_MSG_COMMIT:
        return "PBFT/COMMIT";
    case PBFT_MSG_CHECKPOINT:
        return "PBFT/CHECKPOINT";
    default:
        return NULL;
    }
}

size_t pbft_vote_statement(enum pbft_msg_type type,
                           const uint8_t chain_id[PBFT_CHAIN_ID_SIZE],
                           const struct pbft_vote *v, uint8_t *buf,
                           size_t buf_len)
{
    struct enc e = {.buf = buf, .cap = buf_len};
    const char *tag = vote_tag(type);

    if (tag == NULL || v == NULL || buf == NULL)
        return 0;
    enc_tag(&e, tag);
    enc_bytes(&e, chain_id, PBFT_CHAIN_ID_SIZE);
    enc_u32(&e, v->replica);
    enc_u64(&e, v->view);
    enc_u64(&e, v->seq);
    enc_bytes(&e, v->digest, PBFT_DIGEST_SIZE);
    enc_u64(&e, v->timestamp_ms);
    return e.overflow ? 0 : e.len;
}

/* Framed batch encoding into buf; false when it does not fit. */
static bool batch_encode(const struct pbft_request *reqs, uint32_t n,
                         struct enc *e)
{
    for (uint32_t i = 0; i < n; i++) {
        enc_bytes(e, reqs[i].client, PBFT_KEY_SIZE);
        enc_u64(e, reqs[i].req_no);
        enc_u32(e, reqs[i].len);
        enc_bytes(e, reqs[i].data, reqs[i].len);
    }
    return !e->overflow;
}

static size_t batch_encoded_len(const struct pbft_request *reqs, uint32_t n)
{
    size_t len = 0;

    for (uint32_t i = 0; i < n; i++)
        len += REQ_FRAME + (size_t)reqs[i].len;
    return len;
}

void pbft_batch_digest(const struct pbft_crypto *c,
                       const struct pbft_request *reqs, uint32_t n,
                       uint8_t out[PBFT_DIGEST_SIZE])
{
    size_t len = batch_encoded_len(reqs, n);
    struct enc e = {.cap = len};

    e.buf = malloc(len > 0 ? len : 1);
    if (e.buf == NULL || !batch_encode(reqs, n, &e)) {
        /* No digest of any real batch: a mismatch, never a crash. */
        memset(out, 0xff, PBFT_DIGEST_SIZE);
        free(e.buf);
        return;
    }
    c->hash(c->ctx, e.buf, e.len, out);
    free(e.buf);
}

void digest_null_batch(const struct pbft_crypto *c,
                       uint8_t out[PBFT_DIGEST_SIZE])
{
    uint8_t none = 0;

    c->hash(c->ctx, &none, 0, out);
}

/* The core's own batch digest: the same bytes as pbft_batch_digest, in the
 * scratch buffer sized at init (no malloc). False when it does not fit. */
bool digest_batch(struct pbft *p, const struct pbft_request *reqs, uint32_t n,
                  uint8_t out[PBFT_DIGEST_SIZE])
{
    struct enc e = {.buf = p->enc, .cap = p->enc_cap};

    if (n > 0 && reqs == NULL)
        return false;
    if (!batch_encode(reqs, n, &e))
        return false;
    p->cfg.crypto.hash(p->cfg.crypto.ctx, e.buf, e.len, out);
    return true;
}

bool digest_batch_matches(struct pbft *p, const struct pbft_preprepare *pp)
{
    uint8_t d[PBFT_DIGEST_SIZE];

    if (!digest_batch(p, pp->requests, pp->n_requests, d))
        return false;
    return memcmp(d, pp->hdr.digest, PBFT_DIGEST_SIZE) == 0;
}

size_t digest_enc_cap(const struct pbft_config *cfg)
{
    size_t n = cfg->n, L = cfg->watermark_window;
    size_t batch = (size_t)cfg->batch_max * REQ_FRAME + cfg->batch_bytes_max;
    size_t vc = 8 + PBFT_DIGEST_SIZE + 4 + (size_t)n * VOTE_ENC + 4 +
                (size_t)L * (VOTE_ENC + 4 + (size_t)n * VOTE_ENC);
    size_t nv = 12 + (size_t)n * (4 + 8 + PBFT_DIGEST_SIZE + PBFT_SIG_SIZE) +
                4 + (size_t)L * VOTE_ENC;

    size_t max = vc > nv ? vc : nv;

    return max > batch ? max : batch;
}

/* SHA-256 over the framed contents of a VIEW-CHANGE (batches excluded: the
 * signed pre-prepare headers bind them). */
static bool vc_content_digest(struct pbft *p, const struct pbft_view_change *vc,
                              uint8_t out[PBFT_DIGEST_SIZE])
{
    struct enc e = {.buf = p->enc, .cap = p->enc_cap};

    enc_u64(&e, vc->stable.seq);
    enc_bytes(&e, vc->stable.digest, PBFT_DIGEST_SIZE);
    enc_u32(&e, vc->stable.n_votes);
    for (uint32_t i = 0; i < vc->stable.n_votes; i++)
        enc_vote(&e, &vc->stable.votes[i]);
    enc_u32(&e, vc->n_prepared);
    for (uint32_t i = 0; i < vc->n_prepared; i++) {
        const struct pbft_prepared_cert *pc = &vc->prepared[i];

        enc_vote(&e, &pc->pp.hdr);
        enc_u32(&e, pc->n_prepares);
        for (uint32_t j = 0; j < pc->n_prepares; j++)
            enc_vote(&e, &pc->prepares[j]);
    }
    if (e.overflow)
        return false;
    p->cfg.crypto.hash(p->cfg.crypto.ctx, e.buf, e.len, out);
    return true;
}

size_t digest_vc_statement(struct pbft *p, const struct pbft_view_change *vc,
                           uint8_t *buf, size_t cap)
{
    uint8_t d[PBFT_DIGEST_SIZE];
    struct enc e = {.buf = buf, .cap = cap};

    if (!vc_content_digest(p, vc, d))
        return 0;
    enc_tag(&e, "PBFT/VIEWCHANGE");
    enc_bytes(&e, p->cfg.chain_id, PBFT_CHAIN_ID_SIZE);
    enc_u32(&e, vc->replica);
    enc_u64(&e, vc->new_view);
    enc_bytes(&e, d, PBFT_DIGEST_SIZE);
    return e.overflow ? 0 : e.len;
}

size_t digest_nv_statement(struct pbft *p, const struct pbft_new_view *nv,
                           uint8_t *buf, size_t cap)
{
    uint8_t vcd[PBFT_MAX_REPLICAS][PBFT_DIGEST_SIZE];
    uint8_t d[PBFT_DIGEST_SIZE];
    struct enc e = {.buf = p->enc, .cap = p->enc_cap};
    struct enc s = {.buf = buf, .cap = cap};

    if (nv->n_view_changes > PBFT_MAX_REPLICAS)
        return 0;
    for (uint32_t i = 0; i < nv->n_view_changes; i++)
        if (!vc_content_digest(p, &nv->view_changes[i], vcd[i]))
            return 0;
    enc_u64(&e, nv->view);
    enc_u32(&e, nv->n_view_changes);
    for (uint32_t i = 0; i < nv->n_view_changes; i++) {
        enc_u32(&e, nv->view_changes[i].replica);
        enc_u64(&e, nv->view_changes[i].new_view);
        enc_bytes(&e, vcd[i], PBFT_DIGEST_SIZE);
        enc_bytes(&e, nv->view_changes[i].sig, PBFT_SIG_SIZE);
    }
    enc_u32(&e, nv->n_preprepares);
    for (uint32_t i = 0; i < nv->n_preprepares; i++)
        enc_vote(&e, &nv->preprepares[i].hdr);
    if (e.overflow)
        return 0;
    p->cfg.crypto.hash(p->cfg.crypto.ctx, e.buf, e.len, d);
    enc_tag(&s, "PBFT/NEWVIEW");
    enc_bytes(&s, p->cfg.chain_id, PBFT_CHAIN_ID_SIZE);
    enc_u32(&s, nv->replica);
    enc_u64(&s, nv->view);
    enc_bytes(&s, d, PBFT_DIGEST_SIZE);
    return s.overflow ? 0 : s.len;
}

size_t digest_fetch_statement(const struct pbft *p, const struct pbft_fetch *fe,
                              uint8_t *buf, size_t cap)
{
    struct enc e = {.buf = buf, .cap = cap};

    enc_tag(&e, "PBFT/FETCH");
    enc_bytes(&e, p->cfg.chain_id, PBFT_CHAIN_ID_SIZE);
    enc_u32(&e, fe->replica);
    enc_u64(&e, fe->seq);
    return e.overflow ? 0 : e.len;
}
