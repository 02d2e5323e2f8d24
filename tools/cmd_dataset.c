/*
 * cmd_dataset.c - dataset register | verify | share | open, access revoke.
 *
 * Shared files (.enc): "TCENC1\n\0" (8 bytes), the secretstream header
 * (24 bytes), then XChaCha20-Poly1305 secretstream chunks of
 * SHARE_CHUNK plaintext bytes each (+17 bytes of tag); the last chunk is
 * shorter than SHARE_CHUNK (possibly empty) and carries TAG_FINAL, so a
 * truncated file or one with bytes after the end is refused. The random
 * data key is sealed (crypto_box_seal) to the grantee's X25519 key, derived
 * from its Ed25519 key in the genesis, and recorded in the AccessGrant with
 * the SHA-256 of the whole .enc file.
 */
#include "cmd.h"
#include "crypto.h"
#include "tx.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_OPTS(a)   (sizeof(a) / sizeof((a)[0]))
#define SHARE_MAGIC "TCENC1\n"
#define SHARE_CHUNK (64u * 1024u)

static const char dataset_usage[] =
    "usage: trialchain dataset register FILE|DIR --trial T --dataset ID\n"
    "                  --participants FILE [--records N] [--anonymization "
    "M]\n"
    "       trialchain dataset verify FILE|DIR --dataset ID [--trial T]\n"
    "       trialchain dataset share --dataset ID --to MEMBER --file FILE "
    "-o OUT.enc\n"
    "                  --purpose DUO --expires YYYY-MM-DD [--trial T]\n"
    "       trialchain dataset open OUT.enc --grant TXID -o FILE [--trial "
    "T]\n"
    "\n"
    "register (an authorized site): records the SHA-256 of an anonymized "
    "file\n"
    "  (streamed, as `sha256sum` computes it) or, for a directory, of its\n"
    "  manifest: one line \"<sha256>  <relative path>\\n\" per file, sorted "
    "by\n"
    "  path. --participants lists your local ids, one a line; only their\n"
    "  pseudonyms are recorded.\n"
    "verify: exit 0 when FILE's hash is the registered one, 1 when not.\n"
    "share (the dataset's site): encrypts FILE for MEMBER with a random key\n"
    "  sealed to MEMBER's public key, and records the grant (purpose: a DUO\n"
    "  code such as HMB or GRU+NPU; it must be covered by every "
    "participant's\n"
    "  consent). Send OUT.enc and the printed grant id to MEMBER.\n"
    "open (the grantee): decrypts, refuses a truncated or altered file, "
    "checks\n"
    "  the result against the registered hash and records the access.\n"
    "--trial T narrows the search for the dataset (default: every trial).\n";

static const char access_usage[] =
    "usage: trialchain access revoke --grant TXID [--reason TEXT]\n"
    "The granting site revokes a data-access grant from its block on.\n";

/* ---- the ledger's record of a dataset -------------------------------------
 */

struct dataset_rec {
    bool found;
    uint8_t sha256[32];
    bool is_manifest;
    char trial[96];
};

static int scan_trial(struct sess *s, const char *trial, const char *dataset,
                      struct dataset_rec *out)
{
    struct trial_entries e = {0};
    struct decoded_txs d = {0};
    int rc = sess_trial(s, trial, &e);
    if (rc == EXIT_OK)
        rc = decode_entries(&e, &d);
    for (size_t i = 0; rc == EXIT_OK && i < d.n; i++) {
        const Tc__Tx *tx = d.tx[i];
        if (tx->body_case != TC__TX__BODY_DATASET_REGISTER || !d.res[i] ||
            d.res[i]->status != TC__TX_STATUS__TX_ACCEPTED ||
            strcmp(tx->dataset_register->dataset_id, dataset) != 0 ||
            tx->dataset_register->sha256.len != 32)
            continue;
        out->found = true;
        memcpy(out->sha256, tx->dataset_register->sha256.data, 32);
        out->is_manifest = tx->dataset_register->is_manifest;
        snprintf(out->trial, sizeof(out->trial), "%s", trial);
    }
    util_free_txs(&d);
    trial_entries_free(&e);
    return rc;
}

/* Finds the accepted registration of a dataset id, in one trial or in
 * every trial of the ledger. */
static int find_dataset(struct sess *s, const char *dataset, const char *trial,
                        struct dataset_rec *out)
{
    memset(out, 0, sizeof(*out));
    int rc = EXIT_OK;
    if (trial) {
        rc = scan_trial(s, trial, dataset, out);
    } else {
        Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
        Tc__ListTrials lt = TC__LIST_TRIALS__INIT;
        Tc__Page page = TC__PAGE__INIT;
        req.req_case = TC__CLIENT_REQUEST__REQ_LIST_TRIALS;
        req.list_trials = &lt;
        lt.page = &page;
        for (int round = 0; round < 10000 && rc == EXIT_OK && !out->found;
             round++) {
            Tc__ClientReply *r = NULL;
            rc = sess_call(s, &req, &r, "no trials on this ledger");
            if (rc != EXIT_OK || !r->trials) {
                client_reply_free(r);
                break;
            }
            for (size_t i = 0;
                 i < r->trials->n_trials && rc == EXIT_OK && !out->found; i++)
                rc =
                    scan_trial(s, r->trials->trials[i]->trial_id, dataset, out);
            bool more = r->trials->more && r->trials->n_trials > 0;
            page.offset += (uint32_t)r->trials->n_trials;
            client_reply_free(r);
            if (!more)
                break;
        }
    }
    if (rc == EXIT_OK && !out->found) {
        util_err("no dataset %s is registered%s%s; check the id (see "
                 "`trialchain trial show T`)",
                 dataset, trial ? " in trial " : "", trial ? trial : "");
        rc = EXIT_USAGE;
    }
    return rc;
}

/* Hashes a file or, for a directory, its manifest. */
static int hash_input(const char *path, uint8_t h[32], uint64_t *size,
                      bool *is_manifest, uint64_t *n_files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        util_err("cannot read %s: %s (check the path)", path, strerror(errno));
        return EXIT_USAGE;
    }
    *is_manifest = S_ISDIR(st.st_mode);
    *n_files = 1;
    if (*is_manifest)
        return util_hash_dir(path, h, size, n_files, NULL);
    return util_hash_file(path, h, size, NULL);
}

/* ---- register / verify -----------------------------------------------------
 */

/* Reads local ids (one a line; blank lines and #comments skipped) and
 * turns each into its pseudonym. */
static int read_participants(const char *path, const uint8_t secret[32],
                             const char *trial, ProtobufCBinaryData **out,
                             size_t *n)
{
    unsigned char *text;
    size_t len;
    int rc = util_read_file(path, &text, &len);
    if (rc != EXIT_OK)
        return rc;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    ProtobufCBinaryData *v = calloc(cap, sizeof(*v));
    uint8_t *buf = calloc(cap, 32);
    if (!v || !buf) {
        free(v);
        free(buf);
        free(text);
        util_err("out of memory");
        return EXIT_USAGE;
    }
    *n = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\r' || line[l - 1] == ' ' ||
                     line[l - 1] == '\t'))
            line[--l] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        tx_pseudonym(secret, trial, line, buf + 32 * *n);
        v[*n] = util_bin(buf + 32 * *n, 32);
        (*n)++;
    }
    sodium_memzero(text, len);
    free(text);
    if (*n == 0) {
        util_err("%s lists no participants (one local id a line)", path);
        free(v);
        free(buf);
        return EXIT_USAGE;
    }
    *out = v;
    return EXIT_OK;
}

static int dataset_register(int argc, char **argv)
{
    const char *trial = NULL, *dataset = NULL, *parts = NULL, *records_s = NULL,
               *anon = "";
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"dataset", 0, true, &dataset, NULL},
        {"participants", 0, true, &parts, NULL},
        {"records", 0, true, &records_s, NULL},
        {"anonymization", 0, true, &anon, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       dataset_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the dataset FILE or DIR", dataset_usage);
    if (!trial)
        return util_missing("--trial T", dataset_usage);
    if (!dataset)
        return util_missing("--dataset ID", dataset_usage);
    if (!parts)
        return util_missing("--participants FILE", dataset_usage);
    unsigned long long records = 0;
    if (records_s) {
        char *end;
        records = strtoull(records_s, &end, 10);
        if (*end || records_s[0] == '-') {
            util_err("--records wants a count");
            return EXIT_USAGE;
        }
    }
    uint8_t h[32];
    uint64_t size, n_files;
    bool is_manifest;
    struct sess s;
    ProtobufCBinaryData *pv = NULL;
    size_t n_parts = 0;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK && !s.key.has_pseudonym_secret) {
        util_err("the key %s is not a site key (no pseudonym secret); "
                 "register datasets with your site's key",
                 cli.key_path);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK)
        rc = read_participants(parts, s.key.pseudonym_secret, trial, &pv,
                               &n_parts);
    if (rc == EXIT_OK)
        rc = hash_input(pos[0], h, &size, &is_manifest, &n_files);
    if (rc == EXIT_OK) {
        Tc__DatasetRegister dr = TC__DATASET_REGISTER__INIT;
        dr.dataset_id = (char *)dataset;
        dr.trial_id = (char *)trial;
        dr.sha256 = util_bin(h, 32);
        dr.is_manifest = is_manifest;
        dr.size_bytes = size;
        dr.record_count = records;
        dr.anonymization = (char *)anon;
        dr.participants = pv;
        dr.n_participants = n_parts;
        Tc__Tx tx = TC__TX__INIT;
        tx.body_case = TC__TX__BODY_DATASET_REGISTER;
        tx.dataset_register = &dr;
        char hex[65], what[300];
        lg_hex(h, 32, hex);
        snprintf(what, sizeof(what),
                 "dataset %s registered for %s\n  sha256 %s%s\n  %llu "
                 "bytes, %llu file(s), %zu participants",
                 dataset, trial, hex, is_manifest ? " (manifest)" : "",
                 (unsigned long long)size, (unsigned long long)n_files,
                 n_parts);
        rc = sess_submit(&s, &tx, what, NULL);
    }
    if (pv) {
        free(pv[0].data);
        free(pv);
    }
    sess_close(&s);
    return rc;
}

static int dataset_verify(int argc, char **argv)
{
    const char *dataset = NULL, *trial = NULL;
    const struct opt opts[] = {
        {"dataset", 0, true, &dataset, NULL},
        {"trial", 0, true, &trial, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       dataset_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the FILE to verify", dataset_usage);
    if (!dataset)
        return util_missing("--dataset ID", dataset_usage);
    uint8_t h[32];
    uint64_t size, n_files;
    bool is_manifest;
    rc = hash_input(pos[0], h, &size, &is_manifest, &n_files);
    if (rc != EXIT_OK)
        return rc;
    struct sess s;
    struct dataset_rec rec;
    rc = sess_open(&s, false);
    if (rc == EXIT_OK)
        rc = find_dataset(&s, dataset, trial, &rec);
    sess_close(&s);
    if (rc != EXIT_OK)
        return rc;
    bool same = sodium_memcmp(h, rec.sha256, 32) == 0;
    char mine[65], theirs[65];
    lg_hex(h, 32, mine);
    lg_hex(rec.sha256, 32, theirs);
    if (cli.json)
        util_print_json(json_pack("{s:s, s:s, s:s, s:s, s:b}", "dataset",
                                  dataset, "trial", rec.trial, "sha256", mine,
                                  "registered_sha256", theirs, "match", same));
    else if (same)
        printf("OK: %s is dataset %s of trial %s (sha256 %s)\n", pos[0],
               dataset, rec.trial, mine);
    else
        printf("MISMATCH: %s is not the registered dataset %s\n  file       "
               "%s\n  registered %s\n",
               pos[0], dataset, mine, theirs);
    return same ? EXIT_OK : EXIT_FINDINGS;
}

/* ---- share / open -----------------------------------------------------------
 */

/* Encrypts in to out; *ct_hash gets SHA-256 of every byte written, *pt_hash
 * of every byte read. */
static int encrypt_file(const char *in_path, const char *out_path,
                        const uint8_t key[32], uint8_t ct_hash[32],
                        uint8_t pt_hash[32])
{
    FILE *in = fopen(in_path, "rb");
    if (!in) {
        util_err("cannot read %s: %s", in_path, strerror(errno));
        return EXIT_USAGE;
    }
    FILE *out = fopen(out_path, "wb");
    if (!out) {
        util_err("cannot write %s: %s", out_path, strerror(errno));
        fclose(in);
        return EXIT_USAGE;
    }
    unsigned char *pt = malloc(SHARE_CHUNK);
    unsigned char *ct =
        malloc(SHARE_CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES);
    int rc = pt && ct ? EXIT_OK : EXIT_USAGE;
    struct crypto_sha256_ctx ch, ph;
    crypto_sha256_init(&ch);
    crypto_sha256_init(&ph);
    crypto_secretstream_xchacha20poly1305_state st;
    unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_init_push(&st, header, key);
    if (rc == EXIT_OK && (fwrite(SHARE_MAGIC, 8, 1, out) != 1 ||
                          fwrite(header, sizeof(header), 1, out) != 1))
        rc = EXIT_USAGE;
    crypto_sha256_update(&ch, SHARE_MAGIC, 8);
    crypto_sha256_update(&ch, header, sizeof(header));
    /* bounded by the file's length: each round consumes a full chunk or
     * ends */
    while (rc == EXIT_OK) {
        size_t n = fread(pt, 1, SHARE_CHUNK, in);
        if (ferror(in)) {
            rc = EXIT_USAGE;
            break;
        }
        bool final = n < SHARE_CHUNK;
        unsigned long long clen;
        crypto_sha256_update(&ph, pt, n);
        crypto_secretstream_xchacha20poly1305_push(
            &st, ct, &clen, pt, n, NULL, 0,
            final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
        if (fwrite(ct, 1, (size_t)clen, out) != clen) {
            rc = EXIT_USAGE;
            break;
        }
        crypto_sha256_update(&ch, ct, (size_t)clen);
        if (final)
            break;
    }
    if (fclose(out) != 0)
        rc = EXIT_USAGE;
    fclose(in);
    if (pt)
        sodium_memzero(pt, SHARE_CHUNK);
    free(pt);
    free(ct);
    sodium_memzero(&st, sizeof(st));
    if (rc != EXIT_OK) {
        util_err("encrypting %s into %s failed (disk full?)", in_path,
                 out_path);
        unlink(out_path);
        return rc;
    }
    crypto_sha256_final(&ch, ct_hash);
    crypto_sha256_final(&ph, pt_hash);
    return EXIT_OK;
}

/* Decrypts in to out; refuses a wrong magic, a bad tag, a missing final
 * chunk and bytes after it. EXIT_FINDINGS for a tampered or truncated
 * file. */
static int decrypt_file(const char *in_path, const char *out_path,
                        const uint8_t key[32], uint8_t pt_hash[32])
{
    FILE *in = fopen(in_path, "rb");
    if (!in) {
        util_err("cannot read %s: %s", in_path, strerror(errno));
        return EXIT_USAGE;
    }
    FILE *out = fopen(out_path, "wb");
    if (!out) {
        util_err("cannot write %s: %s", out_path, strerror(errno));
        fclose(in);
        return EXIT_USAGE;
    }
    const size_t cchunk =
        SHARE_CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES;
    unsigned char *pt = malloc(SHARE_CHUNK);
    unsigned char *ct = malloc(cchunk + 1);
    unsigned char magic[8];
    unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_state st;
    const char *problem = NULL;
    struct crypto_sha256_ctx ph;
    crypto_sha256_init(&ph);
    if (!pt || !ct)
        problem = "out of memory";
    else if (fread(magic, 8, 1, in) != 1 || memcmp(magic, SHARE_MAGIC, 8))
        problem = "it is not a trialchain shared file";
    else if (fread(header, sizeof(header), 1, in) != 1 ||
             crypto_secretstream_xchacha20poly1305_init_pull(&st, header,
                                                             key) != 0)
        problem = "its header is damaged";
    bool done = false;
    while (!problem && !done) {
        size_t n = fread(ct, 1, cchunk, in);
        if (ferror(in)) {
            problem = "reading it failed";
            break;
        }
        unsigned long long plen;
        unsigned char tag;
        if (n < crypto_secretstream_xchacha20poly1305_ABYTES ||
            crypto_secretstream_xchacha20poly1305_pull(&st, pt, &plen, &tag, ct,
                                                       n, NULL, 0) != 0) {
            problem = n == 0 ? "it is truncated (no final chunk)"
                             : "it was altered or truncated (a chunk fails "
                               "authentication)";
            break;
        }
        bool final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
        if (final != (n < cchunk)) {
            problem = "it was truncated or altered (the final chunk is "
                      "misplaced)";
            break;
        }
        crypto_sha256_update(&ph, pt, (size_t)plen);
        if (fwrite(pt, 1, (size_t)plen, out) != plen) {
            problem = "writing the output failed (disk full?)";
            break;
        }
        if (final) {
            done = true;
            if (fgetc(in) != EOF)
                problem = "it has bytes after its final chunk";
        }
    }
    int closed = fclose(out);
    fclose(in);
    if (pt)
        sodium_memzero(pt, SHARE_CHUNK);
    free(pt);
    free(ct);
    sodium_memzero(&st, sizeof(st));
    if (!problem && closed != 0)
        problem = "writing the output failed (disk full?)";
    if (problem) {
        util_err("cannot decrypt %s: %s; ask the site to share it again",
                 in_path, problem);
        unlink(out_path);
        return EXIT_FINDINGS;
    }
    crypto_sha256_final(&ph, pt_hash);
    return EXIT_OK;
}

static int dataset_share(int argc, char **argv)
{
    const char *dataset = NULL, *to = NULL, *file = NULL, *out = NULL,
               *purpose = NULL, *expires = NULL, *trial = NULL;
    const struct opt opts[] = {
        {"dataset", 0, true, &dataset, NULL},
        {"to", 0, true, &to, NULL},
        {"file", 0, true, &file, NULL},
        {"output", 'o', true, &out, NULL},
        {"purpose", 0, true, &purpose, NULL},
        {"expires", 0, true, &expires, NULL},
        {"trial", 0, true, &trial, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       dataset_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!dataset)
        return util_missing("--dataset ID", dataset_usage);
    if (!to)
        return util_missing("--to MEMBER", dataset_usage);
    if (!file)
        return util_missing("--file FILE", dataset_usage);
    if (!out)
        return util_missing("-o OUT.enc", dataset_usage);
    if (!purpose)
        return util_missing("--purpose DUO", dataset_usage);
    if (!expires)
        return util_missing("--expires YYYY-MM-DD", dataset_usage);
    uint64_t expires_ms;
    if (!util_parse_date(expires, &expires_ms)) {
        util_err("--expires wants a date YYYY-MM-DD (or "
                 "YYYY-MM-DDTHH:MM:SSZ): %s",
                 expires);
        return EXIT_USAGE;
    }
    struct sess s;
    struct dataset_rec rec;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK)
        rc = sess_genesis(&s, NULL);
    const struct genesis_member *m = NULL;
    if (rc == EXIT_OK && !(m = genesis_member_by_name(s.g, to))) {
        util_err("%s is not a member of this consortium (see the genesis "
                 "members)",
                 to);
        rc = EXIT_USAGE;
    }
    uint8_t xpk[crypto_box_PUBLICKEYBYTES];
    if (rc == EXIT_OK &&
        crypto_sign_ed25519_pk_to_curve25519(xpk, m->public_key) != 0) {
        util_err("%s's public key cannot receive encrypted data", to);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK)
        rc = find_dataset(&s, dataset, trial, &rec);
    uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t ct_hash[32], pt_hash[32];
    uint8_t sealed[crypto_box_SEALBYTES + sizeof(key)];
    crypto_secretstream_xchacha20poly1305_keygen(key);
    if (rc == EXIT_OK)
        rc = encrypt_file(file, out, key, ct_hash, pt_hash);
    bool wrote = rc == EXIT_OK;
    if (rc == EXIT_OK && !rec.is_manifest &&
        sodium_memcmp(pt_hash, rec.sha256, 32) != 0) {
        util_err("%s is not the registered dataset %s (its SHA-256 "
                 "differs); share the registered file",
                 file, dataset);
        rc = EXIT_FINDINGS;
    }
    if (rc == EXIT_OK && crypto_box_seal(sealed, key, sizeof(key), xpk) != 0) {
        util_err("sealing the data key failed");
        rc = EXIT_USAGE;
    }
    sodium_memzero(key, sizeof(key));
    uint8_t grant_id[32];
    if (rc == EXIT_OK) {
        Tc__AccessGrant g = TC__ACCESS_GRANT__INIT;
        g.dataset_id = (char *)dataset;
        g.grantee = (char *)to;
        g.purpose = (char *)purpose;
        g.expires_ms = expires_ms;
        g.sealed_key = util_bin(sealed, sizeof(sealed));
        g.ciphertext_sha256 = util_bin(ct_hash, 32);
        Tc__Tx tx = TC__TX__INIT;
        tx.body_case = TC__TX__BODY_ACCESS_GRANT;
        tx.access_grant = &g;
        char what[300];
        snprintf(what, sizeof(what),
                 "%s may use dataset %s for %s until %s; send %s and the "
                 "grant id (the tx below) to %s",
                 to, dataset, purpose, expires, out, to);
        rc = sess_submit(&s, &tx, what, grant_id);
    }
    if (rc != EXIT_OK && wrote)
        unlink(out); /* no grant, no shared file */
    sess_close(&s);
    return rc;
}

static int dataset_open(int argc, char **argv)
{
    const char *grant_s = NULL, *out = NULL, *trial = NULL;
    const struct opt opts[] = {
        {"grant", 0, true, &grant_s, NULL},
        {"output", 'o', true, &out, NULL},
        {"trial", 0, true, &trial, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       dataset_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the shared file OUT.enc", dataset_usage);
    if (!grant_s)
        return util_missing("--grant TXID", dataset_usage);
    if (!out)
        return util_missing("-o FILE", dataset_usage);
    if (access(pos[0], R_OK) != 0) {
        util_err("cannot read %s: %s", pos[0], strerror(errno));
        return EXIT_USAGE;
    }
    struct sess s;
    Tc__ClientReply *r = NULL;
    Tc__Tx *tx = NULL;
    Tc__TxResult *res = NULL;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK)
        rc = sess_receipt(&s, grant_s, &r);
    if (rc == EXIT_OK) {
        Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
        e.signed_tx = r->receipt->signed_tx;
        e.result = r->receipt->result;
        if (entry_decode(&e, &tx, &res) != 0 ||
            tx->body_case != TC__TX__BODY_ACCESS_GRANT) {
            util_err("transaction %.16s... is not an access grant", grant_s);
            rc = EXIT_USAGE;
        } else if (!res || res->status != TC__TX_STATUS__TX_ACCEPTED) {
            util_err("the grant %.16s... was rejected (%s): it gives no "
                     "access",
                     grant_s, res ? res->code : "no result");
            rc = EXIT_FINDINGS;
        } else if (strcmp(tx->access_grant->grantee, s.key.name) != 0) {
            util_err("the grant is for %s, not for %s (your key)",
                     tx->access_grant->grantee, s.key.name);
            rc = EXIT_USAGE;
        }
    }
    uint8_t ct_hash[32];
    uint64_t size;
    if (rc == EXIT_OK)
        rc = util_hash_file(pos[0], ct_hash, &size, NULL);
    if (rc == EXIT_OK &&
        (tx->access_grant->ciphertext_sha256.len != 32 ||
         sodium_memcmp(ct_hash, tx->access_grant->ciphertext_sha256.data, 32) !=
             0)) {
        util_err("%s is not the file shared under this grant (its SHA-256 "
                 "differs from the grant's): it was altered or is another "
                 "file",
                 pos[0]);
        rc = EXIT_FINDINGS;
    }
    uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t xpk[crypto_box_PUBLICKEYBYTES], xsk[crypto_box_SECRETKEYBYTES];
    if (rc == EXIT_OK) {
        const ProtobufCBinaryData *sk = &tx->access_grant->sealed_key;
        if (crypto_sign_ed25519_pk_to_curve25519(xpk, s.key.public_key) != 0 ||
            crypto_sign_ed25519_sk_to_curve25519(xsk, s.key.secret_key) != 0 ||
            sk->len != crypto_box_SEALBYTES + sizeof(key) ||
            crypto_box_seal_open(key, sk->data, sk->len, xpk, xsk) != 0) {
            util_err("the grant's data key does not open with your key %s",
                     cli.key_path);
            rc = EXIT_FINDINGS;
        }
        sodium_memzero(xsk, sizeof(xsk));
    }
    struct dataset_rec rec;
    if (rc == EXIT_OK)
        rc = find_dataset(&s, tx->access_grant->dataset_id, trial, &rec);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.part", out);
    uint8_t pt_hash[32];
    if (rc == EXIT_OK)
        rc = decrypt_file(pos[0], tmp, key, pt_hash);
    sodium_memzero(key, sizeof(key));
    bool have_tmp = rc == EXIT_OK;
    if (rc == EXIT_OK && !rec.is_manifest &&
        sodium_memcmp(pt_hash, rec.sha256, 32) != 0) {
        util_err("the decrypted file is not the registered dataset %s (its "
                 "SHA-256 differs from the ledger's); it was not kept",
                 tx->access_grant->dataset_id);
        rc = EXIT_FINDINGS;
    }
    if (rc == EXIT_OK) {
        Tc__AccessEvent ev = TC__ACCESS_EVENT__INIT;
        uint8_t gid[32];
        (void)util_unhex(grant_s, gid, 32);
        ev.grant_tx = util_bin(gid, 32);
        ev.file_sha256 = util_bin(pt_hash, 32);
        ev.purpose = tx->access_grant->purpose;
        Tc__Tx etx = TC__TX__INIT;
        etx.body_case = TC__TX__BODY_ACCESS_EVENT;
        etx.access_event = &ev;
        char what[400];
        snprintf(what, sizeof(what),
                 "opened dataset %s into %s (sha256 matches the ledger); "
                 "access recorded",
                 tx->access_grant->dataset_id, out);
        rc = sess_submit(&s, &etx, what, NULL);
    }
    if (rc == EXIT_OK && rename(tmp, out) != 0) {
        util_err("cannot move the result into %s: %s", out, strerror(errno));
        rc = EXIT_USAGE;
    }
    if (rc != EXIT_OK && have_tmp)
        unlink(tmp); /* access refused or unrecorded: keep nothing */
    if (tx)
        tc__tx__free_unpacked(tx, NULL);
    if (res)
        tc__tx_result__free_unpacked(res, NULL);
    client_reply_free(r);
    sess_close(&s);
    return rc;
}

int cmd_dataset(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(dataset_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[0], "register"))
        return dataset_register(argc - 1, argv + 1);
    if (!strcmp(argv[0], "verify"))
        return dataset_verify(argc - 1, argv + 1);
    if (!strcmp(argv[0], "share"))
        return dataset_share(argc - 1, argv + 1);
    if (!strcmp(argv[0], "open"))
        return dataset_open(argc - 1, argv + 1);
    util_err("unknown dataset command %s (register, verify, share, open)",
             argv[0]);
    return EXIT_USAGE;
}

int cmd_access(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(access_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[0], "revoke") != 0) {
        util_err("unknown access command %s (revoke)", argv[0]);
        return EXIT_USAGE;
    }
    const char *grant_s = NULL, *reason = "";
    const struct opt opts[] = {
        {"grant", 0, true, &grant_s, NULL},
        {"reason", 0, true, &reason, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc - 1, argv + 1, opts, N_OPTS(opts), pos, &n_pos, 0,
                       access_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!grant_s)
        return util_missing("--grant TXID", access_usage);
    uint8_t gid[32];
    if (!util_unhex(grant_s, gid, 32)) {
        util_err("a grant id is the grant's transaction id, 64 hex digits");
        return EXIT_USAGE;
    }
    Tc__AccessRevoke ar = TC__ACCESS_REVOKE__INIT;
    ar.grant_tx = util_bin(gid, 32);
    ar.reason = (char *)reason;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ACCESS_REVOKE;
    tx.access_revoke = &ar;
    struct sess s;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK) {
        char what[160];
        snprintf(what, sizeof(what), "grant %.16s... revoked", grant_s);
        rc = sess_submit(&s, &tx, what, NULL);
    }
    sess_close(&s);
    return rc;
}
