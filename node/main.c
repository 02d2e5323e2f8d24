/*
 * main.c - trialchain-node: settings, logging, signals, then the loop.
 *
 * Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the node
 * refuses to start or hits a fatal storage error, 2 on a usage error.
 */
#include "config.h"
#include "lg.h"
#include "node.h"

#include <nng/nng.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

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
    node_close(node);
    /* Every socket is closed: NNG reaps what it still holds before exit,
     * so nothing it frees late shows as a leak to a checker. */
    nng_fini();
    if (by_signal)
        lg_log(LG_INFO, "stopped", "signal=%d err=\"%s\"", w.signo,
               lg_strerror(rv));
    else
        lg_log(rv == LG_OK ? LG_INFO : LG_ERROR, "stopped", "reason=\"%s\"",
               removed ? "removed from the replica set by governance"
                       : lg_strerror(rv));
    return rv == LG_OK ? 0 : 1;
}
