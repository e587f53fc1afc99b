/* keypattern.c - key patterns (cache.key): nginx variables evaluated from
 * FastCGI params.
 *
 * A tiny subset of nginx's script language ("$name", "${name}", literal
 * text; doc/nginx.md §3-§4) compiled once at config load and evaluated per
 * request from FastCGI params, each variable derived the way nginx 1.22
 * derives it (see struct key_part below for the param each one reads). A
 * header sent several times arrives as several params; nginx 1.22 joins
 * the instances for $http_cookie ("; "), $http_x_forwarded_for (", ") and
 * $cookie_NAME (searched across every Cookie line), and takes the first
 * for any other $http_NAME (doc/security.md, "Headers with several
 * instances"); key_pattern_eval_all() does the same. The relay asks a
 * pattern which variables it holds (key_pattern_covers(),
 * key_pattern_part()) to send the origin no more than the key describes.
 *
 * Invariants: a compiled pattern is immutable and may be shared across
 * forked workers. Evaluation never fails: an absent param gives an empty
 * value, as nginx gives an empty variable (nginx then answers 500 for an
 * empty key; the caller checks). */
#include "config.h"

#include "memfill/keypattern.h"
#include "memfill/urinorm.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

enum key_kind {
    KP_LITERAL,  /* text */
    KP_PARAM,    /* the param named text, as is ($request_uri, $http_*, ...) */
    KP_URI,      /* DOCUMENT_URI, else key_normalize_uri(REQUEST_URI) */
    KP_ARGS,     /* QUERY_STRING, else the part of REQUEST_URI after '?' */
    KP_IS_ARGS,  /* "?" when the args are not empty */
    KP_ARG,      /* the value of argument text in the args (ngx_http_arg) */
    KP_HOST,     /* MEMFILL_HOST (nginx's own $host), else HTTP_HOST
                  * checked and lowered as nginx does, else SERVER_NAME
                  * lowered */
    KP_SCHEME,   /* REQUEST_SCHEME, else "https" when HTTPS is "on" */
    KP_COOKIE,   /* cookie text in every HTTP_COOKIE param */
};

struct key_part {
    enum key_kind kind;
    char *text; /* owned; NUL-terminated; literal bytes or a name (the
                 * argument and cookie names as written: both match
                 * case-insensitively, and the relay sends them as written) */
    size_t len;
};

struct key_pattern {
    char *source;
    struct key_part *parts;
    size_t nparts;
};

static const struct {
    const char *name;
    enum key_kind kind;
    const char *param;
} key_vars[] = {
    {"uri", KP_URI, NULL},
    {"document_uri", KP_URI, NULL},
    {"request_uri", KP_PARAM, "REQUEST_URI"},
    {"args", KP_ARGS, NULL},
    {"query_string", KP_ARGS, NULL},
    {"is_args", KP_IS_ARGS, NULL},
    {"host", KP_HOST, NULL},
    {"scheme", KP_SCHEME, NULL},
    {"server_name", KP_PARAM, "SERVER_NAME"},
    {"server_port", KP_PARAM, "SERVER_PORT"},
    {"request_method", KP_PARAM, "REQUEST_METHOD"},
};

static void add_part(struct key_pattern *kp, enum key_kind kind, const char *text, size_t len)
{
    kp->parts = xrealloc(kp->parts, (kp->nparts + 1) * sizeof *kp->parts);
    struct key_part *part = &kp->parts[kp->nparts++];
    part->kind = kind;
    part->text = xstrndup(text, len);
    part->len = len;
}

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_';
}

/* Adds the variable lname (lower-cased, len n; name is the same as
 * written) to kp; returns -1 when nginx knows no such variable (or we do
 * not support it). */
static int add_variable(struct key_pattern *kp, const char *lname, const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof key_vars / sizeof key_vars[0]; i++) {
        if (strlen(key_vars[i].name) == n && memcmp(key_vars[i].name, lname, n) == 0) {
            const char *param = key_vars[i].param ? key_vars[i].param : "";
            add_part(kp, key_vars[i].kind, param, strlen(param));
            return 0;
        }
    }
    if (n > 4 && memcmp(lname, "arg_", 4) == 0) {
        add_part(kp, KP_ARG, name + 4, n - 4);
        return 0;
    }
    if (n > 7 && memcmp(lname, "cookie_", 7) == 0) {
        add_part(kp, KP_COOKIE, name + 7, n - 7);
        return 0;
    }
    if (n > 5 && memcmp(lname, "http_", 5) == 0) {
        /* nginx hands header "X-Foo" to FastCGI as HTTP_X_FOO, and $http_x_foo
         * names the same header. */
        char *param = xasprintf("HTTP_%.*s", (int)(n - 5), lname + 5);
        for (char *c = param; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        add_part(kp, KP_PARAM, param, strlen(param));
        free(param);
        return 0;
    }
    return -1;
}

struct key_pattern *key_pattern_compile(const char *pattern, struct err *err)
{
    size_t n = pattern ? strlen(pattern) : 0;
    if (n == 0) {
        err_set(err, NULL, 0, 1, "empty key pattern");
        return NULL;
    }

    struct key_pattern *kp = xcalloc(1, sizeof *kp);
    kp->source = xstrdup(pattern);
    size_t lit = 0; /* start of the pending literal run */
    size_t i = 0;
    while (i < n) {
        if (pattern[i] != '$') {
            i++;
            continue;
        }
        int col = (int)i + 1;
        if (i > lit)
            add_part(kp, KP_LITERAL, pattern + lit, i - lit);

        /* Same scan as nginx's ngx_http_script_compile(). */
        size_t j = i + 1;
        int bracket = 0;
        if (j < n && pattern[j] == '{') {
            bracket = 1;
            j++;
        }
        if (!bracket && j < n && pattern[j] >= '1' && pattern[j] <= '9') {
            err_set(err, NULL, 0, col, "regex capture \"$%c\" is not available in a key",
                    pattern[j]);
            goto fail;
        }
        size_t name = j;
        while (j < n && name_char((unsigned char)pattern[j]))
            j++;
        size_t name_len = j - name;
        if (bracket) {
            if (j >= n || pattern[j] != '}') {
                err_set(err, NULL, 0, col, "unterminated \"${\": missing \"}\"");
                goto fail;
            }
            j++;
        }
        if (name_len == 0) {
            err_set(err, NULL, 0, col, "empty variable name after \"$\"");
            goto fail;
        }
        /* nginx variable names are case-insensitive. */
        char *lname = xstrndup(pattern + name, name_len);
        for (char *c = lname; *c; c++)
            *c = (char)ascii_lower((unsigned char)*c);
        int rc = add_variable(kp, lname, pattern + name, name_len);
        free(lname);
        if (rc < 0) {
            err_set(err, NULL, 0, col, "unknown variable \"$%.*s\"", (int)name_len,
                    pattern + name);
            goto fail;
        }
        i = lit = j;
    }
    if (n > lit)
        add_part(kp, KP_LITERAL, pattern + lit, n - lit);
    return kp;

fail:
    key_pattern_free(kp);
    return NULL;
}

void key_pattern_free(struct key_pattern *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nparts; i++)
        free(p->parts[i].text);
    free(p->parts);
    free(p->source);
    free(p);
}

const char *key_pattern_text(const struct key_pattern *p)
{
    return p->source;
}

/* $args: QUERY_STRING when nginx passed it, else what nginx would take
 * from REQUEST_URI: after the first '?' that comes before any '#', up to
 * the next '#'. Sets *a (borrowed, may be NULL) and *n. */
static void get_args(key_param_fn get, void *ctx, const char **a, size_t *n)
{
    const char *q = get(ctx, "QUERY_STRING");
    if (q) {
        *a = q;
        *n = strlen(q);
        return;
    }
    *a = NULL;
    *n = 0;
    const char *r = get(ctx, "REQUEST_URI");
    if (!r)
        return;
    size_t stop = strcspn(r, "?#");
    if (r[stop] != '?')
        return;
    *a = r + stop + 1;
    *n = strcspn(*a, "#");
}

/* ngx_http_arg(): the first "name=" (name case-insensitive) at the start of
 * the args or right after a '&'; the value runs to the next '&'. */
int key_arg_find(const char *a, size_t n, const char *name, size_t k, const char **value,
                 size_t *vlen)
{
    for (size_t p = 0; a && k && p + k < n; p++) {
        if ((p == 0 || a[p - 1] == '&') && a[p + k] == '='
            && util_ascii_caseeq(a + p, name, k)) {
            const char *v = a + p + k + 1;
            const char *amp = memchr(v, '&', n - (p + k + 1));
            *value = v;
            *vlen = amp ? (size_t)(amp - v) : n - (p + k + 1);
            return 1;
        }
    }
    return 0;
}

/* ngx_http_parse_multi_header_lines() over Cookie lines joined with "; ":
 * pairs split on ';' or ',', name case-insensitive, spaces around '='
 * skipped, the value runs to the next ';'. */
int key_cookie_find(const char *v, size_t n, const char *name, size_t k, const char **value,
                    size_t *vlen)
{
    size_t s = 0;
    if (k > n || k == 0)
        return 0;
    while (s < n) {
        if (n - s >= k && util_ascii_caseeq(v + s, name, k)) {
            s += k;
            while (s < n && v[s] == ' ')
                s++;
            if (s < n && v[s++] == '=') {
                while (s < n && v[s] == ' ')
                    s++;
                size_t last = s;
                while (last < n && v[last] != ';')
                    last++;
                *value = v + s;
                *vlen = last - s;
                return 1;
            }
        }
        while (s < n) {
            char ch = v[s++];
            if (ch == ';' || ch == ',')
                break;
        }
        while (s < n && v[s] == ' ')
            s++;
    }
    return 0;
}

/* ngx_http_validate_host(): returns the length of the host part (port and
 * one trailing dot removed), or 0 when nginx would refuse the header with
 * a 400 (then the caller falls back to SERVER_NAME). */
static size_t host_len(const char *h, size_t len)
{
    size_t dot_pos = len, hlen = len;
    int literal = 0, rest = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        switch (ch) {
        case '.':
            if (i > 0 && dot_pos == i - 1)
                return 0;
            dot_pos = i;
            break;
        case ':':
            if (!literal && !rest) {
                hlen = i;
                rest = 1;
            }
            break;
        case '[':
            if (i == 0)
                literal = 1;
            break;
        case ']':
            if (literal && !rest) {
                hlen = i + 1;
                literal = 0;
                rest = 1;
            }
            break;
        default:
            if (ch == '/' || ch <= 0x20 || ch == 0x7f)
                return 0;
            break;
        }
    }
    if (hlen > 0 && dot_pos == hlen - 1)
        hlen--;
    return hlen;
}

static void append_lower(struct buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_append_char(out, (char)ascii_lower((unsigned char)s[i]));
}

void key_host(key_param_fn get, void *ctx, struct buf *out)
{
    const char *v = get(ctx, "MEMFILL_HOST");
    size_t n;
    if (v && *v)
        buf_append_str(out, v);
    else if ((v = get(ctx, "HTTP_HOST")) != NULL && (n = host_len(v, strlen(v))) > 0)
        append_lower(out, v, n);
    else if ((v = get(ctx, "SERVER_NAME")) != NULL)
        append_lower(out, v, strlen(v));
}

/* The params nginx 1.22 joins when a variable reads a header sent several
 * times; any other header variable reads the first instance. */
static const char *joined_separator(const char *param)
{
    if (strcmp(param, "HTTP_COOKIE") == 0)
        return "; ";
    if (strcmp(param, "HTTP_X_FORWARDED_FOR") == 0)
        return ", ";
    return NULL;
}

/* Appends param name to out: every instance joined with sep when get_all
 * is given, else the one get returns. */
static void append_param(key_param_fn get, key_param_all_fn get_all, void *ctx,
                         const char *name, const char *sep, struct buf *out)
{
    if (get_all && sep) {
        get_all(ctx, name, sep, out);
    } else {
        const char *v = get(ctx, name);
        if (v)
            buf_append_str(out, v);
    }
}

void key_param_value(key_param_fn get, key_param_all_fn get_all, void *ctx, const char *param,
                     struct buf *out)
{
    append_param(get, get_all, ctx, param, joined_separator(param), out);
}

void key_pattern_eval(const struct key_pattern *p, key_param_fn get, void *ctx, struct buf *out)
{
    key_pattern_eval_all(p, get, NULL, ctx, out);
}

void key_pattern_eval_all(const struct key_pattern *p, key_param_fn get, key_param_all_fn get_all,
                          void *ctx, struct buf *out)
{
    struct buf cookies = BUF_INIT;
    int have_cookies = 0;
    buf_append(out, "", 0);
    for (size_t i = 0; i < p->nparts; i++) {
        const struct key_part *part = &p->parts[i];
        const char *v, *a;
        size_t n;
        switch (part->kind) {
        case KP_LITERAL:
            buf_append(out, part->text, part->len);
            break;
        case KP_PARAM:
            append_param(get, get_all, ctx, part->text, joined_separator(part->text), out);
            break;
        case KP_URI:
            if ((v = get(ctx, "DOCUMENT_URI")) != NULL)
                buf_append_str(out, v);
            else if ((v = get(ctx, "REQUEST_URI")) != NULL)
                (void)key_normalize_uri(v, strlen(v), out); /* a 400 target: empty */
            break;
        case KP_ARGS:
            get_args(get, ctx, &a, &n);
            buf_append(out, a, n);
            break;
        case KP_IS_ARGS:
            get_args(get, ctx, &a, &n);
            if (n > 0)
                buf_append_char(out, '?');
            break;
        case KP_ARG: {
            const char *v2;
            size_t n2;
            get_args(get, ctx, &a, &n);
            if (key_arg_find(a, n, part->text, part->len, &v2, &n2))
                buf_append(out, v2, n2);
            break;
        }
        case KP_HOST:
            key_host(get, ctx, out);
            break;
        case KP_SCHEME:
            v = get(ctx, "REQUEST_SCHEME");
            if (v && *v) {
                buf_append_str(out, v);
            } else {
                v = get(ctx, "HTTPS");
                int on = v && strlen(v) == 2 && util_ascii_caseeq(v, "on", 2);
                buf_append_str(out, on ? "https" : "http");
            }
            break;
        case KP_COOKIE:
            if (!have_cookies) {
                append_param(get, get_all, ctx, "HTTP_COOKIE", "; ", &cookies);
                have_cookies = 1;
            }
            if (cookies.len && key_cookie_find(cookies.data, cookies.len, part->text,
                                               part->len, &a, &n))
                buf_append(out, a, n);
            break;
        }
    }
    buf_fini(&cookies);
}

unsigned key_pattern_covers(const struct key_pattern *p)
{
    unsigned c = 0;
    for (size_t i = 0; i < p->nparts; i++) {
        const struct key_part *part = &p->parts[i];
        switch (part->kind) {
        case KP_URI: c |= KEY_COVERS_URI; break;
        case KP_ARGS: c |= KEY_COVERS_ARGS; break;
        case KP_HOST: c |= KEY_COVERS_HOST; break;
        case KP_ARG: c |= KEY_COVERS_ARG; break;
        case KP_COOKIE: c |= KEY_COVERS_COOKIE; break;
        case KP_SCHEME: c |= KEY_COVERS_SCHEME; break;
        case KP_PARAM:
            if (strcmp(part->text, "REQUEST_URI") == 0)
                c |= KEY_COVERS_REQUEST_URI;
            else if (strncmp(part->text, "HTTP_", 5) == 0)
                c |= KEY_COVERS_HEADER;
            break;
        default:
            break;
        }
    }
    return c;
}

const char *key_pattern_part(const struct key_pattern *p, size_t i, unsigned *covers)
{
    *covers = 0;
    if (i >= p->nparts)
        return NULL;
    const struct key_part *part = &p->parts[i];
    switch (part->kind) {
    case KP_ARG: *covers = KEY_COVERS_ARG; break;
    case KP_COOKIE: *covers = KEY_COVERS_COOKIE; break;
    case KP_PARAM:
        if (strncmp(part->text, "HTTP_", 5) == 0)
            *covers = KEY_COVERS_HEADER;
        break;
    default:
        break;
    }
    return part->text;
}
