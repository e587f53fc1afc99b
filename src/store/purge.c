/* purge.c - page deletion by key and by tag, and the tag index.
 *
 * The index is one marker item per (tag, page) on the page's node
 * (purge.h has the key forms), written after the page with the page's
 * TTL. Why markers and not a list appended to (the first design): a list
 * grew with every store, stopped at the item size limit without a word,
 * and held keys of pages long gone; a marker is overwritten by a re-store
 * and expires with its page, so the bookkeeping is one small item per
 * live page, whatever the number of stores (measurements: doc/purge.md).
 *
 * A purge lists the node's keys with `lru_crawler metadump hash`, which
 * walks memcached's hash table (the LRU walk of `metadump all` misses
 * items that move between LRU segments while it runs), then deletes the
 * tag's markers first and their pages second. That order is what makes a
 * purge racing with stores safe: a store writes the page and then the
 * marker, so a page written again after the purge deleted it has its
 * marker written after the purge deleted the old one, and stays indexed.
 *
 * What can still be missed, and is said: a node that fails, and a marker
 * evicted while its page lives. memcached does not say which items it
 * evicted, only how many per slab class, so a node that has evicted items
 * from a slab class markers can fall into (since it started) makes the
 * purge "may be incomplete". */
#include "config.h"

#include "memfill/purge.h"
#include "memfill/buf.h"
#include "memfill/keyesc.h"
#include "memfill/keyloc.h"
#include "memfill/keyscan.h"
#include "memfill/log.h"
#include "memfill/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest item a marker makes: memcached's item header with CAS (56
 * bytes), key and value up to 250 bytes each plus their terminators. A
 * slab class whose chunks are this size or smaller can hold markers (the
 * next larger class too: checked with MARKER_CLASS_MAX). */
#define MARKER_ITEM_MAX (56 + 251 + 252)
/* Slab classes up to this chunk size count as marker classes: the first
 * class at or above MARKER_ITEM_MAX is below it with any growth factor up
 * to 1.8. */
#define MARKER_CLASS_MAX 1024
#define SLAB_CLASSES_MAX 256

int purge_tag_valid(const char *tag, size_t len)
{
    if (len == 0 || len > PURGE_TAG_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = tag[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int purge_key(struct mcclient *mc, const struct nodesel *sel, const char *raw, size_t len)
{
    struct buf esc = BUF_INIT;
    int node, rc;
    if (keyloc_find(sel, raw, len, &esc, &node) != KEYLOC_OK) {
        rc = -1;
    } else {
        enum mcc_result r = mcclient_delete(mc, (size_t)node, esc.data, esc.len);
        rc = r == MCC_OK ? 1 : r == MCC_NOT_STORED ? 0 : -1;
    }
    buf_fini(&esc);
    return rc;
}

/* ---- marker keys ---- */

/* FNV-1a, 64 bits: names a key too long to be spelled in its marker. Two
 * long keys of one tag on one node sharing a hash (odds about n^2/2^65)
 * would share a marker: the later store's page would be indexed and the
 * earlier one's not. */
static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int purge_marker_key(struct buf *out, const char *tag, size_t tlen, const char *esc_key,
                     size_t klen)
{
    buf_reset(out, 4096);
    buf_append_str(out, PURGE_MARK_PREFIX);
    buf_append(out, tag, tlen);
    if (out->len + 1 + klen <= KEY_MAX_ESCAPED) {
        buf_append_char(out, '=');
        buf_append(out, esc_key, klen);
        return 0;
    }
    buf_printf(out, "#%016llx", (unsigned long long)fnv1a64(esc_key, klen));
    return 1;
}

/* ---- indexing ---- */

/* Indexing failures come from a node in trouble, one per store: logged at
 * most once per INDEX_LOG_MS per process. */
#define INDEX_LOG_MS 10000

int purge_index_tags(struct mcclient *mc, size_t node, const char *esc_key, size_t klen,
                     const char *tags, size_t tlen, unsigned ttl)
{
    int failed = 0;
    enum mcc_result last = MCC_OK;
    struct buf k = BUF_INIT;
    size_t i = 0;
    while (i < tlen) {
        while (i < tlen && (tags[i] == ' ' || tags[i] == ','))
            i++;
        size_t start = i;
        while (i < tlen && tags[i] != ' ' && tags[i] != ',')
            i++;
        if (i == start || !purge_tag_valid(tags + start, i - start))
            continue;
        int hashed = purge_marker_key(&k, tags + start, i - start, esc_key, klen);
        enum mcc_result r = mcclient_set(mc, node, k.data, k.len, hashed ? esc_key : "",
                                         hashed ? klen : 0, 0, ttl);
        if (r != MCC_OK) {
            failed++;
            last = r;
        }
    }
    buf_fini(&k);
    if (failed) {
        /* A page its tags cannot find would outlive their purge. */
        enum mcc_result d = mcclient_delete(mc, node, esc_key, klen);
        static struct log_limit lines = LOG_LIMIT_INIT(INDEX_LOG_MS);
        if (log_limit_allow(&lines)) {
            struct buf ek = BUF_INIT;
            log_escape(&ek, esc_key, klen, 200);
            log_limit_write(&lines, LOG_WARN, "tag index write failed on %s for %s: %s; page %s",
                            mcclient_node_address(mc, node), ek.data,
                            mcclient_result_name(last),
                            d == MCC_OK || d == MCC_NOT_STORED ? "deleted again"
                                                               : "left (delete failed too)");
            buf_fini(&ek);
        }
    }
    return failed;
}

/* ---- the report ---- */

void purge_report_init(struct purge_report *rep, size_t nnodes)
{
    memset(rep, 0, sizeof *rep);
    rep->nnodes = nnodes;
    rep->failed = xcalloc(nnodes ? nnodes : 1, 1);
}

void purge_report_fini(struct purge_report *rep)
{
    free(rep->failed);
    rep->failed = NULL;
}

int purge_report_complete(const struct purge_report *rep)
{
    return rep->nfailed == 0 && rep->evicted == 0 && !rep->truncated;
}

static void fail_node(struct purge_report *rep, size_t node)
{
    if (!rep->failed[node]) {
        rep->failed[node] = 1;
        rep->nfailed++;
    }
}

void purge_report_why(const struct purge_report *rep, struct mcclient *mc, struct buf *out)
{
    const char *sep = "";
    for (size_t i = 0; i < rep->nnodes; i++) {
        if (rep->failed[i]) {
            buf_printf(out, "%snode %s failed", sep, mcclient_node_address(mc, i));
            sep = "; ";
        }
    }
    if (rep->evicted) {
        buf_printf(out, "%s%lu items evicted from slab classes that hold tag markers: "
                        "entries may have been lost", sep, rep->evicted);
        sep = "; ";
    }
    if (rep->truncated)
        buf_printf(out, "%smore than %u entries on a node: purge again for the rest", sep,
                   PURGE_SCAN_MAX);
}

/* ---- listing a tag's markers ---- */

struct scan {
    struct buf prefix;  /* "memfill:t:TAG" */
    struct buf keys;    /* the markers found, decoded, each NUL-terminated */
    size_t n;
    int truncated;
};

/* One key of a node's dump (keyscan): kept when it is a marker of the
 * tag. The dump cannot be stopped early, so past PURGE_SCAN_MAX markers
 * the rest is only noted. */
static void scan_key(void *ctx, const char *esc, size_t esclen, const char *raw, size_t rawlen)
{
    struct scan *s = ctx;
    (void)raw;
    (void)rawlen;
    if (esclen <= s->prefix.len || esclen > KEY_MAX_ESCAPED ||
        memcmp(esc, s->prefix.data, s->prefix.len) != 0 ||
        (esc[s->prefix.len] != '=' && esc[s->prefix.len] != '#'))
        return;
    if (s->n >= PURGE_SCAN_MAX) {
        s->truncated = 1;
        return;
    }
    buf_append(&s->keys, esc, esclen);
    buf_append_char(&s->keys, '\0');
    s->n++;
}

/* Evicted items in marker-sized slab classes, from `stats slabs` (chunk
 * sizes), `stats items` (evictions per class) and `stats` (all
 * evictions). */
struct slabs {
    unsigned long chunk[SLAB_CLASSES_MAX];
    unsigned long evicted[SLAB_CLASSES_MAX];
    unsigned long evictions;
};

/* "STAT <prefix><class>:<name> <value>" into *cls, *name, *value. */
static int stat_line(const char *line, size_t len, const char *prefix, unsigned *cls,
                     const char **name, size_t *nlen, unsigned long *value)
{
    size_t pl = strlen(prefix);
    if (len < 5 + pl || memcmp(line, "STAT ", 5) != 0 || memcmp(line + 5, prefix, pl) != 0)
        return -1;
    const char *p = line + 5 + pl, *end = line + len;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *sp = colon ? memchr(colon, ' ', (size_t)(end - colon)) : NULL;
    uint64_t c, v;
    if (!sp || util_parse_u64(p, (size_t)(colon - p), SLAB_CLASSES_MAX - 1, &c) < 0 ||
        util_parse_u64(sp + 1, (size_t)(end - sp - 1), UINT64_MAX, &v) < 0)
        return -1;
    *cls = (unsigned)c;
    *name = colon + 1;
    *nlen = (size_t)(sp - colon - 1);
    *value = (unsigned long)v;
    return 0;
}

static int slabs_line(void *ctx, const char *line, size_t len)
{
    struct slabs *s = ctx;
    unsigned cls;
    const char *name;
    size_t nlen;
    unsigned long v;
    if (stat_line(line, len, "", &cls, &name, &nlen, &v) == 0 && nlen == 10 &&
        memcmp(name, "chunk_size", 10) == 0)
        s->chunk[cls] = v;
    return 0;
}

static int items_line(void *ctx, const char *line, size_t len)
{
    struct slabs *s = ctx;
    unsigned cls;
    const char *name;
    size_t nlen;
    unsigned long v;
    if (stat_line(line, len, "items:", &cls, &name, &nlen, &v) == 0 && nlen == 7 &&
        memcmp(name, "evicted", 7) == 0)
        s->evicted[cls] = v;
    return 0;
}

static int general_line(void *ctx, const char *line, size_t len)
{
    struct slabs *s = ctx;
    static const char name[] = "STAT evictions ";
    uint64_t v;
    if (len > sizeof name - 1 && memcmp(line, name, sizeof name - 1) == 0 &&
        util_parse_u64(line + sizeof name - 1, len - (sizeof name - 1), UINT64_MAX, &v) == 0)
        s->evictions = (unsigned long)v;
    return 0;
}

/* Items node evicted (since it started) from classes that can hold
 * markers; -1 on failure. `stats items` leaves out the classes that hold
 * no item at the moment (after a purge emptied them, say): the evictions
 * it does not account for are counted too, as is a class whose chunk size
 * is unknown. Better a false "may be incomplete" than a missed one. */
static long marker_evictions(struct mcclient *mc, size_t node)
{
    struct slabs *s = xcalloc(1, sizeof *s);
    long total = -1;
    if (mcclient_lines(mc, node, "stats", general_line, s) == MCC_OK &&
        mcclient_lines(mc, node, "stats slabs", slabs_line, s) == MCC_OK &&
        mcclient_lines(mc, node, "stats items", items_line, s) == MCC_OK) {
        unsigned long listed = 0, marker = 0;
        for (size_t c = 0; c < SLAB_CLASSES_MAX; c++) {
            listed += s->evicted[c];
            if (s->evicted[c] && (s->chunk[c] == 0 || s->chunk[c] <= MARKER_CLASS_MAX))
                marker += s->evicted[c];
        }
        total = (long)(marker + (s->evictions > listed ? s->evictions - listed : 0));
    }
    free(s);
    return total;
}

/* ---- purging ---- */

/* Purges the markers listed in s on node, then their pages. */
static void purge_listed(struct mcclient *mc, size_t node, struct scan *s,
                         struct purge_report *rep)
{
    const char **mk = xcalloc(s->n ? s->n : 1, sizeof *mk);
    size_t *ml = xcalloc(s->n ? s->n : 1, sizeof *ml);
    const char **pk = xcalloc(s->n ? s->n : 1, sizeof *pk);
    size_t *pl = xcalloc(s->n ? s->n : 1, sizeof *pl);
    char **owned = xcalloc(s->n ? s->n : 1, sizeof *owned);
    size_t np = 0;
    int failed = 0;
    const char *p = s->keys.data;
    for (size_t i = 0; i < s->n; i++) {
        size_t len = strlen(p);
        mk[i] = p;
        ml[i] = len;
        const char *sep = p + s->prefix.len;
        if (*sep == '=') {
            pk[np] = sep + 1;
            pl[np++] = len - s->prefix.len - 1;
        } else {
            /* The hashed form keeps the page's key as its value. */
            char *v = NULL;
            size_t vlen = 0;
            enum mcc_result r = mcclient_get(mc, node, p, len, &v, &vlen, NULL);
            if (r == MCC_OK && vlen > 0 && vlen <= KEY_MAX_ESCAPED) {
                owned[np] = v;
                pk[np] = v;
                pl[np++] = vlen;
            } else {
                free(v);
                if (r != MCC_NOT_STORED && r != MCC_OK)
                    failed = 1;
            }
        }
        p += len + 1;
    }
    size_t deleted = 0;
    rep->entries += (long)s->n;
    if (!failed && mcclient_delete_many(mc, node, mk, ml, s->n, NULL, NULL) != MCC_OK)
        failed = 1;
    if (!failed && mcclient_delete_many(mc, node, pk, pl, np, &deleted, NULL) != MCC_OK)
        failed = 1;
    rep->purged += (long)deleted;
    if (failed)
        fail_node(rep, node);
    for (size_t i = 0; i < np; i++)
        free(owned[i]);
    free(owned);
    free(mk);
    free(ml);
    free(pk);
    free(pl);
}

int purge_tag(struct mcclient *mc, const char *tag, size_t len, struct purge_report *rep)
{
    if (!purge_tag_valid(tag, len))
        return -1;
    for (size_t n = 0; n < rep->nnodes; n++) {
        struct scan s;
        memset(&s, 0, sizeof s);
        buf_append_str(&s.prefix, PURGE_MARK_PREFIX);
        buf_append(&s.prefix, tag, len);
        const struct config *cfg = mcclient_config(mc);
        uint64_t scanned;
        struct err e;
        err_clear(&e);
        if (keyscan_node(mcclient_node_address(mc, n), cfg->mc_timeout_ms,
                         cfg->mc_connect_timeout_ms, scan_key, &s, &scanned, &e) < 0) {
            fail_node(rep, n);
        } else {
            if (s.truncated)
                rep->truncated = 1;
            purge_listed(mc, n, &s, rep);
            long ev = marker_evictions(mc, n);
            if (ev < 0)
                fail_node(rep, n);
            else
                rep->evicted += (unsigned long)ev;
        }
        buf_fini(&s.prefix);
        buf_fini(&s.keys);
    }
    return 0;
}
