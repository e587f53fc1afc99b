/* warm.h - memfillctl warm: pre-render pages by speaking FastCGI to the
 * running memfill, so pages are in memcached before the first visitor.
 *
 * For each URL, the params nginx would send for "GET URL" are built
 * (REQUEST_URI, DOCUMENT_URI = nginx's $uri, QUERY_STRING, SERVER_NAME,
 * HTTP_HOST, REQUEST_SCHEME, SERVER_PROTOCOL...) plus MEMC_KEY, the key
 * evaluated with the config's cache.key from those params, and
 * MEMFILL_WARM=1. A warm request makes memfill store BEFORE it answers and
 * report the outcome in an "X-Memfill-Store: <counter>" response header
 * ("stored", "skip_status", "fail_timeout"...). nginx never sends
 * MEMFILL_WARM, so browsers never see that header.
 *
 * The URL lists, sitemaps and URLs are parsed by warmlist.c (tested in
 * check_warmlist.c); the params, tally and options helpers are pure (no
 * I/O) and tested in check_fcgiclient.c; warm_run does the network work
 * and writes progress and the summary to a stream the caller gives. */
#ifndef MEMFILL_WARM_H
#define MEMFILL_WARM_H

#include <stddef.h>
#include <stdio.h>

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/fcgiclient.h"
#include "memfill/keypattern.h"
#include "memfill/stats.h"
#include "memfill/warmlist.h"


#define WARM_MAX_PARAMS 24

/* The params of one warm request, owned by the struct. */
struct warm_params {
    struct fcgiclient_param p[WARM_MAX_PARAMS];
    char *owned[WARM_MAX_PARAMS]; /* the values, each NUL-terminated */
    size_t n;
    struct buf key; /* the raw key (also sent as MEMC_KEY) */
};

/* Builds the params nginx would send for GET u (default_host stands in
 * when u has no host; NULL = none) and the raw key from key. Release with
 * warm_params_fini(). */
void warm_params_build(const struct key_pattern *key, const struct warm_url *u,
                       const char *default_host, struct warm_params *out);
void warm_params_fini(struct warm_params *p);
/* Value of param name (borrowed), or NULL. */
const char *warm_params_get(const struct warm_params *p, const char *name);

/* Outcomes counted for the summary line. */
struct warm_tally {
    size_t requested;
    size_t stored;
    size_t skipped;
    size_t failed;
    size_t reasons[STATS_N]; /* skipped, by memfill's decision */
    size_t other_reasons;    /* skipped with a decision this build does not know */
};

enum warm_outcome { WARM_STORED, WARM_SKIPPED, WARM_FAILED };

/* Classifies one response and counts it in t (requested included).
 * *detail gets a short static or borrowed text for failures ("no
 * X-Memfill-Store header", the transport error) and the decision for
 * skips; it stays valid while res does. */
enum warm_outcome warm_tally_add(struct warm_tally *t, const struct fcgiclient_result *res,
                                 const char **detail, size_t *detail_len);
/* Appends "warm: N requested, S stored, K skipped (reason: n, ...), F
 * failed" (no newline; reasons named by their counter without "skip_", in
 * counter order, only those seen). */
void warm_tally_format(const struct warm_tally *t, struct buf *out);

struct warm_opts {
    const char *fastcgi;  /* "host:port" or "unix:/path"; NULL = the config's listen */
    unsigned concurrency; /* requests in flight, default 4 */
    unsigned timeout_ms;  /* per request, default 60000 */
    const char *host;     /* host for "/path" URLs, NULL = none */
    int verbose;          /* one line per URL */
    int progress;         /* -1 = when the stream is a TTY, 0 off, 1 on */
    struct warm_list urls;
    struct buf notes;     /* remarks that stop nothing, whole lines ("FILE: no URLs found") */
};

/* Parses warm's arguments (argv[0] is "warm"): URL..., --from FILE
 * ("-" = stdin), --sitemap FILE, --concurrency N, --fastcgi ADDR,
 * --timeout SECONDS, --host HOST, -v, --progress, --no-progress. Files are
 * read here, in order (a file without URLs adds a line to o->notes).
 * Returns 0, or a sysexits code with err set (64 usage, 66 unreadable
 * file). Release o with warm_opts_fini() either way. */
int warm_opts_parse(int argc, char **argv, struct warm_opts *o, struct err *err);
void warm_opts_fini(struct warm_opts *o);

/* Warms every URL of o against memfill, o->concurrency at a time, writing
 * its report to the stream report: a progress bar (when enabled and
 * report is a TTY), one line per failure and the summary line. Returns 0
 * when nothing failed, 1 otherwise, or a sysexits code (64, 78) with err
 * set when it could not start (err has the config's path as source for a
 * config error). */
int warm_run(const struct config *cfg, const struct warm_opts *o, FILE *report,
             struct err *err);

#endif
