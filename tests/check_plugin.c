/* check_plugin.c - the plugin handler against real shared objects.
 *
 * `make check` builds tests/plugins/hello_plugin.so (the example plugin),
 * probe_plugin.so (calls every host function and reports the results),
 * bad_plugin.so (exports no memfill symbol) and bad_abi_plugin.so (claims
 * ABI 2). MEMFILL_TEST_PLUGIN names the hello plugin (default
 * $top_builddir/tests/plugins/hello_plugin.so); the others are looked for
 * in the same folder. Each test builds a small struct config by hand, so
 * conf.c is not involved, and requests from an envp array, as libfcgi
 * hands them to the worker. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/handler.h"
#include "memfill/request.h"
#include "memfill/route.h"
#include "memfill/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NROUTES 2

static char *plugin_dir;
static char *hello_so, *probe_so, *bad_so, *bad_abi_so;

static struct config_route routes[NROUTES];
static struct config cfg;
static void *states[NROUTES];
static struct err err;
static struct response resp;

/* Paths of the test plugins, from MEMFILL_TEST_PLUGIN or $top_builddir. */
static void find_plugins(void)
{
    const char *env = getenv("MEMFILL_TEST_PLUGIN");
    const char *top = getenv("top_builddir");
    hello_so =
        env && *env ? xstrdup(env) : xasprintf("%s/tests/plugins/hello_plugin.so", top ? top : ".");
    const char *slash = strrchr(hello_so, '/');
    plugin_dir = slash ? xstrndup(hello_so, (size_t)(slash - hello_so)) : xstrdup(".");
    probe_so = xasprintf("%s/probe_plugin.so", plugin_dir);
    bad_so = xasprintf("%s/bad_plugin.so", plugin_dir);
    bad_abi_so = xasprintf("%s/bad_abi_plugin.so", plugin_dir);
}

static void setup(void)
{
    find_plugins();
    memset(routes, 0, sizeof routes);
    memset(&cfg, 0, sizeof cfg);
    cfg.path = (char *)"test.json";
    cfg.routes = routes;
    cfg.nroutes = 1;
    for (size_t i = 0; i < NROUTES; i++) {
        routes[i].prefix = (char *)"/";
        routes[i].handler = CONFIG_HANDLER_PLUGIN;
        routes[i].methods = CONFIG_METHOD_GET | CONFIG_METHOD_HEAD;
        routes[i].ttl = -1;
        routes[i].cache = 1;
        routes[i].plugin = hello_so;
        routes[i].pos.line = 3 + (int)i;
        routes[i].pos.col = 5;
        states[i] = NULL;
    }
    err_clear(&err);
    response_init(&resp);
}

static void teardown(void)
{
    for (size_t i = 0; i < NROUTES; i++)
        handler_plugin_ops.destroy(states[i]);
    response_fini(&resp);
    free(hello_so);
    free(probe_so);
    free(bad_so);
    free(bad_abi_so);
    free(plugin_dir);
}

static void set_route(size_t i, const char *so, const char *json, const char *regex)
{
    routes[i].plugin = (char *)so;
    routes[i].plugin_config = (char *)json;
    if (regex) {
        routes[i].prefix = NULL;
        routes[i].regex = (char *)regex;
    }
}

static int create(size_t i)
{
    return handler_plugin_ops.create(&cfg, i, &states[i], &err);
}

/* Creates route i, failing the test with the error text if that fails. */
static void create_ok(size_t i)
{
    int rc = create(i);
    ck_assert_msg(rc == 0, "create failed: %s", err.text);
    ck_assert_ptr_nonnull(states[i]);
}

/* Runs route i on envp (NULL-terminated "NAME=value" strings), with an
 * optional body, matching the route alone to get its captures. */
static void run_body(size_t i, char **envp, const char *body, size_t body_len)
{
    struct request req;
    request_init(&req, envp);
    req.body = body;
    req.body_len = body_len;
    struct config one = cfg;
    one.routes = &routes[i];
    one.nroutes = 1;
    struct err e;
    err_clear(&e);
    struct router *rt = router_new(&one, &e);
    ck_assert_msg(rt != NULL, "router: %s", e.text);
    struct route_match m;
    route_match_init(&m);
    int matched = router_match(rt, req.path.data, req.path.len, &m);
    response_reset(&resp, 1 << 16);
    handler_plugin_ops.handle(states[i], &req, matched == 0 ? &m : NULL, &resp);
    route_match_fini(&m);
    router_free(rt);
    request_fini(&req);
}

static void run(size_t i, char **envp)
{
    run_body(i, envp, NULL, 0);
}

/* A GET of uri, with DOCUMENT_URI = doc (NULL: left to the normaliser). */
static void get(size_t i, const char *uri, const char *doc, const char *query)
{
    char *u = xasprintf("REQUEST_URI=%s", uri);
    char *d = doc ? xasprintf("DOCUMENT_URI=%s", doc) : NULL;
    char *q = xasprintf("QUERY_STRING=%s", query ? query : "");
    char *envp[] = {(char *)"REQUEST_METHOD=GET", u, q, d, NULL};
    run(i, envp);
    free(u);
    free(d);
    free(q);
}

static void assert_err(int line, const char *text)
{
    ck_assert_int_eq(err.set, 1);
    ck_assert_str_eq(err.source, "test.json");
    ck_assert_int_eq(err.line, line);
    ck_assert_int_eq(err.column, 5);
    ck_assert_str_eq(err.text, text);
}

/*---- loading ----*/

START_TEST(test_plugin_load_hello)
{
    set_route(0, hello_so, "{\"greeting\":\"Bonjour\"}", NULL);
    create_ok(0);
    ck_assert_int_eq(err.set, 0);
    ck_assert_str_eq(handler_plugin_ops.name, "plugin");
}
END_TEST

START_TEST(test_plugin_missing_so)
{
    set_route(0, "/nonexistent/memfill/none.so", NULL, NULL);
    ck_assert_int_eq(create(0), -1);
    ck_assert_ptr_null(states[0]);
    ck_assert_int_eq(err.line, 3);
    ck_assert_int_eq(err.column, 5);
    ck_assert_msg(util_starts_with(err.text, "routes[0].plugin: cannot load: "
                                             "/nonexistent/memfill/none.so: "),
                  "%s", err.text);
    ck_assert_msg(strstr(err.text, "No such file"), "%s", err.text);
}
END_TEST

START_TEST(test_plugin_not_an_object)
{
    /* A folder: dlopen fails with its own words, which reach err. */
    set_route(0, plugin_dir, NULL, NULL);
    ck_assert_int_eq(create(0), -1);
    ck_assert_msg(util_starts_with(err.text, "routes[0].plugin: cannot load: "), "%s", err.text);
}
END_TEST

START_TEST(test_plugin_bare_name_not_searched)
{
    /* "libc.so.6" must mean ./libc.so.6, not the system's C library. */
    set_route(0, "libc.so.6", NULL, NULL);
    ck_assert_int_eq(create(0), -1);
    ck_assert_msg(util_starts_with(err.text, "routes[0].plugin: cannot load: ./libc.so.6"), "%s",
                  err.text);
}
END_TEST

START_TEST(test_plugin_no_path)
{
    set_route(0, NULL, NULL, NULL);
    ck_assert_int_eq(create(0), -1);
    assert_err(3, "routes[0].plugin: expected the path of a shared object");
}
END_TEST

START_TEST(test_plugin_no_symbol)
{
    set_route(0, bad_so, NULL, NULL);
    ck_assert_int_eq(create(0), -1);
    ck_assert_ptr_null(states[0]);
    char *want = xasprintf("routes[0].plugin: \"%s\" exports neither memfill_plugin_v1 nor "
                           "memfill_plugin_v1_get()",
                           bad_so);
    assert_err(3, want);
    free(want);
}
END_TEST

START_TEST(test_plugin_wrong_abi)
{
    cfg.nroutes = 2;
    set_route(1, bad_abi_so, NULL, NULL);
    ck_assert_int_eq(create(1), -1);
    ck_assert_ptr_null(states[1]);
    char *want = xasprintf("routes[1].plugin: \"%s\" was built for plugin ABI 2; this memfill "
                           "loads ABI 1",
                           bad_abi_so);
    assert_err(4, want);
    free(want);
}
END_TEST

START_TEST(test_plugin_init_failure)
{
    set_route(0, hello_so, "{\"greeting\":5}", NULL);
    ck_assert_int_eq(create(0), -1);
    ck_assert_ptr_null(states[0]);
    assert_err(3, "routes[0].config: hello: \"greeting\" must be a string");
}
END_TEST

START_TEST(test_plugin_init_failure_message_one_line)
{
    set_route(0, probe_so, "{\"fail\":true}", NULL);
    ck_assert_int_eq(create(0), -1);
    /* The probe has no name: it is called after its file. */
    assert_err(3, "routes[0].config: probe_plugin.so: bad config");
}
END_TEST

START_TEST(test_plugin_init_failure_silent)
{
    set_route(0, probe_so, "{\"silent\":true}", NULL);
    ck_assert_int_eq(create(0), -1);
    assert_err(3, "routes[0].config: probe_plugin.so: the plugin's init failed");
}
END_TEST

START_TEST(test_plugin_first_error_wins)
{
    err_set(&err, "earlier.json", 1, 1, "earlier");
    set_route(0, bad_so, NULL, NULL);
    ck_assert_int_eq(create(0), -1);
    ck_assert_str_eq(err.text, "earlier");
}
END_TEST

START_TEST(test_plugin_getter_symbol)
{
    set_route(0, probe_so, NULL, NULL);
    create_ok(0);
}
END_TEST

START_TEST(test_plugin_destroy_null)
{
    handler_plugin_ops.destroy(NULL);
}
END_TEST

/*---- the hello plugin ----*/

START_TEST(test_plugin_hello_path)
{
    set_route(0, hello_so, "{\"greeting\": \"Bonjour\"}", NULL);
    create_ok(0);
    get(0, "/world/%3Cb%3E?x=1", "/world/<b>", "x=1");
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.data, "<p>Bonjour, /world/&lt;b&gt;</p>");
    ck_assert_str_eq(resp.content_type.data, "text/html; charset=utf-8");
    ck_assert_str_eq(resp.headers.data, "X-Plugin: hello\r\n");
    ck_assert_int_eq(resp.no_store, 0);
    ck_assert_int_eq(resp.ttl, -1);
}
END_TEST

START_TEST(test_plugin_hello_normalised_path)
{
    /* Without DOCUMENT_URI the path is REQUEST_URI decoded and normalised. */
    set_route(0, hello_so, NULL, NULL);
    create_ok(0);
    get(0, "/a//b/./c%22d?q", NULL, "q");
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.data, "<p>Hello, /a/b/c&quot;d</p>");
}
END_TEST

START_TEST(test_plugin_hello_default_greeting)
{
    set_route(0, hello_so, "{}", NULL);
    create_ok(0);
    get(0, "/", "/", NULL);
    ck_assert_str_eq(resp.body.data, "<p>Hello, /</p>");
}
END_TEST

START_TEST(test_plugin_hello_json_escapes)
{
    set_route(0, hello_so, "{\"other\":\"greeting\",\"greeting\":\"Gr\\u00fc\\u00DF <b>\"}", NULL);
    create_ok(0);
    get(0, "/x", "/x", NULL);
    ck_assert_str_eq(resp.body.data, "<p>Gr\xc3\xbc\xc3\x9f &lt;b&gt;, /x</p>");
}
END_TEST

START_TEST(test_plugin_hello_capture)
{
    set_route(0, hello_so, "{\"greeting\":\"Hi\"}", "^/hello/(?<name>[^/]+)$");
    create_ok(0);
    get(0, "/hello/Tom%26Jerry", "/hello/Tom&Jerry", NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.data, "<p>Hi, Tom&amp;Jerry</p>");
}
END_TEST

START_TEST(test_plugin_hello_nostore)
{
    set_route(0, hello_so, NULL, NULL);
    create_ok(0);
    get(0, "/p?nostore=1", "/p", "nostore=1");
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.no_store, 1);
    ck_assert_str_eq(resp.body.data, "<p>Hello, /p</p>");
    get(0, "/p?nostore=0", "/p", "nostore=0");
    ck_assert_int_eq(resp.no_store, 0);
    get(0, "/p?a=1&NoStore=1", "/p", "a=1&NoStore=1");
    ck_assert_int_eq(resp.no_store, 1);
    get(0, "/p?xnostore=1", "/p", "xnostore=1");
    ck_assert_int_eq(resp.no_store, 0);
}
END_TEST

START_TEST(test_plugin_hello_failure_is_500)
{
    set_route(0, hello_so, NULL, NULL);
    create_ok(0);
    get(0, "/p?fail=1", "/p", "fail=1");
    ck_assert_int_eq(resp.status, 500);
    ck_assert_int_eq(resp.no_store, 1);
    ck_assert_uint_eq(resp.headers.len, 0);
    ck_assert_msg(strstr(resp.body.data, "500 Internal Server Error"), "%s", resp.body.data);
    /* The next request on the same state is fine again. */
    get(0, "/p", "/p", NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.no_store, 0);
}
END_TEST

START_TEST(test_plugin_bad_target_is_400)
{
    set_route(0, hello_so, NULL, NULL);
    create_ok(0);
    get(0, "/../etc/passwd", NULL, NULL);
    ck_assert_int_eq(resp.status, 400);
    ck_assert_int_eq(resp.no_store, 1);
}
END_TEST

START_TEST(test_plugin_state_per_route)
{
    /* One loaded object, two routes, two states. */
    cfg.nroutes = 2;
    set_route(0, hello_so, "{\"greeting\":\"One\"}", NULL);
    set_route(1, hello_so, "{\"greeting\":\"Two\"}", NULL);
    create_ok(0);
    create_ok(1);
    get(1, "/x", "/x", NULL);
    ck_assert_str_eq(resp.body.data, "<p>Two, /x</p>");
    get(0, "/x", "/x", NULL);
    ck_assert_str_eq(resp.body.data, "<p>One, /x</p>");
    handler_plugin_ops.destroy(states[0]);
    states[0] = NULL;
    get(1, "/y", "/y", NULL);
    ck_assert_str_eq(resp.body.data, "<p>Two, /y</p>");
}
END_TEST

/*---- the host API, through the probe plugin ----*/

/* clang-format off */
static const char probe_expected[] =
    "abi=1\n"
    "has_log=1\n"
    "config={\"k\":[1,2]}\n"
    "method=POST\n"
    "path=/p/x y/42|9\n"
    "path_nolen=/p/x y/42\n"
    "uri=/p/x%20y/42?a=1&A=2&b&e=&c=%41&last=z\n"
    "query=a=1&A=2&b&e=&c=%41&last=z\n"
    "arg_a=1|1\n"
    "arg_A=1|1\n"
    "arg_bare=(null)\n"
    "arg_empty=|0\n"
    "arg_last=z|1\n"
    "arg_missing=(null)\n"
    "arg_noname=(null)\n"
    "cap_slug=x y|3\n"
    "cap_id=42|2\n"
    "cap_missing=(null)\n"
    "body=ab\0c\n"
    "body_len=4\n"
    "param=hi there\n"
    "param_missing=(null)\n"
    "status_199=-1\n"
    "status_600=-1\n"
    "status_203=0\n"
    "ct_empty=-1\n"
    "ct_crlf=-1\n"
    "ct_ok=0\n"
    "hdr_crlf=-1\n"
    "hdr_lf=-1\n"
    "hdr_cr=-1\n"
    "hdr_name_space=-1\n"
    "hdr_name_colon=-1\n"
    "hdr_name_crlf=-1\n"
    "hdr_name_empty=-1\n"
    "hdr_status=-1\n"
    "hdr_length=-1\n"
    "hdr_ok=0\n"
    "hdr_ct=0\n"
    "hdr_ct_bad=-1\n"
    "write_null=-1\n"
    "write_null0=0\n"
    "ttl_neg=-1\n"
    "ttl_big=-1\n"
    "ttl_ok=0\n"
    "tag_empty=-1\n"
    "tag_space=-1\n"
    "tag_ok=0\n"
    "tag_ok2=0\n";
/* clang-format on */

START_TEST(test_plugin_api)
{
    set_route(0, probe_so, "{\"k\":[1,2]}", "^/p/(?<slug>[^/]+)/(?<id>[0-9]+)$");
    create_ok(0);
    char *envp[] = {
        (char *)"REQUEST_METHOD=POST",
        (char *)"REQUEST_URI=/p/x%20y/42?a=1&A=2&b&e=&c=%41&last=z",
        (char *)"DOCUMENT_URI=/p/x y/42",
        (char *)"QUERY_STRING=a=1&A=2&b&e=&c=%41&last=z",
        (char *)"HTTP_X_TEST=hi there",
        NULL,
    };
    run_body(0, envp, "ab\0c", 4);
    ck_assert_int_eq(resp.status, 203);
    ck_assert_uint_eq(resp.body.len, sizeof probe_expected - 1);
    ck_assert_msg(memcmp(resp.body.data, probe_expected, resp.body.len) == 0, "body:\n%s",
                  resp.body.data);
    ck_assert_str_eq(resp.content_type.data, "text/x-probe");
    ck_assert_str_eq(resp.headers.data, "X-Probe: a\tb\r\n");
    ck_assert_int_eq(resp.ttl, 120);
    ck_assert_str_eq(resp.tags.data, "t1 t2");
    ck_assert_int_eq(resp.no_store, 0);
}
END_TEST

START_TEST(test_plugin_api_no_query_no_body)
{
    set_route(0, probe_so, NULL, NULL);
    create_ok(0);
    char *envp[] = {(char *)"REQUEST_URI=/n", NULL};
    run(0, envp);
    ck_assert_msg(strstr(resp.body.data, "config={}\nmethod=\npath=/n|2\n"), "%s", resp.body.data);
    ck_assert_msg(strstr(resp.body.data, "uri=/n\nquery=\narg_a=(null)\n"), "%s", resp.body.data);
    ck_assert_msg(strstr(resp.body.data, "cap_slug=(null)\n"), "%s", resp.body.data);
    ck_assert_msg(strstr(resp.body.data, "body=(null)\nbody_len=0\n"), "%s", resp.body.data);
}
END_TEST

START_TEST(test_plugin_route_content_type)
{
    /* The route's content_type is the default a plugin may replace. */
    cfg.nroutes = 2;
    set_route(0, probe_so, NULL, NULL);
    routes[0].content_type = (char *)"text/plain; charset=utf-8";
    set_route(1, probe_so, NULL, NULL);
    create_ok(0);
    create_ok(1);
    get(0, "/m?mode=minimal", "/m", "mode=minimal");
    ck_assert_str_eq(resp.body.data, "x");
    ck_assert_str_eq(resp.content_type.data, "text/plain; charset=utf-8");
    get(1, "/m?mode=minimal", "/m", "mode=minimal");
    ck_assert_uint_eq(resp.content_type.len, 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.ttl, -1);
    get(0, "/m", "/m", NULL);
    ck_assert_str_eq(resp.content_type.data, "text/x-probe");
}
END_TEST

static Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugin");

    TCase *tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_plugin_load_hello);
    tcase_add_test(tc, test_plugin_missing_so);
    tcase_add_test(tc, test_plugin_not_an_object);
    tcase_add_test(tc, test_plugin_bare_name_not_searched);
    tcase_add_test(tc, test_plugin_no_path);
    tcase_add_test(tc, test_plugin_no_symbol);
    tcase_add_test(tc, test_plugin_wrong_abi);
    tcase_add_test(tc, test_plugin_init_failure);
    tcase_add_test(tc, test_plugin_init_failure_message_one_line);
    tcase_add_test(tc, test_plugin_init_failure_silent);
    tcase_add_test(tc, test_plugin_first_error_wins);
    tcase_add_test(tc, test_plugin_getter_symbol);
    tcase_add_test(tc, test_plugin_destroy_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("hello");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_plugin_hello_path);
    tcase_add_test(tc, test_plugin_hello_normalised_path);
    tcase_add_test(tc, test_plugin_hello_default_greeting);
    tcase_add_test(tc, test_plugin_hello_json_escapes);
    tcase_add_test(tc, test_plugin_hello_capture);
    tcase_add_test(tc, test_plugin_hello_nostore);
    tcase_add_test(tc, test_plugin_hello_failure_is_500);
    tcase_add_test(tc, test_plugin_bad_target_is_400);
    tcase_add_test(tc, test_plugin_state_per_route);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_plugin_api);
    tcase_add_test(tc, test_plugin_api_no_query_no_body);
    tcase_add_test(tc, test_plugin_route_content_type);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(plugin_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
