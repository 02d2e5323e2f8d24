/*
 * api.c - REP server with one nng_ctx per concurrent request.
 *
 * Each call slot cycles RECV -> (node holds it) -> SEND -> RECV. A slot is
 * touched by one party at a time: the NNG callback while receiving or
 * sending, the node between api_request_fn and api_reply.
 */
#include "api.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define API_BUCKETS      256
#define API_LOG_EVERY_MS 1000u

enum api_state { API_RECV = 1, API_SEND };

struct api_call {
    struct api *api;
    nng_ctx ctx;
    nng_aio *aio;
    enum api_state state;
};

struct api_bucket {
    uint32_t pipe_id;
    double tokens;
    unsigned long long refill_ms;
};

struct api {
    nng_socket sock;
    bool sock_open;
    uint32_t n_calls;
    struct api_call *calls;
    api_request_fn handle;
    void *arg;
    double rate;
    pthread_mutex_t mu; /* buckets, log throttling */
    struct api_bucket buckets[API_BUCKETS];
    unsigned long long bad_logged_ms;
    atomic_uint_fast64_t requests, bad, throttled, replies;
};

static void api_send_msg(struct api_call *c, nng_msg *m)
{
    c->state = API_SEND;
    nng_aio_set_msg(c->aio, m);
    nng_ctx_send(c->ctx, c->aio);
}

void api_reply(struct api_call *c, const Tc__ClientReply *reply)
{
    size_t len = tc__client_reply__get_packed_size(reply);
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0) {
        /* Without memory for the reply, drop it: the client times out. */
        c->state = API_RECV;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    tc__client_reply__pack(reply, nng_msg_body(m));
    atomic_fetch_add(&c->api->replies, 1);
    api_send_msg(c, m);
}

void api_reply_error(struct api_call *c, Tc__ReplyCode code,
                     const char *sentence)
{
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.code = code;
    r.error = (char *)sentence;
    api_reply(c, &r);
}

static void api_log_bad(struct api *a, const char *why, size_t len)
{
    uint64_t total = atomic_fetch_add(&a->bad, 1) + 1;
    pthread_mutex_lock(&a->mu);
    unsigned long long now = lg_mono_ms();
    bool log = now - a->bad_logged_ms >= API_LOG_EVERY_MS;
    if (log)
        a->bad_logged_ms = now;
    pthread_mutex_unlock(&a->mu);
    if (log)
        lg_log(LG_WARN, "client_request_dropped",
               "reason=%s bytes=%zu total=%llu", why, len,
               (unsigned long long)total);
}

/* Token bucket per client connection (pipe). */
static bool api_bucket_take(struct api *a, uint32_t pipe_id)
{
    bool ok;
    pthread_mutex_lock(&a->mu);
    struct api_bucket *b = &a->buckets[pipe_id % API_BUCKETS];
    unsigned long long now = lg_mono_ms();
    if (b->pipe_id != pipe_id) {
        b->pipe_id = pipe_id;
        b->tokens = a->rate;
        b->refill_ms = now;
    }
    if (now > b->refill_ms) {
        b->tokens += (double)(now - b->refill_ms) * a->rate / 1000.0;
        if (b->tokens > a->rate)
            b->tokens = a->rate;
        b->refill_ms = now;
    }
    ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    pthread_mutex_unlock(&a->mu);
    return ok;
}

static void api_got_request(struct api_call *c, nng_msg *m)
{
    struct api *a = c->api;
    atomic_fetch_add(&a->requests, 1);
    uint32_t pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(m));
    if (!api_bucket_take(a, pipe_id)) {
        nng_msg_free(m);
        atomic_fetch_add(&a->throttled, 1);
        api_reply_error(c, TC__REPLY_CODE__REPLY_BUSY,
                        "Too many requests from this connection; retry "
                        "later.");
        return;
    }
    size_t len = nng_msg_len(m);
    Tc__ClientRequest *req =
        tc__client_request__unpack(NULL, len, nng_msg_body(m));
    nng_msg_free(m);
    if (req == NULL) {
        api_log_bad(a, "undecodable", len);
        api_reply_error(c, TC__REPLY_CODE__REPLY_BAD_REQUEST,
                        "The request is not a ClientRequest message.");
        return;
    }
    if (req->req_case == TC__CLIENT_REQUEST__REQ__NOT_SET) {
        tc__client_request__free_unpacked(req, NULL);
        api_log_bad(a, "unknown-type", len);
        api_reply_error(c, TC__REPLY_CODE__REPLY_BAD_REQUEST,
                        "The request names no known request type.");
        return;
    }
    a->handle(a->arg, c, req);
}

static void api_cb(void *arg)
{
    struct api_call *c = arg;
    int rv = nng_aio_result(c->aio);
    if (c->state == API_SEND && rv != 0) {
        /* A failed send leaves the reply with us, a cancelled one too: a
         * node that answers its waiting clients as it stops closes the API
         * while replies queue behind one another on a connection. */
        nng_msg_free(nng_aio_get_msg(c->aio));
        nng_aio_set_msg(c->aio, NULL);
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    if (c->state == API_SEND) {
        c->state = API_RECV;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    if (rv != 0) {
        /* e.g. a frame over the size cap: NNG drops it and the pipe */
        api_log_bad(c->api, nng_strerror(rv), 0);
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    api_got_request(c, nng_aio_get_msg(c->aio));
}

int api_open(const struct api_params *p, struct api **out, char *err,
             size_t err_len)
{
    struct api *a = calloc(1, sizeof(*a));
    if (a == NULL || p->n_contexts == 0) {
        free(a);
        snprintf(err, err_len, "out of memory for the client API.");
        return LG_ENOMEM;
    }
    pthread_mutex_init(&a->mu, NULL);
    a->handle = p->handle;
    a->arg = p->arg;
    a->rate = p->reqs_per_s > 0 ? p->reqs_per_s : 1;
    a->calls = calloc(p->n_contexts, sizeof(*a->calls));
    int rv = a->calls ? nng_rep0_open(&a->sock) : NNG_ENOMEM;
    if (rv == 0) {
        a->sock_open = true;
        (void)nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ,
                                  p->recv_max_bytes);
        rv = nng_listen(a->sock, p->url, NULL, 0);
    }
    if (rv != 0) {
        snprintf(err, err_len, "cannot listen for clients on %s: %s.", p->url,
                 nng_strerror(rv));
        api_close(a);
        return LG_ENET;
    }
    for (uint32_t i = 0; i < p->n_contexts; i++) {
        struct api_call *c = &a->calls[i];
        c->api = a;
        if (nng_ctx_open(&c->ctx, a->sock) != 0 ||
            nng_aio_alloc(&c->aio, api_cb, c) != 0) {
            snprintf(err, err_len, "out of memory for client contexts.");
            api_close(a);
            return LG_ENOMEM;
        }
        a->n_calls = i + 1;
    }
    for (uint32_t i = 0; i < a->n_calls; i++) {
        a->calls[i].state = API_RECV;
        nng_ctx_recv(a->calls[i].ctx, a->calls[i].aio);
    }
    *out = a;
    return LG_OK;
}

void api_close(struct api *a)
{
    if (a == NULL)
        return;
    for (uint32_t i = 0; i < a->n_calls; i++)
        nng_aio_stop(a->calls[i].aio);
    if (a->sock_open)
        nng_close(a->sock);
    for (uint32_t i = 0; i < a->n_calls; i++)
        nng_aio_free(a->calls[i].aio);
    free(a->calls);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void api_get_stats(struct api *a, struct api_stats *st)
{
    st->requests = atomic_load(&a->requests);
    st->bad_requests = atomic_load(&a->bad);
    st->throttled = atomic_load(&a->throttled);
    st->replies = atomic_load(&a->replies);
}
