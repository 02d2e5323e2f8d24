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
    const char *node_url; /* default ipc or tcp://127.0.0.1:27100 */
    const char *key_path;
    bool json;
    int timeout_ms;
};

extern struct cli_globals cli;

int cmd_testnet(int argc, char **argv); /* tools/cmd_testnet.c */
int cmd_audit(int argc, char **argv);   /* tools/cmd_audit.c */

#endif /* CMD_H */
