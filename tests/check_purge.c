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
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
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

/* The markers of tag on node. */
static size_t count_markers(size_t node, const char *tag)
{
    char p[160];
    snprintf(p, sizeof p, PURGE_MARK_PREFIX "%s=", tag);
    long n = tu_count_keys(w, node, p);
    ck_assert_int_ge(n, 0);
    snprintf(p, sizeof p, PURGE_MARK_PREFIX "%s#", tag);
    long h = tu_count_keys(w, node, p);
    ck_assert_int_ge(h, 0);
    return (size_t)(n + h);
}

static int index_page(size_t node, const char *esc, const char *tags)
{
    return purge_index_tags(w, node, esc, strlen(esc), tags, strlen(tags), 60);
}

/* Purges tag into rep (initialised here; fini by the caller). */
static void purge(const char *tag, struct purge_report *rep)
{
    purge_report_init(rep, nnodes);
    ck_assert_int_eq(purge_tag(w, tag, strlen(tag), rep), 0);
}

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
    ck_assert_int_eq(index_page(0, p1, tags), 0);
    ck_assert_int_eq(index_page(1, p2, ta), 0);
    ck_assert_int_eq(index_page(1, p3, tb), 0);
    /* Stored again, three times: still one entry. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(index_page(1, p2, ta), 0);
    ck_assert_uint_eq(count_markers(1, ta), 1);
    ck_assert_uint_eq(count_markers(0, ta), 1);
    ck_assert_uint_eq(count_markers(0, tb), 1);
    /* The marker names the page and lives on the page's node only. */
    struct buf mk = BUF_INIT;
    ck_assert_int_eq(purge_marker_key(&mk, ta, strlen(ta), p2, strlen(p2)), 0);
    ck_assert_int_eq(present(1, mk.data), 1);
    ck_assert_int_eq(present(0, mk.data), 0);

    /* Purging a walks both nodes: p1 and p2 go, p3 (tag b only) stays,
     * and a's entries are gone from both. */
    struct purge_report rep;
    purge(ta, &rep);
    ck_assert_int_eq(rep.purged, 2);
    ck_assert_int_eq(rep.entries, 2);
    ck_assert_int_eq(purge_report_complete(&rep), 1);
    purge_report_fini(&rep);
    ck_assert_int_eq(present(0, p1), 0);
    ck_assert_int_eq(present(1, p2), 0);
    ck_assert_int_eq(present(1, p3), 1);
    ck_assert_uint_eq(count_markers(0, ta) + count_markers(1, ta), 0);
    /* b still lists p1 (already gone: found, not counted) and p3. */
    purge(tb, &rep);
    ck_assert_int_eq(rep.purged, 1);
    ck_assert_int_eq(rep.entries, 2);
    purge_report_fini(&rep);
    ck_assert_int_eq(present(1, p3), 0);
    /* Nothing left under either tag. */
    purge(ta, &rep);
    ck_assert_int_eq(rep.purged, 0);
    ck_assert_int_eq(rep.entries, 0);
    ck_assert_int_eq(purge_report_complete(&rep), 1);
    purge_report_fini(&rep);
    buf_fini(&mk);
    close_nodes();
}
END_TEST

START_TEST(test_long_key_hashed_marker)
{
    /* A key too long to be spelled inside its marker's key: the marker is
     * named by a hash and holds the key. */
    open_nodes(0);
    char esc[KEY_MAX_ESCAPED + 1];
    snprintf(esc, sizeof esc, "%s/", uniq("long"));
    size_t l = strlen(esc);
    memset(esc + l, 'x', KEY_MAX_ESCAPED - l);
    esc[KEY_MAX_ESCAPED] = '\0';
    char t[64];
    snprintf(t, sizeof t, "long%ld", (long)getpid());
    put(0, esc, "page");
    ck_assert_int_eq(index_page(0, esc, t), 0);
    struct buf mk = BUF_INIT;
    ck_assert_int_eq(purge_marker_key(&mk, t, strlen(t), esc, strlen(esc)), 1);
    ck_assert_uint_le(mk.len, KEY_MAX_ESCAPED);
    char *v = value_of(0, mk.data);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, esc);
    free(v);
    struct purge_report rep;
    purge(t, &rep);
    ck_assert_int_eq(rep.purged, 1);
    ck_assert_int_eq(purge_report_complete(&rep), 1);
    purge_report_fini(&rep);
    ck_assert_int_eq(present(0, esc), 0);
    ck_assert_int_eq(present(0, mk.data), 0);
    buf_fini(&mk);
    close_nodes();
}
END_TEST

START_TEST(test_purge_tag_refuses_bad_tag)
{
    open_nodes(0);
    /* An invalid tag is refused before memcached is asked: an item under
     * the key it would name survives. */
    char k[96];
    snprintf(k, sizeof k, PURGE_MARK_PREFIX "x%ld/y=/p", (long)getpid());
    put(0, k, "");
    char tag[64];
    snprintf(tag, sizeof tag, "x%ld/y", (long)getpid());
    struct purge_report rep;
    purge_report_init(&rep, nnodes);
    ck_assert_int_eq(purge_tag(w, tag, strlen(tag), &rep), -1);
    purge_report_fini(&rep);
    ck_assert_int_eq(present(0, k), 1);
    /* Nothing to index is no failure. */
    ck_assert_int_eq(index_page(0, "/k", "bad/tag"), 0);
    close_nodes();
}
END_TEST

START_TEST(test_purge_tag_dead_node)
{
    /* One node refuses connections: indexing there fails and is said, the
     * purge names the node and is not complete, and the nodes that answer
     * are purged all the same. */
    open_nodes(1);
    const char *p = uniq("dead");
    char t[64];
    snprintf(t, sizeof t, "d%ld", (long)getpid());
    put(0, p, "x");
    ck_assert_int_eq(index_page(0, p, t), 0);
    ck_assert_int_eq(index_page(2, p, t), 1);
    struct purge_report rep;
    purge(t, &rep);
    ck_assert_int_eq(rep.purged, 1);
    ck_assert_int_eq(purge_report_complete(&rep), 0);
    ck_assert_uint_eq(rep.nfailed, 1);
    ck_assert_int_eq(rep.failed[2], 1);
    struct buf why = BUF_INIT;
    purge_report_why(&rep, w, &why);
    ck_assert_msg(strstr(why.data, "failed") != NULL, "%s", why.data);
    buf_fini(&why);
    purge_report_fini(&rep);
    ck_assert_int_eq(present(0, p), 0);
    close_nodes();
}
END_TEST

/* Stores (page, then its marker, as the worker does) running while the
 * tag is purged: afterwards every page left must still be indexed, so
 * that the next purge finds it. */
#define RACE_PAGES 300

START_TEST(test_purge_races_stores)
{
    open_nodes(0);
    char t[64];
    snprintf(t, sizeof t, "race%ld", (long)getpid());
    volatile unsigned long *stores =
        mmap(NULL, sizeof *stores, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne((void *)stores, MAP_FAILED);
    *stores = 0;
    pid_t parent = getpid();
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        tu_die_with_parent(parent);
        close_nodes(); /* connections of its own */
        open_nodes(0);
        uint64_t until = util_now_ms() + 10000;
        for (unsigned long i = 0; util_now_ms() < until; i++) {
            char k[96];
            snprintf(k, sizeof k, "/race/%ld/%lu", (long)parent, i % RACE_PAGES);
            mcclient_set(w, 0, k, strlen(k), "x", 1, 0, 60);
            index_page(0, k, t);
            *stores = i + 1;
        }
        _exit(0);
    }
    uint64_t deadline = util_now_ms() + 5000;
    while (*stores < RACE_PAGES && util_now_ms() < deadline)
        usleep(1000);
    ck_assert_uint_ge(*stores, RACE_PAGES);
    unsigned long during = 0;
    long purged = 0;
    for (int round = 0; round < 5; round++) {
        unsigned long before = *stores;
        struct purge_report rep;
        purge(t, &rep);
        ck_assert_int_eq(purge_report_complete(&rep), 1);
        purged += rep.purged;
        purge_report_fini(&rep);
        during += *stores - before;
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    /* The race really ran: stores happened while purging, and purges
     * found pages. */
    ck_assert_uint_gt(during, 0);
    ck_assert_int_gt(purged, 0);
    /* A store killed between its page and its marker is a crash, not a
     * race: finish the last one as the worker would have. */
    unsigned long last = *stores;
    char k[96];
    snprintf(k, sizeof k, "/race/%ld/%lu", (long)parent, last % RACE_PAGES);
    if (present(0, k))
        index_page(0, k, t);
    size_t left = 0;
    struct buf mk = BUF_INIT;
    for (unsigned long i = 0; i < RACE_PAGES; i++) {
        snprintf(k, sizeof k, "/race/%ld/%lu", (long)parent, i);
        if (!present(0, k))
            continue;
        left++;
        purge_marker_key(&mk, t, strlen(t), k, strlen(k));
        ck_assert_msg(present(0, mk.data), "%s left without its index entry", k);
    }
    buf_fini(&mk);
    /* And the next purge takes them all. */
    struct purge_report rep;
    purge(t, &rep);
    ck_assert_int_eq(rep.purged, (long)left);
    purge_report_fini(&rep);
    char pre[96];
    snprintf(pre, sizeof pre, "/race/%ld/", (long)parent);
    ck_assert_int_eq(tu_count_keys(w, 0, pre), 0);
    munmap((void *)stores, sizeof *stores);
    close_nodes();
}
END_TEST

/* A node too small for what is stored: memcached evicts markers, and the
 * purge must say it may have missed pages. */
START_TEST(test_evicted_markers_make_purge_incomplete)
{
    int port;
    pid_t small = tu_memcached_start_mb(&port, 2);
    ck_assert_int_gt(small, 0);
    char json[256];
    snprintf(json, sizeof json,
             "{\"memcached\": {\"servers\": [\"127.0.0.1:%d\"], \"timeout_ms\": 2000}}", port);
    struct err e;
    err_clear(&e);
    struct config *c = config_load_string(json, strlen(json), "test", NULL,
                                          CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(c != NULL, "config: %s", e.text);
    struct mcclient *mc = mcclient_new(c);
    /* 40,000 pages of 100 bytes and their markers: about 9 MB of items
     * for a 2 MB node. */
    char page[100];
    memset(page, 'p', sizeof page);
    long stored = 0;
    for (int i = 0; i < 40000; i++) {
        char k[64];
        snprintf(k, sizeof k, "/small/%d", i);
        if (mcclient_set(mc, 0, k, strlen(k), page, sizeof page, 0, 600) == MCC_OK &&
            purge_index_tags(mc, 0, k, strlen(k), "small", 5, 600) == 0)
            stored++;
    }
    ck_assert_int_gt(stored, 30000);
    struct purge_report rep;
    purge_report_init(&rep, 1);
    ck_assert_int_eq(purge_tag(mc, "small", 5, &rep), 0);
    /* The fault really happened: markers were evicted (fewer found than
     * written) and the node says so. */
    ck_assert_int_lt(rep.entries, stored);
    ck_assert_msg(rep.evicted > 0, "evicted %lu entries %ld stored %ld nfailed %zu", rep.evicted, rep.entries, stored, rep.nfailed);
    ck_assert_int_eq(purge_report_complete(&rep), 0);
    struct buf why = BUF_INIT;
    purge_report_why(&rep, mc, &why);
    ck_assert_msg(strstr(why.data, "evicted") != NULL, "%s", why.data);
    buf_fini(&why);
    purge_report_fini(&rep);
    mcclient_free(mc);
    config_free(c);
    tu_stop_pid(&small);
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
    tcase_add_test(tc, test_long_key_hashed_marker);
    tcase_add_test(tc, test_purge_tag_refuses_bad_tag);
    tcase_add_test(tc, test_purge_tag_dead_node);
    tcase_add_test(tc, test_purge_races_stores);
    tcase_add_test(tc, test_evicted_markers_make_purge_incomplete);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int missing = tu_binary_missing("memcached");
    if (missing)
        return missing;
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(purge_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
