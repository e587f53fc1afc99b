/* check_request.c - the request view (request.c): what request_init reads
 * from the FastCGI params, the method bits, a header sent several times
 * (request_param_all, request_header_joined, request_eval_key), and the
 * response buffers.
 *
 * The params are built here as libfcgi hands them over ("NAME=value"
 * strings, NULL-terminated, in arrival order), so a header sent twice is
 * two HTTP_* entries, as nginx passes it. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/keypattern.h"
#include "memfill/request.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request_init ---- */

START_TEST(test_init_reads_params)
{
    const char *const env_list[] = {"REQUEST_METHOD=GET",
                                    "REQUEST_URI=/a%20b/../c?x=1",
                                    "QUERY_STRING=x=1",
                                    "DOCUMENT_URI=/c",
                                    "MEMC_KEY=/c?x=1",
                                    "MEMC_BACKEND=127.0.0.1:11211",
                                    "MEMC_STATUS=404",
                                    NULL};
    char **env = tu_env_new(env_list);
    struct request r;
    request_init(&r, env);
    ck_assert_str_eq(r.method, "GET");
    ck_assert_uint_eq(r.method_bit, CONFIG_METHOD_GET);
    ck_assert_str_eq(r.request_uri, "/a%20b/../c?x=1");
    ck_assert_str_eq(r.query, "x=1");
    /* DOCUMENT_URI is nginx's $uri: taken as it is. */
    ck_assert_int_eq(r.path_ok, 1);
    ck_assert_str_eq(r.path.data, "/c");
    ck_assert_str_eq(r.memc_key, "/c?x=1");
    ck_assert_str_eq(r.memc_backend, "127.0.0.1:11211");
    ck_assert_str_eq(r.memc_status, "404");
    ck_assert_ptr_eq(r.envp, env);
    ck_assert_ptr_null(r.body);
    ck_assert_int_eq(r.store_ruled_out, 0);
    request_fini(&r);
    tu_env_free(env);
}
END_TEST

START_TEST(test_init_derives_what_nginx_did_not_pass)
{
    /* No DOCUMENT_URI and no QUERY_STRING: $uri is REQUEST_URI's path
     * normalised as nginx does, the args are what follows '?'. */
    const char *const env_list[] = {"REQUEST_METHOD=HEAD",
                                    "REQUEST_URI=/a//b/./%63/../d?q=%20&r", NULL};
    char **env = tu_env_new(env_list);
    struct request r;
    request_init(&r, env);
    ck_assert_uint_eq(r.method_bit, CONFIG_METHOD_HEAD);
    ck_assert_int_eq(r.path_ok, 1);
    ck_assert_str_eq(r.path.data, "/a/b/d");
    ck_assert_str_eq(r.query, "q=%20&r");
    ck_assert_ptr_null(r.memc_key);
    ck_assert_ptr_null(r.memc_backend);
    ck_assert_ptr_null(r.memc_status);
    request_fini(&r);
    tu_env_free(env);
}
END_TEST

START_TEST(test_init_refused_targets)
{
    /* A target nginx answers 400 to, and an empty one, leave path_ok 0
     * (the worker answers 400) and a NUL-terminated path: empty, or "/"
     * for a target that is empty before its '?' (what a key's $uri reads
     * for it, as nginx's parser gives). */
    static const char *const targets[] = {"REQUEST_URI=/../x", "REQUEST_URI=/%zz",
                                          "REQUEST_URI=/a%00b", "REQUEST_URI=", "REQUEST_URI=?x"};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        const char *const env_list[] = {targets[i], NULL};
        char **env = tu_env_new(env_list);
        struct request r;
        request_init(&r, env);
        ck_assert_msg(r.path_ok == 0, "%s: path_ok", targets[i]);
        ck_assert_ptr_nonnull(r.path.data);
        int empty_path = strcmp(targets[i], "REQUEST_URI=") == 0 ||
                         strcmp(targets[i], "REQUEST_URI=?x") == 0;
        ck_assert_msg(strcmp(r.path.data, empty_path ? "/" : "") == 0, "%s: path \"%s\"",
                      targets[i], r.path.data);
        request_fini(&r);
        tu_env_free(env);
    }
}
END_TEST

START_TEST(test_init_empty_params)
{
    /* No params at all, and an empty DOCUMENT_URI (which falls back to
     * REQUEST_URI): never NULL where the header promises a string. */
    const char *const none_list[] = {NULL};
    char **none = tu_env_new(none_list);
    struct request r;
    request_init(&r, none);
    ck_assert_str_eq(r.method, "");
    ck_assert_uint_eq(r.method_bit, 0);
    ck_assert_str_eq(r.request_uri, "");
    ck_assert_str_eq(r.query, "");
    ck_assert_int_eq(r.path_ok, 0);
    ck_assert_str_eq(r.path.data, "");
    request_fini(&r);
    tu_env_free(none);

    const char *const env_list[] = {"DOCUMENT_URI=", "REQUEST_URI=/x/./y", NULL};
    char **env = tu_env_new(env_list);
    request_init(&r, env);
    ck_assert_int_eq(r.path_ok, 1);
    ck_assert_str_eq(r.path.data, "/x/y");
    request_fini(&r);
    tu_env_free(env);
}
END_TEST

START_TEST(test_method_bits)
{
    static const struct {
        const char *method;
        unsigned bit;
    } rows[] = {
        {"GET", CONFIG_METHOD_GET},         {"HEAD", CONFIG_METHOD_HEAD},
        {"POST", CONFIG_METHOD_POST},       {"PUT", CONFIG_METHOD_PUT},
        {"DELETE", CONFIG_METHOD_DELETE},   {"PATCH", CONFIG_METHOD_PATCH},
        {"OPTIONS", CONFIG_METHOD_OPTIONS}, {"get", 0}, /* methods are case-sensitive */
        {"PURGE", 0},                       {"GETX", 0},
        {"", 0},
    };
    unsigned seen = 0;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char param[64];
        snprintf(param, sizeof param, "REQUEST_METHOD=%s", rows[i].method);
        const char *const env_list[] = {param, "REQUEST_URI=/", NULL};
        char **env = tu_env_new(env_list);
        struct request r;
        request_init(&r, env);
        ck_assert_str_eq(r.method, rows[i].method);
        ck_assert_msg(r.method_bit == rows[i].bit, "%s: bit %#x, expected %#x", rows[i].method,
                      r.method_bit, rows[i].bit);
        ck_assert_msg((seen & r.method_bit) == 0, "%s: bit shared", rows[i].method);
        seen |= r.method_bit;
        request_fini(&r);
        tu_env_free(env);
    }
}
END_TEST

/* ---- params, and headers sent several times ---- */

static const char *const multi_list[] = {"HTTP_COOKIE=a=1",
                                         "HTTP_X_FORWARDED_FOR=10.0.0.1",
                                         "HTTP_COOKIE_EXTRA=not a cookie",
                                         "HTTP_ACCEPT=text/html",
                                         "HTTP_COOKIE=b=2; sid=s",
                                         "HTTP_X_FORWARDED_FOR=10.0.0.2",
                                         "HTTP_ACCEPT=*/*",
                                         "REQUEST_URI=/p?x=1",
                                         "HTTP_COOKIE=c=3",
                                         NULL};

START_TEST(test_param_first_and_exact)
{
    struct request r;
    char **multi_env = tu_env_new(multi_list);
    request_init(&r, multi_env);
    /* The first instance, and a name matches only up to its '='. */
    ck_assert_str_eq(request_param(&r, "HTTP_COOKIE"), "a=1");
    ck_assert_str_eq(request_param(&r, "HTTP_COOKIE_EXTRA"), "not a cookie");
    ck_assert_ptr_null(request_param(&r, "HTTP_COOK"));
    ck_assert_ptr_null(request_param(&r, "HTTP_COOKIE_EXTRA_MORE"));
    ck_assert_str_eq(request_param_cb(&r, "HTTP_ACCEPT"), "text/html");
    request_fini(&r);
    tu_env_free(multi_env);
}
END_TEST

START_TEST(test_param_all)
{
    struct request r;
    char **multi_env = tu_env_new(multi_list);
    request_init(&r, multi_env);
    struct buf out = BUF_INIT;
    buf_append_str(&out, "[");
    ck_assert_uint_eq(request_param_all(&r, "HTTP_COOKIE", " | ", &out), 3);
    ck_assert_str_eq(out.data, "[a=1 | b=2; sid=s | c=3");
    /* With out NULL it only counts; none leaves out as it was. */
    ck_assert_uint_eq(request_param_all(&r, "HTTP_COOKIE", ";", NULL), 3);
    ck_assert_uint_eq(request_param_all(&r, "HTTP_ACCEPT", ";", NULL), 2);
    ck_assert_uint_eq(request_param_all(&r, "HTTP_NONE", ";", &out), 0);
    ck_assert_str_eq(out.data, "[a=1 | b=2; sid=s | c=3");
    buf_reset(&out, 0);
    ck_assert_uint_eq(request_param_all_cb(&r, "HTTP_X_FORWARDED_FOR", "+", &out), 2);
    ck_assert_str_eq(out.data, "10.0.0.1+10.0.0.2");
    buf_fini(&out);
    request_fini(&r);
    tu_env_free(multi_env);
}
END_TEST

START_TEST(test_header_joined)
{
    /* nginx 1.23+ joins Cookie lines with "; " and any other header's
     * lines with ", ". */
    ck_assert_str_eq(request_header_separator("HTTP_COOKIE"), "; ");
    ck_assert_str_eq(request_header_separator("HTTP_ACCEPT"), ", ");
    ck_assert_str_eq(request_header_separator("HTTP_X_FORWARDED_FOR"), ", ");
    struct request r;
    char **multi_env = tu_env_new(multi_list);
    request_init(&r, multi_env);
    struct buf out = BUF_INIT;
    ck_assert_uint_eq(request_header_joined(&r, "HTTP_COOKIE", &out), 3);
    ck_assert_str_eq(out.data, "a=1; b=2; sid=s; c=3");
    buf_reset(&out, 0);
    ck_assert_uint_eq(request_header_joined(&r, "HTTP_ACCEPT", &out), 2);
    ck_assert_str_eq(out.data, "text/html, */*");
    buf_fini(&out);
    request_fini(&r);
    tu_env_free(multi_env);
}
END_TEST

START_TEST(test_eval_key_reads_every_instance)
{
    /* As nginx 1.22: $http_cookie joins with "; ", $http_x_forwarded_for
     * with ", ", $cookie_NAME searches every Cookie line, any other
     * $http_NAME is the first instance. */
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile(
        "$uri|$http_cookie|$http_x_forwarded_for|$cookie_sid|$cookie_c|$http_accept", &e);
    ck_assert_ptr_nonnull(kp);
    struct request r;
    char **multi_env = tu_env_new(multi_list);
    request_init(&r, multi_env);
    struct buf out = BUF_INIT;
    request_eval_key(kp, &r, &out);
    ck_assert_str_eq(out.data, "/p|a=1; b=2; sid=s; c=3|10.0.0.1, 10.0.0.2|s|3|text/html");
    buf_fini(&out);
    request_fini(&r);
    tu_env_free(multi_env);
    key_pattern_free(kp);
}
END_TEST

/* ---- the response ---- */

START_TEST(test_response_headers_and_reset)
{
    struct response resp;
    response_init(&resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.ttl, -1);
    ck_assert_int_eq(response_add_header(&resp, "X-A", "1", 1), 0);
    /* Header splitting is refused: CR, LF or NUL in the value, CR, LF or
     * ':' in the name, an empty name. */
    ck_assert_int_eq(response_add_header(&resp, "X-B", "v\r\nSet-Cookie: x", 16), -1);
    ck_assert_int_eq(response_add_header(&resp, "X-B", "v\nw", 3), -1);
    ck_assert_int_eq(response_add_header(&resp, "X-B", "v\0w", 3), -1);
    ck_assert_int_eq(response_add_header(&resp, "X-B\r\nY", "v", 1), -1);
    ck_assert_int_eq(response_add_header(&resp, "X-B: y", "v", 1), -1);
    ck_assert_int_eq(response_add_header(&resp, "", "v", 1), -1);
    ck_assert_int_eq(response_add_header(&resp, "X-C", "two words", 3), 0);
    ck_assert_str_eq(resp.headers.data, "X-A: 1\r\nX-C: two\r\n");

    resp.status = 404;
    resp.no_store = 1;
    resp.no_store_reason = 3;
    resp.ttl = 60;
    resp.limit = RESPONSE_LIMIT_DATA;
    buf_append_str(&resp.body, "body");
    buf_append_str(&resp.tags, "t1");
    response_reset(&resp, 1 << 16);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.no_store, 0);
    ck_assert_int_eq(resp.no_store_reason, 0);
    ck_assert_int_eq(resp.ttl, -1);
    ck_assert_int_eq(resp.limit, RESPONSE_LIMIT_NONE);
    ck_assert_uint_eq(resp.body.len + resp.headers.len + resp.tags.len, 0);
    response_fini(&resp);
}
END_TEST

START_TEST(test_response_error_page)
{
    struct response resp;
    response_init(&resp);
    buf_append_str(&resp.body, "half a page");
    response_add_header(&resp, "X-Old", "1", 1);
    response_error(&resp, 404, "no such page");
    ck_assert_int_eq(resp.status, 404);
    ck_assert_str_eq(resp.content_type.data, "text/html; charset=utf-8");
    ck_assert_uint_eq(resp.headers.len, 0);
    ck_assert_ptr_null(strstr(resp.body.data, "half a page"));
    ck_assert_ptr_nonnull(strstr(resp.body.data, "<title>404 Not Found</title>"));
    ck_assert_ptr_nonnull(strstr(resp.body.data, "<p>no such page</p>"));
    ck_assert_str_eq(response_reason(200), "OK");
    ck_assert_str_eq(response_reason(504), "Gateway Time-out");
    ck_assert_str_eq(response_reason(299), "");
    response_fini(&resp);
}
END_TEST

Suite *request_suite(void);

Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("init");
    tcase_add_test(tc, test_init_reads_params);
    tcase_add_test(tc, test_init_derives_what_nginx_did_not_pass);
    tcase_add_test(tc, test_init_refused_targets);
    tcase_add_test(tc, test_init_empty_params);
    tcase_add_test(tc, test_method_bits);
    suite_add_tcase(s, tc);
    tc = tcase_create("params");
    tcase_add_test(tc, test_param_first_and_exact);
    tcase_add_test(tc, test_param_all);
    tcase_add_test(tc, test_header_joined);
    tcase_add_test(tc, test_eval_key_reads_every_instance);
    suite_add_tcase(s, tc);
    tc = tcase_create("response");
    tcase_add_test(tc, test_response_headers_and_reset);
    tcase_add_test(tc, test_response_error_page);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(request_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
