/*
 * test_net.c - replica links: pairwise keys, sealed frames, delivery over
 * real NNG sockets (ipc://), refusal of frames not from genesis keys,
 * throttling of a flooding peer, and bundles of parts in one frame.
 */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "crypto.h"
#include "net.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N      4
#define FRAMES 64 /* sealed in the nonce test */

struct keys {
    uint8_t pk[N][32];
    uint8_t sk[N][64];
};

static void make_keys(struct keys *k)
{
    for (int i = 0; i < N; i++)
        crypto_sign_keypair(k->pk[i], k->sk[i]);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_net_pair_keys_agree(void **state)
{
    (void)state;
    struct keys k;
    make_keys(&k);
    uint8_t ab[32], ba[32], ac[32];
    assert_int_equal(net_pair_key(k.sk[0], k.pk[1], ab), LG_OK);
    assert_int_equal(net_pair_key(k.sk[1], k.pk[0], ba), LG_OK);
    assert_int_equal(net_pair_key(k.sk[0], k.pk[2], ac), LG_OK);
    assert_memory_equal(ab, ba, 32);
    assert_memory_not_equal(ab, ac, 32);
}

static void test_net_frame_opens_only_intact_under_its_key(void **state)
{
    (void)state;
    struct keys k;
    make_keys(&k);
    uint8_t key[32], other[32];
    assert_int_equal(net_pair_key(k.sk[0], k.pk[1], key), LG_OK);
    assert_int_equal(net_pair_key(k.sk[2], k.pk[1], other), LG_OK);
    const uint8_t msg[] = "a consensus message";
    uint8_t frame[sizeof(msg) + NET_OVERHEAD], pt[sizeof(msg)];
    net_frame_seal(key, 7, msg, sizeof(msg), frame);
    uint32_t sender = 0;
    assert_int_equal(net_frame_sender(frame, sizeof(frame), &sender), LG_OK);
    assert_int_equal(sender, 7);
    assert_int_equal(net_frame_open(key, frame, sizeof(frame), pt), LG_OK);
    assert_memory_equal(pt, msg, sizeof(msg));
    assert_int_equal(net_frame_open(other, frame, sizeof(frame), pt),
                     LG_EBADMSG);
    frame[NET_HDR_BYTES + 3] ^= 1;
    assert_int_equal(net_frame_open(key, frame, sizeof(frame), pt), LG_EBADMSG);
    assert_int_equal(net_frame_sender(frame, NET_OVERHEAD - 1, &sender),
                     LG_EBADMSG);
    assert_int_equal(net_frame_open(key, frame, 5, pt), LG_EBADMSG);
}

/* Every frame gets its own nonce, also in a forked child (which must not
 * repeat its parent's under the same key). */
static void test_net_frame_nonces_never_repeat(void **state)
{
    (void)state;
    struct keys k;
    make_keys(&k);
    uint8_t key[32];
    assert_int_equal(net_pair_key(k.sk[0], k.pk[1], key), LG_OK);
    const uint8_t msg[] = "same plaintext";
    uint8_t nonces[FRAMES][NET_HDR_BYTES - 4];
    uint8_t frame[sizeof(msg) + NET_OVERHEAD], pt[sizeof(msg)];
    for (int i = 0; i < FRAMES; i++) {
        net_frame_seal(key, 1, msg, sizeof(msg), frame);
        memcpy(nonces[i], frame + 4, sizeof(nonces[i]));
        assert_int_equal(net_frame_open(key, frame, sizeof(frame), pt), LG_OK);
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(nonces[i], nonces[j], sizeof(nonces[i]));
    }
    /* The child seals the next frame, as the parent then does: they differ
     * although both counters stand at the same value. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        net_frame_seal(key, 1, msg, sizeof(msg), frame);
        ssize_t w = write(fds[1], frame + 4, sizeof(nonces[0]));
        _exit(w == (ssize_t)sizeof(nonces[0]) ? 0 : 1);
    }
    close(fds[1]);
    uint8_t child[sizeof(nonces[0])];
    assert_int_equal(read(fds[0], child, sizeof(child)),
                     (ssize_t)sizeof(child));
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    net_frame_seal(key, 1, msg, sizeof(msg), frame);
    assert_memory_not_equal(child, frame + 4, sizeof(child));
    for (int j = 0; j < FRAMES; j++)
        assert_memory_not_equal(child, nonces[j], sizeof(child));
}

/* Bundles: whole parts only, none empty, nothing left over. */
static void test_net_bundle_check(void **state)
{
    (void)state;
    uint8_t b[32];
    size_t parts = 99;
    net_part_header(b, 3);
    memcpy(b + 4, "abc", 3);
    net_part_header(b + 7, 1);
    b[11] = 'z';
    assert_int_equal(net_bundle_check(b, 12, &parts), LG_OK);
    assert_int_equal(parts, 2);
    assert_int_equal(net_bundle_check(b, 7, &parts), LG_OK);
    assert_int_equal(parts, 1);
    assert_int_equal(net_bundle_check(b, 0, &parts), LG_EBADMSG);  /* none */
    assert_int_equal(net_bundle_check(b, 11, &parts), LG_EBADMSG); /* cut */
    assert_int_equal(net_bundle_check(b, 9, &parts), LG_EBADMSG);  /* header */
    assert_int_equal(net_bundle_check(b, 6, &parts), LG_EBADMSG);
    net_part_header(b + 7, 0); /* an empty part */
    assert_int_equal(net_bundle_check(b, 11, &parts), LG_EBADMSG);
    memset(b, 0xff, 8); /* a length far past the end */
    assert_int_equal(net_bundle_check(b, 8, &parts), LG_EBADMSG);
}

/* ---- live links over ipc:// --------------------------------------------- */

struct inbox {
    atomic_int count;
    atomic_uint last_from;
    uint8_t last[64];
    /* first byte and length of the first 256 messages, in order */
    uint8_t first[256];
    size_t lens[256];
};

static void on_recv(void *arg, uint32_t from, uint8_t *data, size_t len)
{
    struct inbox *in = arg;
    if (len <= sizeof(in->last))
        memcpy(in->last, data, len);
    int i = atomic_load(&in->count);
    if (i < 256) {
        in->first[i] = data[0];
        in->lens[i] = len;
    }
    atomic_store(&in->last_from, from);
    atomic_fetch_add(&in->count, 1);
    free(data);
}

struct cluster {
    struct keys k;
    char urls[N][96];
    const char *url_ptrs[N];
    struct net *nets[N];
    struct inbox in[N];
};

static void cluster_open(struct cluster *c, uint32_t rate, uint32_t burst)
{
    memset(c, 0, sizeof(*c));
    make_keys(&c->k);
    for (int i = 0; i < N; i++) {
        snprintf(c->urls[i], sizeof(c->urls[i]), "ipc:///tmp/tc-net-%d-%d-%d",
                 (int)getpid(), rand(), i);
        c->url_ptrs[i] = c->urls[i];
    }
    for (uint32_t i = 0; i < N; i++) {
        struct net_params p = {
            .self = i,
            .n = N,
            .sk = c->k.sk[i],
            .pks = (const uint8_t(*)[32])c->k.pk,
            .listen_url = c->urls[i],
            .peer_urls = c->url_ptrs,
            .recv_max_bytes = 1 << 20,
            .sendbuf = 64,
            .msgs_per_s = rate,
            .burst = burst,
            .recv = on_recv,
            .arg = &c->in[i],
        };
        char err[256];
        assert_int_equal(net_open(&p, &c->nets[i], err, sizeof(err)), LG_OK);
    }
}

static void cluster_close(struct cluster *c)
{
    for (int i = 0; i < N; i++)
        net_close(c->nets[i]);
}

static bool wait_count(struct inbox *in, int want, int ms)
{
    for (int t = 0; t < ms / 10; t++) {
        if (atomic_load(&in->count) >= want)
            return true;
        sleep_ms(10);
    }
    return atomic_load(&in->count) >= want;
}

static void test_net_delivers_and_broadcasts(void **state)
{
    (void)state;
    struct cluster c;
    cluster_open(&c, 10000, 10000);
    const uint8_t hello[] = "hello";
    /* Links connect in the background; sends before that are buffered. */
    assert_int_equal(net_send(c.nets[0], 1, hello, sizeof(hello)), LG_OK);
    assert_true(wait_count(&c.in[1], 1, 5000));
    assert_int_equal(atomic_load(&c.in[1].last_from), 0);
    assert_memory_equal(c.in[1].last, hello, sizeof(hello));
    net_broadcast(c.nets[2], hello, sizeof(hello));
    assert_true(wait_count(&c.in[0], 1, 5000));
    assert_true(wait_count(&c.in[1], 2, 5000));
    assert_true(wait_count(&c.in[3], 1, 5000));
    assert_int_equal(atomic_load(&c.in[2].count), 0); /* not to self */
    assert_int_equal(net_send(c.nets[0], 0, hello, 1), LG_EINVAL);
    struct net_stats st;
    for (int t = 0; t < 500; t++) {
        net_get_stats(c.nets[0], &st);
        if (st.peers_connected == N - 1)
            break;
        sleep_ms(10);
    }
    assert_int_equal(st.peers_connected, N - 1);
    assert_true(net_peer_connected(c.nets[0], 3));
    cluster_close(&c);
}

/* A host not in genesis (or claiming a replica's id without its key) gets
 * nowhere: its frames are counted and dropped. */
static void test_net_drops_frames_not_from_genesis_keys(void **state)
{
    (void)state;
    struct cluster c;
    cluster_open(&c, 10000, 10000);
    uint8_t stranger_pk[32], stranger_sk[64], key[32];
    crypto_sign_keypair(stranger_pk, stranger_sk);
    assert_int_equal(net_pair_key(stranger_sk, c.k.pk[1], key), LG_OK);
    const uint8_t msg[] = "let me in";
    uint8_t frame[sizeof(msg) + NET_OVERHEAD];
    net_frame_seal(key, 2, msg, sizeof(msg), frame); /* claims to be 2 */
    nng_socket s;
    assert_int_equal(nng_push0_open(&s), 0);
    assert_int_equal(nng_dial(s, c.urls[1], NULL, 0), 0);
    assert_int_equal(nng_send(s, frame, sizeof(frame), 0), 0);
    uint8_t junk[8] = {0, 0, 0, 9};
    assert_int_equal(nng_send(s, junk, sizeof(junk), 0), 0);
    struct net_stats st;
    for (int t = 0; t < 500; t++) {
        net_get_stats(c.nets[1], &st);
        if (st.dropped_bad_frame >= 2)
            break;
        sleep_ms(10);
    }
    assert_int_equal(st.dropped_bad_frame, 2);
    assert_int_equal(atomic_load(&c.in[1].count), 0);
    nng_close(s);
    cluster_close(&c);
}

/* Parts sent together arrive as one frame, each delivered alone and in
 * order; parts past the bundle size go in further frames; an authentic
 * frame that is not a bundle is dropped. */
static void test_net_bundles_parts(void **state)
{
    (void)state;
    struct cluster c;
    cluster_open(&c, 100000, 100000);
    const uint8_t *parts[5];
    size_t lens[5] = {1, 2, 0, 3, 200000};
    uint8_t *big = calloc(1, lens[4]);
    assert_non_null(big);
    big[0] = 'E';
    parts[0] = (const uint8_t *)"A";
    parts[1] = (const uint8_t *)"BB";
    parts[2] = (const uint8_t *)"";
    parts[3] = (const uint8_t *)"DDD";
    parts[4] = big;
    assert_int_equal(net_send_parts(c.nets[0], 1, parts, lens, 5), LG_OK);
    assert_true(wait_count(&c.in[1], 4, 5000));
    assert_int_equal(atomic_load(&c.in[1].count),
                     4); /* the empty one skipped */
    assert_memory_equal(c.in[1].first, "ABDE", 4);
    assert_int_equal(c.in[1].lens[3], 200000);
    struct net_stats st;
    net_get_stats(c.nets[1], &st);
    assert_int_equal(st.frames_in, 1);

    /* 5 parts of 100 KB: 256 KiB bundles hold two each, so three frames. */
    const uint8_t *many[5];
    size_t mlens[5];
    uint8_t *blocks = calloc(5, 100000);
    assert_non_null(blocks);
    for (int i = 0; i < 5; i++) {
        blocks[(size_t)i * 100000] = (uint8_t)('0' + i);
        many[i] = blocks + (size_t)i * 100000;
        mlens[i] = 100000;
    }
    assert_int_equal(net_send_parts(c.nets[2], 3, many, mlens, 5), LG_OK);
    assert_true(wait_count(&c.in[3], 5, 5000));
    assert_memory_equal(c.in[3].first, "01234", 5);
    net_get_stats(c.nets[3], &st);
    assert_int_equal(st.frames_in, 3);

    /* An authentic frame whose plaintext is no bundle. */
    uint8_t key[32];
    assert_int_equal(net_pair_key(c.k.sk[2], c.k.pk[1], key), LG_OK);
    const uint8_t bad[] = {0, 0, 0, 9, 'x'};
    uint8_t frame[sizeof(bad) + NET_OVERHEAD];
    net_frame_seal(key, 2, bad, sizeof(bad), frame);
    nng_socket s;
    assert_int_equal(nng_push0_open(&s), 0);
    assert_int_equal(nng_dial(s, c.urls[1], NULL, 0), 0);
    assert_int_equal(nng_send(s, frame, sizeof(frame), 0), 0);
    for (int t = 0; t < 500; t++) {
        net_get_stats(c.nets[1], &st);
        if (st.dropped_bad_frame >= 1)
            break;
        sleep_ms(10);
    }
    assert_int_equal(st.dropped_bad_frame, 1);
    assert_int_equal(atomic_load(&c.in[1].count), 4);
    nng_close(s);
    free(big);
    free(blocks);
    cluster_close(&c);
}

/* 50 messages from a peer allowed 5 at once, then 1 per second: frame by
 * frame or in one bundle (each part takes a token), about 5 get through. */
static void flood(bool bundled)
{
    struct cluster c;
    cluster_open(&c, 1, 5);
    const uint8_t *parts[50];
    size_t lens[50];
    for (int i = 0; i < 50; i++) {
        parts[i] = (const uint8_t *)"x";
        lens[i] = 1;
        if (!bundled)
            (void)net_send(c.nets[0], 1, parts[i], lens[i]);
    }
    if (bundled)
        assert_int_equal(net_send_parts(c.nets[0], 1, parts, lens, 50), LG_OK);
    struct net_stats st;
    for (int t = 0; t < 500; t++) {
        net_get_stats(c.nets[1], &st);
        if (st.dropped_throttled + (uint64_t)atomic_load(&c.in[1].count) >= 50)
            break;
        sleep_ms(10);
    }
    int got = atomic_load(&c.in[1].count);
    /* Slow delivery of single frames may let a few refills in; one
     * bundle is handled at once. */
    int most = bundled ? 7 : 12;
    assert_true(got >= 5);
    assert_true(got <= most);
    assert_true(st.dropped_throttled >= (uint64_t)(50 - most));
    cluster_close(&c);
}

static void test_net_throttles_a_flooding_peer(void **state)
{
    (void)state;
    flood(false);
}

static void test_net_throttles_bundled_parts(void **state)
{
    (void)state;
    flood(true);
}

int main(void)
{
    if (crypto_setup() != LG_OK)
        return 1;
    srand((unsigned)time(NULL));
    lg_log_set_level(LG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_pair_keys_agree),
        cmocka_unit_test(test_net_frame_opens_only_intact_under_its_key),
        cmocka_unit_test(test_net_delivers_and_broadcasts),
        cmocka_unit_test(test_net_drops_frames_not_from_genesis_keys),
        cmocka_unit_test(test_net_throttles_a_flooding_peer),
        cmocka_unit_test(test_net_frame_nonces_never_repeat),
        cmocka_unit_test(test_net_bundle_check),
        cmocka_unit_test(test_net_bundles_parts),
        cmocka_unit_test(test_net_throttles_bundled_parts),
    };
    int failed = cmocka_run_group_tests_name("net", tests, NULL, NULL);
    /* Every socket is closed: let NNG reap what it still holds, so the
     * leak check at exit does not race its reaper thread. */
    nng_fini();
    return failed;
}
