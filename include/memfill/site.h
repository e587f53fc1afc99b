/* site.h - everything derived from a config, built in one go.
 *
 * A site is the config plus what is compiled from it: the router, each
 * route's handler state (templates, roots, plugins), the key pattern, the
 * node selector and the skip rules. It is built completely or not at all,
 * so `memfill -t` checks exactly what a start or a reload would use, and a
 * failed reload leaves the old site serving. Built in the master; workers
 * inherit it across fork and never modify it (handlers keep per-process
 * state such as curl handles inside their own lazily created parts). */
#ifndef MEMFILL_SITE_H
#define MEMFILL_SITE_H

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/handler.h"
#include "memfill/keypattern.h"
#include "memfill/nodesel.h"
#include "memfill/route.h"

struct site {
    struct config *cfg;
    struct router *router;
    struct key_pattern *key;
    const struct nodesel *nodes; /* cfg->nodes, owned by the config */
    struct regex_list *skip_uri;
    const struct handler_ops **ops; /* per route */
    void **states;                  /* per route */
};

/* Builds the site from cfg, taking ownership of cfg (it is freed with the
 * site, or at once on failure). Returns a new site (free with site_free()),
 * or NULL with err set. */
struct site *site_new_own(struct config *cfg, struct err *err);
void site_free(struct site *site);

#endif
