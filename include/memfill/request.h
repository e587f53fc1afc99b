/* request.h - one FastCGI request as memfill sees it, and the response
 * under construction.
 *
 * The request is a borrowed view of the params libfcgi received: every
 * pointer in it is valid until the request is finished (FCGX_Finish_r).
 * What must outlive that (the key, MEMC_BACKEND, the body to store) is
 * copied by the worker before finishing. No libfcgi type appears here. */
#ifndef MEMFILL_REQUEST_H
#define MEMFILL_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/outcome.h"

struct request {
    char **envp;              /* "NAME=value" strings, NULL-terminated (borrowed) */
    const char *method;       /* REQUEST_METHOD, never NULL ("" when absent) */
    unsigned method_bit;      /* CONFIG_METHOD_* bit, 0 for other methods */
    const char *request_uri;  /* REQUEST_URI as sent by the client ("" when absent) */
    const char *query;        /* QUERY_STRING, or the part after '?' */
    struct buf path;          /* $uri: DOCUMENT_URI, or REQUEST_URI decoded/normalised */
    int path_ok;              /* 0 when the target could not be normalised (400) */
    const char *key_uri;      /* $uri as a key reads it (request_param_cb's DOCUMENT_URI):
                                 DOCUMENT_URI when nginx passed it, else REQUEST_URI
                                 normalised (args included), "" when that fails or
                                 there is none; never NULL */
    const char *memc_key;     /* MEMC_KEY param, NULL when nginx did not pass it */
    const char *memc_backend; /* MEMC_BACKEND, NULL when absent */
    const char *memc_status;  /* MEMC_STATUS ($upstream_status), NULL when absent */
    /* The key, evaluated once per request by request_key(): */
    struct buf own_key;       /* cache.key evaluated here */
    const char *key;          /* the raw key nginx hashes: MEMC_KEY when nginx passed it,
                                 else own_key ("" before request_key) */
    size_t key_len;
    int key_drift;            /* MEMC_KEY came and differs from own_key */
    int key_ready;            /* request_key() has run */
    const char *body;         /* request body, body_len bytes (not NUL-terminated) */
    size_t body_len;
    int warm;                 /* MEMFILL_WARM=1: a warm-up (memfillctl warm, never
                                 nginx), which stores before answering and says how
                                 it went in X-Memfill-Store */
    /* Set by the worker before the handler runs: 1 when a rule known from
     * the request alone (method, route, skip rules, session cookie,
     * Authorization) already rules the store out. The relay then passes
     * the client's headers through; otherwise it relays only what the key
     * describes (doc/security.md). 0 by default: the strict relay. */
    int store_ruled_out;
};

/* Fills r from envp (borrowed). Returns 0. r->path and r->own_key are
 * owned by r: call request_fini() when done. */
void request_init(struct request *r, char **envp);
void request_fini(struct request *r);
struct key_pattern;
/* Evaluates cache.key (p) for r, once per request, and fills r->own_key,
 * r->key, r->key_len, r->key_drift and r->key_ready. Every later reader
 * of the key (the store location, the relay, PURGE, the drift note) uses
 * these instead of evaluating it again. */
void request_key(struct request *r, const struct key_pattern *p);
/* Returns the value of param name (borrowed), or NULL. */
const char *request_param(const struct request *r, const char *name);
/* Same, as a key_param_fn (ctx is the struct request), except that
 * DOCUMENT_URI is r->key_uri: $uri as request_init worked it out, so a
 * key never normalises the target again. */
const char *request_param_cb(void *ctx, const char *name);
/* Every instance of param name (nginx passes each header line as its own
 * param, so a header sent twice gives two HTTP_* params), appended to out
 * in arrival order, joined with sep. Returns how many instances there
 * were (0: out unchanged). With out NULL it only counts them. */
size_t request_param_all(const struct request *r, const char *name, const char *sep,
                         struct buf *out);
/* Same, as a key_param_all_fn (ctx is the struct request). */
size_t request_param_all_cb(void *ctx, const char *name, const char *sep, struct buf *out);
/* Evaluates key pattern p for r, every instance of a repeated header read
 * as nginx 1.22 reads it (key_pattern_eval_all), and appends the raw key
 * to out. */
void request_eval_key(const struct key_pattern *p, const struct request *r, struct buf *out);
/* The separator nginx 1.23 and later put between the instances of one
 * header when they join them: "; " for Cookie (HTTP_COOKIE), ", " for
 * every other (name is the param name, HTTP_X_FOO). */
const char *request_header_separator(const char *name);
/* request_param_all with request_header_separator(name): every instance
 * of a header, joined as nginx 1.23+ joins them. */
size_t request_header_joined(const struct request *r, const char *name, struct buf *out);

/* A limit a handler hit while producing the response (the worker counts
 * it: render_too_large, data_too_large). */
enum response_limit {
    RESPONSE_LIMIT_NONE = 0,
    RESPONSE_LIMIT_RENDER, /* template.max_output */
    RESPONSE_LIMIT_DATA,   /* template.max_data */
};

/* The response a handler builds. Status 200 unless set; content_type
 * "text/html" unless set; headers holds extra "Name: value\r\n" lines. */
struct response {
    int status;
    struct buf content_type;
    struct buf headers;
    struct buf body;
    /* What the handler learned that decides the store. */
    int no_store;             /* the handler forbids storing (reason below) */
    enum store_outcome no_store_reason; /* an OUTCOME_SKIP_* reason when no_store;
                                           OUTCOME_STORED (0) = none given, counted
                                           as skip_handler */
    long ttl;                 /* seconds from the handler/origin; -1 = route default */
    struct buf tags;          /* space-separated tags for the tag index */
    enum response_limit limit; /* a limit the handler hit, counted by the worker */
};

void response_init(struct response *resp);
void response_fini(struct response *resp);
/* Empties resp for the next request, keeping buffers below keep bytes. */
void response_reset(struct response *resp, size_t keep);
/* Adds one header line; name and value must be free of CR, LF and NUL
 * (checked: an unsafe header is dropped and -1 returned). */
int response_add_header(struct response *resp, const char *name, const char *value,
                        size_t value_len);
/* Replaces the response with a short HTML error page for status. */
void response_error(struct response *resp, int status, const char *message);
/* Reason phrase for an HTTP status ("OK", "Not Found"...), or "" */
const char *response_reason(int status);

#endif
