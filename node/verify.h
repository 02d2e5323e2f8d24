/*
 * verify.h - offline checks of blocks, certificates, receipts and log
 * extensions with the genesis alone. Pure: no store, no clock, no network.
 * Used by the tool (auditors), by clients checking a SubmitReply, and by
 * catch-up before a fetched block is re-executed.
 *
 * Every check returns true when it holds. On false it writes one sentence
 * into why (when why is non-NULL) saying exactly what failed, e.g. "the
 * certificate has 2 valid votes, quorum is 3". Inputs may be hostile: a
 * malformed input is a false with a reason, never a crash.
 *
 * Hashes: block hash = SHA-256(BlockHeader bytes); tx id = SHA-256(SignedTx
 * bytes); RFC 6962 leaves are the exact SignedTx (or TxResult) bytes. The
 * hash of "block 0" (prev_hash of block 1) is the chain id.
 *
 * A verifier takes every tree size and root from the certified header,
 * never from a proof: a proof's own tree_size must equal the header's.
 *
 * Replica-set changes (govern.h): a verifier starts from the genesis set
 * and follows each change block's certified next_replicas (struct
 * verify_epoch below), so the genesis alone still anchors every check.
 */
#ifndef VERIFY_H
#define VERIFY_H

#include "genesis.h"
#include "govern.h"
#include "ledger.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest Block we decode (bytes); bigger input is refused. */
#define VERIFY_BLOCK_MAX (64u << 20)

/* What a valid block says (filled only when verify_block returns true). */
struct verify_block_info {
    bool next_replicas; /* the header carries a new replica set */
    uint32_t next_n;    /* ... of this many replicas */
    uint64_t height;
    uint64_t view;
    uint64_t time_ms;
    uint32_t n_txs;
    uint64_t log_size;
    uint8_t block_hash[32];
    uint8_t prev_hash[32];
    uint8_t tx_root[32];
    uint8_t results_root[32];
    uint8_t log_root[32];
};

/* What a valid receipt proves (filled only on true). */
struct verify_receipt_info {
    uint8_t tx_id[32];
    uint64_t height;
    uint64_t time_ms;
    uint32_t block_index; /* position in the block */
    uint64_t log_index;   /* leaf index in the global log */
    uint64_t log_size;    /* from the certified header */
    uint8_t log_root[32]; /* from the certified header */
    uint8_t block_hash[32];
    Tc__TxStatus status;
    uint32_t n_epochs; /* replica-set changes walked from the genesis */
};

/* ---- epochs: the replica set a verifier trusts -----------------------------
 * Blocks 1..h1 are certified by the genesis set. A block h1 whose header
 * carries next_replicas is certified by the set before it and so certifies
 * the new set, in force for blocks h1+1.. (until the next change), whose
 * votes are signed under gov_epoch_chain_id(chain id, h1) (govern.h). A
 * verifier holding only the genesis starts from verify_epoch_genesis and
 * follows each change with verify_epoch_follow (or verify_block_walk).
 * A vote's `replica` is the core's index: its position in the set ordered
 * by slot. */
struct verify_epoch {
    uint8_t chain_id[32];
    uint8_t epoch_chain_id[32]; /* gov_epoch_chain_id(chain_id, base) */
    struct gov_replica_set set; /* in force for blocks > set.base_height */
    uint32_t n_changes;         /* changes followed since the genesis */
};

/* The genesis epoch: the genesis replicas, base 0, the chain id itself. */
void verify_epoch_genesis(const struct genesis *g, struct verify_epoch *out);
/* An epoch from a set the caller already trusts (a node's own state). */
void verify_epoch_of_set(const uint8_t chain_id[32],
                         const struct gov_replica_set *set,
                         struct verify_epoch *out);

/* BlockHeader.next_replicas into a set with base base_height: between
 * GOV_REPLICAS_MIN and PBFT_MAX_REPLICAS replicas, slots strictly
 * ascending and below GOV_SLOTS_MAX, 32-byte keys that differ, names and
 * URLs that fit. */
bool verify_replica_set_decode(const Tc__ReplicaSet *pb, uint64_t base_height,
                               struct gov_replica_set *out, char *why,
                               size_t why_len);

/* A block certificate for (height, block_hash) by `set`, whose votes are
 * signed under epoch_chain_id: the cert names that height and hash, and
 * holds valid votes from at least pbft_quorum(set->n) distinct replicas of
 * the set. A duplicate vote, an index outside the set or a bad signature
 * fails the whole certificate. Used by the node for fetched certificates. */
bool verify_cert_with_set(const struct gov_replica_set *set,
                          const uint8_t epoch_chain_id[32], uint64_t height,
                          const uint8_t block_hash[32],
                          const Tc__Certificate *cert, char *why,
                          size_t why_len);
/* The same for the core's form of a certificate (cert->seq, ->digest). */
bool verify_checkpoint_with_set(const struct gov_replica_set *set,
                                const uint8_t epoch_chain_id[32],
                                const struct pbft_checkpoint_cert *cert,
                                char *why, size_t why_len);

/* Follows one replica-set change (an EpochLink): header (exact
 * BlockHeader bytes) names this chain, is above the set's base, carries
 * next_replicas and is certified by ep's set under ep's epoch chain id.
 * Then ep holds the new set with base = that height. On false ep is
 * unchanged. */
bool verify_epoch_follow(struct verify_epoch *ep, const uint8_t *header,
                         size_t header_len, const Tc__Certificate *cert,
                         char *why, size_t why_len);

/* verify_block (below) with the certificate checked against ep's set, and
 * the block required above ep's base; then, when the block carries
 * next_replicas, ep switches to the new set: walking blocks 1, 2, ... from
 * verify_epoch_genesis crosses every change. On false ep is unchanged. */
bool verify_block_walk(struct verify_epoch *ep, const uint8_t *block_bytes,
                       size_t len, const Tc__Certificate *cert,
                       const uint8_t prev_hash[32], uint64_t expect_height,
                       struct verify_block_info *out, char *why,
                       size_t why_len);

/* A block certificate for (height, block_hash) by the GENESIS set (blocks
 * up to the first replica-set change; later ones: verify_cert_with_set):
 * the cert names that height and hash, and holds votes from at least
 * pbft_quorum(n) distinct genesis replicas, each a valid Ed25519 signature
 * over pbft_vote_statement(CHECKPOINT, chain id, {seq = height, digest =
 * block_hash}). A duplicate vote, a vote from an unknown replica or a bad
 * signature fails the whole certificate (an honest node never sends one). */
bool verify_certificate(const struct genesis *g, uint64_t height,
                        const uint8_t block_hash[32],
                        const Tc__Certificate *cert, char *why, size_t why_len);

/* A Block (exact bytes, at most VERIFY_BLOCK_MAX) with its certificate:
 * the header decodes and names this chain; its height is expect_height
 * (0: any height >= 1); prev_hash matches (NULL: not checked); n_txs equals
 * the number of txs and of results; tx_root and results_root are the
 * RFC 6962 roots of the block's txs and results; result i names tx i
 * (tx id = SHA-256(tx)); cert covers SHA-256(header bytes) at that height.
 * The log size/root cannot be checked from one block alone (catch-up
 * recomputes them). A header's next_replicas must decode as a set. The
 * certificate is checked against the genesis set: after a replica-set
 * change use verify_block_walk. out may be NULL. */
bool verify_block(const struct genesis *g, const uint8_t *block_bytes,
                  size_t len, const Tc__Certificate *cert,
                  const uint8_t prev_hash[32], uint64_t expect_height,
                  struct verify_block_info *out, char *why, size_t why_len);

/* A SignedTx (exact bytes) passes tx_open: at most TX_BYTES_MAX, decodes,
 * names this chain, and its Ed25519 signature over TAG_TX || body by
 * Tx.signer holds. tx_id (may be NULL) receives SHA-256(bytes). */
bool verify_signed_tx(const struct genesis *g, const uint8_t *signed_tx,
                      size_t len, uint8_t tx_id[32], char *why, size_t why_len);

/* A receipt (ledger.proto Receipt): its epoch links, oldest first, are
 * followed from the genesis set (verify_epoch_follow; heights strictly
 * ascending, each below the tx's block), and the header is certified by the
 * set reached;
 * the tx is in the header's tx_root at block_proof.leaf_index and its
 * result is in results_root at the same index, both with tree size
 * header.n_txs; the tx is in the global log at
 * header.log_size - n_txs + block index, with tree size header.log_size and
 * root header.log_root; the result names this tx id; the tx is well
 * signed for this chain. out may be NULL. */
bool verify_receipt(const struct genesis *g, const Tc__Receipt *r,
                    struct verify_receipt_info *out, char *why, size_t why_len);

/* An earlier log state (size1, root1), held by the auditor from an earlier
 * certified header, is a prefix of the later certified one: header2 (exact
 * BlockHeader bytes) is certified by cert2 (by the genesis set), and proof is
 * an RFC 9162 consistency proof from size1 to header2's log_size (the proof's
 * own sizes, when set, must match). size1 == 0 holds only with root1 = the
 * empty-tree root and an empty proof; size1 above the later size fails. */
bool verify_log_extension(const struct genesis *g, uint64_t size1,
                          const uint8_t root1[32], const uint8_t *header2,
                          size_t header2_len, const Tc__Certificate *cert2,
                          const Tc__ConsistencyProof *proof, char *why,
                          size_t why_len);
/* The same with header2 certified by ep's set (ep reached by a walk). */
bool verify_log_extension_in(const struct verify_epoch *ep, uint64_t size1,
                             const uint8_t root1[32], const uint8_t *header2,
                             size_t header2_len, const Tc__Certificate *cert2,
                             const Tc__ConsistencyProof *proof, char *why,
                             size_t why_len);

#endif /* VERIFY_H */
