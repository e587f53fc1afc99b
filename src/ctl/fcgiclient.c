/* fcgiclient.c - a non-blocking FastCGI client: records written and read
 * by hand (FastCGI 1.0), many requests in flight in one poll() loop.
 *
 * Each request has its own connection: connect (non-blocking), write the
 * whole request (BEGIN_REQUEST, PARAMS, empty PARAMS, empty STDIN), read
 * records until END_REQUEST, close. Without FCGI_KEEP_CONN the server
 * closes its end after answering, so an EOF before END_REQUEST is an
 * error, never an answer. Sends use MSG_NOSIGNAL, so a server that goes
 * away gives EPIPE instead of killing the caller. */
#include "config.h"

#include "memfill/fcgiclient.h"
#include "memfill/addr.h"
#include "memfill/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- encoding ---- */

void fcgiclient_record(struct buf *out, unsigned type, uint16_t id, const void *content,
                       size_t len)
{
    unsigned char h[8];
    size_t pad = (8 - (len & 7)) & 7;
    h[0] = 1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)(id & 0xff);
    h[4] = (unsigned char)((len >> 8) & 0xff);
    h[5] = (unsigned char)(len & 0xff);
    h[6] = (unsigned char)pad;
    h[7] = 0;
    buf_append(out, h, sizeof h);
    if (len)
        buf_append(out, content, len);
    static const char zeros[8] = {0};
    if (pad)
        buf_append(out, zeros, pad);
}

static void put_len(struct buf *out, size_t n)
{
    if (n < 128) {
        buf_append_char(out, (char)n);
        return;
    }
    unsigned char b[4] = {(unsigned char)(((n >> 24) & 0x7f) | 0x80),
                          (unsigned char)((n >> 16) & 0xff), (unsigned char)((n >> 8) & 0xff),
                          (unsigned char)(n & 0xff)};
    buf_append(out, b, 4);
}

void fcgiclient_encode_pair(struct buf *out, const char *name, size_t name_len,
                            const char *value, size_t value_len)
{
    put_len(out, name_len);
    put_len(out, value_len);
    buf_append(out, name, name_len);
    buf_append(out, value, value_len);
}

void fcgiclient_encode_request(struct buf *out, uint16_t id, const struct fcgiclient_param *p,
                               size_t n)
{
    static const unsigned char begin[8] = {0, 1 /* FCGI_RESPONDER */, 0 /* flags */, 0, 0, 0,
                                           0, 0};
    fcgiclient_record(out, FCGICLIENT_BEGIN_REQUEST, id, begin, sizeof begin);
    struct buf stream = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        fcgiclient_encode_pair(&stream, p[i].name, p[i].name_len, p[i].value, p[i].value_len);
    for (size_t off = 0; off < stream.len;) {
        size_t chunk = stream.len - off;
        if (chunk > FCGICLIENT_MAX_CONTENT)
            chunk = FCGICLIENT_MAX_CONTENT;
        fcgiclient_record(out, FCGICLIENT_PARAMS, id, stream.data + off, chunk);
        off += chunk;
    }
    buf_fini(&stream);
    fcgiclient_record(out, FCGICLIENT_PARAMS, id, NULL, 0);
    fcgiclient_record(out, FCGICLIENT_STDIN, id, NULL, 0);
}

/* ---- decoding ---- */

#define ERR_KEEP 4096

void fcgiclient_decoder_init(struct fcgiclient_decoder *d, uint16_t id, size_t max_out)
{
    memset(d, 0, sizeof *d);
    d->id = id;
    d->max_out = max_out;
    buf_init(&d->end_body);
    buf_init(&d->out);
    buf_init(&d->err);
}

void fcgiclient_decoder_fini(struct fcgiclient_decoder *d)
{
    buf_fini(&d->end_body);
    buf_fini(&d->out);
    buf_fini(&d->err);
}

int fcgiclient_decode(struct fcgiclient_decoder *d, const void *data, size_t len,
                      const char **why)
{
    const unsigned char *p = data;
    while (len > 0) {
        if (d->ended) {
            *why = "data after the end of the request";
            return -1;
        }
        if (d->content_left == 0 && d->padding_left == 0 && d->hdr_have < 8) {
            size_t take = 8 - d->hdr_have;
            if (take > len)
                take = len;
            memcpy(d->hdr + d->hdr_have, p, take);
            d->hdr_have += take;
            p += take;
            len -= take;
            if (d->hdr_have < 8)
                return 0;
            if (d->hdr[0] != 1) {
                *why = "record version is not 1";
                return -1;
            }
            d->type = d->hdr[1];
            uint16_t id = (uint16_t)(d->hdr[2] << 8 | d->hdr[3]);
            d->content_left = (size_t)d->hdr[4] << 8 | d->hdr[5];
            d->padding_left = d->hdr[6];
            if (id != d->id) {
                *why = "record for another request id";
                return -1;
            }
            if (d->type != FCGICLIENT_STDOUT && d->type != FCGICLIENT_STDERR &&
                d->type != FCGICLIENT_END_REQUEST) {
                *why = "unexpected record type";
                return -1;
            }
            if (d->type == FCGICLIENT_END_REQUEST && d->content_left != 8) {
                *why = "END_REQUEST record is not 8 bytes";
                return -1;
            }
        }
        if (d->content_left > 0) {
            size_t take = d->content_left < len ? d->content_left : len;
            if (d->type == FCGICLIENT_STDOUT) {
                if (d->max_out && d->out.len + take > d->max_out) {
                    *why = "response larger than the limit";
                    return -1;
                }
                buf_append(&d->out, p, take);
            } else if (d->type == FCGICLIENT_STDERR) {
                size_t room = d->err.len < ERR_KEEP ? ERR_KEEP - d->err.len : 0;
                buf_append(&d->err, p, take < room ? take : room);
            } else {
                buf_append(&d->end_body, p, take);
            }
            p += take;
            len -= take;
            d->content_left -= take;
        }
        if (d->content_left == 0 && d->padding_left > 0) {
            size_t take = d->padding_left < len ? d->padding_left : len;
            p += take;
            len -= take;
            d->padding_left -= take;
        }
        if (d->content_left == 0 && d->padding_left == 0 && d->hdr_have == 8) {
            d->hdr_have = 0; /* record complete */
            if (d->type == FCGICLIENT_END_REQUEST) {
                const unsigned char *e = (const unsigned char *)d->end_body.data;
                d->app_status = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 |
                                (uint32_t)e[2] << 8 | e[3];
                d->protocol_status = e[4];
                d->ended = 1;
            }
        }
    }
    return 0;
}

int fcgiclient_split_cgi(const char *data, size_t len, int *status, size_t *head_len,
                         size_t *body_off)
{
    size_t hl = 0, bo = 0;
    int found = 0;
    /* The head ends at an empty line: "\n" right after a "\n" (with an
     * optional "\r" before each), or at once when the head is empty. */
    if (len >= 2 && data[0] == '\r' && data[1] == '\n') {
        found = 1;
        bo = 2;
    } else if (len >= 1 && data[0] == '\n') {
        found = 1;
        bo = 1;
    }
    for (size_t i = 0; !found && i < len; i++) {
        if (data[i] != '\n')
            continue;
        size_t j = i + 1;
        if (j < len && data[j] == '\r')
            j++;
        if (j < len && data[j] == '\n') {
            found = 1;
            hl = i + 1;
            bo = j + 1;
        }
    }
    if (!found)
        return -1;
    *head_len = hl;
    *body_off = bo;
    size_t vlen;
    const char *v = fcgiclient_find_header(data, hl, "Status", &vlen);
    if (v) {
        uint64_t n;
        if (vlen < 3 || util_parse_u64(v, 3, 999, &n) < 0 || n < 100 ||
            (vlen > 3 && v[3] != ' '))
            return -1;
        *status = (int)n;
    } else {
        *status = fcgiclient_find_header(data, hl, "Location", &vlen) ? 302 : 200;
    }
    return 0;
}

const char *fcgiclient_find_header(const char *head, size_t head_len, const char *name,
                                   size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > nl && p[nl] == ':' && util_ascii_caseeq(p, name, nl)) {
            const char *v = p + nl + 1;
            const char *ve = le;
            if (ve > v && ve[-1] == '\r')
                ve--;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol ? eol + 1 : end;
    }
    return NULL;
}

/* ---- the client ---- */

enum conn_state { CONN_CONNECTING, CONN_WRITING, CONN_READING, CONN_DONE };

struct fcgiclient_conn {
    int fd;
    enum conn_state state;
    struct buf out;
    size_t out_off;
    struct fcgiclient_decoder dec;
    void *udata;
    uint64_t started_ms;
    const char *error; /* set when finished with an error */
};

struct fcgiclient {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned timeout_ms;
    struct fcgiclient_conn **conns;
    size_t nconns;
    size_t cap;
    struct pollfd *pfds;
    size_t pfd_cap;
};

/* Largest response accepted (the page plus its head). */
#define MAX_RESPONSE ((size_t)1 << 30)

/* The address forms: those of "listen", plus the several-colon form
 * "::1:9000" and an empty host, which mean what they meant before the
 * parser was shared. */
#define FCGICLIENT_ADDR \
    (ADDR_UNIX_SUN_PATH | ADDR_PORT_REQUIRED | ADDR_LAST_COLON | ADDR_EMPTY_HOST)

static int resolve(struct fcgiclient *c, const char *address, struct err *err)
{
    struct addr a;
    if (addr_parse(address, FCGICLIENT_ADDR, 0, &a, err) < 0)
        return -1;
    if (a.is_unix) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&c->addr;
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, a.host); /* fits: ADDR_UNIX_SUN_PATH */
        c->addrlen = (socklen_t)sizeof *sun;
        addr_fini(&a);
        return 0;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", a.port);
    /* A wildcard listen address means "this host". */
    const char *h = a.host;
    if (!*h || strcmp(h, "*") == 0 || strcmp(h, "0.0.0.0") == 0)
        h = "127.0.0.1";
    else if (strcmp(h, "::") == 0)
        h = "::1";
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(h, port, &hints, &ai);
    if (rc != 0 || !ai) {
        err_set(err, "", 0, 0, "\"%s\": cannot resolve %s: %s", address, h, gai_strerror(rc));
        addr_fini(&a);
        return -1;
    }
    memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
    c->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    addr_fini(&a);
    return 0;
}

struct fcgiclient *fcgiclient_new(const char *address, unsigned timeout_ms, struct err *err)
{
    struct fcgiclient *c = xcalloc(1, sizeof *c);
    if (resolve(c, address, err) < 0) {
        free(c);
        return NULL;
    }
    c->timeout_ms = timeout_ms;
    return c;
}

static void conn_free(struct fcgiclient_conn *k)
{
    if (k->fd >= 0)
        close(k->fd);
    buf_fini(&k->out);
    fcgiclient_decoder_fini(&k->dec);
    free(k);
}

void fcgiclient_free(struct fcgiclient *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nconns; i++)
        conn_free(c->conns[i]);
    free(c->conns);
    free(c->pfds);
    free(c);
}

size_t fcgiclient_pending(const struct fcgiclient *c)
{
    return c->nconns;
}

static void fail_conn(struct fcgiclient_conn *k, const char *why)
{
    k->error = why;
    k->state = CONN_DONE;
}

void fcgiclient_start(struct fcgiclient *c, const struct fcgiclient_param *p, size_t n,
                      void *udata)
{
    struct fcgiclient_conn *k = xcalloc(1, sizeof *k);
    k->fd = -1;
    k->udata = udata;
    k->started_ms = util_now_ms();
    buf_init(&k->out);
    fcgiclient_decoder_init(&k->dec, 1, MAX_RESPONSE);
    fcgiclient_encode_request(&k->out, 1, p, n);
    if (c->nconns == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->conns = xrealloc(c->conns, c->cap * sizeof *c->conns);
    }
    c->conns[c->nconns++] = k;

    k->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd < 0) {
        fail_conn(k, "cannot create a socket");
        return;
    }
    if (connect(k->fd, (struct sockaddr *)&c->addr, c->addrlen) == 0) {
        k->state = CONN_WRITING;
    } else if (errno == EINPROGRESS) {
        k->state = CONN_CONNECTING;
    } else if (errno == EAGAIN) {
        fail_conn(k, "connect: the server's listen queue is full");
    } else if (errno == ECONNREFUSED || errno == ENOENT) {
        fail_conn(k, "connect: connection refused (is memfill running there?)");
    } else {
        fail_conn(k, "connect failed");
    }
}

/* One step for a connection whose fd is ready with revents. */
static void step(struct fcgiclient_conn *k, short revents)
{
    if (k->state == CONN_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            fail_conn(k, soerr == ECONNREFUSED
                             ? "connect: connection refused (is memfill running there?)"
                             : "connect failed");
            return;
        }
        if (!(revents & POLLOUT))
            return;
        k->state = CONN_WRITING;
    }
    if (k->state == CONN_WRITING) {
        while (k->out_off < k->out.len) {
            ssize_t w = send(k->fd, k->out.data + k->out_off, k->out.len - k->out_off,
                             MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    return;
                fail_conn(k, "the server closed the connection while the request was sent");
                return;
            }
            k->out_off += (size_t)w;
        }
        k->state = CONN_READING;
        return; /* wait for POLLIN */
    }
    if (k->state == CONN_READING) {
        char chunk[65536];
        for (;;) {
            ssize_t r = recv(k->fd, chunk, sizeof chunk, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    return;
                fail_conn(k, "read error on the connection");
                return;
            }
            if (r == 0) {
                if (!k->dec.ended)
                    fail_conn(k, "the server closed the connection before it answered");
                else
                    k->state = CONN_DONE;
                return;
            }
            const char *why = NULL;
            if (fcgiclient_decode(&k->dec, chunk, (size_t)r, &why) < 0) {
                fail_conn(k, why);
                return;
            }
            if (k->dec.ended) {
                k->state = CONN_DONE;
                return;
            }
        }
    }
}

static void report(struct fcgiclient_conn *k, fcgiclient_done_fn done, void *ctx)
{
    struct fcgiclient_result res;
    memset(&res, 0, sizeof res);
    res.udata = k->udata;
    res.elapsed_ms = util_now_ms() - k->started_ms;
    res.stderr_text = k->dec.err.data ? k->dec.err.data : "";
    res.error = k->error;
    if (!res.error && k->dec.protocol_status != 0)
        res.error = k->dec.protocol_status == 1   ? "the server cannot multiplex connections"
                    : k->dec.protocol_status == 2 ? "the server is overloaded"
                    : k->dec.protocol_status == 3 ? "the server does not play the responder role"
                                                  : "the server refused the request";
    if (!res.error) {
        const char *d = k->dec.out.data ? k->dec.out.data : "";
        size_t hl, bo;
        if (fcgiclient_split_cgi(d, k->dec.out.len, &res.status, &hl, &bo) < 0) {
            res.error = "malformed CGI response head";
        } else {
            res.head = d;
            res.head_len = hl;
            res.body = d + bo;
            res.body_len = k->dec.out.len - bo;
        }
    }
    done(ctx, &res);
}

int fcgiclient_poll(struct fcgiclient *c, int wait_ms, fcgiclient_done_fn done, void *ctx)
{
    int reported = 0;
    if (c->nconns == 0)
        return 0;
    uint64_t now = util_now_ms();
    int timeout = wait_ms;
    if (c->pfd_cap < c->nconns) {
        c->pfd_cap = c->nconns;
        c->pfds = xrealloc(c->pfds, c->pfd_cap * sizeof *c->pfds);
    }
    int any_done = 0;
    for (size_t i = 0; i < c->nconns; i++) {
        struct fcgiclient_conn *k = c->conns[i];
        if (k->state != CONN_DONE && c->timeout_ms && now - k->started_ms >= c->timeout_ms)
            fail_conn(k, "timed out");
        if (k->state == CONN_DONE) {
            any_done = 1;
            c->pfds[i].fd = -1;
            c->pfds[i].events = 0;
            continue;
        }
        c->pfds[i].fd = k->fd;
        c->pfds[i].events = k->state == CONN_READING ? POLLIN : POLLOUT;
        c->pfds[i].revents = 0;
        if (c->timeout_ms) {
            uint64_t left = k->started_ms + c->timeout_ms - now;
            if (timeout < 0 || left < (uint64_t)timeout)
                timeout = (int)left;
        }
    }
    if (any_done)
        timeout = 0; /* some failed to start: report them without waiting */
    int n = poll(c->pfds, (nfds_t)c->nconns, timeout);
    if (n < 0 && errno != EINTR)
        return -1;
    for (size_t i = 0; n > 0 && i < c->nconns; i++)
        if (c->pfds[i].fd >= 0 && c->pfds[i].revents)
            step(c->conns[i], c->pfds[i].revents);
    now = util_now_ms();
    size_t keep = 0;
    for (size_t i = 0; i < c->nconns; i++) {
        struct fcgiclient_conn *k = c->conns[i];
        if (k->state != CONN_DONE && c->timeout_ms && now - k->started_ms >= c->timeout_ms)
            fail_conn(k, "timed out");
        if (k->state == CONN_DONE) {
            report(k, done, ctx);
            conn_free(k);
            reported++;
        } else {
            c->conns[keep++] = k;
        }
    }
    c->nconns = keep;
    return reported;
}
