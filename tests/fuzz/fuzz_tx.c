/*
 * fuzz_tx.c - opening signed transactions (node/tx.c) with the chain id
 * the seed corpus was made for (32 bytes of 0x11; see tests/unit/test_tx.c).
 */
#include "crypto.h"
#include "tx.h"

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    /* One cache across inputs, as a node keeps it: a signature cached for
     * one input must never make another input open differently. */
    static struct tx_sigcache *cache;
    if (!ready) {
        LG_ASSERT(crypto_setup() == LG_OK);
        cache = tx_sigcache_new();
        LG_ASSERT(cache != NULL);
        ready = true;
    }
    uint8_t chain[32];
    memset(chain, 0x11, sizeof(chain));
    struct tx_view v;
    char err[256];
    int rv = tx_open(data, size, chain, &v, err, sizeof(err));
    for (int i = 0; i < 2; i++) { /* a miss, then maybe a hit */
        struct tx_view c;
        char cerr[256];
        LG_ASSERT(tx_open_cached(data, size, chain, cache, &c, cerr,
                                 sizeof(cerr)) == rv);
        LG_ASSERT(rv != LG_OK || memcmp(c.tx_id, v.tx_id, 32) == 0);
        tx_view_free(&c);
    }
    if (rv == LG_OK) {
        uint8_t id[32];
        tx_id(data, size, id);
        LG_ASSERT(memcmp(id, v.tx_id, 32) == 0);
        LG_ASSERT(v.tx != NULL && v.signer != NULL);
        struct pbft_request req = {
            .req_no = v.nonce, .len = (uint32_t)size, .data = data};
        memcpy(req.client, v.signer, 32);
        LG_ASSERT(txcheck_request_valid(chain, NULL, &req));
        tx_view_free(&v);
    } else {
        LG_ASSERT(v.tx == NULL && v.signed_tx == NULL);
        LG_ASSERT(strlen(err) > 0);
    }
    return 0;
}
