/* adminguard.h - who may use the operator endpoints (PURGE in the
 * workers, status and metrics on admin.listen): admin.token and the
 * admin.allow address list. */
#ifndef MEMFILL_ADMINGUARD_H
#define MEMFILL_ADMINGUARD_H

#include "memfill/conf.h"

/* Returns 1 when the textual address remote_addr is inside admin.allow
 * (the list parsed at config load). */
int admin_addr_allowed(const struct config *cfg, const char *remote_addr);

/* Returns 1 when a client at remote_addr presenting token (may be NULL)
 * may use the operator endpoints: admin.token must be set and equal
 * (compared in constant time), and remote_addr inside admin.allow. */
int admin_allowed(const struct config *cfg, const char *remote_addr, const char *token);

#endif
