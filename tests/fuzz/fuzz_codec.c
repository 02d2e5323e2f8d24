/*
 * fuzz_codec.c - consensus message, record and certificate decoding
 * (node/codec.c). Invariants: no crash or leak on any input, and whatever
 * decodes re-encodes to bytes that decode to the same encoding.
 */
#include "codec.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct codec_limits fuzz_lim = {
    .n = 4,
    .batch_max = 8,
    .request_bytes_max = 4096,
    .window_max = 16,
    .msg_bytes_max = 1u << 20,
};

static void check_roundtrip(const struct pbft_msg *m)
{
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    struct pbft_msg *again = NULL;
    LG_ASSERT(codec_encode_msg(m, &a, &alen) == LG_OK);
    LG_ASSERT(codec_decode_msg(a, alen, &fuzz_lim, &again) == LG_OK);
    LG_ASSERT(codec_encode_msg(again, &b, &blen) == LG_OK);
    LG_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
    codec_msg_free(again);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pbft_msg *m = NULL;
    if (codec_decode_msg(data, size, &fuzz_lim, &m) == LG_OK) {
        check_roundtrip(m);
        /* The same bytes as a stored record under a matching key. */
        struct pbft_record r = {
            .type = PBFT_REC_MSG, .seq = 5, .view = 1, .replica = 2, .msg = m};
        uint8_t key[CODEC_RECORD_KEY_SIZE];
        size_t klen;
        struct codec_record *cr = NULL;
        LG_ASSERT(codec_record_key(&r, key, &klen) == LG_OK);
        LG_ASSERT(codec_decode_record(key, klen, data, size, &fuzz_lim, &cr) ==
                  LG_OK);
        codec_record_free(cr);
        codec_msg_free(m);
    }

    /* As persisted metadata. */
    struct pbft_record meta = {.type = PBFT_REC_META};
    uint8_t key[CODEC_RECORD_KEY_SIZE];
    size_t klen;
    struct codec_record *cr = NULL;
    LG_ASSERT(codec_record_key(&meta, key, &klen) == LG_OK);
    if (codec_decode_record(key, klen, data, size, &fuzz_lim, &cr) == LG_OK)
        codec_record_free(cr);

    /* As a block certificate. */
    struct pbft_checkpoint_cert *c = NULL;
    if (codec_decode_cert(data, size, fuzz_lim.n, &c) == LG_OK) {
        uint8_t *buf = NULL;
        size_t len = 0;
        LG_ASSERT(codec_encode_cert(c, &buf, &len) == LG_OK);
        free(buf);
        free(c);
    }
    return 0;
}
