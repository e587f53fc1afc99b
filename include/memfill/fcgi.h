/* fcgi.h - the libfcgi adapter: accept a request, read its body, write a
 * response, finish. The only module that includes fcgiapp.h. */
#ifndef MEMFILL_FCGI_H
#define MEMFILL_FCGI_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/request.h"

struct fcgi_conn;

/* Initialises libfcgi for this process (after fork, after the worker's
 * signal handlers are installed so libfcgi leaves them alone) and prepares
 * a request on listen_fd. Returns a new connection object (free with
 * fcgi_conn_free()), or NULL. */
struct fcgi_conn *fcgi_conn_new(int listen_fd);
void fcgi_conn_free(struct fcgi_conn *c);

/* The descriptor the next request arrives on: the kept-alive connection
 * when nginx asked to keep it, else the listening socket. A worker polls it
 * (with its stop signals unblocked) before calling fcgi_accept(). */
int fcgi_wait_fd(const struct fcgi_conn *c);

/* Takes the next request. Returns 0 and sets *envp (borrowed until
 * fcgi_finish); -EAGAIN (or -EWOULDBLOCK) when the listening socket is
 * non-blocking and another worker took the connection (poll again); any
 * other negative value when the worker should stop (shutdown pending, or
 * the listening socket failed). */
int fcgi_accept(struct fcgi_conn *c, char ***envp);

/* Reads exactly len body bytes into out. Returns 0, or -1 when the stream
 * ended early or failed. */
int fcgi_read_body(struct fcgi_conn *c, size_t len, struct buf *out);
/* Reads and discards the rest of the body (so a kept-alive connection stays
 * in sync), at most limit bytes. Returns 0 at end of body, -1 otherwise
 * (the connection is then closed at fcgi_finish, never reused). */
int fcgi_drain_body(struct fcgi_conn *c, size_t limit);

/* Writes the CGI response: Status, Content-Type, Content-Length, the extra
 * headers, a blank line, then the body unless head_only. Returns 0, or -1
 * when nginx has gone away (EPIPE and the like). */
int fcgi_write_response(struct fcgi_conn *c, const struct response *resp, int head_only);

/* Ends the request: flushes and, unless nginx asked to keep the
 * connection, closes it. On a kept connection an unread body is drained
 * first (up to 4 MB; beyond that the connection is closed). Pointers from
 * fcgi_accept become invalid. */
void fcgi_finish(struct fcgi_conn *c);

/* Tells libfcgi to stop accepting (async-signal-safe). */
void fcgi_shutdown_pending(void);

#endif
