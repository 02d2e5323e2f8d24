/*
 * registry.c - executing one committed transaction against the registry
 * state: decoding, the checks every transaction passes (signer, nonce,
 * clock), dispatch to the per-type rules (registry_rules.c), the query
 * indexes, and the encoding of state records.
 *
 * Order of checks, each refusal a rejected result with a reason code:
 *   malformed-tx        the bytes are not a SignedTx/Tx with an action
 *   wrong-chain         the tx carries another consortium's chain id
 *   unknown-signer      the signer key is no member's (genesis or added)
 *   key-rotated, member-removed, member-suspended
 *                       the member may not sign now (registry_gov.c); the
 *                       nonce is not recorded
 *   replayed-nonce      nonce <= the signer's last recorded nonce (nonces
 *                       start at 1)
 *   clock-out-of-bounds client_time_ms differs from block time by more
 *                       than REGISTRY_CLOCK_BOUND_MS (back-dated or
 *                       future-dated: kept as evidence)
 *   then the type's rules.
 * A fresh nonce is recorded even when the clock check or a rule then
 * refuses the tx: the refused tx is in the ledger, and recording its nonce
 * stops the same signed bytes from being replayed later, when the rule
 * might pass (a consent refused before approval must not become valid
 * by resubmission after it).
 *
 * State ("r/"), values in our own fixed binary layout (big-endian):
 *   r/n/<member>\0             last nonce
 *   r/t/<trial>\0              trial record (sponsor, status flags, latest
 *                              version, counters, title)
 *   r/v/<trial>\0<u32 ver>     version: tx id (its hash), approval flags
 *   r/o/<trial>\0<outcome>\0   outcome id -> first version that listed it
 *   r/s/<trial>\0<site>\0      site authorization
 *   r/c/<trial>\0<site>\0      consent counts (active, withdrawn, partial)
 *   r/p/<trial>\0<pseud32>     consent state of one pseudonym
 *   r/d/<dataset>\0            dataset (trial, site, hash, participants)
 *   r/g/<grant tx id 32>       access grant
 *   r/#<index prefix>          number of entries under an index prefix
 *   r/G/...                    members, keys, replica set, proposals
 *                              (registry_gov.c)
 * Indexes ("x/"), keyed so a prefix scan returns ledger order:
 *   x/t/<trial>\0<u64 log>           every tx naming the trial
 *   x/p/<trial>\0<pseud32><u64 log>  consent txs of a pseudonym
 *   x/m/<member>\0<u64 log>          txs signed by a member
 *   x/T/<u64 log>                    trial registrations (value: trial id)
 *   x/G/<u64 log>                    governance proposals (value: its id)
 * Index values are one byte, the tx status (x/T: the trial id).
 */
#include "registry.h"

#include "registry_int.h"
#include "tx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- keys -----------------------------------------------------------------
 */

void rk_init(struct reg_key *k, const char *prefix)
{
    k->n = 0;
    rk_bytes(k, prefix, strlen(prefix));
}

void rk_bytes(struct reg_key *k, const void *p, size_t n)
{
    /* Components are validated ids and fixed-size fields: overflow is a
     * programmer error. */
    LG_ASSERT(n <= REG_KEY_MAX - k->n);
    memcpy(k->b + k->n, p, n);
    k->n += n;
}

void rk_str(struct reg_key *k, const char *s)
{
    rk_bytes(k, s, strlen(s) + 1);
}

void rk_u32(struct reg_key *k, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    rk_bytes(k, b, sizeof(b));
}

void rk_u64(struct reg_key *k, uint64_t v)
{
    unsigned char b[8];
    store_put_be64(b, v);
    rk_bytes(k, b, sizeof(b));
}

int reg_get(const struct reg_src *src, const struct reg_key *k,
            unsigned char **val, size_t *vlen)
{
    if (src->txn != NULL)
        return store_txn_get(src->txn, k->b, k->n, val, vlen);
    return store_get(src->s, k->b, k->n, val, vlen);
}

/* ---- record encoding (the contract is in registry_int.h) -------------------
 */

void rb_bytes(struct rbuf *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap * 2 + n + 64;
        unsigned char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

void rb_u8(struct rbuf *b, uint8_t v)
{
    rb_bytes(b, &v, 1);
}

void rb_u32(struct rbuf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    rb_bytes(b, x, 4);
}

void rb_u64(struct rbuf *b, uint64_t v)
{
    unsigned char x[8];
    store_put_be64(x, v);
    rb_bytes(b, x, 8);
}

void rb_str(struct rbuf *b, const char *s)
{
    size_t n = strlen(s);
    LG_ASSERT(n <= 0xffff);
    unsigned char x[2] = {(unsigned char)(n >> 8), (unsigned char)n};
    rb_bytes(b, x, 2);
    rb_bytes(b, s, n);
}

const unsigned char *rd_take(struct rrd *r, size_t n)
{
    if (r->bad || n > r->n - r->off) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t rd_u8(struct rrd *r)
{
    const unsigned char *p = rd_take(r, 1);
    return p != NULL ? p[0] : 0;
}

uint32_t rd_u32(struct rrd *r)
{
    const unsigned char *p = rd_take(r, 4);
    if (p == NULL)
        return 0;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

uint64_t rd_u64(struct rrd *r)
{
    const unsigned char *p = rd_take(r, 8);
    return p != NULL ? store_get_be64(p) : 0;
}

void rd_fixed(struct rrd *r, void *out, size_t n)
{
    const unsigned char *p = rd_take(r, n);
    if (p != NULL)
        memcpy(out, p, n);
}

/* A length-prefixed string into out[cap]; too long for out is corrupt. */
void rd_str(struct rrd *r, char *out, size_t cap)
{
    const unsigned char *h = rd_take(r, 2);
    size_t n = h != NULL ? ((size_t)h[0] << 8 | h[1]) : 0;
    if (n >= cap)
        r->bad = true;
    const unsigned char *p = rd_take(r, n);
    if (p == NULL) {
        out[0] = '\0';
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

/* Reads a record; LG_ENOTFOUND, LG_EIO, or 0 with the reader set up. */
int rec_load(const struct reg_src *src, const struct reg_key *k,
             unsigned char **raw, struct rrd *rd)
{
    size_t n = 0;
    int rv = reg_get(src, k, raw, &n);
    if (rv != LG_OK)
        return rv;
    rd->p = *raw;
    rd->n = n;
    rd->off = 0;
    rd->bad = false;
    return LG_OK;
}

/* The whole value must be consumed: trailing bytes are corruption too. */
int rec_done(struct rrd *rd, unsigned char *raw)
{
    bool bad = rd->bad || rd->off != rd->n;
    free(raw);
    return bad ? LG_ECORRUPT : LG_OK;
}

void rec_store(struct store_txn *t, const struct reg_key *k, struct rbuf *b)
{
    /* Out of memory while building a record cannot be reported as a
     * verdict and must not produce divergent state: stop. */
    LG_ASSERT(!b->oom);
    store_txn_put(t, k->b, k->n, b->p, b->n);
    free(b->p);
}

/* ---- records --------------------------------------------------------------
 */

static void key_trial(struct reg_key *k, const char *prefix, const char *id)
{
    rk_init(k, prefix);
    rk_str(k, id);
}

int reg_trial_get(const struct reg_src *src, const char *id,
                  struct reg_trial *out)
{
    struct reg_key k;
    key_trial(&k, "r/t/", id);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    rd_str(&rd, out->sponsor, sizeof(out->sponsor));
    out->flags = rd_u32(&rd);
    out->latest_version = rd_u32(&rd);
    out->registered_height = rd_u64(&rd);
    out->registered_log = rd_u64(&rd);
    out->first_consent_height = rd_u64(&rd);
    out->n_datasets = rd_u32(&rd);
    out->n_grants = rd_u32(&rd);
    out->n_access_events = rd_u32(&rd);
    out->n_results = rd_u32(&rd);
    out->n_rejected = rd_u32(&rd);
    rd_str(&rd, out->brief_title, sizeof(out->brief_title));
    return rec_done(&rd, raw);
}

void reg_trial_put(struct store_txn *t, const char *id,
                   const struct reg_trial *v)
{
    struct reg_key k;
    key_trial(&k, "r/t/", id);
    struct rbuf b = {0};
    rb_str(&b, v->sponsor);
    rb_u32(&b, v->flags);
    rb_u32(&b, v->latest_version);
    rb_u64(&b, v->registered_height);
    rb_u64(&b, v->registered_log);
    rb_u64(&b, v->first_consent_height);
    rb_u32(&b, v->n_datasets);
    rb_u32(&b, v->n_grants);
    rb_u32(&b, v->n_access_events);
    rb_u32(&b, v->n_results);
    rb_u32(&b, v->n_rejected);
    rb_str(&b, v->brief_title);
    rec_store(t, &k, &b);
}

static void key_version(struct reg_key *k, const char *trial, uint32_t ver)
{
    key_trial(k, "r/v/", trial);
    rk_u32(k, ver);
}

int reg_version_get(const struct reg_src *src, const char *trial,
                    uint32_t version, struct reg_version *out)
{
    struct reg_key k;
    key_version(&k, trial, version);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    rd_fixed(&rd, out->tx_id, 32);
    out->flags = rd_u32(&rd);
    out->height = rd_u64(&rd);
    out->n_outcomes = rd_u32(&rd);
    return rec_done(&rd, raw);
}

void reg_version_put(struct store_txn *t, const char *trial, uint32_t version,
                     const struct reg_version *v)
{
    struct reg_key k;
    key_version(&k, trial, version);
    struct rbuf b = {0};
    rb_bytes(&b, v->tx_id, 32);
    rb_u32(&b, v->flags);
    rb_u64(&b, v->height);
    rb_u32(&b, v->n_outcomes);
    rec_store(t, &k, &b);
}

static void key_pair(struct reg_key *k, const char *prefix, const char *a,
                     const char *b)
{
    key_trial(k, prefix, a);
    rk_str(k, b);
}

int reg_outcome_get(const struct reg_src *src, const char *trial,
                    const char *outcome, uint32_t *version)
{
    struct reg_key k;
    key_pair(&k, "r/o/", trial, outcome);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    *version = rd_u32(&rd);
    return rec_done(&rd, raw);
}

void reg_outcome_put(struct store_txn *t, const char *trial,
                     const char *outcome, uint32_t version)
{
    struct reg_key k;
    key_pair(&k, "r/o/", trial, outcome);
    struct rbuf b = {0};
    rb_u32(&b, version);
    rec_store(t, &k, &b);
}

int reg_site_get(const struct reg_src *src, const char *trial, const char *site,
                 struct reg_site *out)
{
    struct reg_key k;
    key_pair(&k, "r/s/", trial, site);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    out->authorized = rd_u8(&rd) != 0;
    out->height = rd_u64(&rd);
    return rec_done(&rd, raw);
}

void reg_site_put(struct store_txn *t, const char *trial, const char *site,
                  const struct reg_site *v)
{
    struct reg_key k;
    key_pair(&k, "r/s/", trial, site);
    struct rbuf b = {0};
    rb_u8(&b, v->authorized ? 1 : 0);
    rb_u64(&b, v->height);
    rec_store(t, &k, &b);
}

int reg_counts_get(const struct reg_src *src, const char *trial,
                   const char *site, struct reg_counts *out)
{
    struct reg_key k;
    key_pair(&k, "r/c/", trial, site);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    out->active = rd_u32(&rd);
    out->withdrawn = rd_u32(&rd);
    out->partial = rd_u32(&rd);
    return rec_done(&rd, raw);
}

void reg_counts_put(struct store_txn *t, const char *trial, const char *site,
                    const struct reg_counts *v)
{
    struct reg_key k;
    key_pair(&k, "r/c/", trial, site);
    struct rbuf b = {0};
    rb_u32(&b, v->active);
    rb_u32(&b, v->withdrawn);
    rb_u32(&b, v->partial);
    rec_store(t, &k, &b);
}

static void key_consent(struct reg_key *k, const char *trial,
                        const uint8_t pseudonym[32])
{
    key_trial(k, "r/p/", trial);
    rk_bytes(k, pseudonym, 32);
}

int reg_consent_get(const struct reg_src *src, const char *trial,
                    const uint8_t pseudonym[32], struct reg_consent *out)
{
    struct reg_key k;
    key_consent(&k, trial, pseudonym);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    rd_str(&rd, out->site, sizeof(out->site));
    out->version = rd_u32(&rd);
    out->klass = rd_u8(&rd);
    if (out->klass > CONSENT_WITHDRAWN)
        rd.bad = true;
    out->first_height = rd_u64(&rd);
    out->last_height = rd_u64(&rd);
    out->n_scopes = rd_u32(&rd);
    if (out->n_scopes > REGISTRY_SCOPES_MAX) {
        rd.bad = true;
        out->n_scopes = 0;
    }
    for (uint32_t i = 0; i < out->n_scopes; i++)
        rd_str(&rd, out->scopes[i], sizeof(out->scopes[i]));
    return rec_done(&rd, raw);
}

void reg_consent_put(struct store_txn *t, const char *trial,
                     const uint8_t pseudonym[32], const struct reg_consent *v)
{
    struct reg_key k;
    key_consent(&k, trial, pseudonym);
    struct rbuf b = {0};
    rb_str(&b, v->site);
    rb_u32(&b, v->version);
    rb_u8(&b, v->klass);
    rb_u64(&b, v->first_height);
    rb_u64(&b, v->last_height);
    LG_ASSERT(v->n_scopes <= REGISTRY_SCOPES_MAX);
    rb_u32(&b, v->n_scopes);
    for (uint32_t i = 0; i < v->n_scopes; i++)
        rb_str(&b, v->scopes[i]);
    rec_store(t, &k, &b);
}

int reg_dataset_get(const struct reg_src *src, const char *id,
                    struct reg_dataset *out)
{
    struct reg_key k;
    key_trial(&k, "r/d/", id);
    unsigned char *raw = NULL;
    struct rrd rd;
    memset(out, 0, sizeof(*out));
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    rd_str(&rd, out->trial, sizeof(out->trial));
    rd_str(&rd, out->site, sizeof(out->site));
    rd_fixed(&rd, out->sha256, 32);
    out->height = rd_u64(&rd);
    out->n_participants = rd_u32(&rd);
    if (out->n_participants > REGISTRY_PARTICIPANTS_MAX)
        rd.bad = true;
    out->participants =
        rd.bad ? NULL : rd_take(&rd, (size_t)out->n_participants * 32);
    if (rd.bad || rd.off != rd.n) {
        free(raw);
        memset(out, 0, sizeof(*out));
        return LG_ECORRUPT;
    }
    out->raw = raw; /* participants point into it */
    return LG_OK;
}

void reg_dataset_put(struct store_txn *t, const char *id,
                     const struct reg_dataset *v)
{
    struct reg_key k;
    key_trial(&k, "r/d/", id);
    struct rbuf b = {0};
    rb_str(&b, v->trial);
    rb_str(&b, v->site);
    rb_bytes(&b, v->sha256, 32);
    rb_u64(&b, v->height);
    rb_u32(&b, v->n_participants);
    rb_bytes(&b, v->participants, (size_t)v->n_participants * 32);
    rec_store(t, &k, &b);
}

void reg_dataset_release(struct reg_dataset *d)
{
    if (d == NULL)
        return;
    free(d->raw);
    d->raw = NULL;
    d->participants = NULL;
}

static void key_grant(struct reg_key *k, const uint8_t tx_id[32])
{
    rk_init(k, "r/g/");
    rk_bytes(k, tx_id, 32);
}

int reg_grant_get(const struct reg_src *src, const uint8_t tx_id[32],
                  struct reg_grant *out)
{
    struct reg_key k;
    key_grant(&k, tx_id);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    rd_str(&rd, out->dataset, sizeof(out->dataset));
    rd_str(&rd, out->trial, sizeof(out->trial));
    rd_str(&rd, out->grantor, sizeof(out->grantor));
    rd_str(&rd, out->grantee, sizeof(out->grantee));
    rd_str(&rd, out->purpose, sizeof(out->purpose));
    out->expires_ms = rd_u64(&rd);
    out->revoked = rd_u8(&rd) != 0;
    out->revoked_height = rd_u64(&rd);
    out->n_events = rd_u32(&rd);
    return rec_done(&rd, raw);
}

void reg_grant_put(struct store_txn *t, const uint8_t tx_id[32],
                   const struct reg_grant *v)
{
    struct reg_key k;
    key_grant(&k, tx_id);
    struct rbuf b = {0};
    rb_str(&b, v->dataset);
    rb_str(&b, v->trial);
    rb_str(&b, v->grantor);
    rb_str(&b, v->grantee);
    rb_str(&b, v->purpose);
    rb_u64(&b, v->expires_ms);
    rb_u8(&b, v->revoked ? 1 : 0);
    rb_u64(&b, v->revoked_height);
    rb_u32(&b, v->n_events);
    rec_store(t, &k, &b);
}

int reg_u64_get(const struct reg_src *src, const struct reg_key *k, uint64_t *v)
{
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, k, &raw, &rd);
    if (rv == LG_ENOTFOUND) {
        *v = 0;
        return LG_OK;
    }
    if (rv != LG_OK)
        return rv;
    *v = rd_u64(&rd);
    return rec_done(&rd, raw);
}

void reg_u64_put(struct store_txn *t, const struct reg_key *k, uint64_t v)
{
    unsigned char b[8];
    store_put_be64(b, v);
    store_txn_put(t, k->b, k->n, b, sizeof(b));
}

void reg_index_counter_key(const struct reg_key *prefix, struct reg_key *out)
{
    rk_init(out, "r/#");
    rk_bytes(out, prefix->b, prefix->n);
}

int reg_index_add(struct store_txn *t, const struct reg_key *prefix,
                  uint64_t log_index, const void *val, size_t vlen)
{
    struct reg_key k = *prefix;
    rk_u64(&k, log_index);
    store_txn_put(t, k.b, k.n, val, vlen);

    struct reg_key ck;
    reg_index_counter_key(prefix, &ck);
    struct reg_src src = {.txn = t, .s = NULL};
    uint64_t count = 0;
    int rv = reg_u64_get(&src, &ck, &count);
    if (rv != LG_OK)
        return rv;
    reg_u64_put(t, &ck, count + 1);
    return LG_OK;
}

/* ---- checks shared by the rules -------------------------------------------
 */

int reg_reject(struct reg_exec *e, const char *code, const char *fmt, ...)
{
    e->res->status = TXS_REJECTED;
    snprintf(e->res->code, sizeof(e->res->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->res->message, sizeof(e->res->message), fmt, ap);
    va_end(ap);
    return LG_OK;
}

bool reg_rejected(const struct reg_exec *e)
{
    return e->res->status == TXS_REJECTED;
}

bool reg_id_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > REGISTRY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* local@domain.tld: a local-part character before '@', and after it a
 * domain of letters, digits, '-' and '.' holding a dot followed by at
 * least two letters. */
bool reg_has_email(const char *s)
{
    for (const char *at = strchr(s, '@'); at != NULL;
         at = strchr(at + 1, '@')) {
        if (at == s)
            continue;
        char before = at[-1];
        if (!is_alnum(before) && strchr("._%+-", before) == NULL)
            continue;
        const char *p = at + 1;
        bool dot_tld = false;
        size_t tld_letters = 0;
        bool after_dot = false;
        while (is_alnum(*p) || *p == '-' || *p == '.') {
            if (*p == '.') {
                after_dot = true;
                tld_letters = 0;
            } else if (after_dot &&
                       ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
                tld_letters++;
                if (tld_letters >= 2)
                    dot_tld = true;
            } else {
                after_dot = false;
                tld_letters = 0;
            }
            p++;
        }
        if (dot_tld)
            return true;
    }
    return false;
}

/* A telephone number: a run of digits joined by single separators (space,
 * '-', '.', '(', ')'), optionally after '+', holding at least 9 digits in
 * at most 5 groups (7 after a '+'). The group bound keeps lists of numbers
 * ("weeks 0 4 8 12 16 24 36 52") and date ranges ("2014-08-01 2015-09-30")
 * out; no letters or other punctuation may join a run. */
bool reg_has_phone(const char *s)
{
    size_t i = 0, n = strlen(s);
    while (i < n) {
        if (!is_digit(s[i]) && s[i] != '+' && s[i] != '(') {
            i++;
            continue;
        }
        bool in_word = i > 0 && is_alnum(s[i - 1]);
        bool decimal = i > 1 && s[i - 1] == '.' && is_digit(s[i - 2]);
        if (in_word || decimal) {
            i++;
            continue;
        }
        bool plus = s[i] == '+';
        size_t j = i + (plus ? 1 : 0);
        size_t digits = 0, groups = 0, seps = 0;
        size_t pend_dots = 0, pend_other = 0, joins_dot = 0, joins_other = 0;
        bool in_group = false;
        while (j < n) {
            char c = s[j];
            if (is_digit(c)) {
                digits++;
                if (!in_group && ++groups > 1) {
                    joins_dot += pend_dots;
                    joins_other += pend_other;
                }
                in_group = true;
                seps = pend_dots = pend_other = 0;
            } else if (c == ' ' || c == '-' || c == '.' || c == '(' ||
                       c == ')') {
                in_group = false;
                if (++seps > 2) /* ") " and " (" are fine, more ends it */
                    break;
                if (c == '.')
                    pend_dots++;
                else
                    pend_other++;
            } else {
                break;
            }
            j++;
        }
        /* one dot between two groups is a decimal number, not 555.123.4567 */
        bool decimal_number = joins_dot == 1 && joins_other == 0;
        bool word_after = j < n && is_alnum(s[j]) && !is_digit(s[j]);
        size_t max_groups = plus ? 7 : 5;
        if (digits >= 9 && groups <= max_groups && !word_after &&
            !decimal_number)
            return true;
        i = j > i ? j : i + 1;
    }
    return false;
}

bool reg_check_id(struct reg_exec *e, const char *what, const char *s)
{
    if (reg_id_valid(s))
        return true;
    reg_reject(e, "invalid-id",
               "The %s must be 1 to %d characters of letters, digits, '.', "
               "'_', ':' or '-'.",
               what, REGISTRY_ID_MAX);
    return false;
}

bool reg_check_text(struct reg_exec *e, const char *what, const char *s,
                    bool required)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0) {
        if (required)
            reg_reject(e, "missing-field", "The %s is required.", what);
        return !required;
    }
    if (n > REGISTRY_TEXT_MAX) {
        reg_reject(e, "field-too-long", "The %s is %zu bytes; the limit is %d.",
                   what, n, REGISTRY_TEXT_MAX);
        return false;
    }
    if (reg_has_email(s) || reg_has_phone(s)) {
        reg_reject(e, "personal-data",
                   "The %s contains what looks like an e-mail address or "
                   "a telephone number; personal data never goes on the "
                   "ledger.",
                   what);
        return false;
    }
    return true;
}

bool reg_check_hash(struct reg_exec *e, const char *what,
                    const ProtobufCBinaryData *h, bool required)
{
    if (h->len == 32 || (h->len == 0 && !required))
        return true;
    reg_reject(e, "bad-hash",
               "The %s must be a 32-byte SHA-256 (got %zu bytes).", what,
               h->len);
    return false;
}

/* ---- lifecycle ------------------------------------------------------------
 */

int registry_new(const struct genesis *g, struct registry **out)
{
    if (g == NULL || out == NULL)
        return LG_EINVAL;
    struct registry *r = malloc(sizeof(*r));
    if (r == NULL)
        return LG_ENOMEM;
    r->g = g;
    int rv = reg_gov_init(r);
    if (rv != LG_OK) {
        free(r);
        return rv;
    }
    *out = r;
    return LG_OK;
}

void registry_free(struct registry *r)
{
    free(r);
}

/* ---- execution ------------------------------------------------------------
 */

/* Decodes without checking the signature again: the core's
 * verify_request (txcheck_request_valid) checked it before the tx could be
 * ordered, and a second Ed25519 verify would double the dominant cost of
 * the system. The structural checks mirror tx_open's. */
static int exec_decode(const uint8_t *bytes, size_t len, Tc__SignedTx **st,
                       Tc__Tx **tx)
{
    *st = NULL;
    *tx = NULL;
    if (bytes == NULL || len == 0 || len > TX_BYTES_MAX)
        return LG_EBADMSG;
    *st = tc__signed_tx__unpack(NULL, len, bytes);
    if (*st == NULL)
        return LG_EBADMSG;
    if ((*st)->body.len == 0 || (*st)->sig.len != 64)
        return LG_EBADMSG;
    *tx = tc__tx__unpack(NULL, (*st)->body.len, (*st)->body.data);
    if (*tx == NULL)
        return LG_EBADMSG;
    if ((*tx)->signer.len != 32 || (*tx)->chain_id.len != 32 ||
        (*tx)->body_case == TC__TX__BODY__NOT_SET)
        return LG_EBADMSG;
    return LG_OK;
}

static void exec_name_trial(struct reg_exec *e, const char *id)
{
    if (!reg_id_valid(id))
        return;
    e->has_trial = true;
    snprintf(e->trial, sizeof(e->trial), "%s", id);
}

/* The trial a tx names, for the index, before any rule runs: refused
 * attempts are indexed under the trial they aimed at. Grants, revocations
 * and access events name it through their dataset or grant. */
static int exec_resolve_trial(struct reg_exec *e)
{
    const Tc__Tx *tx = e->tx;
    const ProtobufCBinaryData *grant_ref = NULL;
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        exec_name_trial(e, tx->protocol_register->trial_id);
        return LG_OK;
    case TC__TX__BODY_PROTOCOL_AMEND:
        exec_name_trial(e, tx->protocol_amend->trial_id);
        return LG_OK;
    case TC__TX__BODY_ETHICS:
        exec_name_trial(e, tx->ethics->trial_id);
        return LG_OK;
    case TC__TX__BODY_SITE_AUTHORIZE:
        exec_name_trial(e, tx->site_authorize->trial_id);
        return LG_OK;
    case TC__TX__BODY_CONSENT:
        exec_name_trial(e, tx->consent->trial_id);
        return LG_OK;
    case TC__TX__BODY_DATASET_REGISTER:
        exec_name_trial(e, tx->dataset_register->trial_id);
        return LG_OK;
    case TC__TX__BODY_RESULTS_REGISTER:
        exec_name_trial(e, tx->results_register->trial_id);
        return LG_OK;
    case TC__TX__BODY_ATTESTATION:
        exec_name_trial(e, tx->attestation->trial_id);
        return LG_OK;
    case TC__TX__BODY_ACCESS_GRANT: {
        if (!reg_id_valid(tx->access_grant->dataset_id))
            return LG_OK;
        struct reg_dataset d;
        int rv = reg_dataset_get(&e->src, tx->access_grant->dataset_id, &d);
        if (rv == LG_ENOTFOUND)
            return LG_OK;
        if (rv != LG_OK)
            return rv;
        exec_name_trial(e, d.trial);
        reg_dataset_release(&d);
        return LG_OK;
    }
    case TC__TX__BODY_ACCESS_REVOKE:
        grant_ref = &tx->access_revoke->grant_tx;
        break;
    case TC__TX__BODY_ACCESS_EVENT:
        grant_ref = &tx->access_event->grant_tx;
        break;
    default:
        return LG_OK;
    }
    if (grant_ref->len != 32)
        return LG_OK;
    struct reg_grant gr;
    int rv = reg_grant_get(&e->src, grant_ref->data, &gr);
    if (rv == LG_ENOTFOUND)
        return LG_OK;
    if (rv != LG_OK)
        return rv;
    exec_name_trial(e, gr.trial);
    return LG_OK;
}

static int exec_rules(struct reg_exec *e)
{
    switch (e->tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        return rule_protocol_register(e);
    case TC__TX__BODY_PROTOCOL_AMEND:
        return rule_protocol_amend(e);
    case TC__TX__BODY_ETHICS:
        return rule_ethics(e);
    case TC__TX__BODY_SITE_AUTHORIZE:
        return rule_site_authorize(e);
    case TC__TX__BODY_CONSENT:
        return rule_consent(e);
    case TC__TX__BODY_DATASET_REGISTER:
        return rule_dataset_register(e);
    case TC__TX__BODY_ACCESS_GRANT:
        return rule_access_grant(e);
    case TC__TX__BODY_ACCESS_REVOKE:
        return rule_access_revoke(e);
    case TC__TX__BODY_ACCESS_EVENT:
        return rule_access_event(e);
    case TC__TX__BODY_RESULTS_REGISTER:
        return rule_results_register(e);
    case TC__TX__BODY_ATTESTATION:
        return rule_attestation(e);
    case TC__TX__BODY_GOVERNANCE_PROPOSAL:
        return rule_governance_proposal(e);
    case TC__TX__BODY_GOVERNANCE_APPROVAL:
        return rule_governance_approval(e);
    default:
        return reg_reject(e, "malformed-tx",
                          "The transaction carries an unknown action.");
    }
}

/* Signer, nonce and clock, then the rules. */
static int exec_checks(struct reg_exec *e)
{
    const Tc__Tx *tx = e->tx;
    if (e->signer == NULL)
        return reg_reject(e, "unknown-signer",
                          "The signing key belongs to no member of this "
                          "consortium.");
    char msg[sizeof(e->res->message)];
    char code[sizeof(e->res->code)];
    if (!reg_member_may_sign(e->signer, code, msg, sizeof(msg)))
        return reg_reject(e, code, "%s", msg);
    struct reg_key nk;
    rk_init(&nk, "r/n/");
    rk_str(&nk, e->signer->name);
    uint64_t last = 0;
    int rv = reg_u64_get(&e->src, &nk, &last);
    if (rv != LG_OK)
        return rv;
    if (tx->nonce <= last)
        return reg_reject(e, "replayed-nonce",
                          "Nonce %llu is not above %s's last nonce %llu: a "
                          "replay or an out-of-order transaction.",
                          (unsigned long long)tx->nonce, e->signer->name,
                          (unsigned long long)last);
    reg_u64_put(e->txn, &nk, tx->nonce);

    uint64_t bt = e->at->block_time_ms;
    uint64_t ct = tx->client_time_ms;
    uint64_t skew = ct > bt ? ct - bt : bt - ct;
    if (skew > REGISTRY_CLOCK_BOUND_MS)
        return reg_reject(e, "clock-out-of-bounds",
                          "The transaction's time is %llu s %s the block's; "
                          "the bound is %u s.",
                          (unsigned long long)(skew / 1000),
                          ct > bt ? "after" : "before",
                          REGISTRY_CLOCK_BOUND_MS / 1000);
    return exec_rules(e);
}

/* Index entries for the tx, and the rejected count of the trial it named. */
static int exec_index(struct reg_exec *e)
{
    uint8_t status = (uint8_t)e->res->status;
    struct reg_key k;
    int rv;
    if (e->has_trial) {
        key_trial(&k, "x/t/", e->trial);
        rv = reg_index_add(e->txn, &k, e->at->log_index, &status, 1);
        if (rv != LG_OK)
            return rv;
    }
    if (e->has_trial && e->tx->body_case == TC__TX__BODY_CONSENT &&
        e->tx->consent->pseudonym.len == 32) {
        key_trial(&k, "x/p/", e->trial);
        rk_bytes(&k, e->tx->consent->pseudonym.data, 32);
        rv = reg_index_add(e->txn, &k, e->at->log_index, &status, 1);
        if (rv != LG_OK)
            return rv;
    }
    if (e->signer != NULL) {
        key_trial(&k, "x/m/", e->signer->name);
        rv = reg_index_add(e->txn, &k, e->at->log_index, &status, 1);
        if (rv != LG_OK)
            return rv;
    }
    if (!e->has_trial || !reg_rejected(e))
        return LG_OK;
    struct reg_trial t;
    rv = reg_trial_get(&e->src, e->trial, &t);
    if (rv == LG_ENOTFOUND)
        return LG_OK;
    if (rv != LG_OK)
        return rv;
    t.n_rejected++;
    reg_trial_put(e->txn, e->trial, &t);
    return LG_OK;
}

int registry_execute(struct registry *r, struct store_txn *txn,
                     const struct tx_place *at, const uint8_t *signed_tx,
                     size_t len, struct tx_result *res)
{
    if (r == NULL || txn == NULL || at == NULL || res == NULL)
        return LG_EINVAL;
    memset(res, 0, sizeof(*res));
    res->status = TXS_ACCEPTED;
    struct reg_exec e = {.r = r, .txn = txn, .at = at, .res = res};
    e.src.txn = txn;

    Tc__SignedTx *st = NULL;
    Tc__Tx *tx = NULL;
    int rv = LG_OK;
    if (exec_decode(signed_tx, len, &st, &tx) != LG_OK) {
        reg_reject(&e, "malformed-tx",
                   "The transaction does not decode as a signed registry "
                   "transaction with an action.");
        goto out_free;
    }
    e.tx = tx;
    if (memcmp(tx->chain_id.data, r->g->chain_id, 32) != 0) {
        reg_reject(&e, "wrong-chain",
                   "The transaction was made for another consortium.");
        goto out_free;
    }
    rv = reg_member_by_key(r, &e.src, tx->signer.data, &e.signer_rec);
    if (rv == LG_OK)
        e.signer = &e.signer_rec;
    else if (rv == LG_ENOTFOUND)
        rv = LG_OK;
    if (rv == LG_OK)
        rv = exec_resolve_trial(&e);
    if (rv == LG_OK)
        rv = exec_checks(&e);
    if (rv == LG_OK)
        rv = exec_index(&e);
out_free:
    if (tx != NULL)
        tc__tx__free_unpacked(tx, NULL);
    if (st != NULL)
        tc__signed_tx__free_unpacked(st, NULL);
    return rv;
}
