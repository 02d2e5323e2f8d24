/*
 * test_registry.c - the registry's rules, each both ways (allowed and
 * refused with its reason code), nonces and clocks, a realistic flow with
 * queries, and determinism: stores that execute the same transactions end
 * with byte-identical "r/" and "x/" ranges.
 *
 * Each test gets a real LevelDB store in a mkdtemp directory and a genesis
 * generated here with members sponsor, sponsor-2, site-a, site-b, ethics
 * and auditor (fixed seeds, so runs are reproducible).
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "duo.h"
#include "genesis.h"
#include "registry.h"
#include "registry_int.h"
#include "store.h"
#include "tx.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SPONSOR, SPONSOR2, SITE_A, SITE_B, ETHICS, AUDITOR, OUTSIDER, N_KEYS };

static const char *const member_names[N_KEYS] = {
    "sponsor", "sponsor-2", "site-a",  "site-b",
    "ethics",  "auditor",   "outsider"};
static const char *const member_roles[N_KEYS] = {
    "sponsor", "sponsor", "site", "site", "ethics_board", "auditor", "site"};

#define T0_MS   1800000000000ull /* 2027-01-15 */
#define TRIAL   "NCT02210780"
#define LOG_MAX 20000
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
    uint64_t nonce[N_KEYS];
    uint64_t height, log_index, time_ms;
    struct store_txn *block; /* open multi-tx block, or NULL */
    uint8_t last_id[32];
    /* overrides for the next tx only */
    bool set_nonce, set_time;
    uint64_t next_nonce, next_time;
    struct logged_tx *log;
    size_t n_log;
};

/* ---- fixture --------------------------------------------------------------
 */

static void make_key(struct keyfile *k, int i, const char *name,
                     const char *role)
{
    uint8_t seed[32];
    memset(seed, 0x40 + i, sizeof(seed));
    memset(k, 0, sizeof(*k));
    k->secret_key = sodium_malloc(64);
    assert_non_null(k->secret_key);
    crypto_sign_seed_keypair(k->public_key, k->secret_key, seed);
    snprintf(k->kind, sizeof(k->kind), "member");
    snprintf(k->name, sizeof(k->name), "%s", name);
    assert_int_equal(role_parse(role, &k->role), LG_OK);
}

static char *genesis_json(struct fx *f)
{
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"chain_name\":\"registry-test\",\"created\":"
                          "\"2026-11-21T00:00:00Z\",\"replicas\":[");
    for (int i = 0; i < 4; i++) {
        uint8_t pk[32], sk[64], seed[32];
        char hex[65];
        memset(seed, 0x10 + i, sizeof(seed));
        crypto_sign_seed_keypair(pk, sk, seed);
        lg_hex(pk, 32, hex);
        n += (size_t)snprintf(s + n, cap - n,
                              "%s{\"id\":%d,\"name\":\"node%d\",\"public_key\":"
                              "\"%s\",\"peer_url\":\"tcp://127.0.0.1:%d\"}",
                              i ? "," : "", i, i, hex, 27000 + i);
    }
    n += (size_t)snprintf(s + n, cap - n, "],\"members\":[");
    for (int i = 0; i < OUTSIDER; i++) {
        char hex[65];
        lg_hex(f->keys[i].public_key, 32, hex);
        n += (size_t)snprintf(s + n, cap - n,
                              "%s{\"name\":\"%s\",\"role\":\"%s\","
                              "\"organisation\":\"Org %d\",\"public_key\":"
                              "\"%s\"}",
                              i ? "," : "", member_names[i], member_roles[i], i,
                              hex);
    }
    n += (size_t)snprintf(s + n, cap - n, "]}");
    assert_true(n < cap);
    return s;
}

static int fx_setup(void **state)
{
    assert_true(sodium_init() >= 0);
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    for (int i = 0; i < N_KEYS; i++)
        make_key(&f->keys[i], i, member_names[i], member_roles[i]);
    char *json = genesis_json(f);
    f->g = calloc(1, sizeof(*f->g));
    assert_non_null(f->g);
    char err[256];
    int rv = genesis_parse((const unsigned char *)json, strlen(json), f->g, err,
                           sizeof(err));
    if (rv != LG_OK)
        fail_msg("genesis: %s", err);
    free(json);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_registry.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, true, &f->st, err, sizeof(err)), LG_OK);
    assert_int_equal(registry_new(f->g, &f->reg), LG_OK);
    f->time_ms = T0_MS;
    f->log = calloc(LOG_MAX, sizeof(*f->log));
    assert_non_null(f->log);
    *state = f;
    return 0;
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
    free(f->log);
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

/* Executes signed bytes as the next tx (in the open block, or in a block
 * of its own) and logs it for the determinism test. */
static struct tx_result exec_bytes(struct fx *f, uint8_t *bytes, size_t len)
{
    bool own = f->block == NULL;
    if (own)
        begin_block(f);
    struct tx_place at = {.height = f->height,
                          .block_time_ms = f->time_ms,
                          .log_index = f->log_index++};
    tx_id(bytes, len, at.tx_id);
    memcpy(f->last_id, at.tx_id, 32);
    struct tx_result res;
    assert_int_equal(registry_execute(f->reg, f->block, &at, bytes, len, &res),
                     LG_OK);
    if (own)
        end_block(f);
    assert_true(f->n_log < LOG_MAX);
    f->log[f->n_log++] = (struct logged_tx){bytes, len, at};
    return res;
}

/* Signs tx as member m with its next nonce and the block's time (unless
 * overridden) and executes it. */
static struct tx_result run(struct fx *f, int m, Tc__Tx *tx)
{
    tx->chain_id.data = f->g->chain_id;
    tx->chain_id.len = 32;
    tx->signer.data = f->keys[m].public_key;
    tx->signer.len = 32;
    tx->nonce = f->set_nonce ? f->next_nonce : ++f->nonce[m];
    if (tx->nonce > f->nonce[m])
        f->nonce[m] = tx->nonce;
    tx->client_time_ms = f->set_time ? f->next_time : f->time_ms;
    f->set_nonce = f->set_time = false;
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(tx_sign(tx, &f->keys[m], &bytes, &len), LG_OK);
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

/* ---- transaction builders -------------------------------------------------
 */

static uint8_t hash_a[32] = {0xa1, 0xa2, 0xa3};
static uint8_t hash_b[32] = {0xb1, 0xb2, 0xb3};

static ProtobufCBinaryData bin(const uint8_t *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

/* Outcomes of NCT02210780 (Regeneron, dupilumab and vaccine responses). */
static Tc__Outcome outcomes_v1[4];
static Tc__Outcome *outcomes_v1_ptr[4];

static void init_outcomes(void)
{
    static const struct {
        const char *id, *measure, *time_frame;
        Tc__OutcomeType type;
    } src[4] = {
        {"P1",
         "Percentage of Participants With a Positive Response (>=4-Fold "
         "Increase) to Tetanus Toxoid (the Adacel [Tdap] Vaccine) at Week 16",
         "Week 16", TC__OUTCOME_TYPE__OUTCOME_PRIMARY},
        {"S1",
         "Percentage of Participants With a Positive Response (SBA Antibody "
         "Titer of >=8 for Serogroup C) to Menomune Vaccine at Week 16",
         "Week 16", TC__OUTCOME_TYPE__OUTCOME_SECONDARY},
        {"S2",
         "Percentage of Participants Achieving an Eczema Area and Severity "
         "Index-75 (EASI-75) (>=75% Improvement From Baseline) at Week 16",
         "Week 16", TC__OUTCOME_TYPE__OUTCOME_SECONDARY},
        {"S3",
         "Change From Baseline in Peak Weekly Averaged Pruritis Numerical "
         "Rating Scale (NRS) Scores at Week 16",
         "Baseline to Week 16", TC__OUTCOME_TYPE__OUTCOME_SECONDARY},
    };
    for (int i = 0; i < 4; i++) {
        tc__outcome__init(&outcomes_v1[i]);
        outcomes_v1[i].id = (char *)src[i].id;
        outcomes_v1[i].measure = (char *)src[i].measure;
        outcomes_v1[i].time_frame = (char *)src[i].time_frame;
        outcomes_v1[i].type = src[i].type;
        outcomes_v1_ptr[i] = &outcomes_v1[i];
    }
}

static void reg_body(Tc__ProtocolRegister *p, const char *trial)
{
    tc__protocol_register__init(p);
    p->trial_id = (char *)trial;
    p->brief_title = (char *)"Study of Dupilumab and Immune Responses in "
                             "Adults With Atopic Dermatitis (AD)";
    p->official_title = (char *)"A Randomized, Double-Blind, "
                                "Placebo-Controlled, Study Investigating "
                                "Vaccine Responses";
    p->sponsor_name = (char *)"Regeneron Pharmaceuticals";
    p->phase = (char *)"PHASE2";
    p->study_type = (char *)"INTERVENTIONAL";
    p->enrollment = 194;
    p->start_date = (char *)"2014-08";
    p->primary_completion_date = (char *)"2015-09-15";
    p->primary_completion_actual = true;
    p->protocol_doc_hash = bin(hash_a, 32);
    p->source = (char *)"ctgov";
    p->registry_first_submitted = (char *)"2014-08-05";
    p->n_outcomes = 4;
    p->outcomes = outcomes_v1_ptr;
}

static struct tx_result do_register_body(struct fx *f, int m,
                                         Tc__ProtocolRegister *p)
{
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = p;
    return run(f, m, &tx);
}

static struct tx_result do_register(struct fx *f, int m, const char *trial)
{
    Tc__ProtocolRegister p;
    reg_body(&p, trial);
    return do_register_body(f, m, &p);
}

static struct tx_result do_amend(struct fx *f, int m, const char *trial,
                                 uint32_t version, const uint8_t *prev,
                                 const char *reason)
{
    Tc__ProtocolAmend a = TC__PROTOCOL_AMEND__INIT;
    a.trial_id = (char *)trial;
    a.version = version;
    a.prev_version_hash = bin(prev, prev ? 32 : 0);
    a.reason = (char *)reason;
    a.n_outcomes = 3; /* drops S3 */
    a.outcomes = outcomes_v1_ptr;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_AMEND;
    tx.protocol_amend = &a;
    return run(f, m, &tx);
}

static struct tx_result do_ethics(struct fx *f, int m, const char *trial,
                                  uint32_t version, Tc__EthicsAction action)
{
    Tc__EthicsDecision d = TC__ETHICS_DECISION__INIT;
    d.trial_id = (char *)trial;
    d.version = version;
    d.action = action;
    d.note = (char *)"Reviewed at the November board meeting.";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ETHICS;
    tx.ethics = &d;
    return run(f, m, &tx);
}

#define APPROVE   TC__ETHICS_ACTION__ETHICS_APPROVE
#define SUSPEND   TC__ETHICS_ACTION__ETHICS_SUSPEND
#define TERMINATE TC__ETHICS_ACTION__ETHICS_TERMINATE

static struct tx_result do_site(struct fx *f, int m, const char *trial,
                                const char *site, bool revoke)
{
    Tc__SiteAuthorize s = TC__SITE_AUTHORIZE__INIT;
    s.trial_id = (char *)trial;
    s.site = (char *)site;
    s.revoke = revoke;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_SITE_AUTHORIZE;
    tx.site_authorize = &s;
    return run(f, m, &tx);
}

static void pseud(int i, uint8_t out[32])
{
    static const uint8_t secret[32] = {7, 7, 7};
    char local[32];
    snprintf(local, sizeof(local), "P%05d", i);
    tx_pseudonym(secret, TRIAL, local, out);
}

#define RECORD   TC__CONSENT_ACTION__CONSENT_RECORD
#define WITHDRAW TC__CONSENT_ACTION__CONSENT_WITHDRAW

/* scopes: a space-separated list ("" for none). */
static struct tx_result do_consent_p(struct fx *f, int m, const char *trial,
                                     const uint8_t *p, size_t plen,
                                     uint32_t version, Tc__ConsentAction act,
                                     const char *scopes)
{
    char buf[256];
    char *list[40];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", scopes);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save);
         tok != NULL && n < 40; tok = strtok_r(NULL, " ", &save))
        list[n++] = tok;
    Tc__Consent c = TC__CONSENT__INIT;
    c.trial_id = (char *)trial;
    c.pseudonym = bin(p, plen);
    c.protocol_version = version;
    c.consent_form_hash = bin(hash_b, 32);
    c.action = act;
    c.n_scopes = n;
    c.scopes = list;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_CONSENT;
    tx.consent = &c;
    return run(f, m, &tx);
}

static struct tx_result do_consent(struct fx *f, int m, int who,
                                   uint32_t version, Tc__ConsentAction act,
                                   const char *scopes)
{
    uint8_t p[32];
    pseud(who, p);
    return do_consent_p(f, m, TRIAL, p, 32, version, act, scopes);
}

static struct tx_result do_dataset(struct fx *f, int m, const char *id,
                                   const char *trial, const int *who, size_t n)
{
    uint8_t ps[16][32];
    ProtobufCBinaryData parts[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        pseud(who[i], ps[i]);
        parts[i] = bin(ps[i], 32);
    }
    Tc__DatasetRegister d = TC__DATASET_REGISTER__INIT;
    d.dataset_id = (char *)id;
    d.trial_id = (char *)trial;
    d.sha256 = bin(hash_a, 32);
    d.size_bytes = 123456;
    d.record_count = n;
    d.anonymization = (char *)"k-anonymity k=5, dates shifted";
    d.n_participants = n;
    d.participants = parts;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_DATASET_REGISTER;
    tx.dataset_register = &d;
    return run(f, m, &tx);
}

static struct tx_result do_grant(struct fx *f, int m, const char *dataset,
                                 const char *grantee, const char *purpose,
                                 uint64_t expires_ms)
{
    Tc__AccessGrant g = TC__ACCESS_GRANT__INIT;
    g.dataset_id = (char *)dataset;
    g.grantee = (char *)grantee;
    g.purpose = (char *)purpose;
    g.expires_ms = expires_ms;
    g.ciphertext_sha256 = bin(hash_b, 32);
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ACCESS_GRANT;
    tx.access_grant = &g;
    return run(f, m, &tx);
}

static struct tx_result do_revoke(struct fx *f, int m, const uint8_t *grant)
{
    Tc__AccessRevoke a = TC__ACCESS_REVOKE__INIT;
    a.grant_tx = bin(grant, 32);
    a.reason = (char *)"Project ended.";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ACCESS_REVOKE;
    tx.access_revoke = &a;
    return run(f, m, &tx);
}

static struct tx_result do_event(struct fx *f, int m, const uint8_t *grant,
                                 const char *purpose, const uint8_t *file)
{
    Tc__AccessEvent a = TC__ACCESS_EVENT__INIT;
    a.grant_tx = bin(grant, 32);
    a.purpose = (char *)purpose;
    a.file_sha256 = bin(file, file ? 32 : 0);
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ACCESS_EVENT;
    tx.access_event = &a;
    return run(f, m, &tx);
}

/* Reports outcome ids ("-" prefix: marked not pre-specified). */
static struct tx_result do_results(struct fx *f, int m, const char *trial,
                                   const char *const *ids, size_t n,
                                   const char *dataset)
{
    Tc__ReportedOutcome ro[8];
    Tc__ReportedOutcome *rp[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        tc__reported_outcome__init(&ro[i]);
        bool nps = ids[i][0] == '-';
        ro[i].outcome_id = (char *)(nps ? ids[i] + 1 : ids[i]);
        ro[i].not_prespecified = nps;
        ro[i].type = TC__OUTCOME_TYPE__OUTCOME_SECONDARY;
        ro[i].measure = (char *)"Percentage of participants with a response";
        ro[i].time_frame = (char *)"Week 16";
        rp[i] = &ro[i];
    }
    char *used[1] = {(char *)dataset};
    Tc__ResultsRegister r = TC__RESULTS_REGISTER__INIT;
    r.trial_id = (char *)trial;
    r.results_doc_hash = bin(hash_a, 32);
    r.actual_primary_completion_date = (char *)"2015-09-15";
    r.n_outcomes = n;
    r.outcomes = rp;
    r.n_datasets_used = dataset ? 1 : 0;
    r.datasets_used = used;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_RESULTS_REGISTER;
    tx.results_register = &r;
    return run(f, m, &tx);
}

static struct tx_result do_attest(struct fx *f, int m, const char *trial,
                                  uint64_t height)
{
    Tc__AuditAttestation a = TC__AUDIT_ATTESTATION__INIT;
    a.trial_id = (char *)trial;
    a.height = height;
    a.report_sha256 = bin(hash_b, 32);
    a.n_findings = 1;
    a.summary = (char *)"One outcome switched without declaration.";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ATTESTATION;
    tx.attestation = &a;
    return run(f, m, &tx);
}

/* register -> approve v1 -> authorize site-a */
static void setup_trial(struct fx *f)
{
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", false));
}

/* ... plus consents of participants 1..n at site-a with the given scopes */
static void setup_consents(struct fx *f, int n, const char *scopes)
{
    setup_trial(f);
    for (int i = 1; i <= n; i++)
        assert_accepted(do_consent(f, SITE_A, i, 1, RECORD, scopes));
}

static void summary(struct fx *f, Tc__TrialSummary *s)
{
    assert_int_equal(registry_trial_summary(f->reg, f->st, TRIAL, s), LG_OK);
}

/* ---- DUO and personal data ------------------------------------------------
 */

static bool covers(const char *scopes, const char *purpose)
{
    char buf[256];
    const char *list[16];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", scopes);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save);
         tok != NULL && n < 16; tok = strtok_r(NULL, " ", &save))
        list[n++] = tok;
    struct duo_purpose p;
    assert_true(duo_purpose_parse(purpose, &p));
    return duo_covers(list, n, &p);
}

static void test_registry_duo_table_and_coverage(void **state)
{
    (void)state;
    assert_int_equal(duo_term_count(), 25);
    assert_string_equal(duo_lookup("GRU")->id, "DUO:0000042");
    assert_int_equal(duo_lookup("NPU")->kind, DUO_MODIFIER);
    assert_null(duo_lookup(""));
    assert_null(duo_lookup("gru"));
    struct duo_purpose p;
    assert_false(duo_purpose_parse("NRES", &p));
    assert_false(duo_purpose_parse("NPU", &p));
    assert_false(duo_purpose_parse("HMB+NPU+NPU", &p));
    assert_false(duo_purpose_parse("HMB+", &p));
    assert_false(duo_purpose_parse("HMB:MONDO:1", &p));
    assert_true(duo_purpose_parse("DS:MONDO:0005148+NPU+PUB", &p));
    struct duo_scope sc;
    assert_true(duo_scope_parse("PARTICIPATION", &sc));
    assert_true(duo_scope_parse("DS:MONDO:0005148", &sc));
    assert_false(duo_scope_parse("XYZ", &sc));
    assert_false(duo_scope_parse("DS:", &sc));

    /* GRU covers everything research; HMB covers HMB and DS; DS:X only X */
    assert_true(covers("PARTICIPATION GRU", "HMB"));
    assert_true(covers("PARTICIPATION GRU", "DS:MONDO:0005148"));
    assert_true(covers("PARTICIPATION GRU", "POA"));
    assert_true(covers("PARTICIPATION HMB", "DS:MONDO:0005148"));
    assert_false(covers("PARTICIPATION HMB", "GRU"));
    assert_false(covers("PARTICIPATION HMB", "POA"));
    assert_true(covers("PARTICIPATION DS:MONDO:0005148", "DS:MONDO:0005148"));
    assert_false(covers("PARTICIPATION DS:MONDO:0005148", "DS:MONDO:0004975"));
    assert_false(covers("PARTICIPATION DS:MONDO:0005148", "HMB"));
    assert_true(covers("PARTICIPATION NRES", "GRU"));
    /* no participation, no coverage */
    assert_false(covers("GRU", "HMB"));
    /* modifiers must be declared by the purpose */
    assert_false(covers("PARTICIPATION GRU NPU", "HMB"));
    assert_true(covers("PARTICIPATION GRU NPU", "HMB+NPU"));
    assert_true(covers("PARTICIPATION GRU NPUNCU", "HMB+NPU+NCU"));
    assert_true(covers("PARTICIPATION GRU NPU", "HMB+NPUNCU"));
    assert_true(covers("PARTICIPATION GRU CC", "HMB"));
    assert_false(covers("PARTICIPATION GRU NPOA", "POA+NPOA"));
}

static void test_registry_personal_data_detectors(void **state)
{
    (void)state;
    assert_true(reg_has_email("Contact clinicaltrials@regeneron.com today"));
    assert_true(reg_has_email("arbelaez_a@kids.wustl.edu"));
    assert_false(reg_has_email("titer @ week 16"));
    assert_false(reg_has_email("a@b"));
    assert_true(reg_has_phone("Call 844-734-6643"));
    assert_true(reg_has_phone("phone: +342746155"));
    assert_true(reg_has_phone("(314) 286-1138"));
    assert_true(reg_has_phone("+44 20 7946 0958"));
    assert_true(reg_has_phone("Tel.844-734-6643"));
    assert_false(reg_has_phone("a ratio of 0.123456789"));
    assert_true(reg_has_phone("call 555.123.4567."));
    assert_true(reg_has_phone("call 8447346643."));
    assert_false(reg_has_phone("Weeks 0 4 8 12 16 24 36 52"));
    assert_false(reg_has_phone("from 2014-08-01 2015-09-30"));
    assert_false(reg_has_phone("NCT02210780 at Week 16"));
    assert_false(reg_has_phone("0 = clear; 1 = almost clear; 2 = mild"));
    assert_false(reg_has_phone("titers >= 0.1 IU/ml, 10,000 IU"));
}

/* Walks a ctgov record (bounded depth): contact e-mails and phones must be
 * detected; titles and outcome texts (what an importer copies) must not. */
struct pd_count {
    size_t contacts, texts;
};

static void pd_walk(json_t *v, const char *key, int depth, struct pd_count *c)
{
    assert_true(depth < 32);
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach(v, k, child) pd_walk(child, k, depth + 1, c);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) pd_walk(child, key, depth + 1, c);
    } else if (json_is_string(v) && key != NULL) {
        const char *s = json_string_value(v);
        if (strcmp(key, "email") == 0) {
            if (!reg_has_email(s))
                fail_msg("e-mail not detected: %s", s);
            c->contacts++;
        } else if (strcmp(key, "phone") == 0) {
            if (!reg_has_phone(s))
                fail_msg("phone not detected: %s", s);
            c->contacts++;
        } else if (strcmp(key, "briefTitle") == 0 ||
                   strcmp(key, "officialTitle") == 0 ||
                   strcmp(key, "measure") == 0 ||
                   strcmp(key, "timeFrame") == 0 ||
                   strcmp(key, "description") == 0) {
            if (reg_has_email(s) || reg_has_phone(s))
                fail_msg("false positive in %s: %s", key, s);
            c->texts++;
        }
    }
}

static void test_registry_personal_data_on_ctgov_records(void **state)
{
    (void)state;
    static const char *const files[] = {"NCT00763412.json", "NCT02210780.json",
                                        "NCT03064438.json", "NCT03475563.json",
                                        "NCT03630471.json", "NCT04207047.json",
                                        "NCT06388018.json"};
    struct pd_count c = {0, 0};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        const char *env = getenv("TRIALCHAIN_SHARED");
        json_error_t jerr;
        json_t *root = NULL;
        /* the shared data beside the checkout, or where the env says */
        const char *const roots[] = {env, "../shared", "/work/shared"};
        for (size_t r = 0; r < 3 && root == NULL; r++) {
            if (roots[r] == NULL)
                continue;
            snprintf(path, sizeof(path), "%s/data/ctgov/%s", roots[r],
                     files[i]);
            root = json_load_file(path, 0, &jerr);
        }
        if (root == NULL) {
            skip(); /* the shared data is not beside this checkout */
            return;
        }
        pd_walk(root, NULL, 0, &c);
        json_decref(root);
    }
    print_message("ctgov: %zu contacts detected, %zu texts clean\n", c.contacts,
                  c.texts);
    assert_true(c.contacts >= 9);
    assert_true(c.texts > 100);
}

/* ---- envelope: decode, chain, signer, nonce, clock ------------------------
 */

static void test_registry_envelope_refusals(void **state)
{
    struct fx *f = *state;
    uint8_t *junk = malloc(5);
    memcpy(junk,
           "\x0a\x03"
           "abc",
           5);
    assert_refused(exec_bytes(f, junk, 5), "malformed-tx");

    /* a tx made for another consortium */
    Tc__ProtocolRegister p;
    reg_body(&p, TRIAL);
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &p;
    uint8_t other_chain[32] = {9};
    tx.chain_id = bin(other_chain, 32);
    tx.signer = bin(f->keys[SPONSOR].public_key, 32);
    tx.nonce = 1;
    tx.client_time_ms = f->time_ms;
    uint8_t *bytes;
    size_t len;
    assert_int_equal(tx_sign(&tx, &f->keys[SPONSOR], &bytes, &len), LG_OK);
    assert_refused(exec_bytes(f, bytes, len), "wrong-chain");

    assert_refused(do_register(f, OUTSIDER, TRIAL), "unknown-signer");
    /* the outsider's attempt is evidence, indexed under the trial */
    uint64_t idx[4], total;
    size_t n;
    assert_int_equal(
        registry_trial_entries(f->reg, f->st, TRIAL, 0, 4, idx, &n, &total),
        LG_OK);
    assert_int_equal(total, 1);
}

static void test_registry_nonce_replay_and_order(void **state)
{
    struct fx *f = *state;
    assert_accepted(do_register(f, SPONSOR, TRIAL)); /* nonce 1 */
    /* the exact same bytes again: a replay */
    struct logged_tx *first = &f->log[0];
    uint8_t *copy = malloc(first->len);
    memcpy(copy, first->bytes, first->len);
    assert_refused(exec_bytes(f, copy, first->len), "replayed-nonce");
    /* an older nonce, then an equal one */
    f->set_nonce = true;
    f->next_nonce = 0;
    assert_refused(do_register(f, SPONSOR, "NCT00000001"), "replayed-nonce");
    f->set_nonce = true;
    f->next_nonce = 1;
    assert_refused(do_register(f, SPONSOR, "NCT00000001"), "replayed-nonce");
    /* gaps are fine: strictly increasing, not consecutive */
    f->set_nonce = true;
    f->next_nonce = 10;
    assert_accepted(do_register(f, SPONSOR, "NCT00000001"));
    uint64_t last;
    assert_int_equal(registry_member_nonce(f->reg, f->st, "sponsor", &last),
                     LG_OK);
    assert_int_equal(last, 10);
    /* nonces are per signer */
    f->set_nonce = true;
    f->next_nonce = 2;
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));

    /* a rule refusal still consumes the nonce: the refused consent cannot
     * be replayed into an accepted one once the site is authorized */
    uint8_t p[32];
    pseud(1, p);
    assert_refused(
        do_consent_p(f, SITE_A, TRIAL, p, 32, 1, RECORD, "PARTICIPATION GRU"),
        "site-not-authorized");
    struct logged_tx *refused = &f->log[f->n_log - 1];
    uint8_t *again = malloc(refused->len);
    memcpy(again, refused->bytes, refused->len);
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", false));
    assert_refused(exec_bytes(f, again, refused->len), "replayed-nonce");
    assert_int_equal(registry_member_nonce(f->reg, f->st, "site-a", &last),
                     LG_OK);
    assert_int_equal(last, 1);
    assert_int_equal(registry_member_nonce(f->reg, f->st, "nobody", &last),
                     LG_ENOTFOUND);
}

static void test_registry_clock_bounds(void **state)
{
    struct fx *f = *state;
    f->set_time = true;
    f->next_time = f->time_ms - REGISTRY_CLOCK_BOUND_MS - 1; /* back-dated */
    assert_refused(do_register(f, SPONSOR, TRIAL), "clock-out-of-bounds");
    f->set_time = true;
    f->next_time = f->time_ms - REGISTRY_CLOCK_BOUND_MS; /* at the bound */
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    /* an approval back-dated to before the registration is evidence */
    f->set_time = true;
    f->next_time = f->time_ms - 3600 * 1000;
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, APPROVE),
                   "clock-out-of-bounds");
    f->set_time = true;
    f->next_time = f->time_ms + REGISTRY_CLOCK_BOUND_MS + 1;
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, APPROVE),
                   "clock-out-of-bounds");
    f->set_time = true;
    f->next_time = f->time_ms + REGISTRY_CLOCK_BOUND_MS;
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));
    Tc__TrialSummary s;
    summary(f, &s);
    /* rejected count: refusals naming the trial once it exists */
    assert_int_equal(s.n_rejected, 2);
    uint64_t idx[8], total;
    size_t n;
    assert_int_equal(
        registry_trial_entries(f->reg, f->st, TRIAL, 0, 8, idx, &n, &total),
        LG_OK);
    assert_int_equal(total, 5); /* every attempt is in the trial's history */
    registry_trial_summary_clear(&s);
}

/* ---- protocol -------------------------------------------------------------
 */

static void test_registry_protocol_register_rules(void **state)
{
    struct fx *f = *state;
    Tc__ProtocolRegister p;
    assert_refused(do_register(f, SITE_A, TRIAL), "role-not-permitted");
    assert_refused(do_register(f, SPONSOR, "NCT 0221"), "invalid-id");
    assert_refused(do_register(f, SPONSOR, ""), "invalid-id");

    reg_body(&p, TRIAL);
    p.brief_title = (char *)"";
    assert_refused(do_register_body(f, SPONSOR, &p), "missing-field");
    char *big = malloc(REGISTRY_TEXT_MAX + 2);
    memset(big, 'x', REGISTRY_TEXT_MAX + 1);
    big[REGISTRY_TEXT_MAX + 1] = '\0';
    reg_body(&p, TRIAL);
    p.official_title = big;
    assert_refused(do_register_body(f, SPONSOR, &p), "field-too-long");
    big[REGISTRY_TEXT_MAX] = '\0'; /* exactly at the bound */
    p.official_title = big;
    reg_body(&p, "NCT00000002");
    p.official_title = big;
    assert_accepted(do_register_body(f, SPONSOR, &p));
    free(big);

    reg_body(&p, TRIAL);
    p.sponsor_name = (char *)"Regeneron (clinicaltrials@regeneron.com)";
    assert_refused(do_register_body(f, SPONSOR, &p), "personal-data");
    Tc__Outcome o = outcomes_v1[0];
    o.description = (char *)"Questions: call 844-734-6643.";
    Tc__Outcome *op[1] = {&o};
    reg_body(&p, TRIAL);
    p.n_outcomes = 1;
    p.outcomes = op;
    assert_refused(do_register_body(f, SPONSOR, &p), "personal-data");

    reg_body(&p, TRIAL);
    p.n_outcomes = 0;
    assert_refused(do_register_body(f, SPONSOR, &p), "missing-outcomes");
    Tc__Outcome *dup[2] = {&outcomes_v1[1], &outcomes_v1[1]};
    p.n_outcomes = 2;
    p.outcomes = dup;
    assert_refused(do_register_body(f, SPONSOR, &p), "duplicate-outcome-id");
    o = outcomes_v1[0];
    o.id = (char *)"";
    reg_body(&p, TRIAL);
    p.n_outcomes = 1;
    p.outcomes = op;
    assert_refused(do_register_body(f, SPONSOR, &p), "invalid-outcome");
    o = outcomes_v1[0];
    o.type = TC__OUTCOME_TYPE__OUTCOME_UNSPECIFIED;
    assert_refused(do_register_body(f, SPONSOR, &p), "invalid-outcome");

    Tc__Outcome *many[REGISTRY_OUTCOMES_MAX + 1];
    for (int i = 0; i <= REGISTRY_OUTCOMES_MAX; i++)
        many[i] = &outcomes_v1[0];
    reg_body(&p, TRIAL);
    p.n_outcomes = REGISTRY_OUTCOMES_MAX + 1;
    p.outcomes = many;
    assert_refused(do_register_body(f, SPONSOR, &p), "too-many-items");

    reg_body(&p, TRIAL);
    p.protocol_doc_hash = bin(hash_a, 31);
    assert_refused(do_register_body(f, SPONSOR, &p), "bad-hash");
    reg_body(&p, TRIAL);
    p.start_date = (char *)"August 2014";
    assert_refused(do_register_body(f, SPONSOR, &p), "invalid-date");

    assert_accepted(do_register(f, SPONSOR, TRIAL));
    assert_refused(do_register(f, SPONSOR2, TRIAL), "trial-exists");

    Tc__TrialSummary s;
    summary(f, &s);
    assert_string_equal(s.sponsor, "sponsor");
    assert_string_equal(s.status, "registered");
    assert_int_equal(s.latest_version, 1);
    assert_int_equal(s.n_rejected, 1); /* only trial-exists named it after */
    registry_trial_summary_clear(&s);
}

static void test_registry_protocol_amend_rules(void **state)
{
    struct fx *f = *state;
    assert_refused(do_amend(f, SPONSOR, TRIAL, 2, hash_a, "r"),
                   "unknown-trial");
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    uint8_t v1[32];
    memcpy(v1, f->last_id, 32); /* version 1's hash is its tx id */
    const char *why = "Secondary outcome S3 dropped after DSMB advice.";
    assert_refused(do_amend(f, SPONSOR2, TRIAL, 2, v1, why), "not-sponsor");
    assert_refused(do_amend(f, SPONSOR, TRIAL, 3, v1, why), "bad-version");
    assert_refused(do_amend(f, SPONSOR, TRIAL, 2, hash_a, why),
                   "bad-prev-hash");
    assert_refused(do_amend(f, SPONSOR, TRIAL, 2, NULL, why), "bad-prev-hash");
    assert_refused(do_amend(f, SPONSOR, TRIAL, 2, v1, ""), "missing-field");
    assert_accepted(do_amend(f, SPONSOR, TRIAL, 2, v1, why));
    uint8_t v2[32];
    memcpy(v2, f->last_id, 32);
    assert_refused(do_amend(f, SPONSOR, TRIAL, 3, v1, why), "bad-prev-hash");
    assert_accepted(do_amend(f, SPONSOR, TRIAL, 3, v2, why));
    Tc__TrialSummary s;
    summary(f, &s);
    assert_int_equal(s.latest_version, 3);
    registry_trial_summary_clear(&s);
}

/* ---- ethics ---------------------------------------------------------------
 */

static void test_registry_ethics_rules(void **state)
{
    struct fx *f = *state;
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, APPROVE), "unknown-trial");
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    uint8_t v1[32];
    memcpy(v1, f->last_id, 32);
    assert_refused(do_ethics(f, SPONSOR, TRIAL, 1, APPROVE),
                   "role-not-permitted");
    assert_refused(do_ethics(f, AUDITOR, TRIAL, 1, APPROVE),
                   "role-not-permitted");
    assert_refused(do_ethics(f, ETHICS, TRIAL, 2, APPROVE), "unknown-version");
    assert_refused(do_ethics(f, ETHICS, TRIAL, 0, APPROVE), "unknown-version");
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, SUSPEND),
                   "version-not-approved");
    assert_refused(
        do_ethics(f, ETHICS, TRIAL, 1, TC__ETHICS_ACTION__ETHICS_UNSPECIFIED),
        "invalid-action");
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, APPROVE), "already-approved");
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", false));
    assert_accepted(do_consent(f, SITE_A, 1, 1, RECORD, "PARTICIPATION GRU"));

    /* a suspended version takes no consent; approval reinstates it */
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, SUSPEND));
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, SUSPEND),
                   "already-suspended");
    assert_refused(do_consent(f, SITE_A, 2, 1, RECORD, "PARTICIPATION GRU"),
                   "version-suspended");
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));
    assert_accepted(do_consent(f, SITE_A, 2, 1, RECORD, "PARTICIPATION GRU"));

    /* a suspended trial takes no consent; approving a version lifts it */
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 0, SUSPEND));
    assert_refused(do_ethics(f, ETHICS, TRIAL, 0, SUSPEND),
                   "already-suspended");
    Tc__TrialSummary s;
    summary(f, &s);
    assert_string_equal(s.status, "suspended");
    registry_trial_summary_clear(&s);
    assert_refused(do_consent(f, SITE_A, 3, 1, RECORD, "PARTICIPATION GRU"),
                   "trial-suspended");
    /* withdrawal stays possible while suspended */
    assert_accepted(do_consent(f, SITE_A, 1, 0, WITHDRAW, ""));
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));
    summary(f, &s);
    assert_string_equal(s.status, "approved");
    registry_trial_summary_clear(&s);

    /* a terminated version is gone for good */
    assert_accepted(do_amend(f, SPONSOR, TRIAL, 2, v1, "New dose arm."));
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 2, TERMINATE));
    assert_refused(do_ethics(f, ETHICS, TRIAL, 2, TERMINATE),
                   "already-terminated");
    assert_refused(do_ethics(f, ETHICS, TRIAL, 2, APPROVE),
                   "version-terminated");
    assert_refused(do_consent(f, SITE_A, 3, 2, RECORD, "PARTICIPATION GRU"),
                   "version-terminated");

    /* a terminated trial accepts results, attestations and withdrawals only */
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 0, TERMINATE));
    assert_refused(do_ethics(f, ETHICS, TRIAL, 1, APPROVE), "trial-terminated");
    assert_refused(do_amend(f, SPONSOR, TRIAL, 3, v1, "x"), "trial-terminated");
    assert_refused(do_site(f, SPONSOR, TRIAL, "site-b", false),
                   "trial-terminated");
    assert_refused(do_consent(f, SITE_A, 3, 1, RECORD, "PARTICIPATION GRU"),
                   "trial-terminated");
    int who[1] = {2};
    assert_refused(do_dataset(f, SITE_A, "DS-1", TRIAL, who, 1),
                   "trial-terminated");
    assert_accepted(do_consent(f, SITE_A, 2, 0, WITHDRAW, "GRU"));
    const char *ids[1] = {"P1"};
    assert_accepted(do_results(f, SPONSOR, TRIAL, ids, 1, NULL));
    assert_accepted(do_attest(f, ETHICS, TRIAL, f->height));
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", true));
    summary(f, &s);
    assert_string_equal(s.status, "terminated");
    registry_trial_summary_clear(&s);
}

/* ---- sites ----------------------------------------------------------------
 */

static void test_registry_site_authorize_rules(void **state)
{
    struct fx *f = *state;
    assert_refused(do_site(f, SPONSOR, TRIAL, "site-a", false),
                   "unknown-trial");
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    assert_refused(do_site(f, SPONSOR2, TRIAL, "site-a", false), "not-sponsor");
    assert_refused(do_site(f, SITE_A, TRIAL, "site-a", false), "not-sponsor");
    assert_refused(do_site(f, SPONSOR, TRIAL, "site-z", false),
                   "unknown-member");
    assert_refused(do_site(f, SPONSOR, TRIAL, "ethics", false), "not-a-site");
    assert_refused(do_site(f, SPONSOR, TRIAL, "site-a", true),
                   "site-not-authorized");
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", false));
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-b", false));
    assert_refused(do_site(f, SPONSOR, TRIAL, "site-a", false),
                   "already-authorized");
    Tc__TrialSummary s;
    summary(f, &s);
    assert_int_equal(s.n_sites, 2);
    assert_string_equal(s.sites[0], "site-a");
    assert_string_equal(s.sites[1], "site-b");
    registry_trial_summary_clear(&s);
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", true));
    summary(f, &s);
    assert_int_equal(s.n_sites, 1);
    assert_string_equal(s.sites[0], "site-b");
    registry_trial_summary_clear(&s);
    assert_refused(do_site(f, SPONSOR, TRIAL, "site-a", true),
                   "site-not-authorized");
}

/* ---- consent --------------------------------------------------------------
 */

static void test_registry_consent_rules(void **state)
{
    struct fx *f = *state;
    const char *full = "PARTICIPATION GRU NPU";
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", false));
    assert_refused(do_consent(f, SITE_A, 1, 1, RECORD, full),
                   "version-not-approved");
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));

    assert_refused(do_consent(f, SPONSOR, 1, 1, RECORD, full),
                   "role-not-permitted");
    assert_refused(do_consent(f, SITE_B, 1, 1, RECORD, full),
                   "site-not-authorized");
    uint8_t p[32];
    pseud(1, p);
    assert_refused(do_consent_p(f, SITE_A, TRIAL, p, 16, 1, RECORD, full),
                   "bad-pseudonym");
    assert_refused(
        do_consent_p(f, SITE_A, "NCT99999999", p, 32, 1, RECORD, full),
        "unknown-trial");
    assert_refused(do_consent(f, SITE_A, 1, 2, RECORD, full),
                   "unknown-version");
    assert_refused(do_consent(f, SITE_A, 1, 1, RECORD, "GRU HMB"),
                   "missing-participation");
    assert_refused(do_consent(f, SITE_A, 1, 1, RECORD, "PARTICIPATION XYZ"),
                   "unknown-scope");
    assert_refused(do_consent(f, SITE_A, 1, 1, RECORD, "PARTICIPATION GRU GRU"),
                   "duplicate-scope");
    char many[256] = "PARTICIPATION";
    for (int i = 0; i < REGISTRY_SCOPES_MAX; i++)
        strcat(many, " NPU");
    assert_refused(do_consent(f, SITE_A, 1, 1, RECORD, many), "too-many-items");
    assert_refused(do_consent(f, SITE_A, 1, 1,
                              TC__CONSENT_ACTION__CONSENT_UNSPECIFIED, full),
                   "invalid-action");
    assert_refused(do_consent(f, SITE_A, 1, 1, WITHDRAW, ""), "no-consent");

    assert_accepted(do_consent(f, SITE_A, 1, 1, RECORD, full));
    assert_accepted(do_consent(f, SITE_A, 2, 1, RECORD, full));
    assert_accepted(do_consent(f, SITE_A, 3, 1, RECORD, full));
    /* site-b may not touch site-a's pseudonym, even once authorized */
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-b", false));
    assert_refused(do_consent(f, SITE_B, 1, 1, RECORD, full),
                   "pseudonym-other-site");
    assert_refused(do_consent(f, SITE_B, 1, 0, WITHDRAW, ""),
                   "pseudonym-other-site");
    assert_accepted(do_consent(f, SITE_B, 4, 1, RECORD, "PARTICIPATION HMB"));

    /* partial and full withdrawal, then re-consent */
    assert_refused(do_consent(f, SITE_A, 1, 0, WITHDRAW, "HMB"),
                   "scope-not-held");
    assert_accepted(do_consent(f, SITE_A, 1, 0, WITHDRAW, "GRU"));
    assert_accepted(do_consent(f, SITE_A, 2, 0, WITHDRAW, ""));
    assert_refused(do_consent(f, SITE_A, 2, 0, WITHDRAW, ""),
                   "already-withdrawn");
    assert_accepted(do_consent(f, SITE_A, 3, 0, WITHDRAW, "PARTICIPATION"));

    Tc__TrialSummary s;
    summary(f, &s);
    assert_int_equal(s.n_consents, 2);
    assert_string_equal(s.consents[0]->site, "site-a");
    assert_int_equal(s.consents[0]->active, 0);
    assert_int_equal(s.consents[0]->partial, 1);
    assert_int_equal(s.consents[0]->withdrawn, 2);
    assert_string_equal(s.consents[1]->site, "site-b");
    assert_int_equal(s.consents[1]->active, 1);
    assert_true(s.first_consent_height > s.registered_height);
    registry_trial_summary_clear(&s);

    assert_accepted(do_consent(f, SITE_A, 2, 1, RECORD, full)); /* re-consent */
    /* a site whose authorization was revoked still records withdrawals */
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", true));
    assert_refused(do_consent(f, SITE_A, 3, 1, RECORD, full),
                   "site-not-authorized");
    assert_accepted(do_consent(f, SITE_A, 1, 0, WITHDRAW, ""));
    summary(f, &s);
    assert_int_equal(s.consents[0]->active, 1);
    assert_int_equal(s.consents[0]->partial, 0);
    assert_int_equal(s.consents[0]->withdrawn, 2);
    registry_trial_summary_clear(&s);

    /* the pseudonym's history: every consent tx naming it, refused too */
    pseud(1, p);
    uint64_t idx[32], total;
    size_t n;
    assert_int_equal(registry_pseudonym_entries(f->reg, f->st, TRIAL, p, 0, 32,
                                                idx, &n, &total),
                     LG_OK);
    assert_int_equal(total, 16); /* not the 16-byte one: not a pseudonym */
    assert_int_equal(n, 16);
    for (size_t i = 1; i < n; i++)
        assert_true(idx[i - 1] < idx[i]);
}

/* ---- datasets and access --------------------------------------------------
 */

static void test_registry_dataset_rules(void **state)
{
    struct fx *f = *state;
    setup_consents(f, 3, "PARTICIPATION GRU");
    int who[3] = {1, 2, 3};
    int stranger[2] = {1, 9};
    int dup[2] = {1, 1};
    assert_refused(do_dataset(f, SPONSOR, "DS-1", TRIAL, who, 3),
                   "role-not-permitted");
    assert_refused(do_dataset(f, SITE_B, "DS-1", TRIAL, who, 3),
                   "site-not-authorized");
    assert_refused(do_dataset(f, SITE_A, "DS 1", TRIAL, who, 3), "invalid-id");
    assert_refused(do_dataset(f, SITE_A, "DS-1", "NCT9", who, 3),
                   "unknown-trial");
    assert_refused(do_dataset(f, SITE_A, "DS-1", TRIAL, who, 0),
                   "missing-participants");
    assert_refused(do_dataset(f, SITE_A, "DS-1", TRIAL, stranger, 2),
                   "participant-without-consent");
    assert_refused(do_dataset(f, SITE_A, "DS-1", TRIAL, dup, 2),
                   "duplicate-participant");
    assert_accepted(do_consent(f, SITE_A, 3, 0, WITHDRAW, "PARTICIPATION"));
    assert_refused(do_dataset(f, SITE_A, "DS-1", TRIAL, who, 3),
                   "participant-without-consent");
    assert_accepted(do_dataset(f, SITE_A, "DS-1", TRIAL, who, 2));
    assert_refused(do_dataset(f, SITE_A, "DS-1", TRIAL, who, 2),
                   "dataset-exists");

    /* malformed hash and pseudonym */
    uint8_t p[32];
    pseud(1, p);
    ProtobufCBinaryData parts[1] = {bin(p, 31)};
    Tc__DatasetRegister d = TC__DATASET_REGISTER__INIT;
    d.dataset_id = (char *)"DS-2";
    d.trial_id = (char *)TRIAL;
    d.sha256 = bin(hash_a, 32);
    d.n_participants = 1;
    d.participants = parts;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_DATASET_REGISTER;
    tx.dataset_register = &d;
    assert_refused(run(f, SITE_A, &tx), "bad-pseudonym");
    parts[0] = bin(p, 32);
    d.sha256 = bin(hash_a, 0);
    assert_refused(run(f, SITE_A, &tx), "bad-hash");

    Tc__TrialSummary s;
    summary(f, &s);
    assert_int_equal(s.n_datasets, 1);
    registry_trial_summary_clear(&s);
}

static void test_registry_access_rules(void **state)
{
    struct fx *f = *state;
    setup_trial(f);
    assert_accepted(
        do_consent(f, SITE_A, 1, 1, RECORD, "PARTICIPATION GRU NPU"));
    assert_accepted(
        do_consent(f, SITE_A, 2, 1, RECORD, "PARTICIPATION DS:MONDO:0004980"));
    int both[2] = {1, 2};
    int one[1] = {1};
    assert_accepted(do_dataset(f, SITE_A, "DS-AD", TRIAL, both, 2));
    assert_accepted(do_dataset(f, SITE_A, "DS-ONE", TRIAL, one, 1));
    uint64_t later = f->time_ms + 30 * DAY_MS;

    assert_refused(do_grant(f, SITE_A, "DS-NONE", "sponsor-2", "HMB", later),
                   "unknown-dataset");
    assert_refused(do_grant(f, SITE_B, "DS-AD", "sponsor-2", "HMB", later),
                   "not-dataset-site");
    assert_refused(do_grant(f, SITE_A, "DS-AD", "someone", "HMB", later),
                   "unknown-member");
    assert_refused(do_grant(f, SITE_A, "DS-AD", "sponsor-2", "FOO", later),
                   "unknown-purpose");
    assert_refused(do_grant(f, SITE_A, "DS-AD", "sponsor-2", "HMB", f->time_ms),
                   "expiry-in-past");
    /* participant 2 consented only to atopic-dermatitis research */
    assert_refused(do_grant(f, SITE_A, "DS-AD", "sponsor-2", "HMB+NPU", later),
                   "purpose-not-consented");
    /* participant 1's NPU must be declared */
    assert_refused(
        do_grant(f, SITE_A, "DS-AD", "sponsor-2", "DS:MONDO:0004980", later),
        "purpose-not-consented");
    assert_accepted(do_grant(f, SITE_A, "DS-AD", "sponsor-2",
                             "DS:MONDO:0004980+NPU", later));
    uint8_t grant[32];
    memcpy(grant, f->last_id, 32);

    uint8_t missing[32] = {1};
    assert_refused(do_event(f, SPONSOR2, missing, "", NULL), "unknown-grant");
    assert_refused(do_event(f, SITE_B, grant, "", NULL), "not-grantee");
    assert_refused(do_event(f, SPONSOR2, grant, "HMB", NULL),
                   "purpose-mismatch");
    assert_refused(do_event(f, SPONSOR2, grant, "", hash_b),
                   "file-hash-mismatch");
    assert_accepted(do_event(f, SPONSOR2, grant, "", hash_a));
    assert_accepted(do_event(f, SPONSOR2, grant, "DS:MONDO:0004980+NPU", NULL));

    assert_refused(do_revoke(f, SPONSOR2, grant), "not-granting-site");
    assert_refused(do_revoke(f, SITE_A, missing), "unknown-grant");
    assert_accepted(do_revoke(f, SITE_A, grant));
    assert_refused(do_revoke(f, SITE_A, grant), "already-revoked");
    assert_refused(do_event(f, SPONSOR2, grant, "", NULL), "grant-revoked");

    /* expiry */
    assert_accepted(
        do_grant(f, SITE_A, "DS-ONE", "auditor", "HMB+NPU", f->time_ms + 1000));
    uint8_t short_grant[32];
    memcpy(short_grant, f->last_id, 32);
    assert_accepted(do_event(f, AUDITOR, short_grant, "", NULL));
    f->time_ms += 1000;
    assert_refused(do_event(f, AUDITOR, short_grant, "", NULL),
                   "grant-expired");

    Tc__TrialSummary s;
    summary(f, &s);
    assert_int_equal(s.n_grants, 2);
    assert_int_equal(s.n_access_events, 3);
    registry_trial_summary_clear(&s);
}

/* ---- results and attestations ---------------------------------------------
 */

static void test_registry_results_rules(void **state)
{
    struct fx *f = *state;
    setup_consents(f, 2, "PARTICIPATION GRU");
    int who[2] = {1, 2};
    assert_accepted(do_dataset(f, SITE_A, "DS-1", TRIAL, who, 2));
    Tc__ProtocolRegister p;
    reg_body(&p, "NCT03064438");
    assert_accepted(do_register_body(f, SPONSOR2, &p));
    assert_accepted(do_ethics(f, ETHICS, "NCT03064438", 1, APPROVE));
    assert_accepted(do_site(f, SPONSOR2, "NCT03064438", "site-b", false));
    uint8_t px[32];
    pseud(50, px);
    assert_accepted(do_consent_p(f, SITE_B, "NCT03064438", px, 32, 1, RECORD,
                                 "PARTICIPATION HMB"));
    ProtobufCBinaryData parts[1] = {bin(px, 32)};
    Tc__DatasetRegister d = TC__DATASET_REGISTER__INIT;
    d.dataset_id = (char *)"DS-OTHER";
    d.trial_id = (char *)"NCT03064438";
    d.sha256 = bin(hash_b, 32);
    d.n_participants = 1;
    d.participants = parts;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_DATASET_REGISTER;
    tx.dataset_register = &d;
    assert_accepted(run(f, SITE_B, &tx));

    const char *good[3] = {"P1", "S2", "-EXPLORATORY-1"};
    const char *unknown[1] = {"S9"};
    const char *fake_nps[1] = {"-S1"};
    const char *no_id[1] = {""};
    assert_refused(do_results(f, SPONSOR2, TRIAL, good, 3, "DS-1"),
                   "not-sponsor");
    assert_refused(do_results(f, SPONSOR, "NCT404", good, 3, "DS-1"),
                   "unknown-trial");
    assert_refused(do_results(f, SPONSOR, TRIAL, unknown, 1, "DS-1"),
                   "unknown-outcome");
    assert_refused(do_results(f, SPONSOR, TRIAL, fake_nps, 1, "DS-1"),
                   "invalid-outcome");
    assert_refused(do_results(f, SPONSOR, TRIAL, no_id, 1, "DS-1"),
                   "invalid-outcome");
    assert_refused(do_results(f, SPONSOR, TRIAL, good, 3, "DS-9"),
                   "unknown-dataset");
    assert_refused(do_results(f, SPONSOR, TRIAL, good, 3, "DS-OTHER"),
                   "dataset-other-trial");
    Tc__TrialSummary s;
    summary(f, &s);
    assert_false(s.has_results);
    registry_trial_summary_clear(&s);
    assert_accepted(do_results(f, SPONSOR, TRIAL, good, 3, "DS-1"));
    summary(f, &s);
    assert_true(s.has_results);
    registry_trial_summary_clear(&s);
}

static void test_registry_attestation_rules(void **state)
{
    struct fx *f = *state;
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    assert_refused(do_attest(f, SPONSOR, TRIAL, 1), "role-not-permitted");
    assert_refused(do_attest(f, SITE_A, "", 1), "role-not-permitted");
    assert_refused(do_attest(f, ETHICS, "NCT404", 1), "unknown-trial");
    assert_refused(do_attest(f, AUDITOR, TRIAL, f->height + 5),
                   "height-in-future");
    assert_accepted(do_attest(f, ETHICS, TRIAL, f->height));
    assert_accepted(do_attest(f, AUDITOR, "", f->height)); /* --all */
}

/* ---- flow, queries, determinism -------------------------------------------
 */

/* register -> approve -> authorize -> consent -> dataset -> grant ->
 * access -> withdraw -> access refused -> results */
static void realistic_flow(struct fx *f)
{
    assert_accepted(do_register(f, SPONSOR, TRIAL));
    assert_accepted(do_register(f, SPONSOR2, "NCT03630471"));
    f->time_ms += DAY_MS;
    assert_accepted(do_ethics(f, ETHICS, TRIAL, 1, APPROVE));
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-a", false));
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-b", false));
    f->time_ms += DAY_MS;
    /* one block with several consents: reads see the block's own writes */
    begin_block(f);
    for (int i = 1; i <= 4; i++)
        assert_accepted(do_consent(f, i <= 3 ? SITE_A : SITE_B, i, 1, RECORD,
                                   "PARTICIPATION HMB"));
    assert_refused(do_consent(f, SITE_A, 4, 1, RECORD, "PARTICIPATION HMB"),
                   "pseudonym-other-site");
    int who[3] = {1, 2, 3};
    assert_accepted(do_dataset(f, SITE_A, "NCT02210780-wk16", TRIAL, who, 3));
    end_block(f);
    f->time_ms += DAY_MS;
    assert_accepted(do_grant(f, SITE_A, "NCT02210780-wk16", "sponsor-2",
                             "DS:MONDO:0004980", f->time_ms + 90 * DAY_MS));
    uint8_t grant[32];
    memcpy(grant, f->last_id, 32);
    assert_accepted(do_event(f, SPONSOR2, grant, "", hash_a));
    f->time_ms += DAY_MS;
    assert_accepted(do_consent(f, SITE_A, 2, 0, WITHDRAW, "HMB"));
    assert_refused(do_event(f, SPONSOR2, grant, "", hash_a),
                   "access-outside-consent");
    const char *ids[3] = {"P1", "S1", "-POST-HOC-1"};
    assert_accepted(do_results(f, SPONSOR, TRIAL, ids, 3, "NCT02210780-wk16"));
    assert_accepted(do_attest(f, ETHICS, TRIAL, f->height));
}

static void test_registry_realistic_flow_and_queries(void **state)
{
    struct fx *f = *state;
    realistic_flow(f);
    Tc__TrialSummary s;
    summary(f, &s);
    assert_string_equal(s.trial_id, TRIAL);
    assert_string_equal(s.sponsor, "sponsor");
    assert_string_equal(s.status, "approved");
    assert_int_equal(s.latest_version, 1);
    assert_int_equal(s.n_sites, 2);
    assert_int_equal(s.n_consents, 2);
    assert_int_equal(s.consents[0]->active, 2);
    assert_int_equal(s.consents[0]->partial, 1);
    assert_int_equal(s.consents[1]->active, 1);
    assert_int_equal(s.n_datasets, 1);
    assert_int_equal(s.n_grants, 1);
    assert_int_equal(s.n_access_events, 1);
    assert_true(s.has_results);
    assert_int_equal(s.registered_height, 1);
    assert_int_equal(s.first_consent_height, 6);
    assert_int_equal(s.n_rejected, 2);
    assert_string_equal(s.brief_title,
                        "Study of Dupilumab and Immune Responses in Adults "
                        "With Atopic Dermatitis (AD)");
    registry_trial_summary_clear(&s);
    assert_int_equal(registry_trial_summary(f->reg, f->st, "NCT404", &s),
                     LG_ENOTFOUND);
    registry_trial_summary_clear(&s);

    /* every tx naming the trial, in ledger order: all but NCT03630471's */
    uint64_t idx[64], total;
    size_t n;
    assert_int_equal(
        registry_trial_entries(f->reg, f->st, TRIAL, 0, 64, idx, &n, &total),
        LG_OK);
    assert_int_equal(total, f->n_log - 1);
    assert_int_equal(n, total);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    for (size_t i = 1; i < n; i++)
        assert_true(idx[i - 1] < idx[i]);
    /* paging */
    uint64_t page[4];
    assert_int_equal(
        registry_trial_entries(f->reg, f->st, TRIAL, 3, 4, page, &n, &total),
        LG_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(page, idx + 3, 4 * sizeof(uint64_t));
    /* Pages past the middle are read backwards from the last entry: the
     * same entries, in ledger order, also a page cut by the end. */
    for (uint64_t off = total / 2 + 1; off < total; off++) {
        size_t exp = total - off < 4 ? (size_t)(total - off) : 4;
        assert_int_equal(registry_trial_entries(f->reg, f->st, TRIAL, off, 4,
                                                page, &n, &total),
                         LG_OK);
        assert_int_equal(n, exp);
        assert_memory_equal(page, idx + off, exp * sizeof(uint64_t));
    }
    assert_int_equal(registry_trial_entries(f->reg, f->st, TRIAL, total, 4,
                                            page, &n, &total),
                     LG_OK);
    assert_int_equal(n, 0);

    /* a member's actions */
    assert_int_equal(registry_member_entries(f->reg, f->st, "sponsor-2", 0, 64,
                                             idx, &n, &total),
                     LG_OK);
    assert_int_equal(total, 3); /* register, access, refused access */
    assert_int_equal(registry_member_entries(f->reg, f->st, "nobody", 0, 64,
                                             idx, &n, &total),
                     LG_ENOTFOUND);

    /* a pseudonym's consent history */
    uint8_t p[32];
    pseud(2, p);
    assert_int_equal(registry_pseudonym_entries(f->reg, f->st, TRIAL, p, 0, 64,
                                                idx, &n, &total),
                     LG_OK);
    assert_int_equal(total, 2);

    char ids[4][REGISTRY_ID_MAX + 1];
    assert_int_equal(registry_list_trials(f->reg, f->st, 0, 4, ids, &n, &total),
                     LG_OK);
    assert_int_equal(total, 2);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], TRIAL);
    assert_string_equal(ids[1], "NCT03630471");
    assert_int_equal(registry_list_trials(f->reg, f->st, 1, 4, ids, &n, &total),
                     LG_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "NCT03630471");
}

/* Compares the "r/" and "x/" ranges of two stores key by key. */
/* This genesis has no governance section: nobody votes. */
static void test_registry_governance_without_voters(void **state)
{
    struct fx *f = *state;
    Tc__GovernanceProposal p = TC__GOVERNANCE_PROPOSAL__INIT;
    p.proposal_id = (char *)"p1";
    p.action = TC__GOV_ACTION__GOV_MEMBER_SUSPEND;
    p.name = (char *)"site-a";
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_PROPOSAL;
    tx.governance_proposal = &p;
    assert_refused(run(f, SPONSOR, &tx), "not-a-voter");
    Tc__GovernanceApproval a = TC__GOVERNANCE_APPROVAL__INIT;
    a.proposal_id = (char *)"p1";
    Tc__Tx tx2 = TC__TX__INIT;
    tx2.body_case = TC__TX__BODY_GOVERNANCE_APPROVAL;
    tx2.governance_approval = &a;
    assert_refused(run(f, ETHICS, &tx2), "not-a-voter");
    Tc__GovernanceReply gr;
    assert_int_equal(
        registry_governance(f->reg, f->st, "", f->time_ms, 0, 10, &gr), LG_OK);
    assert_int_equal(gr.total, 0);
    assert_int_equal(gr.threshold, 0);
    assert_int_equal(gr.n_voter_roles, 0);
    assert_int_equal(gr.n_members, OUTSIDER);
    registry_governance_clear(&gr);
}

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

/* Replays the fixture's log into a fresh store, one txn per height when
 * grouped, else one txn per tx. */
static void replay(struct fx *f, const char *dir, bool grouped,
                   struct store **out)
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
        bool last_of_block =
            i + 1 == f->n_log || f->log[i + 1].at.height != f->log[i].at.height;
        if (!grouped || last_of_block) {
            assert_int_equal(store_txn_commit(t, false), LG_OK);
            t = NULL;
        }
    }
    registry_free(r);
}

static void test_registry_two_stores_end_byte_identical(void **state)
{
    struct fx *f = *state;
    realistic_flow(f);
    char d1[64] = "/tmp/test_registry_a.XXXXXX";
    char d2[64] = "/tmp/test_registry_b.XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    struct store *s1, *s2;
    replay(f, d1, true, &s1);
    replay(f, d2, false, &s2);
    assert_same_state(f->st, s1);
    assert_same_state(s1, s2);
    store_close(s1);
    store_close(s2);
    rm_rf(d1);
    rm_rf(d2);
}

/* Mutated transactions (bit flips, truncations, from a fixed seed) give a
 * verdict, never a crash or a storage error. Replaying the flow into a
 * fresh store, each tx's mutants run (and are rolled back) just before the
 * original, so their nonces are fresh and they reach the rules: the
 * registry does not re-check signatures. */
static void test_registry_mutated_txs_never_crash(void **state)
{
    struct fx *f = *state;
    realistic_flow(f);
    char dir[64] = "/tmp/test_registry_m.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct store *st;
    char err[256];
    assert_int_equal(store_open(dir, true, &st, err, sizeof(err)), LG_OK);
    uint32_t seed = 12345;
    size_t n_accepted = 0, n_total = 0;
    for (size_t i = 0; i < f->n_log; i++) {
        for (int round = 0; round < 40; round++) {
            size_t len = f->log[i].len;
            uint8_t *m = malloc(len);
            assert_non_null(m);
            memcpy(m, f->log[i].bytes, len);
            seed = seed * 1103515245u + 12345u;
            if (round % 8 == 7)
                len = (seed >> 8) % len; /* truncated */
            else
                m[(seed >> 8) % len] ^= (uint8_t)(1u << ((seed >> 4) % 8));
            struct store_txn *t = store_txn_new(st);
            struct tx_result res;
            assert_int_equal(
                registry_execute(f->reg, t, &f->log[i].at, m, len, &res),
                LG_OK);
            assert_true(res.status == TXS_ACCEPTED ||
                        res.status == TXS_REJECTED);
            n_accepted += res.status == TXS_ACCEPTED;
            n_total++;
            store_txn_abort(t);
            free(m);
        }
        struct store_txn *t = store_txn_new(st);
        struct tx_result res;
        assert_int_equal(registry_execute(f->reg, t, &f->log[i].at,
                                          f->log[i].bytes, f->log[i].len, &res),
                         LG_OK);
        assert_int_equal(store_txn_commit(t, false), LG_OK);
    }
    print_message("mutated txs: %zu executed, %zu accepted\n", n_total,
                  n_accepted);
    assert_true(n_accepted < n_total);
    /* the mutants left no trace: same state as the original run */
    assert_same_state(f->st, st);
    store_close(st);
    rm_rf(dir);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_registry_summary_fast_with_10000_consents(void **state)
{
    struct fx *f = *state;
    setup_trial(f);
    assert_accepted(do_site(f, SPONSOR, TRIAL, "site-b", false));
    const int n = 10000, per_block = 500;
    double t_exec = now_ms();
    for (int b = 0; b < n / per_block; b++) {
        begin_block(f);
        for (int i = 0; i < per_block; i++) {
            int who = b * per_block + i;
            struct tx_result r = do_consent(f, who % 2 ? SITE_B : SITE_A, who,
                                            1, RECORD, "PARTICIPATION GRU");
            assert_int_equal(r.status, TXS_ACCEPTED);
        }
        end_block(f);
    }
    print_message("%d consents signed and executed: %.0f ms\n", n,
                  now_ms() - t_exec);
    double t0 = now_ms();
    Tc__TrialSummary s;
    summary(f, &s);
    double took = now_ms() - t0;
    print_message("summary of a trial with %d consents: %.2f ms\n", n, took);
    assert_true(took < 200.0);
    assert_int_equal(s.consents[0]->active + s.consents[1]->active, n);
    registry_trial_summary_clear(&s);
    uint64_t idx[10], total;
    size_t got;
    t0 = now_ms();
    assert_int_equal(registry_trial_entries(f->reg, f->st, TRIAL, 9990, 10, idx,
                                            &got, &total),
                     LG_OK);
    print_message("entries page at offset 9990: %.2f ms\n", now_ms() - t0);
    assert_int_equal(total, (uint64_t)n + 4);
    assert_int_equal(got, 10);
}

int main(void)
{
    init_outcomes();
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_duo_table_and_coverage),
        cmocka_unit_test(test_registry_personal_data_detectors),
        cmocka_unit_test(test_registry_personal_data_on_ctgov_records),
        T(test_registry_envelope_refusals),
        T(test_registry_nonce_replay_and_order),
        T(test_registry_clock_bounds),
        T(test_registry_protocol_register_rules),
        T(test_registry_protocol_amend_rules),
        T(test_registry_ethics_rules),
        T(test_registry_site_authorize_rules),
        T(test_registry_consent_rules),
        T(test_registry_dataset_rules),
        T(test_registry_access_rules),
        T(test_registry_results_rules),
        T(test_registry_attestation_rules),
        T(test_registry_realistic_flow_and_queries),
        T(test_registry_two_stores_end_byte_identical),
        T(test_registry_mutated_txs_never_crash),
        T(test_registry_summary_fast_with_10000_consents),
        T(test_registry_governance_without_voters),
    };
#undef T
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
