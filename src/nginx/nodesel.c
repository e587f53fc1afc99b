/* nodesel.c - the memcached node nginx reads a key from.
 *
 * Built once at config load (in the master, before fork) and read-only
 * afterwards, so workers share it without locks. Three distributions,
 * transcribed from nginx 1.22 and set-misc 0.33 (doc/nginx.md §5-§7):
 *
 *   CONSISTENT (ngx_http_upstream_hash_module, "hash $k consistent"): a
 *     ring of CRC-32 points. Server i contributes 160 * weight points
 *     chained from base = host || 0x00 || port (the server TEXT split as
 *     nodesel_chash_base() describes): h0 = crc32(base || le32(0)),
 *     h(n+1) = crc32(base || le32(h(n))). The points are sorted by hash and
 *     equal hashes are collapsed to one point. nginx keeps whichever point
 *     qsort() left first, which the C library decides; we sort by (hash,
 *     server index, point number) and keep the first, i.e. the server
 *     listed first wins a collision. No tested ring has one. A key goes to
 *     the first point with hash >= crc32(key), wrapping past the end to
 *     point 0.
 *   HASH ("hash $k"): candidate 0 of nginx's sequence, w =
 *     ((crc32(key) >> 16) & 0x7fff) % total_weight, then walk the servers
 *     in order subtracting weights. Later candidates (rehash past down or
 *     failed peers) depend on nginx's run-time peer state, which the app
 *     cannot see; with max_fails=0 and no `down` servers candidate 0 is
 *     always the answer.
 *   UPSTREAM_LIST (set_hashed_upstream): buckets = the list items repeated
 *     by weight in order; bucket (uint32)h31lc(key) % nbuckets, or bucket 0
 *     when there is only one.
 *
 * nginx makes one peer per resolved address. For CONSISTENT that makes no
 * difference (the points are built from the server text, and duplicates
 * collapse). For HASH a name resolving to several addresses would count
 * once per address in nginx's total weight but once here: use IP literals
 * (doc/nginx.md §16 rule 2). The resolved forms are kept only to recognise
 * nginx's $upstream_addr in MEMC_BACKEND.
 *
 * Keys are raw bytes of any value; only len bytes are read. */
#include "config.h"

#include "memfill/nodesel.h"
#include "memfill/addr.h"
#include "memfill/buf.h"
#include "memfill/hashfn.h"
#include "memfill/util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CHASH_POINTS_PER_WEIGHT 160u

struct nodesel_point {
    uint32_t hash;
    uint32_t server;
    uint32_t number; /* 0-based position in its server's chain; sort tie-break */
};

struct nodesel_node {
    char **resolved; /* "ip:port" / "[ip6]:port" / "unix:/path", deduplicated */
    size_t nresolved;
};

struct nodesel {
    enum nodesel_dist dist;
    size_t n;
    struct nodesel_server *servers; /* owned copies of the strings */
    struct nodesel_node *nodes;
    unsigned long total_weight;
    struct nodesel_point *points; /* CONSISTENT: sorted, unique hashes */
    size_t npoints;
    size_t *buckets; /* UPSTREAM_LIST: server index per bucket */
    size_t nbuckets;
};

static const char *const dist_names[] = {
    [NODESEL_CONSISTENT] = "consistent",
    [NODESEL_HASH] = "hash",
    [NODESEL_UPSTREAM_LIST] = "upstream_list",
};

int nodesel_parse_dist(const char *s, enum nodesel_dist *out)
{
    for (size_t i = 0; i < sizeof dist_names / sizeof dist_names[0]; i++) {
        if (s && strcmp(s, dist_names[i]) == 0) {
            *out = (enum nodesel_dist)i;
            return 0;
        }
    }
    return -1;
}

const char *nodesel_dist_name(enum nodesel_dist d)
{
    if ((size_t)d < sizeof dist_names / sizeof dist_names[0])
        return dist_names[d];
    return "unknown";
}

/* ---- server text ---- */

static int is_unix(const char *s, size_t len)
{
    return addr_is_unix(s, len, ADDR_UNIX_ANYCASE);
}

/* Splits text as nginx's chash does: "unix:" + path gives (path, ""); else
 * trailing decimal digits preceded by ':' give (before, digits); else
 * (text, ""). This is nginx's hash input, not an address parser: it must
 * stay byte-exact even for texts addr_parse would read differently (the
 * ports and "unix:" test are addr.c's). */
static void split_server(const char *s, size_t len, const char **host, size_t *hlen,
                         const char **port, size_t *plen)
{
    if (is_unix(s, len)) {
        *host = s + 5;
        *hlen = len - 5;
        *port = s + len;
        *plen = 0;
        return;
    }
    for (size_t j = 0; j < len; j++) {
        char c = s[len - j - 1];
        if (c == ':') {
            *host = s;
            *hlen = len - j - 1;
            *port = s + len - j;
            *plen = j;
            return;
        }
        if (c < '0' || c > '9')
            break;
    }
    *host = s;
    *hlen = len;
    *port = s + len;
    *plen = 0;
}

void nodesel_chash_base(const char *address, size_t len, struct buf *out)
{
    const char *host, *port;
    size_t hlen, plen;
    split_server(address, len, &host, &hlen, &port, &plen);
    buf_append(out, host, hlen);
    buf_append_char(out, '\0');
    buf_append(out, port, plen);
}

/* Checks an address text; returns NULL or a reason. */
static const char *check_address(const char *s)
{
    size_t len = strlen(s);
    if (len == 0)
        return "empty address";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == ',')
            return "address holds a space, a control byte or a ','";
    }
    if (is_unix(s, len))
        return len > 5 ? NULL : "empty unix socket path";
    if (s[0] == '[' && !strchr(s, ']'))
        return "unterminated '[' in address";
    const char *host, *port;
    size_t hlen, plen;
    split_server(s, len, &host, &hlen, &port, &plen);
    if (hlen == 0)
        return "address has no host";
    unsigned v;
    if (port > s && port[-1] == ':' && addr_parse_port(port, plen, &v) < 0)
        return "port is not a number from 1 to 65535";
    return NULL;
}

/* ---- resolution (for MEMC_BACKEND) ---- */

static void add_resolved(struct nodesel_node *node, char *text)
{
    for (size_t i = 0; i < node->nresolved; i++) {
        if (strcmp(node->resolved[i], text) == 0) {
            free(text);
            return;
        }
    }
    node->resolved = xrealloc(node->resolved, (node->nresolved + 1) * sizeof *node->resolved);
    node->resolved[node->nresolved++] = text;
}

/* Adds the forms nginx's $upstream_addr can show for this server. A host
 * that does not resolve (or no DNS at all) adds nothing: the server is
 * then matched by its text only. Port defaults to 80 as in nginx's
 * `server` directive. */
static void resolve_node(const char *s, struct nodesel_node *node)
{
    size_t len = strlen(s);
    if (is_unix(s, len)) {
        add_resolved(node, xasprintf("unix:%s", s + 5));
        return;
    }
    const char *host, *port;
    size_t hlen, plen;
    split_server(s, len, &host, &hlen, &port, &plen);
    unsigned portnum = 80;
    if (plen > 0 && addr_parse_port(port, plen, &portnum) < 0)
        return;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    char *h = xstrndup(host, hlen);
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)portnum);

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(h, service, &hints, &res) == 0) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            char ip[INET6_ADDRSTRLEN];
            if (ai->ai_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
                if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip))
                    add_resolved(node, xasprintf("%s:%u", ip, (unsigned)portnum));
            } else if (ai->ai_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ai->ai_addr;
                if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip))
                    add_resolved(node, xasprintf("[%s]:%u", ip, (unsigned)portnum));
            }
        }
        freeaddrinfo(res);
    }
    free(h);
}

/* ---- construction ---- */

static int cmp_points(const void *a, const void *b)
{
    const struct nodesel_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->server != y->server)
        return x->server < y->server ? -1 : 1;
    return (x->number > y->number) - (x->number < y->number);
}

static void build_ring(struct nodesel *ns)
{
    ns->points = xmalloc(ns->total_weight * CHASH_POINTS_PER_WEIGHT * sizeof *ns->points);
    size_t k = 0;
    struct buf base = BUF_INIT;
    for (size_t i = 0; i < ns->n; i++) {
        const char *addr = ns->servers[i].address;
        buf_reset(&base, 0);
        nodesel_chash_base(addr, strlen(addr), &base);
        uint32_t base_crc = hashfn_crc32(base.data, base.len);
        uint32_t prev = 0;
        uint32_t count = CHASH_POINTS_PER_WEIGHT * ns->servers[i].weight;
        for (uint32_t j = 0; j < count; j++) {
            unsigned char le[4] = {(unsigned char)prev, (unsigned char)(prev >> 8),
                                   (unsigned char)(prev >> 16), (unsigned char)(prev >> 24)};
            uint32_t h = hashfn_crc32_update(base_crc, le, sizeof le);
            ns->points[k].hash = h;
            ns->points[k].server = (uint32_t)i;
            ns->points[k].number = j;
            k++;
            prev = h;
        }
    }
    buf_fini(&base);
    qsort(ns->points, k, sizeof *ns->points, cmp_points);
    size_t u = 0;
    for (size_t j = 0; j < k; j++)
        if (u == 0 || ns->points[u - 1].hash != ns->points[j].hash)
            ns->points[u++] = ns->points[j];
    ns->npoints = u;
}

static void build_buckets(struct nodesel *ns)
{
    ns->buckets = xmalloc(ns->total_weight * sizeof *ns->buckets);
    for (size_t i = 0; i < ns->n; i++)
        for (unsigned w = 0; w < ns->servers[i].weight; w++)
            ns->buckets[ns->nbuckets++] = i;
}

struct nodesel *nodesel_new(enum nodesel_dist dist, const struct nodesel_server *servers,
                            size_t n, struct err *err)
{
    if ((size_t)dist >= sizeof dist_names / sizeof dist_names[0]) {
        err_set(err, NULL, 0, 0, "unknown distribution %d", (int)dist);
        return NULL;
    }
    if (n == 0 || !servers) {
        err_set(err, NULL, 0, 0, "no memcached servers");
        return NULL;
    }
    if (n > NODESEL_SERVERS_MAX) {
        err_set(err, NULL, 0, 0, "more than %d memcached servers", NODESEL_SERVERS_MAX);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why;
        if (!servers[i].address) {
            err_set(err, NULL, 0, 0, "server %zu: no address", i + 1);
            return NULL;
        }
        if ((why = check_address(servers[i].address)) != NULL) {
            err_set(err, NULL, 0, 0, "server %zu (\"%s\"): %s", i + 1, servers[i].address, why);
            return NULL;
        }
        if (servers[i].weight < 1 || servers[i].weight > NODESEL_WEIGHT_MAX) {
            err_set(err, NULL, 0, 0, "server %zu (\"%s\"): weight %u is not from 1 to %d",
                    i + 1, servers[i].address, servers[i].weight, NODESEL_WEIGHT_MAX);
            return NULL;
        }
        if (dist == NODESEL_UPSTREAM_LIST && (!servers[i].name || !servers[i].name[0])) {
            err_set(err, NULL, 0, 0, "server %zu (\"%s\"): upstream_list needs a name", i + 1,
                    servers[i].address);
            return NULL;
        }
    }

    struct nodesel *ns = xcalloc(1, sizeof *ns);
    ns->dist = dist;
    ns->n = n;
    ns->servers = xcalloc(n, sizeof *ns->servers);
    ns->nodes = xcalloc(n, sizeof *ns->nodes);
    for (size_t i = 0; i < n; i++) {
        ns->servers[i].address = xstrdup(servers[i].address);
        ns->servers[i].weight = servers[i].weight;
        ns->servers[i].name = xstrdup(servers[i].name);
        ns->total_weight += servers[i].weight;
        resolve_node(servers[i].address, &ns->nodes[i]);
    }
    if (dist == NODESEL_CONSISTENT)
        build_ring(ns);
    else if (dist == NODESEL_UPSTREAM_LIST)
        build_buckets(ns);
    return ns;
}

void nodesel_free(struct nodesel *ns)
{
    if (!ns)
        return;
    for (size_t i = 0; i < ns->n; i++) {
        free((char *)ns->servers[i].address);
        free((char *)ns->servers[i].name);
        for (size_t j = 0; j < ns->nodes[i].nresolved; j++)
            free(ns->nodes[i].resolved[j]);
        free(ns->nodes[i].resolved);
    }
    free(ns->servers);
    free(ns->nodes);
    free(ns->points);
    free(ns->buckets);
    free(ns);
}

size_t nodesel_count(const struct nodesel *ns)
{
    return ns->n;
}

enum nodesel_dist nodesel_distribution(const struct nodesel *ns)
{
    return ns->dist;
}

const struct nodesel_server *nodesel_server(const struct nodesel *ns, size_t i)
{
    return i < ns->n ? &ns->servers[i] : NULL;
}

/* ---- lookup ---- */

static int pick_consistent(const struct nodesel *ns, const char *key, size_t len)
{
    uint32_t h = hashfn_crc32(key, len);
    /* lower bound: the first point with hash >= h */
    size_t lo = 0, hi = ns->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ns->points[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == ns->npoints)
        lo = 0;
    return (int)ns->points[lo].server;
}

static int pick_hash(const struct nodesel *ns, const char *key, size_t len)
{
    uint32_t acc = (hashfn_crc32(key, len) >> 16) & 0x7fffu;
    unsigned long w = acc % ns->total_weight;
    size_t p = 0;
    while (w >= ns->servers[p].weight) {
        w -= ns->servers[p].weight;
        p++;
    }
    return (int)p;
}

int nodesel_pick(const struct nodesel *ns, const char *key, size_t len)
{
    switch (ns->dist) {
    case NODESEL_CONSISTENT:
    case NODESEL_HASH:
        /* nginx's memcached module refuses an empty key (500) before the
         * balancer runs; with one peer nginx does not hash at all. */
        if (len == 0)
            return -1;
        if (ns->n == 1)
            return 0;
        return ns->dist == NODESEL_CONSISTENT ? pick_consistent(ns, key, len)
                                              : pick_hash(ns, key, len);
    case NODESEL_UPSTREAM_LIST:
        if (ns->nbuckets == 1)
            return (int)ns->buckets[0];
        return (int)ns->buckets[hashfn_h31lc(key, len) % ns->nbuckets];
    }
    return -1;
}

/* ---- MEMC_BACKEND ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

int nodesel_find_backend(const struct nodesel *ns, const char *value, size_t len)
{
    if (!value)
        return -1;
    /* The last entry of "a, b" (and of "a, b : c", the form nginx uses
     * after an internal redirect to another upstream). */
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] == ',')
            start = i + 1;
        else if (value[i] == ':' && i > 0 && i + 1 < len && value[i - 1] == ' '
                 && value[i + 1] == ' ')
            start = i + 1;
    }
    size_t end = len;
    while (start < end && is_space(value[start]))
        start++;
    while (end > start && is_space(value[end - 1]))
        end--;
    const char *v = value + start;
    size_t n = end - start;
    if (n == 0 || memchr(v, '\0', n))
        return -1;

    for (size_t i = 0; i < ns->n; i++) {
        const char *a = ns->servers[i].address;
        if (strlen(a) == n && util_ascii_caseeq(a, v, n))
            return (int)i;
        for (size_t j = 0; j < ns->nodes[i].nresolved; j++) {
            const char *r = ns->nodes[i].resolved[j];
            if (strlen(r) == n && memcmp(r, v, n) == 0)
                return (int)i;
        }
    }
    for (size_t i = 0; i < ns->n; i++) {
        const char *name = ns->servers[i].name;
        if (name && strlen(name) == n && util_ascii_caseeq(name, v, n))
            return (int)i;
    }
    return -1;
}

/* ---- introspection for tests and tools ---- */

size_t nodesel_ring_size(const struct nodesel *ns)
{
    return ns->npoints;
}

int nodesel_ring_point(const struct nodesel *ns, size_t i, uint32_t *hash, size_t *server)
{
    if (i >= ns->npoints)
        return -1;
    *hash = ns->points[i].hash;
    *server = ns->points[i].server;
    return 0;
}
