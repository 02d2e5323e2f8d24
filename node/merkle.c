/*
 * merkle.c - RFC 6962 trees; proof verification as RFC 9162 §2.1.3.2
 * (inclusion) and §2.1.4.2 (consistency).
 */
#include "merkle.h"

#include <sodium.h>
#include <string.h>

void merkle_leaf_hash(const void *entry, size_t len, uint8_t out[32])
{
    crypto_hash_sha256_state st;
    const unsigned char prefix = 0x00;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, &prefix, 1);
    crypto_hash_sha256_update(&st, entry, len);
    crypto_hash_sha256_final(&st, out);
}

void merkle_node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
    unsigned char buf[1 + 64];
    buf[0] = 0x01;
    memcpy(buf + 1, l, 32);
    memcpy(buf + 33, r, 32);
    crypto_hash_sha256(out, buf, sizeof(buf));
}

/* ---- compact log -------------------------------------------------------- */

void merkle_log_init(struct merkle_log *log)
{
    memset(log, 0, sizeof(*log));
}

void merkle_log_append(struct merkle_log *log, const uint8_t leaf_hash[32])
{
    uint8_t h[32];
    unsigned level = 0;
    LG_ASSERT(log->size < UINT64_MAX);
    memcpy(h, leaf_hash, 32);
    /* Each set low bit of size is a perfect subtree the new leaf completes. */
    while (level < MERKLE_MAX_PATH && ((log->size >> level) & 1u) != 0) {
        merkle_node_hash(log->frontier[level], h, h);
        level++;
    }
    LG_ASSERT(level < MERKLE_MAX_PATH);
    memcpy(log->frontier[level], h, 32);
    log->size++;
}

void merkle_log_root(const struct merkle_log *log, uint8_t out[32])
{
    if (log->size == 0) {
        crypto_hash_sha256(out, NULL, 0);
        return;
    }
    uint8_t r[32];
    bool have = false;
    /* Smallest subtree first: it is the rightmost, folded in from the left. */
    for (unsigned level = 0; level < MERKLE_MAX_PATH; level++) {
        if (((log->size >> level) & 1u) == 0)
            continue;
        if (!have) {
            memcpy(r, log->frontier[level], 32);
            have = true;
        } else {
            merkle_node_hash(log->frontier[level], r, r);
        }
    }
    memcpy(out, r, 32);
}

void merkle_root(const uint8_t (*leaves)[32], uint64_t n, uint8_t out[32])
{
    struct merkle_log log;
    merkle_log_init(&log);
    for (uint64_t i = 0; i < n; i++)
        merkle_log_append(&log, leaves[i]);
    merkle_log_root(&log, out);
}

/* ---- proof generation (RFC 6962 §2.1.1, §2.1.2) ----------------------- */

/* Largest power of two strictly less than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while (k < n - k)
        k <<= 1;
    return k;
}

static void reverse_path(uint8_t (*path)[32], size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t[32];
        memcpy(t, path[i], 32);
        memcpy(path[i], path[n - 1 - i], 32);
        memcpy(path[n - 1 - i], t, 32);
    }
}

int merkle_inclusion_proof(const uint8_t (*leaves)[32], uint64_t n,
                           uint64_t index, uint8_t (*path)[32], size_t *n_path)
{
    if (index >= n)
        return LG_EINVAL;
    uint64_t lo = 0, hi = n;
    size_t np = 0;
    /* PATH(m, D[lo:hi]) walked from the root down; siblings are collected
     * top-down and reversed into the RFC's leaf-to-root order. */
    while (hi - lo > 1) {
        LG_ASSERT(np < MERKLE_MAX_PATH);
        uint64_t k = split_point(hi - lo);
        if (index < lo + k) {
            merkle_root(leaves + lo + k, hi - lo - k, path[np++]);
            hi = lo + k;
        } else {
            merkle_root(leaves + lo, k, path[np++]);
            lo += k;
        }
    }
    reverse_path(path, np);
    *n_path = np;
    return LG_OK;
}

int merkle_consistency_proof(const uint8_t (*leaves)[32], uint64_t size1,
                             uint64_t size2, uint8_t (*path)[32],
                             size_t *n_path)
{
    if (size1 == 0 || size1 > size2)
        return LG_EINVAL;
    uint64_t lo = 0, hi = size2, m = size1;
    bool whole = true; /* b in SUBPROOF: D[lo:hi] is the old tree itself */
    size_t np = 0;
    for (;;) {
        LG_ASSERT(np < MERKLE_MAX_PATH);
        if (m == hi - lo) {
            if (!whole)
                merkle_root(leaves + lo, hi - lo, path[np++]);
            break;
        }
        uint64_t k = split_point(hi - lo);
        if (m <= k) {
            merkle_root(leaves + lo + k, hi - lo - k, path[np++]);
            hi = lo + k;
        } else {
            merkle_root(leaves + lo, k, path[np++]);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    reverse_path(path, np);
    *n_path = np;
    return LG_OK;
}

/* ---- verification ------------------------------------------------------- */

/* Right-shifts fn and sn together until LSB(fn) is set or fn is 0. At most
 * 64 shifts. */
static void shift_to_set_bit(uint64_t *fn, uint64_t *sn)
{
    while ((*fn & 1u) == 0 && *fn != 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

bool merkle_verify_inclusion(const uint8_t leaf_hash[32], uint64_t index,
                             uint64_t size, const uint8_t (*path)[32],
                             size_t n_path, const uint8_t root[32])
{
    if (index >= size || n_path > MERKLE_MAX_PATH)
        return false;
    uint64_t fn = index, sn = size - 1;
    uint8_t r[32];
    memcpy(r, leaf_hash, 32);
    for (size_t i = 0; i < n_path; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1u) != 0 || fn == sn) {
            merkle_node_hash(path[i], r, r);
            if ((fn & 1u) == 0)
                shift_to_set_bit(&fn, &sn);
        } else {
            merkle_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(r, root, 32) == 0;
}

bool merkle_verify_consistency(uint64_t size1, uint64_t size2,
                               const uint8_t root1[32], const uint8_t root2[32],
                               const uint8_t (*path)[32], size_t n_path)
{
    /* An empty old tree proves nothing: every tree extends it. */
    if (size1 == 0 || size1 > size2 || n_path > MERKLE_MAX_PATH)
        return false;
    if (size1 == size2)
        return n_path == 0 && sodium_memcmp(root1, root2, 32) == 0;
    if (n_path == 0)
        return false;

    /* When size1 is a power of two, root1 is the implicit first element. */
    bool pow2 = (size1 & (size1 - 1)) == 0;
    size_t i = 0;
    uint8_t fr[32], sr[32];
    if (pow2) {
        memcpy(fr, root1, 32);
    } else {
        memcpy(fr, path[0], 32);
        i = 1;
    }
    memcpy(sr, fr, 32);

    uint64_t fn = size1 - 1, sn = size2 - 1;
    while ((fn & 1u) != 0) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; i < n_path; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1u) != 0 || fn == sn) {
            merkle_node_hash(path[i], fr, fr);
            merkle_node_hash(path[i], sr, sr);
            if ((fn & 1u) == 0)
                shift_to_set_bit(&fn, &sn);
        } else {
            merkle_node_hash(sr, path[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(fr, root1, 32) == 0 &&
           sodium_memcmp(sr, root2, 32) == 0;
}
