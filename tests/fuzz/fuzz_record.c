/*
 * fuzz_record.c - persisted consensus state read back from disk: stored
 * (key, value) pairs decoded with codec_decode_record, and what decodes fed
 * to a fresh core with pbft_restore, then pbft_start and a timer, as the
 * daemon does on restart.
 *
 * Input: records [key kind (1)] [key] [value length (2, LE)] [value].
 * Kind 0: the META key; 1: a message key built from seq (8), msg type (1),
 * view (8), replica (4); any other: 24 raw key bytes. The last record may
 * be followed by start fields: last executed seq (1 byte, small).
 *
 * Invariants: no crash or sanitizer report; a decode failure is
 * LG_ECORRUPT; a decoded record re-encodes; pbft_restore and pbft_start
 * return error codes for inconsistent state instead of aborting.
 *
 * FUZZ_WRITE_SEEDS=DIR makes the first call write the records a real core
 * persisted while ordering two requests (valid inputs) into DIR.
 */
#include "codec.h"

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N           4
#define MAX_RECORDS 64

static const struct codec_limits lim = {
    .n = N,
    .batch_max = 8,
    .request_bytes_max = 256,
    .window_max = 8,
    .msg_bytes_max = 1u << 20,
};

static uint32_t self_id = 1;

static void fz_hash(void *ctx, const uint8_t *d, size_t len,
                    uint8_t out[PBFT_DIGEST_SIZE])
{
    (void)ctx;
    crypto_hash_sha256(out, d, len);
}

static void fz_sig(uint32_t id, const uint8_t *msg, size_t len,
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

static void fz_sign(void *ctx, const uint8_t *msg, size_t len,
                    uint8_t sig[PBFT_SIG_SIZE])
{
    fz_sig(*(const uint32_t *)ctx, msg, len, sig);
}

static bool fz_verify(void *ctx, uint32_t replica, const uint8_t *msg,
                      size_t len, const uint8_t sig[PBFT_SIG_SIZE])
{
    (void)ctx;
    uint8_t want[PBFT_SIG_SIZE];
    fz_sig(replica, msg, len, want);
    return memcmp(want, sig, PBFT_SIG_SIZE) == 0;
}

static bool fz_verify_request(void *ctx, const struct pbft_request *req)
{
    (void)ctx;
    return req->len >= 1 && req->data[0] == 'R';
}

static struct pbft *new_core(uint32_t self, uint32_t *id)
{
    struct pbft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    pbft_config_defaults(&cfg);
    cfg.n = N;
    cfg.self = self;
    memset(cfg.chain_id, 0xc1, sizeof(cfg.chain_id));
    cfg.batch_max = lim.batch_max;
    cfg.request_bytes_max = lim.request_bytes_max;
    cfg.watermark_window = lim.window_max;
    cfg.checkpoint_interval = 1;
    *id = self;
    cfg.crypto.ctx = id;
    cfg.crypto.hash = fz_hash;
    cfg.crypto.sign = fz_sign;
    cfg.crypto.verify = fz_verify;
    cfg.crypto.verify_request = fz_verify_request;
    const char *why = NULL;
    struct pbft *p = pbft_new(&cfg, &why);
    LG_ASSERT(p != NULL);
    return p;
}

/* ---- seeds: what a primary persists while ordering ----------------------- */

static void put_u64(FILE *f, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
        fputc((int)(uint8_t)(v >> (8 * i)), f);
}

static void seed_records(FILE *f, const struct pbft_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_persist; i++) {
        const struct pbft_record *r = &rd->persist[i];
        uint8_t *val = NULL;
        size_t vlen = 0;
        if (r->type == PBFT_REC_GC ||
            codec_encode_record(r, &val, &vlen) != LG_OK)
            continue;
        if (r->type == PBFT_REC_META) {
            fputc(0, f);
        } else {
            fputc(1, f);
            put_u64(f, r->seq);
            fputc((int)r->msg->type, f);
            put_u64(f, r->view);
            for (int k = 3; k >= 0; k--)
                fputc((int)(uint8_t)(r->replica >> (8 * k)), f);
        }
        fputc((int)(vlen & 0xff), f);
        fputc((int)(vlen >> 8), f);
        fwrite(val, 1, vlen, f);
        free(val);
    }
}

static void write_seeds(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/primary-orders-two", dir);
    FILE *f = fopen(path, "wb");
    LG_ASSERT(f != NULL);
    uint32_t id;
    struct pbft *p = new_core(0, &id);
    struct pbft_ready rd;
    uint8_t g[PBFT_DIGEST_SIZE] = {0};
    LG_ASSERT(pbft_start(p, 0, g, 1000, &rd) == PBFT_OK);
    seed_records(f, &rd);
    pbft_advance(p);
    static uint8_t data[2][8] = {"Rone", "Rtwo"};
    for (uint32_t k = 0; k < 2; k++) {
        struct pbft_request req = {.req_no = 1, .len = 4, .data = data[k]};
        req.client[0] = (uint8_t)(k + 1);
        struct pbft_event ev = {.type = PBFT_EV_REQUEST, .now_ms = 1000};
        ev.u.request = &req;
        (void)pbft_step(p, &ev, &rd);
        seed_records(f, &rd);
        pbft_advance(p);
        struct pbft_event t = {.type = PBFT_EV_TIMEOUT, .now_ms = 1100};
        (void)pbft_step(p, &t, &rd);
        seed_records(f, &rd);
        struct pbft_vote pp;
        bool has_pp = false;
        for (uint32_t i = 0; i < rd.n_msgs; i++)
            if (rd.msgs[i].msg->type == PBFT_MSG_PREPREPARE) {
                pp = rd.msgs[i].msg->u.pp.hdr;
                has_pp = true;
            }
        pbft_advance(p);
        if (!has_pp)
            continue;
        /* prepares and commits from replicas 1 and 2 */
        for (int type = PBFT_MSG_PREPARE; type <= PBFT_MSG_COMMIT; type++) {
            for (uint32_t r = 1; r <= 2; r++) {
                struct pbft_msg m = {.type = (enum pbft_msg_type)type};
                uint8_t stmt[PBFT_VOTE_STATEMENT_MAX];
                uint8_t chain[PBFT_CHAIN_ID_SIZE];
                memset(chain, 0xc1, sizeof(chain));
                m.u.vote = pp;
                m.u.vote.replica = r;
                m.u.vote.timestamp_ms = 0;
                size_t sl = pbft_vote_statement(m.type, chain, &m.u.vote, stmt,
                                                sizeof(stmt));
                fz_sig(r, stmt, sl, m.u.vote.sig);
                struct pbft_event rcv = {.type = PBFT_EV_RECEIVE,
                                         .now_ms = 1200};
                rcv.u.receive.from = r;
                rcv.u.receive.msg = &m;
                (void)pbft_step(p, &rcv, &rd);
                seed_records(f, &rd);
                pbft_advance(p);
            }
        }
    }
    fputc(0, f); /* start: nothing executed */
    pbft_free(p);
    fclose(f);
}

/* ---- the target ------------------------------------------------------------
 */

struct in {
    const uint8_t *p;
    size_t left;
};

static bool take(struct in *in, void *out, size_t n)
{
    if (in->left < n)
        return false;
    memcpy(out, in->p, n);
    in->p += n;
    in->left -= n;
    return true;
}

static bool next_key(struct in *in, uint8_t key[CODEC_RECORD_KEY_SIZE])
{
    uint8_t kind;
    if (!take(in, &kind, 1))
        return false;
    memset(key, 0, CODEC_RECORD_KEY_SIZE);
    key[0] = 'p';
    key[1] = '/';
    if (kind == 0) {
        key[2] = PBFT_REC_META;
        return true;
    }
    if (kind == 1) {
        key[2] = PBFT_REC_MSG;
        return take(in, key + 3, 8 + 1 + 8 + 4);
    }
    return take(in, key, CODEC_RECORD_KEY_SIZE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        LG_ASSERT(sodium_init() >= 0);
        ready = true;
        const char *seeds = getenv("FUZZ_WRITE_SEEDS");
        if (seeds != NULL)
            write_seeds(seeds);
    }
    struct in in = {.p = data, .left = size};
    struct codec_record *recs[MAX_RECORDS];
    size_t n = 0;
    uint8_t start_seq = 0;
    while (n < MAX_RECORDS) {
        uint8_t key[CODEC_RECORD_KEY_SIZE], lenb[2];
        if (!next_key(&in, key) || !take(&in, lenb, 2)) {
            break;
        }
        size_t vlen = (size_t)lenb[0] | (size_t)lenb[1] << 8;
        if (vlen > in.left) {
            start_seq = lenb[0];
            break;
        }
        struct codec_record *cr = NULL;
        int rv = codec_decode_record(key, sizeof(key), in.p, vlen, &lim, &cr);
        in.p += vlen;
        in.left -= vlen;
        if (rv != LG_OK) {
            LG_ASSERT(rv == LG_ECORRUPT || rv == LG_ETOOBIG || rv == LG_ENOMEM);
            LG_ASSERT(cr == NULL);
            continue;
        }
        uint8_t *again = NULL;
        size_t alen = 0;
        LG_ASSERT(codec_encode_record(&cr->rec, &again, &alen) == LG_OK);
        free(again);
        recs[n++] = cr;
    }
    if (in.left > 0)
        start_seq = *in.p;

    uint32_t id;
    struct pbft *p = new_core(self_id, &id);
    for (size_t i = 0; i < n; i++)
        (void)pbft_restore(p, &recs[i]->rec);
    struct pbft_ready rd;
    uint8_t digest[PBFT_DIGEST_SIZE] = {0};
    memset(&rd, 0, sizeof(rd));
    if (pbft_start(p, start_seq % 8, digest, 5000, &rd) == PBFT_OK) {
        pbft_advance(p);
        uint64_t d = pbft_deadline_ms(p);
        struct pbft_event t = {.type = PBFT_EV_TIMEOUT,
                               .now_ms = d != UINT64_MAX ? d : 6000};
        (void)pbft_step(p, &t, &rd);
        pbft_advance(p);
        struct pbft_status st;
        pbft_get_status(p, &st);
        LG_ASSERT(st.primary == st.view % N);
    }
    pbft_free(p);
    for (size_t i = 0; i < n; i++)
        codec_record_free(recs[i]);
    return 0;
}
