/* Unit tests for node/store.c: put/get, batches, prefix iteration, the
 * transaction overlay and its commit. */
/* cmocka.h needs these headers first. */
// clang-format off
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
        cmocka_unit_test_setup_teardown(test_store_reopen_and_repair, setup,
                                        teardown),
        cmocka_unit_test(test_store_be64_helpers),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
