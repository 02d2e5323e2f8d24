/*
 * cmd_verify.c - proof, verify receipt | ledger | inclusion | consistency |
 * document (the last one lives in cmd_audit.c).
 *
 * Receipt files (`trialchain proof TXID -o FILE`) are JSON:
 *   { "format": "trialchain-receipt/v1",
 *     "tx_id": "<hex>", "height": H, "time": "...Z", "status": "accepted",
 *     "receipt": "<base64 of the ledger.proto Receipt protobuf bytes>" }
 * Only "receipt" is trusted by `verify receipt`: the other fields are for
 * people and are checked against it. A file holding the bare Receipt
 * protobuf bytes is accepted too.
 */
#include "cmd.h"
#include "crypto.h"
#include "merkle.h"
#include "tx.h"
#include "util.h"
#include "verify.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const char proof_usage[] =
    "usage: trialchain proof TXID -o FILE\n"
    "Writes the transaction's receipt: the signed transaction, its result, "
    "the\n"
    "block header holding it with the block's certificate (a quorum of "
    "replica\n"
    "signatures), and its Merkle inclusion proofs. Anyone holding the "
    "genesis\n"
    "file checks it offline with `trialchain verify receipt FILE --genesis "
    "G`.\n"
    "FILE is JSON; its \"receipt\" field is the base64 of the Receipt "
    "protobuf\n"
    "(proto/ledger.proto).\n";

static const char verify_usage[] =
    "usage: trialchain verify receipt FILE --genesis G [--tx TXID]\n"
    "       trialchain verify ledger --genesis G [--from H]\n"
    "       trialchain verify inclusion --leaf-hash HEX --index I --size N "
    "--root HEX\n"
    "                                   [--path HEX,HEX,...]\n"
    "       trialchain verify consistency --size1 M --size2 N --root1 HEX "
    "--root2 HEX\n"
    "                                     [--path HEX,HEX,...]\n"
    "       trialchain verify document FILE --trial T [--version V]\n"
    "receipt: checks a receipt offline with the genesis alone (certificate,\n"
    "  following each replica-set change it carries, inclusion in the block\n"
    "  and in the global log, the signature).\n"
    "ledger: fetches every block with its certificate from the node and "
    "checks\n"
    "  the hash chain, each certificate (against the replica set in force,\n"
    "  switching at every block that changes it), each block's Merkle roots\n"
    "  and the global log's size and root, trusting nothing but the genesis "
    "G.\n"
    "inclusion / consistency: raw RFC 9162 proofs (SHA-256 hashes in hex) "
    "for\n"
    "  auditors who hold hashes from elsewhere.\n"
    "document: whether FILE is the protocol or consent document registered\n"
    "  for trial T (SHA-256 of the file against the ledger).\n"
    "Exit 0 when everything holds, 1 when something does not.\n";

int cmd_proof(int argc, char **argv)
{
    const char *out = NULL;
    const struct opt opts[] = {{"output", 'o', true, &out, NULL}};
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       proof_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the transaction id TXID", proof_usage);
    if (!out)
        return util_missing("-o FILE", proof_usage);
    struct sess s;
    Tc__ClientReply *r = NULL;
    rc = sess_open(&s, false);
    if (rc == EXIT_OK)
        rc = sess_receipt(&s, pos[0], &r);
    if (rc != EXIT_OK) {
        sess_close(&s);
        return rc;
    }
    Tc__Receipt *rec = r->receipt;
    size_t len = tc__receipt__get_packed_size(rec);
    uint8_t *bytes = malloc(len + 1);
    size_t b64len =
        sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64len);
    Tc__BlockHeader *h =
        tc__block_header__unpack(NULL, rec->header.len, rec->header.data);
    Tc__TxResult *res =
        tc__tx_result__unpack(NULL, rec->result.len, rec->result.data);
    if (!bytes || !b64 || !h || !res) {
        util_err("the node's receipt does not decode");
        rc = EXIT_FINDINGS;
    } else {
        tc__receipt__pack(rec, bytes);
        sodium_bin2base64(b64, b64len, bytes, len,
                          sodium_base64_VARIANT_ORIGINAL);
        char when[32];
        util_fmt_time(h->timestamp_ms, when);
        json_t *j = json_pack(
            "{s:s, s:s, s:I, s:s, s:s, s:s}", "format", "trialchain-receipt/v1",
            "tx_id", pos[0], "height", (json_int_t)h->height, "time", when,
            "status",
            res->status == TC__TX_STATUS__TX_ACCEPTED ? "accepted" : "rejected",
            "receipt", b64);
        char *text =
            j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!text || lg_write_file(out, text, strlen(text), 0644) != 0) {
            util_err("cannot write %s (check the directory)", out);
            rc = EXIT_USAGE;
        } else if (cli.json) {
            util_print_json(json_pack("{s:s, s:s, s:I}", "file", out, "tx_id",
                                      pos[0], "height", (json_int_t)h->height));
        } else {
            printf("wrote the receipt of tx %.16s... (block %llu) to %s\n"
                   "check it offline: trialchain verify receipt %s --genesis "
                   "GENESIS\n",
                   pos[0], (unsigned long long)h->height, out, out);
        }
        free(text);
    }
    if (h)
        tc__block_header__free_unpacked(h, NULL);
    if (res)
        tc__tx_result__free_unpacked(res, NULL);
    free(bytes);
    free(b64);
    client_reply_free(r);
    sess_close(&s);
    return rc;
}

/* The Receipt inside a receipt file (JSON or raw protobuf). */
static Tc__Receipt *load_receipt(const unsigned char *text, size_t len)
{
    json_t *j = json_loadb((const char *)text, len, 0, NULL);
    if (!j)
        return tc__receipt__unpack(NULL, len, text);
    const char *b64 = json_string_value(json_object_get(j, "receipt"));
    Tc__Receipt *r = NULL;
    if (b64) {
        size_t cap = strlen(b64), n = 0;
        uint8_t *bin = malloc(cap + 1);
        if (bin && sodium_base642bin(bin, cap, b64, strlen(b64), " \n", &n,
                                     NULL, sodium_base64_VARIANT_ORIGINAL) == 0)
            r = tc__receipt__unpack(NULL, n, bin);
        free(bin);
    }
    json_decref(j);
    return r;
}

static int verify_receipt_cmd(int argc, char **argv)
{
    const char *gpath = NULL, *want = NULL;
    const struct opt opts[] = {
        {"genesis", 0, true, &gpath, NULL},
        {"tx", 0, true, &want, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       verify_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the receipt FILE", verify_usage);
    if (!gpath)
        return util_missing("--genesis G (the consortium's genesis file)",
                            verify_usage);
    struct sess s = {0};
    rc = sess_genesis(&s, gpath);
    if (rc != EXIT_OK)
        return rc;
    unsigned char *text;
    size_t len;
    rc = util_read_file(pos[0], &text, &len);
    if (rc != EXIT_OK) {
        sess_close(&s);
        return rc;
    }
    Tc__Receipt *r = load_receipt(text, len);
    free(text);
    if (!r) {
        util_err("%s is not a receipt (write one with `trialchain proof "
                 "TXID -o FILE`)",
                 pos[0]);
        sess_close(&s);
        return EXIT_USAGE;
    }
    struct verify_receipt_info info;
    char why[300] = "";
    bool ok = verify_receipt(s.g, r, &info, why, sizeof(why));
    char id[65] = "";
    if (ok) {
        lg_hex(info.tx_id, 32, id);
        if (want && strcasecmp(want, id) != 0) {
            ok = false;
            snprintf(why, sizeof(why), "it is the receipt of tx %s, not %s", id,
                     want);
        }
    }
    char when[32] = "";
    if (ok)
        util_fmt_time(info.time_ms, when);
    if (cli.json) {
        json_t *j = json_pack("{s:b}", "valid", ok);
        if (ok) {
            json_object_set_new(j, "tx_id", json_string(id));
            json_object_set_new(j, "height",
                                json_integer((json_int_t)info.height));
            json_object_set_new(j, "time", json_string(when));
            json_object_set_new(j, "log_index",
                                json_integer((json_int_t)info.log_index));
            json_object_set_new(j, "log_size",
                                json_integer((json_int_t)info.log_size));
            json_object_set_new(j, "replica_set_changes",
                                json_integer((json_int_t)info.n_epochs));
            json_object_set_new(
                j, "status",
                json_string(info.status == TC__TX_STATUS__TX_ACCEPTED
                                ? "accepted"
                                : "rejected"));
        } else {
            json_object_set_new(j, "problem", json_string(why));
        }
        util_print_json(j);
    } else if (ok) {
        char by[96];
        if (info.n_epochs == 0)
            snprintf(by, sizeof(by), "the genesis replicas");
        else
            snprintf(by, sizeof(by),
                     "the replica set in force, reached from the genesis "
                     "across %u change%s",
                     info.n_epochs, info.n_epochs == 1 ? "" : "s");
        printf("VALID: tx %s\n  in block %llu at %s, certified by a quorum "
               "of %s\n  log leaf %llu of %llu\n  the "
               "transaction was %s\n",
               id, (unsigned long long)info.height, when, by,
               (unsigned long long)info.log_index,
               (unsigned long long)info.log_size,
               info.status == TC__TX_STATUS__TX_ACCEPTED ? "accepted"
                                                         : "REJECTED");
    } else {
        printf("INVALID: %s\n", why);
    }
    tc__receipt__free_unpacked(r, NULL);
    sess_close(&s);
    return ok ? EXIT_OK : EXIT_FINDINGS;
}

/* ---- the whole ledger --------------------------------------------------- */

struct ledger_check {
    struct merkle_log log;
    struct verify_epoch ep; /* the replica set in force, from the genesis */
    uint8_t prev[32];
    uint64_t blocks, txs;
    char why[400];
};

/* Checks one block reply; false with why set when something fails. */
static bool check_block(struct ledger_check *lc, uint64_t h,
                        const Tc__BlockReply *br)
{
    if (!br->block || !br->cert) {
        snprintf(lc->why, sizeof(lc->why),
                 "block %llu came without its certificate",
                 (unsigned long long)h);
        return false;
    }
    size_t len = tc__block__get_packed_size(br->block);
    uint8_t *bytes = malloc(len + 1);
    if (!bytes) {
        snprintf(lc->why, sizeof(lc->why), "out of memory");
        return false;
    }
    tc__block__pack(br->block, bytes);
    struct verify_block_info info;
    char why[300] = "";
    /* each certificate against the set in force; a block carrying
     * next_replicas switches the set for the blocks after it */
    bool ok = verify_block_walk(&lc->ep, bytes, len, br->cert, lc->prev, h,
                                &info, why, sizeof(why));
    free(bytes);
    if (!ok) {
        snprintf(lc->why, sizeof(lc->why), "block %llu: %s",
                 (unsigned long long)h, why);
        return false;
    }
    for (size_t i = 0; i < br->block->n_txs; i++) {
        uint8_t leaf[32];
        merkle_leaf_hash(br->block->txs[i].data, br->block->txs[i].len, leaf);
        merkle_log_append(&lc->log, leaf);
    }
    uint8_t root[32];
    merkle_log_root(&lc->log, root);
    if (lc->log.size != info.log_size ||
        sodium_memcmp(root, info.log_root, 32) != 0) {
        snprintf(lc->why, sizeof(lc->why),
                 "block %llu: its header says the log holds %llu txs with "
                 "another root than the %llu txs of blocks 1..%llu give",
                 (unsigned long long)h, (unsigned long long)info.log_size,
                 (unsigned long long)lc->log.size, (unsigned long long)h);
        return false;
    }
    memcpy(lc->prev, info.block_hash, 32);
    lc->blocks++;
    lc->txs += br->block->n_txs;
    return true;
}

/* Fetches and checks blocks 1..certified in order; *ok false with lc->why
 * at the first that fails. Returns an exit code for the transport. */
static int ledger_walk(struct sess *s, struct ledger_check *lc,
                       uint64_t certified, bool *ok)
{
    struct util_progress prog;
    int rc = EXIT_OK;

    util_progress_start(&prog, "blocks", 0);
    prog.enabled = certified >= 1000 && !cli.json && isatty(2);
    prog.total = certified;
    for (uint64_t h = 1; rc == EXIT_OK && *ok && h <= certified; h++) {
        Tc__ClientReply *r = NULL;
        int rv = client_get_block(s->c, h, &r);
        if (rv != 0) {
            util_err("cannot fetch block %llu from %s: %s",
                     (unsigned long long)h, cli.node_url, client_error(s->c));
            rc = EXIT_UNREACHABLE;
        } else if (r->code != TC__REPLY_CODE__REPLY_OK || !r->block) {
            snprintf(lc->why, sizeof(lc->why),
                     "the node has no block %llu although it reports %llu "
                     "certified blocks",
                     (unsigned long long)h, (unsigned long long)certified);
            *ok = false;
        } else {
            *ok = check_block(lc, h, r->block);
        }
        client_reply_free(r);
        util_progress_add(&prog, 1);
    }
    util_progress_end(&prog);
    return rc;
}

static void ledger_report(const struct ledger_check *lc, bool ok)
{
    char root[65];
    uint8_t r32[32];

    merkle_log_root(&lc->log, r32);
    lg_hex(r32, 32, root);
    if (cli.json) {
        json_t *j = json_pack(
            "{s:b, s:I, s:I, s:s, s:I, s:I}", "valid", ok, "blocks",
            (json_int_t)lc->blocks, "txs", (json_int_t)lc->txs, "log_root",
            root, "replica_set_changes", (json_int_t)lc->ep.n_changes,
            "replicas", (json_int_t)lc->ep.set.n);
        if (!ok)
            json_object_set_new(j, "problem", json_string(lc->why));
        util_print_json(j);
    } else if (ok) {
        printf("VALID: %llu certified blocks, %llu transactions, %u "
               "replica-set change%s crossed\n  hash chain, certificates "
               "(each by the replica set in force), block roots and log "
               "root %s\n  checked against the genesis alone\n",
               (unsigned long long)lc->blocks, (unsigned long long)lc->txs,
               lc->ep.n_changes, lc->ep.n_changes == 1 ? "" : "s", root);
    } else {
        printf("INVALID after %llu good blocks (%u replica-set change%s "
               "crossed): %s\n",
               (unsigned long long)lc->blocks, lc->ep.n_changes,
               lc->ep.n_changes == 1 ? "" : "s", lc->why);
    }
}

static int verify_ledger(int argc, char **argv)
{
    const char *gpath = NULL;
    const struct opt opts[] = {{"genesis", 0, true, &gpath, NULL}};
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       verify_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!gpath)
        return util_missing("--genesis G (the consortium's genesis file)",
                            verify_usage);
    struct sess s;
    rc = sess_open(&s, false);
    if (rc != EXIT_OK) {
        sess_close(&s);
        return rc;
    }
    /* the node's genesis is not trusted: the file given is */
    rc = sess_genesis(&s, gpath);
    if (rc == EXIT_OK && memcmp(s.g->chain_id, s.chain_id, 32) != 0) {
        util_err("the node at %s serves another consortium than the "
                 "genesis %s",
                 cli.node_url, gpath);
        rc = EXIT_FINDINGS;
    }
    Tc__ClientReply *st = NULL;
    uint64_t certified = 0;
    if (rc == EXIT_OK) {
        if (client_status(s.c, &st) != 0 || !st->status) {
            util_err("the node at %s did not answer its status", cli.node_url);
            rc = EXIT_UNREACHABLE;
        } else {
            certified = st->status->last_certified;
        }
        client_reply_free(st);
    }
    /* the walk's replica set is large: keep it off the stack */
    struct ledger_check *lc = calloc(1, sizeof(*lc));
    if (lc == NULL) {
        util_err("out of memory");
        sess_close(&s);
        return EXIT_USAGE;
    }
    merkle_log_init(&lc->log);
    if (rc == EXIT_OK) {
        memcpy(lc->prev, s.g->chain_id, 32);
        verify_epoch_genesis(s.g, &lc->ep);
    }
    bool ok = true;
    if (rc == EXIT_OK)
        rc = ledger_walk(&s, lc, certified, &ok);
    if (rc == EXIT_OK) {
        ledger_report(lc, ok);
        rc = ok ? EXIT_OK : EXIT_FINDINGS;
    }
    free(lc);
    sess_close(&s);
    return rc;
}

/* ---- raw proofs ------------------------------------------------------------
 */

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return *end == '\0';
}

/* Parses "HEX,HEX,..." into path (at most MERKLE_MAX_PATH hashes). */
static int parse_path(const char *s, uint8_t (*path)[32], size_t *n)
{
    *n = 0;
    if (!s || !*s)
        return EXIT_OK;
    /* an empty item is a malformed proof, not one to skip */
    size_t len = strlen(s);
    if (s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,")) {
        util_err("--path has an empty hash");
        return EXIT_USAGE;
    }
    size_t cnt;
    char **v = util_split(s, &cnt);
    if (!v)
        return EXIT_USAGE;
    int rc = EXIT_OK;
    if (cnt > MERKLE_MAX_PATH) {
        util_err("--path holds %zu hashes; at most %d", cnt, MERKLE_MAX_PATH);
        rc = EXIT_USAGE;
    }
    for (size_t i = 0; rc == EXIT_OK && i < cnt; i++) {
        if (!util_unhex(v[i], path[i], 32)) {
            util_err("--path item %zu is not 64 hex digits", i + 1);
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK)
        *n = cnt;
    util_free_list(v, cnt);
    return rc;
}

static int report_proof(bool holds, const char *what)
{
    if (cli.json)
        util_print_json(json_pack("{s:s, s:b}", "proof", what, "holds", holds));
    else
        printf("%s proof %s\n", what, holds ? "HOLDS" : "DOES NOT HOLD");
    return holds ? EXIT_OK : EXIT_FINDINGS;
}

static int verify_inclusion(int argc, char **argv)
{
    const char *leaf_s = NULL, *index_s = NULL, *size_s = NULL, *root_s = NULL,
               *path_s = NULL;
    const struct opt opts[] = {
        {"leaf-hash", 0, true, &leaf_s, NULL},
        {"index", 0, true, &index_s, NULL},
        {"size", 0, true, &size_s, NULL},
        {"root", 0, true, &root_s, NULL},
        {"path", 0, true, &path_s, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       verify_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    uint8_t leaf[32], root[32], path[MERKLE_MAX_PATH][32];
    uint64_t index, size;
    size_t n_path;
    if (!util_unhex(leaf_s, leaf, 32)) {
        util_err("--leaf-hash wants 64 hex digits");
        return EXIT_USAGE;
    }
    if (!util_unhex(root_s, root, 32)) {
        util_err("--root wants 64 hex digits");
        return EXIT_USAGE;
    }
    if (!parse_u64(index_s, &index) || !parse_u64(size_s, &size)) {
        util_err("--index and --size want numbers");
        return EXIT_USAGE;
    }
    rc = parse_path(path_s, path, &n_path);
    if (rc != EXIT_OK)
        return rc;
    return report_proof(merkle_verify_inclusion(leaf, index, size,
                                                (const uint8_t(*)[32])path,
                                                n_path, root),
                        "inclusion");
}

static int verify_consistency(int argc, char **argv)
{
    const char *s1 = NULL, *s2 = NULL, *r1 = NULL, *r2 = NULL, *path_s = NULL;
    const struct opt opts[] = {
        {"size1", 0, true, &s1, NULL},    {"size2", 0, true, &s2, NULL},
        {"root1", 0, true, &r1, NULL},    {"root2", 0, true, &r2, NULL},
        {"path", 0, true, &path_s, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       verify_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    uint8_t root1[32], root2[32], path[MERKLE_MAX_PATH][32];
    uint64_t size1, size2;
    size_t n_path;
    if (!util_unhex(r1, root1, 32) || !util_unhex(r2, root2, 32)) {
        util_err("--root1 and --root2 want 64 hex digits");
        return EXIT_USAGE;
    }
    if (!parse_u64(s1, &size1) || !parse_u64(s2, &size2)) {
        util_err("--size1 and --size2 want numbers");
        return EXIT_USAGE;
    }
    rc = parse_path(path_s, path, &n_path);
    if (rc != EXIT_OK)
        return rc;
    return report_proof(merkle_verify_consistency(size1, size2, root1, root2,
                                                  (const uint8_t(*)[32])path,
                                                  n_path),
                        "consistency");
}

int cmd_verify(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(verify_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[0], "receipt"))
        return verify_receipt_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[0], "ledger"))
        return verify_ledger(argc - 1, argv + 1);
    if (!strcmp(argv[0], "inclusion"))
        return verify_inclusion(argc - 1, argv + 1);
    if (!strcmp(argv[0], "consistency"))
        return verify_consistency(argc - 1, argv + 1);
    if (!strcmp(argv[0], "document"))
        return cmd_verify_document(argc - 1, argv + 1);
    util_err("unknown verify command %s (receipt, ledger, inclusion, "
             "consistency, document)",
             argv[0]);
    return EXIT_USAGE;
}
