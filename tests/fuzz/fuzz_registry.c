/*
 * fuzz_registry.c - transaction validation: registry_execute over arbitrary
 * transaction bodies that pass the signature check.
 *
 * Input: records [signer (1)] [len (2, little-endian)] [Tx body (len)].
 * A body that decodes as a Tx gets this chain's id and the chosen member's
 * key as signer (bit 0x80 of the signer byte keeps its own client time,
 * else the block time; bit 0x40 keeps its own nonce, else the next one),
 * is re-packed and signed with that member's key; a body that does not
 * decode is signed as is (the malformed-tx path). Signer 4 is a valid key
 * outside the consortium. All records of one input execute as one block in
 * one store_txn over a store holding only the genesis state, and the txn is
 * aborted at the end, so every input starts from the same state.
 *
 * Invariants: no crash or sanitizer report; registry_execute returns 0
 * with a status and, for a rejection, a non-empty kebab-case code; the
 * outsider is never accepted; executing the same block twice gives the
 * same results (determinism).
 *
 * The genesis names sponsor and ethics as governance voters (threshold 2),
 * so governance proposals and approvals reach every rule, and an applied
 * change (a suspended or removed signer, a rotated key) is seen by the
 * records after it.
 *
 * FUZZ_VERBOSE=1 prints each outcome. FUZZ_WRITE_SEEDS=DIR makes the first call
 * write the seed corpus (a protocol, its approval, a site, a consent, and
 * governance changes) into DIR.
 */
#include "crypto.h"
#include "genesis.h"
#include "registry.h"
#include "store.h"
#include "tx.h"

#include <ftw.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_MEMBERS 4
#define N_SIGNERS 5 /* + an outsider */
#define MAX_TXS   16
#define T0_MS     1800000000000ull
#define SIGNER(b) (((b)&0x3f) % N_SIGNERS)

static const char *const names[N_SIGNERS] = {"sponsor", "site-a", "ethics",
                                             "auditor", "outsider"};
static const char *const roles[N_SIGNERS] = {"sponsor", "site", "ethics_board",
                                             "auditor", "site"};

struct env {
    struct genesis *g;
    struct store *st;
    struct registry *reg;
    struct keyfile keys[N_SIGNERS];
    char dir[64];
};

static struct env E;

static void make_genesis(void)
{
    char json[4096];
    size_t n = 0;
    n += (size_t)snprintf(json + n, sizeof(json) - n,
                          "{\"chain_name\":\"fuzz\",\"created\":"
                          "\"2026-11-21T00:00:00Z\",\"replicas\":[");
    for (int i = 0; i < 4; i++) {
        uint8_t pk[32], sk[64], seed[32];
        char hex[65];
        memset(seed, 0x10 + i, sizeof(seed));
        crypto_sign_seed_keypair(pk, sk, seed);
        lg_hex(pk, 32, hex);
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "%s{\"id\":%d,\"name\":\"node%d\",\"public_key\":"
                              "\"%s\",\"peer_url\":\"tcp://127.0.0.1:%d\"}",
                              i ? "," : "", i, i, hex, 27000 + i);
    }
    n += (size_t)snprintf(json + n, sizeof(json) - n, "],\"members\":[");
    for (int i = 0; i < N_MEMBERS; i++) {
        char hex[65];
        lg_hex(E.keys[i].public_key, 32, hex);
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "%s{\"name\":\"%s\",\"role\":\"%s\","
                              "\"organisation\":\"Org %d\",\"public_key\":"
                              "\"%s\"}",
                              i ? "," : "", names[i], roles[i], i, hex);
    }
    /* sponsor and ethics_board vote; two organisations decide */
    n += (size_t)snprintf(json + n, sizeof(json) - n,
                          "],\"governance\":{\"threshold\":2,\"voters\":"
                          "[\"sponsor\",\"ethics\"]}}");
    LG_ASSERT(n < sizeof(json));
    char err[256];
    E.g = calloc(1, sizeof(*E.g));
    LG_ASSERT(E.g != NULL);
    LG_ASSERT(genesis_parse((const unsigned char *)json, n, E.g, err,
                            sizeof(err)) == LG_OK);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    registry_free(E.reg);
    store_close(E.st);
    (void)nftw(E.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    LG_ASSERT(sodium_init() >= 0);
    lg_log_set_level(LG_OFF);
    for (int i = 0; i < N_SIGNERS; i++) {
        uint8_t seed[32];
        struct keyfile *k = &E.keys[i];
        memset(seed, 0x40 + i, sizeof(seed));
        k->secret_key = sodium_malloc(64);
        LG_ASSERT(k->secret_key != NULL);
        crypto_sign_seed_keypair(k->public_key, k->secret_key, seed);
        snprintf(k->kind, sizeof(k->kind), "member");
        snprintf(k->name, sizeof(k->name), "%s", names[i]);
        LG_ASSERT(role_parse(roles[i], &k->role) == LG_OK);
    }
    make_genesis();
    char err[256];
    snprintf(E.dir, sizeof(E.dir), "/tmp/fuzz_registry.XXXXXX");
    LG_ASSERT(mkdtemp(E.dir) != NULL);
    LG_ASSERT(store_open(E.dir, true, &E.st, err, sizeof(err)) == LG_OK);
    LG_ASSERT(registry_new(E.g, &E.reg) == LG_OK);
    atexit(teardown);
}

/* The SignedTx for one record: *out malloc'd. */
static void sign_body(uint8_t who, const uint8_t *body, size_t len,
                      uint64_t nonce, uint8_t **out, size_t *out_len)
{
    const struct keyfile *k = &E.keys[SIGNER(who)];
    Tc__Tx *tx = tc__tx__unpack(NULL, len, body);
    uint8_t *packed = NULL;
    size_t plen = len;
    if (tx != NULL) {
        ProtobufCBinaryData own_chain = tx->chain_id, own_signer = tx->signer;
        tx->chain_id.data = E.g->chain_id;
        tx->chain_id.len = 32;
        tx->signer.data = (uint8_t *)(uintptr_t)k->public_key;
        tx->signer.len = 32;
        if ((who & 0x40) == 0)
            tx->nonce = nonce;
        if ((who & 0x80) == 0)
            tx->client_time_ms = T0_MS;
        plen = tc__tx__get_packed_size(tx);
        packed = malloc(plen > 0 ? plen : 1);
        LG_ASSERT(packed != NULL);
        tc__tx__pack(tx, packed);
        /* the buffers put in above belong to E, not to the message */
        tx->chain_id = own_chain;
        tx->signer = own_signer;
        tc__tx__free_unpacked(tx, NULL);
        body = packed;
    }
    uint8_t sig[64];
    crypto_sign_tagged(TAG_TX, k->secret_key, body, plen, sig);
    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    st.body.data = (uint8_t *)(uintptr_t)body;
    st.body.len = plen;
    st.sig.data = sig;
    st.sig.len = 64;
    *out_len = tc__signed_tx__get_packed_size(&st);
    *out = malloc(*out_len);
    LG_ASSERT(*out != NULL);
    tc__signed_tx__pack(&st, *out);
    free(packed);
}

static bool kebab(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return false;
    return true;
}

/* Executes every record as one block; results[i] get each outcome. */
static size_t run_block(const uint8_t *data, size_t size,
                        struct tx_result *results)
{
    struct store_txn *txn = store_txn_new(E.st);
    LG_ASSERT(txn != NULL);
    uint64_t nonces[N_SIGNERS] = {0};
    size_t n = 0;
    while (size >= 3 && n < MAX_TXS) {
        uint8_t who = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        uint8_t *signed_tx = NULL;
        size_t slen = 0;
        sign_body(who, data, len, ++nonces[SIGNER(who)], &signed_tx, &slen);
        data += len;
        size -= len;

        struct tx_place at = {
            .height = 1, .block_time_ms = T0_MS, .log_index = n};
        tx_id(signed_tx, slen, at.tx_id);
        struct tx_result *res = &results[n];
        memset(res, 0, sizeof(*res));
        int rv = registry_execute(E.reg, txn, &at, signed_tx, slen, res);
        free(signed_tx);
        LG_ASSERT(rv == LG_OK); /* storage never fails here */
        LG_ASSERT(res->status == TXS_ACCEPTED || res->status == TXS_REJECTED);
        if (res->status == TXS_REJECTED) {
            LG_ASSERT(kebab(res->code));
            LG_ASSERT(res->message[0] != '\0');
        } else {
            LG_ASSERT(res->code[0] == '\0');
            LG_ASSERT(SIGNER(who) < N_MEMBERS); /* never the outsider */
        }
        n++;
    }
    store_txn_abort(txn);
    return n;
}

/* ---- seeds -----------------------------------------------------------------
 */

static void put_record(FILE *f, uint8_t who, Tc__Tx *tx)
{
    size_t len = tc__tx__get_packed_size(tx);
    uint8_t *b = malloc(len > 0 ? len : 1);
    LG_ASSERT(b != NULL);
    tc__tx__pack(tx, b);
    uint8_t hdr[3] = {who, (uint8_t)len, (uint8_t)(len >> 8)};
    fwrite(hdr, 1, 3, f);
    fwrite(b, 1, len, f);
    free(b);
}

static FILE *seed_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    LG_ASSERT(f != NULL);
    return f;
}

/* protobuf-c string fields are char *; these are only packed (read). */
static char *S(const char *s)
{
    return (char *)(uintptr_t)s;
}

static void write_seeds(const char *dir)
{
    static uint8_t hash[32] = {1, 2, 3};
    Tc__Outcome o1 = TC__OUTCOME__INIT, o2 = TC__OUTCOME__INIT;
    Tc__Outcome *outs[2] = {&o1, &o2};
    o1.id = S("P1");
    o1.type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    o1.measure = S("HbA1c change");
    o1.time_frame = S("Week 12");
    o2.id = S("S1");
    o2.type = TC__OUTCOME_TYPE__OUTCOME_SECONDARY;
    o2.measure = S("Weight");
    o2.time_frame = S("Week 24");
    Tc__ProtocolRegister pr = TC__PROTOCOL_REGISTER__INIT;
    pr.trial_id = S("NCT00000001");
    pr.brief_title = S("A trial");
    pr.official_title = S("A randomised trial");
    pr.sponsor_name = S("Org 0");
    pr.phase = S("PHASE2");
    pr.study_type = S("INTERVENTIONAL");
    pr.enrollment = 100;
    pr.start_date = S("2027-02");
    pr.primary_completion_date = S("2028-06-30");
    pr.protocol_doc_hash.data = hash;
    pr.protocol_doc_hash.len = 32;
    pr.source = S("json");
    pr.n_outcomes = 2;
    pr.outcomes = outs;
    Tc__Tx t1 = TC__TX__INIT;
    t1.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    t1.protocol_register = &pr;

    Tc__EthicsDecision ed = TC__ETHICS_DECISION__INIT;
    ed.trial_id = S("NCT00000001");
    ed.version = 1;
    ed.action = TC__ETHICS_ACTION__ETHICS_APPROVE;
    ed.decision_doc_hash.data = hash;
    ed.decision_doc_hash.len = 32;
    Tc__Tx t2 = TC__TX__INIT;
    t2.body_case = TC__TX__BODY_ETHICS;
    t2.ethics = &ed;

    Tc__SiteAuthorize sa = TC__SITE_AUTHORIZE__INIT;
    sa.trial_id = S("NCT00000001");
    sa.site = S("site-a");
    Tc__Tx t3 = TC__TX__INIT;
    t3.body_case = TC__TX__BODY_SITE_AUTHORIZE;
    t3.site_authorize = &sa;

    static uint8_t pseudonym[32] = {9, 9, 9};
    char *scopes[2] = {S("PARTICIPATION"), S("GRU")};
    Tc__Consent c = TC__CONSENT__INIT;
    c.trial_id = S("NCT00000001");
    c.pseudonym.data = pseudonym;
    c.pseudonym.len = 32;
    c.protocol_version = 1;
    c.consent_form_hash.data = hash;
    c.consent_form_hash.len = 32;
    c.action = TC__CONSENT_ACTION__CONSENT_RECORD;
    c.n_scopes = 2;
    c.scopes = scopes;
    Tc__Tx t4 = TC__TX__INIT;
    t4.body_case = TC__TX__BODY_CONSENT;
    t4.consent = &c;

    FILE *f = seed_file(dir, "flow-protocol-approve-site-consent");
    put_record(f, 0, &t1);
    put_record(f, 2, &t2);
    put_record(f, 0, &t3);
    put_record(f, 1, &t4);
    fclose(f);
    f = seed_file(dir, "protocol-only");
    put_record(f, 0, &t1);
    fclose(f);
    f = seed_file(dir, "wrong-roles");
    put_record(f, 1, &t1); /* a site registers a protocol */
    put_record(f, 3, &t2); /* an auditor approves */
    put_record(f, 4, &t1); /* an outsider */
    fclose(f);
    f = seed_file(dir, "replayed-nonce");
    put_record(f, 0, &t1);
    t1.nonce = 1;
    put_record(f, 0x40, &t1);
    put_record(f, 0x40, &t1);
    fclose(f);
    f = seed_file(dir, "clock-skew");
    t1.client_time_ms = 1;
    put_record(f, 0x80, &t1);
    fclose(f);
    f = seed_file(dir, "garbage");
    uint8_t junk[40];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    junk[1] = 30;
    junk[2] = 0;
    fwrite(junk, 1, sizeof(junk), f);
    fclose(f);
}

static void put_proposal(FILE *f, uint8_t who, const char *id,
                         Tc__GovAction action, const char *name,
                         const uint8_t *pk, const char *url)
{
    Tc__GovernanceProposal p = TC__GOVERNANCE_PROPOSAL__INIT;
    p.proposal_id = S(id);
    p.action = action;
    p.name = S(name);
    if (action == TC__GOV_ACTION__GOV_MEMBER_ADD) {
        p.organisation = S("Org 9");
        p.role = S("site");
    }
    if (pk != NULL) {
        p.public_key.data = (uint8_t *)(uintptr_t)pk;
        p.public_key.len = 32;
    }
    p.peer_url = S(url != NULL ? url : "");
    Tc__Tx t = TC__TX__INIT;
    t.body_case = TC__TX__BODY_GOVERNANCE_PROPOSAL;
    t.governance_proposal = &p;
    put_record(f, who, &t);
}

static void put_approval(FILE *f, uint8_t who, const char *id)
{
    Tc__GovernanceApproval a = TC__GOVERNANCE_APPROVAL__INIT;
    a.proposal_id = S(id);
    Tc__Tx t = TC__TX__INIT;
    t.body_case = TC__TX__BODY_GOVERNANCE_APPROVAL;
    t.governance_approval = &a;
    put_record(f, who, &t);
}

/* Governance seeds: sponsor (0) proposes, ethics (2) approves. */
static void write_gov_seeds(const char *dir)
{
    static const uint8_t k1[32] = {0x71, 1}, k2[32] = {0x72, 2};
    FILE *f = seed_file(dir, "gov-member-add-suspend");
    put_proposal(f, 0, "g1", TC__GOV_ACTION__GOV_MEMBER_ADD, "site-z", k1,
                 NULL);
    put_approval(f, 2, "g1");
    put_proposal(f, 0, "g2", TC__GOV_ACTION__GOV_MEMBER_SUSPEND, "site-a", NULL,
                 NULL);
    put_approval(f, 2, "g2");
    put_approval(f, 1, "g2"); /* site-a is suspended now */
    put_approval(f, 2, "g2"); /* closed */
    fclose(f);
    f = seed_file(dir, "gov-rotate-remove");
    put_proposal(f, 0, "r1", TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY, "auditor",
                 k2, NULL);
    put_approval(f, 2, "r1");
    put_approval(f, 3, "r1"); /* the auditor's old key */
    put_proposal(f, 0, "r2", TC__GOV_ACTION__GOV_MEMBER_REMOVE, "site-a", NULL,
                 NULL);
    put_approval(f, 2, "r2");
    put_approval(f, 1, "r2");
    fclose(f);
    f = seed_file(dir, "gov-replicas");
    put_proposal(f, 0, "n1", TC__GOV_ACTION__GOV_REPLICA_ADD, "node4", k1,
                 "tcp://127.0.0.1:27004");
    put_approval(f, 2, "n1");
    put_proposal(f, 0, "n2", TC__GOV_ACTION__GOV_REPLICA_MOVE, "node0", k2,
                 "tcp://[::1]:27100");
    put_approval(f, 2, "n2");
    put_proposal(f, 0, "n3", TC__GOV_ACTION__GOV_REPLICA_REMOVE, "node1", NULL,
                 NULL);
    put_approval(f, 2, "n3");
    put_proposal(f, 0, "n4", TC__GOV_ACTION__GOV_REPLICA_REMOVE, "node2", NULL,
                 NULL);
    fclose(f);
    f = seed_file(dir, "gov-refusals");
    put_proposal(f, 1, "x1", TC__GOV_ACTION__GOV_MEMBER_SUSPEND, "ethics", NULL,
                 NULL);
    put_proposal(f, 0, "x2", TC__GOV_ACTION__GOV_MEMBER_ADD, "ethics", k1,
                 NULL);
    put_proposal(f, 0, "x3", TC__GOV_ACTION__GOV_REPLICA_ADD, "node9", k1,
                 "udp://nowhere");
    put_proposal(f, 0, "x4", TC__GOV_ACTION__GOV_MEMBER_SUSPEND, "sponsor",
                 NULL, NULL);
    put_approval(f, 2, "x4");
    put_approval(f, 0, "x4");
    put_approval(f, 2, "none");
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
        const char *seeds = getenv("FUZZ_WRITE_SEEDS");
        if (seeds != NULL) {
            write_seeds(seeds);
            write_gov_seeds(seeds);
        }
    }
    static struct tx_result a[MAX_TXS], b[MAX_TXS];
    size_t na = run_block(data, size, a);
    size_t nb = run_block(data, size, b);
    LG_ASSERT(na == nb);
    for (size_t i = 0; i < na; i++) {
        LG_ASSERT(a[i].status == b[i].status);
        LG_ASSERT(strcmp(a[i].code, b[i].code) == 0);
        if (getenv("FUZZ_VERBOSE") != NULL)
            fprintf(stderr, "tx %zu: %s %s\n", i,
                    a[i].status == TXS_ACCEPTED ? "accepted" : "rejected",
                    a[i].code);
    }
    return 0;
}
