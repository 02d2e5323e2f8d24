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

/* Which set a sentence is about: the genesis one or a later one. */
struct set_name {
    char s[64];
};

static struct set_name set_name(const struct gov_replica_set *set)
{
    struct set_name out;

    if (set->base_height == 0)
        snprintf(out.s, sizeof(out.s), "the genesis");
    else
        snprintf(out.s, sizeof(out.s),
                 "the replica set in force after block %llu",
                 (unsigned long long)set->base_height);
    return out;
}

/* One vote of a block certificate: for this block, signed by its replica
 * over the CHECKPOINT statement under the epoch's chain id. */
static bool vote_valid(const struct gov_replica_set *set,
                       const uint8_t epoch_chain_id[32], uint32_t index,
                       const Tc__Vote *v, uint64_t height,
                       const uint8_t block_hash[32], char *why, size_t why_len)
{
    struct pbft_vote pv;
    uint8_t st[PBFT_VOTE_STATEMENT_MAX];
    size_t st_len;

    LG_ASSERT(index < set->n);
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
    st_len = pbft_vote_statement(PBFT_MSG_CHECKPOINT, epoch_chain_id, &pv, st,
                                 sizeof(st));
    if (st_len == 0 || st_len > sizeof(st))
        return fail(why, why_len, "cannot build the checkpoint statement");
    if (!crypto_verify_raw(set->r[index].public_key, st, st_len, v->sig.data))
        return fail(why, why_len,
                    "the signature of replica %u (%s) on block %llu does not "
                    "verify with its key in %s",
                    v->replica, set->r[index].name, (unsigned long long)height,
                    set_name(set).s);
    return true;
}

/* The cert names (height, block_hash). */
static bool cert_names(const Tc__Certificate *cert, uint64_t height,
                       const uint8_t block_hash[32], char *why, size_t why_len)
{
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
    return true;
}

bool verify_cert_with_set(const struct gov_replica_set *set,
                          const uint8_t epoch_chain_id[32], uint64_t height,
                          const uint8_t block_hash[32],
                          const Tc__Certificate *cert, char *why,
                          size_t why_len)
{
    bool seen[PBFT_MAX_REPLICAS] = {false};
    uint32_t quorum, n_valid = 0;

    if (!cert_names(cert, height, block_hash, why, why_len))
        return false;
    if (set->n == 0 || set->n > PBFT_MAX_REPLICAS)
        return fail(why, why_len, "%s has no usable replica set",
                    set_name(set).s);
    quorum = pbft_quorum(set->n);
    if (cert->n_votes > set->n)
        return fail(why, why_len,
                    "the certificate has %zu votes but there are only %u "
                    "replicas",
                    cert->n_votes, set->n);
    for (size_t i = 0; i < cert->n_votes; i++) {
        const Tc__Vote *v = cert->votes[i];

        if (v == NULL)
            return fail(why, why_len, "vote %zu is empty", i);
        if (v->replica >= set->n)
            return fail(why, why_len,
                        "vote %zu is from replica %u, which is not in %s", i,
                        v->replica, set_name(set).s);
        if (seen[v->replica])
            return fail(why, why_len,
                        "replica %u votes twice in the certificate",
                        v->replica);
        seen[v->replica] = true;
        if (!vote_valid(set, epoch_chain_id, v->replica, v, height, block_hash,
                        why, why_len))
            return false;
        n_valid++;
    }
    if (n_valid < quorum)
        return fail(why, why_len,
                    "the certificate has %u votes from distinct replicas, "
                    "the quorum for %u replicas is %u",
                    n_valid, set->n, quorum);
    return true;
}

bool verify_checkpoint_with_set(const struct gov_replica_set *set,
                                const uint8_t epoch_chain_id[32],
                                const struct pbft_checkpoint_cert *cert,
                                char *why, size_t why_len)
{
    Tc__Vote votes[PBFT_MAX_REPLICAS], *pv[PBFT_MAX_REPLICAS];
    Tc__Certificate c = TC__CERTIFICATE__INIT;

    if (cert == NULL)
        return fail(why, why_len, "there is no certificate");
    if (cert->n_votes > PBFT_MAX_REPLICAS || cert->n_votes > set->n)
        return fail(why, why_len,
                    "the certificate has %u votes but there are only %u "
                    "replicas",
                    cert->n_votes, set->n);
    for (uint32_t i = 0; i < cert->n_votes; i++) {
        const struct pbft_vote *v = &cert->votes[i];

        tc__vote__init(&votes[i]);
        votes[i].replica = v->replica;
        votes[i].view = v->view;
        votes[i].seq = v->seq;
        votes[i].digest = (ProtobufCBinaryData){32, (uint8_t *)v->digest};
        votes[i].timestamp_ms = v->timestamp_ms;
        votes[i].sig =
            (ProtobufCBinaryData){CRYPTO_SIG_SIZE, (uint8_t *)v->sig};
        pv[i] = &votes[i];
    }
    c.height = cert->seq;
    c.block_hash = (ProtobufCBinaryData){32, (uint8_t *)cert->digest};
    c.n_votes = cert->n_votes;
    c.votes = pv;
    return verify_cert_with_set(set, epoch_chain_id, cert->seq, cert->digest,
                                &c, why, why_len);
}

void verify_epoch_of_set(const uint8_t chain_id[32],
                         const struct gov_replica_set *set,
                         struct verify_epoch *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->chain_id, chain_id, 32);
    out->set = *set;
    gov_epoch_chain_id(chain_id, set->base_height, out->epoch_chain_id);
}

void verify_epoch_genesis(const struct genesis *g, struct verify_epoch *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->chain_id, g->chain_id, 32);
    gov_replica_set_genesis(g, &out->set);
    gov_epoch_chain_id(g->chain_id, 0, out->epoch_chain_id);
}

/* One replica of a ReplicaSet into r. */
static bool replica_decode(const Tc__ReplicaInfo *pb, size_t i,
                           struct gov_replica *r, char *why, size_t why_len)
{
    if (pb == NULL)
        return fail(why, why_len, "replica %zu of the new set is empty", i);
    if (pb->slot >= GOV_SLOTS_MAX)
        return fail(why, why_len,
                    "replica %zu of the new set has slot %u, the limit is %d",
                    i, pb->slot, GOV_SLOTS_MAX);
    if (pb->public_key.len != 32 || pb->public_key.data == NULL)
        return fail(why, why_len,
                    "replica %zu of the new set has no 32-byte key", i);
    if (pb->name == NULL || strlen(pb->name) >= GENESIS_NAME_MAX ||
        pb->peer_url == NULL || strlen(pb->peer_url) >= GENESIS_URL_MAX)
        return fail(why, why_len,
                    "replica %zu of the new set has a name or address that "
                    "is too long",
                    i);
    memset(r, 0, sizeof(*r));
    r->slot = pb->slot;
    memcpy(r->public_key, pb->public_key.data, 32);
    snprintf(r->name, sizeof(r->name), "%s", pb->name);
    snprintf(r->peer_url, sizeof(r->peer_url), "%s", pb->peer_url);
    return true;
}

bool verify_replica_set_decode(const Tc__ReplicaSet *pb, uint64_t base_height,
                               struct gov_replica_set *out, char *why,
                               size_t why_len)
{
    if (pb == NULL)
        return fail(why, why_len, "there is no replica set");
    if (pb->n_replicas < GOV_REPLICAS_MIN || pb->n_replicas > PBFT_MAX_REPLICAS)
        return fail(why, why_len,
                    "the new replica set has %zu replicas, it needs %d to %d",
                    pb->n_replicas, GOV_REPLICAS_MIN, PBFT_MAX_REPLICAS);
    memset(out, 0, sizeof(*out));
    out->base_height = base_height;
    for (size_t i = 0; i < pb->n_replicas; i++) {
        if (!replica_decode(pb->replicas[i], i, &out->r[i], why, why_len))
            return false;
        if (i > 0 && out->r[i].slot <= out->r[i - 1].slot)
            return fail(why, why_len,
                        "the new replica set is not ordered by slot (slot "
                        "%u after %u)",
                        out->r[i].slot, out->r[i - 1].slot);
        for (size_t j = 0; j < i; j++) {
            if (memcmp(out->r[j].public_key, out->r[i].public_key, 32) == 0)
                return fail(why, why_len,
                            "replicas %u and %u of the new set share a key",
                            out->r[j].slot, out->r[i].slot);
        }
        out->n = (uint32_t)(i + 1);
    }
    return true;
}

bool verify_certificate(const struct genesis *g, uint64_t height,
                        const uint8_t block_hash[32],
                        const Tc__Certificate *cert, char *why, size_t why_len)
{
    struct verify_epoch *ep = malloc(sizeof(*ep));
    bool ok;

    if (ep == NULL)
        return fail(why, why_len, "out of memory");
    verify_epoch_genesis(g, ep);
    ok = verify_cert_with_set(&ep->set, ep->epoch_chain_id, height, block_hash,
                              cert, why, why_len);
    free(ep);
    return ok;
}

/* Header fields that must have their fixed sizes. */
static bool header_well_formed(const uint8_t chain_id[32],
                               const Tc__BlockHeader *h, char *why,
                               size_t why_len)
{
    if (!is_hash(&h->chain_id))
        return fail(why, why_len, "the block header has no chain id");
    if (memcmp(h->chain_id.data, chain_id, 32) != 0)
        return fail(why, why_len,
                    "the block is for chain %s..., the genesis is chain "
                    "%s...",
                    short_hex(h->chain_id.data).s, short_hex(chain_id).s);
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

/* A header checked against an epoch: well formed for ep's chain, above
 * ep's base (a set certifies only blocks after it took over), certified by
 * ep's set. When it carries next_replicas, *next (malloc'd; the caller
 * frees it) receives the new set; else *next is NULL. */
static bool
header_in_epoch(const struct verify_epoch *ep, const Tc__BlockHeader *h,
                const uint8_t block_hash[32], const Tc__Certificate *cert,
                struct gov_replica_set **next, char *why, size_t why_len)
{
    char inner[256];

    *next = NULL;
    if (!header_well_formed(ep->chain_id, h, why, why_len))
        return false;
    if (h->height <= ep->set.base_height)
        return fail(why, why_len,
                    "block %llu is not after block %llu, where the replica "
                    "set checking it took over",
                    (unsigned long long)h->height,
                    (unsigned long long)ep->set.base_height);
    if (h->next_replicas != NULL) {
        *next = malloc(sizeof(**next));
        if (*next == NULL)
            return fail(why, why_len, "out of memory");
        if (!verify_replica_set_decode(h->next_replicas, h->height, *next,
                                       inner, sizeof(inner))) {
            free(*next);
            *next = NULL;
            return fail(why, why_len, "block %llu's new replica set: %s",
                        (unsigned long long)h->height, inner);
        }
    }
    if (!verify_cert_with_set(&ep->set, ep->epoch_chain_id, h->height,
                              block_hash, cert, why, why_len)) {
        free(*next);
        *next = NULL;
        return false;
    }
    return true;
}

/* ep takes over the set that block `height` certified. */
static void epoch_switch(struct verify_epoch *ep,
                         const struct gov_replica_set *next)
{
    LG_ASSERT(next->base_height > ep->set.base_height);
    ep->set = *next;
    gov_epoch_chain_id(ep->chain_id, next->base_height, ep->epoch_chain_id);
    ep->n_changes++;
}

bool verify_block_walk(struct verify_epoch *ep, const uint8_t *block_bytes,
                       size_t len, const Tc__Certificate *cert,
                       const uint8_t prev_hash[32], uint64_t expect_height,
                       struct verify_block_info *out, char *why, size_t why_len)
{
    Tc__Block *b = NULL;
    Tc__BlockHeader *h = NULL;
    struct gov_replica_set *next = NULL;
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
    if (!header_well_formed(ep->chain_id, h, why, why_len) ||
        !block_links(b, h, prev_hash, expect_height, why, why_len) ||
        !block_roots_match(b, h, why, why_len))
        goto out;
    crypto_sha256(b->header.data, b->header.len, hash);
    if (!header_in_epoch(ep, h, hash, cert, &next, why, why_len))
        goto out;
    if (out != NULL) {
        block_info_fill(h, hash, out);
        out->next_replicas = next != NULL;
        out->next_n = next != NULL ? next->n : 0;
    }
    if (next != NULL)
        epoch_switch(ep, next);
    ok = true;
out:
    free(next);
    tc__block_header__free_unpacked(h, NULL);
    tc__block__free_unpacked(b, NULL);
    return ok;
}

bool verify_block(const struct genesis *g, const uint8_t *block_bytes,
                  size_t len, const Tc__Certificate *cert,
                  const uint8_t prev_hash[32], uint64_t expect_height,
                  struct verify_block_info *out, char *why, size_t why_len)
{
    struct verify_epoch *ep = malloc(sizeof(*ep));
    bool ok;

    if (ep == NULL)
        return fail(why, why_len, "out of memory");
    verify_epoch_genesis(g, ep);
    ok = verify_block_walk(ep, block_bytes, len, cert, prev_hash, expect_height,
                           out, why, why_len);
    free(ep);
    return ok;
}

bool verify_epoch_follow(struct verify_epoch *ep, const uint8_t *header,
                         size_t header_len, const Tc__Certificate *cert,
                         char *why, size_t why_len)
{
    Tc__BlockHeader *h;
    struct gov_replica_set *next = NULL;
    uint8_t hash[32];
    char inner[256];
    bool ok = false;

    if (header == NULL || header_len == 0)
        return fail(why, why_len, "the epoch link has no block header");
    h = tc__block_header__unpack(NULL, header_len, header);
    if (h == NULL)
        return fail(why, why_len, "the epoch link's header does not decode");
    crypto_sha256(header, header_len, hash);
    if (h->next_replicas == NULL) {
        fail(why, why_len,
             "block %llu carries no new replica set: it is no epoch link",
             (unsigned long long)h->height);
    } else if (!header_in_epoch(ep, h, hash, cert, &next, inner,
                                sizeof(inner))) {
        fail(why, why_len,
             "the replica-set change at block %llu does not hold under %s: "
             "%s",
             (unsigned long long)h->height, set_name(&ep->set).s, inner);
    } else {
        epoch_switch(ep, next);
        ok = true;
    }
    free(next);
    tc__block_header__free_unpacked(h, NULL);
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

/* The receipt's epoch links go oldest first and all lie before the tx's
 * block at `height`: checked before any is followed, so a reordered chain
 * says so instead of failing on a signature. */
static bool receipt_links_ordered(const Tc__Receipt *r, uint64_t height,
                                  char *why, size_t why_len)
{
    uint64_t last = 0;

    for (size_t i = 0; i < r->n_epochs; i++) {
        const Tc__EpochLink *link = r->epochs[i];
        Tc__BlockHeader *lh;
        uint64_t lheight;

        if (link == NULL || link->header.len == 0)
            return fail(why, why_len, "epoch link %zu is empty", i);
        lh =
            tc__block_header__unpack(NULL, link->header.len, link->header.data);
        if (lh == NULL)
            return fail(why, why_len, "epoch link %zu does not decode", i);
        lheight = lh->height;
        tc__block_header__free_unpacked(lh, NULL);
        if (i > 0 && lheight <= last)
            return fail(why, why_len,
                        "epoch link %zu (block %llu) does not follow link %zu "
                        "(block %llu): links go oldest first",
                        i, (unsigned long long)lheight, i - 1,
                        (unsigned long long)last);
        if (lheight >= height)
            return fail(why, why_len,
                        "epoch link %zu (block %llu) is not before the tx's "
                        "block %llu",
                        i, (unsigned long long)lheight,
                        (unsigned long long)height);
        last = lheight;
    }
    return true;
}

/* Follows the receipt's epoch links from the genesis into ep. */
static bool receipt_epochs(struct verify_epoch *ep, const Tc__Receipt *r,
                           uint64_t height, char *why, size_t why_len)
{
    if (!receipt_links_ordered(r, height, why, why_len))
        return false;
    for (size_t i = 0; i < r->n_epochs; i++) {
        const Tc__EpochLink *link = r->epochs[i];

        if (!verify_epoch_follow(ep, link->header.data, link->header.len,
                                 link->cert, why, why_len))
            return false;
    }
    return true;
}

/* The receipt's header, certified by the set its epoch links reach. */
static bool receipt_header(const struct genesis *g, const Tc__Receipt *r,
                           const Tc__BlockHeader *h, uint8_t hash[32],
                           uint32_t *n_epochs, char *why, size_t why_len)
{
    struct verify_epoch *ep = malloc(sizeof(*ep));
    struct gov_replica_set *next = NULL;
    char inner[256];
    bool ok = false;

    if (ep == NULL)
        return fail(why, why_len, "out of memory");
    verify_epoch_genesis(g, ep);
    if (!header_well_formed(ep->chain_id, h, why, why_len) ||
        !receipt_epochs(ep, r, h->height, why, why_len))
        goto out;
    crypto_sha256(r->header.data, r->header.len, hash);
    if (!header_in_epoch(ep, h, hash, r->cert, &next, inner, sizeof(inner))) {
        if (ep->n_changes == 0)
            fail(why, why_len, "%s", inner);
        else
            fail(why, why_len,
                 "block %llu is not certified by the set its %u epoch links "
                 "reach (%s): %s",
                 (unsigned long long)h->height, ep->n_changes,
                 set_name(&ep->set).s, inner);
        goto out;
    }
    *n_epochs = ep->n_changes;
    ok = true;
out:
    free(next);
    free(ep);
    return ok;
}

bool verify_receipt(const struct genesis *g, const Tc__Receipt *r,
                    struct verify_receipt_info *out, char *why, size_t why_len)
{
    Tc__BlockHeader *h;
    uint8_t hash[32], tx_id[32];
    uint64_t log_index = 0;
    uint32_t n_epochs = 0;
    Tc__TxStatus status = TC__TX_STATUS__TX_UNKNOWN;
    bool ok = false;

    if (r == NULL || r->header.len == 0)
        return fail(why, why_len, "the receipt has no block header");
    h = tc__block_header__unpack(NULL, r->header.len, r->header.data);
    if (h == NULL)
        return fail(why, why_len, "the receipt's block header does not decode");
    if (!receipt_header(g, r, h, hash, &n_epochs, why, why_len))
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
        out->n_epochs = n_epochs;
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

bool verify_log_extension_in(const struct verify_epoch *ep, uint64_t size1,
                             const uint8_t root1[32], const uint8_t *header2,
                             size_t header2_len, const Tc__Certificate *cert2,
                             const Tc__ConsistencyProof *proof, char *why,
                             size_t why_len)
{
    Tc__BlockHeader *h;
    struct gov_replica_set *next = NULL;
    uint8_t hash[32];
    bool ok = false;

    if (header2 == NULL || header2_len == 0)
        return fail(why, why_len, "there is no later block header");
    h = tc__block_header__unpack(NULL, header2_len, header2);
    if (h == NULL)
        return fail(why, why_len, "the later block header does not decode");
    crypto_sha256(header2, header2_len, hash);
    if (!header_in_epoch(ep, h, hash, cert2, &next, why, why_len))
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
    free(next);
    tc__block_header__free_unpacked(h, NULL);
    return ok;
}

bool verify_log_extension(const struct genesis *g, uint64_t size1,
                          const uint8_t root1[32], const uint8_t *header2,
                          size_t header2_len, const Tc__Certificate *cert2,
                          const Tc__ConsistencyProof *proof, char *why,
                          size_t why_len)
{
    struct verify_epoch *ep = malloc(sizeof(*ep));
    bool ok;

    if (ep == NULL)
        return fail(why, why_len, "out of memory");
    verify_epoch_genesis(g, ep);
    ok = verify_log_extension_in(ep, size1, root1, header2, header2_len, cert2,
                                 proof, why, why_len);
    free(ep);
    return ok;
}
