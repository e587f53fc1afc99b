/* check_srcache.c - the srcache item format against what srcache_store
 * really wrote (tests/vectors/srcache_store_format.tsv, captured from
 * nginx 1.22 + srcache 0.33 in front of a FastCGI app), and the stampede
 * lock's key.
 *
 * For each vector row the response is rebuilt from the stored item, then
 * headers srcache never stores (Content-Length, Set-Cookie, Date, Server,
 * hop-by-hop ones) are mixed in between the real ones; encoding must give
 * back the captured bytes exactly. */
#include "config.h"

#include "memfill/keyesc.h"
#include "memfill/srcache.h"
#include "memfill/stampede.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits a stored item into status, content type, other header lines and
 * body (by hand, independently of srcache_decode). */
static void split_item(const struct buf *item, int *status, struct buf *ctype,
                       struct buf *lines, struct buf *body)
{
    const char *p = item->data, *end = item->data + item->len;
    ck_assert(item->len > 12 && memcmp(p, "HTTP/1.1 ", 9) == 0);
    *status = atoi(p + 9);
    p = strstr(p, "\r\n") + 2;
    for (;;) {
        const char *eol = strstr(p, "\r\n");
        ck_assert_ptr_nonnull(eol);
        if (eol == p) {
            p += 2;
            break;
        }
        if (strncmp(p, "Content-Type: ", 14) == 0) {
            buf_append(ctype, p + 14, (size_t)(eol - p - 14));
        } else {
            buf_append(lines, p, (size_t)(eol - p));
            buf_append(lines, "\r\n", 2);
        }
        p = eol + 2;
    }
    buf_append(body, p, (size_t)(end - p));
}

START_TEST(test_vectors)
{
    char *path = tu_path("tests/vectors/srcache_store_format.tsv");
    struct tu_tsv t;
    ck_assert_msg(tu_tsv_open(&t, path) == 0, "cannot open %s", path);
    free(path);
    int rows = 0;
    while (tu_tsv_next(&t)) {
        const char *hex = tu_tsv_get(&t, "value_hex");
        ck_assert_ptr_nonnull(hex);
        struct buf item = BUF_INIT, ctype = BUF_INIT, lines = BUF_INIT, body = BUF_INIT;
        ck_assert(tu_hex_decode(hex, &item) == 0);
        int status;
        split_item(&item, &status, &ctype, &lines, &body);

        struct response resp;
        response_init(&resp);
        resp.status = status;
        buf_append(&resp.content_type, ctype.data, ctype.len);
        /* never stored, mixed in before, between and after the real ones */
        response_add_header(&resp, "Content-Length", "999", 3);
        response_add_header(&resp, "Set-Cookie", "sid=1; Path=/", 13);
        const char *p = lines.data ? lines.data : "";
        while (*p) {
            const char *eol = strstr(p, "\r\n");
            buf_append(&resp.headers, p, (size_t)(eol + 2 - p));
            response_add_header(&resp, "Connection", "keep-alive", 10);
            response_add_header(&resp, "transfer-encoding", "chunked", 7);
            p = eol + 2;
        }
        response_add_header(&resp, "Date", "Sat, 21 Nov 2026 20:00:00 GMT", 29);
        response_add_header(&resp, "Server", "memfill", 7);
        response_add_header(&resp, "Keep-Alive", "timeout=5", 9);
        response_add_header(&resp, "Upgrade", "h2c", 3);
        response_add_header(&resp, "X-Memfill-Store", "stored", 6);
        buf_append(&resp.body, body.data ? body.data : "", body.len);

        struct buf out = BUF_INIT;
        srcache_encode(&resp, &out);
        ck_assert_msg(out.len == item.len && memcmp(out.data, item.data, item.len) == 0,
                      "%s:%u: encoded\n%s\nwant\n%s", t.path, t.lineno, out.data, item.data);

        /* and it reads back */
        struct response back;
        response_init(&back);
        ck_assert_int_eq(srcache_decode(out.data, out.len, &back), 0);
        ck_assert_int_eq(back.status, status);
        ck_assert_str_eq(back.content_type.data, ctype.data);
        ck_assert_str_eq(back.headers.data ? back.headers.data : "",
                         lines.data ? lines.data : "");
        ck_assert_uint_eq(back.body.len, body.len);
        ck_assert(body.len == 0 || memcmp(back.body.data, body.data, body.len) == 0);
        response_fini(&back);
        response_fini(&resp);
        buf_fini(&out);
        buf_fini(&item);
        buf_fini(&ctype);
        buf_fini(&lines);
        buf_fini(&body);
        rows++;
    }
    tu_tsv_close(&t);
    ck_assert_int_ge(rows, 4);
}
END_TEST

START_TEST(test_encode_order)
{
    struct response r;
    response_init(&r);
    r.status = 301;
    response_add_header(&r, "Location", "/plain", 6);
    response_add_header(&r, "Last-Modified", "Sat, 21 Nov 2026 20:00:00 GMT", 29);
    response_add_header(&r, "X-A", "1", 1);
    buf_append_str(&r.body, "moved\n");
    struct buf out = BUF_INIT;
    srcache_encode(&r, &out);
    ck_assert_str_eq(out.data, "HTTP/1.1 301 Moved Permanently\r\n"
                               "Content-Type: text/html\r\n"
                               "Last-Modified: Sat, 21 Nov 2026 20:00:00 GMT\r\n"
                               "Location: /plain\r\n"
                               "X-A: 1\r\n"
                               "\r\n"
                               "moved\n");
    /* nginx's own reason phrases; a status without one is bare */
    response_reset(&r, 0);
    buf_reset(&out, 0);
    r.status = 302;
    srcache_encode(&r, &out);
    ck_assert(strncmp(out.data, "HTTP/1.1 302 Moved Temporarily\r\n", 32) == 0);
    response_reset(&r, 0);
    buf_reset(&out, 0);
    r.status = 299;
    srcache_encode(&r, &out);
    ck_assert(strncmp(out.data, "HTTP/1.1 299\r\nContent-Type: text/html\r\n\r\n", 41) == 0);
    buf_fini(&out);
    response_fini(&r);

    ck_assert_int_eq(srcache_status_storable(200), 1);
    ck_assert_int_eq(srcache_status_storable(301), 1);
    ck_assert_int_eq(srcache_status_storable(302), 1);
    ck_assert_int_eq(srcache_status_storable(307), 1);
    ck_assert_int_eq(srcache_status_storable(308), 1);
    ck_assert_int_eq(srcache_status_storable(303), 0);
    ck_assert_int_eq(srcache_status_storable(404), 0);
    ck_assert_int_eq(srcache_status_storable(206), 0);
}
END_TEST

START_TEST(test_decode)
{
    struct response r;
    response_init(&r);
    const char *bare = "HTTP/1.1 404 Not Found\nContent-Type: text/plain\nX-B: 2\n"
                       "Content-Length: 3\n\nnot found";
    ck_assert_int_eq(srcache_decode(bare, strlen(bare), &r), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.content_type.data, "text/plain");
    ck_assert_str_eq(r.headers.data, "X-B: 2\r\n");
    ck_assert_str_eq(r.body.data, "not found");
    static const char *const bad[] = {"<html>a plain body</html>", "HTTP/1.1 200 OK\r\nX: y",
                                      "HTTP/1.1 20 OK\r\n\r\n", "HTTP/2 200\r\n\r\n", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(srcache_decode(bad[i], strlen(bad[i]), &r) == -1, "accepted \"%s\"",
                      bad[i]);
    response_fini(&r);
}
END_TEST

START_TEST(test_lock_key)
{
    struct buf k = BUF_INIT;
    ck_assert_int_eq(stampede_lock_key("/a%20b", 6, &k), 0);
    ck_assert_str_eq(k.data, "memfill:lock:/a%20b");
    /* 250 bytes in all is the limit */
    char key[300];
    memset(key, 'k', sizeof key);
    size_t room = KEY_MAX_ESCAPED - strlen(STAMPEDE_LOCK_PREFIX);
    buf_reset(&k, 0);
    ck_assert_int_eq(stampede_lock_key(key, room, &k), 0);
    ck_assert_uint_eq(k.len, 250);
    buf_reset(&k, 0);
    ck_assert_int_eq(stampede_lock_key(key, room + 1, &k), -1);
    ck_assert_uint_eq(k.len, 0);
    buf_fini(&k);
}
END_TEST

Suite *srcache_suite(void);

Suite *srcache_suite(void)
{
    Suite *s = suite_create("srcache");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_encode_order);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_lock_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(srcache_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
