/* check_datacache.c - unit tests for the parsed-data cache (src/content/datacache.c).
 *
 * The cache is exercised with made-up stat records (no files): a hit while
 * the file is unchanged, a miss once any of device, inode, size, mtime or
 * ctime differs, eviction of the least recently used entry beyond the
 * budget (a get counts as a use), a document costing more than the budget
 * never kept, a smaller budget evicting at once, and many tiny entries
 * held within the budget by their own overhead. datacache_parse is checked
 * to charge at least the text's size and to report JSON errors. */
#include "config.h"

#include "memfill/datacache.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct stat fake_stat(ino_t ino, off_t size, time_t mtime)
{
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_dev = 1;
    st.st_ino = ino;
    st.st_size = size;
    st.st_mtim.tv_sec = mtime;
    st.st_ctim.tv_sec = mtime;
    return st;
}

/* Puts a small document for path, charged cost; returns datacache_put's answer. */
static int put(struct datacache *c, const char *path, ino_t ino, size_t cost)
{
    struct stat st = fake_stat(ino, 10, 100);
    json_t *v = json_pack("{s:s}", "path", path);
    int kept = datacache_put(c, path, &st, v, cost);
    json_decref(v);
    return kept;
}

static int has(struct datacache *c, const char *path, ino_t ino)
{
    struct stat st = fake_stat(ino, 10, 100);
    json_t *v = datacache_get(c, path, &st);
    if (!v)
        return 0;
    ck_assert_str_eq(json_string_value(json_object_get(v, "path")), path);
    json_decref(v);
    return 1;
}

START_TEST(test_datacache_hit_while_unchanged)
{
    struct datacache *c = datacache_new(1 << 20);
    ck_assert_int_eq(put(c, "/d/a.json", 7, 1000), 1);
    ck_assert(has(c, "/d/a.json", 7));
    ck_assert(!has(c, "/d/b.json", 7));
    /* Any change of the file's identity is a miss. */
    struct stat st = fake_stat(7, 10, 100);
    st.st_ino = 8;
    ck_assert_ptr_null(datacache_get(c, "/d/a.json", &st));
    st = fake_stat(7, 11, 100);
    ck_assert_ptr_null(datacache_get(c, "/d/a.json", &st));
    st = fake_stat(7, 10, 100);
    st.st_mtim.tv_nsec = 1;
    ck_assert_ptr_null(datacache_get(c, "/d/a.json", &st));
    st = fake_stat(7, 10, 100);
    st.st_ctim.tv_sec = 101;
    ck_assert_ptr_null(datacache_get(c, "/d/a.json", &st));
    st = fake_stat(7, 10, 100);
    st.st_dev = 2;
    ck_assert_ptr_null(datacache_get(c, "/d/a.json", &st));
    /* Putting the path again replaces its entry. */
    ck_assert_int_eq(put(c, "/d/a.json", 9, 1000), 1);
    ck_assert_uint_eq(datacache_count(c), 1);
    ck_assert(has(c, "/d/a.json", 9));
    ck_assert(!has(c, "/d/a.json", 7));
    datacache_free(c);
}
END_TEST

START_TEST(test_datacache_evicts_least_recently_used)
{
    /* Room for three entries of 30000 (plus their overhead), not four. */
    struct datacache *c = datacache_new(100000);
    ck_assert_int_eq(put(c, "/a", 1, 30000), 1);
    ck_assert_int_eq(put(c, "/b", 2, 30000), 1);
    ck_assert_int_eq(put(c, "/c", 3, 30000), 1);
    ck_assert_uint_eq(datacache_count(c), 3);
    ck_assert(has(c, "/a", 1)); /* /a is now the most recently used */
    ck_assert_int_eq(put(c, "/d", 4, 30000), 1);
    ck_assert_uint_eq(datacache_count(c), 3);
    ck_assert(!has(c, "/b", 2)); /* the least recently used went */
    ck_assert(has(c, "/a", 1));
    ck_assert(has(c, "/c", 3));
    ck_assert(has(c, "/d", 4));
    ck_assert_uint_le(datacache_used(c), 100000);
    /* A smaller budget evicts at once, the least recently used first (/a). */
    datacache_set_budget(c, 70000);
    ck_assert_uint_eq(datacache_count(c), 2);
    ck_assert(!has(c, "/a", 1));
    ck_assert(has(c, "/c", 3));
    ck_assert(has(c, "/d", 4));
    datacache_free(c);
}
END_TEST

START_TEST(test_datacache_never_keeps_above_budget)
{
    struct datacache *c = datacache_new(50000);
    ck_assert_int_eq(put(c, "/small", 1, 1000), 1);
    ck_assert_int_eq(put(c, "/big", 2, 50000), 0); /* with its overhead, above */
    ck_assert_int_eq(put(c, "/huge", 3, (size_t)-1), 0);
    ck_assert(!has(c, "/big", 2));
    ck_assert(has(c, "/small", 1)); /* nothing was evicted for it */
    /* A document too big to keep drops the older entry of its path. */
    ck_assert_int_eq(put(c, "/small", 4, 60000), 0);
    ck_assert_uint_eq(datacache_count(c), 0);
    ck_assert_uint_eq(datacache_used(c), 0);
    datacache_free(c);
    /* Budget 0 keeps nothing. */
    c = datacache_new(0);
    ck_assert_int_eq(put(c, "/x", 1, 0), 0);
    datacache_free(c);
}
END_TEST

START_TEST(test_datacache_many_tiny_entries_within_budget)
{
    struct datacache *c = datacache_new(64 << 10);
    char path[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(path, sizeof path, "/data/item-%d.json", i);
        put(c, path, (ino_t)i + 1, 1);
        ck_assert_uint_le(datacache_used(c), 64 << 10);
    }
    /* Each entry is charged its own size too: far fewer than 10000 fit. */
    ck_assert_uint_lt(datacache_count(c), 1000);
    ck_assert_uint_gt(datacache_count(c), 100);
    /* The newest are there, the oldest not. */
    ck_assert(has(c, "/data/item-9999.json", 10000));
    ck_assert(!has(c, "/data/item-0.json", 1));
    datacache_free(c);
}
END_TEST

START_TEST(test_datacache_parse_charges)
{
    json_error_t je;
    size_t cost = 0;
    const char text[] = "{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}";
    json_t *v = datacache_parse(text, sizeof text - 1, &je, &cost);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_ge(cost, sizeof text - 1);
    ck_assert_int_eq(json_array_size(json_object_get(v, "items")), 3);
    json_decref(v);
    /* Duplicate keys are refused, as for every data file. */
    ck_assert_ptr_null(datacache_parse("{\"a\":1,\"a\":2}", 13, &je, &cost));
    ck_assert_int_eq(je.line, 1);
    ck_assert_ptr_null(datacache_parse("[1,", 3, &je, &cost));
}
END_TEST

static Suite *datacache_suite(void)
{
    Suite *s = suite_create("datacache");
    TCase *tc = tcase_create("Cache");
    tcase_add_test(tc, test_datacache_hit_while_unchanged);
    tcase_add_test(tc, test_datacache_evicts_least_recently_used);
    tcase_add_test(tc, test_datacache_never_keeps_above_budget);
    tcase_add_test(tc, test_datacache_many_tiny_entries_within_budget);
    tcase_add_test(tc, test_datacache_parse_charges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(datacache_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
