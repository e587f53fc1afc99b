/* discovery.h - ElastiCache-style cluster auto discovery: asks a
 * configuration endpoint for the current memcached node list
 * (`config get cluster`). */
#ifndef MEMFILL_DISCOVERY_H
#define MEMFILL_DISCOVERY_H

#include <stddef.h>

#include "memfill/err.h"

struct discovery_result {
    unsigned long version; /* the cluster config version */
    char **addresses;      /* "ip:port" (or "host:port" when no ip), NULL-terminated */
    size_t n;
};

/* Parses a `config get cluster` reply (len bytes, starting at "CONFIG").
 * Returns 0 and fills out (free with discovery_result_fini()), or -1 with
 * err set when it is malformed. */
int discovery_parse(const char *reply, size_t len, struct discovery_result *out,
                    struct err *err);

/* Asks endpoint ("host:port") with timeout_ms for connect and reply.
 * Returns 1 with out filled, 0 when the endpoint is a plain memcached
 * (answers ERROR: use the configured nodes), -1 with err set on failure. */
int discovery_fetch(const char *endpoint, unsigned timeout_ms, struct discovery_result *out,
                    struct err *err);

void discovery_result_fini(struct discovery_result *r);
/* Returns 1 when r lists exactly the addresses (in order). */
int discovery_same(const struct discovery_result *r, char *const *addresses, size_t n);

#endif
