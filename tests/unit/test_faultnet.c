/* Unit tests for node/faultnet.c: spec parsing, determinism from the seed,
 * rates close to the spec, and faults confined to the chosen peers. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "faultnet.h"

#include <stdlib.h>
#include <string.h>

#define FRAMES 20000

static void test_faultnet_parse_full_spec(void **state)
{
    (void)state;
    struct faultnet f;
    char err[256];
    assert_int_equal(
        faultnet_parse("drop=0.1,dup=0.05,delay=5-50,reorder=0.1,peers=0-1,"
                       "seed=42",
                       &f, err, sizeof(err)),
        LG_OK);
    assert_true(f.enabled);
    assert_true(f.drop > 0.099 && f.drop < 0.101);
    assert_true(f.dup > 0.049 && f.dup < 0.051);
    assert_true(f.reorder > 0.099 && f.reorder < 0.101);
    assert_int_equal(f.delay_min_ms, 5);
    assert_int_equal(f.delay_max_ms, 50);
    assert_true(f.peers == 0x3);
    assert_true(f.seed == 42);

    assert_int_equal(
        faultnet_parse("peers=1-2+5,delay=7", &f, err, sizeof(err)), LG_OK);
    assert_true(f.peers == ((1u << 1) | (1u << 2) | (1u << 5)));
    assert_int_equal(f.delay_min_ms, 7);
    assert_int_equal(f.delay_max_ms, 7);
}

static void test_faultnet_parse_empty_is_disabled(void **state)
{
    (void)state;
    struct faultnet f;
    char err[256];
    assert_int_equal(faultnet_parse(NULL, &f, err, sizeof(err)), LG_OK);
    assert_false(f.enabled);
    assert_int_equal(faultnet_parse("", &f, err, sizeof(err)), LG_OK);
    assert_false(f.enabled);
    struct faultnet_verdict v;
    faultnet_decide(&f, 0, 1, 100, &v);
    assert_int_equal(v.action, FAULTNET_DELIVER);
    assert_int_equal(v.n_copies, 1);
    assert_true(v.at_ms[0] == 100);
}

static void test_faultnet_parse_rejects_bad_items(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "drop=1.5",   "drop=-0.1", "drop=abc",   "drop=",        "dup=nan",
        "delay=50-5", "delay=x",   "delay=1-",   "delay=999999", "peers=64",
        "peers=3-1",  "peers=0+",  "peers=a",    "seed=-1",      "seed=1x",
        "jitter=5",   "drop",      "drop=0.1,,", "reorder=0.5=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct faultnet f;
        char err[256] = "";
        int rv = faultnet_parse(bad[i], &f, err, sizeof(err));
        if (strcmp(bad[i], "drop=0.1,,") == 0) {
            /* empty items between commas are skipped, not an error */
            assert_int_equal(rv, LG_OK);
            continue;
        }
        if (rv != LG_ECONFIG)
            fail_msg("spec \"%s\" was accepted", bad[i]);
        assert_false(f.enabled);
        assert_true(strlen(err) > 0);
    }
    char long_spec[1024];
    memset(long_spec, 'a', sizeof(long_spec) - 1);
    long_spec[sizeof(long_spec) - 1] = '\0';
    struct faultnet f;
    char err[256];
    assert_int_equal(faultnet_parse(long_spec, &f, err, sizeof(err)),
                     LG_ECONFIG);
}

static void test_faultnet_same_seed_same_verdicts(void **state)
{
    (void)state;
    const char *spec = "drop=0.2,dup=0.1,delay=0-30,reorder=0.2,seed=7";
    struct faultnet a, b, c;
    char err[256];
    assert_int_equal(faultnet_parse(spec, &a, err, sizeof(err)), LG_OK);
    assert_int_equal(faultnet_parse(spec, &b, err, sizeof(err)), LG_OK);
    assert_int_equal(
        faultnet_parse("drop=0.2,dup=0.1,delay=0-30,reorder=0.2,seed=8", &c,
                       err, sizeof(err)),
        LG_OK);
    int differ = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        struct faultnet_verdict va, vb, vc;
        faultnet_decide(&a, i % 4, (i + 1) % 4, i, &va);
        faultnet_decide(&b, i % 4, (i + 1) % 4, i, &vb);
        faultnet_decide(&c, i % 4, (i + 1) % 4, i, &vc);
        assert_int_equal(va.action, vb.action);
        assert_int_equal(va.n_copies, vb.n_copies);
        assert_true(va.at_ms[0] == vb.at_ms[0]);
        assert_true(va.at_ms[1] == vb.at_ms[1]);
        differ += va.action != vc.action || va.at_ms[0] != vc.at_ms[0];
    }
    assert_true(differ > 100); /* another seed gives another run */
}

static void test_faultnet_rates_follow_spec(void **state)
{
    (void)state;
    struct faultnet f;
    char err[256];
    assert_int_equal(faultnet_parse("drop=0.1,dup=0.05,delay=5-50,seed=3", &f,
                                    err, sizeof(err)),
                     LG_OK);
    uint32_t drops = 0, dups = 0;
    for (uint32_t i = 0; i < FRAMES; i++) {
        struct faultnet_verdict v;
        uint64_t now = 1000 + i;
        faultnet_decide(&f, 0, 1, now, &v);
        if (v.action == FAULTNET_DROP) {
            assert_int_equal(v.n_copies, 0);
            drops++;
            continue;
        }
        if (v.action == FAULTNET_DUPLICATE) {
            assert_int_equal(v.n_copies, 2);
            dups++;
        } else {
            assert_int_equal(v.action, FAULTNET_DELAY);
            assert_int_equal(v.n_copies, 1);
        }
        for (uint32_t c = 0; c < v.n_copies; c++) {
            assert_true(v.at_ms[c] >= now + 5);
            assert_true(v.at_ms[c] <= now + 50);
        }
    }
    /* 10% +- 1.5%, 5% of the rest +- 1% */
    assert_in_range(drops, FRAMES * 85 / 1000, FRAMES * 115 / 1000);
    assert_in_range(dups, FRAMES * 35 / 1000, FRAMES * 65 / 1000);
    assert_true(f.stats.frames == FRAMES);
    assert_true(f.stats.dropped == drops);
    assert_true(f.stats.duplicated == dups);
}

static void test_faultnet_reorder_lets_later_frames_overtake(void **state)
{
    (void)state;
    struct faultnet f;
    char err[256];
    assert_int_equal(
        faultnet_parse("reorder=0.3,seed=11", &f, err, sizeof(err)), LG_OK);
    uint64_t last_at = 0;
    uint32_t overtaken = 0, now_sent = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        struct faultnet_verdict v;
        faultnet_decide(&f, 2, 3, i, &v);
        assert_int_equal(v.n_copies, 1);
        if (v.action == FAULTNET_DELIVER) {
            assert_true(v.at_ms[0] == i);
            now_sent++;
        } else {
            assert_int_equal(v.action, FAULTNET_DELAY);
            assert_true(v.at_ms[0] > i);
            assert_true(v.at_ms[0] <= i + 50); /* no delay range: pad only */
        }
        if (v.at_ms[0] < last_at)
            overtaken++;
        if (v.at_ms[0] > last_at)
            last_at = v.at_ms[0];
    }
    assert_true(overtaken > 100);
    assert_true(now_sent > 1000);
    assert_true(f.stats.reordered > 400 && f.stats.reordered < 800);
}

static void test_faultnet_faults_only_chosen_peers(void **state)
{
    (void)state;
    struct faultnet f;
    char err[256];
    assert_int_equal(faultnet_parse("drop=1,peers=0", &f, err, sizeof(err)),
                     LG_OK);
    for (uint32_t from = 0; from < 4; from++) {
        for (uint32_t to = 0; to < 4; to++) {
            struct faultnet_verdict v;
            faultnet_decide(&f, from, to, 5, &v);
            bool cut = from == 0 || to == 0;
            assert_int_equal(faultnet_applies(&f, from, to), cut);
            assert_int_equal(v.action, cut ? FAULTNET_DROP : FAULTNET_DELIVER);
        }
    }
    /* ids beyond the mask are never faulted by a peers= set */
    struct faultnet_verdict v;
    faultnet_decide(&f, 100, 200, 5, &v);
    assert_int_equal(v.action, FAULTNET_DELIVER);
}

static void test_faultnet_env_and_describe(void **state)
{
    (void)state;
    struct faultnet f;
    char err[256], line[256];
    assert_int_equal(setenv(FAULTNET_ENV, "drop=0.5,seed=9", 1), 0);
    assert_int_equal(faultnet_from_env(&f, err, sizeof(err)), LG_OK);
    assert_true(f.enabled);
    faultnet_describe(&f, line, sizeof(line));
    assert_non_null(strstr(line, "drop=0.500"));
    assert_non_null(strstr(line, "seed=9"));
    assert_int_equal(unsetenv(FAULTNET_ENV), 0);
    assert_int_equal(faultnet_from_env(&f, err, sizeof(err)), LG_OK);
    assert_false(f.enabled);
    faultnet_describe(&f, line, sizeof(line));
    assert_string_equal(line, "faults=off");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faultnet_parse_full_spec),
        cmocka_unit_test(test_faultnet_parse_empty_is_disabled),
        cmocka_unit_test(test_faultnet_parse_rejects_bad_items),
        cmocka_unit_test(test_faultnet_same_seed_same_verdicts),
        cmocka_unit_test(test_faultnet_rates_follow_spec),
        cmocka_unit_test(test_faultnet_reorder_lets_later_frames_overtake),
        cmocka_unit_test(test_faultnet_faults_only_chosen_peers),
        cmocka_unit_test(test_faultnet_env_and_describe),
    };
    return cmocka_run_group_tests_name("faultnet", tests, NULL, NULL);
}
