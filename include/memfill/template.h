/* template.h - Mustache templates compiled once, rendered over JSON data.
 *
 * Supports the Mustache spec's core modules: interpolation ({{x}} HTML
 * escaped, {{{x}}} and {{&x}} raw), dotted names, the implicit iterator
 * {{.}}, sections over lists, objects and truthy values, inverted sections,
 * comments, partials with standalone indentation, set delimiters, and the
 * standalone-line whitespace rules. Rendering never does I/O: partials are
 * loaded and compiled when the template that names them is compiled. */
#ifndef MEMFILL_TEMPLATE_H
#define MEMFILL_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/err.h"

struct template;
/* A set of compiled templates sharing one partials folder. */
struct template_set;

/* Returns a new, empty set (free with template_set_free()). Partials named
 * {{>name}} are read from partials_dir/name.mustache; partials_dir may be
 * NULL (then every partial renders as empty, as the spec says for a
 * missing one). */
struct template_set *template_set_new(const char *partials_dir);
void template_set_free(struct template_set *set);

/* Reads and compiles the template file at path (and, recursively, every
 * partial it names). Returns a borrowed pointer valid until the set is
 * freed, or NULL with err set ("file:line:col: message") on a read or
 * syntax error. Loading the same path twice returns the same template. */
const struct template *template_set_load(struct template_set *set, const char *path,
                                         struct err *err);
/* Compiles src (len bytes) under the given name (used in error messages
 * and as a partial name). Same ownership and errors as template_set_load. */
const struct template *template_set_add_string(struct template_set *set, const char *name,
                                               const char *src, size_t len, struct err *err);

/* Renders t over data (any JSON value; NULL means an empty object) and
 * appends to out. Returns 0, or -1 with err set when partial recursion is
 * deeper than 64 levels. */
int template_render(const struct template *t, const json_t *data, struct buf *out,
                    struct err *err);

#endif
