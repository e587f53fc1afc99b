/* key.h - whether nginx can read a key back from memcached.
 *
 * Facts: doc/nginx.md §1-§2 (verified on nginx 1.22). Escaping is
 * keyesc.h, $uri normalisation urinorm.h, key patterns keypattern.h. */
#ifndef MEMFILL_KEY_H
#define MEMFILL_KEY_H

#include <stddef.h>

/* Returns 1 when nginx can read raw back from memcached: the key is not
 * empty (nginx answers 500) and its escaped form is at most
 * KEY_MAX_ESCAPED bytes (memcached refuses longer keys and nginx answers
 * 502, marking the node failed). Returns 0 otherwise. */
int key_is_storable(const char *raw, size_t len);

#endif
