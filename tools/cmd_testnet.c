/*
 * cmd_testnet.c - `trialchain testnet init DIR --nodes N [--spare K]
 * [--base-port P] [--json]`: a local consortium ready to start with
 * scripts/testnet.sh.
 *
 * Writes DIR/node<i>/{config.json, node.key (0600), genesis.json},
 * DIR/genesis.json and the demo member keys DIR/keys/{sponsor, site-a,
 * site-b, ethics, auditor}.key. Ports: base + 10*i + 0 (peers), + 1
 * (clients), + 2 (HTTP), all on 127.0.0.1.
 *
 * Spare homes node<N>..node<N+K-1> are laid out the same way (their own
 * replica key, the genesis, a config that names their peer listener) but
 * are not genesis replicas: each joins once governance adds it
 * (`governance propose ID replica-add node<i> --key-file .../node.key
 * --peer-url ...`). A file "spare" in the home tells scripts/testnet.sh
 * not to start it with the others.
 */
#include "client.h"
#include "cmd.h"
#include "crypto.h"
#include "genesis.h"
#include "lg.h"
#include "net.h"
#include "peer.pb-c.h"
#include "tx.h"
#include "verify.h"

#include <errno.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TESTNET_NODES_MAX 32
#define TESTNET_PATH_MAX  1024

struct testnet_member {
    const char *name, *role_name, *organisation;
    enum member_role role;
};

static const struct testnet_member testnet_members[] = {
    {"sponsor", "sponsor", "Acme Pharma", ROLE_SPONSOR},
    {"site-a", "site", "North Hospital", ROLE_SITE},
    {"site-b", "site", "South Clinic", ROLE_SITE},
    {"ethics", "ethics_board", "Regional Ethics Board", ROLE_ETHICS_BOARD},
    {"auditor", "auditor", "Independent Audit Office", ROLE_AUDITOR},
};
#define TESTNET_N_MEMBERS (sizeof(testnet_members) / sizeof(testnet_members[0]))

struct testnet {
    const char *dir;
    unsigned nodes;
    unsigned spare; /* homes after the genesis replicas, not in genesis */
    unsigned base;
    bool json;
    uint8_t replica_pk[TESTNET_NODES_MAX][32]; /* genesis, then spare */
    uint8_t member_pk[TESTNET_N_MEMBERS][32];
};

static int testnet_load(int argc, char **argv);
static int testnet_check(int argc, char **argv);
static int testnet_poke(int argc, char **argv);

static int testnet_usage(void)
{
    fprintf(stderr,
            "usage: trialchain testnet init DIR --nodes N [--spare K] "
            "[--base-port P] [--json]\n"
            "  N from 4 to %d; ports P + 10*i + {0 peer, 1 client, 2 http} "
            "(default P 27000)\n"
            "  --spare K: K more homes node<N>.. with replica keys, not in "
            "the genesis,\n"
            "  to add later with `trialchain governance propose ID "
            "replica-add`\n"
            "       trialchain testnet replica-key --name NAME -o FILE\n"
            "  a replica key (mode 0600); prints its public key\n",
            TESTNET_NODES_MAX);
    return EXIT_USAGE;
}

static int testnet_mkdir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "trialchain: cannot create %s: %s\n", path,
                strerror(errno));
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int testnet_keys(struct testnet *t)
{
    char path[TESTNET_PATH_MAX], err[512];
    for (unsigned i = 0; i < t->nodes + t->spare; i++) {
        char name[32];
        snprintf(name, sizeof(name), "node%u", i);
        snprintf(path, sizeof(path), "%s/%s", t->dir, name);
        if (testnet_mkdir(path) != EXIT_OK)
            return EXIT_USAGE;
        snprintf(path, sizeof(path), "%s/%s/node.key", t->dir, name);
        struct keyfile k;
        if (keyfile_generate(path, "replica", name, ROLE_NONE, NULL, &k, err,
                             sizeof(err)) != LG_OK) {
            fprintf(stderr, "trialchain: %s\n", err);
            return EXIT_USAGE;
        }
        memcpy(t->replica_pk[i], k.public_key, 32);
        keyfile_free(&k);
    }
    snprintf(path, sizeof(path), "%s/keys", t->dir);
    if (testnet_mkdir(path) != EXIT_OK)
        return EXIT_USAGE;
    for (size_t m = 0; m < TESTNET_N_MEMBERS; m++) {
        snprintf(path, sizeof(path), "%s/keys/%s.key", t->dir,
                 testnet_members[m].name);
        struct keyfile k;
        if (keyfile_generate(path, "member", testnet_members[m].name,
                             testnet_members[m].role, NULL, &k, err,
                             sizeof(err)) != LG_OK) {
            fprintf(stderr, "trialchain: %s\n", err);
            return EXIT_USAGE;
        }
        memcpy(t->member_pk[m], k.public_key, 32);
        keyfile_free(&k);
    }
    return EXIT_OK;
}

static json_t *testnet_hex(const uint8_t *b, size_t n)
{
    char hex[2 * 64 + 1];
    lg_hex(b, n, hex);
    return json_string(hex);
}

static json_t *testnet_genesis_json(const struct testnet *t)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *root = json_object();
    json_object_set_new(root, "chain_name", json_string("testnet"));
    json_object_set_new(root, "created", json_string(created));
    json_t *cons = json_object();
    json_object_set_new(cons, "batch_max", json_integer(256));
    /* A batch waits up to 10 ms to fill: fewer, larger blocks, and so
     * fewer synced writes per transaction. */
    json_object_set_new(cons, "batch_delay_ms", json_integer(10));
    json_object_set_new(cons, "checkpoint_interval", json_integer(1));
    json_object_set_new(cons, "watermark_window", json_integer(64));
    json_object_set_new(cons, "view_timeout_ms", json_integer(3000));
    json_object_set_new(cons, "view_timeout_max_ms", json_integer(30000));
    json_object_set_new(cons, "clock_skew_max_ms", json_integer(5000));
    json_object_set_new(root, "consensus", cons);
    json_t *reps = json_array();
    for (unsigned i = 0; i < t->nodes; i++) {
        char name[32], url[64];
        snprintf(name, sizeof(name), "node%u", i);
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", t->base + 10 * i);
        json_t *r = json_object();
        json_object_set_new(r, "id", json_integer(i));
        json_object_set_new(r, "name", json_string(name));
        json_object_set_new(r, "public_key", testnet_hex(t->replica_pk[i], 32));
        json_object_set_new(r, "peer_url", json_string(url));
        json_array_append_new(reps, r);
    }
    json_object_set_new(root, "replicas", reps);
    json_t *mems = json_array();
    for (size_t m = 0; m < TESTNET_N_MEMBERS; m++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(testnet_members[m].name));
        json_object_set_new(o, "role",
                            json_string(testnet_members[m].role_name));
        json_object_set_new(o, "organisation",
                            json_string(testnet_members[m].organisation));
        json_object_set_new(o, "public_key", testnet_hex(t->member_pk[m], 32));
        json_array_append_new(mems, o);
    }
    json_object_set_new(root, "members", mems);
    json_t *gov = json_object();
    json_object_set_new(gov, "threshold", json_integer(2));
    json_t *voters = json_array();
    json_array_append_new(voters, json_string("sponsor"));
    json_array_append_new(voters, json_string("ethics"));
    json_object_set_new(gov, "voters", voters);
    json_object_set_new(root, "governance", gov);
    return root;
}

static int testnet_write(const char *path, const char *text, unsigned mode)
{
    if (lg_write_file(path, text, strlen(text), mode) != LG_OK) {
        fprintf(stderr, "trialchain: cannot write %s\n", path);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* A spare home's config names its peer listener (a genesis replica's
 * comes from the genesis) and the slot it will get when the spares are
 * added in order. The "spare" file keeps scripts/testnet.sh from starting
 * it with the genesis replicas. */
static int testnet_spare_files(const struct testnet *t, unsigned i)
{
    char path[TESTNET_PATH_MAX], cfg[512];
    snprintf(cfg, sizeof(cfg),
             "{\n  \"replica_id\": %u,\n"
             "  \"peer_listen_url\": \"tcp://127.0.0.1:%u\",\n"
             "  \"client_url\": \"tcp://127.0.0.1:%u\",\n"
             "  \"http_addr\": \"127.0.0.1:%u\",\n"
             "  \"data_dir\": \"data\"\n}\n",
             i, t->base + 10 * i, t->base + 10 * i + 1, t->base + 10 * i + 2);
    snprintf(path, sizeof(path), "%s/node%u/config.json", t->dir, i);
    int rv = testnet_write(path, cfg, 0644);
    snprintf(path, sizeof(path), "%s/node%u/spare", t->dir, i);
    if (rv == EXIT_OK)
        rv = testnet_write(path,
                           "not a genesis replica: start it once governance "
                           "has added it (replica-add)\n",
                           0644);
    return rv;
}

static int testnet_files(const struct testnet *t, uint8_t chain_id[32])
{
    json_t *g = testnet_genesis_json(t);
    char *text = json_dumps(g, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(g);
    if (text == NULL)
        return EXIT_USAGE;
    crypto_sha256(text, strlen(text), chain_id);
    char path[TESTNET_PATH_MAX];
    snprintf(path, sizeof(path), "%s/genesis.json", t->dir);
    int rv = testnet_write(path, text, 0644);
    for (unsigned i = 0; rv == EXIT_OK && i < t->nodes; i++) {
        snprintf(path, sizeof(path), "%s/node%u/genesis.json", t->dir, i);
        rv = testnet_write(path, text, 0644);
        char cfg[512];
        snprintf(cfg, sizeof(cfg),
                 "{\n  \"replica_id\": %u,\n"
                 "  \"client_url\": \"tcp://127.0.0.1:%u\",\n"
                 "  \"http_addr\": \"127.0.0.1:%u\",\n"
                 "  \"data_dir\": \"data\"\n}\n",
                 i, t->base + 10 * i + 1, t->base + 10 * i + 2);
        snprintf(path, sizeof(path), "%s/node%u/config.json", t->dir, i);
        if (rv == EXIT_OK)
            rv = testnet_write(path, cfg, 0644);
    }
    for (unsigned i = t->nodes; rv == EXIT_OK && i < t->nodes + t->spare; i++) {
        snprintf(path, sizeof(path), "%s/node%u/genesis.json", t->dir, i);
        rv = testnet_write(path, text, 0644);
        if (rv == EXIT_OK)
            rv = testnet_spare_files(t, i);
    }
    free(text);
    return rv;
}

/* What to propose for each spare home (text output). */
static void testnet_report_spare(const struct testnet *t)
{
    if (t->spare == 0)
        return;
    printf("spare replica homes (not in the genesis; add them in this "
           "order, each gets the next slot, then start it with "
           "scripts/testnet.sh start %s <i>):\n",
           t->dir);
    for (unsigned i = t->nodes; i < t->nodes + t->spare; i++) {
        char pk[65];
        lg_hex(t->replica_pk[i], 32, pk);
        printf("  node%u  public key %s  peer tcp://127.0.0.1:%u  client "
               "tcp://127.0.0.1:%u\n"
               "         trialchain --key %s/keys/sponsor.key governance "
               "propose add-node%u replica-add node%u --public-key %s "
               "--peer-url tcp://127.0.0.1:%u\n",
               i, pk, t->base + 10 * i, t->base + 10 * i + 1, t->dir, i, i, pk,
               t->base + 10 * i);
    }
}

static void testnet_report(const struct testnet *t, const uint8_t cid[32])
{
    char hex[65];
    lg_hex(cid, 32, hex);
    if (!t->json) {
        printf("testnet in %s: %u nodes, chain id %s\n", t->dir, t->nodes, hex);
        for (unsigned i = 0; i < t->nodes; i++)
            printf("  node%u  client tcp://127.0.0.1:%u  http "
                   "http://127.0.0.1:%u\n",
                   i, t->base + 10 * i + 1, t->base + 10 * i + 2);
        printf("member keys in %s/keys/; start with: scripts/testnet.sh "
               "start %s\n",
               t->dir, t->dir);
        testnet_report_spare(t);
        return;
    }
    char buf[TESTNET_PATH_MAX + 64];
    json_t *root = json_object();
    json_object_set_new(root, "dir", json_string(t->dir));
    json_object_set_new(root, "chain_id", json_string(hex));
    snprintf(buf, sizeof(buf), "%s/genesis.json", t->dir);
    json_object_set_new(root, "genesis", json_string(buf));
    json_t *nodes = json_array();
    for (unsigned i = 0; i < t->nodes; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(i));
        snprintf(buf, sizeof(buf), "%s/node%u", t->dir, i);
        json_object_set_new(o, "home", json_string(buf));
        snprintf(buf, sizeof(buf), "tcp://127.0.0.1:%u", t->base + 10 * i + 1);
        json_object_set_new(o, "client_url", json_string(buf));
        snprintf(buf, sizeof(buf), "tcp://127.0.0.1:%u", t->base + 10 * i);
        json_object_set_new(o, "peer_url", json_string(buf));
        snprintf(buf, sizeof(buf), "http://127.0.0.1:%u", t->base + 10 * i + 2);
        json_object_set_new(o, "http_url", json_string(buf));
        json_array_append_new(nodes, o);
    }
    json_object_set_new(root, "nodes", nodes);
    json_t *spares = json_array();
    for (unsigned i = t->nodes; i < t->nodes + t->spare; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(i));
        snprintf(buf, sizeof(buf), "node%u", i);
        json_object_set_new(o, "name", json_string(buf));
        snprintf(buf, sizeof(buf), "%s/node%u", t->dir, i);
        json_object_set_new(o, "home", json_string(buf));
        json_object_set_new(o, "public_key", testnet_hex(t->replica_pk[i], 32));
        snprintf(buf, sizeof(buf), "tcp://127.0.0.1:%u", t->base + 10 * i);
        json_object_set_new(o, "peer_url", json_string(buf));
        snprintf(buf, sizeof(buf), "tcp://127.0.0.1:%u", t->base + 10 * i + 1);
        json_object_set_new(o, "client_url", json_string(buf));
        snprintf(buf, sizeof(buf), "http://127.0.0.1:%u", t->base + 10 * i + 2);
        json_object_set_new(o, "http_url", json_string(buf));
        json_array_append_new(spares, o);
    }
    json_object_set_new(root, "spare", spares);
    json_t *keys = json_object();
    for (size_t m = 0; m < TESTNET_N_MEMBERS; m++) {
        snprintf(buf, sizeof(buf), "%s/keys/%s.key", t->dir,
                 testnet_members[m].name);
        json_object_set_new(keys, testnet_members[m].name, json_string(buf));
    }
    json_object_set_new(root, "member_keys", keys);
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(root);
}

static int testnet_parse(int argc, char **argv, struct testnet *t)
{
    t->base = 27000;
    t->json = cli.json; /* --json is a global option */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            t->json = true;
        } else if ((strcmp(a, "--nodes") == 0 || strcmp(a, "--spare") == 0 ||
                    strcmp(a, "--base-port") == 0) &&
                   i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0')
                return testnet_usage();
            if (a[2] == 'n')
                t->nodes = (unsigned)(v <= 1000 ? v : 1000);
            else if (a[2] == 's')
                t->spare = (unsigned)(v <= 1000 ? v : 1000);
            else
                t->base = (unsigned)(v <= 65535 ? v : 65535);
        } else if (a[0] != '-' && t->dir == NULL) {
            t->dir = a;
        } else {
            return testnet_usage();
        }
    }
    if (t->dir == NULL || t->nodes < 4 || t->nodes > TESTNET_NODES_MAX ||
        t->spare > TESTNET_NODES_MAX - t->nodes || t->base < 1024 ||
        t->base + 10 * (t->nodes + t->spare) + 2 > 65535)
        return testnet_usage();
    return EXIT_OK;
}

static int testnet_init(int argc, char **argv)
{
    struct testnet t;
    memset(&t, 0, sizeof(t));
    int rv = testnet_parse(argc, argv, &t);
    if (rv != EXIT_OK)
        return rv;
    if (crypto_setup() != LG_OK)
        return EXIT_USAGE;
    char path[TESTNET_PATH_MAX];
    snprintf(path, sizeof(path), "%s/genesis.json", t.dir);
    struct stat st;
    if (stat(path, &st) == 0) {
        fprintf(stderr,
                "trialchain: %s already holds a testnet; remove it first.\n",
                t.dir);
        return EXIT_USAGE;
    }
    uint8_t cid[32];
    rv = testnet_mkdir(t.dir);
    if (rv == EXIT_OK)
        rv = testnet_keys(&t);
    if (rv == EXIT_OK)
        rv = testnet_files(&t, cid);
    if (rv == EXIT_OK)
        testnet_report(&t, cid);
    return rv;
}

/* ---- test and benchmark helpers ------------------------------------------
 * Hidden subcommands used by tests/integration/node_*.sh and for measuring
 * the commit rate: `load` submits signed transactions from the demo member
 * keys (--members NAME,... picks whose, one per thread in turn), `check`
 * compares every genesis node's blocks (or those of the homes --nodes
 * names, when a replica moved), walking the replica-set changes from the
 * genesis, and finds each acknowledged transaction on the ledger exactly
 * once, `poke` sends malformed input to a node's two sockets. */

struct tn_node {
    char client_url[256];
    char http_addr[256];
    char peer_url[256];
};

struct tn {
    const char *dir;
    struct genesis *g;
    unsigned n;
    struct tn_node nodes[TESTNET_NODES_MAX];
};

static int tn_open(const char *dir, struct tn *t)
{
    char path[TESTNET_PATH_MAX], err[512];
    memset(t, 0, sizeof(*t));
    t->dir = dir;
    t->g = calloc(1, sizeof(*t->g));
    if (t->g == NULL || crypto_setup() != LG_OK)
        return EXIT_USAGE;
    snprintf(path, sizeof(path), "%s/genesis.json", dir);
    if (genesis_load(path, t->g, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "trialchain: %s\n", err);
        return EXIT_USAGE;
    }
    t->n = t->g->n_replicas < TESTNET_NODES_MAX ? t->g->n_replicas
                                                : TESTNET_NODES_MAX;
    for (unsigned i = 0; i < t->n; i++) {
        snprintf(path, sizeof(path), "%s/node%u/config.json", dir, i);
        json_error_t je;
        json_t *c = json_load_file(path, 0, &je);
        const char *cu = json_string_value(json_object_get(c, "client_url"));
        const char *ha = json_string_value(json_object_get(c, "http_addr"));
        snprintf(t->nodes[i].client_url, sizeof(t->nodes[i].client_url), "%s",
                 cu ? cu : "");
        snprintf(t->nodes[i].http_addr, sizeof(t->nodes[i].http_addr), "%s",
                 ha ? ha : "");
        snprintf(t->nodes[i].peer_url, sizeof(t->nodes[i].peer_url), "%s",
                 t->g->replicas[i].peer_url);
        json_decref(c);
    }
    return EXIT_OK;
}

/* Replaces the genesis homes with the homes named in list ("0,1,2,4"):
 * after a replica moved, the home that runs its slot is another one. */
static int tn_select(struct tn *t, const char *list)
{
    unsigned count = 0;
    const char *p = list;
    while (*p != '\0') {
        char *end = NULL;
        unsigned long i = strtoul(p, &end, 10);
        if (end == p || i >= 1000 || count == TESTNET_NODES_MAX ||
            (*end != ',' && *end != '\0')) {
            fprintf(stderr,
                    "trialchain: --nodes takes home numbers like 0,1,2,4\n");
            return EXIT_USAGE;
        }
        char path[TESTNET_PATH_MAX];
        snprintf(path, sizeof(path), "%s/node%lu/config.json", t->dir, i);
        json_error_t je;
        json_t *c = json_load_file(path, 0, &je);
        if (c == NULL) {
            fprintf(stderr, "trialchain: cannot read %s: %s\n", path, je.text);
            return EXIT_USAGE;
        }
        const char *cu = json_string_value(json_object_get(c, "client_url"));
        const char *ha = json_string_value(json_object_get(c, "http_addr"));
        const char *pu =
            json_string_value(json_object_get(c, "peer_listen_url"));
        struct tn_node *nd = &t->nodes[count++];
        snprintf(nd->client_url, sizeof(nd->client_url), "%s", cu ? cu : "");
        snprintf(nd->http_addr, sizeof(nd->http_addr), "%s", ha ? ha : "");
        snprintf(nd->peer_url, sizeof(nd->peer_url), "%s", pu ? pu : "");
        json_decref(c);
        p = *end == ',' ? end + 1 : end;
    }
    if (count == 0)
        return EXIT_USAGE;
    t->n = count;
    return EXIT_OK;
}

static void tn_close(struct tn *t)
{
    genesis_free(t->g);
    free(t->g);
}

static uint64_t tn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void tn_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Signs an attestation by k with the given nonce (any member may try one:
 * the registry decides, and a refused tx is still ordered and kept). */
static int tn_sign(const struct tn *t, const struct keyfile *k, uint64_t nonce,
                   const uint8_t *chain_id, uint8_t **out, size_t *len)
{
    Tc__AuditAttestation at = TC__AUDIT_ATTESTATION__INIT;
    char summary[64];
    snprintf(summary, sizeof(summary), "load %llu", (unsigned long long)nonce);
    at.summary = summary;
    at.trial_id = (char *)"";
    Tc__Tx tx = TC__TX__INIT;
    tx.chain_id.data = (uint8_t *)(chain_id ? chain_id : t->g->chain_id);
    tx.chain_id.len = 32;
    tx.signer.data = (uint8_t *)k->public_key;
    tx.signer.len = 32;
    tx.nonce = nonce;
    tx.client_time_ms = lg_now_ms();
    tx.body_case = TC__TX__BODY_ATTESTATION;
    tx.attestation = &at;
    return tx_sign(&tx, k, out, len);
}

struct tn_load {
    struct tn *t;
    unsigned thread;
    const char *member; /* whose key this thread signs with */
    unsigned count;
    bool wait;
    int timeout_ms;
    FILE *acked;
    pthread_mutex_t *mu;
    unsigned submitted, acked_n, failed;
};

/* One submission, retried on another node when one is down or slow. */
static bool tn_submit_one(struct tn_load *l, struct client **c, unsigned *cur,
                          const uint8_t *bytes, size_t len)
{
    for (unsigned attempt = 0; attempt < 6 * l->t->n; attempt++) {
        if (*c == NULL && client_open(l->t->nodes[*cur].client_url,
                                      l->timeout_ms, c) != LG_OK) {
            *cur = (*cur + 1) % l->t->n;
            tn_sleep_ms(100);
            continue;
        }
        Tc__ClientReply *r = NULL;
        int rv = client_submit(*c, bytes, len, l->wait, &r);
        Tc__ReplyCode code = r ? r->code : TC__REPLY_CODE__REPLY_INTERNAL;
        bool ok = rv == LG_OK && code == TC__REPLY_CODE__REPLY_OK &&
                  r->submit != NULL &&
                  (!l->wait || (r->submit->committed && r->submit->receipt));
        if (ok && l->wait && l->acked != NULL) {
            char hex[65];
            lg_hex(r->submit->tx_id.data, 32, hex);
            pthread_mutex_lock(l->mu);
            fprintf(l->acked, "%s\n", hex);
            fflush(l->acked);
            pthread_mutex_unlock(l->mu);
        }
        client_reply_free(r);
        if (ok)
            return true;
        if (rv == LG_OK && code == TC__REPLY_CODE__REPLY_BUSY) {
            tn_sleep_ms(50);
            continue;
        }
        if (rv == LG_OK && code != TC__REPLY_CODE__REPLY_TIMEOUT &&
            code != TC__REPLY_CODE__REPLY_NOT_READY)
            return false; /* refused: retrying cannot help */
        client_close(*c);
        *c = NULL;
        *cur = (*cur + 1) % l->t->n;
    }
    return false;
}

static void *tn_load_thread(void *arg)
{
    struct tn_load *l = arg;
    char path[TESTNET_PATH_MAX], err[512];
    const char *name = l->member;
    snprintf(path, sizeof(path), "%s/keys/%s.key", l->t->dir, name);
    struct keyfile k;
    if (keyfile_load(path, &k, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "trialchain: %s\n", err);
        l->failed = l->count;
        return NULL;
    }
    unsigned cur = l->thread % l->t->n;
    struct client *c = NULL;
    uint64_t nonce = tn_now_us();
    for (unsigned i = 0; i < l->count; i++) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (tn_sign(l->t, &k, nonce++, NULL, &bytes, &len) != LG_OK) {
            l->failed++;
            continue;
        }
        if (tn_submit_one(l, &c, &cur, bytes, len)) {
            l->submitted++;
            l->acked_n += l->wait;
        } else {
            l->failed++;
        }
        free(bytes);
    }
    client_close(c);
    keyfile_free(&k);
    return NULL;
}

/* Log size of the first node that answers; false when none does. */
static bool tn_log_size(const struct tn *t, uint64_t *size)
{
    for (unsigned i = 0; i < t->n; i++) {
        struct client *c = NULL;
        Tc__ClientReply *r = NULL;
        if (client_open(t->nodes[i].client_url, 2000, &c) != LG_OK)
            continue;
        bool ok = client_status(c, &r) == LG_OK && r->status != NULL;
        if (ok)
            *size = r->status->log_size;
        client_reply_free(r);
        client_close(c);
        if (ok)
            return true;
    }
    return false;
}

/* "--members site-a,auditor": which demo members' keys the load threads
 * sign with, in turn (so a test can keep other keys' nonces to itself).
 * Fills names[] with pointers to testnet_members; false on an unknown
 * name or too many. */
static bool tn_parse_members(const char *list, const char **names, unsigned *n)
{
    *n = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *found = NULL;
        for (size_t m = 0; m < TESTNET_N_MEMBERS; m++)
            if (strlen(testnet_members[m].name) == len &&
                strncmp(testnet_members[m].name, p, len) == 0)
                found = testnet_members[m].name;
        if (found == NULL || *n >= TESTNET_N_MEMBERS)
            return false;
        names[(*n)++] = found;
        p += len;
        if (*p == ',')
            p++;
    }
    return *n > 0;
}

static int testnet_load(int argc, char **argv)
{
    const char *dir = NULL, *acked_path = NULL, *members = NULL;
    unsigned count = 100, threads = 4;
    int timeout_ms = 15000;
    bool wait = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--wait"))
            wait = true;
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc)
            timeout_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--acked") && i + 1 < argc)
            acked_path = argv[++i];
        else if (!strcmp(argv[i], "--members") && i + 1 < argc)
            members = argv[++i];
        else if (argv[i][0] != '-' && dir == NULL)
            dir = argv[i];
        else
            return testnet_usage();
    }
    const char *names[TESTNET_N_MEMBERS];
    unsigned n_names = TESTNET_N_MEMBERS;
    for (size_t m = 0; m < TESTNET_N_MEMBERS; m++)
        names[m] = testnet_members[m].name;
    if (members != NULL && !tn_parse_members(members, names, &n_names))
        return testnet_usage();
    if (dir == NULL || threads < 1 || threads > TESTNET_N_MEMBERS ||
        count < threads || timeout_ms <= 0)
        return testnet_usage();
    struct tn t;
    if (tn_open(dir, &t) != EXIT_OK) {
        tn_close(&t);
        return EXIT_USAGE;
    }
    FILE *acked = acked_path ? fopen(acked_path, "a") : NULL;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct tn_load loads[TESTNET_N_MEMBERS];
    pthread_t tids[TESTNET_N_MEMBERS];
    uint64_t size0 = 0;
    (void)tn_log_size(&t, &size0);
    unsigned long long t0 = lg_mono_ms();
    for (unsigned i = 0; i < threads; i++) {
        loads[i] = (struct tn_load){.t = &t,
                                    .thread = i,
                                    .member = names[i % n_names],
                                    .count = count / threads,
                                    .wait = wait,
                                    .timeout_ms = timeout_ms,
                                    .acked = acked,
                                    .mu = &mu};
        pthread_create(&tids[i], NULL, tn_load_thread, &loads[i]);
    }
    unsigned submitted = 0, acked_n = 0, failed = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        submitted += loads[i].submitted;
        acked_n += loads[i].acked_n;
        failed += loads[i].failed;
    }
    unsigned long long t_sub = lg_mono_ms() - t0;
    /* Without --wait, time until the ledger holds what was submitted. */
    uint64_t size = size0;
    unsigned long long limit = lg_mono_ms() + (unsigned long long)timeout_ms;
    unsigned long long t999 = 0; /* when 99.9% had committed */
    while (!wait && size < size0 + submitted && lg_mono_ms() < limit) {
        tn_sleep_ms(20);
        (void)tn_log_size(&t, &size);
        if (t999 == 0 && (size - size0) * 1000 >= (uint64_t)submitted * 999)
            t999 = lg_mono_ms() - t0;
    }
    unsigned long long elapsed = lg_mono_ms() - t0;
    if (t999 == 0)
        t999 = elapsed;
    uint64_t committed = wait ? acked_n : size - size0;
    printf("load: threads=%u submitted=%u acked=%u failed=%u "
           "committed=%llu submit_ms=%llu elapsed_ms=%llu "
           "committed_tx_per_s=%.0f",
           threads, submitted, acked_n, failed, (unsigned long long)committed,
           t_sub, elapsed,
           elapsed ? (double)committed * 1000.0 / (double)elapsed : 0.0);
    if (!wait)
        printf(" ms_to_99.9%%=%llu tx_per_s_to_99.9%%=%.0f", t999,
               t999 ? (double)submitted * 0.999 * 1000.0 / (double)t999 : 0.0);
    printf("\n");
    if (acked)
        fclose(acked);
    tn_close(&t);
    return failed == 0 ? EXIT_OK : EXIT_FINDINGS;
}

/* ---- check ------------------------------------------------------------------
 */

static int tn_status(const struct tn *t, unsigned i, uint64_t *height,
                     uint64_t *certified)
{
    struct client *c = NULL;
    Tc__ClientReply *r = NULL;
    int rv = client_open(t->nodes[i].client_url, 3000, &c);
    if (rv == LG_OK)
        rv = client_status(c, &r);
    if (rv == LG_OK && r->status == NULL)
        rv = LG_EBADMSG;
    if (rv == LG_OK) {
        *height = r->status->height;
        *certified = r->status->last_certified;
    }
    client_reply_free(r);
    client_close(c);
    return rv;
}

/* Waits until every node answers at one height, twice in a row. */
static bool tn_converge(const struct tn *t, unsigned timeout_s, uint64_t *h)
{
    unsigned long long limit = lg_mono_ms() + timeout_s * 1000ull;
    uint64_t prev = UINT64_MAX;
    while (lg_mono_ms() < limit) {
        uint64_t lo = UINT64_MAX, hi = 0;
        bool all = true;
        for (unsigned i = 0; i < t->n && all; i++) {
            uint64_t height, cert;
            if (tn_status(t, i, &height, &cert) != LG_OK) {
                all = false;
                break;
            }
            if (height < lo)
                lo = height;
            if (height > hi)
                hi = height;
        }
        if (all && lo == hi && lo == prev) {
            *h = lo;
            return true;
        }
        prev = all && lo == hi ? lo : UINT64_MAX;
        tn_sleep_ms(500);
    }
    return false;
}

static int tn_block_hash(struct client *c, uint64_t h, uint8_t out[32],
                         Tc__ClientReply **keep)
{
    Tc__ClientReply *r = NULL;
    int rv = client_get_block(c, h, &r);
    if (rv != LG_OK)
        return rv;
    if (r->code != TC__REPLY_CODE__REPLY_OK || r->block == NULL ||
        r->block->block == NULL) {
        client_reply_free(r);
        return LG_ENOTFOUND;
    }
    crypto_sha256(r->block->block->header.data, r->block->block->header.len,
                  out);
    *keep = r;
    return LG_OK;
}

/* Every tx id on the ledger (node0's blocks), sorted after the walk, so an
 * acknowledged tx can be found exactly once. */
struct tn_txids {
    uint8_t (*id)[32];
    size_t n, cap;
};

static int tn_txids_add_block(struct tn_txids *ids, const Tc__Block *b)
{
    if (ids->n + b->n_txs > ids->cap) {
        size_t cap = (ids->n + b->n_txs) * 2 + 64;
        uint8_t(*v)[32] = realloc(ids->id, cap * sizeof(*v));
        if (v == NULL)
            return LG_ENOMEM;
        ids->id = v;
        ids->cap = cap;
    }
    for (size_t k = 0; k < b->n_txs; k++)
        tx_id(b->txs[k].data, b->txs[k].len, ids->id[ids->n++]);
    return LG_OK;
}

static int tn_txid_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* How many times id is on the ledger (ids sorted). */
static size_t tn_txids_count(const struct tn_txids *ids, const uint8_t id[32])
{
    const uint8_t *hit =
        bsearch(id, ids->id, ids->n, sizeof(*ids->id), tn_txid_cmp);
    if (hit == NULL)
        return 0;
    size_t at = (size_t)(hit - ids->id[0]) / sizeof(*ids->id);
    size_t lo = at, hi = at;
    while (lo > 0 && memcmp(ids->id[lo - 1], id, 32) == 0)
        lo--;
    while (hi + 1 < ids->n && memcmp(ids->id[hi + 1], id, 32) == 0)
        hi++;
    return hi - lo + 1;
}

/* Checks node0's block h (walking the replica-set changes from the
 * genesis), adds its tx ids, and advances prev. */
static int tn_check_first(struct verify_epoch *ep, const Tc__BlockReply *br,
                          uint64_t h, uint8_t prev[32], struct tn_txids *ids)
{
    char why[256] = "";
    size_t blen = tc__block__get_packed_size(br->block);
    uint8_t *bb = malloc(blen ? blen : 1);
    if (bb == NULL)
        return EXIT_FINDINGS;
    tc__block__pack(br->block, bb);
    struct verify_block_info info;
    bool ok =
        br->cert != NULL && verify_block_walk(ep, bb, blen, br->cert, prev, h,
                                              &info, why, sizeof(why));
    free(bb);
    if (!ok) {
        printf("check: block %llu does not verify: %s\n", (unsigned long long)h,
               br->cert ? why : "no certificate");
        return EXIT_FINDINGS;
    }
    if (info.next_replicas)
        printf("check: block %llu changes the replica set to %u replicas\n",
               (unsigned long long)h, info.next_n);
    memcpy(prev, info.block_hash, 32);
    if (tn_txids_add_block(ids, br->block) != LG_OK) {
        printf("check: out of memory\n");
        return EXIT_FINDINGS;
    }
    return EXIT_OK;
}

static int tn_check_blocks(const struct tn *t, uint64_t height,
                           struct tn_txids *ids, uint32_t *n_changes)
{
    struct client *c[TESTNET_NODES_MAX] = {0};
    struct verify_epoch *ep = malloc(sizeof(*ep));
    int code = ep ? EXIT_OK : EXIT_FINDINGS;
    if (ep)
        verify_epoch_genesis(t->g, ep);
    for (unsigned i = 0; i < t->n; i++) {
        if (client_open(t->nodes[i].client_url, 5000, &c[i]) != LG_OK) {
            printf("check: node%u unreachable\n", i);
            code = EXIT_FINDINGS;
        }
    }
    uint8_t prev[32];
    memcpy(prev, t->g->chain_id, 32);
    for (uint64_t h = 1; code == EXIT_OK && h <= height; h++) {
        uint8_t first[32];
        for (unsigned i = 0; i < t->n && code == EXIT_OK; i++) {
            uint8_t hash[32];
            Tc__ClientReply *r = NULL;
            if (tn_block_hash(c[i], h, hash, &r) != LG_OK) {
                printf("check: node%u has no block %llu\n", i,
                       (unsigned long long)h);
                code = EXIT_FINDINGS;
                break;
            }
            if (i == 0) {
                memcpy(first, hash, 32);
                code = tn_check_first(ep, r->block, h, prev, ids);
            } else if (memcmp(hash, first, 32) != 0) {
                printf("check: node%u and node0 differ at height %llu\n", i,
                       (unsigned long long)h);
                code = EXIT_FINDINGS;
            }
            client_reply_free(r);
        }
    }
    for (unsigned i = 0; i < t->n; i++)
        client_close(c[i]);
    if (ep)
        *n_changes = ep->n_changes;
    free(ep);
    qsort(ids->id, ids->n, sizeof(*ids->id), tn_txid_cmp);
    for (size_t k = 1; code == EXIT_OK && k < ids->n; k++) {
        if (memcmp(ids->id[k - 1], ids->id[k], 32) == 0) {
            char hex[65];
            lg_hex(ids->id[k], 32, hex);
            printf("check: tx %s is on the ledger more than once\n", hex);
            code = EXIT_FINDINGS;
        }
    }
    return code;
}

static int tn_check_acked(const struct tn *t, const char *path,
                          const struct tn_txids *ids, unsigned *n_acked)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return EXIT_OK;
    struct client *c[TESTNET_NODES_MAX] = {0};
    int code = EXIT_OK;
    for (unsigned i = 0; i < t->n; i++)
        if (client_open(t->nodes[i].client_url, 5000, &c[i]) != LG_OK)
            code = EXIT_FINDINGS;
    char line[128];
    while (code == EXIT_OK && fgets(line, sizeof(line), f) != NULL) {
        uint8_t id[32];
        if (lg_unhex(strtok(line, "\n"), id, 32) != 0)
            continue;
        (*n_acked)++;
        size_t times = tn_txids_count(ids, id);
        if (times != 1) {
            printf("check: acknowledged tx %s is in the blocks %zu times\n",
                   line, times);
            code = EXIT_FINDINGS;
        }
        for (unsigned i = 0; code == EXIT_OK && i < t->n; i++) {
            Tc__GetTx gt = TC__GET_TX__INIT;
            gt.tx_id.data = id;
            gt.tx_id.len = 32;
            Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
            req.req_case = TC__CLIENT_REQUEST__REQ_TX;
            req.tx = &gt;
            Tc__ClientReply *r = NULL;
            char why[256] = "";
            bool ok = client_call(c[i], &req, &r) == LG_OK &&
                      r->code == TC__REPLY_CODE__REPLY_OK &&
                      r->receipt != NULL &&
                      verify_receipt(t->g, r->receipt, NULL, why, sizeof(why));
            if (!ok) {
                printf("check: acknowledged tx %s is missing or unverifiable "
                       "on node%u %s\n",
                       line, i, why);
                code = EXIT_FINDINGS;
            }
            client_reply_free(r);
        }
    }
    fclose(f);
    for (unsigned i = 0; i < t->n; i++)
        client_close(c[i]);
    return code;
}

static int testnet_check(int argc, char **argv)
{
    const char *dir = NULL, *acked = NULL, *homes = NULL;
    unsigned timeout_s = 60;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--acked") && i + 1 < argc)
            acked = argv[++i];
        else if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            homes = argv[++i];
        else if (!strcmp(argv[i], "--timeout-s") && i + 1 < argc)
            timeout_s = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && dir == NULL)
            dir = argv[i];
        else
            return testnet_usage();
    }
    struct tn t;
    if (dir == NULL || tn_open(dir, &t) != EXIT_OK)
        return EXIT_USAGE;
    if (homes != NULL && tn_select(&t, homes) != EXIT_OK) {
        tn_close(&t);
        return EXIT_USAGE;
    }
    uint64_t h = 0;
    int code = EXIT_OK;
    if (!tn_converge(&t, timeout_s, &h)) {
        printf("check: the nodes did not reach one height within %us\n",
               timeout_s);
        for (unsigned i = 0; i < t.n; i++) {
            uint64_t height = 0, cert = 0;
            int rv = tn_status(&t, i, &height, &cert);
            printf("  node%u: %s height=%llu certified=%llu\n", i,
                   rv == LG_OK ? "up" : lg_strerror(rv),
                   (unsigned long long)height, (unsigned long long)cert);
        }
        code = EXIT_FINDINGS;
    }
    struct tn_txids ids = {0};
    uint32_t n_changes = 0;
    if (code == EXIT_OK)
        code = tn_check_blocks(&t, h, &ids, &n_changes);
    unsigned n_acked = 0;
    if (code == EXIT_OK && acked != NULL)
        code = tn_check_acked(&t, acked, &ids, &n_acked);
    if (code == EXIT_OK)
        printf("check: %u nodes hold identical certified blocks 1..%llu "
               "(%u replica-set changes crossed, %zu txs, none twice); "
               "%u acknowledged txs present once with verified receipts "
               "on every node\n",
               t.n, (unsigned long long)h, n_changes, ids.n, n_acked);
    free(ids.id);
    tn_close(&t);
    return code;
}

/* ---- poke: malformed input at both sockets ------------------------------- */

static int tn_poke_results;

static void tn_result(bool ok, const char *name)
{
    printf("TEST-RESULT: %s badinput/%s\n", ok ? "pass" : "fail", name);
    if (!ok)
        tn_poke_results++;
    fflush(stdout);
}

/* Sends raw frames to a peer listener (PUSH, fire and forget). */
static int tn_peer_send(const char *url, const uint8_t *data, size_t len)
{
    nng_socket s;
    if (nng_push0_open(&s) != 0)
        return LG_ENET;
    int rv = nng_dial(s, url, NULL, 0);
    if (rv == 0)
        rv = nng_send(s, (void *)data, len, 0);
    tn_sleep_ms(100); /* let the frame leave before closing */
    nng_close(s);
    return rv == 0 ? LG_OK : LG_ENET;
}

/* Seals a frame's plaintext (a bundle, net.h) as replica `from` (whose
 * key we hold) to `to`. */
static int tn_peer_seal_send(const struct tn *t, const struct keyfile *k,
                             uint32_t from, uint32_t to, const uint8_t *pt,
                             size_t len)
{
    uint8_t key[32];
    if (net_pair_key(k->secret_key, t->g->replicas[to].public_key, key) !=
        LG_OK)
        return LG_EBADSIG;
    uint8_t *frame = malloc(len + NET_OVERHEAD);
    if (frame == NULL)
        return LG_ENOMEM;
    net_frame_seal(key, from, pt, len, frame);
    int rv = tn_peer_send(t->nodes[to].peer_url, frame, len + NET_OVERHEAD);
    free(frame);
    return rv;
}

/* Sends one message as replica `from` does: a bundle of one part. */
static int tn_peer_send_as(const struct tn *t, const struct keyfile *k,
                           uint32_t from, uint32_t to, const uint8_t *msg,
                           size_t len)
{
    uint8_t *bundle = malloc(NET_PART_HDR + len);
    if (bundle == NULL)
        return LG_ENOMEM;
    net_part_header(bundle, len);
    memcpy(bundle + NET_PART_HDR, msg, len);
    int rv = tn_peer_seal_send(t, k, from, to, bundle, NET_PART_HDR + len);
    free(bundle);
    return rv;
}

/* A length-delimited field nested depth times (protobuf has no depth limit
 * of its own in protobuf-c). *out is malloc'd. */
static size_t tn_nested(unsigned depth, uint8_t field, uint8_t **out)
{
    size_t cap = (size_t)depth * 12 + 16, pos = cap;
    uint8_t *buf = malloc(cap);
    *out = NULL;
    if (buf == NULL)
        return 0;
    /* Built from the innermost level outwards, back to front. */
    for (unsigned d = 0; d < depth; d++) {
        uint8_t var[10];
        size_t k = 0, v = cap - pos;
        do {
            var[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
        pos -= k;
        memcpy(buf + pos, var, k);
        buf[--pos] = (uint8_t)((field << 3) | 2);
    }
    memmove(buf, buf + pos, cap - pos);
    *out = buf;
    return cap - pos;
}

static bool tn_alive(const struct tn *t, unsigned i)
{
    uint64_t h, c;
    return tn_status(t, i, &h, &c) == LG_OK;
}

static void tn_poke_peer(const struct tn *t, unsigned i,
                         const struct keyfile *other, uint32_t other_id)
{
    const char *url = t->nodes[i].peer_url;
    uint8_t junk[256];
    randombytes_buf(junk, sizeof(junk));
    tn_result(tn_peer_send(url, junk, sizeof(junk)) == LG_OK && tn_alive(t, i),
              "peer-garbage");
    tn_result(tn_peer_send(url, junk, 10) == LG_OK && tn_alive(t, i),
              "peer-truncated");
    junk[0] = junk[1] = junk[2] = 0;
    junk[3] = 200; /* a replica id not in genesis */
    tn_result(tn_peer_send(url, junk, sizeof(junk)) == LG_OK && tn_alive(t, i),
              "peer-unknown-sender");
    junk[3] = (uint8_t)other_id; /* a real id, but not its key */
    tn_result(tn_peer_send(url, junk, sizeof(junk)) == LG_OK && tn_alive(t, i),
              "peer-forged-sender");
    size_t big = (33u << 20);
    uint8_t *huge = calloc(1, big);
    tn_result(huge && tn_peer_send(url, huge, big) == LG_OK && tn_alive(t, i),
              "peer-oversized");
    free(huge);
    /* Authentic frames (we hold a replica key) with bad contents. */
    const uint8_t bad_bundle[] = {0, 0, 0xff, 0xff, 1, 2, 3}; /* overlong */
    tn_result(tn_peer_seal_send(t, other, other_id, i, bad_bundle,
                                sizeof(bad_bundle)) == LG_OK &&
                  tn_alive(t, i),
              "peer-malformed-bundle");
    tn_result(tn_peer_send_as(t, other, other_id, i, junk, sizeof(junk)) ==
                      LG_OK &&
                  tn_alive(t, i),
              "peer-authentic-garbage");
    uint8_t *nest = NULL;
    size_t nlen = tn_nested(20000, 3, &nest);
    tn_result(nlen > 0 &&
                  tn_peer_send_as(t, other, other_id, i, nest, nlen) == LG_OK &&
                  tn_alive(t, i),
              "peer-deeply-nested");
    free(nest);
    const uint8_t unknown[] = {0xf8, 0x06, 0x01}; /* field 111, varint 1 */
    tn_result(tn_peer_send_as(t, other, other_id, i, unknown,
                              sizeof(unknown)) == LG_OK &&
                  tn_alive(t, i),
              "peer-unknown-type");
    /* A PREPARE inside the window with a bad signature, sent twice (a
     * replay): it reaches the core, which checks and counts it. */
    uint64_t height = 0, cert = 0;
    (void)tn_status(t, i, &height, &cert);
    Tc__Vote v = TC__VOTE__INIT;
    uint8_t digest[32] = {1}, sig[64] = {2};
    v.replica = other_id;
    v.view = 0;
    v.seq = height + 1;
    v.digest.data = digest;
    v.digest.len = 32;
    v.sig.data = sig;
    v.sig.len = 64;
    Tc__ConsensusMsg cm = TC__CONSENSUS_MSG__INIT;
    cm.body_case = TC__CONSENSUS_MSG__BODY_PREPARE;
    cm.prepare = &v;
    size_t clen = tc__consensus_msg__get_packed_size(&cm);
    uint8_t cbuf[512];
    tc__consensus_msg__pack(&cm, cbuf);
    Tc__PeerFrame f;
    tc__peer_frame__init(&f);
    f.body_case = TC__PEER_FRAME__BODY_CONSENSUS;
    f.consensus.data = cbuf;
    f.consensus.len = clen;
    size_t flen = tc__peer_frame__get_packed_size(&f);
    uint8_t fbuf[600];
    tc__peer_frame__pack(&f, fbuf);
    bool ok = true;
    for (int k = 0; k < 2; k++)
        ok = ok && tn_peer_send_as(t, other, other_id, i, fbuf, flen) == LG_OK;
    tn_result(ok && tn_alive(t, i), "peer-bad-signature-replayed");
}

static void tn_poke_client(const struct tn *t, unsigned i,
                           const struct keyfile *member)
{
    struct client *c = NULL;
    if (client_open(t->nodes[i].client_url, 5000, &c) != LG_OK) {
        tn_result(false, "client-connect");
        return;
    }
    uint8_t *out = NULL;
    size_t olen = 0;
    Tc__ClientReply *r = NULL;
    uint8_t junk[64];
    randombytes_buf(junk, sizeof(junk));
    junk[0] = 0xff; /* an invalid wire type: never decodes */
    bool ok = client_call_raw(c, junk, sizeof(junk), &out, &olen) == LG_OK &&
              (r = tc__client_reply__unpack(NULL, olen, out)) != NULL &&
              r->code == TC__REPLY_CODE__REPLY_BAD_REQUEST;
    tn_result(ok, "client-garbage");
    client_reply_free(r);
    free(out);
    r = NULL;
    ok = client_call_raw(c, junk, 0, &out, &olen) == LG_OK &&
         (r = tc__client_reply__unpack(NULL, olen, out)) != NULL &&
         r->code == TC__REPLY_CODE__REPLY_BAD_REQUEST;
    tn_result(ok, "client-empty");
    client_reply_free(r);
    free(out);
    r = NULL;
    const uint8_t unknown[] = {0xf8, 0x06, 0x01};
    ok = client_call_raw(c, unknown, sizeof(unknown), &out, &olen) == LG_OK &&
         (r = tc__client_reply__unpack(NULL, olen, out)) != NULL &&
         r->code == TC__REPLY_CODE__REPLY_BAD_REQUEST;
    tn_result(ok, "client-unknown-type");
    client_reply_free(r);
    free(out);
    r = NULL;
    uint8_t *nest = NULL;
    size_t nlen = tn_nested(20000, 1, &nest);
    ok = nlen > 0 && client_call_raw(c, nest, nlen, &out, &olen) == LG_OK &&
         (r = tc__client_reply__unpack(NULL, olen, out)) != NULL &&
         r->code == TC__REPLY_CODE__REPLY_BAD_REQUEST;
    tn_result(ok, "client-deeply-nested");
    client_reply_free(r);
    free(out);
    free(nest);
    r = NULL;
    /* Over the 1 MiB cap: NNG drops the frame and the connection. */
    size_t big = 2u << 20;
    uint8_t *huge = calloc(1, big);
    struct client *c2 = NULL;
    if (huge != NULL &&
        client_open(t->nodes[i].client_url, 1500, &c2) == LG_OK) {
        int rv = client_call_raw(c2, huge, big, &out, &olen);
        if (rv == LG_OK)
            free(out);
        tn_result(rv != LG_OK && tn_alive(t, i), "client-oversized");
    } else {
        tn_result(false, "client-oversized");
    }
    client_close(c2);
    free(huge);
    /* Transactions: bad signature, wrong chain, truncated, then a replay of
     * a committed one (answered with its receipt, not ordered twice). */
    uint8_t *tx = NULL;
    size_t txlen = 0;
    uint64_t nonce = tn_now_us();
    if (tn_sign(t, member, nonce, NULL, &tx, &txlen) != LG_OK) {
        tn_result(false, "client-sign");
        client_close(c);
        return;
    }
    tx[txlen - 5] ^= 0x40; /* inside the signature */
    ok = client_submit(c, tx, txlen, false, &r) == LG_OK &&
         r->code == TC__REPLY_CODE__REPLY_BAD_SIGNATURE;
    tn_result(ok, "client-bad-signature");
    client_reply_free(r);
    r = NULL;
    tx[txlen - 5] ^= 0x40;
    ok = client_submit(c, tx, txlen / 2, false, &r) == LG_OK &&
         r->code == TC__REPLY_CODE__REPLY_BAD_REQUEST;
    tn_result(ok, "client-truncated-tx");
    client_reply_free(r);
    r = NULL;
    uint8_t other_chain[32];
    randombytes_buf(other_chain, 32);
    uint8_t *wc = NULL;
    size_t wclen = 0;
    ok = tn_sign(t, member, nonce + 1, other_chain, &wc, &wclen) == LG_OK &&
         client_submit(c, wc, wclen, false, &r) == LG_OK &&
         r->code == TC__REPLY_CODE__REPLY_WRONG_CHAIN;
    tn_result(ok, "client-wrong-chain");
    client_reply_free(r);
    free(wc);
    r = NULL;
    /* A valid signature by a key outside the genesis: refused, never
     * ordered (else any key pair could fill the ledger). */
    char outsider_path[TESTNET_PATH_MAX], kerr[256];
    struct keyfile outsider;
    memset(&outsider, 0, sizeof(outsider));
    snprintf(outsider_path, sizeof(outsider_path), "%s/outsider-%llu.key",
             t->dir, (unsigned long long)nonce);
    ok = keyfile_generate(outsider_path, "member", "outsider", ROLE_SPONSOR,
                          NULL, &outsider, kerr, sizeof(kerr)) == LG_OK &&
         tn_sign(t, &outsider, nonce + 2, NULL, &wc, &wclen) == LG_OK &&
         client_submit(c, wc, wclen, true, &r) == LG_OK &&
         r->code != TC__REPLY_CODE__REPLY_OK && r->error != NULL &&
         (strstr(r->error, "not a member") != NULL ||
          strstr(r->error, "unknown-signer") != NULL);
    tn_result(ok, "client-non-member-refused");
    client_reply_free(r);
    free(wc);
    wc = NULL;
    r = NULL;
    keyfile_free(&outsider);
    (void)unlink(outsider_path);
    uint8_t id1[32] = {0};
    ok = client_submit(c, tx, txlen, true, &r) == LG_OK &&
         r->code == TC__REPLY_CODE__REPLY_OK && r->submit &&
         r->submit->committed;
    if (ok)
        memcpy(id1, r->submit->tx_id.data, 32);
    client_reply_free(r);
    r = NULL;
    ok = ok && client_submit(c, tx, txlen, true, &r) == LG_OK &&
         r->code == TC__REPLY_CODE__REPLY_OK && r->submit &&
         r->submit->committed && r->submit->tx_id.len == 32 &&
         memcmp(r->submit->tx_id.data, id1, 32) == 0;
    tn_result(ok, "client-replayed-tx");
    client_reply_free(r);
    free(tx);
    client_close(c);
}

static int testnet_poke(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned node = 0;
    for (int i = 1; i < argc; i++) {
        /* not --node: that is the tool's global option */
        if (!strcmp(argv[i], "--replica") && i + 1 < argc)
            node = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && dir == NULL)
            dir = argv[i];
        else
            return testnet_usage();
    }
    struct tn t;
    if (dir == NULL || tn_open(dir, &t) != EXIT_OK || node >= t.n)
        return EXIT_USAGE;
    uint32_t other_id = (node + 1) % t.n;
    char path[TESTNET_PATH_MAX], err[512];
    struct keyfile rk, mk;
    snprintf(path, sizeof(path), "%s/node%u/node.key", dir, other_id);
    if (keyfile_load(path, &rk, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "trialchain: %s\n", err);
        tn_close(&t);
        return EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "%s/keys/auditor.key", dir);
    if (keyfile_load(path, &mk, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "trialchain: %s\n", err);
        keyfile_free(&rk);
        tn_close(&t);
        return EXIT_USAGE;
    }
    tn_poke_peer(&t, node, &rk, other_id);
    tn_poke_client(&t, node, &mk);
    keyfile_free(&rk);
    keyfile_free(&mk);
    tn_close(&t);
    return tn_poke_results == 0 ? EXIT_OK : EXIT_FINDINGS;
}

/* `testnet replica-key --name NAME -o FILE`: a replica key for a node on
 * its own machine; prints the public key for the genesis. */
static int testnet_replica_key(int argc, char **argv)
{
    const char *name = NULL, *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--name"))
            name = argv[i + 1];
        else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output"))
            out = argv[i + 1];
        else
            return testnet_usage();
    }
    if (name == NULL || out == NULL)
        return testnet_usage();
    char err[512];
    struct keyfile k;
    if (crypto_setup() != LG_OK ||
        keyfile_generate(out, "replica", name, ROLE_NONE, NULL, &k, err,
                         sizeof(err)) != LG_OK) {
        fprintf(stderr, "trialchain: %s\n", err);
        return EXIT_USAGE;
    }
    char hex[65];
    lg_hex(k.public_key, 32, hex);
    printf("%s\n", hex);
    keyfile_free(&k);
    return EXIT_OK;
}

/* argv[0] is the action (the tool passes the arguments after "testnet"). */
int cmd_testnet(int argc, char **argv)
{
    if (argc < 1)
        return testnet_usage();
    if (strcmp(argv[0], "init") == 0)
        return testnet_init(argc, argv);
    if (strcmp(argv[0], "replica-key") == 0)
        return testnet_replica_key(argc, argv);
    /* Test and benchmark helpers (tests/integration/node_*.sh). */
    if (strcmp(argv[0], "load") == 0)
        return testnet_load(argc, argv);
    if (strcmp(argv[0], "check") == 0)
        return testnet_check(argc, argv);
    if (strcmp(argv[0], "poke") == 0)
        return testnet_poke(argc, argv);
    return testnet_usage();
}
