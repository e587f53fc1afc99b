/* warmlist.c - what memfillctl warm reads: URL lists, sitemaps and URLs.
 *
 * Pure parsing, no I/O: a URL list is one URL a line, a sitemap.xml is
 * scanned for its <loc> elements (no XML library), and a URL is checked
 * and split into scheme, host and the request target nginx would see,
 * refusing a target nginx would answer 400 to (urinorm.c decides). */
#include "config.h"

#include "memfill/warmlist.h"
#include "memfill/urinorm.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- lists ---- */

void warm_list_init(struct warm_list *l)
{
    memset(l, 0, sizeof *l);
}

void warm_list_fini(struct warm_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    warm_list_init(l);
}

void warm_list_add(struct warm_list *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->n++] = xstrndup(s, len);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

size_t warm_list_parse(const char *text, size_t len, struct warm_list *out)
{
    size_t added = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *a = p, *b = le;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (a < b && *a != '#') {
            warm_list_add(out, a, (size_t)(b - a));
            added++;
        }
        p = eol ? eol + 1 : end;
    }
    return added;
}

/* ---- sitemaps ---- */

static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    while ((size_t)(end - p) >= n) {
        const char *c = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (!c)
            return NULL;
        if (memcmp(c, needle, n) == 0)
            return c;
        p = c + 1;
    }
    return NULL;
}

static void put_utf8(struct buf *out, unsigned long cp)
{
    char b[4];
    if (cp < 0x80) {
        b[0] = (char)cp;
        buf_append(out, b, 1);
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        buf_append(out, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        buf_append(out, b, 3);
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        buf_append(out, b, 4);
    }
}

/* Appends p..end with XML entities decoded; an unknown or malformed
 * reference is copied as it is. */
static void decode_entities(const char *p, const char *end, struct buf *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    while (p < end) {
        if (*p != '&') {
            buf_append_char(out, *p++);
            continue;
        }
        const char *semi = memchr(p, ';', (size_t)(end - p));
        int done = 0;
        if (semi && p + 1 < semi && p[1] == '#') {
            const char *d = p + 2;
            int hex = d < semi && (*d == 'x' || *d == 'X');
            if (hex)
                d++;
            unsigned long cp = 0;
            int ok = d < semi && semi - d <= 8;
            for (const char *q = d; ok && q < semi; q++) {
                int v = util_hex_digit((unsigned char)*q);
                if (v < 0 || (!hex && v > 9))
                    ok = 0;
                else
                    cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            }
            if (ok && cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
                put_utf8(out, cp);
                p = semi + 1;
                done = 1;
            }
        } else if (semi) {
            for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
                size_t nl = strlen(named[i].name);
                if ((size_t)(end - p - 1) >= nl && memcmp(p + 1, named[i].name, nl) == 0) {
                    buf_append_char(out, named[i].c);
                    p += 1 + nl;
                    done = 1;
                    break;
                }
            }
        }
        if (!done)
            buf_append_char(out, *p++);
    }
}

size_t warm_sitemap_parse(const char *xml, size_t len, struct warm_list *out)
{
    size_t added = 0;
    const char *p = xml, *end = xml + len;
    struct buf v = BUF_INIT;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt)
            break;
        if ((size_t)(end - lt) >= 4 && memcmp(lt, "<!--", 4) == 0) {
            const char *c = find(lt + 4, end, "-->");
            p = c ? c + 3 : end;
            continue;
        }
        if ((size_t)(end - lt) >= 9 && memcmp(lt, "<![CDATA[", 9) == 0) {
            const char *c = find(lt + 9, end, "]]>");
            p = c ? c + 3 : end;
            continue;
        }
        if ((size_t)(end - lt) < 5 || memcmp(lt, "<loc>", 5) != 0) {
            p = lt + 1;
            continue;
        }
        const char *a = lt + 5;
        const char *close = find(a, end, "</loc>");
        if (!close)
            break;
        const char *b = close;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        buf_reset(&v, 1 << 16);
        if ((size_t)(b - a) >= 12 && memcmp(a, "<![CDATA[", 9) == 0 &&
            memcmp(b - 3, "]]>", 3) == 0) {
            buf_append(&v, a + 9, (size_t)(b - 3 - (a + 9)));
        } else {
            decode_entities(a, b, &v);
        }
        if (v.len) {
            warm_list_add(out, v.data, v.len);
            added++;
        }
        p = close + 6;
    }
    buf_fini(&v);
    return added;
}

/* ---- URLs ---- */

int warm_url_parse(const char *text, size_t len, struct warm_url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    const char *p = text, *end = text + len;
    const char *hash = memchr(p, '#', len);
    if (hash)
        end = hash;
    const char *scheme = "http";
    if (p < end && *p != '/') {
        size_t skip;
        if ((size_t)(end - p) >= 7 && util_ascii_caseeq(p, "http://", 7)) {
            skip = 7;
        } else if ((size_t)(end - p) >= 8 && util_ascii_caseeq(p, "https://", 8)) {
            skip = 8;
            scheme = "https";
        } else {
            *why = "expected /path or http(s)://host/path";
            return -1;
        }
        p += skip;
        const char *slash = p;
        while (slash < end && *slash != '/' && *slash != '?')
            slash++;
        if (slash == p) {
            *why = "expected a host after the scheme";
            return -1;
        }
        for (const char *c = p; c < slash; c++) {
            if (*c == '@') {
                *why = "expected no user name or password in the URL";
                return -1;
            }
            if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
                *why = "expected no blanks or control bytes in the host";
                return -1;
            }
        }
        u->host = xstrndup(p, (size_t)(slash - p));
        p = slash;
    }
    struct buf target = BUF_INIT;
    if (p == end || *p == '?')
        buf_append_char(&target, '/');
    buf_append(&target, p, (size_t)(end - p));
    struct buf norm = BUF_INIT;
    if (key_normalize_uri(target.data, target.len, &norm) < 0) {
        buf_fini(&norm);
        buf_fini(&target);
        free(u->host);
        u->host = NULL;
        *why = "nginx would refuse this request target (400)";
        return -1;
    }
    buf_fini(&norm);
    u->scheme = xstrdup(scheme);
    u->request_uri = buf_steal(&target);
    return 0;
}

void warm_url_fini(struct warm_url *u)
{
    free(u->scheme);
    free(u->host);
    free(u->request_uri);
    memset(u, 0, sizeof *u);
}
