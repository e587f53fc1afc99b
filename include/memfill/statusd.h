/* statusd.h - the status listener the master serves itself, so status
 * answers even when every worker is busy. Plain HTTP/1.0 on admin.listen:
 *   GET /status    JSON       GET /metrics   Prometheus text
 * guarded like purge (admin.token in X-Memfill-Token, admin.allow). */
#ifndef MEMFILL_STATUSD_H
#define MEMFILL_STATUSD_H

#include "memfill/err.h"
#include "memfill/status.h"

struct statusd;

/* Binds spec ("host:port", "[v6]:port" or "unix:/path"). Returns a new
 * listener (free with statusd_free()), or NULL with err set. */
struct statusd *statusd_new(const char *spec, struct err *err);
void statusd_free(struct statusd *sd);
/* The listening descriptor (for poll). */
int statusd_fd(const struct statusd *sd);
/* Accepts and answers every pending connection without blocking the
 * caller for more than a short per-client read timeout. */
void statusd_serve(struct statusd *sd, struct stats *st, const struct status_info *info);

/* Client side, for memfillctl stats: GETs path from the listener at spec
 * with token (may be NULL). Appends the body to out and returns the HTTP
 * status, or -1 with err set when the listener cannot be reached. */
int admin_client_get(const char *spec, const char *path, const char *token, struct buf *out,
                     struct err *err);

#endif
