/*
 * registry.h - the consortium's rules as deterministic code: each committed
 * transaction is executed against the registry state, in ledger order.
 *
 * A transaction that is well signed but breaks a rule is ordered, kept and
 * marked rejected with a reason code (stable, kebab-case) and a sentence.
 * Same blocks in, byte-identical state out: no clocks (block time is passed
 * in), no randomness, no iteration over unordered containers.
 *
 * State lives in the store under "r/" and query indexes under "x/".
 */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "genesis.h"
#include "lg.h"
#include "store.h"

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

struct registry;

/* The genesis must outlive the registry. */
int registry_new(const struct genesis *g, struct registry **out) LG_MUST_CHECK;
void registry_free(struct registry *r); /* accepts NULL */

/* Executes one transaction (SignedTx bytes, already signature-checked by the
 * core's verify_request) inside the block's txn. Returns 0 and fills *res
 * for accepted and rejected alike; an error only for storage failure. */
int registry_execute(struct registry *r, struct store_txn *txn,
                     const struct tx_place *at, const uint8_t *signed_tx,
                     size_t len, struct tx_result *res) LG_MUST_CHECK;

#endif /* REGISTRY_H */
