/* Unit tests for node/lg.c: error strings, logging, hex, clocks and the
 * file helpers. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "lg.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_lg_strerror_covers_every_code(void **state)
{
    (void)state;
    assert_string_equal(lg_strerror(LG_OK), "ok");
    assert_string_equal(lg_strerror(LG_EPERM), "not permitted");
    for (int i = 0; i < LG_ERR_COUNT; i++)
        assert_true(strlen(lg_strerror(i)) > 0);
    assert_string_equal(lg_strerror(-1), "unknown error");
    assert_string_equal(lg_strerror(LG_ERR_COUNT), "unknown error");
}

static void test_lg_hex_roundtrip(void **state)
{
    (void)state;
    const unsigned char in[] = {0x00, 0x01, 0xab, 0xff};
    char hex[9];
    unsigned char out[4];
    lg_hex(in, 4, hex);
    assert_string_equal(hex, "0001abff");
    assert_int_equal(lg_unhex("0001ABff", out, 4), 0);
    assert_memory_equal(out, in, 4);
    assert_int_equal(lg_unhex("0001abf", out, 4), -1);    /* short */
    assert_int_equal(lg_unhex("0001abff00", out, 4), -1); /* long */
    assert_int_equal(lg_unhex("0001abgf", out, 4), -1);   /* not hex */
    assert_int_equal(lg_unhex(NULL, out, 4), -1);
    assert_int_equal(lg_unhex("", out, 0), 0);
}

static void test_lg_parse_level(void **state)
{
    (void)state;
    enum lg_level l;
    assert_int_equal(lg_log_parse_level("debug", &l), LG_OK);
    assert_int_equal(l, LG_DEBUG);
    assert_int_equal(lg_log_parse_level("warn", &l), LG_OK);
    assert_int_equal(l, LG_WARN);
    assert_int_equal(lg_log_parse_level("off", &l), LG_OK);
    assert_int_equal(l, LG_OFF);
    assert_int_equal(lg_log_parse_level("loud", &l), LG_EINVAL);
    assert_int_equal(lg_log_parse_level(NULL, &l), LG_EINVAL);
}

static int evaluated;

static int side_effect(void)
{
    evaluated++;
    return 1;
}

static char *capture(FILE *f)
{
    static char buf[4096];
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    return buf;
}

static void test_lg_log_text_and_json(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    lg_log_set_stream(f);
    lg_log_set_prefix("node=2");
    lg_log_set_level(LG_INFO);

    /* Below the level: arguments are not evaluated. */
    evaluated = 0;
    lg_log(LG_DEBUG, "noise", "x=%d", side_effect());
    assert_int_equal(evaluated, 0);

    lg_log(LG_WARN, "peer-drop", "replica=%d reason=\"%s\"", 3, "flood");
    char *out = capture(f);
    assert_non_null(strstr(out, "warn"));
    assert_non_null(strstr(out, "node=2 peer-drop replica=3"));

    f = freopen(NULL, "w+", f);
    assert_non_null(f);
    lg_log_set_stream(f);
    lg_log_set_json(true);
    lg_log(LG_ERROR, "odd\"event", "quote=\" ctl=\x01 end");
    out = capture(f);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "level")),
                        "error");
    assert_string_equal(json_string_value(json_object_get(o, "event")),
                        "odd\"event");
    assert_string_equal(json_string_value(json_object_get(o, "fields")),
                        "quote=\" ctl=\x01 end");
    assert_true(json_is_integer(json_object_get(o, "ts_ms")));
    json_decref(o);

    lg_log_set_json(false);
    lg_log_set_prefix(NULL);
    lg_log_set_stream(NULL);
    fclose(f);
}

static void test_lg_clocks(void **state)
{
    (void)state;
    unsigned long long a = lg_mono_ms(), b = lg_mono_ms();
    assert_true(b >= a);
    /* After 2020 and before 2100. */
    assert_true(lg_now_ms() > 1577836800000ull);
    assert_true(lg_now_ms() < 4102444800000ull);
}

static void test_lg_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_lg.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/f.txt", dir);
    mode_t old = umask(077);
    assert_int_equal(lg_write_file(path, "hello", 5, 0644), LG_OK);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* exactly as asked */

    unsigned char *buf;
    size_t len;
    assert_int_equal(lg_read_file(path, 100, &buf, &len), LG_OK);
    assert_int_equal(len, 5);
    assert_string_equal((char *)buf, "hello"); /* NUL added */
    free(buf);
    assert_int_equal(lg_read_file(path, 4, &buf, &len), LG_ETOOBIG);
    /* Replacing is atomic and keeps the new mode. */
    assert_int_equal(lg_write_file(path, "", 0, 0600), LG_OK);
    assert_int_equal(lg_read_file(path, 100, &buf, &len), LG_OK);
    assert_int_equal(len, 0);
    free(buf);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    unlink(path);
    assert_int_equal(lg_read_file(path, 100, &buf, &len), LG_ENOTFOUND);
    assert_int_equal(lg_read_file(dir, 100, &buf, &len), LG_EIO);
    snprintf(path, sizeof(path), "%s/missing/f.txt", dir);
    assert_int_equal(lg_write_file(path, "x", 1, 0600), LG_EIO);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lg_strerror_covers_every_code),
        cmocka_unit_test(test_lg_hex_roundtrip),
        cmocka_unit_test(test_lg_parse_level),
        cmocka_unit_test(test_lg_log_text_and_json),
        cmocka_unit_test(test_lg_clocks),
        cmocka_unit_test(test_lg_files),
    };
    return cmocka_run_group_tests_name("lg", tests, NULL, NULL);
}
