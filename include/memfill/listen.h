/* listen.h - the FastCGI listening socket: inherited on fd 0 (spawn-fcgi)
 * or bound from the config's "listen". */
#ifndef MEMFILL_LISTEN_H
#define MEMFILL_LISTEN_H

#include "memfill/config.h"
#include "memfill/err.h"

/* Returns 1 when fd is a listening socket. */
int listen_fd_is_listening(int fd);

/* Returns the listening fd to serve: fd 0 when it is a listening socket
 * (spawn-fcgi put it there; "listen" is then ignored), else a new socket
 * bound to cfg->listen ("host:port", "[v6]:port", "*:port",
 * "unix:/path" with listen_mode/owner/group) with cfg->backlog. Returns -1
 * with err set when neither is possible. */
int listen_open(const struct config *cfg, struct err *err);

#endif
