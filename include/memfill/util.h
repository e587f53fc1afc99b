/* util.h - allocation that aborts on OOM, number parsing, reading a whole
 * file, small helpers. */
#ifndef MEMFILL_UTIL_H
#define MEMFILL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Allocate or abort the process with a one-line message ("out of memory").
 * A worker that dies this way is respawned by the master. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Returns a new string; free with free(). NULL in gives NULL out. */
char *xstrdup(const char *s);
/* Returns a new NUL-terminated copy of n bytes; free with free(). */
char *xstrndup(const char *s, size_t n);
/* Returns a new printf-formatted string; free with free(). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a whole decimal string (no sign, no spaces) into *out.
 * Returns 0 on success, -1 when s is empty, not all digits or above max. */
int util_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

/* Monotonic clock in milliseconds. */
uint64_t util_now_ms(void);

/* Case-insensitive ASCII compare of n bytes; returns 1 when equal. */
int util_ascii_caseeq(const char *a, const char *b, size_t n);

/* Returns 1 when s (NUL-terminated) starts with prefix. */
int util_starts_with(const char *s, const char *prefix);

struct buf;
struct err;

/* Appends everything read from fd up to end of file to out, at most max
 * bytes; out stays NUL-terminated (and non-NULL even for an empty file).
 * name is the file's name for err. Returns 0, or -1 with err set (source =
 * name, text = the reason) and errno set: EFBIG when there is more than
 * max bytes, out then holds what it held before. Retries on EINTR; a
 * non-blocking fd that has nothing yet is an error (EAGAIN). */
int util_read_fd(int fd, const char *name, size_t max, struct buf *out, struct err *err);
/* Opens path and reads it whole with util_read_fd. A failed open is
 * reported the same way (text = strerror). */
int util_read_file(const char *path, size_t max, struct buf *out, struct err *err);
/* Value of the hex digit c (0-9, a-f, A-F), or -1 for any other byte. */
int util_hex_digit(unsigned char c);

#endif
