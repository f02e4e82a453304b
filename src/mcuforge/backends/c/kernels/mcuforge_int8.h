/* The fixed-point arithmetic of TFLite's int8 kernels (tensorflow/lite/kernels/internal/common.h,
 * gemmlowp's fixedpoint.h), written to match mcuforge's reference interpreter (ir/quant.py) bit
 * for bit, and the hot loops of the conv / fully connected kernels: a GEMM over im2col columns
 * in blocks of two columns times two output channels (a lone column: times four), requantized a
 * block of channels at a time (16 on hosts, 8 on microcontrollers).
 *
 * Build with -DMCUFORGE_USE_DSP on a Cortex-M with the DSP extension (M4, M7, M33, M55) to
 * compute the dot products with SMLAD (two 16-bit multiply-accumulates per instruction; the
 * GEMM's loops over values and channel pairs in assembly) and each requantization with one
 * 64-bit multiply-add; the results are identical, integer sums being exact. With -DMCUFORGE_USE_MVE
 * too (Cortex-M55), the GEMM and the depthwise conv run on Helium's vectors (the other int8
 * kernels keep the DSP build's code). Without either, the
 * loops take the shape that compilers vectorize at -O2 (hosts: fixed trip counts, 16-bit
 * operands) or that loads each byte once for two multiply-accumulates (other Cortex-M).
 */
#ifndef MCUFORGE_INT8_H
#define MCUFORGE_INT8_H

#include <string.h>

#include "mcuforge.h"

#if defined(MCUFORGE_USE_DSP)
#include <arm_acle.h>
#endif
#if defined(MCUFORGE_USE_MVE)
#include <arm_mve.h>
#endif

/* round(a * b / 2^31), ties upward: floor((a * b + 2^30) / 2^31) for every sign (the nudge of
 * 1 - 2^30 below zero, then a division that truncates); INT32_MIN * INT32_MIN saturates (SQRDMULH) */
static inline int32_t mcuforge_srdhm(int32_t a, int32_t b) {
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudged = ab + (ab >= 0 ? (INT64_C(1) << 30) : 1 - (INT64_C(1) << 30));
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return (int32_t)(nudged / (INT64_C(1) << 31)); /* C division truncates toward zero */
}

/* x / 2^e rounded to nearest, ties away from zero (an arithmetic shift that rounds) */
static inline int32_t mcuforge_rdbpot(int32_t x, int32_t e) {
    const int32_t mask = (int32_t)((INT64_C(1) << e) - 1), threshold = (mask >> 1) + (x < 0);
    return (x >> e) + ((x & mask) > threshold);
}

/* x * multiplier * 2^(shift - 31), TFLite's MultiplyByQuantizedMultiplier (double rounding) */
static inline int32_t mcuforge_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return mcuforge_rdbpot(mcuforge_srdhm((int32_t)((int64_t)x * (INT64_C(1) << left)), multiplier), right);
}

/* x * 2^e, saturating when shifting left, rounding when shifting right */
static inline int32_t mcuforge_srmbpot(int32_t x, int32_t e) {
    int32_t threshold;
    if (e <= 0) return mcuforge_rdbpot(x, -e);
    threshold = (int32_t)((INT64_C(1) << (31 - e)) - 1);
    return x > threshold ? INT32_MAX : x < -threshold ? INT32_MIN : (int32_t)((int64_t)x * (INT64_C(1) << e));
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29 (softmaxes) */
static inline int32_t mcuforge_one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + mcuforge_srdhm(half_denominator, -1010580540), i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - mcuforge_srdhm(half_denominator, x);
        x = x + mcuforge_srmbpot(mcuforge_srdhm(x, one_minus), 2);
    }
    return mcuforge_srmbpot(x, 1);
}

static inline int8_t mcuforge_sat8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* Columns as the dot products read them: hosts (x86, AArch64) widen them once to int16 on the
 * stack, so that compilers use 16-bit multiply-adds (SSE2 pmaddwd, NEON smlal); microcontrollers,
 * with small stacks, read the int8 bytes in place. */
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
typedef int16_t mcuforge_col;
#define MCUFORGE_WIDE_COLUMNS 1
#else
typedef int8_t mcuforge_col;
#endif

/* The requantization of a block of output channels at once, in a form compilers vectorize (SSE2,
 * NEON): for a multiplier m >= 0 (every TFLite multiplier of a positive scale), mcuforge_mbqm's
 * two roundings half away from zero are symmetric, so they run on magnitudes, as unsigned
 * 32 x 32 -> 64-bit products: u = |acc << left|, r = (u * m + 2^30 - [acc < 0]) >> 31, then
 * (r + 2^(right - 1)) >> right as (r + rc) * 2^(31 - right) >> 31 (no per-lane shifts, which
 * SSE2 lacks), and the sign back. Bit for bit mcuforge_mbqm. */
#if defined(MCUFORGE_WIDE_COLUMNS)
#define MCUFORGE_RQ_LANES 16 /* channels per block */
#else
#define MCUFORGE_RQ_LANES 8 /* a smaller stack */
#endif

typedef struct {
    uint32_t m[MCUFORGE_RQ_LANES], lmul[MCUFORGE_RQ_LANES], rmul[MCUFORGE_RQ_LANES], rc[MCUFORGE_RQ_LANES];
    int32_t out_zp, act_min, act_max;
} mcuforge_rq_lanes;

/* the lanes of channels [0, count) of multiplier / shift; the lanes after them give 0 */
static inline void mcuforge_rq_lanes_init(mcuforge_rq_lanes *r, const mcuforge_requant *q, const int32_t *multiplier,
                                          const int32_t *shift, int32_t count) {
    int32_t o;
    for (o = 0; o < MCUFORGE_RQ_LANES; ++o) {
        const int32_t s = o < count ? shift[o] : 0, right = s > 0 ? 0 : -s;
        r->m[o] = o < count ? (uint32_t)multiplier[o] : 0u;
        r->lmul[o] = 1u << (s > 0 ? s : 0);
        r->rmul[o] = 1u << (31 - right);
        r->rc[o] = right > 0 ? 1u << (right - 1) : 0u;
    }
    r->out_zp = q->out_zp;
    r->act_min = q->act_min;
    r->act_max = q->act_max;
}

/* y[o] = the int8 output of the int32 sum acc[o], for every lane */
static inline void mcuforge_rq_lanes_apply(const mcuforge_rq_lanes *r, const int32_t *acc, int8_t *y) {
    int32_t o;
    for (o = 0; o < MCUFORGE_RQ_LANES; ++o) {
        const int32_t v = (int32_t)((uint32_t)acc[o] * r->lmul[o]); /* acc << left, wrapping as mcuforge_mbqm */
        const uint32_t neg = v < 0, u = neg ? 0u - (uint32_t)v : (uint32_t)v;
        const uint32_t high = (uint32_t)(((uint64_t)u * r->m[o] + (UINT64_C(1) << 30) - neg) >> 31);
        const uint32_t q = (uint32_t)(((uint64_t)(high + r->rc[o]) * r->rmul[o]) >> 31);
        const int32_t out = (neg ? -(int32_t)q : (int32_t)q) + r->out_zp;
        y[o] = (int8_t)(out < r->act_min ? r->act_min : out > r->act_max ? r->act_max : out);
    }
}

/* acc[2 * i + j] += a_i . b_j over n values: two columns times two output channels, each value
 * loaded once for two multiply-accumulates */
static inline void mcuforge_dot2x2_s8(const mcuforge_col *a0, const mcuforge_col *a1, const int8_t *b0,
                                      const int8_t *b1, int32_t n, int32_t *acc) {
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3], i = 0;
#if defined(MCUFORGE_USE_DSP)
    for (; i + 4 <= n; i += 4) { /* 4 bytes per load, unpacked once into two 16-bit pairs */
        uint32_t x0, x1, w0, w1, x0e, x0o, x1e, x1o, w0e, w0o, w1e, w1o;
        memcpy(&x0, a0 + i, 4); /* unaligned loads are single instructions on the M4 */
        memcpy(&x1, a1 + i, 4);
        memcpy(&w0, b0 + i, 4);
        memcpy(&w1, b1 + i, 4);
        x0e = __sxtb16(x0), x0o = __sxtb16(x0 >> 8 | x0 << 24); /* bytes 0, 2 and 1, 3 */
        x1e = __sxtb16(x1), x1o = __sxtb16(x1 >> 8 | x1 << 24);
        w0e = __sxtb16(w0), w0o = __sxtb16(w0 >> 8 | w0 << 24);
        w1e = __sxtb16(w1), w1o = __sxtb16(w1 >> 8 | w1 << 24);
        s00 = (int32_t)__smlad(x0o, w0o, __smlad(x0e, w0e, (uint32_t)s00));
        s01 = (int32_t)__smlad(x0o, w1o, __smlad(x0e, w1e, (uint32_t)s01));
        s10 = (int32_t)__smlad(x1o, w0o, __smlad(x1e, w0e, (uint32_t)s10));
        s11 = (int32_t)__smlad(x1o, w1o, __smlad(x1e, w1e, (uint32_t)s11));
    }
#elif defined(MCUFORGE_WIDE_COLUMNS)
#define MCUFORGE_DOT_CHUNK(size) /* a fixed trip count: compilers vectorize this at -O2 */ \
    for (; i + size <= n; i += size) {                                                     \
        int32_t t00 = 0, t01 = 0, t10 = 0, t11 = 0, j;                                     \
        for (j = 0; j < size; ++j) {                                                       \
            t00 += a0[i + j] * b0[i + j];                                                  \
            t01 += a0[i + j] * b1[i + j];                                                  \
            t10 += a1[i + j] * b0[i + j];                                                  \
            t11 += a1[i + j] * b1[i + j];                                                  \
        }                                                                                  \
        s00 += t00, s01 += t01, s10 += t10, s11 += t11;                                    \
    }
    MCUFORGE_DOT_CHUNK(32) /* fewer horizontal sums */
    MCUFORGE_DOT_CHUNK(16)
#undef MCUFORGE_DOT_CHUNK
#endif
    for (; i < n; ++i) {
        s00 += a0[i] * b0[i];
        s01 += a0[i] * b1[i];
        s10 += a1[i] * b0[i];
        s11 += a1[i] * b1[i];
    }
    acc[0] = s00, acc[1] = s01, acc[2] = s10, acc[3] = s11;
}

/* acc[j] += a . b_j over n values: one column times four output channels (a fully connected
 * layer's single row), the column loaded once for four multiply-accumulates */
static inline void mcuforge_dot1x4_s8(const mcuforge_col *a, const int8_t *const *b, int32_t n, int32_t *acc) {
    const int8_t *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], i = 0;
#if defined(MCUFORGE_USE_DSP)
    for (; i + 4 <= n; i += 4) {
        uint32_t x, v0, v1, v2, v3, xe, xo;
        memcpy(&x, a + i, 4);
        memcpy(&v0, b0 + i, 4);
        memcpy(&v1, b1 + i, 4);
        memcpy(&v2, b2 + i, 4);
        memcpy(&v3, b3 + i, 4);
        xe = __sxtb16(x), xo = __sxtb16(x >> 8 | x << 24);
        s0 = (int32_t)__smlad(xo, __sxtb16(v0 >> 8 | v0 << 24), __smlad(xe, __sxtb16(v0), (uint32_t)s0));
        s1 = (int32_t)__smlad(xo, __sxtb16(v1 >> 8 | v1 << 24), __smlad(xe, __sxtb16(v1), (uint32_t)s1));
        s2 = (int32_t)__smlad(xo, __sxtb16(v2 >> 8 | v2 << 24), __smlad(xe, __sxtb16(v2), (uint32_t)s2));
        s3 = (int32_t)__smlad(xo, __sxtb16(v3 >> 8 | v3 << 24), __smlad(xe, __sxtb16(v3), (uint32_t)s3));
    }
#elif defined(MCUFORGE_WIDE_COLUMNS)
    for (; i + 16 <= n; i += 16) {
        int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, j;
        for (j = 0; j < 16; ++j) {
            t0 += a[i + j] * b0[i + j];
            t1 += a[i + j] * b1[i + j];
            t2 += a[i + j] * b2[i + j];
            t3 += a[i + j] * b3[i + j];
        }
        s0 += t0, s1 += t1, s2 += t2, s3 += t3;
    }
#endif
    for (; i < n; ++i) {
        s0 += a[i] * b0[i];
        s1 += a[i] * b1[i];
        s2 += a[i] * b2[i];
        s3 += a[i] * b3[i];
    }
    acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
}

#if defined(MCUFORGE_USE_DSP)
/* For `pairs` pairs of channels (weight rows `depth` apart from w, biases from bias) and two
 * columns (x and x + depth): acc[o] = bias[o] + column 0 . row o and acc[MCUFORGE_RQ_LANES + o]
 * the same for column 1, over the first 4 * quads values (quads >= 1). Per 4 values 4 word loads
 * (columns 0 and 1, rows 2i and 2i + 1), each unpacked into its even and odd bytes by two SXTB16
 * (the odd ones with the rotate folded in, which gcc does not do on its own), and 8 SMLAD; two
 * such steps per loop iteration. All in assembly, the loop over the pairs too: the dot product
 * keeps 14 values in registers (4 sums, 2 pointers, the stride, the count, 3 unpacked pairs), and
 * the pair loop its own state on the stack, where a C loop around the dot product would reload
 * and spill some 30 values a pair. */
#define MCUFORGE_DOT2X2_STEP                           \
    "ldr %[t0], [%[x], %[st]]\n\t"                     \
    "ldr %[t2], [%[x]], #4\n\t"                        \
    "sxtb16 %[t1], %[t0], ror #8\n\t"                  \
    "sxtb16 %[t0], %[t0]\n\t"                          \
    "sxtb16 %[t3], %[t2], ror #8\n\t"                  \
    "sxtb16 %[t2], %[t2]\n\t"                          \
    "ldr %[t4], [%[w], %[st]]\n\t"                     \
    "sxtb16 %[t5], %[t4], ror #8\n\t"                  \
    "sxtb16 %[t4], %[t4]\n\t"                          \
    "smlad %[s01], %[t2], %[t4], %[s01]\n\t"           \
    "smlad %[s01], %[t3], %[t5], %[s01]\n\t"           \
    "smlad %[s11], %[t0], %[t4], %[s11]\n\t"           \
    "smlad %[s11], %[t1], %[t5], %[s11]\n\t"           \
    "ldr %[t4], [%[w]], #4\n\t"                        \
    "sxtb16 %[t5], %[t4], ror #8\n\t"                  \
    "sxtb16 %[t4], %[t4]\n\t"                          \
    "smlad %[s00], %[t2], %[t4], %[s00]\n\t"           \
    "smlad %[s00], %[t3], %[t5], %[s00]\n\t"           \
    "smlad %[s10], %[t0], %[t4], %[s10]\n\t"           \
    "smlad %[s10], %[t1], %[t5], %[s10]\n\t"
static inline void mcuforge_pairs2x2_dsp(const int8_t *x, const int8_t *w, int32_t depth, int32_t quads,
                                         const int32_t *bias, int32_t *acc, int32_t pairs) {
    /* the 14 registers the loop uses carry its inputs in (s00: x, t0..t4: bias, acc, pairs, quads,
     * and how far the weights move from the end of a pair's dot product to the next pair) */
    int32_t s00 = (int32_t)(intptr_t)x, s01 = 0, s10 = 0, s11 = 0, n = 0;
    uintptr_t t0 = (uintptr_t)bias, t1 = (uintptr_t)acc, t2 = (uintptr_t)pairs, t3 = (uintptr_t)quads;
    uintptr_t t4 = (uintptr_t)(2 * depth - 4 * quads), t5 = 0;
    int32_t st = depth; /* in and out, as every operand, so that no two share a register (equal constants could) */
    const int8_t *xp = x;
    /* volatile: it stores to acc, which no operand says */
    __asm__ volatile("str %[t4], [sp, #-4]!\n\t" /* [sp, #20]: the weights' step to the next pair */
                     "str %[t3], [sp, #-4]!\n\t" /* [sp, #16]: quads */
                     "str %[s00], [sp, #-4]!\n\t" /* [sp, #12]: the first column */
                     "str %[t2], [sp, #-4]!\n\t" /* [sp, #8]: pairs left */
                     "str %[t1], [sp, #-4]!\n\t" /* [sp, #4]: acc */
                     "str %[t0], [sp, #-4]!\n\t" /* [sp]: bias */
                     "4:\n\t"
                     "ldr %[t0], [sp]\n\t"
                     "ldrd %[s00], %[s01], [%[t0]], #8\n\t"
                     "str %[t0], [sp]\n\t"
                     "mov %[s10], %[s00]\n\t"
                     "mov %[s11], %[s01]\n\t"
                     "ldr %[x], [sp, #12]\n\t"
                     "ldr %[n], [sp, #16]\n\t"
                     "lsrs %[n], %[n], #1\n\t" /* an odd count: one step first (the steps keep the flags) */
                     "bcc 1f\n\t" MCUFORGE_DOT2X2_STEP "1:\n\t"
                     "beq 3f\n\t"
                     "2:\n\t" MCUFORGE_DOT2X2_STEP MCUFORGE_DOT2X2_STEP "subs %[n], %[n], #1\n\t"
                     "bne 2b\n\t"
                     "3:\n\t"
                     "ldr %[t0], [sp, #20]\n\t"
                     "add %[w], %[w], %[t0]\n\t"
                     "ldr %[t0], [sp, #4]\n\t"
                     "strd %[s10], %[s11], [%[t0], %[row]]\n\t"
                     "strd %[s00], %[s01], [%[t0]], #8\n\t"
                     "str %[t0], [sp, #4]\n\t"
                     "ldr %[t0], [sp, #8]\n\t"
                     "subs %[t0], %[t0], #1\n\t"
                     "str %[t0], [sp, #8]\n\t"
                     "bne 4b\n\t"
                     "add sp, sp, #24"
                     : [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [x] "+r"(xp),
                       [w] "+r"(w), [n] "+r"(n), [t0] "+r"(t0), [t1] "+r"(t1), [t2] "+r"(t2), [t3] "+r"(t3),
                       [t4] "+r"(t4), [t5] "+r"(t5), [st] "+r"(st)
                     : [row] "i"(MCUFORGE_RQ_LANES * 4)
                     : "cc", "memory");
}
#undef MCUFORGE_DOT2X2_STEP

/* The requantization of a block of channels for mcuforge_gemm_dsp_s8, in locals (its int8
 * stores could otherwise alias what it reads). For shifts -24..-2 (almost every channel) both of
 * mcuforge_mbqm's roundings become one 64-bit multiply-add, as in mcuforge_add_s8 (eltwise_s8.c):
 * clamp(mbqm(acc, m, shift) + zp) = clamp((acc * m + k) >> 32 >> right), right = -shift - 1,
 * k's low word 2^30 plus acc's sign bit, its high word high - [acc < 0] with high = 2^(right - 1)
 * + zp * 2^right; right < 0 marks the other shifts, which take mcuforge_mbqm. */
typedef struct {
    int32_t m, high, right, shift;
} mcuforge_rq_chan;

typedef struct {
    mcuforge_rq_chan c[MCUFORGE_RQ_LANES];
    int32_t zp, lo, hi, fast; /* fast: every channel takes the multiply-add */
} mcuforge_rq_block;

static inline void mcuforge_rq_block_init(mcuforge_rq_block *b, const mcuforge_requant *q, const int32_t *multiplier,
                                          const int32_t *shift, int32_t count) {
    int32_t o;
    b->zp = q->out_zp, b->lo = q->act_min, b->hi = q->act_max, b->fast = 1;
    for (o = 0; o < count; ++o) {
        const int32_t s = shift[o], m = multiplier[o], right = s <= -2 && s >= -24 && m >= 0 ? -s - 1 : -1;
        b->c[o].m = m, b->c[o].shift = s, b->c[o].right = right;
        b->c[o].high = right > 0 ? (1 << (right - 1)) + b->zp * (1 << right) : 0;
        b->fast &= right >= 0;
    }
}

/* y0[o * y_chan], y1[o * y_chan] = the int8 outputs of the sums acc[o], acc[MCUFORGE_RQ_LANES + o]
 * (`columns`: 2; or 1, y0 only) of the block's channel o, o < count; each channel's constants loaded once */
static inline void mcuforge_rq_block_apply(const mcuforge_rq_block *b, const int32_t *acc, int32_t count, int8_t *y0,
                                           int8_t *y1, int32_t y_chan, int32_t columns) {
    const int32_t lo = b->lo, hi = b->hi;
    int32_t o, i;
    if (b->fast && hi == 127) { /* in assembly (gcc spills here): SSAT clamps to int8, a compare to act_min */
        for (o = 0; o < count; ++o, y0 += y_chan, y1 += y_chan) {
            const int32_t m = b->c[o].m, high = b->c[o].high, right = b->c[o].right;
            int32_t v[2];
            for (i = 0; i < columns; ++i) {
                uint32_t low;
                __asm__("and %[low], %[a], #0x80000000\n\t"
                        "orr %[low], %[low], #0x40000000\n\t"
                        "add %[v], %[high], %[a], asr #31\n\t"
                        "smlal %[low], %[v], %[a], %[m]\n\t"
                        "asr %[v], %[v], %[right]\n\t"
                        "ssat %[v], #8, %[v]\n\t"
                        "cmp %[v], %[lo]\n\t"
                        "it lt\n\t"
                        "movlt %[v], %[lo]"
                        : [low] "=&r"(low), [v] "=&r"(v[i])
                        : [a] "r"(acc[i * MCUFORGE_RQ_LANES + o]), [m] "r"(m), [high] "r"(high), [right] "r"(right),
                          [lo] "r"(lo)
                        : "cc");
            }
            *y0 = (int8_t)v[0];
            if (columns == 2) *y1 = (int8_t)v[1];
        }
    } else {
        for (o = 0; o < count; ++o)
            for (i = 0; i < columns; ++i) {
                const mcuforge_rq_chan *c = &b->c[o];
                const int32_t a = acc[i * MCUFORGE_RQ_LANES + o];
                int32_t v;
                if (c->right >= 0) {
                    const uint64_t k = (uint64_t)(uint32_t)(c->high + (a >> 31)) << 32 |
                                       (1u << 30 | ((uint32_t)a & 1u << 31));
                    v = (int32_t)(((int64_t)a * c->m + (int64_t)k) >> 32) >> c->right;
                } else {
                    v = mcuforge_mbqm(a, c->m, c->shift) + b->zp;
                }
                (i ? y1 : y0)[o * y_chan] = mcuforge_sat8(v, lo, hi);
            }
    }
}

/* mcuforge_gemm_s8 with SMLAD: per block of MCUFORGE_RQ_LANES channels and pair of columns, the
 * pairs of channels in one assembly loop (mcuforge_pairs2x2_dsp; the values past the last
 * multiple of 4, a lone channel or column: mcuforge_dot2x2_s8 / mcuforge_dot1x4_s8), then the
 * block's requantization. */
static inline void mcuforge_gemm_dsp_s8(const int8_t *cols, int32_t pixels, const int8_t *w, int32_t depth,
                                        int32_t count, const int32_t *bias, const int32_t *multiplier,
                                        const int32_t *shift, const mcuforge_requant *q, int8_t *y, int32_t y_pixel,
                                        int32_t y_chan) {
    const int32_t quads = depth / 4;
    int32_t o0, p, o, c, j;
    for (o0 = 0; o0 < count; o0 += MCUFORGE_RQ_LANES) {
        const int32_t n = count - o0 < MCUFORGE_RQ_LANES ? count - o0 : MCUFORGE_RQ_LANES;
        const int8_t *wb = w + o0 * depth;
        const int32_t *bb = bias + o0;
        mcuforge_rq_block rq;
        mcuforge_rq_block_init(&rq, q, multiplier + o0, shift + o0, n);
        for (p = 0; p + 1 < pixels; p += 2) {
            const int8_t *x0 = cols + p * depth, *x1 = x0 + depth;
            int32_t acc[2][MCUFORGE_RQ_LANES];
            o = 0;
            if (quads > 0 && n >= 2) { /* the pairs of channels: SMLAD over 4 * quads values, then the rest */
                o = n / 2 * 2;
                mcuforge_pairs2x2_dsp(x0, wb, depth, quads, bb, acc[0], n / 2);
                for (c = 0; c < o && 4 * quads < depth; ++c)
                    for (j = 4 * quads; j < depth; ++j) {
                        acc[0][c] += x0[j] * wb[c * depth + j];
                        acc[1][c] += x1[j] * wb[c * depth + j];
                    }
            }
            for (; o < n; ++o) { /* depth < 4, or the last of an odd number of channels */
                int32_t s[4];
                s[0] = s[1] = s[2] = s[3] = bb[o];
                mcuforge_dot2x2_s8(x0, x1, wb + o * depth, wb + o * depth, depth, s);
                acc[0][o] = s[0], acc[1][o] = s[2];
            }
            mcuforge_rq_block_apply(&rq, acc[0], n, y + p * y_pixel + o0 * y_chan, y + (p + 1) * y_pixel + o0 * y_chan,
                                    y_chan, 2);
        }
        if (p < pixels) { /* the last of an odd number of columns: four channels per pass */
            int32_t acc[MCUFORGE_RQ_LANES];
            int8_t *y0 = y + p * y_pixel + o0 * y_chan;
            for (o = 0; o < n; o += 4) {
                const int8_t *b[4];
                int32_t s[4];
                for (j = 0; j < 4; ++j) {
                    const int32_t c = o + j < n ? o + j : n - 1;
                    b[j] = wb + c * depth;
                    s[j] = bb[c];
                }
                mcuforge_dot1x4_s8(cols + p * depth, b, depth, s);
                for (j = 0; j < 4 && o + j < n; ++j) acc[o + j] = s[j];
            }
            mcuforge_rq_block_apply(&rq, acc, n, y0, y0, y_chan, 1);
        }
    }
}
#endif

#if defined(MCUFORGE_USE_MVE)
/* clamp(mcuforge_mbqm(acc, m, shift) + zp, lo, hi) in four lanes, bit for bit: VQRDMULH is
 * mcuforge_srdhm (its one saturation, INT32_MIN * INT32_MIN, included) and VSHL's left shift
 * wraps as mcuforge_mbqm's; VRSHL by -right rounds ties upward, so negative values are made one
 * smaller first (the sign bit of v AND -right, which is negative when right > 0, shifted down;
 * saturating, INT32_MIN stays), which rounds their ties away from zero as mcuforge_rdbpot does. */
static inline int32x4_t mcuforge_rq_mve(int32x4_t acc, int32x4_t m, int32x4_t shift, int32_t zp, int32_t lo,
                                        int32_t hi) {
    const int32x4_t nright = vminq_s32(shift, vdupq_n_s32(0));
    int32x4_t v = vqrdmulhq_s32(vshlq_s32(acc, vmaxq_s32(shift, vdupq_n_s32(0))), m);
    v = vrshlq_s32(vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, nright), 31)), nright);
    return vminq_s32(vmaxq_s32(vaddq_n_s32(v, zp), vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

/* s[j] += a . b_j, j < 4, over n values: 16 per step, one VMLADAVA (a 16-lane dot product into a
 * scalar sum) per b_j and step; the last step's lanes past n are predicated off, loading zeros.
 * The whole steps in assembly (11 instructions): gcc computes every address anew, VLDRB having no
 * register offset; its sums in even registers ("Te"), as VMLADAVA requires. */
static inline void mcuforge_dot4_mve(const int8_t *a, const int8_t *b0, const int8_t *b1, const int8_t *b2,
                                     const int8_t *b3, int32_t n, int32_t *s) {
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], steps = n / 16;
    int8x16_t x, t;
    if (steps > 0)
        __asm__("1:\n\t"
                "vldrb.u8 %q[x], [%[a]], #16\n\t"
                "vldrb.u8 %q[t], [%[b0]], #16\n\t"
                "vmlava.s8 %[s0], %q[x], %q[t]\n\t"
                "vldrb.u8 %q[t], [%[b1]], #16\n\t"
                "vmlava.s8 %[s1], %q[x], %q[t]\n\t"
                "vldrb.u8 %q[t], [%[b2]], #16\n\t"
                "vmlava.s8 %[s2], %q[x], %q[t]\n\t"
                "vldrb.u8 %q[t], [%[b3]], #16\n\t"
                "vmlava.s8 %[s3], %q[x], %q[t]\n\t"
                "subs %[n], %[n], #1\n\t"
                "bne 1b"
                : [s0] "+Te"(s0), [s1] "+Te"(s1), [s2] "+Te"(s2), [s3] "+Te"(s3), [x] "=&w"(x), [t] "=&w"(t),
                  [a] "+r"(a), [b0] "+r"(b0), [b1] "+r"(b1), [b2] "+r"(b2), [b3] "+r"(b3), [n] "+r"(steps)
                :
                : "cc", "memory");
    if (n % 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(n % 16));
        x = vldrbq_z_s8(a, p);
        s0 = vmladavaq_s8(s0, x, vldrbq_z_s8(b0, p));
        s1 = vmladavaq_s8(s1, x, vldrbq_z_s8(b1, p));
        s2 = vmladavaq_s8(s2, x, vldrbq_z_s8(b2, p));
        s3 = vmladavaq_s8(s3, x, vldrbq_z_s8(b3, p));
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

/* mcuforge_gemm_s8 on Helium: per output channel, four columns at a time times its weights
 * (mcuforge_dot4_mve, the weights the shared operand), the four sums requantized as one vector
 * and stored one pixel apart (a scatter); the columns past the last multiple of four each times
 * four channels (the column shared, the last channel repeated past count, its lanes not stored). */
static inline void mcuforge_gemm_mve_s8(const int8_t *cols, int32_t pixels, const int8_t *w, int32_t depth,
                                        int32_t count, const int32_t *bias, const int32_t *multiplier,
                                        const int32_t *shift, const mcuforge_requant *q, int8_t *y, int32_t y_pixel,
                                        int32_t y_chan) {
    const uint32x4_t lanes = vidupq_n_u32(0, 1), at_pixel = vmulq_n_u32(lanes, (uint32_t)y_pixel);
    const uint32x4_t at_chan = vmulq_n_u32(lanes, (uint32_t)y_chan);
    const int32_t quads = pixels / 4 * 4, zp = q->out_zp, lo = q->act_min, hi = q->act_max; /* (y may alias q) */
    int32_t o, p, j;
    for (o = 0; o < count; ++o) {
        const int8_t *wo = w + o * depth;
        const int32x4_t m = vdupq_n_s32(multiplier[o]), sh = vdupq_n_s32(shift[o]);
        for (p = 0; p < quads; p += 4) {
            const int8_t *c = cols + p * depth;
            int32_t s[4];
            s[0] = s[1] = s[2] = s[3] = bias[o];
            mcuforge_dot4_mve(wo, c, c + depth, c + 2 * depth, c + 3 * depth, depth, s);
            vstrbq_scatter_offset_s32(y + p * y_pixel + o * y_chan, at_pixel,
                                      mcuforge_rq_mve(vldrwq_s32(s), m, sh, zp, lo, hi));
        }
    }
    for (p = quads; p < pixels; ++p)
        for (o = 0; o < count; o += 4) {
            const mve_pred16_t live = vctp32q((uint32_t)(count - o < 4 ? count - o : 4));
            const int8_t *b[4];
            int32_t s[4];
            for (j = 0; j < 4; ++j) {
                const int32_t c = o + j < count ? o + j : count - 1;
                b[j] = w + c * depth;
                s[j] = bias[c];
            }
            mcuforge_dot4_mve(cols + p * depth, b[0], b[1], b[2], b[3], depth, s);
            vstrbq_scatter_offset_p_s32(y + p * y_pixel + o * y_chan, at_chan,
                                        mcuforge_rq_mve(vldrwq_s32(s), vldrwq_z_s32(multiplier + o, live),
                                                        vldrwq_z_s32(shift + o, live), zp, lo, hi),
                                        live);
        }
}
#endif

#define MCUFORGE_GEMM_TILE 16 /* columns widened and requantized together */

/* y[p * y_pixel + o * y_chan] for `pixels` columns of `depth` values (contiguous) and `count`
 * output channels (weights [count][depth], bias holding the input zero point's share): blocks of
 * 2 columns x 2 channels, requantized MCUFORGE_RQ_LANES channels at a time (with the DSP
 * extension: mcuforge_gemm_dsp_s8; with MVE: mcuforge_gemm_mve_s8) */
static inline void mcuforge_gemm_s8(const int8_t *cols, int32_t pixels, const int8_t *w, int32_t depth, int32_t count,
                                    const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                                    const mcuforge_requant *q, int8_t *y, int32_t y_pixel, int32_t y_chan) {
#if defined(MCUFORGE_USE_MVE)
    mcuforge_gemm_mve_s8(cols, pixels, w, depth, count, bias, multiplier, shift, q, y, y_pixel, y_chan);
#elif defined(MCUFORGE_USE_DSP)
    mcuforge_gemm_dsp_s8(cols, pixels, w, depth, count, bias, multiplier, shift, q, y, y_pixel, y_chan);
#else
    int32_t p0, p, o, o0, i;
#if defined(MCUFORGE_WIDE_COLUMNS)
    /* Widened columns padded with zeros to a multiple of 16 values, so that every dot product
     * runs whole vectors: past the end of a channel's weights they read the next channel's, times
     * zero, and the last 4 channels (which have no next) are read from a zero-padded copy. C99
     * variable-length arrays: at most 16 KB of columns (2 columns of more than 4096 values above). */
    const int32_t stride = (depth + 15) / 16 * 16, fit = 8192 / stride < 2 ? 2 : 8192 / stride;
    const int32_t tile_max = fit < MCUFORGE_GEMM_TILE ? fit : MCUFORGE_GEMM_TILE, len = stride;
    const int32_t last = count > 4 ? count - 4 : 0;
    int16_t a[tile_max * stride];
    int8_t tail[4 * stride];
    for (o = last; o < count; ++o) {
        memcpy(tail + (o - last) * stride, w + o * depth, (size_t)depth);
        memset(tail + (o - last) * stride + depth, 0, (size_t)(stride - depth));
    }
#define MCUFORGE_ROW(c) ((c) >= last ? tail + ((c) - last) * stride : w + (c) * depth)
#else
    const int32_t stride = depth, tile_max = MCUFORGE_GEMM_TILE, len = depth;
#define MCUFORGE_ROW(c) (w + (c) * depth)
#endif
    for (p0 = 0; p0 < pixels; p0 += tile_max) {
        const int32_t tile = pixels - p0 < tile_max ? pixels - p0 : tile_max;
#if defined(MCUFORGE_WIDE_COLUMNS)
        for (p = 0; p < tile; ++p) {
            const int8_t *src = cols + (p0 + p) * depth;
            int16_t *dst = a + p * stride;
            for (i = 0; i + 16 <= depth; i += 16) { /* fixed trip counts vectorize */
                int32_t j;
                for (j = 0; j < 16; ++j) dst[i + j] = src[i + j];
            }
            for (; i < depth; ++i) dst[i] = src[i];
            for (; i < stride; ++i) dst[i] = 0;
        }
#else
        const mcuforge_col *a = cols + p0 * depth;
#endif
        for (o0 = 0; o0 < count; o0 += MCUFORGE_RQ_LANES) {
            const int32_t n = count - o0 < MCUFORGE_RQ_LANES ? count - o0 : MCUFORGE_RQ_LANES;
            mcuforge_rq_lanes rq;
            mcuforge_rq_lanes_init(&rq, q, multiplier + o0, shift + o0, n);
            for (p = 0; p < tile; p += 2) {
                const int32_t two = p + 1 < tile;
                int32_t acc[2][MCUFORGE_RQ_LANES] = {{0}};
                int8_t out[MCUFORGE_RQ_LANES];
                for (o = 0; !two && o < n; o += 4) { /* one column: four channels per pass instead */
                    const int8_t *b[4];
                    int32_t s[4], j;
                    for (j = 0; j < 4; ++j) {
                        const int32_t c = o0 + (o + j < n ? o + j : n - 1);
                        b[j] = MCUFORGE_ROW(c);
                        s[j] = bias[c];
                    }
                    mcuforge_dot1x4_s8(a + p * stride, b, len, s);
                    for (j = 0; j < 4 && o + j < n; ++j) acc[0][o + j] = s[j];
                }
                for (o = 0; two && o < n; o += 2) {
                    const int32_t c = o0 + o, c1 = o + 1 < n ? c + 1 : c;
                    int32_t s[4];
                    s[0] = s[2] = bias[c], s[1] = s[3] = bias[c1];
                    mcuforge_dot2x2_s8(a + p * stride, a + (p + two) * stride, MCUFORGE_ROW(c), MCUFORGE_ROW(c1), len,
                                       s);
                    acc[0][o] = s[0], acc[0][o + 1] = s[1], acc[1][o] = s[2], acc[1][o + 1] = s[3];
                }
                for (i = 0; i <= two; ++i) {
                    int8_t *dst = y + (p0 + p + i) * y_pixel + o0 * y_chan;
                    mcuforge_rq_lanes_apply(&rq, acc[i], out);
                    if (y_chan == 1 && n == MCUFORGE_RQ_LANES)
                        memcpy(dst, out, MCUFORGE_RQ_LANES); /* a constant size: a move, not a call */
                    else
                        for (o = 0; o < n; ++o) dst[o * y_chan] = out[o];
                }
            }
        }
    }
#undef MCUFORGE_ROW
#endif
}

/* ---- the bodies of the integer kernels that int8 and int16 share: pool_s8.c / pool_s16.c and
 * eltwise_s8.c / eltwise_s16.c instantiate them for their element type ---- */

/* mcuforge_avg_pool_<suffix> over integers T (sat: saturating conversion to T): the mean of the
 * taps inside the input (int32 sums: exact below 2^16 taps), rounded half away from zero. */
#define MCUFORGE_DEFINE_AVG_POOL(T, suffix, sat)                                                   \
    void mcuforge_avg_pool_##suffix(const mcuforge_pool *p, const T *x, T *y, int32_t act_min,      \
                                    int32_t act_max) {                                              \
        int32_t xs[4], ys[4], n, oy, ox, c, iy, ix;                                                 \
        MCUFORGE_IO_STRIDES(p, p->c, p->c, xs, ys);                                                 \
        MCUFORGE_FOR_PIXELS(p, n, oy, ox) {                                                         \
            const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;  \
            const int32_t ya = y0 > 0 ? y0 : 0, xa = x0 > 0 ? x0 : 0;                               \
            const int32_t yb = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;                       \
            const int32_t xb = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;                       \
            const int32_t count = (yb - ya) * (xb - xa);                                            \
            for (c = 0; c < p->c; ++c) {                                                            \
                int32_t sum = 0, avg;                                                               \
                for (iy = ya; iy < yb; ++iy)                                                        \
                    for (ix = xa; ix < xb; ++ix) sum += x[n * xs[0] + iy * xs[1] + ix * xs[2] + c * xs[3]]; \
                avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;              \
                y[n * ys[0] + oy * ys[1] + ox * ys[2] + c * ys[3]] = sat(avg, act_min, act_max);    \
            }                                                                                       \
        }                                                                                           \
    }

/* mcuforge_mean_<suffix> over integers T: the multiplier includes 1 / r (int32 sums: exact for
 * r < 2^15); the requantized sum plus out_zp is computed as `wide` and saturated to [lo, hi]. */
#define MCUFORGE_DEFINE_MEAN(T, suffix, wide, sat, lo, hi)                                         \
    void mcuforge_mean_##suffix(const T *x, T *y, int32_t outer, int32_t r, int32_t inner, int32_t in_zp, \
                                int32_t out_zp, int32_t multiplier, int32_t shift) {               \
        int32_t o, k, i;                                                                            \
        for (o = 0; o < outer; ++o, x += r * inner, y += inner)                                     \
            for (i = 0; i < inner; ++i) {                                                           \
                int32_t sum = -in_zp * r;                                                           \
                for (k = 0; k < r; ++k) sum += x[k * inner + i];                                    \
                y[i] = sat((wide)mcuforge_mbqm(sum, multiplier, shift) + out_zp, lo, hi);           \
            }                                                                                       \
    }

/* TFLite's integer ADD / SUB and MUL of one pair of elements (int32 values a, b) into `out`,
 * saturated by `sat` (mcuforge_sat8 / mcuforge_sat16). Statements for MCUFORGE_DEFINE_QBINARY's
 * loop rather than inline functions: gcc compiles them to the code of a hand-written loop (as
 * inline functions, to one more instruction per int8 element on a Cortex-M4). */
#define MCUFORGE_QADD(q, a, b, sat, out)                                                           \
    do {                                                                                           \
        const int32_t va_ = mcuforge_mbqm(((a) - (q)->a_zp) * (1 << (q)->left_shift), (q)->a_multiplier, \
                                          (q)->a_shift);                                           \
        const int32_t vb_ = mcuforge_mbqm(((b) - (q)->b_zp) * (1 << (q)->left_shift), (q)->b_multiplier, \
                                          (q)->b_shift);                                           \
        const int32_t sum_ = (q)->subtract ? va_ - vb_ : va_ + vb_;                               \
        (out) = sat(mcuforge_mbqm(sum_, (q)->multiplier, (q)->shift) + (q)->out_zp, (q)->act_min, \
                    (q)->act_max);                                                                 \
    } while (0)
#define MCUFORGE_QMUL(q, a, b, sat, out)                                                           \
    (out) = sat(mcuforge_mbqm(((a) - (q)->a_zp) * ((b) - (q)->b_zp), (q)->multiplier, (q)->shift) + \
                (q)->out_zp, (q)->act_min, (q)->act_max)

/* mcuforge_<op>_<suffix>: the broadcasting binary kernel of OP (MCUFORGE_QADD / MCUFORGE_QMUL)
 * over elements T, saturated by `sat`. */
#define MCUFORGE_DEFINE_QBINARY(op, suffix, T, OP, sat)                                            \
    void mcuforge_##op##_##suffix(const mcuforge_bcast *p, const mcuforge_qadd *q, const T *a, const T *b, \
                                  T *y) {                                                          \
        const int32_t last = p->rank - 1, n = p->shape[last], sa = p->a_stride[last];             \
        const int32_t sb = p->b_stride[last];                                                      \
        int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row, i;                             \
        for (row = 0; row < p->outer; ++row, y += n) {                                             \
            const T *ar = a + off[0], *br = b + off[1];                                            \
            for (i = 0; i < n; ++i) OP(q, ar[i * sa], br[i * sb], sat, y[i]);                     \
            mcuforge_bcast_next(p, idx, off);                                                      \
        }                                                                                          \
    }

/* ---- helpers of the element-wise and pooling kernels (eltwise_s8.c, pool_s8.c) ---- */

#if defined(__ARM_FEATURE_SAT) && !defined(MCUFORGE_USE_DSP)
#include <arm_acle.h>
#endif

/* v saturated to int8 (SSAT where the core has it: gcc does not make one of the compares) */
static inline int32_t mcuforge_ssat8(int32_t v) {
#if defined(__ARM_FEATURE_SAT)
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : v > 127 ? 127 : v;
#endif
}

#endif /* MCUFORGE_INT8_H */
