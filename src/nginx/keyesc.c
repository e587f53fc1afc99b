/* keyesc.c - the memcached key as nginx writes it on the wire.
 *
 * key_escape() is a transcription of nginx 1.22's
 * ngx_escape_uri(NGX_ESCAPE_MEMCACHED) (doc/nginx.md §1), which turns the
 * 34 bytes 0x00-0x20 and '%' into "%XX" (upper-case hex) and copies every
 * other byte. It is a bijection, so key_unescape() inverts it.
 *
 * Invariants: every input is (pointer, length) and may hold any byte,
 * including NUL; nothing reads past the given length. */
#include "config.h"

#include "memfill/keyesc.h"
#include "memfill/util.h"

static const char upper_hex[] = "0123456789ABCDEF";

static int memc_escaped(unsigned char c)
{
    return c <= 0x20 || c == '%';
}

size_t key_escaped_len(const char *raw, size_t len)
{
    size_t n = len;
    for (size_t i = 0; i < len; i++)
        if (memc_escaped((unsigned char)raw[i]))
            n += 2;
    return n;
}

void key_escape(const char *raw, size_t len, struct buf *out)
{
    buf_reserve(out, key_escaped_len(raw, len));
    char *d = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (memc_escaped(c)) {
            *d++ = '%';
            *d++ = upper_hex[c >> 4];
            *d++ = upper_hex[c & 15];
        } else {
            *d++ = (char)c;
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
}

int key_unescape(const char *escaped, size_t len, struct buf *out)
{
    size_t start = out->len;
    buf_append(out, "", 0);
    for (size_t i = 0; i < len; i++) {
        if (escaped[i] != '%') {
            buf_append_char(out, escaped[i]);
            continue;
        }
        int hi = i + 2 < len ? util_hex_digit((unsigned char)escaped[i + 1]) : -1;
        int lo = hi < 0 ? -1 : util_hex_digit((unsigned char)escaped[i + 2]);
        if (lo < 0) {
            out->len = start;
            out->data[start] = '\0';
            return -1;
        }
        buf_append_char(out, (char)(hi << 4 | lo));
        i += 2;
    }
    return 0;
}
