/*
 * cmd_basic.c - keygen, status, block, tx.
 */
#include "cmd.h"
#include "crypto.h"
#include "tx.h"
#include "util.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const char keygen_usage[] =
    "usage: trialchain keygen --name NAME --role ROLE -o FILE\n"
    "                         [--genesis FILE | --chain-id HEX]\n"
    "Makes a member key (Ed25519) and writes it to FILE with mode 0600.\n"
    "ROLE is sponsor, site, ethics_board or auditor; a site key also holds\n"
    "the secret its participant pseudonyms are keyed with (keep it: it is\n"
    "the only link between a pseudonym and a person). Give the printed\n"
    "public key to the consortium for its genesis. --genesis/--chain-id\n"
    "bind the key to one consortium, so it is refused by any other.\n";

int cmd_keygen(int argc, char **argv)
{
    const char *name = NULL, *role_s = NULL, *out = NULL, *gpath = NULL,
               *chain_hex = NULL;
    const struct opt opts[] = {
        {"name", 0, true, &name, NULL},
        {"role", 0, true, &role_s, NULL},
        {"output", 'o', true, &out, NULL},
        {"genesis", 0, true, &gpath, NULL},
        {"chain-id", 0, true, &chain_hex, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       keygen_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!name)
        return util_missing("--name NAME", keygen_usage);
    if (!role_s)
        return util_missing("--role ROLE", keygen_usage);
    if (!out)
        return util_missing("-o FILE", keygen_usage);
    enum member_role role;
    if (role_parse(role_s, &role) != 0 || role == ROLE_NONE) {
        util_err("unknown role %s: use sponsor, site, ethics_board or "
                 "auditor",
                 role_s);
        return EXIT_USAGE;
    }
    struct stat st;
    if (stat(out, &st) == 0) {
        util_err("%s exists; a key is never overwritten: choose another "
                 "path or move the old key away",
                 out);
        return EXIT_USAGE;
    }
    uint8_t chain[32];
    const uint8_t *chain_id = NULL;
    if (chain_hex) {
        if (!util_unhex(chain_hex, chain, 32)) {
            util_err("--chain-id wants 64 hex digits");
            return EXIT_USAGE;
        }
        chain_id = chain;
    } else if (gpath) {
        struct sess s = {0};
        rc = sess_genesis(&s, gpath);
        if (rc != EXIT_OK)
            return rc;
        memcpy(chain, s.g->chain_id, 32);
        chain_id = chain;
        sess_close(&s);
    }
    struct keyfile k;
    char err[512] = "";
    if (keyfile_generate(out, "member", name, role, chain_id, &k, err,
                         sizeof(err)) != 0) {
        util_err("cannot write the key %s: %s", out, err);
        return EXIT_USAGE;
    }
    char pk[65];
    lg_hex(k.public_key, 32, pk);
    if (cli.json) {
        util_print_json(json_pack("{s:s, s:s, s:s, s:s}", "name", name, "role",
                                  role_name(role), "public_key", pk, "file",
                                  out));
    } else {
        printf("wrote %s (mode 0600)\n  name        %s\n  role        %s\n"
               "  public key  %s\n",
               out, name, role_name(role), pk);
    }
    keyfile_free(&k);
    return EXIT_OK;
}

static const char status_usage[] =
    "usage: trialchain status [--json]\n"
    "The node's chain id, height, view, primary, last block hash, log size\n"
    "and root, and how many peers it is connected to.\n";

int cmd_status(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc =
        util_opts(argc, argv, NULL, 0, pos, &n_pos, 0, status_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    struct client *c = NULL;
    int rv = client_open(cli.node_url, cli.timeout_ms, &c);
    Tc__ClientReply *r = NULL;
    if (rv == 0)
        rv = client_status(c, &r);
    if (rv != 0 || r->code != TC__REPLY_CODE__REPLY_OK || !r->status) {
        util_err("cannot reach the node at %s (%s); check that it runs "
                 "(scripts/testnet.sh status DIR) or pass --node URL",
                 cli.node_url,
                 rv ? (c ? client_error(c) : lg_strerror(rv))
                    : client_code_text(r->code));
        client_reply_free(r);
        client_close(c);
        return EXIT_UNREACHABLE;
    }
    Tc__StatusReply *st = r->status;
    if (cli.json) {
        util_print_json(util_msg_json(&st->base));
    } else {
        char chain[65] = "", last[65] = "", root[65] = "";
        if (st->chain_id.len == 32)
            lg_hex(st->chain_id.data, 32, chain);
        if (st->last_block_hash.len == 32)
            lg_hex(st->last_block_hash.data, 32, last);
        if (st->log_root.len == 32)
            lg_hex(st->log_root.data, 32, root);
        printf("chain id     %s\nreplica      %u of %u (primary %u, view "
               "%llu)\nheight       %llu (certified %llu)\n"
               "last block   %s\nlog          %llu txs, root %s\n"
               "peers        %u connected\nready        %s\n",
               chain, st->replica, st->n_replicas, st->primary,
               (unsigned long long)st->view, (unsigned long long)st->height,
               (unsigned long long)st->last_certified, last,
               (unsigned long long)st->log_size, root, st->peers_connected,
               st->ready ? "yes" : "no");
        for (size_t i = 0; i < st->n_not_ready_reasons; i++)
            printf("             %s\n", st->not_ready_reasons[i]);
    }
    client_reply_free(r);
    client_close(c);
    return EXIT_OK;
}

static const char block_usage[] =
    "usage: trialchain block H [--json]\n"
    "Shows block H: time, hashes, its transactions with their results, and\n"
    "how many replica signatures certify it.\n";

int cmd_block(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 1, block_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the block height H", block_usage);
    char *end;
    unsigned long long height = strtoull(pos[0], &end, 10);
    if (*end || pos[0][0] == '-' || height == 0) {
        util_err("the block height must be a number from 1: %s", pos[0]);
        return EXIT_USAGE;
    }
    struct sess s;
    rc = sess_open(&s, false);
    if (rc != EXIT_OK) {
        sess_close(&s);
        return rc;
    }
    Tc__ClientReply *r = NULL;
    rc = client_get_block(s.c, height, &r) == 0 ? EXIT_OK : EXIT_UNREACHABLE;
    if (rc != EXIT_OK) {
        util_err("cannot reach the node at %s", cli.node_url);
        sess_close(&s);
        return rc;
    }
    if (r->code != TC__REPLY_CODE__REPLY_OK || !r->block || !r->block->block) {
        util_err("no block %llu (the ledger's height is %llu)", height,
                 (unsigned long long)s.height);
        client_reply_free(r);
        sess_close(&s);
        return EXIT_USAGE;
    }
    (void)sess_genesis(&s, NULL);
    Tc__Block *b = r->block->block;
    Tc__BlockHeader *h =
        tc__block_header__unpack(NULL, b->header.len, b->header.data);
    if (!h) {
        util_err("the node sent a block header that does not decode");
        client_reply_free(r);
        sess_close(&s);
        return EXIT_FINDINGS;
    }
    uint8_t bh[32];
    crypto_sha256(b->header.data, b->header.len, bh);
    char hash[65], prev[65] = "", when[32];
    lg_hex(bh, 32, hash);
    if (h->prev_hash.len == 32)
        lg_hex(h->prev_hash.data, 32, prev);
    util_fmt_time(h->timestamp_ms, when);
    size_t votes = r->block->cert ? r->block->cert->n_votes : 0;
    json_t *jtxs = json_array();
    if (!cli.json)
        printf("block %llu\n  time        %s\n  hash        %s\n  prev        "
               "%s\n  view        %llu\n  log         %llu txs\n  "
               "certificate %zu replica signatures\n  transactions %zu\n",
               height, when, hash, prev, (unsigned long long)h->view,
               (unsigned long long)h->log_size, votes, b->n_txs);
    for (size_t i = 0; i < b->n_txs; i++) {
        Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
        e.signed_tx = b->txs[i];
        if (i < b->n_results)
            e.result = b->results[i];
        Tc__Tx *tx;
        Tc__TxResult *res;
        uint8_t id[32];
        char idhex[65], line[512], who[24];
        tx_id(b->txs[i].data, b->txs[i].len, id);
        lg_hex(id, 32, idhex);
        if (entry_decode(&e, &tx, &res) != 0) {
            printf("  %s  (does not decode)\n", idhex);
            continue;
        }
        util_tx_describe(tx, line, sizeof(line));
        const char *signer =
            util_member_name(s.g, tx->signer.data, tx->signer.len, who);
        bool ok = res && res->status == TC__TX_STATUS__TX_ACCEPTED;
        if (cli.json) {
            json_t *jt = json_pack(
                "{s:s, s:s, s:s, s:s, s:s, s:o}", "tx_id", idhex, "signer",
                signer, "kind", util_tx_kind(tx), "status",
                ok ? "accepted" : "rejected", "code", res ? res->code : "",
                "body", util_msg_json(&tx->base));
            json_array_append_new(jtxs, jt);
        } else {
            printf("  %.16s  %-10s %s%s%s%s\n", idhex, signer, line,
                   ok ? "" : "  [REJECTED: ", ok ? "" : (res ? res->code : "?"),
                   ok ? "" : "]");
        }
        tc__tx__free_unpacked(tx, NULL);
        if (res)
            tc__tx_result__free_unpacked(res, NULL);
    }
    if (cli.json)
        util_print_json(json_pack(
            "{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "height",
            (json_int_t)height, "time", when, "hash", hash, "prev_hash", prev,
            "view", (json_int_t)h->view, "log_size", (json_int_t)h->log_size,
            "certificate_votes", (json_int_t)votes, "txs", jtxs));
    else
        json_decref(jtxs);
    tc__block_header__free_unpacked(h, NULL);
    client_reply_free(r);
    sess_close(&s);
    return EXIT_OK;
}

static const char tx_usage[] =
    "usage: trialchain tx ID [--json]\n"
    "Shows a transaction by its id (64 hex digits): who signed it, what it\n"
    "does, its block and whether it was accepted or rejected (and why).\n";

int cmd_tx(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 1, tx_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the transaction ID", tx_usage);
    struct sess s;
    rc = sess_open(&s, false);
    Tc__ClientReply *r = NULL;
    if (rc == EXIT_OK)
        rc = sess_receipt(&s, pos[0], &r);
    if (rc != EXIT_OK) {
        sess_close(&s);
        return rc;
    }
    (void)sess_genesis(&s, NULL);
    Tc__Receipt *rc_ = r->receipt;
    Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
    e.signed_tx = rc_->signed_tx;
    e.result = rc_->result;
    Tc__Tx *tx;
    Tc__TxResult *res;
    Tc__BlockHeader *h =
        tc__block_header__unpack(NULL, rc_->header.len, rc_->header.data);
    if (entry_decode(&e, &tx, &res) != 0 || !h) {
        util_err("the node sent a transaction that does not decode");
        if (h)
            tc__block_header__free_unpacked(h, NULL);
        client_reply_free(r);
        sess_close(&s);
        return EXIT_FINDINGS;
    }
    char why[256] = "";
    bool verified = s.g && verify_receipt(s.g, rc_, NULL, why, sizeof(why));
    char line[512], who[24], when[32];
    util_tx_describe(tx, line, sizeof(line));
    util_fmt_time(h->timestamp_ms, when);
    const char *signer =
        util_member_name(s.g, tx->signer.data, tx->signer.len, who);
    bool ok = res && res->status == TC__TX_STATUS__TX_ACCEPTED;
    if (cli.json) {
        util_print_json(json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:b, s:o}", "tx_id",
            pos[0], "signer", signer, "kind", util_tx_kind(tx), "nonce",
            (json_int_t)tx->nonce, "height", (json_int_t)h->height, "time",
            when, "status", ok ? "accepted" : "rejected", "code",
            res ? res->code : "", "message", res ? res->message : "",
            "receipt_verified", verified, "body", util_msg_json(&tx->base)));
    } else {
        printf("tx %s\n  %s by %s\n  block %llu at %s\n  %s%s%s%s\n  "
               "receipt %s%s\n",
               pos[0], line, signer, (unsigned long long)h->height, when,
               ok ? "accepted" : "REJECTED (", ok ? "" : (res ? res->code : ""),
               ok ? "" : "): ", ok ? "" : (res ? res->message : ""),
               verified ? "verified against the genesis" : "NOT verified: ",
               verified ? "" : why);
    }
    tc__tx__free_unpacked(tx, NULL);
    if (res)
        tc__tx_result__free_unpacked(res, NULL);
    tc__block_header__free_unpacked(h, NULL);
    client_reply_free(r);
    sess_close(&s);
    return verified ? EXIT_OK : EXIT_FINDINGS;
}
