/* UTF-8 validation micro-benchmark: wsf_utf8_validate throughput in GB/s
 * (1 GB = 1e9 bytes) on a few kinds of text, at 1 MiB and 64 KiB.
 *
 * Build and run from the project root:
 *
 *   cc -std=c99 -O2 -Icsrc bench/c/utf8_bench.c csrc/utf8.c -o /tmp/utf8_bench
 *   /tmp/utf8_bench
 *
 * Texts (all valid UTF-8, generated here):
 *   ascii     printable ASCII only
 *   latin     European text: ~1 in 12 characters is a 2-byte letter (é, ü, ...)
 *   cyrillic  words of 2-byte letters separated by ASCII spaces/punctuation
 *   cjk       3-byte characters with occasional ASCII punctuation
 *   emoji     4-byte characters mixed with short ASCII runs
 */
#define _POSIX_C_SOURCE 199309L
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t rng = 2463534242u;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Fills exactly n bytes (padding the end with ASCII). */
static void make_text(unsigned char *o, size_t n, int kind)
{
    size_t i = 0;
    while (i + 4 < n) {
        uint32_t r = rnd(), cp;
        switch (kind) {
        case 0: cp = 0x20 + r % 0x5F; break;
        case 1: cp = (r % 12 == 0) ? 0xE0 + (r >> 8) % 0x20 : 0x61 + (r >> 8) % 26;
                if (r % 7 == 0) cp = ' ';
                break;
        case 2: cp = (r % 7 == 0) ? ' ' : 0x430 + (r >> 8) % 32; break;
        case 3: cp = (r % 20 == 0) ? ',' : 0x4E00 + (r >> 8) % 0x5000; break;
        default: cp = (r % 3 == 0) ? 0x1F600 + (r >> 8) % 0x50 : 0x61 + (r >> 8) % 26; break;
        }
        i += put(o + i, cp);
    }
    while (i < n)
        o[i++] = ' ';
}

int main(void)
{
    static const char *const kinds[] = {"ascii", "latin", "cyrillic", "cjk", "emoji"};
    static const size_t sizes[] = {64, 1024, 65536, 1u << 20};
    size_t maxn = 1u << 20;
    unsigned char *buf = (unsigned char *)malloc(maxn);
    int k;
    size_t s;
    if (!buf)
        return 1;
    printf("wsf_utf8_validate, GB/s (best of 7)\n%-10s", "text");
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        printf(" %10zu", sizes[s]);
    printf("\n");
    for (k = 0; k < 5; k++) {
        printf("%-10s", kinds[k]);
        for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s], iters = 1, it;
            double best = 0;
            int rep;
            volatile unsigned sink = 0;
            make_text(buf, n, k);
            if (wsf_utf8_validate(WSF_UTF8_ACCEPT, buf, n) != WSF_UTF8_ACCEPT) {
                printf("generated text invalid!\n");
                return 1;
            }
            for (;;) {
                double t0 = now();
                for (it = 0; it < iters; it++)
                    sink += wsf_utf8_validate(WSF_UTF8_ACCEPT, buf, n);
                if (now() - t0 > 0.03)
                    break;
                iters *= 2;
            }
            for (rep = 0; rep < 7; rep++) {
                double t0 = now(), g;
                for (it = 0; it < iters; it++)
                    sink += wsf_utf8_validate(WSF_UTF8_ACCEPT, buf, n);
                g = (double)n * (double)iters / (now() - t0) / 1e9;
                if (g > best)
                    best = g;
            }
            (void)sink;
            printf(" %10.2f", best);
            fflush(stdout);
        }
        printf("\n");
    }
    free(buf);
    return 0;
}
