/* Unit tests for node/codec.c: every message type round-trips, records and
 * certificates round-trip, and malformed input is refused without a crash.
 *
 * TRIALCHAIN_WRITE_CORPUS=DIR also writes the valid encodings to
 * DIR/codec/ as a seed corpus for tests/fuzz/fuzz_codec.c. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "codec.h"

#include <string.h>
#include <sys/stat.h>

/* The limits fuzz_codec.c uses too. */
static const struct codec_limits lim = {
    .n = 4,
    .batch_max = 8,
    .request_bytes_max = 4096,
    .window_max = 16,
    .msg_bytes_max = 1u << 20,
};

static uint8_t data_a[] = "signed tx bytes A";
static uint8_t data_b[] = "B";

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 13);
}

static struct pbft_vote mk_vote(uint32_t replica, uint64_t view, uint64_t seq)
{
    struct pbft_vote v;
    memset(&v, 0, sizeof(v));
    v.replica = replica;
    v.view = view;
    v.seq = seq;
    fill(v.digest, sizeof(v.digest), (uint8_t)seq);
    fill(v.sig, sizeof(v.sig), (uint8_t)(replica + 100));
    return v;
}

static struct pbft_request reqs[3];
static struct pbft_vote votes[4];
static struct pbft_vote prepares[3];
static struct pbft_prepared_cert pcs[2];
static struct pbft_view_change vcs[3];
static struct pbft_preprepare pps[2];

static void setup_parts(void)
{
    for (int i = 0; i < 3; i++) {
        fill(reqs[i].client, 32, (uint8_t)(i + 1));
        reqs[i].req_no = 1000u + (uint64_t)i;
    }
    reqs[0].data = data_a;
    reqs[0].len = sizeof(data_a);
    reqs[1].data = data_b;
    reqs[1].len = sizeof(data_b);
    reqs[2].data = NULL; /* an empty request is still well-formed */
    reqs[2].len = 0;
    for (uint32_t i = 0; i < 4; i++)
        votes[i] = mk_vote(i, 0, 7);
    for (uint32_t i = 0; i < 3; i++)
        prepares[i] = mk_vote(i + 1, 2, 9);
    for (int i = 0; i < 2; i++) {
        pcs[i].pp.hdr = mk_vote(2, 2, 8u + (uint64_t)i);
        pcs[i].pp.hdr.timestamp_ms = 1700000000000ull;
        pcs[i].pp.n_requests = (uint32_t)(2 + i);
        pcs[i].pp.requests = reqs;
        pcs[i].n_prepares = 3;
        pcs[i].prepares = prepares;
    }
    for (uint32_t i = 0; i < 3; i++) {
        memset(&vcs[i], 0, sizeof(vcs[i]));
        vcs[i].replica = i;
        vcs[i].new_view = 3;
        vcs[i].stable.seq = 7;
        fill(vcs[i].stable.digest, 32, 7);
        vcs[i].stable.n_votes = i == 0 ? 0 : 3;
        vcs[i].stable.votes = votes;
        vcs[i].n_prepared = i;
        vcs[i].prepared = pcs;
        fill(vcs[i].sig, 64, (uint8_t)(50 + i));
    }
    for (int i = 0; i < 2; i++) {
        pps[i].hdr = mk_vote(3, 3, 8u + (uint64_t)i);
        pps[i].n_requests = (uint32_t)i;
        pps[i].requests = reqs;
    }
}

#define N_SAMPLES 10

/* One sample message of every type (several shapes of the big ones). */
static struct pbft_msg sample(int i)
{
    struct pbft_msg m;
    memset(&m, 0, sizeof(m));
    switch (i) {
    case 0:
        m.type = PBFT_MSG_REQUEST;
        m.u.request = reqs[0];
        break;
    case 1:
        m.type = PBFT_MSG_PREPREPARE;
        m.u.pp = pcs[1].pp;
        break;
    case 2:
        m.type = PBFT_MSG_PREPREPARE; /* the null request */
        m.u.pp.hdr = mk_vote(0, 0, 1);
        break;
    case 3:
        m.type = PBFT_MSG_PREPARE;
        m.u.vote = mk_vote(1, 0, 1);
        break;
    case 4:
        m.type = PBFT_MSG_COMMIT;
        m.u.vote = mk_vote(3, 5, UINT64_MAX);
        break;
    case 5:
        m.type = PBFT_MSG_CHECKPOINT;
        m.u.vote = mk_vote(2, 0, 64);
        break;
    case 6:
        m.type = PBFT_MSG_VIEW_CHANGE;
        m.u.vc = vcs[2];
        break;
    case 7:
        m.type = PBFT_MSG_VIEW_CHANGE;
        m.u.vc = vcs[0];
        break;
    case 8:
        m.type = PBFT_MSG_NEW_VIEW;
        m.u.nv.replica = 3;
        m.u.nv.view = 3;
        m.u.nv.n_view_changes = 3;
        m.u.nv.view_changes = vcs;
        m.u.nv.n_preprepares = 2;
        m.u.nv.preprepares = pps;
        fill(m.u.nv.sig, 64, 9);
        break;
    default:
        m.type = PBFT_MSG_FETCH;
        m.u.fetch.replica = 1;
        m.u.fetch.seq = 42;
        fill(m.u.fetch.sig, 64, 4);
        break;
    }
    return m;
}

static void write_corpus(const char *name, const uint8_t *p, size_t n)
{
    const char *dir = getenv("TRIALCHAIN_WRITE_CORPUS");
    if (dir == NULL)
        return;
    char path[1024];
    snprintf(path, sizeof(path), "%s/codec", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/codec/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_codec_roundtrip_every_type(void **state)
{
    (void)state;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct pbft_msg m = sample(i);
        uint8_t *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        struct pbft_msg *d = NULL;
        assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
        assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_OK);
        assert_int_equal(d->type, m.type);
        /* protobuf-c packs fields in order: equal bytes, equal trees. */
        assert_int_equal(codec_encode_msg(d, &b, &blen), LG_OK);
        assert_int_equal(alen, blen);
        assert_memory_equal(a, b, alen);
        char name[32];
        snprintf(name, sizeof(name), "valid-%02d", i);
        write_corpus(name, a, alen);
        codec_msg_free(d);
        free(a);
        free(b);
    }
}

static void test_codec_decoded_fields(void **state)
{
    (void)state;
    struct pbft_msg m = sample(8);
    uint8_t *a;
    size_t alen;
    struct pbft_msg *d;
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_OK);
    const struct pbft_new_view *nv = &d->u.nv;
    assert_int_equal(nv->replica, 3);
    assert_int_equal(nv->n_view_changes, 3);
    assert_int_equal(nv->view_changes[2].n_prepared, 2);
    const struct pbft_preprepare *pp = &nv->view_changes[2].prepared[1].pp;
    assert_int_equal(pp->n_requests, 3);
    assert_int_equal(pp->hdr.timestamp_ms, 1700000000000ull);
    assert_int_equal(pp->requests[0].len, sizeof(data_a));
    assert_memory_equal(pp->requests[0].data, data_a, sizeof(data_a));
    assert_memory_equal(pp->requests[1].client, reqs[1].client, 32);
    assert_int_equal(pp->requests[2].len, 0);
    assert_int_equal(nv->view_changes[0].stable.n_votes, 0);
    assert_null(nv->view_changes[0].stable.votes);
    assert_memory_equal(nv->sig, m.u.nv.sig, 64);
    codec_msg_free(d);
    free(a);
}

/* Encodes a hand-built protobuf message (to produce what our encoder never
 * would). */
static size_t pack_pm(const Tc__ConsensusMsg *pm, uint8_t *buf, size_t cap)
{
    size_t n = tc__consensus_msg__get_packed_size(pm);
    assert_true(n <= cap);
    return tc__consensus_msg__pack(pm, buf);
}

static int decode_pm(const Tc__ConsensusMsg *pm)
{
    uint8_t buf[8192];
    size_t n = pack_pm(pm, buf, sizeof(buf));
    struct pbft_msg *d = NULL;
    int rv = codec_decode_msg(buf, n, &lim, &d);
    codec_msg_free(d);
    return rv;
}

static void test_codec_rejects_bad_lengths(void **state)
{
    (void)state;
    uint8_t digest[33] = {0}, sig[65] = {0}, client[33] = {0};
    Tc__Vote v = TC__VOTE__INIT;
    Tc__ConsensusMsg pm = TC__CONSENSUS_MSG__INIT;
    pm.body_case = TC__CONSENSUS_MSG__BODY_PREPARE;
    pm.prepare = &v;
    v.digest.data = digest;
    v.sig.data = sig;
    v.digest.len = 32;
    v.sig.len = 64;
    assert_int_equal(decode_pm(&pm), LG_OK);
    v.digest.len = 31;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);
    v.digest.len = 33;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);
    v.digest.len = 32;
    v.sig.len = 0;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);
    v.sig.len = 64;
    v.replica = 4; /* n = 4 */
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);
    v.replica = UINT32_MAX;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);

    Tc__Request r = TC__REQUEST__INIT;
    pm.body_case = TC__CONSENSUS_MSG__BODY_REQUEST;
    pm.request = &r;
    r.client.data = client;
    r.client.len = 33;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);
    r.client.len = 32;
    assert_int_equal(decode_pm(&pm), LG_OK);

    Tc__Fetch f = TC__FETCH__INIT;
    pm.body_case = TC__CONSENSUS_MSG__BODY_FETCH;
    pm.fetch = &f;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG); /* no signature */

    /* No body at all. */
    pm.body_case = TC__CONSENSUS_MSG__BODY__NOT_SET;
    assert_int_equal(decode_pm(&pm), LG_EBADMSG);
}

static void test_codec_rejects_oversized_counts(void **state)
{
    (void)state;
    struct pbft_request many[9];
    for (int i = 0; i < 9; i++)
        many[i] = reqs[1];
    struct pbft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_PREPREPARE;
    m.u.pp.hdr = mk_vote(0, 0, 1);
    m.u.pp.requests = many;
    uint8_t *a;
    size_t alen;
    struct pbft_msg *d = NULL;

    m.u.pp.n_requests = 8; /* batch_max */
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_OK);
    codec_msg_free(d);
    free(a);
    m.u.pp.n_requests = 9;
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_EBADMSG);
    free(a);

    /* More checkpoint votes than replicas. */
    struct pbft_vote five[5];
    for (uint32_t i = 0; i < 5; i++)
        five[i] = mk_vote(i % 4, 0, 7);
    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_VIEW_CHANGE;
    m.u.vc = vcs[1];
    m.u.vc.stable.votes = five;
    m.u.vc.stable.n_votes = 5;
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_EBADMSG);
    free(a);

    /* More prepared certificates than the window. */
    struct pbft_prepared_cert lots[17];
    for (int i = 0; i < 17; i++)
        lots[i] = pcs[0];
    m.u.vc = vcs[1];
    m.u.vc.prepared = lots;
    m.u.vc.n_prepared = 17;
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_EBADMSG);
    free(a);

    /* More view changes than replicas. */
    struct pbft_view_change five_vc[5];
    for (int i = 0; i < 5; i++)
        five_vc[i] = vcs[0];
    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_NEW_VIEW;
    m.u.nv.view_changes = five_vc;
    m.u.nv.n_view_changes = 5;
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_EBADMSG);
    free(a);

    /* A request over request_bytes_max. */
    static uint8_t big[4097];
    memset(&m, 0, sizeof(m));
    m.type = PBFT_MSG_REQUEST;
    m.u.request = reqs[0];
    m.u.request.data = big;
    m.u.request.len = sizeof(big);
    assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
    assert_int_equal(codec_decode_msg(a, alen, &lim, &d), LG_EBADMSG);
    /* And a total over msg_bytes_max, refused before unpacking. */
    struct codec_limits small = lim;
    small.msg_bytes_max = alen - 1;
    assert_int_equal(codec_decode_msg(a, alen, &small, &d), LG_ETOOBIG);
    free(a);
}

static void test_codec_rejects_truncated_and_garbage(void **state)
{
    (void)state;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct pbft_msg m = sample(i);
        uint8_t *a;
        size_t alen;
        assert_int_equal(codec_encode_msg(&m, &a, &alen), LG_OK);
        /* Every prefix: refused or (rarely) a valid shorter message. */
        for (size_t cut = 0; cut < alen; cut++) {
            struct pbft_msg *d = NULL;
            int rv = codec_decode_msg(a, cut, &lim, &d);
            assert_true(rv == LG_OK || rv == LG_EBADMSG);
            codec_msg_free(d);
        }
        /* Single-byte corruption anywhere: never a crash. */
        for (size_t at = 0; at < alen; at++) {
            uint8_t saved = a[at];
            a[at] ^= 0xa5;
            struct pbft_msg *d = NULL;
            int rv = codec_decode_msg(a, alen, &lim, &d);
            assert_true(rv == LG_OK || rv == LG_EBADMSG);
            codec_msg_free(d);
            a[at] = saved;
        }
        free(a);
    }
    uint8_t garbage[512];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(garbage); i++) {
            x = x * 1103515245u + 12345u;
            garbage[i] = (uint8_t)(x >> 16);
        }
        struct pbft_msg *d = NULL;
        int rv = codec_decode_msg(garbage, 1 + (size_t)round * 2, &lim, &d);
        assert_true(rv == LG_OK || rv == LG_EBADMSG);
        codec_msg_free(d);
    }
    struct pbft_msg *d = NULL;
    assert_int_equal(codec_decode_msg(garbage, 0, &lim, &d), LG_EBADMSG);
    assert_null(d);
}

/* Thousands of empty repeated submessages: refused by the allocation
 * budget or the count limits, without gigabytes of allocation. */
static void test_codec_rejects_amplification(void **state)
{
    (void)state;
    size_t n = 200000;
    uint8_t *buf = malloc(n * 2 + 16);
    assert_non_null(buf);
    size_t at = 0;
    /* field 7 (new_view), length-delimited, containing n empty field-3
     * (view_changes) entries: tag 0x1a, length 0. */
    size_t inner = n * 2;
    buf[at++] = (7 << 3) | 2;
    size_t len = inner;
    while (len >= 0x80) {
        buf[at++] = (uint8_t)(len | 0x80);
        len >>= 7;
    }
    buf[at++] = (uint8_t)len;
    for (size_t i = 0; i < n; i++) {
        buf[at++] = 0x1a;
        buf[at++] = 0x00;
    }
    struct pbft_msg *d = NULL;
    assert_int_equal(codec_decode_msg(buf, at, &lim, &d), LG_EBADMSG);
    assert_null(d);
    free(buf);
}

static void test_codec_record_keys_and_values(void **state)
{
    (void)state;
    struct pbft_msg m = sample(3);
    struct pbft_record r = {.type = PBFT_REC_MSG,
                            .seq = 0x0102030405060708ull,
                            .view = 9,
                            .replica = 0x01020304u,
                            .msg = &m};
    uint8_t key[CODEC_RECORD_KEY_SIZE], key2[CODEC_RECORD_KEY_SIZE];
    size_t klen;
    assert_int_equal(codec_record_key(&r, key, &klen), LG_OK);
    assert_int_equal(klen, 24);
    assert_memory_equal(key, CODEC_KEY_MSG_PREFIX, 3);
    pbft_seq seq;
    assert_true(codec_record_key_seq(key, klen, &seq));
    assert_int_equal(seq, r.seq);
    /* Keys sort by seq first. */
    r.seq = 0x0102030405060709ull;
    r.view = 0;
    assert_int_equal(codec_record_key(&r, key2, &klen), LG_OK);
    assert_true(memcmp(key, key2, klen) < 0);

    uint8_t *val;
    size_t vlen;
    assert_int_equal(codec_encode_record(&r, &val, &vlen), LG_OK);
    struct codec_record *cr = NULL;
    assert_int_equal(codec_decode_record(key2, klen, val, vlen, &lim, &cr),
                     LG_OK);
    assert_int_equal(cr->rec.type, PBFT_REC_MSG);
    assert_int_equal(cr->rec.seq, r.seq);
    assert_int_equal(cr->rec.view, 0);
    assert_int_equal(cr->rec.replica, r.replica);
    assert_int_equal(cr->rec.msg->type, PBFT_MSG_PREPARE);
    codec_record_free(cr);
    /* A value that does not match the key's message type is corrupt. */
    key2[11] = PBFT_MSG_COMMIT;
    assert_int_equal(codec_decode_record(key2, klen, val, vlen, &lim, &cr),
                     LG_ECORRUPT);
    assert_int_equal(codec_decode_record(key2, klen - 1, val, vlen, &lim, &cr),
                     LG_ECORRUPT);
    free(val);

    struct pbft_meta meta = {.view = 5,
                             .in_view_change = true,
                             .stable = vcs[1].stable,
                             .last_seq_assigned = 77};
    struct pbft_record mr = {.type = PBFT_REC_META, .meta = &meta};
    assert_int_equal(codec_record_key(&mr, key, &klen), LG_OK);
    assert_int_equal(codec_encode_record(&mr, &val, &vlen), LG_OK);
    assert_int_equal(codec_decode_record(key, klen, val, vlen, &lim, &cr),
                     LG_OK);
    assert_int_equal(cr->rec.type, PBFT_REC_META);
    assert_ptr_equal(cr->rec.meta, &cr->meta);
    assert_int_equal(cr->meta.view, 5);
    assert_true(cr->meta.in_view_change);
    assert_int_equal(cr->meta.last_seq_assigned, 77);
    assert_int_equal(cr->meta.stable.n_votes, 3);
    assert_memory_equal(cr->meta.stable.votes, votes, 3 * sizeof(votes[0]));
    assert_false(codec_record_key_seq(key, klen, &seq));
    codec_record_free(cr);
    /* Garbage on disk is corrupt, not a crash. */
    val[0] ^= 0xff;
    int rv = codec_decode_record(key, klen, val, vlen, &lim, &cr);
    if (rv == LG_OK)
        codec_record_free(cr);
    else
        assert_int_equal(rv, LG_ECORRUPT);
    free(val);

    struct pbft_record gc = {.type = PBFT_REC_GC, .seq = 3};
    assert_int_equal(codec_record_key(&gc, key, &klen), LG_EINVAL);
    assert_int_equal(codec_encode_record(&gc, &val, &vlen), LG_EINVAL);
}

static void test_codec_certificates(void **state)
{
    (void)state;
    struct pbft_checkpoint_cert c = {.seq = 7, .n_votes = 4, .votes = votes};
    fill(c.digest, 32, 7);
    Tc__Certificate pc;
    assert_int_equal(codec_cert_to_proto(&c, &pc), LG_OK);
    assert_int_equal(pc.height, 7);
    assert_int_equal(pc.n_votes, 4);
    struct pbft_checkpoint_cert *back = NULL;
    assert_int_equal(codec_cert_from_proto(&pc, 4, &back), LG_OK);
    assert_int_equal(back->seq, 7);
    assert_memory_equal(back->digest, c.digest, 32);
    assert_memory_equal(back->votes, votes, sizeof(votes));
    free(back);
    /* Replica 3 is out of range when n = 3; 4 votes > n too. */
    assert_int_equal(codec_cert_from_proto(&pc, 3, &back), LG_EBADMSG);
    codec_cert_proto_clear(&pc);

    uint8_t *buf;
    size_t len;
    assert_int_equal(codec_encode_cert(&c, &buf, &len), LG_OK);
    assert_int_equal(codec_decode_cert(buf, len, 4, &back), LG_OK);
    assert_int_equal(back->n_votes, 4);
    free(back);
    assert_int_equal(codec_decode_cert(buf, len / 2, 4, &back), LG_EBADMSG);
    free(buf);

    Tc__CheckpointCert cc;
    c.n_votes = 0;
    assert_int_equal(codec_ckpt_to_proto(&c, &cc), LG_OK);
    assert_null(cc.votes);
    assert_int_equal(cc.digest.len, 32);
    codec_ckpt_proto_clear(&cc);
}

static void test_codec_limits_from_config(void **state)
{
    (void)state;
    struct pbft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.n = 7;
    cfg.batch_max = 100;
    cfg.request_bytes_max = 65536;
    cfg.watermark_window = 64;
    struct codec_limits l;
    codec_limits_from_config(&cfg, &l);
    assert_int_equal(l.n, 7);
    assert_int_equal(l.batch_max, 100);
    assert_int_equal(l.request_bytes_max, 65536);
    assert_int_equal(l.window_max, 64);
    assert_int_equal(l.msg_bytes_max, CODEC_MSG_BYTES_DEFAULT);
}

static int setup(void **state)
{
    (void)state;
    setup_parts();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_roundtrip_every_type),
        cmocka_unit_test(test_codec_decoded_fields),
        cmocka_unit_test(test_codec_rejects_bad_lengths),
        cmocka_unit_test(test_codec_rejects_oversized_counts),
        cmocka_unit_test(test_codec_rejects_truncated_and_garbage),
        cmocka_unit_test(test_codec_rejects_amplification),
        cmocka_unit_test(test_codec_record_keys_and_values),
        cmocka_unit_test(test_codec_certificates),
        cmocka_unit_test(test_codec_limits_from_config),
    };
    return cmocka_run_group_tests_name("codec", tests, setup, NULL);
}
