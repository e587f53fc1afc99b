/* purge.h - deleting pages by key, URI or tag, and the per-node tag index.
 *
 * Tags: a stored page's tags (from its route and the origin's
 * X-Memfill-Tags header) are indexed on the page's own node by one marker
 * item per (tag, page), stored right after the page with the page's TTL:
 * "memfill:t:TAG=KEY" (empty value), or "memfill:t:TAG#HASH" with KEY as
 * its value when the first form would pass memcached's 250-byte key limit.
 * A re-store overwrites the same marker, and a marker expires with its
 * page, so the index holds one entry per live page. Purging a tag lists
 * every node's keys (`lru_crawler metadump hash`), deletes the tag's
 * markers, then their pages, and reports whether it may have missed pages
 * (a node failed, or a node evicted items of the size markers have).
 * Why this design and what it costs: doc/purge.md. Used by the worker
 * (indexing, PURGE requests) and by memfillctl purge. */
#ifndef MEMFILL_PURGE_H
#define MEMFILL_PURGE_H

#include <stddef.h>

#include "memfill/mcclient.h"
#include "memfill/nodesel.h"

#define PURGE_MARK_PREFIX "memfill:t:"
#define PURGE_TAG_MAX 100
/* Markers one purge collects per node; past this the purge stops listing
 * and says it is incomplete (purging again takes the rest). */
#define PURGE_SCAN_MAX 1000000u

/* Returns 1 when tag (len bytes) is a valid tag: 1-100 bytes of
 * [A-Za-z0-9_.:-]. */
int purge_tag_valid(const char *tag, size_t len);

/* Deletes the page with raw key raw (len bytes) on the node nginx reads it
 * from. Returns 1 when an item was deleted, 0 when there was none, -1 on a
 * memcached error or a key nginx can never read. */
int purge_key(struct mcclient *mc, const struct nodesel *sel, const char *raw, size_t len);

/* What a tag purge did. Complete (purge_report_complete) only when every
 * node was listed and purged and none of them has evicted items of a
 * marker's size since it started. */
struct purge_report {
    long purged;            /* pages deleted */
    long entries;           /* index entries (markers) found */
    unsigned long evicted;  /* items the nodes evicted from marker-sized slab classes */
    int truncated;          /* a node had more than PURGE_SCAN_MAX markers */
    size_t nnodes;
    unsigned char *failed;  /* failed[i]: node i could not be listed or purged */
    size_t nfailed;
};

void purge_report_init(struct purge_report *rep, size_t nnodes);
void purge_report_fini(struct purge_report *rep);
int purge_report_complete(const struct purge_report *rep);
/* Appends why rep is not complete ("node 127.0.0.1:11211 failed; ...") to
 * out, or nothing when it is. */
void purge_report_why(const struct purge_report *rep, struct mcclient *mc, struct buf *out);

/* Deletes every page indexed under tag on each node of mc (rep->nnodes,
 * set by purge_report_init), and their markers, adding to rep. Returns 0,
 * or -1 for an invalid tag (nothing done). */
int purge_tag(struct mcclient *mc, const char *tag, size_t len, struct purge_report *rep);

/* Indexes the page esc_key (klen bytes), just stored on node with ttl
 * seconds to live, under each tag in tags (space- or comma-separated;
 * invalid tags are skipped). When a marker cannot be written the page is
 * deleted again, so no page lives that a purge of its tags would miss, and
 * a line is logged (rate-limited). Returns the number of tags that could
 * not be indexed (0 when all were). */
int purge_index_tags(struct mcclient *mc, size_t node, const char *esc_key, size_t klen,
                     const char *tags, size_t tlen, unsigned ttl);

/* The marker key of (tag, esc_key) into out (reset first); returns 1 when
 * it is the hashed form, whose value must be esc_key. For tests. */
int purge_marker_key(struct buf *out, const char *tag, size_t tlen, const char *esc_key,
                     size_t klen);

#endif
