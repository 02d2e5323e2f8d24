/* sim_main.c - command line of the cluster simulator.
 *
 *   sim [--seed S] [--seeds N] [--nodes 4|7] [--family NAME] [--jobs J]
 *   sim --family reconfig --seeds N   only replica set changes
 *   sim --test [--seeds N]     regressions, then a campaign (plus N/10
 *                              reconfig seeds); TEST-RESULT lines
 *   sim --cost                 per-request cost for batch sizes 1, 10, 100
 *   sim --seed S --trace       one seed, every trace line printed
 *
 * Seed s runs with 4 replicas when s is even and 7 when odd unless --nodes
 * is given; its fault family is (s / 2) mod the number of families. A
 * campaign is split over J worker processes (fork), each writing to its own
 * temporary file, so the printed results do not interleave. */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 16
#define MAX_REGS 1024

struct opts {
    uint64_t seed;
    bool have_seed;
    uint64_t seeds;
    uint32_t nodes; /* 0: by seed parity */
    int family;     /* -1: all */
    uint32_t jobs;
    bool test, cost, trace;
    bool until_fail; /* a worker stops at its first violation (mutants) */
    const char *regressions;
};

struct group {
    uint64_t pass, fail;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t nodes_for(const struct opts *o, uint64_t seed)
{
    if (o->nodes != 0)
        return o->nodes;
    return seed % 2 == 0 ? 4 : 7;
}

/* The family of a seed: by seed in the cycle, or reconfig when asked. */
static int family_for(const struct opts *o, uint64_t seed)
{
    if (o->family == FAM_RECONFIG)
        return FAM_RECONFIG;
    return (int)((seed / 2) % FAM_CYCLE);
}

static void params(uint64_t seed, uint32_t n, int fam, struct sim_params *p)
{
    sim_params_for_seed(seed, n, p);
    p->family = fam;
}

static void usage(void)
{
    fprintf(stderr, "usage: sim [--seed S] [--seeds N] [--nodes 4|7] [--family "
                    "NAME] [--jobs J]\n"
                    "       sim --test [--seeds N] [--regressions FILE]\n"
                    "       sim --cost\n"
                    "       sim --seed S [--nodes N] --trace\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->family = -1;
    o->jobs = 2;
    o->seed = 1;
    o->regressions = "tests/sim/regressions.txt";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x;

        if (strcmp(a, "--test") == 0) {
            o->test = true;
        } else if (strcmp(a, "--cost") == 0) {
            o->cost = true;
        } else if (strcmp(a, "--trace") == 0) {
            o->trace = true;
        } else if (strcmp(a, "--until-fail") == 0) {
            o->until_fail = true;
        } else if (v == NULL) {
            usage();
            return -1;
        } else if (strcmp(a, "--seed") == 0 && parse_u64(v, &x)) {
            o->seed = x;
            o->have_seed = true;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && parse_u64(v, &x)) {
            o->seeds = x;
            i++;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &x) &&
                   (x == 4 || x == 7)) {
            o->nodes = (uint32_t)x;
            i++;
        } else if (strcmp(a, "--jobs") == 0 && parse_u64(v, &x) && x >= 1 &&
                   x <= MAX_JOBS) {
            o->jobs = (uint32_t)x;
            i++;
        } else if (strcmp(a, "--regressions") == 0) {
            o->regressions = v;
            i++;
        } else if (strcmp(a, "--family") == 0) {
            for (int f = 0; f < FAM_COUNT; f++)
                if (strcmp(v, sim_family_name(f)) == 0)
                    o->family = f;
            if (o->family < 0) {
                fprintf(stderr, "sim: unknown family %s\n", v);
                return -1;
            }
            i++;
        } else {
            usage();
            return -1;
        }
    }
    return 0;
}

/* ---- one seed ----------------------------------------------------------- */

static bool run_one(uint64_t seed, uint32_t n, int fam, bool trace)
{
    struct sim_params p;
    struct sim_result r;

    params(seed, n, fam, &p);
    p.trace_all = trace;
    sim_run(&p, &r, true);
    printf("seed %" PRIu64 " n=%u family=%s: %s (%" PRIu64 " events, %" PRIu64
           " ms simulated, %" PRIu64 " view changes)\n",
           seed, n, sim_family_name(p.family), r.ok ? "ok" : "VIOLATION",
           r.events, r.sim_ms, r.view_changes);
    return r.ok;
}

/* ---- campaigns ---------------------------------------------------------- */

struct job_list {
    uint64_t *seeds;
    uint32_t *nodes;
    int *fams;
    size_t len;
};

static void worker(const struct job_list *jl, size_t first, uint32_t jobs,
                   bool until_fail)
{
    for (size_t i = first; i < jl->len; i += jobs) {
        struct sim_params p;
        struct sim_result r;

        params(jl->seeds[i], jl->nodes[i], jl->fams[i], &p);
        sim_run(&p, &r, true);
        printf("RESULT %zu %d %" PRIu64 "\n", i, r.ok ? 1 : 0, r.events);
        fflush(stdout);
        if (!r.ok && until_fail)
            break;
    }
}

/* Forks a worker for indices first, first + jobs, ... writing to out. */
static pid_t spawn(const struct job_list *jl, size_t first, uint32_t jobs,
                   bool until_fail, FILE *out)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        perror("sim: fork");
        return -1;
    }
    if (pid == 0) {
        if (dup2(fileno(out), STDOUT_FILENO) < 0 ||
            dup2(fileno(out), STDERR_FILENO) < 0)
            _exit(2);
        worker(jl, first, jobs, until_fail);
        fflush(stdout);
        exit(0);
    }
    return pid;
}

/* Runs every job; ok[i] receives the verdict: 1 pass, 0 fail, -1 not run
 * (after --until-fail). A seed that kills its worker (a sanitizer report,
 * an abort in the core) fails and the worker is restarted after it.
 * Returns 0 or -1. */
static int run_jobs(const struct job_list *jl, uint32_t jobs, bool until_fail,
                    signed char *ok)
{
    FILE *out[MAX_JOBS];
    pid_t pid[MAX_JOBS];
    char line[1024];

    if (jobs > jl->len)
        jobs = jl->len ? (uint32_t)jl->len : 1;
    for (size_t i = 0; i < jl->len; i++)
        ok[i] = -1;
    for (uint32_t k = 0; k < jobs; k++) {
        out[k] = tmpfile();
        if (out[k] == NULL) {
            perror("sim: tmpfile");
            return -1;
        }
        pid[k] = spawn(jl, k, jobs, until_fail, out[k]);
        if (pid[k] < 0)
            return -1;
    }
    for (uint32_t k = 0; k < jobs; k++) {
        size_t next = k; /* first index of this share without a result */

        for (;;) {
            int st = 0;
            bool clean = waitpid(pid[k], &st, 0) >= 0 && WIFEXITED(st) &&
                         WEXITSTATUS(st) == 0;

            rewind(out[k]);
            while (fgets(line, sizeof(line), out[k]) != NULL) {
                size_t idx;
                int good;

                if (sscanf(line, "RESULT %zu %d", &idx, &good) == 2) {
                    if (idx < jl->len) {
                        ok[idx] = good == 1 ? 1 : 0;
                        next = idx + jobs;
                    }
                    continue;
                }
                fputs(line, stdout);
            }
            fclose(out[k]);
            if (clean || next >= jl->len)
                break;
            ok[next] = 0;
            printf("SEED=%" PRIu64 " NODES=%u: the simulator process died "
                   "(wait status %d: a sanitizer report or an abort, output "
                   "above)\n  replay: make sim SEED=%" PRIu64 " NODES=%u\n",
                   jl->seeds[next], jl->nodes[next], st, jl->seeds[next],
                   jl->nodes[next]);
            if (until_fail)
                break;
            next += jobs;
            if (next >= jl->len)
                break;
            out[k] = tmpfile();
            if (out[k] == NULL)
                return -1;
            pid[k] = spawn(jl, next, jobs, until_fail, out[k]);
            if (pid[k] < 0)
                return -1;
        }
    }
    return 0;
}

static void jobs_add(struct job_list *jl, size_t cap, uint64_t seed, uint32_t n,
                     int fam)
{
    if (jl->len >= cap)
        return;
    jl->seeds[jl->len] = seed;
    jl->nodes[jl->len] = n;
    jl->fams[jl->len] = fam;
    jl->len++;
}

static size_t read_regressions(const char *path, struct job_list *jl,
                               size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t before = jl->len;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long seed;
        unsigned n;

        if (line[0] == '#')
            continue;
        if (sscanf(line, "%llu %u", &seed, &n) == 2 && (n == 4 || n == 7))
            jobs_add(jl, cap, seed, n, (int)((seed / 2) % FAM_CYCLE));
    }
    fclose(f);
    return jl->len - before;
}

static int campaign(const struct opts *o)
{
    uint64_t count = o->seeds ? o->seeds : (o->test ? 2000 : 1000);
    /* --test adds a tenth as many reconfig seeds (a family of its own). */
    uint64_t extra = o->test && o->family < 0 ? count / 10 : 0;
    size_t cap = (size_t)(count + extra) + MAX_REGS;
    struct job_list jl;
    signed char *ok;
    size_t n_regs = 0, failures = 0;
    struct group groups[2][FAM_COUNT];
    struct group regs = {0, 0};
    double t0 = now_s();

    memset(groups, 0, sizeof(groups));
    jl.seeds = calloc(cap, sizeof(*jl.seeds));
    jl.nodes = calloc(cap, sizeof(*jl.nodes));
    jl.fams = calloc(cap, sizeof(*jl.fams));
    ok = calloc(cap, sizeof(*ok));
    jl.len = 0;
    if (jl.seeds == NULL || jl.nodes == NULL || jl.fams == NULL || ok == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        return 2;
    }
    if (o->test)
        n_regs = read_regressions(o->regressions, &jl, cap);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t seed = o->seed + i;

        if (o->family >= 0 && family_for(o, seed) != o->family)
            continue;
        jobs_add(&jl, cap, seed, nodes_for(o, seed), family_for(o, seed));
    }
    for (uint64_t i = 0; i < extra; i++)
        jobs_add(&jl, cap, o->seed + i, nodes_for(o, o->seed + i),
                 FAM_RECONFIG);
    printf("sim: %zu regression seeds, %zu campaign seeds, %u jobs\n", n_regs,
           jl.len - n_regs, o->jobs);
    if (run_jobs(&jl, o->jobs, o->until_fail, ok) != 0)
        return 2;
    for (size_t i = 0; i < jl.len; i++) {
        struct group *g;

        if (i < n_regs) {
            g = &regs;
        } else {
            g = &groups[jl.nodes[i] == 4 ? 0 : 1][jl.fams[i]];
        }
        if (ok[i] < 0 && o->until_fail)
            continue;
        if (ok[i] > 0) {
            g->pass++;
        } else {
            g->fail++;
            failures++;
            printf("FAILED SEED=%" PRIu64 " NODES=%u\n", jl.seeds[i],
                   jl.nodes[i]);
        }
    }
    if (o->test) {
        if (n_regs > 0)
            printf("TEST-RESULT: %s sim_regressions (%zu seeds)\n",
                   regs.fail ? "fail" : "pass", n_regs);
        for (int ni = 0; ni < 2; ni++)
            for (int f = 0; f < FAM_COUNT; f++) {
                struct group *g = &groups[ni][f];

                if (g->pass + g->fail == 0)
                    continue;
                printf("TEST-RESULT: %s sim_n%d_%s (%" PRIu64 "/%" PRIu64
                       " seeds ok)\n",
                       g->fail ? "fail" : "pass", ni == 0 ? 4 : 7,
                       sim_family_name(f), g->pass, g->pass + g->fail);
            }
    }
    printf("sim: %zu seeds, %zu failed, %.1f s\n", jl.len, failures,
           now_s() - t0);
    free(jl.seeds);
    free(jl.nodes);
    free(jl.fams);
    free(ok);
    return failures ? 1 : 0;
}

/* ---- cost report -------------------------------------------------------- */

static int cost_report(void)
{
    static const uint32_t batches[] = {1, 10, 100};
    static const uint32_t ns[] = {4, 7};
    static const uint32_t ks[] = {16, 1};
    bool all_ok = true;

    printf("PBFT cost per committed request: fixed unit delay, no faults.\n"
           "K = checkpoint interval (the node runs K = 1: every block "
           "certified).\nlatency = client send to execution at a quorum, in "
           "message delays.\n");
    printf("%3s %3s %6s %9s %9s %12s %11s %13s %12s\n", "n", "K", "batch",
           "requests", "msgs/req", "client msgs", "sig ops/req", "req verifies",
           "latency (d)");
    for (size_t h = 0; h < sizeof(ks) / sizeof(ks[0]); h++)
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
            for (size_t j = 0; j < sizeof(batches) / sizeof(batches[0]); j++) {
                struct sim_cost c;
                bool ok = sim_cost_run(ns[i], batches[j], ks[h], &c);

                all_ok = all_ok && ok;
                printf("%3u %3u %6u %9" PRIu64
                       " %9.2f %12.2f %11.2f %13.2f %12.2f%s\n",
                       ns[i], ks[h], batches[j], c.requests, c.msgs_per_req,
                       c.client_msgs_per_req, c.sigops_per_req,
                       c.req_verifies_per_req, c.latency_delays,
                       ok ? "" : "  (FAILED)");
                printf("%14s", "");
                for (int t = PBFT_MSG_REQUEST; t <= PBFT_MSG_TYPE_MAX; t++)
                    if (c.by_type_per_req[t] > 0)
                        printf(" %s %.2f", sim_msg_type_name(t),
                               c.by_type_per_req[t]);
                printf("\n");
            }
    printf("msgs/req: replica-to-replica messages (one per destination); "
           "client msgs: request + replies.\nsig ops: replica sign + verify "
           "calls; req verifies: client-signature checks.\n");
    return all_ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct opts o;

    if (sodium_init() < 0) {
        fprintf(stderr, "sim: libsodium failed to start\n");
        return 2;
    }
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (o.cost)
        return cost_report();
    if (o.have_seed && o.seeds == 0 && !o.test)
        return run_one(o.seed, nodes_for(&o, o.seed), family_for(&o, o.seed),
                       o.trace)
                   ? 0
                   : 1;
    return campaign(&o);
}
