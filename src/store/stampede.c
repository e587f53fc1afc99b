/* stampede.c - the stampede lock: memcached `add` as a lock, polling for
 * the page the holder stores.
 *
 * Why memcached and not the scoreboard: the lock must cover every memfill
 * in front of the same memcached cluster, not one host's workers, and it
 * must live on the node of the page so that one node's trouble does not
 * hold up pages of another. Why polling: memcached has no notification;
 * a get every 20 ms costs ~50 us on a LAN and bounds the extra latency a
 * waiter sees once the page is stored.
 *
 * Races, and why they are harmless:
 *   - the holder stores then deletes the lock; a waiter that saw "no page"
 *     and then "no lock" looks for the page once more before it tries to
 *     take the lock itself, so it does not render again needlessly;
 *   - a worker that takes a lock just released (its request was queued in
 *     the listen backlog while the page was produced) looks for the page
 *     right after taking the lock and serves it if it is there;
 *   - a holder slower than lock_ttl loses its lock to another worker; on
 *     leaving it deletes the lock only if it still holds its own token, so
 *     it never frees another worker's lock (get-compare-delete: a lock
 *     taken between the get and the delete is freed early, costing one
 *     extra render, never a wrong page). */
#include "config.h"

#include "memfill/stampede.h"
#include "memfill/keyesc.h"
#include "memfill/srcache.h"
#include "memfill/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PASS_MARK "pass"

void stampede_init(struct stampede *s)
{
    memset(s, 0, sizeof *s);
    buf_init(&s->lock_key);
}

void stampede_fini(struct stampede *s)
{
    buf_fini(&s->lock_key);
}

int stampede_lock_key(const char *esc_key, size_t len, struct buf *out)
{
    if (sizeof STAMPEDE_LOCK_PREFIX - 1 + len > KEY_MAX_ESCAPED)
        return -1;
    buf_append_str(out, STAMPEDE_LOCK_PREFIX);
    buf_append(out, esc_key, len);
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* Inflates a gzip member; returns 0 or -1. */
static int gunzip(const char *in, size_t len, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -1;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    int rc;
    do {
        buf_reserve(out, len * 2 + 4096);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1);
        size_t before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        out->len += before - z.avail_out;
        out->data[out->len] = '\0';
    } while (rc == Z_OK);
    inflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

/* Fills resp from a stored item. Returns 0, or -1 when the item cannot be
 * served (a broken gzip value, or a srcache item that is not one). */
static int serve_item(const struct config *cfg, const struct config_route *r, const char *v,
                      size_t vlen, uint32_t flags, struct response *resp)
{
    struct buf plain = BUF_INIT;
    if (cfg->gzip_flag && (flags & cfg->gzip_flag) && !r->srcache) {
        if (gunzip(v, vlen, &plain) < 0) {
            buf_fini(&plain);
            return -1;
        }
        v = plain.data ? plain.data : "";
        vlen = plain.len;
    }
    int rc = 0;
    if (r->srcache) {
        rc = srcache_decode(v, vlen, resp);
    } else {
        response_reset(resp, 1 << 20);
        resp->status = 200;
        buf_append_str(&resp->content_type, r->content_type ? r->content_type : "text/html");
        buf_append(&resp->body, v, vlen);
    }
    buf_fini(&plain);
    return rc;
}

enum look { LOOK_MISS, LOOK_SERVED, LOOK_ERROR };

/* Looks for the page; serves it when it is there. */
static enum look look_page(const struct site *site, struct mcclient *mc,
                           const struct store_location *loc, size_t route,
                           struct response *resp)
{
    char *v = NULL;
    size_t vlen = 0;
    uint32_t flags = 0;
    enum mcc_result r = mcclient_get(mc, (size_t)loc->node, loc->esc_key.data, loc->esc_key.len,
                                     &v, &vlen, &flags);
    if (r == MCC_NOT_STORED)
        return LOOK_MISS;
    if (r != MCC_OK)
        return LOOK_ERROR;
    int rc = serve_item(site->cfg, &site->cfg->routes[route], v, vlen, flags, resp);
    free(v);
    return rc == 0 ? LOOK_SERVED : LOOK_MISS;
}

enum lock_state { LOCK_GONE, LOCK_HELD, LOCK_PASS, LOCK_ERROR };

static enum lock_state look_lock(struct stampede *s, struct mcclient *mc)
{
    char *v = NULL;
    size_t vlen = 0;
    enum mcc_result r =
        mcclient_get(mc, s->node, s->lock_key.data, s->lock_key.len, &v, &vlen, NULL);
    if (r == MCC_NOT_STORED)
        return LOCK_GONE;
    if (r != MCC_OK)
        return LOCK_ERROR;
    int pass = vlen == sizeof PASS_MARK - 1 && memcmp(v, PASS_MARK, vlen) == 0;
    free(v);
    return pass ? LOCK_PASS : LOCK_HELD;
}

enum stampede_result stampede_enter(struct stampede *s, const struct site *site,
                                    struct mcclient *mc, const struct request *req, size_t route,
                                    const struct store_location *loc, struct response *resp)
{
    const struct config *cfg = site->cfg;
    s->result = STAMPEDE_OFF;
    if (!cfg->lock_wait_ms || route >= cfg->nroutes || req->warm)
        return s->result;
    buf_reset(&s->lock_key, 1024);
    if (!store_location_allows(loc) ||
        stampede_lock_key(loc->esc_key.data, loc->esc_key.len, &s->lock_key) < 0)
        return s->result;
    s->node = (size_t)loc->node;
    s->ttl = cfg->lock_ttl;
    snprintf(s->token, sizeof s->token, "%ld.%u", (long)getpid(), ++s->serial);
    uint64_t deadline = util_now_ms() + cfg->lock_wait_ms;
    enum stampede_result out = STAMPEDE_OFF;
    for (;;) {
        enum mcc_result a = mcclient_add(mc, s->node, s->lock_key.data, s->lock_key.len,
                                         s->token, strlen(s->token), 0, cfg->lock_ttl);
        if (a == MCC_OK) {
            /* A request queued while the page was produced: it is there now. */
            if (look_page(site, mc, loc, route, resp) == LOOK_SERVED) {
                mcclient_delete(mc, s->node, s->lock_key.data, s->lock_key.len);
                out = STAMPEDE_SERVED;
            } else {
                out = STAMPEDE_HOLDER;
            }
            break;
        }
        if (a != MCC_NOT_STORED)
            break; /* memcached trouble: no protection */
        /* Someone holds it: wait for the page. */
        enum lock_state ls = LOCK_HELD;
        enum look lp = LOOK_MISS;
        while ((ls = look_lock(s, mc)) == LOCK_HELD) {
            uint64_t now = util_now_ms();
            if (now >= deadline)
                break;
            sleep_ms(deadline - now < STAMPEDE_POLL_MS ? (unsigned)(deadline - now)
                                                       : STAMPEDE_POLL_MS);
            lp = look_page(site, mc, loc, route, resp);
            if (lp != LOOK_MISS)
                break;
        }
        if (lp == LOOK_SERVED) {
            out = STAMPEDE_SERVED;
            break;
        }
        if (lp == LOOK_ERROR || ls == LOCK_ERROR || ls == LOCK_PASS)
            break; /* no protection: produce and store as usual */
        if (ls == LOCK_HELD) {
            out = STAMPEDE_TIMED_OUT;
            break;
        }
        /* The lock went away: the page may have been stored just now. */
        lp = look_page(site, mc, loc, route, resp);
        if (lp == LOOK_SERVED) {
            out = STAMPEDE_SERVED;
            break;
        }
        if (lp == LOOK_ERROR)
            break;
        if (util_now_ms() >= deadline) {
            out = STAMPEDE_TIMED_OUT;
            break;
        }
        /* ... else the holder did not store it: try to take the lock. */
    }
    s->result = out;
    return out;
}

void stampede_settle(const struct stampede *s, struct store_job *job)
{
    if (s->result == STAMPEDE_SERVED)
        job->decision = OUTCOME_LOCK_SERVED;
    else if (s->result == STAMPEDE_TIMED_OUT && job->decision == OUTCOME_STORED)
        job->decision = OUTCOME_SKIP_LOCK_LOST;
}

void stampede_leave(struct stampede *s, struct mcclient *mc, enum store_outcome outcome)
{
    if (s->result == STAMPEDE_HOLDER) {
        if (outcome == OUTCOME_STORED) {
            char *v = NULL;
            size_t vlen = 0;
            enum mcc_result r =
                mcclient_get(mc, s->node, s->lock_key.data, s->lock_key.len, &v, &vlen, NULL);
            if (r == MCC_OK && vlen == strlen(s->token) && memcmp(v, s->token, vlen) == 0)
                mcclient_delete(mc, s->node, s->lock_key.data, s->lock_key.len);
            free(v);
        } else {
            /* Not storable (or the store failed): let the others produce
             * it in parallel for a while instead of queueing. */
            mcclient_set(mc, s->node, s->lock_key.data, s->lock_key.len, PASS_MARK,
                         sizeof PASS_MARK - 1, 0, s->ttl);
        }
    }
    s->result = STAMPEDE_OFF;
    buf_reset(&s->lock_key, 1024);
}
