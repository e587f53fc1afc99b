/* stats.h - the scoreboard: per-worker state and counters in shared memory.
 *
 * The master maps it before forking; each worker writes only its own slot
 * (so no locks are needed: a reader may see a counter one step behind), and
 * the master or memfillctl aggregates. It feeds request_timeout, the status
 * endpoint and the "why was this not stored?" counters. */
#ifndef MEMFILL_STATS_H
#define MEMFILL_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memfill/outcome.h"

#define STATS_MAX_NODES 64
#define STATS_URI_MAX 128

/* Counters. The first OUTCOME_N are the store outcomes (outcome.h), each
 * at its enum store_outcome value (stats_outcome_counter); the others
 * count requests and events. Status and metrics list them in the order
 * they were added in (stats_counter_listed), not in this order. */
enum stats_counter {
    STATS_REQUESTS = OUTCOME_N,
    STATS_KEY_DRIFT,         /* MEMC_KEY differs from cache.key evaluated here */
    STATS_BACKEND_MISMATCH,  /* MEMC_BACKEND names no configured node */
    STATS_NODE_DRIFT,        /* nginx's node differs from the computed one */
    STATS_BAD_REQUEST,       /* refused: body or params too large, bad target */
    STATS_PURGED,
    STATS_RENDER_TOO_LARGE,  /* a template's output passed template.max_output (500) */
    STATS_DATA_TOO_LARGE,    /* a data file or data_url document over template.max_data */
    STATS_PARAMS_TIMEOUT,    /* a FastCGI connection closed: no complete request within
                                params_timeout_ms */
    STATS_TAG_INDEX_FAILED,  /* a stored page's tag marker could not be written */
    STATS_N
};

/* The counter of a store outcome. */
static inline enum stats_counter stats_outcome_counter(enum store_outcome o)
{
    return (enum stats_counter)o;
}

enum stats_state {
    STATS_STATE_EMPTY = 0,
    STATS_STATE_STARTING,
    STATS_STATE_IDLE,
    STATS_STATE_BUSY,
    STATS_STATE_STORING,
    STATS_STATE_EXITING,
};

struct stats_slot {
    volatile pid_t pid;
    volatile int state;            /* enum stats_state */
    volatile uint64_t started_ms;  /* monotonic start of the current request */
    volatile uint64_t born_ms;     /* when the worker started */
    char uri[STATS_URI_MAX];       /* current request (escaped, truncated) */
    volatile uint64_t counters[STATS_N];
    volatile uint64_t node_ok[STATS_MAX_NODES];
    volatile uint64_t node_fail[STATS_MAX_NODES];
    volatile uint64_t node_usec[STATS_MAX_NODES]; /* total store latency */
};

struct stats;

/* Maps nslots slots of shared anonymous memory (inherited across fork).
 * Returns a new scoreboard (free with stats_free() in the process that
 * made it), or NULL with errno set. */
struct stats *stats_new(size_t nslots);
void stats_free(struct stats *st);
size_t stats_nslots(const struct stats *st);
/* Borrowed pointer to slot i, valid until stats_free. */
struct stats_slot *stats_slot(struct stats *st, size_t i);
/* Master-wide counters (restarts, crash guard), in the shared map too. */
struct stats_master {
    volatile uint64_t started_unix;
    volatile uint64_t restarts;
    volatile uint64_t abnormal_exits;
    volatile uint64_t timeouts_killed;
    volatile uint64_t reloads;
    /* admin.listen (statusd.c): connections or requests refused (address
     * outside admin.allow, bad token), closed at the deadline, closed
     * because the cap of open connections was reached; and a gauge of the
     * connections open now */
    volatile uint64_t admin_refused;
    volatile uint64_t admin_timeouts;
    volatile uint64_t admin_overflow;
    volatile uint64_t admin_open;
    volatile uint64_t retired[STATS_N]; /* counters of workers that exited */
};
struct stats_master *stats_master(struct stats *st);

/* Adds a slot's counters into the retired totals and clears the slot. */
void stats_retire_slot(struct stats *st, size_t i);
/* Sum of counter c over all slots plus the retired totals. */
uint64_t stats_total(struct stats *st, enum stats_counter c);
/* The counter's name (an outcome's is store_outcome_name's), or "?". */
const char *stats_counter_name(enum stats_counter c);
/* The i-th counter (i < STATS_N) in the order status and metrics list
 * them: the order the counters were added in, kept so their output does
 * not change. */
enum stats_counter stats_counter_listed(size_t i);
const char *stats_state_name(int state);

#endif
