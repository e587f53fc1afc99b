/* main.c - memfill: command line, config check, then the master.
 *
 *   memfill -c FILE          run (foreground; master + workers)
 *   memfill -t -c FILE       check the config and everything built from it
 *   memfill --print-config -c FILE
 *   memfill -V
 * Exit codes follow sysexits: 64 usage, 78 config, 71 OS errors, 73 log
 * or pid file not writable, 77 user/group cannot be taken.
 *
 * Start-up order: load and build the whole site (so -t checks exactly what
 * would run), open the log, open or inherit the socket, write the pid
 * file, then drop to user/group (root is needed for the first three when
 * they live in privileged places), then the master. Always foreground:
 * systemd, runit or spawn-fcgi -n supervise the master. */
#include "config.h"

#include "memfill/conf.h"
#include "memfill/listen.h"
#include "memfill/log.h"
#include "memfill/master.h"
#include "memfill/site.h"
#include "memfill/util.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: memfill -c FILE [-t] [--print-config]\n"
                 "       memfill -V\n"
                 "  -c, --config FILE   configuration file (JSON)\n"
                 "  -t, --test-config   check the configuration and exit\n"
                 "      --print-config  print every effective setting and exit\n"
                 "  -V, --version       print the version and exit\n");
}

static int drop_privileges(const struct config *cfg)
{
    if (geteuid() != 0)
        return 0;
    if (!cfg->user && !cfg->group) {
        log_warn("running as root: set \"user\" (and \"group\") so workers do not");
        return 0;
    }
    struct passwd *pw = cfg->user ? getpwnam(cfg->user) : NULL;
    if (cfg->user && !pw) {
        fprintf(stderr, "memfill: user: no user \"%s\"\n", cfg->user);
        return -1;
    }
    gid_t gid = pw ? pw->pw_gid : getegid();
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr) {
            fprintf(stderr, "memfill: group: no group \"%s\"\n", cfg->group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    /* The log file was opened as root: hand it over, so a reopen after
     * rotation (SIGUSR1) can still write to it. */
    if (log_fd() > 2 && fchown(log_fd(), pw ? pw->pw_uid : (uid_t)-1, gid) < 0)
        log_perr(LOG_WARN, "log.file: cannot hand the log file to the user");
    if (setgid(gid) < 0 || (pw && initgroups(pw->pw_name, gid) < 0) ||
        (!pw && setgroups(0, NULL) < 0) || (pw && setuid(pw->pw_uid) < 0)) {
        fprintf(stderr, "memfill: cannot drop privileges: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes the master's pid (the process to signal) with a rename, so a
 * reader never sees a half-written file. */
static int write_pid_file(const char *path)
{
    size_t n = strlen(path) + 8;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        if (fclose(f) == 0 && rename(tmp, path) == 0)
            rc = 0;
    }
    int saved = errno;
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    errno = saved;
    return rc;
}

/* Sets warn (source = path) when the config file holds admin.token and
 * group or others may read it (the token opens PURGE and status). Returns
 * 1 when it did, else 0. */
static int token_exposed(const char *path, const struct config *cfg, struct err *warn)
{
    struct stat st;
    if (!cfg->admin_token || stat(path, &st) < 0 || !(st.st_mode & (S_IRGRP | S_IROTH)))
        return 0;
    err_set(warn, path, 0, 0,
            "admin.token: warning: the file is readable by %s (mode %04o); anyone who can "
            "read it can purge pages and read status: chmod 0600 it (owned by the user "
            "memfill runs as)",
            (st.st_mode & S_IROTH) ? "others" : "its group", (unsigned)(st.st_mode & 07777));
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"print-config", no_argument, NULL, 'p'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int test = 0, print = 0, c;
    while ((c = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': test = 1; break;
        case 'p': print = 1; break;
        case 'V': printf("memfill %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind < argc || !path) {
        fprintf(stderr, "memfill: %s\n", path ? "unexpected argument" : "-c FILE is required");
        usage(stderr);
        return EX_USAGE;
    }

    struct err e;
    err_clear(&e);
    char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
    struct config *cfg = config_load(path, 0, &e);
    struct site *site = cfg ? site_new_own(cfg, &e) : NULL;
    if (!site) {
        fprintf(stderr, "%s\n", err_format(&e, msg, sizeof msg));
        return EX_CONFIG;
    }
    if (print) {
        struct buf out = BUF_INIT;
        config_print(site->cfg, &out);
        fwrite(out.data, 1, out.len, stdout);
        buf_fini(&out);
        site_free(site);
        return 0;
    }
    struct err warn;
    err_clear(&warn);
    char warning[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
    int exposed = token_exposed(path, site->cfg, &warn);
    if (exposed)
        err_format(&warn, warning, sizeof warning);
    if (test) {
        if (exposed)
            fprintf(stderr, "%s\n", warning);
        printf("configuration ok\n");
        site_free(site);
        return 0;
    }
    if (log_open(site->cfg->log_file, site->cfg->log_level, 'M') < 0) {
        fprintf(stderr, "memfill: log.file: cannot open %s: %s\n", site->cfg->log_file,
                strerror(errno));
        site_free(site);
        return EX_CANTCREAT;
    }
    if (exposed)
        log_warn("%s", warning);
    int fd = listen_open(site->cfg, &e);
    if (fd < 0) {
        fprintf(stderr, "%s\n", err_format(&e, msg, sizeof msg));
        site_free(site);
        return EX_OSERR;
    }
    /* Kept past master_run, which owns (and may replace) the site. */
    char *listen_spec = fd > 0 && site->cfg->listen ? xstrdup(site->cfg->listen) : NULL;
    char *pid_file = site->cfg->pid_file ? xstrdup(site->cfg->pid_file) : NULL;
    if (pid_file && write_pid_file(pid_file) < 0) {
        fprintf(stderr, "memfill: pid_file: cannot write %s: %s\n", pid_file, strerror(errno));
        listen_close(fd, listen_spec);
        site_free(site);
        return EX_CANTCREAT;
    }
    if (drop_privileges(site->cfg) < 0) {
        if (pid_file)
            unlink(pid_file);
        listen_close(fd, listen_spec);
        site_free(site);
        return EX_NOPERM;
    }
    int rc = master_run(site, path, fd);
    listen_close(fd, listen_spec);
    if (pid_file)
        unlink(pid_file); /* may fail after the drop: a stale file names a dead pid */
    free(pid_file);
    free(listen_spec);
    return rc;
}
