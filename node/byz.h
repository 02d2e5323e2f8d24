/*
 * byz.h - a Byzantine replica, for tests only. The daemon started with
 * TRIALCHAIN_BYZANTINE=<mode> passes every outgoing consensus message
 * through byz_transform() and sends the messages it returns instead:
 *
 *   equivocate     a PRE-PREPARE broadcast becomes two pre-prepares for the
 *                  same (view, seq) with different batches (and digests),
 *                  each validly signed, the first to half the backups and
 *                  the second to the others; PREPARE/COMMIT broadcasts
 *                  likewise go out with the real digest to half the
 *                  replicas and a fabricated, validly signed one to the
 *                  rest.
 *   badsig         each message is sent with one signature byte flipped
 *                  (a REQUEST with one data byte flipped).
 *   replay         each message is sent, then up to BYZ_REPLAY_PER_SEND
 *                  older messages of this replica are sent again.
 *   out-of-window  each message is sent, then a validly signed copy whose
 *                  seq is far above the water marks (4 windows ahead).
 *   vc-spam        each message is sent, then a validly signed VIEW-CHANGE
 *                  for a view higher than any before is broadcast.
 *
 * The honest replicas must stay safe and live with one such replica (f = 1
 * of 4). Signatures are made with this replica's own key only, through
 * params.crypto (hash and sign, as given to the core): a Byzantine replica
 * can sign lies, never forge another replica's signature.
 *
 * Messages returned are owned by the struct byz and valid until the next
 * byz_transform() or byz_free(). Not thread-safe.
 */
#ifndef BYZ_H
#define BYZ_H

#include "lg.h"
#include "pbft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BYZ_ENV             "TRIALCHAIN_BYZANTINE"
#define BYZ_OUT_MAX         (2u * PBFT_MAX_REPLICAS + 8u)
#define BYZ_REPLAY_KEEP     64u /* older messages remembered for replay */
#define BYZ_REPLAY_PER_SEND 3u

enum byz_mode {
    BYZ_OFF = 0,
    BYZ_EQUIVOCATE,
    BYZ_BADSIG,
    BYZ_REPLAY,
    BYZ_OUT_OF_WINDOW,
    BYZ_VC_SPAM,
};

/* "equivocate", "badsig", "replay", "out-of-window", "vc-spam"; NULL, ""
 * and "off" give BYZ_OFF. LG_ECONFIG for anything else. */
int byz_mode_parse(const char *s, enum byz_mode *out) LG_MUST_CHECK;
const char *byz_mode_name(enum byz_mode m);

struct byz_params {
    enum byz_mode mode;
    uint32_t self; /* this replica */
    uint32_t n;    /* replicas */
    uint8_t chain_id[PBFT_CHAIN_ID_SIZE];
    uint8_t genesis_digest[PBFT_DIGEST_SIZE]; /* stable cert of vc-spam */
    uint32_t watermark_window;                /* L, for out-of-window */
    uint64_t seed;                            /* replay choices */
    struct pbft_crypto crypto;                /* hash and sign are used */
};

struct byz_send {
    uint32_t to; /* a replica id or PBFT_BROADCAST */
    const struct pbft_msg *msg;
};

struct byz_out {
    uint32_t n_sends;
    struct byz_send sends[BYZ_OUT_MAX];
};

struct byz;

/* LG_EINVAL for a bad n/self or a missing hash/sign; LG_ENOMEM. */
int byz_new(const struct byz_params *p, struct byz **out) LG_MUST_CHECK;
void byz_free(struct byz *b); /* accepts NULL */

/* What to send instead of `m` to `to` (a replica or PBFT_BROADCAST).
 * With BYZ_OFF, out holds `m` itself unchanged. LG_ENOMEM (out empty) when
 * a copy cannot be made; the caller may then send `m` as is. */
int byz_transform(struct byz *b, uint32_t to, const struct pbft_msg *m,
                  struct byz_out *out) LG_MUST_CHECK;

/* Signs vc as its replica (the bytes the core verifies for a VIEW-CHANGE:
 * tag, chain id, replica, new view, SHA-256 over the framed contents).
 * Exposed for tests. */
void byz_sign_view_change(const struct byz_params *p,
                          struct pbft_view_change *vc);

#endif /* BYZ_H */
