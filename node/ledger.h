/*
 * ledger.h - the verifiable ledger: executes committed batches through the
 * registry into hash-chained blocks, keeps one RFC 6962 log over every
 * transaction, stores block certificates, and serves receipts and proofs.
 *
 * Blocks. Block H (H = the PBFT sequence number) holds its BlockHeader
 * bytes, its SignedTx bytes in order and one TxResult per tx. Block hash =
 * SHA-256(header bytes). prev_hash of block 1 is the chain id: the chain id
 * is the "hash of block 0", so the driver gives the consensus core the
 * chain id as its genesis digest, and the core's checkpoint digest at seq H
 * is the hash of block H. tx_root / results_root are RFC 6962 roots over
 * the block's SignedTx / TxResult bytes; log_size / log_root describe the
 * global log (leaf i = the i-th transaction ever ordered) after the block.
 * Empty batches make empty blocks.
 *
 * Replica-set changes (govern.h). When a block's governance changed the
 * replica set (registry_replica_set_txn gives base_height = the block's
 * height), its header carries the new set as next_replicas. That block is
 * still certified by the set before it; every later block, up to the next
 * change, by the new one under gov_epoch_chain_id(chain id, H).
 *
 * Storage (see store.h for the prefixes):
 *   "m/chain"  chain id (32)          "m/tip"   tip record (below)
 *   "m/cert"   highest certified height (8, big-endian)
 *   "b/" H     Block bytes            "c/" H    Certificate bytes
 *   "t/" ID    tx id -> height (8) | index in block (4) | log index (8)
 *   "l/" I     leaf I: leaf hash (32) | height (8) | index in block (4)
 *   "n/" L I   (L = 1 byte level >= 1, I = 8 bytes) the root of the complete
 *              subtree over leaves [I * 2^L, (I + 1) * 2^L)
 *   "e/" H     epoch index: block H changed the replica set; the value is
 *              the ReplicaSet bytes of its header's next_replicas
 *   The tip record is height (8) | block hash (32) | block time (8) |
 *   log size (8) | the log's frontier: one hash per set bit of the size,
 *   highest level first. Opening reads the tip and the tip block only, and
 *   proofs read O(log n) stored nodes.
 *
 * Durability: ledger_apply, ledger_apply_certified and ledger_put_cert
 * return 0 only once their single synced write is durable (but see
 * ledger_set_deferred_sync). A failed call changes neither the store nor
 * the in-memory tip.
 *
 * Threads: a ledger is not thread-safe; the daemon's loop owns it.
 * Errors: LG_* codes; after a failure ledger_errmsg() holds a sentence.
 */
#ifndef LEDGER_H
#define LEDGER_H

#include "api.pb-c.h"
#include "genesis.h"
#include "ledger.pb-c.h"
#include "lg.h"
#include "merkle.h"
#include "pbft.h"
#include "registry.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ledger;

struct ledger_tip {
    uint64_t height;         /* 0 before the first block */
    uint8_t block_hash[32];  /* the chain id at height 0 */
    uint64_t time_ms;        /* block time of the tip, 0 at height 0 */
    uint64_t log_size;       /* txs in the ledger */
    uint8_t log_root[32];    /* RFC 6962 root at log_size */
    uint64_t last_certified; /* highest height with a stored certificate */
    /* The block whose governance made the replica set in force after the
     * tip (0: the genesis set); the node compares it after each block. */
    uint64_t replica_set_height;
};

/* Where a transaction sits. */
struct ledger_tx_loc {
    uint64_t height;
    uint32_t index; /* in the block */
    uint64_t log_index;
};

/* Opens the ledger over an open store. The store, genesis and registry are
 * borrowed and must outlive the ledger (registry may be NULL for a
 * read-only ledger, e.g. the tool or a verifier: then ledger_apply and
 * ledger_apply_certified return LG_EINVAL).
 * - A fresh store (no "m/chain", no blocks): records the chain id, tip 0.
 * - A store of another chain: LG_ECHAIN, err names both chain ids.
 * - Missing or inconsistent metadata (chain id but no tip, a tip whose
 *   block is missing or hashes differently, a log frontier that does not
 *   give the tip block's log root): LG_ECORRUPT, err says to run
 *   `trialchain-node --repair` or to wipe the data directory and rebuild
 *   from peers.
 * - LG_EIO on storage errors, LG_ENOMEM.
 * No replay: reads the chain id, the tip record and the tip block. */
int ledger_open(struct store *s, const struct genesis *g, struct registry *reg,
                struct ledger **out, char *err, size_t err_len) LG_MUST_CHECK;
void ledger_close(struct ledger *l); /* accepts NULL; the store stays open */

/* The sentence about the last failure (never NULL; "" when none). */
const char *ledger_errmsg(const struct ledger *l);
/* The borrowed store, for the daemon's consensus records ("p/"). */
struct store *ledger_store(struct ledger *l);
void ledger_tip(const struct ledger *l, struct ledger_tip *out);

/* Executes a committed batch as block ex->seq: every request's data
 * (SignedTx bytes, signatures already checked by the core) goes through
 * registry_execute in order, inside one store_txn; then the block, its
 * results, the tx index (the first occurrence of a tx id wins: a repeat is
 * in the block and the log but not indexed again), the log leaves and
 * nodes, the tip and the registry's writes are committed in ONE synced
 * write. block_hash receives the new block's hash (the digest to feed back
 * as PBFT_EV_EXECUTED).
 * LG_EINVAL when ex->seq is not tip + 1 (a driver bug) or there is no
 * registry; LG_EIO / LG_ENOMEM otherwise. On failure nothing changed. */
/* With on, ledger_apply and ledger_put_cert write without syncing, for a
 * caller that makes them durable itself before anything depending on them
 * leaves the process: its next synced store write syncs LevelDB's log, and
 * with it every earlier write, in order (the daemon syncs once per loop
 * turn, before it sends). A crash of the machine before that loses a tail
 * of whole blocks, never part of one; the node fetches them again. Off by
 * default. */
void ledger_set_deferred_sync(struct ledger *l, bool on);
int ledger_apply(struct ledger *l, const struct pbft_execute *ex,
                 uint8_t block_hash[32]) LG_MUST_CHECK;

/* The replica set that certifies block `height`: the set made by the last
 * change block below `height` (base_height = that block), else the genesis
 * set (base 0). Any height, also above the tip (then: the current set).
 * LG_ECORRUPT for an index entry that does not decode; LG_EIO, LG_ENOMEM. */
int ledger_replica_set_at(struct ledger *l, uint64_t height,
                          struct gov_replica_set *out) LG_MUST_CHECK;
/* The heights of the blocks that changed the replica set, ascending:
 * heights[0..min(*n, cap)) are filled and *n gets how many there are. */
int ledger_epochs(struct ledger *l, uint64_t *heights, size_t cap,
                  size_t *n) LG_MUST_CHECK;

/* The epoch links a verifier holding only the genesis needs to check block
 * `height`: the header and certificate of every change block below it,
 * oldest first (what Receipt.epochs and BlockReply.epochs carry). *out
 * gets n links, each its own protobuf-c allocation; release them with
 * ledger_epoch_links_free(*out, *n). LG_ENOTREADY when a change block is
 * not certified yet. */
int ledger_epoch_links(struct ledger *l, uint64_t height, Tc__EpochLink ***out,
                       size_t *n) LG_MUST_CHECK;
void ledger_epoch_links_free(Tc__EpochLink **links, size_t n);

/* Stores the certificate of block cert->seq (synced). The core verified its
 * votes; they are not checked again here. It may come before the block (a
 * lagging node): it is stored anyway, keyed by height. When the block
 * exists and its hash differs from cert->digest this replica diverged:
 * LG_ECORRUPT. Seq 0 or no votes: LG_EINVAL. */
int ledger_put_cert(struct ledger *l,
                    const struct pbft_checkpoint_cert *cert) LG_MUST_CHECK;

/* The certificate of block `height`, decoded; free it with
 * tc__certificate__free_unpacked(*out, NULL). LG_ENOTFOUND when none. */
int ledger_get_cert(struct ledger *l, uint64_t height,
                    Tc__Certificate **out) LG_MUST_CHECK;
/* The exact Block bytes of `height` (malloc'd, free()). LG_ENOTFOUND for
 * 0 and above the tip. */
int ledger_get_block(struct ledger *l, uint64_t height, uint8_t **bytes,
                     size_t *len) LG_MUST_CHECK;
/* Hash of block `height` (the chain id for 0). LG_ENOTFOUND past the tip. */
int ledger_block_hash(struct ledger *l, uint64_t height,
                      uint8_t hash[32]) LG_MUST_CHECK;
/* Where tx_id sits. LG_ENOTFOUND when it never entered a block. */
int ledger_find_tx(struct ledger *l, const uint8_t tx_id[32],
                   struct ledger_tx_loc *out) LG_MUST_CHECK;

/* Everything to check tx_id offline with the genesis (see verify_receipt):
 * the tx, its result, its block's header and certificate, its inclusion in
 * the block's tx_root and results_root, and in the global log at the
 * block's own log_size (the size in the certified header), and the epoch
 * links: the header and certificate of every replica-set change block
 * below the tx's block, oldest first, which take a verifier holding only
 * the genesis to the set that certified the tx's block. *out is owned by
 * the caller: tc__receipt__free_unpacked(*out, NULL).
 * LG_ENOTFOUND (unknown tx), LG_ENOTREADY (the block or a change block
 * before it is not certified yet). */
int ledger_receipt(struct ledger *l, const uint8_t tx_id[32],
                   Tc__Receipt **out) LG_MUST_CHECK;

/* RFC 9162 proofs over the global log from stored nodes, O(log n) reads.
 * path needs MERKLE_MAX_PATH slots. LG_EINVAL when index >= size, size1 >
 * size2, or a size exceeds the current log size. */
int ledger_inclusion(struct ledger *l, uint64_t index, uint64_t size,
                     uint8_t (*path)[32], size_t *n_path) LG_MUST_CHECK;
int ledger_consistency(struct ledger *l, uint64_t size1, uint64_t size2,
                       uint8_t (*path)[32], size_t *n_path) LG_MUST_CHECK;
/* The log's root at any size <= the current size. */
int ledger_log_root(struct ledger *l, uint64_t size,
                    uint8_t root[32]) LG_MUST_CHECK;

/* The transaction at log_index, with where it sits. On success out's
 * tx_id, signed_tx, result and signer_name are malloc'd: release them with
 * ledger_entry_clear(out). signer_name is the name of the member that
 * holds or held the signing key (committed state, so a rotated-away key
 * still names its member; the genesis for a read-only ledger), "" if
 * unknown. LG_ENOTFOUND past the log's end. */
int ledger_entry(struct ledger *l, uint64_t log_index,
                 Tc__LedgerEntry *out) LG_MUST_CHECK;
void ledger_entry_clear(Tc__LedgerEntry *e);

/* Catch-up (state transfer): applies block tip + 1 fetched from a peer.
 * Checks it with verify_block_walk (chain, height tip + 1, prev_hash = tip
 * hash, roots, certificate by a quorum of the replica set in force at that
 * height, ledger_replica_set_at, under its epoch chain id; a block
 * certified by an older set fails), re-executes its txs
 * through the registry, and requires the recomputed header to be
 * byte-identical to the certified one: state is rebuilt and checked, never
 * trusted. Stores the recomputed block, the certificate, the index and the
 * registry's writes in one synced write. Returns
 *   0            applied;
 *   LG_EEXIST    the block is at or below the tip and has the stored hash
 *                (nothing to do);
 *   LG_EINVAL    the block is above tip + 1 (fetch the ones before first);
 *   LG_EBADMSG   it fails verification (ledger_errmsg says which check);
 *   LG_ECORRUPT  it is certified but re-execution gives another header, or
 *                a certified block at or below the tip differs from ours:
 *                this replica diverged (errmsg names the field);
 *   LG_EIO / LG_ENOMEM. */
int ledger_apply_certified(struct ledger *l, const uint8_t *block_bytes,
                           size_t len,
                           const Tc__Certificate *cert) LG_MUST_CHECK;

/* Repair (the operator's --repair, after store_repair): rebuilds every
 * derived record (tip, tx index, log, registry state under "r/" and "x/")
 * by re-executing the stored blocks 1, 2, ... in order, each required to
 * reproduce its stored header byte for byte. It stops at the first block
 * that is missing or does not reproduce; blocks above stay unused and
 * catch-up replaces them with certified ones. Blocks, certificates and
 * consensus records are kept. O(ledger size): never on a normal start.
 * *height gets the rebuilt tip; ledger_open then succeeds. LG_ECHAIN (and
 * no change) when the store belongs to another chain. */
int ledger_rebuild(struct store *s, const struct genesis *g,
                   struct registry *reg, uint64_t *height, char *err,
                   size_t err_len) LG_MUST_CHECK;

#endif /* LEDGER_H */
