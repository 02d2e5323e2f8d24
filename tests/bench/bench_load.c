/*
 * bench_load - the load generator behind `make bench` (scripts/bench.sh).
 *
 *   bench_load prepare DIR [--sites K] [--sponsors S]
 *       After `trialchain testnet init DIR` and before the first start: makes
 *       K bench site keys and S bench sponsor keys (DIR/keys/bsite-NNN.key,
 *       bspon-NN.key), adds them to DIR/genesis.json's members and copies
 *       the genesis into every node home. Every concurrent client needs its
 *       own signer: PBFT orders one outstanding request per client and the
 *       registry wants nonces strictly increasing per signer.
 *   bench_load run DIR [--levels 16,32,64,128] [--seconds 15] [--overload 4]
 *                      [--bound PATH] [--grow-to N] [--grow-seconds S]
 *                      [--rate R]
 *       Registers a main trial (sponsor), approves it (ethics), authorizes
 *       the bench sites, then: warm-up; this machine's signature bound
 *       (PATH = bench_bound, with the warm-up's batch size) just before the
 *       load; saturation (closed loop at each level, peak kept); latency at
 *       half the peak rate (open loop; --rate R: at R tx/s instead, so that
 *       builds can be compared at one rate); overload (the peak's clients times
 *       the factor); optionally growth of the ledger to N transactions
 *       (at most S seconds; SIGUSR1 ends it early, after the running
 *       chunk of at most a minute, so the large-ledger figures can still
 *       be taken at the size reached).
 *       Progress on stderr; the last stdout line is one JSON object.
 *   bench_load selftest [--txs N]
 *       Offline: builds every kind of transaction of the mix and executes
 *       them through an in-process registry + ledger (as
 *       tests/unit/test_ledger.c does), checks each is accepted and prints
 *       the in-process rate (signing, and execution + synced block writes)
 *       as a second reference. Exit 0 when all were accepted.
 *
 * The mix (per client request): consent 80%, dataset 10% (of pseudonyms
 * this client's site consented earlier), grant 5% (of one of its datasets,
 * to the auditor, purpose HMB which the consents cover), protocol
 * registration 5% (by a bench sponsor, borrowed from a pool under a lock so
 * one request per sponsor is outstanding). A kind whose prerequisite is not
 * there yet falls back to a consent.
 */
#include "client.h"
#include "crypto.h"
#include "genesis.h"
#include "ledger.h"
#include "lg.h"
#include "registry.h"
#include "store.h"
#include "tx.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_MAX_B   1024
#define NODES_MAX    32
#define SPONSORS_MAX 16
#define LEVELS_MAX   8
#define PSEUD_RING   64 /* recent consented pseudonyms kept per client */
#define DS_RING      8  /* recent datasets kept per client */
#define DS_PARTS     5  /* participants per dataset */
#define CLIENT_TO_MS 10000
#define MAIN_SPONSOR "sponsor"
#define GRANTEE      "auditor"
#define PURPOSE      "HMB"

enum kind { K_CONSENT = 0, K_DATASET, K_GRANT, K_PROTOCOL, K_N };
static const char *const kind_name[K_N] = {"consent", "dataset", "grant",
                                           "protocol"};

/* ---- small helpers -------------------------------------------------------
 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: the mix only needs to be cheap and well spread. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static ProtobufCBinaryData bin(const uint8_t *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* ---- signers and transaction building ------------------------------------
 */

struct signer {
    struct keyfile k;
    uint64_t nonce;     /* last used; the next tx uses nonce + 1 */
    pthread_mutex_t mu; /* sponsors only: held while a request is out */
};

static void signer_init_nonce(struct signer *s)
{
    /* Microseconds since the epoch: above every nonce an earlier run used
     * (each run uses far fewer nonces per signer than microseconds pass). */
    s->nonce = wall_us();
}

/* Fills the envelope, signs; *out malloc'd. */
static int tx_finish(Tc__Tx *tx, struct signer *s, const uint8_t chain_id[32],
                     uint64_t time_ms, uint8_t **out, size_t *len)
{
    tx->chain_id = bin(chain_id, 32);
    tx->signer = bin(s->k.public_key, 32);
    tx->nonce = ++s->nonce;
    tx->client_time_ms = time_ms;
    return tx_sign(tx, &s->k, out, len);
}

static int build_protocol(struct signer *s, const uint8_t cid[32], uint64_t tms,
                          const char *trial, uint8_t **out, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__ProtocolRegister pr = TC__PROTOCOL_REGISTER__INIT;
    Tc__Outcome oc = TC__OUTCOME__INIT, *ocs[1] = {&oc};
    pr.trial_id = (char *)trial;
    pr.brief_title = (char *)"Bench trial of a once-weekly insulin";
    pr.sponsor_name = (char *)"Bench Pharma";
    pr.phase = (char *)"PHASE2";
    pr.study_type = (char *)"INTERVENTIONAL";
    pr.enrollment = 400;
    pr.start_date = (char *)"2027-01";
    pr.primary_completion_date = (char *)"2028-06-30";
    pr.source = (char *)"json";
    oc.id = (char *)"P1";
    oc.type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    oc.measure = (char *)"Change in HbA1c from baseline";
    oc.time_frame = (char *)"Week 26";
    pr.n_outcomes = 1;
    pr.outcomes = ocs;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &pr;
    return tx_finish(&tx, s, cid, tms, out, len);
}

static int build_approve(struct signer *s, const uint8_t cid[32], uint64_t tms,
                         const char *trial, uint8_t **out, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__EthicsDecision ed = TC__ETHICS_DECISION__INIT;
    ed.trial_id = (char *)trial;
    ed.version = 1;
    ed.action = TC__ETHICS_ACTION__ETHICS_APPROVE;
    ed.note = (char *)"Approved for the benchmark.";
    tx.body_case = TC__TX__BODY_ETHICS;
    tx.ethics = &ed;
    return tx_finish(&tx, s, cid, tms, out, len);
}

static int build_authorize(struct signer *s, const uint8_t cid[32],
                           uint64_t tms, const char *trial, const char *site,
                           uint8_t **out, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__SiteAuthorize sa = TC__SITE_AUTHORIZE__INIT;
    sa.trial_id = (char *)trial;
    sa.site = (char *)site;
    tx.body_case = TC__TX__BODY_SITE_AUTHORIZE;
    tx.site_authorize = &sa;
    return tx_finish(&tx, s, cid, tms, out, len);
}

static const uint8_t consent_form_hash[32] = {
    0x5e, 0x1f, 0x0b, 0x44, 0x9d, 0x23, 0x71, 0xa8, 0x10, 0xc2, 0x3e,
    0x97, 0x4b, 0x65, 0xee, 0x02, 0x8a, 0x31, 0x5c, 0xd9, 0x7f, 0x46,
    0x13, 0xb0, 0x29, 0x88, 0x6a, 0xf1, 0x3c, 0x54, 0x07, 0xbd};

static int build_consent(struct signer *s, const uint8_t cid[32], uint64_t tms,
                         const char *trial, const uint8_t pseudonym[32],
                         uint8_t **out, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__Consent c = TC__CONSENT__INIT;
    char *scopes[2] = {(char *)"PARTICIPATION", (char *)"HMB"};
    c.trial_id = (char *)trial;
    c.pseudonym = bin(pseudonym, 32);
    c.protocol_version = 1;
    c.consent_form_hash = bin(consent_form_hash, 32);
    c.action = TC__CONSENT_ACTION__CONSENT_RECORD;
    c.n_scopes = 2;
    c.scopes = scopes;
    tx.body_case = TC__TX__BODY_CONSENT;
    tx.consent = &c;
    return tx_finish(&tx, s, cid, tms, out, len);
}

static int build_dataset(struct signer *s, const uint8_t cid[32], uint64_t tms,
                         const char *trial, const char *ds_id,
                         const uint8_t (*parts)[32], size_t n, uint8_t **out,
                         size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__DatasetRegister d = TC__DATASET_REGISTER__INIT;
    ProtobufCBinaryData pb[DS_PARTS];
    uint8_t hash[32];
    if (n > DS_PARTS)
        return LG_EINVAL;
    for (size_t i = 0; i < n; i++)
        pb[i] = bin(parts[i], 32);
    crypto_sha256(ds_id, strlen(ds_id), hash);
    d.dataset_id = (char *)ds_id;
    d.trial_id = (char *)trial;
    d.sha256 = bin(hash, 32);
    d.size_bytes = 1u << 20;
    d.record_count = n * 12u;
    d.anonymization = (char *)"pseudonymised, dates shifted, k-anonymity 5";
    d.n_participants = n;
    d.participants = pb;
    tx.body_case = TC__TX__BODY_DATASET_REGISTER;
    tx.dataset_register = &d;
    return tx_finish(&tx, s, cid, tms, out, len);
}

static int build_grant(struct signer *s, const uint8_t cid[32], uint64_t tms,
                       const char *ds_id, uint8_t **out, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__AccessGrant g = TC__ACCESS_GRANT__INIT;
    uint8_t sealed[80], ct_hash[32];
    crypto_sha256(ds_id, strlen(ds_id), ct_hash);
    memset(sealed, 0xa5, sizeof(sealed));
    g.dataset_id = (char *)ds_id;
    g.grantee = (char *)GRANTEE;
    g.purpose = (char *)PURPOSE;
    g.expires_ms = tms + 365ull * 24 * 3600 * 1000;
    g.sealed_key = bin(sealed, sizeof(sealed));
    g.ciphertext_sha256 = bin(ct_hash, 32);
    tx.body_case = TC__TX__BODY_ACCESS_GRANT;
    tx.access_grant = &g;
    return tx_finish(&tx, s, cid, tms, out, len);
}

/* ---- the mix: per-client state ------------------------------------------
 */

struct sponsors {
    struct signer *s;
    size_t n;
};

struct stats {
    uint64_t ok[K_N], rej[K_N];
    uint64_t busy, timeout, neterr, other;
    double *lat; /* ms, submit to certified reply */
    size_t n_lat, cap_lat;
    char last_rej[128];
};

struct client_state {
    unsigned idx;
    struct signer *site;
    uint64_t rng;
    const char *run_id;
    const char *trial;
    /* growth phase: this share (per million) of consents go to a second
     * trial, so `trial show` can be timed on one of ~10,000 consents */
    const char *small_trial;
    uint32_t small_ppm;
    bool pending_small;
    /* recent consented pseudonyms (confirmed accepted) */
    uint8_t pseud[PSEUD_RING][32];
    uint64_t n_pseud; /* total ever, ring index = n % PSEUD_RING */
    uint64_t n_local; /* local ids issued */
    char ds[DS_RING][REGISTRY_ID_MAX + 1];
    uint64_t n_ds;
    uint64_t n_ds_issued;
    uint64_t n_trials;
    /* pending tx, confirmed on acceptance */
    enum kind kind;
    uint8_t pending_pseud[32];
    char pending_ds[REGISTRY_ID_MAX + 1];
    struct signer *borrowed; /* sponsor held for this request */
};

static enum kind mix_pick(struct client_state *c)
{
    unsigned r = (unsigned)(rng_next(&c->rng) % 100u);
    if (r < 80)
        return K_CONSENT;
    if (r < 90)
        return K_DATASET;
    if (r < 95)
        return K_GRANT;
    return K_PROTOCOL;
}

/* Borrows a free sponsor (without waiting); NULL when all are out. */
static struct signer *sponsor_borrow(struct sponsors *sp, unsigned start)
{
    for (size_t i = 0; i < sp->n; i++) {
        struct signer *s = &sp->s[(start + i) % sp->n];
        if (pthread_mutex_trylock(&s->mu) == 0)
            return s;
    }
    return NULL;
}

/* Builds the client's next transaction of the mix. */
static int mix_next(struct client_state *c, struct sponsors *sp,
                    const uint8_t cid[32], uint8_t **out, size_t *len)
{
    enum kind k = mix_pick(c);
    uint64_t tms = lg_now_ms();
    c->borrowed = NULL;
    if (k == K_DATASET && c->n_pseud < DS_PARTS)
        k = K_CONSENT;
    if (k == K_GRANT && c->n_ds == 0)
        k = K_CONSENT;
    if (k == K_PROTOCOL) {
        c->borrowed = sp->n ? sponsor_borrow(sp, c->idx) : NULL;
        if (c->borrowed == NULL)
            k = K_CONSENT;
    }
    c->kind = k;
    switch (k) {
    case K_PROTOCOL: {
        char trial[REGISTRY_ID_MAX + 1];
        snprintf(trial, sizeof(trial), "BT-%s-%u-%" PRIu64, c->run_id, c->idx,
                 ++c->n_trials);
        return build_protocol(c->borrowed, cid, tms, trial, out, len);
    }
    case K_DATASET: {
        uint8_t parts[DS_PARTS][32];
        for (unsigned i = 0; i < DS_PARTS; i++)
            memcpy(parts[i], c->pseud[(c->n_pseud - 1 - i) % PSEUD_RING], 32);
        snprintf(c->pending_ds, sizeof(c->pending_ds), "DS-%s-%u-%" PRIu64,
                 c->run_id, c->idx, ++c->n_ds_issued);
        return build_dataset(c->site, cid, tms, c->trial, c->pending_ds,
                             (const uint8_t(*)[32])parts, DS_PARTS, out, len);
    }
    case K_GRANT: {
        uint64_t n = c->n_ds < DS_RING ? c->n_ds : DS_RING;
        const char *ds = c->ds[(c->n_ds - 1 - rng_next(&c->rng) % n) % DS_RING];
        return build_grant(c->site, cid, tms, ds, out, len);
    }
    case K_CONSENT:
    default: {
        char local[96];
        const char *trial = c->trial;
        c->pending_small = c->small_trial != NULL &&
                           rng_next(&c->rng) % 1000000u < c->small_ppm;
        if (c->pending_small)
            trial = c->small_trial;
        snprintf(local, sizeof(local), "%s-%u-%" PRIu64, c->run_id, c->idx,
                 ++c->n_local);
        tx_pseudonym(c->site->k.pseudonym_secret, trial, local,
                     c->pending_pseud);
        return build_consent(c->site, cid, tms, trial, c->pending_pseud, out,
                             len);
    }
    }
}

/* Records the outcome of the pending tx and returns a borrowed sponsor. */
static void mix_done(struct client_state *c, bool accepted)
{
    if (accepted && c->kind == K_CONSENT && !c->pending_small) {
        memcpy(c->pseud[c->n_pseud % PSEUD_RING], c->pending_pseud, 32);
        c->n_pseud++;
    }
    if (accepted && c->kind == K_DATASET) {
        memcpy(c->ds[c->n_ds % DS_RING], c->pending_ds, sizeof(c->pending_ds));
        c->n_ds++;
    }
    if (c->borrowed != NULL) {
        pthread_mutex_unlock(&c->borrowed->mu);
        c->borrowed = NULL;
    }
}

static void stats_lat(struct stats *st, double ms)
{
    if (st->n_lat == st->cap_lat) {
        size_t cap = st->cap_lat ? 2 * st->cap_lat : 1024;
        double *p = realloc(st->lat, cap * sizeof(*p));
        if (p == NULL)
            return; /* a lost sample, not a crash */
        st->lat = p;
        st->cap_lat = cap;
    }
    st->lat[st->n_lat++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ---- key files and genesis ------------------------------------------------
 */

static int load_key(const char *dir, const char *name, struct signer *s)
{
    char path[PATH_MAX_B], err[512];
    snprintf(path, sizeof(path), "%s/keys/%s.key", dir, name);
    memset(s, 0, sizeof(*s));
    if (keyfile_load(path, &s->k, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "bench_load: %s\n", err);
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    signer_init_nonce(s);
    return 0;
}

static void free_key(struct signer *s)
{
    keyfile_free(&s->k);
    pthread_mutex_destroy(&s->mu);
}

/* How many of DIR/keys/PREFIX-NNN.key (width digits) exist from 0 on. */
static size_t count_keys(const char *dir, const char *prefix, int width,
                         size_t max)
{
    char path[PATH_MAX_B];
    size_t n = 0;
    for (; n < max; n++) {
        snprintf(path, sizeof(path), "%s/keys/%s-%0*u.key", dir, prefix, width,
                 (unsigned)n);
        if (access(path, R_OK) != 0)
            break;
    }
    return n;
}

static int prepare(const char *dir, unsigned sites, unsigned sponsors)
{
    char path[PATH_MAX_B], err[512], hex[65];
    json_error_t je;
    snprintf(path, sizeof(path), "%s/node0/data", dir);
    if (access(path, F_OK) == 0) {
        fprintf(stderr,
                "bench_load: %s exists: the chain has started, and its "
                "genesis can no longer change\n",
                path);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/genesis.json", dir);
    json_t *g = json_load_file(path, 0, &je);
    json_t *members = g ? json_object_get(g, "members") : NULL;
    if (!json_is_array(members)) {
        fprintf(stderr, "bench_load: %s: %s\n", path,
                g ? "no members array" : je.text);
        json_decref(g);
        return 1;
    }
    if (json_array_size(members) + sites + sponsors > GENESIS_MEMBERS_MAX) {
        fprintf(stderr, "bench_load: at most %u members in a genesis\n",
                GENESIS_MEMBERS_MAX);
        json_decref(g);
        return 1;
    }
    for (unsigned i = 0; i < sites + sponsors; i++) {
        bool site = i < sites;
        char name[64], org[64];
        struct keyfile k;
        if (site) {
            snprintf(name, sizeof(name), "bsite-%03u", i);
            snprintf(org, sizeof(org), "Bench Site %u", i);
        } else {
            snprintf(name, sizeof(name), "bspon-%02u", i - sites);
            snprintf(org, sizeof(org), "Bench Pharma %u", i - sites);
        }
        snprintf(path, sizeof(path), "%s/keys/%s.key", dir, name);
        if (keyfile_generate(path, "member", name,
                             site ? ROLE_SITE : ROLE_SPONSOR, NULL, &k, err,
                             sizeof(err)) != LG_OK) {
            fprintf(stderr, "bench_load: %s\n", err);
            json_decref(g);
            return 1;
        }
        lg_hex(k.public_key, 32, hex);
        keyfile_free(&k);
        json_t *m = json_object();
        json_object_set_new(m, "name", json_string(name));
        json_object_set_new(m, "role", json_string(site ? "site" : "sponsor"));
        json_object_set_new(m, "organisation", json_string(org));
        json_object_set_new(m, "public_key", json_string(hex));
        json_array_append_new(members, m);
    }
    char *text = json_dumps(g, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(g);
    if (text == NULL)
        return 1;
    int rc = 0;
    snprintf(path, sizeof(path), "%s/genesis.json", dir);
    if (lg_write_file(path, text, strlen(text), 0644) != LG_OK)
        rc = 1;
    for (unsigned i = 0; rc == 0 && i < NODES_MAX; i++) {
        snprintf(path, sizeof(path), "%s/node%u/genesis.json", dir, i);
        if (access(path, F_OK) != 0)
            break;
        if (lg_write_file(path, text, strlen(text), 0644) != LG_OK)
            rc = 1;
    }
    free(text);
    if (rc != 0)
        fprintf(stderr, "bench_load: cannot write %s\n", path);
    else
        fprintf(stderr, "bench_load: added %u sites and %u sponsors\n", sites,
                sponsors);
    return rc;
}

/* ---- the consortium -------------------------------------------------------
 */

struct net {
    const char *dir;
    unsigned n_nodes;
    char urls[NODES_MAX][64];
    int pids[NODES_MAX];
    uint8_t chain_id[32];
    struct genesis *g;
};

/* Reads the node homes' config.json (client_url) and node.pid. */
static int net_load(const char *dir, struct net *n)
{
    char path[PATH_MAX_B], err[512];
    memset(n, 0, sizeof(*n));
    n->dir = dir;
    for (unsigned i = 0; i < NODES_MAX; i++) {
        json_error_t je;
        snprintf(path, sizeof(path), "%s/node%u/config.json", dir, i);
        if (access(path, F_OK) != 0)
            break;
        json_t *cfg = json_load_file(path, 0, &je);
        const char *url = json_string_value(json_object_get(cfg, "client_url"));
        if (url == NULL || strlen(url) >= sizeof(n->urls[i])) {
            fprintf(stderr, "bench_load: %s has no client_url\n", path);
            json_decref(cfg);
            return -1;
        }
        snprintf(n->urls[i], sizeof(n->urls[i]), "%s", url);
        json_decref(cfg);
        snprintf(path, sizeof(path), "%s/node%u/node.pid", dir, i);
        FILE *f = fopen(path, "r");
        if (f == NULL || fscanf(f, "%d", &n->pids[i]) != 1)
            n->pids[i] = 0;
        if (f)
            fclose(f);
        n->n_nodes = i + 1;
    }
    if (n->n_nodes < 4) {
        fprintf(stderr, "bench_load: no testnet in %s\n", dir);
        return -1;
    }
    n->g = calloc(1, sizeof(*n->g));
    snprintf(path, sizeof(path), "%s/genesis.json", dir);
    if (n->g == NULL || genesis_load(path, n->g, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "bench_load: %s\n", err);
        return -1;
    }
    memcpy(n->chain_id, n->g->chain_id, 32);
    return 0;
}

/* CPU seconds (user + system) of a process, from /proc/PID/stat. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu",
                            &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "VmHWM:" / "VmRSS:" line of /proc/PID/status, in kB. */
static long proc_kb(int pid, const char *field)
{
    char path[64], line[256];
    long kb = 0;
    size_t fl = strlen(field);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0) {
            kb = atol(line + fl);
            break;
        }
    fclose(f);
    return kb;
}

static double nodes_cpu(const struct net *n)
{
    double s = 0;
    for (unsigned i = 0; i < n->n_nodes; i++)
        if (n->pids[i] > 0)
            s += proc_cpu_s(n->pids[i]);
    return s;
}

static long nodes_max_kb(const struct net *n, const char *field)
{
    long m = 0;
    for (unsigned i = 0; i < n->n_nodes; i++) {
        long kb = n->pids[i] > 0 ? proc_kb(n->pids[i], field) : 0;
        m = kb > m ? kb : m;
    }
    return m;
}

/* Height, log size and view of node 0. */
static int net_tip(const struct net *n, uint64_t *height, uint64_t *log_size,
                   uint64_t *view)
{
    struct client *c = NULL;
    Tc__ClientReply *r = NULL;
    int rv = client_open(n->urls[0], CLIENT_TO_MS, &c);
    if (rv == LG_OK)
        rv = client_status(c, &r);
    if (rv == LG_OK && (r->code != TC__REPLY_CODE__REPLY_OK || !r->status))
        rv = LG_EBADMSG;
    if (rv == LG_OK) {
        *height = r->status->height;
        *log_size = r->status->log_size;
        if (view != NULL)
            *view = r->status->view;
    }
    client_reply_free(r);
    client_close(c);
    return rv;
}

enum outcome { O_ACCEPTED, O_REJECTED, O_BUSY, O_TIMEOUT, O_NET, O_OTHER };

/* Submits with wait; classifies the reply. rej gets the reason code. */
static enum outcome submit_wait(struct client *c, const uint8_t *tx, size_t len,
                                char *rej, size_t rej_len)
{
    Tc__ClientReply *r = NULL;
    int rv = client_submit(c, tx, len, true, &r);
    enum outcome o = O_OTHER;
    if (rv == LG_ENET)
        return O_NET;
    if (rv == LG_ETIMEDOUT)
        return O_TIMEOUT;
    if (rv != LG_OK)
        return O_OTHER;
    if (r->code == TC__REPLY_CODE__REPLY_BUSY) {
        o = O_BUSY;
    } else if (r->code == TC__REPLY_CODE__REPLY_TIMEOUT) {
        o = O_TIMEOUT;
    } else if (r->code != TC__REPLY_CODE__REPLY_OK || !r->submit ||
               !r->submit->committed || !r->submit->receipt) {
        snprintf(rej, rej_len, "reply %d: %s", (int)r->code, r->error);
    } else {
        const ProtobufCBinaryData *b = &r->submit->receipt->result;
        Tc__TxResult *res = tc__tx_result__unpack(NULL, b->len, b->data);
        if (res == NULL) {
            o = O_OTHER;
        } else if (res->status == TC__TX_STATUS__TX_ACCEPTED) {
            o = O_ACCEPTED;
        } else {
            o = O_REJECTED;
            snprintf(rej, rej_len, "%s", res->code);
        }
        if (res)
            tc__tx_result__free_unpacked(res, NULL);
    }
    client_reply_free(r);
    return o;
}

/* One setup transaction, which must be accepted. */
static int setup_submit(struct client *c, uint8_t *tx, size_t len,
                        const char *what)
{
    char rej[96] = "";
    enum outcome o = submit_wait(c, tx, len, rej, sizeof(rej));
    free(tx);
    if (o != O_ACCEPTED) {
        fprintf(stderr, "bench_load: setup: %s not accepted (%d %s)\n", what,
                (int)o, rej);
        return -1;
    }
    return 0;
}

/* ---- load phases ----------------------------------------------------------
 */

struct worker {
    pthread_t th;
    struct client_state cs;
    struct client *c;
    const char *url;
    struct stats st;
};

struct phase {
    struct worker *w;
    unsigned n_clients;
    struct sponsors *sp;
    const uint8_t *chain_id;
    double period_s;       /* per client, open loop; 0 = closed loop */
    double start_s;        /* open loop: time of the first send */
    _Atomic double t0, t1; /* measuring window (replies inside count) */
    atomic_bool stop;
};

struct worker_arg {
    struct phase *ph;
    struct worker *w;
};

static void *worker_main(void *arg)
{
    struct worker_arg *a = arg;
    struct phase *ph = a->ph;
    struct worker *w = a->w;
    double next =
        ph->start_s + (double)w->cs.idx * ph->period_s / (double)ph->n_clients;
    while (!atomic_load(&ph->stop)) {
        if (w->c == NULL && client_open(w->url, CLIENT_TO_MS, &w->c) != LG_OK) {
            w->st.neterr++;
            sleep_s(0.1);
            continue;
        }
        if (ph->period_s > 0) {
            sleep_s(next - now_s());
            next += ph->period_s;
            if (atomic_load(&ph->stop))
                break;
        }
        uint8_t *tx = NULL;
        size_t len = 0;
        if (mix_next(&w->cs, ph->sp, ph->chain_id, &tx, &len) != LG_OK) {
            mix_done(&w->cs, false);
            w->st.other++;
            continue;
        }
        char rej[96] = "";
        double ts = now_s();
        enum outcome o = submit_wait(w->c, tx, len, rej, sizeof(rej));
        double te = now_s();
        free(tx);
        mix_done(&w->cs, o == O_ACCEPTED);
        if (te < atomic_load(&ph->t0) || te > atomic_load(&ph->t1))
            continue;
        switch (o) {
        case O_ACCEPTED:
            w->st.ok[w->cs.kind]++;
            stats_lat(&w->st, (te - ts) * 1000.0);
            break;
        case O_REJECTED:
            w->st.rej[w->cs.kind]++;
            snprintf(w->st.last_rej, sizeof(w->st.last_rej), "%s %s",
                     kind_name[w->cs.kind], rej);
            break;
        case O_BUSY:
            w->st.busy++;
            sleep_s(0.005); /* back off as the node asks */
            break;
        case O_TIMEOUT:
            w->st.timeout++;
            break;
        case O_NET:
            w->st.neterr++;
            client_close(w->c);
            w->c = NULL;
            break;
        case O_OTHER:
        default:
            w->st.other++;
            if (rej[0])
                snprintf(w->st.last_rej, sizeof(w->st.last_rej), "%s", rej);
            break;
        }
    }
    return NULL;
}

struct result {
    const char *name;
    unsigned clients;
    double secs, tps, offered;
    uint64_t accepted, rejected, busy, timeout, errors;
    uint64_t by_kind[K_N];
    double p50, p95, p99, max_ms;
    double batch, cpu_ms_per_tx;
    long hwm_kb, rss_kb;
    uint64_t view; /* node 0's view at the end */
    char last_rej[128];
};

static void print_result(const struct result *r)
{
    fprintf(stderr,
            "  %-10s clients %3u  %7.1f tx/s  accepted %6" PRIu64
            " (consent %" PRIu64 " dataset %" PRIu64 " grant %" PRIu64
            " protocol %" PRIu64 ")  rejected %" PRIu64 "  busy %" PRIu64
            "  timeout %" PRIu64 "  errors %" PRIu64 "\n"
            "             latency ms p50 %.1f p95 %.1f p99 %.1f max %.1f"
            "  batch %.1f  node cpu %.3f ms/tx  max rss %ld kB (hwm %ld kB)"
            "  view %" PRIu64 "%s%s\n",
            r->name, r->clients, r->tps, r->accepted, r->by_kind[K_CONSENT],
            r->by_kind[K_DATASET], r->by_kind[K_GRANT], r->by_kind[K_PROTOCOL],
            r->rejected, r->busy, r->timeout, r->errors, r->p50, r->p95, r->p99,
            r->max_ms, r->batch, r->cpu_ms_per_tx, r->rss_kb, r->hwm_kb,
            r->view, r->last_rej[0] ? "  last rejection: " : "", r->last_rej);
}

/* Runs clients [0, n) for ramp + secs seconds; measures the last secs. */
static int run_phase(const char *name, struct net *net, struct worker *w,
                     unsigned n, struct sponsors *sp, double rate, double secs,
                     struct result *r)
{
    struct phase ph;
    struct worker_arg *args = calloc(n, sizeof(*args));
    const double ramp = 1.0;
    if (args == NULL)
        return -1;
    memset(&ph, 0, sizeof(ph));
    ph.w = w;
    ph.n_clients = n;
    ph.sp = sp;
    ph.chain_id = net->chain_id;
    ph.period_s = rate > 0 ? (double)n / rate : 0;
    ph.start_s = now_s() + 0.05;
    atomic_store(&ph.t0, 1e300);
    atomic_store(&ph.t1, 1e300);
    atomic_store(&ph.stop, false);
    unsigned started = 0;
    for (unsigned i = 0; i < n; i++) {
        memset(&w[i].st, 0, sizeof(w[i].st));
        args[i] = (struct worker_arg){&ph, &w[i]};
        if (pthread_create(&w[i].th, NULL, worker_main, &args[i]) != 0)
            break;
        started++;
    }
    sleep_s(ramp);
    uint64_t h0 = 0, l0 = 0, h1 = 0, l1 = 0, view = 0;
    (void)net_tip(net, &h0, &l0, NULL);
    double cpu0 = nodes_cpu(net);
    double t0 = now_s();
    atomic_store(&ph.t0, t0);
    sleep_s(secs);
    double t1 = now_s();
    atomic_store(&ph.t1, t1);
    double cpu1 = nodes_cpu(net);
    (void)net_tip(net, &h1, &l1, &view);
    atomic_store(&ph.stop, true);
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].th, NULL);
    free(args);

    memset(r, 0, sizeof(*r));
    r->view = view;
    r->name = name;
    r->clients = n;
    r->secs = t1 - t0;
    r->offered = rate;
    size_t n_lat = 0;
    for (unsigned i = 0; i < n; i++) {
        for (int k = 0; k < K_N; k++) {
            r->accepted += w[i].st.ok[k];
            r->by_kind[k] += w[i].st.ok[k];
            r->rejected += w[i].st.rej[k];
        }
        r->busy += w[i].st.busy;
        r->timeout += w[i].st.timeout;
        r->errors += w[i].st.neterr + w[i].st.other;
        n_lat += w[i].st.n_lat;
        if (w[i].st.last_rej[0])
            snprintf(r->last_rej, sizeof(r->last_rej), "%s", w[i].st.last_rej);
    }
    double *lat = malloc((n_lat ? n_lat : 1) * sizeof(*lat));
    size_t at = 0;
    for (unsigned i = 0; i < n; i++) {
        if (lat != NULL && w[i].st.n_lat)
            memcpy(lat + at, w[i].st.lat, w[i].st.n_lat * sizeof(*lat));
        at += w[i].st.n_lat;
        free(w[i].st.lat);
        w[i].st.lat = NULL;
        w[i].st.n_lat = w[i].st.cap_lat = 0;
    }
    if (lat != NULL && n_lat) {
        qsort(lat, n_lat, sizeof(*lat), cmp_double);
        r->p50 = pct(lat, n_lat, 50);
        r->p95 = pct(lat, n_lat, 95);
        r->p99 = pct(lat, n_lat, 99);
        r->max_ms = lat[n_lat - 1];
    }
    free(lat);
    r->tps = (double)r->accepted / r->secs;
    r->batch = h1 > h0 ? (double)(l1 - l0) / (double)(h1 - h0) : 0;
    r->cpu_ms_per_tx =
        r->accepted ? (cpu1 - cpu0) * 1000.0 / (double)r->accepted : 0;
    r->hwm_kb = nodes_max_kb(net, "VmHWM:");
    r->rss_kb = nodes_max_kb(net, "VmRSS:");
    print_result(r);
    return 0;
}

/* This machine's signature rates, measured by bench_bound. */
struct bound {
    double sign_s, verify_s, cores, tps;
    char json[512];
};

/* Runs bench_bound (nodes, batch); fills b (tps 0 on failure). */
static void run_bound(const char *bin, unsigned nodes, double batch,
                      struct bound *b)
{
    char cmd[PATH_MAX_B + 64];
    memset(b, 0, sizeof(*b));
    snprintf(cmd, sizeof(cmd), "%s --nodes %u --batch %.1f", bin, nodes,
             batch < 1 ? 1 : batch);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    if (fgets(b->json, (int)sizeof(b->json), p) == NULL)
        b->json[0] = '\0';
    pclose(p);
    b->json[strcspn(b->json, "\n")] = '\0';
    json_error_t je;
    json_t *j = json_loads(b->json, 0, &je);
    b->sign_s = json_number_value(json_object_get(j, "sign_per_s"));
    b->verify_s = json_number_value(json_object_get(j, "verify_per_s"));
    b->cores = json_number_value(json_object_get(j, "cores"));
    b->tps = json_number_value(json_object_get(j, "bound_tps"));
    json_decref(j);
}

/* The bound at another batch size from the same measured rates: the
 * formula of tests/bench/bench_bound.c (1 client sign + 3n/B replica signs,
 * n tx verifies + 3n(n-1)/B vote verifies per transaction). */
static double bound_at(const struct bound *b, unsigned nodes, double batch)
{
    double n = nodes, B = batch < 1 ? 1 : batch;
    if (b->sign_s <= 0 || b->verify_s <= 0 || b->cores <= 0)
        return 0;
    double cpu = (1.0 + 3.0 * n / B) / b->sign_s +
                 (n + 3.0 * n * (n - 1.0) / B) / b->verify_s;
    return b->cores / cpu;
}

/* The 1-minute load average: other work on the machine skews a run. */
static double loadavg(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1)
            l = 0;
        fclose(f);
    }
    return l;
}

static int parse_levels(const char *s, unsigned *lv, unsigned *n)
{
    *n = 0;
    while (*s && *n < LEVELS_MAX) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > 4096)
            return -1;
        lv[(*n)++] = (unsigned)v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            return -1;
    }
    return *n ? 0 : -1;
}

#define SMALL_CONSENTS 10000.0

/* Set by SIGUSR1: the growth phase stops after its running chunk. */
static volatile sig_atomic_t grow_stop;

static void on_usr1(int sig)
{
    (void)sig;
    grow_stop = 1;
}

/* The growth phase's second trial: registered, approved, its first n bench
 * sites authorized. */
static int setup_small(const struct net *net, struct client *c0,
                       struct signer *sponsor, struct signer *ethics,
                       const struct worker *w, unsigned n, const char *trial)
{
    uint8_t *tx;
    size_t len;
    if (build_protocol(sponsor, net->chain_id, lg_now_ms(), trial, &tx, &len) !=
            LG_OK ||
        setup_submit(c0, tx, len, "protocol") != 0 ||
        build_approve(ethics, net->chain_id, lg_now_ms(), trial, &tx, &len) !=
            LG_OK ||
        setup_submit(c0, tx, len, "approval") != 0)
        return -1;
    for (unsigned i = 0; i < n; i++)
        if (build_authorize(sponsor, net->chain_id, lg_now_ms(), trial,
                            w[i].cs.site->k.name, &tx, &len) != LG_OK ||
            setup_submit(c0, tx, len, "site authorization") != 0)
            return -1;
    return 0;
}

struct run_opts {
    unsigned levels[LEVELS_MAX], n_levels;
    double secs, overload;
    const char *bound_bin;
    uint64_t grow_to;
    double grow_secs;
    double rate; /* the latency phase's rate; 0: half the peak's */
};

static int run(const char *dir, const struct run_opts *o)
{
    struct net net;
    struct signer main_sp, ethics;
    struct sponsors sp = {0};
    struct worker *w = NULL;
    struct client *c0 = NULL;
    char run_id[16], trial[REGISTRY_ID_MAX + 1], name[64];
    char small[REGISTRY_ID_MAX + 1];
    int rc = 1;

    if (net_load(dir, &net) != 0)
        return 1;
    size_t n_sites = count_keys(dir, "bsite", 3, GENESIS_MEMBERS_MAX);
    size_t n_spons = count_keys(dir, "bspon", 2, SPONSORS_MAX);
    unsigned max_level = 0;
    for (unsigned i = 0; i < o->n_levels; i++)
        max_level = o->levels[i] > max_level ? o->levels[i] : max_level;
    if (n_sites < max_level) {
        fprintf(stderr,
                "bench_load: %zu bench sites, %u clients wanted (bench_load "
                "prepare --sites)\n",
                n_sites, max_level);
        goto out_net;
    }
    if (load_key(dir, MAIN_SPONSOR, &main_sp) != 0)
        goto out_net;
    if (load_key(dir, "ethics", &ethics) != 0)
        goto out_main;
    sp.s = calloc(n_spons ? n_spons : 1, sizeof(*sp.s));
    w = calloc(n_sites, sizeof(*w));
    if (sp.s == NULL || w == NULL)
        goto out_keys;
    for (size_t i = 0; i < n_spons; i++) {
        snprintf(name, sizeof(name), "bspon-%02u", (unsigned)i);
        if (load_key(dir, name, &sp.s[sp.n]) != 0)
            goto out_keys;
        sp.n++;
    }
    snprintf(run_id, sizeof(run_id), "%" PRIx64,
             wall_us() / 1000 % 0xffffffffu);
    snprintf(trial, sizeof(trial), "BENCH-%s", run_id);
    snprintf(small, sizeof(small), "BENCH-%s-10K", run_id);
    size_t n_w = 0;
    for (; n_w < n_sites; n_w++) {
        struct worker *x = &w[n_w];
        x->cs.site = calloc(1, sizeof(*x->cs.site));
        snprintf(name, sizeof(name), "bsite-%03u", (unsigned)n_w);
        if (x->cs.site == NULL || load_key(dir, name, x->cs.site) != 0)
            goto out_workers;
        x->cs.idx = (unsigned)n_w;
        x->cs.rng = 0x9e3779b97f4a7c15ull * (n_w + 1) ^ wall_us();
        x->cs.run_id = run_id;
        x->cs.trial = trial;
        x->url = net.urls[n_w % net.n_nodes];
    }

    /* Setup: the main trial, approved, every bench site authorized. */
    double ts = now_s();
    uint8_t *tx;
    size_t len;
    if (client_open(net.urls[0], CLIENT_TO_MS, &c0) != LG_OK) {
        fprintf(stderr, "bench_load: node 0 unreachable at %s\n", net.urls[0]);
        goto out_workers;
    }
    if (build_protocol(&main_sp, net.chain_id, lg_now_ms(), trial, &tx, &len) !=
            LG_OK ||
        setup_submit(c0, tx, len, "protocol") != 0 ||
        build_approve(&ethics, net.chain_id, lg_now_ms(), trial, &tx, &len) !=
            LG_OK ||
        setup_submit(c0, tx, len, "approval") != 0)
        goto out_workers;
    for (size_t i = 0; i < n_sites; i++) {
        if (build_authorize(&main_sp, net.chain_id, lg_now_ms(), trial,
                            w[i].cs.site->k.name, &tx, &len) != LG_OK ||
            setup_submit(c0, tx, len, "site authorization") != 0)
            goto out_workers;
    }
    fprintf(stderr,
            "bench_load: trial %s approved, %zu sites authorized in %.1f s; "
            "%u nodes, %zu sponsors\n",
            trial, n_sites, now_s() - ts, net.n_nodes, sp.n);

    struct result warm, sat[LEVELS_MAX], half, over, grow;
    unsigned top = 0;
    for (unsigned i = 0; i < o->n_levels; i++)
        top = o->levels[i] > top ? o->levels[i] : top;
    double load0 = loadavg();
    if (run_phase("warm-up", &net, w, top, &sp, 0, 3, &warm) != 0)
        goto out_workers;
    /* The rates just before the load; the bound is then taken at the
     * peak's batch size (bound_at), the warm-up's is printed here. */
    struct bound bd;
    run_bound(o->bound_bin, net.n_nodes, warm.batch, &bd);
    fprintf(stderr, "  bound      %s\n", bd.json);
    unsigned best = 0;
    for (unsigned i = 0; i < o->n_levels; i++) {
        if (run_phase("saturate", &net, w, o->levels[i], &sp, 0, o->secs,
                      &sat[i]) != 0)
            goto out_workers;
        if (sat[i].tps > sat[best].tps)
            best = i;
    }
    const struct result *peak = &sat[best];
    double bound = bound_at(&bd, net.n_nodes, peak->batch);
    fprintf(stderr, "  bound      %.0f tx/s at the peak's batch %.1f\n", bound,
            peak->batch);
    if (run_phase("half-rate", &net, w, peak->clients, &sp,
                  o->rate > 0 ? o->rate : peak->tps / 2, o->secs, &half) != 0)
        goto out_workers;
    unsigned n_over = (unsigned)(peak->clients * o->overload + 0.5);
    if (n_over > n_sites) {
        fprintf(stderr, "  overload capped at %zu clients (bench sites)\n",
                n_sites);
        n_over = (unsigned)n_sites;
    }
    if (run_phase("overload", &net, w, n_over, &sp, 0, o->secs, &over) != 0)
        goto out_workers;
    uint64_t grown = 0;
    double grow_s = 0;
    if (o->grow_to > 0) {
        uint64_t h, l = 0;
        double g0 = now_s();
        (void)net_tip(&net, &h, &l, NULL);
        if (setup_small(&net, c0, &main_sp, &ethics, w, peak->clients, small) !=
            0)
            goto out_workers;
        double share = l < o->grow_to
                           ? SMALL_CONSENTS / (0.8 * (double)(o->grow_to - l))
                           : 1;
        for (unsigned i = 0; i < peak->clients; i++) {
            w[i].cs.small_trial = small;
            w[i].cs.small_ppm = (uint32_t)(1e6 * (share < 1 ? share : 1));
        }
        uint64_t l_start = l;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_usr1;
        sa.sa_flags = SA_RESTART; /* nng's and our waits carry on */
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGUSR1, &sa, NULL);
        while (l < o->grow_to && !grow_stop && now_s() - g0 < o->grow_secs) {
            double left = o->grow_secs - (now_s() - g0);
            /* Chunks of at most a minute, sized so the target is not
             * overshot by much: by the rate of the growth so far (the
             * rate falls as the ledger grows; sized by the peak's, the
             * last chunks would each cover a shrinking share of the
             * rest), else the peak's. */
            double el = now_s() - g0;
            double r =
                el > 1 && l > l_start ? (double)(l - l_start) / el : peak->tps;
            double need = r > 0 ? (double)(o->grow_to - l) / r + 1 : 60;
            double chunk = need < 60 ? need : 60;
            chunk = chunk < left ? chunk : left;
            chunk = chunk < 2 ? 2 : chunk;
            if (left < 2 || run_phase("grow", &net, w, peak->clients, &sp, 0,
                                      chunk, &grow) != 0)
                break;
            (void)net_tip(&net, &h, &l, NULL);
            /* The rate over the whole phase so far: it falls as the
             * ledger grows, so the time left it gives is optimistic. */
            el = now_s() - g0;
            double rate = el > 0 ? (double)(l - l_start) / el : 0;
            fprintf(stderr,
                    "  grow       ledger at %" PRIu64
                    " txs, %.0f tx/s over %.0f s, %.0f s to go at that "
                    "rate\n",
                    l, rate, el,
                    rate > 0 && l < o->grow_to ? (double)(o->grow_to - l) / rate
                                               : 0);
        }
        if (grow_stop)
            fprintf(stderr,
                    "  grow       stopped by SIGUSR1 at %" PRIu64 " txs\n", l);
        grown = l;
        grow_s = now_s() - g0;
    }

    uint64_t rejected = over.rejected + half.rejected;
    for (unsigned i = 0; i < o->n_levels; i++)
        rejected += sat[i].rejected;
    printf("{\"nodes\":%u,\"tps\":%.1f,\"p50_ms\":%.2f,\"p95_ms\":%.2f,"
           "\"p99_ms\":%.2f,\"bound_tps\":%.0f,\"ratio\":%.3f,"
           "\"peak_clients\":%u,\"batch\":%.1f,\"cpu_ms_per_tx\":%.3f,"
           "\"half_rate_tps\":%.1f,\"sat_p50_ms\":%.2f,\"sat_p99_ms\":%.2f,"
           "\"overload_clients\":%u,\"overload_tps\":%.1f,"
           "\"overload_ratio\":%.3f,\"peak_saturated\":%s,"
           "\"overload_p99_ms\":%.1f,"
           "\"max_rss_kb\":%ld,\"rejected\":%" PRIu64 ",\"busy\":%" PRIu64
           ",\"timeouts\":%" PRIu64 ",\"sign_per_s\":%.0f,"
           "\"verify_per_s\":%.0f,\"loadavg\":%.2f",
           net.n_nodes, peak->tps, half.p50, half.p95, half.p99, bound,
           bound > 0 ? peak->tps / bound : 0, peak->clients, peak->batch,
           peak->cpu_ms_per_tx, half.tps, peak->p50, peak->p99, n_over,
           over.tps, peak->tps > 0 ? over.tps / peak->tps : 0,
           over.tps <= 1.1 * peak->tps ? "true" : "false", over.p99,
           over.hwm_kb, rejected, over.busy + peak->busy + half.busy,
           over.timeout + peak->timeout + half.timeout, bd.sign_s, bd.verify_s,
           (load0 + loadavg()) / 2);
    printf(",\"levels\":[");
    for (unsigned i = 0; i < o->n_levels; i++)
        printf("%s{\"clients\":%u,\"tps\":%.1f,\"p50_ms\":%.2f}", i ? "," : "",
               sat[i].clients, sat[i].tps, sat[i].p50);
    printf("]");
    if (o->grow_to > 0)
        printf(",\"grown_to\":%" PRIu64
               ",\"grow_s\":%.0f,\"main_trial\":\"%s\",\"small_trial\":\"%s\"",
               grown, grow_s, trial, small);
    printf("}\n");
    fflush(stdout);
    rc = 0;

out_workers:
    client_close(c0);
    for (size_t i = 0; i < n_sites; i++) {
        client_close(w[i].c);
        if (w[i].cs.site != NULL) {
            if (i < n_w)
                free_key(w[i].cs.site);
            free(w[i].cs.site);
        }
    }
out_keys:
    for (size_t i = 0; i < sp.n; i++)
        free_key(&sp.s[i]);
    free(sp.s);
    free(w);
    free_key(&ethics);
out_main:
    free_key(&main_sp);
out_net:
    genesis_free(net.g);
    free(net.g);
    return rc;
}

/* ---- selftest: the mix through an in-process registry and ledger ---------
 */

static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

#define ST_SITES    64
#define ST_SPONSORS 4

struct selftest {
    char dir[64];
    struct signer sponsor, ethics, auditor, sites[ST_SITES], spons[ST_SPONSORS];
    unsigned n_printed;
    struct genesis *g;
    struct store *store;
    struct registry *reg;
    struct ledger *l;
    double sign_s, apply_s;
};

static int st_key(struct selftest *t, struct signer *s, const char *name,
                  enum member_role role, json_t *members)
{
    char path[PATH_MAX_B], err[512], hex[65];
    snprintf(path, sizeof(path), "%s/%s.key", t->dir, name);
    memset(s, 0, sizeof(*s));
    if (keyfile_generate(path, "member", name, role, NULL, &s->k, err,
                         sizeof(err)) != LG_OK) {
        fprintf(stderr, "selftest: %s\n", err);
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    signer_init_nonce(s);
    lg_hex(s->k.public_key, 32, hex);
    json_t *m = json_object();
    json_object_set_new(m, "name", json_string(name));
    json_object_set_new(m, "role", json_string(role_name(role)));
    json_object_set_new(m, "organisation", json_string("Selftest"));
    json_object_set_new(m, "public_key", json_string(hex));
    json_array_append_new(members, m);
    return 0;
}

static int st_open(struct selftest *t)
{
    char err[512], hex[65], name[32];
    uint8_t pk[32], sk[64];
    snprintf(t->dir, sizeof(t->dir), "/tmp/bench_load.XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    json_t *root = json_object(), *reps = json_array(), *mem = json_array();
    json_object_set_new(root, "chain_name", json_string("selftest"));
    json_object_set_new(root, "created", json_string("2026-11-21T00:00:00Z"));
    for (int i = 0; i < 4; i++) {
        char url[64];
        crypto_sign_keypair(pk, sk);
        lg_hex(pk, 32, hex);
        snprintf(name, sizeof(name), "node%d", i);
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", 27000 + 10 * i);
        json_t *r = json_object();
        json_object_set_new(r, "id", json_integer(i));
        json_object_set_new(r, "name", json_string(name));
        json_object_set_new(r, "public_key", json_string(hex));
        json_object_set_new(r, "peer_url", json_string(url));
        json_array_append_new(reps, r);
    }
    json_object_set_new(root, "replicas", reps);
    int rv = st_key(t, &t->sponsor, "sponsor", ROLE_SPONSOR, mem);
    rv = rv ? rv : st_key(t, &t->ethics, "ethics", ROLE_ETHICS_BOARD, mem);
    rv = rv ? rv : st_key(t, &t->auditor, GRANTEE, ROLE_AUDITOR, mem);
    for (int i = 0; rv == 0 && i < ST_SITES; i++) {
        snprintf(name, sizeof(name), "bsite-%03d", i);
        rv = st_key(t, &t->sites[i], name, ROLE_SITE, mem);
    }
    for (int i = 0; rv == 0 && i < ST_SPONSORS; i++) {
        snprintf(name, sizeof(name), "bspon-%02d", i);
        rv = st_key(t, &t->spons[i], name, ROLE_SPONSOR, mem);
    }
    json_object_set_new(root, "members", mem);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    t->g = calloc(1, sizeof(*t->g));
    if (rv != 0 || text == NULL || t->g == NULL ||
        genesis_parse((const unsigned char *)text, strlen(text), t->g, err,
                      sizeof(err)) != LG_OK) {
        fprintf(stderr, "selftest: genesis: %s\n", rv ? "keys" : err);
        free(text);
        return -1;
    }
    free(text);
    char sdir[PATH_MAX_B];
    snprintf(sdir, sizeof(sdir), "%s/data", t->dir);
    if (store_open(sdir, true, &t->store, err, sizeof(err)) != LG_OK ||
        registry_new(t->g, &t->reg) != LG_OK ||
        ledger_open(t->store, t->g, t->reg, &t->l, err, sizeof(err)) != LG_OK) {
        fprintf(stderr, "selftest: open: %s\n", err);
        return -1;
    }
    return 0;
}

static void st_close(struct selftest *t)
{
    ledger_close(t->l);
    registry_free(t->reg);
    store_close(t->store);
    if (t->g) {
        genesis_free(t->g);
        free(t->g);
    }
    free_key(&t->sponsor);
    free_key(&t->ethics);
    free_key(&t->auditor);
    for (int i = 0; i < ST_SITES; i++)
        free_key(&t->sites[i]);
    for (int i = 0; i < ST_SPONSORS; i++)
        free_key(&t->spons[i]);
    if (t->dir[0])
        nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Applies one block of txs (taken) and reports each tx's acceptance. */
static int st_apply(struct selftest *t, uint8_t **txs, const size_t *lens,
                    uint32_t n, bool *accepted)
{
    struct pbft_request reqs[ST_SITES + 4];
    struct pbft_execute ex;
    struct ledger_tip tip;
    uint8_t hash[32];
    ledger_tip(t->l, &tip);
    for (uint32_t i = 0; i < n; i++) {
        memset(&reqs[i], 0, sizeof(reqs[i]));
        reqs[i].data = txs[i];
        reqs[i].len = (uint32_t)lens[i];
    }
    memset(&ex, 0, sizeof(ex));
    ex.seq = tip.height + 1;
    ex.timestamp_ms = lg_now_ms();
    ex.n_requests = n;
    ex.requests = reqs;
    double a0 = now_s();
    int rv = ledger_apply(t->l, &ex, hash);
    t->apply_s += now_s() - a0;
    for (uint32_t i = 0; i < n; i++)
        free(txs[i]);
    if (rv != LG_OK) {
        fprintf(stderr, "selftest: apply: %s\n", ledger_errmsg(t->l));
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        Tc__LedgerEntry e = TC__LEDGER_ENTRY__INIT;
        accepted[i] = false;
        if (ledger_entry(t->l, tip.log_size + i, &e) != LG_OK)
            continue;
        Tc__TxResult *res =
            tc__tx_result__unpack(NULL, e.result.len, e.result.data);
        accepted[i] = res && res->status == TC__TX_STATUS__TX_ACCEPTED;
        if (res && !accepted[i] && t->n_printed++ < 5)
            fprintf(stderr, "selftest: tx %u rejected: %s %s\n", i, res->code,
                    res->message);
        if (res)
            tc__tx_result__free_unpacked(res, NULL);
        ledger_entry_clear(&e);
    }
    return 0;
}

static int selftest(unsigned n_txs)
{
    struct selftest t;
    struct client_state cs[ST_SITES];
    struct sponsors sp;
    const char *trial = "BENCH-selftest";
    uint8_t *txs[ST_SITES + 4];
    size_t lens[ST_SITES + 4];
    bool acc[ST_SITES + 4];
    uint64_t ok[K_N] = {0}, bad = 0, done = 0;
    int rc = 1;

    memset(&t, 0, sizeof(t));
    if (st_open(&t) != 0)
        goto out;
    sp.s = t.spons;
    sp.n = ST_SPONSORS;
    uint64_t tms = lg_now_ms();
    uint32_t n = 0;
    if (build_protocol(&t.sponsor, t.g->chain_id, tms, trial, &txs[n],
                       &lens[n]) != LG_OK)
        goto out;
    n++;
    if (build_approve(&t.ethics, t.g->chain_id, tms, trial, &txs[n],
                      &lens[n]) != LG_OK)
        goto out;
    n++;
    if (st_apply(&t, txs, lens, n, acc) != 0 || !acc[0] || !acc[1])
        goto out;
    n = 0;
    for (int i = 0; i < ST_SITES; i++, n++)
        if (build_authorize(&t.sponsor, t.g->chain_id, tms, trial,
                            t.sites[i].k.name, &txs[n], &lens[n]) != LG_OK)
            goto out;
    if (st_apply(&t, txs, lens, n, acc) != 0)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        if (!acc[i])
            goto out;
    memset(cs, 0, sizeof(cs));
    for (unsigned i = 0; i < ST_SITES; i++) {
        cs[i].idx = i;
        cs[i].site = &t.sites[i];
        cs[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
        cs[i].run_id = "st";
        cs[i].trial = trial;
    }
    /* Each round: one tx per client, one block, like the network's one
     * outstanding request per client. */
    while (done < n_txs) {
        n = 0;
        double s0 = now_s();
        for (unsigned i = 0; i < ST_SITES && done + n < n_txs; i++, n++)
            if (mix_next(&cs[i], &sp, t.g->chain_id, &txs[n], &lens[n]) !=
                LG_OK)
                goto out;
        t.sign_s += now_s() - s0;
        if (st_apply(&t, txs, lens, n, acc) != 0)
            goto out;
        for (uint32_t i = 0; i < n; i++) {
            if (acc[i])
                ok[cs[i].kind]++;
            else
                bad++;
            mix_done(&cs[i], acc[i]);
        }
        done += n;
    }
    printf("{\"selftest_txs\":%" PRIu64 ",\"consent\":%" PRIu64
           ",\"dataset\":%" PRIu64 ",\"grant\":%" PRIu64
           ",\"protocol\":%" PRIu64 ",\"rejected\":%" PRIu64
           ",\"build_sign_tps\":%.0f,\"apply_tps\":%.0f,"
           "\"block_size\":%d}\n",
           done, ok[K_CONSENT], ok[K_DATASET], ok[K_GRANT], ok[K_PROTOCOL], bad,
           (double)done / t.sign_s, (double)done / t.apply_s, ST_SITES);
    rc = bad == 0 && ok[K_DATASET] && ok[K_GRANT] && ok[K_PROTOCOL] ? 0 : 1;
out:
    st_close(&t);
    return rc;
}

/* ---- main ----------------------------------------------------------------
 */

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_load prepare DIR [--sites K] [--sponsors S]\n"
            "       bench_load run DIR [--levels 16,32,64,128] [--seconds S] "
            "[--overload F] [--bound PATH] [--grow-to N] [--grow-seconds S]\n"
            "                      [--rate R]\n"
            "       bench_load selftest [--txs N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (crypto_setup() != LG_OK) {
        fprintf(stderr, "bench_load: libsodium failed to start\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "selftest")) {
        unsigned n = 2000;
        for (int i = 2; i + 1 < argc; i += 2)
            if (!strcmp(argv[i], "--txs"))
                n = (unsigned)atoi(argv[i + 1]);
            else
                return usage();
        return selftest(n ? n : 1);
    }
    if (argc < 3)
        return usage();
    const char *dir = argv[2];
    if (!strcmp(cmd, "prepare")) {
        unsigned sites = 64, sponsors = 8;
        for (int i = 3; i + 1 < argc; i += 2)
            if (!strcmp(argv[i], "--sites"))
                sites = (unsigned)atoi(argv[i + 1]);
            else if (!strcmp(argv[i], "--sponsors"))
                sponsors = (unsigned)atoi(argv[i + 1]);
            else
                return usage();
        return prepare(dir, sites,
                       sponsors > SPONSORS_MAX ? SPONSORS_MAX : sponsors);
    }
    if (!strcmp(cmd, "run")) {
        struct run_opts o = {.secs = 15,
                             .overload = 4,
                             .bound_bin = "build/bin/bench_bound",
                             .grow_secs = 3600};
        if (parse_levels("16,32,64,128", o.levels, &o.n_levels) != 0)
            return 1;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--levels")) {
                if (parse_levels(argv[i + 1], o.levels, &o.n_levels) != 0)
                    return usage();
            } else if (!strcmp(argv[i], "--seconds")) {
                o.secs = atof(argv[i + 1]);
            } else if (!strcmp(argv[i], "--overload")) {
                o.overload = atof(argv[i + 1]);
            } else if (!strcmp(argv[i], "--bound")) {
                o.bound_bin = argv[i + 1];
            } else if (!strcmp(argv[i], "--grow-to")) {
                o.grow_to = strtoull(argv[i + 1], NULL, 10);
            } else if (!strcmp(argv[i], "--grow-seconds")) {
                o.grow_secs = atof(argv[i + 1]);
            } else if (!strcmp(argv[i], "--rate")) {
                o.rate = atof(argv[i + 1]);
            } else {
                return usage();
            }
        }
        if (o.secs < 1 || o.overload < 1 || o.rate < 0)
            return usage();
        return run(dir, &o);
    }
    return usage();
}
