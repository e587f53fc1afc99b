/* urinorm.h - nginx's $uri: the request target decoded and normalised as
 * nginx 1.22 does it (doc/nginx.md §3). */
#ifndef MEMFILL_URINORM_H
#define MEMFILL_URINORM_H

#include <stddef.h>

#include "memfill/buf.h"

/* nginx's $uri from a request target as nginx's $request_uri holds it
 * (REQUEST_URI): "/path", "/path?args" or "/path#frag"; the path ends at
 * the first raw '?' or '#'. Decodes %XX (either case), merges slashes and
 * removes "." and ".." segments after decoding (so %2F is a '/' and
 * %2E%2E a ".."), keeps '+' and a decoded '%', '#' or '?' as data. An
 * empty target or one starting with '?' gives "/". Appends the result to
 * out and returns 0. Returns -1, with out unchanged, where nginx 1.22
 * answers 400: a decoded NUL, a '%' not followed by two hex digits, ".."
 * above the root, a target not starting with '/' or '?', or a raw control
 * byte, space or DEL anywhere in the target (query included), which
 * nginx's request-line parser refuses. */
int key_normalize_uri(const char *path, size_t len, struct buf *out);

#endif
