/*
 * crypto.h - the only place that calls libsodium for hashing and
 * signatures. Every signature covers a domain tag (what is signed) and the
 * chain id (which consortium), so no signature is valid in another role or
 * another consortium.
 */
#ifndef CRYPTO_H
#define CRYPTO_H

#include "lg.h"
#include "pbft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_HASH_SIZE 32
#define CRYPTO_PK_SIZE   32
#define CRYPTO_SK_SIZE   64
#define CRYPTO_SIG_SIZE  64

/* Domain tags. Each is NUL-terminated and the NUL is signed too. */
#define TAG_TX        "trialchain/tx/v1"
#define TAG_BLOCK     "trialchain/block/v1"
#define TAG_PEER_AUTH "trialchain/peer-auth/v1"

/* sodium_init once; LG_EINVAL if libsodium cannot start. */
int crypto_setup(void) LG_MUST_CHECK;

void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
/* Streaming SHA-256 (files, manifests). */
struct crypto_sha256_ctx {
    unsigned char opaque[128] __attribute__((aligned(16)));
};
void crypto_sha256_init(struct crypto_sha256_ctx *c);
void crypto_sha256_update(struct crypto_sha256_ctx *c, const void *d, size_t n);
void crypto_sha256_final(struct crypto_sha256_ctx *c, uint8_t out[32]);

/* Ed25519 over tag||NUL||msg. sk is libsodium's 64-byte secret key. */
void crypto_sign_tagged(const char *tag, const uint8_t sk[64],
                        const uint8_t *msg, size_t len, uint8_t sig[64]);
bool crypto_verify_tagged(const char *tag, const uint8_t pk[32],
                          const uint8_t *msg, size_t len,
                          const uint8_t sig[64]) LG_MUST_CHECK;
/* Plain Ed25519 (pbft_vote_statement already carries tag and chain id). */
void crypto_sign_raw(const uint8_t sk[64], const uint8_t *msg, size_t len,
                     uint8_t sig[64]);
bool crypto_verify_raw(const uint8_t pk[32], const uint8_t *msg, size_t len,
                       const uint8_t sig[64]) LG_MUST_CHECK;

/* Fills a struct pbft_crypto for the node: SHA-256, sign with `sk`, verify
 * with the replica keys `pks[n]`, verify_request = tx signature check
 * (txcheck_request_valid). The arrays must outlive the pbft. */
struct tx_sigcache; /* tx.h */
struct crypto_replica_ctx {
    const uint8_t *sk; /* 64 bytes, may be NULL (verify only) */
    uint32_t n;
    const uint8_t (*pks)[32];
    const uint8_t *chain_id; /* 32 bytes: signed consensus statements */
    /* Transactions carry the genesis chain id, also in later replica-set
     * epochs whose statements sign under their own (node/govern.h); NULL:
     * chain_id. */
    const uint8_t *tx_chain_id;
    /* When set, verify_request also requires the signer to be a member:
     * a request from a key outside the consortium never enters a block
     * (else any key pair could fill the ledger with rejected entries). */
    bool (*is_member)(void *arg, const uint8_t pk[32]);
    void *member_arg;
    /* Signatures already verified (tx.h); NULL: verify every time. */
    struct tx_sigcache *sigs;
};
void crypto_pbft_init(struct pbft_crypto *c, struct crypto_replica_ctx *ctx);

#endif /* CRYPTO_H */
