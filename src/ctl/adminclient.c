/* adminclient.c - memfillctl's side of the status listener: one
 * HTTP/1.0 GET to admin.listen, the answer read until the server closes.
 *
 * The address is read as statusd reads it (addr_parse, ADDR_ADMIN_LISTEN),
 * each read waits at most ADMIN_CLIENT_READ_S seconds, and the answer is
 * bounded by ADMIN_CLIENT_MAX bytes (status JSON is a few kilobytes). */
#include "config.h"

#include "memfill/adminclient.h"
#include "memfill/addr.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define ADMIN_CLIENT_READ_S 5
#define ADMIN_CLIENT_MAX ((size_t)16 << 20)

/* Returns a connected socket, or -1 with err set. */
static int connect_spec(const char *spec, struct err *err)
{
    struct addr a;
    struct err e;
    err_clear(&e);
    if (addr_parse(spec, ADDR_ADMIN_LISTEN, ADDR_MEMCACHED_PORT, &a, &e) < 0) {
        err_set(err, NULL, 0, 0, "cannot connect to %s: %s", spec, e.text);
        return -1;
    }
    int fd = -1;
    if (a.is_unix) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, a.host, strlen(a.host)); /* fits: ADDR_UNIX_SUN_PATH */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            close(fd);
            fd = -1;
        }
    } else {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        char ps[8];
        snprintf(ps, sizeof ps, "%u", a.port);
        if (getaddrinfo(a.host, ps, &hints, &res) == 0 && res) {
            fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
                close(fd);
                fd = -1;
            }
            freeaddrinfo(res);
        }
    }
    int saved = errno;
    addr_fini(&a);
    if (fd < 0)
        err_set(err, NULL, 0, 0, "cannot connect to %s: %s", spec, strerror(saved));
    return fd;
}

int admin_client_get(const char *spec, const char *path, const char *token, struct buf *out,
                     struct err *err)
{
    int fd = connect_spec(spec, err);
    if (fd < 0)
        return -1;
    struct timeval tv = {ADMIN_CLIENT_READ_S, 0};
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
    int too_big = 0;
    while (w > 0 && (n = read(fd, chunk, sizeof chunk)) > 0) {
        if (resp.len + (size_t)n > ADMIN_CLIENT_MAX) {
            too_big = 1;
            break;
        }
        buf_append(&resp, chunk, (size_t)n);
    }
    close(fd);
    int status = -1;
    const char *body = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
    if (too_big) {
        err_set(err, NULL, 0, 0, "the answer from %s is larger than %zu bytes", spec,
                ADMIN_CLIENT_MAX);
    } else if (body && sscanf(resp.data, "HTTP/1.%*d %d", &status) == 1) {
        body += 4;
        buf_append(out, body, resp.len - (size_t)(body - resp.data));
    } else {
        err_set(err, NULL, 0, 0, "no HTTP answer from %s", spec);
    }
    buf_fini(&resp);
    return status;
}
