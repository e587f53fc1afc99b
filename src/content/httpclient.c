/* httpclient.c - the HTTP client behind the upstream handler and URL data
 * sources; the only file that includes <curl/curl.h>.
 *
 * One easy handle per client, reused from request to request so curl's
 * connection cache keeps the origin connection alive. curl_easy_reset()
 * runs before each fetch, so no option of one request (a body, a custom
 * method, a header list) leaks into the next; it keeps the connection and
 * DNS caches, and the cookie engine is never turned on, so nothing one
 * visitor's request taught curl reaches another's. The handle remembers the
 * pid that created it: after a fork the child abandons (never cleans up)
 * its inherited copy, since cleaning up would close or shut down TLS on a
 * connection the parent still uses. Each handle holds one reference on
 * curl's global state (curl counts the calls to curl_global_init itself),
 * so freeing the last client leaves nothing behind under valgrind.
 *
 * The response is kept raw: names and values are not judged here beyond
 * what is needed to split a header line, because what may be relayed is the
 * handler's decision. Only the final response's headers are kept: a status
 * line starts a new block (after a 100 Continue or 103 Early Hints), and
 * lines after the block's end are trailers, which are dropped. */
#include "config.h"

#include "memfill/httpclient.h"
#include "memfill/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Headers beyond this many make the response a protocol error. */
#define UPSTREAM_MAX_HEADERS 256

struct http_client {
    CURL *curl;
    pid_t pid; /* process that created curl */
    char errbuf[CURL_ERROR_SIZE];
};

/* Handles inherited across fork and abandoned in this process. They stay
 * reachable from here so leak checkers do not report them; they are never
 * cleaned up (that would touch the parent's connections). */
struct abandoned {
    CURL *curl;
    struct abandoned *next;
};
static struct abandoned *abandoned_list;

/* What the callbacks of one fetch share. */
struct fetch_state {
    struct http_resp *resp;
    size_t max_bytes;
    int too_large;  /* the write callback refused the body */
    int bad_header; /* the header callback refused a line */
    int block_done; /* the blank line ending the header block was seen */
};

void http_resp_init(struct http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    buf_init(&resp->body);
}

static void clear_headers(struct http_resp *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    resp->nheaders = 0;
}

void http_resp_fini(struct http_resp *resp)
{
    clear_headers(resp);
    free(resp->headers);
    buf_fini(&resp->body);
    memset(resp, 0, sizeof *resp);
}

void http_resp_reset(struct http_resp *resp, size_t keep)
{
    clear_headers(resp);
    buf_reset(&resp->body, keep);
    resp->status = 0;
    resp->failure = HTTPC_OK;
}

const struct http_header *http_resp_header(const struct http_resp *resp,
                                                   const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < resp->nheaders; i++)
        if (resp->headers[i].name_len == n && util_ascii_caseeq(resp->headers[i].name, name, n))
            return &resp->headers[i];
    return NULL;
}

const char *http_failure_name(enum http_failure f)
{
    switch (f) {
    case HTTPC_OK: return "ok";
    case HTTPC_CONNECT: return "connect";
    case HTTPC_TIMEOUT: return "timeout";
    case HTTPC_TOO_LARGE: return "too large";
    case HTTPC_PROTOCOL: return "protocol";
    case HTTPC_REQUEST: return "request";
    }
    return "unknown";
}

struct http_client *http_client_new(void)
{
    return xcalloc(1, sizeof(struct http_client));
}

/* Drops c's handle if it was inherited across fork (see the top). */
static void abandon(struct http_client *c)
{
    if (!c->curl || c->pid == getpid())
        return;
    struct abandoned *a = xmalloc(sizeof *a);
    a->curl = c->curl;
    a->next = abandoned_list;
    abandoned_list = a;
    c->curl = NULL;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    abandon(c);
    if (c->curl) {
        curl_easy_cleanup(c->curl);
        curl_global_cleanup();
    }
    free(c);
}

/* Makes sure c has a handle of this process. Returns 0 or -1. */
static int client_ready(struct http_client *c)
{
    pid_t me = getpid();
    if (c->curl && c->pid == me)
        return 0;
    abandon(c);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    c->curl = curl_easy_init();
    if (!c->curl) {
        curl_global_cleanup();
        return -1;
    }
    c->pid = me;
    return 0;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void add_header(struct http_resp *resp, const char *name, size_t nlen,
                       const char *value, size_t vlen)
{
    if (resp->nheaders == resp->headers_cap) {
        resp->headers_cap = resp->headers_cap ? resp->headers_cap * 2 : 16;
        resp->headers = xrealloc(resp->headers, resp->headers_cap * sizeof *resp->headers);
    }
    struct http_header *h = &resp->headers[resp->nheaders++];
    h->name = xstrndup(name, nlen);
    h->name_len = nlen;
    h->value = xstrndup(value, vlen);
    h->value_len = vlen;
}

/* Joins an obsolete folded line onto the previous header's value. */
static void fold_header(struct http_header *h, const char *more, size_t n)
{
    char *v = xmalloc(h->value_len + 1 + n + 1);
    memcpy(v, h->value, h->value_len);
    v[h->value_len] = ' ';
    memcpy(v + h->value_len + 1, more, n);
    v[h->value_len + 1 + n] = '\0';
    free(h->value);
    h->value = v;
    h->value_len += 1 + n;
}

/* Parses "HTTP/x.y NNN reason" (or "HTTP/2 NNN"); returns NNN or -1. */
static int parse_status_line(const char *p, size_t n)
{
    const char *sp = memchr(p, ' ', n);
    if (!sp)
        return -1;
    size_t off = (size_t)(sp - p) + 1;
    if (n - off < 3)
        return -1;
    int st = 0;
    for (size_t i = 0; i < 3; i++) {
        char ch = p[off + i];
        if (ch < '0' || ch > '9')
            return -1;
        st = st * 10 + (ch - '0');
    }
    if (n - off > 3 && p[off + 3] != ' ')
        return -1;
    return st;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userdata)
{
    struct fetch_state *fs = userdata;
    struct http_resp *resp = fs->resp;
    size_t total = size * nitems;
    size_t n = total;
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        int st = parse_status_line(data, n);
        if (st < 0) {
            fs->bad_header = 1;
            return 0;
        }
        clear_headers(resp);
        resp->status = st;
        fs->block_done = 0;
        return total;
    }
    if (fs->block_done)
        return total; /* a trailer */
    if (n == 0) {
        fs->block_done = 1;
        return total;
    }
    if (is_blank(data[0])) {
        if (resp->nheaders == 0) {
            fs->bad_header = 1;
            return 0;
        }
        size_t a = 0;
        while (a < n && is_blank(data[a]))
            a++;
        fold_header(&resp->headers[resp->nheaders - 1], data + a, n - a);
        return total;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon || resp->nheaders >= UPSTREAM_MAX_HEADERS) {
        fs->bad_header = 1;
        return 0;
    }
    size_t nlen = (size_t)(colon - data);
    while (nlen > 0 && is_blank(data[nlen - 1]))
        nlen--;
    if (nlen == 0) {
        fs->bad_header = 1;
        return 0;
    }
    size_t vs = (size_t)(colon - data) + 1;
    while (vs < n && is_blank(data[vs]))
        vs++;
    size_t ve = n;
    while (ve > vs && is_blank(data[ve - 1]))
        ve--;
    add_header(resp, data, nlen, data + vs, ve - vs);
    return total;
}

static size_t on_body(char *data, size_t size, size_t nitems, void *userdata)
{
    struct fetch_state *fs = userdata;
    size_t n = size * nitems;
    struct buf *b = &fs->resp->body;
    if (fs->max_bytes && (n > fs->max_bytes || b->len > fs->max_bytes - n)) {
        fs->too_large = 1;
        return 0;
    }
    buf_append(b, data, n);
    return n;
}

/* Returns 1 when m is a syntactically valid method (an HTTP token). */
static int method_ok(const char *m)
{
    if (!*m)
        return 0;
    for (; *m; m++)
        if (!strchr("!#$%&'*+-.^_`|~", *m) && !(*m >= '0' && *m <= '9') &&
            !(*m >= 'A' && *m <= 'Z') && !(*m >= 'a' && *m <= 'z'))
            return 0;
    return 1;
}

static enum http_failure classify(CURLcode rc, const struct fetch_state *fs)
{
    if (fs->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return HTTPC_TOO_LARGE;
    if (fs->bad_header)
        return HTTPC_PROTOCOL;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return HTTPC_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
        return HTTPC_CONNECT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return HTTPC_REQUEST;
    default:
        return HTTPC_PROTOCOL;
    }
}

static int fail(struct http_resp *resp, enum http_failure f, struct err *err,
                const char *detail)
{
    resp->failure = f;
    err_set(err, NULL, 0, 0, "origin %s: %s", http_failure_name(f), detail);
    return -1;
}

/* Builds the header list, skipping unsafe lines, and removes curl's
 * "Expect: 100-continue" unless the caller set Expect itself. */
static struct curl_slist *build_headers(const char *const *lines, int *ok)
{
    struct curl_slist *list = NULL;
    int has_expect = 0;
    *ok = 1;
    for (const char *const *l = lines; l && *l; l++) {
        if (strpbrk(*l, "\r\n"))
            continue;
        if (util_ascii_caseeq(*l, "Expect:", 7))
            has_expect = 1;
        struct curl_slist *next = curl_slist_append(list, *l);
        if (!next) {
            *ok = 0;
            return list;
        }
        list = next;
    }
    if (!has_expect) {
        struct curl_slist *next = curl_slist_append(list, "Expect:");
        if (!next)
            *ok = 0;
        else
            list = next;
    }
    return list;
}

/* Sets every option of one request; returns CURLE_OK or the first error. */
static CURLcode set_options(struct http_client *c, const struct http_req *req,
                            struct curl_slist *hdrs, struct fetch_state *fs)
{
    CURL *h = c->curl;
    const char *method = req->method ? req->method : "GET";
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                         \
    do {                                                                                      \
        if (rc == CURLE_OK)                                                                   \
            rc = curl_easy_setopt(h, opt, val);                                               \
    } while (0)
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, "");
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* The target goes to the origin as the client sent it: no dot-segment
     * squashing. */
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    if (req->max_bytes)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_bytes);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, fs);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, fs);
    SET(CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (req->body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body);
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, method);
    }
#undef SET
    return rc;
}

int http_fetch(struct http_client *c, const struct http_req *req,
                   struct http_resp *resp, struct err *err)
{
    int saved_errno = errno;
    http_resp_reset(resp, 1 << 20);
    int ret = -1;
    if (!req->url || (req->method && !method_ok(req->method))) {
        fail(resp, HTTPC_REQUEST, err, "no URL, or an invalid method");
        goto out;
    }
    if (client_ready(c) < 0) {
        fail(resp, HTTPC_REQUEST, err, "curl could not be initialised");
        goto out;
    }
    curl_easy_reset(c->curl);
    c->errbuf[0] = '\0';
    int ok;
    struct curl_slist *hdrs = build_headers(req->headers, &ok);
    struct fetch_state fs = {resp, req->max_bytes, 0, 0, 0};
    CURLcode rc = ok ? set_options(c, req, hdrs, &fs) : CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c->curl);
    if (rc == CURLE_OK && resp->status == 0) {
        long code = 0;
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
        resp->status = (int)code;
    }
    /* The list is referenced by the handle until the next reset. */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        fail(resp, classify(rc, &fs), err, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    } else if (resp->status < 100 || resp->status > 999) {
        fail(resp, HTTPC_PROTOCOL, err, "no valid status line");
    } else {
        ret = 0;
    }
out:
    errno = saved_errno;
    return ret;
}
