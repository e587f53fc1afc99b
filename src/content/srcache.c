/* srcache.c - the srcache item format: a whole HTTP response, written the
 * way srcache_store writes it, read back the way srcache_fetch reads it.
 *
 * The order of the headers follows srcache's store filter (Content-Type,
 * then Last-Modified, then the rest as they came); the headers it never
 * stores are left out here too, so an item memfill writes cannot be told
 * from one srcache_store wrote (tests/vectors/srcache_store_format.tsv). */
#include "config.h"

#include "memfill/srcache.h"
#include "memfill/util.h"

#include <string.h>

int srcache_status_storable(int status)
{
    return status == 200 || status == 301 || status == 302 || status == 307 || status == 308;
}

/* Headers srcache never stores, plus the ones that describe this hop only. */
static int left_out(const char *name, size_t n)
{
    static const char *const names[] = {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "set-cookie", "content-length",
        "date", "server", "status", "x-memfill-store", "content-type", "last-modified", NULL,
    };
    for (const char *const *p = names; *p; p++)
        if (strlen(*p) == n && util_ascii_caseeq(name, *p, n))
            return 1;
    return 0;
}

/* Calls back for each "Name: value" line of a header block. */
struct hline {
    const char *name;
    size_t name_len;
    const char *line; /* the whole line without its line end */
    size_t line_len;
};

static int next_line(const char **p, const char *end, struct hline *h)
{
    while (*p < end) {
        const char *eol = memchr(*p, '\n', (size_t)(end - *p));
        const char *le = eol ? eol : end;
        const char *s = *p;
        *p = eol ? eol + 1 : end;
        if (le > s && le[-1] == '\r')
            le--;
        const char *colon = memchr(s, ':', (size_t)(le - s));
        if (!colon || colon == s)
            continue;
        h->name = s;
        h->name_len = (size_t)(colon - s);
        h->line = s;
        h->line_len = (size_t)(le - s);
        return 1;
    }
    return 0;
}

static int name_is(const struct hline *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && util_ascii_caseeq(h->name, name, n);
}

void srcache_encode(const struct response *resp, struct buf *out)
{
    const char *reason = response_reason(resp->status);
    if (*reason)
        buf_printf(out, "HTTP/1.1 %d %s\r\n", resp->status, reason);
    else
        buf_printf(out, "HTTP/1.1 %d\r\n", resp->status);
    buf_append_str(out, "Content-Type: ");
    if (resp->content_type.len)
        buf_append(out, resp->content_type.data, resp->content_type.len);
    else
        buf_append_str(out, "text/html");
    buf_append(out, "\r\n", 2);
    const char *hs = resp->headers.data ? resp->headers.data : "";
    const char *he = hs + resp->headers.len;
    struct hline h;
    const char *p = hs;
    while (next_line(&p, he, &h)) {
        if (name_is(&h, "last-modified")) {
            buf_append(out, h.line, h.line_len);
            buf_append(out, "\r\n", 2);
            break;
        }
    }
    p = hs;
    while (next_line(&p, he, &h)) {
        if (left_out(h.name, h.name_len))
            continue;
        buf_append(out, h.line, h.line_len);
        buf_append(out, "\r\n", 2);
    }
    buf_append(out, "\r\n", 2);
    if (resp->body.len)
        buf_append(out, resp->body.data, resp->body.len);
}

int srcache_decode(const char *v, size_t len, struct response *resp)
{
    const char *end = v + len;
    if (len < 12 || memcmp(v, "HTTP/1.", 7) != 0 || v[8] != ' ')
        return -1;
    uint64_t status;
    if (util_parse_u64(v + 9, 3, 999, &status) < 0 || status < 100 ||
        (len > 12 && v[12] != ' ' && v[12] != '\r' && v[12] != '\n'))
        return -1;
    const char *p = memchr(v, '\n', len);
    if (!p)
        return -1;
    p++;
    /* find the empty line */
    const char *body = NULL, *hend = NULL;
    for (const char *q = p; q < end;) {
        const char *eol = memchr(q, '\n', (size_t)(end - q));
        if (!eol)
            break;
        if (eol == q || (eol == q + 1 && *q == '\r')) {
            hend = q;
            body = eol + 1;
            break;
        }
        q = eol + 1;
    }
    if (!body)
        return -1;
    response_reset(resp, 1 << 20);
    resp->status = (int)status;
    struct hline h;
    while (next_line(&p, hend, &h)) {
        const char *val = h.name + h.name_len + 1;
        const char *ve = h.line + h.line_len;
        while (val < ve && (*val == ' ' || *val == '\t'))
            val++;
        if (name_is(&h, "content-type")) {
            buf_reset(&resp->content_type, 1 << 10);
            buf_append(&resp->content_type, val, (size_t)(ve - val));
        } else if (!name_is(&h, "content-length")) {
            buf_append(&resp->headers, h.line, h.line_len);
            buf_append(&resp->headers, "\r\n", 2);
        }
    }
    buf_append(&resp->body, body, (size_t)(end - body));
    return 0;
}
