/*
 * tx.h - signed registry transactions (proto/tx.proto): signing, opening
 * (size cap, decode, chain id, signature) and pseudonyms.
 *
 * A client signs the exact bytes of a Tx with TAG_TX; what travels and is
 * stored is a SignedTx. The transaction id is SHA-256 of the SignedTx bytes.
 */
#ifndef TX_H
#define TX_H

#include "genesis.h"
#include "lg.h"
#include "pbft.h"
#include "tx.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TX_BYTES_MAX (64u * 1024u)

/* A verified transaction. tx and signed are owned by the view
 * (tx_view_free); signer points into tx. */
struct tx_view {
    Tc__SignedTx *signed_tx; /* body and sig */
    Tc__Tx *tx;              /* decoded body */
    const uint8_t *signer;   /* 32 bytes, inside tx */
    uint64_t nonce;
    uint8_t tx_id[32];
};

/* Packs body, signs TAG_TX||NUL||body bytes with k's secret key and packs
 * the SignedTx into *out (malloc'd, caller frees). body->signer should be
 * k's public key and body->chain_id the chain's: tx_open checks both. */
int tx_sign(const Tc__Tx *body, const struct keyfile *k, uint8_t **out,
            size_t *len) LG_MUST_CHECK;

/* Opens SignedTx bytes: size cap, decode, signer and signature lengths,
 * chain id (LG_ECHAIN), signature (LG_EBADSIG), a body present. Malformed
 * input gives LG_EBADMSG (LG_ETOOBIG over TX_BYTES_MAX) with a sentence in
 * err. On success the caller owns *out (tx_view_free); on failure *out is
 * left empty. */
int tx_open(const uint8_t *bytes, size_t len, const uint8_t chain_id[32],
            struct tx_view *out, char *err, size_t err_len) LG_MUST_CHECK;
void tx_view_free(struct tx_view *v); /* accepts NULL and empty views */

/* Signatures a replica has already verified, by transaction id. A
 * transaction reaches a replica up to three times (its API, its core's
 * request path, the primary's pre-prepare); the Ed25519 work is done once.
 * The id is SHA-256 of the whole SignedTx (body with signer and chain id,
 * and the signature), so a hit means these exact bytes verified before.
 * Only the signature is remembered: decoding, sizes and the chain id are
 * checked on every open. Fixed size (direct-mapped, the newest wins a
 * slot), one thread. */
#define TX_SIGCACHE_SLOTS 8192u
struct tx_sigcache;
struct tx_sigcache *tx_sigcache_new(void);
void tx_sigcache_free(struct tx_sigcache *c); /* accepts NULL */
void tx_sigcache_stats(const struct tx_sigcache *c, uint64_t *hits,
                       uint64_t *misses);

/* tx_open with a cache (NULL: none): a signature found in it is not
 * verified again, one that verifies is added. */
int tx_open_cached(const uint8_t *bytes, size_t len, const uint8_t chain_id[32],
                   struct tx_sigcache *cache, struct tx_view *out, char *err,
                   size_t err_len) LG_MUST_CHECK;

/* The core's verify_request: tx_open succeeds, req->client is the signer
 * and req->req_no the nonce. cache may be NULL. */
bool txcheck_request_valid(const uint8_t chain_id[32],
                           struct tx_sigcache *cache,
                           const struct pbft_request *req);

/* Participant pseudonym: HMAC-SHA-256 keyed with the site's secret over
 * trial_id || 0x00 || local_id. Keyed, so a guessable local id does not
 * reveal the person to anyone without the site's secret. */
void tx_pseudonym(const uint8_t site_secret[32], const char *trial_id,
                  const char *local_id, uint8_t out[32]);

/* SHA-256 of the SignedTx bytes. */
void tx_id(const uint8_t *bytes, size_t len, uint8_t out[32]);

#endif /* TX_H */
