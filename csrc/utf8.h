/* Incremental, fail-fast UTF-8 validation (RFC 3629).
 *
 * Plain C99, no Python API. The state survives across chunks, so a message
 * split over several frames is validated piece by piece and rejected at the
 * first byte that can no longer start or continue a valid sequence. */
#ifndef WSFRAME_UTF8_H
#define WSFRAME_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The state between two chunks. WSF_UTF8_ACCEPT: at a character boundary.
 * WSF_UTF8_REJECT: invalid, and stays so. Any other value: inside a
 * multi-byte sequence (the encoding of these values is private). */
typedef uint32_t wsf_utf8_state;
#define WSF_UTF8_ACCEPT ((wsf_utf8_state)0)
#define WSF_UTF8_REJECT ((wsf_utf8_state)1)

/* Validates `len` bytes continuing from `state`; returns the new state.
 * Returns WSF_UTF8_REJECT as soon as a byte makes the input invalid
 * (overlong forms, surrogates U+D800..U+DFFF, code points above U+10FFFF,
 * stray continuation bytes, bytes 0xC0, 0xC1, 0xF5..0xFF). A REJECT state
 * stays REJECT. ASCII runs are skipped a machine word at a time. */
wsf_utf8_state wsf_utf8_validate(wsf_utf8_state state,
                                 const unsigned char *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* WSFRAME_UTF8_H */
