/*
 * registry_int.h - shared between registry.c (execution, state records),
 * registry_rules.c (one function per transaction type) and
 * registry_query.c. Not for other modules.
 */
#ifndef REGISTRY_INT_H
#define REGISTRY_INT_H

#include "duo.h"
#include "genesis.h"
#include "govern.h"
#include "registry.h"
#include "store.h"
#include "tx.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct registry {
    const struct genesis *g;
    /* bit (1u << role) for each role a genesis governance voter holds: the
     * voting roles (see registry_gov.c) */
    uint32_t voter_roles;
    /* derived from the genesis once (read before governance state exists) */
    uint32_t genesis_voter_orgs; /* distinct organisations that vote */
    uint32_t genesis_next_slot;  /* above every genesis replica id */
};

/* ---- keys ------------------------------------------------------------------
 * A key is a fixed prefix followed by components: strings as their bytes
 * plus a NUL (ids have a closed charset without NUL, so keys sort by id and
 * no id is a prefix of another's key), integers as big-endian fixed width,
 * pseudonyms and tx ids as their 32 bytes. */
#define REG_KEY_MAX 256

struct reg_key {
    unsigned char b[REG_KEY_MAX];
    size_t n;
};

void rk_init(struct reg_key *k, const char *prefix);
void rk_str(struct reg_key *k, const char *s);
void rk_bytes(struct reg_key *k, const void *p, size_t n);
void rk_u32(struct reg_key *k, uint32_t v);
void rk_u64(struct reg_key *k, uint64_t v);

/* Where reads come from: the block's txn while executing, the committed
 * store while answering queries. */
struct reg_src {
    struct store_txn *txn;
    struct store *s;
};

/* *val malloc'd; LG_ENOTFOUND when absent. */
int reg_get(const struct reg_src *src, const struct reg_key *k,
            unsigned char **val, size_t *vlen) LG_MUST_CHECK;

/* ---- record encoding (registry.c) ------------------------------------------
 * A writer that grows a buffer and a reader that fails (bad = true) rather
 * than read past the end: records come from disk and are checked. */
struct rbuf {
    unsigned char *p;
    size_t n, cap;
    bool oom;
};

void rb_bytes(struct rbuf *b, const void *p, size_t n);
void rb_u8(struct rbuf *b, uint8_t v);
void rb_u32(struct rbuf *b, uint32_t v);
void rb_u64(struct rbuf *b, uint64_t v);
void rb_str(struct rbuf *b, const char *s);

struct rrd {
    const unsigned char *p;
    size_t n, off;
    bool bad;
};

const unsigned char *rd_take(struct rrd *r, size_t n);
uint8_t rd_u8(struct rrd *r);
uint32_t rd_u32(struct rrd *r);
uint64_t rd_u64(struct rrd *r);
void rd_fixed(struct rrd *r, void *out, size_t n);
void rd_str(struct rrd *r, char *out, size_t cap);
/* Reads a record; LG_ENOTFOUND, LG_EIO, or 0 with the reader set up (*raw
 * to be released by rec_done). */
int rec_load(const struct reg_src *src, const struct reg_key *k,
             unsigned char **raw, struct rrd *rd) LG_MUST_CHECK;
/* Frees raw; LG_ECORRUPT unless the whole value was consumed. */
int rec_done(struct rrd *rd, unsigned char *raw) LG_MUST_CHECK;
/* Writes b into the txn and frees it. */
void rec_store(struct store_txn *t, const struct reg_key *k, struct rbuf *b);

/* ---- state records --------------------------------------------------------
 */
enum {
    TRIAL_APPROVED = 1u << 0, /* some version has been approved */
    TRIAL_SUSPENDED = 1u << 1,
    TRIAL_TERMINATED = 1u << 2,
    TRIAL_HAS_CONSENT = 1u << 3, /* first_consent_height is set */
};

/* "r/t/" trial */
struct reg_trial {
    char sponsor[GENESIS_NAME_MAX];
    uint32_t flags;
    uint32_t latest_version;
    uint64_t registered_height;
    uint64_t registered_log;
    uint64_t first_consent_height;
    uint32_t n_datasets, n_grants, n_access_events, n_results, n_rejected;
    char brief_title[REGISTRY_TEXT_MAX + 1];
};

enum {
    VERSION_APPROVED = 1u << 0,
    VERSION_SUSPENDED = 1u << 1,
    VERSION_TERMINATED = 1u << 2,
};

/* "r/v/" trial version(u32) */
struct reg_version {
    uint8_t tx_id[32];
    uint32_t flags;
    uint64_t height;
    uint32_t n_outcomes;
};

/* "r/s/" trial site */
struct reg_site {
    bool authorized;
    uint64_t height; /* of the last change */
};

/* "r/c/" trial site: consent counts per state */
struct reg_counts {
    uint32_t active, withdrawn, partial;
};

enum consent_class {
    CONSENT_NONE = 0,
    CONSENT_ACTIVE = 1,    /* participation and every scope consented */
    CONSENT_PARTIAL = 2,   /* participation, some scopes since withdrawn */
    CONSENT_WITHDRAWN = 3, /* participation withdrawn: nothing in force */
};

/* "r/p/" trial pseudonym */
struct reg_consent {
    char site[GENESIS_NAME_MAX];
    uint32_t version;
    uint8_t klass; /* enum consent_class */
    uint64_t first_height, last_height;
    uint32_t n_scopes;
    char scopes[REGISTRY_SCOPES_MAX][DUO_SCOPE_MAX + 1];
};

/* "r/d/" dataset. participants points into raw (owned, free with
 * reg_dataset_release). */
struct reg_dataset {
    char trial[REGISTRY_ID_MAX + 1];
    char site[GENESIS_NAME_MAX];
    uint8_t sha256[32];
    uint64_t height;
    uint32_t n_participants;
    const uint8_t *participants; /* 32 * n */
    unsigned char *raw;
};

/* "r/g/" grant tx id */
struct reg_grant {
    char dataset[REGISTRY_ID_MAX + 1];
    char trial[REGISTRY_ID_MAX + 1];
    char grantor[GENESIS_NAME_MAX];
    char grantee[GENESIS_NAME_MAX];
    char purpose[DUO_SCOPE_MAX + 1];
    uint64_t expires_ms;
    bool revoked;
    uint64_t revoked_height;
    uint32_t n_events;
};

/* Each get returns LG_ENOTFOUND when absent and LG_ECORRUPT when the value
 * does not decode; each put writes into the txn. */
int reg_trial_get(const struct reg_src *src, const char *id,
                  struct reg_trial *out) LG_MUST_CHECK;
void reg_trial_put(struct store_txn *t, const char *id,
                   const struct reg_trial *v);
int reg_version_get(const struct reg_src *src, const char *trial,
                    uint32_t version, struct reg_version *out) LG_MUST_CHECK;
void reg_version_put(struct store_txn *t, const char *trial, uint32_t version,
                     const struct reg_version *v);
int reg_outcome_get(const struct reg_src *src, const char *trial,
                    const char *outcome, uint32_t *version) LG_MUST_CHECK;
void reg_outcome_put(struct store_txn *t, const char *trial,
                     const char *outcome, uint32_t version);
int reg_site_get(const struct reg_src *src, const char *trial, const char *site,
                 struct reg_site *out) LG_MUST_CHECK;
void reg_site_put(struct store_txn *t, const char *trial, const char *site,
                  const struct reg_site *v);
int reg_counts_get(const struct reg_src *src, const char *trial,
                   const char *site, struct reg_counts *out) LG_MUST_CHECK;
void reg_counts_put(struct store_txn *t, const char *trial, const char *site,
                    const struct reg_counts *v);
int reg_consent_get(const struct reg_src *src, const char *trial,
                    const uint8_t pseudonym[32],
                    struct reg_consent *out) LG_MUST_CHECK;
void reg_consent_put(struct store_txn *t, const char *trial,
                     const uint8_t pseudonym[32], const struct reg_consent *v);
int reg_dataset_get(const struct reg_src *src, const char *id,
                    struct reg_dataset *out) LG_MUST_CHECK;
void reg_dataset_put(struct store_txn *t, const char *id,
                     const struct reg_dataset *v);
void reg_dataset_release(struct reg_dataset *d);
int reg_grant_get(const struct reg_src *src, const uint8_t tx_id[32],
                  struct reg_grant *out) LG_MUST_CHECK;
void reg_grant_put(struct store_txn *t, const uint8_t tx_id[32],
                   const struct reg_grant *v);
int reg_u64_get(const struct reg_src *src, const struct reg_key *k,
                uint64_t *v) LG_MUST_CHECK; /* 0 when absent */
void reg_u64_put(struct store_txn *t, const struct reg_key *k, uint64_t v);

/* Appends an index entry (prefix components in k, log index appended) and
 * counts it under "r/#" + the same prefix. */
int reg_index_add(struct store_txn *t, const struct reg_key *prefix,
                  uint64_t log_index, const void *val,
                  size_t vlen) LG_MUST_CHECK;
/* The counter key of an index prefix. */
void reg_index_counter_key(const struct reg_key *prefix, struct reg_key *out);

/* ---- execution ------------------------------------------------------------
 */
struct reg_exec {
    struct registry *r;
    struct store_txn *txn;
    struct reg_src src;
    const struct tx_place *at;
    const Tc__Tx *tx;
    const struct gov_member *signer; /* NULL, or &signer_rec */
    struct gov_member signer_rec;
    struct tx_result *res;
    /* the trial the tx names, once resolved (for the "x/t/" index) */
    bool has_trial;
    char trial[REGISTRY_ID_MAX + 1];
};

/* Marks the tx rejected with a code and a sentence; returns LG_OK so rules
 * can `return reg_reject(...)`. */
int reg_reject(struct reg_exec *e, const char *code, const char *fmt, ...)
    LG_PRINTF(3, 4);
bool reg_rejected(const struct reg_exec *e);

/* Ids: 1..REGISTRY_ID_MAX bytes of [A-Za-z0-9._:-]. */
bool reg_id_valid(const char *s);
/* Personal-data detectors (exposed for tests). */
bool reg_has_email(const char *s);
bool reg_has_phone(const char *s);

/* Field checks: each rejects (and returns false) with "invalid-id",
 * "missing-field", "field-too-long", "personal-data" or "bad-hash". */
bool reg_check_id(struct reg_exec *e, const char *what, const char *s);
bool reg_check_text(struct reg_exec *e, const char *what, const char *s,
                    bool required);
bool reg_check_hash(struct reg_exec *e, const char *what,
                    const ProtobufCBinaryData *h, bool required);

/* ---- members and governance (registry_gov.c) -------------------------------
 * Members live in state once the first governance change applies; until
 * then they are read from the genesis. */

/* The member named, any status; LG_ENOTFOUND when none ever was. */
int reg_member_get(struct registry *r, const struct reg_src *src,
                   const char *name, struct gov_member *out) LG_MUST_CHECK;
/* The member that holds or held the key (key_current false and
 * key_until_height set when it was rotated away); LG_ENOTFOUND when no
 * member ever held it. */
int reg_member_by_key(struct registry *r, const struct reg_src *src,
                      const uint8_t pk[32],
                      struct gov_member *out) LG_MUST_CHECK;
/* Whether m (found by the key it signed with) may sign a new tx: true, or
 * false with a reason code and a sentence naming the member. */
bool reg_member_may_sign(const struct gov_member *m, char code[40], char *msg,
                         size_t msg_len);
/* Members ever (a bound for lists of member names). */
int reg_members_count(struct registry *r, const struct reg_src *src,
                      uint32_t *n) LG_MUST_CHECK;
/* Parses the genesis voters' roles into r->voter_roles and derives the
 * genesis_ fields. */
int reg_gov_init(struct registry *r) LG_MUST_CHECK;

/* Per-type rules (registry_rules.c). Each checks everything before it
 * writes anything, so a refusal leaves the state untouched. Return LG_OK or
 * a storage error; the verdict is in e->res. */
int rule_protocol_register(struct reg_exec *e) LG_MUST_CHECK;
int rule_protocol_amend(struct reg_exec *e) LG_MUST_CHECK;
int rule_ethics(struct reg_exec *e) LG_MUST_CHECK;
int rule_site_authorize(struct reg_exec *e) LG_MUST_CHECK;
int rule_consent(struct reg_exec *e) LG_MUST_CHECK;
int rule_dataset_register(struct reg_exec *e) LG_MUST_CHECK;
int rule_access_grant(struct reg_exec *e) LG_MUST_CHECK;
int rule_access_revoke(struct reg_exec *e) LG_MUST_CHECK;
int rule_access_event(struct reg_exec *e) LG_MUST_CHECK;
int rule_results_register(struct reg_exec *e) LG_MUST_CHECK;
int rule_attestation(struct reg_exec *e) LG_MUST_CHECK;
int rule_governance_proposal(struct reg_exec *e) LG_MUST_CHECK;
int rule_governance_approval(struct reg_exec *e) LG_MUST_CHECK;

#endif /* REGISTRY_INT_H */
