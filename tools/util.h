/*
 * util.h - helpers shared by the trialchain subcommands: messages for a
 * person, hex, reading files, streaming SHA-256 of files and directories
 * (with a progress bar on a terminal), times, JSON output, and the
 * session with a node (connect, key, chain id, sign and submit).
 */
#ifndef TOOLS_UTIL_H
#define TOOLS_UTIL_H

#include "api.pb-c.h"
#include "client.h"
#include "genesis.h"
#include "lg.h"
#include "tx.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest input file read whole (JSON records, key files, forms). */
#define UTIL_FILE_MAX (16u * 1024u * 1024u)

/* "trialchain: error: ..." on stderr, one line. */
void util_err(const char *fmt, ...) LG_PRINTF(1, 2);
/* "trialchain: ..." on stderr (progress, notes); silent with --json. */
void util_note(const char *fmt, ...) LG_PRINTF(1, 2);

/* Reads a whole file; on failure prints what was wrong and returns
 * EXIT_USAGE (the caller returns it). *out is malloc'd, NUL-terminated. */
int util_read_file(const char *path, unsigned char **out, size_t *len);

/* Lowercase hex of any length into a malloc'd string (caller frees). */
char *util_hex_alloc(const uint8_t *in, size_t n);
/* Parses hex of exactly n bytes; false on anything else. */
bool util_unhex(const char *hex, uint8_t *out, size_t n);

/* Progress bar on stderr, drawn only when stderr is a terminal and the
 * total is at least UTIL_PROGRESS_MIN bytes. */
#define UTIL_PROGRESS_MIN (64ull * 1024u * 1024u)
struct util_progress {
    bool enabled;
    uint64_t total, done;
    unsigned long long last_ms;
    const char *label;
};
void util_progress_start(struct util_progress *p, const char *label,
                         uint64_t total);
void util_progress_add(struct util_progress *p, uint64_t n);
void util_progress_end(struct util_progress *p);

/* SHA-256 of a file, streamed. *size gets its length. Prints the reason
 * and returns EXIT_USAGE when the file cannot be read. */
int util_hash_file(const char *path, uint8_t out[32], uint64_t *size,
                   struct util_progress *p);
/* For a directory: every regular file below it (symlinks not followed),
 * one line "<sha256 hex>  <relative path>\n" each, sorted by path; the
 * manifest's SHA-256 goes to out, total bytes to *size, files to *n_files.
 * *manifest (if not NULL) gets the manifest text (malloc'd). */
int util_hash_dir(const char *path, uint8_t out[32], uint64_t *size,
                  uint64_t *n_files, char **manifest);

/* "2026-11-21T20:19:10Z" (20 bytes + NUL) from milliseconds since 1970. */
void util_fmt_time(uint64_t ms, char out[32]);
/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" -> ms since 1970 (end of the day
 * for a bare date, so "--expires 2027-01-31" includes that day). */
bool util_parse_date(const char *s, uint64_t *ms);

/* Prints j (compact when not a terminal is irrelevant: always indented)
 * and a newline on stdout; steals the reference. */
void util_print_json(json_t *j);

/* Splits "a,b,c" into a malloc'd array of malloc'd strings (empty items
 * dropped). Free with util_free_list. */
char **util_split(const char *s, size_t *n);
void util_free_list(char **v, size_t n);

/* ---- options ------------------------------------------------------------
 * A subcommand's options: "--name VALUE", "--name=VALUE" or a flag
 * "--name"; "-o" is accepted as a short name where given. Positional
 * arguments are collected in order. "--help"/"-h" prints usage and gives
 * EXIT_OK through *help. */
struct opt {
    const char *name; /* "trial" for --trial */
    char shortname;   /* 'o' for -o, or 0 */
    bool has_arg;
    const char **value; /* for options with an argument */
    bool *flag;         /* for flags */
};
#define OPT_POS_MAX 8
/* Returns EXIT_OK, or EXIT_USAGE after printing what was wrong and usage.
 * *help is set (and usage printed on stdout) for --help. */
int util_opts(int argc, char **argv, const struct opt *opts, size_t n_opts,
              const char **pos, size_t *n_pos, size_t pos_max,
              const char *usage, bool *help);
/* Prints "missing --NAME" and the usage; EXIT_USAGE. */
int util_missing(const char *what, const char *usage);

/* ---- a session with a node ---------------------------------------------
 * Every function returns a process exit code (EXIT_*) and has already told
 * the person what went wrong and what to do when it is not EXIT_OK. */
struct sess {
    struct client *c;
    uint8_t chain_id[32]; /* the node's */
    uint64_t height;
    bool have_key;
    struct keyfile key;
    struct genesis *g; /* fetched on demand (sess_genesis) */
};

/* Connects to cli.node_url and asks its status (chain id). With need_key,
 * loads cli.key_path and refuses a key made for another consortium. */
int sess_open(struct sess *s, bool need_key);
void sess_close(struct sess *s);

/* One request; a reply with a non-OK code is reported (NOT_FOUND with
 * not_found_what, e.g. "unknown trial NCT..."), and gives EXIT_USAGE, or
 * EXIT_UNREACHABLE for BUSY/NOT_READY/TIMEOUT. On EXIT_OK the caller owns
 * *reply (client_reply_free). */
int sess_call(struct sess *s, const Tc__ClientRequest *req,
              Tc__ClientReply **reply, const char *not_found_what);

/* The consortium's genesis from the node, checked against the chain id
 * (its SHA-256) — or from a file when path is not NULL. */
int sess_genesis(struct sess *s, const char *path);

/* Fills the envelope of tx (chain id, signer, nonce, client time), signs,
 * submits and waits for commit, checks the receipt offline against the
 * genesis, and prints the result: EXIT_OK when accepted, EXIT_FINDINGS
 * when rejected (code and reason shown). what names the act ("protocol
 * NCT01 registered"). tx_id_out (may be NULL) gets the tx id. */
int sess_submit(struct sess *s, Tc__Tx *tx, const char *what,
                uint8_t tx_id_out[32]);

/* A submission the node refused because of who signed it (reply
 * BAD_REQUEST with error "member-suspended: ...", "member-removed: ...",
 * "key-rotated: ..." or "unknown-signer: ..."): prints it as a rejection
 * with its reason code (JSON with --json) and returns true; the caller
 * exits EXIT_FINDINGS. False for any other reply. */
bool util_print_refusal(const Tc__ClientReply *r, const uint8_t tx_id[32]);

/* Nonce choice: max(the signer's last nonce on the ledger + 1, the current
 * time in microseconds). Time alone keeps nonces increasing across runs on
 * one machine; the ledger's last nonce covers a clock that went back or a
 * second machine using the same key a moment earlier. */
int sess_next_nonce(struct sess *s, uint64_t *nonce);

/* A transaction's receipt (GetTx) by its hex id; (*reply)->receipt is
 * set on EXIT_OK. */
int sess_receipt(struct sess *s, const char *id_hex, Tc__ClientReply **reply);

/* All entries of a trial (every page), in ledger order. */
struct trial_entries {
    Tc__TrialSummary *summary; /* points into the first reply */
    Tc__LedgerEntry **v;       /* point into replies */
    size_t n;
    Tc__ClientReply **replies;
    size_t n_replies;
};
int sess_trial(struct sess *s, const char *trial_id, struct trial_entries *out);
void trial_entries_free(struct trial_entries *e);

/* Decodes an entry's SignedTx body and TxResult (caller frees both with
 * tc__tx__free_unpacked / tc__tx_result__free_unpacked). */
int entry_decode(const Tc__LedgerEntry *e, Tc__Tx **tx, Tc__TxResult **res);

/* The trial's current outcome list: the last accepted ProtocolAmend, else
 * the ProtocolRegister. *version gets its number, version_tx its tx id.
 * Pointers borrow from *txs (free with util_free_txs). */
struct decoded_txs {
    Tc__Tx **tx;
    Tc__TxResult **res;
    size_t n;
};
int decode_entries(const struct trial_entries *e, struct decoded_txs *out);
void util_free_txs(struct decoded_txs *d);

/* Any protobuf-c message as JSON (bytes as hex, enums by name, nested
 * messages up to a small depth). New reference. */
json_t *util_msg_json(const ProtobufCMessage *m);
/* The body of a tx as a JSON object, plus its kind ("protocol_register"). */
const char *util_tx_kind(const Tc__Tx *tx);
/* One line a person reads: "registered protocol NCT0123 (12 outcomes)". */
void util_tx_describe(const Tc__Tx *tx, char *out, size_t out_len);
/* Member name for a signer key from the genesis (or hex prefix). */
const char *util_member_name(const struct genesis *g, const uint8_t *pk,
                             size_t pk_len, char buf[24]);

/* The trial's current protocol among decoded entries: the last accepted
 * ProtocolRegister or ProtocolAmend. Sets *version (0: none), version_tx
 * (its tx id) and the outcome list (borrowed from d). */
void util_current_protocol(const struct trial_entries *e,
                           const struct decoded_txs *d, uint32_t *version,
                           uint8_t version_tx[32], Tc__Outcome ***outcomes,
                           size_t *n_outcomes);

/* Bytes helpers for protobuf fields. */
static inline ProtobufCBinaryData util_bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

#endif /* TOOLS_UTIL_H */
