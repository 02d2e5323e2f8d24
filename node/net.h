/*
 * net.h - links between replicas over NNG, authenticated and encrypted to
 * the replica keys in genesis.
 *
 * Each replica listens on one PULL socket and dials every other replica
 * with a PUSH socket (non-blocking sends into a bounded buffer: a slow or
 * dead peer loses messages, it never blocks the event loop; PBFT recovers
 * lost messages by retransmission and view change).
 *
 * Frame: sender id (4 bytes BE) || nonce (24) || crypto_box_easy_afternm(
 * plaintext) under the pairwise key of (sender, receiver), derived once at
 * start from the replicas' Ed25519 keys converted to X25519. A frame that
 * does not open under the claimed sender's key is dropped before any
 * decoding, so a host not in genesis gets nowhere. There is no forward
 * secrecy: whoever later learns a replica key can read recorded traffic to
 * and from it. A replayed frame opens, and is deduplicated by the core.
 */
#ifndef NET_H
#define NET_H

#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_HDR_BYTES (4u + 24u)
#define NET_MAC_BYTES 16u
#define NET_OVERHEAD  (NET_HDR_BYTES + NET_MAC_BYTES)
#define NET_MAX_PEERS 64
/* A frame's plaintext is a bundle of one or more parts, each a 4-byte
 * big-endian length (at least 1) and that many bytes: what one loop turn
 * sends to a peer travels in one frame (one seal, one NNG message, one
 * wake-up at the receiver). Each part is delivered alone and takes its own
 * token from the sender's bucket. */
#define NET_PART_HDR     4u
#define NET_BUNDLE_BYTES (256u * 1024u) /* parts joined up to this size */

/* Hands one opened plaintext to the node; the callee owns `data` (free()).
 * Runs on an NNG thread. */
typedef void (*net_recv_fn)(void *arg, uint32_t from, uint8_t *data,
                            size_t len);

struct net_params {
    uint32_t self;
    uint32_t n;
    const uint8_t *sk;        /* this replica's Ed25519 secret key (64) */
    const uint8_t (*pks)[32]; /* n Ed25519 public keys, by replica id */
    const char *listen_url;
    /* n URLs by slot; [self] is not dialed; NULL: no replica holds that
     * slot now (pks[i] is then ignored and frames claiming it dropped) */
    const char *const *peer_urls;
    uint32_t recv_max_bytes;
    uint32_t sendbuf;    /* messages buffered per outgoing link */
    uint32_t msgs_per_s; /* token bucket per sender */
    uint32_t burst;
    net_recv_fn recv;
    void *arg;
};

struct net_stats {
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t dropped_bad_frame; /* too short, unknown sender, not opening */
    uint64_t dropped_throttled; /* over a sender's token bucket */
    uint64_t dropped_send_full; /* outgoing buffer full */
    uint32_t peers_connected;   /* outgoing links up */
};

struct net;

/* Derives the pairwise keys, listens and starts dialing. On failure err
 * holds a sentence (e.g. the address is in use). */
int net_open(const struct net_params *p, struct net **out, char *err,
             size_t err_len) LG_MUST_CHECK;
/* Changes the peers in place (same self and listener): slots that appear
 * are dialed, a slot whose URL changed is dialed again, a slot whose key
 * changed gets its new pairwise key, and a slot given a NULL URL stops
 * sending and receiving. In-flight frames of unchanged links are kept. */
int net_update(struct net *n, const struct net_params *p, char *err,
               size_t err_len) LG_MUST_CHECK;
/* Closes every socket; after return no callback runs. Accepts NULL. */
void net_close(struct net *n);

/* Encrypts and queues data for replica `to` (never self). Never blocks;
 * LG_EBUSY when that link's buffer is full (counted). The send functions
 * are called from one thread at a time (the node's loop): a link keeps
 * one aio for its sends. */
int net_send(struct net *n, uint32_t to, const uint8_t *data, size_t len);
/* Sends k parts to `to` in order, joined into as few frames as
 * NET_BUNDLE_BYTES (and our own receive limit) allow; a larger part goes
 * alone. LG_EBUSY when a frame did not fit the link's buffer. */
int net_send_parts(struct net *n, uint32_t to, const uint8_t *const *parts,
                   const size_t *lens, size_t k);
/* Sends to every replica but self. */
void net_broadcast(struct net *n, const uint8_t *data, size_t len);

bool net_peer_connected(struct net *n, uint32_t id);
/* True when a replica holds slot id (we dial it and accept its frames). */
bool net_peer_present(struct net *n, uint32_t id);
void net_get_stats(struct net *n, struct net_stats *st);

/* ---- pure frame helpers (tests, fuzzing) ---------------------------------
 * Pairwise key from our Ed25519 secret key and their Ed25519 public key;
 * LG_EBADSIG when a key does not convert (not a valid point). */
int net_pair_key(const uint8_t my_sk[64], const uint8_t their_pk[32],
                 uint8_t key[32]) LG_MUST_CHECK;
/* out must hold len + NET_OVERHEAD bytes. */
void net_frame_seal(const uint8_t key[32], uint32_t sender, const uint8_t *pt,
                    size_t len, uint8_t *out);
/* Reads the claimed sender of a frame; LG_EBADMSG when too short. */
int net_frame_sender(const uint8_t *frame, size_t len, uint32_t *sender);
/* Opens a frame into pt (len - NET_OVERHEAD bytes); LG_EBADMSG when it
 * does not authenticate under key. */
int net_frame_open(const uint8_t key[32], const uint8_t *frame, size_t len,
                   uint8_t *pt) LG_MUST_CHECK;
/* Writes a part's 4-byte length header. */
void net_part_header(uint8_t hdr[NET_PART_HDR], size_t len);
/* Checks a bundle plaintext: whole parts, none empty, nothing left over.
 * Sets *parts to their count; LG_EBADMSG otherwise. */
int net_bundle_check(const uint8_t *pt, size_t len,
                     size_t *parts) LG_MUST_CHECK;

#endif /* NET_H */
