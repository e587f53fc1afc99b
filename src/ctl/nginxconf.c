/* nginxconf.c - the nginx config generated from memfill's config.
 *
 * What it encodes (doc/nginx.md §0, §8, §9, §16): the memcached servers with
 * the exact address texts and weights memfill hashes, max_fails=0 so one
 * bad reply does not reroute a node's keys for 10 s, upstream keepalive for
 * the hit path, the same key expression in $memcached_key and the hash,
 * error_page 404 502 504 (and 405, since memcached_pass refuses methods
 * other than GET and HEAD) to memfill, MEMC_KEY / MEMC_BACKEND /
 * MEMC_STATUS so memfill writes where nginx reads, and MEMFILL_HOST
 * ($host) so a relayed Host is the one nginx keyed on. */
#include "config.h"

#include "memfill/nginxconf.h"
#include "memfill/util.h"

#include <string.h>

/* nginx string literal: the key pattern is used inside "..." */
static void quoted(struct buf *out, const char *s)
{
    buf_append_char(out, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_append_char(out, '\\');
        buf_append_char(out, *s);
    }
    buf_append_char(out, '"');
}

static void fastcgi_params(struct buf *out, const char *backend_var)
{
    static const char *const params[][2] = {
        {"QUERY_STRING", "$query_string"},     {"REQUEST_METHOD", "$request_method"},
        {"CONTENT_TYPE", "$content_type"},     {"CONTENT_LENGTH", "$content_length"},
        {"SCRIPT_NAME", "$fastcgi_script_name"}, {"REQUEST_URI", "$request_uri"},
        {"DOCUMENT_URI", "$document_uri"},     {"DOCUMENT_ROOT", "$document_root"},
        {"SERVER_PROTOCOL", "$server_protocol"}, {"REQUEST_SCHEME", "$scheme"},
        {"HTTPS", "$https if_not_empty"},      {"GATEWAY_INTERFACE", "CGI/1.1"},
        {"REMOTE_ADDR", "$remote_addr"},       {"REMOTE_PORT", "$remote_port"},
        {"SERVER_ADDR", "$server_addr"},       {"SERVER_PORT", "$server_port"},
        {"SERVER_NAME", "$server_name"},
    };
    for (size_t i = 0; i < sizeof params / sizeof *params; i++)
        buf_printf(out, "        fastcgi_param %-17s %s;\n", params[i][0], params[i][1]);
    buf_append_str(out, "        fastcgi_param MEMC_KEY          $memcached_key;\n");
    buf_printf(out, "        fastcgi_param MEMC_BACKEND      %s;\n", backend_var);
    buf_append_str(out, "        fastcgi_param MEMC_STATUS       $upstream_status;\n");
    /* nginx's own $host: for "GET http://a/ HTTP/1.1" with "Host: b" it is
     * "a", which no param carries otherwise (doc/security.md) */
    buf_append_str(out, "        fastcgi_param MEMFILL_HOST      $host;\n");
}

static void skip_cookie_rules(const struct config *cfg, struct buf *out)
{
    for (char **c = cfg->skip_cookies; c && *c; c++) {
        int plain = 1;
        for (const char *p = *c; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_'))
                plain = 0;
        if (plain)
            buf_printf(out, "        if ($cookie_%s) { return 418; }  # session: skip the cache\n",
                       *c);
        else
            buf_printf(out, "        # cookie \"%s\" cannot be tested with $cookie_NAME\n", *c);
    }
}

/* Routes with "srcache": true hold items srcache_fetch reads, which
 * memcached_pass cannot serve: print, as a comment, the locations that
 * read them (verified in tests/integration/test_srcache.py). The upstream
 * must hash $memc_key, the raw key the /memc subrequest sees; a
 * $memcached_key set in the main request is not visible there. */
static void srcache_note(const struct config *cfg, struct buf *out)
{
    int any = 0;
    for (size_t i = 0; i < cfg->nroutes; i++)
        any |= cfg->routes[i].srcache;
    if (!any)
        return;
    int list = cfg->distribution == NODESEL_UPSTREAM_LIST;
    buf_append_str(out, "\n    # Routes with \"srcache\": true store whole responses for srcache_fetch\n"
                        "    # (nginx modules srcache, memc, set-misc), which memcached_pass cannot\n"
                        "    # serve. Read them with locations like these:\n");
    if (!list) {
        buf_printf(out, "    #   upstream memfill_srcache {   (at http level)\n"
                        "    #       hash $memc_key%s;   (the RAW key, as memfill hashes it)\n",
                   cfg->distribution == NODESEL_CONSISTENT ? " consistent" : "");
        for (size_t i = 0; i < cfg->nservers; i++) {
            buf_printf(out, "    #       server %s", cfg->servers[i].address);
            if (cfg->servers[i].weight > 1)
                buf_printf(out, " weight=%u", cfg->servers[i].weight);
            buf_append_str(out, " max_fails=0;\n");
        }
        buf_append_str(out, "    #   }\n");
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (!r->srcache)
            continue;
        if (r->prefix)
            buf_printf(out, "    #   location %s {\n", r->prefix);
        else
            buf_printf(out, "    #   location ~ %s {\n", r->regex);
        buf_append_str(out, "    #       set $memcached_key ");
        quoted(out, cfg->key);
        buf_append_str(out, ";\n"
                            "    #       set_escape_uri $escaped_key $memcached_key;\n"
                            "    #       srcache_fetch GET /memc key=$escaped_key;\n"
                            "    #       default_type text/html;\n"
                            "    #       (the fastcgi_param lines of @memfill above, without "
                            "MEMC_BACKEND/MEMC_STATUS)\n"
                            "    #       fastcgi_pass memfill_app;\n"
                            "    #   }\n");
    }
    buf_append_str(out, "    #   location = /memc {\n"
                        "    #       internal;\n"
                        "    #       set_unescape_uri $memc_key $arg_key;\n");
    if (list)
        buf_printf(out, "    #       set_hashed_upstream $memfill_backend %s $memc_key;\n"
                        "    #       memc_pass $memfill_backend;\n",
                   cfg->upstream_name);
    else
        buf_append_str(out, "    #       memc_pass memfill_srcache;\n");
    buf_append_str(out, "    #   }\n");
}

int nginxconf_render(const struct config *cfg, const struct nginxconf_opts *opts,
                     struct buf *out)
{
    const char *fastcgi = opts->fastcgi ? opts->fastcgi : cfg->listen;
    if (!fastcgi)
        return -1;
    const char *up = cfg->upstream_name;
    /* Idle memcached connections kept per nginx worker: the hit path needs
     * about as many as there are concurrent clients (a smaller pool opens a
     * connection per hit beyond it). memcached's own limit (-c, 1024 by
     * default) must cover nginx workers x this pool. */
    unsigned ka = opts->keepalive ? opts->keepalive : NGINXCONF_KEEPALIVE_DEFAULT;
    int list = cfg->distribution == NODESEL_UPSTREAM_LIST;

    buf_printf(out, "# Generated by memfillctl nginx-conf from %s.\n", cfg->path);
    buf_append_str(out, "# Include inside http { }. Regenerate it whenever memfill's config "
                        "changes.\n\n");
    if (list) {
        for (size_t i = 0; i < cfg->nservers; i++)
            buf_printf(out, "upstream %s {\n    server %s max_fails=0;\n    keepalive %u;\n}\n\n",
                       cfg->servers[i].name, cfg->servers[i].address, ka);
        buf_printf(out, "upstream_list %s", up);
        for (size_t i = 0; i < cfg->nservers; i++) {
            if (cfg->servers[i].weight > 1)
                buf_printf(out, " %u:%s", cfg->servers[i].weight, cfg->servers[i].name);
            else
                buf_printf(out, " %s", cfg->servers[i].name);
        }
        buf_append_str(out, ";\n\n");
    } else {
        buf_printf(out, "upstream %s {\n", up);
        if (cfg->nservers > 1)
            buf_printf(out, "    hash $memcached_key%s;\n",
                       cfg->distribution == NODESEL_CONSISTENT ? " consistent" : "");
        for (size_t i = 0; i < cfg->nservers; i++) {
            buf_printf(out, "    server %s", cfg->servers[i].address);
            if (cfg->servers[i].weight > 1)
                buf_printf(out, " weight=%u", cfg->servers[i].weight);
            buf_append_str(out, " max_fails=0;\n");
        }
        buf_printf(out, "    keepalive %u;\n}\n\n", ka);
    }
    buf_printf(out, "upstream memfill_app {\n    server %s;\n}\n\n", fastcgi);

    buf_printf(out, "server {\n    listen %s;\n    server_name %s;\n\n", opts->listen,
               opts->server_name);
    buf_append_str(out, "    location / {\n        set $memcached_key ");
    quoted(out, cfg->key);
    buf_append_str(out, ";\n");
    skip_cookie_rules(cfg, out);
    buf_append_str(out, "        default_type text/html;\n");
    if (cfg->gzip_flag) {
        buf_printf(out, "        memcached_gzip_flag %u;\n", (unsigned)cfg->gzip_flag);
        buf_append_str(out, "        gunzip on;\n");
        /* the hit's encoding depends on Accept-Encoding: tell caches */
        buf_append_str(out, "        gzip_vary on;\n");
    }
    if (list) {
        buf_printf(out,
                   "        set_hashed_upstream $memfill_backend %s $memcached_key;\n"
                   "        set $memc_key $memcached_key;\n"
                   "        set $memc_cmd get;\n"
                   "        memc_pass $memfill_backend;\n",
                   up);
    } else {
        buf_printf(out, "        memcached_pass %s;\n", up);
    }
    /* nginx's defaults are 60 s: a frozen node would hold every request for
     * its keys that long. Use memfill's own memcached timeouts instead. */
    const char *mod = list ? "memc" : "memcached";
    buf_printf(out,
               "        %s_connect_timeout %ums;\n        %s_send_timeout %ums;\n"
               "        %s_read_timeout %ums;\n",
               mod, cfg->mc_connect_timeout_ms, mod, cfg->mc_timeout_ms, mod, cfg->mc_timeout_ms);
    buf_append_str(out, "        error_page 404 405 418 502 504 = @memfill;\n    }\n\n");
    buf_append_str(out, "    location @memfill {\n");
    fastcgi_params(out, list ? "$memfill_backend" : "$upstream_addr");
    buf_append_str(out, "        fastcgi_pass memfill_app;\n    }\n");
    srcache_note(cfg, out);
    buf_append_str(out, "}\n");
    return 0;
}
