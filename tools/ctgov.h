/*
 * ctgov.h - protocols and results from files: ClinicalTrials.gov API v2
 * study records (single-study shape or the {"studies": [...]} list) and
 * trialchain's own JSON format.
 *
 * Our protocol JSON:
 *   { "trial_id": "TC-2026-001", "brief_title": "...", "official_title": "...",
 *     "sponsor_name": "Acme Pharma", "phase": "PHASE2",
 *     "study_type": "INTERVENTIONAL", "enrollment": 120,
 *     "start_date": "2027-01", "start_date_actual": false,
 *     "primary_completion_date": "2028-06-30",
 *     "primary_completion_actual": false,
 *     "outcomes": [ { "id": "P1", "type": "primary", "measure": "...",
 *                     "time_frame": "Week 12", "description": "..." } ] }
 * ("id" is optional: P1.., S1.., O1.. in file order by type.) An amendment
 * file needs only "outcomes".
 *
 * Our results JSON:
 *   { "actual_primary_completion_date": "2028-05-30",
 *     "outcomes": [ { "type": "primary", "measure": "...",
 *                     "time_frame": "Week 12" } ],
 *     "datasets_used": [ "ds-2028-01" ] }
 *
 * Only the fields named above are read. From a ClinicalTrials.gov record
 * nothing of contactsLocationsModule, overall officials, responsible
 * parties or any other personal data is copied: only identification,
 * status dates, lead sponsor name, design and outcomes.
 *
 * Every function here is pure (no I/O): the caller reads the file.
 */
#ifndef TOOLS_CTGOV_H
#define TOOLS_CTGOV_H

#include "tx.pb-c.h"

#include <stdbool.h>
#include <stddef.h>

/* Text bounds applied on import (longer text is cut at a UTF-8 boundary). */
#define CTGOV_TITLE_MAX 1000
#define CTGOV_TEXT_MAX  2000

enum record_format {
    RECORD_UNKNOWN = 0,
    RECORD_OURS,     /* trialchain JSON */
    RECORD_CTGOV_V2, /* ClinicalTrials.gov API v2 */
    RECORD_CTGOV_V1, /* retired classic API v1: refused */
};

/* Detects the format of parsed JSON. */
enum record_format ctgov_detect(const void *json_root);

/* Imports a protocol registration from exact file bytes. force_ctgov
 * refuses anything but an API v2 record. On success *out is a heap
 * message whose every field is heap-owned (free with ctgov_protocol_free);
 * source_record_hash is SHA-256 of the bytes. On failure returns -1 and
 * writes a sentence saying what was wrong and what to do into err. */
int ctgov_import_protocol(const unsigned char *bytes, size_t len,
                          bool force_ctgov, Tc__ProtocolRegister **out,
                          char *err, size_t err_len);
void ctgov_protocol_free(Tc__ProtocolRegister *p); /* accepts NULL */

/* The outcome list of a file (our JSON "outcomes" or a record's
 * outcomesModule), for amendments. *out is a heap array of heap messages
 * (free with ctgov_outcomes_free). */
int ctgov_import_outcomes(const unsigned char *bytes, size_t len,
                          Tc__Outcome ***out, size_t *n, char *err,
                          size_t err_len);
void ctgov_outcomes_free(Tc__Outcome **v, size_t n);

/* Imports results: a record's resultsSection.outcomeMeasuresModule and
 * its actual primary completion date, or our results JSON. Each reported
 * outcome is matched to registered[] by normalized measure and time frame
 * (ctgov_normalize); an unmatched one is marked not pre-specified.
 * results_doc_hash is SHA-256 of the bytes. Free with ctgov_results_free. */
int ctgov_import_results(const unsigned char *bytes, size_t len,
                         bool force_ctgov, Tc__Outcome *const *registered,
                         size_t n_registered, Tc__ResultsRegister **out,
                         char *err, size_t err_len);
void ctgov_results_free(Tc__ResultsRegister *r); /* accepts NULL */

/* Lowercase ASCII letters, collapse every run of whitespace and
 * punctuation into one space, trim. out gets at most out_len-1 bytes. */
void ctgov_normalize(const char *in, char *out, size_t out_len);

/* "primary"/"PRIMARY"/"OTHER_PRE_SPECIFIED"/... -> OutcomeType. */
Tc__OutcomeType ctgov_outcome_type(const char *s);
const char *ctgov_outcome_type_name(Tc__OutcomeType t);

#endif /* TOOLS_CTGOV_H */
