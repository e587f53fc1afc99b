/* fuzz_cachepolicy.c - libFuzzer target: the store decision for origin
 * responses and the HTTP date parser.
 *
 * Input layout: one byte choosing the status and limits, then header lines
 * "Name: value" separated by '\n' (a line without ':' is a name with an
 * empty value). Invariants: a refusal names a skip counter; anything but
 * 200 or a Set-Cookie refuses; a storable TTL lies within the limits and
 * below 2^31. Every header value (and the whole input) goes through the
 * date parser; a date it accepts, printed again as IMF-fixdate, must parse
 * back to the same second. */
#include "config.h"

#include "memfill/cachepolicy.h"
#include "memfill/util.h"

#include "fuzzutil.h"

#include <time.h>

#define MAX_HEADERS 64

static void check_date(const char *s, size_t n)
{
    time_t t;
    if (cachepolicy_parse_http_date(s, n, &t) < 0)
        return;
    struct tm tm;
    FUZZ_CHECK(gmtime_r(&t, &tm) != NULL);
    FUZZ_CHECK(tm.tm_year + 1900 >= 1900 && tm.tm_year + 1900 <= 9999);
    char again[64];
    size_t len = strftime(again, sizeof again, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    FUZZ_CHECK(len > 0);
    time_t t2;
    FUZZ_CHECK(cachepolicy_parse_http_date(again, len, &t2) == 0);
    FUZZ_CHECK(t2 == t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const int statuses[] = {200, 200, 200, 200, 404, 301, 500, 206};
    static const struct cachepolicy_limits limits[] = {
        {300, 0, 0}, {0, 0, 0}, {60, 10, 3600}, {-1, 0, 30}, {86400 * 60, 5, 0}, {100, 50, 20},
    };
    int status = statuses[data[0] & 7];
    const struct cachepolicy_limits *lim = &limits[(data[0] >> 3) % 6];
    data++;
    size--;

    struct cachepolicy_header h[MAX_HEADERS];
    size_t n = 0;
    int cookie = 0;
    const char *p = (const char *)data, *end = p + size;
    while (p < end && n < MAX_HEADERS) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        h[n].name = p;
        h[n].name_len = (size_t)((colon ? colon : le) - p);
        h[n].value = colon ? colon + 1 : le;
        h[n].value_len = (size_t)(le - h[n].value);
        if ((h[n].name_len == 10 && util_ascii_caseeq(h[n].name, "set-cookie", 10)) ||
            (h[n].name_len == 11 && util_ascii_caseeq(h[n].name, "set-cookie2", 11)))
            cookie = 1;
        check_date(h[n].value, h[n].value_len);
        n++;
        p = eol ? eol + 1 : end;
    }
    check_date((const char *)data, size);

    time_t now = 1700000000;
    struct cachepolicy_result r;
    int ok = cachepolicy_decide(status, h, n, now, lim, &r);
    FUZZ_CHECK(ok == r.storable);
    if (!ok) {
        FUZZ_CHECK(r.reason == OUTCOME_SKIP_STATUS || r.reason == OUTCOME_SKIP_COOKIE ||
                   r.reason == OUTCOME_SKIP_CACHE_CONTROL);
    } else {
        FUZZ_CHECK(status == 200 && !cookie);
        FUZZ_CHECK(r.reason == OUTCOME_STORED);
        FUZZ_CHECK(r.ttl >= 0 && r.ttl < 2147483648L);
        FUZZ_CHECK(r.ttl >= (long)lim->min_ttl);
        if (lim->max_ttl && lim->max_ttl >= lim->min_ttl)
            FUZZ_CHECK(r.ttl <= (long)lim->max_ttl);
    }
    /* Deterministic for the same input and time. */
    struct cachepolicy_result r2;
    cachepolicy_decide(status, h, n, now, lim, &r2);
    FUZZ_CHECK(r2.storable == r.storable && r2.ttl == r.ttl && r2.reason == r.reason);
    return 0;
}
