/*
 * store.h - LevelDB behind our own interface (the C API cannot take a
 * custom Env, so tests that fail storage go through this layer).
 *
 * Key space (fixed prefixes; integers are 8-byte big-endian so keys sort):
 *   "m/..."  node metadata (chain id, last height, log frontier)
 *   "b/" H   block H (Block bytes)        "c/" H  certificate of block H
 *   "t/" ID  tx index: tx id -> location  "l/" I  log leaf hash I
 *   "n/" L I interior log node (level, index) of the RFC 6962 log
 *   "p/..."  consensus records the core asked to persist
 *   "r/..."  registry state (node/registry.c owns it)
 *   "x/..."  registry query indexes (node/registry.c owns it)
 *
 * Errors: LevelDB's errptr becomes LG_EIO plus a log line.
 */
#ifndef STORE_H
#define STORE_H

#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_batch;
struct store_iter;

/* Opens (create = make it if missing) the LevelDB at dir. */
int store_open(const char *dir, bool create, struct store **out, char *err,
               size_t err_len) LG_MUST_CHECK;
void store_close(struct store *s); /* accepts NULL */

/* *val is malloc'd (free with free()); LG_ENOTFOUND when absent. */
int store_get(struct store *s, const void *key, size_t klen,
              unsigned char **val, size_t *vlen) LG_MUST_CHECK;

struct store_batch *store_batch_new(void);
void store_batch_put(struct store_batch *b, const void *k, size_t kl,
                     const void *v, size_t vl);
void store_batch_delete(struct store_batch *b, const void *k, size_t kl);
void store_batch_clear(struct store_batch *b);
void store_batch_free(struct store_batch *b); /* accepts NULL */
/* sync = true: durable before return (group commit: one call per block),
 * and so is every earlier unsynced write, also across a LevelDB log
 * switch (see sync_old_logs). */
int store_write(struct store *s, struct store_batch *b,
                bool sync) LG_MUST_CHECK;
/* For tests: older log files synced after a log switch since open, the
 * newest log number seen at the last synced write, and how often a synced
 * write listed the data directory; store_unwatch drops the directory
 * watch, as when inotify is unavailable (every synced write lists). */
uint64_t store_old_log_syncs(const struct store *s);
unsigned long long store_log_number(const struct store *s);
uint64_t store_log_listings(const struct store *s);
void store_unwatch(struct store *s);

/* Iterates keys starting with prefix, in order, from `start` (NULL: the
 * prefix itself). Pointers are valid until the next call. */
struct store_iter *store_iter_new(struct store *s, const void *prefix,
                                  size_t plen, const void *start, size_t slen);
/* The same keys, last first. */
struct store_iter *store_iter_new_reverse(struct store *s, const void *prefix,
                                          size_t plen);
bool store_iter_next(struct store_iter *it, const unsigned char **k, size_t *kl,
                     const unsigned char **v, size_t *vl);
void store_iter_free(struct store_iter *it); /* accepts NULL */

/* A transaction over the store for executing one block: reads see this
 * txn's own writes first (an in-memory overlay), then the committed state;
 * nothing reaches disk until store_txn_commit. Prefix iteration
 * (store_iter_*) sees committed state only. */
struct store_txn;
struct store_txn *store_txn_new(struct store *s);
int store_txn_get(struct store_txn *t, const void *k, size_t kl,
                  unsigned char **val, size_t *vlen) LG_MUST_CHECK;
void store_txn_put(struct store_txn *t, const void *k, size_t kl, const void *v,
                   size_t vl);
void store_txn_delete(struct store_txn *t, const void *k, size_t kl);
/* Writes everything in one batch (synced when sync) and frees the txn. */
int store_txn_commit(struct store_txn *t, bool sync) LG_MUST_CHECK;
void store_txn_abort(struct store_txn *t); /* frees; accepts NULL */

/* Fixed-width key helpers: prefix (NUL-free, up to 8 bytes) + u64 BE. */
size_t store_key_u64(unsigned char *out, const char *prefix, uint64_t v);
uint64_t store_get_be64(const unsigned char *p);
void store_put_be64(unsigned char *p, uint64_t v);

/* Reads go through a bounded cache of committed state that every write
 * through this store keeps current (store.c); it changes no result.
 * store_cache_set turns it off (and empties it) or back on: for tests that
 * compare state with and without it. Counters since open, for tests. */
struct store_cache_stats {
    uint64_t hits, misses;
};
void store_cache_set(struct store *s, bool on);
void store_cache_stats(struct store *s, struct store_cache_stats *out);

/* leveldb_repair_db, for the operator's --repair. */
int store_repair(const char *dir, char *err, size_t err_len) LG_MUST_CHECK;

#endif /* STORE_H */
