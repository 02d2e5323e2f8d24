/*
 * test_web.c - the read-only web view (node/web.c): pages rendered through
 * web_render from a real ledger built here (LevelDB in a mkdtemp
 * directory, the real registry, signed txs applied with ledger_apply and
 * certified by 3 of 4 replica keys), checked for what they show: status,
 * trial timeline with chart and findings, certificates and receipts checked
 * on the block and tx pages (also across a replica-set change), CSV/JSON
 * exports, escaping of hostile text, 400/404 on bad input; then the same pages
 * served by web_register on NNG's HTTP server at 127.0.0.1.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "audit.h"
#include "crypto.h"
#include "genesis.h"
#include "ledger.h"
#include "registry.h"
#include "store.h"
#include "tx.h"
#include "web.h"
#include "web_int.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SPONSOR, SITE_A, SITE_B, SITE_C, ETHICS, N_KEYS };

static const char *const member_names[N_KEYS] = {"sponsor", "site-a", "site-b",
                                                 "site-c", "ethics"};
static const char *const member_roles[N_KEYS] = {"sponsor", "site", "site",
                                                 "site", "ethics_board"};

#define T0_MS  1800000000000ull /* 2027-01-15 */
#define DAY_MS (24ull * 3600 * 1000)
#define TRIAL  "NCT02210780"
#define EVIL   "NCT00000666"
#define EVIL_TITLE \
    "<script>alert(1)</script> & \"quoted\" 'single' </td></table>"
#define PENDING_MAX 128

struct fx {
    char dir[64];
    struct genesis *g;
    struct store *st;
    struct registry *reg;
    struct ledger *l;
    struct keyfile keys[N_KEYS];
    uint8_t replica_sk[4][64];
    uint64_t nonce[N_KEYS];
    uint8_t *pending[PENDING_MAX];
    size_t pending_len[PENDING_MAX];
    int pending_signer[PENDING_MAX];
    size_t n_pending;
    struct web_ctx ctx;
    /* ids of interesting txs */
    uint8_t consent_id[32], results_id[32], grant_id[32], rejected_id[32];
    uint8_t register_id[32];
};

/* ---- fixture ------------------------------------------------------------
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

static struct genesis *genesis_make(struct fx *f)
{
    char json[8192], hex[65];
    size_t n = 0;
    n += (size_t)snprintf(json + n, sizeof(json) - n,
                          "{\"chain_name\":\"web-test\",\"created\":"
                          "\"2026-11-21T00:00:00Z\",\"replicas\":[");
    for (int i = 0; i < 4; i++) {
        uint8_t pk[32], seed[32];
        memset(seed, 0x20 + i, sizeof(seed));
        crypto_sign_seed_keypair(pk, f->replica_sk[i], seed);
        lg_hex(pk, 32, hex);
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "%s{\"id\":%d,\"name\":\"node%d\",\"public_key\":"
                              "\"%s\",\"peer_url\":\"tcp://127.0.0.1:%d\"}",
                              i ? "," : "", i, i, hex, 27000 + i);
    }
    n += (size_t)snprintf(json + n, sizeof(json) - n, "],\"members\":[");
    for (int i = 0; i < N_KEYS; i++) {
        lg_hex(f->keys[i].public_key, 32, hex);
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "%s{\"name\":\"%s\",\"role\":\"%s\","
                              "\"organisation\":\"Org <%d> & Co\","
                              "\"public_key\":\"%s\"}",
                              i ? "," : "", member_names[i], member_roles[i], i,
                              hex);
    }
    n += (size_t)snprintf(json + n, sizeof(json) - n,
                          "],\"governance\":{\"threshold\":1,\"voters\":"
                          "[\"sponsor\"]}}");
    assert_true(n < sizeof(json));
    struct genesis *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    char err[256];
    if (genesis_parse((const unsigned char *)json, n, g, err, sizeof(err)) !=
        LG_OK)
        fail_msg("genesis: %s", err);
    return g;
}

static void fake_status(void *arg, struct web_status *out)
{
    (void)arg;
    out->replica = 1;
    out->view = 3;
    out->primary = 3;
    out->height = 0;
    out->ready = true;
    out->connected[0] = true;
    out->connected[3] = true;
    out->peer_height[0] = 7;
}

static int fx_open(struct fx *f)
{
    char err[512];
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_web.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, true, &f->st, err, sizeof(err)), LG_OK);
    assert_int_equal(registry_new(f->g, &f->reg), LG_OK);
    if (ledger_open(f->st, f->g, f->reg, &f->l, err, sizeof(err)) != LG_OK)
        fail_msg("ledger_open: %s", err);
    f->ctx = (struct web_ctx){.genesis = f->g,
                              .store = f->st,
                              .registry = f->reg,
                              .ledger = f->l,
                              .status = fake_status,
                              .audit_run = audit_trial,
                              .audit_free = audit_report_free};
    return 0;
}

/* ---- blocks ---------------------------------------------------------------
 */

static uint64_t next_time(struct fx *f)
{
    struct ledger_tip tip;
    ledger_tip(f->l, &tip);
    return T0_MS + (tip.height + 1) * DAY_MS;
}

/* Signs tx as member m (next nonce, the next block's time) and queues it;
 * id (may be NULL) receives its tx id. */
static void queue(struct fx *f, int m, Tc__Tx *tx, uint8_t *id)
{
    tx->chain_id = (ProtobufCBinaryData){32, f->g->chain_id};
    tx->signer = (ProtobufCBinaryData){32, f->keys[m].public_key};
    tx->nonce = ++f->nonce[m];
    tx->client_time_ms = next_time(f);
    assert_true(f->n_pending < PENDING_MAX);
    size_t i = f->n_pending++;
    assert_int_equal(
        tx_sign(tx, &f->keys[m], &f->pending[i], &f->pending_len[i]), LG_OK);
    f->pending_signer[i] = m;
    if (id != NULL)
        tx_id(f->pending[i], f->pending_len[i], id);
}

static void certify(struct fx *f, uint64_t height, const uint8_t hash[32],
                    uint32_t n_votes)
{
    struct pbft_vote votes[4];
    struct pbft_checkpoint_cert c = {
        .seq = height, .n_votes = n_votes, .votes = votes};
    memcpy(c.digest, hash, 32);
    for (uint32_t i = 0; i < n_votes; i++) {
        uint8_t st[PBFT_VOTE_STATEMENT_MAX];
        memset(&votes[i], 0, sizeof(votes[i]));
        votes[i].replica = i;
        votes[i].seq = height;
        memcpy(votes[i].digest, hash, 32);
        size_t sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, f->g->chain_id,
                                        &votes[i], st, sizeof(st));
        assert_true(sl > 0);
        crypto_sign_raw(f->replica_sk[i], st, sl, votes[i].sig);
    }
    if (ledger_put_cert(f->l, &c) != LG_OK)
        fail_msg("ledger_put_cert: %s", ledger_errmsg(f->l));
}

/* Applies the queued txs as the next block, certified by n_votes. */
static void commit(struct fx *f, uint32_t n_votes)
{
    struct pbft_request reqs[PENDING_MAX];
    struct ledger_tip tip;
    ledger_tip(f->l, &tip);
    for (size_t i = 0; i < f->n_pending; i++) {
        memcpy(reqs[i].client, f->keys[f->pending_signer[i]].public_key, 32);
        reqs[i].req_no = f->nonce[f->pending_signer[i]];
        reqs[i].data = f->pending[i];
        reqs[i].len = (uint32_t)f->pending_len[i];
    }
    struct pbft_execute ex = {.seq = tip.height + 1,
                              .timestamp_ms = next_time(f),
                              .n_requests = (uint32_t)f->n_pending,
                              .requests = reqs};
    uint8_t hash[32];
    if (ledger_apply(f->l, &ex, hash) != LG_OK)
        fail_msg("ledger_apply: %s", ledger_errmsg(f->l));
    for (size_t i = 0; i < f->n_pending; i++)
        free(f->pending[i]);
    f->n_pending = 0;
    if (n_votes > 0)
        certify(f, ex.seq, hash, n_votes);
}

/* ---- transactions ---------------------------------------------------------
 */

static uint8_t hash_a[32] = {0xa1, 0xa2, 0xa3};
static uint8_t hash_b[32] = {0xb1, 0xb2, 0xb3};

static Tc__Outcome oc[2];
static Tc__Outcome *ocp[2] = {&oc[0], &oc[1]};

static void outcomes_init(void)
{
    tc__outcome__init(&oc[0]);
    oc[0].id = (char *)"P1";
    oc[0].type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    oc[0].measure = (char *)"Tetanus toxoid response at week 16";
    oc[0].time_frame = (char *)"Week 16";
    tc__outcome__init(&oc[1]);
    oc[1].id = (char *)"S1";
    oc[1].type = TC__OUTCOME_TYPE__OUTCOME_SECONDARY;
    oc[1].measure = (char *)"EASI-75 response at week 16";
    oc[1].time_frame = (char *)"Week 16";
}

static void q_register(struct fx *f, const char *trial, const char *title,
                       uint8_t *id)
{
    Tc__ProtocolRegister p = TC__PROTOCOL_REGISTER__INIT;
    p.trial_id = (char *)trial;
    p.brief_title = (char *)title;
    p.sponsor_name = (char *)"Regeneron Pharmaceuticals";
    p.phase = (char *)"PHASE2";
    p.study_type = (char *)"INTERVENTIONAL";
    p.enrollment = 194;
    p.start_date = (char *)"2027-02";
    p.primary_completion_date = (char *)"2027-06-15";
    p.protocol_doc_hash = (ProtobufCBinaryData){32, hash_a};
    p.source = (char *)"json";
    p.n_outcomes = 2;
    p.outcomes = ocp;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &p;
    queue(f, SPONSOR, &tx, id);
}

/* Version 2: the same outcomes, with a reason. */
static void q_amend(struct fx *f)
{
    Tc__ProtocolAmend a = TC__PROTOCOL_AMEND__INIT;
    a.trial_id = (char *)TRIAL;
    a.version = 2;
    a.prev_version_hash = (ProtobufCBinaryData){32, f->register_id};
    a.reason = (char *)"Adds a follow-up visit at week 24";
    a.n_outcomes = 2;
    a.outcomes = ocp;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_AMEND;
    tx.protocol_amend = &a;
    queue(f, SPONSOR, &tx, NULL);
}

static void q_ethics(struct fx *f, uint32_t version)
{
    Tc__EthicsDecision d = TC__ETHICS_DECISION__INIT;
    d.trial_id = (char *)TRIAL;
    d.version = version;
    d.action = TC__ETHICS_ACTION__ETHICS_APPROVE;
    d.note = (char *)"Approved at the January board meeting.";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ETHICS;
    tx.ethics = &d;
    queue(f, ETHICS, &tx, NULL);
}

static void q_site(struct fx *f, const char *site)
{
    Tc__SiteAuthorize s = TC__SITE_AUTHORIZE__INIT;
    s.trial_id = (char *)TRIAL;
    s.site = (char *)site;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_SITE_AUTHORIZE;
    tx.site_authorize = &s;
    queue(f, SPONSOR, &tx, NULL);
}

static void pseud(int who, uint8_t out[32])
{
    static const uint8_t secret[32] = {9, 9, 9};
    char local[16];
    snprintf(local, sizeof(local), "P%03d", who);
    tx_pseudonym(secret, TRIAL, local, out);
}

static void q_consent(struct fx *f, int m, int who, bool withdraw, uint8_t *id)
{
    uint8_t p[32];
    pseud(who, p);
    char *scopes[2] = {(char *)"PARTICIPATION", (char *)"GRU"};
    Tc__Consent c = TC__CONSENT__INIT;
    c.trial_id = (char *)TRIAL;
    c.pseudonym = (ProtobufCBinaryData){32, p};
    c.protocol_version = 1;
    c.consent_form_hash = (ProtobufCBinaryData){32, hash_b};
    c.action = withdraw ? TC__CONSENT_ACTION__CONSENT_WITHDRAW
                        : TC__CONSENT_ACTION__CONSENT_RECORD;
    c.n_scopes = withdraw ? 0 : 2;
    c.scopes = scopes;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_CONSENT;
    tx.consent = &c;
    queue(f, m, &tx, id);
}

static void q_dataset(struct fx *f)
{
    uint8_t p1[32], p3[32];
    pseud(1, p1);
    pseud(3, p3);
    ProtobufCBinaryData parts[2] = {{32, p1}, {32, p3}};
    Tc__DatasetRegister d = TC__DATASET_REGISTER__INIT;
    d.dataset_id = (char *)"DS-1";
    d.trial_id = (char *)TRIAL;
    d.sha256 = (ProtobufCBinaryData){32, hash_a};
    d.size_bytes = 4096;
    d.record_count = 2;
    d.anonymization = (char *)"k-anonymity k=5";
    d.n_participants = 2;
    d.participants = parts;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_DATASET_REGISTER;
    tx.dataset_register = &d;
    queue(f, SITE_A, &tx, NULL);
}

static void q_grant(struct fx *f)
{
    Tc__AccessGrant g = TC__ACCESS_GRANT__INIT;
    g.dataset_id = (char *)"DS-1";
    g.grantee = (char *)"site-b";
    g.purpose = (char *)"GRU";
    g.expires_ms = T0_MS + 400 * DAY_MS;
    g.ciphertext_sha256 = (ProtobufCBinaryData){32, hash_b};
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ACCESS_GRANT;
    tx.access_grant = &g;
    queue(f, SITE_A, &tx, f->grant_id);
}

static void q_event(struct fx *f)
{
    Tc__AccessEvent a = TC__ACCESS_EVENT__INIT;
    a.grant_tx = (ProtobufCBinaryData){32, f->grant_id};
    a.purpose = (char *)"GRU";
    a.file_sha256 = (ProtobufCBinaryData){32, hash_a};
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ACCESS_EVENT;
    tx.access_event = &a;
    queue(f, SITE_B, &tx, NULL);
}

/* Reports S1 only: the pre-specified primary P1 is missing. */
static void q_results(struct fx *f)
{
    Tc__ReportedOutcome ro = TC__REPORTED_OUTCOME__INIT;
    Tc__ReportedOutcome *rp[1] = {&ro};
    ro.outcome_id = (char *)"S1";
    ro.type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    ro.measure = oc[1].measure;
    ro.time_frame = oc[1].time_frame;
    Tc__ResultsRegister r = TC__RESULTS_REGISTER__INIT;
    r.trial_id = (char *)TRIAL;
    r.results_doc_hash = (ProtobufCBinaryData){32, hash_a};
    r.actual_primary_completion_date = (char *)"2027-06-15";
    r.n_outcomes = 1;
    r.outcomes = rp;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_RESULTS_REGISTER;
    tx.results_register = &r;
    queue(f, SPONSOR, &tx, f->results_id);
}

/* Blocks 1..9 certified, block 10 (empty) not yet. */
static void scenario(struct fx *f)
{
    q_register(f, TRIAL, "Dupilumab and Vaccine Responses", f->register_id);
    q_register(f, EVIL, EVIL_TITLE, NULL);
    commit(f, 3);
    q_ethics(f, 1);
    q_site(f, "site-a");
    q_site(f, "site-b");
    commit(f, 3);
    q_consent(f, SITE_A, 1, false, f->consent_id);
    q_consent(f, SITE_A, 2, false, NULL);
    q_consent(f, SITE_A, 3, false, NULL);
    q_consent(f, SITE_B, 4, false, NULL);
    q_consent(f, SITE_C, 9, false, f->rejected_id); /* not authorized */
    commit(f, 3);
    q_consent(f, SITE_A, 2, true, NULL);
    q_consent(f, SITE_B, 5, false, NULL);
    commit(f, 4);
    q_dataset(f);
    q_amend(f);
    q_ethics(f, 2);
    commit(f, 3);
    q_grant(f);
    commit(f, 3);
    q_event(f);
    commit(f, 3);
    commit(f, 3); /* an empty block */
    q_results(f);
    commit(f, 3);
    commit(f, 0);
}

static int setup(void **state)
{
    assert_int_equal(crypto_setup(), LG_OK);
    outcomes_init();
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    for (int i = 0; i < N_KEYS; i++)
        make_key(&f->keys[i], i);
    f->g = genesis_make(f);
    fx_open(f);
    scenario(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ledger_close(f->l);
    registry_free(f->reg);
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    genesis_free(f->g);
    free(f->g);
    for (int i = 0; i < N_KEYS; i++)
        keyfile_free(&f->keys[i]);
    free(f);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------
 */

/* Renders path; checks the status; returns the body (free it). */
static char *render(struct fx *f, const char *path, uint16_t want)
{
    struct web_page p;
    assert_int_equal(web_render(&f->ctx, path, NULL, &p), LG_OK);
    if (p.status != want)
        fail_msg("%s: status %u, want %u", path, p.status, want);
    assert_non_null(p.body);
    assert_int_equal(strlen(p.body), p.len);
    return p.body;
}

#define assert_has(body, s)                     \
    do {                                        \
        if (strstr((body), (s)) == NULL)        \
            fail_msg("page lacks \"%s\"", (s)); \
    } while (0)
#define assert_lacks(body, s)                   \
    do {                                        \
        if (strstr((body), (s)) != NULL)        \
            fail_msg("page holds \"%s\"", (s)); \
    } while (0)

static size_t count(const char *body, const char *s)
{
    size_t n = 0;
    for (const char *p = strstr(body, s); p != NULL; p = strstr(p + 1, s))
        n++;
    return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_web_status_lists_nodes_members_and_trials(void **state)
{
    struct fx *f = *state;
    char *b = render(f, "/", 200);
    assert_has(b, "<h1>Consortium status</h1>");
    assert_has(b, "web-test");
    char hex[65];
    lg_hex(f->g->chain_id, 32, hex);
    assert_has(b, hex);
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "<td>node%d</td>", i);
        assert_has(b, name);
    }
    assert_has(b, "Nodes (4, quorum 3)");
    assert_has(b, "this node, ready");
    assert_has(b, "unreachable"); /* node2 */
    assert_has(b, "7 <span class=muted>(checkpoint)</span>");
    assert_has(b, "Org &lt;0&gt; &amp; Co");
    assert_has(b, "Trials (2)");
    assert_has(b, "href=\"/trial/" TRIAL "\"");
    assert_has(b, "Dupilumab and Vaccine Responses");
    assert_has(b, "<td>sponsor <span class=muted>(Org &lt;0&gt; &amp; "
                  "Co)</span></td>");
    /* 4 active consents (3 + 2 - 1 withdrawn), 1 rejected, findings */
    assert_has(b, "<td>approved</td><td>2</td><td>4</td><td>1</td>");
    assert_has(b, "#findings\">");
    assert_has(b, "<a href=\"/block/10\">10</a>");
    free(b);
}

static void test_web_hostile_text_is_escaped(void **state)
{
    struct fx *f = *state;
    const char *pages[] = {"/", "/trial/" EVIL};
    for (size_t i = 0; i < 2; i++) {
        char *b = render(f, pages[i], 200);
        assert_lacks(b, "<script");
        assert_lacks(b, "</td></table> ");
        assert_has(b, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; "
                      "&quot;quoted&quot; &#39;single&#39;");
        free(b);
    }
}

static void test_web_trial_page_shows_timeline_chart_and_findings(void **state)
{
    struct fx *f = *state;
    char *b = render(f, "/trial/" TRIAL, 200);
    assert_has(b, "<h1>" TRIAL ": Dupilumab and Vaccine Responses</h1>");
    assert_has(b, "<h3>Version 1 (registered)</h3>");
    assert_has(b, "Tetanus toxoid response at week 16");
    assert_has(b, "Ethics decisions (2)");
    assert_has(b, "<h3>Version 2 (amendment)</h3>");
    assert_has(b, "Adds a follow-up visit at week 24");
    assert_has(b, "approve version 1");
    assert_has(b, "Site authorizations (2)");
    assert_has(b, "Datasets (1)");
    assert_has(b, "DS-1: 4096 bytes, 2 records, 2 participants");
    assert_has(b, "Access grants (1)");
    assert_has(b, "Access events (1)");
    assert_has(b, "Consent records (6)");
    /* the chart: one line per site, final counts as the registry's */
    assert_has(b, "<svg viewBox=");
    assert_int_equal(count(b, "stroke-opacity=\"0.85\""), 2);
    assert_has(b, "site-a: 2 active");
    assert_has(b, "site-b: 2 active");
    /* rejected attempt, with its reason, linked */
    assert_has(b, "Rejected attempts (1)");
    assert_has(b, "site-not-authorized");
    char hex[65], link[80];
    lg_hex(f->rejected_id, 32, hex);
    snprintf(link, sizeof(link), "/tx/%s", hex);
    assert_has(b, link);
    /* findings highlighted, linked to the tx that proves them */
    assert_has(b, "<h2 id=findings>");
    assert_has(b, "<div class=\"finding high\"");
    assert_has(b, "<code>outcome-switched</code>");
    assert_has(b, "<code>rejected-attempts</code>");
    lg_hex(f->results_id, 32, hex);
    snprintf(link, sizeof(link), "href=\"/tx/%s\"", hex);
    assert_true(count(b, link) >= 2); /* in the finding and the results */
    assert_has(b, "&#9873; outcome-switched");
    assert_has(b, "audit.csv\">CSV</a>");
    free(b);
}

static void test_web_trial_page_without_audit_hook(void **state)
{
    struct fx *f = *state;
    f->ctx.audit_run = NULL;
    char *b = render(f, "/trial/" TRIAL, 200);
    assert_has(b, "The audit is not available on this node.");
    assert_lacks(b, "class=\"finding");
    free(b);
    b = render(f, "/", 200);
    assert_has(b, "n/a");
    free(b);
    f->ctx.audit_run = audit_trial;
}

static void test_web_block_page_checks_certificate(void **state)
{
    struct fx *f = *state;
    char *b = render(f, "/block/3", 200);
    assert_has(b, "<h1>Block 3</h1>");
    assert_has(b, "Certificate verified: 3 of 4 replica signatures, "
                  "quorum 3");
    assert_has(b, "Signed by node0, node1, node2; checked here");
    assert_has(b, "Transactions (5)");
    assert_has(b, "site-not-authorized");
    assert_has(b, "<a href=\"/block/2\">block 2</a>");
    free(b);
    b = render(f, "/block/4", 200);
    assert_has(b, "Certificate verified: 4 of 4 replica signatures");
    free(b);
    b = render(f, "/block/10", 200);
    assert_has(b, "Not certified yet");
    assert_has(b, "An empty block.");
    free(b);
}

static void test_web_block_page_reports_bad_certificate(void **state)
{
    struct fx *f = *state;
    /* below quorum: stored (the node trusts its core) but refused here */
    q_consent(f, SITE_B, 6, false, NULL);
    commit(f, 2);
    char *b = render(f, "/block/11", 200);
    assert_has(b, "Certificate DOES NOT VERIFY");
    assert_has(b, "quorum");
    free(b);
}

static void test_web_tx_page_decodes_and_checks_receipt(void **state)
{
    struct fx *f = *state;
    char hex[65], path[80], ps[65];
    lg_hex(f->consent_id, 32, hex);
    snprintf(path, sizeof(path), "/tx/%s", hex);
    char *b = render(f, path, 200);
    assert_has(b, "Receipt verified: transaction 0 of block 3");
    assert_has(b, "Certificate verified: 3 of 4 replica signatures");
    assert_has(b, "<h2>consent</h2>");
    uint8_t p[32];
    pseud(1, p);
    lg_hex(p, 32, ps);
    assert_has(b, ps);
    assert_has(b, "PARTICIPATION, GRU");
    assert_has(b, "site-a (site, Org &lt;1&gt; &amp; Co)");
    assert_has(b, "<span class=ok>accepted</span>");
    free(b);
    lg_hex(f->rejected_id, 32, hex);
    snprintf(path, sizeof(path), "/tx/%s", hex);
    b = render(f, path, 200);
    assert_has(b, "<span class=bad>rejected</span> <code>site-not-authorized");
    free(b);
    lg_hex(f->grant_id, 32, hex);
    snprintf(path, sizeof(path), "/tx/%s", hex);
    b = render(f, path, 200);
    assert_has(b, "<h2>access-grant</h2>");
    assert_has(b, "0 bytes, readable by the grantee only");
    free(b);
}

/* Bytes that are no transaction, ordered anyway (a test can; the daemon's
 * core refuses them): the pages say so instead of failing. */
static void test_web_undecodable_tx_is_shown_as_such(void **state)
{
    struct fx *f = *state;
    static uint8_t junk[] = {0xff, 0x01, '<', 's', 'c', 'r', 'i', 'p', 't'};
    assert_true(f->n_pending == 0);
    f->pending[0] = malloc(sizeof(junk));
    assert_non_null(f->pending[0]);
    memcpy(f->pending[0], junk, sizeof(junk));
    f->pending_len[0] = sizeof(junk);
    f->pending_signer[0] = SPONSOR;
    f->n_pending = 1;
    commit(f, 3);
    char *b = render(f, "/block/11", 200);
    assert_has(b, "Certificate verified: 3 of 4");
    assert_has(b, "<td>undecodable</td>");
    free(b);
    uint8_t id[32];
    char hex[65], path[80];
    tx_id(junk, sizeof(junk), id);
    lg_hex(id, 32, hex);
    snprintf(path, sizeof(path), "/tx/%s", hex);
    b = render(f, path, 200);
    assert_has(b, "The stored bytes do not decode.");
    assert_lacks(b, "<script");
    free(b);
}

static void test_web_csv_export_is_rfc4180(void **state)
{
    struct fx *f = *state;
    struct web_page p;
    assert_int_equal(web_render(&f->ctx, "/trial/" TRIAL "/audit.csv", "", &p),
                     LG_OK);
    assert_int_equal(p.status, 200);
    assert_string_equal(p.content_type,
                        "text/csv; charset=utf-8; header=present");
    const char *hdr = "height,time,log_index,tx_id,type,signer,status,"
                      "reason,message\r\n";
    assert_true(strncmp(p.body, hdr, strlen(hdr)) == 0);
    /* register, ethics, 2 sites, 5 consents + withdrawal + 1, dataset,
     * amendment, ethics, grant, event, results */
    assert_int_equal(count(p.body, "\r\n"), 1 + 17);
    assert_has(p.body, ",consent,site-c,rejected,site-not-authorized,");
    assert_has(p.body, "site-not-authorized,site-c is not an authorized "
                       "site of trial " TRIAL ".\r\n");
    web_page_free(&p);

    struct wbuf b = {0};
    wb_csv(&b, "plain");
    wb_put(&b, "|", 1);
    wb_csv(&b, "a \"quoted\", word");
    wb_put(&b, "|", 1);
    wb_csv(&b, "two\r\nlines");
    assert_string_equal(b.p, "plain|\"a \"\"quoted\"\", word\"|\"two\r\n"
                             "lines\"");
    free(b.p);
}

static void test_web_json_export_parses(void **state)
{
    struct fx *f = *state;
    char *b = render(f, "/trial/" TRIAL "/audit.json", 200);
    json_error_t err;
    json_t *o = json_loads(b, 0, &err);
    if (o == NULL)
        fail_msg("json: %s", err.text);
    assert_string_equal(json_string_value(json_object_get(o, "trial_id")),
                        TRIAL);
    json_t *e = json_object_get(o, "entries");
    assert_int_equal(json_array_size(e), 17);
    assert_int_equal(json_integer_value(json_object_get(o, "entries_total")),
                     17);
    json_t *first = json_array_get(e, 0);
    assert_string_equal(json_string_value(json_object_get(first, "type")),
                        "protocol-register");
    assert_string_equal(json_string_value(json_object_get(first, "time")),
                        "2027-01-16T08:00:00Z");
    assert_int_equal(strlen(json_string_value(json_object_get(first, "tx_id"))),
                     64);
    json_decref(o);
    free(b);
}

static void test_web_bad_input_gives_400_and_unknown_404(void **state)
{
    struct fx *f = *state;
    char longp[WEB_PATH_MAX + 40];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    static const struct {
        const char *path;
        uint16_t status;
    } cases[] = {
        {"/tx/zz", 400},
        {"/tx/0123", 400},
        {"/tx/"
         "zz00000000000000000000000000000000000000000000000000000000000000",
         400},
        {"/tx/"
         "0000000000000000000000000000000000000000000000000000000000000000",
         404},
        {"/block/abc", 400},
        {"/block/", 400},
        {"/block/-1", 400},
        {"/block/99999999999999999999", 400},
        {"/block/0", 404},
        {"/block/999", 404},
        {"/trial/<script>", 400},
        {"/trial/", 400},
        {"/trial/%ZZ", 400},
        {"/trial/A%00B", 400},
        {"/trial/A%2fB", 400},
        {"/trial/NCT99999999", 404},
        {"/trial/NCT99999999/audit.csv", 404},
        {"/trial/" TRIAL "/other", 404},
        {"/trial/" TRIAL "%2Faudit.csv", 400},
        {"/nope", 404},
        {"nope", 400},
        {"", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *b = render(f, cases[i].path, cases[i].status);
        assert_has(b, "</html>");
        assert_lacks(b, "<script");
        free(b);
    }
    free(render(f, longp, 400));
    struct web_page p;
    assert_int_equal(web_render(&f->ctx, NULL, NULL, &p), LG_OK);
    assert_int_equal(p.status, 400);
    web_page_free(&p);
    web_page_free(NULL);
}

static void test_web_random_paths_never_crash(void **state)
{
    struct fx *f = *state;
    static const char *const prefixes[] = {"/", "/trial/", "/block/", "/tx/",
                                           "/trial/" TRIAL "/"};
    char path[WEB_PATH_MAX + 64];
    uint32_t seed = 12345;
    for (int i = 0; i < 400; i++) {
        const char *pre = prefixes[i % 5];
        size_t n = strlen(pre);
        memcpy(path, pre, n);
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % (i % 50 == 0 ? 560 : 80);
        for (size_t k = 0; k < len && n < sizeof(path) - 1; k++) {
            seed = seed * 1103515245u + 12345u;
            char c = (char)(1 + (seed >> 16) % 255);
            path[n++] = c;
        }
        path[n] = '\0';
        struct web_page p;
        assert_int_equal(web_render(&f->ctx, path, "page=x&y", &p), LG_OK);
        assert_true(p.status == 200 || p.status == 400 || p.status == 404);
        web_page_free(&p);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 2000 more consents (100 per block, two sites): the trial page, status
 * page and exports stay quick, since the daemon renders under its ledger
 * lock. Prints the times (bounded loosely: sanitizer builds are slow). */
static void test_web_large_trial_renders_quickly(void **state)
{
    struct fx *f = *state;
    for (int blk = 0; blk < 20; blk++) {
        for (int i = 0; i < 100; i++)
            q_consent(f, i % 2 ? SITE_A : SITE_B, 100 + blk * 100 + i, false,
                      NULL);
        commit(f, 3);
    }
    static const char *const paths[] = {"/trial/" TRIAL, "/",
                                        "/trial/" TRIAL "/audit.csv",
                                        "/trial/" TRIAL "/audit.json"};
    for (size_t i = 0; i < 4; i++) {
        double t0 = now_ms();
        char *b = render(f, paths[i], 200);
        double ms = now_ms() - t0;
        printf("render %-32s %8.1f ms %8zu bytes (2017 entries)\n", paths[i],
               ms, strlen(b));
        if (i == 0) {
            assert_has(b, "site-a: 1002 active");
            assert_has(b, "site-b: 1002 active");
            assert_has(b, "Consent records (2006)");
            assert_has(b, "1806 more in the");
        }
        assert_true(ms < 20000.0);
        free(b);
    }
}

/* With TEST_WEB_DUMP=dir, writes the pages there for tests/web/web_pages.sh to
 * load in a browser; skipped otherwise. */
static void test_web_dump_pages_for_browser(void **state)
{
    struct fx *f = *state;
    const char *dir = getenv("TEST_WEB_DUMP");
    if (dir == NULL || dir[0] == '\0')
        skip();
    char tx[80], hex[65];
    lg_hex(f->consent_id, 32, hex);
    snprintf(tx, sizeof(tx), "/tx/%s", hex);
    const struct {
        const char *file, *path;
    } pages[] = {{"status.html", "/"},
                 {"trial.html", "/trial/" TRIAL},
                 {"evil.html", "/trial/" EVIL},
                 {"block.html", "/block/3"},
                 {"tx.html", tx},
                 {"audit.csv", "/trial/" TRIAL "/audit.csv"},
                 {"notfound.html", "/trial/NCT404"}};
    for (size_t i = 0; i < sizeof(pages) / sizeof(*pages); i++) {
        struct web_page p;
        assert_int_equal(web_render(&f->ctx, pages[i].path, NULL, &p), LG_OK);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, pages[i].file);
        FILE *out = fopen(path, "wb");
        assert_non_null(out);
        assert_int_equal(fwrite(p.body, 1, p.len, out), p.len);
        assert_int_equal(fclose(out), 0);
        web_page_free(&p);
    }
}

/* ---- over HTTP ------------------------------------------------------------
 */

static void dummy_handle(nng_aio *aio)
{
    nng_http_res *res = NULL;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    (void)nng_http_res_copy_data(res, "ok\n", 3);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static uint16_t http_get(const char *base, const char *path, char *body,
                         size_t cap)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    nng_url *u = NULL;
    nng_http_client *c = NULL;
    nng_http_req *req = NULL;
    nng_http_res *res = NULL;
    nng_aio *aio = NULL;
    assert_int_equal(nng_url_parse(&u, url), 0);
    assert_int_equal(nng_http_client_alloc(&c, u), 0);
    assert_int_equal(nng_http_req_alloc(&req, u), 0);
    assert_int_equal(nng_http_res_alloc(&res), 0);
    assert_int_equal(nng_aio_alloc(&aio, NULL, NULL), 0);
    nng_aio_set_timeout(aio, 5000);
    nng_http_client_transact(c, req, res, aio);
    nng_aio_wait(aio);
    assert_int_equal(nng_aio_result(aio), 0);
    uint16_t status = nng_http_res_get_status(res);
    void *data;
    size_t len;
    nng_http_res_get_data(res, &data, &len);
    snprintf(body, cap, "%.*s", (int)len, (const char *)data);
    const char *csp = nng_http_res_get_header(res, "Content-Security-Policy");
    /* the web view's pages, not the daemon's own, carry the policy */
    if (strcmp(path, "/healthz") != 0) {
        assert_non_null(csp);
        assert_non_null(strstr(csp, "default-src 'none'"));
    }
    nng_aio_free(aio);
    nng_http_res_free(res);
    nng_http_req_free(req);
    nng_http_client_free(c);
    nng_url_free(u);
    return status;
}

static void test_web_register_serves_pages_over_http(void **state)
{
    struct fx *f = *state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    f->ctx.lock = &mu;
    nng_url *u = NULL;
    nng_http_server *srv = NULL;
    nng_http_handler *h = NULL;
    assert_int_equal(nng_url_parse(&u, "http://127.0.0.1:0"), 0);
    assert_int_equal(nng_http_server_hold(&srv, u), 0);
    /* the daemon's own paths stay its own */
    assert_int_equal(nng_http_handler_alloc(&h, "/healthz", dummy_handle), 0);
    assert_int_equal(nng_http_server_add_handler(srv, h), 0);
    assert_int_equal(web_register(srv, &f->ctx), LG_OK);
    assert_int_equal(nng_http_server_start(srv), 0);
    nng_sockaddr sa;
    assert_int_equal(nng_http_server_get_addr(srv, &sa), 0);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u",
             (unsigned)ntohs(sa.s_in.sa_port));
    char *body = malloc(1 << 20);
    assert_non_null(body);
    assert_int_equal(http_get(base, "/", body, 1 << 20), 200);
    assert_has(body, "Consortium status");
    assert_int_equal(http_get(base, "/?page=1", body, 1 << 20), 200);
    assert_has(body, "Trials (2)");
    assert_int_equal(http_get(base, "/trial/" TRIAL "?x=1", body, 1 << 20),
                     200);
    assert_has(body, "Consents per site");
    assert_int_equal(http_get(base, "/block/1", body, 1 << 20), 200);
    assert_int_equal(http_get(base, "/tx/zz", body, 1 << 20), 400);
    assert_int_equal(http_get(base, "/trial/NCT1", body, 1 << 20), 404);
    assert_int_equal(http_get(base, "/healthz", body, 1 << 20), 200);
    assert_string_equal(body, "ok\n");
    free(body);
    nng_http_server_stop(srv);
    nng_http_server_release(srv);
    nng_url_free(u);
    f->ctx.lock = NULL;
    pthread_mutex_destroy(&mu);
}

/* A replica added by governance: the status page shows the set in force,
 * blocks after the change are checked against the new set (and refused
 * when the old set signed them), and the change block shows the new set. */
static void test_web_pages_follow_replica_change(void **state)
{
    struct fx *f = *state;
    uint8_t sk[5][64], pk[32], seed[32], hash[32], chain[32], id[32];
    char hex[65], path[80];
    memcpy(sk, f->replica_sk, sizeof(f->replica_sk));
    memset(seed, 0x24, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk[4], seed);

    Tc__GovernanceProposal gp = TC__GOVERNANCE_PROPOSAL__INIT;
    gp.proposal_id = (char *)"add-node4";
    gp.action = TC__GOV_ACTION__GOV_REPLICA_ADD;
    gp.name = (char *)"node4";
    gp.public_key = (ProtobufCBinaryData){32, pk};
    gp.peer_url = (char *)"tcp://127.0.0.1:27004";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_PROPOSAL;
    tx.governance_proposal = &gp;
    queue(f, SPONSOR, &tx, NULL);
    commit(f, 3); /* block 11, certified by the genesis set */
    q_consent(f, SITE_B, 7, false, id);
    commit(f, 0); /* block 12: the 5 certify it under the epoch chain id */
    assert_int_equal(ledger_block_hash(f->l, 12, hash), LG_OK);
    gov_epoch_chain_id(f->g->chain_id, 11, chain);
    struct pbft_vote votes[5];
    struct pbft_checkpoint_cert c = {.seq = 12, .n_votes = 4, .votes = votes};
    memcpy(c.digest, hash, 32);
    for (uint32_t i = 0; i < 4; i++) {
        uint8_t st[PBFT_VOTE_STATEMENT_MAX];
        memset(&votes[i], 0, sizeof(votes[i]));
        votes[i].replica = i + 1;
        votes[i].seq = 12;
        memcpy(votes[i].digest, hash, 32);
        size_t sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, chain, &votes[i],
                                        st, sizeof(st));
        crypto_sign_raw(sk[i + 1], st, sl, votes[i].sig);
    }
    assert_int_equal(ledger_put_cert(f->l, &c), LG_OK);
    q_consent(f, SITE_B, 8, false, NULL);
    commit(f, 3); /* block 13: signed by the old set only */

    char *b = render(f, "/", 200);
    assert_has(b, "Nodes (5, quorum 4)");
    assert_has(b, "<td>node4</td>");
    assert_has(b, "in force since <a href=\"/block/11\">block 11</a>");
    free(b);
    b = render(f, "/block/11", 200);
    assert_has(b, "New replica set");
    assert_has(b, "5 replicas (quorum 4) certify the blocks after this one");
    assert_has(b, "Certificate verified: 3 of 4 replica signatures");
    free(b);
    b = render(f, "/block/12", 200);
    assert_has(b, "Certificate verified: 4 of 5 replica signatures, quorum 4");
    assert_has(b, "Signed by node1, node2, node3, node4; checked here against "
                  "the replica set in force since");
    free(b);
    b = render(f, "/block/13", 200);
    assert_has(b, "Certificate DOES NOT VERIFY");
    free(b);
    lg_hex(id, 32, hex);
    snprintf(path, sizeof(path), "/tx/%s", hex);
    b = render(f, path, 200);
    assert_has(b, "Receipt verified: transaction 0 of block 12");
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_web_status_lists_nodes_members_and_trials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_hostile_text_is_escaped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_web_trial_page_shows_timeline_chart_and_findings, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_web_trial_page_without_audit_hook,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_block_page_checks_certificate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_web_block_page_reports_bad_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_web_tx_page_decodes_and_checks_receipt, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_web_undecodable_tx_is_shown_as_such, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_csv_export_is_rfc4180, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_web_json_export_parses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_web_bad_input_gives_400_and_unknown_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_random_paths_never_crash,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_web_register_serves_pages_over_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_large_trial_renders_quickly,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_pages_follow_replica_change,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_dump_pages_for_browser, setup,
                                        teardown),
    };
    int failed = cmocka_run_group_tests_name("web", tests, NULL, NULL);
    /* Every socket is closed: let NNG reap what it still holds, so the
     * leak check at exit does not race its reaper thread. */
    nng_fini();
    return failed;
}
