/* conf.h - memfill's configuration: one JSON file loaded into an
 * immutable struct.
 *
 * Loading is strict: unknown keys, duplicate keys, wrong types and values
 * out of range are errors reported as "file:line:col: path.to.key: what was
 * expected". Relative paths in the file (document roots, templates, data,
 * plugins, pid and log files, a unix admin.listen socket) are resolved
 * against the folder holding the config file. The struct and all its
 * strings are owned by the config; workers inherit it read-only across
 * fork. */
#ifndef MEMFILL_CONF_H
#define MEMFILL_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "memfill/addr.h"
#include "memfill/err.h"
#include "memfill/loglevel.h"
#include "memfill/nodedist.h"

struct nodesel;

/* Where a value stood in the file, for errors found after loading. */
struct config_pos {
    int line;
    int col;
};

struct config_server {
    char *address; /* exactly as in nginx's `server` line */
    unsigned weight;
    char *name; /* upstream name, for distribution upstream_list; may be NULL */
    struct config_pos pos;
};

enum config_handler {
    CONFIG_HANDLER_STATIC = 0,
    CONFIG_HANDLER_TEMPLATE,
    CONFIG_HANDLER_UPSTREAM,
    CONFIG_HANDLER_PLUGIN,
};

/* Bits of config_route.methods. */
#define CONFIG_METHOD_GET 0x01u
#define CONFIG_METHOD_HEAD 0x02u
#define CONFIG_METHOD_POST 0x04u
#define CONFIG_METHOD_PUT 0x08u
#define CONFIG_METHOD_DELETE 0x10u
#define CONFIG_METHOD_PATCH 0x20u
#define CONFIG_METHOD_OPTIONS 0x40u

/* cache.key when the config names none: nginx's usual $memcached_key. */
#define CONFIG_DEFAULT_KEY "$uri$is_args$args"

struct config_route {
    char *prefix;        /* match by path prefix, or */
    char *regex;         /* match by PCRE2 regex (named captures) */
    enum config_handler handler;
    unsigned methods;    /* CONFIG_METHOD_* bits; default GET|HEAD */
    long ttl;            /* seconds; -1 = cache.ttl */
    int cache;           /* 0: never store pages of this route */
    char *content_type;  /* NULL: by extension / handler default */
    char **tags;         /* NULL-terminated list, may be empty */
    /* static */
    char *root;
    /* template */
    char *template_path;
    char *data;          /* data file pattern, "{name}" replaced by captures */
    char *data_url;      /* or a URL pattern returning JSON */
    char *partials;      /* partials folder; default: the template's folder */
    /* upstream */
    char *origin;        /* "http://host:port" */
    char *origin_host;   /* Host sent to the origin; NULL: see relay.c */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    /* plugin */
    char *plugin;        /* path of the shared object */
    char *plugin_config; /* the "config" object as JSON text, or NULL */
    /* store the full response in srcache's format instead of the body */
    int srcache;
    struct config_pos pos;       /* the route object */
    struct config_pos regex_pos; /* its "regex" value */
};

struct config {
    char *path; /* the file loaded */
    char *dir;  /* its folder, for relative paths */

    /* process */
    char *listen; /* NULL: the socket inherited on fd 0 (spawn-fcgi) */
    unsigned listen_mode; /* for unix: sockets; 0 = leave as created */
    char *listen_owner;
    char *listen_group;
    unsigned backlog;
    char *user;
    char *group;
    char *pid_file;
    unsigned workers; /* 0 in the file = number of CPUs; resolved at load */
    unsigned max_requests;     /* 0 = never recycle */
    unsigned request_timeout;  /* seconds; 0 = none */
    unsigned shutdown_timeout; /* seconds */
    unsigned long max_body;    /* request body bytes accepted */
    unsigned long max_params;  /* total bytes of FastCGI params accepted */
    unsigned params_timeout_ms; /* a connection's params must arrive within this */

    char *log_file; /* NULL = stderr */
    enum log_level log_level;
    int access_log;

    /* memcached */
    struct config_server *servers;
    size_t nservers;
    enum nodesel_dist distribution;
    char *upstream_name; /* name of the nginx upstream block */
    unsigned mc_connect_timeout_ms;
    unsigned mc_timeout_ms;
    char *discovery_endpoint;    /* ElastiCache-style "host:port"; NULL = off */
    unsigned discovery_interval; /* seconds between polls */

    /* cache */
    char *key; /* nginx variable syntax, CONFIG_DEFAULT_KEY by default */
    unsigned ttl;
    unsigned min_ttl;
    unsigned max_ttl; /* 0 = no cap */
    uint32_t gzip_flag; /* 0 = off */
    unsigned long max_item; /* 0 = read item_size_max from memcached */
    char **skip_uri;     /* never-store URI regexes */
    char **skip_cookies; /* cookie names whose presence disables the store */
    unsigned lock_wait_ms; /* stampede protection: how long a miss waits for the
                              worker producing the same page; 0 = off */
    unsigned lock_ttl;     /* seconds the stampede lock lives at most */

    /* template: bounds of one render and of the parsed-data cache */
    unsigned long template_max_output; /* bytes one render may produce */
    unsigned long template_max_data;   /* bytes of a data file or data_url document */
    unsigned long template_data_cache; /* estimated bytes of parsed data a worker keeps */

    /* status and purge endpoints */
    char *admin_listen; /* status listener served by the master; NULL = none */
    char *admin_token;  /* X-Memfill-Token value required for status and purge;
                           at least CONFIG_ADMIN_TOKEN_MIN bytes */
    char **admin_allow; /* CIDR allow-list (default: loopback) */
    struct addr_cidr *admin_nets; /* admin_allow, parsed once at load */
    size_t nadmin_nets;

    /* Built once at load from servers and distribution (resolving each
     * address, see nodesel_new), kept for the site and memfillctl. */
    struct nodesel *nodes;

    struct config_route *routes;
    size_t nroutes;
};

/* Shortest admin.token accepted. */
#define CONFIG_ADMIN_TOKEN_MIN 16

/* Flags for config_load. */
#define CONFIG_ALLOW_NO_ROUTES 0x01u /* memfillctl: a memcached section alone is valid */

/* Loads and validates the file at path. Returns a new config (free with
 * config_free()), or NULL with err set (source = path, line, column, and a
 * text starting with the key path). */
struct config *config_load(const char *path, unsigned flags, struct err *err);
/* Same, from a string; source names it in errors. dir resolves relative
 * paths (NULL = current folder). */
struct config *config_load_string(const char *text, size_t len, const char *source,
                                  const char *dir, unsigned flags, struct err *err);
void config_free(struct config *cfg);
/* Replaces cfg's memcached servers with n addresses (weight 1, no name),
 * e.g. a list found by cluster discovery, and rebuilds cfg->nodes over
 * them. The strings are copied. Returns 0, or -1 with err set
 * ("memcached.servers: ...") when the list is not a valid node list; the
 * config must then be freed. */
int config_set_servers(struct config *cfg, char *const *addresses, size_t n, struct err *err);

/* Writes every effective value, one "path = value" line each, to out. */
struct buf;
void config_print(const struct config *cfg, struct buf *out);

const char *config_handler_name(enum config_handler h);
/* Parses a method name (GET...); returns its CONFIG_METHOD_* bit or 0. */
unsigned config_method_bit(const char *name);

#endif
