/*
 * test_audit.c - the trial integrity audit over synthetic ledgers built in
 * memory with the protobuf-c structs (no node). Each check has a scenario
 * where it must fire and one where it must not.
 *
 * The tool's sources (tools/) are linked only into the tool, so the
 * audit's source is compiled into this binary directly.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
// clang-format on

#include "audit.h"
#include "tx.pb-c.h"

#define TRIAL     "NCT00000001"
#define ENTRY_MAX 64
#define ALLOC_MAX 1024
#define DAY_MS    86400000ull

/* A synthetic ledger: one transaction per block, one day apart unless the
 * test moves the clock. Everything is freed by scen_free. */
struct scen {
    struct audit_entry e[ENTRY_MAX];
    size_t n;
    void *allocs[ALLOC_MAX];
    size_t n_allocs;
    int64_t day;
    int64_t tip_day; /* 0: the last entry's day */
};

static void *mem(struct scen *s, size_t n)
{
    assert_true(s->n_allocs < ALLOC_MAX);
    void *p = calloc(1, n);
    assert_non_null(p);
    s->allocs[s->n_allocs++] = p;
    return p;
}

static char *str(struct scen *s, const char *v)
{
    char *p = mem(s, strlen(v) + 1);
    memcpy(p, v, strlen(v) + 1);
    return p;
}

static void scen_free(struct scen *s)
{
    for (size_t i = 0; i < s->n_allocs; i++)
        free(s->allocs[i]);
}

static int64_t day_of(const char *date)
{
    int64_t lo, hi;
    assert_true(audit_date_range(date, &lo, &hi));
    return lo;
}

static struct audit_entry *add(struct scen *s, Tc__Tx__BodyCase body, void *msg,
                               enum member_role role)
{
    assert_true(s->n < ENTRY_MAX);
    Tc__Tx *tx = mem(s, sizeof *tx);
    tc__tx__init(tx);
    tx->body_case = body;
    /* every body member of the oneof shares one pointer slot */
    tx->protocol_register = msg;
    struct audit_entry *e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->tx = tx;
    e->height = s->n + 1;
    e->log_index = s->n;
    e->time_ms = (uint64_t)s->day * DAY_MS + 12 * 3600 * 1000;
    e->tx_id[0] = (uint8_t)(s->n + 1);
    e->tx_id[31] = 0xa5;
    e->signer_name = role == ROLE_ETHICS_BOARD ? "ethics"
                     : role == ROLE_SITE       ? "site-a"
                                               : "sponsor";
    e->signer_role = role;
    e->proof = AUDIT_PROOF_OK;
    e->code = "";
    s->n++;
    s->day++;
    return e;
}

static Tc__Outcome *outcome(struct scen *s, const char *id, Tc__OutcomeType t,
                            const char *measure, const char *tf)
{
    Tc__Outcome *o = mem(s, sizeof *o);
    tc__outcome__init(o);
    o->id = str(s, id);
    o->type = t;
    o->measure = str(s, measure);
    o->time_frame = str(s, tf);
    o->description = str(s, "");
    return o;
}

#define PRIMARY   TC__OUTCOME_TYPE__OUTCOME_PRIMARY
#define SECONDARY TC__OUTCOME_TYPE__OUTCOME_SECONDARY

/* The two outcomes every scenario starts from. */
static Tc__Outcome **base_outcomes(struct scen *s, size_t *n)
{
    Tc__Outcome **o = mem(s, 2 * sizeof *o);
    o[0] = outcome(s, "P1", PRIMARY, "Change in HbA1c", "Week 26");
    o[1] = outcome(s, "S1", SECONDARY, "Body weight", "Week 26");
    *n = 2;
    return o;
}

static Tc__ProtocolRegister *reg(struct scen *s, const char *start,
                                 const char *first_submitted, const char *pcd)
{
    Tc__ProtocolRegister *p = mem(s, sizeof *p);
    tc__protocol_register__init(p);
    p->trial_id = str(s, TRIAL);
    p->brief_title = str(s, "A synthetic trial of metformin");
    p->official_title = str(s, "");
    p->sponsor_name = str(s, "Acme Pharma");
    p->start_date = str(s, start ? start : "");
    p->registry_first_submitted =
        str(s, first_submitted ? first_submitted : "");
    p->source = str(s, first_submitted ? "ctgov" : "json");
    p->primary_completion_date = str(s, pcd ? pcd : "");
    p->outcomes = base_outcomes(s, &p->n_outcomes);
    add(s, TC__TX__BODY_PROTOCOL_REGISTER, p, ROLE_SPONSOR);
    return p;
}

static Tc__ProtocolAmend *amend(struct scen *s, uint32_t version,
                                const char *reason, Tc__Outcome **o, size_t n)
{
    Tc__ProtocolAmend *a = mem(s, sizeof *a);
    tc__protocol_amend__init(a);
    a->trial_id = str(s, TRIAL);
    a->version = version;
    a->reason = str(s, reason);
    a->outcomes = o;
    a->n_outcomes = n;
    add(s, TC__TX__BODY_PROTOCOL_AMEND, a, ROLE_SPONSOR);
    return a;
}

static void ethics(struct scen *s, uint32_t version, Tc__EthicsAction action)
{
    Tc__EthicsDecision *d = mem(s, sizeof *d);
    tc__ethics_decision__init(d);
    d->trial_id = str(s, TRIAL);
    d->version = version;
    d->action = action;
    d->note = str(s, "");
    add(s, TC__TX__BODY_ETHICS, d, ROLE_ETHICS_BOARD);
}

#define APPROVE TC__ETHICS_ACTION__ETHICS_APPROVE
#define SUSPEND TC__ETHICS_ACTION__ETHICS_SUSPEND

static ProtobufCBinaryData pseud(struct scen *s, int who)
{
    uint8_t *p = mem(s, 32);
    for (int i = 0; i < 32; i++)
        p[i] = (uint8_t)(0x80 + who * 7 + i);
    return (ProtobufCBinaryData){.len = 32, .data = p};
}

/* scopes: a space-separated list */
static struct audit_entry *consent(struct scen *s, int who, uint32_t version,
                                   Tc__ConsentAction action, const char *scopes)
{
    Tc__Consent *k = mem(s, sizeof *k);
    tc__consent__init(k);
    k->trial_id = str(s, TRIAL);
    k->pseudonym = pseud(s, who);
    k->protocol_version = version;
    k->action = action;
    k->scopes = mem(s, 8 * sizeof *k->scopes);
    char *copy = str(s, scopes), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t && k->n_scopes < 8;
         t = strtok_r(NULL, " ", &save))
        k->scopes[k->n_scopes++] = t;
    return add(s, TC__TX__BODY_CONSENT, k, ROLE_SITE);
}

#define RECORD   TC__CONSENT_ACTION__CONSENT_RECORD
#define WITHDRAW TC__CONSENT_ACTION__CONSENT_WITHDRAW

static void dataset(struct scen *s, const char *id, const int *who, size_t n)
{
    Tc__DatasetRegister *d = mem(s, sizeof *d);
    tc__dataset_register__init(d);
    d->dataset_id = str(s, id);
    d->trial_id = str(s, TRIAL);
    d->anonymization = str(s, "k-anonymity k=5");
    d->participants = mem(s, (n + 1) * sizeof *d->participants);
    for (size_t i = 0; i < n; i++)
        d->participants[d->n_participants++] = pseud(s, who[i]);
    add(s, TC__TX__BODY_DATASET_REGISTER, d, ROLE_SITE);
}

static const struct audit_entry *grant(struct scen *s, const char *ds,
                                       const char *purpose, uint64_t expires_ms)
{
    Tc__AccessGrant *g = mem(s, sizeof *g);
    tc__access_grant__init(g);
    g->dataset_id = str(s, ds);
    g->grantee = str(s, "research-b");
    g->purpose = str(s, purpose);
    g->expires_ms = expires_ms;
    return add(s, TC__TX__BODY_ACCESS_GRANT, g, ROLE_SITE);
}

static ProtobufCBinaryData ref(struct scen *s, const struct audit_entry *e)
{
    uint8_t *p = mem(s, 32);
    memcpy(p, e->tx_id, 32);
    return (ProtobufCBinaryData){.len = 32, .data = p};
}

static void access_event(struct scen *s, const struct audit_entry *g,
                         const char *purpose)
{
    Tc__AccessEvent *ev = mem(s, sizeof *ev);
    tc__access_event__init(ev);
    ev->grant_tx = ref(s, g);
    ev->purpose = str(s, purpose);
    add(s, TC__TX__BODY_ACCESS_EVENT, ev, ROLE_SITE);
}

static void revoke(struct scen *s, const struct audit_entry *g)
{
    Tc__AccessRevoke *r = mem(s, sizeof *r);
    tc__access_revoke__init(r);
    r->grant_tx = ref(s, g);
    r->reason = str(s, "study closed");
    add(s, TC__TX__BODY_ACCESS_REVOKE, r, ROLE_SITE);
}

static Tc__ReportedOutcome *reported(struct scen *s, const char *id,
                                     Tc__OutcomeType t, const char *measure,
                                     const char *tf)
{
    Tc__ReportedOutcome *r = mem(s, sizeof *r);
    tc__reported_outcome__init(r);
    r->outcome_id = str(s, id);
    r->type = t;
    r->measure = str(s, measure);
    r->time_frame = str(s, tf);
    return r;
}

static Tc__ResultsRegister *results(struct scen *s, const char *source,
                                    size_t n, ...)
{
    Tc__ResultsRegister *r = mem(s, sizeof *r);
    tc__results_register__init(r);
    r->trial_id = str(s, TRIAL);
    r->source = str(s, source);
    r->actual_primary_completion_date = str(s, "");
    r->outcomes = mem(s, (n + 1) * sizeof *r->outcomes);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->outcomes[r->n_outcomes++] = va_arg(ap, Tc__ReportedOutcome *);
    va_end(ap);
    add(s, TC__TX__BODY_RESULTS_REGISTER, r, ROLE_SPONSOR);
    return r;
}

/* The results that match base_outcomes exactly. */
static void results_as_registered(struct scen *s)
{
    results(s, "json", 2,
            reported(s, "P1", PRIMARY, "Change in HbA1c", "Week 26"),
            reported(s, "S1", SECONDARY, "Body weight", "Week 26"));
}

/* A prospectively registered, approved trial with two consents. */
static void scen_start(struct scen *s)
{
    memset(s, 0, sizeof *s);
    s->day = day_of("2026-01-10");
    reg(s, NULL, NULL, "2027-06-30");
    ethics(s, 1, APPROVE);
    consent(s, 1, 1, RECORD, "PARTICIPATION GRU");
    consent(s, 2, 1, RECORD, "PARTICIPATION HMB");
}

static void run(struct scen *s, struct audit_report *r)
{
    struct audit_input in = {
        .trial_id = TRIAL, .entries = s->e, .n_entries = s->n};
    int64_t tip = s->tip_day ? s->tip_day : s->day;
    in.tip.height = s->n;
    in.tip.log_size = s->n;
    in.tip.time_ms = (uint64_t)tip * DAY_MS;
    memset(in.tip.log_root, 0x11, 32);
    assert_int_equal(audit_trial(&in, r), 0);
}

/* Runs and checks whether `check` is flagged (severity above info). */
static void expect(struct scen *s, const char *check, bool flagged)
{
    struct audit_report r;
    run(s, &r);
    if (audit_report_has(&r, check, false) != flagged) {
        for (size_t i = 0; i < r.n_items; i++)
            print_message("  %s [%s] %s\n", r.items[i].check,
                          audit_severity_name(r.items[i].severity),
                          r.items[i].sentence);
        fail_msg("%s expected %s", check, flagged ? "flagged" : "clean");
    }
    audit_report_free(&r);
    scen_free(s);
}

/* ---- a clean trial ------------------------------------------------------ */
static void test_audit_clean_trial_has_no_findings(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    int who[] = {1, 2};
    dataset(&s, "DS-1", who, 2);
    const struct audit_entry *g = grant(&s, "DS-1", "HMB", 0);
    access_event(&s, g, "HMB");
    results_as_registered(&s);
    struct audit_report r;
    run(&s, &r);
    for (size_t i = 0; i < r.n_items; i++) {
        if (r.items[i].severity > AUDIT_INFO)
            print_message("  unexpected: %s %s\n", r.items[i].check,
                          r.items[i].sentence);
    }
    assert_int_equal(audit_report_n_findings(&r), 0);
    assert_string_equal(r.title, "A synthetic trial of metformin");
    json_t *j = audit_report_json(&r);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "clean")));
    assert_int_equal(json_integer_value(json_object_get(j, "n_findings")), 0);
    assert_string_equal(
        json_string_value(
            json_object_get(json_object_get(j, "ledger"), "log_root")),
        "1111111111111111111111111111111111111111111111111111111111111111");
    json_decref(j);
    audit_report_free(&r);
    scen_free(&s);
}

/* ---- outcome-switched ---------------------------------------------------- */
static void
test_audit_outcome_switched_fires_on_promotion_and_missing(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    results(&s, "json", 2,
            reported(&s, "S1", PRIMARY, "Body weight", "Week 26"),
            reported(&s, "", SECONDARY, "Quality of life", "Week 52"));
    struct audit_report r;
    run(&s, &r);
    size_t high = 0, medium = 0;
    for (size_t i = 0; i < r.n_items; i++) {
        if (strcmp(r.items[i].check, "outcome-switched") != 0)
            continue;
        high += r.items[i].severity == AUDIT_HIGH;
        medium += r.items[i].severity == AUDIT_MEDIUM;
    }
    /* S1 promoted, P1 missing; "Quality of life" added */
    assert_int_equal(high, 2);
    assert_int_equal(medium, 1);
    audit_report_free(&r);
    scen_free(&s);
}

static void test_audit_outcome_switched_quiet_when_as_registered(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    results_as_registered(&s);
    expect(&s, "outcome-switched", false);
}

static void
test_audit_outcome_switched_baseline_is_version_at_first_consent(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    /* v2 swaps the primary after enrolment began; approved but no reason */
    Tc__Outcome **o = mem(&s, 2 * sizeof *o);
    o[0] = outcome(&s, "P2", PRIMARY, "Fasting glucose", "Week 12");
    o[1] = outcome(&s, "S1", SECONDARY, "Body weight", "Week 26");
    amend(&s, 2, "", o, 2);
    ethics(&s, 2, APPROVE);
    results(&s, "json", 2,
            reported(&s, "P2", PRIMARY, "Fasting glucose", "Week 12"),
            reported(&s, "S1", SECONDARY, "Body weight", "Week 26"));
    expect(&s, "outcome-switched", true);
}

static void
test_audit_outcome_switched_amendment_before_consent_is_baseline(void **state)
{
    (void)state;
    struct scen s;
    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    reg(&s, NULL, NULL, "2027-06-30");
    Tc__Outcome **o = mem(&s, 2 * sizeof *o);
    o[0] = outcome(&s, "P2", PRIMARY, "Fasting glucose", "Week 12");
    o[1] = outcome(&s, "S1", SECONDARY, "Body weight", "Week 26");
    amend(&s, 2, "", o, 2);
    ethics(&s, 2, APPROVE);
    consent(&s, 1, 2, RECORD, "PARTICIPATION GRU");
    results(&s, "json", 2,
            reported(&s, "P2", PRIMARY, "Fasting glucose", "Week 12"),
            reported(&s, "S1", SECONDARY, "Body weight", "Week 26"));
    expect(&s, "outcome-switched", false);
}

static void
test_audit_outcome_switched_declared_amendment_is_a_note(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    Tc__Outcome **o = mem(&s, 2 * sizeof *o);
    o[0] = outcome(&s, "P2", PRIMARY, "Fasting glucose", "Week 12");
    o[1] = outcome(&s, "S1", SECONDARY, "Body weight", "Week 26");
    amend(&s, 2, "HbA1c assay withdrawn by the manufacturer", o, 2);
    ethics(&s, 2, APPROVE);
    results(&s, "json", 2,
            reported(&s, "P2", PRIMARY, "Fasting glucose", "Week 12"),
            reported(&s, "S1", SECONDARY, "Body weight", "Week 26"));
    struct audit_report r;
    run(&s, &r);
    assert_false(audit_report_has(&r, "outcome-switched", false));
    size_t declared = 0;
    for (size_t i = 0; i < r.n_items; i++)
        declared +=
            strstr(r.items[i].sentence, "Declared by amendment v2") != NULL;
    assert_int_equal(declared, 2); /* P1 missing, P2 added: both declared */
    audit_report_free(&r);
    scen_free(&s);
}

static void
test_audit_outcome_switched_unapproved_amendment_is_flagged(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    Tc__Outcome **o = mem(&s, 2 * sizeof *o);
    o[0] = outcome(&s, "P2", PRIMARY, "Fasting glucose", "Week 12");
    o[1] = outcome(&s, "S1", SECONDARY, "Body weight", "Week 26");
    amend(&s, 2, "a reason, but never approved", o, 2);
    results(&s, "json", 2,
            reported(&s, "P2", PRIMARY, "Fasting glucose", "Week 12"),
            reported(&s, "S1", SECONDARY, "Body weight", "Week 26"));
    expect(&s, "outcome-switched", true);
}

static void test_audit_outcome_switched_not_prespecified_is_a_note(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    Tc__ReportedOutcome *extra =
        reported(&s, "", SECONDARY, "Liver enzymes", "Week 26");
    extra->not_prespecified = true;
    results(&s, "json", 3,
            reported(&s, "P1", PRIMARY, "Change in HbA1c", "Week 26"),
            reported(&s, "S1", SECONDARY, "Body weight", "Week 26"), extra);
    struct audit_report r;
    run(&s, &r);
    assert_false(audit_report_has(&r, "outcome-switched", false));
    bool noted = false;
    for (size_t i = 0; i < r.n_items; i++)
        noted |= strstr(r.items[i].sentence, "not pre-specified") != NULL;
    assert_true(noted);
    audit_report_free(&r);
    scen_free(&s);
}

static void
test_audit_outcome_switched_measure_changed_under_same_id(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    results(&s, "json", 2,
            reported(&s, "P1", PRIMARY, "Change in fasting glucose", "Week 26"),
            reported(&s, "S1", SECONDARY, "Body weight", "Week 26"));
    struct audit_report r;
    run(&s, &r);
    bool changed = false;
    for (size_t i = 0; i < r.n_items; i++)
        changed |= r.items[i].severity == AUDIT_MEDIUM &&
                   strstr(r.items[i].sentence, "instead of the pre-specified "
                                               "\"Change in HbA1c\"") != NULL;
    assert_true(changed);
    /* the JSON carries the evidence with its place in the log */
    json_t *j = audit_report_json(&r);
    assert_non_null(j);
    json_t *f0 = json_array_get(json_object_get(j, "findings"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "check")),
                        "outcome-switched");
    json_t *ev = json_array_get(json_object_get(f0, "evidence"), 0);
    assert_int_equal(json_integer_value(json_object_get(ev, "height")), 1);
    assert_int_equal(json_integer_value(json_object_get(ev, "log_index")), 0);
    assert_string_equal(json_string_value(json_object_get(ev, "receipt")),
                        "verified");
    assert_true(json_array_size(json_object_get(j, "notes")) >= 1);
    assert_false(json_is_true(json_object_get(j, "clean")));
    json_decref(j);
    audit_report_free(&r);
    scen_free(&s);
}

static void
test_audit_outcome_switched_ctgov_matches_normalized_text(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    /* imported results carry no ids: case and punctuation do not matter */
    results(&s, "ctgov", 2,
            reported(&s, "", PRIMARY, "change in HbA1c.", "week  26"),
            reported(&s, "", SECONDARY, "Body-weight", "Week 26"));
    expect(&s, "outcome-switched", false);
}

static void test_audit_outcome_switched_ctgov_time_frame_change(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    results(&s, "ctgov", 2,
            reported(&s, "", PRIMARY, "Change in HbA1c", "Week 52"),
            reported(&s, "", SECONDARY, "Body weight", "Week 26"));
    struct audit_report r;
    run(&s, &r);
    bool tf = false;
    for (size_t i = 0; i < r.n_items; i++)
        tf |= r.items[i].severity == AUDIT_MEDIUM &&
              strstr(r.items[i].sentence, "time frame \"Week 52\"") != NULL;
    assert_true(tf);
    audit_report_free(&r);
    scen_free(&s);
}

/* ---- registered-late ------------------------------------------------------
 */
static void test_audit_registered_late_fires_when_consent_precedes(void **state)
{
    (void)state;
    struct scen s;
    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    consent(&s, 1, 1, RECORD, "PARTICIPATION");
    reg(&s, NULL, NULL, "2027-06-30");
    ethics(&s, 1, APPROVE);
    expect(&s, "registered-late", true);
}

static void test_audit_registered_late_quiet_when_prospective(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    expect(&s, "registered-late", false);
}

/* registry dates: partial start "2010-05" means any day of May */
static int registry_late(const char *start, const char *sub)
{
    struct scen s;
    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    reg(&s, start, sub, "2030-01-01");
    struct audit_report r;
    run(&s, &r);
    enum audit_severity worst = AUDIT_INFO;
    bool any = false;
    for (size_t i = 0; i < r.n_items; i++) {
        if (strcmp(r.items[i].check, "registered-late") == 0) {
            any = true;
            if (r.items[i].severity > worst)
                worst = r.items[i].severity;
        }
    }
    audit_report_free(&r);
    scen_free(&s);
    return any ? worst : (enum audit_severity) - 1;
}

static void test_audit_registered_late_icmje_fdaaa_dates(void **state)
{
    (void)state;
    /* same day: on time */
    assert_int_equal(registry_late("2010-05-03", "2010-05-03"), -1);
    /* before the start: on time */
    assert_int_equal(registry_late("2010-05", "2010-04-30"), -1);
    /* inside the start month: cannot tell, a note only */
    assert_int_equal(registry_late("2010-05", "2010-05-20"), AUDIT_INFO);
    /* after the whole start month: ICMJE, within FDAAA's 21 days */
    assert_int_equal(registry_late("2010-05", "2010-06-01"), AUDIT_MEDIUM);
    assert_int_equal(registry_late("2010-05", "2010-06-21"), AUDIT_MEDIUM);
    /* day 22 after the last possible start day: FDAAA */
    assert_int_equal(registry_late("2010-05", "2010-06-22"), AUDIT_HIGH);
    /* NCT04207047's real dates */
    assert_int_equal(registry_late("2018-10-02", "2019-12-17"), AUDIT_HIGH);
    /* NCT00763412's real dates (partial start) */
    assert_int_equal(registry_late("2006-11", "2008-09-29"), AUDIT_HIGH);
    /* full dates: one day late is ICMJE only, 22 days is FDAAA */
    assert_int_equal(registry_late("2014-08-05", "2014-08-06"), AUDIT_MEDIUM);
    assert_int_equal(registry_late("2014-08-05", "2014-08-27"), AUDIT_HIGH);
}

/* ---- approval-missing ---------------------------------------------------- */
static void test_audit_approval_missing_fires_before_approval(void **state)
{
    (void)state;
    struct scen s;
    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    reg(&s, NULL, NULL, "2027-06-30");
    consent(&s, 1, 1, RECORD, "PARTICIPATION");
    ethics(&s, 1, APPROVE);
    expect(&s, "approval-missing", true);
}

static void test_audit_approval_missing_quiet_after_approval(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    expect(&s, "approval-missing", false);
}

static void test_audit_approval_missing_ignores_non_ethics_signer(void **state)
{
    (void)state;
    struct scen s;
    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    reg(&s, NULL, NULL, "2027-06-30");
    ethics(&s, 1, APPROVE);
    s.e[s.n - 1].signer_role = ROLE_SPONSOR; /* a sponsor "approving" */
    consent(&s, 1, 1, RECORD, "PARTICIPATION");
    expect(&s, "approval-missing", true);
}

/* ---- consent-unapproved-version ------------------------------------------ */
static void
test_audit_consent_unapproved_version_fires_when_superseded(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    Tc__Outcome **o = base_outcomes(&s, &(size_t){0});
    amend(&s, 2, "new visit schedule", o, 2);
    ethics(&s, 2, APPROVE);
    consent(&s, 3, 1, RECORD, "PARTICIPATION GRU");
    expect(&s, "consent-unapproved-version", true);
}

static void
test_audit_consent_unapproved_version_fires_when_suspended(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    ethics(&s, 1, SUSPEND);
    consent(&s, 3, 1, RECORD, "PARTICIPATION GRU");
    expect(&s, "consent-unapproved-version", true);
}

static void
test_audit_consent_unapproved_version_trial_wide_decisions(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    ethics(&s, 0, SUSPEND); /* version 0: the whole trial */
    consent(&s, 3, 1, RECORD, "PARTICIPATION GRU");
    expect(&s, "consent-unapproved-version", true);

    scen_start(&s);
    ethics(&s, 0, SUSPEND);
    ethics(&s, 1, APPROVE); /* lifts the suspension */
    consent(&s, 3, 1, RECORD, "PARTICIPATION GRU");
    expect(&s, "consent-unapproved-version", false);

    scen_start(&s);
    ethics(&s, 1, TC__ETHICS_ACTION__ETHICS_TERMINATE);
    consent(&s, 3, 1, RECORD, "PARTICIPATION GRU");
    expect(&s, "consent-unapproved-version", true);
}

static void test_audit_consent_unapproved_version_quiet_on_current(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    Tc__Outcome **o = base_outcomes(&s, &(size_t){0});
    amend(&s, 2, "new visit schedule", o, 2);
    ethics(&s, 2, APPROVE);
    consent(&s, 3, 2, RECORD, "PARTICIPATION GRU");
    /* amended but not yet approved: v1 is still the one in force */
    amend(&s, 3, "another change", o, 2);
    consent(&s, 4, 2, RECORD, "PARTICIPATION GRU");
    expect(&s, "consent-unapproved-version", false);
}

/* ---- data-without-consent ------------------------------------------------ */
static void test_audit_data_without_consent_fires(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    consent(&s, 2, 1, WITHDRAW, "");
    int who[] = {1, 2, 9}; /* 2 withdrew, 9 never consented */
    dataset(&s, "DS-1", who, 3);
    struct audit_report r;
    run(&s, &r);
    assert_true(audit_report_has(&r, "data-without-consent", false));
    bool counts = false;
    for (size_t i = 0; i < r.n_items; i++)
        counts |= strstr(r.items[i].sentence,
                         "1 never consented, 1 had withdrawn") != NULL;
    assert_true(counts);
    audit_report_free(&r);
    scen_free(&s);
}

static void test_audit_data_without_consent_quiet(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    int who[] = {1, 2};
    dataset(&s, "DS-1", who, 2);
    /* a withdrawal after registration does not undo the dataset */
    consent(&s, 2, 1, WITHDRAW, "");
    expect(&s, "data-without-consent", false);
}

/* ---- access-outside-consent ---------------------------------------------- */
static void test_audit_access_outside_consent_purpose_not_covered(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s); /* 1: GRU, 2: HMB */
    int who[] = {1, 2};
    dataset(&s, "DS-1", who, 2);
    grant(&s, "DS-1", "GRU", 0); /* HMB does not cover general use */
    expect(&s, "access-outside-consent", true);
}

static void test_audit_access_outside_consent_after_withdrawal(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    int who[] = {1, 2};
    dataset(&s, "DS-1", who, 2);
    const struct audit_entry *g = grant(&s, "DS-1", "HMB", 0);
    consent(&s, 1, 1, WITHDRAW, "");
    access_event(&s, g, "HMB");
    expect(&s, "access-outside-consent", true);
}

static void
test_audit_access_outside_consent_after_revocation_or_expiry(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    int who[] = {1, 2};
    dataset(&s, "DS-1", who, 2);
    const struct audit_entry *g = grant(&s, "DS-1", "HMB", 0);
    revoke(&s, g);
    access_event(&s, g, "HMB");
    expect(&s, "access-outside-consent", true);

    scen_start(&s);
    dataset(&s, "DS-1", who, 2);
    g = grant(&s, "DS-1", "HMB", (uint64_t)s.day * DAY_MS);
    s.day += 30;
    access_event(&s, g, "HMB");
    expect(&s, "access-outside-consent", true);
}

static void
test_audit_access_outside_consent_follows_duo_modifiers(void **state)
{
    (void)state;
    struct scen s;
    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    reg(&s, NULL, NULL, "2027-06-30");
    ethics(&s, 1, APPROVE);
    consent(&s, 1, 1, RECORD, "PARTICIPATION GRU NPU");
    int who[] = {1};
    dataset(&s, "DS-1", who, 1);
    grant(&s, "DS-1", "HMB+NPU", 0); /* declares the not-for-profit limit */
    expect(&s, "access-outside-consent", false);

    memset(&s, 0, sizeof s);
    s.day = day_of("2026-01-10");
    reg(&s, NULL, NULL, "2027-06-30");
    ethics(&s, 1, APPROVE);
    consent(&s, 1, 1, RECORD, "PARTICIPATION GRU NPU");
    dataset(&s, "DS-1", who, 1);
    grant(&s, "DS-1", "HMB", 0); /* ignores it */
    expect(&s, "access-outside-consent", true);
}

static void test_audit_access_outside_consent_quiet_within_scope(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    int who[] = {1, 2};
    dataset(&s, "DS-1", who, 2);
    /* GRU and HMB both cover a disease-specific use */
    const struct audit_entry *g = grant(&s, "DS-1", "DS:MONDO:0005148", 0);
    access_event(&s, g, "");
    /* a withdrawal after the access does not taint it */
    consent(&s, 1, 1, WITHDRAW, "");
    expect(&s, "access-outside-consent", false);
}

/* ---- results-late / results-overdue -------------------------------------- */
static bool results_late_at(const char *pcd, const char *when)
{
    struct scen s;
    scen_start(&s);
    s.e[0].tx->protocol_register->primary_completion_date = str(&s, pcd);
    s.day = day_of(when);
    results_as_registered(&s);
    struct audit_report r;
    run(&s, &r);
    bool late = audit_report_has(&r, "results-late", false);
    audit_report_free(&r);
    scen_free(&s);
    return late;
}

static void test_audit_results_late_boundary_is_twelve_months(void **state)
{
    (void)state;
    /* results block time is midday of `when` */
    assert_false(results_late_at("2026-01-15", "2027-01-15"));
    assert_true(results_late_at("2026-01-15", "2027-01-16"));
    /* a partial date gets its last day: 2026-02 -> due 2027-02-28 */
    assert_false(results_late_at("2026-02", "2027-02-28"));
    assert_true(results_late_at("2026-02", "2027-03-01"));
}

static void test_audit_results_overdue_fires_after_deadline(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    s.e[0].tx->protocol_register->primary_completion_date =
        str(&s, "2026-01-12");
    s.tip_day = day_of("2027-01-13");
    expect(&s, "results-overdue", true);
}

static void test_audit_results_overdue_quiet_before_deadline(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    s.e[0].tx->protocol_register->primary_completion_date =
        str(&s, "2026-01-12");
    s.tip_day = day_of("2027-01-12");
    expect(&s, "results-overdue", false);
}

/* ---- rejected-attempts --------------------------------------------------- */
static void test_audit_rejected_attempts_lists_each_with_code(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    struct audit_entry *e = consent(&s, 7, 1, RECORD, "PARTICIPATION");
    e->rejected = true;
    e->code = "not-authorized";
    e->message = "site-c is not authorized for this trial";
    e->signer_name = "site-c";
    e = consent(&s, 8, 9, RECORD, "PARTICIPATION");
    e->rejected = true;
    e->code = "unknown-version";
    struct audit_report r;
    run(&s, &r);
    size_t k = r.n_items;
    for (size_t i = 0; i < r.n_items; i++) {
        if (strcmp(r.items[i].check, "rejected-attempts") == 0)
            k = i;
    }
    assert_true(k < r.n_items);
    const struct audit_finding *f = &r.items[k];
    assert_int_equal(f->n_evidence, 2);
    assert_string_equal(f->evidence[0].note, "not-authorized by site-c");
    assert_non_null(strstr(f->sentence, "not-authorized"));
    /* a rejected consent changes no state: no approval finding from v9 */
    assert_false(audit_report_has(&r, "approval-missing", true));
    audit_report_free(&r);
    scen_free(&s);
}

static void test_audit_rejected_attempts_quiet(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    expect(&s, "rejected-attempts", false);
}

/* ---- refused attempts are judged under their own check ------------------- */
static void test_audit_attempts_reported_under_their_check(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    int who[] = {1, 9}; /* 9 never consented */
    dataset(&s, "DS-X", who, 2);
    s.e[s.n - 1].rejected = true;
    s.e[s.n - 1].code = "participant-without-consent";
    int ok[] = {1, 2};
    dataset(&s, "DS-1", ok, 2);
    const struct audit_entry *g = grant(&s, "DS-1", "HMB", 0);
    consent(&s, 2, 1, WITHDRAW, "");
    access_event(&s, g, "HMB");
    s.e[s.n - 1].rejected = true;
    s.e[s.n - 1].code = "access-outside-consent";
    struct audit_report r;
    run(&s, &r);
    size_t attempts = 0;
    for (size_t i = 0; i < r.n_items; i++) {
        const struct audit_finding *f = &r.items[i];
        if (strncmp(f->sentence, "Attempted at height", 19) != 0)
            continue;
        attempts++;
        assert_int_equal(f->severity, AUDIT_MEDIUM);
    }
    assert_int_equal(attempts, 2);
    assert_true(audit_report_has(&r, "data-without-consent", false));
    assert_true(audit_report_has(&r, "access-outside-consent", false));
    assert_true(audit_report_has(&r, "rejected-attempts", false));
    audit_report_free(&r);
    scen_free(&s);
}

static void test_audit_attempts_within_rules_are_only_rejections(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    /* refused for another reason (say, a wrong site): nothing to judge */
    struct audit_entry *e = consent(&s, 5, 1, RECORD, "PARTICIPATION");
    e->rejected = true;
    e->code = "site-not-authorized";
    struct audit_report r;
    run(&s, &r);
    assert_true(audit_report_has(&r, "rejected-attempts", false));
    assert_int_equal(audit_report_n_findings(&r), 1);
    audit_report_free(&r);
    scen_free(&s);
}

/* ---- ledger-integrity ---------------------------------------------------- */
static void test_audit_ledger_integrity_fires_on_bad_receipt(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    s.e[1].proof = AUDIT_PROOF_FAILED;
    s.e[1].proof_error = "certificate has 2 of 3 signatures";
    expect(&s, "ledger-integrity", true);

    scen_start(&s);
    s.e[2].tx = NULL; /* undecodable bytes */
    expect(&s, "ledger-integrity", true);

    scen_start(&s);
    s.e[3].log_index = 0; /* out of order */
    expect(&s, "ledger-integrity", true);
}

static void test_audit_ledger_integrity_notes_earlier_attestations(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    Tc__AuditAttestation *a = mem(&s, sizeof *a);
    tc__audit_attestation__init(a);
    a->trial_id = str(&s, TRIAL);
    a->height = 4;
    a->log_size = 4;
    a->n_findings = 0;
    a->summary = str(&s, "0 finding(s) in 1 trial(s)");
    add(&s, TC__TX__BODY_ATTESTATION, a, ROLE_ETHICS_BOARD);
    struct audit_report r;
    run(&s, &r);
    assert_false(audit_report_has(&r, "ledger-integrity", false));
    bool noted = false;
    for (size_t i = 0; i < r.n_items; i++)
        noted |= strstr(r.items[i].sentence, "that ledger is a prefix") != NULL;
    assert_true(noted);
    audit_report_free(&r);
    /* the log it attests is not a prefix of this one: a fork */
    s.e[s.n - 1].proof = AUDIT_PROOF_FAILED;
    s.e[s.n - 1].proof_error = "the log it attests (size 4) is not a prefix";
    expect(&s, "ledger-integrity", true);
}

static void test_audit_ledger_integrity_quiet_when_verified(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    struct audit_report r;
    run(&s, &r);
    assert_false(audit_report_has(&r, "ledger-integrity", true));
    audit_report_free(&r);
    scen_free(&s);
}

/* ---- personal-data ------------------------------------------------------- */
static void test_audit_personal_data_fires(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    s.e[0].tx->protocol_register->outcomes[1]->description =
        str(&s, "Contact jane.doe@example.org for details");
    expect(&s, "personal-data", true);

    scen_start(&s);
    int who[] = {1};
    dataset(&s, "DS-1", who, 1);
    s.e[s.n - 1].tx->dataset_register->participants[0] =
        (ProtobufCBinaryData){.len = 8, .data = (uint8_t *)str(&s, "MRN-4411")};
    expect(&s, "personal-data", true);
}

static void test_audit_personal_data_quiet_on_registry_text(void **state)
{
    (void)state;
    struct scen s;
    scen_start(&s);
    s.e[0].tx->protocol_register->outcomes[0]->description =
        str(&s, "Assessed 2014-08-05 to 2015-09-15 (Weeks 0, 2, 4, 8, 12, 16); "
                "titer >= 0.1 IU/ml; NCT02210780; 10,000 IU; EASI-75");
    expect(&s, "personal-data", false);
}

static void test_audit_personal_data_kinds(void **state)
{
    (void)state;
    assert_string_equal(audit_personal_data_kind("mail a.b@uni.edu now"),
                        "e-mail");
    assert_null(audit_personal_data_kind("ratio 3@4 units"));
    assert_string_equal(audit_personal_data_kind("call +44 20 7946 0958"),
                        "phone");
    assert_string_equal(audit_personal_data_kind("(555) 123-4567"), "phone");
    assert_string_equal(audit_personal_data_kind("tel 555-123-4567"), "phone");
    assert_null(audit_personal_data_kind("from 2014-08-05 to 2015-09-15"));
    assert_null(audit_personal_data_kind("NCT02210780 and 12345"));
    assert_null(audit_personal_data_kind("0 1 2 3 4 5 6 7 8 9 10"));
    assert_string_equal(audit_personal_data_kind("PI: Dr. John Smith"), "name");
    assert_string_equal(audit_personal_data_kind("Contact: Jane Roe"), "name");
    assert_null(audit_personal_data_kind("Drug dosage for the Dr group"));
    assert_null(audit_personal_data_kind(NULL));
}

/* ---- helpers ------------------------------------------------------------- */
static void test_audit_dates_parse_partial_and_add_months(void **state)
{
    (void)state;
    int64_t lo, hi;
    char buf[16];
    assert_true(audit_date_range("2010-05", &lo, &hi));
    audit_day_str(lo, buf);
    assert_string_equal(buf, "2010-05-01");
    audit_day_str(hi, buf);
    assert_string_equal(buf, "2010-05-31");
    assert_true(audit_date_range("2024", &lo, &hi));
    audit_day_str(hi, buf);
    assert_string_equal(buf, "2024-12-31");
    assert_true(audit_date_range("1970-01-01", &lo, &hi));
    assert_int_equal(lo, 0);
    assert_false(audit_date_range("2010-13", &lo, &hi));
    assert_false(audit_date_range("2010-02-30", &lo, &hi));
    assert_false(audit_date_range("May 2010", &lo, &hi));
    assert_false(audit_date_range("", &lo, &hi));
    audit_day_str(audit_add_months(day_of("2024-01-31"), 1), buf);
    assert_string_equal(buf, "2024-02-29");
    audit_day_str(audit_add_months(day_of("2024-02-29"), 12), buf);
    assert_string_equal(buf, "2025-02-28");
    audit_day_str(audit_add_months(day_of("2015-09-15"), 12), buf);
    assert_string_equal(buf, "2016-09-15");
}

static void test_audit_normalize_folds_case_and_punctuation(void **state)
{
    (void)state;
    char out[64];
    audit_normalize("  Change in HbA1c (%), Week-26. ", out, sizeof out);
    assert_string_equal(out, "change in hba1c week 26");
    audit_normalize("≥4-Fold", out, sizeof out);
    assert_string_equal(out, "≥4 fold");
    audit_normalize("abcdef", out, 4);
    assert_string_equal(out, "abc");
}

static void test_audit_rejects_null_input(void **state)
{
    (void)state;
    struct audit_report r;
    assert_int_equal(audit_trial(NULL, &r), LG_EINVAL);
    struct audit_input in = {.trial_id = TRIAL, .n_entries = 3};
    assert_int_equal(audit_trial(&in, &r), LG_EINVAL);
    audit_report_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_clean_trial_has_no_findings),
        cmocka_unit_test(
            test_audit_outcome_switched_fires_on_promotion_and_missing),
        cmocka_unit_test(test_audit_outcome_switched_quiet_when_as_registered),
        cmocka_unit_test(
            test_audit_outcome_switched_baseline_is_version_at_first_consent),
        cmocka_unit_test(
            test_audit_outcome_switched_amendment_before_consent_is_baseline),
        cmocka_unit_test(
            test_audit_outcome_switched_declared_amendment_is_a_note),
        cmocka_unit_test(
            test_audit_outcome_switched_unapproved_amendment_is_flagged),
        cmocka_unit_test(
            test_audit_outcome_switched_not_prespecified_is_a_note),
        cmocka_unit_test(
            test_audit_outcome_switched_measure_changed_under_same_id),
        cmocka_unit_test(
            test_audit_outcome_switched_ctgov_matches_normalized_text),
        cmocka_unit_test(test_audit_outcome_switched_ctgov_time_frame_change),
        cmocka_unit_test(
            test_audit_registered_late_fires_when_consent_precedes),
        cmocka_unit_test(test_audit_registered_late_quiet_when_prospective),
        cmocka_unit_test(test_audit_registered_late_icmje_fdaaa_dates),
        cmocka_unit_test(test_audit_approval_missing_fires_before_approval),
        cmocka_unit_test(test_audit_approval_missing_quiet_after_approval),
        cmocka_unit_test(test_audit_approval_missing_ignores_non_ethics_signer),
        cmocka_unit_test(
            test_audit_consent_unapproved_version_fires_when_superseded),
        cmocka_unit_test(
            test_audit_consent_unapproved_version_fires_when_suspended),
        cmocka_unit_test(
            test_audit_consent_unapproved_version_trial_wide_decisions),
        cmocka_unit_test(
            test_audit_consent_unapproved_version_quiet_on_current),
        cmocka_unit_test(test_audit_data_without_consent_fires),
        cmocka_unit_test(test_audit_data_without_consent_quiet),
        cmocka_unit_test(test_audit_access_outside_consent_purpose_not_covered),
        cmocka_unit_test(test_audit_access_outside_consent_after_withdrawal),
        cmocka_unit_test(
            test_audit_access_outside_consent_after_revocation_or_expiry),
        cmocka_unit_test(test_audit_access_outside_consent_quiet_within_scope),
        cmocka_unit_test(
            test_audit_access_outside_consent_follows_duo_modifiers),
        cmocka_unit_test(test_audit_results_late_boundary_is_twelve_months),
        cmocka_unit_test(test_audit_results_overdue_fires_after_deadline),
        cmocka_unit_test(test_audit_results_overdue_quiet_before_deadline),
        cmocka_unit_test(test_audit_rejected_attempts_lists_each_with_code),
        cmocka_unit_test(test_audit_rejected_attempts_quiet),
        cmocka_unit_test(test_audit_attempts_reported_under_their_check),
        cmocka_unit_test(test_audit_attempts_within_rules_are_only_rejections),
        cmocka_unit_test(test_audit_ledger_integrity_fires_on_bad_receipt),
        cmocka_unit_test(
            test_audit_ledger_integrity_notes_earlier_attestations),
        cmocka_unit_test(test_audit_ledger_integrity_quiet_when_verified),
        cmocka_unit_test(test_audit_personal_data_fires),
        cmocka_unit_test(test_audit_personal_data_quiet_on_registry_text),
        cmocka_unit_test(test_audit_personal_data_kinds),
        cmocka_unit_test(test_audit_dates_parse_partial_and_add_months),
        cmocka_unit_test(test_audit_normalize_folds_case_and_punctuation),
        cmocka_unit_test(test_audit_rejects_null_input),
    };
    return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
