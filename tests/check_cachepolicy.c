/* check_cachepolicy.c - unit tests for the store decision on origin
 * responses and the HTTP date parser.
 *
 * Table-driven: each row gives a status, the response headers as
 * "Name: value" lines separated by '\n', the limits, and the expected
 * outcome; a failure names the row's line in this file. Every row runs at
 * the same fixed "now" (NOW, Tue, 14 Nov 2023 22:13:20 GMT), so dates in
 * the rows are literals. */
#include "config.h"

#include "memfill/cachepolicy.h"
#include "memfill/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOW ((time_t)1700000000)
#define MAXH 16

/* ---- helpers ---- */

struct headers {
    char *text; /* a copy of the row's headers, split in place */
    struct cachepolicy_header h[MAXH];
    size_t n;
};

/* Splits "A: x\nB: y" into h (views into a copy); "" gives no header. */
static void headers_parse(struct headers *hs, const char *lines)
{
    hs->text = xstrdup(lines);
    hs->n = 0;
    char *p = hs->text;
    while (*p) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        char *colon = memchr(p, ':', (size_t)(end - p));
        ck_assert_msg(colon != NULL, "row header without a colon: %s", p);
        ck_assert_int_lt(hs->n, MAXH);
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        hs->h[hs->n].name = p;
        hs->h[hs->n].name_len = (size_t)(colon - p);
        hs->h[hs->n].value = v;
        hs->h[hs->n].value_len = (size_t)(end - v);
        hs->n++;
        p = nl ? nl + 1 : end;
    }
}

static void headers_free(struct headers *hs)
{
    free(hs->text);
}

struct row {
    int line;
    int status;
    const char *headers;
    long default_ttl;
    unsigned min_ttl, max_ttl;
    int storable;
    long ttl;                  /* when storable */
    enum store_outcome reason; /* when not */
};

#define CC OUTCOME_SKIP_CACHE_CONTROL
#define OK OUTCOME_STORED

static void run_rows(const struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        struct headers hs;
        headers_parse(&hs, r->headers);
        struct cachepolicy_limits lim = {r->default_ttl, r->min_ttl, r->max_ttl};
        struct cachepolicy_result res;
        int got = cachepolicy_decide(r->status, hs.h, hs.n, NOW, &lim, &res);
        ck_assert_msg(got == res.storable, "row at line %d: return %d, storable %d", r->line,
                      got, res.storable);
        ck_assert_msg(res.storable == r->storable, "row at line %d: storable %d, expected %d",
                      r->line, res.storable, r->storable);
        if (r->storable)
            ck_assert_msg(res.ttl == r->ttl, "row at line %d: ttl %ld, expected %ld", r->line,
                          res.ttl, r->ttl);
        else
            ck_assert_msg(res.reason == r->reason, "row at line %d: reason %d, expected %d",
                          r->line, (int)res.reason, (int)r->reason);
        headers_free(&hs);
    }
}

#define RUN(rows) run_rows(rows, sizeof rows / sizeof rows[0])

/* ---- status ---- */

START_TEST(test_cachepolicy_status)
{
    static const struct row rows[] = {
        {__LINE__, 200, "Cache-Control: max-age=60", 300, 0, 0, 1, 60, OK},
        {__LINE__, 200, "", 300, 0, 0, 1, 300, OK},
        {__LINE__, 201, "Cache-Control: max-age=60", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 203, "Cache-Control: max-age=60", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 204, "", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 206, "Cache-Control: max-age=60", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 301, "Cache-Control: max-age=60", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 302, "", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 304, "", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 404, "Cache-Control: max-age=60", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 500, "", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 0, "", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        /* the status is checked first */
        {__LINE__, 404, "Set-Cookie: a=1", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
        {__LINE__, 500, "Cache-Control: no-store", 300, 0, 0, 0, 0, OUTCOME_SKIP_STATUS},
    };
    RUN(rows);
}
END_TEST

/* ---- cookies ---- */

START_TEST(test_cachepolicy_cookie)
{
    static const struct row rows[] = {
        {__LINE__, 200, "Set-Cookie: sid=1", 300, 0, 0, 0, 0, OUTCOME_SKIP_COOKIE},
        {__LINE__, 200, "set-cookie: sid=1", 300, 0, 0, 0, 0, OUTCOME_SKIP_COOKIE},
        {__LINE__, 200, "SET-COOKIE: ", 300, 0, 0, 0, 0, OUTCOME_SKIP_COOKIE},
        {__LINE__, 200, "Set-Cookie2: sid=1", 300, 0, 0, 0, 0, OUTCOME_SKIP_COOKIE},
        {__LINE__, 200, "Cache-Control: max-age=60\nSet-Cookie: a=1", 300, 0, 0, 0, 0,
         OUTCOME_SKIP_COOKIE},
        /* X-Accel-Expires does not override a cookie */
        {__LINE__, 200, "X-Accel-Expires: 60\nSet-Cookie: a=1", 300, 0, 0, 0, 0,
         OUTCOME_SKIP_COOKIE},
        /* the cookie reason wins over Cache-Control's */
        {__LINE__, 200, "Cache-Control: private\nSet-Cookie: a=1", 300, 0, 0, 0, 0,
         OUTCOME_SKIP_COOKIE},
        /* names that merely contain "cookie" are fine */
        {__LINE__, 200, "X-Set-Cookie-Hint: no\nCookie: a=1", 300, 0, 0, 1, 300, OK},
    };
    RUN(rows);
}
END_TEST

/* ---- Cache-Control ---- */

START_TEST(test_cachepolicy_cache_control_refusals)
{
    static const struct row rows[] = {
        {__LINE__, 200, "Cache-Control: no-store", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: private", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: no-cache", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: NO-CACHE", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "cache-control: Private, max-age=60", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: public, max-age=60, no-store", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: no-cache=\"Set-Cookie\", max-age=60", 300, 0, 0, 0, 0,
         CC},
        {__LINE__, 200, "Cache-Control: private=\"X-User\"", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=0", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=00", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: public, s-maxage=0", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: s-maxage=0, max-age=60", 300, 0, 0, 0, 0, CC},
        /* invalid freshness is stale (RFC 9111 4.2.1) */
        {__LINE__, 200, "Cache-Control: max-age=abc", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=-5", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=1.5", 300, 0, 0, 0, 0, CC},
        /* two Cache-Control headers read as one list */
        {__LINE__, 200, "Cache-Control: max-age=60\nCache-Control: no-store", 300, 0, 0, 0, 0,
         CC},
        {__LINE__, 200, "Cache-Control: public\nX-Other: 1\nCache-Control: private, max-age=9",
         300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "cache-control: max-age=60\nCACHE-CONTROL: no-cache", 300, 0, 0, 0, 0,
         CC},
        /* Cache-Control refuses even with an Expires in the future */
        {__LINE__, 200, "Cache-Control: no-cache\nExpires: Tue, 14 Nov 2023 23:13:20 GMT", 300,
         0, 0, 0, 0, CC},
    };
    RUN(rows);
}
END_TEST

START_TEST(test_cachepolicy_cache_control_ttl)
{
    static const struct row rows[] = {
        {__LINE__, 200, "Cache-Control: max-age=120", 300, 0, 0, 1, 120, OK},
        {__LINE__, 200, "Cache-Control: public, max-age=120", 300, 0, 0, 1, 120, OK},
        {__LINE__, 200, "Cache-Control: MAX-AGE=120", 300, 0, 0, 1, 120, OK},
        {__LINE__, 200, "Cache-Control: max-age=\"120\"", 300, 0, 0, 1, 120, OK},
        {__LINE__, 200, "Cache-Control:max-age=120,must-revalidate", 300, 0, 0, 1, 120, OK},
        {__LINE__, 200, "Cache-Control: must-revalidate, proxy-revalidate, max-age=5", 300, 0,
         0, 1, 5, OK},
        {__LINE__, 200, "Cache-Control: public", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Cache-Control: ", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Cache-Control: , ,", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Cache-Control: immutable, stale-while-revalidate=30", 300, 0, 0, 1,
         300, OK},
        /* s-maxage wins over max-age, including max-age=0 (the CDN pattern) */
        {__LINE__, 200, "Cache-Control: s-maxage=30, max-age=100", 300, 0, 0, 1, 30, OK},
        {__LINE__, 200, "Cache-Control: max-age=0, s-maxage=600", 300, 0, 0, 1, 600, OK},
        {__LINE__, 200, "Cache-Control: max-age=junk, s-maxage=600", 300, 0, 0, 1, 600, OK},
        /* a comma inside a quoted value does not split the list */
        {__LINE__, 200, "Cache-Control: ext=\"a, max-age=0\", max-age=70", 300, 0, 0, 1, 70,
         OK},
        {__LINE__, 200, "Cache-Control: ext=\"a\\\", max-age=0\", max-age=71", 300, 0, 0, 1, 71,
         OK},
        /* repeated max-age: the smallest */
        {__LINE__, 200, "Cache-Control: max-age=90, max-age=40", 300, 0, 0, 1, 40, OK},
        {__LINE__, 200, "Cache-Control: max-age=40\nCache-Control: max-age=90", 300, 0, 0, 1, 40,
         OK},
        /* Age is subtracted; a response as old as its lifetime is stale */
        {__LINE__, 200, "Cache-Control: max-age=100\nAge: 40", 300, 0, 0, 1, 60, OK},
        {__LINE__, 200, "Cache-Control: s-maxage=100\nAge: 99", 300, 0, 0, 1, 1, OK},
        {__LINE__, 200, "Cache-Control: max-age=100\nAge: 100", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=100\nAge: 5000", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: max-age=100\nAge: junk", 300, 0, 0, 1, 100, OK},
        {__LINE__, 200, "Age: 50", 300, 0, 0, 1, 300, OK},
        /* huge values count as 2^31 and are kept below it */
        {__LINE__, 200, "Cache-Control: max-age=99999999999999999999999", 300, 0, 0, 1,
         2147483647, OK},
        {__LINE__, 200, "Cache-Control: max-age=99999999999999999999999", 300, 0, 3600, 1, 3600,
         OK},
        /* max-age wins over Expires, even a past one */
        {__LINE__, 200, "Cache-Control: max-age=60\nExpires: Tue, 14 Nov 2023 21:00:00 GMT", 300,
         0, 0, 1, 60, OK},
        {__LINE__, 200, "Expires: Thu, 01 Jan 1970 00:00:00 GMT\nCache-Control: max-age=60", 300,
         0, 0, 1, 60, OK},
    };
    RUN(rows);
}
END_TEST

/* ---- Vary ---- */

START_TEST(test_cachepolicy_vary)
{
    static const struct row rows[] = {
        {__LINE__, 200, "Vary: Accept-Encoding", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "vary: accept-encoding", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Vary: Accept-Encoding, Accept-Encoding", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Vary:  Accept-Encoding ,", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Vary: ", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Vary: Accept-Encoding\nVary: Accept-Encoding", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "Vary: Cookie", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Vary: *", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Vary: Accept-Encoding, User-Agent", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Vary: Accept-Encoding\nVary: Accept-Language", 300, 0, 0, 0, 0, CC},
        /* every Vary line counts, wherever it is */
        {__LINE__, 200, "Vary: \nCache-Control: max-age=60\nvary: Cookie", 300, 0, 0, 0, 0, CC},
        /* Set-Cookie2 refuses as Set-Cookie does */
        {__LINE__, 200, "Set-Cookie2: a=1\nCache-Control: max-age=60", 300, 0, 0, 0, 0,
         OUTCOME_SKIP_COOKIE},
        {__LINE__, 200, "Vary: Accept-Encodings", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Vary: Accept", 300, 0, 0, 0, 0, CC},
        /* X-Accel-Expires does not override Vary */
        {__LINE__, 200, "X-Accel-Expires: 60\nVary: Cookie", 300, 0, 0, 0, 0, CC},
    };
    RUN(rows);
}
END_TEST

/* ---- X-Accel-Expires ---- */

START_TEST(test_cachepolicy_accel_expires)
{
    static const struct row rows[] = {
        {__LINE__, 200, "X-Accel-Expires: 42", 300, 0, 0, 1, 42, OK},
        {__LINE__, 200, "x-accel-expires:  42 ", 300, 0, 0, 1, 42, OK},
        {__LINE__, 200, "X-Accel-Expires: 0", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "X-Accel-Expires: 000", 300, 0, 0, 0, 0, CC},
        /* 0 refuses even where the rest would store */
        {__LINE__, 200, "X-Accel-Expires: 0\nCache-Control: max-age=100", 300, 0, 0, 0, 0, CC},
        /* "@T": absolute Unix time */
        {__LINE__, 200, "X-Accel-Expires: @1700000075", 300, 0, 0, 1, 75, OK},
        {__LINE__, 200, "X-Accel-Expires: @1700000000", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "X-Accel-Expires: @1600000000", 300, 0, 0, 0, 0, CC},
        /* 2100-01-01 is more than 2^31 s ahead: kept below 2^31 */
        {__LINE__, 200, "X-Accel-Expires: @4102444800", 300, 0, 0, 1, 2147483647, OK},
        /* it overrides Cache-Control and Expires, as in nginx */
        {__LINE__, 200, "X-Accel-Expires: 42\nCache-Control: max-age=100", 300, 0, 0, 1, 42, OK},
        {__LINE__, 200, "Cache-Control: private\nX-Accel-Expires: 60", 300, 0, 0, 1, 60, OK},
        {__LINE__, 200, "Cache-Control: no-store, no-cache\nX-Accel-Expires: 60", 300, 0, 0, 1,
         60, OK},
        {__LINE__, 200, "Cache-Control: max-age=0\nX-Accel-Expires: 60", 300, 0, 0, 1, 60, OK},
        {__LINE__, 200, "Expires: Thu, 01 Jan 1970 00:00:00 GMT\nX-Accel-Expires: 60", 300, 0,
         0, 1, 60, OK},
        /* invalid values are ignored, as nginx ignores them */
        {__LINE__, 200, "X-Accel-Expires: abc\nCache-Control: max-age=100", 300, 0, 0, 1, 100,
         OK},
        {__LINE__, 200, "X-Accel-Expires: -5\nCache-Control: max-age=100", 300, 0, 0, 1, 100,
         OK},
        {__LINE__, 200, "X-Accel-Expires: \nCache-Control: max-age=100", 300, 0, 0, 1, 100, OK},
        {__LINE__, 200, "X-Accel-Expires: @\nCache-Control: max-age=100", 300, 0, 0, 1, 100, OK},
        {__LINE__, 200, "X-Accel-Expires: 99999999999999999999\nCache-Control: max-age=100",
         300, 0, 0, 1, 100, OK},
        {__LINE__, 200, "X-Accel-Expires: abc\nCache-Control: private", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "X-Accel-Expires: 12abc", 300, 0, 0, 1, 300, OK},
        /* the first one counts */
        {__LINE__, 200, "X-Accel-Expires: 42\nX-Accel-Expires: 0", 300, 0, 0, 1, 42, OK},
    };
    RUN(rows);
}
END_TEST

/* ---- Expires ---- */

START_TEST(test_cachepolicy_expires)
{
    static const struct row rows[] = {
        /* against Date */
        {__LINE__, 200,
         "Date: Tue, 14 Nov 2023 22:13:20 GMT\nExpires: Tue, 14 Nov 2023 22:14:50 GMT", 300, 0,
         0, 1, 90, OK},
        /* Date differs from now (a clock skew): Expires - Date counts */
        {__LINE__, 200,
         "Date: Tue, 14 Nov 2023 20:00:00 GMT\nExpires: Tue, 14 Nov 2023 20:10:00 GMT", 300, 0,
         0, 1, 600, OK},
        /* without Date: against now */
        {__LINE__, 200, "Expires: Tue, 14 Nov 2023 22:14:50 GMT", 300, 0, 0, 1, 90, OK},
        /* an invalid Date: against now */
        {__LINE__, 200, "Date: yesterday\nExpires: Tue, 14 Nov 2023 22:14:50 GMT", 300, 0, 0, 1,
         90, OK},
        /* the other two date forms */
        {__LINE__, 200, "Expires: Tuesday, 14-Nov-23 22:14:50 GMT", 300, 0, 0, 1, 90, OK},
        {__LINE__, 200, "Expires: Tue Nov 14 22:14:50 2023", 300, 0, 0, 1, 90, OK},
        /* past, equal to Date, or invalid: refused */
        {__LINE__, 200, "Expires: Tue, 14 Nov 2023 21:13:20 GMT", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200,
         "Date: Tue, 14 Nov 2023 22:13:20 GMT\nExpires: Tue, 14 Nov 2023 22:13:20 GMT", 300, 0,
         0, 0, 0, CC},
        {__LINE__, 200, "Expires: 0", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Expires: -1", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Expires: ", 300, 0, 0, 0, 0, CC},
        {__LINE__, 200, "Expires: Tue, 14 Nov 2023 22:14:50 +0100", 300, 0, 0, 0, 0, CC},
        /* the first Expires counts */
        {__LINE__, 200,
         "Expires: Tue, 14 Nov 2023 22:14:50 GMT\nExpires: Tue, 14 Nov 2023 23:13:20 GMT", 300,
         0, 0, 1, 90, OK},
    };
    RUN(rows);
}
END_TEST

/* ---- limits and the default ---- */

START_TEST(test_cachepolicy_limits)
{
    static const struct row rows[] = {
        {__LINE__, 200, "", 300, 0, 0, 1, 300, OK},
        {__LINE__, 200, "", 77, 0, 0, 1, 77, OK},
        {__LINE__, 200, "", -1, 0, 0, 1, 0, OK},
        /* a 0 default is memcached's "never expire": capped by max_ttl */
        {__LINE__, 200, "", 0, 0, 0, 1, 0, OK},
        {__LINE__, 200, "", 0, 0, 500, 1, 500, OK},
        {__LINE__, 200, "", 0, 10, 0, 1, 10, OK},
        /* floor */
        {__LINE__, 200, "Cache-Control: max-age=5", 300, 60, 0, 1, 60, OK},
        {__LINE__, 200, "X-Accel-Expires: 5", 300, 60, 0, 1, 60, OK},
        {__LINE__, 200, "", 30, 60, 0, 1, 60, OK},
        {__LINE__, 200, "Cache-Control: max-age=600", 300, 60, 0, 1, 600, OK},
        /* cap */
        {__LINE__, 200, "Cache-Control: max-age=600", 300, 0, 100, 1, 100, OK},
        {__LINE__, 200, "X-Accel-Expires: 600", 300, 0, 100, 1, 100, OK},
        {__LINE__, 200, "", 300, 0, 100, 1, 100, OK},
        {__LINE__, 200, "Cache-Control: max-age=50", 300, 0, 100, 1, 50, OK},
        {__LINE__, 200, "Cache-Control: max-age=50", 300, 50, 50, 1, 50, OK},
        /* limits never turn a refusal into a store */
        {__LINE__, 200, "Cache-Control: max-age=0", 300, 60, 0, 0, 0, CC},
        {__LINE__, 200, "Cache-Control: private", 300, 60, 600, 0, 0, CC},
    };
    RUN(rows);
}
END_TEST

/* ---- HTTP dates ---- */

struct date_row {
    int line;
    const char *text;
    int ok;
    long long t;
};

START_TEST(test_cachepolicy_http_date)
{
    static const struct date_row rows[] = {
        {__LINE__, "Sun, 06 Nov 1994 08:49:37 GMT", 1, 784111777},
        {__LINE__, "Sunday, 06-Nov-94 08:49:37 GMT", 1, 784111777},
        {__LINE__, "Sun Nov  6 08:49:37 1994", 1, 784111777},
        {__LINE__, "Sun Nov 06 08:49:37 1994", 1, 784111777},
        {__LINE__, "Tue, 14 Nov 2023 22:13:20 GMT", 1, 1700000000},
        {__LINE__, "Tue, 14 Nov 2023 22:13:20 UTC", 1, 1700000000},
        {__LINE__, "  Tue, 14 Nov 2023 22:13:20 GMT \t", 1, 1700000000},
        /* the weekday is not checked, case is not significant */
        {__LINE__, "Mon, 14 Nov 2023 22:13:20 GMT", 1, 1700000000},
        {__LINE__, "tue, 14 nov 2023 22:13:20 gmt", 1, 1700000000},
        {__LINE__, "Tue, 4 Nov 2023 22:13:20 GMT", 1, 1700000000 - 10 * 86400},
        {__LINE__, "Thu, 01 Jan 1970 00:00:00 GMT", 1, 0},
        {__LINE__, "Thu, 29 Feb 2024 12:00:00 GMT", 1, 1709208000},
        {__LINE__, "Tue, 19 Jan 2038 03:14:08 GMT", 1, 2147483648LL},
        {__LINE__, "Mon, 01 Mar 2100 00:00:00 GMT", 1, 4107542400LL},
        /* RFC 850 two-digit years: below 70 is 20yy; four digits too */
        {__LINE__, "Tuesday, 01-Jan-69 00:00:00 GMT", 1, 3124224000LL},
        {__LINE__, "Thursday, 01-Jan-70 00:00:00 GMT", 1, 0},
        {__LINE__, "Sunday, 06-Nov-1994 08:49:37 GMT", 1, 784111777},
        /* invalid */
        {__LINE__, "", 0, 0},
        {__LINE__, "0", 0, 0},
        {__LINE__, "-1", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 22:13:20", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 22:13:20 CET", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 22:13:20 +0000", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 22:13:20 GMT junk", 0, 0},
        {__LINE__, "Tue, 14 Foo 2023 22:13:20 GMT", 0, 0},
        {__LINE__, "Tue, 32 Nov 2023 22:13:20 GMT", 0, 0},
        {__LINE__, "Tue, 31 Nov 2023 22:13:20 GMT", 0, 0},
        {__LINE__, "Tue, 00 Nov 2023 22:13:20 GMT", 0, 0},
        {__LINE__, "Wed, 29 Feb 2023 12:00:00 GMT", 0, 0},
        {__LINE__, "Thu, 29 Feb 2100 12:00:00 GMT", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 24:00:00 GMT", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 22:60:00 GMT", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 22:13:61 GMT", 0, 0},
        {__LINE__, "Tue, 14 Nov 2023 2:13:20 GMT", 0, 0},
        {__LINE__, "Tue, 14 Nov 23 22:13:20 GMT", 0, 0},
        {__LINE__, "Tue, 14 Nov 20233 22:13:20 GMT", 0, 0},
        {__LINE__, "Tue, 114 Nov 2023 22:13:20 GMT", 0, 0},
        {__LINE__, "Sat, 01 Jan 1899 00:00:00 GMT", 0, 0},
        {__LINE__, "Sunday, 06-Nov-994 08:49:37 GMT", 0, 0},
        {__LINE__, "Sunday, 06-Nov-94 08:49:37", 0, 0},
        {__LINE__, "Sun Nov  6 08:49:37 94", 0, 0},
        {__LINE__, "Sun Nov  6 08:49:37 1994 GMT", 0, 0},
        {__LINE__, "Sun, Nov  6 08:49:37 1994", 0, 0},
        {__LINE__, ", 06 Nov 1994 08:49:37 GMT", 0, 0},
        {__LINE__, "2023-11-14T22:13:20Z", 0, 0},
        {__LINE__, "1700000000", 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        time_t t = (time_t)-12345;
        int rc = cachepolicy_parse_http_date(rows[i].text, strlen(rows[i].text), &t);
        ck_assert_msg((rc == 0) == rows[i].ok, "row at line %d (\"%s\"): rc %d", rows[i].line,
                      rows[i].text, rc);
        if (rows[i].ok)
            ck_assert_msg((long long)t == rows[i].t, "row at line %d (\"%s\"): %lld, expected %lld",
                          rows[i].line, rows[i].text, (long long)t, rows[i].t);
        else
            ck_assert_msg(t == (time_t)-12345, "row at line %d: *out written on failure",
                          rows[i].line);
    }
}
END_TEST

/* The length is honoured: no read past it, no need for a NUL. */
START_TEST(test_cachepolicy_http_date_length)
{
    static const char text[] = "Tue, 14 Nov 2023 22:13:20 GMTxyz";
    time_t t = 0;
    ck_assert_int_eq(cachepolicy_parse_http_date(text, strlen(text) - 3, &t), 0);
    ck_assert_int_eq((long long)t, 1700000000);
    ck_assert_int_eq(cachepolicy_parse_http_date(text, strlen(text), &t), -1);
    char *exact = xmalloc(10);
    memcpy(exact, "Tue, 14 No", 10); /* no NUL: ASan sees any overread */
    ck_assert_int_eq(cachepolicy_parse_http_date(exact, 10, &t), -1);
    free(exact);
}
END_TEST

/* Formats tm in form f (0 IMF-fixdate, 1 RFC 850, 2 asctime), in the C
 * locale (setlocale is never called). Literal formats keep -Wformat=2 on. */
static size_t format_date(int f, const struct tm *tm, char *out, size_t outlen)
{
    switch (f) {
    case 0: return strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", tm);
    case 1: {
        /* "%y" by hand: gcc's -Wformat-y2k rightly frowns on it */
        size_t n = strftime(out, outlen, "%A, %d-%b-", tm);
        n += (size_t)snprintf(out + n, outlen - n, "%02d", tm->tm_year % 100);
        return n + strftime(out + n, outlen - n, " %H:%M:%S GMT", tm);
    }
    default: return strftime(out, outlen, "%a %b %e %H:%M:%S %Y", tm);
    }
}

/* Every form agrees with gmtime() over a spread of times, 1970 to 2099. */
START_TEST(test_cachepolicy_http_date_roundtrip)
{
    for (long long t = 0; t < 4102444800LL; t += 86400LL * 37 + 3607) {
        time_t tt = (time_t)t;
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
        for (int f = 0; f < 3; f++) {
            /* the two-digit year only covers 1970-2069 */
            if (f == 1 && tm.tm_year + 1900 >= 2070)
                continue;
            char text[64];
            size_t n = format_date(f, &tm, text, sizeof text);
            ck_assert_uint_gt(n, 0);
            time_t got = 0;
            ck_assert_msg(cachepolicy_parse_http_date(text, n, &got) == 0, "\"%s\" refused", text);
            ck_assert_msg((long long)got == t, "\"%s\": %lld, expected %lld", text,
                          (long long)got, t);
        }
    }
}
END_TEST

/* ---- suite ---- */

Suite *cachepolicy_suite(void);

Suite *cachepolicy_suite(void)
{
    Suite *s = suite_create("cachepolicy");
    TCase *tc = tcase_create("Status");
    tcase_add_test(tc, test_cachepolicy_status);
    suite_add_tcase(s, tc);
    tc = tcase_create("Cookie");
    tcase_add_test(tc, test_cachepolicy_cookie);
    suite_add_tcase(s, tc);
    tc = tcase_create("CacheControl");
    tcase_add_test(tc, test_cachepolicy_cache_control_refusals);
    tcase_add_test(tc, test_cachepolicy_cache_control_ttl);
    suite_add_tcase(s, tc);
    tc = tcase_create("Vary");
    tcase_add_test(tc, test_cachepolicy_vary);
    suite_add_tcase(s, tc);
    tc = tcase_create("AccelExpires");
    tcase_add_test(tc, test_cachepolicy_accel_expires);
    suite_add_tcase(s, tc);
    tc = tcase_create("Expires");
    tcase_add_test(tc, test_cachepolicy_expires);
    suite_add_tcase(s, tc);
    tc = tcase_create("Limits");
    tcase_add_test(tc, test_cachepolicy_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("HttpDate");
    tcase_add_test(tc, test_cachepolicy_http_date);
    tcase_add_test(tc, test_cachepolicy_http_date_length);
    tcase_add_test(tc, test_cachepolicy_http_date_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cachepolicy_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
