/* check_keyscan.c - purge by prefix and by regex (keyscan, purgematch).
 *
 * "decode": metadump lines as memcached 1.6.18 writes them (URL-encoded
 * keys) back to the escaped key, and bad lines refused; the matcher
 * (prefix, byte-mode regex, bookkeeping left alone unless asked, empty or
 * overlong patterns and bad regexes refused, a runaway regex undecided).
 *
 * "real": two memcached processes (started by an unchecked fixture, dying
 * with this program) hold 100,000 keys, each on the node nginx would read
 * it from, under several prefixes with odd bytes (space, '%', UTF-8, a
 * control byte, a tab), plus memfill bookkeeping keys. Purging one prefix
 * removes exactly its keys on both nodes and leaves every other key (read
 * back with multi-gets); a regex purge likewise. A node that refuses
 * connections, and one that accepts and never answers, make the purge
 * partial: the report names the node, the other node is still purged,
 * and the whole purge ends within its deadlines.
 *
 * Without memcached the program exits 77 (skip), or fails when
 * MEMFILL_NO_SKIP=1. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/keyesc.h"
#include "memfill/keyloc.h"
#include "memfill/keyscan.h"
#include "memfill/mcclient.h"
#include "memfill/purgematch.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- decode ---- */

START_TEST(parse_metadump_lines)
{
    struct buf b = BUF_INIT;
    const char *l1 = "key=%2Fa%2520b%2525c exp=-1 la=1796307042 cas=1 fetch=no cls=1 size=70";
    ck_assert_int_eq(keyscan_parse_line(l1, strlen(l1), &b), 0);
    ck_assert_str_eq(b.data, "/a%20b%25c");
    buf_reset(&b, 0);
    const char *l2 = "key=%2Fcaf%C3%A9%01~-._ exp=-1 la=1 cas=2 fetch=no cls=1 size=66";
    ck_assert_int_eq(keyscan_parse_line(l2, strlen(l2), &b), 0);
    ck_assert_str_eq(b.data, "/caf\xc3\xa9\x01~-._");
    buf_reset(&b, 0);
    const char *bad[] = {"END", "key=", "key=%2", "key=%zz exp=1", "VALUE x 0 1", "kex=abc"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(keyscan_parse_line(bad[i], strlen(bad[i]), &b) < 0, "accepted %s", bad[i]);
        ck_assert_uint_eq(b.len, 0);
    }
    /* a key longer than memcached's 250 bytes is no key */
    struct buf line = BUF_INIT;
    buf_append_str(&line, "key=");
    for (int i = 0; i < 251; i++)
        buf_append_char(&line, 'x');
    ck_assert_int_lt(keyscan_parse_line(line.data, line.len, &b), 0);
    buf_fini(&line);
    buf_fini(&b);
}
END_TEST


/* purgematch_run through a memcached client made for cfg, as the PURGE
 * endpoint and memfillctl do. */
static int run(const struct config *cfg, struct purgematch *m, struct purgematch_report *r)
{
    struct mcclient *mc = mcclient_new(cfg);
    int complete = purgematch_run(mc, m, r);
    mcclient_free(mc);
    return complete;
}

static struct purgematch *matcher(enum purgematch_kind k, const char *p, int bk)
{
    struct err e;
    err_clear(&e);
    struct purgematch *m = purgematch_new(k, p, strlen(p), bk, &e);
    ck_assert_msg(m != NULL, "%s: %s", p, e.text);
    return m;
}

START_TEST(matcher_prefix_and_regex)
{
    struct purgematch *m = matcher(PURGEMATCH_PREFIX, "/treks/", 0);
    ck_assert_int_eq(purgematch_test(m, "/treks/a b", 10), 1);
    ck_assert_int_eq(purgematch_test(m, "/treks", 6), 0);
    ck_assert_int_eq(purgematch_test(m, "/treks2/", 8), 0);
    purgematch_free(m);
    m = matcher(PURGEMATCH_PREFIX, "memfill:", 0);
    ck_assert_int_eq(purgematch_test(m, "memfill:tag:x", 13), 0); /* bookkeeping */
    purgematch_free(m);
    m = matcher(PURGEMATCH_PREFIX, "memfill:", 1);
    ck_assert_int_eq(purgematch_test(m, "memfill:tag:x", 13), 1);
    purgematch_free(m);
    /* byte mode: '.' is one byte, and bytes that are not UTF-8 just match */
    m = matcher(PURGEMATCH_REGEX, "^/caf.\\xa9$", 0);
    ck_assert_int_eq(purgematch_test(m, "/caf\xc3\xa9", 6), 1);
    ck_assert_int_eq(purgematch_test(m, "/caf\xff\xa9", 6), 1);
    ck_assert_int_eq(purgematch_test(m, "/cafe", 5), 0);
    ck_assert_int_eq(purgematch_test(m, "memfill:/caf\xc3\xa9", 14), 0);
    purgematch_free(m);
    /* a pattern that backtracks without end is undecided, not a match */
    m = matcher(PURGEMATCH_REGEX, "^(a|aa)+$", 0);
    char many[201];
    memset(many, 'a', 199);
    many[199] = 'b';
    many[200] = '\0';
    ck_assert_int_eq(purgematch_test(m, many, 200), -1);
    purgematch_free(m);
    struct err e;
    err_clear(&e);
    ck_assert_ptr_null(purgematch_new(PURGEMATCH_PREFIX, "", 0, 0, &e));
    ck_assert_ptr_nonnull(strstr(e.text, "empty"));
    err_clear(&e);
    ck_assert_ptr_null(purgematch_new(PURGEMATCH_REGEX, "(", 1, 0, &e));
    ck_assert_ptr_nonnull(strstr(e.text, "regex"));
    char longp[PURGEMATCH_PREFIX_MAX + 2];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    err_clear(&e);
    ck_assert_ptr_null(purgematch_new(PURGEMATCH_PREFIX, longp, strlen(longp), 0, &e));
}
END_TEST

/* ---- real ---- */

#define NKEYS 100000
#define NGROUPS 5

static pid_t mc_pid[2] = {-1, -1};
static int mc_port[2];

static void real_start(void)
{
    for (int i = 0; i < 2; i++)
        mc_pid[i] = tu_memcached_start(&mc_port[i]);
}

static void real_stop(void)
{
    for (int i = 0; i < 2; i++)
        tu_stop_pid(&mc_pid[i]);
}

/* Raw key number i: five groups, with odd bytes in each. */
static void raw_key(size_t i, struct buf *out)
{
    switch (i % NGROUPS) {
    case 0: buf_printf(out, "/treks/caf\xc3\xa9 %zu", i); break;          /* the purged prefix */
    case 1: buf_printf(out, "/treks/%%41 50%%/\x01%zu", i); break;        /* same prefix, % and ^A */
    case 2: buf_printf(out, "/treks2/%zu", i); break;                      /* a longer neighbour */
    case 3: buf_printf(out, "/news/a\tb/%zu", i); break;                   /* the regex group */
    default: buf_printf(out, "/Treks/%zu", i); break;                      /* another case */
    }
}

static struct config *cfg_for(const char *servers)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"memcached\": {\"servers\": [%s], \"timeout_ms\": 400, "
             "\"connect_timeout_ms\": 200}}",
             servers);
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load_string(json, strlen(json), "test", NULL,
                                            CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    return cfg;
}

static struct config *cfg_real(void)
{
    ck_assert_msg(mc_pid[0] > 0 && mc_pid[1] > 0, "memcached did not start");
    char s[128];
    snprintf(s, sizeof s, "\"127.0.0.1:%d\", \"127.0.0.1:%d\"", mc_port[0], mc_port[1]);
    return cfg_for(s);
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const struct buf *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
}

/* Reads until the reply ends with end (a complete reply to what was sent). */
static void read_until(int fd, const char *end, struct buf *in)
{
    size_t el = strlen(end);
    char chunk[65536];
    while (in->len < el || memcmp(in->data + in->len - el, end, el) != 0) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        ck_assert_msg(n > 0, "memcached did not answer");
        buf_append(in, chunk, (size_t)n);
    }
}

/* Stores the NKEYS keys plus bookkeeping on the nodes nginx would read
 * them from (pipelined sets, one "mn" to know all are done). */
static void fill(const struct config *cfg)
{
    struct buf cmds[2] = {BUF_INIT, BUF_INIT}, raw = BUF_INIT, esc = BUF_INIT;
    for (size_t i = 0; i < NKEYS; i++) {
        buf_reset(&raw, 1024);
        buf_reset(&esc, 1024);
        raw_key(i, &raw);
        int node;
        ck_assert_int_eq(keyloc_find(cfg->nodes, raw.data, raw.len, &esc, &node), KEYLOC_OK);
        buf_printf(&cmds[node], "set %s 0 0 1 noreply\r\nx\r\n", esc.data);
    }
    for (int n = 0; n < 2; n++) {
        buf_append_str(&cmds[n], "set memfill:tag:treks 0 0 1 noreply\r\nx\r\nmn\r\n");
        int fd = connect_port(mc_port[n]);
        send_all(fd, &cmds[n]);
        struct buf in = BUF_INIT;
        read_until(fd, "MN\r\n", &in);
        ck_assert_str_eq(in.data, "MN\r\n"); /* no set failed */
        buf_fini(&in);
        close(fd);
        buf_fini(&cmds[n]);
    }
    buf_fini(&raw);
    buf_fini(&esc);
}

/* Counts, per group, the keys still in memcached on their node. */
static void count_left(const struct config *cfg, size_t left[NGROUPS], int *bookkeeping)
{
    memset(left, 0, NGROUPS * sizeof *left);
    struct buf raw = BUF_INIT, esc = BUF_INIT;
    for (size_t g = 0; g < NGROUPS; g++) {
        struct buf cmds[2] = {BUF_INIT, BUF_INIT};
        size_t batch[2] = {0, 0};
        for (size_t i = g; i < NKEYS; i += NGROUPS) {
            buf_reset(&raw, 1024);
            buf_reset(&esc, 1024);
            raw_key(i, &raw);
            int node;
            keyloc_find(cfg->nodes, raw.data, raw.len, &esc, &node);
            if (batch[node] == 0)
                buf_append_str(&cmds[node], "get");
            buf_printf(&cmds[node], " %s", esc.data);
            if (++batch[node] == 100) {
                buf_append_str(&cmds[node], "\r\n");
                batch[node] = 0;
            }
        }
        for (int n = 0; n < 2; n++) {
            if (batch[n])
                buf_append_str(&cmds[n], "\r\n");
            buf_append_str(&cmds[n], "mn\r\n");
            int fd = connect_port(mc_port[n]);
            send_all(fd, &cmds[n]);
            struct buf in = BUF_INIT;
            read_until(fd, "MN\r\n", &in);
            for (char *p = in.data; (p = strstr(p, "VALUE ")); p += 6)
                left[g]++;
            buf_fini(&in);
            close(fd);
            buf_fini(&cmds[n]);
        }
    }
    *bookkeeping = 0;
    for (int n = 0; n < 2; n++) {
        int fd = connect_port(mc_port[n]);
        struct buf q = BUF_INIT, in = BUF_INIT;
        buf_append_str(&q, "get memfill:tag:treks\r\n");
        send_all(fd, &q);
        read_until(fd, "END\r\n", &in);
        *bookkeeping += strstr(in.data, "VALUE ") != NULL;
        close(fd);
        buf_fini(&q);
        buf_fini(&in);
    }
    buf_fini(&raw);
    buf_fini(&esc);
}

START_TEST(purge_prefix_and_regex_at_100k)
{
    struct config *cfg = cfg_real();
    fill(cfg);
    size_t left[NGROUPS];
    int bk;
    count_left(cfg, left, &bk);
    for (int g = 0; g < NGROUPS; g++)
        ck_assert_uint_eq(left[g], NKEYS / NGROUPS);
    ck_assert_int_eq(bk, 2);

    struct purgematch *m = matcher(PURGEMATCH_PREFIX, "/treks/", 0);
    struct purgematch_report r;
    uint64_t t0 = util_now_ms();
    ck_assert_int_eq(run(cfg, m, &r), 1);
    uint64_t ms = util_now_ms() - t0;
    fprintf(stderr, "prefix purge: %llu of %llu keys in %llu ms\n",
            (unsigned long long)r.purged, (unsigned long long)r.scanned, (unsigned long long)ms);
    ck_assert_uint_eq(r.purged, 2 * NKEYS / NGROUPS);
    ck_assert_uint_eq(r.matched, 2 * NKEYS / NGROUPS);
    ck_assert_uint_eq(r.scanned, NKEYS + 2);
    ck_assert_uint_eq(r.failed, 0);
    ck_assert_uint_gt(r.nodes[0].purged, 0); /* both nodes held some */
    ck_assert_uint_gt(r.nodes[1].purged, 0);
    purgematch_report_fini(&r);
    purgematch_free(m);
    count_left(cfg, left, &bk);
    ck_assert_uint_eq(left[0], 0);
    ck_assert_uint_eq(left[1], 0);
    for (int g = 2; g < NGROUPS; g++)
        ck_assert_uint_eq(left[g], NKEYS / NGROUPS);
    ck_assert_int_eq(bk, 2); /* bookkeeping left alone */

    /* regex: the tab group's keys ending in 3 (half of i = 3 mod 5) */
    m = matcher(PURGEMATCH_REGEX, "^/news/a\tb/[0-9]*3$", 0);
    ck_assert_int_eq(run(cfg, m, &r), 1);
    ck_assert_uint_eq(r.purged, NKEYS / NGROUPS / 2);
    purgematch_report_fini(&r);
    purgematch_free(m);
    count_left(cfg, left, &bk);
    ck_assert_uint_eq(left[2], NKEYS / NGROUPS);
    ck_assert_uint_eq(left[3], NKEYS / NGROUPS / 2);
    ck_assert_uint_eq(left[4], NKEYS / NGROUPS);
    ck_assert_int_eq(bk, 2);
    config_free(cfg);
}
END_TEST

START_TEST(node_down_makes_it_partial)
{
    ck_assert_msg(mc_pid[0] > 0, "memcached did not start");
    /* a port where every connection is refused, and one that accepts into
     * its backlog and never answers */
    int refused_port, silent_port;
    int rfd = tu_bind_free_port(&refused_port, 0);
    int sfd = tu_bind_free_port(&silent_port, 1);
    ck_assert_int_ge(rfd, 0);
    ck_assert_int_ge(sfd, 0);
    char s[192];
    snprintf(s, sizeof s, "\"127.0.0.1:%d\", \"127.0.0.1:%d\", \"127.0.0.1:%d\"", mc_port[0],
             refused_port, silent_port);
    struct config *cfg = cfg_for(s);
    struct buf cmd = BUF_INIT, in = BUF_INIT;
    buf_append_str(&cmd, "set /gone/1 0 0 1\r\nx\r\n");
    int fd = connect_port(mc_port[0]);
    send_all(fd, &cmd);
    read_until(fd, "\r\n", &in);
    close(fd);

    struct purgematch *m = matcher(PURGEMATCH_PREFIX, "/gone/", 0);
    struct purgematch_report r;
    uint64_t t0 = util_now_ms();
    ck_assert_int_eq(run(cfg, m, &r), 0);
    uint64_t ms = util_now_ms() - t0;
    /* 3 tries of 400 ms on the silent node plus 300 ms between them */
    ck_assert_msg(ms < 4000, "partial purge took %llu ms", (unsigned long long)ms);
    ck_assert_uint_eq(r.failed, 2);
    ck_assert_uint_eq(r.purged, 1); /* the node that answers is purged */
    ck_assert_int_eq(r.nodes[0].failed, 0);
    ck_assert_int_eq(r.nodes[1].failed, 1);
    ck_assert_int_eq(r.nodes[2].failed, 1);
    ck_assert_uint_eq(r.nodes[1].attempts, PURGEMATCH_ATTEMPTS);
    ck_assert_ptr_nonnull(strstr(r.nodes[2].error, "timed out"));
    struct buf json = BUF_INIT;
    purgematch_report_json(&r, &json);
    char want[128];
    snprintf(want, sizeof want, "\"failed_nodes\":[\"127.0.0.1:%d\",\"127.0.0.1:%d\"]",
             refused_port, silent_port);
    ck_assert_msg(strstr(json.data, want) != NULL, "%s", json.data);
    ck_assert_ptr_nonnull(strstr(json.data, "\"complete\":false"));
    buf_fini(&json);
    purgematch_report_fini(&r);
    purgematch_free(m);
    config_free(cfg);
    close(rfd);
    close(sfd);
    buf_fini(&cmd);
    buf_fini(&in);
}
END_TEST

static Suite *keyscan_suite(void)
{
    Suite *s = suite_create("keyscan");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, parse_metadump_lines);
    tcase_add_test(tc, matcher_prefix_and_regex);
    suite_add_tcase(s, tc);
    tc = tcase_create("real");
    tcase_add_unchecked_fixture(tc, real_start, real_stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, purge_prefix_and_regex_at_100k);
    tcase_add_test(tc, node_down_makes_it_partial);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int skip = tu_binary_missing("memcached");
    if (skip)
        return skip;
    SRunner *sr = srunner_create(keyscan_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
