/* master.c - the pre-fork supervisor.
 *
 * Shape (lighttpd's server_main_setup_workers, made synchronous): every
 * signal the master cares about is blocked and read from a signalfd, which
 * one poll() watches together with the admin listener and its open
 * connections (statusd.c, all non-blocking, each with a deadline), with a
 * timeout of at most TICK_MS; so there are no handlers, no EINTR races and
 * no busy loop, a status request is answered at once, and no admin client,
 * however slow, can hold the loop. Each wake-up reads the
 * signals, reaps children, respawns what is missing (with backoff),
 * enforces request_timeout from the scoreboard (so a kill lands at most
 * TICK_MS late), and acts on the signals:
 *   SIGTERM/SIGINT/SIGQUIT  graceful stop: workers get SIGTERM, finish their
 *                           request and exit; after shutdown_timeout, or on
 *                           a second signal, SIGKILL.
 *   SIGHUP                  reload: build the complete new site first; on
 *                           success start a new generation of workers, then
 *                           retire the old one gracefully; on failure log
 *                           file:line:col and keep serving.
 *   SIGUSR1                 reopen the log, and forward to the workers.
 * A worker that dies abnormally (a signal, or a non-zero exit; not a kill
 * by request_timeout) is replaced at once if it is the only death in the
 * last CRASH_WINDOW_MS; further deaths in the window delay the next
 * respawn by 50 ms, 100 ms, ... up to BACKOFF_MAX_MS. K deaths within the
 * window (K = the larger of CRASH_MIN_DEATHS and "workers": every worker
 * crashed about once) trip the crash-storm guard: one respawn per
 * CRASH_SLOW_MS and a loud "CRASH STORM" line, until a whole window passes
 * without a death. Workers die with the master: PR_SET_PDEATHSIG (see
 * worker.c). */
#include "config.h"

#include "memfill/master.h"
#include "memfill/log.h"
#include "memfill/discovery.h"
#include "memfill/stats.h"
#include "memfill/statusd.h"
#include "memfill/util.h"
#include "memfill/worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CRASH_WINDOW_MS 10000
#define CRASH_MIN_DEATHS 5
#define CRASH_SLOW_MS 5000
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000
#define TICK_MS 200

struct child {
    pid_t pid;           /* 0 when the slot is free */
    unsigned generation; /* site generation it serves */
    uint64_t born_ms;
    int retiring;        /* sent SIGTERM as part of a reload or stop */
    int killed;          /* SIGKILLed by request_timeout: not a crash */
};

struct master {
    struct site *site;
    const char *config_path;
    int listen_fd;
    pid_t pid;
    unsigned generation;
    struct stats *stats;
    struct child *children; /* one per scoreboard slot */
    size_t nslots;
    uint64_t respawn_at_ms;  /* no spawn before this (backoff) */
    unsigned backoff_ms;
    uint64_t *crash_times;   /* ring of the last ncrash abnormal deaths */
    size_t ncrash;
    size_t crash_next;
    uint64_t last_crash_ms;
    int storm;
    int sigfd;               /* signalfd of the blocked signals */
    int stopping;            /* 0, 1 graceful, 2 immediate */
    uint64_t stop_deadline_ms;
    struct statusd *statusd; /* admin.listen, served here so it answers under load */
    char **discovered;       /* node list from cluster discovery, or NULL */
    size_t ndiscovered;
    uint64_t next_discovery_ms;
    int discovery_failing;
    unsigned long max_active_reached;
};

static unsigned jitter(unsigned max_requests)
{
    if (!max_requests)
        return 0;
    /* Up to +25% so that workers started together do not recycle together. */
    unsigned spread = max_requests / 4 + 1;
    return max_requests + (unsigned)(rand() % (int)spread);
}

static size_t live_workers(const struct master *m, int current_only)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nslots; i++)
        if (m->children[i].pid &&
            (!current_only || (m->children[i].generation == m->generation &&
                               !m->children[i].retiring)))
            n++;
    return n;
}

static int spawn(struct master *m)
{
    size_t slot = 0;
    while (slot < m->nslots && m->children[slot].pid)
        slot++;
    if (slot == m->nslots)
        return -1;
    stats_retire_slot(m->stats, slot);
    unsigned limit = jitter(m->site->cfg->max_requests);
    pid_t pid = fork();
    if (pid < 0) {
        log_perr(LOG_ERROR, "fork failed");
        return -1;
    }
    if (pid == 0) {
        /* Master-only descriptors go first (STYLE 25). */
        close(m->sigfd);
        if (m->statusd)
            statusd_close_fds(m->statusd);
        worker_run(m->site, m->listen_fd, m->stats, slot, limit, m->pid);
    }
    m->children[slot].pid = pid;
    m->children[slot].generation = m->generation;
    m->children[slot].born_ms = util_now_ms();
    m->children[slot].retiring = 0;
    m->children[slot].killed = 0;
    stats_slot(m->stats, slot)->pid = pid;
    return 0;
}

/* Abnormal deaths within the window that trip the crash-storm guard. */
static size_t crash_threshold(const struct master *m)
{
    size_t k = m->site->cfg->workers;
    if (k < CRASH_MIN_DEATHS)
        k = CRASH_MIN_DEATHS;
    return k < m->ncrash ? k : m->ncrash;
}

static void note_abnormal(struct master *m, uint64_t now)
{
    stats_master(m->stats)->abnormal_exits++;
    m->crash_times[m->crash_next] = now;
    m->crash_next = (m->crash_next + 1) % m->ncrash;
    m->last_crash_ms = now;
    size_t recent = 0;
    for (size_t i = 0; i < m->ncrash; i++)
        if (m->crash_times[i] && now - m->crash_times[i] < CRASH_WINDOW_MS)
            recent++;
    size_t k = crash_threshold(m);
    if (recent >= k) {
        if (!m->storm)
            log_error("CRASH STORM: %zu workers died abnormally within %d s; respawning only "
                      "one every %d s until %d s pass without a crash (the cause is in the "
                      "lines above)",
                      recent, CRASH_WINDOW_MS / 1000, CRASH_SLOW_MS / 1000,
                      CRASH_WINDOW_MS / 1000);
        m->storm = 1;
        m->backoff_ms = CRASH_SLOW_MS;
    } else if (recent <= 1) {
        m->backoff_ms = 0; /* a lone crash: replace it at once */
    } else {
        unsigned b = BACKOFF_FIRST_MS;
        for (size_t i = 2; i < recent && b < BACKOFF_MAX_MS; i++)
            b *= 2;
        m->backoff_ms = b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS;
    }
    if (now + m->backoff_ms > m->respawn_at_ms)
        m->respawn_at_ms = now + m->backoff_ms;
}

static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        size_t i = 0;
        while (i < m->nslots && m->children[i].pid != pid)
            i++;
        if (i == m->nslots)
            continue;
        struct child *c = &m->children[i];
        uint64_t now = util_now_ms();
        int abnormal = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
        if (c->killed) {
            /* request_timeout: logged when killed; replaced at once. */
        } else if (abnormal && !c->retiring && !m->stopping) {
            if (WIFSIGNALED(status))
                log_error("worker %ld died from signal %d (%s) after %llu ms", (long)pid,
                          WTERMSIG(status), strsignal(WTERMSIG(status)),
                          (unsigned long long)(now - c->born_ms));
            else
                log_error("worker %ld exited with status %d after %llu ms", (long)pid,
                          WEXITSTATUS(status), (unsigned long long)(now - c->born_ms));
            note_abnormal(m, now);
        } else if (abnormal && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
            log_warn("worker %ld died from signal %d (%s) after it was told to stop", (long)pid,
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        }
        if (!c->retiring && !m->stopping)
            stats_master(m->stats)->restarts++;
        stats_retire_slot(m->stats, i);
        c->pid = 0;
    }
}

static void respawn(struct master *m)
{
    if (m->stopping)
        return;
    uint64_t now = util_now_ms();
    /* Calm again: a full window without a crash ends the storm. */
    if (m->last_crash_ms && now - m->last_crash_ms > CRASH_WINDOW_MS &&
        (m->storm || m->backoff_ms)) {
        if (m->storm)
            log_warn("crash storm over: normal respawning resumes");
        m->storm = 0;
        m->backoff_ms = 0;
        m->respawn_at_ms = 0;
    }
    if (now < m->respawn_at_ms)
        return;
    while (live_workers(m, 1) < m->site->cfg->workers) {
        if (spawn(m) < 0)
            break;
        if (m->storm)
            log_warn("crash storm: started one worker; %zu of %u running", live_workers(m, 1),
                     m->site->cfg->workers);
        if (m->backoff_ms) {
            /* Under backoff, one worker per period. */
            m->respawn_at_ms = now + m->backoff_ms;
            break;
        }
    }
}

static void enforce_timeouts(struct master *m)
{
    unsigned limit = m->site->cfg->request_timeout;
    if (!limit)
        return;
    uint64_t now = util_now_ms();
    for (size_t i = 0; i < m->nslots; i++) {
        struct stats_slot *s = stats_slot(m->stats, i);
        /* Storing counts too: the limit is for the whole request. */
        int storing = s->state == STATS_STATE_STORING;
        if (!m->children[i].pid || (s->state != STATS_STATE_BUSY && !storing))
            continue;
        uint64_t started = s->started_ms;
        if (started && now > started && now - started > (uint64_t)limit * 1000u) {
            char uri[STATS_URI_MAX];
            memcpy(uri, s->uri, sizeof uri);
            uri[sizeof uri - 1] = '\0';
            if (uri[0])
                log_error("worker %ld killed: request \"%s\" ran %llu ms%s, past "
                          "request_timeout (%u s)",
                          (long)m->children[i].pid, uri, (unsigned long long)(now - started),
                          storing ? " (still storing)" : "", limit);
            else /* the URI is set once the params are in (worker.c) */
                log_error("worker %ld killed: a connection sent no complete request in %llu "
                          "ms, past request_timeout (%u s)",
                          (long)m->children[i].pid, (unsigned long long)(now - started), limit);
            kill(m->children[i].pid, SIGKILL);
            m->children[i].killed = 1;
            stats_master(m->stats)->timeouts_killed++;
            s->state = STATS_STATE_EXITING;
        }
    }
}

static void signal_workers(struct master *m, int sig, int only_old)
{
    for (size_t i = 0; i < m->nslots; i++) {
        struct child *c = &m->children[i];
        if (!c->pid || (only_old && c->generation == m->generation))
            continue;
        if (sig == SIGTERM)
            c->retiring = 1;
        kill(c->pid, sig);
    }
}

/* Builds a complete site from the config file, with the node list found
 * by cluster discovery when there is one. Returns NULL (logged) on error. */
static struct site *build_site(struct master *m, const char *why)
{
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load(m->config_path, 0, &e);
    if (cfg && cfg->discovery_endpoint && m->discovered &&
        config_set_servers(cfg, m->discovered, m->ndiscovered, &e) < 0) {
        config_free(cfg);
        cfg = NULL;
    }
    struct site *site = cfg ? site_new_own(cfg, &e) : NULL;
    if (!site) {
        char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
        log_error("%s failed, still serving the previous config: %s", why,
                  err_format(&e, msg, sizeof msg));
    }
    return site;
}

static void apply_site(struct master *m, struct site *site);

static int str_differs(const char *a, const char *b)
{
    return (!a != !b) || (a && strcmp(a, b) != 0);
}

/* Settings used once at start-up (before the privilege drop): a reload
 * cannot apply them, so say so instead of silently ignoring them. */
static void warn_restart_only(const struct config *old, const struct config *cur)
{
    const char *changed[9];
    size_t n = 0;
    if (str_differs(old->listen, cur->listen))
        changed[n++] = "listen";
    if (old->listen_mode != cur->listen_mode)
        changed[n++] = "listen_mode";
    if (str_differs(old->listen_owner, cur->listen_owner))
        changed[n++] = "listen_owner";
    if (str_differs(old->listen_group, cur->listen_group))
        changed[n++] = "listen_group";
    if (old->backlog != cur->backlog)
        changed[n++] = "backlog";
    if (str_differs(old->user, cur->user))
        changed[n++] = "user";
    if (str_differs(old->group, cur->group))
        changed[n++] = "group";
    if (str_differs(old->pid_file, cur->pid_file))
        changed[n++] = "pid_file";
    if (str_differs(old->admin_listen, cur->admin_listen))
        changed[n++] = "admin.listen";
    for (size_t i = 0; i < n; i++)
        log_warn("reload: \"%s\" changed; it takes effect at the next restart", changed[i]);
}

static void reload(struct master *m)
{
    log_info("reloading %s", m->config_path);
    struct site *site = build_site(m, "reload");
    if (site)
        apply_site(m, site);
}

/* Switches to site: new workers first, then the old generation retires. */
static void apply_site(struct master *m, struct site *site)
{
    if (site->cfg->workers * 2 > m->nslots)
        log_warn("reload: workers raised to %u but only %zu slots exist; using %zu",
                 site->cfg->workers, m->nslots, m->nslots / 2);
    if (site->cfg->workers * 2 > m->nslots)
        site->cfg->workers = (unsigned)(m->nslots / 2);
    warn_restart_only(m->site->cfg, site->cfg);
    if (log_open(site->cfg->log_file, site->cfg->log_level, 'M') < 0)
        log_perr(LOG_ERROR, "reload: cannot open log %s", site->cfg->log_file);
    struct site *old = m->site;
    m->site = site;
    m->generation++;
    stats_master(m->stats)->reloads++;
    /* New workers first, so requests keep being served, then the old ones
     * finish what they are doing and leave. A new config may well be the
     * cure for a crash storm: start the whole generation (the recorded
     * deaths stay, so one more crash trips the guard again). */
    m->respawn_at_ms = 0;
    m->backoff_ms = 0;
    m->storm = 0;
    respawn(m);
    signal_workers(m, SIGTERM, 1);
    site_free(old);
    log_info("generation %u serving with %u workers", m->generation, site->cfg->workers);
}

static void set_discovered(struct master *m, char *const *addresses, size_t n)
{
    for (size_t i = 0; i < m->ndiscovered; i++)
        free(m->discovered[i]);
    free(m->discovered);
    m->discovered = NULL;
    m->ndiscovered = n;
    if (!addresses)
        return;
    m->discovered = xcalloc(n + 1, sizeof *m->discovered);
    for (size_t i = 0; i < n; i++)
        m->discovered[i] = xstrdup(addresses[i]);
}

/* Polls the cluster configuration endpoint; a changed node list is applied
 * like a reload (new workers on the new list, old ones retire). */
static void discovery_tick(struct master *m)
{
    const struct config *cfg = m->site->cfg;
    uint64_t now = util_now_ms();
    if (!cfg->discovery_endpoint || now < m->next_discovery_ms)
        return;
    m->next_discovery_ms = now + (uint64_t)cfg->discovery_interval * 1000u;
    struct discovery_result r;
    struct err e;
    err_clear(&e);
    unsigned timeout = cfg->mc_connect_timeout_ms * 4 < 2000 ? cfg->mc_connect_timeout_ms * 4
                                                               : 2000;
    int rc = discovery_fetch(cfg->discovery_endpoint, timeout, &r, &e);
    if (rc < 0) {
        if (!m->discovery_failing)
            log_warn("%s; keeping the current node list", e.text);
        m->discovery_failing = 1;
        return;
    }
    m->discovery_failing = 0;
    if (rc == 0) {
        if (m->discovered) {
            log_warn("discovery: %s answers ERROR (a plain memcached): back to the configured "
                     "nodes", cfg->discovery_endpoint);
            set_discovered(m, NULL, 0);
            struct site *site = build_site(m, "discovery");
            if (site)
                apply_site(m, site);
        }
        return;
    }
    char **cur = m->discovered;
    int same = cur ? discovery_same(&r, cur, m->ndiscovered) : 0;
    if (!same) {
        struct buf list = BUF_INIT;
        for (size_t i = 0; i < r.n; i++)
            buf_printf(&list, "%s%s", i ? " " : "", r.addresses[i]);
        log_info("discovery: cluster config version %lu lists %zu nodes: %s", r.version, r.n,
                 list.data);
        buf_fini(&list);
        set_discovered(m, r.addresses, r.n);
        struct site *site = build_site(m, "discovery");
        if (site)
            apply_site(m, site);
    }
    discovery_result_fini(&r);
}

/* How long poll may sleep: TICK_MS, or less when a respawn, the shutdown
 * deadline or an admin connection's deadline comes sooner. */
static int wait_ms(const struct master *m)
{
    uint64_t now = util_now_ms(), t = TICK_MS;
    if (m->respawn_at_ms > now && m->respawn_at_ms - now < t)
        t = m->respawn_at_ms - now;
    if (m->stopping == 1 && m->stop_deadline_ms > now && m->stop_deadline_ms - now < t)
        t = m->stop_deadline_ms - now + 1;
    int admin = m->statusd && !m->stopping ? statusd_wait_ms(m->statusd) : -1;
    if (admin >= 0 && (uint64_t)admin < t)
        t = (uint64_t)admin;
    return (int)t;
}

static void begin_stop(struct master *m, int sig)
{
    if (m->stopping) {
        log_warn("second stop signal (%d): stopping now", sig);
        m->stopping = 2;
        signal_workers(m, SIGKILL, 0);
        return;
    }
    m->stopping = 1;
    m->stop_deadline_ms = util_now_ms() + (uint64_t)m->site->cfg->shutdown_timeout * 1000u;
    log_info("graceful stop (signal %d): waiting up to %u s for in-flight requests", sig,
             m->site->cfg->shutdown_timeout);
    signal_workers(m, SIGTERM, 0);
}

int master_run(struct site *site, const char *config_path, int listen_fd)
{
    struct master m;
    memset(&m, 0, sizeof m);
    m.site = site;
    m.config_path = config_path;
    m.listen_fd = listen_fd;
    m.pid = getpid();
    /* Two generations can overlap during a reload. */
    m.nslots = (size_t)site->cfg->workers * 2;
    m.stats = stats_new(m.nslots);
    if (!m.stats) {
        log_perr(LOG_ERROR, "cannot map the scoreboard");
        site_free(site);
        return 71;
    }
    stats_master(m.stats)->started_unix = (uint64_t)time(NULL);
    m.children = xcalloc(m.nslots, sizeof *m.children);
    /* Room for the deaths of every slot, at least CRASH_MIN_DEATHS. */
    m.ncrash = m.nslots > CRASH_MIN_DEATHS ? m.nslots : CRASH_MIN_DEATHS;
    m.crash_times = xcalloc(m.ncrash, sizeof *m.crash_times);
    srand((unsigned)(m.pid ^ time(NULL)));

    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN); /* the workers' "master died" signal */
    m.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m.sigfd < 0) {
        log_perr(LOG_ERROR, "signalfd");
        free(m.crash_times);
        free(m.children);
        stats_free(m.stats);
        site_free(site);
        return 71;
    }

    log_info("memfill %s: master %ld starting %u workers", PACKAGE_VERSION, (long)m.pid,
             site->cfg->workers);
    if (site->cfg->admin_listen) {
        struct err e;
        err_clear(&e);
        m.statusd = statusd_new(site->cfg->admin_listen, &e);
        if (!m.statusd)
            log_error("%s; the status endpoint is off", e.text);
    }
    respawn(&m);
    uint64_t busy_checked_ms = 0;
    for (;;) {
        /* The admin listener and its connections are served only outside
         * a stop (below), so they are only watched then: a pending status
         * client must not make poll return at once over and over while
         * the workers finish. Nothing in statusd blocks: a slow client
         * costs a wake-up, never a wait. */
        struct pollfd pfd[2 + STATUSD_MAX_CLIENTS];
        pfd[0] = (struct pollfd){m.sigfd, POLLIN, 0};
        size_t npfd = 1;
        if (m.statusd && !m.stopping)
            npfd += statusd_pollfds(m.statusd, pfd + 1);
        if (poll(pfd, (nfds_t)npfd, wait_ms(&m)) < 0 && errno != EINTR) {
            log_perr(LOG_ERROR, "poll");
            sleep(1); /* never spin, whatever went wrong */
        }
        struct signalfd_siginfo ssi;
        while (read(m.sigfd, &ssi, sizeof ssi) == (ssize_t)sizeof ssi) {
            int sig = (int)ssi.ssi_signo;
            if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
                begin_stop(&m, sig);
            else if (sig == SIGHUP && !m.stopping)
                reload(&m);
            else if (sig == SIGUSR1) {
                if (log_reopen() < 0)
                    log_perr(LOG_ERROR, "cannot reopen the log");
                else
                    log_info("log reopened (SIGUSR1)");
                signal_workers(&m, SIGUSR1, 0);
            }
        }
        reap(&m);
        if (m.stopping) {
            if (live_workers(&m, 0) == 0)
                break;
            if (m.stopping == 1 && util_now_ms() > m.stop_deadline_ms) {
                log_warn("shutdown_timeout reached: killing the remaining workers");
                m.stopping = 2;
                signal_workers(&m, SIGKILL, 0);
            }
            continue;
        }
        enforce_timeouts(&m);
        discovery_tick(&m);
        respawn(&m);
        if (m.statusd) {
            /* Sampled once per tick, however often admin clients wake
             * the loop, so the count keeps meaning "ticks". */
            uint64_t now = util_now_ms();
            if (now - busy_checked_ms >= TICK_MS) {
                busy_checked_ms = now;
                unsigned busy = status_count_state(m.stats, STATS_STATE_BUSY) +
                                status_count_state(m.stats, STATS_STATE_STORING);
                if (busy >= m.site->cfg->workers)
                    m.max_active_reached++;
            }
            struct status_info sinfo = {m.pid, m.site->cfg, m.listen_fd, m.generation,
                                     m.max_active_reached};
            statusd_serve(m.statusd, m.stats, &sinfo);
        }
    }
    statusd_free(m.statusd);
    set_discovered(&m, NULL, 0);
    log_info("master %ld stopped", (long)m.pid);
    close(m.sigfd);
    free(m.crash_times);
    free(m.children);
    stats_free(m.stats);
    site_free(m.site);
    return 0;
}
