/* status.c - the status documents: JSON for people and tools, Prometheus
 * text for scrapers. Both read the shared scoreboard, which workers update
 * without locks; a value may be one request behind, never torn in a way
 * that matters for monitoring (64-bit counters on a 64-bit machine). */
#include "config.h"

#include "memfill/status.h"
#include "memfill/log.h"
#include "memfill/util.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

unsigned status_count_state(struct stats *st, int state)
{
    unsigned n = 0;
    for (size_t i = 0; i < stats_nslots(st); i++) {
        struct stats_slot *s = stats_slot(st, i);
        if (s->pid && s->state == state)
            n++;
    }
    return n;
}

long status_listen_queue(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int type = 0;
    socklen_t tl = sizeof type;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return -1;
    /* On a listening TCP socket Linux reports the accept queue length in
     * tcpi_unacked. */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -1;
    return (long)ti.tcpi_unacked;
}

static void json_str(struct buf *out, const char *s)
{
    buf_append_char(out, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_printf(out, "\\%c", c);
        else if (c < 0x20)
            buf_printf(out, "\\u%04x", c);
        else
            buf_append_char(out, (char)c);
    }
    buf_append_char(out, '"');
}

void status_render_json(struct stats *st, const struct status_info *info, struct buf *out)
{
    struct stats_master *m = stats_master(st);
    uint64_t now_ms = util_now_ms();
    unsigned busy = status_count_state(st, STATS_STATE_BUSY) +
                    status_count_state(st, STATS_STATE_STORING);
    unsigned idle = status_count_state(st, STATS_STATE_IDLE);
    buf_printf(out,
               "{\"version\":\"%s\",\"master_pid\":%ld,\"uptime_s\":%llu,\"generation\":%u,"
               "\"workers_configured\":%u,\"accepted\":%llu,\"active\":%u,\"idle\":%u,"
               "\"listen_queue\":%ld,\"max_active_reached\":%lu,\"restarts\":%llu,"
               "\"abnormal_exits\":%llu,\"timeouts_killed\":%llu,\"reloads\":%llu,"
               "\"admin_open\":%llu,\"admin_refused\":%llu,\"admin_timeouts\":%llu,"
               "\"admin_overflow\":%llu,",
               PACKAGE_VERSION, (long)info->master_pid,
               (unsigned long long)((uint64_t)time(NULL) - m->started_unix), info->generation,
               info->cfg->workers, (unsigned long long)stats_total(st, STATS_REQUESTS), busy,
               idle, status_listen_queue(info->listen_fd), info->max_active_reached,
               (unsigned long long)m->restarts, (unsigned long long)m->abnormal_exits,
               (unsigned long long)m->timeouts_killed, (unsigned long long)m->reloads,
               (unsigned long long)m->admin_open, (unsigned long long)m->admin_refused,
               (unsigned long long)m->admin_timeouts, (unsigned long long)m->admin_overflow);
    buf_append_str(out, "\"counters\":{");
    for (size_t i = 0; i < STATS_N; i++) {
        enum stats_counter c = stats_counter_listed(i);
        buf_printf(out, "%s\"%s\":%llu", i ? "," : "", stats_counter_name(c),
                   (unsigned long long)stats_total(st, c));
    }
    buf_append_str(out, "},\"workers\":[");
    int first = 1;
    for (size_t i = 0; i < stats_nslots(st); i++) {
        struct stats_slot *s = stats_slot(st, i);
        if (!s->pid)
            continue;
        int busy_now = s->state == STATS_STATE_BUSY || s->state == STATS_STATE_STORING;
        char uri[STATS_URI_MAX];
        memcpy(uri, s->uri, sizeof uri);
        uri[sizeof uri - 1] = '\0';
        buf_printf(out, "%s{\"pid\":%ld,\"state\":\"%s\",\"requests\":%llu,\"uri\":",
                   first ? "" : ",", (long)s->pid, stats_state_name(s->state),
                   (unsigned long long)s->counters[STATS_REQUESTS]);
        json_str(out, busy_now ? uri : "");
        buf_printf(out, ",\"request_ms\":%llu,\"age_s\":%llu}",
                   (unsigned long long)(busy_now && s->started_ms ? now_ms - s->started_ms : 0),
                   (unsigned long long)(s->born_ms ? (now_ms - s->born_ms) / 1000 : 0));
        first = 0;
    }
    buf_append_str(out, "],\"nodes\":[");
    for (size_t n = 0; n < info->cfg->nservers && n < STATS_MAX_NODES; n++) {
        uint64_t ok = 0, fail = 0, usec = 0;
        for (size_t i = 0; i < stats_nslots(st); i++) {
            struct stats_slot *s = stats_slot(st, i);
            ok += s->node_ok[n];
            fail += s->node_fail[n];
            usec += s->node_usec[n];
        }
        buf_printf(out, "%s{\"address\":", n ? "," : "");
        json_str(out, info->cfg->servers[n].address);
        buf_printf(out, ",\"stores_ok\":%llu,\"stores_failed\":%llu,\"avg_store_us\":%llu}",
                   (unsigned long long)ok, (unsigned long long)fail,
                   (unsigned long long)(ok + fail ? usec / (ok + fail) : 0));
    }
    buf_append_str(out, "]}\n");
}

void status_render_prometheus(struct stats *st, const struct status_info *info,
                              struct buf *out)
{
    struct stats_master *m = stats_master(st);
    buf_append_str(out, "# HELP memfill_events_total Requests, stores and the reasons pages "
                        "were not stored.\n# TYPE memfill_events_total counter\n");
    for (size_t i = 0; i < STATS_N; i++) {
        enum stats_counter c = stats_counter_listed(i);
        buf_printf(out, "memfill_events_total{event=\"%s\"} %llu\n", stats_counter_name(c),
                   (unsigned long long)stats_total(st, c));
    }
    buf_append_str(out, "# HELP memfill_workers Workers by state.\n# TYPE memfill_workers gauge\n");
    static const int states[] = {STATS_STATE_IDLE, STATS_STATE_BUSY, STATS_STATE_STORING,
                                 STATS_STATE_STARTING, STATS_STATE_EXITING};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        buf_printf(out, "memfill_workers{state=\"%s\"} %u\n", stats_state_name(states[i]),
                   status_count_state(st, states[i]));
    buf_printf(out,
               "# TYPE memfill_workers_configured gauge\nmemfill_workers_configured %u\n"
               "# TYPE memfill_listen_queue gauge\nmemfill_listen_queue %ld\n"
               "# TYPE memfill_max_active_reached_total counter\n"
               "memfill_max_active_reached_total %lu\n"
               "# TYPE memfill_worker_restarts_total counter\nmemfill_worker_restarts_total %llu\n"
               "# TYPE memfill_worker_abnormal_exits_total counter\n"
               "memfill_worker_abnormal_exits_total %llu\n"
               "# TYPE memfill_worker_timeouts_killed_total counter\n"
               "memfill_worker_timeouts_killed_total %llu\n"
               "# TYPE memfill_reloads_total counter\nmemfill_reloads_total %llu\n",
               info->cfg->workers, status_listen_queue(info->listen_fd),
               info->max_active_reached, (unsigned long long)m->restarts,
               (unsigned long long)m->abnormal_exits, (unsigned long long)m->timeouts_killed,
               (unsigned long long)m->reloads);
    buf_printf(out,
               "# HELP memfill_admin_connections_total Admin listener connections or requests "
               "refused (outside admin.allow, bad token), closed at the deadline, or closed "
               "over the cap.\n# TYPE memfill_admin_connections_total counter\n"
               "memfill_admin_connections_total{outcome=\"refused\"} %llu\n"
               "memfill_admin_connections_total{outcome=\"timeout\"} %llu\n"
               "memfill_admin_connections_total{outcome=\"overflow\"} %llu\n"
               "# TYPE memfill_admin_connections_open gauge\n"
               "memfill_admin_connections_open %llu\n",
               (unsigned long long)m->admin_refused, (unsigned long long)m->admin_timeouts,
               (unsigned long long)m->admin_overflow, (unsigned long long)m->admin_open);
    buf_append_str(out, "# HELP memfill_node_stores_total Stores per memcached node.\n"
                        "# TYPE memfill_node_stores_total counter\n");
    for (size_t n = 0; n < info->cfg->nservers && n < STATS_MAX_NODES; n++) {
        uint64_t ok = 0, fail = 0;
        for (size_t i = 0; i < stats_nslots(st); i++) {
            ok += stats_slot(st, i)->node_ok[n];
            fail += stats_slot(st, i)->node_fail[n];
        }
        buf_printf(out, "memfill_node_stores_total{node=\"%s\",result=\"ok\"} %llu\n",
                   info->cfg->servers[n].address, (unsigned long long)ok);
        buf_printf(out, "memfill_node_stores_total{node=\"%s\",result=\"failed\"} %llu\n",
                   info->cfg->servers[n].address, (unsigned long long)fail);
    }
}
