/* sim_msg.c - the simulator's PRNG and deep copies of core messages.
 *
 * Everything a ready hands out is borrowed until pbft_advance(), so every
 * message the simulator queues, stores or replays is a deep copy made here.
 * Allocation failure aborts the simulator: it is a test harness. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG --------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(struct sim_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    return sim_rng_next(r) % n; /* the bias is irrelevant for a fuzzer */
}

uint64_t sim_rng_range(struct sim_rng *r, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + sim_rng_below(r, hi - lo + 1);
}

bool sim_rng_chance(struct sim_rng *r, uint32_t per_mille)
{
    return sim_rng_below(r, 1000) < per_mille;
}

/* ---- copies ------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static void *memdup_array(const void *src, size_t n, size_t size)
{
    void *p;

    /* An empty array keeps a non-NULL pointer if it had one: the copy is
     * what the sender sent. */
    if (src == NULL)
        return NULL;
    p = xmalloc(n * size);
    if (n == 0)
        return p;
    memcpy(p, src, n * size);
    return p;
}

void sim_request_copy(struct pbft_request *dst, const struct pbft_request *src)
{
    *dst = *src;
    dst->data = memdup_array(src->data, src->len, 1);
}

static void request_free(struct pbft_request *r)
{
    free((void *)r->data);
    r->data = NULL;
}

void sim_pp_copy(struct pbft_preprepare *dst, const struct pbft_preprepare *src)
{
    dst->hdr = src->hdr;
    dst->n_requests = src->n_requests;
    dst->requests = NULL;
    if (src->requests == NULL)
        return; /* counts are kept as sent, even malformed ones */
    dst->requests = xmalloc(src->n_requests * sizeof(*dst->requests));
    for (uint32_t i = 0; i < src->n_requests; i++)
        sim_request_copy(&dst->requests[i], &src->requests[i]);
}

void sim_pp_free(struct pbft_preprepare *pp)
{
    for (uint32_t i = 0; i < pp->n_requests && pp->requests; i++)
        request_free(&pp->requests[i]);
    free(pp->requests);
    pp->requests = NULL;
    pp->n_requests = 0;
}

static void ckpt_copy(struct pbft_checkpoint_cert *dst,
                      const struct pbft_checkpoint_cert *src)
{
    *dst = *src;
    dst->votes = memdup_array(src->votes, src->n_votes, sizeof(*src->votes));
}

static void prepared_copy(struct pbft_prepared_cert *dst,
                          const struct pbft_prepared_cert *src)
{
    sim_pp_copy(&dst->pp, &src->pp);
    dst->n_prepares = src->n_prepares;
    dst->prepares =
        memdup_array(src->prepares, src->n_prepares, sizeof(*src->prepares));
}

static void vc_copy(struct pbft_view_change *dst,
                    const struct pbft_view_change *src)
{
    *dst = *src;
    ckpt_copy(&dst->stable, &src->stable);
    dst->prepared = NULL;
    if (src->prepared == NULL)
        return;
    dst->prepared = xmalloc(src->n_prepared * sizeof(*dst->prepared));
    for (uint32_t i = 0; i < src->n_prepared; i++)
        prepared_copy(&dst->prepared[i], &src->prepared[i]);
}

static void vc_free(struct pbft_view_change *vc)
{
    free(vc->stable.votes);
    for (uint32_t i = 0; i < vc->n_prepared && vc->prepared; i++) {
        sim_pp_free(&vc->prepared[i].pp);
        free(vc->prepared[i].prepares);
    }
    free(vc->prepared);
}

static void nv_copy(struct pbft_new_view *dst, const struct pbft_new_view *src)
{
    *dst = *src;
    dst->view_changes = NULL;
    dst->preprepares = NULL;
    if (src->view_changes != NULL) {
        dst->view_changes =
            xmalloc(src->n_view_changes * sizeof(*dst->view_changes));
        for (uint32_t i = 0; i < src->n_view_changes; i++)
            vc_copy(&dst->view_changes[i], &src->view_changes[i]);
    }
    if (src->preprepares != NULL) {
        dst->preprepares =
            xmalloc(src->n_preprepares * sizeof(*dst->preprepares));
        for (uint32_t i = 0; i < src->n_preprepares; i++)
            sim_pp_copy(&dst->preprepares[i], &src->preprepares[i]);
    }
}

void sim_nv_free_arrays(struct pbft_new_view *nv)
{
    for (uint32_t i = 0; i < nv->n_view_changes && nv->view_changes; i++)
        vc_free(&nv->view_changes[i]);
    free(nv->view_changes);
    for (uint32_t i = 0; i < nv->n_preprepares && nv->preprepares; i++)
        sim_pp_free(&nv->preprepares[i]);
    free(nv->preprepares);
    nv->view_changes = NULL;
    nv->preprepares = NULL;
}

struct pbft_msg *sim_msg_clone(const struct pbft_msg *m)
{
    struct pbft_msg *c = xmalloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    c->type = m->type;
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        sim_request_copy(&c->u.request, &m->u.request);
        break;
    case PBFT_MSG_PREPREPARE:
        sim_pp_copy(&c->u.pp, &m->u.pp);
        break;
    case PBFT_MSG_PREPARE:
    case PBFT_MSG_COMMIT:
    case PBFT_MSG_CHECKPOINT:
        c->u.vote = m->u.vote;
        break;
    case PBFT_MSG_VIEW_CHANGE:
        vc_copy(&c->u.vc, &m->u.vc);
        break;
    case PBFT_MSG_NEW_VIEW:
        nv_copy(&c->u.nv, &m->u.nv);
        break;
    case PBFT_MSG_FETCH:
        c->u.fetch = m->u.fetch;
        break;
    default:
        c->u = m->u; /* unknown type: shallow, holds no pointers we free */
        c->type = m->type;
        break;
    }
    return c;
}

void sim_msg_free(struct pbft_msg *m)
{
    if (m == NULL)
        return;
    switch (m->type) {
    case PBFT_MSG_REQUEST:
        request_free(&m->u.request);
        break;
    case PBFT_MSG_PREPREPARE:
        sim_pp_free(&m->u.pp);
        break;
    case PBFT_MSG_VIEW_CHANGE:
        vc_free(&m->u.vc);
        break;
    case PBFT_MSG_NEW_VIEW:
        sim_nv_free_arrays(&m->u.nv);
        break;
    default:
        break;
    }
    free(m);
}

struct pbft_meta *sim_meta_clone(const struct pbft_meta *m)
{
    struct pbft_meta *c = xmalloc(sizeof(*c));

    *c = *m;
    ckpt_copy(&c->stable, &m->stable);
    return c;
}

void sim_meta_free(struct pbft_meta *m)
{
    if (m == NULL)
        return;
    free(m->stable.votes);
    free(m);
}

const char *sim_msg_type_name(enum pbft_msg_type t)
{
    switch (t) {
    case PBFT_MSG_REQUEST:
        return "REQUEST";
    case PBFT_MSG_PREPREPARE:
        return "PRE-PREPARE";
    case PBFT_MSG_PREPARE:
        return "PREPARE";
    case PBFT_MSG_COMMIT:
        return "COMMIT";
    case PBFT_MSG_CHECKPOINT:
        return "CHECKPOINT";
    case PBFT_MSG_VIEW_CHANGE:
        return "VIEW-CHANGE";
    case PBFT_MSG_NEW_VIEW:
        return "NEW-VIEW";
    case PBFT_MSG_FETCH:
        return "FETCH";
    }
    return "?";
}
