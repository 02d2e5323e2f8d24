/*
 * config.h - the daemon's settings.
 *
 * Precedence: command-line flags, then TRIALCHAIN_* environment variables,
 * then HOME/config.json, then defaults. Unknown keys in config.json are
 * refused (a typo must not silently fall back to a default).
 *
 * config.json (every key optional but replica_id):
 * { "replica_id": 0,
 *   "client_url": "tcp://127.0.0.1:27001",
 *   "peer_listen_url": "tcp://127.0.0.1:27000",   default: genesis peer_url
 *   "http_addr": "127.0.0.1:27002",                "" disables HTTP
 *   "data_dir": "data",                            relative to home
 *   "log_level": "info", "log_format": "text",
 *   "cpu_policy": "normal",                        or "batch" (main.c)
 *   "limits": { "peer_recv_max_bytes": 33554432,
 *               "client_recv_max_bytes": 1048576,
 *               "api_contexts": 32, "waiting_max": 4096,
 *               "submit_timeout_ms": 10000, "queue_max": 8192,
 *               "peer_msgs_per_s": 20000, "peer_burst": 40000,
 *               "client_reqs_per_s": 20000, "peer_sendbuf": 4096 } }
 *
 * Environment: TRIALCHAIN_HOME, TRIALCHAIN_REPLICA_ID, TRIALCHAIN_CLIENT_URL,
 * TRIALCHAIN_PEER_LISTEN_URL, TRIALCHAIN_HTTP_ADDR, TRIALCHAIN_DATA_DIR,
 * TRIALCHAIN_LOG_LEVEL, TRIALCHAIN_LOG_FORMAT, TRIALCHAIN_CPU_POLICY.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 1024
#define CONFIG_URL_MAX  256
#define CONFIG_FILE_MAX (64u * 1024u)

struct node_limits {
    uint32_t peer_recv_max_bytes;
    uint32_t client_recv_max_bytes;
    uint32_t api_contexts;      /* concurrent client requests in flight */
    uint32_t waiting_max;       /* submits waiting for their commit */
    uint32_t submit_timeout_ms; /* default wait for a commit */
    uint32_t queue_max;         /* inputs queued for the event loop */
    uint32_t peer_msgs_per_s;   /* token bucket per peer */
    uint32_t peer_burst;
    uint32_t client_reqs_per_s; /* all client requests, token bucket */
    uint32_t peer_sendbuf;      /* messages buffered per outgoing link */
};

struct node_config {
    char home[CONFIG_PATH_MAX];
    bool has_replica_id;
    uint32_t replica_id;
    char client_url[CONFIG_URL_MAX];
    char peer_listen_url[CONFIG_URL_MAX]; /* "" = genesis peer_url */
    char http_addr[CONFIG_URL_MAX];       /* host:port, "" = no HTTP */
    char data_dir[CONFIG_PATH_MAX];       /* absolute after load */
    char key_path[CONFIG_PATH_MAX];       /* home/node.key */
    char genesis_path[CONFIG_PATH_MAX];   /* home/genesis.json */
    char log_level[16];
    char log_format[16]; /* "text" or "json" */
    char cpu_policy[16]; /* "batch" or "normal": the threads' scheduling */
    bool repair;
    bool web; /* serve the read-only web view on http_addr */
    bool help;
    struct node_limits limits;
};

void config_defaults(struct node_config *c);

/* Fills c from argv (flags), the environment, home/config.json and the
 * defaults, in that order of precedence. On error returns LG_ECONFIG and
 * writes a sentence into err naming the setting and what is wrong. */
int config_load(int argc, char **argv, struct node_config *c, char *err,
                size_t err_len) LG_MUST_CHECK;

/* Parses config.json bytes into c (only the keys present). */
int config_parse_json(const char *text, size_t len, struct node_config *c,
                      char *err, size_t err_len) LG_MUST_CHECK;

const char *config_usage(void);

#endif /* CONFIG_H */
