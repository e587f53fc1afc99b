/* check_store.c - unit tests for the store's gzip path: store_gzip() and
 * what store_prepare() puts in the job when cache.gzip_flag is set.
 *
 * store_gzip's output is checked by inflating it again with zlib (gzip
 * wrapper, windowBits 15+16), on empty, small, large, incompressible and
 * NUL-holding inputs, appended to a buffer that already holds bytes (the
 * worker's reusable buffer). store_prepare runs over a site built from a
 * config string and a request made from a hand-written param list. */
#include "config.h"

#include "memfill/site.h"
#include "memfill/store.h"
#include "memfill/stats.h"
#include "memfill/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Inflates a gzip member; returns the bytes (free with free()) and sets
 * *outlen, or NULL when data is not one complete gzip member. */
static char *gunzip(const void *data, size_t len, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return NULL;
    size_t cap = 1024, n = 0;
    char *out = xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    int rc;
    do {
        if (n == cap)
            out = xrealloc(out, cap *= 2);
        z.next_out = (Bytef *)out + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
    } while (rc == Z_OK);
    int whole = rc == Z_STREAM_END && z.avail_in == 0;
    inflateEnd(&z);
    if (!whole) {
        free(out);
        return NULL;
    }
    *outlen = n;
    return out;
}

static void roundtrip(const char *data, size_t len)
{
    struct buf out = BUF_INIT;
    buf_append_str(&out, "prefix");
    ck_assert_int_eq(store_gzip(data, len, &out), 0);
    ck_assert_mem_eq(out.data, "prefix", 6);
    ck_assert(out.len >= 6 + 18); /* gzip header and trailer at least */
    ck_assert_int_eq((unsigned char)out.data[6], 0x1f);
    ck_assert_int_eq((unsigned char)out.data[7], 0x8b);
    ck_assert_int_eq(out.data[out.len], '\0');
    size_t n = 0;
    char *back = gunzip(out.data + 6, out.len - 6, &n);
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(n, len);
    if (len)
        ck_assert_mem_eq(back, data, len);
    free(back);
    buf_fini(&out);
}

START_TEST(test_gzip_empty)
{
    roundtrip("", 0);
}
END_TEST

START_TEST(test_gzip_small_and_nul)
{
    roundtrip("<p>hello</p>\n", 13);
    roundtrip("a\0b\0c", 5);
}
END_TEST

START_TEST(test_gzip_large_compressible)
{
    size_t len = 5u << 20;
    char *data = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = "<li>memfill</li>\n"[i % 17];
    struct buf out = BUF_INIT;
    ck_assert_int_eq(store_gzip(data, len, &out), 0);
    ck_assert(out.len < len / 50);
    buf_fini(&out);
    roundtrip(data, len);
    free(data);
}
END_TEST

START_TEST(test_gzip_incompressible)
{
    size_t len = 300000;
    char *data = xmalloc(len);
    unsigned x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (char)(x >> 16);
    }
    roundtrip(data, len);
    free(data);
}
END_TEST

/* ---- store_prepare ---- */

static struct site *site_from(const char *json)
{
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load_string(json, strlen(json), "test.json", ".", 0, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    struct site *s = site_new_own(cfg, &e);
    ck_assert_msg(s != NULL, "site: %s", e.text);
    return s;
}

static void prepare(struct site *site, const char *uri, size_t route, struct store_job *job)
{
    char doc[256], req_uri[256];
    snprintf(doc, sizeof doc, "DOCUMENT_URI=%s", uri);
    snprintf(req_uri, sizeof req_uri, "REQUEST_URI=%s", uri);
    char method[] = "REQUEST_METHOD=GET", query[] = "QUERY_STRING=";
    char *envp[] = {method, doc, req_uri, query, NULL};
    struct request req;
    request_init(&req, envp);
    struct response resp;
    response_init(&resp);
    buf_append_str(&resp.body, "<p>x</p>");
    store_job_init(job);
    request_key(&req, site->key);
    store_locate(site, &req, route, &job->loc);
    store_prepare(site, &req, route, &resp, job);
    response_fini(&resp);
    request_fini(&req);
}

#define ROUTES                                                                                     \
    "\"routes\": [{\"prefix\": \"/s/\", \"handler\": \"static\", \"root\": \".\","                 \
    " \"srcache\": true}, {\"prefix\": \"/\", \"handler\": \"static\", \"root\": \".\"}]"

START_TEST(test_prepare_gzip_flag)
{
    struct site *site = site_from("{\"memcached\": {\"servers\": [\"127.0.0.1:1\"]},"
                                  " \"cache\": {\"gzip_flag\": 8}, " ROUTES "}");
    struct store_job job;
    prepare(site, "/page", 1, &job);
    ck_assert_int_eq(job.decision, OUTCOME_STORED);
    ck_assert_int_eq(job.gzip, 1);
    ck_assert_uint_eq(job.flags, 8);
    store_job_fini(&job);
    /* srcache routes store the full response uncompressed */
    prepare(site, "/s/page", 0, &job);
    ck_assert_int_eq(job.gzip, 0);
    ck_assert_uint_eq(job.flags, 0);
    store_job_fini(&job);
    site_free(site);
}
END_TEST

START_TEST(test_prepare_no_gzip)
{
    struct site *site =
        site_from("{\"memcached\": {\"servers\": [\"127.0.0.1:1\"]}, " ROUTES "}");
    struct store_job job;
    prepare(site, "/page", 1, &job);
    ck_assert_int_eq(job.decision, OUTCOME_STORED);
    ck_assert_int_eq(job.gzip, 0);
    ck_assert_uint_eq(job.flags, 0);
    store_job_fini(&job);
    site_free(site);
}
END_TEST

/* A job that is not to be stored returns its reason without touching gz. */
START_TEST(test_execute_skips)
{
    struct store_job job;
    store_job_init(&job);
    job.decision = OUTCOME_SKIP_STATUS;
    job.gzip = 1;
    struct buf gz = BUF_INIT;
    uint64_t usec = 1;
    ck_assert_int_eq(store_execute(NULL, &job, "x", 1, &gz, &usec), OUTCOME_SKIP_STATUS);
    ck_assert_uint_eq(gz.len, 0);
    ck_assert_uint_eq(usec, 0);
    store_job_fini(&job);
    buf_fini(&gz);
}
END_TEST

/* The counters keep their names and their listing order (the status
 * output and the metrics show them so), and an outcome's counter carries
 * the outcome's name. */
START_TEST(test_outcome_counters)
{
    static const char *const listed[] = {
        "requests",         "stored",          "skip_method",       "skip_status",
        "skip_cookie",      "skip_cache_control", "skip_size",      "skip_key_empty",
        "skip_key_too_long", "skip_rule",      "skip_node_trouble", "skip_handler",
        "skip_lock_lost",   "fail_connection", "fail_timeout",      "fail_server",
        "fail_too_large",   "key_drift",       "backend_mismatch",  "node_drift",
        "bad_request",      "purged",          "skip_gzip",         "lock_served",
        "skip_target",      "render_too_large", "data_too_large",   "params_timeout",
        "tag_index_failed",
    };
    ck_assert_uint_eq(sizeof listed / sizeof *listed, STATS_N);
    int seen[STATS_N] = {0};
    for (size_t i = 0; i < STATS_N; i++) {
        enum stats_counter c = stats_counter_listed(i);
        ck_assert_int_lt(c, STATS_N);
        ck_assert_int_eq(seen[c]++, 0);
        ck_assert_str_eq(stats_counter_name(c), listed[i]);
    }
    for (int o = 0; o < OUTCOME_N; o++)
        ck_assert_str_eq(stats_counter_name(stats_outcome_counter((enum store_outcome)o)),
                         store_outcome_name((enum store_outcome)o));
    ck_assert_str_eq(store_outcome_name(OUTCOME_N), "?");
    ck_assert(store_outcome_failed(OUTCOME_FAIL_CONNECTION));
    ck_assert(store_outcome_failed(OUTCOME_FAIL_TOO_LARGE));
    ck_assert(!store_outcome_failed(OUTCOME_SKIP_LOCK_LOST));
    ck_assert(!store_outcome_failed(OUTCOME_SKIP_GZIP));
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("gzip");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_gzip_empty);
    tcase_add_test(tc, test_gzip_small_and_nul);
    tcase_add_test(tc, test_gzip_large_compressible);
    tcase_add_test(tc, test_gzip_incompressible);
    suite_add_tcase(s, tc);
    tc = tcase_create("prepare");
    tcase_add_test(tc, test_prepare_gzip_flag);
    tcase_add_test(tc, test_prepare_no_gzip);
    tcase_add_test(tc, test_execute_skips);
    suite_add_tcase(s, tc);
    tc = tcase_create("outcome");
    tcase_add_test(tc, test_outcome_counters);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
