/*
 * store.c - LevelDB behind our interface, plus the per-block transaction
 * overlay the registry executes in.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* A read cache of committed state in front of leveldb_get. Executing a
 * block reads the same small records block after block (each signer's
 * nonce and index counters, members, sites, trials), and every LevelDB
 * lookup walks the memtable's skiplist through cache misses. Direct-mapped
 * and bounded: a key hashes to exactly one slot, and a new key evicts
 * whatever was there. It holds what the store holds: filled by reads, and
 * every write (store_write, store_txn_commit) updates the slots of the keys
 * it wrote, so it is never stale. Uncommitted txn writes never reach it, so
 * an aborted block leaves nothing to undo. */
#define CACHE_SLOTS     8192 /* a power of two */
#define CACHE_KEY_MAX   128
#define CACHE_VALUE_MAX 256 /* larger values are not cached */

_Static_assert((CACHE_SLOTS & (CACHE_SLOTS - 1)) == 0, "a power of two");

struct cache_slot {
    uint64_t hash;     /* of the key */
    unsigned char *kv; /* key then value, one allocation; NULL: empty */
    uint32_t klen, vlen;
    bool found; /* false: the store holds no such key */
    bool hot;   /* read since it was last spared an eviction */
};

struct store_cache {
    pthread_mutex_t mu;
    bool on;
    /* Bumped by every write: a read that began before a write may carry
     * the old value, so it is not put in the cache. */
    uint64_t gen;
    struct store_cache_stats stats;
    /* Per slot, 16 bits of its key's hash (0: empty): a compact array that
     * stays in the CPU cache, so most lookups of keys not held (and the
     * check of every key a block writes) end without touching the slot. */
    uint16_t tags[CACHE_SLOTS];
    struct cache_slot slots[CACHE_SLOTS];
};

struct store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_filterpolicy_t *bloom;
    leveldb_cache_t *cache;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts_sync;
    leveldb_writeoptions_t *wopts_async;
    /* Keyed SipHash of keys, for the read cache and the txn overlay (so a
     * key is hashed once per write). */
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct store_cache *rcache; /* NULL: out of memory at open, none */
    char *dir;                  /* the data directory (old-log syncs) */
    unsigned long long log_no;  /* newest LevelDB log seen after a sync */
    uint64_t old_log_syncs;     /* older log files synced (tests) */
    uint64_t log_listings;      /* data directory listings (tests) */
    /* Watches the data directory for new files, so a synced write lists it
     * only when a log may have appeared; -1: none, list at every sync. */
    int watch_fd;
    bool relist; /* list at the next synced write whatever the watch says */
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

/* ---- the read cache ------------------------------------------------------ */

static uint64_t store_hash(const struct store *s, const void *k, size_t kl)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v = 0;

    crypto_shorthash(h, k, kl, s->hash_key);
    memcpy(&v, h, sizeof(v));
    return v;
}

static struct store_cache *rcache_new(void)
{
    struct store_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->on = true;
    return c;
}

static size_t rcache_index(uint64_t h)
{
    return (size_t)(h & (CACHE_SLOTS - 1));
}

static uint16_t rcache_tag(uint64_t h)
{
    return (uint16_t)((h >> 48) | 1); /* never 0, which marks empty */
}

static void rcache_slot_clear(struct store_cache *c, size_t i)
{
    free(c->slots[i].kv);
    memset(&c->slots[i], 0, sizeof(c->slots[i]));
    c->tags[i] = 0;
}

/* Empties every slot; the caller holds mu. */
static void rcache_clear_locked(struct store_cache *c)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        rcache_slot_clear(c, i);
    c->gen++;
}

static void rcache_free(struct store_cache *c)
{
    if (c == NULL)
        return;
    rcache_clear_locked(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Whether slot i holds key k (hash h). */
static bool rcache_holds(const struct store_cache *c, size_t i, uint64_t h,
                         const void *k, size_t kl)
{
    const struct cache_slot *sl = &c->slots[i];

    if (c->tags[i] != rcache_tag(h))
        return false;
    return sl->kv != NULL && sl->hash == h && sl->klen == kl &&
           memcmp(sl->kv, k, kl) == 0;
}

/* Sets slot i to (k, v), or to "absent" when v is NULL. On allocation
 * failure the slot is left empty: a miss, never a wrong answer. */
static void rcache_slot_set(struct store_cache *c, size_t i, uint64_t h,
                            const void *k, size_t kl, const void *v, size_t vl,
                            bool hot)
{
    struct cache_slot *sl = &c->slots[i];
    unsigned char *kv = malloc(kl + (v != NULL ? vl : 0) + 1);

    rcache_slot_clear(c, i);
    if (kv == NULL)
        return;
    memcpy(kv, k, kl);
    if (v != NULL && vl > 0)
        memcpy(kv + kl, v, vl);
    sl->hash = h;
    sl->kv = kv;
    sl->klen = (uint32_t)kl;
    sl->vlen = v != NULL ? (uint32_t)vl : 0;
    sl->found = v != NULL;
    sl->hot = hot;
    c->tags[i] = rcache_tag(h);
}

/* A lookup: true when the cache answered (*rv LG_OK with a malloc'd copy
 * as store_get gives it, LG_ENOTFOUND or LG_ENOMEM); false on a miss, with
 * *gen the write generation to hand to rcache_fill. */
static bool rcache_get(struct store_cache *c, uint64_t h, const void *k,
                       size_t kl, unsigned char **val, size_t *vlen, int *rv,
                       uint64_t *gen)
{
    size_t i = rcache_index(h);
    bool hit = false;

    pthread_mutex_lock(&c->mu);
    *gen = c->gen;
    if (c->on && rcache_holds(c, i, h, k, kl)) {
        struct cache_slot *sl = &c->slots[i];
        hit = true;
        sl->hot = true;
        *rv = sl->found ? LG_OK : LG_ENOTFOUND;
        if (sl->found) {
            unsigned char *copy = malloc((size_t)sl->vlen + 1);
            if (copy == NULL) {
                *rv = LG_ENOMEM;
            } else {
                memcpy(copy, sl->kv + sl->klen, sl->vlen);
                copy[sl->vlen] = '\0';
                *val = copy;
                *vlen = sl->vlen;
            }
        }
    }
    if (hit)
        c->stats.hits++;
    else
        c->stats.misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Caches what a read found (v NULL: absent), unless a write came since the
 * read began (gen from rcache_get). A slot read since it was last spared
 * is spared once more (a second chance): many lookups are of keys read
 * once (tx ids and a new pseudonym's records, about to be created), and
 * they must not push out what every block reads. */
static void rcache_fill(struct store_cache *c, uint64_t h, const void *k,
                        size_t kl, const void *v, size_t vl, uint64_t gen)
{
    size_t i = rcache_index(h);
    struct cache_slot *sl = &c->slots[i];

    if (v != NULL && vl > CACHE_VALUE_MAX)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->on && c->gen == gen) {
        if (sl->kv != NULL && sl->hot)
            sl->hot = false;
        else
            rcache_slot_set(c, i, h, k, kl, v, vl, false);
    }
    pthread_mutex_unlock(&c->mu);
}

/* A committed write of k (v NULL: deleted): a slot holding k takes the new
 * value. A key just created (cached as absent) is dropped instead: most
 * are read once, before they are written (tx ids, first index entries).
 * The caller holds mu and bumps gen once the whole write is noted. */
static void rcache_note_locked(struct store_cache *c, uint64_t h, const void *k,
                               size_t kl, const void *v, size_t vl)
{
    size_t i = rcache_index(h);

    if (kl > CACHE_KEY_MAX || !rcache_holds(c, i, h, k, kl))
        return;
    if (v != NULL && (vl > CACHE_VALUE_MAX || !c->slots[i].found))
        rcache_slot_clear(c, i);
    else
        rcache_slot_set(c, i, h, k, kl, v, vl, c->slots[i].hot);
}

struct rcache_batch_ctx {
    const struct store *s;
    struct store_cache *c;
};

static void rcache_batch_put(void *state, const char *k, size_t kl,
                             const char *v, size_t vl)
{
    struct rcache_batch_ctx *x = state;
    if (kl <= CACHE_KEY_MAX)
        rcache_note_locked(x->c, store_hash(x->s, k, kl), k, kl, v, vl);
}

static void rcache_batch_deleted(void *state, const char *k, size_t kl)
{
    struct rcache_batch_ctx *x = state;
    if (kl <= CACHE_KEY_MAX)
        rcache_note_locked(x->c, store_hash(x->s, k, kl), k, kl, NULL, 0);
}

/* After leveldb_write of wb: ok, note every key it wrote; failed, forget
 * everything (what reached the database is unknown). */
static void rcache_batch_written(struct store *s, leveldb_writebatch_t *wb,
                                 bool ok)
{
    struct rcache_batch_ctx x = {.s = s, .c = s->rcache};

    if (x.c == NULL)
        return;
    pthread_mutex_lock(&x.c->mu);
    if (ok)
        leveldb_writebatch_iterate(wb, &x, rcache_batch_put,
                                   rcache_batch_deleted);
    else
        rcache_clear_locked(x.c);
    x.c->gen++;
    pthread_mutex_unlock(&x.c->mu);
}

void store_cache_set(struct store *s, bool on)
{
    if (s->rcache == NULL)
        return;
    pthread_mutex_lock(&s->rcache->mu);
    rcache_clear_locked(s->rcache);
    s->rcache->on = on;
    pthread_mutex_unlock(&s->rcache->mu);
}

void store_cache_stats(struct store *s, struct store_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s->rcache == NULL)
        return;
    pthread_mutex_lock(&s->rcache->mu);
    *out = s->rcache->stats;
    pthread_mutex_unlock(&s->rcache->mu);
}

/* ---- the database -------------------------------------------------------- */

/* Sets up the data directory watch (see log_may_have_switched). Without
 * one (no inotify, or its per-user limit reached) every synced write lists
 * the directory, as correct and a few syscalls dearer. */
static void watch_open(struct store *s)
{
    s->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->watch_fd < 0)
        return;
    if (inotify_add_watch(s->watch_fd, s->dir, IN_CREATE | IN_MOVED_TO) < 0) {
        close(s->watch_fd);
        s->watch_fd = -1;
    }
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
    /* Without it (out of memory) every read goes to LevelDB. */
    crypto_shorthash_keygen(s->hash_key);
    s->rcache = rcache_new();
    s->watch_fd = -1;
    s->relist = true; /* the first synced write learns the current log */
    s->dir = strdup(dir);
    if (s->dir == NULL) {
        store_close(s);
        return LG_ENOMEM;
    }

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
    watch_open(s);
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
    rcache_free(s->rcache);
    if (s->watch_fd >= 0)
        close(s->watch_fd);
    free(s->dir);
    free(s);
}

/* store_get with the key's store_hash (h), computed by the caller. */
static int store_get_hashed(struct store *s, const void *key, size_t klen,
                            uint64_t h, unsigned char **val, size_t *vlen)
{
    bool cached = s->rcache != NULL && klen <= CACHE_KEY_MAX;
    uint64_t gen = 0;
    int rv = LG_OK;
    if (cached && rcache_get(s->rcache, h, key, klen, val, vlen, &rv, &gen))
        return rv;
    char *lerr = NULL;
    size_t len = 0;
    char *v = leveldb_get(s->db, s->ropts, key, klen, &len, &lerr);
    if (lerr != NULL)
        return store_err(lerr, "get");
    if (cached)
        rcache_fill(s->rcache, h, key, klen, v, len, gen);
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

int store_get(struct store *s, const void *key, size_t klen,
              unsigned char **val, size_t *vlen)
{
    uint64_t h = 0;
    if (s->rcache != NULL && klen <= CACHE_KEY_MAX)
        h = store_hash(s, key, klen);
    return store_get_hashed(s, key, klen, h, val, vlen);
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

/* LevelDB's log is "NNNNNN.log"; 0 when name is not one. */
static unsigned long long log_number(const char *name)
{
    char *end = NULL;
    if (name[0] < '0' || name[0] > '9')
        return 0;
    unsigned long long no = strtoull(name, &end, 10);
    return end != NULL && strcmp(end, ".log") == 0 ? no : 0;
}

/* Whether a log file may have been created since the last listing: drains
 * the watch's events (a read that usually finds none). LevelDB creates its
 * next log inside a write we made, so the event is queued before that
 * write returns. Any doubt (no watch, a lost or unreadable event) says
 * yes. */
static bool log_may_have_switched(struct store *s)
{
    if (s->watch_fd < 0)
        return true;
    bool maybe = s->relist;
    _Alignas(struct inotify_event) char buf[4096];
    for (int round = 0; round < 64; round++) {
        ssize_t got = read(s->watch_fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return maybe;
        if (got <= 0)
            return true;
        for (ssize_t off = 0;
             off + (ssize_t)sizeof(struct inotify_event) <= got;) {
            const struct inotify_event *ev = (const void *)(buf + off);
            if ((ev->mask & IN_Q_OVERFLOW) != 0 ||
                (ev->len > 0 && log_number(ev->name) != 0))
                maybe = true;
            off += (ssize_t)sizeof(*ev) + ev->len;
        }
    }
    return true; /* events kept coming: list */
}

/* A synced LevelDB write syncs only the current log file, and when LevelDB
 * switches to a new log (its memtable is full) it closes the old one
 * without a sync (MakeRoomForWrite). Records written unsynced into the old
 * log just before the switch would then stay volatile, although the synced
 * write that followed them returned, until LevelDB has written that
 * memtable to a table file: a power cut in between could lose what the
 * caller already promised to peers. So after each synced write, when the
 * newest log has changed, the older ones still present are synced too (a
 * log LevelDB already deleted is in a synced table). The directory is
 * listed only when its watch saw a log file appear: listing it at every
 * synced write cost 2.7% of a node's CPU at 150 tx/s. */
static int sync_old_logs(struct store *s)
{
    if (!log_may_have_switched(s))
        return LG_OK;
    s->relist = true; /* until a listing completes */
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return LG_OK; /* no descriptor to spare: look at the next sync */
    s->log_listings++;
    unsigned long long newest = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long no = log_number(e->d_name);
        if (no > newest)
            newest = no;
    }
    if (newest == s->log_no) {
        closedir(d);
        s->relist = false;
        return LG_OK;
    }
    /* The log changed (rare): sync every older one still present. */
    rewinddir(d);
    int rv = LG_OK;
    bool again = false;
    while (rv == LG_OK && (e = readdir(d)) != NULL) {
        unsigned long long no = log_number(e->d_name);
        if (no == 0 || no == newest)
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            /* Gone: its memtable is in a synced table. Otherwise (no
             * descriptor to spare) try again at the next synced write. */
            if (errno != ENOENT)
                again = true;
            continue;
        }
        if (fsync(fd) != 0)
            rv = LG_EIO; /* as LevelDB's own failed sync */
        else
            s->old_log_syncs++;
        close(fd);
    }
    closedir(d);
    if (rv == LG_OK && !again) {
        s->log_no = newest;
        s->relist = false;
    }
    return rv;
}

int store_write(struct store *s, struct store_batch *b, bool sync)
{
    char *lerr = NULL;
    leveldb_write(s->db, sync ? s->wopts_sync : s->wopts_async, b->wb, &lerr);
    rcache_batch_written(s, b->wb, lerr == NULL);
    int rv = store_err(lerr, "write");
    if (rv == LG_OK && sync)
        rv = sync_old_logs(s);
    return rv;
}

uint64_t store_old_log_syncs(const struct store *s)
{
    return s->old_log_syncs;
}

unsigned long long store_log_number(const struct store *s)
{
    return s->log_no;
}

uint64_t store_log_listings(const struct store *s)
{
    return s->log_listings;
}

void store_unwatch(struct store *s)
{
    if (s->watch_fd >= 0)
        close(s->watch_fd);
    s->watch_fd = -1;
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

/* The overlay is an array of entries indexed by an open-addressing hash
 * table (keyed SipHash), so a block with many writes stays O(1) per
 * access. */
struct txn_entry {
    unsigned char *kv; /* the key, then the value; one allocation */
    size_t klen, vlen, cap;
    uint64_t hash; /* store_hash of the key */
    bool deleted;  /* deleted in this txn (no value) */
};

struct store_txn {
    struct store *s;
    struct txn_entry *entries;
    size_t n_entries, cap_entries;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t n_slots;  /* power of two */
    bool failed;     /* an allocation failed: commit must refuse */
};

/* Returns the slot holding k (hash h), or the empty slot where it would
 * go. */
static size_t txn_slot(const struct store_txn *t, uint64_t h, const void *k,
                       size_t kl)
{
    size_t mask = t->n_slots - 1;
    size_t i = (size_t)h & mask;
    for (size_t probes = 0; probes < t->n_slots; probes++) {
        uint32_t e = t->slots[i];
        if (e == 0)
            return i;
        const struct txn_entry *en = &t->entries[e - 1];
        if (en->hash == h && en->klen == kl && memcmp(en->kv, k, kl) == 0)
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
        const struct txn_entry *en = &t->entries[i];
        t->slots[txn_slot(t, en->hash, en->kv, en->klen)] = (uint32_t)(i + 1);
    }
    return LG_OK;
}

struct store_txn *store_txn_new(struct store *s)
{
    struct store_txn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->s = s;
    if (txn_grow(t) != LG_OK) {
        free(t);
        return NULL;
    }
    return t;
}

/* Sets en's value (v NULL: deleted), keeping its key. */
static bool txn_entry_value(struct txn_entry *en, const void *v, size_t vl)
{
    if (v == NULL) {
        en->deleted = true;
        en->vlen = 0;
        return true;
    }
    if (en->klen + vl > en->cap) {
        unsigned char *kv = realloc(en->kv, en->klen + vl);
        if (kv == NULL)
            return false;
        en->kv = kv;
        en->cap = en->klen + vl;
    }
    if (vl > 0)
        memcpy(en->kv + en->klen, v, vl);
    en->vlen = vl;
    en->deleted = false;
    return true;
}

static void txn_set(struct store_txn *t, const void *k, size_t kl,
                    const void *v, size_t vl)
{
    if (t->failed)
        return;
    uint64_t h = store_hash(t->s, k, kl);
    size_t slot = txn_slot(t, h, k, kl);
    if (t->slots[slot] != 0) {
        if (!txn_entry_value(&t->entries[t->slots[slot] - 1], v, vl))
            t->failed = true;
        return;
    }
    if (t->n_entries == t->cap_entries) {
        size_t cap = t->cap_entries ? t->cap_entries * 2 : 32;
        struct txn_entry *ne = NULL;
        /* Slots hold 32-bit indexes: a txn never grows past that. */
        if (cap < UINT32_MAX / 2)
            ne = realloc(t->entries, cap * sizeof(*ne));
        if (ne == NULL) {
            t->failed = true;
            return;
        }
        t->entries = ne;
        t->cap_entries = cap;
    }
    struct txn_entry *en = &t->entries[t->n_entries];
    size_t cap = kl + (v != NULL ? vl : 0);
    en->kv = malloc(cap > 0 ? cap : 1);
    if (en->kv == NULL) {
        t->failed = true;
        return;
    }
    if (kl > 0)
        memcpy(en->kv, k, kl);
    en->klen = kl;
    en->cap = cap;
    en->hash = h;
    (void)txn_entry_value(en, v, vl); /* fits: no allocation */
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
    uint64_t h = store_hash(t->s, k, kl);
    size_t slot = txn_slot(t, h, k, kl);
    if (t->slots[slot] == 0)
        return store_get_hashed(t->s, k, kl, h, val, vlen);
    const struct txn_entry *en = &t->entries[t->slots[slot] - 1];
    if (en->deleted)
        return LG_ENOTFOUND;
    unsigned char *copy = malloc(en->vlen + 1);
    if (copy == NULL)
        return LG_ENOMEM;
    memcpy(copy, en->kv + en->klen, en->vlen);
    copy[en->vlen] = '\0';
    *val = copy;
    *vlen = en->vlen;
    return LG_OK;
}

void store_txn_put(struct store_txn *t, const void *k, size_t kl, const void *v,
                   size_t vl)
{
    txn_set(t, k, kl, v != NULL ? v : "", vl);
}

void store_txn_delete(struct store_txn *t, const void *k, size_t kl)
{
    txn_set(t, k, kl, NULL, 0);
}

/* The commit batch is sorted by key; each entry carries its key's first 8
 * bytes as a big-endian number, so most comparisons touch no key. */
struct txn_order {
    uint64_t head; /* the key's first 8 bytes, zero-padded, big-endian */
    const struct txn_entry *en;
};

static uint64_t txn_key_head(const unsigned char *k, size_t kl)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | (i < kl ? k[i] : 0);
    return v;
}

/* LevelDB's order: bytewise, a key before the longer keys it prefixes. */
static int txn_order_cmp(const void *a, const void *b)
{
    const struct txn_order *x = a, *y = b;
    if (x->head != y->head)
        return x->head < y->head ? -1 : 1;
    size_t n = x->en->klen < y->en->klen ? x->en->klen : y->en->klen;
    int c = memcmp(x->en->kv, y->en->kv, n);
    if (c != 0)
        return c;
    return (x->en->klen > y->en->klen) - (x->en->klen < y->en->klen);
}

/* After the commit's leveldb_write: ok, every key it wrote updates its
 * cache slot; failed, the cache forgets everything. */
static void rcache_txn_written(struct store_txn *t, bool ok)
{
    struct store_cache *c = t->s->rcache;

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; ok && i < t->n_entries; i++) {
        const struct txn_entry *en = &t->entries[i];
        rcache_note_locked(c, en->hash, en->kv, en->klen,
                           en->deleted ? NULL : en->kv + en->klen, en->vlen);
    }
    if (!ok)
        rcache_clear_locked(c);
    c->gen++;
    pthread_mutex_unlock(&c->mu);
}

int store_txn_commit(struct store_txn *t, bool sync)
{
    int rv = LG_ENOMEM;
    struct txn_order *order =
        t->failed ? NULL : malloc((t->n_entries + 1) * sizeof(*order));
    if (order != NULL) {
        /* Each key is in the txn once, so the batch's order does not change
         * what it writes; in key order, each memtable insert walks the
         * skiplist nodes the previous one just brought into the cache. */
        for (size_t i = 0; i < t->n_entries; i++) {
            order[i].en = &t->entries[i];
            order[i].head = txn_key_head(t->entries[i].kv, t->entries[i].klen);
        }
        qsort(order, t->n_entries, sizeof(*order), txn_order_cmp);
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        for (size_t i = 0; i < t->n_entries; i++) {
            const struct txn_entry *en = order[i].en;
            if (!en->deleted)
                leveldb_writebatch_put(wb, (const char *)en->kv, en->klen,
                                       (const char *)en->kv + en->klen,
                                       en->vlen);
            else
                leveldb_writebatch_delete(wb, (const char *)en->kv, en->klen);
        }
        char *lerr = NULL;
        leveldb_write(t->s->db, sync ? t->s->wopts_sync : t->s->wopts_async, wb,
                      &lerr);
        rcache_txn_written(t, lerr == NULL);
        leveldb_writebatch_destroy(wb);
        rv = store_err(lerr, "txn-commit");
    }
    free(order);
    store_txn_abort(t);
    return rv;
}

void store_txn_abort(struct store_txn *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_entries; i++)
        free(t->entries[i].kv);
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
    /* Checksums on: the repair then drops a block it cannot read back
     * intact instead of keeping it (reads fail later) or copying its
     * garbage into a fresh table with valid checksums. What is dropped
     * the node fetches again from its peers. */
    leveldb_options_set_paranoid_checks(opts, 1);
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
