/*
 * cmd_results.c - results register.
 */
#include "cmd.h"
#include "ctgov.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const char results_usage[] =
    "usage: trialchain results register FILE --trial T [--ctgov] "
    "[--dry-run]\n"
    "The sponsor registers results. FILE is a ClinicalTrials.gov API v2 "
    "record\n"
    "with a resultsSection (its outcome measures with type and time frame, "
    "and\n"
    "the actual primary completion date) or our JSON:\n"
    "  {\"actual_primary_completion_date\": \"2028-05-30\",\n"
    "   \"outcomes\": [{\"type\": \"primary\", \"measure\": \"...\",\n"
    "                  \"time_frame\": \"Week 12\"}],\n"
    "   \"datasets_used\": [\"ds-2028-01\"]}\n"
    "Each reported outcome is matched to the trial's registered outcomes by\n"
    "measure and time frame (case, spacing and punctuation ignored). One that\n"
    "matches none must be declared: ClinicalTrials.gov type POST_HOC, or\n"
    "\"not_prespecified\": true in our JSON. An undeclared one is refused in\n"
    "our JSON; from a ClinicalTrials.gov record it is recorded as the record\n"
    "states it, unlinked, and the audit flags it as an undeclared change.\n"
    "The SHA-256 of FILE is recorded as the results document.\n";

int cmd_results(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(results_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[0], "register") != 0) {
        util_err("unknown results command %s (register)", argv[0]);
        return EXIT_USAGE;
    }
    const char *trial = NULL;
    bool ctgov = false, dry = false;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"ctgov", 0, false, NULL, &ctgov},
        {"dry-run", 0, false, NULL, &dry},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc - 1, argv + 1, opts, N_OPTS(opts), pos, &n_pos, 1,
                       results_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the results FILE", results_usage);
    if (!trial)
        return util_missing("--trial T", results_usage);
    unsigned char *bytes;
    size_t len;
    rc = util_read_file(pos[0], &bytes, &len);
    if (rc != EXIT_OK)
        return rc;
    struct sess s = {0};
    struct trial_entries e = {0};
    struct decoded_txs d = {0};
    uint32_t version = 0;
    uint8_t vtx[32];
    Tc__Outcome **registered = NULL;
    size_t n_registered = 0;
    if (!dry) {
        rc = sess_open(&s, true);
        if (rc == EXIT_OK)
            rc = sess_trial(&s, trial, &e);
        if (rc == EXIT_OK)
            rc = decode_entries(&e, &d);
        if (rc == EXIT_OK)
            util_current_protocol(&e, &d, &version, vtx, &registered,
                                  &n_registered);
        if (rc == EXIT_OK && version == 0) {
            util_err("trial %s has no accepted protocol; results are "
                     "matched against its registered outcomes",
                     trial);
            rc = EXIT_USAGE;
        }
    }
    Tc__ResultsRegister *r = NULL;
    char err[512] = "";
    if (rc == EXIT_OK &&
        ctgov_import_results(bytes, len, ctgov, registered, n_registered, &r,
                             err, sizeof(err)) != 0) {
        util_err("%s: %s", pos[0], err);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK) {
        free(r->trial_id);
        r->trial_id = strdup(trial);
        if (!r->trial_id) {
            util_err("out of memory");
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK) {
        size_t unmatched = 0, unlinked = 0;
        bool imported = r->source != NULL && !strcmp(r->source, "ctgov");
        for (size_t i = 0; i < r->n_outcomes; i++) {
            const Tc__ReportedOutcome *o = r->outcomes[i];
            unmatched += o->not_prespecified;
            if (o->not_prespecified && !dry)
                util_note("not pre-specified: %s [%s] (%s)", o->measure,
                          ctgov_outcome_type_name(o->type), o->time_frame);
            if (o->not_prespecified || o->outcome_id[0] != '\0')
                continue;
            unlinked++;
            if (imported)
                util_note("matches no registered outcome, recorded as "
                          "reported (the audit will flag it): %s [%s] (%s)",
                          o->measure, ctgov_outcome_type_name(o->type),
                          o->time_frame);
            else
                util_err("outcome \"%s\" (%s) matches no registered "
                         "outcome: fix its measure or time frame, or mark it "
                         "\"not_prespecified\": true",
                         o->measure, o->time_frame);
        }
        if (unlinked > 0 && !imported)
            rc = EXIT_USAGE;
        if (rc == EXIT_OK && dry) {
            util_print_json(util_msg_json(&r->base));
        } else if (rc == EXIT_OK) {
            Tc__Tx tx = TC__TX__INIT;
            tx.body_case = TC__TX__BODY_RESULTS_REGISTER;
            tx.results_register = r;
            char what[200];
            snprintf(what, sizeof(what),
                     "results of %s registered (%zu outcomes, %zu matched "
                     "to protocol v%u, %zu not pre-specified, %zu unlinked)",
                     trial, r->n_outcomes, r->n_outcomes - unmatched - unlinked,
                     version, unmatched, unlinked);
            rc = sess_submit(&s, &tx, what, NULL);
        }
    }
    ctgov_results_free(r);
    util_free_txs(&d);
    trial_entries_free(&e);
    sess_close(&s);
    free(bytes);
    return rc;
}
