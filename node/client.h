/*
 * client.h - a client of a node's API (proto/api.proto over NNG REQ/REP),
 * for the trialchain tool, tests and benchmarks.
 *
 * One struct client holds one REQ socket and carries one request at a
 * time; open several for concurrency. Errors: LG_ENET when the node cannot
 * be reached (connection refused, bad URL), LG_ETIMEDOUT when it did not
 * answer in time (the tool maps both to exit 3), LG_EBADMSG when the reply
 * does not decode. client_error() then holds a sentence.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include "api.pb-c.h"
#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_REPLY_MAX (64u << 20)

struct client;

/* Connects to url (tcp://host:port or ipc://path). timeout_ms bounds each
 * call (<= 0: 10 s). On LG_ENET *out is NULL and nothing leaks. */
int client_open(const char *url, int timeout_ms,
                struct client **out) LG_MUST_CHECK;
void client_close(struct client *c); /* accepts NULL */

/* Sends req and waits for its reply. On success *reply is owned by the
 * caller (client_reply_free). A reply with a non-OK code is still a
 * success of the call: look at (*reply)->code. */
int client_call(struct client *c, const Tc__ClientRequest *req,
                Tc__ClientReply **reply) LG_MUST_CHECK;

/* Submits SignedTx bytes. With wait, the node answers once the tx's block
 * is certified (the reply carries the Receipt) or with REPLY_TIMEOUT; the
 * node's wait is set a little shorter than this client's timeout. */
int client_submit(struct client *c, const uint8_t *signed_tx, size_t len,
                  bool wait, Tc__ClientReply **reply) LG_MUST_CHECK;

/* Shorthands for the common queries. */
int client_status(struct client *c, Tc__ClientReply **reply) LG_MUST_CHECK;
int client_get_block(struct client *c, uint64_t height,
                     Tc__ClientReply **reply) LG_MUST_CHECK;

/* Raw bytes in, raw bytes out (tests send malformed requests with it).
 * *out is malloc'd. */
int client_call_raw(struct client *c, const uint8_t *req, size_t len,
                    uint8_t **out, size_t *out_len) LG_MUST_CHECK;

void client_reply_free(Tc__ClientReply *reply); /* accepts NULL */
const char *client_error(const struct client *c);

/* A sentence for a reply code ("the node is busy, retry later"). */
const char *client_code_text(Tc__ReplyCode code);

#endif /* CLIENT_H */
