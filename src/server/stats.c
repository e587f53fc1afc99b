/* stats.c - the shared-memory scoreboard.
 *
 * One anonymous shared mapping holds the master block and one slot per
 * worker. A worker owns its slot for its life; when it exits the master
 * folds its counters into the retired totals, so totals never go backwards
 * across worker restarts. */
#include "config.h"

#include "memfill/stats.h"

#include <string.h>
#include <sys/mman.h>

struct stats {
    size_t nslots;
    size_t map_len;
    struct stats_master *master;
    struct stats_slot *slots;
};

/* The counters after the outcomes, from STATS_REQUESTS on. */
static const char *const event_names[STATS_N - OUTCOME_N] = {
    "requests",    "key_drift",        "backend_mismatch", "node_drift",     "bad_request",
    "purged",      "render_too_large", "data_too_large",   "params_timeout",
    "tag_index_failed",
};

/* The listing order: the order the counters were added in. */
static const unsigned char listed[STATS_N] = {
    STATS_REQUESTS,          OUTCOME_STORED,           OUTCOME_SKIP_METHOD,
    OUTCOME_SKIP_STATUS,     OUTCOME_SKIP_COOKIE,      OUTCOME_SKIP_CACHE_CONTROL,
    OUTCOME_SKIP_SIZE,       OUTCOME_SKIP_KEY_EMPTY,   OUTCOME_SKIP_KEY_TOO_LONG,
    OUTCOME_SKIP_RULE,       OUTCOME_SKIP_NODE_TROUBLE, OUTCOME_SKIP_HANDLER,
    OUTCOME_SKIP_LOCK_LOST,  OUTCOME_FAIL_CONNECTION,  OUTCOME_FAIL_TIMEOUT,
    OUTCOME_FAIL_SERVER,     OUTCOME_FAIL_TOO_LARGE,   STATS_KEY_DRIFT,
    STATS_BACKEND_MISMATCH,  STATS_NODE_DRIFT,         STATS_BAD_REQUEST,
    STATS_PURGED,            OUTCOME_SKIP_GZIP,        OUTCOME_LOCK_SERVED,
    OUTCOME_SKIP_TARGET,     STATS_RENDER_TOO_LARGE,   STATS_DATA_TOO_LARGE,
    STATS_PARAMS_TIMEOUT,    STATS_TAG_INDEX_FAILED,
};

struct stats *stats_new(size_t nslots)
{
    size_t len = sizeof(struct stats) + sizeof(struct stats_master) +
                 nslots * sizeof(struct stats_slot);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, len);
    struct stats *st = p;
    st->nslots = nslots;
    st->map_len = len;
    st->master = (struct stats_master *)(st + 1);
    st->slots = (struct stats_slot *)(st->master + 1);
    return st;
}

void stats_free(struct stats *st)
{
    if (st)
        munmap(st, st->map_len);
}

size_t stats_nslots(const struct stats *st)
{
    return st->nslots;
}

struct stats_slot *stats_slot(struct stats *st, size_t i)
{
    return i < st->nslots ? &st->slots[i] : NULL;
}

struct stats_master *stats_master(struct stats *st)
{
    return st->master;
}

void stats_retire_slot(struct stats *st, size_t i)
{
    struct stats_slot *s = stats_slot(st, i);
    if (!s)
        return;
    for (int c = 0; c < STATS_N; c++)
        st->master->retired[c] += s->counters[c];
    /* Node counters are kept: they are per node, not per worker life. */
    for (int c = 0; c < STATS_N; c++)
        s->counters[c] = 0;
    s->pid = 0;
    s->state = STATS_STATE_EMPTY;
    s->uri[0] = '\0';
}

uint64_t stats_total(struct stats *st, enum stats_counter c)
{
    uint64_t t = st->master->retired[c];
    for (size_t i = 0; i < st->nslots; i++)
        t += st->slots[i].counters[c];
    return t;
}

const char *stats_counter_name(enum stats_counter c)
{
    if ((unsigned)c < OUTCOME_N)
        return store_outcome_name((enum store_outcome)c);
    return (unsigned)c < STATS_N ? event_names[c - OUTCOME_N] : "?";
}

enum stats_counter stats_counter_listed(size_t i)
{
    return i < STATS_N ? (enum stats_counter)listed[i] : STATS_N;
}

const char *stats_state_name(int state)
{
    static const char *const names[] = {"empty", "starting", "idle", "busy", "storing", "exiting"};
    return state >= 0 && state <= STATS_STATE_EXITING ? names[state] : "?";
}
