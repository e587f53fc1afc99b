/* fuzz_relay.c - libFuzzer target: the request the relay builds for an
 * origin (relay_build()) from arbitrary FastCGI params.
 *
 * Input layout: one byte choosing the key pattern (low 3 bits), whether
 * the store is ruled out (bit 3) and whether the route sets origin_host
 * (bit 4); then "NAME=value" params separated by '\n' (at most 64; a NUL
 * ends a value, as it would in libfcgi).
 *
 * Invariants: the URL starts with the origin and holds no byte a URL may
 * not hold raw; there are exactly nlines header lines, each "Name: value",
 * "Name;" or "Name:", with a name of letters, digits and '-' and no CR or
 * LF anywhere; nothing named X-Memfill-*, no client forwarding or
 * re-targeting header, no hop-by-hop header; a request that may be stored
 * carries no Authorization and no client header the key does not read;
 * building twice gives the same bytes. And the rule itself: adding params
 * that leave the key unchanged (headers and cookies the key does not
 * read, hostile forwarding headers) leaves a storable request's URL and
 * headers unchanged - what reaches the origin is a function of the key. */
#include "config.h"

#include "memfill/keypattern.h"
#include "memfill/relay.h"
#include "memfill/request.h"
#include "memfill/util.h"

#include "fuzzutil.h"

#define MAX_PARAMS 64

static const char *const patterns[8] = {
    "$uri$is_args$args",
    "$host$uri$is_args$args",
    "$request_uri",
    "$uri",
    "$uri$is_args$arg_page|$arg_Id",
    "$scheme://$host$uri$is_args$args|$cookie_lang|$http_accept_language",
    "$http_host$uri|$http_cookie",
    "fixed$args",
};

/* Params added to check that what is not in the key changes nothing. */
static const char *const noise[] = {
    "HTTP_X_NOISE=1",
    "HTTP_ACCEPT_CHARSET=evil",
    "HTTP_X_FORWARDED_HOST=evil.test",
    "HTTP_FORWARDED=host=evil.test",
    "HTTP_X_ORIGINAL_URL=/admin",
    "HTTP_X_HTTP_METHOD_OVERRIDE=DELETE",
    "HTTP_X_MEMFILL_TOKEN=t",
    "HTTP_AUTHORIZATION_X=no",
    "HTTP_USER_AGENT=evil",
};

static int name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static void check_request(const struct relay_request *rr, const char *origin, int storable_ok,
                          const char *pattern)
{
    size_t ol = strlen(origin);
    FUZZ_CHECK(rr->url.len > ol && memcmp(rr->url.data, origin, ol) == 0);
    FUZZ_CHECK(rr->url.data[ol] == '/');
    for (size_t i = 0; i < rr->url.len; i++) {
        unsigned char c = (unsigned char)rr->url.data[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '#');
    }
    size_t nul = 0;
    for (size_t i = 0; i < rr->lines.len; i++)
        nul += rr->lines.data[i] == '\0';
    FUZZ_CHECK(nul == rr->nlines);
    const char *p = rr->lines.data;
    for (size_t k = 0; k < rr->nlines; k++) {
        size_t n = strlen(p);
        FUZZ_CHECK(!memchr(p, '\r', n) && !memchr(p, '\n', n));
        size_t nl = 0;
        while (nl < n && name_char(p[nl]))
            nl++;
        FUZZ_CHECK(nl > 0 && nl < n && (p[nl] == ':' || p[nl] == ';'));
        FUZZ_CHECK(p[nl] == ';' ? nl + 1 == n : (nl + 1 == n || p[nl + 1] == ' '));
        FUZZ_CHECK(!(nl >= 10 && util_ascii_caseeq(p, "x-memfill-", 10)));
        static const char *const never[] = {
            "forwarded", "x-forwarded-port", "x-forwarded-prefix", "x-original-url",
            "x-rewrite-url", "x-http-method-override", "connection", "te", "upgrade",
            "transfer-encoding", "keep-alive", "proxy", "accept-encoding", "x-real-ip", NULL,
        };
        for (const char *const *w = never; *w; w++)
            FUZZ_CHECK(!(strlen(*w) == nl && util_ascii_caseeq(p, *w, nl)));
        if (storable_ok) {
            /* a storable request carries memfill's headers and the key's */
            static const char *const own[] = {"host", "x-forwarded-for", "x-forwarded-proto",
                                              "x-forwarded-host", "accept", "cookie",
                                              "accept-language", NULL};
            int known = 0;
            for (const char *const *w = own; *w; w++)
                known |= strlen(*w) == nl && util_ascii_caseeq(p, *w, nl);
            FUZZ_CHECK(known);
            if (nl == 6 && util_ascii_caseeq(p, "cookie", 6))
                FUZZ_CHECK(strstr(pattern, "cookie") != NULL);
            if (nl == 15 && util_ascii_caseeq(p, "accept-language", 15))
                FUZZ_CHECK(strstr(pattern, "accept_language") != NULL);
        }
        p += n + 1;
    }
}

static int same(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *pattern = patterns[data[0] & 7];
    int ruled_out = (data[0] >> 3) & 1;
    const char *origin_host = (data[0] >> 4) & 1 ? "origin.internal:8080" : NULL;
    char *store = fuzz_strndup(data + 1, size - 1);
    const char *params[MAX_PARAMS + sizeof noise / sizeof *noise + 1];
    size_t n = 0;
    for (char *s = store, *end = store + (size - 1); s < end && n < MAX_PARAMS;) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl)
            *nl = '\0';
        if (*s)
            params[n++] = s;
        s = nl ? nl + 1 : end;
    }
    params[n] = NULL;

    struct err e;
    err_clear(&e);
    struct key_pattern *kp = key_pattern_compile(pattern, &e);
    FUZZ_CHECK(kp != NULL);
    static const char origin[] = "http://origin.test:8000/base";
    struct relay_rules rules = {origin, origin_host, kp};
    struct request req;
    request_init(&req, (char **)params);
    request_key(&req, kp);
    req.store_ruled_out = ruled_out;
    struct relay_request a, again, noisy;
    relay_request_init(&a);
    relay_request_init(&again);
    relay_request_init(&noisy);
    int rc = relay_build(&rules, &req, &a);
    FUZZ_CHECK(rc == relay_build(&rules, &req, &again));
    if (rc == 0) {
        FUZZ_CHECK(same(&a.url, &again.url) && same(&a.lines, &again.lines));
        int storable = !a.passthrough && !a.no_store;
        check_request(&a, origin, storable, pattern);
        if (storable) {
            /* the same request with noise the key does not read */
            struct buf key = BUF_INIT, key2 = BUF_INIT;
            request_eval_key(kp, &req, &key);
            for (size_t i = 0; i < sizeof noise / sizeof *noise; i++)
                params[n + i] = noise[i];
            params[n + sizeof noise / sizeof *noise] = NULL;
            struct request req2;
            request_init(&req2, (char **)params);
            request_key(&req2, kp);
            request_eval_key(kp, &req2, &key2);
            FUZZ_CHECK(relay_build(&rules, &req2, &noisy) == 0);
            if (same(&key, &key2) && !noisy.no_store)
                FUZZ_CHECK(same(&a.url, &noisy.url) && same(&a.lines, &noisy.lines));
            request_fini(&req2);
            buf_fini(&key);
            buf_fini(&key2);
        }
    }
    relay_request_fini(&a);
    relay_request_fini(&again);
    relay_request_fini(&noisy);
    request_fini(&req);
    key_pattern_free(kp);
    free(store);
    return 0;
}
