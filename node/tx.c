/*
 * tx.c - signing and opening registry transactions.
 */
#include "tx.h"

#include "crypto.h"

#include <sodium.h>
#include <stdarg.h>
#include <string.h>

static int tx_fail(int rv, char *err, size_t err_len, const char *fmt, ...)
    LG_PRINTF(4, 5);

static int tx_fail(int rv, char *err, size_t err_len, const char *fmt, ...)
{
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rv;
}

int tx_sign(const Tc__Tx *body, const struct keyfile *k, uint8_t **out,
            size_t *len)
{
    if (body == NULL || k == NULL || k->secret_key == NULL)
        return LG_EINVAL;
    size_t blen = tc__tx__get_packed_size(body);
    if (blen > TX_BYTES_MAX)
        return LG_ETOOBIG;
    uint8_t *bbuf = malloc(blen > 0 ? blen : 1);
    if (bbuf == NULL)
        return LG_ENOMEM;
    tc__tx__pack(body, bbuf);

    uint8_t sig[CRYPTO_SIG_SIZE];
    crypto_sign_tagged(TAG_TX, k->secret_key, bbuf, blen, sig);

    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    st.body.data = bbuf;
    st.body.len = blen;
    st.sig.data = sig;
    st.sig.len = sizeof(sig);
    size_t slen = tc__signed_tx__get_packed_size(&st);
    uint8_t *sbuf = slen <= TX_BYTES_MAX ? malloc(slen) : NULL;
    if (sbuf == NULL) {
        free(bbuf);
        return slen <= TX_BYTES_MAX ? LG_ENOMEM : LG_ETOOBIG;
    }
    tc__signed_tx__pack(&st, sbuf);
    free(bbuf);
    *out = sbuf;
    *len = slen;
    return LG_OK;
}

void tx_view_free(struct tx_view *v)
{
    if (v == NULL)
        return;
    if (v->tx != NULL)
        tc__tx__free_unpacked(v->tx, NULL);
    if (v->signed_tx != NULL)
        tc__signed_tx__free_unpacked(v->signed_tx, NULL);
    memset(v, 0, sizeof(*v));
}

struct tx_sigcache {
    uint8_t ids[TX_SIGCACHE_SLOTS][32];
    bool used[TX_SIGCACHE_SLOTS];
    uint64_t hits, misses;
};

struct tx_sigcache *tx_sigcache_new(void)
{
    return calloc(1, sizeof(struct tx_sigcache));
}

void tx_sigcache_free(struct tx_sigcache *c)
{
    free(c);
}

void tx_sigcache_stats(const struct tx_sigcache *c, uint64_t *hits,
                       uint64_t *misses)
{
    *hits = c != NULL ? c->hits : 0;
    *misses = c != NULL ? c->misses : 0;
}

/* The id is a SHA-256 output: its first bytes are as good as any index. */
static size_t sigcache_slot(const uint8_t id[32])
{
    uint32_t h;
    memcpy(&h, id, sizeof(h));
    return h % TX_SIGCACHE_SLOTS;
}

static bool sigcache_has(struct tx_sigcache *c, const uint8_t id[32])
{
    size_t i = sigcache_slot(id);
    bool hit = c->used[i] && memcmp(c->ids[i], id, 32) == 0;
    if (hit)
        c->hits++;
    else
        c->misses++;
    return hit;
}

static void sigcache_add(struct tx_sigcache *c, const uint8_t id[32])
{
    size_t i = sigcache_slot(id);
    memcpy(c->ids[i], id, 32);
    c->used[i] = true;
}

/* Checks the decoded body against the chain and, unless sig_known, the
 * signature. */
static int tx_check_body(const Tc__SignedTx *st, const Tc__Tx *tx,
                         const uint8_t chain_id[32], bool sig_known, char *err,
                         size_t err_len)
{
    if (tx->signer.len != CRYPTO_PK_SIZE)
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction's signer is %zu bytes, not a "
                       "32-byte Ed25519 public key.",
                       tx->signer.len);
    if (tx->chain_id.len != 32)
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction's chain id is %zu bytes, not 32.",
                       tx->chain_id.len);
    if (sodium_memcmp(tx->chain_id.data, chain_id, 32) != 0)
        return tx_fail(LG_ECHAIN, err, err_len,
                       "The transaction was made for another consortium "
                       "(its chain id differs from this genesis).");
    if (!sig_known &&
        !crypto_verify_tagged(TAG_TX, tx->signer.data, st->body.data,
                              st->body.len, st->sig.data))
        return tx_fail(LG_EBADSIG, err, err_len,
                       "The transaction's signature does not verify with "
                       "its signer's key.");
    if (tx->body_case == TC__TX__BODY__NOT_SET)
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction carries no action.");
    return LG_OK;
}

int tx_open(const uint8_t *bytes, size_t len, const uint8_t chain_id[32],
            struct tx_view *out, char *err, size_t err_len)
{
    return tx_open_cached(bytes, len, chain_id, NULL, out, err, err_len);
}

int tx_open_cached(const uint8_t *bytes, size_t len, const uint8_t chain_id[32],
                   struct tx_sigcache *cache, struct tx_view *out, char *err,
                   size_t err_len)
{
    memset(out, 0, sizeof(*out));
    if (bytes == NULL || len == 0)
        return tx_fail(LG_EBADMSG, err, err_len, "The transaction is empty.");
    /* Cap before unpacking: protobuf-c would allocate whatever we hand it. */
    if (len > TX_BYTES_MAX)
        return tx_fail(LG_ETOOBIG, err, err_len,
                       "The transaction is %zu bytes; the limit is %u.", len,
                       TX_BYTES_MAX);

    Tc__SignedTx *st = tc__signed_tx__unpack(NULL, len, bytes);
    if (st == NULL)
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction is not a valid SignedTx encoding.");
    if (st->sig.len != CRYPTO_SIG_SIZE) {
        size_t sig_len = st->sig.len;
        tc__signed_tx__free_unpacked(st, NULL);
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction's signature is %zu bytes, not 64.",
                       sig_len);
    }
    if (st->body.len == 0) {
        tc__signed_tx__free_unpacked(st, NULL);
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction has an empty body.");
    }
    Tc__Tx *tx = tc__tx__unpack(NULL, st->body.len, st->body.data);
    if (tx == NULL) {
        tc__signed_tx__free_unpacked(st, NULL);
        return tx_fail(LG_EBADMSG, err, err_len,
                       "The transaction body is not a valid Tx encoding.");
    }
    uint8_t id[32];
    tx_id(bytes, len, id);
    bool known = cache != NULL && sigcache_has(cache, id);
    int rv = tx_check_body(st, tx, chain_id, known, err, err_len);
    if (rv != LG_OK) {
        tc__tx__free_unpacked(tx, NULL);
        tc__signed_tx__free_unpacked(st, NULL);
        return rv;
    }
    if (cache != NULL && !known)
        sigcache_add(cache, id);
    out->signed_tx = st;
    out->tx = tx;
    out->signer = tx->signer.data;
    out->nonce = tx->nonce;
    memcpy(out->tx_id, id, 32);
    return LG_OK;
}

bool txcheck_request_valid(const uint8_t chain_id[32],
                           struct tx_sigcache *cache,
                           const struct pbft_request *req)
{
    if (req == NULL || req->data == NULL || req->len == 0)
        return false;
    struct tx_view v;
    if (tx_open_cached(req->data, req->len, chain_id, cache, &v, NULL, 0) !=
        LG_OK)
        return false;
    bool ok = memcmp(req->client, v.signer, 32) == 0 && req->req_no == v.nonce;
    tx_view_free(&v);
    return ok;
}

void tx_pseudonym(const uint8_t site_secret[32], const char *trial_id,
                  const char *local_id, uint8_t out[32])
{
    crypto_auth_hmacsha256_state st;
    const unsigned char sep = 0;
    crypto_auth_hmacsha256_init(&st, site_secret, 32);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)trial_id,
                                  strlen(trial_id));
    crypto_auth_hmacsha256_update(&st, &sep, 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)local_id,
                                  strlen(local_id));
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

void tx_id(const uint8_t *bytes, size_t len, uint8_t out[32])
{
    crypto_hash_sha256(out, bytes, len);
}
