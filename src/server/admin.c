/* admin.c - the PURGE endpoint.
 *
 * Security: purge is off until admin.token is set, and then needs both the
 * token (X-Memfill-Token) and a client address inside admin.allow (default
 * loopback). nginx passes the client address as REMOTE_ADDR; the generated
 * nginx config routes PURGE to memfill, and anything else gets 403 and a
 * log line with the (escaped) address and target, at most one every
 * REFUSAL_LOG_MS per worker (the rest counted in the next line). The purge
 * only ever talks to the configured nodes. */
#include "config.h"

#include "memfill/admin.h"
#include "memfill/adminguard.h"
#include "memfill/log.h"
#include "memfill/purge.h"
#include "memfill/purgematch.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void answer(struct response *resp, int status, const char *json);

/* X-Memfill-Purge-Prefix / -Regex: a scan of every node's keys
 * (doc/purge-prefix.md). Each header must come once, and not
 * both. Returns 1 when the request was one of these (answered), else 0. */
static int purge_by_match(const struct site *site, struct mcclient *mc,
                          const struct request *req, struct response *resp,
                          struct stats_slot *slot)
{
    int np = request_param_all(req, "HTTP_X_MEMFILL_PURGE_PREFIX", NULL, NULL);
    int nr = request_param_all(req, "HTTP_X_MEMFILL_PURGE_REGEX", NULL, NULL);
    if (!np && !nr)
        return 0;
    if (np + nr > 1) {
        answer(resp, 400, "{\"error\":\"send one X-Memfill-Purge-Prefix or one "
                          "X-Memfill-Purge-Regex\"}");
        return 1;
    }
    const char *pattern = request_param(req, np ? "HTTP_X_MEMFILL_PURGE_PREFIX"
                                                : "HTTP_X_MEMFILL_PURGE_REGEX");
    struct err e;
    err_clear(&e);
    struct purgematch *m = purgematch_new(np ? PURGEMATCH_PREFIX : PURGEMATCH_REGEX, pattern,
                                          strlen(pattern), 0, &e);
    struct buf out = BUF_INIT;
    if (!m) {
        json_t *o = json_pack("{s:s}", "error", e.text); /* texts are ASCII */
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        answer(resp, 400, text ? text : "{\"error\":\"bad pattern\"}");
        free(text);
        json_decref(o);
        buf_fini(&out);
        return 1;
    }
    struct purgematch_report r;
    int complete = purgematch_run(mc, m, &r);
    slot->counters[STATS_PURGED] += r.purged;
    purgematch_report_json(&r, &out);
    answer(resp, complete ? 200 : 502, out.data);
    buf_fini(&out);
    purgematch_report_fini(&r);
    purgematch_free(m);
    return 1;
}

static void answer(struct response *resp, int status, const char *json)
{
    resp->status = status;
    resp->no_store = 1;
    buf_reset(&resp->content_type, 256);
    buf_append_str(&resp->content_type, "application/json");
    buf_reset(&resp->body, 1 << 16);
    buf_append_str(&resp->body, json);
    buf_append_char(&resp->body, '\n');
}

/* Refused PURGEs are logged at most once per REFUSAL_LOG_MS per worker,
 * with the number left out: anyone who can reach nginx can send them. */
#define REFUSAL_LOG_MS 10000

void admin_purge(const struct site *site, struct mcclient *mc, const struct request *req,
                 struct response *resp, struct stats_slot *slot)
{
    const char *addr = request_param(req, "REMOTE_ADDR");
    /* A token sent twice is refused: which copy a proxy in front checked
     * is unknowable (doc/security.md, "Headers with several instances"). */
    const char *token = request_param_all(req, "HTTP_X_MEMFILL_TOKEN", NULL, NULL) == 1
                            ? request_param(req, "HTTP_X_MEMFILL_TOKEN")
                            : NULL;
    if (!admin_allowed(site->cfg, addr, token)) {
        static struct log_limit refusals = LOG_LIMIT_INIT(REFUSAL_LOG_MS);
        if (log_limit_allow(&refusals)) {
            struct buf esc = BUF_INIT, eaddr = BUF_INIT;
            log_escape(&esc, req->request_uri, strlen(req->request_uri), 200);
            log_escape(&eaddr, addr ? addr : "?", addr ? strlen(addr) : 1, 64);
            log_limit_write(&refusals, LOG_WARN, "PURGE refused for %s from %s: %s", esc.data,
                            eaddr.data,
                            site->cfg->admin_token ? "bad token or address not allowed"
                                                   : "admin.token is not set");
            buf_fini(&esc);
            buf_fini(&eaddr);
        }
        answer(resp, 403, "{\"error\":\"forbidden\"}");
        return;
    }
    if (purge_by_match(site, mc, req, resp, slot))
        return;
    struct buf out = BUF_INIT, tagbuf = BUF_INIT;
    /* Every instance of the tag header counts (tags are comma or space
     * separated, so joining loses nothing); two purge keys are ambiguous. */
    const char *tags = request_header_joined(req, "HTTP_X_MEMFILL_PURGE_TAG", &tagbuf)
                           ? tagbuf.data
                           : NULL;
    const char *key = request_param(req, "HTTP_X_MEMFILL_PURGE_KEY");
    if (request_param_all(req, "HTTP_X_MEMFILL_PURGE_KEY", NULL, NULL) > 1) {
        answer(resp, 400, "{\"error\":\"X-Memfill-Purge-Key sent more than once\"}");
        buf_fini(&tagbuf);
        return;
    }
    if (tags) {
        /* One report for all the tags: complete only when every node was
         * purged and no tag entry can have been evicted (purge.h). */
        struct purge_report rep;
        purge_report_init(&rep, nodesel_count(site->nodes));
        int bad = 0;
        const char *p = tags;
        while (*p) {
            while (*p == ' ' || *p == ',')
                p++;
            size_t n = strcspn(p, " ,");
            if (n == 0)
                break;
            if (purge_tag(mc, p, n, &rep) < 0)
                bad = 1;
            p += n;
        }
        slot->counters[STATS_PURGED] += (uint64_t)rep.purged;
        int complete = purge_report_complete(&rep);
        buf_printf(&out, "{\"purged\":%ld,\"entries\":%ld,\"complete\":%s", rep.purged,
                   rep.entries, complete ? "true" : "false");
        if (rep.nfailed) {
            buf_append_str(&out, ",\"failed_nodes\":[");
            for (size_t i = 0, k = 0; i < rep.nnodes; i++)
                if (rep.failed[i])
                    buf_printf(&out, "%s\"%s\"", k++ ? "," : "", mcclient_node_address(mc, i));
            buf_append_char(&out, ']');
        }
        if (rep.evicted)
            buf_printf(&out, ",\"evicted\":%lu", rep.evicted);
        if (!complete) {
            struct buf why = BUF_INIT;
            purge_report_why(&rep, mc, &why);
            buf_printf(&out, ",\"error\":\"may be incomplete: %s\"", why.data);
            buf_fini(&why);
        } else if (bad) {
            buf_append_str(&out, ",\"error\":\"invalid tag skipped\"");
        }
        buf_append_char(&out, '}');
        answer(resp, !complete ? 502 : bad && !rep.purged ? 400 : 200, out.data);
        purge_report_fini(&rep);
        buf_fini(&out);
        buf_fini(&tagbuf);
        return;
    }
    /* the request's own key: request_key() evaluated it for the worker */
    int rc = key ? purge_key(mc, site->nodes, key, strlen(key))
                 : purge_key(mc, site->nodes, req->key, req->key_len);
    if (rc > 0)
        slot->counters[STATS_PURGED]++;
    answer(resp, rc > 0 ? 200 : rc == 0 ? 404 : 502,
           rc > 0 ? "{\"purged\":1}" : rc == 0 ? "{\"purged\":0}"
                                             : "{\"purged\":0,\"error\":\"memcached failed or "
                                               "the key cannot exist\"}");
}
