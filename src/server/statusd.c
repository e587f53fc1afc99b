/* statusd.c - a tiny HTTP/1.0 responder inside the master.
 *
 * The master must never wait on a client: it respawns workers, enforces
 * request_timeout and handles signals from the same loop. So nothing here
 * blocks. The listener and every client connection are non-blocking and
 * polled by the master together with its signalfd (statusd_pollfds); each
 * client is a small state machine (reading the head into a bounded
 * buffer, then writing the answer) advanced by statusd_serve() as far as
 * it goes without waiting. Three bounds keep slow or hostile clients
 * harmless (doc/security.md, "The admin listener"):
 *   - the allow-list is checked at accept: a peer outside admin.allow is
 *     closed before anything is read (admin_refused);
 *   - a connection gets STATUSD_DEADLINE_MS from accept to read its
 *     request and take its whole answer, then it is closed
 *     (admin_timeouts);
 *   - at most STATUSD_MAX_CLIENTS are open; beyond that a new connection
 *     is closed at once (admin_overflow).
 * One request per connection keeps it simple; status is scraped every
 * few seconds, not thousands of times a second. */
#include "config.h"

#include "memfill/statusd.h"
#include "memfill/addr.h"
#include "memfill/adminguard.h"
#include "memfill/log.h"
#include "memfill/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define HEAD_MAX 4096        /* request head bytes kept; larger is a 400 */
#define ACCEPT_BATCH 64      /* connections accepted per call, at most */
#define ACCEPT_PAUSE_MS 200  /* after accept fails (EMFILE...), stop watching */
#define REFUSAL_LOG_MS 10000 /* rate limit of the refusal/timeout lines */

struct client {
    int fd;                 /* -1: free */
    int writing;            /* 0 reading the head, 1 writing the answer */
    uint64_t deadline_ms;   /* accept + STATUSD_DEADLINE_MS */
    char addr[INET6_ADDRSTRLEN];
    char head[HEAD_MAX + 1];
    size_t head_len;
    struct buf out;         /* the whole answer */
    size_t out_off;         /* bytes of it already written */
};

struct statusd {
    int fd;
    int is_unix;
    struct stats *st;       /* where the admin_* counters go (set by serve) */
    uint64_t accept_paused_until;
    struct client clients[STATUSD_MAX_CLIENTS];
    size_t nclients;
    struct log_limit refusal_log, timeout_log, overflow_log;
};

struct statusd *statusd_new(const char *spec, struct err *err)
{
    struct addr a;
    struct err e;
    err_clear(&e);
    if (addr_parse(spec, ADDR_ADMIN_LISTEN, ADDR_MEMCACHED_PORT, &a, &e) < 0) {
        err_set(err, NULL, 0, 0, "admin.listen: %s", e.text);
        return NULL;
    }
    int fd = -1, is_unix = a.is_unix;
    if (is_unix) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        const char *path = a.host;
        struct stat st;
        memcpy(sa.sun_path, path, strlen(path)); /* fits: ADDR_UNIX_SUN_PATH */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto fail;
    } else {
        if (!strchr(spec, ':')) {
            err_set(err, NULL, 0, 0, "admin.listen: expected host:port, got \"%s\"", spec);
            addr_fini(&a);
            return NULL;
        }
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        char ps[8];
        snprintf(ps, sizeof ps, "%u", a.port);
        int gai = getaddrinfo(a.host, ps, &hints, &res);
        if (gai != 0 || !res) {
            err_set(err, NULL, 0, 0, "admin.listen: cannot resolve \"%s\"", spec);
            addr_fini(&a);
            return NULL;
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int rc = fd < 0 ? -1 : bind(fd, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        if (rc < 0)
            goto fail;
    }
    if (listen(fd, 64) < 0)
        goto fail;
    addr_fini(&a);
    struct statusd *sd = xcalloc(1, sizeof *sd);
    sd->fd = fd;
    sd->is_unix = is_unix;
    for (size_t i = 0; i < STATUSD_MAX_CLIENTS; i++)
        sd->clients[i].fd = -1;
    sd->refusal_log.interval_ms = REFUSAL_LOG_MS;
    sd->timeout_log.interval_ms = REFUSAL_LOG_MS;
    sd->overflow_log.interval_ms = REFUSAL_LOG_MS;
    return sd;
fail:
    err_set(err, NULL, 0, 0, "admin.listen: cannot listen on %s: %s", spec, strerror(errno));
    addr_fini(&a);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void client_close(struct statusd *sd, struct client *c)
{
    close(c->fd);
    c->fd = -1;
    buf_fini(&c->out);
    c->out_off = 0;
    c->head_len = 0;
    c->writing = 0;
    sd->nclients--;
    if (sd->st)
        stats_master(sd->st)->admin_open = sd->nclients;
}

void statusd_free(struct statusd *sd)
{
    if (!sd)
        return;
    for (size_t i = 0; i < STATUSD_MAX_CLIENTS; i++)
        if (sd->clients[i].fd >= 0)
            client_close(sd, &sd->clients[i]);
    close(sd->fd);
    free(sd);
}

void statusd_close_fds(struct statusd *sd)
{
    close(sd->fd);
    for (size_t i = 0; i < STATUSD_MAX_CLIENTS; i++)
        if (sd->clients[i].fd >= 0)
            close(sd->clients[i].fd);
}

size_t statusd_pollfds(const struct statusd *sd, struct pollfd *pfd)
{
    size_t n = 0;
    if (util_now_ms() >= sd->accept_paused_until)
        pfd[n++] = (struct pollfd){sd->fd, POLLIN, 0};
    for (size_t i = 0; i < STATUSD_MAX_CLIENTS; i++) {
        const struct client *c = &sd->clients[i];
        if (c->fd >= 0)
            pfd[n++] = (struct pollfd){c->fd, c->writing ? POLLOUT : POLLIN, 0};
    }
    return n;
}

int statusd_wait_ms(const struct statusd *sd)
{
    uint64_t now = util_now_ms(), next = UINT64_MAX;
    for (size_t i = 0; i < STATUSD_MAX_CLIENTS; i++)
        if (sd->clients[i].fd >= 0 && sd->clients[i].deadline_ms < next)
            next = sd->clients[i].deadline_ms;
    if (sd->accept_paused_until > now && sd->accept_paused_until < next)
        next = sd->accept_paused_until;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
}

/* Puts the status line, headers and body in c->out and starts writing. */
static void reply(struct client *c, int status, const char *type, const struct buf *body)
{
    buf_printf(&c->out,
               "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
               status,
               status == 200   ? "OK"
               : status == 400 ? "Bad Request"
               : status == 403 ? "Forbidden"
                               : "Not Found",
               type, body ? body->len : 0);
    if (body && body->len)
        buf_append(&c->out, body->data, body->len);
    c->out_off = 0;
    c->writing = 1;
}

/* Finds header name (case-insensitive) in the request head; copies its
 * value into out. */
static int header_value(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (util_ascii_caseeq(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r\n");
            if (vl >= outlen)
                return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 0;
        }
    }
    return -1;
}

/* The head is in (complete, cut by EOF, or too large): decide the answer. */
static void answer(struct statusd *sd, struct client *c, int complete, struct stats *st,
                   const struct status_info *info)
{
    c->head[c->head_len] = '\0';
    if (!complete) {
        reply(c, 400, "text/plain", NULL);
        return;
    }
    char token[256] = "";
    header_value(c->head, "X-Memfill-Token", token, sizeof token);
    if (!admin_allowed(info->cfg, c->addr, token)) {
        stats_master(st)->admin_refused++;
        log_limited(&sd->refusal_log, LOG_WARN, "status request refused from %s: %s", c->addr,
                    info->cfg->admin_token ? "bad token" : "admin.token is not set");
        reply(c, 403, "text/plain", NULL);
        return;
    }
    struct buf body = BUF_INIT;
    if (strncmp(c->head, "GET /status ", 12) == 0 || strncmp(c->head, "GET /status?", 12) == 0) {
        status_render_json(st, info, &body);
        reply(c, 200, "application/json", &body);
    } else if (strncmp(c->head, "GET /metrics ", 13) == 0) {
        status_render_prometheus(st, info, &body);
        reply(c, 200, "text/plain; version=0.0.4", &body);
    } else {
        reply(c, 404, "text/plain", NULL);
    }
    buf_fini(&body);
}

/* Reads what has arrived; answers once the head is complete, cut short
 * by the client (EOF) or too large. Never waits. */
static void client_read(struct statusd *sd, struct client *c, struct stats *st,
                        const struct status_info *info)
{
    while (c->head_len < HEAD_MAX) {
        ssize_t n = recv(c->fd, c->head + c->head_len, HEAD_MAX - c->head_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 || (n == 0 && c->head_len == 0)) {
            client_close(sd, c);
            return;
        }
        if (n == 0) { /* half-closed: answer what it sent, if a request line */
            c->head[c->head_len] = '\0';
            answer(sd, c, strstr(c->head, "\r\n") != NULL, st, info);
            return;
        }
        size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
        c->head_len += (size_t)n;
        c->head[c->head_len] = '\0';
        if (strstr(c->head + from, "\r\n\r\n")) {
            answer(sd, c, 1, st, info);
            return;
        }
    }
    answer(sd, c, 0, st, info); /* HEAD_MAX bytes and no end of head */
}

/* Writes as much of the answer as the socket takes; closes when done. */
static void client_write(struct statusd *sd, struct client *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        c->out_off += (size_t)n;
    }
    client_close(sd, c);
}

/* The peer's address as text; a unix socket counts as loopback (its file
 * permissions guard it). */
static void peer_text(int is_unix, const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    out[0] = '\0';
    if (is_unix)
        snprintf(out, outlen, "127.0.0.1");
    else if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)outlen);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
                  (socklen_t)outlen);
}

static void accept_pending(struct statusd *sd, struct stats *st, const struct config *cfg)
{
    uint64_t now = util_now_ms();
    if (now < sd->accept_paused_until)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        memset(&ss, 0, sizeof ss);
        int fd = accept4(sd->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* Out of descriptors or memory: the connection stays
                 * queued, so stop watching the listener for a moment
                 * instead of waking up for it over and over. */
                log_perr(LOG_ERROR, "admin.listen: accept failed");
                sd->accept_paused_until = now + ACCEPT_PAUSE_MS;
            }
            return;
        }
        char addr[INET6_ADDRSTRLEN];
        peer_text(sd->is_unix, &ss, addr, sizeof addr);
        if (!addr[0] || !admin_addr_allowed(cfg, addr)) {
            stats_master(st)->admin_refused++;
            log_limited(&sd->refusal_log, LOG_WARN,
                        "status connection refused from %s: not in admin.allow",
                        addr[0] ? addr : "?");
            close(fd);
            continue;
        }
        if (sd->nclients >= STATUSD_MAX_CLIENTS) {
            stats_master(st)->admin_overflow++;
            log_limited(&sd->overflow_log, LOG_WARN,
                        "status connection from %s closed: %d connections already open", addr,
                        STATUSD_MAX_CLIENTS);
            close(fd);
            continue;
        }
        struct client *c = sd->clients;
        while (c->fd >= 0)
            c++;
        c->fd = fd;
        c->writing = 0;
        c->head_len = 0;
        c->out_off = 0;
        c->deadline_ms = now + STATUSD_DEADLINE_MS;
        memcpy(c->addr, addr, sizeof addr);
        buf_init(&c->out);
        sd->nclients++;
        stats_master(st)->admin_open = sd->nclients;
    }
}

void statusd_serve(struct statusd *sd, struct stats *st, const struct status_info *info)
{
    sd->st = st;
    accept_pending(sd, st, info->cfg);
    for (size_t i = 0; i < STATUSD_MAX_CLIENTS; i++) {
        struct client *c = &sd->clients[i];
        if (c->fd >= 0 && !c->writing)
            client_read(sd, c, st, info);
        if (c->fd >= 0 && c->writing)
            client_write(sd, c);
        if (c->fd >= 0 && util_now_ms() >= c->deadline_ms) {
            stats_master(st)->admin_timeouts++;
            log_limited(&sd->timeout_log, LOG_WARN,
                        "status connection from %s closed: no complete exchange within %d ms",
                        c->addr, STATUSD_DEADLINE_MS);
            client_close(sd, c);
        }
    }
}
