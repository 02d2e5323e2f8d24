/*
 * quorum.c - quorum arithmetic, signing and checking votes and
 * certificates.
 *
 * Quorum = ceil((n+f+1)/2): any two quorums share at least f+1 replicas, so
 * at least one honest one, for every n (2f+1 alone is unsafe when n is not
 * 3f+1). Every check does the cheap structural work first and touches a
 * signature only when everything else holds.
 */
#include "internal.h"

#include <string.h>

uint32_t pbft_faults(uint32_t n)
{
    return n == 0 ? 0 : (n - 1) / 3;
}

uint32_t pbft_quorum(uint32_t n)
{
    uint32_t f = pbft_faults(n);
    uint32_t q = (n + f + 2) / 2;

    PBFT_ASSERT(q <= n || n == 0);
    PBFT_ASSERT(2 * q >= n + f + 1);
    return q;
}

void sig_vote_sign(struct pbft *p, enum pbft_msg_type type, struct pbft_vote *v)
{
    uint8_t buf[PBFT_VOTE_STATEMENT_MAX];
    size_t len;

    PBFT_ASSERT(v->replica == p->cfg.self);
    len = pbft_vote_statement(type, p->cfg.chain_id, v, buf, sizeof(buf));
    PBFT_ASSERT(len > 0);
    p->cfg.crypto.sign(p->cfg.crypto.ctx, buf, len, v->sig);
}

static bool vote_verify_with(const struct pbft_crypto *c,
                             const uint8_t chain_id[PBFT_CHAIN_ID_SIZE],
                             enum pbft_msg_type type, const struct pbft_vote *v)
{
    uint8_t buf[PBFT_VOTE_STATEMENT_MAX];
    size_t len = pbft_vote_statement(type, chain_id, v, buf, sizeof(buf));

    if (len == 0)
        return false;
    return c->verify(c->ctx, v->replica, buf, len, v->sig);
}

bool sig_vote_verify(struct pbft *p, enum pbft_msg_type type,
                     const struct pbft_vote *v)
{
    bool ok;

    PBFT_ASSERT(v->replica < p->n);
    p->verify_calls++;
    ok = vote_verify_with(&p->cfg.crypto, p->cfg.chain_id, type, v);
    if (!ok)
        p->bad_signatures++;
    return ok;
}

/* Structure of a checkpoint certificate: distinct replicas, all matching.
 * Reads no signature. */
static bool cert_shape_ok(uint32_t n, uint32_t q,
                          const struct pbft_checkpoint_cert *cert)
{
    uint64_t seen = 0;

    if (cert->n_votes < q || cert->n_votes > n || cert->votes == NULL)
        return false;
    for (uint32_t i = 0; i < cert->n_votes; i++) {
        const struct pbft_vote *v = &cert->votes[i];

        if (v->replica >= n || (seen & (UINT64_C(1) << v->replica)) != 0)
            return false;
        if (v->seq != cert->seq || v->view != 0)
            return false;
        if (memcmp(v->digest, cert->digest, PBFT_DIGEST_SIZE) != 0)
            return false;
        seen |= UINT64_C(1) << v->replica;
    }
    return true;
}

bool pbft_checkpoint_cert_valid(const struct pbft_crypto *c, uint32_t n,
                                const uint8_t chain_id[PBFT_CHAIN_ID_SIZE],
                                const struct pbft_checkpoint_cert *cert)
{
    if (c == NULL || c->verify == NULL || cert == NULL || n < 4 ||
        n > PBFT_MAX_REPLICAS)
        return false;
    if (!cert_shape_ok(n, pbft_quorum(n), cert))
        return false;
    for (uint32_t i = 0; i < cert->n_votes; i++)
        if (!vote_verify_with(c, chain_id, PBFT_MSG_CHECKPOINT,
                              &cert->votes[i]))
            return false;
    return true;
}

bool sig_cert_valid(struct pbft *p, const struct pbft_checkpoint_cert *cert)
{
    if (cert->seq < p->cfg.base_seq)
        return false; /* before this epoch: another replica set's */
    if (cert->seq == p->cfg.base_seq) /* no votes, the configured digest */
        return cert->n_votes == 0 && memcmp(cert->digest, p->cfg.genesis_digest,
                                            PBFT_DIGEST_SIZE) == 0;
    if (cert->seq % p->K != 0 || !cert_shape_ok(p->n, p->q, cert))
        return false;
    for (uint32_t i = 0; i < cert->n_votes; i++)
        if (!sig_vote_verify(p, PBFT_MSG_CHECKPOINT, &cert->votes[i]))
            return false;
    return true;
}

static bool pcert_shape_ok(struct pbft *p, const struct pbft_prepared_cert *pc,
                           pbft_view below_view, pbft_seq lo, pbft_seq hi)
{
    const struct pbft_vote *hdr = &pc->pp.hdr;
    uint32_t primary = pbft_primary(p, hdr->view);
    uint64_t seen = UINT64_C(1) << primary;

    if (hdr->seq <= lo || hdr->seq > hi || hdr->view >= below_view)
        return false;
    if (hdr->replica != primary || pc->prepares == NULL)
        return false;
    if (pc->n_prepares + 1 < p->q || pc->n_prepares >= p->n)
        return false;
    for (uint32_t i = 0; i < pc->n_prepares; i++) {
        const struct pbft_vote *v = &pc->prepares[i];

        if (v->replica >= p->n || (seen & (UINT64_C(1) << v->replica)) != 0)
            return false;
        if (v->view != hdr->view || v->seq != hdr->seq)
            return false;
        if (memcmp(v->digest, hdr->digest, PBFT_DIGEST_SIZE) != 0)
            return false;
        seen |= UINT64_C(1) << v->replica;
    }
    return true;
}

bool sig_pcert_valid(struct pbft *p, const struct pbft_prepared_cert *pc,
                     pbft_view below_view, pbft_seq lo, pbft_seq hi)
{
    if (!pcert_shape_ok(p, pc, below_view, lo, hi))
        return false;
    if (!sig_vote_verify(p, PBFT_MSG_PREPREPARE, &pc->pp.hdr))
        return false;
    for (uint32_t i = 0; i < pc->n_prepares; i++)
        if (!sig_vote_verify(p, PBFT_MSG_PREPARE, &pc->prepares[i]))
            return false;
    return true;
}
