/* handler_template.c - renders a Mustache template over JSON data.
 *
 * The template (and its partials) is compiled when the site is built, so a
 * syntax error fails `memfill -t` and a reload, and workers never parse
 * templates. Data comes from a JSON file chosen by the route's captures
 * (data/treks/{slug}.json): a missing file is a 404 and a broken one a 500
 * with the file and position logged; neither is stored. A route without
 * data renders over the request's own variables (path, query). */
#include "config.h"

#include "memfill/handler.h"
#include "memfill/log.h"
#include "memfill/template.h"
#include "memfill/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct template_state {
    struct template_set *set;
    const struct template *tpl;
    const char *data;     /* file pattern, borrowed from the config */
    const char *data_url; /* URL pattern (fetched by the upstream client) */
};

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
    s->data = r->data;
    s->data_url = r->data_url;
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

static json_t *load_data(const struct template_state *s, const struct request *req,
                         const struct route_match *m, struct response *resp)
{
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
    json_error_t je;
    json_t *data = json_load_file(path.data, JSON_REJECT_DUPLICATES, &je);
    if (!data) {
        {
            struct buf esc = BUF_INIT;
            log_error("data %s:%d:%d: %s", log_escape(&esc, path.data, path.len, 512), je.line,
                      je.column, je.text);
            buf_fini(&esc);
            response_error(resp, 500, "The page data is broken; the error is logged.");
        }
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
        return;
    }
    struct err e;
    err_clear(&e);
    if (template_render(s->tpl, data, &resp->body, &e) < 0) {
        log_error("render failed: %s", e.text);
        response_error(resp, 500, "The page could not be rendered; the error is logged.");
        resp->no_store = 1;
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
    free(s);
}

const struct handler_ops handler_template_ops = {
    "template",
    template_create,
    template_handle,
    template_destroy,
};
