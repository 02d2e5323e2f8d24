/*
 * test_config.c - node settings: precedence (flags, environment, file,
 * defaults) and refusal of bad settings with a sentence.
 */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char home[64];

static int setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/tc-config-XXXXXX");
    if (mkdtemp(home) == NULL)
        return -1;
    unsetenv("TRIALCHAIN_HOME");
    unsetenv("TRIALCHAIN_CLIENT_URL");
    unsetenv("TRIALCHAIN_LOG_LEVEL");
    unsetenv("TRIALCHAIN_REPLICA_ID");
    unsetenv("TRIALCHAIN_DATA_DIR");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/config.json", home);
    unlink(path);
    rmdir(home);
    return 0;
}

static void write_config(const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/config.json", home);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(struct node_config *c, char *err, size_t err_len,
                const char *extra)
{
    char *argv[6] = {
        (char *)"trialchain-node", (char *)"--home", home, NULL, NULL, NULL};
    int argc = 3;
    if (extra != NULL)
        argv[argc++] = (char *)extra;
    return config_load(argc, argv, c, err, err_len);
}

static void test_config_defaults_apply_under_a_minimal_file(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    write_config("{\"replica_id\": 2}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_OK);
    assert_int_equal(c.replica_id, 2);
    assert_string_equal(c.log_format, "text");
    assert_string_equal(c.cpu_policy, "normal");
    assert_int_equal(c.limits.peer_recv_max_bytes, 32u << 20);
    assert_int_equal(c.limits.client_recv_max_bytes, 1u << 20);
    char want[160];
    snprintf(want, sizeof(want), "%s/data", home);
    assert_string_equal(c.data_dir, want);
    snprintf(want, sizeof(want), "%s/node.key", home);
    assert_string_equal(c.key_path, want);
}

static void test_config_flags_beat_env_beat_file(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    write_config("{\"replica_id\": 1, \"log_level\": \"error\", "
                 "\"client_url\": \"tcp://127.0.0.1:1\"}");
    setenv("TRIALCHAIN_LOG_LEVEL", "warn", 1);
    setenv("TRIALCHAIN_CLIENT_URL", "ipc:///tmp/x", 1);
    assert_int_equal(load(&c, err, sizeof(err), "--log-level=debug"), LG_OK);
    assert_string_equal(c.log_level, "debug");         /* flag */
    assert_string_equal(c.client_url, "ipc:///tmp/x"); /* env over file */
    unsetenv("TRIALCHAIN_LOG_LEVEL");
    unsetenv("TRIALCHAIN_CLIENT_URL");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_OK);
    assert_string_equal(c.log_level, "error"); /* file over default */
}

static void test_config_unknown_key_is_refused(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    write_config("{\"replica_id\": 1, \"clinet_url\": \"tcp://x\"}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    assert_non_null(strstr(err, "clinet_url"));
}

static void test_config_missing_replica_id_is_refused(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    write_config("{}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    assert_non_null(strstr(err, "replica_id"));
    setenv("TRIALCHAIN_REPLICA_ID", "3", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_OK);
    assert_int_equal(c.replica_id, 3);
    unsetenv("TRIALCHAIN_REPLICA_ID");
}

static void test_config_cpu_policy(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    write_config("{\"replica_id\": 1, \"cpu_policy\": \"batch\"}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_OK);
    assert_string_equal(c.cpu_policy, "batch");
    setenv("TRIALCHAIN_CPU_POLICY", "normal", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_OK);
    assert_string_equal(c.cpu_policy, "normal"); /* env over file */
    setenv("TRIALCHAIN_CPU_POLICY", "realtime", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    assert_non_null(strstr(err, "cpu_policy \"realtime\""));
    unsetenv("TRIALCHAIN_CPU_POLICY");
    write_config("{\"replica_id\": 1, \"cpu_policy\": 2}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
}

static void test_config_bad_values_are_refused(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    write_config("{\"replica_id\": 1, \"limits\": {\"api_contexts\": 0}}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    assert_non_null(strstr(err, "api_contexts"));
    write_config("{\"replica_id\": 1, \"limits\": {\"queue_max\": -5}}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    write_config("{\"replica_id\": \"one\"}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    write_config("{\"replica_id\": 1, \"replica_id\": 2}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    write_config("not json");
    assert_int_equal(load(&c, err, sizeof(err), NULL), LG_ECONFIG);
    write_config("{\"replica_id\": 1}");
    assert_int_equal(load(&c, err, sizeof(err), "--log-format=xml"),
                     LG_ECONFIG);
    assert_int_equal(load(&c, err, sizeof(err), "--bogus"), LG_ECONFIG);
    assert_non_null(strstr(err, "--bogus"));
}

static void test_config_home_is_required(void **state)
{
    (void)state;
    struct node_config c;
    char err[256] = "";
    char *argv[] = {(char *)"trialchain-node", NULL};
    assert_int_equal(config_load(1, argv, &c, err, sizeof(err)), LG_ECONFIG);
    assert_non_null(strstr(err, "--home"));
    char *argv2[] = {(char *)"trialchain-node", (char *)"--home", NULL};
    assert_int_equal(config_load(2, argv2, &c, err, sizeof(err)), LG_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_config_defaults_apply_under_a_minimal_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_flags_beat_env_beat_file,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_key_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_config_missing_replica_id_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_cpu_policy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_values_are_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_home_is_required, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
