/* handler_upstream.c - relays a request to an HTTP origin and its answer
 * back to nginx, deciding from the origin's headers whether the page may be
 * stored (cachepolicy).
 *
 * The origin URL is the configured origin followed by REQUEST_URI exactly
 * as the client sent it (only bytes no URL may hold are percent-encoded).
 * Request headers come from the HTTP_* params (HTTP_X_FOO -> X-Foo) plus
 * CONTENT_TYPE, with X-Forwarded-For/-Proto/-Host added. What is left out,
 * and why:
 *   - hop-by-hop headers (Connection, Keep-Alive, TE, Trailer,
 *     Transfer-Encoding, Upgrade, Proxy-*, Expect): they describe nginx's
 *     connection, not ours; curl frames the body itself;
 *   - Accept-Encoding: the body is stored and replayed by nginx to any
 *     client, so it must be identity (nginx's gzip filter compresses it);
 *   - for GET and HEAD, the conditional and range headers (If-*, Range),
 *     as nginx's proxy cache does: a 304 or 206 could not be stored, the
 *     full 200 can.
 * HEAD is relayed as GET (nginx's proxy_cache_convert_head): the full body
 * is what gets stored, and nginx sends a HEAD client the headers only.
 *
 * Response headers go back except hop-by-hop ones, Content-Length (the
 * server recomputes it), Status (the FastCGI layer writes its own), and any
 * whose name or value holds CR, LF or NUL (a response-splitting attempt).
 * Content-Type goes to resp->content_type, X-Memfill-Tags to resp->tags.
 * Origin failures become 502 (504 for a timeout) pages that are never
 * stored. The curl client is made on the first request, in the worker. */
#include "config.h"

#include "memfill/cachepolicy.h"
#include "memfill/handler.h"
#include "memfill/log.h"
#include "memfill/srcache.h"
#include "memfill/stats.h"
#include "memfill/upstream.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Origin bodies above this are refused with a 502. */
#define UPSTREAM_MAX_BODY (64UL << 20)

struct upstream_state {
    char *origin; /* scheme://host[:port][/path], without a trailing '/' */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    struct cachepolicy_limits limits;
    struct upstream_client *client; /* NULL until the first request */
    struct upstream_resp ures;      /* reused from request to request */
    int srcache;                    /* the route stores whole responses */
};

/* Returns NULL when origin is usable, else what is wrong with it. */
static const char *origin_problem(const char *origin)
{
    for (const unsigned char *c = (const unsigned char *)origin; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f)
            return "expected no blanks, control or non-ASCII bytes";
        if (*c == '?' || *c == '#')
            return "expected no query or fragment (the request's own is appended)";
        if (*c == '@')
            return "expected no user name or password in the URL";
    }
    const char *p = strstr(origin, "://");
    if (!p)
        return "expected http://host[:port]";
    p += 3;
    const char *host = p;
    if (*p == '[') {
        p = strchr(p, ']');
        if (!p || p == host + 1)
            return "expected an IPv6 address between [ and ]";
        p++;
    } else {
        while (*p && *p != ':' && *p != '/')
            p++;
        if (p == host)
            return "expected a host name after the scheme";
    }
    if (*p == ':') {
        const char *port = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        uint64_t v;
        if (util_parse_u64(port, (size_t)(p - port), 65535, &v) < 0 || v == 0)
            return "expected a port between 1 and 65535";
    }
    if (*p && *p != '/')
        return "expected a '/' or the end after the host and port";
    return NULL;
}

static int upstream_create(const struct config *cfg, size_t route_index, void **state,
                           struct err *err)
{
    const struct config_route *r = &cfg->routes[route_index];
    const char *why = r->origin ? origin_problem(r->origin) : "expected an origin URL";
    if (why) {
        err_set(err, cfg->path, r->pos.line, r->pos.col, "routes[%zu].origin: %s",
                route_index, why);
        return -1;
    }
    struct upstream_state *s = xcalloc(1, sizeof *s);
    size_t n = strlen(r->origin);
    while (n > 0 && r->origin[n - 1] == '/')
        n--;
    s->origin = xstrndup(r->origin, n);
    s->connect_timeout_ms = r->connect_timeout_ms;
    s->timeout_ms = r->timeout_ms;
    s->limits.default_ttl = r->ttl >= 0 ? r->ttl : (long)cfg->ttl;
    s->limits.min_ttl = cfg->min_ttl;
    s->limits.max_ttl = cfg->max_ttl;
    s->srcache = r->srcache;
    upstream_resp_init(&s->ures);
    *state = s;
    return 0;
}

/* ---- the request ---- */

/* HTTP_* params (after the prefix) that are never relayed. */
static const char *const never_relayed[] = {
    "CONNECTION", "KEEP_ALIVE", "TE", "TRAILER", "TRANSFER_ENCODING", "UPGRADE", "EXPECT",
    "CONTENT_LENGTH", "CONTENT_TYPE", "ACCEPT_ENCODING",
    "X_FORWARDED_FOR", "X_FORWARDED_PROTO", "X_FORWARDED_HOST", NULL,
};
/* ... and those left out for GET and HEAD only. */
static const char *const conditional[] = {
    "IF_MODIFIED_SINCE", "IF_UNMODIFIED_SINCE", "IF_NONE_MATCH", "IF_MATCH", "RANGE",
    "IF_RANGE", NULL,
};

static int in_list(const char *const *list, const char *name, size_t n)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, name, n) == 0)
            return 1;
    return 0;
}

/* Appends "Name: value" (or "Name;" for an empty value, which is how curl
 * is told to send an empty header) as a new line in lines. */
static void add_line(struct buf *lines, const char *name, size_t nlen, const char *value)
{
    buf_append(lines, name, nlen);
    if (*value) {
        buf_append(lines, ": ", 2);
        buf_append_str(lines, value);
    } else {
        buf_append_char(lines, ';');
    }
    buf_append_char(lines, '\0');
}

/* Appends "Name:", which tells curl not to send a header it would add. */
static void add_removal(struct buf *lines, const char *name_colon)
{
    buf_append_str(lines, name_colon);
    buf_append_char(lines, '\0');
}

/* Turns "X_FOO_BAR" into "X-Foo-Bar" in out; returns -1 when the param
 * name holds anything but letters, digits and '_'. */
static int header_name(const char *p, size_t n, struct buf *out)
{
    int start = 1;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '_') {
            buf_append_char(out, '-');
            start = 1;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            c = start ? c : (char)(c - 'A' + 'a');
        else if (c >= 'a' && c <= 'z')
            c = start ? (char)(c - 'a' + 'A') : c;
        else if (!(c >= '0' && c <= '9'))
            return -1;
        buf_append_char(out, c);
        start = 0;
    }
    return n ? 0 : -1;
}

/* Builds the request header lines, each NUL-terminated, into lines. */
static void build_request_headers(const struct request *req, int cacheable_method,
                                  int with_body, struct buf *lines)
{
    struct buf name = BUF_INIT;
    int has_accept = 0;
    for (char **e = req->envp; e && *e; e++) {
        if (strncmp(*e, "HTTP_", 5) != 0)
            continue;
        const char *pn = *e + 5;
        const char *eq = strchr(pn, '=');
        if (!eq)
            continue;
        size_t pl = (size_t)(eq - pn);
        const char *value = eq + 1;
        if (strpbrk(value, "\r\n") || in_list(never_relayed, pn, pl) ||
            (pl >= 6 && memcmp(pn, "PROXY_", 6) == 0) || (pl == 5 && !memcmp(pn, "PROXY", 5)) ||
            (cacheable_method && in_list(conditional, pn, pl)))
            continue;
        buf_reset(&name, 4096);
        if (header_name(pn, pl, &name) < 0)
            continue;
        if (pl == 6 && memcmp(pn, "ACCEPT", 6) == 0)
            has_accept = 1;
        add_line(lines, name.data, name.len, value);
    }
    buf_fini(&name);

    const char *ctype = request_param(req, "CONTENT_TYPE");
    if (ctype && *ctype && !strpbrk(ctype, "\r\n"))
        add_line(lines, "Content-Type", 12, ctype);
    else if (with_body)
        add_removal(lines, "Content-Type:"); /* not curl's default form type */
    if (!has_accept)
        add_removal(lines, "Accept:"); /* not curl's default "Accept: * / *" */

    const char *addr = request_param(req, "REMOTE_ADDR");
    const char *xff = request_param(req, "HTTP_X_FORWARDED_FOR");
    if (xff && strpbrk(xff, "\r\n"))
        xff = NULL;
    if (addr && strpbrk(addr, "\r\n"))
        addr = NULL;
    if ((xff && *xff) || (addr && *addr)) {
        buf_append_str(lines, "X-Forwarded-For: ");
        if (xff && *xff)
            buf_append_str(lines, xff);
        if (xff && *xff && addr && *addr)
            buf_append(lines, ", ", 2);
        if (addr && *addr)
            buf_append_str(lines, addr);
        buf_append_char(lines, '\0');
    }
    const char *scheme = request_param(req, "REQUEST_SCHEME");
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        const char *https = request_param(req, "HTTPS");
        scheme = https && *https && strcmp(https, "off") != 0 ? "https" : "http";
    }
    add_line(lines, "X-Forwarded-Proto", 17, scheme);
    const char *host = request_param(req, "HTTP_HOST");
    if (!host || !*host)
        host = request_param(req, "SERVER_NAME");
    if (host && *host && !strpbrk(host, "\r\n"))
        add_line(lines, "X-Forwarded-Host", 16, host);
}

/* Appends the origin URL for req: origin + REQUEST_URI, with bytes that no
 * URL may hold raw (controls, space, non-ASCII, '#') percent-encoded. */
static void build_url(const struct upstream_state *s, const char *uri, struct buf *url)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_append_str(url, s->origin);
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '#') {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(url, esc, 3);
        } else {
            buf_append_char(url, (char)*p);
        }
    }
}

/* ---- the response ---- */

static int name_is(const struct upstream_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && util_ascii_caseeq(h->name, name, n);
}

static int is_dropped(const struct upstream_header *h)
{
    static const char *const names[] = {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "status", NULL,
    };
    for (const char *const *n = names; *n; n++)
        if (name_is(h, *n))
            return 1;
    return h->name_len >= 6 && util_ascii_caseeq(h->name, "proxy-", 6);
}

static int is_unsafe(const struct upstream_header *h)
{
    return strpbrk(h->name, "\r\n") || strlen(h->name) != h->name_len ||
           memchr(h->value, '\r', h->value_len) || memchr(h->value, '\n', h->value_len) ||
           memchr(h->value, '\0', h->value_len);
}

/* Appends the tags of one X-Memfill-Tags value (space or comma separated)
 * to tags, space-separated. */
static void add_tags(struct buf *tags, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == ',' || v[i] == '\t'))
            i++;
        size_t start = i;
        while (i < n && v[i] != ' ' && v[i] != ',' && v[i] != '\t')
            i++;
        if (i > start) {
            if (tags->len)
                buf_append_char(tags, ' ');
            buf_append(tags, v + start, i - start);
        }
    }
}

static void relay_response(struct upstream_state *s, struct response *resp)
{
    struct upstream_resp *u = &s->ures;
    int have_ctype = 0, encoded = 0;
    resp->status = u->status;
    for (size_t i = 0; i < u->nheaders; i++) {
        const struct upstream_header *h = &u->headers[i];
        if (is_unsafe(h) || is_dropped(h))
            continue;
        if (name_is(h, "content-type")) {
            if (!have_ctype)
                buf_append(&resp->content_type, h->value, h->value_len);
            have_ctype = 1;
        } else if (name_is(h, "x-memfill-tags")) {
            add_tags(&resp->tags, h->value, h->value_len);
        } else {
            if (name_is(h, "content-encoding") && h->value_len &&
                !(h->value_len == 8 && util_ascii_caseeq(h->value, "identity", 8)))
                encoded = 1;
            response_add_header(resp, h->name, h->value, h->value_len);
        }
    }
    /* Hand the body over without copying it (up to 64 MiB). */
    struct buf tmp = resp->body;
    resp->body = u->body;
    u->body = tmp;
    buf_reset(&u->body, 0);

    struct cachepolicy_header small[32];
    struct cachepolicy_header *ph =
        u->nheaders <= 32 ? small : xmalloc(u->nheaders * sizeof *ph);
    for (size_t i = 0; i < u->nheaders; i++) {
        ph[i].name = u->headers[i].name;
        ph[i].name_len = u->headers[i].name_len;
        ph[i].value = u->headers[i].value;
        ph[i].value_len = u->headers[i].value_len;
    }
    struct cachepolicy_result res;
    /* A srcache route keeps redirects too (srcache_store_statuses): judge
     * them by the same rules as a 200. */
    int judged = s->srcache && srcache_status_storable(u->status) ? 200 : u->status;
    cachepolicy_decide(judged, ph, u->nheaders, time(NULL), &s->limits, &res);
    if (ph != small)
        free(ph);
    if (!res.storable) {
        resp->no_store = 1;
        resp->no_store_reason = (int)res.reason;
    } else if (encoded) {
        /* an encoded body replayed by nginx would lack its Content-Encoding */
        resp->no_store = 1;
        resp->no_store_reason = STATS_SKIP_HANDLER;
    } else {
        resp->ttl = res.ttl;
    }
}

static void fail_response(struct response *resp, enum upstream_failure f)
{
    switch (f) {
    case UPSTREAM_TIMEOUT:
        response_error(resp, 504, "The origin server did not answer in time.");
        break;
    case UPSTREAM_TOO_LARGE:
        response_error(resp, 502, "The origin server's response is too large to relay.");
        break;
    case UPSTREAM_PROTOCOL:
        response_error(resp, 502, "The origin server sent an invalid response.");
        break;
    default:
        response_error(resp, 502, "The origin server did not answer.");
        break;
    }
    resp->no_store = 1;
    resp->no_store_reason = STATS_SKIP_HANDLER;
}

static void upstream_handle(void *state, const struct request *req,
                            const struct route_match *m, struct response *resp)
{
    struct upstream_state *s = state;
    (void)m;
    if (req->request_uri[0] != '/') {
        response_error(resp, 400, "The request target cannot be relayed.");
        resp->no_store = 1;
        resp->no_store_reason = STATS_SKIP_HANDLER;
        return;
    }
    if (!s->client)
        s->client = upstream_client_new();

    const char *method = *req->method ? req->method : "GET";
    int cacheable = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    const char *clen = request_param(req, "CONTENT_LENGTH");
    int with_body = req->body_len > 0 || (clen && *clen && strcmp(method, "GET") != 0);

    struct buf url = BUF_INIT, lines = BUF_INIT;
    build_url(s, req->request_uri, &url);
    build_request_headers(req, cacheable, with_body, &lines);
    size_t nlines = 0;
    for (size_t i = 0; i < lines.len; i++)
        nlines += lines.data[i] == '\0';
    const char **hdrs = xcalloc(nlines + 1, sizeof *hdrs);
    for (size_t i = 0, k = 0; k < nlines; k++) {
        hdrs[k] = lines.data + i;
        i += strlen(lines.data + i) + 1;
    }

    struct upstream_req ureq = {
        .method = method,
        .url = url.data,
        .headers = hdrs,
        .body = with_body ? (req->body ? req->body : "") : NULL,
        .body_len = with_body ? req->body_len : 0,
        .connect_timeout_ms = s->connect_timeout_ms,
        .timeout_ms = s->timeout_ms,
        .max_bytes = UPSTREAM_MAX_BODY,
    };
    struct err e;
    err_clear(&e);
    if (upstream_fetch(s->client, &ureq, &s->ures, &e) < 0) {
        struct buf esc = BUF_INIT;
        log_warn("upstream %s: %s", log_escape(&esc, url.data, url.len, 200), e.text);
        buf_fini(&esc);
        fail_response(resp, s->ures.failure);
    } else {
        relay_response(s, resp);
    }
    upstream_resp_reset(&s->ures, 1 << 20);
    free(hdrs);
    buf_fini(&lines);
    buf_fini(&url);
}

static void upstream_destroy(void *state)
{
    struct upstream_state *s = state;
    if (!s)
        return;
    upstream_client_free(s->client);
    upstream_resp_fini(&s->ures);
    free(s->origin);
    free(s);
}

const struct handler_ops handler_upstream_ops = {
    "upstream",
    upstream_create,
    upstream_handle,
    upstream_destroy,
};
