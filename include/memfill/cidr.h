/* cidr.h - IPv4/IPv6 address allow-lists ("10.0.0.0/8", "::1/128", or a
 * bare address meaning a single host). */
#ifndef MEMFILL_CIDR_H
#define MEMFILL_CIDR_H

struct cidr {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;         /* bits */
};

/* Parses s into out (out may be NULL to validate only). Returns 0 or -1. */
int cidr_parse(const char *s, struct cidr *out);
/* Returns 1 when the textual address addr (as in REMOTE_ADDR) is inside
 * any entry of the NULL-terminated list of CIDR strings. An IPv4-mapped
 * IPv6 address is compared as IPv4. */
int cidr_list_match(char *const *list, const char *addr);

#endif
