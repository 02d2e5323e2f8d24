/*
 * test_net.c - replica links: pairwise keys, sealed frames, delivery over
 * real NNG sockets (ipc://), refusal of frames not from genesis keys, and
 * throttling of a flooding peer.
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
#include <time.h>
#include <unistd.h>

#define N 4

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

/* ---- live links over ipc:// --------------------------------------------- */

struct inbox {
    atomic_int count;
    atomic_uint last_from;
    uint8_t last[64];
};

static void on_recv(void *arg, uint32_t from, uint8_t *data, size_t len)
{
    struct inbox *in = arg;
    if (len <= sizeof(in->last))
        memcpy(in->last, data, len);
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

static void test_net_throttles_a_flooding_peer(void **state)
{
    (void)state;
    struct cluster c;
    cluster_open(&c, 1, 5); /* 5 at once, then 1 per second */
    const uint8_t m[] = "x";
    for (int i = 0; i < 50; i++)
        (void)net_send(c.nets[0], 1, m, sizeof(m));
    struct net_stats st;
    for (int t = 0; t < 500; t++) {
        net_get_stats(c.nets[1], &st);
        if (st.dropped_throttled + (uint64_t)atomic_load(&c.in[1].count) >= 50)
            break;
        sleep_ms(10);
    }
    int got = atomic_load(&c.in[1].count);
    assert_true(got >= 5);
    assert_true(got <= 12); /* slow delivery may let a few refills in */
    assert_true(st.dropped_throttled >= 38);
    cluster_close(&c);
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
    };
    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
