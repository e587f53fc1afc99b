/* statusd.h - the status listener the master serves itself, so status
 * answers even when every worker is busy. Plain HTTP/1.0 on admin.listen:
 *   GET /status    JSON       GET /metrics   Prometheus text
 * guarded like purge (admin.token in X-Memfill-Token, admin.allow), and
 * never blocking the master: every socket is polled by the master's loop,
 * each connection has a deadline and their number is capped. */
#ifndef MEMFILL_STATUSD_H
#define MEMFILL_STATUSD_H

#include <poll.h>
#include <stddef.h>

#include "memfill/err.h"
#include "memfill/status.h"

/* Open admin connections at most; more are closed at once (admin_overflow). */
#define STATUSD_MAX_CLIENTS 32
/* From accept to the last byte of the answer; then closed (admin_timeouts). */
#define STATUSD_DEADLINE_MS 2000

struct statusd;

/* Binds spec ("host:port", "[v6]:port" or "unix:/path"). Returns a new
 * listener (free with statusd_free()), or NULL with err set. */
struct statusd *statusd_new(const char *spec, struct err *err);
void statusd_free(struct statusd *sd);
/* Closes every descriptor of sd without freeing it: for a forked child,
 * which must not keep admin connections open behind the master. */
void statusd_close_fds(struct statusd *sd);
/* Fills pfd (room for 1 + STATUSD_MAX_CLIENTS entries) with what to poll:
 * the listener, and each open connection for reading or writing. Returns
 * the number of entries. */
size_t statusd_pollfds(const struct statusd *sd, struct pollfd *pfd);
/* Milliseconds until the earliest connection deadline, or -1 when there
 * is none (a bound for the caller's poll timeout). */
int statusd_wait_ms(const struct statusd *sd);
/* Accepts pending connections (closing those outside admin.allow or over
 * the cap), moves every connection on as far as it goes without waiting,
 * and closes the finished and the expired ones. Never blocks. Counts in
 * stats_master(st): admin_refused, admin_timeouts, admin_overflow. */
void statusd_serve(struct statusd *sd, struct stats *st, const struct status_info *info);

#endif
