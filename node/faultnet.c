/*
 * faultnet.c - seeded fault decisions for replica links (see faultnet.h).
 *
 * The PRNG is splitmix64 over our own state, never rand(): a test that
 * fails replays from the seed printed in its log.
 */
#include "faultnet.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAULTNET_SPEC_MAX    512
#define FAULTNET_REORDER_PAD 50 /* ms beyond the delay range */

static uint64_t fn_next(struct faultnet *f)
{
    uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double fn_unit(struct faultnet *f)
{
    return (double)(fn_next(f) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [lo, hi]. */
static uint64_t fn_range(struct faultnet *f, uint64_t lo, uint64_t hi)
{
    uint64_t r = fn_next(f);
    if (hi <= lo)
        return lo;
    return lo + r % (hi - lo + 1);
}

static void fn_disable(struct faultnet *f)
{
    memset(f, 0, sizeof(*f));
    f->peers = UINT64_MAX;
    f->seed = 1;
    f->rng = 1;
}

static int fn_prob(const char *val, double *out)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(val, &end);
    if (errno != 0 || end == val || *end != '\0' || isnan(d) || d < 0.0 ||
        d > 1.0)
        return -1;
    *out = d;
    return 0;
}

/* A decimal u64 at *p (advanced past it); -1 when there is none. */
static int fn_u64(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    char *end = NULL;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || v > max)
        return -1;
    *out = v;
    *p = end;
    return 0;
}

static int fn_delay(const char *val, struct faultnet *f)
{
    const char *p = val;
    uint64_t lo, hi;
    if (fn_u64(&p, FAULTNET_DELAY_MAX_MS, &lo) != 0)
        return -1;
    hi = lo;
    if (*p == '-') {
        p++;
        if (fn_u64(&p, FAULTNET_DELAY_MAX_MS, &hi) != 0)
            return -1;
    }
    if (*p != '\0' || hi < lo)
        return -1;
    f->delay_min_ms = (uint32_t)lo;
    f->delay_max_ms = (uint32_t)hi;
    return 0;
}

/* "0-1+3": ids and ranges joined by '+'. */
static int fn_peers(const char *val, uint64_t *mask)
{
    const char *p = val;
    uint64_t m = 0;
    for (int items = 0; items < FAULTNET_MAX_PEERS; items++) {
        uint64_t lo, hi;
        if (fn_u64(&p, FAULTNET_MAX_PEERS - 1, &lo) != 0)
            return -1;
        hi = lo;
        if (*p == '-') {
            p++;
            if (fn_u64(&p, FAULTNET_MAX_PEERS - 1, &hi) != 0 || hi < lo)
                return -1;
        }
        for (uint64_t i = lo; i <= hi; i++)
            m |= 1ULL << i;
        if (*p == '\0') {
            *mask = m;
            return 0;
        }
        if (*p != '+')
            return -1;
        p++;
    }
    return -1;
}

static int fn_item(char *item, struct faultnet *f, char *err, size_t err_len)
{
    char *eq = strchr(item, '=');
    if (eq == NULL) {
        snprintf(err, err_len, "fault spec item \"%s\" is not key=value", item);
        return -1;
    }
    *eq = '\0';
    const char *key = item, *val = eq + 1;
    int rv = -1;
    const char *want = "";
    if (strcmp(key, "drop") == 0) {
        rv = fn_prob(val, &f->drop);
        want = "a probability between 0 and 1";
    } else if (strcmp(key, "dup") == 0) {
        rv = fn_prob(val, &f->dup);
        want = "a probability between 0 and 1";
    } else if (strcmp(key, "reorder") == 0) {
        rv = fn_prob(val, &f->reorder);
        want = "a probability between 0 and 1";
    } else if (strcmp(key, "delay") == 0) {
        rv = fn_delay(val, f);
        want = "milliseconds MIN-MAX (at most 600000)";
    } else if (strcmp(key, "peers") == 0) {
        rv = fn_peers(val, &f->peers);
        want = "replica ids and ranges joined by '+', e.g. 0-1+3";
    } else if (strcmp(key, "seed") == 0) {
        const char *p = val;
        rv = fn_u64(&p, UINT64_MAX, &f->seed) == 0 && *p == '\0' ? 0 : -1;
        want = "a decimal integer";
    } else {
        snprintf(err, err_len,
                 "unknown fault spec key \"%s\" (known: drop, dup, delay, "
                 "reorder, peers, seed)",
                 key);
        return -1;
    }
    if (rv != 0)
        snprintf(err, err_len, "fault spec %s=\"%s\" is not %s", key, val,
                 want);
    return rv;
}

int faultnet_parse(const char *spec, struct faultnet *out, char *err,
                   size_t err_len)
{
    char buf[FAULTNET_SPEC_MAX];
    struct faultnet f;
    fn_disable(&f);
    fn_disable(out);
    if (err_len > 0)
        err[0] = '\0';
    if (spec == NULL || spec[0] == '\0')
        return LG_OK;
    if (strlen(spec) >= sizeof(buf)) {
        snprintf(err, err_len, "fault spec longer than %d bytes",
                 FAULTNET_SPEC_MAX - 1);
        return LG_ECONFIG;
    }
    memcpy(buf, spec, strlen(spec) + 1);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        if (fn_item(item, &f, err, err_len) != 0)
            return LG_ECONFIG;
    }
    f.enabled = true;
    f.rng = f.seed;
    *out = f;
    return LG_OK;
}

int faultnet_from_env(struct faultnet *out, char *err, size_t err_len)
{
    return faultnet_parse(getenv(FAULTNET_ENV), out, err, err_len);
}

bool faultnet_applies(const struct faultnet *f, uint32_t from, uint32_t to)
{
    if (!f->enabled)
        return false;
    bool a = from < FAULTNET_MAX_PEERS && (f->peers >> from) & 1u;
    bool b = to < FAULTNET_MAX_PEERS && (f->peers >> to) & 1u;
    return a || b;
}

void faultnet_decide(struct faultnet *f, uint32_t from, uint32_t to,
                     uint64_t now_ms, struct faultnet_verdict *v)
{
    v->action = FAULTNET_DELIVER;
    v->n_copies = 1;
    v->at_ms[0] = now_ms;
    v->at_ms[1] = now_ms;
    if (!faultnet_applies(f, from, to))
        return;
    f->stats.frames++;
    /* Every draw happens whatever the outcome, so one frame's verdict
     * never shifts the random stream of the frames after it. */
    double r_drop = fn_unit(f), r_dup = fn_unit(f), r_reorder = fn_unit(f);
    uint64_t d0 = fn_range(f, f->delay_min_ms, f->delay_max_ms);
    uint64_t d1 = fn_range(f, f->delay_min_ms, f->delay_max_ms);
    uint64_t extra =
        fn_range(f, 1, (uint64_t)f->delay_max_ms + FAULTNET_REORDER_PAD);
    if (r_drop < f->drop) {
        v->action = FAULTNET_DROP;
        v->n_copies = 0;
        f->stats.dropped++;
        return;
    }
    if (r_reorder < f->reorder) {
        d0 += extra;
        f->stats.reordered++;
    }
    v->at_ms[0] = now_ms + d0;
    v->at_ms[1] = now_ms + d1;
    if (r_dup < f->dup) {
        v->action = FAULTNET_DUPLICATE;
        v->n_copies = 2;
        f->stats.duplicated++;
    } else if (d0 > 0) {
        v->action = FAULTNET_DELAY;
        v->at_ms[1] = v->at_ms[0];
    }
    if (d0 > 0)
        f->stats.delayed++;
}

void faultnet_describe(const struct faultnet *f, char *buf, size_t len)
{
    if (!f->enabled) {
        snprintf(buf, len, "faults=off");
        return;
    }
    snprintf(buf, len,
             "faults=on drop=%.3f dup=%.3f delay=%" PRIu32 "-%" PRIu32
             " reorder=%.3f peers=0x%" PRIx64 " seed=%" PRIu64,
             f->drop, f->dup, f->delay_min_ms, f->delay_max_ms, f->reorder,
             f->peers, f->seed);
}
