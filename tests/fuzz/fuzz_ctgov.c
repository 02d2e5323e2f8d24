/*
 * fuzz_ctgov.c - the tool's file parsers (tools/ctgov.h): ClinicalTrials.gov
 * API v2 records, retired v1 records and our own protocol/results JSON.
 *
 * Input: one mode byte, then the file bytes. Mode bit 0: force_ctgov;
 * bits 1-2: 0 protocol, 1 outcomes (amendment), 2 results (matched against
 * the outcomes the same bytes give as a protocol, when they do), 3 all.
 *
 * Invariants: no crash or sanitizer report; every import either succeeds
 * with an object or fails with -1 and a sentence; an imported protocol's
 * text fields are within the import bounds; ctgov_normalize stays within
 * its output buffer and is idempotent on what it does not cut.
 */
#include "ctgov.h"
#include "lg.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (1u << 20)

static void check_text(const char *s, size_t max)
{
    if (s != NULL)
        LG_ASSERT(strlen(s) <= max);
}

static void protocol(const uint8_t *d, size_t n, bool force,
                     Tc__ProtocolRegister **keep)
{
    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    int rv = ctgov_import_protocol(d, n, force, &p, err, sizeof(err));
    if (rv != 0) {
        LG_ASSERT(rv == -1);
        LG_ASSERT(err[0] != '\0');
        LG_ASSERT(p == NULL);
        return;
    }
    LG_ASSERT(p != NULL);
    check_text(p->brief_title, CTGOV_TITLE_MAX);
    check_text(p->official_title, CTGOV_TITLE_MAX);
    for (size_t i = 0; i < p->n_outcomes; i++) {
        LG_ASSERT(p->outcomes[i] != NULL);
        check_text(p->outcomes[i]->measure, CTGOV_TEXT_MAX);
        check_text(p->outcomes[i]->description, CTGOV_TEXT_MAX);
        (void)ctgov_outcome_type_name(p->outcomes[i]->type);
    }
    LG_ASSERT(p->source_record_hash.len == 32);
    if (keep != NULL)
        *keep = p;
    else
        ctgov_protocol_free(p);
}

static void outcomes(const uint8_t *d, size_t n)
{
    Tc__Outcome **v = NULL;
    size_t k = 0;
    char err[512] = "";
    int rv = ctgov_import_outcomes(d, n, &v, &k, err, sizeof(err));
    if (rv != 0) {
        LG_ASSERT(err[0] != '\0');
        return;
    }
    for (size_t i = 0; i < k; i++)
        LG_ASSERT(v[i] != NULL);
    ctgov_outcomes_free(v, k);
}

static void results(const uint8_t *d, size_t n, bool force)
{
    Tc__ProtocolRegister *p = NULL;
    protocol(d, n, false, &p);
    Tc__ResultsRegister *r = NULL;
    char err[512] = "";
    int rv = ctgov_import_results(d, n, force, p ? p->outcomes : NULL,
                                  p ? p->n_outcomes : 0, &r, err, sizeof(err));
    if (rv != 0) {
        LG_ASSERT(err[0] != '\0');
        LG_ASSERT(r == NULL);
    } else {
        LG_ASSERT(r != NULL);
        LG_ASSERT(r->results_doc_hash.len == 32);
        ctgov_results_free(r);
    }
    ctgov_protocol_free(p);
}

static void normalize(const uint8_t *d, size_t n)
{
    char in[256], out[64], twice[64];
    size_t k = n < sizeof(in) - 1 ? n : sizeof(in) - 1;
    memcpy(in, d, k);
    in[k] = '\0';
    memset(out, 'x', sizeof(out));
    ctgov_normalize(in, out, sizeof(out));
    LG_ASSERT(memchr(out, '\0', sizeof(out)) != NULL);
    /* idempotent unless cut at the buffer's end (a cut may leave a
     * trailing space that a second pass trims) */
    ctgov_normalize(out, twice, sizeof(twice));
    if (strlen(out) < sizeof(out) - 2)
        LG_ASSERT(strcmp(out, twice) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    bool force = mode & 1;
    switch ((mode >> 1) & 3) {
    case 0:
        protocol(d, n, force, NULL);
        break;
    case 1:
        outcomes(d, n);
        break;
    case 2:
        results(d, n, force);
        break;
    default:
        protocol(d, n, force, NULL);
        outcomes(d, n);
        results(d, n, force);
        break;
    }
    normalize(d, n);
    return 0;
}
