/* addr.h - socket address texts: "host:port", "[v6]:port", "unix:/path",
 * a bare host; and IPv4/IPv6 CIDR allow-lists ("10.0.0.0/8", "::1/128",
 * or a bare address meaning a single host).
 *
 * One parser serves every place that reads an address; the flags say
 * which forms that place accepts (a memcached address as nginx writes it,
 * a socket to listen on, the FastCGI socket a client connects to...), so
 * each keeps exactly its own rules. */
#ifndef MEMFILL_ADDR_H
#define MEMFILL_ADDR_H

#include <stddef.h>

#include "memfill/err.h"

/* Flags for addr_parse. */
#define ADDR_UNIX_ANYCASE 0x01u  /* "UNIX:" in any case, as nginx reads it */
#define ADDR_UNIX_ABSOLUTE 0x02u /* the socket path must start with '/' */
#define ADDR_UNIX_SUN_PATH 0x04u /* the socket path must fit a sockaddr_un */
#define ADDR_PORT_REQUIRED 0x08u /* a host without ":port" is refused */
#define ADDR_BARE_V6 0x10u       /* several ':' unbracketed: an IPv6 host, no port */
#define ADDR_LAST_COLON 0x20u    /* several ':' unbracketed: the port follows the last */
#define ADDR_ANY_HOST 0x40u      /* "*:port" and ":port" mean any address (any = 1) */
#define ADDR_EMPTY_HOST 0x80u    /* an empty host ("[]:port", ":port") is kept as "" */

/* A memcached address as nginx's memcached_pass and upstream `server`
 * lines write it: "host:port", "[v6]:port", "[v6]", a bare host or IPv6
 * address (the caller's default port), "unix:/path" in any case. */
#define ADDR_MEMCACHED (ADDR_UNIX_ANYCASE | ADDR_BARE_V6)
/* A socket to listen on ("listen"): "host:port", "[v6]:port", "*:port"
 * or ":port" (any IPv4 address), "unix:/absolute/path" that fits a
 * sockaddr_un. */
#define ADDR_LISTEN (ADDR_UNIX_ABSOLUTE | ADDR_UNIX_SUN_PATH | ADDR_PORT_REQUIRED | ADDR_ANY_HOST)
/* The status listener (admin.listen; statusd also wants a ':' in the
 * text): "host:port", "[v6]:port", "unix:/path" that fits a sockaddr_un;
 * like a memcached address, "[v6]" alone and a bare IPv6 address take
 * the default port. */
#define ADDR_ADMIN_LISTEN (ADDR_UNIX_SUN_PATH | ADDR_BARE_V6)
/* Default memcached port, for a memcached address without one. */
#define ADDR_MEMCACHED_PORT 11211

struct addr {
    int is_unix;   /* host is the socket path */
    int any;       /* ADDR_ANY_HOST matched: host is "" */
    char *host;    /* new string, brackets removed; free with addr_fini() */
    unsigned port; /* from 1 to 65535, the default when the text had none;
                    * 0 for a unix socket */
};

/* Parses s under flags into out (out->host is NULL on failure). A port is
 * decimal from 1 to 65535; default_port is used when the text has none
 * (and ADDR_PORT_REQUIRED is not set). Unless ADDR_EMPTY_HOST or
 * ADDR_ANY_HOST allows it, an empty host is refused; so is "unix:" with
 * no path, an unterminated '[', anything after "]" but ":port", and (by
 * default) several ':' without brackets. Returns 0, or -1 with err set (a
 * one-line reason quoting s, no position). Pure: no name resolution. */
int addr_parse(const char *s, unsigned flags, unsigned default_port, struct addr *out,
               struct err *err);
void addr_fini(struct addr *a);

/* Returns 1 when the len bytes at s start with "unix:" (in any case under
 * ADDR_UNIX_ANYCASE). */
int addr_is_unix(const char *s, size_t len, unsigned flags);

/* Parses len bytes of decimal digits as a port from 1 to 65535. Returns 0,
 * or -1 (empty, not all digits, 0 or above 65535). */
int addr_parse_port(const char *s, size_t len, unsigned *port);

/* ---- CIDR allow-lists ---- */

struct addr_cidr {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;         /* bits */
};

/* Parses s into out (out may be NULL to validate only). An IPv4-mapped
 * IPv6 address ("::ffff:10.0.0.1") is taken as IPv4. Returns 0 or -1. */
int addr_cidr_parse(const char *s, struct addr_cidr *out);
/* Returns 1 when the textual address ip (as in REMOTE_ADDR) is inside any
 * of the n parsed nets; an IPv4-mapped IPv6 address is compared as IPv4.
 * An address that does not parse never matches (a guard fails closed). */
int addr_cidr_match(const struct addr_cidr *nets, size_t n, const char *ip);

#endif
