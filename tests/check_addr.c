/* check_addr.c - Check suite for addr.c: the address forms each user of
 * the parser accepts and refuses (memcached addresses as nginx writes
 * them, "listen", the FastCGI client, admin.listen), the port and "unix:"
 * helpers, and CIDR allow-lists. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "memfill/addr.h"
#include "memfill/err.h"

struct form {
    const char *in;
    int rc;
    const char *host;
    unsigned port;
    int is_unix;
    int any;
};

static void check_forms(unsigned flags, unsigned default_port, const struct form *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct addr a;
        struct err e;
        err_clear(&e);
        int rc = addr_parse(f[i].in, flags, default_port, &a, &e);
        ck_assert_msg(rc == f[i].rc, "\"%s\": rc %d (%s)", f[i].in, rc, e.text);
        if (rc == 0) {
            ck_assert_msg(strcmp(a.host, f[i].host) == 0, "\"%s\": host \"%s\"", f[i].in,
                          a.host);
            ck_assert_msg(a.port == f[i].port, "\"%s\": port %u", f[i].in, a.port);
            ck_assert_int_eq(a.is_unix, f[i].is_unix);
            ck_assert_int_eq(a.any, f[i].any);
            ck_assert_int_eq(e.set, 0);
        } else {
            ck_assert_ptr_null(a.host);
            ck_assert_msg(e.set && e.text[0], "\"%s\": no reason given", f[i].in);
            ck_assert_msg(e.line == 0 && e.source[0] == '\0', "\"%s\": a position", f[i].in);
        }
        addr_fini(&a);
        addr_fini(&a); /* twice is harmless */
    }
}

#define N(a) (sizeof(a) / sizeof *(a))

/* nginx's memcached address (mcconn, discovery): a bare host or IPv6
 * address takes the default port, "unix:" in any case. */
START_TEST(test_addr_memcached)
{
    static const struct form f[] = {
        {"127.0.0.1:11311", 0, "127.0.0.1", 11311, 0, 0},
        {"[::1]:11211", 0, "::1", 11211, 0, 0},
        {"[::1]", 0, "::1", 11211, 0, 0},
        {"::1", 0, "::1", 11211, 0, 0},
        {"fe80::1:2", 0, "fe80::1:2", 11211, 0, 0},
        {"cache.example", 0, "cache.example", 11211, 0, 0},
        {"unix:/run/mc.sock", 0, "/run/mc.sock", 0, 1, 0},
        {"UNIX:/run/mc.sock", 0, "/run/mc.sock", 0, 1, 0},
        {"unix:relative", 0, "relative", 0, 1, 0},
        {"unix:", -1, NULL, 0, 0, 0},
        {"host:0", -1, NULL, 0, 0, 0},
        {"host:65536", -1, NULL, 0, 0, 0},
        {"host:", -1, NULL, 0, 0, 0},
        {"host:1x", -1, NULL, 0, 0, 0},
        {"[::1]x", -1, NULL, 0, 0, 0},
        {"[::1]:", -1, NULL, 0, 0, 0},
        {"[::1", -1, NULL, 0, 0, 0},
        {"[]", -1, NULL, 0, 0, 0},
        {"[]:11211", -1, NULL, 0, 0, 0},
        {":11211", -1, NULL, 0, 0, 0},
        {"*:11211", 0, "*", 11211, 0, 0},
        {"", -1, NULL, 0, 0, 0},
    };
    check_forms(ADDR_MEMCACHED, ADDR_MEMCACHED_PORT, f, N(f));
}
END_TEST

/* "listen": the port is required, "*:port" and ":port" are any IPv4
 * address, one ':' only, an absolute unix path that fits sun_path. */
START_TEST(test_addr_listen)
{
    static const struct form f[] = {
        {"127.0.0.1:9000", 0, "127.0.0.1", 9000, 0, 0},
        {"[::1]:9000", 0, "::1", 9000, 0, 0},
        {"[::]:9000", 0, "::", 9000, 0, 0},
        {"*:9000", 0, "", 9000, 0, 1},
        {":9000", 0, "", 9000, 0, 1},
        {"localhost:80", 0, "localhost", 80, 0, 0},
        {"unix:/run/memfill.sock", 0, "/run/memfill.sock", 0, 1, 0},
        {"9000", -1, NULL, 0, 0, 0},
        {"host", -1, NULL, 0, 0, 0},
        {"[::1]", -1, NULL, 0, 0, 0},
        {"[::1]9000", -1, NULL, 0, 0, 0},
        {"[]:1", -1, NULL, 0, 0, 0},
        {"h:0", -1, NULL, 0, 0, 0},
        {"h:70000", -1, NULL, 0, 0, 0},
        {"h:", -1, NULL, 0, 0, 0},
        {"::1:9000", -1, NULL, 0, 0, 0},
        {"unix:rel", -1, NULL, 0, 0, 0},
        {"unix:", -1, NULL, 0, 0, 0},
        {"UNIX:/run/x.sock", -1, NULL, 0, 0, 0},
        {"h:12x", -1, NULL, 0, 0, 0},
    };
    check_forms(ADDR_LISTEN, 0, f, N(f));
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'a', sizeof longpath - 7);
    longpath[sizeof longpath - 1] = '\0';
    struct addr a;
    struct err e;
    err_clear(&e);
    ck_assert_int_lt(addr_parse(longpath, ADDR_LISTEN, 0, &a, &e), 0);
    ck_assert_ptr_nonnull(strstr(e.text, "longer than"));
    /* Without ADDR_UNIX_SUN_PATH the length is the caller's business. */
    ck_assert_int_eq(addr_parse(longpath, ADDR_UNIX_ABSOLUTE, 0, &a, NULL), 0);
    ck_assert_str_eq(a.host, longpath + 5);
    addr_fini(&a);
}
END_TEST

/* The FastCGI client's forms (fcgiclient.c): the several-colon form
 * splits at the last ':' and an empty host is kept. */
START_TEST(test_addr_last_colon_empty_host)
{
    static const struct form f[] = {
        {"::1:9000", 0, "::1", 9000, 0, 0},
        {"[]:9000", 0, "", 9000, 0, 0},
        {":9000", 0, "", 9000, 0, 0},
        {"*:9000", 0, "*", 9000, 0, 0},
        {"unix:rel.sock", 0, "rel.sock", 0, 1, 0},
        {"127.0.0.1", -1, NULL, 0, 0, 0},
        {"[::1]9000", -1, NULL, 0, 0, 0},
        {"host:port", -1, NULL, 0, 0, 0},
        {"unix:", -1, NULL, 0, 0, 0},
    };
    check_forms(ADDR_UNIX_SUN_PATH | ADDR_PORT_REQUIRED | ADDR_LAST_COLON | ADDR_EMPTY_HOST, 0,
                f, N(f));
}
END_TEST

/* admin.listen (statusd, the admin client): like a memcached address,
 * but "unix:" is lower case only. */
START_TEST(test_addr_admin_listen)
{
    static const struct form f[] = {
        {"127.0.0.1:9901", 0, "127.0.0.1", 9901, 0, 0},
        {"[::1]:9901", 0, "::1", 9901, 0, 0},
        {"unix:/run/admin.sock", 0, "/run/admin.sock", 0, 1, 0},
        {"UNIX:/run/admin.sock", -1, NULL, 0, 0, 0},
        {"unix:", -1, NULL, 0, 0, 0},
        {"h:0", -1, NULL, 0, 0, 0},
    };
    check_forms(ADDR_ADMIN_LISTEN, ADDR_MEMCACHED_PORT, f, N(f));
}
END_TEST

START_TEST(test_addr_helpers)
{
    ck_assert_int_eq(addr_is_unix("unix:/x", 7, 0), 1);
    ck_assert_int_eq(addr_is_unix("Unix:/x", 7, 0), 0);
    ck_assert_int_eq(addr_is_unix("Unix:/x", 7, ADDR_UNIX_ANYCASE), 1);
    ck_assert_int_eq(addr_is_unix("unix:/x", 4, ADDR_UNIX_ANYCASE), 0); /* only len bytes */
    ck_assert_int_eq(addr_is_unix("unix", 4, 0), 0);
    unsigned p = 7;
    ck_assert_int_eq(addr_parse_port("65535", 5, &p), 0);
    ck_assert_uint_eq(p, 65535);
    ck_assert_int_eq(addr_parse_port("1", 1, &p), 0);
    ck_assert_uint_eq(p, 1);
    ck_assert_int_eq(addr_parse_port("80x", 2, &p), 0); /* only len bytes */
    ck_assert_uint_eq(p, 80);
    p = 7;
    ck_assert_int_lt(addr_parse_port("0", 1, &p), 0);
    ck_assert_int_lt(addr_parse_port("65536", 5, &p), 0);
    ck_assert_int_lt(addr_parse_port("", 0, &p), 0);
    ck_assert_int_lt(addr_parse_port("+1", 2, &p), 0);
    ck_assert_int_lt(addr_parse_port(" 1", 2, &p), 0);
    ck_assert_uint_eq(p, 7); /* untouched on failure */
}
END_TEST

START_TEST(test_addr_cidr_parse)
{
    static const char *const good[] = {"10.0.0.0/8", "127.0.0.1", "::1/128", "::1",
                                       "0.0.0.0/0", "::/0",      "fe80::/10", "10.1.2.3/32"};
    static const char *const bad[] = {"",          "10.0.0.0/33", "::1/129", "10.0.0.0/",
                                      "10.0.0/8",  "host",        "10.0.0.0/-1", "10.0.0.0/8x",
                                      "/8",        "1.2.3.4 /8"};
    for (size_t i = 0; i < N(good); i++)
        ck_assert_msg(addr_cidr_parse(good[i], NULL) == 0, "%s refused", good[i]);
    for (size_t i = 0; i < N(bad); i++)
        ck_assert_msg(addr_cidr_parse(bad[i], NULL) < 0, "%s accepted", bad[i]);
    struct addr_cidr c;
    ck_assert_int_eq(addr_cidr_parse("10.0.0.0/8", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 8);
    ck_assert_int_eq(addr_cidr_parse("::1", &c), 0);
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix, 128);
    /* An IPv4-mapped IPv6 address is IPv4. */
    ck_assert_int_eq(addr_cidr_parse("::ffff:10.0.0.1", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 32);
}
END_TEST

START_TEST(test_addr_cidr_match)
{
    static const char *const list[] = {"127.0.0.1/8", "::1/128", "192.168.10.0/23", "10.9.8.7"};
    struct addr_cidr nets[4];
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(addr_cidr_parse(list[i], &nets[i]), 0);
    static const char *const in[] = {"127.0.0.1",  "127.255.0.9", "::1",
                                     "::ffff:127.0.0.2", "192.168.10.1", "192.168.11.254",
                                     "10.9.8.7"};
    static const char *const out[] = {"128.0.0.1",    "::2",      "192.168.12.1", "10.9.8.6",
                                      "192.168.9.255", "",        "not an ip",    "127.0.0.1/8",
                                      " 127.0.0.1",   "::ffff:10.9.8.8"};
    for (size_t i = 0; i < N(in); i++)
        ck_assert_msg(addr_cidr_match(nets, 4, in[i]) == 1, "%s not matched", in[i]);
    for (size_t i = 0; i < N(out); i++)
        ck_assert_msg(addr_cidr_match(nets, 4, out[i]) == 0, "%s matched", out[i]);
    ck_assert_int_eq(addr_cidr_match(nets, 4, NULL), 0);
    ck_assert_int_eq(addr_cidr_match(NULL, 0, "127.0.0.1"), 0);
    /* A prefix that is not a multiple of 8 compares the leading bits. */
    struct addr_cidr n;
    ck_assert_int_eq(addr_cidr_parse("10.0.0.128/25", &n), 0);
    ck_assert_int_eq(addr_cidr_match(&n, 1, "10.0.0.200"), 1);
    ck_assert_int_eq(addr_cidr_match(&n, 1, "10.0.0.127"), 0);
    ck_assert_int_eq(addr_cidr_parse("0.0.0.0/0", &n), 0);
    ck_assert_int_eq(addr_cidr_match(&n, 1, "203.0.113.9"), 1);
    ck_assert_int_eq(addr_cidr_match(&n, 1, "::1"), 0); /* families never mix */
}
END_TEST

static Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("forms");
    tcase_add_test(tc, test_addr_memcached);
    tcase_add_test(tc, test_addr_listen);
    tcase_add_test(tc, test_addr_last_colon_empty_host);
    tcase_add_test(tc, test_addr_admin_listen);
    tcase_add_test(tc, test_addr_helpers);
    suite_add_tcase(s, tc);
    tc = tcase_create("cidr");
    tcase_add_test(tc, test_addr_cidr_parse);
    tcase_add_test(tc, test_addr_cidr_match);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(addr_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
