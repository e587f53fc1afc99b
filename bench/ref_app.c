/* ref_app.c - the reference FastCGI application of scripts/bench.sh.
 *
 * It is what a hand-written page cache writer looks like without memfill:
 * a plain libfcgi accept loop on fd 0 (the socket spawn-fcgi hands over)
 * that answers every request with an HTML page of exactly -b bytes whose
 * title and heading carry the request path. With -s it is the naive
 * writer: before answering, it stores the page in memcached with one
 * blocking libmemcached set under "<prefix><path>", the key nginx reads
 * with  set $memcached_key "<prefix>$uri";  escaped as nginx escapes it
 * (bytes 0x00-0x20 and '%' as %XX, upper-case hex). The client waits for
 * that set; that wait is the cost memfill avoids by answering first.
 *
 *   ref_app [-s] [-m HOST:PORT] [-p PREFIX] [-t TTL] [-b BYTES]
 *
 * Defaults: -m 127.0.0.1:11211, -p "" (the key is $uri), -t 300, -b 2048.
 * A failed set is counted and reported once per 10000 failures on stderr,
 * the way a naive application would notice it at all.
 *
 * Build: cc -O2 -o ref_app ref_app.c -lfcgi -lmemcached */
#include <fcgiapp.h>
#include <libmemcached/memcached.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A flat byte string that grows; the page and the key reuse theirs. */
struct text {
    char *data;
    size_t len;
    size_t cap;
};

static void text_put(struct text *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n)
            cap *= 2;
        t->data = realloc(t->data, cap);
        if (!t->data) {
            fputs("ref_app: out of memory\n", stderr);
            exit(1);
        }
        t->cap = cap;
    }
    memcpy(t->data + t->len, p, n);
    t->len += n;
}

static void text_puts(struct text *t, const char *s)
{
    text_put(t, s, strlen(s));
}

/* The path, HTML-escaped (it is echoed into the page). */
static void put_html(struct text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        default: break;
        }
        if (rep)
            text_puts(t, rep);
        else
            text_put(t, s + i, 1);
    }
}

/* The path as nginx sends it to memcached. */
static void put_key(struct text *t, const char *s, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c != '%') {
            text_put(t, s + i, 1);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 0xf]};
            text_put(t, esc, 3);
        }
    }
}

static const char body_line[] = "<li>Day plan, huts and passes: the route climbs through larch "
                                "woods to the col, then follows the balcony path.</li>\n";
static const char page_end[] = "</ul>\n<footer>reference application</footer>\n</body>\n</html>\n";

/* Builds the page for path into t, exactly size bytes (or just the
 * frame when size is smaller). */
static void build_page(struct text *t, const char *path, size_t plen, size_t size)
{
    t->len = 0;
    text_puts(t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<title>");
    put_html(t, path, plen);
    text_puts(t, "</title>\n</head>\n<body>\n<h1>");
    put_html(t, path, plen);
    text_puts(t, "</h1>\n<ul>\n");
    size_t line = sizeof body_line - 1, end = sizeof page_end - 1;
    while (t->len + line + end <= size)
        text_put(t, body_line, line);
    /* fill the rest with spaces inside a comment, if a comment fits */
    if (t->len + end + 7 <= size) {
        size_t gap = size - t->len - end - 7;
        text_puts(t, "<!--");
        while (gap--)
            text_put(t, " ", 1);
        text_puts(t, "-->\n");
    }
    text_put(t, page_end, end);
}

static memcached_st *connect_store(const char *address)
{
    char host[256];
    const char *colon = strrchr(address, ':');
    size_t hl = colon ? (size_t)(colon - address) : strlen(address);
    if (hl == 0 || hl >= sizeof host)
        return NULL;
    memcpy(host, address, hl);
    host[hl] = '\0';
    in_port_t port = colon ? (in_port_t)atoi(colon + 1) : 11211;
    memcached_st *mc = memcached_create(NULL);
    if (!mc)
        return NULL;
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 1000);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 1000);
    if (memcached_server_add(mc, host, port) != MEMCACHED_SUCCESS) {
        memcached_free(mc);
        return NULL;
    }
    return mc;
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1:11211", *prefix = "";
    long ttl = 300, size = 2048;
    int store = 0, opt;
    while ((opt = getopt(argc, argv, "sm:p:t:b:")) != -1) {
        if (opt == 's')
            store = 1;
        else if (opt == 'm')
            address = optarg;
        else if (opt == 'p')
            prefix = optarg;
        else if (opt == 't')
            ttl = atol(optarg);
        else if (opt == 'b')
            size = atol(optarg);
        else {
            fprintf(stderr, "usage: ref_app [-s] [-m HOST:PORT] [-p PREFIX] [-t TTL] [-b BYTES]\n");
            return 64;
        }
    }
    if (size < 0)
        size = 0;
    memcached_st *mc = NULL;
    if (store && !(mc = connect_store(address))) {
        fprintf(stderr, "ref_app: bad memcached address %s\n", address);
        return 1;
    }
    FCGX_Request req;
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
        fputs("ref_app: libfcgi initialisation failed\n", stderr);
        return 1;
    }
    struct text page = {0}, key = {0};
    unsigned long failed = 0;
    while (FCGX_Accept_r(&req) >= 0) {
        /* $uri is DOCUMENT_URI; without it, REQUEST_URI up to the '?' */
        const char *path = FCGX_GetParam("DOCUMENT_URI", req.envp);
        size_t plen;
        if (path) {
            plen = strlen(path);
        } else {
            path = FCGX_GetParam("REQUEST_URI", req.envp);
            if (!path)
                path = "/";
            plen = strcspn(path, "?");
        }
        build_page(&page, path, plen, (size_t)size);
        if (mc) {
            key.len = 0;
            text_puts(&key, prefix);
            put_key(&key, path, plen);
            memcached_return_t rc = key.len <= 250
                                        ? memcached_set(mc, key.data, key.len, page.data,
                                                        page.len, (time_t)ttl, 0)
                                        : MEMCACHED_KEY_TOO_BIG;
            if (rc != MEMCACHED_SUCCESS && failed++ % 10000 == 0)
                fprintf(stderr, "ref_app: set failed (%lu so far): %s\n", failed,
                        memcached_strerror(mc, rc));
        }
        char head[128];
        int hn = snprintf(head, sizeof head,
                          "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n\r\n",
                          page.len);
        FCGX_PutStr(head, hn, req.out);
        FCGX_PutStr(page.data, (int)page.len, req.out);
        FCGX_Finish_r(&req);
    }
    if (mc)
        memcached_free(mc);
    free(page.data);
    free(key.data);
    return 0;
}
