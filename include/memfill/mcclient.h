/* mcclient.h - writes pages to one named memcached node at a time.
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

#include "memfill/conf.h"

enum mcc_result {
    MCC_OK = 0,
    MCC_NOT_STORED, /* add: the key exists; get/delete: not found */
    MCC_TOO_LARGE,  /* the server refused the value's size */
    MCC_BAD_KEY,
    MCC_TIMEOUT,
    MCC_CONNECTION,
    MCC_SERVER_ERROR,
};

struct mcclient;

/* Prepares handles for cfg's nodes (borrowed: cfg must outlive the
 * writer); nothing connects until first use. Returns a new writer; free
 * with mcclient_free(). */
struct mcclient *mcclient_new(const struct config *cfg);
void mcclient_free(struct mcclient *w);

/* Stores value under key (already escaped: 1 to 250 bytes, none at or
 * below 0x20, else MCC_BAD_KEY, here and in every call below) on node.
 * exptime is seconds from now; values above 30 days are converted to an
 * absolute Unix time, as memcached requires. */
enum mcc_result mcclient_set(struct mcclient *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime);
/* Like mcclient_set with memcached's add (MCC_NOT_STORED when present). */
enum mcc_result mcclient_add(struct mcclient *w, size_t node, const char *key, size_t klen,
                             const void *value, size_t vlen, uint32_t flags, unsigned exptime);
/* Deletes key on node (MCC_NOT_STORED when it was not there). */
enum mcc_result mcclient_delete(struct mcclient *w, size_t node, const char *key, size_t klen);
/* Reads key on node into a new malloc'd value (*out, *outlen; free with
 * free()). MCC_NOT_STORED when absent. */
enum mcc_result mcclient_get(struct mcclient *w, size_t node, const char *key, size_t klen,
                             char **out, size_t *outlen, uint32_t *flags);
/* Appends value to key on node (for the tag index); MCC_NOT_STORED when
 * the key does not exist. */
enum mcc_result mcclient_append(struct mcclient *w, size_t node, const char *key, size_t klen,
                                const void *value, size_t vlen);

/* Sends cmd (one line without "\r\n", e.g. "stats items") to node and
 * hands each reply line before "END" to each(ctx, line, len); each
 * returning non-zero stops reading (the connection is then closed). The
 * whole listing is one operation, within memcached.timeout_ms: for short
 * listings (stats); a node's keys are read by keyscan. MCC_SERVER_ERROR
 * on an error reply. */
enum mcc_result mcclient_lines(struct mcclient *w, size_t node, const char *cmd,
                               int (*each)(void *ctx, const char *line, size_t len), void *ctx);
/* Deletes the n keys keys[i] (escaped, lens[i] bytes) on node, sending
 * them pipelined in groups; *deleted and *missing (either may be NULL)
 * get how many were deleted and how many were not there. Stops at the
 * first failure (MCC_BAD_KEY for an invalid key, else the transport or
 * server error). */
enum mcc_result mcclient_delete_many(struct mcclient *w, size_t node, const char *const *keys,
                                     const size_t *lens, size_t n, size_t *deleted,
                                     size_t *missing);

/* Largest value (bytes) node accepts for a key of klen bytes: from
 * cache.max_item when set, else from the node's `stats settings`
 * item_size_max, which is read once per connection, as part of the first
 * operation on it and within that operation's deadline; 0 while not known
 * (no connection made yet). Never waits on the node. mcclient_set and
 * mcclient_add answer MCC_TOO_LARGE, without sending, for a value above
 * the limit learned when they connected. */
size_t mcclient_item_limit(struct mcclient *w, size_t node, size_t klen, uint32_t flags);

const char *mcclient_result_name(enum mcc_result r);
/* The address text of the node as configured. */
const char *mcclient_node_address(const struct mcclient *w, size_t node);
/* The config the client was made for (borrowed). */
const struct config *mcclient_config(const struct mcclient *w);

#endif
