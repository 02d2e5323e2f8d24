/*
 * cmd_consent.c - consent record | withdraw | export --fhir.
 *
 * The participant's local id is turned into the trial pseudonym here
 * (tx_pseudonym, keyed by the site's secret in its key file) and never
 * leaves this process.
 */
#include "cmd.h"
#include "fhir.h"
#include "tx.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const char consent_usage[] =
    "usage: trialchain consent record   --trial T --participant LOCAL_ID\n"
    "                                   --scopes PARTICIPATION,GRU,... "
    "--version V --form FILE\n"
    "       trialchain consent withdraw --trial T --participant LOCAL_ID\n"
    "                                   [--scopes GRU,...] [--version V] "
    "[--form FILE]\n"
    "       trialchain consent export --fhir --trial T [-o FILE]\n"
    "\n"
    "record/withdraw (an authorized site, with its site key): LOCAL_ID is "
    "your own\n"
    "  id for the person; it never leaves this machine. The ledger gets only "
    "a\n"
    "  pseudonym, HMAC-SHA-256 of the trial and LOCAL_ID keyed with the "
    "site's\n"
    "  secret from its key file, so nobody without that key can link it to "
    "the\n"
    "  person. --scopes: PARTICIPATION plus GA4GH DUO codes (GRU, HMB, DS,\n"
    "  DS:MONDO:0005148, NPU, ...). --version is the approved protocol "
    "version\n"
    "  consented to; --form the signed consent form (its SHA-256 is "
    "recorded).\n"
    "  A withdrawal without --scopes withdraws everything, from its block "
    "on.\n"
    "export: every consent record of the trial as an HL7 FHIR R4 Bundle of\n"
    "  Consent resources (stdout, or -o FILE).\n";

static int consent_change(int argc, char **argv, bool withdraw)
{
    const char *trial = NULL, *local = NULL, *scopes_s = NULL,
               *version_s = NULL, *form = NULL;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"participant", 0, true, &local, NULL},
        {"scopes", 0, true, &scopes_s, NULL},
        {"version", 0, true, &version_s, NULL},
        {"form", 0, true, &form, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       consent_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!trial)
        return util_missing("--trial T", consent_usage);
    if (!local || !*local)
        return util_missing("--participant LOCAL_ID", consent_usage);
    if (!withdraw && !scopes_s)
        return util_missing("--scopes PARTICIPATION,...", consent_usage);
    if (!withdraw && !version_s)
        return util_missing("--version V", consent_usage);
    if (!withdraw && !form)
        return util_missing("--form FILE", consent_usage);
    unsigned long version = 0;
    if (version_s) {
        char *end;
        version = strtoul(version_s, &end, 10);
        if (*end || version == 0 || version > UINT32_MAX) {
            util_err("--version wants a protocol version number from 1");
            return EXIT_USAGE;
        }
    }
    uint8_t form_hash[32];
    if (form) {
        uint64_t size;
        rc = util_hash_file(form, form_hash, &size, NULL);
        if (rc != EXIT_OK)
            return rc;
    }
    size_t n_scopes = 0;
    char **scopes = scopes_s ? util_split(scopes_s, &n_scopes) : NULL;
    if (scopes_s && !scopes) {
        util_err("out of memory");
        return EXIT_USAGE;
    }
    struct sess s;
    rc = sess_open(&s, true);
    if (rc == EXIT_OK && !s.key.has_pseudonym_secret) {
        util_err("the key %s is not a site key (it holds no pseudonym "
                 "secret); record consent with your site's key",
                 cli.key_path);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK && version == 0) {
        /* a withdrawal names the latest version unless told otherwise */
        Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
        Tc__QueryTrial qt = TC__QUERY_TRIAL__INIT;
        Tc__Page page = TC__PAGE__INIT;
        req.req_case = TC__CLIENT_REQUEST__REQ_TRIAL;
        req.trial = &qt;
        qt.trial_id = (char *)trial;
        qt.page = &page;
        qt.summary_only = true;
        page.limit = 1;
        Tc__ClientReply *r = NULL;
        char nf[200];
        snprintf(nf, sizeof(nf),
                 "unknown trial %s (list them with `trialchain trial list`)",
                 trial);
        rc = sess_call(&s, &req, &r, nf);
        if (rc == EXIT_OK) {
            if (r->entries && r->entries->summary)
                version = r->entries->summary->latest_version;
            client_reply_free(r);
        }
        if (rc == EXIT_OK && version == 0) {
            util_err("trial %s has no protocol version; pass --version", trial);
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK) {
        uint8_t pseudonym[32];
        tx_pseudonym(s.key.pseudonym_secret, trial, local, pseudonym);
        Tc__Consent c = TC__CONSENT__INIT;
        c.trial_id = (char *)trial;
        c.pseudonym = util_bin(pseudonym, 32);
        c.protocol_version = (uint32_t)version;
        if (form)
            c.consent_form_hash = util_bin(form_hash, 32);
        c.action = withdraw ? TC__CONSENT_ACTION__CONSENT_WITHDRAW
                            : TC__CONSENT_ACTION__CONSENT_RECORD;
        c.scopes = scopes;
        c.n_scopes = n_scopes;
        Tc__Tx tx = TC__TX__INIT;
        tx.body_case = TC__TX__BODY_CONSENT;
        tx.consent = &c;
        char what[200], ph[65];
        lg_hex(pseudonym, 32, ph);
        snprintf(what, sizeof(what),
                 "consent %s for trial %s (participant pseudonym %.16s...)",
                 withdraw ? "withdrawn" : "recorded", trial, ph);
        rc = sess_submit(&s, &tx, what, NULL);
        sodium_memzero(pseudonym, sizeof(pseudonym));
    }
    sess_close(&s);
    util_free_list(scopes, n_scopes);
    return rc;
}

/* Whether a later accepted withdrawal of the same pseudonym withdrew
 * participation (no scopes, or PARTICIPATION among them). */
static bool superseded(const struct decoded_txs *d, size_t i)
{
    const Tc__Consent *c = d->tx[i]->consent;
    for (size_t j = i + 1; j < d->n; j++) {
        const Tc__Tx *t = d->tx[j];
        if (t->body_case != TC__TX__BODY_CONSENT || !d->res[j] ||
            d->res[j]->status != TC__TX_STATUS__TX_ACCEPTED)
            continue;
        const Tc__Consent *w = t->consent;
        if (w->pseudonym.len != c->pseudonym.len ||
            memcmp(w->pseudonym.data, c->pseudonym.data, c->pseudonym.len))
            continue;
        if (w->action == TC__CONSENT_ACTION__CONSENT_RECORD)
            return true; /* re-consent replaces this record */
        bool all = w->n_scopes == 0;
        for (size_t k = 0; k < w->n_scopes; k++)
            all |= !strcmp(w->scopes[k], "PARTICIPATION");
        if (all)
            return true;
    }
    return false;
}

static int consent_export(int argc, char **argv)
{
    const char *trial = NULL, *out = NULL;
    bool fhir = false;
    const struct opt opts[] = {
        {"trial", 0, true, &trial, NULL},
        {"output", 'o', true, &out, NULL},
        {"fhir", 0, false, NULL, &fhir},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 0,
                       consent_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (!fhir)
        return util_missing("--fhir (the only export format)", consent_usage);
    if (!trial)
        return util_missing("--trial T", consent_usage);
    struct sess s;
    struct trial_entries e = {0};
    struct decoded_txs d = {0};
    rc = sess_open(&s, false);
    if (rc == EXIT_OK)
        rc = sess_trial(&s, trial, &e);
    if (rc == EXIT_OK)
        rc = decode_entries(&e, &d);
    if (rc == EXIT_OK)
        (void)sess_genesis(&s, NULL);
    json_t *resources = json_array();
    for (size_t i = 0; rc == EXIT_OK && i < d.n; i++) {
        const Tc__Tx *tx = d.tx[i];
        if (tx->body_case != TC__TX__BODY_CONSENT || !d.res[i] ||
            d.res[i]->status != TC__TX_STATUS__TX_ACCEPTED ||
            tx->consent->pseudonym.len != 32)
            continue;
        char who[24];
        const char *site =
            e.v[i]->signer_name && *e.v[i]->signer_name
                ? e.v[i]->signer_name
                : util_member_name(s.g, tx->signer.data, tx->signer.len, who);
        uint8_t id[32];
        tx_id(e.v[i]->signed_tx.data, e.v[i]->signed_tx.len, id);
        struct fhir_consent_in in = {
            .trial_id = trial,
            .pseudonym = tx->consent->pseudonym.data,
            .protocol_version = tx->consent->protocol_version,
            .form_hash = tx->consent->consent_form_hash.len == 32
                             ? tx->consent->consent_form_hash.data
                             : NULL,
            .withdraw =
                tx->consent->action == TC__CONSENT_ACTION__CONSENT_WITHDRAW,
            .superseded =
                tx->consent->action == TC__CONSENT_ACTION__CONSENT_RECORD &&
                superseded(&d, i),
            .scopes = (const char *const *)tx->consent->scopes,
            .n_scopes = tx->consent->n_scopes,
            .time_ms = e.v[i]->time_ms,
            .site = site,
            .tx_id = id,
        };
        json_array_append_new(resources, fhir_consent(&in));
    }
    if (rc == EXIT_OK) {
        size_t n = json_array_size(resources);
        json_t *bundle = fhir_bundle(resources);
        resources = NULL;
        if (out) {
            char *text = json_dumps(bundle, JSON_INDENT(2));
            int wr = text ? lg_write_file(out, text, strlen(text), 0644) : -1;
            free(text);
            if (wr != 0) {
                util_err("cannot write %s (check the directory exists and "
                         "is writable)",
                         out);
                rc = EXIT_USAGE;
            } else {
                util_note("wrote %zu FHIR Consent resources to %s", n, out);
            }
            json_decref(bundle);
        } else {
            util_print_json(bundle);
        }
    }
    json_decref(resources);
    util_free_txs(&d);
    trial_entries_free(&e);
    sess_close(&s);
    return rc;
}

int cmd_consent(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(consent_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[0], "record"))
        return consent_change(argc - 1, argv + 1, false);
    if (!strcmp(argv[0], "withdraw"))
        return consent_change(argc - 1, argv + 1, true);
    if (!strcmp(argv[0], "export"))
        return consent_export(argc - 1, argv + 1);
    util_err("unknown consent command %s (record, withdraw, export)", argv[0]);
    return EXIT_USAGE;
}
