/* check_warmlist.c - what memfillctl warm reads (warmlist.c): URL lists,
 * sitemaps and URLs, and the targets nginx would refuse.
 *
 * Everything here is pure parsing: the tests feed text in and check the
 * items, the split URL or the refusal and its reason. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/warmlist.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- URLs ---- */

START_TEST(test_warm_urls)
{
    static const struct {
        const char *in;
        int rc;
        const char *scheme, *host, *target;
        int line;
    } rows[] = {
        {"/", 0, "http", NULL, "/", __LINE__},
        {"/a/b?x=1&y=2", 0, "http", NULL, "/a/b?x=1&y=2", __LINE__},
        {"/p#frag", 0, "http", NULL, "/p", __LINE__},
        {"http://example.com", 0, "http", "example.com", "/", __LINE__},
        {"http://example.com?q=1", 0, "http", "example.com", "/?q=1", __LINE__},
        {"HTTPS://Example.com:8443/a%20b?c", 0, "https", "Example.com:8443", "/a%20b?c",
         __LINE__},
        {"http://[::1]:8080/x", 0, "http", "[::1]:8080", "/x", __LINE__},
        {"http://h/caf%C3%A9/./x/../y", 0, "http", "h", "/caf%C3%A9/./x/../y", __LINE__},
        {"ftp://h/x", -1, NULL, NULL, NULL, __LINE__},
        {"example.com/x", -1, NULL, NULL, NULL, __LINE__},
        {"http:///x", -1, NULL, NULL, NULL, __LINE__},
        {"http://user:pw@h/x", -1, NULL, NULL, NULL, __LINE__},
        {"/a b", -1, NULL, NULL, NULL, __LINE__},
        {"/%zz", -1, NULL, NULL, NULL, __LINE__},
        {"/../x", -1, NULL, NULL, NULL, __LINE__},
        {"/x?a\tb", -1, NULL, NULL, NULL, __LINE__},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        struct warm_url u;
        const char *why = NULL;
        int rc = warm_url_parse(rows[i].in, strlen(rows[i].in), &u, &why);
        ck_assert_msg(rc == rows[i].rc, "row at line %d: rc %d (%s)", rows[i].line, rc,
                      why ? why : "");
        if (rc < 0) {
            ck_assert_msg(why && *why, "row at line %d: no reason", rows[i].line);
            continue;
        }
        ck_assert_msg(strcmp(u.scheme, rows[i].scheme) == 0, "row at line %d", rows[i].line);
        ck_assert_msg(rows[i].host ? u.host && strcmp(u.host, rows[i].host) == 0 : !u.host,
                      "row at line %d: host %s", rows[i].line, u.host ? u.host : "(none)");
        ck_assert_msg(strcmp(u.request_uri, rows[i].target) == 0, "row at line %d: target %s",
                      rows[i].line, u.request_uri);
        warm_url_fini(&u);
    }
}
END_TEST

START_TEST(test_warm_url_refusal_leaves_nothing)
{
    /* A refused URL owns nothing: warm_url_fini() is not needed, and the
     * struct is zeroed so a caller that calls it anyway frees nothing. */
    static const char *const bad[] = {"http://h/%00", "https://h/a/../../b", "gopher://h/",
                                      "http://h\x01/", "http://u@h/", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct warm_url u;
        const char *why = NULL;
        int rc = warm_url_parse(bad[i], strlen(bad[i]), &u, &why);
        if (bad[i][0] == '\0') {
            /* An empty line is "/" (nginx's empty path). */
            ck_assert_int_eq(rc, 0);
            ck_assert_str_eq(u.request_uri, "/");
            warm_url_fini(&u);
            continue;
        }
        ck_assert_msg(rc == -1, "%s: accepted", bad[i]);
        ck_assert_msg(why && *why, "%s: no reason", bad[i]);
        ck_assert_ptr_null(u.host);
        ck_assert_ptr_null(u.scheme);
        ck_assert_ptr_null(u.request_uri);
    }
}
END_TEST

START_TEST(test_warm_url_reads_only_len)
{
    /* The length bounds the URL: what follows is not read. */
    const char *text = "http://h/a?b=1 trailing garbage";
    struct warm_url u;
    const char *why = NULL;
    ck_assert_int_eq(warm_url_parse(text, 14, &u, &why), 0);
    ck_assert_str_eq(u.host, "h");
    ck_assert_str_eq(u.request_uri, "/a?b=1");
    warm_url_fini(&u);
}
END_TEST

/* ---- URL lists ---- */

START_TEST(test_warm_list)
{
    const char *text = "# pages to warm\n/a\n\n   /b?x=1  \r\n\t# indented comment\n"
                       "http://h/c#not-a-comment\n/last-without-newline";
    struct warm_list l;
    warm_list_init(&l);
    ck_assert_uint_eq(warm_list_parse(text, strlen(text), &l), 4);
    ck_assert_str_eq(l.items[0], "/a");
    ck_assert_str_eq(l.items[1], "/b?x=1");
    ck_assert_str_eq(l.items[2], "http://h/c#not-a-comment");
    ck_assert_str_eq(l.items[3], "/last-without-newline");
    ck_assert_uint_eq(warm_list_parse("", 0, &l), 0);
    warm_list_fini(&l);
}
END_TEST

START_TEST(test_warm_list_growth)
{
    /* More items than the first allocation holds, each copied. */
    struct buf text = BUF_INIT;
    for (int i = 0; i < 200; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "/p%d\n", i);
        buf_append(&text, line, (size_t)n);
    }
    struct warm_list l;
    warm_list_init(&l);
    ck_assert_uint_eq(warm_list_parse(text.data, text.len, &l), 200);
    ck_assert_uint_eq(l.n, 200);
    ck_assert_str_eq(l.items[0], "/p0");
    ck_assert_str_eq(l.items[199], "/p199");
    buf_fini(&text);
    ck_assert_str_eq(l.items[123], "/p123"); /* copies outlive the text */
    warm_list_add(&l, "/xyz", 2);
    ck_assert_str_eq(l.items[200], "/x");
    warm_list_fini(&l);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_ptr_null(l.items);
}
END_TEST

/* ---- sitemaps ---- */

START_TEST(test_warm_sitemap)
{
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n"
        "  <url><loc>http://example.com/</loc><lastmod>2024-01-01</lastmod></url>\n"
        "  <url>\n    <loc>\n      http://example.com/a?x=1&amp;y=2\n    </loc>\n  </url>\n"
        "  <!-- <url><loc>http://example.com/commented</loc></url> -->\n"
        "  <url><loc><![CDATA[http://example.com/c?a=1&b=<2>]]></loc></url>\n"
        "  <url><loc>http://example.com/caf&#xE9;/&#233;&lt;&gt;&quot;&apos;&bogus;</loc></url>\n"
        "  <url><loc></loc></url>\n"
        "  <url><location>http://example.com/not-a-loc</location></url>\n"
        "  <url><loc>http://example.com/unterminated";
    struct warm_list l;
    warm_list_init(&l);
    ck_assert_uint_eq(warm_sitemap_parse(xml, strlen(xml), &l), 4);
    ck_assert_str_eq(l.items[0], "http://example.com/");
    ck_assert_str_eq(l.items[1], "http://example.com/a?x=1&y=2");
    ck_assert_str_eq(l.items[2], "http://example.com/c?a=1&b=<2>");
    ck_assert_str_eq(l.items[3], "http://example.com/caf\xc3\xa9/\xc3\xa9<>\"'&bogus;");
    warm_list_fini(&l);
}
END_TEST

START_TEST(test_warm_sitemap_index_and_refs)
{
    /* A sitemap index yields its sitemaps' URLs; malformed references are
     * copied as written; a comment that never ends hides the rest. */
    const char *xml = "<sitemapindex>\n"
                      "<sitemap><loc>http://e/s1.xml</loc></sitemap>\n"
                      "<sitemap><loc>http://e/&#x110000;&#0;&#xD800;&#12a;&amp</loc></sitemap>\n"
                      "<sitemap><loc>http://e/&#x1F600;&#65;</loc></sitemap>\n"
                      "<!-- <loc>http://e/hidden</loc>";
    struct warm_list l;
    warm_list_init(&l);
    ck_assert_uint_eq(warm_sitemap_parse(xml, strlen(xml), &l), 3);
    ck_assert_str_eq(l.items[0], "http://e/s1.xml");
    ck_assert_str_eq(l.items[1], "http://e/&#x110000;&#0;&#xD800;&#12a;&amp");
    ck_assert_str_eq(l.items[2], "http://e/\xf0\x9f\x98\x80" "A");
    ck_assert_uint_eq(warm_sitemap_parse("", 0, &l), 0);
    ck_assert_uint_eq(warm_sitemap_parse("<loc>", 5, &l), 0);
    warm_list_fini(&l);
}
END_TEST

/* ---- suite ---- */

Suite *warmlist_suite(void);

Suite *warmlist_suite(void)
{
    Suite *s = suite_create("warmlist");
    TCase *tc = tcase_create("urls");
    tcase_add_test(tc, test_warm_urls);
    tcase_add_test(tc, test_warm_url_refusal_leaves_nothing);
    tcase_add_test(tc, test_warm_url_reads_only_len);
    suite_add_tcase(s, tc);
    tc = tcase_create("lists");
    tcase_add_test(tc, test_warm_list);
    tcase_add_test(tc, test_warm_list_growth);
    suite_add_tcase(s, tc);
    tc = tcase_create("sitemaps");
    tcase_add_test(tc, test_warm_sitemap);
    tcase_add_test(tc, test_warm_sitemap_index_and_refs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(warmlist_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
