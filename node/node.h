/*
 * node.h - the replica daemon: one event-loop thread owns the consensus
 * core, the ledger and the registry; peer links, the client API and the
 * HTTP listener run on NNG threads and hand their input to the loop through
 * one bounded queue.
 *
 * For every ready from the core, in this order (pbft.h's driver contract):
 * persist the records in one synced write (group commit), send the
 * messages, apply each committed batch to the ledger (one synced write per
 * block) and feed its block hash back, store each certificate and answer
 * the clients waiting on it, answer retransmissions from the ledger, start
 * state transfer when asked, then pbft_advance.
 */
#ifndef NODE_H
#define NODE_H

#include "config.h"
#include "lg.h"

#include <stdbool.h>
#include <stddef.h>

struct node;

/* Loads key, genesis and data, opens the links and listeners. Refuses, with
 * a sentence in err, on a key that is not this replica's, a data directory
 * of another chain or corrupt data (naming --repair), an address in use.
 * cfg must outlive the node. */
int node_open(const struct node_config *cfg, struct node **out, char *err,
              size_t err_len) LG_MUST_CHECK;

/* Runs the loop on the calling thread until node_stop (then returns 0) or
 * a fatal storage error (returns its code). */
int node_run(struct node *n);

/* Asks the loop to stop after the current write; safe from any thread. */
void node_stop(struct node *n);
/* After node_run returned: true when node_stop asked it to (a signal), false
 * when it stopped on its own (governance removed this replica, or an
 * error). */
bool node_stop_requested(struct node *n);
/* True when governance removed this replica from the set. */
bool node_was_removed(struct node *n);

/* Closes sockets, the ledger and LevelDB. Accepts NULL. */
void node_close(struct node *n);

#endif /* NODE_H */
