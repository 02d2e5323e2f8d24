/*
 * client.c - NNG REQ client for the node API.
 */
#include "client.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>

struct client {
    nng_socket sock;
    /* One aio for every send and receive, rather than nng_sendmsg's and
     * nng_recvmsg's per call (NNG 1.5 allocates each and draws a random
     * number for it with a syscall). A client is used by one thread. */
    nng_aio *aio;
    int timeout_ms;
    char url[256];
    char err[600];
};

static int client_nng_err(struct client *c, const char *what, int rv)
{
    snprintf(c->err, sizeof(c->err), "%s %s: %s.", what, c->url,
             nng_strerror(rv));
    return rv == NNG_ETIMEDOUT ? LG_ETIMEDOUT : LG_ENET;
}

int client_open(const char *url, int timeout_ms, struct client **out)
{
    *out = NULL;
    struct client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return LG_ENOMEM;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    snprintf(c->url, sizeof(c->url), "%s", url ? url : "");
    if (nng_aio_alloc(&c->aio, NULL, NULL) != 0) {
        free(c);
        return LG_ENOMEM;
    }
    int rv = nng_req0_open(&c->sock);
    if (rv != 0) {
        nng_aio_free(c->aio);
        free(c);
        return LG_ENET;
    }
    (void)nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, CLIENT_REPLY_MAX);
    (void)nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, c->timeout_ms);
    (void)nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, c->timeout_ms);
    /* A resent submit is harmless (the node deduplicates), but a resend
     * inside one call only adds load: let the caller's timeout decide. */
    (void)nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
                            NNG_DURATION_INFINITE);
    (void)nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 50);
    (void)nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 500);
    rv = nng_dial(c->sock, c->url, NULL, 0);
    if (rv != 0) {
        nng_close(c->sock);
        nng_aio_free(c->aio);
        free(c);
        return LG_ENET;
    }
    *out = c;
    return LG_OK;
}

void client_close(struct client *c)
{
    if (c == NULL)
        return;
    nng_close(c->sock);
    nng_aio_free(c->aio);
    free(c);
}

const char *client_error(const struct client *c)
{
    return c ? c->err : "no client";
}

int client_call_raw(struct client *c, const uint8_t *req, size_t len,
                    uint8_t **out, size_t *out_len)
{
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0)
        return LG_ENOMEM;
    if (len > 0)
        memcpy(nng_msg_body(m), req, len);
    /* As nng_sendmsg and nng_recvmsg: the socket's timeouts apply. */
    nng_aio_set_timeout(c->aio, NNG_DURATION_DEFAULT);
    nng_aio_set_msg(c->aio, m);
    nng_send_aio(c->sock, c->aio);
    nng_aio_wait(c->aio);
    int rv = nng_aio_result(c->aio);
    if (rv != 0) {
        nng_aio_set_msg(c->aio, NULL);
        nng_msg_free(m); /* ownership moves only on success */
        return client_nng_err(c, "cannot send to", rv);
    }
    nng_recv_aio(c->sock, c->aio);
    nng_aio_wait(c->aio);
    rv = nng_aio_result(c->aio);
    if (rv != 0)
        return client_nng_err(c, "no reply from", rv);
    m = nng_aio_get_msg(c->aio);
    nng_aio_set_msg(c->aio, NULL);
    size_t n = nng_msg_len(m);
    *out = malloc(n > 0 ? n : 1);
    if (*out == NULL) {
        nng_msg_free(m);
        return LG_ENOMEM;
    }
    memcpy(*out, nng_msg_body(m), n);
    *out_len = n;
    nng_msg_free(m);
    return LG_OK;
}

int client_call(struct client *c, const Tc__ClientRequest *req,
                Tc__ClientReply **reply)
{
    *reply = NULL;
    size_t len = tc__client_request__get_packed_size(req);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return LG_ENOMEM;
    tc__client_request__pack(req, buf);
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rv = client_call_raw(c, buf, len, &out, &out_len);
    free(buf);
    if (rv != LG_OK)
        return rv;
    *reply = tc__client_reply__unpack(NULL, out_len, out);
    free(out);
    if (*reply == NULL) {
        snprintf(c->err, sizeof(c->err), "the reply from %s does not decode.",
                 c->url);
        return LG_EBADMSG;
    }
    return LG_OK;
}

int client_submit(struct client *c, const uint8_t *signed_tx, size_t len,
                  bool wait, Tc__ClientReply **reply)
{
    Tc__Submit sub = TC__SUBMIT__INIT;
    sub.signed_tx.data = (uint8_t *)signed_tx;
    sub.signed_tx.len = len;
    sub.wait = wait;
    /* The node must answer (maybe REPLY_TIMEOUT) before we give up. */
    int t = c->timeout_ms;
    sub.timeout_ms = (uint32_t)(t > 2000 ? t - 1000 : t / 2);
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_SUBMIT;
    req.submit = &sub;
    return client_call(c, &req, reply);
}

int client_status(struct client *c, Tc__ClientReply **reply)
{
    Tc__GetStatus st = TC__GET_STATUS__INIT;
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_STATUS;
    req.status = &st;
    return client_call(c, &req, reply);
}

int client_get_block(struct client *c, uint64_t height, Tc__ClientReply **reply)
{
    Tc__GetBlock gb = TC__GET_BLOCK__INIT;
    gb.height = height;
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_BLOCK;
    req.block = &gb;
    return client_call(c, &req, reply);
}

void client_reply_free(Tc__ClientReply *reply)
{
    if (reply != NULL)
        tc__client_reply__free_unpacked(reply, NULL);
}

const char *client_code_text(Tc__ReplyCode code)
{
    switch (code) {
    case TC__REPLY_CODE__REPLY_OK:
        return "ok";
    case TC__REPLY_CODE__REPLY_BAD_REQUEST:
        return "the request was malformed";
    case TC__REPLY_CODE__REPLY_BAD_SIGNATURE:
        return "the transaction's signature does not verify";
    case TC__REPLY_CODE__REPLY_WRONG_CHAIN:
        return "the transaction is for another consortium";
    case TC__REPLY_CODE__REPLY_NOT_FOUND:
        return "not found";
    case TC__REPLY_CODE__REPLY_TIMEOUT:
        return "not committed within the timeout";
    case TC__REPLY_CODE__REPLY_BUSY:
        return "the node is busy, retry later";
    case TC__REPLY_CODE__REPLY_NOT_READY:
        return "the node is catching up";
    case TC__REPLY_CODE__REPLY_INTERNAL:
        return "the node had an internal error";
    default:
        return "unknown reply code";
    }
}
