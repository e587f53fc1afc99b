/* bad_plugin.c - broken plugins for the error cases of check_plugin.
 *
 * Built twice by `make check`:
 * - bad_plugin.so (no macro): a valid shared object that exports no
 *   memfill symbol, as a library named by mistake would be;
 * - bad_abi_plugin.so (-DBAD_PLUGIN_ABI=2): exports memfill_plugin_v1 but
 *   claims an ABI this memfill does not load.
 * memfill must refuse both when it builds the site, naming the route. */
#include <memfill/plugin.h>

#ifdef BAD_PLUGIN_ABI

static int bad_handle(void *state, const struct memfill_request *req, struct memfill_response *resp)
{
    (void)state;
    (void)req;
    (void)resp;
    return -1; /* never reached: memfill must not call it */
}

MEMFILL_PLUGIN_EXPORT const struct memfill_plugin memfill_plugin_v1 = {
    .abi = BAD_PLUGIN_ABI,
    .size = sizeof(struct memfill_plugin),
    .name = "bad-abi",
    .init = 0,
    .handle = bad_handle,
    .free = 0,
};

#else

/* Some exported symbol, so the object is not empty. */
MEMFILL_PLUGIN_EXPORT int bad_plugin_answer(void);

int bad_plugin_answer(void)
{
    return 42;
}

#endif
