/*
 * main.c - trialchain-node: settings, logging, signals, then the loop.
 *
 * Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the node
 * refuses to start or hits a fatal storage error, 2 on a usage error.
 */
#include "config.h"
#include "lg.h"
#include "node.h"

#include <errno.h>
#include <nng/nng.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* _exit */

/* Closing waits on NNG, whose nng_close can hang (seen here over IPC, as in
 * nanomsg/nng#1543). Nothing is lost by not waiting: the loop ends every
 * turn with a synced write, and LevelDB needs no close to reopen. So a close
 * that takes longer than this is abandoned, said, and the process exits
 * with the code it would have had. */
#define CLOSE_MAX_S 10
/* Test mode (never set in production): stall this long before closing. */
#define CLOSE_STALL_ENV "TRIALCHAIN_TEST_CLOSE_STALL_MS"

struct close_watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int code;
};

static void *close_watchdog(void *arg)
{
    struct close_watch *c = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CLOSE_MAX_S;
    pthread_mutex_lock(&c->mu);
    int rv = 0;
    while (!c->done && rv != ETIMEDOUT)
        rv = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    bool done = c->done;
    pthread_mutex_unlock(&c->mu);
    if (!done) {
        lg_log(LG_ERROR, "shutdown_stuck",
               "after_s=%d msg=\"closing the network did not finish; "
               "exiting without it (the ledger was synced when the loop "
               "stopped)\"",
               CLOSE_MAX_S);
        _exit(c->code);
    }
    return NULL;
}

struct signal_waiter {
    sigset_t set;
    struct node *node;
    int signo;
};

/* Waits for SIGTERM/SIGINT on its own thread, so the stop request goes
 * through the loop's queue instead of running inside a signal handler. */
static void *signal_thread(void *arg)
{
    struct signal_waiter *w = arg;
    int sig = 0;
    if (sigwait(&w->set, &sig) == 0) {
        w->signo = sig;
        node_stop(w->node);
    }
    return NULL;
}

static int setup_logging(const struct node_config *c)
{
    enum lg_level level;
    if (lg_log_parse_level(c->log_level, &level) != LG_OK)
        return LG_ECONFIG;
    lg_log_set_level(level);
    lg_log_set_json(strcmp(c->log_format, "json") == 0);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "node=%u", c->replica_id);
    lg_log_set_prefix(prefix);
    return LG_OK;
}

/* "batch" puts this thread under SCHED_BATCH before any other exists, so
 * every thread (NNG's too) inherits it. Such threads do not preempt a
 * running thread when they wake: the loop finishes its turn before NNG's
 * threads take the frames it queued. On the 2-core development machine
 * (four nodes and the load on two cores) that halved the context switches
 * per block and saved 3-12% of node CPU per transaction, but latency did
 * not improve: a node's wake-up also waits behind the other nodes' threads
 * there. So "normal" (the default policy) is the default (README,
 * Performance, fifth session). It needs no privilege. */
static void set_cpu_policy(const struct node_config *c)
{
    if (strcmp(c->cpu_policy, "batch") != 0)
        return;
    struct sched_param sp = {.sched_priority = 0};
    if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
        lg_log(LG_WARN, "cpu_policy_unset", "policy=batch err=\"%s\"",
               strerror(errno));
}

int main(int argc, char **argv)
{
    static struct node_config cfg;
    struct signal_waiter w = {.signo = 0};
    char err[1024] = "";
    /* Block before any thread exists, so every NNG thread inherits it. */
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGTERM);
    sigaddset(&w.set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &w.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (config_load(argc, argv, &cfg, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "trialchain-node: %s\n%s", err, config_usage());
        return 2;
    }
    if (cfg.help) {
        fputs(config_usage(), stdout);
        return 0;
    }
    if (setup_logging(&cfg) != LG_OK) {
        fprintf(stderr, "trialchain-node: bad log settings\n");
        return 2;
    }
    set_cpu_policy(&cfg);
    struct node *node = NULL;
    if (node_open(&cfg, &node, err, sizeof(err)) != LG_OK) {
        lg_log(LG_ERROR, "refused_to_start", "reason=\"%s\"", err);
        fprintf(stderr, "trialchain-node: cannot start: %s\n", err);
        return 1;
    }
    w.node = node;
    pthread_t tid;
    if (pthread_create(&tid, NULL, signal_thread, &w) != 0) {
        node_close(node);
        fprintf(stderr, "trialchain-node: cannot start a thread\n");
        return 1;
    }
    int rv = node_run(node);
    bool by_signal = node_stop_requested(node);
    bool removed = node_was_removed(node);
    /* Wake the signal thread if the loop stopped on its own (a pending
     * SIGTERM left over is harmless: it stays blocked until exit). */
    pthread_kill(tid, SIGTERM);
    pthread_join(tid, NULL);
    struct close_watch cw = {.mu = PTHREAD_MUTEX_INITIALIZER,
                             .cv = PTHREAD_COND_INITIALIZER,
                             .code = rv == LG_OK ? 0 : 1};
    pthread_t wd;
    bool watched = pthread_create(&wd, NULL, close_watchdog, &cw) == 0;
    const char *stall = getenv(CLOSE_STALL_ENV);
    int stall_ms = stall != NULL ? atoi(stall) : 0;
    if (stall_ms > 0) {
        lg_log(LG_WARN, "test_close_stall", "ms=%d", stall_ms);
        struct timespec ts = {.tv_sec = stall_ms / 1000,
                              .tv_nsec = (stall_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    node_close(node);
    /* Every socket is closed: NNG reaps what it still holds before exit,
     * so nothing it frees late shows as a leak to a checker. */
    nng_fini();
    if (watched) {
        pthread_mutex_lock(&cw.mu);
        cw.done = true;
        pthread_cond_signal(&cw.cv);
        pthread_mutex_unlock(&cw.mu);
        pthread_join(wd, NULL);
    }
    if (by_signal)
        lg_log(LG_INFO, "stopped", "signal=%d err=\"%s\"", w.signo,
               lg_strerror(rv));
    else
        lg_log(rv == LG_OK ? LG_INFO : LG_ERROR, "stopped", "reason=\"%s\"",
               removed ? "removed from the replica set by governance"
                       : lg_strerror(rv));
    return rv == LG_OK ? 0 : 1;
}
