/* XOR (un)masking of WebSocket payloads (RFC 6455 section 5.3).
 *
 * Plain C99, no Python API. The kernel is chosen once at run time by
 * wsf_mask_init(): AVX2 or SSE2 on x86-64, NEON on aarch64, otherwise a
 * portable 64-bit word loop. */
#ifndef WSFRAME_MASK_H
#define WSFRAME_MASK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = src[i] ^ key[(phase + i) & 3] for i in [0, len).
 * dst == src (in place) is allowed; any other overlap is not.
 * phase must be 0..3. Returns the next phase, (phase + len) & 3.
 * No alignment is required of dst, src or key. */
typedef unsigned (*wsf_mask_fn)(unsigned char *dst, const unsigned char *src,
                                size_t len, const unsigned char key[4],
                                unsigned phase);

/* Picks the fastest kernel this CPU supports. If `force` is not NULL and
 * names a kernel this CPU can run ("avx2", "sse2", "neon", "scalar64"), that
 * one is used instead. Idempotent; call before wsf_mask. Returns 0 on success,
 * -1 if `force` named an unknown or unsupported kernel (the automatic choice
 * is then kept). */
int wsf_mask_init(const char *force);

/* The kernel in use: "avx2", "sse2", "neon" or "scalar64". */
const char *wsf_mask_kernel_name(void);

/* Masks with the kernel chosen by wsf_mask_init (scalar64 before it). */
unsigned wsf_mask(unsigned char *dst, const unsigned char *src, size_t len,
                  const unsigned char key[4], unsigned phase);

/* Every kernel compiled in, for tests and benchmarks: returns the kernel
 * called `name` if it is compiled in and this CPU supports it, else NULL. */
wsf_mask_fn wsf_mask_kernel(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* WSFRAME_MASK_H */
