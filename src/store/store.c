/* store.c - the store policy and the write.
 *
 * Facts behind the policy (doc/nginx.md §0-§2, §10): a memcached_pass hit
 * replays as a bare 200 with the body only, so only 200 responses without
 * Set-Cookie are worth storing; keys longer than 250 bytes once escaped can
 * never be read; the node is picked by hashing the RAW key and the item is
 * stored under the ESCAPED key. When nginx tells us the node it read
 * (MEMC_BACKEND) we write there, since that is where it will read again;
 * a MEMC_BACKEND naming no configured node is never connected to. The
 * order of the checks fixes which reason is counted when several apply.
 * With cache.gzip_flag the value is stored gzip-compressed with that flag
 * bit set (nginx's memcached_gzip_flag); the miss itself is answered
 * identity, and the item size limit applies to the compressed size.
 * Routes with "srcache": true store the whole response in srcache's format
 * (srcache.h) and, like srcache_store, also keep 301, 302, 307 and 308.
 * The request rules read every instance of a header (a session cookie in
 * a second Cookie line counts). They are checked once per request, with
 * the key and node, by store_locate, before the handler runs: the worker
 * tells the handler (request.store_ruled_out), so the relay knows which
 * regime applies, and the stampede lock knows whether to take part. */
#include "config.h"

#include "memfill/store.h"
#include "memfill/keyesc.h"
#include "memfill/keypattern.h"
#include "memfill/srcache.h"
#include "memfill/util.h"

#include <string.h>
#include <time.h>
#include <zlib.h>

void store_job_init(struct store_job *job)
{
    memset(job, 0, sizeof *job);
    buf_init(&job->loc.esc_key);
    buf_init(&job->value);
    job->loc.node = job->loc.computed_node = -1;
    job->loc.key_fit = KEYLOC_EMPTY;
}

void store_job_fini(struct store_job *job)
{
    buf_fini(&job->loc.esc_key);
    buf_fini(&job->value);
}

/* Returns 1 when a Cookie line holds a cookie named in names. Every
 * Cookie line counts (nginx passes each as its own param, and its
 * $cookie_NAME, which sends the visitor past memcached in the generated
 * config, searches them all), and names match as $cookie_NAME matches
 * them: ASCII case-insensitively, with nginx's own pair parser. */
static int has_session_cookie(const struct request *req, char *const *names)
{
    if (!names || !*names)
        return 0;
    struct buf all = BUF_INIT;
    int found = 0;
    if (request_header_joined(req, "HTTP_COOKIE", &all) > 0 && all.len) {
        const char *v;
        size_t vlen;
        for (char *const *n = names; *n && !found; n++)
            found = key_cookie_find(all.data, all.len, *n, strlen(*n), &v, &vlen);
    }
    buf_fini(&all);
    return found;
}

/* Returns 1 when any instance of the Authorization header came in. */
static int has_authorization(const struct request *req)
{
    struct buf all = BUF_INIT;
    size_t n = request_param_all(req, "HTTP_AUTHORIZATION", ", ", &all);
    buf_fini(&all);
    return n > 0;
}

/* Returns 1 when the response headers hold a header named name. */
static int has_header(const struct response *resp, const char *name)
{
    size_t nl = strlen(name);
    const char *p = resp->headers.data;
    if (!p)
        return 0; /* no header yet (and NULL + 0 is undefined) */
    const char *end = p + resp->headers.len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if ((size_t)(end - p) > nl && p[nl] == ':' && util_ascii_caseeq(p, name, nl))
            return 1;
        p = eol ? eol + 1 : end;
    }
    return 0;
}

/* The last entry of a comma list such as $upstream_status "502, 404". */
static const char *last_entry(const char *v)
{
    const char *c = strrchr(v, ',');
    v = c ? c + 1 : v;
    while (*v == ' ')
        v++;
    return v;
}

static unsigned pick_ttl(const struct config *cfg, const struct config_route *route,
                         const struct response *resp)
{
    long ttl = resp->ttl >= 0 ? resp->ttl : route && route->ttl >= 0 ? route->ttl : cfg->ttl;
    if (cfg->max_ttl && (ttl == 0 || ttl > (long)cfg->max_ttl))
        ttl = cfg->max_ttl;
    if (ttl < (long)cfg->min_ttl)
        ttl = cfg->min_ttl;
    return (unsigned)ttl;
}

/* The refusals known from the request alone, in two groups: those checked
 * before the response's and those checked after (the order fixes which
 * reason is counted when several apply). OUTCOME_STORED = no refusal. */
static enum store_outcome refuse_early(const struct site *site, const struct request *req,
                                       const struct config_route *r)
{
    if (!(req->method_bit & (CONFIG_METHOD_GET | CONFIG_METHOD_HEAD)))
        return OUTCOME_SKIP_METHOD;
    if (!r || !r->cache || regex_list_match(site->skip_uri, req->path.data, req->path.len) ||
        has_authorization(req))
        return OUTCOME_SKIP_RULE;
    if (has_session_cookie(req, site->cfg->skip_cookies))
        return OUTCOME_SKIP_COOKIE;
    return OUTCOME_STORED;
}

static enum store_outcome refuse_late(const struct request *req,
                                      const struct store_location *loc)
{
    if (loc->key_fit == KEYLOC_EMPTY || loc->node < 0)
        return OUTCOME_SKIP_KEY_EMPTY;
    if (loc->key_fit == KEYLOC_TOO_LONG)
        return OUTCOME_SKIP_KEY_TOO_LONG; /* nginx got a 502 for it too */
    if (req->memc_status && *req->memc_status &&
        strncmp(last_entry(req->memc_status), "404", 3) != 0)
        return OUTCOME_SKIP_NODE_TROUBLE;
    return OUTCOME_STORED;
}

void store_locate(const struct site *site, const struct request *req, size_t route,
                  struct store_location *loc)
{
    const struct config *cfg = site->cfg;
    const struct config_route *r = route < cfg->nroutes ? &cfg->routes[route] : NULL;
    buf_reset(&loc->esc_key, 1 << 16);
    loc->backend_mismatch = loc->node_drift = 0;
    int computed;
    loc->key_fit = keyloc_find(site->nodes, req->key, req->key_len, &loc->esc_key, &computed);
    loc->computed_node = computed;
    loc->node = computed;
    if (req->memc_backend && *req->memc_backend) {
        int b = nodesel_find_backend(site->nodes, req->memc_backend, strlen(req->memc_backend));
        if (b < 0) {
            loc->backend_mismatch = 1;
        } else {
            if (computed >= 0 && b != computed)
                loc->node_drift = 1;
            loc->node = b;
        }
    }
    loc->early = refuse_early(site, req, r);
    loc->late = refuse_late(req, loc);
}

int store_location_allows(const struct store_location *loc)
{
    return loc->early == OUTCOME_STORED && loc->late == OUTCOME_STORED;
}

void store_prepare(const struct site *site, const struct request *req, size_t route,
                   const struct response *resp, struct store_job *job)
{
    const struct config *cfg = site->cfg;
    const struct config_route *r = route < cfg->nroutes ? &cfg->routes[route] : NULL;
    job->srcache = r && r->srcache;
    enum store_outcome d = job->loc.early;
    if (d == OUTCOME_STORED) {
        if (resp->no_store)
            d = resp->no_store_reason ? resp->no_store_reason : OUTCOME_SKIP_HANDLER;
        else if (resp->status != 200 &&
                 !(job->srcache && srcache_status_storable(resp->status)))
            d = OUTCOME_SKIP_STATUS;
        else if (has_header(resp, "Set-Cookie"))
            d = OUTCOME_SKIP_COOKIE;
        else
            d = job->loc.late;
    }
    job->decision = d;
    if (d == OUTCOME_STORED && job->srcache) {
        buf_reset(&job->value, 1 << 20);
        srcache_encode(resp, &job->value);
    }
    job->ttl = pick_ttl(cfg, r, resp);
    job->flags = 0;
    job->gzip = 0;
    /* memcached_gzip_flag makes nginx label a hit "Content-Encoding: gzip"
     * (and gunzip decodes it for clients that cannot take gzip). */
    if (cfg->gzip_flag && !(r && r->srcache)) {
        job->flags = cfg->gzip_flag;
        job->gzip = 1;
    }
}

int store_gzip(const void *data, size_t len, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -1;
    z.next_in = (Bytef *)(uintptr_t)data;
    int rc;
    do {
        /* one pass reads at most UINT_MAX bytes of input */
        size_t chunk = len - (size_t)((const char *)z.next_in - (const char *)data);
        z.avail_in = chunk > UINT32_MAX ? UINT32_MAX : (uInt)chunk;
        int flush = chunk > UINT32_MAX ? Z_NO_FLUSH : Z_FINISH;
        uLong bound = deflateBound(&z, z.avail_in);
        buf_reserve(out, bound);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1 > UINT32_MAX ? UINT32_MAX
                                                                   : out->cap - out->len - 1);
        size_t before = z.avail_out;
        rc = deflate(&z, flush);
        out->len += before - z.avail_out;
        if (rc == Z_STREAM_ERROR)
            break;
    } while (rc != Z_STREAM_END);
    deflateEnd(&z);
    if (out->data)
        out->data[out->len] = '\0';
    return rc == Z_STREAM_END ? 0 : -1;
}

enum store_outcome store_execute(struct mcclient *w, const struct store_job *job,
                                 const void *value, size_t vlen, struct buf *gz,
                                 uint64_t *usec)
{
    *usec = 0;
    if (job->decision != OUTCOME_STORED)
        return job->decision;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    enum store_outcome out;
    if (job->srcache) {
        value = job->value.data ? job->value.data : "";
        vlen = job->value.len;
    }
    if (job->gzip) {
        buf_reset(gz, 1 << 20);
        if (store_gzip(value, vlen, gz) < 0) {
            buf_reset(gz, 1 << 20);
            return OUTCOME_SKIP_GZIP;
        }
        value = gz->data;
        vlen = gz->len;
    }
    size_t limit = mcclient_item_limit(w, (size_t)job->loc.node, job->loc.esc_key.len, job->flags);
    if (limit && vlen > limit) {
        out = OUTCOME_SKIP_SIZE;
    } else {
        enum mcc_result r = mcclient_set(w, (size_t)job->loc.node, job->loc.esc_key.data,
                                         job->loc.esc_key.len, value, vlen, job->flags, job->ttl);
        switch (r) {
        case MCC_OK: out = OUTCOME_STORED; break;
        case MCC_TOO_LARGE:
            /* Above the limit the set learned when it connected: a skip. */
            limit = mcclient_item_limit(w, (size_t)job->loc.node, job->loc.esc_key.len, job->flags);
            out = limit && vlen > limit ? OUTCOME_SKIP_SIZE : OUTCOME_FAIL_TOO_LARGE;
            break;
        case MCC_TIMEOUT: out = OUTCOME_FAIL_TIMEOUT; break;
        case MCC_CONNECTION: out = OUTCOME_FAIL_CONNECTION; break;
        default: out = OUTCOME_FAIL_SERVER; break;
        }
    }
    if (job->gzip)
        buf_reset(gz, 1 << 20);
    clock_gettime(CLOCK_MONOTONIC, &b);
    /* Signed first: tv_nsec goes down when a second boundary is crossed. */
    int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
    *usec = ns > 0 ? (uint64_t)ns / 1000u : 0;
    return out;
}
