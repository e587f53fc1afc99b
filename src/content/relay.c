/* relay.c - what the relay sends the origin (doc/security.md, "The relay:
 * what reaches the origin").
 *
 * memcached holds one answer per key for everyone, so the origin request
 * of a page that may be stored must be a function of the key alone: two
 * visitors whose requests have the same key must make the origin the same
 * request. Otherwise a visitor can make the origin answer something else
 * (another host in its links, another resource, a personal page) and have
 * it filed under a key other visitors read. Hence two regimes:
 *
 *   - the store is still possible (GET or HEAD, no session cookie, no
 *     Authorization, the route caches): the origin gets what the key holds
 *     and nothing more. The path, the args the key covers ($args,
 *     $query_string and $request_uri cover them all; $arg_NAME only that
 *     argument), the headers and cookies the key reads ($http_NAME,
 *     $cookie_NAME) with exactly the value the key took, and memfill's own
 *     Host and X-Forwarded-* below. Any other client header is dropped:
 *     a header that can change the answer but is not in the key is a
 *     poisoning vector, and an origin's Vary only helps if the origin
 *     remembers to send it. A miss therefore answers what a hit will.
 *   - the store is ruled out (another method, a session cookie,
 *     Authorization, "cache": false, cache.skip_uri): nothing is filed, so
 *     the client's end-to-end headers go through (each header's instances
 *     joined as nginx 1.23+ joins them), the body too.
 *
 * In both, the target is the path the key was computed from: usually the
 * path nginx routed on ($uri: decoded, dot segments and "//" resolved),
 * re-encoded, as nginx's proxy_pass does when it changes the URI; never
 * REQUEST_URI as sent, since "/a/b/..%2Fc" or "/x%3Fy" name another
 * resource to an origin that decodes them itself. Only a key holding
 * $request_uri (the raw target) gets the raw target relayed: then two
 * requests share a key only when they sent the same bytes. Re-encoding alone cannot help when $uri
 * holds a '?' (from %3F): "$uri$is_args$args" then gives "/x?y" for both
 * "/x%3Fy" and "/x?y", which are different resources whatever is relayed,
 * so such a page is not stored (skip_target), nor is one whose key lacks
 * the path, nor one whose MEMC_KEY differs from cache.key evaluated here
 * (the two configs disagree, so what was relayed is not what nginx keyed).
 *
 * Never relayed from the client, in either regime: hop-by-hop headers,
 * Host, Accept-Encoding (a stored page must be identity), Content-Length,
 * forwarding headers (Forwarded, X-Forwarded-*, X-Real-IP, Via...),
 * headers that re-target a request (X-Original-URL, X-Rewrite-URL,
 * X-HTTP-Method-Override...), anything named X-Memfill-*, and for GET and
 * HEAD the conditional and range headers and the body. memfill sends:
 * Host = the route's origin_host, else the key's own host ($http_host as
 * sent, or nginx's normalised $host) when the key holds one, else the
 * origin URL's host (curl's default); X-Forwarded-For = REMOTE_ADDR;
 * X-Forwarded-Proto = $scheme; X-Forwarded-Host = the key's host, else
 * nginx's server_name when it is a plain host name. */
#include "config.h"

#include "memfill/relay.h"
#include "memfill/outcome.h"
#include "memfill/util.h"

#include <string.h>

static const char hex[] = "0123456789ABCDEF";

static void append_pct(struct buf *out, unsigned char c)
{
    char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
    buf_append(out, esc, 3);
}

void relay_encode_path(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"#%<>?\\^`{|}", c))
            append_pct(out, c);
        else
            buf_append_char(out, (char)c);
    }
}

/* Args (and a raw target) are relayed in their raw, still encoded form:
 * only the bytes no URL may hold are encoded. */
static void encode_args(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            append_pct(out, c);
        else
            buf_append_char(out, (char)c);
    }
}

void relay_request_init(struct relay_request *rr)
{
    memset(rr, 0, sizeof *rr);
    buf_init(&rr->url);
    buf_init(&rr->lines);
    rr->method = "GET";
}

void relay_request_fini(struct relay_request *rr)
{
    buf_fini(&rr->url);
    buf_fini(&rr->lines);
}

/* ---- which client headers never go through ---- */

/* Param names compare ASCII case-insensitively: nginx sends them upper
 * case, but a header's name is case-insensitive and "HTTP_X_MEMFILl_T"
 * becomes the header X-Memfill-T all the same. */
static int name_is(const char *pn, size_t pl, const char *name)
{
    return strlen(name) == pl && util_ascii_caseeq(pn, name, pl);
}

static int name_starts(const char *pn, size_t pl, const char *prefix)
{
    size_t n = strlen(prefix);
    return pl >= n && util_ascii_caseeq(pn, prefix, n);
}

/* pn (pl bytes) is a param name after "HTTP_". */
static int never_relayed(const char *pn, size_t pl, int get_like)
{
    static const char *const names[] = {
        /* hop-by-hop: they describe nginx's connection, not ours */
        "CONNECTION", "KEEP_ALIVE", "TE", "TRAILER", "TRANSFER_ENCODING", "UPGRADE", "EXPECT",
        "PROXY", "HTTP2_SETTINGS",
        /* framing and encoding: curl frames the body; a stored page is identity */
        "CONTENT_LENGTH", "CONTENT_TYPE", "ACCEPT_ENCODING",
        /* memfill's own: the host and the forwarding headers */
        "HOST", "FORWARDED", "VIA", "X_REAL_IP", "X_CLIENT_IP", "TRUE_CLIENT_IP",
        "X_CLUSTER_CLIENT_IP", "CF_CONNECTING_IP", "FASTLY_CLIENT_IP", "X_ORIGINATING_IP",
        "X_HOST",
        /* headers that re-target a request behind the route memfill chose */
        "X_REWRITE_URL", "X_HTTP_METHOD_OVERRIDE", "X_HTTP_METHOD", "X_METHOD_OVERRIDE",
        NULL,
    };
    for (const char *const *n = names; *n; n++)
        if (name_is(pn, pl, *n))
            return 1;
    if (name_starts(pn, pl, "PROXY_") || name_starts(pn, pl, "X_FORWARDED_") ||
        name_starts(pn, pl, "X_ORIGINAL_") || name_starts(pn, pl, "X_MEMFILL_"))
        return 1;
    /* a 304 or 206 could not be stored, the full 200 can (nginx's proxy
     * cache does the same) */
    return get_like && (name_starts(pn, pl, "IF_") || name_is(pn, pl, "RANGE"));
}

/* ---- header lines ---- */

static int unsafe_value(const char *v, size_t n)
{
    return memchr(v, '\r', n) || memchr(v, '\n', n) || memchr(v, '\0', n);
}

/* Appends "Name: value" (or "Name;" for an empty value, which is how curl
 * is told to send an empty header) as a new line. */
static void add_line(struct relay_request *rr, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    buf_append(&rr->lines, name, nlen);
    if (vlen) {
        buf_append(&rr->lines, ": ", 2);
        buf_append(&rr->lines, value, vlen);
    } else {
        buf_append_char(&rr->lines, ';');
    }
    buf_append(&rr->lines, "", 1);
    rr->nlines++;
}

/* Appends "Name:", which tells curl not to send a header it would add. */
static void add_removal(struct relay_request *rr, const char *name_colon)
{
    buf_append_str(&rr->lines, name_colon);
    buf_append(&rr->lines, "", 1);
    rr->nlines++;
}

/* Turns "X_FOO_BAR" (after "HTTP_") into "X-Foo-Bar" in out; returns -1
 * when the param name holds anything but letters, digits and '_'. */
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

/* Adds header param pn (pl bytes after "HTTP_") with value v (an empty
 * one only with keep_empty). Returns 1 when a line was added. */
static int add_param_line(struct relay_request *rr, const char *pn, size_t pl, const struct buf *v,
                          int keep_empty)
{
    if ((!v->len && !keep_empty) || (v->len && unsafe_value(v->data, v->len)))
        return 0;
    struct buf name = BUF_INIT;
    int ok = header_name(pn, pl, &name) == 0;
    if (ok)
        add_line(rr, name.data, name.len, v->data, v->len);
    buf_fini(&name);
    return ok;
}

/* The client's end-to-end headers, one line per header name (all its
 * instances joined), in the order they first came. Returns 1 when an
 * Accept line was added. */
static int passthrough_headers(const struct request *req, int get_like,
                               struct relay_request *rr)
{
    struct buf param = BUF_INIT, value = BUF_INIT;
    int has_accept = 0;
    for (char **e = req->envp; e && *e; e++) {
        if (strncmp(*e, "HTTP_", 5) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        const char *pn = *e + 5;
        size_t pl = (size_t)(eq - pn), full = (size_t)(eq - *e) + 1; /* "HTTP_X=" */
        if (never_relayed(pn, pl, get_like))
            continue;
        int seen = 0; /* an earlier instance already sent them all */
        for (char **f = req->envp; f != e && !seen; f++)
            seen = strncmp(*f, *e, full) == 0;
        if (seen)
            continue;
        buf_reset(&param, 4096);
        buf_append(&param, *e, full - 1);
        buf_reset(&value, 1 << 16);
        request_header_joined(req, param.data, &value);
        if (add_param_line(rr, pn, pl, &value, 1) && name_is(pn, pl, "ACCEPT"))
            has_accept = 1;
    }
    buf_fini(&param);
    buf_fini(&value);
    return has_accept;
}

/* Returns 1 when a part of key before part i reads the same variable:
 * kind (a KEY_COVERS_* bit) and name (compared ASCII case-insensitively,
 * as nginx compares argument, cookie and header names). */
static int named_earlier(const struct key_pattern *key, size_t i, unsigned kind, const char *name)
{
    size_t nl = strlen(name);
    unsigned cv;
    const char *n2;
    for (size_t j = 0; j < i && (n2 = key_pattern_part(key, j, &cv)) != NULL; j++)
        if (cv == kind && strlen(n2) == nl && util_ascii_caseeq(n2, name, nl))
            return 1;
    return 0;
}

/* The headers and cookies the key reads, each with the value the key
 * took. Returns 1 when an Accept line was added. */
static int key_headers(const struct relay_rules *rules, const struct request *req,
                       struct relay_request *rr)
{
    struct buf value = BUF_INIT, cookies = BUF_INIT, all = BUF_INIT;
    int has_accept = 0, whole_cookie = 0;
    unsigned cv;
    const char *name;
    for (size_t i = 0; (name = key_pattern_part(rules->key, i, &cv)) != NULL; i++) {
        if (cv != KEY_COVERS_HEADER)
            continue;
        const char *pn = name + 5;
        size_t pl = strlen(pn);
        if (never_relayed(pn, pl, 1) || named_earlier(rules->key, i, cv, name))
            continue;
        buf_reset(&value, 1 << 16);
        key_param_value(request_param_cb, request_param_all_cb, (void *)req, name, &value);
        /* an empty value and no header give the same key: send neither */
        if (add_param_line(rr, pn, pl, &value, 0)) {
            has_accept |= name_is(pn, pl, "ACCEPT");
            whole_cookie |= name_is(pn, pl, "COOKIE");
        }
    }
    /* $cookie_NAME: those cookies alone, named as the key names them */
    if (!whole_cookie && (key_pattern_covers(rules->key) & KEY_COVERS_COOKIE) &&
        request_header_joined(req, "HTTP_COOKIE", &all) > 0 && all.len) {
        for (size_t i = 0; (name = key_pattern_part(rules->key, i, &cv)) != NULL; i++) {
            if (cv != KEY_COVERS_COOKIE)
                continue;
            size_t nl = strlen(name);
            const char *v;
            size_t vlen;
            if (named_earlier(rules->key, i, cv, name) || !key_cookie_find(all.data, all.len, name, nl, &v, &vlen) || !vlen ||
                unsafe_value(v, vlen))
                continue;
            if (cookies.len)
                buf_append(&cookies, "; ", 2);
            buf_append(&cookies, name, nl);
            buf_append_char(&cookies, '=');
            buf_append(&cookies, v, vlen);
        }
        if (cookies.len)
            add_line(rr, "Cookie", 6, cookies.data, cookies.len);
    }
    buf_fini(&value);
    buf_fini(&cookies);
    buf_fini(&all);
    return has_accept;
}

/* ---- the target ---- */

/* The args the key covers, appended to url with their '?' (a raw target
 * relayed as sent has them already). */
static void key_args(const struct relay_rules *rules, const struct request *req, unsigned covers,
                     struct buf *url)
{
    size_t qlen = strlen(req->query);
    if (covers & KEY_COVERS_REQUEST_URI)
        return;
    if (covers & KEY_COVERS_ARGS) {
        if (qlen) {
            buf_append_char(url, '?');
            encode_args(req->query, qlen, url);
        }
        return;
    }
    if (!(covers & KEY_COVERS_ARG))
        return;
    int first = 1;
    unsigned cv;
    const char *name;
    for (size_t i = 0; (name = key_pattern_part(rules->key, i, &cv)) != NULL; i++) {
        if (cv != KEY_COVERS_ARG)
            continue;
        size_t nl = strlen(name);
        const char *v;
        size_t vlen;
        if (named_earlier(rules->key, i, cv, name) || !key_arg_find(req->query, qlen, name, nl, &v, &vlen) || !vlen)
            continue;
        buf_append_char(url, first ? '?' : '&');
        first = 0;
        buf_append(url, name, nl);
        buf_append_char(url, '=');
        encode_args(v, vlen, url);
    }
}

/* Why the key cannot vouch for what is relayed, or OUTCOME_STORED. */
static enum store_outcome key_describes(const struct relay_rules *rules,
                                        const struct request *req, unsigned covers)
{
    if (!(covers & (KEY_COVERS_URI | KEY_COVERS_REQUEST_URI)))
        return OUTCOME_SKIP_TARGET; /* the key does not name the path */
    if (!(covers & KEY_COVERS_REQUEST_URI) && memchr(req->path.data, '?', req->path.len))
        return OUTCOME_SKIP_TARGET; /* "/x%3Fy" and "/x?y" share a key */
    /* request_key compared MEMC_KEY with cache.key (rules->key's pattern)
     * once for the whole request; unknown counts as differing */
    if (req->memc_key && (!req->key_ready || req->key_drift))
        return OUTCOME_SKIP_TARGET;
    return OUTCOME_STORED;
}

/* ---- memfill's own headers ---- */

/* The host the key holds, into out (empty when it holds none). */
static void key_host_value(const struct request *req, unsigned covers, const struct relay_rules *rules,
                           struct buf *out)
{
    unsigned cv;
    const char *name;
    for (size_t i = 0; (name = key_pattern_part(rules->key, i, &cv)) != NULL; i++) {
        if (cv == KEY_COVERS_HEADER && strcmp(name, "HTTP_HOST") == 0) {
            key_param_value(request_param_cb, request_param_all_cb, (void *)req, name, out);
            return;
        }
    }
    if (covers & KEY_COVERS_HOST)
        key_host(request_param_cb, (void *)req, out);
}

/* nginx's server_name when it is a plain host name (not "_", "", a
 * wildcard or a regex). */
static const char *plain_server_name(const struct request *req)
{
    const char *s = request_param(req, "SERVER_NAME");
    if (!s || !*s)
        return NULL;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == ':' || *c == '[' || *c == ']'))
            return NULL;
    return s;
}

static void forwarding_headers(const struct relay_rules *rules, const struct request *req,
                               unsigned covers, struct relay_request *rr)
{
    struct buf host = BUF_INIT;
    key_host_value(req, covers, rules, &host);
    if (host.len && unsafe_value(host.data, host.len))
        buf_reset(&host, 0);
    if (rules->origin_host)
        add_line(rr, "Host", 4, rules->origin_host, strlen(rules->origin_host));
    else if (host.len)
        add_line(rr, "Host", 4, host.data, host.len);

    const char *addr = request_param(req, "REMOTE_ADDR");
    if (addr && *addr && !unsafe_value(addr, strlen(addr)))
        add_line(rr, "X-Forwarded-For", 15, addr, strlen(addr));
    const char *scheme = request_param(req, "REQUEST_SCHEME");
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        const char *https = request_param(req, "HTTPS");
        scheme = https && *https && strcmp(https, "off") != 0 ? "https" : "http";
    }
    add_line(rr, "X-Forwarded-Proto", 17, scheme, strlen(scheme));
    const char *name = plain_server_name(req);
    if (host.len)
        add_line(rr, "X-Forwarded-Host", 16, host.data, host.len);
    else if (name)
        add_line(rr, "X-Forwarded-Host", 16, name, strlen(name));
    buf_fini(&host);
}

int relay_build(const struct relay_rules *rules, const struct request *req,
                struct relay_request *rr)
{
    buf_reset(&rr->url, 1 << 16);
    buf_reset(&rr->lines, 1 << 16);
    rr->nlines = 0;
    rr->send_body = 0;
    rr->no_store = 0;
    rr->no_store_reason = OUTCOME_STORED;
    const char *m = *req->method ? req->method : "GET";
    int get_like = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    rr->method = strcmp(m, "HEAD") == 0 ? "GET" : m;
    /* a method other than GET and HEAD is never stored either */
    rr->passthrough = req->store_ruled_out || !get_like;
    if (!req->path_ok || req->path.len == 0 || req->path.data[0] != '/')
        return -1;
    unsigned covers = key_pattern_covers(rules->key);

    /* a key holding the raw target ($request_uri) was computed from it:
     * relay it as sent; any other key was computed from $uri */
    int raw = (covers & KEY_COVERS_REQUEST_URI) != 0;
    if (raw && req->request_uri[0] != '/')
        return -1;
    buf_append_str(&rr->url, rules->origin);
    if (raw)
        encode_args(req->request_uri, strlen(req->request_uri), &rr->url);
    else
        relay_encode_path(req->path.data, req->path.len, &rr->url);
    int has_accept;
    if (rr->passthrough) {
        size_t qlen = strlen(req->query);
        if (qlen && !raw) {
            buf_append_char(&rr->url, '?');
            encode_args(req->query, qlen, &rr->url);
        }
        has_accept = passthrough_headers(req, get_like, rr);
        const char *ctype = request_param(req, "CONTENT_TYPE");
        const char *clen = request_param(req, "CONTENT_LENGTH");
        rr->send_body = !get_like && (req->body_len > 0 || (clen && *clen));
        if (ctype && *ctype && !unsafe_value(ctype, strlen(ctype)))
            add_line(rr, "Content-Type", 12, ctype, strlen(ctype));
        else if (rr->send_body)
            add_removal(rr, "Content-Type:"); /* not curl's default form type */
        /* nothing is filed, whatever the answer says (the store rules
         * that ruled it out are checked first and name the counter) */
        rr->no_store = 1;
        rr->no_store_reason = get_like ? OUTCOME_SKIP_RULE : OUTCOME_SKIP_METHOD;
    } else {
        key_args(rules, req, covers, &rr->url);
        has_accept = key_headers(rules, req, rr);
        enum store_outcome why = key_describes(rules, req, covers);
        if (why != OUTCOME_STORED) {
            rr->no_store = 1;
            rr->no_store_reason = why;
        }
    }
    if (!has_accept)
        add_removal(rr, "Accept:"); /* not curl's default "Accept: * / *" */
    forwarding_headers(rules, req, covers, rr);
    return 0;
}
