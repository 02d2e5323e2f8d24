/* Unit tests for node/store.c: put/get, batches, prefix iteration, the
 * transaction overlay and its commit. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "store.h"

#include <ftw.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

struct fixture {
    char dir[256];
    struct store *s;
};

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char err[256];
    if (store_open(f->dir, true, &f->s, err, sizeof(err)) != LG_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void put(struct store *s, const char *k, const char *v)
{
    struct store_batch *b = store_batch_new();
    store_batch_put(b, k, strlen(k), v, strlen(v));
    assert_int_equal(store_write(s, b, false), LG_OK);
    store_batch_free(b);
}

static void expect(struct store *s, const char *k, const char *v)
{
    unsigned char *val = NULL;
    size_t vlen = 0;
    int rv = store_get(s, k, strlen(k), &val, &vlen);
    if (v == NULL) {
        assert_int_equal(rv, LG_ENOTFOUND);
        return;
    }
    assert_int_equal(rv, LG_OK);
    assert_int_equal(vlen, strlen(v));
    assert_memory_equal(val, v, vlen);
    free(val);
}

static void test_store_put_get_delete(void **state)
{
    struct fixture *f = *state;
    expect(f->s, "m/none", NULL);
    put(f->s, "m/a", "1");
    put(f->s, "m/b", "");
    expect(f->s, "m/a", "1");
    expect(f->s, "m/b", "");
    struct store_batch *b = store_batch_new();
    store_batch_delete(b, "m/a", 3);
    store_batch_put(b, "m/c", 3, "3", 1);
    assert_int_equal(store_write(f->s, b, true), LG_OK);
    store_batch_clear(b);
    assert_int_equal(store_write(f->s, b, true), LG_OK); /* empty batch */
    store_batch_free(b);
    expect(f->s, "m/a", NULL);
    expect(f->s, "m/c", "3");
    store_batch_free(NULL);
}

static void test_store_iterate_prefix_in_order(void **state)
{
    struct fixture *f = *state;
    unsigned char key[16];
    struct store_batch *b = store_batch_new();
    /* Inserted out of order; big-endian keys come back sorted. */
    uint64_t hs[] = {300, 2, 70000, 1, 256};
    for (size_t i = 0; i < 5; i++) {
        size_t kl = store_key_u64(key, "b/", hs[i]);
        assert_int_equal(kl, 10);
        store_batch_put(b, key, kl, "x", 1);
    }
    store_batch_put(b, "a/zz", 4, "-", 1);
    store_batch_put(b, "c/00", 4, "-", 1);
    assert_int_equal(store_write(f->s, b, false), LG_OK);
    store_batch_free(b);

    uint64_t want[] = {1, 2, 256, 300, 70000};
    struct store_iter *it = store_iter_new(f->s, "b/", 2, NULL, 0);
    const unsigned char *k, *v;
    size_t kl, vl, n = 0;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        assert_true(n < 5);
        assert_int_equal(kl, 10);
        assert_int_equal(store_get_be64(k + 2), want[n]);
        n++;
    }
    assert_int_equal(n, 5);
    store_iter_free(it);

    /* From a start key inside the prefix. */
    size_t sl = store_key_u64(key, "b/", 257);
    it = store_iter_new(f->s, "b/", 2, key, sl);
    n = 0;
    while (store_iter_next(it, &k, &kl, &v, &vl))
        n++;
    assert_int_equal(n, 2);
    store_iter_free(it);

    it = store_iter_new(f->s, "q/", 2, NULL, 0);
    assert_false(store_iter_next(it, &k, &kl, &v, &vl));
    store_iter_free(it);
    store_iter_free(NULL);

    /* Backwards: the same keys, last first, and nothing of "c/" after. */
    it = store_iter_new_reverse(f->s, "b/", 2);
    n = 0;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        assert_true(n < 5);
        assert_int_equal(store_get_be64(k + 2), want[4 - n]);
        n++;
    }
    assert_int_equal(n, 5);
    store_iter_free(it);
    it = store_iter_new_reverse(f->s, "q/", 2);
    assert_false(store_iter_next(it, &k, &kl, &v, &vl));
    store_iter_free(it);
    /* A prefix ending in 0xff, and one at the very end of the keys. */
    b = store_batch_new();
    store_batch_put(b, "\x7f\xff\x01", 3, "1", 1);
    store_batch_put(b, "\x7f\xff\x02", 3, "2", 1);
    store_batch_put(b, "\x80", 1, "-", 1);
    store_batch_put(b, "\xff\xff\x05", 3, "5", 1);
    assert_int_equal(store_write(f->s, b, false), LG_OK);
    store_batch_free(b);
    it = store_iter_new_reverse(f->s, "\x7f\xff", 2);
    assert_true(store_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(v[0], '2');
    assert_true(store_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(v[0], '1');
    assert_false(store_iter_next(it, &k, &kl, &v, &vl));
    store_iter_free(it);
    it = store_iter_new_reverse(f->s, "\xff\xff", 2);
    assert_true(store_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(v[0], '5');
    assert_false(store_iter_next(it, &k, &kl, &v, &vl));
    store_iter_free(it);
}

static void test_store_txn_overlay(void **state)
{
    struct fixture *f = *state;
    put(f->s, "r/k1", "committed");
    put(f->s, "r/k2", "doomed");
    struct store_txn *t = store_txn_new(f->s);
    assert_non_null(t);
    unsigned char *val;
    size_t vlen;

    /* Reads fall through to committed state. */
    assert_int_equal(store_txn_get(t, "r/k1", 4, &val, &vlen), LG_OK);
    assert_memory_equal(val, "committed", vlen);
    free(val);

    /* Own writes and deletes win over committed state. */
    store_txn_put(t, "r/k1", 4, "changed", 7);
    store_txn_delete(t, "r/k2", 4);
    store_txn_put(t, "r/k3", 4, "new", 3);
    assert_int_equal(store_txn_get(t, "r/k1", 4, &val, &vlen), LG_OK);
    assert_int_equal(vlen, 7);
    assert_memory_equal(val, "changed", 7);
    free(val);
    assert_int_equal(store_txn_get(t, "r/k2", 4, &val, &vlen), LG_ENOTFOUND);
    /* Put after delete, delete after put. */
    store_txn_put(t, "r/k2", 4, "back", 4);
    assert_int_equal(store_txn_get(t, "r/k2", 4, &val, &vlen), LG_OK);
    assert_memory_equal(val, "back", 4);
    free(val);
    store_txn_delete(t, "r/k3", 4);
    assert_int_equal(store_txn_get(t, "r/k3", 4, &val, &vlen), LG_ENOTFOUND);

    /* Nothing reached the store yet. */
    expect(f->s, "r/k1", "committed");
    expect(f->s, "r/k2", "doomed");
    assert_int_equal(store_txn_commit(t, true), LG_OK);
    expect(f->s, "r/k1", "changed");
    expect(f->s, "r/k2", "back");
    expect(f->s, "r/k3", NULL);
}

static void test_store_txn_abort_discards(void **state)
{
    struct fixture *f = *state;
    struct store_txn *t = store_txn_new(f->s);
    store_txn_put(t, "r/gone", 6, "v", 1);
    store_txn_abort(t);
    expect(f->s, "r/gone", NULL);
    store_txn_abort(NULL);
}

static void test_store_txn_many_keys(void **state)
{
    struct fixture *f = *state;
    struct store_txn *t = store_txn_new(f->s);
    unsigned char key[16], vbuf[8];
    /* Enough to grow the overlay's table several times. */
    for (uint64_t i = 0; i < 5000; i++) {
        size_t kl = store_key_u64(key, "x/", i);
        store_put_be64(vbuf, i * 3);
        store_txn_put(t, key, kl, vbuf, 8);
    }
    for (uint64_t i = 0; i < 5000; i += 2) {
        size_t kl = store_key_u64(key, "x/", i);
        store_txn_delete(t, key, kl);
    }
    for (uint64_t i = 0; i < 5000; i++) {
        size_t kl = store_key_u64(key, "x/", i);
        unsigned char *val;
        size_t vlen;
        int rv = store_txn_get(t, key, kl, &val, &vlen);
        if (i % 2 == 0) {
            assert_int_equal(rv, LG_ENOTFOUND);
        } else {
            assert_int_equal(rv, LG_OK);
            assert_int_equal(store_get_be64(val), i * 3);
            free(val);
        }
    }
    assert_int_equal(store_txn_commit(t, false), LG_OK);
    struct store_iter *it = store_iter_new(f->s, "x/", 2, NULL, 0);
    const unsigned char *k, *v;
    size_t kl, vl, n = 0;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        assert_int_equal(store_get_be64(k + 2) % 2, 1);
        n++;
    }
    store_iter_free(it);
    assert_int_equal(n, 2500);
}

/* ---- the read cache ------------------------------------------------------ */

static uint64_t cache_hits(struct store *s)
{
    struct store_cache_stats st;
    store_cache_stats(s, &st);
    return st.hits;
}

static void test_store_cache_serves_repeated_reads(void **state)
{
    struct fixture *f = *state;
    put(f->s, "r/n/a", "1");
    uint64_t h0 = cache_hits(f->s);
    expect(f->s, "r/n/a", "1"); /* fills */
    expect(f->s, "r/n/a", "1");
    expect(f->s, "r/none", NULL); /* absence is cached too */
    expect(f->s, "r/none", NULL);
    assert_int_equal(cache_hits(f->s), h0 + 2);
    /* Through a txn, a key it has not written is read the same way. */
    struct store_txn *t = store_txn_new(f->s);
    unsigned char *val;
    size_t vlen;
    assert_int_equal(store_txn_get(t, "r/n/a", 5, &val, &vlen), LG_OK);
    assert_int_equal(vlen, 1);
    assert_int_equal(val[0], '1');
    assert_int_equal(val[1], '\0'); /* NUL-terminated like LevelDB reads */
    free(val);
    assert_int_equal(cache_hits(f->s), h0 + 3);
    store_txn_abort(t);
}

static void test_store_cache_follows_txn_commit(void **state)
{
    struct fixture *f = *state;
    put(f->s, "r/n/a", "1");
    put(f->s, "r/n/b", "doomed");
    expect(f->s, "r/n/a", "1");
    expect(f->s, "r/n/b", "doomed");
    expect(f->s, "r/n/c", NULL);
    struct store_txn *t = store_txn_new(f->s);
    store_txn_put(t, "r/n/a", 5, "22", 2);
    store_txn_delete(t, "r/n/b", 5);
    store_txn_put(t, "r/n/c", 5, "new", 3);
    /* Until the commit, readers of the store see the committed values. */
    expect(f->s, "r/n/a", "1");
    expect(f->s, "r/n/b", "doomed");
    expect(f->s, "r/n/c", NULL);
    assert_int_equal(store_txn_commit(t, false), LG_OK);
    uint64_t h0 = cache_hits(f->s);
    expect(f->s, "r/n/a", "22"); /* updated in place */
    expect(f->s, "r/n/b", NULL);
    expect(f->s, "r/n/c", "new");
    assert_true(cache_hits(f->s) >= h0 + 2);
    expect(f->s, "r/n/c", "new");
}

static void test_store_cache_unchanged_by_abort(void **state)
{
    struct fixture *f = *state;
    put(f->s, "r/n/a", "1");
    expect(f->s, "r/n/a", "1");
    expect(f->s, "r/n/z", NULL);
    struct store_txn *t = store_txn_new(f->s);
    store_txn_put(t, "r/n/a", 5, "2", 1);
    store_txn_put(t, "r/n/z", 5, "3", 1);
    unsigned char *val;
    size_t vlen;
    assert_int_equal(store_txn_get(t, "r/n/a", 5, &val, &vlen), LG_OK);
    assert_int_equal(val[0], '2');
    free(val);
    store_txn_abort(t);
    uint64_t h0 = cache_hits(f->s);
    expect(f->s, "r/n/a", "1");
    expect(f->s, "r/n/z", NULL);
    assert_int_equal(cache_hits(f->s), h0 + 2);
    /* A new txn reads the committed values again. */
    t = store_txn_new(f->s);
    assert_int_equal(store_txn_get(t, "r/n/a", 5, &val, &vlen), LG_OK);
    assert_int_equal(val[0], '1');
    free(val);
    assert_int_equal(store_txn_get(t, "r/n/z", 5, &val, &vlen), LG_ENOTFOUND);
    store_txn_abort(t);
}

static void test_store_cache_follows_batch_writes(void **state)
{
    struct fixture *f = *state;
    put(f->s, "p/a", "1");
    expect(f->s, "p/a", "1");
    expect(f->s, "p/b", NULL);
    struct store_batch *b = store_batch_new();
    store_batch_delete(b, "p/a", 3);
    store_batch_put(b, "p/b", 3, "2", 1);
    assert_int_equal(store_write(f->s, b, false), LG_OK);
    store_batch_free(b);
    expect(f->s, "p/a", NULL);
    expect(f->s, "p/b", "2");
    put(f->s, "p/b", "3");
    expect(f->s, "p/b", "3");
}

static void test_store_cache_large_values(void **state)
{
    struct fixture *f = *state;
    char big[2000], small[] = "s";
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* Too large to cache, then small (cached), then large again: each read
     * gives what was written last. */
    put(f->s, "b/1", big);
    expect(f->s, "b/1", big);
    expect(f->s, "b/1", big);
    put(f->s, "b/1", small);
    expect(f->s, "b/1", small);
    expect(f->s, "b/1", small);
    struct store_txn *t = store_txn_new(f->s);
    store_txn_put(t, "b/1", 3, big, strlen(big));
    assert_int_equal(store_txn_commit(t, false), LG_OK);
    expect(f->s, "b/1", big);
    /* Keys too long to cache are still read and written. */
    char key[300];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    put(f->s, key, "1");
    expect(f->s, key, "1");
    put(f->s, key, "2");
    expect(f->s, key, "2");
}

/* A seeded random mix of txn puts, deletes, commits, aborts, batch writes
 * and reads on two stores, one with the cache off: every read agrees with
 * a model of the committed state, and so does every key at the end. */
#define MIX_KEYS 40

static void mix_read(struct store *s, struct store_txn *t, const char *k,
                     const char *want)
{
    unsigned char *val = NULL;
    size_t vlen = 0;
    int rv = t != NULL ? store_txn_get(t, k, strlen(k), &val, &vlen)
                       : store_get(s, k, strlen(k), &val, &vlen);
    if (want == NULL) {
        assert_int_equal(rv, LG_ENOTFOUND);
        return;
    }
    assert_int_equal(rv, LG_OK);
    assert_int_equal(vlen, strlen(want));
    assert_memory_equal(val, want, vlen);
    free(val);
}

static void test_store_cache_on_off_same_results(void **state)
{
    struct fixture *f = *state, g;
    char err[256];
    snprintf(g.dir, sizeof(g.dir), "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(g.dir));
    assert_int_equal(store_open(g.dir, true, &g.s, err, sizeof(err)), LG_OK);
    store_cache_set(g.s, false);
    struct store *ss[2] = {f->s, g.s};
    static char committed[MIX_KEYS][32], pending[MIX_KEYS][32];
    bool has[MIX_KEYS] = {false}, phas[MIX_KEYS];
    uint32_t seed = 12345;
    for (int round = 0; round < 300; round++) {
        struct store_txn *t[2] = {store_txn_new(ss[0]), store_txn_new(ss[1])};
        memcpy(pending, committed, sizeof(pending));
        memcpy(phas, has, sizeof(phas));
        for (int op = 0; op < 20; op++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 8) % 100, i = (seed >> 16) % MIX_KEYS;
            char k[16];
            snprintf(k, sizeof(k), "r/k%u", i);
            for (int w = 0; w < 2; w++) {
                if (r < 40) {
                    mix_read(ss[w], t[w], k, phas[i] ? pending[i] : NULL);
                    mix_read(ss[w], NULL, k, has[i] ? committed[i] : NULL);
                } else if (r < 75) {
                    char v[32];
                    snprintf(v, sizeof(v), "v%d.%d", round, op);
                    store_txn_put(t[w], k, strlen(k), v, strlen(v));
                    if (w == 1) {
                        snprintf(pending[i], sizeof(pending[i]), "%s", v);
                        phas[i] = true;
                    }
                } else {
                    store_txn_delete(t[w], k, strlen(k));
                    if (w == 1)
                        phas[i] = false;
                }
            }
        }
        seed = seed * 1103515245u + 12345u;
        unsigned end = (seed >> 8) % 10;
        for (int w = 0; w < 2; w++) {
            if (end < 3) {
                store_txn_abort(t[w]);
            } else {
                assert_int_equal(store_txn_commit(t[w], false), LG_OK);
            }
        }
        if (end >= 3) {
            memcpy(committed, pending, sizeof(committed));
            memcpy(has, phas, sizeof(has));
        }
        if (end == 9) { /* a batch write beside the txns */
            unsigned i = (seed >> 16) % MIX_KEYS;
            char k[16];
            snprintf(k, sizeof(k), "r/k%u", i);
            for (int w = 0; w < 2; w++) {
                struct store_batch *b = store_batch_new();
                if (has[i])
                    store_batch_delete(b, k, strlen(k));
                else
                    store_batch_put(b, k, strlen(k), "batch", 5);
                assert_int_equal(store_write(ss[w], b, false), LG_OK);
                store_batch_free(b);
            }
            snprintf(committed[i], sizeof(committed[i]), "batch");
            has[i] = !has[i];
        }
    }
    for (unsigned i = 0; i < MIX_KEYS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "r/k%u", i);
        for (int w = 0; w < 2; w++)
            mix_read(ss[w], NULL, k, has[i] ? committed[i] : NULL);
    }
    assert_true(cache_hits(f->s) > 0);
    assert_int_equal(cache_hits(g.s), 0);
    store_close(g.s);
    nftw(g.dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_store_reopen_and_repair(void **state)
{
    struct fixture *f = *state;
    put(f->s, "m/chain", "abc");
    store_close(f->s);
    f->s = NULL;
    char err[256];
    assert_int_equal(store_repair(f->dir, err, sizeof(err)), LG_OK);
    assert_int_equal(store_open(f->dir, false, &f->s, err, sizeof(err)), LG_OK);
    expect(f->s, "m/chain", "abc");

    struct store *none = NULL;
    err[0] = '\0';
    assert_int_equal(store_open("/tmp/test_store-does-not-exist/x", false,
                                &none, err, sizeof(err)),
                     LG_EIO);
    assert_null(none);
    assert_true(strlen(err) > 0);
}

/* Overwrites 512 bytes in the middle of every table file of dir with
 * 0xC7, as tests/integration/chaos_disk.sh does. */
static void corrupt_tables(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".ldb") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *fp = fopen(path, "r+b");
        assert_non_null(fp);
        assert_int_equal(fseek(fp, 0, SEEK_END), 0);
        long size = ftell(fp);
        assert_true(size > 4096);
        assert_int_equal(fseek(fp, size / 2 - 256, SEEK_SET), 0);
        for (int i = 0; i < 512; i++)
            fputc(0xC7, fp);
        fclose(fp);
        n++;
    }
    closedir(d);
    assert_true(n > 0);
}

/* A repair drops what it cannot read back intact: after garbage lands in
 * a table, every key reads as it was written or not at all, never
 * altered (a salvaged half-overwritten vote would be a signature that
 * does not verify, served as the node's own). */
static void test_store_repair_drops_corrupted_blocks(void **state)
{
    struct fixture *f = *state;
    enum { KEYS = 2000 };
    char key[32], val[128];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "r/%05d", i);
        memset(val, 'a' + i % 26, sizeof(val) - 1);
        val[sizeof(val) - 1] = '\0';
        put(f->s, key, val);
    }
    /* Reopening writes the log into a table. */
    char err[256];
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->dir, false, &f->s, err, sizeof(err)), LG_OK);
    store_close(f->s);
    f->s = NULL;
    corrupt_tables(f->dir);
    assert_int_equal(store_repair(f->dir, err, sizeof(err)), LG_OK);
    assert_int_equal(store_open(f->dir, false, &f->s, err, sizeof(err)), LG_OK);
    int intact = 0, gone = 0;
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "r/%05d", i);
        memset(val, 'a' + i % 26, sizeof(val) - 1);
        val[sizeof(val) - 1] = '\0';
        unsigned char *v = NULL;
        size_t vl = 0;
        int rv = store_get(f->s, key, strlen(key), &v, &vl);
        if (rv == LG_ENOTFOUND) {
            gone++;
            continue;
        }
        assert_int_equal(rv, LG_OK);
        assert_int_equal(vl, strlen(val));
        assert_memory_equal(v, val, vl);
        free(v);
        intact++;
    }
    assert_true(gone > 0);   /* the damaged block went */
    assert_true(intact > 0); /* the rest stayed */
}

static void sync_now(struct store *s)
{
    struct store_batch *b = store_batch_new();
    assert_int_equal(store_write(s, b, true), LG_OK);
    store_batch_free(b);
}

/* The newest "NNNNNN.log" in dir (LevelDB's write-ahead log). */
static unsigned long long newest_log(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    unsigned long long newest = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end = NULL;
        unsigned long long no = strtoull(e->d_name, &end, 10);
        if (end != e->d_name && strcmp(end, ".log") == 0 && no > newest)
            newest = no;
    }
    closedir(d);
    return newest;
}

/* LevelDB closes an old log without syncing it when its memtable fills,
 * so a synced write also syncs the older logs still present. */
static void test_store_sync_covers_old_logs(void **state)
{
    struct fixture *f = *state;
    unsigned long long cur = newest_log(f->dir);
    assert_true(cur > 1);
    /* An older log, as LevelDB leaves one while it flushes a memtable. */
    char path[sizeof(f->dir) + 32];
    snprintf(path, sizeof(path), "%s/%06llu.log", f->dir, cur - 1);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("unsynced", fp);
    fclose(fp);
    put(f->s, "k/0", "v");
    sync_now(f->s);
    assert_int_equal(store_old_log_syncs(f->s), 1);
    assert_int_equal(store_log_number(f->s), cur);
    /* Nothing new: no second sync of it, and no listing either (the
     * directory watch saw no log appear). */
    uint64_t listed = store_log_listings(f->s);
    sync_now(f->s);
    sync_now(f->s);
    assert_int_equal(store_old_log_syncs(f->s), 1);
    assert_int_equal(store_log_listings(f->s), listed);
    remove(path);

    /* Past the 32 MiB memtable, LevelDB switches to a new log; the next
     * synced write sees it (the old one may already be flushed and gone). */
    size_t big = 1u << 20;
    char *val = malloc(big);
    assert_non_null(val);
    memset(val, 'x', big);
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "b/%02d", i);
        struct store_batch *b = store_batch_new();
        store_batch_put(b, key, strlen(key), val, big);
        assert_int_equal(store_write(f->s, b, false), LG_OK);
        store_batch_free(b);
    }
    free(val);
    sync_now(f->s);
    assert_true(store_log_number(f->s) > cur);
    assert_int_equal(store_log_number(f->s), newest_log(f->dir));
    assert_true(store_log_listings(f->s) > listed);
    expect(f->s, "k/0", "v");
}

/* Without the directory watch (no inotify), every synced write lists the
 * directory, and an older log appearing later is still synced. */
static void test_store_sync_old_logs_without_watch(void **state)
{
    struct fixture *f = *state;
    store_unwatch(f->s);
    put(f->s, "k/0", "v");
    sync_now(f->s);
    uint64_t listed = store_log_listings(f->s);
    sync_now(f->s);
    sync_now(f->s);
    assert_int_equal(store_log_listings(f->s), listed + 2);
    assert_int_equal(store_old_log_syncs(f->s), 0);

    /* A newer log (as after a switch) makes the current one old. */
    unsigned long long cur = newest_log(f->dir);
    char path[sizeof(f->dir) + 32];
    snprintf(path, sizeof(path), "%s/%06llu.log", f->dir, cur + 5);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    sync_now(f->s);
    assert_int_equal(store_old_log_syncs(f->s), 1);
    assert_int_equal(store_log_number(f->s), cur + 5);
    remove(path);
}

/* With the watch, a log file created between synced writes is noticed. */
static void test_store_watch_sees_new_log(void **state)
{
    struct fixture *f = *state;
    put(f->s, "k/0", "v");
    sync_now(f->s);
    uint64_t listed = store_log_listings(f->s);
    unsigned long long cur = store_log_number(f->s);
    assert_true(cur > 0);
    /* A file that is not a log changes nothing. */
    char path[sizeof(f->dir) + 32];
    snprintf(path, sizeof(path), "%s/%06llu.ldb", f->dir, cur + 3);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    remove(path);
    sync_now(f->s);
    assert_int_equal(store_log_listings(f->s), listed);
    snprintf(path, sizeof(path), "%s/%06llu.log", f->dir, cur + 4);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    sync_now(f->s);
    assert_int_equal(store_log_listings(f->s), listed + 1);
    assert_int_equal(store_log_number(f->s), cur + 4);
    assert_int_equal(store_old_log_syncs(f->s), 1); /* the real one */
    remove(path);
}

static void test_store_be64_helpers(void **state)
{
    (void)state;
    unsigned char b[16];
    store_put_be64(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_int_equal(store_get_be64(b), 0x0102030405060708ull);
    assert_int_equal(store_key_u64(b, "l/", UINT64_MAX), 10);
    assert_int_equal(store_get_be64(b + 2), UINT64_MAX);
    assert_int_equal(store_key_u64(b, "12345678", 1), 16);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_put_get_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_iterate_prefix_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_txn_overlay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_txn_abort_discards, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_txn_many_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_cache_serves_repeated_reads,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cache_follows_txn_commit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cache_unchanged_by_abort,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cache_follows_batch_writes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cache_large_values, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_cache_on_off_same_results,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_reopen_and_repair, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_store_repair_drops_corrupted_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_sync_covers_old_logs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_sync_old_logs_without_watch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_watch_sees_new_log, setup,
                                        teardown),
        cmocka_unit_test(test_store_be64_helpers),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
