/* mcwriter.c - the libmemcached adapter: one handle per node, no
 * distribution, blocking stores with short timeouts so every outcome is
 * known and counted.
 *
 * Why blocking and not NOREPLY/NO_BLOCK: a cache writer that promises "why
 * was this not stored?" must see STORED or the error; the store happens
 * after the response has been handed to nginx, so the client does not wait
 * on it. Behaviours are set once, right after the handle is created,
 * because memcached_behavior_set resets connections. */
#include "config.h"

#include "memfill/mcwriter.h"
#include "memfill/util.h"

#include <libmemcached/memcached.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THIRTY_DAYS 2592000u
/* memcached 1.6 item header + suffix bytes besides key and value (NGINX-COMPAT
 * §5.5: a 1-byte key takes 1048516 bytes of a 1 MiB item). */
#define ITEM_OVERHEAD 59u

struct mcw_node {
    memcached_st *mc;
    char *address;
    size_t item_max;  /* item_size_max, 0 until read */
    int item_max_asked;
};

struct mcwriter {
    const struct config *cfg;
    struct mcw_node *nodes;
    size_t n;
};

int mcwriter_split_address(const char *address, char **host, unsigned *port, int *is_unix)
{
    *host = NULL;
    *port = 0;
    *is_unix = 0;
    if (strncasecmp(address, "unix:", 5) == 0) {
        if (!address[5])
            return -1;
        *host = xstrdup(address + 5);
        *is_unix = 1;
        return 0;
    }
    const char *colon;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close == address + 1)
            return -1;
        *host = xstrndup(address + 1, (size_t)(close - address - 1));
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1]) {
            free(*host);
            *host = NULL;
            return -1;
        }
    } else {
        colon = strrchr(address, ':');
        if (colon && strchr(address, ':') != colon)
            colon = NULL; /* a bare IPv6 address without brackets: no port */
        *host = colon ? xstrndup(address, (size_t)(colon - address)) : xstrdup(address);
    }
    uint64_t p = 11211;
    if (colon && util_parse_u64(colon + 1, strlen(colon + 1), 65535, &p) < 0) {
        free(*host);
        *host = NULL;
        return -1;
    }
    if (!**host || p == 0) {
        free(*host);
        *host = NULL;
        return -1;
    }
    *port = (unsigned)p;
    return 0;
}

struct mcwriter *mcwriter_new(const struct config *cfg)
{
    struct mcwriter *w = xcalloc(1, sizeof *w);
    w->cfg = cfg;
    w->n = cfg->nservers;
    w->nodes = xcalloc(w->n ? w->n : 1, sizeof *w->nodes);
    for (size_t i = 0; i < w->n; i++)
        w->nodes[i].address = xstrdup(cfg->servers[i].address);
    return w;
}

void mcwriter_free(struct mcwriter *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        if (w->nodes[i].mc)
            memcached_free(w->nodes[i].mc);
        free(w->nodes[i].address);
    }
    free(w->nodes);
    free(w);
}

static memcached_st *handle(struct mcwriter *w, size_t node)
{
    if (node >= w->n)
        return NULL;
    struct mcw_node *nd = &w->nodes[node];
    if (nd->mc)
        return nd->mc;
    char *host;
    unsigned port;
    int is_unix;
    if (mcwriter_split_address(nd->address, &host, &port, &is_unix) < 0)
        return NULL;
    memcached_st *mc = memcached_create(NULL);
    if (!mc) {
        free(host);
        return NULL;
    }
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, w->cfg->mc_connect_timeout_ms);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, w->cfg->mc_timeout_ms);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT,
                           (uint64_t)w->cfg->mc_timeout_ms * 1000u);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT,
                           (uint64_t)w->cfg->mc_timeout_ms * 1000u);
    /* A node that failed must be tried again on the next store, not
     * ejected: nginx keeps reading from it. */
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 0);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, 0);
    memcached_return_t rc = is_unix ? memcached_server_add_unix_socket(mc, host)
                                    : memcached_server_add(mc, host, (in_port_t)port);
    free(host);
    if (rc != MEMCACHED_SUCCESS) {
        memcached_free(mc);
        return NULL;
    }
    nd->mc = mc;
    return mc;
}

static enum mcw_result classify(struct mcwriter *w, size_t node, memcached_return_t rc)
{
    switch (rc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
        return MCW_OK;
    case MEMCACHED_NOTSTORED:
    case MEMCACHED_NOTFOUND:
    case MEMCACHED_DATA_EXISTS:
        return MCW_NOT_STORED;
    case MEMCACHED_E2BIG:
        return MCW_TOO_LARGE;
    case MEMCACHED_BAD_KEY_PROVIDED:
    case MEMCACHED_KEY_TOO_BIG:
        return MCW_BAD_KEY;
    default:
        break;
    }
    /* Anything else leaves the connection in an unknown state: reset it so
     * a late reply is not read as the answer to the next command. */
    memcached_st *mc = w->nodes[node].mc;
    if (mc)
        memcached_quit(mc);
    if (rc == MEMCACHED_TIMEOUT)
        return MCW_TIMEOUT;
    if (rc == MEMCACHED_SERVER_ERROR) {
        const char *m = mc ? memcached_last_error_message(mc) : NULL;
        if (m && strstr(m, "too large"))
            return MCW_TOO_LARGE;
        return MCW_SERVER_ERROR;
    }
    if (rc == MEMCACHED_CONNECTION_FAILURE || rc == MEMCACHED_CONNECTION_SOCKET_CREATE_FAILURE ||
        rc == MEMCACHED_HOST_LOOKUP_FAILURE || rc == MEMCACHED_ERRNO ||
        rc == MEMCACHED_SERVER_MARKED_DEAD || rc == MEMCACHED_SERVER_TEMPORARILY_DISABLED ||
        rc == MEMCACHED_UNKNOWN_READ_FAILURE || rc == MEMCACHED_WRITE_FAILURE ||
        rc == MEMCACHED_READ_FAILURE || rc == MEMCACHED_CONNECTION_BIND_FAILURE ||
        rc == MEMCACHED_NO_SERVERS)
        return MCW_CONNECTION;
    return MCW_SERVER_ERROR;
}

static time_t expiry(unsigned exptime)
{
    if (exptime > THIRTY_DAYS)
        return time(NULL) + (time_t)exptime;
    return (time_t)exptime;
}

enum mcw_result mcwriter_set(struct mcwriter *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime)
{
    memcached_st *mc = handle(w, node);
    if (!mc)
        return MCW_CONNECTION;
    memcached_return_t rc = memcached_set(mc, key, klen, value, vlen, expiry(exptime), flags);
    return classify(w, node, rc);
}

enum mcw_result mcwriter_add(struct mcwriter *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime)
{
    memcached_st *mc = handle(w, node);
    if (!mc)
        return MCW_CONNECTION;
    memcached_return_t rc = memcached_add(mc, key, klen, value, vlen, expiry(exptime), flags);
    return classify(w, node, rc);
}

enum mcw_result mcwriter_append(struct mcwriter *w, size_t node, const char *key, size_t klen,
                                const void *value, size_t vlen)
{
    memcached_st *mc = handle(w, node);
    if (!mc)
        return MCW_CONNECTION;
    memcached_return_t rc = memcached_append(mc, key, klen, value, vlen, 0, 0);
    return classify(w, node, rc);
}

enum mcw_result mcwriter_delete(struct mcwriter *w, size_t node, const char *key, size_t klen)
{
    memcached_st *mc = handle(w, node);
    if (!mc)
        return MCW_CONNECTION;
    return classify(w, node, memcached_delete(mc, key, klen, 0));
}

enum mcw_result mcwriter_get(struct mcwriter *w, size_t node, const char *key, size_t klen,
                             char **out, size_t *outlen, uint32_t *flags)
{
    *out = NULL;
    *outlen = 0;
    memcached_st *mc = handle(w, node);
    if (!mc)
        return MCW_CONNECTION;
    memcached_return_t rc;
    uint32_t f = 0;
    char *v = memcached_get(mc, key, klen, outlen, &f, &rc);
    if (flags)
        *flags = f;
    if (v) {
        *out = v;
        return MCW_OK;
    }
    enum mcw_result r = classify(w, node, rc);
    return r == MCW_OK ? MCW_NOT_STORED : r;
}

static memcached_return_t on_stat(const memcached_instance_st *server, const char *key,
                                  size_t key_length, const char *value, size_t value_length,
                                  void *context)
{
    (void)server;
    size_t *out = context;
    uint64_t v;
    if (key_length == 13 && memcmp(key, "item_size_max", 13) == 0 &&
        util_parse_u64(value, value_length, UINT64_MAX, &v) == 0)
        *out = (size_t)v;
    return MEMCACHED_SUCCESS;
}

size_t mcwriter_item_limit(struct mcwriter *w, size_t node, size_t klen, uint32_t flags)
{
    if (node >= w->n)
        return 0;
    struct mcw_node *nd = &w->nodes[node];
    size_t max = w->cfg->max_item;
    if (!max) {
        if (!nd->item_max_asked) {
            memcached_st *mc = handle(w, node);
            size_t v = 0;
            if (mc && memcached_stat_execute(mc, "settings", on_stat, &v) == MEMCACHED_SUCCESS &&
                v > 0) {
                nd->item_max = v;
                nd->item_max_asked = 1;
            } else if (mc) {
                memcached_quit(mc);
            }
        }
        max = nd->item_max;
        if (!max)
            return 0;
    }
    size_t overhead = ITEM_OVERHEAD + klen + (flags ? sizeof(uint32_t) : 0);
    return max > overhead ? max - overhead : 0;
}

const char *mcwriter_result_name(enum mcw_result r)
{
    static const char *const names[] = {"ok",      "not_stored", "too_large",   "bad_key",
                                        "timeout", "connection", "server_error"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "?";
}

const char *mcwriter_node_address(const struct mcwriter *w, size_t node)
{
    return node < w->n ? w->nodes[node].address : "";
}
