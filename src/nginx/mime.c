/* mime.c - a fixed table of content types by extension.
 *
 * The entries follow nginx's stock mime.types, so a file relayed by memfill
 * carries the same type nginx gives it on a hit (nginx picks the type of a
 * memcached hit from the extension of $uri). */
#include "config.h"

#include "memfill/mime.h"
#include "memfill/util.h"

#include <string.h>

static const struct {
    const char *ext;
    const char *type;
} mime_table[] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"shtml", "text/html"},
    {"css", "text/css"},
    {"xml", "text/xml"},
    {"txt", "text/plain"},
    {"js", "application/javascript"},
    {"mjs", "application/javascript"},
    {"json", "application/json"},
    {"atom", "application/atom+xml"},
    {"rss", "application/rss+xml"},
    {"gif", "image/gif"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"svgz", "image/svg+xml"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"avif", "image/avif"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"wasm", "application/wasm"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"csv", "text/csv"},
    {"md", "text/markdown"},
};

const char *mime_type_for(const char *path, size_t len)
{
    size_t i = len;
    while (i > 0 && path[i - 1] != '.' && path[i - 1] != '/')
        i--;
    if (i == 0 || path[i - 1] != '.')
        return "application/octet-stream";
    const char *ext = path + i;
    size_t elen = len - i;
    for (size_t k = 0; k < sizeof mime_table / sizeof *mime_table; k++)
        if (strlen(mime_table[k].ext) == elen && util_ascii_caseeq(ext, mime_table[k].ext, elen))
            return mime_table[k].type;
    return "application/octet-stream";
}
