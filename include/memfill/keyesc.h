/* keyesc.h - the memcached key as nginx's memcached module escapes it,
 * and the 250-byte limit.
 *
 * Facts: doc/nginx.md §1-§2 (verified on nginx 1.22). The node is chosen
 * by hashing the RAW key; the item is stored under the ESCAPED key. */
#ifndef MEMFILL_KEYESC_H
#define MEMFILL_KEYESC_H

#include <stddef.h>

#include "memfill/buf.h"

/* Longest key memcached (and so nginx) accepts, counted after escaping. */
#define KEY_MAX_ESCAPED 250

/* Appends memc_escape(raw) to out: each byte <= 0x20 and '%' becomes '%'
 * and two upper-case hex digits; every other byte is copied unchanged. */
void key_escape(const char *raw, size_t len, struct buf *out);
/* Length key_escape would produce, without building it. */
size_t key_escaped_len(const char *raw, size_t len);
/* Reverses key_escape: appends the raw key to out. Returns 0, or -1 (out
 * unchanged) when a '%' is not followed by two hex digits (either case). */
int key_unescape(const char *escaped, size_t len, struct buf *out);

#endif
