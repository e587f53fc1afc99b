/* listen.h - the FastCGI listening socket: inherited on fd 0 (spawn-fcgi)
 * or bound from the config's "listen". */
#ifndef MEMFILL_LISTEN_H
#define MEMFILL_LISTEN_H

#include <stddef.h>

#include "memfill/err.h"

struct config;

/* Returns 1 when fd is a listening socket. */
int listen_fd_is_listening(int fd);

/* The syntax of a "listen" value is checked by addr_parse with
 * ADDR_LISTEN (the config loader does it at load). */

/* Returns the listening fd to serve, made non-blocking: fd 0 when it is a
 * listening socket (spawn-fcgi put it there; "listen" is then ignored),
 * else a new socket bound to cfg->listen with cfg->backlog (a unix socket
 * gets listen_mode/owner/group; a live server on the same path is an
 * error, a stale socket file is replaced). Returns -1 with err set when
 * neither is possible. */
int listen_open(const struct config *cfg, struct err *err);

/* Closes fd (unless it is 0, the inherited socket) and removes the unix
 * socket file listen_open made for spec, if it is still that file. */
void listen_close(int fd, const char *spec);

#endif
