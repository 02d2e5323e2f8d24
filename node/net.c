/*
 * net.c - replica links: PULL listener, one PUSH dialer per peer, frames
 * sealed with crypto_box under pairwise keys derived from genesis keys.
 */
#include "net.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

_Static_assert(NET_MAC_BYTES == crypto_box_MACBYTES, "box mac size");
_Static_assert(NET_HDR_BYTES == 4 + crypto_box_NONCEBYTES, "box nonce size");
_Static_assert(crypto_box_BEFORENMBYTES == 32, "pairwise key size");

#define NET_THROTTLE_LOG_MS 1000u

struct net_peer {
    struct net *net;
    uint32_t id;
    nng_socket push;
    bool open;
    bool present;     /* a replica holds this slot (under n->mu) */
    char url[256];    /* what push dials */
    atomic_int pipes; /* connected outgoing pipes */
    uint8_t *key;     /* 32 bytes in n->keys (sodium_malloc) */
    /* Kept for every send instead of nng_sendmsg's aio per call (NNG 1.5
     * allocates one and draws a random number for it with a getrandom
     * call, twice a frame with the nonce). Sends come from one thread
     * (the node's loop, net.h). */
    nng_aio *send_aio;
    /* token bucket, touched only by the single receive callback */
    double tokens;
    unsigned long long refill_ms;
    unsigned long long throttle_logged_ms;
    uint64_t throttled_since_log;
};

struct net {
    uint32_t self, n;
    uint32_t recv_max;
    double rate, burst;
    net_recv_fn recv;
    void *arg;
    nng_socket pull;
    bool pull_open;
    nng_aio *rx;
    /* NET_MAX_PEERS * 32, sodium_malloc, read-only but while net_update
     * writes it. mu guards keys, present and n against the receive
     * callback: net_update runs on the caller's thread. */
    uint8_t *keys;
    pthread_mutex_t mu;
    struct net_peer peers[NET_MAX_PEERS];
    atomic_uint_fast64_t frames_in, frames_out, bytes_in, bytes_out,
        dropped_bad, dropped_throttled, dropped_full;
    unsigned long long bad_logged_ms;
};

/* ---- frames ---------------------------------------------------------------
 */

/* Frame headers (the sender) and bundle parts (their length) are 32-bit
 * big-endian. */
static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int net_pair_key(const uint8_t my_sk[64], const uint8_t their_pk[32],
                 uint8_t key[32])
{
    uint8_t xsk[crypto_scalarmult_curve25519_BYTES];
    uint8_t xpk[crypto_scalarmult_curve25519_BYTES];
    int rv = LG_OK;
    if (crypto_sign_ed25519_sk_to_curve25519(xsk, my_sk) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(xpk, their_pk) != 0 ||
        crypto_box_beforenm(key, xpk, xsk) != 0)
        rv = LG_EBADSIG;
    sodium_memzero(xsk, sizeof(xsk));
    return rv;
}

/* Frame nonces: a random 16-byte prefix drawn once per process and a
 * 64-bit counter, so no two frames of any process share a nonce (a
 * random 24-byte nonce per frame cost a getrandom call per frame). Both
 * ends of a link seal under the same pairwise key, and across restarts
 * too; distinct random prefixes keep their nonces apart. */
static uint8_t nonce_prefix[crypto_box_NONCEBYTES - 8];
static atomic_uint_fast64_t nonce_counter;
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;

static void nonce_redraw(void)
{
    randombytes_buf(nonce_prefix, sizeof(nonce_prefix));
}

/* A forked child draws its own prefix: it must not repeat its parent's
 * nonces under the same keys. */
static void nonce_init(void)
{
    nonce_redraw();
    (void)pthread_atfork(NULL, NULL, nonce_redraw);
}

static void frame_nonce(uint8_t out[crypto_box_NONCEBYTES])
{
    pthread_once(&nonce_once, nonce_init);
    uint64_t c = atomic_fetch_add(&nonce_counter, 1);
    memcpy(out, nonce_prefix, sizeof(nonce_prefix));
    be32_put(out + sizeof(nonce_prefix), (uint32_t)(c >> 32));
    be32_put(out + sizeof(nonce_prefix) + 4, (uint32_t)c);
}

void net_frame_seal(const uint8_t key[32], uint32_t sender, const uint8_t *pt,
                    size_t len, uint8_t *out)
{
    be32_put(out, sender);
    frame_nonce(out + 4);
    crypto_box_easy_afternm(out + NET_HDR_BYTES, pt, len, out + 4, key);
}

int net_frame_sender(const uint8_t *frame, size_t len, uint32_t *sender)
{
    if (len < NET_OVERHEAD)
        return LG_EBADMSG;
    *sender = be32_get(frame);
    return LG_OK;
}

int net_frame_open(const uint8_t key[32], const uint8_t *frame, size_t len,
                   uint8_t *pt)
{
    if (len < NET_OVERHEAD)
        return LG_EBADMSG;
    if (crypto_box_open_easy_afternm(pt, frame + NET_HDR_BYTES,
                                     len - NET_HDR_BYTES, frame + 4, key) != 0)
        return LG_EBADMSG;
    return LG_OK;
}

void net_part_header(uint8_t hdr[NET_PART_HDR], size_t len)
{
    be32_put(hdr, (uint32_t)len); /* within the 32-bit receive limit */
}

int net_bundle_check(const uint8_t *pt, size_t len, size_t *parts)
{
    size_t pos = 0, k = 0;
    while (pos < len) {
        if (len - pos < NET_PART_HDR)
            return LG_EBADMSG;
        size_t plen = be32_get(pt + pos);
        pos += NET_PART_HDR;
        if (plen == 0 || plen > len - pos)
            return LG_EBADMSG;
        pos += plen;
        k++;
    }
    if (k == 0)
        return LG_EBADMSG;
    *parts = k;
    return LG_OK;
}

/* ---- receive --------------------------------------------------------------
 */

static void net_drop_bad(struct net *n, const char *why, size_t len)
{
    atomic_fetch_add(&n->dropped_bad, 1);
    unsigned long long now = lg_mono_ms();
    if (now - n->bad_logged_ms >= NET_THROTTLE_LOG_MS) {
        n->bad_logged_ms = now;
        lg_log(LG_WARN, "peer_frame_dropped", "reason=%s bytes=%zu total=%llu",
               why, len, (unsigned long long)atomic_load(&n->dropped_bad));
    }
}

/* True when the sender may send one more frame now. */
static bool net_bucket_take(struct net *n, struct net_peer *p)
{
    unsigned long long now = lg_mono_ms();
    if (now > p->refill_ms) {
        p->tokens += (double)(now - p->refill_ms) * n->rate / 1000.0;
        if (p->tokens > n->burst)
            p->tokens = n->burst;
        p->refill_ms = now;
    }
    if (p->tokens >= 1.0) {
        p->tokens -= 1.0;
        return true;
    }
    p->throttled_since_log++;
    atomic_fetch_add(&n->dropped_throttled, 1);
    if (now - p->throttle_logged_ms >= NET_THROTTLE_LOG_MS) {
        lg_log(LG_WARN, "peer_throttled", "peer=%u dropped=%llu rate=%.0f/s",
               p->id, (unsigned long long)p->throttled_since_log, n->rate);
        p->throttle_logged_ms = now;
        p->throttled_since_log = 0;
    }
    return false;
}

static void net_handle_frame(struct net *n, const uint8_t *frame, size_t len)
{
    uint32_t from;
    if (net_frame_sender(frame, len, &from) != LG_OK) {
        net_drop_bad(n, "short", len);
        return;
    }
    uint8_t key[32];
    pthread_mutex_lock(&n->mu);
    bool known = from < n->n && from != n->self && n->peers[from].present;
    if (known)
        memcpy(key, n->peers[from].key, 32);
    pthread_mutex_unlock(&n->mu);
    if (!known) {
        net_drop_bad(n, "unknown-sender", len);
        return;
    }
    struct net_peer *p = &n->peers[from];
    if (!net_bucket_take(n, p)) {
        sodium_memzero(key, sizeof(key));
        return;
    }
    size_t pt_len = len - NET_OVERHEAD;
    uint8_t *pt = malloc(pt_len > 0 ? pt_len : 1);
    if (pt == NULL) {
        sodium_memzero(key, sizeof(key));
        net_drop_bad(n, "no-memory", len);
        return;
    }
    int orv = net_frame_open(key, frame, len, pt);
    sodium_memzero(key, sizeof(key));
    if (orv != LG_OK) {
        free(pt);
        net_drop_bad(n, "not-authentic", len);
        return;
    }
    size_t parts;
    if (net_bundle_check(pt, pt_len, &parts) != LG_OK) {
        free(pt);
        net_drop_bad(n, "malformed-bundle", len);
        return;
    }
    atomic_fetch_add(&n->frames_in, 1);
    atomic_fetch_add(&n->bytes_in, len);
    if (parts == 1) {
        /* The common case at low load: hand over the buffer itself. */
        size_t plen = pt_len - NET_PART_HDR;
        memmove(pt, pt + NET_PART_HDR, plen);
        n->recv(n->arg, from, pt, plen);
        return;
    }
    /* Each part counts against the bucket as a frame would (the first
     * took the frame's token): bundling must not let a peer exceed its
     * rate. */
    for (size_t pos = 0; pos < pt_len;) {
        size_t plen = be32_get(pt + pos);
        bool ok = pos == 0 || net_bucket_take(n, p);
        pos += NET_PART_HDR;
        uint8_t *part = ok ? malloc(plen) : NULL;
        if (part != NULL) {
            memcpy(part, pt + pos, plen);
            n->recv(n->arg, from, part, plen);
        }
        pos += plen;
    }
    free(pt);
}

static void net_rx_cb(void *arg)
{
    struct net *n = arg;
    int rv = nng_aio_result(n->rx);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    if (rv == 0) {
        nng_msg *m = nng_aio_get_msg(n->rx);
        net_handle_frame(n, nng_msg_body(m), nng_msg_len(m));
        nng_msg_free(m);
    } else {
        net_drop_bad(n, nng_strerror(rv), 0);
    }
    nng_recv_aio(n->pull, n->rx);
}

/* ---- links ----------------------------------------------------------------
 */

static void net_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    struct net_peer *p = arg;
    (void)pipe;
    if (ev == NNG_PIPE_EV_ADD_POST) {
        if (atomic_fetch_add(&p->pipes, 1) == 0)
            lg_log(LG_INFO, "peer_connected", "peer=%u", p->id);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        if (atomic_fetch_sub(&p->pipes, 1) == 1)
            lg_log(LG_INFO, "peer_disconnected", "peer=%u", p->id);
    }
}

static int net_dial_peer(struct net *n, struct net_peer *p, const char *url,
                         uint32_t sendbuf, char *err, size_t err_len)
{
    int rv = nng_push0_open(&p->push);
    if (rv != 0) {
        snprintf(err, err_len, "cannot open a link to replica %u: %s.", p->id,
                 nng_strerror(rv));
        return LG_ENET;
    }
    p->open = true;
    snprintf(p->url, sizeof(p->url), "%s", url);
    (void)nng_socket_set_int(p->push, NNG_OPT_SENDBUF,
                             (int)(sendbuf > 8192 ? 8192 : sendbuf));
    (void)nng_socket_set_ms(p->push, NNG_OPT_RECONNMINT, 100);
    (void)nng_socket_set_ms(p->push, NNG_OPT_RECONNMAXT, 2000);
    (void)nng_socket_set_size(p->push, NNG_OPT_RECVMAXSZ, 1024);
    nng_pipe_notify(p->push, NNG_PIPE_EV_ADD_POST, net_pipe_cb, p);
    nng_pipe_notify(p->push, NNG_PIPE_EV_REM_POST, net_pipe_cb, p);
    /* Non-blocking dial: NNG keeps retrying in the background. */
    rv = nng_dial(p->push, url, NULL, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        snprintf(err, err_len, "cannot dial replica %u at %s: %s.", p->id, url,
                 nng_strerror(rv));
        return LG_ENET;
    }
    (void)n;
    return LG_OK;
}

static int net_listen(struct net *n, const char *url, char *err, size_t err_len)
{
    int rv = nng_pull0_open(&n->pull);
    if (rv != 0) {
        snprintf(err, err_len, "cannot open the peer socket: %s.",
                 nng_strerror(rv));
        return LG_ENET;
    }
    n->pull_open = true;
    /* NNG's default is unlimited: cap frames before they are read. */
    (void)nng_socket_set_size(n->pull, NNG_OPT_RECVMAXSZ, n->recv_max);
    (void)nng_socket_set_int(n->pull, NNG_OPT_RECVBUF, 1024);
    rv = nng_listen(n->pull, url, NULL, 0);
    if (rv != 0) {
        snprintf(err, err_len, "cannot listen for peers on %s: %s.", url,
                 nng_strerror(rv));
        return LG_ENET;
    }
    rv = nng_aio_alloc(&n->rx, net_rx_cb, n);
    if (rv != 0) {
        snprintf(err, err_len, "out of memory for the peer socket.");
        return LG_ENOMEM;
    }
    nng_recv_aio(n->pull, n->rx);
    return LG_OK;
}

static int net_derive_keys(struct net *n, const struct net_params *p, char *err,
                           size_t err_len)
{
    n->keys = sodium_malloc((size_t)NET_MAX_PEERS * 32u);
    if (n->keys == NULL) {
        snprintf(err, err_len, "out of memory for link keys.");
        return LG_ENOMEM;
    }
    sodium_memzero(n->keys, (size_t)NET_MAX_PEERS * 32u);
    for (uint32_t i = 0; i < NET_MAX_PEERS; i++) {
        n->peers[i].net = n;
        n->peers[i].id = i;
        n->peers[i].key = n->keys + (size_t)i * 32u;
    }
    for (uint32_t i = 0; i < p->n; i++) {
        struct net_peer *peer = &n->peers[i];
        peer->net = n;
        peer->id = i;
        peer->key = n->keys + (size_t)i * 32u;
        peer->tokens = n->burst;
        peer->refill_ms = lg_mono_ms();
        atomic_init(&peer->pipes, 0);
        if (i == p->self || p->peer_urls[i] == NULL) {
            memset(peer->key, 0, 32);
            continue;
        }
        peer->present = true;
        if (net_pair_key(p->sk, p->pks[i], peer->key) != LG_OK) {
            snprintf(err, err_len,
                     "replica %u's public key in genesis is not a usable "
                     "Ed25519 key.",
                     i);
            return LG_ECONFIG;
        }
    }
    sodium_mprotect_readonly(n->keys);
    return LG_OK;
}

int net_open(const struct net_params *p, struct net **out, char *err,
             size_t err_len)
{
    if (p->n < 1 || p->n > NET_MAX_PEERS || p->self >= p->n) {
        snprintf(err, err_len, "bad replica count or id.");
        return LG_EINVAL;
    }
    struct net *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        snprintf(err, err_len, "out of memory.");
        return LG_ENOMEM;
    }
    n->self = p->self;
    n->n = p->n;
    pthread_mutex_init(&n->mu, NULL);
    n->recv_max = p->recv_max_bytes;
    n->rate = p->msgs_per_s;
    n->burst = p->burst;
    n->recv = p->recv;
    n->arg = p->arg;
    int rv = net_derive_keys(n, p, err, err_len);
    if (rv == LG_OK)
        rv = net_listen(n, p->listen_url, err, err_len);
    for (uint32_t i = 0; rv == LG_OK && i < p->n; i++) {
        if (i != p->self && n->peers[i].present)
            rv = net_dial_peer(n, &n->peers[i], p->peer_urls[i], p->sendbuf,
                               err, err_len);
    }
    if (rv != LG_OK) {
        net_close(n);
        return rv;
    }
    *out = n;
    return LG_OK;
}

int net_update(struct net *n, const struct net_params *p, char *err,
               size_t err_len)
{
    if (p->n < 1 || p->n > NET_MAX_PEERS || p->self != n->self) {
        snprintf(err, err_len, "bad replica count or id.");
        return LG_EINVAL;
    }
    int rv = LG_OK;
    pthread_mutex_lock(&n->mu);
    sodium_mprotect_readwrite(n->keys);
    for (uint32_t i = 0; i < NET_MAX_PEERS; i++) {
        struct net_peer *peer = &n->peers[i];
        bool want = i < p->n && i != n->self && p->peer_urls[i] != NULL;
        if (!want) {
            /* The socket stays open (closing a dialer mid-connect leaks
             * inside NNG 1.5.2); nothing is sent to or taken from it. */
            peer->present = false;
            continue;
        }
        uint8_t key[32];
        if (net_pair_key(p->sk, p->pks[i], key) != LG_OK) {
            snprintf(err, err_len,
                     "replica %u's public key is not a usable Ed25519 key.", i);
            peer->present = false;
            rv = LG_ECONFIG;
            continue;
        }
        memcpy(peer->key, key, 32);
        sodium_memzero(key, sizeof(key));
        if (peer->open && strcmp(peer->url, p->peer_urls[i]) != 0) {
            nng_close(peer->push); /* the replica moved */
            peer->open = false;
        }
        if (!peer->open) {
            peer->tokens = n->burst;
            peer->refill_ms = lg_mono_ms();
            int drv = net_dial_peer(n, peer, p->peer_urls[i], p->sendbuf, err,
                                    err_len);
            if (drv != LG_OK) {
                rv = drv;
                continue;
            }
        }
        peer->present = true;
    }
    if (p->n > n->n)
        n->n = p->n;
    sodium_mprotect_readonly(n->keys);
    pthread_mutex_unlock(&n->mu);
    return rv;
}

void net_close(struct net *n)
{
    if (n == NULL)
        return;
    if (n->rx != NULL)
        nng_aio_stop(n->rx);
    if (n->pull_open)
        nng_close(n->pull);
    for (uint32_t i = 0; i < NET_MAX_PEERS; i++) {
        if (n->peers[i].open)
            nng_close(n->peers[i].push);
        if (n->peers[i].send_aio != NULL)
            nng_aio_free(n->peers[i].send_aio);
    }
    nng_aio_free(n->rx);
    sodium_free(n->keys);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* ---- send -----------------------------------------------------------------
 */

/* Seals parts [0, k) as one frame to `to`. */
static int net_send_bundle(struct net *n, uint32_t to,
                           const uint8_t *const *parts, const size_t *lens,
                           size_t k, size_t total)
{
    uint8_t *pt = malloc(total);
    if (pt == NULL)
        return LG_ENOMEM;
    size_t pos = 0;
    for (size_t i = 0; i < k; i++) {
        if (lens[i] == 0)
            continue;
        net_part_header(pt + pos, lens[i]);
        memcpy(pt + pos + NET_PART_HDR, parts[i], lens[i]);
        pos += NET_PART_HDR + lens[i];
    }
    nng_msg *m;
    if (nng_msg_alloc(&m, total + NET_OVERHEAD) != 0) {
        free(pt);
        return LG_ENOMEM;
    }
    net_frame_seal(n->peers[to].key, n->self, pt, total, nng_msg_body(m));
    free(pt);
    /* nng_sendmsg(NNG_FLAG_NONBLOCK) with the peer's own aio: a zero
     * timeout fails at once when the send buffer is full. */
    struct net_peer *peer = &n->peers[to];
    if (peer->send_aio == NULL &&
        nng_aio_alloc(&peer->send_aio, NULL, NULL) != 0) {
        peer->send_aio = NULL;
        nng_msg_free(m);
        return LG_ENOMEM;
    }
    nng_aio_set_timeout(peer->send_aio, NNG_DURATION_ZERO);
    nng_aio_set_msg(peer->send_aio, m);
    nng_send_aio(peer->push, peer->send_aio);
    nng_aio_wait(peer->send_aio);
    if (nng_aio_result(peer->send_aio) != 0) {
        nng_aio_set_msg(peer->send_aio, NULL);
        nng_msg_free(m); /* ownership moves only on success */
        atomic_fetch_add(&n->dropped_full, 1);
        return LG_EBUSY;
    }
    atomic_fetch_add(&n->frames_out, 1);
    atomic_fetch_add(&n->bytes_out, total + NET_OVERHEAD);
    return LG_OK;
}

int net_send_parts(struct net *n, uint32_t to, const uint8_t *const *parts,
                   const size_t *lens, size_t k)
{
    if (to >= n->n || to == n->self || !n->peers[to].open ||
        !n->peers[to].present)
        return LG_EINVAL;
    /* Peers run the same limits as we do: stay within our own. */
    size_t cap = NET_BUNDLE_BYTES;
    if (n->recv_max > NET_OVERHEAD && n->recv_max - NET_OVERHEAD < cap)
        cap = n->recv_max - NET_OVERHEAD;
    int rv = LG_OK;
    size_t first = 0, total = 0;
    for (size_t i = 0; i <= k; i++) {
        /* An empty part is not a message: it adds nothing (the bundle
         * skips it). */
        size_t add = i < k && lens[i] > 0 ? NET_PART_HDR + lens[i] : 0;
        if (total > 0 && (i == k || total + add > cap)) {
            int r = net_send_bundle(n, to, parts + first, lens + first,
                                    i - first, total);
            if (r != LG_OK)
                rv = r;
            first = i;
            total = 0;
        }
        total += add;
    }
    return rv;
}

int net_send(struct net *n, uint32_t to, const uint8_t *data, size_t len)
{
    return net_send_parts(n, to, &data, &len, 1);
}

void net_broadcast(struct net *n, const uint8_t *data, size_t len)
{
    for (uint32_t i = 0; i < n->n; i++) {
        if (i != n->self && n->peers[i].present)
            (void)net_send(n, i, data, len);
    }
}

bool net_peer_present(struct net *n, uint32_t id)
{
    return n != NULL && id < n->n && n->peers[id].present;
}

bool net_peer_connected(struct net *n, uint32_t id)
{
    if (id >= n->n)
        return false;
    if (id == n->self)
        return true;
    return n->peers[id].present && atomic_load(&n->peers[id].pipes) > 0;
}

void net_get_stats(struct net *n, struct net_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->frames_in = atomic_load(&n->frames_in);
    st->frames_out = atomic_load(&n->frames_out);
    st->bytes_in = atomic_load(&n->bytes_in);
    st->bytes_out = atomic_load(&n->bytes_out);
    st->dropped_bad_frame = atomic_load(&n->dropped_bad);
    st->dropped_throttled = atomic_load(&n->dropped_throttled);
    st->dropped_send_full = atomic_load(&n->dropped_full);
    for (uint32_t i = 0; i < n->n; i++) {
        if (i != n->self && n->peers[i].present &&
            atomic_load(&n->peers[i].pipes) > 0)
            st->peers_connected++;
    }
}
