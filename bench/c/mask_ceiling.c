/* Masking micro-benchmark: our kernels against a reference AVX2 loop (the
 * "ceiling") and memcpy, in GB/s (1 GB = 1e9 bytes processed).
 *
 * Build and run from the project root (no -mavx2 needed: the AVX2/AVX-512
 * functions carry target attributes):
 *
 *   cc -std=c99 -O2 -Icsrc bench/c/mask_ceiling.c csrc/mask.c -o /tmp/mask_ceiling
 *   /tmp/mask_ceiling            # full table, best of 11 runs per cell
 *   /tmp/mask_ceiling --reps 21  # more runs (helps on a busy machine)
 *   /tmp/mask_ceiling --quick    # shorter runs
 *   /tmp/mask_ceiling --experiments   # also the variants we evaluated and
 *                                     # rejected (dst alignment, AVX-512,
 *                                     # non-temporal stores)
 *
 * Columns:
 *   <kernel>     each kernel via wsf_mask_kernel(name), in place, dst aligned
 *                to 64 bytes
 *   wsf_mask     the dispatched entry point (after wsf_mask_init(NULL))
 *   ceiling      the loop below: 32-byte unaligned load/xor/store, 4x unrolled
 *   memcpy       memcpy between two distinct buffers (out of place)
 *   "+1" rows    the same with dst = src misaligned by one byte
 *
 * Every kernel is called through a function pointer, the ceiling and memcpy
 * too, so all columns pay the same call cost. */
#define _POSIX_C_SOURCE 199309L
#include "mask.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define HAVE_X86 1
#  include <immintrin.h>
#endif

typedef void (*raw_fn)(unsigned char *dst, const unsigned char *src, size_t len,
                       const unsigned char key[4], unsigned phase);

/* ---- the reference ceiling loop ---------------------------------------- */

#if defined(HAVE_X86)
__attribute__((target("avx2"), noinline))
static unsigned ceiling_avx2(unsigned char *dst, const unsigned char *src,
                             size_t len, const unsigned char key[4],
                             unsigned phase)
{
    unsigned char kb[4];
    int k32;
    size_t i;
    __m256i k;
    for (i = 0; i < 4; i++)
        kb[i] = key[(phase + i) & 3];
    memcpy(&k32, kb, 4);
    k = _mm256_set1_epi32(k32);
    i = 0;
    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
    }
    for (; i < len; i++)
        dst[i] = (unsigned char)(src[i] ^ kb[i & 3]);
    return (unsigned)((phase + len) & 3);
}

/* ---- experiments (evaluated, not used by csrc/mask.c) ------------------ */

/* AVX2, head done bytewise so that dst is 32-byte aligned in the main loop. */
__attribute__((target("avx2"), noinline))
static unsigned exp_avx2_aligned(unsigned char *dst, const unsigned char *src,
                                 size_t len, const unsigned char key[4],
                                 unsigned phase)
{
    size_t i = 0, head = (size_t)(-(uintptr_t)dst & 31u);
    unsigned char kb[32];
    __m256i k;
    if (len < 256)
        head = 0;
    for (; i < head; i++)
        dst[i] = (unsigned char)(src[i] ^ key[(phase + i) & 3]);
    for (size_t j = 0; j < 32; j++)
        kb[j] = key[(phase + head + j) & 3];
    k = _mm256_loadu_si256((const __m256i *)(const void *)kb);
    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
    }
    for (; i < len; i++)
        dst[i] = (unsigned char)(src[i] ^ kb[(i - head) & 31]);
    return (unsigned)((phase + len) & 3);
}

/* AVX-512BW, 4x64 bytes per iteration, masked tail. */
__attribute__((target("avx512f,avx512bw"), noinline))
static unsigned exp_avx512(unsigned char *dst, const unsigned char *src,
                           size_t len, const unsigned char key[4],
                           unsigned phase)
{
    unsigned char kb[64];
    size_t i = 0;
    __m512i k;
    for (size_t j = 0; j < 64; j++)
        kb[j] = key[(phase + j) & 3];
    k = _mm512_loadu_si512((const void *)kb);
    for (; i + 256 <= len; i += 256) {
        __m512i a = _mm512_loadu_si512((const void *)(src + i));
        __m512i b = _mm512_loadu_si512((const void *)(src + i + 64));
        __m512i c = _mm512_loadu_si512((const void *)(src + i + 128));
        __m512i d = _mm512_loadu_si512((const void *)(src + i + 192));
        _mm512_storeu_si512((void *)(dst + i), _mm512_xor_si512(a, k));
        _mm512_storeu_si512((void *)(dst + i + 64), _mm512_xor_si512(b, k));
        _mm512_storeu_si512((void *)(dst + i + 128), _mm512_xor_si512(c, k));
        _mm512_storeu_si512((void *)(dst + i + 192), _mm512_xor_si512(d, k));
    }
    for (; i + 64 <= len; i += 64) {
        __m512i a = _mm512_loadu_si512((const void *)(src + i));
        _mm512_storeu_si512((void *)(dst + i), _mm512_xor_si512(a, k));
    }
    if (i < len) {
        __mmask64 m = (__mmask64)(~0ULL >> (64 - (len - i)));
        __m512i a = _mm512_maskz_loadu_epi8(m, (const void *)(src + i));
        _mm512_mask_storeu_epi8((void *)(dst + i), m, _mm512_xor_si512(a, k));
    }
    return (unsigned)((phase + len) & 3);
}

/* AVX2 with non-temporal stores (out of place, dst aligned to 32). */
__attribute__((target("avx2"), noinline))
static unsigned exp_avx2_nt(unsigned char *dst, const unsigned char *src,
                            size_t len, const unsigned char key[4],
                            unsigned phase)
{
    size_t i = 0, head = (size_t)(-(uintptr_t)dst & 31u);
    unsigned char kb[32];
    __m256i k;
    if (head > len)
        head = len;
    for (; i < head; i++)
        dst[i] = (unsigned char)(src[i] ^ key[(phase + i) & 3]);
    for (size_t j = 0; j < 32; j++)
        kb[j] = key[(phase + head + j) & 3];
    k = _mm256_loadu_si256((const __m256i *)(const void *)kb);
    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 96));
        _mm256_stream_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_stream_si256((__m256i *)(void *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_stream_si256((__m256i *)(void *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_stream_si256((__m256i *)(void *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    _mm_sfence();
    for (; i < len; i++)
        dst[i] = (unsigned char)(src[i] ^ kb[(i - head) & 31]);
    return (unsigned)((phase + len) & 3);
}
#endif /* HAVE_X86 */

/* ---- timing ------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned memcpy_fn(unsigned char *dst, const unsigned char *src,
                          size_t len, const unsigned char key[4], unsigned phase)
{
    (void)key;
    memcpy(dst, src, len);
    return phase;
}

static double quick_target = 0.12; /* seconds per measurement */
static int reps = 11;             /* best of this many runs */

/* Best-of-`reps` throughput in GB/s of fn over `len` bytes. */
static double measure(wsf_mask_fn fn, unsigned char *dst,
                      const unsigned char *src, size_t len)
{
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    volatile unsigned sink = 0;
    double best = 0.0;
    size_t iters = 1, it;
    int rep;
    /* calibrate */
    for (;;) {
        double t0 = now(), dt;
        for (it = 0; it < iters; it++)
            sink += fn(dst, src, len, key, (unsigned)it & 3);
        dt = now() - t0;
        if (dt > quick_target / 4)
            break;
        iters *= 2;
    }
    for (rep = 0; rep < reps; rep++) {
        double t0 = now(), dt, gbs;
        for (it = 0; it < iters; it++)
            sink += fn(dst, src, len, key, (unsigned)it & 3);
        dt = now() - t0;
        gbs = (double)len * (double)iters / dt / 1e9;
        if (gbs > best)
            best = gbs;
    }
    (void)sink;
    return best;
}

struct col {
    const char *name;
    wsf_mask_fn fn;
    int out_of_place;
};

int main(int argc, char **argv)
{
    static const size_t sizes[] = {16, 64, 1024, 65536, 1u << 20, 16u << 20};
    static const char *const names[] = {"scalar64", "sse2", "avx2", "neon"};
    struct col cols[16];
    int ncols = 0, experiments = 0, i, misalign;
    size_t s;
    unsigned char *a, *b;
    size_t maxlen = (16u << 20) + 256;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick_target = 0.03;
        else if (strcmp(argv[i], "--experiments") == 0)
            experiments = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
    }
    wsf_mask_init(NULL);
    for (i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        wsf_mask_fn fn = wsf_mask_kernel(names[i]);
        if (fn) {
            cols[ncols].name = names[i];
            cols[ncols].fn = fn;
            cols[ncols].out_of_place = 0;
            ncols++;
        }
    }
    cols[ncols].name = "wsf_mask";
    cols[ncols].fn = wsf_mask;
    cols[ncols].out_of_place = 0;
    ncols++;
#if defined(HAVE_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        cols[ncols].name = "ceiling";
        cols[ncols].fn = ceiling_avx2;
        cols[ncols].out_of_place = 0;
        ncols++;
    }
#endif
    cols[ncols].name = "memcpy";
    cols[ncols].fn = memcpy_fn;
    cols[ncols].out_of_place = 1;
    ncols++;
#if defined(HAVE_X86)
    if (experiments && __builtin_cpu_supports("avx2")) {
        cols[ncols].name = "x:avx2al";
        cols[ncols].fn = exp_avx2_aligned;
        cols[ncols].out_of_place = 0;
        ncols++;
        cols[ncols].name = "x:avx2oop";
        cols[ncols].fn = wsf_mask_kernel("avx2");
        cols[ncols].out_of_place = 1;
        ncols++;
        cols[ncols].name = "x:nt-oop";
        cols[ncols].fn = exp_avx2_nt;
        cols[ncols].out_of_place = 1;
        ncols++;
    }
    if (experiments && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw")) {
        cols[ncols].name = "x:avx512";
        cols[ncols].fn = exp_avx512;
        cols[ncols].out_of_place = 0;
        ncols++;
    }
#endif

    a = (unsigned char *)malloc(maxlen + 64);
    b = (unsigned char *)malloc(maxlen + 64);
    if (!a || !b)
        return 1;
    memset(a, 0x5a, maxlen + 64);
    memset(b, 0xa5, maxlen + 64);
    {
        unsigned char *aa = a + (64 - ((uintptr_t)a & 63));
        unsigned char *ba = b + (64 - ((uintptr_t)b & 63));
        printf("kernel in use: %s; GB/s, best of %d, in place unless noted\n",
               wsf_mask_kernel_name(), reps);
        printf("%-10s", "size");
        for (i = 0; i < ncols; i++)
            printf(" %10s", cols[i].name);
        printf("\n");
        for (misalign = 0; misalign <= 1; misalign++) {
            for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                char label[32];
                size_t len = sizes[s];
                if (misalign && len < 1024)
                    continue;
                if (len >= (1u << 20))
                    sprintf(label, "%zuMiB%s", len >> 20, misalign ? "+1" : "");
                else if (len >= 1024)
                    sprintf(label, "%zuKiB%s", len >> 10, misalign ? "+1" : "");
                else
                    sprintf(label, "%zuB%s", len, misalign ? "+1" : "");
                printf("%-10s", label);
                fflush(stdout);
                for (i = 0; i < ncols; i++) {
                    unsigned char *d = aa + misalign;
                    const unsigned char *src =
                        cols[i].out_of_place ? ba + misalign : d;
                    printf(" %10.2f", measure(cols[i].fn, d, src, len));
                    fflush(stdout);
                }
                printf("\n");
            }
        }
    }
    free(a);
    free(b);
    return 0;
}
