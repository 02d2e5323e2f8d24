/*
 * api.h - the client API server: an NNG REP socket with a fixed number of
 * contexts (each one request in flight), proto/api.proto messages.
 *
 * The server decodes and checks the envelope (size cap, decode, a known
 * request type, per-connection throttling) and answers bad input itself;
 * everything else goes to the node through api_request_fn, which must
 * answer each call exactly once with api_reply (from any thread). The
 * number of contexts bounds the requests in flight, waiting ones included.
 */
#ifndef API_H
#define API_H

#include "api.pb-c.h"
#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct api;
struct api_call;

/* req is owned by the callee (tc__client_request__free_unpacked). */
typedef void (*api_request_fn)(void *arg, struct api_call *call,
                               Tc__ClientRequest *req);

struct api_params {
    const char *url;
    uint32_t n_contexts;
    uint32_t recv_max_bytes;
    uint32_t reqs_per_s; /* per client connection */
    api_request_fn handle;
    void *arg;
};

struct api_stats {
    uint64_t requests;
    uint64_t bad_requests; /* undecodable, empty, unknown type */
    uint64_t throttled;
    uint64_t replies;
};

int api_open(const struct api_params *p, struct api **out, char *err,
             size_t err_len) LG_MUST_CHECK;
/* Stops every context. Calls still held by the node must not be answered
 * after this. Accepts NULL. */
void api_close(struct api *a);

/* Answers a call; the call handle is invalid afterwards. */
void api_reply(struct api_call *call, const Tc__ClientReply *reply);
void api_reply_error(struct api_call *call, Tc__ReplyCode code,
                     const char *sentence);

void api_get_stats(struct api *a, struct api_stats *st);

#endif /* API_H */
