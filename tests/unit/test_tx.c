/* Unit tests for node/tx.c: signing and opening transactions, the core's
 * request check, and keyed pseudonyms.
 *
 * TRIALCHAIN_WRITE_CORPUS=DIR also writes signed transactions to DIR/tx/
 * as a seed corpus for tests/fuzz/fuzz_tx.c (whose chain id is all 0x11). */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "crypto.h"
#include "tx.h"

#include <ftw.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
    char dir[64];
    struct keyfile alice, bob;
    uint8_t chain[32];
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
    char path[128], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_tx.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    memset(f->chain, 0x11, 32);
    snprintf(path, sizeof(path), "%s/alice.key", f->dir);
    if (keyfile_generate(path, "member", "site-a", ROLE_SITE, f->chain,
                         &f->alice, err, sizeof(err)) != LG_OK)
        return -1;
    snprintf(path, sizeof(path), "%s/bob.key", f->dir);
    if (keyfile_generate(path, "member", "sponsor", ROLE_SPONSOR, f->chain,
                         &f->bob, err, sizeof(err)) != LG_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    keyfile_free(&f->alice);
    keyfile_free(&f->bob);
    nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A consent transaction from k; caller frees *out. */
static void make_tx(const struct fixture *f, const struct keyfile *k,
                    const uint8_t chain[32], uint64_t nonce, uint8_t **out,
                    size_t *len)
{
    uint8_t pseudo[32];
    tx_pseudonym(f->alice.pseudonym_secret, "NCT01234567", "patient-7", pseudo);
    Tc__Consent c = TC__CONSENT__INIT;
    c.trial_id = (char *)"NCT01234567";
    c.pseudonym.data = pseudo;
    c.pseudonym.len = 32;
    c.protocol_version = 1;
    c.action = TC__CONSENT_ACTION__CONSENT_RECORD;
    Tc__Tx tx = TC__TX__INIT;
    tx.chain_id.data = (uint8_t *)(uintptr_t)chain;
    tx.chain_id.len = 32;
    tx.signer.data = (uint8_t *)(uintptr_t)k->public_key;
    tx.signer.len = 32;
    tx.nonce = nonce;
    tx.client_time_ms = 1763683200000ull;
    tx.body_case = TC__TX__BODY_CONSENT;
    tx.consent = &c;
    assert_int_equal(tx_sign(&tx, k, out, len), LG_OK);
}

static void write_corpus(const char *name, const uint8_t *p, size_t n)
{
    const char *dir = getenv("TRIALCHAIN_WRITE_CORPUS");
    if (dir == NULL)
        return;
    char path[1024];
    snprintf(path, sizeof(path), "%s/tx", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/tx/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static void test_tx_sign_and_open(void **state)
{
    struct fixture *f = *state;
    uint8_t *buf;
    size_t len;
    make_tx(f, &f->alice, f->chain, 5, &buf, &len);
    write_corpus("valid-consent", buf, len);
    struct tx_view v;
    char err[256];
    assert_int_equal(tx_open(buf, len, f->chain, &v, err, sizeof(err)), LG_OK);
    assert_int_equal(v.nonce, 5);
    assert_memory_equal(v.signer, f->alice.public_key, 32);
    assert_int_equal(v.tx->body_case, TC__TX__BODY_CONSENT);
    assert_string_equal(v.tx->consent->trial_id, "NCT01234567");
    uint8_t id[32];
    crypto_sha256(buf, len, id);
    assert_memory_equal(v.tx_id, id, 32);
    tx_id(buf, len, id);
    assert_memory_equal(v.tx_id, id, 32);
    tx_view_free(&v);
    tx_view_free(&v); /* an emptied view frees again harmlessly */
    tx_view_free(NULL);
    free(buf);
}

static void test_tx_wrong_chain(void **state)
{
    struct fixture *f = *state;
    uint8_t other[32], *buf;
    size_t len;
    memset(other, 0x22, 32);
    make_tx(f, &f->alice, other, 1, &buf, &len);
    write_corpus("other-chain", buf, len);
    struct tx_view v;
    char err[256] = "";
    assert_int_equal(tx_open(buf, len, f->chain, &v, err, sizeof(err)),
                     LG_ECHAIN);
    assert_non_null(strstr(err, "another consortium"));
    assert_null(v.tx);
    free(buf);
}

static void test_tx_bad_signature(void **state)
{
    struct fixture *f = *state;
    uint8_t *buf;
    size_t len;
    make_tx(f, &f->alice, f->chain, 1, &buf, &len);
    struct tx_view v;
    char err[256];
    /* The signature is the last field: flip its last byte. */
    buf[len - 1] ^= 0x01;
    write_corpus("bad-sig", buf, len);
    assert_int_equal(tx_open(buf, len, f->chain, &v, err, sizeof(err)),
                     LG_EBADSIG);
    free(buf);

    /* A body claiming bob as signer but signed by alice. */
    Tc__Tx tx = TC__TX__INIT;
    Tc__SiteAuthorize sa = TC__SITE_AUTHORIZE__INIT;
    sa.trial_id = (char *)"NCT1";
    sa.site = (char *)"site-a";
    tx.chain_id.data = f->chain;
    tx.chain_id.len = 32;
    tx.signer.data = f->bob.public_key;
    tx.signer.len = 32;
    tx.nonce = 1;
    tx.body_case = TC__TX__BODY_SITE_AUTHORIZE;
    tx.site_authorize = &sa;
    assert_int_equal(tx_sign(&tx, &f->alice, &buf, &len), LG_OK);
    assert_int_equal(tx_open(buf, len, f->chain, &v, err, sizeof(err)),
                     LG_EBADSIG);
    free(buf);
}

static void test_tx_malformed(void **state)
{
    struct fixture *f = *state;
    uint8_t *buf;
    size_t len;
    struct tx_view v;
    char err[256];
    make_tx(f, &f->alice, f->chain, 1, &buf, &len);
    /* Every truncation is refused, never a crash. */
    for (size_t cut = 0; cut < len; cut++) {
        int rv = tx_open(buf, cut, f->chain, &v, err, sizeof(err));
        assert_int_not_equal(rv, LG_OK);
        assert_null(v.tx);
    }
    write_corpus("truncated", buf, len / 2);
    free(buf);

    assert_int_equal(tx_open(NULL, 0, f->chain, &v, err, sizeof(err)),
                     LG_EBADMSG);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x00};
    assert_int_equal(
        tx_open(junk, sizeof(junk), f->chain, &v, err, sizeof(err)),
        LG_EBADMSG);

    /* No action in the body. */
    Tc__Tx tx = TC__TX__INIT;
    tx.chain_id.data = f->chain;
    tx.chain_id.len = 32;
    tx.signer.data = f->alice.public_key;
    tx.signer.len = 32;
    assert_int_equal(tx_sign(&tx, &f->alice, &buf, &len), LG_OK);
    write_corpus("no-body", buf, len);
    assert_int_equal(tx_open(buf, len, f->chain, &v, err, sizeof(err)),
                     LG_EBADMSG);
    free(buf);

    /* A signer of the wrong length. */
    tx.signer.len = 31;
    tx.body_case = TC__TX__BODY_ATTESTATION;
    Tc__AuditAttestation at = TC__AUDIT_ATTESTATION__INIT;
    tx.attestation = &at;
    assert_int_equal(tx_sign(&tx, &f->alice, &buf, &len), LG_OK);
    assert_int_equal(tx_open(buf, len, f->chain, &v, err, sizeof(err)),
                     LG_EBADMSG);
    free(buf);

    /* A 63-byte signature. */
    uint8_t body[4] = {0x18, 0x01, 0, 0}, sig[63] = {0};
    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    st.body.data = body;
    st.body.len = 2;
    st.sig.data = sig;
    st.sig.len = 63;
    uint8_t packed[128];
    size_t plen = tc__signed_tx__pack(&st, packed);
    write_corpus("short-sig", packed, plen);
    assert_int_equal(tx_open(packed, plen, f->chain, &v, err, sizeof(err)),
                     LG_EBADMSG);
    assert_true(strlen(err) > 0);
}

static void test_tx_oversized(void **state)
{
    struct fixture *f = *state;
    size_t len = TX_BYTES_MAX + 1;
    uint8_t *big = calloc(1, len);
    struct tx_view v;
    char err[256];
    assert_int_equal(tx_open(big, len, f->chain, &v, err, sizeof(err)),
                     LG_ETOOBIG);
    free(big);

    /* tx_sign refuses to produce one. */
    static char title[TX_BYTES_MAX];
    memset(title, 'x', sizeof(title) - 1);
    Tc__ProtocolRegister pr = TC__PROTOCOL_REGISTER__INIT;
    pr.brief_title = title;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &pr;
    uint8_t *out = NULL;
    size_t olen;
    assert_int_equal(tx_sign(&tx, &f->bob, &out, &olen), LG_ETOOBIG);
    assert_null(out);
}

/* The request check, without and with a signature cache: a cached
 * signature changes none of the other answers. */
static void test_tx_request_check(void **state)
{
    struct fixture *f = *state;
    uint8_t *buf;
    size_t len;
    make_tx(f, &f->alice, f->chain, 9, &buf, &len);
    struct tx_sigcache *cache = tx_sigcache_new();
    assert_non_null(cache);
    for (int round = 0; round < 3; round++) {
        struct tx_sigcache *c = round == 0 ? NULL : cache;
        struct pbft_request req;
        memcpy(req.client, f->alice.public_key, 32);
        req.req_no = 9;
        req.len = (uint32_t)len;
        req.data = buf;
        assert_true(txcheck_request_valid(f->chain, c, &req));
        req.req_no = 8; /* nonce mismatch */
        assert_false(txcheck_request_valid(f->chain, c, &req));
        req.req_no = 9;
        memcpy(req.client, f->bob.public_key, 32); /* client is not signer */
        assert_false(txcheck_request_valid(f->chain, c, &req));
        memcpy(req.client, f->alice.public_key, 32);
        uint8_t other[32];
        memset(other, 0x33, 32);
        assert_false(txcheck_request_valid(other, c, &req));
        req.len = (uint32_t)len - 1;
        assert_false(txcheck_request_valid(f->chain, c, &req));
        assert_false(txcheck_request_valid(f->chain, c, NULL));
    }
    uint64_t hits, misses;
    tx_sigcache_stats(cache, &hits, &misses);
    /* Verified once in round 1; every later full decode (four a round:
     * the truncated copy fails to decode first) was a hit. */
    assert_int_equal(misses, 1);
    assert_int_equal(hits, 3 + 4);
    tx_sigcache_free(cache);
    tx_sigcache_free(NULL);
    free(buf);
}

/* Only a signature that verified is remembered, and only for the exact
 * bytes: a forged copy of a cached transaction still fails. */
static void test_tx_sigcache(void **state)
{
    struct fixture *f = *state;
    uint8_t *buf;
    size_t len;
    make_tx(f, &f->alice, f->chain, 3, &buf, &len);
    struct tx_sigcache *c = tx_sigcache_new();
    assert_non_null(c);
    struct tx_view v;
    char err[256];
    uint64_t hits, misses;

    /* A bad signature is refused twice: it never enters the cache. */
    buf[len - 1] ^= 0x01;
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            tx_open_cached(buf, len, f->chain, c, &v, err, sizeof(err)),
            LG_EBADSIG);
    tx_sigcache_stats(c, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 2);
    buf[len - 1] ^= 0x01;

    /* The good bytes verify once, then hit, with the same view. */
    assert_int_equal(
        tx_open_cached(buf, len, f->chain, c, &v, err, sizeof(err)), LG_OK);
    uint8_t id[32];
    memcpy(id, v.tx_id, 32);
    tx_view_free(&v);
    assert_int_equal(
        tx_open_cached(buf, len, f->chain, c, &v, err, sizeof(err)), LG_OK);
    assert_memory_equal(v.tx_id, id, 32);
    assert_int_equal(v.nonce, 3);
    tx_view_free(&v);
    tx_sigcache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 3);

    /* A hit still checks the chain id. */
    uint8_t other[32];
    memset(other, 0x44, 32);
    assert_int_equal(tx_open_cached(buf, len, other, c, &v, err, sizeof(err)),
                     LG_ECHAIN);

    /* The cached transaction with its signature altered is other bytes:
     * verified again, refused. */
    buf[len - 1] ^= 0x80;
    assert_int_equal(
        tx_open_cached(buf, len, f->chain, c, &v, err, sizeof(err)),
        LG_EBADSIG);
    buf[len - 1] ^= 0x80;

    /* More transactions than slots: evicted ones verify again, all pass. */
    for (uint64_t nonce = 100; nonce < 100 + TX_SIGCACHE_SLOTS / 4; nonce++) {
        uint8_t *b2;
        size_t l2;
        make_tx(f, &f->alice, f->chain, nonce, &b2, &l2);
        assert_int_equal(
            tx_open_cached(b2, l2, f->chain, c, &v, err, sizeof(err)), LG_OK);
        tx_view_free(&v);
        free(b2);
    }
    assert_int_equal(
        tx_open_cached(buf, len, f->chain, c, &v, err, sizeof(err)), LG_OK);
    tx_view_free(&v);
    tx_sigcache_free(c);
    free(buf);
}

static void test_tx_pseudonym_keyed_and_deterministic(void **state)
{
    (void)state;
    uint8_t k1[32], k2[32], a[32], b[32];
    memset(k1, 1, 32);
    memset(k2, 2, 32);
    tx_pseudonym(k1, "NCT1", "p-1", a);
    tx_pseudonym(k1, "NCT1", "p-1", b);
    assert_memory_equal(a, b, 32);
    /* Another site's secret gives an unrelated pseudonym. */
    tx_pseudonym(k2, "NCT1", "p-1", b);
    assert_memory_not_equal(a, b, 32);
    /* Another trial, another pseudonym. */
    tx_pseudonym(k1, "NCT2", "p-1", b);
    assert_memory_not_equal(a, b, 32);
    /* The separator keeps ("NCT1", "p-1") apart from ("NCT1p", "-1"). */
    tx_pseudonym(k1, "NCT1p", "-1", b);
    assert_memory_not_equal(a, b, 32);
    /* It is HMAC-SHA-256(secret, trial || 0x00 || local). */
    const char msg[] = "NCT1\0p-1";
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, k1, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)msg, sizeof(msg) - 1);
    crypto_auth_hmacsha256_final(&st, b);
    assert_memory_equal(a, b, 32);
    /* Not the plain hash of the id. */
    crypto_sha256(msg, sizeof(msg) - 1, b);
    assert_memory_not_equal(a, b, 32);
}

int main(void)
{
    if (crypto_setup() != LG_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tx_sign_and_open),
        cmocka_unit_test(test_tx_wrong_chain),
        cmocka_unit_test(test_tx_bad_signature),
        cmocka_unit_test(test_tx_malformed),
        cmocka_unit_test(test_tx_oversized),
        cmocka_unit_test(test_tx_request_check),
        cmocka_unit_test(test_tx_sigcache),
        cmocka_unit_test(test_tx_pseudonym_keyed_and_deterministic),
    };
    return cmocka_run_group_tests_name("tx", tests, setup, teardown);
}
