/* Unit tests for node/verify.c: verify_block on good blocks and on every
 * way one can be wrong (chain, height, link, counts, roots, results,
 * certificate), verify_log_extension and verify_signed_tx. Blocks come from
 * a real ledger over a temporary store, certificates from test replica
 * keys. Replica-set changes: hand-built empty blocks whose headers carry a
 * new set, walked from the genesis (verify_block_walk, verify_epoch_follow)
 * and refused when the old set signs after the change, a link is forged,
 * repeated or not a change, or the new set is malformed. */
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

#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_REPLICAS 4

struct fx {
    uint8_t replica_sk[N_REPLICAS][64];
    uint8_t replica_pk[N_REPLICAS][32];
    uint8_t sponsor_sk[64];
    uint8_t sponsor_pk[32];
    struct genesis *g;
    char dir[64];
    struct store *store;
    struct registry *reg;
    struct ledger *l;
    uint64_t nonce;
    char why[256];
};

static struct genesis *genesis_make(const struct fx *f, const char *name)
{
    char json[4096], hex[65], err[256];
    size_t at = 0;
    struct genesis *g = calloc(1, sizeof(*g));

    assert_non_null(g);
    at += (size_t)snprintf(json + at, sizeof(json) - at,
                           "{\"chain_name\":\"%s\",\"created\":"
                           "\"2026-11-21T00:00:00Z\",\"replicas\":[",
                           name);
    for (int i = 0; i < N_REPLICAS; i++) {
        lg_hex(f->replica_pk[i], 32, hex);
        at += (size_t)snprintf(json + at, sizeof(json) - at,
                               "%s{\"id\":%d,\"name\":\"node%d\",\"public_"
                               "key\":\"%s\",\"peer_url\":\"tcp://"
                               "127.0.0.1:%d\"}",
                               i ? "," : "", i, i, hex, 27000 + i);
    }
    lg_hex(f->sponsor_pk, 32, hex);
    at += (size_t)snprintf(json + at, sizeof(json) - at,
                           "],\"members\":[{\"name\":\"sponsor\",\"role\":"
                           "\"sponsor\",\"public_key\":\"%s\"}]}",
                           hex);
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

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[512];

    assert_non_null(f);
    assert_int_equal(crypto_setup(), LG_OK);
    for (int i = 0; i < N_REPLICAS; i++)
        crypto_sign_keypair(f->replica_pk[i], f->replica_sk[i]);
    crypto_sign_keypair(f->sponsor_pk, f->sponsor_sk);
    f->g = genesis_make(f, "verify");
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_verify.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, true, &f->store, err, sizeof(err)),
                     LG_OK);
    assert_int_equal(registry_new(f->g, &f->reg), LG_OK);
    assert_int_equal(
        ledger_open(f->store, f->g, f->reg, &f->l, err, sizeof(err)), LG_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    ledger_close(f->l);
    registry_free(f->reg);
    store_close(f->store);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    genesis_free(f->g);
    free(f->g);
    free(f);
    return 0;
}

static uint8_t *tx_make(struct fx *f, const uint8_t *chain_id, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__ProtocolRegister pr = TC__PROTOCOL_REGISTER__INIT;
    Tc__Outcome oc = TC__OUTCOME__INIT, *ocs[1] = {&oc};
    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    char trial[32];
    uint8_t *body, sig[64], *out;
    size_t blen;

    f->nonce++;
    snprintf(trial, sizeof(trial), "NCT%08llu", (unsigned long long)f->nonce);
    pr.trial_id = trial;
    pr.brief_title = (char *)"A trial";
    oc.id = (char *)"P1";
    oc.type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    oc.measure = (char *)"Mortality";
    oc.time_frame = (char *)"6 months";
    pr.n_outcomes = 1;
    pr.outcomes = ocs;
    tx.chain_id = (ProtobufCBinaryData){32, (uint8_t *)chain_id};
    tx.signer = (ProtobufCBinaryData){32, f->sponsor_pk};
    tx.nonce = f->nonce;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &pr;
    blen = tc__tx__get_packed_size(&tx);
    body = malloc(blen);
    assert_non_null(body);
    tc__tx__pack(&tx, body);
    crypto_sign_tagged(TAG_TX, f->sponsor_sk, body, blen, sig);
    st.body = (ProtobufCBinaryData){blen, body};
    st.sig = (ProtobufCBinaryData){64, sig};
    *len = tc__signed_tx__get_packed_size(&st);
    out = malloc(*len);
    assert_non_null(out);
    tc__signed_tx__pack(&st, out);
    free(body);
    return out;
}

/* Applies and certifies a block of n txs; returns its height. */
static uint64_t block_add(struct fx *f, uint32_t n)
{
    struct pbft_request reqs[8];
    uint8_t *txs[8], hash[32], st[PBFT_VOTE_STATEMENT_MAX];
    struct pbft_execute ex;
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[3];
    struct ledger_tip tip;

    assert_true(n <= 8);
    ledger_tip(f->l, &tip);
    memset(reqs, 0, sizeof(reqs));
    for (uint32_t i = 0; i < n; i++) {
        size_t len;

        txs[i] = tx_make(f, f->g->chain_id, &len);
        reqs[i].data = txs[i];
        reqs[i].len = (uint32_t)len;
    }
    memset(&ex, 0, sizeof(ex));
    ex.seq = tip.height + 1;
    ex.timestamp_ms = 5000 + ex.seq;
    ex.n_requests = n;
    ex.requests = reqs;
    assert_int_equal(ledger_apply(f->l, &ex, hash), LG_OK);
    for (uint32_t i = 0; i < n; i++)
        free(txs[i]);
    memset(&c, 0, sizeof(c));
    c.seq = ex.seq;
    memcpy(c.digest, hash, 32);
    c.n_votes = 3;
    c.votes = votes;
    for (uint32_t i = 0; i < 3; i++) {
        size_t sl;

        memset(&votes[i], 0, sizeof(votes[i]));
        votes[i].replica = i + 1; /* any quorum will do */
        votes[i].seq = ex.seq;
        memcpy(votes[i].digest, hash, 32);
        sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, f->g->chain_id, &votes[i],
                                 st, sizeof(st));
        crypto_sign_raw(f->replica_sk[i + 1], st, sl, votes[i].sig);
    }
    assert_int_equal(ledger_put_cert(f->l, &c), LG_OK);
    return ex.seq;
}

struct blk {
    uint8_t *bytes;
    size_t len;
    Tc__Certificate *cert;
    uint8_t prev[32];
};

static void blk_get(struct fx *f, uint64_t height, struct blk *b)
{
    assert_int_equal(ledger_get_block(f->l, height, &b->bytes, &b->len), LG_OK);
    assert_int_equal(ledger_get_cert(f->l, height, &b->cert), LG_OK);
    assert_int_equal(ledger_block_hash(f->l, height - 1, b->prev), LG_OK);
}

static void blk_free(struct blk *b)
{
    free(b->bytes);
    tc__certificate__free_unpacked(b->cert, NULL);
}

/* verify_block must fail and say `reason`. */
static void expect_block_fails(struct fx *f, const struct blk *b,
                               const uint8_t *prev, uint64_t height,
                               const char *reason)
{
    f->why[0] = '\0';
    if (verify_block(f->g, b->bytes, b->len, b->cert, prev, height, NULL,
                     f->why, sizeof(f->why)))
        fail_msg("verify_block passed, want \"%s\"", reason);
    if (strstr(f->why, reason) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", f->why, reason);
}

/* Decodes b, lets `edit` change it, re-encodes it into b. */
static Tc__Block *blk_open(struct blk *b)
{
    Tc__Block *d = tc__block__unpack(NULL, b->len, b->bytes);

    assert_non_null(d);
    return d;
}

static void blk_close(struct blk *b, Tc__Block *d)
{
    free(b->bytes);
    b->len = tc__block__get_packed_size(d);
    b->bytes = malloc(b->len);
    assert_non_null(b->bytes);
    tc__block__pack(d, b->bytes);
}

/* ---- tests -------------------------------------------------------------- */

static void test_verify_block_accepts_certified_blocks(void **state)
{
    struct fx *f = *state;
    struct verify_block_info info;
    struct ledger_tip tip;
    struct blk b;

    block_add(f, 3);
    block_add(f, 0); /* an empty batch is an empty block */
    block_add(f, 5);
    ledger_tip(f->l, &tip);
    for (uint64_t h = 1; h <= 3; h++) {
        blk_get(f, h, &b);
        if (!verify_block(f->g, b.bytes, b.len, b.cert, b.prev, h, &info,
                          f->why, sizeof(f->why)))
            fail_msg("block %llu: %s", (unsigned long long)h, f->why);
        assert_int_equal(info.height, h);
        assert_int_equal(info.time_ms, 5000 + h);
        assert_memory_equal(info.prev_hash, b.prev, 32);
        /* no prev hash and no expected height: still fine */
        assert_true(
            verify_block(f->g, b.bytes, b.len, b.cert, NULL, 0, NULL, NULL, 0));
        blk_free(&b);
    }
    assert_int_equal(info.n_txs, 5);
    assert_int_equal(info.log_size, 8);
    assert_memory_equal(info.block_hash, tip.block_hash, 32);
    assert_memory_equal(info.log_root, tip.log_root, 32);
}

static void test_verify_block_refuses_wrong_place(void **state)
{
    struct fx *f = *state;
    struct genesis *other = genesis_make(f, "other");
    uint8_t bad[32];
    struct blk b;

    block_add(f, 1);
    block_add(f, 2);
    blk_get(f, 2, &b);
    expect_block_fails(f, &b, b.prev, 3, "at height 2, expected 3");
    memcpy(bad, b.prev, 32);
    bad[31] ^= 1;
    expect_block_fails(f, &b, bad, 2, "prev_hash");
    f->why[0] = '\0';
    assert_false(verify_block(other, b.bytes, b.len, b.cert, b.prev, 2, NULL,
                              f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "the genesis is chain"));
    blk_free(&b);
    genesis_free(other);
    free(other);
}

static void test_verify_block_refuses_garbage(void **state)
{
    struct fx *f = *state;
    uint8_t junk[64];
    struct blk b;

    block_add(f, 1);
    blk_get(f, 1, &b);
    memset(junk, 0xff, sizeof(junk));
    assert_false(verify_block(f->g, junk, sizeof(junk), b.cert, NULL, 0, NULL,
                              f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "does not decode"));
    assert_false(verify_block(f->g, NULL, 0, b.cert, NULL, 0, NULL, f->why,
                              sizeof(f->why)));
    assert_false(verify_block(f->g, b.bytes, VERIFY_BLOCK_MAX + 1, b.cert, NULL,
                              0, NULL, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "more than"));
    /* a truncated block */
    assert_false(verify_block(f->g, b.bytes, b.len - 1, b.cert, NULL, 0, NULL,
                              f->why, sizeof(f->why)));
    blk_free(&b);
}

static void test_verify_block_refuses_changed_contents(void **state)
{
    struct fx *f = *state;
    ProtobufCBinaryData t;
    Tc__Block *d;
    struct blk b;

    block_add(f, 3);
    /* two txs swapped, with their results: each result still names its
     * tx, but the order the header committed to is gone */
    blk_get(f, 1, &b);
    d = blk_open(&b);
    t = d->txs[0], d->txs[0] = d->txs[1], d->txs[1] = t;
    t = d->results[0], d->results[0] = d->results[1], d->results[1] = t;
    blk_close(&b, d);
    expect_block_fails(f, &b, b.prev, 1, "do not hash to the tx_root");
    t = d->txs[0], d->txs[0] = d->txs[1], d->txs[1] = t;
    t = d->results[0], d->results[0] = d->results[1], d->results[1] = t;
    /* a result's text changed */
    d->results[2].data[d->results[2].len - 1] ^= 1;
    blk_close(&b, d);
    expect_block_fails(f, &b, b.prev, 1, "results_root");
    d->results[2].data[d->results[2].len - 1] ^= 1;
    /* results swapped alone: result 0 names tx 1 */
    t = d->results[0], d->results[0] = d->results[1], d->results[1] = t;
    blk_close(&b, d);
    expect_block_fails(f, &b, b.prev, 1, "names another tx");
    t = d->results[0], d->results[0] = d->results[1], d->results[1] = t;
    /* a tx dropped with its result, another result dropped */
    d->n_txs--;
    d->n_results--;
    blk_close(&b, d);
    expect_block_fails(f, &b, b.prev, 1, "says 3 txs, the block holds 2");
    d->n_txs++;
    blk_close(&b, d);
    expect_block_fails(f, &b, b.prev, 1, "holds 3 txs but 2 results");
    d->n_results++;
    blk_close(&b, d);
    assert_true(verify_block(f->g, b.bytes, b.len, b.cert, b.prev, 1, NULL,
                             f->why, sizeof(f->why)));
    tc__block__free_unpacked(d, NULL);
    blk_free(&b);
}

static void test_verify_block_refuses_bad_certificates(void **state)
{
    struct fx *f = *state;
    struct blk b;
    uint8_t save;
    uint32_t replica;

    block_add(f, 2);
    block_add(f, 1);
    blk_get(f, 2, &b);
    b.cert->height = 1;
    expect_block_fails(f, &b, b.prev, 2, "certificate is for height 1");
    b.cert->height = 2;
    save = b.cert->block_hash.data[0];
    b.cert->block_hash.data[0] ^= 1;
    expect_block_fails(f, &b, b.prev, 2, "certificate is for another block");
    b.cert->block_hash.data[0] = save;
    b.cert->n_votes = 2;
    expect_block_fails(f, &b, b.prev, 2, "2 votes from distinct replicas");
    b.cert->n_votes = 0;
    expect_block_fails(f, &b, b.prev, 2, "0 votes");
    b.cert->n_votes = 3;
    replica = b.cert->votes[2]->replica;
    b.cert->votes[2]->replica = b.cert->votes[0]->replica;
    expect_block_fails(f, &b, b.prev, 2, "votes twice");
    b.cert->votes[2]->replica = 4;
    expect_block_fails(f, &b, b.prev, 2, "replica 4, which is not in the");
    b.cert->votes[2]->replica = 0; /* a real replica, but not its signature */
    expect_block_fails(f, &b, b.prev, 2, "signature of replica 0");
    b.cert->votes[2]->replica = replica;
    b.cert->votes[2]->seq = 1;
    expect_block_fails(f, &b, b.prev, 2, "for another block");
    b.cert->votes[2]->seq = 2;
    b.cert->votes[2]->sig.len = 10;
    expect_block_fails(f, &b, b.prev, 2, "malformed signature");
    b.cert->votes[2]->sig.len = 64;
    assert_true(verify_block(f->g, b.bytes, b.len, b.cert, b.prev, 2, NULL,
                             f->why, sizeof(f->why)));
    assert_false(verify_block(f->g, b.bytes, b.len, NULL, b.prev, 2, NULL,
                              f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "no certificate"));
    blk_free(&b);
}

static void test_verify_log_extension_checks_prefix(void **state)
{
    struct fx *f = *state;
    uint8_t path[MERKLE_MAX_PATH][32], root1[32], empty[32], *bytes;
    ProtobufCBinaryData pb[MERKLE_MAX_PATH];
    Tc__ConsistencyProof p = TC__CONSISTENCY_PROOF__INIT;
    Tc__Certificate *cert;
    Tc__Block *d;
    size_t n, len;

    block_add(f, 3);
    block_add(f, 4);
    block_add(f, 2); /* log size 9 */
    assert_int_equal(ledger_log_root(f->l, 3, root1), LG_OK);
    assert_int_equal(ledger_consistency(f->l, 3, 9, path, &n), LG_OK);
    for (size_t i = 0; i < n; i++)
        pb[i] = (ProtobufCBinaryData){32, path[i]};
    p.size1 = 3;
    p.size2 = 9;
    p.n_path = n;
    p.path = pb;
    assert_int_equal(ledger_get_block(f->l, 3, &bytes, &len), LG_OK);
    assert_int_equal(ledger_get_cert(f->l, 3, &cert), LG_OK);
    d = tc__block__unpack(NULL, len, bytes);
    assert_non_null(d);
    if (!verify_log_extension(f->g, 3, root1, d->header.data, d->header.len,
                              cert, &p, f->why, sizeof(f->why)))
        fail_msg("extension: %s", f->why);
    root1[0] ^= 1;
    assert_false(verify_log_extension(f->g, 3, root1, d->header.data,
                                      d->header.len, cert, &p, f->why,
                                      sizeof(f->why)));
    assert_non_null(strstr(f->why, "not a prefix"));
    root1[0] ^= 1;
    assert_false(verify_log_extension(f->g, 4, root1, d->header.data,
                                      d->header.len, cert, &p, f->why,
                                      sizeof(f->why)));
    assert_non_null(strstr(f->why, "the sizes to check"));
    p.size1 = p.size2 = 0; /* unset sizes: the proof must still fit */
    assert_false(verify_log_extension(f->g, 4, root1, d->header.data,
                                      d->header.len, cert, &p, f->why,
                                      sizeof(f->why)));
    assert_false(verify_log_extension(f->g, 10, root1, d->header.data,
                                      d->header.len, cert, NULL, f->why,
                                      sizeof(f->why)));
    assert_non_null(strstr(f->why, "exceeds"));
    crypto_sha256("", 0, empty);
    assert_true(verify_log_extension(f->g, 0, empty, d->header.data,
                                     d->header.len, cert, NULL, f->why,
                                     sizeof(f->why)));
    assert_false(verify_log_extension(f->g, 0, root1, d->header.data,
                                      d->header.len, cert, NULL, f->why,
                                      sizeof(f->why)));
    cert->n_votes = 1;
    assert_false(verify_log_extension(f->g, 0, empty, d->header.data,
                                      d->header.len, cert, NULL, f->why,
                                      sizeof(f->why)));
    assert_non_null(strstr(f->why, "quorum"));
    cert->n_votes = 3;
    tc__block__free_unpacked(d, NULL);
    tc__certificate__free_unpacked(cert, NULL);
    free(bytes);
}

static void test_verify_signed_tx_checks_signature_and_chain(void **state)
{
    struct fx *f = *state;
    uint8_t other[32], id[32], want[32], *tx;
    size_t len;

    tx = tx_make(f, f->g->chain_id, &len);
    assert_true(verify_signed_tx(f->g, tx, len, id, f->why, sizeof(f->why)));
    crypto_sha256(tx, len, want);
    assert_memory_equal(id, want, 32);
    tx[len - 1] ^= 1; /* last byte of the signature */
    assert_false(verify_signed_tx(f->g, tx, len, id, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "ignature"));
    free(tx);
    memset(other, 7, 32);
    tx = tx_make(f, other, &len);
    assert_false(verify_signed_tx(f->g, tx, len, id, f->why, sizeof(f->why)));
    free(tx);
    assert_false(verify_signed_tx(f->g, NULL, 0, id, f->why, sizeof(f->why)));
}

/* Hostile receipts: every single-byte change of a packed receipt either
 * fails to decode or is refused, without a crash (ASan watches).
 * Deterministic: byte i gets xor (i * 37 + 1), never xor 0. */
static void test_verify_receipt_survives_mutations(void **state)
{
    struct fx *f = *state;
    uint8_t id[32], *bytes;
    size_t len, refused = 0, judged = 0;
    Tc__Receipt *r = NULL;
    Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;

    block_add(f, 3);
    block_add(f, 1);
    assert_int_equal(ledger_entry(f->l, 3, &e), LG_OK);
    memcpy(id, e.tx_id.data, 32);
    ledger_entry_clear(&e);
    assert_int_equal(ledger_receipt(f->l, id, &r), LG_OK);
    assert_true(verify_receipt(f->g, r, NULL, f->why, sizeof(f->why)));
    len = tc__receipt__get_packed_size(r);
    bytes = malloc(len);
    assert_non_null(bytes);
    tc__receipt__pack(r, bytes);
    tc__receipt__free_unpacked(r, NULL);
    for (size_t i = 0; i < len; i++) {
        uint8_t save = bytes[i], x = (uint8_t)(i * 37 + 1);
        Tc__Receipt *m;

        bytes[i] ^= x != 0 ? x : 0x80;
        m = tc__receipt__unpack(NULL, len, bytes);
        bytes[i] = save;
        if (m == NULL)
            continue;
        judged++;
        if (!verify_receipt(f->g, m, NULL, f->why, sizeof(f->why)))
            refused++;
        else
            printf("accepted: byte %zu of %zu changed\n", i, len);
        tc__receipt__free_unpacked(m, NULL);
    }
    printf("receipt mutations: %zu bytes, %zu decoded, %zu refused\n", len,
           judged, refused);
    assert_int_equal(refused, judged);
    free(bytes);
}

/* ---- replica-set changes (hand-built empty blocks) ---------------------- */

#define SET_B 4

/* A second replica set, slots 0, 2, 5, 6 (replica 0 keeps its key). */
struct set_b {
    uint8_t pk[SET_B][32];
    uint8_t sk[SET_B][64];
    uint32_t slot[SET_B];
    char name[SET_B][16];
    Tc__ReplicaInfo info[SET_B];
    Tc__ReplicaInfo *ptrs[SET_B];
    Tc__ReplicaSet set;
};

static void set_b_make(const struct fx *f, struct set_b *b)
{
    static const uint32_t slots[SET_B] = {0, 2, 5, 6};

    tc__replica_set__init(&b->set);
    for (int i = 0; i < SET_B; i++) {
        if (i == 0) {
            memcpy(b->pk[0], f->replica_pk[0], 32);
            memcpy(b->sk[0], f->replica_sk[0], 64);
        } else {
            crypto_sign_keypair(b->pk[i], b->sk[i]);
        }
        b->slot[i] = slots[i];
        snprintf(b->name[i], sizeof(b->name[i]), "node%u", slots[i]);
        tc__replica_info__init(&b->info[i]);
        b->info[i].slot = slots[i];
        b->info[i].name = b->name[i];
        b->info[i].public_key = (ProtobufCBinaryData){32, b->pk[i]};
        b->info[i].peer_url = (char *)"tcp://127.0.0.1:28000";
        b->ptrs[i] = &b->info[i];
    }
    b->set.n_replicas = SET_B;
    b->set.replicas = b->ptrs;
}

/* An empty block at `height` on prev, carrying next (NULL: no change). */
static void hand_block(const struct fx *f, uint64_t height,
                       const uint8_t prev[32], Tc__ReplicaSet *next,
                       struct blk *out, uint8_t hash[32])
{
    Tc__BlockHeader h = TC__BLOCK_HEADER__INIT;
    Tc__Block b = TC__BLOCK__INIT;
    uint8_t empty[32], *hdr;

    merkle_root(NULL, 0, empty);
    h.chain_id = (ProtobufCBinaryData){32, f->g->chain_id};
    h.height = height;
    h.prev_hash = (ProtobufCBinaryData){32, (uint8_t *)prev};
    h.tx_root = (ProtobufCBinaryData){32, empty};
    h.results_root = (ProtobufCBinaryData){32, empty};
    h.log_root = (ProtobufCBinaryData){32, empty};
    h.next_replicas = next;
    b.header.len = tc__block_header__get_packed_size(&h);
    hdr = malloc(b.header.len);
    assert_non_null(hdr);
    tc__block_header__pack(&h, hdr);
    b.header.data = hdr;
    crypto_sha256(hdr, b.header.len, hash);
    memset(out, 0, sizeof(*out));
    out->len = tc__block__get_packed_size(&b);
    out->bytes = malloc(out->len);
    assert_non_null(out->bytes);
    tc__block__pack(&b, out->bytes);
    memcpy(out->prev, prev, 32);
    free(hdr);
}

/* A certificate of (height, hash) by votes of replicas 0..n_votes-1 with
 * keys sk, under the epoch chain id of base. Fills the core form (votes
 * borrowed) and, into out->cert, the protobuf one. */
static void hand_cert(const struct fx *f, const uint8_t (*sk)[64],
                      uint32_t n_votes, uint64_t base, uint64_t height,
                      const uint8_t hash[32], struct pbft_checkpoint_cert *c,
                      struct pbft_vote *votes, struct blk *out)
{
    uint8_t chain[32], st[PBFT_VOTE_STATEMENT_MAX], *bytes;
    size_t len;

    gov_epoch_chain_id(f->g->chain_id, base, chain);
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
        sl = pbft_vote_statement(PBFT_MSG_CHECKPOINT, chain, &votes[i], st,
                                 sizeof(st));
        crypto_sign_raw(sk[i], st, sl, votes[i].sig);
    }
    if (out == NULL)
        return;
    tc__certificate__free_unpacked(out->cert, NULL);
    assert_int_equal(codec_encode_cert(c, &bytes, &len), LG_OK);
    out->cert = tc__certificate__unpack(NULL, len, bytes);
    assert_non_null(out->cert);
    free(bytes);
}

/* Block 1 changes the set to B (certified by the genesis), block 2 is
 * certified by B: a walk from the genesis crosses the change; the old set
 * no longer certifies block 2. */
static void test_verify_walk_follows_replica_change(void **state)
{
    struct fx *f = *state;
    struct set_b sb;
    struct blk b1, b2;
    uint8_t h1[32], h2[32];
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[SET_B];
    struct verify_epoch *ep = malloc(sizeof(*ep)),
                        *before = malloc(sizeof(*ep));
    struct verify_block_info info;

    assert_non_null(ep);
    assert_non_null(before);
    set_b_make(f, &sb);
    hand_block(f, 1, f->g->chain_id, &sb.set, &b1, h1);
    hand_cert(f, (const uint8_t(*)[64])f->replica_sk, 3, 0, 1, h1, &c, votes,
              &b1);
    hand_block(f, 2, h1, NULL, &b2, h2);
    hand_cert(f, (const uint8_t(*)[64])sb.sk, 3, 1, 2, h2, &c, votes, &b2);

    verify_epoch_genesis(f->g, ep);
    if (!verify_block_walk(ep, b1.bytes, b1.len, b1.cert, b1.prev, 1, &info,
                           f->why, sizeof(f->why)))
        fail_msg("block 1: %s", f->why);
    assert_true(info.next_replicas);
    assert_int_equal(info.next_n, SET_B);
    assert_int_equal(ep->n_changes, 1);
    assert_int_equal(ep->set.base_height, 1);
    assert_int_equal(ep->set.r[2].slot, 5);
    *before = *ep;
    if (!verify_block_walk(ep, b2.bytes, b2.len, b2.cert, b2.prev, 2, &info,
                           f->why, sizeof(f->why)))
        fail_msg("block 2: %s", f->why);
    assert_false(info.next_replicas);
    assert_int_equal(ep->n_changes, 1);
    /* The genesis alone does not certify block 2 any more... */
    assert_false(verify_block(f->g, b2.bytes, b2.len, b2.cert, b2.prev, 2, NULL,
                              f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "in the genesis"));
    /* ...and a certificate by the old set after the change fails. */
    hand_cert(f, (const uint8_t(*)[64])f->replica_sk, 3, 0, 2, h2, &c, votes,
              &b2);
    assert_false(verify_block_walk(ep, b2.bytes, b2.len, b2.cert, b2.prev, 2,
                                   NULL, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "replica set in force after block 1"));
    assert_memory_equal(ep, before, sizeof(*ep)); /* unchanged on false */
    /* B's votes under the genesis chain id are not B's epoch votes. */
    hand_cert(f, (const uint8_t(*)[64])sb.sk, 3, 0, 2, h2, &c, votes, &b2);
    assert_false(verify_block_walk(ep, b2.bytes, b2.len, b2.cert, b2.prev, 2,
                                   NULL, f->why, sizeof(f->why)));
    /* A set certifies only blocks after its base. */
    assert_false(verify_block_walk(ep, b1.bytes, b1.len, b1.cert, b1.prev, 1,
                                   NULL, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "is not after block 1"));
    free(ep);
    free(before);
    blk_free(&b1);
    blk_free(&b2);
}

static void test_verify_epoch_follow_refuses_bad_links(void **state)
{
    struct fx *f = *state;
    struct set_b sb;
    struct blk b1, b2;
    uint8_t h1[32], h2[32], hdr[1024];
    struct pbft_checkpoint_cert c;
    struct pbft_vote votes[SET_B];
    struct verify_epoch *ep = malloc(sizeof(*ep));
    Tc__Block *d;
    size_t hl;

    assert_non_null(ep);
    set_b_make(f, &sb);
    hand_block(f, 1, f->g->chain_id, &sb.set, &b1, h1);
    hand_cert(f, (const uint8_t(*)[64])f->replica_sk, 3, 0, 1, h1, &c, votes,
              &b1);
    hand_block(f, 2, h1, NULL, &b2, h2);
    hand_cert(f, (const uint8_t(*)[64])sb.sk, 3, 1, 2, h2, &c, votes, &b2);
    d = tc__block__unpack(NULL, b1.len, b1.bytes);
    assert_non_null(d);
    hl = d->header.len;
    assert_true(hl <= sizeof(hdr));
    memcpy(hdr, d->header.data, hl);
    tc__block__free_unpacked(d, NULL);

    verify_epoch_genesis(f->g, ep);
    /* a link certified by the set it introduces (self-certified) */
    assert_false(
        verify_epoch_follow(ep, hdr, hl, b2.cert, f->why, sizeof(f->why)));
    assert_int_equal(ep->n_changes, 0);
    /* a forged set: one key changed after certification */
    hdr[hl - 40] ^= 1;
    assert_false(
        verify_epoch_follow(ep, hdr, hl, b1.cert, f->why, sizeof(f->why)));
    hdr[hl - 40] ^= 1;
    assert_true(
        verify_epoch_follow(ep, hdr, hl, b1.cert, f->why, sizeof(f->why)));
    assert_int_equal(ep->n_changes, 1);
    /* the same link again: not after the set's own base */
    assert_false(
        verify_epoch_follow(ep, hdr, hl, b1.cert, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "is not after block 1"));
    /* a block without a new set is no link */
    d = tc__block__unpack(NULL, b2.len, b2.bytes);
    assert_false(verify_epoch_follow(ep, d->header.data, d->header.len, b2.cert,
                                     f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "no epoch link"));
    tc__block__free_unpacked(d, NULL);
    /* the core's certificate form */
    hand_cert(f, (const uint8_t(*)[64])sb.sk, 3, 1, 2, h2, &c, votes, NULL);
    assert_true(verify_checkpoint_with_set(&ep->set, ep->epoch_chain_id, &c,
                                           f->why, sizeof(f->why)));
    c.n_votes = 2;
    assert_false(verify_checkpoint_with_set(&ep->set, ep->epoch_chain_id, &c,
                                            f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "quorum"));
    free(ep);
    blk_free(&b1);
    blk_free(&b2);
}

/* Replica sets a verifier refuses to take over. */
static void test_verify_replica_set_decode_refuses_bad_sets(void **state)
{
    struct fx *f = *state;
    struct set_b sb;
    struct gov_replica_set *out = malloc(sizeof(*out));
    uint8_t saved[32];

    assert_non_null(out);
    set_b_make(f, &sb);
    assert_true(
        verify_replica_set_decode(&sb.set, 9, out, f->why, sizeof(f->why)));
    assert_int_equal(out->n, SET_B);
    assert_int_equal(out->base_height, 9);
    assert_string_equal(out->r[3].name, "node6");
    sb.info[2].slot = 1;
    assert_false(
        verify_replica_set_decode(&sb.set, 9, out, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "not ordered by slot"));
    sb.info[2].slot = 5;
    memcpy(saved, sb.pk[3], 32);
    memcpy(sb.pk[3], sb.pk[1], 32);
    assert_false(
        verify_replica_set_decode(&sb.set, 9, out, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "share a key"));
    memcpy(sb.pk[3], saved, 32);
    sb.info[1].public_key.len = 31;
    assert_false(
        verify_replica_set_decode(&sb.set, 9, out, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "32-byte key"));
    sb.info[1].public_key.len = 32;
    sb.info[3].slot = GOV_SLOTS_MAX;
    assert_false(
        verify_replica_set_decode(&sb.set, 9, out, f->why, sizeof(f->why)));
    sb.info[3].slot = 6;
    sb.set.n_replicas = GOV_REPLICAS_MIN - 1;
    assert_false(
        verify_replica_set_decode(&sb.set, 9, out, f->why, sizeof(f->why)));
    assert_non_null(strstr(f->why, "it needs"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_verify_block_accepts_certified_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_block_refuses_wrong_place,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_block_refuses_garbage,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_block_refuses_changed_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_block_refuses_bad_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_log_extension_checks_prefix,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_signed_tx_checks_signature_and_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_receipt_survives_mutations,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_walk_follows_replica_change,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_epoch_follow_refuses_bad_links, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_replica_set_decode_refuses_bad_sets, setup, teardown),
    };
    return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
