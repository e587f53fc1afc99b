/* outcome.h - what became of a request's page in the store: stored, or
 * why not.
 *
 * One value per outcome, shared by everything that decides or reports it:
 * the cache policy of an origin's answer, the relay, the handlers (their
 * response.no_store_reason), the store's own rules and its write, and the
 * stampede lock. The scoreboard keeps one counter per outcome, indexed by
 * this value (stats.h), and the names below are the counters' names in
 * the status output, the metrics and X-Memfill-Store. The relative order
 * of the values is the order those lists show them in. */
#ifndef MEMFILL_OUTCOME_H
#define MEMFILL_OUTCOME_H

/* The OUTCOME_SKIP_* values are the reasons a page was not stored; the
 * OUTCOME_FAIL_* ones are stores that were tried and failed. */
enum store_outcome {
    OUTCOME_STORED = 0,
    OUTCOME_SKIP_METHOD,        /* not GET/HEAD */
    OUTCOME_SKIP_STATUS,        /* not 200 */
    OUTCOME_SKIP_COOKIE,        /* response sets a cookie, or a session cookie came in */
    OUTCOME_SKIP_CACHE_CONTROL, /* private / no-store / no-cache / max-age=0 / Vary */
    OUTCOME_SKIP_SIZE,          /* larger than the item limit */
    OUTCOME_SKIP_KEY_EMPTY,     /* empty key: nginx never reads it */
    OUTCOME_SKIP_KEY_TOO_LONG,  /* over 250 bytes once escaped */
    OUTCOME_SKIP_RULE,          /* route cache off, skip_uri, Authorization */
    OUTCOME_SKIP_NODE_TROUBLE,  /* MEMC_STATUS says nginx's node failed (502/504) */
    OUTCOME_SKIP_HANDLER,       /* the handler said no (missing data, error page) */
    OUTCOME_SKIP_LOCK_LOST,     /* another worker holds the stampede lock */
    OUTCOME_FAIL_CONNECTION,
    OUTCOME_FAIL_TIMEOUT,
    OUTCOME_FAIL_SERVER,        /* SERVER_ERROR, NOT_STORED, other replies */
    OUTCOME_FAIL_TOO_LARGE,     /* the server refused the size */
    OUTCOME_SKIP_GZIP,          /* cache.gzip_flag set but compressing failed */
    OUTCOME_LOCK_SERVED,        /* served the page another worker stored while this one
                                   waited on the stampede lock (not stored again) */
    OUTCOME_SKIP_TARGET,        /* relay: the key does not pin down what was relayed (a
                                   decoded '?' in the path, a key without the path,
                                   MEMC_KEY differing from cache.key) */
    OUTCOME_N
};

/* The outcome's name ("stored", "skip_status", "fail_timeout"...), or "?"
 * for a value out of range. */
const char *store_outcome_name(enum store_outcome o);

/* Returns 1 for the OUTCOME_FAIL_* values (a store tried and failed). */
int store_outcome_failed(enum store_outcome o);

#endif
