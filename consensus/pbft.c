/*
 * pbft.c - the replica object: config, allocation, the step function and
 * its dispatch, deadlines, the cheap pre-check, status.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define PBFT__TEXT(name, text) text,
static const char *const err_text[] = {PBFT_ERRORS(PBFT__TEXT)};
#undef PBFT__TEXT

_Static_assert(PBFT_MAX_REPLICAS <= 64, "replica sets are 64-bit masks");

const char *pbft_strerror(int rv)
{
    if (rv < 0 || rv >= PBFT_ERR_COUNT)
        return "unknown error";
    return err_text[rv];
}

void pbft_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "pbft: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

void pbft_config_defaults(struct pbft_config *cfg)
{
    cfg->batch_max = 64;
    cfg->batch_bytes_max = 256 * 1024;
    cfg->request_bytes_max = 16 * 1024;
    cfg->batch_delay_ms = 5;
    cfg->trace_off = false;
    cfg->checkpoint_interval = 1;
    cfg->watermark_window = 16;
    cfg->pending_max = 1024;
    cfg->clients_max = 4096;
    cfg->view_timeout_ms = 1000;
    cfg->view_timeout_max_ms = 30000;
    cfg->clock_skew_max_ms = 2000;
    cfg->fetch_timeout_ms = 1000;
}

uint32_t pbft_primary(const struct pbft *p, pbft_view v)
{
    return (uint32_t)(v % p->n);
}

bool pbft_is_primary(const struct pbft *p)
{
    return pbft_primary(p, p->view) == p->cfg.self;
}

int pbft_drop(struct pbft *p, int rv, const char *why)
{
    PBFT_ASSERT(rv != PBFT_OK);
    p->dropped++;
    trace(p, "drop %s (%s)", why, pbft_strerror(rv));
    return rv;
}

static const char *config_error(const struct pbft_config *c)
{
    const struct pbft_crypto *k = &c->crypto;

    if (!k->hash || !k->sign || !k->verify || !k->verify_request)
        return "crypto functions missing";
    if (c->n < 4 || c->n > PBFT_MAX_REPLICAS)
        return "n must be in 4..PBFT_MAX_REPLICAS";
    if (c->self >= c->n)
        return "self must be < n";
    if (c->batch_max < 1 || c->batch_max > BATCH_MAX)
        return "batch_max must be in 1..PBFT_BATCH_MAX";
    if (c->request_bytes_max < 1 || c->batch_bytes_max < c->request_bytes_max)
        return "need 1 <= request_bytes_max <= batch_bytes_max";
    if (c->checkpoint_interval < 1)
        return "checkpoint_interval must be >= 1";
    if (c->watermark_window < 2 * c->checkpoint_interval ||
        c->watermark_window % c->checkpoint_interval != 0 ||
        c->watermark_window > WINDOW_MAX)
        return "watermark_window must be m*K, m >= 2, <= PBFT_WINDOW_MAX";
    if (c->pending_max < 1 || c->pending_max > (1u << 20) || c->clients_max < 1)
        return "pending_max and clients_max must be >= 1";
    if (c->view_timeout_ms < 1 || c->view_timeout_max_ms < c->view_timeout_ms)
        return "need 1 <= view_timeout_ms <= view_timeout_max_ms";
    if (c->fetch_timeout_ms < 2)
        return "fetch_timeout_ms must be >= 2";
    if (c->base_seq % c->checkpoint_interval != 0 ||
        c->base_seq > UINT64_MAX / 2)
        return "base_seq must be a multiple of checkpoint_interval";
    return NULL;
}

static int pool_init(struct pbft *p)
{
    size_t bmax = p->cfg.batch_max, bytes = p->cfg.batch_bytes_max;

    p->n_pool = 8 * p->L + 8;
    p->pool = calloc(p->n_pool, sizeof(*p->pool));
    p->pool_reqs = calloc((size_t)p->n_pool * bmax, sizeof(*p->pool_reqs));
    p->pool_data = malloc((size_t)p->n_pool * bytes);
    if (!p->pool || !p->pool_reqs || !p->pool_data)
        return PBFT_ENOMEM;
    for (uint32_t i = 0; i < p->n_pool; i++) {
        p->pool[i].reqs = p->pool_reqs + (size_t)i * bmax;
        p->pool[i].data = p->pool_data + (size_t)i * bytes;
    }
    return PBFT_OK;
}

static int alloc_all(struct pbft *p)
{
    int rv = pool_init(p);

    if (rv == PBFT_OK)
        rv = log_init(p);
    if (rv == PBFT_OK)
        rv = request_init(p);
    if (rv == PBFT_OK)
        rv = vc_init(p);
    if (rv == PBFT_OK)
        rv = ready_init(p);
    p->ckpt = calloc((size_t)p->n * p->R, sizeof(*p->ckpt));
    p->stable.votes = calloc(p->n, sizeof(struct pbft_vote));
    p->scratch_cert.votes = calloc(p->n, sizeof(struct pbft_vote));
    p->fetch_answered = calloc(p->n, sizeof(*p->fetch_answered));
    p->answered_at = calloc(p->n, sizeof(*p->answered_at));
    p->o_hdrs = calloc(p->L, sizeof(*p->o_hdrs));
    p->o_batches = calloc(p->L, sizeof(*p->o_batches));
    p->enc_cap = digest_enc_cap(&p->cfg);
    p->enc = malloc(p->enc_cap);
    if (!p->ckpt || !p->stable.votes || !p->scratch_cert.votes ||
        !p->fetch_answered || !p->answered_at || !p->o_hdrs || !p->o_batches ||
        !p->enc)
        return PBFT_ENOMEM;
    return rv;
}

struct pbft *pbft_new(const struct pbft_config *cfg, const char **errmsg)
{
    const char *why = cfg == NULL ? "no config" : config_error(cfg);
    struct pbft *p;

    if (why != NULL) {
        if (errmsg != NULL)
            *errmsg = why;
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        if (errmsg != NULL)
            *errmsg = "out of memory";
        return NULL;
    }
    p->cfg = *cfg;
    p->n = cfg->n;
    p->f = pbft_faults(cfg->n);
    p->q = pbft_quorum(cfg->n);
    p->K = cfg->checkpoint_interval;
    p->L = cfg->watermark_window;
    p->R = 2 * (p->L / p->K) + 2;
    p->view_deadline = NO_TIMER;
    /* The epoch's first checkpoint stands where seq 0 does for the first
     * epoch: stable, certified, executed. */
    p->view = cfg->initial_view;
    p->h = p->last_assigned = p->last_certified = cfg->base_seq;
    p->exec_queued = p->last_executed = cfg->base_seq;
    p->stop_seq = UINT64_MAX;
    if (alloc_all(p) != PBFT_OK) {
        pbft_free(p);
        if (errmsg != NULL)
            *errmsg = "out of memory";
        return NULL;
    }
    p->stable.cert.votes = p->stable.votes;
    p->stable.cert.seq = cfg->base_seq;
    memcpy(p->stable.cert.digest, cfg->genesis_digest, PBFT_DIGEST_SIZE);
    PBFT_ASSERT(p->q <= p->n);
    PBFT_ASSERT(p->h == p->stable.cert.seq);
    return p;
}

void pbft_free(struct pbft *p)
{
    if (p == NULL)
        return;
    ready_free(p);
    vc_free(p);
    free(p->pool);
    free(p->pool_reqs);
    free(p->pool_data);
    free(p->slots);
    free(p->slot_votes);
    free(p->clients);
    free(p->pending);
    free(p->cut_reqs);
    free(p->cut_taken);
    free(p->pending_data);
    free(p->ckpt);
    free(p->stable.votes);
    free(p->scratch_cert.votes);
    free(p->fetch_answered);
    free(p->answered_at);
    free(p->o_hdrs);
    free(p->o_batches);
    free(p->enc);
    free(p);
}

int pbft_restore(struct pbft *p, const struct pbft_record *rec)
{
    int rv;

    if (p == NULL || rec == NULL || p->started)
        return PBFT_EINVAL;
    rv = restore_record(p, rec);
    ready_release(p); /* apply deferred batch releases */
    return rv;
}

int pbft_start(struct pbft *p, pbft_seq last_seq,
               const uint8_t last_digest[PBFT_DIGEST_SIZE], uint64_t now_ms,
               struct pbft_ready *out)
{
    if (p == NULL || out == NULL || last_digest == NULL || p->started)
        return PBFT_EINVAL;
    if (last_seq < p->cfg.base_seq || last_seq > p->stop_seq)
        return PBFT_EINVAL;
    ready_begin(p);
    p->now = now_ms;
    restore_finish(p);
    p->last_executed = p->exec_queued = last_seq;
    memcpy(p->last_exec_digest, last_digest, PBFT_DIGEST_SIZE);
    p->last_certified = p->h < last_seq ? p->h : last_seq - last_seq % p->K;
    if (p->last_assigned < p->h)
        p->last_assigned = p->h;
    p->started = true;
    trace(p, "start v=%llu h=%llu executed=%llu%s", (unsigned long long)p->view,
          (unsigned long long)p->h, (unsigned long long)last_seq,
          p->in_vc ? " in view change" : "");
    checkpoint_after_start(p);
    vc_after_start(p);
    if (p->stopped)
        checkpoint_stop_start(p);
    ready_finish(p, out);
    PBFT_ASSERT(p->started);
    return PBFT_OK;
}

static int on_receive(struct pbft *p, uint32_t from, const struct pbft_msg *m)
{
    if (from >= p->n || from == p->cfg.self || m == NULL)
        return pbft_drop(p, PBFT_EBADMSG, "sender");
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        return request_receive(p, &m->u.request, true);
    case PBFT_MSG_PREPREPARE:
        return normal_preprepare(p, from, &m->u.pp);
    case PBFT_MSG_PREPARE:
        return normal_prepare(p, from, &m->u.vote);
    case PBFT_MSG_COMMIT:
        return normal_commit(p, from, &m->u.vote);
    case PBFT_MSG_CHECKPOINT:
        return checkpoint_receive(p, from, &m->u.vote);
    case PBFT_MSG_VIEW_CHANGE:
        return vc_receive(p, from, &m->u.vc);
    case PBFT_MSG_NEW_VIEW:
        return vc_new_view_receive(p, from, &m->u.nv);
    case PBFT_MSG_FETCH:
        return checkpoint_fetch_receive(p, from, &m->u.fetch);
    }
    return pbft_drop(p, PBFT_EBADMSG, "message type");
}

static int dispatch(struct pbft *p, const struct pbft_event *ev)
{
    switch (ev->type) {
    case PBFT_EV_RECEIVE:
        return on_receive(p, ev->u.receive.from, ev->u.receive.msg);
    case PBFT_EV_REQUEST:
        if (ev->u.request == NULL)
            return PBFT_EINVAL;
        return request_receive(p, ev->u.request, false);
    case PBFT_EV_TIMEOUT:
        vc_timeout(p);
        checkpoint_timeout(p);
        normal_retransmit(p);
        request_cut_batches(p);
        return PBFT_OK;
    case PBFT_EV_EXECUTED: {
        int rv =
            checkpoint_executed(p, ev->u.executed.seq, ev->u.executed.digest);
        /* A batch left the pipeline: a partial one may be cut now. */
        if (rv == PBFT_OK)
            request_cut_batches(p);
        return rv;
    }
    case PBFT_EV_STATE_TRANSFERRED:
        return checkpoint_transferred(p, ev->u.transferred.seq,
                                      ev->u.transferred.digest);
    }
    return PBFT_EINVAL;
}

int pbft_step(struct pbft *p, const struct pbft_event *ev,
              struct pbft_ready *out)
{
    int rv;

    if (p == NULL || ev == NULL || out == NULL)
        return PBFT_EINVAL;
    if (!p->started) {
        memset(out, 0, sizeof(*out));
        return PBFT_EINVAL;
    }
    ready_begin(p);
    if (ev->now_ms > p->now)
        p->now = ev->now_ms; /* time never runs backwards in here */
    rv = dispatch(p, ev);
    ready_finish(p, out);
    PBFT_ASSERT(p->h <= p->last_assigned || !pbft_is_primary(p) || p->in_vc);
    return rv;
}

int pbft_set_stop(struct pbft *p, pbft_seq seq)
{
    if (p == NULL || seq < p->cfg.base_seq || seq % p->K != 0)
        return PBFT_EINVAL;
    if (seq > p->stop_seq || (p->started && seq < p->last_executed))
        return PBFT_EINVAL;
    p->stopped = true;
    p->stop_seq = seq;
    /* Batches handed out beyond seq are void: the driver drops them. */
    if (p->started && p->exec_queued > seq)
        p->exec_queued = seq;
    p->view_deadline = NO_TIMER;
    p->complained = false;
    p->stop_resend_at = p->now;
    PBFT_ASSERT(p->last_executed <= p->exec_queued);
    return PBFT_OK;
}

void pbft_advance(struct pbft *p)
{
    if (p != NULL && p->rb.outstanding)
        ready_release(p);
}

uint64_t pbft_deadline_ms(const struct pbft *p)
{
    uint64_t t = p->stopped ? NO_TIMER : p->view_deadline;
    uint64_t b = request_batch_deadline(p);
    uint64_t c = checkpoint_deadline(p);
    uint64_t r = normal_retransmit_deadline(p);
    uint64_t s = checkpoint_stop_deadline(p);

    if (!p->started)
        return NO_TIMER;
    if (s < t)
        t = s;
    if (b < t)
        t = b;
    if (r < t)
        t = r;
    return c < t ? c : t;
}

bool pbft_wants(const struct pbft *p, uint32_t from, enum pbft_msg_type type,
                pbft_view view, pbft_seq seq)
{
    if (p == NULL || !p->started || from >= p->n || from == p->cfg.self)
        return false;
    switch (type) {
    case PBFT_MSG_REQUEST:
    case PBFT_MSG_FETCH:
        return true;
    case PBFT_MSG_PREPREPARE:
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
        /* or news of a view above ours (see vc_view_hint) */
        return (view == p->view && !p->in_vc && log_in_window(p, seq)) ||
               (view > p->view && view > p->seen_view[from]);
    case PBFT_MSG_CHECKPOINT:
        return seq > p->cfg.base_seq && seq % p->K == 0 &&
               (seq > p->last_certified || seq > p->h);
    case PBFT_MSG_VIEW_CHANGE:
        return view >= p->view;
    case PBFT_MSG_NEW_VIEW:
        return view > p->view || (view == p->view && p->in_vc);
    }
    return false;
}

void pbft_get_status(const struct pbft *p, struct pbft_status *st)
{
    uint32_t pending = 0;

    memset(st, 0, sizeof(*st));
    for (uint32_t i = 0; i < p->n_pending; i++)
        pending += p->pending[i].used ? 1u : 0u;
    st->view = p->view;
    st->primary = pbft_primary(p, p->view);
    st->in_view_change = p->in_vc;
    st->last_executed = p->last_executed;
    st->last_committed = p->last_committed;
    st->stable_seq = p->h;
    st->high_watermark = p->h + p->L;
    st->pending_requests = pending;
    st->view_changes = p->view_changes;
    st->dropped = p->dropped;
    st->bad_signatures = p->bad_signatures;
    st->signatures_verified = p->verify_calls;
    st->fetching_state = p->fetching;
}
