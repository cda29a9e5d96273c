/* Incremental, fail-fast UTF-8 validation (RFC 3629).
 *
 * A 9-state DFA. Byte b moves state s to t when the sequence read so far can
 * still be completed into valid UTF-8:
 *
 *   state  meaning                               allowed next byte -> state
 *   ACC    at a character boundary               00..7F -> ACC
 *                                                C2..DF -> C1    E0 -> E0
 *                                                E1..EC, EE..EF -> C2
 *                                                ED -> ED        F0 -> F0
 *                                                F1..F3 -> C3    F4 -> F4
 *   C1     1 continuation byte missing            80..BF -> ACC
 *   C2     2 continuation bytes missing           80..BF -> C1
 *   C3     3 continuation bytes missing           80..BF -> C2
 *   E0     after E0 (no overlongs)                A0..BF -> C1
 *   ED     after ED (no surrogates)               80..9F -> C1
 *   F0     after F0 (no overlongs)                90..BF -> C2
 *   F4     after F4 (nothing above U+10FFFF)      80..8F -> C2
 *   REJ    invalid; every other byte leads here, and REJ never leaves
 *
 * (80..BF as a lead byte, C0, C1 and F5..FF always go to REJ.)
 *
 * Encoding: state s is kept as the bit offset 6*s, and for every byte value a
 * 64-bit row holds, in bits [6s, 6s+6), the offset of the state that byte
 * leads to from s. One step is then a single table load (whose address does
 * not depend on the state) plus a shift and a mask:
 *     s' = (row[b] >> s) & 63
 * so the loop-carried dependency is two cheap ALU operations per byte.
 *
 * The public state is the internal offset, except REJ (offset 6), which is
 * exported as WSF_UTF8_REJECT (1). ACC is offset 0 = WSF_UTF8_ACCEPT.
 *
 * At a boundary, ASCII runs are skipped 64 bytes at a time with SSE2 on
 * x86-64 (baseline, no dispatch needed) or NEON on aarch64, then 32 and 8
 * bytes at a time with 64-bit word loads (memcpy, so no alignment or aliasing
 * assumptions). A non-ASCII byte sends the next WSF_UTF8_BLOCK bytes through
 * the DFA, byte by byte, before the fast path is tried again.
 *
 * Measured on AMD EPYC Zen 4 (bench/c/utf8_bench.c): ASCII ~85-98 GB/s from
 * L1/L2 (the 8-byte-word loop alone: ~55), multi-byte text ~2 GB/s. */
#include "utf8.h"

#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(_M_ARM64EC)
#  define WSF_UTF8_SSE2 1
#  include <emmintrin.h>
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#  define WSF_UTF8_NEON 1
#  include <arm_neon.h>
#endif

enum {
    S_ACC = 0, S_REJ = 1, S_C1 = 2, S_C2 = 3, S_E0 = 4,
    S_ED = 5, S_C3 = 6, S_F0 = 7, S_F4 = 8
};

#define ST(s) (6u * (unsigned)(s)) /* internal encoding of state s */
#define T(s, t) ((uint64_t)ST(t) << ST(s))
/* A row: the next state from each of the 9 states, in enum order. */
#define ROW(a, r, c1, c2, e0, ed, c3, f0, f4)                                 \
    (T(S_ACC, a) | T(S_REJ, r) | T(S_C1, c1) | T(S_C2, c2) | T(S_E0, e0) |   \
     T(S_ED, ed) | T(S_C3, c3) | T(S_F0, f0) | T(S_F4, f4))
#define R S_REJ

/* one row per byte class */
#define B_ASCII ROW(S_ACC, R, R, R, R, R, R, R, R)              /* 00..7F */
#define B_80_8F ROW(R, R, S_ACC, S_C1, R, S_C1, S_C2, R, S_C2)  /* 80..8F */
#define B_90_9F ROW(R, R, S_ACC, S_C1, R, S_C1, S_C2, S_C2, R)  /* 90..9F */
#define B_A0_BF ROW(R, R, S_ACC, S_C1, S_C1, R, S_C2, S_C2, R)  /* A0..BF */
#define B_BAD   ROW(R, R, R, R, R, R, R, R, R)           /* C0 C1 F5..FF */
#define B_LEAD2 ROW(S_C1, R, R, R, R, R, R, R, R)               /* C2..DF */
#define B_E0    ROW(S_E0, R, R, R, R, R, R, R, R)               /* E0 */
#define B_LEAD3 ROW(S_C2, R, R, R, R, R, R, R, R)         /* E1..EC EE EF */
#define B_ED    ROW(S_ED, R, R, R, R, R, R, R, R)               /* ED */
#define B_F0    ROW(S_F0, R, R, R, R, R, R, R, R)               /* F0 */
#define B_LEAD4 ROW(S_C3, R, R, R, R, R, R, R, R)               /* F1..F3 */
#define B_F4    ROW(S_F4, R, R, R, R, R, R, R, R)               /* F4 */

#define X2(r) r, r
#define X4(r) X2(r), X2(r)
#define X8(r) X4(r), X4(r)
#define X16(r) X8(r), X8(r)

static const uint64_t wsf_utf8_rows[] = {
    X16(B_ASCII), X16(B_ASCII), X16(B_ASCII), X16(B_ASCII),   /* 00..3F */
    X16(B_ASCII), X16(B_ASCII), X16(B_ASCII), X16(B_ASCII),   /* 40..7F */
    X16(B_80_8F),                                             /* 80..8F */
    X16(B_90_9F),                                             /* 90..9F */
    X16(B_A0_BF), X16(B_A0_BF),                               /* A0..BF */
    X2(B_BAD),                                                /* C0..C1 */
    X2(B_LEAD2), X4(B_LEAD2), X8(B_LEAD2), X16(B_LEAD2),      /* C2..DF */
    B_E0,                                                     /* E0 */
    X8(B_LEAD3), X4(B_LEAD3),                                 /* E1..EC */
    B_ED,                                                     /* ED */
    X2(B_LEAD3),                                              /* EE..EF */
    B_F0,                                                     /* F0 */
    B_LEAD4, B_LEAD4, B_LEAD4,                                /* F1..F3 */
    B_F4,                                                     /* F4 */
    X8(B_BAD), X2(B_BAD), B_BAD                               /* F5..FF */
};

/* exactly one row per byte value (a missing row would silently be zero) */
typedef char wsf_utf8_rows_has_256_entries
    [sizeof wsf_utf8_rows / sizeof wsf_utf8_rows[0] == 256 ? 1 : -1];

/* bytes run through the DFA before looking for ASCII again */
#ifndef WSF_UTF8_BLOCK
#  define WSF_UTF8_BLOCK 32
#endif

#define HI8 ((uint64_t)0x8080808080808080u)

wsf_utf8_state wsf_utf8_validate(wsf_utf8_state state,
                                 const unsigned char *data, size_t len)
{
    const unsigned char *p, *end;
    uint64_t st;

    if (state == WSF_UTF8_REJECT)
        return WSF_UTF8_REJECT;
    /* Anything that is not one of our states is treated as REJECT. */
    if (state != WSF_UTF8_ACCEPT &&
        (state > ST(S_F4) || state % 6u != 0 || state == ST(S_REJ)))
        return WSF_UTF8_REJECT;
    if (len == 0)
        return state;

    st = state;
    p = data;
    end = data + len;
    for (;;) {
        const unsigned char *stop;
        if ((st & 63u) == ST(S_ACC)) {
            /* ASCII fast path. */
#if defined(WSF_UTF8_SSE2)
            while ((size_t)(end - p) >= 64) {
                __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
                __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
                __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
                __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
                if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b),
                                                   _mm_or_si128(c, d))) != 0)
                    break;
                p += 64;
            }
#elif defined(WSF_UTF8_NEON)
            while ((size_t)(end - p) >= 64) {
                uint8x16_t a = vld1q_u8(p);
                uint8x16_t b = vld1q_u8(p + 16);
                uint8x16_t c = vld1q_u8(p + 32);
                uint8x16_t d = vld1q_u8(p + 48);
                if (vmaxvq_u8(vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d))) >= 0x80)
                    break;
                p += 64;
            }
#endif
            while ((size_t)(end - p) >= 32) {
                uint64_t a, b, c, d;
                memcpy(&a, p, 8);
                memcpy(&b, p + 8, 8);
                memcpy(&c, p + 16, 8);
                memcpy(&d, p + 24, 8);
                if (((a | b | c | d) & HI8) != 0)
                    break;
                p += 32;
            }
            while ((size_t)(end - p) >= 8) {
                uint64_t a;
                memcpy(&a, p, 8);
                if ((a & HI8) != 0)
                    break;
                p += 8;
            }
            if (p == end)
                break;
        }
        /* Byte at a time for a while (at least one byte, at most
         * WSF_UTF8_BLOCK), failing at the first bad byte. Only the low 6 bits
         * of st are the state; the bits above are left over from the row and
         * ignored by the mask in the shift, which x86-64 and aarch64 shift
         * instructions apply for free, so the loop-carried chain is a single
         * shift per byte. Unrolled by 4 so that the loop branch is taken once
         * per 4 bytes; the REJ checks are rarely taken forward branches. */
        stop = (size_t)(end - p) > WSF_UTF8_BLOCK ? p + WSF_UTF8_BLOCK : end;
        while ((size_t)(stop - p) >= 4) {
            st = wsf_utf8_rows[p[0]] >> (st & 63u);
            if ((st & 63u) == ST(S_REJ))
                return WSF_UTF8_REJECT;
            st = wsf_utf8_rows[p[1]] >> (st & 63u);
            if ((st & 63u) == ST(S_REJ))
                return WSF_UTF8_REJECT;
            st = wsf_utf8_rows[p[2]] >> (st & 63u);
            if ((st & 63u) == ST(S_REJ))
                return WSF_UTF8_REJECT;
            st = wsf_utf8_rows[p[3]] >> (st & 63u);
            if ((st & 63u) == ST(S_REJ))
                return WSF_UTF8_REJECT;
            p += 4;
        }
        while (p != stop) {
            st = wsf_utf8_rows[*p++] >> (st & 63u);
            if ((st & 63u) == ST(S_REJ))
                return WSF_UTF8_REJECT;
        }
        if (p == end)
            break;
    }
    return (wsf_utf8_state)(st & 63u);
}
