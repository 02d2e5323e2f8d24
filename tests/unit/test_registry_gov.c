/*
 * test_registry_gov.c - governance in the registry: every proposal and
 * approval rule both ways with its code, the threshold (distinct
 * organisations), expiry, member changes seen by the next tx (add, suspend,
 * reinstate, remove, rotate), replica changes and their base height, the
 * query, and determinism (two stores byte-identical after the same blocks).
 *
 * Genesis: 4 replicas; members sponsor and sponsor-2 (both "Acme"),
 * sponsor-b ("Beta"), ethics ("Ethics A"), site-a, auditor. Voters:
 * sponsor and ethics, so the voting roles are sponsor and ethics_board;
 * voting organisations Acme, Beta and Ethics A; threshold 2.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "genesis.h"
#include "govern.h"
#include "node_gov.h"
#include "registry.h"
#include "store.h"
#include "tx.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    SPONSOR,
    SPONSOR2,
    SPONSOR_B,
    ETHICS,
    SITE_A,
    AUDITOR,
    N_GENESIS,
    NEW_A = N_GENESIS, /* keys no genesis member or replica holds */
    NEW_B,
    NEW_C,
    NEW_D,
    N_KEYS
};

static const char *const member_names[N_KEYS] = {
    "sponsor", "sponsor-2", "sponsor-b", "ethics", "site-a",
    "auditor", "new-a",     "new-b",     "new-c",  "new-d"};
static const char *const member_roles[N_KEYS] = {
    "sponsor", "sponsor", "sponsor", "ethics_board", "site",
    "auditor", "site",    "site",    "site",         "site"};
static const char *const member_orgs[N_GENESIS] = {
    "Acme", "Acme", "Beta", "Ethics A", "Hospital A", "Audit Co"};

#define T0_MS   1800000000000ull
#define LOG_MAX 512
#define DAY_MS  (24ull * 3600 * 1000)

struct logged_tx {
    uint8_t *bytes;
    size_t len;
    struct tx_place at;
};

struct fx {
    char dir[64];
    struct store *st;
    struct genesis *g;
    struct registry *reg;
    struct keyfile keys[N_KEYS];
    uint8_t replica_pk[4][32];
    uint64_t nonce[N_KEYS];
    uint64_t height, log_index, time_ms;
    struct store_txn *block;
    struct logged_tx log[LOG_MAX];
    size_t n_log;
    const char *governance; /* the genesis "governance" section */
};

static const char gov_default[] =
    "{\"threshold\":2,\"voters\":[\"sponsor\",\"ethics\"]}";
/* only sponsors vote, and one organisation decides */
static const char gov_sponsors_alone[] =
    "{\"threshold\":1,\"voters\":[\"sponsor-b\"]}";

/* ---- fixture --------------------------------------------------------------
 */

static void make_key(struct keyfile *k, int i)
{
    uint8_t seed[32];
    memset(seed, 0x60 + i, sizeof(seed));
    memset(k, 0, sizeof(*k));
    k->secret_key = sodium_malloc(64);
    assert_non_null(k->secret_key);
    crypto_sign_seed_keypair(k->public_key, k->secret_key, seed);
    snprintf(k->kind, sizeof(k->kind), "member");
    snprintf(k->name, sizeof(k->name), "%s", member_names[i]);
    assert_int_equal(role_parse(member_roles[i], &k->role), LG_OK);
}

static char *genesis_json(struct fx *f)
{
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"chain_name\":\"gov-test\",\"created\":"
                          "\"2026-11-21T00:00:00Z\",\"replicas\":[");
    for (int i = 0; i < 4; i++) {
        uint8_t sk[64], seed[32];
        char hex[65];
        memset(seed, 0x10 + i, sizeof(seed));
        crypto_sign_seed_keypair(f->replica_pk[i], sk, seed);
        lg_hex(f->replica_pk[i], 32, hex);
        n += (size_t)snprintf(s + n, cap - n,
                              "%s{\"id\":%d,\"name\":\"node%d\",\"public_key\":"
                              "\"%s\",\"peer_url\":\"tcp://127.0.0.1:%d\"}",
                              i ? "," : "", i, i, hex, 27000 + i);
    }
    n += (size_t)snprintf(s + n, cap - n, "],\"members\":[");
    for (int i = 0; i < N_GENESIS; i++) {
        char hex[65];
        lg_hex(f->keys[i].public_key, 32, hex);
        n += (size_t)snprintf(s + n, cap - n,
                              "%s{\"name\":\"%s\",\"role\":\"%s\","
                              "\"organisation\":\"%s\",\"public_key\":"
                              "\"%s\"}",
                              i ? "," : "", member_names[i], member_roles[i],
                              member_orgs[i], hex);
    }
    n +=
        (size_t)snprintf(s + n, cap - n, "],\"governance\":%s}", f->governance);
    assert_true(n < cap);
    return s;
}

static int fx_setup_with(void **state, const char *governance)
{
    assert_true(sodium_init() >= 0);
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->governance = governance;
    for (int i = 0; i < N_KEYS; i++)
        make_key(&f->keys[i], i);
    char *json = genesis_json(f);
    f->g = calloc(1, sizeof(*f->g));
    assert_non_null(f->g);
    char err[256];
    int rv = genesis_parse((const unsigned char *)json, strlen(json), f->g, err,
                           sizeof(err));
    if (rv != LG_OK)
        fail_msg("genesis: %s", err);
    free(json);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_registry_gov.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, true, &f->st, err, sizeof(err)), LG_OK);
    assert_int_equal(registry_new(f->g, &f->reg), LG_OK);
    f->time_ms = T0_MS;
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    return fx_setup_with(state, gov_default);
}

static int fx_setup_sponsors(void **state)
{
    return fx_setup_with(state, gov_sponsors_alone);
}

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_txn_abort(f->block);
    registry_free(f->reg);
    store_close(f->st);
    rm_rf(f->dir);
    genesis_free(f->g);
    free(f->g);
    for (int i = 0; i < N_KEYS; i++)
        keyfile_free(&f->keys[i]);
    for (size_t i = 0; i < f->n_log; i++)
        free(f->log[i].bytes);
    free(f);
    return 0;
}

static void begin_block(struct fx *f)
{
    assert_null(f->block);
    f->block = store_txn_new(f->st);
    assert_non_null(f->block);
    f->height++;
}

static void end_block(struct fx *f)
{
    assert_non_null(f->block);
    assert_int_equal(store_txn_commit(f->block, false), LG_OK);
    f->block = NULL;
}

static struct tx_result exec_bytes(struct fx *f, uint8_t *bytes, size_t len)
{
    bool own = f->block == NULL;
    if (own)
        begin_block(f);
    struct tx_place at = {.height = f->height,
                          .block_time_ms = f->time_ms,
                          .log_index = f->log_index++};
    tx_id(bytes, len, at.tx_id);
    struct tx_result res;
    assert_int_equal(registry_execute(f->reg, f->block, &at, bytes, len, &res),
                     LG_OK);
    if (own)
        end_block(f);
    assert_true(f->n_log < LOG_MAX);
    f->log[f->n_log++] = (struct logged_tx){bytes, len, at};
    return res;
}

/* Signs tx with key k as the next tx of member slot m (nonces are kept per
 * member name, whichever key signs). */
static struct tx_result run_as(struct fx *f, int m, int k, Tc__Tx *tx)
{
    tx->chain_id.data = f->g->chain_id;
    tx->chain_id.len = 32;
    tx->signer.data = f->keys[k].public_key;
    tx->signer.len = 32;
    tx->nonce = ++f->nonce[m];
    tx->client_time_ms = f->time_ms;
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(tx_sign(tx, &f->keys[k], &bytes, &len), LG_OK);
    return exec_bytes(f, bytes, len);
}

#define assert_accepted(r)                                                    \
    do {                                                                      \
        struct tx_result r__ = (r);                                           \
        if (r__.status != TXS_ACCEPTED)                                       \
            fail_msg("expected accepted, got %s: %s", r__.code, r__.message); \
    } while (0)

#define assert_refused(r, want)                                             \
    do {                                                                    \
        struct tx_result r__ = (r);                                         \
        if (r__.status != TXS_REJECTED || strcmp(r__.code, (want)) != 0)    \
            fail_msg("expected %s, got %s%s: %s", (want),                   \
                     r__.status == TXS_ACCEPTED ? "accepted" : "rejected ", \
                     r__.code, r__.message);                                \
        assert_true(strlen(r__.message) > 0);                               \
    } while (0)

/* ---- builders -------------------------------------------------------------
 */

struct change {
    Tc__GovAction action;
    const char *name, *org, *role, *url;
    const uint8_t *pk;
    size_t pk_len; /* 0: 32 when pk is set */
    uint64_t expires_ms;
};

static struct tx_result propose_as(struct fx *f, int m, int k, const char *id,
                                   const struct change *c)
{
    Tc__GovernanceProposal p = TC__GOVERNANCE_PROPOSAL__INIT;
    p.proposal_id = (char *)id;
    p.action = c->action;
    p.name = (char *)(c->name ? c->name : "");
    p.organisation = (char *)(c->org ? c->org : "");
    p.role = (char *)(c->role ? c->role : "");
    p.peer_url = (char *)(c->url ? c->url : "");
    if (c->pk != NULL) {
        p.public_key.data = (uint8_t *)c->pk;
        p.public_key.len = c->pk_len ? c->pk_len : 32;
    }
    p.expires_ms = c->expires_ms;
    p.reason = (char *)"Consortium change agreed at the steering meeting.";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_PROPOSAL;
    tx.governance_proposal = &p;
    return run_as(f, m, k, &tx);
}

static struct tx_result propose(struct fx *f, int m, const char *id,
                                const struct change *c)
{
    return propose_as(f, m, m, id, c);
}

static struct tx_result approve_as(struct fx *f, int m, int k, const char *id)
{
    Tc__GovernanceApproval a = TC__GOVERNANCE_APPROVAL__INIT;
    a.proposal_id = (char *)id;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_APPROVAL;
    tx.governance_approval = &a;
    return run_as(f, m, k, &tx);
}

static struct tx_result approve(struct fx *f, int m, const char *id)
{
    return approve_as(f, m, m, id);
}

/* Proposes as sponsor and approves as ethics: two organisations. */
static void pass(struct fx *f, const char *id, const struct change *c)
{
    assert_accepted(propose(f, SPONSOR, id, c));
    assert_accepted(approve(f, ETHICS, id));
}

static void member_status(struct fx *f, const char *name,
                          enum gov_member_status want)
{
    struct gov_member m;
    assert_int_equal(registry_member_by_name(f->reg, f->st, name, &m), LG_OK);
    assert_int_equal(m.status, want);
}

static void signer_code(struct fx *f, int k, const char *want)
{
    char code[40], msg[256];
    int rv = registry_signer_check(f->reg, f->st, f->keys[k].public_key, code,
                                   msg, sizeof(msg));
    if (want == NULL) {
        if (rv != LG_OK)
            fail_msg("expected may sign, got %s: %s", code, msg);
        return;
    }
    assert_int_equal(rv, LG_EPERM);
    assert_string_equal(code, want);
    assert_true(strlen(msg) > 0);
}

/* ---- tests ----------------------------------------------------------------
 */

static void test_gov_genesis_state(void **state)
{
    struct fx *f = *state;
    struct gov_replica_set set;
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.base_height, 0);
    assert_int_equal(set.n, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(set.r[i].slot, i);
        assert_memory_equal(set.r[i].public_key, f->replica_pk[i], 32);
    }
    struct gov_member m;
    assert_int_equal(
        registry_member_by_key(f->reg, f->st, f->keys[ETHICS].public_key, &m),
        LG_OK);
    assert_string_equal(m.name, "ethics");
    assert_string_equal(m.organisation, "Ethics A");
    assert_int_equal(m.status, GOV_MEMBER_ACTIVE);
    assert_true(m.key_current);
    assert_int_equal(
        registry_member_by_key(f->reg, f->st, f->keys[NEW_A].public_key, &m),
        LG_ENOTFOUND);
    assert_int_equal(registry_member_by_name(f->reg, f->st, "nobody", &m),
                     LG_ENOTFOUND);
    signer_code(f, SPONSOR, NULL);
    signer_code(f, NEW_A, "unknown-signer");
}

static void test_gov_proposal_rules(void **state)
{
    struct fx *f = *state;
    const uint8_t *k_new = f->keys[NEW_A].public_key;
    struct change add = {.action = TC__GOV_ACTION__GOV_MEMBER_ADD,
                         .name = "site-c",
                         .org = "Hospital C",
                         .role = "site",
                         .pk = k_new};
    /* who may propose, the id, the expiry */
    assert_refused(propose(f, SITE_A, "p1", &add), "not-a-voter");
    assert_refused(propose(f, AUDITOR, "p1", &add), "not-a-voter");
    assert_refused(propose(f, SPONSOR, "bad id!", &add), "invalid-id");
    struct change past = add;
    past.expires_ms = f->time_ms;
    assert_refused(propose(f, SPONSOR, "p1", &past), "expiry-in-past");
    struct change none = {.action = TC__GOV_ACTION__GOV_UNSPECIFIED};
    assert_refused(propose(f, SPONSOR, "p1", &none), "invalid-action");
    assert_accepted(propose(f, SPONSOR, "p1", &add));
    assert_refused(propose(f, SPONSOR_B, "p1", &add), "proposal-exists");

    /* member-add */
    struct change c = add;
    c.name = "ethics";
    assert_refused(propose(f, SPONSOR, "p2", &c), "member-exists");
    c = add;
    c.name = "";
    assert_refused(propose(f, SPONSOR, "p2", &c), "invalid-id");
    c = add;
    c.role = "overlord";
    assert_refused(propose(f, SPONSOR, "p2", &c), "invalid-action");
    c = add;
    c.org = "";
    assert_refused(propose(f, SPONSOR, "p2", &c), "missing-field");
    c = add;
    c.pk = NULL;
    assert_refused(propose(f, SPONSOR, "p2", &c), "missing-field");
    c = add;
    c.pk_len = 31;
    assert_refused(propose(f, SPONSOR, "p2", &c), "missing-field");
    c = add;
    c.pk = f->keys[AUDITOR].public_key;
    assert_refused(propose(f, SPONSOR, "p2", &c), "key-in-use");
    c = add;
    c.pk = f->replica_pk[2];
    assert_refused(propose(f, SPONSOR, "p2", &c), "key-in-use");

    /* suspend, reinstate, remove, rotate */
    c = (struct change){.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                        .name = "nobody"};
    assert_refused(propose(f, SPONSOR, "p2", &c), "unknown-member");
    c.action = TC__GOV_ACTION__GOV_MEMBER_REINSTATE;
    c.name = "site-a";
    assert_refused(propose(f, SPONSOR, "p2", &c), "invalid-action");
    c = (struct change){.action = TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY,
                        .name = "site-a",
                        .pk = f->keys[SPONSOR].public_key};
    assert_refused(propose(f, SPONSOR, "p2", &c), "key-in-use");
    c.pk = NULL;
    assert_refused(propose(f, SPONSOR, "p2", &c), "missing-field");

    /* replicas */
    c = (struct change){.action = TC__GOV_ACTION__GOV_REPLICA_ADD,
                        .name = "node4",
                        .pk = f->keys[NEW_B].public_key,
                        .url = "tcp://127.0.0.1:27004"};
    struct change r = c;
    r.name = "node1";
    assert_refused(propose(f, SPONSOR, "p2", &r), "replica-exists");
    r = c;
    r.url = "http://127.0.0.1:27004";
    assert_refused(propose(f, SPONSOR, "p2", &r), "bad-peer-url");
    r.url = "tcp://127.0.0.1:99999";
    assert_refused(propose(f, SPONSOR, "p2", &r), "bad-peer-url");
    r.url = "tcp://:27004";
    assert_refused(propose(f, SPONSOR, "p2", &r), "bad-peer-url");
    r = c;
    r.pk = f->replica_pk[0];
    assert_refused(propose(f, SPONSOR, "p2", &r), "key-in-use");
    r = c;
    r.pk = f->keys[SITE_A].public_key;
    assert_refused(propose(f, SPONSOR, "p2", &r), "key-in-use");
    r = (struct change){.action = TC__GOV_ACTION__GOV_REPLICA_REMOVE,
                        .name = "node9"};
    assert_refused(propose(f, SPONSOR, "p2", &r), "unknown-replica");
    r.name = "node3";
    assert_refused(propose(f, SPONSOR, "p2", &r), "too-few-replicas");
    r = (struct change){.action = TC__GOV_ACTION__GOV_REPLICA_MOVE,
                        .name = "node3"};
    assert_refused(propose(f, SPONSOR, "p2", &r), "missing-field");
    r.url = "tcp://[::1]:28003";
    assert_accepted(propose(f, SPONSOR, "p2", &r));
    assert_accepted(propose(f, SPONSOR, "p3", &c));

    /* refusals changed nothing; open proposals neither */
    struct gov_replica_set set;
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.n, 4);
    assert_int_equal(set.base_height, 0);
    assert_string_equal(set.r[3].peer_url, "tcp://127.0.0.1:27003");
    signer_code(f, NEW_A, "unknown-signer");
}

static void test_gov_threshold_counts_organisations(void **state)
{
    struct fx *f = *state;
    struct change add = {.action = TC__GOV_ACTION__GOV_MEMBER_ADD,
                         .name = "site-c",
                         .org = "Hospital C",
                         .role = "site",
                         .pk = f->keys[NEW_A].public_key};
    assert_accepted(propose(f, SPONSOR, "add-c", &add));
    /* a second Acme voter: accepted, but Acme is already counted */
    assert_accepted(approve(f, SPONSOR2, "add-c"));
    assert_refused(approve(f, SPONSOR2, "add-c"), "already-approved");
    assert_refused(approve(f, SPONSOR, "add-c"), "already-approved");
    assert_refused(approve(f, SITE_A, "add-c"), "not-a-voter");
    assert_refused(approve(f, ETHICS, "nope"), "unknown-proposal");
    assert_refused(approve(f, ETHICS, "bad id!"), "invalid-id");
    /* below the threshold nothing changed */
    struct gov_member m;
    assert_int_equal(registry_member_by_name(f->reg, f->st, "site-c", &m),
                     LG_ENOTFOUND);
    signer_code(f, NEW_A, "unknown-signer");

    Tc__GovernanceReply gr;
    assert_int_equal(
        registry_governance(f->reg, f->st, "add-c", f->time_ms, 0, 10, &gr),
        LG_OK);
    assert_int_equal(gr.n_proposals, 1);
    assert_string_equal(gr.proposals[0]->status, "open");
    assert_int_equal(gr.proposals[0]->n_approvals, 2);
    assert_int_equal(gr.proposals[0]->n_organisations, 1);
    assert_string_equal(gr.proposals[0]->organisations[0], "Acme");
    registry_governance_clear(&gr);

    /* Beta makes two organisations: applied in this tx */
    assert_accepted(approve(f, SPONSOR_B, "add-c"));
    uint64_t h = f->height;
    assert_int_equal(registry_member_by_name(f->reg, f->st, "site-c", &m),
                     LG_OK);
    assert_int_equal(m.status, GOV_MEMBER_ACTIVE);
    assert_int_equal(m.since_height, h);
    assert_string_equal(m.organisation, "Hospital C");
    assert_int_equal(m.role, ROLE_SITE);
    assert_refused(approve(f, ETHICS, "add-c"), "proposal-closed");
    assert_int_equal(
        registry_governance(f->reg, f->st, "add-c", f->time_ms, 0, 10, &gr),
        LG_OK);
    assert_string_equal(gr.proposals[0]->status, "applied");
    assert_int_equal(gr.proposals[0]->applied_height, h);
    assert_int_equal(gr.proposals[0]->n_organisations, 2);
    registry_governance_clear(&gr);
}

static void test_gov_expiry(void **state)
{
    struct fx *f = *state;
    struct change sus = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                         .name = "site-a",
                         .expires_ms = T0_MS + DAY_MS};
    assert_accepted(propose(f, SPONSOR, "sus", &sus));
    struct change dflt = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                          .name = "auditor"};
    assert_accepted(propose(f, SPONSOR, "dflt", &dflt));
    f->time_ms = T0_MS + DAY_MS;
    assert_refused(approve(f, ETHICS, "sus"), "proposal-expired");
    member_status(f, "site-a", GOV_MEMBER_ACTIVE);

    Tc__GovernanceReply gr;
    assert_int_equal(
        registry_governance(f->reg, f->st, "", f->time_ms, 0, 10, &gr), LG_OK);
    assert_int_equal(gr.total, 2);
    assert_int_equal(gr.n_proposals, 2);
    /* newest first */
    assert_string_equal(gr.proposals[0]->proposal_id, "dflt");
    assert_string_equal(gr.proposals[0]->status, "open");
    assert_int_equal(gr.proposals[0]->expires_ms,
                     T0_MS + GOV_EXPIRY_DEFAULT_MS);
    assert_string_equal(gr.proposals[1]->proposal_id, "sus");
    assert_string_equal(gr.proposals[1]->status, "expired");
    registry_governance_clear(&gr);

    /* the default expiry is seven days */
    f->time_ms = T0_MS + GOV_EXPIRY_DEFAULT_MS - 1;
    assert_accepted(approve(f, ETHICS, "dflt"));
    member_status(f, "auditor", GOV_MEMBER_SUSPENDED);
}

static void test_gov_member_add_then_signs(void **state)
{
    struct fx *f = *state;
    /* an added ethics board votes (its role is a voting role) */
    struct change add = {.action = TC__GOV_ACTION__GOV_MEMBER_ADD,
                         .name = "ethics-2",
                         .org = "Ethics B",
                         .role = "ethics_board",
                         .pk = f->keys[NEW_A].public_key};
    assert_refused(approve_as(f, NEW_A, NEW_A, "x"), "unknown-signer");
    pass(f, "add", &add);
    signer_code(f, NEW_A, NULL);
    struct change sus = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                         .name = "site-a"};
    assert_accepted(propose_as(f, NEW_A, NEW_A, "sus", &sus));
    assert_accepted(approve(f, SPONSOR_B, "sus"));
    member_status(f, "site-a", GOV_MEMBER_SUSPENDED);

    uint64_t nonce = 0, idx[8], total = 0;
    size_t n = 0;
    assert_int_equal(registry_member_nonce(f->reg, f->st, "ethics-2", &nonce),
                     LG_OK);
    assert_int_equal(nonce, 2); /* the refused unknown-signer tx and this */
    assert_int_equal(registry_member_entries(f->reg, f->st, "ethics-2", 0, 8,
                                             idx, &n, &total),
                     LG_OK);
    assert_int_equal(total, 1);

    Tc__GovernanceReply gr;
    assert_int_equal(
        registry_governance(f->reg, f->st, "", f->time_ms, 0, 10, &gr), LG_OK);
    assert_int_equal(gr.n_members, N_GENESIS + 1);
    bool seen = false;
    for (size_t i = 0; i < gr.n_members; i++) {
        if (strcmp(gr.members[i]->name, "ethics-2") != 0)
            continue;
        seen = true;
        assert_true(gr.members[i]->voter);
        assert_string_equal(gr.members[i]->status, "active");
        assert_int_equal(gr.members[i]->since_height, f->height - 2);
    }
    assert_true(seen);
    assert_int_equal(gr.threshold, 2);
    assert_int_equal(gr.n_voter_roles, 2);
    assert_string_equal(gr.voter_roles[0], "sponsor");
    assert_string_equal(gr.voter_roles[1], "ethics_board");
    registry_governance_clear(&gr);
}

static void test_gov_suspend_reinstate_remove(void **state)
{
    struct fx *f = *state;
    struct change c = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                       .name = "site-a"};
    pass(f, "s1", &c);
    member_status(f, "site-a", GOV_MEMBER_SUSPENDED);
    signer_code(f, SITE_A, "member-suspended");
    assert_refused(approve(f, SITE_A, "s1"), "member-suspended");
    assert_refused(propose(f, SPONSOR, "s2", &c), "member-suspended");

    c.action = TC__GOV_ACTION__GOV_MEMBER_REINSTATE;
    pass(f, "r1", &c);
    member_status(f, "site-a", GOV_MEMBER_ACTIVE);
    signer_code(f, SITE_A, NULL);
    assert_refused(approve(f, SITE_A, "r1"), "not-a-voter"); /* signs again */

    /* Acme has two voters: suspending one keeps three organisations */
    c = (struct change){.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                        .name = "sponsor-2"};
    pass(f, "s3", &c);
    /* Ethics A out leaves Acme and Beta: still the threshold */
    c.name = "ethics";
    assert_accepted(propose(f, SPONSOR, "s4", &c));
    assert_accepted(approve(f, SPONSOR_B, "s4"));
    member_status(f, "ethics", GOV_MEMBER_SUSPENDED);
    /* Beta out would leave Acme alone */
    c = (struct change){.action = TC__GOV_ACTION__GOV_MEMBER_REMOVE,
                        .name = "sponsor-b"};
    assert_refused(propose(f, SPONSOR, "s5", &c), "below-threshold-voters");
    c.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND;
    assert_refused(propose(f, SPONSOR, "s5", &c), "below-threshold-voters");
    /* suspending the last active Acme voter is refused too */
    c.name = "sponsor";
    assert_refused(propose(f, SPONSOR_B, "s5", &c), "below-threshold-voters");

    /* remove: refused on the next tx, for good */
    c = (struct change){.action = TC__GOV_ACTION__GOV_MEMBER_REMOVE,
                        .name = "auditor"};
    assert_accepted(propose(f, SPONSOR, "rm", &c));
    begin_block(f);
    assert_accepted(approve(f, SPONSOR_B, "rm"));
    Tc__GovernanceApproval a = TC__GOVERNANCE_APPROVAL__INIT;
    a.proposal_id = (char *)"rm";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_APPROVAL;
    tx.governance_approval = &a;
    assert_refused(run_as(f, AUDITOR, AUDITOR, &tx), "member-removed");
    end_block(f);
    signer_code(f, AUDITOR, "member-removed");
    member_status(f, "auditor", GOV_MEMBER_REMOVED);
    c.action = TC__GOV_ACTION__GOV_MEMBER_REINSTATE;
    assert_refused(propose(f, SPONSOR, "back", &c), "member-removed");
    c.action = TC__GOV_ACTION__GOV_MEMBER_ADD;
    c.org = "Audit Co";
    c.role = "auditor";
    c.pk = f->keys[NEW_C].public_key;
    assert_refused(propose(f, SPONSOR, "back", &c), "member-exists");
}

static void test_gov_rotate_key(void **state)
{
    struct fx *f = *state;
    struct change c = {.action = TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY,
                       .name = "sponsor-b",
                       .pk = f->keys[NEW_B].public_key};
    /* a tx under the old key first: it keeps its signer's name */
    struct change sus = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                         .name = "site-a"};
    assert_accepted(propose(f, SPONSOR_B, "old", &sus));
    pass(f, "rot", &c);
    uint64_t h = f->height;
    signer_code(f, SPONSOR_B, "key-rotated");
    signer_code(f, NEW_B, NULL);
    assert_refused(approve(f, SPONSOR_B, "rot"), "key-rotated");
    /* the proposal made under the old key still counts as sponsor-b's */
    assert_accepted(approve(f, ETHICS, "old"));
    member_status(f, "site-a", GOV_MEMBER_SUSPENDED);
    /* the new key signs as sponsor-b (nonces continue per member) */
    sus.action = TC__GOV_ACTION__GOV_MEMBER_REINSTATE;
    assert_accepted(propose_as(f, SPONSOR_B, NEW_B, "new", &sus));

    struct gov_member m;
    assert_int_equal(registry_member_by_key(f->reg, f->st,
                                            f->keys[SPONSOR_B].public_key, &m),
                     LG_OK);
    assert_string_equal(m.name, "sponsor-b");
    assert_false(m.key_current);
    assert_int_equal(m.key_until_height, h);
    assert_memory_equal(m.public_key, f->keys[NEW_B].public_key, 32);
    assert_int_equal(
        registry_member_by_key(f->reg, f->st, f->keys[NEW_B].public_key, &m),
        LG_OK);
    assert_true(m.key_current);
    /* every tx of the member, whichever key signed it */
    uint64_t idx[8], total = 0;
    size_t n = 0;
    assert_int_equal(registry_member_entries(f->reg, f->st, "sponsor-b", 0, 8,
                                             idx, &n, &total),
                     LG_OK);
    assert_int_equal(total, 3);
    /* the old key can never come back */
    c.name = "site-a";
    c.pk = f->keys[SPONSOR_B].public_key;
    assert_refused(propose(f, SPONSOR, "again", &c), "key-in-use");
}

static void test_gov_replica_changes(void **state)
{
    struct fx *f = *state;
    struct change add = {.action = TC__GOV_ACTION__GOV_REPLICA_ADD,
                         .name = "node4",
                         .pk = f->keys[NEW_A].public_key,
                         .url = "tcp://127.0.0.1:27004"};
    assert_accepted(propose(f, SPONSOR, "add4", &add));
    struct change add5 = add;
    add5.name = "node5";
    add5.pk = f->keys[NEW_B].public_key;
    add5.url = "tcp://replica5.example.org:27005";
    assert_accepted(propose(f, SPONSOR, "add5", &add5));

    /* two changes in one block compose; the base is that block */
    begin_block(f);
    assert_accepted(approve(f, ETHICS, "add4"));
    assert_accepted(approve(f, ETHICS, "add5"));
    struct gov_replica_set set;
    assert_int_equal(registry_replica_set_txn(f->reg, f->block, &set), LG_OK);
    assert_int_equal(set.n, 6);
    assert_int_equal(set.base_height, f->height);
    end_block(f);
    uint64_t h = f->height;
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.n, 6);
    assert_int_equal(set.base_height, h);
    assert_int_equal(set.r[4].slot, 4);
    assert_string_equal(set.r[4].name, "node4");
    assert_int_equal(set.r[5].slot, 5);
    assert_string_equal(set.r[5].peer_url, "tcp://replica5.example.org:27005");
    assert_memory_equal(set.r[5].public_key, f->keys[NEW_B].public_key, 32);

    /* a block without a change leaves the base */
    struct change sus = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                         .name = "site-a"};
    pass(f, "sus", &sus);
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.base_height, h);

    struct change rm = {.action = TC__GOV_ACTION__GOV_REPLICA_REMOVE,
                        .name = "node1"};
    pass(f, "rm1", &rm);
    h = f->height;
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.n, 5);
    assert_int_equal(set.base_height, h);
    uint32_t want[5] = {0, 2, 3, 4, 5};
    for (int i = 0; i < 5; i++)
        assert_int_equal(set.r[i].slot, want[i]);

    /* a removed replica's name and key are never reused; slots neither */
    add.name = "node1";
    add.pk = f->keys[NEW_C].public_key;
    assert_refused(propose(f, SPONSOR, "again", &add), "replica-exists");
    add.name = "node6";
    add.pk = f->replica_pk[1];
    assert_refused(propose(f, SPONSOR, "again", &add), "key-in-use");
    add.pk = f->keys[NEW_C].public_key;
    pass(f, "add6", &add);
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.r[5].slot, 6);

    /* move: new key and address */
    struct change mv = {.action = TC__GOV_ACTION__GOV_REPLICA_MOVE,
                        .name = "node2",
                        .pk = f->keys[NEW_D].public_key,
                        .url = "tcp://10.0.0.2:27002"};
    pass(f, "mv", &mv);
    h = f->height;
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.base_height, h);
    assert_int_equal(set.r[1].slot, 2);
    assert_string_equal(set.r[1].peer_url, "tcp://10.0.0.2:27002");
    assert_memory_equal(set.r[1].public_key, f->keys[NEW_D].public_key, 32);
    mv.pk = f->replica_pk[2]; /* its own old key: retired */
    assert_refused(propose(f, SPONSOR, "mv2", &mv), "key-in-use");

    /* shrink back to the minimum */
    rm.name = "node6";
    pass(f, "rm6", &rm);
    rm.name = "node5";
    pass(f, "rm5", &rm);
    rm.name = "node4";
    assert_refused(propose(f, SPONSOR, "rm4", &rm), "too-few-replicas");
    assert_int_equal(registry_replica_set(f->reg, f->st, &set), LG_OK);
    assert_int_equal(set.n, GOV_REPLICAS_MIN);
}

/* A change overtaken between proposal and threshold is refused at
 * approval and changes nothing. */
static void test_gov_change_checked_again_when_applied(void **state)
{
    struct fx *f = *state;
    struct change a = {.action = TC__GOV_ACTION__GOV_MEMBER_ADD,
                       .name = "site-c",
                       .org = "Hospital C",
                       .role = "site",
                       .pk = f->keys[NEW_A].public_key};
    assert_accepted(propose(f, SPONSOR, "a1", &a));
    a.pk = f->keys[NEW_B].public_key;
    assert_accepted(propose(f, SPONSOR, "a2", &a));
    assert_accepted(approve(f, ETHICS, "a1"));
    assert_refused(approve(f, ETHICS, "a2"), "member-exists");
    struct gov_member m;
    assert_int_equal(registry_member_by_name(f->reg, f->st, "site-c", &m),
                     LG_OK);
    assert_memory_equal(m.public_key, f->keys[NEW_A].public_key, 32);
    signer_code(f, NEW_B, "unknown-signer");
}

static void test_gov_query_api(void **state)
{
    struct fx *f = *state;
    struct change c = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                       .name = "site-a"};
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "q%d", i);
        assert_accepted(propose(f, SPONSOR, id, &c));
    }
    Tc__QueryGovernance q = TC__QUERY_GOVERNANCE__INIT;
    Tc__Page page = TC__PAGE__INIT;
    page.offset = 1;
    page.limit = 2;
    q.page = &page;
    Tc__ClientReply reply = TC__CLIENT_REPLY__INIT;
    node_gov_query(f->reg, f->st, f->time_ms, &q, &reply);
    assert_int_equal(reply.code, TC__REPLY_CODE__REPLY_OK);
    assert_int_equal(reply.reply_case, TC__CLIENT_REPLY__REPLY_GOVERNANCE);
    Tc__GovernanceReply *g = reply.governance;
    assert_int_equal(g->total, 5);
    assert_true(g->more);
    assert_int_equal(g->n_proposals, 2);
    assert_string_equal(g->proposals[0]->proposal_id, "q3");
    assert_string_equal(g->proposals[1]->proposal_id, "q2");
    assert_string_equal(g->proposals[0]->action, "member-suspend");
    assert_string_equal(g->proposals[0]->proposer, "sponsor");
    assert_int_equal(g->proposals[0]->tx_id.len, 32);
    assert_int_equal(g->n_members, N_GENESIS);
    assert_non_null(g->replicas);
    assert_int_equal(g->replicas->n_replicas, 4);
    assert_int_equal(g->replicas_since_height, 0);
    /* the reply packs */
    size_t len = tc__client_reply__get_packed_size(&reply);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    tc__client_reply__pack(&reply, buf);
    Tc__ClientReply *back = tc__client_reply__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->governance->n_proposals, 2);
    tc__client_reply__free_unpacked(back, NULL);
    free(buf);
    node_gov_query_clear(&reply);

    page.offset = 4;
    page.limit = 0; /* the default */
    node_gov_query(f->reg, f->st, f->time_ms, &q, &reply);
    assert_int_equal(reply.governance->n_proposals, 1);
    assert_false(reply.governance->more);
    node_gov_query_clear(&reply);

    q.proposal_id = (char *)"missing";
    node_gov_query(f->reg, f->st, f->time_ms, &q, &reply);
    assert_int_equal(reply.code, TC__REPLY_CODE__REPLY_NOT_FOUND);
    assert_true(strlen(reply.error) > 0);
    node_gov_query_clear(&reply);
}

/* Voting roles are the genesis voters' roles: here sponsors only, and a
 * threshold of one applies a change in its proposal's own tx. */
static void test_gov_threshold_one_applies_at_proposal(void **state)
{
    struct fx *f = *state;
    struct change sus = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                         .name = "site-a"};
    assert_refused(propose(f, ETHICS, "e1", &sus), "not-a-voter");
    assert_accepted(propose(f, SPONSOR2, "s1", &sus));
    member_status(f, "site-a", GOV_MEMBER_SUSPENDED);
    assert_refused(approve(f, SPONSOR, "s1"), "proposal-closed");
    Tc__GovernanceReply gr;
    assert_int_equal(
        registry_governance(f->reg, f->st, "s1", f->time_ms, 0, 1, &gr), LG_OK);
    assert_string_equal(gr.proposals[0]->status, "applied");
    assert_int_equal(gr.n_voter_roles, 1);
    assert_string_equal(gr.voter_roles[0], "sponsor");
    registry_governance_clear(&gr);
    /* two sponsor organisations, Acme and Beta: one may go */
    struct change rm = {.action = TC__GOV_ACTION__GOV_MEMBER_REMOVE,
                        .name = "sponsor-b"};
    assert_accepted(propose(f, SPONSOR, "r1", &rm));
    member_status(f, "sponsor-b", GOV_MEMBER_REMOVED);
    rm.name = "sponsor";
    assert_accepted(propose(f, SPONSOR2, "r2", &rm));
    rm.name = "sponsor-2";
    assert_refused(propose(f, SPONSOR2, "r3", &rm), "below-threshold-voters");
}

/* ---- determinism ----------------------------------------------------------
 */

static void assert_same_state(struct store *a, struct store *b)
{
    const char *prefixes[2] = {"r/", "x/"};
    for (int p = 0; p < 2; p++) {
        struct store_iter *ia = store_iter_new(a, prefixes[p], 2, NULL, 0);
        struct store_iter *ib = store_iter_new(b, prefixes[p], 2, NULL, 0);
        size_t count = 0;
        for (;;) {
            const unsigned char *ka, *va, *kb, *vb;
            size_t kla, vla, klb, vlb;
            bool ha = store_iter_next(ia, &ka, &kla, &va, &vla);
            bool hb = store_iter_next(ib, &kb, &klb, &vb, &vlb);
            assert_int_equal(ha, hb);
            if (!ha)
                break;
            assert_int_equal(kla, klb);
            assert_memory_equal(ka, kb, kla);
            assert_int_equal(vla, vlb);
            if (vla > 0)
                assert_memory_equal(va, vb, vla);
            count++;
        }
        assert_true(count > 10);
        store_iter_free(ia);
        store_iter_free(ib);
    }
}

static void replay(struct fx *f, const char *dir, struct store **out)
{
    char err[256];
    assert_int_equal(store_open(dir, true, out, err, sizeof(err)), LG_OK);
    struct registry *r;
    assert_int_equal(registry_new(f->g, &r), LG_OK);
    struct store_txn *t = NULL;
    for (size_t i = 0; i < f->n_log; i++) {
        if (t == NULL)
            t = store_txn_new(*out);
        struct tx_result res;
        assert_int_equal(registry_execute(r, t, &f->log[i].at, f->log[i].bytes,
                                          f->log[i].len, &res),
                         LG_OK);
        if (i + 1 == f->n_log ||
            f->log[i + 1].at.height != f->log[i].at.height) {
            assert_int_equal(store_txn_commit(t, false), LG_OK);
            t = NULL;
        }
    }
    registry_free(r);
}

static void test_gov_two_stores_end_byte_identical(void **state)
{
    struct fx *f = *state;
    struct change add = {.action = TC__GOV_ACTION__GOV_MEMBER_ADD,
                         .name = "site-c",
                         .org = "Hospital C",
                         .role = "site",
                         .pk = f->keys[NEW_A].public_key};
    pass(f, "d1", &add);
    struct change rot = {.action = TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY,
                         .name = "site-a",
                         .pk = f->keys[NEW_B].public_key};
    pass(f, "d2", &rot);
    struct change rep = {.action = TC__GOV_ACTION__GOV_REPLICA_ADD,
                         .name = "node4",
                         .pk = f->keys[NEW_C].public_key,
                         .url = "tcp://127.0.0.1:27004"};
    assert_accepted(propose(f, SPONSOR, "d3", &rep));
    begin_block(f);
    assert_accepted(approve(f, SPONSOR_B, "d3"));
    struct change sus = {.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND,
                         .name = "auditor"};
    assert_accepted(propose(f, SPONSOR, "d4", &sus));
    assert_accepted(approve(f, ETHICS, "d4"));
    assert_refused(approve(f, AUDITOR, "d4"), "member-suspended");
    end_block(f);
    assert_refused(approve(f, ETHICS, "d4"), "proposal-closed");

    char d1[64] = "/tmp/test_registry_gov_a.XXXXXX";
    assert_non_null(mkdtemp(d1));
    struct store *s1;
    replay(f, d1, &s1);
    assert_same_state(f->st, s1);
    struct gov_replica_set a, b;
    assert_int_equal(registry_replica_set(f->reg, f->st, &a), LG_OK);
    assert_int_equal(registry_replica_set(f->reg, s1, &b), LG_OK);
    assert_memory_equal(&a, &b, sizeof(a));
    store_close(s1);
    rm_rf(d1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_gov_genesis_state),
        T(test_gov_proposal_rules),
        T(test_gov_threshold_counts_organisations),
        T(test_gov_expiry),
        T(test_gov_member_add_then_signs),
        T(test_gov_suspend_reinstate_remove),
        T(test_gov_rotate_key),
        T(test_gov_replica_changes),
        T(test_gov_change_checked_again_when_applied),
        T(test_gov_query_api),
        T(test_gov_two_stores_end_byte_identical),
        cmocka_unit_test_setup_teardown(
            test_gov_threshold_one_applies_at_proposal, fx_setup_sponsors,
            fx_teardown),
    };
#undef T
    return cmocka_run_group_tests_name("registry_gov", tests, NULL, NULL);
}
