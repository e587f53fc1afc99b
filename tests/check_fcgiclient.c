/* check_fcgiclient.c - the FastCGI client's records, its decoder, a live
 * round trip against libfcgi (the library memfill itself serves with), and
 * memfillctl warm's helpers: the params and key of a warm request, the
 * summary line, the options (URL lists, sitemaps and URLs are
 * check_warmlist.c).
 *
 * The byte layouts asserted here are those of the FastCGI 1.0
 * specification (§3.3 records, §3.4 name-value pairs, §5.1 BEGIN_REQUEST);
 * the live test proves libfcgi reads them the same way. */
#include "config.h"

#include "memfill/fcgiclient.h"
#include "memfill/keypattern.h"
#include "memfill/util.h"
#include "memfill/warm.h"

#include <check.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static const unsigned char *ub(const struct buf *b)
{
    return (const unsigned char *)b->data;
}

/* One record read back from an encoded stream. */
struct rec {
    unsigned type, id;
    size_t clen, plen;
    const unsigned char *content;
};

/* Reads the record at *off; fails the test when it is cut short. */
static struct rec read_rec(const struct buf *b, size_t *off)
{
    ck_assert_msg(*off + 8 <= b->len, "record header past the end at %zu", *off);
    const unsigned char *h = ub(b) + *off;
    struct rec r = {h[1], (unsigned)(h[2] << 8 | h[3]), (size_t)(h[4] << 8 | h[5]), h[6], h + 8};
    ck_assert_uint_eq(h[0], 1);
    ck_assert_uint_eq(h[7], 0);
    ck_assert_msg(*off + 8 + r.clen + r.plen <= b->len, "record content past the end");
    for (size_t i = 0; i < r.plen; i++)
        ck_assert_uint_eq(r.content[r.clen + i], 0);
    *off += 8 + r.clen + r.plen;
    return r;
}

/* Reads one name-value length (FastCGI §3.4). */
static size_t read_len(const unsigned char **p)
{
    if (!(**p & 0x80))
        return *(*p)++;
    size_t n = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) |
               ((size_t)(*p)[2] << 8) | (*p)[3];
    *p += 4;
    return n;
}

/* ---- encoding ---- */

START_TEST(test_record_layout)
{
    struct buf b = BUF_INIT;
    fcgiclient_record(&b, FCGICLIENT_STDIN, 0x1234, "hello", 5);
    static const unsigned char want[] = {1, 5, 0x12, 0x34, 0, 5, 3, 0, 'h', 'e', 'l', 'l', 'o',
                                         0, 0, 0};
    ck_assert_uint_eq(b.len, sizeof want);
    ck_assert(memcmp(b.data, want, sizeof want) == 0);
    /* an empty record has no padding; 8 bytes of content need none */
    buf_reset(&b, 0);
    fcgiclient_record(&b, FCGICLIENT_PARAMS, 1, NULL, 0);
    ck_assert_uint_eq(b.len, 8);
    ck_assert_uint_eq(ub(&b)[6], 0);
    buf_reset(&b, 0);
    fcgiclient_record(&b, FCGICLIENT_PARAMS, 1, "12345678", 8);
    ck_assert_uint_eq(b.len, 16);
    /* the largest content: length bytes 0xff 0xff, padding 1 */
    buf_reset(&b, 0);
    char *big = xcalloc(1, FCGICLIENT_MAX_CONTENT);
    fcgiclient_record(&b, FCGICLIENT_STDIN, 1, big, FCGICLIENT_MAX_CONTENT);
    ck_assert_uint_eq(ub(&b)[4], 0xff);
    ck_assert_uint_eq(ub(&b)[5], 0xff);
    ck_assert_uint_eq(ub(&b)[6], 1);
    ck_assert_uint_eq(b.len, 8 + 65535 + 1);
    free(big);
    buf_fini(&b);
}
END_TEST

START_TEST(test_pair_lengths)
{
    static const struct {
        size_t nlen, vlen;
        unsigned char head[8];
        size_t head_len;
        int line;
    } rows[] = {
        {0, 0, {0, 0}, 2, __LINE__},
        {1, 127, {1, 127}, 2, __LINE__},
        {1, 128, {1, 0x80, 0, 0, 128}, 5, __LINE__},
        {128, 1, {0x80, 0, 0, 128, 1}, 5, __LINE__},
        {3, 70000, {3, 0x80, 0x01, 0x11, 0x70}, 5, __LINE__},
        {200, 300, {0x80, 0, 0, 200, 0x80, 0, 1, 44}, 8, __LINE__},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char *name = xmalloc(rows[i].nlen + 1);
        char *value = xmalloc(rows[i].vlen + 1);
        memset(name, 'N', rows[i].nlen);
        memset(value, 'v', rows[i].vlen);
        struct buf b = BUF_INIT;
        fcgiclient_encode_pair(&b, name, rows[i].nlen, value, rows[i].vlen);
        ck_assert_msg(b.len == rows[i].head_len + rows[i].nlen + rows[i].vlen,
                      "row at line %d: length %zu", rows[i].line, b.len);
        ck_assert_msg(memcmp(b.data, rows[i].head, rows[i].head_len) == 0,
                      "row at line %d: length bytes", rows[i].line);
        ck_assert(memcmp(b.data + rows[i].head_len, name, rows[i].nlen) == 0);
        ck_assert(memcmp(b.data + rows[i].head_len + rows[i].nlen, value, rows[i].vlen) == 0);
        buf_fini(&b);
        free(name);
        free(value);
    }
}
END_TEST

START_TEST(test_request_records)
{
    /* A 70000-byte value forces the params stream over two records. */
    size_t biglen = 70000;
    char *big = xmalloc(biglen);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (char)('a' + i % 26);
    struct fcgiclient_param p[] = {
        {"REQUEST_METHOD", 14, "GET", 3},
        {"BIG", 3, big, biglen},
        {"EMPTY", 5, "", 0},
        {"BIN", 3, "a\0b", 3},
    };
    struct buf b = BUF_INIT;
    fcgiclient_encode_request(&b, 7, p, 4);
    size_t off = 0;
    struct rec r = read_rec(&b, &off);
    ck_assert_uint_eq(r.type, FCGICLIENT_BEGIN_REQUEST);
    ck_assert_uint_eq(r.id, 7);
    ck_assert_uint_eq(r.clen, 8);
    static const unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0}; /* responder, no keep-conn */
    ck_assert(memcmp(r.content, begin, 8) == 0);
    struct buf params = BUF_INIT;
    int nparams = 0;
    for (;;) {
        r = read_rec(&b, &off);
        ck_assert_uint_eq(r.id, 7);
        ck_assert_uint_eq(r.type, FCGICLIENT_PARAMS);
        if (r.clen == 0)
            break;
        ck_assert_uint_le(r.clen, FCGICLIENT_MAX_CONTENT);
        buf_append(&params, r.content, r.clen);
        nparams++;
    }
    ck_assert_int_eq(nparams, 2);
    r = read_rec(&b, &off);
    ck_assert_uint_eq(r.type, FCGICLIENT_STDIN);
    ck_assert_uint_eq(r.clen, 0);
    ck_assert_uint_eq(off, b.len);
    /* the joined stream decodes back to the params */
    const unsigned char *q = ub(&params), *end = q + params.len;
    for (size_t i = 0; i < 4; i++) {
        size_t nl = read_len(&q), vl = read_len(&q);
        ck_assert_uint_eq(nl, p[i].name_len);
        ck_assert_uint_eq(vl, p[i].value_len);
        ck_assert(memcmp(q, p[i].name, nl) == 0);
        ck_assert(memcmp(q + nl, p[i].value, vl) == 0);
        q += nl + vl;
    }
    ck_assert(q == end);
    buf_fini(&params);
    buf_fini(&b);
    free(big);
}
END_TEST

/* ---- decoding ---- */

static void server_answer(struct buf *b, uint16_t id, const char *out, const char *err)
{
    size_t n = strlen(out);
    for (size_t off = 0; off < n; off += 5) /* small records, to cross boundaries */
        fcgiclient_record(b, FCGICLIENT_STDOUT, id, out + off, n - off < 5 ? n - off : 5);
    fcgiclient_record(b, FCGICLIENT_STDOUT, id, NULL, 0);
    if (err)
        fcgiclient_record(b, FCGICLIENT_STDERR, id, err, strlen(err));
    static const unsigned char end[8] = {0, 0, 0, 3, 0, 0, 0, 0};
    fcgiclient_record(b, FCGICLIENT_END_REQUEST, id, end, 8);
}

START_TEST(test_decoder_chunks)
{
    const char *out = "Status: 404 Not Found\r\nX-Memfill-Store: skip_status\r\n\r\nnot here\n";
    struct buf b = BUF_INIT;
    server_answer(&b, 1, out, "oops");
    /* every split point: byte by byte, and in two halves */
    for (size_t step = 1; step <= b.len; step = step * 3 + 1) {
        struct fcgiclient_decoder d;
        fcgiclient_decoder_init(&d, 1, 0);
        const char *why = NULL;
        for (size_t off = 0; off < b.len; off += step) {
            size_t n = b.len - off < step ? b.len - off : step;
            ck_assert_msg(fcgiclient_decode(&d, b.data + off, n, &why) == 0, "step %zu: %s",
                          step, why);
            ck_assert_int_eq(d.ended, off + n == b.len);
        }
        ck_assert_str_eq(d.out.data, out);
        ck_assert_str_eq(d.err.data, "oops");
        ck_assert_uint_eq(d.app_status, 3);
        ck_assert_int_eq(d.protocol_status, 0);
        int status;
        size_t hl, bo, vl;
        ck_assert_int_eq(fcgiclient_split_cgi(d.out.data, d.out.len, &status, &hl, &bo), 0);
        ck_assert_int_eq(status, 404);
        ck_assert_str_eq(d.out.data + bo, "not here\n");
        const char *v = fcgiclient_find_header(d.out.data, hl, "x-memfill-store", &vl);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq(vl, 11);
        ck_assert(memcmp(v, "skip_status", 11) == 0);
        fcgiclient_decoder_fini(&d);
    }
    buf_fini(&b);
}
END_TEST

START_TEST(test_decoder_errors)
{
    const char *why;
    struct fcgiclient_decoder d;
    /* a record for another request */
    struct buf b = BUF_INIT;
    server_answer(&b, 2, "Status: 200\r\n\r\n", NULL);
    fcgiclient_decoder_init(&d, 1, 0);
    ck_assert_int_eq(fcgiclient_decode(&d, b.data, b.len, &why), -1);
    ck_assert_str_eq(why, "record for another request id");
    fcgiclient_decoder_fini(&d);
    /* version 2 */
    b.data[0] = 2;
    fcgiclient_decoder_init(&d, 2, 0);
    ck_assert_int_eq(fcgiclient_decode(&d, b.data, b.len, &why), -1);
    ck_assert_str_eq(why, "record version is not 1");
    fcgiclient_decoder_fini(&d);
    /* data after the end */
    buf_reset(&b, 0);
    server_answer(&b, 1, "\r\nx", NULL);
    buf_append(&b, "\x01", 1);
    fcgiclient_decoder_init(&d, 1, 0);
    ck_assert_int_eq(fcgiclient_decode(&d, b.data, b.len, &why), -1);
    ck_assert_str_eq(why, "data after the end of the request");
    fcgiclient_decoder_fini(&d);
    /* over the size cap */
    buf_reset(&b, 0);
    server_answer(&b, 1, "Status: 200\r\n\r\n0123456789", NULL);
    fcgiclient_decoder_init(&d, 1, 10);
    ck_assert_int_eq(fcgiclient_decode(&d, b.data, b.len, &why), -1);
    ck_assert_str_eq(why, "response larger than the limit");
    fcgiclient_decoder_fini(&d);
    /* a management record type in the middle */
    buf_reset(&b, 0);
    fcgiclient_record(&b, 11 /* GET_VALUES_RESULT */, 1, NULL, 0);
    fcgiclient_decoder_init(&d, 1, 0);
    ck_assert_int_eq(fcgiclient_decode(&d, b.data, b.len, &why), -1);
    fcgiclient_decoder_fini(&d);
    buf_fini(&b);
}
END_TEST

START_TEST(test_split_cgi)
{
    static const struct {
        const char *text;
        int rc, status;
        const char *body;
        int line;
    } rows[] = {
        {"Content-Type: text/html\r\n\r\nhi", 0, 200, "hi", __LINE__},
        {"Status: 301 Moved Permanently\r\nLocation: /x\r\n\r\n", 0, 301, "", __LINE__},
        {"Location: /x\r\n\r\nbody", 0, 302, "body", __LINE__},
        {"Status: 503\n\nbare newlines", 0, 503, "bare newlines", __LINE__},
        {"\r\nno headers at all", 0, 200, "no headers at all", __LINE__},
        {"Status: 200 OK\r\nX: y\r\n", -1, 0, NULL, __LINE__},
        {"Status: 2x0\r\n\r\n", -1, 0, NULL, __LINE__},
        {"Status: 99\r\n\r\n", -1, 0, NULL, __LINE__},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        int status = 0;
        size_t hl = 0, bo = 0;
        const char *t = rows[i].text;
        int rc = fcgiclient_split_cgi(t, strlen(t), &status, &hl, &bo);
        ck_assert_msg(rc == rows[i].rc, "row at line %d: rc %d", rows[i].line, rc);
        if (rc == 0) {
            ck_assert_msg(status == rows[i].status, "row at line %d: status %d", rows[i].line,
                          status);
            ck_assert_msg(strcmp(t + bo, rows[i].body) == 0, "row at line %d: body \"%s\"",
                          rows[i].line, t + bo);
        }
    }
}
END_TEST

/* ---- a live round trip against libfcgi ---- */

/* The child: a libfcgi responder on a unix socket answering each request
 * with its params, one "NAME=value" per line, with X-Got-Big: <length of
 * the BIG param>. Serves n requests, then exits. */
static void serve_params(const char *path, int n)
{
    FCGX_Init();
    int fd = FCGX_OpenSocket(path, 64);
    if (fd < 0)
        _exit(3);
    FCGX_Request r;
    FCGX_InitRequest(&r, fd, 0);
    for (int i = 0; i < n; i++) {
        if (FCGX_Accept_r(&r) < 0)
            _exit(4);
        const char *big = FCGX_GetParam("BIG", r.envp);
        if (FCGX_GetParam("SLOW", r.envp))
            usleep(200000);
        char head[128];
        snprintf(head, sizeof head,
                 "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Got-Big: %zu\r\n\r\n",
                 big ? strlen(big) : (size_t)0);
        FCGX_PutS(head, r.out); /* (libfcgi's own printf knows no %zu) */
        for (char **e = r.envp; *e; e++)
            if (strncmp(*e, "BIG=", 4) != 0) {
                FCGX_PutS(*e, r.out);
                FCGX_PutS("\n", r.out);
            }
        FCGX_PutS("", r.err);
        FCGX_Finish_r(&r);
    }
    _exit(0);
}

struct collected {
    int n;
    int ok;
    int seen[32];
    char body[32][512];
    size_t big[32];
    const char *errors[32];
};

static void collect(void *ctx, const struct fcgiclient_result *res)
{
    struct collected *c = ctx;
    int i = (int)(uintptr_t)res->udata;
    c->n++;
    c->seen[i]++;
    c->errors[i] = res->error;
    if (res->error)
        return;
    c->ok++;
    size_t vl;
    const char *v = fcgiclient_find_header(res->head, res->head_len, "X-Got-Big", &vl);
    c->big[i] = v ? strtoul(v, NULL, 10) : (size_t)-1;
    size_t n = res->body_len < sizeof c->body[i] - 1 ? res->body_len : sizeof c->body[i] - 1;
    memcpy(c->body[i], res->body, n);
    c->body[i][n] = '\0';
}

START_TEST(test_live_libfcgi)
{
    char dir[] = "/tmp/memfill-fcgiclient-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/app.sock", dir);
    const int N = 20;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(20);
        serve_params(path, N);
    }
    for (int i = 0; i < 200 && access(path, F_OK) != 0; i++)
        usleep(10000);
    usleep(20000);

    char addr[160];
    snprintf(addr, sizeof addr, "unix:%s", path);
    struct err e;
    err_clear(&e);
    struct fcgiclient *c = fcgiclient_new(addr, 10000, &e);
    ck_assert_msg(c != NULL, "%s", e.text);
    size_t biglen = 100000;
    char *big = xmalloc(biglen);
    memset(big, 'b', biglen);
    struct collected got;
    memset(&got, 0, sizeof got);
    int next = 0, conc = 5;
    while (next < N || fcgiclient_pending(c) > 0) {
        while (next < N && fcgiclient_pending(c) < (size_t)conc) {
            char idx[16];
            snprintf(idx, sizeof idx, "%d", next);
            struct fcgiclient_param p[] = {
                {"REQUEST_METHOD", 14, "GET", 3},
                {"INDEX", 5, idx, strlen(idx)},
                {"BIG", 3, big, next % 4 == 0 ? biglen : 10},
                {"SLOW", 4, "1", next == 3 ? 1 : 0},
            };
            fcgiclient_start(c, p, next == 3 ? 4 : 3, (void *)(uintptr_t)next);
            next++;
        }
        ck_assert_int_ge(fcgiclient_poll(c, 1000, collect, &got), 0);
    }
    ck_assert_int_eq(got.n, N);
    ck_assert_msg(got.ok == N, "%d of %d answered; first error: %s", got.ok, N,
                  got.errors[0] ? got.errors[0] : "(none)");
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "INDEX=%d\n", i);
        ck_assert_int_eq(got.seen[i], 1);
        ck_assert_msg(strstr(got.body[i], want) != NULL, "request %d got \"%s\"", i, got.body[i]);
        ck_assert_msg(strstr(got.body[i], "REQUEST_METHOD=GET\n") != NULL, "request %d", i);
        ck_assert_uint_eq(got.big[i], i % 4 == 0 ? biglen : 10);
    }
    fcgiclient_free(c);
    free(big);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server status %d", st);

    /* nobody listening: refused, reported through the callback */
    c = fcgiclient_new(addr, 1000, &e);
    unlink(path);
    memset(&got, 0, sizeof got);
    struct fcgiclient_param one = {"A", 1, "b", 1};
    fcgiclient_start(c, &one, 1, (void *)(uintptr_t)0);
    while (fcgiclient_pending(c))
        fcgiclient_poll(c, 100, collect, &got);
    ck_assert_int_eq(got.n, 1);
    ck_assert_ptr_nonnull(got.errors[0]);
    ck_assert_ptr_nonnull(strstr(got.errors[0], "refused"));
    fcgiclient_free(c);

    /* a server that accepts (backlog) but never answers: timed out */
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    c = fcgiclient_new(addr, 300, &e);
    memset(&got, 0, sizeof got);
    uint64_t t0 = util_now_ms();
    fcgiclient_start(c, &one, 1, (void *)(uintptr_t)0);
    while (fcgiclient_pending(c))
        fcgiclient_poll(c, 1000, collect, &got);
    uint64_t took = util_now_ms() - t0;
    ck_assert_int_eq(got.n, 1);
    ck_assert_str_eq(got.errors[0], "timed out");
    ck_assert_msg(took >= 250 && took < 2000, "timeout took %llu ms", (unsigned long long)took);
    fcgiclient_free(c);
    close(lfd);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_bad_addresses)
{
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "unix:",
                                      "[::1]9000", "host:port"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct err e;
        err_clear(&e);
        struct fcgiclient *c = fcgiclient_new(bad[i], 0, &e);
        ck_assert_msg(c == NULL, "\"%s\" was accepted", bad[i]);
        ck_assert_int_eq(e.set, 1);
    }
    static const char *const good[] = {"127.0.0.1:9000", "*:9000", "0.0.0.0:1", "[::1]:9000",
                                       "localhost:9000", "unix:/run/memfill.sock"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct err e;
        err_clear(&e);
        struct fcgiclient *c = fcgiclient_new(good[i], 0, &e);
        ck_assert_msg(c != NULL, "\"%s\": %s", good[i], e.text);
        fcgiclient_free(c);
    }
}
END_TEST

/* ---- warm: params, tally, options ---- */

START_TEST(test_warm_params)
{
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile("$scheme://$host$uri$is_args$args", &e);
    ck_assert_ptr_nonnull(kp);
    struct warm_url u;
    const char *why;
    const char *url = "https://Example.com:8443/a/./b/../caf%C3%A9?q=1%202";
    ck_assert_int_eq(warm_url_parse(url, strlen(url), &u, &why), 0);
    struct warm_params p;
    warm_params_build(kp, &u, NULL, &p);
    ck_assert_str_eq(warm_params_get(&p, "REQUEST_METHOD"), "GET");
    ck_assert_str_eq(warm_params_get(&p, "REQUEST_URI"), "/a/./b/../caf%C3%A9?q=1%202");
    ck_assert_str_eq(warm_params_get(&p, "DOCUMENT_URI"), "/a/caf\xc3\xa9");
    ck_assert_str_eq(warm_params_get(&p, "QUERY_STRING"), "q=1%202");
    ck_assert_str_eq(warm_params_get(&p, "HTTP_HOST"), "Example.com:8443");
    ck_assert_str_eq(warm_params_get(&p, "SERVER_NAME"), "Example.com");
    ck_assert_str_eq(warm_params_get(&p, "SERVER_PORT"), "8443");
    ck_assert_str_eq(warm_params_get(&p, "REQUEST_SCHEME"), "https");
    ck_assert_str_eq(warm_params_get(&p, "HTTPS"), "on");
    ck_assert_str_eq(warm_params_get(&p, "SERVER_PROTOCOL"), "HTTP/1.1");
    ck_assert_str_eq(warm_params_get(&p, "MEMFILL_WARM"), "1");
    /* nginx's $host is lower-cased and has no port */
    ck_assert_str_eq(warm_params_get(&p, "MEMC_KEY"), "https://example.com/a/caf\xc3\xa9?q=1%202");
    warm_params_fini(&p);
    warm_url_fini(&u);

    /* no host in the URL: --host stands in; none at all: empty */
    ck_assert_int_eq(warm_url_parse("/x?", 3, &u, &why), 0);
    warm_params_build(kp, &u, "site.example", &p);
    ck_assert_str_eq(warm_params_get(&p, "MEMC_KEY"), "http://site.example/x");
    ck_assert_str_eq(warm_params_get(&p, "SERVER_PORT"), "80");
    ck_assert_ptr_null(warm_params_get(&p, "HTTPS"));
    warm_params_fini(&p);
    warm_params_build(kp, &u, NULL, &p);
    ck_assert_ptr_null(warm_params_get(&p, "HTTP_HOST"));
    warm_params_fini(&p);
    warm_url_fini(&u);
    key_pattern_free(kp);
}
END_TEST

static struct fcgiclient_result answer(const char *head, const char *error)
{
    struct fcgiclient_result r;
    memset(&r, 0, sizeof r);
    r.error = error;
    r.head = head;
    r.head_len = head ? strlen(head) : 0;
    r.status = 200;
    return r;
}

START_TEST(test_warm_tally)
{
    struct warm_tally t;
    memset(&t, 0, sizeof t);
    struct buf out = BUF_INIT;
    warm_tally_format(&t, &out);
    ck_assert_str_eq(out.data, "warm: 0 requested, 0 stored, 0 skipped, 0 failed");
    const char *d;
    size_t dl;
    struct fcgiclient_result r = answer("X-Memfill-Store: stored\r\n", NULL);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_STORED);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_STORED);
    r = answer("Content-Type: text/html\r\nx-memfill-store:  skip_status \r\n", NULL);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_SKIPPED);
    ck_assert_uint_eq(dl, 11);
    r = answer("X-Memfill-Store: skip_cache_control\r\n", NULL);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_SKIPPED);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_SKIPPED);
    r = answer("X-Memfill-Store: skip_from_the_future\r\n", NULL);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_SKIPPED);
    r = answer("X-Memfill-Store: fail_timeout\r\n", NULL);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_FAILED);
    r = answer("Content-Type: text/html\r\n", NULL);
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_FAILED);
    r = answer(NULL, "timed out");
    ck_assert_int_eq(warm_tally_add(&t, &r, &d, &dl), WARM_FAILED);
    ck_assert_str_eq(d, "timed out");
    buf_reset(&out, 0);
    warm_tally_format(&t, &out);
    ck_assert_str_eq(out.data, "warm: 9 requested, 2 stored, 4 skipped (status: 1, "
                               "cache_control: 2, other: 1), 3 failed");
    buf_fini(&out);
}
END_TEST

/* warm_opts_parse over copies of args (argv strings are writable, and
 * the options borrow them: they live until the test ends). */
static char *argv_store[64];
static size_t argv_used;

static int parse(const char *const *args, int n, struct warm_opts *o, struct err *err)
{
    char **argv = argv_store + argv_used;
    ck_assert_uint_lt(argv_used + (size_t)n + 1, 64);
    for (int i = 0; i < n; i++)
        argv[i] = xstrdup(args[i]);
    argv[n] = NULL;
    argv_used += (size_t)n + 1;
    return warm_opts_parse(n, argv, o, err);
}

static void parse_free(void)
{
    for (size_t i = 0; i < argv_used; i++)
        free(argv_store[i]);
    argv_used = 0;
}

START_TEST(test_warm_opts)
{
    char dir[] = "/tmp/memfill-warmopts-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char list[128], map[128];
    snprintf(list, sizeof list, "%s/list.txt", dir);
    snprintf(map, sizeof map, "%s/sitemap.xml", dir);
    FILE *f = fopen(list, "w");
    fputs("# a\n/one\n/two\n", f);
    fclose(f);
    f = fopen(map, "w");
    fputs("<urlset><url><loc>http://h/three</loc></url></urlset>", f);
    fclose(f);
    const char *args[] = {"warm", "/zero", "--from", list, "--sitemap", map, "--concurrency",
                          "8", "--fastcgi", "127.0.0.1:9", "--timeout", "5", "-v"};
    struct warm_opts o;
    struct err e;
    err_clear(&e);
    ck_assert_int_eq(parse(args, 13, &o, &e), 0);
    ck_assert_int_eq(e.set, 0);
    ck_assert_uint_eq(o.notes.len, 0);
    ck_assert_uint_eq(o.urls.n, 4);
    ck_assert_str_eq(o.urls.items[0], "/zero");
    ck_assert_str_eq(o.urls.items[1], "/one");
    ck_assert_str_eq(o.urls.items[3], "http://h/three");
    ck_assert_uint_eq(o.concurrency, 8);
    ck_assert_uint_eq(o.timeout_ms, 5000);
    ck_assert_str_eq(o.fastcgi, "127.0.0.1:9");
    ck_assert_int_eq(o.verbose, 1);
    warm_opts_fini(&o);
    const char *bad1[] = {"warm", "--concurrency", "0", "/x"};
    ck_assert_int_eq(parse(bad1, 4, &o, &e), 64);
    ck_assert_ptr_nonnull(strstr(e.text, "--concurrency"));
    warm_opts_fini(&o);
    const char *bad2[] = {"warm"};
    err_clear(&e);
    ck_assert_int_eq(parse(bad2, 1, &o, &e), 64);
    ck_assert_int_eq(e.set, 1);
    warm_opts_fini(&o);
    const char *bad3[] = {"warm", "--from", "/nonexistent/list"};
    err_clear(&e);
    ck_assert_int_eq(parse(bad3, 3, &o, &e), 66);
    ck_assert_str_eq(e.text, "cannot read /nonexistent/list: No such file or directory");
    warm_opts_fini(&o);
    /* A file without URLs is a note, not an error. */
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    f = fopen(empty, "w");
    fputs("# nothing here\n", f);
    fclose(f);
    const char *note[] = {"warm", "--from", empty, "/x"};
    err_clear(&e);
    ck_assert_int_eq(parse(note, 4, &o, &e), 0);
    ck_assert_int_eq(e.set, 0);
    ck_assert_uint_eq(o.urls.n, 1);
    char want[200];
    snprintf(want, sizeof want, "%s: no URLs found\n", empty);
    ck_assert_str_eq(o.notes.data, want);
    warm_opts_fini(&o);
    parse_free();
    unlink(empty);
    unlink(list);
    unlink(map);
    rmdir(dir);
}
END_TEST

/* ---- suite ---- */

Suite *fcgiclient_suite(void);

Suite *fcgiclient_suite(void)
{
    Suite *s = suite_create("fcgiclient");
    TCase *tc = tcase_create("records");
    tcase_add_test(tc, test_record_layout);
    tcase_add_test(tc, test_pair_lengths);
    tcase_add_test(tc, test_request_records);
    tcase_add_test(tc, test_decoder_chunks);
    tcase_add_test(tc, test_decoder_errors);
    tcase_add_test(tc, test_split_cgi);
    suite_add_tcase(s, tc);
    tc = tcase_create("live");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_live_libfcgi);
    tcase_add_test(tc, test_bad_addresses);
    suite_add_tcase(s, tc);
    tc = tcase_create("warm");
    tcase_add_test(tc, test_warm_params);
    tcase_add_test(tc, test_warm_tally);
    tcase_add_test(tc, test_warm_opts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fcgiclient_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
