/* sim_crypto.c - fake but unforgeable-in-sim signatures.
 *
 * A replica's signature is SHA-256(secret || statement) padded with zeros
 * to 64 bytes; only code holding that replica's secret can make it, and in
 * the simulator only the replica itself (honest or Byzantine) signs with
 * it. Client requests carry SHA-256(client secret || request bytes). Every
 * sign and verify call is counted for the cost report. */
#include "sim.h"

#include <sodium.h>
#include <string.h>

void sim_sha256(const void *data, size_t len, uint8_t out[32])
{
    crypto_hash_sha256(out, data, len);
}

static void keyed_hash(const uint8_t secret[32], const uint8_t *msg, size_t len,
                       uint8_t out[32])
{
    crypto_hash_sha256_state st;

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, secret, 32);
    crypto_hash_sha256_update(&st, msg, len);
    crypto_hash_sha256_final(&st, out);
}

void sim_keyed_sig(const uint8_t secret[32], const uint8_t *msg, size_t len,
                   uint8_t sig[PBFT_SIG_SIZE])
{
    memset(sig, 0, PBFT_SIG_SIZE);
    keyed_hash(secret, msg, len, sig);
}

static void fake_hash(void *ctx, const uint8_t *data, size_t len,
                      uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    crypto_hash_sha256(out, data, len);
}

void sim_sign_as(struct sim *s, uint32_t replica, const uint8_t *msg,
                 size_t len, uint8_t sig[PBFT_SIG_SIZE])
{
    memset(sig, 0, PBFT_SIG_SIZE);
    s->sign_ops++;
    if (replica >= s->n)
        return;
    keyed_hash(s->replica_secret[replica], msg, len, sig);
}

static void fake_sign(void *ctx, const uint8_t *msg, size_t len,
                      uint8_t sig[PBFT_SIG_SIZE])
{
    struct sim_crypto_ctx *c = ctx;

    sim_sign_as(c->sim, c->replica, msg, len, sig);
}

static bool fake_verify(void *ctx, uint32_t replica, const uint8_t *msg,
                        size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    struct sim_crypto_ctx *c = ctx;
    struct sim *s = c->sim;
    uint8_t want[PBFT_SIG_SIZE];

    s->verify_ops++;
    if (c->accept_all)
        return true;
    if (replica >= s->n)
        return false;
    memset(want, 0, sizeof(want));
    keyed_hash(s->replica_secret[replica], msg, len, want);
    return memcmp(want, sig, PBFT_SIG_SIZE) == 0;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

int sim_request_check(const struct sim *s, const struct pbft_request *req)
{
    const uint8_t *d = req->data;
    uint32_t idx;
    uint8_t sig[32];

    if (d == NULL || req->len != SIM_REQ_LEN)
        return -1;
    if (memcmp(d, req->client, PBFT_KEY_SIZE) != 0)
        return -1;
    if (get_be64(d + PBFT_KEY_SIZE) != req->req_no)
        return -1;
    idx = ((uint32_t)d[0] << 8) | d[1];
    if (idx >= s->n_clients)
        return -1;
    if (memcmp(s->clients[idx].key, req->client, PBFT_KEY_SIZE) != 0)
        return -1;
    keyed_hash(s->clients[idx].secret, d, SIM_REQ_LEN - SIM_REQ_SIG, sig);
    if (memcmp(sig, d + SIM_REQ_LEN - SIM_REQ_SIG, SIM_REQ_SIG) != 0)
        return -1;
    return (int)idx;
}

static bool fake_verify_request(void *ctx, const struct pbft_request *req)
{
    struct sim_crypto_ctx *c = ctx;

    c->sim->verify_req_ops++;
    if (c->accept_all)
        return true;
    return sim_request_check(c->sim, req) >= 0;
}

void sim_request_build(const struct sim *s, uint32_t client, uint64_t req_no,
                       uint8_t buf[SIM_REQ_LEN], struct pbft_request *req)
{
    const struct sim_client *cl = &s->clients[client];
    uint8_t pay[40];

    memcpy(buf, cl->key, PBFT_KEY_SIZE);
    put_be64(buf + PBFT_KEY_SIZE, req_no);
    buf[PBFT_KEY_SIZE + 8] = 0;
    buf[PBFT_KEY_SIZE + 9] = SIM_REQ_PAYLOAD;
    memcpy(pay, cl->key, 32);
    put_be64(pay + 32, req_no);
    {
        uint8_t h[32];

        sim_sha256(pay, sizeof(pay), h);
        memcpy(buf + SIM_REQ_HDR, h, SIM_REQ_PAYLOAD);
    }
    keyed_hash(cl->secret, buf, SIM_REQ_LEN - SIM_REQ_SIG,
               buf + SIM_REQ_LEN - SIM_REQ_SIG);
    memcpy(req->client, cl->key, PBFT_KEY_SIZE);
    req->req_no = req_no;
    req->len = SIM_REQ_LEN;
    req->data = buf;
}

void sim_vote_resign(struct sim *s, enum pbft_msg_type type,
                     struct pbft_vote *v)
{
    uint8_t buf[PBFT_VOTE_STATEMENT_MAX];
    size_t len = pbft_vote_statement(type, s->chain_id, v, buf, sizeof(buf));

    sim_sign_as(s, v->replica, buf, len, v->sig);
}

void sim_crypto_fill(struct pbft_crypto *c, struct sim_crypto_ctx *ctx)
{
    c->ctx = ctx;
    c->hash = fake_hash;
    c->sign = fake_sign;
    c->verify = fake_verify;
    c->verify_request = fake_verify_request;
}
