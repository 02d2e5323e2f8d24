/* Unit tests for node/byz.c: each Byzantine mode turns one outgoing
 * message into the attack it names, re-signed where the attack needs a
 * valid signature (checked with the same fake crypto the core is given,
 * and for VIEW-CHANGE by a real core). */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "byz.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define N      4
#define WINDOW 8

/* ---- fake crypto: sig = SHA-256(replica id || statement) --------------- */

static uint32_t signer_id;

static void fake_hash(void *ctx, const uint8_t *data, size_t len,
                      uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    crypto_hash_sha256(out, data, len);
}

static void fake_sig(uint32_t id, const uint8_t *msg, size_t len,
                     uint8_t sig[PBFT_SIG_SIZE])
{
    crypto_hash_sha256_state st;
    uint8_t key[4] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16),
                      (uint8_t)(id >> 8), (uint8_t)id};
    memset(sig, 0, PBFT_SIG_SIZE);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, key, sizeof(key));
    crypto_hash_sha256_update(&st, msg, len);
    crypto_hash_sha256_final(&st, sig);
}

static void fake_sign(void *ctx, const uint8_t *msg, size_t len,
                      uint8_t sig[PBFT_SIG_SIZE])
{
    fake_sig(*(const uint32_t *)ctx, msg, len, sig);
}

static bool fake_verify(void *ctx, uint32_t replica, const uint8_t *msg,
                        size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    (void)ctx;
    uint8_t want[PBFT_SIG_SIZE];
    fake_sig(replica, msg, len, want);
    return memcmp(want, sig, PBFT_SIG_SIZE) == 0;
}

static bool fake_verify_request(void *ctx, const struct pbft_request *req)
{
    (void)ctx;
    return req->len >= 1 && req->data[0] == 'R';
}

static void fake_crypto(struct pbft_crypto *c, uint32_t *id)
{
    memset(c, 0, sizeof(*c));
    c->ctx = id;
    c->hash = fake_hash;
    c->sign = fake_sign;
    c->verify = fake_verify;
    c->verify_request = fake_verify_request;
}

static struct byz *new_byz(enum byz_mode mode, uint32_t self)
{
    struct byz_params p;
    memset(&p, 0, sizeof(p));
    p.mode = mode;
    p.self = self;
    p.n = N;
    memset(p.chain_id, 0xc1, sizeof(p.chain_id));
    p.watermark_window = WINDOW;
    p.seed = 5;
    signer_id = self;
    fake_crypto(&p.crypto, &signer_id);
    struct byz *b = NULL;
    assert_int_equal(byz_new(&p, &b), LG_OK);
    return b;
}

static bool vote_signed_by(enum pbft_msg_type type, uint32_t replica,
                           const struct pbft_vote *v)
{
    uint8_t chain[PBFT_CHAIN_ID_SIZE], stmt[PBFT_VOTE_STATEMENT_MAX];
    memset(chain, 0xc1, sizeof(chain));
    size_t len = pbft_vote_statement(type, chain, v, stmt, sizeof(stmt));
    return len > 0 && fake_verify(NULL, replica, stmt, len, v->sig);
}

static void sign_vote(enum pbft_msg_type type, uint32_t replica,
                      struct pbft_vote *v)
{
    uint8_t chain[PBFT_CHAIN_ID_SIZE], stmt[PBFT_VOTE_STATEMENT_MAX];
    memset(chain, 0xc1, sizeof(chain));
    size_t len = pbft_vote_statement(type, chain, v, stmt, sizeof(stmt));
    fake_sig(replica, stmt, len, v->sig);
}

/* A pre-prepare by replica 0 for (view 0, seq) with two requests. */
static uint8_t req_data[2][8] = {"Rfirst", "Rsecond"};

static struct pbft_msg make_pp(pbft_seq seq, struct pbft_request reqs[2])
{
    struct pbft_crypto c;
    uint32_t id = 0;
    fake_crypto(&c, &id);
    for (int i = 0; i < 2; i++) {
        memset(&reqs[i], 0, sizeof(reqs[i]));
        reqs[i].client[0] = (uint8_t)(i + 1);
        reqs[i].req_no = 1;
        reqs[i].len = 7;
        reqs[i].data = req_data[i];
    }
    struct pbft_msg m = {.type = PBFT_MSG_PREPREPARE};
    m.u.pp.hdr.replica = 0;
    m.u.pp.hdr.view = 0;
    m.u.pp.hdr.seq = seq;
    m.u.pp.hdr.timestamp_ms = 1000;
    m.u.pp.n_requests = 2;
    m.u.pp.requests = reqs;
    pbft_batch_digest(&c, reqs, 2, m.u.pp.hdr.digest);
    sign_vote(PBFT_MSG_PREPREPARE, 0, &m.u.pp.hdr);
    return m;
}

static struct pbft_msg make_vote(enum pbft_msg_type type, uint32_t replica,
                                 pbft_view view, pbft_seq seq)
{
    struct pbft_msg m = {.type = type};
    m.u.vote.replica = replica;
    m.u.vote.view = view;
    m.u.vote.seq = seq;
    memset(m.u.vote.digest, 0x42, PBFT_DIGEST_SIZE);
    sign_vote(type, replica, &m.u.vote);
    return m;
}

static void test_byz_mode_names_roundtrip(void **state)
{
    (void)state;
    const char *names[] = {"equivocate",    "badsig",  "replay",
                           "out-of-window", "vc-spam", "off"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum byz_mode m;
        assert_int_equal(byz_mode_parse(names[i], &m), LG_OK);
        assert_string_equal(byz_mode_name(m), names[i]);
    }
    enum byz_mode m;
    assert_int_equal(byz_mode_parse(NULL, &m), LG_OK);
    assert_int_equal(m, BYZ_OFF);
    assert_int_equal(byz_mode_parse("evil", &m), LG_ECONFIG);
    assert_int_equal(m, BYZ_OFF);
}

static void test_byz_rejects_bad_params(void **state)
{
    (void)state;
    struct byz_params p;
    struct byz *b = NULL;
    memset(&p, 0, sizeof(p));
    p.n = N;
    p.self = N; /* out of range */
    fake_crypto(&p.crypto, &signer_id);
    assert_int_equal(byz_new(&p, &b), LG_EINVAL);
    p.self = 0;
    p.crypto.sign = NULL;
    assert_int_equal(byz_new(&p, &b), LG_EINVAL);
    byz_free(NULL);
}

static void test_byz_off_passes_through(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_OFF, 0);
    struct pbft_request reqs[2];
    struct pbft_msg m = make_pp(1, reqs);
    struct byz_out out;
    assert_int_equal(byz_transform(b, PBFT_BROADCAST, &m, &out), LG_OK);
    assert_int_equal(out.n_sends, 1);
    assert_ptr_equal(out.sends[0].msg, &m);
    assert_int_equal(out.sends[0].to, PBFT_BROADCAST);
    byz_free(b);
}

static void test_byz_equivocate_splits_preprepare(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_EQUIVOCATE, 0);
    struct pbft_request reqs[2];
    struct pbft_msg m = make_pp(3, reqs);
    struct byz_out out;
    assert_int_equal(byz_transform(b, PBFT_BROADCAST, &m, &out), LG_OK);
    assert_int_equal(out.n_sends, N - 1);
    const struct pbft_msg *to1 = NULL, *to3 = NULL;
    for (uint32_t i = 0; i < out.n_sends; i++) {
        assert_int_not_equal(out.sends[i].to, 0); /* never to itself */
        assert_int_not_equal(out.sends[i].to, PBFT_BROADCAST);
        if (out.sends[i].to == 1)
            to1 = out.sends[i].msg;
        if (out.sends[i].to == 3)
            to3 = out.sends[i].msg;
    }
    assert_non_null(to1);
    assert_non_null(to3);
    /* the same slot, two different batches, both properly signed */
    assert_true(to1->u.pp.hdr.seq == 3 && to3->u.pp.hdr.seq == 3);
    assert_true(to1->u.pp.hdr.view == to3->u.pp.hdr.view);
    assert_memory_not_equal(to1->u.pp.hdr.digest, to3->u.pp.hdr.digest,
                            PBFT_DIGEST_SIZE);
    assert_true(vote_signed_by(PBFT_MSG_PREPREPARE, 0, &to1->u.pp.hdr));
    assert_true(vote_signed_by(PBFT_MSG_PREPREPARE, 0, &to3->u.pp.hdr));
    struct pbft_crypto c;
    uint32_t id = 0;
    uint8_t d[PBFT_DIGEST_SIZE];
    fake_crypto(&c, &id);
    pbft_batch_digest(&c, to3->u.pp.requests, to3->u.pp.n_requests, d);
    assert_memory_equal(d, to3->u.pp.hdr.digest, PBFT_DIGEST_SIZE);

    /* an empty batch is answered with a forged one-request batch */
    m.u.pp.n_requests = 0;
    pbft_batch_digest(&c, NULL, 0, m.u.pp.hdr.digest);
    sign_vote(PBFT_MSG_PREPREPARE, 0, &m.u.pp.hdr);
    assert_int_equal(byz_transform(b, 2, &m, &out), LG_OK);
    assert_int_equal(out.n_sends, 1);
    assert_int_equal(out.sends[0].msg->u.pp.n_requests, 1);
    byz_free(b);
}

static void test_byz_equivocate_splits_votes(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_EQUIVOCATE, 2);
    struct pbft_msg m = make_vote(PBFT_MSG_COMMIT, 2, 1, 9);
    struct byz_out out;
    assert_int_equal(byz_transform(b, PBFT_BROADCAST, &m, &out), LG_OK);
    assert_int_equal(out.n_sends, N - 1);
    int real = 0, fake = 0;
    for (uint32_t i = 0; i < out.n_sends; i++) {
        const struct pbft_vote *v = &out.sends[i].msg->u.vote;
        assert_true(vote_signed_by(PBFT_MSG_COMMIT, 2, v));
        if (memcmp(v->digest, m.u.vote.digest, PBFT_DIGEST_SIZE) == 0)
            real++;
        else
            fake++;
    }
    assert_int_equal(real, 1);
    assert_int_equal(fake, 2);
    /* checkpoints are not equivocated */
    struct pbft_msg ck = make_vote(PBFT_MSG_CHECKPOINT, 2, 0, 4);
    assert_int_equal(byz_transform(b, PBFT_BROADCAST, &ck, &out), LG_OK);
    assert_int_equal(out.n_sends, 1);
    assert_ptr_equal(out.sends[0].msg, &ck);
    byz_free(b);
}

static void test_byz_badsig_breaks_every_signature(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_BADSIG, 0);
    struct pbft_request reqs[2];
    struct pbft_msg pp = make_pp(1, reqs);
    struct byz_out out;
    assert_int_equal(byz_transform(b, 1, &pp, &out), LG_OK);
    assert_int_equal(out.n_sends, 1);
    assert_int_equal(out.sends[0].to, 1);
    assert_false(
        vote_signed_by(PBFT_MSG_PREPREPARE, 0, &out.sends[0].msg->u.pp.hdr));

    enum pbft_msg_type votes[] = {PBFT_MSG_PREPARE, PBFT_MSG_COMMIT,
                                  PBFT_MSG_CHECKPOINT};
    for (size_t i = 0; i < 3; i++) {
        struct pbft_msg v = make_vote(votes[i], 0, 0, 2);
        assert_true(vote_signed_by(votes[i], 0, &v.u.vote));
        assert_int_equal(byz_transform(b, PBFT_BROADCAST, &v, &out), LG_OK);
        assert_false(vote_signed_by(votes[i], 0, &out.sends[0].msg->u.vote));
        assert_memory_equal(out.sends[0].msg->u.vote.sig + 1, v.u.vote.sig + 1,
                            PBFT_SIG_SIZE - 1);
    }

    struct pbft_msg rq = {.type = PBFT_MSG_REQUEST};
    rq.u.request = reqs[0];
    assert_int_equal(byz_transform(b, 0, &rq, &out), LG_OK);
    const struct pbft_request *r2 = &out.sends[0].msg->u.request;
    assert_int_equal(r2->len, reqs[0].len);
    assert_memory_not_equal(r2->data, reqs[0].data, reqs[0].len);

    struct pbft_msg fe = {.type = PBFT_MSG_FETCH};
    fe.u.fetch.replica = 0;
    fe.u.fetch.seq = 7;
    assert_int_equal(byz_transform(b, 3, &fe, &out), LG_OK);
    assert_int_equal(out.sends[0].msg->u.fetch.sig[0], 1);
    byz_free(b);
}

static void test_byz_replay_resends_old_messages(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_REPLAY, 1);
    struct byz_out out;
    uint32_t replayed = 0;
    for (pbft_seq s = 1; s <= 200; s++) {
        struct pbft_msg m = make_vote(PBFT_MSG_PREPARE, 1, 0, s);
        assert_int_equal(byz_transform(b, PBFT_BROADCAST, &m, &out), LG_OK);
        assert_true(out.n_sends >= 1);
        assert_true(out.n_sends <= 1 + BYZ_REPLAY_PER_SEND);
        assert_ptr_equal(out.sends[0].msg, &m);
        for (uint32_t i = 1; i < out.n_sends; i++) {
            const struct pbft_vote *v = &out.sends[i].msg->u.vote;
            /* an older message of ours, still validly signed */
            assert_true(v->seq < s);
            assert_true(s - v->seq <= BYZ_REPLAY_KEEP);
            assert_true(vote_signed_by(PBFT_MSG_PREPARE, 1, v));
            replayed++;
        }
    }
    assert_true(replayed > 300);
    byz_free(b);
}

static void test_byz_out_of_window_adds_far_copy(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_OUT_OF_WINDOW, 0);
    struct pbft_request reqs[2];
    struct pbft_msg pp = make_pp(5, reqs);
    struct byz_out out;
    assert_int_equal(byz_transform(b, PBFT_BROADCAST, &pp, &out), LG_OK);
    assert_int_equal(out.n_sends, 2);
    assert_ptr_equal(out.sends[0].msg, &pp);
    const struct pbft_msg *far = out.sends[1].msg;
    assert_true(far->u.pp.hdr.seq == 5 + 4 * WINDOW + 1);
    assert_true(vote_signed_by(PBFT_MSG_PREPREPARE, 0, &far->u.pp.hdr));
    assert_memory_equal(far->u.pp.hdr.digest, pp.u.pp.hdr.digest,
                        PBFT_DIGEST_SIZE);

    struct pbft_msg ck = make_vote(PBFT_MSG_CHECKPOINT, 0, 0, UINT64_MAX - 3);
    assert_int_equal(byz_transform(b, 2, &ck, &out), LG_OK);
    assert_int_equal(out.n_sends, 2);
    assert_true(out.sends[1].msg->u.vote.seq == UINT64_MAX); /* saturates */
    assert_int_equal(out.sends[1].to, 2);
    byz_free(b);
}

/* A real core (replica 1 of 4) judges the VIEW-CHANGE signatures. */
static struct pbft *real_core(uint32_t *id)
{
    struct pbft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    pbft_config_defaults(&cfg);
    cfg.n = N;
    cfg.self = 1;
    memset(cfg.chain_id, 0xc1, sizeof(cfg.chain_id));
    cfg.checkpoint_interval = 1;
    cfg.watermark_window = WINDOW;
    *id = 1;
    fake_crypto(&cfg.crypto, id);
    const char *why = NULL;
    struct pbft *p = pbft_new(&cfg, &why);
    assert_non_null(p);
    struct pbft_ready rd;
    uint8_t g[PBFT_DIGEST_SIZE];
    memset(g, 0, sizeof(g));
    assert_int_equal(pbft_start(p, 0, g, 1000, &rd), PBFT_OK);
    pbft_advance(p);
    return p;
}

static void test_byz_vc_spam_signs_views_a_core_accepts(void **state)
{
    (void)state;
    struct byz *b = new_byz(BYZ_VC_SPAM, 0);
    struct byz *bad = new_byz(BYZ_BADSIG, 0);
    uint32_t core_id;
    struct pbft *p = real_core(&core_id);
    struct byz_out out;
    pbft_view last = 0;
    for (pbft_seq s = 1; s <= 5; s++) {
        struct pbft_msg m = make_vote(PBFT_MSG_COMMIT, 0, 0, s);
        signer_id = 0;
        assert_int_equal(byz_transform(b, PBFT_BROADCAST, &m, &out), LG_OK);
        assert_int_equal(out.n_sends, 2);
        assert_ptr_equal(out.sends[0].msg, &m);
        const struct pbft_msg *vc = out.sends[1].msg;
        assert_int_equal(vc->type, PBFT_MSG_VIEW_CHANGE);
        assert_int_equal(out.sends[1].to, PBFT_BROADCAST);
        assert_true(vc->u.vc.new_view > last);
        last = vc->u.vc.new_view;

        /* the VIEW-CHANGE with one flipped byte is caught; the real one
         * (fed second: a duplicate is dropped before its signature is
         * read) verifies */
        struct pbft_status before, after;
        struct byz_out out2;
        struct pbft_ready rd;
        struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = 1000 + s};
        ev.u.receive.from = 0;
        assert_int_equal(byz_transform(bad, PBFT_BROADCAST, vc, &out2), LG_OK);
        pbft_get_status(p, &before);
        ev.u.receive.msg = out2.sends[0].msg;
        (void)pbft_step(p, &ev, &rd);
        pbft_advance(p);
        pbft_get_status(p, &after);
        assert_true(after.bad_signatures == before.bad_signatures + 1);
        ev.u.receive.msg = vc;
        assert_int_equal(pbft_step(p, &ev, &rd), PBFT_OK);
        pbft_advance(p);
        pbft_get_status(p, &after);
        assert_true(after.bad_signatures == before.bad_signatures + 1);
    }
    /* one replica's spam never moves the honest replica's view */
    struct pbft_status st;
    pbft_get_status(p, &st);
    assert_true(st.view == 0);
    pbft_free(p);
    byz_free(b);
    byz_free(bad);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byz_mode_names_roundtrip),
        cmocka_unit_test(test_byz_rejects_bad_params),
        cmocka_unit_test(test_byz_off_passes_through),
        cmocka_unit_test(test_byz_equivocate_splits_preprepare),
        cmocka_unit_test(test_byz_equivocate_splits_votes),
        cmocka_unit_test(test_byz_badsig_breaks_every_signature),
        cmocka_unit_test(test_byz_replay_resends_old_messages),
        cmocka_unit_test(test_byz_out_of_window_adds_far_copy),
        cmocka_unit_test(test_byz_vc_spam_signs_views_a_core_accepts),
    };
    return cmocka_run_group_tests_name("byz", tests, NULL, NULL);
}
