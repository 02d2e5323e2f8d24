/*
 * fuzz_api.c - the client API's request path without sockets. node/api.h
 * exposes no pure decode function, so this does what api.c and
 * node_client.c do with a request's bytes: the size cap
 * (client_recv_max_bytes), tc__client_request__unpack, the "no known
 * request type" refusal, then per request type the work the handler does
 * with client-chosen fields, against a ledger of three certified blocks:
 *   submit      tx_open under the chain id and the core's request check
 *   block/tx    ledger_get_block, ledger_get_cert, ledger_receipt
 *   consistency ledger_consistency with client sizes
 *   trial, pseudonym, member, list: the registry queries with client ids
 *               and pages (bounded as the node bounds them)
 * The reply to each is packed as a ClientReply, as the node would send.
 *
 * FUZZ_WRITE_SEEDS=DIR makes the first call write one valid request of
 * each kind (and a badly signed submit) into DIR.
 *
 * Invariants: no crash or sanitizer report; a submit that opens passes the
 * core's request check and one that does not gives a reason; queries give
 * LG_OK, LG_ENOTFOUND or LG_EINVAL, never more entries than the page asks.
 */
#include "crypto.h"
#include "genesis.h"
#include "ledger.h"
#include "merkle.h"
#include "registry.h"
#include "store.h"
#include "tl_fixture.h"
#include "tx.h"

#include <ftw.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_REPLICAS      4
#define CLIENT_RECV_MAX (1u << 20) /* config.c: client_recv_max_bytes */
#define PAGE_LIMIT_MAX  100
#define PAGE_LIMIT_DEF  20

static struct tl_fixture F;
static struct genesis *G;
static struct store *S;
static struct registry *R;
static struct ledger *L;
static char dir[64];
static uint8_t first_tx_id[32];

static uint8_t *tx_make(uint64_t nonce, size_t *len)
{
    return tl_fixture_tx(&F, nonce, len);
}

/* Block tip+1 with n txs (nonces from *nonce), certified by 0..2. */
static void block_add(uint32_t n, uint64_t *nonce)
{
    struct pbft_request reqs[4];
    uint8_t *txs[4], hash[32], stmt[PBFT_VOTE_STATEMENT_MAX];
    struct ledger_tip tip;
    ledger_tip(L, &tip);
    memset(reqs, 0, sizeof(reqs));
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        txs[i] = tx_make(++*nonce, &len);
        reqs[i].data = txs[i];
        reqs[i].len = (uint32_t)len;
        if (*nonce == 1)
            tx_id(txs[i], len, first_tx_id);
    }
    struct pbft_execute ex = {.seq = tip.height + 1,
                              .timestamp_ms = 5000 + tip.height,
                              .n_requests = n,
                              .requests = reqs};
    LG_ASSERT(ledger_apply(L, &ex, hash) == LG_OK);
    for (uint32_t i = 0; i < n; i++)
        free(txs[i]);
    struct pbft_vote votes[3];
    struct pbft_checkpoint_cert c = {
        .seq = ex.seq, .n_votes = 3, .votes = votes};
    memcpy(c.digest, hash, 32);
    for (uint32_t i = 0; i < 3; i++) {
        memset(&votes[i], 0, sizeof(votes[i]));
        votes[i].replica = i;
        votes[i].seq = ex.seq;
        memcpy(votes[i].digest, hash, 32);
        size_t sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, G->chain_id,
                                        &votes[i], stmt, sizeof(stmt));
        crypto_sign_raw(F.replica_sk[i], stmt, sl, votes[i].sig);
    }
    LG_ASSERT(ledger_put_cert(L, &c) == LG_OK);
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    ledger_close(L);
    registry_free(R);
    store_close(S);
    (void)nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    char err[512];
    LG_ASSERT(crypto_setup() == LG_OK);
    lg_log_set_level(LG_OFF);
    tl_fixture_init(&F, "fuzz-api");
    G = F.g;
    snprintf(dir, sizeof(dir), "/tmp/fuzz_api.XXXXXX");
    LG_ASSERT(mkdtemp(dir) != NULL);
    LG_ASSERT(store_open(dir, true, &S, err, sizeof(err)) == LG_OK);
    LG_ASSERT(registry_new(G, &R) == LG_OK);
    LG_ASSERT(ledger_open(S, G, R, &L, err, sizeof(err)) == LG_OK);
    uint64_t nonce = 0;
    block_add(1, &nonce);
    block_add(3, &nonce);
    block_add(2, &nonce);
    atexit(teardown);
}

/* ---- the handler's work ----------------------------------------------------
 */

static void page(const Tc__Page *p, uint64_t *offset, size_t *limit)
{
    *offset = p ? p->offset : 0;
    *limit = p && p->limit ? p->limit : PAGE_LIMIT_DEF;
    if (*limit > PAGE_LIMIT_MAX)
        *limit = PAGE_LIMIT_MAX;
}

static void reply_packs(Tc__ClientReply *r)
{
    size_t len = tc__client_reply__get_packed_size(r);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    LG_ASSERT(buf != NULL);
    LG_ASSERT(tc__client_reply__pack(r, buf) == len);
    free(buf);
}

static void query_ok(int rv)
{
    LG_ASSERT(rv == LG_OK || rv == LG_ENOTFOUND || rv == LG_EINVAL ||
              rv == LG_ENOTREADY);
}

static void do_submit(const Tc__Submit *s)
{
    struct tx_view v;
    char why[256] = "";
    memset(&v, 0, sizeof(v));
    int rv = tx_open(s->signed_tx.data, s->signed_tx.len, G->chain_id, &v, why,
                     sizeof(why));
    if (rv != LG_OK) {
        LG_ASSERT(why[0] != '\0');
        Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
        r.code = TC__REPLY_CODE__REPLY_BAD_REQUEST;
        r.error = why;
        reply_packs(&r);
        return;
    }
    struct pbft_request req = {.req_no = v.nonce,
                               .len = (uint32_t)s->signed_tx.len,
                               .data = s->signed_tx.data};
    memcpy(req.client, v.signer, 32);
    LG_ASSERT(txcheck_request_valid(G->chain_id, NULL, &req));
    struct ledger_tx_loc loc;
    query_ok(ledger_find_tx(L, v.tx_id, &loc));
    tx_view_free(&v);
}

static void do_block(uint64_t h)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    Tc__Certificate *cert = NULL;
    int rv = ledger_get_block(L, h, &bytes, &len);
    query_ok(rv);
    free(bytes);
    rv = ledger_get_cert(L, h, &cert);
    query_ok(rv);
    if (cert != NULL)
        tc__certificate__free_unpacked(cert, NULL);
}

static void do_tx(const ProtobufCBinaryData *id)
{
    if (id->len != 32)
        return; /* "A transaction id is 32 bytes." */
    Tc__Receipt *rc = NULL;
    int rv = ledger_receipt(L, id->data, &rc);
    query_ok(rv);
    if (rc == NULL)
        return;
    Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
    r.reply_case = TC__CLIENT_REPLY__REPLY_RECEIPT;
    r.receipt = rc;
    reply_packs(&r);
    tc__receipt__free_unpacked(rc, NULL);
}

static void do_consistency(const Tc__GetConsistency *q)
{
    static uint8_t path[MERKLE_MAX_PATH][32];
    size_t n_path = 0;
    query_ok(ledger_consistency(L, q->size1, q->size2, path, &n_path));
    LG_ASSERT(n_path <= MERKLE_MAX_PATH);
}

static void do_entries(int kind, const Tc__ClientRequest *req)
{
    uint64_t offset, total = 0, idx[PAGE_LIMIT_MAX];
    size_t limit, k = 0;
    int rv = LG_OK;
    switch (kind) {
    case TC__CLIENT_REQUEST__REQ_TRIAL: {
        Tc__TrialSummary sum;
        page(req->trial->page, &offset, &limit);
        rv = registry_trial_summary(R, S, req->trial->trial_id, &sum);
        query_ok(rv);
        if (rv == LG_OK)
            registry_trial_summary_clear(&sum);
        rv = registry_trial_entries(R, S, req->trial->trial_id, offset, limit,
                                    idx, &k, &total);
        break;
    }
    case TC__CLIENT_REQUEST__REQ_PSEUDONYM:
        if (req->pseudonym->pseudonym.len != 32)
            return;
        page(req->pseudonym->page, &offset, &limit);
        rv = registry_pseudonym_entries(R, S, req->pseudonym->trial_id,
                                        req->pseudonym->pseudonym.data, offset,
                                        limit, idx, &k, &total);
        break;
    case TC__CLIENT_REQUEST__REQ_MEMBER:
        page(req->member->page, &offset, &limit);
        rv = registry_member_entries(R, S, req->member->member, offset, limit,
                                     idx, &k, &total);
        break;
    default: {
        static char ids[PAGE_LIMIT_MAX][REGISTRY_ID_MAX + 1];
        page(req->list_trials->page, &offset, &limit);
        rv = registry_list_trials(R, S, offset, limit, ids, &k, &total);
        break;
    }
    }
    query_ok(rv);
    if (rv != LG_OK)
        return;
    LG_ASSERT(k <= limit);
    for (size_t i = 0; i < k; i++) {
        Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
        if (kind == TC__CLIENT_REQUEST__REQ_LIST_TRIALS)
            break;
        LG_ASSERT(ledger_entry(L, idx[i], &e) == LG_OK);
        ledger_entry_clear(&e);
    }
}

/* ---- seeds ------------------------------------------------------------------
 */

static void seed(const char *d, const char *name, const Tc__ClientRequest *r)
{
    char path[512];
    size_t len = tc__client_request__get_packed_size(r);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    LG_ASSERT(buf != NULL);
    tc__client_request__pack(r, buf);
    snprintf(path, sizeof(path), "%s/%s", d, name);
    LG_ASSERT(lg_write_file(path, buf, len, 0644) == LG_OK);
    free(buf);
}

static void write_seeds(const char *d)
{
    Tc__ClientRequest r = TC__CLIENT_REQUEST__INIT;
    size_t len;
    uint8_t *tx = tx_make(100, &len);
    Tc__Submit sub = TC__SUBMIT__INIT;
    sub.signed_tx = (ProtobufCBinaryData){len, tx};
    sub.wait = true;
    r.req_case = TC__CLIENT_REQUEST__REQ_SUBMIT;
    r.submit = &sub;
    seed(d, "submit-valid", &r);
    tx[len - 1] ^= 1;
    seed(d, "submit-bad-sig", &r);
    free(tx);

    Tc__GetBlock gb = TC__GET_BLOCK__INIT;
    gb.height = 2;
    r.req_case = TC__CLIENT_REQUEST__REQ_BLOCK;
    r.block = &gb;
    seed(d, "block-2", &r);

    Tc__GetTx gt = TC__GET_TX__INIT;
    gt.tx_id = (ProtobufCBinaryData){32, first_tx_id};
    r.req_case = TC__CLIENT_REQUEST__REQ_TX;
    r.tx = &gt;
    seed(d, "tx-first", &r);

    Tc__GetConsistency gc = TC__GET_CONSISTENCY__INIT;
    gc.size1 = 1;
    gc.size2 = 6;
    r.req_case = TC__CLIENT_REQUEST__REQ_CONSISTENCY;
    r.consistency = &gc;
    seed(d, "consistency-1-6", &r);

    Tc__Page pg = TC__PAGE__INIT;
    pg.offset = 0;
    pg.limit = 5;
    Tc__QueryTrial qt = TC__QUERY_TRIAL__INIT;
    qt.trial_id = (char *)(uintptr_t) "NCT00000002";
    qt.page = &pg;
    r.req_case = TC__CLIENT_REQUEST__REQ_TRIAL;
    r.trial = &qt;
    seed(d, "trial", &r);

    static uint8_t pseudo[32] = {7};
    Tc__QueryPseudonym qp = TC__QUERY_PSEUDONYM__INIT;
    qp.trial_id = (char *)(uintptr_t) "NCT00000002";
    qp.pseudonym = (ProtobufCBinaryData){32, pseudo};
    r.req_case = TC__CLIENT_REQUEST__REQ_PSEUDONYM;
    r.pseudonym = &qp;
    seed(d, "pseudonym", &r);

    Tc__QueryMember qm = TC__QUERY_MEMBER__INIT;
    qm.member = (char *)(uintptr_t) "sponsor";
    qm.page = &pg;
    r.req_case = TC__CLIENT_REQUEST__REQ_MEMBER;
    r.member = &qm;
    seed(d, "member", &r);

    Tc__ListTrials lt = TC__LIST_TRIALS__INIT;
    lt.page = &pg;
    r.req_case = TC__CLIENT_REQUEST__REQ_LIST_TRIALS;
    r.list_trials = &lt;
    seed(d, "list-trials", &r);

    Tc__GetStatus gs = TC__GET_STATUS__INIT;
    r.req_case = TC__CLIENT_REQUEST__REQ_STATUS;
    r.status = &gs;
    seed(d, "status", &r);

    r.req_case = TC__CLIENT_REQUEST__REQ__NOT_SET;
    seed(d, "empty", &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
        const char *seeds = getenv("FUZZ_WRITE_SEEDS");
        if (seeds != NULL)
            write_seeds(seeds);
    }
    if (size > CLIENT_RECV_MAX)
        return 0; /* NNG refuses the frame before any decoding */
    Tc__ClientRequest *req = tc__client_request__unpack(NULL, size, data);
    if (req == NULL)
        return 0; /* "The request is not a ClientRequest message." */
    switch (req->req_case) {
    case TC__CLIENT_REQUEST__REQ_SUBMIT:
        do_submit(req->submit);
        break;
    case TC__CLIENT_REQUEST__REQ_BLOCK:
        do_block(req->block->height);
        break;
    case TC__CLIENT_REQUEST__REQ_TX:
        do_tx(&req->tx->tx_id);
        break;
    case TC__CLIENT_REQUEST__REQ_CONSISTENCY:
        do_consistency(req->consistency);
        break;
    case TC__CLIENT_REQUEST__REQ_TRIAL:
    case TC__CLIENT_REQUEST__REQ_PSEUDONYM:
    case TC__CLIENT_REQUEST__REQ_MEMBER:
    case TC__CLIENT_REQUEST__REQ_LIST_TRIALS:
        do_entries((int)req->req_case, req);
        break;
    default:
        break; /* status, genesis: no client fields; not set: refused */
    }
    tc__client_request__free_unpacked(req, NULL);
    return 0;
}
