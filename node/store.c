/*
 * store.c - LevelDB behind our interface, plus the per-block transaction
 * overlay the registry executes in.
 */
#include "store.h"

#include <leveldb/c.h>
#include <sodium.h>
#include <string.h>

struct store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_filterpolicy_t *bloom;
    leveldb_cache_t *cache;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts_sync;
    leveldb_writeoptions_t *wopts_async;
};

struct store_batch {
    leveldb_writebatch_t *wb;
};

struct store_iter {
    leveldb_iterator_t *it;
    unsigned char *prefix;
    size_t plen;
    bool started;
    bool reverse;
};

/* Translates a LevelDB errptr into LG_EIO, logs it and frees it. */
static int store_err(char *lerr, const char *what)
{
    if (lerr == NULL)
        return LG_OK;
    lg_log(LG_ERROR, "store-error", "op=%s error=\"%s\"", what, lerr);
    leveldb_free(lerr);
    return LG_EIO;
}

int store_open(const char *dir, bool create, struct store **out, char *err,
               size_t err_len)
{
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return LG_ENOMEM;
    s->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(s->opts, create ? 1 : 0);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    /* What we store is signed bytes and hashes, which do not compress:
     * snappy only cost CPU (8% of a node's under load). A larger memtable
     * and tables mean fewer compactions as the ledger grows; the bloom
     * filter spares the table reads of lookups that miss (tx ids, nonces),
     * and the cache keeps recent blocks and index pages. All bounded:
     * 32 MiB memtable (two at most) and 32 MiB cache. */
    leveldb_options_set_compression(s->opts, leveldb_no_compression);
    leveldb_options_set_write_buffer_size(s->opts, 32u << 20);
    leveldb_options_set_max_file_size(s->opts, 8u << 20);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    s->cache = leveldb_cache_create_lru(32u << 20);
    leveldb_options_set_filter_policy(s->opts, s->bloom);
    leveldb_options_set_cache(s->opts, s->cache);
    s->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);
    s->wopts_sync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wopts_sync, 1);
    s->wopts_async = leveldb_writeoptions_create();

    char *lerr = NULL;
    s->db = leveldb_open(s->opts, dir, &lerr);
    if (lerr != NULL) {
        /* LevelDB says "Corruption: ..." for bad checksums and truncated
         * tables; the caller names the repair. */
        bool corrupt = strstr(lerr, "Corruption") != NULL;
        if (err != NULL && err_len > 0 && corrupt)
            snprintf(err, err_len, "the database at %s is corrupt (%.120s)",
                     dir, lerr);
        else if (err != NULL && err_len > 0)
            snprintf(err, err_len, "cannot open the database at %s: %s", dir,
                     lerr);
        leveldb_free(lerr);
        s->db = NULL;
        store_close(s);
        return corrupt ? LG_ECORRUPT : LG_EIO;
    }
    *out = s;
    return LG_OK;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->db != NULL)
        leveldb_close(s->db);
    leveldb_writeoptions_destroy(s->wopts_async);
    leveldb_writeoptions_destroy(s->wopts_sync);
    leveldb_readoptions_destroy(s->ropts);
    leveldb_options_destroy(s->opts);
    if (s->bloom != NULL)
        leveldb_filterpolicy_destroy(s->bloom);
    if (s->cache != NULL)
        leveldb_cache_destroy(s->cache);
    free(s);
}

int store_get(struct store *s, const void *key, size_t klen,
              unsigned char **val, size_t *vlen)
{
    char *lerr = NULL;
    size_t len = 0;
    char *v = leveldb_get(s->db, s->ropts, key, klen, &len, &lerr);
    if (lerr != NULL)
        return store_err(lerr, "get");
    if (v == NULL)
        return LG_ENOTFOUND;
    /* Copy into malloc'd memory so callers free() it, not leveldb_free(). */
    unsigned char *copy = malloc(len + 1);
    if (copy == NULL) {
        leveldb_free(v);
        return LG_ENOMEM;
    }
    memcpy(copy, v, len);
    copy[len] = '\0';
    leveldb_free(v);
    *val = copy;
    *vlen = len;
    return LG_OK;
}

struct store_batch *store_batch_new(void)
{
    struct store_batch *b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    b->wb = leveldb_writebatch_create();
    return b;
}

void store_batch_put(struct store_batch *b, const void *k, size_t kl,
                     const void *v, size_t vl)
{
    leveldb_writebatch_put(b->wb, k, kl, v, vl);
}

void store_batch_delete(struct store_batch *b, const void *k, size_t kl)
{
    leveldb_writebatch_delete(b->wb, k, kl);
}

void store_batch_clear(struct store_batch *b)
{
    leveldb_writebatch_clear(b->wb);
}

void store_batch_free(struct store_batch *b)
{
    if (b == NULL)
        return;
    leveldb_writebatch_destroy(b->wb);
    free(b);
}

int store_write(struct store *s, struct store_batch *b, bool sync)
{
    char *lerr = NULL;
    leveldb_write(s->db, sync ? s->wopts_sync : s->wopts_async, b->wb, &lerr);
    return store_err(lerr, "write");
}

/* ---- prefix iteration --------------------------------------------------- */

struct store_iter *store_iter_new(struct store *s, const void *prefix,
                                  size_t plen, const void *start, size_t slen)
{
    struct store_iter *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return NULL;
    it->prefix = malloc(plen > 0 ? plen : 1);
    if (it->prefix == NULL) {
        free(it);
        return NULL;
    }
    if (plen > 0)
        memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    it->it = leveldb_create_iterator(s->db, s->ropts);
    if (start != NULL)
        leveldb_iter_seek(it->it, start, slen);
    else
        leveldb_iter_seek(it->it, prefix, plen);
    return it;
}

struct store_iter *store_iter_new_reverse(struct store *s, const void *prefix,
                                          size_t plen)
{
    struct store_iter *it = store_iter_new(s, prefix, plen, NULL, 0);
    if (it == NULL)
        return NULL;
    it->reverse = true;
    /* The first key past the prefix: the prefix with its last byte that
     * is not 0xff incremented (and what follows dropped). */
    size_t n = plen;
    while (n > 0 && it->prefix[n - 1] == 0xff)
        n--;
    if (n == 0) {
        leveldb_iter_seek_to_last(it->it);
        return it;
    }
    unsigned char *past = malloc(n);
    if (past == NULL) {
        store_iter_free(it);
        return NULL;
    }
    memcpy(past, it->prefix, n);
    past[n - 1]++;
    leveldb_iter_seek(it->it, (const char *)past, n);
    free(past);
    if (leveldb_iter_valid(it->it))
        leveldb_iter_prev(it->it);
    else
        leveldb_iter_seek_to_last(it->it);
    return it;
}

bool store_iter_next(struct store_iter *it, const unsigned char **k, size_t *kl,
                     const unsigned char **v, size_t *vl)
{
    if (it == NULL)
        return false;
    if (it->started && it->reverse)
        leveldb_iter_prev(it->it);
    else if (it->started)
        leveldb_iter_next(it->it);
    it->started = true;
    if (!leveldb_iter_valid(it->it))
        return false;
    size_t klen = 0, vlen = 0;
    const char *key = leveldb_iter_key(it->it, &klen);
    if (klen < it->plen || memcmp(key, it->prefix, it->plen) != 0)
        return false;
    const char *val = leveldb_iter_value(it->it, &vlen);
    *k = (const unsigned char *)key;
    *kl = klen;
    *v = (const unsigned char *)val;
    *vl = vlen;
    return true;
}

void store_iter_free(struct store_iter *it)
{
    if (it == NULL)
        return;
    char *lerr = NULL;
    leveldb_iter_get_error(it->it, &lerr);
    (void)store_err(lerr, "iterate");
    leveldb_iter_destroy(it->it);
    free(it->prefix);
    free(it);
}

/* ---- transactions ------------------------------------------------------- */

/* The overlay is an insertion-ordered array of entries indexed by an
 * open-addressing hash table (keyed SipHash), so a block with many writes
 * stays O(1) per access. Commit writes the entries in insertion order. */
struct txn_entry {
    unsigned char *key;
    size_t klen;
    unsigned char *val; /* NULL: deleted in this txn */
    size_t vlen;
};

struct store_txn {
    struct store *s;
    struct txn_entry *entries;
    size_t n_entries, cap_entries;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t n_slots;  /* power of two */
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    bool failed; /* an allocation failed: commit must refuse */
};

static uint64_t txn_hash(const struct store_txn *t, const void *k, size_t kl)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, k, kl, t->hash_key);
    uint64_t v = 0;
    memcpy(&v, h, sizeof(v));
    return v;
}

/* Returns the slot holding k, or the empty slot where it would go. */
static size_t txn_slot(const struct store_txn *t, const void *k, size_t kl)
{
    size_t mask = t->n_slots - 1;
    size_t i = (size_t)txn_hash(t, k, kl) & mask;
    for (size_t probes = 0; probes < t->n_slots; probes++) {
        uint32_t e = t->slots[i];
        if (e == 0)
            return i;
        const struct txn_entry *en = &t->entries[e - 1];
        if (en->klen == kl && memcmp(en->key, k, kl) == 0)
            return i;
        i = (i + 1) & mask;
    }
    LG_ASSERT(0); /* the table is never full: load factor <= 1/2 */
    return 0;
}

static int txn_grow(struct store_txn *t)
{
    size_t n = t->n_slots ? t->n_slots * 2 : 64;
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return LG_ENOMEM;
    free(t->slots);
    t->slots = slots;
    t->n_slots = n;
    for (size_t i = 0; i < t->n_entries; i++) {
        size_t s = txn_slot(t, t->entries[i].key, t->entries[i].klen);
        t->slots[s] = (uint32_t)(i + 1);
    }
    return LG_OK;
}

struct store_txn *store_txn_new(struct store *s)
{
    struct store_txn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->s = s;
    crypto_shorthash_keygen(t->hash_key);
    if (txn_grow(t) != LG_OK) {
        free(t);
        return NULL;
    }
    return t;
}

static void txn_set(struct store_txn *t, const void *k, size_t kl,
                    const void *v, size_t vl, bool del)
{
    if (t->failed)
        return;
    unsigned char *val = NULL;
    if (!del) {
        val = malloc(vl > 0 ? vl : 1);
        if (val == NULL) {
            t->failed = true;
            return;
        }
        if (vl > 0)
            memcpy(val, v, vl);
    }
    size_t slot = txn_slot(t, k, kl);
    if (t->slots[slot] != 0) {
        struct txn_entry *en = &t->entries[t->slots[slot] - 1];
        free(en->val);
        en->val = del ? NULL : val;
        en->vlen = del ? 0 : vl;
        return;
    }
    if (t->n_entries == t->cap_entries) {
        size_t cap = t->cap_entries ? t->cap_entries * 2 : 32;
        struct txn_entry *ne = NULL;
        /* Slots hold 32-bit indexes: a txn never grows past that. */
        if (cap < UINT32_MAX / 2)
            ne = realloc(t->entries, cap * sizeof(*ne));
        if (ne == NULL) {
            free(val);
            t->failed = true;
            return;
        }
        t->entries = ne;
        t->cap_entries = cap;
    }
    struct txn_entry *en = &t->entries[t->n_entries];
    en->key = malloc(kl > 0 ? kl : 1);
    if (en->key == NULL) {
        free(val);
        t->failed = true;
        return;
    }
    if (kl > 0)
        memcpy(en->key, k, kl);
    en->klen = kl;
    en->val = del ? NULL : val;
    en->vlen = del ? 0 : vl;
    t->slots[slot] = (uint32_t)(t->n_entries + 1);
    t->n_entries++;
    if (t->n_entries * 2 > t->n_slots && txn_grow(t) != LG_OK)
        t->failed = true;
}

int store_txn_get(struct store_txn *t, const void *k, size_t kl,
                  unsigned char **val, size_t *vlen)
{
    if (t->failed)
        return LG_ENOMEM;
    size_t slot = txn_slot(t, k, kl);
    if (t->slots[slot] == 0)
        return store_get(t->s, k, kl, val, vlen);
    const struct txn_entry *en = &t->entries[t->slots[slot] - 1];
    if (en->val == NULL)
        return LG_ENOTFOUND;
    unsigned char *copy = malloc(en->vlen + 1);
    if (copy == NULL)
        return LG_ENOMEM;
    memcpy(copy, en->val, en->vlen);
    copy[en->vlen] = '\0';
    *val = copy;
    *vlen = en->vlen;
    return LG_OK;
}

void store_txn_put(struct store_txn *t, const void *k, size_t kl, const void *v,
                   size_t vl)
{
    txn_set(t, k, kl, v, vl, false);
}

void store_txn_delete(struct store_txn *t, const void *k, size_t kl)
{
    txn_set(t, k, kl, NULL, 0, true);
}

int store_txn_commit(struct store_txn *t, bool sync)
{
    int rv = LG_ENOMEM;
    if (!t->failed) {
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        for (size_t i = 0; i < t->n_entries; i++) {
            const struct txn_entry *en = &t->entries[i];
            if (en->val != NULL)
                leveldb_writebatch_put(wb, (const char *)en->key, en->klen,
                                       (const char *)en->val, en->vlen);
            else
                leveldb_writebatch_delete(wb, (const char *)en->key, en->klen);
        }
        char *lerr = NULL;
        leveldb_write(t->s->db, sync ? t->s->wopts_sync : t->s->wopts_async, wb,
                      &lerr);
        leveldb_writebatch_destroy(wb);
        rv = store_err(lerr, "txn-commit");
    }
    store_txn_abort(t);
    return rv;
}

void store_txn_abort(struct store_txn *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_entries; i++) {
        free(t->entries[i].key);
        free(t->entries[i].val);
    }
    free(t->entries);
    free(t->slots);
    free(t);
}

/* ---- keys --------------------------------------------------------------- */

void store_put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t store_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

size_t store_key_u64(unsigned char *out, const char *prefix, uint64_t v)
{
    size_t plen = strlen(prefix);
    LG_ASSERT(plen <= 8);
    memcpy(out, prefix, plen);
    store_put_be64(out + plen, v);
    return plen + 8;
}

int store_repair(const char *dir, char *err, size_t err_len)
{
    leveldb_options_t *opts = leveldb_options_create();
    char *lerr = NULL;
    leveldb_repair_db(opts, dir, &lerr);
    leveldb_options_destroy(opts);
    if (lerr != NULL) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "cannot repair the database at %s: %s", dir,
                     lerr);
        leveldb_free(lerr);
        return LG_EIO;
    }
    return LG_OK;
}
