/* listenspec.h - the syntax of the FastCGI "listen" value: pure, no name
 * resolution, no socket. */
#ifndef MEMFILL_LISTENSPEC_H
#define MEMFILL_LISTENSPEC_H

#include <stddef.h>

/* Checks the syntax of a "listen" value: "host:port", "[v6]:port",
 * "*:port" (IPv4 any), ":port", or "unix:/absolute/path". Returns 0, or -1
 * with a one-line reason in msg (msglen bytes, NUL-terminated). */
int listen_check_spec(const char *spec, char *msg, size_t msglen);

/* Splits an inet spec (not "unix:") into a new host string (free with
 * free(); "" = any address) and a port; *family is AF_INET for "*:port"
 * and ":port", else AF_UNSPEC. Returns 0, or -1 with msg filled and *host
 * NULL. */
int listen_parse_inet(const char *spec, char **host, unsigned *port, int *family, char *msg,
                      size_t msglen);

#endif
