/* fcgiclient.h - a small non-blocking FastCGI client (responder role), for
 * memfillctl warm: many requests in flight in one poll() loop, one
 * connection per request (FCGI_KEEP_CONN off, so the server closes the
 * connection once it has answered).
 *
 * Besides fcgi.c (the server side, through libfcgi) this is the only
 * module that speaks FastCGI. The records are written and read here, by
 * hand, following the FastCGI 1.0 specification: an 8-byte header
 * (version 1, type, request id, content length, padding length), content
 * of at most 65535 bytes, padding. The encoder and decoder are exposed for
 * the unit tests. No module state; a client is not thread-safe. */
#ifndef MEMFILL_FCGICLIENT_H
#define MEMFILL_FCGICLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/buf.h"
#include "memfill/err.h"

/* Record types (FastCGI 1.0 §8). */
#define FCGICLIENT_BEGIN_REQUEST 1
#define FCGICLIENT_ABORT_REQUEST 2
#define FCGICLIENT_END_REQUEST 3
#define FCGICLIENT_PARAMS 4
#define FCGICLIENT_STDIN 5
#define FCGICLIENT_STDOUT 6
#define FCGICLIENT_STDERR 7
/* Largest content of one record. */
#define FCGICLIENT_MAX_CONTENT 65535u

/* One param; name and value are borrowed, any bytes, lengths given. */
struct fcgiclient_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* ---- encoding ---- */

/* Appends one record: header, len bytes of content (len <=
 * FCGICLIENT_MAX_CONTENT), then zero padding to a multiple of 8 bytes. */
void fcgiclient_record(struct buf *out, unsigned type, uint16_t id, const void *content,
                       size_t len);
/* Appends one name-value pair: each length in 1 byte when below 128, else
 * in 4 bytes big-endian with the top bit set; then name, then value. */
void fcgiclient_encode_pair(struct buf *out, const char *name, size_t name_len,
                            const char *value, size_t value_len);
/* Appends a whole GET-style request for request id: BEGIN_REQUEST (role
 * responder, flags 0), the params in PARAMS records of at most
 * FCGICLIENT_MAX_CONTENT bytes (a pair may straddle two records, as the
 * specification allows), the empty PARAMS record, and the empty STDIN
 * record (no body). */
void fcgiclient_encode_request(struct buf *out, uint16_t id, const struct fcgiclient_param *p,
                               size_t n);

/* ---- decoding ---- */

/* The server's answer to one request, fed in chunks as it arrives. Init
 * with fcgiclient_decoder_init(), release with fcgiclient_decoder_fini(). */
struct fcgiclient_decoder {
    uint16_t id;            /* the request id expected */
    unsigned char hdr[8];   /* the record header being read */
    size_t hdr_have;
    size_t content_left;    /* bytes of the current record's content to come */
    size_t padding_left;
    unsigned type;          /* the current record's type */
    struct buf end_body;    /* END_REQUEST content being read */
    struct buf out;         /* FCGI_STDOUT: the CGI response (head + body) */
    struct buf err;         /* FCGI_STDERR, at most the first 4 KiB */
    size_t max_out;         /* cap on out; 0 = none */
    int ended;              /* 1 once END_REQUEST arrived */
    uint32_t app_status;
    int protocol_status;    /* 0 = request complete */
};

void fcgiclient_decoder_init(struct fcgiclient_decoder *d, uint16_t id, size_t max_out);
void fcgiclient_decoder_fini(struct fcgiclient_decoder *d);
/* Feeds len bytes. Returns 0, or -1 with *why set (a static string) when
 * the bytes break the protocol: a version other than 1, a record for
 * another request id, an unknown record type for this request, STDOUT past
 * max_out, or data after END_REQUEST. */
int fcgiclient_decode(struct fcgiclient_decoder *d, const void *data, size_t len,
                      const char **why);

/* Splits a CGI response (what a responder writes on STDOUT) into its
 * header block and body. The header block ends at the first empty line
 * ("\r\n\r\n" or "\n\n"). *status is the number of the "Status:" header,
 * else 302 when there is a "Location:" header, else 200. Returns 0, or -1
 * when there is no complete header block or the Status is malformed. */
int fcgiclient_split_cgi(const char *data, size_t len, int *status, size_t *head_len,
                         size_t *body_off);
/* Finds header name (case-insensitive) in a header block of head_len
 * bytes. Returns a pointer to its value (borrowed from head, blanks
 * trimmed) and sets *vlen, or NULL. */
const char *fcgiclient_find_header(const char *head, size_t head_len, const char *name,
                                   size_t *vlen);

/* ---- the client ---- */

/* What became of one request. Pointers are borrowed, valid only during
 * the done callback. */
struct fcgiclient_result {
    void *udata;       /* as given to fcgiclient_start */
    const char *error; /* NULL when a complete response arrived; else why not */
    int status;        /* HTTP status from the CGI head */
    const char *head;  /* header block (without the empty line) */
    size_t head_len;
    const char *body;
    size_t body_len;
    const char *stderr_text; /* FCGI_STDERR, NUL-terminated, may be "" */
    uint64_t elapsed_ms;
};

typedef void (*fcgiclient_done_fn)(void *ctx, const struct fcgiclient_result *res);

struct fcgiclient;

/* Resolves address once: "host:port", "[v6]:port", "*:port" or
 * "0.0.0.0:port" (both mean this host: connects to 127.0.0.1, "[::]" to
 * ::1), or "unix:/path". timeout_ms bounds each request from its start
 * (0 = none). Returns a new client (free with fcgiclient_free(), which
 * accepts NULL), or NULL with err set. */
struct fcgiclient *fcgiclient_new(const char *address, unsigned timeout_ms, struct err *err);
void fcgiclient_free(struct fcgiclient *c);

/* Starts a request with n params (encoded and copied at once, so p may go
 * away on return) and a non-blocking connect. Never fails: a request that
 * cannot even start is reported through the done callback of the next
 * fcgiclient_poll. */
void fcgiclient_start(struct fcgiclient *c, const struct fcgiclient_param *p, size_t n,
                      void *udata);
/* Requests started and not yet reported. */
size_t fcgiclient_pending(const struct fcgiclient *c);
/* Waits at most wait_ms (-1 = until something happens) for progress and
 * calls done(ctx, result) once for each request that finished (answered,
 * failed or timed out); returns at once with 0 when nothing is pending.
 * Returns the number reported, or -1 when poll() failed for another reason
 * than EINTR. */
int fcgiclient_poll(struct fcgiclient *c, int wait_ms, fcgiclient_done_fn done, void *ctx);

#endif
