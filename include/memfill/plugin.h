/* plugin.h - the public, stable C API for memfill content plugins.
 *
 * This is the only memfill header that is installed, and the only one a
 * plugin may include. It depends on nothing but <stddef.h>, so a plugin
 * builds against an installed memfill with no other memfill sources:
 *
 *     cc -shared -fPIC -o hello.so hello.c
 *
 * A plugin is a shared object named by a route ("handler": "plugin",
 * "plugin": "path/to/hello.so", "config": {...}). It exports one symbol:
 *
 *     MEMFILL_PLUGIN_EXPORT const struct memfill_plugin memfill_plugin_v1 = {
 *         .abi = MEMFILL_PLUGIN_ABI,
 *         .size = sizeof(struct memfill_plugin),
 *         .name = "hello",
 *         .init = hello_init,
 *         .handle = hello_handle,
 *         .free = hello_free,
 *     };
 *
 * or, where exporting data is awkward, a function
 * `const struct memfill_plugin *memfill_plugin_v1_get(void)` returning a
 * pointer to such a struct (memfill looks for the data symbol first).
 *
 * Life cycle:
 * - memfill loads the object with dlopen(RTLD_NOW | RTLD_LOCAL) once per
 *   route when it builds the site: in the master, before the workers are
 *   forked, and again on every reload (SIGHUP) and for `memfill -t`. init()
 *   runs then, so a bad plugin config fails the config check and a failed
 *   reload leaves the old site serving.
 * - handle() runs in the workers, which inherit the state made by init()
 *   across fork (copy-on-write: a change a worker makes to it is its own).
 *   Anything that must not be shared across fork (sockets, connections,
 *   threads, random seeds) is best created lazily on the first handle() call
 *   in each worker. A worker is single-threaded: handle() is never called
 *   concurrently on one state.
 * - free() runs when the site is dropped (reload, shutdown), then the object
 *   is dlclose'd.
 * - Two routes naming the same file share one loaded object (dlopen
 *   reference counting), each with its own state from its own init(); so do
 *   the old and new site during a reload. Keep every piece of per-route
 *   data in the state, not in globals. Because the loaded object stays
 *   resident while any site uses it, a rebuilt .so at the same path is only
 *   picked up after a restart (or when installed under a new file name).
 *
 * No memfill symbol is resolved by the dynamic linker: everything the host
 * offers reaches the plugin as a table of function pointers
 * (struct memfill_host_api) inside the request and response handles, so the
 * memfill executable needs no -rdynamic and a plugin needs no link flags.
 *
 * Strings: every string memfill hands to a plugin (but the request body)
 * is NUL-terminated and borrowed: it stays valid until handle() returns and
 * must not be freed or modified. Every string a plugin hands to memfill is copied before the call
 * returns.
 *
 * Compatibility: MEMFILL_PLUGIN_ABI changes only when an existing member or
 * contract changes; memfill refuses a plugin built for another ABI. New host
 * functions are only appended to struct memfill_host_api; a plugin that
 * wants one added after it was first released tests MEMFILL_HOST_HAS()
 * before calling it. */
#ifndef MEMFILL_PLUGIN_H
#define MEMFILL_PLUGIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI described by this header. */
#define MEMFILL_PLUGIN_ABI 1

/* Marks the exported symbol visible even when the plugin is compiled with
 * -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define MEMFILL_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MEMFILL_PLUGIN_EXPORT
#endif

/* Levels for memfill_host_api.log. */
#define MEMFILL_LOG_ERROR 0
#define MEMFILL_LOG_WARN 1
#define MEMFILL_LOG_INFO 2
#define MEMFILL_LOG_DEBUG 3

struct memfill_host_api;

/* The request being answered. A handle owned by memfill, valid during one
 * handle() call; read it only through api. */
struct memfill_request {
    const struct memfill_host_api *api;
    void *opaque; /* memfill's private data: do not touch */
};

/* The response under construction, in the same terms. Before handle() runs
 * it is: status 200, the route's "content_type" (or none: memfill then
 * sends "text/html"), no extra headers, an empty body, storable, and the
 * route's TTL. */
struct memfill_response {
    const struct memfill_host_api *api;
    void *opaque; /* memfill's private data: do not touch */
};

/* Functions memfill offers to plugins. The same table is reachable from
 * req->api and resp->api. Unless said otherwise, every pointer argument
 * must be non-NULL. */
struct memfill_host_api {
    unsigned abi; /* MEMFILL_PLUGIN_ABI of the running memfill */
    size_t size;  /* sizeof(struct memfill_host_api) in the running memfill */

    /* ---- the request (strings: borrowed, NUL-terminated) ---- */

    /* The FastCGI param called name (case-sensitive: "QUERY_STRING",
     * "HTTP_COOKIE", "HTTP_ACCEPT_LANGUAGE", "MEMC_KEY"...), or NULL when
     * nginx did not send it. */
    const char *(*param)(const struct memfill_request *req, const char *name);
    /* The request method ("GET", "HEAD"...). Never NULL. */
    const char *(*method)(const struct memfill_request *req);
    /* nginx's $uri: the path, percent-decoded and normalised (no "." or
     * ".." segments, no double slashes), starting with '/'. Never NULL. If
     * len is not NULL, *len gets its length in bytes. */
    const char *(*path)(const struct memfill_request *req, size_t *len);
    /* $request_uri: the request target exactly as the client sent it,
     * query included ("" when absent). Never NULL. */
    const char *(*request_uri)(const struct memfill_request *req);
    /* $args: the query string without the '?' ("" when none). Never NULL. */
    const char *(*query)(const struct memfill_request *req);
    /* nginx's $arg_NAME: the value of the first "NAME=value" pair in the
     * query string, with NAME compared case-insensitively, as nginx does
     * (a bare "NAME" without '=' does not count). The value is NOT
     * percent-decoded ("a%20b" stays so). Returns NULL when the query has
     * no such argument, "" for "NAME=". If len is not NULL, *len gets the
     * value's length. */
    const char *(*arg)(const struct memfill_request *req, const char *name, size_t *len);
    /* The value of the route regex's named capture name ("(?<name>...)"),
     * or NULL when the route has no such capture or it did not take part
     * in the match. If len is not NULL, *len gets its length. */
    const char *(*capture)(const struct memfill_request *req, const char *name, size_t *len);
    /* The request body, *len bytes that are NOT NUL-terminated (the one
     * exception to the rule above), or NULL with *len = 0 when there is
     * none. len must not be NULL. */
    const char *(*body)(const struct memfill_request *req, size_t *len);

    /* ---- the response (every string argument is copied) ---- */

    /* Sets the HTTP status (200-599). Returns 0, or -1 (status unchanged)
     * for a value out of range. Only 200 pages are stored: nginx replays a
     * stored page as 200. */
    int (*set_status)(struct memfill_response *resp, int status);
    /* Sets the Content-Type ("application/json; charset=utf-8"). Returns 0,
     * or -1 (unchanged) when type is empty or holds a control byte (CR, LF,
     * ...). A stored page is replayed with the type nginx picks
     * (default_type, extension), so keep the two in agreement. */
    int (*set_content_type)(struct memfill_response *resp, const char *type);
    /* Adds the header "name: value". name must be an HTTP token (letters,
     * digits, "!#$%&'*+-.^_`|~"), value must hold no CR, LF or other
     * control byte but TAB. "Content-Type" is the same as
     * set_content_type(); "Status" and "Content-Length" are refused, as
     * memfill writes them itself. Returns 0, or -1 (nothing added) when
     * refused. Headers reach the client only on this response: a stored
     * page replays its body alone, and a "Set-Cookie" header keeps the
     * page from being stored. */
    int (*add_header)(struct memfill_response *resp, const char *name, const char *value);
    /* Appends len bytes of data to the body (data may be NULL when len is
     * 0). Returns 0, or -1 when data is NULL and len is not 0. */
    int (*write)(struct memfill_response *resp, const void *data, size_t len);
    /* Keeps this response out of memcached (a personal page, an error the
     * next request may not see, ...). Cannot be undone. */
    void (*no_store)(struct memfill_response *resp);
    /* Sets the lifetime of the stored page in seconds; 0 means no expiry.
     * cache.min_ttl and cache.max_ttl still apply. Without a call, the
     * route's "ttl" (or cache.ttl) is used. Returns 0, or -1 (unchanged)
     * for a negative value or one above 4294967295. */
    int (*set_ttl)(struct memfill_response *resp, long seconds);
    /* Adds a tag to the stored page, so a purge by tag can remove it. A tag is
     * 1 to 250 bytes, none of them a space or control byte. Returns 0, or
     * -1 (nothing added) for an invalid tag. */
    int (*add_tag)(struct memfill_response *resp, const char *tag);

    /* ---- the host ---- */

    /* Writes msg (bytes outside printable ASCII are escaped) to memfill's
     * log at level (MEMFILL_LOG_*), prefixed with the plugin's name. */
    void (*log)(const struct memfill_request *req, int level, const char *msg);
};

/* Non-zero when the running memfill offers host function member (a member
 * name of struct memfill_host_api). Needed only for members appended after
 * the plugin's oldest supported memfill; every member above is in ABI 1. */
#define MEMFILL_HOST_HAS(api, member)                                                              \
    ((api)->size >=                                                                                \
     offsetof(struct memfill_host_api, member) + sizeof(((struct memfill_host_api *)0)->member))

/* What a plugin exports. */
struct memfill_plugin {
    /* MEMFILL_PLUGIN_ABI as the plugin was compiled. memfill refuses any
     * other value. */
    unsigned abi;
    /* sizeof(struct memfill_plugin) as the plugin was compiled; memfill
     * reads no member past it. */
    size_t size;
    /* A short name for logs and errors ("hello"). May be NULL (the file
     * name is used). */
    const char *name;

    /* Optional (may be NULL). Called once per route when the site is built
     * (in the master, before fork). config_json is the route's "config"
     * object as compact JSON text, "{}" when the route has none; it is
     * borrowed for the call only. Sets *state (NULL is fine) and returns 0;
     * or returns non-zero after writing a one-line message into errbuf
     * (errlen > 0 bytes, NUL-terminated, truncated as needed). memfill then
     * reports "file:line:col: routes[i].config: name: message" and refuses
     * the config; free() is not called. */
    int (*init)(const char *config_json, void **state, char *errbuf, size_t errlen);

    /* Required. Answers one request in a worker: reads req, fills resp,
     * returns 0. A non-zero return replaces whatever resp holds with a 500
     * error page that is not stored. state is the one init() made (NULL
     * without init). The handles and every string from them are valid only
     * until handle() returns. A request whose target cannot be normalised
     * is answered 400 by memfill without calling handle(). */
    int (*handle)(void *state, const struct memfill_request *req, struct memfill_response *resp);

    /* Optional. Frees state (which may be NULL) when the route's site is
     * dropped (after a reload, at shutdown), once per process that drops
     * it; a worker may also exit without calling it. */
    void (*free)(void *state);
};

/* The exported symbols memfill looks up, in this order. */
#define MEMFILL_PLUGIN_SYMBOL "memfill_plugin_v1"
#define MEMFILL_PLUGIN_GET_SYMBOL "memfill_plugin_v1_get"

typedef const struct memfill_plugin *(*memfill_plugin_get_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
