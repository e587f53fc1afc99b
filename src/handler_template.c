/* handler_template.c - renders a Mustache template over JSON data.
 *
 * The template (and its partials) is compiled when the site is built, so a
 * syntax error fails `memfill -t` and a reload, and workers never parse
 * templates. Data comes from one of:
 *   - "data": a JSON file chosen by the route's captures
 *     (data/treks/{slug}.json; a capture holding '/', ".." or NUL names no
 *     file). A missing file is a 404, a broken one a 500 with
 *     file:line:col logged.
 *   - "data_url": an http(s) URL pattern (http://api/treks/{slug}) whose
 *     captures are percent-encoded (everything but A-Z a-z 0-9 - . _ ~),
 *     fetched with the upstream client: one per worker, made on the first
 *     request, so its kept-alive connection is never shared across fork.
 *     The origin's 404 (or 410) is a 404; a connection failure, a timeout
 *     or any other status is a 502; a body that is not JSON is a 500 with
 *     URL:line:col logged.
 * None of those error pages is stored. A route without data renders over
 * the request's own variables (path, query, captures). */
#include "config.h"

#include "memfill/handler.h"
#include "memfill/log.h"
#include "memfill/stats.h"
#include "memfill/template.h"
#include "memfill/upstream.h"
#include "memfill/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Data documents above this are refused (502). */
#define TEMPLATE_MAX_DATA (16UL << 20)

struct template_state {
    struct template_set *set;
    const struct template *tpl;
    const char *data;     /* file pattern, borrowed from the config */
    const char *data_url; /* URL pattern (fetched by the upstream client) */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    struct upstream_client *client; /* NULL until the first data_url fetch */
    struct upstream_resp ures;      /* reused from request to request */
    struct data_cache_entry *cache; /* parsed data files, per worker */
    size_t ncache;      /* slots in use (some may be free again) */
    size_t cache_next;  /* the slot the cache empties next when full */
    size_t cache_bytes; /* JSON text of the cached files */
};

/* Parsed data files are kept per worker and reused while the file is
 * unchanged (same device, inode, size, mtime and ctime as stat() sees for
 * this request): parsing the JSON again on every miss was two thirds of a
 * miss's CPU in the worker. The cache is bounded per route, so a worker's
 * memory stays small: at most DATA_CACHE_SLOTS files holding at most
 * DATA_CACHE_BYTES of JSON text together (a parsed document takes a few
 * times its text); a file above a quarter of that is parsed per request as
 * before. A full cache replaces its entries in turn. */
#define DATA_CACHE_SLOTS 64
#define DATA_CACHE_BYTES (256UL << 10)

struct data_cache_entry {
    char *path; /* NULL: a free slot */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    json_t *data;
};

static int same_file(const struct data_cache_entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static struct data_cache_entry *cache_find(struct template_state *s, const char *path)
{
    for (size_t i = 0; i < s->ncache; i++)
        if (s->cache[i].path && strcmp(s->cache[i].path, path) == 0)
            return &s->cache[i];
    return NULL;
}

static void cache_drop(struct template_state *s, struct data_cache_entry *e)
{
    s->cache_bytes -= (size_t)e->size;
    free(e->path);
    json_decref(e->data);
    memset(e, 0, sizeof *e);
}

/* Returns a new reference to the cached data of path when it is still the
 * file st describes, else NULL. */
static json_t *cache_get(struct template_state *s, const char *path, const struct stat *st)
{
    struct data_cache_entry *e = cache_find(s, path);
    return e && same_file(e, st) ? json_incref(e->data) : NULL;
}

/* Remembers data (a new reference is taken) for path as st describes it. */
static void cache_put(struct template_state *s, const char *path, const struct stat *st,
                      json_t *data)
{
    struct data_cache_entry *e = cache_find(s, path);
    if (e)
        cache_drop(s, e);
    if (st->st_size < 0 || (size_t)st->st_size > DATA_CACHE_BYTES / 4)
        return;
    if (!s->cache)
        s->cache = xcalloc(DATA_CACHE_SLOTS, sizeof *s->cache);
    e = NULL;
    for (size_t i = 0; i < s->ncache && !e; i++)
        if (!s->cache[i].path)
            e = &s->cache[i];
    if (!e && s->ncache < DATA_CACHE_SLOTS)
        e = &s->cache[s->ncache++];
    while (!e || s->cache_bytes + (size_t)st->st_size > DATA_CACHE_BYTES) {
        struct data_cache_entry *victim = &s->cache[s->cache_next];
        s->cache_next = (s->cache_next + 1) % s->ncache;
        if (victim->path)
            cache_drop(s, victim);
        if (!e)
            e = victim;
    }
    e->path = xstrdup(path);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    e->data = json_incref(data);
    s->cache_bytes += (size_t)st->st_size;
}

static void cache_free(struct template_state *s)
{
    for (size_t i = 0; i < s->ncache; i++)
        if (s->cache[i].path)
            cache_drop(s, &s->cache[i]);
    free(s->cache);
}

static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
}

static int template_create(const struct config *cfg, size_t route_index, void **state,
                           struct err *err)
{
    const struct config_route *r = &cfg->routes[route_index];
    struct template_state *s = xcalloc(1, sizeof *s);
    char *dir = r->partials ? xstrdup(r->partials) : folder_of(r->template_path);
    s->set = template_set_new(dir);
    free(dir);
    struct err te;
    err_clear(&te);
    s->tpl = template_set_load(s->set, r->template_path, &te);
    if (!s->tpl) {
        char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
        err_set(err, cfg->path, r->pos.line, r->pos.col, "routes[%zu].template: %s",
                route_index, err_format(&te, msg, sizeof msg));
        template_set_free(s->set);
        free(s);
        return -1;
    }
    if (r->data_url && !util_starts_with(r->data_url, "http://") &&
        !util_starts_with(r->data_url, "https://")) {
        err_set(err, cfg->path, r->pos.line, r->pos.col,
                "routes[%zu].data_url: expected an http:// or https:// URL pattern",
                route_index);
        template_set_free(s->set);
        free(s);
        return -1;
    }
    s->data = r->data;
    s->data_url = r->data_url;
    s->connect_timeout_ms = r->connect_timeout_ms;
    s->timeout_ms = r->timeout_ms;
    upstream_resp_init(&s->ures);
    *state = s;
    return 0;
}

/* The variables a data-less template sees: {{path}}, {{query}}, captures. */
static json_t *request_data(const struct request *req, const struct route_match *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "path", json_stringn_nocheck(req->path.data, req->path.len));
    json_object_set_new(o, "query", json_string_nocheck(req->query));
    for (size_t i = 0; i < m->ncaptures; i++)
        json_object_set_new(o, m->names[i],
                            json_stringn_nocheck(m->storage.data + m->value_off[i], m->value_len[i]));
    return o;
}

/* Fetches the data document from the route's data_url. */
static json_t *fetch_data(struct template_state *s, const struct route_match *m,
                          struct response *resp)
{
    struct buf url = BUF_INIT, esc = BUF_INIT;
    json_t *data = NULL;
    if (route_expand_url(m, s->data_url, &url) < 0) {
        response_error(resp, 404, "The requested page was not found.");
        goto out;
    }
    log_escape(&esc, url.data, url.len, 512);
    if (!s->client)
        s->client = upstream_client_new();
    static const char *const headers[] = {"Accept: application/json", NULL};
    struct upstream_req ureq = {
        .method = "GET",
        .url = url.data,
        .headers = headers,
        .connect_timeout_ms = s->connect_timeout_ms,
        .timeout_ms = s->timeout_ms,
        .max_bytes = TEMPLATE_MAX_DATA,
    };
    struct err e;
    err_clear(&e);
    if (upstream_fetch(s->client, &ureq, &s->ures, &e) < 0) {
        log_error("data_url %s: %s", esc.data, e.text);
        response_error(resp, 502, "The page data could not be fetched; the error is logged.");
        goto out;
    }
    int st = s->ures.status;
    if (st == 404 || st == 410) {
        response_error(resp, 404, "The requested page was not found.");
        goto out;
    }
    if (st != 200) {
        log_error("data_url %s: the origin answered status %d", esc.data, st);
        response_error(resp, 502, "The page data could not be fetched; the error is logged.");
        goto out;
    }
    json_error_t je;
    data = json_loadb(s->ures.body.data ? s->ures.body.data : "", s->ures.body.len,
                      JSON_REJECT_DUPLICATES, &je);
    if (!data) {
        log_error("data_url %s:%d:%d: %s", esc.data, je.line, je.column, je.text);
        response_error(resp, 500, "The page data is broken; the error is logged.");
    }
out:
    upstream_resp_reset(&s->ures, 1 << 20);
    buf_fini(&esc);
    buf_fini(&url);
    return data;
}

static json_t *load_data(struct template_state *s, const struct request *req,
                         const struct route_match *m, struct response *resp)
{
    if (s->data_url)
        return fetch_data(s, m, resp);
    if (!s->data)
        return request_data(req, m);
    struct buf path = BUF_INIT;
    if (route_expand(m, s->data, &path) < 0) {
        buf_fini(&path);
        response_error(resp, 404, "The requested page was not found.");
        return NULL;
    }
    struct stat st;
    if (stat(path.data, &st) < 0 || !S_ISREG(st.st_mode)) {
        buf_fini(&path);
        response_error(resp, 404, "The requested page was not found.");
        return NULL;
    }
    json_t *data = cache_get(s, path.data, &st);
    if (data) {
        buf_fini(&path);
        return data;
    }
    json_error_t je;
    data = json_load_file(path.data, JSON_REJECT_DUPLICATES, &je);
    if (data)
        cache_put(s, path.data, &st, data);
    if (!data) {
        struct buf esc = BUF_INIT;
        log_escape(&esc, path.data, path.len, 512);
        if (je.line > 0) /* a parse error; else the file could not be read */
            log_error("data %s:%d:%d: %s", esc.data, je.line, je.column, je.text);
        else
            log_error("data %s: %s", esc.data, je.text);
        buf_fini(&esc);
        response_error(resp, 500, "The page data is broken; the error is logged.");
    }
    buf_fini(&path);
    return data;
}

static void template_handle(void *state, const struct request *req, const struct route_match *m,
                            struct response *resp)
{
    struct template_state *s = state;
    json_t *data = load_data(s, req, m, resp);
    if (!data) {
        resp->no_store = 1;
        resp->no_store_reason = STATS_SKIP_HANDLER;
        return;
    }
    struct err e;
    err_clear(&e);
    if (template_render(s->tpl, data, &resp->body, &e) < 0) {
        log_error("render failed: %s", e.text);
        response_error(resp, 500, "The page could not be rendered; the error is logged.");
        resp->no_store = 1;
        resp->no_store_reason = STATS_SKIP_HANDLER;
    } else {
        buf_append_str(&resp->content_type, "text/html; charset=utf-8");
    }
    json_decref(data);
}

static void template_destroy(void *state)
{
    struct template_state *s = state;
    if (!s)
        return;
    template_set_free(s->set);
    cache_free(s);
    upstream_client_free(s->client);
    upstream_resp_fini(&s->ures);
    free(s);
}

const struct handler_ops handler_template_ops = {
    "template",
    template_create,
    template_handle,
    template_destroy,
};
