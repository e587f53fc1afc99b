/* testutil.c - data paths, the TSV vector reader, hex/text codecs and a
 * real memcached, used by the Check suites.
 *
 * The reader keeps one line in a getline() buffer and splits it in place
 * on TAB, so fields are views into that buffer: no per-field allocation,
 * and a row stays valid until the next tu_tsv_next(). Line numbers count
 * every physical line (the header is line 1), so a failure can point an
 * editor at the exact row. The memcached helpers start a real memcached
 * for the suites that talk to one, on a free port, tied to the test's
 * life. */
#include "config.h"

#include "testutil.h"

#include "memfill/conf.h"
#include "memfill/err.h"
#include "memfill/keyscan.h"
#include "memfill/mcclient.h"
#include "memfill/util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

const char *tu_srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return (s && *s) ? s : ".";
}

char *tu_path(const char *rel)
{
    return xasprintf("%s/%s", tu_srcdir(), rel);
}

/* Splits s in place on TAB into *v (grown as needed); returns the count. */
static size_t split_tabs(char *s, char ***v, size_t *cap)
{
    size_t n = 0;
    for (;;) {
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *v = xrealloc(*v, *cap * sizeof **v);
        }
        (*v)[n++] = s;
        char *tab = strchr(s, '\t');
        if (!tab)
            return n;
        *tab = '\0';
        s = tab + 1;
    }
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

int tu_tsv_open(struct tu_tsv *t, const char *path)
{
    memset(t, 0, sizeof *t);
    t->path = xstrdup(path);
    t->fp = fopen(path, "r");
    if (!t->fp) {
        tu_tsv_close(t);
        return -1;
    }
    if (getline(&t->line, &t->linecap, t->fp) < 0) {
        tu_tsv_close(t);
        return -1;
    }
    chomp(t->line);
    t->head = xstrdup(t->line);
    size_t cap = 0;
    t->ncols = split_tabs(t->head, &t->cols, &cap);
    t->lineno = 1;
    return 0;
}

int tu_tsv_next(struct tu_tsv *t)
{
    if (!t->fp || getline(&t->line, &t->linecap, t->fp) < 0)
        return 0;
    t->lineno++;
    chomp(t->line);
    t->nfields = split_tabs(t->line, &t->fields, &t->fieldcap);
    return 1;
}

int tu_tsv_col(const struct tu_tsv *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i], name) == 0)
            return (int)i;
    return -1;
}

const char *tu_tsv_get(const struct tu_tsv *t, const char *name)
{
    int i = tu_tsv_col(t, name);
    if (i < 0 || (size_t)i >= t->nfields)
        return NULL;
    return t->fields[i];
}

void tu_tsv_close(struct tu_tsv *t)
{
    if (t->fp)
        fclose(t->fp);
    free(t->path);
    free(t->head);
    free(t->cols);
    free(t->line);
    free(t->fields);
    memset(t, 0, sizeof *t);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tu_hex_decode(const char *hex, struct buf *out)
{
    size_t n = strlen(hex);
    if (n % 2)
        return -1;
    buf_append(out, "", 0); /* NUL-terminated even when nothing follows */
    buf_reserve(out, n / 2);
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval((unsigned char)hex[i]), lo = hexval((unsigned char)hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        buf_append_char(out, (char)(hi << 4 | lo));
    }
    return 0;
}

void tu_hex_encode(const void *p, size_t n, struct buf *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *s = p;
    buf_append(out, "", 0);
    buf_reserve(out, 2 * n);
    for (size_t i = 0; i < n; i++) {
        buf_append_char(out, digits[s[i] >> 4]);
        buf_append_char(out, digits[s[i] & 15]);
    }
}

int tu_unescape_text(const char *text, struct buf *out)
{
    buf_append(out, "", 0);
    for (size_t i = 0; text[i]; i++) {
        if (text[i] == '\\' && text[i + 1] == 'x') {
            /* hexval('\0') is -1, so a short tail is caught here. */
            int hi = hexval((unsigned char)text[i + 2]);
            int lo = hi < 0 ? -1 : hexval((unsigned char)text[i + 3]);
            if (hi < 0 || lo < 0)
                return -1;
            buf_append_char(out, (char)(hi << 4 | lo));
            i += 3;
        } else {
            buf_append_char(out, text[i]);
        }
    }
    return 0;
}

int tu_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char *copy = xstrdup(path);
    int found = 0;
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char *full = xasprintf("%s/%s", *dir ? dir : ".", name);
        found = access(full, X_OK) == 0;
        free(full);
    }
    free(copy);
    return found;
}

char **tu_env_new(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    char **env = xcalloc(n + 1, sizeof *env);
    for (size_t i = 0; i < n; i++)
        env[i] = xstrdup(list[i]);
    return env;
}

void tu_env_free(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

int tu_bind_free_port(int *port, int listen_too)
{
    static int seeded;
    if (!seeded) {
        srand((unsigned)getpid() ^ (unsigned)util_now_ms());
        seeded = 1;
    }
    for (int tries = 0; tries < 2000; tries++) {
        int p = 20000 + rand() % 12000;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)p);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            (!listen_too || listen(fd, 64) == 0)) {
            *port = p;
            return fd;
        }
        close(fd);
    }
    return -1;
}

int tu_can_connect(int port, const char *unix_path)
{
    int fd = socket(unix_path ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc;
    if (unix_path) {
        struct sockaddr_un u;
        memset(&u, 0, sizeof u);
        u.sun_family = AF_UNIX;
        snprintf(u.sun_path, sizeof u.sun_path, "%s", unix_path);
        rc = connect(fd, (struct sockaddr *)&u, sizeof u);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    close(fd);
    return rc == 0;
}

void tu_die_with_parent(pid_t parent)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
#endif
    (void)parent;
}

void tu_stop_pid(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = -1;
}

/* Starts memcached on 127.0.0.1:port, or on the unix socket unix_path. */
static pid_t memcached_spawn(int port, const char *unix_path, int mb)
{
    char ps[16], ms[16];
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(ms, sizeof ms, "%d", mb);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        tu_die_with_parent(parent);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        const char *argv[16];
        int n = 0;
        argv[n++] = "memcached";
        argv[n++] = "-U";
        argv[n++] = "0";
        argv[n++] = "-m";
        argv[n++] = ms;
        argv[n++] = "-t";
        argv[n++] = "1";
        if (geteuid() == 0) {
            argv[n++] = "-u";
            argv[n++] = "root";
        }
        if (unix_path) {
            argv[n++] = "-s";
            argv[n++] = unix_path;
        } else {
            argv[n++] = "-l";
            argv[n++] = "127.0.0.1";
            argv[n++] = "-p";
            argv[n++] = ps;
        }
        argv[n] = NULL;
        execvp("memcached", (char *const *)argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    uint64_t deadline = util_now_ms() + 10000;
    while (util_now_ms() < deadline) {
        if (tu_can_connect(port, unix_path))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        usleep(20000);
    }
    tu_stop_pid(&pid);
    return -1;
}

pid_t tu_memcached_start(int *port)
{
    int fd = tu_bind_free_port(port, 0);
    if (fd < 0)
        return -1;
    close(fd);
    return memcached_spawn(*port, NULL, 64);
}

pid_t tu_memcached_start_mb(int *port, int mb)
{
    int fd = tu_bind_free_port(port, 0);
    if (fd < 0)
        return -1;
    close(fd);
    return memcached_spawn(*port, NULL, mb);
}

pid_t tu_memcached_start_unix(const char *path)
{
    return memcached_spawn(0, path, 64);
}

int tu_binary_missing(const char *name)
{
    if (tu_in_path(name))
        return 0;
    const char *ns = getenv("MEMFILL_NO_SKIP");
    if (ns && strcmp(ns, "1") == 0) {
        fprintf(stderr, "FAIL: %s is missing (MEMFILL_NO_SKIP=1)\n", name);
        return EXIT_FAILURE;
    }
    fprintf(stderr, "SKIP: %s is not installed\n", name);
    return 77;
}

struct counting {
    const char *prefix;
    size_t len;
    long n;
};

static void count_key(void *ctx, const char *esc, size_t esclen, const char *raw, size_t rawlen)
{
    struct counting *c = ctx;
    (void)raw;
    (void)rawlen;
    if (esclen >= c->len && memcmp(esc, c->prefix, c->len) == 0)
        c->n++;
}

long tu_count_keys(struct mcclient *mc, size_t node, const char *prefix)
{
    struct counting c = {prefix, strlen(prefix), 0};
    const struct config *cfg = mcclient_config(mc);
    uint64_t scanned;
    struct err e;
    err_clear(&e);
    if (keyscan_node(mcclient_node_address(mc, node), cfg->mc_timeout_ms,
                     cfg->mc_connect_timeout_ms, count_key, &c, &scanned, &e) < 0)
        return -1;
    return c.n;
}
