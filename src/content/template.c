/* template.c - Mustache templates compiled to a flat op list, rendered over JSON.
 *
 * SPDX-License-Identifier: MIT
 *
 * Design. A template is compiled once into an array of ops that point into
 * the template's own copy of its source; rendering walks the ops and never
 * looks at the source syntax again. A section is one op whose `end` is the
 * index just past its body, so the op list is flat and the compiler needs no
 * recursion: open sections live on a fixed stack of TEMPLATE_MAX_NESTING
 * entries, deeper nesting is a compile error. Rendering recurses once per
 * section and per partial, so its depth is bounded by the nesting limit times
 * the partial depth limit (TEMPLATE_MAX_PARTIAL_DEPTH, an error past it):
 * about 6,400 small frames, under 1 MB of stack even unoptimised.
 *
 * Output and work. Nested sections over long lists multiply, as Mustache
 * means them to: two sections over a 100-item list print the inner body
 * 10,000 times, five print it 10^10 times. So a capped render
 * (template_render_capped) checks after every op and every section
 * iteration how far the output has grown and how many steps (ops run plus
 * section iterations) it has taken, and stops as soon as either passes its
 * cap; the output then overshoots the cap by at most one op's text or one
 * value. Steps are capped at TEMPLATE_STEPS_PER_BYTE per byte of the output
 * cap, so a template that loops without printing stops too.
 *
 * Standalone lines. The compiler tracks the current source line: the op
 * index where it began and whether anything but blanks appeared on it. A
 * standalone-capable tag (section, inverted, close, comment, partial,
 * set-delimiter) with only blanks before it on its line and only blanks and
 * a newline (or the end) after it drops the ops of its line and swallows the
 * trailing newline. Text ops never span a newline, so "the ops of its line"
 * are exactly an OP_INDENT marker and the leading blanks.
 *
 * Partial indentation. Each source line that survives starts with an
 * OP_INDENT marker. The renderer prints the current indentation there; it is
 * empty except inside a partial included by a standalone tag, where it is the
 * tag's leading blanks appended to the includer's own indentation. This is
 * the spec's "prepend the indentation to each line of the partial" without
 * re-parsing anything at render time; interpolated values are not indented.
 *
 * Partials are looked up by name through the set at render time, which makes
 * recursive partials possible without cycles between compiled objects. All
 * file reading happens in template_set_load/template_set_add_string.
 *
 * Invariants: every op slice lies inside its template's src; ops[i].end of a
 * section is in (i, nops]; the renderer's context stack holds borrowed
 * json_t pointers that outlive the render call. */
#include "config.h"

#include "memfill/template.h"
#include "memfill/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATE_MAX_NESTING 100
#define TEMPLATE_MAX_PARTIAL_DEPTH 64
/* Steps a capped render may take per byte of its output cap. A page spends
 * well under one step per byte it prints; 8 leaves room for templates that
 * skip most items of a long list, and bounds the CPU of one render to well
 * under a second for the default 4 MiB cap. */
#define TEMPLATE_STEPS_PER_BYTE 8
/* Longest name quoted in an error message. */
#define TEMPLATE_QUOTE_MAX 64

enum op_type {
    OP_TEXT,     /* literal src[off, off+len) */
    OP_INDENT,   /* start of a source line: print the current indentation */
    OP_ESCAPED,  /* {{name}} */
    OP_RAW,      /* {{{name}}} or {{&name}} */
    OP_SECTION,  /* {{#name}} ... body ops ... */
    OP_INVERTED, /* {{^name}} ... body ops ... */
    OP_PARTIAL,  /* {{>name}}, with ind_off/ind_len when standalone */
};

struct template_slice {
    size_t off;
    size_t len;
};

struct template_op {
    enum op_type type;
    size_t off, len;         /* text, or the whole name as written */
    size_t part0, nparts;    /* dotted name parts in parts[]; 0 parts means "." */
    size_t at;               /* offset of the tag, for messages */
    size_t end;              /* sections: index just past the body */
    size_t ind_off, ind_len; /* partials: standalone indentation */
};

struct template {
    struct template_set *set; /* for partial lookup at render time */
    char *name;               /* for error messages */
    char *src;                /* own copy; ops point into it */
    size_t len;
    struct template_op *ops;
    size_t nops, capops;
    struct template_slice *parts;
    size_t nparts, capparts;
};

/* Open-addressing map from a byte string to a template; a NULL value
 * records a partial that was looked for and not found. No deletion. */
struct template_map_entry {
    char *key; /* NULL for an empty slot */
    size_t klen;
    struct template *t;
};

struct template_map {
    struct template_map_entry *slots;
    size_t cap, count;
};

struct template_set {
    char *partials_dir;
    struct template **all; /* every template compiled into the set; owned */
    size_t nall, capall;
    struct template_map by_path; /* template_set_load */
    struct template_map by_name; /* partial names */
};

/*---- Small helpers ----*/

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* 1-based line and column of src[off]. */
static void position(const char *src, size_t off, int *line, int *col)
{
    int l = 1;
    size_t start = 0;
    for (size_t i = 0; i < off; i++) {
        if (src[i] == '\n') {
            l++;
            start = i + 1;
        }
    }
    *line = l;
    *col = (int)(off - start + 1);
}

static int quote_len(size_t len)
{
    return (int)(len > TEMPLATE_QUOTE_MAX ? TEMPLATE_QUOTE_MAX : len);
}

/*---- Name map ----*/

static uint64_t map_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211u;
    }
    return h;
}

static struct template_map_entry *map_slot(const struct template_map *m, const char *key,
                                           size_t klen)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)map_hash(key, klen) & mask;
    for (;;) {
        struct template_map_entry *e = &m->slots[i];
        if (!e->key || (e->klen == klen && memcmp(e->key, key, klen) == 0))
            return e;
        i = (i + 1) & mask;
    }
}

/* Returns the entry for key, or NULL when there is none. */
static const struct template_map_entry *map_find(const struct template_map *m, const char *key,
                                                 size_t klen)
{
    if (m->cap == 0)
        return NULL;
    const struct template_map_entry *e = map_slot(m, key, klen);
    return e->key ? e : NULL;
}

static void map_put(struct template_map *m, const char *key, size_t klen, struct template *t)
{
    if ((m->count + 1) * 2 > m->cap) {
        struct template_map old = *m;
        m->cap = old.cap ? old.cap * 2 : 16;
        m->slots = xcalloc(m->cap, sizeof *m->slots);
        for (size_t i = 0; i < old.cap; i++) {
            if (old.slots[i].key)
                *map_slot(m, old.slots[i].key, old.slots[i].klen) = old.slots[i];
        }
        free(old.slots);
    }
    struct template_map_entry *e = map_slot(m, key, klen);
    if (!e->key) {
        e->key = xstrndup(key, klen);
        e->klen = klen;
        m->count++;
    }
    e->t = t;
}

static void map_fini(struct template_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

/*---- Compiler ----*/

struct compiler {
    struct template *t;
    const char *src;
    size_t len;
    struct err *err;
    const char *open, *close; /* current delimiters */
    size_t olen, clen;
    size_t line_start; /* source offset where the current line begins */
    size_t line_op;    /* index of the first op of the current line */
    int line_content;  /* something other than blanks on the current line */
    /* Op index of each open section, innermost at depth - 1. */
    size_t stack[TEMPLATE_MAX_NESTING];
    size_t depth;
};

static void compile_error(struct compiler *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void compile_error(struct compiler *c, size_t off, const char *fmt, ...)
{
    char text[ERR_TEXT_MAX];
    va_list ap;
    int line, col;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    position(c->src, off, &line, &col);
    err_set(c->err, c->t->name, line, col, "%s", text);
}

static struct template_op *push_op(struct compiler *c, enum op_type type, size_t off, size_t len)
{
    struct template *t = c->t;
    if (t->nops == t->capops) {
        t->capops = t->capops ? t->capops * 2 : 32;
        t->ops = xrealloc(t->ops, t->capops * sizeof *t->ops);
    }
    struct template_op *op = &t->ops[t->nops++];
    memset(op, 0, sizeof *op);
    op->type = type;
    op->off = off;
    op->len = len;
    return op;
}

/* Starts a new source line at off. The OP_INDENT marker is left out at the
 * very end of the source: there is no line there to indent. */
static void begin_line(struct compiler *c, size_t off)
{
    c->line_start = off;
    c->line_op = c->t->nops;
    c->line_content = 0;
    if (off < c->len)
        push_op(c, OP_INDENT, off, 0);
}

/* Emits src[a, b) as text ops that end at newlines. */
static void emit_text(struct compiler *c, size_t a, size_t b)
{
    while (a < b) {
        const char *nl = memchr(c->src + a, '\n', b - a);
        size_t e = nl ? (size_t)(nl - c->src) + 1 : b;
        for (size_t i = a; i < e && !c->line_content; i++) {
            if (!is_blank(c->src[i]) && c->src[i] != '\n')
                c->line_content = 1;
        }
        push_op(c, OP_TEXT, a, e - a);
        if (nl)
            begin_line(c, e);
        a = e;
    }
}

/* Finds the end of a tag whose content starts at p: the first close
 * delimiter, or for '{' and '=' tags the first close delimiter preceded by
 * that character (which is not part of the content). Sets *cend to the end
 * of the content and returns the offset just past the tag, or 0 if there is
 * no end. */
static size_t find_tag_end(const struct compiler *c, size_t p, char before, size_t *cend)
{
    size_t from = p;
    while (from < c->len) {
        const char *k = memmem(c->src + from, c->len - from, c->close, c->clen);
        if (!k)
            return 0;
        size_t ko = (size_t)(k - c->src);
        if (!before) {
            *cend = ko;
            return ko + c->clen;
        }
        if (ko > p && c->src[ko - 1] == before) {
            *cend = ko - 1;
            return ko + c->clen;
        }
        from = ko + 1;
    }
    return 0;
}

/* The spec's rule for every named tag: a non-empty run without
 * whitespace (src[off, off+len) is already trimmed). */
static int check_name(struct compiler *c, size_t tag_off, size_t off, size_t len)
{
    const char *s = c->src + off;
    if (len == 0) {
        compile_error(c, tag_off, "empty tag name");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (is_space(s[i])) {
            compile_error(c, tag_off, "tag name '%.*s' contains whitespace", quote_len(len), s);
            return -1;
        }
    }
    return 0;
}

/* Checks and records a tag name src[off, off+len) (already trimmed) into
 * op: "." is the implicit iterator, anything else splits on dots. */
static int parse_name(struct compiler *c, struct template_op *op, size_t tag_off, size_t off,
                      size_t len)
{
    const char *s = c->src + off;
    op->off = off;
    op->len = len;
    if (check_name(c, tag_off, off, len) < 0)
        return -1;
    op->part0 = c->t->nparts;
    op->nparts = 0;
    if (len == 1 && s[0] == '.')
        return 0;
    size_t a = 0;
    for (;;) {
        const char *dot = memchr(s + a, '.', len - a);
        size_t e = dot ? (size_t)(dot - s) : len;
        if (e == a) {
            compile_error(c, tag_off, "invalid name '%.*s'", quote_len(len), s);
            return -1;
        }
        struct template *t = c->t;
        if (t->nparts == t->capparts) {
            t->capparts = t->capparts ? t->capparts * 2 : 16;
            t->parts = xrealloc(t->parts, t->capparts * sizeof *t->parts);
        }
        t->parts[t->nparts].off = off + a;
        t->parts[t->nparts].len = e - a;
        t->nparts++;
        op->nparts++;
        if (!dot)
            return 0;
        a = e + 1;
    }
}

/* A partial name becomes part of a file name: no NUL, no absolute path and
 * no ".." component, so a template cannot read outside the partials folder. */
static int partial_name_ok(const char *s, size_t len)
{
    if (memchr(s, '\0', len) || s[0] == '/')
        return 0;
    size_t a = 0;
    while (a <= len) {
        const char *sl = memchr(s + a, '/', len - a);
        size_t e = sl ? (size_t)(sl - s) : len;
        if (e - a == 2 && s[a] == '.' && s[a + 1] == '.')
            return 0;
        if (!sl)
            break;
        a = e + 1;
    }
    return 1;
}

/* Parses "=<open> <close>=" content src[a, b) and switches delimiters. */
static int set_delimiters(struct compiler *c, size_t tag_off, size_t a, size_t b)
{
    while (a < b && is_space(c->src[a]))
        a++;
    while (b > a && is_space(c->src[b - 1]))
        b--;
    size_t o_end = a;
    while (o_end < b && !is_space(c->src[o_end]))
        o_end++;
    size_t c_start = o_end;
    while (c_start < b && is_space(c->src[c_start]))
        c_start++;
    int ok = o_end > a && c_start > o_end && c_start < b;
    for (size_t i = c_start; ok && i < b; i++) {
        if (is_space(c->src[i]))
            ok = 0;
    }
    if (!ok) {
        compile_error(c, tag_off,
                      "bad delimiter tag: expected two delimiters separated by whitespace");
        return -1;
    }
    c->open = c->src + a;
    c->olen = o_end - a;
    c->close = c->src + c_start;
    c->clen = b - c_start;
    return 0;
}

/* If the tag src[tag_off, tag_end) stands alone on its line, returns the
 * offset just past its line (after the newline, or the end of the source);
 * otherwise 0. */
static size_t standalone_end(const struct compiler *c, size_t tag_end)
{
    if (c->line_content)
        return 0;
    size_t p = tag_end;
    while (p < c->len && is_blank(c->src[p]))
        p++;
    if (p == c->len)
        return p;
    if (c->src[p] == '\n')
        return p + 1;
    if (c->src[p] == '\r' && p + 1 < c->len && c->src[p + 1] == '\n')
        return p + 2;
    return 0;
}

/* Compiles one tag starting at tag_off. Returns the offset to continue
 * from, or 0 on error. */
static size_t compile_tag(struct compiler *c, size_t tag_off)
{
    size_t p = tag_off + c->olen;
    char sigil = p < c->len ? c->src[p] : '\0';
    char before = '\0';
    switch (sigil) {
    case '#':
    case '^':
    case '/':
    case '!':
    case '>':
    case '&':
        p++;
        break;
    case '{':
        before = '}';
        p++;
        break;
    case '=':
        before = '=';
        p++;
        break;
    default:
        sigil = '\0';
    }
    size_t cend = 0;
    size_t tag_end = p <= c->len ? find_tag_end(c, p, before, &cend) : 0;
    if (!tag_end) {
        const char *extra = before == '}' ? "}" : before == '=' ? "=" : "";
        compile_error(c, tag_off, "unclosed tag: no '%s%.*s' after '%.*s'", extra,
                      quote_len(c->clen), c->close, quote_len(c->olen), c->open);
        return 0;
    }
    size_t a = p, b = cend;
    while (a < b && is_space(c->src[a]))
        a++;
    while (b > a && is_space(c->src[b - 1]))
        b--;

    if (sigil == '\0' || sigil == '&' || sigil == '{') {
        struct template_op *op = push_op(c, sigil == '\0' ? OP_ESCAPED : OP_RAW, a, 0);
        op->at = tag_off;
        if (parse_name(c, op, tag_off, a, b - a) < 0)
            return 0;
        c->line_content = 1;
        return tag_end;
    }

    /* Standalone-capable tags. */
    size_t next = standalone_end(c, tag_end);
    int standalone = next != 0;
    size_t ind_off = c->line_start, ind_len = 0;
    if (standalone) {
        ind_len = tag_off - c->line_start;
        c->t->nops = c->line_op; /* drop the marker and the leading blanks */
    } else {
        next = tag_end;
        c->line_content = 1;
    }

    switch (sigil) {
    case '!':
        break;
    case '=':
        if (set_delimiters(c, tag_off, p, cend) < 0)
            return 0;
        break;
    case '#':
    case '^': {
        if (c->depth == TEMPLATE_MAX_NESTING) {
            compile_error(c, tag_off, "sections nested deeper than %d", TEMPLATE_MAX_NESTING);
            return 0;
        }
        struct template_op *op = push_op(c, sigil == '#' ? OP_SECTION : OP_INVERTED, a, 0);
        op->at = tag_off;
        if (parse_name(c, op, tag_off, a, b - a) < 0)
            return 0;
        c->stack[c->depth++] = c->t->nops - 1;
        break;
    }
    case '/': {
        if (check_name(c, tag_off, a, b - a) < 0)
            return 0;
        if (c->depth == 0) {
            compile_error(c, tag_off, "closing '%.*s' without an open section", quote_len(b - a),
                          c->src + a);
            return 0;
        }
        struct template_op *open = &c->t->ops[c->stack[c->depth - 1]];
        if (open->len != b - a || memcmp(c->src + open->off, c->src + a, b - a) != 0) {
            compile_error(c, tag_off, "closing '%.*s' does not match '%.*s'", quote_len(b - a),
                          c->src + a, quote_len(open->len), c->src + open->off);
            return 0;
        }
        open->end = c->t->nops;
        c->depth--;
        break;
    }
    case '>': {
        if (check_name(c, tag_off, a, b - a) < 0)
            return 0;
        if (!partial_name_ok(c->src + a, b - a)) {
            compile_error(c, tag_off, "partial name '%.*s' is not a valid file name",
                          quote_len(b - a), c->src + a);
            return 0;
        }
        struct template_op *op = push_op(c, OP_PARTIAL, a, b - a);
        op->at = tag_off;
        op->ind_off = ind_off;
        op->ind_len = ind_len;
        break;
    }
    }

    /* A standalone tag took its line with it: the next one starts here. */
    if (standalone)
        begin_line(c, next);
    return next;
}

static int compile(struct template *t, struct err *err)
{
    struct compiler c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.src = t->src;
    c.len = t->len;
    c.err = err;
    c.open = "{{";
    c.olen = 2;
    c.close = "}}";
    c.clen = 2;
    begin_line(&c, 0);

    size_t pos = 0;
    while (pos < c.len) {
        const char *k = memmem(c.src + pos, c.len - pos, c.open, c.olen);
        size_t text_end = k ? (size_t)(k - c.src) : c.len;
        emit_text(&c, pos, text_end);
        if (!k)
            break;
        pos = compile_tag(&c, text_end);
        if (!pos)
            return -1;
    }
    if (c.depth > 0) {
        const struct template_op *open = &t->ops[c.stack[c.depth - 1]];
        int line, col;
        position(c.src, open->at, &line, &col);
        compile_error(&c, c.len, "section '%.*s' opened at %d:%d is not closed",
                      quote_len(open->len), c.src + open->off, line, col);
        return -1;
    }
    return 0;
}

static void template_free(struct template *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->src);
    free(t->ops);
    free(t->parts);
    free(t);
}

/* Compiles src into a new template owned by set; NULL with err set on a
 * syntax error. */
static struct template *compile_new(struct template_set *set, const char *name, const char *src,
                                    size_t len, struct err *err)
{
    struct template *t = xcalloc(1, sizeof *t);
    t->set = set;
    t->name = xstrdup(name);
    t->src = xmalloc(len + 1);
    if (len)
        memcpy(t->src, src, len);
    t->src[len] = '\0';
    t->len = len;
    if (compile(t, err) < 0) {
        template_free(t);
        return NULL;
    }
    if (set->nall == set->capall) {
        set->capall = set->capall ? set->capall * 2 : 8;
        set->all = xrealloc(set->all, set->capall * sizeof *set->all);
    }
    set->all[set->nall++] = t;
    return t;
}

/*---- Set and loading ----*/

struct template_set *template_set_new(const char *partials_dir)
{
    struct template_set *set = xcalloc(1, sizeof *set);
    set->partials_dir = xstrdup(partials_dir);
    return set;
}

void template_set_free(struct template_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->nall; i++)
        template_free(set->all[i]);
    free(set->all);
    map_fini(&set->by_path);
    map_fini(&set->by_name);
    free(set->partials_dir);
    free(set);
}

/* Largest template or partial file read (a page template is kilobytes). */
#define TEMPLATE_FILE_MAX ((size_t)16 << 20)

/* Loads, from the partials folder, every partial named by the templates
 * all[first..] that the set does not know yet. Newly compiled partials are
 * appended to all[] and so are scanned in turn: a worklist, not recursion. */
static int load_partials(struct template_set *set, size_t first, struct err *err)
{
    if (!set->partials_dir)
        return 0;
    for (size_t k = first; k < set->nall; k++) {
        const struct template *t = set->all[k];
        for (size_t i = 0; i < t->nops; i++) {
            const struct template_op *op = &t->ops[i];
            if (op->type != OP_PARTIAL || map_find(&set->by_name, t->src + op->off, op->len))
                continue;
            char *path =
                xasprintf("%s/%.*s.mustache", set->partials_dir, (int)op->len, t->src + op->off);
            struct buf b = BUF_INIT;
            struct err re;
            err_clear(&re);
            if (util_read_file(path, TEMPLATE_FILE_MAX, &b, &re) < 0) {
                int e = errno;
                buf_fini(&b);
                if (e == ENOENT || e == ENOTDIR) {
                    /* A missing partial renders as empty (spec); remember it. */
                    map_put(&set->by_name, t->src + op->off, op->len, NULL);
                    free(path);
                    continue;
                }
                err_set(err, path, 0, 0, "cannot read partial: %s", re.text);
                free(path);
                return -1;
            }
            struct template *p = compile_new(set, path, b.data ? b.data : "", b.len, err);
            buf_fini(&b);
            free(path);
            if (!p)
                return -1;
            map_put(&set->by_name, t->src + op->off, op->len, p);
        }
    }
    return 0;
}

const struct template *template_set_load(struct template_set *set, const char *path,
                                         struct err *err)
{
    const struct template_map_entry *e = map_find(&set->by_path, path, strlen(path));
    if (e)
        return e->t;
    struct buf b = BUF_INIT;
    struct err re;
    err_clear(&re);
    if (util_read_file(path, TEMPLATE_FILE_MAX, &b, &re) < 0) {
        err_set(err, path, 0, 0, "cannot read template: %s", re.text);
        buf_fini(&b);
        return NULL;
    }
    size_t first = set->nall;
    struct template *t = compile_new(set, path, b.data ? b.data : "", b.len, err);
    buf_fini(&b);
    if (!t || load_partials(set, first, err) < 0)
        return NULL;
    map_put(&set->by_path, path, strlen(path), t);
    return t;
}

const struct template *template_set_add_string(struct template_set *set, const char *name,
                                               const char *src, size_t len, struct err *err)
{
    size_t first = set->nall;
    struct template *t = compile_new(set, name, src, len, err);
    if (!t)
        return NULL;
    map_put(&set->by_name, name, strlen(name), t);
    if (load_partials(set, first, err) < 0)
        return NULL;
    return t;
}

/*---- Renderer ----*/

struct render {
    struct buf *out;
    struct err *err;
    const json_t **stack; /* context stack, top at n - 1; borrowed */
    size_t n, cap;
    struct buf indent; /* indentation strings of the enclosing partials */
    size_t ind_off, ind_len;
    int depth; /* partial depth */
    /* Caps of a capped render (SIZE_MAX: none). */
    size_t start;      /* out->len when the render began */
    size_t max_output; /* bytes the render may append */
    size_t max_steps, steps;
    int too_large;     /* a cap was passed */
    /* The innermost section being iterated (or NULL), named in the error
     * when a cap is passed: that is where the output multiplies. */
    const struct template *sec_t;
    const struct template_op *sec_op;
};

/* Counts one step and checks the caps after op (of t) ran. Returns 0, or -1
 * with the error set when a cap has been passed. */
static int spend(struct render *r, const struct template *t, const struct template_op *op)
{
    r->steps++;
    size_t grown = r->out->len - r->start;
    if (grown <= r->max_output && r->steps <= r->max_steps)
        return 0;
    r->too_large = 1;
    const struct template *where_t = r->sec_t ? r->sec_t : t;
    /* Tags know where they stand; text and indentation ops start at off. */
    size_t at = r->sec_op ? r->sec_op->at
                          : (op->type == OP_TEXT || op->type == OP_INDENT) ? op->off : op->at;
    int line, col;
    position(where_t->src, at, &line, &col);
    if (grown > r->max_output)
        err_set(r->err, where_t->name, line, col, "output larger than %zu bytes", r->max_output);
    else
        err_set(r->err, where_t->name, line, col, "more than %zu steps for %zu bytes of output",
                r->max_steps, grown);
    return -1;
}

static void ctx_push(struct render *r, const json_t *v)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->stack = xrealloc(r->stack, r->cap * sizeof *r->stack);
    }
    r->stack[r->n++] = v;
}

/* json_object_getn() arrived in jansson 2.14; older ones need a C string,
 * so a name holding a NUL byte cannot match there. */
static const json_t *object_get(const json_t *obj, const char *key, size_t len)
{
#if JANSSON_VERSION_HEX >= 0x020e00
    return json_object_getn(obj, key, len);
#else
    if (memchr(key, '\0', len))
        return NULL;
    char *k = xstrndup(key, len);
    const json_t *v = json_object_get(obj, k);
    free(k);
    return v;
#endif
}

/* Resolves op's name through the context stack: the first part in the
 * nearest object that has it, the other parts inside that value only.
 * Returns a borrowed value, or NULL when the name does not resolve. */
static const json_t *lookup(const struct render *r, const struct template *t,
                            const struct template_op *op)
{
    if (op->nparts == 0)
        return r->n ? r->stack[r->n - 1] : NULL;
    const struct template_slice *part = &t->parts[op->part0];
    const json_t *v = NULL;
    for (size_t i = r->n; i-- > 0 && !v;) {
        if (json_is_object(r->stack[i]))
            v = object_get(r->stack[i], t->src + part->off, part->len);
    }
    for (size_t k = 1; k < op->nparts && v; k++) {
        part++;
        v = json_is_object(v) ? object_get(v, t->src + part->off, part->len) : NULL;
    }
    return v;
}

/* Spec truthiness over JSON: false, null, a missing name and the empty list
 * are falsey; everything else, including "" and 0, is truthy. */
static int truthy(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    return 1;
}

/* The shortest decimal digits of a (> 0) that read back as a, when that
 * decimal is m / 10^f with m below 10^15: the first f that works gives the
 * fewest digits. The check is exact: m and 10^f are exact doubles and the
 * division rounds correctly, so it yields what strtod yields for the
 * decimal; and a * 10^f is within 0.2 of that m, so rounding finds it.
 * Writes the digits of m and returns the position of the decimal point
 * (after how many digits), or returns INT_MIN when a needs more digits. */
static int short_decimal(double a, char *digits, int *k)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    for (int f = 0; f <= 15; f++) {
        double p = a * p10[f];
        if (p >= 1e15)
            break;
        uint64_t m = (uint64_t)(p + 0.5);
        if (m == 0 || (double)m / p10[f] != a)
            continue;
        char rev[20];
        int n = 0;
        for (; m; m /= 10)
            rev[n++] = (char)('0' + m % 10);
        for (int i = 0; i < n; i++)
            digits[i] = rev[n - 1 - i];
        *k = n;
        return n - f;
    }
    return INT_MIN;
}

/* Formats d in the shortest form that reads back as the same double, laid
 * out the way JavaScript's Number#toString does: 1.5, 0.1, 100, 1e+21,
 * 1.5e-7. out must hold at least 32 bytes. */
static void format_real(double d, char *out)
{
    if (d == 0) {
        strcpy(out, "0");
        return;
    }
    char digits[20];
    int k = 0, n;
    char *o = out;
    if (d < 0)
        *o++ = '-';
    n = short_decimal(d < 0 ? -d : d, digits, &k);
    if (n == INT_MIN) {
        /* Otherwise the shortest %.*e that reads back (up to 17 digits). */
        char e[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(e, sizeof e, "%.*e", prec - 1, d);
            if (prec == 17 || strtod(e, NULL) == d)
                break;
        }
        /* e is "[-]D[.DDD]e[+-]XX": collect the digits and the exponent. */
        const char *s = e;
        for (; *s && *s != 'e'; s++) {
            if (*s >= '0' && *s <= '9' && k < (int)sizeof digits)
                digits[k++] = *s;
        }
        n = (*s == 'e' ? atoi(s + 1) : 0) + 1; /* the point goes after n digits */
    }
    while (k > 1 && digits[k - 1] == '0')
        k--;
    if (k <= n && n <= 21) {
        memcpy(o, digits, (size_t)k);
        o += k;
        memset(o, '0', (size_t)(n - k));
        o += n - k;
    } else if (0 < n && n <= 21) {
        memcpy(o, digits, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        memset(o, '0', (size_t)-n);
        o += -n;
        memcpy(o, digits, (size_t)k);
        o += k;
    } else {
        *o++ = digits[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += sprintf(o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    *o = '\0';
}

static void append_escaped(struct buf *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        default:
            continue;
        }
        buf_append(out, s + run, i - run);
        buf_append_str(out, rep);
        run = i + 1;
    }
    buf_append(out, s + run, n - run);
}

/* Interpolates v: strings as they are, numbers in decimal, true and false
 * as words; null, a missing name, objects and arrays as nothing. */
static void interpolate(struct buf *out, const json_t *v, int escape)
{
    char num[64];
    const char *s = NULL;
    size_t n = 0;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
        n = strlen(num);
        break;
    case JSON_REAL:
        format_real(json_real_value(v), num);
        s = num;
        n = strlen(num);
        break;
    case JSON_TRUE:
        s = "true";
        n = 4;
        break;
    case JSON_FALSE:
        s = "false";
        n = 5;
        break;
    default:
        return;
    }
    if (escape)
        append_escaped(out, s, n);
    else
        buf_append(out, s, n);
}

static int render_ops(struct render *r, const struct template *t, size_t from, size_t to);

static int render_partial(struct render *r, const struct template *t, const struct template_op *op)
{
    const struct template_map_entry *e = map_find(&t->set->by_name, t->src + op->off, op->len);
    if (!e || !e->t)
        return 0;
    if (r->depth >= TEMPLATE_MAX_PARTIAL_DEPTH) {
        int line, col;
        position(t->src, op->at, &line, &col);
        err_set(r->err, t->name, line, col, "partial '%.*s' nested deeper than %d levels",
                quote_len(op->len), t->src + op->off, TEMPLATE_MAX_PARTIAL_DEPTH);
        return -1;
    }
    size_t saved_off = r->ind_off, saved_len = r->ind_len, saved_buf = r->indent.len;
    if (op->ind_len) {
        /* Standalone: this tag's blanks after the includer's indentation.
         * Reserve first: the includer's part is copied from the same buffer. */
        buf_reserve(&r->indent, r->ind_len + op->ind_len);
        if (r->ind_len)
            buf_append(&r->indent, r->indent.data + r->ind_off, r->ind_len);
        buf_append(&r->indent, t->src + op->ind_off, op->ind_len);
        r->ind_off = saved_buf;
        r->ind_len = r->indent.len - saved_buf;
    } else {
        r->ind_len = 0;
    }
    r->depth++;
    int rc = render_ops(r, e->t, 0, e->t->nops);
    r->depth--;
    r->ind_off = saved_off;
    r->ind_len = saved_len;
    r->indent.len = saved_buf;
    if (r->indent.data)
        r->indent.data[saved_buf] = '\0';
    return rc;
}

static int render_ops(struct render *r, const struct template *t, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        const struct template_op *op = &t->ops[i];
        switch (op->type) {
        case OP_TEXT:
            buf_append(r->out, t->src + op->off, op->len);
            break;
        case OP_INDENT:
            if (r->ind_len)
                buf_append(r->out, r->indent.data + r->ind_off, r->ind_len);
            break;
        case OP_ESCAPED:
        case OP_RAW:
            interpolate(r->out, lookup(r, t, op), op->type == OP_ESCAPED);
            break;
        case OP_SECTION: {
            const json_t *v = lookup(r, t, op);
            const struct template *saved_t = r->sec_t;
            const struct template_op *saved_op = r->sec_op;
            r->sec_t = t;
            r->sec_op = op;
            int rc = 0;
            if (json_is_array(v)) {
                for (size_t k = 0; k < json_array_size(v) && rc == 0; k++) {
                    ctx_push(r, json_array_get(v, k));
                    rc = render_ops(r, t, i + 1, op->end);
                    r->n--;
                    if (rc == 0)
                        rc = spend(r, t, op);
                }
            } else if (truthy(v)) {
                ctx_push(r, v);
                rc = render_ops(r, t, i + 1, op->end);
                r->n--;
            }
            r->sec_t = saved_t;
            r->sec_op = saved_op;
            if (rc < 0)
                return -1;
            i = op->end - 1;
            break;
        }
        case OP_INVERTED:
            if (!truthy(lookup(r, t, op)) && render_ops(r, t, i + 1, op->end) < 0)
                return -1;
            i = op->end - 1;
            break;
        case OP_PARTIAL:
            if (render_partial(r, t, op) < 0)
                return -1;
            break;
        }
        if (spend(r, t, op) < 0)
            return -1;
    }
    return 0;
}

int template_render_capped(const struct template *t, const json_t *data, size_t max_output,
                           struct buf *out, struct err *err)
{
    struct render r;
    memset(&r, 0, sizeof r);
    r.out = out;
    r.err = err;
    buf_init(&r.indent);
    if (data)
        ctx_push(&r, data);
    /* Leave out NUL-terminated even when nothing is appended. */
    buf_append(out, "", 0);
    r.start = out->len;
    r.max_output = max_output ? max_output : SIZE_MAX;
    r.max_steps = max_output && max_output <= SIZE_MAX / TEMPLATE_STEPS_PER_BYTE
                      ? max_output * TEMPLATE_STEPS_PER_BYTE
                      : SIZE_MAX;
    int rc = render_ops(&r, t, 0, t->nops);
    free(r.stack);
    buf_fini(&r.indent);
    if (rc < 0 && r.too_large)
        return TEMPLATE_TOO_LARGE;
    return rc;
}

int template_render(const struct template *t, const json_t *data, struct buf *out, struct err *err)
{
    return template_render_capped(t, data, 0, out, err);
}
