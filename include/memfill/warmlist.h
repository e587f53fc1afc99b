/* warmlist.h - what memfillctl warm reads: URL lists ("--from"),
 * sitemaps ("--sitemap") and the URLs in them. Pure parsing, no I/O. */
#ifndef MEMFILL_WARMLIST_H
#define MEMFILL_WARMLIST_H

#include <stddef.h>

/* A growable list of strings; every item is owned by the list. */
struct warm_list {
    char **items;
    size_t n;
    size_t cap;
};

void warm_list_init(struct warm_list *l);
void warm_list_fini(struct warm_list *l);
/* Appends a copy of len bytes of s. */
void warm_list_add(struct warm_list *l, const char *s, size_t len);

/* Appends one item per line of text: blanks around a line are trimmed,
 * empty lines and lines whose first non-blank is '#' are skipped. Returns
 * the number of items added. */
size_t warm_list_parse(const char *text, size_t len, struct warm_list *out);
/* Appends the text of every <loc>...</loc> element of a sitemap.xml (a
 * simple scan, no XML library): blanks trimmed, a CDATA section unwrapped,
 * the five XML entities and numeric character references decoded.
 * Comments are skipped. A sitemap index (<sitemapindex>) yields the URLs
 * of its sitemaps, which are not fetched. Returns the number added. */
size_t warm_sitemap_parse(const char *xml, size_t len, struct warm_list *out);

/* One URL to warm. */
struct warm_url {
    char *scheme;      /* "http" or "https" */
    char *host;        /* "host" or "host:port" as written; NULL when the URL had none */
    char *request_uri; /* the request target, "/path?query" (fragment dropped) */
};

/* Parses "/path?query" or "http(s)://host[:port][/path?query]" (a
 * "#fragment" is dropped, as browsers never send it). Returns 0 and fills
 * u (release with warm_url_fini()), or -1 with *why set to a static
 * message: another scheme, user info in the URL, an empty host, or a
 * target nginx would answer 400 to (key_normalize_uri refuses it). */
int warm_url_parse(const char *text, size_t len, struct warm_url *u, const char **why);
void warm_url_fini(struct warm_url *u);

#endif
