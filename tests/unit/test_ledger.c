/* Unit tests for node/ledger.c: blocks from synthetic committed batches
 * over a real LevelDB store, the real registry and real signatures; roots
 * and proofs against node/merkle.c; reopen without replay; other-chain and
 * corrupt stores refused; receipts verified offline, tampered ones refused
 * with the right reason; catch-up from certified blocks. Replica-set
 * changes by real governance txs: next_replicas in the header, the epoch
 * index across reopen and rebuild, receipts that walk every change from the
 * genesis (and fail with a link dropped, reordered or forged), catch-up
 * checking each block against the set in force. Prints apply
 * throughput for 100-tx batches and disk bytes per tx (not asserted). */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "codec.h"
#include "crypto.h"
#include "genesis.h"
#include "ledger.h"
#include "merkle.h"
#include "registry.h"
#include "store.h"
#include "tx.pb-c.h"
#include "verify.h"

#include <dirent.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_REPLICAS 4
#define LEAVES_MAX 4096

/* ---- fixture ------------------------------------------------------------ */

struct keys {
    uint8_t replica_pk[N_REPLICAS][32];
    uint8_t replica_sk[N_REPLICAS][64];
    uint8_t sponsor_pk[32];
    uint8_t sponsor_sk[64];
};

struct fx {
    struct keys k;
    struct genesis *g;
    char dir[64];
    struct store *store;
    struct registry *reg;
    struct ledger *l;
    uint64_t nonce;
    /* every leaf hash ever appended, for merkle.c's in-memory functions */
    uint8_t (*leaves)[32];
    uint64_t n_leaves;
};

static void keys_make(struct keys *k)
{
    for (int i = 0; i < N_REPLICAS; i++)
        crypto_sign_keypair(k->replica_pk[i], k->replica_sk[i]);
    crypto_sign_keypair(k->sponsor_pk, k->sponsor_sk);
}

static struct genesis *genesis_make(const struct keys *k, const char *name)
{
    char json[4096], hex[65];
    size_t at = 0;
    struct genesis *g = calloc(1, sizeof(*g));
    char err[256];

    assert_non_null(g);
    at += (size_t)snprintf(json + at, sizeof(json) - at,
                           "{\"chain_name\":\"%s\",\"created\":"
                           "\"2026-11-21T00:00:00Z\",\"replicas\":[",
                           name);
    for (int i = 0; i < N_REPLICAS; i++) {
        lg_hex(k->replica_pk[i], 32, hex);
        at += (size_t)snprintf(json + at, sizeof(json) - at,
                               "%s{\"id\":%d,\"name\":\"node%d\",\"public_"
                               "key\":\"%s\",\"peer_url\":\"tcp://"
                               "127.0.0.1:%d\"}",
                               i ? "," : "", i, i, hex, 27000 + i);
    }
    lg_hex(k->sponsor_pk, 32, hex);
    at += (size_t)snprintf(json + at, sizeof(json) - at,
                           "],\"members\":[{\"name\":\"sponsor\",\"role\":"
                           "\"sponsor\",\"organisation\":\"Acme\","
                           "\"public_key\":\"%s\"}],\"governance\":{"
                           "\"threshold\":1,\"voters\":[\"sponsor\"]}}",
                           hex);
    assert_true(at < sizeof(json));
    if (genesis_parse((const unsigned char *)json, at, g, err, sizeof(err)) !=
        LG_OK)
        fail_msg("genesis: %s", err);
    return g;
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void open_all(struct fx *f)
{
    char err[512];

    assert_int_equal(store_open(f->dir, true, &f->store, err, sizeof(err)),
                     LG_OK);
    assert_int_equal(registry_new(f->g, &f->reg), LG_OK);
    if (ledger_open(f->store, f->g, f->reg, &f->l, err, sizeof(err)) != LG_OK)
        fail_msg("ledger_open: %s", err);
}

static void open_all_ledger(struct fx *f)
{
    char err[512];

    if (ledger_open(f->store, f->g, f->reg, &f->l, err, sizeof(err)) != LG_OK)
        fail_msg("ledger_open: %s", err);
}

static void close_all(struct fx *f)
{
    ledger_close(f->l);
    registry_free(f->reg);
    store_close(f->store);
    f->l = NULL;
    f->reg = NULL;
    f->store = NULL;
}

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(crypto_setup(), LG_OK);
    keys_make(&f->k);
    f->g = genesis_make(&f->k, "test");
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_ledger.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->leaves = calloc(LEAVES_MAX, sizeof(*f->leaves));
    assert_non_null(f->leaves);
    open_all(f);
    return f;
}

static void fx_free(struct fx *f)
{
    close_all(f);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    genesis_free(f->g);
    free(f->g);
    free(f->leaves);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new();
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* A well-signed protocol registration by the sponsor (malloc'd bytes). */
static uint8_t *tx_make(struct fx *f, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__ProtocolRegister pr = TC__PROTOCOL_REGISTER__INIT;
    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    Tc__Outcome oc = TC__OUTCOME__INIT, *ocs[1] = {&oc};
    char trial[32];
    uint8_t *body, sig[64], *out;
    size_t blen;

    f->nonce++;
    snprintf(trial, sizeof(trial), "NCT%08llu", (unsigned long long)f->nonce);
    pr.trial_id = trial;
    pr.brief_title = (char *)"A trial";
    pr.sponsor_name = (char *)"Acme";
    oc.id = (char *)"P1";
    oc.type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    oc.measure = (char *)"HbA1c change";
    oc.time_frame = (char *)"12 months";
    pr.n_outcomes = 1;
    pr.outcomes = ocs;
    tx.chain_id = (ProtobufCBinaryData){32, f->g->chain_id};
    tx.signer = (ProtobufCBinaryData){32, f->k.sponsor_pk};
    tx.nonce = f->nonce;
    tx.client_time_ms = 1000;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &pr;
    blen = tc__tx__get_packed_size(&tx);
    body = malloc(blen);
    assert_non_null(body);
    tc__tx__pack(&tx, body);
    crypto_sign_tagged(TAG_TX, f->k.sponsor_sk, body, blen, sig);
    st.body = (ProtobufCBinaryData){blen, body};
    st.sig = (ProtobufCBinaryData){64, sig};
    *len = tc__signed_tx__get_packed_size(&st);
    out = malloc(*len);
    assert_non_null(out);
    tc__signed_tx__pack(&st, out);
    free(body);
    return out;
}

/* Applies a block of the given txs (borrowed) and records their leaves. */
static void apply_txs(struct fx *f, uint8_t **txs, const size_t *lens,
                      uint32_t n, uint8_t hash[32])
{
    struct pbft_request *reqs = calloc(n ? n : 1, sizeof(*reqs));
    struct pbft_execute ex;
    struct ledger_tip tip;

    assert_non_null(reqs);
    ledger_tip(f->l, &tip);
    for (uint32_t i = 0; i < n; i++) {
        memcpy(reqs[i].client, f->k.sponsor_pk, 32);
        reqs[i].data = txs[i];
        reqs[i].len = (uint32_t)lens[i];
        assert_true(f->n_leaves < LEAVES_MAX);
        merkle_leaf_hash(txs[i], lens[i], f->leaves[f->n_leaves++]);
    }
    memset(&ex, 0, sizeof(ex));
    ex.seq = tip.height + 1;
    ex.view = 0;
    ex.timestamp_ms = 1000 * ex.seq;
    ex.n_requests = n;
    ex.requests = reqs;
    if (ledger_apply(f->l, &ex, hash) != LG_OK)
        fail_msg("ledger_apply: %s", ledger_errmsg(f->l));
    free(reqs);
}

/* Applies a block of n fresh txs; tx_ids (may be NULL) gets their ids. */
static void apply_block(struct fx *f, uint32_t n, uint8_t hash[32],
                        uint8_t (*tx_ids)[32])
{
    uint8_t **txs = calloc(n ? n : 1, sizeof(*txs));
    size_t *lens = calloc(n ? n : 1, sizeof(*lens));

    assert_non_null(txs);
    assert_non_null(lens);
    for (uint32_t i = 0; i < n; i++) {
        txs[i] = tx_make(f, &lens[i]);
        if (tx_ids != NULL)
            crypto_sha256(txs[i], lens[i], tx_ids[i]);
    }
    apply_txs(f, txs, lens, n, hash);
    for (uint32_t i = 0; i < n; i++)
        free(txs[i]);
    free(txs);
    free(lens);
}

/* A certificate of block (height, hash) signed by replicas 0..n_votes-1. */
static void cert_make(const struct fx *f, uint64_t height,
                      const uint8_t hash[32], uint32_t n_votes,
                      struct pbft_checkpoint_cert *c, struct pbft_vote *votes)
{
    uint8_t st[PBFT_VOTE_STATEMENT_MAX];

    memset(c, 0, sizeof(*c));
    c->seq = height;
    memcpy(c->digest, hash, 32);
    c->n_votes = n_votes;
    c->votes = votes;
    for (uint32_t i = 0; i < n_votes; i++) {
        size_t sl;

        memset(&votes[i], 0, sizeof(votes[i]));
        votes[i].replica = i;
        votes[i].seq = height;
        memcpy(votes[i].digest, hash, 32);
        sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, f->g->chain_id, &votes[i],
                                 st, sizeof(st));
        assert_true(sl > 0 && sl <= sizeof(st));
        crypto_sign_raw(f->k.replica_sk[i], st, sl, votes[i].sig);
    }
}

static void certify(struct fx *f, uint64_t height, const uint8_t hash[32])
{
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[N_REPLICAS];

    cert_make(f, height, hash, 3, &c, votes);
    if (ledger_put_cert(f->l, &c) != LG_OK)
        fail_msg("ledger_put_cert: %s", ledger_errmsg(f->l));
}

static Tc__BlockHeader *header_of(struct fx *f, uint64_t height)
{
    uint8_t *bytes;
    size_t len;
    Tc__Block *b;
    Tc__BlockHeader *h;

    assert_int_equal(ledger_get_block(f->l, height, &bytes, &len), LG_OK);
    b = tc__block__unpack(NULL, len, bytes);
    assert_non_null(b);
    h = tc__block_header__unpack(NULL, b->header.len, b->header.data);
    assert_non_null(h);
    tc__block__free_unpacked(b, NULL);
    free(bytes);
    return h;
}

/* ---- tests -------------------------------------------------------------- */

static void test_ledger_fresh_store_starts_at_genesis(void **state)
{
    struct fx *f = *state;
    struct ledger_tip tip;
    uint8_t empty[32];

    ledger_tip(f->l, &tip);
    crypto_sha256("", 0, empty);
    assert_int_equal(tip.height, 0);
    assert_int_equal(tip.log_size, 0);
    assert_memory_equal(tip.block_hash, f->g->chain_id, 32);
    assert_memory_equal(tip.log_root, empty, 32);
}

static void test_ledger_apply_roots_match_merkle(void **state)
{
    struct fx *f = *state;
    static const uint32_t sizes[] = {0, 1, 2, 3, 5, 8, 13, 1, 0, 7};
    uint8_t prev[32], hash[32], root[32];

    memcpy(prev, f->g->chain_id, 32);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t first = f->n_leaves;
        Tc__BlockHeader *h;
        struct ledger_tip tip;

        apply_block(f, sizes[i], hash, NULL);
        h = header_of(f, i + 1);
        assert_int_equal(h->height, i + 1);
        assert_int_equal(h->n_txs, sizes[i]);
        assert_memory_equal(h->prev_hash.data, prev, 32);
        merkle_root((const uint8_t(*)[32])f->leaves + first, sizes[i], root);
        assert_memory_equal(h->tx_root.data, root, 32);
        merkle_root((const uint8_t(*)[32])f->leaves, f->n_leaves, root);
        assert_int_equal(h->log_size, f->n_leaves);
        assert_memory_equal(h->log_root.data, root, 32);
        assert_int_equal(h->timestamp_ms, 1000 * (i + 1));
        ledger_tip(f->l, &tip);
        assert_int_equal(tip.height, i + 1);
        assert_memory_equal(tip.block_hash, hash, 32);
        assert_memory_equal(tip.log_root, root, 32);
        tc__block_header__free_unpacked(h, NULL);
        memcpy(prev, hash, 32);
    }
}

static void test_ledger_proofs_verify_for_many_sizes(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], root1[32], root2[32];
    uint8_t path[MERKLE_MAX_PATH][32], want[MERKLE_MAX_PATH][32];
    size_t n_path, n_want;
    uint32_t block = 1;

    while (f->n_leaves < 70) {
        apply_block(f, block, hash, NULL);
        block = block % 9 + 1;
    }
    for (uint64_t size = 1; size <= f->n_leaves; size++) {
        merkle_root((const uint8_t(*)[32])f->leaves, size, root2);
        assert_int_equal(ledger_log_root(f->l, size, root1), LG_OK);
        assert_memory_equal(root1, root2, 32);
        for (uint64_t i = 0; i < size; i++) {
            assert_int_equal(ledger_inclusion(f->l, i, size, path, &n_path),
                             LG_OK);
            assert_true(merkle_verify_inclusion(f->leaves[i], i, size,
                                                (const uint8_t(*)[32])path,
                                                n_path, root2));
            assert_int_equal(
                merkle_inclusion_proof((const uint8_t(*)[32])f->leaves, size, i,
                                       want, &n_want),
                LG_OK);
            assert_int_equal(n_path, n_want);
            assert_memory_equal(path, want, n_path * 32);
        }
        for (uint64_t s1 = 1; s1 <= size; s1++) {
            merkle_root((const uint8_t(*)[32])f->leaves, s1, root1);
            assert_int_equal(ledger_consistency(f->l, s1, size, path, &n_path),
                             LG_OK);
            assert_true(merkle_verify_consistency(
                s1, size, root1, root2, (const uint8_t(*)[32])path, n_path));
            assert_int_equal(
                merkle_consistency_proof((const uint8_t(*)[32])f->leaves, s1,
                                         size, want, &n_want),
                LG_OK);
            assert_int_equal(n_path, n_want);
            assert_memory_equal(path, want, n_path * 32);
        }
    }
    assert_int_equal(ledger_inclusion(f->l, 5, 5, path, &n_path), LG_EINVAL);
    assert_int_equal(ledger_inclusion(f->l, 0, f->n_leaves + 1, path, &n_path),
                     LG_EINVAL);
    assert_int_equal(ledger_consistency(f->l, 6, 5, path, &n_path), LG_EINVAL);
}

static void test_ledger_reopen_resumes_tip_without_replay(void **state)
{
    struct fx *f = *state;
    struct ledger_tip before, after;
    uint8_t hash[32], root[32];

    for (int i = 0; i < 5; i++)
        apply_block(f, (uint32_t)i + 2, hash, NULL);
    certify(f, 5, hash);
    ledger_tip(f->l, &before);
    close_all(f);
    open_all(f);
    ledger_tip(f->l, &after);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(after.last_certified, 5);
    /* The log continues where it stopped. */
    apply_block(f, 3, hash, NULL);
    ledger_tip(f->l, &after);
    merkle_root((const uint8_t(*)[32])f->leaves, f->n_leaves, root);
    assert_int_equal(after.height, 6);
    assert_int_equal(after.log_size, f->n_leaves);
    assert_memory_equal(after.log_root, root, 32);
}

static void test_ledger_other_chain_is_refused(void **state)
{
    struct fx *f = *state;
    struct genesis *other = genesis_make(&f->k, "other");
    struct ledger *l = NULL;
    char err[512], hex[65];
    uint8_t hash[32];

    apply_block(f, 1, hash, NULL);
    assert_int_equal(ledger_open(f->store, other, f->reg, &l, err, sizeof(err)),
                     LG_ECHAIN);
    assert_null(l);
    lg_hex(f->g->chain_id, 32, hex);
    assert_non_null(strstr(err, hex));
    lg_hex(other->chain_id, 32, hex);
    assert_non_null(strstr(err, hex));
    genesis_free(other);
    free(other);
}

static void test_ledger_lost_metadata_is_corrupt(void **state)
{
    struct fx *f = *state;
    struct store_batch *b = store_batch_new();
    struct ledger *l = NULL;
    char err[512];
    uint8_t hash[32];

    apply_block(f, 2, hash, NULL);
    store_batch_delete(b, "m/tip", 5);
    assert_int_equal(store_write(f->store, b, true), LG_OK);
    assert_int_equal(ledger_open(f->store, f->g, f->reg, &l, err, sizeof(err)),
                     LG_ECORRUPT);
    assert_non_null(strstr(err, "--repair"));
    /* Blocks without a chain id: metadata lost, not a fresh store. */
    store_batch_clear(b);
    store_batch_delete(b, "m/chain", 7);
    assert_int_equal(store_write(f->store, b, true), LG_OK);
    assert_int_equal(ledger_open(f->store, f->g, f->reg, &l, err, sizeof(err)),
                     LG_ECORRUPT);
    assert_non_null(strstr(err, "wipe the data directory"));
    store_batch_free(b);
}

static void test_ledger_apply_refuses_wrong_height(void **state)
{
    struct fx *f = *state;
    struct pbft_execute ex;
    uint8_t hash[32];

    memset(&ex, 0, sizeof(ex));
    ex.seq = 2;
    assert_int_equal(ledger_apply(f->l, &ex, hash), LG_EINVAL);
    ex.seq = 0;
    assert_int_equal(ledger_apply(f->l, &ex, hash), LG_EINVAL);
    ex.seq = 1;
    assert_int_equal(ledger_apply(f->l, &ex, hash), LG_OK);
    assert_int_equal(ledger_apply(f->l, &ex, hash), LG_EINVAL);
}

static void test_ledger_repeated_tx_enters_once(void **state)
{
    struct fx *f = *state;
    uint8_t *txs[3], hash[32], id[32];
    size_t lens[3];
    struct ledger_tx_loc loc;
    Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
    Tc__TxResult *r;

    apply_block(f, 2, hash, NULL);
    txs[0] = tx_make(f, &lens[0]);
    txs[1] = tx_make(f, &lens[1]);
    txs[2] = txs[0];
    lens[2] = lens[0];
    crypto_sha256(txs[0], lens[0], id);
    apply_txs(f, txs, lens, 3, hash); /* block 2: the repeat is tx 2 */
    apply_txs(f, txs, lens, 1, hash); /* block 3: again */
    assert_int_equal(ledger_find_tx(f->l, id, &loc), LG_OK);
    assert_int_equal(loc.height, 2);
    assert_int_equal(loc.index, 0);
    assert_int_equal(loc.log_index, 2);
    /* The repeats never entered a block: block 2 holds two txs, block 3
     * none, and the log grew by two. */
    struct ledger_tip t;
    ledger_tip(f->l, &t);
    assert_int_equal(t.height, 3);
    assert_int_equal(t.log_size, 4);
    assert_int_equal(ledger_entry(f->l, 4, &e), LG_ENOTFOUND);
    (void)r;
    free(txs[0]);
    free(txs[1]);
}

static void test_ledger_entry_reads_tx_in_place(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], ids[4][32];
    Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
    Tc__TxResult *r;

    apply_block(f, 1, hash, NULL);
    apply_block(f, 4, hash, ids);
    assert_int_equal(ledger_entry(f->l, 3, &e), LG_OK);
    assert_int_equal(e.height, 2);
    assert_int_equal(e.time_ms, 2000);
    assert_int_equal(e.log_index, 3);
    assert_memory_equal(e.tx_id.data, ids[2], 32);
    assert_string_equal(e.signer_name, "sponsor");
    r = tc__tx_result__unpack(NULL, e.result.len, e.result.data);
    assert_non_null(r);
    assert_memory_equal(r->tx_id.data, ids[2], 32);
    if (r->status != TC__TX_STATUS__TX_ACCEPTED)
        fail_msg("registry rejected: %s %s", r->code, r->message);
    tc__tx_result__free_unpacked(r, NULL);
    ledger_entry_clear(&e);
    assert_int_equal(ledger_entry(f->l, 5, &e), LG_ENOTFOUND);
}

static void test_ledger_receipt_verifies_offline(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], ids[5][32];
    Tc__Receipt *r = NULL;
    struct verify_receipt_info info;
    char why[256];

    apply_block(f, 3, hash, NULL);
    certify(f, 1, hash);
    apply_block(f, 5, hash, ids);
    assert_int_equal(ledger_receipt(f->l, ids[3], &r), LG_ENOTREADY);
    certify(f, 2, hash);
    apply_block(f, 2, hash, NULL); /* the log grows past the receipt */
    assert_int_equal(ledger_receipt(f->l, ids[3], &r), LG_OK);
    if (!verify_receipt(f->g, r, &info, why, sizeof(why)))
        fail_msg("verify_receipt: %s", why);
    assert_int_equal(info.height, 2);
    assert_int_equal(info.block_index, 3);
    assert_int_equal(info.log_index, 6);
    assert_int_equal(info.log_size, 8);
    assert_int_equal(info.status, TC__TX_STATUS__TX_ACCEPTED);
    assert_memory_equal(info.tx_id, ids[3], 32);
    tc__receipt__free_unpacked(r, NULL);
    memset(ids[0], 0xee, 32);
    assert_int_equal(ledger_receipt(f->l, ids[0], &r), LG_ENOTFOUND);
}

/* Fetches a fresh receipt, applies one tampering, expects `reason`. */
typedef void (*tamper_fn)(struct fx *f, Tc__Receipt *r);

/* Block proofs come from the block's tree held in memory: every receipt
 * of blocks of many sizes (odd ones leave incomplete subtrees) verifies. */
static void test_ledger_receipts_for_many_block_sizes(void **state)
{
    struct fx *f = *state;
    static const uint32_t sizes[] = {1, 2, 3, 5, 7, 8, 9, 13, 17};
    uint8_t hash[32], ids[17][32];
    struct verify_receipt_info info;
    char why[256];

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        apply_block(f, sizes[s], hash, ids);
        certify(f, s + 1, hash);
        for (uint32_t i = 0; i < sizes[s]; i++) {
            Tc__Receipt *r = NULL;
            assert_int_equal(ledger_receipt(f->l, ids[i], &r), LG_OK);
            if (!verify_receipt(f->g, r, &info, why, sizeof(why)))
                fail_msg("size %u tx %u: %s", sizes[s], i, why);
            assert_int_equal(info.block_index, i);
            tc__receipt__free_unpacked(r, NULL);
        }
    }
}

/* Receipts of one block share its cached tree: every receipt of
 * two interleaved blocks verifies and places its tx, and asking again
 * after a reopen (nothing cached) gives the same bytes. */
static void test_ledger_receipts_of_a_block_all_verify(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], ids[2][5][32];
    uint8_t *first[2][5];
    size_t first_len[2][5];
    struct verify_receipt_info info;
    char why[256];

    for (int b = 0; b < 2; b++) {
        apply_block(f, 5, hash, ids[b]);
        certify(f, (uint64_t)b + 1, hash);
    }
    for (int i = 0; i < 5; i++) {
        for (int b = 0; b < 2; b++) {
            Tc__Receipt *r = NULL;
            assert_int_equal(ledger_receipt(f->l, ids[b][i], &r), LG_OK);
            if (!verify_receipt(f->g, r, &info, why, sizeof(why)))
                fail_msg("verify_receipt: %s", why);
            assert_int_equal(info.height, b + 1);
            assert_int_equal(info.block_index, i);
            assert_memory_equal(info.tx_id, ids[b][i], 32);
            first_len[b][i] = tc__receipt__get_packed_size(r);
            first[b][i] = malloc(first_len[b][i]);
            assert_non_null(first[b][i]);
            tc__receipt__pack(r, first[b][i]);
            tc__receipt__free_unpacked(r, NULL);
        }
    }
    ledger_close(f->l);
    open_all_ledger(f);
    for (int b = 1; b >= 0; b--) {
        for (int i = 4; i >= 0; i--) {
            Tc__Receipt *r = NULL;
            assert_int_equal(ledger_receipt(f->l, ids[b][i], &r), LG_OK);
            size_t len = tc__receipt__get_packed_size(r);
            uint8_t *bytes = malloc(len);
            assert_non_null(bytes);
            tc__receipt__pack(r, bytes);
            assert_int_equal(len, first_len[b][i]);
            assert_memory_equal(bytes, first[b][i], len);
            free(bytes);
            free(first[b][i]);
            tc__receipt__free_unpacked(r, NULL);
        }
    }
}

static void expect_refused(struct fx *f, const uint8_t id[32], tamper_fn t,
                           const char *reason)
{
    Tc__Receipt *r = NULL;
    Tc__EpochLink *links[4];
    char why[400] = "";
    size_t n_votes, n_epochs;

    assert_int_equal(ledger_receipt(f->l, id, &r), LG_OK);
    n_votes = r->cert->n_votes;
    n_epochs = r->n_epochs;
    assert_true(n_epochs <= 4);
    for (size_t i = 0; i < n_epochs; i++)
        links[i] = r->epochs[i];
    t(f, r);
    if (verify_receipt(f->g, r, NULL, why, sizeof(why)))
        fail_msg("a tampered receipt verified (want \"%s\")", reason);
    if (strstr(why, reason) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", why, reason);
    r->cert->n_votes = n_votes; /* so free_unpacked frees every vote */
    r->n_epochs = n_epochs;     /* ... and every link */
    for (size_t i = 0; i < n_epochs; i++)
        r->epochs[i] = links[i];
    tc__receipt__free_unpacked(r, NULL);
}

static void flip_tx(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->signed_tx.data[r->signed_tx.len - 3] ^= 1;
}

static void flip_result(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->result.data[r->result.len - 1] ^= 1;
}

static void flip_header(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->header.data[r->header.len - 1] ^= 1;
}

static void flip_log_proof(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->log_proof->path[0].data[0] ^= 1;
}

static void flip_block_proof(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->block_proof->path[r->block_proof->n_path - 1].data[5] ^= 1;
}

static void shrink_log_size(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->log_proof->tree_size--;
}

static void too_few_votes(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->cert->n_votes = 2;
}

static void duplicate_vote(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->cert->votes[1]->replica = r->cert->votes[0]->replica;
}

static void stranger_vote(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->cert->votes[2]->replica = 9;
}

static void forged_vote(struct fx *f, Tc__Receipt *r)
{
    /* replica 1's vote signed with replica 3's key */
    struct pbft_vote v;
    uint8_t st[PBFT_VOTE_STATEMENT_MAX];
    size_t sl;

    memset(&v, 0, sizeof(v));
    v.replica = 1;
    v.seq = r->cert->height;
    memcpy(v.digest, r->cert->block_hash.data, 32);
    sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, f->g->chain_id, &v, st,
                             sizeof(st));
    crypto_sign_raw(f->k.replica_sk[3], st, sl, r->cert->votes[1]->sig.data);
}

static void test_ledger_tampered_receipts_fail_with_reason(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], ids[6][32];

    apply_block(f, 4, hash, NULL);
    certify(f, 1, hash);
    apply_block(f, 6, hash, ids);
    certify(f, 2, hash);
    expect_refused(f, ids[4], flip_tx, "transaction");
    expect_refused(f, ids[4], flip_result, "result");
    expect_refused(f, ids[4], flip_header, "certificate is for another block");
    expect_refused(f, ids[4], flip_log_proof, "log proof does not lead");
    expect_refused(f, ids[4], flip_block_proof, "block proof does not lead");
    expect_refused(f, ids[4], shrink_log_size, "claims tree size");
    expect_refused(f, ids[4], too_few_votes, "quorum for 4 replicas is 3");
    expect_refused(f, ids[4], duplicate_vote, "votes twice");
    expect_refused(f, ids[4], stranger_vote, "not in the genesis");
    expect_refused(f, ids[4], forged_vote, "signature of replica 1");
}

static void test_ledger_put_cert_detects_divergence(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], other[32];
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[N_REPLICAS];
    Tc__Certificate *pc = NULL;

    apply_block(f, 1, hash, NULL);
    memcpy(other, hash, 32);
    other[0] ^= 1;
    cert_make(f, 1, other, 3, &c, votes);
    assert_int_equal(ledger_put_cert(f->l, &c), LG_ECORRUPT);
    /* A certificate ahead of the tip (a lagging node) is kept. */
    cert_make(f, 7, other, 3, &c, votes);
    assert_int_equal(ledger_put_cert(f->l, &c), LG_OK);
    assert_int_equal(ledger_get_cert(f->l, 7, &pc), LG_OK);
    assert_int_equal(pc->n_votes, 3);
    tc__certificate__free_unpacked(pc, NULL);
    assert_int_equal(ledger_get_cert(f->l, 1, &pc), LG_ENOTFOUND);
}

/* Every key under prefix, as one byte string, for comparing two stores. */
static void dump_prefix(struct store *s, const char *prefix, uint8_t hash[32])
{
    struct crypto_sha256_ctx c;
    struct store_iter *it = store_iter_new(s, prefix, strlen(prefix), NULL, 0);
    const unsigned char *k, *v;
    size_t kl, vl;

    crypto_sha256_init(&c);
    assert_non_null(it);
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        crypto_sha256_update(&c, &kl, sizeof(kl));
        crypto_sha256_update(&c, k, kl);
        crypto_sha256_update(&c, &vl, sizeof(vl));
        crypto_sha256_update(&c, v, vl);
    }
    store_iter_free(it);
    crypto_sha256_final(&c, hash);
}

/* Opens a second, empty ledger on the same genesis. */
static struct fx *fx_peer(const struct fx *f)
{
    struct fx *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->k = f->k;
    p->g = genesis_make(&p->k, "test");
    assert_memory_equal(p->g->chain_id, f->g->chain_id, 32);
    snprintf(p->dir, sizeof(p->dir), "/tmp/test_ledger.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    p->leaves = calloc(1, sizeof(*p->leaves));
    open_all(p);
    return p;
}

static int catch_up(struct fx *p, struct fx *f, uint64_t height)
{
    uint8_t *bytes;
    size_t len;
    Tc__Certificate *c;
    int rv;

    assert_int_equal(ledger_get_block(f->l, height, &bytes, &len), LG_OK);
    assert_int_equal(ledger_get_cert(f->l, height, &c), LG_OK);
    rv = ledger_apply_certified(p->l, bytes, len, c);
    free(bytes);
    tc__certificate__free_unpacked(c, NULL);
    return rv;
}

static void test_ledger_catch_up_rebuilds_identical_state(void **state)
{
    struct fx *f = *state, *p = fx_peer(f);
    struct ledger_tip a, b;
    uint8_t hash[32], ha[32], hb[32];
    static const char *const prefixes[] = {"b/", "c/", "t/", "l/",
                                           "n/", "r/", "x/", "m/"};

    for (uint64_t h = 1; h <= 6; h++) {
        apply_block(f, (uint32_t)(h % 4) * 3, hash, NULL);
        certify(f, h, hash);
    }
    assert_int_equal(catch_up(p, f, 2), LG_EINVAL); /* 1 comes first */
    for (uint64_t h = 1; h <= 6; h++) {
        if (catch_up(p, f, h) != LG_OK)
            fail_msg("catch-up %llu: %s", (unsigned long long)h,
                     ledger_errmsg(p->l));
    }
    assert_int_equal(catch_up(p, f, 4), LG_EEXIST);
    ledger_tip(f->l, &a);
    ledger_tip(p->l, &b);
    assert_memory_equal(&a, &b, sizeof(a));
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        dump_prefix(f->store, prefixes[i], ha);
        dump_prefix(p->store, prefixes[i], hb);
        if (memcmp(ha, hb, 32) != 0)
            fail_msg("stores differ under %s", prefixes[i]);
    }
    fx_free(p);
}

/* A block altered after certification is refused before execution. */
static void test_ledger_catch_up_refuses_tampered_block(void **state)
{
    struct fx *f = *state, *p = fx_peer(f);
    uint8_t hash[32], *bytes;
    size_t len;
    Tc__Certificate *c;

    apply_block(f, 3, hash, NULL);
    certify(f, 1, hash);
    assert_int_equal(ledger_get_block(f->l, 1, &bytes, &len), LG_OK);
    assert_int_equal(ledger_get_cert(f->l, 1, &c), LG_OK);
    bytes[len - 2] ^= 1; /* inside the last result */
    assert_int_equal(ledger_apply_certified(p->l, bytes, len, c), LG_EBADMSG);
    bytes[len - 2] ^= 1;
    c->n_votes = 2;
    assert_int_equal(ledger_apply_certified(p->l, bytes, len, c), LG_EBADMSG);
    assert_non_null(strstr(ledger_errmsg(p->l), "quorum"));
    c->n_votes = 3;
    assert_int_equal(ledger_apply_certified(p->l, bytes, len, c), LG_OK);
    free(bytes);
    tc__certificate__free_unpacked(c, NULL);
    fx_free(p);
}

/* A quorum certified a block whose results the registry would not give:
 * re-execution catches it instead of trusting the certificate. */
static void test_ledger_catch_up_detects_divergent_results(void **state)
{
    struct fx *f = *state, *p = fx_peer(f);
    uint8_t hash[32], *bytes, *hdr, root[32], leaves[2][32];
    size_t len, hlen;
    Tc__Block *b;
    Tc__BlockHeader *h;
    Tc__TxResult *r;
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[N_REPLICAS];
    Tc__Certificate pc = TC__CERTIFICATE__INIT;

    apply_block(f, 2, hash, NULL);
    assert_int_equal(ledger_get_block(f->l, 1, &bytes, &len), LG_OK);
    b = tc__block__unpack(NULL, len, bytes);
    h = tc__block_header__unpack(NULL, b->header.len, b->header.data);
    free(bytes);
    /* Rewrite result 1 as rejected, and re-root and re-sign the header. */
    r = tc__tx_result__unpack(NULL, b->results[1].len, b->results[1].data);
    r->status = r->status == TC__TX_STATUS__TX_ACCEPTED
                    ? TC__TX_STATUS__TX_REJECTED
                    : TC__TX_STATUS__TX_ACCEPTED;
    free(b->results[1].data);
    b->results[1].len = tc__tx_result__get_packed_size(r);
    b->results[1].data = malloc(b->results[1].len);
    tc__tx_result__pack(r, b->results[1].data);
    tc__tx_result__free_unpacked(r, NULL);
    for (int i = 0; i < 2; i++)
        merkle_leaf_hash(b->results[i].data, b->results[i].len, leaves[i]);
    merkle_root((const uint8_t(*)[32])leaves, 2, root);
    memcpy(h->results_root.data, root, 32);
    hlen = tc__block_header__get_packed_size(h);
    hdr = malloc(hlen);
    tc__block_header__pack(h, hdr);
    free(b->header.data);
    b->header = (ProtobufCBinaryData){hlen, hdr};
    len = tc__block__get_packed_size(b);
    bytes = malloc(len);
    tc__block__pack(b, bytes);
    crypto_sha256(hdr, hlen, hash);
    cert_make(f, 1, hash, 3, &c, votes);
    assert_int_equal(codec_cert_to_proto(&c, &pc), LG_OK);
    assert_int_equal(ledger_apply_certified(p->l, bytes, len, &pc),
                     LG_ECORRUPT);
    assert_non_null(strstr(ledger_errmsg(p->l), "results_root"));
    codec_cert_proto_clear(&pc);
    free(bytes);
    tc__block_header__free_unpacked(h, NULL);
    tc__block__free_unpacked(b, NULL);
    fx_free(p);
}

static void dump_all(struct store *s, uint8_t (*out)[32])
{
    static const char *const prefixes[] = {"b/", "c/", "t/", "l/",
                                           "n/", "r/", "x/", "m/"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        dump_prefix(s, prefixes[i], out[i]);
}

static void delete_some(struct store *s, const char *prefix, int every)
{
    struct store_iter *it = store_iter_new(s, prefix, strlen(prefix), NULL, 0);
    struct store_batch *b = store_batch_new();
    const unsigned char *k, *v;
    size_t kl, vl;
    int i = 0;

    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        if (i++ % every == 0)
            store_batch_delete(b, k, kl);
    }
    store_iter_free(it);
    assert_int_equal(store_write(s, b, true), LG_OK);
    store_batch_free(b);
}

static void test_ledger_rebuild_restores_derived_state(void **state)
{
    struct fx *f = *state;
    uint8_t hash[32], want[8][32], got[8][32];
    struct ledger_tip before, after;
    struct ledger *l = NULL;
    char err[512];
    uint64_t height;

    for (uint64_t h = 1; h <= 5; h++) {
        apply_block(f, (uint32_t)h + 1, hash, NULL);
        certify(f, h, hash);
    }
    ledger_tip(f->l, &before);
    dump_all(f->store, want);
    ledger_close(f->l);
    f->l = NULL;
    /* a lost table: tip, parts of the index, the log and the registry */
    delete_some(f->store, "m/tip", 1);
    delete_some(f->store, "t/", 3);
    delete_some(f->store, "l/", 2);
    delete_some(f->store, "n/", 4);
    delete_some(f->store, "r/", 2);
    assert_int_equal(ledger_open(f->store, f->g, f->reg, &l, err, sizeof(err)),
                     LG_ECORRUPT);
    if (ledger_rebuild(f->store, f->g, f->reg, &height, err, sizeof(err)) !=
        LG_OK)
        fail_msg("rebuild: %s", err);
    assert_int_equal(height, 5);
    if (ledger_open(f->store, f->g, f->reg, &f->l, err, sizeof(err)) != LG_OK)
        fail_msg("open after rebuild: %s", err);
    ledger_tip(f->l, &after);
    assert_memory_equal(&before, &after, sizeof(before));
    dump_all(f->store, got);
    assert_memory_equal(want, got, sizeof(want));

    /* A lost block: the ledger is rebuilt up to the gap. */
    ledger_close(f->l);
    f->l = NULL;
    delete_some(f->store, "b/", 3); /* blocks 1 and 4 */
    assert_int_equal(
        ledger_rebuild(f->store, f->g, f->reg, &height, err, sizeof(err)),
        LG_OK);
    assert_int_equal(height, 0);
    open_all_ledger(f);
    {
        uint8_t *bytes = NULL;
        size_t len;

        /* block 2 is still on disk, but above the tip */
        assert_int_equal(ledger_get_block(f->l, 2, &bytes, &len), LG_ENOTFOUND);
    }
}

/* ---- replica-set changes ------------------------------------------------ */

#define EPOCH_REPLICAS_MAX (N_REPLICAS + 2)

/* The keys of every replica ever added, by slot (genesis ones first). */
struct epoch_keys {
    uint8_t pk[EPOCH_REPLICAS_MAX][32];
    uint8_t sk[EPOCH_REPLICAS_MAX][64];
    uint32_t n;
};

static void epoch_keys_init(const struct fx *f, struct epoch_keys *ek)
{
    memcpy(ek->pk, f->k.replica_pk, sizeof(f->k.replica_pk));
    memcpy(ek->sk, f->k.replica_sk, sizeof(f->k.replica_sk));
    ek->n = N_REPLICAS;
}

/* A sponsor proposal to add replica node<slot> with a fresh key: with a
 * threshold of 1 it applies in its own block. */
static uint8_t *replica_add_tx(struct fx *f, struct epoch_keys *ek, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__GovernanceProposal gp = TC__GOVERNANCE_PROPOSAL__INIT;
    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    char id[32], name[32], url[64];
    uint8_t *body, sig[64], *out;
    size_t blen;

    assert_true(ek->n < EPOCH_REPLICAS_MAX);
    crypto_sign_keypair(ek->pk[ek->n], ek->sk[ek->n]);
    snprintf(id, sizeof(id), "add-node%u", ek->n);
    snprintf(name, sizeof(name), "node%u", ek->n);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", 27000 + ek->n);
    gp.proposal_id = id;
    gp.action = TC__GOV_ACTION__GOV_REPLICA_ADD;
    gp.name = name;
    gp.public_key = (ProtobufCBinaryData){32, ek->pk[ek->n]};
    gp.peer_url = url;
    ek->n++;
    f->nonce++;
    tx.chain_id = (ProtobufCBinaryData){32, f->g->chain_id};
    tx.signer = (ProtobufCBinaryData){32, f->k.sponsor_pk};
    tx.nonce = f->nonce;
    tx.client_time_ms = 1000;
    tx.body_case = TC__TX__BODY_GOVERNANCE_PROPOSAL;
    tx.governance_proposal = &gp;
    blen = tc__tx__get_packed_size(&tx);
    body = malloc(blen);
    assert_non_null(body);
    tc__tx__pack(&tx, body);
    crypto_sign_tagged(TAG_TX, f->k.sponsor_sk, body, blen, sig);
    st.body = (ProtobufCBinaryData){blen, body};
    st.sig = (ProtobufCBinaryData){64, sig};
    *len = tc__signed_tx__get_packed_size(&st);
    out = malloc(*len);
    assert_non_null(out);
    tc__signed_tx__pack(&st, out);
    free(body);
    return out;
}

/* Applies a block holding one replica addition; its header must carry the
 * grown set. */
static void apply_replica_add(struct fx *f, struct epoch_keys *ek,
                              uint8_t hash[32])
{
    uint8_t *tx;
    size_t len;
    Tc__BlockHeader *h;
    struct ledger_tip tip;

    tx = replica_add_tx(f, ek, &len);
    apply_txs(f, &tx, &len, 1, hash);
    free(tx);
    ledger_tip(f->l, &tip);
    h = header_of(f, tip.height);
    if (h->next_replicas == NULL)
        fail_msg("block %llu changed no replica set",
                 (unsigned long long)tip.height);
    assert_int_equal(h->next_replicas->n_replicas, ek->n);
    assert_int_equal(h->next_replicas->replicas[ek->n - 1]->slot, ek->n - 1);
    assert_memory_equal(h->next_replicas->replicas[ek->n - 1]->public_key.data,
                        ek->pk[ek->n - 1], 32);
    tc__block_header__free_unpacked(h, NULL);
}

/* A certificate of (height, hash) by the quorum of the first n replicas of
 * ek (a set of n, base `base`), skipping index `skip` (-1: none). */
static void cert_make_epoch(const struct fx *f, const struct epoch_keys *ek,
                            uint32_t n, uint64_t base, uint64_t height,
                            const uint8_t hash[32], int skip,
                            struct pbft_checkpoint_cert *c,
                            struct pbft_vote *votes)
{
    uint8_t st[PBFT_VOTE_STATEMENT_MAX], chain[32];
    uint32_t q = pbft_quorum(n);

    gov_epoch_chain_id(f->g->chain_id, base, chain);
    memset(c, 0, sizeof(*c));
    c->seq = height;
    memcpy(c->digest, hash, 32);
    c->votes = votes;
    for (uint32_t i = 0; i < n && c->n_votes < q; i++) {
        struct pbft_vote *v = &votes[c->n_votes];
        size_t sl;

        if ((int)i == skip)
            continue;
        memset(v, 0, sizeof(*v));
        v->replica = i;
        v->seq = height;
        memcpy(v->digest, hash, 32);
        sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, chain, v, st, sizeof(st));
        assert_true(sl > 0 && sl <= sizeof(st));
        crypto_sign_raw(ek->sk[i], st, sl, v->sig);
        c->n_votes++;
    }
    assert_int_equal(c->n_votes, q);
}

static void certify_epoch(struct fx *f, const struct epoch_keys *ek, uint32_t n,
                          uint64_t base, uint64_t height,
                          const uint8_t hash[32])
{
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[EPOCH_REPLICAS_MAX];

    cert_make_epoch(f, ek, n, base, height, hash, 0, &c, votes);
    if (ledger_put_cert(f->l, &c) != LG_OK)
        fail_msg("ledger_put_cert: %s", ledger_errmsg(f->l));
}

/* Blocks 1..6: the genesis 4 certify 1 and 2 (2 adds node4), the 5 certify
 * 3 and 4 (4 adds node5), the 6 certify 5 and 6. ids get 2 txs of 5. */
static void epochs_build(struct fx *f, struct epoch_keys *ek,
                         uint8_t (*ids)[32])
{
    uint8_t hash[32];

    epoch_keys_init(f, ek);
    apply_block(f, 2, hash, NULL);
    certify(f, 1, hash);
    apply_replica_add(f, ek, hash);
    certify(f, 2, hash);
    apply_block(f, 1, hash, NULL);
    certify_epoch(f, ek, 5, 2, 3, hash);
    apply_replica_add(f, ek, hash);
    certify_epoch(f, ek, 5, 2, 4, hash);
    apply_block(f, 2, hash, ids);
    certify_epoch(f, ek, 6, 4, 5, hash);
    apply_block(f, 1, hash, NULL);
    certify_epoch(f, ek, 6, 4, 6, hash);
}

static void expect_epochs(struct fx *f)
{
    uint64_t heights[4];
    size_t n = 0;
    struct gov_replica_set *set = malloc(sizeof(*set));

    assert_non_null(set);
    assert_int_equal(ledger_epochs(f->l, heights, 4, &n), LG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(heights[0], 2);
    assert_int_equal(heights[1], 4);
    assert_int_equal(ledger_epochs(f->l, heights, 1, &n), LG_OK);
    assert_int_equal(n, 2); /* how many there are, beyond the capacity */
    assert_int_equal(ledger_replica_set_at(f->l, 2, set), LG_OK);
    assert_int_equal(set->base_height, 0);
    assert_int_equal(set->n, 4);
    assert_int_equal(ledger_replica_set_at(f->l, 3, set), LG_OK);
    assert_int_equal(set->base_height, 2);
    assert_int_equal(set->n, 5);
    assert_int_equal(ledger_replica_set_at(f->l, 4, set), LG_OK);
    assert_int_equal(set->base_height, 2);
    assert_int_equal(ledger_replica_set_at(f->l, 5, set), LG_OK);
    assert_int_equal(set->base_height, 4);
    assert_int_equal(set->n, 6);
    assert_string_equal(set->r[5].name, "node5");
    assert_int_equal(ledger_replica_set_at(f->l, 99, set), LG_OK);
    assert_int_equal(set->base_height, 4);
    free(set);
    /* The tip names the last change too (kept live, derived on open). */
    struct ledger_tip tip;
    ledger_tip(f->l, &tip);
    assert_int_equal(tip.replica_set_height, 4);
}

static void
test_ledger_replica_changes_are_indexed_and_survive_reopen(void **state)
{
    struct fx *f = *state;
    struct epoch_keys ek;
    uint8_t ids[2][32];

    epochs_build(f, &ek, ids);
    expect_epochs(f);
    close_all(f);
    open_all(f);
    expect_epochs(f);
}

/* The epoch heights are remembered between calls: asked after every
 * block, they follow each change as it lands. */
static void test_ledger_epochs_follow_the_tip(void **state)
{
    struct fx *f = *state;
    struct epoch_keys ek;
    uint8_t hash[32];
    uint64_t heights[4];
    size_t n = 9;

    epoch_keys_init(f, &ek);
    assert_int_equal(ledger_epochs(f->l, heights, 4, &n), LG_OK);
    assert_int_equal(n, 0);
    apply_block(f, 2, hash, NULL);
    certify(f, 1, hash);
    assert_int_equal(ledger_epochs(f->l, heights, 4, &n), LG_OK);
    assert_int_equal(n, 0);
    apply_replica_add(f, &ek, hash);
    certify(f, 2, hash);
    assert_int_equal(ledger_epochs(f->l, heights, 4, &n), LG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(heights[0], 2);
    apply_block(f, 1, hash, NULL);
    certify_epoch(f, &ek, 5, 2, 3, hash);
    assert_int_equal(ledger_epochs(f->l, heights, 4, &n), LG_OK);
    assert_int_equal(n, 1);
    apply_replica_add(f, &ek, hash);
    assert_int_equal(ledger_epochs(f->l, heights, 4, &n), LG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(heights[1], 4);
}

/* A receipt after two changes carries both links and verifies from the
 * genesis alone. */
static void test_ledger_receipt_walks_epochs_from_genesis(void **state)
{
    struct fx *f = *state;
    struct epoch_keys ek;
    uint8_t ids[2][32];
    Tc__Receipt *r = NULL;
    struct verify_receipt_info info;
    char why[400];

    epochs_build(f, &ek, ids);
    assert_int_equal(ledger_receipt(f->l, ids[1], &r), LG_OK);
    assert_int_equal(r->n_epochs, 2);
    if (!verify_receipt(f->g, r, &info, why, sizeof(why)))
        fail_msg("verify_receipt: %s", why);
    assert_int_equal(info.height, 5);
    assert_int_equal(info.n_epochs, 2);
    tc__receipt__free_unpacked(r, NULL);
}

static void drop_first_link(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    Tc__EpochLink *first = r->epochs[0];

    r->epochs[0] = r->epochs[1];
    r->epochs[1] = first;
    r->n_epochs = 1;
}

static void drop_last_link(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    r->n_epochs = 1;
}

static void swap_links(struct fx *f, Tc__Receipt *r)
{
    (void)f;
    Tc__EpochLink *first = r->epochs[0];

    r->epochs[0] = r->epochs[1];
    r->epochs[1] = first;
}

static void forge_link_key(struct fx *f, Tc__Receipt *r)
{
    Tc__BlockHeader *h;
    Tc__EpochLink *link = r->epochs[1];
    size_t len;

    (void)f;
    h = tc__block_header__unpack(NULL, link->header.len, link->header.data);
    assert_non_null(h);
    h->next_replicas->replicas[5]->public_key.data[0] ^= 1;
    len = tc__block_header__get_packed_size(h);
    assert_int_equal(len, link->header.len);
    tc__block_header__pack(h, link->header.data);
    tc__block_header__free_unpacked(h, NULL);
}

/* The tx's block certified by the genesis replicas, as if no change had
 * happened. */
static void genesis_set_cert(struct fx *f, Tc__Receipt *r)
{
    struct epoch_keys ek;
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[EPOCH_REPLICAS_MAX];
    uint8_t hash[32];

    epoch_keys_init(f, &ek);
    crypto_sha256(r->header.data, r->header.len, hash);
    cert_make_epoch(f, &ek, 4, 0, r->cert->height, hash, -1, &c, votes);
    for (uint32_t i = 0; i < c.n_votes && i < r->cert->n_votes; i++) {
        r->cert->votes[i]->replica = votes[i].replica;
        memcpy(r->cert->votes[i]->sig.data, votes[i].sig, 64);
    }
}

static void test_ledger_receipt_epoch_tampering_fails(void **state)
{
    struct fx *f = *state;
    struct epoch_keys ek;
    uint8_t ids[2][32];

    epochs_build(f, &ek, ids);
    expect_refused(f, ids[0], drop_first_link,
                   "does not hold under the "
                   "genesis");
    expect_refused(f, ids[0], drop_last_link,
                   "not certified by the set its 1 epoch links reach");
    expect_refused(f, ids[0], swap_links, "links go oldest first");
    expect_refused(f, ids[0], forge_link_key, "certificate is for another");
    expect_refused(f, ids[0], genesis_set_cert,
                   "key in the replica set in force after block 4");
}

/* Catch-up follows the changes, and refuses a block after a change that
 * the old set certified. */
static void test_ledger_catch_up_checks_the_set_in_force(void **state)
{
    struct fx *f = *state, *p = fx_peer(f);
    struct epoch_keys ek;
    uint8_t ids[2][32], hash[32], *bytes;
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[EPOCH_REPLICAS_MAX];
    Tc__Certificate pc = TC__CERTIFICATE__INIT;
    size_t len;

    epochs_build(f, &ek, ids);
    for (uint64_t h = 1; h <= 4; h++) {
        if (catch_up(p, f, h) != LG_OK)
            fail_msg("catch-up %llu: %s", (unsigned long long)h,
                     ledger_errmsg(p->l));
    }
    assert_int_equal(ledger_block_hash(f->l, 5, hash), LG_OK);
    assert_int_equal(ledger_get_block(f->l, 5, &bytes, &len), LG_OK);
    /* the 5 of the previous epoch, under their own epoch chain id */
    cert_make_epoch(f, &ek, 5, 2, 5, hash, -1, &c, votes);
    assert_int_equal(codec_cert_to_proto(&c, &pc), LG_OK);
    assert_int_equal(ledger_apply_certified(p->l, bytes, len, &pc), LG_EBADMSG);
    assert_non_null(strstr(ledger_errmsg(p->l), "after block 4"));
    codec_cert_proto_clear(&pc);
    /* the genesis set, under the chain id */
    cert_make_epoch(f, &ek, 4, 0, 5, hash, -1, &c, votes);
    assert_int_equal(codec_cert_to_proto(&c, &pc), LG_OK);
    assert_int_equal(ledger_apply_certified(p->l, bytes, len, &pc), LG_EBADMSG);
    codec_cert_proto_clear(&pc);
    free(bytes);
    for (uint64_t h = 5; h <= 6; h++) {
        if (catch_up(p, f, h) != LG_OK)
            fail_msg("catch-up %llu: %s", (unsigned long long)h,
                     ledger_errmsg(p->l));
    }
    expect_epochs(p);
    assert_int_equal(catch_up(p, f, 3), LG_EEXIST);
    fx_free(p);
}

static void test_ledger_rebuild_reproduces_replica_changes(void **state)
{
    struct fx *f = *state;
    struct epoch_keys ek;
    uint8_t ids[2][32], want[32], got[32];
    char err[512];
    uint64_t height;

    epochs_build(f, &ek, ids);
    assert_int_equal(ledger_block_hash(f->l, 6, want), LG_OK);
    ledger_close(f->l);
    f->l = NULL;
    delete_some(f->store, "e/", 1);
    delete_some(f->store, "r/", 1);
    delete_some(f->store, "m/tip", 1);
    if (ledger_rebuild(f->store, f->g, f->reg, &height, err, sizeof(err)) !=
        LG_OK)
        fail_msg("rebuild: %s", err);
    assert_int_equal(height, 6); /* headers with next_replicas reproduce */
    open_all_ledger(f);
    assert_int_equal(ledger_block_hash(f->l, 6, got), LG_OK);
    assert_memory_equal(want, got, 32);
    expect_epochs(f);
}

/* The store's read cache changes nothing: the same blocks (repeats within
 * and across blocks, replica-set changes) on a store without it give the
 * same block hashes and byte-identical stores. */
static void test_ledger_cache_off_gives_identical_state(void **state)
{
    struct fx *f = *state, *p = fx_peer(f);
    struct epoch_keys ek;
    struct store_cache_stats st;
    uint8_t ha[32], hb[32], da[8][32], db[8][32];

    free(p->leaves);
    p->leaves = calloc(LEAVES_MAX, sizeof(*p->leaves));
    assert_non_null(p->leaves);
    store_cache_set(p->store, false);
    epoch_keys_init(f, &ek);
    for (int h = 0; h < 8; h++) {
        uint8_t *txs[6];
        size_t lens[6];
        uint32_t n = 0;

        if (h == 3 || h == 6) {
            txs[n] = replica_add_tx(f, &ek, &lens[n]);
            n++;
        }
        for (int i = 0; i < 3; i++, n++)
            txs[n] = tx_make(f, &lens[n]);
        txs[n] = txs[0]; /* a repeat within the block */
        lens[n] = lens[0];
        apply_txs(f, txs, lens, n + 1, ha);
        apply_txs(p, txs, lens, n + 1, hb);
        assert_memory_equal(ha, hb, 32);
        apply_txs(f, txs, lens, 2, ha); /* repeats of committed txs */
        apply_txs(p, txs, lens, 2, hb);
        assert_memory_equal(ha, hb, 32);
        for (uint32_t i = 0; i < n; i++)
            free(txs[i]);
    }
    dump_all(f->store, da);
    dump_all(p->store, db);
    assert_memory_equal(da, db, sizeof(da));
    store_cache_stats(f->store, &st);
    assert_true(st.hits > 0);
    store_cache_stats(p->store, &st);
    assert_int_equal(st.hits, 0);
    fx_free(p);
}

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t total = 0;
    char path[512];
    struct stat st;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Throughput of ledger_apply for 100-tx batches and the disk bytes per tx
 * (printed, not asserted: machines differ). */
static void test_ledger_apply_throughput(void **state)
{
    enum { BATCH = 100, BLOCKS = 30 };
    struct fx *f = *state;
    struct pbft_request *reqs = calloc(BATCH, sizeof(*reqs));
    uint8_t **txs = calloc(BATCH * BLOCKS, sizeof(*txs)), hash[32];
    size_t *lens = calloc(BATCH * BLOCKS, sizeof(*lens)), tx_bytes = 0;
    uint64_t before = dir_bytes(f->dir);
    double t0, t1;

    assert_non_null(reqs);
    assert_non_null(txs);
    assert_non_null(lens);
    for (int i = 0; i < BATCH * BLOCKS; i++) {
        txs[i] = tx_make(f, &lens[i]);
        tx_bytes += lens[i];
    }
    t0 = now_s();
    for (int b = 0; b < BLOCKS; b++) {
        struct pbft_execute ex;

        for (int i = 0; i < BATCH; i++) {
            reqs[i].data = txs[b * BATCH + i];
            reqs[i].len = (uint32_t)lens[b * BATCH + i];
        }
        memset(&ex, 0, sizeof(ex));
        ex.seq = (uint64_t)b + 1;
        ex.timestamp_ms = 1000 * ex.seq;
        ex.n_requests = BATCH;
        ex.requests = reqs;
        if (ledger_apply(f->l, &ex, hash) != LG_OK)
            fail_msg("ledger_apply: %s", ledger_errmsg(f->l));
    }
    t1 = now_s();
    close_all(f); /* flush LevelDB's log into tables */
    open_all(f);
    printf("ledger_apply: %d blocks of %d txs in %.3f s: %.0f txs/s, "
           "%.2f ms/block (tx %zu bytes)\n",
           BLOCKS, BATCH, t1 - t0, BLOCKS * BATCH / (t1 - t0),
           1000.0 * (t1 - t0) / BLOCKS, tx_bytes / (BATCH * BLOCKS));
    printf("disk: %.0f bytes per tx (LevelDB files, registry state "
           "included)\n",
           (double)(dir_bytes(f->dir) - before) / (BATCH * BLOCKS));
    for (int i = 0; i < BATCH * BLOCKS; i++)
        free(txs[i]);
    free(txs);
    free(lens);
    free(reqs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_ledger_fresh_store_starts_at_genesis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_apply_roots_match_merkle,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_proofs_verify_for_many_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_reopen_resumes_tip_without_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_other_chain_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_lost_metadata_is_corrupt,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_apply_refuses_wrong_height,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_repeated_tx_enters_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_entry_reads_tx_in_place,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_receipts_of_a_block_all_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_receipts_for_many_block_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_receipt_verifies_offline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_tampered_receipts_fail_with_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_cache_off_gives_identical_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_put_cert_detects_divergence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_catch_up_rebuilds_identical_state, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_catch_up_refuses_tampered_block, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_catch_up_detects_divergent_results, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_rebuild_restores_derived_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_epochs_follow_the_tip,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_replica_changes_are_indexed_and_survive_reopen, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_receipt_walks_epochs_from_genesis, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_receipt_epoch_tampering_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_catch_up_checks_the_set_in_force, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_rebuild_reproduces_replica_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_apply_throughput, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
