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
 * the request's own variables (path, query, captures).
 *
 * Bounds (doc/content.md, "Render limits"): a data file or data_url
 * document above template.max_data is refused (500 for a file, looked at
 * with stat() before it is read and read no further than the cap should
 * it grow; 502 for a URL, whose fetch stops at the cap); a render whose
 * output passes template.max_output stops there and answers 500. Each is
 * counted (data_too_large, render_too_large) and logged with the route and
 * the request's path, at most once per 10 s per route and worker. */
#include "config.h"

#include "memfill/datacache.h"
#include "memfill/handler.h"
#include "memfill/log.h"
#include "memfill/template.h"
#include "memfill/httpclient.h"
#include "memfill/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Limit errors (a page or a data document above its cap) are logged at
 * most once per 10 s per route and worker, with how many were left out
 * (log_limit): such a page is never stored, so every request for it
 * reaches memfill again. */
#define LIMIT_LOG_INTERVAL_MS 10000

struct template_state {
    struct template_set *set;
    const struct template *tpl;
    size_t route;         /* index, for log lines */
    const char *data;     /* file pattern, borrowed from the config */
    const char *data_url; /* URL pattern (fetched by the upstream client) */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    size_t max_output;    /* template.max_output */
    size_t max_data;      /* template.max_data */
    size_t cache_budget;  /* template.data_cache */
    struct http_client *client; /* NULL until the first data_url fetch */
    struct http_resp ures;      /* reused from request to request */
    struct buf text;                /* a data file's text, reused */
    struct log_limit limit_log;     /* rate limit of limit errors */
};

/* Parsed data files are kept per worker and reused while the file is
 * unchanged (see datacache.h): parsing the JSON again on every miss was two
 * thirds of a miss's CPU in the worker. One cache serves every template
 * route of the process (routes naming the same file share its entry),
 * within template.data_cache; it is made on the first miss, so only
 * workers fill one, and freed with the last route's state. */
static struct datacache *data_cache;
static size_t data_cache_users;

static struct datacache *worker_data_cache(const struct template_state *s)
{
    if (!data_cache)
        data_cache = datacache_new(s->cache_budget);
    return data_cache;
}

/* Answers 500 (or status) for a limit the request ran into: the message
 * in line is logged (rate-limited) with the request's path, the event
 * counted and the page never stored. */
static void limit_hit(struct template_state *s, const struct request *req, struct response *resp,
                      int status, enum response_limit limit, const char *page,
                      const char *line)
{
    if (log_limit_allow(&s->limit_log)) {
        struct buf esc = BUF_INIT;
        log_escape(&esc, req->path.data, req->path.len, 200);
        log_limit_write(&s->limit_log, LOG_ERROR, "routes[%zu] %s: %s", s->route, esc.data,
                        line);
        buf_fini(&esc);
    }
    response_error(resp, status, page);
    resp->limit = limit;
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
    s->limit_log = (struct log_limit)LOG_LIMIT_INIT(LIMIT_LOG_INTERVAL_MS);
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
    s->route = route_index;
    s->data = r->data;
    s->data_url = r->data_url;
    s->connect_timeout_ms = r->connect_timeout_ms;
    s->timeout_ms = r->timeout_ms;
    s->max_output = cfg->template_max_output;
    s->max_data = cfg->template_max_data;
    s->cache_budget = cfg->template_data_cache;
    http_resp_init(&s->ures);
    buf_init(&s->text);
    data_cache_users++;
    if (data_cache) /* a reload may have changed the budget */
        datacache_set_budget(data_cache, s->cache_budget);
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
static json_t *fetch_data(struct template_state *s, const struct request *req,
                          const struct route_match *m, struct response *resp)
{
    struct buf url = BUF_INIT, esc = BUF_INIT;
    json_t *data = NULL;
    if (route_expand_url(m, s->data_url, &url) < 0) {
        response_error(resp, 404, "The requested page was not found.");
        goto out;
    }
    log_escape(&esc, url.data, url.len, 512);
    if (!s->client)
        s->client = http_client_new();
    static const char *const headers[] = {"Accept: application/json", NULL};
    struct http_req ureq = {
        .method = "GET",
        .url = url.data,
        .headers = headers,
        .connect_timeout_ms = s->connect_timeout_ms,
        .timeout_ms = s->timeout_ms,
        .max_bytes = s->max_data,
    };
    struct err e;
    err_clear(&e);
    int rc = http_fetch(s->client, &ureq, &s->ures, &e);
    if (rc < 0 && s->ures.failure == HTTPC_TOO_LARGE) {
        char line[1024];
        snprintf(line, sizeof line,
                 "data_url %s: the document is larger than template.max_data (%zu bytes)",
                 esc.data, s->max_data);
        limit_hit(s, req, resp, 502, RESPONSE_LIMIT_DATA,
                  "The page data is too large; the error is logged.", line);
        goto out;
    }
    if (rc < 0) {
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
    http_resp_reset(&s->ures, 1 << 20);
    buf_fini(&esc);
    buf_fini(&url);
    return data;
}

/* Reads the regular file at path into out (emptied first), at most max
 * bytes, and sets *st from the open file. Returns 0; 1 when the file holds
 * more than max bytes (it may have grown since it was looked at: the read
 * stops there); -1 with errno set when it cannot be read. */
static int read_data_file(const char *path, size_t max, struct buf *out, struct stat *st)
{
    buf_reset(out, 1 << 20);
    /* O_NONBLOCK: a FIFO put in the file's place must not block the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (fstat(fd, st) < 0) {
        rc = -1;
    } else if (!S_ISREG(st->st_mode)) {
        errno = EISDIR;
        rc = -1;
    } else if ((unsigned long long)st->st_size > max) {
        rc = 1;
    } else {
        buf_reserve(out, (size_t)st->st_size + 1);
        if (util_read_fd(fd, path, max, out, NULL) < 0)
            rc = errno == EFBIG ? 1 : -1; /* EFBIG: it grew since it was looked at */
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static void data_too_large(struct template_state *s, const struct request *req,
                           struct response *resp, const struct buf *esc_path, long long size)
{
    char line[1024];
    if (size >= 0)
        snprintf(line, sizeof line, "data %s is %lld bytes, above template.max_data (%zu bytes)",
                 esc_path->data, size, s->max_data);
    else
        snprintf(line, sizeof line, "data %s grew past template.max_data (%zu bytes) while read",
                 esc_path->data, s->max_data);
    limit_hit(s, req, resp, 500, RESPONSE_LIMIT_DATA,
              "The page data is too large; the error is logged.", line);
}

static json_t *load_data(struct template_state *s, const struct request *req,
                         const struct route_match *m, struct response *resp)
{
    if (s->data_url)
        return fetch_data(s, req, m, resp);
    if (!s->data)
        return request_data(req, m);
    struct buf path = BUF_INIT, esc = BUF_INIT;
    json_t *data = NULL;
    if (route_expand(m, s->data, &path) < 0) {
        response_error(resp, 404, "The requested page was not found.");
        goto out;
    }
    struct stat st;
    if (stat(path.data, &st) < 0 || !S_ISREG(st.st_mode)) {
        response_error(resp, 404, "The requested page was not found.");
        goto out;
    }
    log_escape(&esc, path.data, path.len, 512);
    /* Refused before anything is read or looked up. */
    if ((unsigned long long)st.st_size > s->max_data) {
        data_too_large(s, req, resp, &esc, (long long)st.st_size);
        goto out;
    }
    struct datacache *cache = worker_data_cache(s);
    data = datacache_get(cache, path.data, &st);
    if (data)
        goto out;
    int rc = read_data_file(path.data, s->max_data, &s->text, &st);
    if (rc == 1) {
        data_too_large(s, req, resp, &esc, -1);
        goto out;
    }
    if (rc < 0) {
        log_error("data %s: %s", esc.data, strerror(errno));
        response_error(resp, 500, "The page data is broken; the error is logged.");
        goto out;
    }
    json_error_t je;
    size_t cost;
    data = datacache_parse(s->text.data, s->text.len, &je, &cost);
    buf_reset(&s->text, 1 << 20);
    if (!data) {
        log_error("data %s:%d:%d: %s", esc.data, je.line, je.column, je.text);
        response_error(resp, 500, "The page data is broken; the error is logged.");
        goto out;
    }
    int kept = datacache_put(cache, path.data, &st, data, cost);
    log_debug("data %s: %zu bytes parsed into about %zu; %s; the data cache holds %zu files, "
              "%zu of %zu bytes", esc.data, (size_t)st.st_size, cost, kept ? "kept" : "not kept (above template.data_cache)",
              datacache_count(cache), datacache_used(cache), s->cache_budget);
out:
    buf_fini(&esc);
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
        resp->no_store_reason = OUTCOME_SKIP_HANDLER;
        return;
    }
    struct err e;
    err_clear(&e);
    int rc = template_render_capped(s->tpl, data, s->max_output, &resp->body, &e);
    json_decref(data);
    if (rc == TEMPLATE_TOO_LARGE) {
        char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32], line[ERR_TEXT_MAX + ERR_SOURCE_MAX + 96];
        snprintf(line, sizeof line, "render stopped at template.max_output: %s",
                 err_format(&e, msg, sizeof msg));
        limit_hit(s, req, resp, 500, RESPONSE_LIMIT_RENDER,
                  "The page is too large to be rendered; the error is logged.", line);
    } else if (rc < 0) {
        log_error("render failed: %s", e.text);
        response_error(resp, 500, "The page could not be rendered; the error is logged.");
    } else {
        buf_append_str(&resp->content_type, "text/html; charset=utf-8");
        return;
    }
    resp->no_store = 1;
    resp->no_store_reason = OUTCOME_SKIP_HANDLER;
}

static void template_destroy(void *state)
{
    struct template_state *s = state;
    if (!s)
        return;
    template_set_free(s->set);
    if (--data_cache_users == 0) {
        datacache_free(data_cache);
        data_cache = NULL;
    }
    http_client_free(s->client);
    http_resp_fini(&s->ures);
    buf_fini(&s->text);
    free(s);
}

const struct handler_ops handler_template_ops = {
    "template",
    template_create,
    template_handle,
    template_destroy,
};
