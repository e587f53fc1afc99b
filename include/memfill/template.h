/* template.h - Mustache templates compiled once, rendered over JSON data.
 *
 * Supports the Mustache spec's core modules: interpolation ({{x}} HTML
 * escaped, {{{x}}} and {{&x}} raw), dotted names, the implicit iterator
 * {{.}}, sections over lists, objects and truthy values, inverted sections,
 * comments, partials with standalone indentation, set delimiters, and the
 * standalone-line whitespace rules. Rendering never does I/O: partials are
 * loaded and compiled when the template that names them is compiled.
 *
 * Where the spec leaves the choice to the host language, JSON values behave
 * like this: false, null, a missing name and [] are falsey; "", 0 and {} are
 * truthy. {{x}} escapes & < > and " only (as the spec's tests); strings print
 * as they are, integers in decimal, reals in the shortest form that reads
 * back as the same double, laid out as JavaScript does (1.5, 0.1, 1, 1e+21),
 * true and false as words, and null, objects and arrays as nothing.
 * Templates and values may hold NUL bytes. Limits: sections nest at most 100
 * deep in one template (compile error), partials at most 64 deep (render
 * error); a capped render bounds the output and the work. */
#ifndef MEMFILL_TEMPLATE_H
#define MEMFILL_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/err.h"

struct template;
/* A set of compiled templates sharing one partials folder. */
struct template_set;

/* Returns a new, empty set (free with template_set_free()); partials_dir is
 * copied. Partials named {{>name}} are read from partials_dir/name.mustache
 * (name may hold '/' but no ".." part and no leading '/'); partials_dir may
 * be NULL (then only templates added by name are found). A partial that is
 * neither added by name nor a file renders as empty, as the spec says. */
struct template_set *template_set_new(const char *partials_dir);
/* Frees the set and every template in it; set may be NULL. */
void template_set_free(struct template_set *set);

/* Reads and compiles the template file at path (and, recursively, every
 * partial it names). Returns a borrowed pointer valid until the set is
 * freed, or NULL with err set ("file:line:col: message") on a read or
 * syntax error, in the template or in a partial file (err then names that
 * file); a partial file that does not exist is not an error. Each partial
 * file is read once per set. Loading the same path twice returns the same
 * template. err may be NULL. */
const struct template *template_set_load(struct template_set *set, const char *path,
                                         struct err *err);
/* Compiles src (len bytes, NUL bytes allowed) under the given name (used in
 * error messages and as a partial name: every {{>name}} in the set, compiled
 * before or after, finds it when rendering; adding a name again makes it
 * name the new template).
 * Partials it names are loaded from the partials folder as in
 * template_set_load. Same ownership and errors as template_set_load. */
const struct template *template_set_add_string(struct template_set *set, const char *name,
                                               const char *src, size_t len, struct err *err);

/* Renders t over data (any JSON value, borrowed; NULL means an empty
 * object) and appends to out, which stays NUL-terminated. Returns 0, or -1
 * with err set ("file:line:col" of the partial tag) when partials nest more
 * than 64 deep; out then holds a partial result. */
int template_render(const struct template *t, const json_t *data, struct buf *out,
                    struct err *err);

/* template_render_capped's answer when a cap was passed. */
#define TEMPLATE_TOO_LARGE (-2)

/* Like template_render, but stops as soon as the output has grown by more
 * than max_output bytes, or the render has taken more than 8 steps (ops
 * run and section iterations) per byte of max_output, so nested sections
 * over long lists cannot build a huge page or loop for ever. Returns 0;
 * TEMPLATE_TOO_LARGE with err set ("file:line:col" of the innermost section
 * being iterated, "output larger than N bytes" or "more than N steps...")
 * when a cap was passed, out then holding at most max_output bytes plus
 * one op's text or one value; or -1 as template_render. max_output 0 means
 * no cap (template_render). */
int template_render_capped(const struct template *t, const json_t *data, size_t max_output,
                           struct buf *out, struct err *err);

#endif
