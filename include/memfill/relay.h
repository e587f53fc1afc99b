/* relay.h - the request the relay sends an origin, built from the
 * FastCGI params alone: a pure function (no I/O, no clock, no globals),
 * so it can be unit-tested and fuzzed on its own.
 *
 * The rule (doc/security.md, "The relay: what reaches the origin"): the
 * page of a request that may be stored goes to everyone whose request has
 * the same key, so such a request sends the origin what the key describes
 * and nothing else; a request whose store is already ruled out passes the
 * client's headers through. Either way the target is the path nginx
 * routed on ($uri), re-encoded, and Host and the forwarding headers are
 * memfill's own, never the client's copies. */
#ifndef MEMFILL_RELAY_H
#define MEMFILL_RELAY_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/keypattern.h"
#include "memfill/request.h"

/* What a route relays to (all borrowed for the life of the rules). */
struct relay_rules {
    const char *origin;            /* scheme://host[:port][/base], no trailing '/' */
    const char *origin_host;       /* the route's "origin_host", or NULL */
    const struct key_pattern *key; /* cache.key: what a stored page is filed under */
};

/* The request to send. Owned by the caller: relay_request_init() once,
 * relay_build() any number of times (it empties it first),
 * relay_request_fini() when done. */
struct relay_request {
    struct buf url;      /* origin + path (+ '?' + args) */
    /* Header lines for the HTTP client (http_req.headers), each
     * NUL-terminated: "Name: value"; "Name;" sends an empty header; "Name:"
     * stops curl from adding its own. */
    struct buf lines;
    size_t nlines;
    const char *method;  /* the request's method; HEAD becomes GET (never NULL) */
    int send_body;       /* send the request body (never for GET and HEAD) */
    int passthrough;     /* the store was ruled out: client headers went through */
    int no_store;        /* the answer must not be stored ... */
    enum store_outcome no_store_reason; /* ... for this reason */
};

void relay_request_init(struct relay_request *rr);
void relay_request_fini(struct relay_request *rr);

/* Builds the origin request for req into rr; whether MEMC_KEY matches
 * cache.key (rules->key) is read from req (request_key() must have run
 * with the same pattern, or a request with MEMC_KEY is never stored).
 * Returns 0, or -1 when req
 * has no path that can be relayed (rr is then empty). Never fails
 * otherwise; bytes no URL may hold are percent-encoded, header values
 * holding CR or LF are left out. */
int relay_build(const struct relay_rules *rules, const struct request *req,
                struct relay_request *rr);

/* Appends s (n bytes) to out with the bytes that must not appear raw in a
 * URL path percent-encoded: controls, space, DEL, bytes >= 0x80 and
 * " # % < > ? \ ^ ` { | } (upper-case hex). The mapping is one-to-one, and
 * decoding the result gives s back. */
void relay_encode_path(const char *s, size_t n, struct buf *out);

#endif
