/* cachepolicy.c - the store decision for origin responses.
 *
 * memcached is a shared cache that nginx replays as a bare 200 with the
 * body only, so this module errs on the side of not storing: anything that
 * marks a response personal (Set-Cookie, private, Vary on anything but
 * Accept-Encoding) or not reusable without revalidation (no-cache,
 * no-store, zero or invalid freshness) refuses. The one exception follows
 * nginx: a positive X-Accel-Expires is the origin speaking to the proxy
 * cache explicitly and overrides Cache-Control and Expires (but not
 * Set-Cookie, the status or Vary). All arithmetic is on long long and
 * clamped, so hostile header values cannot overflow. Pure: no clock read
 * (now is a parameter), no logging. */
#include "config.h"

#include "memfill/cachepolicy.h"
#include "memfill/util.h"

#include <string.h>

/* RFC 9111 §1.2.2: delta-seconds too large to represent count as 2^31. */
#define DELTA_MAX 2147483648LL
/* X-Accel-Expires values at or above this are invalid (and ignored). */
#define ACCEL_MAX (1LL << 40)

static int header_is(const struct cachepolicy_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && util_ascii_caseeq(h->name, name, n);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_ows(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*p)[*n - 1]))
        (*n)--;
}

/* Parses a decimal number (digits only, blanks around allowed), clamped
 * to cap. Returns 0 or -1 when s is empty or holds anything else. */
static int parse_num(const char *s, size_t n, long long cap, long long *out)
{
    trim(&s, &n);
    if (n == 0)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v < cap)
            v = v * 10 + (s[i] - '0');
    }
    *out = v < cap ? v : cap;
    return 0;
}

/* ---- HTTP dates ---- */

struct cursor {
    const char *p;
    const char *end;
};

static int take_char(struct cursor *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 0;
    }
    return -1;
}

/* Reads min..max digits into *out. */
static int take_digits(struct cursor *c, int min, int max, int *out, int *ndigits)
{
    int v = 0, n = 0;
    while (n < max && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p - '0');
        c->p++;
        n++;
    }
    if (n < min || (c->p < c->end && *c->p >= '0' && *c->p <= '9'))
        return -1;
    *out = v;
    if (ndigits)
        *ndigits = n;
    return 0;
}

static int take_alpha(struct cursor *c)
{
    const char *start = c->p;
    while (c->p < c->end &&
           ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z')))
        c->p++;
    return c->p > start ? 0 : -1;
}

static int take_month(struct cursor *c, int *mon)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (c->end - c->p < 3)
        return -1;
    for (int i = 0; i < 12; i++) {
        if (util_ascii_caseeq(c->p, names + 3 * i, 3)) {
            c->p += 3;
            *mon = i + 1;
            return 0;
        }
    }
    return -1;
}

static int take_time(struct cursor *c, int *h, int *m, int *s)
{
    if (take_digits(c, 2, 2, h, NULL) < 0 || take_char(c, ':') < 0 ||
        take_digits(c, 2, 2, m, NULL) < 0 || take_char(c, ':') < 0 ||
        take_digits(c, 2, 2, s, NULL) < 0)
        return -1;
    return *h <= 23 && *m <= 59 && *s <= 60 ? 0 : -1;
}

static int take_spaces(struct cursor *c)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p == ' ')
        c->p++;
    return c->p > start ? 0 : -1;
}

static int take_gmt(struct cursor *c)
{
    if (c->end - c->p < 3 ||
        (!util_ascii_caseeq(c->p, "GMT", 3) && !util_ascii_caseeq(c->p, "UTC", 3)))
        return -1;
    c->p += 3;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's
 * days_from_civil), so no timezone or locale is involved. */
static long long days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int make_time(int y, int mon, int d, int h, int mi, int s, time_t *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || y > 9999 || d < 1 || d > mdays[mon - 1] + (mon == 2 && is_leap(y)))
        return -1;
    long long t = days_from_civil(y, mon, d) * 86400LL + h * 3600LL + mi * 60LL + s;
    *out = (time_t)t;
    return 0;
}

int cachepolicy_parse_http_date(const char *s, size_t len, time_t *out)
{
    trim(&s, &len);
    struct cursor c = {s, s + len};
    int y = 0, mon = 0, d = 0, h = 0, mi = 0, sec = 0, ny = 0;
    if (take_alpha(&c) < 0)
        return -1;
    if (take_char(&c, ',') == 0) {
        /* IMF-fixdate "06 Nov 1994 08:49:37 GMT" or RFC 850 "06-Nov-94 ..." */
        if (take_spaces(&c) < 0 || take_digits(&c, 1, 2, &d, NULL) < 0)
            return -1;
        if (take_char(&c, '-') == 0) {
            if (take_month(&c, &mon) < 0 || take_char(&c, '-') < 0 ||
                take_digits(&c, 2, 4, &y, &ny) < 0 || ny == 3)
                return -1;
            if (ny == 2)
                y += y < 70 ? 2000 : 1900;
        } else if (take_spaces(&c) < 0 || take_month(&c, &mon) < 0 || take_spaces(&c) < 0 ||
                   take_digits(&c, 4, 4, &y, NULL) < 0) {
            return -1;
        }
        if (take_spaces(&c) < 0 || take_time(&c, &h, &mi, &sec) < 0 || take_spaces(&c) < 0 ||
            take_gmt(&c) < 0)
            return -1;
    } else {
        /* asctime "Nov  6 08:49:37 1994" */
        if (take_spaces(&c) < 0 || take_month(&c, &mon) < 0 || take_spaces(&c) < 0 ||
            take_digits(&c, 1, 2, &d, NULL) < 0 || take_spaces(&c) < 0 ||
            take_time(&c, &h, &mi, &sec) < 0 || take_spaces(&c) < 0 ||
            take_digits(&c, 4, 4, &y, NULL) < 0)
            return -1;
    }
    if (c.p != c.end)
        return -1;
    return make_time(y, mon, d, h, mi, sec, out);
}

/* ---- Cache-Control ---- */

struct cc {
    int refuse;          /* no-store, private, no-cache */
    int has_max_age;
    long long max_age;   /* smallest seen; -1 when a value was invalid */
    int has_s_maxage;
    long long s_maxage;
};

static void cc_age(long long *slot, int *has, const char *v, size_t vn, int has_value)
{
    long long x;
    if (!has_value || parse_num(v, vn, DELTA_MAX, &x) < 0)
        x = -1;
    if (!*has || x < *slot)
        *slot = x;
    *has = 1;
}

/* Reads one Cache-Control field value into cc. Directives are
 * case-insensitive; values may be tokens or quoted strings, and commas
 * inside quotes do not split. */
static void cc_parse(struct cc *cc, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        const char *name = p;
        while (p < end && *p != '=' && *p != ',' && !is_ows(*p))
            p++;
        size_t nn = (size_t)(p - name);
        while (p < end && is_ows(*p))
            p++;
        const char *v = NULL;
        size_t vn = 0;
        int has_value = 0;
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_ows(*p))
                p++;
            has_value = 1;
            if (p < end && *p == '"') {
                v = ++p;
                while (p < end && *p != '"')
                    p += (*p == '\\' && p + 1 < end) ? 2 : 1;
                vn = (size_t)(p - v);
                if (p < end)
                    p++;
            } else {
                v = p;
                while (p < end && *p != ',' && !is_ows(*p))
                    p++;
                vn = (size_t)(p - v);
            }
        }
        /* skip anything up to the next comma (junk after a value) */
        while (p < end && *p != ',')
            p++;
        if (nn == 0)
            continue;
        if ((nn == 8 && util_ascii_caseeq(name, "no-store", 8)) ||
            (nn == 7 && util_ascii_caseeq(name, "private", 7)) ||
            (nn == 8 && util_ascii_caseeq(name, "no-cache", 8)))
            cc->refuse = 1;
        else if (nn == 7 && util_ascii_caseeq(name, "max-age", 7))
            cc_age(&cc->max_age, &cc->has_max_age, v, vn, has_value);
        else if (nn == 8 && util_ascii_caseeq(name, "s-maxage", 8))
            cc_age(&cc->s_maxage, &cc->has_s_maxage, v, vn, has_value);
    }
}

/* Returns 1 when every member of the Vary list is Accept-Encoding. */
static int vary_ok(const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *item = p;
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        size_t len = (size_t)(stop - item);
        trim(&item, &len);
        if (len != 0 && !(len == 15 && util_ascii_caseeq(item, "accept-encoding", 15)))
            return 0;
        p = comma ? comma + 1 : end;
    }
    return 1;
}

static int refuse(struct cachepolicy_result *out, enum store_outcome reason)
{
    out->storable = 0;
    out->ttl = 0;
    out->reason = reason;
    return 0;
}

/* X-Accel-Expires: returns 1 with *ttl set (0 = do not store), or 0 when
 * the header is absent or invalid (then ignored, as nginx does). */
static int accel_expires(const struct cachepolicy_header *h, time_t now, long long *ttl)
{
    const char *v = h->value;
    size_t n = h->value_len;
    trim(&v, &n);
    int absolute = n > 0 && v[0] == '@';
    long long x;
    /* nginx's ngx_atoi refuses what overflows; so does this */
    if (parse_num(v + absolute, n - (size_t)absolute, ACCEL_MAX, &x) < 0 || x >= ACCEL_MAX)
        return 0;
    if (absolute)
        x = x > (long long)now ? x - (long long)now : 0;
    *ttl = x;
    return 1;
}

int cachepolicy_decide(int status, const struct cachepolicy_header *h, size_t n, time_t now,
                       const struct cachepolicy_limits *lim, struct cachepolicy_result *out)
{
    memset(out, 0, sizeof *out);
    if (status != 200)
        return refuse(out, OUTCOME_SKIP_STATUS);

    struct cc cc = {0, 0, 0, 0, 0};
    const struct cachepolicy_header *accel = NULL, *expires = NULL, *date = NULL, *age = NULL;
    for (size_t i = 0; i < n; i++) {
        if (header_is(&h[i], "set-cookie") || header_is(&h[i], "set-cookie2"))
            return refuse(out, OUTCOME_SKIP_COOKIE);
    }
    for (size_t i = 0; i < n; i++) {
        if (header_is(&h[i], "vary")) {
            if (!vary_ok(h[i].value, h[i].value_len))
                return refuse(out, OUTCOME_SKIP_CACHE_CONTROL);
        } else if (header_is(&h[i], "cache-control")) {
            cc_parse(&cc, h[i].value, h[i].value_len);
        } else if (header_is(&h[i], "x-accel-expires")) {
            if (!accel)
                accel = &h[i];
        } else if (header_is(&h[i], "expires")) {
            if (!expires)
                expires = &h[i];
        } else if (header_is(&h[i], "date")) {
            if (!date)
                date = &h[i];
        } else if (header_is(&h[i], "age")) {
            if (!age)
                age = &h[i];
        }
    }

    long long ttl = -1;
    long long x;
    if (accel && accel_expires(accel, now, &x)) {
        if (x == 0)
            return refuse(out, OUTCOME_SKIP_CACHE_CONTROL);
        ttl = x;
    } else if (cc.refuse) {
        return refuse(out, OUTCOME_SKIP_CACHE_CONTROL);
    } else if (cc.has_s_maxage || cc.has_max_age) {
        long long fresh = cc.has_s_maxage ? cc.s_maxage : cc.max_age;
        long long a = 0;
        if (age && parse_num(age->value, age->value_len, DELTA_MAX, &a) < 0)
            a = 0;
        if (fresh <= 0 || fresh <= a)
            return refuse(out, OUTCOME_SKIP_CACHE_CONTROL);
        ttl = fresh - a;
    } else if (expires) {
        time_t e, base = now, d;
        if (cachepolicy_parse_http_date(expires->value, expires->value_len, &e) < 0)
            return refuse(out, OUTCOME_SKIP_CACHE_CONTROL);
        if (date && cachepolicy_parse_http_date(date->value, date->value_len, &d) == 0)
            base = d;
        if ((long long)e <= (long long)base)
            return refuse(out, OUTCOME_SKIP_CACHE_CONTROL);
        ttl = (long long)e - (long long)base;
    } else {
        ttl = lim->default_ttl > 0 ? lim->default_ttl : 0;
    }

    /* the same order as store.c: cap (a 0 "forever" included), then floor */
    if (lim->max_ttl && (ttl == 0 || ttl > (long long)lim->max_ttl))
        ttl = lim->max_ttl;
    if (ttl < (long long)lim->min_ttl)
        ttl = lim->min_ttl;
    if (ttl > DELTA_MAX - 1)
        ttl = DELTA_MAX - 1;
    out->storable = 1;
    out->ttl = (long)ttl;
    out->reason = OUTCOME_STORED;
    return 1;
}
