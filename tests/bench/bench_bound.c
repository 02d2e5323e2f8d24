/*
 * bench_bound - this machine's bound for trialchain throughput: the
 * transactions per second it could commit doing nothing but the signature
 * work the protocol requires, measured with libsodium now (the machine's
 * speed drifts by 1.5x from minute to minute, so the bench measures this in
 * the same run as the throughput it compares).
 *
 * Work per committed transaction, for n replicas and batches of B:
 *   1 Ed25519 sign (the client) + n verifies (every replica checks every
 *   transaction once) + per batch, per replica, the PBFT votes:
 *   sign PREPARE (backups) or PRE-PREPARE (primary), COMMIT and CHECKPOINT
 *   (the block certificate) = 3 signs, and verify the 3 votes of each of
 *   the n-1 others = 3(n-1) verifies.
 * All of it spread over every core of the machine, as the local consortium
 * runs all n replicas and the clients on it.
 *
 * Usage: bench_bound [--nodes N] [--batch B] [--cores C] [--ms MS]
 * Prints one JSON object.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Operations per second of sign (verify = 0) or verify (verify = 1) over a
 * ~300-byte message, for about ms milliseconds. */
static double rate(int verify, unsigned ms)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    unsigned char msg[300];
    unsigned char sig[crypto_sign_BYTES];
    unsigned long long ops = 0;
    double t0, t;

    crypto_sign_keypair(pk, sk);
    randombytes_buf(msg, sizeof(msg));
    crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
    t0 = now_s();
    do {
        for (int i = 0; i < 64; i++) {
            if (verify) {
                if (crypto_sign_verify_detached(sig, msg, sizeof(msg), pk))
                    abort();
            } else {
                crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
            }
            msg[0]++;
            if (verify)
                msg[0]--; /* keep the signed message for verify */
        }
        ops += 64;
        t = now_s() - t0;
    } while (t * 1000.0 < ms);
    sodium_memzero(sk, sizeof(sk));
    return (double)ops / t;
}

int main(int argc, char **argv)
{
    double nodes = 4, batch = 100, cores = 0, ms = 1000;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--nodes"))
            nodes = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--cores"))
            cores = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--ms"))
            ms = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_bound [--nodes N] [--batch B] "
                            "[--cores C] [--ms MS]\n");
            return 2;
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bench_bound: libsodium failed to start\n");
        return 1;
    }
    if (cores <= 0)
        cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
    if (nodes < 4 || batch < 1 || cores < 1 || ms < 10) {
        fprintf(stderr, "bench_bound: need nodes >= 4, batch >= 1\n");
        return 2;
    }
    double sign_s = rate(0, (unsigned)ms), verify_s = rate(1, (unsigned)ms);
    double signs = 1.0 + 3.0 * nodes / batch;
    double verifies = nodes + 3.0 * nodes * (nodes - 1.0) / batch;
    double cpu_per_tx = signs / sign_s + verifies / verify_s;
    double bound = cores / cpu_per_tx;

    printf("{\"sign_per_s\":%.0f,\"verify_per_s\":%.0f,\"nodes\":%.0f,"
           "\"batch\":%.1f,\"cores\":%.0f,\"signs_per_tx\":%.3f,"
           "\"verifies_per_tx\":%.3f,\"cpu_us_per_tx\":%.1f,"
           "\"bound_tps\":%.0f}\n",
           sign_s, verify_s, nodes, batch, cores, signs, verifies,
           cpu_per_tx * 1e6, bound);
    return 0;
}
