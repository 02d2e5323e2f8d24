/* Unit tests for node/crypto.c: hashing, tagged and raw signatures, and the
 * struct pbft_crypto handed to the core. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "crypto.h"

#include <sodium.h>
#include <string.h>

static void hex32(const uint8_t *h, char out[65])
{
    lg_hex(h, 32, out);
}

static void test_crypto_sha256_known_answers(void **state)
{
    (void)state;
    uint8_t h[32];
    char hex[65];
    crypto_sha256("abc", 3, h);
    hex32(h, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
                             "b00361a396177a9cb410ff61f20015ad");
    crypto_sha256("", 0, h);
    hex32(h, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                             "27ae41e4649b934ca495991b7852b855");
    /* Streaming in pieces equals one shot. */
    struct crypto_sha256_ctx c;
    crypto_sha256_init(&c);
    crypto_sha256_update(&c, "a", 1);
    crypto_sha256_update(&c, "", 0);
    crypto_sha256_update(&c, "bc", 2);
    crypto_sha256_final(&c, h);
    hex32(h, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
                             "b00361a396177a9cb410ff61f20015ad");
}

static void test_crypto_tagged_signature_binds_tag(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], sig[64];
    crypto_sign_keypair(pk, sk);
    const uint8_t msg[] = "block header bytes";
    crypto_sign_tagged(TAG_BLOCK, sk, msg, sizeof(msg), sig);
    assert_true(crypto_verify_tagged(TAG_BLOCK, pk, msg, sizeof(msg), sig));
    /* Another role's tag, another message, another key: all fail. */
    assert_false(crypto_verify_tagged(TAG_TX, pk, msg, sizeof(msg), sig));
    assert_false(
        crypto_verify_tagged(TAG_BLOCK, pk, msg, sizeof(msg) - 1, sig));
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_false(crypto_verify_tagged(TAG_BLOCK, pk2, msg, sizeof(msg), sig));
    /* The tag is signed with its NUL: it equals a raw signature over
     * tag || 0x00 || msg. */
    uint8_t framed[64];
    size_t tl = strlen(TAG_BLOCK) + 1;
    memcpy(framed, TAG_BLOCK, tl);
    memcpy(framed + tl, msg, sizeof(msg));
    assert_true(crypto_verify_raw(pk, framed, tl + sizeof(msg), sig));
    /* Raw signatures round-trip and do not verify as tagged. */
    crypto_sign_raw(sk, msg, sizeof(msg), sig);
    assert_true(crypto_verify_raw(pk, msg, sizeof(msg), sig));
    assert_false(crypto_verify_tagged(TAG_BLOCK, pk, msg, sizeof(msg), sig));
}

static void test_crypto_tagged_large_message(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], sig[64];
    crypto_sign_keypair(pk, sk);
    size_t n = 100000; /* beyond the stack buffer */
    uint8_t *msg = malloc(n);
    assert_non_null(msg);
    randombytes_buf(msg, n);
    crypto_sign_tagged(TAG_TX, sk, msg, n, sig);
    assert_true(crypto_verify_tagged(TAG_TX, pk, msg, n, sig));
    msg[n - 1] ^= 1;
    assert_false(crypto_verify_tagged(TAG_TX, pk, msg, n, sig));
    free(msg);
    /* Empty message. */
    crypto_sign_tagged(TAG_TX, sk, NULL, 0, sig);
    assert_true(crypto_verify_tagged(TAG_TX, pk, NULL, 0, sig));
}

static void test_crypto_pbft_callbacks(void **state)
{
    (void)state;
    uint8_t pks[4][32], sks[4][64], chain[32] = {1};
    for (int i = 0; i < 4; i++)
        crypto_sign_keypair(pks[i], sks[i]);
    struct crypto_replica_ctx ctx = {.sk = sks[2],
                                     .n = 4,
                                     .pks = (const uint8_t(*)[32])pks,
                                     .chain_id = chain};
    struct pbft_crypto c;
    memset(&c, 0, sizeof(c));
    crypto_pbft_init(&c, &ctx);
    assert_ptr_equal(c.ctx, &ctx);

    uint8_t h[32], want[32];
    c.hash(c.ctx, (const uint8_t *)"abc", 3, h);
    crypto_sha256("abc", 3, want);
    assert_memory_equal(h, want, 32);

    const uint8_t stmt[] = "statement";
    uint8_t sig[64];
    c.sign(c.ctx, stmt, sizeof(stmt), sig);
    assert_true(c.verify(c.ctx, 2, stmt, sizeof(stmt), sig));
    assert_false(c.verify(c.ctx, 1, stmt, sizeof(stmt), sig));
    assert_false(c.verify(c.ctx, 4, stmt, sizeof(stmt), sig));
    assert_false(c.verify(c.ctx, UINT32_MAX, stmt, sizeof(stmt), sig));

    /* verify_request rejects anything that is not a signed tx. */
    struct pbft_request req = {
        .req_no = 1, .len = 5, .data = (const uint8_t *)"junk!"};
    assert_false(c.verify_request(c.ctx, &req));
    req.len = 0;
    req.data = NULL;
    assert_false(c.verify_request(c.ctx, &req));
}

int main(void)
{
    if (crypto_setup() != LG_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto_sha256_known_answers),
        cmocka_unit_test(test_crypto_tagged_signature_binds_tag),
        cmocka_unit_test(test_crypto_tagged_large_message),
        cmocka_unit_test(test_crypto_pbft_callbacks),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
