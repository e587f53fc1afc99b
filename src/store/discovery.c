/* discovery.c - `config get cluster` client and reply parser.
 *
 * Reply format (ElastiCache auto-discovery): "CONFIG cluster 0 <bytes>\r\n", then the
 * config version and "\n", then the nodes separated by single spaces, each
 * "hostname|ip|port", then "\n", a bare "\r\n" and "END\r\n". The ip field
 * may be empty: the hostname is used then. A plain memcached answers
 * "ERROR". The parser is strict about the frame (the byte count must
 * match) and lenient about trailing whitespace in the node line. */
#include "config.h"

#include "memfill/discovery.h"
#include "memfill/buf.h"
#include "memfill/addr.h"
#include "memfill/util.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DISCOVERY_MAX_REPLY (1u << 20)
#define DISCOVERY_MAX_NODES 256

void discovery_result_fini(struct discovery_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->addresses[i]);
    free(r->addresses);
    memset(r, 0, sizeof *r);
}

int discovery_same(const struct discovery_result *r, char *const *addresses, size_t n)
{
    if (r->n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(r->addresses[i], addresses[i]) != 0)
            return 0;
    return 1;
}

int discovery_parse(const char *reply, size_t len, struct discovery_result *out,
                    struct err *err)
{
    memset(out, 0, sizeof *out);
    const char *eol = memchr(reply, '\n', len);
    unsigned long bytes = 0, flags = 0;
    char word[16];
    if (!eol || sscanf(reply, "CONFIG %15s %lu %lu", word, &flags, &bytes) != 3 ||
        strcmp(word, "cluster") != 0) {
        err_set(err, NULL, 0, 0, "discovery: expected \"CONFIG cluster 0 <bytes>\"");
        return -1;
    }
    const char *p = eol + 1;
    size_t rest = len - (size_t)(p - reply);
    if (bytes > rest) {
        err_set(err, NULL, 0, 0, "discovery: reply shorter than its %lu-byte header", bytes);
        return -1;
    }
    const char *end = p + bytes;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    uint64_t version;
    if (!nl || util_parse_u64(p, (size_t)(nl - p), UINT64_MAX, &version) < 0) {
        err_set(err, NULL, 0, 0, "discovery: bad config version line");
        return -1;
    }
    out->version = (unsigned long)version;
    out->addresses = xcalloc(DISCOVERY_MAX_NODES + 1, sizeof *out->addresses);
    const char *q = nl + 1;
    while (q < end && *q != '\n' && *q != '\r') {
        while (q < end && *q == ' ')
            q++;
        const char *tok = q;
        while (q < end && *q != ' ' && *q != '\n' && *q != '\r')
            q++;
        if (q == tok)
            break;
        const char *bar1 = memchr(tok, '|', (size_t)(q - tok));
        const char *bar2 = bar1 ? memchr(bar1 + 1, '|', (size_t)(q - bar1 - 1)) : NULL;
        uint64_t port;
        if (!bar2 || bar1 == tok ||
            util_parse_u64(bar2 + 1, (size_t)(q - bar2 - 1), 65535, &port) < 0 || port == 0 ||
            out->n >= DISCOVERY_MAX_NODES) {
            err_set(err, NULL, 0, 0, "discovery: bad node entry \"%.*s\"", (int)(q - tok), tok);
            discovery_result_fini(out);
            return -1;
        }
        int has_ip = bar2 > bar1 + 1;
        const char *h = has_ip ? bar1 + 1 : tok;
        size_t hl = has_ip ? (size_t)(bar2 - bar1 - 1) : (size_t)(bar1 - tok);
        int v6 = memchr(h, ':', hl) != NULL;
        out->addresses[out->n++] = xasprintf("%s%.*s%s:%u", v6 ? "[" : "", (int)hl, h,
                                             v6 ? "]" : "", (unsigned)port);
    }
    if (out->n == 0) {
        err_set(err, NULL, 0, 0, "discovery: the cluster lists no node");
        discovery_result_fini(out);
        return -1;
    }
    return 0;
}

static int connect_timeout(const char *endpoint, unsigned timeout_ms, struct err *err)
{
    struct addr a;
    if (addr_parse(endpoint, ADDR_MEMCACHED, ADDR_MEMCACHED_PORT, &a, NULL) < 0 || a.is_unix) {
        addr_fini(&a);
        err_set(err, NULL, 0, 0, "discovery: bad endpoint \"%s\"", endpoint);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", a.port);
    int gai = getaddrinfo(a.host, ps, &hints, &res);
    addr_fini(&a);
    if (gai != 0 || !res) {
        err_set(err, NULL, 0, 0, "discovery: cannot resolve %s", endpoint);
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd pf = {fd, POLLOUT, 0};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&pf, 1, (int)timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            rc = 0;
        else
            errno = soerr ? soerr : ETIMEDOUT;
    }
    if (rc < 0) {
        err_set(err, NULL, 0, 0, "discovery: cannot connect to %s: %s", endpoint,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int discovery_fetch(const char *endpoint, unsigned timeout_ms, struct discovery_result *out,
                    struct err *err)
{
    memset(out, 0, sizeof *out);
    int fd = connect_timeout(endpoint, timeout_ms, err);
    if (fd < 0)
        return -1;
    static const char cmd[] = "config get cluster\r\n";
    if (write(fd, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1)) {
        close(fd);
        err_set(err, NULL, 0, 0, "discovery: write to %s failed", endpoint);
        return -1;
    }
    struct buf reply = BUF_INIT;
    uint64_t deadline = util_now_ms() + timeout_ms;
    int rc = -1;
    for (;;) {
        if (reply.len >= 5 && (memcmp(reply.data, "ERROR", 5) == 0)) {
            rc = 0;
            break;
        }
        if (reply.len >= 5 && memcmp(reply.data + reply.len - 5, "END\r\n", 5) == 0) {
            rc = discovery_parse(reply.data, reply.len, out, err) < 0 ? -1 : 1;
            break;
        }
        uint64_t now = util_now_ms();
        struct pollfd pf = {fd, POLLIN, 0};
        if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) != 1) {
            err_set(err, NULL, 0, 0, "discovery: %s did not answer in %u ms", endpoint,
                    timeout_ms);
            break;
        }
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0 || reply.len + (size_t)n > DISCOVERY_MAX_REPLY) {
            err_set(err, NULL, 0, 0, "discovery: %s closed the connection early", endpoint);
            break;
        }
        buf_append(&reply, chunk, (size_t)n);
    }
    close(fd);
    buf_fini(&reply);
    return rc;
}
