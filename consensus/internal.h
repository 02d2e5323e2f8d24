/*
 * internal.h - private state of the PBFT core, shared by the consensus sources.
 *
 * Everything is allocated once in pbft_new(); the sizes follow from the
 * config (n, watermark window L, batch limits). Nothing here is visible to
 * the driver.
 */
#ifndef PBFT_INTERNAL_H
#define PBFT_INTERNAL_H

#include "pbft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Stays on in release builds: stopping beats divergence. Never used on
 * input from the network, the disk or clients. */
#define PBFT_ASSERT(expr)                                \
    do {                                                 \
        if (!(expr))                                     \
            pbft_assert_fail(#expr, __FILE__, __LINE__); \
    } while (0)

void pbft_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#define NO_BATCH   (-1)
#define WINDOW_MAX PBFT_WINDOW_MAX
#define BATCH_MAX  PBFT_BATCH_MAX
#define NO_TIMER   UINT64_MAX
/* Own VIEW-CHANGE record key: one record, replaced by each new one, never
 * removed by PBFT_REC_GC. Prepared certificates are kept as VIEW-CHANGE
 * records keyed by their seq (one per seq, replaced when a higher view
 * prepares). */
#define OWN_VC_SEQ UINT64_MAX
/* Client-table records: a REQUEST message (no data) per client, keyed by
 * this seq (never GC'd) and 96 bits of the client key in view/replica. */
#define CLIENT_REC_SEQ (UINT64_MAX - 1)

/* A batch buffer in the pool: requests and their bytes, reference counted.
 * Releases are deferred to pbft_advance() so a ready never dangles. */
struct batch {
    uint32_t refs;
    uint32_t n_requests;
    uint32_t bytes;
    struct pbft_request *reqs; /* batch_max */
    uint8_t *data;             /* batch_bytes_max */
};

/* One sequence number in the window (h, h+L]. */
struct slot {
    pbft_seq seq; /* 0: unused */
    /* State of the current view (cleared when a view is entered). */
    bool has_pp;
    struct pbft_vote pp;
    int32_t pp_batch;
    uint64_t prepare_mask; /* replicas whose PREPARE is stored */
    uint64_t commit_mask;
    /* Replicas whose vote came after the phase's quorum: neither verified
     * nor kept (receive_vote); a second one is a retransmission. */
    uint64_t late_prepare_mask;
    uint64_t late_commit_mask;
    struct pbft_vote *prepares; /* n, by replica */
    struct pbft_vote *commits;  /* n, by replica */
    bool sent_prepare;
    bool sent_commit;
    bool prepared;
    bool committed;
    /* Highest-view prepared certificate, kept across views. */
    bool has_pcert;
    struct pbft_vote pcert_pp;
    int32_t pcert_batch;
    uint32_t n_pcert_prepares;
    struct pbft_vote *pcert_prepares; /* quorum - 1 */
    /* Committed batch waiting for its turn to execute. */
    bool decided;
    struct pbft_vote decided_pp;
    int32_t decided_batch;
};

/* A batch seen in a VIEW-CHANGE, kept by the would-be new primary so it can
 * re-propose it (indexed by seq mod 2L, higher seq wins). */
struct vc_batch {
    pbft_seq seq;
    pbft_view view;
    uint8_t digest[PBFT_DIGEST_SIZE];
    int32_t batch;
};

/* A stored VIEW-CHANGE (batches stripped, kept in vc_batch). */
struct vc_store {
    bool valid;
    struct pbft_view_change vc;
    struct pbft_vote *stable_votes;   /* n */
    struct pbft_prepared_cert *certs; /* L */
    struct pbft_vote *prepares;       /* L * n */
};

/* A checkpoint certificate held by the core. */
struct cert_store {
    struct pbft_checkpoint_cert cert;
    struct pbft_vote *votes; /* n */
};

/* A queued client request (data copied). */
struct pending {
    bool used;
    bool proposed; /* primary: in a pre-prepare of this view */
    uint64_t arrived_ms;
    uint64_t order; /* FIFO position */
    struct pbft_request req;
    uint8_t *data; /* request_bytes_max */
};

struct client_entry {
    bool used;
    uint8_t client[PBFT_KEY_SIZE];
    uint64_t last_req_no;
    uint64_t touched; /* for eviction of the least recently executed */
};

struct ready_buf {
    bool outstanding;
    struct pbft_ready out;
    struct pbft_record *persist;
    uint32_t n_persist, cap_persist;
    struct pbft_send *msgs;
    uint32_t n_msgs, cap_msgs;
    struct pbft_msg *msg_store;
    uint32_t n_msg_store, cap_msg_store;
    struct pbft_execute *execute;
    uint32_t n_execute, cap_execute;
    struct pbft_checkpoint_cert *certified;
    uint32_t n_certified, cap_certified;
    struct pbft_reply_cached *replies;
    uint32_t n_replies, cap_replies;
    struct pbft_fetch_state fetch;
    bool has_fetch;
    struct pbft_trace *trace;
    uint32_t n_trace, cap_trace;
    char *trace_text;
    size_t trace_used, trace_cap;
    uint8_t *arena;
    size_t arena_used, arena_cap;
    int32_t *deferred; /* batch releases applied at advance */
    uint32_t n_deferred, cap_deferred;
    struct pbft_meta meta;
    uint64_t lost_sends; /* sends dropped for lack of room (like loss) */
};

struct pbft {
    struct pbft_config cfg;
    uint32_t n, f, q, L, K, R; /* R: checkpoint votes kept per replica */
    bool started;
    uint64_t now;

    /* view */
    pbft_view view;
    bool in_vc;
    uint32_t backoff; /* consecutive view changes without progress */
    uint64_t view_deadline;
    bool complained; /* the request timer expired once: next expiry votes */
    uint64_t view_changes;
    uint64_t last_retransmit;
    uint64_t *answered_at; /* n: last answer to a retransmitting peer, +1 */

    /* sequence numbers */
    pbft_seq h; /* stable checkpoint (low water mark) */
    struct cert_store stable;
    pbft_seq last_assigned; /* primary: highest seq pre-prepared */
    pbft_seq exec_queued;   /* highest seq handed out to execute */
    pbft_seq last_executed; /* highest seq the driver reported */
    uint8_t last_exec_digest[PBFT_DIGEST_SIZE];
    uint64_t last_exec_ts; /* timestamp of the last batch handed out */
    pbft_seq last_committed;
    pbft_seq last_certified; /* highest seq in ready.certified so far */
    /* pbft_set_stop(): nothing beyond stop_seq executes in this epoch */
    bool stopped;
    pbft_seq stop_seq;       /* UINT64_MAX while not stopped */
    uint64_t stop_resend_at; /* last resend of the own stop vote */

    /* log window and batches */
    struct slot *slots; /* L, by seq mod L */
    struct pbft_vote *slot_votes;
    struct batch *pool;
    uint32_t n_pool;
    uint8_t *pool_data;
    struct pbft_request *pool_reqs;
    struct vc_batch *vcb; /* 2L */

    /* checkpoints: per replica, its latest R votes, by (seq/K) mod R */
    struct pbft_vote *ckpt;
    struct cert_store scratch_cert;
    uint64_t cert_gap_since; /* executed but uncertified since, or 0 */
    uint64_t fetch_deadline;
    bool fetching;
    pbft_seq fetch_seq;
    uint64_t *fetch_answered; /* n: last time we answered that replica */

    /* view change */
    struct vc_store *vcs;   /* n: latest VIEW-CHANGE per replica */
    struct vc_store own_vc; /* own latest VIEW-CHANGE, with batches */
    int32_t *own_vc_refs;   /* L: batches the own VIEW-CHANGE points to */
    bool has_own_vc;
    struct vc_store *nv_vcs;             /* n: V of the NEW-VIEW we sent */
    struct pbft_new_view nv;             /* NEW-VIEW we sent (primary) */
    struct pbft_view_change *nv_vc_list; /* n */
    struct pbft_preprepare *nv_pps;      /* L */
    bool has_nv;
    pbft_seq nv_min_s;
    int32_t *nv_refs;         /* L: batches of nv, held so it can be resent */
    pbft_view *seen_view;     /* n: highest view each replica proved (signed) */
    struct pbft_vote *o_hdrs; /* L: O being computed */
    int32_t *o_batches;       /* L */

    /* clients and pending requests */
    struct client_entry *clients; /* clients_max */
    uint64_t client_clock;
    struct pending *pending;       /* pending_max */
    struct pbft_request *cut_reqs; /* batch_max: a batch being cut */
    struct pending **cut_taken;    /* batch_max */
    uint8_t *pending_data;
    uint32_t n_pending;
    uint64_t pending_order;

    /* encoding scratch for VIEW-CHANGE / NEW-VIEW digests */
    uint8_t *enc;
    size_t enc_cap;

    struct ready_buf rb;

    /* counters */
    uint64_t dropped;
    uint64_t bad_signatures;
    uint64_t verify_calls;

    /* restore bookkeeping */
    bool restored_meta;
};

/* ---- pbft.c ---------------------------------------------------------------
 */
uint32_t pbft_primary(const struct pbft *p, pbft_view v);
bool pbft_is_primary(const struct pbft *p);
int pbft_drop(struct pbft *p, int rv, const char *why);

/* ---- digest.c --------------------------------------------------------- */
void digest_null_batch(const struct pbft_crypto *c,
                       uint8_t out[PBFT_DIGEST_SIZE]);
bool digest_batch(struct pbft *p, const struct pbft_request *reqs, uint32_t n,
                  uint8_t out[PBFT_DIGEST_SIZE]);
bool digest_batch_matches(struct pbft *p, const struct pbft_preprepare *pp);
/* Statement for VIEW-CHANGE / NEW-VIEW / FETCH; returns length. */
size_t digest_vc_statement(struct pbft *p, const struct pbft_view_change *vc,
                           uint8_t *buf, size_t cap);
size_t digest_nv_statement(struct pbft *p, const struct pbft_new_view *nv,
                           uint8_t *buf, size_t cap);
size_t digest_fetch_statement(const struct pbft *p, const struct pbft_fetch *fe,
                              uint8_t *buf, size_t cap);
size_t digest_enc_cap(const struct pbft_config *cfg);

/* ---- crypto helpers (pbft.c) ------------------------------------------ */
void sig_vote_sign(struct pbft *p, enum pbft_msg_type type,
                   struct pbft_vote *v);
bool sig_vote_verify(struct pbft *p, enum pbft_msg_type type,
                     const struct pbft_vote *v);
bool sig_cert_valid(struct pbft *p, const struct pbft_checkpoint_cert *cert);
bool sig_pcert_valid(struct pbft *p, const struct pbft_prepared_cert *pc,
                     pbft_view below_view, pbft_seq lo, pbft_seq hi);

/* ---- ready.c --------------------------------------------------------- */
int ready_init(struct pbft *p);
void ready_free(struct pbft *p);
void ready_begin(struct pbft *p);
void ready_finish(struct pbft *p, struct pbft_ready *out);
void ready_release(struct pbft *p);
void *ready_alloc(struct pbft *p, size_t size);
struct pbft_msg *ready_msg(struct pbft *p, enum pbft_msg_type type);
uint32_t ready_room(const struct pbft *p); /* messages left this step */
void ready_send(struct pbft *p, uint32_t to, const struct pbft_msg *m);
void ready_persist_msg(struct pbft *p, const struct pbft_msg *m, pbft_seq seq,
                       pbft_view view, uint32_t replica);
void ready_persist_meta(struct pbft *p);
void ready_persist_gc(struct pbft *p, pbft_seq seq);
void ready_execute(struct pbft *p, const struct slot *s);
bool ready_certified(struct pbft *p, const struct pbft_checkpoint_cert *c);
void ready_reply(struct pbft *p, const struct pbft_request *req);
void ready_fetch(struct pbft *p);
struct pbft_vote *ready_copy_votes(struct pbft *p, const struct pbft_vote *v,
                                   uint32_t n);

/* batch pool */
int32_t pool_alloc(struct pbft *p);
void pool_ref(struct pbft *p, int32_t b);
void pool_unref(struct pbft *p, int32_t b);
struct batch *pool_get(struct pbft *p, int32_t b);
int32_t pool_store(struct pbft *p, const struct pbft_request *reqs, uint32_t n);
void pool_set(struct pbft *p, int32_t *dst, int32_t b);

/* ---- trace.c ----------------------------------------------------------- */
void trace_line(struct pbft *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A trace line; with cfg.trace_off not even its arguments are computed. */
#define trace(p, ...)                     \
    do {                                  \
        if (!(p)->cfg.trace_off)          \
            trace_line((p), __VA_ARGS__); \
    } while (0)
const char *trace_type(enum pbft_msg_type t);
/* A one-byte tag of a client key: traces name a request "tag:req_no". */
unsigned trace_client_tag(const uint8_t *client);

/* ---- log.c ------------------------------------------------------------- */
int log_init(struct pbft *p);
struct slot *log_slot(struct pbft *p, pbft_seq seq);
struct slot *log_find(struct pbft *p, pbft_seq seq);
bool log_in_window(const struct pbft *p, pbft_seq seq);
void log_gc(struct pbft *p, pbft_seq upto);
void log_drop_slot(struct pbft *p, struct slot *s);
void log_new_view(struct pbft *p);
void log_set_pcert(struct pbft *p, struct slot *s);

/* ---- request.c --------------------------------------------------------- */
int request_init(struct pbft *p);
int request_receive(struct pbft *p, const struct pbft_request *req,
                    bool forwarded);
uint64_t request_last_executed(const struct pbft *p, const uint8_t *client);
void request_executed(struct pbft *p, const struct pbft_request *req);
void request_persist_executed(struct pbft *p, const struct pbft_request *req);
bool request_in_window(struct pbft *p, const struct pbft_request *req,
                       pbft_seq except);
void request_forget_batch(struct pbft *p, const struct batch *b);
void request_new_view(struct pbft *p);
void request_forget_all(struct pbft *p);
uint64_t request_batch_deadline(const struct pbft *p);
void request_cut_batches(struct pbft *p);
void request_arm_timer(struct pbft *p);
void request_complain(struct pbft *p);

/* ---- normal.c ---------------------------------------------------------- */
int normal_preprepare(struct pbft *p, uint32_t from,
                      const struct pbft_preprepare *pp);
int normal_prepare(struct pbft *p, uint32_t from, const struct pbft_vote *v);
int normal_commit(struct pbft *p, uint32_t from, const struct pbft_vote *v);
void normal_propose(struct pbft *p, const struct pbft_request *reqs,
                    uint32_t n);
void normal_install_pp(struct pbft *p, struct slot *s,
                       const struct pbft_vote *hdr, int32_t batch);
const char *normal_check(struct pbft *p, struct slot *s);
void normal_accepted_pp(struct pbft *p, struct slot *s);
void normal_execute_ready(struct pbft *p);
uint64_t normal_view_timeout(const struct pbft *p);
uint64_t normal_retransmit_deadline(const struct pbft *p);
void normal_retransmit(struct pbft *p);

/* ---- checkpoint.c ------------------------------------------------------ */
int checkpoint_receive(struct pbft *p, uint32_t from,
                       const struct pbft_vote *v);
int checkpoint_executed(struct pbft *p, pbft_seq seq,
                        const uint8_t digest[PBFT_DIGEST_SIZE]);
int checkpoint_fetch_receive(struct pbft *p, uint32_t from,
                             const struct pbft_fetch *fe);
int checkpoint_transferred(struct pbft *p, pbft_seq seq,
                           const uint8_t digest[PBFT_DIGEST_SIZE]);
void checkpoint_adopt_stable(struct pbft *p,
                             const struct pbft_checkpoint_cert *c);
void checkpoint_timeout(struct pbft *p);
uint64_t checkpoint_deadline(const struct pbft *p);
void checkpoint_store_own(struct pbft *p, const struct pbft_vote *v);
void checkpoint_after_start(struct pbft *p);
void checkpoint_stop_start(struct pbft *p);
uint64_t checkpoint_stop_deadline(const struct pbft *p);

/* ---- view_change.c ----------------------------------------------------- */
int vc_init(struct pbft *p);
void vc_free(struct pbft *p);
void vc_start(struct pbft *p, pbft_view w);
int vc_receive(struct pbft *p, uint32_t from,
               const struct pbft_view_change *vc);
int vc_new_view_receive(struct pbft *p, uint32_t from,
                        const struct pbft_new_view *nv);
void vc_timeout(struct pbft *p);
int vc_restore_own(struct pbft *p, const struct pbft_view_change *vc);
void vc_after_start(struct pbft *p);
void vc_view_hint(struct pbft *p, enum pbft_msg_type type,
                  const struct pbft_vote *v);

/* ---- restore.c --------------------------------------------------------- */
int restore_record(struct pbft *p, const struct pbft_record *rec);
void restore_finish(struct pbft *p);

#endif /* PBFT_INTERNAL_H */
