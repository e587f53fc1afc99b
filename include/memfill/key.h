/* key.h - the memcached key nginx reads: nginx variables evaluated from
 * FastCGI params, escaping exactly as nginx's memcached module escapes, and
 * the 250-byte limit.
 *
 * Facts: NGINX-COMPAT §5.1-§5.3 (verified on nginx 1.22). The node is
 * chosen by hashing the RAW key; the item is stored under the ESCAPED key. */
#ifndef MEMFILL_KEY_H
#define MEMFILL_KEY_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/err.h"

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

/* Returns 1 when nginx can read raw back from memcached: the key is not
 * empty (nginx answers 500) and its escaped form is at most
 * KEY_MAX_ESCAPED bytes (memcached refuses longer keys and nginx answers
 * 502, marking the node failed). Returns 0 otherwise. */
int key_is_storable(const char *raw, size_t len);

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

/* Looks up a FastCGI param by name (e.g. "REQUEST_URI"). Returns a borrowed
 * NUL-terminated value, or NULL when the param is absent. */
typedef const char *(*key_param_fn)(void *ctx, const char *name);

/* A compiled key pattern in nginx variable syntax: literal text mixed with
 * $uri, $document_uri, $request_uri, $args, $query_string, $is_args,
 * $arg_NAME, $host, $http_host, $scheme, $http_NAME, $cookie_NAME,
 * $server_name, $server_port, $request_method, also written ${name}. */
struct key_pattern;

/* Compiles pattern (NUL-terminated; NULL counts as empty). Returns a new
 * pattern (free with key_pattern_free(), which accepts NULL), or NULL with
 * err set (source "", line 0, column = 1-based byte offset of the '$' in
 * the pattern, 1 for an empty one) for an unknown variable, an
 * unterminated ${, a "$" with no name, a regex capture ($1..$9), or an
 * empty pattern. */
struct key_pattern *key_pattern_compile(const char *pattern, struct err *err);
void key_pattern_free(struct key_pattern *p);
/* Returns the pattern text as given to key_pattern_compile (borrowed). */
const char *key_pattern_text(const struct key_pattern *p);
/* Evaluates p from the request's params (via get) and appends the RAW key
 * to out. Values are derived the way nginx derives them (see struct
 * key_part in key.c for the param each variable comes from): $uri and
 * $document_uri are DOCUMENT_URI, else key_normalize_uri(REQUEST_URI);
 * $args and $query_string are QUERY_STRING, else the part of REQUEST_URI
 * after '?'; $arg_NAME is not decoded. Variable names are case-insensitive,
 * as in nginx. Never fails; a missing param gives an empty value, as nginx
 * gives an empty variable. */
void key_pattern_eval(const struct key_pattern *p, key_param_fn get, void *ctx, struct buf *out);

#endif
