/* handler_upstream.c - relays a request to an HTTP origin and its answer
 * back to nginx, deciding from the origin's headers whether the page may be
 * stored (cachepolicy).
 *
 * What is sent is relay.c's business (relay_build(): the path nginx routed
 * on, re-encoded; for a page that may be stored only what cache.key
 * describes; Host and X-Forwarded-* built by memfill; see relay.c and
 * doc/security.md for why). HEAD is relayed as GET (nginx's
 * proxy_cache_convert_head): the full body is what gets stored, and nginx
 * sends a HEAD client the headers only.
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
#include "memfill/relay.h"
#include "memfill/srcache.h"
#include "memfill/outcome.h"
#include "memfill/httpclient.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Origin bodies above this are refused with a 502. */
#define UPSTREAM_MAX_BODY (64UL << 20)

struct upstream_state {
    char *origin; /* scheme://host[:port][/path], without a trailing '/' */
    char *origin_host;       /* the route's origin_host, or NULL */
    struct key_pattern *key; /* cache.key, which decides what is relayed */
    struct relay_rules rules;
    struct relay_request rr; /* reused from request to request */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    struct cachepolicy_limits limits;
    struct http_client *client; /* NULL until the first request */
    struct http_resp ures;      /* reused from request to request */
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
    s->origin_host = r->origin_host ? xstrdup(r->origin_host) : NULL;
    struct err e;
    err_clear(&e);
    const char *key = cfg->key ? cfg->key : CONFIG_DEFAULT_KEY;
    s->key = key_pattern_compile(key, &e);
    if (!s->key) {
        err_set(err, cfg->path, 0, 0, "cache.key: %s (at byte %d of \"%s\")", e.text, e.column,
                key);
        free(s->origin_host);
        free(s->origin);
        free(s);
        return -1;
    }
    s->rules.origin = s->origin;
    s->rules.origin_host = s->origin_host;
    s->rules.key = s->key;
    relay_request_init(&s->rr);
    s->connect_timeout_ms = r->connect_timeout_ms;
    s->timeout_ms = r->timeout_ms;
    s->limits.default_ttl = r->ttl >= 0 ? r->ttl : (long)cfg->ttl;
    s->limits.min_ttl = cfg->min_ttl;
    s->limits.max_ttl = cfg->max_ttl;
    s->srcache = r->srcache;
    http_resp_init(&s->ures);
    *state = s;
    return 0;
}

/* ---- the response ---- */

static int name_is(const struct http_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && util_ascii_caseeq(h->name, name, n);
}

static int is_dropped(const struct http_header *h)
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

static int is_unsafe(const struct http_header *h)
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
    struct http_resp *u = &s->ures;
    int have_ctype = 0, encoded = 0;
    resp->status = u->status;
    for (size_t i = 0; i < u->nheaders; i++) {
        const struct http_header *h = &u->headers[i];
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
        resp->no_store_reason = res.reason;
    } else if (encoded) {
        /* an encoded body replayed by nginx would lack its Content-Encoding */
        resp->no_store = 1;
        resp->no_store_reason = OUTCOME_SKIP_HANDLER;
    } else {
        resp->ttl = res.ttl;
    }
}

static void fail_response(struct response *resp, enum http_failure f)
{
    switch (f) {
    case HTTPC_TIMEOUT:
        response_error(resp, 504, "The origin server did not answer in time.");
        break;
    case HTTPC_TOO_LARGE:
        response_error(resp, 502, "The origin server's response is too large to relay.");
        break;
    case HTTPC_PROTOCOL:
        response_error(resp, 502, "The origin server sent an invalid response.");
        break;
    default:
        response_error(resp, 502, "The origin server did not answer.");
        break;
    }
    resp->no_store = 1;
    resp->no_store_reason = OUTCOME_SKIP_HANDLER;
}

static void upstream_handle(void *state, const struct request *req,
                            const struct route_match *m, struct response *resp)
{
    struct upstream_state *s = state;
    (void)m;
    struct relay_request *rr = &s->rr;
    if (relay_build(&s->rules, req, rr) < 0) {
        response_error(resp, 400, "The request target cannot be relayed.");
        resp->no_store = 1;
        resp->no_store_reason = OUTCOME_SKIP_HANDLER;
        return;
    }
    if (!s->client)
        s->client = http_client_new();

    const char **hdrs = xcalloc(rr->nlines + 1, sizeof *hdrs);
    for (size_t i = 0, k = 0; k < rr->nlines; k++) {
        hdrs[k] = rr->lines.data + i;
        i += strlen(rr->lines.data + i) + 1;
    }
    struct http_req ureq = {
        .method = rr->method,
        .url = rr->url.data,
        .headers = hdrs,
        .body = rr->send_body ? (req->body ? req->body : "") : NULL,
        .body_len = rr->send_body ? req->body_len : 0,
        .connect_timeout_ms = s->connect_timeout_ms,
        .timeout_ms = s->timeout_ms,
        .max_bytes = UPSTREAM_MAX_BODY,
    };
    struct err e;
    err_clear(&e);
    if (http_fetch(s->client, &ureq, &s->ures, &e) < 0) {
        struct buf esc = BUF_INIT;
        log_warn("upstream %s: %s", log_escape(&esc, rr->url.data, rr->url.len, 200), e.text);
        buf_fini(&esc);
        fail_response(resp, s->ures.failure);
    } else {
        relay_response(s, resp);
        /* what the relay knows outranks what the origin allows */
        if (rr->no_store) {
            resp->no_store = 1;
            resp->no_store_reason = rr->no_store_reason;
        }
    }
    http_resp_reset(&s->ures, 1 << 20);
    free(hdrs);
}

static void upstream_destroy(void *state)
{
    struct upstream_state *s = state;
    if (!s)
        return;
    http_client_free(s->client);
    http_resp_fini(&s->ures);
    relay_request_fini(&s->rr);
    key_pattern_free(s->key);
    free(s->origin_host);
    free(s->origin);
    free(s);
}

const struct handler_ops handler_upstream_ops = {
    "upstream",
    upstream_create,
    upstream_handle,
    upstream_destroy,
};
