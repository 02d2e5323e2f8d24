/*
 * fuzz_genesis.c - parsing and validating genesis files (node/genesis.c).
 */
#include "crypto.h"
#include "genesis.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct genesis *g;
    if (g == NULL) {
        LG_ASSERT(crypto_setup() == LG_OK);
        g = malloc(sizeof(*g)); /* large: allocated once, reused */
        LG_ASSERT(g != NULL);
    }
    char err[512];
    if (genesis_parse(data, size, g, err, sizeof(err)) == LG_OK) {
        LG_ASSERT(g->n_replicas >= 4 && g->n_replicas <= PBFT_MAX_REPLICAS);
        LG_ASSERT(g->raw_len == size);
        struct pbft_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        genesis_pbft_config(g, &cfg);
        LG_ASSERT(cfg.n == g->n_replicas);
        genesis_free(g);
    } else {
        LG_ASSERT(strlen(err) > 0 && g->raw == NULL);
    }
    return 0;
}
