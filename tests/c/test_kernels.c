/* Standalone tests of the C kernels (csrc/mask.c, csrc/utf8.c); no Python.
 * Built and run by tests/c/run.sh. Prints "c kernels: N passed, M failed" and
 * exits non-zero if anything failed. */
#include "mask.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- harness ----------------------------------------------------------- */

static unsigned long n_pass, n_fail;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            n_pass++;                                                         \
        } else {                                                              \
            n_fail++;                                                         \
            if (n_fail <= 40) {                                               \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                   \
                printf(__VA_ARGS__);                                          \
                printf("\n");                                                 \
            }                                                                 \
        }                                                                     \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    /* xorshift64* */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1du;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static void fill_random(unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd() >> 56);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- masking ----------------------------------------------------------- */

static void ref_mask(unsigned char *dst, const unsigned char *src, size_t len,
                     const unsigned char key[4], unsigned phase)
{
    size_t i;
    for (i = 0; i < len; i++)
        dst[i] = (unsigned char)(src[i] ^ key[(phase + i) & 3]);
}

struct kernel {
    const char *name;
    wsf_mask_fn fn;
};

static struct kernel kernels[8];
static int n_kernels;

#define GUARD 64
#define GUARD_BYTE(i) ((unsigned char)(0xA5 ^ (unsigned char)((i) * 7u)))

/* Guarded region: GUARD bytes, 32 bytes of slack for the offset, len bytes,
 * GUARD bytes. Everything but [off, off+len) of the middle must stay intact. */
struct region {
    unsigned char *base;
    size_t total;
};

static struct region region_new(size_t len)
{
    struct region r;
    size_t i;
    r.total = GUARD + 32 + len + GUARD;
    r.base = (unsigned char *)xmalloc(r.total);
    for (i = 0; i < r.total; i++)
        r.base[i] = GUARD_BYTE(i);
    return r;
}

static unsigned char *region_at(struct region r, size_t off)
{
    return r.base + GUARD + off;
}

/* Checks that every byte of r outside [p, p+len) still has its guard value. */
static int region_intact(struct region r, const unsigned char *p, size_t len)
{
    size_t start = (size_t)(p - r.base), i;
    for (i = 0; i < r.total; i++) {
        if (i >= start && i < start + len)
            continue;
        if (r.base[i] != GUARD_BYTE(i))
            return 0;
    }
    return 1;
}

/* One masking call, checked against the reference; in place or not. */
static void check_mask_once(const struct kernel *k, size_t len, unsigned phase,
                            size_t dst_off, size_t src_off, int in_place)
{
    struct region rd = region_new(len), rs = region_new(len);
    unsigned char *dst = region_at(rd, dst_off);
    unsigned char *src = in_place ? dst : region_at(rs, src_off);
    unsigned char *orig = (unsigned char *)xmalloc(len);
    unsigned char *want = (unsigned char *)xmalloc(len);
    unsigned char key[4];
    unsigned ret;

    fill_random(key, 4);
    fill_random(src, len);
    memcpy(orig, src, len);
    ref_mask(want, orig, len, key, phase);
    ret = k->fn(dst, src, len, key, phase);
    CHECK(ret == (unsigned)((phase + len) & 3),
          "%s len=%zu phase=%u: returned %u", k->name, len, phase, ret);
    CHECK(memcmp(dst, want, len) == 0,
          "%s len=%zu phase=%u dst_off=%zu src_off=%zu in_place=%d: wrong output",
          k->name, len, phase, dst_off, src_off, in_place);
    CHECK(region_intact(rd, dst, len),
          "%s len=%zu phase=%u dst_off=%zu: wrote outside dst", k->name, len,
          phase, dst_off);
    if (!in_place) {
        CHECK(memcmp(src, orig, len) == 0 && region_intact(rs, src, len),
              "%s len=%zu phase=%u src_off=%zu: modified src", k->name, len,
              phase, src_off);
    }
    free(orig);
    free(want);
    free(rd.base);
    free(rs.base);
}

/* Exactly-sized heap buffers, so that AddressSanitizer sees any access even
 * one byte past the end (or before the start). */
static void check_mask_exact(const struct kernel *k, size_t len, unsigned phase)
{
    unsigned char *a = (unsigned char *)xmalloc(len);
    unsigned char *b = (unsigned char *)xmalloc(len);
    unsigned char *want = (unsigned char *)xmalloc(len);
    unsigned char *key = (unsigned char *)xmalloc(4);
    unsigned r1, r2;
    fill_random(key, 4);
    fill_random(a, len);
    ref_mask(want, a, len, key, phase);
    r1 = k->fn(b, a, len, key, phase);   /* out of place */
    r2 = k->fn(a, a, len, key, phase);   /* in place */
    CHECK(r1 == r2 && r1 == (unsigned)((phase + len) & 3) &&
              memcmp(a, want, len) == 0 && memcmp(b, want, len) == 0,
          "%s exact len=%zu phase=%u", k->name, len, phase);
    free(a);
    free(b);
    free(want);
    free(key);
}

/* A buffer masked piece by piece, chaining the returned phase, equals one
 * call. The pieces are masked by randomly chosen kernels. */
static void check_mask_split(size_t len)
{
    unsigned char *orig = (unsigned char *)xmalloc(len);
    unsigned char *whole = (unsigned char *)xmalloc(len);
    unsigned char *parts = (unsigned char *)xmalloc(len);
    unsigned char key[4];
    unsigned phase0 = (unsigned)rnd_below(4), phase = phase0, want_phase;
    size_t pos = 0;
    int single = rnd_below(2) == 0;
    const struct kernel *k1 = &kernels[rnd_below((size_t)n_kernels)];
    fill_random(key, 4);
    fill_random(orig, len);
    memcpy(whole, orig, len);
    memcpy(parts, orig, len);
    want_phase = k1->fn(whole, whole, len, key, phase0);
    while (pos < len) {
        size_t piece;
        const struct kernel *k =
            single ? k1 : &kernels[rnd_below((size_t)n_kernels)];
        switch (rnd_below(3)) {
        case 0: piece = rnd_below(8) + 1; break;
        case 1: piece = rnd_below(100) + 1; break;
        default: piece = rnd_below(len - pos) + 1; break;
        }
        if (piece > len - pos)
            piece = len - pos;
        phase = k->fn(parts + pos, parts + pos, piece, key, phase);
        pos += piece;
    }
    CHECK(phase == want_phase && memcmp(whole, parts, len) == 0,
          "split len=%zu phase=%u", len, phase0);
    /* and masking twice restores the original */
    k1->fn(whole, whole, len, key, phase0);
    CHECK(memcmp(whole, orig, len) == 0, "unmask twice len=%zu", len);
    free(orig);
    free(whole);
    free(parts);
}

static void test_init(void)
{
    static const char *const order[] = {"avx2", "sse2", "neon", "scalar64"};
    const char *best = NULL;
    size_t i;
    unsigned char buf[40], want[40];
    static const unsigned char key[4] = {1, 2, 3, 4};

    /* before wsf_mask_init */
    CHECK(strcmp(wsf_mask_kernel_name(), "scalar64") == 0,
          "kernel before init is %s", wsf_mask_kernel_name());
    for (i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)i;
    ref_mask(want, buf, sizeof buf, key, 3);
    CHECK(wsf_mask(buf, buf, sizeof buf, key, 3) == (3 + sizeof buf) % 4 &&
              memcmp(buf, want, sizeof buf) == 0,
          "wsf_mask before init");

    for (i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (wsf_mask_kernel(order[i]) != NULL) {
            best = order[i];
            break;
        }
    }
    CHECK(best != NULL, "no kernel at all");
    if (best == NULL)
        return;
    CHECK(wsf_mask_kernel("scalar64") != NULL, "scalar64 missing");
    CHECK(wsf_mask_kernel("bogus") == NULL, "bogus kernel found");
    CHECK(wsf_mask_kernel("") == NULL, "empty kernel name found");
    CHECK(wsf_mask_kernel(NULL) == NULL, "NULL kernel name found");
#if defined(__x86_64__) || defined(_M_X64)
    CHECK(wsf_mask_kernel("sse2") != NULL, "sse2 missing on x86-64");
    CHECK(wsf_mask_kernel("neon") == NULL, "neon on x86-64");
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
    CHECK(wsf_mask_kernel("neon") != NULL, "neon missing on aarch64");
    CHECK(wsf_mask_kernel("avx2") == NULL && wsf_mask_kernel("sse2") == NULL,
          "x86 kernel on aarch64");
#endif

    CHECK(wsf_mask_init(NULL) == 0, "init(NULL)");
    CHECK(strcmp(wsf_mask_kernel_name(), best) == 0, "init(NULL) chose %s, want %s",
          wsf_mask_kernel_name(), best);
    CHECK(wsf_mask_init(NULL) == 0 && strcmp(wsf_mask_kernel_name(), best) == 0,
          "init(NULL) twice");
    CHECK(wsf_mask_init("scalar64") == 0, "init(scalar64)");
    CHECK(strcmp(wsf_mask_kernel_name(), "scalar64") == 0, "forced scalar64: %s",
          wsf_mask_kernel_name());
    CHECK(wsf_mask_init("bogus") == -1, "init(bogus) != -1");
    CHECK(strcmp(wsf_mask_kernel_name(), best) == 0,
          "after init(bogus) kernel is %s, want %s", wsf_mask_kernel_name(), best);
    for (i = 0; i < sizeof order / sizeof order[0]; i++) {
        int r = wsf_mask_init(order[i]);
        if (wsf_mask_kernel(order[i]) != NULL) {
            CHECK(r == 0 && strcmp(wsf_mask_kernel_name(), order[i]) == 0,
                  "init(%s)", order[i]);
        } else {
            CHECK(r == -1 && strcmp(wsf_mask_kernel_name(), best) == 0,
                  "init(unsupported %s)", order[i]);
        }
    }
    CHECK(wsf_mask_init(NULL) == 0 && strcmp(wsf_mask_kernel_name(), best) == 0,
          "init(NULL) after forcing");
}

static void test_mask(void)
{
    static const char *const names[] = {"scalar64", "sse2", "avx2", "neon"};
    static const size_t big[] = {4095, 4096, 65537, (1u << 20) + 3};
    int ki;
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        wsf_mask_fn fn = wsf_mask_kernel(names[i]);
        if (fn != NULL) {
            kernels[n_kernels].name = names[i];
            kernels[n_kernels].fn = fn;
            n_kernels++;
        }
    }
    kernels[n_kernels].name = "wsf_mask";
    kernels[n_kernels].fn = wsf_mask;
    n_kernels++;
    printf("mask kernels tested:");
    for (ki = 0; ki < n_kernels; ki++)
        printf(" %s", kernels[ki].name);
    printf(" (wsf_mask dispatches to %s)\n", wsf_mask_kernel_name());

    for (ki = 0; ki < n_kernels; ki++) {
        const struct kernel *k = &kernels[ki];
        size_t len, off;
        unsigned phase;
        for (len = 0; len <= 300; len++) {
            for (phase = 0; phase < 4; phase++) {
                for (off = 0; off < 32; off++) {
                    check_mask_once(k, len, phase, off, 0, 1);
                    check_mask_once(k, len, phase, off, (off * 7 + 3) & 31, 0);
                    check_mask_once(k, len, phase, 5, off, 0);
                }
                check_mask_exact(k, len, phase);
            }
        }
        for (i = 0; i < sizeof big / sizeof big[0]; i++) {
            static const size_t offs[] = {0, 1, 7, 17, 31};
            size_t oi;
            for (phase = 0; phase < 4; phase++) {
                for (oi = 0; oi < sizeof offs / sizeof offs[0]; oi++) {
                    check_mask_once(k, big[i], phase, offs[oi], 0, 1);
                    check_mask_once(k, big[i], phase, offs[oi],
                                    offs[(oi + 2) % 5], 0);
                }
                check_mask_exact(k, big[i], phase);
            }
        }
    }
    for (i = 0; i < 2000; i++)
        check_mask_split(rnd_below(2000) + 1);
    for (i = 0; i < 20; i++)
        check_mask_split(rnd_below(300000) + 1);

    /* wsf_mask under every forced kernel */
    for (ki = 0; ki + 1 < n_kernels; ki++) {
        size_t len;
        struct kernel disp;
        disp.name = kernels[ki].name;
        disp.fn = wsf_mask;
        CHECK(wsf_mask_init(kernels[ki].name) == 0, "force %s", kernels[ki].name);
        for (len = 0; len < 600; len += 7)
            check_mask_once(&disp, len, (unsigned)(len & 3), len & 31, 0, 1);
    }
    wsf_mask_init(NULL);
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Reference: the status of d[0..n) as a prefix of UTF-8, from code point
 * intervals rather than byte ranges. Returns 0 (complete, valid), 1 (invalid;
 * *bad = index of the first byte after which no valid continuation exists)
 * or 2 (valid so far, ends inside a character). */
static int ref_utf8(const unsigned char *d, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned b = d[i];
        unsigned need, k;
        uint32_t cp, lo, hi;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            need = 1; cp = b & 0x1F; lo = 0x80; hi = 0x7FF;
        } else if ((b & 0xF0) == 0xE0) {
            need = 2; cp = b & 0x0F; lo = 0x800; hi = 0xFFFF;
        } else if ((b & 0xF8) == 0xF0) {
            need = 3; cp = b & 0x07; lo = 0x10000; hi = 0x10FFFF;
        } else {
            *bad = i;
            return 1;
        }
        for (k = 0;; k++) {
            /* cp holds the lead and k continuation bytes; the code points
             * still reachable are [cp << 6r, (cp << 6r) | (2^6r - 1)]. */
            unsigned r = need - k;
            uint32_t first = cp << (6 * r), last = first | ((1u << (6 * r)) - 1);
            int ok = first <= hi && last >= lo;
            /* minus the surrogates, when the interval lies inside them */
            if (ok && first >= 0xD800 && last <= 0xDFFF)
                ok = 0;
            if (!ok) {
                *bad = i + k;
                return 1;
            }
            if (k == need)
                break;
            if (i + k + 1 >= n)
                return 2;
            if ((d[i + k + 1] & 0xC0) != 0x80) {
                *bad = i + k + 1;
                return 1;
            }
            cp = (cp << 6) | (d[i + k + 1] & 0x3Fu);
        }
        i += need + 1;
    }
    return 0;
}

/* 0 accept, 1 reject, 2 inside a sequence */
static int category(wsf_utf8_state s)
{
    return s == WSF_UTF8_ACCEPT ? 0 : s == WSF_UTF8_REJECT ? 1 : 2;
}

/* Feeds byte by byte; returns the index of the byte that gave REJECT, or n. */
static size_t reject_index_bytewise(const unsigned char *d, size_t n)
{
    wsf_utf8_state s = WSF_UTF8_ACCEPT;
    size_t i;
    for (i = 0; i < n; i++) {
        s = wsf_utf8_validate(s, d + i, 1);
        if (s == WSF_UTF8_REJECT)
            return i;
    }
    return n;
}

/* Full check of one input against the reference. `split_all`: also every
 * split point into two chunks. Copies to an exact-size buffer for ASan. */
static void check_utf8(const unsigned char *data, size_t n, int split_all,
                       const char *what)
{
    unsigned char *d = (unsigned char *)xmalloc(n);
    size_t bad = n, k;
    int want;
    wsf_utf8_state one;
    memcpy(d, data, n);
    want = ref_utf8(d, n, &bad);
    one = wsf_utf8_validate(WSF_UTF8_ACCEPT, d, n);
    CHECK(category(one) == want, "%s: n=%zu state=%u want category %d", what, n,
          (unsigned)one, want);
    if (want == 1) {
        size_t got = reject_index_bytewise(d, n);
        CHECK(got == bad, "%s: rejected at byte %zu, want %zu", what, got, bad);
        /* the prefix up to (not including) the bad byte is not rejected */
        CHECK(wsf_utf8_validate(WSF_UTF8_ACCEPT, d, bad) != WSF_UTF8_REJECT,
              "%s: prefix before byte %zu rejected", what, bad);
        /* REJECT stays REJECT, whatever follows */
        CHECK(wsf_utf8_validate(one, (const unsigned char *)"abc", 3) ==
                  WSF_UTF8_REJECT,
              "%s: REJECT left", what);
    } else {
        CHECK(reject_index_bytewise(d, n) == n, "%s: bytewise reject", what);
    }
    if (split_all) {
        for (k = 0; k <= n; k++) {
            wsf_utf8_state s = wsf_utf8_validate(WSF_UTF8_ACCEPT, d, k);
            s = wsf_utf8_validate(s, d + k, n - k);
            CHECK(s == one, "%s: split at %zu gives %u, one call %u", what, k,
                  (unsigned)s, (unsigned)one);
        }
    } else if (n > 0) {
        size_t a = rnd_below(n + 1), b = a + rnd_below(n - a + 1);
        wsf_utf8_state s = wsf_utf8_validate(WSF_UTF8_ACCEPT, d, a);
        s = wsf_utf8_validate(s, d + a, b - a);
        s = wsf_utf8_validate(s, d + b, n - b);
        CHECK(s == one, "%s: 3-way split %zu/%zu gives %u, one call %u", what,
              a, b, (unsigned)s, (unsigned)one);
    }
    free(d);
}

/* expected outcome: 0 accept, 1 reject at `at`, 2 truncated */
struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    int want;
    size_t at;
};

#define CASE(name, lit, want, at) {name, lit, sizeof(lit) - 1, want, at}

static const struct utf8_case utf8_cases[] = {
    CASE("empty", "", 0, 0),
    CASE("ascii", "hello, world", 0, 0),
    CASE("NUL", "\x00", 0, 0),
    CASE("U+007F", "\x7f", 0, 0),
    CASE("U+0080", "\xc2\x80", 0, 0),
    CASE("U+00E9", "caf\xc3\xa9", 0, 0),
    CASE("U+07FF", "\xdf\xbf", 0, 0),
    CASE("U+0800", "\xe0\xa0\x80", 0, 0),
    CASE("U+20AC", "\xe2\x82\xac", 0, 0),
    CASE("U+D7FF", "\xed\x9f\xbf", 0, 0),
    CASE("U+E000", "\xee\x80\x80", 0, 0),
    CASE("U+FFFD", "\xef\xbf\xbd", 0, 0),
    CASE("U+FFFF", "\xef\xbf\xbf", 0, 0),
    CASE("U+10000", "\xf0\x90\x80\x80", 0, 0),
    CASE("U+1F600", "\xf0\x9f\x98\x80", 0, 0),
    CASE("U+FFFFF", "\xf3\xbf\xbf\xbf", 0, 0),
    CASE("U+100000", "\xf4\x80\x80\x80", 0, 0),
    CASE("U+10FFFF", "\xf4\x8f\xbf\xbf", 0, 0),
    CASE("mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 0, 0),
    CASE("overlong C0 80", "\xc0\x80", 1, 0),
    CASE("overlong C1 BF", "\xc1\xbf", 1, 0),
    CASE("overlong E0 80 80", "\xe0\x80\x80", 1, 1),
    CASE("overlong E0 9F BF", "\xe0\x9f\xbf", 1, 1),
    CASE("overlong F0 80 80 80", "\xf0\x80\x80\x80", 1, 1),
    CASE("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 1, 1),
    CASE("surrogate ED A0 80", "\xed\xa0\x80", 1, 1),
    CASE("surrogate ED AD BF", "\xed\xad\xbf", 1, 1),
    CASE("surrogate ED B0 80", "\xed\xb0\x80", 1, 1),
    CASE("surrogate ED BF BF", "\xed\xbf\xbf", 1, 1),
    CASE("surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", 1, 1),
    CASE("F4 90 80 80", "\xf4\x90\x80\x80", 1, 1),
    CASE("F4 BF BF BF", "\xf4\xbf\xbf\xbf", 1, 1),
    CASE("F5", "\xf5\x80\x80\x80", 1, 0),
    CASE("F7", "\xf7\xbf\xbf\xbf", 1, 0),
    CASE("F8", "\xf8\x88\x80\x80\x80", 1, 0),
    CASE("FE", "\xfe", 1, 0),
    CASE("FF", "\xff", 1, 0),
    CASE("stray 80", "\x80", 1, 0),
    CASE("stray BF after ascii", "abc\xbf", 1, 3),
    CASE("extra continuation", "\xc3\xa9\xa9", 1, 2),
    CASE("C2 then ascii", "\xc2\x41", 1, 1),
    CASE("E1 80 then ascii", "\xe1\x80\x41", 1, 2),
    CASE("F1 80 80 then ascii", "\xf1\x80\x80\x41", 1, 3),
    CASE("E0 A0 then lead", "\xe0\xa0\xc3\xa9", 1, 2),
    CASE("C2 C2", "\xc2\xc2", 1, 1),
    CASE("invalid after text", "hello w\xc3\xb6rld \xff!", 1, 13),
    CASE("invalid at byte 40",
         "0123456789012345678901234567890123456789\xc0\x80 tail tail tail", 1,
         40),
    CASE("truncated C2", "\xc2", 2, 0),
    CASE("truncated E0 A0", "\xe0\xa0", 2, 0),
    CASE("truncated E1", "\xe1", 2, 0),
    CASE("truncated ED 9F", "\xed\x9f", 2, 0),
    CASE("truncated F0 90 80", "\xf0\x90\x80", 2, 0),
    CASE("truncated F4 8F BF", "\xf4\x8f\xbf", 2, 0),
    CASE("truncated after text", "abc \xe2\x82", 2, 0),
};

/* Encodes code point cp; returns the length. */
static size_t encode_utf8(uint32_t cp, unsigned char *o)
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

/* A random byte, biased toward what UTF-8 is made of. */
static unsigned char utf8ish_byte(void)
{
    static const unsigned char specials[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                             0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed,
                                             0xee, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    switch (rnd_below(6)) {
    case 0: return (unsigned char)rnd_below(0x80);
    case 1:
    case 2: return (unsigned char)(0x80 + rnd_below(0x40));
    case 3: return (unsigned char)(0xC0 + rnd_below(0x40));
    case 4: return specials[rnd_below(sizeof specials)];
    default: return (unsigned char)rnd_below(256);
    }
}

static size_t random_utf8ish(unsigned char *o, size_t max)
{
    size_t n = 0, target = rnd_below(max + 1);
    int ascii_heavy = rnd_below(3) == 0;
    while (n < target) {
        size_t r = rnd_below(100);
        if (ascii_heavy && r < 70) {
            size_t run = rnd_below(70) + 1, j;
            for (j = 0; j < run && n < target; j++)
                o[n++] = (unsigned char)(0x20 + rnd_below(0x5f));
        } else if (r < 85 && n + 4 <= target) {
            /* a valid character */
            uint32_t cp;
            switch (rnd_below(4)) {
            case 0: cp = (uint32_t)rnd_below(0x80); break;
            case 1: cp = (uint32_t)(0x80 + rnd_below(0x780)); break;
            case 2: cp = (uint32_t)(0x800 + rnd_below(0xF800)); break;
            default: cp = (uint32_t)(0x10000 + rnd_below(0x100000)); break;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;
            n += encode_utf8(cp, o + n);
        } else if (r < 95) {
            o[n++] = utf8ish_byte();
        } else {
            o[n++] = (unsigned char)rnd_below(256);
        }
    }
    return n;
}

static void test_utf8(void)
{
    size_t i;
    unsigned char buf[4096];

    for (i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        const unsigned char *d = (const unsigned char *)c->bytes;
        wsf_utf8_state s = wsf_utf8_validate(WSF_UTF8_ACCEPT, d, c->len);
        size_t bad = c->len;
        int ref = ref_utf8(d, c->len, &bad);
        CHECK(category(s) == c->want, "%s: state %u, want category %d", c->name,
              (unsigned)s, c->want);
        CHECK(ref == c->want && (ref != 1 || bad == c->at),
              "%s: reference decoder disagrees with the table (%d at %zu)",
              c->name, ref, bad);
        if (c->want == 1)
            CHECK(reject_index_bytewise(d, c->len) == c->at,
                  "%s: rejected at byte %zu, want %zu", c->name,
                  reject_index_bytewise(d, c->len), c->at);
        check_utf8(d, c->len, 1, c->name);
        /* the same, after an ASCII run long enough for the fast path */
        if (c->len + 77 <= sizeof buf) {
            memset(buf, 'x', 77);
            memcpy(buf + 77, d, c->len);
            check_utf8(buf, c->len + 77, 1, c->name);
        }
    }

    /* Every code point: its encoding is accepted; surrogates rejected at byte
     * 1; the encoding cut short is a prefix, neither accepted nor rejected. */
    {
        uint32_t cp;
        unsigned long bad_cps = 0;
        for (cp = 0; cp <= 0x10FFFF; cp++) {
            unsigned char e[4];
            size_t n = encode_utf8(cp, e), got;
            wsf_utf8_state s = wsf_utf8_validate(WSF_UTF8_ACCEPT, e, n);
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                got = reject_index_bytewise(e, n);
                if (s != WSF_UTF8_REJECT || got != 1)
                    bad_cps++;
            } else if (s != WSF_UTF8_ACCEPT) {
                bad_cps++;
            } else if (n > 1 && category(wsf_utf8_validate(
                                    WSF_UTF8_ACCEPT, e, n - 1)) != 2) {
                bad_cps++;
            }
        }
        CHECK(bad_cps == 0, "%lu code points handled wrongly", bad_cps);
    }

    /* Exhaustive: every 1-, 2- and 3-byte string, against the reference. */
    {
        unsigned long mism = 0;
        uint32_t v;
        for (v = 0; v < (1u << 24); v++) {
            unsigned char e[3];
            size_t n, bad = 0;
            int ref;
            wsf_utf8_state s;
            e[0] = (unsigned char)(v >> 16);
            e[1] = (unsigned char)(v >> 8);
            e[2] = (unsigned char)v;
            for (n = 1; n <= 3; n++) {
                if (n == 1 && (v & 0xFFFF) != 0)
                    continue;
                if (n == 2 && (v & 0xFF) != 0)
                    continue;
                ref = ref_utf8(e, n, &bad);
                s = wsf_utf8_validate(WSF_UTF8_ACCEPT, e, n);
                if (category(s) != ref)
                    mism++;
                else if (ref == 1 && reject_index_bytewise(e, n) != bad)
                    mism++;
            }
        }
        CHECK(mism == 0, "exhaustive 1-3 byte strings: %lu mismatches", mism);
    }

    /* Randomized differential test against the reference. */
    for (i = 0; i < 20000; i++) {
        size_t n = random_utf8ish(buf, i % 10 == 0 ? 1500 : 40);
        check_utf8(buf, n, i % 50 == 0, "random");
    }

    /* Long valid texts with one corrupted byte at every position near the
     * ASCII fast path's word boundaries. */
    {
        size_t pos, n;
        for (pos = 0; pos < 200; pos++) {
            n = 0;
            while (n < 260) {
                if (n % 37 == 36)
                    n += encode_utf8(0x20AC, buf + n);
                else {
                    buf[n] = (unsigned char)('a' + n % 26);
                    n++;
                }
            }
            buf[pos] = 0xFF;
            check_utf8(buf, n, pos % 20 == 0, "corrupted text");
        }
    }

    /* REJECT stays REJECT; len 0 keeps the state; NULL with len 0 is fine. */
    CHECK(wsf_utf8_validate(WSF_UTF8_REJECT, (const unsigned char *)"a", 1) ==
              WSF_UTF8_REJECT, "REJECT + ascii");
    CHECK(wsf_utf8_validate(WSF_UTF8_REJECT, NULL, 0) == WSF_UTF8_REJECT,
          "REJECT + nothing");
    CHECK(wsf_utf8_validate(WSF_UTF8_ACCEPT, NULL, 0) == WSF_UTF8_ACCEPT,
          "ACCEPT + nothing");
    {
        wsf_utf8_state mid =
            wsf_utf8_validate(WSF_UTF8_ACCEPT, (const unsigned char *)"\xf0\x9f", 2);
        CHECK(category(mid) == 2, "mid state");
        CHECK(wsf_utf8_validate(mid, NULL, 0) == mid, "mid + nothing");
        CHECK(wsf_utf8_validate(mid, (const unsigned char *)"\x98\x80", 2) ==
                  WSF_UTF8_ACCEPT, "mid completed");
        CHECK(wsf_utf8_validate(mid, (const unsigned char *)"a", 1) ==
                  WSF_UTF8_REJECT, "mid + ascii");
    }
    {
        /* a large mostly-ASCII buffer, rejected near the end, then REJECT
         * is sticky over further chunks */
        size_t n = 1u << 20;
        unsigned char *big = (unsigned char *)xmalloc(n);
        wsf_utf8_state s;
        memset(big, 'q', n);
        CHECK(wsf_utf8_validate(WSF_UTF8_ACCEPT, big, n) == WSF_UTF8_ACCEPT,
              "1 MiB ascii");
        big[n - 3] = 0xC0;
        s = wsf_utf8_validate(WSF_UTF8_ACCEPT, big, n);
        CHECK(s == WSF_UTF8_REJECT, "1 MiB with C0 near the end");
        memset(big, 'q', n);
        s = wsf_utf8_validate(s, big, n);
        CHECK(s == WSF_UTF8_REJECT, "REJECT sticky over 1 MiB");
        free(big);
    }
}

int main(void)
{
    test_init();
    test_mask();
    test_utf8();
    printf("c kernels: %lu passed, %lu failed\n", n_pass, n_fail);
    return n_fail == 0 ? 0 : 1;
}
