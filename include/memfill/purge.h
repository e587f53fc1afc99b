/* purge.h - deleting pages by key, URI or tag, and the per-node tag index.
 *
 * Tags: a stored page's tags (from its route and the origin's
 * X-Memfill-Tags header) are indexed on the page's own node under the key
 * "memfill:tag:TAG", whose value is the space-separated list of escaped
 * page keys on that node. Purging a tag walks every node, deletes the
 * listed pages there, then the index. Used by the worker (PURGE requests)
 * and by memfillctl purge. */
#ifndef MEMFILL_PURGE_H
#define MEMFILL_PURGE_H

#include <stddef.h>

#include "memfill/mcclient.h"
#include "memfill/nodesel.h"

#define PURGE_TAG_PREFIX "memfill:tag:"
#define PURGE_TAG_MAX 100

/* Returns 1 when tag (len bytes) is a valid tag: 1-100 bytes of
 * [A-Za-z0-9_.:-]. */
int purge_tag_valid(const char *tag, size_t len);

/* Deletes the page with raw key raw (len bytes) on the node nginx reads it
 * from. Returns 1 when an item was deleted, 0 when there was none, -1 on a
 * memcached error or a key nginx can never read. */
int purge_key(struct mcclient *mc, const struct nodesel *sel, const char *raw, size_t len);

/* Deletes every page indexed under tag on each of the nnodes nodes, then
 * the index itself. Returns the number of pages deleted, or -1 when a node
 * failed (the others are still purged). */
long purge_tag(struct mcclient *mc, size_t nnodes, const char *tag, size_t len);

/* Adds esc_key to the index of each tag in tags (space- or comma-separated)
 * on node. Invalid tags are skipped. Returns the number of tags indexed. */
int purge_index_tags(struct mcclient *mc, size_t node, const char *esc_key, size_t klen,
                     const char *tags, size_t tlen);

#endif
