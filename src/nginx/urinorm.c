/* urinorm.c - nginx's $uri from the request target, byte for byte.
 *
 * key_normalize_uri() is a transcription of nginx 1.22 (doc/nginx.md §3):
 * the request-line byte checks of ngx_http_parse_request_line() (no
 * control bytes, no space, no DEL) followed by the state machine of
 * ngx_http_parse_complex_uri() with merge_slashes on. The machine decodes
 * %XX and feeds the decoded byte back through the state it came from, so
 * %2F acts as '/' and %2E%2E as "..", except that a decoded '%', '#' or
 * '?' is plain data and a decoded NUL is an error.
 *
 * Invariants: the input is (pointer, length) and may hold any byte,
 * including NUL; nothing reads past the given length. */
#include "config.h"

#include "memfill/urinorm.h"
#include "memfill/util.h"

/* ---- $uri: ngx_http_parse_complex_uri() ---- */

/* nginx's `usual` table (non-Win32): bytes that never change the parser's
 * state: everything except control bytes, space, '#', '%', '.', '/', '?'
 * and DEL. Bytes 0x80-0xFF are usual. */
static int uri_usual(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if (c <= 0x20 || c == 0x7f)
        return 0;
    return c != '#' && c != '%' && c != '.' && c != '/' && c != '?';
}

enum uri_state {
    URI_USUAL,
    URI_SLASH,
    URI_DOT,
    URI_DOT_DOT,
    URI_QUOTED,
    URI_QUOTED_SECOND,
};

/* Moves *u back over "/.." plus the segment before it, as nginx's "u -= 4"
 * then scan-back-to-'/' does. d[0..*u) is the output so far and ends with
 * "/.." (sw_dot_dot guarantees it). Returns -1 when that would climb above
 * the root, which nginx answers with 400. */
static int uri_up(const char *d, size_t *u)
{
    if (*u < 4)
        return -1;
    size_t i = *u - 4;
    for (;;) {
        if (d[i] == '/') {
            *u = i + 1;
            return 0;
        }
        if (i == 0)
            return -1;
        i--;
    }
}

/* The state machine proper. in[0..len) is the target (already checked for
 * forbidden bytes, and starting with '/' unless an empty path was
 * supplied); d receives at most len + 1 bytes. Returns the output length,
 * or -1 for a 400. */
static long uri_parse(const unsigned char *in, size_t len, char *d)
{
    enum uri_state state = URI_USUAL, quoted_state = URI_USUAL;
    unsigned char ch, decoded = 0;
    size_t u = 0, p = 0;

    if (len == 0 || in[0] == '?')
        d[u++] = '/'; /* nginx's empty_path_in_uri */
    if (len == 0)
        return (long)u;

    /* nginx reads one byte past the URI (the space or CRLF that ends it);
     * NEXT() yields a harmless stand-in for it. The loop runs while
     * p <= len, so a decoded byte is reprocessed without advancing. */
#define NEXT() (ch = p < len ? in[p] : (unsigned char)'\n', p++)
    NEXT();
    while (p <= len) {
        switch (state) {
        case URI_USUAL:
            if (uri_usual(ch)) {
                d[u++] = (char)ch;
                NEXT();
                break;
            }
            switch (ch) {
            case '/':
                state = URI_SLASH;
                d[u++] = (char)ch;
                break;
            case '%':
                quoted_state = state;
                state = URI_QUOTED;
                break;
            case '?':
            case '#':
                return (long)u;
            default:
                d[u++] = (char)ch;
                break;
            }
            NEXT();
            break;

        case URI_SLASH:
            if (uri_usual(ch)) {
                state = URI_USUAL;
                d[u++] = (char)ch;
                NEXT();
                break;
            }
            switch (ch) {
            case '/':
                break; /* merge_slashes */
            case '.':
                state = URI_DOT;
                d[u++] = (char)ch;
                break;
            case '%':
                quoted_state = state;
                state = URI_QUOTED;
                break;
            case '?':
            case '#':
                return (long)u;
            default:
                state = URI_USUAL;
                d[u++] = (char)ch;
                break;
            }
            NEXT();
            break;

        case URI_DOT:
            if (uri_usual(ch)) {
                state = URI_USUAL;
                d[u++] = (char)ch;
                NEXT();
                break;
            }
            switch (ch) {
            case '/':
                state = URI_SLASH;
                u--; /* drop the '.' of "/./" */
                break;
            case '.':
                state = URI_DOT_DOT;
                d[u++] = (char)ch;
                break;
            case '%':
                quoted_state = state;
                state = URI_QUOTED;
                break;
            case '?':
            case '#':
                return (long)u - 1;
            default:
                state = URI_USUAL;
                d[u++] = (char)ch;
                break;
            }
            NEXT();
            break;

        case URI_DOT_DOT:
            if (uri_usual(ch)) {
                state = URI_USUAL;
                d[u++] = (char)ch;
                NEXT();
                break;
            }
            switch (ch) {
            case '/':
            case '?':
            case '#':
                if (uri_up(d, &u) < 0)
                    return -1;
                if (ch != '/')
                    return (long)u;
                state = URI_SLASH;
                break;
            case '%':
                quoted_state = state;
                state = URI_QUOTED;
                break;
            default:
                state = URI_USUAL;
                d[u++] = (char)ch;
                break;
            }
            NEXT();
            break;

        case URI_QUOTED: {
            int v = util_hex_digit(ch);
            if (v < 0)
                return -1;
            decoded = (unsigned char)v;
            state = URI_QUOTED_SECOND;
            NEXT();
            break;
        }

        case URI_QUOTED_SECOND: {
            int v = util_hex_digit(ch);
            if (v < 0)
                return -1;
            int digit = ch >= '0' && ch <= '9';
            ch = (unsigned char)(decoded << 4 | v);
            /* nginx tests '%', '#' and NUL only after a decimal second
             * digit and '?' only after a-f: that covers 0x25, 0x23, 0x00
             * and 0x3F exactly. These become data (or an error); any other
             * decoded byte is reprocessed in the state before the '%'. */
            if (digit && (ch == '%' || ch == '#')) {
                state = URI_USUAL;
                d[u++] = (char)ch;
                NEXT();
                break;
            }
            if (digit && ch == '\0')
                return -1;
            if (!digit && ch == '?') {
                state = URI_USUAL;
                d[u++] = (char)ch;
                NEXT();
                break;
            }
            state = quoted_state;
            break;
        }
        }
    }
#undef NEXT

    if (state == URI_QUOTED || state == URI_QUOTED_SECOND)
        return -1;
    if (state == URI_DOT) {
        u--;
    } else if (state == URI_DOT_DOT) {
        if (uri_up(d, &u) < 0)
            return -1;
    }
    return (long)u;
}

int key_normalize_uri(const char *path, size_t len, struct buf *out)
{
    const unsigned char *in = (const unsigned char *)path;

    /* ngx_http_parse_request_line() (1.21.1 and later) refuses control
     * bytes and DEL anywhere in the target; a space would end the target
     * and leave garbage before "HTTP/1.x". All are 400s. */
    for (size_t i = 0; i < len; i++)
        if (in[i] <= 0x20 || in[i] == 0x7f)
            return -1;
    /* An origin-form target starts with '/'; "" and "?args" are what an
     * absolute-form target with an empty path leaves behind. */
    if (len > 0 && in[0] != '/' && in[0] != '?')
        return -1;

    buf_reserve(out, len + 1);
    long n = uri_parse(in, len, out->data + out->len);
    if (n < 0) {
        out->data[out->len] = '\0';
        return -1;
    }
    out->len += (size_t)n;
    out->data[out->len] = '\0';
    return 0;
}
