/* listen.c - opens or inherits the FastCGI listening socket.
 *
 * Under spawn-fcgi the socket arrives on fd 0 already bound; otherwise the
 * master binds "listen" before forking so every worker accepts on the same
 * socket (the kernel's queue holds connections while workers come and go,
 * which is what makes reloads and recycling lossless). Either way the
 * socket is made non-blocking: workers poll it with their stop signals
 * open and then accept, and a worker that loses the race to another gets
 * EAGAIN instead of sleeping in accept() (see worker.c).
 *
 * A unix socket path is only replaced when nothing answers on it (a stale
 * file from a crash), never when another server is live there, and never
 * when it is not a socket. The file is created under a umask that already
 * gives listen_mode, so it is never reachable with wider permissions, and
 * it is removed at exit if it is still ours. */
#include "config.h"

#include "memfill/listen.h"
#include "memfill/addr.h"
#include "memfill/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The unix socket file we created, to remove it at exit only if it is
 * still ours. */
static dev_t listen_dev;
static ino_t listen_ino;
static int listen_made_unix;

int listen_fd_is_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Returns 1 when a server accepts connections on the unix socket path. */
static int unix_socket_alive(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int alive = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
    close(fd);
    return alive;
}

static int open_unix(const struct config *cfg, const char *path, struct err *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path)); /* length checked by addr_parse */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            err_set(err, cfg->path, 0, 0, "listen: %s exists and is not a socket", path);
            return -1;
        }
        if (unix_socket_alive(&sa)) {
            err_set(err, cfg->path, 0, 0, "listen: %s: another server is listening there",
                    path);
            return -1;
        }
        unlink(path); /* stale, left by a process that died */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err_set(err, cfg->path, 0, 0, "listen: socket: %s", strerror(errno));
        return -1;
    }
    /* Create the file with listen_mode already (or 0666 & ~umask). */
    mode_t old = cfg->listen_mode ? umask((mode_t)(~cfg->listen_mode & 0777)) : 0;
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    if (cfg->listen_mode)
        umask(old);
    if (rc < 0) {
        err_set(err, cfg->path, 0, 0, "listen: cannot bind %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    if (stat(path, &st) == 0) {
        listen_dev = st.st_dev;
        listen_ino = st.st_ino;
        listen_made_unix = 1;
    }
    if (cfg->listen_mode && chmod(path, cfg->listen_mode) < 0) {
        err_set(err, cfg->path, 0, 0, "listen_mode: chmod %s: %s", path, strerror(errno));
        goto fail;
    }
    if (cfg->listen_owner || cfg->listen_group) {
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        if (cfg->listen_owner) {
            struct passwd *pw = getpwnam(cfg->listen_owner);
            if (!pw) {
                err_set(err, cfg->path, 0, 0, "listen_owner: no user \"%s\"", cfg->listen_owner);
                goto fail;
            }
            uid = pw->pw_uid;
        }
        if (cfg->listen_group) {
            struct group *gr = getgrnam(cfg->listen_group);
            if (!gr) {
                err_set(err, cfg->path, 0, 0, "listen_group: no group \"%s\"",
                        cfg->listen_group);
                goto fail;
            }
            gid = gr->gr_gid;
        }
        if (chown(path, uid, gid) < 0) {
            err_set(err, cfg->path, 0, 0, "%s: chown %s: %s",
                    cfg->listen_owner ? "listen_owner" : "listen_group", path, strerror(errno));
            goto fail;
        }
    }
    return fd;
fail:
    close(fd);
    unlink(path);
    listen_made_unix = 0;
    return -1;
}

/* "*:port" and ":port" (a->any) are IPv4's any address. */
static int open_inet(const struct config *cfg, const struct addr *a, struct err *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = a->any ? AF_INET : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", a->port);
    int gai = getaddrinfo(*a->host ? a->host : NULL, portstr, &hints, &res);
    if (gai != 0 || !res) {
        err_set(err, cfg->path, 0, 0, "listen: cannot resolve \"%s\": %s", cfg->listen,
                gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* "[::]:port" means IPv6 only, as in nginx; "*:port" is IPv4. */
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        err_set(err, cfg->path, 0, 0, "listen: cannot bind %s: %s", cfg->listen, strerror(e));
    return fd;
}

int listen_open(const struct config *cfg, struct err *err)
{
    if (listen_fd_is_listening(0)) {
        if (set_nonblocking(0) < 0) {
            err_set(err, cfg->path, 0, 0, "listen: fd 0: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    if (!cfg->listen) {
        err_set(err, cfg->path, 0, 0,
                "listen: not set, and fd 0 is not a listening socket (start memfill under "
                "spawn-fcgi, or set \"listen\")");
        return -1;
    }
    struct addr a;
    struct err e;
    err_clear(&e);
    if (addr_parse(cfg->listen, ADDR_LISTEN, 0, &a, &e) < 0) {
        err_set(err, cfg->path, 0, 0, "listen: %s", e.text);
        return -1;
    }
    int fd = a.is_unix ? open_unix(cfg, a.host, err) : open_inet(cfg, &a, err);
    addr_fini(&a);
    if (fd < 0)
        return -1;
    if (listen(fd, (int)cfg->backlog) < 0 || set_nonblocking(fd) < 0) {
        err_set(err, cfg->path, 0, 0, "listen: %s: %s", cfg->listen, strerror(errno));
        listen_close(fd, cfg->listen);
        return -1;
    }
    return fd;
}

void listen_close(int fd, const char *spec)
{
    if (fd > 0)
        close(fd);
    if (fd <= 0 || !spec || !addr_is_unix(spec, strlen(spec), 0) || !listen_made_unix)
        return;
    struct stat st;
    if (lstat(spec + 5, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == listen_dev &&
        st.st_ino == listen_ino)
        unlink(spec + 5);
    listen_made_unix = 0;
}
