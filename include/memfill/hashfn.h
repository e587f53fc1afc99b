/* hashfn.h - the hash primitives nginx uses to pick a memcached node, bit
 * for bit: CRC-32 (IEEE, as zlib's crc32()) for `hash` and `hash ...
 * consistent`, and set-misc's h31lc for `set_hashed_upstream`. */
#ifndef MEMFILL_HASHFN_H
#define MEMFILL_HASHFN_H

#include <stddef.h>
#include <stdint.h>

/* All three read exactly len bytes of data (any byte values, NUL included);
 * data may be NULL when len is 0. They keep no state and are safe to call
 * from any process or thread. */

/* Standard CRC-32 of len bytes (reflected poly 0xEDB88320, init and final
 * xor 0xFFFFFFFF), equal to zlib's crc32(0, data, len). */
uint32_t hashfn_crc32(const void *data, size_t len);
/* Continue a CRC-32: hashfn_crc32_update(hashfn_crc32(a), b) equals the CRC
 * of a followed by b. Pass 0 as crc to start. */
uint32_t hashfn_crc32_update(uint32_t crc, const void *data, size_t len);
/* set-misc's ngx_hash_key_lc cast to 32 bits: h = h * 31 + lower(c), with
 * ASCII-only lower-casing, computed modulo 2^32. */
uint32_t hashfn_h31lc(const void *data, size_t len);

#endif
