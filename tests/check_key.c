/* check_key.c - Check suite for the key modules: memcached key escaping
 * (keyesc.c), the 250-byte limit (key.c), $uri normalisation (urinorm.c)
 * and key patterns (keypattern.c).
 *
 * The nginx-verified facts come from the tests/vectors TSV files, read row by row;
 * a failure names file:line, the key in hex, and the expected and actual
 * bytes. Edge cases that the vectors do not cover are tabled here and
 * marked with where they come from (nginx 1.22 source, doc/nginx.md). */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/keyesc.h"
#include "memfill/keyloc.h"
#include "memfill/keypattern.h"
#include "memfill/nodesel.h"
#include "memfill/urinorm.h"
#include "testutil.h"

/* ---- helpers ---- */

/* 1 when keyloc_find says nginx can read raw back (one node, so the node
 * is never the reason). */
static int key_fits(const char *raw, size_t len)
{
    static const struct nodesel_server one = {"127.0.0.1:11211", 1, NULL};
    struct nodesel *ns = nodesel_new(NODESEL_CONSISTENT, &one, 1, NULL);
    ck_assert_ptr_nonnull(ns);
    struct buf esc = BUF_INIT;
    int node;
    int fit = keyloc_find(ns, raw, len, &esc, &node) == KEYLOC_OK;
    buf_fini(&esc);
    nodesel_free(ns);
    return fit;
}

/* Opens tests/vectors/<name>, failing the test when it is missing. */
static void open_vectors(struct tu_tsv *t, const char *name)
{
    char *rel = NULL;
    if (asprintf(&rel, "tests/vectors/%s", name) < 0)
        ck_abort_msg("asprintf");
    char *path = tu_path(rel);
    free(rel);
    int rc = tu_tsv_open(t, path);
    ck_assert_msg(rc == 0, "cannot open %s (top_srcdir=%s)", path, tu_srcdir());
    free(path);
}

/* The field col of the current row; fails the test when it is missing. */
static const char *field(const struct tu_tsv *t, const char *col)
{
    const char *v = tu_tsv_get(t, col);
    ck_assert_msg(v != NULL, "%s:%u: no column %s", t->path, t->lineno, col);
    return v;
}

/* Decodes the hex field col into out (reset first). */
static void hex_field(const struct tu_tsv *t, const char *col, struct buf *out)
{
    buf_reset(out, 1 << 16);
    ck_assert_msg(tu_hex_decode(field(t, col), out) == 0, "%s:%u: bad hex in %s", t->path,
                  t->lineno, col);
}

/* Hex of n bytes in a static buffer, for messages (one use per message). */
static const char *hexs(const void *p, size_t n)
{
    static struct buf b;
    buf_reset(&b, 1 << 16);
    tu_hex_encode(p, n, &b);
    return b.data;
}

static const char *hexs2(const void *p, size_t n)
{
    static struct buf b;
    buf_reset(&b, 1 << 16);
    tu_hex_encode(p, n, &b);
    return b.data;
}

static int buf_eq(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

struct param {
    const char *name;
    const char *value;
};

/* key_param_fn over a {NULL, NULL}-terminated array of struct param. */
static const char *get_param(void *ctx, const char *name)
{
    for (const struct param *p = ctx; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p->value;
    return NULL;
}

/* Compiles pattern (which must compile), evaluates it over params and
 * returns the raw key as a new string (free with free()). */
static char *eval(const char *pattern, const struct param *params)
{
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile(pattern, &e);
    ck_assert_msg(kp != NULL, "pattern \"%s\" did not compile: %s", pattern, e.text);
    struct buf out = BUF_INIT;
    key_pattern_eval(kp, get_param, (void *)params, &out);
    key_pattern_free(kp);
    return buf_steal(&out);
}

#define ck_assert_eval(pattern, params, expected)                                           \
    do {                                                                                    \
        char *got_ = eval((pattern), (params));                                             \
        ck_assert_msg(strcmp(got_, (expected)) == 0, "%s: expected \"%s\", got \"%s\"",    \
                      (pattern), (expected), got_);                                         \
        free(got_);                                                                         \
    } while (0)

/* ---- escaping ---- */

START_TEST(test_key_escape_all_bytes)
{
    struct tu_tsv t;
    struct buf raw = BUF_INIT, want = BUF_INIT, got = BUF_INIT;
    int seen[256] = {0};
    unsigned rows = 0, escaped = 0;

    open_vectors(&t, "memcached_escape.tsv");
    while (tu_tsv_next(&t)) {
        hex_field(&t, "byte_hex", &raw);
        ck_assert_msg(raw.len == 1, "%s:%u: byte_hex is not one byte", t.path, t.lineno);
        buf_reset(&want, 0);
        ck_assert(tu_unescape_text(field(&t, "sent_as"), &want) == 0);
        buf_reset(&got, 0);
        key_escape(raw.data, 1, &got);
        ck_assert_msg(buf_eq(&got, &want), "%s:%u: key %s: expected %s, got %s", t.path,
                      t.lineno, hexs(raw.data, 1), hexs2(want.data, want.len),
                      hexs(got.data, got.len));
        ck_assert_msg(key_escaped_len(raw.data, 1) == want.len,
                      "%s:%u: key %s: escaped_len expected %zu, got %zu", t.path, t.lineno,
                      hexs(raw.data, 1), want.len, key_escaped_len(raw.data, 1));
        int is_escaped = strcmp(field(&t, "escaped"), "yes") == 0;
        ck_assert_msg(is_escaped == (got.len == 3), "%s:%u: key %s: escaped flag %d, got %s",
                      t.path, t.lineno, hexs(raw.data, 1), is_escaped, got.data);
        seen[(unsigned char)raw.data[0]]++;
        escaped += (unsigned)is_escaped;
        rows++;
    }
    tu_tsv_close(&t);
    for (int b = 0; b < 256; b++)
        ck_assert_msg(seen[b] == 1, "memcached_escape.tsv: byte %02x appears %d times", b,
                      seen[b]);
    ck_assert_uint_eq(rows, 256);
    /* doc/nginx.md §1: 0x00-0x20 and '%', 34 values */
    ck_assert_uint_eq(escaped, 34);
    buf_fini(&raw);
    buf_fini(&want);
    buf_fini(&got);
}
END_TEST

START_TEST(test_key_escape_sent_keys)
{
    struct tu_tsv t;
    struct buf key = BUF_INIT, want = BUF_INIT, got = BUF_INIT, back = BUF_INIT;
    unsigned rows = 0;

    open_vectors(&t, "memcached_key_sent.tsv");
    while (tu_tsv_next(&t)) {
        hex_field(&t, "key_hex", &key);
        hex_field(&t, "sent_key_hex", &want);
        ck_assert_msg((size_t)atoi(field(&t, "key_len")) == key.len, "%s:%u: key_len",
                      t.path, t.lineno);
        ck_assert_msg((size_t)atoi(field(&t, "sent_key_len")) == want.len,
                      "%s:%u: sent_key_len", t.path, t.lineno);
        buf_reset(&got, 0);
        key_escape(key.data, key.len, &got);
        ck_assert_msg(buf_eq(&got, &want), "%s:%u: key %s: expected %s, got %s", t.path,
                      t.lineno, hexs(key.data, key.len), hexs2(want.data, want.len),
                      hexs(got.data, got.len));
        ck_assert_msg(key_escaped_len(key.data, key.len) == want.len,
                      "%s:%u: key %s: escaped_len %zu, expected %zu", t.path, t.lineno,
                      hexs(key.data, key.len), key_escaped_len(key.data, key.len), want.len);
        buf_reset(&back, 0);
        ck_assert_msg(key_unescape(want.data, want.len, &back) == 0 && buf_eq(&back, &key),
                      "%s:%u: key %s: unescape gave %s", t.path, t.lineno,
                      hexs(key.data, key.len), hexs2(back.data, back.len));
        rows++;
    }
    tu_tsv_close(&t);
    ck_assert_uint_eq(rows, 315);
    buf_fini(&key);
    buf_fini(&want);
    buf_fini(&got);
    buf_fini(&back);
}
END_TEST

START_TEST(test_key_escape_appends)
{
    struct buf out = BUF_INIT;
    buf_append_str(&out, "k:");
    key_escape("a b%\n\0z", 7, &out);
    ck_assert_uint_eq(out.len, 2 + 1 + 3 + 1 + 3 + 3 + 3 + 1);
    ck_assert_mem_eq(out.data, "k:a%20b%25%0A%00z", out.len);
    ck_assert_int_eq(out.data[out.len], '\0');
    /* bytes above 0x20 other than '%' go through, 0x7F and 0x80-0xFF too */
    buf_reset(&out, 0);
    key_escape("+#?&/:=\"'\\\x7f\x80\xff", 13, &out);
    ck_assert_mem_eq(out.data, "+#?&/:=\"'\\\x7f\x80\xff", 13);
    ck_assert_uint_eq(out.len, 13);
    buf_fini(&out);
}
END_TEST

START_TEST(test_key_unescape_round_trip)
{
    struct buf raw = BUF_INIT, esc = BUF_INIT, back = BUF_INIT;
    /* every byte value, then a pseudo-random 4 KiB key (fixed LCG seed) */
    for (int b = 0; b < 256; b++)
        buf_append_char(&raw, (char)b);
    unsigned x = 12345;
    for (int i = 0; i < 4096; i++) {
        x = x * 1103515245u + 12345u;
        buf_append_char(&raw, (char)(x >> 16));
    }
    key_escape(raw.data, raw.len, &esc);
    ck_assert_uint_eq(esc.len, key_escaped_len(raw.data, raw.len));
    for (size_t i = 0; i < esc.len; i++)
        ck_assert_msg((unsigned char)esc.data[i] > 0x20, "escaped key holds %02x at %zu",
                      (unsigned char)esc.data[i], i);
    ck_assert_int_eq(key_unescape(esc.data, esc.len, &back), 0);
    ck_assert_uint_eq(back.len, raw.len);
    ck_assert_mem_eq(back.data, raw.data, raw.len);

    /* lower-case hex is accepted */
    buf_reset(&back, 0);
    ck_assert_int_eq(key_unescape("%2a%2A%0a", 9, &back), 0);
    ck_assert_uint_eq(back.len, 3);
    ck_assert_mem_eq(back.data, "**\n", 3);
    buf_fini(&raw);
    buf_fini(&esc);
    buf_fini(&back);
}
END_TEST

START_TEST(test_key_unescape_errors)
{
    static const char *const bad[] = {"%", "%4", "%zz", "a%4g", "ab%", "%%41", "x%G0"};
    struct buf out = BUF_INIT;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&out, 0);
        buf_append_str(&out, "pre");
        ck_assert_msg(key_unescape(bad[i], strlen(bad[i]), &out) == -1,
                      "\"%s\" was accepted", bad[i]);
        ck_assert_msg(out.len == 3 && strcmp(out.data, "pre") == 0,
                      "\"%s\": out changed to \"%s\"", bad[i], out.data);
    }
    /* the length bounds the read: "%41" cut to 2 bytes is an error */
    ck_assert_int_eq(key_unescape("%41", 2, &out), -1);
    buf_fini(&out);
}
END_TEST

/* keyloc_find: the escaped key is appended, the node is nodesel_pick's,
 * and the verdict separates the empty key (500) from the long one (502). */
START_TEST(test_keyloc_find)
{
    static const struct nodesel_server three[] = {
        {"10.0.0.1:11211", 1, "a"}, {"10.0.0.2:11211", 2, "b"}, {"10.0.0.3:11211", 1, "c"}};
    const enum nodesel_dist dists[] = {NODESEL_CONSISTENT, NODESEL_HASH,
                                       NODESEL_UPSTREAM_LIST};
    char k[300];
    for (size_t d = 0; d < 3; d++) {
        struct nodesel *ns = nodesel_new(dists[d], three, 3, NULL);
        ck_assert_ptr_nonnull(ns);
        struct buf esc = BUF_INIT;
        buf_append_str(&esc, "kept:");
        int node = -2;
        ck_assert_int_eq(keyloc_find(ns, "/a b%", 5, &esc, &node), KEYLOC_OK);
        ck_assert_str_eq(esc.data, "kept:/a%20b%25");
        ck_assert_int_eq(node, nodesel_pick(ns, "/a b%", 5));
        ck_assert_int_ge(node, 0);

        /* 83 spaces + 'x' = 250 escaped: fits; 84 spaces = 252: too long,
         * though the node is still named. */
        memset(k, ' ', 84);
        k[83] = 'x';
        buf_reset(&esc, 0);
        ck_assert_int_eq(keyloc_find(ns, k, 84, &esc, &node), KEYLOC_OK);
        ck_assert_uint_eq(esc.len, 250);
        k[83] = ' ';
        buf_reset(&esc, 0);
        ck_assert_int_eq(keyloc_find(ns, k, 84, &esc, &node), KEYLOC_TOO_LONG);
        ck_assert_uint_eq(esc.len, 252);
        ck_assert_int_eq(node, nodesel_pick(ns, k, 84));

        buf_reset(&esc, 0);
        ck_assert_int_eq(keyloc_find(ns, "", 0, &esc, &node), KEYLOC_EMPTY);
        ck_assert_uint_eq(esc.len, 0);
        buf_fini(&esc);
        nodesel_free(ns);
    }
}
END_TEST

START_TEST(test_key_length_limits)
{
    char k[300];
    memset(k, 'a', sizeof k);
    ck_assert_int_eq(key_fits(k, 249), 1);
    ck_assert_int_eq(key_fits(k, 250), 1);
    ck_assert_int_eq(key_fits(k, 251), 0);
    ck_assert_int_eq(key_fits(k, 0), 0);
    ck_assert_int_eq(key_fits(k, 1), 1);

    /* doc/nginx.md §2: 83 spaces + 1 byte = 250 escaped bytes is a hit,
     * 84 spaces (252 escaped) is a 502. */
    memset(k, ' ', 84);
    k[83] = 'x';
    ck_assert_uint_eq(key_escaped_len(k, 84), 250);
    ck_assert_int_eq(key_fits(k, 84), 1);
    k[83] = ' ';
    ck_assert_uint_eq(key_escaped_len(k, 84), 252);
    ck_assert_int_eq(key_fits(k, 84), 0);
    ck_assert_uint_eq(key_escaped_len(k, 83), 249);
    ck_assert_int_eq(key_fits(k, 83), 1);

    /* 248 plain bytes + one '%' = 251 escaped: over the limit */
    memset(k, 'b', 248);
    k[248] = '%';
    ck_assert_uint_eq(key_escaped_len(k, 249), 251);
    ck_assert_int_eq(key_fits(k, 249), 0);
    ck_assert_uint_eq(key_escaped_len(k, 248), 248);
    /* NUL bytes count too, and nothing past len is read */
    memset(k, 0, 100);
    ck_assert_uint_eq(key_escaped_len(k, 83), 249);
    ck_assert_uint_eq(key_escaped_len(k, 0), 0);
}
END_TEST

/* ---- $uri ---- */

/* Derives QUERY_STRING from a request target as this test reads nginx's
 * parser: after the first '?' that precedes any '#', up to the next '#';
 * "" when there is none (fastcgi_params always passes QUERY_STRING). */
static char *query_of(const char *target)
{
    const char *q = target + strcspn(target, "?#");
    if (*q != '?')
        return strdup("");
    q++;
    return strndup(q, strcspn(q, "#"));
}

START_TEST(test_key_request_vars_vectors)
{
    struct tu_tsv t;
    struct buf target = BUF_INIT, want_raw = BUF_INIT, want_sent = BUF_INIT;
    struct buf got = BUF_INIT, esc = BUF_INIT;
    unsigned n400 = 0, n404 = 0, n500 = 0;

    open_vectors(&t, "request_vars_keys.tsv");
    while (tu_tsv_next(&t)) {
        buf_reset(&target, 0);
        ck_assert(tu_unescape_text(field(&t, "request_target"), &target) == 0);
        ck_assert_msg(strlen(target.data) == target.len, "%s:%u: NUL in target", t.path,
                      t.lineno);
        const char *var = field(&t, "key_variable");
        const char *status = field(&t, "http_status");
        hex_field(&t, "variable_value_hex", &want_raw);
        hex_field(&t, "sent_key_hex", &want_sent);

        if (strcmp(status, "400") == 0) {
            /* nginx refused the request line or its URI: %00 in the path,
             * a raw space in the path or in the query. */
            buf_reset(&got, 0);
            buf_append_str(&got, "pre");
            int rc = key_normalize_uri(target.data, target.len, &got);
            ck_assert_msg(rc == -1, "%s:%u: target %s: nginx said 400, got \"%s\"", t.path,
                          t.lineno, hexs(target.data, target.len), got.data);
            ck_assert_msg(got.len == 3, "%s:%u: out changed on error", t.path, t.lineno);
            ck_assert_msg(want_raw.len == 0 && want_sent.len == 0,
                          "%s:%u: 400 row with a key", t.path, t.lineno);
            n400++;
            continue;
        }
        ck_assert_msg(strcmp(status, "404") == 0 || strcmp(status, "500") == 0,
                      "%s:%u: unexpected http_status %s", t.path, t.lineno, status);

        /* 404: a miss on the key shown; 500: the key was empty. Evaluate
         * with QUERY_STRING as nginx passes it, then without it (derived
         * from REQUEST_URI by keypattern.c). */
        char *qs = query_of(target.data);
        struct param with_qs[] = {{"REQUEST_URI", target.data}, {"QUERY_STRING", qs},
                                  {NULL, NULL}};
        struct param without_qs[] = {{"REQUEST_URI", target.data}, {NULL, NULL}};
        for (int pass = 0; pass < 2; pass++) {
            char *raw = eval(var, pass == 0 ? with_qs : without_qs);
            buf_reset(&got, 0);
            buf_append_str(&got, raw);
            free(raw);
            ck_assert_msg(buf_eq(&got, &want_raw),
                          "%s:%u: target %s %s (pass %d): raw key expected %s, got %s", t.path,
                          t.lineno, hexs(target.data, target.len), var, pass,
                          hexs2(want_raw.data, want_raw.len), hexs(got.data, got.len));
            buf_reset(&esc, 0);
            key_escape(got.data, got.len, &esc);
            ck_assert_msg(buf_eq(&esc, &want_sent),
                          "%s:%u: target %s %s: sent key expected %s, got %s", t.path,
                          t.lineno, hexs(target.data, target.len), var,
                          hexs2(want_sent.data, want_sent.len), hexs(esc.data, esc.len));
        }
        free(qs);
        if (strcmp(status, "404") == 0) {
            ck_assert_msg(got.len > 0 && key_fits(got.data, got.len),
                          "%s:%u: 404 row with an unusable key", t.path, t.lineno);
            n404++;
        } else {
            ck_assert_msg(got.len == 0, "%s:%u: 500 row with a key", t.path, t.lineno);
            ck_assert_int_eq(key_fits(got.data, got.len), 0);
            n500++;
        }
    }
    tu_tsv_close(&t);
    ck_assert_msg(n400 == 15 && n404 == 99 && n500 == 41,
                  "row classes: %u x 400, %u x 404, %u x 500", n400, n404, n500);
    buf_fini(&target);
    buf_fini(&want_raw);
    buf_fini(&want_sent);
    buf_fini(&got);
    buf_fini(&esc);
}
END_TEST

/* Cases beyond the vectors, read off ngx_http_parse_complex_uri() and
 * ngx_http_parse_request_line() in nginx 1.22.1 (source, not measured).
 * NULL expected means nginx answers 400. */
static const struct {
    const char *in;
    const char *out;
} uri_cases[] = {
    {"/", "/"},
    {"", "/"},                 /* empty_path_in_uri */
    {"?x=1", "/"},             /* "GET http://h?x=1" */
    {"/a/b/..", "/a/"},
    {"/a/.", "/a/"},
    {"/a/./", "/a/"},
    {"/./", "/"},
    {"/a//", "/a/"},
    {"/a/.b", "/a/.b"},
    {"/a/..b", "/a/..b"},
    {"/a/...", "/a/..."},
    {"/a/b/..?x/../..", "/a/"}, /* args are not normalised */
    {"/a/.#f", "/a/"},
    {"/a#b?c", "/a"},
    {"/a?b#c", "/a"},
    {"/a/.%2e/b", "/b"},
    {"/a/%2E%2E", "/"},
    {"/a/..%2f..", NULL},
    {"/..", NULL},
    {"/a/../..", NULL},
    {"/%2e%2e", NULL},
    {"/../a", NULL},
    {"/a%3fb", "/a?b"},        /* a decoded '?' is data */
    {"/a%3Fb/../c", "/c"},
    {"/a%23b", "/a#b"},        /* a decoded '#' is data */
    {"/a%25b", "/a%b"},
    {"/a%2541", "/a%41"},      /* no double decoding */
    {"/a%2B", "/a+"},
    {"/%7e%7E", "/~~"},
    {"/caf\xc3\xa9/\xff", "/caf\xc3\xa9/\xff"},
    {"/%", NULL},
    {"/%4", NULL},
    {"/%zz", NULL},
    {"/%4z", NULL},
    {"/a%00", NULL},
    {"/a%0", NULL},
    {"x", NULL},               /* not origin-form */
    {"*", NULL},
    {"/a\tb", NULL},
    {"/a\x7f", NULL},
    {"/a\x01", NULL},
    {"/q?x=\x1f", NULL},       /* the request line check covers the query */
    {"/q#\x7f", NULL},
};

START_TEST(test_key_uri_normalize_cases)
{
    struct buf out = BUF_INIT;
    for (size_t i = 0; i < sizeof uri_cases / sizeof uri_cases[0]; i++) {
        const char *in = uri_cases[i].in, *want = uri_cases[i].out;
        buf_reset(&out, 0);
        buf_append_str(&out, "pre");
        int rc = key_normalize_uri(in, strlen(in), &out);
        if (!want) {
            ck_assert_msg(rc == -1, "uri %s: expected 400, got \"%s\"", hexs(in, strlen(in)),
                          out.data + 3);
            ck_assert_msg(out.len == 3 && strcmp(out.data, "pre") == 0,
                          "uri %s: out changed on error", hexs(in, strlen(in)));
        } else {
            ck_assert_msg(rc == 0 && strcmp(out.data + 3, want) == 0 && out.len == 3 + strlen(want),
                          "uri %s: expected \"%s\", got %d \"%s\"", hexs(in, strlen(in)), want,
                          rc, out.data + 3);
        }
    }
    buf_fini(&out);
}
END_TEST

START_TEST(test_key_uri_reads_only_len)
{
    struct buf out = BUF_INIT;
    /* the NUL and what follows are outside len */
    ck_assert_int_eq(key_normalize_uri("/a/b\0/../..", 4, &out), 0);
    ck_assert_str_eq(out.data, "/a/b");
    /* a "%4" cut before its second digit is an error even if it follows */
    buf_reset(&out, 0);
    ck_assert_int_eq(key_normalize_uri("/%41", 3, &out), -1);
    /* a NUL inside len is a control byte: 400 */
    ck_assert_int_eq(key_normalize_uri("/a\0b", 4, &out), -1);
    buf_fini(&out);
}
END_TEST

/* ---- patterns ---- */

START_TEST(test_key_pattern_compile_errors)
{
    static const struct {
        const char *pattern;
        int column;
        const char *text;
    } cases[] = {
        {"", 1, "empty"},
        {"$foo", 1, "unknown variable \"$foo\""},
        {"ab$nope/x", 3, "unknown variable \"$nope\""},
        {"$urix", 1, "unknown variable \"$urix\""},
        {"$uri$arg_", 5, "unknown variable \"$arg_\""},
        {"$http_", 1, "unknown variable"},
        {"$cookie_", 1, "unknown variable"},
        {"${uri", 1, "unterminated"},
        {"x${uri-}", 2, "unterminated"},
        {"/p/${", 4, "unterminated"},
        {"$", 1, "empty variable name"},
        {"a$-", 2, "empty variable name"},
        {"${}", 1, "empty variable name"},
        {"k:$1", 3, "capture"},
        {"${1}", 1, "unknown variable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct err e;
        err_clear(&e);
        struct key_pattern *kp = key_pattern_compile(cases[i].pattern, &e);
        ck_assert_msg(kp == NULL, "\"%s\" compiled", cases[i].pattern);
        ck_assert_msg(e.set, "\"%s\": err not set", cases[i].pattern);
        ck_assert_msg(e.column == cases[i].column, "\"%s\": column %d, expected %d",
                      cases[i].pattern, e.column, cases[i].column);
        ck_assert_msg(strstr(e.text, cases[i].text) != NULL, "\"%s\": text \"%s\" lacks \"%s\"",
                      cases[i].pattern, e.text, cases[i].text);
    }
    /* NULL counts as empty; a NULL err is allowed */
    ck_assert_ptr_null(key_pattern_compile(NULL, NULL));
    ck_assert_ptr_null(key_pattern_compile("$nope", NULL));
    /* the first error wins */
    struct err e;
    err_clear(&e);
    err_set(&e, "cfg", 7, 9, "earlier");
    ck_assert_ptr_null(key_pattern_compile("$nope", &e));
    ck_assert_str_eq(e.text, "earlier");
    ck_assert_int_eq(e.column, 9);
    key_pattern_free(NULL);
}
END_TEST

START_TEST(test_key_pattern_text_and_literals)
{
    struct key_pattern *kp = key_pattern_compile("page:${uri}v2", NULL);
    ck_assert_ptr_nonnull(kp);
    ck_assert_str_eq(key_pattern_text(kp), "page:${uri}v2");
    key_pattern_free(kp);

    const struct param p[] = {{"DOCUMENT_URI", "/x"},
                              {"REQUEST_METHOD", "GET"},
                              {"SERVER_NAME", "srv"},
                              {"SERVER_PORT", "8080"},
                              {NULL, NULL}};
    ck_assert_eval("page:${uri}v2", p, "page:/xv2");
    ck_assert_eval("$uri-x", p, "/x-x");
    ck_assert_eval("literal only", p, "literal only");
    ck_assert_eval("${request_method}:$server_name:$server_port", p, "GET:srv:8080");
    ck_assert_eval("$URI|${Document_Uri}", p, "/x|/x"); /* names are case-insensitive */
    ck_assert_eval("a$uri$uri", p, "a/x/x");

    /* evaluation appends to what out already holds */
    kp = key_pattern_compile("$uri", NULL);
    struct buf out = BUF_INIT;
    buf_append_str(&out, "k:");
    key_pattern_eval(kp, get_param, (void *)p, &out);
    ck_assert_str_eq(out.data, "k:/x");
    ck_assert_uint_eq(out.len, 4);
    key_pattern_free(kp);
    buf_fini(&out);
}
END_TEST

START_TEST(test_key_pattern_uri_sources)
{
    /* DOCUMENT_URI is nginx's $document_uri == $uri: used as is */
    const struct param doc[] = {{"DOCUMENT_URI", "/a/../b c"},
                                {"REQUEST_URI", "/other%20path"},
                                {NULL, NULL}};
    ck_assert_eval("$uri", doc, "/a/../b c");
    ck_assert_eval("$document_uri", doc, "/a/../b c");
    ck_assert_eval("$request_uri", doc, "/other%20path");

    /* without it, $uri is computed from REQUEST_URI */
    const struct param req[] = {{"REQUEST_URI", "/x//y/./%41?q=%41"}, {NULL, NULL}};
    ck_assert_eval("$uri", req, "/x/y/A");
    ck_assert_eval("$request_uri", req, "/x//y/./%41?q=%41");

    /* a target nginx would refuse gives an empty $uri, not garbage */
    const struct param bad[] = {{"REQUEST_URI", "/a%00b"}, {NULL, NULL}};
    ck_assert_eval("k$uri", bad, "k");
    const struct param none[] = {{NULL, NULL}};
    ck_assert_eval("k$uri", none, "k");
}
END_TEST

START_TEST(test_key_pattern_args)
{
    /* QUERY_STRING wins over REQUEST_URI when nginx passes it */
    const struct param qs[] = {{"REQUEST_URI", "/p?a=1"}, {"QUERY_STRING", "z=9"}, {NULL, NULL}};
    ck_assert_eval("$args|$query_string|$is_args", qs, "z=9|z=9|?");
    const struct param empty_qs[] = {{"REQUEST_URI", "/p?"}, {"QUERY_STRING", ""}, {NULL, NULL}};
    ck_assert_eval("$uri$is_args$args", empty_qs, "/p");

    /* derived from REQUEST_URI: from the first '?' to '#', not decoded */
    const struct param d1[] = {{"REQUEST_URI", "/p?x=a%20b&y=1#frag"}, {NULL, NULL}};
    ck_assert_eval("$args", d1, "x=a%20b&y=1");
    ck_assert_eval("$uri$is_args$args", d1, "/p?x=a%20b&y=1");
    const struct param d2[] = {{"REQUEST_URI", "/p#f?x=1"}, {NULL, NULL}};
    ck_assert_eval("[$args][$is_args]", d2, "[][]");
    const struct param d3[] = {{"REQUEST_URI", "/p?a?b=%2F"}, {NULL, NULL}};
    ck_assert_eval("$args", d3, "a?b=%2F");
    const struct param none[] = {{NULL, NULL}};
    ck_assert_eval("[$args][$is_args][$arg_x]", none, "[][][]");
}
END_TEST

START_TEST(test_key_pattern_arg)
{
    static const struct {
        const char *args;
        const char *pattern;
        const char *want;
    } cases[] = {
        {"X=1&y=2&x=4", "$arg_x", "1"},        /* names match case-insensitively */
        {"x=1", "$arg_X", "1"},                /* the variable name too */
        {"ax=1&x=2", "$arg_x", "2"},           /* only at the start or after '&' */
        {"yx=1", "$arg_x", ""},
        {"x", "$arg_x", ""},                   /* no '=': not set */
        {"x=", "$arg_x", ""},
        {"x=a%20b", "$arg_x", "a%20b"},        /* not decoded */
        {"x=a+b&x=c", "$arg_x", "a+b"},        /* the first one */
        {"y=2&x=1", "$arg_x", "1"},
        {"x=1&", "$arg_x", "1"},
        {"foo_bar=ok", "$arg_foo_bar", "ok"},
        {"xx=1", "$arg_xx", "1"},
        {"x=1;y=2", "$arg_y", ""},             /* ';' is not a separator */
        {"a=1&&x=3", "$arg_x", "3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct param p[] = {{"QUERY_STRING", cases[i].args}, {NULL, NULL}};
        char *got = eval(cases[i].pattern, p);
        ck_assert_msg(strcmp(got, cases[i].want) == 0,
                      "args \"%s\" %s: expected \"%s\", got \"%s\"", cases[i].args,
                      cases[i].pattern, cases[i].want, got);
        free(got);
    }
}
END_TEST

START_TEST(test_key_pattern_host)
{
    const struct param p1[] = {{"HTTP_HOST", "Example.COM:8080"}, {"SERVER_NAME", "srv"},
                               {NULL, NULL}};
    ck_assert_eval("$host", p1, "example.com");
    ck_assert_eval("$http_host", p1, "Example.COM:8080");
    const struct param p2[] = {{"HTTP_HOST", "[::1]:80"}, {NULL, NULL}};
    ck_assert_eval("$host", p2, "[::1]");
    const struct param p3[] = {{"HTTP_HOST", "www.example.org."}, {NULL, NULL}};
    ck_assert_eval("$host", p3, "www.example.org");
    const struct param p4[] = {{"SERVER_NAME", "Srv.Example"}, {NULL, NULL}};
    ck_assert_eval("$host", p4, "srv.example");
    /* hosts nginx refuses (400) never reach the app; fall back anyway */
    const struct param p5[] = {{"HTTP_HOST", "a..b"}, {"SERVER_NAME", "srv"}, {NULL, NULL}};
    ck_assert_eval("$host", p5, "srv");
    const struct param p6[] = {{"HTTP_HOST", "a/b"}, {"SERVER_NAME", "srv"}, {NULL, NULL}};
    ck_assert_eval("$host", p6, "srv");
    const struct param p7[] = {{"HTTP_HOST", ""}, {"SERVER_NAME", "srv"}, {NULL, NULL}};
    ck_assert_eval("$host", p7, "srv");
    const struct param p8[] = {{"HTTP_HOST", "H\xc3\x89.x"}, {NULL, NULL}};
    ck_assert_eval("$host", p8, "h\xc3\x89.x"); /* ASCII-only lower-casing */
    const struct param none[] = {{NULL, NULL}};
    ck_assert_eval("[$host]", none, "[]");
}
END_TEST

START_TEST(test_key_pattern_scheme)
{
    const struct param p1[] = {{"REQUEST_SCHEME", "https"}, {NULL, NULL}};
    ck_assert_eval("$scheme", p1, "https");
    const struct param p2[] = {{"REQUEST_SCHEME", "http"}, {"HTTPS", "on"}, {NULL, NULL}};
    ck_assert_eval("$scheme", p2, "http");
    const struct param p3[] = {{"HTTPS", "on"}, {NULL, NULL}};
    ck_assert_eval("$scheme", p3, "https");
    const struct param p4[] = {{"HTTPS", ""}, {NULL, NULL}};
    ck_assert_eval("$scheme", p4, "http");
    const struct param p5[] = {{"HTTPS", "off"}, {NULL, NULL}};
    ck_assert_eval("$scheme", p5, "http");
    const struct param none[] = {{NULL, NULL}};
    ck_assert_eval("${scheme}://", none, "http://");
}
END_TEST

START_TEST(test_key_pattern_http_header)
{
    /* nginx passes header "X-Forwarded-For" as HTTP_X_FORWARDED_FOR */
    const struct param p[] = {{"HTTP_USER_AGENT", "curl/8"},
                              {"HTTP_X_FORWARDED_FOR", "10.0.0.1"},
                              {NULL, NULL}};
    ck_assert_eval("$http_user_agent", p, "curl/8");
    ck_assert_eval("$http_x_forwarded_for", p, "10.0.0.1");
    ck_assert_eval("$HTTP_X_Forwarded_For", p, "10.0.0.1");
    ck_assert_eval("[$http_accept]", p, "[]");
}
END_TEST

START_TEST(test_key_pattern_cookie)
{
    static const struct {
        const char *cookie;
        const char *pattern;
        const char *want;
    } cases[] = {
        {"a=1; sess = abc ; B=2", "$cookie_a", "1"},
        {"a=1; sess = abc ; B=2", "$cookie_sess", "abc "}, /* up to ';' */
        {"a=1; sess = abc ; B=2", "$cookie_b", "2"},       /* case-insensitive */
        {"a=1; sess = abc ; B=2", "[$cookie_c]", "[]"},
        {"ab=1; b=2", "$cookie_b", "2"},
        {"bb=1", "[$cookie_b]", "[]"},
        {"a=1,b=2", "$cookie_b", "2"},  /* ',' also separates pairs */
        {"a=1,b=2", "$cookie_a", "1,b=2"}, /* but only ';' ends a value */
        {"b", "[$cookie_b]", "[]"},
        {"b=", "[$cookie_b]", "[]"},
        {"x=1;y=2", "$cookie_y", "2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct param p[] = {{"HTTP_COOKIE", cases[i].cookie}, {NULL, NULL}};
        char *got = eval(cases[i].pattern, p);
        ck_assert_msg(strcmp(got, cases[i].want) == 0,
                      "cookie \"%s\" %s: expected \"%s\", got \"%s\"", cases[i].cookie,
                      cases[i].pattern, cases[i].want, got);
        free(got);
    }
    const struct param none[] = {{NULL, NULL}};
    ck_assert_eval("[$cookie_a]", none, "[]");
}
END_TEST

Suite *key_suite(void);

Suite *key_suite(void)
{
    Suite *s = suite_create("key");

    TCase *tc = tcase_create("escape");
    tcase_add_test(tc, test_key_escape_all_bytes);
    tcase_add_test(tc, test_key_escape_sent_keys);
    tcase_add_test(tc, test_key_escape_appends);
    tcase_add_test(tc, test_key_unescape_round_trip);
    tcase_add_test(tc, test_key_unescape_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_key_length_limits);
    tcase_add_test(tc, test_keyloc_find);
    suite_add_tcase(s, tc);

    tc = tcase_create("uri");
    tcase_add_test(tc, test_key_request_vars_vectors);
    tcase_add_test(tc, test_key_uri_normalize_cases);
    tcase_add_test(tc, test_key_uri_reads_only_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("pattern");
    tcase_add_test(tc, test_key_pattern_compile_errors);
    tcase_add_test(tc, test_key_pattern_text_and_literals);
    tcase_add_test(tc, test_key_pattern_uri_sources);
    tcase_add_test(tc, test_key_pattern_args);
    tcase_add_test(tc, test_key_pattern_arg);
    tcase_add_test(tc, test_key_pattern_host);
    tcase_add_test(tc, test_key_pattern_scheme);
    tcase_add_test(tc, test_key_pattern_http_header);
    tcase_add_test(tc, test_key_pattern_cookie);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(key_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
