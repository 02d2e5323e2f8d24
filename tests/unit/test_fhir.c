/*
 * test_fhir.c - the Consent resources `consent export --fhir` writes have
 * the shape of HL7's own R4 examples in ../shared/data/fhir/: every key
 * all the examples share, with the same JSON types, and the codes R4
 * allows.
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

#include "../../tools/fhir.c"
// clang-format on

static char fhir_dir[600];
static json_t *examples; /* array of the Consent-*.json examples */

static bool find_fhir_dir(void)
{
    const char *candidates[] = {getenv("TRIALCHAIN_SHARED"), "../shared",
                                "/work/shared"};
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        if (!candidates[i])
            continue;
        snprintf(fhir_dir, sizeof(fhir_dir), "%s/data/fhir", candidates[i]);
        if (stat(fhir_dir, &st) == 0 && S_ISDIR(st.st_mode))
            return true;
    }
    return false;
}

static int setup(void **state)
{
    (void)state;
    if (!find_fhir_dir())
        return -1;
    examples = json_array();
    DIR *d = opendir(fhir_dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "Consent-", 8) != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", fhir_dir, e->d_name);
        json_t *j = json_load_file(path, 0, NULL);
        if (j)
            json_array_append_new(examples, j);
    }
    closedir(d);
    return json_array_size(examples) >= 2 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(examples);
    return 0;
}

static const uint8_t pseudo[32] = {0xab, 1, 2, 3};
static const uint8_t form[32] = {0xcd, 4, 5, 6};
static const uint8_t txid[32] = {0xef, 7, 8, 9};

static json_t *sample(bool withdraw, bool superseded)
{
    const char *scopes[] = {"PARTICIPATION", "GRU", "DS:MONDO:0005148", "NPU"};
    struct fhir_consent_in in = {
        .trial_id = "NCT02210780",
        .pseudonym = pseudo,
        .protocol_version = 2,
        .form_hash = form,
        .withdraw = withdraw,
        .superseded = superseded,
        .scopes = scopes,
        .n_scopes = 4,
        .time_ms = 1795000000000ull,
        .site = "site-a",
        .tx_id = txid,
    };
    json_t *r = fhir_consent(&in);
    assert_non_null(r);
    return r;
}

/* Every key present in all examples is in ours, with the same type. */
static void check_shape(json_t *ours)
{
    json_t *first = json_array_get(examples, 0);
    const char *key;
    json_t *v;
    json_object_foreach(first, key, v)
    {
        bool in_all = true;
        size_t i;
        json_t *ex;
        json_array_foreach(examples, i, ex)
        {
            if (!json_object_get(ex, key))
                in_all = false;
        }
        if (!in_all)
            continue;
        json_t *mine = json_object_get(ours, key);
        if (!mine)
            fail_msg("our Consent lacks \"%s\"", key);
        assert_int_equal(json_typeof(mine), json_typeof(v));
    }
    /* keys we add that some example has: same type there */
    json_object_foreach(ours, key, v)
    {
        size_t i;
        json_t *ex;
        json_array_foreach(examples, i, ex)
        {
            json_t *theirs = json_object_get(ex, key);
            if (theirs && json_typeof(theirs) != json_typeof(v))
                fail_msg("\"%s\" has another type than in an example", key);
        }
    }
}

static void check_coding(json_t *concept_, const char *code)
{
    json_t *c = json_array_get(json_object_get(concept_, "coding"), 0);
    assert_non_null(c);
    assert_true(json_is_string(json_object_get(c, "system")));
    assert_string_equal(json_string_value(json_object_get(c, "code")), code);
}

static void test_fhir_consent_has_the_examples_shape(void **state)
{
    (void)state;
    json_t *r = sample(false, false);
    check_shape(r);
    assert_string_equal(json_string_value(json_object_get(r, "resourceType")),
                        "Consent");
    assert_string_equal(json_string_value(json_object_get(r, "status")),
                        "active");
    check_coding(json_object_get(r, "scope"), "research");
    check_coding(json_array_get(json_object_get(r, "category"), 0), "research");
    check_coding(json_object_get(r, "policyRule"), "OPTIN");
    json_t *prov = json_object_get(r, "provision");
    assert_string_equal(json_string_value(json_object_get(prov, "type")),
                        "permit");
    /* PARTICIPATION is not a data-use purpose: three DUO codings */
    json_t *purpose = json_object_get(prov, "purpose");
    assert_int_equal(json_array_size(purpose), 3);
    json_t *gru = json_array_get(purpose, 0);
    assert_string_equal(json_string_value(json_object_get(gru, "system")),
                        FHIR_DUO_SYSTEM);
    assert_string_equal(json_string_value(json_object_get(gru, "code")),
                        "DUO:0000042");
    /* the participant is a pseudonym, the time is the block's */
    json_t *ident =
        json_object_get(json_object_get(r, "patient"), "identifier");
    const char *value = json_string_value(json_object_get(ident, "value"));
    assert_non_null(value);
    assert_int_equal(strlen(value), 64);
    assert_int_equal(strncmp(value, "ab010203", 8), 0);
    assert_string_equal(json_string_value(json_object_get(r, "dateTime")),
                        "2026-11-18T11:06:40Z");
    assert_true(json_is_array(json_object_get(r, "organization")));
    json_decref(r);
}

static void test_fhir_withdrawal_is_optout_deny(void **state)
{
    (void)state;
    json_t *r = sample(true, false);
    check_shape(r);
    check_coding(json_object_get(r, "policyRule"), "OPTOUT");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r, "provision"), "type")),
                        "deny");
    json_decref(r);

    r = sample(false, true);
    assert_string_equal(json_string_value(json_object_get(r, "status")),
                        "inactive");
    json_decref(r);
}

static void test_fhir_bundle_holds_every_resource(void **state)
{
    (void)state;
    json_t *arr = json_array();
    json_array_append_new(arr, sample(false, true));
    json_array_append_new(arr, sample(true, false));
    json_t *b = fhir_bundle(arr);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "resourceType")),
                        "Bundle");
    assert_string_equal(json_string_value(json_object_get(b, "type")),
                        "collection");
    json_t *entries = json_object_get(b, "entry");
    assert_int_equal(json_array_size(entries), 2);
    json_t *res = json_object_get(json_array_get(entries, 1), "resource");
    check_shape(res);
    /* it round-trips through text */
    char *text = json_dumps(b, 0);
    assert_non_null(text);
    json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(back);
    json_decref(back);
    free(text);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fhir_consent_has_the_examples_shape),
        cmocka_unit_test(test_fhir_withdrawal_is_optout_deny),
        cmocka_unit_test(test_fhir_bundle_holds_every_resource),
    };
    return cmocka_run_group_tests_name("fhir", tests, setup, teardown);
}
