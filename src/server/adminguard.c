/* adminguard.c - the access check in front of PURGE and the status
 * listener (doc/security.md): a token compared in constant time and the
 * client address matched against admin.allow, parsed once at load. */
#include "config.h"

#include "memfill/adminguard.h"
#include "memfill/addr.h"

#include <string.h>

int admin_addr_allowed(const struct config *cfg, const char *remote_addr)
{
    return addr_cidr_match(cfg->admin_nets, cfg->nadmin_nets, remote_addr);
}

int admin_allowed(const struct config *cfg, const char *remote_addr, const char *token)
{
    /* An empty token never opens anything (the config check refuses it
     * too, see conf.c). */
    if (!cfg->admin_token || !*cfg->admin_token || !token || !remote_addr)
        return 0;
    size_t a = strlen(cfg->admin_token), b = strlen(token);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned char)(cfg->admin_token[i] ^ (i < b ? token[i] : 0));
    return diff == 0 && admin_addr_allowed(cfg, remote_addr);
}
