/* admin.h - the PURGE requests handled by the workers, behind the guard
 * of adminguard.h. */
#ifndef MEMFILL_ADMIN_H
#define MEMFILL_ADMIN_H

#include "memfill/mcclient.h"
#include "memfill/request.h"
#include "memfill/site.h"
#include "memfill/stats.h"

/* Handles a PURGE request: the page of the request's own key (MEMC_KEY or
 * cache.key, as request_key() left it in req), or the raw key in the
 * X-Memfill-Purge-Key header, or every
 * page of the tags in X-Memfill-Purge-Tag. Fills resp with a JSON answer
 * (200 purged, 404 nothing there, 403 refused, 502 memcached failed). */
void admin_purge(const struct site *site, struct mcclient *mc, const struct request *req,
                 struct response *resp, struct stats_slot *slot);

#endif
