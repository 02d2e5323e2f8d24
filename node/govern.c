/*
 * govern.c - the shared pieces of governance (see govern.h). The rules
 * themselves are in registry_gov.c.
 */
#include "govern.h"

#include <sodium.h>
#include <string.h>

static const char *const member_status_names[] = {
    [GOV_MEMBER_ACTIVE] = "active",
    [GOV_MEMBER_SUSPENDED] = "suspended",
    [GOV_MEMBER_REMOVED] = "removed",
};

const char *gov_member_status_name(enum gov_member_status s)
{
    if (s < GOV_MEMBER_ACTIVE || s > GOV_MEMBER_REMOVED)
        return "unknown";
    return member_status_names[s];
}

void gov_epoch_chain_id(const uint8_t chain_id[32], uint64_t base_height,
                        uint8_t out[32])
{
    static const char tag[] = "trialchain/epoch/v1"; /* hashed with its NUL */
    if (base_height == 0) {
        memmove(out, chain_id, 32);
        return;
    }
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(base_height >> (56 - 8 * i));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)tag, sizeof(tag));
    crypto_hash_sha256_update(&st, chain_id, 32);
    crypto_hash_sha256_update(&st, be, sizeof(be));
    crypto_hash_sha256_final(&st, out);
}

void gov_replica_set_genesis(const struct genesis *g,
                             struct gov_replica_set *out)
{
    memset(out, 0, sizeof(*out));
    out->n = g->n_replicas;
    for (uint32_t i = 0; i < g->n_replicas && i < PBFT_MAX_REPLICAS; i++) {
        struct gov_replica *r = &out->r[i];
        r->slot = g->replicas[i].id;
        memcpy(r->name, g->replicas[i].name, sizeof(r->name));
        memcpy(r->public_key, g->replicas[i].public_key, 32);
        memcpy(r->peer_url, g->replicas[i].peer_url, sizeof(r->peer_url));
    }
}

int gov_replica_index(const struct gov_replica_set *s, uint32_t slot)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->r[i].slot == slot)
            return (int)i;
    return -1;
}

int gov_replica_by_key(const struct gov_replica_set *s, const uint8_t pk[32])
{
    for (uint32_t i = 0; i < s->n; i++)
        if (sodium_memcmp(s->r[i].public_key, pk, 32) == 0)
            return (int)i;
    return -1;
}

void gov_replica_keys(const struct gov_replica_set *s, uint8_t (*pks)[32])
{
    for (uint32_t i = 0; i < s->n; i++)
        memcpy(pks[i], s->r[i].public_key, 32);
}
