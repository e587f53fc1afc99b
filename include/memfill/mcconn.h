/* mcconn.h - one connection to a memcached node where every wait has a
 * deadline.
 *
 * The transport under mcclient: a non-blocking socket, poll() and a
 * monotonic deadline (util_now_ms() milliseconds) given by the caller for
 * each call, so a whole exchange (connect, send, read the reply) ends by
 * the deadline however slowly the node sends or reads. Replies are read
 * through a bounded input buffer: a line longer than MCCONN_LINE_MAX is a
 * protocol error, never a larger allocation. Any failure closes the
 * connection, so bytes of an unfinished reply can never be read as the
 * answer to the next command (why: doc/reliability.md, "Stores are
 * bounded"). */
#ifndef MEMFILL_MCCONN_H
#define MEMFILL_MCCONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memfill/buf.h"

/* Longest reply line read (memcached's lines are far shorter). */
#define MCCONN_LINE_MAX 2048

enum mcconn_result {
    MCCONN_OK = 0,
    MCCONN_TIMEOUT,    /* the deadline passed */
    MCCONN_CONNECTION, /* cannot resolve or connect, reset, closed by the node */
    MCCONN_PROTOCOL,   /* a reply line too long */
};

struct mcconn;

/* Prepares a connection to address ("host:port", "[v6]:port", "unix:/path",
 * a bare host = port 11211: addr_parse's ADDR_MEMCACHED). Nothing is
 * looked up or connected until mcconn_open. Returns a new connection; free with
 * mcconn_free(). */
struct mcconn *mcconn_new(const char *address);
void mcconn_free(struct mcconn *c);

/* Makes sure the connection is open and clean: reuses the open socket
 * unless the node closed it or sent bytes nobody asked for, else connects
 * by deadline_ms. The host name is looked up at the first connect and
 * again after a failed one (the system resolver's own timeouts apply to
 * the lookup). *fresh is set to 1 when a new connection was made. */
enum mcconn_result mcconn_open(struct mcconn *c, uint64_t deadline_ms, int *fresh);
/* Closes the socket and drops unread input (safe when already closed). */
void mcconn_close(struct mcconn *c);
int mcconn_is_open(const struct mcconn *c);

/* Sends the iovcnt buffers whole by deadline_ms. */
enum mcconn_result mcconn_send(struct mcconn *c, const struct iovec *iov, int iovcnt,
                               uint64_t deadline_ms);
/* Reads the next "\r\n"-terminated line by deadline_ms. *line (borrowed,
 * valid until the next call on c) points at its text without the "\r\n",
 * NUL-terminated; *len is its length. */
enum mcconn_result mcconn_line(struct mcconn *c, uint64_t deadline_ms, const char **line,
                               size_t *len);
/* Appends exactly n bytes of the reply to out by deadline_ms. */
enum mcconn_result mcconn_read(struct mcconn *c, uint64_t deadline_ms, struct buf *out,
                               size_t n);
/* Appends to out what has arrived, at most max bytes (waiting for some
 * by deadline_ms when nothing has): for replies whose lines do not end in
 * "\r\n" (lru_crawler metadump ends its lines with "\n" alone). */
enum mcconn_result mcconn_read_some(struct mcconn *c, uint64_t deadline_ms, struct buf *out,
                                    size_t max);
/* Bytes received but not yet read (after a complete reply: unexpected). */
size_t mcconn_pending(const struct mcconn *c);

#endif
