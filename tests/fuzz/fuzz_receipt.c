/*
 * fuzz_receipt.c - receipts as an auditor or a client receives them:
 * Tc__Receipt bytes decoded (size-capped) and checked with verify_receipt
 * against a fixed genesis (replica and member keys from fixed seeds).
 *
 * Invariants: no crash or sanitizer report; false always comes with a
 * reason; true only for a receipt whose tx id is SHA-256 of its signed tx,
 * whose log index is inside the certified log size and whose signed tx
 * verifies on its own; the answer is the same when asked twice.
 *
 * FUZZ_VERBOSE=1 prints each verdict. FUZZ_WRITE_SEEDS=DIR makes the first call
 * build a ledger of three certified blocks in a temporary store and write the
 * receipt of every transaction in it (valid inputs) into DIR.
 */
#include "crypto.h"
#include "genesis.h"
#include "ledger.h"
#include "registry.h"
#include "store.h"
#include "tl_fixture.h"
#include "tx.h"
#include "verify.h"

#include <ftw.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_REPLICAS  4
#define RECEIPT_MAX (1u << 20)

static struct tl_fixture F;
static struct genesis *G;

/* ---- seeds --------------------------------------------------------------- */

static uint8_t *tx_make(uint64_t nonce, size_t *len)
{
    return tl_fixture_tx(&F, nonce, len);
}

static void block_add(struct ledger *l, uint32_t n, uint64_t *nonce,
                      uint8_t (*ids)[32], size_t *n_ids)
{
    struct pbft_request reqs[4];
    uint8_t *txs[4], hash[32], stmt[PBFT_VOTE_STATEMENT_MAX];
    struct ledger_tip tip;
    LG_ASSERT(n <= 4);
    ledger_tip(l, &tip);
    memset(reqs, 0, sizeof(reqs));
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        txs[i] = tx_make(++*nonce, &len);
        reqs[i].data = txs[i];
        reqs[i].len = (uint32_t)len;
        tx_id(txs[i], len, ids[(*n_ids)++]);
    }
    struct pbft_execute ex = {.seq = tip.height + 1,
                              .timestamp_ms = 5000 + tip.height,
                              .n_requests = n,
                              .requests = reqs};
    LG_ASSERT(ledger_apply(l, &ex, hash) == LG_OK);
    for (uint32_t i = 0; i < n; i++)
        free(txs[i]);
    struct pbft_vote votes[3];
    struct pbft_checkpoint_cert c = {
        .seq = ex.seq, .n_votes = 3, .votes = votes};
    memcpy(c.digest, hash, 32);
    for (uint32_t i = 0; i < 3; i++) {
        memset(&votes[i], 0, sizeof(votes[i]));
        votes[i].replica = i;
        votes[i].seq = ex.seq;
        memcpy(votes[i].digest, hash, 32);
        size_t sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, G->chain_id,
                                        &votes[i], stmt, sizeof(stmt));
        crypto_sign_raw(F.replica_sk[i], stmt, sl, votes[i].sig);
    }
    LG_ASSERT(ledger_put_cert(l, &c) == LG_OK);
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void write_seeds(const char *dir)
{
    char tmp[64] = "/tmp/fuzz_receipt.XXXXXX", err[512];
    struct store *s = NULL;
    struct registry *reg = NULL;
    struct ledger *l = NULL;
    LG_ASSERT(mkdtemp(tmp) != NULL);
    LG_ASSERT(store_open(tmp, true, &s, err, sizeof(err)) == LG_OK);
    LG_ASSERT(registry_new(G, &reg) == LG_OK);
    LG_ASSERT(ledger_open(s, G, reg, &l, err, sizeof(err)) == LG_OK);
    uint8_t ids[8][32];
    size_t n_ids = 0;
    uint64_t nonce = 0;
    block_add(l, 1, &nonce, ids, &n_ids);
    block_add(l, 3, &nonce, ids, &n_ids);
    block_add(l, 2, &nonce, ids, &n_ids);
    for (size_t i = 0; i < n_ids; i++) {
        Tc__Receipt *r = NULL;
        LG_ASSERT(ledger_receipt(l, ids[i], &r) == LG_OK);
        size_t len = tc__receipt__get_packed_size(r);
        uint8_t *buf = malloc(len);
        LG_ASSERT(buf != NULL);
        tc__receipt__pack(r, buf);
        char path[512];
        snprintf(path, sizeof(path), "%s/valid-tx%zu", dir, i);
        LG_ASSERT(lg_write_file(path, buf, len, 0644) == LG_OK);
        free(buf);
        tc__receipt__free_unpacked(r, NULL);
    }
    ledger_close(l);
    registry_free(reg);
    store_close(s);
    (void)nftw(tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- the target ------------------------------------------------------------
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        LG_ASSERT(crypto_setup() == LG_OK);
        lg_log_set_level(LG_OFF);
        tl_fixture_init(&F, "fuzz-receipt");
        G = F.g;
        ready = true;
        const char *seeds = getenv("FUZZ_WRITE_SEEDS");
        if (seeds != NULL)
            write_seeds(seeds);
    }
    if (size > RECEIPT_MAX)
        return 0;
    Tc__Receipt *r = tc__receipt__unpack(NULL, size, data);
    if (r == NULL)
        return 0;
    struct verify_receipt_info info;
    char why[256] = "", why2[256] = "";
    bool ok = verify_receipt(G, r, &info, why, sizeof(why));
    bool again = verify_receipt(G, r, NULL, why2, sizeof(why2));
    LG_ASSERT(ok == again);
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "receipt: %s %s\n", ok ? "valid" : "invalid:", why);
    if (!ok) {
        LG_ASSERT(why[0] != '\0');
        LG_ASSERT(strcmp(why, why2) == 0);
    } else {
        uint8_t id[32];
        crypto_sha256(r->signed_tx.data, r->signed_tx.len, id);
        LG_ASSERT(memcmp(id, info.tx_id, 32) == 0);
        LG_ASSERT(info.log_index < info.log_size);
        LG_ASSERT(info.height >= 1);
        LG_ASSERT(verify_signed_tx(G, r->signed_tx.data, r->signed_tx.len, NULL,
                                   why, sizeof(why)));
    }
    tc__receipt__free_unpacked(r, NULL);
    return 0;
}
