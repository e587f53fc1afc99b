/* hello_plugin.c - the example memfill plugin, built by `make check`.
 *
 * It shows the whole plugin API in a page of code and is what
 * tests/check_plugin.c loads. Config: {"greeting": "Hello"} (the member is
 * optional; "Hello" when absent). Answers "<p>GREETING, WHO</p>", WHO being
 * the route's "name" capture when the route regex has one (for example
 * "^/hello/(?<name>[^/]+)$"), else the request path; both are
 * HTML-escaped. Adds "X-Plugin: hello". The query argument nostore=1 keeps
 * the page out of memcached, and fail=1 makes handle() fail, which shows
 * memfill's answer to a failing plugin (a 500 page that is not stored).
 *
 * Like every plugin it includes <memfill/plugin.h> and nothing else of
 * memfill's. The config is read with a small scan for one top-level string
 * member, not a JSON parser: enough for an example; a real plugin would
 * link a JSON library of its own. */
#include <memfill/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hello {
    char *greeting;
};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns the start of the value of member key of the object in json, or
 * NULL. A key counts when it follows '{' or ',' and is followed by ':'. */
static const char *find_member(const char *json, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = strchr(json, '"'); p; p = strchr(p + 1, '"')) {
        if (strncmp(p + 1, key, n) != 0 || p[n + 1] != '"')
            continue;
        const char *b = p;
        while (b > json && is_space(b[-1]))
            b--;
        if (b == json || (b[-1] != '{' && b[-1] != ','))
            continue;
        const char *v = p + n + 2;
        while (is_space(*v))
            v++;
        if (*v != ':')
            continue;
        v++;
        while (is_space(*v))
            v++;
        return v;
    }
    return NULL;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the JSON string starting at v (on its opening quote). Returns a
 * new string (free with free()), or NULL when v is not a valid string or
 * it holds a NUL. */
static char *json_string(const char *v)
{
    if (*v != '"')
        return NULL;
    v++;
    /* Every escape decodes to at most as many bytes as it takes. */
    char *out = malloc(strlen(v) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (;;) {
        char c = *v++;
        if (c == '"')
            break;
        if (c == '\0' || (unsigned char)c < 0x20)
            goto bad;
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        c = *v++;
        unsigned cp, lo;
        switch (c) {
        case '"':
        case '\\':
        case '/': out[n++] = c; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u':
            if (hex4(v, &cp) < 0 || cp == 0)
                goto bad;
            v += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                if (v[0] != '\\' || v[1] != 'u' || hex4(v + 2, &lo) < 0 || lo < 0xdc00 ||
                    lo > 0xdfff)
                    goto bad;
                v += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                goto bad;
            }
            n += put_utf8(out + n, cp);
            break;
        default: goto bad;
        }
    }
    out[n] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static int hello_init(const char *config_json, void **state, char *errbuf, size_t errlen)
{
    const char *v = find_member(config_json, "greeting");
    char *greeting = v ? json_string(v) : strdup("Hello");
    if (!greeting) {
        snprintf(errbuf, errlen, "\"greeting\" must be a string");
        return -1;
    }
    struct hello *h = malloc(sizeof *h);
    if (!h) {
        free(greeting);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    h->greeting = greeting;
    *state = h;
    return 0;
}

/* Writes s (len bytes) with the five HTML-special characters escaped. */
static int write_html(struct memfill_response *resp, const char *s, size_t len)
{
    const struct memfill_host_api *api = resp->api;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *ent;
        switch (s[i]) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: continue;
        }
        if (api->write(resp, s + start, i - start) < 0 || api->write(resp, ent, strlen(ent)) < 0)
            return -1;
        start = i + 1;
    }
    return api->write(resp, s + start, len - start);
}

static int hello_handle(void *state, const struct memfill_request *req,
                        struct memfill_response *resp)
{
    const struct hello *h = state;
    const struct memfill_host_api *api = req->api;

    const char *fail = api->arg(req, "fail", NULL);
    if (fail && strcmp(fail, "1") == 0)
        return -1;

    size_t len;
    const char *who = api->capture(req, "name", &len);
    if (!who)
        who = api->path(req, &len);

    if (api->set_content_type(resp, "text/html; charset=utf-8") < 0 ||
        api->add_header(resp, "X-Plugin", "hello") < 0)
        return -1;
    if (api->write(resp, "<p>", 3) < 0 || write_html(resp, h->greeting, strlen(h->greeting)) < 0 ||
        api->write(resp, ", ", 2) < 0 || write_html(resp, who, len) < 0 ||
        api->write(resp, "</p>", 4) < 0)
        return -1;

    const char *nostore = api->arg(req, "nostore", NULL);
    if (nostore && strcmp(nostore, "1") == 0)
        api->no_store(resp);
    return 0;
}

static void hello_free(void *state)
{
    struct hello *h = state;
    if (!h)
        return;
    free(h->greeting);
    free(h);
}

MEMFILL_PLUGIN_EXPORT const struct memfill_plugin memfill_plugin_v1 = {
    .abi = MEMFILL_PLUGIN_ABI,
    .size = sizeof(struct memfill_plugin),
    .name = "hello",
    .init = hello_init,
    .handle = hello_handle,
    .free = hello_free,
};
