/*
 * sim.h - deterministic cluster simulator for the PBFT core.
 *
 * n real cores (consensus/, through pbft.h) run in one process over a
 * simulated clock and network. Every choice (delays, losses, partitions,
 * crashes, Byzantine behaviour) comes from one seeded PRNG, so a seed and
 * the node count replay a run exactly. Checkers run after every step; the
 * first violation stops the run and is reported with the trace of the
 * replicas involved.
 */
#ifndef SIM_H
#define SIM_H

#include "pbft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_N       7
#define SIM_MAX_SLOTS   (SIM_MAX_N + 1) /* one extra slot for a twin */
#define SIM_MAX_CLIENTS 256
#define SIM_TRACE_RING  48
#define SIM_TRACE_LEN   200
#define SIM_REPLAY_RING 32
#define SIM_T0_MS       1000000 /* global clock start, room for skew */
#define SIM_REQ_PAYLOAD 16
#define SIM_REQ_SIG     32
#define SIM_REQ_HDR     (PBFT_KEY_SIZE + 8 + 2)
#define SIM_REQ_LEN     (SIM_REQ_HDR + SIM_REQ_PAYLOAD + SIM_REQ_SIG)

/* ---- PRNG: xoshiro256** seeded through splitmix64 ---------------------- */

struct sim_rng {
    uint64_t s[4];
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t sim_rng_range(struct sim_rng *r, uint64_t lo, uint64_t hi);
/* True with probability per_mille / 1000. */
bool sim_rng_chance(struct sim_rng *r, uint32_t per_mille);

/* ---- deep copies of core messages (the ready is borrowed) ------------- */

struct pbft_msg *sim_msg_clone(const struct pbft_msg *m);
void sim_msg_free(struct pbft_msg *m);
struct pbft_meta *sim_meta_clone(const struct pbft_meta *m);
void sim_meta_free(struct pbft_meta *m);
void sim_pp_copy(struct pbft_preprepare *dst,
                 const struct pbft_preprepare *src);
void sim_pp_free(struct pbft_preprepare *pp);
/* Frees a NEW-VIEW's arrays and leaves NULL pointers (counts unchanged). */
void sim_nv_free_arrays(struct pbft_new_view *nv);
void sim_request_copy(struct pbft_request *dst, const struct pbft_request *src);
const char *sim_msg_type_name(enum pbft_msg_type t);

/* ---- fake crypto -------------------------------------------------------- */

struct sim;

/* Context of one replica's struct pbft_crypto. A Byzantine core may be
 * given accept_all so that it believes fabricated input. */
struct sim_crypto_ctx {
    struct sim *sim;
    uint32_t replica;
    bool accept_all;
};

void sim_crypto_fill(struct pbft_crypto *c, struct sim_crypto_ctx *ctx);
void sim_sha256(const void *data, size_t len, uint8_t out[32]);
/* Signs as `replica` (used by Byzantine replicas re-signing with their own
 * key). Counted like the core's sign calls. */
void sim_sign_as(struct sim *s, uint32_t replica, const uint8_t *msg,
                 size_t len, uint8_t sig[PBFT_SIG_SIZE]);
/* SHA-256(secret || msg) zero-padded to a signature: the fake scheme. */
void sim_keyed_sig(const uint8_t secret[32], const uint8_t *msg, size_t len,
                   uint8_t sig[PBFT_SIG_SIZE]);
/* Re-signs a vote of `type` with `replica`'s key. */
void sim_vote_resign(struct sim *s, enum pbft_msg_type type,
                     struct pbft_vote *v);
/* Builds client `client`'s signed request number `req_no` into buf
 * (SIM_REQ_LEN bytes) and fills req (req->data points into buf). */
void sim_request_build(const struct sim *s, uint32_t client, uint64_t req_no,
                       uint8_t buf[SIM_REQ_LEN], struct pbft_request *req);
/* The checker's own verification of a client signature; returns the client
 * index or -1. */
int sim_request_check(const struct sim *s, const struct pbft_request *req);

/* ---- the simulated world ------------------------------------------------ */

enum sim_family {
    FAM_NET = 0,   /* loss, duplication, reordering, delay, partitions */
    FAM_CRASH,     /* + crash/restart from persisted state */
    FAM_WIPE,      /* + crash with state wiped (within f) */
    FAM_EQUIV,     /* equivocating primary */
    FAM_VOTES,     /* conflicting votes, votes for unknown digests */
    FAM_SIGREPLAY, /* invalid signatures, replays of old messages */
    FAM_SILENT,    /* silent primary (primaries) */
    FAM_FAKEVC,    /* VIEW-CHANGE with fabricated prepared certificates */
    FAM_TWINS,     /* two copies of one replica, same key */
    FAM_MIX,       /* everything at once within the budget */
    FAM_RECONFIG,  /* replica set changes (sim_reconfig.c); not in the cycle */
    FAM_COUNT
};

/* Families a campaign cycles through by seed ((seed / 2) mod FAM_CYCLE):
 * reconfig runs apart, so old seeds keep replaying the runs they found. */
#define FAM_CYCLE FAM_RECONFIG

const char *sim_family_name(int fam);

enum sim_byz {
    BYZ_NONE = 0,
    BYZ_SILENT,
    BYZ_EQUIVOCATE,
    BYZ_VOTES,
    BYZ_SIGREPLAY,
    BYZ_FAKEVC,
    BYZ_TWIN,
};

struct sim_params {
    uint64_t seed;
    uint32_t n;
    int family;
    uint32_t batch_max;
    uint64_t batch_delay_ms;
    uint32_t checkpoint_interval;
    uint32_t watermark_window;
    uint32_t n_clients;
    uint32_t reqs_pre;    /* per client, may run during faults */
    uint32_t reqs_post;   /* per client, issued only after the heal */
    uint64_t fault_ms;    /* length of the fault phase */
    uint64_t liveness_ms; /* bound after the heal */
    uint64_t max_events;
    bool cost_mode;
    uint64_t unit_delay_ms; /* cost mode: every message takes this long */
    bool trace_all;         /* print every trace line as it happens */
};

/* One stored record of a replica's durable consensus state. */
struct sim_rec {
    uint32_t type; /* msg type */
    pbft_seq seq;
    pbft_view view;
    uint32_t replica;
    struct pbft_msg *msg;
};

struct sim_app_entry {
    pbft_seq seq;
    uint8_t batch[PBFT_DIGEST_SIZE];
    uint8_t state[PBFT_DIGEST_SIZE];
    uint32_t n_reqs;
    uint32_t *clients;
    uint64_t *req_nos;
};

struct sim_node {
    uint32_t id;   /* replica id (a twin shares it) */
    uint32_t slot; /* index in sim.nodes */
    struct pbft *core;
    struct pbft_config cfg;
    struct sim_crypto_ctx cctx;
    bool alive;
    uint64_t incarnation; /* bumps on every crash */
    uint32_t epoch;       /* bumps on every wipe: its memory is gone */
    int64_t skew_ms;
    enum sim_byz byz;
    bool amnesiac;      /* may be wiped: counts against f */
    uint32_t twin_side; /* for a twin pair: 0 or 1 */

    /* durable consensus state */
    struct pbft_meta *meta;
    struct sim_rec *recs;
    size_t n_recs, cap_recs;

    /* durable application state: a hash chain over executed batches */
    struct sim_app_entry *log;
    size_t n_log, cap_log;
    uint8_t state[PBFT_DIGEST_SIZE];
    uint8_t *executed; /* [client][req_no] bitmap as bytes */

    /* last trace lines */
    char trace[SIM_TRACE_RING][SIM_TRACE_LEN];
    uint32_t trace_head, trace_count;

    /* Byzantine memory: messages seen, for replays */
    struct pbft_msg *replay[SIM_REPLAY_RING];
    uint32_t replay_from[SIM_REPLAY_RING];
    uint32_t n_replay;

    uint64_t timer_spins;  /* timeouts fed without the deadline moving */
    uint64_t fetch_gen;    /* only the latest ready.fetch is carried out */
    uint64_t exec_feed_at; /* EXECUTED events go back in execution order */
    uint64_t exec_gen;     /* bumps when a state transfer supersedes them */
};

struct sim_client {
    uint8_t key[PBFT_KEY_SIZE];
    uint8_t secret[32];
    uint64_t next_req_no; /* next to issue */
    uint64_t outstanding; /* 0 when idle */
    uint64_t sent_at;
    uint64_t replied_mask;
    uint32_t n_done;
    uint64_t timer_at; /* retransmit or think-time deadline */
    uint64_t timer_gen;
    uint32_t view_guess;
    uint32_t exec_count; /* cost mode: replicas that executed outstanding */
};

struct sim_ev;

struct sim_sentlog_entry {
    uint64_t k1, k2, k3; /* (replica, epoch, class), view, seq */
    uint8_t digest[PBFT_DIGEST_SIZE];
    bool used;
};

struct sim_agree {
    bool set;
    uint32_t by;
    uint8_t batch[PBFT_DIGEST_SIZE];
    uint8_t state[PBFT_DIGEST_SIZE];
};

struct sim {
    struct sim_params prm;
    struct sim_rng rng;
    uint64_t now;
    uint64_t order;
    uint64_t n_events;
    uint64_t storm_window_at, storm_events; /* events per 10 ms window */
    uint64_t repeats_skipped; /* requests ordered twice, applied once */

    struct sim_ev **heap;
    size_t heap_len, heap_cap;

    uint32_t n, f, quorum;
    struct sim_node nodes[SIM_MAX_SLOTS];
    uint32_t n_slots;
    int twin_of; /* replica id with a twin in slot n, or -1 */

    uint8_t chain_id[PBFT_CHAIN_ID_SIZE];
    uint8_t genesis[PBFT_DIGEST_SIZE];
    uint8_t replica_secret[SIM_MAX_N][32];

    struct sim_client clients[SIM_MAX_CLIENTS];
    uint32_t n_clients;
    uint64_t req_cap; /* req_no bound for the executed bitmaps */

    /* network */
    bool faults_active;
    uint64_t heal_at;
    bool blocked[SIM_MAX_N][SIM_MAX_N]; /* [from][to] */
    uint32_t loss_pm, dup_pm, long_delay_pm;
    uint64_t delay_min, delay_max;
    uint64_t partition_gen;
    bool crash_enabled, wipe_enabled, skew_enabled;

    /* checkers */
    struct sim_agree *agree;
    size_t n_agree;
    struct sim_sentlog_entry *sent;
    size_t sent_cap, sent_len;
    bool failed;
    uint64_t stmt_drift; /* honest VC/NV signatures our framing missed */
    char why[512];
    int suspects[2]; /* replicas whose traces the report prints */

    /* counters (cost report) */
    uint64_t msgs_sent;   /* replica to replica, one per destination */
    uint64_t msgs_client; /* requests and replies */
    uint64_t msgs_by_type[PBFT_MSG_TYPE_MAX + 1];
    uint64_t sign_ops, verify_ops, verify_req_ops;
    uint64_t reqs_committed;
    uint64_t latency_sum_ms, latency_n;
};

/* Runs one seed. Returns true when no checker fired. On failure, prints the
 * report (seed, replay command, traces) to `out`. */
struct sim_result {
    bool ok;
    uint64_t events;
    uint64_t sim_ms;
    uint64_t view_changes;
    char why[512];
};

void sim_params_for_seed(uint64_t seed, uint32_t n, struct sim_params *p);
void sim_run(const struct sim_params *prm, struct sim_result *res,
             bool print_failure);
/* The reconfig family (sim_reconfig.c), called by sim_run(). */
void sim_reconfig_run(const struct sim_params *prm, struct sim_result *res,
                      bool print_failure);

/* Cost run: fixed unit delay, no faults; fills the figures. */
struct sim_cost {
    uint64_t requests;
    double msgs_per_req;
    double client_msgs_per_req;
    double by_type_per_req[PBFT_MSG_TYPE_MAX + 1];
    double sigops_per_req;
    double req_verifies_per_req;
    double latency_delays;
};
bool sim_cost_run(uint32_t n, uint32_t batch, uint32_t k, struct sim_cost *out);

/* ---- internals shared between the sim files ----------------------------- */

void sim_fail(struct sim *s, int a, int b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sim_note(struct sim *s, struct sim_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t sim_local_now(const struct sim *s, const struct sim_node *nd);
/* Queues a copy of m from node `from` to replica `to` (or broadcast);
 * losses, duplication, delay and twin routing apply. */
void sim_net_send(struct sim *s, struct sim_node *from, uint32_t to,
                  const struct pbft_msg *m);
/* Feeds one event to a node and carries out the resulting ready. */
void sim_node_step(struct sim *s, struct sim_node *nd, struct pbft_event *ev);

/* VIEW-CHANGE / NEW-VIEW statements as the core frames them (sim_stmt.c):
 * re-sign a forged message with its sender's key; check the framing
 * against a signature the core made. */
void sim_vc_resign(struct sim *s, struct pbft_view_change *vc);
void sim_nv_resign(struct sim *s, struct pbft_new_view *nv);
bool sim_stmt_check(struct sim *s, const struct pbft_msg *m);

/* Byzantine behaviour (sim_byz.c). */
void sim_byz_send(struct sim *s, struct sim_node *nd,
                  const struct pbft_send *snd);
void sim_byz_received(struct sim *s, struct sim_node *nd, uint32_t from,
                      const struct pbft_msg *m);
void sim_byz_tick(struct sim *s, struct sim_node *nd);
void sim_byz_forget(struct sim_node *nd);

#endif /* SIM_H */
