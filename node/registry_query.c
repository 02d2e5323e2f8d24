/*
 * registry_query.c - answers from the committed registry state: a trial's
 * summary from its counters (no rescan, so a trial with 10,000 consents
 * answers as fast as one with ten) and pages of the "x/" indexes.
 */
#include "registry_int.h"

#include <string.h>

/* One page of an index: log indexes (the 8 bytes after the prefix) from
 * position offset, at most limit; *total from the index's counter. */
static int index_page(struct store *s, const struct reg_key *prefix,
                      uint64_t offset, size_t limit, uint64_t *log_indexes,
                      size_t *n, uint64_t *total)
{
    *n = 0;
    struct reg_key ck;
    reg_index_counter_key(prefix, &ck);
    struct reg_src src = {.txn = NULL, .s = s};
    int rv = reg_u64_get(&src, &ck, total);
    if (rv != LG_OK || offset >= *total || limit == 0)
        return rv;
    const unsigned char *k, *v;
    size_t kl, vl;
    if (offset > *total / 2) {
        /* Nearer the end (a trial's latest entries): walk back from the
         * last key, so the cost follows total - offset, not offset. */
        uint64_t end = offset + limit < *total ? offset + limit : *total;
        size_t want = (size_t)(end - offset);
        struct store_iter *rit =
            store_iter_new_reverse(s, prefix->b, prefix->n);
        if (rit == NULL)
            return LG_ENOMEM;
        uint64_t pos = *total;
        while (pos > offset && store_iter_next(rit, &k, &kl, &v, &vl)) {
            if (kl != prefix->n + 8)
                continue;
            pos--;
            if (pos < end)
                log_indexes[pos - offset] = store_get_be64(k + prefix->n);
        }
        store_iter_free(rit);
        /* A counter ahead of the index (never, unless the store is
         * damaged) would leave a hole at the front: report none. */
        *n = pos == offset ? want : 0;
        return LG_OK;
    }
    struct store_iter *it = store_iter_new(s, prefix->b, prefix->n, NULL, 0);
    if (it == NULL)
        return LG_ENOMEM;
    uint64_t pos = 0;
    while (*n < limit && store_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl != prefix->n + 8)
            continue; /* not an entry of this exact prefix */
        if (pos++ < offset)
            continue;
        log_indexes[(*n)++] = store_get_be64(k + prefix->n);
    }
    store_iter_free(it);
    return LG_OK;
}

int registry_trial_entries(struct registry *r, struct store *s,
                           const char *trial_id, uint64_t offset, size_t limit,
                           uint64_t *log_indexes, size_t *n, uint64_t *total)
{
    if (r == NULL || s == NULL || n == NULL || total == NULL ||
        (limit > 0 && log_indexes == NULL))
        return LG_EINVAL;
    *n = 0;
    *total = 0;
    if (!reg_id_valid(trial_id))
        return LG_OK;
    struct reg_key k;
    rk_init(&k, "x/t/");
    rk_str(&k, trial_id);
    return index_page(s, &k, offset, limit, log_indexes, n, total);
}

int registry_pseudonym_entries(struct registry *r, struct store *s,
                               const char *trial_id,
                               const uint8_t pseudonym[32], uint64_t offset,
                               size_t limit, uint64_t *log_indexes, size_t *n,
                               uint64_t *total)
{
    if (r == NULL || s == NULL || pseudonym == NULL || n == NULL ||
        total == NULL || (limit > 0 && log_indexes == NULL))
        return LG_EINVAL;
    *n = 0;
    *total = 0;
    if (!reg_id_valid(trial_id))
        return LG_OK;
    struct reg_key k;
    rk_init(&k, "x/p/");
    rk_str(&k, trial_id);
    rk_bytes(&k, pseudonym, 32);
    return index_page(s, &k, offset, limit, log_indexes, n, total);
}

int registry_member_entries(struct registry *r, struct store *s,
                            const char *member, uint64_t offset, size_t limit,
                            uint64_t *log_indexes, size_t *n, uint64_t *total)
{
    if (r == NULL || s == NULL || member == NULL || n == NULL ||
        total == NULL || (limit > 0 && log_indexes == NULL))
        return LG_EINVAL;
    *n = 0;
    *total = 0;
    /* any member ever, with every key it held: x/m/ is keyed by name */
    struct gov_member m;
    struct reg_src src = {.txn = NULL, .s = s};
    int rv = reg_member_get(r, &src, member, &m);
    if (rv != LG_OK)
        return rv;
    struct reg_key k;
    rk_init(&k, "x/m/");
    rk_str(&k, m.name);
    return index_page(s, &k, offset, limit, log_indexes, n, total);
}

int registry_list_trials(struct registry *r, struct store *s, uint64_t offset,
                         size_t limit, char (*ids)[REGISTRY_ID_MAX + 1],
                         size_t *n, uint64_t *total)
{
    if (r == NULL || s == NULL || n == NULL || total == NULL ||
        (limit > 0 && ids == NULL))
        return LG_EINVAL;
    *n = 0;
    struct reg_key prefix;
    rk_init(&prefix, "x/T/");
    struct reg_key ck;
    reg_index_counter_key(&prefix, &ck);
    struct reg_src src = {.txn = NULL, .s = s};
    int rv = reg_u64_get(&src, &ck, total);
    if (rv != LG_OK || offset >= *total || limit == 0)
        return rv;
    struct store_iter *it = store_iter_new(s, prefix.b, prefix.n, NULL, 0);
    if (it == NULL)
        return LG_ENOMEM;
    const unsigned char *k, *v;
    size_t kl, vl;
    uint64_t pos = 0;
    while (*n < limit && store_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl != prefix.n + 8 || vl == 0 || vl > REGISTRY_ID_MAX) {
            rv = LG_ECORRUPT;
            break;
        }
        if (pos++ < offset)
            continue;
        memcpy(ids[*n], v, vl);
        ids[*n][vl] = '\0';
        (*n)++;
    }
    store_iter_free(it);
    return rv;
}

int registry_member_nonce(struct registry *r, struct store *s,
                          const char *member, uint64_t *nonce)
{
    if (r == NULL || s == NULL || member == NULL || nonce == NULL)
        return LG_EINVAL;
    struct gov_member m;
    struct reg_src src = {.txn = NULL, .s = s};
    int rv = reg_member_get(r, &src, member, &m);
    if (rv != LG_OK)
        return rv;
    struct reg_key k;
    rk_init(&k, "r/n/");
    rk_str(&k, m.name);
    return reg_u64_get(&src, &k, nonce);
}

/* ---- summary --------------------------------------------------------------
 */

static void str_free(char *p)
{
    if (p != NULL && p != (const char *)protobuf_c_empty_string)
        free(p);
}

void registry_trial_summary_clear(Tc__TrialSummary *out)
{
    if (out == NULL)
        return;
    str_free(out->trial_id);
    str_free(out->sponsor);
    str_free(out->status);
    str_free(out->brief_title);
    for (size_t i = 0; i < out->n_sites; i++)
        free(out->sites[i]);
    free(out->sites);
    for (size_t i = 0; i < out->n_consents; i++) {
        str_free(out->consents[i]->site);
        free(out->consents[i]);
    }
    free(out->consents);
    tc__trial_summary__init(out);
}

static const char *trial_status(uint32_t flags)
{
    if ((flags & TRIAL_TERMINATED) != 0)
        return "terminated";
    if ((flags & TRIAL_SUSPENDED) != 0)
        return "suspended";
    if ((flags & TRIAL_APPROVED) != 0)
        return "approved";
    return "registered";
}

/* The member name that ends a "<prefix><trial>\0<name>\0" key. */
static bool key_tail_name(const unsigned char *k, size_t kl, size_t plen,
                          char *name, size_t cap)
{
    if (kl <= plen + 1 || k[kl - 1] != '\0' || kl - plen > cap)
        return false;
    memcpy(name, k + plen, kl - plen);
    return memchr(name, '\0', kl - plen - 1) == NULL;
}

/* Authorized sites, in name order. */
static int summary_sites(struct store *s, const char *trial,
                         Tc__TrialSummary *out, size_t cap)
{
    struct reg_key prefix;
    rk_init(&prefix, "r/s/");
    rk_str(&prefix, trial);
    struct store_iter *it = store_iter_new(s, prefix.b, prefix.n, NULL, 0);
    if (it == NULL)
        return LG_ENOMEM;
    const unsigned char *k, *v;
    size_t kl, vl;
    int rv = LG_OK;
    while (rv == LG_OK && out->n_sites < cap &&
           store_iter_next(it, &k, &kl, &v, &vl)) {
        char name[GENESIS_NAME_MAX];
        if (!key_tail_name(k, kl, prefix.n, name, sizeof(name)) || vl < 1) {
            rv = LG_ECORRUPT;
            break;
        }
        if (v[0] == 0)
            continue; /* revoked */
        char *dup = strdup(name);
        if (dup == NULL)
            rv = LG_ENOMEM;
        else
            out->sites[out->n_sites++] = dup;
    }
    store_iter_free(it);
    return rv;
}

/* Consent counts per site, in site-name order. */
static int summary_consents(struct store *s, const char *trial,
                            Tc__TrialSummary *out, size_t cap)
{
    struct reg_key prefix;
    rk_init(&prefix, "r/c/");
    rk_str(&prefix, trial);
    struct store_iter *it = store_iter_new(s, prefix.b, prefix.n, NULL, 0);
    if (it == NULL)
        return LG_ENOMEM;
    const unsigned char *k, *v;
    size_t kl, vl;
    int rv = LG_OK;
    struct reg_src src = {.txn = NULL, .s = s};
    while (rv == LG_OK && out->n_consents < cap &&
           store_iter_next(it, &k, &kl, &v, &vl)) {
        char name[GENESIS_NAME_MAX];
        if (!key_tail_name(k, kl, prefix.n, name, sizeof(name))) {
            rv = LG_ECORRUPT;
            break;
        }
        struct reg_counts c;
        rv = reg_counts_get(&src, trial, name, &c);
        if (rv != LG_OK)
            break;
        Tc__ConsentCount *cc = malloc(sizeof(*cc));
        char *dup = strdup(name);
        if (cc == NULL || dup == NULL) {
            free(cc);
            free(dup);
            rv = LG_ENOMEM;
            break;
        }
        tc__consent_count__init(cc);
        cc->site = dup;
        cc->active = c.active;
        cc->withdrawn = c.withdrawn;
        cc->partial = c.partial;
        out->consents[out->n_consents++] = cc;
    }
    store_iter_free(it);
    return rv;
}

int registry_trial_summary(struct registry *r, struct store *s,
                           const char *trial_id, Tc__TrialSummary *out)
{
    if (r == NULL || s == NULL || out == NULL)
        return LG_EINVAL;
    tc__trial_summary__init(out);
    if (!reg_id_valid(trial_id))
        return LG_ENOTFOUND;
    struct reg_src src = {.txn = NULL, .s = s};
    struct reg_trial *t = malloc(sizeof(*t));
    if (t == NULL)
        return LG_ENOMEM;
    int rv = reg_trial_get(&src, trial_id, t);
    if (rv != LG_OK) {
        free(t);
        return rv;
    }
    /* Sites are members: the members ever bound both lists. */
    uint32_t n_members = 0;
    rv = reg_members_count(r, &src, &n_members);
    if (rv != LG_OK) {
        free(t);
        return rv;
    }
    size_t cap = n_members > 0 ? n_members : 1;
    out->trial_id = strdup(trial_id);
    out->sponsor = strdup(t->sponsor);
    out->status = strdup(trial_status(t->flags));
    out->brief_title = strdup(t->brief_title);
    out->sites = calloc(cap, sizeof(*out->sites));
    out->consents = calloc(cap, sizeof(*out->consents));
    out->latest_version = t->latest_version;
    out->n_datasets = t->n_datasets;
    out->n_grants = t->n_grants;
    out->n_access_events = t->n_access_events;
    out->has_results = t->n_results > 0;
    out->registered_height = t->registered_height;
    out->first_consent_height = t->first_consent_height;
    out->n_rejected = t->n_rejected;
    free(t);
    if (out->trial_id == NULL || out->sponsor == NULL || out->status == NULL ||
        out->brief_title == NULL || out->sites == NULL || out->consents == NULL)
        rv = LG_ENOMEM;
    if (rv == LG_OK)
        rv = summary_sites(s, trial_id, out, cap);
    if (rv == LG_OK)
        rv = summary_consents(s, trial_id, out, cap);
    if (rv != LG_OK)
        registry_trial_summary_clear(out);
    return rv;
}
