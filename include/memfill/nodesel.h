/* nodesel.h - picks the memcached node nginx reads a key from.
 *
 * Built once from the configured node list; byte-exact with nginx 1.22 for
 * the three setups in doc/nginx.md §5-§7:
 *   NODESEL_CONSISTENT     upstream { hash $key consistent; }  (CRC-32 ketama,
 *                          160 points per weight unit, from the server text)
 *   NODESEL_HASH           upstream { hash $key; }  (accumulating CRC-32
 *                          modulo the total weight)
 *   NODESEL_UPSTREAM_LIST  set-misc set_hashed_upstream over upstream_list
 *                          (h31lc, 32-bit, buckets repeated by weight)
 * The hash is always taken over the RAW key. */
#ifndef MEMFILL_NODESEL_H
#define MEMFILL_NODESEL_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/nodedist.h"

/* Sanity bounds checked by nodesel_new(); nginx has none, but a ring of
 * 160 points per weight unit must stay small enough to build at startup. */
#define NODESEL_WEIGHT_MAX 100
#define NODESEL_SERVERS_MAX 1024

/* One configured node. address is the text exactly as in nginx's `server`
 * line ("127.0.0.1:11211", "localhost:11211", "unix:/run/mc.sock",
 * "[::1]:11211"); weight from 1 to NODESEL_WEIGHT_MAX (for UPSTREAM_LIST
 * the W of a "W:name" list item); name is the upstream name (required for
 * NODESEL_UPSTREAM_LIST, where the servers are the list items in order;
 * may be NULL otherwise). */
struct nodesel_server {
    const char *address;
    unsigned weight;
    const char *name;
};

struct nodesel;

/* Builds a selector over n servers (the strings are copied). Resolves each
 * address once with getaddrinfo() (numeric host:port forms, as nginx's
 * $upstream_addr shows them; port 80 when the text has none, as in nginx)
 * so that MEMC_BACKEND can be matched; a name that does not resolve is not
 * an error (it is matched by its text only). Returns a new selector (free
 * with nodesel_free(), which accepts NULL), or NULL with err set (no
 * position) when n == 0 or above NODESEL_SERVERS_MAX, a weight is out of
 * range, an address is empty or malformed (a space, control byte or ',';
 * "unix:" with no path; a ':' not followed by a port from 1 to 65535; no
 * host), or a name is missing for UPSTREAM_LIST. */
struct nodesel *nodesel_new(enum nodesel_dist dist, const struct nodesel_server *servers,
                            size_t n, struct err *err);
void nodesel_free(struct nodesel *ns);

size_t nodesel_count(const struct nodesel *ns);
enum nodesel_dist nodesel_distribution(const struct nodesel *ns);
/* Parses "consistent", "hash" or "upstream_list" (exact, NULL allowed);
 * returns 0 or -1. */
int nodesel_parse_dist(const char *s, enum nodesel_dist *out);
/* The name nodesel_parse_dist() accepts, or "unknown" (static strings). */
const char *nodesel_dist_name(enum nodesel_dist d);

/* Index of the node nginx reads key (len raw bytes, any values) from. An
 * empty key gives -1 for CONSISTENT and HASH (nginx never hashes it: it
 * answers 500), and bucket 0 for UPSTREAM_LIST (set-misc's behaviour).
 * Otherwise, with a single node the answer is 0 whatever the key. */
int nodesel_pick(const struct nodesel *ns, const char *key, size_t len);

/* Maps a MEMC_BACKEND value to a node index, or -1 when it names no
 * configured node. Accepts nginx's $upstream_addr ("host:port", "[v6]:port",
 * "unix:/path"; in a comma-separated list the LAST entry counts; spaces
 * around entries are ignored), compared with each server's address text and
 * its resolved forms, or an upstream name (case-insensitive, as memc_pass
 * looks names up). */
int nodesel_find_backend(const struct nodesel *ns, const char *value, size_t len);

/* The i-th server as configured (borrowed, valid until nodesel_free), or
 * NULL when i >= nodesel_count(). */
const struct nodesel_server *nodesel_server(const struct nodesel *ns, size_t i);

/* For tests and tools (memfillctl): the pieces of the consistent ring. */

/* Appends the bytes nginx's chash hashes for a server text: host, one NUL
 * byte, port. "unix:" + path (any case) gives (path, ""); otherwise, when
 * the text ends in decimal digits preceded by ':', host is the text before
 * that ':' and port the digits ("[::1]:11211" -> "[::1]", "11211");
 * otherwise host is the whole text and port is "". */
void nodesel_chash_base(const char *address, size_t len, struct buf *out);
/* Number of points on the ring (after collapsing equal hashes); 0 unless
 * the distribution is NODESEL_CONSISTENT. */
size_t nodesel_ring_size(const struct nodesel *ns);
/* Stores the i-th point (ascending hash order) in *hash and its server
 * index in *server; returns 0, or -1 when i >= nodesel_ring_size(). When
 * two servers produce the same hash, the one listed first keeps it. */
int nodesel_ring_point(const struct nodesel *ns, size_t i, uint32_t *hash, size_t *server);

#endif
