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
 * a request on listen_fd (non-blocking). Every read of a connection runs
 * under a deadline of params_timeout_ms (see fcgi.c): a one-shot timer
 * whose signal (SIGRTMIN, installed here, never to be blocked) shuts the
 * connection down. Returns a new connection object (free with
 * fcgi_conn_free()), or NULL (libfcgi or the timer could not be set up). */
struct fcgi_conn *fcgi_conn_new(int listen_fd, unsigned params_timeout_ms);
void fcgi_conn_free(struct fcgi_conn *c);

/* The descriptor the next request arrives on: the kept-alive connection
 * when nginx asked to keep it, else the listening socket. A worker polls it
 * (with its stop signals unblocked) before calling fcgi_accept(). */
int fcgi_wait_fd(const struct fcgi_conn *c);
/* 1 when the worker holds a kept connection waiting for its next request
 * (fcgi_wait_fd is then that connection). */
int fcgi_kept(const struct fcgi_conn *c);
/* Closes a kept connection that brought no next request in time. */
void fcgi_close_kept(struct fcgi_conn *c);

/* Takes the next request: accepts a connection from the listening socket
 * (unless one is kept) and reads its params within the deadline. Returns
 * 0 and sets *envp (borrowed until fcgi_finish); -EAGAIN when there was
 * nothing to take (another worker was faster) or the connection ended
 * without a complete request (end of file, broken records: it is closed);
 * -ETIMEDOUT when the connection did not deliver its params within the
 * deadline (it is closed); any other negative value when the listening
 * socket failed and the worker should stop. */
int fcgi_accept(struct fcgi_conn *c, char ***envp);
/* Writes the address of the current (or last) connection's peer,
 * "127.0.0.1:40000", "[::1]:40000" or "a unix socket peer", into out;
 * returns what snprintf returns. */
int fcgi_peer(const struct fcgi_conn *c, char *out, size_t outlen);

/* Reads exactly len body bytes into out, within the deadline. Returns 0;
 * -ETIMEDOUT when the deadline passed (the connection is shut down), or -1
 * when the stream ended early or failed. */
int fcgi_read_body(struct fcgi_conn *c, size_t len, struct buf *out);
/* Reads and discards the rest of the body (so a kept-alive connection stays
 * in sync), at most limit bytes, within the deadline. Returns 0 at end of
 * body, -1 otherwise (the connection is then closed at fcgi_finish, never
 * reused). */
int fcgi_drain_body(struct fcgi_conn *c, size_t limit);

/* Writes the CGI response: Status, Content-Type, Content-Length, the extra
 * headers, a blank line, then the body unless head_only. Returns 0, or -1
 * when nginx has gone away (EPIPE and the like). */
int fcgi_write_response(struct fcgi_conn *c, const struct response *resp, int head_only);

/* Ends the request: flushes and, unless nginx asked to keep the
 * connection, closes it. What is left of stdin is read first, within the
 * deadline: on a kept connection an unread body up to 4 MB (beyond that the
 * connection is closed), else up to 64 KB (a GET's ignored body), so the
 * close needs no linger. Pointers from fcgi_accept become invalid. */
void fcgi_finish(struct fcgi_conn *c);

/* Tells libfcgi to stop accepting (async-signal-safe). */
void fcgi_shutdown_pending(void);

#endif
