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
/* An old core lives until its boundary certificate forms (a replica
 * behind needs it, and may need this core's vote or its view change to
 * finish the boundary block); after this long the certificate-repair path
 * alone looks for it in peers' ledgers. */
#define OLD_CORE_MAX_MS 600000
/* A removed replica keeps its old core only to give its vote for h: the
 * others collect a quorum of the old set within a few rounds, or do
 * without it (a moved replica's old key is not heard at all). */
#define REMOVED_LINGER_MS 10000

static int old_restore(struct node *n);

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

/* Deletes every consensus record (none when keep_records) and writes the
 * marker, in one synced write. */
static int epoch_records_reset(struct node *n, uint64_t base, bool keep_records)
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
    while (!keep_records && store_iter_next(it, &k, &kl, &v, &vl)) {
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

/* Makes a core for `set` with index `self`, its keys and crypto. */
static int core_make(struct node *n, const struct gov_replica_set *set,
                     uint32_t self, struct pbft **out, struct node_keys **kout,
                     struct pbft_config *pc, char *err, size_t err_len)
{
    struct node_keys *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        snprintf(err, err_len, "out of memory.");
        return LG_ENOMEM;
    }
    pbft_config_defaults(pc);
    genesis_pbft_config(n->genesis, pc);
    pc->n = set->n;
    pc->self = self;
    gov_epoch_chain_id(n->genesis->chain_id, set->base_height, k->chain_id);
    memcpy(pc->chain_id, k->chain_id, 32);
    /* The chain id is the "hash of block 0" (ledger.h). */
    if (ledger_block_hash(n->ledger, set->base_height, pc->genesis_digest) !=
        LG_OK) {
        free(k);
        snprintf(err, err_len,
                 "the block %llu that set a replica set is missing.",
                 (unsigned long long)set->base_height);
        return LG_ECORRUPT;
    }
    pc->base_seq = set->base_height;
    pc->initial_view = block_view(n, set->base_height);
    pc->request_bytes_max = TX_BYTES_MAX;
    /* The core's trace lines are logged at debug only. */
    pc->trace_off = lg_log_level > LG_DEBUG;
    gov_replica_keys(set, k->pks);
    k->cctx.sk = n->key.secret_key;
    k->cctx.n = set->n;
    k->cctx.pks = (const uint8_t(*)[32])k->pks;
    k->cctx.chain_id = k->chain_id;
    k->cctx.tx_chain_id = n->genesis->chain_id;
    k->cctx.is_member = node_is_member;
    k->cctx.member_arg = n;
    k->cctx.sigs = n->sigs;
    crypto_pbft_init(&pc->crypto, &k->cctx);
    const char *why = NULL;
    struct pbft *p = pbft_new(pc, &why);
    if (p == NULL) {
        free(k);
        snprintf(err, err_len, "cannot start consensus: %s.",
                 why ? why : "bad parameters");
        return LG_ECONFIG;
    }
    *out = p;
    *kout = k;
    return LG_OK;
}

/* Makes the core for n->set with n->self as its index. */
static int epoch_core_new(struct node *n, char *err, size_t err_len)
{
    struct pbft_config pc;
    int rv =
        core_make(n, &n->set, n->self, &n->pbft, &n->keys, &pc, err, err_len);
    if (rv != LG_OK)
        return rv;
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
        rv = epoch_records_reset(n, n->set.base_height,
                                 !present && n->set.base_height == 0);
    }
    if (rv != LG_OK) {
        snprintf(err, err_len, "cannot read or reset consensus state: %s.",
                 lg_strerror(rv));
        return rv;
    }
    n->gc_done = n->set.base_height;
    rv = old_restore(n);
    if (rv != LG_OK) {
        snprintf(err, err_len,
                 "cannot resume the certificate of block %llu: %s.",
                 (unsigned long long)n->set.base_height, lg_strerror(rv));
        return rv;
    }
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
    for (uint32_t i = 0; i < n->n_old; i++)
        table_add(&n->old[i]->set, urls, pks, &count);
    table_add(&n->set, urls, pks, &count);
    const char *listen = c->peer_listen_url[0] ? c->peer_listen_url : NULL;
    if (n->self != NODE_NO_INDEX && listen == NULL)
        listen = n->set.r[n->self].peer_url;
    for (uint32_t k = 0; listen == NULL && k < n->n_old; k++) {
        int i = gov_replica_by_key(&n->old[k]->set, n->key.public_key);
        if (i >= 0)
            listen = n->old[k]->set.r[i].peer_url;
    }
    if (listen == NULL) {
        free(pks);
        free(prev);
        snprintf(err, err_len, "no peer address to listen on.");
        return LG_ECONFIG;
    }
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
    free(prev); /* urls pointed into it */
    return rv;
}

/* ---- the switch ---------------------------------------------------------- */

bool node_epoch_changed(struct node *n, pbft_seq seq)
{
    /* The ledger noted it while it built the block: no store read. */
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    if (tip.replica_set_height == n->set.base_height)
        return false;
    n->switch_at = seq;
    return true;
}

static void old_free(struct node_old_core *o)
{
    pbft_free(o->pbft);
    node_keys_free(o->keys);
    free(o);
}

void node_old_free_all(struct node *n)
{
    for (uint32_t i = 0; i < n->n_old; i++)
        old_free(n->old[i]);
    n->n_old = 0;
}

struct node_old_core *node_old_find(struct node *n, uint64_t epoch)
{
    for (uint32_t i = 0; i < n->n_old; i++)
        if (n->old[i]->set.base_height == epoch)
            return n->old[i];
    return NULL;
}

uint64_t node_old_deadline(const struct node *n)
{
    uint64_t d = UINT64_MAX;
    for (uint32_t i = 0; i < n->n_old; i++) {
        uint64_t x = pbft_deadline_ms(n->old[i]->pbft);
        if (x < d)
            d = x;
    }
    return d;
}

/* Keeps core p (stopped at `stop`) until the old set certifies `stop`. */
static int old_add(struct node *n, struct pbft *p, struct node_keys *k,
                   const struct gov_replica_set *set, pbft_seq stop)
{
    struct node_old_core *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        pbft_free(p);
        node_keys_free(k);
        return LG_ENOMEM;
    }
    o->pbft = p;
    o->keys = k;
    o->set = *set;
    o->stop = stop;
    o->started_ms = lg_mono_ms();
    (void)pbft_set_stop(p, stop);
    if (n->n_old == NODE_OLD_MAX) {
        /* Changes faster than certificates: the oldest gives way (its
         * certificate is fetched from a peer's ledger). */
        lg_log(LG_WARN, "epoch_boundary_dropped", "height=%llu",
               (unsigned long long)n->old[0]->stop);
        old_free(n->old[0]);
        memmove(n->old, n->old + 1, (NODE_OLD_MAX - 1) * sizeof(n->old[0]));
        n->n_old--;
    }
    n->old[n->n_old++] = o;
    return LG_OK;
}

/* Old core o has its certificate (or gave up): frees it; a removed replica
 * with none left stops, others drop the old set's links. */
static void old_done(struct node *n, struct node_old_core *o, bool certified)
{
    lg_log(certified ? LG_INFO : LG_WARN, "epoch_boundary_done",
           "height=%llu certified=%s", (unsigned long long)o->stop,
           certified ? "yes" : "no (fetched from peers later)");
    for (uint32_t i = 0; i < n->n_old; i++) {
        if (n->old[i] != o)
            continue;
        memmove(n->old + i, n->old + i + 1,
                (n->n_old - i - 1) * sizeof(n->old[0]));
        n->n_old--;
        break;
    }
    old_free(o);
    if (n->removed && n->n_old == 0) {
        lg_log(LG_INFO, "replica_removed",
               "height=%llu msg=\"governance removed this replica from the "
               "set; stopping\"",
               (unsigned long long)n->set.base_height);
        n->running = false;
    } else if (!n->removed) {
        char err[256];
        if (node_net_open(n, err, sizeof(err)) != LG_OK)
            lg_log(LG_ERROR, "net_reopen_failed", "why=\"%s\"", err);
    }
}

/* Carries out what an old core asks, except persisting (it is rebuilt on
 * a restart) and executing (nothing beyond the boundary runs). Returns
 * true when o was freed. */
static bool old_ready(struct node *n, struct node_old_core *o,
                      const struct pbft_ready *r)
{
    for (uint32_t i = 0; i < r->n_msgs; i++)
        node_send_core(n, &o->set, r->msgs[i].to, r->msgs[i].msg);
    bool done = false, stored = false;
    /* Every certificate it makes is kept, not only the boundary's: when a
     * block and the boundary right after it commit in one turn, the
     * block's CHECKPOINT votes reach this core after the switch, and no
     * other core can certify it (a gov_grow run stalled on such a hole). */
    for (uint32_t i = 0; i < r->n_certified; i++) {
        uint64_t seq = r->certified[i].seq;
        if (seq > o->stop)
            continue;
        Tc__Certificate *have = NULL;
        if (ledger_get_cert(n->ledger, seq, &have) == LG_OK) {
            tc__certificate__free_unpacked(have, NULL);
        } else if (ledger_put_cert(n->ledger, &r->certified[i]) == LG_OK) {
            n->unsynced = true; /* deferred: node_flush syncs it */
            stored = true;
        }
        done |= seq == o->stop;
    }
    if (stored) {
        node_waiters_certified(n);
        if (n->cert_missing_from != 0)
            node_certs_scan(n, n->cert_missing_from);
    }
    pbft_advance(o->pbft);
    if (done)
        old_done(n, o, true);
    return done;
}

void node_old_receive(struct node *n, struct node_old_core *o, uint32_t from,
                      const struct pbft_msg *m)
{
    struct pbft_event ev = {.type = PBFT_EV_RECEIVE, .now_ms = lg_now_ms()};
    ev.u.receive.from = from;
    ev.u.receive.msg = m;
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    (void)pbft_step(o->pbft, &ev, &r);
    (void)old_ready(n, o, &r);
}

void node_old_tick(struct node *n, uint64_t now_ms)
{
    /* Backwards: old_done removes from the array. */
    for (uint32_t i = n->n_old; i-- > 0;) {
        if (i >= n->n_old)
            continue;
        struct node_old_core *o = n->old[i];
        Tc__Certificate *have = NULL;
        if (ledger_get_cert(n->ledger, o->stop, &have) == LG_OK) {
            /* Certified by other means (fetched from a peer). */
            tc__certificate__free_unpacked(have, NULL);
            old_done(n, o, true);
            continue;
        }
        uint64_t limit = n->removed ? REMOVED_LINGER_MS : OLD_CORE_MAX_MS;
        if (lg_mono_ms() - o->started_ms > limit) {
            old_done(n, o, false);
            continue;
        }
        if (now_ms < pbft_deadline_ms(o->pbft))
            continue;
        struct pbft_event ev = {.type = PBFT_EV_TIMEOUT, .now_ms = now_ms};
        struct pbft_ready r;
        memset(&r, 0, sizeof(r));
        (void)pbft_step(o->pbft, &ev, &r);
        (void)old_ready(n, o, &r);
    }
}

/* Restart: the last boundary block has no certificate yet, so the core of
 * the set before it comes back, stopped there, to give and gather the
 * votes (its records went with the switch; pbft_start signs its vote for
 * the boundary again). */
static int old_restore(struct node *n)
{
    uint64_t h = n->set.base_height;
    Tc__Certificate *have = NULL;
    if (h == 0)
        return LG_OK;
    if (ledger_get_cert(n->ledger, h, &have) == LG_OK) {
        tc__certificate__free_unpacked(have, NULL);
        return LG_OK;
    }
    struct gov_replica_set *prev = malloc(sizeof(*prev));
    if (prev == NULL)
        return LG_ENOMEM;
    int rv = ledger_replica_set_at(n->ledger, h, prev);
    int idx = rv == LG_OK ? gov_replica_by_key(prev, n->key.public_key) : -1;
    if (idx < 0) {
        free(prev);
        return rv;
    }
    if (n->self == NODE_NO_INDEX)
        n->removed = true; /* in the set before, not in this one */
    struct pbft *p = NULL;
    struct node_keys *k = NULL;
    struct pbft_config pc;
    char err[256];
    rv = core_make(n, prev, (uint32_t)idx, &p, &k, &pc, err, sizeof(err));
    if (rv == LG_OK)
        rv = old_add(n, p, k, prev, h);
    free(prev);
    if (rv != LG_OK)
        return rv;
    struct node_old_core *o = n->old[n->n_old - 1];
    uint8_t hash[32];
    rv = ledger_block_hash(n->ledger, h, hash);
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    if (rv == LG_OK &&
        pbft_start(o->pbft, h, hash, lg_now_ms(), &r) == PBFT_OK) {
        lg_log(LG_INFO, "epoch_boundary_resumed", "height=%llu",
               (unsigned long long)h);
        (void)old_ready(n, o, &r);
    } else {
        pbft_advance(o->pbft);
        old_done(n, o, false);
    }
    return LG_OK;
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
    if (n->pbft != NULL && at == next.base_height && at == tip.height) {
        rv = old_add(n, n->pbft, n->keys, &n->set, at);
        if (rv != LG_OK) {
            n->pbft = NULL;
            n->keys = NULL;
            n->fatal = rv;
            return rv;
        }
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
    rv = epoch_records_reset(n, next.base_height, false);
    if (rv != LG_OK) {
        n->fatal = rv;
        return rv;
    }
    char err[256];
    if (n->self == NODE_NO_INDEX) {
        if (was_replica) {
            n->removed = true;
            if (n->n_old == 0) {
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
