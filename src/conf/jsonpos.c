/* jsonpos.c - a small JSON scanner that records where each value starts.
 *
 * It runs after jansson has accepted the text, so it can be lenient: it
 * never fails, it stops at the first thing it does not understand. Nesting
 * is bounded (JSONPOS_MAX_DEPTH) so hostile input cannot exhaust the stack.
 * Paths are built the way conf.c names keys: members joined with '.',
 * array elements as "[i]". */
#include "config.h"

#include "memfill/jsonpos.h"
#include "memfill/buf.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>

#define JSONPOS_MAX_DEPTH 64

struct jsonpos_entry {
    char *path;
    int key_line, key_col;
    int val_line, val_col;
};

struct jsonpos {
    struct jsonpos_entry *v;
    size_t n, cap;
};

struct scanner {
    const char *p, *end;
    int line, col;
    struct jsonpos *jp;
};

static void advance(struct scanner *s)
{
    unsigned char c = (unsigned char)*s->p++;
    if (c == '\n') {
        s->line++;
        s->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        s->col++;
    }
}

static void skip_ws(struct scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        advance(s);
}

static void record(struct scanner *s, const char *path, int kl, int kc)
{
    struct jsonpos *jp = s->jp;
    if (jp->n == jp->cap) {
        jp->cap = jp->cap ? jp->cap * 2 : 32;
        jp->v = xrealloc(jp->v, jp->cap * sizeof *jp->v);
    }
    struct jsonpos_entry *e = &jp->v[jp->n++];
    e->path = xstrdup(path);
    e->key_line = kl;
    e->key_col = kc;
    e->val_line = s->line;
    e->val_col = s->col;
}

/* Scans a string starting at the opening quote; appends its decoded bytes
 * (escapes kept simple: \uXXXX is appended as is) to out when out is set. */
static int scan_string(struct scanner *s, struct buf *out)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    advance(s);
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\' && s->p + 1 < s->end) {
            advance(s);
            char c = *s->p;
            if (out) {
                switch (c) {
                case 'n': buf_append_char(out, '\n'); break;
                case 't': buf_append_char(out, '\t'); break;
                case 'r': buf_append_char(out, '\r'); break;
                case 'b': buf_append_char(out, '\b'); break;
                case 'f': buf_append_char(out, '\f'); break;
                case 'u': buf_append(out, "\\u", 2); break;
                default: buf_append_char(out, c); break;
                }
            }
            advance(s);
            continue;
        }
        if (out)
            buf_append_char(out, *s->p);
        advance(s);
    }
    if (s->p >= s->end)
        return -1;
    advance(s);
    return 0;
}

static int scan_value(struct scanner *s, struct buf *path, int kl, int kc, int depth);

static int scan_object(struct scanner *s, struct buf *path, int depth)
{
    advance(s); /* { */
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        advance(s);
        return 0;
    }
    size_t base = path->len;
    while (s->p < s->end) {
        skip_ws(s);
        int kl = s->line, kc = s->col;
        struct buf name = BUF_INIT;
        if (scan_string(s, &name) < 0) {
            buf_fini(&name);
            return -1;
        }
        path->len = base;
        if (base)
            buf_append_char(path, '.');
        buf_append(path, name.data ? name.data : "", name.len);
        buf_fini(&name);
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return -1;
        advance(s);
        skip_ws(s);
        if (scan_value(s, path, kl, kc, depth + 1) < 0)
            return -1;
        path->len = base;
        path->data[base] = '\0';
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            advance(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            advance(s);
            return 0;
        }
        return -1;
    }
    return -1;
}

static int scan_array(struct scanner *s, struct buf *path, int depth)
{
    advance(s); /* [ */
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        advance(s);
        return 0;
    }
    size_t base = path->len;
    for (size_t i = 0; s->p < s->end; i++) {
        skip_ws(s);
        path->len = base;
        buf_printf(path, "[%zu]", i);
        if (scan_value(s, path, s->line, s->col, depth + 1) < 0)
            return -1;
        path->len = base;
        path->data[base] = '\0';
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            advance(s);
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            advance(s);
            return 0;
        }
        return -1;
    }
    return -1;
}

static int scan_value(struct scanner *s, struct buf *path, int kl, int kc, int depth)
{
    if (depth > JSONPOS_MAX_DEPTH || s->p >= s->end)
        return -1;
    record(s, path->data ? path->data : "", kl, kc);
    switch (*s->p) {
    case '{':
        return scan_object(s, path, depth);
    case '[':
        return scan_array(s, path, depth);
    case '"':
        return scan_string(s, NULL);
    default:
        /* number, true, false, null */
        while (s->p < s->end && !strchr(",]} \t\r\n", *s->p))
            advance(s);
        return 0;
    }
}

struct jsonpos *jsonpos_new(const char *text, size_t len)
{
    struct jsonpos *jp = xcalloc(1, sizeof *jp);
    struct scanner s = {text, text + len, 1, 1, jp};
    struct buf path = BUF_INIT;
    buf_append(&path, "", 0);
    skip_ws(&s);
    (void)scan_value(&s, &path, s.line, s.col, 0);
    buf_fini(&path);
    return jp;
}

void jsonpos_free(struct jsonpos *jp)
{
    if (!jp)
        return;
    for (size_t i = 0; i < jp->n; i++)
        free(jp->v[i].path);
    free(jp->v);
    free(jp);
}

static const struct jsonpos_entry *find(const struct jsonpos *jp, const char *path)
{
    for (size_t i = 0; jp && i < jp->n; i++)
        if (strcmp(jp->v[i].path, path) == 0)
            return &jp->v[i];
    return NULL;
}

int jsonpos_value(const struct jsonpos *jp, const char *path, int *line, int *col)
{
    const struct jsonpos_entry *e = find(jp, path);
    if (!e)
        return -1;
    *line = e->val_line;
    *col = e->val_col;
    return 0;
}

int jsonpos_key(const struct jsonpos *jp, const char *path, int *line, int *col)
{
    const struct jsonpos_entry *e = find(jp, path);
    if (!e)
        return -1;
    *line = e->key_line;
    *col = e->key_col;
    return 0;
}
