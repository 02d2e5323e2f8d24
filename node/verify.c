/*
 * verify.c - offline checks of certificates, blocks, receipts and log
 * extensions against the genesis alone (see verify.h).
 */
#include "verify.h"

#include "crypto.h"
#include "merkle.h"
#include "pbft.h"
#include "tx.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Writes the reason and returns false, so checks read `return fail(...)`. */
static bool fail(char *why, size_t why_len, const char *fmt, ...)
    LG_PRINTF(3, 4);

static bool fail(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || why_len == 0)
        return false;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return false;
}

/* First 8 bytes as hex: enough to tell hashes apart in a sentence. */
struct short_hex {
    char s[17];
};

static struct short_hex short_hex(const uint8_t *h)
{
    struct short_hex out;

    lg_hex(h, 8, out.s);
    return out;
}

static bool is_hash(const ProtobufCBinaryData *b)
{
    return b->len == 32 && b->data != NULL;
}

static bool hash_eq(const ProtobufCBinaryData *b, const uint8_t h[32])
{
    return is_hash(b) && memcmp(b->data, h, 32) == 0;
}

static int replica_index(const struct genesis *g, uint32_t id)
{
    for (uint32_t i = 0; i < g->n_replicas; i++) {
        if (g->replicas[i].id == id)
            return (int)i;
    }
    return -1;
}

/* One vote of a block certificate: for this block, signed by its replica
 * over the CHECKPOINT statement. */
static bool vote_valid(const struct genesis *g, const struct genesis_replica *r,
                       const Tc__Vote *v, uint64_t height,
                       const uint8_t block_hash[32], char *why, size_t why_len)
{
    struct pbft_vote pv;
    uint8_t st[PBFT_VOTE_STATEMENT_MAX];
    size_t st_len;

    if (v->seq != height || !hash_eq(&v->digest, block_hash))
        return fail(why, why_len,
                    "the vote of replica %u is for another block than the "
                    "certified one",
                    v->replica);
    if (v->sig.len != CRYPTO_SIG_SIZE || v->sig.data == NULL)
        return fail(why, why_len,
                    "the vote of replica %u has a malformed signature",
                    v->replica);
    memset(&pv, 0, sizeof(pv));
    pv.replica = v->replica;
    pv.view = v->view;
    pv.seq = height;
    memcpy(pv.digest, block_hash, 32);
    pv.timestamp_ms = v->timestamp_ms;
    st_len = pbft_vote_statement(PBFT_MSG_CHECKPOINT, g->chain_id, &pv, st,
                                 sizeof(st));
    if (st_len == 0 || st_len > sizeof(st))
        return fail(why, why_len, "cannot build the checkpoint statement");
    if (!crypto_verify_raw(r->public_key, st, st_len, v->sig.data))
        return fail(why, why_len,
                    "the signature of replica %u on block %llu does not "
                    "verify with its genesis key",
                    v->replica, (unsigned long long)height);
    return true;
}

bool verify_certificate(const struct genesis *g, uint64_t height,
                        const uint8_t block_hash[32],
                        const Tc__Certificate *cert, char *why, size_t why_len)
{
    bool seen[PBFT_MAX_REPLICAS] = {false};
    uint32_t quorum, n_valid = 0;

    if (cert == NULL)
        return fail(why, why_len, "block %llu has no certificate",
                    (unsigned long long)height);
    if (cert->height != height)
        return fail(why, why_len,
                    "the certificate is for height %llu, the block is at "
                    "height %llu",
                    (unsigned long long)cert->height,
                    (unsigned long long)height);
    if (!hash_eq(&cert->block_hash, block_hash))
        return fail(why, why_len,
                    "the certificate is for another block than %s (the "
                    "hash of the header)",
                    short_hex(block_hash).s);
    if (g->n_replicas == 0 || g->n_replicas > PBFT_MAX_REPLICAS)
        return fail(why, why_len, "the genesis has no usable replica set");
    quorum = pbft_quorum(g->n_replicas);
    if (cert->n_votes > g->n_replicas)
        return fail(why, why_len,
                    "the certificate has %zu votes but there are only %u "
                    "replicas",
                    cert->n_votes, g->n_replicas);
    for (size_t i = 0; i < cert->n_votes; i++) {
        const Tc__Vote *v = cert->votes[i];
        int at;

        if (v == NULL)
            return fail(why, why_len, "vote %zu is empty", i);
        at = replica_index(g, v->replica);
        if (at < 0)
            return fail(why, why_len,
                        "vote %zu is from replica %u, which is not in the "
                        "genesis",
                        i, v->replica);
        if (seen[at])
            return fail(why, why_len,
                        "replica %u votes twice in the certificate",
                        v->replica);
        seen[at] = true;
        if (!vote_valid(g, &g->replicas[at], v, height, block_hash, why,
                        why_len))
            return false;
        n_valid++;
    }
    if (n_valid < quorum)
        return fail(why, why_len,
                    "the certificate has %u votes from distinct replicas, "
                    "the quorum for %u replicas is %u",
                    n_valid, g->n_replicas, quorum);
    return true;
}

/* Header fields that must have their fixed sizes. */
static bool header_well_formed(const struct genesis *g,
                               const Tc__BlockHeader *h, char *why,
                               size_t why_len)
{
    if (!is_hash(&h->chain_id))
        return fail(why, why_len, "the block header has no chain id");
    if (memcmp(h->chain_id.data, g->chain_id, 32) != 0)
        return fail(why, why_len,
                    "the block is for chain %s..., the genesis is chain "
                    "%s...",
                    short_hex(h->chain_id.data).s, short_hex(g->chain_id).s);
    if (h->height == 0)
        return fail(why, why_len, "the block header has height 0");
    if (!is_hash(&h->prev_hash) || !is_hash(&h->tx_root) ||
        !is_hash(&h->results_root) || !is_hash(&h->log_root))
        return fail(why, why_len,
                    "block %llu's header lacks a 32-byte hash field",
                    (unsigned long long)h->height);
    if (h->log_size < h->n_txs)
        return fail(why, why_len,
                    "block %llu's header says the log holds %llu txs, fewer "
                    "than the block's %u",
                    (unsigned long long)h->height,
                    (unsigned long long)h->log_size, h->n_txs);
    return true;
}

/* Recomputes both roots of a decoded block and checks that result i names
 * tx i. */
static bool block_roots_match(const Tc__Block *b, const Tc__BlockHeader *h,
                              char *why, size_t why_len)
{
    uint8_t(*txs)[32] = NULL, (*res)[32] = NULL;
    uint8_t root[32];
    bool ok = false;
    size_t n = b->n_txs;

    if (n > 0) {
        txs = malloc(n * sizeof(*txs));
        res = malloc(n * sizeof(*res));
        if (txs == NULL || res == NULL) {
            fail(why, why_len, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        Tc__TxResult *r;
        uint8_t id[32];
        bool named;

        merkle_leaf_hash(b->txs[i].data, b->txs[i].len, txs[i]);
        merkle_leaf_hash(b->results[i].data, b->results[i].len, res[i]);
        r = tc__tx_result__unpack(NULL, b->results[i].len, b->results[i].data);
        if (r == NULL) {
            fail(why, why_len, "result %zu of block %llu does not decode", i,
                 (unsigned long long)h->height);
            goto out;
        }
        crypto_sha256(b->txs[i].data, b->txs[i].len, id);
        named = hash_eq(&r->tx_id, id);
        tc__tx_result__free_unpacked(r, NULL);
        if (!named) {
            fail(why, why_len,
                 "result %zu of block %llu names another tx than tx %zu", i,
                 (unsigned long long)h->height, i);
            goto out;
        }
    }
    merkle_root((const uint8_t(*)[32])txs, n, root);
    if (memcmp(root, h->tx_root.data, 32) != 0) {
        fail(why, why_len,
             "block %llu's txs do not hash to the tx_root in its header",
             (unsigned long long)h->height);
        goto out;
    }
    merkle_root((const uint8_t(*)[32])res, n, root);
    if (memcmp(root, h->results_root.data, 32) != 0) {
        fail(why, why_len,
             "block %llu's results do not hash to the results_root in its "
             "header",
             (unsigned long long)h->height);
        goto out;
    }
    ok = true;
out:
    free(txs);
    free(res);
    return ok;
}

static void block_info_fill(const Tc__BlockHeader *h,
                            const uint8_t block_hash[32],
                            struct verify_block_info *out)
{
    memset(out, 0, sizeof(*out));
    out->height = h->height;
    out->view = h->view;
    out->time_ms = h->timestamp_ms;
    out->n_txs = h->n_txs;
    out->log_size = h->log_size;
    memcpy(out->block_hash, block_hash, 32);
    memcpy(out->prev_hash, h->prev_hash.data, 32);
    memcpy(out->tx_root, h->tx_root.data, 32);
    memcpy(out->results_root, h->results_root.data, 32);
    memcpy(out->log_root, h->log_root.data, 32);
}

/* Checks of a decoded block that need no allocation of their own. */
static bool block_links(const Tc__Block *b, const Tc__BlockHeader *h,
                        const uint8_t prev_hash[32], uint64_t expect_height,
                        char *why, size_t why_len)
{
    if (expect_height != 0 && h->height != expect_height)
        return fail(why, why_len, "the block is at height %llu, expected %llu",
                    (unsigned long long)h->height,
                    (unsigned long long)expect_height);
    if (prev_hash != NULL && memcmp(h->prev_hash.data, prev_hash, 32) != 0)
        return fail(why, why_len,
                    "block %llu's prev_hash %s... is not the hash %s... of "
                    "the block before it",
                    (unsigned long long)h->height,
                    short_hex(h->prev_hash.data).s, short_hex(prev_hash).s);
    if (h->n_txs != b->n_txs)
        return fail(why, why_len,
                    "block %llu's header says %u txs, the block holds %zu",
                    (unsigned long long)h->height, h->n_txs, b->n_txs);
    if (b->n_results != b->n_txs)
        return fail(why, why_len, "block %llu holds %zu txs but %zu results",
                    (unsigned long long)h->height, b->n_txs, b->n_results);
    return true;
}

bool verify_block(const struct genesis *g, const uint8_t *block_bytes,
                  size_t len, const Tc__Certificate *cert,
                  const uint8_t prev_hash[32], uint64_t expect_height,
                  struct verify_block_info *out, char *why, size_t why_len)
{
    Tc__Block *b = NULL;
    Tc__BlockHeader *h = NULL;
    uint8_t hash[32];
    bool ok = false;

    if (block_bytes == NULL || len == 0)
        return fail(why, why_len, "the block is empty");
    if (len > VERIFY_BLOCK_MAX)
        return fail(why, why_len, "the block is %zu bytes, more than %u", len,
                    VERIFY_BLOCK_MAX);
    b = tc__block__unpack(NULL, len, block_bytes);
    if (b == NULL)
        return fail(why, why_len, "the block does not decode");
    h = tc__block_header__unpack(NULL, b->header.len, b->header.data);
    if (h == NULL) {
        fail(why, why_len, "the block header does not decode");
        goto out;
    }
    if (!header_well_formed(g, h, why, why_len) ||
        !block_links(b, h, prev_hash, expect_height, why, why_len) ||
        !block_roots_match(b, h, why, why_len))
        goto out;
    crypto_sha256(b->header.data, b->header.len, hash);
    if (!verify_certificate(g, h->height, hash, cert, why, why_len))
        goto out;
    if (out != NULL)
        block_info_fill(h, hash, out);
    ok = true;
out:
    tc__block_header__free_unpacked(h, NULL);
    tc__block__free_unpacked(b, NULL);
    return ok;
}

bool verify_signed_tx(const struct genesis *g, const uint8_t *signed_tx,
                      size_t len, uint8_t tx_id[32], char *why, size_t why_len)
{
    struct tx_view v;
    char err[160];

    memset(&v, 0, sizeof(v));
    if (tx_open(signed_tx, len, g->chain_id, &v, err, sizeof(err)) != LG_OK)
        return fail(why, why_len, "the transaction is not valid: %s", err);
    if (tx_id != NULL)
        memcpy(tx_id, v.tx_id, 32);
    tx_view_free(&v);
    return true;
}

/* Copies a proof's path into fixed 32-byte slots; false when too long or a
 * hash is not 32 bytes. */
static bool path_copy(ProtobufCBinaryData *in, size_t n, uint8_t (*out)[32],
                      const char *what, char *why, size_t why_len)
{
    if (n > MERKLE_MAX_PATH)
        return fail(why, why_len, "the %s has %zu hashes, more than %d", what,
                    n, MERKLE_MAX_PATH);
    for (size_t i = 0; i < n; i++) {
        if (!is_hash(&in[i]))
            return fail(why, why_len, "hash %zu of the %s is not 32 bytes", i,
                        what);
        memcpy(out[i], in[i].data, 32);
    }
    return true;
}

/* One inclusion proof against a size and root from the certified header. */
static bool inclusion_holds(const Tc__InclusionProof *p, const char *what,
                            const uint8_t leaf[32], uint64_t index,
                            uint64_t size, const uint8_t root[32], char *why,
                            size_t why_len)
{
    uint8_t path[MERKLE_MAX_PATH][32];

    if (p == NULL)
        return fail(why, why_len, "the receipt has no %s", what);
    if (p->tree_size != size)
        return fail(why, why_len,
                    "the %s claims tree size %llu, the certified header says "
                    "%llu",
                    what, (unsigned long long)p->tree_size,
                    (unsigned long long)size);
    if (p->leaf_index != index)
        return fail(
            why, why_len, "the %s is for leaf %llu, the tx sits at %llu", what,
            (unsigned long long)p->leaf_index, (unsigned long long)index);
    if (!path_copy(p->path, p->n_path, path, what, why, why_len))
        return false;
    if (!merkle_verify_inclusion(leaf, index, size, (const uint8_t(*)[32])path,
                                 p->n_path, root))
        return fail(why, why_len, "the %s does not lead to the certified root",
                    what);
    return true;
}

/* The result bytes decode and name tx_id. */
static bool result_names(const ProtobufCBinaryData *result,
                         const uint8_t tx_id[32], Tc__TxStatus *status,
                         char *why, size_t why_len)
{
    Tc__TxResult *r;
    bool named;

    r = tc__tx_result__unpack(NULL, result->len, result->data);
    if (r == NULL)
        return fail(why, why_len, "the receipt's result does not decode");
    named = hash_eq(&r->tx_id, tx_id);
    *status = r->status;
    tc__tx_result__free_unpacked(r, NULL);
    if (!named)
        return fail(why, why_len, "the receipt's result is for another tx");
    return true;
}

/* The three inclusion proofs of a receipt against its decoded header. */
static bool receipt_proofs(const Tc__Receipt *r, const Tc__BlockHeader *h,
                           uint64_t *log_index, char *why, size_t why_len)
{
    uint8_t leaf[32];
    uint64_t index;

    if (r->block_proof == NULL)
        return fail(why, why_len, "the receipt has no block proof");
    index = r->block_proof->leaf_index;
    if (index >= h->n_txs)
        return fail(why, why_len,
                    "the block proof is for tx %llu of a block of %u",
                    (unsigned long long)index, h->n_txs);
    merkle_leaf_hash(r->signed_tx.data, r->signed_tx.len, leaf);
    if (!inclusion_holds(r->block_proof, "block proof", leaf, index, h->n_txs,
                         h->tx_root.data, why, why_len))
        return false;
    merkle_leaf_hash(r->result.data, r->result.len, leaf);
    if (!inclusion_holds(r->result_proof, "result proof", leaf, index, h->n_txs,
                         h->results_root.data, why, why_len))
        return false;
    merkle_leaf_hash(r->signed_tx.data, r->signed_tx.len, leaf);
    *log_index = h->log_size - h->n_txs + index;
    if (!inclusion_holds(r->log_proof, "log proof", leaf, *log_index,
                         h->log_size, h->log_root.data, why, why_len))
        return false;
    return true;
}

bool verify_receipt(const struct genesis *g, const Tc__Receipt *r,
                    struct verify_receipt_info *out, char *why, size_t why_len)
{
    Tc__BlockHeader *h;
    uint8_t hash[32], tx_id[32];
    uint64_t log_index = 0;
    Tc__TxStatus status = TC__TX_STATUS__TX_UNKNOWN;
    bool ok = false;

    if (r == NULL || r->header.len == 0)
        return fail(why, why_len, "the receipt has no block header");
    h = tc__block_header__unpack(NULL, r->header.len, r->header.data);
    if (h == NULL)
        return fail(why, why_len, "the receipt's block header does not decode");
    if (!header_well_formed(g, h, why, why_len))
        goto out;
    crypto_sha256(r->header.data, r->header.len, hash);
    if (!verify_certificate(g, h->height, hash, r->cert, why, why_len))
        goto out;
    if (!verify_signed_tx(g, r->signed_tx.data, r->signed_tx.len, tx_id, why,
                          why_len))
        goto out;
    if (!result_names(&r->result, tx_id, &status, why, why_len))
        goto out;
    if (!receipt_proofs(r, h, &log_index, why, why_len))
        goto out;
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        memcpy(out->tx_id, tx_id, 32);
        out->height = h->height;
        out->time_ms = h->timestamp_ms;
        out->block_index = (uint32_t)r->block_proof->leaf_index;
        out->log_index = log_index;
        out->log_size = h->log_size;
        memcpy(out->log_root, h->log_root.data, 32);
        memcpy(out->block_hash, hash, 32);
        out->status = status;
    }
    ok = true;
out:
    tc__block_header__free_unpacked(h, NULL);
    return ok;
}

/* Consistency of (size1, root1) with (size2, root2), RFC 9162. */
static bool consistency_holds(uint64_t size1, const uint8_t root1[32],
                              uint64_t size2, const uint8_t root2[32],
                              const Tc__ConsistencyProof *p, char *why,
                              size_t why_len)
{
    uint8_t path[MERKLE_MAX_PATH][32], empty[32];
    size_t n_path = p != NULL ? p->n_path : 0;

    if (size1 > size2)
        return fail(why, why_len,
                    "the earlier log size %llu exceeds the later %llu",
                    (unsigned long long)size1, (unsigned long long)size2);
    if (size1 == 0 || size1 == size2) {
        /* Nothing to prove but the roots themselves: an empty tree has
         * exactly one root, equal sizes one root each. */
        crypto_sha256("", 0, empty);
        if (n_path != 0)
            return fail(why, why_len,
                        "a consistency proof from size %llu to %llu must be "
                        "empty",
                        (unsigned long long)size1, (unsigned long long)size2);
        if (memcmp(root1, size1 == 0 ? empty : root2, 32) != 0)
            return fail(why, why_len,
                        "the earlier root is not the certified root of a log "
                        "of size %llu",
                        (unsigned long long)size1);
        return true;
    }
    if (p == NULL)
        return fail(why, why_len, "there is no consistency proof");
    if (!path_copy(p->path, p->n_path, path, "consistency proof", why, why_len))
        return false;
    if (!merkle_verify_consistency(size1, size2, root1, root2,
                                   (const uint8_t(*)[32])path, p->n_path))
        return fail(why, why_len,
                    "the log at size %llu is not a prefix of the certified "
                    "log at size %llu: the consistency proof fails",
                    (unsigned long long)size1, (unsigned long long)size2);
    return true;
}

bool verify_log_extension(const struct genesis *g, uint64_t size1,
                          const uint8_t root1[32], const uint8_t *header2,
                          size_t header2_len, const Tc__Certificate *cert2,
                          const Tc__ConsistencyProof *proof, char *why,
                          size_t why_len)
{
    Tc__BlockHeader *h;
    uint8_t hash[32];
    bool ok = false;

    if (header2 == NULL || header2_len == 0)
        return fail(why, why_len, "there is no later block header");
    h = tc__block_header__unpack(NULL, header2_len, header2);
    if (h == NULL)
        return fail(why, why_len, "the later block header does not decode");
    if (!header_well_formed(g, h, why, why_len))
        goto out;
    crypto_sha256(header2, header2_len, hash);
    if (!verify_certificate(g, h->height, hash, cert2, why, why_len))
        goto out;
    if (proof != NULL && ((proof->size1 != 0 && proof->size1 != size1) ||
                          (proof->size2 != 0 && proof->size2 != h->log_size))) {
        fail(why, why_len,
             "the proof is from size %llu to %llu, the sizes to check are "
             "%llu and %llu (certified)",
             (unsigned long long)proof->size1, (unsigned long long)proof->size2,
             (unsigned long long)size1, (unsigned long long)h->log_size);
        goto out;
    }
    ok = consistency_holds(size1, root1, h->log_size, h->log_root.data, proof,
                           why, why_len);
out:
    tc__block_header__free_unpacked(h, NULL);
    return ok;
}
