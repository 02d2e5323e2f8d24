/*
 * audit.c - the trial integrity audit (see audit.h). Pure: the entries come
 * in, the report goes out. Everything is judged in ledger order and block
 * time; the evaluation time is the tip's block time.
 */
#include "audit.h"

#include "duo.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_DAY 86400000ull
#define NORM_MAX   512
#define SCOPES_MAX 16

/* ---- rules the findings rest on ------------------------------------------ */
static const char RULE_OUTCOME[] =
    "Reported outcomes must be the pre-specified ones (the protocol version "
    "in force when the first participant was consented); a change must be "
    "declared by an approved amendment with a reason, or the result marked "
    "as not pre-specified (CONSORT 2010 item 6b; SPIRIT 2013 item 12).";
static const char RULE_REG_LEDGER[] =
    "A trial is registered before its first participant is enrolled "
    "(Declaration of Helsinki para. 35; ICMJE).";
static const char RULE_REG_ICMJE[] =
    "ICMJE: a trial is registered in a public registry at or before the "
    "time of first patient enrolment.";
static const char RULE_REG_FDAAA[] =
    "FDAAA 801 (42 CFR 11.24): an applicable clinical trial is registered "
    "no later than 21 days after enrolling its first participant.";
static const char RULE_APPROVAL[] =
    "A protocol version is used only after a research ethics committee "
    "approved it (Declaration of Helsinki para. 23; ICH E6 3.1).";
static const char RULE_CONSENT_VERSION[] =
    "Consent is taken on the protocol version and form approved and in "
    "force at that time, not a superseded or suspended one (ICH E6 4.8).";
static const char RULE_DATA_CONSENT[] =
    "A dataset holds data only of participants whose participation consent "
    "was in force when it was registered; withdrawal blocks later use "
    "(ICH E6 4.8; GDPR Art. 6, 7(3)).";
static const char RULE_ACCESS[] =
    "Access stays within the purposes every contributing participant "
    "consented to (GA4GH Data Use Ontology), ends at withdrawal, at the "
    "grant's expiry and at its revocation.";
static const char RULE_RESULTS[] =
    "Summary results are registered within 12 months of the primary "
    "completion date (FDAAA 801, 42 CFR 11.44; WHO joint statement 2017).";
static const char RULE_REJECTED[] =
    "A signed transaction that breaks a registry rule is ordered, kept and "
    "marked rejected: the attempt is evidence (trialchain registry rules).";
static const char RULE_INTEGRITY[] =
    "Every transaction a report relies on verifies with the genesis alone: "
    "block certificate, hash links and RFC 9162 inclusion proofs.";
static const char RULE_PERSONAL[] =
    "No personal data on the ledger: participants appear only as keyed "
    "32-byte pseudonyms, documents only as hashes (GDPR Art. 5(1)(c), 25).";

const char *audit_severity_name(enum audit_severity s)
{
    switch (s) {
    case AUDIT_INFO:
        return "info";
    case AUDIT_LOW:
        return "low";
    case AUDIT_MEDIUM:
        return "medium";
    case AUDIT_HIGH:
        return "high";
    }
    return "unknown";
}

/* ---- dates ----------------------------------------------------------------
 * Civil dates <-> days since 1970-01-01 (Howard Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned len[12] = {31, 28, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : len[m - 1];
}

static bool parse_digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool audit_date_range(const char *s, int64_t *first_day, int64_t *last_day)
{
    unsigned y, m = 0, d = 0;
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n != 4 && n != 7 && n != 10)
        return false;
    if (!parse_digits(s, 4, &y) || y < 1900 || y > 9999)
        return false;
    if (n >= 7 &&
        (s[4] != '-' || !parse_digits(s + 5, 2, &m) || m < 1 || m > 12))
        return false;
    if (n == 10 && (s[7] != '-' || !parse_digits(s + 8, 2, &d) || d < 1 ||
                    d > month_days(y, m)))
        return false;
    if (n == 4) {
        *first_day = days_from_civil(y, 1, 1);
        *last_day = days_from_civil(y, 12, 31);
    } else if (n == 7) {
        *first_day = days_from_civil(y, m, 1);
        *last_day = days_from_civil(y, m, month_days(y, m));
    } else {
        *first_day = *last_day = days_from_civil(y, m, d);
    }
    return true;
}

int64_t audit_add_months(int64_t day, int months)
{
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    int64_t total = (int64_t)y * 12 + (int64_t)(m - 1) + months;
    int64_t ny = total >= 0 ? total / 12 : (total - 11) / 12;
    unsigned nm = (unsigned)(total - ny * 12) + 1;
    unsigned md = month_days(ny, nm);
    return days_from_civil(ny, nm, d > md ? md : d);
}

void audit_day_str(int64_t day, char out[16])
{
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 16, "%04d-%02u-%02u", y, m, d);
}

static int64_t ms_day(uint64_t ms)
{
    return (int64_t)(ms / MS_PER_DAY);
}

/* Whole months from day a to day b (b >= a), for sentences. */
static int months_between(int64_t a, int64_t b)
{
    int ya, yb;
    unsigned ma, mb, da, db;
    civil_from_days(a, &ya, &ma, &da);
    civil_from_days(b, &yb, &mb, &db);
    int n = (yb - ya) * 12 + (int)mb - (int)ma;
    if (db < da)
        n--;
    return n < 0 ? 0 : n;
}

/* ---- text -----------------------------------------------------------------
 */
void audit_normalize(const char *in, char *out, size_t out_len)
{
    size_t o = 0;
    bool space = false;
    if (out_len == 0)
        return;
    for (const char *p = in ? in : ""; *p != '\0' && o + 1 < out_len; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80 || isalnum(c)) {
            if (space && o > 0 && o + 2 < out_len)
                out[o++] = ' ';
            space = false;
            out[o++] = (char)(c < 0x80 ? tolower(c) : c);
        } else {
            space = true;
        }
    }
    out[o] = '\0';
}

static bool norm_eq(const char *a, const char *b)
{
    char na[NORM_MAX], nb[NORM_MAX];
    audit_normalize(a, na, sizeof na);
    audit_normalize(b, nb, sizeof nb);
    return strcmp(na, nb) == 0;
}

static bool is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static bool email_at(const char *s, size_t at)
{
    static const char local[] = "._%+-";
    size_t i = at, dots = 0, tld = 0;
    if (at == 0)
        return false;
    unsigned char before = (unsigned char)s[at - 1];
    if (!isalnum(before) && strchr(local, before) == NULL)
        return false;
    for (i = at + 1; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            dots++;
            tld = 0;
        } else if (isalnum(c) || c == '-') {
            tld += isalpha(c) ? 1 : 0;
        } else {
            break;
        }
    }
    /* a domain with a dot, ending in letters: "a@b.org", not "a@b" */
    return i > at + 1 && dots > 0 && tld >= 2 && s[i - 1] != '.';
}

/* A run of digits and phone punctuation starting at s: 9-15 digits in
 * groups of 2-4 (a "+" country code may be 1-3 or the whole number), not a
 * date range such as "2014-08-05". */
static bool phone_run(const char *s, size_t *run_len)
{
    size_t i = 0, digits = 0, groups = 0, g = 0;
    bool plus = s[0] == '+', bad_group = false, date = false;
    if (plus)
        i++;
    for (; s[i] != '\0'; i++) {
        char c = s[i];
        if (isdigit((unsigned char)c)) {
            digits++;
            g++;
            continue;
        }
        if (strchr("-.() ", c) == NULL)
            break;
        if (c == ' ' && (s[i + 1] == ' ' || s[i + 1] == '\0'))
            break;
        if (g > 0) {
            bool first_cc = plus && groups == 0 && g <= 3;
            if ((g < 2 || g > 4) && !first_cc)
                bad_group = true;
            if (g == 4 && c == '-' && isdigit((unsigned char)s[i + 1]) &&
                isdigit((unsigned char)s[i + 2]) && s[i + 3] == '-')
                date = true;
            groups++;
            g = 0;
        }
    }
    *run_len = i;
    if (i > 0 && s[i] != '\0' && isalpha((unsigned char)s[i]))
        return false;
    if (g > 0) {
        if ((g < 2 || g > 4) && !(plus && groups == 0))
            bad_group = true;
        groups++;
    }
    if (digits < 9 || digits > 15 || date)
        return false;
    if (plus && groups == 1)
        return true;
    return !bad_group && groups >= 3;
}

static bool name_marker_at(const char *s, size_t i)
{
    static const char *const titles[] = {"Dr. ",  "Dr ",  "Prof. ", "Mr. ",
                                         "Mrs. ", "Ms. ", "Miss "};
    static const char *const labels[] = {
        "contact:", "investigator:", "name:", "patient:"};
    if (i > 0 && isalnum((unsigned char)s[i - 1]))
        return false;
    for (size_t k = 0; k < sizeof titles / sizeof titles[0]; k++) {
        size_t n = strlen(titles[k]);
        if (strncmp(s + i, titles[k], n) == 0 &&
            isupper((unsigned char)s[i + n]))
            return true;
    }
    for (size_t k = 0; k < sizeof labels / sizeof labels[0]; k++) {
        size_t n = strlen(labels[k]);
        if (strncasecmp(s + i, labels[k], n) == 0) {
            const char *p = s + i + n;
            while (*p == ' ')
                p++;
            if (isupper((unsigned char)*p))
                return true;
        }
    }
    return false;
}

const char *audit_personal_data_kind(const char *text)
{
    if (text == NULL)
        return NULL;
    for (size_t i = 0; text[i] != '\0'; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '@' && email_at(text, i))
            return "e-mail";
        bool starts = i == 0 || !isalnum((unsigned char)text[i - 1]);
        if (starts && (isdigit(c) || c == '+' || c == '(')) {
            size_t run = 0;
            if (phone_run(text + i, &run))
                return "phone";
            if (run > 1)
                i += run - 1;
            continue;
        }
        if (name_marker_at(text, i))
            return "name";
    }
    return NULL;
}

/* ---- report building ------------------------------------------------------
 */
struct version {
    uint32_t number;
    const struct audit_entry *entry; /* the registering tx */
    size_t pos;                      /* its index in the entries */
    Tc__Outcome **outcomes;
    size_t n_outcomes;
    const char *reason;  /* NULL for version 1 */
    size_t approved_pos; /* first approval, SIZE_MAX if none */
    const struct audit_entry *approval;
    /* chronological state while scanning consents */
    bool approved, suspended, terminated;
    size_t f_missing, f_unapproved; /* finding indexes, SIZE_MAX if none */
    size_t n_missing, n_unapproved;
};

struct party {
    const uint8_t *pseudonym;
    size_t len;
    bool participation;
    const char *scopes[SCOPES_MAX];
    size_t n_scopes;
    const struct audit_entry *withdrawal; /* last one, may be NULL */
};

struct dataset {
    const char *id;
    const struct audit_entry *entry;
    const Tc__DatasetRegister *reg;
};

struct grant {
    const struct audit_entry *entry;
    size_t dataset; /* index in ctx.datasets, SIZE_MAX when unknown */
    const Tc__AccessGrant *g;
    const struct audit_entry *revoked;
};

struct ctx {
    const struct audit_input *in;
    struct audit_report *out;
    int rv;
    const Tc__ProtocolRegister *reg;
    const struct audit_entry *reg_entry;
    size_t reg_pos;
    struct version *versions;
    size_t n_versions;
    size_t first_consent;       /* index of the first accepted consent record */
    bool terminated, suspended; /* the whole trial (decisions on version 0) */
    struct party *parties;
    size_t n_parties, cap_parties;
    struct dataset *datasets;
    size_t n_datasets, cap_datasets;
    struct grant *grants;
    size_t n_grants, cap_grants;
    /* set while a refused tx is checked as an attempt: findings are then
     * per attempt, capped at medium, and nothing changes state */
    const struct audit_entry *attempt;
};

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

static struct audit_finding *finding_add(struct ctx *c, const char *check,
                                         enum audit_severity sev,
                                         const char *rule, const char *fmt, ...)
    LG_PRINTF(5, 6);

static struct audit_finding *finding_add(struct ctx *c, const char *check,
                                         enum audit_severity sev,
                                         const char *rule, const char *fmt, ...)
{
    struct audit_report *r = c->out;
    if (c->rv != 0)
        return NULL;
    if (!grow((void **)&r->items, &r->cap_items, r->n_items + 1,
              sizeof *r->items)) {
        c->rv = LG_ENOMEM;
        return NULL;
    }
    struct audit_finding *f = &r->items[r->n_items++];
    memset(f, 0, sizeof *f);
    f->check = check;
    f->severity = sev;
    f->rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->sentence, sizeof f->sentence, fmt, ap);
    va_end(ap);
    return f;
}

static void evidence_add(struct audit_finding *f, const struct audit_entry *e,
                         const char *note)
{
    if (f == NULL || e == NULL)
        return;
    for (size_t i = 0; i < f->n_evidence; i++) {
        if (memcmp(f->evidence[i].tx_id, e->tx_id, 32) == 0)
            return;
    }
    if (f->n_evidence == AUDIT_EVIDENCE_MAX) {
        f->n_evidence_omitted++;
        return;
    }
    struct audit_evidence *ev = &f->evidence[f->n_evidence++];
    memcpy(ev->tx_id, e->tx_id, 32);
    ev->height = e->height;
    ev->log_index = e->log_index;
    ev->proof = e->proof;
    snprintf(ev->note, sizeof ev->note, "%s", note ? note : "");
}

static const char *entry_trial(const Tc__Tx *tx)
{
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        return tx->protocol_register->trial_id;
    case TC__TX__BODY_PROTOCOL_AMEND:
        return tx->protocol_amend->trial_id;
    case TC__TX__BODY_ETHICS:
        return tx->ethics->trial_id;
    case TC__TX__BODY_SITE_AUTHORIZE:
        return tx->site_authorize->trial_id;
    case TC__TX__BODY_CONSENT:
        return tx->consent->trial_id;
    case TC__TX__BODY_DATASET_REGISTER:
        return tx->dataset_register->trial_id;
    case TC__TX__BODY_RESULTS_REGISTER:
        return tx->results_register->trial_id;
    default:
        return NULL; /* grants, revocations, events, attestations */
    }
}

static const char *body_name(const Tc__Tx *tx)
{
    switch (tx ? tx->body_case : TC__TX__BODY__NOT_SET) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        return "protocol registration";
    case TC__TX__BODY_PROTOCOL_AMEND:
        return "protocol amendment";
    case TC__TX__BODY_ETHICS:
        return "ethics decision";
    case TC__TX__BODY_SITE_AUTHORIZE:
        return "site authorization";
    case TC__TX__BODY_CONSENT:
        return "consent";
    case TC__TX__BODY_DATASET_REGISTER:
        return "dataset registration";
    case TC__TX__BODY_ACCESS_GRANT:
        return "access grant";
    case TC__TX__BODY_ACCESS_REVOKE:
        return "access revocation";
    case TC__TX__BODY_ACCESS_EVENT:
        return "access event";
    case TC__TX__BODY_RESULTS_REGISTER:
        return "results registration";
    case TC__TX__BODY_ATTESTATION:
        return "audit attestation";
    default:
        return "transaction";
    }
}

static bool accepted(const struct audit_entry *e)
{
    return e->tx != NULL && !e->rejected;
}

static struct version *version_get(struct ctx *c, uint32_t number)
{
    for (size_t i = 0; i < c->n_versions; i++) {
        if (c->versions[i].number == number)
            return &c->versions[i];
    }
    return NULL;
}

/* Only an ethics board's decision counts, whatever a node accepted; an
 * unknown role (no genesis at hand) trusts the registry. */
static bool ethics_signer(const struct audit_entry *e)
{
    return e->signer_role == ROLE_ETHICS_BOARD || e->signer_role == ROLE_NONE;
}

/* Pass 1: versions, their first approvals, the first consent. */
static void collect_versions(struct ctx *c)
{
    const struct audit_input *in = c->in;
    c->versions = calloc(in->n_entries + 1, sizeof *c->versions);
    if (c->versions == NULL) {
        c->rv = LG_ENOMEM;
        return;
    }
    c->first_consent = SIZE_MAX;
    for (size_t i = 0; i < in->n_entries; i++) {
        const struct audit_entry *e = &in->entries[i];
        if (!accepted(e))
            continue;
        const Tc__Tx *tx = e->tx;
        struct version *v = NULL;
        if (tx->body_case == TC__TX__BODY_PROTOCOL_REGISTER && c->reg == NULL) {
            c->reg = tx->protocol_register;
            c->reg_entry = e;
            c->reg_pos = i;
            v = &c->versions[c->n_versions++];
            v->number = 1;
            v->outcomes = c->reg->outcomes;
            v->n_outcomes = c->reg->n_outcomes;
        } else if (tx->body_case == TC__TX__BODY_PROTOCOL_AMEND &&
                   version_get(c, tx->protocol_amend->version) == NULL) {
            v = &c->versions[c->n_versions++];
            v->number = tx->protocol_amend->version;
            v->outcomes = tx->protocol_amend->outcomes;
            v->n_outcomes = tx->protocol_amend->n_outcomes;
            v->reason = tx->protocol_amend->reason;
        } else if (tx->body_case == TC__TX__BODY_ETHICS &&
                   tx->ethics->action == TC__ETHICS_ACTION__ETHICS_APPROVE &&
                   ethics_signer(e)) {
            struct version *a = version_get(c, tx->ethics->version);
            if (a != NULL && a->approval == NULL) {
                a->approval = e;
                a->approved_pos = i;
            }
        } else if (tx->body_case == TC__TX__BODY_CONSENT &&
                   tx->consent->action == TC__CONSENT_ACTION__CONSENT_RECORD &&
                   c->first_consent == SIZE_MAX) {
            c->first_consent = i;
        }
        if (v != NULL) {
            v->entry = e;
            v->pos = i;
            v->approved_pos = SIZE_MAX;
            v->f_missing = v->f_unapproved = SIZE_MAX;
        }
    }
}

/* ---- outcome-switched -----------------------------------------------------
 */
/* The pre-specified outcome a reported one is: the same normalized measure
 * and time frame; else, unless matching by text only (imported results),
 * the same id; else the same measure (a changed time frame). */
static const Tc__Outcome *outcome_match(const struct version *v,
                                        const Tc__ReportedOutcome *r,
                                        bool by_text, bool *tf_same)
{
    *tf_same = true;
    for (size_t i = 0; i < v->n_outcomes; i++) {
        if (norm_eq(v->outcomes[i]->measure, r->measure) &&
            norm_eq(v->outcomes[i]->time_frame, r->time_frame))
            return v->outcomes[i];
    }
    if (!by_text && !is_empty(r->outcome_id)) {
        for (size_t i = 0; i < v->n_outcomes; i++) {
            if (strcmp(v->outcomes[i]->id, r->outcome_id) == 0) {
                *tf_same = norm_eq(v->outcomes[i]->time_frame, r->time_frame);
                return v->outcomes[i];
            }
        }
    }
    for (size_t i = 0; i < v->n_outcomes; i++) {
        if (norm_eq(v->outcomes[i]->measure, r->measure)) {
            *tf_same = false;
            return v->outcomes[i];
        }
    }
    return NULL;
}

static const Tc__Outcome *outcome_in(const struct version *v,
                                     const Tc__Outcome *o)
{
    for (size_t i = 0; i < v->n_outcomes; i++) {
        if (!is_empty(o->id) && strcmp(v->outcomes[i]->id, o->id) == 0)
            return v->outcomes[i];
    }
    for (size_t i = 0; i < v->n_outcomes; i++) {
        if (norm_eq(v->outcomes[i]->measure, o->measure))
            return v->outcomes[i];
    }
    return NULL;
}

static const char *type_name(Tc__OutcomeType t)
{
    switch (t) {
    case TC__OUTCOME_TYPE__OUTCOME_PRIMARY:
        return "primary";
    case TC__OUTCOME_TYPE__OUTCOME_SECONDARY:
        return "secondary";
    case TC__OUTCOME_TYPE__OUTCOME_OTHER:
        return "other";
    default:
        return "unspecified";
    }
}

struct switch_ctx {
    struct ctx *c;
    const struct version *base;
    const struct version *declared; /* approved amendment with a reason */
    const struct audit_entry *results;
};

/* Records one discrepancy: flagged, or a note when declared. */
static void switch_report(struct switch_ctx *s, bool declared,
                          enum audit_severity sev, const char *what)
{
    struct audit_finding *f;
    if (declared) {
        f = finding_add(s->c, "outcome-switched", AUDIT_INFO, RULE_OUTCOME,
                        "%s Declared by amendment v%" PRIu32
                        " (approved; reason: \"%.120s\").",
                        what, s->declared->number, s->declared->reason);
    } else {
        f = finding_add(s->c, "outcome-switched", sev, RULE_OUTCOME, "%s",
                        what);
    }
    char note[AUDIT_NOTE_MAX];
    snprintf(note, sizeof note, "protocol v%" PRIu32 " (pre-specified)",
             s->base->number);
    evidence_add(f, s->base->entry, note);
    if (declared) {
        snprintf(note, sizeof note, "amendment v%" PRIu32, s->declared->number);
        evidence_add(f, s->declared->entry, note);
    }
    evidence_add(f, s->results, "results");
}

static void check_reported(struct switch_ctx *s, const Tc__ResultsRegister *res,
                           const Tc__ReportedOutcome *r, bool *seen)
{
    char what[AUDIT_SENTENCE_MAX];
    bool by_text = res->source != NULL && strcmp(res->source, "ctgov") == 0;
    bool tf_same, dtf = true;
    const struct version *b = s->base, *a = s->declared;
    if (r->not_prespecified) {
        finding_add(s->c, "outcome-switched", AUDIT_INFO, RULE_OUTCOME,
                    "Outcome \"%.160s\" (%.60s) is reported and marked as "
                    "not pre-specified.",
                    r->measure, r->time_frame);
        return;
    }
    const Tc__Outcome *o = outcome_match(b, r, by_text, &tf_same);
    const Tc__Outcome *d = a ? outcome_match(a, r, by_text, &dtf) : NULL;
    if (o == NULL) {
        snprintf(what, sizeof what,
                 "Outcome \"%.160s\" (%.60s) is reported as %s but is not "
                 "in the pre-specified set (protocol v%" PRIu32 ").",
                 r->measure, r->time_frame, type_name(r->type), b->number);
        switch_report(s, d != NULL && dtf, AUDIT_MEDIUM, what);
        return;
    }
    for (size_t i = 0; i < b->n_outcomes; i++) {
        if (b->outcomes[i] == o)
            seen[i] = true;
    }
    bool b_primary = o->type == TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    bool r_primary = r->type == TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    bool typed = r->type != TC__OUTCOME_TYPE__OUTCOME_UNSPECIFIED;
    if (typed && b_primary && !r_primary) {
        snprintf(what, sizeof what,
                 "Pre-specified primary outcome %s \"%.160s\" is reported as "
                 "%s.",
                 o->id, o->measure, type_name(r->type));
        switch_report(s, d != NULL && d->type == r->type, AUDIT_HIGH, what);
    } else if (typed && !b_primary && r_primary) {
        snprintf(what, sizeof what,
                 "Pre-specified %s outcome %s \"%.160s\" is reported as "
                 "primary.",
                 type_name(o->type), o->id, o->measure);
        switch_report(s, d != NULL && d->type == r->type, AUDIT_HIGH, what);
    }
    if (!norm_eq(o->measure, r->measure)) {
        snprintf(what, sizeof what,
                 "Outcome %s is reported with measure \"%.160s\" instead of "
                 "the pre-specified \"%.160s\".",
                 o->id, r->measure, o->measure);
        switch_report(s, d != NULL && norm_eq(d->measure, r->measure),
                      AUDIT_MEDIUM, what);
    }
    if (!tf_same) {
        snprintf(what, sizeof what,
                 "Outcome %s \"%.120s\" is reported with time frame "
                 "\"%.80s\" instead of the pre-specified \"%.80s\".",
                 o->id, o->measure, r->time_frame, o->time_frame);
        switch_report(s, d != NULL && dtf, AUDIT_MEDIUM, what);
    }
}

static void check_results_outcomes(struct ctx *c, const struct version *base,
                                   size_t res_pos)
{
    const struct audit_entry *e = &c->in->entries[res_pos];
    const Tc__ResultsRegister *res = e->tx->results_register;
    struct switch_ctx s = {.c = c, .base = base, .results = e};
    /* the latest amendment after the baseline that was approved before the
     * results and gives a reason: what the sponsor declared */
    for (size_t i = 0; i < c->n_versions; i++) {
        const struct version *v = &c->versions[i];
        if (v->number > base->number && v->pos < res_pos &&
            v->approved_pos < res_pos && !is_empty(v->reason) &&
            (s.declared == NULL || v->number > s.declared->number))
            s.declared = v;
    }
    bool *seen = calloc(base->n_outcomes + 1, sizeof *seen);
    if (seen == NULL) {
        c->rv = LG_ENOMEM;
        return;
    }
    for (size_t i = 0; i < res->n_outcomes; i++)
        check_reported(&s, res, res->outcomes[i], seen);
    for (size_t i = 0; i < base->n_outcomes; i++) {
        const Tc__Outcome *o = base->outcomes[i];
        if (seen[i] || o->type != TC__OUTCOME_TYPE__OUTCOME_PRIMARY)
            continue;
        char what[AUDIT_SENTENCE_MAX];
        snprintf(what, sizeof what,
                 "Pre-specified primary outcome %s \"%.160s\" (%.60s) is "
                 "missing from the results.",
                 o->id, o->measure, o->time_frame);
        const Tc__Outcome *d = s.declared ? outcome_in(s.declared, o) : NULL;
        bool declared =
            s.declared != NULL &&
            (d == NULL || d->type != TC__OUTCOME_TYPE__OUTCOME_PRIMARY);
        switch_report(&s, declared, AUDIT_HIGH, what);
    }
    free(seen);
}

static void check_outcomes(struct ctx *c)
{
    const struct audit_input *in = c->in;
    if (c->n_versions == 0)
        return;
    /* the pre-specified set: the latest version registered before the first
     * consent; version 1 when nobody has been consented */
    const struct version *base = &c->versions[0];
    for (size_t i = 0; i < c->n_versions; i++) {
        if (c->first_consent != SIZE_MAX &&
            c->versions[i].pos < c->first_consent &&
            c->versions[i].number > base->number)
            base = &c->versions[i];
    }
    bool any = false;
    for (size_t i = 0; i < in->n_entries && c->rv == 0; i++) {
        const struct audit_entry *e = &in->entries[i];
        if (!accepted(e) || e->tx->body_case != TC__TX__BODY_RESULTS_REGISTER)
            continue;
        if (!any) {
            struct audit_finding *f = finding_add(
                c, "outcome-switched", AUDIT_INFO, RULE_OUTCOME,
                "Reported outcomes are compared with protocol v%" PRIu32
                " (%zu outcomes), %s.",
                base->number, base->n_outcomes,
                c->first_consent == SIZE_MAX
                    ? "the registered version (no consent on the ledger)"
                    : "the version in force when the first participant was "
                      "consented");
            evidence_add(f, base->entry, "pre-specified set");
            if (c->first_consent != SIZE_MAX)
                evidence_add(f, &in->entries[c->first_consent],
                             "first consent");
        }
        any = true;
        check_results_outcomes(c, base, i);
    }
}

/* ---- registered-late ------------------------------------------------------
 */
static void check_registration(struct ctx *c)
{
    const struct audit_input *in = c->in;
    if (c->reg == NULL) {
        finding_add(c, "registered-late", AUDIT_INFO, RULE_REG_LEDGER,
                    "No accepted protocol registration for this trial is on "
                    "the ledger.");
        return;
    }
    if (c->first_consent != SIZE_MAX && c->first_consent < c->reg_pos) {
        struct audit_finding *f = finding_add(
            c, "registered-late", AUDIT_HIGH, RULE_REG_LEDGER,
            "The protocol was registered at height %" PRIu64
            ", after the first consent on the ledger at height %" PRIu64 ".",
            c->reg_entry->height, in->entries[c->first_consent].height);
        evidence_add(f, &in->entries[c->first_consent], "first consent");
        evidence_add(f, c->reg_entry, "registration");
    }
    const char *sub = c->reg->registry_first_submitted;
    const char *start = c->reg->start_date;
    if (is_empty(sub) || is_empty(start))
        return;
    int64_t s_lo, s_hi, r_lo, r_hi;
    if (!audit_date_range(start, &s_lo, &s_hi) ||
        !audit_date_range(sub, &r_lo, &r_hi)) {
        struct audit_finding *f = finding_add(
            c, "registered-late", AUDIT_INFO, RULE_REG_ICMJE,
            "The registry dates (start \"%.20s\", first submitted \"%.20s\") "
            "are not dates this audit can read.",
            start, sub);
        evidence_add(f, c->reg_entry, "registration");
        return;
    }
    /* only certain lateness is flagged: the latest day the start may mean
     * against the earliest day the submission may mean */
    struct audit_finding *f = NULL;
    if (r_lo > s_hi + 21) {
        f = finding_add(c, "registered-late", AUDIT_HIGH, RULE_REG_FDAAA,
                        "The registry record was first submitted on %.20s, "
                        "%" PRId64 " days after the study start (%.20s): "
                        "registered retrospectively (ICMJE) and more than 21 "
                        "days late (FDAAA).",
                        sub, r_lo - s_hi, start);
    } else if (r_lo > s_hi) {
        f = finding_add(c, "registered-late", AUDIT_MEDIUM, RULE_REG_ICMJE,
                        "The registry record was first submitted on %.20s, "
                        "after the study start (%.20s) (ICMJE), within the "
                        "21 days FDAAA allows.",
                        sub, start);
    } else if (r_hi > s_lo) {
        f = finding_add(c, "registered-late", AUDIT_INFO, RULE_REG_ICMJE,
                        "The registry dates (first submitted %.20s, start "
                        "%.20s) are too coarse to tell whether registration "
                        "preceded the start.",
                        sub, start);
    }
    evidence_add(f, c->reg_entry, "registration");
}

/* ---- consent, data and access (one chronological pass) --------------------
 */
static struct party *party_find(struct ctx *c, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < c->n_parties; i++) {
        if (c->parties[i].len == len &&
            memcmp(c->parties[i].pseudonym, p, len) == 0)
            return &c->parties[i];
    }
    return NULL;
}

/* Does a participant's consent cover a purpose? The registry's own rule
 * (node/duo.h): GA4GH DUO permissions and modifiers. An empty purpose asks
 * only for participation. */
static bool scope_covers(const struct party *p, const char *purpose)
{
    if (!p->participation || is_empty(purpose))
        return p->participation;
    struct duo_purpose dp;
    if (!duo_purpose_parse(purpose, &dp))
        return false;
    const char *scopes[SCOPES_MAX + 1];
    scopes[0] = DUO_PARTICIPATION;
    for (size_t i = 0; i < p->n_scopes; i++)
        scopes[i + 1] = p->scopes[i];
    return duo_covers(scopes, p->n_scopes + 1, &dp);
}

static void consent_state_check(struct ctx *c, const struct audit_entry *e,
                                const Tc__Consent *k)
{
    struct version *v = version_get(c, k->protocol_version);
    struct audit_report *r = c->out;
    struct audit_finding *f;
    if (v == NULL) {
        /* a refused consent naming no version is only a bad reference */
        if (c->attempt != NULL)
            return;
        f = finding_add(c, "approval-missing", AUDIT_HIGH, RULE_APPROVAL,
                        "A consent was recorded under protocol version "
                        "%" PRIu32 ", which does not exist on the ledger.",
                        k->protocol_version);
        evidence_add(f, e, "consent");
        return;
    }
    if (v->approval == NULL || v->approved_pos > (size_t)(e - c->in->entries)) {
        /* never approved before this use */
        if (c->attempt != NULL) {
            f = finding_add(c, "approval-missing", AUDIT_HIGH, RULE_APPROVAL,
                            "A consent under protocol version %" PRIu32
                            ", which had no ethics approval then.",
                            v->number);
        } else if (v->f_missing == SIZE_MAX) {
            v->f_missing = r->n_items;
            f = finding_add(c, "approval-missing", AUDIT_HIGH, RULE_APPROVAL,
                            "-");
        } else {
            f = &r->items[v->f_missing];
        }
        evidence_add(f, v->entry, "protocol version");
        evidence_add(f, e, "consent");
        v->n_missing += c->attempt == NULL;
        return;
    }
    const char *why = NULL;
    uint32_t newer = 0;
    for (size_t i = 0; i < c->n_versions; i++) {
        const struct version *w = &c->versions[i];
        if (w->number > v->number && w->approved && !w->suspended &&
            !w->terminated)
            newer = w->number > newer ? w->number : newer;
    }
    bool stopped = c->terminated || v->terminated;
    if (stopped)
        why = "the ethics board had terminated it";
    else if (v->suspended || c->suspended)
        why = "the ethics board had suspended it";
    else if (newer != 0)
        why = "it had been superseded by a newer approved version";
    if (why == NULL)
        return;
    enum audit_severity sev =
        newer != 0 && !stopped && !v->suspended && !c->suspended ? AUDIT_MEDIUM
                                                                 : AUDIT_HIGH;
    if (c->attempt != NULL) {
        f = finding_add(
            c, "consent-unapproved-version", sev, RULE_CONSENT_VERSION,
            "A consent under protocol version %" PRIu32 " after %s.", v->number,
            why);
    } else if (v->f_unapproved == SIZE_MAX) {
        v->f_unapproved = r->n_items;
        f = finding_add(c, "consent-unapproved-version", sev,
                        RULE_CONSENT_VERSION, "%s", why);
    } else {
        f = &r->items[v->f_unapproved];
    }
    evidence_add(f, v->approval, "approval");
    evidence_add(f, e, "consent");
    v->n_unapproved += c->attempt == NULL;
}

static void consent_apply(struct ctx *c, const struct audit_entry *e)
{
    const Tc__Consent *k = e->tx->consent;
    struct party *p = party_find(c, k->pseudonym.data, k->pseudonym.len);
    if (k->action == TC__CONSENT_ACTION__CONSENT_RECORD) {
        consent_state_check(c, e, k);
        if (p == NULL) {
            if (!grow((void **)&c->parties, &c->cap_parties, c->n_parties + 1,
                      sizeof *c->parties)) {
                c->rv = LG_ENOMEM;
                return;
            }
            p = &c->parties[c->n_parties++];
            memset(p, 0, sizeof *p);
            p->pseudonym = k->pseudonym.data;
            p->len = k->pseudonym.len;
        }
        /* a record states the full set consented from now on */
        p->n_scopes = 0;
        p->participation = false;
        for (size_t i = 0; i < k->n_scopes && p->n_scopes < SCOPES_MAX; i++) {
            if (strcmp(k->scopes[i], DUO_PARTICIPATION) == 0)
                p->participation = true;
            else
                p->scopes[p->n_scopes++] = k->scopes[i];
        }
        return;
    }
    if (k->action != TC__CONSENT_ACTION__CONSENT_WITHDRAW || p == NULL)
        return;
    p->withdrawal = e;
    if (k->n_scopes == 0) {
        p->participation = false;
        p->n_scopes = 0;
        return;
    }
    for (size_t i = 0; i < k->n_scopes; i++) {
        if (strcmp(k->scopes[i], DUO_PARTICIPATION) == 0) {
            p->participation = false;
            p->n_scopes = 0;
            return;
        }
        for (size_t j = 0; j < p->n_scopes; j++) {
            if (strcmp(p->scopes[j], k->scopes[i]) == 0) {
                p->scopes[j] = p->scopes[--p->n_scopes];
                break;
            }
        }
    }
}

static void dataset_apply(struct ctx *c, const struct audit_entry *e)
{
    const Tc__DatasetRegister *d = e->tx->dataset_register;
    if (c->attempt == NULL) {
        if (!grow((void **)&c->datasets, &c->cap_datasets, c->n_datasets + 1,
                  sizeof *c->datasets)) {
            c->rv = LG_ENOMEM;
            return;
        }
        c->datasets[c->n_datasets++] =
            (struct dataset){.id = d->dataset_id, .entry = e, .reg = d};
    }
    size_t none = 0, withdrawn = 0;
    struct audit_finding *f = NULL;
    for (size_t i = 0; i < d->n_participants; i++) {
        const struct party *p =
            party_find(c, d->participants[i].data, d->participants[i].len);
        if (p != NULL && p->participation)
            continue;
        if (f == NULL) {
            f = finding_add(c, "data-without-consent", AUDIT_HIGH,
                            RULE_DATA_CONSENT, "-");
            evidence_add(f, e, "dataset");
        }
        if (p == NULL) {
            none++;
        } else {
            withdrawn++;
            evidence_add(f, p->withdrawal, "withdrawal");
        }
    }
    if (f != NULL)
        snprintf(f->sentence, sizeof f->sentence,
                 "Dataset \"%.80s\" (height %" PRIu64 ") lists %zu of its "
                 "%zu participants without participation consent in force "
                 "then: %zu never consented, %zu had withdrawn.",
                 d->dataset_id, e->height, none + withdrawn, d->n_participants,
                 none, withdrawn);
}

static size_t dataset_find(struct ctx *c, const char *id)
{
    for (size_t i = c->n_datasets; i > 0; i--) {
        if (strcmp(c->datasets[i - 1].id, id) == 0)
            return i - 1;
    }
    return SIZE_MAX;
}

/* Participants of ds whose consent does not cover purpose now; the last
 * withdrawal among them goes to *withdrawal. */
static size_t uncovered(struct ctx *c, const struct dataset *ds,
                        const char *purpose,
                        const struct audit_entry **withdrawal)
{
    size_t n = 0;
    *withdrawal = NULL;
    for (size_t i = 0; i < ds->reg->n_participants; i++) {
        const struct party *p = party_find(c, ds->reg->participants[i].data,
                                           ds->reg->participants[i].len);
        if (p != NULL && scope_covers(p, purpose))
            continue;
        n++;
        if (p != NULL && p->withdrawal != NULL)
            *withdrawal = p->withdrawal;
    }
    return n;
}

static void grant_apply(struct ctx *c, const struct audit_entry *e)
{
    const Tc__AccessGrant *g = e->tx->access_grant;
    size_t di = dataset_find(c, g->dataset_id);
    if (c->attempt == NULL) {
        if (!grow((void **)&c->grants, &c->cap_grants, c->n_grants + 1,
                  sizeof *c->grants)) {
            c->rv = LG_ENOMEM;
            return;
        }
        c->grants[c->n_grants++] =
            (struct grant){.entry = e, .dataset = di, .g = g};
    }
    if (di == SIZE_MAX)
        return;
    const struct dataset *ds = &c->datasets[di];
    const struct audit_entry *w;
    size_t n = uncovered(c, ds, g->purpose, &w);
    if (n == 0)
        return;
    struct audit_finding *f = finding_add(
        c, "access-outside-consent", AUDIT_HIGH, RULE_ACCESS,
        "Access to dataset \"%.80s\" was granted to %.64s for purpose %.40s, "
        "which the consent of %zu of its %zu participants does not cover.",
        g->dataset_id, g->grantee, g->purpose, n, ds->reg->n_participants);
    evidence_add(f, e, "grant");
    evidence_add(f, ds->entry, "dataset");
    evidence_add(f, w, "withdrawal");
}

static struct grant *grant_find(struct ctx *c, const ProtobufCBinaryData *id)
{
    if (id->len != 32)
        return NULL;
    for (size_t i = 0; i < c->n_grants; i++) {
        if (memcmp(c->grants[i].entry->tx_id, id->data, 32) == 0)
            return &c->grants[i];
    }
    return NULL;
}

static void event_apply(struct ctx *c, const struct audit_entry *e)
{
    const Tc__AccessEvent *ev = e->tx->access_event;
    const struct grant *g = grant_find(c, &ev->grant_tx);
    if (g == NULL || g->dataset == SIZE_MAX)
        return;
    const struct dataset *ds = &c->datasets[g->dataset];
    char why[AUDIT_SENTENCE_MAX] = "";
    size_t o = 0;
    const struct audit_entry *w = NULL;
    const char *purpose = is_empty(ev->purpose) ? g->g->purpose : ev->purpose;
    if (g->revoked != NULL)
        o += (size_t)snprintf(why + o, sizeof why - o,
                              " after the grant was revoked at height %" PRIu64
                              ";",
                              g->revoked->height);
    if (g->g->expires_ms != 0 && e->time_ms > g->g->expires_ms && o < 300)
        o += (size_t)snprintf(why + o, sizeof why - o,
                              " after the grant expired;");
    if (strcmp(purpose, g->g->purpose) != 0 && o < 300)
        o += (size_t)snprintf(why + o, sizeof why - o,
                              " for purpose %.40s, not the granted %.40s;",
                              purpose, g->g->purpose);
    size_t n = uncovered(c, ds, purpose, &w);
    if (n > 0 && o < 300)
        o += (size_t)snprintf(why + o, sizeof why - o,
                              " when the consent of %zu participant(s) no "
                              "longer covered %.40s%s;",
                              n, purpose, w ? " (withdrawn)" : "");
    if (o == 0)
        return;
    why[o - 1] = '\0'; /* the last ';' */
    struct audit_finding *f =
        finding_add(c, "access-outside-consent", AUDIT_HIGH, RULE_ACCESS,
                    "Dataset \"%.80s\" was accessed at height %" PRIu64 "%s.",
                    ds->id, e->height, why);
    evidence_add(f, e, "access");
    evidence_add(f, g->entry, "grant");
    evidence_add(f, g->revoked, "revocation");
    evidence_add(f, w, "withdrawal");
}

/* The registry's rules: a decision on version 0 is on the whole trial; an
 * approval lifts the version's and the trial's suspension; termination is
 * final. */
static void ethics_apply(struct ctx *c, const Tc__EthicsDecision *d)
{
    struct version *v = version_get(c, d->version);
    switch (d->action) {
    case TC__ETHICS_ACTION__ETHICS_APPROVE:
        if (v != NULL) {
            v->approved = true;
            v->suspended = false;
            c->suspended = false;
        }
        break;
    case TC__ETHICS_ACTION__ETHICS_SUSPEND:
        if (d->version == 0)
            c->suspended = true;
        else if (v != NULL)
            v->suspended = true;
        break;
    case TC__ETHICS_ACTION__ETHICS_TERMINATE:
        if (d->version == 0)
            c->terminated = true;
        else if (v != NULL)
            v->terminated = true;
        break;
    default:
        break;
    }
}

/* A refused consent, dataset, grant or access is judged as if it had
 * happened: what was attempted is reported under its own check (as an
 * attempt, at most medium) besides rejected-attempts. */
static void check_attempt(struct ctx *c, const struct audit_entry *e)
{
    size_t first = c->out->n_items;
    c->attempt = e;
    switch (e->tx->body_case) {
    case TC__TX__BODY_CONSENT:
        if (e->tx->consent->action == TC__CONSENT_ACTION__CONSENT_RECORD)
            consent_state_check(c, e, e->tx->consent);
        break;
    case TC__TX__BODY_DATASET_REGISTER:
        dataset_apply(c, e);
        break;
    case TC__TX__BODY_ACCESS_GRANT:
        grant_apply(c, e);
        break;
    case TC__TX__BODY_ACCESS_EVENT:
        event_apply(c, e);
        break;
    default:
        break;
    }
    c->attempt = NULL;
    for (size_t i = first; i < c->out->n_items && c->rv == 0; i++) {
        struct audit_finding *f = &c->out->items[i];
        char said[AUDIT_SENTENCE_MAX];
        memcpy(said, f->sentence, sizeof said);
        snprintf(f->sentence, sizeof f->sentence,
                 "Attempted at height %" PRIu64
                 " and refused by the registry (%.40s): %.400s",
                 e->height, is_empty(e->code) ? "rejected" : e->code, said);
        if (f->severity > AUDIT_MEDIUM)
            f->severity = AUDIT_MEDIUM;
    }
}

static void check_chronology(struct ctx *c)
{
    const struct audit_input *in = c->in;
    for (size_t i = 0; i < in->n_entries && c->rv == 0; i++) {
        const struct audit_entry *e = &in->entries[i];
        if (e->tx == NULL)
            continue;
        if (e->rejected) {
            check_attempt(c, e);
            continue;
        }
        switch (e->tx->body_case) {
        case TC__TX__BODY_ETHICS:
            if (ethics_signer(e))
                ethics_apply(c, e->tx->ethics);
            break;
        case TC__TX__BODY_CONSENT:
            consent_apply(c, e);
            break;
        case TC__TX__BODY_DATASET_REGISTER:
            dataset_apply(c, e);
            break;
        case TC__TX__BODY_ACCESS_GRANT:
            grant_apply(c, e);
            break;
        case TC__TX__BODY_ACCESS_REVOKE: {
            struct grant *g = grant_find(c, &e->tx->access_revoke->grant_tx);
            if (g != NULL && g->revoked == NULL)
                g->revoked = e;
            break;
        }
        case TC__TX__BODY_ACCESS_EVENT:
            event_apply(c, e);
            break;
        default:
            break;
        }
    }
    /* sentences for the per-version findings, now that counts are known */
    for (size_t i = 0; i < c->n_versions && c->rv == 0; i++) {
        const struct version *v = &c->versions[i];
        if (v->f_missing != SIZE_MAX)
            snprintf(c->out->items[v->f_missing].sentence, AUDIT_SENTENCE_MAX,
                     "Protocol version %" PRIu32 " was used for %zu "
                     "consent(s) before any ethics approval of it.",
                     v->number, v->n_missing);
        if (v->f_unapproved != SIZE_MAX) {
            char why[AUDIT_SENTENCE_MAX];
            memcpy(why, c->out->items[v->f_unapproved].sentence, sizeof why);
            snprintf(c->out->items[v->f_unapproved].sentence,
                     AUDIT_SENTENCE_MAX,
                     "%zu consent(s) were recorded under protocol version "
                     "%" PRIu32 " after %.200s.",
                     v->n_unapproved, v->number, why);
        }
    }
}

/* ---- results-late / results-overdue ---------------------------------------
 */
static void check_results_time(struct ctx *c)
{
    const struct audit_input *in = c->in;
    const struct audit_entry *res = NULL;
    for (size_t i = 0; i < in->n_entries && res == NULL; i++) {
        if (accepted(&in->entries[i]) &&
            in->entries[i].tx->body_case == TC__TX__BODY_RESULTS_REGISTER)
            res = &in->entries[i];
    }
    const char *pcd = c->reg ? c->reg->primary_completion_date : NULL;
    bool actual = c->reg && c->reg->primary_completion_actual;
    if (res != NULL &&
        !is_empty(res->tx->results_register->actual_primary_completion_date)) {
        pcd = res->tx->results_register->actual_primary_completion_date;
        actual = true;
    }
    int64_t lo, hi;
    if (is_empty(pcd) || !audit_date_range(pcd, &lo, &hi)) {
        if (c->reg != NULL)
            finding_add(c, "results-late", AUDIT_INFO, RULE_RESULTS,
                        "No readable primary completion date is registered, "
                        "so the results deadline cannot be judged.");
        return;
    }
    /* a partial date is given the benefit of its last day */
    int64_t due = audit_add_months(hi, 12);
    char due_s[16], when_s[16];
    audit_day_str(due, due_s);
    if (res != NULL) {
        int64_t day = ms_day(res->time_ms);
        audit_day_str(day, when_s);
        if (day <= due)
            return;
        struct audit_finding *f = finding_add(
            c, "results-late", AUDIT_MEDIUM, RULE_RESULTS,
            "Results were registered on %s (height %" PRIu64 "), %d months "
            "after the primary completion date %.20s; they were due by %s.",
            when_s, res->height, months_between(hi, day), pcd, due_s);
        evidence_add(f, res, "results");
        evidence_add(f, c->reg_entry, "registration");
        return;
    }
    int64_t now = ms_day(in->tip.time_ms);
    if (c->reg == NULL || now <= due)
        return;
    audit_day_str(now, when_s);
    struct audit_finding *f = finding_add(
        c, "results-overdue", AUDIT_MEDIUM, RULE_RESULTS,
        "No results are registered as of %s (height %" PRIu64 "); the %s "
        "primary completion date was %.20s, so results were due by %s.",
        when_s, in->tip.height, actual ? "actual" : "estimated", pcd, due_s);
    evidence_add(f, c->reg_entry, "registration");
}

/* ---- rejected-attempts, ledger-integrity ----------------------------------
 */
static void check_rejected(struct ctx *c)
{
    const struct audit_input *in = c->in;
    struct audit_finding *f = NULL;
    size_t n = 0;
    char note[AUDIT_NOTE_MAX];
    for (size_t i = 0; i < in->n_entries && c->rv == 0; i++) {
        const struct audit_entry *e = &in->entries[i];
        if (!e->rejected)
            continue;
        if (f == NULL)
            f = finding_add(c, "rejected-attempts", AUDIT_LOW, RULE_REJECTED,
                            "-");
        n++;
        snprintf(note, sizeof note, "%.30s by %.24s",
                 is_empty(e->code) ? "rejected" : e->code,
                 is_empty(e->signer_name) ? "unknown" : e->signer_name);
        evidence_add(f, e, note);
    }
    const struct audit_entry *first = NULL;
    for (size_t i = 0; i < in->n_entries && first == NULL; i++) {
        if (in->entries[i].rejected)
            first = &in->entries[i];
    }
    if (f != NULL && first != NULL) {
        snprintf(f->sentence, sizeof f->sentence,
                 "%zu transaction(s) for this trial were refused by the "
                 "registry and kept as evidence; the first: a %s by %.40s, "
                 "refused as %.40s%s%.160s%s.",
                 n, body_name(first->tx),
                 is_empty(first->signer_name) ? "an unknown signer"
                                              : first->signer_name,
                 is_empty(first->code) ? "rejected" : first->code,
                 is_empty(first->message) ? "" : " (\"",
                 is_empty(first->message) ? "" : first->message,
                 is_empty(first->message) ? "" : "\")");
    }
}

/* An earlier audit recorded on the ledger: what that auditor saw. The
 * caller has checked (as this entry's proof) that the log it names is a
 * prefix of the tip. */
static void note_attestation(struct ctx *c, const struct audit_entry *e)
{
    const Tc__AuditAttestation *a = e->tx->attestation;
    char hex[65] = "";
    if (a->report_sha256.len == 32)
        lg_hex(a->report_sha256.data, 32, hex);
    struct audit_finding *f = finding_add(
        c, "ledger-integrity", AUDIT_INFO, RULE_INTEGRITY,
        "%.40s attested an audit of this trial at height %" PRIu64
        " (log size %" PRIu64 "): %" PRIu32 " finding(s), report SHA-256 "
        "%.16s...%s",
        is_empty(e->signer_name) ? "An ethics board" : e->signer_name,
        a->height, a->log_size, a->n_findings, hex,
        e->proof == AUDIT_PROOF_OK ? "; that ledger is a prefix of this one."
                                   : ".");
    evidence_add(f, e, "attestation");
}

static void check_integrity(struct ctx *c)
{
    const struct audit_input *in = c->in;
    size_t unchecked = 0, n_failed = 0, failed_f = SIZE_MAX;
    const struct audit_entry *first_failed = NULL;
    if (in->tip_error != NULL)
        finding_add(c, "ledger-integrity", AUDIT_HIGH, RULE_INTEGRITY,
                    "The ledger tip this report is computed at (height "
                    "%" PRIu64 ") does not verify: %.300s.",
                    in->tip.height, in->tip_error);
    for (size_t i = 0; i < in->n_entries && c->rv == 0; i++) {
        const struct audit_entry *e = &in->entries[i];
        const struct audit_entry *prev = i > 0 ? &in->entries[i - 1] : NULL;
        if (e->tx == NULL) {
            struct audit_finding *f = finding_add(
                c, "ledger-integrity", AUDIT_HIGH, RULE_INTEGRITY,
                "The transaction at height %" PRIu64 " (log index %" PRIu64
                ") does not decode as a signed trialchain transaction.",
                e->height, e->log_index);
            evidence_add(f, e, "undecodable");
        }
        if (e->proof == AUDIT_PROOF_FAILED) {
            /* one finding for all failed receipts: a forged view fails
             * them all for the same reason */
            if (failed_f == SIZE_MAX) {
                failed_f = c->out->n_items;
                first_failed = e;
                finding_add(c, "ledger-integrity", AUDIT_HIGH, RULE_INTEGRITY,
                            "-");
            }
            n_failed++;
            if (c->rv == 0)
                evidence_add(&c->out->items[failed_f], e, "receipt failed");
        } else if (e->proof == AUDIT_PROOF_UNCHECKED) {
            unchecked++;
        }
        if (prev != NULL &&
            (e->log_index <= prev->log_index || e->height < prev->height)) {
            struct audit_finding *f = finding_add(
                c, "ledger-integrity", AUDIT_HIGH, RULE_INTEGRITY,
                "Entries are out of ledger order: log index %" PRIu64
                " (height %" PRIu64 ") follows log index %" PRIu64
                " (height %" PRIu64 ").",
                e->log_index, e->height, prev->log_index, prev->height);
            evidence_add(f, prev, "earlier entry");
            evidence_add(f, e, "later entry");
        }
        if (e->height > in->tip.height || e->log_index >= in->tip.log_size) {
            struct audit_finding *f = finding_add(
                c, "ledger-integrity", AUDIT_HIGH, RULE_INTEGRITY,
                "An entry at height %" PRIu64 " lies beyond the ledger tip "
                "the report is computed at (height %" PRIu64 ").",
                e->height, in->tip.height);
            evidence_add(f, e, "beyond tip");
        }
        if (accepted(e) && e->tx->body_case == TC__TX__BODY_ATTESTATION)
            note_attestation(c, e);
        const char *t = e->tx ? entry_trial(e->tx) : NULL;
        if (t != NULL && strcmp(t, in->trial_id) != 0) {
            struct audit_finding *f = finding_add(
                c, "ledger-integrity", AUDIT_HIGH, RULE_INTEGRITY,
                "The node served a %s of trial \"%.64s\" as part of this "
                "trial.",
                body_name(e->tx), t);
            evidence_add(f, e, "other trial");
        }
    }
    if (failed_f != SIZE_MAX && c->rv == 0)
        snprintf(c->out->items[failed_f].sentence, AUDIT_SENTENCE_MAX,
                 "%zu of the %zu transactions this report relies on do not "
                 "verify against the genesis; the first, a %s at height "
                 "%" PRIu64 ": %.300s.",
                 n_failed, in->n_entries, body_name(first_failed->tx),
                 first_failed->height,
                 is_empty(first_failed->proof_error)
                     ? "no reason given"
                     : first_failed->proof_error);
    if (unchecked > 0)
        finding_add(c, "ledger-integrity", AUDIT_INFO, RULE_INTEGRITY,
                    "%zu of %zu entries were not checked against a receipt.",
                    unchecked, in->n_entries);
}

/* ---- personal-data --------------------------------------------------------
 */
struct pd_scan {
    struct ctx *c;
    struct audit_finding *f;
    size_t f_index;
    size_t n;
};

static void pd_text(struct pd_scan *s, const struct audit_entry *e,
                    const char *field, const char *text)
{
    const char *kind = audit_personal_data_kind(text);
    if (kind == NULL)
        return;
    if (s->f_index == SIZE_MAX) {
        s->f_index = s->c->out->n_items;
        if (finding_add(s->c, "personal-data", AUDIT_HIGH, RULE_PERSONAL,
                        "-") == NULL)
            return;
    }
    char note[AUDIT_NOTE_MAX];
    snprintf(note, sizeof note, "%s in %.40s", kind, field);
    s->n++;
    evidence_add(&s->c->out->items[s->f_index], e, note);
}

static void pd_pseudonym(struct pd_scan *s, const struct audit_entry *e,
                         const ProtobufCBinaryData *p)
{
    bool text = p->len > 0;
    for (size_t i = 0; i < p->len && text; i++)
        text = p->data[i] >= 0x20 && p->data[i] < 0x7f;
    if (p->len == 32 && !text)
        return;
    if (s->f_index == SIZE_MAX) {
        s->f_index = s->c->out->n_items;
        if (finding_add(s->c, "personal-data", AUDIT_HIGH, RULE_PERSONAL,
                        "-") == NULL)
            return;
    }
    s->n++;
    evidence_add(&s->c->out->items[s->f_index], e,
                 text ? "readable pseudonym" : "pseudonym not 32 bytes");
}

static void pd_outcomes(struct pd_scan *s, const struct audit_entry *e,
                        Tc__Outcome **o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pd_text(s, e, "outcome measure", o[i]->measure);
        pd_text(s, e, "outcome time frame", o[i]->time_frame);
        pd_text(s, e, "outcome description", o[i]->description);
    }
}

static void pd_entry(struct pd_scan *s, const struct audit_entry *e)
{
    const Tc__Tx *tx = e->tx;
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER: {
        const Tc__ProtocolRegister *p = tx->protocol_register;
        pd_text(s, e, "brief title", p->brief_title);
        pd_text(s, e, "official title", p->official_title);
        pd_text(s, e, "sponsor name", p->sponsor_name);
        pd_outcomes(s, e, p->outcomes, p->n_outcomes);
        break;
    }
    case TC__TX__BODY_PROTOCOL_AMEND:
        pd_text(s, e, "amendment reason", tx->protocol_amend->reason);
        pd_outcomes(s, e, tx->protocol_amend->outcomes,
                    tx->protocol_amend->n_outcomes);
        break;
    case TC__TX__BODY_ETHICS:
        pd_text(s, e, "ethics note", tx->ethics->note);
        break;
    case TC__TX__BODY_CONSENT:
        pd_pseudonym(s, e, &tx->consent->pseudonym);
        for (size_t i = 0; i < tx->consent->n_scopes; i++)
            pd_text(s, e, "consent scope", tx->consent->scopes[i]);
        break;
    case TC__TX__BODY_DATASET_REGISTER:
        pd_text(s, e, "dataset id", tx->dataset_register->dataset_id);
        pd_text(s, e, "anonymization", tx->dataset_register->anonymization);
        for (size_t i = 0; i < tx->dataset_register->n_participants; i++)
            pd_pseudonym(s, e, &tx->dataset_register->participants[i]);
        break;
    case TC__TX__BODY_ACCESS_GRANT:
        pd_text(s, e, "grant purpose", tx->access_grant->purpose);
        break;
    case TC__TX__BODY_ACCESS_REVOKE:
        pd_text(s, e, "revocation reason", tx->access_revoke->reason);
        break;
    case TC__TX__BODY_ACCESS_EVENT:
        pd_text(s, e, "access purpose", tx->access_event->purpose);
        break;
    case TC__TX__BODY_RESULTS_REGISTER:
        for (size_t i = 0; i < tx->results_register->n_outcomes; i++) {
            pd_text(s, e, "result measure",
                    tx->results_register->outcomes[i]->measure);
            pd_text(s, e, "result time frame",
                    tx->results_register->outcomes[i]->time_frame);
        }
        break;
    case TC__TX__BODY_ATTESTATION:
        pd_text(s, e, "attestation summary", tx->attestation->summary);
        break;
    default:
        break;
    }
}

static void check_personal_data(struct ctx *c)
{
    struct pd_scan s = {.c = c, .f_index = SIZE_MAX};
    /* rejected transactions are on the ledger too */
    for (size_t i = 0; i < c->in->n_entries && c->rv == 0; i++) {
        if (c->in->entries[i].tx != NULL)
            pd_entry(&s, &c->in->entries[i]);
    }
    if (s.f_index != SIZE_MAX && c->rv == 0)
        snprintf(c->out->items[s.f_index].sentence, AUDIT_SENTENCE_MAX,
                 "%zu field(s) in this trial's transactions look like "
                 "personal data (an e-mail address, a phone number, a "
                 "person's name or a readable participant id).",
                 s.n);
}

/* ---- entry point ----------------------------------------------------------
 */
int audit_trial(const struct audit_input *in, struct audit_report *out)
{
    if (in == NULL || out == NULL || in->trial_id == NULL ||
        (in->entries == NULL && in->n_entries > 0))
        return LG_EINVAL;
    memset(out, 0, sizeof *out);
    struct ctx c = {.in = in, .out = out};
    snprintf(out->trial_id, sizeof out->trial_id, "%s", in->trial_id);
    out->tip = in->tip;
    collect_versions(&c);
    if (c.reg != NULL)
        snprintf(out->title, sizeof out->title, "%s",
                 c.reg->brief_title ? c.reg->brief_title : "");
    if (c.rv == 0)
        check_outcomes(&c);
    if (c.rv == 0)
        check_registration(&c);
    if (c.rv == 0)
        check_chronology(&c);
    if (c.rv == 0)
        check_results_time(&c);
    if (c.rv == 0)
        check_rejected(&c);
    if (c.rv == 0)
        check_integrity(&c);
    if (c.rv == 0)
        check_personal_data(&c);
    free(c.versions);
    free(c.parties);
    free(c.datasets);
    free(c.grants);
    return c.rv;
}

void audit_report_free(struct audit_report *r)
{
    if (r == NULL)
        return;
    free(r->items);
    r->items = NULL;
    r->n_items = r->cap_items = 0;
}

size_t audit_report_n_findings(const struct audit_report *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_items; i++)
        n += r->items[i].severity > AUDIT_INFO;
    return n;
}

bool audit_report_has(const struct audit_report *r, const char *check,
                      bool include_notes)
{
    for (size_t i = 0; i < r->n_items; i++) {
        if (strcmp(r->items[i].check, check) == 0 &&
            (include_notes || r->items[i].severity > AUDIT_INFO))
            return true;
    }
    return false;
}

static const char *proof_name(enum audit_proof p)
{
    return p == AUDIT_PROOF_OK       ? "verified"
           : p == AUDIT_PROOF_FAILED ? "failed"
                                     : "unchecked";
}

static json_t *finding_json(const struct audit_finding *f)
{
    json_t *ev = json_array();
    char hex[65];
    for (size_t i = 0; ev != NULL && i < f->n_evidence; i++) {
        lg_hex(f->evidence[i].tx_id, 32, hex);
        json_array_append_new(
            ev, json_pack("{s:s, s:I, s:I, s:s, s:s}", "tx_id", hex, "height",
                          (json_int_t)f->evidence[i].height, "log_index",
                          (json_int_t)f->evidence[i].log_index, "note",
                          f->evidence[i].note, "receipt",
                          proof_name(f->evidence[i].proof)));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "check", f->check,
                     "severity", audit_severity_name(f->severity), "sentence",
                     f->sentence, "rule", f->rule, "evidence", ev,
                     "evidence_omitted", (json_int_t)f->n_evidence_omitted);
}

json_t *audit_report_json(const struct audit_report *r)
{
    json_t *findings = json_array(), *notes = json_array();
    char root[65];
    lg_hex(r->tip.log_root, 32, root);
    for (size_t i = 0; findings && notes && i < r->n_items; i++) {
        json_array_append_new(r->items[i].severity > AUDIT_INFO ? findings
                                                                : notes,
                              finding_json(&r->items[i]));
    }
    return json_pack(
        "{s:s, s:s, s:{s:I, s:I, s:I, s:s}, s:I, s:b, s:o, s:o}", "trial",
        r->trial_id, "title", r->title, "ledger", "height",
        (json_int_t)r->tip.height, "time_ms", (json_int_t)r->tip.time_ms,
        "log_size", (json_int_t)r->tip.log_size, "log_root", root, "n_findings",
        (json_int_t)audit_report_n_findings(r), "clean",
        audit_report_n_findings(r) == 0, "findings", findings, "notes", notes);
}
