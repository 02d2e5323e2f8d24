/*
 * node_gov.c - QueryGovernance: the registry's governance state as a
 * client reply, with the page bounded.
 */
#include "node_gov.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void node_gov_query(struct registry *reg, struct store *s, uint64_t now_ms,
                    const Tc__QueryGovernance *q, Tc__ClientReply *reply)
{
    LG_ASSERT(reply != NULL);
    reply->code = TC__REPLY_CODE__REPLY_OK;
    if (reg == NULL || s == NULL || q == NULL) {
        reply->code = TC__REPLY_CODE__REPLY_BAD_REQUEST;
        reply->error = strdup("The governance query is malformed.");
        return;
    }
    uint64_t offset = q->page != NULL ? q->page->offset : 0;
    size_t limit = q->page != NULL && q->page->limit != 0
                       ? q->page->limit
                       : NODE_GOV_PAGE_DEFAULT;
    if (limit > NODE_GOV_PAGE_MAX)
        limit = NODE_GOV_PAGE_MAX;
    Tc__GovernanceReply *g = malloc(sizeof(*g));
    if (g == NULL) {
        reply->code = TC__REPLY_CODE__REPLY_INTERNAL;
        reply->error = strdup("Out of memory.");
        return;
    }
    int rv =
        registry_governance(reg, s, q->proposal_id, now_ms, offset, limit, g);
    if (rv == LG_OK) {
        reply->reply_case = TC__CLIENT_REPLY__REPLY_GOVERNANCE;
        reply->governance = g;
        return;
    }
    free(g);
    char msg[256];
    if (rv == LG_ENOTFOUND) {
        reply->code = TC__REPLY_CODE__REPLY_NOT_FOUND;
        snprintf(msg, sizeof(msg), "There is no proposal \"%.64s\".",
                 q->proposal_id);
    } else {
        reply->code = rv == LG_EINVAL ? TC__REPLY_CODE__REPLY_BAD_REQUEST
                                      : TC__REPLY_CODE__REPLY_INTERNAL;
        snprintf(msg, sizeof(msg), "cannot read the governance state: %s.",
                 lg_strerror(rv));
    }
    reply->error = strdup(msg);
}

void node_gov_query_clear(Tc__ClientReply *reply)
{
    if (reply == NULL)
        return;
    if (reply->reply_case == TC__CLIENT_REPLY__REPLY_GOVERNANCE &&
        reply->governance != NULL) {
        registry_governance_clear(reply->governance);
        free(reply->governance);
    }
    if (reply->error != NULL &&
        reply->error != (const char *)protobuf_c_empty_string)
        free(reply->error);
    tc__client_reply__init(reply);
}
