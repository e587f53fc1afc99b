/* nodedist.h - the three ways nginx can pick a memcached node
 * (doc/nginx.md §5-§7), on their own so that a module can name one (the
 * config's memcached.distribution) without depending on the node selector.
 * nodesel.h says what each one computes. */
#ifndef MEMFILL_NODEDIST_H
#define MEMFILL_NODEDIST_H

enum nodesel_dist {
    NODESEL_CONSISTENT = 0,
    NODESEL_HASH,
    NODESEL_UPSTREAM_LIST,
};

#endif
