/* statusd.c - a tiny HTTP/1.0 responder inside the master.
 *
 * The master calls statusd_serve() on every tick of its loop. The listener
 * is non-blocking; each accepted client is checked against admin.allow
 * before anything is read, then read with a 200 ms timeout, answered and
 * closed. One request per connection keeps it trivially correct; status is
 * scraped every few seconds, not thousands of times a second. */
#include "config.h"

#include "memfill/statusd.h"
#include "memfill/admin.h"
#include "memfill/log.h"
#include "memfill/mcwriter.h"
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

struct statusd {
    int fd;
    int is_unix;
};

struct statusd *statusd_new(const char *spec, struct err *err)
{
    int fd = -1, is_unix = util_starts_with(spec, "unix:");
    if (is_unix) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        const char *path = spec + 5;
        struct stat st;
        if (strlen(path) >= sizeof sa.sun_path || !*path) {
            err_set(err, NULL, 0, 0, "admin.listen: bad socket path");
            return NULL;
        }
        memcpy(sa.sun_path, path, strlen(path));
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto fail;
    } else {
        char *host;
        unsigned port;
        int u;
        if (mcwriter_split_address(spec, &host, &port, &u) < 0 || !strchr(spec, ':')) {
            err_set(err, NULL, 0, 0, "admin.listen: expected host:port, got \"%s\"", spec);
            return NULL;
        }
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        char ps[8];
        snprintf(ps, sizeof ps, "%u", port);
        int gai = getaddrinfo(host, ps, &hints, &res);
        free(host);
        if (gai != 0 || !res) {
            err_set(err, NULL, 0, 0, "admin.listen: cannot resolve \"%s\"", spec);
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
    struct statusd *sd = xcalloc(1, sizeof *sd);
    sd->fd = fd;
    sd->is_unix = is_unix;
    return sd;
fail:
    err_set(err, NULL, 0, 0, "admin.listen: cannot listen on %s: %s", spec, strerror(errno));
    if (fd >= 0)
        close(fd);
    return NULL;
}

void statusd_free(struct statusd *sd)
{
    if (!sd)
        return;
    close(sd->fd);
    free(sd);
}

int statusd_fd(const struct statusd *sd)
{
    return sd->fd;
}

static void reply(int fd, int status, const char *type, const struct buf *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, status == 200 ? "OK" : status == 403 ? "Forbidden" : "Not Found",
                     type, body ? body->len : 0);
    ssize_t w = write(fd, head, (size_t)n);
    if (w == n && body && body->len)
        w = write(fd, body->data, body->len);
    (void)w;
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

static void serve_client(int fd, int is_unix, struct stats *st, const struct status_info *info)
{
    char addr[INET6_ADDRSTRLEN] = "";
    if (is_unix) {
        snprintf(addr, sizeof addr, "127.0.0.1"); /* filesystem permissions guard it */
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
            else if (ss.ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr,
                          sizeof addr);
        }
    }
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char head[4096];
    size_t len = 0;
    while (len < sizeof head - 1) {
        ssize_t n = read(fd, head + len, sizeof head - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        head[len] = '\0';
        if (strstr(head, "\r\n\r\n"))
            break;
    }
    head[len] = '\0';
    char token[256] = "";
    header_value(head, "X-Memfill-Token", token, sizeof token);
    if (!admin_allowed(info->cfg, addr, token)) {
        log_warn("status request refused from %s", addr[0] ? addr : "?");
        reply(fd, 403, "text/plain", NULL);
        return;
    }
    struct buf body = BUF_INIT;
    if (strncmp(head, "GET /status ", 12) == 0 || strncmp(head, "GET /status?", 12) == 0) {
        status_render_json(st, info, &body);
        reply(fd, 200, "application/json", &body);
    } else if (strncmp(head, "GET /metrics ", 13) == 0) {
        status_render_prometheus(st, info, &body);
        reply(fd, 200, "text/plain; version=0.0.4", &body);
    } else {
        reply(fd, 404, "text/plain", NULL);
    }
    buf_fini(&body);
}

void statusd_serve(struct statusd *sd, struct stats *st, const struct status_info *info)
{
    for (int i = 0; i < 16; i++) {
        int c = accept4(sd->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return;
        serve_client(c, sd->is_unix, st, info);
        close(c);
    }
}

int admin_client_get(const char *spec, const char *path, const char *token, struct buf *out,
                     struct err *err)
{
    int fd = -1;
    if (util_starts_with(spec, "unix:")) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", spec + 5);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            close(fd);
            fd = -1;
        }
    } else {
        char *host;
        unsigned port;
        int u;
        if (mcwriter_split_address(spec, &host, &port, &u) == 0) {
            struct addrinfo hints, *res = NULL;
            memset(&hints, 0, sizeof hints);
            hints.ai_socktype = SOCK_STREAM;
            char ps[8];
            snprintf(ps, sizeof ps, "%u", port);
            if (getaddrinfo(host, ps, &hints, &res) == 0 && res) {
                fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
                    close(fd);
                    fd = -1;
                }
                freeaddrinfo(res);
            }
            free(host);
        }
    }
    if (fd < 0) {
        err_set(err, NULL, 0, 0, "cannot connect to %s: %s", spec, strerror(errno));
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct buf req = BUF_INIT;
    buf_printf(&req, "GET %s HTTP/1.0\r\nHost: memfill\r\n", path);
    if (token)
        buf_printf(&req, "X-Memfill-Token: %s\r\n", token);
    buf_append_str(&req, "\r\n");
    ssize_t w = write(fd, req.data, req.len);
    buf_fini(&req);
    struct buf resp = BUF_INIT;
    char chunk[8192];
    ssize_t n;
    while (w > 0 && (n = read(fd, chunk, sizeof chunk)) > 0)
        buf_append(&resp, chunk, (size_t)n);
    close(fd);
    int status = -1;
    const char *body = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
    if (body && sscanf(resp.data, "HTTP/1.%*d %d", &status) == 1) {
        body += 4;
        buf_append(out, body, resp.len - (size_t)(body - resp.data));
    } else {
        err_set(err, NULL, 0, 0, "no HTTP answer from %s", spec);
    }
    buf_fini(&resp);
    return status;
}
