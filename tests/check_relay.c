/* check_relay.c - unit tests for what the relay sends an origin
 * (relay_build(), relay_encode_path()) and for reading every instance of
 * a header (request_param_all(), request_header_joined(),
 * request_eval_key(), key_cookie_find(), key_arg_find()).
 *
 * Requests are made from hand-written param lists, as nginx passes them:
 * a header sent twice is two HTTP_* params. relay_build() is pure, so
 * every expectation is on the URL and the header lines it returns. */
#include "config.h"

#include "memfill/keypattern.h"
#include "memfill/urinorm.h"
#include "memfill/relay.h"
#include "memfill/request.h"
#include "memfill/outcome.h"
#include "memfill/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* A request over params (NULL-terminated; the array must outlive it). */
static void req_make(struct request *req, const char *const *params)
{
    request_init(req, (char **)params);
}

/* Builds the origin request for params with key pattern and origin_host. */
struct built {
    struct key_pattern *key;
    struct request req;
    struct relay_request rr;
    int rc;
};

static void build(struct built *b, const char *pattern, const char *origin_host,
                  const char *const *params, int ruled_out)
{
    struct err e;
    err_clear(&e);
    b->key = key_pattern_compile(pattern, &e);
    ck_assert_msg(b->key != NULL, "%s: %s", pattern, e.text);
    req_make(&b->req, params);
    request_key(&b->req, b->key); /* as the worker does before the handler */
    b->req.store_ruled_out = ruled_out;
    relay_request_init(&b->rr);
    struct relay_rules rules = {"http://origin.test:8000/base", origin_host, b->key};
    b->rc = relay_build(&rules, &b->req, &b->rr);
}

static void built_fini(struct built *b)
{
    relay_request_fini(&b->rr);
    request_fini(&b->req);
    key_pattern_free(b->key);
}

/* Returns the value of header line name in rr ("" for "Name;"), or NULL;
 * fails when the name appears twice. */
static const char *line_value(const struct relay_request *rr, const char *name)
{
    const char *found = NULL;
    size_t nl = strlen(name);
    const char *p = rr->lines.data;
    for (size_t k = 0; p && k < rr->nlines; k++, p += strlen(p) + 1) {
        if (strlen(p) < nl + 1 || !util_ascii_caseeq(p, name, nl) || (p[nl] != ':' && p[nl] != ';'))
            continue;
        ck_assert_msg(found == NULL, "header %s appears twice", name);
        if (p[nl] == ';')
            found = "";
        else if (p[nl + 1] == '\0')
            found = "(removed)";
        else
            found = p + nl + 2;
    }
    return found;
}

static void assert_line(const struct relay_request *rr, const char *name, const char *value)
{
    const char *v = line_value(rr, name);
    if (value) {
        ck_assert_msg(v != NULL, "header %s missing", name);
        ck_assert_str_eq(v, value);
    } else {
        ck_assert_msg(v == NULL, "header %s sent (\"%s\")", name, v ? v : "");
    }
}

/* ---- every instance of a param ---- */

START_TEST(test_param_all)
{
    static const char *const params[] = {
        "HTTP_COOKIE=a=1", "HTTP_X=one", "HTTP_X_Y=other", "HTTP_COOKIE=b=2", "HTTP_X=",
        "HTTP_X=three", "HTTP_COOKIEX=no", "HTTP_AUTHORIZATION=", NULL,
    };
    struct request req;
    req_make(&req, params);
    struct buf out = BUF_INIT;
    ck_assert_uint_eq(request_param_all(&req, "HTTP_NONE", ", ", &out), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_uint_eq(request_param_all(&req, "HTTP_X", "|", &out), 3);
    ck_assert_str_eq(out.data, "one||three");
    buf_reset(&out, 0);
    ck_assert_uint_eq(request_header_joined(&req, "HTTP_COOKIE", &out), 2);
    ck_assert_str_eq(out.data, "a=1; b=2");
    buf_reset(&out, 0);
    ck_assert_uint_eq(request_header_joined(&req, "HTTP_X", &out), 3);
    ck_assert_str_eq(out.data, "one, , three");
    buf_reset(&out, 0);
    /* an empty Authorization is still an Authorization */
    ck_assert_uint_eq(request_param_all(&req, "HTTP_AUTHORIZATION", ", ", &out), 1);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_str_eq(request_header_separator("HTTP_COOKIE"), "; ");
    ck_assert_str_eq(request_header_separator("HTTP_VARY"), ", ");
    buf_fini(&out);
    request_fini(&req);

    /* no params at all */
    struct request empty;
    request_init(&empty, NULL);
    ck_assert_uint_eq(request_param_all(&empty, "HTTP_X", ", ", &out), 0);
    request_fini(&empty);
}
END_TEST

/* Keys read repeated headers as nginx 1.22 reads them: $http_cookie and
 * $http_x_forwarded_for join, $cookie_NAME searches every line, any other
 * $http_NAME is the first. */
START_TEST(test_eval_key_repeated_headers)
{
    static const char *const params[] = {
        "DOCUMENT_URI=/p", "QUERY_STRING=",
        "HTTP_COOKIE=a=1", "HTTP_COOKIE=B=2, c=3", "HTTP_X_FOO=one", "HTTP_X_FOO=two",
        "HTTP_X_FORWARDED_FOR=1.1.1.1", "HTTP_X_FORWARDED_FOR=2.2.2.2", NULL,
    };
    struct request req;
    req_make(&req, params);
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile(
        "$uri|$http_cookie|$cookie_b|$cookie_A|$http_x_foo|$http_x_forwarded_for", &e);
    ck_assert_ptr_nonnull(kp);
    struct buf out = BUF_INIT;
    request_eval_key(kp, &req, &out);
    /* the values nginx 1.22.1 gave for the same two-line request */
    ck_assert_str_eq(out.data, "/p|a=1; B=2, c=3|2, c=3|1|one|1.1.1.1, 2.2.2.2");
    /* without get_all, each param counts once (the first) */
    buf_reset(&out, 0);
    key_pattern_eval(kp, request_param_cb, &req, &out);
    ck_assert_str_eq(out.data, "/p|a=1||1|one|1.1.1.1");
    buf_fini(&out);
    key_pattern_free(kp);
    request_fini(&req);
}
END_TEST

/* request_init normalises $uri once; a key reads it from the request
 * (request_param_cb's DOCUMENT_URI) and gets what evaluating the raw
 * params gives, for every kind of target. */
static const char *raw_param(void *ctx, const char *name)
{
    return request_param(ctx, name);
}

START_TEST(test_eval_key_uri_once)
{
    static const char *const targets[] = {
        "/a/b", "/a/./b/../c", "//a//b", "/a%2Fb", "/x%3Fy?z=1", "/a?q=1 2", "/a?\x7f",
        "/a b", "/%zz", "/%00", "/../a", "?x=1", "", "a/b", "/a#frag", "/a/%2e%2e/b?x",
        "/caf%C3%A9", "/a/..", "/a/.",
    };
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile("$uri|$document_uri|$request_uri|$args", &e);
    ck_assert_ptr_nonnull(kp);
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        for (int with_doc = 0; with_doc < 3; with_doc++) {
            char ru[128], doc[128];
            snprintf(ru, sizeof ru, "REQUEST_URI=%s", targets[i]);
            snprintf(doc, sizeof doc, "DOCUMENT_URI=%s", with_doc == 1 ? "/d" : "");
            const char *params[] = {ru, with_doc ? doc : NULL, NULL};
            struct request req;
            req_make(&req, params);
            struct buf once = BUF_INIT, raw = BUF_INIT;
            request_eval_key(kp, &req, &once);
            key_pattern_eval_all(kp, raw_param, request_param_all_cb, &req, &raw);
            ck_assert_msg(strcmp(once.data, raw.data) == 0, "%s (%d): \"%s\" vs \"%s\"",
                          targets[i], with_doc, once.data, raw.data);
            if (with_doc != 1) {
                /* the router's path: the part before '?', normalised */
                const char *qm = strchr(targets[i], '?');
                size_t plen = qm ? (size_t)(qm - targets[i]) : strlen(targets[i]);
                struct buf path = BUF_INIT;
                int ok = plen > 0 && key_normalize_uri(targets[i], plen, &path) == 0;
                ck_assert_msg(req.path_ok == ok, "%s: path_ok %d", targets[i], req.path_ok);
                if (ok)
                    ck_assert_str_eq(req.path.data, path.data);
                buf_fini(&path);
            }
            buf_fini(&once);
            buf_fini(&raw);
            request_fini(&req);
        }
    }
    /* no REQUEST_URI at all */
    const char *none[] = {"QUERY_STRING=a", NULL};
    struct request req;
    req_make(&req, none);
    struct buf once = BUF_INIT;
    request_eval_key(kp, &req, &once);
    ck_assert_str_eq(once.data, "|||a");
    buf_fini(&once);
    request_fini(&req);
    key_pattern_free(kp);
}
END_TEST

/* request_key: the raw key is MEMC_KEY when nginx sent it, else cache.key
 * evaluated here; drift when both exist and differ. */
START_TEST(test_request_key)
{
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile("$uri$is_args$args", &e);
    ck_assert_ptr_nonnull(kp);
    const char *own[] = {"REQUEST_URI=/a?x=1", "QUERY_STRING=x=1", NULL};
    const char *same[] = {"REQUEST_URI=/a?x=1", "QUERY_STRING=x=1", "MEMC_KEY=/a?x=1", NULL};
    const char *drift[] = {"REQUEST_URI=/a?x=1", "QUERY_STRING=x=1", "MEMC_KEY=/b", NULL};
    const char *const *cases[] = {own, same, drift};
    const char *keys[] = {"/a?x=1", "/a?x=1", "/b"};
    for (int i = 0; i < 3; i++) {
        struct request req;
        req_make(&req, cases[i]);
        ck_assert_int_eq(req.key_ready, 0);
        ck_assert_uint_eq(req.key_len, 0);
        request_key(&req, kp);
        ck_assert_int_eq(req.key_ready, 1);
        ck_assert_uint_eq(req.key_len, strlen(keys[i]));
        ck_assert_int_eq(memcmp(req.key, keys[i], req.key_len), 0);
        ck_assert_str_eq(req.own_key.data, "/a?x=1");
        ck_assert_int_eq(req.key_drift, i == 2);
        request_fini(&req);
    }
    /* a relay that was not told the verdict does not vouch for MEMC_KEY */
    struct request req;
    req_make(&req, same);
    struct relay_request rr;
    relay_request_init(&rr);
    struct relay_rules rules = {"http://o", NULL, kp};
    ck_assert_int_eq(relay_build(&rules, &req, &rr), 0);
    ck_assert_int_eq(rr.no_store, 1);
    ck_assert_int_eq(rr.no_store_reason, OUTCOME_SKIP_TARGET);
    relay_request_fini(&rr);
    request_fini(&req);
    key_pattern_free(kp);
}
END_TEST

START_TEST(test_cookie_and_arg_find)
{
    static const struct {
        const char *header, *name, *value; /* value NULL: not found */
    } rows[] = {
        {"a=1; b=2", "b", "2"},
        {"a=1; B=2", "b", "2"},
        {"bb=1; b = 2", "b", "2"},
        {"a=1, b=2; c=3", "b", "2"},
        {"b=; a=1", "b", ""},
        {"a=b=1", "b", NULL},
        {"ab=1", "b", NULL},
        {"b", "b", NULL},
        {"", "b", NULL},
        {"x=1;b=2; b=3", "b", "2"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *v = NULL;
        size_t vl = 0;
        int found = key_cookie_find(rows[i].header, strlen(rows[i].header), rows[i].name,
                                    strlen(rows[i].name), &v, &vl);
        ck_assert_msg(found == (rows[i].value != NULL), "row %zu", i);
        if (found)
            ck_assert_msg(vl == strlen(rows[i].value) && memcmp(v, rows[i].value, vl) == 0,
                          "row %zu: \"%.*s\"", i, (int)vl, v);
    }
    const char *v;
    size_t vl;
    ck_assert(key_arg_find("a=1&Page=2&page=3", 17, "page", 4, &v, &vl) && vl == 1 && *v == '2');
    ck_assert(!key_arg_find("xpage=2", 7, "page", 4, &v, &vl));
    ck_assert(!key_arg_find(NULL, 0, "page", 4, &v, &vl));
    ck_assert(key_arg_find("page=", 5, "page", 4, &v, &vl) && vl == 0);
}
END_TEST

/* ---- the target ---- */

START_TEST(test_encode_path)
{
    struct buf out = BUF_INIT;
    static const char in[] = "/a b/%/?/#/\"<>\\^`{|}/\x01\x7f\xc3\xa9/~!$&'()*+,;=:@-._";
    relay_encode_path(in, sizeof in - 1, &out);
    ck_assert_str_eq(out.data, "/a%20b/%25/%3F/%23/%22%3C%3E%5C%5E%60%7B%7C%7D/%01%7F%C3%A9/"
                               "~!$&'()*+,;=:@-._");
    buf_fini(&out);
}
END_TEST

START_TEST(test_build_url)
{
    static const struct {
        const char *key;
        const char *uri;   /* REQUEST_URI; DOCUMENT_URI is worked out from it */
        const char *query; /* QUERY_STRING, or NULL */
        const char *url;   /* after the origin */
        int reason;        /* OUTCOME_STORED: storable */
    } rows[] = {
        {"$uri$is_args$args", "/a/b", NULL, "/a/b", OUTCOME_STORED},
        {"$uri$is_args$args", "/a/b?x=1&y=%20", "x=1&y=%20", "/a/b?x=1&y=%20", OUTCOME_STORED},
        {"$uri$is_args$args", "/cat/zzz/..%2Fb", NULL, "/cat/b", OUTCOME_STORED},
        {"$uri$is_args$args", "//cat//./c/", NULL, "/cat/c/", OUTCOME_STORED},
        {"$uri$is_args$args", "/caf%c3%a9", NULL, "/caf%C3%A9", OUTCOME_STORED},
        {"$uri$is_args$args", "/a%20b%25", NULL, "/a%20b%25", OUTCOME_STORED},
        {"$uri$is_args$args", "/p?", "", "/p", OUTCOME_STORED},
        /* a decoded '?': relayed encoded, never stored */
        {"$uri$is_args$args", "/cat/x%3Fpage=2", NULL, "/cat/x%3Fpage=2", OUTCOME_SKIP_TARGET},
        {"$uri$is_args$args", "/x%3f?a=1", "a=1", "/x%3F?a=1", OUTCOME_SKIP_TARGET},
        /* $request_uri holds the raw target: no ambiguity */
        {"$request_uri", "/x%3F?a=1", "a=1", "/x%3F?a=1", OUTCOME_STORED},
        {"$request_uri", "/a/../b?q", "q", "/a/../b?q", OUTCOME_STORED},
        {"$request_uri", "//a%2f%41?q#f", "q", "//a%2f%41?q%23f", OUTCOME_STORED},
        {"$uri$request_uri", "/x/..%2Fa?q", "q", "/x/..%2Fa?q", OUTCOME_STORED},
        /* the args the key does not cover are not relayed */
        {"$uri", "/a?b=1", "b=1", "/a", OUTCOME_STORED},
        {"$uri$is_args$arg_page", "/l?x=1&PAGE=2&page=3", "x=1&PAGE=2&page=3", "/l?page=2",
         OUTCOME_STORED},
        {"$uri|$arg_b|$arg_a|$arg_B", "/l?a=1&b=2&c=3", "a=1&b=2&c=3", "/l?b=2&a=1",
         OUTCOME_STORED},
        {"$uri|$arg_a", "/l?a=&b=2", "a=&b=2", "/l", OUTCOME_STORED},
        /* bytes no URL holds raw are encoded in the args too */
        {"$uri$is_args$args", "/e?\xc3\xa9=1", "\xc3\xa9=1", "/e?%C3%A9=1", OUTCOME_STORED},
        /* a key without the path cannot describe the page */
        {"$host$args", "/a", NULL, "/a", OUTCOME_SKIP_TARGET},
        {"fixed", "/a?x", "x", "/a", OUTCOME_SKIP_TARGET},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *ru = xasprintf("REQUEST_URI=%s", rows[i].uri);
        char *qs = rows[i].query ? xasprintf("QUERY_STRING=%s", rows[i].query) : NULL;
        const char *params[] = {"REQUEST_METHOD=GET", ru, qs, NULL};
        struct built b;
        build(&b, rows[i].key, NULL, params, 0);
        ck_assert_msg(b.rc == 0, "row %zu: rc %d", i, b.rc);
        char *want = xasprintf("http://origin.test:8000/base%s", rows[i].url);
        ck_assert_msg(strcmp(b.rr.url.data, want) == 0, "row %zu: %s, want %s", i, b.rr.url.data,
                      want);
        ck_assert_msg(b.rr.no_store == (rows[i].reason != OUTCOME_STORED), "row %zu: no_store %d",
                      i, b.rr.no_store);
        if (b.rr.no_store)
            ck_assert_int_eq(b.rr.no_store_reason, rows[i].reason);
        ck_assert_str_eq(b.rr.method, "GET");
        ck_assert(!b.rr.send_body && !b.rr.passthrough);
        free(want);
        built_fini(&b);
        free(ru);
        free(qs);
    }
    /* targets that are no path: -1 */
    static const char *const bad[] = {"*", "", "http://x/", "/a%00b", "/../a", "/a%zz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *ru = xasprintf("REQUEST_URI=%s", bad[i]);
        const char *params[] = {ru, NULL};
        struct built b;
        build(&b, "$uri", NULL, params, 0);
        ck_assert_msg(b.rc == -1, "\"%s\" relayed as %s", bad[i], b.rr.url.data);
        built_fini(&b);
        free(ru);
    }
    /* a request whose store is ruled out keeps every arg */
    const char *params[] = {"REQUEST_URI=/a/./b?x=1", "QUERY_STRING=x=1", NULL};
    struct built b;
    build(&b, "$uri", NULL, params, 1);
    ck_assert_str_eq(b.rr.url.data, "http://origin.test:8000/base/a/b?x=1");
    built_fini(&b);
    build(&b, "$request_uri", NULL, params, 1);
    ck_assert_str_eq(b.rr.url.data, "http://origin.test:8000/base/a/./b?x=1");
    built_fini(&b);
}
END_TEST

/* MEMC_KEY differing from cache.key: what was relayed may not be what
 * nginx keyed on */
START_TEST(test_build_key_drift)
{
    const char *same[] = {"REQUEST_URI=/a?x=1", "QUERY_STRING=x=1", "MEMC_KEY=/a?x=1", NULL};
    struct built b;
    build(&b, "$uri$is_args$args", NULL, same, 0);
    ck_assert_int_eq(b.rr.no_store, 0);
    built_fini(&b);
    const char *drift[] = {"REQUEST_URI=/a?x=1", "QUERY_STRING=x=1", "MEMC_KEY=/a", NULL};
    build(&b, "$uri$is_args$args", NULL, drift, 0);
    ck_assert_int_eq(b.rr.no_store, 1);
    ck_assert_int_eq(b.rr.no_store_reason, OUTCOME_SKIP_TARGET);
    built_fini(&b);
    /* the absolute-target case: nginx's $host (MEMFILL_HOST) is in the key,
     * the Host line says otherwise; no drift, and nginx's host is relayed */
    const char *abs[] = {"REQUEST_URI=/a", "MEMFILL_HOST=good.test", "HTTP_HOST=evil.test",
                         "MEMC_KEY=good.test/a", NULL};
    build(&b, "$host$uri", NULL, abs, 0);
    ck_assert_int_eq(b.rr.no_store, 0);
    assert_line(&b.rr, "Host", "good.test");
    assert_line(&b.rr, "X-Forwarded-Host", "good.test");
    built_fini(&b);
    /* an nginx config without MEMFILL_HOST: memfill's $host comes from the
     * Host line and differs from nginx's key: not stored */
    const char *old[] = {"REQUEST_URI=/a", "HTTP_HOST=evil.test", "MEMC_KEY=good.test/a", NULL};
    build(&b, "$host$uri", NULL, old, 0);
    ck_assert_int_eq(b.rr.no_store, 1);
    ck_assert_int_eq(b.rr.no_store_reason, OUTCOME_SKIP_TARGET);
    built_fini(&b);
}
END_TEST

/* ---- the headers ---- */

static const char *const visitor[] = {
    "REQUEST_METHOD=GET", "REQUEST_URI=/p?q=1", "QUERY_STRING=q=1",
    "HTTP_HOST=Example.ORG.:8080",
    "HTTP_COOKIE=theme=dark", "HTTP_COOKIE=lang=fr; sessionid=s1",
    "HTTP_AUTHORIZATION=Bearer t",
    "HTTP_ACCEPT=text/html", "HTTP_ACCEPT_LANGUAGE=fr", "HTTP_ACCEPT_LANGUAGE=de",
    "HTTP_X_THING=1", "HTTP_X_THING=2", "HTTP_X_EMPTY=", "HTTP_X_BAD=a\r\nInjected: 1",
    "HTTP_X_FORWARDED_FOR=6.6.6.6", "HTTP_X_FORWARDED_HOST=evil.test",
    "HTTP_X_FORWARDED_PROTO=https", "HTTP_X_FORWARDED_PORT=1", "HTTP_X_FORWARDED_PREFIX=/e",
    "HTTP_FORWARDED=host=evil.test", "HTTP_X_REAL_IP=6.6.6.6", "HTTP_VIA=1.1 evil",
    "HTTP_X_ORIGINAL_URL=/admin", "HTTP_X_REWRITE_URL=/admin", "HTTP_X_ORIGINAL_HOST=evil",
    "HTTP_X_HTTP_METHOD_OVERRIDE=DELETE", "HTTP_X_METHOD_OVERRIDE=PUT",
    "HTTP_X_HTTP_METHOD=PUT", "HTTP_X_HOST=evil.test",
    "HTTP_X_MEMFILL_TOKEN=secret", "HTTP_X_MEMFILL_PURGE_KEY=/",
    "HTTP_CONNECTION=close", "HTTP_TE=trailers", "HTTP_UPGRADE=h2c", "HTTP_PROXY=http://e/",
    "HTTP_PROXY_AUTHORIZATION=x", "HTTP_EXPECT=100-continue", "HTTP_ACCEPT_ENCODING=gzip",
    "HTTP_IF_NONE_MATCH=\"x\"", "HTTP_RANGE=bytes=0-1", "HTTP_CONTENT_LENGTH=3",
    "HTTP_CONTENT_TYPE=text/plain", "HTTP_BAD.NAME=1",
    "REMOTE_ADDR=192.0.2.1", "REQUEST_SCHEME=https", "SERVER_NAME=example.org",
    NULL,
};

static void assert_never(const struct relay_request *rr)
{
    static const char *const never[] = {
        "X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded", "X-Real-Ip", "Via",
        "X-Original-Url", "X-Rewrite-Url", "X-Original-Host", "X-Http-Method-Override",
        "X-Method-Override", "X-Http-Method", "X-Host", "X-Memfill-Token",
        "X-Memfill-Purge-Key", "Connection", "Te", "Upgrade", "Proxy", "Proxy-Authorization",
        "Expect", "Accept-Encoding", "If-None-Match", "Range", "Content-Length", "X-Bad",
        "Bad.name", "Bad-Name",
    };
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        assert_line(rr, never[i], NULL);
    assert_line(rr, "X-Forwarded-For", "192.0.2.1");
    assert_line(rr, "X-Forwarded-Proto", "https");
}

START_TEST(test_headers_storable)
{
    struct built b;
    build(&b, "$uri$is_args$args", NULL, visitor, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(b.rr.passthrough, 0);
    static const char *const dropped[] = {
        "Cookie", "Authorization", "Accept-Language", "X-Thing", "X-Empty", "Content-Type",
    };
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        assert_line(&b.rr, dropped[i], NULL);
    assert_line(&b.rr, "Accept", "(removed)"); /* curl adds none of its own */
    assert_line(&b.rr, "Host", NULL);          /* the origin URL's, from curl */
    assert_line(&b.rr, "X-Forwarded-Host", "example.org");
    assert_never(&b.rr);
    built_fini(&b);

    /* the key reads headers and cookies: those values, as the key took them */
    build(&b, "$host$uri|$http_accept_language|$http_x_thing|$http_x_empty|$cookie_LANG|"
              "$cookie_none|$http_x_original_url|$http_accept", NULL, visitor, 0);
    assert_line(&b.rr, "Accept-Language", "fr");
    assert_line(&b.rr, "X-Thing", "1");
    assert_line(&b.rr, "X-Empty", NULL);
    assert_line(&b.rr, "Cookie", "LANG=fr");
    assert_line(&b.rr, "Accept", "text/html");
    assert_line(&b.rr, "Host", "example.org");
    assert_line(&b.rr, "X-Forwarded-Host", "example.org");
    assert_never(&b.rr);
    built_fini(&b);

    /* $http_cookie: the whole joined line; $http_host: the raw Host */
    build(&b, "$http_host$uri$http_cookie$cookie_lang", NULL, visitor, 0);
    assert_line(&b.rr, "Cookie", "theme=dark; lang=fr; sessionid=s1");
    assert_line(&b.rr, "Host", "Example.ORG.:8080");
    assert_line(&b.rr, "X-Forwarded-Host", "Example.ORG.:8080");
    built_fini(&b);

    /* origin_host wins for Host; the key's host stays in X-Forwarded-Host */
    build(&b, "$host$uri", "internal.test:81", visitor, 0);
    assert_line(&b.rr, "Host", "internal.test:81");
    assert_line(&b.rr, "X-Forwarded-Host", "example.org");
    built_fini(&b);
}
END_TEST

START_TEST(test_headers_passthrough)
{
    struct built b;
    build(&b, "$uri$is_args$args", NULL, visitor, 1);
    ck_assert_int_eq(b.rr.passthrough, 1);
    ck_assert_int_eq(b.rr.no_store, 1);
    assert_line(&b.rr, "Cookie", "theme=dark; lang=fr; sessionid=s1");
    assert_line(&b.rr, "Authorization", "Bearer t");
    assert_line(&b.rr, "Accept", "text/html");
    assert_line(&b.rr, "Accept-Language", "fr, de");
    assert_line(&b.rr, "X-Thing", "1, 2");
    assert_line(&b.rr, "X-Empty", "");
    assert_line(&b.rr, "Host", NULL);
    assert_line(&b.rr, "X-Forwarded-Host", "example.org");
    assert_line(&b.rr, "Content-Type", NULL);
    assert_never(&b.rr);
    ck_assert_int_eq(b.rr.send_body, 0); /* a GET sends no body */
    built_fini(&b);

    /* a POST: its body and Content-Type, its preconditions */
    static const char *const post[] = {
        "REQUEST_METHOD=POST", "REQUEST_URI=/f", "CONTENT_TYPE=application/json",
        "CONTENT_LENGTH=2", "HTTP_IF_MATCH=\"v\"", "HTTP_X_MEMFILL_TOKEN=t",
        "SERVER_NAME=_", NULL,
    };
    build(&b, "$uri", NULL, post, 0); /* not ruled out by the worker: the method does it */
    ck_assert_int_eq(b.rr.passthrough, 1);
    ck_assert_int_eq(b.rr.no_store_reason, OUTCOME_SKIP_METHOD);
    ck_assert_int_eq(b.rr.send_body, 1);
    ck_assert_str_eq(b.rr.method, "POST");
    assert_line(&b.rr, "Content-Type", "application/json");
    assert_line(&b.rr, "If-Match", "\"v\"");
    assert_line(&b.rr, "X-Memfill-Token", NULL);
    assert_line(&b.rr, "X-Forwarded-Host", NULL); /* server_name _ names no host */
    assert_line(&b.rr, "X-Forwarded-For", NULL);
    assert_line(&b.rr, "X-Forwarded-Proto", "http");
    built_fini(&b);

    /* HEAD is relayed as GET, without a body */
    static const char *const head[] = {"REQUEST_METHOD=HEAD", "REQUEST_URI=/h",
                                       "CONTENT_LENGTH=3", "HTTPS=on", "SERVER_NAME=*.ex.org",
                                       NULL};
    build(&b, "$uri", NULL, head, 0);
    ck_assert_str_eq(b.rr.method, "GET");
    ck_assert_int_eq(b.rr.send_body, 0);
    ck_assert_int_eq(b.rr.passthrough, 0);
    assert_line(&b.rr, "X-Forwarded-Proto", "https");
    assert_line(&b.rr, "X-Forwarded-Host", NULL);
    built_fini(&b);
}
END_TEST

/* relay_build reuses its buffers: a second build starts empty */
START_TEST(test_build_reuse)
{
    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile("$uri$is_args$args", &e);
    struct relay_request rr;
    relay_request_init(&rr);
    struct relay_rules rules = {"http://o", NULL, kp};
    for (int i = 0; i < 3; i++) {
        const char *params[] = {"REQUEST_URI=/x", "HTTP_ACCEPT=a", NULL};
        struct request req;
        req_make(&req, params);
        req.store_ruled_out = i & 1;
        ck_assert_int_eq(relay_build(&rules, &req, &rr), 0);
        ck_assert_str_eq(rr.url.data, "http://o/x");
        ck_assert_uint_eq(rr.nlines, 2); /* Accept (or its removal), X-Forwarded-Proto */
        ck_assert_str_eq(line_value(&rr, "Accept"), (i & 1) ? "a" : "(removed)");
        request_fini(&req);
    }
    relay_request_fini(&rr);
    key_pattern_free(kp);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("Instances");
    tcase_add_test(tc, test_param_all);
    tcase_add_test(tc, test_eval_key_repeated_headers);
    tcase_add_test(tc, test_eval_key_uri_once);
    tcase_add_test(tc, test_request_key);
    tcase_add_test(tc, test_cookie_and_arg_find);
    suite_add_tcase(s, tc);
    tc = tcase_create("Target");
    tcase_add_test(tc, test_encode_path);
    tcase_add_test(tc, test_build_url);
    tcase_add_test(tc, test_build_key_drift);
    suite_add_tcase(s, tc);
    tc = tcase_create("Headers");
    tcase_add_test(tc, test_headers_storable);
    tcase_add_test(tc, test_headers_passthrough);
    tcase_add_test(tc, test_build_reuse);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
