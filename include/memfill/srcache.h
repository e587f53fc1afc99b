/* srcache.h - pages stored whole (status line, headers, body) in the
 * format srcache_fetch reads, for routes with "srcache": true.
 *
 * Facts (doc/nginx.md §13-§14, verified on nginx 1.22 + srcache 0.33):
 * srcache_store writes "HTTP/1.1 200 OK\r\n", then Content-Type, then
 * Last-Modified, then every other header in order except the hop-by-hop
 * ones and Set-Cookie, never Content-Length, Date or Server, then an empty
 * line and the body exactly as sent. srcache_fetch serves such an item with
 * its status and headers; an item carrying Content-Length breaks the
 * response, so it is never written. By default srcache_store keeps only
 * the statuses 200, 301, 302, 307 and 308 (srcache_store_statuses). Pure
 * functions: no I/O, no logging. */
#ifndef MEMFILL_SRCACHE_H
#define MEMFILL_SRCACHE_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/request.h"

/* Returns 1 for the statuses srcache_store keeps by default (200, 301,
 * 302, 307, 308), else 0. */
int srcache_status_storable(int status);

/* Appends resp in srcache's format to out: "HTTP/1.1 <status> <reason>"
 * (nginx's reason phrase; the bare number when there is none),
 * Content-Type (text/html when resp has none), Last-Modified when present,
 * the other headers of resp->headers in order except Connection,
 * Keep-Alive, Proxy-Authenticate, Proxy-Authorization, TE, Trailer(s),
 * Transfer-Encoding, Upgrade, Set-Cookie, Content-Length, Date, Server,
 * Status and X-Memfill-Store, then an empty line and the body. */
void srcache_encode(const struct response *resp, struct buf *out);

/* The reverse, for serving an item memfill stored: fills resp (reset
 * first) with the status, Content-Type, the other headers (Content-Length
 * dropped) and the body. Accepts "\r\n" or bare "\n" line ends. Returns 0,
 * or -1 when v does not start with "HTTP/1.x NNN" or has no empty line
 * (a plain body: the memcached_pass format). */
int srcache_decode(const char *v, size_t len, struct response *resp);

#endif
