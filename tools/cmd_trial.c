/*
 * cmd_trial.c - trial show | history | list.
 */
#include "cmd.h"
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

/* What `trial show` lists after the summary unless told otherwise: a
 * trial with 10,000 consents must not cost 10,000 entries to look at. */
#define SHOW_LAST_DEFAULT 20
#define SHOW_LAST_MAX     1000000u
/* Entries asked for per page; the node caps a page at this many. */
#define PAGE_ENTRIES 200u
/* Bounds every paging loop: a page holds at least one entry. */
#define PAGE_ROUNDS_MAX (1u << 22)

static const char trial_usage[] =
    "usage: trialchain trial show T [--last N | --all] [--json]\n"
    "       trialchain trial history T [--json]\n"
    "       trialchain trial list [--json]\n"
    "show: the trial's state (sponsor, protocol version and status, sites,\n"
    "  consents per site, datasets, grants, results) and the latest 20\n"
    "  entries of its timeline; --last N the latest N (0: the summary "
    "only),\n"
    "  --all every entry.\n"
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

static void print_entry(const struct sess *s, const Tc__LedgerEntry *e,
                        const Tc__Tx *tx, const Tc__TxResult *res)
{
    char when[32], line[600], who[24];
    util_fmt_time(e->time_ms, when);
    util_tx_describe(tx, line, sizeof(line));
    const char *signer =
        *e->signer_name
            ? e->signer_name
            : util_member_name(s->g, tx->signer.data, tx->signer.len, who);
    bool ok = res && res->status == TC__TX_STATUS__TX_ACCEPTED;
    printf("%.10s %.8s  #%-5llu %-12s %s%s\n", when, when + 11,
           (unsigned long long)e->height, signer,
           ok ? "" : "REJECTED attempt: ", line);
    if (!ok)
        printf("%37s reason: %s%s%s\n", "", res ? res->code : "unknown",
               res && *res->message ? " - " : "", res ? res->message : "");
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

/* Where the entries go: printed as they arrive, or (--json) collected. */
struct view {
    struct sess *s;
    json_t *arr; /* --json only */
};

/* Decodes one entry and prints it (or adds it to the JSON array). */
static int view_entry(struct view *v, const Tc__LedgerEntry *e)
{
    Tc__Tx *tx = NULL;
    Tc__TxResult *res = NULL;
    if (entry_decode(e, &tx, &res) != 0) {
        if (tx)
            tc__tx__free_unpacked(tx, NULL);
        util_err("the node sent a ledger entry that does not decode");
        return EXIT_FINDINGS;
    }
    int rc = EXIT_OK;
    if (v->arr) {
        if (json_array_append_new(v->arr, entry_json(v->s, e, tx, res)) != 0) {
            util_err("out of memory");
            rc = EXIT_USAGE;
        }
    } else {
        print_entry(v->s, e, tx, res);
    }
    tc__tx__free_unpacked(tx, NULL);
    if (res)
        tc__tx_result__free_unpacked(res, NULL);
    return rc;
}

/* One page of the trial's entries from offset; on EXIT_OK (*r)->entries is
 * set and the caller frees *r. */
static int query_page(struct sess *s, const char *trial, uint64_t offset,
                      uint32_t limit, Tc__ClientReply **r)
{
    if (offset > UINT32_MAX) {
        util_err("the trial has more entries than a query can page through");
        return EXIT_USAGE;
    }
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__QueryTrial qt = TC__QUERY_TRIAL__INIT;
    Tc__Page page = TC__PAGE__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_TRIAL;
    req.trial = &qt;
    qt.trial_id = (char *)trial;
    qt.page = &page;
    page.offset = (uint32_t)offset;
    page.limit = limit;
    char nf[256];
    snprintf(nf, sizeof(nf),
             "unknown trial %s (list the registered ones with `trialchain "
             "trial list`)",
             trial);
    int rc = sess_call(s, &req, r, nf);
    if (rc == EXIT_OK && !(*r)->entries) {
        client_reply_free(*r);
        *r = NULL;
        util_err("the node's reply to a trial query has no entries");
        rc = EXIT_UNREACHABLE;
    }
    return rc;
}

/* Shows the entries from offset on: count of them, or every one to the
 * end when to_end, fetched a page at a time. */
static int view_range(struct view *v, const char *trial, uint64_t offset,
                      uint64_t count, bool to_end)
{
    uint64_t done = 0;
    int rc = EXIT_OK;
    for (uint32_t round = 0; rc == EXIT_OK && round < PAGE_ROUNDS_MAX;
         round++) {
        if (!to_end && done >= count)
            break;
        uint64_t want = to_end ? PAGE_ENTRIES : count - done;
        Tc__ClientReply *r = NULL;
        rc =
            query_page(v->s, trial, offset + done,
                       want < PAGE_ENTRIES ? (uint32_t)want : PAGE_ENTRIES, &r);
        if (rc != EXIT_OK)
            break;
        const Tc__EntriesReply *er = r->entries;
        for (size_t i = 0;
             rc == EXIT_OK && i < er->n_entries && (to_end || done < count);
             i++, done++)
            rc = view_entry(v, er->entries[i]);
        bool more = er->more && er->n_entries > 0;
        client_reply_free(r);
        if (!more)
            break;
    }
    return rc;
}

static int parse_last(const char *s, uint64_t *last)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v > SHOW_LAST_MAX) {
        util_err("--last wants a number of entries from 0 to %u, not %s",
                 SHOW_LAST_MAX, s);
        return EXIT_USAGE;
    }
    *last = v;
    return EXIT_OK;
}

/* show: the summary and the latest `last` entries (every one with --all),
 * asking the node only for those pages; history: every entry. The first
 * page gives the summary and the entry count, from which the offset of
 * the latest entries follows. */
static int trial_show(int argc, char **argv, bool history)
{
    const char *last_s = NULL;
    bool all = false;
    const struct opt opts[] = {
        {"last", 0, true, &last_s, NULL},
        {"all", 0, false, NULL, &all},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, history ? 0 : N_OPTS(opts), pos,
                       &n_pos, 1, trial_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos != 1)
        return util_missing("the trial id T", trial_usage);
    if (all && last_s) {
        util_err("--last and --all exclude each other");
        return EXIT_USAGE;
    }
    uint64_t last = SHOW_LAST_DEFAULT;
    if (last_s && parse_last(last_s, &last) != EXIT_OK)
        return EXIT_USAGE;
    bool to_end = history || all;
    const char *trial = pos[0];

    struct sess s;
    struct view v = {.s = &s, .arr = NULL};
    Tc__ClientReply *r0 = NULL;
    rc = sess_open(&s, false);
    if (rc == EXIT_OK) {
        uint64_t first = to_end ? PAGE_ENTRIES : last;
        rc = query_page(&s, trial, 0,
                        first < PAGE_ENTRIES ? (uint32_t)(first ? first : 1)
                                             : PAGE_ENTRIES,
                        &r0);
    }
    const Tc__EntriesReply *er = r0 ? r0->entries : NULL;
    if (rc == EXIT_OK && !er) {
        util_err("the node's reply to a trial query has no entries");
        rc = EXIT_UNREACHABLE;
    }
    if (rc == EXIT_OK && er->n_entries == 0 && !er->summary) {
        util_err("unknown trial %s (list them with `trialchain trial list`)",
                 trial);
        rc = EXIT_USAGE;
    }
    if (rc != EXIT_OK) {
        if (r0)
            client_reply_free(r0);
        sess_close(&s);
        return rc;
    }
    (void)sess_genesis(&s, NULL);
    uint64_t total = er->total > er->n_entries ? er->total : er->n_entries;
    /* The range shown: [start, start + count), or from start to the end. */
    uint64_t start = to_end || total <= last ? 0 : total - last;
    uint64_t count = to_end ? total : (total < last ? total : last);
    const Tc__TrialSummary *sum = history ? NULL : er->summary;

    if (cli.json) {
        v.arr = json_array();
        if (!v.arr) {
            util_err("out of memory");
            client_reply_free(r0);
            sess_close(&s);
            return EXIT_USAGE;
        }
    } else if (sum) {
        print_summary(sum);
        if (count == total)
            printf("\ntimeline (%llu entries)\n", (unsigned long long)total);
        else if (count == 0)
            printf("\ntimeline: %llu entries (list them with --last N or "
                   "--all)\n",
                   (unsigned long long)total);
        else
            printf("\ntimeline: the latest %llu of %llu entries (every one: "
                   "--all)\n",
                   (unsigned long long)count, (unsigned long long)total);
    } else {
        printf("history of %s (%llu entries, block times in UTC)\n", trial,
               (unsigned long long)total);
    }
    /* The first page already holds the start of a range from 0. */
    uint64_t done = 0;
    if (start == 0) {
        for (size_t i = 0;
             rc == EXIT_OK && i < er->n_entries && (to_end || done < count);
             i++, done++)
            rc = view_entry(&v, er->entries[i]);
    }
    bool more = start > 0 || (er->more && er->n_entries > 0);
    if (rc == EXIT_OK && more && (to_end || done < count))
        rc = view_range(&v, trial, start + done, count - done, to_end);

    if (rc == EXIT_OK && cli.json) {
        json_t *j = json_object();
        if (sum)
            json_object_set_new(j, "summary", util_msg_json(&sum->base));
        json_object_set_new(j, "trial_id", json_string(trial));
        json_object_set_new(j, "total_entries",
                            json_integer((json_int_t)total));
        json_object_set_new(j, "first_entry", json_integer((json_int_t)start));
        json_object_set_new(j, history ? "history" : "timeline", v.arr);
        v.arr = NULL;
        util_print_json(j);
    }
    json_decref(v.arr);
    client_reply_free(r0);
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
