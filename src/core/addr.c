/* addr.c - the one parser of socket address texts, and CIDR allow-lists.
 *
 * Address texts come from the config (memcached servers, listen,
 * admin.listen, discovery), from nginx (MEMC_BACKEND, through nodesel)
 * and from the command line (memfillctl --fastcgi). Each place accepts a
 * slightly different set of forms, fixed by what it talks to (nginx's own
 * syntax for memcached addresses, bind() for listen); the flags of
 * addr_parse name those differences instead of each place carrying its
 * own copy of the splitting.
 *
 * CIDR parsing is strict (inet_pton, a decimal prefix within the family's
 * width); an unparsable client address never matches, so a guard fails
 * closed. */
#include "config.h"

#include "memfill/addr.h"
#include "memfill/util.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int addr_is_unix(const char *s, size_t len, unsigned flags)
{
    if (len < 5)
        return 0;
    if (flags & ADDR_UNIX_ANYCASE)
        return util_ascii_caseeq(s, "unix:", 5);
    return memcmp(s, "unix:", 5) == 0;
}

int addr_parse_port(const char *s, size_t len, unsigned *port)
{
    uint64_t p;
    if (util_parse_u64(s, len, 65535, &p) < 0 || p == 0)
        return -1;
    *port = (unsigned)p;
    return 0;
}

static int parse_unix(const char *s, unsigned flags, struct addr *out, struct err *err)
{
    const char *path = s + 5;
    if (!*path) {
        err_set(err, NULL, 0, 0, "expected a socket path after \"unix:\", got \"%s\"", s);
        return -1;
    }
    if ((flags & ADDR_UNIX_ABSOLUTE) && path[0] != '/') {
        err_set(err, NULL, 0, 0, "expected an absolute path after \"unix:\", got \"%s\"", s);
        return -1;
    }
    if ((flags & ADDR_UNIX_SUN_PATH) &&
        strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        err_set(err, NULL, 0, 0, "socket path is longer than %zu bytes",
                sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return -1;
    }
    out->is_unix = 1;
    out->host = xstrdup(path);
    return 0;
}

static int refuse_form(const char *s, unsigned flags, struct err *err)
{
    err_set(err, NULL, 0, 0,
            "expected \"host:port\", \"[v6]:port\"%s or \"unix:/path\", got \"%s\"",
            flags & ADDR_ANY_HOST ? ", \"*:port\"" : "", s);
    return -1;
}

int addr_parse(const char *s, unsigned flags, unsigned default_port, struct addr *out,
               struct err *err)
{
    memset(out, 0, sizeof *out);
    if (addr_is_unix(s, strlen(s), flags))
        return parse_unix(s, flags, out, err);
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close == s + 1 && !(flags & ADDR_EMPTY_HOST)) ||
            (close[1] && close[1] != ':')) {
            err_set(err, NULL, 0, 0, "expected \"[v6 address]:port\", got \"%s\"", s);
            return -1;
        }
        colon = close[1] == ':' ? close + 1 : NULL;
        out->host = xstrndup(s + 1, (size_t)(close - s - 1));
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon) {
            if (flags & ADDR_BARE_V6)
                colon = NULL; /* an IPv6 address without brackets: no port */
            else if (!(flags & ADDR_LAST_COLON))
                return refuse_form(s, flags, err);
        }
        out->host = colon ? xstrndup(s, (size_t)(colon - s)) : xstrdup(s);
        if ((flags & ADDR_ANY_HOST) && colon &&
            (!out->host[0] || strcmp(out->host, "*") == 0)) {
            out->host[0] = '\0';
            out->any = 1;
        }
    }
    if (!colon && (flags & ADDR_PORT_REQUIRED)) {
        addr_fini(out);
        return refuse_form(s, flags, err);
    }
    out->port = default_port;
    if (colon && addr_parse_port(colon + 1, strlen(colon + 1), &out->port) < 0) {
        err_set(err, NULL, 0, 0, "expected a port from 1 to 65535 after ':', got \"%s\"", s);
        addr_fini(out);
        return -1;
    }
    if (!out->host[0] && !out->any && !(flags & ADDR_EMPTY_HOST)) {
        err_set(err, NULL, 0, 0, "no host in \"%s\"", s);
        addr_fini(out);
        return -1;
    }
    return 0;
}

void addr_fini(struct addr *a)
{
    free(a->host);
    a->host = NULL;
}

/* ---- CIDR ---- */

static int parse_ip(const char *s, size_t len, struct addr_cidr *out)
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, tmp, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
        /* ::ffff:a.b.c.d compares as IPv4 */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(out->addr, mapped, 12) == 0) {
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->family = AF_INET;
            out->prefix = 32;
        }
        return 0;
    }
    return -1;
}

int addr_cidr_parse(const char *s, struct addr_cidr *out)
{
    struct addr_cidr c;
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (parse_ip(s, alen, &c) < 0)
        return -1;
    if (slash) {
        uint64_t p;
        unsigned max = c.family == AF_INET ? 32 : 128;
        if (util_parse_u64(slash + 1, strlen(slash + 1), max, &p) < 0)
            return -1;
        c.prefix = (unsigned)p;
    }
    if (out)
        *out = c;
    return 0;
}

static int contains(const struct addr_cidr *net, const struct addr_cidr *a)
{
    if (net->family != a->family)
        return 0;
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, a->addr, full) != 0)
        return 0;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((net->addr[full] & mask) != (a->addr[full] & mask))
            return 0;
    }
    return 1;
}

int addr_cidr_match(const struct addr_cidr *nets, size_t n, const char *ip)
{
    struct addr_cidr a;
    if (!ip || parse_ip(ip, strlen(ip), &a) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (contains(&nets[i], &a))
            return 1;
    return 0;
}
