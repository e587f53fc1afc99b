/* fcgi.c - the libfcgi adapter.
 *
 * libfcgi facts that shape this file (libfcgi 2.4, fcgiapp.c): FCGX_Accept_r
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
 * FCGX_Finish_r skip the linger); only a request whose stdin could not be
 * read to its end keeps libfcgi's lingering close.
 *
 * The params deadline (doc/process.md, "The params deadline"). libfcgi
 * reads a request's records with blocking read()s and no time limit, so a
 * connection that sends nothing, or half a request, would hold the worker
 * until request_timeout. Every read of a connection therefore runs under a
 * deadline of its own (params_timeout_ms): taking the params, reading or
 * draining the body, and the final drain and close. The deadline is a
 * one-shot POSIX timer (CLOCK_MONOTONIC) whose signal's handler shuts the
 * connection's socket down (shutdown(2) is async-signal-safe): a blocked
 * read() returns at once (0, or EINTR as the handler is installed without
 * SA_RESTART), and so does every later read or poll on that socket, so it
 * does not matter where the signal lands, inside a read, between two, or
 * in libfcgi's lingering close. libfcgi then fails the request and closes
 * the connection. Two things make that safe:
 *   - memfill accepts connections itself (accept4 on the non-blocking
 *     listening socket) and hands the descriptor to libfcgi as a kept
 *     connection (ipcFd set, keepConnection set so FCGX_Accept_r's opening
 *     Finish leaves it open), so the timer is armed for a known descriptor
 *     before libfcgi reads a byte;
 *   - libfcgi's request has no listening socket (-1): when a request fails,
 *     FCGX_Accept_r closes the connection and would accept the next one
 *     itself, blocking and without a deadline; accept(-1) fails at once
 *     instead, and the worker polls again.
 * The alternatives were worse: SO_RCVTIMEO bounds each read, not the
 * request (one byte per period keeps it going); peeking until the whole
 * params stream is in the socket buffer fails for params larger than the
 * buffer; reading the records ahead of libfcgi means feeding them back
 * through another descriptor. The timer is armed only while this file
 * reads, and its signal is never blocked, so an expiry is delivered before
 * timer_settime() disarms it and nothing else ever sees an EINTR from it.
 * The accepted connection gets what libfcgi's own accept gave it:
 * TCP_NODELAY, and the FCGI_WEB_SERVER_ADDRS allow-list for IPv4 peers. */
#include "config.h"

#include "memfill/fcgi.h"
#include "memfill/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcgiapp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Most body bytes fcgi_finish reads to keep a kept-alive connection in
 * step; beyond this the connection is closed instead. */
#define FCGI_DRAIN_MAX (4u << 20)
/* Most bytes fcgi_finish reads to reach the end of stdin before a quick
 * close (normally none: only the empty end-of-stdin record is left; a
 * GET's ignored body is read here). */
#define FCGI_QUICK_DRAIN_MAX (64u << 10)

struct fcgi_conn {
    FCGX_Request req;
    struct buf head;
    int listen_fd;
    unsigned deadline_ms; /* params_timeout_ms */
    timer_t timer;
    int accepted;
    const char *allowed_peers; /* FCGI_WEB_SERVER_ADDRS, or NULL */
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

/* The deadline's state, shared with its signal handler: the descriptor it
 * shuts down (-1: disarmed) and whether it did. */
static volatile sig_atomic_t deadline_fd = -1;
static volatile sig_atomic_t deadline_passed;

static void on_deadline(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = deadline_fd;
    if (fd >= 0) {
        deadline_passed = 1;
        shutdown(fd, SHUT_RDWR);
    }
    errno = saved;
}

static int deadline_signal(void)
{
    return SIGRTMIN;
}

static void deadline_arm(struct fcgi_conn *c)
{
    deadline_passed = 0;
    deadline_fd = c->req.ipcFd;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = c->deadline_ms / 1000;
    its.it_value.tv_nsec = (long)(c->deadline_ms % 1000) * 1000000L;
    timer_settime(c->timer, 0, &its, NULL);
}

/* Disarms the deadline; returns 1 when it passed (the socket is shut). */
static int deadline_disarm(struct fcgi_conn *c)
{
    struct itimerspec zero;
    memset(&zero, 0, sizeof zero);
    timer_settime(c->timer, 0, &zero, NULL);
    int passed = deadline_passed;
    deadline_fd = -1;
    deadline_passed = 0;
    return passed;
}

struct fcgi_conn *fcgi_conn_new(int listen_fd, unsigned params_timeout_ms)
{
    if (FCGX_Init() != 0)
        return NULL;
    struct fcgi_conn *c = xcalloc(1, sizeof *c);
    /* No listening socket for libfcgi: this file accepts (see the top). */
    if (FCGX_InitRequest(&c->req, -1, 0) != 0) {
        free(c);
        return NULL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns EINTR */
    sa.sa_handler = on_deadline;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = deadline_signal();
    if (sigaction(deadline_signal(), &sa, NULL) < 0 ||
        timer_create(CLOCK_MONOTONIC, &sev, &c->timer) < 0) {
        free(c);
        return NULL;
    }
    c->listen_fd = listen_fd;
    c->deadline_ms = params_timeout_ms ? params_timeout_ms : 1;
    const char *allow = getenv("FCGI_WEB_SERVER_ADDRS");
    c->allowed_peers = allow && *allow ? allow : NULL;
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
    timer_delete(c->timer);
    buf_fini(&c->head);
    free(c);
}

int fcgi_wait_fd(const struct fcgi_conn *c)
{
    /* A connection nginx asked to keep (FCGI_KEEP_CONN) brings the next
     * request itself; otherwise the next one comes through the listener. */
    return c->req.ipcFd >= 0 ? c->req.ipcFd : c->listen_fd;
}

int fcgi_kept(const struct fcgi_conn *c)
{
    return c->req.ipcFd >= 0 && !c->accepted;
}

void fcgi_close_kept(struct fcgi_conn *c)
{
    if (!fcgi_kept(c))
        return;
    /* Idle: nothing is unread, so no lingering close. */
    FCGX_Detach(&c->req);
    FCGX_Free(&c->req, 1);
}

/* libfcgi's FCGI_WEB_SERVER_ADDRS: a comma-separated list of the IPv4
 * addresses allowed to connect (IPv6 and unix peers are not checked, as in
 * libfcgi). */
static int peer_allowed(const struct fcgi_conn *c)
{
    if (!c->allowed_peers || c->peer.ss_family != AF_INET)
        return 1;
    const struct sockaddr_in *in = (const struct sockaddr_in *)&c->peer;
    const char *p = c->allowed_peers;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[64];
        struct in_addr a;
        if (n < sizeof one) {
            memcpy(one, p, n);
            one[n] = '\0';
            if (inet_pton(AF_INET, one, &a) == 1 && a.s_addr == in->sin_addr.s_addr)
                return 1;
        }
        p += n + (comma ? 1 : 0);
    }
    return 0;
}

/* Errors of accept() that only concern the connection being accepted (it
 * was reset or aborted before we took it): try the next one. */
static int accept_error_is_transient(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED || e == EPROTO ||
           e == ECONNRESET || e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH ||
           e == EPERM; /* a firewall rule refused it */
}

int fcgi_accept(struct fcgi_conn *c, char ***envp)
{
    if (c->req.ipcFd < 0) {
        c->peer_len = sizeof c->peer;
        int fd = accept4(c->listen_fd, (struct sockaddr *)&c->peer, &c->peer_len, SOCK_CLOEXEC);
        if (fd < 0)
            return accept_error_is_transient(errno) ? -EAGAIN : -errno;
        if (c->peer.ss_family == AF_INET || c->peer.ss_family == AF_INET6) {
            int one = 1; /* no replies to our writes: Nagle only delays */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (!peer_allowed(c)) {
            close(fd);
            return -EAGAIN;
        }
        c->req.ipcFd = fd;
    }
    /* Handed to libfcgi as a kept connection: FCGX_Accept_r's opening
     * Finish must not close it. */
    c->req.keepConnection = 1;
    deadline_arm(c);
    int rc = FCGX_Accept_r(&c->req);
    int passed = deadline_disarm(c);
    if (rc < 0) {
        /* libfcgi closed the connection (a read failed: end of file, a
         * protocol error or the deadline) and found no listening socket. */
        c->accepted = 0;
        if (c->req.ipcFd >= 0)
            FCGX_Free(&c->req, 1);
        return passed ? -ETIMEDOUT : -EAGAIN;
    }
    if (passed) {
        /* libfcgi takes a read that fails between two params for the end
         * of the params: this "request" is what arrived before the
         * deadline, on a connection that is shut down. Drop it. */
        c->req.keepConnection = 0;
        FCGX_Finish_r(&c->req);
        c->accepted = 0;
        return -ETIMEDOUT;
    }
    c->accepted = 1;
    *envp = c->req.envp;
    return 0;
}

int fcgi_peer(const struct fcgi_conn *c, char *out, size_t outlen)
{
    const void *addr = NULL;
    unsigned port = 0;
    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&c->peer;
        addr = &in->sin_addr;
        port = ntohs(in->sin_port);
    } else if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&c->peer;
        addr = &in6->sin6_addr;
        port = ntohs(in6->sin6_port);
    }
    char host[INET6_ADDRSTRLEN];
    if (!addr || !inet_ntop(c->peer.ss_family, addr, host, sizeof host))
        return snprintf(out, outlen, "a unix socket peer");
    return snprintf(out, outlen, c->peer.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

int fcgi_read_body(struct fcgi_conn *c, size_t len, struct buf *out)
{
    buf_reserve(out, len);
    deadline_arm(c);
    while (len > 0) {
        int chunk = len > (1u << 20) ? (1 << 20) : (int)len;
        int n = FCGX_GetStr(out->data + out->len, chunk, c->req.in);
        if (n <= 0)
            break;
        out->len += (size_t)n;
        len -= (size_t)n;
    }
    int passed = deadline_disarm(c);
    out->data[out->len] = '\0';
    if (len > 0)
        return passed ? -ETIMEDOUT : -1;
    return 0;
}

/* fcgi_drain_body without the deadline (the caller holds one). */
static int drain(struct fcgi_conn *c, size_t limit)
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

int fcgi_drain_body(struct fcgi_conn *c, size_t limit)
{
    deadline_arm(c);
    int rc = drain(c, limit);
    if (deadline_disarm(c))
        rc = -1;
    return rc;
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

void fcgi_finish(struct fcgi_conn *c)
{
    if (!c->accepted)
        return;
    FCGX_Stream *in = c->req.in;
    /* The drain and libfcgi's close read from the connection: under the
     * deadline too, so a client that never ends its stdin cannot hold the
     * worker (nginx ends it at once). */
    deadline_arm(c);
    if (!c->req.keepConnection) {
        /* Complete the answer (the end of stdout, FCGI_END_REQUEST) before
         * draining, so even a client that never ends its stdin has all of
         * it. Not on a kept connection: the client may send its next
         * request once it has the END_REQUEST, and bytes read past this
         * request's stdin would be lost with libfcgi's buffer. */
        FCGX_FClose(c->req.err);
        FCGX_FClose(c->req.out);
    }
    if (c->req.keepConnection) {
        /* On a kept connection, unread stdin records would be taken for
         * the next request: read the rest of the body (bounded), or close
         * the connection. */
        if (in && !FCGX_HasSeenEOF(in) && drain(c, FCGI_DRAIN_MAX) < 0)
            c->req.keepConnection = 0;
    } else if (in && (FCGX_HasSeenEOF(in) || drain(c, FCGI_QUICK_DRAIN_MAX) == 0)) {
        /* Everything the client sent has been read (normally only the
         * end-of-stdin record was left; a body nobody read, such as a
         * GET's, is read here up to FCGI_QUICK_DRAIN_MAX): close without
         * lingering (see the top of the file). */
        FCGX_Detach(&c->req);
    }
    FCGX_Finish_r(&c->req);
    if (deadline_disarm(c) && c->req.ipcFd >= 0)
        FCGX_Free(&c->req, 1); /* shut down: never keep it */
    c->accepted = 0;
}

void fcgi_shutdown_pending(void)
{
    FCGX_ShutdownPending();
}
