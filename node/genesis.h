/*
 * genesis.h - the consortium's genesis file (JSON) and key files.
 *
 * chain id = SHA-256 of the genesis file's exact bytes.
 *
 * genesis.json:
 * { "chain_name": "demo", "created": "2026-11-21T00:00:00Z",
 *   "consensus": { "batch_max": 256, "batch_delay_ms": 2,
 *                  "checkpoint_interval": 1, "watermark_window": 64,
 *                  "view_timeout_ms": 1000, "view_timeout_max_ms": 16000,
 *                  "clock_skew_max_ms": 5000 },
 *   "replicas": [ { "id": 0, "name": "node0", "public_key": "<hex32>",
 *                   "peer_url": "tcp://127.0.0.1:27000" }, ... ],
 *   "members":  [ { "name": "sponsor", "role": "sponsor",
 *                   "organisation": "Acme Pharma", "public_key": "<hex32>" },
 *                 ... ],
 *   "governance": { "threshold": 2, "voters": ["sponsor","ethics"] } }
 *
 * Key file (JSON, mode 0600, refused when group/other can read it):
 * { "kind": "member"|"replica", "name": "site-a", "role": "site",
 *   "public_key": "<hex32>", "secret_key": "<hex64>",
 *   "pseudonym_secret": "<hex32>" (sites only), "chain_id": "<hex32>" }
 */
#ifndef GENESIS_H
#define GENESIS_H

#include "lg.h"
#include "pbft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GENESIS_NAME_MAX 64
#define GENESIS_URL_MAX  256
#define GENESIS_MEMBERS_MAX \
    768 /* REGISTRY_MEMBERS_MAX leaves room to add more */
#define GENESIS_FILE_MAX (1u << 20)

enum member_role {
    ROLE_NONE = 0,
    ROLE_SPONSOR,
    ROLE_SITE,
    ROLE_ETHICS_BOARD,
    ROLE_AUDITOR,
};
const char *role_name(enum member_role r);
int role_parse(const char *s, enum member_role *out);

struct genesis_replica {
    uint32_t id;
    char name[GENESIS_NAME_MAX];
    uint8_t public_key[32];
    char peer_url[GENESIS_URL_MAX];
};

struct genesis_member {
    char name[GENESIS_NAME_MAX];
    char organisation[128];
    enum member_role role;
    uint8_t public_key[32];
};

struct genesis {
    uint8_t chain_id[32];
    char chain_name[GENESIS_NAME_MAX];
    uint64_t created_ms;
    uint32_t n_replicas;
    struct genesis_replica replicas[PBFT_MAX_REPLICAS];
    uint32_t n_members;
    struct genesis_member members[GENESIS_MEMBERS_MAX];
    /* consensus parameters as the file sets them (defaults otherwise) */
    uint32_t batch_max, checkpoint_interval, watermark_window;
    uint64_t batch_delay_ms, view_timeout_ms, view_timeout_max_ms,
        clock_skew_max_ms;
    uint32_t gov_threshold;
    unsigned char *raw; /* exact file bytes (malloc'd) */
    size_t raw_len;
};

/* Parses and validates (n >= 4, unique ids 0..n-1, unique names and keys,
 * known roles). On error returns LG_ECONFIG and writes a sentence naming
 * the problem into err. The struct is large: allocate it on the heap. */
int genesis_parse(const unsigned char *bytes, size_t len, struct genesis *g,
                  char *err, size_t err_len) LG_MUST_CHECK;
int genesis_load(const char *path, struct genesis *g, char *err,
                 size_t err_len) LG_MUST_CHECK;
void genesis_free(struct genesis *g); /* frees raw; accepts NULL */

const struct genesis_member *genesis_member_by_key(const struct genesis *g,
                                                   const uint8_t pk[32]);
const struct genesis_member *genesis_member_by_name(const struct genesis *g,
                                                    const char *name);
/* Fills cfg from g (n, chain id, parameters); self and crypto untouched. */
void genesis_pbft_config(const struct genesis *g, struct pbft_config *cfg);

/* A key file. secret_key lives in sodium_malloc'd memory, read-only after
 * load; keyfile_free wipes it. */
struct keyfile {
    char kind[16];
    char name[GENESIS_NAME_MAX];
    enum member_role role;
    uint8_t public_key[32];
    uint8_t *secret_key; /* 64 bytes, sodium_malloc */
    bool has_pseudonym_secret;
    uint8_t *pseudonym_secret; /* 32 bytes, sodium_malloc, or NULL */
    bool has_chain_id;
    uint8_t chain_id[32];
};
/* LG_EPERM when the file is readable by group or others (message says to
 * chmod 600), LG_ECONFIG when malformed. */
int keyfile_load(const char *path, struct keyfile *k, char *err,
                 size_t err_len) LG_MUST_CHECK;
/* Generates a new key (and a pseudonym secret when role is site) and writes
 * it with mode 0600. */
int keyfile_generate(const char *path, const char *kind, const char *name,
                     enum member_role role, const uint8_t *chain_id,
                     struct keyfile *out, char *err,
                     size_t err_len) LG_MUST_CHECK;
void keyfile_free(struct keyfile *k);

#endif /* GENESIS_H */
