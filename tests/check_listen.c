/* check_listen.c - the listening socket: "listen" syntax (and its position
 * in config errors), unix sockets with listen_mode, stale and live socket
 * files, TCP on IPv4 and IPv6 loopback, non-blocking mode. */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "memfill/conf.h"
#include "memfill/addr.h"
#include "memfill/listen.h"

static char dir[] = "/tmp/memfill-check-listen-XXXXXX";

static struct config *load(const char *extra)
{
    char text[1024];
    snprintf(text, sizeof text, "{%s\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]}}", extra);
    struct err e;
    err_clear(&e);
    struct config *cfg =
        config_load_string(text, strlen(text), "t.json", "/", CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    return cfg;
}

static int is_nonblocking(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

START_TEST(test_listen_spec_syntax)
{
    static const char *const good[] = {"127.0.0.1:9000", "[::1]:9000", "*:9000", ":9000",
                                       "localhost:80",   "unix:/run/memfill.sock"};
    static const char *const bad[] = {"9000",     "host",       "[::1]9000",  "[]:1",
                                      "h:0",      "h:70000",    "h:",         "::1:9000",
                                      "unix:rel", "unix:",      "h:12x"};
    struct addr a;
    struct err e;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        err_clear(&e);
        ck_assert_msg(addr_parse(good[i], ADDR_LISTEN, 0, &a, &e) == 0, "%s: %s", good[i],
                      e.text);
        addr_fini(&a);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err_clear(&e);
        ck_assert_msg(addr_parse(bad[i], ADDR_LISTEN, 0, &a, &e) < 0, "%s accepted", bad[i]);
        ck_assert_msg(e.set && e.text[0] != '\0', "%s: no reason given", bad[i]);
    }
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'a', sizeof longpath - 7);
    longpath[sizeof longpath - 1] = '\0';
    ck_assert_int_lt(addr_parse(longpath, ADDR_LISTEN, 0, &a, NULL), 0);
}
END_TEST

START_TEST(test_listen_error_position)
{
    static const char text[] = "{\n  \"listen\": \"nonsense\",\n"
                               "  \"memcached\": {\"servers\": [\"127.0.0.1:11211\"]}\n}\n";
    struct err e;
    err_clear(&e);
    struct config *cfg =
        config_load_string(text, sizeof text - 1, "t.json", "/", CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_ptr_null(cfg);
    ck_assert_int_eq(e.line, 2);
    ck_assert_int_eq(e.column, 13);
    ck_assert_msg(strstr(e.text, "listen") != NULL, "%s", e.text);
    /* listen_owner only makes sense for a unix socket */
    static const char text2[] = "{\"listen\": \"127.0.0.1:9000\", \"listen_owner\": \"root\","
                                "\"memcached\": {\"servers\": [\"127.0.0.1:11211\"]}}";
    err_clear(&e);
    cfg = config_load_string(text2, sizeof text2 - 1, "t.json", "/", CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(e.text, "listen_owner") != NULL, "%s", e.text);
}
END_TEST

START_TEST(test_listen_unix_mode_and_live_socket)
{
    char extra[256], path[128];
    snprintf(path, sizeof path, "%s/s.sock", dir);
    snprintf(extra, sizeof extra, "\"listen\":\"unix:%s\",\"listen_mode\":\"0600\",\"backlog\":7,",
             path);
    struct config *cfg = load(extra);
    struct err e;
    err_clear(&e);
    int fd = listen_open(cfg, &e);
    ck_assert_msg(fd > 0, "%s", e.text);
    ck_assert(listen_fd_is_listening(fd));
    ck_assert(is_nonblocking(fd));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0600);

    /* A second server on the same path is refused; the file stays. */
    err_clear(&e);
    ck_assert_int_lt(listen_open(cfg, &e), 0);
    ck_assert_msg(strstr(e.text, "another server") != NULL, "%s", e.text);
    ck_assert_int_eq(stat(path, &st), 0);

    listen_close(fd, cfg->listen);
    ck_assert_int_lt(stat(path, &st), 0); /* removed at exit */
    config_free(cfg);
}
END_TEST

START_TEST(test_listen_unix_stale_and_not_a_socket)
{
    char extra[256], path[128];
    snprintf(path, sizeof path, "%s/s.sock", dir);
    snprintf(extra, sizeof extra, "\"listen\":\"unix:%s\",", path);
    struct config *cfg = load(extra);

    /* a stale socket file: bound once, nobody listening */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    close(s);
    struct err e;
    err_clear(&e);
    int fd = listen_open(cfg, &e);
    ck_assert_msg(fd > 0, "stale socket not replaced: %s", e.text);
    listen_close(fd, cfg->listen);

    /* a regular file is never removed */
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious\n", f);
    fclose(f);
    err_clear(&e);
    ck_assert_int_lt(listen_open(cfg, &e), 0);
    ck_assert_msg(strstr(e.text, "not a socket") != NULL, "%s", e.text);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    config_free(cfg);
}
END_TEST

static unsigned free_port(int family)
{
    int s = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (s < 0 || bind(s, (struct sockaddr *)&ss, len) < 0) {
        if (s >= 0)
            close(s);
        return 0;
    }
    getsockname(s, (struct sockaddr *)&ss, &len);
    close(s);
    return ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);
}

START_TEST(test_listen_tcp_v4_and_v6)
{
    unsigned port = free_port(AF_INET);
    ck_assert_uint_gt(port, 0);
    char extra[128];
    snprintf(extra, sizeof extra, "\"listen\":\"127.0.0.1:%u\",", port);
    struct config *cfg = load(extra);
    struct err e;
    err_clear(&e);
    int fd = listen_open(cfg, &e);
    ck_assert_msg(fd > 0, "%s", e.text);
    ck_assert(is_nonblocking(fd));
    err_clear(&e);
    ck_assert_int_lt(listen_open(cfg, &e), 0); /* the port is taken */
    listen_close(fd, cfg->listen);
    config_free(cfg);

    unsigned port6 = free_port(AF_INET6);
    if (!port6)
        return; /* no IPv6 loopback here: nothing more to check */
    snprintf(extra, sizeof extra, "\"listen\":\"[::1]:%u\",", port6);
    cfg = load(extra);
    err_clear(&e);
    fd = listen_open(cfg, &e);
    ck_assert_msg(fd > 0, "%s", e.text);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    listen_close(fd, cfg->listen);
    config_free(cfg);
}
END_TEST

static Suite *listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("syntax");
    tcase_add_test(tc, test_listen_spec_syntax);
    tcase_add_test(tc, test_listen_error_position);
    suite_add_tcase(s, tc);
    tc = tcase_create("sockets");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_listen_unix_mode_and_live_socket);
    tcase_add_test(tc, test_listen_unix_stale_and_not_a_socket);
    tcase_add_test(tc, test_listen_tcp_v4_and_v6);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(listen_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
