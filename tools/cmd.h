/*
 * cmd.h - subcommands of the trialchain tool. Each takes the arguments after
 * its name and returns the process exit code:
 *   0 ok, 1 failed verification or audit findings, 2 usage or input error,
 *   3 node unreachable.
 * Global options (--node URL / TRIALCHAIN_NODE, --key FILE / TRIALCHAIN_KEY,
 * --json) are parsed by tools/trialchain.c into struct cli_globals.
 */
#ifndef CMD_H
#define CMD_H

#include <stdbool.h>

enum { EXIT_OK = 0, EXIT_FINDINGS = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct cli_globals {
    const char *node_url; /* default tcp://127.0.0.1:27001: node0 of a default
                             testnet */
    const char *key_path;
    bool json;
    int timeout_ms;
};

extern struct cli_globals cli;

int cmd_testnet(int argc, char **argv); /* tools/cmd_testnet.c */
int cmd_audit(int argc, char **argv);   /* tools/cmd_audit.c */
/* `trialchain verify document ...` (tools/cmd_audit.c): argv after
 * "document"; cmd_verify dispatches to it. */
int cmd_verify_document(int argc, char **argv);

/* tools/cmd_basic.c */
int cmd_keygen(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_block(int argc, char **argv);
int cmd_tx(int argc, char **argv);
/* tools/cmd_protocol.c */
int cmd_protocol(int argc, char **argv);
int cmd_site(int argc, char **argv);
/* tools/cmd_consent.c */
int cmd_consent(int argc, char **argv);
/* tools/cmd_dataset.c */
int cmd_dataset(int argc, char **argv);
int cmd_access(int argc, char **argv);
/* tools/cmd_results.c */
int cmd_results(int argc, char **argv);
/* tools/cmd_trial.c */
int cmd_trial(int argc, char **argv);
/* tools/cmd_governance.c */
int cmd_governance(int argc, char **argv);
/* tools/cmd_verify.c */
int cmd_proof(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif /* CMD_H */
