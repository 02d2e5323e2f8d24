/*
 * node_sync.c - resuming from disk, consensus-record GC, and state
 * transfer (catch-up) over the peer links.
 *
 * Catch-up: when the core reports that this replica is behind a certified
 * checkpoint, the node asks one peer at a time for blocks tip+1.. in chunks
 * (BlockRequest / BlockChunk in proto/peer.proto), applies each with
 * ledger_apply_certified (checked against its certificate and re-executed,
 * never trusted), and moves to the next peer when one is silent for
 * NODE_FETCH_TIMEOUT_MS or sends a block that fails. Progress is the
 * ledger's tip, so an interrupted transfer resumes where it stopped. When
 * the tip reaches the target and its hash is the certified digest, the core
 * is told (PBFT_EV_STATE_TRANSFERRED).
 *
 * The core asks only when consensus traffic shows it is behind; a node
 * that restarts into an idle consortium hears only heartbeats. When those
 * say peers hold certified blocks beyond our tip and the tip has not moved
 * for FETCH_STUCK_MS, the node fetches up to the peers' height on its own
 * (every block still checked against its certificate) and then tells the
 * core where the ledger is.
 */
#include "node_int.h"
#include "verify.h"

#include <stdlib.h>
#include <string.h>

#define FETCH_TIMEOUT_MS  3000
#define FETCH_BLOCKS      32
#define SERVE_BLOCKS_MAX  64
#define SERVE_BYTES_MAX   (16u << 20)
#define FETCH_STUCK_MS    3000
#define SERVE_INTERVAL_MS 10
#define CERT_SCAN_BACK    256 /* > any window: uncertified blocks are recent */

/* ---- restore ------------------------------------------------------------- */

int node_restore(struct node *n, char *err, size_t err_len)
{
    if (n->pbft == NULL)
        return LG_OK;
    struct store_iter *it = store_iter_new(n->store, CODEC_KEY_PREFIX,
                                           strlen(CODEC_KEY_PREFIX), NULL, 0);
    if (it == NULL) {
        snprintf(err, err_len, "out of memory reading consensus state.");
        return LG_ENOMEM;
    }
    const unsigned char *k, *v;
    size_t kl, vl;
    uint64_t count = 0;
    int rv = LG_OK;
    while (rv == LG_OK && store_iter_next(it, &k, &kl, &v, &vl)) {
        struct codec_record *rec = NULL;
        rv = codec_decode_record(k, kl, v, vl, &n->limits, &rec);
        if (rv != LG_OK) {
            snprintf(err, err_len,
                     "the consensus state in %s is corrupt (a record does "
                     "not decode): run trialchain-node --home %s --repair, "
                     "or wipe %s and let the node rebuild from peers.",
                     n->cfg->data_dir, n->cfg->home, n->cfg->data_dir);
            rv = LG_ECORRUPT;
            break;
        }
        int prv = pbft_restore(n->pbft, &rec->rec);
        codec_record_free(rec);
        if (prv != PBFT_OK) {
            snprintf(err, err_len,
                     "the consensus state in %s is inconsistent (%s): wipe "
                     "%s and let the node rebuild from peers.",
                     n->cfg->data_dir, pbft_strerror(prv), n->cfg->data_dir);
            rv = LG_ECORRUPT;
        }
        count++;
    }
    store_iter_free(it);
    if (rv == LG_OK)
        lg_log(LG_INFO, "consensus_restored", "records=%llu",
               (unsigned long long)count);
    return rv;
}

int node_verify_chain(struct node *n, char *why, size_t why_len)
{
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    uint8_t expect[32];
    memcpy(expect, tip.block_hash, 32);
    /* Walks back from the tip: each header hashes to what the next block
     * (or the tip record) names, down to the chain id. */
    for (uint64_t h = tip.height; h >= 1; h--) {
        uint8_t *bytes = NULL, hash[32];
        size_t len = 0;
        if (ledger_get_block(n->ledger, h, &bytes, &len) != LG_OK) {
            snprintf(why, why_len, "block %llu is missing",
                     (unsigned long long)h);
            return LG_ECORRUPT;
        }
        Tc__Block *b = tc__block__unpack(NULL, len, bytes);
        free(bytes);
        Tc__BlockHeader *hd =
            b ? tc__block_header__unpack(NULL, b->header.len, b->header.data)
              : NULL;
        bool ok = hd != NULL && hd->prev_hash.len == 32;
        if (ok) {
            crypto_sha256(b->header.data, b->header.len, hash);
            ok = memcmp(hash, expect, 32) == 0;
            memcpy(expect, hd->prev_hash.data, 32);
        }
        if (hd != NULL)
            tc__block_header__free_unpacked(hd, NULL);
        if (b != NULL)
            tc__block__free_unpacked(b, NULL);
        if (!ok) {
            snprintf(why, why_len, "block %llu is damaged",
                     (unsigned long long)h);
            return LG_ECORRUPT;
        }
    }
    if (memcmp(expect, n->genesis->chain_id, 32) != 0) {
        snprintf(why, why_len, "block 1 does not follow the genesis");
        return LG_ECORRUPT;
    }
    lg_log(LG_INFO, "chain_verified", "height=%llu",
           (unsigned long long)tip.height);
    return LG_OK;
}

int node_start(struct node *n, char *err, size_t err_len)
{
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    struct pbft_ready r;
    memset(&r, 0, sizeof(r));
    if (n->pbft == NULL) {
        /* Not a replica (yet): follow the ledger through peers' blocks. */
        node_certs_scan(n, tip.height > CERT_SCAN_BACK
                               ? tip.height - CERT_SCAN_BACK + 1
                               : 1);
        return LG_OK;
    }
    int prv = pbft_start(n->pbft, tip.height, tip.block_hash, lg_now_ms(), &r);
    if (prv != PBFT_OK) {
        pbft_advance(n->pbft);
        snprintf(err, err_len, "consensus cannot start at height %llu: %s.",
                 (unsigned long long)tip.height, pbft_strerror(prv));
        return LG_ECORRUPT;
    }
    node_certs_scan(
        n, tip.height > CERT_SCAN_BACK ? tip.height - CERT_SCAN_BACK + 1 : 1);
    char hex[65];
    lg_hex(tip.block_hash, 32, hex);
    lg_log(LG_INFO, "resumed", "height=%llu hash=%s log_size=%llu",
           (unsigned long long)tip.height, hex,
           (unsigned long long)tip.log_size);
    int rv = node_process(n, &r);
    if (rv == LG_OK)
        rv = node_flush(n);
    if (rv != LG_OK)
        snprintf(err, err_len, "cannot persist consensus state: %s.",
                 lg_strerror(rv));
    return rv;
}

int node_store_gc(struct node *n, struct store_batch *b, pbft_seq seq)
{
    /* Start after what the last GC deleted: LevelDB keeps deleted keys as
     * tombstones until compaction, and seeking over them from the start of
     * the prefix every time cost a seventh of the node's CPU under load. */
    size_t plen = strlen(CODEC_KEY_MSG_PREFIX);
    unsigned char start[16];
    memcpy(start, CODEC_KEY_MSG_PREFIX, plen);
    store_put_be64(start + plen, n->gc_done + 1);
    struct store_iter *it =
        store_iter_new(n->store, CODEC_KEY_MSG_PREFIX, plen, start, plen + 8);
    if (it == NULL)
        return LG_ENOMEM;
    const unsigned char *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        pbft_seq s;
        if (!codec_record_key_seq(k, kl, &s) || s > seq)
            break; /* keys sort by seq: nothing older follows */
        store_batch_delete(b, k, kl);
    }
    store_iter_free(it);
    if (seq > n->gc_done)
        n->gc_done = seq;
    return LG_OK;
}

/* ---- certificates missing after a crash ------------------------------------
 * A replica killed between executing a block and collecting its
 * certificate keeps the block without one; nobody will send those votes
 * again, so the certificate is fetched from a peer and checked here (a
 * quorum of valid replica signatures over our own block hash). */

void node_certs_scan(struct node *n, uint64_t from)
{
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    n->cert_missing_from = 0;
    for (uint64_t h = from ? from : 1; h <= tip.height; h++) {
        Tc__Certificate *c = NULL;
        if (ledger_get_cert(n->ledger, h, &c) == LG_OK) {
            tc__certificate__free_unpacked(c, NULL);
            continue;
        }
        n->cert_missing_from = h;
        lg_log(LG_INFO, "certificates_missing", "from=%llu tip=%llu",
               (unsigned long long)h, (unsigned long long)tip.height);
        return;
    }
}

/* A certificate of block h: a quorum of the replica set that certifies
 * h, signed under that set's epoch chain id. */
static bool cert_valid_at(struct node *n, uint64_t h, const Tc__Certificate *pc,
                          const uint8_t hash[32])
{
    struct gov_replica_set *set = malloc(sizeof(*set));
    uint8_t epoch_id[32];
    char why[256];
    bool ok = set != NULL && ledger_replica_set_at(n->ledger, h, set) == LG_OK;
    if (ok) {
        gov_epoch_chain_id(n->genesis->chain_id, set->base_height, epoch_id);
        ok = verify_cert_with_set(set, epoch_id, h, hash, pc, why, sizeof(why));
    }
    free(set);
    return ok;
}

static void certs_repair_one(struct node *n, uint64_t h,
                             const Tc__CertifiedBlock *cb)
{
    Tc__Certificate *have = NULL;
    if (ledger_get_cert(n->ledger, h, &have) == LG_OK) {
        tc__certificate__free_unpacked(have, NULL);
        return;
    }
    uint8_t hash[32];
    Tc__Certificate *pc =
        tc__certificate__unpack(NULL, cb->cert.len, cb->cert.data);
    struct pbft_checkpoint_cert *cert = NULL;
    bool ok = pc != NULL && ledger_block_hash(n->ledger, h, hash) == LG_OK &&
              cert_valid_at(n, h, pc, hash) &&
              codec_cert_from_proto(pc, PBFT_MAX_REPLICAS, &cert) == LG_OK;
    if (ok && ledger_put_cert(n->ledger, cert) == LG_OK) {
        n->unsynced = true; /* deferred: node_flush syncs it */
        lg_log(LG_INFO, "certificate_repaired", "height=%llu",
               (unsigned long long)h);
    } else {
        lg_log(LG_WARN, "certificate_refused", "height=%llu",
               (unsigned long long)h);
    }
    free(cert);
    if (pc != NULL)
        tc__certificate__free_unpacked(pc, NULL);
}

static void certs_repair(struct node *n, const Tc__BlockChunk *chunk)
{
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    for (size_t i = 0; i < chunk->n_blocks; i++) {
        uint64_t h = chunk->from_height + i;
        if (h > tip.height)
            break;
        certs_repair_one(n, h, chunk->blocks[i]);
    }
    node_certs_scan(n, n->cert_missing_from);
    if (n->cert_missing_from != 0)
        n->cert_asked_ms = 0; /* ask for the rest now */
}

static void certs_tick(struct node *n)
{
    if (n->cert_missing_from == 0 || n->fetch.active)
        return;
    unsigned long long now = lg_mono_ms();
    if (n->cert_asked_ms != 0 && now - n->cert_asked_ms < FETCH_TIMEOUT_MS)
        return;
    n->cert_asked_ms = now;
    n->cert_peer = node_next_peer(n, n->cert_peer);
    Tc__BlockRequest req = TC__BLOCK_REQUEST__INIT;
    req.from_height = n->cert_missing_from;
    req.max_blocks = SERVE_BLOCKS_MAX;
    Tc__PeerFrame f;
    tc__peer_frame__init(&f);
    f.body_case = TC__PEER_FRAME__BODY_BLOCK_REQUEST;
    f.block_request = &req;
    node_send_frame(n, n->cert_peer, &f);
}

/* ---- asking -------------------------------------------------------------- */

static void fetch_ask(struct node *n)
{
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    if (tip.height >= n->fetch.target)
        return;
    Tc__BlockRequest req = TC__BLOCK_REQUEST__INIT;
    req.from_height = tip.height + 1;
    uint64_t want = n->fetch.target - tip.height;
    req.max_blocks = (uint32_t)(want < FETCH_BLOCKS ? want : FETCH_BLOCKS);
    Tc__PeerFrame f;
    tc__peer_frame__init(&f);
    f.body_case = TC__PEER_FRAME__BODY_BLOCK_REQUEST;
    f.block_request = &req;
    node_send_frame(n, n->fetch.peer, &f);
    n->fetch.asked_ms = lg_mono_ms();
}

static void fetch_begin(struct node *n, pbft_seq target, const uint8_t *digest,
                        uint32_t first_peer)
{
    if (n->fetch.active && n->fetch.target >= target)
        return;
    bool was_active = n->fetch.active;
    n->fetch.active = true;
    n->fetch.target = target;
    n->fetch.digest_known = digest != NULL;
    if (digest != NULL)
        memcpy(n->fetch.digest, digest, 32);
    if (!was_active) {
        n->fetch.peer = first_peer;
        n->fetch.started_ms = lg_mono_ms();
        n->fetch.attempts = 0;
    }
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    lg_log(was_active ? LG_DEBUG : LG_INFO, "catchup_started",
           "height=%llu target=%llu peer=%u", (unsigned long long)tip.height,
           (unsigned long long)target, n->fetch.peer);
    if (!was_active)
        fetch_ask(n); /* else the answer in flight asks for the rest */
}

void node_fetch_start(struct node *n, pbft_seq target, const uint8_t digest[32])
{
    fetch_begin(n, target, digest, node_next_peer(n, n->slot));
}

/* Tells the core once the ledger holds the target block with the certified
 * digest. Never called while a ready is outstanding. */
static void fetch_check_done(struct node *n)
{
    if (!n->fetch.active)
        return;
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    if (tip.height < n->fetch.target)
        return;
    uint8_t hash[32];
    if (ledger_block_hash(n->ledger, n->fetch.target, hash) == LG_OK &&
        !n->fetch.digest_known)
        memcpy(n->fetch.digest, hash, 32); /* each block was certified */
    if (ledger_block_hash(n->ledger, n->fetch.target, hash) != LG_OK ||
        memcmp(hash, n->fetch.digest, 32) != 0) {
        lg_log(LG_ERROR, "catchup_mismatch",
               "target=%llu the installed block's hash differs from the "
               "certified digest",
               (unsigned long long)n->fetch.target);
        n->fetch.active = false;
        return;
    }
    n->fetch.active = false;
    lg_log(LG_INFO, "catchup_done", "height=%llu ms=%llu",
           (unsigned long long)n->fetch.target,
           (unsigned long long)(lg_mono_ms() - n->fetch.started_ms));
    struct pbft_event ev = {.type = PBFT_EV_STATE_TRANSFERRED,
                            .now_ms = lg_now_ms()};
    ev.u.transferred.seq = n->fetch.target;
    memcpy(ev.u.transferred.digest, n->fetch.digest, 32);
    (void)node_step(n, &ev);
}

/* Starts a fetch of our own when peers' heartbeats show certified blocks
 * beyond a tip that has not moved for FETCH_STUCK_MS. */
static void fetch_when_stuck(struct node *n)
{
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    unsigned long long now = lg_mono_ms();
    if (n->fetch.active || n->peer_tip <= tip.height ||
        tip.height != n->stuck_height) {
        n->stuck_height = tip.height;
        n->stuck_since_ms = now;
        return;
    }
    if (now - n->stuck_since_ms < FETCH_STUCK_MS)
        return;
    uint32_t best = n->slot;
    for (uint32_t i = 0; i < n->set.n; i++) {
        uint32_t p = n->set.r[i].slot;
        if (p != n->slot && p < GOV_SLOTS_MAX &&
            n->peer_certified[p] == n->peer_tip)
            best = p;
    }
    if (best == n->slot)
        best = node_next_peer(n, n->slot);
    lg_log(LG_INFO, "catchup_stuck", "height=%llu peers_certified=%llu",
           (unsigned long long)tip.height, (unsigned long long)n->peer_tip);
    fetch_begin(n, n->peer_tip, NULL, best);
    n->stuck_since_ms = now;
}

void node_fetch_tick(struct node *n, uint64_t now_ms)
{
    (void)now_ms;
    fetch_when_stuck(n);
    certs_tick(n);
    fetch_check_done(n);
    if (!n->fetch.active)
        return;
    if (lg_mono_ms() - n->fetch.asked_ms < FETCH_TIMEOUT_MS)
        return;
    n->fetch.attempts++;
    n->fetch.peer = node_next_peer(n, n->fetch.peer);
    lg_log(LG_WARN, "catchup_retry", "peer=%u attempts=%u target=%llu",
           n->fetch.peer, n->fetch.attempts,
           (unsigned long long)n->fetch.target);
    fetch_ask(n);
}

/* ---- receiving ----------------------------------------------------------- */

void node_fetch_chunk(struct node *n, uint32_t from,
                      const Tc__BlockChunk *chunk)
{
    if (chunk->tip > n->peer_tip)
        n->peer_tip = chunk->tip;
    if (n->cert_missing_from != 0 && chunk->from_height <= n->cert_missing_from)
        certs_repair(n, chunk);
    if (!n->fetch.active || from != n->fetch.peer)
        return; /* unasked: ignore, it cannot change anything */
    uint64_t applied = 0;
    bool bad = false;
    for (size_t i = 0; i < chunk->n_blocks && !bad; i++) {
        const Tc__CertifiedBlock *cb = chunk->blocks[i];
        Tc__Certificate *cert =
            tc__certificate__unpack(NULL, cb->cert.len, cb->cert.data);
        if (cert == NULL) {
            bad = true;
            break;
        }
        int rv = ledger_apply_certified(n->ledger, cb->block.data,
                                        cb->block.len, cert);
        tc__certificate__free_unpacked(cert, NULL);
        if (rv == LG_OK) {
            applied++;
        } else if (rv != LG_EEXIST) {
            lg_log(rv == LG_ECORRUPT ? LG_ERROR : LG_WARN, "catchup_block_bad",
                   "peer=%u height=%llu err=\"%s\" why=\"%s\"", from,
                   (unsigned long long)(chunk->from_height + i),
                   lg_strerror(rv), ledger_errmsg(n->ledger));
            bad = true;
        }
    }
    if (applied > 0) {
        n->unsynced = false; /* each apply was a synced write */
        node_waiters_recheck(n);
        /* The blocks may have changed the replica set (their certificates
         * were checked against the set of each height); seq 0: not a live
         * switch, the boundary certificate came with its block. */
        if (node_epoch_changed(n, 0) && node_epoch_switch(n) != LG_OK)
            return;
    }
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    lg_log(LG_DEBUG, "catchup_progress", "peer=%u applied=%llu height=%llu",
           from, (unsigned long long)applied, (unsigned long long)tip.height);
    if (bad || chunk->n_blocks == 0)
        n->fetch.peer = node_next_peer(n, n->fetch.peer);
    fetch_check_done(n);
    if (n->fetch.active)
        fetch_ask(n);
}

/* ---- serving ------------------------------------------------------------- */

static int serve_one(struct node *n, uint64_t h, Tc__CertifiedBlock *cb)
{
    uint8_t *block = NULL;
    size_t blen = 0;
    Tc__Certificate *cert = NULL;
    int rv = ledger_get_block(n->ledger, h, &block, &blen);
    if (rv == LG_OK)
        rv = ledger_get_cert(n->ledger, h, &cert);
    if (rv != LG_OK) {
        free(block);
        return rv;
    }
    size_t clen = tc__certificate__get_packed_size(cert);
    uint8_t *cbytes = malloc(clen > 0 ? clen : 1);
    if (cbytes == NULL) {
        free(block);
        tc__certificate__free_unpacked(cert, NULL);
        return LG_ENOMEM;
    }
    tc__certificate__pack(cert, cbytes);
    tc__certificate__free_unpacked(cert, NULL);
    tc__certified_block__init(cb);
    cb->block.data = block;
    cb->block.len = blen;
    cb->cert.data = cbytes;
    cb->cert.len = clen;
    return LG_OK;
}

void node_fetch_serve(struct node *n, uint32_t from,
                      const Tc__BlockRequest *req)
{
    /* Reading blocks costs disk and bandwidth: one chunk per peer per
     * SERVE_INTERVAL_MS, so a peer cannot make us read in a loop. */
    unsigned long long now = lg_mono_ms();
    if (now - n->served_ms[from] < SERVE_INTERVAL_MS) {
        atomic_fetch_add(&n->dropped_unwanted, 1);
        return;
    }
    n->served_ms[from] = now;
    struct ledger_tip tip;
    ledger_tip(n->ledger, &tip);
    uint32_t max = req->max_blocks;
    if (max == 0 || max > SERVE_BLOCKS_MAX)
        max = SERVE_BLOCKS_MAX;
    Tc__CertifiedBlock blocks[SERVE_BLOCKS_MAX];
    Tc__CertifiedBlock *ptrs[SERVE_BLOCKS_MAX];
    size_t count = 0, bytes = 0;
    uint64_t h = req->from_height == 0 ? 1 : req->from_height;
    while (count < max && h <= tip.height && bytes < SERVE_BYTES_MAX) {
        if (serve_one(n, h, &blocks[count]) != LG_OK)
            break; /* not certified yet: send what we have */
        bytes += blocks[count].block.len + blocks[count].cert.len;
        ptrs[count] = &blocks[count];
        count++;
        h++;
    }
    Tc__BlockChunk chunk = TC__BLOCK_CHUNK__INIT;
    chunk.from_height = req->from_height == 0 ? 1 : req->from_height;
    chunk.n_blocks = count;
    chunk.blocks = ptrs;
    chunk.tip =
        tip.last_certified < tip.height ? tip.last_certified : tip.height;
    Tc__PeerFrame f;
    tc__peer_frame__init(&f);
    f.body_case = TC__PEER_FRAME__BODY_BLOCK_CHUNK;
    f.block_chunk = &chunk;
    node_send_frame(n, from, &f);
    for (size_t i = 0; i < count; i++) {
        free(blocks[i].block.data);
        free(blocks[i].cert.data);
    }
    lg_log(LG_DEBUG, "catchup_served", "peer=%u from=%llu blocks=%zu", from,
           (unsigned long long)chunk.from_height, count);
}
