/* request.c - the borrowed request view and the response buffers.
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
#include "memfill/config.h"
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
    return request_param(ctx, name);
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
    const char *doc = request_param(r, "DOCUMENT_URI");
    buf_init(&r->path);
    if (doc && *doc) {
        buf_append_str(&r->path, doc);
        r->path_ok = 1;
    } else {
        const char *qm = strchr(r->request_uri, '?');
        size_t plen = qm ? (size_t)(qm - r->request_uri) : strlen(r->request_uri);
        r->path_ok = plen > 0 && key_normalize_uri(r->request_uri, plen, &r->path) == 0;
    }
    if (!r->path.data)
        buf_append(&r->path, "", 0);
    r->memc_key = request_param(r, "MEMC_KEY");
    r->memc_backend = request_param(r, "MEMC_BACKEND");
    r->memc_status = request_param(r, "MEMC_STATUS");
}

void request_fini(struct request *r)
{
    buf_fini(&r->path);
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
    resp->no_store_reason = 0;
    resp->ttl = -1;
    resp->event = 0;
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
