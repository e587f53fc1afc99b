/* fuzz_config.c - libFuzzer target: the JSON config loader.
 *
 * The input is a config file's text. It is loaded twice, with flags 0 and
 * CONFIG_ALLOW_NO_ROUTES; a loaded config is printed (every effective value)
 * and freed, a refused one must carry an error message. Relative paths are
 * resolved against a folder that does not exist: loading never touches the
 * file system. */
#include "config.h"

#include "memfill/buf.h"
#include "memfill/conf.h"
#include "memfill/err.h"

#include "fuzzutil.h"

static void load(const uint8_t *data, size_t size, unsigned flags)
{
    struct err e;
    err_clear(&e);
    struct config *cfg = config_load_string((const char *)data, size, "fuzz.json",
                                            "/nonexistent-fuzz-dir", flags, &e);
    if (!cfg) {
        FUZZ_CHECK(e.text[0] != '\0');
        return;
    }
    FUZZ_CHECK(cfg->workers > 0);
    FUZZ_CHECK(cfg->key != NULL && cfg->upstream_name != NULL);
    FUZZ_CHECK((flags & CONFIG_ALLOW_NO_ROUTES) || cfg->nroutes > 0);
    struct buf out = BUF_INIT;
    config_print(cfg, &out);
    FUZZ_CHECK(out.len > 0);
    buf_fini(&out);
    config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size, 0);
    load(data, size, CONFIG_ALLOW_NO_ROUTES);
    return 0;
}
