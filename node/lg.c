/*
 * lg.c - error strings, structured logging, assertions and small helpers
 * shared by the node and the tools.
 */
#include "lg.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LG__TEXT(name, text) text,
static const char *const lg_err_text[] = {LG_ERRORS(LG__TEXT)};
#undef LG__TEXT

_Static_assert(sizeof(lg_err_text) / sizeof(lg_err_text[0]) == LG_ERR_COUNT,
               "one text per error code");

const char *lg_strerror(int rv)
{
    if (rv < 0 || rv >= LG_ERR_COUNT)
        return "unknown error";
    return lg_err_text[rv];
}

/* ---- logging ------------------------------------------------------------ */

enum lg_level lg_log_level = LG_INFO;
static bool lg_json;
static FILE *lg_stream;
static char lg_prefix[128];

static const char *const lg_level_names[] = {"debug", "info", "warn", "error",
                                             "off"};

void lg_log_set_level(enum lg_level level)
{
    lg_log_level = level;
}

int lg_log_parse_level(const char *s, enum lg_level *out)
{
    if (s == NULL)
        return LG_EINVAL;
    for (int i = 0; i <= LG_OFF; i++) {
        if (strcmp(s, lg_level_names[i]) == 0) {
            *out = (enum lg_level)i;
            return LG_OK;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LG_WARN;
        return LG_OK;
    }
    return LG_EINVAL;
}

void lg_log_set_json(bool json)
{
    lg_json = json;
}

void lg_log_set_stream(FILE *f)
{
    lg_stream = f;
}

void lg_log_set_prefix(const char *fields)
{
    snprintf(lg_prefix, sizeof(lg_prefix), "%s", fields ? fields : "");
}

/* Appends s to buf as the inside of a JSON string. */
static size_t lg_json_escape(char *buf, size_t cap, size_t at, const char *s)
{
    for (; *s != '\0' && at + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c < 0x20) {
            at += (size_t)snprintf(buf + at, cap - at, "\\u%04x", c);
        } else {
            buf[at++] = (char)c;
        }
    }
    buf[at] = '\0';
    return at;
}

/* JSON lines: the key=value fields become a single "fields" string rather
 * than being parsed, so an odd value can never produce invalid JSON. */
static void lg_write_json(FILE *f, const char *level, const char *event,
                          const char *msg, unsigned long long ts)
{
    char line[2048];
    size_t at = (size_t)snprintf(
        line, sizeof(line), "{\"ts_ms\":%llu,\"level\":\"%s\",\"event\":\"", ts,
        level);
    at = lg_json_escape(line, sizeof(line), at, event);
    at += (size_t)snprintf(line + at, sizeof(line) - at, "\",\"prefix\":\"");
    if (at < sizeof(line))
        at = lg_json_escape(line, sizeof(line), at, lg_prefix);
    if (at < sizeof(line))
        at +=
            (size_t)snprintf(line + at, sizeof(line) - at, "\",\"fields\":\"");
    if (at < sizeof(line))
        at = lg_json_escape(line, sizeof(line), at, msg);
    if (at < sizeof(line))
        snprintf(line + at, sizeof(line) - at, "\"}");
    fprintf(f, "%s\n", line);
}

void lg_log_write(enum lg_level level, const char *event, const char *fmt, ...)
{
    FILE *f = lg_stream ? lg_stream : stderr;
    char msg[1024];
    va_list ap;

    if (level < LG_DEBUG || level >= LG_OFF)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    unsigned long long ts = lg_now_ms();
    if (lg_json) {
        lg_write_json(f, lg_level_names[level], event, msg, ts);
    } else {
        time_t secs = (time_t)(ts / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&secs, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(f, "%s.%03lluZ %-5s %s%s%s %s\n", when, ts % 1000,
                lg_level_names[level], lg_prefix, lg_prefix[0] ? " " : "",
                event, msg);
    }
    fflush(f);
}

void lg_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

/* ---- helpers ------------------------------------------------------------ */

void lg_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int lg_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int lg_unhex(const char *hex, unsigned char *out, size_t n)
{
    if (hex == NULL || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = lg_hexval(hex[2 * i]);
        int lo = lg_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static unsigned long long lg_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull +
           (unsigned long long)ts.tv_nsec / 1000000ull;
}

unsigned long long lg_now_ms(void)
{
    return lg_clock_ms(CLOCK_REALTIME);
}

unsigned long long lg_mono_ms(void)
{
    return lg_clock_ms(CLOCK_MONOTONIC);
}

int lg_read_file(const char *path, size_t max, unsigned char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? LG_ENOTFOUND : LG_EIO;

    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return LG_EIO;
    }
    if ((unsigned long long)st.st_size > max) {
        close(fd);
        return LG_ETOOBIG;
    }
    /* Read up to max+1 so a file that grew since fstat is still caught. */
    size_t cap = (size_t)st.st_size + 1;
    unsigned char *buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return LG_ENOMEM;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            close(fd);
            return LG_EIO;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got > max) {
        free(buf);
        return LG_ETOOBIG;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return LG_OK;
}

static int lg_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Syncs the directory holding path so the rename itself is durable. */
static void lg_sync_parent(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

int lg_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return LG_EINVAL;

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return LG_EIO;
    /* open() applies the umask; the caller asked for exactly this mode. */
    if (fchmod(fd, (mode_t)mode) != 0 || lg_write_all(fd, data, len) != 0 ||
        fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return LG_EIO;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return LG_EIO;
    }
    lg_sync_parent(path);
    return LG_OK;
}
