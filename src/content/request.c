/* request.c - the borrowed request view and the response buffers.
 *
 * What is worked out from the params once per request lives in the
 * request too, so no reader works it out again: $uri (request_init) and
 * the key with its drift verdict (request_key).
 *
 * The worker keeps one struct response for its whole life and resets it
 * between requests, so a long-lived worker does not allocate per request
 * once its buffers have grown to the usual page size.
 *
 * nginx passes each header line as its own param, so a header sent twice
 * is two HTTP_* params and request_param() sees only the first: a rule
 * that reads a header reads every instance through request_param_all()
 * or request_header_joined() (doc/security.md, "Headers with several
 * instances"). */
#include "config.h"

#include "memfill/request.h"
#include "memfill/conf.h"
#include "memfill/keypattern.h"
#include "memfill/urinorm.h"

#include <stdio.h>
#include <string.h>

const char *request_param(const struct request *r, const char *name)
{
    size_t n = strlen(name);
    for (char **e = r->envp; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

const char *request_param_cb(void *ctx, const char *name)
{
    const struct request *r = ctx;
    if (r->key_uri && strcmp(name, "DOCUMENT_URI") == 0)
        return r->key_uri;
    return request_param(r, name);
}

size_t request_param_all(const struct request *r, const char *name, const char *sep,
                         struct buf *out)
{
    size_t n = strlen(name), count = 0;
    for (char **e = r->envp; e && *e; e++) {
        if (strncmp(*e, name, n) != 0 || (*e)[n] != '=')
            continue;
        if (out && count)
            buf_append_str(out, sep);
        if (out)
            buf_append_str(out, *e + n + 1);
        count++;
    }
    return count;
}

size_t request_param_all_cb(void *ctx, const char *name, const char *sep, struct buf *out)
{
    return request_param_all(ctx, name, sep, out);
}

void request_eval_key(const struct key_pattern *p, const struct request *r, struct buf *out)
{
    key_pattern_eval_all(p, request_param_cb, request_param_all_cb, (void *)r, out);
}

void request_key(struct request *r, const struct key_pattern *p)
{
    buf_reset(&r->own_key, 1 << 16);
    request_eval_key(p, r, &r->own_key);
    const char *own = r->own_key.data ? r->own_key.data : "";
    if (r->memc_key) {
        r->key = r->memc_key;
        r->key_len = strlen(r->memc_key);
        r->key_drift = r->key_len != r->own_key.len ||
                       (r->key_len && memcmp(r->key, own, r->key_len) != 0);
    } else {
        r->key = own;
        r->key_len = r->own_key.len;
        r->key_drift = 0;
    }
    r->key_ready = 1;
}

/* Returns 1 when s holds a byte nginx refuses anywhere in a request
 * target (key_normalize_uri's first check). */
static int has_refused_byte(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

const char *request_header_separator(const char *name)
{
    return strcmp(name, "HTTP_COOKIE") == 0 ? "; " : ", ";
}

size_t request_header_joined(const struct request *r, const char *name, struct buf *out)
{
    return request_param_all(r, name, request_header_separator(name), out);
}

void request_init(struct request *r, char **envp)
{
    memset(r, 0, sizeof *r);
    r->envp = envp;
    const char *m = request_param(r, "REQUEST_METHOD");
    r->method = m ? m : "";
    r->method_bit = config_method_bit(r->method);
    const char *uri = request_param(r, "REQUEST_URI");
    r->request_uri = uri ? uri : "";
    const char *q = request_param(r, "QUERY_STRING");
    if (!q) {
        const char *qm = strchr(r->request_uri, '?');
        q = qm ? qm + 1 : "";
    }
    r->query = q;
    /* $uri, normalised here once: the router, the handlers, the relay and
     * the key (request_param_cb's DOCUMENT_URI) all read it from r. */
    const char *doc = request_param(r, "DOCUMENT_URI");
    buf_init(&r->path);
    int whole = 0;
    if (doc && *doc) {
        buf_append_str(&r->path, doc);
        r->path_ok = 1;
    } else {
        /* As a key reads it: the whole target, whose args end the path but
         * fail it when they hold a byte nginx refuses; the router needs a
         * path before the '?'. nginx answers a refused byte with 400
         * itself, so the second pass below is for other clients only. */
        const char *qm = strchr(r->request_uri, '?');
        size_t plen = qm ? (size_t)(qm - r->request_uri) : strlen(r->request_uri);
        whole = uri && key_normalize_uri(uri, strlen(uri), &r->path) == 0;
        r->path_ok = plen > 0 && whole;
        if (!whole && qm && plen > 0 && has_refused_byte(qm))
            r->path_ok = key_normalize_uri(r->request_uri, plen, &r->path) == 0;
    }
    if (!r->path.data)
        buf_append(&r->path, "", 0);
    /* A key reads DOCUMENT_URI even when it is empty. */
    r->key_uri = doc ? doc : whole ? r->path.data : "";
    buf_init(&r->own_key);
    r->key = "";
    r->memc_key = request_param(r, "MEMC_KEY");
    r->memc_backend = request_param(r, "MEMC_BACKEND");
    r->memc_status = request_param(r, "MEMC_STATUS");
    const char *warm = request_param(r, "MEMFILL_WARM");
    r->warm = warm && strcmp(warm, "1") == 0;
}

void request_fini(struct request *r)
{
    buf_fini(&r->path);
    buf_fini(&r->own_key);
    r->key_uri = NULL;
    r->key = "";
    r->key_ready = 0;
}

void response_init(struct response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    resp->ttl = -1;
}

void response_fini(struct response *resp)
{
    buf_fini(&resp->content_type);
    buf_fini(&resp->headers);
    buf_fini(&resp->body);
    buf_fini(&resp->tags);
}

void response_reset(struct response *resp, size_t keep)
{
    buf_reset(&resp->content_type, keep);
    buf_reset(&resp->headers, keep);
    buf_reset(&resp->body, keep);
    buf_reset(&resp->tags, keep);
    resp->status = 200;
    resp->no_store = 0;
    resp->no_store_reason = OUTCOME_STORED;
    resp->ttl = -1;
    resp->limit = RESPONSE_LIMIT_NONE;
}

int response_add_header(struct response *resp, const char *name, const char *value,
                        size_t value_len)
{
    if (strpbrk(name, "\r\n:") || !*name || memchr(value, '\r', value_len) ||
        memchr(value, '\n', value_len) || memchr(value, '\0', value_len))
        return -1;
    buf_append_str(&resp->headers, name);
    buf_append(&resp->headers, ": ", 2);
    buf_append(&resp->headers, value, value_len);
    buf_append(&resp->headers, "\r\n", 2);
    return 0;
}

const char *response_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Moved Temporarily";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Request Entity Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Time-out";
    default: return "";
    }
}

void response_error(struct response *resp, int status, const char *message)
{
    buf_reset(&resp->body, 1 << 20);
    buf_reset(&resp->headers, 1 << 16);
    buf_reset(&resp->content_type, 1 << 10);
    buf_append_str(&resp->content_type, "text/html; charset=utf-8");
    resp->status = status;
    buf_printf(&resp->body,
               "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
               "<body><h1>%d %s</h1><p>%s</p></body></html>\n",
               status, response_reason(status), status, response_reason(status), message);
}
