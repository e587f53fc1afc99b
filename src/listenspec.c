/* listenspec.c - the syntax of a "listen" value, checked without a socket.
 *
 * The config loader checks "listen" when it loads the file, and listen.c
 * splits the same text when it binds; both read it here, so the loader
 * does not depend on the module that opens sockets. */
#include "config.h"

#include "memfill/listenspec.h"
#include "memfill/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int listen_parse_inet(const char *spec, char **host, unsigned *port, int *family, char *msg,
                      size_t msglen)
{
    const char *colon;
    *host = NULL;
    *family = AF_UNSPEC;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close == spec + 1 || close[1] != ':') {
            snprintf(msg, msglen, "expected \"[v6 address]:port\", got \"%s\"", spec);
            return -1;
        }
        *host = xstrndup(spec + 1, (size_t)(close - spec - 1));
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon || strchr(spec, ':') != colon) {
            snprintf(msg, msglen,
                     "expected \"host:port\", \"[v6]:port\", \"*:port\" or \"unix:/path\", got "
                     "\"%s\"",
                     spec);
            return -1;
        }
        if ((colon == spec + 1 && spec[0] == '*') || colon == spec) {
            *host = xstrdup("");
            *family = AF_INET;
        } else {
            *host = xstrndup(spec, (size_t)(colon - spec));
        }
    }
    uint64_t p = 0;
    if (util_parse_u64(colon + 1, strlen(colon + 1), 65535, &p) < 0 || p == 0) {
        snprintf(msg, msglen, "expected a port from 1 to 65535 after ':', got \"%s\"", spec);
        free(*host);
        *host = NULL;
        return -1;
    }
    *port = (unsigned)p;
    return 0;
}

int listen_check_spec(const char *spec, char *msg, size_t msglen)
{
    if (util_starts_with(spec, "unix:")) {
        const char *path = spec + 5;
        struct sockaddr_un sa;
        if (path[0] != '/') {
            snprintf(msg, msglen, "expected an absolute path after \"unix:\", got \"%s\"", spec);
            return -1;
        }
        if (strlen(path) >= sizeof sa.sun_path) {
            snprintf(msg, msglen, "socket path is longer than %zu bytes",
                     sizeof sa.sun_path - 1);
            return -1;
        }
        return 0;
    }
    char *host;
    unsigned port;
    int family;
    if (listen_parse_inet(spec, &host, &port, &family, msg, msglen) < 0)
        return -1;
    free(host);
    return 0;
}
