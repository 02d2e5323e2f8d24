/* Unit tests for node/merkle.c: every transparency-dev vector, plus proofs
 * generated for every index and size pair up to 70 leaves. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "merkle.h"

#include <ftw.h>
#include <jansson.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#define GEN_MAX 70

static char vectors_dir[1024];

static bool find_vectors(void)
{
    const char *env = getenv("TRIALCHAIN_SHARED");
    char cand[3][1024];
    int n = 0;
    if (env != NULL)
        snprintf(cand[n++], sizeof(cand[0]), "%s/merkle-vectors", env);
    snprintf(cand[n++], sizeof(cand[0]), "../shared/merkle-vectors");
    snprintf(cand[n++], sizeof(cand[0]), "/work/shared/merkle-vectors");
    for (int i = 0; i < n; i++) {
        char probe[1100];
        struct stat st;
        snprintf(probe, sizeof(probe),
                 "%s/transparency-dev-merkle/testdata/inclusion", cand[i]);
        if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(vectors_dir, sizeof(vectors_dir),
                     "%s/transparency-dev-merkle/testdata", cand[i]);
            return true;
        }
    }
    return false;
}

/* Decodes base64 into out. Some vectors use placeholder roots shorter than
 * 32 bytes ("don't care"); they are zero-padded, which keeps equal strings
 * equal and, for real 32-byte hashes, changes nothing. Longer is an error. */
static bool b64_bytes(json_t *v, uint8_t out[32], size_t *len)
{
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    uint8_t buf[64];
    if (sodium_base642bin(buf, sizeof(buf), s, strlen(s), NULL, len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        *len > 32)
        return false;
    memset(out, 0, 32);
    memcpy(out, buf, *len);
    return true;
}

static bool b64_root(json_t *v, uint8_t out[32])
{
    size_t len;
    return b64_bytes(v, out, &len);
}

/* A leaf hash or proof element: exactly 32 bytes. */
static bool b64_hash(json_t *v, uint8_t out[32])
{
    size_t len;
    return b64_bytes(v, out, &len) && len == 32;
}

/* Sizes and indexes are uint64, beyond jansson's long long: the files are
 * read with integers as doubles. Every vector value is either below 2^53
 * (exact) or 2^64-1, which rounds up to 2^64 and saturates back. */
static uint64_t json_u64(json_t *v)
{
    double d = json_number_value(v);
    if (d <= 0)
        return 0;
    if (d >= 18446744073709551615.0)
        return UINT64_MAX;
    return (uint64_t)d;
}

/* Proof array (or null) into path; false on a malformed element. */
static bool b64_path(json_t *arr, uint8_t (*path)[32], size_t *n)
{
    *n = 0;
    if (arr == NULL || json_is_null(arr))
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > MERKLE_MAX_PATH)
        return false;
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (!b64_hash(json_array_get(arr, i), path[i]))
            return false;
    *n = json_array_size(arr);
    return true;
}

static int n_inclusion, n_consistency, n_failures;

static bool run_inclusion(json_t *o)
{
    uint8_t leaf[32], root[32], path[MERKLE_MAX_PATH][32];
    size_t np;
    uint64_t idx = json_u64(json_object_get(o, "leafIdx"));
    uint64_t size = json_u64(json_object_get(o, "treeSize"));
    if (!b64_hash(json_object_get(o, "leafHash"), leaf) ||
        !b64_root(json_object_get(o, "root"), root) ||
        !b64_path(json_object_get(o, "proof"), path, &np))
        return false;
    return merkle_verify_inclusion(leaf, idx, size, (const uint8_t(*)[32])path,
                                   np, root);
}

static bool run_consistency(json_t *o)
{
    uint8_t r1[32], r2[32], path[MERKLE_MAX_PATH][32];
    size_t np;
    uint64_t s1 = json_u64(json_object_get(o, "size1"));
    uint64_t s2 = json_u64(json_object_get(o, "size2"));
    if (!b64_root(json_object_get(o, "root1"), r1) ||
        !b64_root(json_object_get(o, "root2"), r2) ||
        !b64_path(json_object_get(o, "proof"), path, &np))
        return false;
    return merkle_verify_consistency(s1, s2, r1, r2, (const uint8_t(*)[32])path,
                                     np);
}

static int vector_cb(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t len = strlen(path);
    if (flag != FTW_F || len < 5 || strcmp(path + len - 5, ".json") != 0)
        return 0;
    json_error_t jerr;
    json_t *o = json_load_file(
        path, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (o == NULL) {
        print_error("cannot parse %s: %s\n", path, jerr.text);
        n_failures++;
        return 0;
    }
    bool want_err = json_is_true(json_object_get(o, "wantErr"));
    bool ok;
    if (strstr(path, "/inclusion/") != NULL) {
        ok = run_inclusion(o);
        n_inclusion++;
    } else {
        ok = run_consistency(o);
        n_consistency++;
    }
    if (ok == want_err) {
        print_error("%s: verified=%d but wantErr=%d\n", path, ok, want_err);
        n_failures++;
    }
    json_decref(o);
    return 0;
}

static void test_merkle_transparency_vectors(void **state)
{
    (void)state;
    if (!find_vectors()) {
        print_error("merkle vectors not found (set TRIALCHAIN_SHARED)\n");
        fail();
    }
    char dir[1200];
    n_inclusion = n_consistency = n_failures = 0;
    snprintf(dir, sizeof(dir), "%s/inclusion", vectors_dir);
    assert_int_equal(nftw(dir, vector_cb, 16, FTW_PHYS), 0);
    snprintf(dir, sizeof(dir), "%s/consistency", vectors_dir);
    assert_int_equal(nftw(dir, vector_cb, 16, FTW_PHYS), 0);
    print_message("merkle vectors: %d inclusion, %d consistency\n", n_inclusion,
                  n_consistency);
    assert_int_equal(n_failures, 0);
    assert_int_equal(n_inclusion + n_consistency, 196);
}

static uint8_t leaves[GEN_MAX][32];

static int setup_leaves(void **state)
{
    (void)state;
    for (int i = 0; i < GEN_MAX; i++) {
        uint8_t entry[4] = {(uint8_t)i, 0xab, (uint8_t)(i * 7), 1};
        merkle_leaf_hash(entry, sizeof(entry), leaves[i]);
    }
    return 0;
}

static void test_merkle_root_known_values(void **state)
{
    (void)state;
    uint8_t out[32], want[32];
    /* Empty tree: SHA-256 of the empty string. */
    merkle_root(NULL, 0, out);
    crypto_hash_sha256(want, NULL, 0);
    assert_memory_equal(out, want, 32);
    /* RFC 6962 leaf hash of the empty entry. */
    merkle_leaf_hash("", 0, out);
    char hex[65];
    sodium_bin2hex(hex, sizeof(hex), out, 32);
    assert_string_equal(hex, "6e340b9cffb37a989ca544e6bb780a2c"
                             "78901d3fb33738768511a30617afa01d");
    /* One leaf: the root is the leaf hash. */
    merkle_root((const uint8_t(*)[32])leaves, 1, out);
    assert_memory_equal(out, leaves[0], 32);
    /* Two leaves: node hash. */
    merkle_node_hash(leaves[0], leaves[1], want);
    merkle_root((const uint8_t(*)[32])leaves, 2, out);
    assert_memory_equal(out, want, 32);
}

static void test_merkle_log_matches_root(void **state)
{
    (void)state;
    struct merkle_log log;
    merkle_log_init(&log);
    uint8_t a[32], b[32];
    merkle_log_root(&log, a);
    merkle_root(NULL, 0, b);
    assert_memory_equal(a, b, 32);
    for (uint64_t n = 1; n <= GEN_MAX; n++) {
        merkle_log_append(&log, leaves[n - 1]);
        assert_int_equal(log.size, n);
        merkle_log_root(&log, a);
        merkle_root((const uint8_t(*)[32])leaves, n, b);
        assert_memory_equal(a, b, 32);
    }
}

static void test_merkle_inclusion_generated(void **state)
{
    (void)state;
    uint8_t path[MERKLE_MAX_PATH][32], root[32], bad[32];
    size_t np;
    for (uint64_t n = 1; n <= GEN_MAX; n++) {
        merkle_root((const uint8_t(*)[32])leaves, n, root);
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(merkle_inclusion_proof(
                                 (const uint8_t(*)[32])leaves, n, i, path, &np),
                             LG_OK);
            const uint8_t(*p)[32] = (const uint8_t(*)[32])path;
            assert_true(merkle_verify_inclusion(leaves[i], i, n, p, np, root));
            /* Wrong index, wrong leaf, missing, flipped or extra elements fail
             * (a wrong size may verify: sizes come from certified
             * statements, never from the proof). */
            assert_false(
                merkle_verify_inclusion(leaves[i], i + 1, n, p, np, root));
            uint8_t leaf[32];
            memcpy(leaf, leaves[i], 32);
            leaf[0] ^= 1;
            assert_false(merkle_verify_inclusion(leaf, i, n, p, np, root));
            if (np > 0) {
                assert_false(
                    merkle_verify_inclusion(leaves[i], i, n, p, np - 1, root));
                memcpy(bad, path[np - 1], 32);
                path[np - 1][5] ^= 0x10;
                assert_false(
                    merkle_verify_inclusion(leaves[i], i, n, p, np, root));
                memcpy(path[np - 1], bad, 32);
            }
            memcpy(path[np], leaves[0], 32);
            assert_false(
                merkle_verify_inclusion(leaves[i], i, n, p, np + 1, root));
        }
        assert_int_equal(merkle_inclusion_proof((const uint8_t(*)[32])leaves, n,
                                                n, path, &np),
                         LG_EINVAL);
    }
}

static void test_merkle_consistency_generated(void **state)
{
    (void)state;
    uint8_t path[MERKLE_MAX_PATH][32], r1[32], r2[32];
    size_t np;
    for (uint64_t n2 = 1; n2 <= GEN_MAX; n2++) {
        merkle_root((const uint8_t(*)[32])leaves, n2, r2);
        for (uint64_t n1 = 1; n1 <= n2; n1++) {
            merkle_root((const uint8_t(*)[32])leaves, n1, r1);
            assert_int_equal(
                merkle_consistency_proof((const uint8_t(*)[32])leaves, n1, n2,
                                         path, &np),
                LG_OK);
            const uint8_t(*p)[32] = (const uint8_t(*)[32])path;
            assert_true(merkle_verify_consistency(n1, n2, r1, r2, p, np));
            if (n1 == n2) {
                assert_int_equal(np, 0);
                continue;
            }
            assert_false(merkle_verify_consistency(n1, n2, r2, r1, p, np));
            assert_false(merkle_verify_consistency(n1, n2, r1, r2, p, np - 1));
            memcpy(path[np], r1, 32);
            assert_false(merkle_verify_consistency(n1, n2, r1, r2, p, np + 1));
            path[0][0] ^= 1;
            assert_false(merkle_verify_consistency(n1, n2, r1, r2, p, np));
        }
        assert_int_equal(merkle_consistency_proof((const uint8_t(*)[32])leaves,
                                                  0, n2, path, &np),
                         LG_EINVAL);
    }
}

static void test_merkle_edge_sizes(void **state)
{
    (void)state;
    uint8_t r[32];
    merkle_root((const uint8_t(*)[32])leaves, 3, r);
    /* size 0 never verifies anything; index >= size fails. */
    assert_false(merkle_verify_inclusion(leaves[0], 0, 0, NULL, 0, r));
    assert_false(merkle_verify_inclusion(leaves[0], 3, 3, NULL, 0, r));
    assert_false(merkle_verify_consistency(0, 0, r, r, NULL, 0));
    assert_false(merkle_verify_consistency(0, 3, r, r, NULL, 0));
    assert_false(merkle_verify_consistency(4, 3, r, r, NULL, 0));
    assert_true(merkle_verify_consistency(3, 3, r, r, NULL, 0));
    /* Index near UINT64_MAX must not loop or overflow. */
    uint8_t path[MERKLE_MAX_PATH][32];
    memset(path, 7, sizeof(path));
    assert_false(merkle_verify_inclusion(leaves[0], UINT64_MAX - 1, UINT64_MAX,
                                         (const uint8_t(*)[32])path,
                                         MERKLE_MAX_PATH, r));
    assert_false(merkle_verify_consistency(UINT64_MAX - 1, UINT64_MAX, r, r,
                                           (const uint8_t(*)[32])path,
                                           MERKLE_MAX_PATH));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merkle_transparency_vectors),
        cmocka_unit_test(test_merkle_root_known_values),
        cmocka_unit_test(test_merkle_log_matches_root),
        cmocka_unit_test(test_merkle_inclusion_generated),
        cmocka_unit_test(test_merkle_consistency_generated),
        cmocka_unit_test(test_merkle_edge_sizes),
    };
    return cmocka_run_group_tests_name("merkle", tests, setup_leaves, NULL);
}
