/*
 * test_ctgov.c - ClinicalTrials.gov and trialchain-JSON import: every real
 * record in the shared data imports with the right id, outcome counts and
 * dates, and no personal data reaches the transaction.
 *
 * The tool's objects are not in libnode, so the module under test is
 * compiled in here.
 */
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h before it */
// clang-format off
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "../../tools/ctgov.c"
// clang-format on

static char shared_dir[512];

/* TRIALCHAIN_SHARED, ../shared or /work/shared: the first with data/ctgov. */
static bool find_shared(void)
{
    const char *candidates[] = {getenv("TRIALCHAIN_SHARED"), "../shared",
                                "/work/shared"};
    for (size_t i = 0; i < 3; i++) {
        if (!candidates[i])
            continue;
        char probe[600];
        struct stat st;
        snprintf(probe, sizeof(probe), "%s/data/ctgov", candidates[i]);
        if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(shared_dir, sizeof(shared_dir), "%s", candidates[i]);
            return true;
        }
    }
    return false;
}

static unsigned char *load(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/data/%s", shared_dir, rel);
    unsigned char *buf = NULL;
    assert_int_equal(lg_read_file(path, 1u << 24, &buf, len), 0);
    return buf;
}

/* The study of a record, independently of the importer. */
static json_t *study_of(json_t *root)
{
    json_t *studies = json_object_get(root, "studies");
    return studies ? json_array_get(studies, 0) : root;
}

/* Collects every "phone" and "email" string anywhere under j. Bounded
 * depth: records nest a handful of levels. */
static void collect_contacts(json_t *j, json_t *acc, int depth)
{
    if (depth > 16)
        return;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v)
        {
            if (json_is_string(v) &&
                (strstr(key, "phone") || strstr(key, "email") ||
                 strstr(key, "Phone")))
                json_array_append(acc, v);
            else
                collect_contacts(v, acc, depth + 1);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) collect_contacts(v, acc, depth + 1);
    }
}

static bool mem_contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0 || m > n)
        return false;
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return true;
    return false;
}

static void check_record(const char *name)
{
    char rel[600];
    snprintf(rel, sizeof(rel), "ctgov/%s", name);
    size_t len;
    unsigned char *bytes = load(rel, &len);
    json_t *root = json_loadb((const char *)bytes, len, 0, NULL);
    assert_non_null(root);
    json_t *study = study_of(root);
    json_t *ps = json_object_get(study, "protocolSection");
    json_t *om = json_object_get(ps, "outcomesModule");
    json_t *sm = json_object_get(ps, "statusModule");

    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    int rv = ctgov_import_protocol(bytes, len, false, &p, err, sizeof(err));
    if (rv != 0)
        fail_msg("%s: %s", name, err);

    /* the id is the file's NCT id */
    assert_int_equal(strncmp(p->trial_id, name, 11), 0);
    assert_string_equal(p->source, "ctgov");
    /* outcome counts per type */
    size_t np = json_array_size(json_object_get(om, "primaryOutcomes"));
    size_t ns = json_array_size(json_object_get(om, "secondaryOutcomes"));
    size_t no = json_array_size(json_object_get(om, "otherOutcomes"));
    assert_int_equal(p->n_outcomes, np + ns + no);
    size_t seen[4] = {0};
    for (size_t i = 0; i < p->n_outcomes; i++) {
        seen[p->outcomes[i]->type]++;
        assert_true(p->outcomes[i]->measure[0] != '\0');
    }
    assert_int_equal(seen[TC__OUTCOME_TYPE__OUTCOME_PRIMARY], np);
    assert_int_equal(seen[TC__OUTCOME_TYPE__OUTCOME_SECONDARY], ns);
    assert_int_equal(seen[TC__OUTCOME_TYPE__OUTCOME_OTHER], no);
    assert_string_equal(p->outcomes[0]->id, "P1");
    /* dates and their kind */
    json_t *pcd = json_object_get(sm, "primaryCompletionDateStruct");
    assert_string_equal(p->primary_completion_date,
                        json_string_value(json_object_get(pcd, "date")));
    assert_int_equal(
        p->primary_completion_actual,
        !strcmp(json_string_value(json_object_get(pcd, "type")), "ACTUAL"));
    assert_string_equal(p->start_date,
                        json_string_value(json_object_get(
                            json_object_get(sm, "startDateStruct"), "date")));
    assert_string_equal(
        p->registry_first_submitted,
        json_string_value(json_object_get(sm, "studyFirstSubmitDate")));
    /* the record's hash is of its exact bytes */
    uint8_t h[32];
    crypto_sha256(bytes, len, h);
    assert_int_equal(p->source_record_hash.len, 32);
    assert_memory_equal(p->source_record_hash.data, h, 32);

    /* no personal data in what would be signed */
    size_t plen = tc__protocol_register__get_packed_size(p);
    uint8_t *packed = malloc(plen);
    assert_non_null(packed);
    tc__protocol_register__pack(p, packed);
    /* text fields only: the packed bytes hold hashes and lengths too */
    const char *texts[] = {p->trial_id,     p->brief_title, p->official_title,
                           p->sponsor_name, p->phase,       p->study_type};
    for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++)
        assert_null(strchr(texts[k], '@'));
    for (size_t k = 0; k < p->n_outcomes; k++) {
        assert_null(strchr(p->outcomes[k]->measure, '@'));
        assert_null(strchr(p->outcomes[k]->time_frame, '@'));
        assert_null(strchr(p->outcomes[k]->description, '@'));
    }
    json_t *contacts = json_array();
    collect_contacts(study, contacts, 0);
    size_t i;
    json_t *c;
    json_array_foreach(contacts, i, c)
    {
        if (mem_contains(packed, plen, json_string_value(c)))
            fail_msg("%s: contact \"%s\" reached the tx", name,
                     json_string_value(c));
    }
    json_decref(contacts);
    free(packed);
    ctgov_protocol_free(p);
    json_decref(root);
    free(bytes);
}

static void test_ctgov_every_record_imports(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/data/ctgov", shared_dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        check_record(e->d_name);
        n++;
    }
    closedir(d);
    assert_true(n >= 7);
}

static void test_ctgov_list_envelope_imports(void **state)
{
    (void)state;
    size_t len;
    unsigned char *bytes = load("ctgov/NCT06388018.json", &len);
    Tc__ProtocolRegister *p = NULL;
    char err[512];
    assert_int_equal(
        ctgov_import_protocol(bytes, len, true, &p, err, sizeof(err)), 0);
    assert_string_equal(p->trial_id, "NCT06388018");
    assert_int_equal(p->n_outcomes, 13);
    assert_string_equal(p->outcomes[12]->id, "P13");
    assert_false(p->start_date_actual);
    assert_string_equal(p->phase, "PHASE2");
    assert_int_equal(p->enrollment, 325);
    ctgov_protocol_free(p);
    free(bytes);
}

static void test_ctgov_partial_dates_and_other_outcomes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *bytes = load("ctgov/NCT00763412.json", &len);
    Tc__ProtocolRegister *p = NULL;
    char err[512];
    assert_int_equal(
        ctgov_import_protocol(bytes, len, false, &p, err, sizeof(err)), 0);
    assert_string_equal(p->start_date, "2006-11");
    assert_string_equal(p->primary_completion_date, "2013-01");
    assert_true(p->primary_completion_actual);
    ctgov_protocol_free(p);
    free(bytes);

    bytes = load("ctgov/NCT03064438.json", &len);
    assert_int_equal(
        ctgov_import_protocol(bytes, len, false, &p, err, sizeof(err)), 0);
    assert_string_equal(p->outcomes[p->n_outcomes - 1]->id, "O2");
    assert_int_equal(p->outcomes[p->n_outcomes - 1]->type,
                     TC__OUTCOME_TYPE__OUTCOME_OTHER);
    ctgov_protocol_free(p);
    free(bytes);

    /* an observational record has no phases: empty, not an error */
    bytes = load("ctgov/NCT03475563.json", &len);
    assert_int_equal(
        ctgov_import_protocol(bytes, len, false, &p, err, sizeof(err)), 0);
    assert_string_equal(p->phase, "");
    assert_string_equal(p->study_type, "OBSERVATIONAL");
    ctgov_protocol_free(p);
    free(bytes);
}

static void test_ctgov_classic_v1_refused(void **state)
{
    (void)state;
    size_t len;
    unsigned char *bytes = load("ctgov/classic-v1/NCT04780763.json", &len);
    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    assert_int_not_equal(
        ctgov_import_protocol(bytes, len, false, &p, err, sizeof(err)), 0);
    assert_null(p);
    assert_non_null(strstr(err, "classic API v1"));
    assert_non_null(strstr(err, "API v2"));
    free(bytes);
}

static void test_ctgov_record_without_outcomes_refused(void **state)
{
    (void)state;
    const char *rec = "{\"protocolSection\":{\"identificationModule\":"
                      "{\"nctId\":\"NCT00000001\",\"briefTitle\":\"x\"}}}";
    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    assert_int_not_equal(ctgov_import_protocol((const unsigned char *)rec,
                                               strlen(rec), false, &p, err,
                                               sizeof(err)),
                         0);
    assert_non_null(strstr(err, "no outcomes"));
}

static void test_ctgov_bad_input_is_an_error(void **state)
{
    (void)state;
    const char *inputs[] = {"",
                            "[]",
                            "not json",
                            "{\"a\":1}",
                            "{\"studies\":[]}",
                            "{\"trial_id\":\"T\",\"outcomes\":[{}]}",
                            "{\"protocolSection\":7}"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        Tc__ProtocolRegister *p = NULL;
        char err[512] = "";
        assert_int_not_equal(
            ctgov_import_protocol((const unsigned char *)inputs[i],
                                  strlen(inputs[i]), false, &p, err,
                                  sizeof(err)),
            0);
        assert_true(err[0] != '\0');
    }
}

/* Every prefix (in steps) and a byte-flipped copy of a real record: an
 * error or a clean import, never a crash or a leak. */
static void test_ctgov_damaged_records_never_crash(void **state)
{
    (void)state;
    size_t len;
    unsigned char *bytes = load("ctgov/NCT03064438.json", &len);
    unsigned char *copy = malloc(len);
    assert_non_null(copy);
    for (size_t cut = 0; cut < len; cut += 997) {
        Tc__ProtocolRegister *p = NULL;
        char err[512];
        if (ctgov_import_protocol(bytes, cut, false, &p, err, sizeof(err)) == 0)
            ctgov_protocol_free(p);
    }
    for (size_t at = 0; at < len; at += 499) {
        memcpy(copy, bytes, len);
        copy[at] ^= 0x5a;
        Tc__ProtocolRegister *p = NULL;
        Tc__ResultsRegister *r = NULL;
        char err[512];
        if (ctgov_import_protocol(copy, len, false, &p, err, sizeof(err)) == 0)
            ctgov_protocol_free(p);
        if (ctgov_import_results(copy, len, false, NULL, 0, &r, err,
                                 sizeof(err)) == 0)
            ctgov_results_free(r);
    }
    free(copy);
    free(bytes);
}

static void test_ctgov_our_json_imports(void **state)
{
    (void)state;
    const char *doc =
        "{\"trial_id\":\"TC-1\",\"brief_title\":\"B\",\"sponsor_name\":\"S\","
        "\"enrollment\":12,\"start_date\":\"2027-01\","
        "\"primary_completion_date\":\"2028-06-30\","
        "\"outcomes\":[{\"type\":\"primary\",\"measure\":\"HbA1c\","
        "\"time_frame\":\"Week 12\"},{\"type\":\"secondary\",\"measure\":"
        "\"Weight\",\"time_frame\":\"Week 12\"},{\"type\":\"primary\","
        "\"measure\":\"FPG\",\"time_frame\":\"Week 4\"}]}";
    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    assert_int_equal(ctgov_import_protocol((const unsigned char *)doc,
                                           strlen(doc), false, &p, err,
                                           sizeof(err)),
                     0);
    assert_string_equal(p->source, "json");
    assert_int_equal(p->n_outcomes, 3);
    assert_string_equal(p->outcomes[0]->id, "P1");
    assert_string_equal(p->outcomes[1]->id, "S1");
    assert_string_equal(p->outcomes[2]->id, "P2");
    assert_int_equal(p->enrollment, 12);
    /* --ctgov refuses our format */
    Tc__ProtocolRegister *q = NULL;
    assert_int_not_equal(ctgov_import_protocol((const unsigned char *)doc,
                                               strlen(doc), true, &q, err,
                                               sizeof(err)),
                         0);
    ctgov_protocol_free(p);
}

static void test_ctgov_results_match_registered(void **state)
{
    (void)state;
    size_t len;
    unsigned char *bytes = load("ctgov/NCT02210780.json", &len);
    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    assert_int_equal(
        ctgov_import_protocol(bytes, len, false, &p, err, sizeof(err)), 0);
    Tc__ResultsRegister *r = NULL;
    int rv = ctgov_import_results(bytes, len, true, p->outcomes, p->n_outcomes,
                                  &r, err, sizeof(err));
    if (rv != 0)
        fail_msg("%s", err);
    assert_int_equal(r->n_outcomes, 11);
    assert_string_equal(r->actual_primary_completion_date, "2015-09-15");
    assert_int_equal(r->outcomes[0]->type, TC__OUTCOME_TYPE__OUTCOME_PRIMARY);
    assert_string_equal(r->outcomes[0]->outcome_id, "P1");
    assert_false(r->outcomes[0]->not_prespecified);
    ctgov_results_free(r);

    /* against a registration with no outcomes nothing matches; the record
     * declares none of them post hoc, so none is marked not pre-specified:
     * they stay unlinked, for the audit to flag as undeclared changes */
    assert_int_equal(
        ctgov_import_results(bytes, len, true, NULL, 0, &r, err, sizeof(err)),
        0);
    for (size_t i = 0; i < r->n_outcomes; i++) {
        assert_false(r->outcomes[i]->not_prespecified);
        assert_string_equal(r->outcomes[i]->outcome_id, "");
    }
    ctgov_results_free(r);
    ctgov_protocol_free(p);
    free(bytes);

    /* a record without results says so */
    bytes = load("ctgov/NCT03630471.json", &len);
    assert_int_not_equal(
        ctgov_import_results(bytes, len, true, NULL, 0, &r, err, sizeof(err)),
        0);
    assert_non_null(strstr(err, "no results"));
    free(bytes);
}

static void test_ctgov_normalize_collapses_case_and_punctuation(void **state)
{
    (void)state;
    char a[128], b[128];
    ctgov_normalize("  Change from Baseline in HbA1c (%), Week-12. ", a,
                    sizeof(a));
    ctgov_normalize("change FROM baseline in hba1c week 12", b, sizeof(b));
    assert_string_equal(a, b);
    assert_string_equal(a, "change from baseline in hba1c week 12");
    ctgov_normalize("", a, sizeof(a));
    assert_string_equal(a, "");
    ctgov_normalize("abcdef", a, 4);
    assert_string_equal(a, "abc");
}

static int setup(void **state)
{
    (void)state;
    return find_shared() ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctgov_every_record_imports),
        cmocka_unit_test(test_ctgov_list_envelope_imports),
        cmocka_unit_test(test_ctgov_partial_dates_and_other_outcomes),
        cmocka_unit_test(test_ctgov_classic_v1_refused),
        cmocka_unit_test(test_ctgov_record_without_outcomes_refused),
        cmocka_unit_test(test_ctgov_bad_input_is_an_error),
        cmocka_unit_test(test_ctgov_damaged_records_never_crash),
        cmocka_unit_test(test_ctgov_our_json_imports),
        cmocka_unit_test(test_ctgov_results_match_registered),
        cmocka_unit_test(test_ctgov_normalize_collapses_case_and_punctuation),
    };
    return cmocka_run_group_tests_name("ctgov", tests, setup, NULL);
}
