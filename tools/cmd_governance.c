/*
 * cmd_governance.c - governance propose | approve | list | show | members.
 *
 * Proposals and approvals are ordinary signed transactions; the registry
 * (node/registry_gov.c) decides them. After the commit this command asks
 * the node (QueryGovernance) where the proposal stands, so the person
 * learns whether the threshold is met and the change applied.
 */
#include "cmd.h"
#include "pbft.h"
#include "tx.h"
#include "util.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

/* Proposals fetched per page, and the most pages `list` reads. */
#define GOV_PAGE_LIMIT 100
#define GOV_PAGES_MAX  1000
/* The longest --expires-in: ten years. */
#define GOV_EXPIRES_IN_MAX_MS (10ull * 366 * 24 * 3600 * 1000)

static const char gov_usage[] =
    "usage: trialchain governance propose ID ACTION NAME [OPTIONS]\n"
    "       trialchain governance approve ID\n"
    "       trialchain governance list [--json]\n"
    "       trialchain governance show ID [--json]\n"
    "       trialchain governance members [--json]\n"
    "\n"
    "propose (a voting member, with its key): ID is yours to choose and "
    "unique.\n"
    "  ACTION NAME and what each needs:\n"
    "    member-add NAME --organisation ORG --role ROLE "
    "(--public-key HEX | --key-file FILE)\n"
    "    member-suspend NAME | member-reinstate NAME | member-remove NAME\n"
    "    member-rotate-key NAME (--public-key HEX | --key-file FILE)\n"
    "    replica-add NAME (--public-key HEX | --key-file FILE) --peer-url "
    "URL\n"
    "    replica-remove NAME\n"
    "    replica-move NAME [--public-key HEX | --key-file FILE] "
    "[--peer-url URL]\n"
    "  ROLE is sponsor, site, ethics_board or auditor. --key-file reads the\n"
    "  \"public_key\" of a key file (`trialchain keygen`, `trialchain "
    "testnet\n"
    "  replica-key`) or of `keygen --json` output; no secret is used.\n"
    "  --expires-in DURATION  lapses if not approved in time: 90s, 30m, 2h, "
    "7d\n"
    "                         (default 7 days after the proposal's block)\n"
    "  --reason TEXT          recorded with the proposal\n"
    "  The proposal counts as its proposer's organisation's approval; with "
    "a\n"
    "  threshold of 1 it is applied at once.\n"
    "approve: another voting member's approval; says whether the threshold "
    "is\n"
    "  now met and the change applied.\n"
    "list: every proposal, newest first, with its status, approvals (\"1/2\n"
    "  organisations\") and expiry.\n"
    "show: one proposal in full.\n"
    "members: the members in force now (status, voter) and the replica set\n"
    "  (slots, names, peer URLs; n, f and the quorum).\n"
    "A member change applies from the next transaction; a replica change "
    "from\n"
    "the block after the one that applies it. Exit: 0 accepted, 1 "
    "rejected\n"
    "(the reason code is shown), 2 usage, 3 node unreachable.\n";

struct gov_action_name {
    const char *name;
    Tc__GovAction action;
};

static const struct gov_action_name gov_actions[] = {
    {"member-add", TC__GOV_ACTION__GOV_MEMBER_ADD},
    {"member-suspend", TC__GOV_ACTION__GOV_MEMBER_SUSPEND},
    {"member-reinstate", TC__GOV_ACTION__GOV_MEMBER_REINSTATE},
    {"member-remove", TC__GOV_ACTION__GOV_MEMBER_REMOVE},
    {"member-rotate-key", TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY},
    {"replica-add", TC__GOV_ACTION__GOV_REPLICA_ADD},
    {"replica-remove", TC__GOV_ACTION__GOV_REPLICA_REMOVE},
    {"replica-move", TC__GOV_ACTION__GOV_REPLICA_MOVE},
};

static bool gov_action_parse(const char *s, Tc__GovAction *out)
{
    for (size_t i = 0; i < N_OPTS(gov_actions); i++) {
        if (!strcmp(gov_actions[i].name, s)) {
            *out = gov_actions[i].action;
            return true;
        }
    }
    return false;
}

/* "90s", "30m", "2h", "7d" or bare seconds -> milliseconds. */
static bool gov_parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t unit = 1000;
    if (*end == 's')
        end++;
    else if (*end == 'm' && (end++, true))
        unit = 60ull * 1000;
    else if (*end == 'h' && (end++, true))
        unit = 3600ull * 1000;
    else if (*end == 'd' && (end++, true))
        unit = 24ull * 3600 * 1000;
    if (*end || v == 0 || v > GOV_EXPIRES_IN_MAX_MS / unit)
        return false;
    *ms = (uint64_t)v * unit;
    return true;
}

/* The public key of --public-key HEX or of the "public_key" member of the
 * JSON object in --key-file FILE. EXIT_OK or EXIT_USAGE (reported). */
static int gov_public_key(const char *hex, const char *file, uint8_t pk[32])
{
    if (hex && file) {
        util_err("give --public-key or --key-file, not both");
        return EXIT_USAGE;
    }
    if (file) {
        unsigned char *text = NULL;
        size_t len = 0;
        int rc = util_read_file(file, &text, &len);
        if (rc != EXIT_OK)
            return rc;
        json_t *j = json_loadb((const char *)text, len, 0, NULL);
        free(text);
        const char *v = json_string_value(json_object_get(j, "public_key"));
        bool ok = v && util_unhex(v, pk, 32);
        json_decref(j);
        if (!ok) {
            util_err("%s holds no \"public_key\" of 64 hex digits (give a "
                     "key file from `trialchain keygen` or use "
                     "--public-key HEX)",
                     file);
            return EXIT_USAGE;
        }
        return EXIT_OK;
    }
    if (!util_unhex(hex, pk, 32)) {
        util_err("--public-key wants the 64 hex digits of an Ed25519 "
                 "public key");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---- the node's view ----------------------------------------------------- */

/* QueryGovernance for one proposal (id) or a page of all (id NULL). On
 * EXIT_OK the caller owns *reply and (*reply)->governance is set. */
static int gov_query(struct sess *s, const char *id, uint32_t offset,
                     Tc__ClientReply **reply)
{
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__QueryGovernance q = TC__QUERY_GOVERNANCE__INIT;
    Tc__Page page = TC__PAGE__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_GOVERNANCE;
    req.governance = &q;
    q.proposal_id = (char *)(id ? id : "");
    q.page = &page;
    page.offset = offset;
    page.limit = GOV_PAGE_LIMIT;
    char nf[200];
    snprintf(nf, sizeof(nf),
             "unknown proposal %s (list them with `trialchain governance "
             "list`)",
             id ? id : "");
    int rc = sess_call(s, &req, reply, nf);
    if (rc == EXIT_OK && !(*reply)->governance) {
        util_err("the node's reply to a governance query has no governance "
                 "state");
        client_reply_free(*reply);
        *reply = NULL;
        return EXIT_UNREACHABLE;
    }
    return rc;
}

static const Tc__GovProposal *gov_find(const Tc__GovernanceReply *g,
                                       const char *id)
{
    for (size_t i = 0; i < g->n_proposals; i++)
        if (g->proposals[i]->proposal_id &&
            !strcmp(g->proposals[i]->proposal_id, id))
            return g->proposals[i];
    return NULL;
}

/* "1/2 organisations (Acme Pharma)" */
static void gov_fmt_approvals(const Tc__GovProposal *p, char *out, size_t n)
{
    int w = snprintf(out, n, "%zu/%u organisation%s", p->n_organisations,
                     p->threshold, p->threshold == 1 ? "" : "s");
    for (size_t i = 0; i < p->n_organisations && w > 0 && (size_t)w < n; i++) {
        int k = snprintf(out + w, n - (size_t)w, "%s%s", i ? ", " : " (",
                         p->organisations[i]);
        if (k < 0)
            break;
        w += k;
    }
    if (p->n_organisations && w > 0 && (size_t)w + 1 < n)
        snprintf(out + w, n - (size_t)w, ")");
}

static json_t *gov_proposal_json(const Tc__GovProposal *p)
{
    json_t *j = util_msg_json(&p->base);
    char when[32];
    util_fmt_time(p->expires_ms, when);
    json_object_set_new(j, "expires", json_string(when));
    json_object_set_new(j, "applied",
                        json_boolean(!strcmp(p->status, "applied")));
    return j;
}

/* One sentence on where the proposal stands, indented under a tx result. */
static void gov_print_standing(const Tc__GovProposal *p)
{
    char ap[512], when[32];
    gov_fmt_approvals(p, ap, sizeof(ap));
    util_fmt_time(p->expires_ms, when);
    if (!strcmp(p->status, "applied"))
        printf("  proposal %s: threshold met, approved by %s; %s %s "
               "applied at block %llu\n",
               p->proposal_id, ap, p->action, p->name,
               (unsigned long long)p->applied_height);
    else if (!strcmp(p->status, "open"))
        printf("  proposal %s: open, approved by %s; not applied until the "
               "threshold is met; expires %s\n",
               p->proposal_id, ap, when);
    else
        printf("  proposal %s: %s (approved by %s)\n", p->proposal_id,
               p->status, ap);
}

/* ---- submitting ---------------------------------------------------------- */

/* Signs and submits tx, waiting for its commit. On EXIT_OK the caller owns
 * *reply, whose submit->receipt is set, and id holds the tx id. */
static int gov_submit(struct sess *s, Tc__Tx *tx, uint8_t id[32],
                      Tc__ClientReply **reply)
{
    *reply = NULL;
    int rc = sess_next_nonce(s, &tx->nonce);
    if (rc != EXIT_OK)
        return rc;
    tx->chain_id = util_bin(s->chain_id, 32);
    tx->signer = util_bin(s->key.public_key, 32);
    tx->client_time_ms = lg_now_ms();
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (tx_sign(tx, &s->key, &bytes, &len) != 0 || len > TX_BYTES_MAX) {
        util_err("cannot sign the proposal (at most %u bytes: shorten "
                 "--reason)",
                 TX_BYTES_MAX);
        free(bytes);
        return EXIT_USAGE;
    }
    tx_id(bytes, len, id);
    Tc__ClientReply *r = NULL;
    int rv = client_submit(s->c, bytes, len, true, &r);
    free(bytes);
    if (rv != 0) {
        util_err("cannot reach the node at %s (%s); check that it runs or "
                 "pass --node URL",
                 cli.node_url, client_error(s->c));
        return EXIT_UNREACHABLE;
    }
    if (util_print_refusal(r, id)) {
        client_reply_free(r);
        return EXIT_FINDINGS;
    }
    if (r->code != TC__REPLY_CODE__REPLY_OK || !r->submit) {
        util_err("the node did not take the transaction: %s%s%s",
                 client_code_text(r->code), *r->error ? ": " : "", r->error);
        rc = r->code == TC__REPLY_CODE__REPLY_TIMEOUT ||
                     r->code == TC__REPLY_CODE__REPLY_BUSY ||
                     r->code == TC__REPLY_CODE__REPLY_NOT_READY
                 ? EXIT_UNREACHABLE
                 : EXIT_USAGE;
        client_reply_free(r);
        return rc;
    }
    if (!r->submit->committed || !r->submit->receipt) {
        util_err("the transaction was not committed in time; it may still "
                 "be: check with `trialchain tx ID`");
        client_reply_free(r);
        return EXIT_UNREACHABLE;
    }
    *reply = r;
    return EXIT_OK;
}

struct gov_outcome {
    char id[65];
    Tc__TxResult *res; /* NULL when the result does not decode */
    uint64_t height;
    char when[32];
    bool verified;
    char why[256];
};

static void gov_outcome_read(struct sess *s, const uint8_t id[32],
                             const Tc__Receipt *rc, struct gov_outcome *o)
{
    memset(o, 0, sizeof(*o));
    lg_hex(id, 32, o->id);
    o->res = tc__tx_result__unpack(NULL, rc->result.len, rc->result.data);
    Tc__BlockHeader *h =
        tc__block_header__unpack(NULL, rc->header.len, rc->header.data);
    if (h) {
        o->height = h->height;
        util_fmt_time(h->timestamp_ms, o->when);
        tc__block_header__free_unpacked(h, NULL);
    }
    if (sess_genesis(s, NULL) == EXIT_OK)
        o->verified = verify_receipt(s->g, rc, NULL, o->why, sizeof(o->why));
    else
        snprintf(o->why, sizeof(o->why), "the genesis could not be fetched");
}

static bool gov_accepted(const struct gov_outcome *o)
{
    return o->res && o->res->status == TC__TX_STATUS__TX_ACCEPTED;
}

/* Prints the tx result and, when known, the proposal's standing after it
 * (p may be NULL). Returns the exit code. */
static int gov_report(const struct gov_outcome *o, const char *what,
                      const Tc__GovProposal *p)
{
    bool ok = gov_accepted(o);
    if (cli.json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:b}", "tx_id", o->id,
            "status", ok ? "accepted" : "rejected", "code",
            o->res ? o->res->code : "", "message",
            o->res ? o->res->message : "", "height", (json_int_t)o->height,
            "time", o->when, "receipt_verified", o->verified, "applied",
            p && !strcmp(p->status, "applied"));
        if (j && !o->verified)
            json_object_set_new(j, "receipt_problem", json_string(o->why));
        if (j)
            json_object_set_new(j, "proposal",
                                p ? gov_proposal_json(p) : json_null());
        util_print_json(j);
    } else if (ok) {
        printf("accepted: %s\n  tx %s\n  block %llu at %s\n", what, o->id,
               (unsigned long long)o->height, o->when);
        if (p)
            gov_print_standing(p);
    } else {
        printf("REJECTED (%s): %s\n  tx %s (kept on the ledger as evidence, "
               "block %llu)\n",
               o->res ? o->res->code : "?",
               o->res ? o->res->message : "no result", o->id,
               (unsigned long long)o->height);
    }
    if (!o->verified)
        util_err("the node's receipt for tx %s does not verify against the "
                 "genesis: %s; do not trust this node",
                 o->id, o->why);
    return ok && o->verified ? EXIT_OK : EXIT_FINDINGS;
}

/* Submits a governance tx and reports it with the proposal's standing. */
static int gov_send(Tc__Tx *tx, const char *proposal_id, const char *what)
{
    struct sess s;
    int rc = sess_open(&s, true);
    Tc__ClientReply *r = NULL, *q = NULL;
    uint8_t id[32];
    if (rc == EXIT_OK)
        rc = gov_submit(&s, tx, id, &r);
    if (rc == EXIT_OK) {
        struct gov_outcome o;
        gov_outcome_read(&s, id, r->submit->receipt, &o);
        const Tc__GovProposal *p = NULL;
        /* a rejected proposal may name another's id: show none then */
        if (gov_accepted(&o) && gov_query(&s, proposal_id, 0, &q) == EXIT_OK)
            p = gov_find(q->governance, proposal_id);
        rc = gov_report(&o, what, p);
        if (o.res)
            tc__tx_result__free_unpacked(o.res, NULL);
    }
    client_reply_free(q);
    client_reply_free(r);
    sess_close(&s);
    return rc;
}

/* ---- propose / approve --------------------------------------------------- */

struct gov_propose_opts {
    const char *org, *role, *pk_hex, *key_file, *peer_url, *expires_in, *reason;
};

/* Checks that ACTION got what it needs and nothing it cannot use, and
 * fills the proposal's fields from the options. */
static int gov_propose_fields(Tc__GovAction a, const struct gov_propose_opts *o,
                              Tc__GovernanceProposal *gp, uint8_t pk[32])
{
    bool add = a == TC__GOV_ACTION__GOV_MEMBER_ADD;
    bool key_needed = add || a == TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY ||
                      a == TC__GOV_ACTION__GOV_REPLICA_ADD;
    bool key_allowed = key_needed || a == TC__GOV_ACTION__GOV_REPLICA_MOVE;
    bool url_needed = a == TC__GOV_ACTION__GOV_REPLICA_ADD;
    bool url_allowed = url_needed || a == TC__GOV_ACTION__GOV_REPLICA_MOVE;
    bool has_key = o->pk_hex || o->key_file;
    if (add && (!o->org || !*o->org))
        return util_missing("--organisation ORG", gov_usage);
    if (add && !o->role)
        return util_missing("--role ROLE", gov_usage);
    if (key_needed && !has_key)
        return util_missing("--public-key HEX or --key-file FILE", gov_usage);
    if (url_needed && !o->peer_url)
        return util_missing("--peer-url URL", gov_usage);
    if ((!add && (o->org || o->role)) || (!key_allowed && has_key) ||
        (!url_allowed && o->peer_url)) {
        util_err("an option given does not apply to %s (see `trialchain "
                 "governance --help`)",
                 protobuf_c_enum_descriptor_get_value(
                     &tc__gov_action__descriptor, (int)a)
                     ->name);
        return EXIT_USAGE;
    }
    if (a == TC__GOV_ACTION__GOV_REPLICA_MOVE && !has_key && !o->peer_url)
        return util_missing("--public-key/--key-file or --peer-url (what "
                            "moves)",
                            gov_usage);
    enum member_role role;
    if (o->role && (role_parse(o->role, &role) != 0 || role == ROLE_NONE)) {
        util_err("unknown role %s: use sponsor, site, ethics_board or "
                 "auditor",
                 o->role);
        return EXIT_USAGE;
    }
    if (has_key) {
        int rc = gov_public_key(o->pk_hex, o->key_file, pk);
        if (rc != EXIT_OK)
            return rc;
        gp->public_key = util_bin(pk, 32);
    }
    if (o->expires_in) {
        uint64_t ms;
        if (!gov_parse_duration(o->expires_in, &ms)) {
            util_err("--expires-in wants a duration such as 90s, 30m, 2h or "
                     "7d (at most ten years)");
            return EXIT_USAGE;
        }
        gp->expires_ms = lg_now_ms() + ms;
    }
    gp->organisation = (char *)(o->org ? o->org : "");
    gp->role = (char *)(o->role ? o->role : "");
    gp->peer_url = (char *)(o->peer_url ? o->peer_url : "");
    gp->reason = (char *)(o->reason ? o->reason : "");
    return EXIT_OK;
}

static int gov_propose(int argc, char **argv)
{
    struct gov_propose_opts o = {0};
    const struct opt opts[] = {
        {"organisation", 0, true, &o.org, NULL},
        {"role", 0, true, &o.role, NULL},
        {"public-key", 0, true, &o.pk_hex, NULL},
        {"key-file", 0, true, &o.key_file, NULL},
        {"peer-url", 0, true, &o.peer_url, NULL},
        {"expires-in", 0, true, &o.expires_in, NULL},
        {"reason", 0, true, &o.reason, NULL},
    };
    const char *pos[3];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, opts, N_OPTS(opts), pos, &n_pos, 3,
                       gov_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos < 1 || !*pos[0])
        return util_missing("the proposal ID", gov_usage);
    if (n_pos < 2)
        return util_missing("the ACTION (member-add, replica-add, ...)",
                            gov_usage);
    Tc__GovAction action;
    if (!gov_action_parse(pos[1], &action)) {
        util_err("unknown governance action %s (member-add, member-suspend, "
                 "member-reinstate, member-remove, member-rotate-key, "
                 "replica-add, replica-remove, replica-move)",
                 pos[1]);
        return EXIT_USAGE;
    }
    if (n_pos < 3 || !*pos[2])
        return util_missing("the NAME of the member or replica", gov_usage);
    Tc__GovernanceProposal gp = TC__GOVERNANCE_PROPOSAL__INIT;
    uint8_t pk[32];
    rc = gov_propose_fields(action, &o, &gp, pk);
    if (rc != EXIT_OK)
        return rc;
    gp.proposal_id = (char *)pos[0];
    gp.action = action;
    gp.name = (char *)pos[2];
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_PROPOSAL;
    tx.governance_proposal = &gp;
    char what[300];
    snprintf(what, sizeof(what), "governance proposal %s: %s %s", pos[0],
             pos[1], pos[2]);
    return gov_send(&tx, pos[0], what);
}

static int gov_approve(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 1, gov_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos < 1 || !*pos[0])
        return util_missing("the proposal ID", gov_usage);
    Tc__GovernanceApproval ga = TC__GOVERNANCE_APPROVAL__INIT;
    ga.proposal_id = (char *)pos[0];
    Tc__Tx tx = TC__TX__INIT;
    tx.body_case = TC__TX__BODY_GOVERNANCE_APPROVAL;
    tx.governance_approval = &ga;
    char what[200];
    snprintf(what, sizeof(what), "approval of governance proposal %s", pos[0]);
    return gov_send(&tx, pos[0], what);
}

/* ---- list / show / members ----------------------------------------------- */

static void gov_print_proposal_row(const Tc__GovProposal *p)
{
    char ap[64], when[32];
    snprintf(ap, sizeof(ap), "%zu/%u organisations", p->n_organisations,
             p->threshold);
    util_fmt_time(p->expires_ms, when);
    printf("%-16s %-18s %-14s %-8s %-18s %s\n", p->proposal_id, p->action,
           p->name, p->status, ap, !strcmp(p->status, "open") ? when : "-");
}

static int gov_list(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 0, gov_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    struct sess s;
    rc = sess_open(&s, false);
    json_t *arr = json_array();
    uint32_t offset = 0;
    if (rc == EXIT_OK && !cli.json)
        printf("%-16s %-18s %-14s %-8s %-18s %s\n", "ID", "ACTION", "NAME",
               "STATUS", "APPROVALS", "EXPIRES");
    for (int page = 0; rc == EXIT_OK && page < GOV_PAGES_MAX; page++) {
        Tc__ClientReply *r = NULL;
        rc = gov_query(&s, NULL, offset, &r);
        if (rc != EXIT_OK)
            break;
        const Tc__GovernanceReply *g = r->governance;
        for (size_t i = 0; i < g->n_proposals; i++) {
            if (cli.json)
                json_array_append_new(arr, gov_proposal_json(g->proposals[i]));
            else
                gov_print_proposal_row(g->proposals[i]);
        }
        bool more = g->more && g->n_proposals > 0;
        offset += (uint32_t)g->n_proposals;
        if (!more && !cli.json && offset == 0)
            printf("(no proposals)\n");
        client_reply_free(r);
        if (!more)
            break;
    }
    if (rc == EXIT_OK && cli.json)
        util_print_json(json_pack("{s:o}", "proposals", json_incref(arr)));
    json_decref(arr);
    sess_close(&s);
    return rc;
}

static void gov_print_list(const char *label, char **v, size_t n)
{
    printf("  %-14s", label);
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", v[i]);
    printf("%s\n", n ? "" : "(none)");
}

static int gov_show(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 1, gov_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    if (n_pos < 1 || !*pos[0])
        return util_missing("the proposal ID", gov_usage);
    struct sess s;
    Tc__ClientReply *r = NULL;
    rc = sess_open(&s, false);
    if (rc == EXIT_OK)
        rc = gov_query(&s, pos[0], 0, &r);
    const Tc__GovProposal *p =
        rc == EXIT_OK ? gov_find(r->governance, pos[0]) : NULL;
    if (rc == EXIT_OK && !p) {
        util_err("unknown proposal %s (list them with `trialchain "
                 "governance list`)",
                 pos[0]);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK && cli.json) {
        util_print_json(gov_proposal_json(p));
    } else if (rc == EXIT_OK) {
        char pk[65] = "", tx[65] = "", ap[512], when[32];
        if (p->public_key.len == 32)
            lg_hex(p->public_key.data, 32, pk);
        if (p->tx_id.len == 32)
            lg_hex(p->tx_id.data, 32, tx);
        gov_fmt_approvals(p, ap, sizeof(ap));
        util_fmt_time(p->expires_ms, when);
        printf("proposal %s: %s %s\n", p->proposal_id, p->action, p->name);
        printf("  status        %s", p->status);
        if (p->applied_height)
            printf(" at block %llu", (unsigned long long)p->applied_height);
        printf("\n  approvals     %s\n", ap);
        gov_print_list("approved by", p->approvals, p->n_approvals);
        printf("  proposer      %s (block %llu, tx %s)\n", p->proposer,
               (unsigned long long)p->proposed_height, tx);
        printf("  expires       %s\n", when);
        if (*p->organisation)
            printf("  organisation  %s\n", p->organisation);
        if (*p->role)
            printf("  role          %s\n", p->role);
        if (*pk)
            printf("  public key    %s\n", pk);
        if (*p->peer_url)
            printf("  peer url      %s\n", p->peer_url);
        if (*p->reason)
            printf("  reason        %s\n", p->reason);
    }
    client_reply_free(r);
    sess_close(&s);
    return rc;
}

static json_t *gov_replicas_json(const Tc__GovernanceReply *g, uint32_t n)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              util_msg_json(&g->replicas->replicas[i]->base));
    json_t *members = json_array();
    for (size_t i = 0; i < g->n_members; i++)
        json_array_append_new(members, util_msg_json(&g->members[i]->base));
    return json_pack("{s:o, s:{s:o, s:I, s:i, s:i, s:i}, s:i}", "members",
                     members, "replicas", "set", arr, "since_height",
                     (json_int_t)g->replicas_since_height, "n", (int)n, "f",
                     (int)pbft_faults(n), "quorum",
                     (int)(n ? pbft_quorum(n) : 0), "threshold",
                     (int)g->threshold);
}

static void gov_print_members(const Tc__GovernanceReply *g, uint32_t n)
{
    printf("members (governance threshold %u organisations):\n", g->threshold);
    printf("  %-14s %-26s %-13s %-10s %-6s %-7s %s\n", "NAME", "ORGANISATION",
           "ROLE", "STATUS", "VOTER", "SINCE", "KEY");
    for (size_t i = 0; i < g->n_members; i++) {
        const Tc__GovMember *m = g->members[i];
        char pk[17] = "";
        if (m->public_key.len >= 8)
            lg_hex(m->public_key.data, 8, pk);
        char since[24] = "genesis";
        if (m->since_height)
            snprintf(since, sizeof(since), "%llu",
                     (unsigned long long)m->since_height);
        printf("  %-14s %-26s %-13s %-10s %-6s %-7s %s...\n", m->name,
               m->organisation, m->role, m->status, m->voter ? "yes" : "no",
               since, pk);
    }
    char since[48] = "the genesis set";
    if (g->replicas_since_height)
        snprintf(since, sizeof(since), "in force after block %llu",
                 (unsigned long long)g->replicas_since_height);
    printf("replica set (%s): n=%u f=%u quorum=%u\n", since, n, pbft_faults(n),
           n ? pbft_quorum(n) : 0);
    printf("  %-5s %-14s %-28s %s\n", "SLOT", "NAME", "PEER URL", "KEY");
    for (uint32_t i = 0; i < n; i++) {
        const Tc__ReplicaInfo *ri = g->replicas->replicas[i];
        char pk[17] = "";
        if (ri->public_key.len >= 8)
            lg_hex(ri->public_key.data, 8, pk);
        printf("  %-5u %-14s %-28s %s...\n", ri->slot, ri->name, ri->peer_url,
               pk);
    }
}

static int gov_members(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos;
    bool help;
    int rc = util_opts(argc, argv, NULL, 0, pos, &n_pos, 0, gov_usage, &help);
    if (rc != EXIT_OK || help)
        return rc;
    struct sess s;
    Tc__ClientReply *r = NULL;
    rc = sess_open(&s, false);
    if (rc == EXIT_OK)
        rc = gov_query(&s, NULL, 0, &r);
    if (rc == EXIT_OK) {
        const Tc__GovernanceReply *g = r->governance;
        uint32_t n = g->replicas ? (uint32_t)g->replicas->n_replicas : 0;
        if (cli.json)
            util_print_json(gov_replicas_json(g, n));
        else
            gov_print_members(g, n);
    }
    client_reply_free(r);
    sess_close(&s);
    return rc;
}

int cmd_governance(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(gov_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[0], "propose"))
        return gov_propose(argc - 1, argv + 1);
    if (!strcmp(argv[0], "approve"))
        return gov_approve(argc - 1, argv + 1);
    if (!strcmp(argv[0], "list"))
        return gov_list(argc - 1, argv + 1);
    if (!strcmp(argv[0], "show"))
        return gov_show(argc - 1, argv + 1);
    if (!strcmp(argv[0], "members"))
        return gov_members(argc - 1, argv + 1);
    util_err("unknown governance command %s (propose, approve, list, show, "
             "members)",
             argv[0]);
    return EXIT_USAGE;
}
