/*
 * cmd_trial.c - trial show | history | list.
 */
#include "cmd.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const char trial_usage[] =
    "usage: trialchain trial show T [--json]\n"
    "       trialchain trial history T [--json]\n"
    "       trialchain trial list [--json]\n"
    "show: the trial's state (sponsor, protocol version and status, sites,\n"
    "  consents per site, datasets, grants, results) and its timeline.\n"
    "history: everything that happened to the trial in ledger order, with\n"
    "  block times and who did it; refused attempts are marked REJECTED "
    "with\n"
    "  the reason, since the attempt itself is evidence.\n"
    "list: every registered trial.\n";

static json_t *entry_json(const struct sess *s, const Tc__LedgerEntry *e,
                          const Tc__Tx *tx, const Tc__TxResult *res)
{
    char when[32], line[600], who[24], id[65] = "";
    util_fmt_time(e->time_ms, when);
    util_tx_describe(tx, line, sizeof(line));
    if (e->tx_id.len == 32)
        lg_hex(e->tx_id.data, 32, id);
    const char *signer =
        *e->signer_name
            ? e->signer_name
            : util_member_name(s->g, tx->signer.data, tx->signer.len, who);
    bool ok = res && res->status == TC__TX_STATUS__TX_ACCEPTED;
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
                     "s:o}",
                     "time", when, "height", (json_int_t)e->height, "log_index",
                     (json_int_t)e->log_index, "tx_id", id, "signer", signer,
                     "kind", util_tx_kind(tx), "summary", line, "status",
                     ok ? "accepted" : "rejected", "code", res ? res->code : "",
                     "message", res ? res->message : "", "body",
                     util_msg_json(&tx->base));
}

static void print_timeline(const struct sess *s, const struct trial_entries *e,
                           const struct decoded_txs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        char when[32], line[600], who[24];
        const Tc__Tx *tx = d->tx[i];
        const Tc__TxResult *res = d->res[i];
        util_fmt_time(e->v[i]->time_ms, when);
        util_tx_describe(tx, line, sizeof(line));
        const char *signer =
            *e->v[i]->signer_name
                ? e->v[i]->signer_name
                : util_member_name(s->g, tx->signer.data, tx->signer.len, who);
        bool ok = res && res->status == TC__TX_STATUS__TX_ACCEPTED;
        printf("%.10s %.8s  #%-5llu %-12s %s%s\n", when, when + 11,
               (unsigned long long)e->v[i]->height, signer,
               ok ? "" : "REJECTED attempt: ", line);
        if (!ok)
            printf("%37s reason: %s%s%s\n", "", res ? res->code : "unknown",
                   res && *res->message ? " - " : "", res ? res->message : "");
    }
}

static void print_summary(const Tc__TrialSummary *t)
{
    printf("trial %s\n", t->trial_id);
    if (*t->brief_title)
        printf("  title        %s\n", t->brief_title);
    printf("  sponsor      %s\n  status       %s (protocol version %u)\n",
           t->sponsor, t->status, t->latest_version);
    printf("  registered   block %llu",
           (unsigned long long)t->registered_height);
    if (t->first_consent_height)
        printf(", first consent block %llu",
               (unsigned long long)t->first_consent_height);
    printf("\n  sites        ");
    for (size_t i = 0; i < t->n_sites; i++)
        printf("%s%s", i ? ", " : "", t->sites[i]);
    printf("%s\n", t->n_sites ? "" : "(none authorized)");
    for (size_t i = 0; i < t->n_consents; i++)
        printf("  consents     %s: %u active, %u partly withdrawn, %u "
               "withdrawn\n",
               t->consents[i]->site, t->consents[i]->active,
               t->consents[i]->partial, t->consents[i]->withdrawn);
    printf("  datasets     %u, grants %u, accesses %u\n  results      %s\n"
           "  rejected     %u attempts\n",
           t->n_datasets, t->n_grants, t->n_access_events,
           t->has_results ? "registered" : "not yet", t->n_rejected);
}

static int trial_show(int argc, char **argv, bool history)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 1, trial_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the trial id T", trial_usage);
    struct sess s;
    struct trial_entries e = {0};
    struct decoded_txs d = {0};
    rc = sess_open(&s, false);
    if (rc == EXIT_OK)
        rc = sess_trial(&s, pos[0], &e);
    if (rc == EXIT_OK)
        rc = decode_entries(&e, &d);
    if (rc == EXIT_OK && e.n == 0 && !e.summary) {
        util_err("unknown trial %s (list them with `trialchain trial list`)",
                 pos[0]);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK) {
        (void)sess_genesis(&s, NULL);
        if (cli.json) {
            json_t *arr = json_array();
            for (size_t i = 0; i < d.n; i++)
                json_array_append_new(
                    arr, entry_json(&s, e.v[i], d.tx[i], d.res[i]));
            json_t *j = json_object();
            if (!history && e.summary)
                json_object_set_new(j, "summary",
                                    util_msg_json(&e.summary->base));
            json_object_set_new(j, "trial_id", json_string(pos[0]));
            json_object_set_new(j, history ? "history" : "timeline", arr);
            util_print_json(j);
        } else {
            if (!history && e.summary) {
                print_summary(e.summary);
                printf("\ntimeline\n");
            } else {
                printf("history of %s (%zu entries, block times in UTC)\n",
                       pos[0], d.n);
            }
            print_timeline(&s, &e, &d);
        }
    }
    util_free_txs(&d);
    trial_entries_free(&e);
    sess_close(&s);
    return rc;
}

static int trial_list(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 0, trial_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    struct sess s;
    rc = sess_open(&s, false);
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__ListTrials lt = TC__LIST_TRIALS__INIT;
    Tc__Page page = TC__PAGE__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_LIST_TRIALS;
    req.list_trials = &lt;
    lt.page = &page;
    json_t *arr = json_array();
    size_t count = 0;
    for (int round = 0; rc == EXIT_OK && round < 10000; round++) {
        Tc__ClientReply *r = NULL;
        rc = sess_call(&s, &req, &r, "no trials");
        if (rc != EXIT_OK)
            break;
        if (!r->trials) {
            client_reply_free(r);
            break;
        }
        for (size_t i = 0; i < r->trials->n_trials; i++) {
            const Tc__TrialSummary *t = r->trials->trials[i];
            count++;
            if (cli.json)
                json_array_append_new(arr, util_msg_json(&t->base));
            else
                printf("%-16s %-11s v%-3u %-12s %.60s\n", t->trial_id,
                       t->status, t->latest_version, t->sponsor,
                       t->brief_title);
        }
        bool more = r->trials->more && r->trials->n_trials > 0;
        page.offset += (uint32_t)r->trials->n_trials;
        client_reply_free(r);
        if (!more)
            break;
    }
    if (rc == EXIT_OK && cli.json)
        util_print_json(arr);
    else
        json_decref(arr);
    if (rc == EXIT_OK && !cli.json && count == 0)
        printf("no trials registered yet\n");
    sess_close(&s);
    return rc;
}

int cmd_trial(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(trial_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[0], "show"))
        return trial_show(argc - 1, argv + 1, false);
    if (!strcmp(argv[0], "history"))
        return trial_show(argc - 1, argv + 1, true);
    if (!strcmp(argv[0], "list"))
        return trial_list(argc - 1, argv + 1);
    util_err("unknown trial command %s (show, history, list)", argv[0]);
    return EXIT_USAGE;
}
