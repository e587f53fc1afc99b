/* keypattern.h - key patterns (cache.key): nginx variables evaluated from
 * FastCGI params into the RAW memcached key (doc/nginx.md §3-§4, verified
 * on nginx 1.22). */
#ifndef MEMFILL_KEYPATTERN_H
#define MEMFILL_KEYPATTERN_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/err.h"

/* Looks up a FastCGI param by name (e.g. "REQUEST_URI"). Returns a borrowed
 * NUL-terminated value, or NULL when the param is absent. */
typedef const char *(*key_param_fn)(void *ctx, const char *name);
/* Appends every instance of param name to out, joined with sep (a header
 * sent several times arrives as several params). Returns how many there
 * were. */
typedef size_t (*key_param_all_fn)(void *ctx, const char *name, const char *sep,
                                   struct buf *out);

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
 * key_part in keypattern.c for the param each variable comes from): $uri and
 * $document_uri are DOCUMENT_URI, else key_normalize_uri(REQUEST_URI);
 * $args and $query_string are QUERY_STRING, else the part of REQUEST_URI
 * after '?'; $arg_NAME is not decoded. Variable names are case-insensitive,
 * as in nginx. Never fails; a missing param gives an empty value, as nginx
 * gives an empty variable. */
void key_pattern_eval(const struct key_pattern *p, key_param_fn get, void *ctx, struct buf *out);
/* Same, reading headers sent several times as nginx 1.22 does (get_all
 * gives every instance; NULL means each param has one): $http_cookie joins
 * the Cookie lines with "; ", $http_x_forwarded_for the X-Forwarded-For
 * lines with ", ", $cookie_NAME searches every Cookie line, and any other
 * $http_NAME is the first instance. */
void key_pattern_eval_all(const struct key_pattern *p, key_param_fn get, key_param_all_fn get_all,
                          void *ctx, struct buf *out);

/* Appends the value $http_NAME takes in a key for the header param
 * "HTTP_NAME", read as key_pattern_eval_all() reads it (get_all may be
 * NULL). */
void key_param_value(key_param_fn get, key_param_all_fn get_all, void *ctx, const char *param,
                     struct buf *out);

/* nginx's $host: MEMFILL_HOST when nginx passed it (the generated config
 * does), else HTTP_HOST without its port and one trailing dot, lower-cased,
 * as ngx_http_validate_host() leaves it, else SERVER_NAME lower-cased.
 * Appends it to out. (Only MEMFILL_HOST is right for an absolute request
 * target, "GET http://a/ HTTP/1.1" with "Host: b": nginx's $host is "a".) */
void key_host(key_param_fn get, void *ctx, struct buf *out);

/* nginx's $cookie_NAME lookup over the Cookie lines v (n bytes, several
 * lines joined with "; "): the first pair whose name equals name (k
 * bytes, ASCII case-insensitively). Returns 1 and sets *value and *vlen
 * (pointing into v), or 0 when there is none. */
int key_cookie_find(const char *v, size_t n, const char *name, size_t k, const char **value,
                    size_t *vlen);

/* nginx's $arg_NAME lookup in args a (n bytes, raw, not decoded): the
 * first "name=" (k bytes, ASCII case-insensitively) at the start or right
 * after a '&'; the value runs to the next '&'. Returns 1 and sets *value
 * and *vlen (pointing into a), or 0. */
int key_arg_find(const char *a, size_t n, const char *name, size_t k, const char **value,
                 size_t *vlen);

/* What a pattern's value depends on, as bits. */
#define KEY_COVERS_URI 0x01u         /* $uri, $document_uri */
#define KEY_COVERS_REQUEST_URI 0x02u /* $request_uri (the raw target, args included) */
#define KEY_COVERS_ARGS 0x04u        /* $args, $query_string */
#define KEY_COVERS_ARG 0x08u         /* some $arg_NAME */
#define KEY_COVERS_HOST 0x10u        /* $host */
#define KEY_COVERS_HEADER 0x20u      /* some $http_NAME */
#define KEY_COVERS_COOKIE 0x40u      /* some $cookie_NAME */
#define KEY_COVERS_SCHEME 0x80u      /* $scheme */
/* Returns the KEY_COVERS_* bits of the variables in p. */
unsigned key_pattern_covers(const struct key_pattern *p);
/* Part i of p (0-based, in pattern order): returns its name and sets
 * *covers to KEY_COVERS_ARG (the argument name as written),
 * KEY_COVERS_COOKIE (the cookie name as written) or KEY_COVERS_HEADER (the
 * param name, "HTTP_X_FOO"); *covers is 0 for any other part. Returns NULL
 * past the last part. */
const char *key_pattern_part(const struct key_pattern *p, size_t i, unsigned *covers);

#endif
