/* check_upstream.c - the upstream handler end to end against a real HTTP
 * origin (tests/integration/origin.py on 127.0.0.1).
 *
 * One origin per TCase, started by an unchecked fixture on a port it picks
 * itself (port 0; it prints the port once bound) and stopped by pid in the
 * teardown. The origin dies with this program too (PR_SET_PDEATHSIG), so a
 * test killed by its timeout leaves nothing running. Tests drive
 * handler_upstream_ops.create/handle/destroy with a hand-built config (one
 * route) and a request built from an envp array, as the worker would.
 * Without python3 the program exits 77 (skip), or fails when
 * MEMFILL_NO_SKIP=1. */
#include "config.h"

#include "memfill/handler.h"
#include "memfill/outcome.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* ---- the origin process ---- */

static pid_t origin_pid = -1;
static int origin_port;
static char origin_why[256]; /* why the origin is not running, for messages */

static void origin_start(void)
{
    origin_port = 0;
    snprintf(origin_why, sizeof origin_why, "not started");
    char *script = tu_path("tests/integration/origin.py");
    int fds[2];
    if (pipe(fds) < 0) {
        snprintf(origin_why, sizeof origin_why, "pipe: %s", strerror(errno));
        free(script);
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
#endif
        (void)parent;
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        char *const argv[] = {(char *)"python3", script, (char *)"0", NULL};
        execvp("python3", argv);
        _exit(127);
    }
    close(fds[1]);
    free(script);
    if (pid < 0) {
        snprintf(origin_why, sizeof origin_why, "fork: %s", strerror(errno));
        close(fds[0]);
        return;
    }
    origin_pid = pid;
    /* Wait (10 s at most) for "listening on 127.0.0.1:PORT". */
    char line[128];
    size_t len = 0;
    uint64_t deadline = util_now_ms() + 10000;
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        uint64_t now = util_now_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {fds[0], POLLIN, 0};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(fds[0], line + len, sizeof line - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    line[len] = '\0';
    if (sscanf(line, "listening on 127.0.0.1:%d", &origin_port) != 1 || origin_port <= 0) {
        origin_port = 0;
        snprintf(origin_why, sizeof origin_why, "origin.py did not report its port (got \"%s\")",
                 line);
    }
}

static void origin_stop(void)
{
    if (origin_pid <= 0)
        return;
    kill(origin_pid, SIGTERM);
    uint64_t deadline = util_now_ms() + 5000;
    for (;;) {
        pid_t r = waitpid(origin_pid, NULL, WNOHANG);
        if (r == origin_pid || (r < 0 && errno != EINTR))
            break;
        if (util_now_ms() >= deadline) {
            kill(origin_pid, SIGKILL);
            waitpid(origin_pid, NULL, 0);
            break;
        }
        usleep(20000);
    }
    origin_pid = -1;
    origin_port = 0;
}

/* A 127.0.0.1 port nothing listens on: bound, never listened, closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- a handler on one route ---- */

struct fixture {
    struct config cfg;
    struct config_route route;
    void *state;
    struct request req;
    struct response resp;
    char *env[64];
    size_t nenv;
    int ruled_out; /* request.store_ruled_out, as the worker would set it */
};

/* Sets up cfg with one upstream route to origin (NULL: the running origin)
 * and creates the handler. */
static void fx_init(struct fixture *fx, const char *origin, unsigned timeout_ms, long ttl)
{
    memset(fx, 0, sizeof *fx);
    ck_assert_msg(origin || origin_port > 0, "origin: %s", origin_why);
    fx->cfg.path = (char *)"test.json";
    fx->cfg.ttl = 300;
    fx->route.prefix = (char *)"/";
    fx->route.handler = CONFIG_HANDLER_UPSTREAM;
    fx->route.methods = CONFIG_METHOD_GET | CONFIG_METHOD_HEAD;
    fx->route.ttl = ttl;
    fx->route.cache = 1;
    fx->route.origin = origin ? xstrdup(origin) : xasprintf("http://127.0.0.1:%d", origin_port);
    fx->route.connect_timeout_ms = 2000;
    fx->route.timeout_ms = timeout_ms;
    fx->route.pos.line = 7;
    fx->route.pos.col = 5;
    fx->cfg.routes = &fx->route;
    fx->cfg.nroutes = 1;
    struct err e;
    err_clear(&e);
    ck_assert_msg(handler_upstream_ops.create(&fx->cfg, 0, &fx->state, &e) == 0, "create: %s",
                  e.text);
    response_init(&fx->resp);
}

static void fx_env(struct fixture *fx, const char *kv)
{
    ck_assert_uint_lt(fx->nenv, 63);
    fx->env[fx->nenv++] = xstrdup(kv);
}

/* Runs one request: method, REQUEST_URI, extra "NAME=value" params (NULL
 * terminated list in extra, may be NULL) and a body (may be NULL). */
static void fx_run(struct fixture *fx, const char *method, const char *uri,
                   const char *const *extra, const char *body, size_t body_len)
{
    char *m = xasprintf("REQUEST_METHOD=%s", method);
    char *u = xasprintf("REQUEST_URI=%s", uri);
    fx_env(fx, m);
    fx_env(fx, u);
    free(m);
    free(u);
    for (const char *const *e = extra; e && *e; e++)
        fx_env(fx, *e);
    fx->env[fx->nenv] = NULL;
    request_init(&fx->req, fx->env);
    fx->req.store_ruled_out = fx->ruled_out;
    fx->req.body = body;
    fx->req.body_len = body_len;
    struct route_match match;
    memset(&match, 0, sizeof match);
    response_reset(&fx->resp, 0);
    handler_upstream_ops.handle(fx->state, &fx->req, &match, &fx->resp);
}

/* Clears the params between two requests on the same handler. */
static void fx_next(struct fixture *fx)
{
    request_fini(&fx->req);
    for (size_t i = 0; i < fx->nenv; i++)
        free(fx->env[i]);
    fx->nenv = 0;
}

static void fx_fini(struct fixture *fx)
{
    fx_next(fx);
    response_fini(&fx->resp);
    handler_upstream_ops.destroy(fx->state);
    free(fx->route.origin);
}

static void fx_get(struct fixture *fx, const char *uri)
{
    fx_run(fx, "GET", uri, NULL, NULL, 0);
}

/* Returns the value of response header name (a new string; free it), or
 * NULL when absent. Fails the test when it appears twice. */
static char *resp_header(const struct response *resp, const char *name)
{
    size_t nl = strlen(name);
    char *found = NULL;
    const char *p = resp->headers.data;
    const char *end = p ? p + resp->headers.len : NULL;
    while (p && p < end) {
        const char *eol = strstr(p, "\r\n");
        ck_assert_ptr_nonnull(eol);
        if ((size_t)(eol - p) > nl + 1 && p[nl] == ':' && util_ascii_caseeq(p, name, nl)) {
            ck_assert_msg(found == NULL, "header %s appears twice", name);
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            found = xstrndup(v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    return found;
}

static void assert_header(const struct response *resp, const char *name, const char *value)
{
    char *v = resp_header(resp, name);
    if (value) {
        ck_assert_msg(v != NULL, "header %s missing in:\n%s", name,
                      resp->headers.data ? resp->headers.data : "");
        ck_assert_str_eq(v, value);
    } else {
        ck_assert_msg(v == NULL, "header %s relayed (\"%s\")", name, v ? v : "");
    }
    free(v);
}

static void assert_storable(const struct response *resp, long ttl)
{
    ck_assert_msg(!resp->no_store, "not storable (reason %d), status %d", resp->no_store_reason,
                  resp->status);
    ck_assert_int_eq(resp->ttl, ttl);
}

static void assert_refused(const struct response *resp, enum store_outcome reason)
{
    ck_assert_msg(resp->no_store, "storable (ttl %ld), status %d", resp->ttl, resp->status);
    ck_assert_int_eq(resp->no_store_reason, reason);
}

/* /echo's JSON: the value of request header name (borrowed from root), or
 * NULL when the origin did not receive it. */
static const char *echo_header(json_t *root, const char *name)
{
    json_t *hs = json_object_get(root, "headers");
    ck_assert_ptr_nonnull(hs);
    const char *found = NULL;
    size_t i;
    json_t *pair;
    json_array_foreach(hs, i, pair) {
        const char *k = json_string_value(json_array_get(pair, 0));
        if (k && strcasecmp(k, name) == 0) {
            ck_assert_msg(found == NULL, "request header %s arrived twice", name);
            found = json_string_value(json_array_get(pair, 1));
        }
    }
    return found;
}

static json_t *echo_parse(const struct response *resp)
{
    ck_assert_int_eq(resp->status, 200);
    json_error_t je;
    json_t *root = json_loadb(resp->body.data, resp->body.len, JSON_ALLOW_NUL, &je);
    ck_assert_msg(root != NULL, "echo body is not JSON: %s", je.text);
    return root;
}

static void assert_echo_header(json_t *root, const char *name, const char *value)
{
    const char *v = echo_header(root, name);
    if (value) {
        ck_assert_msg(v != NULL, "request header %s did not arrive", name);
        ck_assert_str_eq(v, value);
    } else {
        ck_assert_msg(v == NULL, "request header %s arrived (\"%s\")", name, v ? v : "");
    }
}

/* ---- create ---- */

START_TEST(test_upstream_create_rejects_bad_origins)
{
    static const struct {
        const char *origin;
        const char *msg;
    } rows[] = {
        {"http://", "host name"},
        {"http://:80", "host name"},
        {"http://host:0", "port"},
        {"http://host:65536", "port"},
        {"http://host:80x", "port"},
        {"http://host:", "port"},
        {"http://[]:80", "IPv6"},
        {"http://[::1", "IPv6"},
        {"http://host/p?q=1", "query"},
        {"http://host/#frag", "query"},
        {"http://user:pw@host", "user name"},
        {"http://ho st", "blanks"},
        {"http://host/\x7f", "blanks"},
        {"http://h\xc3\xa9.test", "non-ASCII"},
        {"ftp:/host", "http://host"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct config cfg;
        struct config_route r;
        memset(&cfg, 0, sizeof cfg);
        memset(&r, 0, sizeof r);
        cfg.path = (char *)"site.json";
        r.handler = CONFIG_HANDLER_UPSTREAM;
        r.origin = (char *)rows[i].origin;
        r.pos.line = 12;
        r.pos.col = 9;
        cfg.routes = &r;
        cfg.nroutes = 1;
        struct err e;
        err_clear(&e);
        void *state = (void *)&cfg;
        ck_assert_msg(handler_upstream_ops.create(&cfg, 0, &state, &e) == -1, "%s accepted",
                      rows[i].origin);
        ck_assert_ptr_eq(state, (void *)&cfg);
        ck_assert_str_eq(e.source, "site.json");
        ck_assert_int_eq(e.line, 12);
        ck_assert_int_eq(e.column, 9);
        ck_assert_msg(strncmp(e.text, "routes[0].origin: ", 18) == 0, "%s", e.text);
        ck_assert_msg(strstr(e.text, rows[i].msg) != NULL, "%s: \"%s\" lacks \"%s\"",
                      rows[i].origin, e.text, rows[i].msg);
    }
}
END_TEST

START_TEST(test_upstream_create_accepts_good_origins)
{
    static const char *const ok[] = {
        "http://127.0.0.1:8080", "https://app.example.com", "http://[::1]:8000",
        "http://app/", "http://app:65535/prefix/", "http://app.internal:1/a/b",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct fixture fx;
        fx_init(&fx, ok[i], 1000, -1);
        fx_fini(&fx);
    }
    /* destroy accepts NULL */
    handler_upstream_ops.destroy(NULL);
}
END_TEST

/* ---- relay ---- */

START_TEST(test_upstream_plain)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/plain");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_str_eq(fx.resp.body.data, "plain\n");
    ck_assert_str_eq(fx.resp.content_type.data, "text/plain; charset=utf-8");
    assert_header(&fx.resp, "Cache-Control", "max-age=120");
    assert_header(&fx.resp, "Content-Type", NULL);
    assert_header(&fx.resp, "Content-Length", NULL);
    assert_storable(&fx.resp, 120);
    ck_assert_uint_eq(fx.resp.tags.len, 0);
    /* the same handler again: the kept-alive connection is reused */
    for (int i = 0; i < 3; i++) {
        fx_next(&fx);
        fx_get(&fx, "/plain");
        ck_assert_int_eq(fx.resp.status, 200);
        ck_assert_str_eq(fx.resp.body.data, "plain\n");
        assert_storable(&fx.resp, 120);
    }
    fx_fini(&fx);
}
END_TEST

/* Params as nginx passes them for a visitor with every kind of header. */
static const char *const visitor_params[] = {
    "HTTP_HOST=www.example.test",
    "HTTP_COOKIE=theme=dark; lang=fr",
    "HTTP_COOKIE=sessionid=s1",
    "HTTP_AUTHORIZATION=Basic dXNlcjpwdw==",
    "HTTP_USER_AGENT=check/1.0",
    "HTTP_ACCEPT=text/html",
    "HTTP_ACCEPT_LANGUAGE=fr",
    "HTTP_X_FOO_BAR=baz",
    "HTTP_X_FOO_BAR=qux",
    "HTTP_X_EMPTY=",
    "HTTP_X_FORWARDED_FOR=10.1.2.3",
    "HTTP_X_FORWARDED_PROTO=gopher",
    "HTTP_X_FORWARDED_HOST=evil.test",
    "HTTP_X_FORWARDED_PORT=8443",
    "HTTP_X_FORWARDED_PREFIX=/evil",
    "HTTP_FORWARDED=for=1.2.3.4;host=evil.test;proto=http",
    "HTTP_X_REAL_IP=10.9.9.9",
    "HTTP_X_ORIGINAL_URL=/admin",
    "HTTP_X_REWRITE_URL=/admin",
    "HTTP_X_HTTP_METHOD_OVERRIDE=DELETE",
    "HTTP_X_MEMFILL_TOKEN=secret",
    "HTTP_X_MEMFILL_PURGE_TAG=all",
    "HTTP_CONNECTION=keep-alive, X-Foo-Bar",
    "HTTP_KEEP_ALIVE=300",
    "HTTP_TE=trailers",
    "HTTP_UPGRADE=websocket",
    "HTTP_PROXY=http://evil.test:3128",
    "HTTP_PROXY_AUTHORIZATION=Basic eA==",
    "HTTP_EXPECT=100-continue",
    "HTTP_ACCEPT_ENCODING=gzip, br",
    "HTTP_IF_NONE_MATCH=\"v1\"",
    "HTTP_IF_MODIFIED_SINCE=Tue, 14 Nov 2023 22:13:20 GMT",
    "HTTP_RANGE=bytes=0-1",
    "HTTP_IF_RANGE=\"v1\"",
    "HTTP_CONTENT_LENGTH=99",
    "HTTP_BAD.NAME=x",
    "REMOTE_ADDR=192.0.2.7",
    "REQUEST_SCHEME=https",
    "SERVER_NAME=fallback.test",
    "QUERY_STRING=a=1",
    NULL,
};

/* Never relayed in either regime: hop-by-hop, conditional (GET), the
 * client's forwarding and re-targeting headers, X-Memfill-*. */
static void assert_never_relayed(json_t *root)
{
    static const char *const absent[] = {
        "Connection", "Keep-Alive", "TE", "Upgrade", "Proxy", "Proxy-Authorization", "Expect",
        "Accept-Encoding", "If-None-Match", "If-Modified-Since", "Range", "If-Range",
        "Content-Length", "Content-Type", "Transfer-Encoding", "Bad.name", "Bad-Name",
        "X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded", "X-Real-Ip", "X-Original-Url",
        "X-Rewrite-Url", "X-Http-Method-Override", "X-Memfill-Token", "X-Memfill-Purge-Tag",
    };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_echo_header(root, absent[i], NULL);
    /* memfill's own: the origin URL's host, REMOTE_ADDR, the scheme, the
     * server name */
    char *host = xasprintf("127.0.0.1:%d", origin_port);
    assert_echo_header(root, "Host", host);
    free(host);
    assert_echo_header(root, "X-Forwarded-For", "192.0.2.7");
    assert_echo_header(root, "X-Forwarded-Proto", "https");
    assert_echo_header(root, "X-Forwarded-Host", "fallback.test");
}

/* A request whose store is ruled out (here: it carries Authorization and
 * a session cookie) passes the client's end-to-end headers through, each
 * header's instances joined as nginx 1.23+ joins them. */
START_TEST(test_upstream_request_headers_passthrough)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx.ruled_out = 1;
    fx_run(&fx, "GET", "/echo?cc=max-age%3D60&a=1", visitor_params, NULL, 0);
    json_t *root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "GET");
    ck_assert_str_eq(json_string_value(json_object_get(root, "target")), "/echo?a=1");
    ck_assert_int_eq(json_integer_value(json_object_get(root, "body_len")), 0);
    assert_echo_header(root, "Cookie", "theme=dark; lang=fr; sessionid=s1");
    assert_echo_header(root, "Authorization", "Basic dXNlcjpwdw==");
    assert_echo_header(root, "User-Agent", "check/1.0");
    assert_echo_header(root, "Accept", "text/html");
    assert_echo_header(root, "Accept-Language", "fr");
    assert_echo_header(root, "X-Foo-Bar", "baz, qux");
    assert_echo_header(root, "X-Empty", "");
    assert_never_relayed(root);
    json_decref(root);
    /* nothing is filed, whatever the origin says */
    ck_assert_int_eq(fx.resp.no_store, 1);
    fx_fini(&fx);
}
END_TEST

/* A request that may be stored sends what the key describes and nothing
 * more: with the default key, the path and args; no client header. */
START_TEST(test_upstream_request_headers_keyed)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_run(&fx, "GET", "/echo?cc=max-age%3D60&a=1", visitor_params, NULL, 0);
    json_t *root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "target")), "/echo?a=1");
    static const char *const dropped[] = {
        "Cookie", "Authorization", "User-Agent", "Accept", "Accept-Language", "X-Foo-Bar",
        "X-Empty",
    };
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        assert_echo_header(root, dropped[i], NULL);
    assert_never_relayed(root);
    json_decref(root);
    fx_fini(&fx);

    /* a key that reads headers and cookies: exactly those values go */
    fx_init(&fx, NULL, 5000, -1);
    fx.cfg.key = (char *)"$host$uri$is_args$arg_a|$http_accept_language|$http_x_foo_bar|"
                         "$cookie_Lang|$cookie_missing|$http_x_forwarded_for";
    handler_upstream_ops.destroy(fx.state);
    struct err e;
    err_clear(&e);
    ck_assert(handler_upstream_ops.create(&fx.cfg, 0, &fx.state, &e) == 0);
    fx_run(&fx, "GET", "/echo?a=1&cc=max-age%3D60&b=2", visitor_params, NULL, 0);
    root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "target")), "/echo?a=1");
    assert_echo_header(root, "Accept-Language", "fr");
    assert_echo_header(root, "X-Foo-Bar", "baz"); /* nginx 1.22: the first instance */
    assert_echo_header(root, "Cookie", "Lang=fr");
    assert_echo_header(root, "Host", "www.example.test");
    assert_echo_header(root, "X-Forwarded-Host", "www.example.test");
    assert_echo_header(root, "X-Forwarded-For", "192.0.2.7");
    assert_echo_header(root, "Authorization", NULL);
    assert_echo_header(root, "User-Agent", NULL);
    json_decref(root);
    fx_fini(&fx);
}
END_TEST

/* Without the client's headers, curl adds none of its own defaults (no
 * Accept: * / *, no User-Agent), and X-Forwarded-* fall back sensibly. */
START_TEST(test_upstream_request_minimal)
{
    static const char *const params[] = {"SERVER_NAME=site.test", "HTTPS=on", NULL};
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_run(&fx, "GET", "/echo", params, NULL, 0);
    json_t *root = echo_parse(&fx.resp);
    assert_echo_header(root, "Accept", NULL);
    assert_echo_header(root, "User-Agent", NULL);
    assert_echo_header(root, "X-Forwarded-For", NULL);
    assert_echo_header(root, "X-Forwarded-Proto", "https");
    assert_echo_header(root, "X-Forwarded-Host", "site.test");
    char *host = xasprintf("127.0.0.1:%d", origin_port);
    assert_echo_header(root, "Host", host);
    free(host);
    json_decref(root);
    fx_next(&fx);
    static const char *const plain_http[] = {"REMOTE_ADDR=::1", "HTTPS=", NULL};
    fx_run(&fx, "GET", "/echo", plain_http, NULL, 0);
    root = echo_parse(&fx.resp);
    assert_echo_header(root, "X-Forwarded-For", "::1");
    assert_echo_header(root, "X-Forwarded-Proto", "http");
    json_decref(root);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_post_body)
{
    static const char body[] = "{\"a\":\"b\"}\0tail\xff";
    static const char *const params[] = {
        "CONTENT_TYPE=application/json", "CONTENT_LENGTH=15",
        "HTTP_CONTENT_TYPE=application/json", "HTTP_CONTENT_LENGTH=15",
        "HTTP_IF_MATCH=\"v1\"", "HTTP_IF_UNMODIFIED_SINCE=Tue, 14 Nov 2023 22:13:20 GMT",
        "HTTP_RANGE=bytes=0-1", NULL,
    };
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_run(&fx, "POST", "/echo?cc=max-age%3D60", params, body, sizeof body - 1);
    json_t *root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "POST");
    ck_assert_int_eq(json_integer_value(json_object_get(root, "body_len")), 15);
    json_t *jb = json_object_get(root, "body");
    ck_assert_uint_eq(json_string_length(jb), 16); /* 0xff is two bytes in UTF-8 */
    ck_assert_int_eq(memcmp(json_string_value(jb), body, 14), 0);
    assert_echo_header(root, "Content-Type", "application/json");
    assert_echo_header(root, "Content-Length", "15");
    assert_echo_header(root, "Expect", NULL);
    /* a POST keeps its preconditions */
    assert_echo_header(root, "If-Match", "\"v1\"");
    assert_echo_header(root, "If-Unmodified-Since", "Tue, 14 Nov 2023 22:13:20 GMT");
    assert_echo_header(root, "Range", "bytes=0-1");
    json_decref(root);
    /* a POST is never stored: the relay says so whatever the policy says */
    assert_refused(&fx.resp, OUTCOME_SKIP_METHOD);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_methods)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    /* a large body: no Expect: 100-continue round trip */
    size_t n = 3u << 20;
    char *big = xmalloc(n);
    memset(big, 'b', n);
    static const char *const put_params[] = {"CONTENT_TYPE=text/plain", NULL};
    fx_run(&fx, "PUT", "/echo", put_params, big, n);
    json_t *root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "PUT");
    ck_assert_int_eq(json_integer_value(json_object_get(root, "body_len")), (json_int_t)n);
    assert_echo_header(root, "Content-Type", "text/plain");
    json_decref(root);
    free(big);

    /* a body without a Content-Type: curl's form type is not added */
    fx_next(&fx);
    fx_run(&fx, "PATCH", "/echo", NULL, "x=1", 3);
    root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "PATCH");
    ck_assert_str_eq(json_string_value(json_object_get(root, "body")), "x=1");
    assert_echo_header(root, "Content-Type", NULL);
    json_decref(root);

    fx_next(&fx);
    fx_run(&fx, "DELETE", "/echo", NULL, NULL, 0);
    root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "DELETE");
    assert_echo_header(root, "Content-Length", NULL);
    json_decref(root);

    /* an empty POST still says Content-Length: 0 */
    fx_next(&fx);
    static const char *const empty[] = {"CONTENT_LENGTH=0", NULL};
    fx_run(&fx, "POST", "/echo", empty, NULL, 0);
    root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "POST");
    assert_echo_header(root, "Content-Length", "0");
    json_decref(root);

    /* HEAD goes to the origin as GET, so the stored body is the page */
    fx_next(&fx);
    fx_run(&fx, "HEAD", "/echo?cc=max-age%3D30", NULL, NULL, 0);
    root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "GET");
    json_decref(root);
    assert_storable(&fx.resp, 30);

    /* a method curl has no name for is relayed as is */
    fx_next(&fx);
    fx_run(&fx, "OPTIONS", "/echo", NULL, NULL, 0);
    root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "method")), "OPTIONS");
    json_decref(root);
    fx_fini(&fx);
}
END_TEST

/* The path reaches the origin as nginx routed on it ($uri, decoded and
 * normalised, re-encoded); the args as the client sent them. */
START_TEST(test_upstream_target_canonical)
{
    static const struct {
        const char *uri;
        const char *target;
    } rows[] = {
        {"/echo?p=/../x&q=%2F%20&r=a+b", "/echo?p=/../x&q=%2F%20&r=a+b"},
        {"/echo?x=%zz&&y", "/echo?x=%zz&&y"},
        {"/echo?\xc3\xa9=1", "/echo?%C3%A9=1"},
        {"/echo?a b", "/echo?a%20b"},
        {"/echo?a#b", "/echo?a%23b"},
        {"/x/../echo", "/echo"},
        {"//echo", "/echo"},
        {"/%65cho?a=%41", "/echo?a=%41"},
        {"/cat/../echo/.%2E/echo", "/echo"},
        {"/zzz/..%2Fecho", "/echo"},
    };
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        fx_next(&fx);
        fx_get(&fx, rows[i].uri);
        json_t *root = echo_parse(&fx.resp);
        ck_assert_str_eq(json_string_value(json_object_get(root, "target")), rows[i].target);
        json_decref(root);
    }
    /* "/echo/../plain" is /plain, as nginx's $uri and the key say */
    fx_next(&fx);
    fx_get(&fx, "/echo/../plain");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_str_eq(fx.resp.body.data, "plain\n");
    assert_storable(&fx.resp, 120);
    /* an encoded '?' is relayed encoded, and the page is not stored: its
     * key "/plain?x" is also the key of "/plain?x" */
    fx_next(&fx);
    fx_get(&fx, "/plain%3Fx");
    ck_assert_int_eq(fx.resp.status, 404);
    assert_refused(&fx.resp, OUTCOME_SKIP_TARGET);
    fx_next(&fx);
    fx_get(&fx, "/echo/x%3fy?cc=max-age%3D60");
    json_t *root = echo_parse(&fx.resp);
    ck_assert_str_eq(json_string_value(json_object_get(root, "target")),
                     "/echo/x%3Fy?cc=max-age%3D60");
    json_decref(root);
    assert_refused(&fx.resp, OUTCOME_SKIP_TARGET);
    /* a target that is not a path cannot be relayed */
    fx_next(&fx);
    fx_get(&fx, "*");
    ck_assert_int_eq(fx.resp.status, 400);
    assert_refused(&fx.resp, OUTCOME_SKIP_HANDLER);
    fx_next(&fx);
    fx_get(&fx, "");
    ck_assert_int_eq(fx.resp.status, 400);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_status_relayed)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/status/404");
    ck_assert_int_eq(fx.resp.status, 404);
    ck_assert_str_eq(fx.resp.body.data, "status 404\n");
    assert_refused(&fx.resp, OUTCOME_SKIP_STATUS);
    fx_next(&fx);
    fx_get(&fx, "/status/301");
    ck_assert_int_eq(fx.resp.status, 301);
    assert_header(&fx.resp, "Location", "/plain");
    assert_refused(&fx.resp, OUTCOME_SKIP_STATUS);
    fx_next(&fx);
    fx_get(&fx, "/status/503");
    ck_assert_int_eq(fx.resp.status, 503);
    assert_refused(&fx.resp, OUTCOME_SKIP_STATUS);
    fx_next(&fx);
    fx_get(&fx, "/status/204");
    ck_assert_int_eq(fx.resp.status, 204);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_hop_by_hop_dropped)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/hop");
    ck_assert_int_eq(fx.resp.status, 200);
    static const char *const dropped[] = {
        "Keep-Alive", "Upgrade", "Trailer", "TE", "Proxy-Foo", "Proxy-Authenticate", "Status",
        "Content-Length", "Connection", "Transfer-Encoding",
    };
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        assert_header(&fx.resp, dropped[i], NULL);
    assert_header(&fx.resp, "X-Kept", "yes");
    assert_storable(&fx.resp, 60);
    /* a chunked body is relayed decoded, without Transfer-Encoding */
    fx_next(&fx);
    fx_get(&fx, "/big?bytes=100000&chunked=1");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_uint_eq(fx.resp.body.len, 100000);
    assert_header(&fx.resp, "Transfer-Encoding", NULL);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_tags)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/tags");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_str_eq(fx.resp.tags.data, "a b c d");
    assert_header(&fx.resp, "X-Memfill-Tags", NULL);
    assert_storable(&fx.resp, 60);
    /* tags do not carry over to the next response */
    fx_next(&fx);
    fx_get(&fx, "/plain");
    ck_assert_uint_eq(fx.resp.tags.len, 0);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_unsafe_headers_dropped)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/crlf");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_str_eq(fx.resp.body.data, "crlf\n");
    assert_header(&fx.resp, "X-Before", "ok");
    assert_header(&fx.resp, "X-After", "ok");
    assert_header(&fx.resp, "X-Bad-Cr", NULL);
    assert_header(&fx.resp, "X-Folded", "one two");
    ck_assert_ptr_null(memchr(fx.resp.headers.data, '\0', fx.resp.headers.len));
    ck_assert_ptr_null(strstr(fx.resp.headers.data, "\r\n "));
    assert_storable(&fx.resp, 60);
    /* curl refuses a NUL in a header outright: a 502 */
    fx_next(&fx);
    fx_get(&fx, "/nul");
    ck_assert_int_eq(fx.resp.status, 502);
    assert_refused(&fx.resp, OUTCOME_SKIP_HANDLER);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_interim_response)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/interim");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_str_eq(fx.resp.body.data, "interim\n");
    assert_header(&fx.resp, "X-Final", "yes");
    assert_header(&fx.resp, "Link", NULL);
    assert_storable(&fx.resp, 60);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_content_encoding)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/gzip");
    ck_assert_int_eq(fx.resp.status, 200);
    assert_header(&fx.resp, "Content-Encoding", "gzip");
    ck_assert_uint_gt(fx.resp.body.len, 10);
    ck_assert_int_eq((unsigned char)fx.resp.body.data[0], 0x1f);
    assert_refused(&fx.resp, OUTCOME_SKIP_HANDLER);
    fx_fini(&fx);
}
END_TEST

/* The handler's client is made after fork: a child inheriting a handler
 * that already talked to the origin gets a connection of its own. */
START_TEST(test_upstream_after_fork)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/plain");
    ck_assert_int_eq(fx.resp.status, 200);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int ok = 1;
        for (int i = 0; i < 2; i++) {
            fx_next(&fx);
            fx_get(&fx, "/plain");
            ok = ok && fx.resp.status == 200 && strcmp(fx.resp.body.data, "plain\n") == 0;
        }
        fx_fini(&fx);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    /* a child that only frees the inherited handler (leak checkers: clean) */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fx_fini(&fx);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "second child status %d", st);
    /* and the parent's own connection still works */
    fx_next(&fx);
    fx_get(&fx, "/plain");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_str_eq(fx.resp.body.data, "plain\n");
    fx_fini(&fx);
}
END_TEST

/* ---- the store decision, per origin.py endpoint ---- */

struct policy_row {
    const char *path;
    int status;
    int storable;
    long ttl;   /* when storable; -2 = about 75 s (absolute X-Accel-Expires) */
    enum store_outcome reason; /* when not */
};

static const struct policy_row policy_rows[] = {
    {"/plain", 200, 1, 120, 0},
    {"/default", 200, 1, 77, 0},
    {"/private", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/nostore", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/nocache", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/maxage0", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/smaxage", 200, 1, 30, 0},
    {"/smaxage0", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/age", 200, 1, 60, 0},
    {"/accel", 200, 1, 42, 0},
    {"/accel0", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/accel-abs", 200, 1, -2, 0},
    {"/accel-private", 200, 1, 60, 0},
    {"/expires", 200, 1, 90, 0},
    {"/expires-past", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/expires-bad", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/cookie", 200, 0, 0, OUTCOME_SKIP_COOKIE},
    {"/vary-ae", 200, 1, 120, 0},
    {"/vary-cookie", 200, 0, 0, OUTCOME_SKIP_CACHE_CONTROL},
    {"/status/404", 404, 0, 0, OUTCOME_SKIP_STATUS},
    {"/status/301", 301, 0, 0, OUTCOME_SKIP_STATUS},
    {"/status/500", 500, 0, 0, OUTCOME_SKIP_STATUS},
    {"/nowhere", 404, 0, 0, OUTCOME_SKIP_STATUS},
};

START_TEST(test_upstream_policy_row)
{
    const struct policy_row *r = &policy_rows[_i];
    struct fixture fx;
    fx_init(&fx, NULL, 5000, 77);
    fx_get(&fx, r->path);
    ck_assert_msg(fx.resp.status == r->status, "%s: status %d", r->path, fx.resp.status);
    if (r->storable) {
        ck_assert_msg(!fx.resp.no_store, "%s: refused (reason %d)", r->path,
                      fx.resp.no_store_reason);
        if (r->ttl == -2)
            ck_assert_msg(fx.resp.ttl >= 72 && fx.resp.ttl <= 75, "%s: ttl %ld", r->path,
                          fx.resp.ttl);
        else
            ck_assert_msg(fx.resp.ttl == r->ttl, "%s: ttl %ld, expected %ld", r->path,
                          fx.resp.ttl, r->ttl);
    } else {
        ck_assert_msg(fx.resp.no_store, "%s: storable (ttl %ld)", r->path, fx.resp.ttl);
        ck_assert_msg(fx.resp.no_store_reason == r->reason, "%s: reason %d, expected %d",
                      r->path, fx.resp.no_store_reason, r->reason);
    }
    fx_fini(&fx);
}
END_TEST

/* The route's ttl falls back to cache.ttl; cache.min_ttl/max_ttl apply. */
START_TEST(test_upstream_policy_limits)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/default");
    assert_storable(&fx.resp, 300);
    fx_fini(&fx);

    memset(&fx, 0, sizeof fx);
    ck_assert_msg(origin_port > 0, "origin: %s", origin_why);
    struct config_route r;
    memset(&r, 0, sizeof r);
    r.handler = CONFIG_HANDLER_UPSTREAM;
    r.ttl = -1;
    r.origin = xasprintf("http://127.0.0.1:%d", origin_port);
    r.connect_timeout_ms = 2000;
    r.timeout_ms = 5000;
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ttl = 300;
    cfg.min_ttl = 100;
    cfg.max_ttl = 110;
    cfg.routes = &r;
    cfg.nroutes = 1;
    ck_assert_int_eq(handler_upstream_ops.create(&cfg, 0, &fx.state, NULL), 0);
    response_init(&fx.resp);
    fx_get(&fx, "/plain"); /* 120 -> 110 */
    assert_storable(&fx.resp, 110);
    fx_next(&fx);
    fx_get(&fx, "/accel"); /* 42 -> 100 */
    assert_storable(&fx.resp, 100);
    fx_next(&fx);
    fx_get(&fx, "/private");
    assert_refused(&fx.resp, OUTCOME_SKIP_CACHE_CONTROL);
    fx_fini(&fx);
    free(r.origin);
}
END_TEST

/* ---- failures ---- */

static void assert_error_page(const struct response *resp, int status, const char *text)
{
    ck_assert_int_eq(resp->status, status);
    ck_assert_msg(strstr(resp->body.data, text) != NULL, "body: %s", resp->body.data);
    ck_assert_str_eq(resp->content_type.data, "text/html; charset=utf-8");
    ck_assert_uint_eq(resp->headers.len, 0);
    assert_refused(resp, OUTCOME_SKIP_HANDLER);
}

START_TEST(test_upstream_origin_down)
{
    char *origin = xasprintf("http://127.0.0.1:%d", closed_port());
    struct fixture fx;
    fx_init(&fx, origin, 5000, -1);
    uint64_t t0 = util_now_ms();
    fx_get(&fx, "/plain");
    assert_error_page(&fx.resp, 502, "The origin server did not answer.");
    ck_assert_uint_lt(util_now_ms() - t0, 2000);
    fx_fini(&fx);
    free(origin);
}
END_TEST

START_TEST(test_upstream_timeout)
{
    struct fixture fx;
    fx_init(&fx, NULL, 300, -1);
    uint64_t t0 = util_now_ms();
    fx_get(&fx, "/slow?ms=3000");
    uint64_t took = util_now_ms() - t0;
    assert_error_page(&fx.resp, 504, "The origin server did not answer in time.");
    ck_assert_msg(took >= 250 && took < 2000, "took %llu ms", (unsigned long long)took);
    /* the handler recovers: a fast page on the next request */
    fx_next(&fx);
    fx_get(&fx, "/slow?ms=10");
    ck_assert_int_eq(fx.resp.status, 200);
    assert_storable(&fx.resp, 120);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_broken_origin)
{
    struct fixture fx;
    fx_init(&fx, NULL, 5000, -1);
    fx_get(&fx, "/badheader");
    assert_error_page(&fx.resp, 502, "invalid response");
    fx_next(&fx);
    fx_get(&fx, "/reset");
    ck_assert_int_eq(fx.resp.status, 502);
    assert_refused(&fx.resp, OUTCOME_SKIP_HANDLER);
    /* and back to normal */
    fx_next(&fx);
    fx_get(&fx, "/plain");
    ck_assert_int_eq(fx.resp.status, 200);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_upstream_body_cap)
{
    struct fixture fx;
    fx_init(&fx, NULL, 20000, -1);
    /* exactly 64 MiB passes */
    fx_get(&fx, "/big?bytes=67108864");
    ck_assert_int_eq(fx.resp.status, 200);
    ck_assert_uint_eq(fx.resp.body.len, 64u << 20);
    /* one byte more does not, whether the length is announced or not */
    fx_next(&fx);
    fx_get(&fx, "/big?bytes=67108865");
    assert_error_page(&fx.resp, 502, "too large");
    fx_next(&fx);
    fx_get(&fx, "/big?bytes=67108865&chunked=1");
    assert_error_page(&fx.resp, 502, "too large");
    fx_next(&fx);
    fx_get(&fx, "/plain");
    ck_assert_int_eq(fx.resp.status, 200);
    fx_fini(&fx);
}
END_TEST

/* ---- suite ---- */

Suite *upstream_suite(void);

Suite *upstream_suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("Create");
    tcase_add_test(tc, test_upstream_create_rejects_bad_origins);
    tcase_add_test(tc, test_upstream_create_accepts_good_origins);
    suite_add_tcase(s, tc);

    tc = tcase_create("Relay");
    tcase_add_unchecked_fixture(tc, origin_start, origin_stop);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_upstream_plain);
    tcase_add_test(tc, test_upstream_request_headers_passthrough);
    tcase_add_test(tc, test_upstream_request_headers_keyed);
    tcase_add_test(tc, test_upstream_request_minimal);
    tcase_add_test(tc, test_upstream_post_body);
    tcase_add_test(tc, test_upstream_methods);
    tcase_add_test(tc, test_upstream_target_canonical);
    tcase_add_test(tc, test_upstream_status_relayed);
    tcase_add_test(tc, test_upstream_hop_by_hop_dropped);
    tcase_add_test(tc, test_upstream_tags);
    tcase_add_test(tc, test_upstream_unsafe_headers_dropped);
    tcase_add_test(tc, test_upstream_interim_response);
    tcase_add_test(tc, test_upstream_content_encoding);
    tcase_add_test(tc, test_upstream_after_fork);
    suite_add_tcase(s, tc);

    tc = tcase_create("Policy");
    tcase_add_unchecked_fixture(tc, origin_start, origin_stop);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_upstream_policy_row, 0,
                        (int)(sizeof policy_rows / sizeof policy_rows[0]));
    tcase_add_test(tc, test_upstream_policy_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("Failures");
    tcase_add_unchecked_fixture(tc, origin_start, origin_stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_upstream_origin_down);
    tcase_add_test(tc, test_upstream_timeout);
    tcase_add_test(tc, test_upstream_broken_origin);
    tcase_add_test(tc, test_upstream_body_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int missing = tu_binary_missing("python3");
    if (missing)
        return missing;
    /* a test process killed mid-write must not die of SIGPIPE later */
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(upstream_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
