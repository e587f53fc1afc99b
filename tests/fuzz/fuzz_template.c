/* fuzz_template.c - libFuzzer target: Mustache compile and render.
 *
 * Input layout: TEMPLATE, optionally followed by "\xff\xfe" and JSON data.
 * Without data (or when it does not parse) a fixed JSON value is used.
 * The output must stay bounded, so the data never holds a list of more than
 * one element (nested sections over longer lists grow the output
 * exponentially: that is the operator's template, not a bug) and inputs
 * with such data are skipped. The template is compiled under a name holding
 * a space, which no partial tag can name, so it cannot include itself; two
 * fixed partials ("p", and "q" which includes "p" twice) exercise partials
 * and standalone indentation. The set has no partials folder: no I/O. */
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

/* Returns 1 when v holds no array longer than one element. */
static int small_lists(const json_t *v, int depth)
{
    if (depth > 200)
        return 0;
    if (json_is_array(v)) {
        if (json_array_size(v) > 1)
            return 0;
        return json_array_size(v) == 0 || small_lists(json_array_get(v, 0), depth + 1);
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!small_lists(x, depth + 1))
                return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *tpl, *js;
    size_t tlen, jlen;
    int has_json = fuzz_split(data, size, "\xff\xfe", 2, &tpl, &tlen, &js, &jlen);
    json_t *value = NULL;
    if (has_json) {
        value = json_loadb((const char *)js, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (value && !small_lists(value, 0)) {
            json_decref(value);
            return 0;
        }
    }
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
        struct buf out = BUF_INIT, again = BUF_INIT;
        int rc = template_render(t, value, &out, &e);
        FUZZ_CHECK(rc == 0); /* no partial can recurse here */
        FUZZ_CHECK(out.data != NULL && out.data[out.len] == '\0');
        FUZZ_CHECK(template_render(t, value, &again, NULL) == 0);
        FUZZ_CHECK(out.len == again.len && memcmp(out.data, again.data, out.len) == 0);
        /* NULL data is an empty object. */
        struct buf none = BUF_INIT;
        FUZZ_CHECK(template_render(t, NULL, &none, NULL) == 0);
        buf_fini(&none);
        buf_fini(&out);
        buf_fini(&again);
    }
    template_set_free(set);
    json_decref(value);
    return 0;
}
