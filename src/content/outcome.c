/* outcome.c - the names of the store outcomes (outcome.h). */
#include "config.h"

#include "memfill/outcome.h"

static const char *const outcome_names[OUTCOME_N] = {
    "stored",          "skip_method",     "skip_status",       "skip_cookie",
    "skip_cache_control", "skip_size",    "skip_key_empty",    "skip_key_too_long",
    "skip_rule",       "skip_node_trouble", "skip_handler",    "skip_lock_lost",
    "fail_connection", "fail_timeout",    "fail_server",       "fail_too_large",
    "skip_gzip",       "lock_served",     "skip_target",
};

const char *store_outcome_name(enum store_outcome o)
{
    return (unsigned)o < OUTCOME_N ? outcome_names[o] : "?";
}

int store_outcome_failed(enum store_outcome o)
{
    return o >= OUTCOME_FAIL_CONNECTION && o <= OUTCOME_FAIL_TOO_LARGE;
}
