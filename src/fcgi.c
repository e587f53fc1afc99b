/* fcgi.c - the libfcgi adapter.
 *
 * libfcgi facts that shape this file (see ANCHORS e1): FCGX_Accept_r
 * returns a negative errno or -9999 when a shutdown is pending, and any
 * negative value means "leave the loop"; params are freed by the next
 * Finish/Accept, so the caller copies what outlives the request; output is
 * buffered in 8 KB records. The header block is built in one buffer and
 * written with a single FCGX_PutStr, then the body with another, so a
 * response costs two copies into libfcgi's stream and no more.
 *
 * Closing: libfcgi closes a finished connection "lingering" (shutdown, then
 * poll and read until nginx closes its end, up to 2 s) so that unread
 * request bytes cannot turn the close into a TCP reset. That costs every
 * request three more system calls and a sleep until nginx has handled the
 * answer. When everything nginx sent has been read (the stdin stream has
 * ended: nginx sends nothing after it and never multiplexes), a reset is
 * impossible, so such connections are closed at once (FCGX_Detach makes
 * FCGX_Finish_r skip the linger); only a request whose body was left
 * unread keeps libfcgi's lingering close. */
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
/* Most bytes fcgi_finish reads to reach the end of stdin before a quick
 * close (normally none: only the empty end-of-stdin record is left). */
#define FCGI_QUICK_DRAIN_MAX (64u << 10)

struct fcgi_conn {
    FCGX_Request req;
    struct buf head;
    int accepted;
    int body_read; /* fcgi_read_body read the whole body */
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
    c->body_read = 0;
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
    c->body_read = 1;
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

/* Appends v in decimal (printf's machinery was a tenth of the adapter's
 * cost per response). */
static void append_uint(struct buf *b, unsigned long long v)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(b, digits + n, sizeof digits - n);
}

int fcgi_write_response(struct fcgi_conn *c, const struct response *resp, int head_only)
{
    struct buf *h = &c->head;
    buf_reset(h, 1 << 16);
    const char *reason = response_reason(resp->status);
    buf_append(h, "Status: ", 8);
    append_uint(h, resp->status > 0 ? (unsigned)resp->status : 0u);
    if (*reason) {
        buf_append_char(h, ' ');
        buf_append_str(h, reason);
    }
    buf_append_str(h, "\r\nContent-Type: ");
    if (resp->content_type.len)
        buf_append(h, resp->content_type.data, resp->content_type.len);
    else
        buf_append_str(h, "text/html");
    buf_append_str(h, "\r\nContent-Length: ");
    append_uint(h, resp->body.len);
    buf_append(h, "\r\n", 2);
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

/* True when the request has no body or its body has been read, so what
 * is left of stdin is at most the end-of-stdin record. */
static int body_consumed(const struct fcgi_conn *c)
{
    if (c->body_read)
        return 1;
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", c->req.envp);
    return !cl || !*cl || (cl[0] == '0' && !cl[1]);
}

void fcgi_finish(struct fcgi_conn *c)
{
    if (!c->accepted)
        return;
    FCGX_Stream *in = c->req.in;
    if (c->req.keepConnection) {
        /* On a kept connection, unread stdin records would be taken for
         * the next request: read the rest of the body (bounded), or close
         * the connection. */
        if (in && !FCGX_HasSeenEOF(in) && fcgi_drain_body(c, FCGI_DRAIN_MAX) < 0)
            c->req.keepConnection = 0;
    } else if (in && (FCGX_HasSeenEOF(in) ||
                      (body_consumed(c) && fcgi_drain_body(c, FCGI_QUICK_DRAIN_MAX) == 0))) {
        /* Everything nginx sent has been read: close without lingering
         * (see the top of the file). */
        FCGX_Detach(&c->req);
    }
    FCGX_Finish_r(&c->req);
    c->accepted = 0;
}

void fcgi_shutdown_pending(void)
{
    FCGX_ShutdownPending();
}
