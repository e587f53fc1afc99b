/* jsonpos.h - source positions of the values in a JSON text.
 *
 * jansson gives positions for syntax errors only; a config loader also
 * needs "file:line:col" for a value of the wrong type or an unknown key.
 * This index maps a path such as "memcached.servers[1].weight" to the line
 * and column (1-based, columns in characters as jansson counts them) of the
 * member's key and of its value. */
#ifndef MEMFILL_JSONPOS_H
#define MEMFILL_JSONPOS_H

#include <stddef.h>

struct jsonpos;

/* Indexes text (len bytes), which should already have been accepted by a
 * JSON parser; on malformed text the index simply stops early. Returns a
 * new index; free with jsonpos_free(). */
struct jsonpos *jsonpos_new(const char *text, size_t len);
void jsonpos_free(struct jsonpos *jp);

/* Position of the value at path ("" is the root). Returns 0 and fills line
 * and col, or -1 when the path is not in the index. */
int jsonpos_value(const struct jsonpos *jp, const char *path, int *line, int *col);
/* Position of the key naming the member at path (the opening quote); for
 * array elements and the root, the value's position. */
int jsonpos_key(const struct jsonpos *jp, const char *path, int *line, int *col);

#endif
