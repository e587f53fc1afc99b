/* datacache.h - a worker's parsed JSON data files, kept within a memory
 * budget.
 *
 * A template route's data file is parsed once and reused while stat()
 * shows the same file (device, inode, size, mtime and ctime). Every
 * document is charged what it costs in memory once parsed (see
 * datacache_parse); the cache keeps the most recently used documents whose
 * charges add up to at most its budget, evicts the least recently used
 * beyond it, and never keeps one that alone costs more than the budget (the
 * caller then parses that file for every request). Lookups are by path
 * through a hash table. One cache per worker process, filled after fork:
 * it is never shared. No I/O here: the caller stats and reads the file. */
#ifndef MEMFILL_DATACACHE_H
#define MEMFILL_DATACACHE_H

#include <jansson.h>
#include <stddef.h>
#include <sys/stat.h>

struct datacache;

/* Returns a new, empty cache that keeps at most budget bytes of charges
 * (0: keeps nothing). Free with datacache_free(). */
struct datacache *datacache_new(size_t budget);
/* Frees the cache and drops its references; c may be NULL. */
void datacache_free(struct datacache *c);
/* Changes the budget, evicting at once what no longer fits. */
void datacache_set_budget(struct datacache *c, size_t budget);

/* Parses len bytes of JSON text (duplicate keys rejected, as a data file
 * is read) and sets *cost to what the document takes in memory: the heap's
 * growth during the parse where the C library can tell (glibc's
 * mallinfo2), else DATACACHE_COST_FACTOR times len; never less than len.
 * Returns the document (a new reference), or NULL with je set. */
json_t *datacache_parse(const char *text, size_t len, json_error_t *je, size_t *cost);
/* The charge assumed per byte of JSON text where the heap cannot be
 * measured: jansson takes about 1x for long strings, 6x for lists of
 * numbers, 10-15x for records of short strings (measured on 1 MB files). */
#define DATACACHE_COST_FACTOR 12

/* Returns a new reference to the document cached for path if st still
 * describes the file it was read from (and marks it most recently used),
 * else NULL. */
json_t *datacache_get(struct datacache *c, const char *path, const struct stat *st);
/* Keeps data (a new reference is taken) for path as st describes it,
 * charged cost plus the entry's own size, replacing an older entry for
 * path, then evicts the least recently used entries beyond the budget.
 * Returns 1 when kept, 0 when the charge alone is above the budget. */
int datacache_put(struct datacache *c, const char *path, const struct stat *st, json_t *data,
                  size_t cost);

/* Sum of the charges of the entries kept, and how many there are. */
size_t datacache_used(const struct datacache *c);
size_t datacache_count(const struct datacache *c);

#endif
