/*
 * audit.h - the trial integrity audit an ethics board runs (issue 6), as
 * pure functions over a trial's ledger entries: no I/O, no clock. The
 * caller (tools/cmd_audit.c) fetches, decodes and verifies the entries and
 * passes the ledger tip; the evaluation time is the tip's block time, so
 * the same ledger state always gives the same report.
 *
 * Check ids (stable, used by scripts and by attestations):
 *   outcome-switched, registered-late, approval-missing,
 *   consent-unapproved-version, data-without-consent, access-outside-consent,
 *   results-late, results-overdue, rejected-attempts, ledger-integrity,
 *   personal-data.
 */
#ifndef AUDIT_H
#define AUDIT_H

#include "genesis.h"
#include "lg.h"
#include "tx.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_EVIDENCE_MAX 16
#define AUDIT_SENTENCE_MAX 512
#define AUDIT_NOTE_MAX     64

/* How the caller's receipt check for one entry went. */
enum audit_proof {
    AUDIT_PROOF_UNCHECKED = 0, /* not checked (the report says so) */
    AUDIT_PROOF_OK,            /* receipt, certificate, proofs all verify */
    AUDIT_PROOF_FAILED,        /* something did not verify: see proof_error */
};

/* One transaction of the trial, in ledger order. All pointers are borrowed
 * for the duration of audit_trial. tx is NULL when the signed bytes did not
 * decode (reported under ledger-integrity). */
struct audit_entry {
    const Tc__Tx *tx;
    bool rejected;       /* TxResult status REJECTED */
    const char *code;    /* reason code when rejected, else "" or NULL */
    const char *message; /* the registry's sentence, may be NULL */
    uint64_t height;
    uint64_t time_ms; /* block time */
    uint64_t log_index;
    uint8_t tx_id[32];
    const char *signer_name; /* member name, may be NULL */
    enum member_role signer_role;
    enum audit_proof proof;
    const char *proof_error; /* when proof == AUDIT_PROOF_FAILED */
};

/* The ledger state the report is computed at. */
struct audit_tip {
    uint64_t height;
    uint64_t time_ms; /* block time of the tip: the evaluation time */
    uint64_t log_size;
    uint8_t log_root[32];
};

struct audit_input {
    const char *trial_id;
    const struct audit_entry *entries;
    size_t n_entries;
    struct audit_tip tip;
    /* NULL when the tip's certificate verified; else why it did not */
    const char *tip_error;
};

enum audit_severity {
    AUDIT_INFO = 0, /* a note: reported, not flagged */
    AUDIT_LOW,
    AUDIT_MEDIUM,
    AUDIT_HIGH,
};
const char *audit_severity_name(enum audit_severity s);

struct audit_evidence {
    uint8_t tx_id[32];
    uint64_t height;
    uint64_t log_index;        /* leaf in the global log: its inclusion proof */
    char note[AUDIT_NOTE_MAX]; /* e.g. a reason code, "protocol v1" */
    enum audit_proof proof;
};

struct audit_finding {
    const char *check; /* one of the ids above (static string) */
    enum audit_severity severity;
    char sentence[AUDIT_SENTENCE_MAX];
    const char *rule; /* the rule it rests on (static string) */
    size_t n_evidence;
    struct audit_evidence evidence[AUDIT_EVIDENCE_MAX];
    size_t n_evidence_omitted; /* beyond AUDIT_EVIDENCE_MAX */
};

/* Findings (severity > info) and notes (info) in the order the checks ran.
 * Owned by the report: audit_report_free. */
struct audit_report {
    char trial_id[128];
    char title[512];
    struct audit_tip tip;
    struct audit_finding *items;
    size_t n_items;
    size_t cap_items;
};

/* Runs every check over in->entries. On success *out holds the report
 * (caller frees with audit_report_free, also on failure). LG_ENOMEM or
 * LG_EINVAL (NULL arguments) otherwise. Entries may be in any state of
 * disrepair: bad input becomes findings, never a crash. */
int audit_trial(const struct audit_input *in,
                struct audit_report *out) LG_MUST_CHECK;
void audit_report_free(struct audit_report *r); /* accepts NULL */

/* Findings that count for the exit code (severity above info). */
size_t audit_report_n_findings(const struct audit_report *r);
/* True when some finding (or note, with notes) has this check id. */
bool audit_report_has(const struct audit_report *r, const char *check,
                      bool include_notes);

/* The report as a JSON object (new reference, NULL on ENOMEM); keys are
 * stable and documented in cmd_audit's --help. */
json_t *audit_report_json(const struct audit_report *r);

/* ---- helpers exposed for tests and the tool ----------------------------- */
/* Parses "YYYY", "YYYY-MM" or "YYYY-MM-DD" into the first and last day it
 * may mean (days since 1970-01-01). False on anything else. */
bool audit_date_range(const char *s, int64_t *first_day, int64_t *last_day);
/* The same day n months later (day clamped to the month's length). */
int64_t audit_add_months(int64_t day, int months);
/* Day number (days since 1970-01-01) as YYYY-MM-DD. */
void audit_day_str(int64_t day, char out[16]);
/* Lower-case ASCII letters and digits, other ASCII as single spaces,
 * trimmed; non-ASCII bytes kept. out gets at most out_len-1 bytes. */
void audit_normalize(const char *in, char *out, size_t out_len);
/* What in a text field looks like personal data: "e-mail", "phone",
 * "name" or NULL. */
const char *audit_personal_data_kind(const char *text);

#endif /* AUDIT_H */
