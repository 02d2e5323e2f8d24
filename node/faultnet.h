/*
 * faultnet.h - a fault-injecting decision layer for replica links, for
 * tests only (this kernel has no netem). The daemon reads a spec from the
 * environment variable TRIALCHAIN_FAULTS and asks faultnet_decide() what to
 * do with each outgoing frame: deliver it, drop it, send it twice, or hold
 * it until a later time (delay; reordering is a delay long enough for later
 * frames to overtake).
 *
 * Spec: comma-separated key=value pairs, every key optional:
 *   drop=P        probability a frame is lost                   (0..1)
 *   dup=P         probability a frame is delivered twice        (0..1)
 *   delay=A-B     every frame is held A..B ms (uniform); "delay=A" = A-A
 *   reorder=P     probability a frame is held an extra 1..(B+50) ms, so
 *                 frames sent after it arrive first             (0..1)
 *   peers=S       the replicas whose links are faulty: a frame is subject
 *                 to faults when its sender or its receiver is in S.
 *                 S is ids and ranges joined by '+': "0-1", "0+2", "1-3+5".
 *                 Default: every replica.
 *   seed=N        the PRNG seed (default 1). The same seed and the same
 *                 sequence of calls give the same verdicts.
 * Example: "drop=0.1,dup=0.05,delay=5-50,reorder=0.1,peers=0-1,seed=42".
 * An empty spec parses to a disabled layer (everything is delivered).
 *
 * Threads: a struct faultnet is not thread-safe; the caller serialises
 * calls (the daemon's event loop, or one lock around faultnet_decide).
 */
#ifndef FAULTNET_H
#define FAULTNET_H

#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAULTNET_ENV          "TRIALCHAIN_FAULTS"
#define FAULTNET_MAX_PEERS    64
#define FAULTNET_DELAY_MAX_MS 600000u /* one frame is held at most 10 min */

struct faultnet_stats {
    uint64_t frames; /* decisions made */
    uint64_t dropped;
    uint64_t duplicated;
    uint64_t delayed; /* held (delay or reorder) */
    uint64_t reordered;
};

struct faultnet {
    bool enabled; /* false: every frame is delivered at once */
    double drop, dup, reorder;
    uint32_t delay_min_ms, delay_max_ms;
    uint64_t peers; /* bit i: replica i's links are faulty */
    uint64_t seed;
    uint64_t rng; /* PRNG state, from seed */
    struct faultnet_stats stats;
};

enum faultnet_action {
    FAULTNET_DELIVER = 0, /* send now, once */
    FAULTNET_DROP,        /* do not send */
    FAULTNET_DUPLICATE,   /* send two copies (times below) */
    FAULTNET_DELAY,       /* send once, at at_ms[0] */
};

/* What to do with one frame: send n_copies copies (0..2), copy i at
 * at_ms[i] (== now: send at once; later: queue it until then). */
struct faultnet_verdict {
    enum faultnet_action action;
    uint32_t n_copies;
    uint64_t at_ms[2];
};

/* Parses a spec (NULL or "" = disabled). On error returns LG_ECONFIG,
 * writes a sentence naming the bad item into err and leaves *out disabled. */
int faultnet_parse(const char *spec, struct faultnet *out, char *err,
                   size_t err_len) LG_MUST_CHECK;

/* faultnet_parse(getenv(FAULTNET_ENV)). */
int faultnet_from_env(struct faultnet *out, char *err,
                      size_t err_len) LG_MUST_CHECK;

/* Decides the fate of one frame from replica `from` to replica `to`, sent
 * at now_ms. Always fills *v; never fails. Deterministic: each call draws
 * the same number of random numbers whatever the verdict. */
void faultnet_decide(struct faultnet *f, uint32_t from, uint32_t to,
                     uint64_t now_ms, struct faultnet_verdict *v);

/* True when frames between from and to may be faulted. */
bool faultnet_applies(const struct faultnet *f, uint32_t from, uint32_t to);

/* One line describing the parsed spec, for the startup log. */
void faultnet_describe(const struct faultnet *f, char *buf, size_t len);

#endif /* FAULTNET_H */
