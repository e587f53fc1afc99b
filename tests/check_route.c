/* check_route.c - route matching: config order, prefix and PCRE2 regex
 * routes, named captures, safe expansion of data patterns, skip lists. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "memfill/conf.h"
#include "memfill/route.h"

static struct config *cfg;
static struct router *rt;

static void setup(void)
{
    static const char text[] =
        "{\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]},\"routes\":["
        "{\"prefix\":\"/static/\",\"handler\":\"static\",\"root\":\"/r\"},"
        "{\"regex\":\"^/treks/(?<slug>[a-z0-9-]+)(?:/(?<part>[a-z]+))?$\","
        "\"handler\":\"static\",\"root\":\"/r\"},"
        "{\"regex\":\"^/caf\\u00e9$\",\"handler\":\"static\",\"root\":\"/r\"},"
        "{\"prefix\":\"/\",\"handler\":\"static\",\"root\":\"/r\"}]}";
    struct err e;
    err_clear(&e);
    cfg = config_load_string(text, sizeof text - 1, "t.json", "/", 0, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    rt = router_new(cfg, &e);
    ck_assert_msg(rt != NULL, "%s", e.text);
}

static void teardown(void)
{
    router_free(rt);
    config_free(cfg);
}

static size_t match(const char *path, struct route_match *m)
{
    ck_assert_int_eq(router_match(rt, path, strlen(path), m), 0);
    return m->route;
}

START_TEST(test_route_order_and_prefix)
{
    struct route_match m;
    route_match_init(&m);
    ck_assert_uint_eq(match("/static/a.css", &m), 0);
    ck_assert_uint_eq(match("/staticx", &m), 3); /* prefix is bytes, not segments */
    ck_assert_uint_eq(match("/", &m), 3);
    ck_assert_uint_eq(match("/treks/", &m), 3); /* regex needs a slug */
    ck_assert_uint_eq(m.ncaptures, 0);
    route_match_fini(&m);
}
END_TEST

START_TEST(test_route_named_captures)
{
    struct route_match m;
    route_match_init(&m);
    ck_assert_uint_eq(match("/treks/haute-route", &m), 1);
    size_t len;
    const char *v = route_match_get(&m, "slug", &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq((int)len, 11);
    ck_assert_int_eq(memcmp(v, "haute-route", len), 0);
    ck_assert_ptr_null(route_match_get(&m, "part", &len)); /* unset group */
    ck_assert_uint_eq(match("/treks/tmb/map", &m), 1);
    v = route_match_get(&m, "part", &len);
    ck_assert_int_eq(memcmp(v, "map", len), 0);
    struct buf out = BUF_INIT;
    ck_assert_int_eq(route_expand(&m, "data/{slug}/{part}.json", &out), 0);
    ck_assert_str_eq(out.data, "data/tmb/map.json");
    buf_fini(&out);
    route_match_fini(&m);
}
END_TEST

START_TEST(test_route_utf8_bytes)
{
    struct route_match m;
    route_match_init(&m);
    ck_assert_uint_eq(match("/caf\xc3\xa9", &m), 2);
    /* invalid UTF-8 never fails the match, it just does not match */
    ck_assert_uint_eq(match("/caf\xe9", &m), 3);
    route_match_fini(&m);
}
END_TEST

START_TEST(test_route_expand_refuses_unsafe_values)
{
    struct route_match m;
    route_match_init(&m);
    /* "..": a capture that could climb out of the data folder */
    ck_assert_uint_eq(match("/treks/a", &m), 1);
    struct buf out = BUF_INIT;
    ck_assert_int_eq(route_expand(&m, "d/{nope}.json", &out), -1);
    buf_reset(&out, 0);
    ck_assert_int_eq(route_expand(&m, "d/{slug}.json", &out), 0);
    ck_assert_str_eq(out.data, "d/a.json");
    buf_fini(&out);
    route_match_fini(&m);

    /* build a capture with dots through a permissive route */
    static const char text[] = "{\"memcached\":{\"servers\":[\"x:1\"]},\"routes\":["
                               "{\"regex\":\"^/(?<v>.*)$\",\"handler\":\"static\",\"root\":\"/\"}]}";
    struct err e;
    err_clear(&e);
    struct config *c2 = config_load_string(text, sizeof text - 1, "t", "/", 0, &e);
    ck_assert_ptr_nonnull(c2);
    struct router *r2 = router_new(c2, &e);
    route_match_init(&m);
    ck_assert_int_eq(router_match(r2, "/..", 3, &m), 0);
    struct buf o2 = BUF_INIT;
    ck_assert_int_eq(route_expand(&m, "d/{v}.json", &o2), -1);
    ck_assert_int_eq(router_match(r2, "/a/b", 4, &m), 0);
    ck_assert_int_eq(route_expand(&m, "d/{v}.json", &o2), -1);
    buf_fini(&o2);
    route_match_fini(&m);
    router_free(r2);
    config_free(c2);
}
END_TEST

START_TEST(test_route_bad_regex_position)
{
    static const char text[] = "{\"memcached\":{\"servers\":[\"x:1\"]},\"routes\":[\n"
                               "  {\"regex\":\"^/(a\",\"handler\":\"static\",\"root\":\"/\"}]}";
    struct err e;
    err_clear(&e);
    struct config *c2 = config_load_string(text, sizeof text - 1, "t.json", "/", 0, &e);
    ck_assert_ptr_nonnull(c2);
    ck_assert_ptr_null(router_new(c2, &e));
    ck_assert_int_eq(e.line, 2);
    ck_assert_int_eq(e.column, 17); /* value at 12, offset 4 into the pattern */
    ck_assert_ptr_nonnull(strstr(e.text, "routes[0].regex: missing closing parenthesis"));
    config_free(c2);
}
END_TEST

START_TEST(test_route_regex_list)
{
    char p1[] = "^/admin/", p2[] = "\\.php$";
    char *pats[] = {p1, p2, NULL};
    struct err e;
    err_clear(&e);
    struct regex_list *l = regex_list_new(pats, "cache.skip_uri", &e);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(regex_list_match(l, "/admin/x", 8), 1);
    ck_assert_int_eq(regex_list_match(l, "/a.php", 6), 1);
    ck_assert_int_eq(regex_list_match(l, "/a.phpx", 7), 0);
    ck_assert_int_eq(regex_list_match(l, "/\xff\xfe", 3), 0);
    regex_list_free(l);
    char b1[] = "[";
    char *bad[] = {b1, NULL};
    ck_assert_ptr_null(regex_list_new(bad, "cache.skip_uri", &e));
    ck_assert_ptr_nonnull(strstr(e.text, "cache.skip_uri[0]"));
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_route_order_and_prefix);
    tcase_add_test(tc, test_route_named_captures);
    tcase_add_test(tc, test_route_utf8_bytes);
    tcase_add_test(tc, test_route_expand_refuses_unsafe_values);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_route_bad_regex_position);
    tcase_add_test(tc, test_route_regex_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(route_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
