/*
 * web_int.h - what web.c, web_trial.c and web_chain.c share: a bounded
 * output buffer with HTML/CSV escaping, the page frame, and a trial's
 * entries decoded once.
 */
#ifndef WEB_INT_H
#define WEB_INT_H

#include "govern.h"
#include "ledger.pb-c.h"
#include "tx.pb-c.h"
#include "verify.h"
#include "web.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing output buffer bounded by WEB_BODY_MAX. After an allocation
 * failure or the bound, appends are dropped and `failed` is set; the page
 * is then replaced by an error page. */
struct wbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

void wb_put(struct wbuf *b, const char *s, size_t n);
void wb_puts(struct wbuf *b, const char *s);
void wb_printf(struct wbuf *b, const char *fmt, ...) LG_PRINTF(2, 3);
/* Text escaped for HTML content and attribute values (& < > " '). Bytes
 * below 0x20 other than tab and newline become U+FFFD. NULL prints "". */
void wb_esc(struct wbuf *b, const char *s);
void wb_esc_n(struct wbuf *b, const char *s, size_t n);
/* One CSV field, quoted (RFC 4180) when it holds , " CR or LF. */
void wb_csv(struct wbuf *b, const char *s);
void wb_hex(struct wbuf *b, const uint8_t *p, size_t n);
/* A link to /tx/<hex> showing the first 16 hex digits. */
void wb_tx_link(struct wbuf *b, const uint8_t *id, size_t n);
/* A block time as "2027-01-15 08:00:00 UTC" (or "-" for 0). */
void wb_time(struct wbuf *b, uint64_t ms);
void web_fmt_time(uint64_t ms, char out[32]);

/* A member name with its organisation from the genesis: "site-a (North
 * Hospital)", or the bare name when the genesis does not know it. */
void wb_member(struct wbuf *b, const struct genesis *g, const char *name);

/* The member that holds or held key pk: registry state (members added or
 * rotated by governance), else the genesis. False when neither knows it. */
bool web_member_by_key(const struct web_ctx *ctx, const uint8_t pk[32],
                       struct gov_member *out);

/* The epoch (replica set and its chain id) that certifies block `height`
 * (ledger_replica_set_at), malloc'd: free() it. NULL with why set when it
 * cannot be read. */
struct verify_epoch *web_epoch_at(const struct web_ctx *ctx, uint64_t height,
                                  char *why, size_t why_len);
/* verify_block with the certificate checked against the replica set in
 * force at the block's height (not only the genesis set). */
bool web_verify_block(const struct web_ctx *ctx, const uint8_t *bytes,
                      size_t len, const Tc__Certificate *cert,
                      const uint8_t prev[32], uint64_t height,
                      struct verify_block_info *info, char *why,
                      size_t why_len);

/* Page frame: <!doctype html> ... <main>; web_page_end closes it. */
void web_page_begin(struct wbuf *b, const struct web_ctx *ctx,
                    const char *title);
void web_page_end(struct wbuf *b);

/* Sets out from b (moves b's memory), or an error page when b failed. */
int web_finish(struct wbuf *b, uint16_t status, const char *type,
               struct web_page *out);
/* A small HTML page with a title and one sentence. */
int web_error_page(const struct web_ctx *ctx, uint16_t status,
                   const char *title, const char *sentence,
                   struct web_page *out);

/* One ledger entry of a trial, decoded. tx / res are NULL when the stored
 * bytes do not decode (shown as such, never trusted). */
struct web_entry {
    Tc__LedgerEntry le; /* ledger_entry_clear */
    Tc__Tx *tx;
    Tc__TxResult *res;
    uint8_t id[32];
};

struct web_trial {
    char id[REGISTRY_ID_MAX + 1];
    Tc__TrialSummary sum; /* registry_trial_summary_clear */
    bool has_sum;
    struct web_entry *e;
    size_t n;
    uint64_t total; /* entries the registry has (n may be less) */
};

/* Loads the summary and up to WEB_TRIAL_ENTRIES_MAX entries. LG_ENOTFOUND
 * for a trial never registered; LG_EIO / LG_ENOMEM. web_trial_free also
 * after failure. */
int web_trial_load(const struct web_ctx *ctx, const char *id,
                   struct web_trial *t) LG_MUST_CHECK;
void web_trial_free(struct web_trial *t);

/* Runs the audit hook over t at the last certified block. *have is false
 * (and nothing to free) without a hook or when the trial is too large; else
 * free r with ctx->audit_free. */
int web_trial_audit(const struct web_ctx *ctx, const struct web_trial *t,
                    struct audit_report *r, bool *have) LG_MUST_CHECK;

/* Names for the tx body ("protocol-register", ...) and its status. */
const char *web_tx_type(const Tc__Tx *tx);
const char *web_tx_status(const Tc__TxResult *res);
const char *web_severity(enum audit_severity s);

/* The pages (path already split and checked). */
int web_page_status(const struct web_ctx *ctx, const char *query,
                    struct web_page *out);
int web_page_trial(const struct web_ctx *ctx, const char *id,
                   struct web_page *out);
int web_page_trial_csv(const struct web_ctx *ctx, const char *id,
                       struct web_page *out);
int web_page_trial_json(const struct web_ctx *ctx, const char *id,
                        struct web_page *out);
int web_page_block(const struct web_ctx *ctx, uint64_t height,
                   struct web_page *out);
int web_page_tx(const struct web_ctx *ctx, const uint8_t id[32],
                struct web_page *out);

#endif /* WEB_INT_H */
