/* master.h - the supervisor: pre-forks workers, respawns them, reloads
 * and stops gracefully. */
#ifndef MEMFILL_MASTER_H
#define MEMFILL_MASTER_H

#include "memfill/site.h"

/* Runs the master with site (owned from here on: freed on exit or replaced
 * on reload) serving listen_fd. config_path is re-read on SIGHUP. Returns
 * the process exit code. */
int master_run(struct site *site, const char *config_path, int listen_fd);

#endif
