/*
 * config.c - flags, environment, config.json, defaults (in that order).
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(struct node_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->client_url, sizeof(c->client_url), "tcp://127.0.0.1:27001");
    snprintf(c->http_addr, sizeof(c->http_addr), "127.0.0.1:27002");
    snprintf(c->data_dir, sizeof(c->data_dir), "data");
    snprintf(c->log_level, sizeof(c->log_level), "info");
    snprintf(c->log_format, sizeof(c->log_format), "text");
    snprintf(c->cpu_policy, sizeof(c->cpu_policy), "normal");
    c->limits.peer_recv_max_bytes = 32u << 20;
    c->limits.client_recv_max_bytes = 1u << 20;
    c->limits.api_contexts = 32;
    c->limits.waiting_max = 4096;
    c->limits.submit_timeout_ms = 10000;
    c->limits.queue_max = 8192;
    c->limits.peer_msgs_per_s = 20000;
    c->limits.peer_burst = 40000;
    c->limits.client_reqs_per_s = 20000;
    c->limits.peer_sendbuf = 4096;
}

const char *config_usage(void)
{
    return "usage: trialchain-node --home DIR [--log-format=text|json]\n"
           "                       [--log-level debug|info|warn|error] "
           "[--repair] [--web]\n"
           "Settings: flags, then TRIALCHAIN_* environment, then "
           "DIR/config.json, then defaults.\n";
}

static int config_set_str(char *dst, size_t cap, const char *val,
                          const char *name, char *err, size_t err_len)
{
    size_t n = strlen(val);
    if (n >= cap) {
        snprintf(err, err_len, "setting %s is too long (at most %zu bytes).",
                 name, cap - 1);
        return LG_ECONFIG;
    }
    memcpy(dst, val, n + 1);
    return LG_OK;
}

static int config_check_log(const struct node_config *c, char *err,
                            size_t err_len)
{
    enum lg_level lv;
    if (lg_log_parse_level(c->log_level, &lv) != LG_OK) {
        snprintf(err, err_len,
                 "log level \"%s\" is not one of debug, info, warn, error.",
                 c->log_level);
        return LG_ECONFIG;
    }
    if (strcmp(c->log_format, "text") != 0 &&
        strcmp(c->log_format, "json") != 0) {
        snprintf(err, err_len, "log format \"%s\" is not text or json.",
                 c->log_format);
        return LG_ECONFIG;
    }
    return LG_OK;
}

static int config_check_cpu_policy(const struct node_config *c, char *err,
                                   size_t err_len)
{
    if (strcmp(c->cpu_policy, "batch") == 0 ||
        strcmp(c->cpu_policy, "normal") == 0)
        return LG_OK;
    snprintf(err, err_len, "cpu_policy \"%s\" is not batch or normal.",
             c->cpu_policy);
    return LG_ECONFIG;
}

static int config_parse_u32(const char *s, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    if (s == NULL || *s == '\0' || *s == '-')
        return LG_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX)
        return LG_EINVAL;
    *out = (uint32_t)v;
    return LG_OK;
}

/* ---- config.json --------------------------------------------------------- */

struct config_limit_key {
    const char *name;
    size_t offset;
    uint32_t min;
};

#define CONFIG_LIMIT(field, minimum)                           \
    {                                                          \
#field, offsetof(struct node_limits, field), (minimum) \
    }

static const struct config_limit_key config_limit_keys[] = {
    CONFIG_LIMIT(peer_recv_max_bytes, 4096),
    CONFIG_LIMIT(client_recv_max_bytes, 1024),
    CONFIG_LIMIT(api_contexts, 1),
    CONFIG_LIMIT(waiting_max, 1),
    CONFIG_LIMIT(submit_timeout_ms, 1),
    CONFIG_LIMIT(queue_max, 16),
    CONFIG_LIMIT(peer_msgs_per_s, 1),
    CONFIG_LIMIT(peer_burst, 1),
    CONFIG_LIMIT(client_reqs_per_s, 1),
    CONFIG_LIMIT(peer_sendbuf, 1),
};

static int config_parse_limits(json_t *obj, struct node_limits *l, char *err,
                               size_t err_len)
{
    const char *key;
    json_t *val;
    if (!json_is_object(obj)) {
        snprintf(err, err_len, "config.json: \"limits\" must be an object.");
        return LG_ECONFIG;
    }
    json_object_foreach(obj, key, val)
    {
        const struct config_limit_key *k = NULL;
        for (size_t i = 0;
             i < sizeof(config_limit_keys) / sizeof(config_limit_keys[0]);
             i++) {
            if (strcmp(config_limit_keys[i].name, key) == 0)
                k = &config_limit_keys[i];
        }
        if (k == NULL) {
            snprintf(err, err_len, "config.json: unknown limit \"%s\".", key);
            return LG_ECONFIG;
        }
        json_int_t v = json_is_integer(val) ? json_integer_value(val) : -1;
        if (v < (json_int_t)k->min || v > (json_int_t)UINT32_MAX) {
            snprintf(err, err_len,
                     "config.json: limit \"%s\" must be an integer from %u "
                     "to %u.",
                     key, k->min, UINT32_MAX);
            return LG_ECONFIG;
        }
        uint32_t u = (uint32_t)v;
        memcpy((char *)l + k->offset, &u, sizeof(u));
    }
    return LG_OK;
}

struct config_str_key {
    const char *name;
    size_t offset;
    size_t cap;
};

#define CONFIG_STR(field)                            \
    {                                                \
#field, offsetof(struct node_config, field), \
            sizeof(((struct node_config *)0)->field) \
    }

static const struct config_str_key config_str_keys[] = {
    CONFIG_STR(client_url), CONFIG_STR(peer_listen_url), CONFIG_STR(http_addr),
    CONFIG_STR(data_dir),   CONFIG_STR(log_level),       CONFIG_STR(log_format),
    CONFIG_STR(cpu_policy),
};

static int config_parse_key(const char *key, json_t *val, struct node_config *c,
                            char *err, size_t err_len)
{
    if (strcmp(key, "replica_id") == 0) {
        json_int_t v = json_is_integer(val) ? json_integer_value(val) : -1;
        if (v < 0 || v >= 64) {
            snprintf(err, err_len,
                     "config.json: \"replica_id\" must be an integer from 0 "
                     "to 63.");
            return LG_ECONFIG;
        }
        c->replica_id = (uint32_t)v;
        c->has_replica_id = true;
        return LG_OK;
    }
    if (strcmp(key, "limits") == 0)
        return config_parse_limits(val, &c->limits, err, err_len);
    if (strcmp(key, "web") == 0) {
        if (!json_is_boolean(val)) {
            snprintf(err, err_len,
                     "config.json: \"web\" must be true or false.");
            return LG_ECONFIG;
        }
        c->web = json_is_true(val);
        return LG_OK;
    }
    for (size_t i = 0; i < sizeof(config_str_keys) / sizeof(config_str_keys[0]);
         i++) {
        const struct config_str_key *k = &config_str_keys[i];
        if (strcmp(k->name, key) != 0)
            continue;
        if (!json_is_string(val)) {
            snprintf(err, err_len, "config.json: \"%s\" must be a string.",
                     key);
            return LG_ECONFIG;
        }
        return config_set_str((char *)c + k->offset, k->cap,
                              json_string_value(val), key, err, err_len);
    }
    snprintf(err, err_len, "config.json: unknown setting \"%s\".", key);
    return LG_ECONFIG;
}

int config_parse_json(const char *text, size_t len, struct node_config *c,
                      char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, err_len, "config.json is not valid JSON (line %d: %s).",
                 jerr.line, jerr.text);
        return LG_ECONFIG;
    }
    int rv = LG_OK;
    if (!json_is_object(root)) {
        snprintf(err, err_len, "config.json must hold a JSON object.");
        rv = LG_ECONFIG;
        goto out_free_root;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        rv = config_parse_key(key, val, c, err, err_len);
        if (rv != LG_OK)
            goto out_free_root;
    }
out_free_root:
    json_decref(root);
    return rv;
}

/* ---- flags and environment ----------------------------------------------- */

struct config_flags {
    const char *home, *log_format, *log_level;
    bool repair, help, web;
};

/* Accepts "--name VALUE" and "--name=VALUE". */
static int config_flag_value(int argc, char **argv, int *i, const char *name,
                             const char **out, char *err, size_t err_len)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return LG_ENOTFOUND;
    if (a[n] == '=') {
        *out = a + n + 1;
        return LG_OK;
    }
    if (a[n] != '\0')
        return LG_ENOTFOUND;
    if (*i + 1 >= argc) {
        snprintf(err, err_len, "option %s needs a value.", name);
        return LG_ECONFIG;
    }
    *i += 1;
    *out = argv[*i];
    return LG_OK;
}

static int config_parse_flags(int argc, char **argv, struct config_flags *f,
                              char *err, size_t err_len)
{
    static const char *const names[] = {"--home", "--log-format",
                                        "--log-level"};
    for (int i = 1; i < argc; i++) {
        const char **slots[] = {&f->home, &f->log_format, &f->log_level};
        int rv = LG_ENOTFOUND;
        for (size_t k = 0; k < 3 && rv == LG_ENOTFOUND; k++)
            rv = config_flag_value(argc, argv, &i, names[k], slots[k], err,
                                   err_len);
        if (rv == LG_OK)
            continue;
        if (rv != LG_ENOTFOUND)
            return rv;
        if (strcmp(argv[i], "--repair") == 0) {
            f->repair = true;
        } else if (strcmp(argv[i], "--web") == 0) {
            f->web = true;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            f->help = true;
        } else {
            snprintf(err, err_len, "unknown option \"%s\".", argv[i]);
            return LG_ECONFIG;
        }
    }
    return LG_OK;
}

static int config_apply_env(struct node_config *c, char *err, size_t err_len)
{
    static const struct {
        const char *env;
        size_t offset, cap;
    } envs[] = {
        {"TRIALCHAIN_CLIENT_URL", offsetof(struct node_config, client_url),
         CONFIG_URL_MAX},
        {"TRIALCHAIN_PEER_LISTEN_URL",
         offsetof(struct node_config, peer_listen_url), CONFIG_URL_MAX},
        {"TRIALCHAIN_HTTP_ADDR", offsetof(struct node_config, http_addr),
         CONFIG_URL_MAX},
        {"TRIALCHAIN_DATA_DIR", offsetof(struct node_config, data_dir),
         CONFIG_PATH_MAX},
        {"TRIALCHAIN_LOG_LEVEL", offsetof(struct node_config, log_level), 16},
        {"TRIALCHAIN_LOG_FORMAT", offsetof(struct node_config, log_format), 16},
        {"TRIALCHAIN_CPU_POLICY", offsetof(struct node_config, cpu_policy), 16},
    };
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        const char *v = getenv(envs[i].env);
        if (v == NULL)
            continue;
        int rv = config_set_str((char *)c + envs[i].offset, envs[i].cap, v,
                                envs[i].env, err, err_len);
        if (rv != LG_OK)
            return rv;
    }
    const char *id = getenv("TRIALCHAIN_REPLICA_ID");
    if (id != NULL) {
        if (config_parse_u32(id, &c->replica_id) != LG_OK ||
            c->replica_id >= 64) {
            snprintf(err, err_len,
                     "TRIALCHAIN_REPLICA_ID=\"%s\" is not a replica id (0 to "
                     "63).",
                     id);
            return LG_ECONFIG;
        }
        c->has_replica_id = true;
    }
    return LG_OK;
}

static int config_join(char *out, size_t cap, const char *home,
                       const char *name, char *err, size_t err_len)
{
    int n = name[0] == '/' ? snprintf(out, cap, "%s", name)
                           : snprintf(out, cap, "%s/%s", home, name);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, err_len, "path %s/%s is too long.", home, name);
        return LG_ECONFIG;
    }
    return LG_OK;
}

static int config_read_file(struct node_config *c, char *err, size_t err_len)
{
    char path[CONFIG_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/config.json", c->home);
    unsigned char *text = NULL;
    size_t len = 0;
    int rv = lg_read_file(path, CONFIG_FILE_MAX, &text, &len);
    if (rv == LG_ENOTFOUND)
        return LG_OK; /* every setting has a default but replica_id */
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot read %s: %s.", path, lg_strerror(rv));
        return LG_ECONFIG;
    }
    rv = config_parse_json((const char *)text, len, c, err, err_len);
    free(text);
    return rv;
}

int config_load(int argc, char **argv, struct node_config *c, char *err,
                size_t err_len)
{
    struct config_flags f = {0};
    config_defaults(c);
    int rv = config_parse_flags(argc, argv, &f, err, err_len);
    if (rv != LG_OK)
        return rv;
    c->help = f.help;
    c->repair = f.repair;
    if (f.help)
        return LG_OK;
    const char *home = f.home ? f.home : getenv("TRIALCHAIN_HOME");
    if (home == NULL || home[0] == '\0') {
        snprintf(err, err_len,
                 "no home directory: pass --home DIR or set "
                 "TRIALCHAIN_HOME.");
        return LG_ECONFIG;
    }
    rv = config_set_str(c->home, sizeof(c->home), home, "--home", err, err_len);
    if (rv == LG_OK)
        rv = config_read_file(c, err, err_len);
    if (rv == LG_OK)
        rv = config_apply_env(c, err, err_len);
    const char *web_env = getenv("TRIALCHAIN_WEB");
    if (web_env != NULL && web_env[0] != '\0')
        c->web = strcmp(web_env, "0") != 0 && strcmp(web_env, "false") != 0;
    if (f.web)
        c->web = true;
    if (rv == LG_OK && f.log_format != NULL)
        rv = config_set_str(c->log_format, sizeof(c->log_format), f.log_format,
                            "--log-format", err, err_len);
    if (rv == LG_OK && f.log_level != NULL)
        rv = config_set_str(c->log_level, sizeof(c->log_level), f.log_level,
                            "--log-level", err, err_len);
    if (rv != LG_OK)
        return rv;
    if (!c->has_replica_id) {
        snprintf(err, err_len,
                 "%s/config.json does not say which replica this is "
                 "(\"replica_id\").",
                 c->home);
        return LG_ECONFIG;
    }
    char data[CONFIG_PATH_MAX];
    memcpy(data, c->data_dir, sizeof(data));
    rv = config_join(c->data_dir, sizeof(c->data_dir), c->home, data, err,
                     err_len);
    if (rv == LG_OK)
        rv = config_join(c->key_path, sizeof(c->key_path), c->home, "node.key",
                         err, err_len);
    if (rv == LG_OK)
        rv = config_join(c->genesis_path, sizeof(c->genesis_path), c->home,
                         "genesis.json", err, err_len);
    if (rv == LG_OK)
        rv = config_check_log(c, err, err_len);
    if (rv == LG_OK)
        rv = config_check_cpu_policy(c, err, err_len);
    if (rv == LG_OK && c->client_url[0] == '\0') {
        snprintf(err, err_len, "client_url must not be empty.");
        rv = LG_ECONFIG;
    }
    return rv;
}
