/*
 * node_epoch.c - which replicas this node runs consensus with, and the
 * switch when governance changes them (node/govern.h).
 *
 * The switch, at the block h whose governance changed the replica set
 * (every replica learns it when it executes h, at the same seq):
 *   1. Batches the old core committed beyond h are not executed: they are
 *      void, and their requests are proposed again in the new epoch.
 *   2. The old core is told to stop at h and kept, in memory only, until it
 *      holds the old set's certificate of h; that certificate is what
 *      certifies the new set. A node that dies before fetches it from a
 *      peer (node_sync.c, "certificates missing").
 *   3. The consensus records are dropped and the epoch marker written in
 *      one synced write, so a restart never feeds the old epoch's records
 *      to the new core.
 *   4. A new core starts from the checkpoint at h with the new set, the
 *      epoch's chain id and the view h executed in; the peer links are
 *      reopened for the new set's slots (and the old set's while the old
 *      core lives).
 *   5. What local clients still wait for is submitted again.
 * A node not in the new set keeps only the old core and stops (exit 0)
 * once h is certified: it was removed. A node whose key is in no set (a
 * replica about to be added) runs without a core: it follows the ledger
 * through its peers' blocks and starts consensus when a block adds it.
 */
#include "node_int.h"
#include "tx.h"

#include <stdlib.h>
#include <string.h>

#define EPOCH_KEY "m/consensus_epoch"
/* The old core gives up on the boundary certificate after this long: by
 * then the certificate-repair path fetches it from a peer's ledger. */
#define OLD_CORE_MAX_MS 30000
/* A removed replica keeps its old core only to give its vote for h: the
 * others collect a quorum of the old set within a few rounds, or do
 * without it (a moved replica's old key is not heard at all). */
#define REMOVED_LINGER_MS 5000

void node_keys_free(struct node_keys *k)
{
    free(k);
}

uint32_t node_slot_of(const struct gov_replica_set *set, uint32_t index)
{
    if (index == PBFT_BROADCAST || index >= set->n)
        return PBFT_BROADCAST;
    return set->r[index].slot;
}

uint32_t node_next_peer(const struct node *n, uint32_t p)
{
    /* Slots of the current set in order, after p, wrapping. */
    uint32_t best = UINT32_MAX, first = UINT32_MAX;
    for (uint32_t i = 0; i < n->set.n; i++) {
        uint32_t s = n->set.r[i].slot;
        if (s == n->slot)
            continue;
        if (first == UINT32_MAX || s < first)
            first = s;
        if (s > p && (best == UINT32_MAX || s < best))
            best = s;
    }
    if (best != UINT32_MAX)
        return best;
    return first != UINT32_MAX ? first : n->slot;
}

/* A member's key (any key the registry ever knew): the core's request
 * check, lenient on purpose. Whether the member may still sign is the
 * registry's rule at execution (member-removed, key-rotated, ...), applied
 * by every replica at the same point; here a replica a block behind must
 * not refuse a new member's first transaction. */
static bool node_is_member(void *arg, const uint8_t pk[32])
{
    struct node *n = arg;
    struct gov_member m;
    if (registry_member_by_key(n->registry, n->store, pk, &m) == LG_OK)
        return true;
    return genesis_member_by_key(n->genesis, pk) != NULL;
}

/* ---- the consensus-record epoch marker ----------------------------------- */

static int epoch_marker_get(struct node *n, uint64_t *base, bool *present)
{
    unsigned char *v = NULL;
    size_t vl = 0;
    int rv = store_get(n->store, EPOCH_KEY, strlen(EPOCH_KEY), &v, &vl);
    *present = false;
    *base = 0;
    if (rv == LG_ENOTFOUND)
        return LG_OK;
    if (rv != LG_OK)
        return rv;
    if (vl != 8) {
        free(v);
        return LG_ECORRUPT;
    }
    for (int i = 0; i < 8; i++)
        *base = *base << 8 | v[i];
    free(v);
    *present = true;
    return LG_OK;
}

/* Deletes every consensus record and writes the marker, in one synced
 * write. */
static int epoch_records_reset(struct node *n, uint64_t base)
{
    struct store_batch *b = store_batch_new();
    if (b == NULL)
        return LG_ENOMEM;
    struct store_iter *it = store_iter_new(n->store, CODEC_KEY_PREFIX,
                                           strlen(CODEC_KEY_PREFIX), NULL, 0);
    if (it == NULL) {
        store_batch_free(b);
        return LG_ENOMEM;
    }
    const unsigned char *k, *v;
    size_t kl, vl;
    uint64_t count = 0;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        store_batch_delete(b, k, kl);
        count++;
    }
    store_iter_free(it);
    unsigned char be[8];
    store_put_be64(be, base);
    store_batch_put(b, EPOCH_KEY, strlen(EPOCH_KEY), be, 8);
    int rv = store_write(n->store, b, true);
    store_batch_free(b);
    if (rv == LG_OK) {
        n->unsynced = false;
        n->gc_done = base;
        lg_log(LG_INFO, "consensus_records_reset",
               "epoch_base=%llu records=%llu", (unsigned long long)base,
               (unsigned long long)count);
    }
    return rv;
}

/* ---- cores ------------------------------------------------------------- */

/* The view block h executed in (the new epoch starts there, so views only
 * grow); 0 for the genesis. */
static pbft_view block_view(struct node *n, uint64_t h)
{
    if (h == 0)
        return 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (ledger_get_block(n->ledger, h, &bytes, &len) != LG_OK)
        return 0;
    pbft_view view = 0;
    Tc__Block *b = tc__block__unpack(NULL, len, bytes);
    free(bytes);
    Tc__BlockHeader *hd =
        b ? tc__block_header__unpack(NULL, b->header.len, b->header.data)
          : NULL;
    if (hd != NULL) {
        view = hd->view;
        tc__block_header__free_unpacked(hd, NULL);
    }
    if (b != NULL)
        tc__block__free_unpacked(b, NULL);
    return view;
}

/* Makes the core for n->set with n->self as its index. */
static int epoch_core_new(struct node *n, char *err, size_t err_len)
{
    struct node_keys *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        snprintf(err, err_len, "out of memory.");
        return LG_ENOMEM;
    }
    struct pbft_config pc;
    pbft_config_defaults(&pc);
    genesis_pbft_config(n->genesis, &pc);
    pc.n = n->set.n;
    pc.self = n->self;
    gov_epoch_chain_id(n->genesis->chain_id, n->set.base_height, k->chain_id);
    memcpy(pc.chain_id, k->chain_id, 32);
    /* The chain id is the "hash of block 0" (ledger.h). */
    if (ledger_block_hash(n->ledger, n->set.base_height, pc.genesis_digest) !=
        LG_OK) {
        free(k);
        snprintf(err, err_len,
                 "the block %llu that set the current replica set is "
                 "missing.",
                 (unsigned long long)n->set.base_height);
        return LG_ECORRUPT;
    }
    pc.base_seq = n->set.base_height;
    pc.initial_view = block_view(n, n->set.base_height);
    pc.request_bytes_max = TX_BYTES_MAX;
    gov_replica_keys(&n->set, k->pks);
    k->cctx.sk = n->key.secret_key;
    k->cctx.n = n->set.n;
    k->cctx.pks = (const uint8_t(*)[32])k->pks;
    k->cctx.chain_id = k->chain_id;
    k->cctx.tx_chain_id = n->genesis->chain_id;
    k->cctx.is_member = node_is_member;
    k->cctx.member_arg = n;
    crypto_pbft_init(&pc.crypto, &k->cctx);
    const char *why = NULL;
    struct pbft *p = pbft_new(&pc, &why);
    if (p == NULL) {
        free(k);
        snprintf(err, err_len, "cannot start consensus: %s.",
                 why ? why : "bad parameters");
        return LG_ECONFIG;
    }
    n->pbft = p;
    n->keys = k;
    n->crypto = pc.crypto;
    n->pending_share = pc.pending_max / n->set.n;
    if (n->pending_share < 1)
        n->pending_share = 1;
    codec_limits_from_config(&pc, &n->limits);
    if (n->limits.msg_bytes_max > n->cfg->limits.peer_recv_max_bytes)
        n->limits.msg_bytes_max = n->cfg->limits.peer_recv_max_bytes;
    return LG_OK;
}

static void set_self(struct node *n)
{
    int idx = gov_replica_by_key(&n->set, n->key.public_key);
    n->self = idx < 0 ? NODE_NO_INDEX : (uint32_t)idx;
}

int node_epoch_open(struct node *n, char *err, size_t err_len)
{
    const struct node_config *c = n->cfg;
    int rv = registry_replica_set(n->registry, n->store, &n->set);
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot read the replica set: %s.",
                 lg_strerror(rv));
        return rv;
    }
    set_self(n);
    if (n->self != NODE_NO_INDEX) {
        n->slot = n->set.r[n->self].slot;
        if (c->has_replica_id && c->replica_id != n->slot) {
            snprintf(err, err_len,
                     "the key in %s is not replica %u's key (replica_id in "
                     "%s/config.json) but replica %u's: this home holds "
                     "another node's key.",
                     c->key_path, c->replica_id, c->home, n->slot);
            return LG_ECONFIG;
        }
    } else {
        /* A key in no set: a replica about to be added, or one moved to
         * this key (its slot still shows the old key until this node has
         * the block that moved it). Either way it follows the ledger; the
         * peers accept its frames once governance names its key. */
        n->slot = c->replica_id;
        if (n->slot >= GOV_SLOTS_MAX) {
            snprintf(err, err_len, "replica_id %u is not a usable slot.",
                     n->slot);
            return LG_ECONFIG;
        }
        if (c->peer_listen_url[0] == '\0') {
            snprintf(err, err_len,
                     "this node's key is not a replica of the current set, "
                     "so it cannot take its peer address from there: set "
                     "\"peer_listen_url\" in %s/config.json.",
                     c->home);
            return LG_ECONFIG;
        }
        lg_log(LG_WARN, "not_a_replica",
               "slot=%u replicas=%u epoch_base=%llu msg=\"this node's key is "
               "not in the current replica set: it follows the ledger and "
               "joins when governance adds it\"",
               n->slot, n->set.n, (unsigned long long)n->set.base_height);
    }
    uint64_t marker = 0;
    bool present = false;
    rv = epoch_marker_get(n, &marker, &present);
    if (rv == LG_OK && (!present || marker != n->set.base_height)) {
        /* A store from before epochs existed holds genesis-epoch records:
         * keep them. Any other mismatch: records of an epoch gone by. */
        if (!present && n->set.base_height == 0) {
            unsigned char be[8];
            store_put_be64(be, 0);
            struct store_batch *b = store_batch_new();
            if (b == NULL)
                return LG_ENOMEM;
            store_batch_put(b, EPOCH_KEY, strlen(EPOCH_KEY), be, 8);
            rv = store_write(n->store, b, true);
            store_batch_free(b);
        } else {
            rv = epoch_records_reset(n, n->set.base_height);
        }
    }
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot read or reset consensus state: %s.",
                 lg_strerror(rv));
        return rv;
    }
    n->gc_done = n->set.base_height;
    if (n->self == NODE_NO_INDEX)
        return LG_OK;
    return epoch_core_new(n, err, err_len);
}

/* ---- peer links ------------------------------------------------------- */

static void table_add(const struct gov_replica_set *s, const char **urls,
                      uint8_t (*pks)[32], uint32_t *count)
{
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t slot = s->r[i].slot;
        if (slot >= GOV_SLOTS_MAX)
            continue;
        urls[slot] = s->r[i].peer_url;
        memcpy(pks[slot], s->r[i].public_key, 32);
        if (slot + 1 > *count)
            *count = slot + 1;
    }
}

int node_net_open(struct node *n, char *err, size_t err_len)
{
    const struct node_config *c = n->cfg;
    const char *urls[GOV_SLOTS_MAX] = {0};
    static uint8_t zero[32];
    uint8_t(*pks)[32] = calloc(GOV_SLOTS_MAX, 32);
    if (pks == NULL)
        return LG_ENOMEM;
    uint32_t count = 0;
    /* The set before the current one stays linked until the next change:
     * a replica that was removed or left behind at the boundary can still
     * fetch the block that tells it so (its consensus frames are dropped:
     * it is in no epoch we run). */
    struct gov_replica_set *prev = malloc(sizeof(*prev));
    if (prev != NULL && n->set.base_height > 0 &&
        ledger_replica_set_at(n->ledger, n->set.base_height, prev) == LG_OK)
        table_add(prev, urls, pks, &count);
    if (n->old != NULL)
        table_add(&n->old->set, urls, pks, &count);
    table_add(&n->set, urls, pks, &count);
    const char *listen = c->peer_listen_url[0] ? c->peer_listen_url : NULL;
    if (n->self != NODE_NO_INDEX && listen == NULL)
        listen = n->set.r[n->self].peer_url;
    if (listen == NULL && n->old != NULL) {
        int i = gov_replica_by_key(&n->old->set, n->key.public_key);
        if (i >= 0)
            listen = n->old->set.r[i].peer_url;
    }
    if (listen == NULL) {
        free(pks);
        snprintf(err, err_len, "no peer address to listen on.");
        return LG_ECONFIG;
    }
    free(prev);
    urls[n->slot] = listen;
    memcpy(pks[n->slot], n->key.public_key, 32);
    if (n->slot + 1 > count)
        count = n->slot + 1;
    for (uint32_t i = 0; i < count; i++)
        if (urls[i] != NULL && memcmp(pks[i], zero, 32) == 0)
            urls[i] = NULL;
    struct net_params np = {
        .self = n->slot,
        .n = count,
        .sk = n->key.secret_key,
        .pks = (const uint8_t(*)[32])pks,
        .listen_url = listen,
        .peer_urls = urls,
        .recv_max_bytes = c->limits.peer_recv_max_bytes,
        .sendbuf = c->limits.peer_sendbuf,
        .msgs_per_s = c->limits.peer_msgs_per_s,
        .burst = c->limits.peer_burst,
        .recv = node_peer_recv,
        .arg = n,
    };
    /* After a replica-set change the links are updated in place: the
     * listener and unchanged links keep their frames in flight. */
    int rv = n->net != NULL ? net_update(n->net, &np, err, err_len)
                            : net_open(&np, &n->net, err, err_len);
    free(pks);
    return rv;
}

/* ---- the switch ---------------------------------------------------------- */

bool node_epoch_changed(struct node *n, pbft_seq seq)
{
    struct gov_replica_set s;
    if (registry_replica_set(n->registry, n->store, &s) != LG_OK)
        return false;
    if (s.base_height == n->set.base_height)
        return false;
    n->switch_at = seq;
    return true;
}

void node_old_free(struct node *n)
{
    if (n->old == NULL)
        return;
    pbft_free(n->old->pbft);
    node_keys_free(n->old->keys);
    free(n->old);
    n->old = NULL;
}

static void old_done(struct node *n, bool certified)
{
    lg_log(certified ? LG_INFO : LG_WARN, "epoch_boundary_done",
           "height=%llu certified=%s", (unsigned long long)n->old->stop,
           certified ? "yes" : "no (fetched from peers later)");
    node_old_free(n);
    if (n->removed) {
        lg_log(LG_INFO, "replica_removed",
               "height=%llu msg=\"governance removed this replica from the "
               "set; stopping\"",
               (unsigned long long)n->set.base_height);
        n->running = false;
    } else {
        char err[256];
        if (node_net_open(n, err, sizeof(err)) != LG_OK)
            lg_log(LG_ERROR, "net_reopen_failed", "why=\"%s\"", err);
    }
}

/* Carries out what the old core asks, except persisting (its records are
 * gone by design) and executing (nothing beyond the boundary runs). */
static void old_ready(struct node *n, const struct pbft_ready *r)
{
    struct node_old_core *o = n->old;
    for (uint32_t i = 0; i < r->n_msgs; i++)
        node_send_core(n, &o->set, r->msgs[i].to, r->msgs[i].msg);
    bool done = false;
    for (uint32_t i = 0; i < r->n_certified; i++) {
        if (r->certified[i].seq != o->stop)
            continue;
        Tc__Certificate *have = NULL;
        if (ledger_get_cert(n->ledger, o->stop, &have) == LG_OK) {
            tc__certificate__free_unpacked(have, NULL);
        } else if (ledger_put_cert(n->ledger, &r->certified[i]) == LG_OK) {
            n->unsynced = false;
            node_waiters_certified(n);
        }
        done = true;
    }
    pbft_advance(o->pbft);
    if (done)
        old_done(n, true);
}

void node_old_receive(struct node *n, uint32_t from, const struct pbft_msg *m)
{
    if (n->old == NULL)
        return;
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = lg_now_ms()};
    ev.u.receive.from = from;
    ev.u.receive.msg = m;
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    (void)pbft_step(n->old->pbft, &ev, &r);
    old_ready(n, &r);
}

void node_old_tick(struct node *n, uint64_t now_ms)
{
    if (n->old == NULL)
        return;
    Tc__Certificate *have = NULL;
    if (ledger_get_cert(n->ledger, n->old->stop, &have) == LG_OK) {
        /* Certified by other means (fetched from a peer). */
        tc__certificate__free_unpacked(have, NULL);
        old_done(n, true);
        return;
    }
    uint64_t limit = n->removed ? REMOVED_LINGER_MS : OLD_CORE_MAX_MS;
    if (lg_mono_ms() - n->old->started_ms > limit) {
        old_done(n, false);
        return;
    }
    if (now_ms < pbft_deadline_ms(n->old->pbft))
        return;
    struct pbft_event ev = {.type = PBFT_EV_TIMEOUT, .now_ms = now_ms};
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    (void)pbft_step(n->old->pbft, &ev, &r);
    old_ready(n, &r);
}

int node_epoch_switch(struct node *n)
{
    struct gov_replica_set next;
    int rv = registry_replica_set(n->registry, n->store, &next);
    if (rv != LG_OK)
        return rv;
    pbft_seq at = n->switch_at;
    n->switch_at = 0;
    if (next.base_height == n->set.base_height)
        return LG_OK;
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    /* Live switch (we executed the boundary): keep the old core for its
     * certificate. After catch-up the certificate came with the block. */
    node_old_free(n);
    if (n->pbft != NULL && at == next.base_height && at == tip.height) {
        struct node_old_core *o = calloc(1, sizeof(*o));
        if (o == NULL)
            return LG_ENOMEM;
        o->pbft = n->pbft;
        o->keys = n->keys;
        o->set = n->set;
        o->stop = at;
        o->started_ms = lg_mono_ms();
        (void)pbft_set_stop(o->pbft, at);
        n->old = o;
        /* Votes for h sent while our links reopen are lost, and peers that
         * finished h stop resending: if the old core has not got the
         * certificate within a fetch timeout, ask a peer's ledger. */
        /* From a little before h: a block just before the boundary may
         * lack its certificate too (votes lost in the switch). */
        uint64_t from = at > 64 ? at - 64 : 1;
        if (n->cert_missing_from != 0 && n->cert_missing_from < from)
            from = n->cert_missing_from; /* an earlier boundary */
        node_certs_scan(n, from);
        n->cert_asked_ms = lg_mono_ms();
    } else {
        pbft_free(n->pbft);
        node_keys_free(n->keys);
    }
    n->pbft = NULL;
    n->keys = NULL;
    byz_free(n->byz); /* a test mode of the genesis epoch only */
    n->byz = NULL;
    bool was_replica = n->self != NODE_NO_INDEX;
    n->set = next;
    set_self(n);
    lg_log(LG_INFO, "replica_set_changed",
           "height=%llu replicas=%u f=%u quorum=%u self=%s",
           (unsigned long long)next.base_height, next.n, pbft_faults(next.n),
           pbft_quorum(next.n), n->self == NODE_NO_INDEX ? "none" : "member");
    rv = epoch_records_reset(n, next.base_height);
    if (rv != LG_OK) {
        n->fatal = rv;
        return rv;
    }
    char err[256];
    if (n->self == NODE_NO_INDEX) {
        if (was_replica) {
            n->removed = true;
            if (n->old == NULL) {
                lg_log(LG_INFO, "replica_removed",
                       "height=%llu msg=\"governance removed this replica "
                       "from the set; stopping\"",
                       (unsigned long long)next.base_height);
                n->running = false;
                return LG_OK;
            }
        }
    } else {
        n->slot = n->set.r[n->self].slot;
        rv = epoch_core_new(n, err, sizeof(err));
        if (rv != LG_OK) {
            lg_log(LG_ERROR, "epoch_core_failed", "why=\"%s\"", err);
            n->fatal = rv;
            return rv;
        }
    }
    rv = node_net_open(n, err, sizeof(err));
    if (rv != LG_OK) {
        lg_log(LG_ERROR, "net_reopen_failed", "why=\"%s\"", err);
        n->fatal = rv;
        return rv;
    }
    if (n->pbft == NULL)
        return LG_OK;
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    int prv = pbft_start(n->pbft, tip.height, tip.block_hash, lg_now_ms(), &r);
    if (prv != PBFT_OK) {
        pbft_advance(n->pbft);
        lg_log(LG_ERROR, "epoch_start_failed", "height=%llu err=\"%s\"",
               (unsigned long long)tip.height, pbft_strerror(prv));
        n->fatal = LG_ECORRUPT;
        return LG_ECORRUPT;
    }
    rv = node_process(n, &r);
    if (rv == LG_OK)
        node_waiters_resubmit(n);
    return rv;
}
