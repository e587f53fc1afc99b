/* log.c - the single log sink shared by master, workers and memfillctl.
 *
 * One line per call, written with one write(2) so lines from several
 * processes sharing the file do not interleave (O_APPEND). No formatting
 * ever happens in a signal handler: handlers only raise flags, and the
 * master calls log_reopen() from its loop. */
#include "config.h"

#include "memfill/log.h"
#include "memfill/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd_ = 2;
static char *log_path_;
static enum log_level log_level_ = LOG_INFO;
static char log_role_ = 'M';

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level l)
{
    return (unsigned)l <= LOG_DEBUG ? level_names[l] : "?";
}

static int is_stderr(const char *path)
{
    return !path || !*path || strcmp(path, "stderr") == 0;
}

int log_open(const char *path, enum log_level level, char role)
{
    int fd = 2;
    if (!is_stderr(path)) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
    }
    if (log_fd_ > 2)
        close(log_fd_);
    log_fd_ = fd;
    free(log_path_);
    log_path_ = is_stderr(path) ? NULL : xstrdup(path);
    log_level_ = level;
    log_role_ = role;
    return 0;
}

int log_reopen(void)
{
    if (!log_path_)
        return 0;
    int fd = open(log_path_, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    /* Keep the descriptor number stable so children that inherited it keep
     * writing to the new file. */
    if (dup2(fd, log_fd_) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

void log_set_role(char role)
{
    log_role_ = role;
}

void log_set_level(enum log_level level)
{
    log_level_ = level;
}

int log_enabled(enum log_level level)
{
    return level <= log_level_;
}

int log_fd(void)
{
    return log_fd_;
}

/* level < 0 writes the "access" label (log_access). */
static void log_vwrite(int level, const char *fmt, va_list ap, int errnum)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %ld %c %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), (long)getpid(), log_role_,
                     level < 0 ? "access" : log_level_name((enum log_level)level));
    size_t len = (size_t)n;
    int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
    if (m > 0)
        len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
    if (errnum && len < sizeof line - 1) {
        m = snprintf(line + len, sizeof line - len, ": %s", strerror(errnum));
        if (m > 0)
            len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
    }
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(log_fd_, line, len);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite((int)level, fmt, ap, 0);
    va_end(ap);
    errno = saved;
}

void log_access(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(-1, fmt, ap, 0);
    va_end(ap);
    errno = saved;
}

void log_perr(enum log_level level, const char *fmt, ...)
{
    int saved = errno;
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite((int)level, fmt, ap, saved);
    va_end(ap);
    errno = saved;
}

int log_limit_allow(struct log_limit *l)
{
    uint64_t now = util_now_ms();
    if (l->last_ms && now - l->last_ms < l->interval_ms) {
        l->suppressed++;
        return 0;
    }
    l->prev_ms = l->last_ms;
    l->last_ms = now;
    return 1;
}

/* Writes the line (with the suppressed count), keeping errno. */
static void limit_vwrite(struct log_limit *l, enum log_level level, const char *fmt, va_list ap)
{
    if (!log_enabled(level)) {
        l->suppressed = 0;
        return;
    }
    int saved = errno;
    char text[1800];
    vsnprintf(text, sizeof text, fmt, ap);
    if (l->suppressed)
        log_msg(level, "%s (%lu more like this in the last %llu s)", text, l->suppressed,
                (unsigned long long)((l->last_ms - l->prev_ms + 999) / 1000));
    else
        log_msg(level, "%s", text);
    l->suppressed = 0;
    errno = saved;
}

void log_limit_write(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    limit_vwrite(l, level, fmt, ap);
    va_end(ap);
}

void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
    if (!log_limit_allow(l))
        return;
    va_list ap;
    va_start(ap, fmt);
    limit_vwrite(l, level, fmt, ap);
    va_end(ap);
}

const char *log_escape(struct buf *out, const void *p, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t lim = n < max ? n : max;
    buf_reserve(out, lim);
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = s[i];
        if (c == '\\' || c == '"') {
            buf_append_char(out, '\\');
            buf_append_char(out, (char)c);
        } else if (c < 0x20 || c > 0x7e) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            buf_append(out, e, 4);
        } else {
            buf_append_char(out, (char)c);
        }
    }
    if (n > lim)
        buf_append_str(out, "...");
    /* Always terminate: with nothing appended, buf_reserve above may have
     * just allocated, leaving data unterminated. */
    buf_append(out, "", 0);
    return out->data;
}
