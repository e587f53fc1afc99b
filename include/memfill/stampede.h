/* stampede.h - one worker produces a cold page while the others wait.
 *
 * When many requests miss the same key at once (a popular page expired, a
 * cold start), each would render the page or ask the origin for it. With
 * cache.lock_wait > 0, the first worker takes a short-lived lock in
 * memcached (an `add` of "memfill:lock:" + the escaped key, on the page's
 * node, living cache.lock_ttl seconds) and produces and stores the page;
 * the others poll memcached every 20 ms for the stored page, up to
 * lock_wait ms, and serve it (OUTCOME_LOCK_SERVED). A waiter whose wait runs
 * out produces the page itself and does not store it
 * (OUTCOME_SKIP_LOCK_LOST). The holder deletes the lock after storing; when
 * its page turned out not storable it leaves a "pass" mark in the lock
 * instead (for lock_ttl seconds), so requests for an uncacheable page are
 * never queued behind each other.
 *
 * Only GET/HEAD requests whose page would be stored if the response allows
 * it take part (store_location_allows), and never warm-up requests
 * (MEMFILL_WARM=1), which produce and store at once. Locking is skipped
 * when the lock key would exceed 250 bytes. Any memcached trouble turns
 * the protection off for that request: it never makes a request fail. */
#ifndef MEMFILL_STAMPEDE_H
#define MEMFILL_STAMPEDE_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/mcclient.h"
#include "memfill/request.h"
#include "memfill/site.h"
#include "memfill/outcome.h"
#include "memfill/store.h"

/* The prefix of lock keys. */
#define STAMPEDE_LOCK_PREFIX "memfill:lock:"
/* Milliseconds between two looks at memcached while waiting. */
#define STAMPEDE_POLL_MS 20

enum stampede_result {
    STAMPEDE_OFF = 0,   /* not protected: produce and store as usual */
    STAMPEDE_HOLDER,    /* this worker holds the lock: produce, store, leave */
    STAMPEDE_SERVED,    /* resp holds the page another worker stored */
    STAMPEDE_TIMED_OUT, /* waited lock_wait in vain: produce, do not store */
};

/* One worker's state for the request in progress; caller-embedded. */
struct stampede {
    enum stampede_result result;
    size_t node;
    struct buf lock_key; /* escaped, ready for memcached */
    char token[48];      /* the value this worker wrote into the lock */
    unsigned serial;
    unsigned ttl;        /* cache.lock_ttl, for the pass mark */
};

void stampede_init(struct stampede *s);
void stampede_fini(struct stampede *s);

/* Runs after the route is known and before the handler: takes the lock,
 * or waits for the page another worker is producing (sleeping between
 * looks; at most cache.lock_wait ms). route is the matched route index;
 * loc is the request's store location (store_locate), whose key and node
 * the lock and the page share.
 * On STAMPEDE_SERVED resp holds the page (status 200 with the route's
 * content_type or text/html, or, for a srcache route, the stored status
 * and headers; a gzip-flagged item is decompressed). Returns s->result. */
enum stampede_result stampede_enter(struct stampede *s, const struct site *site,
                                    struct mcclient *mc, const struct request *req, size_t route,
                                    const struct store_location *loc, struct response *resp);

/* After store_prepare: a served page is not stored again
 * (OUTCOME_LOCK_SERVED) and a page produced after a vain wait is not stored
 * (OUTCOME_SKIP_LOCK_LOST, only when it would have been). */
void stampede_settle(const struct stampede *s, struct store_job *job);

/* After the store: the holder deletes its lock when the page was stored
 * (outcome OUTCOME_STORED), else writes the "pass" mark. Resets s for the
 * next request. Safe to call whatever the result was. */
void stampede_leave(struct stampede *s, struct mcclient *mc, enum store_outcome outcome);

/* Appends the lock key for an escaped page key to out. Returns 0, or -1
 * (out unchanged) when the lock key would be longer than 250 bytes. */
int stampede_lock_key(const char *esc_key, size_t len, struct buf *out);

#endif
