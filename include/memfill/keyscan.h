/* keyscan.h - every key on a memcached node.
 *
 * Enumeration reads memcached's `lru_crawler metadump hash` (or `all` on a
 * node without the hash walk) on a connection of its own, so the normal
 * client's connection and its per-operation deadline are never held by a
 * long dump. Each metadump line names one key, URL-encoded by memcached;
 * the key memcached holds is nginx's escaped form of the raw key
 * (doc/nginx.md §1), so both layers are undone before a caller sees the
 * raw key. Callers delete what they found through the memcached client
 * (mcclient_delete_many, pipelined), after the dump has ended. Facts and
 * costs: doc/purge-prefix.md. */
#ifndef MEMFILL_KEYSCAN_H
#define MEMFILL_KEYSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/err.h"

/* Time a dump may take per key on the node (from `stats` curr_items when
 * the dump starts), on top of memcached.timeout_ms: 50 us, i.e. a dump
 * slower than 20,000 keys/s is cut off and reported. */
#define KEYSCAN_US_PER_KEY 50
/* Longest metadump line accepted (memcached's are at most 4096 bytes). */
#define KEYSCAN_LINE_MAX 4096

/* Called for each key of the dump: esc (esclen bytes) is the key as
 * memcached holds it; raw is nginx's raw key for it, or NULL when esc is
 * not nginx's escaping of anything (a '%' not followed by two hex digits:
 * some other program's key). Both are borrowed for the call. The dump
 * cannot be stopped early: memcached's crawler holds a lock on part of
 * its hash table while the client does not read (doc/purge-prefix.md). */
typedef void (*keyscan_fn)(void *ctx, const char *esc, size_t esclen, const char *raw,
                           size_t rawlen);

/* Decodes the key of one metadump line ("key=<url-encoded> exp=...")
 * into esc (appended). Returns 0, or -1 for a line that is not one. */
int keyscan_parse_line(const char *line, size_t len, struct buf *esc);

/* Calls fn for every key on the node at address (an mcconn address).
 * Connecting takes at most connect_timeout_ms (capped by timeout_ms),
 * asking the node's item count timeout_ms, and the whole dump timeout_ms
 * plus KEYSCAN_US_PER_KEY per item; a node that sends nothing for
 * timeout_ms (at least 1 s) is cut off sooner. A node busy with another
 * crawl is asked again until that deadline. *scanned is the number of
 * keys read. Returns 0, or -1 with the reason in e. */
int keyscan_node(const char *address, unsigned timeout_ms, unsigned connect_timeout_ms,
                 keyscan_fn fn, void *ctx, uint64_t *scanned, struct err *e);

#endif
