/* loglevel.h - the log levels, on their own so that a module can name a
 * level (the config's log.level) without depending on the log sink. */
#ifndef MEMFILL_LOGLEVEL_H
#define MEMFILL_LOGLEVEL_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

#endif
