/*
 * registry_rules.c - one function per transaction type: who may do it, what
 * must exist, and what changes. Each checks everything before writing, so a
 * refused tx changes nothing but its nonce, its index entries and the
 * trial's rejected count (registry.c).
 *
 * Decisions the issue left open:
 * - Trial status: "registered" until a version is approved, then
 *   "approved"; an ethics board suspends (version 0 = the whole trial) or
 *   terminates it. Approving a version lifts a trial-wide suspension.
 * - A suspended trial refuses new consent records. A terminated trial
 *   refuses amendments, ethics decisions, site authorizations, consent
 *   records, dataset registrations and access grants; it still accepts
 *   results, attestations, consent withdrawals, site and grant revocations
 *   and access events under grants made before (withdrawal and revocation
 *   must always be possible; results and audits come after the end).
 * - A consent record (first or re-consent) states the full scope set of
 *   the form signed, so it must include PARTICIPATION and replaces earlier
 *   scopes. Withdrawal removes the listed scopes (all when none are
 *   listed); withdrawing PARTICIPATION withdraws everything. Withdrawal
 *   needs no approved version or open trial, and stays with the site that
 *   recorded the pseudonym even if its authorization was revoked since.
 * - Consent states for the counts: active (participation and every scope
 *   of the last record), partial (participation, some scopes withdrawn),
 *   withdrawn (participation withdrawn).
 * - Datasets list at least one participant; grants and access events
 *   check every participant's consent with duo_covers (duo.h).
 * - Results may cite outcome ids registered in any version of the trial;
 *   an outcome marked not pre-specified must not carry a registered id.
 */
#include "registry_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------
 */

/* Loads a trial; refuses "invalid-id" / "unknown-trial" with *found false. */
static int trial_load(struct reg_exec *e, const char *id, struct reg_trial *t,
                      bool *found)
{
    *found = false;
    if (!reg_check_id(e, "trial id", id))
        return LG_OK;
    int rv = reg_trial_get(&e->src, id, t);
    if (rv == LG_ENOTFOUND)
        return reg_reject(e, "unknown-trial", "Trial %s is not registered.",
                          id);
    if (rv != LG_OK)
        return rv;
    *found = true;
    return LG_OK;
}

static bool need_role(struct reg_exec *e, enum member_role role,
                      const char *act)
{
    if (e->signer->role == role)
        return true;
    reg_reject(e, "role-not-permitted",
               "%s is a %s member; only a %s member may %s.", e->signer->name,
               role_name(e->signer->role), role_name(role), act);
    return false;
}

static bool need_sponsor(struct reg_exec *e, const char *trial,
                         const struct reg_trial *t, const char *act)
{
    if (strcmp(t->sponsor, e->signer->name) == 0)
        return true;
    reg_reject(e, "not-sponsor",
               "Only %s, the sponsor that registered trial %s, may %s.",
               t->sponsor, trial, act);
    return false;
}

static bool need_not_terminated(struct reg_exec *e, const char *trial,
                                const struct reg_trial *t)
{
    if ((t->flags & TRIAL_TERMINATED) == 0)
        return true;
    reg_reject(e, "trial-terminated",
               "Trial %s was terminated by an ethics board; it accepts only "
               "results, attestations, withdrawals and revocations.",
               trial);
    return false;
}

/* YYYY, YYYY-MM or YYYY-MM-DD, as registry records write dates. */
static bool date_valid(const char *s)
{
    size_t n = strlen(s);
    if (n != 4 && n != 7 && n != 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return false;
    }
    if (n >= 7) {
        int month = (s[5] - '0') * 10 + (s[6] - '0');
        if (month < 1 || month > 12)
            return false;
    }
    if (n == 10) {
        int day = (s[8] - '0') * 10 + (s[9] - '0');
        if (day < 1 || day > 31)
            return false;
    }
    return true;
}

static bool check_date(struct reg_exec *e, const char *what, const char *s)
{
    if (s[0] == '\0' || date_valid(s))
        return true;
    reg_reject(e, "invalid-date",
               "The %s \"%.20s\" is not a date (YYYY, YYYY-MM or YYYY-MM-DD).",
               what, s);
    return false;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_hash_ptr(const void *a, const void *b)
{
    return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, 32);
}

/* The full outcome list of a version: ids unique and well formed, each
 * typed, each with a measure; text bounded and free of personal data. */
static bool check_outcomes(struct reg_exec *e, Tc__Outcome *const *o, size_t n)
{
    if (n == 0) {
        reg_reject(e, "missing-outcomes",
                   "A protocol version must list its pre-specified "
                   "outcomes (at least one).");
        return false;
    }
    if (n > REGISTRY_OUTCOMES_MAX) {
        reg_reject(e, "too-many-items", "%zu outcomes; the limit is %d.", n,
                   REGISTRY_OUTCOMES_MAX);
        return false;
    }
    const char *ids[REGISTRY_OUTCOMES_MAX];
    for (size_t i = 0; i < n; i++) {
        if (!reg_id_valid(o[i]->id)) {
            reg_reject(e, "invalid-outcome",
                       "Outcome %zu needs an id of 1 to %d letters, digits, "
                       "'.', '_', ':' or '-'.",
                       i + 1, REGISTRY_ID_MAX);
            return false;
        }
        if (o[i]->type != TC__OUTCOME_TYPE__OUTCOME_PRIMARY &&
            o[i]->type != TC__OUTCOME_TYPE__OUTCOME_SECONDARY &&
            o[i]->type != TC__OUTCOME_TYPE__OUTCOME_OTHER) {
            reg_reject(e, "invalid-outcome",
                       "Outcome %s must be typed primary, secondary or "
                       "other.",
                       o[i]->id);
            return false;
        }
        if (!reg_check_text(e, "outcome measure", o[i]->measure, true) ||
            !reg_check_text(e, "outcome time frame", o[i]->time_frame, false) ||
            !reg_check_text(e, "outcome description", o[i]->description, false))
            return false;
        ids[i] = o[i]->id;
    }
    qsort(ids, n, sizeof(ids[0]), cmp_str_ptr);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            reg_reject(e, "duplicate-outcome-id",
                       "Outcome id %s appears more than once.", ids[i]);
            return false;
        }
    }
    return true;
}

/* Records each outcome id with the first version that listed it. */
static int put_outcome_ids(struct reg_exec *e, const char *trial,
                           Tc__Outcome *const *o, size_t n, uint32_t version)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t first = 0;
        int rv = reg_outcome_get(&e->src, trial, o[i]->id, &first);
        if (rv == LG_ENOTFOUND)
            reg_outcome_put(e->txn, trial, o[i]->id, version);
        else if (rv != LG_OK)
            return rv;
    }
    return LG_OK;
}

/* ---- protocol -------------------------------------------------------------
 */

int rule_protocol_register(struct reg_exec *e)
{
    const Tc__ProtocolRegister *p = e->tx->protocol_register;
    if (!need_role(e, ROLE_SPONSOR, "register a protocol") ||
        !reg_check_id(e, "trial id", p->trial_id))
        return LG_OK;
    struct reg_trial t;
    int rv = reg_trial_get(&e->src, p->trial_id, &t);
    if (rv == LG_OK)
        return reg_reject(e, "trial-exists",
                          "Trial %s is already registered (by %s); amend "
                          "it instead.",
                          p->trial_id, t.sponsor);
    if (rv != LG_ENOTFOUND)
        return rv;
    if (!reg_check_text(e, "brief title", p->brief_title, true) ||
        !reg_check_text(e, "official title", p->official_title, false) ||
        !reg_check_text(e, "sponsor name", p->sponsor_name, false) ||
        !reg_check_text(e, "phase", p->phase, false) ||
        !reg_check_text(e, "study type", p->study_type, false) ||
        !reg_check_text(e, "source", p->source, false) ||
        !check_date(e, "start date", p->start_date) ||
        !check_date(e, "primary completion date", p->primary_completion_date) ||
        !check_date(e, "registry first-submitted date",
                    p->registry_first_submitted) ||
        !reg_check_hash(e, "protocol document hash", &p->protocol_doc_hash,
                        false) ||
        !reg_check_hash(e, "source record hash", &p->source_record_hash,
                        false) ||
        !check_outcomes(e, p->outcomes, p->n_outcomes))
        return LG_OK;

    memset(&t, 0, sizeof(t));
    snprintf(t.sponsor, sizeof(t.sponsor), "%s", e->signer->name);
    t.latest_version = 1;
    t.registered_height = e->at->height;
    t.registered_log = e->at->log_index;
    snprintf(t.brief_title, sizeof(t.brief_title), "%s", p->brief_title);
    reg_trial_put(e->txn, p->trial_id, &t);

    /* Version 1's hash is the registering tx's id. */
    struct reg_version v = {.height = e->at->height,
                            .n_outcomes = (uint32_t)p->n_outcomes};
    memcpy(v.tx_id, e->at->tx_id, 32);
    reg_version_put(e->txn, p->trial_id, 1, &v);
    rv = put_outcome_ids(e, p->trial_id, p->outcomes, p->n_outcomes, 1);
    if (rv != LG_OK)
        return rv;
    struct reg_key k;
    rk_init(&k, "x/T/");
    return reg_index_add(e->txn, &k, e->at->log_index, p->trial_id,
                         strlen(p->trial_id));
}

int rule_protocol_amend(struct reg_exec *e)
{
    const Tc__ProtocolAmend *p = e->tx->protocol_amend;
    struct reg_trial t;
    bool found;
    int rv = trial_load(e, p->trial_id, &t, &found);
    if (rv != LG_OK || !found)
        return rv;
    if (!need_sponsor(e, p->trial_id, &t, "amend it") ||
        !need_not_terminated(e, p->trial_id, &t))
        return LG_OK;
    if (p->version != t.latest_version + 1)
        return reg_reject(e, "bad-version",
                          "Trial %s is at version %u; an amendment must be "
                          "version %u, not %u.",
                          p->trial_id, t.latest_version, t.latest_version + 1,
                          p->version);
    struct reg_version latest;
    rv = reg_version_get(&e->src, p->trial_id, t.latest_version, &latest);
    if (rv != LG_OK)
        return rv == LG_ENOTFOUND ? LG_ECORRUPT : rv;
    if (p->prev_version_hash.len != 32 ||
        memcmp(p->prev_version_hash.data, latest.tx_id, 32) != 0)
        return reg_reject(e, "bad-prev-hash",
                          "The previous-version hash is not the id of the "
                          "transaction that made version %u.",
                          t.latest_version);
    if (!reg_check_text(e, "amendment reason", p->reason, true) ||
        !reg_check_hash(e, "protocol document hash", &p->protocol_doc_hash,
                        false) ||
        !check_outcomes(e, p->outcomes, p->n_outcomes))
        return LG_OK;

    struct reg_version v = {.height = e->at->height,
                            .n_outcomes = (uint32_t)p->n_outcomes};
    memcpy(v.tx_id, e->at->tx_id, 32);
    reg_version_put(e->txn, p->trial_id, p->version, &v);
    t.latest_version = p->version;
    reg_trial_put(e->txn, p->trial_id, &t);
    return put_outcome_ids(e, p->trial_id, p->outcomes, p->n_outcomes,
                           p->version);
}

/* ---- ethics ---------------------------------------------------------------
 */

/* Loads version `ver` of a trial; refuses "unknown-version". */
static int version_load(struct reg_exec *e, const char *trial,
                        const struct reg_trial *t, uint32_t ver,
                        struct reg_version *v, bool *found)
{
    *found = false;
    if (ver == 0 || ver > t->latest_version)
        return reg_reject(e, "unknown-version",
                          "Trial %s has versions 1 to %u; there is no "
                          "version %u.",
                          trial, t->latest_version, ver);
    int rv = reg_version_get(&e->src, trial, ver, v);
    if (rv != LG_OK)
        return rv == LG_ENOTFOUND ? LG_ECORRUPT : rv;
    *found = true;
    return LG_OK;
}

static int ethics_approve(struct reg_exec *e, const char *trial,
                          struct reg_trial *t, uint32_t ver)
{
    struct reg_version v;
    bool found;
    int rv = version_load(e, trial, t, ver, &v, &found);
    if (rv != LG_OK || !found)
        return rv;
    if ((v.flags & VERSION_TERMINATED) != 0)
        return reg_reject(e, "version-terminated",
                          "Version %u of trial %s was terminated and cannot "
                          "be approved again.",
                          ver, trial);
    if ((v.flags & VERSION_APPROVED) != 0 &&
        (v.flags & VERSION_SUSPENDED) == 0 && (t->flags & TRIAL_SUSPENDED) == 0)
        return reg_reject(e, "already-approved",
                          "Version %u of trial %s is already approved.", ver,
                          trial);
    v.flags = (v.flags | VERSION_APPROVED) & ~(uint32_t)VERSION_SUSPENDED;
    reg_version_put(e->txn, trial, ver, &v);
    t->flags = (t->flags | TRIAL_APPROVED) & ~(uint32_t)TRIAL_SUSPENDED;
    reg_trial_put(e->txn, trial, t);
    return LG_OK;
}

static int ethics_suspend(struct reg_exec *e, const char *trial,
                          struct reg_trial *t, uint32_t ver)
{
    if (ver == 0) {
        if ((t->flags & TRIAL_SUSPENDED) != 0)
            return reg_reject(e, "already-suspended",
                              "Trial %s is already suspended.", trial);
        t->flags |= TRIAL_SUSPENDED;
        reg_trial_put(e->txn, trial, t);
        return LG_OK;
    }
    struct reg_version v;
    bool found;
    int rv = version_load(e, trial, t, ver, &v, &found);
    if (rv != LG_OK || !found)
        return rv;
    if ((v.flags & VERSION_TERMINATED) != 0)
        return reg_reject(e, "version-terminated",
                          "Version %u of trial %s is already terminated.", ver,
                          trial);
    if ((v.flags & VERSION_APPROVED) == 0)
        return reg_reject(e, "version-not-approved",
                          "Version %u of trial %s was never approved, so it "
                          "cannot be suspended.",
                          ver, trial);
    if ((v.flags & VERSION_SUSPENDED) != 0)
        return reg_reject(e, "already-suspended",
                          "Version %u of trial %s is already suspended.", ver,
                          trial);
    v.flags |= VERSION_SUSPENDED;
    reg_version_put(e->txn, trial, ver, &v);
    return LG_OK;
}

static int ethics_terminate(struct reg_exec *e, const char *trial,
                            struct reg_trial *t, uint32_t ver)
{
    if (ver == 0) {
        t->flags |= TRIAL_TERMINATED;
        reg_trial_put(e->txn, trial, t);
        return LG_OK;
    }
    struct reg_version v;
    bool found;
    int rv = version_load(e, trial, t, ver, &v, &found);
    if (rv != LG_OK || !found)
        return rv;
    if ((v.flags & VERSION_TERMINATED) != 0)
        return reg_reject(e, "already-terminated",
                          "Version %u of trial %s is already terminated.", ver,
                          trial);
    v.flags |= VERSION_TERMINATED;
    reg_version_put(e->txn, trial, ver, &v);
    return LG_OK;
}

int rule_ethics(struct reg_exec *e)
{
    const Tc__EthicsDecision *d = e->tx->ethics;
    if (!need_role(e, ROLE_ETHICS_BOARD, "make ethics decisions"))
        return LG_OK;
    struct reg_trial t;
    bool found;
    int rv = trial_load(e, d->trial_id, &t, &found);
    if (rv != LG_OK || !found)
        return rv;
    if (!need_not_terminated(e, d->trial_id, &t) ||
        !reg_check_text(e, "decision note", d->note, false) ||
        !reg_check_hash(e, "decision document hash", &d->decision_doc_hash,
                        false))
        return LG_OK;
    switch (d->action) {
    case TC__ETHICS_ACTION__ETHICS_APPROVE:
        return ethics_approve(e, d->trial_id, &t, d->version);
    case TC__ETHICS_ACTION__ETHICS_SUSPEND:
        return ethics_suspend(e, d->trial_id, &t, d->version);
    case TC__ETHICS_ACTION__ETHICS_TERMINATE:
        return ethics_terminate(e, d->trial_id, &t, d->version);
    default:
        return reg_reject(e, "invalid-action",
                          "An ethics decision must approve, suspend or "
                          "terminate.");
    }
}

/* ---- sites ----------------------------------------------------------------
 */

/* Site authorization record; a site never authorized reads as not. */
static int site_load(struct reg_exec *e, const char *trial, const char *site,
                     struct reg_site *s)
{
    int rv = reg_site_get(&e->src, trial, site, s);
    if (rv == LG_ENOTFOUND) {
        memset(s, 0, sizeof(*s));
        return LG_OK;
    }
    return rv;
}

int rule_site_authorize(struct reg_exec *e)
{
    const Tc__SiteAuthorize *a = e->tx->site_authorize;
    struct reg_trial t;
    bool found;
    int rv = trial_load(e, a->trial_id, &t, &found);
    if (rv != LG_OK || !found)
        return rv;
    if (!need_sponsor(e, a->trial_id, &t, "authorize its sites"))
        return LG_OK;
    struct gov_member m;
    rv = reg_member_get(e->r, &e->src, a->site, &m);
    if (rv == LG_ENOTFOUND)
        return reg_reject(e, "unknown-member",
                          "\"%.64s\" is not a member of this consortium.",
                          a->site);
    if (rv != LG_OK)
        return rv;
    if (m.role != ROLE_SITE)
        return reg_reject(e, "not-a-site",
                          "%s is a %s member, not a research site.", m.name,
                          role_name(m.role));
    if (!a->revoke && m.status == GOV_MEMBER_REMOVED)
        return reg_reject(e, "member-removed",
                          "%s has been removed from the consortium and "
                          "cannot be authorized.",
                          m.name);
    struct reg_site s;
    rv = site_load(e, a->trial_id, m.name, &s);
    if (rv != LG_OK)
        return rv;
    if (a->revoke) {
        if (!s.authorized)
            return reg_reject(e, "site-not-authorized",
                              "%s is not an authorized site of trial %s.",
                              m.name, a->trial_id);
    } else {
        if (!need_not_terminated(e, a->trial_id, &t))
            return LG_OK;
        if (s.authorized)
            return reg_reject(e, "already-authorized",
                              "%s is already an authorized site of trial "
                              "%s.",
                              m.name, a->trial_id);
    }
    s.authorized = !a->revoke;
    s.height = e->at->height;
    reg_site_put(e->txn, a->trial_id, m.name, &s);
    return LG_OK;
}

/* Refuses "site-not-authorized" unless the signer is authorized now. */
static int need_authorized_site(struct reg_exec *e, const char *trial, bool *ok)
{
    struct reg_site s;
    *ok = false;
    int rv = site_load(e, trial, e->signer->name, &s);
    if (rv != LG_OK)
        return rv;
    if (!s.authorized)
        return reg_reject(e, "site-not-authorized",
                          "%s is not an authorized site of trial %s.",
                          e->signer->name, trial);
    *ok = true;
    return LG_OK;
}

/* ---- consent --------------------------------------------------------------
 */

/* Moves one pseudonym between consent states in its site's counts. */
static int counts_move(struct reg_exec *e, const char *trial, const char *site,
                       uint8_t from, uint8_t to)
{
    struct reg_counts c = {0};
    int rv = reg_counts_get(&e->src, trial, site, &c);
    if (rv != LG_OK && rv != LG_ENOTFOUND)
        return rv;
    uint32_t *slot[4] = {NULL, &c.active, &c.partial, &c.withdrawn};
    if (from != CONSENT_NONE) {
        if (*slot[from] == 0)
            return LG_ECORRUPT;
        (*slot[from])--;
    }
    (*slot[to])++;
    reg_counts_put(e->txn, trial, site, &c);
    return LG_OK;
}

/* Scopes of a consent record: known, unique, PARTICIPATION among them. */
static bool check_scopes(struct reg_exec *e, char *const *scopes, size_t n)
{
    if (n > REGISTRY_SCOPES_MAX) {
        reg_reject(e, "too-many-items", "%zu scopes; the limit is %d.", n,
                   REGISTRY_SCOPES_MAX);
        return false;
    }
    bool participation = false;
    const char *sorted[REGISTRY_SCOPES_MAX];
    for (size_t i = 0; i < n; i++) {
        struct duo_scope sc;
        if (!duo_scope_parse(scopes[i], &sc)) {
            reg_reject(e, "unknown-scope",
                       "\"%.40s\" is neither PARTICIPATION nor a GA4GH DUO "
                       "code.",
                       scopes[i]);
            return false;
        }
        participation = participation || sc.kind == DUO_SCOPE_PARTICIPATION;
        sorted[i] = scopes[i];
    }
    qsort(sorted, n, sizeof(sorted[0]), cmp_str_ptr);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            reg_reject(e, "duplicate-scope", "Scope %s is listed twice.",
                       sorted[i]);
            return false;
        }
    }
    if (!participation) {
        reg_reject(e, "missing-participation",
                   "A consent record must include the PARTICIPATION scope.");
        return false;
    }
    return true;
}

static int consent_record(struct reg_exec *e, const Tc__Consent *c,
                          struct reg_trial *t, struct reg_consent *cur)
{
    if (!need_not_terminated(e, c->trial_id, t))
        return LG_OK;
    if ((t->flags & TRIAL_SUSPENDED) != 0)
        return reg_reject(e, "trial-suspended",
                          "Trial %s is suspended by an ethics board: no new "
                          "consent may be recorded.",
                          c->trial_id);
    struct reg_version v;
    bool found;
    int rv = version_load(e, c->trial_id, t, c->protocol_version, &v, &found);
    if (rv != LG_OK || !found)
        return rv;
    if ((v.flags & VERSION_TERMINATED) != 0)
        return reg_reject(e, "version-terminated",
                          "Version %u of trial %s was terminated.",
                          c->protocol_version, c->trial_id);
    if ((v.flags & VERSION_SUSPENDED) != 0)
        return reg_reject(e, "version-suspended",
                          "Version %u of trial %s is suspended.",
                          c->protocol_version, c->trial_id);
    if ((v.flags & VERSION_APPROVED) == 0)
        return reg_reject(e, "version-not-approved",
                          "Version %u of trial %s has no ethics approval; "
                          "consent must be to an approved version.",
                          c->protocol_version, c->trial_id);
    if (!reg_check_hash(e, "consent form hash", &c->consent_form_hash, true) ||
        !check_scopes(e, c->scopes, c->n_scopes))
        return LG_OK;

    uint8_t from = cur->klass;
    if (from == CONSENT_NONE) {
        memset(cur, 0, sizeof(*cur));
        snprintf(cur->site, sizeof(cur->site), "%s", e->signer->name);
        cur->first_height = e->at->height;
    }
    cur->version = c->protocol_version;
    cur->klass = CONSENT_ACTIVE;
    cur->last_height = e->at->height;
    cur->n_scopes = (uint32_t)c->n_scopes;
    for (size_t i = 0; i < c->n_scopes; i++)
        snprintf(cur->scopes[i], sizeof(cur->scopes[i]), "%s", c->scopes[i]);
    reg_consent_put(e->txn, c->trial_id, c->pseudonym.data, cur);
    if ((t->flags & TRIAL_HAS_CONSENT) == 0) {
        t->flags |= TRIAL_HAS_CONSENT;
        t->first_consent_height = e->at->height;
        reg_trial_put(e->txn, c->trial_id, t);
    }
    return counts_move(e, c->trial_id, cur->site, from, CONSENT_ACTIVE);
}

static bool scope_held(const struct reg_consent *cur, const char *s)
{
    for (uint32_t i = 0; i < cur->n_scopes; i++)
        if (strcmp(cur->scopes[i], s) == 0)
            return true;
    return false;
}

static int consent_withdraw(struct reg_exec *e, const Tc__Consent *c,
                            struct reg_consent *cur)
{
    if (cur->klass == CONSENT_NONE)
        return reg_reject(e, "no-consent",
                          "There is no consent for this pseudonym in trial "
                          "%s to withdraw.",
                          c->trial_id);
    if (cur->klass == CONSENT_WITHDRAWN)
        return reg_reject(e, "already-withdrawn",
                          "This participant already withdrew from trial %s.",
                          c->trial_id);
    if (c->n_scopes > REGISTRY_SCOPES_MAX)
        return reg_reject(e, "too-many-items", "%zu scopes; the limit is %d.",
                          c->n_scopes, REGISTRY_SCOPES_MAX);
    bool all = c->n_scopes == 0;
    for (size_t i = 0; i < c->n_scopes; i++) {
        if (!scope_held(cur, c->scopes[i]))
            return reg_reject(e, "scope-not-held",
                              "Scope \"%.40s\" is not in force for this "
                              "participant, so it cannot be withdrawn.",
                              c->scopes[i]);
        all = all || strcmp(c->scopes[i], DUO_PARTICIPATION) == 0;
    }
    uint8_t from = cur->klass;
    if (all) {
        cur->n_scopes = 0;
        cur->klass = CONSENT_WITHDRAWN;
    } else {
        uint32_t kept = 0;
        for (uint32_t i = 0; i < cur->n_scopes; i++) {
            bool drop = false;
            for (size_t j = 0; j < c->n_scopes && !drop; j++)
                drop = strcmp(cur->scopes[i], c->scopes[j]) == 0;
            if (!drop)
                memmove(cur->scopes[kept++], cur->scopes[i],
                        sizeof(cur->scopes[i]));
        }
        cur->n_scopes = kept;
        cur->klass = CONSENT_PARTIAL;
    }
    cur->last_height = e->at->height;
    reg_consent_put(e->txn, c->trial_id, c->pseudonym.data, cur);
    return counts_move(e, c->trial_id, cur->site, from, cur->klass);
}

int rule_consent(struct reg_exec *e)
{
    const Tc__Consent *c = e->tx->consent;
    if (!need_role(e, ROLE_SITE, "record consent"))
        return LG_OK;
    struct reg_trial t;
    bool found;
    int rv = trial_load(e, c->trial_id, &t, &found);
    if (rv != LG_OK || !found)
        return rv;
    if (c->pseudonym.len != 32)
        return reg_reject(e, "bad-pseudonym",
                          "A pseudonym is a 32-byte keyed hash (got %zu "
                          "bytes).",
                          c->pseudonym.len);
    struct reg_consent cur;
    rv = reg_consent_get(&e->src, c->trial_id, c->pseudonym.data, &cur);
    if (rv == LG_ENOTFOUND) {
        memset(&cur, 0, sizeof(cur));
        cur.klass = CONSENT_NONE;
    } else if (rv != LG_OK) {
        return rv;
    } else if (strcmp(cur.site, e->signer->name) != 0) {
        return reg_reject(e, "pseudonym-other-site",
                          "This pseudonym was enrolled by %s; only that site "
                          "records its consent.",
                          cur.site);
    }
    if (c->action == TC__CONSENT_ACTION__CONSENT_RECORD) {
        bool ok;
        rv = need_authorized_site(e, c->trial_id, &ok);
        if (rv != LG_OK || !ok)
            return rv;
        return consent_record(e, c, &t, &cur);
    }
    if (c->action == TC__CONSENT_ACTION__CONSENT_WITHDRAW)
        return consent_withdraw(e, c, &cur);
    return reg_reject(e, "invalid-action",
                      "A consent transaction must record or withdraw.");
}

/* Participation in force: the pseudonym has a consent record in the trial
 * whose PARTICIPATION scope has not been withdrawn. */
static int participation_in_force(struct reg_exec *e, const char *trial,
                                  const uint8_t *pseudonym, bool *yes)
{
    struct reg_consent c;
    int rv = reg_consent_get(&e->src, trial, pseudonym, &c);
    *yes = false;
    if (rv == LG_ENOTFOUND)
        return LG_OK;
    if (rv != LG_OK)
        return rv;
    *yes = c.klass == CONSENT_ACTIVE || c.klass == CONSENT_PARTIAL;
    return LG_OK;
}

/* Whether every participant's consent in force covers the purpose; *bad is
 * the 1-based position of the first that does not (0: all do). */
static int participants_cover(struct reg_exec *e, const struct reg_dataset *d,
                              const struct duo_purpose *purpose, size_t *bad)
{
    *bad = 0;
    for (uint32_t i = 0; i < d->n_participants; i++) {
        struct reg_consent c;
        int rv =
            reg_consent_get(&e->src, d->trial, d->participants + 32 * i, &c);
        if (rv != LG_OK && rv != LG_ENOTFOUND)
            return rv;
        const char *scopes[REGISTRY_SCOPES_MAX];
        size_t n = 0;
        if (rv == LG_OK && c.klass != CONSENT_WITHDRAWN)
            for (; n < c.n_scopes; n++)
                scopes[n] = c.scopes[n];
        if (!duo_covers(scopes, n, purpose)) {
            *bad = (size_t)i + 1;
            return LG_OK;
        }
    }
    return LG_OK;
}

/* ---- datasets and access --------------------------------------------------
 */

static bool check_participants(struct reg_exec *e, const Tc__DatasetRegister *d,
                               const uint8_t **sorted)
{
    for (size_t i = 0; i < d->n_participants; i++) {
        if (d->participants[i].len != 32) {
            reg_reject(e, "bad-pseudonym",
                       "Participant %zu is not a 32-byte pseudonym.", i + 1);
            return false;
        }
        sorted[i] = d->participants[i].data;
    }
    qsort(sorted, d->n_participants, sizeof(sorted[0]), cmp_hash_ptr);
    for (size_t i = 1; i < d->n_participants; i++) {
        if (memcmp(sorted[i - 1], sorted[i], 32) == 0) {
            reg_reject(e, "duplicate-participant",
                       "A pseudonym is listed twice in the dataset.");
            return false;
        }
    }
    return true;
}

static int dataset_checks(struct reg_exec *e, const Tc__DatasetRegister *d,
                          bool *ok)
{
    *ok = false;
    if (d->n_participants == 0)
        return reg_reject(e, "missing-participants",
                          "A dataset must list the pseudonyms of the "
                          "participants it holds.");
    if (d->n_participants > REGISTRY_PARTICIPANTS_MAX)
        return reg_reject(e, "too-many-items",
                          "%zu participants; the limit is %d.",
                          d->n_participants, REGISTRY_PARTICIPANTS_MAX);
    const uint8_t **sorted = malloc(d->n_participants * sizeof(*sorted));
    if (sorted == NULL)
        return LG_ENOMEM;
    bool well_formed = check_participants(e, d, sorted);
    free(sorted);
    if (!well_formed)
        return LG_OK;
    for (size_t i = 0; i < d->n_participants; i++) {
        bool yes;
        int rv = participation_in_force(e, d->trial_id, d->participants[i].data,
                                        &yes);
        if (rv != LG_OK)
            return rv;
        if (!yes)
            return reg_reject(e, "participant-without-consent",
                              "Participant %zu of the dataset has no "
                              "participation consent in force in trial %s.",
                              i + 1, d->trial_id);
    }
    *ok = true;
    return LG_OK;
}

int rule_dataset_register(struct reg_exec *e)
{
    const Tc__DatasetRegister *d = e->tx->dataset_register;
    if (!need_role(e, ROLE_SITE, "register datasets") ||
        !reg_check_id(e, "dataset id", d->dataset_id))
        return LG_OK;
    struct reg_trial t;
    bool found, ok;
    int rv = trial_load(e, d->trial_id, &t, &found);
    if (rv != LG_OK || !found)
        return rv;
    rv = need_authorized_site(e, d->trial_id, &ok);
    if (rv != LG_OK || !ok)
        return rv;
    if (!need_not_terminated(e, d->trial_id, &t))
        return LG_OK;
    struct reg_dataset old;
    rv = reg_dataset_get(&e->src, d->dataset_id, &old);
    if (rv == LG_OK) {
        reg_dataset_release(&old);
        return reg_reject(e, "dataset-exists",
                          "Dataset %s is already registered.", d->dataset_id);
    }
    if (rv != LG_ENOTFOUND)
        return rv;
    if (!reg_check_hash(e, "dataset SHA-256", &d->sha256, true) ||
        !reg_check_text(e, "anonymization method", d->anonymization, false))
        return LG_OK;
    rv = dataset_checks(e, d, &ok);
    if (rv != LG_OK || !ok)
        return rv;

    uint8_t *flat = malloc(d->n_participants * 32);
    if (flat == NULL)
        return LG_ENOMEM;
    for (size_t i = 0; i < d->n_participants; i++)
        memcpy(flat + 32 * i, d->participants[i].data, 32);
    struct reg_dataset rec = {.height = e->at->height,
                              .n_participants = (uint32_t)d->n_participants,
                              .participants = flat};
    snprintf(rec.trial, sizeof(rec.trial), "%s", d->trial_id);
    snprintf(rec.site, sizeof(rec.site), "%s", e->signer->name);
    memcpy(rec.sha256, d->sha256.data, 32);
    reg_dataset_put(e->txn, d->dataset_id, &rec);
    free(flat);
    t.n_datasets++;
    reg_trial_put(e->txn, d->trial_id, &t);
    return LG_OK;
}

/* Loads the dataset a grant names; refuses "unknown-dataset". */
static int dataset_load(struct reg_exec *e, const char *id,
                        struct reg_dataset *d, bool *found)
{
    *found = false;
    if (!reg_check_id(e, "dataset id", id))
        return LG_OK;
    int rv = reg_dataset_get(&e->src, id, d);
    if (rv == LG_ENOTFOUND)
        return reg_reject(e, "unknown-dataset", "Dataset %s is not registered.",
                          id);
    if (rv != LG_OK)
        return rv;
    *found = true;
    return LG_OK;
}

static int grant_checks(struct reg_exec *e, const Tc__AccessGrant *g,
                        const struct reg_dataset *d,
                        struct duo_purpose *purpose)
{
    if (strcmp(d->site, e->signer->name) != 0)
        return reg_reject(e, "not-dataset-site",
                          "Only %s, the site that registered dataset %s, may "
                          "grant access to it.",
                          d->site, g->dataset_id);
    struct gov_member grantee;
    int rv = reg_member_get(e->r, &e->src, g->grantee, &grantee);
    if (rv == LG_ENOTFOUND)
        return reg_reject(e, "unknown-member",
                          "\"%.64s\" is not a member of this consortium.",
                          g->grantee);
    if (rv != LG_OK)
        return rv;
    if (grantee.status == GOV_MEMBER_REMOVED)
        return reg_reject(e, "member-removed",
                          "%s has been removed from the consortium and "
                          "cannot be granted access.",
                          grantee.name);
    if (!duo_purpose_parse(g->purpose, purpose))
        return reg_reject(e, "unknown-purpose",
                          "\"%.40s\" is not a DUO research purpose (GRU, "
                          "HMB, DS[:disease] or POA, then +modifiers).",
                          g->purpose);
    if (g->expires_ms <= e->at->block_time_ms)
        return reg_reject(e, "expiry-in-past",
                          "The grant's expiry is not after the block time.");
    if (g->sealed_key.len > REGISTRY_SEALED_KEY_MAX)
        return reg_reject(e, "field-too-long",
                          "The sealed key is %zu bytes; the limit is %d.",
                          g->sealed_key.len, REGISTRY_SEALED_KEY_MAX);
    reg_check_hash(e, "ciphertext SHA-256", &g->ciphertext_sha256, false);
    return LG_OK;
}

int rule_access_grant(struct reg_exec *e)
{
    const Tc__AccessGrant *g = e->tx->access_grant;
    struct reg_dataset d;
    bool found;
    int rv = dataset_load(e, g->dataset_id, &d, &found);
    if (rv != LG_OK || !found)
        return rv;
    struct duo_purpose purpose;
    struct reg_trial t;
    rv = grant_checks(e, g, &d, &purpose);
    if (rv != LG_OK || reg_rejected(e))
        goto out_release;
    rv = reg_trial_get(&e->src, d.trial, &t);
    if (rv != LG_OK) {
        rv = rv == LG_ENOTFOUND ? LG_ECORRUPT : rv;
        goto out_release;
    }
    if (!need_not_terminated(e, d.trial, &t))
        goto out_release;
    size_t bad = 0;
    rv = participants_cover(e, &d, &purpose, &bad);
    if (rv != LG_OK)
        goto out_release;
    if (bad != 0) {
        reg_reject(e, "purpose-not-consented",
                   "Participant %zu of dataset %s has no consent in force "
                   "covering purpose %s.",
                   bad, g->dataset_id, g->purpose);
        goto out_release;
    }
    struct reg_grant gr = {.expires_ms = g->expires_ms};
    snprintf(gr.dataset, sizeof(gr.dataset), "%s", g->dataset_id);
    snprintf(gr.trial, sizeof(gr.trial), "%s", d.trial);
    snprintf(gr.grantor, sizeof(gr.grantor), "%s", e->signer->name);
    snprintf(gr.grantee, sizeof(gr.grantee), "%s", g->grantee);
    snprintf(gr.purpose, sizeof(gr.purpose), "%s", g->purpose);
    reg_grant_put(e->txn, e->at->tx_id, &gr);
    t.n_grants++;
    reg_trial_put(e->txn, d.trial, &t);
out_release:
    reg_dataset_release(&d);
    return rv;
}

/* Loads the grant a tx refers to; refuses "unknown-grant". */
static int grant_load(struct reg_exec *e, const ProtobufCBinaryData *ref,
                      struct reg_grant *g, bool *found)
{
    *found = false;
    int rv =
        ref->len == 32 ? reg_grant_get(&e->src, ref->data, g) : LG_ENOTFOUND;
    if (rv == LG_ENOTFOUND)
        return reg_reject(e, "unknown-grant",
                          "The referenced grant (the id of an access-grant "
                          "transaction) does not exist.");
    if (rv != LG_OK)
        return rv;
    *found = true;
    return LG_OK;
}

int rule_access_revoke(struct reg_exec *e)
{
    const Tc__AccessRevoke *a = e->tx->access_revoke;
    struct reg_grant g;
    bool found;
    int rv = grant_load(e, &a->grant_tx, &g, &found);
    if (rv != LG_OK || !found)
        return rv;
    if (strcmp(g.grantor, e->signer->name) != 0)
        return reg_reject(e, "not-granting-site",
                          "Only %s, which made the grant, may revoke it.",
                          g.grantor);
    if (g.revoked)
        return reg_reject(e, "already-revoked",
                          "The grant was already revoked.");
    if (!reg_check_text(e, "revocation reason", a->reason, false))
        return LG_OK;
    g.revoked = true;
    g.revoked_height = e->at->height;
    reg_grant_put(e->txn, a->grant_tx.data, &g);
    return LG_OK;
}

static int event_checks(struct reg_exec *e, const Tc__AccessEvent *a,
                        const struct reg_grant *g)
{
    if (strcmp(g->grantee, e->signer->name) != 0)
        return reg_reject(e, "not-grantee",
                          "Only %s, the grantee, records access under this "
                          "grant.",
                          g->grantee);
    if (g->revoked)
        return reg_reject(e, "grant-revoked",
                          "The grant was revoked at height %llu.",
                          (unsigned long long)g->revoked_height);
    if (e->at->block_time_ms >= g->expires_ms)
        return reg_reject(e, "grant-expired", "The grant has expired.");
    if (a->purpose[0] != '\0' && strcmp(a->purpose, g->purpose) != 0)
        return reg_reject(e, "purpose-mismatch",
                          "The grant is for purpose %s, not %.40s.", g->purpose,
                          a->purpose);
    reg_check_hash(e, "file SHA-256", &a->file_sha256, false);
    return LG_OK;
}

int rule_access_event(struct reg_exec *e)
{
    const Tc__AccessEvent *a = e->tx->access_event;
    struct reg_grant g;
    bool found;
    int rv = grant_load(e, &a->grant_tx, &g, &found);
    if (rv != LG_OK || !found)
        return rv;
    rv = event_checks(e, a, &g);
    if (rv != LG_OK || reg_rejected(e))
        return rv;
    struct reg_dataset d;
    rv = reg_dataset_get(&e->src, g.dataset, &d);
    if (rv != LG_OK)
        return rv == LG_ENOTFOUND ? LG_ECORRUPT : rv;
    struct duo_purpose purpose;
    size_t bad = 0;
    if (a->file_sha256.len == 32 &&
        memcmp(a->file_sha256.data, d.sha256, 32) != 0) {
        reg_reject(e, "file-hash-mismatch",
                   "The file accessed is not the one registered as dataset "
                   "%s (SHA-256 differs).",
                   g.dataset);
        goto out_release;
    }
    if (!duo_purpose_parse(g.purpose, &purpose)) {
        rv = LG_ECORRUPT; /* checked when the grant was made */
        goto out_release;
    }
    rv = participants_cover(e, &d, &purpose, &bad);
    if (rv != LG_OK)
        goto out_release;
    if (bad != 0) {
        reg_reject(e, "access-outside-consent",
                   "Participant %zu of dataset %s no longer has consent in "
                   "force covering purpose %s.",
                   bad, g.dataset, g.purpose);
        goto out_release;
    }
    struct reg_trial t;
    rv = reg_trial_get(&e->src, g.trial, &t);
    if (rv != LG_OK) {
        rv = rv == LG_ENOTFOUND ? LG_ECORRUPT : rv;
        goto out_release;
    }
    g.n_events++;
    reg_grant_put(e->txn, a->grant_tx.data, &g);
    t.n_access_events++;
    reg_trial_put(e->txn, g.trial, &t);
out_release:
    reg_dataset_release(&d);
    return rv;
}

/* ---- results and audit ----------------------------------------------------
 */

/* Each reported outcome names a registered outcome id or carries the
 * not-pre-specified mark. One exception: results imported from
 * ClinicalTrials.gov (source "ctgov") are linked by the tool by normalized
 * measure and time frame, and an outcome the registry record types as
 * pre-specified that matches nothing registered is kept unlinked as the
 * record states it: it is the undeclared change the audit's
 * outcome-switched check exists to flag, so refusing it would hide it. */
static int check_reported(struct reg_exec *e, const char *trial,
                          const Tc__ReportedOutcome *o, size_t i, bool imported)
{
    bool has_id = o->outcome_id[0] != '\0';
    if (has_id && !reg_id_valid(o->outcome_id))
        return reg_reject(e, "invalid-outcome",
                          "Reported outcome %zu has a malformed id.", i + 1);
    uint32_t first = 0;
    int rv = has_id ? reg_outcome_get(&e->src, trial, o->outcome_id, &first)
                    : LG_ENOTFOUND;
    if (rv != LG_OK && rv != LG_ENOTFOUND)
        return rv;
    bool registered = rv == LG_OK;
    if (o->not_prespecified && registered)
        return reg_reject(e, "invalid-outcome",
                          "Outcome %s was pre-specified (version %u) but is "
                          "reported as not pre-specified.",
                          o->outcome_id, first);
    if (!o->not_prespecified && !has_id && !imported)
        return reg_reject(e, "invalid-outcome",
                          "Reported outcome %zu needs a registered outcome "
                          "id or the not-pre-specified mark.",
                          i + 1);
    if (!o->not_prespecified && has_id && !registered)
        return reg_reject(e, "unknown-outcome",
                          "Outcome %s was never registered for trial %s; "
                          "mark it not pre-specified.",
                          o->outcome_id, trial);
    if (!reg_check_text(e, "reported outcome measure", o->measure, true))
        return LG_OK;
    reg_check_text(e, "reported outcome time frame", o->time_frame, false);
    return LG_OK;
}

static int check_datasets_used(struct reg_exec *e, const Tc__ResultsRegister *p)
{
    if (p->n_datasets_used > REGISTRY_DATASETS_USED_MAX)
        return reg_reject(e, "too-many-items", "%zu datasets; the limit is %d.",
                          p->n_datasets_used, REGISTRY_DATASETS_USED_MAX);
    for (size_t i = 0; i < p->n_datasets_used; i++) {
        struct reg_dataset d;
        bool found;
        int rv = dataset_load(e, p->datasets_used[i], &d, &found);
        if (rv != LG_OK || !found)
            return rv;
        bool same = strcmp(d.trial, p->trial_id) == 0;
        reg_dataset_release(&d);
        if (!same)
            return reg_reject(e, "dataset-other-trial",
                              "Dataset %s belongs to another trial.",
                              p->datasets_used[i]);
    }
    return LG_OK;
}

int rule_results_register(struct reg_exec *e)
{
    const Tc__ResultsRegister *p = e->tx->results_register;
    struct reg_trial t;
    bool found;
    int rv = trial_load(e, p->trial_id, &t, &found);
    if (rv != LG_OK || !found)
        return rv;
    if (!need_sponsor(e, p->trial_id, &t, "register its results") ||
        !reg_check_hash(e, "results document hash", &p->results_doc_hash,
                        true) ||
        !check_date(e, "actual primary completion date",
                    p->actual_primary_completion_date) ||
        !reg_check_text(e, "source", p->source, false))
        return LG_OK;
    if (p->n_outcomes > REGISTRY_OUTCOMES_MAX)
        return reg_reject(e, "too-many-items", "%zu outcomes; the limit is %d.",
                          p->n_outcomes, REGISTRY_OUTCOMES_MAX);
    bool imported = strcmp(p->source, "ctgov") == 0;
    for (size_t i = 0; i < p->n_outcomes; i++) {
        rv = check_reported(e, p->trial_id, p->outcomes[i], i, imported);
        if (rv != LG_OK || reg_rejected(e))
            return rv;
    }
    rv = check_datasets_used(e, p);
    if (rv != LG_OK || reg_rejected(e))
        return rv;
    t.n_results++;
    reg_trial_put(e->txn, p->trial_id, &t);
    return LG_OK;
}

int rule_attestation(struct reg_exec *e)
{
    const Tc__AuditAttestation *a = e->tx->attestation;
    if (e->signer->role != ROLE_ETHICS_BOARD && e->signer->role != ROLE_AUDITOR)
        return reg_reject(e, "role-not-permitted",
                          "%s is a %s member; only ethics boards and "
                          "auditors attest.",
                          e->signer->name, role_name(e->signer->role));
    if (a->trial_id[0] != '\0') {
        struct reg_trial t;
        bool found;
        int rv = trial_load(e, a->trial_id, &t, &found);
        if (rv != LG_OK || !found)
            return rv;
    }
    if (a->height > e->at->height)
        return reg_reject(e, "height-in-future",
                          "The attestation is about height %llu, beyond "
                          "this block's %llu.",
                          (unsigned long long)a->height,
                          (unsigned long long)e->at->height);
    if (!reg_check_hash(e, "log root", &a->log_root, false) ||
        !reg_check_hash(e, "report SHA-256", &a->report_sha256, false))
        return LG_OK;
    reg_check_text(e, "attestation summary", a->summary, false);
    return LG_OK;
}
