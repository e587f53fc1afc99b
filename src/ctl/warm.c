/* warm.c - memfillctl warm: URLs in (parsed by warmlist.c), FastCGI
 * requests to memfill out, a progress bar and one summary line back.
 *
 * The params mirror what the generated nginx config sends (nginxconf.c's
 * fastcgi_params) for a plain GET, so memfill renders the same page and
 * computes the same key as for a visitor; MEMC_KEY is evaluated here with
 * the same cache.key pattern. MEMFILL_WARM=1 asks memfill to store before
 * answering and to say what it did in X-Memfill-Store. */
#include "config.h"

#include "memfill/warm.h"
#include "memfill/fcgiclient.h"
#include "memfill/log.h"
#include "memfill/urinorm.h"
#include "memfill/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* ---- params ---- */

static void add_param(struct warm_params *w, const char *name, const char *value, size_t vlen)
{
    if (w->n >= WARM_MAX_PARAMS)
        return;
    char *v = xstrndup(value, vlen);
    w->owned[w->n] = v;
    w->p[w->n].name = name;
    w->p[w->n].name_len = strlen(name);
    w->p[w->n].value = v;
    w->p[w->n].value_len = vlen;
    w->n++;
}

static void add_str(struct warm_params *w, const char *name, const char *value)
{
    add_param(w, name, value, strlen(value));
}

const char *warm_params_get(const struct warm_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->p[i].name, name) == 0)
            return p->owned[i];
    return NULL;
}

static const char *params_cb(void *ctx, const char *name)
{
    return warm_params_get(ctx, name);
}

void warm_params_build(const struct key_pattern *key, const struct warm_url *u,
                       const char *default_host, struct warm_params *out)
{
    memset(out, 0, sizeof *out);
    buf_init(&out->key);
    const char *ru = u->request_uri;
    const char *qm = strchr(ru, '?');
    struct buf uri = BUF_INIT;
    if (key_normalize_uri(ru, strlen(ru), &uri) < 0 || !uri.data)
        buf_append_char(&uri, '/'); /* warm_url_parse refused such targets */
    const char *host = u->host ? u->host : default_host;
    int https = strcmp(u->scheme, "https") == 0;

    add_str(out, "QUERY_STRING", qm ? qm + 1 : "");
    add_str(out, "REQUEST_METHOD", "GET");
    add_str(out, "CONTENT_TYPE", "");
    add_str(out, "CONTENT_LENGTH", "");
    add_param(out, "SCRIPT_NAME", uri.data, uri.len);
    add_str(out, "REQUEST_URI", ru);
    add_param(out, "DOCUMENT_URI", uri.data, uri.len);
    add_str(out, "SERVER_PROTOCOL", "HTTP/1.1");
    add_str(out, "REQUEST_SCHEME", u->scheme);
    if (https)
        add_str(out, "HTTPS", "on");
    add_str(out, "GATEWAY_INTERFACE", "CGI/1.1");
    add_str(out, "REMOTE_ADDR", "127.0.0.1");
    add_str(out, "REMOTE_PORT", "0");
    add_str(out, "SERVER_ADDR", "127.0.0.1");
    /* SERVER_NAME is the host without its port; SERVER_PORT the port or
     * the scheme's default. */
    if (host && *host) {
        const char *hend = host + strlen(host);
        const char *colon = NULL;
        if (host[0] == '[') {
            const char *close = strchr(host, ']');
            if (close && close[1] == ':')
                colon = close + 1;
        } else {
            colon = strrchr(host, ':');
        }
        add_param(out, "SERVER_PORT", colon ? colon + 1 : https ? "443" : "80",
                  colon ? (size_t)(hend - colon - 1) : strlen(https ? "443" : "80"));
        add_param(out, "SERVER_NAME", host, colon ? (size_t)(colon - host) : strlen(host));
        add_str(out, "HTTP_HOST", host);
    } else {
        add_str(out, "SERVER_PORT", https ? "443" : "80");
        add_str(out, "SERVER_NAME", "");
    }
    add_str(out, "HTTP_USER_AGENT", "memfillctl-warm/" PACKAGE_VERSION);
    key_pattern_eval(key, params_cb, out, &out->key);
    add_param(out, "MEMC_KEY", out->key.data ? out->key.data : "", out->key.len);
    add_str(out, "MEMFILL_WARM", "1");
    buf_fini(&uri);
}

void warm_params_fini(struct warm_params *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->owned[i]);
    buf_fini(&p->key);
    memset(p, 0, sizeof *p);
}

/* ---- tally ---- */

enum warm_outcome warm_tally_add(struct warm_tally *t, const struct fcgiclient_result *res,
                                 const char **detail, size_t *detail_len)
{
    t->requested++;
    if (res->error) {
        t->failed++;
        *detail = res->error;
        *detail_len = strlen(res->error);
        return WARM_FAILED;
    }
    size_t vlen = 0;
    const char *v = fcgiclient_find_header(res->head, res->head_len, "X-Memfill-Store", &vlen);
    if (!v) {
        t->failed++;
        *detail = "no X-Memfill-Store header in the answer (is this memfill?)";
        *detail_len = strlen(*detail);
        return WARM_FAILED;
    }
    *detail = v;
    *detail_len = vlen;
    if (vlen == 6 && memcmp(v, "stored", 6) == 0) {
        t->stored++;
        return WARM_STORED;
    }
    if (vlen > 5 && memcmp(v, "fail_", 5) == 0) {
        t->failed++;
        return WARM_FAILED;
    }
    t->skipped++;
    for (int c = 0; c < STATS_N; c++) {
        const char *n = stats_counter_name((enum stats_counter)c);
        if (strlen(n) == vlen && memcmp(n, v, vlen) == 0) {
            t->reasons[c]++;
            return WARM_SKIPPED;
        }
    }
    t->other_reasons++;
    return WARM_SKIPPED;
}

void warm_tally_format(const struct warm_tally *t, struct buf *out)
{
    buf_printf(out, "warm: %zu requested, %zu stored, %zu skipped", t->requested, t->stored,
               t->skipped);
    int first = 1;
    for (int c = 0; c < STATS_N; c++) {
        if (!t->reasons[c])
            continue;
        const char *n = stats_counter_name((enum stats_counter)c);
        if (strncmp(n, "skip_", 5) == 0)
            n += 5;
        buf_printf(out, "%s%s: %zu", first ? " (" : ", ", n, t->reasons[c]);
        first = 0;
    }
    if (t->other_reasons) {
        buf_printf(out, "%sother: %zu", first ? " (" : ", ", t->other_reasons);
        first = 0;
    }
    if (!first)
        buf_append_char(out, ')');
    buf_printf(out, ", %zu failed", t->failed);
}

/* ---- options ---- */

/* Largest --from or --sitemap file read (a sitemap holds at most 50 MB). */
#define WARM_LIST_MAX ((size_t)64 << 20)

/* Reads a URL list or sitemap whole; "-" is standard input. */
static int read_list(const char *path, struct buf *out, struct err *err)
{
    if (strcmp(path, "-") == 0)
        return util_read_fd(0, "(stdin)", WARM_LIST_MAX, out, err);
    return util_read_file(path, WARM_LIST_MAX, out, err);
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
    uint64_t v;
    if (util_parse_u64(s, strlen(s), max, &v) < 0 || v == 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

void warm_opts_fini(struct warm_opts *o)
{
    warm_list_fini(&o->urls);
    buf_fini(&o->notes);
}

int warm_opts_parse(int argc, char **argv, struct warm_opts *o, struct err *err)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 4;
    o->timeout_ms = 60000;
    o->progress = -1;
    warm_list_init(&o->urls);
    buf_init(&o->notes);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--from") == 0 || strcmp(a, "--sitemap") == 0) {
            if (!has) {
                err_set(err, NULL, 0, 0, "%s needs a FILE", a);
                return EX_USAGE;
            }
            const char *path = argv[++i];
            struct buf text = BUF_INIT;
            struct err re;
            err_clear(&re);
            if (read_list(path, &text, &re) < 0) {
                err_set(err, NULL, 0, 0, "cannot read %s: %s", path, re.text);
                buf_fini(&text);
                return EX_NOINPUT;
            }
            size_t got = a[2] == 'f' ? warm_list_parse(text.data, text.len, &o->urls)
                                     : warm_sitemap_parse(text.data, text.len, &o->urls);
            buf_fini(&text);
            if (got == 0)
                buf_printf(&o->notes, "%s: no URLs found\n", path);
        } else if (strcmp(a, "--concurrency") == 0 || strcmp(a, "-n") == 0) {
            if (!has || parse_uint(argv[++i], 1024, &o->concurrency) < 0) {
                err_set(err, NULL, 0, 0, "--concurrency: expected a number from 1 to 1024");
                return EX_USAGE;
            }
        } else if (strcmp(a, "--timeout") == 0) {
            unsigned s;
            if (!has || parse_uint(argv[++i], 86400, &s) < 0) {
                err_set(err, NULL, 0, 0, "--timeout: expected seconds from 1 to 86400");
                return EX_USAGE;
            }
            o->timeout_ms = s * 1000u;
        } else if (strcmp(a, "--fastcgi") == 0) {
            if (!has) {
                err_set(err, NULL, 0, 0, "--fastcgi needs an address");
                return EX_USAGE;
            }
            o->fastcgi = argv[++i];
        } else if (strcmp(a, "--host") == 0) {
            if (!has) {
                err_set(err, NULL, 0, 0, "--host needs a host name");
                return EX_USAGE;
            }
            o->host = argv[++i];
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
        } else if (strcmp(a, "--progress") == 0) {
            o->progress = 1;
        } else if (strcmp(a, "--no-progress") == 0) {
            o->progress = 0;
        } else if (a[0] == '-' && a[1]) {
            err_set(err, NULL, 0, 0, "unknown option \"%s\"", a);
            return EX_USAGE;
        } else {
            warm_list_add(&o->urls, a, strlen(a));
        }
    }
    if (o->urls.n == 0) {
        err_set(err, NULL, 0, 0, "expected URLs, --from FILE or --sitemap FILE");
        return EX_USAGE;
    }
    return 0;
}

/* ---- the run ---- */

struct run {
    const struct warm_opts *o;
    FILE *report;
    struct warm_tally tally;
    int bar;            /* a progress bar is on screen */
    int bar_drawn;
    size_t listed;      /* failure lines written */
    uint64_t started_ms;
    struct buf line;
};

#define MAX_LISTED 100

static void clear_bar(struct run *r)
{
    if (r->bar && r->bar_drawn) {
        fputs("\r\033[K", r->report);
        r->bar_drawn = 0;
    }
}

static void draw_bar(struct run *r, size_t total)
{
    const struct warm_tally *t = &r->tally;
    uint64_t ms = util_now_ms() - r->started_ms;
    double rate = ms ? (double)t->requested * 1000.0 / (double)ms : 0.0;
    unsigned width = 30;
    unsigned fill = total ? (unsigned)((double)width * (double)t->requested / (double)total) : 0;
    char bar[64];
    for (unsigned i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(r->report,
            "\r\033[Kwarm: [%s] %zu/%zu %.1f/s  stored %zu  skipped %zu  failed %zu", bar,
            t->requested, total, rate, t->stored, t->skipped, t->failed);
    fflush(r->report);
    r->bar_drawn = 1;
}

static void note(struct run *r, const char *url, const char *what, const char *detail,
                 size_t dlen, int status, uint64_t ms)
{
    clear_bar(r);
    buf_reset(&r->line, 1 << 16);
    log_escape(&r->line, url, strlen(url), 300);
    struct buf d = BUF_INIT;
    log_escape(&d, detail, dlen, 300);
    if (status)
        fprintf(r->report, "warm: %s %s: %d %s (%llu ms)\n", what, r->line.data, status, d.data,
                (unsigned long long)ms);
    else
        fprintf(r->report, "warm: %s %s: %s\n", what, r->line.data, d.data);
    buf_fini(&d);
}

static void on_done(void *ctx, const struct fcgiclient_result *res)
{
    struct run *r = ctx;
    const char *url = res->udata;
    const char *detail = "";
    size_t dlen = 0;
    enum warm_outcome oc = warm_tally_add(&r->tally, res, &detail, &dlen);
    if (oc == WARM_FAILED) {
        if (r->listed < MAX_LISTED)
            note(r, url, "failed", detail, dlen, res->error ? 0 : res->status, res->elapsed_ms);
        else if (r->listed == MAX_LISTED)
            fprintf(r->report, "warm: further failures are not listed\n");
        r->listed++;
    } else if (r->o->verbose) {
        note(r, url, oc == WARM_STORED ? "stored" : "skipped", detail, dlen, res->status,
             res->elapsed_ms);
    }
}

int warm_run(const struct config *cfg, const struct warm_opts *o, FILE *report, struct err *err)
{
    const char *addr = o->fastcgi ? o->fastcgi : cfg->listen;
    if (!addr) {
        err_set(err, NULL, 0, 0,
                "the config has no \"listen\" (memfill runs under spawn-fcgi): give "
                "--fastcgi ADDR, the address memfill answers on");
        return EX_USAGE;
    }
    struct err e;
    err_clear(&e);
    struct key_pattern *key = key_pattern_compile(cfg->key, &e);
    if (!key) {
        err_set(err, cfg->path, 0, 0, "cache.key: %s", e.text);
        return EX_CONFIG;
    }
    struct fcgiclient *c = fcgiclient_new(addr, o->timeout_ms, &e);
    if (!c) {
        err_set(err, NULL, 0, 0, "--fastcgi: %s", e.text);
        key_pattern_free(key);
        return EX_USAGE;
    }
    struct run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.report = report;
    r.started_ms = util_now_ms();
    buf_init(&r.line);
    r.bar = o->progress > 0 || (o->progress < 0 && isatty(fileno(report)));

    size_t next = 0, total = o->urls.n;
    uint64_t last_draw = 0;
    while (next < total || fcgiclient_pending(c) > 0) {
        while (next < total && fcgiclient_pending(c) < o->concurrency) {
            const char *text = o->urls.items[next++];
            struct warm_url u;
            const char *why = NULL;
            if (warm_url_parse(text, strlen(text), &u, &why) < 0) {
                struct fcgiclient_result bad;
                memset(&bad, 0, sizeof bad);
                bad.udata = (void *)(uintptr_t)text;
                bad.error = why;
                on_done(&r, &bad);
                continue;
            }
            struct warm_params p;
            warm_params_build(key, &u, o->host, &p);
            fcgiclient_start(c, p.p, p.n, (void *)(uintptr_t)text);
            warm_params_fini(&p);
            warm_url_fini(&u);
        }
        if (fcgiclient_poll(c, 100, on_done, &r) < 0) {
            clear_bar(&r);
            fprintf(report, "memfillctl: warm: poll: %s\n", strerror(errno));
            break;
        }
        uint64_t now = util_now_ms();
        if (r.bar && now - last_draw >= 100) {
            draw_bar(&r, total);
            last_draw = now;
        }
    }
    if (r.bar)
        draw_bar(&r, total);
    clear_bar(&r);
    buf_reset(&r.line, 1 << 16);
    warm_tally_format(&r.tally, &r.line);
    uint64_t ms = util_now_ms() - r.started_ms;
    fprintf(report, "%s\n", r.line.data);
    if (o->verbose)
        fprintf(report, "warm: %llu ms, %.1f pages/s at concurrency %u\n", (unsigned long long)ms,
                ms ? (double)r.tally.requested * 1000.0 / (double)ms : 0.0, o->concurrency);
    int failed = r.tally.failed > 0 || r.tally.requested < total;
    buf_fini(&r.line);
    fcgiclient_free(c);
    key_pattern_free(key);
    return failed ? 1 : 0;
}
