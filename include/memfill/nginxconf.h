/* nginxconf.h - prints the nginx side that matches a memfill config, so
 * the two cannot drift apart by hand editing. */
#ifndef MEMFILL_NGINXCONF_H
#define MEMFILL_NGINXCONF_H

#include "memfill/buf.h"
#include "memfill/conf.h"

/* memfillctl nginx-conf's default memcached keepalive pool per worker. */
#define NGINXCONF_KEEPALIVE_DEFAULT 512

struct nginxconf_opts {
    const char *listen;      /* nginx's listen, e.g. "80" or "127.0.0.1:8080" */
    const char *server_name; /* e.g. "_" */
    const char *fastcgi;     /* where memfill listens: "127.0.0.1:9000", "unix:/path" */
    unsigned keepalive;      /* idle memcached connections per nginx worker */
};

/* Appends the upstream blocks and one server block (to be included inside
 * nginx's http {} block) to out. Returns 0, or -1 when opts->fastcgi is
 * NULL and the config has no "listen" to take it from. */
int nginxconf_render(const struct config *cfg, const struct nginxconf_opts *opts,
                     struct buf *out);

#endif
