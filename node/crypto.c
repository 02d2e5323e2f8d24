/*
 * crypto.c - SHA-256 and Ed25519 through libsodium, with domain tags.
 */
#include "crypto.h"

#include "tx.h"

#include <sodium.h>
#include <string.h>

_Static_assert(sizeof(crypto_hash_sha256_state) <=
                   sizeof(((struct crypto_sha256_ctx *)0)->opaque),
               "crypto_sha256_ctx must hold libsodium's state");
_Static_assert(CRYPTO_SIG_SIZE == crypto_sign_BYTES, "Ed25519 signature");
_Static_assert(CRYPTO_PK_SIZE == crypto_sign_PUBLICKEYBYTES, "Ed25519 key");
_Static_assert(CRYPTO_SK_SIZE == crypto_sign_SECRETKEYBYTES, "Ed25519 sk");
_Static_assert(CRYPTO_HASH_SIZE == crypto_hash_sha256_BYTES, "SHA-256");

int crypto_setup(void)
{
    if (sodium_init() < 0)
        return LG_EINVAL;
    return LG_OK;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    crypto_hash_sha256(out, data, len);
}

void crypto_sha256_init(struct crypto_sha256_ctx *c)
{
    crypto_hash_sha256_init((crypto_hash_sha256_state *)(void *)c->opaque);
}

void crypto_sha256_update(struct crypto_sha256_ctx *c, const void *d, size_t n)
{
    crypto_hash_sha256_update((crypto_hash_sha256_state *)(void *)c->opaque, d,
                              n);
}

void crypto_sha256_final(struct crypto_sha256_ctx *c, uint8_t out[32])
{
    crypto_hash_sha256_final((crypto_hash_sha256_state *)(void *)c->opaque,
                             out);
}

/* Ed25519 needs the whole message contiguous: small messages use the stack,
 * large ones a heap buffer. Returns NULL on no memory. */
#define TAGGED_STACK 2048

static uint8_t *tagged_build(const char *tag, const uint8_t *msg, size_t len,
                             uint8_t *stack, size_t *out_len)
{
    size_t tlen = strlen(tag) + 1; /* the NUL is signed too */
    if (len > SIZE_MAX - tlen)
        return NULL;
    size_t total = tlen + len;
    uint8_t *buf = total <= TAGGED_STACK ? stack : malloc(total);
    if (buf == NULL)
        return NULL;
    memcpy(buf, tag, tlen);
    if (len > 0)
        memcpy(buf + tlen, msg, len);
    *out_len = total;
    return buf;
}

void crypto_sign_tagged(const char *tag, const uint8_t sk[64],
                        const uint8_t *msg, size_t len, uint8_t sig[64])
{
    uint8_t stack[TAGGED_STACK];
    size_t total = 0;
    uint8_t *buf = tagged_build(tag, msg, len, stack, &total);
    if (buf == NULL) {
        /* No memory: an all-zero signature never verifies. */
        lg_log(LG_ERROR, "sign-failed", "reason=\"out of memory\" len=%zu",
               len);
        memset(sig, 0, 64);
        return;
    }
    crypto_sign_detached(sig, NULL, buf, total, sk);
    if (buf != stack)
        free(buf);
}

bool crypto_verify_tagged(const char *tag, const uint8_t pk[32],
                          const uint8_t *msg, size_t len, const uint8_t sig[64])
{
    uint8_t stack[TAGGED_STACK];
    size_t total = 0;
    uint8_t *buf = tagged_build(tag, msg, len, stack, &total);
    if (buf == NULL)
        return false;
    bool ok = crypto_sign_verify_detached(sig, buf, total, pk) == 0;
    if (buf != stack)
        free(buf);
    return ok;
}

void crypto_sign_raw(const uint8_t sk[64], const uint8_t *msg, size_t len,
                     uint8_t sig[64])
{
    crypto_sign_detached(sig, NULL, msg, len, sk);
}

bool crypto_verify_raw(const uint8_t pk[32], const uint8_t *msg, size_t len,
                       const uint8_t sig[64])
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

/* ---- the core's injected functions ------------------------------------ */

static void pbft_hash_cb(void *ctx, const uint8_t *data, size_t len,
                         uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    crypto_hash_sha256(out, data, len);
}

static void pbft_sign_cb(void *ctx, const uint8_t *msg, size_t len,
                         uint8_t sig[PBFT_SIG_SIZE])
{
    const struct crypto_replica_ctx *c = ctx;
    /* A verify-only context must never be asked to sign. */
    LG_ASSERT(c->sk != NULL);
    crypto_sign_detached(sig, NULL, msg, len, c->sk);
}

static bool pbft_verify_cb(void *ctx, uint32_t replica, const uint8_t *msg,
                           size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    const struct crypto_replica_ctx *c = ctx;
    if (replica >= c->n)
        return false;
    return crypto_sign_verify_detached(sig, msg, len, c->pks[replica]) == 0;
}

static bool pbft_verify_request_cb(void *ctx, const struct pbft_request *req)
{
    const struct crypto_replica_ctx *c = ctx;
    if (c->is_member != NULL && !c->is_member(c->member_arg, req->client))
        return false;
    return txcheck_request_valid(c->tx_chain_id ? c->tx_chain_id : c->chain_id,
                                 c->sigs, req);
}

void crypto_pbft_init(struct pbft_crypto *c, struct crypto_replica_ctx *ctx)
{
    LG_ASSERT(ctx != NULL);
    LG_ASSERT(ctx->chain_id != NULL);
    c->ctx = ctx;
    c->hash = pbft_hash_cb;
    c->sign = pbft_sign_cb;
    c->verify = pbft_verify_cb;
    c->verify_request = pbft_verify_request_cb;
}
