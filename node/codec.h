/*
 * codec.h - the one place (besides tools/) that converts between the core's
 * plain structs (pbft.h) and protobuf (proto/consensus.proto,
 * proto/ledger.proto).
 *
 * Decoding treats every byte as Byzantine: the total size is capped before
 * protobuf-c sees it, and the decoded tree is validated (counts against
 * limits derived from n and the config, digests 32 bytes, signatures 64,
 * client keys 32, replica ids < n) before any struct is built. Anything
 * wrong is LG_EBADMSG (LG_ETOOBIG for the size cap), never a crash.
 */
#ifndef CODEC_H
#define CODEC_H

#include "consensus.pb-c.h"
#include "ledger.pb-c.h"
#include "lg.h"
#include "pbft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a peer's message may contain. */
struct codec_limits {
    uint32_t n;                 /* replicas: ids < n, votes per cert <= n */
    uint32_t batch_max;         /* requests per pre-prepare */
    uint32_t request_bytes_max; /* one request's data */
    uint32_t window_max;        /* prepared certs per VIEW-CHANGE and
                                   pre-prepares per NEW-VIEW (L) */
    size_t msg_bytes_max;       /* the whole encoded message */
};

#define CODEC_MSG_BYTES_DEFAULT (32u << 20)

/* Limits for a replica running cfg: n, batch_max, request_bytes_max,
 * watermark_window, and CODEC_MSG_BYTES_DEFAULT. */
void codec_limits_from_config(const struct pbft_config *cfg,
                              struct codec_limits *lim);

/* ---- consensus messages -------------------------------------------------
 * Encode: *out is malloc'd (caller frees). Decode: on success *out is one
 * allocation holding the message and everything it points to (request
 * data included), freed with codec_msg_free; on failure *out is untouched.
 */
int codec_encode_msg(const struct pbft_msg *m, uint8_t **out,
                     size_t *len) LG_MUST_CHECK;
int codec_decode_msg(const uint8_t *buf, size_t len,
                     const struct codec_limits *lim,
                     struct pbft_msg **out) LG_MUST_CHECK;
void codec_msg_free(struct pbft_msg *m); /* accepts NULL */

/* ---- persisted consensus records ----------------------------------------
 * Store key, fixed width, integers big-endian:
 *   "p/" rec_type(1) seq(8) msg_type(1) view(8) replica(4)   (24 bytes)
 * PBFT_REC_META uses the same layout with zero fields (one key). Records of
 * type PBFT_REC_MSG sort by seq first, so GC of seq <= S is a prefix scan
 * of CODEC_KEY_MSG_PREFIX that stops at the first larger seq.
 * The value is ConsensusMeta (META) or ConsensusMsg (MSG) bytes. */
#define CODEC_RECORD_KEY_SIZE 24
#define CODEC_KEY_MSG_PREFIX  "p/\x02"
#define CODEC_KEY_PREFIX      "p/"

/* LG_EINVAL for PBFT_REC_GC (it deletes, it is not stored). */
int codec_record_key(const struct pbft_record *r,
                     uint8_t key[CODEC_RECORD_KEY_SIZE],
                     size_t *klen) LG_MUST_CHECK;
/* The seq of a PBFT_REC_MSG key; false for any other key. */
bool codec_record_key_seq(const uint8_t *key, size_t klen, pbft_seq *seq);

int codec_encode_record(const struct pbft_record *r, uint8_t **out,
                        size_t *len) LG_MUST_CHECK;

/* A record read back from the store: rec points into this allocation
 * (rec.meta at meta, rec.msg at msg). Free with codec_record_free. */
struct codec_record {
    struct pbft_record rec;
    struct pbft_meta meta;
    struct pbft_msg *msg;
};
/* Decodes a stored (key, value). Disk is untrusted too: LG_ECORRUPT when
 * the key or value is malformed. */
int codec_decode_record(const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen, const struct codec_limits *lim,
                        struct codec_record **out) LG_MUST_CHECK;
void codec_record_free(struct codec_record *r); /* accepts NULL */

/* ---- block certificates (ledger.proto Certificate) ----------------------
 * to_proto fills *out (TC__CERTIFICATE__INIT'd by the function) with votes
 * allocated by the codec; release them with codec_cert_proto_clear. Packing
 * *out does not need the cert afterwards (bytes are copied). */
int codec_cert_to_proto(const struct pbft_checkpoint_cert *c,
                        Tc__Certificate *out) LG_MUST_CHECK;
void codec_cert_proto_clear(Tc__Certificate *p);
/* Validates the shape (digest 32, <= n votes, each vote with digest 32,
 * sig 64, replica < n) and builds one allocation; free() it. Neither the
 * votes' seq/digest nor their signatures are checked here: use
 * pbft_checkpoint_cert_valid. */
int codec_cert_from_proto(const Tc__Certificate *in, uint32_t n,
                          struct pbft_checkpoint_cert **out) LG_MUST_CHECK;

/* The same, for the CheckpointCert message inside consensus messages. */
int codec_ckpt_to_proto(const struct pbft_checkpoint_cert *c,
                        Tc__CheckpointCert *out) LG_MUST_CHECK;
void codec_ckpt_proto_clear(Tc__CheckpointCert *p);

/* Certificate bytes (ledger.proto), e.g. the store's "c/" H value. */
int codec_encode_cert(const struct pbft_checkpoint_cert *c, uint8_t **out,
                      size_t *len) LG_MUST_CHECK;
int codec_decode_cert(const uint8_t *buf, size_t len, uint32_t n,
                      struct pbft_checkpoint_cert **out) LG_MUST_CHECK;

#endif /* CODEC_H */
