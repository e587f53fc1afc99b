/* check_config.c - the config loader: every case folder under
 * tests/data/config/{valid,invalid}/ (config.json, and for invalid cases
 * the exact expected "line:col: message" in error), plus defaults, path
 * resolution and the server list replacement used by discovery. Cases are
 * checked the way `memfill -t` checks them (config, then the whole site);
 * valid cases whose name starts with "ctl-" are loaded the way memfillctl
 * loads them (no routes needed). */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memfill/conf.h"
#include "memfill/site.h"
#include "testutil.h"

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    return buf_steal(&b);
}

/* Calls fn for each case folder under tests/data/config/kind; returns the
 * number of cases. */
static int each_case(const char *kind, void (*fn)(const char *name, const char *dir))
{
    char *root = tu_path("tests/data/config");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, kind);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open %s", path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char dir[1300];
        snprintf(dir, sizeof dir, "%s/%s", path, e->d_name);
        fn(e->d_name, dir);
        n++;
    }
    closedir(d);
    free(root);
    return n;
}

static void load_valid(const char *name, const char *dir)
{
    char file[1400];
    snprintf(file, sizeof file, "%s/config.json", dir);
    struct err e;
    err_clear(&e);
    unsigned flags = strncmp(name, "ctl-", 4) == 0 ? CONFIG_ALLOW_NO_ROUTES : 0;
    struct config *cfg = config_load(file, flags, &e);
    char msg[700];
    ck_assert_msg(cfg != NULL, "valid case %s failed: %s", name, err_format(&e, msg, sizeof msg));
    if (flags & CONFIG_ALLOW_NO_ROUTES) {
        config_free(cfg);
        return;
    }
    /* What `memfill -t` checks: the whole site builds. */
    struct site *site = site_new_own(cfg, &e);
    ck_assert_msg(site != NULL, "valid case %s: %s", name, err_format(&e, msg, sizeof msg));
    site_free(site);
}

static void load_invalid(const char *name, const char *dir)
{
    char file[1400], errfile[1400];
    snprintf(file, sizeof file, "%s/config.json", dir);
    snprintf(errfile, sizeof errfile, "%s/error", dir);
    char *want = read_text(errfile);
    ck_assert_msg(want != NULL, "invalid case %s has no error file", name);
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load(file, 0, &e);
    struct site *site = cfg ? site_new_own(cfg, &e) : NULL; /* as `memfill -t` */
    ck_assert_msg(site == NULL, "invalid case %s loaded", name);
    ck_assert_msg(strcmp(e.source, file) == 0, "case %s: source %s", name, e.source);
    char got[700];
    snprintf(got, sizeof got, "%d:%d: %s", e.line, e.column, e.text);
    ck_assert_msg(strcmp(got, want) == 0, "case %s:\n  expected: %s\n  got:      %s", name, want,
                  got);
    free(want);
}

START_TEST(test_config_valid_cases)
{
    ck_assert_int_ge(each_case("valid", load_valid), 3);
}
END_TEST

START_TEST(test_config_invalid_cases)
{
    ck_assert_int_ge(each_case("invalid", load_invalid), 19);
}
END_TEST

static struct config *load(const char *text, unsigned flags, struct err *e)
{
    err_clear(e);
    return config_load_string(text, strlen(text), "t.json", "/site", flags, e);
}

START_TEST(test_config_defaults)
{
    struct err e;
    struct config *cfg = load("{\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]},"
                              "\"routes\":[{\"prefix\":\"/\",\"handler\":\"static\","
                              "\"root\":\"docs\"}]}",
                              0, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    ck_assert_ptr_null(cfg->listen);
    ck_assert_uint_ge(cfg->workers, 1);
    ck_assert_uint_eq(cfg->ttl, 300);
    ck_assert_str_eq(cfg->key, "$uri$is_args$args");
    ck_assert_int_eq(cfg->distribution, NODESEL_CONSISTENT);
    ck_assert_uint_eq(cfg->servers[0].weight, 1);
    ck_assert_uint_eq(cfg->routes[0].methods, CONFIG_METHOD_GET | CONFIG_METHOD_HEAD);
    ck_assert_int_eq(cfg->routes[0].ttl, -1);
    ck_assert_int_eq(cfg->routes[0].cache, 1);
    ck_assert_str_eq(cfg->routes[0].root, "/site/docs"); /* relative to the config */
    ck_assert_str_eq(cfg->admin_allow[0], "127.0.0.1/8");
    /* admin.allow is parsed once, at load; the selector is built once. */
    ck_assert_uint_eq(cfg->nadmin_nets, 2);
    ck_assert_int_eq(addr_cidr_match(cfg->admin_nets, cfg->nadmin_nets, "127.0.0.5"), 1);
    ck_assert_int_eq(addr_cidr_match(cfg->admin_nets, cfg->nadmin_nets, "::1"), 1);
    ck_assert_int_eq(addr_cidr_match(cfg->admin_nets, cfg->nadmin_nets, "10.0.0.1"), 0);
    ck_assert_ptr_nonnull(cfg->nodes);
    ck_assert_uint_eq(nodesel_count(cfg->nodes), 1);
    ck_assert_uint_eq(cfg->request_timeout, 30);
    ck_assert_uint_eq(cfg->max_body, 1048576);
    struct buf out = BUF_INIT;
    config_print(cfg, &out);
    ck_assert_ptr_nonnull(strstr(out.data, "cache.ttl = 300\n"));
    ck_assert_ptr_nonnull(strstr(out.data, "memcached.distribution = consistent\n"));
    ck_assert_ptr_nonnull(strstr(out.data, "routes[0].root = /site/docs\n"));
    buf_fini(&out);
    config_free(cfg);
}
END_TEST

START_TEST(test_config_absolute_paths_kept)
{
    struct err e;
    struct config *cfg = load("{\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]},"
                              "\"routes\":[{\"prefix\":\"/\",\"handler\":\"static\","
                              "\"root\":\"/var/www\"}]}",
                              0, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    ck_assert_str_eq(cfg->routes[0].root, "/var/www");
    config_free(cfg);
}
END_TEST

START_TEST(test_config_admin_paths_and_secret)
{
    struct err e;
    /* A relative unix admin.listen starts at the config's folder; the
     * token is kept but never printed. */
    struct config *cfg = load("{\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]},"
                              "\"admin\":{\"listen\":\"unix:run/admin.sock\","
                              "\"token\":\"0123456789abcdef-secret\"}}",
                              CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    ck_assert_str_eq(cfg->admin_listen, "unix:/site/run/admin.sock");
    ck_assert_str_eq(cfg->admin_token, "0123456789abcdef-secret");
    struct buf out = BUF_INIT;
    config_print(cfg, &out);
    ck_assert_ptr_null(strstr(out.data, "secret"));
    ck_assert_ptr_nonnull(strstr(out.data, "admin.token = (set, not shown)\n"));
    ck_assert_ptr_nonnull(strstr(out.data, "admin.listen = unix:/site/run/admin.sock\n"));
    buf_fini(&out);
    config_free(cfg);
    /* absolute and TCP specs are kept as written */
    cfg = load("{\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]},"
               "\"admin\":{\"listen\":\"unix:/run/a.sock\"}}",
               CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    ck_assert_str_eq(cfg->admin_listen, "unix:/run/a.sock");
    config_print(cfg, &out);
    ck_assert_ptr_nonnull(strstr(out.data, "admin.token = (none)\n"));
    buf_fini(&out);
    config_free(cfg);
    cfg = load("{\"memcached\":{\"servers\":[\"127.0.0.1:11211\"]},"
               "\"admin\":{\"listen\":\"127.0.0.1:9901\"}}",
               CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    ck_assert_str_eq(cfg->admin_listen, "127.0.0.1:9901");
    config_free(cfg);
    /* 15 bytes: refused, 16: accepted */
    cfg = load("{\"memcached\":{\"servers\":[\"x:1\"]},"
               "\"admin\":{\"token\":\"0123456789abcde\"}}",
               CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(strstr(e.text, "admin.token: expected at least 16 bytes"));
    cfg = load("{\"memcached\":{\"servers\":[\"x:1\"]},"
               "\"admin\":{\"token\":\"0123456789abcdef\"}}",
               CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    config_free(cfg);
}
END_TEST

START_TEST(test_config_set_servers)
{
    struct err e;
    struct config *cfg = load("{\"memcached\":{\"servers\":[{\"address\":\"a:1\",\"weight\":3,"
                              "\"name\":\"x\"}]}}",
                              CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "%s", e.text);
    char a1[] = "10.0.0.1:11211", a2[] = "10.0.0.2:11211";
    char *list[] = {a1, a2};
    ck_assert_int_eq(config_set_servers(cfg, list, 2, NULL), 0);
    ck_assert_uint_eq(nodesel_count(cfg->nodes), 2);
    ck_assert_uint_eq(cfg->nservers, 2);
    ck_assert_str_eq(cfg->servers[1].address, "10.0.0.2:11211");
    ck_assert_uint_eq(cfg->servers[0].weight, 1);
    ck_assert_ptr_null(cfg->servers[0].name);
    /* A discovered list that is no valid node list is an error. */
    char bad[] = "host:0";
    char *badlist[] = {bad};
    err_clear(&e);
    ck_assert_int_lt(config_set_servers(cfg, badlist, 1, &e), 0);
    ck_assert_ptr_null(cfg->nodes);
    ck_assert_msg(strstr(e.text, "memcached.servers: ") == e.text, "%s", e.text);
    config_free(cfg);
}
END_TEST

START_TEST(test_config_string_with_nul_refused)
{
    struct err e;
    struct config *cfg = load("{\"listen\":\"a\\u0000b\",\"memcached\":{\"servers\":[\"x:1\"]}}",
                              CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(strstr(e.text, "\\u0000 is not allowed"));
    ck_assert_int_eq(e.line, 1);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("cases");
    tcase_add_test(tc, test_config_valid_cases);
    tcase_add_test(tc, test_config_invalid_cases);
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_absolute_paths_kept);
    tcase_add_test(tc, test_config_admin_paths_and_secret);
    tcase_add_test(tc, test_config_set_servers);
    tcase_add_test(tc, test_config_string_with_nul_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
