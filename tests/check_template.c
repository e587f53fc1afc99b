/* check_template.c - Check suite for the Mustache engine (src/content/template.c).
 *
 * The spec behaviour is data: tests/data/template/spec.json holds one case
 * per test of the Mustache spec's core modules (interpolation, sections,
 * inverted, comments, partials, delimiters), each {name, template, data,
 * partials, expected}; it is read once when the suite is built and run as
 * a loop test, so every case is its own test and a failure names the case.
 * The C tests cover what the spec leaves open or does not test: error
 * messages and their positions, the nesting and partial depth limits,
 * escaping, number formatting, truthiness, NUL bytes, and loading from
 * files with a partials folder (fixtures in tests/data/template/). */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/template.h"
#include "memfill/util.h"
#include "testutil.h"

/* The spec cases, loaded by template_suite(); NULL if the file failed. */
static json_t *spec_cases;
static char spec_error[512];

/* Compiles src (len bytes) as template "t", with the given partials (an
 * object of name -> text, may be NULL), and renders it over data. Returns
 * the output (free with free(); *outlen gets its length), or NULL with the
 * formatted error in msg. */
static char *render_n(const char *src, size_t len, const json_t *partials, const json_t *data,
                      size_t *outlen, char *msg, size_t msglen)
{
    struct template_set *set = template_set_new(NULL);
    struct err err;
    err_clear(&err);
    const char *name;
    json_t *text;
    json_object_foreach ((json_t *)partials, name, text) {
        if (!template_set_add_string(set, name, json_string_value(text), json_string_length(text),
                                     &err)) {
            err_format(&err, msg, msglen);
            template_set_free(set);
            return NULL;
        }
    }
    const struct template *t = template_set_add_string(set, "t", src, len, &err);
    struct buf out = BUF_INIT;
    if (!t || template_render(t, data, &out, &err) < 0) {
        err_format(&err, msg, msglen);
        buf_fini(&out);
        template_set_free(set);
        return NULL;
    }
    template_set_free(set);
    if (outlen)
        *outlen = out.len;
    return buf_steal(&out);
}

/* render_n over a NUL-terminated template and JSON text (or NULL data). */
static char *render(const char *src, const char *data_json, char *msg, size_t msglen)
{
    json_t *data = NULL;
    if (data_json) {
        json_error_t je;
        data = json_loads(data_json, JSON_DECODE_ANY, &je);
        ck_assert_msg(data != NULL, "bad test data %s: %s", data_json, je.text);
    }
    char *out = render_n(src, strlen(src), NULL, data, NULL, msg, msglen);
    json_decref(data);
    return out;
}

/* Asserts that src renders over data_json to exactly expected. */
#define ck_render(src, data_json, expected)                                                        \
    do {                                                                                           \
        char msg_[512] = "";                                                                       \
        char *got_ = render((src), (data_json), msg_, sizeof msg_);                                \
        ck_assert_msg(got_ != NULL, "render of \"%s\" failed: %s", (src), msg_);                   \
        ck_assert_msg(strcmp(got_, (expected)) == 0, "\"%s\" over %s: got \"%s\", want \"%s\"",    \
                      (src), (data_json) ? (data_json) : "NULL", got_, (expected));                \
        free(got_);                                                                                \
    } while (0)

/* Asserts that compiling src fails with exactly the message expected
 * ("t:line:col: text"). */
#define ck_compile_error(src, expected)                                                            \
    do {                                                                                           \
        char msg_[512] = "";                                                                       \
        char *got_ = render((src), NULL, msg_, sizeof msg_);                                       \
        ck_assert_msg(got_ == NULL, "\"%s\" compiled, rendering \"%s\"", (src), got_);             \
        ck_assert_msg(strcmp(msg_, (expected)) == 0, "\"%s\": got '%s', want '%s'", (src), msg_,   \
                      (expected));                                                                 \
    } while (0)

/*---- Spec cases ----*/

static void spec_load(void)
{
    char *path = tu_path("tests/data/template/spec.json");
    json_error_t je;
    spec_cases = json_load_file(path, JSON_DECODE_ANY, &je);
    if (!spec_cases)
        snprintf(spec_error, sizeof spec_error, "%s:%d: %s", path, je.line, je.text);
    else if (!json_is_array(spec_cases) || json_array_size(spec_cases) == 0)
        snprintf(spec_error, sizeof spec_error, "%s: not a non-empty array", path);
    free(path);
}

START_TEST(test_template_spec_file_loads)
{
    ck_assert_msg(spec_error[0] == '\0', "%s", spec_error);
    ck_assert_int_ge(json_array_size(spec_cases), 136);
}
END_TEST

START_TEST(test_template_spec_case)
{
    const json_t *c = json_array_get(spec_cases, (size_t)_i);
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *tmpl = json_object_get(c, "template");
    const json_t *expected = json_object_get(c, "expected");
    ck_assert_msg(name && json_is_string(tmpl) && json_is_string(expected),
                  "spec case %d: needs name, template and expected", _i);
    char msg[512] = "";
    size_t len = 0;
    char *got =
        render_n(json_string_value(tmpl), json_string_length(tmpl), json_object_get(c, "partials"),
                 json_object_get(c, "data"), &len, msg, sizeof msg);
    ck_assert_msg(got != NULL, "spec case '%s': %s", name, msg);
    int same =
        len == json_string_length(expected) && memcmp(got, json_string_value(expected), len) == 0;
    if (!same) {
        char *want = json_dumps(expected, JSON_ENCODE_ANY);
        json_t *g = json_stringn(got, len);
        char *have = json_dumps(g, JSON_ENCODE_ANY);
        json_decref(g);
        ck_assert_msg(same, "spec case '%s': got %s, want %s", name, have, want);
    }
    free(got);
}
END_TEST

/*---- Errors ----*/

START_TEST(test_template_error_unclosed_tag)
{
    ck_compile_error("ab\n  {{name", "t:2:3: unclosed tag: no '}}' after '{{'");
    ck_compile_error("{{{raw}}", "t:1:1: unclosed tag: no '}}}' after '{{'");
    ck_compile_error("x {{", "t:1:3: unclosed tag: no '}}' after '{{'");
    ck_compile_error("{{=<% %>=}}\n<%a", "t:2:1: unclosed tag: no '%>' after '<%'");
    ck_compile_error("{{! never ends", "t:1:1: unclosed tag: no '}}' after '{{'");
}
END_TEST

START_TEST(test_template_error_sections)
{
    ck_compile_error("a\n\n  {{#x}}", "t:3:9: section 'x' opened at 3:3 is not closed");
    ck_compile_error("{{#x}}{{#y}}\n{{/y}}", "t:2:7: section 'x' opened at 1:1 is not closed");
    ck_compile_error("{{#x}}\n  {{/y}}", "t:2:3: closing 'y' does not match 'x'");
    ck_compile_error("{{^a.b}}{{/a}}", "t:1:9: closing 'a' does not match 'a.b'");
    ck_compile_error("ok {{/x}}", "t:1:4: closing 'x' without an open section");
}
END_TEST

START_TEST(test_template_error_delimiters)
{
    const char *want = "t:1:3: bad delimiter tag: expected two delimiters separated by whitespace";
    ck_compile_error("x {{=<%=}}", want);
    ck_compile_error("x {{= a b c =}}", want);
    ck_compile_error("x {{= =}}", want);
    ck_compile_error("x {{=ab=}}", want);
    ck_compile_error("{{=", "t:1:1: unclosed tag: no '=}}' after '{{'");
}
END_TEST

START_TEST(test_template_error_names)
{
    ck_compile_error("\n {{}}", "t:2:2: empty tag name");
    ck_compile_error("{{  }}", "t:1:1: empty tag name");
    ck_compile_error("{{{ }}}", "t:1:1: empty tag name");
    ck_compile_error("{{&}}", "t:1:1: empty tag name");
    ck_compile_error("{{#}}{{/}}", "t:1:1: empty tag name");
    ck_compile_error("{{>}}", "t:1:1: empty tag name");
    ck_compile_error("{{a b}}", "t:1:1: tag name 'a b' contains whitespace");
    ck_compile_error("{{#a}}{{/a b}}", "t:1:7: tag name 'a b' contains whitespace");
    ck_compile_error("{{> a\tb }}", "t:1:1: tag name 'a\tb' contains whitespace");
    ck_compile_error("{{a..b}}", "t:1:1: invalid name 'a..b'");
    ck_compile_error("{{#.a}}{{/.a}}", "t:1:1: invalid name '.a'");
    ck_compile_error("{{>../etc/x}}", "t:1:1: partial name '../etc/x' is not a valid file name");
    ck_compile_error("{{>/etc/x}}", "t:1:1: partial name '/etc/x' is not a valid file name");
}
END_TEST

START_TEST(test_template_error_first_wins)
{
    struct template_set *set = template_set_new(NULL);
    struct err err;
    err_clear(&err);
    ck_assert_ptr_null(template_set_add_string(set, "one", "{{#a}}", 6, &err));
    ck_assert_ptr_null(template_set_add_string(set, "two", "{{", 2, &err));
    ck_assert_str_eq(err.source, "one");
    /* A NULL err is allowed. */
    ck_assert_ptr_null(template_set_add_string(set, "three", "{{", 2, NULL));
    template_set_free(set);
    template_set_free(NULL);
}
END_TEST

/*---- Limits ----*/

static char *nested_sections(int depth)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < depth; i++)
        buf_append_str(&b, "{{#a}}");
    buf_append_str(&b, "{{x}}");
    for (int i = 0; i < depth; i++)
        buf_append_str(&b, "{{/a}}");
    return buf_steal(&b);
}

START_TEST(test_template_limit_nesting)
{
    char *ok = nested_sections(100);
    ck_render(ok, "{\"a\":true,\"x\":\"deep\"}", "deep");
    free(ok);

    char *deep = nested_sections(101);
    char want[128];
    snprintf(want, sizeof want, "t:1:%d: sections nested deeper than 100", 100 * 6 + 1);
    ck_compile_error(deep, want);
    free(deep);

    /* Far deeper than the limit must fail the same way, not overflow. */
    char *huge = nested_sections(100000);
    char msg[512] = "";
    char *got = render(huge, NULL, msg, sizeof msg);
    ck_assert_ptr_null(got);
    ck_assert_ptr_nonnull(strstr(msg, "sections nested deeper than 100"));
    free(huge);
}
END_TEST

/* Data {"next": {"next": ... {"next": false}}} with levels truthy "next"
 * members. The last one is false rather than absent: a missing name would be
 * found again further down the context stack. */
static json_t *chain(int levels)
{
    json_t *v = json_pack("{s:b}", "next", 0);
    for (int i = 0; i < levels; i++) {
        json_t *up = json_object();
        json_object_set_new(up, "next", v);
        v = up;
    }
    return v;
}

START_TEST(test_template_limit_partial_depth)
{
    json_t *partials = json_pack("{s:s}", "r", "{{#next}}.{{>r}}{{/next}}");
    const char *src = "{{>r}}";
    char msg[512] = "";
    size_t len;

    /* 64 levels of partials render... */
    json_t *data = chain(63);
    char *got = render_n(src, strlen(src), partials, data, &len, msg, sizeof msg);
    ck_assert_msg(got != NULL, "%s", msg);
    ck_assert_uint_eq(len, 63);
    free(got);
    json_decref(data);

    /* ...the 65th is an error naming the partial tag. */
    data = chain(64);
    got = render_n(src, strlen(src), partials, data, &len, msg, sizeof msg);
    ck_assert_ptr_null(got);
    ck_assert_str_eq(msg, "r:1:11: partial 'r' nested deeper than 64 levels");
    json_decref(data);

    /* Unbounded self-inclusion stops at the limit too, and fast: the error
     * ends the whole render rather than one branch of it. */
    json_t *self = json_pack("{s:s}", "t", "x");
    const char *twice = "{{>t}}{{>t}}";
    got = render_n(twice, strlen(twice), self, NULL, &len, msg, sizeof msg);
    ck_assert_ptr_null(got);
    ck_assert_str_eq(msg, "t:1:1: partial 't' nested deeper than 64 levels");
    json_decref(self);
    json_decref(partials);
}
END_TEST

/* The deepest render the limits allow: 100 nested sections in each of 64
 * nested partials. It must end in the depth error, not a stack overflow. */
START_TEST(test_template_limit_deepest_render)
{
    struct buf src = BUF_INIT;
    for (int i = 0; i < 100; i++)
        buf_append_str(&src, "{{#a}}");
    buf_append_str(&src, "{{>t}}");
    for (int i = 0; i < 100; i++)
        buf_append_str(&src, "{{/a}}");
    json_t *data = json_pack("{s:[b]}", "a", 1);
    char msg[512] = "";
    char *got = render_n(src.data, src.len, NULL, data, NULL, msg, sizeof msg);
    ck_assert_ptr_null(got);
    ck_assert_str_eq(msg, "t:1:601: partial 't' nested deeper than 64 levels");
    json_decref(data);
    buf_fini(&src);
}
END_TEST

/* Arbitrary mixes of Mustache syntax must compile or fail cleanly; under
 * ASan/valgrind this catches reads past the end. */
START_TEST(test_template_limit_hostile_inputs)
{
    static const char *const pieces[] = {
        "{{",  "}}",  "{{{", "}}}",         "{{#a}}", "{{/a}}",  "{{^a}}", "{{>t}}", "{{>p}}",
        "{{!", "{{=", "=}}", "{{=<% %>=}}", "<%",     "%>",      "{{&",    "\n",     "\r\n",
        "  ",  ".",   "a",   "\0",          "{{.}}",  "{{a.b}}", "=",      "{",      "}",
    };
    json_t *data = json_loads("{\"a\":[1,{\"b\":\"<x>\"}],\"b\":true}", 0, NULL);
    json_t *partials = json_pack("{s:s}", "p", "{{#a}}\n  {{.}}\n{{/a}}\n");
    uint32_t seed = 12345;
    for (int round = 0; round < 3000; round++) {
        struct buf src = BUF_INIT;
        int n = (int)(seed % 24);
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = pieces[(seed >> 8) % (sizeof pieces / sizeof *pieces)];
            buf_append(&src, p, p[0] ? strlen(p) : 1);
        }
        seed = seed * 1103515245u + 12345u;
        char msg[512];
        char *out =
            render_n(src.data ? src.data : "", src.len, partials, data, NULL, msg, sizeof msg);
        free(out);
        buf_fini(&src);
    }
    json_decref(partials);
    json_decref(data);
}
END_TEST

/*---- Output and work caps (template_render_capped) ----*/

/* Compiles src as "t" (with partials, may be NULL) and renders it over
 * data_json with the cap; returns the render's answer, the output in out
 * (appended) and the formatted error in msg. */
static int render_capped(const char *src, const json_t *partials, const char *data_json,
                         size_t cap, struct buf *out, char *msg, size_t msglen)
{
    struct template_set *set = template_set_new(NULL);
    struct err err;
    err_clear(&err);
    const char *name;
    json_t *text;
    json_object_foreach ((json_t *)partials, name, text)
        ck_assert_ptr_nonnull(template_set_add_string(set, name, json_string_value(text),
                                                      json_string_length(text), NULL));
    const struct template *t = template_set_add_string(set, "t", src, strlen(src), &err);
    ck_assert_ptr_nonnull(t);
    json_t *data = data_json ? json_loads(data_json, 0, NULL) : NULL;
    int rc = template_render_capped(t, data, cap, out, &err);
    msg[0] = '\0';
    if (rc < 0)
        err_format(&err, msg, msglen);
    json_decref(data);
    template_set_free(set);
    return rc;
}

/* "[0,1,...,n-1]" as JSON text, in a static buffer. */
static const char *list_json(const char *name, int n)
{
    static char text[16384];
    int len = snprintf(text, sizeof text, "{\"%s\":[", name);
    for (int i = 0; i < n; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "%s%d", i ? "," : "", i);
    snprintf(text + len, sizeof text - (size_t)len, "]}");
    return text;
}

START_TEST(test_template_cap_exact)
{
    char msg[512];
    struct buf out = BUF_INIT;
    /* 10 items x "xy": 20 bytes fit a cap of 20... */
    ck_assert_int_eq(render_capped("{{#a}}xy{{/a}}", NULL, list_json("a", 10), 20, &out, msg,
                                   sizeof msg), 0);
    ck_assert_uint_eq(out.len, 20);
    /* ...not one of 19: stopped after the op that passed it. */
    buf_reset(&out, 0);
    ck_assert_int_eq(render_capped("{{#a}}xy{{/a}}", NULL, list_json("a", 10), 19, &out, msg,
                                   sizeof msg), TEMPLATE_TOO_LARGE);
    ck_assert_uint_eq(out.len, 20);
    ck_assert_str_eq(msg, "t:1:1: output larger than 19 bytes");
    ck_assert_uint_eq(out.data[out.len], '\0');
    /* The cap counts what this render appends, not what out held before. */
    buf_reset(&out, 0);
    buf_append_str(&out, "0123456789012345678901234567890123456789");
    ck_assert_int_eq(render_capped("{{#a}}xy{{/a}}", NULL, list_json("a", 10), 20, &out, msg,
                                   sizeof msg), 0);
    ck_assert_uint_eq(out.len, 60);
    /* 0 means no cap. */
    buf_reset(&out, 0);
    ck_assert_int_eq(render_capped("{{#a}}xy{{/a}}", NULL, list_json("a", 10), 0, &out, msg,
                                   sizeof msg), 0);
    ck_assert_uint_eq(out.len, 20);
    buf_fini(&out);
}
END_TEST

/* Five sections over a 100-item list would print 10^10 bodies: the render
 * stops just past the cap, and the error names the innermost section. */
START_TEST(test_template_cap_nested_sections_stop_early)
{
    char msg[512];
    struct buf out = BUF_INIT;
    const char *tpl = "<ul>\n{{#a}}{{#a}}{{#a}}\n  {{#a}}{{#a}}<li>{{.}}</li>{{/a}}{{/a}}\n"
                      "{{/a}}{{/a}}{{/a}}</ul>\n";
    uint64_t t0 = util_now_ms();
    ck_assert_int_eq(render_capped(tpl, NULL, list_json("a", 100), 1 << 20, &out, msg,
                                   sizeof msg), TEMPLATE_TOO_LARGE);
    ck_assert_uint_gt(out.len, 1 << 20);
    ck_assert_uint_le(out.len, (1 << 20) + 16);
    ck_assert_str_eq(msg, "t:3:9: output larger than 1048576 bytes");
    /* A generous bound: the uncapped render would take hours. */
    ck_assert_uint_lt(util_now_ms() - t0, 10000);
    buf_fini(&out);
}
END_TEST

/* A value is appended whole: the overshoot is at most one value. */
START_TEST(test_template_cap_overshoot_one_value)
{
    char msg[512];
    struct buf out = BUF_INIT;
    char data[300];
    snprintf(data, sizeof data, "{\"v\":\"%0200d\"}", 7);
    ck_assert_int_eq(render_capped("ab{{v}}cd{{v}}", NULL, data, 10, &out, msg, sizeof msg),
                     TEMPLATE_TOO_LARGE);
    ck_assert_uint_eq(out.len, 202);
    ck_assert_str_eq(msg, "t:1:3: output larger than 10 bytes");
    buf_fini(&out);
}
END_TEST

/* Sections that print nothing still cost steps: 8 per byte of the cap. */
START_TEST(test_template_cap_steps_without_output)
{
    char msg[512];
    struct buf out = BUF_INIT;
    ck_assert_int_eq(render_capped("{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}",
                                   NULL, list_json("a", 100), 4096, &out, msg, sizeof msg),
                     TEMPLATE_TOO_LARGE);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_str_eq(msg, "t:1:25: more than 32768 steps for 0 bytes of output");
    /* The same over a short list is well within the steps. */
    buf_reset(&out, 0);
    ck_assert_int_eq(render_capped("{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}.", NULL,
                                   list_json("a", 10), 4096, &out, msg, sizeof msg), 0);
    ck_assert_str_eq(out.data, ".");
    buf_fini(&out);
}
END_TEST

/* The cap holds through partials; the error names the partial's section. */
START_TEST(test_template_cap_through_partials)
{
    char msg[512];
    struct buf out = BUF_INIT;
    json_t *partials = json_pack("{s:s}", "p", "{{#a}}0123456789{{/a}}");
    ck_assert_int_eq(render_capped("{{>p}}{{>p}}", partials, list_json("a", 100), 2000, &out,
                                   msg, sizeof msg), 0);
    ck_assert_uint_eq(out.len, 2000);
    buf_reset(&out, 0);
    ck_assert_int_eq(render_capped("{{>p}}{{>p}}", partials, list_json("a", 100), 1500, &out,
                                   msg, sizeof msg), TEMPLATE_TOO_LARGE);
    ck_assert_uint_eq(out.len, 1510);
    ck_assert_str_eq(msg, "p:1:1: output larger than 1500 bytes");
    json_decref(partials);
    buf_fini(&out);
}
END_TEST

/*---- Values: escaping, numbers, truthiness ----*/

START_TEST(test_template_escape_html)
{
    ck_render("{{s}}|{{{s}}}|{{&s}}", "{\"s\":\"<a href=\\\"x\\\">&amp;</a>\"}",
              "&lt;a href=&quot;x&quot;&gt;&amp;amp;&lt;/a&gt;|<a href=\"x\">&amp;</a>|"
              "<a href=\"x\">&amp;</a>");
    /* Only & < > " are escaped, as in the spec; UTF-8 passes through. */
    ck_render("{{s}}", "{\"s\":\"it's caf\\u00e9 = ok\"}", "it's caf\xc3\xa9 = ok");
    /* Escaping applies to values, never to template text. */
    ck_render("<b>&{{s}}</b>", "{\"s\":\"&\"}", "<b>&&amp;</b>");
    ck_render("{{s}}", "{\"s\":\"&&<<>>\\\"\\\"\"}", "&amp;&amp;&lt;&lt;&gt;&gt;&quot;&quot;");
}
END_TEST

START_TEST(test_template_numbers)
{
    ck_render("{{a}} {{b}} {{c}} {{d}}",
              "{\"a\":0,\"b\":-5,\"c\":9007199254740993,\"d\":-9223372036854775808}",
              "0 -5 9007199254740993 -9223372036854775808");
    /* Reals: the shortest text that reads back as the same double. */
    ck_render("{{a}} {{b}} {{c}} {{d}} {{e}}",
              "{\"a\":1.5,\"b\":0.1,\"c\":1.210,\"d\":-2.5,\"e\":0.0}", "1.5 0.1 1.21 -2.5 0");
    ck_render("{{a}} {{b}} {{c}}", "{\"a\":1.0,\"b\":100.0,\"c\":123456789.125}",
              "1 100 123456789.125");
    ck_render("{{a}} {{b}} {{c}} {{d}}", "{\"a\":1e21,\"b\":1e20,\"c\":1.5e-7,\"d\":0.000001}",
              "1e+21 100000000000000000000 1.5e-7 0.000001");
    ck_render("{{a}} {{b}}", "{\"a\":0.30000000000000004,\"b\":1.7976931348623157e308}",
              "0.30000000000000004 1.7976931348623157e+308");
    ck_render("{{a}} {{b}}", "{\"a\":5e-324,\"b\":-1e-7}", "5e-324 -1e-7");
}
END_TEST

START_TEST(test_template_truthiness)
{
    /* false, null, a missing name and [] are falsey... */
    ck_render("{{#a}}A{{/a}}{{#b}}B{{/b}}{{#c}}C{{/c}}{{#z}}Z{{/z}}.",
              "{\"a\":false,\"b\":null,\"c\":[]}", ".");
    /* ...everything else is truthy, "" and 0 and {} included (the spec's
     * reference semantics; JavaScript's "" and 0 would be falsey). */
    ck_render("{{#s}}S[{{.}}]{{/s}}{{#n}}N[{{.}}]{{/n}}{{#o}}O{{/o}}{{#t}}T[{{.}}]{{/t}}",
              "{\"s\":\"\",\"n\":0,\"o\":{},\"t\":true}", "S[]N[0]OT[true]");
    ck_render("{{^s}}no{{/s}}{{^n}}no{{/n}}{{^o}}no{{/o}}.", "{\"s\":\"\",\"n\":0,\"o\":{}}", ".");
}
END_TEST

START_TEST(test_template_interpolate_other_types)
{
    /* Booleans print as words; objects and arrays print nothing. */
    ck_render("{{t}} {{f}} [{{o}}] [{{l}}] [{{n}}]",
              "{\"t\":true,\"f\":false,\"o\":{\"k\":1},\"l\":[1,2],\"n\":null}",
              "true false [] [] []");
    /* NULL data is an empty context. */
    ck_render("[{{x}}{{.}}{{#x}}y{{/x}}{{^x}}n{{/x}}]", NULL, "[n]");
    /* Names resolve through objects only, never into arrays or scalars. */
    ck_render("[{{l.0}}{{s.length}}]", "{\"l\":[1],\"s\":\"abc\"}", "[]");
}
END_TEST

START_TEST(test_template_render_appends)
{
    struct template_set *set = template_set_new(NULL);
    const struct template *t = template_set_add_string(set, "t", "{{.}}", 5, NULL);
    ck_assert_ptr_nonnull(t);
    struct buf out = BUF_INIT;
    buf_append_str(&out, "head:");
    json_t *v = json_string("x");
    ck_assert_int_eq(template_render(t, v, &out, NULL), 0);
    ck_assert_int_eq(template_render(t, v, &out, NULL), 0);
    ck_assert_str_eq(out.data, "head:xx");
    json_decref(v);
    buf_fini(&out);

    /* An empty render still leaves a NUL-terminated buffer. */
    const struct template *e = template_set_add_string(set, "e", "", 0, NULL);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(template_render(e, NULL, &out, NULL), 0);
    ck_assert_ptr_nonnull(out.data);
    ck_assert_str_eq(out.data, "");
    buf_fini(&out);
    template_set_free(set);
}
END_TEST

START_TEST(test_template_partial_nested_indentation)
{
    /* Standalone indentation adds up through nested partials; inline
     * partials are not indented; values are never indented. */
    json_t *partials = json_pack("{s:s,s:s}", "outer", "<o>\n  {{>inner}}\n</o>\n", "inner",
                                 "{{#xs}}\n- {{{.}}}\n{{/xs}}\nend {{>leaf}}\n");
    json_object_set_new(partials, "leaf", json_string("L1\nL2"));
    json_t *data = json_pack("{s:[s,s]}", "xs", "a\nb", "c");
    const char *src = "top\n\t{{>outer}}\n";
    char msg[512];
    size_t len;
    char *got = render_n(src, strlen(src), partials, data, &len, msg, sizeof msg);
    ck_assert_msg(got != NULL, "%s", msg);
    ck_assert_str_eq(got, "top\n\t<o>\n\t  - a\nb\n\t  - c\n\t  end L1\nL2\n\t</o>\n");
    free(got);
    json_decref(data);
    json_decref(partials);
}
END_TEST

/*---- Bytes ----*/

START_TEST(test_template_nul_bytes)
{
    static const char src[] = "a\0b{{x}}\0{{{x}}}|{{k\0ey}}|{{=\0< >\0=}}\0<k\0ey>\0";
    json_t *data = json_object();
    json_object_set_new(data, "x", json_stringn("c\0<", 3));
#if JANSSON_VERSION_HEX >= 0x020e00
    json_object_setn_new(data, "k\0ey", 4, json_string("K"));
    static const char want[] = "a\0bc\0&lt;\0c\0<|K|K";
#else
    static const char want[] = "a\0bc\0&lt;\0c\0<||";
#endif
    char msg[512] = "";
    size_t len = 0;
    char *got = render_n(src, sizeof src - 1, NULL, data, &len, msg, sizeof msg);
    ck_assert_msg(got != NULL, "%s", msg);
    ck_assert_uint_eq(len, sizeof want - 1);
    ck_assert_mem_eq(got, want, len);
    free(got);
    json_decref(data);

    /* NUL in a partial name cannot name a file. */
    static const char bad[] = "{{>a\0b}}";
    got = render_n(bad, sizeof bad - 1, NULL, NULL, &len, msg, sizeof msg);
    ck_assert_ptr_null(got);
    ck_assert_ptr_nonnull(strstr(msg, "is not a valid file name"));

    /* The template's end is len, not the first NUL: an unclosed tag that a
     * NUL-terminated reading would miss is still found, nothing past len is
     * read. */
    static const char cut[] = "ok{{x}}\0{{y";
    got = render_n(cut, sizeof cut - 1, NULL, NULL, &len, msg, sizeof msg);
    ck_assert_ptr_null(got);
    ck_assert_str_eq(msg, "t:1:9: unclosed tag: no '}}' after '{{'");
    got = render_n(cut, 7, NULL, NULL, &len, msg, sizeof msg);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, "ok");
    free(got);
}
END_TEST

/*---- Files ----*/

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b);
}

START_TEST(test_template_files_load_with_partials)
{
    char *dir = tu_path("tests/data/template/partials");
    char *page = tu_path("tests/data/template/page.mustache");
    char *json = tu_path("tests/data/template/page.json");
    char *exp = tu_path("tests/data/template/page.expected");
    struct template_set *set = template_set_new(dir);
    struct err err;
    err_clear(&err);
    const struct template *t = template_set_load(set, page, &err);
    char msg[512];
    ck_assert_msg(t != NULL, "%s", err_format(&err, msg, sizeof msg));
    ck_assert_ptr_eq(template_set_load(set, page, &err), t);

    json_error_t je;
    json_t *data = json_load_file(json, 0, &je);
    ck_assert_msg(data != NULL, "%s: %s", json, je.text);
    struct buf out = BUF_INIT;
    ck_assert_int_eq(template_render(t, data, &out, &err), 0);
    char *want = slurp(exp);
    ck_assert_str_eq(out.data, want);
    free(want);
    buf_fini(&out);
    json_decref(data);
    template_set_free(set);
    free(dir);
    free(page);
    free(json);
    free(exp);
}
END_TEST

START_TEST(test_template_files_errors)
{
    char *dir = tu_path("tests/data/template/partials");
    char *broken = tu_path("tests/data/template/broken.mustache");
    char *missing = tu_path("tests/data/template/no-such.mustache");
    struct template_set *set = template_set_new(dir);
    struct err err;
    char msg[512], want[1024];

    /* A syntax error in a partial names the partial's file. */
    err_clear(&err);
    ck_assert_ptr_null(template_set_load(set, broken, &err));
    snprintf(want, sizeof want,
             "%s/broken.mustache:4:1: section 'open' opened at 2:3 is not closed", dir);
    ck_assert_str_eq(err_format(&err, msg, sizeof msg), want);

    err_clear(&err);
    ck_assert_ptr_null(template_set_load(set, missing, &err));
    snprintf(want, sizeof want, "%s: cannot read template: No such file or directory", missing);
    ck_assert_str_eq(err_format(&err, msg, sizeof msg), want);

    template_set_free(set);

    /* A partial that exists but cannot be read is an error, not "missing". */
    char tmp[] = "/tmp/check_template.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    char *sub = xasprintf("%s/d.mustache", tmp);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    set = template_set_new(tmp);
    err_clear(&err);
    ck_assert_ptr_null(template_set_add_string(set, "x", "{{>d}}", 6, &err));
    snprintf(want, sizeof want, "%s: cannot read partial: Is a directory", sub);
    ck_assert_str_eq(err_format(&err, msg, sizeof msg), want);
    template_set_free(set);
    rmdir(sub);
    rmdir(tmp);
    free(sub);

    /* Without a partials folder, every partial not added by name is empty. */
    set = template_set_new(NULL);
    const struct template *t = template_set_add_string(set, "x", "[{{>header}}]", 13, NULL);
    ck_assert_ptr_nonnull(t);
    struct buf out = BUF_INIT;
    ck_assert_int_eq(template_render(t, NULL, &out, NULL), 0);
    ck_assert_str_eq(out.data, "[]");
    /* A partial added later is found at render time, by name. */
    ck_assert_ptr_nonnull(template_set_add_string(set, "header", "H", 1, NULL));
    buf_reset(&out, 0);
    ck_assert_int_eq(template_render(t, NULL, &out, NULL), 0);
    ck_assert_str_eq(out.data, "[H]");
    buf_fini(&out);
    template_set_free(set);
    free(dir);
    free(broken);
    free(missing);
}
END_TEST

Suite *template_suite(void);

Suite *template_suite(void)
{
    Suite *s = suite_create("template");

    spec_load();
    TCase *tc = tcase_create("Spec");
    tcase_add_test(tc, test_template_spec_file_loads);
    if (spec_cases)
        tcase_add_loop_test(tc, test_template_spec_case, 0, (int)json_array_size(spec_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("Errors");
    tcase_add_test(tc, test_template_error_unclosed_tag);
    tcase_add_test(tc, test_template_error_sections);
    tcase_add_test(tc, test_template_error_delimiters);
    tcase_add_test(tc, test_template_error_names);
    tcase_add_test(tc, test_template_error_first_wins);
    suite_add_tcase(s, tc);

    tc = tcase_create("Limits");
    tcase_add_test(tc, test_template_limit_nesting);
    tcase_add_test(tc, test_template_limit_partial_depth);
    tcase_add_test(tc, test_template_limit_deepest_render);
    tcase_add_test(tc, test_template_limit_hostile_inputs);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("Caps");
    tcase_add_test(tc, test_template_cap_exact);
    tcase_add_test(tc, test_template_cap_nested_sections_stop_early);
    tcase_add_test(tc, test_template_cap_overshoot_one_value);
    tcase_add_test(tc, test_template_cap_steps_without_output);
    tcase_add_test(tc, test_template_cap_through_partials);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("Values");
    tcase_add_test(tc, test_template_escape_html);
    tcase_add_test(tc, test_template_numbers);
    tcase_add_test(tc, test_template_truthiness);
    tcase_add_test(tc, test_template_interpolate_other_types);
    tcase_add_test(tc, test_template_render_appends);
    tcase_add_test(tc, test_template_partial_nested_indentation);
    suite_add_tcase(s, tc);

    tc = tcase_create("Bytes");
    tcase_add_test(tc, test_template_nul_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("Files");
    tcase_add_test(tc, test_template_files_load_with_partials);
    tcase_add_test(tc, test_template_files_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(template_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    json_decref(spec_cases);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
