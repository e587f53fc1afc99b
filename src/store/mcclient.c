/* mcclient.c - the memcached writer: memcached's text protocol over one
 * mcconn per node, no distribution, every operation bounded by one
 * deadline so every outcome is known, counted, and known in time.
 *
 * Why blocking replies and not noreply: a cache writer that promises "why
 * was this not stored?" must see STORED or the error; the store happens
 * after the response has been handed to nginx, so the client does not wait
 * on it. Why a protocol client of its own and not libmemcached: its
 * timeouts apply to each poll or read, so a node that drips its reply kept
 * a worker busy for as long as it dripped (doc/reliability.md, "Stores are
 * bounded").
 *
 * One deadline per operation: memcached.timeout_ms from the start of the
 * call covers connecting, learning the item limit on a new connection,
 * sending and reading the whole reply; connecting alone also stops at
 * memcached.connect_timeout_ms when that comes first. After a timeout, an
 * I/O error, an error reply or any reply not expected, the connection is
 * closed, so a late reply is never read as the answer to the next
 * command. */
#include "config.h"

#include "memfill/mcclient.h"
#include "memfill/keyesc.h"
#include "memfill/mcconn.h"
#include "memfill/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THIRTY_DAYS 2592000u
/* memcached 1.6 item header + suffix bytes besides key and value (doc/nginx.md
 * §11: a 1-byte key takes 1048516 bytes of a 1 MiB item). */
#define ITEM_OVERHEAD 59u
/* Largest value a get accepts when the node's item limit is not known
 * (memcached refuses items this large unless started with a bigger -I). */
#define VALUE_MAX_UNKNOWN (64u << 20)
/* `stats settings` has about 80 lines in memcached 1.6. */
#define SETTINGS_LINES_MAX 1024

struct mcc_node {
    struct mcconn *conn;
    char *address;
    size_t item_max;      /* item_size_max as last read, 0 until then */
    int settings_refused; /* the node answered ERROR to `stats settings` */
};

struct mcclient {
    const struct config *cfg;
    struct mcc_node *nodes;
    size_t n;
};

struct mcclient *mcclient_new(const struct config *cfg)
{
    struct mcclient *w = xcalloc(1, sizeof *w);
    w->cfg = cfg;
    w->n = cfg->nservers;
    w->nodes = xcalloc(w->n ? w->n : 1, sizeof *w->nodes);
    for (size_t i = 0; i < w->n; i++) {
        w->nodes[i].address = xstrdup(cfg->servers[i].address);
        w->nodes[i].conn = mcconn_new(cfg->servers[i].address);
    }
    return w;
}

void mcclient_free(struct mcclient *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        mcconn_free(w->nodes[i].conn);
        free(w->nodes[i].address);
    }
    free(w->nodes);
    free(w);
}

static enum mcc_result from_conn(enum mcconn_result r)
{
    switch (r) {
    case MCCONN_OK: return MCC_OK;
    case MCCONN_TIMEOUT: return MCC_TIMEOUT;
    case MCCONN_CONNECTION: return MCC_CONNECTION;
    default: return MCC_SERVER_ERROR;
    }
}

/* Ends an operation with result r: the connection stays open only after
 * an expected reply with nothing behind it. */
static enum mcc_result finish(struct mcc_node *nd, enum mcc_result r)
{
    if ((r != MCC_OK && r != MCC_NOT_STORED) || mcconn_pending(nd->conn))
        mcconn_close(nd->conn);
    return r;
}

/* A key memcached's text protocol takes as one token: 1 to 250 bytes, none
 * of them at or below 0x20 (space, CR, LF...: so no key can smuggle a
 * second command). DEL and bytes above 0x7f are allowed: nginx's key
 * escaping leaves them as they are, and asks memcached for them so. */
static int key_valid(const char *key, size_t klen)
{
    if (klen == 0 || klen > KEY_MAX_ESCAPED)
        return 0;
    for (size_t i = 0; i < klen; i++)
        if ((unsigned char)key[i] <= 0x20)
            return 0;
    return 1;
}

static int line_is(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len == n && memcmp(line, word, n) == 0;
}

static int line_starts(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(line, word, n) == 0;
}

/* Reads the node's item_size_max with `stats settings` by deadline. A
 * node that does not know the command (ERROR) is not asked again. */
static enum mcc_result ask_settings(struct mcc_node *nd, uint64_t deadline)
{
    static const char cmd[] = "stats settings\r\n";
    struct iovec iov = {(void *)cmd, sizeof cmd - 1};
    enum mcconn_result cr = mcconn_send(nd->conn, &iov, 1, deadline);
    if (cr != MCCONN_OK)
        return from_conn(cr);
    size_t found = 0;
    for (unsigned i = 0; i < SETTINGS_LINES_MAX; i++) {
        const char *line;
        size_t len;
        cr = mcconn_line(nd->conn, deadline, &line, &len);
        if (cr != MCCONN_OK)
            return from_conn(cr);
        if (line_is(line, len, "END")) {
            if (found)
                nd->item_max = found;
            return MCC_OK;
        }
        if (i == 0 && line_is(line, len, "ERROR")) {
            nd->settings_refused = 1;
            return MCC_OK;
        }
        if (!line_starts(line, len, "STAT "))
            return MCC_SERVER_ERROR;
        static const char name[] = "STAT item_size_max ";
        uint64_t v;
        if (line_starts(line, len, name) &&
            util_parse_u64(line + sizeof name - 1, len - (sizeof name - 1), SIZE_MAX, &v) == 0)
            found = (size_t)v;
    }
    return MCC_SERVER_ERROR;
}

/* Starts an operation on node: sets *deadline (timeout_ms from now, for
 * the whole exchange) and makes sure a clean connection is open; a new
 * connection first learns the item limit, unless cache.max_item gives it,
 * within the same deadline. */
static enum mcc_result begin(struct mcclient *w, struct mcc_node *nd, uint64_t *deadline)
{
    uint64_t now = util_now_ms();
    *deadline = now + w->cfg->mc_timeout_ms;
    uint64_t connect_by = now + w->cfg->mc_connect_timeout_ms;
    if (connect_by > *deadline)
        connect_by = *deadline;
    int fresh;
    enum mcc_result r = from_conn(mcconn_open(nd->conn, connect_by, &fresh));
    if (r == MCC_OK && fresh && !w->cfg->max_item && !nd->settings_refused)
        r = ask_settings(nd, *deadline);
    if (r != MCC_OK)
        mcconn_close(nd->conn);
    return r;
}

/* The largest value node takes for a klen-byte key, 0 when not known. */
static size_t value_limit(const struct mcclient *w, const struct mcc_node *nd, size_t klen,
                          uint32_t flags)
{
    size_t max = w->cfg->max_item ? w->cfg->max_item : nd->item_max;
    size_t overhead = ITEM_OVERHEAD + klen + (flags ? sizeof(uint32_t) : 0);
    return max > overhead ? max - overhead : 0;
}

static long long expiry(unsigned exptime)
{
    if (exptime > THIRTY_DAYS)
        return (long long)time(NULL) + exptime;
    return exptime;
}

/* One storage command (set, add, append): "<verb> <key> <flags> <exptime>
 * <bytes>\r\n<data>\r\n", answered by one line. check_limit refuses a value
 * above the node's known limit without sending it. */
static enum mcc_result storage(struct mcclient *w, size_t node, const char *verb, const char *key,
                               size_t klen, const void *value, size_t vlen, uint32_t flags,
                               unsigned exptime, int check_limit)
{
    if (node >= w->n)
        return MCC_CONNECTION;
    if (!key_valid(key, klen))
        return MCC_BAD_KEY;
    struct mcc_node *nd = &w->nodes[node];
    uint64_t deadline;
    enum mcc_result r = begin(w, nd, &deadline);
    if (r != MCC_OK)
        return r;
    if (check_limit) {
        size_t limit = value_limit(w, nd, klen, flags);
        if (limit && vlen > limit)
            return MCC_TOO_LARGE;
    }
    char head[KEY_MAX_ESCAPED + 80];
    int hl = snprintf(head, sizeof head, "%s %.*s %" PRIu32 " %lld %zu\r\n", verb, (int)klen,
                      key, flags, expiry(exptime), vlen);
    struct iovec iov[3] = {{head, (size_t)hl}, {(void *)value, vlen}, {(void *)"\r\n", 2}};
    enum mcconn_result cr = mcconn_send(nd->conn, iov, 3, deadline);
    const char *line = NULL;
    size_t len = 0;
    if (cr == MCCONN_OK)
        cr = mcconn_line(nd->conn, deadline, &line, &len);
    if (cr != MCCONN_OK)
        return finish(nd, from_conn(cr));
    if (line_is(line, len, "STORED"))
        r = MCC_OK;
    else if (line_is(line, len, "NOT_STORED") || line_is(line, len, "EXISTS") ||
             line_is(line, len, "NOT_FOUND"))
        r = MCC_NOT_STORED;
    else if (line_starts(line, len, "SERVER_ERROR") && strstr(line, "too large"))
        r = MCC_TOO_LARGE;
    else
        r = MCC_SERVER_ERROR; /* SERVER_ERROR, CLIENT_ERROR, ERROR, anything else */
    return finish(nd, r);
}

enum mcc_result mcclient_set(struct mcclient *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime)
{
    return storage(w, node, "set", key, klen, value, vlen, flags, exptime, 1);
}

enum mcc_result mcclient_add(struct mcclient *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime)
{
    return storage(w, node, "add", key, klen, value, vlen, flags, exptime, 1);
}

enum mcc_result mcclient_append(struct mcclient *w, size_t node, const char *key, size_t klen,
                                const void *value, size_t vlen)
{
    /* The item's final size is the stored one plus this: the node judges. */
    return storage(w, node, "append", key, klen, value, vlen, 0, 0, 0);
}

/* Sends "<verb> <key>\r\n" and reads the first reply line into *line. */
static enum mcc_result keyed_command(struct mcclient *w, struct mcc_node *nd, const char *verb,
                                     const char *key, size_t klen, uint64_t *deadline,
                                     const char **line, size_t *len)
{
    enum mcc_result r = begin(w, nd, deadline);
    if (r != MCC_OK)
        return r;
    char head[KEY_MAX_ESCAPED + 16];
    int hl = snprintf(head, sizeof head, "%s %.*s\r\n", verb, (int)klen, key);
    struct iovec iov = {head, (size_t)hl};
    enum mcconn_result cr = mcconn_send(nd->conn, &iov, 1, *deadline);
    if (cr == MCCONN_OK)
        cr = mcconn_line(nd->conn, *deadline, line, len);
    return cr == MCCONN_OK ? MCC_OK : finish(nd, from_conn(cr));
}

enum mcc_result mcclient_delete(struct mcclient *w, size_t node, const char *key, size_t klen)
{
    if (node >= w->n)
        return MCC_CONNECTION;
    if (!key_valid(key, klen))
        return MCC_BAD_KEY;
    struct mcc_node *nd = &w->nodes[node];
    uint64_t deadline;
    const char *line;
    size_t len;
    enum mcc_result r = keyed_command(w, nd, "delete", key, klen, &deadline, &line, &len);
    if (r != MCC_OK)
        return r;
    if (line_is(line, len, "DELETED"))
        r = MCC_OK;
    else if (line_is(line, len, "NOT_FOUND"))
        r = MCC_NOT_STORED;
    else
        r = MCC_SERVER_ERROR;
    return finish(nd, r);
}

/* Parses "VALUE <key> <flags> <bytes>" for key; returns 0 or -1. */
static int parse_value_line(const char *line, size_t len, const char *key, size_t klen,
                            uint32_t *flags, size_t *bytes)
{
    static const char value[] = "VALUE ";
    size_t head = sizeof value - 1;
    if (!line_starts(line, len, value) || len < head + klen + 1 ||
        memcmp(line + head, key, klen) != 0 || line[head + klen] != ' ')
        return -1;
    const char *f = line + head + klen + 1, *end = line + len;
    const char *sp = memchr(f, ' ', (size_t)(end - f));
    uint64_t fv, bv;
    if (!sp || util_parse_u64(f, (size_t)(sp - f), UINT32_MAX, &fv) < 0 ||
        util_parse_u64(sp + 1, (size_t)(end - sp - 1), SIZE_MAX, &bv) < 0)
        return -1;
    *flags = (uint32_t)fv;
    *bytes = (size_t)bv;
    return 0;
}

enum mcc_result mcclient_get(struct mcclient *w, size_t node, const char *key, size_t klen,
                             char **out, size_t *outlen, uint32_t *flags)
{
    *out = NULL;
    *outlen = 0;
    if (flags)
        *flags = 0;
    if (node >= w->n)
        return MCC_CONNECTION;
    if (!key_valid(key, klen))
        return MCC_BAD_KEY;
    struct mcc_node *nd = &w->nodes[node];
    uint64_t deadline;
    const char *line;
    size_t len;
    enum mcc_result r = keyed_command(w, nd, "get", key, klen, &deadline, &line, &len);
    if (r != MCC_OK)
        return r;
    if (line_is(line, len, "END"))
        return finish(nd, MCC_NOT_STORED);
    uint32_t f;
    size_t bytes;
    size_t cap = w->cfg->max_item > nd->item_max ? w->cfg->max_item : nd->item_max;
    if (parse_value_line(line, len, key, klen, &f, &bytes) < 0 ||
        bytes > (cap ? cap : VALUE_MAX_UNKNOWN))
        return finish(nd, MCC_SERVER_ERROR);
    struct buf v = BUF_INIT;
    enum mcconn_result cr = mcconn_read(nd->conn, deadline, &v, bytes);
    if (cr == MCCONN_OK)
        cr = mcconn_line(nd->conn, deadline, &line, &len);
    if (cr == MCCONN_OK && len != 0)
        cr = MCCONN_PROTOCOL; /* the data block ends with a bare "\r\n" */
    if (cr == MCCONN_OK)
        cr = mcconn_line(nd->conn, deadline, &line, &len);
    if (cr == MCCONN_OK && !line_is(line, len, "END"))
        cr = MCCONN_PROTOCOL;
    if (cr != MCCONN_OK) {
        buf_fini(&v);
        return finish(nd, from_conn(cr));
    }
    *outlen = v.len;
    *out = buf_steal(&v);
    if (flags)
        *flags = f;
    return finish(nd, MCC_OK);
}

size_t mcclient_item_limit(struct mcclient *w, size_t node, size_t klen, uint32_t flags)
{
    return node < w->n ? value_limit(w, &w->nodes[node], klen, flags) : 0;
}

const char *mcclient_result_name(enum mcc_result r)
{
    static const char *const names[] = {"ok",      "not_stored", "too_large",   "bad_key",
                                        "timeout", "connection", "server_error"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "?";
}

const char *mcclient_node_address(const struct mcclient *w, size_t node)
{
    return node < w->n ? w->nodes[node].address : "";
}

/* ---- listings and pipelined deletes (purge) ---- */

enum mcc_result mcclient_lines(struct mcclient *w, size_t node, const char *cmd,
                               int (*each)(void *ctx, const char *line, size_t len), void *ctx)
{
    if (node >= w->n)
        return MCC_CONNECTION;
    struct mcc_node *nd = &w->nodes[node];
    uint64_t deadline;
    enum mcc_result r = begin(w, nd, &deadline);
    if (r != MCC_OK)
        return r;
    struct buf line_cmd = BUF_INIT;
    buf_printf(&line_cmd, "%s\r\n", cmd);
    struct iovec iov = {line_cmd.data, line_cmd.len};
    enum mcconn_result cr = mcconn_send(nd->conn, &iov, 1, deadline);
    buf_fini(&line_cmd);
    for (int first = 1; cr == MCCONN_OK; first = 0) {
        const char *line;
        size_t len;
        cr = mcconn_line(nd->conn, deadline, &line, &len);
        if (cr != MCCONN_OK)
            break;
        if (line_is(line, len, "END"))
            return finish(nd, MCC_OK);
        if (first && (line_starts(line, len, "ERROR") || line_starts(line, len, "CLIENT_ERROR") ||
                      line_starts(line, len, "SERVER_ERROR")))
            return finish(nd, MCC_SERVER_ERROR);
        if (each(ctx, line, len)) {
            mcconn_close(nd->conn);
            return MCC_OK;
        }
    }
    return finish(nd, from_conn(cr));
}

/* Deletes sent in one write before their replies are read: enough to hide
 * the round trip, few enough that the node's output never fills up. */
#define DELETE_GROUP 256

enum mcc_result mcclient_delete_many(struct mcclient *w, size_t node, const char *const *keys,
                                     const size_t *lens, size_t n, size_t *deleted,
                                     size_t *missing)
{
    size_t del = 0, miss = 0;
    enum mcc_result r = MCC_OK;
    if (node >= w->n)
        r = MCC_CONNECTION;
    struct mcc_node *nd = node < w->n ? &w->nodes[node] : NULL;
    struct buf out = BUF_INIT;
    for (size_t i = 0; r == MCC_OK && i < n; i += DELETE_GROUP) {
        size_t end = i + DELETE_GROUP < n ? i + DELETE_GROUP : n;
        buf_reset(&out, 1 << 20);
        for (size_t k = i; k < end; k++) {
            if (!key_valid(keys[k], lens[k])) {
                r = MCC_BAD_KEY;
                break;
            }
            buf_append_str(&out, "delete ");
            buf_append(&out, keys[k], lens[k]);
            buf_append_str(&out, "\r\n");
        }
        uint64_t deadline;
        if (r == MCC_OK)
            r = begin(w, nd, &deadline);
        if (r != MCC_OK)
            break;
        struct iovec iov = {out.data, out.len};
        enum mcconn_result cr = mcconn_send(nd->conn, &iov, 1, deadline);
        for (size_t k = i; cr == MCCONN_OK && r == MCC_OK && k < end; k++) {
            const char *line;
            size_t len;
            cr = mcconn_line(nd->conn, deadline, &line, &len);
            if (cr != MCCONN_OK)
                break;
            if (line_is(line, len, "DELETED"))
                del++;
            else if (line_is(line, len, "NOT_FOUND"))
                miss++;
            else
                r = MCC_SERVER_ERROR;
        }
        if (cr != MCCONN_OK)
            r = from_conn(cr);
        r = finish(nd, r);
    }
    buf_fini(&out);
    if (deleted)
        *deleted = del;
    if (missing)
        *missing = miss;
    return r;
}

const struct config *mcclient_config(const struct mcclient *w)
{
    return w->cfg;
}
