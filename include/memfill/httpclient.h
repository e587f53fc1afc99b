/* httpclient.h - a small HTTP client over libcurl, for relaying to an origin
 * and for fetching JSON data from a URL.
 *
 * One client per process holds one reused curl easy handle (so connections
 * to the origin are kept alive between requests). The handle is created on
 * the first fetch, never before, so a client made in the master and
 * inherited across fork never shares a connection with another process: a
 * client that finds itself in a process other than the one that created
 * its handle abandons that handle and makes a new one. A client is not
 * thread-safe. Redirects are not followed, curl installs no signal
 * handlers, proxies named in the environment are ignored, and only http://
 * and https:// URLs are fetched. No curl type appears in this header. */
#ifndef MEMFILL_HTTPCLIENT_H
#define MEMFILL_HTTPCLIENT_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/err.h"

/* Why a fetch failed. */
enum http_failure {
    HTTPC_OK = 0,
    HTTPC_CONNECT,   /* no connection: refused, unreachable, DNS, TLS handshake */
    HTTPC_TIMEOUT,   /* connect_timeout_ms or timeout_ms elapsed */
    HTTPC_TOO_LARGE, /* the body would exceed max_bytes */
    HTTPC_PROTOCOL,  /* the origin broke HTTP: bad status line or headers, reset */
    HTTPC_REQUEST,   /* the request itself was unusable: bad URL, bad method */
};

/* One request. Everything is borrowed from the caller for the duration of
 * http_fetch(). */
struct http_req {
    const char *method; /* "GET", "POST"...; NULL means GET. "HEAD" reads no body */
    const char *url;    /* absolute http:// or https:// URL */
    /* "Name: value" lines without CRLF, NULL-terminated (NULL = none). A
     * line naming a header curl adds by itself (Host, Accept, Content-Type,
     * Expect...) replaces it; "Name:" with no value removes it. Lines that
     * hold CR or LF are skipped. */
    const char *const *headers;
    const char *body;  /* request body, body_len bytes; sent when not NULL */
    size_t body_len;
    unsigned connect_timeout_ms; /* 0 = curl's default (300 s) */
    unsigned timeout_ms;         /* whole exchange; 0 = no limit */
    size_t max_bytes;            /* body cap; 0 = no cap */
};

/* One response header, as the origin sent it (name and value trimmed of
 * surrounding blanks; an obsolete folded line is joined with one space).
 * The value may hold any byte, NUL included: use value_len. */
struct http_header {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
};

/* A response, owned by the caller: http_resp_init() before the first
 * fetch, http_resp_fini() when done. The headers are those of the final
 * response (interim 1xx responses and trailers are left out). */
struct http_resp {
    int status; /* 0 when the fetch failed before a status line */
    struct http_header *headers;
    size_t nheaders;
    size_t headers_cap;
    struct buf body;
    enum http_failure failure; /* HTTPC_OK when http_fetch returned 0 */
};

void http_resp_init(struct http_resp *resp);
void http_resp_fini(struct http_resp *resp);
/* Empties resp for reuse, keeping a body buffer below keep bytes. */
void http_resp_reset(struct http_resp *resp, size_t keep);
/* Returns the first header called name (ASCII case-insensitive) as a
 * pointer borrowed from resp, or NULL. */
const struct http_header *http_resp_header(const struct http_resp *resp,
                                                   const char *name);

struct http_client;

/* Returns a new client (no curl handle yet); free with
 * http_client_free(). Never fails (aborts on OOM). */
struct http_client *http_client_new(void);
/* Frees the client and its curl handle. NULL-safe. */
void http_client_free(struct http_client *c);

/* Performs req and fills resp (reset first). Returns 0 when a complete
 * response arrived, whatever its status; otherwise -1 with resp->failure
 * set and err given a message naming the cause (err may be NULL).
 * resp->status and the headers may hold what arrived before the failure.
 * errno is preserved. */
int http_fetch(struct http_client *c, const struct http_req *req,
                   struct http_resp *resp, struct err *err);

/* A short name for a failure ("connect", "timeout"...). */
const char *http_failure_name(enum http_failure f);

#endif
