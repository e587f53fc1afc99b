/* mcconn.c - a memcached connection whose every wait ends by a deadline.
 *
 * Why not a client library's timeouts: they apply to each poll or read, so
 * a node that sends one byte just inside the timeout, again and again,
 * holds the caller for as long as it likes. Here the caller passes one
 * absolute deadline (monotonic milliseconds) and each poll() sleeps only
 * for what is left of it. */
#include "config.h"

#include "memfill/mcconn.h"
#include "memfill/addr.h"
#include "memfill/util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MCCONN_ADDRS_MAX 8 /* addresses of one host name tried in turn */
#define MCCONN_IN_SIZE 4096
#define MCCONN_IOV_MAX 8

struct mcconn_addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

struct mcconn {
    char *address;
    int fd;                                 /* -1 when closed */
    struct mcconn_addr addrs[MCCONN_ADDRS_MAX];
    size_t naddrs;                          /* 0 until looked up */
    char in[MCCONN_IN_SIZE + 1];            /* received, not yet read (+1: a line's NUL) */
    size_t inlen;
    size_t skip;                            /* bytes of the line handed out last */
};

struct mcconn *mcconn_new(const char *address)
{
    struct mcconn *c = xcalloc(1, sizeof *c);
    c->address = xstrdup(address);
    c->fd = -1;
    return c;
}

void mcconn_free(struct mcconn *c)
{
    if (!c)
        return;
    mcconn_close(c);
    free(c->address);
    free(c);
}

void mcconn_close(struct mcconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->inlen = 0;
    c->skip = 0;
}

int mcconn_is_open(const struct mcconn *c)
{
    return c->fd >= 0;
}

size_t mcconn_pending(const struct mcconn *c)
{
    return c->inlen - c->skip;
}

/* Forgets the line handed out last. */
static void drop_skip(struct mcconn *c)
{
    if (!c->skip)
        return;
    memmove(c->in, c->in + c->skip, c->inlen - c->skip);
    c->inlen -= c->skip;
    c->skip = 0;
}

/* Waits until fd is ready for events or the deadline passes. Readiness
 * with an error (POLLERR, POLLHUP) also returns OK: the next send or recv
 * tells what happened. */
static enum mcconn_result wait_io(struct mcconn *c, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = util_now_ms();
        if (now >= deadline_ms)
            return MCCONN_TIMEOUT;
        uint64_t left = deadline_ms - now;
        struct pollfd pfd = {c->fd, events, 0};
        int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (rc < 0 && errno != EINTR)
            return MCCONN_CONNECTION;
        if (rc > 0)
            return MCCONN_OK;
    }
}

static int resolve(struct mcconn *c)
{
    struct addr a;
    c->naddrs = 0;
    if (addr_parse(c->address, ADDR_MEMCACHED | ADDR_UNIX_SUN_PATH, ADDR_MEMCACHED_PORT, &a,
                   NULL) < 0)
        return -1;
    if (a.is_unix) {
        struct sockaddr_un *un = (struct sockaddr_un *)&c->addrs[0].sa;
        size_t n = strlen(a.host); /* fits: ADDR_UNIX_SUN_PATH */
        memset(un, 0, sizeof *un);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, a.host, n + 1);
        c->addrs[0].len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        c->naddrs = 1;
        addr_fini(&a);
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", a.port);
    int gai = getaddrinfo(a.host, ps, &hints, &res);
    addr_fini(&a);
    if (gai != 0)
        return -1;
    for (struct addrinfo *ai = res; ai && c->naddrs < MCCONN_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof c->addrs[0].sa)
            continue;
        memcpy(&c->addrs[c->naddrs].sa, ai->ai_addr, ai->ai_addrlen);
        c->addrs[c->naddrs].len = ai->ai_addrlen;
        c->naddrs++;
    }
    freeaddrinfo(res);
    return c->naddrs ? 0 : -1;
}

/* Connects to one address by deadline_ms. */
static enum mcconn_result connect_one(struct mcconn *c, const struct mcconn_addr *a,
                                      uint64_t deadline_ms)
{
    int family = a->sa.ss_family;
    c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return MCCONN_CONNECTION;
    if (family == AF_INET || family == AF_INET6) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(c->fd, (const struct sockaddr *)&a->sa, a->len) == 0)
        return MCCONN_OK;
    if (errno != EINPROGRESS && errno != EINTR) {
        mcconn_close(c); /* refused, or a unix socket's backlog full (EAGAIN) */
        return MCCONN_CONNECTION;
    }
    enum mcconn_result r = wait_io(c, POLLOUT, deadline_ms);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (r == MCCONN_OK && (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr))
        r = MCCONN_CONNECTION;
    if (r != MCCONN_OK)
        mcconn_close(c);
    return r;
}

/* 1 when the open socket can take a command: the node has not closed it
 * and has sent nothing since the last complete reply. */
static int still_clean(struct mcconn *c)
{
    drop_skip(c);
    if (c->inlen)
        return 0;
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

enum mcconn_result mcconn_open(struct mcconn *c, uint64_t deadline_ms, int *fresh)
{
    *fresh = 0;
    if (c->fd >= 0) {
        if (still_clean(c))
            return MCCONN_OK;
        mcconn_close(c);
    }
    if (!c->naddrs && resolve(c) < 0)
        return MCCONN_CONNECTION;
    enum mcconn_result r = MCCONN_CONNECTION;
    for (size_t i = 0; i < c->naddrs; i++) {
        r = connect_one(c, &c->addrs[i], deadline_ms);
        if (r != MCCONN_CONNECTION)
            break; /* connected, or out of time */
    }
    if (r != MCCONN_OK) {
        c->naddrs = 0; /* look the name up again next time: the node may have moved */
        return r;
    }
    c->inlen = 0;
    c->skip = 0;
    *fresh = 1;
    return MCCONN_OK;
}

enum mcconn_result mcconn_send(struct mcconn *c, const struct iovec *iov, int iovcnt,
                               uint64_t deadline_ms)
{
    if (c->fd < 0)
        return MCCONN_CONNECTION;
    struct iovec v[MCCONN_IOV_MAX];
    if (iovcnt < 0 || iovcnt > MCCONN_IOV_MAX)
        return MCCONN_PROTOCOL;
    memcpy(v, iov, (size_t)iovcnt * sizeof *v);
    struct iovec *cur = v;
    int left = iovcnt;
    for (;;) {
        while (left && cur->iov_len == 0) {
            cur++;
            left--;
        }
        if (!left)
            return MCCONN_OK;
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = cur;
        msg.msg_iovlen = (size_t)left;
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return MCCONN_CONNECTION;
            enum mcconn_result r = wait_io(c, POLLOUT, deadline_ms);
            if (r != MCCONN_OK)
                return r;
            continue;
        }
        size_t sent = (size_t)n;
        while (left && sent >= cur->iov_len) {
            sent -= cur->iov_len;
            cur++;
            left--;
        }
        if (left) {
            cur->iov_base = (char *)cur->iov_base + sent;
            cur->iov_len -= sent;
        }
    }
}

/* Receives what is there (at most room bytes into p) by deadline_ms. */
static enum mcconn_result recv_some(struct mcconn *c, char *p, size_t room, size_t *got,
                                    uint64_t deadline_ms)
{
    for (;;) {
        ssize_t n = recv(c->fd, p, room, 0);
        if (n > 0) {
            *got = (size_t)n;
            return MCCONN_OK;
        }
        if (n == 0)
            return MCCONN_CONNECTION; /* the node closed the connection */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return MCCONN_CONNECTION;
        enum mcconn_result r = wait_io(c, POLLIN, deadline_ms);
        if (r != MCCONN_OK)
            return r;
    }
}

enum mcconn_result mcconn_line(struct mcconn *c, uint64_t deadline_ms, const char **line,
                               size_t *len)
{
    if (c->fd < 0)
        return MCCONN_CONNECTION;
    drop_skip(c);
    size_t scanned = 0;
    for (;;) {
        char *nl = memchr(c->in + scanned, '\n', c->inlen - scanned);
        if (nl) {
            size_t n = (size_t)(nl - c->in);
            if (n == 0 || c->in[n - 1] != '\r' || n - 1 > MCCONN_LINE_MAX)
                return MCCONN_PROTOCOL;
            c->in[n - 1] = '\0';
            *line = c->in;
            *len = n - 1;
            c->skip = n + 1;
            return MCCONN_OK;
        }
        scanned = c->inlen;
        if (c->inlen >= MCCONN_LINE_MAX + 2)
            return MCCONN_PROTOCOL;
        size_t got;
        enum mcconn_result r =
            recv_some(c, c->in + c->inlen, MCCONN_IN_SIZE - c->inlen, &got, deadline_ms);
        if (r != MCCONN_OK)
            return r;
        c->inlen += got;
    }
}

enum mcconn_result mcconn_read(struct mcconn *c, uint64_t deadline_ms, struct buf *out,
                               size_t n)
{
    if (c->fd < 0)
        return MCCONN_CONNECTION;
    drop_skip(c);
    size_t take = n < c->inlen ? n : c->inlen;
    buf_reserve(out, n);
    buf_append(out, c->in, take);
    c->skip = take;
    drop_skip(c);
    n -= take;
    while (n) {
        /* Straight into out: the buffer above is for lines. */
        size_t got;
        enum mcconn_result r = recv_some(c, out->data + out->len, n, &got, deadline_ms);
        if (r != MCCONN_OK)
            return r;
        out->len += got;
        out->data[out->len] = '\0';
        n -= got;
    }
    return MCCONN_OK;
}

enum mcconn_result mcconn_read_some(struct mcconn *c, uint64_t deadline_ms, struct buf *out,
                                    size_t max)
{
    if (c->fd < 0)
        return MCCONN_CONNECTION;
    drop_skip(c);
    if (c->inlen) {
        size_t take = max < c->inlen ? max : c->inlen;
        buf_append(out, c->in, take);
        c->skip = take;
        drop_skip(c);
        return MCCONN_OK;
    }
    buf_reserve(out, max);
    size_t got;
    enum mcconn_result r = recv_some(c, out->data + out->len, max, &got, deadline_ms);
    if (r != MCCONN_OK)
        return r;
    out->len += got;
    out->data[out->len] = '\0';
    return MCCONN_OK;
}
