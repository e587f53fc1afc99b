/* check_stampede.c - the stampede lock (stampede.c) against a real
 * memcached.
 *
 * The fixture starts one memcached on a free port (stopped by pid in the
 * teardown; it dies with this program too). "Another worker" is played by
 * the test itself writing the lock or the page straight into memcached
 * with its own token, so each state stampede_enter can meet is set up
 * exactly: no lock, a lock held by someone else, the page already stored,
 * a pass mark, memcached down. Every test then reads memcached back to
 * check what the lock left there. The site has one node, key $uri, so the
 * page of "/stampede/PID/NAME" is stored under that very key on node 0.
 *
 * Without memcached the program exits 77 (skip), or fails when
 * MEMFILL_NO_SKIP=1. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/mcclient.h"
#include "memfill/request.h"
#include "memfill/site.h"
#include "memfill/stampede.h"
#include "memfill/stats.h"
#include "memfill/store.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_WAIT_MS 300
#define GZIP_FLAG 8

static pid_t mc_pid = -1;
static int mc_port;
static int dead_fd = -1, dead_port;

static void node_start(void)
{
    mc_pid = tu_memcached_start(&mc_port);
    dead_fd = tu_bind_free_port(&dead_port, 0);
}

static void node_stop(void)
{
    tu_stop_pid(&mc_pid);
    if (dead_fd >= 0)
        close(dead_fd);
    dead_fd = -1;
}

static struct site *site;
static struct mcclient *w;

/* A site over one node (the real one, or the dead port) with lock_wait
 * ms of stampede protection and cache.gzip_flag set. */
static void open_site(unsigned lock_wait, int dead)
{
    ck_assert_msg(mc_pid > 0, "memcached did not start");
    char json[1024];
    snprintf(json, sizeof json,
             "{\"memcached\": {\"servers\": [\"127.0.0.1:%d\"], \"timeout_ms\": 1000, "
             "\"connect_timeout_ms\": 200}, \"cache\": {\"lock_wait\": %u, \"lock_ttl\": 10, "
             "\"gzip_flag\": %d}, \"routes\": [{\"prefix\": \"/\", \"handler\": \"static\", "
             "\"root\": \".\", \"content_type\": \"text/plain\"}]}",
             dead ? dead_port : mc_port, lock_wait, GZIP_FLAG);
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load_string(json, strlen(json), "test.json", ".", 0, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    site = site_new_own(cfg, &e);
    ck_assert_msg(site != NULL, "site: %s", e.text);
    w = mcclient_new(site->cfg);
}

static void close_site(void)
{
    mcclient_free(w);
    site_free(site);
    w = NULL;
    site = NULL;
}

/* The page key for name, unique to this process. */
static const char *page_key(const char *name)
{
    static char k[2][128];
    static int next;
    char *s = k[next++ % 2];
    snprintf(s, sizeof k[0], "/stampede/%ld/%s", (long)getpid(), name);
    return s;
}

static void lock_key_of(const char *page, struct buf *out)
{
    ck_assert_int_eq(stampede_lock_key(page, strlen(page), out), 0);
}

static void put(const char *key, const char *value, size_t len, uint32_t flags)
{
    enum mcc_result r = mcclient_set(w, 0, key, strlen(key), value, len, flags, 60);
    ck_assert_msg(r == MCC_OK, "set %s: %s", key, mcclient_result_name(r));
}

/* The value of key on node 0 as a new string, or NULL when absent. */
static char *value_of(const char *key)
{
    char *v = NULL;
    size_t n = 0;
    enum mcc_result r = mcclient_get(w, 0, key, strlen(key), &v, &n, NULL);
    ck_assert_msg(r == MCC_OK || r == MCC_NOT_STORED, "get %s: %s", key,
                  mcclient_result_name(r));
    return v;
}

/* Enters the lock for a request (method, uri, warm) as the worker does
 * after routing (route 0); returns the result and the time it took. */
static enum stampede_result enter(struct stampede *s, const char *method, const char *uri,
                                  int warm, struct response *resp, uint64_t *took_ms)
{
    char m[64], d[256], r[256];
    snprintf(m, sizeof m, "REQUEST_METHOD=%s", method);
    snprintf(d, sizeof d, "DOCUMENT_URI=%s", uri);
    snprintf(r, sizeof r, "REQUEST_URI=%s", uri);
    const char *const list[] = {m, d, r, "QUERY_STRING=", warm ? "MEMFILL_WARM=1" : NULL, NULL};
    char **env = tu_env_new(list);
    struct request req;
    request_init(&req, env);
    request_key(&req, site->key);
    struct store_job job;
    store_job_init(&job);
    store_locate(site, &req, 0, &job.loc);
    uint64_t t0 = util_now_ms();
    enum stampede_result res = stampede_enter(s, site, w, &req, 0, &job.loc, resp);
    if (took_ms)
        *took_ms = util_now_ms() - t0;
    ck_assert_int_eq(res, s->result);
    store_job_fini(&job);
    request_fini(&req);
    tu_env_free(env);
    return res;
}

/* ---- the lock key ---- */

START_TEST(test_lock_key)
{
    struct buf out = BUF_INIT;
    ck_assert_int_eq(stampede_lock_key("/a%20b", 6, &out), 0);
    ck_assert_str_eq(out.data, STAMPEDE_LOCK_PREFIX "/a%20b");
    /* The lock key must fit memcached's 250 bytes too. */
    size_t room = 250 - strlen(STAMPEDE_LOCK_PREFIX);
    char big[260];
    memset(big, 'k', sizeof big);
    buf_reset(&out, 0);
    ck_assert_int_eq(stampede_lock_key(big, room, &out), 0);
    ck_assert_uint_eq(out.len, 250);
    buf_reset(&out, 0);
    buf_append_str(&out, "kept");
    ck_assert_int_eq(stampede_lock_key(big, room + 1, &out), -1);
    ck_assert_str_eq(out.data, "kept");
    buf_fini(&out);
}
END_TEST

/* ---- no protection ---- */

START_TEST(test_off_when_not_asked)
{
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    struct buf lk = BUF_INIT;

    /* lock_wait 0: off, nothing written. */
    open_site(0, 0);
    const char *p = page_key("off");
    lock_key_of(p, &lk);
    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_OFF);
    ck_assert_ptr_null(value_of(lk.data));
    close_site();

    /* With protection: a warm-up request and a POST take no lock. */
    open_site(LOCK_WAIT_MS, 0);
    ck_assert_int_eq(enter(&s, "GET", p, 1, &resp, NULL), STAMPEDE_OFF);
    ck_assert_int_eq(enter(&s, "POST", p, 0, &resp, NULL), STAMPEDE_OFF);
    ck_assert_ptr_null(value_of(lk.data));
    /* ... while a plain GET does (proving the two above were refused). */
    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_HOLDER);
    stampede_leave(&s, w, OUTCOME_STORED);
    close_site();

    buf_fini(&lk);
    response_fini(&resp);
    stampede_fini(&s);
}
END_TEST

START_TEST(test_off_when_memcached_is_down)
{
    /* Any memcached trouble turns the protection off; it never fails the
     * request and never waits lock_wait. */
    open_site(5000, 1);
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    uint64_t took = 0;
    ck_assert_int_eq(enter(&s, "GET", page_key("down"), 0, &resp, &took), STAMPEDE_OFF);
    ck_assert_msg(took < 4000, "took %llu ms", (unsigned long long)took);
    stampede_leave(&s, w, OUTCOME_STORED);
    response_fini(&resp);
    stampede_fini(&s);
    close_site();
}
END_TEST

/* ---- the holder ---- */

START_TEST(test_holder_stores_and_releases)
{
    open_site(LOCK_WAIT_MS, 0);
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    const char *p = page_key("holder");
    struct buf lk = BUF_INIT;
    lock_key_of(p, &lk);

    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_HOLDER);
    ck_assert_str_eq(s.lock_key.data, lk.data);
    char *held = value_of(lk.data);
    ck_assert_ptr_nonnull(held);
    ck_assert_str_eq(held, s.token);
    free(held);
    /* A stored page releases the lock. */
    stampede_leave(&s, w, OUTCOME_STORED);
    ck_assert_ptr_null(value_of(lk.data));
    ck_assert_int_eq(s.result, STAMPEDE_OFF);

    /* The holder's lock was taken over (it was slower than lock_ttl): it
     * leaves the other worker's lock alone. */
    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_HOLDER);
    put(lk.data, "other.1", 7, 0);
    stampede_leave(&s, w, OUTCOME_STORED);
    char *v = value_of(lk.data);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "other.1");
    free(v);
    mcclient_delete(w, 0, lk.data, lk.len);

    buf_fini(&lk);
    response_fini(&resp);
    stampede_fini(&s);
    close_site();
}
END_TEST

START_TEST(test_holder_not_stored_leaves_pass)
{
    open_site(LOCK_WAIT_MS, 0);
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    const char *p = page_key("pass");
    struct buf lk = BUF_INIT;
    lock_key_of(p, &lk);

    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_HOLDER);
    stampede_leave(&s, w, OUTCOME_SKIP_STATUS);
    char *v = value_of(lk.data);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "pass");
    free(v);
    /* The next request for that page is not queued: off at once. */
    uint64_t took = 0;
    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, &took), STAMPEDE_OFF);
    ck_assert_msg(took < LOCK_WAIT_MS, "waited %llu ms behind a pass mark",
                  (unsigned long long)took);
    mcclient_delete(w, 0, lk.data, lk.len);

    buf_fini(&lk);
    response_fini(&resp);
    stampede_fini(&s);
    close_site();
}
END_TEST

START_TEST(test_lock_free_page_there)
{
    /* A request queued while the page was produced takes the lock just
     * released, finds the page and serves it, freeing the lock. */
    open_site(LOCK_WAIT_MS, 0);
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    const char *p = page_key("queued");
    struct buf lk = BUF_INIT;
    lock_key_of(p, &lk);
    put(p, "<p>queued</p>", 13, 0);

    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_SERVED);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.data, "<p>queued</p>");
    ck_assert_str_eq(resp.content_type.data, "text/plain");
    ck_assert_ptr_null(value_of(lk.data));
    mcclient_delete(w, 0, p, strlen(p));

    buf_fini(&lk);
    response_fini(&resp);
    stampede_fini(&s);
    close_site();
}
END_TEST

/* ---- the waiter ---- */

START_TEST(test_waiter_served_gzip)
{
    /* Another worker holds the lock and has stored the page gzipped: the
     * waiter serves it, decompressed, and leaves the lock to its owner. */
    open_site(LOCK_WAIT_MS, 0);
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    const char *p = page_key("served");
    struct buf lk = BUF_INIT, gz = BUF_INIT;
    lock_key_of(p, &lk);
    put(lk.data, "other.2", 7, 0);
    const char page[] = "<p>produced by the other worker</p>";
    ck_assert_int_eq(store_gzip(page, sizeof page - 1, &gz), 0);
    put(p, gz.data, gz.len, GZIP_FLAG);

    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, NULL), STAMPEDE_SERVED);
    ck_assert_str_eq(resp.body.data, page);
    char *v = value_of(lk.data);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "other.2");
    free(v);

    struct store_job job;
    store_job_init(&job);
    job.decision = OUTCOME_STORED;
    stampede_settle(&s, &job);
    ck_assert_int_eq(job.decision, OUTCOME_LOCK_SERVED);
    store_job_fini(&job);
    stampede_leave(&s, w, OUTCOME_LOCK_SERVED);
    v = value_of(lk.data);
    ck_assert_ptr_nonnull(v); /* a waiter never touches the lock */
    free(v);
    mcclient_delete(w, 0, lk.data, lk.len);
    mcclient_delete(w, 0, p, strlen(p));

    buf_fini(&gz);
    buf_fini(&lk);
    response_fini(&resp);
    stampede_fini(&s);
    close_site();
}
END_TEST

START_TEST(test_waiter_times_out)
{
    /* The lock stays held and no page comes: the waiter gives up after
     * lock_wait and produces without storing. */
    open_site(LOCK_WAIT_MS, 0);
    struct stampede s;
    stampede_init(&s);
    struct response resp;
    response_init(&resp);
    const char *p = page_key("late");
    struct buf lk = BUF_INIT;
    lock_key_of(p, &lk);
    put(lk.data, "other.3", 7, 0);

    uint64_t took = 0;
    ck_assert_int_eq(enter(&s, "GET", p, 0, &resp, &took), STAMPEDE_TIMED_OUT);
    ck_assert_msg(took >= LOCK_WAIT_MS - 5, "gave up after %llu ms",
                  (unsigned long long)took);
    ck_assert_msg(took < LOCK_WAIT_MS + 3000, "waited %llu ms", (unsigned long long)took);

    struct store_job job;
    store_job_init(&job);
    job.decision = OUTCOME_STORED;
    stampede_settle(&s, &job);
    ck_assert_int_eq(job.decision, OUTCOME_SKIP_LOCK_LOST);
    /* A page that would not have been stored keeps its own reason. */
    job.decision = OUTCOME_SKIP_STATUS;
    stampede_settle(&s, &job);
    ck_assert_int_eq(job.decision, OUTCOME_SKIP_STATUS);
    store_job_fini(&job);
    stampede_leave(&s, w, OUTCOME_SKIP_LOCK_LOST);
    char *v = value_of(lk.data);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "other.3");
    free(v);
    mcclient_delete(w, 0, lk.data, lk.len);

    buf_fini(&lk);
    response_fini(&resp);
    stampede_fini(&s);
    close_site();
}
END_TEST

static Suite *stampede_suite(void)
{
    Suite *s = suite_create("stampede");
    TCase *tc = tcase_create("key");
    tcase_add_test(tc, test_lock_key);
    suite_add_tcase(s, tc);
    tc = tcase_create("memcached");
    tcase_add_unchecked_fixture(tc, node_start, node_stop);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_off_when_not_asked);
    tcase_add_test(tc, test_off_when_memcached_is_down);
    tcase_add_test(tc, test_holder_stores_and_releases);
    tcase_add_test(tc, test_holder_not_stored_leaves_pass);
    tcase_add_test(tc, test_lock_free_page_there);
    tcase_add_test(tc, test_waiter_served_gzip);
    tcase_add_test(tc, test_waiter_times_out);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int missing = tu_binary_missing("memcached");
    if (missing)
        return missing;
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(stampede_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
