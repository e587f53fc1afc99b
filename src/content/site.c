/* site.c - builds a complete site from a config, or nothing.
 *
 * Order: key pattern, skip rules, router, then one handler per route (the
 * node selector comes built with the config). The first failure frees everything built so far and reports
 * the position in the config file. */
#include "config.h"

#include "memfill/site.h"
#include "memfill/util.h"

#include <stdlib.h>

struct site *site_new_own(struct config *cfg, struct err *err)
{
    struct site *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->ops = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *s->ops);
    s->states = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *s->states);
    s->nodes = cfg->nodes; /* built once, when the config was loaded */
    struct err e;
    err_clear(&e);
    s->key = key_pattern_compile(cfg->key, &e);
    if (!s->key) {
        err_set(err, cfg->path, 0, 0, "cache.key: %s (at byte %d of \"%s\")", e.text, e.column,
                cfg->key);
        goto fail;
    }
    s->skip_uri = regex_list_new(cfg->skip_uri, "cache.skip_uri", &e);
    if (!s->skip_uri) {
        err_set(err, cfg->path, 0, 0, "%s", e.text);
        goto fail;
    }
    s->router = router_new(cfg, err);
    if (!s->router)
        goto fail;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct handler_ops *ops = handler_ops_for(cfg->routes[i].handler);
        if (!ops) {
            err_set(err, cfg->path, cfg->routes[i].pos.line, cfg->routes[i].pos.col,
                    "routes[%zu].handler: \"%s\" is not available in this build", i,
                    config_handler_name(cfg->routes[i].handler));
            goto fail;
        }
        if (ops->create(cfg, i, &s->states[i], err) < 0)
            goto fail;
        s->ops[i] = ops;
    }
    return s;
fail:
    site_free(s);
    return NULL;
}

void site_free(struct site *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->cfg && i < s->cfg->nroutes; i++)
        if (s->ops[i])
            s->ops[i]->destroy(s->states[i]);
    free(s->ops);
    free(s->states);
    router_free(s->router);
    regex_list_free(s->skip_uri);
    key_pattern_free(s->key);
    config_free(s->cfg);
    free(s);
}
