/*
 * lg.h - project-wide error codes, logging and assertions.
 *
 * Errors: 0 is success; every action returns int rv. Translate at the edges:
 * NNG errors -> LG_ENET (text logged), LevelDB errptr -> LG_EIO (logged,
 * leveldb_free'd), libsodium -1 -> LG_EBADSIG.
 *
 * Assertions: LG_ASSERT stays on in release builds, for programmer errors
 * only. Never assert on data from the network, disk or clients.
 */
#ifndef LG_H
#define LG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define LG_ERRORS(X)                         \
    X(LG_OK, "ok")                           \
    X(LG_ENOMEM, "out of memory")            \
    X(LG_EINVAL, "invalid argument")         \
    X(LG_EIO, "storage error")               \
    X(LG_ECORRUPT, "corrupt data")           \
    X(LG_EBADSIG, "bad signature")           \
    X(LG_EBADMSG, "malformed message")       \
    X(LG_ETOOBIG, "message too large")       \
    X(LG_ENOTFOUND, "not found")             \
    X(LG_EEXIST, "already exists")           \
    X(LG_ENET, "network error")              \
    X(LG_ETIMEDOUT, "timed out")             \
    X(LG_EBUSY, "busy, retry later")         \
    X(LG_EPERM, "not permitted")             \
    X(LG_ECHAIN, "belongs to another chain") \
    X(LG_ECONFIG, "bad configuration")       \
    X(LG_ENOTREADY, "not ready")

#define LG__ENUM(name, text) name,
enum lg_err { LG_ERRORS(LG__ENUM) LG_ERR_COUNT };
#undef LG__ENUM

const char *lg_strerror(int rv);

#if defined(__GNUC__)
#define LG_MUST_CHECK   __attribute__((warn_unused_result))
#define LG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LG_MUST_CHECK
#define LG_PRINTF(a, b)
#endif

/* ---- logging ------------------------------------------------------------
 * One line per event, key=value fields: lg_log(LG_INFO, "commit", "seq=%llu
 * txs=%u", ...). Text on a terminal, JSON lines with lg_log_set_json(true).
 * The level is checked before the arguments are evaluated. Never log keys
 * or consent payloads; log their hashes. */
enum lg_level { LG_DEBUG = 0, LG_INFO, LG_WARN, LG_ERROR, LG_OFF };

extern enum lg_level lg_log_level;
void lg_log_set_level(enum lg_level level);
int lg_log_parse_level(const char *s, enum lg_level *out);
void lg_log_set_json(bool json);
void lg_log_set_stream(FILE *f); /* default stderr */
/* Fields every line carries, e.g. "node=2". */
void lg_log_set_prefix(const char *fields);
void lg_log_write(enum lg_level level, const char *event, const char *fmt, ...)
    LG_PRINTF(3, 4);

#define lg_log(level, event, ...)                        \
    do {                                                 \
        if ((level) >= lg_log_level)                     \
            lg_log_write((level), (event), __VA_ARGS__); \
    } while (0)

/* ---- assertions ---------------------------------------------------------- */
void lg_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#define LG_ASSERT(expr)                                \
    do {                                               \
        if (!(expr))                                   \
            lg_assert_fail(#expr, __FILE__, __LINE__); \
    } while (0)

/* ---- small helpers ------------------------------------------------------- */
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void lg_hex(const unsigned char *in, size_t n, char *out);
/* Parses exactly n bytes of hex; -1 on any other input. */
int lg_unhex(const char *hex, unsigned char *out, size_t n);
/* Milliseconds, wall clock (block times) and monotonic (timers). */
unsigned long long lg_now_ms(void);
unsigned long long lg_mono_ms(void);
/* Reads a whole file (at most max bytes) into a malloc'd buffer (NUL added,
 * not counted in *len). LG_ENOTFOUND, LG_ETOOBIG or LG_EIO. */
int lg_read_file(const char *path, size_t max, unsigned char **out,
                 size_t *len) LG_MUST_CHECK;
/* Writes atomically (temp file, fsync, rename) with the given mode. */
int lg_write_file(const char *path, const void *data, size_t len,
                  unsigned mode) LG_MUST_CHECK;

#endif /* LG_H */
