/* handler.h - the content handlers behind one small interface.
 *
 * A handler is created once per route when the site is built (in the
 * master, before fork, so a bad template or root fails `memfill -t` and a
 * reload), and handles requests in the workers. Anything that must not
 * cross fork (curl handles, connections) is created lazily on first use
 * inside handle(). */
#ifndef MEMFILL_HANDLER_H
#define MEMFILL_HANDLER_H

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/request.h"
#include "memfill/route.h"

struct handler_ops {
    const char *name;
    /* Builds the handler's state for route. Returns 0 and sets *state, or
     * -1 with err set ("file:line:col: routes[i].key: message"). */
    int (*create)(const struct config *cfg, size_t route_index, void **state, struct err *err);
    /* Fills resp for req. Errors become an error response (resp->status),
     * never a crash; the handler sets resp->no_store when the page must
     * not be stored. */
    void (*handle)(void *state, const struct request *req, const struct route_match *m,
                   struct response *resp);
    /* Frees what create made and what handle() created lazily. NULL-safe. */
    void (*destroy)(void *state);
};

/* The ops for a handler kind. */
const struct handler_ops *handler_ops_for(enum config_handler kind);

extern const struct handler_ops handler_static_ops;
extern const struct handler_ops handler_template_ops;
extern const struct handler_ops handler_upstream_ops;
extern const struct handler_ops handler_plugin_ops;

#endif
