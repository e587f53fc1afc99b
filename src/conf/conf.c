/* conf.c - loads memfill's JSON config into an immutable struct config.
 *
 * Every key is one row of a table (struct config_key): where it sits, its
 * type, bounds and default. One generic walker applies defaults, rejects
 * unknown keys and checks types and bounds; jansson rejects duplicate keys
 * while parsing. Relations between keys are checked after the walk
 * (check_relations). jansson has no positions for values, so the text is
 * also indexed by jsonpos, and every error names file:line:col of the
 * offending key or value. This is the only file that parses JSON config;
 * after config_load returns, nothing refers to the jansson tree. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/buf.h"
#include "memfill/addr.h"
#include "memfill/jsonpos.h"
#include "memfill/log.h"
#include "memfill/nodesel.h"
#include "memfill/util.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

enum key_type {
    T_STRING,  /* char * */
    T_PATH,    /* char *, resolved against the config's folder */
    T_SECRET,  /* char *, never printed (--print-config masks it) */
    T_UINT,    /* unsigned, min..max */
    T_ULONG,   /* unsigned long, min..max */
    T_LONG_TTL, /* long, -1 default, 0..max */
    T_U32,     /* uint32_t */
    T_BOOL,    /* int */
    T_STRLIST, /* char ** NULL-terminated */
    T_LEVEL,   /* enum log_level */
    T_DIST,    /* enum nodesel_dist */
    T_MODE,    /* unsigned, from an octal string "0660" */
    T_HANDLER, /* enum config_handler */
    T_METHODS, /* unsigned bits */
    T_JSONTEXT, /* char *, any JSON object serialised */
    T_SECTION, /* nested object whose keys map into the same struct */
    T_SERVERS, /* memcached.servers */
    T_ROUTES,  /* routes */
};

struct config_key {
    const char *name;
    enum key_type type;
    size_t offset;
    unsigned long long min, max;
    unsigned long long def; /* numeric default */
    const char *defstr;     /* string default */
    const struct config_key *sub; /* T_SECTION */
};

struct loader {
    const char *source;
    const char *dir;
    struct jsonpos *jp;
    struct err *err;
    unsigned flags;
};

#define END_KEYS {NULL, T_STRING, 0, 0, 0, 0, NULL, NULL}
#define C(field) offsetof(struct config, field)
#define R(field) offsetof(struct config_route, field)

static const struct config_key log_keys[] = {
    {"file", T_PATH, C(log_file), 0, 0, 0, NULL, NULL},
    {"level", T_LEVEL, C(log_level), 0, 0, LOG_INFO, NULL, NULL},
    {"access", T_BOOL, C(access_log), 0, 1, 0, NULL, NULL},
    END_KEYS,
};

static const struct config_key discovery_keys[] = {
    {"endpoint", T_STRING, C(discovery_endpoint), 0, 0, 0, NULL, NULL},
    {"interval", T_UINT, C(discovery_interval), 1, 86400, 60, NULL, NULL},
    END_KEYS,
};

static const struct config_key memcached_keys[] = {
    {"servers", T_SERVERS, 0, 0, 0, 0, NULL, NULL},
    {"discovery", T_SECTION, 0, 0, 0, 0, NULL, discovery_keys},
    {"distribution", T_DIST, C(distribution), 0, 0, NODESEL_CONSISTENT, NULL, NULL},
    {"upstream", T_STRING, C(upstream_name), 0, 0, 0, "memfill_memcached", NULL},
    {"connect_timeout_ms", T_UINT, C(mc_connect_timeout_ms), 1, 60000, 250, NULL, NULL},
    {"timeout_ms", T_UINT, C(mc_timeout_ms), 1, 60000, 500, NULL, NULL},
    END_KEYS,
};

static const struct config_key cache_keys[] = {
    {"key", T_STRING, C(key), 0, 0, 0, CONFIG_DEFAULT_KEY, NULL},
    {"ttl", T_UINT, C(ttl), 0, 0xffffffffu, 300, NULL, NULL},
    {"min_ttl", T_UINT, C(min_ttl), 0, 0xffffffffu, 0, NULL, NULL},
    {"max_ttl", T_UINT, C(max_ttl), 0, 0xffffffffu, 0, NULL, NULL},
    {"gzip_flag", T_U32, C(gzip_flag), 0, 0xffffffffu, 0, NULL, NULL},
    {"max_item", T_ULONG, C(max_item), 0, 1ull << 30, 0, NULL, NULL},
    {"skip_uri", T_STRLIST, C(skip_uri), 0, 0, 0, NULL, NULL},
    {"skip_cookies", T_STRLIST, C(skip_cookies), 0, 0, 0, NULL, NULL},
    {"lock_wait", T_UINT, C(lock_wait_ms), 0, 60000, 0, NULL, NULL},
    {"lock_ttl", T_UINT, C(lock_ttl), 1, 3600, 10, NULL, NULL},
    END_KEYS,
};

static const struct config_key template_keys[] = {
    {"max_output", T_ULONG, C(template_max_output), 1024, 1ull << 30, 4ull << 20, NULL, NULL},
    {"max_data", T_ULONG, C(template_max_data), 1024, 1ull << 30, 8ull << 20, NULL, NULL},
    {"data_cache", T_ULONG, C(template_data_cache), 0, 1ull << 36, 32ull << 20, NULL, NULL},
    END_KEYS,
};

static const struct config_key admin_keys[] = {
    {"listen", T_STRING, C(admin_listen), 0, 0, 0, NULL, NULL},
    {"token", T_SECRET, C(admin_token), 0, 0, 0, NULL, NULL},
    {"allow", T_STRLIST, C(admin_allow), 0, 0, 0, NULL, NULL},
    END_KEYS,
};

static const struct config_key top_keys[] = {
    {"listen", T_STRING, C(listen), 0, 0, 0, NULL, NULL},
    {"listen_mode", T_MODE, C(listen_mode), 0, 07777, 0, NULL, NULL},
    {"listen_owner", T_STRING, C(listen_owner), 0, 0, 0, NULL, NULL},
    {"listen_group", T_STRING, C(listen_group), 0, 0, 0, NULL, NULL},
    {"backlog", T_UINT, C(backlog), 1, 65535, 1024, NULL, NULL},
    {"user", T_STRING, C(user), 0, 0, 0, NULL, NULL},
    {"group", T_STRING, C(group), 0, 0, 0, NULL, NULL},
    {"pid_file", T_PATH, C(pid_file), 0, 0, 0, NULL, NULL},
    {"workers", T_UINT, C(workers), 0, 1024, 0, NULL, NULL},
    {"max_requests", T_UINT, C(max_requests), 0, 0xffffffffu, 0, NULL, NULL},
    {"request_timeout", T_UINT, C(request_timeout), 0, 86400, 30, NULL, NULL},
    {"shutdown_timeout", T_UINT, C(shutdown_timeout), 0, 86400, 10, NULL, NULL},
    {"max_body", T_ULONG, C(max_body), 0, 1ull << 32, 1048576, NULL, NULL},
    {"max_params", T_ULONG, C(max_params), 1024, 1ull << 24, 65536, NULL, NULL},
    {"params_timeout_ms", T_UINT, C(params_timeout_ms), 1, 600000, 2000, NULL, NULL},
    {"log", T_SECTION, 0, 0, 0, 0, NULL, log_keys},
    {"memcached", T_SECTION, 0, 0, 0, 0, NULL, memcached_keys},
    {"cache", T_SECTION, 0, 0, 0, 0, NULL, cache_keys},
    {"template", T_SECTION, 0, 0, 0, 0, NULL, template_keys},
    {"admin", T_SECTION, 0, 0, 0, 0, NULL, admin_keys},
    {"routes", T_ROUTES, 0, 0, 0, 0, NULL, NULL},
    END_KEYS,
};

static const struct config_key route_keys[] = {
    {"prefix", T_STRING, R(prefix), 0, 0, 0, NULL, NULL},
    {"regex", T_STRING, R(regex), 0, 0, 0, NULL, NULL},
    {"handler", T_HANDLER, R(handler), 0, 0, 0, NULL, NULL},
    {"methods", T_METHODS, R(methods), 0, 0, CONFIG_METHOD_GET | CONFIG_METHOD_HEAD, NULL,
     NULL},
    {"ttl", T_LONG_TTL, R(ttl), 0, 0xffffffffu, 0, NULL, NULL},
    {"cache", T_BOOL, R(cache), 0, 1, 1, NULL, NULL},
    {"content_type", T_STRING, R(content_type), 0, 0, 0, NULL, NULL},
    {"tags", T_STRLIST, R(tags), 0, 0, 0, NULL, NULL},
    {"root", T_PATH, R(root), 0, 0, 0, NULL, NULL},
    {"template", T_PATH, R(template_path), 0, 0, 0, NULL, NULL},
    {"data", T_PATH, R(data), 0, 0, 0, NULL, NULL},
    {"data_url", T_STRING, R(data_url), 0, 0, 0, NULL, NULL},
    {"partials", T_PATH, R(partials), 0, 0, 0, NULL, NULL},
    {"origin", T_STRING, R(origin), 0, 0, 0, NULL, NULL},
    {"origin_host", T_STRING, R(origin_host), 0, 0, 0, NULL, NULL},
    {"connect_timeout_ms", T_UINT, R(connect_timeout_ms), 1, 600000, 1000, NULL, NULL},
    {"timeout_ms", T_UINT, R(timeout_ms), 1, 600000, 10000, NULL, NULL},
    {"plugin", T_PATH, R(plugin), 0, 0, 0, NULL, NULL},
    {"config", T_JSONTEXT, R(plugin_config), 0, 0, 0, NULL, NULL},
    {"srcache", T_BOOL, R(srcache), 0, 1, 0, NULL, NULL},
    END_KEYS,
};

static const char *const handler_names[] = {"static", "template", "upstream", "plugin"};

static const struct {
    const char *name;
    unsigned bit;
} method_names[] = {
    {"GET", CONFIG_METHOD_GET},       {"HEAD", CONFIG_METHOD_HEAD},
    {"POST", CONFIG_METHOD_POST},     {"PUT", CONFIG_METHOD_PUT},
    {"DELETE", CONFIG_METHOD_DELETE}, {"PATCH", CONFIG_METHOD_PATCH},
    {"OPTIONS", CONFIG_METHOD_OPTIONS},
};

const char *config_handler_name(enum config_handler h)
{
    return (unsigned)h < sizeof handler_names / sizeof *handler_names ? handler_names[h] : "?";
}

unsigned config_method_bit(const char *name)
{
    for (size_t i = 0; i < sizeof method_names / sizeof *method_names; i++)
        if (strcmp(name, method_names[i].name) == 0)
            return method_names[i].bit;
    return 0;
}

/* ---- errors with positions ---- */

static int fail(struct loader *ld, const char *path, int at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct loader *ld, const char *path, int at_key, const char *fmt, ...)
{
    int line = 0, col = 0;
    if (at_key)
        jsonpos_key(ld->jp, path, &line, &col);
    else
        jsonpos_value(ld->jp, path, &line, &col);
    char msg[ERR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (*path)
        err_set(ld->err, ld->source, line, col, "%s: %s", path, msg);
    else
        err_set(ld->err, ld->source, line, col, "%s", msg);
    return -1;
}

static void join(char *out, size_t outlen, const char *base, const char *name)
{
    if (*base)
        snprintf(out, outlen, "%s.%s", base, name);
    else
        snprintf(out, outlen, "%s", name);
}

static char *resolve_path(const struct loader *ld, const char *p)
{
    if (p[0] == '/' || !ld->dir || !*ld->dir)
        return xstrdup(p);
    return xasprintf("%s/%s", ld->dir, p);
}

/* ---- the generic walker ---- */

static void set_defaults(const struct config_key *keys, void *base)
{
    char *b = base;
    for (const struct config_key *k = keys; k->name; k++) {
        switch (k->type) {
        case T_STRING:
        case T_PATH:
        case T_SECRET:
            *(char **)(b + k->offset) = k->defstr ? xstrdup(k->defstr) : NULL;
            break;
        case T_UINT:
        case T_MODE:
        case T_METHODS:
            *(unsigned *)(b + k->offset) = (unsigned)k->def;
            break;
        case T_ULONG:
            *(unsigned long *)(b + k->offset) = (unsigned long)k->def;
            break;
        case T_LONG_TTL:
            *(long *)(b + k->offset) = -1;
            break;
        case T_U32:
            *(uint32_t *)(b + k->offset) = (uint32_t)k->def;
            break;
        case T_BOOL:
            *(int *)(b + k->offset) = (int)k->def;
            break;
        case T_STRLIST: {
            char **l = xcalloc(1, sizeof *l);
            *(char ***)(b + k->offset) = l;
            break;
        }
        case T_LEVEL:
            *(enum log_level *)(b + k->offset) = (enum log_level)k->def;
            break;
        case T_DIST:
            *(enum nodesel_dist *)(b + k->offset) = (enum nodesel_dist)k->def;
            break;
        case T_HANDLER:
            *(enum config_handler *)(b + k->offset) = CONFIG_HANDLER_STATIC;
            break;
        case T_JSONTEXT:
            *(char **)(b + k->offset) = NULL;
            break;
        case T_SECTION:
            set_defaults(k->sub, base);
            break;
        case T_SERVERS:
        case T_ROUTES:
            break;
        }
    }
}

static int parse_servers(struct loader *ld, json_t *v, const char *path, struct config *cfg);
static int parse_routes(struct loader *ld, json_t *v, const char *path, struct config *cfg);
static int walk(struct loader *ld, json_t *obj, const char *path, const struct config_key *keys,
                void *base, struct config *cfg);

static int want_string(struct loader *ld, json_t *v, const char *path)
{
    if (!json_is_string(v))
        return fail(ld, path, 0, "expected a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(ld, path, 0, "expected a string without NUL bytes");
    return 0;
}

static int set_value(struct loader *ld, const struct config_key *k, json_t *v, const char *path,
                     void *base, struct config *cfg)
{
    char *b = base;
    switch (k->type) {
    case T_STRING:
    case T_PATH:
    case T_SECRET: {
        if (want_string(ld, v, path) < 0)
            return -1;
        char **dst = (char **)(b + k->offset);
        free(*dst);
        const char *s = json_string_value(v);
        if (k->type == T_PATH && !*s)
            return fail(ld, path, 0, "expected a non-empty path");
        *dst = k->type == T_PATH ? resolve_path(ld, s) : xstrdup(s);
        return 0;
    }
    case T_UINT:
    case T_ULONG:
    case T_U32:
    case T_LONG_TTL: {
        if (!json_is_integer(v))
            return fail(ld, path, 0, "expected an integer from %llu to %llu", k->min, k->max);
        json_int_t n = json_integer_value(v);
        if (n < 0 || (unsigned long long)n < k->min || (unsigned long long)n > k->max)
            return fail(ld, path, 0, "expected an integer from %llu to %llu", k->min, k->max);
        if (k->type == T_UINT)
            *(unsigned *)(b + k->offset) = (unsigned)n;
        else if (k->type == T_ULONG)
            *(unsigned long *)(b + k->offset) = (unsigned long)n;
        else if (k->type == T_U32)
            *(uint32_t *)(b + k->offset) = (uint32_t)n;
        else
            *(long *)(b + k->offset) = (long)n;
        return 0;
    }
    case T_BOOL:
        if (!json_is_boolean(v))
            return fail(ld, path, 0, "expected true or false");
        *(int *)(b + k->offset) = json_is_true(v);
        return 0;
    case T_STRLIST: {
        if (!json_is_array(v))
            return fail(ld, path, 0, "expected an array of strings");
        size_t n = json_array_size(v);
        char **l = xcalloc(n + 1, sizeof *l);
        char ***dst = (char ***)(b + k->offset);
        for (char **p = *dst; p && *p; p++)
            free(*p);
        free(*dst);
        *dst = l;
        for (size_t i = 0; i < n; i++) {
            char ipath[512];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            json_t *e = json_array_get(v, i);
            if (want_string(ld, e, ipath) < 0)
                return -1;
            if (!*json_string_value(e))
                return fail(ld, ipath, 0, "expected a non-empty string");
            l[i] = xstrdup(json_string_value(e));
        }
        return 0;
    }
    case T_LEVEL:
        if (want_string(ld, v, path) < 0 ||
            log_parse_level(json_string_value(v), (enum log_level *)(b + k->offset)) < 0)
            return fail(ld, path, 0, "expected one of \"error\", \"warn\", \"info\", \"debug\"");
        return 0;
    case T_DIST:
        if (want_string(ld, v, path) < 0 ||
            nodesel_parse_dist(json_string_value(v), (enum nodesel_dist *)(b + k->offset)) < 0)
            return fail(ld, path, 0,
                        "expected one of \"consistent\", \"hash\", \"upstream_list\"");
        return 0;
    case T_MODE: {
        if (want_string(ld, v, path) < 0)
            return -1;
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        unsigned long m = strtoul(s, &end, 8);
        if (!*s || *end || errno || m > k->max)
            return fail(ld, path, 0, "expected an octal mode such as \"0660\"");
        *(unsigned *)(b + k->offset) = (unsigned)m;
        return 0;
    }
    case T_HANDLER: {
        if (want_string(ld, v, path) < 0)
            return -1;
        for (size_t i = 0; i < sizeof handler_names / sizeof *handler_names; i++) {
            if (strcmp(json_string_value(v), handler_names[i]) == 0) {
                *(enum config_handler *)(b + k->offset) = (enum config_handler)i;
                return 0;
            }
        }
        return fail(ld, path, 0,
                    "expected one of \"static\", \"template\", \"upstream\", \"plugin\"");
    }
    case T_METHODS: {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(ld, path, 0, "expected a non-empty array of HTTP methods");
        unsigned bits = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            char ipath[512];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            json_t *e = json_array_get(v, i);
            unsigned bit = json_is_string(e) ? config_method_bit(json_string_value(e)) : 0;
            if (!bit)
                return fail(ld, ipath, 0,
                            "expected GET, HEAD, POST, PUT, DELETE, PATCH or OPTIONS");
            bits |= bit;
        }
        *(unsigned *)(b + k->offset) = bits;
        return 0;
    }
    case T_JSONTEXT: {
        if (!json_is_object(v))
            return fail(ld, path, 0, "expected an object");
        char **dst = (char **)(b + k->offset);
        free(*dst);
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        *dst = xstrdup(s ? s : "{}");
        free(s);
        return 0;
    }
    case T_SECTION:
        if (!json_is_object(v))
            return fail(ld, path, 0, "expected an object");
        return walk(ld, v, path, k->sub, base, cfg);
    case T_SERVERS:
        return parse_servers(ld, v, path, cfg);
    case T_ROUTES:
        return parse_routes(ld, v, path, cfg);
    }
    return -1;
}

static int walk(struct loader *ld, json_t *obj, const char *path, const struct config_key *keys,
                void *base, struct config *cfg)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v) {
        char kpath[512];
        join(kpath, sizeof kpath, path, name);
        const struct config_key *k = keys;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        if (!k->name) {
            struct buf known = BUF_INIT;
            for (const struct config_key *q = keys; q->name; q++)
                buf_printf(&known, "%s%s", q == keys ? "" : ", ", q->name);
            fail(ld, kpath, 1, "unknown key (expected one of: %s)", known.data);
            buf_fini(&known);
            return -1;
        }
        if (set_value(ld, k, v, kpath, base, cfg) < 0)
            return -1;
    }
    return 0;
}

/* ---- memcached.servers ---- */

static int parse_servers(struct loader *ld, json_t *v, const char *path, struct config *cfg)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(ld, path, 0, "expected a non-empty array of servers");
    size_t n = json_array_size(v);
    cfg->servers = xcalloc(n, sizeof *cfg->servers);
    cfg->nservers = n;
    for (size_t i = 0; i < n; i++) {
        char ipath[512];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        json_t *e = json_array_get(v, i);
        struct config_server *s = &cfg->servers[i];
        s->weight = 1;
        jsonpos_value(ld->jp, ipath, &s->pos.line, &s->pos.col);
        if (json_is_string(e)) {
            /* shorthand: "127.0.0.1:11211" */
            s->address = xstrdup(json_string_value(e));
        } else if (json_is_object(e)) {
            const char *name;
            json_t *f;
            json_object_foreach(e, name, f) {
                char fpath[600];
                snprintf(fpath, sizeof fpath, "%s.%s", ipath, name);
                if (strcmp(name, "address") == 0) {
                    if (want_string(ld, f, fpath) < 0)
                        return -1;
                    s->address = xstrdup(json_string_value(f));
                } else if (strcmp(name, "name") == 0) {
                    if (want_string(ld, f, fpath) < 0)
                        return -1;
                    s->name = xstrdup(json_string_value(f));
                } else if (strcmp(name, "weight") == 0) {
                    if (!json_is_integer(f) || json_integer_value(f) < 1 ||
                        json_integer_value(f) > 1000)
                        return fail(ld, fpath, 0, "expected an integer from 1 to 1000");
                    s->weight = (unsigned)json_integer_value(f);
                } else {
                    return fail(ld, fpath, 1,
                                "unknown key (expected one of: address, weight, name)");
                }
            }
            if (!s->address)
                return fail(ld, ipath, 0, "expected an \"address\"");
        } else {
            return fail(ld, ipath, 0, "expected an address string or an object");
        }
        if (!*s->address || strchr(s->address, ' '))
            return fail(ld, ipath, 0, "expected an address such as \"127.0.0.1:11211\"");
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->servers[j].address, s->address) == 0)
                return fail(ld, ipath, 0, "server \"%s\" is listed twice", s->address);
    }
    return 0;
}

/* ---- routes ---- */

/* A Host header value: letters, digits, '.', '-', an IPv6 literal in
 * brackets, an optional ":port"; nothing a header could be split with. */
static int is_host_port(const char *s)
{
    if (!*s || *s == ':' || *s == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == ':' || *s == '[' || *s == ']'))
            return 0;
    return 1;
}

static int parse_routes(struct loader *ld, json_t *v, const char *path, struct config *cfg)
{
    if (!json_is_array(v))
        return fail(ld, path, 0, "expected an array of routes");
    size_t n = json_array_size(v);
    cfg->routes = xcalloc(n ? n : 1, sizeof *cfg->routes);
    for (size_t i = 0; i < n; i++) {
        char ipath[512];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        json_t *e = json_array_get(v, i);
        struct config_route *r = &cfg->routes[i];
        set_defaults(route_keys, r);
        cfg->nroutes = i + 1;
        jsonpos_value(ld->jp, ipath, &r->pos.line, &r->pos.col);
        if (!json_is_object(e))
            return fail(ld, ipath, 0, "expected a route object");
        if (!json_object_get(e, "handler"))
            return fail(ld, ipath, 0, "expected a \"handler\"");
        if (walk(ld, e, ipath, route_keys, r, cfg) < 0)
            return -1;
        char fpath[600];
        if (!r->prefix == !r->regex)
            return fail(ld, ipath, 0, "expected exactly one of \"prefix\" or \"regex\"");
        if (r->prefix && r->prefix[0] != '/') {
            snprintf(fpath, sizeof fpath, "%s.prefix", ipath);
            return fail(ld, fpath, 0, "expected a path starting with '/'");
        }
        if (r->regex) {
            snprintf(fpath, sizeof fpath, "%s.regex", ipath);
            jsonpos_value(ld->jp, fpath, &r->regex_pos.line, &r->regex_pos.col);
        }
        switch (r->handler) {
        case CONFIG_HANDLER_STATIC:
            if (!r->root)
                return fail(ld, ipath, 0, "static handler: expected a \"root\"");
            break;
        case CONFIG_HANDLER_TEMPLATE:
            if (!r->template_path)
                return fail(ld, ipath, 0, "template handler: expected a \"template\"");
            if (r->data && r->data_url)
                return fail(ld, ipath, 0, "expected at most one of \"data\" or \"data_url\"");
            break;
        case CONFIG_HANDLER_UPSTREAM:
            if (!r->origin)
                return fail(ld, ipath, 0, "upstream handler: expected an \"origin\"");
            if (!util_starts_with(r->origin, "http://") &&
                !util_starts_with(r->origin, "https://")) {
                snprintf(fpath, sizeof fpath, "%s.origin", ipath);
                return fail(ld, fpath, 0, "expected an http:// or https:// URL");
            }
            if (r->origin_host && !is_host_port(r->origin_host)) {
                snprintf(fpath, sizeof fpath, "%s.origin_host", ipath);
                return fail(ld, fpath, 0,
                            "expected a host name with an optional port (\"www.example.org\", "
                            "\"example.org:8080\")");
            }
            break;
        case CONFIG_HANDLER_PLUGIN:
            if (!r->plugin)
                return fail(ld, ipath, 0, "plugin handler: expected a \"plugin\"");
            break;
        }
    }
    return 0;
}

/* ---- the node selector ---- */

static struct nodesel *build_nodesel(const struct config *cfg, struct err *err)
{
    struct nodesel_server *ns = xcalloc(cfg->nservers ? cfg->nservers : 1, sizeof *ns);
    for (size_t i = 0; i < cfg->nservers; i++) {
        ns[i].address = cfg->servers[i].address;
        ns[i].weight = cfg->servers[i].weight;
        ns[i].name = cfg->servers[i].name;
    }
    struct nodesel *sel = nodesel_new(cfg->distribution, ns, cfg->nservers, err);
    free(ns);
    return sel;
}

/* ---- relations between keys ---- */

static int check_relations(struct loader *ld, struct config *cfg)
{
    if (!cfg->servers)
        return fail(ld, "", 0, "memcached.servers: expected at least one memcached server");
    struct err e;
    err_clear(&e);
    cfg->nodes = build_nodesel(cfg, &e);
    if (!cfg->nodes)
        return fail(ld, "memcached.servers", 0, "%s", e.text);
    if (cfg->min_ttl && cfg->max_ttl && cfg->min_ttl > cfg->max_ttl)
        return fail(ld, "cache.min_ttl", 0, "expected a value not above cache.max_ttl (%u)",
                    cfg->max_ttl);
    if (cfg->gzip_flag & (cfg->gzip_flag - 1))
        return fail(ld, "cache.gzip_flag", 0, "expected a single flag bit (1, 2, 4, ...)");
    if (!cfg->admin_allow[0]) {
        /* Default allow-list: loopback only. */
        free(cfg->admin_allow);
        cfg->admin_allow = xcalloc(3, sizeof *cfg->admin_allow);
        cfg->admin_allow[0] = xstrdup("127.0.0.1/8");
        cfg->admin_allow[1] = xstrdup("::1/128");
    }
    size_t nallow = 0;
    while (cfg->admin_allow[nallow])
        nallow++;
    cfg->admin_nets = xcalloc(nallow ? nallow : 1, sizeof *cfg->admin_nets);
    for (size_t i = 0; cfg->admin_allow[i]; i++) {
        if (addr_cidr_parse(cfg->admin_allow[i], &cfg->admin_nets[cfg->nadmin_nets++]) < 0) {
            char p[64];
            snprintf(p, sizeof p, "admin.allow[%zu]", i);
            return fail(ld, p, 0, "expected an address or CIDR such as \"10.0.0.0/8\"");
        }
    }
    /* The token opens PURGE and status: an empty or short one is a
     * guessable password (doc/security.md). */
    if (cfg->admin_token && strlen(cfg->admin_token) < CONFIG_ADMIN_TOKEN_MIN)
        return fail(ld, "admin.token", 0,
                    "expected at least %d bytes (an empty or short token can be guessed), "
                    "e.g. from `head -c 18 /dev/urandom | base64`",
                    CONFIG_ADMIN_TOKEN_MIN);
    if (cfg->admin_listen && addr_is_unix(cfg->admin_listen, strlen(cfg->admin_listen), 0)) {
        /* A relative socket path is relative to the config's folder, like
         * every other path in the file. */
        size_t room = sizeof(((struct sockaddr_un *)0)->sun_path);
        char *path = cfg->admin_listen[5] ? resolve_path(ld, cfg->admin_listen + 5) : NULL;
        if (!path || strlen(path) >= room) {
            free(path);
            return fail(ld, "admin.listen", 0,
                        "expected a socket path of 1 to %zu bytes after \"unix:\" (a "
                        "relative path starts at the config's folder)",
                        room - 1);
        }
        free(cfg->admin_listen);
        cfg->admin_listen = xasprintf("unix:%s", path);
        free(path);
    }
    if (!(ld->flags & CONFIG_ALLOW_NO_ROUTES) && cfg->nroutes == 0)
        return fail(ld, "", 0, "routes: expected at least one route");
    int listen_unix = 0;
    if (cfg->listen) {
        struct addr la;
        err_clear(&e);
        if (addr_parse(cfg->listen, ADDR_LISTEN, 0, &la, &e) < 0)
            return fail(ld, "listen", 0, "%s", e.text);
        listen_unix = la.is_unix;
        addr_fini(&la);
    }
    if (cfg->listen_mode && !listen_unix)
        return fail(ld, "listen_mode", 0, "applies only to a \"unix:/path\" listen socket");
    if ((cfg->listen_owner || cfg->listen_group) && !listen_unix)
        return fail(ld, cfg->listen_owner ? "listen_owner" : "listen_group", 0,
                    "applies only to a \"unix:/path\" listen socket");
    if (cfg->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n > 0 ? (unsigned)n : 1;
    }
    return 0;
}

/* ---- entry points ---- */

struct config *config_load_string(const char *text, size_t len, const char *source,
                                  const char *dir, unsigned flags, struct err *err)
{
    struct loader ld = {source, dir, NULL, err, flags};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        err_set(err, source, je.line, je.column > 0 ? je.column : 1, "%s", je.text);
        return NULL;
    }
    ld.jp = jsonpos_new(text, len);
    struct config *cfg = xcalloc(1, sizeof *cfg);
    cfg->path = xstrdup(source);
    cfg->dir = xstrdup(dir ? dir : ".");
    set_defaults(top_keys, cfg);
    int rc = json_is_object(root) ? walk(&ld, root, "", top_keys, cfg, cfg)
                                  : fail(&ld, "", 0, "expected a JSON object at the top");
    if (rc == 0)
        rc = check_relations(&ld, cfg);
    json_decref(root);
    jsonpos_free(ld.jp);
    if (rc < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* A config file is a few kilobytes; anything near this is a wrong file. */
#define CONFIG_FILE_MAX ((size_t)16 << 20)

struct config *config_load(const char *path, unsigned flags, struct err *err)
{
    struct buf text = BUF_INIT;
    struct err e;
    err_clear(&e);
    if (util_read_file(path, CONFIG_FILE_MAX, &text, &e) < 0) {
        if (errno == EFBIG)
            err_set(err, path, 0, 0, "file is larger than 16 MiB");
        else
            err_set(err, path, 0, 0, "cannot open: %s", e.text);
        buf_fini(&text);
        return NULL;
    }
    char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");
    struct config *cfg =
        config_load_string(text.data ? text.data : "", text.len, path, dir, flags, err);
    free(dir);
    buf_fini(&text);
    return cfg;
}

static void free_values(const struct config_key *keys, void *base)
{
    char *b = base;
    for (const struct config_key *k = keys; k->name; k++) {
        switch (k->type) {
        case T_STRING:
        case T_PATH:
        case T_SECRET:
        case T_JSONTEXT:
            free(*(char **)(b + k->offset));
            break;
        case T_STRLIST: {
            char **l = *(char ***)(b + k->offset);
            for (char **p = l; p && *p; p++)
                free(*p);
            free(l);
            break;
        }
        case T_SECTION:
            free_values(k->sub, base);
            break;
        default:
            break;
        }
    }
}

int config_set_servers(struct config *cfg, char *const *addresses, size_t n, struct err *err)
{
    for (size_t i = 0; i < cfg->nservers; i++) {
        free(cfg->servers[i].address);
        free(cfg->servers[i].name);
    }
    free(cfg->servers);
    cfg->servers = xcalloc(n ? n : 1, sizeof *cfg->servers);
    cfg->nservers = n;
    for (size_t i = 0; i < n; i++) {
        cfg->servers[i].address = xstrdup(addresses[i]);
        cfg->servers[i].weight = 1;
    }
    nodesel_free(cfg->nodes);
    struct err e;
    err_clear(&e);
    cfg->nodes = build_nodesel(cfg, &e);
    if (!cfg->nodes) {
        err_set(err, cfg->path, 0, 0, "memcached.servers: %s", e.text);
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nservers; i++) {
        free(cfg->servers[i].address);
        free(cfg->servers[i].name);
    }
    free(cfg->servers);
    nodesel_free(cfg->nodes);
    free(cfg->admin_nets);
    for (size_t i = 0; i < cfg->nroutes; i++)
        free_values(route_keys, &cfg->routes[i]);
    free(cfg->routes);
    free_values(top_keys, cfg);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

/* ---- --print-config ---- */

static void print_keys(const struct config_key *keys, const void *base, const char *path,
                       struct buf *out)
{
    const char *b = base;
    for (const struct config_key *k = keys; k->name; k++) {
        char kpath[512];
        join(kpath, sizeof kpath, path, k->name);
        switch (k->type) {
        case T_STRING:
        case T_PATH:
        case T_JSONTEXT: {
            const char *s = *(char *const *)(b + k->offset);
            buf_printf(out, "%s = %s\n", kpath, s ? s : "(none)");
            break;
        }
        case T_SECRET: /* printed output lands in tickets and chat logs */
            buf_printf(out, "%s = %s\n", kpath,
                       *(char *const *)(b + k->offset) ? "(set, not shown)" : "(none)");
            break;
        case T_UINT:
        case T_METHODS:
            buf_printf(out, "%s = %u\n", kpath, *(const unsigned *)(b + k->offset));
            break;
        case T_MODE:
            buf_printf(out, "%s = %04o\n", kpath, *(const unsigned *)(b + k->offset));
            break;
        case T_ULONG:
            buf_printf(out, "%s = %lu\n", kpath, *(const unsigned long *)(b + k->offset));
            break;
        case T_LONG_TTL:
            buf_printf(out, "%s = %ld\n", kpath, *(const long *)(b + k->offset));
            break;
        case T_U32:
            buf_printf(out, "%s = %u\n", kpath, (unsigned)*(const uint32_t *)(b + k->offset));
            break;
        case T_BOOL:
            buf_printf(out, "%s = %s\n", kpath, *(const int *)(b + k->offset) ? "true" : "false");
            break;
        case T_STRLIST: {
            buf_printf(out, "%s = [", kpath);
            char *const *l = *(char **const *)(b + k->offset);
            for (size_t i = 0; l && l[i]; i++)
                buf_printf(out, "%s\"%s\"", i ? ", " : "", l[i]);
            buf_append_str(out, "]\n");
            break;
        }
        case T_LEVEL:
            buf_printf(out, "%s = %s\n", kpath,
                       log_level_name(*(const enum log_level *)(b + k->offset)));
            break;
        case T_DIST:
            buf_printf(out, "%s = %s\n", kpath,
                       nodesel_dist_name(*(const enum nodesel_dist *)(b + k->offset)));
            break;
        case T_HANDLER:
            buf_printf(out, "%s = %s\n", kpath,
                       config_handler_name(*(const enum config_handler *)(b + k->offset)));
            break;
        case T_SECTION:
            print_keys(k->sub, base, kpath, out);
            break;
        case T_SERVERS:
        case T_ROUTES:
            break;
        }
    }
}

void config_print(const struct config *cfg, struct buf *out)
{
    print_keys(top_keys, cfg, "", out);
    for (size_t i = 0; i < cfg->nservers; i++)
        buf_printf(out, "memcached.servers[%zu] = %s weight=%u name=%s\n", i,
                   cfg->servers[i].address, cfg->servers[i].weight,
                   cfg->servers[i].name ? cfg->servers[i].name : "(none)");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        char p[64];
        snprintf(p, sizeof p, "routes[%zu]", i);
        print_keys(route_keys, &cfg->routes[i], p, out);
    }
}
