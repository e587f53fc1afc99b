/* check_nodesel.c - Check suite for nodesel.c (and the hashfn.c primitives
 * it stands on): node choice byte-exact with nginx 1.22.
 *
 * The nginx-verified vectors (upstream_hash_c3, upstream_hash_m3,
 * set_hashed_upstream, chash_ring_c3) are read row by row; a failure names
 * file:line, the key in hex, and the expected and actual node. The worked
 * examples of doc/nginx.md §5-§7 are checked by value. Where a test needs
 * the ring it recomputes it here from the written algorithm (not from
 * nodesel.c) or compares with the vector file. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/hashfn.h"
#include "memfill/keyesc.h"
#include "memfill/nodesel.h"
#include "testutil.h"

/* ---- helpers ---- */

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

static const char *field(const struct tu_tsv *t, const char *col)
{
    const char *v = tu_tsv_get(t, col);
    ck_assert_msg(v != NULL, "%s:%u: no column %s", t->path, t->lineno, col);
    return v;
}

static void hex_field(const struct tu_tsv *t, const char *col, struct buf *out)
{
    buf_reset(out, 1 << 16);
    ck_assert_msg(tu_hex_decode(field(t, col), out) == 0, "%s:%u: bad hex in %s", t->path,
                  t->lineno, col);
}

static uint32_t u32_field(const struct tu_tsv *t, const char *col, int base)
{
    const char *s = field(t, col);
    char *end;
    unsigned long v = strtoul(s, &end, base);
    ck_assert_msg(*s && !*end && v <= 0xffffffffUL, "%s:%u: bad number in %s: \"%s\"", t->path,
                  t->lineno, col, s);
    return (uint32_t)v;
}

/* Hex of a key for messages; returns a static buffer (one use per message). */
static const char *hexs(const void *p, size_t n)
{
    static struct buf b;
    buf_reset(&b, 1 << 16);
    tu_hex_encode(p, n, &b);
    return b.data;
}

/* The address text of pick's answer, or "" for -1. */
static const char *node_text(const struct nodesel *ns, int i)
{
    if (i < 0)
        return "";
    const struct nodesel_server *s = nodesel_server(ns, (size_t)i);
    ck_assert_ptr_nonnull(s);
    return s->address;
}

static const char *node_name(const struct nodesel *ns, int i)
{
    if (i < 0)
        return "";
    const struct nodesel_server *s = nodesel_server(ns, (size_t)i);
    ck_assert_ptr_nonnull(s);
    return s->name;
}

static struct nodesel *new_or_fail(enum nodesel_dist d, const struct nodesel_server *s, size_t n)
{
    struct err e;
    err_clear(&e);
    struct nodesel *ns = nodesel_new(d, s, n, &e);
    ck_assert_msg(ns != NULL, "nodesel_new failed: %s", e.text);
    return ns;
}

/* The test configs of doc/nginx.md: c3/m3 over 127.0.0.1:21211..21213, and
 * the upstreams moon..venus at 127.0.0.1:21211..21215. */
static const struct nodesel_server three[] = {
    {"127.0.0.1:21211", 1, NULL},
    {"127.0.0.1:21212", 1, NULL},
    {"127.0.0.1:21213", 1, NULL},
};

/* ---- hashfn ---- */

START_TEST(test_hashfn_crc32_known)
{
    /* the standard CRC-32 check value, as zlib.crc32 gives it */
    ck_assert_uint_eq(hashfn_crc32("123456789", 9), 0xcbf43926u);
    ck_assert_uint_eq(hashfn_crc32("", 0), 0);
    ck_assert_uint_eq(hashfn_crc32(NULL, 0), 0);
    ck_assert_uint_eq(hashfn_crc32_update(hashfn_crc32("1234", 4), "56789", 5), 0xcbf43926u);
    ck_assert_uint_eq(hashfn_crc32_update(0, "123456789", 9), 0xcbf43926u);
    /* doc/nginx.md §6 worked example */
    ck_assert_uint_eq(hashfn_crc32("/index.html", 11), 0xea224b42u);
    /* NUL and high bytes are data; zlib.crc32(b"\0\xff") == 0x6cdbfd72 */
    ck_assert_uint_eq(hashfn_crc32("\0\xff", 2), 0x6cdbfd72u);
}
END_TEST

START_TEST(test_hashfn_h31lc_known)
{
    /* doc/nginx.md §5 worked example */
    ck_assert_uint_eq(hashfn_h31lc("/index.html", 11), 2144181430u);
    ck_assert_uint_eq(hashfn_h31lc("", 0), 0);
    ck_assert_uint_eq(hashfn_h31lc("/About", 6), hashfn_h31lc("/about", 6));
    /* ASCII-only lower-casing: 0xC9 (E acute in Latin-1) is not 0xE9 */
    ck_assert_uint_ne(hashfn_h31lc("\xc9", 1), hashfn_h31lc("\xe9", 1));
    ck_assert_uint_eq(hashfn_h31lc("\xc9", 1), 0xc9u);
    /* '[' (0x5B) and '@' (0x40) sit next to A-Z and are not changed */
    ck_assert_uint_eq(hashfn_h31lc("[", 1), 0x5bu);
    ck_assert_uint_eq(hashfn_h31lc("@", 1), 0x40u);
    ck_assert_uint_eq(hashfn_h31lc("Z", 1), 'z');
    /* wraps modulo 2^32: 31^7 * 'a' overflows 32 bits */
    ck_assert_uint_eq(hashfn_h31lc("aaaaaaaa", 8), 312017024u);
}
END_TEST

/* ---- consistent ---- */

START_TEST(test_nodesel_consistent_c3_vectors)
{
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, three, 3);
    struct tu_tsv t;
    struct buf key = BUF_INIT;
    size_t n = nodesel_ring_size(ns);
    unsigned rows = 0, wraps = 0, ties = 0, toolong = 0, empty = 0;

    open_vectors(&t, "upstream_hash_c3.tsv");
    while (tu_tsv_next(&t)) {
        hex_field(&t, "key_hex", &key);
        uint32_t crc = hashfn_crc32(key.data, key.len);
        ck_assert_msg(crc == u32_field(&t, "crc32_hex", 16), "%s:%u: key %s: crc32 %08x",
                      t.path, t.lineno, hexs(key.data, key.len), crc);

        /* ring_start_index: the first point with hash >= crc (N = wrap) */
        size_t start = u32_field(&t, "ring_start_index", 10);
        uint32_t h;
        size_t srv;
        ck_assert_msg(start <= n, "%s:%u: start %zu > ring size %zu", t.path, t.lineno, start, n);
        if (key.len > 0) {
            if (start < n) {
                ck_assert(nodesel_ring_point(ns, start, &h, &srv) == 0);
                ck_assert_msg(h >= crc, "%s:%u: point %zu below crc", t.path, t.lineno, start);
                ties += h == crc;
            } else {
                wraps++;
            }
            if (start > 0) {
                ck_assert(nodesel_ring_point(ns, start - 1, &h, &srv) == 0);
                ck_assert_msg(h < crc, "%s:%u: point %zu not below crc", t.path, t.lineno,
                              start - 1);
            }
        }

        const char *want = field(&t, "nginx_node");
        int got = nodesel_pick(ns, key.data, key.len);
        ck_assert_msg(strcmp(node_text(ns, got), want) == 0,
                      "%s:%u: key %s: expected node \"%s\", got %d \"%s\"", t.path, t.lineno,
                      hexs(key.data, key.len), want, got, node_text(ns, got));
        if (!*want) {
            ck_assert_msg(key.len == 0 && got == -1, "%s:%u: empty node, key %s", t.path,
                          t.lineno, hexs(key.data, key.len));
            empty++;
        }

        /* 502 marks keys memcached refused as too long once escaped */
        int is502 = strcmp(field(&t, "http_status"), "502") == 0;
        size_t esc = key_escaped_len(key.data, key.len);
        ck_assert_msg(esc == u32_field(&t, "escaped_len", 10), "%s:%u: escaped_len %zu",
                      t.path, t.lineno, esc);
        ck_assert_msg(is502 == (esc > KEY_MAX_ESCAPED), "%s:%u: status vs escaped_len %zu",
                      t.path, t.lineno, esc);
        toolong += (unsigned)is502;
        rows++;
    }
    tu_tsv_close(&t);
    ck_assert_uint_eq(rows, 391);
    /* the file must exercise the edges it claims to (doc/nginx.md §6) */
    ck_assert_msg(wraps > 0 && ties > 0 && toolong > 0 && empty == 1,
                  "wraps %u ties %u too long %u empty %u", wraps, ties, toolong, empty);
    buf_fini(&key);
    nodesel_free(ns);
}
END_TEST

START_TEST(test_nodesel_ring_c3_vectors)
{
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, three, 3);
    struct tu_tsv t;
    unsigned rows = 0;

    /* Each server's chain, recomputed here from doc/nginx.md §6:
     * base = "127.0.0.1" 0x00 "2121x", h(k+1) = crc32(base || le32(h(k))). */
    uint32_t chain[3][160];
    for (int s = 0; s < 3; s++) {
        char base[32];
        memcpy(base, "127.0.0.1\0" "2121", 14);
        base[14] = (char)('1' + s);
        uint32_t prev = 0;
        for (int k = 0; k < 160; k++) {
            unsigned char le[4] = {(unsigned char)prev, (unsigned char)(prev >> 8),
                                   (unsigned char)(prev >> 16), (unsigned char)(prev >> 24)};
            memcpy(base + 15, le, 4);
            chain[s][k] = prev = hashfn_crc32(base, 19);
        }
    }

    open_vectors(&t, "chash_ring_c3.tsv");
    while (tu_tsv_next(&t)) {
        size_t i = u32_field(&t, "ring_index", 10);
        uint32_t want = u32_field(&t, "point_hash_u32", 10);
        ck_assert_msg(want == u32_field(&t, "point_hash_hex", 16), "%s:%u: hex vs u32", t.path,
                      t.lineno);
        uint32_t h;
        size_t srv;
        ck_assert_msg(nodesel_ring_point(ns, i, &h, &srv) == 0, "%s:%u: no point %zu", t.path,
                      t.lineno, i);
        const char *server = field(&t, "server");
        ck_assert_msg(h == want && strcmp(three[srv].address, server) == 0,
                      "%s:%u: point %zu: expected %08x %s, got %08x %s", t.path, t.lineno, i,
                      want, server, h, three[srv].address);
        size_t k = u32_field(&t, "point_number_for_server", 10);
        ck_assert_msg(k < 160 && chain[srv][k] == want, "%s:%u: point number %zu", t.path,
                      t.lineno, k);
        rows++;
    }
    tu_tsv_close(&t);
    ck_assert_uint_eq(rows, 480);
    ck_assert_uint_eq(nodesel_ring_size(ns), 480);
    uint32_t h;
    size_t srv;
    ck_assert_int_eq(nodesel_ring_point(ns, 480, &h, &srv), -1);
    nodesel_free(ns);
}
END_TEST

START_TEST(test_nodesel_consistent_worked_examples)
{
    /* doc/nginx.md §6: "/index.html" -> crc ea224b42 -> ring index 432,
     * owned by 127.0.0.1:21212 */
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, three, 3);
    uint32_t h;
    size_t srv;
    ck_assert_int_eq(nodesel_ring_point(ns, 432, &h, &srv), 0);
    ck_assert_uint_ge(h, 0xea224b42u);
    ck_assert_int_eq(nodesel_ring_point(ns, 431, &h, &srv), 0);
    ck_assert_uint_lt(h, 0xea224b42u);
    ck_assert_int_eq(nodesel_pick(ns, "/index.html", 11), 1);
    nodesel_free(ns);

    /* the first three points of 127.0.0.1:11211 */
    const struct nodesel_server one[] = {{"127.0.0.1:11211", 1, NULL}};
    ns = new_or_fail(NODESEL_CONSISTENT, one, 1);
    static const uint32_t first[] = {0xa9b35a33u, 0x4ae4402du, 0x276a3e76u};
    for (size_t j = 0; j < 3; j++) {
        int found = 0;
        for (size_t i = 0; i < nodesel_ring_size(ns); i++) {
            ck_assert_int_eq(nodesel_ring_point(ns, i, &h, &srv), 0);
            found |= h == first[j];
        }
        ck_assert_msg(found, "point %08x missing", first[j]);
    }
    ck_assert_uint_eq(nodesel_ring_size(ns), 160);
    nodesel_free(ns);
}
END_TEST

static void check_base(const char *address, const char *want, size_t want_len)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "x"); /* appends */
    nodesel_chash_base(address, strlen(address), &b);
    ck_assert_msg(b.len == want_len + 1 && memcmp(b.data + 1, want, want_len) == 0,
                  "base of \"%s\": expected %s, got %s", address, hexs(want, want_len),
                  b.data ? hexs(b.data + 1, b.len - 1) : "");
    buf_fini(&b);
}

START_TEST(test_nodesel_chash_base)
{
    check_base("unix:/path", "/path\0", 6);
    check_base("UNIX:/run/m.sock", "/run/m.sock\0", 12);
    check_base("[::1]:21216", "[::1]\0" "21216", 11);
    check_base("[::1]", "[::1]\0", 6);
    check_base("127.0.0.1:11211", "127.0.0.1\0" "11211", 15);
    check_base("127.0.0.1:021212", "127.0.0.1\0" "021212", 16); /* text, not number */
    check_base("localhost:21211", "localhost\0" "21211", 15);
    check_base("localhost", "localhost\0", 10);
    check_base("host:abc", "host:abc\0", 9);       /* scan stops on a non-digit */
    check_base("a:1:2", "a:1\0" "2", 5);            /* the last ':' before digits */
    check_base("h1:x2", "h1:x2\0", 6);
    check_base("12345", "12345\0", 6);              /* digits to the start: no port */
    check_base("127.0.0.1:", "127.0.0.1\0", 10);    /* empty digit run */
    check_base("unix", "unix\0", 5);                /* shorter than "unix:" */
    check_base("unix:", "\0", 1);

    /* only len bytes are read */
    struct buf b = BUF_INIT;
    nodesel_chash_base("127.0.0.1:112119", 15, &b);
    ck_assert_uint_eq(b.len, 15);
    ck_assert_mem_eq(b.data, "127.0.0.1\0" "11211", 15);
    buf_fini(&b);
}
END_TEST

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Checks the ring of ns against chains recomputed from explicit bases. */
static void check_ring(const struct nodesel *ns, const char *const *bases,
                       const size_t *base_lens, const unsigned *weights, size_t n)
{
    size_t total = 0;
    for (size_t s = 0; s < n; s++)
        total += 160 * weights[s];
    uint32_t *all = calloc(total, sizeof *all);
    size_t *owner_count = calloc(n, sizeof *owner_count);
    ck_assert_ptr_nonnull(all);
    ck_assert_ptr_nonnull(owner_count);
    size_t k = 0;
    for (size_t s = 0; s < n; s++) {
        uint32_t prev = 0;
        for (unsigned j = 0; j < 160 * weights[s]; j++) {
            unsigned char le[4] = {(unsigned char)prev, (unsigned char)(prev >> 8),
                                   (unsigned char)(prev >> 16), (unsigned char)(prev >> 24)};
            char buf[64];
            memcpy(buf, bases[s], base_lens[s]);
            memcpy(buf + base_lens[s], le, 4);
            all[k++] = prev = hashfn_crc32(buf, base_lens[s] + 4);
        }
    }
    qsort(all, total, sizeof *all, cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
        if (u == 0 || all[u - 1] != all[i])
            all[u++] = all[i];
    ck_assert_uint_eq(nodesel_ring_size(ns), u);
    for (size_t i = 0; i < u; i++) {
        uint32_t h;
        size_t srv;
        ck_assert_int_eq(nodesel_ring_point(ns, i, &h, &srv), 0);
        ck_assert_msg(h == all[i], "point %zu: expected %08x, got %08x", i, all[i], h);
        ck_assert_uint_lt(srv, n);
        owner_count[srv]++;
    }
    for (size_t s = 0; s < n; s++)
        ck_assert_msg(owner_count[s] == 160 * weights[s], "server %zu owns %zu points", s,
                      owner_count[s]);
    free(all);
    free(owner_count);
}

START_TEST(test_nodesel_consistent_unix_ipv6_weight)
{
    /* exp2b's server texts: a unix socket, an IPv6 literal, IPv4; plus a
     * weight of 2 (doc/nginx.md §6: 160 points per weight unit) */
    const struct nodesel_server s[] = {
        {"unix:/path", 1, NULL},
        {"[::1]:21216", 2, NULL},
        {"127.0.0.1:21211", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, s, 3);
    const char *const bases[] = {"/path\0", "[::1]\0" "21216", "127.0.0.1\0" "21211"};
    const size_t lens[] = {6, 11, 15};
    const unsigned weights[] = {1, 2, 1};
    check_ring(ns, bases, lens, weights, 3);
    nodesel_free(ns);
}
END_TEST

START_TEST(test_nodesel_consistent_server_text)
{
    /* doc/nginx.md §6 "cname": the ring is built from the server TEXT, so
     * "127.0.0.1:021212" and "localhost:21211" give other points than c3 */
    const struct nodesel_server cname[] = {
        {"localhost:21211", 1, NULL},
        {"127.0.0.1:021212", 1, NULL},
        {"127.0.0.1:21213", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, cname, 3);
    const char *const bases[] = {"localhost\0" "21211", "127.0.0.1\0" "021212",
                                 "127.0.0.1\0" "21213"};
    const size_t lens[] = {15, 16, 15};
    const unsigned weights[] = {1, 1, 1};
    check_ring(ns, bases, lens, weights, 3);
    nodesel_free(ns);
}
END_TEST

START_TEST(test_nodesel_consistent_collisions)
{
    /* Equal hashes collapse to one point (nginx 1.22 source). A server
     * listed twice makes every one of its points collide; the first listing
     * keeps them all (nodesel.h), so the second is never picked. */
    const struct nodesel_server s[] = {
        {"127.0.0.1:11211", 1, NULL},
        {"127.0.0.1:11212", 1, NULL},
        {"127.0.0.1:11211", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, s, 3);
    ck_assert_uint_eq(nodesel_ring_size(ns), 320);
    size_t count[3] = {0, 0, 0};
    uint32_t h, prev = 0;
    for (size_t i = 0; i < nodesel_ring_size(ns); i++) {
        size_t srv;
        ck_assert_int_eq(nodesel_ring_point(ns, i, &h, &srv), 0);
        ck_assert_msg(i == 0 || h > prev, "point %zu not strictly ascending", i);
        prev = h;
        count[srv]++;
    }
    ck_assert_msg(count[0] == 160 && count[1] == 160 && count[2] == 0, "owners %zu %zu %zu",
                  count[0], count[1], count[2]);
    for (int i = 0; i < 500; i++) {
        char k[16];
        int len = snprintf(k, sizeof k, "/k%d", i);
        ck_assert_int_ne(nodesel_pick(ns, k, (size_t)len), 2);
    }
    nodesel_free(ns);
}
END_TEST

/* ---- hash (modula) ---- */

START_TEST(test_nodesel_hash_m3_vectors)
{
    struct nodesel *ns = new_or_fail(NODESEL_HASH, three, 3);
    struct tu_tsv t;
    struct buf key = BUF_INIT;
    unsigned rows = 0, per_node[3] = {0, 0, 0};

    open_vectors(&t, "upstream_hash_m3.tsv");
    while (tu_tsv_next(&t)) {
        hex_field(&t, "key_hex", &key);
        uint32_t crc = hashfn_crc32(key.data, key.len);
        ck_assert_msg(crc == u32_field(&t, "crc32_hex", 16), "%s:%u: key %s: crc32 %08x",
                      t.path, t.lineno, hexs(key.data, key.len), crc);
        ck_assert_msg(((crc >> 16) & 0x7fff) == u32_field(&t, "first_hash_15bit", 10),
                      "%s:%u: first_hash_15bit", t.path, t.lineno);
        ck_assert_uint_eq(nodesel_ring_size(ns), 0);
        const char *want = field(&t, "nginx_node");
        int got = nodesel_pick(ns, key.data, key.len);
        ck_assert_msg(strcmp(node_text(ns, got), want) == 0,
                      "%s:%u: key %s: expected node \"%s\", got %d \"%s\"", t.path, t.lineno,
                      hexs(key.data, key.len), want, got, node_text(ns, got));
        ck_assert_msg(*want || (key.len == 0 && got == -1), "%s:%u: empty node", t.path,
                      t.lineno);
        if (got >= 0)
            per_node[got]++;
        rows++;
    }
    tu_tsv_close(&t);
    ck_assert_uint_eq(rows, 391);
    ck_assert_msg(per_node[0] && per_node[1] && per_node[2], "a node never chosen");
    buf_fini(&key);
    nodesel_free(ns);
}
END_TEST

START_TEST(test_nodesel_hash_weights)
{
    /* doc/nginx.md §7: "/index.html" -> 27170; m3: % 3 = 2 -> third server;
     * m4w (weight 2 on the second): % 5 = 0 -> first server. */
    struct nodesel *m3 = new_or_fail(NODESEL_HASH, three, 3);
    ck_assert_int_eq(nodesel_pick(m3, "/index.html", 11), 2);
    nodesel_free(m3);

    const struct nodesel_server m4w[] = {
        {"127.0.0.1:21211", 1, NULL},
        {"127.0.0.1:21212", 2, NULL},
        {"127.0.0.1:21213", 1, NULL},
        {"127.0.0.1:21214", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_HASH, m4w, 4);
    ck_assert_int_eq(nodesel_pick(ns, "/index.html", 11), 0);

    /* the weight walk: w = 0 -> 0, w = 1, 2 -> 1, w = 3 -> 2, w = 4 -> 3 */
    static const int owner[5] = {0, 1, 1, 2, 3};
    int seen[5] = {0};
    for (int i = 0; i < 1000; i++) {
        char k[16];
        int len = snprintf(k, sizeof k, "k%d", i);
        unsigned w = ((hashfn_crc32(k, (size_t)len) >> 16) & 0x7fff) % 5;
        ck_assert_msg(nodesel_pick(ns, k, (size_t)len) == owner[w], "key %s: w %u", k, w);
        seen[w] = 1;
    }
    for (int w = 0; w < 5; w++)
        ck_assert_msg(seen[w], "w = %d never drawn", w);
    nodesel_free(ns);
}
END_TEST

/* ---- set_hashed_upstream ---- */

START_TEST(test_nodesel_upstream_list_vectors)
{
    const struct nodesel_server one[] = {{"127.0.0.1:21211", 1, "moon"}};
    const struct nodesel_server l3[] = {
        {"127.0.0.1:21211", 1, "moon"},
        {"127.0.0.1:21212", 1, "sun"},
        {"127.0.0.1:21213", 1, "earth"},
    };
    const struct nodesel_server l5[] = {
        {"127.0.0.1:21211", 1, "moon"},  {"127.0.0.1:21212", 1, "sun"},
        {"127.0.0.1:21213", 1, "earth"}, {"127.0.0.1:21214", 1, "mars"},
        {"127.0.0.1:21215", 1, "venus"},
    };
    const struct nodesel_server lw[] = {
        {"127.0.0.1:21211", 1, "moon"},
        {"127.0.0.1:21212", 3, "sun"},
        {"127.0.0.1:21213", 1, "earth"},
    };
    struct nodesel *lists[4] = {
        new_or_fail(NODESEL_UPSTREAM_LIST, one, 1),
        new_or_fail(NODESEL_UPSTREAM_LIST, l3, 3),
        new_or_fail(NODESEL_UPSTREAM_LIST, l5, 5),
        new_or_fail(NODESEL_UPSTREAM_LIST, lw, 3),
    };
    static const char *const cols[4] = {"list_one", "list_three", "list_five", "list_weighted"};
    struct tu_tsv t;
    struct buf key = BUF_INIT;
    unsigned rows = 0;

    open_vectors(&t, "set_hashed_upstream.tsv");
    while (tu_tsv_next(&t)) {
        hex_field(&t, "key_hex", &key);
        uint32_t h = hashfn_h31lc(key.data, key.len);
        ck_assert_msg(h == u32_field(&t, "ngx_hash_key_lc_u32", 10),
                      "%s:%u: key %s: h31lc %u", t.path, t.lineno, hexs(key.data, key.len), h);
        for (int l = 0; l < 4; l++) {
            const char *want = field(&t, cols[l]);
            int got = nodesel_pick(lists[l], key.data, key.len);
            ck_assert_msg(strcmp(node_name(lists[l], got), want) == 0,
                          "%s:%u: key %s %s: expected \"%s\", got %d \"%s\"", t.path, t.lineno,
                          hexs(key.data, key.len), cols[l], want, got,
                          node_name(lists[l], got));
        }
        rows++;
    }
    tu_tsv_close(&t);
    ck_assert_uint_eq(rows, 316);
    /* doc/nginx.md §5 worked example */
    ck_assert_str_eq(node_name(lists[1], nodesel_pick(lists[1], "/index.html", 11)), "sun");
    ck_assert_str_eq(node_name(lists[2], nodesel_pick(lists[2], "/index.html", 11)), "moon");
    for (int l = 0; l < 4; l++)
        nodesel_free(lists[l]);
    buf_fini(&key);
}
END_TEST

/* ---- pick: edges and hostile keys ---- */

START_TEST(test_nodesel_pick_single_and_empty)
{
    const struct nodesel_server one[] = {{"127.0.0.1:21211", 3, "moon"}};
    for (int d = NODESEL_CONSISTENT; d <= NODESEL_UPSTREAM_LIST; d++) {
        struct nodesel *ns = new_or_fail((enum nodesel_dist)d, one, 1);
        ck_assert_int_eq(nodesel_pick(ns, "x", 1), 0);
        ck_assert_int_eq(nodesel_pick(ns, "\xff\0", 2), 0);
        /* empty: 500 in nginx for the core module, bucket 0 for set-misc */
        ck_assert_int_eq(nodesel_pick(ns, "", 0), d == NODESEL_UPSTREAM_LIST ? 0 : -1);
        nodesel_free(ns);
    }
    for (int d = NODESEL_CONSISTENT; d <= NODESEL_UPSTREAM_LIST; d++) {
        const struct nodesel_server s[] = {{"127.0.0.1:21211", 1, "moon"},
                                           {"127.0.0.1:21212", 1, "sun"}};
        struct nodesel *ns = new_or_fail((enum nodesel_dist)d, s, 2);
        ck_assert_int_eq(nodesel_pick(ns, NULL, 0), d == NODESEL_UPSTREAM_LIST ? 0 : -1);
        nodesel_free(ns);
    }
}
END_TEST

/* The server owning crc on the ring of ns, found by a linear scan. */
static int ring_owner(const struct nodesel *ns, uint32_t crc)
{
    uint32_t h;
    size_t srv, first = 0;
    ck_assert_int_eq(nodesel_ring_point(ns, 0, &h, &first), 0);
    for (size_t i = 0; i < nodesel_ring_size(ns); i++) {
        ck_assert_int_eq(nodesel_ring_point(ns, i, &h, &srv), 0);
        if (h >= crc)
            return (int)srv;
    }
    return (int)first;
}

START_TEST(test_nodesel_pick_hostile_keys)
{
    struct nodesel *c = new_or_fail(NODESEL_CONSISTENT, three, 3);
    struct nodesel *m = new_or_fail(NODESEL_HASH, three, 3);
    const struct nodesel_server names[] = {
        {"127.0.0.1:21211", 2, "moon"}, {"127.0.0.1:21212", 1, "sun"},
        {"127.0.0.1:21213", 4, "earth"}};
    struct nodesel *u = new_or_fail(NODESEL_UPSTREAM_LIST, names, 3);
    static const int bucket_owner[7] = {0, 0, 1, 2, 2, 2, 2};
    unsigned x = 4242;

    for (int i = 0; i < 2000; i++) {
        /* exactly-sized heap keys: ASan and valgrind catch any over-read */
        size_t len = i < 256 ? 1 : (size_t)(x >> 8) % 300 + 1;
        unsigned char *k = malloc(len);
        ck_assert_ptr_nonnull(k);
        for (size_t j = 0; j < len; j++) {
            x = x * 1103515245u + 12345u;
            k[j] = i < 256 ? (unsigned char)i : (unsigned char)(x >> 16);
        }
        uint32_t crc = hashfn_crc32(k, len);
        ck_assert_int_eq(nodesel_pick(c, (const char *)k, len), ring_owner(c, crc));
        ck_assert_int_eq(nodesel_pick(m, (const char *)k, len), (int)(((crc >> 16) & 0x7fff) % 3));
        ck_assert_int_eq(nodesel_pick(u, (const char *)k, len),
                         bucket_owner[hashfn_h31lc(k, len) % 7]);
        free(k);
    }
    /* a NUL inside the key is data: these keys differ only after it */
    int a = nodesel_pick(c, "a\0b", 3), b = nodesel_pick(c, "a\0c", 3);
    ck_assert_int_eq(a, ring_owner(c, hashfn_crc32("a\0b", 3)));
    ck_assert_int_eq(b, ring_owner(c, hashfn_crc32("a\0c", 3)));
    nodesel_free(c);
    nodesel_free(m);
    nodesel_free(u);
}
END_TEST

/* ---- MEMC_BACKEND ---- */

static int find(const struct nodesel *ns, const char *v)
{
    return nodesel_find_backend(ns, v, strlen(v));
}

START_TEST(test_nodesel_find_backend)
{
    const struct nodesel_server s[] = {
        {"localhost:21211", 1, "moon"},
        {"127.0.0.1:021212", 1, "sun"},
        {"[::1]:21216", 1, "earth"},
        {"unix:/tmp/mc.sock", 1, "Mars"},
        {"127.0.0.1:21213", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, s, 5);

    ck_assert_int_eq(find(ns, "127.0.0.1:21213"), 4);       /* the text */
    ck_assert_int_eq(find(ns, "localhost:21211"), 0);
    ck_assert_int_eq(find(ns, "127.0.0.1:21211"), 0);       /* resolved localhost */
    ck_assert_int_eq(find(ns, "127.0.0.1:21212"), 1);       /* port without the 0 */
    ck_assert_int_eq(find(ns, "127.0.0.1:021212"), 1);
    ck_assert_int_eq(find(ns, "[::1]:21216"), 2);
    ck_assert_int_eq(find(ns, "unix:/tmp/mc.sock"), 3);
    /* $upstream_addr lists every node tried; the last one answered */
    ck_assert_int_eq(find(ns, "127.0.0.1:21219, 127.0.0.1:21213"), 4);
    ck_assert_int_eq(find(ns, "127.0.0.1:21213, 127.0.0.1:21219"), -1);
    ck_assert_int_eq(find(ns, "127.0.0.1:21219, 127.0.0.1:21211 : [::1]:21216"), 2);
    ck_assert_int_eq(find(ns, "  127.0.0.1:21213 \t"), 4);
    ck_assert_int_eq(find(ns, "127.0.0.1:21213,127.0.0.1:21211"), 0);
    /* set_hashed_upstream's $backend: the upstream name, any case */
    ck_assert_int_eq(find(ns, "SUN"), 1);
    ck_assert_int_eq(find(ns, "mars"), 3);
    ck_assert_int_eq(find(ns, "moon"), 0);
    /* no match */
    ck_assert_int_eq(find(ns, "127.0.0.1:2121"), -1);
    ck_assert_int_eq(find(ns, "127.0.0.1:212130"), -1);
    ck_assert_int_eq(find(ns, "127.0.0.2:21213"), -1);
    ck_assert_int_eq(find(ns, "venus"), -1);
    ck_assert_int_eq(find(ns, ""), -1);
    ck_assert_int_eq(find(ns, " , "), -1);
    ck_assert_int_eq(find(ns, "127.0.0.1:21213,"), -1);
    ck_assert_int_eq(find(ns, "garbage\xff\x01"), -1);
    ck_assert_int_eq(nodesel_find_backend(ns, NULL, 0), -1);
    ck_assert_int_eq(nodesel_find_backend(ns, "127.0.0.1:21213\0x", 17), -1);
    /* only len bytes are read */
    ck_assert_int_eq(nodesel_find_backend(ns, "127.0.0.1:212139", 15), 4);
    ck_assert_int_eq(nodesel_find_backend(ns, "sunny", 3), 1);
    nodesel_free(ns);
}
END_TEST

START_TEST(test_nodesel_unresolvable_name)
{
    /* ".invalid" never resolves (RFC 6761); with no DNS at all the result
     * is the same. The server is then known by its text only. */
    const struct nodesel_server s[] = {
        {"memfill-test.invalid:11211", 1, NULL},
        {"127.0.0.1:11212", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, s, 2);
    ck_assert_int_eq(find(ns, "memfill-test.invalid:11211"), 0);
    ck_assert_int_eq(find(ns, "127.0.0.1:11212"), 1);
    ck_assert_int_eq(find(ns, "127.0.0.1:11211"), -1);
    ck_assert_uint_eq(nodesel_ring_size(ns), 320);
    nodesel_free(ns);
}
END_TEST

/* ---- construction ---- */

START_TEST(test_nodesel_new_errors)
{
    static const struct {
        struct nodesel_server s;
        enum nodesel_dist d;
        const char *text;
    } bad[] = {
        {{"127.0.0.1:11211", 0, "a"}, NODESEL_CONSISTENT, "weight"},
        {{"127.0.0.1:11211", NODESEL_WEIGHT_MAX + 1, "a"}, NODESEL_HASH, "weight"},
        {{"", 1, "a"}, NODESEL_CONSISTENT, "empty address"},
        {{NULL, 1, "a"}, NODESEL_CONSISTENT, "no address"},
        {{"127.0.0.1 :11211", 1, "a"}, NODESEL_CONSISTENT, "space"},
        {{"a,b:1", 1, "a"}, NODESEL_CONSISTENT, "','"},
        {{"unix:", 1, "a"}, NODESEL_CONSISTENT, "unix"},
        {{"host:0", 1, "a"}, NODESEL_CONSISTENT, "port"},
        {{"host:65536", 1, "a"}, NODESEL_CONSISTENT, "port"},
        {{"host:", 1, "a"}, NODESEL_CONSISTENT, "port"},
        {{":11211", 1, "a"}, NODESEL_CONSISTENT, "no host"},
        {{"[::1:11211", 1, "a"}, NODESEL_CONSISTENT, "'['"},
        {{"127.0.0.1:11211", 1, NULL}, NODESEL_UPSTREAM_LIST, "name"},
        {{"127.0.0.1:11211", 1, ""}, NODESEL_UPSTREAM_LIST, "name"},
        {{"127.0.0.1:11211", 1, "a"}, (enum nodesel_dist)7, "distribution"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* the bad server comes second, after a good one */
        struct nodesel_server two[2] = {{"127.0.0.1:11212", 1, "ok"}, bad[i].s};
        struct err e;
        err_clear(&e);
        struct nodesel *ns = nodesel_new(bad[i].d, two, 2, &e);
        ck_assert_msg(ns == NULL, "case %zu (\"%s\") accepted", i,
                      bad[i].s.address ? bad[i].s.address : "(null)");
        ck_assert_msg(e.set && strstr(e.text, bad[i].text), "case %zu: text \"%s\" lacks \"%s\"",
                      i, e.text, bad[i].text);
        ck_assert_ptr_null(nodesel_new(bad[i].d, two, 2, NULL));
    }
    struct err e;
    err_clear(&e);
    ck_assert_ptr_null(nodesel_new(NODESEL_CONSISTENT, three, 0, &e));
    ck_assert_msg(e.set && strstr(e.text, "no memcached servers"), "n == 0: \"%s\"", e.text);
    err_clear(&e);
    ck_assert_ptr_null(nodesel_new(NODESEL_HASH, NULL, 3, &e));
    ck_assert(e.set);
    err_clear(&e);
    ck_assert_ptr_null(nodesel_new(NODESEL_HASH, three, NODESEL_SERVERS_MAX + 1, &e));
    ck_assert(e.set);

    /* accepted edge forms */
    const struct nodesel_server ok[] = {
        {"localhost", NODESEL_WEIGHT_MAX, NULL}, /* no port: nginx uses 80 */
        {"UNIX:/x", 1, NULL},
        {"[::1]", 1, NULL},
        {"127.0.0.1:65535", 1, NULL},
    };
    struct nodesel *ns = new_or_fail(NODESEL_CONSISTENT, ok, 4);
    ck_assert_int_eq(find(ns, "127.0.0.1:80"), 0);
    ck_assert_int_eq(find(ns, "unix:/x"), 1);
    ck_assert_int_eq(find(ns, "[::1]:80"), 2);
    nodesel_free(ns);
    nodesel_free(NULL);
}
END_TEST

START_TEST(test_nodesel_accessors)
{
    struct nodesel_server s[] = {{"127.0.0.1:21211", 2, "moon"}, {"127.0.0.1:21212", 1, NULL}};
    struct nodesel *ns = new_or_fail(NODESEL_HASH, s, 2);
    ck_assert_uint_eq(nodesel_count(ns), 2);
    ck_assert_int_eq(nodesel_distribution(ns), NODESEL_HASH);
    const struct nodesel_server *g = nodesel_server(ns, 0);
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_ne(g->address, s[0].address); /* copied */
    ck_assert_str_eq(g->address, "127.0.0.1:21211");
    ck_assert_str_eq(g->name, "moon");
    ck_assert_uint_eq(g->weight, 2);
    ck_assert_ptr_null(nodesel_server(ns, 1)->name);
    ck_assert_ptr_null(nodesel_server(ns, 2));
    ck_assert_uint_eq(nodesel_ring_size(ns), 0);
    uint32_t h;
    size_t srv;
    ck_assert_int_eq(nodesel_ring_point(ns, 0, &h, &srv), -1);
    nodesel_free(ns);

    static const char *const names[] = {"consistent", "hash", "upstream_list"};
    for (int d = 0; d < 3; d++) {
        enum nodesel_dist out = (enum nodesel_dist)99;
        ck_assert_int_eq(nodesel_parse_dist(names[d], &out), 0);
        ck_assert_int_eq(out, d);
        ck_assert_str_eq(nodesel_dist_name(out), names[d]);
    }
    enum nodesel_dist out;
    ck_assert_int_eq(nodesel_parse_dist("Consistent", &out), -1);
    ck_assert_int_eq(nodesel_parse_dist("", &out), -1);
    ck_assert_int_eq(nodesel_parse_dist(NULL, &out), -1);
    ck_assert_str_eq(nodesel_dist_name((enum nodesel_dist)99), "unknown");
}
END_TEST

Suite *nodesel_suite(void);

Suite *nodesel_suite(void)
{
    Suite *s = suite_create("nodesel");

    TCase *tc = tcase_create("hashfn");
    tcase_add_test(tc, test_hashfn_crc32_known);
    tcase_add_test(tc, test_hashfn_h31lc_known);
    suite_add_tcase(s, tc);

    tc = tcase_create("consistent");
    tcase_add_test(tc, test_nodesel_consistent_c3_vectors);
    tcase_add_test(tc, test_nodesel_ring_c3_vectors);
    tcase_add_test(tc, test_nodesel_consistent_worked_examples);
    tcase_add_test(tc, test_nodesel_chash_base);
    tcase_add_test(tc, test_nodesel_consistent_unix_ipv6_weight);
    tcase_add_test(tc, test_nodesel_consistent_server_text);
    tcase_add_test(tc, test_nodesel_consistent_collisions);
    suite_add_tcase(s, tc);

    tc = tcase_create("hash");
    tcase_add_test(tc, test_nodesel_hash_m3_vectors);
    tcase_add_test(tc, test_nodesel_hash_weights);
    suite_add_tcase(s, tc);

    tc = tcase_create("upstream_list");
    tcase_add_test(tc, test_nodesel_upstream_list_vectors);
    suite_add_tcase(s, tc);

    tc = tcase_create("pick");
    tcase_add_test(tc, test_nodesel_pick_single_and_empty);
    tcase_add_test(tc, test_nodesel_pick_hostile_keys);
    /* valgrind makes the 2000-key scan slow */
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend");
    tcase_add_test(tc, test_nodesel_find_backend);
    tcase_add_test(tc, test_nodesel_unresolvable_name);
    /* name resolution can wait on a resolver */
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("new");
    tcase_add_test(tc, test_nodesel_new_errors);
    tcase_add_test(tc, test_nodesel_accessors);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nodesel_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
