/* urlreq.h - the FastCGI params nginx would send for a URL, so tools
 * (memfillctl purge, warm) compute keys exactly as a real request would. */
#ifndef MEMFILL_URLREQ_H
#define MEMFILL_URLREQ_H

#include "memfill/buf.h"
#include "memfill/err.h"

#define URLREQ_MAX_PARAMS 12

/* Caller-embedded; urlreq_fini releases it. envp is NULL-terminated
 * "NAME=value" strings, valid until urlreq_fini. */
struct urlreq {
    char *envp[URLREQ_MAX_PARAMS + 1];
    int n;
};

/* Builds params for method and url ("/path?query" or
 * "http[s]://host[:port]/path?query"): REQUEST_METHOD, REQUEST_URI,
 * DOCUMENT_URI (nginx's $uri), QUERY_STRING, HTTP_HOST, SERVER_NAME,
 * REQUEST_SCHEME, SERVER_PROTOCOL, GATEWAY_INTERFACE. Returns 0, or -1 with
 * err set when the URL is malformed or its path is one nginx answers 400. */
int urlreq_build(struct urlreq *u, const char *method, const char *url, struct err *err);
/* Adds one more "NAME=value" param (copied). Returns 0, or -1 when full. */
int urlreq_add(struct urlreq *u, const char *name, const char *value);
void urlreq_fini(struct urlreq *u);

#endif
