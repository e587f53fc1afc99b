/* urlreq.c - URL to FastCGI params, the way nginx fills them.
 *
 * DOCUMENT_URI is nginx's $uri (decoded, slashes merged, dot segments
 * removed: key_normalize_uri); REQUEST_URI is the target as given;
 * QUERY_STRING the raw part after '?'. A URL without a host gets
 * "localhost", as a request without a Host header would get server_name. */
#include "config.h"

#include "memfill/urlreq.h"
#include "memfill/key.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>

int urlreq_add(struct urlreq *u, const char *name, const char *value)
{
    if (u->n >= URLREQ_MAX_PARAMS)
        return -1;
    u->envp[u->n++] = xasprintf("%s=%s", name, value);
    u->envp[u->n] = NULL;
    return 0;
}

int urlreq_build(struct urlreq *u, const char *method, const char *url, struct err *err)
{
    memset(u, 0, sizeof u->envp);
    u->n = 0;
    const char *scheme = "http";
    const char *host = "localhost";
    size_t host_len = strlen(host);
    const char *target = url;
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
        scheme = url[4] == 's' ? "https" : "http";
        const char *h = strstr(url, "://") + 3;
        const char *slash = strchr(h, '/');
        host = h;
        host_len = slash ? (size_t)(slash - h) : strlen(h);
        target = slash ? slash : "/";
        if (host_len == 0) {
            err_set(err, NULL, 0, 0, "URL \"%s\" has no host", url);
            return -1;
        }
    }
    if (target[0] != '/') {
        err_set(err, NULL, 0, 0, "URL \"%s\" must start with / or http(s)://", url);
        return -1;
    }
    struct buf path = BUF_INIT;
    if (key_normalize_uri(target, strlen(target), &path) < 0) {
        buf_fini(&path);
        err_set(err, NULL, 0, 0, "URL \"%s\": nginx would answer 400 to this target", url);
        return -1;
    }
    const char *q = strchr(target, '?');
    char *hoststr = xstrndup(host, host_len);
    char *name = xstrdup(hoststr);
    char *colon = strrchr(name, ':');
    if (colon && name[0] != '[')
        *colon = '\0';
    urlreq_add(u, "REQUEST_METHOD", method);
    urlreq_add(u, "REQUEST_URI", target);
    urlreq_add(u, "DOCUMENT_URI", path.data ? path.data : "/");
    urlreq_add(u, "QUERY_STRING", q ? q + 1 : "");
    urlreq_add(u, "HTTP_HOST", hoststr);
    urlreq_add(u, "SERVER_NAME", name);
    urlreq_add(u, "REQUEST_SCHEME", scheme);
    urlreq_add(u, "SERVER_PROTOCOL", "HTTP/1.1");
    urlreq_add(u, "GATEWAY_INTERFACE", "CGI/1.1");
    free(hoststr);
    free(name);
    buf_fini(&path);
    return 0;
}

void urlreq_fini(struct urlreq *u)
{
    for (int i = 0; i < u->n; i++)
        free(u->envp[i]);
    u->n = 0;
    u->envp[0] = NULL;
}
