/* worker.h - one worker process's life: set up after fork, serve requests,
 * store pages, exit. */
#ifndef MEMFILL_WORKER_H
#define MEMFILL_WORKER_H

#include <stddef.h>
#include <sys/types.h>

#include "memfill/site.h"
#include "memfill/stats.h"

/* Runs a worker on listen_fd with site (inherited read-only) and scoreboard
 * slot slot_index. max_requests is this worker's recycling limit (0 =
 * none; the master adds the jitter). Never returns: exits 0 after a clean
 * stop or recycling, non-zero when it could not start. master_pid is
 * watched so the worker dies with the master. */
void worker_run(const struct site *site, int listen_fd, struct stats *st, size_t slot_index,
                unsigned max_requests, pid_t master_pid) __attribute__((noreturn));

#endif
