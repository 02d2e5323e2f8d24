/*
 * trialchain.c - the command sponsors, sites and ethics boards use: global
 * options and dispatch to the subcommands in tools/cmd_*.c.
 *
 * Global options may come anywhere on the line (before or after the
 * subcommand): --node URL (TRIALCHAIN_NODE), --key FILE (TRIALCHAIN_KEY),
 * --json, --timeout MS (TRIALCHAIN_TIMEOUT_MS).
 */
#include "cmd.h"
#include "crypto.h"
#include "util.h"

#include <nng/nng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_NODE "tcp://127.0.0.1:27001"

struct cli_globals cli = {DEFAULT_NODE, NULL, false, 15000};

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"keygen", cmd_keygen, "make a member key file"},
    {"testnet", cmd_testnet, "create a local test consortium"},
    {"status", cmd_status, "the node's chain id, height, view, peers"},
    {"block", cmd_block, "show block H"},
    {"tx", cmd_tx, "show a transaction and its result"},
    {"protocol", cmd_protocol, "register, amend or approve a trial protocol"},
    {"site", cmd_site, "authorize a site for a trial (sponsor)"},
    {"consent", cmd_consent, "record, withdraw or export consent (site)"},
    {"dataset", cmd_dataset,
     "register, verify, share or open a dataset by its hash"},
    {"access", cmd_access, "revoke a data-access grant"},
    {"results", cmd_results, "register a trial's results (sponsor)"},
    {"trial", cmd_trial, "show, list and read the history of trials"},
    {"proof", cmd_proof, "write a transaction's receipt for offline checks"},
    {"verify", cmd_verify,
     "check receipts, the whole ledger or raw Merkle proofs offline"},
    {"audit", cmd_audit, "the integrity report an ethics board runs"},
    {"governance", cmd_governance,
     "propose and approve member and replica changes; list them"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: trialchain [--node URL] [--key FILE] [--json] "
               "[--timeout MS] COMMAND [ARGS]\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nGlobal options (anywhere on the line):\n"
            "  --node URL     node API (default %s, or TRIALCHAIN_NODE)\n"
            "  --key FILE     your member key (or TRIALCHAIN_KEY)\n"
            "  --json         machine-readable output on stdout\n"
            "  --timeout MS   per-request timeout (default 15000)\n\n"
            "Exit codes: 0 ok, 1 rejected / failed verification / findings, "
            "2 usage or input error, 3 node unreachable.\n"
            "`trialchain COMMAND --help` describes each command.\n",
            DEFAULT_NODE);
}

/* Removes the global options from argv (they may appear anywhere). */
static int take_globals(int *argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (!strcmp(a, "--json")) {
            cli.json = true;
            continue;
        }
        /* "--node URL" or "--node=URL" */
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        bool is_timeout = name_len == 9 && !strncmp(a, "--timeout", 9);
        if (name_len == 6 && !strncmp(a, "--node", 6))
            target = &cli.node_url;
        else if (name_len == 5 && !strncmp(a, "--key", 5))
            target = &cli.key_path;
        if (target || is_timeout) {
            if (!eq && i + 1 >= *argc) {
                util_err("%s needs a value", a);
                return EXIT_USAGE;
            }
            const char *v = eq ? eq + 1 : argv[++i];
            if (target) {
                *target = v;
            } else {
                char *end;
                long ms = strtol(v, &end, 10);
                if (*end || ms <= 0 || ms > 3600000) {
                    util_err("--timeout wants milliseconds (1..3600000)");
                    return EXIT_USAGE;
                }
                cli.timeout_ms = (int)ms;
            }
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *env = getenv("TRIALCHAIN_NODE");
    if (env && *env)
        cli.node_url = env;
    env = getenv("TRIALCHAIN_KEY");
    if (env && *env)
        cli.key_path = env;
    env = getenv("TRIALCHAIN_TIMEOUT_MS");
    if (env && atoi(env) > 0)
        cli.timeout_ms = atoi(env);
    if (take_globals(&argc, argv) != EXIT_OK)
        return EXIT_USAGE;
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (crypto_setup() != 0) {
        util_err("libsodium could not start");
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].run(argc - 2, argv + 2);
            /* As the node does: NNG reaps the sockets a command closed
             * before exit, so nothing it frees late shows as a leak to a
             * checker (a client whose connection the node had dropped). */
            nng_fini();
            return rc;
        }
    }
    util_err("unknown command %s", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
