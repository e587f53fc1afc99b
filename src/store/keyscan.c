/* keyscan.c - enumerating a memcached node's keys with lru_crawler
 * metadump.
 *
 * Why `metadump hash`: memcached 1.6.9+ can walk its hash table instead of
 * its LRUs. The LRU walk skips an item another client holds at that moment
 * (a page nginx is reading) and can miss items the LRU maintainer moves
 * between sub-LRUs during the walk; the hash walk visits every linked item
 * once, as only expansion of the table (blocked during the walk) moves
 * them. Older nodes answer BADCLASS to "hash" and are walked with "all".
 *
 * Why the dump is read to its end before any delete: while the client
 * does not read, memcached's crawler waits with the lock of the hash
 * bucket it is in, so a delete of a key in that bucket, sent meanwhile,
 * would wait for a reader that waits for it (doc/purge-prefix.md). */
#include "config.h"

#include "memfill/keyscan.h"
#include "memfill/keyesc.h"
#include "memfill/mcconn.h"
#include "memfill/util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define READ_CHUNK 65536
#define STATS_LINES_MAX 1024
#define BUSY_RETRY_MS 20
#define STALL_MIN_MS 1000

static const char *conn_error(enum mcconn_result r)
{
    switch (r) {
    case MCCONN_TIMEOUT: return "timed out";
    case MCCONN_CONNECTION: return "cannot connect, or the connection was closed";
    default: return "reply line too long";
    }
}

static uint64_t connect_deadline(unsigned timeout_ms, unsigned connect_timeout_ms)
{
    return util_now_ms() + (connect_timeout_ms < timeout_ms ? connect_timeout_ms : timeout_ms);
}

int keyscan_parse_line(const char *line, size_t len, struct buf *esc)
{
    static const char head[] = "key=";
    if (len < sizeof head || memcmp(line, head, sizeof head - 1) != 0)
        return -1;
    const char *p = line + sizeof head - 1, *end = memchr(p, ' ', len - (sizeof head - 1));
    if (!end)
        end = line + len;
    size_t start = esc->len;
    buf_append(esc, "", 0);
    while (p < end) {
        if (*p != '%') {
            buf_append_char(esc, *p++);
            continue;
        }
        int hi = end - p > 2 ? util_hex_digit((unsigned char)p[1]) : -1;
        int lo = hi < 0 ? -1 : util_hex_digit((unsigned char)p[2]);
        if (lo < 0)
            goto bad;
        buf_append_char(esc, (char)(hi << 4 | lo));
        p += 3;
    }
    if (esc->len > start && esc->len - start <= KEY_MAX_ESCAPED)
        return 0;
bad:
    esc->len = start;
    esc->data[start] = '\0';
    return -1;
}

/* 1 when key can be sent in a text command: no byte at or below 0x20
 * (memcached's binary or meta protocols can store others). */
static int text_key(const char *key, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] <= 0x20)
            return 0;
    return len > 0;
}

/* Sends "stats" and returns curr_items through *items, by deadline. */
static enum mcconn_result item_count(struct mcconn *c, uint64_t deadline, uint64_t *items)
{
    static const char cmd[] = "stats\r\n";
    struct iovec iov = {(void *)cmd, sizeof cmd - 1};
    enum mcconn_result r = mcconn_send(c, &iov, 1, deadline);
    *items = 0;
    for (unsigned i = 0; r == MCCONN_OK && i < STATS_LINES_MAX; i++) {
        const char *line;
        size_t len;
        r = mcconn_line(c, deadline, &line, &len);
        if (r != MCCONN_OK)
            break;
        if (len == 3 && memcmp(line, "END", 3) == 0)
            return MCCONN_OK;
        static const char name[] = "STAT curr_items ";
        if (len > sizeof name - 1 && memcmp(line, name, sizeof name - 1) == 0)
            util_parse_u64(line + sizeof name - 1, len - (sizeof name - 1), UINT64_MAX, items);
    }
    return r == MCCONN_OK ? MCCONN_PROTOCOL : r;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* State of one dump being read. */
struct dump {
    struct mcconn *c;
    struct buf in;    /* received, not yet split into lines */
    size_t pos;       /* start of the first unread line in in */
    struct buf esc, raw;
    uint64_t deadline;
    unsigned stall_ms;
};

/* Reads the next "\n"-terminated line (without "\n" or a "\r" before it). */
static enum mcconn_result dump_line(struct dump *d, const char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(d->in.data ? d->in.data + d->pos : "", '\n', d->in.len - d->pos);
        if (nl) {
            *line = d->in.data + d->pos;
            *len = (size_t)(nl - *line);
            d->pos += *len + 1;
            if (*len && (*line)[*len - 1] == '\r')
                (*len)--;
            return MCCONN_OK;
        }
        if (d->in.len - d->pos > KEYSCAN_LINE_MAX)
            return MCCONN_PROTOCOL;
        if (d->pos) { /* keep the unfinished line, drop the rest */
            memmove(d->in.data, d->in.data + d->pos, d->in.len - d->pos);
            d->in.len -= d->pos;
            d->pos = 0;
        }
        uint64_t now = util_now_ms(), until = now + d->stall_ms;
        enum mcconn_result r =
            mcconn_read_some(d->c, until < d->deadline ? until : d->deadline, &d->in, READ_CHUNK);
        if (r != MCCONN_OK)
            return r;
    }
}

/* Asks for the dump in mode ("hash" or "all") until the node starts it:
 * returns 1 when it did (*first is its first line), 0 when the node does
 * not know the mode, -1 on an error (in e). */
static int dump_start(struct dump *d, const char *mode, const char **first, size_t *flen,
                      struct err *e)
{
    char cmd[64];
    int n = snprintf(cmd, sizeof cmd, "lru_crawler metadump %s\r\n", mode);
    for (;;) {
        struct iovec iov = {cmd, (size_t)n};
        enum mcconn_result r = mcconn_send(d->c, &iov, 1, d->deadline);
        if (r == MCCONN_OK)
            r = dump_line(d, first, flen);
        if (r != MCCONN_OK) {
            err_set(e, NULL, 0, 0, "metadump: %s", conn_error(r));
            return -1;
        }
        if (*flen >= 4 && memcmp(*first, "BUSY", 4) == 0) {
            /* another crawl (a purge, memcached's own) is running */
            if (util_now_ms() + BUSY_RETRY_MS >= d->deadline) {
                err_set(e, NULL, 0, 0, "metadump: the node's crawler stayed busy");
                return -1;
            }
            sleep_ms(BUSY_RETRY_MS);
            continue;
        }
        if (*flen >= 8 && memcmp(*first, "BADCLASS", 8) == 0)
            return 0;
        if (*flen >= 10 && memcmp(*first, "NOTSTARTED", 10) == 0) {
            *first = "END"; /* nothing to crawl */
            *flen = 3;
            return 1;
        }
        if ((*flen == 3 && memcmp(*first, "END", 3) == 0) ||
            keyscan_parse_line(*first, *flen, &d->esc) == 0)
            return 1;
        err_set(e, NULL, 0, 0, "metadump refused: %.*s", (int)(*flen > 120 ? 120 : *flen),
                *first);
        return -1;
    }
}

int keyscan_node(const char *address, unsigned timeout_ms, unsigned connect_timeout_ms,
                 keyscan_fn fn, void *ctx, uint64_t *scanned, struct err *e)
{
    *scanned = 0;
    struct dump d = {mcconn_new(address), BUF_INIT, 0, BUF_INIT, BUF_INIT, 0, 0};
    d.stall_ms = timeout_ms > STALL_MIN_MS ? timeout_ms : STALL_MIN_MS;
    int fresh, rc = -1;
    uint64_t items = 0;
    enum mcconn_result r =
        mcconn_open(d.c, connect_deadline(timeout_ms, connect_timeout_ms), &fresh);
    if (r == MCCONN_OK)
        r = item_count(d.c, util_now_ms() + timeout_ms, &items);
    if (r != MCCONN_OK) {
        err_set(e, NULL, 0, 0, "%s", conn_error(r));
        goto out;
    }
    /* Proportional to the node's size when the dump starts, with room for
     * keys stored meanwhile. */
    d.deadline = util_now_ms() + timeout_ms + (items + 10000) * KEYSCAN_US_PER_KEY / 1000;
    const char *line;
    size_t len;
    int started = dump_start(&d, "hash", &line, &len, e);
    if (started == 0)
        started = dump_start(&d, "all", &line, &len, e);
    if (started <= 0) {
        if (started == 0)
            err_set(e, NULL, 0, 0, "metadump: the node refused both hash and all");
        goto out;
    }
    for (;;) {
        if (len == 3 && memcmp(line, "END", 3) == 0)
            break;
        buf_reset(&d.esc, 1024);
        if (keyscan_parse_line(line, len, &d.esc) < 0) {
            err_set(e, NULL, 0, 0, "metadump: unexpected line: %.*s",
                    (int)(len > 120 ? 120 : len), line);
            goto out;
        }
        buf_reset(&d.raw, 1024);
        int ok = text_key(d.esc.data, d.esc.len) &&
                 key_unescape(d.esc.data, d.esc.len, &d.raw) == 0;
        (*scanned)++;
        fn(ctx, d.esc.data, d.esc.len, ok ? (d.raw.data ? d.raw.data : "") : NULL,
           ok ? d.raw.len : 0);
        r = dump_line(&d, &line, &len);
        if (r != MCCONN_OK) {
            err_set(e, NULL, 0, 0, "metadump after %llu keys: %s", (unsigned long long)*scanned,
                    r == MCCONN_TIMEOUT && util_now_ms() >= d.deadline
                        ? "the dump took longer than its deadline"
                        : conn_error(r));
            goto out;
        }
    }
    rc = 0;
out:
    mcconn_free(d.c); /* a dump cut short: closing tells the crawler to stop */
    buf_fini(&d.in);
    buf_fini(&d.esc);
    buf_fini(&d.raw);
    return rc;
}
