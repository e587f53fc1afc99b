/* check_util.c - Check suite for util.c's whole-file reader: the bound,
 * the errors it reports and what it leaves in the buffer. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/util.h"

static char dir[] = "/tmp/memfill-util-XXXXXX";

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

static char *write_file(const char *name, const void *data, size_t len)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

START_TEST(test_read_file_whole_and_bounded)
{
    char data[100000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7); /* NUL bytes included */
    char *path = write_file("a", data, sizeof data);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "kept");
    struct err e;
    err_clear(&e);
    /* Exactly max bytes is fine, appended after what out held. */
    ck_assert_int_eq(util_read_file(path, sizeof data, &b, &e), 0);
    ck_assert_int_eq(e.set, 0);
    ck_assert_uint_eq(b.len, 4 + sizeof data);
    ck_assert_int_eq(memcmp(b.data, "kept", 4), 0);
    ck_assert_int_eq(memcmp(b.data + 4, data, sizeof data), 0);
    ck_assert_int_eq(b.data[b.len], '\0');
    /* One byte more than max: EFBIG, a clear reason, out as it was. */
    buf_reset(&b, 0);
    buf_append_str(&b, "kept");
    errno = 0;
    ck_assert_int_eq(util_read_file(path, sizeof data - 1, &b, &e), -1);
    ck_assert_int_eq(errno, EFBIG);
    ck_assert_str_eq(e.source, path);
    ck_assert_ptr_nonnull(strstr(e.text, "larger than 99999 bytes"));
    ck_assert_str_eq(b.data, "kept");
    ck_assert_uint_eq(b.len, 4);
    buf_fini(&b);
    free(path);
}
END_TEST

START_TEST(test_read_file_errors)
{
    struct buf b = BUF_INIT;
    struct err e;
    err_clear(&e);
    char *missing = xasprintf("%s/missing", dir);
    ck_assert_int_eq(util_read_file(missing, 100, &b, &e), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(e.source, missing);
    ck_assert_str_eq(e.text, strerror(ENOENT));
    /* A directory opens but cannot be read. */
    err_clear(&e);
    ck_assert_int_eq(util_read_file(dir, 100, &b, &e), -1);
    ck_assert_int_eq(errno, EISDIR);
    ck_assert_str_eq(e.text, strerror(EISDIR));
    ck_assert_uint_eq(b.len, 0);
    /* err may be NULL; errno still says why. */
    ck_assert_int_eq(util_read_file(missing, 100, &b, NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    free(missing);
    buf_fini(&b);
}
END_TEST

START_TEST(test_read_file_empty_and_fd)
{
    char *path = write_file("empty", "", 0);
    struct buf b = BUF_INIT;
    ck_assert_int_eq(util_read_file(path, 0, &b, NULL), 0);
    ck_assert_ptr_nonnull(b.data); /* usable as a C string */
    ck_assert_uint_eq(b.len, 0);
    free(path);
    /* util_read_fd reads a pipe (as warm reads standard input). */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "one\ntwo\n", 8), 8);
    close(p[1]);
    ck_assert_int_eq(util_read_fd(p[0], "(pipe)", 8, &b, NULL), 0);
    ck_assert_str_eq(b.data, "one\ntwo\n");
    close(p[0]);
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "123456789", 9), 9);
    close(p[1]);
    struct err e;
    err_clear(&e);
    buf_reset(&b, 0);
    ck_assert_int_eq(util_read_fd(p[0], "(pipe)", 8, &b, &e), -1);
    ck_assert_int_eq(errno, EFBIG);
    ck_assert_str_eq(e.source, "(pipe)");
    close(p[0]);
    buf_fini(&b);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("read_file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_read_file_whole_and_bounded);
    tcase_add_test(tc, test_read_file_errors);
    tcase_add_test(tc, test_read_file_empty_and_fd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
