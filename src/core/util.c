/* util.c - allocation wrappers that abort on OOM and small parsing helpers.
 *
 * A worker that runs out of memory has no sensible way to continue a
 * request; it aborts and the master respawns it. Sizes that come from a
 * request are checked against configured limits before anything here is
 * called with them. */
#include "config.h"

#include "memfill/util.h"
#include "memfill/buf.h"
#include "memfill/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
    static const char msg[] = "memfill: out of memory\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int util_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int util_ascii_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return 0;
    }
    return 1;
}

int util_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int util_read_fd(int fd, const char *name, size_t max, struct buf *out, struct err *err)
{
    size_t start = out->len;
    for (;;) {
        if (out->cap - out->len < 2)
            buf_reserve(out, 64 << 10);
        size_t room = out->cap - out->len - 1;
        size_t left = max - (out->len - start);
        if (left < SIZE_MAX)
            left++; /* one byte past max tells the file is too large */
        ssize_t n = read(fd, out->data + out->len, room < left ? room : left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            out->len = start;
            out->data[start] = '\0';
            err_set(err, name, 0, 0, "%s", strerror(e));
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
        if (out->len - start > max) {
            out->len = start;
            out->data[start] = '\0';
            err_set(err, name, 0, 0, "larger than %zu bytes", max);
            errno = EFBIG;
            return -1;
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

int util_read_file(const char *path, size_t max, struct buf *out, struct err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_set(err, path, 0, 0, "%s", strerror(e));
        errno = e;
        return -1;
    }
    int rc = util_read_fd(fd, path, max, out, err);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int util_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}
