/* memfillctl.c - the operator's tool. Subcommands share memfill's config:
 *
 *   where [--hex] KEY... | -      which node holds this page (NODE<TAB>ESCAPED_KEY)
 *   nginx-conf [--listen L] [--server-name N] [--fastcgi ADDR] [--keepalive N]
 *   render TEMPLATE [DATA.json] [--partials DIR]
 *   warm [options] (URL... | --from FILE | --sitemap FILE)   (warm.h)
 *
 * The config is -c FILE, else $MEMFILL_CONFIG, else SYSCONFDIR/memfill.json.
 * A config holding only the memcached section is enough for where and
 * nginx-conf. Exit codes: 0 ok, 1 some key cannot be read by nginx (where),
 * 64 usage, 78 config. */
#include "config.h"

#include "memfill/adminclient.h"
#include "memfill/conf.h"
#include "memfill/discovery.h"
#include "memfill/keyesc.h"
#include "memfill/keyloc.h"
#include "memfill/keypattern.h"
#include "memfill/log.h"
#include "memfill/nginxconf.h"
#include "memfill/purge.h"
#include "memfill/purgematch.h"
#include "memfill/request.h"
#include "memfill/site.h"
#include "memfill/template.h"
#include "memfill/util.h"
#include "memfill/warm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static const char *config_path;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memfillctl [-c FILE] COMMAND [ARGS]\n"
            "commands:\n"
            "  where [--hex] KEY... | -         node and escaped key nginx uses for each key\n"
            "  nginx-conf [--listen ADDR] [--server-name NAME] [--fastcgi ADDR]\n"
            "             [--keepalive N]       (N: idle memcached connections per nginx worker)\n"
            "                                   print the nginx config matching memfill's\n"
            "  render TEMPLATE [DATA.json] [--partials DIR]\n"
            "                                   render a template offline to stdout\n"
            "  purge URI... | --key KEY... | --tag TAG...\n"
            "                                   delete pages on the nodes nginx reads\n"
            "  purge (--prefix PREFIX | --regex RE) [--include-bookkeeping]\n"
            "                                   delete every page whose raw key matches, on\n"
            "                                   every node (a scan of all keys); JSON report\n"
            "  stats [--prometheus]             the running server's status (admin.listen)\n"
            "  warm [--concurrency N] [--fastcgi ADDR] [--host HOST] [--timeout SECONDS] [-v]\n"
            "       (URL... | --from FILE | --sitemap FILE)\n"
            "                                   render and store pages before the first visitor\n");
}

static struct config *load_config(void)
{
    const char *path = config_path;
    if (!path)
        path = getenv("MEMFILL_CONFIG");
    if (!path)
        path = SYSCONFDIR "/memfill.json";
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load(path, CONFIG_ALLOW_NO_ROUTES, &e);
    if (!cfg) {
        char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
        fprintf(stderr, "%s\n", err_format(&e, msg, sizeof msg));
        return NULL;
    }
    if (cfg->discovery_endpoint) {
        /* Use the node list the running server uses: the discovered one. */
        struct discovery_result r;
        int rc = discovery_fetch(cfg->discovery_endpoint, 2000, &r, &e);
        if (rc > 0) {
            int set = config_set_servers(cfg, r.addresses, r.n, &e);
            discovery_result_fini(&r);
            if (set < 0) {
                fprintf(stderr, "memfillctl: %s\n", e.text);
                config_free(cfg);
                return NULL;
            }
        } else if (rc < 0) {
            fprintf(stderr, "memfillctl: %s; using the configured nodes\n", e.text);
        }
    }
    return cfg;
}

/* Loads the config; returns its node selector (and the config in *out),
 * or NULL after printing the error. */
static const struct nodesel *load_selector(struct config **out)
{
    struct config *cfg = load_config();
    *out = cfg;
    return cfg ? cfg->nodes : NULL;
}

/* ---- where ---- */

static int where_one(const struct nodesel *sel, const char *raw, size_t len)
{
    struct buf esc = BUF_INIT;
    int node;
    enum keyloc_fit fit = keyloc_find(sel, raw, len, &esc, &node);
    int ok = fit == KEYLOC_OK;
    const char *name = "-";
    if (ok) {
        const struct nodesel_server *s = nodesel_server(sel, (size_t)node);
        name = nodesel_distribution(sel) == NODESEL_UPSTREAM_LIST ? s->name : s->address;
    }
    printf("%s\t%s\n", name, esc.data ? esc.data : "");
    if (!ok) {
        struct buf shown = BUF_INIT;
        log_escape(&shown, raw, len, 80);
        if (fit == KEYLOC_EMPTY)
            fprintf(stderr, "memfillctl: where: empty key: nginx answers 500 and never reads "
                            "it\n");
        else
            fprintf(stderr,
                    "memfillctl: where: key \"%s\" is %zu bytes once escaped; memcached "
                    "accepts %d, so nginx can never read it\n",
                    shown.data, esc.len, KEY_MAX_ESCAPED);
        buf_fini(&shown);
    }
    buf_fini(&esc);
    return ok ? 0 : 1;
}

static int decode_arg(const char *arg, int hex, struct buf *out)
{
    if (!hex) {
        buf_append_str(out, arg);
        return 0;
    }
    size_t n = strlen(arg);
    if (n % 2)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        char pair[3] = {arg[i], arg[i + 1], 0};
        char *end;
        long v = strtol(pair, &end, 16);
        if (*end || !((pair[0] >= '0' && pair[0] <= '9') || (pair[0] | 0x20) >= 'a'))
            return -1;
        buf_append_char(out, (char)v);
    }
    if (!out->data)
        buf_append(out, "", 0);
    return 0;
}

static int cmd_where(int argc, char **argv)
{
    int hex = 0, first = 1;
    if (first < argc && strcmp(argv[first], "--hex") == 0) {
        hex = 1;
        first++;
    }
    if (first >= argc) {
        fprintf(stderr, "memfillctl: where: expected at least one KEY, or - for stdin\n");
        return EX_USAGE;
    }
    struct config *cfg;
    const struct nodesel *sel = load_selector(&cfg);
    if (!sel)
        return EX_CONFIG;
    int rc = 0;
    struct buf key = BUF_INIT;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-") == 0) {
            char *line = NULL;
            size_t cap = 0;
            ssize_t n;
            while ((n = getline(&line, &cap, stdin)) >= 0) {
                if (n > 0 && line[n - 1] == '\n')
                    line[--n] = '\0';
                buf_reset(&key, 1 << 16);
                if (decode_arg(line, hex, &key) < 0) {
                    fprintf(stderr, "memfillctl: where: bad hex key \"%s\"\n", line);
                    rc = EX_DATAERR;
                    continue;
                }
                rc |= where_one(sel, key.data ? key.data : "", key.len);
            }
            free(line);
            continue;
        }
        buf_reset(&key, 1 << 16);
        if (decode_arg(argv[i], hex, &key) < 0) {
            fprintf(stderr, "memfillctl: where: bad hex key \"%s\"\n", argv[i]);
            rc = EX_DATAERR;
            continue;
        }
        rc |= where_one(sel, key.data ? key.data : "", key.len);
    }
    buf_fini(&key);
    config_free(cfg);
    return rc;
}

/* ---- nginx-conf ---- */

static int cmd_nginx_conf(int argc, char **argv)
{
    struct nginxconf_opts o = {"80", "_", NULL, 0};
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--listen") == 0)
            o.listen = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--server-name") == 0)
            o.server_name = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--fastcgi") == 0)
            o.fastcgi = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--keepalive") == 0) {
            uint64_t ka;
            if (util_parse_u64(argv[i + 1], strlen(argv[i + 1]), 65535, &ka) < 0 || ka == 0) {
                fprintf(stderr, "memfillctl: nginx-conf: --keepalive wants 1..65535\n");
                return EX_USAGE;
            }
            o.keepalive = (unsigned)ka;
            i++;
        } else {
            fprintf(stderr, "memfillctl: nginx-conf: unexpected argument \"%s\"\n", argv[i]);
            return EX_USAGE;
        }
    }
    struct config *cfg = load_config();
    if (!cfg)
        return EX_CONFIG;
    struct buf out = BUF_INIT;
    int rc = nginxconf_render(cfg, &o, &out);
    if (rc < 0)
        fprintf(stderr, "memfillctl: nginx-conf: the config has no \"listen\" (memfill runs "
                        "under spawn-fcgi): give --fastcgi ADDR, the socket nginx should use\n");
    else
        fwrite(out.data, 1, out.len, stdout);
    buf_fini(&out);
    config_free(cfg);
    return rc < 0 ? EX_USAGE : 0;
}

/* ---- render ---- */

static int cmd_render(int argc, char **argv)
{
    const char *tpl = NULL, *data = NULL, *partials = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--partials") == 0)
            partials = argv[++i];
        else if (!tpl)
            tpl = argv[i];
        else if (!data)
            data = argv[i];
        else {
            fprintf(stderr, "memfillctl: render: unexpected argument \"%s\"\n", argv[i]);
            return EX_USAGE;
        }
    }
    if (!tpl) {
        fprintf(stderr, "memfillctl: render: expected TEMPLATE [DATA.json]\n");
        return EX_USAGE;
    }
    char *dir = NULL;
    if (!partials) {
        const char *slash = strrchr(tpl, '/');
        dir = slash ? xstrndup(tpl, (size_t)(slash - tpl)) : xstrdup(".");
    }
    struct template_set *set = template_set_new(partials ? partials : dir);
    free(dir);
    struct err e;
    err_clear(&e);
    char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
    const struct template *t = template_set_load(set, tpl, &e);
    if (!t) {
        fprintf(stderr, "%s\n", err_format(&e, msg, sizeof msg));
        template_set_free(set);
        return EX_DATAERR;
    }
    json_t *json = NULL;
    if (data) {
        json_error_t je;
        json = json_load_file(data, JSON_REJECT_DUPLICATES, &je);
        if (!json) {
            if (je.line > 0) /* a parse error; else the file could not be read */
                fprintf(stderr, "%s:%d:%d: %s\n", data, je.line, je.column, je.text);
            else
                fprintf(stderr, "memfillctl: render: %s\n", je.text);
            template_set_free(set);
            return EX_DATAERR;
        }
    }
    struct buf out = BUF_INIT;
    int rc = template_render(t, json, &out, &e);
    if (rc < 0)
        fprintf(stderr, "%s\n", err_format(&e, msg, sizeof msg));
    else
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
    buf_fini(&out);
    json_decref(json);
    template_set_free(set);
    return rc < 0 ? EX_DATAERR : 0;
}

/* ---- purge ---- */

/* purge --prefix P | --regex RE [--include-bookkeeping]: prints the JSON
 * report; exit 0 when complete, 1 when partial (a node failed). */
static int cmd_purge_match(int argc, char **argv)
{
    enum purgematch_kind kind = strcmp(argv[1], "--prefix") == 0 ? PURGEMATCH_PREFIX
                                                                 : PURGEMATCH_REGEX;
    const char *pattern = NULL;
    int bookkeeping = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--include-bookkeeping") == 0)
            bookkeeping = 1;
        else if (!pattern)
            pattern = argv[i];
    }
    struct err e;
    err_clear(&e);
    if (!pattern || argc != 3 + bookkeeping) {
        fprintf(stderr, "memfillctl: purge: %s takes exactly one pattern\n", argv[1]);
        return EX_USAGE;
    }
    struct purgematch *m = purgematch_new(kind, pattern, strlen(pattern), bookkeeping, &e);
    if (!m) {
        fprintf(stderr, "memfillctl: purge: %s: %s\n", argv[1], e.text);
        return EX_USAGE;
    }
    struct config *cfg = load_config();
    if (!cfg) {
        purgematch_free(m);
        return EX_CONFIG;
    }
    struct mcclient *mc = mcclient_new(cfg);
    struct purgematch_report r;
    int complete = purgematch_run(mc, m, &r);
    mcclient_free(mc);
    struct buf out = BUF_INIT;
    purgematch_report_json(&r, &out);
    printf("%s\n", out.data);
    for (size_t i = 0; i < r.nnodes; i++)
        if (r.nodes[i].failed)
            fprintf(stderr, "memfillctl: purge: node %s: %s (the purge is partial: run it again "
                            "once the node answers)\n",
                    r.nodes[i].address, r.nodes[i].error);
    buf_fini(&out);
    purgematch_report_fini(&r);
    purgematch_free(m);
    config_free(cfg);
    return complete ? 0 : 1;
}

static int cmd_purge(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--prefix") == 0 || strcmp(argv[1], "--regex") == 0))
        return cmd_purge_match(argc, argv);
    enum { BY_URI, BY_KEY, BY_TAG } mode = BY_URI;
    int first = 1;
    if (first < argc && strcmp(argv[first], "--key") == 0) {
        mode = BY_KEY;
        first++;
    } else if (first < argc && strcmp(argv[first], "--tag") == 0) {
        mode = BY_TAG;
        first++;
    }
    if (first >= argc) {
        fprintf(stderr, "memfillctl: purge: expected URI..., --key KEY... or --tag TAG...\n");
        return EX_USAGE;
    }
    struct config *cfg;
    const struct nodesel *sel = load_selector(&cfg);
    if (!sel)
        return EX_CONFIG;
    struct err e;
    err_clear(&e);
    struct key_pattern *pat = key_pattern_compile(cfg->key, &e);
    if (!pat) {
        fprintf(stderr, "memfillctl: purge: %s\n", e.text);
            config_free(cfg);
        return EX_CONFIG;
    }
    struct mcclient *mc = mcclient_new(cfg);
    int rc = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (mode == BY_TAG) {
            struct purge_report rep;
            purge_report_init(&rep, nodesel_count(sel));
            if (purge_tag(mc, arg, strlen(arg), &rep) < 0) {
                fprintf(stderr, "memfillctl: purge: tag \"%s\": not a valid tag\n", arg);
                rc = 1;
            } else {
                printf("tag %s\t%ld purged\n", arg, rep.purged);
                if (!purge_report_complete(&rep)) {
                    /* Never a plain success while pages may be left. */
                    struct buf why = BUF_INIT;
                    purge_report_why(&rep, mc, &why);
                    fprintf(stderr, "memfillctl: purge: tag \"%s\": may be incomplete: %s\n",
                            arg, why.data);
                    buf_fini(&why);
                    rc = 1;
                }
            }
            purge_report_fini(&rep);
            continue;
        }
        struct buf raw = BUF_INIT;
        if (mode == BY_KEY) {
            buf_append_str(&raw, arg);
        } else {
            /* The key a GET of this URL would have, params built as for warm. */
            struct warm_url u;
            const char *why;
            if (warm_url_parse(arg, strlen(arg), &u, &why) < 0) {
                fprintf(stderr, "memfillctl: purge: %s: %s\n", arg, why);
                rc = 1;
                continue;
            }
            struct warm_params p;
            warm_params_build(pat, &u, NULL, &p);
            buf_append(&raw, p.key.data ? p.key.data : "", p.key.len);
            warm_params_fini(&p);
            warm_url_fini(&u);
        }
        int r = purge_key(mc, sel, raw.data ? raw.data : "", raw.len);
        struct buf esc = BUF_INIT;
        int node;
        keyloc_find(sel, raw.data ? raw.data : "", raw.len, &esc, &node);
        printf("%s\t%s\n", esc.data ? esc.data : "",
               r > 0 ? "purged" : r == 0 ? "not cached" : "failed");
        if (r < 0)
            rc = 1;
        buf_fini(&esc);
        buf_fini(&raw);
    }
    mcclient_free(mc);
    key_pattern_free(pat);
    config_free(cfg);
    return rc;
}

/* ---- stats ---- */

static int cmd_stats(int argc, char **argv)
{
    int prom = argc > 1 && strcmp(argv[1], "--prometheus") == 0;
    struct config *cfg = load_config();
    if (!cfg)
        return EX_CONFIG;
    if (!cfg->admin_listen) {
        fprintf(stderr, "memfillctl: stats: the config has no admin.listen\n");
        config_free(cfg);
        return EX_CONFIG;
    }
    struct buf out = BUF_INIT;
    struct err e;
    err_clear(&e);
    int status = admin_client_get(cfg->admin_listen, prom ? "/metrics" : "/status",
                                  cfg->admin_token, &out, &e);
    if (status != 200) {
        fprintf(stderr, "memfillctl: stats: %s\n",
                status < 0 ? e.text : status == 403 ? "refused (admin.token/admin.allow)"
                                                    : "unexpected answer");
        buf_fini(&out);
        config_free(cfg);
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
    buf_fini(&out);
    config_free(cfg);
    return 0;
}

/* ---- warm ---- */

static int cmd_warm(int argc, char **argv)
{
    struct warm_opts o;
    struct err e;
    err_clear(&e);
    int rc = warm_opts_parse(argc, argv, &o, &e);
    for (const char *p = o.notes.data, *nl; p && (nl = strchr(p, '\n')); p = nl + 1)
        fprintf(stderr, "memfillctl: warm: %.*s\n", (int)(nl - p), p);
    if (rc == 0) {
        struct config *cfg = load_config();
        rc = cfg ? warm_run(cfg, &o, stderr, &e) : EX_CONFIG;
        config_free(cfg);
    }
    if (e.set) {
        char msg[ERR_TEXT_MAX + ERR_SOURCE_MAX + 32];
        /* A config error names its file; the others are the command's. */
        if (e.source[0])
            fprintf(stderr, "%s\n", err_format(&e, msg, sizeof msg));
        else
            fprintf(stderr, "memfillctl: warm: %s\n", e.text);
    }
    warm_opts_fini(&o);
    return rc;
}

int main(int argc, char **argv)
{
    log_open(NULL, LOG_WARN, 'C');
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            config_path = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("memfillctl %s\n", PACKAGE_VERSION);
            return 0;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    /* Allow -c after the command too: memfillctl where -c FILE KEY */
    if (sub_argc > 2 && strcmp(sub_argv[1], "-c") == 0) {
        config_path = sub_argv[2];
        sub_argv[2] = sub_argv[0];
        sub_argv += 2;
        sub_argc -= 2;
    }
    if (strcmp(cmd, "where") == 0)
        return cmd_where(sub_argc, sub_argv);
    if (strcmp(cmd, "nginx-conf") == 0)
        return cmd_nginx_conf(sub_argc, sub_argv);
    if (strcmp(cmd, "render") == 0)
        return cmd_render(sub_argc, sub_argv);
    if (strcmp(cmd, "purge") == 0)
        return cmd_purge(sub_argc, sub_argv);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(sub_argc, sub_argv);
    if (strcmp(cmd, "warm") == 0)
        return cmd_warm(sub_argc, sub_argv);
    fprintf(stderr, "memfillctl: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return EX_USAGE;
}
