/*
 * request.c - the client table (last executed req_no per client) and the
 * queue of pending requests.
 *
 * The table decides admission: a request already executed is answered from
 * the driver's reply cache, a duplicate of one queued or in flight is
 * ignored. The queue is an array kept in arrival order (holes are squeezed
 * out when the tail reaches the end); the primary cuts batches from it,
 * backups keep their entries to watch the primary (the view-change timer).
 * The timer has two stages: its first expiry sends the waiting requests to
 * every replica (a complaint), only a second one votes for a view change.
 */
#include "internal.h"

#include <string.h>

int request_init(struct pbft *p)
{
    uint32_t max = p->cfg.pending_max;

    p->clients = calloc(p->cfg.clients_max, sizeof(*p->clients));
    p->pending = calloc(max, sizeof(*p->pending));
    p->cut_reqs = calloc(p->cfg.batch_max, sizeof(*p->cut_reqs));
    p->cut_taken = calloc(p->cfg.batch_max, sizeof(*p->cut_taken));
    if (p->cut_reqs == NULL || p->cut_taken == NULL)
        return PBFT_ENOMEM;
    p->pending_data = malloc((size_t)max * p->cfg.request_bytes_max + 1);
    if (p->clients == NULL || p->pending == NULL || p->pending_data == NULL)
        return PBFT_ENOMEM;
    for (uint32_t i = 0; i < max; i++)
        p->pending[i].data =
            p->pending_data + (size_t)i * p->cfg.request_bytes_max;
    return PBFT_OK;
}

static struct client_entry *client_find(const struct pbft *p,
                                        const uint8_t *client)
{
    for (uint32_t i = 0; i < p->cfg.clients_max; i++)
        if (p->clients[i].used &&
            memcmp(p->clients[i].client, client, PBFT_KEY_SIZE) == 0)
            return &p->clients[i];
    return NULL;
}

uint64_t request_last_executed(const struct pbft *p, const uint8_t *client)
{
    const struct client_entry *c = client_find(p, client);

    return c == NULL ? 0 : c->last_req_no;
}

/* Records an executed request; when the table is full the least recently
 * executed client is forgotten (the ledger's nonce check still refuses its
 * replays). */
void request_executed(struct pbft *p, const struct pbft_request *req)
{
    struct client_entry *c = client_find(p, req->client);

    if (c == NULL) {
        c = &p->clients[0];
        for (uint32_t i = 0; i < p->cfg.clients_max; i++) {
            if (!p->clients[i].used) {
                c = &p->clients[i];
                break;
            }
            if (p->clients[i].touched < c->touched)
                c = &p->clients[i];
        }
        memset(c, 0, sizeof(*c));
        c->used = true;
        memcpy(c->client, req->client, PBFT_KEY_SIZE);
    }
    if (req->req_no > c->last_req_no)
        c->last_req_no = req->req_no;
    c->touched = ++p->client_clock;
    PBFT_ASSERT(c->used);
}

/* Persists the client's last executed req_no so a restarted replica still
 * refuses to order it again (the same synced write as the rest). */
void request_persist_executed(struct pbft *p, const struct pbft_request *req)
{
    struct pbft_msg *m = ready_msg(p, PBFT_MSG_REQUEST);
    uint64_t view = 0;
    uint32_t replica = 0;

    PBFT_ASSERT(m != NULL); /* sized: one per request of a full window */
    for (uint32_t i = 0; i < 8; i++)
        view = view << 8 | req->client[i];
    for (uint32_t i = 8; i < 12; i++)
        replica = replica << 8 | req->client[i];
    memcpy(m->u.request.client, req->client, PBFT_KEY_SIZE);
    m->u.request.req_no = request_last_executed(p, req->client);
    ready_persist_msg(p, m, CLIENT_REC_SEQ, view, replica);
}

static bool same_request(const struct pbft_request *a,
                         const struct pbft_request *b)
{
    return a->req_no == b->req_no &&
           memcmp(a->client, b->client, PBFT_KEY_SIZE) == 0;
}

static bool batch_has(const struct batch *b, const struct pbft_request *req)
{
    for (uint32_t i = 0; i < b->n_requests; i++)
        if (same_request(&b->reqs[i], req))
            return true;
    return false;
}

/* True when req is in a batch of the window (in flight or decided) at a
 * seq other than `except`. */
bool request_in_window(struct pbft *p, const struct pbft_request *req,
                       pbft_seq except)
{
    for (uint32_t i = 0; i < p->L; i++) {
        const struct slot *s = &p->slots[i];

        if (s->seq == 0 || s->seq <= p->exec_queued || s->seq == except)
            continue;
        if (s->pp_batch != NO_BATCH && batch_has(pool_get(p, s->pp_batch), req))
            return true;
        if (s->decided_batch != NO_BATCH &&
            batch_has(pool_get(p, s->decided_batch), req))
            return true;
    }
    return false;
}

static struct pending *pending_find(struct pbft *p,
                                    const struct pbft_request *req)
{
    for (uint32_t i = 0; i < p->n_pending; i++)
        if (p->pending[i].used && same_request(&p->pending[i].req, req))
            return &p->pending[i];
    return NULL;
}

static uint32_t pending_live(const struct pbft *p)
{
    uint32_t live = 0;

    for (uint32_t i = 0; i < p->n_pending; i++)
        live += p->pending[i].used ? 1u : 0u;
    return live;
}

/* Squeezes out holes, keeping arrival order (data buffers move by pointer). */
static void pending_compact(struct pbft *p)
{
    uint32_t k = 0;

    for (uint32_t i = 0; i < p->n_pending; i++) {
        if (!p->pending[i].used)
            continue;
        if (i != k) {
            struct pending tmp = p->pending[k];

            p->pending[k] = p->pending[i];
            p->pending[i] = tmp;
        }
        k++;
    }
    p->n_pending = k;
    PBFT_ASSERT(k <= p->cfg.pending_max);
}

static struct pending *pending_add(struct pbft *p,
                                   const struct pbft_request *req)
{
    struct pending *e;

    if (p->n_pending == p->cfg.pending_max)
        pending_compact(p);
    if (p->n_pending == p->cfg.pending_max)
        return NULL;
    e = &p->pending[p->n_pending++];
    e->used = true;
    e->proposed = false;
    e->arrived_ms = p->now;
    e->order = ++p->pending_order;
    e->req = *req;
    e->req.data = e->data;
    if (req->len > 0)
        memcpy(e->data, req->data, req->len);
    return e;
}

/* A freshly armed timer starts at its first stage (complaint). */
void request_arm_timer(struct pbft *p)
{
    if (p->stopped) {
        p->view_deadline = NO_TIMER; /* the epoch is over: nothing to watch */
        return;
    }
    if (p->in_vc)
        return;
    if (pending_live(p) == 0) {
        p->view_deadline = NO_TIMER;
        p->complained = false;
    } else if (p->view_deadline == NO_TIMER) {
        p->view_deadline = p->now + normal_view_timeout(p);
        p->complained = false;
    }
}

static bool forward(struct pbft *p, const struct pbft_request *req, uint32_t to)
{
    struct pbft_msg *m;

    /* Forwarding is best effort (the client retransmits): leave the room
     * our own protocol messages of this step need. */
    if (ready_room(p) <= 3 * p->L + p->L * p->cfg.batch_max + p->n + 16)
        return false;
    m = ready_msg(p, PBFT_MSG_REQUEST);
    if (m == NULL)
        return false;
    m->u.request = *req;
    ready_send(p, to, m);
    return true;
}

/* First expiry of the request timer: the primary may be back from a
 * restart, or the requests reached only us. Send every request still
 * waiting to all replicas, so the primary can order them and every backup
 * watches them with its own timer (see request_receive); then wait one
 * more timeout (the timer expires at most once per period, so each
 * request goes out once per period). The caller votes for a view change
 * at the next expiry. */
void request_complain(struct pbft *p)
{
    uint32_t sent = 0;

    PBFT_ASSERT(!p->in_vc);
    for (uint32_t i = 0; i < p->n_pending; i++) {
        const struct pending *e = &p->pending[i];

        if (!e->used ||
            e->req.req_no <= request_last_executed(p, e->req.client))
            continue;
        if (!forward(p, &e->req, PBFT_BROADCAST))
            break;
        sent++;
    }
    p->complained = true;
    p->view_deadline = p->now + normal_view_timeout(p);
    trace(p, "complain n=%u requests v=%llu", sent,
          (unsigned long long)p->view);
}

int request_receive(struct pbft *p, const struct pbft_request *req,
                    bool forwarded)
{
    struct pending *e;

    if (req->len > p->cfg.request_bytes_max ||
        (req->len > 0 && req->data == NULL))
        return pbft_drop(p, PBFT_EBADMSG, "request malformed");
    if (req->req_no <= request_last_executed(p, req->client)) {
        if (!forwarded)
            ready_reply(p, req);
        trace(p, "recv REQUEST %02x:%llu -> cached reply",
              trace_client_tag(req->client), (unsigned long long)req->req_no);
        return PBFT_OK;
    }
    /* A backup takes requests forwarded by a complaining replica (see
     * request_complain) like a client's: it watches them with its timer. */
    if (forwarded && p->in_vc)
        return pbft_drop(p, PBFT_ESTALE, "forwarded request, in view change");
    if (pending_find(p, req) != NULL)
        return pbft_drop(p, PBFT_ESTALE, "duplicate request");
    if (forwarded && pbft_is_primary(p) && request_in_window(p, req, 0))
        return pbft_drop(p, PBFT_ESTALE, "request in flight");
    if (!p->cfg.crypto.verify_request(p->cfg.crypto.ctx, req))
        return pbft_drop(p, PBFT_EBADSIG, "request signature");
    e = pending_add(p, req);
    if (e == NULL)
        return pbft_drop(p, PBFT_EFULL, "pending queue full");
    /* A client retransmitting a request already in flight is still waiting
     * for it: keep it queued, so its timer catches a stalled view (the
     * primary's own included), but never propose it twice. */
    e->proposed = request_in_window(p, req, 0);
    trace(p, "recv REQUEST %02x:%llu%s -> queued",
          trace_client_tag(req->client), (unsigned long long)req->req_no,
          forwarded ? " forwarded" : "");
    if (!pbft_is_primary(p) && !p->in_vc)
        forward(p, &e->req, pbft_primary(p, p->view));
    /* A backup hears a forwarded request only from a complaint, whose
     * sender already waited a full timeout (and votes at its next expiry):
     * an idle timer starts at the voting stage, so the backups change view
     * together or not at all. Forwarding it on above keeps a faulty sender
     * from withholding it from the primary. */
    if (forwarded && !pbft_is_primary(p) && !p->stopped &&
        p->view_deadline == NO_TIMER) {
        p->view_deadline = p->now + normal_view_timeout(p);
        p->complained = true;
    }
    request_arm_timer(p);
    request_cut_batches(p);
    return PBFT_OK;
}

/* Drops queued requests that a batch now orders (executed or decided). */
void request_forget_batch(struct pbft *p, const struct batch *b)
{
    for (uint32_t i = 0; i < p->n_pending; i++) {
        struct pending *e = &p->pending[i];

        if (!e->used)
            continue;
        for (uint32_t j = 0; j < b->n_requests; j++) {
            if (memcmp(e->req.client, b->reqs[j].client, PBFT_KEY_SIZE) == 0 &&
                e->req.req_no <= b->reqs[j].req_no) {
                e->used = false;
                break;
            }
        }
    }
}

/* State was transferred past requests we never saw execute: anything queued
 * may be among them and the client table cannot tell. Forget the queue;
 * clients retransmit what is still outstanding. */
void request_forget_all(struct pbft *p)
{
    for (uint32_t i = 0; i < p->n_pending; i++)
        p->pending[i].used = false;
    p->n_pending = 0;
    request_arm_timer(p);
}

/* Entered a new view: the new primary proposes what is still pending,
 * backups forward theirs to it. */
void request_new_view(struct pbft *p)
{
    bool primary = pbft_is_primary(p);

    for (uint32_t i = 0; i < p->n_pending; i++) {
        struct pending *e = &p->pending[i];

        if (!e->used)
            continue;
        if (e->req.req_no <= request_last_executed(p, e->req.client) ||
            request_in_window(p, &e->req, 0)) {
            e->used = false;
            continue;
        }
        e->proposed = false;
        if (!primary)
            forward(p, &e->req, pbft_primary(p, p->view));
    }
    request_cut_batches(p);
}

static bool can_propose(const struct pbft *p)
{
    return p->started && !p->in_vc && pbft_is_primary(p) &&
           log_in_window(p, p->last_assigned + 1) && p->last_assigned >= p->h &&
           p->last_assigned < p->stop_seq;
}

/* Batches proposed and not yet executed here, beyond which the primary lets
 * a partial batch fill instead of cutting it at the batching delay (full
 * batches still go, up to the water mark). Under load this grows batches, so
 * the per-batch votes and certificate are paid for by more requests, rather
 * than pipelining many tiny batches; idle, a lone request still leaves after
 * batch_delay_ms. EV_EXECUTED cuts again as the pipeline drains. */
#define REQUEST_PARTIAL_INFLIGHT_MAX 2

static bool may_cut_partial(const struct pbft *p)
{
    return p->last_assigned <= p->last_executed ||
           p->last_assigned - p->last_executed < REQUEST_PARTIAL_INFLIGHT_MAX;
}

uint64_t request_batch_deadline(const struct pbft *p)
{
    if (!can_propose(p) || !may_cut_partial(p))
        return NO_TIMER;
    for (uint32_t i = 0; i < p->n_pending; i++)
        if (p->pending[i].used && !p->pending[i].proposed)
            return p->pending[i].arrived_ms + p->cfg.batch_delay_ms;
    return NO_TIMER;
}

/* Collects the next batch from the queue (oldest first). Returns how many
 * requests it took; *full says whether a limit was reached. */
static uint32_t collect(struct pbft *p, struct pbft_request *out,
                        struct pending **taken, bool *full)
{
    uint32_t k = 0;
    uint64_t bytes = 0;

    *full = false;
    for (uint32_t i = 0; i < p->n_pending; i++) {
        struct pending *e = &p->pending[i];

        if (!e->used || e->proposed)
            continue;
        if (k == p->cfg.batch_max ||
            bytes + e->req.len > p->cfg.batch_bytes_max) {
            *full = true;
            break;
        }
        out[k] = e->req;
        taken[k++] = e;
        bytes += e->req.len;
    }
    if (k == p->cfg.batch_max)
        *full = true;
    return k;
}

void request_cut_batches(struct pbft *p)
{
    /* One batch per window position at most. */
    for (uint32_t round = 0; round < p->L && can_propose(p); round++) {
        bool full;
        uint32_t k = collect(p, p->cut_reqs, p->cut_taken, &full);
        uint64_t due = request_batch_deadline(p);

        if (k == 0 || (!full && (p->now < due || !may_cut_partial(p))))
            break;
        for (uint32_t i = 0; i < k; i++)
            p->cut_taken[i]->proposed = true;
        normal_propose(p, p->cut_reqs, k);
    }
}
