/*
 * tl_fixture.h - a deterministic 4-replica consortium with one sponsor, for
 * tests and fuzz targets that build signed transactions and certified
 * blocks. Keys come from fixed seeds, so a chain name gives the same
 * genesis bytes (and chain id) every run: seed corpora stay valid.
 */
#ifndef TL_FIXTURE_H
#define TL_FIXTURE_H

#include "genesis.h"

#include <stddef.h>
#include <stdint.h>

#define TL_REPLICAS 4

struct tl_fixture {
    uint8_t replica_sk[TL_REPLICAS][64], replica_pk[TL_REPLICAS][32];
    uint8_t sponsor_sk[64], sponsor_pk[32];
    struct genesis *g; /* heap, never freed: lives as long as the process */
};

/* Fills f and parses its genesis named chain_name; aborts on failure. */
void tl_fixture_init(struct tl_fixture *f, const char *chain_name);

/* A SignedTx registering trial NCT<nonce> by the sponsor (malloc'd). */
uint8_t *tl_fixture_tx(const struct tl_fixture *f, uint64_t nonce, size_t *len);

#endif /* TL_FIXTURE_H */
