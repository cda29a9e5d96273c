/* XOR (un)masking of WebSocket payloads (RFC 6455 section 5.3).
 *
 * Kernels:
 *   scalar64  portable: 64-bit words, every unaligned access through memcpy
 *   sse2      x86-64 baseline, 16-byte vectors
 *   avx2      x86-64 with AVX2 (compiled with a per-function target attribute,
 *             so this file needs no -mavx2 and runs on any x86-64 CPU)
 *   neon      aarch64, 16-byte vectors
 * wsf_mask_init() picks one at run time; before that wsf_mask uses scalar64.
 *
 * Every kernel follows the same plan: the key is rotated by `phase` once and
 * replicated into a 64-bit word / vector register, whose byte order in memory
 * is k[phase], k[phase+1], ... so that every block that starts at a multiple of
 * 4 bytes from `dst` uses it unchanged. Fewer than 16 bytes take a short
 * branch-light scalar path (two overlapping 8- or 4-byte words, or 1-3
 * bytes), with no vector setup; wsf_mask() runs it inline, without the
 * indirect call. Longer buffers are masked in whole blocks plus one last,
 * overlapping block loaded up front (see below), so there is no tail loop.
 * Nothing reads or writes outside [src, src+len) / [dst, dst+len).
 *
 * Measured on AMD EPYC Zen 4 with bench/c/mask_ceiling.c (in place, GB/s):
 * avx2 matches the reference AVX2 loop (112 vs 111 at 64 KiB, 93 vs 95 at
 * 1 MiB) and, thanks to aligning dst to 32 bytes from 256 bytes on, beats it
 * by 40 % when dst is misaligned (112 vs 80 at 64 KiB). Evaluated and not
 * used: an AVX-512 kernel (111 at 64 KiB, 93.5 at 1 MiB: no gain on this
 * Zen 4, which splits 512-bit operations in two) and non-temporal stores
 * (27 vs 24-27 GB/s out of place at 16 MiB: within noise, and they evict the
 * payload the caller reads next). */
#include "mask.h"

#include <stdint.h>
#include <string.h>

/* ---- platform detection ------------------------------------------------ */

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(_M_ARM64EC)
#  define WSF_X86_64 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#  define WSF_AARCH64 1
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#  define WSF_INLINE static __forceinline
#elif defined(__GNUC__) || defined(__clang__)
#  define WSF_INLINE static inline __attribute__((always_inline))
#else
#  define WSF_INLINE static inline
#endif

#if defined(WSF_X86_64)
#  if defined(_MSC_VER)
#    include <intrin.h>
#  endif
#  include <immintrin.h>
#  if defined(_MSC_VER) && defined(__clang__) && !defined(__AVX2__)
     /* clang-cl: older clang's immintrin.h leaves out the AVX/AVX2 headers
      * in MSVC mode unless -mavx2 is given; they may be included once
      * immintrin.h has been. */
#    include <avxintrin.h>
#    include <avx2intrin.h>
#  endif
#  if defined(__GNUC__) || defined(__clang__)
#    define WSF_TARGET_AVX2 __attribute__((target("avx2")))
#    define WSF_TARGET_XSAVE __attribute__((target("xsave")))
#  else /* MSVC: intrinsics are usable without any target attribute */
#    define WSF_TARGET_AVX2
#    define WSF_TARGET_XSAVE
#  endif
#endif

#if defined(WSF_AARCH64)
#  if defined(_MSC_VER) && !defined(__clang__)
#    include <arm64_neon.h>
#  else
#    include <arm_neon.h>
#  endif
#endif

/* Byte order, for rotating the key with shifts. Unknown: build it bytewise. */
#if defined(_MSC_VER) || \
    (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#  define WSF_LITTLE_ENDIAN 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#  define WSF_BIG_ENDIAN 1
#endif

/* ---- shared scalar helpers -------------------------------------------- */

/* The key rotated by `phase` and repeated twice: a uint64_t whose 8 bytes in
 * memory are key[phase], key[phase+1], ..., key[phase+7] (indices mod 4). */
WSF_INLINE uint64_t wsf_key64(const unsigned char key[4], unsigned phase)
{
    uint32_t k32, r;
    memcpy(&k32, key, 4);
#if defined(WSF_LITTLE_ENDIAN) || defined(WSF_BIG_ENDIAN)
    {
        uint64_t d = (uint64_t)k32 | ((uint64_t)k32 << 32);
#  if defined(WSF_LITTLE_ENDIAN)
        r = (uint32_t)(d >> (8u * (phase & 3u)));          /* shift 0..24 */
#  else
        r = (uint32_t)(d >> (32u - 8u * (phase & 3u)));    /* shift 8..32 */
#  endif
    }
#else
    {
        unsigned char b[4];
        b[0] = key[phase & 3u];
        b[1] = key[(phase + 1u) & 3u];
        b[2] = key[(phase + 2u) & 3u];
        b[3] = key[(phase + 3u) & 3u];
        memcpy(&r, b, 4);
    }
    (void)k32;
#endif
    return (uint64_t)r | ((uint64_t)r << 32);
}

/* k64 advanced by `by` bytes: the key pattern that starts `by` bytes later. */
WSF_INLINE uint64_t wsf_key_advance(uint64_t k64, size_t by)
{
#if defined(WSF_LITTLE_ENDIAN) || defined(WSF_BIG_ENDIAN)
    unsigned r = 8u * (unsigned)(by & 3u); /* 0..24; (64 - r) & 63 avoids 64 */
#  if defined(WSF_LITTLE_ENDIAN)
    return (k64 >> r) | (k64 << ((64u - r) & 63u));
#  else
    return (k64 << r) | (k64 >> ((64u - r) & 63u));
#  endif
#else
    unsigned char b[8], o[8];
    unsigned j;
    memcpy(b, &k64, 8);
    for (j = 0; j < 8; j++)
        o[j] = b[(j + by) & 3u];
    memcpy(&k64, o, 8);
    return k64;
#endif
}

/* XOR n < 16 bytes with the key pattern `k64` (which starts at d[0]).
 * Two overlapping words (8 or 4 bytes) or three single bytes; everything is
 * loaded before anything is stored, so in place works. One or two
 * well-predicted branches, no loop. */
WSF_INLINE void wsf_xor_small(unsigned char *d, const unsigned char *s,
                              size_t n, uint64_t k64)
{
    if (n >= 8) {
        uint64_t a, b, kt = wsf_key_advance(k64, n); /* s + n - 8 */
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        a ^= k64;
        b ^= kt;
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        /* both 32-bit halves of a key word hold the same 4 bytes */
        uint32_t a, b, kt = (uint32_t)wsf_key_advance(k64, n);
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        a ^= (uint32_t)k64;
        b ^= kt;
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n != 0) {
        unsigned char kb[4], a, b, c;
        size_t h = n >> 1; /* 0, 1, 1 for n = 1, 2, 3 */
        memcpy(kb, &k64, 4);
        a = s[0];
        b = s[h];
        c = s[n - 1];
        d[0] = (unsigned char)(a ^ kb[0]);
        d[h] = (unsigned char)(b ^ kb[h]);
        d[n - 1] = (unsigned char)(c ^ kb[n - 1]);
    }
}

#define WSF_NEXT_PHASE(phase, len) ((unsigned)(((size_t)(phase) + (len)) & 3u))

/* The kernels below handle len >= block size the same way: the LAST block
 * (src + len - B) is loaded first, then whole blocks are masked from the
 * start, then the saved last block is XORed with the key advanced to its
 * offset and stored, overlapping what the loop did. It holds original data,
 * so the bytes written twice come out right in place too, and no tail loop
 * is needed. */

/* ---- scalar64 ---------------------------------------------------------- */

static unsigned mask_scalar64(unsigned char *dst, const unsigned char *src,
                              size_t len, const unsigned char key[4],
                              unsigned phase)
{
    uint64_t k = wsf_key64(key, phase);
    size_t n = len;
    if (n < 16) {
        wsf_xor_small(dst, src, n, k);
    } else {
        uint64_t last, klast = wsf_key_advance(k, n);
        unsigned char *dend = dst + n - 8;
        memcpy(&last, src + n - 8, 8);
        while (n >= 32) {
            uint64_t a, b, c, e;
            memcpy(&a, src, 8);
            memcpy(&b, src + 8, 8);
            memcpy(&c, src + 16, 8);
            memcpy(&e, src + 24, 8);
            a ^= k;
            b ^= k;
            c ^= k;
            e ^= k;
            memcpy(dst, &a, 8);
            memcpy(dst + 8, &b, 8);
            memcpy(dst + 16, &c, 8);
            memcpy(dst + 24, &e, 8);
            dst += 32;
            src += 32;
            n -= 32;
        }
        while (n >= 8) {
            uint64_t a;
            memcpy(&a, src, 8);
            a ^= k;
            memcpy(dst, &a, 8);
            dst += 8;
            src += 8;
            n -= 8;
        }
        last ^= klast;
        memcpy(dend, &last, 8);
    }
    return WSF_NEXT_PHASE(phase, len);
}

/* ---- x86-64: sse2 and avx2 ---------------------------------------------- */

#if defined(WSF_X86_64)

#define WSF_LOADU128(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define WSF_STOREU128(p, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))
#define WSF_LOADU256(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define WSF_STOREU256(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), (v))

WSF_INLINE __m128i wsf_key_m128(uint64_t k64)
{
    long long sk;
    memcpy(&sk, &k64, 8);
    return _mm_set1_epi64x(sk);
}

/* 16 <= n <= 32: two overlapping 16-byte blocks. */
WSF_INLINE void wsf_xor_16_32(unsigned char *d, const unsigned char *s,
                              size_t n, uint64_t k64)
{
    __m128i a = WSF_LOADU128(s);
    __m128i b = WSF_LOADU128(s + n - 16);
    WSF_STOREU128(d, _mm_xor_si128(a, wsf_key_m128(k64)));
    WSF_STOREU128(d + n - 16,
                  _mm_xor_si128(b, wsf_key_m128(wsf_key_advance(k64, n))));
}

static unsigned mask_sse2(unsigned char *dst, const unsigned char *src,
                          size_t len, const unsigned char key[4],
                          unsigned phase)
{
    uint64_t k64 = wsf_key64(key, phase);
    size_t n = len;
    if (n < 16) {
        wsf_xor_small(dst, src, n, k64);
    } else if (n <= 32) {
        wsf_xor_16_32(dst, src, n, k64);
    } else {
        const __m128i k = wsf_key_m128(k64);
        const __m128i klast = wsf_key_m128(wsf_key_advance(k64, n));
        const __m128i last = WSF_LOADU128(src + n - 16);
        unsigned char *dend = dst + n - 16;
        while (n >= 64) {
            __m128i a = WSF_LOADU128(src);
            __m128i b = WSF_LOADU128(src + 16);
            __m128i c = WSF_LOADU128(src + 32);
            __m128i e = WSF_LOADU128(src + 48);
            WSF_STOREU128(dst, _mm_xor_si128(a, k));
            WSF_STOREU128(dst + 16, _mm_xor_si128(b, k));
            WSF_STOREU128(dst + 32, _mm_xor_si128(c, k));
            WSF_STOREU128(dst + 48, _mm_xor_si128(e, k));
            dst += 64;
            src += 64;
            n -= 64;
        }
        while (n >= 16) {
            WSF_STOREU128(dst, _mm_xor_si128(WSF_LOADU128(src), k));
            dst += 16;
            src += 16;
            n -= 16;
        }
        WSF_STOREU128(dend, _mm_xor_si128(last, klast));
    }
    return WSF_NEXT_PHASE(phase, len);
}

/* From this length on, the AVX2 kernel first aligns dst to 32 bytes. */
#ifndef WSF_AVX2_ALIGN_MIN
#  define WSF_AVX2_ALIGN_MIN 256
#endif
#if WSF_AVX2_ALIGN_MIN < 64
#  error "WSF_AVX2_ALIGN_MIN must be >= 64 (the aligning head consumes up to 63 bytes)"
#endif

WSF_TARGET_AVX2
static unsigned mask_avx2(unsigned char *dst, const unsigned char *src,
                          size_t len, const unsigned char key[4],
                          unsigned phase)
{
    uint64_t k64 = wsf_key64(key, phase);
    size_t n = len;
    if (n < 16) {
        wsf_xor_small(dst, src, n, k64);
    } else if (n <= 32) {
        wsf_xor_16_32(dst, src, n, k64);
    } else {
        long long sk;
        __m256i k, klast, last;
        unsigned char *dend = dst + n - 32;
        memcpy(&sk, &k64, 8);
        k = _mm256_set1_epi64x(sk);
        k64 = wsf_key_advance(k64, n);
        memcpy(&sk, &k64, 8);
        klast = _mm256_set1_epi64x(sk);
        last = WSF_LOADU256(src + n - 32);
        if (n >= WSF_AVX2_ALIGN_MIN && ((uintptr_t)dst & 31u) != 0) {
            /* Align dst to 32 bytes: split-line stores (and, in place, loads)
             * are what costs; measured 79 -> 111 GB/s at 64 KiB in place
             * with dst misaligned by one byte. Both blocks are loaded before
             * either is stored, so the bytes [h, 32) written twice end up
             * right, in place too. */
            size_t h = 32u - (size_t)((uintptr_t)dst & 31u); /* 1..31 */
            __m256i head = WSF_LOADU256(src);
            __m256i first = WSF_LOADU256(src + h);
            uint64_t kh = wsf_key64(key, phase + (unsigned)h);
            __m256i k2;
            memcpy(&sk, &kh, 8);
            k2 = _mm256_set1_epi64x(sk);
            WSF_STOREU256(dst, _mm256_xor_si256(head, k));
            WSF_STOREU256(dst + h, _mm256_xor_si256(first, k2));
            k = k2;
            dst += h + 32;
            src += h + 32;
            n -= h + 32;
        }
        while (n >= 128) {
            __m256i a = WSF_LOADU256(src);
            __m256i b = WSF_LOADU256(src + 32);
            __m256i c = WSF_LOADU256(src + 64);
            __m256i e = WSF_LOADU256(src + 96);
            WSF_STOREU256(dst, _mm256_xor_si256(a, k));
            WSF_STOREU256(dst + 32, _mm256_xor_si256(b, k));
            WSF_STOREU256(dst + 64, _mm256_xor_si256(c, k));
            WSF_STOREU256(dst + 96, _mm256_xor_si256(e, k));
            dst += 128;
            src += 128;
            n -= 128;
        }
        while (n >= 32) {
            WSF_STOREU256(dst, _mm256_xor_si256(WSF_LOADU256(src), k));
            dst += 32;
            src += 32;
            n -= 32;
        }
        WSF_STOREU256(dend, _mm256_xor_si256(last, klast));
    }
    return WSF_NEXT_PHASE(phase, len);
}

#if defined(_MSC_VER)
WSF_TARGET_XSAVE
static int wsf_cpu_has_avx2(void)
{
    int r[4];
    unsigned long long xcr0;
    __cpuid(r, 0);
    if (r[0] < 7)
        return 0;
    __cpuid(r, 1);
    /* OSXSAVE (bit 27) and AVX (bit 28) */
    if ((r[2] & (1 << 27)) == 0 || (r[2] & (1 << 28)) == 0)
        return 0;
    xcr0 = _xgetbv(0);
    if ((xcr0 & 6u) != 6u) /* the OS saves XMM and YMM state */
        return 0;
    __cpuidex(r, 7, 0);
    return (r[1] & (1 << 5)) != 0; /* AVX2 */
}
#else
static int wsf_cpu_has_avx2(void)
{
    /* libgcc / compiler-rt also check that the OS saves the YMM state. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}
#endif

#endif /* WSF_X86_64 */

/* ---- aarch64: neon ----------------------------------------------------- */

#if defined(WSF_AARCH64)

WSF_INLINE uint8x16_t wsf_key_neon(uint64_t k64)
{
    unsigned char kb[16];
    memcpy(kb, &k64, 8);
    memcpy(kb + 8, &k64, 8);
    return vld1q_u8(kb);
}

static unsigned mask_neon(unsigned char *dst, const unsigned char *src,
                          size_t len, const unsigned char key[4],
                          unsigned phase)
{
    uint64_t k64 = wsf_key64(key, phase);
    size_t n = len;
    if (n < 16) {
        wsf_xor_small(dst, src, n, k64);
    } else {
        const uint8x16_t k = wsf_key_neon(k64);
        const uint8x16_t klast = wsf_key_neon(wsf_key_advance(k64, n));
        const uint8x16_t last = vld1q_u8(src + n - 16);
        unsigned char *dend = dst + n - 16;
        while (n >= 64) {
            uint8x16_t a = vld1q_u8(src);
            uint8x16_t b = vld1q_u8(src + 16);
            uint8x16_t c = vld1q_u8(src + 32);
            uint8x16_t e = vld1q_u8(src + 48);
            vst1q_u8(dst, veorq_u8(a, k));
            vst1q_u8(dst + 16, veorq_u8(b, k));
            vst1q_u8(dst + 32, veorq_u8(c, k));
            vst1q_u8(dst + 48, veorq_u8(e, k));
            dst += 64;
            src += 64;
            n -= 64;
        }
        while (n >= 16) {
            vst1q_u8(dst, veorq_u8(vld1q_u8(src), k));
            dst += 16;
            src += 16;
            n -= 16;
        }
        vst1q_u8(dend, veorq_u8(last, klast));
    }
    return WSF_NEXT_PHASE(phase, len);
}

#endif /* WSF_AARCH64 */

/* ---- dispatch ---------------------------------------------------------- */

static wsf_mask_fn wsf_active = mask_scalar64;
static const char *wsf_active_name = "scalar64";

static int wsf_streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

wsf_mask_fn wsf_mask_kernel(const char *name)
{
    if (name == NULL)
        return NULL;
    if (wsf_streq(name, "scalar64"))
        return mask_scalar64;
#if defined(WSF_X86_64)
    if (wsf_streq(name, "sse2"))
        return mask_sse2;
    if (wsf_streq(name, "avx2"))
        return wsf_cpu_has_avx2() ? mask_avx2 : NULL;
#endif
#if defined(WSF_AARCH64)
    if (wsf_streq(name, "neon"))
        return mask_neon;
#endif
    return NULL;
}

int wsf_mask_init(const char *force)
{
    /* Automatic choice, best first. */
    static const char *const order[] = {"avx2", "sse2", "neon", "scalar64"};
    size_t i;
    for (i = 0; i < sizeof order / sizeof order[0]; i++) {
        wsf_mask_fn fn = wsf_mask_kernel(order[i]);
        if (fn != NULL) {
            wsf_active = fn;
            wsf_active_name = order[i];
            break;
        }
    }
    if (force != NULL) {
        wsf_mask_fn fn = wsf_mask_kernel(force);
        if (fn == NULL)
            return -1;
        for (i = 0; i < sizeof order / sizeof order[0]; i++) {
            if (wsf_streq(force, order[i])) {
                wsf_active = fn;
                wsf_active_name = order[i];
                break;
            }
        }
    }
    return 0;
}

const char *wsf_mask_kernel_name(void)
{
    return wsf_active_name;
}

unsigned wsf_mask(unsigned char *dst, const unsigned char *src, size_t len,
                  const unsigned char key[4], unsigned phase)
{
    if (len < 16) {
        /* Short payloads (pings, chat messages, game ticks): no indirect
         * call, no vector setup. */
        wsf_xor_small(dst, src, len, wsf_key64(key, phase));
        return WSF_NEXT_PHASE(phase, len);
    }
    return wsf_active(dst, src, len, key, phase);
}
