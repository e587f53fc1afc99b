/* datacache.c - a worker's parsed JSON data files within a memory budget.
 *
 * Entries sit in a chained hash table by path (CRC-32 of the path, the
 * table doubling when it holds more entries than buckets) and on one
 * doubly linked list from the most to the least recently used, so a lookup,
 * a use and an eviction are O(1). An entry is charged the parsed
 * document's cost plus its own struct and path, so a great many tiny files
 * cannot escape the budget either.
 *
 * The cost of a document. Parsing JSON into jansson values takes from about
 * once the text (one long string) to sixty times (lists of empty objects),
 * so the file size alone is a poor guess. Where glibc's mallinfo2() is
 * available, the heap in use is read before and after the parse: nothing
 * else allocates in between (a worker is single-threaded), so the growth is
 * exactly what the document holds, malloc's overhead included. Elsewhere,
 * or when the allocator does not report (a sanitizer build), a fixed factor
 * of the text is charged. Reading the heap costs a walk of malloc's free
 * lists, a few microseconds, and is done only when a file is parsed. */
#include "config.h"

#include "memfill/datacache.h"
#include "memfill/hashfn.h"
#include "memfill/util.h"

#include <stdlib.h>
#include <string.h>
#ifdef HAVE_MALLINFO2
#include <malloc.h>
#endif

struct datacache_entry {
    char *path;
    uint32_t hash;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    json_t *data;
    size_t charge;
    struct datacache_entry *chain;        /* next in the same bucket */
    struct datacache_entry *newer, *older; /* the use list */
};

struct datacache {
    size_t budget;
    size_t used;
    size_t count;
    struct datacache_entry **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first entry */
    struct datacache_entry *newest, *oldest;
};

struct datacache *datacache_new(size_t budget)
{
    struct datacache *c = xcalloc(1, sizeof *c);
    c->budget = budget;
    return c;
}

static struct datacache_entry **bucket_of(const struct datacache *c, uint32_t hash)
{
    return &c->buckets[hash & (c->nbuckets - 1)];
}

static void list_unlink(struct datacache *c, struct datacache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push_newest(struct datacache *c, struct datacache_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

static struct datacache_entry *find(const struct datacache *c, const char *path, uint32_t hash)
{
    if (!c->nbuckets)
        return NULL;
    for (struct datacache_entry *e = *bucket_of(c, hash); e; e = e->chain)
        if (e->hash == hash && strcmp(e->path, path) == 0)
            return e;
    return NULL;
}

/* Takes e out of the table and the list and frees it. */
static void drop(struct datacache *c, struct datacache_entry *e)
{
    struct datacache_entry **p = bucket_of(c, e->hash);
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    list_unlink(c, e);
    c->used -= e->charge;
    c->count--;
    json_decref(e->data);
    free(e->path);
    free(e);
}

static void evict_beyond_budget(struct datacache *c)
{
    while (c->oldest && c->used > c->budget)
        drop(c, c->oldest);
}

static void grow_table(struct datacache *c)
{
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
    struct datacache_entry **old = c->buckets;
    size_t oldn = c->nbuckets;
    c->buckets = xcalloc(n, sizeof *c->buckets);
    c->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        struct datacache_entry *e = old[i];
        while (e) {
            struct datacache_entry *next = e->chain;
            struct datacache_entry **b = bucket_of(c, e->hash);
            e->chain = *b;
            *b = e;
            e = next;
        }
    }
    free(old);
}

void datacache_free(struct datacache *c)
{
    if (!c)
        return;
    while (c->oldest)
        drop(c, c->oldest);
    free(c->buckets);
    free(c);
}

void datacache_set_budget(struct datacache *c, size_t budget)
{
    c->budget = budget;
    evict_beyond_budget(c);
}

static size_t heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

json_t *datacache_parse(const char *text, size_t len, json_error_t *je, size_t *cost)
{
    size_t before = heap_in_use();
    json_t *data = json_loadb(text, len, JSON_REJECT_DUPLICATES, je);
    size_t after = heap_in_use();
    size_t c = after > before ? after - before : 0;
    if (c == 0)
        c = len <= SIZE_MAX / DATACACHE_COST_FACTOR ? len * DATACACHE_COST_FACTOR : SIZE_MAX;
    *cost = c > len ? c : len;
    return data;
}

static int same_file(const struct datacache_entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

json_t *datacache_get(struct datacache *c, const char *path, const struct stat *st)
{
    struct datacache_entry *e = find(c, path, hashfn_crc32(path, strlen(path)));
    if (!e || !same_file(e, st))
        return NULL;
    list_unlink(c, e);
    list_push_newest(c, e);
    return json_incref(e->data);
}

int datacache_put(struct datacache *c, const char *path, const struct stat *st, json_t *data,
                  size_t cost)
{
    size_t plen = strlen(path);
    uint32_t hash = hashfn_crc32(path, plen);
    struct datacache_entry *old = find(c, path, hash);
    if (old)
        drop(c, old);
    size_t overhead = sizeof(struct datacache_entry) + plen + 1;
    if (cost > c->budget || overhead > c->budget - cost)
        return 0;
    if (c->count >= c->nbuckets)
        grow_table(c);
    struct datacache_entry *e = xcalloc(1, sizeof *e);
    e->path = xstrndup(path, plen);
    e->hash = hash;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    e->data = json_incref(data);
    e->charge = cost + overhead;
    struct datacache_entry **b = bucket_of(c, hash);
    e->chain = *b;
    *b = e;
    list_push_newest(c, e);
    c->used += e->charge;
    c->count++;
    evict_beyond_budget(c);
    return 1;
}

size_t datacache_used(const struct datacache *c)
{
    return c->used;
}

size_t datacache_count(const struct datacache *c)
{
    return c->count;
}
