/* fuzz_route.c - libFuzzer target: the router and capture expansion.
 *
 * A fixed config with prefix and regex routes (named captures, one of them
 * able to capture '/', "..", NUL and control bytes) is compiled once. The
 * input is a path: it is matched, every capture is looked up, and data
 * file patterns are expanded. Invariants: a match names a valid route and
 * captures that lie inside the path; an expansion that succeeds never
 * carries a '/', ".." or NUL from a capture (it could name a file outside
 * the data folder). The skip_uri regex list is matched too. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/route.h"

#include "fuzzutil.h"

static const char cfg_text[] =
    "{\"memcached\": {\"servers\": [\"127.0.0.1:11211\"]},\n"
    " \"cache\": {\"skip_uri\": [\"^/admin(/|$)\", \"\\\\.(php|cgi)$\"]},\n"
    " \"routes\": [\n"
    "  {\"regex\": \"^/treks/(?<slug>[a-z0-9-]+)$\", \"handler\": \"template\",\n"
    "   \"template\": \"t.mustache\", \"data\": \"data/treks/{slug}.json\"},\n"
    "  {\"regex\": \"^/any/(?<all>.*)/(?<last>[^/]*)$\", \"handler\": \"template\",\n"
    "   \"template\": \"t.mustache\", \"data\": \"data/{all}/{last}.json\"},\n"
    "  {\"regex\": \"^/(?<y>\\\\d{4})/(?<m>\\\\d\\\\d)?/?(?<opt>x)?\", \"handler\": \"template\",\n"
    "   \"template\": \"t.mustache\", \"data\": \"data/{y}-{m}.json\"},\n"
    "  {\"regex\": \"(?s)^/raw(?<bytes>.*)\", \"handler\": \"template\",\n"
    "   \"template\": \"t.mustache\", \"data\": \"data/{bytes}\"},\n"
    "  {\"prefix\": \"/files/\", \"handler\": \"static\", \"root\": \"www\"},\n"
    "  {\"prefix\": \"/\", \"handler\": \"static\", \"root\": \"www\"}\n"
    " ]}\n";

static struct config *cfg;
static struct router *rt;
static struct regex_list *skip;

static void setup(void)
{
    struct err e;
    err_clear(&e);
    cfg = config_load_string(cfg_text, sizeof cfg_text - 1, "fuzz_route.json", "/nonexistent",
                             0, &e);
    if (!cfg) {
        fprintf(stderr, "fuzz_route: config: %s:%d:%d: %s\n", e.source, e.line, e.column, e.text);
        abort();
    }
    rt = router_new(cfg, &e);
    if (!rt) {
        fprintf(stderr, "fuzz_route: router: %s\n", e.text);
        abort();
    }
    skip = regex_list_new(cfg->skip_uri, "cache.skip_uri", &e);
    if (!skip)
        abort();
}

/* Returns 1 when s (len bytes) has a '/'-separated component "..". */
static int has_dotdot_component(const char *s, size_t len)
{
    size_t a = 0;
    while (a <= len) {
        const char *sl = memchr(s + a, '/', len - a);
        size_t e = sl ? (size_t)(sl - s) : len;
        if (e - a == 2 && s[a] == '.' && s[a + 1] == '.')
            return 1;
        if (!sl)
            break;
        a = e + 1;
    }
    return 0;
}

static void check_expand(const struct route_match *m, const char *pattern)
{
    struct buf out = BUF_INIT;
    if (route_expand(m, pattern, &out) == 0) {
        FUZZ_CHECK(out.data != NULL);
        FUZZ_CHECK(strlen(out.data) == out.len); /* no NUL from a capture */
        /* Captures bring no '/': the result has exactly the pattern's. */
        size_t pat_slash = 0, out_slash = 0;
        for (const char *c = pattern; *c; c++)
            pat_slash += *c == '/';
        for (size_t i = 0; i < out.len; i++)
            out_slash += out.data[i] == '/';
        FUZZ_CHECK(out_slash == pat_slash);
        /* ...and can never make a ".." component: the file named stays
         * inside the folder the pattern names. */
        FUZZ_CHECK(!has_dotdot_component(out.data, out.len));
    }
    buf_fini(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rt)
        setup();
    const char *path = (const char *)data;
    struct route_match m;
    route_match_init(&m);
    if (router_match(rt, path, size, &m) == 0) {
        FUZZ_CHECK(m.route < cfg->nroutes);
        FUZZ_CHECK(m.ncaptures <= ROUTE_MAX_CAPTURES);
        for (size_t i = 0; i < m.ncaptures; i++) {
            size_t len = 0;
            const char *v = route_match_get(&m, m.names[i], &len);
            FUZZ_CHECK(v != NULL && len <= size);
            FUZZ_CHECK(len == 0 || memmem(data, size, v, len) != NULL);
        }
        const struct config_route *r = &cfg->routes[m.route];
        if (r->data)
            check_expand(&m, r->data);
        check_expand(&m, "{slug}{all}{last}");
        check_expand(&m, "x/{bytes}/y");
        check_expand(&m, "d/{bytes}.json");
        check_expand(&m, "d/{last}{bytes}/x");
        check_expand(&m, "d/{last}.");
        check_expand(&m, "{nope}");
        check_expand(&m, "{unclosed");
        check_expand(&m, "{}");
    }
    /* A second match reuses the storage. */
    struct route_match m2;
    route_match_init(&m2);
    (void)router_match(rt, path, size / 2, &m2);
    route_match_fini(&m2);
    route_match_fini(&m);
    (void)regex_list_match(skip, path, size);
    return 0;
}
