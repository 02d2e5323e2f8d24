/*
 * registry_gov.c - consortium governance: members and the replica set as
 * ledger state, and the proposal / approval transactions that change them.
 *
 * DECISION (voting): the voting roles are the roles of the members the
 * genesis "governance" section names as voters. Every ACTIVE member holding
 * a voting role votes, genesis or added. A proposal takes effect when the
 * number of DISTINCT organisations among its approvers that are active
 * voters now reaches the genesis threshold; a proposal counts as its
 * proposer's approval, and a second approver from an organisation already
 * counted is recorded but adds nothing. The change is applied in the tx
 * that reaches the threshold (at proposal time when the threshold is 1).
 * A chain without a governance section has no voters: every proposal is
 * refused "not-a-voter".
 *
 * Members and replicas are read from the genesis until the first change
 * applies; that change first copies the genesis members, replicas and keys
 * into state (r/G/meta marks it done), so every later read has one source.
 * Both paths give the same answers; only applied changes write.
 *
 * State (values in registry.c's record encoding):
 *   r/G/meta            next replica slot, members ever, active voter
 *                       organisations (present: members are in state)
 *   r/G/M/<name>\0      member: organisation, role, status, key, since
 *   r/G/K/<key 32>      every key a member or replica ever held: kind,
 *                       name, height after which it retired (0: current)
 *   r/G/R/<name>\0      every replica name ever: its slot
 *   r/G/O/<org>\0       active voting members of an organisation
 *   r/G/S               the replica set in force (absent: the genesis set)
 *   r/G/P/<id>\0        proposal: the change, proposer, approvals, status
 *   x/G/<u64 log>       proposals in ledger order (value: the id)
 *
 * Signer checks (before the nonce, so a key that may not sign never moves
 * its member's nonce; the clock bound limits replays of such a tx):
 *   unknown-signer, key-rotated, member-removed, member-suspended.
 */
#include "registry.h"
#include "registry_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Governance must be able to add members to the largest genesis. */
_Static_assert(GENESIS_MEMBERS_MAX < REGISTRY_MEMBERS_MAX,
               "a full genesis leaves no room for members added later");

#define GOV_ORG_MAX 128 /* struct gov_member.organisation */

enum { KEY_KIND_MEMBER = 1, KEY_KIND_REPLICA = 2 };

struct gov_meta {
    bool seeded;
    uint32_t next_slot;
    uint32_t n_members;
    uint32_t n_voter_orgs;
};

struct gov_key {
    uint8_t kind;
    char name[GENESIS_NAME_MAX];
    uint64_t until_height; /* 0: held now */
};

/* ---- voting roles ---------------------------------------------------------
 */

static bool role_votes(const struct registry *r, enum member_role role)
{
    return role > ROLE_NONE && role <= ROLE_AUDITOR &&
           (r->voter_roles & (1u << role)) != 0;
}

static bool member_votes(const struct registry *r, const struct gov_member *m)
{
    return m->status == GOV_MEMBER_ACTIVE && role_votes(r, m->role);
}

/* genesis_parse checked that every voter names a member; the names are
 * not kept in struct genesis, so read them from the exact genesis bytes. */
static int voter_roles_parse(const struct genesis *g, uint32_t *roles)
{
    *roles = 0;
    if (g->raw == NULL || g->gov_threshold == 0)
        return LG_OK;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)g->raw, g->raw_len, 0, &jerr);
    if (root == NULL)
        return LG_ECONFIG;
    json_t *voters =
        json_object_get(json_object_get(root, "governance"), "voters");
    int rv = LG_OK;
    size_t i;
    json_t *v;
    json_array_foreach(voters, i, v)
    {
        const struct genesis_member *m =
            genesis_member_by_name(g, json_string_value(v));
        if (m == NULL) {
            rv = LG_ECONFIG;
            break;
        }
        *roles |= 1u << m->role;
    }
    json_decref(root);
    return rv;
}

int reg_gov_init(struct registry *r)
{
    const struct genesis *g = r->g;
    int rv = voter_roles_parse(g, &r->voter_roles);
    if (rv != LG_OK)
        return rv;
    r->genesis_next_slot = 0;
    for (uint32_t i = 0; i < g->n_replicas; i++)
        if (g->replicas[i].id >= r->genesis_next_slot)
            r->genesis_next_slot = g->replicas[i].id + 1;
    r->genesis_voter_orgs = 0;
    for (uint32_t i = 0; i < g->n_members; i++) {
        if (!role_votes(r, g->members[i].role))
            continue;
        bool first = true;
        for (uint32_t j = 0; j < i && first; j++)
            first = !(role_votes(r, g->members[j].role) &&
                      strcmp(g->members[j].organisation,
                             g->members[i].organisation) == 0);
        r->genesis_voter_orgs += first ? 1 : 0;
    }
    return LG_OK;
}

/* ---- records --------------------------------------------------------------
 */

static void key_named(struct reg_key *k, const char *prefix, const char *name)
{
    rk_init(k, prefix);
    rk_str(k, name);
}

static void key_pk(struct reg_key *k, const uint8_t pk[32])
{
    rk_init(k, "r/G/K/");
    rk_bytes(k, pk, 32);
}

static int meta_load(struct registry *r, const struct reg_src *src,
                     struct gov_meta *out)
{
    struct reg_key k;
    rk_init(&k, "r/G/meta");
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv == LG_ENOTFOUND) {
        /* not seeded: the genesis answers (gov_seed writes the same) */
        memset(out, 0, sizeof(*out));
        out->n_members = r->g->n_members;
        out->next_slot = r->genesis_next_slot;
        out->n_voter_orgs = r->genesis_voter_orgs;
        return LG_OK;
    }
    if (rv != LG_OK)
        return rv;
    out->seeded = true;
    out->next_slot = rd_u32(&rd);
    out->n_members = rd_u32(&rd);
    out->n_voter_orgs = rd_u32(&rd);
    return rec_done(&rd, raw);
}

static void meta_put(struct store_txn *t, const struct gov_meta *m)
{
    struct reg_key k;
    rk_init(&k, "r/G/meta");
    struct rbuf b = {0};
    rb_u32(&b, m->next_slot);
    rb_u32(&b, m->n_members);
    rb_u32(&b, m->n_voter_orgs);
    rec_store(t, &k, &b);
}

static void member_from_genesis(const struct genesis_member *gm,
                                struct gov_member *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->name, gm->name, sizeof(out->name));
    memcpy(out->organisation, gm->organisation, sizeof(out->organisation));
    out->role = gm->role;
    out->status = GOV_MEMBER_ACTIVE;
    memcpy(out->public_key, gm->public_key, 32);
    out->key_current = true;
}

static int member_load(const struct reg_src *src, const char *name,
                       struct gov_member *out)
{
    struct reg_key k;
    key_named(&k, "r/G/M/", name);
    unsigned char *raw = NULL;
    struct rrd rd;
    memset(out, 0, sizeof(*out));
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    snprintf(out->name, sizeof(out->name), "%s", name);
    rd_str(&rd, out->organisation, sizeof(out->organisation));
    out->role = (enum member_role)rd_u8(&rd);
    out->status = (enum gov_member_status)rd_u8(&rd);
    rd_fixed(&rd, out->public_key, 32);
    out->since_height = rd_u64(&rd);
    out->key_current = true;
    if (out->role <= ROLE_NONE || out->role > ROLE_AUDITOR ||
        out->status < GOV_MEMBER_ACTIVE || out->status > GOV_MEMBER_REMOVED)
        rd.bad = true;
    return rec_done(&rd, raw);
}

static void member_put(struct store_txn *t, const struct gov_member *m)
{
    struct reg_key k;
    key_named(&k, "r/G/M/", m->name);
    struct rbuf b = {0};
    rb_str(&b, m->organisation);
    rb_u8(&b, (uint8_t)m->role);
    rb_u8(&b, (uint8_t)m->status);
    rb_bytes(&b, m->public_key, 32);
    rb_u64(&b, m->since_height);
    rec_store(t, &k, &b);
}

static int gkey_load(const struct reg_src *src, const uint8_t pk[32],
                     struct gov_key *out)
{
    struct reg_key k;
    key_pk(&k, pk);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    out->kind = rd_u8(&rd);
    rd_str(&rd, out->name, sizeof(out->name));
    out->until_height = rd_u64(&rd);
    if (out->kind != KEY_KIND_MEMBER && out->kind != KEY_KIND_REPLICA)
        rd.bad = true;
    return rec_done(&rd, raw);
}

static void gkey_put(struct store_txn *t, const uint8_t pk[32],
                     const struct gov_key *v)
{
    struct reg_key k;
    key_pk(&k, pk);
    struct rbuf b = {0};
    rb_u8(&b, v->kind);
    rb_str(&b, v->name);
    rb_u64(&b, v->until_height);
    rec_store(t, &k, &b);
}

static void gkey_set(struct store_txn *t, const uint8_t pk[32], uint8_t kind,
                     const char *name, uint64_t until_height)
{
    struct gov_key v = {.kind = kind, .until_height = until_height};
    snprintf(v.name, sizeof(v.name), "%s", name);
    gkey_put(t, pk, &v);
}

static void rname_put(struct store_txn *t, const char *name, uint32_t slot)
{
    struct reg_key k;
    key_named(&k, "r/G/R/", name);
    struct rbuf b = {0};
    rb_u32(&b, slot);
    rec_store(t, &k, &b);
}

static int org_count_load(struct registry *r, const struct reg_src *src,
                          bool seeded, const char *org, uint32_t *n)
{
    *n = 0;
    if (!seeded) {
        for (uint32_t i = 0; i < r->g->n_members; i++)
            if (role_votes(r, r->g->members[i].role) &&
                strcmp(r->g->members[i].organisation, org) == 0)
                (*n)++;
        return LG_OK;
    }
    struct reg_key k;
    key_named(&k, "r/G/O/", org);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv == LG_ENOTFOUND)
        return LG_OK;
    if (rv != LG_OK)
        return rv;
    *n = rd_u32(&rd);
    return rec_done(&rd, raw);
}

static void org_count_put(struct store_txn *t, const char *org, uint32_t n)
{
    struct reg_key k;
    key_named(&k, "r/G/O/", org);
    struct rbuf b = {0};
    rb_u32(&b, n);
    rec_store(t, &k, &b);
}

/* ---- the replica set ------------------------------------------------------
 */

static int set_load(struct registry *r, const struct reg_src *src,
                    struct gov_replica_set *out)
{
    struct reg_key k;
    rk_init(&k, "r/G/S");
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv == LG_ENOTFOUND) {
        gov_replica_set_genesis(r->g, out);
        return LG_OK;
    }
    if (rv != LG_OK)
        return rv;
    memset(out, 0, sizeof(*out));
    out->base_height = rd_u64(&rd);
    out->n = rd_u32(&rd);
    if (out->n > PBFT_MAX_REPLICAS) {
        rd.bad = true;
        out->n = 0;
    }
    for (uint32_t i = 0; i < out->n && !rd.bad; i++) {
        struct gov_replica *x = &out->r[i];
        x->slot = rd_u32(&rd);
        rd_str(&rd, x->name, sizeof(x->name));
        rd_fixed(&rd, x->public_key, 32);
        rd_str(&rd, x->peer_url, sizeof(x->peer_url));
        /* ordered by slot, slots below the bound */
        if (x->slot >= GOV_SLOTS_MAX || (i > 0 && x->slot <= x[-1].slot))
            rd.bad = true;
    }
    rv = rec_done(&rd, raw);
    if (rv != LG_OK)
        memset(out, 0, sizeof(*out));
    return rv;
}

static void set_put(struct store_txn *t, const struct gov_replica_set *s)
{
    LG_ASSERT(s->n <= PBFT_MAX_REPLICAS);
    struct reg_key k;
    rk_init(&k, "r/G/S");
    struct rbuf b = {0};
    rb_u64(&b, s->base_height);
    rb_u32(&b, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        rb_u32(&b, s->r[i].slot);
        rb_str(&b, s->r[i].name);
        rb_bytes(&b, s->r[i].public_key, 32);
        rb_str(&b, s->r[i].peer_url);
    }
    rec_store(t, &k, &b);
}

int registry_replica_set(struct registry *r, struct store *s,
                         struct gov_replica_set *out)
{
    if (r == NULL || s == NULL || out == NULL)
        return LG_EINVAL;
    struct reg_src src = {.txn = NULL, .s = s};
    return set_load(r, &src, out);
}

int registry_replica_set_txn(struct registry *r, struct store_txn *txn,
                             struct gov_replica_set *out)
{
    if (r == NULL || txn == NULL || out == NULL)
        return LG_EINVAL;
    struct reg_src src = {.txn = txn, .s = NULL};
    return set_load(r, &src, out);
}

/* ---- members --------------------------------------------------------------
 */

int reg_member_get(struct registry *r, const struct reg_src *src,
                   const char *name, struct gov_member *out)
{
    if (name == NULL || name[0] == '\0' || strlen(name) >= GENESIS_NAME_MAX)
        return LG_ENOTFOUND;
    struct gov_meta meta;
    int rv = meta_load(r, src, &meta);
    if (rv != LG_OK)
        return rv;
    if (meta.seeded)
        return member_load(src, name, out);
    const struct genesis_member *gm = genesis_member_by_name(r->g, name);
    if (gm == NULL)
        return LG_ENOTFOUND;
    member_from_genesis(gm, out);
    return LG_OK;
}

int reg_member_by_key(struct registry *r, const struct reg_src *src,
                      const uint8_t pk[32], struct gov_member *out)
{
    struct gov_meta meta;
    int rv = meta_load(r, src, &meta);
    if (rv != LG_OK)
        return rv;
    if (!meta.seeded) {
        const struct genesis_member *gm = genesis_member_by_key(r->g, pk);
        if (gm == NULL)
            return LG_ENOTFOUND;
        member_from_genesis(gm, out);
        return LG_OK;
    }
    struct gov_key gk;
    rv = gkey_load(src, pk, &gk);
    if (rv != LG_OK)
        return rv;
    if (gk.kind != KEY_KIND_MEMBER)
        return LG_ENOTFOUND;
    rv = member_load(src, gk.name, out);
    if (rv == LG_ENOTFOUND)
        return LG_ECORRUPT; /* a key record names its member */
    if (rv != LG_OK)
        return rv;
    if (memcmp(out->public_key, pk, 32) != 0) {
        out->key_current = false;
        out->key_until_height = gk.until_height;
    }
    return LG_OK;
}

bool reg_member_may_sign(const struct gov_member *m, char code[40], char *msg,
                         size_t msg_len)
{
    const char *c = NULL;
    if (!m->key_current) {
        c = "key-rotated";
        snprintf(msg, msg_len,
                 "This key of %s was rotated away after block %llu; sign "
                 "with the member's current key.",
                 m->name, (unsigned long long)m->key_until_height);
    } else if (m->status == GOV_MEMBER_REMOVED) {
        c = "member-removed";
        snprintf(msg, msg_len,
                 "%s has been removed from the consortium and may no longer "
                 "sign.",
                 m->name);
    } else if (m->status != GOV_MEMBER_ACTIVE) {
        c = "member-suspended";
        snprintf(msg, msg_len,
                 "%s is suspended and may not sign until reinstated.", m->name);
    }
    if (c == NULL)
        return true;
    snprintf(code, 40, "%s", c);
    return false;
}

int reg_members_count(struct registry *r, const struct reg_src *src,
                      uint32_t *n)
{
    struct gov_meta meta;
    int rv = meta_load(r, src, &meta);
    *n = rv == LG_OK ? meta.n_members : 0;
    return rv;
}

int registry_member_by_key(struct registry *r, struct store *s,
                           const uint8_t pk[32], struct gov_member *out)
{
    if (r == NULL || s == NULL || pk == NULL || out == NULL)
        return LG_EINVAL;
    struct reg_src src = {.txn = NULL, .s = s};
    return reg_member_by_key(r, &src, pk, out);
}

int registry_member_by_name(struct registry *r, struct store *s,
                            const char *name, struct gov_member *out)
{
    if (r == NULL || s == NULL || name == NULL || out == NULL)
        return LG_EINVAL;
    struct reg_src src = {.txn = NULL, .s = s};
    return reg_member_get(r, &src, name, out);
}

int registry_signer_check(struct registry *r, struct store *s,
                          const uint8_t pk[32], char code[40], char *msg,
                          size_t msg_len)
{
    if (r == NULL || s == NULL || pk == NULL || code == NULL ||
        (msg == NULL && msg_len > 0))
        return LG_EINVAL;
    char scratch[1];
    if (msg == NULL) {
        msg = scratch;
        msg_len = sizeof(scratch);
    }
    code[0] = '\0';
    struct gov_member m;
    struct reg_src src = {.txn = NULL, .s = s};
    int rv = reg_member_by_key(r, &src, pk, &m);
    if (rv == LG_ENOTFOUND) {
        snprintf(code, 40, "unknown-signer");
        snprintf(msg, msg_len,
                 "The signing key belongs to no member of this consortium.");
        return LG_EPERM;
    }
    if (rv != LG_OK)
        return rv;
    return reg_member_may_sign(&m, code, msg, msg_len) ? LG_OK : LG_EPERM;
}

/* ---- proposals ------------------------------------------------------------
 */

struct gov_prop {
    uint8_t action; /* Tc__GovAction */
    char name[GENESIS_NAME_MAX];
    char organisation[GOV_ORG_MAX];
    uint8_t role; /* enum member_role, GOV_MEMBER_ADD only */
    bool has_key;
    uint8_t key[32];
    char peer_url[GENESIS_URL_MAX];
    char reason[REGISTRY_TEXT_MAX + 1];
    char proposer[GENESIS_NAME_MAX];
    uint8_t tx_id[32];
    uint64_t height, expires_ms, applied_height;
    bool applied;
    uint32_t n_approvals;
    char approvals[REGISTRY_APPROVALS_MAX][GENESIS_NAME_MAX];
};

static int prop_load(const struct reg_src *src, const char *id,
                     struct gov_prop *out)
{
    struct reg_key k;
    key_named(&k, "r/G/P/", id);
    unsigned char *raw = NULL;
    struct rrd rd;
    int rv = rec_load(src, &k, &raw, &rd);
    if (rv != LG_OK)
        return rv;
    out->action = rd_u8(&rd);
    rd_str(&rd, out->name, sizeof(out->name));
    rd_str(&rd, out->organisation, sizeof(out->organisation));
    out->role = rd_u8(&rd);
    out->has_key = rd_u8(&rd) != 0;
    rd_fixed(&rd, out->key, 32);
    rd_str(&rd, out->peer_url, sizeof(out->peer_url));
    rd_str(&rd, out->reason, sizeof(out->reason));
    rd_str(&rd, out->proposer, sizeof(out->proposer));
    rd_fixed(&rd, out->tx_id, 32);
    out->height = rd_u64(&rd);
    out->expires_ms = rd_u64(&rd);
    out->applied = rd_u8(&rd) != 0;
    out->applied_height = rd_u64(&rd);
    out->n_approvals = rd_u32(&rd);
    if (out->n_approvals > REGISTRY_APPROVALS_MAX) {
        rd.bad = true;
        out->n_approvals = 0;
    }
    for (uint32_t i = 0; i < out->n_approvals; i++)
        rd_str(&rd, out->approvals[i], sizeof(out->approvals[i]));
    /* only checked changes are stored */
    if (out->action < TC__GOV_ACTION__GOV_MEMBER_ADD ||
        out->action > TC__GOV_ACTION__GOV_REPLICA_MOVE ||
        out->role > ROLE_AUDITOR)
        rd.bad = true;
    return rec_done(&rd, raw);
}

static void prop_put(struct store_txn *t, const char *id,
                     const struct gov_prop *p)
{
    LG_ASSERT(p->n_approvals <= REGISTRY_APPROVALS_MAX);
    struct reg_key k;
    key_named(&k, "r/G/P/", id);
    struct rbuf b = {0};
    rb_u8(&b, p->action);
    rb_str(&b, p->name);
    rb_str(&b, p->organisation);
    rb_u8(&b, p->role);
    rb_u8(&b, p->has_key ? 1 : 0);
    rb_bytes(&b, p->key, 32);
    rb_str(&b, p->peer_url);
    rb_str(&b, p->reason);
    rb_str(&b, p->proposer);
    rb_bytes(&b, p->tx_id, 32);
    rb_u64(&b, p->height);
    rb_u64(&b, p->expires_ms);
    rb_u8(&b, p->applied ? 1 : 0);
    rb_u64(&b, p->applied_height);
    rb_u32(&b, p->n_approvals);
    for (uint32_t i = 0; i < p->n_approvals; i++)
        rb_str(&b, p->approvals[i]);
    rec_store(t, &k, &b);
}

/* The distinct organisations among the approvers that are active voters
 * now, into orgs[0..*n) (capacity REGISTRY_APPROVALS_MAX; orgs may be NULL
 * to count only). */
static int prop_orgs(struct registry *r, const struct reg_src *src,
                     const struct gov_prop *p, char (*orgs)[GOV_ORG_MAX],
                     uint32_t *n)
{
    char(*own)[GOV_ORG_MAX] = NULL;
    if (orgs == NULL) {
        own = malloc(REGISTRY_APPROVALS_MAX * sizeof(*own));
        if (own == NULL)
            return LG_ENOMEM;
        orgs = own;
    }
    *n = 0;
    int rv = LG_OK;
    for (uint32_t i = 0; i < p->n_approvals && rv == LG_OK; i++) {
        struct gov_member m;
        rv = reg_member_get(r, src, p->approvals[i], &m);
        if (rv == LG_ENOTFOUND) {
            rv = LG_ECORRUPT; /* approvers are members */
            break;
        }
        if (rv != LG_OK || !member_votes(r, &m))
            continue;
        bool seen = false;
        for (uint32_t j = 0; j < *n && !seen; j++)
            seen = strcmp(orgs[j], m.organisation) == 0;
        if (!seen)
            snprintf(orgs[(*n)++], GOV_ORG_MAX, "%s", m.organisation);
    }
    free(own);
    return rv;
}

/* ---- validating a change --------------------------------------------------
 */

static bool key_used(struct registry *r, const struct gov_meta *meta,
                     const struct reg_src *src, const uint8_t pk[32], int *rv)
{
    *rv = LG_OK;
    if (!meta->seeded) {
        for (uint32_t i = 0; i < r->g->n_replicas; i++)
            if (memcmp(r->g->replicas[i].public_key, pk, 32) == 0)
                return true;
        return genesis_member_by_key(r->g, pk) != NULL;
    }
    struct gov_key gk;
    *rv = gkey_load(src, pk, &gk);
    if (*rv == LG_ENOTFOUND) {
        *rv = LG_OK;
        return false;
    }
    return *rv == LG_OK;
}

static bool replica_name_used(struct registry *r, const struct gov_meta *meta,
                              const struct reg_src *src, const char *name,
                              int *rv)
{
    *rv = LG_OK;
    if (!meta->seeded) {
        for (uint32_t i = 0; i < r->g->n_replicas; i++)
            if (strcmp(r->g->replicas[i].name, name) == 0)
                return true;
        return false;
    }
    struct reg_key k;
    key_named(&k, "r/G/R/", name);
    unsigned char *raw = NULL;
    size_t n = 0;
    *rv = reg_get(src, &k, &raw, &n);
    free(raw);
    if (*rv == LG_ENOTFOUND) {
        *rv = LG_OK;
        return false;
    }
    return *rv == LG_OK;
}

/* "tcp://host:port": host letters, digits, '.' and '-' (or a bracketed
 * IPv6 address), port 1..65535. */
static bool peer_url_valid(const char *u)
{
    size_t len = strlen(u);
    if (len >= GENESIS_URL_MAX || strncmp(u, "tcp://", 6) != 0)
        return false;
    const char *h = u + 6;
    const char *colon = strrchr(h, ':');
    if (colon == NULL || colon == h)
        return false;
    bool v6 = h[0] == '[';
    if (v6 && colon[-1] != ']')
        return false;
    for (const char *c = h + (v6 ? 1 : 0); c < colon - (v6 ? 1 : 0); c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
                  (v6 && *c == ':');
        if (!ok)
            return false;
    }
    if (v6 && colon - h < 3)
        return false;
    const char *p = colon + 1;
    size_t digits = strlen(p);
    if (digits == 0 || digits > 5)
        return false;
    unsigned long port = 0;
    for (size_t i = 0; i < digits; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        port = port * 10 + (unsigned long)(p[i] - '0');
    }
    return port >= 1 && port <= 65535;
}

static bool check_member_name(struct reg_exec *e, const char *name)
{
    if (reg_id_valid(name) && strlen(name) < GENESIS_NAME_MAX)
        return true;
    reg_reject(e, "invalid-id",
               "The name must be 1 to %d characters of letters, digits, "
               "'.', '_', ':' or '-'.",
               GENESIS_NAME_MAX - 1);
    return false;
}

static bool check_new_key(struct reg_exec *e, const struct gov_prop *p,
                          const struct gov_meta *meta, int *rv)
{
    *rv = LG_OK;
    if (!p->has_key) {
        reg_reject(e, "missing-field",
                   "The change needs a 32-byte Ed25519 public key.");
        return false;
    }
    if (key_used(e->r, meta, &e->src, p->key, rv)) {
        reg_reject(e, "key-in-use",
                   "That public key is or was held by a member or replica; "
                   "keys are never reused.");
        return false;
    }
    return *rv == LG_OK;
}

/* Refuses when taking m out of the active voters would leave fewer active
 * voting organisations than the threshold. */
static int check_keeps_threshold(struct reg_exec *e,
                                 const struct gov_meta *meta,
                                 const struct gov_member *m)
{
    if (!member_votes(e->r, m))
        return LG_OK;
    uint32_t in_org = 0;
    int rv =
        org_count_load(e->r, &e->src, meta->seeded, m->organisation, &in_org);
    if (rv != LG_OK)
        return rv;
    uint32_t after = meta->n_voter_orgs - (in_org <= 1 ? 1 : 0);
    if (after < e->r->g->gov_threshold)
        return reg_reject(e, "below-threshold-voters",
                          "Without %s only %u organisation(s) could vote, "
                          "below the threshold of %u.",
                          m->name, after, e->r->g->gov_threshold);
    return LG_OK;
}

static int check_member_change(struct reg_exec *e, const struct gov_prop *p,
                               const struct gov_meta *meta)
{
    struct gov_member m;
    int rv = reg_member_get(e->r, &e->src, p->name, &m);
    if (rv == LG_ENOTFOUND)
        return reg_reject(e, "unknown-member",
                          "\"%.64s\" is not a member of this consortium.",
                          p->name);
    if (rv != LG_OK)
        return rv;
    if (m.status == GOV_MEMBER_REMOVED)
        return reg_reject(e, "member-removed",
                          "%s has been removed from the consortium for good.",
                          m.name);
    switch (p->action) {
    case TC__GOV_ACTION__GOV_MEMBER_SUSPEND:
        if (m.status == GOV_MEMBER_SUSPENDED)
            return reg_reject(e, "member-suspended", "%s is already suspended.",
                              m.name);
        return check_keeps_threshold(e, meta, &m);
    case TC__GOV_ACTION__GOV_MEMBER_REINSTATE:
        if (m.status != GOV_MEMBER_SUSPENDED)
            return reg_reject(e, "invalid-action",
                              "%s is active, not suspended.", m.name);
        return LG_OK;
    case TC__GOV_ACTION__GOV_MEMBER_REMOVE:
        return check_keeps_threshold(e, meta, &m);
    default: /* GOV_MEMBER_ROTATE_KEY */
        check_new_key(e, p, meta, &rv);
        return rv;
    }
}

static int check_member_add(struct reg_exec *e, const struct gov_prop *p,
                            const struct gov_meta *meta)
{
    if (!check_member_name(e, p->name))
        return LG_OK;
    struct gov_member m;
    int rv = reg_member_get(e->r, &e->src, p->name, &m);
    if (rv == LG_OK)
        return reg_reject(e, "member-exists",
                          "A member named %s exists or existed; names are "
                          "never reused.",
                          p->name);
    if (rv != LG_ENOTFOUND)
        return rv;
    if (p->role <= ROLE_NONE || p->role > ROLE_AUDITOR)
        return reg_reject(e, "invalid-action",
                          "A new member's role is sponsor, site, "
                          "ethics_board or auditor.");
    if (meta->n_members >= REGISTRY_MEMBERS_MAX)
        return reg_reject(e, "too-many-items",
                          "The consortium has had %u members; the limit is "
                          "%d.",
                          meta->n_members, REGISTRY_MEMBERS_MAX);
    check_new_key(e, p, meta, &rv);
    return rv;
}

static int find_replica(const struct gov_replica_set *set, const char *name)
{
    for (uint32_t i = 0; i < set->n; i++)
        if (strcmp(set->r[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int check_replica_change(struct reg_exec *e, const struct gov_prop *p,
                                const struct gov_meta *meta)
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    if (set == NULL)
        return LG_ENOMEM;
    int rv = set_load(e->r, &e->src, set);
    uint32_t n = set->n;
    int at = find_replica(set, p->name);
    free(set);
    if (rv != LG_OK)
        return rv;
    bool url_given = p->peer_url[0] != '\0';
    if (p->action == TC__GOV_ACTION__GOV_REPLICA_ADD) {
        if (!check_member_name(e, p->name))
            return LG_OK;
        if (replica_name_used(e->r, meta, &e->src, p->name, &rv))
            return reg_reject(e, "replica-exists",
                              "A replica named %s exists or existed; names "
                              "are never reused.",
                              p->name);
        if (rv != LG_OK)
            return rv;
        if (n >= PBFT_MAX_REPLICAS || meta->next_slot >= GOV_SLOTS_MAX)
            return reg_reject(e, "too-many-replicas",
                              "No replica can be added: %u replicas, %u "
                              "slots used, limit %d.",
                              n, meta->next_slot, PBFT_MAX_REPLICAS);
        if (!peer_url_valid(p->peer_url))
            return reg_reject(e, "bad-peer-url",
                              "The peer URL must read tcp://host:port.");
        check_new_key(e, p, meta, &rv);
        return rv;
    }
    if (at < 0)
        return reg_reject(e, "unknown-replica",
                          "\"%.64s\" is not a replica of the current set.",
                          p->name);
    if (p->action == TC__GOV_ACTION__GOV_REPLICA_REMOVE) {
        if (n - 1 < GOV_REPLICAS_MIN)
            return reg_reject(e, "too-few-replicas",
                              "Removing %s would leave %u replicas; at least "
                              "%d are needed.",
                              p->name, n - 1, GOV_REPLICAS_MIN);
        return LG_OK;
    }
    /* GOV_REPLICA_MOVE */
    if (!p->has_key && !url_given)
        return reg_reject(e, "missing-field",
                          "A move needs a new public key, a new peer URL or "
                          "both.");
    if (url_given && !peer_url_valid(p->peer_url))
        return reg_reject(e, "bad-peer-url",
                          "The peer URL must read tcp://host:port.");
    if (p->has_key)
        check_new_key(e, p, meta, &rv);
    return rv;
}

/* Whether the change could apply now; rejects e when not. */
static int check_change(struct reg_exec *e, const struct gov_prop *p)
{
    struct gov_meta meta;
    int rv = meta_load(e->r, &e->src, &meta);
    if (rv != LG_OK)
        return rv;
    switch (p->action) {
    case TC__GOV_ACTION__GOV_MEMBER_ADD:
        return check_member_add(e, p, &meta);
    case TC__GOV_ACTION__GOV_MEMBER_SUSPEND:
    case TC__GOV_ACTION__GOV_MEMBER_REINSTATE:
    case TC__GOV_ACTION__GOV_MEMBER_REMOVE:
    case TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY:
        return check_member_change(e, p, &meta);
    case TC__GOV_ACTION__GOV_REPLICA_ADD:
    case TC__GOV_ACTION__GOV_REPLICA_REMOVE:
    case TC__GOV_ACTION__GOV_REPLICA_MOVE:
        return check_replica_change(e, p, &meta);
    default:
        return reg_reject(e, "invalid-action",
                          "The proposal names no known governance action.");
    }
}

/* ---- applying a change ----------------------------------------------------
 */

/* Copies the genesis members, replicas and keys into state once, before
 * the first change writes (replica keys first: a member's record wins a
 * shared key, as genesis_member_by_key does). */
static int gov_seed(struct registry *r, struct store_txn *t,
                    struct gov_meta *meta)
{
    struct reg_src src = {.txn = t, .s = NULL};
    int rv = meta_load(r, &src, meta);
    if (rv != LG_OK || meta->seeded)
        return rv;
    const struct genesis *g = r->g;
    for (uint32_t i = 0; i < g->n_replicas; i++) {
        rname_put(t, g->replicas[i].name, g->replicas[i].id);
        gkey_set(t, g->replicas[i].public_key, KEY_KIND_REPLICA,
                 g->replicas[i].name, 0);
    }
    for (uint32_t i = 0; i < g->n_members; i++) {
        struct gov_member m;
        member_from_genesis(&g->members[i], &m);
        member_put(t, &m);
        gkey_set(t, m.public_key, KEY_KIND_MEMBER, m.name, 0);
        uint32_t in_org = 0;
        rv = org_count_load(r, &src, false, m.organisation, &in_org);
        if (rv != LG_OK)
            return rv;
        if (in_org > 0)
            org_count_put(t, m.organisation, in_org);
    }
    meta->seeded = true;
    meta_put(t, meta);
    return LG_OK;
}

/* Adds delta (+1/-1) to the active voters of m's organisation. */
static int voters_adjust(struct reg_exec *e, struct gov_meta *meta,
                         const struct gov_member *m, int delta)
{
    if (!role_votes(e->r, m->role))
        return LG_OK;
    uint32_t n = 0;
    int rv = org_count_load(e->r, &e->src, true, m->organisation, &n);
    if (rv != LG_OK)
        return rv;
    if (delta > 0) {
        meta->n_voter_orgs += n == 0 ? 1 : 0;
        n++;
    } else {
        /* m was an active voter: its organisation was counted */
        if (n == 0 || meta->n_voter_orgs == 0)
            return LG_ECORRUPT;
        n--;
        meta->n_voter_orgs -= n == 0 ? 1 : 0;
    }
    org_count_put(e->txn, m->organisation, n);
    return LG_OK;
}

static int apply_member(struct reg_exec *e, const struct gov_prop *p,
                        struct gov_meta *meta)
{
    uint64_t h = e->at->height;
    struct gov_member m;
    int rv;
    if (p->action == TC__GOV_ACTION__GOV_MEMBER_ADD) {
        memset(&m, 0, sizeof(m));
        snprintf(m.name, sizeof(m.name), "%s", p->name);
        snprintf(m.organisation, sizeof(m.organisation), "%s", p->organisation);
        m.role = (enum member_role)p->role;
        m.status = GOV_MEMBER_ACTIVE;
        memcpy(m.public_key, p->key, 32);
        m.since_height = h;
        meta->n_members++;
        gkey_set(e->txn, m.public_key, KEY_KIND_MEMBER, m.name, 0);
        rv = voters_adjust(e, meta, &m, +1);
    } else {
        rv = member_load(&e->src, p->name, &m);
        if (rv != LG_OK)
            return rv == LG_ENOTFOUND ? LG_ECORRUPT : rv;
        bool voted = member_votes(e->r, &m);
        switch (p->action) {
        case TC__GOV_ACTION__GOV_MEMBER_SUSPEND:
            m.status = GOV_MEMBER_SUSPENDED;
            break;
        case TC__GOV_ACTION__GOV_MEMBER_REINSTATE:
            m.status = GOV_MEMBER_ACTIVE;
            break;
        case TC__GOV_ACTION__GOV_MEMBER_REMOVE:
            m.status = GOV_MEMBER_REMOVED;
            break;
        default: /* GOV_MEMBER_ROTATE_KEY */
            gkey_set(e->txn, m.public_key, KEY_KIND_MEMBER, m.name, h);
            memcpy(m.public_key, p->key, 32);
            gkey_set(e->txn, m.public_key, KEY_KIND_MEMBER, m.name, 0);
            break;
        }
        bool votes = member_votes(e->r, &m);
        rv = voted == votes ? LG_OK
                            : voters_adjust(e, meta, &m, votes ? +1 : -1);
    }
    if (rv != LG_OK)
        return rv;
    member_put(e->txn, &m);
    meta_put(e->txn, meta);
    return LG_OK;
}

static int apply_replica(struct reg_exec *e, const struct gov_prop *p,
                         struct gov_meta *meta)
{
    uint64_t h = e->at->height;
    struct gov_replica_set *set = malloc(sizeof(*set));
    if (set == NULL)
        return LG_ENOMEM;
    int rv = set_load(e->r, &e->src, set);
    if (rv != LG_OK)
        goto out_free;
    int at = find_replica(set, p->name);
    if (p->action == TC__GOV_ACTION__GOV_REPLICA_ADD) {
        /* check_change passed in this txn just before */
        LG_ASSERT(at < 0);
        LG_ASSERT(set->n < PBFT_MAX_REPLICAS);
        /* the next slot is above every slot used: order by slot holds */
        struct gov_replica *x = &set->r[set->n++];
        memset(x, 0, sizeof(*x));
        x->slot = meta->next_slot++;
        snprintf(x->name, sizeof(x->name), "%s", p->name);
        memcpy(x->public_key, p->key, 32);
        snprintf(x->peer_url, sizeof(x->peer_url), "%s", p->peer_url);
        rname_put(e->txn, x->name, x->slot);
        gkey_set(e->txn, x->public_key, KEY_KIND_REPLICA, x->name, 0);
        meta_put(e->txn, meta);
    } else {
        LG_ASSERT(at >= 0);
        struct gov_replica *x = &set->r[at];
        bool retire =
            p->action == TC__GOV_ACTION__GOV_REPLICA_REMOVE || p->has_key;
        if (retire)
            gkey_set(e->txn, x->public_key, KEY_KIND_REPLICA, x->name, h);
        if (p->action == TC__GOV_ACTION__GOV_REPLICA_REMOVE) {
            memmove(x, x + 1, (set->n - (uint32_t)at - 1) * sizeof(*x));
            set->n--;
        } else {
            if (p->has_key) {
                memcpy(x->public_key, p->key, 32);
                gkey_set(e->txn, x->public_key, KEY_KIND_REPLICA, x->name, 0);
            }
            if (p->peer_url[0] != '\0')
                snprintf(x->peer_url, sizeof(x->peer_url), "%s", p->peer_url);
        }
    }
    set->base_height = h;
    set_put(e->txn, set);
out_free:
    free(set);
    return rv;
}

/* Applies a change check_change accepted. */
static int apply_change(struct reg_exec *e, struct gov_prop *p)
{
    struct gov_meta meta;
    int rv = gov_seed(e->r, e->txn, &meta);
    if (rv != LG_OK)
        return rv;
    if (p->action >= TC__GOV_ACTION__GOV_REPLICA_ADD)
        rv = apply_replica(e, p, &meta);
    else
        rv = apply_member(e, p, &meta);
    if (rv != LG_OK)
        return rv;
    p->applied = true;
    p->applied_height = e->at->height;
    return LG_OK;
}

/* Applies p when its approving organisations reach the threshold; checks
 * the change again first, since earlier changes may have overtaken it. */
static int tally(struct reg_exec *e, struct gov_prop *p)
{
    uint32_t n = 0;
    int rv = prop_orgs(e->r, &e->src, p, NULL, &n);
    if (rv != LG_OK || n < e->r->g->gov_threshold)
        return rv;
    rv = check_change(e, p);
    if (rv != LG_OK || reg_rejected(e))
        return rv;
    return apply_change(e, p);
}

/* ---- the two transactions -------------------------------------------------
 */

static bool need_voter(struct reg_exec *e, const char *act)
{
    if (member_votes(e->r, e->signer))
        return true;
    if (e->r->voter_roles == 0)
        reg_reject(e, "not-a-voter",
                   "This consortium's genesis names no governance voters, so "
                   "no member may %s.",
                   act);
    else
        reg_reject(e, "not-a-voter",
                   "%s is a %s member; only members holding a voting role "
                   "(the roles of the genesis governance voters) may %s.",
                   e->signer->name, role_name(e->signer->role), act);
    return false;
}

/* Copies the tx's change into p; false (rejected) for fields that cannot
 * be stored. */
static bool prop_from_tx(struct reg_exec *e, const Tc__GovernanceProposal *gp,
                         struct gov_prop *p)
{
    p->action = (uint8_t)gp->action;
    if ((int)gp->action < 0 || gp->action > TC__GOV_ACTION__GOV_REPLICA_MOVE) {
        reg_reject(e, "invalid-action",
                   "The proposal names no known governance action.");
        return false;
    }
    const char *name = gp->name != NULL ? gp->name : "";
    const char *org = gp->organisation != NULL ? gp->organisation : "";
    const char *url = gp->peer_url != NULL ? gp->peer_url : "";
    if (strlen(name) >= sizeof(p->name))
        return check_member_name(e, name);
    if (strlen(url) >= sizeof(p->peer_url)) {
        reg_reject(e, "bad-peer-url", "The peer URL is longer than %zu bytes.",
                   sizeof(p->peer_url) - 1);
        return false;
    }
    if (gp->action == TC__GOV_ACTION__GOV_MEMBER_ADD) {
        if (!reg_check_text(e, "organisation", org, true))
            return false;
        if (strlen(org) >= sizeof(p->organisation)) {
            reg_reject(e, "field-too-long",
                       "The organisation is %zu bytes; the limit is %zu.",
                       strlen(org), sizeof(p->organisation) - 1);
            return false;
        }
        enum member_role role = ROLE_NONE;
        if (role_parse(gp->role, &role) == LG_OK)
            p->role = (uint8_t)role;
    }
    if (gp->public_key.len != 0 && gp->public_key.len != 32) {
        reg_reject(e, "missing-field",
                   "A public key is 32 bytes (Ed25519), not %zu.",
                   gp->public_key.len);
        return false;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->organisation, sizeof(p->organisation), "%s", org);
    snprintf(p->peer_url, sizeof(p->peer_url), "%s", url);
    p->has_key = gp->public_key.len == 32;
    if (p->has_key)
        memcpy(p->key, gp->public_key.data, 32);
    if (!reg_check_text(e, "reason", gp->reason, false))
        return false;
    snprintf(p->reason, sizeof(p->reason), "%s",
             gp->reason != NULL ? gp->reason : "");
    return true;
}

static int proposal_record(struct reg_exec *e, const char *id,
                           struct gov_prop *p)
{
    snprintf(p->proposer, sizeof(p->proposer), "%s", e->signer->name);
    memcpy(p->tx_id, e->at->tx_id, 32);
    p->height = e->at->height;
    p->n_approvals = 1; /* the proposal is its proposer's approval */
    snprintf(p->approvals[0], sizeof(p->approvals[0]), "%s", e->signer->name);
    int rv = tally(e, p);
    if (rv != LG_OK || reg_rejected(e))
        return rv;
    prop_put(e->txn, id, p);
    struct reg_key k;
    rk_init(&k, "x/G/");
    return reg_index_add(e->txn, &k, e->at->log_index, id, strlen(id));
}

int rule_governance_proposal(struct reg_exec *e)
{
    const Tc__GovernanceProposal *gp = e->tx->governance_proposal;
    if (!need_voter(e, "propose changes"))
        return LG_OK;
    if (!reg_check_id(e, "proposal id", gp->proposal_id))
        return LG_OK;
    struct gov_prop *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return LG_ENOMEM;
    int rv = prop_load(&e->src, gp->proposal_id, p);
    if (rv == LG_OK) {
        rv = reg_reject(e, "proposal-exists",
                        "A proposal with id %s already exists.",
                        gp->proposal_id);
        goto out_free;
    }
    if (rv != LG_ENOTFOUND)
        goto out_free;
    memset(p, 0, sizeof(*p));
    rv = LG_OK;
    uint64_t bt = e->at->block_time_ms;
    if (gp->expires_ms != 0 && gp->expires_ms <= bt) {
        reg_reject(e, "expiry-in-past",
                   "The proposal's expiry is not after the block time.");
        goto out_free;
    }
    p->expires_ms =
        gp->expires_ms != 0 ? gp->expires_ms : bt + GOV_EXPIRY_DEFAULT_MS;
    if (!prop_from_tx(e, gp, p))
        goto out_free;
    rv = check_change(e, p);
    if (rv == LG_OK && !reg_rejected(e))
        rv = proposal_record(e, gp->proposal_id, p);
out_free:
    free(p);
    return rv;
}

/* Refuses an approval the proposal's state does not allow. */
static bool approval_allowed(struct reg_exec *e, const char *id,
                             const struct gov_prop *p)
{
    if (p->applied) {
        reg_reject(e, "proposal-closed",
                   "Proposal %s was applied in block %llu.", id,
                   (unsigned long long)p->applied_height);
        return false;
    }
    if (e->at->block_time_ms >= p->expires_ms) {
        reg_reject(e, "proposal-expired",
                   "Proposal %s expired before this block.", id);
        return false;
    }
    for (uint32_t i = 0; i < p->n_approvals; i++) {
        if (strcmp(p->approvals[i], e->signer->name) == 0) {
            reg_reject(e, "already-approved",
                       "%s has already approved proposal %s.", e->signer->name,
                       id);
            return false;
        }
    }
    if (p->n_approvals >= REGISTRY_APPROVALS_MAX) {
        reg_reject(e, "too-many-items",
                   "Proposal %s has %u approvals; the limit is %d.", id,
                   p->n_approvals, REGISTRY_APPROVALS_MAX);
        return false;
    }
    return true;
}

int rule_governance_approval(struct reg_exec *e)
{
    const char *id = e->tx->governance_approval->proposal_id;
    if (!need_voter(e, "approve changes"))
        return LG_OK;
    if (!reg_check_id(e, "proposal id", id))
        return LG_OK;
    struct gov_prop *p = malloc(sizeof(*p));
    if (p == NULL)
        return LG_ENOMEM;
    int rv = prop_load(&e->src, id, p);
    if (rv == LG_ENOTFOUND) {
        rv = reg_reject(e, "unknown-proposal", "There is no proposal %s.", id);
        goto out_free;
    }
    if (rv != LG_OK || !approval_allowed(e, id, p))
        goto out_free;
    snprintf(p->approvals[p->n_approvals++], sizeof(p->approvals[0]), "%s",
             e->signer->name);
    rv = tally(e, p);
    if (rv == LG_OK && !reg_rejected(e))
        prop_put(e->txn, id, p);
out_free:
    free(p);
    return rv;
}

/* ---- the governance query -------------------------------------------------
 */

static const char *const action_names[] = {
    [TC__GOV_ACTION__GOV_MEMBER_ADD] = "member-add",
    [TC__GOV_ACTION__GOV_MEMBER_SUSPEND] = "member-suspend",
    [TC__GOV_ACTION__GOV_MEMBER_REINSTATE] = "member-reinstate",
    [TC__GOV_ACTION__GOV_MEMBER_REMOVE] = "member-remove",
    [TC__GOV_ACTION__GOV_MEMBER_ROTATE_KEY] = "member-rotate-key",
    [TC__GOV_ACTION__GOV_REPLICA_ADD] = "replica-add",
    [TC__GOV_ACTION__GOV_REPLICA_REMOVE] = "replica-remove",
    [TC__GOV_ACTION__GOV_REPLICA_MOVE] = "replica-move",
};

static void q_str_free(char *p)
{
    if (p != NULL && p != (const char *)protobuf_c_empty_string)
        free(p);
}

/* strdup that counts a failure in *oom and never returns NULL. */
static char *q_dup(const char *s, bool *oom)
{
    char *d = strdup(s != NULL ? s : "");
    if (d == NULL) {
        *oom = true;
        return (char *)protobuf_c_empty_string;
    }
    return d;
}

static ProtobufCBinaryData q_bytes(const uint8_t *p, size_t n, bool *oom)
{
    ProtobufCBinaryData b = {0, NULL};
    b.data = malloc(n);
    if (b.data == NULL) {
        *oom = true;
        return b;
    }
    memcpy(b.data, p, n);
    b.len = n;
    return b;
}

static void q_proposal_free(Tc__GovProposal *p)
{
    if (p == NULL)
        return;
    q_str_free(p->proposal_id);
    q_str_free(p->action);
    q_str_free(p->name);
    q_str_free(p->organisation);
    q_str_free(p->role);
    free(p->public_key.data);
    q_str_free(p->peer_url);
    q_str_free(p->reason);
    q_str_free(p->proposer);
    free(p->tx_id.data);
    q_str_free(p->status);
    for (size_t i = 0; i < p->n_approvals; i++)
        q_str_free(p->approvals[i]);
    free(p->approvals);
    for (size_t i = 0; i < p->n_organisations; i++)
        q_str_free(p->organisations[i]);
    free(p->organisations);
    free(p);
}

static void q_member_free(Tc__GovMember *m)
{
    if (m == NULL)
        return;
    q_str_free(m->name);
    q_str_free(m->organisation);
    q_str_free(m->role);
    q_str_free(m->status);
    free(m->public_key.data);
    free(m);
}

void registry_governance_clear(Tc__GovernanceReply *out)
{
    if (out == NULL)
        return;
    for (size_t i = 0; i < out->n_proposals; i++)
        q_proposal_free(out->proposals[i]);
    free(out->proposals);
    for (size_t i = 0; i < out->n_members; i++)
        q_member_free(out->members[i]);
    free(out->members);
    if (out->replicas != NULL) {
        for (size_t i = 0; i < out->replicas->n_replicas; i++) {
            Tc__ReplicaInfo *x = out->replicas->replicas[i];
            q_str_free(x->name);
            free(x->public_key.data);
            q_str_free(x->peer_url);
            free(x);
        }
        free(out->replicas->replicas);
        free(out->replicas);
    }
    for (size_t i = 0; i < out->n_voter_roles; i++)
        q_str_free(out->voter_roles[i]);
    free(out->voter_roles);
    tc__governance_reply__init(out);
}

/* One proposal as the reply shows it; NULL when out of memory. */
static int q_proposal(struct registry *r, const struct reg_src *src,
                      const char *id, const struct gov_prop *p, uint64_t now_ms,
                      Tc__GovProposal **out)
{
    *out = NULL;
    Tc__GovProposal *q = malloc(sizeof(*q));
    char(*orgs)[GOV_ORG_MAX] = malloc(REGISTRY_APPROVALS_MAX * sizeof(*orgs));
    if (q == NULL || orgs == NULL) {
        free(q);
        free(orgs);
        return LG_ENOMEM;
    }
    tc__gov_proposal__init(q);
    uint32_t n_orgs = 0;
    int rv = prop_orgs(r, src, p, orgs, &n_orgs);
    bool oom = false;
    q->proposal_id = q_dup(id, &oom);
    q->action = q_dup(p->action <= TC__GOV_ACTION__GOV_REPLICA_MOVE &&
                              action_names[p->action] != NULL
                          ? action_names[p->action]
                          : "unknown",
                      &oom);
    q->name = q_dup(p->name, &oom);
    q->organisation = q_dup(p->organisation, &oom);
    q->role = q_dup(
        p->role != ROLE_NONE ? role_name((enum member_role)p->role) : "", &oom);
    if (p->has_key)
        q->public_key = q_bytes(p->key, 32, &oom);
    q->peer_url = q_dup(p->peer_url, &oom);
    q->reason = q_dup(p->reason, &oom);
    q->proposer = q_dup(p->proposer, &oom);
    q->tx_id = q_bytes(p->tx_id, 32, &oom);
    q->proposed_height = p->height;
    q->expires_ms = p->expires_ms;
    q->status = q_dup(p->applied                ? "applied"
                      : now_ms >= p->expires_ms ? "expired"
                                                : "open",
                      &oom);
    q->threshold = r->g->gov_threshold;
    q->applied_height = p->applied_height;
    q->approvals = calloc(p->n_approvals + 1, sizeof(char *));
    q->organisations = calloc(n_orgs + 1, sizeof(char *));
    oom = oom || q->approvals == NULL || q->organisations == NULL;
    for (uint32_t i = 0; !oom && i < p->n_approvals; i++)
        q->approvals[q->n_approvals++] = q_dup(p->approvals[i], &oom);
    for (uint32_t i = 0; !oom && rv == LG_OK && i < n_orgs; i++)
        q->organisations[q->n_organisations++] = q_dup(orgs[i], &oom);
    free(orgs);
    if (rv == LG_OK && oom)
        rv = LG_ENOMEM;
    if (rv != LG_OK) {
        q_proposal_free(q);
        return rv;
    }
    *out = q;
    return LG_OK;
}

static int q_add_proposal(struct registry *r, const struct reg_src *src,
                          const char *id, uint64_t now_ms,
                          Tc__GovernanceReply *out)
{
    struct gov_prop *p = malloc(sizeof(*p));
    if (p == NULL)
        return LG_ENOMEM;
    int rv = reg_id_valid(id) ? prop_load(src, id, p) : LG_ENOTFOUND;
    Tc__GovProposal *q = NULL;
    if (rv == LG_OK)
        rv = q_proposal(r, src, id, p, now_ms, &q);
    free(p);
    if (rv == LG_OK)
        out->proposals[out->n_proposals++] = q;
    return rv;
}

/* Proposal ids newest first: positions total-1-offset down, at most limit.
 * The index is in ledger order, so the page is the slice
 * [total-offset-limit, total-offset) read forwards, then reversed. */
static int q_proposals(struct registry *r, struct store *s, uint64_t now_ms,
                       uint64_t offset, size_t limit, Tc__GovernanceReply *out)
{
    struct reg_src src = {.txn = NULL, .s = s};
    struct reg_key prefix, ck;
    rk_init(&prefix, "x/G/");
    reg_index_counter_key(&prefix, &ck);
    uint64_t total = 0;
    int rv = reg_u64_get(&src, &ck, &total);
    out->total = total;
    if (rv != LG_OK || offset >= total || limit == 0)
        return rv;
    uint64_t end = total - offset;
    uint64_t begin = end > limit ? end - limit : 0;
    out->more = begin > 0;
    out->proposals = calloc((size_t)(end - begin), sizeof(*out->proposals));
    char(*ids)[REGISTRY_ID_MAX + 1] =
        calloc((size_t)(end - begin), sizeof(*ids));
    struct store_iter *it = store_iter_new(s, prefix.b, prefix.n, NULL, 0);
    if (out->proposals == NULL || ids == NULL || it == NULL) {
        store_iter_free(it);
        free(ids);
        return LG_ENOMEM;
    }
    const unsigned char *k, *v;
    size_t kl, vl, got = 0;
    uint64_t pos = 0;
    while (pos < end && store_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl != prefix.n + 8 || vl == 0 || vl > REGISTRY_ID_MAX) {
            rv = LG_ECORRUPT;
            break;
        }
        if (pos++ < begin)
            continue;
        memcpy(ids[got], v, vl);
        ids[got++][vl] = '\0';
    }
    store_iter_free(it);
    for (size_t i = got; rv == LG_OK && i > 0; i--)
        rv = q_add_proposal(r, &src, ids[i - 1], now_ms, out);
    free(ids);
    return rv;
}

static int q_member(struct registry *r, const struct gov_member *m,
                    Tc__GovernanceReply *out)
{
    Tc__GovMember *q = malloc(sizeof(*q));
    if (q == NULL)
        return LG_ENOMEM;
    tc__gov_member__init(q);
    bool oom = false;
    q->name = q_dup(m->name, &oom);
    q->organisation = q_dup(m->organisation, &oom);
    q->role = q_dup(role_name(m->role), &oom);
    q->status = q_dup(gov_member_status_name(m->status), &oom);
    q->public_key = q_bytes(m->public_key, 32, &oom);
    q->voter = member_votes(r, m);
    q->since_height = m->since_height;
    if (oom) {
        q_member_free(q);
        return LG_ENOMEM;
    }
    out->members[out->n_members++] = q;
    return LG_OK;
}

/* Every member in name order. */
static int q_members(struct registry *r, struct store *s,
                     Tc__GovernanceReply *out)
{
    struct reg_src src = {.txn = NULL, .s = s};
    struct gov_meta meta;
    int rv = meta_load(r, &src, &meta);
    if (rv != LG_OK)
        return rv;
    out->members = calloc(meta.n_members + 1, sizeof(*out->members));
    if (out->members == NULL)
        return LG_ENOMEM;
    struct gov_member m;
    if (!meta.seeded) {
        const struct genesis *g = r->g;
        bool done[GENESIS_MEMBERS_MAX] = {false};
        for (uint32_t n = 0; n < g->n_members && rv == LG_OK; n++) {
            uint32_t best = g->n_members;
            for (uint32_t i = 0; i < g->n_members; i++)
                if (!done[i] &&
                    (best == g->n_members ||
                     strcmp(g->members[i].name, g->members[best].name) < 0))
                    best = i;
            done[best] = true;
            member_from_genesis(&g->members[best], &m);
            rv = q_member(r, &m, out);
        }
        return rv;
    }
    struct reg_key prefix;
    rk_init(&prefix, "r/G/M/");
    struct store_iter *it = store_iter_new(s, prefix.b, prefix.n, NULL, 0);
    if (it == NULL)
        return LG_ENOMEM;
    const unsigned char *k, *v;
    size_t kl, vl;
    while (rv == LG_OK && store_iter_next(it, &k, &kl, &v, &vl)) {
        char name[GENESIS_NAME_MAX];
        size_t nl = kl - prefix.n;
        if (nl < 2 || nl > sizeof(name) || k[kl - 1] != '\0' ||
            out->n_members >= meta.n_members) {
            rv = LG_ECORRUPT;
            break;
        }
        memcpy(name, k + prefix.n, nl);
        rv = member_load(&src, name, &m);
        if (rv == LG_OK)
            rv = q_member(r, &m, out);
    }
    store_iter_free(it);
    return rv;
}

static int q_replicas(struct registry *r, struct store *s,
                      Tc__GovernanceReply *out)
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    Tc__ReplicaSet *rs = malloc(sizeof(*rs));
    if (set == NULL || rs == NULL) {
        free(set);
        free(rs);
        return LG_ENOMEM;
    }
    tc__replica_set__init(rs);
    out->replicas = rs;
    int rv = registry_replica_set(r, s, set);
    if (rv == LG_OK) {
        rs->replicas = calloc(set->n + 1, sizeof(*rs->replicas));
        if (rs->replicas == NULL)
            rv = LG_ENOMEM;
    }
    bool oom = false;
    for (uint32_t i = 0; rv == LG_OK && !oom && i < set->n; i++) {
        Tc__ReplicaInfo *x = malloc(sizeof(*x));
        if (x == NULL) {
            oom = true;
            break;
        }
        tc__replica_info__init(x);
        x->slot = set->r[i].slot;
        x->name = q_dup(set->r[i].name, &oom);
        x->public_key = q_bytes(set->r[i].public_key, 32, &oom);
        x->peer_url = q_dup(set->r[i].peer_url, &oom);
        rs->replicas[rs->n_replicas++] = x;
    }
    out->replicas_since_height = set->base_height;
    free(set);
    return rv == LG_OK && oom ? LG_ENOMEM : rv;
}

int registry_governance(struct registry *r, struct store *s,
                        const char *proposal_id, uint64_t now_ms,
                        uint64_t offset, size_t limit, Tc__GovernanceReply *out)
{
    if (out != NULL)
        tc__governance_reply__init(out);
    if (r == NULL || s == NULL || out == NULL)
        return LG_EINVAL;
    int rv;
    if (proposal_id != NULL && proposal_id[0] != '\0') {
        struct reg_src src = {.txn = NULL, .s = s};
        out->proposals = calloc(1, sizeof(*out->proposals));
        rv = out->proposals == NULL
                 ? LG_ENOMEM
                 : q_add_proposal(r, &src, proposal_id, now_ms, out);
        out->total = out->n_proposals;
    } else {
        rv = q_proposals(r, s, now_ms, offset, limit, out);
    }
    if (rv == LG_OK)
        rv = q_members(r, s, out);
    if (rv == LG_OK)
        rv = q_replicas(r, s, out);
    out->threshold = r->g->gov_threshold;
    if (rv == LG_OK) {
        out->voter_roles = calloc(ROLE_AUDITOR + 1, sizeof(char *));
        if (out->voter_roles == NULL)
            rv = LG_ENOMEM;
    }
    bool oom = false;
    for (int role = ROLE_SPONSOR; rv == LG_OK && role <= ROLE_AUDITOR; role++)
        if (role_votes(r, (enum member_role)role))
            out->voter_roles[out->n_voter_roles++] =
                q_dup(role_name((enum member_role)role), &oom);
    if (rv == LG_OK && oom)
        rv = LG_ENOMEM;
    if (rv != LG_OK)
        registry_governance_clear(out);
    return rv;
}
