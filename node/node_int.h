/*
 * node_int.h - the daemon's internals, shared by node.c (loop and core
 * driving), node_client.c (client requests, commit waiters, queries),
 * node_sync.c (restore, state transfer) and node_metrics.c (/metrics,
 * /readyz). Everything here runs on the loop thread unless it says so.
 */
#ifndef NODE_INT_H
#define NODE_INT_H

#include "api.h"
#include "byz.h"
#include "codec.h"
#include "config.h"
#include "crypto.h"
#include "faultnet.h"
#include "genesis.h"
#include "govern.h"
#include "http.h"
#include "ledger.h"
#include "net.h"
#include "node.h"
#include "node_gov.h"
#include "pbft.h"
#include "peer.pb-c.h"
#include "registry.h"
#include "store.h"
#include "web.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum node_in_type { NODE_IN_PEER = 1, NODE_IN_CLIENT, NODE_IN_STOP };

struct node_input {
    enum node_in_type type;
    uint32_t from;
    uint8_t *data; /* NODE_IN_PEER: opened plaintext, owned */
    size_t len;
    struct api_call *call; /* NODE_IN_CLIENT */
    Tc__ClientRequest *req;
};

struct node_exec {
    pbft_seq seq;
    uint8_t digest[32];
};

/* A client waiting for its transaction's block to be certified. */
struct node_waiter {
    bool used;
    struct api_call *call;
    uint8_t *data; /* the SignedTx, to submit again after an epoch switch */
    size_t len;
    uint8_t tx_id[32];
    uint8_t client[32];
    uint64_t req_no;
    uint64_t height; /* 0 until executed */
    uint64_t deadline_ms;
};

/* State transfer in progress. */
struct node_fetch {
    bool active;
    bool digest_known; /* false: started by us, not by the core */
    pbft_seq target;
    uint8_t digest[32];
    uint32_t peer;
    uint64_t asked_ms;
    uint64_t started_ms;
    uint32_t attempts;
};

/* A frame waiting for the group commit before it may leave. */
struct node_out {
    uint32_t to; /* replica id or PBFT_BROADCAST */
    uint8_t *buf;
    size_t len;
    /* Promises nothing (a client's request forwarded to the primary), so
     * it need not wait for the turn's synced write. */
    bool early;
};

/* What /metrics and /readyz show: copied under m_mu by the loop. */
struct node_metrics {
    struct pbft_status st;
    struct ledger_tip tip;
    uint64_t commits_total;
    uint64_t synced_writes, loop_turns, early_forwards;
    uint64_t txs_total;
    uint64_t sig_hits, sig_misses; /* tx signature cache */
    uint32_t last_batch_size;
    uint32_t waiting;
    uint32_t queue_len;
    bool fetching;
    uint64_t fetch_target;
    uint64_t peer_tip;    /* highest certified height a peer told us */
    uint32_t peers_live;  /* heard from within NODE_PEER_LIVE_MS */
    uint64_t view_behind; /* see node_view_behind */
    bool replica;         /* in the current replica set */
    uint32_t n_replicas;
    uint64_t epoch_base;
    struct net_stats net;
};

/* One epoch's consensus keys: the crypto context a core was made with
 * points here, so each core owns one (node_epoch.c). */
struct node_keys {
    struct crypto_replica_ctx cctx;
    uint8_t pks[PBFT_MAX_REPLICAS][32];
    uint8_t chain_id[32]; /* gov_epoch_chain_id of the epoch */
};

/* The previous epoch's core, kept (in memory only) after a replica-set
 * switch until it has the old set's certificate of the boundary block. */
struct node_old_core {
    struct pbft *pbft;
    struct node_keys *keys;
    struct gov_replica_set set;
    pbft_seq stop;
    uint64_t started_ms;
};

#define NODE_NO_INDEX     UINT32_MAX
#define NODE_OLD_MAX      8
#define NODE_HEARTBEAT_MS 1000
#define NODE_DELAYED_MAX  1024 /* frames held back by TRIALCHAIN_FAULTS */
#define NODE_PEER_LIVE_MS 3500
#define NODE_BEHIND_SLACK 64 /* blocks behind peers before "not ready" */

struct node {
    const struct node_config *cfg;
    /* Replicas are named two ways: a slot (stable, the peer links' id and
     * what peer_* tables are indexed by) and the core's index in the
     * current set (self; NODE_NO_INDEX when this node is not in it). */
    uint32_t self;
    uint32_t slot;
    struct gov_replica_set set; /* the epoch the core runs */
    struct node_keys *keys;     /* the current core's */
    /* Previous epochs' cores still collecting their boundary certificate
     * (usually none, one right after a change). */
    struct node_old_core *old[NODE_OLD_MAX];
    uint32_t n_old;
    pbft_seq switch_at; /* executed a block that changed the set */
    bool removed;       /* not in the set any more: stop when done */
    struct genesis *genesis;
    struct keyfile key;
    bool key_loaded;
    struct pbft_crypto crypto; /* the current core's, for certificates */
    /* Client requests this node lets wait in its core at once: the
     * primary's pool holds every node's share, and a request forwarded
     * into a full pool is dropped there, so each node takes only 1/n. */
    uint32_t pending_share;
    struct codec_limits limits;

    struct store *store;
    struct registry *registry;
    struct ledger *ledger;
    /* Transaction signatures verified at the API or in any core (tx.h):
     * main thread only. */
    struct tx_sigcache *sigs;
    struct pbft *pbft;
    struct net *net;
    struct api *api;
    struct http *http;

    /* input queue: ring of q_cap + 1 slots (one reserved for STOP) */
    /* The ledger is not thread-safe. The loop holds ledger_mu whenever it
     * works and lets go only while it waits for input, so the web view
     * (rendered on NNG's HTTP threads) reads between two loop turns. Taken
     * in node_alloc by the thread that opens, runs and closes the node. */
    /* Test modes, off unless TRIALCHAIN_FAULTS / TRIALCHAIN_BYZANTINE are
     * set: a fault-injecting transport (this kernel has no netem) and a
     * Byzantine replica, so multi-process tests can attack real nodes. */
    struct faultnet faults;
    struct node_out delayed[NODE_DELAYED_MAX]; /* .to, .buf; at below */
    uint64_t delayed_at[NODE_DELAYED_MAX];
    size_t n_delayed;
    struct byz *byz;
    pbft_seq gc_done; /* consensus records up to here are deleted */

    pthread_mutex_t ledger_mu;
    bool ledger_mu_held;
    struct web_ctx web;

    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    struct node_input *q;
    size_t q_cap, q_head, q_len;

    /* Group commit: records are written unsynced as readies come, frames
     * wait here, and one synced write per loop turn releases them all. */
    struct node_out *outbox;
    size_t n_out, out_cap;
    bool unsynced;
    uint64_t group_syncs;    /* synced writes (one per turn that wrote) */
    uint64_t loop_turns;     /* wake-ups of the loop */
    uint64_t early_forwards; /* forwarded requests, sent before the sync */

    struct node_exec *exec_q;
    size_t exec_head, exec_len;

    struct node_waiter *waiters;
    uint32_t n_waiters_max, n_waiters;
    /* No waiter's deadline is before this: the loop scans the table only
     * then (a lower bound; removals leave it early, never late). */
    uint64_t waiters_due_ms;
    int32_t *wait_index; /* open addressing over tx ids: slot -> waiter */
    uint32_t wait_index_cap;

    struct node_fetch fetch;
    uint64_t peer_tip;
    /* liveness: when each peer was last heard from (mono ms) */
    uint64_t peer_seen_ms[PBFT_MAX_REPLICAS];
    uint64_t peer_certified[PBFT_MAX_REPLICAS];
    uint64_t peer_view[PBFT_MAX_REPLICAS];
    uint64_t heartbeat_ms;
    uint64_t served_ms[PBFT_MAX_REPLICAS]; /* last block chunk served */
    /* Blocks executed but not certified when the process died: their
     * certificates are fetched from peers (0: none missing). */
    uint64_t cert_missing_from;
    uint64_t cert_asked_ms;
    uint32_t cert_peer;
    uint64_t stuck_since_ms; /* behind peers with no progress since */
    uint64_t stuck_height;

    bool running;
    int fatal;
    atomic_bool stopping;
    uint64_t commits_total, txs_total;
    uint32_t last_batch_size;
    unsigned long long drop_logged_ms;
    pbft_view last_view_logged;
    atomic_uint_fast64_t dropped_queue_full, dropped_undecodable,
        dropped_unwanted, client_rejected;

    pthread_mutex_t m_mu;
    struct node_metrics m;
};

/* node.c */
/* Steps the core once and carries out everything that follows. */
int node_step(struct node *n, const struct pbft_event *ev);
/* Carries out a ready the core just returned (pbft_start), advances, and
 * feeds back executed blocks until none is left. */
int node_process(struct node *n, struct pbft_ready *r);
/* Runs on an NNG thread: a peer frame for the input queue. */
void node_peer_recv(void *arg, uint32_t from, uint8_t *data, size_t len);
/* Sends a core's message: `to` is a replica index in `set` (or
 * PBFT_BROADCAST), the frame carries the set's epoch. */
void node_send_core(struct node *n, const struct gov_replica_set *set,
                    uint32_t to, const struct pbft_msg *msg);
/* Queues a frame for after the next group commit; `to` is a slot. */
void node_send_frame(struct node *n, uint32_t to, const Tc__PeerFrame *f);
/* Makes every record written so far durable (one synced write), then sends
 * the queued frames. LG_EIO is fatal. */
int node_flush(struct node *n);
void node_log_dropped(struct node *n, const char *why, uint32_t from);

/* node_epoch.c */
/* At start, after the ledger is open: finds this node's slot and the set
 * in force, drops consensus records of another epoch, makes the core (or
 * none: a replica not yet added). */
int node_epoch_open(struct node *n, char *err, size_t err_len) LG_MUST_CHECK;
/* (Re)opens the peer links for the current set (and the old one while it
 * lives), this node listening on its slot. */
int node_net_open(struct node *n, char *err, size_t err_len) LG_MUST_CHECK;
/* After executing block seq: true when it changed the replica set (the
 * caller executes nothing beyond it, then calls node_epoch_switch). */
bool node_epoch_changed(struct node *n, pbft_seq seq);
/* Switches to the set in the ledger's state (after node_epoch_changed, or
 * after catch-up installed blocks that changed it). */
int node_epoch_switch(struct node *n);
/* The old core of the epoch based at `epoch`, or NULL. */
struct node_old_core *node_old_find(struct node *n, uint64_t epoch);
/* Feeds a consensus message of a previous epoch to its old core. */
void node_old_receive(struct node *n, struct node_old_core *o, uint32_t from,
                      const struct pbft_msg *m);
void node_old_tick(struct node *n, uint64_t now_ms);
/* Earliest deadline of the old cores (UINT64_MAX: none). */
uint64_t node_old_deadline(const struct node *n);
void node_old_free_all(struct node *n);
/* Slot of the core's replica index in `set`, or PBFT_BROADCAST. */
uint32_t node_slot_of(const struct gov_replica_set *set, uint32_t index);
/* The next slot after p in the current set, not this node's. */
uint32_t node_next_peer(const struct node *n, uint32_t p);
void node_keys_free(struct node_keys *k);

/* node_client.c */
/* After a switch: submits again what local clients still wait for. */
void node_waiters_resubmit(struct node *n);
int node_waiters_init(struct node *n, uint32_t max) LG_MUST_CHECK;
void node_waiters_free(struct node *n);
void node_waiters_executed(struct node *n, const uint8_t tx_id[32],
                           uint64_t height);
void node_waiters_certified(struct node *n);
/* After blocks arrived by state transfer (not executed here): finds the
 * waiters' txs in the ledger and answers those now certified. */
void node_waiters_recheck(struct node *n);
void node_waiters_retransmitted(struct node *n,
                                const struct pbft_reply_cached *r);
void node_waiters_expire(struct node *n, uint64_t now_ms);
void node_waiters_shutdown(struct node *n);
void node_client_handle(struct node *n, struct api_call *call,
                        const Tc__ClientRequest *req);

/* node_sync.c */
int node_restore(struct node *n, char *err, size_t err_len) LG_MUST_CHECK;
int node_start(struct node *n, char *err, size_t err_len) LG_MUST_CHECK;
/* After --repair: every block from the tip back to genesis is present and
 * hash-linked. LG_ECORRUPT with a reason in why otherwise. */
int node_verify_chain(struct node *n, char *why, size_t why_len);
int node_store_gc(struct node *n, struct store_batch *b, pbft_seq seq);
/* Finds the lowest block from `from` on without a certificate. */
void node_certs_scan(struct node *n, uint64_t from);
void node_fetch_start(struct node *n, pbft_seq target,
                      const uint8_t digest[32]);
void node_fetch_tick(struct node *n, uint64_t now_ms);
void node_fetch_serve(struct node *n, uint32_t from,
                      const Tc__BlockRequest *req);
void node_fetch_chunk(struct node *n, uint32_t from,
                      const Tc__BlockChunk *chunk);

/* node_metrics.c */
/* Peers heard from within NODE_PEER_LIVE_MS (heartbeats or any frame). */
uint32_t node_peers_live(const struct node *n);
/* The view f+1 live peers are beyond ours in (so at least one honest
 * replica is), or 0 when we are not behind. */
uint64_t node_view_behind(const struct node *n, uint64_t my_view);
void node_metrics_update(struct node *n);
/* Why this node is not ready (what /readyz says), one reason per line in
 * buf; returns how many (0: ready). Loop thread. */
size_t node_not_ready(struct node *n, char *buf, size_t cap);
/* Runs on an NNG thread. */
void node_web_status(void *arg, struct web_status *out);
int node_http_render(void *arg, const char *path, char **body, size_t *len,
                     uint16_t *status);

#endif /* NODE_INT_H */
