/* check_mcclient.c - the memcached writer against a real memcached and
 * against fake nodes that misbehave on purpose.
 *
 * "real": two memcached processes (TCP on 127.0.0.1, and a unix socket),
 * started by an unchecked fixture on a port picked below the ephemeral
 * range and stopped by pid in the teardown; they die with this program
 * too (PR_SET_PDEATHSIG). set, add, append, delete, get, flags, a 30-day+
 * expiry, keys memcached would misread, the item limit learned on the
 * first connection and the value above it refused without sending, the
 * node's own "too large", the address forms.
 *
 * "fake": a forked server per test (one process per connection) that logs
 * what it receives in shared memory and answers by a script: one byte
 * every 100 ms, never, late, twice, an endless line, a value of 4 GB, the
 * wrong key, a hang-up. Each operation must end within timeout_ms (plus
 * scheduling slack), and a reply that arrives after its deadline must
 * never be read as the answer to the next command.
 *
 * Without memcached the program exits 77 (skip), or fails when
 * MEMFILL_NO_SKIP=1. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/mcclient.h"
#include "memfill/util.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLACK_MS 250 /* scheduling slack on a loaded machine */

/* ---- real memcached ---- */

static pid_t mc_pid = -1, mcu_pid = -1;
static int mc_port;
static char mc_unix[108];

static void real_start(void)
{
    mc_pid = tu_memcached_start(&mc_port);
    const char *tmp = getenv("TMPDIR");
    snprintf(mc_unix, sizeof mc_unix, "%s/check_mcclient.%ld.sock", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    unlink(mc_unix);
    mcu_pid = tu_memcached_start_unix(mc_unix);
}

static void real_stop(void)
{
    tu_stop_pid(&mc_pid);
    tu_stop_pid(&mcu_pid);
    unlink(mc_unix);
}

/* ---- a writer for one node ---- */

static struct config *cfg;
static struct mcclient *w;

static void writer_open(const char *address, unsigned timeout_ms, unsigned long max_item)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"memcached\": {\"servers\": [\"%s\"], \"timeout_ms\": %u, "
             "\"connect_timeout_ms\": 200}, \"cache\": {\"max_item\": %lu}}",
             address, timeout_ms, max_item);
    struct err e;
    err_clear(&e);
    cfg = config_load_string(json, strlen(json), "test", NULL, CONFIG_ALLOW_NO_ROUTES, &e);
    ck_assert_msg(cfg != NULL, "config: %s", e.text);
    w = mcclient_new(cfg);
}

static void writer_open_real(unsigned long max_item)
{
    ck_assert_msg(mc_pid > 0, "memcached did not start");
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", mc_port);
    writer_open(a, 1000, max_item);
}

static void writer_close(void)
{
    mcclient_free(w);
    config_free(cfg);
    w = NULL;
    cfg = NULL;
}

/* Gets key; asserts the result and, for MCC_OK, the value and flags. */
static void expect_get(const char *key, enum mcc_result want, const char *value, uint32_t flags)
{
    char *v = NULL;
    size_t vlen = 0;
    uint32_t f = 12345;
    enum mcc_result r = mcclient_get(w, 0, key, strlen(key), &v, &vlen, &f);
    ck_assert_msg(r == want, "get %s: %s, expected %s", key, mcclient_result_name(r),
                  mcclient_result_name(want));
    if (want == MCC_OK) {
        ck_assert_uint_eq(vlen, strlen(value));
        ck_assert_mem_eq(v, value, vlen);
        ck_assert_int_eq(v[vlen], '\0');
        ck_assert_uint_eq(f, flags);
    } else {
        ck_assert_ptr_null(v);
    }
    free(v);
}

static enum mcc_result set_str(const char *key, const char *value, uint32_t flags,
                               unsigned exptime)
{
    return mcclient_set(w, 0, key, strlen(key), value, strlen(value), flags, exptime);
}

/* A key unique to this test process, so tests never see each other's items. */
static const char *ukey(const char *name)
{
    static char k[8][96];
    static int next;
    char *p = k[next++ % 8];
    snprintf(p, sizeof k[0], "check_mcclient/%ld/%s", (long)getpid(), name);
    return p;
}

START_TEST(test_set_get_flags)
{
    writer_open_real(0);
    const char *k = ukey("a");
    expect_get(k, MCC_NOT_STORED, NULL, 0);
    ck_assert_int_eq(set_str(k, "hello", 0, 300), MCC_OK);
    expect_get(k, MCC_OK, "hello", 0);
    ck_assert_int_eq(set_str(k, "again", 0xfeedbeefu, 300), MCC_OK);
    expect_get(k, MCC_OK, "again", 0xfeedbeefu);
    ck_assert_int_eq(set_str(k, "", 0, 0), MCC_OK);
    expect_get(k, MCC_OK, "", 0);
    /* beyond 30 days memcached wants an absolute time: still readable */
    ck_assert_int_eq(set_str(k, "long", 0, 40u * 86400u), MCC_OK);
    expect_get(k, MCC_OK, "long", 0);
    writer_close();
}
END_TEST

START_TEST(test_add_append_delete)
{
    writer_open_real(0);
    const char *k = ukey("b");
    ck_assert_int_eq(mcclient_append(w, 0, k, strlen(k), "x", 1), MCC_NOT_STORED);
    ck_assert_int_eq(mcclient_add(w, 0, k, strlen(k), "one", 3, 7, 300), MCC_OK);
    ck_assert_int_eq(mcclient_add(w, 0, k, strlen(k), "two", 3, 0, 300), MCC_NOT_STORED);
    ck_assert_int_eq(mcclient_append(w, 0, k, strlen(k), " more", 5), MCC_OK);
    expect_get(k, MCC_OK, "one more", 7);
    ck_assert_int_eq(mcclient_delete(w, 0, k, strlen(k)), MCC_OK);
    ck_assert_int_eq(mcclient_delete(w, 0, k, strlen(k)), MCC_NOT_STORED);
    expect_get(k, MCC_NOT_STORED, NULL, 0);
    writer_close();
}
END_TEST

START_TEST(test_large_value)
{
    writer_open_real(0);
    const char *k = ukey("large");
    size_t n = 900 * 1024;
    char *v = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i * 131 % 251); /* every byte value but a few, "\r\n" included */
    v[n] = '\0';
    ck_assert_int_eq(mcclient_set(w, 0, k, strlen(k), v, n, 0, 300), MCC_OK);
    char *got = NULL;
    size_t glen = 0;
    ck_assert_int_eq(mcclient_get(w, 0, k, strlen(k), &got, &glen, NULL), MCC_OK);
    ck_assert_uint_eq(glen, n);
    ck_assert(memcmp(got, v, n) == 0);
    free(got);
    free(v);
    writer_close();
}
END_TEST

START_TEST(test_bad_keys)
{
    writer_open_real(0);
    static const char *const bad[] = {"", "with space", "cr\rlf", "nl\nx", "tab\tx",
                                      "nul\x01", "a\r\nflush_all"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t kl = strlen(bad[i]);
        ck_assert_int_eq(mcclient_set(w, 0, bad[i], kl, "v", 1, 0, 0), MCC_BAD_KEY);
        ck_assert_int_eq(mcclient_add(w, 0, bad[i], kl, "v", 1, 0, 0), MCC_BAD_KEY);
        ck_assert_int_eq(mcclient_append(w, 0, bad[i], kl, "v", 1), MCC_BAD_KEY);
        ck_assert_int_eq(mcclient_delete(w, 0, bad[i], kl), MCC_BAD_KEY);
        char *v;
        size_t vl;
        ck_assert_int_eq(mcclient_get(w, 0, bad[i], kl, &v, &vl, NULL), MCC_BAD_KEY);
    }
    char k[252];
    memset(k, 'k', sizeof k);
    ck_assert_int_eq(mcclient_set(w, 0, k, 251, "v", 1, 0, 300), MCC_BAD_KEY);
    ck_assert_int_eq(mcclient_set(w, 0, k, 250, "v", 1, 0, 300), MCC_OK);
    /* UTF-8 bytes and DEL are fine in memcached keys (nginx leaves them
     * unescaped) */
    const char *u = ukey("caf\xc3\xa9\x7f");
    ck_assert_int_eq(set_str(u, "v", 0, 300), MCC_OK);
    expect_get(u, MCC_OK, "v", 0);
    /* a node index out of range is a connection failure, not a crash */
    ck_assert_int_eq(mcclient_set(w, 5, "k", 1, "v", 1, 0, 0), MCC_CONNECTION);
    writer_close();
}
END_TEST

START_TEST(test_item_limit)
{
    writer_open_real(0);
    const char *k = ukey("limit");
    size_t kl = strlen(k);
    /* not known before the first connection, and asking never connects */
    ck_assert_uint_eq(mcclient_item_limit(w, 0, kl, 0), 0);
    ck_assert_uint_eq(mcclient_item_limit(w, 0, kl, 0), 0);
    /* learned with the first operation: memcached's default 1 MiB */
    expect_get(k, MCC_NOT_STORED, NULL, 0);
    size_t limit = mcclient_item_limit(w, 0, kl, 0);
    ck_assert_uint_eq(limit, 1048576u - 59u - kl);
    ck_assert_uint_eq(mcclient_item_limit(w, 0, kl, 7), limit - 4);
    ck_assert_uint_eq(mcclient_item_limit(w, 1, kl, 0), 0);
    char *v = xcalloc(1, limit + 2);
    memset(v, 'v', limit + 1);
    /* above the limit: refused here, nothing sent */
    ck_assert_int_eq(mcclient_set(w, 0, k, kl, v, limit + 1, 0, 300), MCC_TOO_LARGE);
    ck_assert_int_eq(mcclient_add(w, 0, k, kl, v, limit + 1, 0, 300), MCC_TOO_LARGE);
    expect_get(k, MCC_NOT_STORED, NULL, 0);
    /* at the limit: memcached takes it */
    ck_assert_int_eq(mcclient_set(w, 0, k, kl, v, limit, 0, 300), MCC_OK);
    free(v);
    writer_close();

    /* cache.max_item replaces the node's figure */
    writer_open_real(1000);
    ck_assert_uint_eq(mcclient_item_limit(w, 0, kl, 0), 1000u - 59u - kl);
    writer_close();
}
END_TEST

START_TEST(test_node_refuses_size)
{
    /* max_item above the node's real limit: the node refuses, the writer
     * says too large, and the next command works on a new connection */
    writer_open_real(4u << 20);
    const char *k = ukey("refused");
    size_t n = 2u << 20;
    char *v = xcalloc(1, n);
    ck_assert_int_eq(mcclient_set(w, 0, k, strlen(k), v, n, 0, 300), MCC_TOO_LARGE);
    free(v);
    ck_assert_int_eq(set_str(k, "small", 0, 300), MCC_OK);
    expect_get(k, MCC_OK, "small", 0);
    writer_close();
}
END_TEST

START_TEST(test_address_forms)
{
    ck_assert_msg(mc_pid > 0 && mcu_pid > 0, "memcached did not start");
    char a[160];
    snprintf(a, sizeof a, "localhost:%d", mc_port);
    writer_open(a, 1000, 0);
    const char *k = ukey("forms");
    ck_assert_int_eq(set_str(k, "by name", 0, 300), MCC_OK);
    expect_get(k, MCC_OK, "by name", 0);
    writer_close();
    snprintf(a, sizeof a, "unix:%s", mc_unix);
    writer_open(a, 1000, 0);
    ck_assert_int_eq(set_str(k, "by socket", 0, 300), MCC_OK);
    expect_get(k, MCC_OK, "by socket", 0);
    ck_assert_uint_gt(mcclient_item_limit(w, 0, 1, 0), 0);
    writer_close();
    /* nothing listens: a connection failure, at once */
    int port;
    int fd = tu_bind_free_port(&port, 0);
    ck_assert_int_ge(fd, 0);
    snprintf(a, sizeof a, "127.0.0.1:%d", port);
    writer_open(a, 1000, 0);
    uint64_t t0 = util_now_ms();
    ck_assert_int_eq(set_str(k, "v", 0, 0), MCC_CONNECTION);
    ck_assert_uint_lt(util_now_ms() - t0, 1000);
    writer_close();
    close(fd);
    writer_open("unix:/nonexistent/memcached.sock", 1000, 0);
    ck_assert_int_eq(set_str(k, "v", 0, 0), MCC_CONNECTION);
    writer_close();
}
END_TEST

/* ---- fake nodes ---- */

enum fake_mode {
    FAKE_DRIP,       /* memcached's replies, one byte every 100 ms */
    FAKE_SILENT,     /* reads, never answers */
    FAKE_LATE,       /* first connection: a get answered after 600 ms */
    FAKE_EXTRA,      /* every reply twice */
    FAKE_LONG_LINE,  /* an endless reply line */
    FAKE_HUGE_VALUE, /* a value of 4 000 000 000 bytes announced */
    FAKE_WRONG_KEY,  /* a value for another key */
    FAKE_HANG_UP,    /* closes every connection at once */
    FAKE_ONE_EACH,   /* answers one command per connection, then closes */
    FAKE_NO_SETTINGS /* ERROR to `stats settings`, one command per connection */
};

struct fake_log {
    int connections;
    int commands;
    int settings;
    char last[256]; /* the last command line */
};

static pid_t fake_pid = -1;
static int fake_port;
static struct fake_log *fake_log;

static void put(int c, const char *s, int drip)
{
    size_t n = strlen(s);
    if (!drip) {
        (void)!write(c, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        usleep(100000);
        if (write(c, s + i, 1) != 1)
            _exit(0);
    }
}

/* The reply memcached would give to line. */
static void normal_reply(char *out, size_t cap, const char *line)
{
    if (strncmp(line, "set ", 4) == 0 || strncmp(line, "add ", 4) == 0 ||
        strncmp(line, "append ", 7) == 0)
        snprintf(out, cap, "STORED\r\n");
    else if (strncmp(line, "delete ", 7) == 0)
        snprintf(out, cap, "DELETED\r\n");
    else if (strcmp(line, "stats settings") == 0)
        snprintf(out, cap, "STAT maxbytes 67108864\r\nSTAT item_size_max 1048576\r\nEND\r\n");
    else
        snprintf(out, cap, "END\r\n");
}

static void fake_serve(int c, enum fake_mode mode, int conn_no)
{
    if (mode == FAKE_HANG_UP)
        return;
    char in[8192];
    size_t len = 0;
    for (int cmd_no = 1;; cmd_no++) {
        char *nl;
        while (!(nl = memchr(in, '\n', len))) {
            if (len == sizeof in)
                return;
            ssize_t n = read(c, in + len, sizeof in - len);
            if (n <= 0)
                return;
            len += (size_t)n;
        }
        char line[256];
        size_t ll = (size_t)(nl - in) - (nl > in && nl[-1] == '\r');
        snprintf(line, sizeof line, "%.*s", (int)ll, in);
        size_t used = (size_t)(nl - in) + 1;
        memmove(in, in + used, len - used);
        len -= used;
        char verb[16];
        unsigned long long bytes = 0;
        if (sscanf(line, "%15s %*s %*u %*d %llu", verb, &bytes) == 2 &&
            (!strcmp(verb, "set") || !strcmp(verb, "add") || !strcmp(verb, "append"))) {
            unsigned long long skip = bytes + 2; /* the data block, thrown away */
            while (skip) {
                if (!len) {
                    ssize_t n = read(c, in, sizeof in);
                    if (n <= 0)
                        return;
                    len = (size_t)n;
                }
                size_t k = skip < len ? (size_t)skip : len;
                memmove(in, in + k, len - k);
                len -= k;
                skip -= k;
            }
        }
        __sync_fetch_and_add(&fake_log->commands, 1);
        snprintf(fake_log->last, sizeof fake_log->last, "%s", line);
        int settings = strcmp(line, "stats settings") == 0;
        if (settings)
            __sync_fetch_and_add(&fake_log->settings, 1);
        char reply[512];
        normal_reply(reply, sizeof reply, line);
        const char *key = strchr(line, ' ') ? strchr(line, ' ') + 1 : "";
        switch (mode) {
        case FAKE_DRIP:
            put(c, reply, 1);
            break;
        case FAKE_SILENT:
            break;
        case FAKE_LATE:
            if (conn_no == 1 && cmd_no == 1) {
                usleep(600000);
                snprintf(reply, sizeof reply, "VALUE %s 0 4\r\nLATE\r\nEND\r\n", key);
            }
            put(c, reply, 0);
            break;
        case FAKE_EXTRA:
            put(c, reply, 0);
            put(c, reply, 0);
            break;
        case FAKE_LONG_LINE:
            for (int i = 0; i < 64; i++)
                put(c, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0);
            pause();
            break;
        case FAKE_HUGE_VALUE:
            if (!settings)
                snprintf(reply, sizeof reply, "VALUE %s 0 4000000000\r\n", key);
            put(c, reply, 0);
            break;
        case FAKE_WRONG_KEY:
            if (!settings)
                snprintf(reply, sizeof reply, "VALUE other 0 1\r\nx\r\nEND\r\n");
            put(c, reply, 0);
            break;
        case FAKE_NO_SETTINGS:
            if (settings) {
                put(c, "ERROR\r\n", 0);
                break;
            }
            put(c, reply, 0);
            return;
        case FAKE_ONE_EACH:
            put(c, reply, 0);
            if (!settings)
                return;
            break;
        default:
            return;
        }
    }
}

static void fake_start(enum fake_mode mode)
{
    fake_log = mmap(NULL, sizeof *fake_log, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    ck_assert(fake_log != MAP_FAILED);
    memset(fake_log, 0, sizeof *fake_log);
    srand((unsigned)(getpid() ^ time(NULL)));
    int fd = tu_bind_free_port(&fake_port, 1);
    ck_assert_int_ge(fd, 0);
    pid_t parent = getpid();
    fake_pid = fork();
    ck_assert_int_ge(fake_pid, 0);
    if (fake_pid == 0) {
        tu_die_with_parent(parent);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGCHLD, SIG_IGN); /* connection processes reap themselves */
        pid_t me = getpid();
        for (int conn_no = 1;; conn_no++) {
            int c = accept(fd, NULL, NULL);
            if (c < 0) {
                if (errno == EINTR)
                    continue;
                _exit(1);
            }
            __sync_fetch_and_add(&fake_log->connections, 1);
            if (fork() == 0) {
                tu_die_with_parent(me);
                close(fd);
                fake_serve(c, mode, conn_no);
                _exit(0);
            }
            close(c);
        }
    }
    close(fd);
}

static void fake_stop(void)
{
    tu_stop_pid(&fake_pid);
    if (fake_log && fake_log != MAP_FAILED)
        munmap(fake_log, sizeof *fake_log);
    fake_log = NULL;
}

static void writer_open_fake(unsigned timeout_ms, unsigned long max_item)
{
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", fake_port);
    writer_open(a, timeout_ms, max_item);
}

/* Runs a set of "v" under key; asserts its result and that it ended
 * within timeout_ms plus slack; returns the milliseconds it took. */
static uint64_t timed_set(const char *key, enum mcc_result want, unsigned timeout_ms)
{
    uint64_t t0 = util_now_ms();
    enum mcc_result r = set_str(key, "v", 0, 0);
    uint64_t took = util_now_ms() - t0;
    ck_assert_msg(r == want, "set %s: %s, expected %s", key, mcclient_result_name(r),
                  mcclient_result_name(want));
    ck_assert_msg(took <= timeout_ms + SLACK_MS, "set took %llu ms, timeout_ms %u",
                  (unsigned long long)took, timeout_ms);
    return took;
}

START_TEST(test_drip_bounded)
{
    /* "STORED\r\n" at 100 ms a byte takes 800 ms: each byte well inside
     * any per-read timeout, the whole reply not inside 300 ms */
    fake_start(FAKE_DRIP);
    writer_open_fake(300, 1048576);
    uint64_t took = timed_set("k1", MCC_TIMEOUT, 300);
    ck_assert_uint_ge(took, 280);
    ck_assert_str_eq(fake_log->last, "set k1 0 0 1");
    timed_set("k2", MCC_TIMEOUT, 300);
    ck_assert_int_eq(fake_log->connections, 2); /* reset after the timeout */
    writer_close();
    /* without cache.max_item the settings query shares the same deadline */
    writer_open_fake(300, 0);
    timed_set("k3", MCC_TIMEOUT, 300);
    ck_assert_str_eq(fake_log->last, "stats settings");
    char *v;
    size_t vl;
    uint64_t t0 = util_now_ms();
    ck_assert_int_eq(mcclient_get(w, 0, "k3", 2, &v, &vl, NULL), MCC_TIMEOUT);
    ck_assert_uint_le(util_now_ms() - t0, 300 + SLACK_MS);
    writer_close();
    fake_stop();
}
END_TEST

START_TEST(test_silent_one_timeout)
{
    fake_start(FAKE_SILENT);
    writer_open_fake(400, 0);
    for (int i = 0; i < 3; i++) {
        uint64_t took = timed_set("k", MCC_TIMEOUT, 400);
        ck_assert_uint_ge(took, 380);
        /* one timeout per store, not one for the item-limit query and one
         * for the set: the query runs inside the store's deadline */
        ck_assert_uint_lt(took, 400 + 400 / 2);
        ck_assert_uint_eq(mcclient_item_limit(w, 0, 1, 0), 0);
    }
    ck_assert_int_eq(fake_log->connections, 3);
    ck_assert_int_eq(fake_log->settings, 3);
    writer_close();
    fake_stop();
}
END_TEST

START_TEST(test_late_reply_not_reused)
{
    fake_start(FAKE_LATE);
    writer_open_fake(300, 1048576);
    char *v = NULL;
    size_t vl;
    ck_assert_int_eq(mcclient_get(w, 0, "a", 1, &v, &vl, NULL), MCC_TIMEOUT);
    /* the late "VALUE a ... LATE" must not be taken as the answer */
    ck_assert_int_eq(mcclient_get(w, 0, "a", 1, &v, &vl, NULL), MCC_NOT_STORED);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(fake_log->connections, 2);
    writer_close();
    fake_stop();
}
END_TEST

START_TEST(test_extra_reply_resets)
{
    fake_start(FAKE_EXTRA);
    writer_open_fake(500, 1048576);
    ck_assert_int_eq(set_str("k", "v", 0, 0), MCC_OK);
    usleep(50000); /* the second copy is there by now */
    ck_assert_int_eq(set_str("k", "v", 0, 0), MCC_OK);
    /* bytes nobody asked for: the second set went over a new connection */
    ck_assert_int_eq(fake_log->connections, 2);
    writer_close();
    fake_stop();
}
END_TEST

START_TEST(test_bad_replies)
{
    static const enum fake_mode modes[] = {FAKE_LONG_LINE, FAKE_HUGE_VALUE, FAKE_WRONG_KEY};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        fake_start(modes[i]);
        writer_open_fake(1000, 0);
        char *v = NULL;
        size_t vl = 0;
        uint64_t t0 = util_now_ms();
        enum mcc_result r = mcclient_get(w, 0, "key", 3, &v, &vl, NULL);
        ck_assert_msg(r == MCC_SERVER_ERROR, "mode %zu: %s", i, mcclient_result_name(r));
        ck_assert_ptr_null(v);
        /* refused on sight, not after the timeout */
        ck_assert_uint_lt(util_now_ms() - t0, 1000);
        writer_close();
        fake_stop();
    }
}
END_TEST

START_TEST(test_hang_up)
{
    fake_start(FAKE_HANG_UP);
    writer_open_fake(1000, 0);
    uint64_t t0 = util_now_ms();
    ck_assert_int_eq(set_str("k", "v", 0, 0), MCC_CONNECTION);
    ck_assert_uint_lt(util_now_ms() - t0, 1000);
    writer_close();
    fake_stop();
}
END_TEST

START_TEST(test_closed_between_commands)
{
    /* a node that closed an idle connection (restart, idle_timeout): the
     * next command goes over a new one and succeeds */
    fake_start(FAKE_ONE_EACH);
    writer_open_fake(1000, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(set_str("k", "v", 0, 0), MCC_OK);
        usleep(50000); /* the close has arrived */
    }
    ck_assert_int_eq(fake_log->connections, 3);
    ck_assert_int_eq(fake_log->settings, 3); /* once per connection */
    writer_close();
    fake_stop();
}
END_TEST

START_TEST(test_settings_refused)
{
    fake_start(FAKE_NO_SETTINGS);
    writer_open_fake(1000, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(set_str("k", "v", 0, 0), MCC_OK);
        usleep(50000);
    }
    ck_assert_uint_eq(mcclient_item_limit(w, 0, 1, 0), 0);
    ck_assert_int_eq(fake_log->connections, 3);
    ck_assert_int_eq(fake_log->settings, 1); /* not asked again */
    writer_close();
    fake_stop();
}
END_TEST

static Suite *mcclient_suite(void)
{
    Suite *s = suite_create("mcclient");
    TCase *tc = tcase_create("real");
    tcase_add_unchecked_fixture(tc, real_start, real_stop);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_set_get_flags);
    tcase_add_test(tc, test_add_append_delete);
    tcase_add_test(tc, test_large_value);
    tcase_add_test(tc, test_bad_keys);
    tcase_add_test(tc, test_item_limit);
    tcase_add_test(tc, test_node_refuses_size);
    tcase_add_test(tc, test_address_forms);
    suite_add_tcase(s, tc);
    tc = tcase_create("fake");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_drip_bounded);
    tcase_add_test(tc, test_silent_one_timeout);
    tcase_add_test(tc, test_late_reply_not_reused);
    tcase_add_test(tc, test_extra_reply_resets);
    tcase_add_test(tc, test_bad_replies);
    tcase_add_test(tc, test_hang_up);
    tcase_add_test(tc, test_closed_between_commands);
    tcase_add_test(tc, test_settings_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int missing = tu_binary_missing("memcached");
    if (missing)
        return missing;
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(mcclient_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
