/* cidr.c - address allow-lists for the purge and status endpoints.
 *
 * Parsing is strict (inet_pton, a decimal prefix within the family's
 * width); an unparsable client address never matches, so a guard fails
 * closed. */
#include "config.h"

#include "memfill/cidr.h"
#include "memfill/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int parse_addr(const char *s, size_t len, struct cidr *out)
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

int cidr_parse(const char *s, struct cidr *out)
{
    struct cidr c;
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (parse_addr(s, alen, &c) < 0)
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

static int contains(const struct cidr *net, const struct cidr *a)
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

int cidr_list_match(char *const *list, const char *addr)
{
    struct cidr a;
    if (!addr || parse_addr(addr, strlen(addr), &a) < 0)
        return 0;
    for (char *const *p = list; p && *p; p++) {
        struct cidr net;
        if (cidr_parse(*p, &net) == 0 && contains(&net, &a))
            return 1;
    }
    return 0;
}
