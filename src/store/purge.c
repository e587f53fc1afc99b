/* purge.c - page deletion by key and by tag, and the tag index.
 *
 * The index value is a list of " <escaped key>" entries appended with
 * memcached's append (or created with add when absent), so indexing a page
 * costs one round trip per tag and never rewrites the list. A key may
 * appear twice after a page is stored twice; purging deletes it once and
 * ignores the second "not found". The index has no expiry: it is removed
 * when its tag is purged, and memcached's LRU drops it under pressure like
 * any item (losing an index loses only the ability to purge by that tag
 * the pages stored before; they still expire by their own TTL). */
#include "config.h"

#include "memfill/purge.h"
#include "memfill/buf.h"
#include "memfill/keyesc.h"
#include "memfill/keyloc.h"

#include <stdlib.h>
#include <string.h>

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

static void tag_key(struct buf *out, const char *tag, size_t len)
{
    buf_append_str(out, PURGE_TAG_PREFIX);
    buf_append(out, tag, len);
}

long purge_tag(struct mcclient *mc, size_t nnodes, const char *tag, size_t len)
{
    if (!purge_tag_valid(tag, len))
        return -1;
    struct buf k = BUF_INIT;
    tag_key(&k, tag, len);
    long deleted = 0;
    int failed = 0;
    for (size_t n = 0; n < nnodes; n++) {
        char *list = NULL;
        size_t llen = 0;
        enum mcc_result r = mcclient_get(mc, n, k.data, k.len, &list, &llen, NULL);
        if (r == MCC_NOT_STORED)
            continue;
        if (r != MCC_OK) {
            failed = 1;
            continue;
        }
        size_t i = 0;
        while (i < llen) {
            while (i < llen && list[i] == ' ')
                i++;
            size_t start = i;
            while (i < llen && list[i] != ' ')
                i++;
            if (i > start) {
                r = mcclient_delete(mc, n, list + start, i - start);
                if (r == MCC_OK)
                    deleted++;
                else if (r != MCC_NOT_STORED)
                    failed = 1;
            }
        }
        free(list);
        r = mcclient_delete(mc, n, k.data, k.len);
        if (r != MCC_OK && r != MCC_NOT_STORED)
            failed = 1;
    }
    buf_fini(&k);
    return failed ? -1 : deleted;
}

int purge_index_tags(struct mcclient *mc, size_t node, const char *esc_key, size_t klen,
                     const char *tags, size_t tlen)
{
    int n = 0;
    struct buf k = BUF_INIT, entry = BUF_INIT;
    buf_append_char(&entry, ' ');
    buf_append(&entry, esc_key, klen);
    size_t i = 0;
    while (i < tlen) {
        while (i < tlen && (tags[i] == ' ' || tags[i] == ','))
            i++;
        size_t start = i;
        while (i < tlen && tags[i] != ' ' && tags[i] != ',')
            i++;
        if (i == start || !purge_tag_valid(tags + start, i - start))
            continue;
        buf_reset(&k, 512);
        tag_key(&k, tags + start, i - start);
        enum mcc_result r = mcclient_append(mc, node, k.data, k.len, entry.data, entry.len);
        if (r == MCC_NOT_STORED) {
            r = mcclient_add(mc, node, k.data, k.len, entry.data, entry.len, 0, 0);
            if (r == MCC_NOT_STORED) /* created meanwhile by another worker */
                r = mcclient_append(mc, node, k.data, k.len, entry.data, entry.len);
        }
        if (r == MCC_OK)
            n++;
    }
    buf_fini(&k);
    buf_fini(&entry);
    return n;
}
