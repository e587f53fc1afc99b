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

struct request {
    char **envp;              /* "NAME=value" strings, NULL-terminated (borrowed) */
    const char *method;       /* REQUEST_METHOD, never NULL ("" when absent) */
    unsigned method_bit;      /* CONFIG_METHOD_* bit, 0 for other methods */
    const char *request_uri;  /* REQUEST_URI as sent by the client ("" when absent) */
    const char *query;        /* QUERY_STRING, or the part after '?' */
    struct buf path;          /* $uri: DOCUMENT_URI, or REQUEST_URI decoded/normalised */
    int path_ok;              /* 0 when the target could not be normalised (400) */
    const char *memc_key;     /* MEMC_KEY param, NULL when nginx did not pass it */
    const char *memc_backend; /* MEMC_BACKEND, NULL when absent */
    const char *memc_status;  /* MEMC_STATUS ($upstream_status), NULL when absent */
    const char *body;         /* request body, body_len bytes (not NUL-terminated) */
    size_t body_len;
};

/* Fills r from envp (borrowed). Returns 0. r->path is owned by r: call
 * request_fini() when done. */
void request_init(struct request *r, char **envp);
void request_fini(struct request *r);
/* Returns the value of param name (borrowed), or NULL. */
const char *request_param(const struct request *r, const char *name);
/* Same, as a key_param_fn (ctx is the struct request). */
const char *request_param_cb(void *ctx, const char *name);

/* The response a handler builds. Status 200 unless set; content_type
 * "text/html" unless set; headers holds extra "Name: value\r\n" lines. */
struct response {
    int status;
    struct buf content_type;
    struct buf headers;
    struct buf body;
    /* What the handler learned that decides the store. */
    int no_store;             /* the handler forbids storing (reason below) */
    int no_store_reason;      /* a store_reason value when no_store */
    long ttl;                 /* seconds from the handler/origin; -1 = route default */
    struct buf tags;          /* space-separated tags for the tag index */
    int event;                /* a stats counter the worker adds one to (a limit the
                                 handler hit, e.g. render_too_large); 0 = none */
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
