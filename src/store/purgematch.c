/* purgematch.c - purge by raw-key prefix or regex: enumerate every node's
 * keys, match their raw form, delete the matches where they are.
 *
 * A node is done in passes: one dump collecting the matching escaped keys
 * (at most PURGEMATCH_PASS_BYTES of them), then pipelined deletes; when
 * the pass had more matches than it could hold, another pass follows
 * (the keys deleted are gone from its dump, so each pass makes progress).
 * A node that fails (cannot connect, times out, refuses the dump) is tried
 * again from its start, PURGEMATCH_ATTEMPTS times in all; what a failed
 * try deleted stays deleted. Nothing is journaled for a node that fails
 * every try: the report names it and the purge is partial. */
#include "config.h"

#include "memfill/purgematch.h"
#include "memfill/keyscan.h"
#include "memfill/mcclient.h"
#include "memfill/util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Backtracking steps a regex may take on one key before it is counted as
 * undecided (a key is at most 250 bytes: honest patterns need far less). */
#define REGEX_MATCH_LIMIT 100000
#define PASSES_MAX 1000

struct purgematch {
    enum purgematch_kind kind;
    char *prefix;
    size_t prefix_len;
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    int include_bookkeeping;
};

struct purgematch *purgematch_new(enum purgematch_kind kind, const char *pattern, size_t len,
                                  int include_bookkeeping, struct err *e)
{
    if (len == 0) {
        err_set(e, NULL, 0, 0, "an empty %s matches every key",
                kind == PURGEMATCH_PREFIX ? "prefix" : "regex");
        return NULL;
    }
    size_t max = kind == PURGEMATCH_PREFIX ? PURGEMATCH_PREFIX_MAX : PURGEMATCH_REGEX_MAX;
    if (len > max) {
        err_set(e, NULL, 0, 0, "the %s is %zu bytes, at most %zu are accepted",
                kind == PURGEMATCH_PREFIX ? "prefix" : "regex", len, max);
        return NULL;
    }
    struct purgematch *m = xcalloc(1, sizeof *m);
    m->kind = kind;
    m->include_bookkeeping = include_bookkeeping;
    m->prefix = xstrndup(pattern, len);
    m->prefix_len = len;
    if (kind == PURGEMATCH_REGEX) {
        int code;
        PCRE2_SIZE off;
        /* Byte mode, never UTF: keys may hold bytes that are not UTF-8. */
        m->re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_NEVER_UTF, &code, &off, NULL);
        if (!m->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            err_set(e, NULL, 0, 0, "regex at offset %zu: %s", (size_t)off, (const char *)msg);
            purgematch_free(m);
            return NULL;
        }
        /* Not JIT-compiled: a purge is no hot path (reading a node's keys
         * costs more than matching them), and the JIT's vector loads read
         * past the end of a key, which valgrind rightly cannot vouch for. */
        m->md = pcre2_match_data_create_from_pattern(m->re, NULL);
        m->mctx = pcre2_match_context_create(NULL);
        pcre2_set_match_limit(m->mctx, REGEX_MATCH_LIMIT);
    }
    return m;
}

void purgematch_free(struct purgematch *m)
{
    if (!m)
        return;
    pcre2_match_context_free(m->mctx);
    pcre2_match_data_free(m->md);
    pcre2_code_free(m->re);
    free(m->prefix);
    free(m);
}

int purgematch_test(struct purgematch *m, const char *raw, size_t len)
{
    static const char bk[] = PURGEMATCH_BOOKKEEPING;
    if (!m->include_bookkeeping && len >= sizeof bk - 1 && memcmp(raw, bk, sizeof bk - 1) == 0)
        return 0;
    if (m->kind == PURGEMATCH_PREFIX)
        return len >= m->prefix_len && memcmp(raw, m->prefix, m->prefix_len) == 0;
    int rc = pcre2_match(m->re, (PCRE2_SPTR)raw, len, 0, 0, m->md, m->mctx);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* One pass over a node's dump. */
struct pass {
    struct purgematch *m;
    struct buf keys; /* matched escaped keys, each followed by '\0' */
    int more;        /* matches left out: the buffer was full */
    uint64_t matched, match_errors;
};

static void on_key(void *ctx, const char *esc, size_t esclen, const char *raw, size_t rawlen)
{
    struct pass *p = ctx;
    if (!raw)
        return; /* not a key nginx can ask for */
    int t = purgematch_test(p->m, raw, rawlen);
    if (t < 0)
        p->match_errors++;
    if (t <= 0)
        return;
    if (p->keys.len + esclen + 1 > PURGEMATCH_PASS_BYTES) {
        p->more = 1;
        return;
    }
    p->matched++;
    buf_append(&p->keys, esc, esclen);
    buf_append_char(&p->keys, '\0');
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Copies e's text into the node's error, every byte outside printable
 * ASCII shown as '?' (it may quote a node's reply). */
static void set_error(struct purgematch_node *nd, const struct err *e)
{
    size_t i = 0;
    for (; e->text[i] && i + 1 < sizeof nd->error; i++) {
        unsigned char c = (unsigned char)e->text[i];
        nd->error[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    nd->error[i] = '\0';
}

/* Deletes the n NUL-separated keys in keys on node i through mc. */
static int delete_listed(struct mcclient *mc, size_t i, const struct buf *keys, uint64_t n,
                         uint64_t *deleted, struct err *e)
{
    if (n == 0)
        return 0;
    const char **k = xcalloc((size_t)n, sizeof *k);
    size_t *l = xcalloc((size_t)n, sizeof *l);
    size_t j = 0;
    for (size_t at = 0; at < keys->len && j < n; j++) {
        k[j] = keys->data + at;
        l[j] = strlen(k[j]);
        at += l[j] + 1;
    }
    size_t del = 0;
    enum mcc_result r = mcclient_delete_many(mc, i, k, l, j, &del, NULL);
    *deleted = del;
    free(k);
    free(l);
    if (r != MCC_OK) {
        err_set(e, NULL, 0, 0, "delete: %s", mcclient_result_name(r));
        return -1;
    }
    return 0;
}

/* Purges node i; returns 0, or -1 with the reason in e. */
static int purge_node(struct mcclient *mc, size_t i, struct purgematch *m,
                      struct purgematch_node *nd, uint64_t *match_errors, struct err *e)
{
    const struct config *cfg = mcclient_config(mc);
    struct pass p = {m, BUF_INIT, 1, 0, 0};
    int rc = 0;
    for (unsigned n = 0; rc == 0 && p.more && n < PASSES_MAX; n++) {
        uint64_t scanned = 0, deleted = 0;
        buf_reset(&p.keys, PURGEMATCH_PASS_BYTES);
        p.more = 0;
        p.matched = 0;
        rc = keyscan_node(nd->address, cfg->mc_timeout_ms, cfg->mc_connect_timeout_ms, on_key, &p,
                          &scanned, e);
        nd->scanned += scanned;
        if (rc == 0) {
            nd->matched += p.matched;
            rc = delete_listed(mc, i, &p.keys, p.matched, &deleted, e);
            nd->purged += deleted;
        }
    }
    if (rc == 0 && p.more) {
        err_set(e, NULL, 0, 0, "still more matches after %d passes", PASSES_MAX);
        rc = -1;
    }
    *match_errors += p.match_errors;
    buf_fini(&p.keys);
    return rc;
}

int purgematch_run(struct mcclient *mc, struct purgematch *m, struct purgematch_report *r)
{
    const struct config *cfg = mcclient_config(mc);
    memset(r, 0, sizeof *r);
    r->nnodes = cfg->nservers;
    r->nodes = xcalloc(r->nnodes ? r->nnodes : 1, sizeof *r->nodes);
    for (size_t i = 0; i < r->nnodes; i++) {
        struct purgematch_node *nd = &r->nodes[i];
        nd->address = cfg->servers[i].address;
        for (;;) {
            struct err e;
            err_clear(&e);
            nd->attempts++;
            if (purge_node(mc, i, m, nd, &r->match_errors, &e) == 0) {
                nd->failed = 0;
                nd->error[0] = '\0';
                break;
            }
            nd->failed = 1;
            set_error(nd, &e);
            if (nd->attempts >= PURGEMATCH_ATTEMPTS)
                break;
            sleep_ms(100 * nd->attempts);
        }
        r->scanned += nd->scanned;
        r->matched += nd->matched;
        r->purged += nd->purged;
        r->failed += nd->failed ? 1 : 0;
    }
    return r->failed == 0 && r->match_errors == 0;
}

void purgematch_report_json(const struct purgematch_report *r, struct buf *out)
{
    json_t *o = json_object(), *failed = json_array(), *nodes = json_array();
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct purgematch_node *nd = &r->nodes[i];
        if (nd->failed)
            json_array_append_new(failed, json_string(nd->address));
        json_t *n = json_pack("{s:s, s:I, s:I, s:I, s:I}", "node", nd->address, "scanned",
                              (json_int_t)nd->scanned, "matched", (json_int_t)nd->matched,
                              "purged", (json_int_t)nd->purged, "attempts",
                              (json_int_t)nd->attempts);
        if (n && nd->failed)
            json_object_set_new(n, "error", json_string(nd->error));
        if (n)
            json_array_append_new(nodes, n);
    }
    json_object_set_new(o, "purged", json_integer((json_int_t)r->purged));
    json_object_set_new(o, "matched", json_integer((json_int_t)r->matched));
    json_object_set_new(o, "scanned", json_integer((json_int_t)r->scanned));
    json_object_set_new(o, "complete", json_boolean(r->failed == 0 && r->match_errors == 0));
    if (r->match_errors)
        json_object_set_new(o, "undecided_keys", json_integer((json_int_t)r->match_errors));
    json_object_set_new(o, "failed_nodes", failed);
    json_object_set_new(o, "nodes", nodes);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    buf_append_str(out, s ? s : "{\"error\":\"out of memory\"}");
    free(s);
    json_decref(o);
}

void purgematch_report_fini(struct purgematch_report *r)
{
    free(r->nodes);
    r->nodes = NULL;
    r->nnodes = 0;
}
