/* fuzz_template.c - libFuzzer target: Mustache compile and render.
 *
 * Input layout: TEMPLATE, optionally followed by "\xff\xfe" and JSON data.
 * Without data (or when it does not parse) a fixed JSON value is used.
 * Every render is capped (template_render_capped, FUZZ_MAX_OUTPUT bytes),
 * as a worker renders: lists of any length are allowed, and nested
 * sections over them, which multiply the output, must stop at the cap
 * (TEMPLATE_TOO_LARGE) with the output overshooting it by at most one op's
 * text or one value, or stop on the steps cap when they print nothing. The
 * template is compiled under a name holding a space, which no partial tag
 * can name, so it cannot include itself; two fixed partials ("p", and "q"
 * which includes "p" twice) exercise partials and standalone indentation.
 * The set has no partials folder: no I/O. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/template.h"

#include "fuzzutil.h"

#include <jansson.h>

static const char fixed_json[] =
    "{\"title\":\"A & B <c> \\\"d\\\"\",\"n\":42,\"r\":1.5,\"big\":1e300,\"t\":true,"
    "\"f\":false,\"z\":null,\"e\":\"\",\"zero\":0,\"empty\":[],\"obj\":{\"a\":{\"b\":\"deep\"}},"
    "\"list\":[{\"name\":\"one\",\"list\":[\"x\"]}],\"nums\":[7],\"nul\":\"a\\u0000b\"}";

/* The output cap of every render here: small, so that inputs stay fast. */
#define FUZZ_MAX_OUTPUT (64u << 10)

/* Renders t over value with the cap into out; checks what the cap promises
 * (slack: the longest single piece an op can append) and returns the
 * render's answer. */
static int render_checked(const struct template *t, const json_t *value, size_t slack,
                          struct buf *out, struct err *e)
{
    int rc = template_render_capped(t, value, FUZZ_MAX_OUTPUT, out, e);
    FUZZ_CHECK(rc == 0 || rc == TEMPLATE_TOO_LARGE); /* no partial can recurse here */
    FUZZ_CHECK(out->data != NULL && out->data[out->len] == '\0');
    FUZZ_CHECK(rc != 0 || out->len <= FUZZ_MAX_OUTPUT);
    FUZZ_CHECK(out->len <= FUZZ_MAX_OUTPUT + slack);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *tpl, *js;
    size_t tlen, jlen;
    int has_json = fuzz_split(data, size, "\xff\xfe", 2, &tpl, &tlen, &js, &jlen);
    json_t *value = NULL;
    if (has_json)
        value = json_loadb((const char *)js, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!value)
        value = json_loads(fixed_json, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(value != NULL);

    struct template_set *set = template_set_new(NULL);
    struct err e;
    err_clear(&e);
    static const char p[] = "[{{title}}|{{n}}]\n  indented {{.}}\n";
    static const char q[] = "{{>p}}\n  {{>p}}\n";
    FUZZ_CHECK(template_set_add_string(set, "p", p, sizeof p - 1, &e) != NULL);
    FUZZ_CHECK(template_set_add_string(set, "q", q, sizeof q - 1, &e) != NULL);
    const struct template *t =
        template_set_add_string(set, "fuzz input", (const char *)tpl, tlen, &e);
    if (!t) {
        FUZZ_CHECK(e.text[0] != '\0');
    } else {
        /* One op appends at most its text or indentation (bounded by the
         * template and the fixed partials), or one value: a string of the
         * data, up to 6 times longer once HTML-escaped ("&quot;"). */
        size_t slack = tlen + 6 * (has_json ? jlen : sizeof fixed_json) + 64;
        struct buf out = BUF_INIT, again = BUF_INIT;
        int rc = render_checked(t, value, slack, &out, &e);
        FUZZ_CHECK(rc == 0 || e.text[0] != '\0');
        FUZZ_CHECK(render_checked(t, value, slack, &again, NULL) == rc);
        FUZZ_CHECK(out.len == again.len && memcmp(out.data, again.data, out.len) == 0);
        /* NULL data is an empty object. */
        struct buf none = BUF_INIT;
        render_checked(t, NULL, slack, &none, NULL);
        buf_fini(&none);
        buf_fini(&out);
        buf_fini(&again);
    }
    template_set_free(set);
    json_decref(value);
    return 0;
}
