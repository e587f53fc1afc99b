/* check_purge.c - purging by key and by tag, and the tag index (purge.c),
 * against two real memcached processes.
 *
 * The fixture starts two memcached on free ports (stopped by pid in the
 * teardown; they die with this program too). Each test writes its items
 * straight into memcached, purges through purge.c and then reads every
 * node back, so a purge that deleted the wrong item, on the wrong node or
 * not at all is seen. A third "node" is a port bound but not listening:
 * every connection to it is refused.
 *
 * Without memcached the program exits 77 (skip), or fails when
 * MEMFILL_NO_SKIP=1. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/keyesc.h"
#include "memfill/mcclient.h"
#include "memfill/nodesel.h"
#include "memfill/purge.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- two real nodes, one dead ---- */

static pid_t mc_pid[2] = {-1, -1};
static int mc_port[2];
static int dead_fd = -1, dead_port;

static void nodes_start(void)
{
    for (int i = 0; i < 2; i++)
        mc_pid[i] = tu_memcached_start(&mc_port[i]);
    dead_fd = tu_bind_free_port(&dead_port, 0);
}

static void nodes_stop(void)
{
    for (int i = 0; i < 2; i++)
        tu_stop_pid(&mc_pid[i]);
    if (dead_fd >= 0)
        close(dead_fd);
    dead_fd = -1;
}

static struct config *cfg;
static struct mcclient *w;
static struct nodesel *sel;
static size_t nnodes;

/* A writer and a selector over the two real nodes, and the dead one when
 * with_dead. */
static void open_nodes(int with_dead)
{
    ck_assert_msg(mc_pid[0] > 0 && mc_pid[1] > 0, "memcached did not start");
    ck_assert_msg(!with_dead || dead_fd >= 0, "no port for the dead node");
    char a[3][32];
    struct nodesel_server servers[3];
    nnodes = with_dead ? 3 : 2;
    for (size_t i = 0; i < nnodes; i++) {
        snprintf(a[i], sizeof a[i], "127.0.0.1:%d", i < 2 ? mc_port[i] : dead_port);
        servers[i] = (struct nodesel_server){a[i], 1, NULL};
    }
    char json[512];
    snprintf(json, sizeof json,
             "{\"memcached\": {\"servers\": [\"%s\", \"%s\"%s%s%s], \"timeout_ms\": 1000, "
             "\"connect_timeout_ms\": 200}}",
             a[0], a[1], with_dead ? ", \"" : "", with_dead ? a[2] : "", with_dead ? "\"" : "");
    struct err e;
    err_clear(&e);
    cfg = config_load_string(json, strlen(json), "test", NULL, CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    w = mcclient_new(cfg);
    sel = nodesel_new(NODESEL_CONSISTENT, servers, nnodes, &e);
    ck_assert_msg(sel != NULL, "nodesel: %s", e.text);
}

static void close_nodes(void)
{
    nodesel_free(sel);
    mcclient_free(w);
    config_free(cfg);
    sel = NULL;
    w = NULL;
    cfg = NULL;
}

/* A key unique to this test process, so runs never see each other's items. */
static const char *uniq(const char *name)
{
    static char k[4][128];
    static int next;
    char *s = k[next++ % 4];
    snprintf(s, sizeof k[0], "/purge/%ld/%s", (long)getpid(), name);
    return s;
}

static void put(size_t node, const char *esc, const char *value)
{
    enum mcc_result r = mcclient_set(w, node, esc, strlen(esc), value, strlen(value), 0, 60);
    ck_assert_msg(r == MCC_OK, "set %s on node %zu: %s", esc, node, mcclient_result_name(r));
}

/* 1 when esc is on node, 0 when it is not. */
static int present(size_t node, const char *esc)
{
    char *v = NULL;
    size_t n = 0;
    enum mcc_result r = mcclient_get(w, node, esc, strlen(esc), &v, &n, NULL);
    free(v);
    ck_assert_msg(r == MCC_OK || r == MCC_NOT_STORED, "get %s on node %zu: %s", esc, node,
                  mcclient_result_name(r));
    return r == MCC_OK;
}

/* The value of esc on node, as a new string, or NULL when absent. */
static char *value_of(size_t node, const char *esc)
{
    char *v = NULL;
    size_t n = 0;
    enum mcc_result r = mcclient_get(w, node, esc, strlen(esc), &v, &n, NULL);
    ck_assert_msg(r == MCC_OK || r == MCC_NOT_STORED, "get %s: %s", esc,
                  mcclient_result_name(r));
    return v;
}

/* ---- tags ---- */

START_TEST(test_tag_valid)
{
    static const struct {
        const char *tag;
        int ok;
    } rows[] = {
        {"a", 1},           {"product:42", 1},  {"A-Z_a.z-09", 1}, {"", 0},
        {"two words", 0},   {"comma,sep", 0},   {"slash/", 0},     {"caf\xc3\xa9", 0},
        {"tab\tx", 0},      {"new\nline", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        ck_assert_msg(purge_tag_valid(rows[i].tag, strlen(rows[i].tag)) == rows[i].ok, "%s",
                      rows[i].tag);
    char big[PURGE_TAG_MAX + 2];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(purge_tag_valid(big, PURGE_TAG_MAX), 1);
    ck_assert_int_eq(purge_tag_valid(big, PURGE_TAG_MAX + 1), 0);
    /* The length bounds the tag: a NUL inside it is a bad byte. */
    ck_assert_int_eq(purge_tag_valid("ab\0c", 4), 0);
}
END_TEST

/* ---- by key ---- */

START_TEST(test_purge_key_on_its_node)
{
    open_nodes(0);
    /* A raw key with a space: the item lives under the escaped key, on the
     * node nginx reads the raw key from. */
    char raw[160];
    snprintf(raw, sizeof raw, "%s with space", uniq("k"));
    struct buf esc = BUF_INIT;
    key_escape(raw, strlen(raw), &esc);
    int node = nodesel_pick(sel, raw, strlen(raw));
    ck_assert_int_ge(node, 0);
    size_t other = (size_t)node ^ 1u;
    put((size_t)node, esc.data, "page");
    put(other, esc.data, "a copy nginx never reads");

    ck_assert_int_eq(purge_key(w, sel, raw, strlen(raw)), 1);
    ck_assert_int_eq(present((size_t)node, esc.data), 0);
    ck_assert_int_eq(present(other, esc.data), 1); /* the other node is left alone */
    /* Again: nothing there any more. */
    ck_assert_int_eq(purge_key(w, sel, raw, strlen(raw)), 0);
    buf_fini(&esc);
    close_nodes();
}
END_TEST

START_TEST(test_purge_key_nginx_cannot_read)
{
    open_nodes(0);
    /* Empty, and 84 raw bytes that escape to 252: nginx can never read
     * such a key, so there is nothing to purge and nothing is sent. */
    ck_assert_int_eq(purge_key(w, sel, "", 0), -1);
    char raw[84];
    memset(raw, ' ', sizeof raw);
    ck_assert_int_eq(purge_key(w, sel, raw, sizeof raw), -1);
    /* 83 spaces escape to 249 bytes: a real key again, absent. */
    ck_assert_int_eq(purge_key(w, sel, raw, 83), 0);
    close_nodes();
}
END_TEST

/* ---- by tag ---- */

START_TEST(test_index_then_purge_tag)
{
    open_nodes(0);
    const char *p1 = uniq("p1"), *p2 = uniq("p2"), *p3 = uniq("p3");
    char ta[64], tb[64];
    snprintf(ta, sizeof ta, "a%ld", (long)getpid());
    snprintf(tb, sizeof tb, "b%ld", (long)getpid());
    char tags[160];
    /* Commas, runs of blanks and an invalid tag (skipped). */
    snprintf(tags, sizeof tags, " %s,, %s bad/tag ", ta, tb);

    put(0, p1, "1");
    put(1, p2, "2");
    put(1, p3, "3");
    ck_assert_int_eq(purge_index_tags(w, 0, p1, strlen(p1), tags, strlen(tags)), 2);
    ck_assert_int_eq(purge_index_tags(w, 1, p2, strlen(p2), ta, strlen(ta)), 1);
    ck_assert_int_eq(purge_index_tags(w, 1, p3, strlen(p3), tb, strlen(tb)), 1);
    /* Stored twice: listed twice, purged once. */
    ck_assert_int_eq(purge_index_tags(w, 1, p2, strlen(p2), ta, strlen(ta)), 1);

    char ka[96];
    snprintf(ka, sizeof ka, PURGE_TAG_PREFIX "%s", ta);
    char *list = value_of(1, ka);
    char want[256];
    snprintf(want, sizeof want, " %s %s", p2, p2);
    ck_assert_ptr_nonnull(list);
    ck_assert_str_eq(list, want);
    free(list);
    list = value_of(0, ka);
    snprintf(want, sizeof want, " %s", p1);
    ck_assert_ptr_nonnull(list);
    ck_assert_str_eq(list, want);
    free(list);

    /* Purging a walks both nodes: p1 and p2 go, p3 (tag b only) stays,
     * and a's index is gone from both. */
    ck_assert_int_eq(purge_tag(w, nnodes, ta, strlen(ta)), 2);
    ck_assert_int_eq(present(0, p1), 0);
    ck_assert_int_eq(present(1, p2), 0);
    ck_assert_int_eq(present(1, p3), 1);
    ck_assert_int_eq(present(0, ka), 0);
    ck_assert_int_eq(present(1, ka), 0);
    /* b still lists p1 (already gone: not counted) and p3. */
    ck_assert_int_eq(purge_tag(w, nnodes, tb, strlen(tb)), 1);
    ck_assert_int_eq(present(1, p3), 0);
    /* Nothing left under either tag. */
    ck_assert_int_eq(purge_tag(w, nnodes, ta, strlen(ta)), 0);
    close_nodes();
}
END_TEST

START_TEST(test_purge_tag_refuses_bad_tag)
{
    open_nodes(0);
    /* An invalid tag is refused before memcached is asked: an item under
     * the key it would name survives. */
    char k[96];
    snprintf(k, sizeof k, PURGE_TAG_PREFIX "x%ld/y", (long)getpid());
    put(0, k, " whatever");
    const char *tag = k + strlen(PURGE_TAG_PREFIX);
    ck_assert_int_eq(purge_tag(w, nnodes, tag, strlen(tag)), -1);
    ck_assert_int_eq(present(0, k), 1);
    ck_assert_int_eq(purge_index_tags(w, 0, "/k", 2, "bad/tag", 7), 0);
    close_nodes();
}
END_TEST

START_TEST(test_purge_tag_dead_node)
{
    /* One node refuses connections: the purge says it failed, and the
     * nodes that answer are purged all the same. */
    open_nodes(1);
    const char *p = uniq("dead");
    char t[64];
    snprintf(t, sizeof t, "d%ld", (long)getpid());
    put(0, p, "x");
    ck_assert_int_eq(purge_index_tags(w, 0, p, strlen(p), t, strlen(t)), 1);
    ck_assert_int_eq(purge_index_tags(w, 2, p, strlen(p), t, strlen(t)), 0);
    ck_assert_int_eq(purge_tag(w, nnodes, t, strlen(t)), -1);
    ck_assert_int_eq(present(0, p), 0);
    close_nodes();
}
END_TEST

static Suite *purge_suite(void)
{
    Suite *s = suite_create("purge");
    TCase *tc = tcase_create("tags");
    tcase_add_test(tc, test_tag_valid);
    suite_add_tcase(s, tc);
    tc = tcase_create("memcached");
    tcase_add_unchecked_fixture(tc, nodes_start, nodes_stop);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_purge_key_on_its_node);
    tcase_add_test(tc, test_purge_key_nginx_cannot_read);
    tcase_add_test(tc, test_index_then_purge_tag);
    tcase_add_test(tc, test_purge_tag_refuses_bad_tag);
    tcase_add_test(tc, test_purge_tag_dead_node);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int missing = tu_memcached_missing();
    if (missing)
        return missing;
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(purge_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
