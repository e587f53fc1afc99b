/* check_status.c - the status documents (status.c): JSON and Prometheus
 * text rendered from a scoreboard the test fills by hand.
 *
 * The scoreboard has three slots: a busy worker (its URI holds a quote, a
 * backslash and a control byte), an idle one, and an empty slot whose
 * counters came from a worker that exited (stats_retire_slot), so the
 * totals must add live slots and the retired counters. The JSON is read
 * back with jansson, so a document that is not valid JSON fails; the
 * Prometheus text is checked line by line against the exposition format
 * (every sample has a "# TYPE" line before it). */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/stats.h"
#include "memfill/status.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct config *cfg;
static struct stats *st;
static struct status_info info;

/* The scoreboard described at the top, and a config with two nodes and
 * four workers. */
static void board_fill(void)
{
    const char *json = "{\"workers\": 4, \"memcached\": {\"servers\": [\"127.0.0.1:11211\", "
                       "\"unix:/run/mc.sock\"]}}";
    struct err e;
    err_clear(&e);
    cfg = config_load_string(json, strlen(json), "test", NULL, CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    st = stats_new(3);
    ck_assert_ptr_nonnull(st);

    uint64_t now = util_now_ms();
    struct stats_slot *s = stats_slot(st, 2);
    s->pid = 99;
    s->counters[STATS_REQUESTS] = 100;
    s->counters[stats_outcome_counter(OUTCOME_STORED)] = 40;
    s->node_ok[0] = 10; /* node counters outlive the worker */
    stats_retire_slot(st, 2);

    s = stats_slot(st, 0);
    s->pid = 101;
    s->state = STATS_STATE_BUSY;
    s->started_ms = now - 1500;
    s->born_ms = now - 7000;
    snprintf(s->uri, sizeof s->uri, "/a\"b\\c\x01");
    s->counters[STATS_REQUESTS] = 5;
    s->counters[stats_outcome_counter(OUTCOME_STORED)] = 3;
    s->counters[stats_outcome_counter(OUTCOME_SKIP_STATUS)] = 2;
    s->node_ok[0] = 2;
    s->node_fail[1] = 1;
    s->node_usec[0] = 900;
    s->node_usec[1] = 3000;

    s = stats_slot(st, 1);
    s->pid = 102;
    s->state = STATS_STATE_IDLE;
    s->born_ms = now - 2000;
    snprintf(s->uri, sizeof s->uri, "/old-request");
    s->counters[STATS_REQUESTS] = 7;
    s->counters[stats_outcome_counter(OUTCOME_STORED)] = 7;
    s->node_ok[1] = 7;
    s->node_usec[1] = 700;

    struct stats_master *m = stats_master(st);
    m->started_unix = (uint64_t)time(NULL) - 60;
    m->restarts = 2;
    m->abnormal_exits = 1;
    m->timeouts_killed = 3;
    m->reloads = 4;
    m->admin_refused = 5;
    m->admin_timeouts = 6;
    m->admin_overflow = 7;
    m->admin_open = 1;

    memset(&info, 0, sizeof info);
    info.master_pid = 4242;
    info.cfg = cfg;
    info.listen_fd = -1; /* no socket: the queue is unknown */
    info.generation = 3;
    info.max_active_reached = 11;
}

static void board_free(void)
{
    stats_free(st);
    config_free(cfg);
    st = NULL;
    cfg = NULL;
}

static json_int_t jint(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    ck_assert_msg(json_is_integer(v), "%s: not an integer", name);
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    ck_assert_msg(json_is_string(v), "%s: not a string", name);
    return json_string_value(v);
}

/* ---- JSON ---- */

START_TEST(test_json_document)
{
    board_fill();
    struct buf out = BUF_INIT;
    buf_append_str(&out, "kept:");
    status_render_json(st, &info, &out);
    ck_assert_mem_eq(out.data, "kept:", 5);
    ck_assert_int_eq(out.data[out.len - 1], '\n');
    json_error_t je;
    json_t *doc = json_loadb(out.data + 5, out.len - 5, 0, &je);
    ck_assert_msg(doc != NULL, "not JSON: %s at %d: %s", je.text, je.position, out.data);

    ck_assert_str_eq(jstr(doc, "version"), PACKAGE_VERSION);
    ck_assert_int_eq(jint(doc, "master_pid"), 4242);
    ck_assert_int_ge(jint(doc, "uptime_s"), 60);
    ck_assert_int_lt(jint(doc, "uptime_s"), 600);
    ck_assert_int_eq(jint(doc, "generation"), 3);
    ck_assert_int_eq(jint(doc, "workers_configured"), 4);
    ck_assert_int_eq(jint(doc, "accepted"), 112); /* 5 + 7 live, 100 retired */
    ck_assert_int_eq(jint(doc, "active"), 1);
    ck_assert_int_eq(jint(doc, "idle"), 1);
    ck_assert_int_eq(jint(doc, "listen_queue"), -1);
    ck_assert_int_eq(jint(doc, "max_active_reached"), 11);
    ck_assert_int_eq(jint(doc, "restarts"), 2);
    ck_assert_int_eq(jint(doc, "abnormal_exits"), 1);
    ck_assert_int_eq(jint(doc, "timeouts_killed"), 3);
    ck_assert_int_eq(jint(doc, "reloads"), 4);
    ck_assert_int_eq(jint(doc, "admin_open"), 1);
    ck_assert_int_eq(jint(doc, "admin_refused"), 5);
    ck_assert_int_eq(jint(doc, "admin_timeouts"), 6);
    ck_assert_int_eq(jint(doc, "admin_overflow"), 7);

    /* Every counter, by its name, in counter order. */
    json_t *counters = json_object_get(doc, "counters");
    ck_assert(json_is_object(counters));
    ck_assert_uint_eq(json_object_size(counters), STATS_N);
    const char *key;
    json_t *v;
    int c = 0;
    json_object_foreach(counters, key, v)
    {
        ck_assert_str_eq(key, stats_counter_name(stats_counter_listed((size_t)c)));
        ck_assert_int_eq(json_integer_value(v),
                         (json_int_t)stats_total(st, stats_counter_listed((size_t)c)));
        c++;
    }
    ck_assert_int_eq(jint(counters, "stored"), 50);
    ck_assert_int_eq(jint(counters, "skip_status"), 2);

    /* Live workers only; the busy one shows its URI, escaped. */
    json_t *workers = json_object_get(doc, "workers");
    ck_assert_uint_eq(json_array_size(workers), 2);
    json_t *w0 = json_array_get(workers, 0), *w1 = json_array_get(workers, 1);
    ck_assert_int_eq(jint(w0, "pid"), 101);
    ck_assert_str_eq(jstr(w0, "state"), stats_state_name(STATS_STATE_BUSY));
    ck_assert_int_eq(jint(w0, "requests"), 5);
    ck_assert_str_eq(jstr(w0, "uri"), "/a\"b\\c\x01");
    ck_assert_int_ge(jint(w0, "request_ms"), 1500);
    ck_assert_int_lt(jint(w0, "request_ms"), 60000);
    ck_assert_int_ge(jint(w0, "age_s"), 7);
    ck_assert_int_eq(jint(w1, "pid"), 102);
    ck_assert_str_eq(jstr(w1, "state"), stats_state_name(STATS_STATE_IDLE));
    ck_assert_str_eq(jstr(w1, "uri"), ""); /* an idle worker's last URI is not shown */
    ck_assert_int_eq(jint(w1, "request_ms"), 0);

    /* Nodes summed over every slot, the retired one included. */
    json_t *nodes = json_object_get(doc, "nodes");
    ck_assert_uint_eq(json_array_size(nodes), 2);
    json_t *n0 = json_array_get(nodes, 0), *n1 = json_array_get(nodes, 1);
    ck_assert_str_eq(jstr(n0, "address"), "127.0.0.1:11211");
    ck_assert_int_eq(jint(n0, "stores_ok"), 12);
    ck_assert_int_eq(jint(n0, "stores_failed"), 0);
    ck_assert_int_eq(jint(n0, "avg_store_us"), 900 / 12);
    ck_assert_str_eq(jstr(n1, "address"), "unix:/run/mc.sock");
    ck_assert_int_eq(jint(n1, "stores_ok"), 7);
    ck_assert_int_eq(jint(n1, "stores_failed"), 1);
    ck_assert_int_eq(jint(n1, "avg_store_us"), 3700 / 8);

    json_decref(doc);
    buf_fini(&out);
    board_free();
}
END_TEST

START_TEST(test_count_and_queue)
{
    board_fill();
    ck_assert_uint_eq(status_count_state(st, STATS_STATE_BUSY), 1);
    ck_assert_uint_eq(status_count_state(st, STATS_STATE_IDLE), 1);
    /* The retired slot is empty, and an empty slot is never counted. */
    ck_assert_uint_eq(status_count_state(st, STATS_STATE_EMPTY), 0);
    ck_assert_uint_eq(status_count_state(st, STATS_STATE_STORING), 0);
    board_free();

    /* A TCP listening socket nobody connects to: an empty queue. A
     * socket that is not TCP: unknown. */
    int port;
    int fd = tu_bind_free_port(&port, 1);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(status_listen_queue(fd), 0);
    close(fd);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(status_listen_queue(p[0]), -1);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* ---- Prometheus ---- */

/* The value of the sample line that starts with head (the metric and its
 * labels), or -1 when there is none. */
static long long sample(const char *text, const char *head)
{
    size_t n = strlen(head);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, head, n) == 0 && l[n] == ' ')
            return atoll(l + n + 1);
    }
    return -1;
}

START_TEST(test_prometheus_text)
{
    board_fill();
    struct buf out = BUF_INIT;
    status_render_prometheus(st, &info, &out);
    const char *t = out.data;

    /* Format: comments, or "name[{labels}] integer"; a sample's metric
     * has had its "# TYPE" line. */
    struct buf typed = BUF_INIT;
    buf_append_char(&typed, ' ');
    int samples = 0;
    for (const char *l = t; *l;) {
        const char *eol = strchr(l, '\n');
        ck_assert_msg(eol != NULL, "last line has no newline");
        size_t len = (size_t)(eol - l);
        char line[512];
        ck_assert_uint_lt(len, sizeof line);
        memcpy(line, l, len);
        line[len] = '\0';
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[32];
            ck_assert_int_eq(sscanf(line + 7, "%127s %31s", name, type), 2);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0, "%s",
                          line);
            buf_printf(&typed, "%s ", name);
        } else if (line[0] != '#') {
            size_t name_len = strcspn(line, "{ ");
            char want[160];
            snprintf(want, sizeof want, " %.*s ", (int)name_len, line);
            ck_assert_msg(strstr(typed.data, want) != NULL, "no TYPE before: %s", line);
            const char *sp = strrchr(line, ' ');
            ck_assert_ptr_nonnull(sp);
            char *end;
            strtoll(sp + 1, &end, 10);
            ck_assert_msg(sp[1] && *end == '\0', "value: %s", line);
            samples++;
        }
        l = eol + 1;
    }
    /* events, workers by state, the seven process figures, admin, nodes */
    ck_assert_int_eq(samples, STATS_N + 5 + 7 + 4 + 2 * 2);

    ck_assert_int_eq(sample(t, "memfill_events_total{event=\"requests\"}"), 112);
    ck_assert_int_eq(sample(t, "memfill_events_total{event=\"stored\"}"), 50);
    ck_assert_int_eq(sample(t, "memfill_events_total{event=\"skip_status\"}"), 2);
    ck_assert_int_eq(sample(t, "memfill_workers{state=\"busy\"}"), 1);
    ck_assert_int_eq(sample(t, "memfill_workers{state=\"idle\"}"), 1);
    ck_assert_int_eq(sample(t, "memfill_workers{state=\"storing\"}"), 0);
    ck_assert_int_eq(sample(t, "memfill_workers_configured"), 4);
    ck_assert_int_eq(sample(t, "memfill_max_active_reached_total"), 11);
    ck_assert_int_eq(sample(t, "memfill_worker_restarts_total"), 2);
    ck_assert_int_eq(sample(t, "memfill_worker_abnormal_exits_total"), 1);
    ck_assert_int_eq(sample(t, "memfill_worker_timeouts_killed_total"), 3);
    ck_assert_int_eq(sample(t, "memfill_reloads_total"), 4);
    ck_assert_int_eq(sample(t, "memfill_admin_connections_total{outcome=\"refused\"}"), 5);
    ck_assert_int_eq(sample(t, "memfill_admin_connections_total{outcome=\"timeout\"}"), 6);
    ck_assert_int_eq(sample(t, "memfill_admin_connections_total{outcome=\"overflow\"}"), 7);
    ck_assert_int_eq(sample(t, "memfill_admin_connections_open"), 1);
    ck_assert_int_eq(
        sample(t, "memfill_node_stores_total{node=\"127.0.0.1:11211\",result=\"ok\"}"), 12);
    ck_assert_int_eq(
        sample(t, "memfill_node_stores_total{node=\"127.0.0.1:11211\",result=\"failed\"}"), 0);
    buf_fini(&typed);
    buf_fini(&out);
    board_free();
}
END_TEST

static Suite *status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, test_json_document);
    tcase_add_test(tc, test_count_and_queue);
    tcase_add_test(tc, test_prometheus_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(status_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
