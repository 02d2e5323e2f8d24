/*
 * cmd_protocol.c - protocol register | amend | approve, site authorize.
 */
#include "cmd.h"
#include "ctgov.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const char protocol_usage[] =
    "usage: trialchain protocol register FILE [--ctgov] [--doc FILE] "
    "[--dry-run]\n"
    "       trialchain protocol amend --trial T --reason TEXT --outcomes FILE "
    "[--doc FILE]\n"
    "       trialchain protocol approve --trial T --version V "
    "[--suspend|--terminate]\n"
    "                                   [--note TEXT] [--doc FILE]\n"
    "\n"
    "register (sponsor): FILE is a ClinicalTrials.gov API v2 study record\n"
    "  (as https://clinicaltrials.gov/api/v2/studies/NCTxxxxxxxx returns it,\n"
    "  or the {\"studies\": [...]} list with one study), detected by its\n"
    "  protocolSection, or trialchain JSON:\n"
    "    {\"trial_id\": \"TC-2026-001\", \"brief_title\": \"...\",\n"
    "     \"official_title\": \"...\", \"sponsor_name\": \"...\",\n"
    "     \"phase\": \"PHASE2\", \"study_type\": \"INTERVENTIONAL\",\n"
    "     \"enrollment\": 120, \"start_date\": \"2027-01\",\n"
    "     \"start_date_actual\": false,\n"
    "     \"primary_completion_date\": \"2028-06-30\",\n"
    "     \"primary_completion_actual\": false,\n"
    "     \"outcomes\": [{\"type\": \"primary\", \"measure\": \"...\",\n"
    "                   \"time_frame\": \"Week 12\", \"description\": "
    "\"...\"}]}\n"
    "  Outcome ids are P1.., S1.., O1.. by type in file order. From a record\n"
    "  only the NCT id, titles, lead sponsor, phases, study type, enrolment,\n"
    "  dates and outcomes are taken: contact names, e-mails and phones never\n"
    "  leave this machine. The SHA-256 of the file's exact bytes is recorded.\n"
    "  --doc FILE records the protocol document's SHA-256. --ctgov insists\n"
    "  on a ClinicalTrials.gov record. --dry-run prints the transaction\n"
    "  body (JSON) without a node.\n"
    "amend (the registering sponsor): the next version with its full new\n"
    "  outcome list (FILE: our JSON with \"outcomes\", or a record); an\n"
    "  outcome with the same measure and time frame keeps its id.\n"
    "approve (ethics board): approves version V; --suspend or --terminate\n"
    "  instead suspends or terminates the trial at that version.\n";

/* Hashes an optional document into a heap 32-byte field. */
static int doc_hash(const char *path, ProtobufCBinaryData *out, uint8_t buf[32])
{
    if (!path)
        return EXIT_OK;
    uint64_t size;
    int rc = util_hash_file(path, buf, &size, NULL);
    if (rc == EXIT_OK)
        *out = util_bin(buf, 32);
    return rc;
}

static int protocol_register(int argc, char **argv)
{
    const char *doc = NULL;
    bool ctgov = false, dry = false;
    const struct opt opts[] = {
        {"doc", 0, true, &doc, NULL},
        {"ctgov", 0, false, NULL, &ctgov},
        {"dry-run", 0, false, NULL, &dry},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       protocol_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the protocol FILE", protocol_usage);
    unsigned char *bytes;
    size_t len;
    rc = util_read_file(pos[0], &bytes, &len);
    if (rc != EXIT_OK)
        return rc;
    Tc__ProtocolRegister *p = NULL;
    char err[512] = "";
    if (ctgov_import_protocol(bytes, len, ctgov, &p, err, sizeof(err)) != 0) {
        util_err("%s: %s", pos[0], err);
        free(bytes);
        return EXIT_USAGE;
    }
    free(bytes);
    uint8_t dh[32];
    rc = doc_hash(doc, &p->protocol_doc_hash, dh);
    if (rc != EXIT_OK) {
        p->protocol_doc_hash.data = NULL;
        ctgov_protocol_free(p);
        return rc;
    }
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = p;
    if (dry) {
        util_print_json(util_msg_json(&p->base));
    } else {
        struct sess s;
        rc = sess_open(&s, true);
        if (rc == EXIT_OK) {
            char what[160];
            snprintf(what, sizeof(what),
                     "protocol %s registered (version 1, %zu outcomes)",
                     p->trial_id, p->n_outcomes);
            rc = sess_submit(&s, &tx, what, NULL);
        }
        sess_close(&s);
    }
    /* the doc hash buffer is on the stack: detach before freeing */
    p->protocol_doc_hash.data = NULL;
    p->protocol_doc_hash.len = 0;
    ctgov_protocol_free(p);
    return rc;
}

static long outcome_number(const char *id, char prefix)
{
    if (id[0] != prefix)
        return 0;
    char *end;
    long n = strtol(id + 1, &end, 10);
    return *end ? 0 : n;
}

/* Keeps the id of an outcome whose measure and time frame are unchanged;
 * gives a new outcome the next free id of its type. */
static int keep_ids(Tc__Outcome **nv, size_t n, Tc__Outcome *const *old,
                    size_t n_old)
{
    static const char prefix[] = "?PSO";
    long next[4] = {0};
    for (size_t i = 0; i < n_old; i++)
        for (int t = 1; t < 4; t++) {
            long k = outcome_number(old[i]->id, prefix[t]);
            if (k > next[t])
                next[t] = k;
        }
    char a[CTGOV_TEXT_MAX + 1], b[CTGOV_TEXT_MAX + 1];
    char c[CTGOV_TEXT_MAX + 1], d[CTGOV_TEXT_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        ctgov_normalize(nv[i]->measure, a, sizeof(a));
        ctgov_normalize(nv[i]->time_frame, b, sizeof(b));
        const char *keep = NULL;
        for (size_t j = 0; j < n_old && !keep; j++) {
            ctgov_normalize(old[j]->measure, c, sizeof(c));
            ctgov_normalize(old[j]->time_frame, d, sizeof(d));
            if (!strcmp(a, c) && !strcmp(b, d))
                keep = old[j]->id;
        }
        char id[32];
        int t = nv[i]->type >= 1 && nv[i]->type <= 3 ? (int)nv[i]->type : 3;
        if (keep)
            snprintf(id, sizeof(id), "%s", keep);
        else
            snprintf(id, sizeof(id), "%c%ld", prefix[t], ++next[t]);
        char *s = strdup(id);
        if (!s)
            return -1;
        free(nv[i]->id);
        nv[i]->id = s;
    }
    return 0;
}

static int protocol_amend(int argc, char **argv)
{
    const char *trial = NULL, *reason = NULL, *file = NULL, *doc = NULL;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"reason", 0, true, &reason, NULL},
        {"outcomes", 0, true, &file, NULL},
        {"doc", 0, true, &doc, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 1,
                       protocol_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!file && n_pos == 1)
        file = pos[0];
    if (!trial)
        return util_missing("--trial T", protocol_usage);
    if (!reason)
        return util_missing("--reason TEXT", protocol_usage);
    if (!file)
        return util_missing("--outcomes FILE", protocol_usage);
    unsigned char *bytes;
    size_t len;
    rc = util_read_file(file, &bytes, &len);
    if (rc != EXIT_OK)
        return rc;
    Tc__Outcome **nv = NULL;
    size_t n = 0;
    char err[512] = "";
    int rv = ctgov_import_outcomes(bytes, len, &nv, &n, err, sizeof(err));
    free(bytes);
    if (rv != 0) {
        util_err("%s: %s", file, err);
        return EXIT_USAGE;
    }
    struct sess s;
    struct trial_entries e = {0};
    struct decoded_txs d = {0};
    rc = sess_open(&s, true);
    if (rc == EXIT_OK)
        rc = sess_trial(&s, trial, &e);
    if (rc == EXIT_OK)
        rc = decode_entries(&e, &d);
    uint32_t version = 0;
    uint8_t prev[32], dh[32];
    Tc__Outcome **old = NULL;
    size_t n_old = 0;
    if (rc == EXIT_OK) {
        util_current_protocol(&e, &d, &version, prev, &old, &n_old);
        if (version == 0) {
            util_err("trial %s has no accepted protocol to amend; register "
                     "it first with `trialchain protocol register`",
                     trial);
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK && keep_ids(nv, n, old, n_old) != 0) {
        util_err("out of memory");
        rc = EXIT_USAGE;
    }
    Tc__ProtocolAmend am = TC__PROTOCOL_AMEND__INIT;
    if (rc == EXIT_OK)
        rc = doc_hash(doc, &am.protocol_doc_hash, dh);
    if (rc == EXIT_OK) {
        am.trial_id = (char *)trial;
        am.version = version + 1;
        am.prev_version_hash = util_bin(prev, 32);
        am.reason = (char *)reason;
        am.outcomes = nv;
        am.n_outcomes = n;
        Tc__Tx tx = TC__TX__INIT;
        tx.body_case = TC__TX__BODY_PROTOCOL_AMEND;
        tx.protocol_amend = &am;
        char what[160];
        snprintf(what, sizeof(what), "protocol %s amended to version %u", trial,
                 am.version);
        rc = sess_submit(&s, &tx, what, NULL);
    }
    util_free_txs(&d);
    trial_entries_free(&e);
    sess_close(&s);
    ctgov_outcomes_free(nv, n);
    return rc;
}

static int protocol_approve(int argc, char **argv)
{
    const char *trial = NULL, *version_s = NULL, *note = "", *doc = NULL;
    bool suspend = false, terminate = false;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"version", 0, true, &version_s, NULL},
        {"note", 0, true, &note, NULL},
        {"doc", 0, true, &doc, NULL},
        {"suspend", 0, false, NULL, &suspend},
        {"terminate", 0, false, NULL, &terminate},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       protocol_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!trial)
        return util_missing("--trial T", protocol_usage);
    if (!version_s)
        return util_missing("--version V", protocol_usage);
    char *end;
    unsigned long v = strtoul(version_s, &end, 10);
    if (*end || v == 0 || v > UINT32_MAX) {
        util_err("--version wants a protocol version number from 1");
        return EXIT_USAGE;
    }
    if (suspend && terminate) {
        util_err("choose one of --suspend and --terminate");
        return EXIT_USAGE;
    }
    Tc__EthicsDecision ed = TC__ETHICS_DECISION__INIT;
    uint8_t dh[32];
    rc = doc_hash(doc, &ed.decision_doc_hash, dh);
    if (rc != EXIT_OK)
        return rc;
    ed.trial_id = (char *)trial;
    ed.version = (uint32_t)v;
    ed.note = (char *)note;
    ed.action = suspend     ? TC__ETHICS_ACTION__ETHICS_SUSPEND
                : terminate ? TC__ETHICS_ACTION__ETHICS_TERMINATE
                            : TC__ETHICS_ACTION__ETHICS_APPROVE;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_ETHICS;
    tx.ethics = &ed;
    struct sess s;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK) {
        char what[160];
        snprintf(what, sizeof(what), "protocol %s version %lu %s", trial, v,
                 suspend     ? "suspended"
                 : terminate ? "terminated"
                             : "approved");
        rc = sess_submit(&s, &tx, what, NULL);
    }
    sess_close(&s);
    return rc;
}

int cmd_protocol(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(protocol_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[0], "register"))
        return protocol_register(argc - 1, argv + 1);
    if (!strcmp(argv[0], "amend"))
        return protocol_amend(argc - 1, argv + 1);
    if (!strcmp(argv[0], "approve"))
        return protocol_approve(argc - 1, argv + 1);
    util_err("unknown protocol command %s (register, amend, approve)", argv[0]);
    return EXIT_USAGE;
}

static const char site_usage[] =
    "usage: trialchain site authorize --trial T --site NAME [--revoke]\n"
    "The trial's sponsor authorizes a site (a member name from the genesis)\n"
    "to record consent and register datasets for the trial; --revoke ends\n"
    "that authorization from its block on.\n";

int cmd_site(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(site_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[0], "authorize") != 0) {
        util_err("unknown site command %s (authorize)", argv[0]);
        return EXIT_USAGE;
    }
    const char *trial = NULL, *site = NULL;
    bool revoke = false;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"site", 0, true, &site, NULL},
        {"revoke", 0, false, NULL, &revoke},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc - 1, argv + 1, opts, N_OPTS(opts), pos, &n_pos, 0,
                       site_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!trial)
        return util_missing("--trial T", site_usage);
    if (!site)
        return util_missing("--site NAME", site_usage);
    Tc__SiteAuthorize sa = TC__SITE_AUTHORIZE__INIT;
    sa.trial_id = (char *)trial;
    sa.site = (char *)site;
    sa.revoke = revoke;
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_SITE_AUTHORIZE;
    tx.site_authorize = &sa;
    struct sess s;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK) {
        char what[200];
        snprintf(what, sizeof(what), "site %s %s for trial %s", site,
                 revoke ? "no longer authorized" : "authorized", trial);
        rc = sess_submit(&s, &tx, what, NULL);
    }
    sess_close(&s);
    return rc;
}
