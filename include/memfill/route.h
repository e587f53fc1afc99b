/* route.h - matches a request path against the configured routes.
 *
 * Routes are tried in config order; the first whose prefix or PCRE2 regex
 * matches the path ($uri, decoded) wins. Named captures ("(?<slug>...)")
 * are kept for handlers (data file patterns such as data/{slug}.json). */
#ifndef MEMFILL_ROUTE_H
#define MEMFILL_ROUTE_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"

#define ROUTE_MAX_CAPTURES 16

struct router;

/* The result of a match. Capture names and values point into storage, which
 * is owned by the match: call route_match_fini() when done. */
struct route_match {
    size_t route;  /* index into cfg->routes */
    size_t ncaptures;
    const char *names[ROUTE_MAX_CAPTURES];
    size_t value_off[ROUTE_MAX_CAPTURES]; /* offsets into storage */
    size_t value_len[ROUTE_MAX_CAPTURES];
    struct buf storage;
};

/* Compiles every route of cfg (borrowed; must outlive the router). Returns
 * a new router (free with router_free()), or NULL with err set at the
 * regex's position in the config file. */
struct router *router_new(const struct config *cfg, struct err *err);
void router_free(struct router *rt);

/* Matches path (len bytes). Returns 0 and fills m, or -1 when no route
 * matches. m must have been initialised with route_match_init(). */
int router_match(struct router *rt, const char *path, size_t len, struct route_match *m);

void route_match_init(struct route_match *m);
void route_match_fini(struct route_match *m);
/* Value of capture name (borrowed from m), or NULL; *len gets its length. */
const char *route_match_get(const struct route_match *m, const char *name, size_t *len);
/* Appends pattern to out with every "{name}" replaced by the capture's
 * value. Returns 0, or -1 when a name has no capture or a value is "." or
 * holds a '/', "..", or a NUL (it could not name a file safely). */
int route_expand(const struct route_match *m, const char *pattern, struct buf *out);

/* A compiled list of regexes (cache.skip_uri). */
/* Like route_expand for a URL pattern: each value is percent-encoded
 * (unreserved bytes kept), so it is safe in a path or query. Returns 0, or
 * -1 when a name has no capture. */
int route_expand_url(const struct route_match *m, const char *pattern, struct buf *out);

struct regex_list;
struct regex_list *regex_list_new(char *const *patterns, const char *what, struct err *err);
void regex_list_free(struct regex_list *l);
/* Returns 1 when any regex matches s (len bytes). */
int regex_list_match(struct regex_list *l, const char *s, size_t len);

#endif
