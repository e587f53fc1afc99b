/* handler_plugin.c - runs a content handler from a shared object written
 * against the public <memfill/plugin.h>.
 *
 * create() loads the object with dlopen(RTLD_NOW | RTLD_LOCAL) (so a
 * missing symbol fails the config check, not a request), finds
 * memfill_plugin_v1 (or calls memfill_plugin_v1_get), checks the ABI and
 * runs the plugin's init() with the route's "config" JSON text. It runs in
 * the master before fork; workers inherit the loaded object and its state.
 *
 * handle() hands the plugin two small handles whose api member points to
 * host_api below, and whose opaque member points to a struct plugin_call on
 * handle()'s stack: the plugin never sees struct request or struct
 * response, so they can change without breaking the plugin ABI, and no
 * memfill symbol has to be exported from the executable (no -rdynamic).
 * Every check on what the plugin writes (status range, header and type
 * bytes, tags) is done here, because the plugin is not trusted to keep the
 * response well-formed. Strings the API returns must be NUL-terminated;
 * values that are slices of a larger buffer (query arguments, captures) are
 * copied into a list owned by the call and freed when handle() returns. */
#include "config.h"

#include "memfill/handler.h"
#include "memfill/log.h"
#include "memfill/plugin.h"
#include "memfill/util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Longest message accepted from a plugin's init(). */
#define PLUGIN_ERRBUF 256
/* Longest tag add_tag() accepts (the tag index keys must fit memcached). */
#define PLUGIN_TAG_MAX 250
/* The struct memfill_plugin of ABI 1 ends with free. */
#define PLUGIN_MIN_SIZE (offsetof(struct memfill_plugin, free) + sizeof(void (*)(void *)))

struct plugin_state {
    void *dl;                            /* dlopen handle, closed by destroy */
    const struct memfill_plugin *plugin; /* borrowed from dl */
    void *pstate;                        /* what plugin->init made */
    char *name;                          /* plugin->name or the file name */
    const char *content_type;            /* route override, or NULL (cfg's) */
};

/* A NUL-terminated copy handed to the plugin during one call. */
struct plugin_copy {
    struct plugin_copy *next;
    char data[];
};

/* What one handle() call works on; reached through the handles' opaque. */
struct plugin_call {
    const struct plugin_state *s;
    const struct request *req;
    const struct route_match *m; /* may be NULL */
    struct response *resp;
    struct plugin_copy *copies;
};

static struct plugin_call *call_of_req(const struct memfill_request *r)
{
    return r->opaque;
}

static struct plugin_call *call_of_resp(struct memfill_response *r)
{
    return r->opaque;
}

/* Returns p (len bytes) as a NUL-terminated string valid until the call
 * ends: p itself when it is already terminated, else a copy. */
static const char *call_str(struct plugin_call *c, const char *p, size_t len)
{
    if (p[len] == '\0')
        return p;
    struct plugin_copy *cp = xmalloc(sizeof *cp + len + 1);
    memcpy(cp->data, p, len);
    cp->data[len] = '\0';
    cp->next = c->copies;
    c->copies = cp;
    return cp->data;
}

static void call_fini(struct plugin_call *c)
{
    while (c->copies) {
        struct plugin_copy *next = c->copies->next;
        free(c->copies);
        c->copies = next;
    }
}

/*---- host API: the request ----*/

static const char *api_param(const struct memfill_request *r, const char *name)
{
    return request_param(call_of_req(r)->req, name);
}

static const char *api_method(const struct memfill_request *r)
{
    return call_of_req(r)->req->method;
}

static const char *api_path(const struct memfill_request *r, size_t *len)
{
    const struct request *req = call_of_req(r)->req;
    if (len)
        *len = req->path.len;
    return req->path.data ? req->path.data : "";
}

static const char *api_request_uri(const struct memfill_request *r)
{
    return call_of_req(r)->req->request_uri;
}

static const char *api_query(const struct memfill_request *r)
{
    const char *q = call_of_req(r)->req->query;
    return q ? q : "";
}

/* nginx's ngx_http_arg(): the first "name=" (case-insensitive) at the start
 * of the query or right after a '&'; the value runs to the next '&'. */
static const char *api_arg(const struct memfill_request *r, const char *name, size_t *len)
{
    struct plugin_call *c = call_of_req(r);
    const char *q = api_query(r);
    size_t n = strlen(name);
    if (n == 0)
        return NULL;
    for (const char *p = q; *p;) {
        if (util_ascii_caseeq(p, name, n) && p[n] == '=') {
            const char *v = p + n + 1;
            size_t vl = strcspn(v, "&");
            if (len)
                *len = vl;
            return call_str(c, v, vl);
        }
        p = strchr(p, '&');
        if (!p)
            break;
        p++;
    }
    return NULL;
}

static const char *api_capture(const struct memfill_request *r, const char *name, size_t *len)
{
    struct plugin_call *c = call_of_req(r);
    size_t vl = 0;
    const char *v = c->m ? route_match_get(c->m, name, &vl) : NULL;
    if (!v)
        return NULL;
    if (len)
        *len = vl;
    return call_str(c, v, vl);
}

static const char *api_body(const struct memfill_request *r, size_t *len)
{
    const struct request *req = call_of_req(r)->req;
    if (!req->body || req->body_len == 0) {
        *len = 0;
        return NULL;
    }
    *len = req->body_len;
    return req->body;
}

/*---- host API: the response ----*/

static int api_set_status(struct memfill_response *r, int status)
{
    if (status < 200 || status > 599)
        return -1;
    call_of_resp(r)->resp->status = status;
    return 0;
}

/* Returns 1 when s holds no control byte (TAB too unless tab_ok). */
static int text_is_clean(const char *s, int tab_ok)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && !(tab_ok && ch == '\t')) || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int api_set_content_type(struct memfill_response *r, const char *type)
{
    if (!*type || !text_is_clean(type, 0))
        return -1;
    struct response *resp = call_of_resp(r)->resp;
    buf_reset(&resp->content_type, 1 << 10);
    buf_append_str(&resp->content_type, type);
    return 0;
}

/* RFC 9110 token: the characters a header name may hold. */
static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr("!#$%&'*+-.^_`|~", ch))))
            return 0;
    }
    return 1;
}

static int name_is(const char *name, const char *what)
{
    size_t n = strlen(what);
    return strlen(name) == n && util_ascii_caseeq(name, what, n);
}

static int api_add_header(struct memfill_response *r, const char *name, const char *value)
{
    if (!is_token(name) || !text_is_clean(value, 1))
        return -1;
    if (name_is(name, "Content-Type"))
        return api_set_content_type(r, value);
    /* The FastCGI writer sends these itself, from status and body. */
    if (name_is(name, "Status") || name_is(name, "Content-Length"))
        return -1;
    return response_add_header(call_of_resp(r)->resp, name, value, strlen(value));
}

static int api_write(struct memfill_response *r, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (!data)
        return -1;
    buf_append(&call_of_resp(r)->resp->body, data, len);
    return 0;
}

static void api_no_store(struct memfill_response *r)
{
    /* no_store_reason stays OUTCOME_STORED (none given): the store counts it
     * as "the handler said no" (skip_handler). */
    call_of_resp(r)->resp->no_store = 1;
}

static int api_set_ttl(struct memfill_response *r, long seconds)
{
    if (seconds < 0 || (unsigned long)seconds > 0xffffffffUL)
        return -1;
    call_of_resp(r)->resp->ttl = seconds;
    return 0;
}

static int api_add_tag(struct memfill_response *r, const char *tag)
{
    size_t n = strlen(tag);
    if (n == 0 || n > PLUGIN_TAG_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)tag[i];
        if (ch <= 0x20 || ch == 0x7f)
            return -1;
    }
    struct buf *tags = &call_of_resp(r)->resp->tags;
    if (tags->len)
        buf_append_char(tags, ' ');
    buf_append(tags, tag, n);
    return 0;
}

/*---- host API: the host ----*/

static void api_log(const struct memfill_request *r, int level, const char *msg)
{
    enum log_level l = level <= MEMFILL_LOG_ERROR  ? LOG_ERROR
                       : level == MEMFILL_LOG_WARN ? LOG_WARN
                       : level == MEMFILL_LOG_INFO ? LOG_INFO
                                                   : LOG_DEBUG;
    if (!log_enabled(l))
        return;
    struct buf esc = BUF_INIT;
    log_escape(&esc, msg, strlen(msg), 2048);
    log_msg(l, "plugin %s: %s", call_of_req(r)->s->name, esc.data ? esc.data : "");
    buf_fini(&esc);
}

static const struct memfill_host_api host_api = {
    .abi = MEMFILL_PLUGIN_ABI,
    .size = sizeof(struct memfill_host_api),
    .param = api_param,
    .method = api_method,
    .path = api_path,
    .request_uri = api_request_uri,
    .query = api_query,
    .arg = api_arg,
    .capture = api_capture,
    .body = api_body,
    .set_status = api_set_status,
    .set_content_type = api_set_content_type,
    .add_header = api_add_header,
    .write = api_write,
    .no_store = api_no_store,
    .set_ttl = api_set_ttl,
    .add_tag = api_add_tag,
    .log = api_log,
};

/*---- handler ops ----*/

/* dlerror()'s text, or a fallback when there is none. */
static const char *dl_error_text(void)
{
    const char *e = dlerror();
    return e ? e : "unknown dynamic loader error";
}

/* Finds the plugin struct in dl: the data symbol, else the getter. */
static const struct memfill_plugin *find_plugin(void *dl)
{
    void *sym = dlsym(dl, MEMFILL_PLUGIN_SYMBOL);
    if (sym)
        return sym;
    sym = dlsym(dl, MEMFILL_PLUGIN_GET_SYMBOL);
    if (!sym)
        return NULL;
    memfill_plugin_get_fn get;
    /* POSIX guarantees a dlsym'ed object pointer converts to a function
     * pointer; memcpy keeps ISO C compilers quiet about it. */
    memcpy(&get, &sym, sizeof get);
    return get();
}

/* Replaces control bytes in a plugin's message so it stays one line. */
static void clean_message(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

static int plugin_create(const struct config *cfg, size_t route_index, void **state,
                         struct err *err)
{
    const struct config_route *r = &cfg->routes[route_index];
    int line = r->pos.line, col = r->pos.col;
    if (!r->plugin || !*r->plugin) {
        err_set(err, cfg->path, line, col,
                "routes[%zu].plugin: expected the path of a shared object", route_index);
        return -1;
    }
    int saved_errno = errno;
    /* A name without a '/' would make dlopen search the library path. */
    char *file = strchr(r->plugin, '/') ? xstrdup(r->plugin) : xasprintf("./%s", r->plugin);
    dlerror();
    void *dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    free(file);
    if (!dl) {
        err_set(err, cfg->path, line, col, "routes[%zu].plugin: cannot load: %s", route_index,
                dl_error_text());
        errno = saved_errno;
        return -1;
    }
    const struct memfill_plugin *p = find_plugin(dl);
    if (!p || p->abi != MEMFILL_PLUGIN_ABI || p->size < PLUGIN_MIN_SIZE || !p->handle) {
        if (!p)
            err_set(err, cfg->path, line, col,
                    "routes[%zu].plugin: \"%s\" exports neither " MEMFILL_PLUGIN_SYMBOL
                    " nor " MEMFILL_PLUGIN_GET_SYMBOL "()",
                    route_index, r->plugin);
        else if (p->abi != MEMFILL_PLUGIN_ABI)
            err_set(err, cfg->path, line, col,
                    "routes[%zu].plugin: \"%s\" was built for plugin ABI %u; this memfill "
                    "loads ABI %d",
                    route_index, r->plugin, p->abi, MEMFILL_PLUGIN_ABI);
        else if (p->size < PLUGIN_MIN_SIZE)
            err_set(err, cfg->path, line, col,
                    "routes[%zu].plugin: \"%s\" declares a struct memfill_plugin of %zu "
                    "bytes; ABI %d needs %zu",
                    route_index, r->plugin, p->size, MEMFILL_PLUGIN_ABI, PLUGIN_MIN_SIZE);
        else
            err_set(err, cfg->path, line, col, "routes[%zu].plugin: \"%s\" has no handle function",
                    route_index, r->plugin);
        dlclose(dl);
        errno = saved_errno;
        return -1;
    }

    struct plugin_state *s = xcalloc(1, sizeof *s);
    s->dl = dl;
    s->plugin = p;
    s->content_type = r->content_type;
    if (p->name && *p->name) {
        s->name = xstrdup(p->name);
    } else {
        const char *slash = strrchr(r->plugin, '/');
        s->name = xstrdup(slash ? slash + 1 : r->plugin);
    }
    if (p->init) {
        char msg[PLUGIN_ERRBUF] = "";
        const char *json = r->plugin_config ? r->plugin_config : "{}";
        if (p->init(json, &s->pstate, msg, sizeof msg) != 0) {
            msg[sizeof msg - 1] = '\0';
            clean_message(msg);
            err_set(err, cfg->path, line, col, "routes[%zu].config: %s: %s", route_index, s->name,
                    *msg ? msg : "the plugin's init failed");
            s->pstate = NULL; /* the contract: free() is not called after a failed init */
            free(s->name);
            free(s);
            dlclose(dl);
            errno = saved_errno;
            return -1;
        }
    }
    errno = saved_errno;
    *state = s;
    return 0;
}

static void plugin_handle(void *state, const struct request *req, const struct route_match *m,
                          struct response *resp)
{
    const struct plugin_state *s = state;
    if (!req->path_ok) {
        response_error(resp, 400, "The request target is not valid.");
        resp->no_store = 1;
        return;
    }
    if (s->content_type) {
        buf_reset(&resp->content_type, 1 << 10);
        buf_append_str(&resp->content_type, s->content_type);
    }
    struct plugin_call call = {s, req, m, resp, NULL};
    struct memfill_request preq = {&host_api, &call};
    struct memfill_response presp = {&host_api, &call};
    int saved_errno = errno;
    int rc = s->plugin->handle(s->pstate, &preq, &presp);
    errno = saved_errno;
    call_fini(&call);
    if (rc != 0) {
        struct buf esc = BUF_INIT;
        log_escape(&esc, req->path.data ? req->path.data : "", req->path.len, 200);
        log_warn("plugin %s: failed (%d) on %s", s->name, rc, esc.data ? esc.data : "");
        buf_fini(&esc);
        response_error(resp, 500, "The page could not be produced.");
        resp->no_store = 1;
    }
}

static void plugin_destroy(void *state)
{
    struct plugin_state *s = state;
    if (!s)
        return;
    int saved_errno = errno;
    if (s->plugin->free)
        s->plugin->free(s->pstate);
    dlclose(s->dl);
    free(s->name);
    free(s);
    errno = saved_errno;
}

const struct handler_ops handler_plugin_ops = {
    "plugin",
    plugin_create,
    plugin_handle,
    plugin_destroy,
};
