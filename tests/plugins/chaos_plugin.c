/* chaos_plugin.c - a plugin that misbehaves on demand, for the process
 * manager's tests (tests/integration/test_process*.py).
 *
 * Query arguments (first match wins, in this order):
 *   crash=1      abort(): the worker dies from SIGABRT
 *   exit=1       _exit(3): the worker exits with status 3
 *   sleep_ms=N   sleeps N ms (resuming after signals), then answers
 *   size=N       pads the page to at least N bytes (a big response)
 * The page is "chaos pid=PID text=TEXT\n", PID being the worker's getpid()
 * (so tests can tell workers apart) and TEXT the route's config member
 * "text" (default "v1"; a plain string without escapes), so a reload that
 * changes it is visible. Built against the public header only. */
#include <memfill/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct chaos {
    char text[128];
};

static int chaos_init(const char *config_json, void **state, char *errbuf, size_t errlen)
{
    struct chaos *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    snprintf(c->text, sizeof c->text, "v1");
    const char *p = strstr(config_json, "\"text\"");
    if (p) {
        p = strchr(p + 6, '"');
        const char *end = p ? strchr(p + 1, '"') : NULL;
        if (!end || (size_t)(end - p - 1) >= sizeof c->text || memchr(p, '\\', (size_t)(end - p))) {
            snprintf(errbuf, errlen, "\"text\" must be a short plain string");
            free(c);
            return -1;
        }
        memcpy(c->text, p + 1, (size_t)(end - p - 1));
        c->text[end - p - 1] = '\0';
    }
    *state = c;
    return 0;
}

static long arg_num(const struct memfill_request *req, const char *name)
{
    const char *v = req->api->arg(req, name, NULL);
    return v ? strtol(v, NULL, 10) : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int chaos_handle(void *state, const struct memfill_request *req,
                        struct memfill_response *resp)
{
    const struct chaos *c = state;
    const struct memfill_host_api *api = req->api;
    if (arg_num(req, "crash") == 1)
        abort();
    if (arg_num(req, "exit") == 1)
        _exit(3);
    long ms = arg_num(req, "sleep_ms");
    if (ms > 0)
        sleep_ms(ms);
    char line[256];
    int n = snprintf(line, sizeof line, "chaos pid=%ld text=%s\n", (long)getpid(), c->text);
    if (api->set_content_type(resp, "text/plain") < 0 || api->write(resp, line, (size_t)n) < 0)
        return -1;
    long size = arg_num(req, "size");
    static const char pad[64] = "................................................................";
    for (long left = size - n; left > 0; left -= (long)sizeof pad)
        if (api->write(resp, pad, left < (long)sizeof pad ? (size_t)left : sizeof pad) < 0)
            return -1;
    return 0;
}

static void chaos_free(void *state)
{
    free(state);
}

MEMFILL_PLUGIN_EXPORT const struct memfill_plugin memfill_plugin_v1 = {
    .abi = MEMFILL_PLUGIN_ABI,
    .size = sizeof(struct memfill_plugin),
    .name = "chaos",
    .init = chaos_init,
    .handle = chaos_handle,
    .free = chaos_free,
};
