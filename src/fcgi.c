/* fcgi.c - the libfcgi adapter.
 *
 * libfcgi facts that shape this file (see ANCHORS e1): FCGX_Accept_r
 * returns a negative errno or -9999 when a shutdown is pending, and any
 * negative value means "leave the loop"; params are freed by the next
 * Finish/Accept, so the caller copies what outlives the request; output is
 * buffered in 8 KB records. The header block is built in one buffer and
 * written with a single FCGX_PutStr, then the body with another, so a
 * response costs two copies into libfcgi's stream and no more. */
#include "config.h"

#include "memfill/fcgi.h"
#include "memfill/util.h"

#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most body bytes fcgi_finish reads to keep a kept-alive connection in
 * step; beyond this the connection is closed instead. */
#define FCGI_DRAIN_MAX (4u << 20)

struct fcgi_conn {
    FCGX_Request req;
    struct buf head;
    int accepted;
};

struct fcgi_conn *fcgi_conn_new(int listen_fd)
{
    if (FCGX_Init() != 0)
        return NULL;
    struct fcgi_conn *c = xcalloc(1, sizeof *c);
    if (FCGX_InitRequest(&c->req, listen_fd, 0) != 0) {
        free(c);
        return NULL;
    }
    buf_init(&c->head);
    return c;
}

void fcgi_conn_free(struct fcgi_conn *c)
{
    if (!c)
        return;
    if (c->accepted)
        FCGX_Finish_r(&c->req);
    FCGX_Free(&c->req, 1);
    buf_fini(&c->head);
    free(c);
}

int fcgi_wait_fd(const struct fcgi_conn *c)
{
    /* A connection nginx asked to keep (FCGI_KEEP_CONN) brings the next
     * request itself; otherwise the next one comes through the listener. */
    return c->req.ipcFd >= 0 ? c->req.ipcFd : c->req.listen_sock;
}

int fcgi_accept(struct fcgi_conn *c, char ***envp)
{
    int rc = FCGX_Accept_r(&c->req);
    if (rc < 0) {
        c->accepted = 0;
        return rc;
    }
    c->accepted = 1;
    *envp = c->req.envp;
    return 0;
}

int fcgi_read_body(struct fcgi_conn *c, size_t len, struct buf *out)
{
    buf_reserve(out, len);
    while (len > 0) {
        int chunk = len > (1u << 20) ? (1 << 20) : (int)len;
        int n = FCGX_GetStr(out->data + out->len, chunk, c->req.in);
        if (n <= 0)
            return -1;
        out->len += (size_t)n;
        len -= (size_t)n;
    }
    out->data[out->len] = '\0';
    return 0;
}

int fcgi_drain_body(struct fcgi_conn *c, size_t limit)
{
    char scratch[8192];
    size_t total = 0;
    for (;;) {
        int n = FCGX_GetStr(scratch, sizeof scratch, c->req.in);
        if (n <= 0)
            return FCGX_GetError(c->req.in) ? -1 : 0;
        total += (size_t)n;
        if (total > limit) {
            /* The rest stays unread: never reuse this connection. */
            c->req.keepConnection = 0;
            return -1;
        }
    }
}

int fcgi_write_response(struct fcgi_conn *c, const struct response *resp, int head_only)
{
    struct buf *h = &c->head;
    buf_reset(h, 1 << 16);
    const char *reason = response_reason(resp->status);
    buf_printf(h, "Status: %d%s%s\r\n", resp->status, *reason ? " " : "", reason);
    buf_append_str(h, "Content-Type: ");
    if (resp->content_type.len)
        buf_append(h, resp->content_type.data, resp->content_type.len);
    else
        buf_append_str(h, "text/html");
    buf_printf(h, "\r\nContent-Length: %zu\r\n", resp->body.len);
    if (resp->headers.len)
        buf_append(h, resp->headers.data, resp->headers.len);
    buf_append(h, "\r\n", 2);
    if (FCGX_PutStr(h->data, (int)h->len, c->req.out) < 0)
        return -1;
    if (!head_only && resp->body.len > 0) {
        const char *p = resp->body.data;
        size_t left = resp->body.len;
        while (left > 0) {
            int chunk = left > (1u << 30) ? (1 << 30) : (int)left;
            if (FCGX_PutStr(p, chunk, c->req.out) < 0)
                return -1;
            p += chunk;
            left -= (size_t)chunk;
        }
    }
    return 0;
}

void fcgi_finish(struct fcgi_conn *c)
{
    /* On a kept connection, unread stdin records would be taken for the
     * next request: read the rest of the body (bounded), or close the
     * connection. Without keep-alive libfcgi's close (shutdown, then read
     * until EOF) already keeps nginx from seeing a reset. */
    if (c->accepted && c->req.keepConnection && c->req.in && !FCGX_HasSeenEOF(c->req.in) &&
        fcgi_drain_body(c, FCGI_DRAIN_MAX) < 0)
        c->req.keepConnection = 0;
    if (c->accepted)
        FCGX_Finish_r(&c->req);
    c->accepted = 0;
}

void fcgi_shutdown_pending(void)
{
    FCGX_ShutdownPending();
}
