/* status.h - renders the scoreboard as JSON or Prometheus text. */
#ifndef MEMFILL_STATUS_H
#define MEMFILL_STATUS_H

#include <sys/types.h>

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/stats.h"

struct status_info {
    pid_t master_pid;
    const struct config *cfg; /* current config (node addresses, workers) */
    int listen_fd;            /* FastCGI socket, for the listen queue */
    unsigned generation;
    unsigned long max_active_reached; /* ticks seen with every worker busy */
};

/* Appends the JSON document to out. */
void status_render_json(struct stats *st, const struct status_info *info, struct buf *out);
/* Appends Prometheus text exposition format to out. */
void status_render_prometheus(struct stats *st, const struct status_info *info,
                              struct buf *out);
/* Counts slots in the given state among live workers. */
unsigned status_count_state(struct stats *st, int state);
/* Current length of the FastCGI accept queue, or -1 when unknown. */
long status_listen_queue(int fd);

#endif
