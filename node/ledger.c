/*
 * ledger.c - blocks, the global RFC 6962 log, certificates, receipts and
 * catch-up over the store (see ledger.h for the layout and contracts).
 */
#include "ledger.h"

#include "codec.h"
#include "crypto.h"
#include "tx.pb-c.h"
#include "verify.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TIP_FIXED   (8 + 32 + 8 + 8) /* height, hash, time, log size */
#define LEAF_VALUE  (32 + 8 + 4)     /* leaf hash, height, index */
#define TXLOC_VALUE (8 + 4 + 8)      /* height, index, log index */
#define KEY_MAX     48

static const char key_chain[] = "m/chain";
static const char key_tip[] = "m/tip";
static const char key_cert_top[] = "m/cert";
static const char key_epoch[] = "e/"; /* H -> the ReplicaSet block H made */

static const char repair_hint[] =
    "run `trialchain-node --repair`, or wipe the data directory to rebuild "
    "it from peers";

/* The global log as its frontier: frontier[k] is the root of the last
 * complete subtree of 2^k leaves, valid when bit k of size is set. */
struct log_state {
    uint64_t size;
    uint8_t frontier[MERKLE_MAX_PATH][32];
};

/* A block's Merkle tree in memory: level L holds the roots of its complete
 * subtrees of 2^L leaves (level 0: the leaves), as the store holds the
 * global log's, so proofs take O(log n) of them. */
struct mem_tree {
    uint64_t n_leaves;
    uint64_t count[MERKLE_MAX_PATH]; /* nodes at each level */
    size_t offset[MERKLE_MAX_PATH];  /* of each level in nodes */
    uint8_t (*nodes)[32];            /* NULL: not built */
};

struct ledger {
    struct store *store;
    const struct genesis *g;
    struct registry *reg;
    struct ledger_tip tip;
    struct log_state log;
    char errmsg[256];
    /* The last block decoded: entries of one block are read in a row. */
    uint64_t cache_height;
    Tc__Block *cache_block;
    Tc__BlockHeader *cache_header;
    /* Its tx and result trees once a receipt needed them: every receipt
     * of the block proves against the same trees. */
    struct mem_tree cache_tx_tree;
    struct mem_tree cache_res_tree;
    /* ledger_epochs' heights as read at the tip whose block hash is named
     * here: every receipt asks, and they change only with the tip (a block
     * that changes the replica set, a rebuild, a state transfer). */
    uint64_t *epochs;
    size_t n_epochs;
    bool epochs_valid;
    uint8_t epochs_tip[32];
    bool defer_sync; /* ledger_set_deferred_sync */
};

/* A block built inside an open txn, not yet committed. */
struct built {
    struct store_txn *txn;
    uint8_t *header;
    size_t header_len;
    uint8_t hash[32];
    uint64_t time_ms;
    struct log_state log;
    bool changes_set; /* the block carries next_replicas */
};

static int seterr(struct ledger *l, int rv, const char *fmt, ...)
    LG_PRINTF(3, 4);

static int seterr(struct ledger *l, int rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(l->errmsg, sizeof(l->errmsg), fmt, ap);
    va_end(ap);
    return rv;
}

static size_t key_leaf(unsigned char *k, uint64_t index)
{
    return store_key_u64(k, "l/", index);
}

static size_t key_node(unsigned char *k, unsigned level, uint64_t index)
{
    LG_ASSERT(level >= 1 && level < MERKLE_MAX_PATH);
    k[0] = 'n';
    k[1] = '/';
    k[2] = (unsigned char)level;
    store_put_be64(k + 3, index);
    return 11;
}

static size_t key_txid(unsigned char *k, const uint8_t tx_id[32])
{
    k[0] = 't';
    k[1] = '/';
    memcpy(k + 2, tx_id, 32);
    return 34;
}

/* ---- the log ------------------------------------------------------------ */

static void log_root(const struct log_state *ls, uint8_t out[32])
{
    bool have = false;

    if (ls->size == 0) {
        crypto_sha256("", 0, out);
        return;
    }
    /* Fold from the smallest (rightmost) subtree leftwards. */
    for (unsigned k = 0; k < MERKLE_MAX_PATH; k++) {
        if (((ls->size >> k) & 1) == 0)
            continue;
        if (!have) {
            memcpy(out, ls->frontier[k], 32);
            have = true;
        } else {
            merkle_node_hash(ls->frontier[k], out, out);
        }
    }
}

/* Appends one leaf, writing it and every subtree it completes into txn. */
static void log_append(struct log_state *ls, struct store_txn *txn,
                       const uint8_t leaf[32], uint64_t height, uint32_t index)
{
    unsigned char key[KEY_MAX], val[LEAF_VALUE];
    uint8_t h[32];
    uint64_t at = ls->size;
    unsigned level = 0;

    LG_ASSERT(ls->size < UINT64_MAX / 2);
    memcpy(val, leaf, 32);
    store_put_be64(val + 32, height);
    val[40] = (unsigned char)(index >> 24);
    val[41] = (unsigned char)(index >> 16);
    val[42] = (unsigned char)(index >> 8);
    val[43] = (unsigned char)index;
    store_txn_put(txn, key, key_leaf(key, at), val, sizeof(val));
    memcpy(h, leaf, 32);
    while (((ls->size >> level) & 1) != 0) {
        merkle_node_hash(ls->frontier[level], h, h);
        level++;
        at >>= 1;
        store_txn_put(txn, key, key_node(key, level, at), h, 32);
    }
    memcpy(ls->frontier[level], h, 32);
    ls->size++;
}

/* Root of the complete subtree (level, index): from tree t, or (t NULL)
 * of the global log from the committed store. */
static int node_get(struct ledger *l, const struct mem_tree *t, unsigned level,
                    uint64_t index, uint8_t out[32])
{
    unsigned char key[KEY_MAX], *v = NULL;
    size_t kl, vl = 0;
    int rv;

    if (t != NULL) {
        /* The proof walk asks only for complete subtrees of t. */
        LG_ASSERT(level < MERKLE_MAX_PATH);
        LG_ASSERT(index < t->count[level]);
        memcpy(out, t->nodes[t->offset[level] + index], 32);
        return LG_OK;
    }
    kl = level == 0 ? key_leaf(key, index) : key_node(key, level, index);
    rv = store_get(l->store, key, kl, &v, &vl);
    if (rv == LG_ENOTFOUND)
        return seterr(l, LG_ECORRUPT,
                      "log node (level %u, index %llu) is missing; %s", level,
                      (unsigned long long)index, repair_hint);
    if (rv != LG_OK)
        return seterr(l, rv, "reading the log failed: %s", lg_strerror(rv));
    if (vl != (level == 0 ? LEAF_VALUE : 32)) {
        free(v);
        return seterr(l, LG_ECORRUPT,
                      "log node (level %u, index %llu) has a bad size; %s",
                      level, (unsigned long long)index, repair_hint);
    }
    memcpy(out, v, 32);
    free(v);
    return LG_OK;
}

static unsigned floor_log2(uint64_t x)
{
    LG_ASSERT(x > 0);
    return 63u - (unsigned)__builtin_clzll(x);
}

/* Largest power of two strictly below n (n >= 2): RFC 6962's split. */
static uint64_t split_point(uint64_t n)
{
    LG_ASSERT(n >= 2);
    return (uint64_t)1 << floor_log2(n - 1);
}

/* RFC 6962 root of leaves [a, b), a < b, as it appears in the recursion
 * (a is aligned to the largest power of two <= b - a): the complete
 * subtrees by the bits of b - a, folded from the right. */
static int range_root(struct ledger *l, const struct mem_tree *t, uint64_t a,
                      uint64_t b, uint8_t out[32])
{
    uint8_t pieces[MERKLE_MAX_PATH][32];
    unsigned n = 0;
    int rv;

    LG_ASSERT(a < b);
    while (a < b) {
        unsigned level = floor_log2(b - a);

        LG_ASSERT((a & (((uint64_t)1 << level) - 1)) == 0);
        LG_ASSERT(n < MERKLE_MAX_PATH);
        rv = node_get(l, t, level, a >> level, pieces[n]);
        if (rv != LG_OK)
            return rv;
        n++;
        a += (uint64_t)1 << level;
    }
    LG_ASSERT(n > 0 && n <= MERKLE_MAX_PATH);
    memcpy(out, pieces[n - 1], 32);
    for (unsigned i = n - 1; i-- > 0;)
        merkle_node_hash(pieces[i], out, out);
    return LG_OK;
}

static void path_reverse(uint8_t (*path)[32], size_t n)
{
    uint8_t t[32];

    for (size_t i = 0; i < n / 2; i++) {
        memcpy(t, path[i], 32);
        memcpy(path[i], path[n - 1 - i], 32);
        memcpy(path[n - 1 - i], t, 32);
    }
}

/* The inclusion path of leaf index < size in tree t (NULL: the global
 * log in the store). */
static int inclusion_path(struct ledger *l, const struct mem_tree *t,
                          uint64_t index, uint64_t size, uint8_t (*path)[32],
                          size_t *n_path)
{
    uint64_t a = 0, len = size, m = index;
    size_t n = 0;
    int rv;

    LG_ASSERT(index < size);
    /* RFC 9162 2.1.3.1 top-down; the path is read bottom-up, so reverse. */
    while (len > 1) {
        uint64_t k = split_point(len);

        LG_ASSERT(n < MERKLE_MAX_PATH);
        if (m < k) {
            rv = range_root(l, t, a + k, a + len, path[n]);
            len = k;
        } else {
            rv = range_root(l, t, a, a + k, path[n]);
            a += k;
            m -= k;
            len -= k;
        }
        if (rv != LG_OK)
            return rv;
        n++;
    }
    path_reverse(path, n);
    *n_path = n;
    return LG_OK;
}

int ledger_inclusion(struct ledger *l, uint64_t index, uint64_t size,
                     uint8_t (*path)[32], size_t *n_path)
{
    if (size > l->log.size || index >= size)
        return seterr(l, LG_EINVAL,
                      "no leaf %llu in a log of size %llu (the log holds "
                      "%llu)",
                      (unsigned long long)index, (unsigned long long)size,
                      (unsigned long long)l->log.size);
    return inclusion_path(l, NULL, index, size, path, n_path);
}

int ledger_consistency(struct ledger *l, uint64_t size1, uint64_t size2,
                       uint8_t (*path)[32], size_t *n_path)
{
    uint64_t a = 0, len = size2, m = size1;
    bool whole = true; /* SUBPROOF's b: still on the original tree's edge */
    size_t n = 0;
    int rv;

    if (size1 > size2 || size2 > l->log.size)
        return seterr(l, LG_EINVAL,
                      "no consistency proof from size %llu to %llu (the log "
                      "holds %llu)",
                      (unsigned long long)size1, (unsigned long long)size2,
                      (unsigned long long)l->log.size);
    *n_path = 0;
    if (size1 == 0 || size1 == size2)
        return LG_OK;
    /* RFC 9162 2.1.4.1 SUBPROOF, top-down, reversed at the end. */
    while (m != len) {
        uint64_t k = split_point(len);

        LG_ASSERT(n < MERKLE_MAX_PATH);
        if (m <= k) {
            rv = range_root(l, NULL, a + k, a + len, path[n]);
            len = k;
        } else {
            rv = range_root(l, NULL, a, a + k, path[n]);
            a += k;
            m -= k;
            len -= k;
            whole = false;
        }
        if (rv != LG_OK)
            return rv;
        n++;
    }
    if (!whole) {
        LG_ASSERT(n < MERKLE_MAX_PATH);
        rv = range_root(l, NULL, a, a + len, path[n]);
        if (rv != LG_OK)
            return rv;
        n++;
    }
    path_reverse(path, n);
    *n_path = n;
    return LG_OK;
}

int ledger_log_root(struct ledger *l, uint64_t size, uint8_t root[32])
{
    if (size > l->log.size)
        return seterr(l, LG_EINVAL, "the log holds %llu txs, not %llu",
                      (unsigned long long)l->log.size,
                      (unsigned long long)size);
    if (size == l->log.size) {
        memcpy(root, l->tip.log_root, 32);
        return LG_OK;
    }
    if (size == 0) {
        crypto_sha256("", 0, root);
        return LG_OK;
    }
    return range_root(l, NULL, 0, size, root);
}

/* ---- tip record --------------------------------------------------------- */

static size_t tip_encode(const struct ledger_tip *t, const struct log_state *ls,
                         unsigned char *out)
{
    size_t at = TIP_FIXED;

    store_put_be64(out, t->height);
    memcpy(out + 8, t->block_hash, 32);
    store_put_be64(out + 40, t->time_ms);
    store_put_be64(out + 48, ls->size);
    for (unsigned k = MERKLE_MAX_PATH; k-- > 0;) {
        if (((ls->size >> k) & 1) != 0) {
            memcpy(out + at, ls->frontier[k], 32);
            at += 32;
        }
    }
    return at;
}

static bool tip_decode(const unsigned char *v, size_t vl, struct ledger_tip *t,
                       struct log_state *ls)
{
    size_t at = TIP_FIXED;

    if (vl < TIP_FIXED)
        return false;
    memset(ls, 0, sizeof(*ls));
    t->height = store_get_be64(v);
    memcpy(t->block_hash, v + 8, 32);
    t->time_ms = store_get_be64(v + 40);
    ls->size = store_get_be64(v + 48);
    if (vl != TIP_FIXED + 32 * (size_t)__builtin_popcountll(ls->size))
        return false;
    for (unsigned k = MERKLE_MAX_PATH; k-- > 0;) {
        if (((ls->size >> k) & 1) != 0) {
            memcpy(ls->frontier[k], v + at, 32);
            at += 32;
        }
    }
    t->log_size = ls->size;
    log_root(ls, t->log_root);
    return true;
}

/* ---- blocks ------------------------------------------------------------- */

static void cache_drop(struct ledger *l)
{
    tc__block_header__free_unpacked(l->cache_header, NULL);
    tc__block__free_unpacked(l->cache_block, NULL);
    free(l->cache_tx_tree.nodes);
    free(l->cache_res_tree.nodes);
    memset(&l->cache_tx_tree, 0, sizeof(l->cache_tx_tree));
    memset(&l->cache_res_tree, 0, sizeof(l->cache_res_tree));
    l->cache_header = NULL;
    l->cache_block = NULL;
    l->cache_height = 0;
}

/* Block `height`, decoded; borrowed until the next call on l. */
static int block_load(struct ledger *l, uint64_t height, const Tc__Block **b,
                      const Tc__BlockHeader **h)
{
    unsigned char key[KEY_MAX], *v = NULL;
    size_t vl = 0;
    int rv;

    if (l->cache_block == NULL || l->cache_height != height) {
        cache_drop(l);
        rv =
            store_get(l->store, key, store_key_u64(key, "b/", height), &v, &vl);
        if (rv == LG_ENOTFOUND)
            return seterr(l, rv, "there is no block %llu",
                          (unsigned long long)height);
        if (rv != LG_OK)
            return seterr(l, rv, "reading block %llu failed",
                          (unsigned long long)height);
        l->cache_block = tc__block__unpack(NULL, vl, v);
        free(v);
        if (l->cache_block != NULL)
            l->cache_header = tc__block_header__unpack(
                NULL, l->cache_block->header.len, l->cache_block->header.data);
        if (l->cache_header == NULL || l->cache_header->height != height) {
            cache_drop(l);
            return seterr(l, LG_ECORRUPT, "stored block %llu is corrupt; %s",
                          (unsigned long long)height, repair_hint);
        }
        l->cache_height = height;
    }
    *b = l->cache_block;
    *h = l->cache_header;
    return LG_OK;
}

int ledger_get_block(struct ledger *l, uint64_t height, uint8_t **bytes,
                     size_t *len)
{
    unsigned char key[KEY_MAX];
    int rv;

    /* Blocks above the tip may linger after a rebuild: not ours yet. */
    if (height == 0 || height > l->tip.height)
        return seterr(l, LG_ENOTFOUND, "there is no block %llu",
                      (unsigned long long)height);
    rv = store_get(l->store, key, store_key_u64(key, "b/", height), bytes, len);
    if (rv == LG_ENOTFOUND)
        return seterr(l, rv, "there is no block %llu",
                      (unsigned long long)height);
    if (rv != LG_OK)
        return seterr(l, rv, "reading block %llu failed",
                      (unsigned long long)height);
    return LG_OK;
}

int ledger_block_hash(struct ledger *l, uint64_t height, uint8_t hash[32])
{
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    int rv;

    if (height == 0) {
        memcpy(hash, l->g->chain_id, 32);
        return LG_OK;
    }
    if (height > l->tip.height)
        return seterr(l, LG_ENOTFOUND, "there is no block %llu",
                      (unsigned long long)height);
    if (height == l->tip.height) {
        memcpy(hash, l->tip.block_hash, 32);
        return LG_OK;
    }
    rv = block_load(l, height, &b, &h);
    if (rv != LG_OK)
        return rv;
    crypto_sha256(b->header.data, b->header.len, hash);
    return LG_OK;
}

/* ---- open --------------------------------------------------------------- */

static int write_genesis_tip(struct ledger *l);

static int open_fresh(struct ledger *l)
{
    struct store_iter *it;
    const unsigned char *k, *v;
    size_t kl, vl;
    bool has_blocks;

    /* A chain id is written before any block, so blocks without one mean
     * the metadata was lost. */
    it = store_iter_new(l->store, "b/", 2, NULL, 0);
    if (it == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    has_blocks = store_iter_next(it, &k, &kl, &v, &vl);
    store_iter_free(it);
    if (has_blocks)
        return seterr(l, LG_ECORRUPT,
                      "the data directory holds blocks but no chain id; %s",
                      repair_hint);
    return write_genesis_tip(l);
}

/* Tip 0 (hash = chain id, empty log) and the chain id, synced. */
static int write_genesis_tip(struct ledger *l)
{
    struct store_batch *b;
    unsigned char tip[TIP_FIXED + 32 * MERKLE_MAX_PATH];
    size_t tl;
    int rv;

    memset(&l->tip, 0, sizeof(l->tip));
    memset(&l->log, 0, sizeof(l->log));
    memcpy(l->tip.block_hash, l->g->chain_id, 32);
    log_root(&l->log, l->tip.log_root);
    tl = tip_encode(&l->tip, &l->log, tip);
    b = store_batch_new();
    if (b == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    store_batch_put(b, key_chain, strlen(key_chain), l->g->chain_id, 32);
    store_batch_put(b, key_tip, strlen(key_tip), tip, tl);
    rv = store_write(l->store, b, true);
    store_batch_free(b);
    if (rv != LG_OK)
        return seterr(l, rv, "writing the chain id failed: %s",
                      lg_strerror(rv));
    return LG_OK;
}

/* The tip block exists, hashes to the tip hash and carries the log the
 * frontier gives: the paired check of what ledger_apply wrote. */
static int open_check_tip(struct ledger *l)
{
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    uint8_t hash[32];
    int rv;

    if (l->tip.height == 0) {
        if (memcmp(l->tip.block_hash, l->g->chain_id, 32) != 0 ||
            l->log.size != 0)
            return seterr(l, LG_ECORRUPT,
                          "the tip record at height 0 is inconsistent; %s",
                          repair_hint);
        return LG_OK;
    }
    rv = block_load(l, l->tip.height, &b, &h);
    if (rv == LG_ENOTFOUND)
        return seterr(l, LG_ECORRUPT, "the tip block %llu is missing; %s",
                      (unsigned long long)l->tip.height, repair_hint);
    if (rv != LG_OK)
        return rv;
    crypto_sha256(b->header.data, b->header.len, hash);
    if (memcmp(hash, l->tip.block_hash, 32) != 0 ||
        h->log_size != l->log.size || h->log_root.len != 32 ||
        memcmp(h->log_root.data, l->tip.log_root, 32) != 0)
        return seterr(l, LG_ECORRUPT,
                      "the tip record does not match block %llu; %s",
                      (unsigned long long)l->tip.height, repair_hint);
    return LG_OK;
}

/* The stored chain id is the genesis's. */
static int open_existing_chain(struct ledger *l, const unsigned char *chain,
                               size_t chain_len)
{
    char have[65], want[65];

    if (chain_len != 32)
        return seterr(l, LG_ECORRUPT, "the stored chain id is malformed; %s",
                      repair_hint);
    if (memcmp(chain, l->g->chain_id, 32) != 0) {
        lg_hex(chain, 32, have);
        lg_hex(l->g->chain_id, 32, want);
        return seterr(l, LG_ECHAIN,
                      "the data directory belongs to chain %s, but the "
                      "genesis is chain %s",
                      have, want);
    }
    return LG_OK;
}

static int open_existing(struct ledger *l, const unsigned char *chain,
                         size_t chain_len)
{
    unsigned char *v = NULL;
    size_t vl = 0;
    int rv;

    rv = open_existing_chain(l, chain, chain_len);
    if (rv != LG_OK)
        return rv;
    rv = store_get(l->store, key_tip, strlen(key_tip), &v, &vl);
    if (rv == LG_ENOTFOUND)
        return seterr(l, LG_ECORRUPT,
                      "the data directory has a chain id but no tip "
                      "record; %s",
                      repair_hint);
    if (rv != LG_OK)
        return seterr(l, rv, "reading the tip failed: %s", lg_strerror(rv));
    if (!tip_decode(v, vl, &l->tip, &l->log)) {
        free(v);
        return seterr(l, LG_ECORRUPT, "the tip record is malformed; %s",
                      repair_hint);
    }
    free(v);
    v = NULL;
    rv = store_get(l->store, key_cert_top, strlen(key_cert_top), &v, &vl);
    if (rv == LG_OK && vl == 8)
        l->tip.last_certified = store_get_be64(v);
    free(v);
    if (rv != LG_OK && rv != LG_ENOTFOUND)
        return seterr(l, rv, "reading the certified height failed");
    return open_check_tip(l);
}

int ledger_open(struct store *s, const struct genesis *g, struct registry *reg,
                struct ledger **out, char *err, size_t err_len)
{
    struct ledger *l;
    unsigned char *v = NULL;
    size_t vl = 0;
    int rv;

    LG_ASSERT(s != NULL && g != NULL && out != NULL);
    *out = NULL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return LG_ENOMEM;
    l->store = s;
    l->g = g;
    l->reg = reg;
    rv = store_get(s, key_chain, strlen(key_chain), &v, &vl);
    if (rv == LG_ENOTFOUND)
        rv = open_fresh(l);
    else if (rv == LG_OK)
        rv = open_existing(l, v, vl);
    else
        seterr(l, rv, "reading the chain id failed: %s", lg_strerror(rv));
    free(v);
    if (rv != LG_OK) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "%s", l->errmsg);
        ledger_close(l);
        return rv;
    }
    /* Derived, not stored with the tip: the last replica-set change. */
    struct gov_replica_set *set = malloc(sizeof(*set));
    rv = set == NULL ? LG_ENOMEM
                     : ledger_replica_set_at(l, l->tip.height + 1, set);
    if (rv == LG_OK)
        l->tip.replica_set_height = set->base_height;
    free(set);
    if (rv != LG_OK) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "reading the replica-set index failed: %s",
                     lg_strerror(rv));
        ledger_close(l);
        return rv;
    }
    l->errmsg[0] = '\0';
    *out = l;
    return LG_OK;
}

void ledger_close(struct ledger *l)
{
    if (l == NULL)
        return;
    cache_drop(l);
    free(l->epochs);
    free(l);
}

const char *ledger_errmsg(const struct ledger *l)
{
    return l->errmsg;
}

struct store *ledger_store(struct ledger *l)
{
    return l->store;
}

void ledger_tip(const struct ledger *l, struct ledger_tip *out)
{
    *out = l->tip;
}

/* ---- replica sets -------------------------------------------------------- */

/* A ReplicaSet message borrowing a gov_replica_set's strings and keys. */
struct replica_set_pb {
    Tc__ReplicaSet set;
    Tc__ReplicaInfo info[PBFT_MAX_REPLICAS];
    Tc__ReplicaInfo *ptrs[PBFT_MAX_REPLICAS];
};

static void replica_set_pb_fill(struct replica_set_pb *pb,
                                const struct gov_replica_set *s)
{
    LG_ASSERT(s->n <= PBFT_MAX_REPLICAS);
    tc__replica_set__init(&pb->set);
    for (uint32_t i = 0; i < s->n; i++) {
        Tc__ReplicaInfo *r = &pb->info[i];

        tc__replica_info__init(r);
        r->slot = s->r[i].slot;
        r->name = (char *)s->r[i].name;
        r->public_key =
            (ProtobufCBinaryData){32, (uint8_t *)s->r[i].public_key};
        r->peer_url = (char *)s->r[i].peer_url;
        pb->ptrs[i] = r;
    }
    pb->set.n_replicas = s->n;
    pb->set.replicas = pb->ptrs;
}

/* The epoch index entry of the last change block below `height`: *found
 * false when there is none (the genesis set certifies `height`). */
static int epoch_find(struct ledger *l, uint64_t height, bool *found,
                      uint64_t *at, unsigned char **bytes, size_t *len)
{
    struct store_iter *it;
    const unsigned char *k, *v;
    size_t kl, vl;

    *found = false;
    it = store_iter_new(l->store, key_epoch, strlen(key_epoch), NULL, 0);
    if (it == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    /* Changes are rare (governance): a scan of the index is short. */
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        uint64_t h;

        if (kl != 10)
            continue;
        h = store_get_be64(k + 2);
        if (h >= height)
            break;
        free(*bytes);
        *bytes = malloc(vl ? vl : 1);
        if (*bytes == NULL) {
            store_iter_free(it);
            return seterr(l, LG_ENOMEM, "out of memory");
        }
        memcpy(*bytes, v, vl);
        *len = vl;
        *at = h;
        *found = true;
    }
    store_iter_free(it);
    return LG_OK;
}

int ledger_replica_set_at(struct ledger *l, uint64_t height,
                          struct gov_replica_set *out)
{
    unsigned char *bytes = NULL;
    Tc__ReplicaSet *pb;
    uint64_t at = 0;
    size_t len = 0;
    bool found;
    char why[200];
    int rv;

    rv = epoch_find(l, height, &found, &at, &bytes, &len);
    if (rv != LG_OK || !found) {
        free(bytes);
        if (rv == LG_OK)
            gov_replica_set_genesis(l->g, out);
        return rv;
    }
    pb = tc__replica_set__unpack(NULL, len, bytes);
    free(bytes);
    rv = LG_OK;
    if (pb == NULL || !verify_replica_set_decode(pb, at, out, why, sizeof(why)))
        rv = seterr(l, LG_ECORRUPT,
                    "the stored replica set of block %llu is corrupt; %s",
                    (unsigned long long)at, repair_hint);
    tc__replica_set__free_unpacked(pb, NULL);
    return rv;
}

/* Reads the epoch heights at or below the tip into l->epochs. */
static int epochs_read(struct ledger *l)
{
    struct store_iter *it;
    const unsigned char *k, *v;
    size_t kl, vl, n = 0, cap = 0;
    uint64_t *hs = NULL;

    it = store_iter_new(l->store, key_epoch, strlen(key_epoch), NULL, 0);
    if (it == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        uint64_t h;

        if (kl != 10)
            continue;
        h = store_get_be64(k + 2);
        /* Entries above the tip may linger after a rebuild: not ours. */
        if (h > l->tip.height)
            break;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            uint64_t *grown = realloc(hs, ncap * sizeof(*hs));

            if (grown == NULL) {
                free(hs);
                store_iter_free(it);
                return seterr(l, LG_ENOMEM, "out of memory");
            }
            hs = grown;
            cap = ncap;
        }
        hs[n++] = h;
    }
    store_iter_free(it);
    free(l->epochs);
    l->epochs = hs;
    l->n_epochs = n;
    l->epochs_valid = true;
    memcpy(l->epochs_tip, l->tip.block_hash, 32);
    return LG_OK;
}

int ledger_epochs(struct ledger *l, uint64_t *heights, size_t cap, size_t *n)
{
    *n = 0;
    if (!l->epochs_valid || memcmp(l->epochs_tip, l->tip.block_hash, 32) != 0) {
        int rv = epochs_read(l);

        if (rv != LG_OK)
            return rv;
    }
    for (size_t i = 0; i < l->n_epochs && i < cap; i++)
        heights[i] = l->epochs[i];
    *n = l->n_epochs;
    return LG_OK;
}

/* ---- building a block --------------------------------------------------- */

static Tc__TxStatus status_pb(enum tx_status s)
{
    switch (s) {
    case TXS_ACCEPTED:
        return TC__TX_STATUS__TX_ACCEPTED;
    case TXS_REJECTED:
        return TC__TX_STATUS__TX_REJECTED;
    case TXS_UNKNOWN:
        break;
    }
    return TC__TX_STATUS__TX_UNKNOWN;
}

/* TxResult bytes (malloc'd into out) for one executed tx. */
static int result_encode(const uint8_t tx_id[32], const struct tx_result *res,
                         ProtobufCBinaryData *out)
{
    Tc__TxResult r = TC__TX_RESULT__INIT;
    char code[sizeof(res->code)], message[sizeof(res->message)];

    /* The registry's strings are bounded arrays: never read past them. */
    snprintf(code, sizeof(code), "%.*s", (int)sizeof(res->code) - 1, res->code);
    snprintf(message, sizeof(message), "%.*s", (int)sizeof(res->message) - 1,
             res->message);
    r.tx_id.len = 32;
    r.tx_id.data = (uint8_t *)tx_id;
    r.status = status_pb(res->status);
    r.code = code;
    r.message = message;
    out->len = tc__tx_result__get_packed_size(&r);
    out->data = malloc(out->len ? out->len : 1);
    if (out->data == NULL)
        return LG_ENOMEM;
    tc__tx_result__pack(&r, out->data);
    return LG_OK;
}

/* Indexes tx_id unless an earlier tx (committed, or earlier in this block)
 * already has it: the first occurrence wins. known_new: the caller already
 * found it in neither (ledger_apply's repeat check), so skip the lookup. */
static int index_tx(struct store_txn *txn, const uint8_t tx_id[32],
                    bool known_new, uint64_t height, uint32_t index,
                    uint64_t log_index)
{
    unsigned char key[KEY_MAX], val[TXLOC_VALUE], *v = NULL;
    size_t kl = key_txid(key, tx_id), vl = 0;
    int rv;

    if (!known_new) {
        rv = store_txn_get(txn, key, kl, &v, &vl);
        free(v);
        if (rv == LG_OK)
            return LG_OK;
        if (rv != LG_ENOTFOUND)
            return rv;
    }
    store_put_be64(val, height);
    val[8] = (unsigned char)(index >> 24);
    val[9] = (unsigned char)(index >> 16);
    val[10] = (unsigned char)(index >> 8);
    val[11] = (unsigned char)index;
    store_put_be64(val + 12, log_index);
    store_txn_put(txn, key, kl, val, sizeof(val));
    return LG_OK;
}

/* Per-block scratch: leaf hashes of txs and results, result bytes. */
struct scratch {
    uint32_t n;
    uint8_t (*tx_leaves)[32];
    uint8_t (*res_leaves)[32];
    ProtobufCBinaryData *results;
};

static int scratch_init(struct scratch *s, uint32_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    if (n == 0)
        return LG_OK;
    s->tx_leaves = malloc(n * sizeof(*s->tx_leaves));
    s->res_leaves = malloc(n * sizeof(*s->res_leaves));
    s->results = calloc(n, sizeof(*s->results));
    if (s->tx_leaves == NULL || s->res_leaves == NULL || s->results == NULL)
        return LG_ENOMEM;
    return LG_OK;
}

static void scratch_free(struct scratch *s)
{
    for (uint32_t i = 0; s->results != NULL && i < s->n; i++)
        free(s->results[i].data);
    free(s->results);
    free(s->tx_leaves);
    free(s->res_leaves);
}

/* Executes the txs into bt->txn and the log, filling the scratch. ids:
 * see ledger_build. */
static int build_execute(struct ledger *l, uint64_t height, uint64_t time_ms,
                         const ProtobufCBinaryData *txs,
                         const uint8_t (*ids)[32], struct scratch *sc,
                         struct built *bt)
{
    for (uint32_t i = 0; i < sc->n; i++) {
        struct tx_place at;
        struct tx_result res;
        int rv;

        memset(&at, 0, sizeof(at));
        memset(&res, 0, sizeof(res));
        at.height = height;
        at.block_time_ms = time_ms;
        at.log_index = bt->log.size;
        if (ids != NULL)
            memcpy(at.tx_id, ids[i], 32);
        else
            crypto_sha256(txs[i].data, txs[i].len, at.tx_id);
        merkle_leaf_hash(txs[i].data, txs[i].len, sc->tx_leaves[i]);
        rv = registry_execute(l->reg, bt->txn, &at, txs[i].data, txs[i].len,
                              &res);
        if (rv != LG_OK)
            return seterr(l, rv, "executing tx %u of block %llu failed: %s", i,
                          (unsigned long long)height, lg_strerror(rv));
        rv = result_encode(at.tx_id, &res, &sc->results[i]);
        if (rv == LG_OK)
            rv = index_tx(bt->txn, at.tx_id, ids != NULL, height, i,
                          bt->log.size);
        if (rv != LG_OK)
            return seterr(l, rv, "indexing tx %u of block %llu failed: %s", i,
                          (unsigned long long)height, lg_strerror(rv));
        merkle_leaf_hash(sc->results[i].data, sc->results[i].len,
                         sc->res_leaves[i]);
        log_append(&bt->log, bt->txn, sc->tx_leaves[i], height, i);
    }
    return LG_OK;
}

/* The replica set this block's governance put in force, or *next = NULL
 * when the block changed nothing. *next is malloc'd (the caller frees it)
 * and checked as a verifier will check it: a set the registry got wrong
 * must not be certified into the chain. */
static int build_next_set(struct ledger *l, uint64_t height, struct built *bt,
                          struct gov_replica_set **next)
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    struct gov_replica_set *check = malloc(sizeof(*check));
    struct replica_set_pb *pb = malloc(sizeof(*pb));
    char why[200];
    int rv = LG_OK;

    *next = NULL;
    if (set == NULL || check == NULL || pb == NULL)
        rv = seterr(l, LG_ENOMEM, "out of memory");
    if (rv == LG_OK) {
        rv = registry_replica_set_txn(l->reg, bt->txn, set);
        if (rv != LG_OK)
            seterr(l, rv, "reading the replica set after block %llu failed: %s",
                   (unsigned long long)height, lg_strerror(rv));
    }
    if (rv == LG_OK && set->base_height == height) {
        replica_set_pb_fill(pb, set);
        if (verify_replica_set_decode(&pb->set, height, check, why,
                                      sizeof(why)))
            *next = set;
        else
            rv = seterr(l, LG_ECORRUPT,
                        "block %llu's new replica set is not valid: %s",
                        (unsigned long long)height, why);
    }
    if (*next == NULL)
        free(set);
    free(check);
    free(pb);
    return rv;
}

/* Puts the epoch index entry of a change block: its new set's bytes. */
static int epoch_put(struct ledger *l, struct store_txn *txn, uint64_t height,
                     const Tc__ReplicaSet *set)
{
    unsigned char key[KEY_MAX];
    size_t len = tc__replica_set__get_packed_size(set);
    uint8_t *bytes = malloc(len ? len : 1);

    if (bytes == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    tc__replica_set__pack(set, bytes);
    store_txn_put(txn, key, store_key_u64(key, key_epoch, height), bytes, len);
    free(bytes);
    return LG_OK;
}

/* Packs header and block, and puts the block, the new tip and (for a
 * change block) the epoch index entry into txn. */
static int build_seal(struct ledger *l, uint64_t height, uint64_t view,
                      const ProtobufCBinaryData *txs, struct scratch *sc,
                      const struct gov_replica_set *next, struct built *bt)
{
    Tc__BlockHeader h = TC__BLOCK_HEADER__INIT;
    struct replica_set_pb *pb = NULL;
    Tc__Block b = TC__BLOCK__INIT;
    uint8_t tx_root[32], res_root[32], root[32], *block;
    unsigned char key[KEY_MAX], tip[TIP_FIXED + 32 * MERKLE_MAX_PATH];
    struct ledger_tip t;
    size_t block_len;

    merkle_root((const uint8_t(*)[32])sc->tx_leaves, sc->n, tx_root);
    merkle_root((const uint8_t(*)[32])sc->res_leaves, sc->n, res_root);
    log_root(&bt->log, root);
    h.chain_id = (ProtobufCBinaryData){32, (uint8_t *)l->g->chain_id};
    h.height = height;
    h.view = view;
    h.timestamp_ms = bt->time_ms;
    h.prev_hash = (ProtobufCBinaryData){32, l->tip.block_hash};
    h.n_txs = sc->n;
    h.tx_root = (ProtobufCBinaryData){32, tx_root};
    h.results_root = (ProtobufCBinaryData){32, res_root};
    h.log_size = bt->log.size;
    h.log_root = (ProtobufCBinaryData){32, root};
    if (next != NULL) {
        pb = malloc(sizeof(*pb));
        if (pb == NULL)
            return seterr(l, LG_ENOMEM, "out of memory");
        replica_set_pb_fill(pb, next);
        h.next_replicas = &pb->set;
        if (epoch_put(l, bt->txn, height, &pb->set) != LG_OK) {
            free(pb);
            return LG_ENOMEM;
        }
    }
    bt->header_len = tc__block_header__get_packed_size(&h);
    bt->header = malloc(bt->header_len);
    if (bt->header == NULL) {
        free(pb);
        return seterr(l, LG_ENOMEM, "out of memory");
    }
    tc__block_header__pack(&h, bt->header);
    free(pb);
    crypto_sha256(bt->header, bt->header_len, bt->hash);

    b.header = (ProtobufCBinaryData){bt->header_len, bt->header};
    b.n_txs = sc->n;
    b.txs = (ProtobufCBinaryData *)txs;
    b.n_results = sc->n;
    b.results = sc->results;
    block_len = tc__block__get_packed_size(&b);
    block = malloc(block_len);
    if (block == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    tc__block__pack(&b, block);
    store_txn_put(bt->txn, key, store_key_u64(key, "b/", height), block,
                  block_len);
    free(block);

    memset(&t, 0, sizeof(t));
    t.height = height;
    memcpy(t.block_hash, bt->hash, 32);
    t.time_ms = bt->time_ms;
    store_txn_put(bt->txn, key_tip, strlen(key_tip), tip,
                  tip_encode(&t, &bt->log, tip));
    return LG_OK;
}

static void built_free(struct built *bt)
{
    store_txn_abort(bt->txn);
    free(bt->header);
    bt->txn = NULL;
    bt->header = NULL;
}

/* Executes txs as block `height` on top of the tip, inside a new txn left
 * open in bt (commit or built_free it). ids: NULL, or the txs' ids when the
 * caller hashed them and found each in neither the committed tx index nor
 * earlier in txs (ledger_apply), which spares hashing and looking them up
 * again. */
static int ledger_build(struct ledger *l, uint64_t height, uint64_t view,
                        uint64_t time_ms, uint32_t n,
                        const ProtobufCBinaryData *txs,
                        const uint8_t (*ids)[32], struct built *bt)
{
    struct scratch sc;
    struct gov_replica_set *next = NULL;
    int rv;

    LG_ASSERT(height == l->tip.height + 1);
    memset(bt, 0, sizeof(*bt));
    bt->log = l->log;
    bt->time_ms = time_ms;
    bt->txn = store_txn_new(l->store);
    if (bt->txn == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    rv = scratch_init(&sc, n);
    if (rv != LG_OK)
        seterr(l, rv, "out of memory");
    if (rv == LG_OK)
        rv = build_execute(l, height, time_ms, txs, ids, &sc, bt);
    if (rv == LG_OK)
        rv = build_next_set(l, height, bt, &next);
    bt->changes_set = next != NULL;
    if (rv == LG_OK)
        rv = build_seal(l, height, view, txs, &sc, next, bt);
    free(next);
    scratch_free(&sc);
    if (rv != LG_OK)
        built_free(bt);
    return rv;
}

/* Commits a built block and moves the tip. */
static int ledger_commit(struct ledger *l, struct built *bt, uint64_t height,
                         bool sync)
{
    int rv;

    rv = store_txn_commit(bt->txn, sync);
    bt->txn = NULL; /* freed by commit either way */
    if (rv != LG_OK) {
        built_free(bt);
        return seterr(l, rv, "writing block %llu failed: %s",
                      (unsigned long long)height, lg_strerror(rv));
    }
    l->log = bt->log;
    l->tip.height = height;
    memcpy(l->tip.block_hash, bt->hash, 32);
    l->tip.time_ms = bt->time_ms;
    l->tip.log_size = l->log.size;
    log_root(&l->log, l->tip.log_root);
    if (bt->changes_set)
        l->tip.replica_set_height = height;
    built_free(bt);
    return LG_OK;
}

/* Whether a transaction is already in the ledger, or earlier in this block.
 * The core orders each (client, request) once, but under rare view-change
 * interleavings a committed request can come back at a later seq (Castro and
 * Liskov drop such repeats at execution with the replicated client table).
 * Here the tx index is that table: every replica holds the same index, so
 * dropping repeats is deterministic and each transaction sits in the ledger
 * exactly once. id gets the tx id (not set for a repeat within the block). */
static int tx_already_in(struct ledger *l, const uint8_t *data, size_t len,
                         const ProtobufCBinaryData *taken, uint32_t n_taken,
                         uint8_t id[32], bool *dup)
{
    struct ledger_tx_loc loc;
    int rv;

    *dup = false;
    for (uint32_t i = 0; i < n_taken; i++) {
        if (taken[i].len == len && memcmp(taken[i].data, data, len) == 0) {
            *dup = true;
            return LG_OK;
        }
    }
    crypto_sha256(data, len, id);
    rv = ledger_find_tx(l, id, &loc);
    if (rv == LG_OK)
        *dup = true;
    return rv == LG_ENOTFOUND ? LG_OK : rv;
}

int ledger_apply(struct ledger *l, const struct pbft_execute *ex,
                 uint8_t block_hash[32])
{
    ProtobufCBinaryData *txs = NULL;
    uint8_t(*ids)[32] = NULL;
    struct built bt;
    int rv;

    if (l->reg == NULL)
        return seterr(l, LG_EINVAL, "the ledger was opened read-only");
    if (ex->seq != l->tip.height + 1)
        return seterr(l, LG_EINVAL, "block %llu does not follow the tip %llu",
                      (unsigned long long)ex->seq,
                      (unsigned long long)l->tip.height);
    if (ex->n_requests > 0) {
        txs = calloc(ex->n_requests, sizeof(*txs));
        ids = malloc(ex->n_requests * sizeof(*ids));
        if (txs == NULL || ids == NULL) {
            free(txs);
            free(ids);
            return seterr(l, LG_ENOMEM, "out of memory");
        }
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < ex->n_requests; i++) {
        bool dup = false;
        rv = tx_already_in(l, ex->requests[i].data, ex->requests[i].len, txs, n,
                           ids[n], &dup);
        if (rv != LG_OK) {
            free(txs);
            free(ids);
            return rv;
        }
        if (dup)
            continue;
        txs[n].data = (uint8_t *)ex->requests[i].data;
        txs[n].len = ex->requests[i].len;
        n++;
    }
    rv = ledger_build(l, ex->seq, ex->view, ex->timestamp_ms, n, txs,
                      (const uint8_t(*)[32])ids, &bt);
    free(txs);
    free(ids);
    if (rv != LG_OK)
        return rv;
    memcpy(block_hash, bt.hash, 32);
    return ledger_commit(l, &bt, ex->seq, !l->defer_sync);
}

void ledger_set_deferred_sync(struct ledger *l, bool on)
{
    l->defer_sync = on;
}

/* ---- certificates ------------------------------------------------------- */

/* Puts the certificate and, when higher, the certified height. */
static void cert_put(struct ledger *l, struct store_batch *b,
                     struct store_txn *txn, uint64_t height,
                     const uint8_t *bytes, size_t len)
{
    unsigned char key[KEY_MAX], top[8];
    size_t kl = store_key_u64(key, "c/", height);

    store_put_be64(top, height);
    if (b != NULL)
        store_batch_put(b, key, kl, bytes, len);
    else
        store_txn_put(txn, key, kl, bytes, len);
    if (height <= l->tip.last_certified)
        return;
    if (b != NULL)
        store_batch_put(b, key_cert_top, strlen(key_cert_top), top, 8);
    else
        store_txn_put(txn, key_cert_top, strlen(key_cert_top), top, 8);
}

int ledger_put_cert(struct ledger *l, const struct pbft_checkpoint_cert *cert)
{
    struct store_batch *b;
    uint8_t hash[32], *bytes = NULL;
    size_t len = 0;
    int rv;

    if (cert->seq == 0 || cert->n_votes == 0)
        return seterr(l, LG_EINVAL,
                      "a block certificate needs a height and "
                      "votes");
    if (cert->seq <= l->tip.height) {
        rv = ledger_block_hash(l, cert->seq, hash);
        if (rv != LG_OK)
            return rv;
        if (memcmp(hash, cert->digest, 32) != 0)
            return seterr(l, LG_ECORRUPT,
                          "block %llu here differs from the certified block: "
                          "this replica diverged; %s",
                          (unsigned long long)cert->seq, repair_hint);
    }
    rv = codec_encode_cert(cert, &bytes, &len);
    if (rv != LG_OK)
        return seterr(l, rv, "encoding the certificate of block %llu failed",
                      (unsigned long long)cert->seq);
    b = store_batch_new();
    if (b == NULL) {
        free(bytes);
        return seterr(l, LG_ENOMEM, "out of memory");
    }
    cert_put(l, b, NULL, cert->seq, bytes, len);
    rv = store_write(l->store, b, !l->defer_sync);
    store_batch_free(b);
    free(bytes);
    if (rv != LG_OK)
        return seterr(l, rv, "writing the certificate of block %llu failed",
                      (unsigned long long)cert->seq);
    if (cert->seq > l->tip.last_certified)
        l->tip.last_certified = cert->seq;
    return LG_OK;
}

static int cert_bytes(struct ledger *l, uint64_t height, unsigned char **v,
                      size_t *vl)
{
    unsigned char key[KEY_MAX];
    int rv;

    rv = store_get(l->store, key, store_key_u64(key, "c/", height), v, vl);
    if (rv == LG_ENOTFOUND)
        return seterr(l, rv, "block %llu has no certificate yet",
                      (unsigned long long)height);
    if (rv != LG_OK)
        return seterr(l, rv, "reading the certificate of block %llu failed",
                      (unsigned long long)height);
    return LG_OK;
}

int ledger_get_cert(struct ledger *l, uint64_t height, Tc__Certificate **out)
{
    unsigned char *v = NULL;
    size_t vl = 0;
    int rv;

    rv = cert_bytes(l, height, &v, &vl);
    if (rv != LG_OK)
        return rv;
    *out = tc__certificate__unpack(NULL, vl, v);
    free(v);
    if (*out == NULL)
        return seterr(l, LG_ECORRUPT,
                      "the stored certificate of block %llu is corrupt; %s",
                      (unsigned long long)height, repair_hint);
    return LG_OK;
}

/* ---- lookups, receipts, entries ----------------------------------------- */

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

int ledger_find_tx(struct ledger *l, const uint8_t tx_id[32],
                   struct ledger_tx_loc *out)
{
    unsigned char key[KEY_MAX], *v = NULL;
    size_t vl = 0;
    int rv;

    rv = store_get(l->store, key, key_txid(key, tx_id), &v, &vl);
    if (rv == LG_ENOTFOUND)
        return seterr(l, rv, "no such transaction in the ledger");
    if (rv != LG_OK)
        return seterr(l, rv, "reading the tx index failed");
    if (vl != TXLOC_VALUE) {
        free(v);
        return seterr(l, LG_ECORRUPT, "a tx index entry is corrupt; %s",
                      repair_hint);
    }
    out->height = store_get_be64(v);
    out->index = get_be32(v + 8);
    out->log_index = store_get_be64(v + 12);
    free(v);
    return LG_OK;
}

/* The receipt's two in-block proofs, from the block's own leaves. */
/* Fills t's levels above its n leaves, which are in t->nodes[0, n); nodes
 * has room for 2n. */
static void mem_tree_fill(struct mem_tree *t, uint64_t n)
{
    size_t at = (size_t)n;

    t->n_leaves = n;
    t->count[0] = n;
    t->offset[0] = 0;
    for (unsigned lv = 1; lv < MERKLE_MAX_PATH; lv++) {
        uint8_t(*below)[32] = t->nodes + t->offset[lv - 1];

        t->count[lv] = t->count[lv - 1] / 2;
        t->offset[lv] = at;
        LG_ASSERT(at + t->count[lv] <= 2 * n);
        for (uint64_t i = 0; i < t->count[lv]; i++)
            merkle_node_hash(below[2 * i], below[2 * i + 1], t->nodes[at + i]);
        at += (size_t)t->count[lv];
    }
}

/* The tx and result trees of the cached block b (from block_load), built
 * once per block and kept with it. */
static int cached_trees(struct ledger *l, const Tc__Block *b)
{
    struct mem_tree *tx = &l->cache_tx_tree, *res = &l->cache_res_tree;

    LG_ASSERT(b == l->cache_block);
    if (b->n_results != b->n_txs)
        return seterr(l, LG_ECORRUPT, "block %llu is malformed",
                      (unsigned long long)l->cache_height);
    if (tx->nodes != NULL)
        return LG_OK;
    size_t room = 2 * (b->n_txs > 0 ? b->n_txs : 1);
    tx->nodes = malloc(room * sizeof(*tx->nodes));
    res->nodes = malloc(room * sizeof(*res->nodes));
    if (tx->nodes == NULL || res->nodes == NULL) {
        free(tx->nodes);
        free(res->nodes);
        memset(tx, 0, sizeof(*tx));
        memset(res, 0, sizeof(*res));
        return seterr(l, LG_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < b->n_txs; i++) {
        merkle_leaf_hash(b->txs[i].data, b->txs[i].len, tx->nodes[i]);
        merkle_leaf_hash(b->results[i].data, b->results[i].len, res->nodes[i]);
    }
    mem_tree_fill(tx, b->n_txs);
    mem_tree_fill(res, b->n_txs);
    return LG_OK;
}

static int receipt_block_proofs(struct ledger *l, const Tc__Block *b,
                                uint32_t index, uint8_t (*tx_path)[32],
                                size_t *n_tx, uint8_t (*res_path)[32],
                                size_t *n_res)
{
    int rv = cached_trees(l, b);

    if (rv != LG_OK)
        return rv;
    if (index >= b->n_txs)
        return seterr(l, LG_ECORRUPT, "block proof for tx %u failed", index);
    rv = inclusion_path(l, &l->cache_tx_tree, index, b->n_txs, tx_path, n_tx);
    if (rv == LG_OK)
        rv = inclusion_path(l, &l->cache_res_tree, index, b->n_txs, res_path,
                            n_res);
    return rv;
}

/* Fixed storage for one receipt's proofs while it is packed. */
struct receipt_parts {
    uint8_t log_path[MERKLE_MAX_PATH][32];
    uint8_t tx_path[MERKLE_MAX_PATH][32];
    uint8_t res_path[MERKLE_MAX_PATH][32];
    size_t n_log, n_tx, n_res;
    ProtobufCBinaryData log_pb[MERKLE_MAX_PATH];
    ProtobufCBinaryData tx_pb[MERKLE_MAX_PATH];
    ProtobufCBinaryData res_pb[MERKLE_MAX_PATH];
};

static void proof_set(Tc__InclusionProof *p, uint64_t index, uint64_t size,
                      uint8_t (*path)[32], size_t n, ProtobufCBinaryData *pb)
{
    for (size_t i = 0; i < n; i++)
        pb[i] = (ProtobufCBinaryData){32, path[i]};
    p->leaf_index = index;
    p->tree_size = size;
    p->n_path = n;
    p->path = pb;
}

void ledger_epoch_links_free(Tc__EpochLink **links, size_t n)
{
    for (size_t i = 0; links != NULL && i < n; i++)
        tc__epoch_link__free_unpacked(links[i], NULL);
    free(links);
}

/* The link of change block `height` as its own protobuf-c allocation. */
static int epoch_link_load(struct ledger *l, uint64_t height,
                           Tc__EpochLink **out)
{
    Tc__EpochLink link = TC__EPOCH_LINK__INIT;
    Tc__Certificate *cert = NULL;
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    uint8_t *buf;
    size_t len;
    int rv;

    rv = ledger_get_cert(l, height, &cert);
    if (rv == LG_ENOTFOUND)
        return seterr(l, LG_ENOTREADY,
                      "block %llu, which changed the replica set, is not "
                      "certified yet: ask again shortly",
                      (unsigned long long)height);
    if (rv != LG_OK)
        return rv;
    rv = block_load(l, height, &b, &h);
    if (rv != LG_OK) {
        tc__certificate__free_unpacked(cert, NULL);
        return rv;
    }
    link.header = b->header;
    link.cert = cert;
    len = tc__epoch_link__get_packed_size(&link);
    buf = malloc(len ? len : 1);
    if (buf != NULL) {
        tc__epoch_link__pack(&link, buf);
        *out = tc__epoch_link__unpack(NULL, len, buf);
    }
    free(buf);
    tc__certificate__free_unpacked(cert, NULL);
    if (buf == NULL || *out == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    return LG_OK;
}

int ledger_epoch_links(struct ledger *l, uint64_t height, Tc__EpochLink ***out,
                       size_t *n)
{
    uint64_t *heights = NULL;
    Tc__EpochLink **links = NULL;
    size_t total = 0, got = 0, k = 0;
    int rv;

    *out = NULL;
    *n = 0;
    rv = ledger_epochs(l, NULL, 0, &total);
    if (rv != LG_OK || total == 0)
        return rv;
    heights = malloc(total * sizeof(*heights));
    if (heights == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    rv = ledger_epochs(l, heights, total, &got);
    while (rv == LG_OK && k < got && k < total && heights[k] < height)
        k++;
    if (rv == LG_OK && k > 0 && (links = calloc(k, sizeof(*links))) == NULL)
        rv = seterr(l, LG_ENOMEM, "out of memory");
    for (size_t i = 0; rv == LG_OK && i < k; i++)
        rv = epoch_link_load(l, heights[i], &links[i]);
    free(heights);
    if (rv != LG_OK) {
        ledger_epoch_links_free(links, k);
        return rv;
    }
    *out = links;
    *n = k;
    return LG_OK;
}

/* Packs the receipt from borrowed parts and unpacks it into *out, so the
 * caller owns one protobuf-c allocation. */
static int receipt_pack(struct ledger *l, const Tc__Block *b,
                        const Tc__BlockHeader *h,
                        const struct ledger_tx_loc *loc, Tc__Certificate *cert,
                        struct receipt_parts *p, Tc__EpochLink **links,
                        size_t n_links, Tc__Receipt **out)
{
    Tc__Receipt r = TC__RECEIPT__INIT;
    Tc__InclusionProof lp = TC__INCLUSION_PROOF__INIT;
    Tc__InclusionProof bp = TC__INCLUSION_PROOF__INIT;
    Tc__InclusionProof rp = TC__INCLUSION_PROOF__INIT;
    uint8_t *buf;
    size_t len;

    proof_set(&lp, loc->log_index, h->log_size, p->log_path, p->n_log,
              p->log_pb);
    proof_set(&bp, loc->index, h->n_txs, p->tx_path, p->n_tx, p->tx_pb);
    proof_set(&rp, loc->index, h->n_txs, p->res_path, p->n_res, p->res_pb);
    r.signed_tx = b->txs[loc->index];
    r.result = b->results[loc->index];
    r.header = b->header;
    r.cert = cert;
    r.log_proof = &lp;
    r.block_proof = &bp;
    r.result_proof = &rp;
    r.n_epochs = n_links;
    r.epochs = links;
    len = tc__receipt__get_packed_size(&r);
    buf = malloc(len);
    if (buf == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    tc__receipt__pack(&r, buf);
    *out = tc__receipt__unpack(NULL, len, buf);
    free(buf);
    if (*out == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    return LG_OK;
}

/* A certificate stored ahead of its block (a lagging node) is for the
 * block the quorum agreed on; if ours differs, this replica diverged. */
static int receipt_cert_matches(struct ledger *l, const Tc__Block *b,
                                const Tc__Certificate *cert)
{
    uint8_t hash[32];

    crypto_sha256(b->header.data, b->header.len, hash);
    if (cert->block_hash.len != 32 ||
        memcmp(cert->block_hash.data, hash, 32) != 0)
        return seterr(l, LG_ECORRUPT,
                      "the certificate of block %llu is for another block: "
                      "this replica diverged; %s",
                      (unsigned long long)cert->height, repair_hint);
    return LG_OK;
}

int ledger_receipt(struct ledger *l, const uint8_t tx_id[32], Tc__Receipt **out)
{
    struct ledger_tx_loc loc;
    struct receipt_parts *p = NULL;
    Tc__EpochLink **links = NULL;
    size_t n_links = 0;
    Tc__Certificate *cert = NULL;
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    int rv;

    *out = NULL;
    rv = ledger_find_tx(l, tx_id, &loc);
    if (rv != LG_OK)
        return rv;
    rv = ledger_get_cert(l, loc.height, &cert);
    if (rv == LG_ENOTFOUND)
        return seterr(l, LG_ENOTREADY,
                      "block %llu is not certified yet: ask again shortly",
                      (unsigned long long)loc.height);
    if (rv != LG_OK)
        return rv;
    /* Before the tx's block: block_load keeps one block at a time. */
    rv = ledger_epoch_links(l, loc.height, &links, &n_links);
    if (rv != LG_OK) {
        tc__certificate__free_unpacked(cert, NULL);
        return rv;
    }
    rv = block_load(l, loc.height, &b, &h);
    if (rv == LG_OK && (loc.index >= b->n_txs || b->n_results != b->n_txs))
        rv = seterr(l, LG_ECORRUPT, "the tx index disagrees with block %llu",
                    (unsigned long long)loc.height);
    if (rv == LG_OK)
        rv = receipt_cert_matches(l, b, cert);
    if (rv == LG_OK && (p = malloc(sizeof(*p))) == NULL)
        rv = seterr(l, LG_ENOMEM, "out of memory");
    if (rv == LG_OK)
        rv = ledger_inclusion(l, loc.log_index, h->log_size, p->log_path,
                              &p->n_log);
    if (rv == LG_OK)
        rv = receipt_block_proofs(l, b, loc.index, p->tx_path, &p->n_tx,
                                  p->res_path, &p->n_res);
    if (rv == LG_OK)
        rv = receipt_pack(l, b, h, &loc, cert, p, links, n_links, out);
    free(p);
    ledger_epoch_links_free(links, n_links);
    tc__certificate__free_unpacked(cert, NULL);
    return rv;
}

void ledger_entry_clear(Tc__LedgerEntry *e)
{
    free(e->tx_id.data);
    free(e->signed_tx.data);
    free(e->result.data);
    if (e->signer_name != protobuf_c_empty_string)
        free(e->signer_name);
    tc__ledger_entry__init(e);
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);

    if (d != NULL && n > 0)
        memcpy(d, p, n);
    return d;
}

/* The member holding or having held key pk: from the registry's committed
 * state (members added or rotated by governance), else the genesis. */
static void member_name(struct ledger *l, const uint8_t pk[32], char *buf,
                        size_t buf_len)
{
    const struct genesis_member *m;

    if (l->reg != NULL) {
        struct gov_member gm;

        if (registry_member_by_key(l->reg, l->store, pk, &gm) == LG_OK) {
            snprintf(buf, buf_len, "%.*s", (int)sizeof(gm.name) - 1, gm.name);
            return;
        }
    }
    m = genesis_member_by_key(l->g, pk);
    if (m != NULL)
        snprintf(buf, buf_len, "%s", m->name);
}

/* The name of the tx's signer, "" when unknown or undecodable. */
static const char *signer_name(struct ledger *l,
                               const ProtobufCBinaryData *signed_tx, char *buf,
                               size_t buf_len)
{
    Tc__SignedTx *st;
    Tc__Tx *tx = NULL;

    buf[0] = '\0';
    st = tc__signed_tx__unpack(NULL, signed_tx->len, signed_tx->data);
    if (st != NULL)
        tx = tc__tx__unpack(NULL, st->body.len, st->body.data);
    if (tx != NULL && tx->signer.len == 32)
        member_name(l, tx->signer.data, buf, buf_len);
    tc__tx__free_unpacked(tx, NULL);
    tc__signed_tx__free_unpacked(st, NULL);
    return buf;
}

int ledger_entry(struct ledger *l, uint64_t log_index, Tc__LedgerEntry *out)
{
    unsigned char key[KEY_MAX], *v = NULL;
    char name[GENESIS_NAME_MAX];
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    uint64_t height;
    uint32_t index;
    size_t vl = 0;
    int rv;

    tc__ledger_entry__init(out);
    if (log_index >= l->log.size)
        return seterr(l, LG_ENOTFOUND, "the log holds %llu txs, no tx %llu",
                      (unsigned long long)l->log.size,
                      (unsigned long long)log_index);
    rv = store_get(l->store, key, key_leaf(key, log_index), &v, &vl);
    if (rv != LG_OK || vl != LEAF_VALUE) {
        free(v);
        return seterr(l, rv == LG_OK ? LG_ECORRUPT : rv,
                      "log leaf %llu is unreadable",
                      (unsigned long long)log_index);
    }
    height = store_get_be64(v + 32);
    index = get_be32(v + 40);
    free(v);
    rv = block_load(l, height, &b, &h);
    if (rv != LG_OK)
        return rv;
    if (index >= b->n_txs || b->n_results != b->n_txs)
        return seterr(l, LG_ECORRUPT,
                      "log leaf %llu points outside block "
                      "%llu",
                      (unsigned long long)log_index,
                      (unsigned long long)height);
    out->height = height;
    out->time_ms = h->timestamp_ms;
    out->log_index = log_index;
    out->tx_id.data = malloc(32);
    out->signed_tx.data = dup_bytes(b->txs[index].data, b->txs[index].len);
    out->result.data = dup_bytes(b->results[index].data, b->results[index].len);
    out->signer_name =
        strdup(signer_name(l, &b->txs[index], name, sizeof(name)));
    if (out->tx_id.data == NULL || out->signed_tx.data == NULL ||
        out->result.data == NULL || out->signer_name == NULL) {
        ledger_entry_clear(out);
        return seterr(l, LG_ENOMEM, "out of memory");
    }
    crypto_sha256(b->txs[index].data, b->txs[index].len, out->tx_id.data);
    out->tx_id.len = 32;
    out->signed_tx.len = b->txs[index].len;
    out->result.len = b->results[index].len;
    return LG_OK;
}

/* ---- catch-up ----------------------------------------------------------- */

/* Names the first header field where a and b differ. */
static const char *header_diff(const uint8_t *a, size_t al, const uint8_t *b,
                               size_t bl)
{
    Tc__BlockHeader *x = tc__block_header__unpack(NULL, al, a);
    Tc__BlockHeader *y = tc__block_header__unpack(NULL, bl, b);
    const char *what = "encoding";

#define BIN_NE(f) \
    (x->f.len != y->f.len || memcmp(x->f.data, y->f.data, x->f.len) != 0)
    if (x == NULL || y == NULL)
        what = "encoding";
    else if (x->view != y->view || x->timestamp_ms != y->timestamp_ms)
        what = "view or time";
    else if (x->n_txs != y->n_txs)
        what = "n_txs";
    else if (BIN_NE(tx_root))
        what = "tx_root";
    else if (BIN_NE(results_root))
        what = "results_root (the registry decided a tx differently)";
    else if (x->log_size != y->log_size || BIN_NE(log_root))
        what = "log_size/log_root (the logs differ before this block)";
    else if (BIN_NE(prev_hash) || BIN_NE(chain_id) || x->height != y->height)
        what = "chain link";
    else if ((x->next_replicas == NULL) != (y->next_replicas == NULL))
        what = "next_replicas (whether the block changed the replica set)";
    else if (x->next_replicas != NULL)
        what = "next_replicas (the new replica set)";
#undef BIN_NE
    tc__block_header__free_unpacked(x, NULL);
    tc__block_header__free_unpacked(y, NULL);
    return what;
}

/* The epoch that certifies block `height` (*ep malloc'd; free it). */
static int epoch_at(struct ledger *l, uint64_t height, struct verify_epoch **ep)
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    int rv;

    *ep = malloc(sizeof(**ep));
    if (set == NULL || *ep == NULL) {
        free(set);
        free(*ep);
        *ep = NULL;
        return seterr(l, LG_ENOMEM, "out of memory");
    }
    rv = ledger_replica_set_at(l, height, set);
    if (rv == LG_OK)
        verify_epoch_of_set(l->g->chain_id, set, *ep);
    free(set);
    if (rv != LG_OK) {
        free(*ep);
        *ep = NULL;
    }
    return rv;
}

/* A certified block at or below the tip: the same as ours, or a fork. */
static int certified_old(struct ledger *l, const Tc__Block *b,
                         const Tc__BlockHeader *h, const Tc__Certificate *cert)
{
    struct verify_epoch *ep;
    uint8_t hash[32], ours[32];
    char why[200];
    bool ok;
    int rv;

    crypto_sha256(b->header.data, b->header.len, hash);
    rv = epoch_at(l, h->height, &ep);
    if (rv != LG_OK)
        return rv;
    ok = verify_cert_with_set(&ep->set, ep->epoch_chain_id, h->height, hash,
                              cert, why, sizeof(why));
    free(ep);
    if (!ok)
        return seterr(l, LG_EBADMSG, "fetched block %llu: %s",
                      (unsigned long long)h->height, why);
    rv = ledger_block_hash(l, h->height, ours);
    if (rv != LG_OK)
        return rv;
    if (memcmp(hash, ours, 32) != 0)
        return seterr(l, LG_ECORRUPT,
                      "block %llu here differs from the certified block: "
                      "this replica diverged; %s",
                      (unsigned long long)h->height, repair_hint);
    return seterr(l, LG_EEXIST, "block %llu is already applied",
                  (unsigned long long)h->height);
}

/* Re-executes the verified block b and commits it with its certificate
 * when the recomputed header is byte-identical to the certified one. */
static int certified_apply(struct ledger *l, const Tc__Block *b,
                           const Tc__BlockHeader *h,
                           const Tc__Certificate *cert)
{
    struct built bt;
    uint8_t *cbytes;
    size_t clen;
    int rv;

    rv = ledger_build(l, h->height, h->view, h->timestamp_ms,
                      (uint32_t)b->n_txs, b->txs, NULL, &bt);
    if (rv != LG_OK)
        return rv;
    if (bt.header_len != b->header.len ||
        memcmp(bt.header, b->header.data, bt.header_len) != 0) {
        rv = seterr(l, LG_ECORRUPT,
                    "re-executing certified block %llu gives another header "
                    "(%s differs): this replica's state diverged; %s",
                    (unsigned long long)h->height,
                    header_diff(bt.header, bt.header_len, b->header.data,
                                b->header.len),
                    repair_hint);
        built_free(&bt);
        return rv;
    }
    clen = tc__certificate__get_packed_size(cert);
    cbytes = malloc(clen ? clen : 1);
    if (cbytes == NULL) {
        built_free(&bt);
        return seterr(l, LG_ENOMEM, "out of memory");
    }
    tc__certificate__pack(cert, cbytes);
    cert_put(l, NULL, bt.txn, h->height, cbytes, clen);
    free(cbytes);
    rv = ledger_commit(l, &bt, h->height, true);
    if (rv == LG_OK && h->height > l->tip.last_certified)
        l->tip.last_certified = h->height;
    return rv;
}

/* Block tip + 1: verified against the set in force at its height (the
 * set after the last change block), then re-executed. */
static int certified_next(struct ledger *l, const uint8_t *block_bytes,
                          size_t len, const Tc__Block *b,
                          const Tc__BlockHeader *h, const Tc__Certificate *cert)
{
    struct verify_epoch *ep;
    char why[256];
    bool ok;
    int rv;

    rv = epoch_at(l, l->tip.height + 1, &ep);
    if (rv != LG_OK)
        return rv;
    ok = verify_block_walk(ep, block_bytes, len, cert, l->tip.block_hash,
                           l->tip.height + 1, NULL, why, sizeof(why));
    free(ep);
    if (!ok)
        return seterr(l, LG_EBADMSG,
                      "fetched block %llu fails verification: %s",
                      (unsigned long long)h->height, why);
    return certified_apply(l, b, h, cert);
}

int ledger_apply_certified(struct ledger *l, const uint8_t *block_bytes,
                           size_t len, const Tc__Certificate *cert)
{
    Tc__Block *b = NULL;
    Tc__BlockHeader *h = NULL;
    int rv;

    if (l->reg == NULL)
        return seterr(l, LG_EINVAL, "the ledger was opened read-only");
    if (block_bytes == NULL || len == 0 || len > VERIFY_BLOCK_MAX)
        return seterr(l, LG_EBADMSG, "the fetched block is empty or too big");
    b = tc__block__unpack(NULL, len, block_bytes);
    if (b != NULL)
        h = tc__block_header__unpack(NULL, b->header.len, b->header.data);
    if (h == NULL) {
        rv = seterr(l, LG_EBADMSG, "the fetched block does not decode");
    } else if (h->height <= l->tip.height) {
        rv = certified_old(l, b, h, cert);
    } else if (h->height > l->tip.height + 1) {
        rv = seterr(l, LG_EINVAL,
                    "fetched block %llu does not follow the tip %llu: fetch "
                    "the blocks before it first",
                    (unsigned long long)h->height,
                    (unsigned long long)l->tip.height);
    } else {
        rv = certified_next(l, block_bytes, len, b, h, cert);
    }
    tc__block_header__free_unpacked(h, NULL);
    tc__block__free_unpacked(b, NULL);
    return rv;
}

/* ---- rebuild (the operator's --repair) ---------------------------------- */

/* Deletes every key under prefix, in bounded batches. */
static int delete_prefix(struct store *s, const char *prefix)
{
    for (;;) {
        struct store_iter *it =
            store_iter_new(s, prefix, strlen(prefix), NULL, 0);
        struct store_batch *b = store_batch_new();
        const unsigned char *k, *v;
        size_t kl, vl, n = 0;
        int rv;

        if (it == NULL || b == NULL) {
            store_iter_free(it);
            store_batch_free(b);
            return LG_ENOMEM;
        }
        while (n < 4096 && store_iter_next(it, &k, &kl, &v, &vl)) {
            store_batch_delete(b, k, kl);
            n++;
        }
        store_iter_free(it);
        rv = n > 0 ? store_write(s, b, false) : LG_OK;
        store_batch_free(b);
        if (rv != LG_OK || n == 0)
            return rv;
    }
}

/* The store is this chain's: by "m/chain", else by block 1's header. */
static int rebuild_check_chain(struct ledger *l)
{
    unsigned char *v = NULL;
    size_t vl = 0;
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    int rv;

    rv = store_get(l->store, key_chain, strlen(key_chain), &v, &vl);
    if (rv == LG_OK) {
        rv = open_existing_chain(l, v, vl);
        free(v);
        return rv;
    }
    if (rv != LG_ENOTFOUND)
        return seterr(l, rv, "reading the chain id failed");
    rv = block_load(l, 1, &b, &h);
    if (rv == LG_ENOTFOUND)
        return LG_OK;
    if (rv == LG_OK && (h->chain_id.len != 32 ||
                        memcmp(h->chain_id.data, l->g->chain_id, 32) != 0))
        rv = seterr(l, LG_ECHAIN,
                    "block 1 in the data directory is of another chain than "
                    "the genesis");
    return rv;
}

/* Re-executes stored block `height` on top of the tip; LG_ENOTFOUND when
 * it is missing, LG_ECORRUPT when it does not reproduce. */
static int rebuild_one(struct ledger *l, uint64_t height)
{
    const Tc__Block *b;
    const Tc__BlockHeader *h;
    struct built bt;
    int rv;

    rv = block_load(l, height, &b, &h);
    if (rv != LG_OK)
        return rv;
    if (b->n_results != b->n_txs)
        return seterr(l, LG_ECORRUPT, "stored block %llu is malformed",
                      (unsigned long long)height);
    rv = ledger_build(l, height, h->view, h->timestamp_ms, (uint32_t)b->n_txs,
                      b->txs, NULL, &bt);
    if (rv != LG_OK)
        return rv;
    if (bt.header_len != b->header.len ||
        memcmp(bt.header, b->header.data, bt.header_len) != 0) {
        built_free(&bt);
        return seterr(l, LG_ECORRUPT, "stored block %llu does not reproduce",
                      (unsigned long long)height);
    }
    /* Unsynced: the final tip write below is synced. */
    return ledger_commit(l, &bt, height, false);
}

static int rebuild_run(struct ledger *l, uint64_t *height)
{
    static const char *const derived[] = {"m/tip", "t/", "l/", "n/",
                                          "r/",    "x/", "e/"};
    unsigned char tip[TIP_FIXED + 32 * MERKLE_MAX_PATH];
    struct store_batch *b;
    int rv;

    rv = rebuild_check_chain(l);
    for (size_t i = 0; rv == LG_OK && i < sizeof(derived) / sizeof(*derived);
         i++)
        rv = delete_prefix(l->store, derived[i]);
    if (rv == LG_OK)
        rv = write_genesis_tip(l);
    /* Blocks past a gap or past one that does not reproduce stay on disk
     * unused: catch-up overwrites them with certified ones. */
    while (rv == LG_OK && l->tip.height < UINT64_MAX - 1) {
        rv = rebuild_one(l, l->tip.height + 1);
        if (rv == LG_ENOTFOUND || rv == LG_ECORRUPT) {
            rv = LG_OK;
            break;
        }
    }
    if (rv != LG_OK)
        return rv;
    b = store_batch_new();
    if (b == NULL)
        return seterr(l, LG_ENOMEM, "out of memory");
    store_batch_put(b, key_tip, strlen(key_tip), tip,
                    tip_encode(&l->tip, &l->log, tip));
    rv = store_write(l->store, b, true);
    store_batch_free(b);
    *height = l->tip.height;
    return rv;
}

int ledger_rebuild(struct store *s, const struct genesis *g,
                   struct registry *reg, uint64_t *height, char *err,
                   size_t err_len)
{
    struct ledger *l;
    int rv;

    LG_ASSERT(s != NULL && g != NULL && reg != NULL && height != NULL);
    *height = 0;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return LG_ENOMEM;
    l->store = s;
    l->g = g;
    l->reg = reg;
    rv = rebuild_run(l, height);
    if (rv != LG_OK && err != NULL && err_len > 0)
        snprintf(err, err_len, "%s",
                 l->errmsg[0] ? l->errmsg : lg_strerror(rv));
    ledger_close(l);
    return rv;
}
