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

/* The core's verify_request: tx_open succeeds, req->client is the signer
 * and req->req_no the nonce. */
bool txcheck_request_valid(const uint8_t chain_id[32],
                           const struct pbft_request *req);

/* Participant pseudonym: HMAC-SHA-256 keyed with the site's secret over
 * trial_id || 0x00 || local_id. Keyed, so a guessable local id does not
 * reveal the person to anyone without the site's secret. */
void tx_pseudonym(const uint8_t site_secret[32], const char *trial_id,
                  const char *local_id, uint8_t out[32]);

/* SHA-256 of the SignedTx bytes. */
void tx_id(const uint8_t *bytes, size_t len, uint8_t out[32]);

#endif /* TX_H */
