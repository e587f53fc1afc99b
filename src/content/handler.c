/* handler.c - the registry from a configured handler kind to its ops. */
#include "config.h"

#include "memfill/handler.h"

#include <stddef.h>

const struct handler_ops *handler_ops_for(enum config_handler kind)
{
    switch (kind) {
    case CONFIG_HANDLER_STATIC:
        return &handler_static_ops;
    case CONFIG_HANDLER_TEMPLATE:
        return &handler_template_ops;
    case CONFIG_HANDLER_UPSTREAM:
        return &handler_upstream_ops;
    case CONFIG_HANDLER_PLUGIN:
        return &handler_plugin_ops;
    }
    return NULL;
}
