/* mcwriter.h - writes pages to one named memcached node at a time.
 *
 * One connection per configured node (mcconn), opened lazily after fork in
 * the process that uses it and reused. There is no distribution and no
 * failed-server ejection: the node is chosen by nodesel, the way nginx
 * chooses it, and a write goes to exactly that node or nowhere. Every
 * operation ends within memcached.timeout_ms, connecting included (connect
 * also stops at memcached.connect_timeout_ms when that is shorter), however
 * slowly the node answers; after a timeout, an I/O error or an unexpected
 * reply the node's connection is closed, so a late reply can never be read
 * as the answer to the next command. */
#ifndef MEMFILL_MCWRITER_H
#define MEMFILL_MCWRITER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "memfill/config.h"

enum mcw_result {
    MCW_OK = 0,
    MCW_NOT_STORED, /* add: the key exists; get/delete: not found */
    MCW_TOO_LARGE,  /* the server refused the value's size */
    MCW_BAD_KEY,
    MCW_TIMEOUT,
    MCW_CONNECTION,
    MCW_SERVER_ERROR,
};

struct mcwriter;

/* Prepares handles for cfg's nodes (borrowed: cfg must outlive the
 * writer); nothing connects until first use. Returns a new writer; free
 * with mcwriter_free(). */
struct mcwriter *mcwriter_new(const struct config *cfg);
void mcwriter_free(struct mcwriter *w);

/* Stores value under key (already escaped: 1 to 250 bytes, none at or
 * below 0x20, else MCW_BAD_KEY, here and in every call below) on node.
 * exptime is seconds from now; values above 30 days are converted to an
 * absolute Unix time, as memcached requires. */
enum mcw_result mcwriter_set(struct mcwriter *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime);
/* Like mcwriter_set with memcached's add (MCW_NOT_STORED when present). */
enum mcw_result mcwriter_add(struct mcwriter *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime);
/* Deletes key on node (MCW_NOT_STORED when it was not there). */
enum mcw_result mcwriter_delete(struct mcwriter *w, size_t node, const char *key, size_t klen);
/* Reads key on node into a new malloc'd value (*out, *outlen; free with
 * free()). MCW_NOT_STORED when absent. */
enum mcw_result mcwriter_get(struct mcwriter *w, size_t node, const char *key, size_t klen,
                             char **out, size_t *outlen, uint32_t *flags);
/* Appends value to key on node (for the tag index); MCW_NOT_STORED when
 * the key does not exist. */
enum mcw_result mcwriter_append(struct mcwriter *w, size_t node, const char *key, size_t klen,
                                const void *value, size_t vlen);

/* Largest value (bytes) node accepts for a key of klen bytes: from
 * cache.max_item when set, else from the node's `stats settings`
 * item_size_max, which is read once per connection, as part of the first
 * operation on it and within that operation's deadline; 0 while not known
 * (no connection made yet). Never waits on the node. mcwriter_set and
 * mcwriter_add answer MCW_TOO_LARGE, without sending, for a value above
 * the limit learned when they connected. */
size_t mcwriter_item_limit(struct mcwriter *w, size_t node, size_t klen, uint32_t flags);

const char *mcwriter_result_name(enum mcw_result r);
/* The address text of the node as configured. */
const char *mcwriter_node_address(const struct mcwriter *w, size_t node);

#endif
