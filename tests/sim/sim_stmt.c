/* sim_stmt.c - the signed statements of VIEW-CHANGE and NEW-VIEW, as the
 * core frames them (consensus/digest.c), so that a Byzantine replica can
 * sign the forged ones it sends with its own key.
 *
 * pbft.h exposes only the vote statement; these two are rebuilt here from
 * the same framing. sim_stmt_check() compares them with what the core
 * really signed on every honest send: if the core's framing changes, the
 * simulator says so (the forged-message tests would silently turn into
 * bad-signature tests otherwise). */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_SIZE 16

struct enc {
    uint8_t *buf;
    size_t len, cap;
};

static void enc_bytes(struct enc *e, const void *data, size_t len)
{
    if (e->len + len > e->cap) {
        size_t cap = e->cap ? e->cap : 256;

        while (cap < e->len + len)
            cap *= 2;
        e->buf = realloc(e->buf, cap);
        if (e->buf == NULL)
            abort();
        e->cap = cap;
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
    enc_bytes(e, b, 8);
}

static void enc_u32(struct enc *e, uint32_t x)
{
    uint8_t b[4];

    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(x >> (24 - 8 * i));
    enc_bytes(e, b, 4);
}

static void enc_tag(struct enc *e, const char *tag)
{
    uint8_t t[TAG_SIZE];

    memset(t, 0, sizeof(t));
    memcpy(t, tag, strlen(tag));
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

static void vc_content_digest(const struct pbft_view_change *vc,
                              uint8_t out[PBFT_DIGEST_SIZE])
{
    struct enc e = {NULL, 0, 0};

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
    sim_sha256(e.buf, e.len, out);
    free(e.buf);
}

static void vc_statement(const struct sim *s, const struct pbft_view_change *vc,
                         struct enc *st)
{
    uint8_t d[PBFT_DIGEST_SIZE];

    vc_content_digest(vc, d);
    enc_tag(st, "PBFT/VIEWCHANGE");
    enc_bytes(st, s->chain_id, PBFT_CHAIN_ID_SIZE);
    enc_u32(st, vc->replica);
    enc_u64(st, vc->new_view);
    enc_bytes(st, d, PBFT_DIGEST_SIZE);
}

static void nv_statement(const struct sim *s, const struct pbft_new_view *nv,
                         struct enc *st)
{
    struct enc e = {NULL, 0, 0};
    uint8_t d[PBFT_DIGEST_SIZE];

    enc_u64(&e, nv->view);
    enc_u32(&e, nv->n_view_changes);
    for (uint32_t i = 0; i < nv->n_view_changes; i++) {
        const struct pbft_view_change *vc = &nv->view_changes[i];

        vc_content_digest(vc, d);
        enc_u32(&e, vc->replica);
        enc_u64(&e, vc->new_view);
        enc_bytes(&e, d, PBFT_DIGEST_SIZE);
        enc_bytes(&e, vc->sig, PBFT_SIG_SIZE);
    }
    enc_u32(&e, nv->n_preprepares);
    for (uint32_t i = 0; i < nv->n_preprepares; i++)
        enc_vote(&e, &nv->preprepares[i].hdr);
    sim_sha256(e.buf, e.len, d);
    free(e.buf);
    enc_tag(st, "PBFT/NEWVIEW");
    enc_bytes(st, s->chain_id, PBFT_CHAIN_ID_SIZE);
    enc_u32(st, nv->replica);
    enc_u64(st, nv->view);
    enc_bytes(st, d, PBFT_DIGEST_SIZE);
}

void sim_vc_resign(struct sim *s, struct pbft_view_change *vc)
{
    struct enc st = {NULL, 0, 0};

    vc_statement(s, vc, &st);
    sim_sign_as(s, vc->replica, st.buf, st.len, vc->sig);
    free(st.buf);
}

void sim_nv_resign(struct sim *s, struct pbft_new_view *nv)
{
    struct enc st = {NULL, 0, 0};

    nv_statement(s, nv, &st);
    sim_sign_as(s, nv->replica, st.buf, st.len, nv->sig);
    free(st.buf);
}

/* True when our framing gives the signature the core made. Not counted as
 * a signature operation (it is the simulator's own bookkeeping). */
bool sim_stmt_check(struct sim *s, const struct pbft_msg *m)
{
    struct enc st = {NULL, 0, 0};
    uint8_t sig[PBFT_SIG_SIZE];
    const uint8_t *have;
    uint32_t replica;
    uint64_t saved = s->sign_ops;

    if (m->type == PBFT_MSG_VIEW_CHANGE) {
        vc_statement(s, &m->u.vc, &st);
        replica = m->u.vc.replica;
        have = m->u.vc.sig;
    } else if (m->type == PBFT_MSG_NEW_VIEW) {
        nv_statement(s, &m->u.nv, &st);
        replica = m->u.nv.replica;
        have = m->u.nv.sig;
    } else {
        return true;
    }
    sim_sign_as(s, replica, st.buf, st.len, sig);
    s->sign_ops = saved;
    free(st.buf);
    return memcmp(sig, have, PBFT_SIG_SIZE) == 0;
}
