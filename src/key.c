/* key.c - whether nginx can read a key back from memcached.
 *
 * The escaping, $uri normalisation and key patterns that used to live here
 * are keyesc.c, urinorm.c and keypattern.c. */
#include "config.h"

#include "memfill/key.h"
#include "memfill/keyesc.h"

int key_is_storable(const char *raw, size_t len)
{
    if (len == 0 || len > KEY_MAX_ESCAPED)
        return 0;
    return key_escaped_len(raw, len) <= KEY_MAX_ESCAPED;
}
