/* mime.h - content types by file extension, as nginx's mime.types maps
 * them (the common subset). */
#ifndef MEMFILL_MIME_H
#define MEMFILL_MIME_H

#include <stddef.h>

/* Returns the content type for path's extension (case-insensitive), or
 * "application/octet-stream" when unknown. The result is static. */
const char *mime_type_for(const char *path, size_t len);

#endif
