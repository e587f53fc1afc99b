/* buf.h - growable byte buffer used for keys, bodies and headers. */
#ifndef MEMFILL_BUF_H
#define MEMFILL_BUF_H

#include <stddef.h>

/* A caller-embedded buffer: init with BUF_INIT or buf_init(), release with
 * buf_fini(). data is always NUL-terminated after any append (the NUL is
 * not counted in len), so a buffer of text can be passed as a C string. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
void buf_fini(struct buf *b);
/* Make room for at least more bytes past len (plus the NUL). */
void buf_reserve(struct buf *b, size_t more);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty the buffer; keeps the storage unless it grew past keep bytes. */
void buf_reset(struct buf *b, size_t keep);
/* Returns the data and empties b; the caller frees it with free(). */
char *buf_steal(struct buf *b);

#endif
