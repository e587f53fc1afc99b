/* handler_static.c - relays files from a document root.
 *
 * The file is root + $uri, as with nginx's `root` directive ("/" and other
 * paths ending in '/' get index.html). $uri is already decoded and
 * normalised (by nginx, or by key_normalize_uri); it is checked again here
 * because the docroot must not be escapable whatever reaches us: a path
 * with a ".." or "." segment, a backslash or a control byte is refused, and
 * the resolved file (symlinks followed) must still lie under the resolved
 * root. Refusals answer 404, so probing learns nothing. */
#include "config.h"

#include "memfill/handler.h"
#include "memfill/mime.h"
#include "memfill/urinorm.h"
#include "memfill/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files above this are refused (a page cache relays pages, not media). */
#define STATIC_MAX_FILE (64UL << 20)

struct static_state {
    char *root;     /* realpath of the configured root */
    size_t root_len;
    const char *content_type; /* route override, or NULL */
};

static int static_create(const struct config *cfg, size_t route_index, void **state,
                         struct err *err)
{
    const struct config_route *r = &cfg->routes[route_index];
    char *real = realpath(r->root, NULL);
    struct stat st;
    if (!real || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        err_set(err, cfg->path, r->pos.line, r->pos.col,
                "routes[%zu].root: \"%s\" is not a readable folder", route_index, r->root);
        free(real);
        return -1;
    }
    struct static_state *s = xcalloc(1, sizeof *s);
    s->root = real;
    s->root_len = strlen(real);
    s->content_type = r->content_type;
    *state = s;
    return 0;
}

/* Returns 1 when path (starting with '/') is safe to append to a root. */
static int path_is_safe(const char *path, size_t len)
{
    if (len == 0 || path[0] != '/')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            return 0;
        if (c == '/' && i + 1 < len && path[i + 1] == '.') {
            size_t j = i + 2;
            if (j == len || path[j] == '/')
                return 0; /* "/." */
            if (path[j] == '.' && (j + 1 == len || path[j + 1] == '/'))
                return 0; /* "/.." */
        }
    }
    return 1;
}

static void static_handle(void *state, const struct request *req, const struct route_match *m,
                          struct response *resp)
{
    struct static_state *s = state;
    (void)m;
    if (!req->path_ok || !path_is_safe(req->path.data, req->path.len)) {
        response_error(resp, 404, "The requested page was not found.");
        resp->no_store = 1;
        return;
    }
    struct buf file = BUF_INIT;
    buf_append(&file, s->root, s->root_len);
    buf_append(&file, req->path.data, req->path.len);
    if (file.data[file.len - 1] == '/')
        buf_append_str(&file, "index.html");
    char *real = realpath(file.data, NULL);
    int fd = -1;
    struct stat st;
    if (real && strncmp(real, s->root, s->root_len) == 0 &&
        (real[s->root_len] == '/' || real[s->root_len] == '\0'))
        fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        free(real);
        buf_fini(&file);
        response_error(resp, 404, "The requested page was not found.");
        resp->no_store = 1;
        return;
    }
    if ((unsigned long)st.st_size > STATIC_MAX_FILE) {
        close(fd);
        free(real);
        buf_fini(&file);
        response_error(resp, 500, "The file is too large to relay.");
        resp->no_store = 1;
        return;
    }
    buf_reserve(&resp->body, (size_t)st.st_size);
    size_t want = (size_t)st.st_size;
    while (want > 0) {
        ssize_t n = read(fd, resp->body.data + resp->body.len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        resp->body.len += (size_t)n;
        want -= (size_t)n;
    }
    resp->body.data[resp->body.len] = '\0';
    close(fd);
    if (want > 0) {
        response_error(resp, 500, "The file could not be read.");
        resp->no_store = 1;
    } else {
        buf_append_str(&resp->content_type,
                       s->content_type ? s->content_type : mime_type_for(real, strlen(real)));
    }
    free(real);
    buf_fini(&file);
}

static void static_destroy(void *state)
{
    struct static_state *s = state;
    if (!s)
        return;
    free(s->root);
    free(s);
}

const struct handler_ops handler_static_ops = {
    "static",
    static_create,
    static_handle,
    static_destroy,
};
