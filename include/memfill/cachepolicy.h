/* cachepolicy.h - may an origin response be stored, and for how long?
 *
 * Pure functions over a status, the response headers and the current time:
 * no I/O, no logging, no clock reads. The rules, in the order they are
 * tried (the first refusal names the outcome, outcome.h):
 *
 *   1. the status must be 200                          (OUTCOME_SKIP_STATUS)
 *   2. no Set-Cookie                                   (OUTCOME_SKIP_COOKIE)
 *   3. Vary absent, or naming only Accept-Encoding     (OUTCOME_SKIP_CACHE_CONTROL)
 *   4. X-Accel-Expires: "0" refuses; a positive value
 *      ("N" seconds or "@T" absolute Unix time) sets
 *      the TTL and, as in nginx's proxy cache, overrides
 *      Cache-Control and Expires                       (OUTCOME_SKIP_CACHE_CONTROL)
 *   5. Cache-Control without no-store, private, no-cache,
 *      s-maxage=0, or max-age=0 (max-age is ignored when
 *      s-maxage is present: a shared cache obeys s-maxage) (OUTCOME_SKIP_CACHE_CONTROL)
 *   6. TTL from s-maxage, else max-age, less Age; a
 *      stale response (Age past it) or an invalid value
 *      refuses                                         (OUTCOME_SKIP_CACHE_CONTROL)
 *   7. else from Expires minus Date (or minus now); an
 *      invalid or past Expires refuses                 (OUTCOME_SKIP_CACHE_CONTROL)
 *   8. else the route's default TTL.
 *
 * The TTL is then raised to min_ttl and lowered to max_ttl (0 = no cap; a
 * default TTL of 0, "never expire" in memcached, is lowered to max_ttl too).
 * Delta-seconds above 2^31 count as 2^31, as RFC 9111 asks.
 * An invalid X-Accel-Expires is ignored, as nginx ignores it. Header names
 * are compared case-insensitively; repeated Cache-Control and Vary headers
 * are read as one list. */
#ifndef MEMFILL_CACHEPOLICY_H
#define MEMFILL_CACHEPOLICY_H

#include <stddef.h>
#include <time.h>

#include "memfill/outcome.h"

/* One response header; both strings borrowed, not NUL-terminated. */
struct cachepolicy_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct cachepolicy_limits {
    long default_ttl; /* seconds, when the origin says nothing (the route's ttl) */
    unsigned min_ttl; /* floor */
    unsigned max_ttl; /* cap; 0 = no cap */
};

struct cachepolicy_result {
    int storable;
    long ttl;                  /* seconds, when storable */
    enum store_outcome reason; /* why not, when not storable */
};

/* Decides for a response with status and n headers, received at now (Unix
 * seconds). Fills *out and returns out->storable (1 or 0). */
int cachepolicy_decide(int status, const struct cachepolicy_header *h, size_t n, time_t now,
                       const struct cachepolicy_limits *lim, struct cachepolicy_result *out);

/* Parses an HTTP date in any of the three forms HTTP allows: IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37
 * GMT"; a two-digit year below 70 is 20yy) and asctime ("Sun Nov  6 08:49:37
 * 1994"). Blanks around it are allowed; the weekday is not checked. Returns
 * 0 and sets *out (Unix seconds), or -1. */
int cachepolicy_parse_http_date(const char *s, size_t len, time_t *out);

#endif
