/*
 * node_gov.h - the client API's governance query (QueryGovernance), kept
 * out of node_client.c so the reply can be built and tested on a store
 * alone.
 */
#ifndef NODE_GOV_H
#define NODE_GOV_H

#include "api.pb-c.h"
#include "registry.h"
#include "store.h"

#include <stdint.h>

/* Proposals per page when the request names no limit, and the most. */
#define NODE_GOV_PAGE_DEFAULT 20
#define NODE_GOV_PAGE_MAX     50

/* Answers q from the committed store at time now_ms (proposals past their
 * expiry show "expired"). reply must be initialised (TC__CLIENT_REPLY__INIT);
 * on success reply->governance is set (REPLY_OK), otherwise reply->code and
 * reply->error say why. Release with node_gov_query_clear. */
void node_gov_query(struct registry *reg, struct store *s, uint64_t now_ms,
                    const Tc__QueryGovernance *q, Tc__ClientReply *reply);
/* Frees what node_gov_query allocated; reply stays initialised. */
void node_gov_query_clear(Tc__ClientReply *reply);

#endif /* NODE_GOV_H */
