/* probe_plugin.c - a test plugin that exercises every host API function
 * and reports what it saw, for check_plugin.
 *
 * It is exported through the getter function memfill_plugin_v1_get (the
 * alternative to the data symbol) and has no name, so memfill names it
 * after its file. init() keeps the config text; a config holding "fail"
 * fails with a two-line message, one holding "silent" fails without one.
 * handle() writes one "what=result\n" line per probe into the body, where
 * a result is the string returned (or "(null)") or the int returned by a
 * response function. The query argument mode=minimal writes "x" and
 * nothing else, leaving the response's defaults alone. */
#include <memfill/plugin.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int probe_init(const char *config_json, void **state, char *errbuf, size_t errlen)
{
    if (strstr(config_json, "\"silent\""))
        return 1;
    if (strstr(config_json, "\"fail\"")) {
        snprintf(errbuf, errlen, "bad\nconfig");
        return -1;
    }
    *state = strdup(config_json);
    return *state ? 0 : -1;
}

static void put(struct memfill_response *resp, const char *what, const char *value, size_t len)
{
    resp->api->write(resp, what, strlen(what));
    resp->api->write(resp, "=", 1);
    if (value)
        resp->api->write(resp, value, len);
    else
        resp->api->write(resp, "(null)", 6);
    resp->api->write(resp, "\n", 1);
}

static void put_str(struct memfill_response *resp, const char *what, const char *value)
{
    put(resp, what, value, value ? strlen(value) : 0);
}

static void put_int(struct memfill_response *resp, const char *what, long value)
{
    char num[32];
    snprintf(num, sizeof num, "%ld", value);
    put_str(resp, what, num);
}

/* Reports a string returned with a length: "value|len", checking the
 * promised NUL terminator. */
static void put_len(struct memfill_response *resp, const char *what, const char *value, size_t len)
{
    char line[512];
    if (!value)
        snprintf(line, sizeof line, "(null)");
    else
        snprintf(line, sizeof line, "%s|%zu%s", value, len,
                 strlen(value) == len ? "" : "|NOT-TERMINATED");
    put_str(resp, what, line);
}

static int probe_handle(void *state, const struct memfill_request *req,
                        struct memfill_response *resp)
{
    const struct memfill_host_api *api = req->api;
    size_t len = 99;

    const char *mode = api->arg(req, "mode", NULL);
    if (mode && strcmp(mode, "minimal") == 0)
        return api->write(resp, "x", 1);

    put_int(resp, "abi", (long)api->abi);
    put_int(resp, "has_log", MEMFILL_HOST_HAS(api, log));
    put_str(resp, "config", state);
    put_str(resp, "method", api->method(req));
    const char *path = api->path(req, &len);
    put_len(resp, "path", path, len);
    put_str(resp, "path_nolen", api->path(req, NULL));
    put_str(resp, "uri", api->request_uri(req));
    put_str(resp, "query", api->query(req));
    const char *v = api->arg(req, "a", &len);
    put_len(resp, "arg_a", v, len);
    v = api->arg(req, "A", &len);
    put_len(resp, "arg_A", v, len);
    put_str(resp, "arg_bare", api->arg(req, "b", NULL));
    v = api->arg(req, "e", &len);
    put_len(resp, "arg_empty", v, len);
    v = api->arg(req, "last", &len);
    put_len(resp, "arg_last", v, len);
    put_str(resp, "arg_missing", api->arg(req, "zz", NULL));
    put_str(resp, "arg_noname", api->arg(req, "", NULL));
    v = api->capture(req, "slug", &len);
    put_len(resp, "cap_slug", v, len);
    v = api->capture(req, "id", &len);
    put_len(resp, "cap_id", v, len);
    put_str(resp, "cap_missing", api->capture(req, "nope", NULL));
    const char *body = api->body(req, &len);
    put(resp, "body", body, len);
    put_int(resp, "body_len", (long)len);
    put_str(resp, "param", api->param(req, "HTTP_X_TEST"));
    put_str(resp, "param_missing", api->param(req, "HTTP_X_NOPE"));

    put_int(resp, "status_199", api->set_status(resp, 199));
    put_int(resp, "status_600", api->set_status(resp, 600));
    put_int(resp, "status_203", api->set_status(resp, 203));
    put_int(resp, "ct_empty", api->set_content_type(resp, ""));
    put_int(resp, "ct_crlf", api->set_content_type(resp, "text/html\r\nX-Evil: 1"));
    put_int(resp, "ct_ok", api->set_content_type(resp, "text/plain"));
    put_int(resp, "hdr_crlf", api->add_header(resp, "X-A", "a\r\nX-Evil: 1"));
    put_int(resp, "hdr_lf", api->add_header(resp, "X-A", "a\nb"));
    put_int(resp, "hdr_cr", api->add_header(resp, "X-A", "a\rb"));
    put_int(resp, "hdr_name_space", api->add_header(resp, "X A", "b"));
    put_int(resp, "hdr_name_colon", api->add_header(resp, "X:A", "b"));
    put_int(resp, "hdr_name_crlf", api->add_header(resp, "X\r\nA", "b"));
    put_int(resp, "hdr_name_empty", api->add_header(resp, "", "b"));
    put_int(resp, "hdr_status", api->add_header(resp, "Status", "200 OK"));
    put_int(resp, "hdr_length", api->add_header(resp, "content-length", "5"));
    put_int(resp, "hdr_ok", api->add_header(resp, "X-Probe", "a\tb"));
    put_int(resp, "hdr_ct", api->add_header(resp, "content-type", "text/x-probe"));
    put_int(resp, "hdr_ct_bad", api->add_header(resp, "Content-Type", ""));
    put_int(resp, "write_null", api->write(resp, NULL, 3));
    put_int(resp, "write_null0", api->write(resp, NULL, 0));
    put_int(resp, "ttl_neg", api->set_ttl(resp, -1));
#if LONG_MAX > 4294967295L
    put_int(resp, "ttl_big", api->set_ttl(resp, 4294967296L));
#else
    put_int(resp, "ttl_big", -1); /* not expressible in a 32-bit long */
#endif
    put_int(resp, "ttl_ok", api->set_ttl(resp, 120));
    put_int(resp, "tag_empty", api->add_tag(resp, ""));
    put_int(resp, "tag_space", api->add_tag(resp, "a b"));
    put_int(resp, "tag_ok", api->add_tag(resp, "t1"));
    put_int(resp, "tag_ok2", api->add_tag(resp, "t2"));
    api->log(req, MEMFILL_LOG_DEBUG, "probe\nran");
    return 0;
}

static void probe_free(void *state)
{
    free(state);
}

static const struct memfill_plugin probe = {
    .abi = MEMFILL_PLUGIN_ABI,
    .size = sizeof(struct memfill_plugin),
    .name = NULL,
    .init = probe_init,
    .handle = probe_handle,
    .free = probe_free,
};

MEMFILL_PLUGIN_EXPORT const struct memfill_plugin *memfill_plugin_v1_get(void);

const struct memfill_plugin *memfill_plugin_v1_get(void)
{
    return &probe;
}
