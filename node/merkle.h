/*
 * merkle.h - RFC 6962 / RFC 9162 Merkle trees over SHA-256.
 * leaf hash = SHA-256(0x00 || entry), node = SHA-256(0x01 || l || r).
 * Verification consumes the proof exactly and bounds every loop by its
 * length; size 0 and equal sizes are handled as RFC 9162 says.
 */
#ifndef MERKLE_H
#define MERKLE_H

#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH     32
#define MERKLE_MAX_PATH 64

void merkle_leaf_hash(const void *entry, size_t len, uint8_t out[32]);
void merkle_node_hash(const uint8_t l[32], const uint8_t r[32],
                      uint8_t out[32]);
/* Root of n leaf hashes (n = 0: SHA-256 of the empty string). */
void merkle_root(const uint8_t (*leaves)[32], uint64_t n, uint8_t out[32]);

/* Proof generation from n leaf hashes in memory. path gets up to
 * MERKLE_MAX_PATH hashes; *n_path is set. LG_EINVAL on bad indexes. */
int merkle_inclusion_proof(const uint8_t (*leaves)[32], uint64_t n,
                           uint64_t index, uint8_t (*path)[32],
                           size_t *n_path) LG_MUST_CHECK;
int merkle_consistency_proof(const uint8_t (*leaves)[32], uint64_t size1,
                             uint64_t size2, uint8_t (*path)[32],
                             size_t *n_path) LG_MUST_CHECK;

bool merkle_verify_inclusion(const uint8_t leaf_hash[32], uint64_t index,
                             uint64_t size, const uint8_t (*path)[32],
                             size_t n_path, const uint8_t root[32]);
bool merkle_verify_consistency(uint64_t size1, uint64_t size2,
                               const uint8_t root1[32], const uint8_t root2[32],
                               const uint8_t (*path)[32], size_t n_path);

/* An append-only log kept as its compact frontier (one hash per level), so
 * appending costs O(log n) and the root is always at hand. The full leaf
 * list for proofs lives in the store (node/ledger.c). */
struct merkle_log {
    uint64_t size;
    uint8_t frontier[MERKLE_MAX_PATH][32]; /* perfect subtree roots */
};
void merkle_log_init(struct merkle_log *log);
void merkle_log_append(struct merkle_log *log, const uint8_t leaf_hash[32]);
void merkle_log_root(const struct merkle_log *log, uint8_t out[32]);

#endif /* MERKLE_H */
