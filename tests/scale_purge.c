/* scale_purge.c - purge by tag at scale, against a real memcached: 100,000
 * pages under one tag (a tenth under a second tag too), each stored three
 * times through memfill's own store path (store_execute, then
 * purge_index_tags, in the worker's order), then purged by tag.
 *
 * Checks what issue-sized numbers must hold: re-stores add no bookkeeping
 * (one marker per page and tag: at most twice the live entries), the
 * purge says it is complete, and no page of the tag is left. It prints
 * the purge rate; scripts/bench-purge.sh runs it for that figure.
 * MEMFILL_SCALE_PAGES sets the number of pages (default 100000).
 *
 * Not a check_* suite: scripts/valgrind-tests.sh runs those under
 * valgrind, where 600,000 stores would take many minutes. Without
 * memcached it exits 77 (skip), or fails when MEMFILL_NO_SKIP=1. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/mcclient.h"
#include "memfill/purge.h"
#include "memfill/store.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORES_PER_PAGE 3

static long pages_wanted(void)
{
    const char *e = getenv("MEMFILL_SCALE_PAGES");
    long n = e ? atol(e) : 100000;
    return n > 0 ? n : 100000;
}

START_TEST(test_tag_purge_at_scale)
{
    long npages = pages_wanted();
    int port;
    pid_t mcd = tu_memcached_start_mb(&port, 256);
    ck_assert_int_gt(mcd, 0);
    char json[256];
    snprintf(json, sizeof json,
             "{\"memcached\": {\"servers\": [\"127.0.0.1:%d\"], \"timeout_ms\": 5000}}", port);
    struct err e;
    err_clear(&e);
    struct config *cfg =
        config_load_string(json, strlen(json), "test", NULL, CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    struct mcclient *mc = mcclient_new(cfg);

    char body[200];
    memset(body, 'b', sizeof body);
    struct buf gz = BUF_INIT;
    uint64_t t0 = util_now_ms();
    for (int round = 0; round < STORES_PER_PAGE; round++) {
        for (long i = 0; i < npages; i++) {
            struct store_job job;
            store_job_init(&job);
            buf_printf(&job.loc.esc_key, "/scale/page/%ld?r=%d", i, (int)(i % 7));
            job.loc.node = 0;
            job.decision = OUTCOME_STORED;
            job.ttl = 600;
            uint64_t usec;
            enum store_outcome o = store_execute(mc, &job, body, sizeof body, &gz, &usec);
            ck_assert_msg(o == OUTCOME_STORED, "store %ld: %s", i, store_outcome_name(o));
            const char *tags = i % 10 == 0 ? "site sale" : "site";
            ck_assert_int_eq(purge_index_tags(mc, 0, job.loc.esc_key.data, job.loc.esc_key.len,
                                              tags, strlen(tags), job.ttl),
                             0);
            store_job_fini(&job);
        }
    }
    uint64_t t1 = util_now_ms();
    long tenth = (npages + 9) / 10;
    /* Bookkeeping: one marker per live page and tag, whatever the stores. */
    long pages = tu_count_keys(mc, 0, "/scale/page/");
    long site = tu_count_keys(mc, 0, PURGE_MARK_PREFIX "site=");
    long sale = tu_count_keys(mc, 0, PURGE_MARK_PREFIX "sale=");
    ck_assert_int_eq(pages, npages);
    ck_assert_int_eq(site, npages);
    ck_assert_int_eq(sale, tenth);
    ck_assert_int_le(site + sale, 2 * pages);

    struct purge_report rep;
    purge_report_init(&rep, 1);
    uint64_t p0 = util_now_ms();
    ck_assert_int_eq(purge_tag(mc, "site", 4, &rep), 0);
    uint64_t p1 = util_now_ms();
    struct buf why = BUF_INIT;
    purge_report_why(&rep, mc, &why);
    ck_assert_msg(purge_report_complete(&rep), "incomplete: %s", why.data ? why.data : "");
    ck_assert_int_eq(rep.purged, npages);
    ck_assert_int_eq(rep.entries, npages);
    purge_report_fini(&rep);
    buf_fini(&why);
    ck_assert_int_eq(tu_count_keys(mc, 0, "/scale/page/"), 0);
    ck_assert_int_eq(tu_count_keys(mc, 0, PURGE_MARK_PREFIX "site="), 0);

    /* The second tag's entries name pages already gone: found, dropped. */
    purge_report_init(&rep, 1);
    ck_assert_int_eq(purge_tag(mc, "sale", 4, &rep), 0);
    ck_assert_int_eq(rep.purged, 0);
    ck_assert_int_eq(rep.entries, tenth);
    ck_assert_int_eq(purge_report_complete(&rep), 1);
    purge_report_fini(&rep);
    ck_assert_int_eq(tu_count_keys(mc, 0, PURGE_MARK_PREFIX), 0);

    uint64_t ms = p1 - p0 ? p1 - p0 : 1;
    printf("stored %ld pages x %d with tags in %llu ms; bookkeeping %ld entries for %ld pages\n",
           npages, STORES_PER_PAGE, (unsigned long long)(t1 - t0), site + sale, pages);
    printf("purge by tag: %ld pages in %llu ms = %llu pages/s\n", npages,
           (unsigned long long)ms, (unsigned long long)(npages * 1000 / (long)ms));
    fflush(stdout);
    buf_fini(&gz);
    mcclient_free(mc);
    config_free(cfg);
    tu_stop_pid(&mcd);
}
END_TEST

int main(void)
{
    int missing = tu_binary_missing("memcached");
    if (missing)
        return missing;
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("scale_purge");
    TCase *tc = tcase_create("memcached");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_tag_purge_at_scale);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
