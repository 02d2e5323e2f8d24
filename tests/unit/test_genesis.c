/* Unit tests for node/genesis.c: genesis parsing and validation, the pbft
 * config it yields, and key files (including the 0600 rule).
 *
 * TRIALCHAIN_WRITE_CORPUS=DIR also writes the good and bad genesis texts to
 * DIR/genesis/ as a seed corpus for tests/fuzz/fuzz_genesis.c. */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "crypto.h"
#include "genesis.h"

#include <ftw.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char pk_hex[12][65]; /* 0..5 replicas, 6..11 members */

static void make_keys(void)
{
    for (int i = 0; i < 12; i++) {
        uint8_t seed[32], pk[32], sk[64];
        memset(seed, i + 1, sizeof(seed));
        crypto_sign_seed_keypair(pk, sk, seed);
        lg_hex(pk, 32, pk_hex[i]);
    }
}

/* A genesis with n_rep replicas (ids in order unless swapped) and the
 * five demo members; `extra_member` and `consensus` are spliced in. */
static char *genesis_text(int n_rep, const char *consensus,
                          const char *member_role, const char *gov)
{
    static char buf[16384];
    size_t at = 0;
    at += (size_t)snprintf(buf + at, sizeof(buf) - at,
                           "{\"chain_name\": \"demo\", \"created\": "
                           "\"2026-11-21T00:00:00Z\",\n \"consensus\": %s,\n"
                           " \"replicas\": [",
                           consensus);
    for (int i = 0; i < n_rep; i++)
        at += (size_t)snprintf(
            buf + at, sizeof(buf) - at,
            "%s\n  {\"id\": %d, \"name\": \"node%d\", \"public_key\": "
            "\"%s\", \"peer_url\": \"tcp://127.0.0.1:%d\"}",
            i ? "," : "", i, i, pk_hex[i], 27000 + i);
    const char *names[] = {"sponsor", "site-a", "site-b", "ethics", "auditor"};
    const char *roles[] = {"sponsor", "site", "site", "ethics_board",
                           member_role};
    at += (size_t)snprintf(buf + at, sizeof(buf) - at, "],\n \"members\": [");
    for (int i = 0; i < 5; i++)
        at += (size_t)snprintf(
            buf + at, sizeof(buf) - at,
            "%s\n  {\"name\": \"%s\", \"role\": \"%s\", \"organisation\": "
            "\"Org %d\", \"public_key\": \"%s\"}",
            i ? "," : "", names[i], roles[i], i, pk_hex[6 + i]);
    snprintf(buf + at, sizeof(buf) - at, "],\n \"governance\": %s}\n", gov);
    return buf;
}

static const char *good_consensus =
    "{\"batch_max\": 128, \"batch_delay_ms\": 3, \"checkpoint_interval\": 1,"
    " \"watermark_window\": 32, \"view_timeout_ms\": 800,"
    " \"view_timeout_max_ms\": 9000, \"clock_skew_max_ms\": 4000}";
static const char *good_gov =
    "{\"threshold\": 2, \"voters\": [\"sponsor\", \"ethics\"]}";

static void write_corpus(const char *name, const char *text)
{
    const char *dir = getenv("TRIALCHAIN_WRITE_CORPUS");
    if (dir == NULL)
        return;
    char path[1024];
    snprintf(path, sizeof(path), "%s/genesis", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/genesis/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Parses text; returns rv and leaves the error sentence in err. */
static int parse(const char *text, struct genesis *g, char *err, size_t n)
{
    return genesis_parse((const unsigned char *)text, strlen(text), g, err, n);
}

static void test_genesis_good_file(void **state)
{
    (void)state;
    struct genesis *g = calloc(1, sizeof(*g));
    char err[256] = "";
    const char *text = genesis_text(4, good_consensus, "auditor", good_gov);
    write_corpus("good-4", text);
    assert_int_equal(parse(text, g, err, sizeof(err)), LG_OK);
    uint8_t id[32];
    crypto_sha256(text, strlen(text), id);
    assert_memory_equal(g->chain_id, id, 32);
    assert_int_equal(g->raw_len, strlen(text));
    assert_memory_equal(g->raw, text, g->raw_len);
    assert_string_equal(g->chain_name, "demo");
    assert_int_equal(g->created_ms, 1795219200000ull);
    assert_int_equal(g->n_replicas, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(g->replicas[i].id, i);
        char hex[65];
        lg_hex(g->replicas[i].public_key, 32, hex);
        assert_string_equal(hex, pk_hex[i]);
    }
    assert_string_equal(g->replicas[3].peer_url, "tcp://127.0.0.1:27003");
    assert_int_equal(g->n_members, 5);
    const struct genesis_member *m = genesis_member_by_name(g, "ethics");
    assert_non_null(m);
    assert_int_equal(m->role, ROLE_ETHICS_BOARD);
    assert_string_equal(m->organisation, "Org 3");
    assert_ptr_equal(genesis_member_by_key(g, m->public_key), m);
    assert_null(genesis_member_by_name(g, "nobody"));
    assert_int_equal(g->gov_threshold, 2);
    assert_int_equal(g->batch_max, 128);
    assert_int_equal(g->watermark_window, 32);

    struct pbft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.self = 2;
    genesis_pbft_config(g, &cfg);
    assert_int_equal(cfg.n, 4);
    assert_int_equal(cfg.self, 2);
    assert_memory_equal(cfg.chain_id, g->chain_id, 32);
    assert_int_equal(cfg.batch_max, 128);
    assert_int_equal(cfg.batch_delay_ms, 3);
    assert_int_equal(cfg.view_timeout_ms, 800);
    assert_int_equal(cfg.view_timeout_max_ms, 9000);
    assert_int_equal(cfg.clock_skew_max_ms, 4000);
    assert_int_equal(cfg.watermark_window, 32);
    assert_true(cfg.request_bytes_max > 0); /* from pbft_config_defaults */
    genesis_free(g);
    genesis_free(NULL);
    free(g);
}

static void test_genesis_defaults_when_consensus_is_empty(void **state)
{
    (void)state;
    struct genesis *g = calloc(1, sizeof(*g));
    char err[256] = "";
    const char *text = genesis_text(7, "{}", "auditor", good_gov);
    write_corpus("good-7-defaults", text);
    assert_int_equal(parse(text, g, err, sizeof(err)), LG_OK);
    struct pbft_config d;
    memset(&d, 0, sizeof(d));
    pbft_config_defaults(&d);
    assert_int_equal(g->n_replicas, 7);
    assert_int_equal(g->batch_max, d.batch_max);
    assert_int_equal(g->view_timeout_ms, d.view_timeout_ms);
    genesis_free(g);
    free(g);
}

struct bad_case {
    const char *name;
    const char *text;
    const char *needle; /* expected in the error sentence */
};

static void expect_bad(const char *name, const char *text, const char *needle)
{
    struct genesis *g = calloc(1, sizeof(*g));
    char err[512] = "";
    /* A few bad files seed the fuzz corpus; the rest are mutations. */
    const char *seeds[] = {"too-few-replicas",        "unknown-role",
                           "duplicate-key",           "bad-hex",
                           "unknown-consensus-param", "not-json"};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        if (strcmp(name, seeds[i]) == 0)
            write_corpus(name, text);
    int rv = parse(text, g, err, sizeof(err));
    if (rv != LG_ECONFIG || strstr(err, needle) == NULL)
        print_error("case %s: rv=%d err=\"%s\" (want \"%s\")\n", name, rv, err,
                    needle);
    assert_int_equal(rv, LG_ECONFIG);
    assert_non_null(strstr(err, needle));
    assert_null(g->raw);
    genesis_free(g);
    free(g);
}

static char *replace(const char *text, const char *from, const char *to)
{
    static char buf[16384];
    const char *p = strstr(text, from);
    assert_non_null(p);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - text), text, to,
             p + strlen(from));
    return buf;
}

static void test_genesis_rejects_bad_files(void **state)
{
    (void)state;
    char text[16384];
    snprintf(text, sizeof(text), "%s",
             genesis_text(4, good_consensus, "auditor", good_gov));

    expect_bad("too-few-replicas",
               genesis_text(3, good_consensus, "auditor", good_gov),
               "at least 4");
    expect_bad("unknown-role",
               genesis_text(4, good_consensus, "janitor", good_gov),
               "unknown role \"janitor\"");
    expect_bad("duplicate-key",
               replace(text, "\"chain_name\": \"demo\",",
                       "\"chain_name\": \"demo\", \"chain_name\": \"x\","),
               "duplicate");
    expect_bad("bad-hex", replace(text, pk_hex[1], "zz"), "hex digits");
    char shorter[65];
    snprintf(shorter, sizeof(shorter), "%.62s", pk_hex[2]);
    expect_bad("short-hex", replace(text, pk_hex[2], shorter), "hex digits");
    expect_bad("duplicate-id", replace(text, "\"id\": 3", "\"id\": 1"),
               "ids must be unique");
    expect_bad("id-out-of-range", replace(text, "\"id\": 3", "\"id\": 4"),
               "ids must be unique");
    expect_bad("duplicate-replica-key", replace(text, pk_hex[3], pk_hex[0]),
               "share a public key");
    expect_bad("duplicate-member-name",
               replace(text, "\"name\": \"site-b\"", "\"name\": \"site-a\""),
               "share the name");
    expect_bad("unknown-consensus-param",
               replace(text, "\"batch_max\"", "\"batch_maxx\""),
               "unknown parameter");
    expect_bad("negative-param",
               replace(text, "\"batch_max\": 128", "\"batch_max\": -1"),
               "integer");
    expect_bad(
        "bad-window",
        replace(text, "\"watermark_window\": 32", "\"watermark_window\": 1"),
        "watermark_window");
    expect_bad("bad-created",
               replace(text, "2026-11-21T00:00:00Z", "2026-02-31T00:00:00Z"),
               "UTC time");
    expect_bad("unknown-voter", replace(text, "\"ethics\"]", "\"nobody\"]"),
               "voter");
    expect_bad("threshold-too-high",
               replace(text, "\"threshold\": 2", "\"threshold\": 3"),
               "threshold");
    expect_bad("not-json", "{\"chain_name\": ", "not valid JSON");
    expect_bad("not-object", "[1, 2, 3]", "JSON object");
    expect_bad("no-replicas",
               "{\"chain_name\": \"x\", \"created\": "
               "\"2026-11-21T00:00:00Z\"}",
               "replicas");
    expect_bad("empty", "", "not valid JSON");
}

static void test_genesis_load_from_disk(void **state)
{
    (void)state;
    char path[] = "/tmp/test_genesis.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = genesis_text(4, good_consensus, "auditor", good_gov);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct genesis *g = calloc(1, sizeof(*g));
    char err[512];
    assert_int_equal(genesis_load(path, g, err, sizeof(err)), LG_OK);
    uint8_t id[32];
    crypto_sha256(text, strlen(text), id);
    assert_memory_equal(g->chain_id, id, 32);
    genesis_free(g);
    unlink(path);
    assert_int_equal(genesis_load(path, g, err, sizeof(err)), LG_ECONFIG);
    assert_non_null(strstr(err, "does not exist"));
    free(g);
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void test_genesis_keyfile_roundtrip_and_mode(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_keyfile.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[512];
    snprintf(path, sizeof(path), "%s/site-a.key", dir);
    uint8_t chain[32];
    memset(chain, 0xcd, 32);
    struct keyfile made, loaded;
    assert_int_equal(keyfile_generate(path, "member", "site-a", ROLE_SITE,
                                      chain, &made, err, sizeof(err)),
                     LG_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(made.has_pseudonym_secret);

    assert_int_equal(keyfile_load(path, &loaded, err, sizeof(err)), LG_OK);
    assert_string_equal(loaded.kind, "member");
    assert_string_equal(loaded.name, "site-a");
    assert_int_equal(loaded.role, ROLE_SITE);
    assert_memory_equal(loaded.public_key, made.public_key, 32);
    assert_memory_equal(loaded.secret_key, made.secret_key, 64);
    assert_true(loaded.has_pseudonym_secret);
    assert_memory_equal(loaded.pseudonym_secret, made.pseudonym_secret, 32);
    assert_true(loaded.has_chain_id);
    assert_memory_equal(loaded.chain_id, chain, 32);
    keyfile_free(&loaded);

    /* Never overwritten. */
    assert_int_equal(keyfile_generate(path, "member", "site-a", ROLE_SITE,
                                      chain, NULL, err, sizeof(err)),
                     LG_EEXIST);

    /* Readable by group or others: refused, and told how to fix it. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(keyfile_load(path, &loaded, err, sizeof(err)), LG_EPERM);
    char want[256];
    snprintf(want, sizeof(want), "chmod 600 %s", path);
    assert_non_null(strstr(err, want));
    assert_null(loaded.secret_key);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(keyfile_load(path, &loaded, err, sizeof(err)), LG_EPERM);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(keyfile_load(path, &loaded, err, sizeof(err)), LG_OK);
    keyfile_free(&loaded);
    keyfile_free(&made);

    /* A replica key: no role, no pseudonym secret. */
    snprintf(path, sizeof(path), "%s/node0.key", dir);
    assert_int_equal(keyfile_generate(path, "replica", "node0", ROLE_NONE, NULL,
                                      NULL, err, sizeof(err)),
                     LG_OK);
    assert_int_equal(keyfile_load(path, &loaded, err, sizeof(err)), LG_OK);
    assert_int_equal(loaded.role, ROLE_NONE);
    assert_false(loaded.has_pseudonym_secret);
    assert_false(loaded.has_chain_id);
    keyfile_free(&loaded);

    assert_int_equal(
        keyfile_load("/tmp/no-such-key-file", &loaded, err, sizeof(err)),
        LG_ENOTFOUND);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_key_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
}

static void test_genesis_keyfile_rejects_bad_content(void **state)
{
    (void)state;
    char path[] = "/tmp/test_keyfile_bad.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    uint8_t seed[32], pk[32], sk[64];
    memset(seed, 9, 32);
    crypto_sign_seed_keypair(pk, sk, seed);
    char pkh[65], skh[129], other[65], text[1024], err[512];
    lg_hex(pk, 32, pkh);
    lg_hex(sk, 64, skh);
    struct keyfile k;

    snprintf(text, sizeof(text),
             "{\"kind\": \"member\", \"name\": \"s\", \"role\": \"sponsor\","
             " \"public_key\": \"%s\", \"secret_key\": \"%s\"}",
             pkh, skh);
    write_key_text(path, text);
    assert_int_equal(keyfile_load(path, &k, err, sizeof(err)), LG_OK);
    keyfile_free(&k);

    /* Secret key that does not match the public key. */
    snprintf(other, sizeof(other), "%s", pk_hex[0]);
    snprintf(text, sizeof(text),
             "{\"kind\": \"member\", \"name\": \"s\", \"role\": \"sponsor\","
             " \"public_key\": \"%s\", \"secret_key\": \"%s\"}",
             other, skh);
    write_key_text(path, text);
    assert_int_equal(keyfile_load(path, &k, err, sizeof(err)), LG_ECONFIG);
    assert_non_null(strstr(err, "does not match"));

    /* Templates: PK and SK are replaced by the hex keys. */
    const char *bad[] = {
        "{\"kind\": \"robot\", \"name\": \"s\", \"public_key\": \"PK\", "
        "\"secret_key\": \"SK\"}",
        "{\"kind\": \"member\", \"name\": \"s\", \"public_key\": \"PK\", "
        "\"secret_key\": \"SK\"}", /* member without role */
        "{\"kind\": \"replica\", \"name\": \"s\", \"public_key\": \"PK\", "
        "\"secret_key\": \"SK00\"}",
        "{\"kind\": \"replica\", \"kind\": \"replica\", \"name\": \"s\", "
        "\"public_key\": \"PK\", \"secret_key\": \"SK\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s", replace(bad[i], "PK", pkh));
        write_key_text(path, replace(text, "SK", skh));
        assert_int_equal(keyfile_load(path, &k, err, sizeof(err)), LG_ECONFIG);
        assert_null(k.secret_key);
    }
    unlink(path);
}

/* A genesis with n site members besides the demo's five (distinct keys
 * and names); malloc'd. */
static char *genesis_with_sites(int n)
{
    const char *base = genesis_text(4, "{}", "auditor", good_gov);
    const char *cut = strstr(base, "],\n \"governance\"");
    assert_non_null(cut);
    size_t cap = strlen(base) + (size_t)n * 200 + 64, at = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    at += (size_t)snprintf(buf, cap, "%.*s", (int)(cut - base), base);
    for (int i = 0; i < n; i++) {
        uint8_t seed[32], pk[32], sk[64];
        char hex[65];
        memset(seed, 0, sizeof(seed));
        memcpy(seed, &i, sizeof(i));
        seed[31] = 0xb5;
        crypto_sign_seed_keypair(pk, sk, seed);
        lg_hex(pk, 32, hex);
        at += (size_t)snprintf(buf + at, cap - at,
                               ",\n  {\"name\": \"bsite%d\", \"role\": "
                               "\"site\", \"organisation\": \"Site %d\", "
                               "\"public_key\": \"%s\"}",
                               i, i, hex);
    }
    snprintf(buf + at, cap - at, "%s", cut);
    return buf;
}

/* The member limit is exact: a genesis of GENESIS_MEMBERS_MAX members
 * loads, one more is refused with the limit named. */
static void test_genesis_member_limit(void **state)
{
    (void)state;
    struct genesis *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    char err[256] = "";
    char *text = genesis_with_sites(GENESIS_MEMBERS_MAX - 5);
    assert_int_equal(parse(text, g, err, sizeof(err)), LG_OK);
    assert_int_equal(g->n_members, GENESIS_MEMBERS_MAX);
    assert_non_null(genesis_member_by_name(g, "bsite0"));
    genesis_free(g);
    free(text);
    memset(g, 0, sizeof(*g));
    text = genesis_with_sites(GENESIS_MEMBERS_MAX - 4);
    assert_int_equal(parse(text, g, err, sizeof(err)), LG_ECONFIG);
    assert_non_null(strstr(err, "the limit is"));
    genesis_free(g);
    free(text);
    free(g);
}

static void test_genesis_role_names(void **state)
{
    (void)state;
    enum member_role r;
    assert_int_equal(role_parse("ethics_board", &r), LG_OK);
    assert_int_equal(r, ROLE_ETHICS_BOARD);
    assert_string_equal(role_name(ROLE_SITE), "site");
    assert_int_equal(role_parse("Sponsor", &r), LG_EINVAL);
    assert_int_equal(role_parse("none", &r), LG_EINVAL);
    assert_int_equal(role_parse(NULL, &r), LG_EINVAL);
    assert_string_equal(role_name((enum member_role)99), "unknown");
}

int main(void)
{
    if (crypto_setup() != LG_OK)
        return 1;
    make_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genesis_good_file),
        cmocka_unit_test(test_genesis_defaults_when_consensus_is_empty),
        cmocka_unit_test(test_genesis_rejects_bad_files),
        cmocka_unit_test(test_genesis_load_from_disk),
        cmocka_unit_test(test_genesis_keyfile_roundtrip_and_mode),
        cmocka_unit_test(test_genesis_keyfile_rejects_bad_content),
        cmocka_unit_test(test_genesis_member_limit),
        cmocka_unit_test(test_genesis_role_names),
    };
    return cmocka_run_group_tests_name("genesis", tests, NULL, NULL);
}
