/* fuzz_fcgi.c - libFuzzer target: what a worker does with FastCGI params.
 *
 * The input becomes a request's params, the way libfcgi hands them over
 * ("NAME=value" strings): one param per '\n'-separated line; a line whose
 * first byte is below 0x10 names a well-known param by that byte (1
 * REQUEST_URI, 2 DOCUMENT_URI, 3 MEMC_KEY, 4 MEMC_BACKEND, ... see names[])
 * so the fuzzer reaches them easily. Like the worker (no network): the
 * request view is built, routed, handled by the static or template handler
 * when a route of theirs matches, and the store is decided over a site
 * built once from a fixed config with three memcached nodes.
 *
 * Invariants: a store goes to a configured node under a non-empty key that
 * is the escaped raw key and at most 250 bytes; a MEMC_BACKEND naming no
 * configured node changes nothing (the computed node is used); MEMC_KEY,
 * when present, is the raw key; and no file outside the document root or
 * the data folder is ever served (a secret file sits next to them). */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/keyesc.h"
#include "memfill/log.h"
#include "memfill/nodesel.h"
#include "memfill/request.h"
#include "memfill/route.h"
#include "memfill/site.h"
#include "memfill/store.h"

#include "fuzzutil.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET "SECRET-OUTSIDE-ROOT"

static const char *const names[16] = {
    NULL,           "REQUEST_URI",  "DOCUMENT_URI",   "MEMC_KEY",
    "MEMC_BACKEND", "MEMC_STATUS",  "QUERY_STRING",   "REQUEST_METHOD",
    "HTTP_COOKIE",  "CONTENT_LENGTH", NULL /* '\n' */, "HTTP_HOST",
    "HTTP_AUTHORIZATION", "SERVER_PORT", "HTTPS",     "REQUEST_SCHEME",
};

static struct site *site;
/* The tree the handlers read: FUZZ_FCGI_DIR when set (scripts/fuzz.sh
 * points it into the build folder), else a temp folder removed at exit. */
static char tmpdir[512] = "/tmp/memfill-fuzz-fcgi-XXXXXX";

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static void sub(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    mkdir(path, 0755);
}

static void cleanup(void)
{
    static const char *const files[] = {"secret.txt", "secret.json", "www/index.html",
                                        "www/a.html", "site/data/ok.json", "site/t.mustache",
                                        "site/secret.json", NULL};
    char path[512];
    for (const char *const *f = files; *f; f++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, *f);
        unlink(path);
    }
    static const char *const dirs[] = {"site/data", "site", "www", "", NULL};
    for (const char *const *d = dirs; *d; d++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, *d);
        rmdir(path);
    }
}

static void setup(void)
{
    const char *fixed = getenv("FUZZ_FCGI_DIR");
    if (fixed && *fixed && strlen(fixed) < sizeof tmpdir) {
        strcpy(tmpdir, fixed);
        mkdir(tmpdir, 0755);
    } else {
        if (!mkdtemp(tmpdir))
            abort();
        atexit(cleanup);
    }
    sub("www");
    sub("site");
    sub("site/data");
    put("secret.txt", SECRET "\n");
    put("secret.json", "{\"secret\": \"" SECRET "\"}\n");
    put("site/secret.json", "{\"secret\": \"" SECRET "\"}\n");
    put("www/index.html", "<p>inside</p>\n");
    put("www/a.html", "<p>a</p>\n");
    put("site/data/ok.json", "{\"title\": \"ok\"}\n");
    put("site/t.mustache", "{{secret}}{{title}}{{path}}\n");
    static const char cfg_text[] =
        "{\"max_params\": 2048,\n"
        " \"memcached\": {\"servers\": [\"127.0.0.1:11211\", \"127.0.0.1:11212\","
        " \"127.0.0.2:11213\"]},\n"
        " \"cache\": {\"key\": \"$uri$is_args$args\", \"skip_cookies\": [\"sessionid\"],\n"
        "            \"skip_uri\": [\"^/nocache\"]},\n"
        " \"routes\": [\n"
        "  {\"regex\": \"^/t/(?<slug>.+)$\", \"handler\": \"template\",\n"
        "   \"template\": \"site/t.mustache\", \"data\": \"site/data/{slug}.json\"},\n"
        "  {\"prefix\": \"/api/\", \"handler\": \"upstream\", \"origin\": \"http://127.0.0.1:9\"},\n"
        "  {\"prefix\": \"/\", \"handler\": \"static\", \"root\": \"www\",\n"
        "   \"methods\": [\"GET\", \"HEAD\", \"POST\"]}\n"
        " ]}\n";
    struct err e;
    err_clear(&e);
    struct config *cfg =
        config_load_string(cfg_text, sizeof cfg_text - 1, "fuzz_fcgi.json", tmpdir, 0, &e);
    if (cfg)
        site = site_new_own(cfg, &e);
    if (!site) {
        fprintf(stderr, "fuzz_fcgi: %s:%d:%d: %s\n", e.source, e.line, e.column, e.text);
        abort();
    }
    log_open("/dev/null", LOG_DEBUG, 'W');
}

static size_t params_size(char **envp)
{
    size_t n = 0;
    for (char **e = envp; *e; e++)
        n += strlen(*e);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!site)
        setup();
    /* Build envp: each line a param, NUL-terminated like libfcgi's. */
    char **envp = calloc(size + 2, sizeof *envp);
    size_t n = 0;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = eol ? eol : end;
        size_t len = (size_t)(le - p);
        if (len > 0 && p[0] < 16 && names[p[0]]) {
            const char *nm = names[p[0]];
            size_t nl = strlen(nm);
            char *s = malloc(nl + 1 + len);
            memcpy(s, nm, nl);
            s[nl] = '=';
            memcpy(s + nl + 1, p + 1, len - 1);
            s[nl + len] = '\0';
            envp[n++] = s;
        } else {
            envp[n++] = fuzz_strndup(p, len);
        }
        p = eol ? eol + 1 : end;
    }
    envp[n] = NULL;

    const struct config *cfg = site->cfg;
    struct request req;
    request_init(&req, envp);
    request_key(&req, site->key);
    FUZZ_CHECK(req.method != NULL && req.request_uri != NULL && req.query != NULL);
    FUZZ_CHECK(req.path.data != NULL);
    struct response resp;
    response_init(&resp);
    struct route_match m;
    route_match_init(&m);
    size_t route = (size_t)-1;
    if (params_size(envp) > cfg->max_params) {
        response_error(&resp, 400, "The request headers are too large.");
    } else if (!req.path_ok) {
        response_error(&resp, 400, "The request target is malformed.");
    } else if (router_match(site->router, req.path.data, req.path.len, &m) == 0) {
        route = m.route;
        enum config_handler h = cfg->routes[route].handler;
        if (!(req.method_bit & cfg->routes[route].methods))
            response_error(&resp, 405, "This method is not allowed here.");
        else if (h == CONFIG_HANDLER_STATIC || h == CONFIG_HANDLER_TEMPLATE)
            site->ops[route]->handle(site->states[route], &req, &m, &resp);
        FUZZ_CHECK(memmem(resp.body.data ? resp.body.data : "", resp.body.len, SECRET,
                          sizeof SECRET - 1) == NULL);
    } else {
        response_error(&resp, 404, "No route of this site serves this address.");
    }

    struct store_job job;
    store_job_init(&job);
    store_locate(site, &req, route, &job.loc);
    store_prepare(site, &req, route, &resp, &job);
    int count = (int)nodesel_count(site->nodes);
    FUZZ_CHECK(job.loc.node >= -1 && job.loc.node < count);
    struct buf esc = BUF_INIT;
    key_escape(req.key, req.key_len, &esc);
    FUZZ_CHECK(esc.len == job.loc.esc_key.len &&
               (esc.len == 0 || memcmp(esc.data, job.loc.esc_key.data, esc.len) == 0));
    buf_fini(&esc);
    int computed = nodesel_pick(site->nodes, req.key, req.key_len);
    FUZZ_CHECK(job.loc.computed_node == computed);
    if (job.loc.backend_mismatch || !req.memc_backend || !*req.memc_backend)
        FUZZ_CHECK(job.loc.node == computed);
    if (req.memc_key)
        FUZZ_CHECK(req.key_len == strlen(req.memc_key) &&
                   memcmp(req.key, req.memc_key, req.key_len) == 0);
    if (job.decision == OUTCOME_STORED) {
        FUZZ_CHECK(job.loc.node >= 0 && job.loc.node < count);
        FUZZ_CHECK(req.key_len > 0 && job.loc.esc_key.len <= KEY_MAX_ESCAPED);
        FUZZ_CHECK(resp.status == 200 && !resp.no_store);
        FUZZ_CHECK(req.method_bit & (CONFIG_METHOD_GET | CONFIG_METHOD_HEAD));
        FUZZ_CHECK(route < cfg->nroutes);
    }
    /* The worker logs these values escaped. */
    struct buf logline = BUF_INIT;
    log_escape(&logline, req.request_uri, strlen(req.request_uri), 512);
    for (size_t i = 0; i < logline.len; i++)
        FUZZ_CHECK((unsigned char)logline.data[i] >= 0x20 && (unsigned char)logline.data[i] < 0x7f);
    if (job.loc.backend_mismatch)
        log_warn("MEMC_BACKEND \"%s\" names no configured memcached node", logline.data);
    buf_fini(&logline);

    store_job_fini(&job);
    route_match_fini(&m);
    response_fini(&resp);
    request_fini(&req);
    for (size_t i = 0; i < n; i++)
        free(envp[i]);
    free(envp);
    return 0;
}
