/*
 * govern.h - consortium governance: the members and the replica set come
 * from ledger state, not only from the genesis.
 *
 * Changes are governance transactions (tx.proto GovernanceProposal /
 * GovernanceApproval), executed by the registry (node/registry_gov.c). A
 * member change applies from the next transaction on. A replica change
 * applied in block h makes a new replica set for every block > h: a new
 * consensus "epoch" whose base is the checkpoint at h.
 *
 * Epochs:
 * - Epoch 0 is the genesis set; its base height is 0.
 * - Block h's header carries the new set (BlockHeader.next_replicas). Block
 *   h is certified by the old set, so each set is certified by the one
 *   before it; a verifier holding only the genesis follows every change.
 * - Consensus statements of an epoch are signed under
 *   gov_epoch_chain_id(chain_id, base): an old epoch's votes never count
 *   in a new one, even from a replica that is in both.
 * - Replicas keep their slot (genesis id, then the next unused number for an
 *   added one; never reused), so links and logs name them stably. The core's
 *   replica index i is the i-th replica of the set ordered by slot.
 */
#ifndef GOVERN_H
#define GOVERN_H

#include "genesis.h"
#include "lg.h"
#include "pbft.h"

#include <stdbool.h>
#include <stdint.h>

/* Slots ever assigned (the net layer's peer ids). */
#define GOV_SLOTS_MAX PBFT_MAX_REPLICAS
/* Replicas in one set: the core wants n >= 4. */
#define GOV_REPLICAS_MIN 4
/* A proposal without an expiry lapses this long after its block's time. */
#define GOV_EXPIRY_DEFAULT_MS (7ull * 24 * 3600 * 1000)

struct gov_replica {
    uint32_t slot;
    char name[GENESIS_NAME_MAX];
    uint8_t public_key[32];
    char peer_url[GENESIS_URL_MAX];
};

/* The replica set in force for the blocks after base_height. */
struct gov_replica_set {
    uint64_t base_height; /* 0: the genesis set */
    uint32_t n;
    struct gov_replica r[PBFT_MAX_REPLICAS]; /* ordered by slot */
};

enum gov_member_status {
    GOV_MEMBER_ACTIVE = 1,
    GOV_MEMBER_SUSPENDED,
    GOV_MEMBER_REMOVED,
};
const char *gov_member_status_name(enum gov_member_status s);

struct gov_member {
    char name[GENESIS_NAME_MAX];
    char organisation[128];
    enum member_role role;
    enum gov_member_status status;
    uint8_t public_key[32];    /* the member's current key */
    bool key_current;          /* false: the key looked up was rotated away */
    uint64_t since_height;     /* 0: in the genesis */
    uint64_t key_until_height; /* key looked up retired after this block */
};

/* SHA-256("trialchain/epoch/v1" 0x00 || chain_id || be64(base_height)) for
 * base_height > 0; the chain id itself for 0 (the genesis epoch signs as
 * before governance existed). */
void gov_epoch_chain_id(const uint8_t chain_id[32], uint64_t base_height,
                        uint8_t out[32]);

/* The genesis replica set (slots = genesis ids). */
void gov_replica_set_genesis(const struct genesis *g,
                             struct gov_replica_set *out);

/* Index of slot in the set, or -1. */
int gov_replica_index(const struct gov_replica_set *s, uint32_t slot);
/* Index of the replica holding key pk, or -1. */
int gov_replica_by_key(const struct gov_replica_set *s, const uint8_t pk[32]);

/* The public keys in core index order (for crypto contexts). */
void gov_replica_keys(const struct gov_replica_set *s, uint8_t (*pks)[32]);

#endif /* GOVERN_H */
