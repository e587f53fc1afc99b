/* worker.c - a worker: accept, route, handle, answer, then store.
 *
 * Set-up order after fork (written down because it matters):
 *   1. signal dispositions: SIGTERM/SIGINT/SIGQUIT raise the stop flag and
 *      call FCGX_ShutdownPending(); installed without SA_RESTART; SIGUSR1
 *      raises the log-reopen flag; SIGPIPE is ignored so a vanished nginx
 *      gives EPIPE, not death. These are in place before FCGX_Init, which
 *      then leaves them alone.
 *   2. die with the master (PR_SET_PDEATHSIG = SIGUSR2, see on_orphan), and
 *      check it is still there.
 *   3. per-process resources: libfcgi request, memcached handles (the
 *      mcclient connects lazily, so nothing opened before fork is reused).
 * Waiting for a request: libfcgi's accept loop checks "shutdown pending"
 * and then blocks in accept(); a SIGTERM landing between the two runs its
 * handler before accept() starts, so there is no EINTR and the worker
 * sleeps until the next connection. So the stop and reopen signals stay
 * BLOCKED all the time except inside ppoll() on the (non-blocking)
 * listening socket, which unblocks them atomically: a stop while idle
 * ends ppoll at once, and a
 * stop during a request waits until the request is answered and stored,
 * with no EINTR inside libfcgi's reads and writes or a handler's sleeps.
 * ppoll runs the handlers only when it returns EINTR, so after it says
 * "readable" the worker also takes any signal left pending
 * (take_pending_signals) before FCGX_Accept_r, which then either gets the
 * connection or -EAGAIN (another worker was faster: poll again).
 * Per request, the response is written and the request finished BEFORE the
 * store, so the client never waits on memcached; everything the store
 * needs was copied into the store job and the worker's own response
 * buffers while the params were still valid.
 * The params deadline: every read of a connection (its params, its body,
 * the final drain) is bounded by params_timeout_ms with a timer whose
 * signal (SIGRTMIN, installed by fcgi_conn_new, never blocked, only armed
 * while fcgi.c reads) shuts the connection down; see fcgi.c. A connection
 * that delivers no complete request in time is closed, counted
 * (params_timeout) and logged at most once per NOTE_INTERVAL_MS; a kept
 * connection (FCGI_KEEP_CONN) that brings no next request within the same
 * time is closed too, so no client holds a worker past that. */
#include "config.h"

#include "memfill/worker.h"
#include "memfill/admin.h"
#include "memfill/fcgi.h"
#include "memfill/log.h"
#include "memfill/mcclient.h"
#include "memfill/purge.h"
#include "memfill/stampede.h"
#include "memfill/store.h"
#include "memfill/util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif

static volatile sig_atomic_t worker_stop;
static volatile sig_atomic_t worker_reopen;

static void on_stop(int sig)
{
    (void)sig;
    int saved = errno;
    worker_stop = 1;
    fcgi_shutdown_pending();
    errno = saved;
}

static void on_usr1(int sig)
{
    (void)sig;
    worker_reopen = 1;
}

/* Seconds an orphaned worker may still spend on its request. */
static unsigned worker_orphan_grace = 10;
/* The signal mask while waiting in ppoll: everything open. */
static sigset_t worker_waitmask;
/* The signals kept blocked outside ppoll. */
static sigset_t worker_blocked;

/* The master died (PR_SET_PDEATHSIG). Stop like on SIGTERM; nobody is
 * left to enforce request_timeout, so alarm() bounds the current request
 * (SIGALRM's default action ends the process). Never blocked, and
 * SA_RESTART so the request in flight is not disturbed by EINTR. */
static void on_orphan(int sig)
{
    (void)sig;
    int saved = errno;
    worker_stop = 1;
    fcgi_shutdown_pending();
    alarm(worker_orphan_grace);
    errno = saved;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: ppoll must return on a stop */
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_orphan;
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_flags = 0;
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    /* Blocked except inside ppoll (see the top of the file). */
    sigemptyset(&worker_blocked);
    sigaddset(&worker_blocked, SIGTERM);
    sigaddset(&worker_blocked, SIGINT);
    sigaddset(&worker_blocked, SIGQUIT);
    sigaddset(&worker_blocked, SIGUSR1);
    sigprocmask(SIG_SETMASK, &worker_blocked, NULL);
    sigemptyset(&worker_waitmask);
}

/* ppoll runs a pending signal's handler only when it returns EINTR. When
 * the socket is readable at once (always, under load) it returns the
 * ready count and the signal stays pending behind the restored mask: a
 * worker told to stop would go on serving. Take such signals here. */
static void take_pending_signals(void)
{
    static const struct timespec zero = {0, 0};
    int sig;
    while ((sig = sigtimedwait(&worker_blocked, NULL, &zero)) > 0) {
        if (sig == SIGUSR1)
            on_usr1(sig);
        else
            on_stop(sig);
    }
}

/* Kinds of configuration-drift notes (rate-limited in the log). */
enum note_kind {
    NOTE_KEY_DRIFT,
    NOTE_BACKEND_MISMATCH,
    NOTE_NODE_DRIFT,
    NOTE_PARAMS_TIMEOUT,
    NOTE_KINDS
};

struct worker {
    const struct site *site;
    const struct config *cfg;
    struct stats_slot *slot;
    struct fcgi_conn *conn;
    struct mcclient *mc;
    struct request req;
    struct response resp;
    struct route_match match;
    struct store_job job;
    struct buf body;
    struct buf scratch;
    struct buf gz; /* the compressed value when cache.gzip_flag is set */
    struct stampede stampede; /* the stampede lock of the current request */
    struct log_limit notes[NOTE_KINDS]; /* rate limit of drift notes */
};

/* Total bytes of params, to enforce max_params. */
static size_t params_size(char **envp)
{
    size_t n = 0;
    for (char **e = envp; e && *e; e++)
        n += strlen(*e);
    return n;
}

static void note_uri(struct worker *w)
{
    struct buf *s = &w->scratch;
    buf_reset(s, 4096);
    log_escape(s, w->req.request_uri, strlen(w->req.request_uri), STATS_URI_MAX - 8);
    size_t n = s->len < STATS_URI_MAX - 1 ? s->len : STATS_URI_MAX - 1;
    memcpy(w->slot->uri, s->data, n);
    w->slot->uri[n] = '\0';
}

static void note_params_timeout(struct worker *w, const char *what);

/* Reads the request body into w->body, or answers 413/400. Returns 0 when
 * the request can go on. */
static int read_body(struct worker *w)
{
    const char *cl = request_param(&w->req, "CONTENT_LENGTH");
    uint64_t len = 0;
    if (!cl || !*cl)
        return 0;
    /* A GET or HEAD is answered as without its body: nginx passes
     * CONTENT_LENGTH even when its memcached module has discarded the body
     * and sends none. Nothing is read here; fcgi_finish drains whatever
     * comes (bounded). */
    if (w->req.method_bit & (CONFIG_METHOD_GET | CONFIG_METHOD_HEAD))
        return 0;
    if (util_parse_u64(cl, strlen(cl), UINT64_MAX, &len) < 0) {
        response_error(&w->resp, 400, "The request has a malformed Content-Length.");
        return -1;
    }
    if (len > w->cfg->max_body) {
        response_error(&w->resp, 413, "The request body is too large.");
        /* Drain a little so nginx reads our answer instead of a reset; a
         * huge body is simply cut off when the connection closes. */
        fcgi_drain_body(w->conn, 1u << 20);
        return -1;
    }
    int rc = len > 0 ? fcgi_read_body(w->conn, (size_t)len, &w->body) : 0;
    if (rc == -ETIMEDOUT) {
        /* The connection is shut down: this answer reaches nobody. */
        note_params_timeout(w, "its body");
        response_error(&w->resp, 400, "The request body did not arrive in time.");
        return -1;
    }
    if (rc < 0) {
        response_error(&w->resp, 400, "The request body ended early.");
        return -1;
    }
    w->req.body = w->body.data;
    w->req.body_len = w->body.len;
    return 0;
}

static void count(struct worker *w, enum stats_counter c)
{
    w->slot->counters[c]++;
}

/* Checks the current request and finds its route. Returns the route
 * index, or (size_t)-1 when the request is answered already (a bad
 * request, a PURGE, no route). */
static size_t route_request(struct worker *w)
{
    if (params_size(w->req.envp) > w->cfg->max_params) {
        response_error(&w->resp, 400, "The request headers are too large.");
        count(w, STATS_BAD_REQUEST);
        return (size_t)-1;
    }
    if (!w->req.path_ok) {
        response_error(&w->resp, 400, "The request target is malformed.");
        count(w, STATS_BAD_REQUEST);
        return (size_t)-1;
    }
    if (read_body(w) < 0) {
        count(w, STATS_BAD_REQUEST);
        return (size_t)-1;
    }
    if (strcmp(w->req.method, "PURGE") == 0) {
        admin_purge(w->site, w->mc, &w->req, &w->resp, w->slot);
        return (size_t)-1;
    }
    if (router_match(w->site->router, w->req.path.data, w->req.path.len, &w->match) < 0) {
        response_error(&w->resp, 404, "No route of this site serves this address.");
        return (size_t)-1;
    }
    return w->match.route;
}

/* Produces the response of the current request, routed to ri, whose
 * store location w->job.loc is known. */
static void produce(struct worker *w, size_t ri)
{
    const struct config_route *r = &w->cfg->routes[ri];
    if (!(w->req.method_bit & r->methods)) {
        response_error(&w->resp, 405, "This method is not allowed here.");
        return;
    }
    /* cache.lock_wait: wait for a page another worker is producing. */
    if (stampede_enter(&w->stampede, w->site, w->mc, &w->req, ri, &w->job.loc, &w->resp) ==
        STAMPEDE_SERVED)
        return;
    w->req.store_ruled_out = w->job.loc.early != OUTCOME_STORED;
    w->site->ops[ri]->handle(w->site->states[ri], &w->req, &w->match, &w->resp);
    if (r->content_type && w->resp.status == 200) {
        buf_reset(&w->resp.content_type, 1024);
        buf_append_str(&w->resp.content_type, r->content_type);
    }
    for (char **t = r->tags; t && *t; t++) {
        if (w->resp.tags.len)
            buf_append_char(&w->resp.tags, ' ');
        buf_append_str(&w->resp.tags, *t);
    }
}

/* Drift and mismatch notes are counted every time but logged at most once
 * per NOTE_INTERVAL_MS per kind and worker, with the number suppressed, so
 * a misconfigured nginx cannot flood the log. */
#define NOTE_INTERVAL_MS 10000

/* Returns 1 when a note of kind may be logged now. */
static int note_allowed(struct worker *w, enum note_kind kind)
{
    return log_limit_allow(&w->notes[kind]);
}

/* Logs the note in s, with how many were suppressed since the last one. */
static void log_note(struct worker *w, enum note_kind kind, struct buf *s)
{
    log_limit_write(&w->notes[kind], LOG_WARN, "%s", s->data);
    buf_reset(s, 4096);
}

/* A connection did not deliver what (its params, its body) within
 * params_timeout_ms and was closed: counted, and logged rate-limited. */
static void note_params_timeout(struct worker *w, const char *what)
{
    count(w, STATS_PARAMS_TIMEOUT);
    if (!note_allowed(w, NOTE_PARAMS_TIMEOUT))
        return;
    char peer[128];
    fcgi_peer(w->conn, peer, sizeof peer);
    struct buf *s = &w->scratch;
    buf_reset(s, 4096);
    buf_printf(s, "closed a FastCGI connection from %s: %s did not arrive within "
                  "params_timeout_ms (%u ms)", peer, what, w->cfg->params_timeout_ms);
    log_note(w, NOTE_PARAMS_TIMEOUT, s);
}

static void log_notes(struct worker *w)
{
    const struct request *req = &w->req;
    const struct store_location *j = &w->job.loc;
    if (!req->key_drift && !j->backend_mismatch && !j->node_drift)
        return;
    struct buf *s = &w->scratch;
    buf_reset(s, 4096);
    if (req->key_drift) {
        count(w, STATS_KEY_DRIFT);
        if (note_allowed(w, NOTE_KEY_DRIFT)) {
            buf_append_str(s, "key drift: nginx sent MEMC_KEY \"");
            log_escape(s, req->key, req->key_len, 200);
            buf_append_str(s, "\" but cache.key gives \"");
            log_escape(s, req->own_key.data ? req->own_key.data : "", req->own_key.len, 200);
            buf_append_str(s, "\"; the nginx config and memfill's disagree");
            log_note(w, NOTE_KEY_DRIFT, s);
        }
    }
    if (j->backend_mismatch) {
        count(w, STATS_BACKEND_MISMATCH);
        if (note_allowed(w, NOTE_BACKEND_MISMATCH)) {
            buf_append_str(s, "MEMC_BACKEND \"");
            log_escape(s, w->req.memc_backend, strlen(w->req.memc_backend), 200);
            buf_append_str(s, "\" names no configured memcached node; not connecting to "
                              "it, using the computed node");
            log_note(w, NOTE_BACKEND_MISMATCH, s);
        }
    }
    if (j->node_drift) {
        count(w, STATS_NODE_DRIFT);
        if (note_allowed(w, NOTE_NODE_DRIFT)) {
            buf_append_str(s, "node drift: nginx read key \"");
            log_escape(s, j->esc_key.data, j->esc_key.len, 200);
            buf_printf(s, "\" from %s, memfill computes %s; writing where nginx reads",
                       mcclient_node_address(w->mc, (size_t)j->node),
                       nodesel_server(w->site->nodes, (size_t)j->computed_node)->address);
            log_note(w, NOTE_NODE_DRIFT, s);
        }
    }
}

static void serve_one(struct worker *w, char **envp)
{
    uint64_t t0 = util_now_ms();
    w->slot->started_ms = t0;
    w->slot->state = STATS_STATE_BUSY;
    count(w, STATS_REQUESTS);
    request_init(&w->req, envp);
    note_uri(w);
    /* The key is evaluated, and the page located, once per request: the
     * stampede lock, the relay, PURGE, the store and the notes share them. */
    request_key(&w->req, w->site->key);
    size_t route = route_request(w);
    store_locate(w->site, &w->req, route, &w->job.loc);
    if (route != (size_t)-1)
        produce(w, route);
    if (w->resp.limit == RESPONSE_LIMIT_RENDER)
        count(w, STATS_RENDER_TOO_LARGE);
    else if (w->resp.limit == RESPONSE_LIMIT_DATA)
        count(w, STATS_DATA_TOO_LARGE);
    store_prepare(w->site, &w->req, route, &w->resp, &w->job);
    stampede_settle(&w->stampede, &w->job);
    /* A warm-up (memfillctl warm; nginx never sends MEMFILL_WARM) stores
     * BEFORE answering and says how it went: nobody waits on it. */
    int warm = w->req.warm;
    uint64_t usec = 0;
    enum store_outcome outcome = OUTCOME_N;
    if (warm) {
        outcome =
            store_execute(w->mc, &w->job, w->resp.body.data, w->resp.body.len, &w->gz, &usec);
        const char *said = store_outcome_name(outcome);
        response_add_header(&w->resp, "X-Memfill-Store", said, strlen(said));
    }
    int head_only = strcmp(w->req.method, "HEAD") == 0;
    int sent = fcgi_write_response(w->conn, &w->resp, head_only);
    /* The drift notes use the scratch buffer too: log them first. */
    log_notes(w);
    /* Copy what the access log needs before the params go away. */
    struct buf *s = &w->scratch;
    buf_reset(s, 4096);
    if (w->cfg->access_log) {
        log_escape(s, w->req.method, strlen(w->req.method), 16);
        buf_append_char(s, ' ');
        log_escape(s, w->req.request_uri, strlen(w->req.request_uri), 512);
    }
    fcgi_finish(w->conn);

    w->slot->state = STATS_STATE_STORING;
    if (!warm)
        outcome =
            store_execute(w->mc, &w->job, w->resp.body.data, w->resp.body.len, &w->gz, &usec);
    stampede_leave(&w->stampede, w->mc, outcome);
    count(w, stats_outcome_counter(outcome));
    const struct store_location *loc = &w->job.loc;
    if (outcome == OUTCOME_STORED && w->resp.tags.len &&
        purge_index_tags(w->mc, (size_t)loc->node, loc->esc_key.data, loc->esc_key.len,
                         w->resp.tags.data, w->resp.tags.len, w->job.ttl) > 0)
        count(w, STATS_TAG_INDEX_FAILED);
    if (w->job.decision == OUTCOME_STORED && loc->node >= 0 && loc->node < STATS_MAX_NODES) {
        if (outcome == OUTCOME_STORED)
            w->slot->node_ok[loc->node]++;
        else if (outcome != OUTCOME_SKIP_SIZE)
            w->slot->node_fail[loc->node]++;
        w->slot->node_usec[loc->node] += usec;
    }
    if (store_outcome_failed(outcome))
        log_warn("store failed on %s: %s", mcclient_node_address(w->mc, (size_t)loc->node),
                 store_outcome_name(outcome));
    if (w->cfg->access_log) {
        log_access("%s %d %zu %llums %s%s", s->data, w->resp.status, w->resp.body.len,
                   (unsigned long long)(util_now_ms() - t0), store_outcome_name(outcome),
                   sent < 0 ? " (client gone)" : "");
    }
    request_fini(&w->req);
    response_reset(&w->resp, 1 << 20);
    buf_reset(&w->body, 1 << 20);
    store_job_fini(&w->job);
    store_job_init(&w->job);
    w->slot->state = STATS_STATE_IDLE;
}

void worker_run(const struct site *site, int listen_fd, struct stats *st, size_t slot_index,
                unsigned max_requests, pid_t master_pid)
{
    worker_orphan_grace = site->cfg->shutdown_timeout ? site->cfg->shutdown_timeout : 1;
    install_signals();
#ifdef HAVE_SYS_PRCTL_H
    prctl(PR_SET_PDEATHSIG, SIGUSR2);
#endif
    if (getppid() != master_pid)
        _exit(0);
    log_set_role('W');

    struct worker w;
    memset(&w, 0, sizeof w);
    w.site = site;
    w.cfg = site->cfg;
    for (int k = 0; k < NOTE_KINDS; k++)
        w.notes[k].interval_ms = NOTE_INTERVAL_MS;
    w.slot = stats_slot(st, slot_index);
    w.slot->pid = getpid();
    w.slot->born_ms = util_now_ms();
    w.slot->state = STATS_STATE_STARTING;
    w.conn = fcgi_conn_new(listen_fd, w.cfg->params_timeout_ms);
    if (!w.conn) {
        log_perr(LOG_ERROR, "cannot initialise libfcgi and the params deadline");
        _exit(70);
    }
    w.mc = mcclient_new(w.cfg);
    response_init(&w.resp);
    route_match_init(&w.match);
    store_job_init(&w.job);
    stampede_init(&w.stampede);

    unsigned served = 0;
    while (!worker_stop) {
        if (worker_reopen) {
            worker_reopen = 0;
            if (log_reopen() < 0)
                log_perr(LOG_ERROR, "cannot reopen the log");
        }
        if (getppid() != master_pid)
            break; /* orphaned without the death signal (it raced the fork) */
        w.slot->state = STATS_STATE_IDLE;
        /* A kept connection must bring its next request within the params
         * deadline too, or it goes and the worker serves the listener. */
        int kept = fcgi_kept(w.conn);
        struct timespec idle = {w.cfg->params_timeout_ms / 1000,
                                (long)(w.cfg->params_timeout_ms % 1000) * 1000000L};
        struct pollfd pfd = {fcgi_wait_fd(w.conn), POLLIN, 0};
        int ready = ppoll(&pfd, 1, kept ? &idle : NULL, &worker_waitmask);
        if (ready < 0) {
            if (errno == EINTR)
                continue; /* a signal: look at the flags */
            log_perr(LOG_ERROR, "poll on the listening socket failed; worker exits");
            break;
        }
        take_pending_signals();
        if (worker_stop)
            break;
        if (ready == 0) {
            log_debug("closed a kept FastCGI connection idle for %u ms",
                      w.cfg->params_timeout_ms);
            fcgi_close_kept(w.conn);
            continue;
        }
        /* libfcgi now reads the params, blocking and with the stop signals
         * blocked, within params_timeout_ms (fcgi.c's deadline). Counted as
         * a request (empty URI) meanwhile; request_timeout remains the
         * backstop. */
        w.slot->uri[0] = '\0';
        w.slot->started_ms = util_now_ms();
        w.slot->state = STATS_STATE_BUSY;
        char **envp = NULL;
        int rc = fcgi_accept(w.conn, &envp);
        if (rc == -ETIMEDOUT) {
            note_params_timeout(&w, "a complete request");
            continue;
        }
        if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR)
            continue; /* another worker took it, or it ended early */
        if (rc < 0) {
            if (!worker_stop)
                log_error("accept failed (%d); worker exits", rc);
            break;
        }
        serve_one(&w, envp);
        if (max_requests && ++served >= max_requests) {
            log_info("recycling after %u requests", served);
            break;
        }
    }
    w.slot->state = STATS_STATE_EXITING;
    store_job_fini(&w.job);
    stampede_fini(&w.stampede);
    route_match_fini(&w.match);
    response_fini(&w.resp);
    buf_fini(&w.body);
    buf_fini(&w.scratch);
    buf_fini(&w.gz);
    mcclient_free(w.mc);
    fcgi_conn_free(w.conn);
    _exit(0);
}
