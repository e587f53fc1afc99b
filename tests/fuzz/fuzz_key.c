/* fuzz_key.c - libFuzzer target: key escaping, $uri normalisation and key
 * patterns.
 *
 * Input layout: PATTERN "\n" VALUES. The whole input is escaped (the
 * escape must reverse exactly, and key_escaped_len must agree), and is
 * normalised as a request target ($uri must start with '/', hold no "//",
 * no "/./" or "/../" segment, and normalising it again must give it back).
 * PATTERN is compiled as a key pattern; VALUES, split on NUL bytes, are the
 * params the pattern reads: the param callback hands out the pieces in a
 * fixed rotation by name, so every variable sees fuzzer bytes. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/keyesc.h"
#include "memfill/keyloc.h"
#include "memfill/keypattern.h"
#include "memfill/nodesel.h"
#include "memfill/urinorm.h"

#include "fuzzutil.h"

struct params {
    char **v;
    size_t n;
    size_t asked;
};

static const char *param(void *ctx, const char *name)
{
    struct params *p = ctx;
    p->asked++;
    if (p->n == 0)
        return NULL;
    size_t h = 0;
    for (const char *c = name; *c; c++)
        h = h * 31 + (unsigned char)*c;
    size_t i = h % (p->n + 1);
    return i == p->n ? NULL : p->v[i]; /* sometimes absent */
}

static void check_escape(const uint8_t *data, size_t size)
{
    struct buf esc = BUF_INIT, back = BUF_INIT;
    key_escape((const char *)data, size, &esc);
    FUZZ_CHECK(key_escaped_len((const char *)data, size) == esc.len);
    for (size_t i = 0; i < esc.len; i++) {
        unsigned char c = (unsigned char)esc.data[i];
        FUZZ_CHECK(c > 0x20); /* nothing memcached's text protocol would split on */
    }
    FUZZ_CHECK(key_unescape(esc.data ? esc.data : "", esc.len, &back) == 0);
    FUZZ_CHECK(back.len == size && (size == 0 || memcmp(back.data, data, size) == 0));
    static struct nodesel *one;
    if (!one) {
        static const struct nodesel_server server = {"127.0.0.1:11211", 1, NULL};
        one = nodesel_new(NODESEL_CONSISTENT, &server, 1, NULL);
    }
    struct buf esc2 = BUF_INIT;
    int node;
    enum keyloc_fit fit = keyloc_find(one, (const char *)data, size, &esc2, &node);
    FUZZ_CHECK(esc2.len == esc.len && (size == 0 || memcmp(esc2.data, esc.data, esc.len) == 0));
    FUZZ_CHECK((fit == KEYLOC_OK) == (size > 0 && esc.len <= KEY_MAX_ESCAPED));
    buf_fini(&esc2);
    /* Unescaping arbitrary bytes either fails or gives something that
     * escapes to a string no longer than the input. */
    struct buf raw = BUF_INIT;
    if (key_unescape((const char *)data, size, &raw) == 0)
        FUZZ_CHECK(raw.len <= size);
    buf_fini(&raw);
    buf_fini(&esc);
    buf_fini(&back);
}

static void check_normalize(const uint8_t *data, size_t size)
{
    struct buf u = BUF_INIT;
    if (key_normalize_uri((const char *)data, size, &u) < 0) {
        FUZZ_CHECK(u.len == 0);
        buf_fini(&u);
        return;
    }
    FUZZ_CHECK(u.len > 0 && u.data[0] == '/');
    FUZZ_CHECK(memmem(u.data, u.len, "//", 2) == NULL);
    FUZZ_CHECK(memmem(u.data, u.len, "/./", 3) == NULL);
    FUZZ_CHECK(memmem(u.data, u.len, "/../", 4) == NULL);
    FUZZ_CHECK(memchr(u.data, '\0', u.len) == NULL);
    FUZZ_CHECK(!(u.len >= 3 && memcmp(u.data + u.len - 3, "/..", 3) == 0));
    buf_fini(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_escape(data, size);
    check_normalize(data, size);

    const uint8_t *pat, *vals;
    size_t patlen, valslen;
    fuzz_split(data, size, "\n", 1, &pat, &patlen, &vals, &valslen);
    char *ptext = fuzz_strndup(pat, patlen);
    struct params p = {NULL, 0, 0};
    char *store = fuzz_strndup(vals, valslen);
    p.v = malloc((valslen + 1) * sizeof *p.v);
    if (!p.v)
        abort();
    for (size_t a = 0; a <= valslen;) {
        char *s = store + a;
        size_t l = strlen(s);
        p.v[p.n++] = s;
        a += l + 1;
    }
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile(ptext, &e);
    if (!kp) {
        FUZZ_CHECK(e.text[0] != '\0');
        FUZZ_CHECK(e.column >= 1 && (size_t)e.column <= strlen(ptext) + 1);
    } else {
        FUZZ_CHECK(strcmp(key_pattern_text(kp), ptext) == 0);
        struct buf out = BUF_INIT, again = BUF_INIT;
        key_pattern_eval(kp, param, &p, &out);
        key_pattern_eval(kp, param, &p, &again); /* deterministic */
        FUZZ_CHECK(out.len == again.len && (out.len == 0 || memcmp(out.data, again.data, out.len) == 0));
        buf_fini(&out);
        buf_fini(&again);
        key_pattern_free(kp);
    }
    free(p.v);
    free(store);
    free(ptext);
    return 0;
}
