/* fuzz_nodesel.c - libFuzzer target: node choice and MEMC_BACKEND.
 *
 * Selectors for the three distributions are built once from numeric
 * addresses (no DNS). The input is used as a raw key (nodesel_pick) and as
 * a MEMC_BACKEND value (nodesel_find_backend) on each, and as a server
 * text for nodesel_chash_base. Invariants: a pick is a valid index (-1
 * only for an empty key where nginx never hashes); a backend is a valid
 * index or -1, so a value naming no configured node can never select a
 * node outside the list: memfill only ever connects to configured nodes. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/err.h"
#include "memfill/nodesel.h"

#include "fuzzutil.h"

static struct nodesel *sel[4];

static void setup(void)
{
    static const struct nodesel_server three[] = {
        {"127.0.0.1:11211", 1, "mc_a"},
        {"127.0.0.2:11211", 3, "mc_b"},
        {"[::1]:11212", 2, "mc_c"},
        {"unix:/run/memcached.sock", 1, "mc_d"},
    };
    static const struct nodesel_server one[] = {{"127.0.0.1:11211", 1, NULL}};
    struct err e;
    err_clear(&e);
    sel[0] = nodesel_new(NODESEL_CONSISTENT, three, 4, &e);
    sel[1] = nodesel_new(NODESEL_HASH, three, 4, &e);
    sel[2] = nodesel_new(NODESEL_UPSTREAM_LIST, three, 4, &e);
    sel[3] = nodesel_new(NODESEL_CONSISTENT, one, 1, &e);
    for (int i = 0; i < 4; i++) {
        if (!sel[i]) {
            fprintf(stderr, "fuzz_nodesel: %s\n", e.text);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sel[0])
        setup();
    const char *s = (const char *)data;
    for (int i = 0; i < 4; i++) {
        int n = (int)nodesel_count(sel[i]);
        int p = nodesel_pick(sel[i], s, size);
        if (size == 0 && nodesel_distribution(sel[i]) != NODESEL_UPSTREAM_LIST)
            FUZZ_CHECK(p == -1);
        else
            FUZZ_CHECK(p >= 0 && p < n);
        if (n == 1 && size > 0)
            FUZZ_CHECK(p == 0);
        FUZZ_CHECK(nodesel_pick(sel[i], s, size) == p);
        int b = nodesel_find_backend(sel[i], s, size);
        FUZZ_CHECK(b >= -1 && b < n);
        if (b >= 0) {
            /* it named a configured node: its text or name is in the input */
            const struct nodesel_server *srv = nodesel_server(sel[i], (size_t)b);
            FUZZ_CHECK(srv != NULL);
        }
    }
    struct buf base = BUF_INIT;
    nodesel_chash_base(s, size, &base);
    FUZZ_CHECK(base.len <= size + 1);
    buf_fini(&base);
    return 0;
}
