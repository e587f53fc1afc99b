/* testutil.h - helpers shared by the Check suites: test data paths, a TSV
 * vector reader that remembers file line numbers, hex/text codecs for the
 * vector columns, and a real memcached on a free port.
 *
 * The vectors in tests/vectors/ are tab-separated with one header line;
 * their key_hex-style columns hold raw bytes in lower-case hex and their
 * *_text columns show printable ASCII as is and any other byte as \xHH.
 * Helpers here never call Check themselves: they return an error code and
 * the test asserts, so a failure message names the test's own file:line. */
#ifndef MEMFILL_TESTUTIL_H
#define MEMFILL_TESTUTIL_H

#include <stdio.h>
#include <sys/types.h>

#include "memfill/buf.h"

/* The source tree's top directory: $top_srcdir (set by make check), else
 * ".". Returns a borrowed string (from the environment or a literal). */
const char *tu_srcdir(void);
/* Returns tu_srcdir() + "/" + rel as a new string; free with free(). */
char *tu_path(const char *rel);

/* A TSV file being read row by row. Open with tu_tsv_open(), step with
 * tu_tsv_next(), release with tu_tsv_close(). All pointers it hands out
 * (path, column names, fields) are borrowed and valid until the next
 * tu_tsv_next() (fields) or tu_tsv_close() (path, column names). */
struct tu_tsv {
    FILE *fp;
    char *path;      /* as given to tu_tsv_open, for messages */
    char *head;      /* storage for the header line */
    char **cols;     /* column names from the header line */
    size_t ncols;
    char *line;      /* storage for the current row (getline) */
    size_t linecap;
    char **fields;   /* the current row's fields, split on TAB */
    size_t nfields;
    size_t fieldcap;
    unsigned lineno; /* 1-based line number of the current row in the file */
};

/* Opens path (copied) and reads its header line into cols. Returns 0, or
 * -1 when the file cannot be opened or is empty (t is then closed). */
int tu_tsv_open(struct tu_tsv *t, const char *path);
/* Reads the next row into fields/nfields/lineno. Returns 1 for a row, 0
 * at end of file. Trailing "\n" and "\r" are removed; an empty line is a
 * row with a single empty field. */
int tu_tsv_next(struct tu_tsv *t);
/* Index of the column called name, or -1. */
int tu_tsv_col(const struct tu_tsv *t, const char *name);
/* The current row's field in column name (borrowed), or NULL when there is
 * no such column or the row is too short. */
const char *tu_tsv_get(const struct tu_tsv *t, const char *name);
/* Releases everything; t may be closed twice. */
void tu_tsv_close(struct tu_tsv *t);

/* Appends the bytes of a hex string (either case, even length) to out.
 * Returns 0, or -1 for an odd length or a non-hex digit (out may then
 * hold a prefix of the bytes). "" decodes to no bytes. */
int tu_hex_decode(const char *hex, struct buf *out);
/* Appends n bytes as lower-case hex to out (NUL-terminated as any buf). */
void tu_hex_encode(const void *p, size_t n, struct buf *out);
/* Appends the bytes of a vector *_text field to out: "\xHH" becomes the
 * byte 0xHH, every other character is copied. Returns 0, or -1 for a "\x"
 * not followed by two hex digits. */
int tu_unescape_text(const char *text, struct buf *out);

/* A writable, NULL-terminated copy of the param list ("NAME=value"
 * strings, as libfcgi hands a request over in its char **envp); free
 * with tu_env_free(). */
char **tu_env_new(const char *const *list);
void tu_env_free(char **env);

/* Returns 1 when an executable called name is in one of $PATH's folders. */
int tu_in_path(const char *name);

/* A socket bound to 127.0.0.1 on a free port below the ephemeral range
 * (20000-31999; listening when listen_too), its port in *port; -1 when
 * none is free. Close it to hand the port to a server; keep it bound and
 * not listening for a port where every connection is refused. */
int tu_bind_free_port(int *port, int listen_too);
/* Starts memcached (64 MB, one thread, no UDP) on 127.0.0.1 at a free
 * port, stored in *port. It dies with this process (PR_SET_PDEATHSIG on
 * Linux). Returns its pid once it accepts connections (within 10 s), or
 * -1. */
pid_t tu_memcached_start(int *port);
/* Like tu_memcached_start with mb megabytes of item memory (-m). */
pid_t tu_memcached_start_mb(int *port, int mb);
/* The same on the unix socket path. */
pid_t tu_memcached_start_unix(const char *path);
/* Returns 1 when a connection to 127.0.0.1:port (or to the unix socket
 * unix_path when not NULL) is accepted. */
int tu_can_connect(int port, const char *unix_path);
/* In a child: dies when the parent (pid parent) dies (Linux). */
void tu_die_with_parent(pid_t parent);
/* Kills and reaps *pid when it is > 0, then sets it to -1. */
void tu_stop_pid(pid_t *pid);
struct mcclient;
/* The number of items on node whose key starts with prefix (escaped, as
 * stored), listed by keyscan (`lru_crawler metadump hash`); -1 on
 * failure. */
long tu_count_keys(struct mcclient *mc, size_t node, const char *prefix);
/* Exit code for a suite that needs the program name when it is not in
 * $PATH: 77 (automake's skip) with a line on stderr, or EXIT_FAILURE when
 * MEMFILL_NO_SKIP=1. Returns 0 when it is installed. */
int tu_binary_missing(const char *name);

#endif
