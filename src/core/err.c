/* err.c - first-error-wins error records with file:line:col positions. */
#include "config.h"

#include "memfill/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void err_clear(struct err *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

void err_set(struct err *e, const char *source, int line, int column, const char *fmt, ...)
{
    if (!e || e->set)
        return;
    e->set = 1;
    snprintf(e->source, sizeof e->source, "%s", source ? source : "");
    e->line = line;
    e->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
}

const char *err_format(const struct err *e, char *out, unsigned long outlen)
{
    if (e->source[0] && e->line > 0)
        snprintf(out, outlen, "%s:%d:%d: %s", e->source, e->line, e->column, e->text);
    else if (e->source[0])
        snprintf(out, outlen, "%s: %s", e->source, e->text);
    else if (e->line > 0)
        snprintf(out, outlen, "%d:%d: %s", e->line, e->column, e->text);
    else
        snprintf(out, outlen, "%s", e->text);
    return out;
}
