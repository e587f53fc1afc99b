/* store.h - decides whether a page may be stored, and stores it under
 * nginx's key on nginx's node.
 *
 * Split in two so the client never waits on memcached: store_prepare runs
 * while the request's params are still valid and copies what the write
 * needs (raw and escaped key, node, TTL) into a job; the worker then
 * answers nginx and finishes the request; store_execute writes afterwards.
 * Every outcome is one enum store_outcome value (outcome.h). */
#ifndef MEMFILL_STORE_H
#define MEMFILL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/mcwriter.h"
#include "memfill/request.h"
#include "memfill/site.h"
#include "memfill/outcome.h"

struct store_job {
    enum store_outcome decision; /* OUTCOME_STORED: write it; else the skip reason */
    struct buf raw_key;  /* the key nginx hashes */
    struct buf esc_key;  /* the key nginx asks memcached for */
    int node;            /* node index, -1 when unknown */
    unsigned ttl;
    uint32_t flags;      /* memcached item flags (cache.gzip_flag when gzip) */
    int gzip;            /* store the value gzip-compressed */
    int srcache;         /* the route stores whole responses in srcache's format */
    struct buf value;    /* srcache: the item, built by store_prepare */
    int key_drift;       /* MEMC_KEY differed from cache.key */
    int backend_mismatch;/* MEMC_BACKEND named no configured node */
    int node_drift;      /* nginx's node differed from the computed one */
};

void store_job_init(struct store_job *job);
void store_job_fini(struct store_job *job);

/* Decides for req/resp (route index route, or (size_t)-1 when no route
 * matched) and fills job. Never fails: the decision says what to do. For a
 * route with "srcache": true the statuses 301, 302, 307 and 308 are
 * stored too, and job->value gets the item (srcache_encode of resp). */
void store_prepare(const struct site *site, const struct request *req, size_t route,
                   const struct response *resp, struct store_job *job);

/* Before the page exists: fills job's key and node as store_prepare would
 * and returns 1 when nothing known from the request alone (method, route
 * and skip rules, session cookies, MEMC_STATUS, the key) rules the store
 * out, so the page will be stored if the response allows it; else 0. Used
 * by the stampede lock, which must know the key before producing. */
int store_request_allows(const struct site *site, const struct request *req, size_t route,
                         struct store_job *job);

/* Returns 1 when a rule known from the request alone (method, route
 * "cache": false, cache.skip_uri, Authorization, a session cookie) rules
 * the store out, whatever the response; else 0. The worker tells the
 * handler (request.store_ruled_out) before it runs. */
int store_request_ruled_out(const struct site *site, const struct request *req, size_t route);

/* Computes the raw key for req: MEMC_KEY when nginx passed it, else the
 * configured pattern. Sets *drift when both exist and differ. */
void store_request_key(const struct site *site, const struct request *req, struct buf *raw,
                       int *drift);

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
enum store_outcome store_execute(struct mcwriter *w, const struct store_job *job,
                                 const void *value, size_t vlen, struct buf *gz,
                                 uint64_t *usec);

/* Appends the gzip member (RFC 1952: zlib with windowBits 15+16) of
 * data (len bytes) to out. Returns 0, or -1 (out then holds what was
 * appended before the failure). */
int store_gzip(const void *data, size_t len, struct buf *out);

#endif
