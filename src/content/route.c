/* route.c - route matching with path prefixes and PCRE2 regexes.
 *
 * Regexes are compiled once when the site is built (before fork); match
 * data is allocated lazily in each process on first use, because PCRE2
 * match data is per-thread scratch that must not be shared. The route list
 * is short and ordered by the operator, so matching is a linear scan. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include "memfill/route.h"
#include "memfill/util.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

struct compiled_route {
    pcre2_code *re;          /* NULL for a prefix route */
    pcre2_match_data *md;    /* lazily allocated */
};

struct router {
    const struct config *cfg;
    struct compiled_route *v;
    size_t n;
};

static pcre2_code *compile(const char *pattern, int *errcode, size_t *erroff)
{
    /* Byte mode, not UTF: paths may hold bytes that are not UTF-8, and a
     * UTF-mode match would fail on them instead of simply not matching. */
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, errcode, erroff, NULL);
    if (re)
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

struct router *router_new(const struct config *cfg, struct err *err)
{
    struct router *rt = xcalloc(1, sizeof *rt);
    rt->cfg = cfg;
    rt->n = cfg->nroutes;
    rt->v = xcalloc(rt->n ? rt->n : 1, sizeof *rt->v);
    for (size_t i = 0; i < rt->n; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (!r->regex)
            continue;
        int code;
        size_t off;
        rt->v[i].re = compile(r->regex, &code, &off);
        if (!rt->v[i].re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            err_set(err, cfg->path, r->regex_pos.line, r->regex_pos.col + 1 + (int)off,
                    "routes[%zu].regex: %s", i, (const char *)msg);
            router_free(rt);
            return NULL;
        }
        uint32_t count = 0;
        pcre2_pattern_info(rt->v[i].re, PCRE2_INFO_NAMECOUNT, &count);
        if (count > ROUTE_MAX_CAPTURES) {
            err_set(err, cfg->path, r->regex_pos.line, r->regex_pos.col,
                    "routes[%zu].regex: at most %d named captures", i, ROUTE_MAX_CAPTURES);
            router_free(rt);
            return NULL;
        }
    }
    return rt;
}

void router_free(struct router *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i < rt->n; i++) {
        pcre2_match_data_free(rt->v[i].md);
        pcre2_code_free(rt->v[i].re);
    }
    free(rt->v);
    free(rt);
}

void route_match_init(struct route_match *m)
{
    memset(m, 0, sizeof *m);
    buf_init(&m->storage);
}

void route_match_fini(struct route_match *m)
{
    buf_fini(&m->storage);
    m->ncaptures = 0;
}

static void collect_captures(struct compiled_route *cr, const char *path, struct route_match *m)
{
    uint32_t count = 0, entry_size = 0;
    PCRE2_SPTR table;
    pcre2_pattern_info(cr->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(cr->re, PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
    pcre2_pattern_info(cr->re, PCRE2_INFO_NAMETABLE, &table);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(cr->md);
    uint32_t pairs = pcre2_get_ovector_count(cr->md);
    for (uint32_t i = 0; i < count && m->ncaptures < ROUTE_MAX_CAPTURES; i++) {
        PCRE2_SPTR e = table + (size_t)i * entry_size;
        uint32_t group = ((uint32_t)e[0] << 8) | e[1];
        if (group >= pairs || ov[2 * group] == PCRE2_UNSET)
            continue;
        size_t k = m->ncaptures++;
        m->names[k] = (const char *)(e + 2); /* lives as long as the router */
        m->value_off[k] = m->storage.len;
        m->value_len[k] = ov[2 * group + 1] - ov[2 * group];
        buf_append(&m->storage, path + ov[2 * group], m->value_len[k]);
    }
}

int router_match(struct router *rt, const char *path, size_t len, struct route_match *m)
{
    buf_reset(&m->storage, 4096);
    m->ncaptures = 0;
    for (size_t i = 0; i < rt->n; i++) {
        const struct config_route *r = &rt->cfg->routes[i];
        struct compiled_route *cr = &rt->v[i];
        if (!cr->re) {
            size_t pl = strlen(r->prefix);
            if (len >= pl && memcmp(path, r->prefix, pl) == 0) {
                m->route = i;
                return 0;
            }
            continue;
        }
        if (!cr->md)
            cr->md = pcre2_match_data_create_from_pattern(cr->re, NULL);
        int rc = pcre2_match(cr->re, (PCRE2_SPTR)path, len, 0, 0, cr->md, NULL);
        if (rc >= 0) {
            m->route = i;
            collect_captures(cr, path, m);
            return 0;
        }
    }
    return -1;
}

const char *route_match_get(const struct route_match *m, const char *name, size_t *len)
{
    for (size_t i = 0; i < m->ncaptures; i++) {
        if (strcmp(m->names[i], name) == 0) {
            *len = m->value_len[i];
            return m->storage.data + m->value_off[i];
        }
    }
    return NULL;
}

/* Appends v to out as a file name part; returns -1 when it could not name
 * a file safely. A lone "." is refused too: next to a literal '.' or
 * another capture ("{a}." or "{a}{b}") it would make a ".." component. */
static int append_file_part(const char *v, size_t vl, struct buf *out)
{
    if (vl == 0 || memchr(v, '/', vl) || memchr(v, '\0', vl) ||
        (vl >= 2 && memmem(v, vl, "..", 2)) || (vl == 1 && v[0] == '.'))
        return -1;
    buf_append(out, v, vl);
    return 0;
}

/* Appends v to out percent-encoded (RFC 3986 unreserved bytes kept). */
static int append_url_part(const char *v, size_t vl, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(out, esc, 3);
        }
    }
    return 0;
}

/* Replaces each "{name}" of pattern by its capture, through append. */
static int expand(const struct route_match *m, const char *pattern, struct buf *out,
                  int (*append)(const char *v, size_t vl, struct buf *out))
{
    const char *p = pattern;
    while (*p) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        if (!close) {
            buf_append_str(out, p);
            break;
        }
        buf_append(out, p, (size_t)(open - p));
        char name[64];
        size_t nl = (size_t)(close - open - 1);
        if (nl == 0 || nl >= sizeof name)
            return -1;
        memcpy(name, open + 1, nl);
        name[nl] = '\0';
        size_t vl;
        const char *v = route_match_get(m, name, &vl);
        if (!v || append(v, vl, out) < 0)
            return -1;
        p = close + 1;
    }
    if (!out->data)
        buf_append(out, "", 0);
    return 0;
}

int route_expand(const struct route_match *m, const char *pattern, struct buf *out)
{
    return expand(m, pattern, out, append_file_part);
}

int route_expand_url(const struct route_match *m, const char *pattern, struct buf *out)
{
    return expand(m, pattern, out, append_url_part);
}

struct regex_list {
    pcre2_code **re;
    pcre2_match_data **md;
    size_t n;
};

struct regex_list *regex_list_new(char *const *patterns, const char *what, struct err *err)
{
    struct regex_list *l = xcalloc(1, sizeof *l);
    for (char *const *p = patterns; p && *p; p++)
        l->n++;
    l->re = xcalloc(l->n ? l->n : 1, sizeof *l->re);
    l->md = xcalloc(l->n ? l->n : 1, sizeof *l->md);
    for (size_t i = 0; i < l->n; i++) {
        int code;
        size_t off;
        l->re[i] = compile(patterns[i], &code, &off);
        if (!l->re[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            err_set(err, NULL, 0, 0, "%s[%zu]: %s at offset %zu", what, i, (const char *)msg,
                    off);
            regex_list_free(l);
            return NULL;
        }
    }
    return l;
}

void regex_list_free(struct regex_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        pcre2_match_data_free(l->md[i]);
        pcre2_code_free(l->re[i]);
    }
    free(l->re);
    free(l->md);
    free(l);
}

int regex_list_match(struct regex_list *l, const char *s, size_t len)
{
    for (size_t i = 0; l && i < l->n; i++) {
        if (!l->md[i])
            l->md[i] = pcre2_match_data_create_from_pattern(l->re[i], NULL);
        if (pcre2_match(l->re[i], (PCRE2_SPTR)s, len, 0, 0, l->md[i], NULL) >= 0)
            return 1;
    }
    return 0;
}
