/* store.h - decides whether a page may be stored, and stores it under
 * nginx's key on nginx's node.
 *
 * Split in two so the client never waits on memcached: store_prepare runs
 * while the request's params are still valid and copies what the write
 * needs (escaped key, node, TTL) into a job; the worker then
 * answers nginx and finishes the request; store_execute writes afterwards.
 * Every outcome is one enum store_outcome value (outcome.h). */
#ifndef MEMFILL_STORE_H
#define MEMFILL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/keyloc.h"
#include "memfill/mcclient.h"
#include "memfill/request.h"
#include "memfill/site.h"
#include "memfill/outcome.h"

/* Where a request's page goes and what the request alone says about
 * storing it: worked out once per request, after routing
 * (store_locate), and handed to the stampede lock and to store_prepare.
 * The raw key is the request's (request_key). */
struct store_location {
    struct buf esc_key;         /* the key nginx asks memcached for */
    int node;                   /* node index: nginx's (MEMC_BACKEND) when it names a
                                   configured node, else computed; -1 when unknown */
    int computed_node;          /* the node the ring gives for the raw key, or -1 */
    enum keyloc_fit key_fit;    /* whether nginx can read esc_key at all */
    int backend_mismatch;       /* MEMC_BACKEND named no configured node */
    int node_drift;             /* nginx's node differed from the computed one */
    enum store_outcome early;   /* a refusal known from the request alone, checked
                                   before the response's (method; route "cache": false,
                                   cache.skip_uri, Authorization; a session cookie),
                                   or OUTCOME_STORED */
    enum store_outcome late;    /* one checked after the response's (empty key, key
                                   too long, MEMC_STATUS), or OUTCOME_STORED */
};

struct store_job {
    struct store_location loc; /* from store_locate */
    enum store_outcome decision; /* OUTCOME_STORED: write it; else the skip reason */
    unsigned ttl;
    uint32_t flags;      /* memcached item flags (cache.gzip_flag when gzip) */
    int gzip;            /* store the value gzip-compressed */
    int srcache;         /* the route stores whole responses in srcache's format */
    struct buf value;    /* srcache: the item, built by store_prepare */
};

void store_job_init(struct store_job *job);
void store_job_fini(struct store_job *job);

/* Fills loc for req (route index route, or (size_t)-1 when no route
 * matched): escapes req's key (request_key() must have run), finds its
 * node and checks the request-only rules. The key and node are worked
 * out for every request, stored or not, so drift between the nginx
 * config and memfill's is always seen. */
void store_locate(const struct site *site, const struct request *req, size_t route,
                  struct store_location *loc);

/* Returns 1 when nothing known from the request alone rules the store
 * out, so the page will be stored if the response allows it; else 0. */
int store_location_allows(const struct store_location *loc);

/* Decides for req/resp (route index route, or (size_t)-1 when no route
 * matched) and fills job; job->loc must have been filled by store_locate
 * for the same request and route. Never fails: the decision says what to
 * do. For a route with "srcache": true the statuses 301, 302, 307 and 308
 * are stored too, and job->value gets the item (srcache_encode of
 * resp). */
void store_prepare(const struct site *site, const struct request *req, size_t route,
                   const struct response *resp, struct store_job *job);

/* Writes body (the value) for job on its node through w; for a srcache
 * route (job->srcache) the value is job->value and value/vlen are ignored.
 * When job->gzip
 * is set the value is first gzip-compressed into gz (a caller-owned buffer
 * reused from request to request; emptied again before returning, keeping
 * up to 1 MiB), and the item size limit applies to the compressed size.
 * Returns the outcome: OUTCOME_STORED, OUTCOME_SKIP_SIZE,
 * OUTCOME_SKIP_GZIP or an OUTCOME_FAIL_* value. When job->decision is not
 * OUTCOME_STORED, returns it without writing. *usec gets the write's
 * duration (compression included). */
enum store_outcome store_execute(struct mcclient *w, const struct store_job *job,
                                 const void *value, size_t vlen, struct buf *gz,
                                 uint64_t *usec);

/* Appends the gzip member (RFC 1952: zlib with windowBits 15+16) of
 * data (len bytes) to out. Returns 0, or -1 (out then holds what was
 * appended before the failure). */
int store_gzip(const void *data, size_t len, struct buf *out);

#endif
