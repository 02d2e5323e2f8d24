/*
 * pbft.h - PBFT (Castro & Liskov, OSDI'99 / TOCS 2002) as a deterministic
 * state machine.
 *
 * The core does no I/O: no sockets, no clock, no disk, no randomness, no
 * stdio. Events go in through pbft_step() (a message, a client request, a
 * timer firing, a batch executed, state transferred), each carrying the
 * current time; actions come out in a struct pbft_ready (messages to send,
 * records to persist, batches to execute, certificates formed, state to
 * fetch, trace lines). Hashing, signing and verifying are functions the
 * driver passes in (libsodium's in the node, fakes in the simulator).
 *
 * Driver contract (as etcd's Ready):
 *   1. pbft_step(p, &ev, &ready)
 *   2. make every record in ready.persist durable (one synced write),
 *   3. only then send ready.msgs (persist-before-send: a restart must never
 *      make an honest replica contradict what it already said),
 *   4. execute ready.execute in order; for each, later feed
 *      PBFT_EV_EXECUTED with the resulting state digest,
 *   5. act on ready.certified / ready.fetch / ready.replies,
 *   6. pbft_advance(p): everything in ready was borrowed and is now invalid.
 *   The next timer is pbft_deadline_ms(p); feed PBFT_EV_TIMEOUT at or after
 *   it.
 *
 * Persistence and recovery: ready.persist holds records (a metadata record
 * and messages this replica sent or accepted). The driver stores them keyed
 * by record.key (a later record with the same key replaces the earlier one;
 * PBFT_REC_GC deletes every message record with seq <= rec.seq). On restart
 * the driver calls pbft_new() then pbft_restore() with every stored record,
 * then pbft_start() with the application's last executed (seq, digest).
 * The message records a replica writes (key = msg type, seq, view, replica):
 *   PRE-PREPARE (seq, view, primary)  sent as primary or accepted as backup
 *   PREPARE / COMMIT (seq, view, self) its own votes
 *   CHECKPOINT (seq, 0, self)          its own checkpoint votes
 *   VIEW-CHANGE (seq, 0, self)         its prepared certificate for seq: a
 *                                      VIEW-CHANGE holding just that one
 *                                      certificate (unsigned; never sent)
 *   VIEW-CHANGE (UINT64_MAX, 0, self)  its last VIEW-CHANGE, resent as is
 *   REQUEST (UINT64_MAX-1, client key bytes 0..7, bytes 8..11)
 *                                      the client table: last executed
 *                                      req_no per client (data empty)
 * The last two are never removed by PBFT_REC_GC (their seq is above any).
 *
 * Exactly once: the core never proposes, and honest backups never accept, a
 * request already executed or in flight at another seq, so a committed
 * batch repeats a request only with more than f faulty replicas (or after
 * a wiped log). ready.execute hands the batch over as committed (every
 * replica must see the same batch); an application that must be exactly
 * once regardless (the ledger) skips a req_no it has already executed.
 *
 * Retransmission: while a batch of the current view is not committed here,
 * the core resends its own messages for it every view_timeout_ms / 4, and
 * answers a peer that repeats a message with its own; lost messages heal
 * without a view change.
 *
 * Numbering: replicas are 0..n-1; the primary of view v is v mod n.
 * Sequence numbers start at 1; seq 0 is the genesis checkpoint (digest given
 * in the config). Every executed sequence number is one block; its height is
 * its seq. A later epoch (config.base_seq > 0) starts at base_seq instead.
 *
 * Reconfiguration (changing the replica set at seq h): the driver decides
 * the change when it executes h, calls pbft_set_stop(old, h) on the old
 * core and starts a new core with the new set, base_seq = h, genesis_digest
 * = the state after h, an epoch-specific chain_id and initial_view = the
 * view h executed in. It executes nothing the old core hands out beyond h
 * and frees the old core once ready.certified contains h (or it got that
 * certificate from a peer). Messages carry their epoch; the driver routes
 * them to the matching core.
 *
 * Ownership: events and their messages are borrowed for the duration of
 * pbft_step() (the core copies what it keeps). Everything in a ready is owned
 * by the core and valid until pbft_advance().
 */
#ifndef PBFT_H
#define PBFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t pbft_view;
typedef uint64_t pbft_seq;

#define PBFT_DIGEST_SIZE   32
#define PBFT_SIG_SIZE      64
#define PBFT_KEY_SIZE      32
#define PBFT_CHAIN_ID_SIZE 32
#define PBFT_MAX_REPLICAS  64
#define PBFT_BROADCAST     UINT32_MAX
/* Largest batch_max and watermark_window pbft_new() accepts. */
#define PBFT_BATCH_MAX  4096
#define PBFT_WINDOW_MAX 4096

/* Error codes: 0 is success. */
#define PBFT_ERRORS(X)                         \
    X(PBFT_OK, "ok")                           \
    X(PBFT_ENOMEM, "out of memory")            \
    X(PBFT_EINVAL, "invalid argument")         \
    X(PBFT_EBADMSG, "malformed message")       \
    X(PBFT_EBADSIG, "bad signature")           \
    X(PBFT_EWINDOW, "outside the water marks") \
    X(PBFT_ESTALE, "stale message")            \
    X(PBFT_EFULL, "queue full")                \
    X(PBFT_ECORRUPT, "corrupt persisted state")

#define PBFT__ENUM(name, text) name,
enum pbft_err { PBFT_ERRORS(PBFT__ENUM) PBFT_ERR_COUNT };
#undef PBFT__ENUM

const char *pbft_strerror(int rv);

/* ---- requests and messages ---------------------------------------------- */

/* A client request as the core sees it. `client` identifies the client (its
 * public key); `req_no` grows per client (the transaction nonce). `data` is
 * the opaque signed request; verify_request() (below) checks that data is
 * validly signed by `client` and carries `req_no`. */
struct pbft_request {
    uint8_t client[PBFT_KEY_SIZE];
    uint64_t req_no;
    uint32_t len;
    const uint8_t *data;
};

enum pbft_msg_type {
    PBFT_MSG_REQUEST = 1, /* a client request forwarded to the primary, or
                           * broadcast by a backup complaining (its timer ran
                           * out once) before it votes for a view change */
    PBFT_MSG_PREPREPARE,
    PBFT_MSG_PREPARE,
    PBFT_MSG_COMMIT,
    PBFT_MSG_CHECKPOINT,
    PBFT_MSG_VIEW_CHANGE,
    PBFT_MSG_NEW_VIEW,
    PBFT_MSG_FETCH, /* ask a peer for its latest stable checkpoint proof */
    PBFT_MSG_TYPE_MAX = PBFT_MSG_FETCH,
};

/* A signed vote: PREPARE, COMMIT or CHECKPOINT (also the header of a
 * PRE-PREPARE inside certificates). For CHECKPOINT, `view` is 0 and `digest`
 * is the state digest (the block hash) after executing `seq`. */
struct pbft_vote {
    uint32_t replica;
    pbft_view view;
    pbft_seq seq;
    uint8_t digest[PBFT_DIGEST_SIZE];
    uint64_t timestamp_ms; /* PRE-PREPARE only; 0 otherwise */
    uint8_t sig[PBFT_SIG_SIZE];
};

/* A pre-prepare: the signed header plus the batch it orders. The header
 * digest is the batch digest: SHA-256 over the framed requests (see
 * pbft_batch_digest). An empty batch is the null request. */
struct pbft_preprepare {
    struct pbft_vote hdr;
    uint32_t n_requests;
    struct pbft_request *requests;
};

/* Prepared certificate: a pre-prepare (with its batch, so a new primary can
 * re-propose it) and the quorum-1 matching PREPAREs from other replicas. */
struct pbft_prepared_cert {
    struct pbft_preprepare pp;
    uint32_t n_prepares;
    struct pbft_vote *prepares;
};

/* Checkpoint certificate: a quorum of matching CHECKPOINT votes for one seq.
 * For seq 0 it is empty (the genesis digest is in the config). This is also
 * the block certificate. */
struct pbft_checkpoint_cert {
    pbft_seq seq;
    uint8_t digest[PBFT_DIGEST_SIZE];
    uint32_t n_votes;
    struct pbft_vote *votes;
};

/* VIEW-CHANGE <new_view, stable checkpoint cert, P set>, signed by replica
 * over a statement that includes a digest of all its contents. */
struct pbft_view_change {
    uint32_t replica;
    pbft_view new_view;
    struct pbft_checkpoint_cert stable;
    uint32_t n_prepared;
    struct pbft_prepared_cert *prepared;
    uint8_t sig[PBFT_SIG_SIZE];
};

/* NEW-VIEW <view, V, O>, signed by the new primary. O holds the primary's
 * pre-prepares for the new view, batches included; every backup recomputes
 * O from V and rejects the NEW-VIEW unless it matches. */
struct pbft_new_view {
    uint32_t replica;
    pbft_view view;
    uint32_t n_view_changes;
    struct pbft_view_change *view_changes;
    uint32_t n_preprepares;
    struct pbft_preprepare *preprepares;
    uint8_t sig[PBFT_SIG_SIZE];
};

/* FETCH: "send me your stable checkpoint certificate if newer than seq".
 * Answered with a CHECKPOINT message stream (the votes of the cert). */
struct pbft_fetch {
    uint32_t replica;
    pbft_seq seq;
    uint8_t sig[PBFT_SIG_SIZE];
};

struct pbft_msg {
    enum pbft_msg_type type;
    union {
        struct pbft_request request; /* PBFT_MSG_REQUEST */
        struct pbft_preprepare pp;   /* PBFT_MSG_PREPREPARE */
        struct pbft_vote vote;       /* PREPARE, COMMIT, CHECKPOINT */
        struct pbft_view_change vc;  /* PBFT_MSG_VIEW_CHANGE */
        struct pbft_new_view nv;     /* PBFT_MSG_NEW_VIEW */
        struct pbft_fetch fetch;     /* PBFT_MSG_FETCH */
    } u;
};

/* ---- configuration and injected functions ------------------------------ */

struct pbft_crypto {
    void *ctx;
    /* SHA-256 of data. */
    void (*hash)(void *ctx, const uint8_t *data, size_t len,
                 uint8_t out[PBFT_DIGEST_SIZE]);
    /* Sign `msg` with this replica's key. */
    void (*sign)(void *ctx, const uint8_t *msg, size_t len,
                 uint8_t sig[PBFT_SIG_SIZE]);
    /* Verify `sig` over `msg` by replica `replica`'s key. */
    bool (*verify)(void *ctx, uint32_t replica, const uint8_t *msg, size_t len,
                   const uint8_t sig[PBFT_SIG_SIZE]);
    /* True when req->data is validly signed by req->client and carries
     * req->req_no (and whatever else the application checks statelessly). */
    bool (*verify_request)(void *ctx, const struct pbft_request *req);
};

struct pbft_config {
    uint32_t n;                               /* replicas, >= 4 */
    uint32_t self;                            /* this replica's id, < n */
    uint8_t chain_id[PBFT_CHAIN_ID_SIZE];     /* in every signed statement */
    uint8_t genesis_digest[PBFT_DIGEST_SIZE]; /* state digest at base_seq */
    /* Reconfiguration: a replica set (an epoch) starts at the checkpoint
     * (base_seq, genesis_digest), held like seq 0 with an implicit, empty
     * certificate: water marks start there and the first seq assigned is
     * base_seq + 1. A multiple of checkpoint_interval; 0 for the first
     * epoch. Give each epoch its own chain_id, so that no vote of one
     * epoch counts in another. */
    pbft_seq base_seq;
    /* View a replica starts in when no persisted META says otherwise (the
     * view the epoch's first checkpoint executed in; 0 for the first). */
    pbft_view initial_view;

    uint32_t batch_max;           /* requests per batch, >= 1 */
    uint32_t batch_bytes_max;     /* bytes of request data per batch */
    uint32_t request_bytes_max;   /* one request's data */
    uint64_t batch_delay_ms;      /* wait this long for a batch to fill */
    uint32_t checkpoint_interval; /* K */
    uint32_t watermark_window;    /* L = m*K, m >= 2 */
    uint32_t pending_max;         /* requests queued at a replica */
    uint32_t clients_max;         /* distinct clients remembered */

    uint64_t view_timeout_ms;     /* first view-change timer */
    uint64_t view_timeout_max_ms; /* backoff cap */
    uint64_t clock_skew_max_ms;   /* pre-prepare timestamp bound */
    uint64_t fetch_timeout_ms;    /* state-transfer retry */

    /* No ready.trace lines: formatting one per protocol step costs, so a
     * driver that would discard them (the node below debug logging) turns
     * them off. The simulator and tests keep them (the default). */
    bool trace_off;

    struct pbft_crypto crypto;
};

/* Fills sane defaults for everything but n, self, ids and crypto. */
void pbft_config_defaults(struct pbft_config *cfg);

/* f = floor((n-1)/3); quorum = ceil((n+f+1)/2), 2f+1 when n = 3f+1. */
uint32_t pbft_faults(uint32_t n);
uint32_t pbft_quorum(uint32_t n);

/* ---- events ------------------------------------------------------------- */

enum pbft_event_type {
    PBFT_EV_RECEIVE = 1, /* a message from replica `from` */
    PBFT_EV_REQUEST,     /* a client request arrived at this replica */
    PBFT_EV_TIMEOUT,     /* the deadline from pbft_deadline_ms() passed */
    PBFT_EV_EXECUTED,    /* the driver executed seq; digest = state after */
    PBFT_EV_STATE_TRANSFERRED, /* the driver installed a certified state */
};

struct pbft_event {
    enum pbft_event_type type;
    uint64_t now_ms;
    union {
        struct {
            uint32_t from;
            const struct pbft_msg *msg;
        } receive;
        const struct pbft_request *request;
        struct {
            pbft_seq seq;
            uint8_t digest[PBFT_DIGEST_SIZE];
        } executed;
        struct {
            pbft_seq seq;
            uint8_t digest[PBFT_DIGEST_SIZE];
        } transferred;
    } u;
};

/* ---- actions ------------------------------------------------------------ */

struct pbft_send {
    uint32_t to; /* replica id or PBFT_BROADCAST (all but self) */
    const struct pbft_msg *msg;
};

enum pbft_record_type {
    PBFT_REC_META = 1, /* view, view-change state, stable checkpoint */
    PBFT_REC_MSG,      /* a message sent or accepted; key below */
    PBFT_REC_GC,       /* delete every PBFT_REC_MSG with seq <= rec.seq */
};

struct pbft_meta {
    pbft_view view;
    bool in_view_change; /* sent VIEW-CHANGE for `view`, no NEW-VIEW yet */
    struct pbft_checkpoint_cert stable;
    pbft_seq last_seq_assigned; /* primary: highest seq it pre-prepared */
};

struct pbft_record {
    enum pbft_record_type type;
    /* PBFT_REC_MSG: unique key (type, seq, view, replica) so the driver can
     * store it under a fixed-width key; PBFT_REC_GC: seq. */
    pbft_seq seq;
    pbft_view view;
    uint32_t replica;
    const struct pbft_meta *meta; /* PBFT_REC_META */
    const struct pbft_msg *msg;   /* PBFT_REC_MSG */
};

/* A committed batch to execute, strictly in seq order, exactly once. */
struct pbft_execute {
    pbft_seq seq;
    pbft_view view;
    uint64_t timestamp_ms; /* primary's proposed time, checked by backups */
    uint32_t n_requests;
    const struct pbft_request *requests;
};

/* A client retransmitted a request the core already executed: the driver
 * answers it from its reply cache (the ledger). */
struct pbft_reply_cached {
    uint8_t client[PBFT_KEY_SIZE];
    uint64_t req_no;
};

/* State transfer: this replica is behind a certified checkpoint. The driver
 * fetches state up to cert->seq from peers, accepts only what matches
 * cert->digest, installs it, then feeds PBFT_EV_STATE_TRANSFERRED. */
struct pbft_fetch_state {
    const struct pbft_checkpoint_cert *cert;
};

struct pbft_trace {
    uint64_t now_ms;
    const char *line; /* one stable line, no newline */
};

struct pbft_ready {
    uint32_t n_persist;
    const struct pbft_record *persist;
    uint32_t n_msgs;
    const struct pbft_send *msgs;
    uint32_t n_execute;
    const struct pbft_execute *execute;
    /* checkpoint certificates formed, in increasing seq, one per seq that is
     * a multiple of K (the node uses K = 1: every block gets one). */
    uint32_t n_certified;
    const struct pbft_checkpoint_cert *certified;
    uint32_t n_replies;
    const struct pbft_reply_cached *replies;
    const struct pbft_fetch_state *fetch; /* NULL or one */
    uint32_t n_trace;
    const struct pbft_trace *trace;
};

/* ---- state machine ------------------------------------------------------ */

struct pbft; /* opaque */

/* Allocates a replica. Returns NULL on bad config or no memory; when errmsg
 * is non-NULL it receives a reason (static string). */
struct pbft *pbft_new(const struct pbft_config *cfg, const char **errmsg);
void pbft_free(struct pbft *p);

/* Feeds one persisted record back after a restart, before pbft_start(). */
int pbft_restore(struct pbft *p, const struct pbft_record *rec);

/* Starts the replica: last_seq/last_digest is what the application has
 * executed (base_seq and the genesis digest on a fresh start; never below
 * base_seq, else PBFT_EINVAL). After pbft_set_stop(p, h), last_seq must be
 * <= h: an old epoch's core restarts at (h, digest of h) even when the
 * application went on in the next epoch. */
int pbft_start(struct pbft *p, pbft_seq last_seq,
               const uint8_t last_digest[PBFT_DIGEST_SIZE], uint64_t now_ms,
               struct pbft_ready *out);

/* Ends this core's epoch at seq (reconfiguration; see the top of this
 * file). Call it before pbft_start() on a restart, or once the driver
 * executed seq (not necessarily fed back with PBFT_EV_EXECUTED yet). From
 * then on the core:
 *   - hands out no batch beyond seq in ready.execute (batches beyond seq
 *     handed out earlier are void: the driver must not execute them, nor
 *     feed them back), and as primary proposes nothing beyond seq;
 *   - arms no view-change or complaint timer (nothing more executes in
 *     this epoch, so no view change is useful); it still joins a view
 *     change f+1 others prove, so a quorum can finish seq without it;
 *   - resends its own CHECKPOINT vote for seq every view_timeout_ms / 4,
 *     with a FETCH for the others' votes, until checkpoint seq is stable
 *     here (on a restart with last_seq == seq it signs its vote if the
 *     store lacks it);
 *   - keeps accepting CHECKPOINT votes and answering FETCH, and reports
 *     the certificate for seq in ready.certified when it forms (possibly
 *     before the driver executed seq, when it is behind: keep it), and
 *     again from pbft_start() after a restart where it was already stable.
 *     Certificates below seq that have not formed by then are skipped:
 *     nothing later would bring their votes, and the one for seq covers
 *     the chain before it.
 * seq must be a multiple of checkpoint_interval, >= base_seq and >= what
 * was already fed back as executed; a second call may only lower it.
 * Returns PBFT_OK or PBFT_EINVAL. */
int pbft_set_stop(struct pbft *p, pbft_seq seq);

/* Feeds one event. Invalid or Byzantine input returns an error code and
 * changes nothing (it is counted); it never aborts. A ready not released
 * with pbft_advance() is released here first. */
int pbft_step(struct pbft *p, const struct pbft_event *ev,
              struct pbft_ready *out);

/* Releases everything handed out in the last ready. */
void pbft_advance(struct pbft *p);

/* Absolute time of the next timer, or UINT64_MAX when none is armed. */
uint64_t pbft_deadline_ms(const struct pbft *p);

/* Cheap pre-check before the driver does any expensive work on a message
 * (decoding a large batch, queueing): false when the message is outside the
 * water marks or otherwise certainly dropped. Reads no signature. */
bool pbft_wants(const struct pbft *p, uint32_t from, enum pbft_msg_type type,
                pbft_view view, pbft_seq seq);

/* ---- introspection (tests, metrics) ------------------------------------- */

struct pbft_status {
    pbft_view view;
    uint32_t primary;
    bool in_view_change;
    pbft_seq last_executed;
    pbft_seq last_committed;
    pbft_seq stable_seq;     /* low water mark h */
    pbft_seq high_watermark; /* h + L */
    uint32_t pending_requests;
    uint64_t view_changes; /* views entered after the first */
    uint64_t dropped;      /* invalid/out-of-window/duplicate input */
    uint64_t bad_signatures;
    uint64_t signatures_verified; /* votes and certificates' votes */
    bool fetching_state;
};

void pbft_get_status(const struct pbft *p, struct pbft_status *st);

/* Digest of a batch: SHA-256 over, per request, client || req_no (8 bytes
 * big-endian) || len (4 bytes big-endian) || data; framed so that no two
 * different batches share one encoding. Uses crypto->hash. */
void pbft_batch_digest(const struct pbft_crypto *c,
                       const struct pbft_request *reqs, uint32_t n,
                       uint8_t out[PBFT_DIGEST_SIZE]);

/* The exact bytes a replica signs for a vote of `type` (PREPREPARE, PREPARE,
 * COMMIT, CHECKPOINT): a domain tag naming the type, the chain id, then the
 * fields in fixed width big-endian. Returns the length written (<= buf_len).
 * Exposed so offline verifiers (block certificates) check the same bytes. */
#define PBFT_VOTE_STATEMENT_MAX 160
size_t pbft_vote_statement(enum pbft_msg_type type,
                           const uint8_t chain_id[PBFT_CHAIN_ID_SIZE],
                           const struct pbft_vote *v, uint8_t *buf,
                           size_t buf_len);

/* Checks a checkpoint certificate offline: a quorum of distinct replicas of
 * n, all for cert->seq and cert->digest, each signature valid. */
bool pbft_checkpoint_cert_valid(const struct pbft_crypto *c, uint32_t n,
                                const uint8_t chain_id[PBFT_CHAIN_ID_SIZE],
                                const struct pbft_checkpoint_cert *cert);

#endif /* PBFT_H */
