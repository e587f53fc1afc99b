/* listen.c - opens or inherits the FastCGI listening socket.
 *
 * Under spawn-fcgi the socket arrives on fd 0 already bound; otherwise the
 * master binds "listen" before forking so every worker accepts on the same
 * socket. A stale unix socket file is removed only if it really is a
 * socket, never a regular file. */
#include "config.h"

#include "memfill/listen.h"
#include "memfill/mcwriter.h"
#include "memfill/util.h"

#include <errno.h>
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

int listen_fd_is_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

static int open_unix(const struct config *cfg, const char *path, struct err *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        err_set(err, cfg->path, 0, 0, "listen: socket path is too long");
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        err_set(err, cfg->path, 0, 0, "listen: cannot bind %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (cfg->listen_mode && chmod(path, cfg->listen_mode) < 0) {
        err_set(err, cfg->path, 0, 0, "listen_mode: chmod %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (cfg->listen_owner || cfg->listen_group) {
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        if (cfg->listen_owner) {
            struct passwd *pw = getpwnam(cfg->listen_owner);
            if (!pw) {
                err_set(err, cfg->path, 0, 0, "listen_owner: no user \"%s\"", cfg->listen_owner);
                close(fd);
                return -1;
            }
            uid = pw->pw_uid;
        }
        if (cfg->listen_group) {
            struct group *gr = getgrnam(cfg->listen_group);
            if (!gr) {
                err_set(err, cfg->path, 0, 0, "listen_group: no group \"%s\"",
                        cfg->listen_group);
                close(fd);
                return -1;
            }
            gid = gr->gr_gid;
        }
        if (chown(path, uid, gid) < 0) {
            err_set(err, cfg->path, 0, 0, "listen_owner: chown %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int open_inet(const struct config *cfg, struct err *err)
{
    char *host;
    unsigned port;
    int is_unix;
    const char *spec = cfg->listen;
    if (util_starts_with(spec, "*:"))
        spec += 1; /* ":port" → any address, handled below */
    if (spec[0] == ':') {
        host = xstrdup("");
        uint64_t p;
        if (util_parse_u64(spec + 1, strlen(spec + 1), 65535, &p) < 0 || p == 0) {
            free(host);
            err_set(err, cfg->path, 0, 0, "listen: expected host:port, got \"%s\"", cfg->listen);
            return -1;
        }
        port = (unsigned)p;
    } else if (mcwriter_split_address(spec, &host, &port, &is_unix) < 0 || !strchr(spec, ':')) {
        err_set(err, cfg->path, 0, 0, "listen: expected host:port, got \"%s\"", cfg->listen);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int gai = getaddrinfo(*host ? host : NULL, portstr, &hints, &res);
    free(host);
    if (gai != 0 || !res) {
        err_set(err, cfg->path, 0, 0, "listen: cannot resolve \"%s\": %s", cfg->listen,
                gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        err_set(err, cfg->path, 0, 0, "listen: cannot bind %s: %s", cfg->listen,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int listen_open(const struct config *cfg, struct err *err)
{
    if (listen_fd_is_listening(0))
        return 0;
    if (!cfg->listen) {
        err_set(err, cfg->path, 0, 0,
                "listen: not set, and fd 0 is not a listening socket (start memfill under "
                "spawn-fcgi, or set \"listen\")");
        return -1;
    }
    int fd = util_starts_with(cfg->listen, "unix:") ? open_unix(cfg, cfg->listen + 5, err)
                                                    : open_inet(cfg, err);
    if (fd < 0)
        return -1;
    if (listen(fd, (int)cfg->backlog) < 0) {
        err_set(err, cfg->path, 0, 0, "listen: %s: %s", cfg->listen, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
