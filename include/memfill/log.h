/* log.h - the one log sink: level filter, one line format, escaping.
 *
 * Every line reads "2026-11-21T20:30:00.123Z 1234 W info: message": UTC
 * time, pid, role (M master, W worker, C memfillctl), level (error, warn,
 * info, debug, or "access" for access-log lines), message.
 * Untrusted bytes (URIs, keys, params) must go through log_escape() or the
 * "%s" of a string already escaped; the sink itself writes what it is
 * given. */
#ifndef MEMFILL_LOG_H
#define MEMFILL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/loglevel.h"

/* Parses "error", "warn", "info", "debug"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);

/* Opens the sink: path NULL, "" or "stderr" means standard error. Returns 0
 * or -1 with errno set (the previous sink stays open). */
int log_open(const char *path, enum log_level level, char role);
/* Reopens the same path (after log rotation). Returns 0 or -1. */
int log_reopen(void);
void log_set_role(char role);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
/* The file descriptor lines go to (for handing to children). */
int log_fd(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One access-log line (log.access), labelled "access" instead of a level
 * and written whatever log.level is. */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_msg at LOG_ERROR/LOG_WARN, appending ": strerror(errno)". */
void log_perr(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                        \
    do {                                                                                      \
        if (log_enabled(LOG_DEBUG))                                                           \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                  \
    } while (0)

/* A rate limit for one kind of line that clients (or a misconfigured
 * peer) can cause at will: refused requests, drift notes. At most one line
 * per interval_ms is written; the others are only counted, and the next
 * line written says how many there were, so the log stays small and
 * nothing goes unnoticed. One per kind and process; not thread-safe. */
struct log_limit {
    unsigned interval_ms;
    uint64_t last_ms;         /* when the last line was written */
    uint64_t prev_ms;         /* when the one before it was (for the count) */
    unsigned long suppressed; /* lines counted but not written since */
};
#define LOG_LIMIT_INIT(interval_ms) {(interval_ms), 0, 0, 0}

/* Returns 1 when a line of this kind may be written now (write it with
 * log_limit_write()), or 0 after counting it as suppressed. For lines that
 * cost something to compose. */
int log_limit_allow(struct log_limit *l);
/* Writes the line at level with " (N more like this in the last S s)"
 * appended when lines were suppressed, and resets the count. Call it only
 * after log_limit_allow() returned 1. */
void log_limit_write(struct log_limit *l, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* log_limit_allow(), then log_limit_write() when allowed. */
void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends p (n bytes) to out with every byte outside 0x21-0x7e except
 * space written as \xHH, and '\\' and '"' backslash-escaped; at most max
 * input bytes are written, then "...". Returns out->data. */
const char *log_escape(struct buf *out, const void *p, size_t n, size_t max);

#endif
