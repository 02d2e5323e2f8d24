/*
 * util.c - shared helpers of the trialchain tool (see util.h).
 */
#include "util.h"

#include "cmd.h"
#include "crypto.h"
#include "tx.h"
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void util_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("trialchain: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void util_note(const char *fmt, ...)
{
    va_list ap;
    if (cli.json)
        return;
    va_start(ap, fmt);
    fputs("trialchain: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int util_read_file(const char *path, unsigned char **out, size_t *len)
{
    int rv = lg_read_file(path, UTIL_FILE_MAX, out, len);
    if (rv == 0)
        return EXIT_OK;
    if (rv == LG_ENOTFOUND)
        util_err("cannot read %s: no such file (check the path)", path);
    else if (rv == LG_ETOOBIG)
        util_err("cannot read %s: larger than %u MiB", path,
                 UTIL_FILE_MAX >> 20);
    else
        util_err("cannot read %s: %s (check that it is a readable file)", path,
                 strerror(errno ? errno : EIO));
    return EXIT_USAGE;
}

char *util_hex_alloc(const uint8_t *in, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    lg_hex(in, n, s);
    return s;
}

bool util_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n)
        return false;
    return lg_unhex(hex, out, n) == 0;
}

/* ---- progress bar -------------------------------------------------------- */

void util_progress_start(struct util_progress *p, const char *label,
                         uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->label = label;
    p->total = total;
    p->enabled =
        total >= UTIL_PROGRESS_MIN && isatty(STDERR_FILENO) && !cli.json;
}

static void progress_draw(struct util_progress *p)
{
    const int width = 40;
    uint64_t pct = p->total ? p->done * 100 / p->total : 100;
    int fill = (int)(pct * (uint64_t)width / 100);
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %3llu%% %llu/%llu MiB", (unsigned long long)pct,
            (unsigned long long)(p->done >> 20),
            (unsigned long long)(p->total >> 20));
    fflush(stderr);
}

void util_progress_add(struct util_progress *p, uint64_t n)
{
    if (!p)
        return;
    p->done += n;
    if (!p->enabled)
        return;
    /* redraw at most ten times a second: a terminal is slow */
    unsigned long long now = lg_mono_ms();
    if (now - p->last_ms < 100)
        return;
    p->last_ms = now;
    progress_draw(p);
}

void util_progress_end(struct util_progress *p)
{
    if (!p || !p->enabled)
        return;
    p->done = p->total;
    progress_draw(p);
    fputc('\n', stderr);
}

/* ---- hashing ------------------------------------------------------------- */

static int hash_fd(int fd, const char *path, struct crypto_sha256_ctx *c,
                   uint64_t *size, struct util_progress *p)
{
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        util_err("out of memory");
        return EXIT_USAGE;
    }
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            util_err("cannot read %s: %s", path, strerror(errno));
            free(buf);
            return EXIT_USAGE;
        }
        if (n == 0)
            break;
        crypto_sha256_update(c, buf, (size_t)n);
        total += (uint64_t)n;
        util_progress_add(p, (uint64_t)n);
    }
    free(buf);
    *size = total;
    return EXIT_OK;
}

static int open_regular(const char *path, int *fd_out, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        util_err("cannot open %s: %s (check the path and permissions)", path,
                 strerror(errno));
        return EXIT_USAGE;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        util_err("%s is not a regular file", path);
        close(fd);
        return EXIT_USAGE;
    }
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return EXIT_OK;
}

int util_hash_file(const char *path, uint8_t out[32], uint64_t *size,
                   struct util_progress *p)
{
    int fd;
    uint64_t expect;
    int rc = open_regular(path, &fd, &expect);
    if (rc != EXIT_OK)
        return rc;
    struct util_progress local;
    if (!p) {
        util_progress_start(&local, path, expect);
        p = &local;
    }
    struct crypto_sha256_ctx c;
    crypto_sha256_init(&c);
    rc = hash_fd(fd, path, &c, size, p);
    close(fd);
    if (rc == EXIT_OK) {
        crypto_sha256_final(&c, out);
        if (p == &local)
            util_progress_end(p);
    }
    return rc;
}

/* Files found under a directory, relative paths. */
struct file_list {
    char **paths;
    uint64_t *sizes;
    size_t n, cap;
    uint64_t total;
};

static int list_push(struct file_list *l, const char *rel, uint64_t size)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **np = realloc(l->paths, cap * sizeof(*np));
        if (!np)
            return -1;
        l->paths = np;
        uint64_t *ns = realloc(l->sizes, cap * sizeof(*ns));
        if (!ns)
            return -1;
        l->sizes = ns;
        l->cap = cap;
    }
    l->paths[l->n] = strdup(rel);
    if (!l->paths[l->n])
        return -1;
    l->sizes[l->n++] = size;
    l->total += size;
    return 0;
}

static void list_free(struct file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    free(l->sizes);
}

/* Walks root/rel with an explicit depth bound (no unbounded recursion). */
static int walk_dir(const char *root, const char *rel, struct file_list *l,
                    int depth)
{
    if (depth > 32) {
        util_err("%s/%s: directories nested deeper than 32 levels", root, rel);
        return EXIT_USAGE;
    }
    char dirpath[4096];
    snprintf(dirpath, sizeof(dirpath), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dirpath);
    if (!d) {
        util_err("cannot open directory %s: %s", dirpath, strerror(errno));
        return EXIT_USAGE;
    }
    int rc = EXIT_OK;
    struct dirent *e;
    while (rc == EXIT_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[4096], full[8192];
        snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        if (lstat(full, &st) != 0) {
            util_err("cannot stat %s: %s", full, strerror(errno));
            rc = EXIT_USAGE;
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(root, sub, l, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            if (list_push(l, sub, (uint64_t)st.st_size) != 0) {
                util_err("out of memory");
                rc = EXIT_USAGE;
            }
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int util_hash_dir(const char *path, uint8_t out[32], uint64_t *size,
                  uint64_t *n_files, char **manifest)
{
    struct file_list l = {0};
    int rc = walk_dir(path, "", &l, 0);
    if (rc != EXIT_OK)
        goto out_free_list;
    qsort(l.paths, l.n, sizeof(*l.paths), cmp_str);
    struct util_progress p;
    util_progress_start(&p, path, l.total);
    struct crypto_sha256_ctx mc;
    crypto_sha256_init(&mc);
    size_t mlen = 0, mcap = 0;
    char *mtext = NULL;
    for (size_t i = 0; i < l.n && rc == EXIT_OK; i++) {
        char full[8192];
        snprintf(full, sizeof(full), "%s/%s", path, l.paths[i]);
        uint8_t h[32];
        uint64_t sz;
        rc = util_hash_file(full, h, &sz, &p);
        if (rc != EXIT_OK)
            break;
        char hex[65];
        lg_hex(h, 32, hex);
        size_t need = 64 + 2 + strlen(l.paths[i]) + 1;
        if (mlen + need + 1 > mcap) {
            size_t cap = (mcap + need + 1) * 2;
            char *nm = realloc(mtext, cap);
            if (!nm) {
                util_err("out of memory");
                rc = EXIT_USAGE;
                break;
            }
            mtext = nm;
            mcap = cap;
        }
        int w =
            snprintf(mtext + mlen, mcap - mlen, "%s  %s\n", hex, l.paths[i]);
        crypto_sha256_update(&mc, mtext + mlen, (size_t)w);
        mlen += (size_t)w;
    }
    if (rc == EXIT_OK) {
        util_progress_end(&p);
        crypto_sha256_final(&mc, out);
        *size = l.total;
        *n_files = l.n;
        if (manifest) {
            *manifest = mtext ? mtext : strdup("");
            mtext = NULL;
        }
    }
    free(mtext);
out_free_list:
    list_free(&l);
    return rc;
}

/* ---- time ---------------------------------------------------------------- */

void util_fmt_time(uint64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool util_parse_date(const char *s, uint64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    bool bare = false;
    if (!end || *end) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, "%Y-%m-%d", &tm);
        if (!end || *end)
            return false;
        bare = true;
    }
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    *ms = (uint64_t)t * 1000u + (bare ? 86400000u - 1u : 0u);
    return true;
}

/* ---- output -------------------------------------------------------------- */

void util_print_json(json_t *j)
{
    if (!j) {
        util_err("out of memory");
        return;
    }
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(j);
}

char **util_split(const char *s, size_t *n)
{
    *n = 0;
    size_t cap = 1;
    for (const char *q = s; *q; q++)
        cap += *q == ',';
    char **v = calloc(cap, sizeof(*v));
    if (!v)
        return NULL;
    const char *start = s;
    for (;;) {
        const char *comma = strchr(start, ',');
        size_t len = comma ? (size_t)(comma - start) : strlen(start);
        while (len && (*start == ' ' || *start == '\t')) {
            start++;
            len--;
        }
        while (len && (start[len - 1] == ' ' || start[len - 1] == '\t'))
            len--;
        if (len) {
            v[*n] = strndup(start, len);
            if (!v[*n]) {
                util_free_list(v, *n);
                return NULL;
            }
            (*n)++;
        }
        if (!comma)
            break;
        start = comma + 1;
    }
    return v;
}

void util_free_list(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- session with a node ------------------------------------------------- */

static int unreachable(struct sess *s, int rv)
{
    util_err("cannot reach the node at %s (%s%s%s); check that it runs "
             "(scripts/testnet.sh status DIR) or pass --node URL / set "
             "TRIALCHAIN_NODE",
             cli.node_url, lg_strerror(rv), s && s->c ? ": " : "",
             s && s->c ? client_error(s->c) : "");
    return EXIT_UNREACHABLE;
}

int sess_call(struct sess *s, const Tc__ClientRequest *req,
              Tc__ClientReply **reply, const char *not_found_what)
{
    *reply = NULL;
    Tc__ClientReply *r = NULL;
    int rv = client_call(s->c, req, &r);
    if (rv == LG_ENET || rv == LG_ETIMEDOUT)
        return unreachable(s, rv);
    if (rv != 0) {
        util_err("the node at %s sent a reply that does not decode (%s)",
                 cli.node_url, client_error(s->c));
        return EXIT_UNREACHABLE;
    }
    if (r->code == TC__REPLY_CODE__REPLY_OK) {
        *reply = r;
        return EXIT_OK;
    }
    int code = EXIT_USAGE;
    if (r->code == TC__REPLY_CODE__REPLY_NOT_FOUND && not_found_what)
        util_err("%s%s%s", not_found_what, *r->error ? ": " : "", r->error);
    else
        util_err("the node refused the request: %s%s%s",
                 client_code_text(r->code), *r->error ? ": " : "", r->error);
    if (r->code == TC__REPLY_CODE__REPLY_BUSY ||
        r->code == TC__REPLY_CODE__REPLY_NOT_READY ||
        r->code == TC__REPLY_CODE__REPLY_TIMEOUT)
        code = EXIT_UNREACHABLE;
    client_reply_free(r);
    return code;
}

/* The member name the ledger knows key pk by: the genesis, else (a member
 * added or re-keyed by governance after it) the members the node reports
 * now, whatever their status: the node rejects a suspended or removed
 * member's transaction with its reason. False when neither knows the key
 * or the node cannot say. */
static bool sess_member_name(struct sess *s, const uint8_t pk[32],
                             char name[GENESIS_NAME_MAX])
{
    const struct genesis_member *m =
        s->g ? genesis_member_by_key(s->g, pk) : NULL;
    if (m) {
        snprintf(name, GENESIS_NAME_MAX, "%s", m->name);
        return true;
    }
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__QueryGovernance q = TC__QUERY_GOVERNANCE__INIT;
    Tc__Page page = TC__PAGE__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_GOVERNANCE;
    req.governance = &q;
    q.page = &page;
    page.limit = 1; /* the members come with any page of proposals */
    Tc__ClientReply *r = NULL;
    bool found = false;
    if (client_call(s->c, &req, &r) != 0)
        return false;
    for (size_t i = 0; r->code == TC__REPLY_CODE__REPLY_OK && r->governance &&
                       i < r->governance->n_members && !found;
         i++) {
        const Tc__GovMember *gm = r->governance->members[i];
        if (gm->public_key.len == 32 &&
            memcmp(gm->public_key.data, pk, 32) == 0) {
            snprintf(name, GENESIS_NAME_MAX, "%s", gm->name);
            found = true;
        }
    }
    client_reply_free(r);
    return found;
}

bool util_print_refusal(const Tc__ClientReply *r, const uint8_t tx_id[32])
{
    static const char *const member_codes[] = {
        "member-suspended", "member-removed", "key-rotated", "unknown-signer"};
    if (r->code != TC__REPLY_CODE__REPLY_BAD_REQUEST || !r->error)
        return false;
    const char *code = NULL;
    for (size_t i = 0; i < sizeof(member_codes) / sizeof(member_codes[0]);
         i++) {
        size_t n = strlen(member_codes[i]);
        if (!strncmp(r->error, member_codes[i], n) && r->error[n] == ':')
            code = member_codes[i];
    }
    if (!code)
        return false;
    const char *msg = r->error + strlen(code) + 1;
    msg += *msg == ' ';
    char id[65];
    lg_hex(tx_id, 32, id);
    if (cli.json)
        util_print_json(json_pack("{s:s, s:s, s:s, s:s, s:I, s:b}", "tx_id", id,
                                  "status", "refused", "code", code, "message",
                                  msg, "height", (json_int_t)0,
                                  "receipt_verified", false));
    else
        printf("REJECTED (%s): %s\n  tx %s (refused by the node before "
               "ordering: not on the ledger)\n",
               code, msg, id);
    return true;
}

int sess_open(struct sess *s, bool need_key)
{
    memset(s, 0, sizeof(*s));
    if (need_key) {
        if (!cli.key_path) {
            util_err("no key: pass --key FILE or set TRIALCHAIN_KEY "
                     "(make one with `trialchain keygen`)");
            return EXIT_USAGE;
        }
        char err[512] = "";
        int rv = keyfile_load(cli.key_path, &s->key, err, sizeof(err));
        if (rv != 0) {
            util_err("cannot use the key %s: %s", cli.key_path,
                     *err ? err : lg_strerror(rv));
            return EXIT_USAGE;
        }
        s->have_key = true;
    }
    int rv = client_open(cli.node_url, cli.timeout_ms, &s->c);
    if (rv != 0)
        return unreachable(s, rv);
    Tc__ClientReply *r = NULL;
    rv = client_status(s->c, &r);
    if (rv == LG_ENET || rv == LG_ETIMEDOUT)
        return unreachable(s, rv);
    if (rv != 0 || r->code != TC__REPLY_CODE__REPLY_OK || !r->status ||
        r->status->chain_id.len != 32) {
        util_err("the node at %s did not answer its status (%s)", cli.node_url,
                 rv ? client_error(s->c) : client_code_text(r->code));
        client_reply_free(r);
        return EXIT_UNREACHABLE;
    }
    memcpy(s->chain_id, r->status->chain_id.data, 32);
    s->height = r->status->height;
    client_reply_free(r);
    if (s->have_key && s->key.has_chain_id &&
        memcmp(s->key.chain_id, s->chain_id, 32) != 0) {
        char a[65], b[65];
        lg_hex(s->key.chain_id, 32, a);
        lg_hex(s->chain_id, 32, b);
        util_err("the key %s was made for another consortium (chain id "
                 "%.16s...) but the node at %s serves chain %.16s...; use "
                 "this consortium's key or point --node at your own "
                 "consortium",
                 cli.key_path, a, cli.node_url, b);
        return EXIT_USAGE;
    }
    if (s->have_key) {
        /* a key without a chain id is checked by membership instead */
        int rc = sess_genesis(s, NULL);
        if (rc != EXIT_OK)
            return rc;
        char name[GENESIS_NAME_MAX];
        if (!sess_member_name(s, s->key.public_key, name)) {
            util_err("the key %s (%s) is not a member of the consortium "
                     "\"%s\" served by %s: it belongs to another consortium, "
                     "or neither the genesis nor governance added it (see "
                     "`trialchain governance members`); use your key for "
                     "this consortium",
                     cli.key_path, s->key.name, s->g->chain_name, cli.node_url);
            return EXIT_USAGE;
        }
    }
    return EXIT_OK;
}

void sess_close(struct sess *s)
{
    client_close(s->c);
    s->c = NULL;
    if (s->have_key)
        keyfile_free(&s->key);
    s->have_key = false;
    if (s->g) {
        genesis_free(s->g);
        free(s->g);
        s->g = NULL;
    }
}

int sess_genesis(struct sess *s, const char *path)
{
    if (s->g)
        return EXIT_OK;
    struct genesis *g = calloc(1, sizeof(*g));
    if (!g) {
        util_err("out of memory");
        return EXIT_USAGE;
    }
    char err[512] = "";
    if (path) {
        if (genesis_load(path, g, err, sizeof(err)) != 0) {
            util_err("cannot use the genesis file %s: %s", path, err);
            free(g);
            return EXIT_USAGE;
        }
        s->g = g;
        return EXIT_OK;
    }
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__GetGenesis gg = TC__GET_GENESIS__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_GENESIS;
    req.genesis = &gg;
    Tc__ClientReply *r = NULL;
    int code = sess_call(s, &req, &r, "the node has no genesis");
    if (code != EXIT_OK) {
        free(g);
        return code;
    }
    int rv = -1;
    if (r->genesis)
        rv = genesis_parse(r->genesis->genesis.data, r->genesis->genesis.len, g,
                           err, sizeof(err));
    client_reply_free(r);
    if (rv != 0 || memcmp(g->chain_id, s->chain_id, 32) != 0) {
        util_err("the node's genesis %s; pass the consortium's genesis "
                 "file with --genesis",
                 rv ? "does not parse" : "does not hash to its chain id");
        if (rv == 0)
            genesis_free(g);
        free(g);
        return EXIT_FINDINGS;
    }
    s->g = g;
    return EXIT_OK;
}

int entry_decode(const Tc__LedgerEntry *e, Tc__Tx **tx, Tc__TxResult **res)
{
    *tx = NULL;
    *res = NULL;
    Tc__SignedTx *st =
        tc__signed_tx__unpack(NULL, e->signed_tx.len, e->signed_tx.data);
    if (!st)
        return -1;
    *tx = tc__tx__unpack(NULL, st->body.len, st->body.data);
    tc__signed_tx__free_unpacked(st, NULL);
    if (!*tx)
        return -1;
    if (e->result.len)
        *res = tc__tx_result__unpack(NULL, e->result.len, e->result.data);
    return 0;
}

int sess_next_nonce(struct sess *s, uint64_t *nonce)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_us =
        (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    *nonce = now_us;
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__QueryMember qm = TC__QUERY_MEMBER__INIT;
    Tc__Page page = TC__PAGE__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_MEMBER;
    req.member = &qm;
    /* the ledger knows the member by its genesis or governance name */
    char name[GENESIS_NAME_MAX];
    qm.member =
        sess_member_name(s, s->key.public_key, name) ? name : s->key.name;
    qm.page = &page;
    page.limit = 1;
    /* two cheap queries: how many entries, then the last one */
    for (int round = 0; round < 2; round++) {
        Tc__ClientReply *r = NULL;
        if (client_call(s->c, &req, &r) != 0)
            return EXIT_OK; /* submit will report the node */
        if (r->code != TC__REPLY_CODE__REPLY_OK || !r->entries ||
            r->entries->total == 0) {
            client_reply_free(r);
            return EXIT_OK;
        }
        if (round == 0) {
            uint64_t total = r->entries->total;
            client_reply_free(r);
            if (total > UINT32_MAX)
                return EXIT_OK;
            page.offset = (uint32_t)(total - 1);
            continue;
        }
        Tc__Tx *tx;
        Tc__TxResult *res;
        if (r->entries->n_entries &&
            entry_decode(r->entries->entries[r->entries->n_entries - 1], &tx,
                         &res) == 0) {
            if (tx->nonce >= *nonce)
                *nonce = tx->nonce + 1;
            tc__tx__free_unpacked(tx, NULL);
            if (res)
                tc__tx_result__free_unpacked(res, NULL);
        }
        client_reply_free(r);
    }
    return EXIT_OK;
}

static const char *status_word(Tc__TxStatus st)
{
    return st == TC__TX_STATUS__TX_ACCEPTED   ? "accepted"
           : st == TC__TX_STATUS__TX_REJECTED ? "rejected"
                                              : "unknown";
}

static int report_result(const uint8_t tx_id[32], const char *what,
                         const Tc__Receipt *rc, bool verified, const char *why)
{
    Tc__TxResult *res =
        tc__tx_result__unpack(NULL, rc->result.len, rc->result.data);
    Tc__BlockHeader *h =
        tc__block_header__unpack(NULL, rc->header.len, rc->header.data);
    char id[65], when[32] = "";
    lg_hex(tx_id, 32, id);
    if (h)
        util_fmt_time(h->timestamp_ms, when);
    int code = EXIT_OK;
    Tc__TxStatus st = res ? res->status : TC__TX_STATUS__TX_UNKNOWN;
    if (st != TC__TX_STATUS__TX_ACCEPTED)
        code = EXIT_FINDINGS;
    if (!verified)
        code = EXIT_FINDINGS;
    if (cli.json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:s, s:b}", "tx_id", id, "status",
            status_word(st), "code", res ? res->code : "", "message",
            res ? res->message : "", "height", (json_int_t)(h ? h->height : 0),
            "time", when, "receipt_verified", verified);
        if (j && !verified)
            json_object_set_new(j, "receipt_problem", json_string(why));
        util_print_json(j);
    } else if (st == TC__TX_STATUS__TX_ACCEPTED) {
        printf("accepted: %s\n  tx %s\n  block %llu at %s\n", what, id,
               (unsigned long long)(h ? h->height : 0), when);
    } else {
        printf("REJECTED (%s): %s\n  tx %s (kept on the ledger as evidence, "
               "block %llu)\n",
               res ? res->code : "?", res ? res->message : "no result", id,
               (unsigned long long)(h ? h->height : 0));
    }
    if (!verified)
        util_err("the node's receipt for tx %s does not verify against the "
                 "genesis: %s; do not trust this node",
                 id, why);
    if (res)
        tc__tx_result__free_unpacked(res, NULL);
    if (h)
        tc__block_header__free_unpacked(h, NULL);
    return code;
}

int sess_submit(struct sess *s, Tc__Tx *tx, const char *what,
                uint8_t tx_id_out[32])
{
    LG_ASSERT(s->have_key);
    int code = sess_next_nonce(s, &tx->nonce);
    if (code != EXIT_OK)
        return code;
    tx->chain_id = util_bin(s->chain_id, 32);
    tx->signer = util_bin(s->key.public_key, 32);
    tx->client_time_ms = lg_now_ms();
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (tx_sign(tx, &s->key, &bytes, &len) != 0) {
        util_err("cannot sign the transaction (too large? at most %u "
                 "bytes)",
                 TX_BYTES_MAX);
        return EXIT_USAGE;
    }
    if (len > TX_BYTES_MAX) {
        util_err("the transaction is %zu bytes, more than the %u allowed; "
                 "split it (fewer participants or outcomes per tx)",
                 len, TX_BYTES_MAX);
        free(bytes);
        return EXIT_USAGE;
    }
    uint8_t id[32];
    tx_id(bytes, len, id);
    if (tx_id_out)
        memcpy(tx_id_out, id, 32);
    Tc__ClientReply *r = NULL;
    int rv = client_submit(s->c, bytes, len, true, &r);
    free(bytes);
    if (rv == LG_ENET || rv == LG_ETIMEDOUT)
        return unreachable(s, rv);
    if (rv != 0) {
        util_err("the node's reply does not decode (%s)", client_error(s->c));
        return EXIT_UNREACHABLE;
    }
    if (util_print_refusal(r, id)) {
        client_reply_free(r);
        return EXIT_FINDINGS;
    }
    if (r->code != TC__REPLY_CODE__REPLY_OK || !r->submit) {
        util_err("the node did not take the transaction: %s%s%s",
                 client_code_text(r->code), *r->error ? ": " : "", r->error);
        code = r->code == TC__REPLY_CODE__REPLY_TIMEOUT ||
                       r->code == TC__REPLY_CODE__REPLY_BUSY ||
                       r->code == TC__REPLY_CODE__REPLY_NOT_READY
                   ? EXIT_UNREACHABLE
                   : EXIT_USAGE;
        client_reply_free(r);
        return code;
    }
    if (!r->submit->committed || !r->submit->receipt) {
        util_err("the transaction was not committed in time; it may still "
                 "be: check with `trialchain tx ID`");
        client_reply_free(r);
        return EXIT_UNREACHABLE;
    }
    char why[256] = "";
    bool verified = false;
    if (sess_genesis(s, NULL) == EXIT_OK)
        verified =
            verify_receipt(s->g, r->submit->receipt, NULL, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "the genesis could not be fetched");
    code = report_result(id, what, r->submit->receipt, verified, why);
    client_reply_free(r);
    return code;
}

int sess_trial(struct sess *s, const char *trial_id, struct trial_entries *out)
{
    memset(out, 0, sizeof(*out));
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__QueryTrial qt = TC__QUERY_TRIAL__INIT;
    Tc__Page page = TC__PAGE__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_TRIAL;
    req.trial = &qt;
    qt.trial_id = (char *)trial_id;
    qt.page = &page;
    char nf[256];
    snprintf(nf, sizeof(nf),
             "unknown trial %s (list the registered ones with `trialchain "
             "trial list`)",
             trial_id);
    /* bounded: a trial larger than this is paged by the caller's --json */
    for (int round = 0; round < 100000; round++) {
        Tc__ClientReply *r = NULL;
        int code = sess_call(s, &req, &r, nf);
        if (code != EXIT_OK) {
            trial_entries_free(out);
            return code;
        }
        if (!r->entries) {
            client_reply_free(r);
            trial_entries_free(out);
            util_err("the node's reply to a trial query has no entries");
            return EXIT_UNREACHABLE;
        }
        Tc__ClientReply **nr =
            realloc(out->replies, (out->n_replies + 1) * sizeof(*nr));
        if (nr)
            out->replies = nr;
        Tc__LedgerEntry **nv =
            realloc(out->v, (out->n + r->entries->n_entries + 1) * sizeof(*nv));
        if (nv)
            out->v = nv;
        if (!nr || !nv) {
            client_reply_free(r);
            trial_entries_free(out);
            util_err("out of memory");
            return EXIT_USAGE;
        }
        out->replies[out->n_replies++] = r;
        if (!out->summary)
            out->summary = r->entries->summary;
        for (size_t i = 0; i < r->entries->n_entries; i++)
            out->v[out->n++] = r->entries->entries[i];
        if (!r->entries->more || r->entries->n_entries == 0)
            return EXIT_OK;
        page.offset += (uint32_t)r->entries->n_entries;
    }
    return EXIT_OK;
}

void trial_entries_free(struct trial_entries *e)
{
    for (size_t i = 0; i < e->n_replies; i++)
        client_reply_free(e->replies[i]);
    free(e->replies);
    free(e->v);
    memset(e, 0, sizeof(*e));
}

int decode_entries(const struct trial_entries *e, struct decoded_txs *out)
{
    out->n = 0;
    out->tx = calloc(e->n + 1, sizeof(*out->tx));
    out->res = calloc(e->n + 1, sizeof(*out->res));
    if (!out->tx || !out->res) {
        util_free_txs(out);
        util_err("out of memory");
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < e->n; i++) {
        if (entry_decode(e->v[i], &out->tx[i], &out->res[i]) != 0) {
            out->n = i + 1;
            util_free_txs(out);
            util_err("the node sent a ledger entry that does not decode");
            return EXIT_FINDINGS;
        }
    }
    out->n = e->n;
    return EXIT_OK;
}

void util_free_txs(struct decoded_txs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->tx && d->tx[i])
            tc__tx__free_unpacked(d->tx[i], NULL);
        if (d->res && d->res[i])
            tc__tx_result__free_unpacked(d->res[i], NULL);
    }
    free(d->tx);
    free(d->res);
    memset(d, 0, sizeof(*d));
}

/* ---- options ------------------------------------------------------------- */

int util_missing(const char *what, const char *usage)
{
    util_err("missing %s", what);
    fprintf(stderr, "%s", usage);
    return EXIT_USAGE;
}

static const struct opt *find_opt(const struct opt *opts, size_t n,
                                  const char *arg, const char **inline_val)
{
    *inline_val = NULL;
    if (arg[0] == '-' && arg[1] != '-' && arg[1] && !arg[2]) {
        for (size_t i = 0; i < n; i++)
            if (opts[i].shortname == arg[1])
                return &opts[i];
        return NULL;
    }
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) {
            if (eq)
                *inline_val = eq + 1;
            return &opts[i];
        }
    }
    return NULL;
}

int util_opts(int argc, char **argv, const struct opt *opts, size_t n_opts,
              const char **pos, size_t *n_pos, size_t pos_max,
              const char *usage, bool *help)
{
    *n_pos = 0;
    *help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            *help = true;
            return EXIT_OK;
        }
        if (a[0] == '-' && a[1] != '\0') {
            const char *val;
            const struct opt *o = find_opt(opts, n_opts, a, &val);
            if (!o) {
                util_err("unknown option %s", a);
                fputs(usage, stderr);
                return EXIT_USAGE;
            }
            if (!o->has_arg) {
                if (val) {
                    util_err("--%s takes no value", o->name);
                    return EXIT_USAGE;
                }
                *o->flag = true;
                continue;
            }
            if (!val) {
                if (i + 1 >= argc) {
                    util_err("%s needs a value", a);
                    fputs(usage, stderr);
                    return EXIT_USAGE;
                }
                val = argv[++i];
            }
            *o->value = val;
            continue;
        }
        if (*n_pos >= pos_max) {
            util_err("unexpected argument %s", a);
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
        pos[(*n_pos)++] = a;
    }
    return EXIT_OK;
}

/* ---- messages as JSON and as sentences ------------------------------------
 */

static json_t *field_json(const ProtobufCFieldDescriptor *f, const void *p,
                          int depth);

static json_t *msg_json_depth(const ProtobufCMessage *m, int depth)
{
    json_t *o = json_object();
    if (!m || depth > 6)
        return o;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, (const char *)m + f->quantifier_offset,
                   sizeof(which));
            if (which != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            /* protobuf-c lays a repeated field out as a count at
             * quantifier_offset and an array pointer at offset */
            size_t n;
            const char *arr;
            memcpy(&n, (const char *)m + f->quantifier_offset, sizeof(n));
            memcpy(&arr, base, sizeof(arr));
            json_t *a = json_array();
            size_t sz = f->type == PROTOBUF_C_TYPE_STRING ||
                                f->type == PROTOBUF_C_TYPE_MESSAGE
                            ? sizeof(void *)
                        : f->type == PROTOBUF_C_TYPE_BYTES
                            ? sizeof(ProtobufCBinaryData)
                        : f->type == PROTOBUF_C_TYPE_UINT64 ||
                                f->type == PROTOBUF_C_TYPE_INT64
                            ? sizeof(uint64_t)
                            : sizeof(uint32_t);
            for (size_t k = 0; k < n && arr; k++)
                json_array_append_new(a, field_json(f, arr + k * sz, depth));
            json_object_set_new(o, f->name, a);
            continue;
        }
        json_object_set_new(o, f->name, field_json(f, base, depth));
    }
    return o;
}

static json_t *field_json(const ProtobufCFieldDescriptor *f, const void *p,
                          int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *hex = util_hex_alloc(b->data, b->len);
        json_t *j = json_string(hex ? hex : "");
        free(hex);
        return j;
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            f->descriptor, *(const int *)p);
        return v ? json_string(v->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        return sub ? msg_json_depth(sub, depth + 1) : json_null();
    }
    default:
        return json_integer((json_int_t) * (const uint32_t *)p);
    }
}

json_t *util_msg_json(const ProtobufCMessage *m)
{
    return msg_json_depth(m, 0);
}

const char *util_tx_kind(const Tc__Tx *tx)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &tc__tx__descriptor, (unsigned)tx->body_case);
    return f ? f->name : "empty";
}

static const char *ethics_word(Tc__EthicsAction a)
{
    return a == TC__ETHICS_ACTION__ETHICS_APPROVE     ? "approved"
           : a == TC__ETHICS_ACTION__ETHICS_SUSPEND   ? "suspended"
           : a == TC__ETHICS_ACTION__ETHICS_TERMINATE ? "terminated"
                                                      : "decided on";
}

void util_tx_describe(const Tc__Tx *tx, char *out, size_t n)
{
    char h[17] = "";
    switch (tx->body_case) {
    case TC__TX__BODY_PROTOCOL_REGISTER:
        snprintf(out, n, "registered protocol %s v1 (%zu outcomes, source %s)",
                 tx->protocol_register->trial_id,
                 tx->protocol_register->n_outcomes,
                 tx->protocol_register->source);
        break;
    case TC__TX__BODY_PROTOCOL_AMEND:
        snprintf(out, n, "amended protocol %s to v%u (%zu outcomes): %s",
                 tx->protocol_amend->trial_id, tx->protocol_amend->version,
                 tx->protocol_amend->n_outcomes, tx->protocol_amend->reason);
        break;
    case TC__TX__BODY_ETHICS:
        snprintf(out, n, "%s protocol %s v%u%s%s",
                 ethics_word(tx->ethics->action), tx->ethics->trial_id,
                 tx->ethics->version, *tx->ethics->note ? ": " : "",
                 tx->ethics->note);
        break;
    case TC__TX__BODY_SITE_AUTHORIZE:
        snprintf(out, n, "%s site %s for %s",
                 tx->site_authorize->revoke ? "revoked" : "authorized",
                 tx->site_authorize->site, tx->site_authorize->trial_id);
        break;
    case TC__TX__BODY_CONSENT: {
        if (tx->consent->pseudonym.len >= 8)
            lg_hex(tx->consent->pseudonym.data, 8, h);
        char scopes[256] = "";
        for (size_t i = 0; i < tx->consent->n_scopes; i++) {
            size_t u = strlen(scopes);
            snprintf(scopes + u, sizeof(scopes) - u, "%s%s", i ? "," : "",
                     tx->consent->scopes[i]);
        }
        snprintf(out, n, "%s consent of participant %s... (v%u) scopes %s",
                 tx->consent->action == TC__CONSENT_ACTION__CONSENT_WITHDRAW
                     ? "withdrew"
                     : "recorded",
                 h, tx->consent->protocol_version, *scopes ? scopes : "(all)");
        break;
    }
    case TC__TX__BODY_DATASET_REGISTER:
        if (tx->dataset_register->sha256.len >= 8)
            lg_hex(tx->dataset_register->sha256.data, 8, h);
        snprintf(out, n,
                 "registered dataset %s (sha256 %s..., %zu participants)",
                 tx->dataset_register->dataset_id, h,
                 tx->dataset_register->n_participants);
        break;
    case TC__TX__BODY_ACCESS_GRANT:
        snprintf(out, n, "granted %s access to dataset %s for %s",
                 tx->access_grant->grantee, tx->access_grant->dataset_id,
                 tx->access_grant->purpose);
        break;
    case TC__TX__BODY_ACCESS_REVOKE:
        if (tx->access_revoke->grant_tx.len >= 8)
            lg_hex(tx->access_revoke->grant_tx.data, 8, h);
        snprintf(out, n, "revoked grant %s...%s%s", h,
                 *tx->access_revoke->reason ? ": " : "",
                 tx->access_revoke->reason);
        break;
    case TC__TX__BODY_ACCESS_EVENT:
        if (tx->access_event->grant_tx.len >= 8)
            lg_hex(tx->access_event->grant_tx.data, 8, h);
        snprintf(out, n, "opened shared data under grant %s... for %s", h,
                 tx->access_event->purpose);
        break;
    case TC__TX__BODY_RESULTS_REGISTER: {
        size_t unmatched = 0;
        for (size_t i = 0; i < tx->results_register->n_outcomes; i++)
            unmatched += tx->results_register->outcomes[i]->not_prespecified;
        snprintf(out, n,
                 "registered results for %s (%zu outcomes, %zu not "
                 "pre-specified)",
                 tx->results_register->trial_id,
                 tx->results_register->n_outcomes, unmatched);
        break;
    }
    case TC__TX__BODY_ATTESTATION:
        snprintf(out, n, "attested an audit of %s at height %llu: %u findings",
                 *tx->attestation->trial_id ? tx->attestation->trial_id
                                            : "all trials",
                 (unsigned long long)tx->attestation->height,
                 tx->attestation->n_findings);
        break;
    case TC__TX__BODY_GOVERNANCE_PROPOSAL: {
        /* GOV_MEMBER_ADD -> member-add, as the governance command says */
        const ProtobufCEnumValue *a = protobuf_c_enum_descriptor_get_value(
            &tc__gov_action__descriptor, (int)tx->governance_proposal->action);
        char act[32] = "?";
        if (a && !strncmp(a->name, "GOV_", 4)) {
            size_t k = 0;
            for (const char *c = a->name + 4; *c && k + 1 < sizeof(act); c++)
                act[k++] = *c == '_' ? '-' : (char)(*c - 'A' + 'a');
            act[k] = '\0';
        }
        snprintf(out, n, "proposed governance change %s: %s %s%s%s",
                 tx->governance_proposal->proposal_id, act,
                 tx->governance_proposal->name,
                 *tx->governance_proposal->reason ? ": " : "",
                 tx->governance_proposal->reason);
        break;
    }
    case TC__TX__BODY_GOVERNANCE_APPROVAL:
        snprintf(out, n, "approved governance proposal %s",
                 tx->governance_approval->proposal_id);
        break;
    default:
        snprintf(out, n, "an empty transaction");
    }
}

const char *util_member_name(const struct genesis *g, const uint8_t *pk,
                             size_t pk_len, char buf[24])
{
    if (g && pk_len == 32) {
        const struct genesis_member *m = genesis_member_by_key(g, pk);
        if (m)
            return m->name;
    }
    if (pk_len >= 8)
        lg_hex(pk, 8, buf);
    else
        snprintf(buf, 24, "?");
    return buf;
}

int sess_receipt(struct sess *s, const char *id_hex, Tc__ClientReply **reply)
{
    uint8_t id[32];
    if (!util_unhex(id_hex, id, 32)) {
        util_err("a transaction id is 64 hex digits: %s", id_hex);
        return EXIT_USAGE;
    }
    Tc__ClientRequest req = TC__CLIENT_REQUEST__INIT;
    Tc__GetTx gt = TC__GET_TX__INIT;
    req.req_case = TC__CLIENT_REQUEST__REQ_TX;
    req.tx = &gt;
    gt.tx_id = util_bin(id, 32);
    char nf[160];
    snprintf(nf, sizeof(nf), "no transaction %.16s... on this ledger", id_hex);
    int rc = sess_call(s, &req, reply, nf);
    if (rc == EXIT_OK && !(*reply)->receipt) {
        util_err("the node's reply has no receipt");
        client_reply_free(*reply);
        *reply = NULL;
        return EXIT_UNREACHABLE;
    }
    return rc;
}

void util_current_protocol(const struct trial_entries *e,
                           const struct decoded_txs *d, uint32_t *version,
                           uint8_t version_tx[32], Tc__Outcome ***outcomes,
                           size_t *n_outcomes)
{
    *version = 0;
    *outcomes = NULL;
    *n_outcomes = 0;
    for (size_t i = 0; i < d->n; i++) {
        const Tc__Tx *tx = d->tx[i];
        if (!d->res[i] || d->res[i]->status != TC__TX_STATUS__TX_ACCEPTED)
            continue;
        if (tx->body_case == TC__TX__BODY_PROTOCOL_REGISTER) {
            *version = 1;
            *outcomes = tx->protocol_register->outcomes;
            *n_outcomes = tx->protocol_register->n_outcomes;
        } else if (tx->body_case == TC__TX__BODY_PROTOCOL_AMEND) {
            *version = tx->protocol_amend->version;
            *outcomes = tx->protocol_amend->outcomes;
            *n_outcomes = tx->protocol_amend->n_outcomes;
        } else {
            continue;
        }
        if (e->v[i]->tx_id.len == 32)
            memcpy(version_tx, e->v[i]->tx_id.data, 32);
        else
            tx_id(e->v[i]->signed_tx.data, e->v[i]->signed_tx.len, version_tx);
    }
}
