/* err.h - a caller-owned error record with a source position.
 *
 * Parsers and validators take an optional struct err *; NULL is allowed.
 * The first error set wins: later, less precise failures on the way out do
 * not overwrite it. */
#ifndef MEMFILL_ERR_H
#define MEMFILL_ERR_H

#define ERR_TEXT_MAX 320
#define ERR_SOURCE_MAX 256

struct err {
    int set;                     /* 0 until the first err_set */
    char source[ERR_SOURCE_MAX]; /* file name, or "" */
    int line;                    /* 1-based, 0 when unknown */
    int column;                  /* 1-based, 0 when unknown */
    char text[ERR_TEXT_MAX];
};

void err_clear(struct err *e);
/* Record an error unless one is already recorded. e may be NULL. */
void err_set(struct err *e, const char *source, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Format as "source:line:col: text" (parts that are unknown are left out)
 * into out; returns out. */
const char *err_format(const struct err *e, char *out, unsigned long outlen);

#endif
