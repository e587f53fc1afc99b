/* purgematch.h - purge by raw-key prefix or regex on every node.
 *
 * Complete by construction: every configured node's keys are enumerated
 * (keyscan), each key's raw form (the page key as cache.key produced it)
 * is matched, and the matches are deleted on the node that holds them,
 * whichever node that is. memfill's own bookkeeping (raw keys starting
 * "memfill:") is left alone unless asked. A node that cannot be reached
 * is tried PURGEMATCH_ATTEMPTS times; if it still fails the purge is
 * partial and the report names it (nothing is journaled: run the purge
 * again once the node answers). Cost and figures: doc/purge-prefix.md.
 * Used by the PURGE endpoint and by memfillctl purge. */
#ifndef MEMFILL_PURGEMATCH_H
#define MEMFILL_PURGEMATCH_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"

#define PURGEMATCH_BOOKKEEPING "memfill:"
#define PURGEMATCH_PREFIX_MAX 250 /* no raw key is longer (doc/nginx.md §2) */
#define PURGEMATCH_REGEX_MAX 1024
/* Tries per node, with 100 ms, then 200 ms between them. */
#define PURGEMATCH_ATTEMPTS 3
/* Bytes of matched keys held per pass; more matches take another pass. */
#define PURGEMATCH_PASS_BYTES (32u << 20)

enum purgematch_kind { PURGEMATCH_PREFIX, PURGEMATCH_REGEX };

struct purgematch;

/* Compiles a matcher for the raw-key prefix or PCRE2 regex pattern (len
 * bytes; the regex is applied to the key's bytes, not as UTF-8, and is not
 * anchored). An empty pattern, one too long, or a regex that does not
 * compile is refused with the reason in e. Returns NULL then. */
struct purgematch *purgematch_new(enum purgematch_kind kind, const char *pattern, size_t len,
                                  int include_bookkeeping, struct err *e);
void purgematch_free(struct purgematch *m);
/* 1 when raw (len bytes) is to be purged, 0 when not, -1 when the regex
 * hit its match limit on it. */
int purgematch_test(struct purgematch *m, const char *raw, size_t len);

struct purgematch_node {
    const char *address; /* borrowed from the config */
    uint64_t scanned;    /* keys read (over every pass and try) */
    uint64_t matched;    /* keys that matched */
    uint64_t purged;     /* keys memcached deleted */
    unsigned attempts;
    int failed;
    char error[ERR_TEXT_MAX];
};

struct purgematch_report {
    struct purgematch_node *nodes;
    size_t nnodes;
    uint64_t scanned, matched, purged;
    uint64_t match_errors; /* keys the regex could not decide */
    size_t failed;         /* nodes that failed every try */
};

struct mcclient;
/* Purges the matching keys on each node of mc's config (which must
 * outlive the report), deleting through mc. Returns 1 when the purge is
 * complete, 0 when partial. */
int purgematch_run(struct mcclient *mc, struct purgematch *m, struct purgematch_report *r);
/* Appends the report as one JSON object: purged, matched, scanned,
 * complete, failed_nodes (addresses), nodes (per node figures, error). */
void purgematch_report_json(const struct purgematch_report *r, struct buf *out);
void purgematch_report_fini(struct purgematch_report *r);

#endif
