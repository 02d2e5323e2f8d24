/*
 * registry.h - the consortium's rules as deterministic code: each committed
 * transaction is executed against the registry state, in ledger order.
 *
 * A transaction that is well signed but breaks a rule is ordered, kept and
 * marked rejected with a reason code (stable, kebab-case) and a sentence.
 * Same blocks in, byte-identical state out: no clocks (block time is passed
 * in), no randomness, no iteration over unordered containers.
 *
 * State lives in the store under "r/" and query indexes under "x/"; the key
 * layout and every rule are described at the top of registry.c. The
 * registry object itself holds no mutable state (everything is in the
 * store), so queries may run on the committed store from another thread
 * while the ledger executes the next block in a store_txn.
 *
 * Reason codes (struct tx_result.code of a rejected tx; stable):
 *  any tx      malformed-tx wrong-chain unknown-signer replayed-nonce
 *              clock-out-of-bounds role-not-permitted invalid-id
 *              missing-field field-too-long personal-data bad-hash
 *              invalid-date too-many-items unknown-trial trial-terminated
 *  protocol    trial-exists missing-outcomes invalid-outcome
 *              duplicate-outcome-id not-sponsor bad-version bad-prev-hash
 *  ethics      unknown-version already-approved already-suspended
 *              already-terminated version-terminated version-not-approved
 *              invalid-action
 *  sites       unknown-member not-a-site already-authorized
 *              site-not-authorized
 *  consent     bad-pseudonym pseudonym-other-site trial-suspended
 *              version-suspended missing-participation unknown-scope
 *              duplicate-scope no-consent already-withdrawn scope-not-held
 *  datasets    dataset-exists missing-participants duplicate-participant
 *              participant-without-consent
 *  access      unknown-dataset not-dataset-site unknown-purpose
 *              expiry-in-past purpose-not-consented unknown-grant
 *              not-granting-site already-revoked not-grantee grant-revoked
 *              grant-expired purpose-mismatch file-hash-mismatch
 *              access-outside-consent
 *  results     unknown-outcome dataset-other-trial
 *  attestation height-in-future
 *  signers     member-suspended member-removed key-rotated (any tx)
 *  governance  not-a-voter proposal-exists unknown-proposal proposal-expired
 *              proposal-closed already-approved member-exists key-in-use
 *              replica-exists unknown-replica too-few-replicas
 *              too-many-replicas bad-peer-url below-threshold-voters
 *              invalid-action unknown-member expiry-in-past too-many-items
 *              (rules and decisions at the top of registry_gov.c)
 */
#ifndef REGISTRY_H
#define REGISTRY_H

#include "api.pb-c.h"
#include "genesis.h"
#include "govern.h"
#include "lg.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tx_status { TXS_UNKNOWN = 0, TXS_ACCEPTED = 1, TXS_REJECTED = 2 };

struct tx_result {
    enum tx_status status;
    char code[40];     /* "" when accepted, else e.g. "not-authorized" */
    char message[256]; /* a sentence for a person */
};

/* Where a transaction sits; passed to execute so indexes can point at it. */
struct tx_place {
    uint64_t height;
    uint64_t block_time_ms;
    uint64_t log_index;
    uint8_t tx_id[32];
};

/* Bounds the rules enforce (a larger field or list is rejected). */
#define REGISTRY_ID_MAX            64   /* trial, dataset, outcome ids */
#define REGISTRY_TEXT_MAX          2048 /* bytes per free-text field */
#define REGISTRY_OUTCOMES_MAX      200
#define REGISTRY_SCOPES_MAX        32
#define REGISTRY_PARTICIPANTS_MAX  2000 /* TX_BYTES_MAX binds first */
#define REGISTRY_DATASETS_USED_MAX 64
#define REGISTRY_SEALED_KEY_MAX    512
#define REGISTRY_MEMBERS_MAX       1024 /* members ever, genesis included */
#define REGISTRY_APPROVALS_MAX     256  /* approvers of one proposal */
/* |client_time_ms - block time| above this: "clock-out-of-bounds". */
#define REGISTRY_CLOCK_BOUND_MS (10u * 60u * 1000u)

struct registry;

/* The genesis must outlive the registry. */
int registry_new(const struct genesis *g, struct registry **out) LG_MUST_CHECK;
void registry_free(struct registry *r); /* accepts NULL */

/* Executes one transaction (SignedTx bytes, already signature-checked by the
 * core's verify_request) inside the block's txn. Returns 0 and fills *res
 * for accepted and rejected alike; an error only for storage failure
 * (LG_EIO, LG_ENOMEM, or LG_ECORRUPT for a state record that does not
 * decode), after which the caller must abort the txn. */
int registry_execute(struct registry *r, struct store_txn *txn,
                     const struct tx_place *at, const uint8_t *signed_tx,
                     size_t len, struct tx_result *res) LG_MUST_CHECK;

/* ---- queries (committed state only) -------------------------------------
 * Entry queries fill log_indexes[0..*n) (capacity `limit`) with the log
 * indexes of matching transactions in ledger order, skipping the first
 * `offset`, and set *total to the number of matches. The ledger maps a log
 * index to its tx bytes, height, time and result. */

/* Fills out (initialised here; release with registry_trial_summary_clear).
 * LG_ENOTFOUND for a trial never registered. */
int registry_trial_summary(struct registry *r, struct store *s,
                           const char *trial_id,
                           Tc__TrialSummary *out) LG_MUST_CHECK;
/* Frees what registry_trial_summary allocated; out stays initialised. */
void registry_trial_summary_clear(Tc__TrialSummary *out);

/* Every transaction that names the trial, accepted or rejected (protocol,
 * ethics, sites, consents, datasets, grants, revocations, access events,
 * results, attestations), including refused attempts. A trial id with no
 * entries gives *total = 0 (not an error). */
int registry_trial_entries(struct registry *r, struct store *s,
                           const char *trial_id, uint64_t offset, size_t limit,
                           uint64_t *log_indexes, size_t *n,
                           uint64_t *total) LG_MUST_CHECK;

/* A pseudonym's consent transactions (record, re-consent, withdrawal,
 * refused attempts) in one trial. */
int registry_pseudonym_entries(struct registry *r, struct store *s,
                               const char *trial_id,
                               const uint8_t pseudonym[32], uint64_t offset,
                               size_t limit, uint64_t *log_indexes, size_t *n,
                               uint64_t *total) LG_MUST_CHECK;

/* Every transaction signed by the member (genesis or added, any status,
 * with any key it held). */
int registry_member_entries(struct registry *r, struct store *s,
                            const char *member, uint64_t offset, size_t limit,
                            uint64_t *log_indexes, size_t *n,
                            uint64_t *total) LG_MUST_CHECK;

/* Registered trials in registration order: ids[0..*n) (capacity limit). */
int registry_list_trials(struct registry *r, struct store *s, uint64_t offset,
                         size_t limit, char (*ids)[REGISTRY_ID_MAX + 1],
                         size_t *n, uint64_t *total) LG_MUST_CHECK;

/* The member's last recorded nonce (0 when none; a nonce is recorded
 * whenever it was fresh, even if the tx was then refused by a rule), so a
 * client can pick the next one. LG_ENOTFOUND for an unknown member. */
int registry_member_nonce(struct registry *r, struct store *s,
                          const char *member, uint64_t *nonce) LG_MUST_CHECK;

/* ---- governance (registry_gov.c) ----------------------------------------
 */

/* The replica set in force after the last committed block (the genesis set,
 * base_height 0, before any change). */
int registry_replica_set(struct registry *r, struct store *s,
                         struct gov_replica_set *out) LG_MUST_CHECK;
/* The same inside a block's txn, after its txs executed: out->base_height
 * equals the block's height when the block changed the set. */
int registry_replica_set_txn(struct registry *r, struct store_txn *txn,
                             struct gov_replica_set *out) LG_MUST_CHECK;

/* The member that holds or held key pk (key_current false and
 * key_until_height set for a rotated-away key), or by name; any status.
 * LG_ENOTFOUND when none ever did. */
int registry_member_by_key(struct registry *r, struct store *s,
                           const uint8_t pk[32],
                           struct gov_member *out) LG_MUST_CHECK;
int registry_member_by_name(struct registry *r, struct store *s,
                            const char *name,
                            struct gov_member *out) LG_MUST_CHECK;

/* 0 when key pk may sign a new tx now (committed state). LG_EPERM with a
 * reason code (unknown-signer, key-rotated, member-removed,
 * member-suspended) in code and a sentence in msg otherwise; another error
 * for storage failure. */
int registry_signer_check(struct registry *r, struct store *s,
                          const uint8_t pk[32], char code[40], char *msg,
                          size_t msg_len) LG_MUST_CHECK;

/* Governance state at time now_ms: proposals (newest first, paged by
 * offset/limit, or only the one named; LG_ENOTFOUND when the named one does
 * not exist), all members, the replica set, the threshold and the voting
 * roles. Initialises out; release with registry_governance_clear (also on
 * failure). */
int registry_governance(struct registry *r, struct store *s,
                        const char *proposal_id, uint64_t now_ms,
                        uint64_t offset, size_t limit,
                        Tc__GovernanceReply *out) LG_MUST_CHECK;
/* Frees what registry_governance allocated; out stays initialised. */
void registry_governance_clear(Tc__GovernanceReply *out);

#endif /* REGISTRY_H */
