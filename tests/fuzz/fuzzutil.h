/* fuzzutil.h - small helpers shared by the libFuzzer targets.
 *
 * FUZZ_CHECK aborts with a message when an invariant fails, so libFuzzer
 * records the input as a crash (assert() would vanish under -DNDEBUG). */
#ifndef MEMFILL_FUZZ_UTIL_H
#define MEMFILL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Cuts data at the first occurrence of sep (seplen bytes): *a gets the part
 * before it, *b the part after (both point into data). Without sep, *a is
 * everything and *b is empty. Returns 1 when sep was found. */
static inline int fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t seplen,
                             const uint8_t **a, size_t *alen, const uint8_t **b, size_t *blen)
{
    const uint8_t *s = size >= seplen ? memmem(data, size, sep, seplen) : NULL;
    *a = data;
    if (!s) {
        *alen = size;
        *b = data + size;
        *blen = 0;
        return 0;
    }
    *alen = (size_t)(s - data);
    *b = s + seplen;
    *blen = size - *alen - seplen;
    return 1;
}

/* Returns a new NUL-terminated copy of n bytes; free with free(). */
static inline char *fuzz_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

#endif
