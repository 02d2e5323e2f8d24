/*
 * genesis.c - the consortium's genesis file and member/replica key files.
 */
#include "genesis.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEYFILE_MAX 8192

static const char *const role_names[] = {
    [ROLE_NONE] = "none",       [ROLE_SPONSOR] = "sponsor",
    [ROLE_SITE] = "site",       [ROLE_ETHICS_BOARD] = "ethics_board",
    [ROLE_AUDITOR] = "auditor",
};

const char *role_name(enum member_role r)
{
    if ((unsigned)r > ROLE_AUDITOR)
        return "unknown";
    return role_names[r];
}

int role_parse(const char *s, enum member_role *out)
{
    if (s == NULL)
        return LG_EINVAL;
    for (int r = ROLE_SPONSOR; r <= ROLE_AUDITOR; r++) {
        if (strcmp(s, role_names[r]) == 0) {
            *out = (enum member_role)r;
            return LG_OK;
        }
    }
    return LG_EINVAL;
}

static int fail(int rv, char *err, size_t err_len, const char *fmt, ...)
    LG_PRINTF(4, 5);

static int fail(int rv, char *err, size_t err_len, const char *fmt, ...)
{
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* ---- field readers: each writes a sentence naming the field ---------- */

struct jctx {
    const char *where; /* "replica 2", "the consensus section" */
    char *err;
    size_t err_len;
};

static int get_string(const struct jctx *c, json_t *obj, const char *key,
                      char *out, size_t cap, bool required)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (!required) {
            out[0] = '\0';
            return LG_OK;
        }
        return fail(LG_ECONFIG, c->err, c->err_len, "%s has no \"%s\" field.",
                    c->where, key);
    }
    if (!json_is_string(v))
        return fail(LG_ECONFIG, c->err, c->err_len,
                    "\"%s\" in %s must be a string.", key, c->where);
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len >= cap || strlen(s) != len)
        return fail(LG_ECONFIG, c->err, c->err_len,
                    "\"%s\" in %s is too long (at most %zu characters) or "
                    "contains a NUL.",
                    key, c->where, cap - 1);
    memcpy(out, s, len + 1);
    return LG_OK;
}

static int get_hex(const struct jctx *c, json_t *obj, const char *key,
                   uint8_t *out, size_t n)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return fail(LG_ECONFIG, c->err, c->err_len, "%s has no \"%s\" field.",
                    c->where, key);
    if (!json_is_string(v) || lg_unhex(json_string_value(v), out, n) != 0)
        return fail(LG_ECONFIG, c->err, c->err_len,
                    "\"%s\" in %s must be %zu hex digits.", key, c->where,
                    2 * n);
    return LG_OK;
}

static int get_u64(const struct jctx *c, json_t *obj, const char *key,
                   uint64_t max, uint64_t *out, bool required)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required)
            return fail(LG_ECONFIG, c->err, c->err_len,
                        "%s has no \"%s\" field.", c->where, key);
        return LG_OK; /* keep the default already in *out */
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return fail(LG_ECONFIG, c->err, c->err_len,
                    "\"%s\" in %s must be an integer from 0 to %llu.", key,
                    c->where, (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return LG_OK;
}

static int get_u32(const struct jctx *c, json_t *obj, const char *key,
                   uint32_t *out, bool required)
{
    uint64_t v = *out;
    int rv = get_u64(c, obj, key, UINT32_MAX, &v, required);
    if (rv == LG_OK)
        *out = (uint32_t)v;
    return rv;
}

/* "YYYY-MM-DDTHH:MM:SSZ" -> milliseconds since the epoch. */
static int parse_time(const char *s, uint64_t *out_ms)
{
    int y, mo, d, h, mi, sec, used = 0;
    if (strlen(s) != 20 ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &sec,
               &used) != 6 ||
        used != 20)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-31; a round trip rejects such dates. */
    if (t < 0 || tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 ||
        tm.tm_mday != d || tm.tm_hour != h || tm.tm_min != mi ||
        tm.tm_sec != sec)
        return -1;
    *out_ms = (uint64_t)t * 1000u;
    return 0;
}

/* ---- genesis ------------------------------------------------------------ */

static const char *const consensus_keys[] = {
    "batch_max",         "batch_delay_ms",  "checkpoint_interval",
    "watermark_window",  "view_timeout_ms", "view_timeout_max_ms",
    "clock_skew_max_ms",
};

static int parse_consensus(json_t *root, struct genesis *g, char *err,
                           size_t err_len)
{
    struct pbft_config d;
    memset(&d, 0, sizeof(d));
    pbft_config_defaults(&d);
    g->batch_max = d.batch_max;
    g->batch_delay_ms = d.batch_delay_ms;
    g->checkpoint_interval = d.checkpoint_interval;
    g->watermark_window = d.watermark_window;
    g->view_timeout_ms = d.view_timeout_ms;
    g->view_timeout_max_ms = d.view_timeout_max_ms;
    g->clock_skew_max_ms = d.clock_skew_max_ms;

    json_t *cons = json_object_get(root, "consensus");
    if (cons == NULL)
        return LG_OK;
    if (!json_is_object(cons))
        return fail(LG_ECONFIG, err, err_len,
                    "\"consensus\" must be an object.");
    /* A misspelt parameter would silently fall back to a default. */
    const char *key;
    json_t *val;
    json_object_foreach(cons, key, val)
    {
        size_t i, n = sizeof(consensus_keys) / sizeof(consensus_keys[0]);
        for (i = 0; i < n && strcmp(key, consensus_keys[i]) != 0; i++)
            ;
        if (i == n)
            return fail(LG_ECONFIG, err, err_len,
                        "The consensus section has an unknown parameter "
                        "\"%s\".",
                        key);
    }
    struct jctx c = {"the consensus section", err, err_len};
    const uint64_t day_ms = 86400000u;
    int rv;
    if ((rv = get_u32(&c, cons, "batch_max", &g->batch_max, false)) ||
        (rv = get_u64(&c, cons, "batch_delay_ms", day_ms, &g->batch_delay_ms,
                      false)) ||
        (rv = get_u32(&c, cons, "checkpoint_interval", &g->checkpoint_interval,
                      false)) ||
        (rv = get_u32(&c, cons, "watermark_window", &g->watermark_window,
                      false)) ||
        (rv = get_u64(&c, cons, "view_timeout_ms", day_ms, &g->view_timeout_ms,
                      false)) ||
        (rv = get_u64(&c, cons, "view_timeout_max_ms", day_ms,
                      &g->view_timeout_max_ms, false)) ||
        (rv = get_u64(&c, cons, "clock_skew_max_ms", day_ms,
                      &g->clock_skew_max_ms, false)))
        return rv;
    if (g->batch_max < 1 || g->checkpoint_interval < 1)
        return fail(LG_ECONFIG, err, err_len,
                    "batch_max and checkpoint_interval must be at least 1.");
    if (g->watermark_window < 2 * (uint64_t)g->checkpoint_interval ||
        g->watermark_window % g->checkpoint_interval != 0)
        return fail(LG_ECONFIG, err, err_len,
                    "watermark_window must be a multiple of "
                    "checkpoint_interval, at least twice it.");
    if (g->view_timeout_ms < 1 || g->view_timeout_max_ms < g->view_timeout_ms)
        return fail(LG_ECONFIG, err, err_len,
                    "view_timeout_ms must be at least 1 and at most "
                    "view_timeout_max_ms.");
    return LG_OK;
}

static int parse_replicas(json_t *root, struct genesis *g, char *err,
                          size_t err_len)
{
    json_t *arr = json_object_get(root, "replicas");
    if (!json_is_array(arr))
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis needs a \"replicas\" array.");
    size_t n = json_array_size(arr);
    if (n < 4)
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis lists %zu replicas; PBFT needs at least 4 "
                    "(n = 3f+1 with f >= 1).",
                    n);
    if (n > PBFT_MAX_REPLICAS)
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis lists %zu replicas; the limit is %d.", n,
                    PBFT_MAX_REPLICAS);
    bool seen[PBFT_MAX_REPLICAS] = {false};
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char where[48];
        snprintf(where, sizeof(where), "Replica entry %zu", i);
        struct jctx c = {where, err, err_len};
        if (!json_is_object(o))
            return fail(LG_ECONFIG, err, err_len, "%s is not an object.",
                        where);
        uint32_t id = 0;
        int rv = get_u32(&c, o, "id", &id, true);
        if (rv != LG_OK)
            return rv;
        if (id >= n || seen[id])
            return fail(LG_ECONFIG, err, err_len,
                        "%s has id %u; ids must be unique and run from 0 "
                        "to %zu.",
                        where, id, n - 1);
        seen[id] = true;
        /* Stored by id, so replicas[i].id == i for the core. */
        struct genesis_replica *r = &g->replicas[id];
        r->id = id;
        if ((rv = get_string(&c, o, "name", r->name, sizeof(r->name), true)) ||
            (rv = get_hex(&c, o, "public_key", r->public_key, 32)) ||
            (rv = get_string(&c, o, "peer_url", r->peer_url,
                             sizeof(r->peer_url), true)))
            return rv;
        if (r->name[0] == '\0' || r->peer_url[0] == '\0')
            return fail(LG_ECONFIG, err, err_len,
                        "%s needs a non-empty name and peer_url.", where);
    }
    g->n_replicas = (uint32_t)n;
    for (uint32_t i = 0; i < g->n_replicas; i++) {
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(g->replicas[i].name, g->replicas[j].name) == 0)
                return fail(LG_ECONFIG, err, err_len,
                            "Two replicas share the name \"%s\".",
                            g->replicas[i].name);
            if (memcmp(g->replicas[i].public_key, g->replicas[j].public_key,
                       32) == 0)
                return fail(LG_ECONFIG, err, err_len,
                            "Replicas %u and %u share a public key.", j, i);
        }
    }
    return LG_OK;
}

static int parse_member(json_t *o, size_t i, struct genesis_member *m,
                        char *err, size_t err_len)
{
    char where[48];
    snprintf(where, sizeof(where), "Member entry %zu", i);
    struct jctx c = {where, err, err_len};
    if (!json_is_object(o))
        return fail(LG_ECONFIG, err, err_len, "%s is not an object.", where);
    char role[32];
    int rv;
    if ((rv = get_string(&c, o, "name", m->name, sizeof(m->name), true)) ||
        (rv = get_string(&c, o, "role", role, sizeof(role), true)) ||
        (rv = get_string(&c, o, "organisation", m->organisation,
                         sizeof(m->organisation), false)) ||
        (rv = get_hex(&c, o, "public_key", m->public_key, 32)))
        return rv;
    if (m->name[0] == '\0')
        return fail(LG_ECONFIG, err, err_len, "%s has an empty name.", where);
    if (role_parse(role, &m->role) != LG_OK)
        return fail(LG_ECONFIG, err, err_len,
                    "%s (\"%s\") has unknown role \"%s\"; roles are sponsor, "
                    "site, ethics_board and auditor.",
                    where, m->name, role);
    return LG_OK;
}

static int parse_members(json_t *root, struct genesis *g, char *err,
                         size_t err_len)
{
    json_t *arr = json_object_get(root, "members");
    if (arr == NULL)
        return LG_OK;
    if (!json_is_array(arr))
        return fail(LG_ECONFIG, err, err_len, "\"members\" must be an array.");
    size_t n = json_array_size(arr);
    if (n > GENESIS_MEMBERS_MAX)
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis lists %zu members; the limit is %d.", n,
                    GENESIS_MEMBERS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct genesis_member *m = &g->members[i];
        int rv = parse_member(json_array_get(arr, i), i, m, err, err_len);
        if (rv != LG_OK)
            return rv;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(g->members[j].name, m->name) == 0)
                return fail(LG_ECONFIG, err, err_len,
                            "Two members share the name \"%s\".", m->name);
            if (memcmp(g->members[j].public_key, m->public_key, 32) == 0)
                return fail(LG_ECONFIG, err, err_len,
                            "Members \"%s\" and \"%s\" share a public key.",
                            g->members[j].name, m->name);
        }
        g->n_members = (uint32_t)(i + 1);
    }
    return LG_OK;
}

static int parse_governance(json_t *root, struct genesis *g, char *err,
                            size_t err_len)
{
    json_t *gov = json_object_get(root, "governance");
    g->gov_threshold = 0;
    if (gov == NULL)
        return LG_OK;
    struct jctx c = {"the governance section", err, err_len};
    if (!json_is_object(gov))
        return fail(LG_ECONFIG, err, err_len,
                    "\"governance\" must be an object.");
    json_t *voters = json_object_get(gov, "voters");
    if (!json_is_array(voters))
        return fail(LG_ECONFIG, err, err_len,
                    "The governance section needs a \"voters\" array.");
    size_t n = json_array_size(voters);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(voters, i);
        if (!json_is_string(v) ||
            genesis_member_by_name(g, json_string_value(v)) == NULL)
            return fail(LG_ECONFIG, err, err_len,
                        "Governance voter %zu is not a member's name.", i);
    }
    int rv = get_u32(&c, gov, "threshold", &g->gov_threshold, true);
    if (rv != LG_OK)
        return rv;
    if (g->gov_threshold < 1 || g->gov_threshold > n)
        return fail(LG_ECONFIG, err, err_len,
                    "The governance threshold %u must be from 1 to the %zu "
                    "voters.",
                    g->gov_threshold, n);
    return LG_OK;
}

static int parse_root(json_t *root, struct genesis *g, char *err,
                      size_t err_len)
{
    struct jctx c = {"The genesis", err, err_len};
    char created[32];
    int rv;
    if ((rv = get_string(&c, root, "chain_name", g->chain_name,
                         sizeof(g->chain_name), true)) ||
        (rv = get_string(&c, root, "created", created, sizeof(created), true)))
        return rv;
    if (g->chain_name[0] == '\0')
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis has an empty chain_name.");
    if (parse_time(created, &g->created_ms) != 0)
        return fail(LG_ECONFIG, err, err_len,
                    "\"created\" must be a UTC time like "
                    "2026-11-21T00:00:00Z.");
    if ((rv = parse_consensus(root, g, err, err_len)) ||
        (rv = parse_replicas(root, g, err, err_len)) ||
        (rv = parse_members(root, g, err, err_len)) ||
        (rv = parse_governance(root, g, err, err_len)))
        return rv;
    return LG_OK;
}

int genesis_parse(const unsigned char *bytes, size_t len, struct genesis *g,
                  char *err, size_t err_len)
{
    memset(g, 0, sizeof(*g));
    if (len > GENESIS_FILE_MAX)
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis is %zu bytes; the limit is %u.", len,
                    GENESIS_FILE_MAX);
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis is not valid JSON (line %d, column %d: %s).",
                    jerr.line, jerr.column, jerr.text);
    int rv;
    if (!json_is_object(root))
        rv = fail(LG_ECONFIG, err, err_len,
                  "The genesis must be a JSON object.");
    else
        rv = parse_root(root, g, err, err_len);
    json_decref(root);
    if (rv != LG_OK) {
        memset(g, 0, sizeof(*g));
        return rv;
    }
    g->raw = malloc(len + 1);
    if (g->raw == NULL)
        return fail(LG_ENOMEM, err, err_len, "Out of memory.");
    memcpy(g->raw, bytes, len);
    g->raw[len] = '\0';
    g->raw_len = len;
    crypto_hash_sha256(g->chain_id, bytes, len);
    return LG_OK;
}

int genesis_load(const char *path, struct genesis *g, char *err, size_t err_len)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    memset(g, 0, sizeof(*g));
    int rv = lg_read_file(path, GENESIS_FILE_MAX, &buf, &len);
    if (rv == LG_ENOTFOUND)
        return fail(LG_ECONFIG, err, err_len,
                    "The genesis file %s does not exist.", path);
    if (rv != LG_OK)
        return fail(LG_ECONFIG, err, err_len,
                    "Cannot read the genesis file %s: %s.", path,
                    lg_strerror(rv));
    char inner[256];
    rv = genesis_parse(buf, len, g, inner, sizeof(inner));
    free(buf);
    if (rv != LG_OK)
        return fail(rv, err, err_len, "%s: %s", path, inner);
    return LG_OK;
}

void genesis_free(struct genesis *g)
{
    if (g == NULL)
        return;
    free(g->raw);
    g->raw = NULL;
    g->raw_len = 0;
}

const struct genesis_member *genesis_member_by_key(const struct genesis *g,
                                                   const uint8_t pk[32])
{
    for (uint32_t i = 0; i < g->n_members; i++)
        if (memcmp(g->members[i].public_key, pk, 32) == 0)
            return &g->members[i];
    return NULL;
}

const struct genesis_member *genesis_member_by_name(const struct genesis *g,
                                                    const char *name)
{
    for (uint32_t i = 0; i < g->n_members; i++)
        if (strcmp(g->members[i].name, name) == 0)
            return &g->members[i];
    return NULL;
}

void genesis_pbft_config(const struct genesis *g, struct pbft_config *cfg)
{
    pbft_config_defaults(cfg);
    cfg->n = g->n_replicas;
    memcpy(cfg->chain_id, g->chain_id, sizeof(cfg->chain_id));
    cfg->batch_max = g->batch_max;
    cfg->batch_delay_ms = g->batch_delay_ms;
    cfg->checkpoint_interval = g->checkpoint_interval;
    cfg->watermark_window = g->watermark_window;
    cfg->view_timeout_ms = g->view_timeout_ms;
    cfg->view_timeout_max_ms = g->view_timeout_max_ms;
    cfg->clock_skew_max_ms = g->clock_skew_max_ms;
}

/* ---- key files ---------------------------------------------------------- */

void keyfile_free(struct keyfile *k)
{
    if (k == NULL)
        return;
    sodium_free(k->secret_key); /* wipes; accepts NULL */
    sodium_free(k->pseudonym_secret);
    memset(k, 0, sizeof(*k));
}

/* Decodes hex straight into guarded memory, read-only afterwards. */
static int secret_from_hex(json_t *v, size_t n, uint8_t **out)
{
    if (!json_is_string(v) || json_string_length(v) != 2 * n)
        return -1;
    uint8_t *p = sodium_malloc(n);
    if (p == NULL)
        return -1;
    size_t got = 0;
    if (sodium_hex2bin(p, n, json_string_value(v), 2 * n, NULL, &got, NULL) !=
            0 ||
        got != n) {
        sodium_free(p);
        return -1;
    }
    sodium_mprotect_readonly(p);
    *out = p;
    return 0;
}

/* Wipes a secret string inside the parsed JSON before it is freed. */
static void wipe_json_string(json_t *v)
{
    if (json_is_string(v))
        sodium_memzero((char *)(uintptr_t)json_string_value(v),
                       json_string_length(v));
}

static int keyfile_parse(json_t *root, const char *path, struct keyfile *k,
                         char *err, size_t err_len)
{
    char where[300];
    snprintf(where, sizeof(where), "The key file %s", path);
    struct jctx c = {where, err, err_len};
    char role[32];
    int rv;
    if (!json_is_object(root))
        return fail(LG_ECONFIG, err, err_len, "%s is not a JSON object.",
                    where);
    if ((rv = get_string(&c, root, "kind", k->kind, sizeof(k->kind), true)) ||
        (rv = get_string(&c, root, "name", k->name, sizeof(k->name), true)) ||
        (rv = get_string(&c, root, "role", role, sizeof(role), false)) ||
        (rv = get_hex(&c, root, "public_key", k->public_key, 32)))
        return rv;
    if (strcmp(k->kind, "member") != 0 && strcmp(k->kind, "replica") != 0)
        return fail(LG_ECONFIG, err, err_len,
                    "%s has kind \"%s\"; it must be member or replica.", where,
                    k->kind);
    k->role = ROLE_NONE;
    if (role[0] != '\0' && role_parse(role, &k->role) != LG_OK)
        return fail(LG_ECONFIG, err, err_len, "%s has unknown role \"%s\".",
                    where, role);
    if (strcmp(k->kind, "member") == 0 && k->role == ROLE_NONE)
        return fail(LG_ECONFIG, err, err_len,
                    "%s is a member key without a "
                    "role.",
                    where);
    if (secret_from_hex(json_object_get(root, "secret_key"), 64,
                        &k->secret_key) != 0)
        return fail(LG_ECONFIG, err, err_len,
                    "%s needs \"secret_key\" as 128 hex digits.", where);
    uint8_t pk[32];
    crypto_sign_ed25519_sk_to_pk(pk, k->secret_key);
    if (memcmp(pk, k->public_key, 32) != 0)
        return fail(LG_ECONFIG, err, err_len,
                    "%s: the secret key does not match public_key.", where);
    json_t *ps = json_object_get(root, "pseudonym_secret");
    if (ps != NULL) {
        if (secret_from_hex(ps, 32, &k->pseudonym_secret) != 0)
            return fail(LG_ECONFIG, err, err_len,
                        "%s: \"pseudonym_secret\" must be 64 hex digits.",
                        where);
        k->has_pseudonym_secret = true;
    }
    if (json_object_get(root, "chain_id") != NULL) {
        if ((rv = get_hex(&c, root, "chain_id", k->chain_id, 32)))
            return rv;
        k->has_chain_id = true;
    }
    return LG_OK;
}

/* Reads the whole key file from an open descriptor (at most KEYFILE_MAX). */
static int read_fd(int fd, char *buf, size_t cap, size_t *len)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *len = got;
    return 0;
}

int keyfile_load(const char *path, struct keyfile *k, char *err, size_t err_len)
{
    memset(k, 0, sizeof(*k));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(errno == ENOENT ? LG_ENOTFOUND : LG_EIO, err, err_len,
                    "Cannot open the key file %s: %s.", path, strerror(errno));
    struct stat st;
    /* fstat on the open file: the mode we check is the file we read. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(LG_ECONFIG, err, err_len,
                    "The key file %s is not a regular file.", path);
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        close(fd);
        return fail(LG_EPERM, err, err_len,
                    "The key file %s can be read or written by other users "
                    "(mode %03o); run: chmod 600 %s",
                    path, (unsigned)(st.st_mode & 0777), path);
    }
    char *buf = sodium_malloc(KEYFILE_MAX);
    if (buf == NULL) {
        close(fd);
        return fail(LG_ENOMEM, err, err_len, "Out of memory.");
    }
    size_t len = 0;
    int rrv = read_fd(fd, buf, KEYFILE_MAX, &len);
    close(fd);
    if (rrv != 0 || len == KEYFILE_MAX) {
        sodium_free(buf);
        return fail(LG_ECONFIG, err, err_len,
                    "Cannot read the key file %s (unreadable or over %d "
                    "bytes).",
                    path, KEYFILE_MAX);
    }
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    sodium_free(buf);
    if (root == NULL)
        return fail(LG_ECONFIG, err, err_len,
                    "The key file %s is not valid JSON (line %d: %s).", path,
                    jerr.line, jerr.text);
    int rv = keyfile_parse(root, path, k, err, err_len);
    if (json_is_object(root)) {
        wipe_json_string(json_object_get(root, "secret_key"));
        wipe_json_string(json_object_get(root, "pseudonym_secret"));
    }
    json_decref(root);
    if (rv != LG_OK)
        keyfile_free(k);
    return rv;
}

/* Builds the key file's JSON; the secrets' hex lives only in sodium memory
 * and is wiped by the caller. */
static char *keyfile_json(const struct keyfile *k)
{
    char pk[65], cid[65];
    char *sk = sodium_malloc(129);
    char *ps = sodium_malloc(65);
    char *text = NULL;
    if (sk == NULL || ps == NULL)
        goto out_free_hex;
    lg_hex(k->public_key, 32, pk);
    sodium_bin2hex(sk, 129, k->secret_key, 64);
    json_t *o = json_object();
    if (o == NULL)
        goto out_free_hex;
    json_object_set_new(o, "kind", json_string(k->kind));
    json_object_set_new(o, "name", json_string(k->name));
    if (k->role != ROLE_NONE)
        json_object_set_new(o, "role", json_string(role_name(k->role)));
    json_object_set_new(o, "public_key", json_string(pk));
    json_object_set_new(o, "secret_key", json_string(sk));
    if (k->has_pseudonym_secret) {
        sodium_bin2hex(ps, 65, k->pseudonym_secret, 32);
        json_object_set_new(o, "pseudonym_secret", json_string(ps));
    }
    if (k->has_chain_id) {
        lg_hex(k->chain_id, 32, cid);
        json_object_set_new(o, "chain_id", json_string(cid));
    }
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    wipe_json_string(json_object_get(o, "secret_key"));
    wipe_json_string(json_object_get(o, "pseudonym_secret"));
    json_decref(o);
out_free_hex:
    sodium_free(ps);
    sodium_free(sk);
    return text;
}

int keyfile_generate(const char *path, const char *kind, const char *name,
                     enum member_role role, const uint8_t *chain_id,
                     struct keyfile *out, char *err, size_t err_len)
{
    struct keyfile k;
    memset(&k, 0, sizeof(k));
    if (kind == NULL || name == NULL ||
        (strcmp(kind, "member") != 0 && strcmp(kind, "replica") != 0) ||
        strlen(name) == 0 || strlen(name) >= sizeof(k.name))
        return fail(LG_EINVAL, err, err_len,
                    "A key needs kind member or replica and a name of 1 to "
                    "%d characters.",
                    GENESIS_NAME_MAX - 1);
    /* Never overwrite an existing key: losing it loses the identity. */
    if (access(path, F_OK) == 0)
        return fail(LG_EEXIST, err, err_len,
                    "The key file %s already exists; not overwriting it.",
                    path);
    snprintf(k.kind, sizeof(k.kind), "%s", kind);
    snprintf(k.name, sizeof(k.name), "%s", name);
    k.role = role;
    k.secret_key = sodium_malloc(64);
    if (k.secret_key == NULL)
        return fail(LG_ENOMEM, err, err_len, "Out of memory.");
    crypto_sign_keypair(k.public_key, k.secret_key);
    sodium_mprotect_readonly(k.secret_key);
    if (role == ROLE_SITE) {
        k.pseudonym_secret = sodium_malloc(32);
        if (k.pseudonym_secret == NULL) {
            keyfile_free(&k);
            return fail(LG_ENOMEM, err, err_len, "Out of memory.");
        }
        randombytes_buf(k.pseudonym_secret, 32);
        sodium_mprotect_readonly(k.pseudonym_secret);
        k.has_pseudonym_secret = true;
    }
    if (chain_id != NULL) {
        memcpy(k.chain_id, chain_id, 32);
        k.has_chain_id = true;
    }
    char *text = keyfile_json(&k);
    if (text == NULL) {
        keyfile_free(&k);
        return fail(LG_ENOMEM, err, err_len, "Out of memory.");
    }
    size_t tlen = strlen(text);
    int rv = lg_write_file(path, text, tlen, 0600);
    sodium_memzero(text, tlen);
    free(text);
    if (rv != LG_OK) {
        keyfile_free(&k);
        return fail(rv, err, err_len, "Cannot write the key file %s: %s.", path,
                    lg_strerror(rv));
    }
    if (out != NULL)
        *out = k;
    else
        keyfile_free(&k);
    return LG_OK;
}
