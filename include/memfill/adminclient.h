/* adminclient.h - memfillctl's client for the status listener
 * (admin.listen, served by statusd in the master). */
#ifndef MEMFILL_ADMINCLIENT_H
#define MEMFILL_ADMINCLIENT_H

#include "memfill/buf.h"
#include "memfill/err.h"

/* GETs path from the listener at spec (admin.listen: "host:port",
 * "[v6]:port" or "unix:/path") with token (may be NULL), in at most 5 s
 * per read. Appends the body to out and returns the HTTP status, or -1
 * with err set when the listener cannot be reached or gives no HTTP
 * answer. */
int admin_client_get(const char *spec, const char *path, const char *token, struct buf *out,
                     struct err *err);

#endif
