/* The fixed-point arithmetic of TFLite's int8 kernels (tensorflow/lite/kernels/internal/common.h,
 * gemmlowp's fixedpoint.h), written to match mcuforge's reference interpreter (ir/quant.py) bit
 * for bit, and the int8 dot products of the conv / fully connected hot loops (two output channels
 * per pass over an im2col column).
 *
 * Build with -DMCUFORGE_USE_DSP on a Cortex-M with the DSP extension (M4, M7, M33, M55) to
 * compute the dot products with SMLAD (two 16-bit multiply-accumulates per instruction); the
 * results are identical, integer sums being exact. Without it, the loops take the shape that
 * compilers vectorize (hosts) or that reads each column byte once (other Cortex-M).
 */
#ifndef MCUFORGE_INT8_H
#define MCUFORGE_INT8_H

#include <string.h>

#include "mcuforge.h"

#if defined(MCUFORGE_USE_DSP)
#include <arm_acle.h>
#endif

/* round(a * b / 2^31), ties away from zero; INT32_MIN * INT32_MIN saturates (SQRDMULH) */
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

static inline int8_t mcuforge_sat8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* a . b over n int8 pairs, exact in int32 */
static inline int32_t mcuforge_dot_s8(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0, i = 0;
    for (; i + 16 <= n; i += 16) { /* a fixed trip count: compilers vectorize this at -O2 */
        int32_t j, part = 0;
        for (j = 0; j < 16; ++j) part += (int32_t)a[i + j] * (int32_t)b[i + j];
        acc += part;
    }
    for (; i < n; ++i) acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}

/* acc0 += a . b0 and acc1 += a . b1: two output channels of one im2col column */
static inline void mcuforge_dot2_s8(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n, int32_t *acc0,
                                    int32_t *acc1) {
#if defined(MCUFORGE_USE_DSP)
    int32_t s0 = *acc0, s1 = *acc1, i = 0;
    for (; i + 4 <= n; i += 4) { /* the column's 4 bytes are unpacked once for both channels */
        uint32_t va, v0, v1, a02, a13;
        memcpy(&va, a + i, 4); /* unaligned loads are single instructions on the M4 */
        memcpy(&v0, b0 + i, 4);
        memcpy(&v1, b1 + i, 4);
        a02 = __sxtb16(va); /* bytes 0 and 2, sign-extended to two 16-bit lanes */
        a13 = __sxtb16(va >> 8 | va << 24); /* bytes 1 and 3 */
        s0 = (int32_t)__smlad(a02, __sxtb16(v0), (uint32_t)s0);
        s0 = (int32_t)__smlad(a13, __sxtb16(v0 >> 8 | v0 << 24), (uint32_t)s0);
        s1 = (int32_t)__smlad(a02, __sxtb16(v1), (uint32_t)s1);
        s1 = (int32_t)__smlad(a13, __sxtb16(v1 >> 8 | v1 << 24), (uint32_t)s1);
    }
    *acc0 = s0 + mcuforge_dot_s8(a + i, b0 + i, n - i);
    *acc1 = s1 + mcuforge_dot_s8(a + i, b1 + i, n - i);
#elif defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
    int32_t s0 = *acc0, s1 = *acc1, i;
    for (i = 0; i < n; ++i) { /* no SIMD lanes to fill: read the column once for both channels */
        s0 += (int32_t)a[i] * (int32_t)b0[i];
        s1 += (int32_t)a[i] * (int32_t)b1[i];
    }
    *acc0 = s0;
    *acc1 = s1;
#else
    *acc0 += mcuforge_dot_s8(a, b0, n); /* two vectorized dot products beat one interleaved loop */
    *acc1 += mcuforge_dot_s8(a, b1, n);
#endif
}

/* y[o] for the `count` output channels of one column: dot products, bias, requantization */
static inline void mcuforge_gemv_s8(const int8_t *col, const int8_t *w, const int32_t *bias, int32_t depth,
                                    int32_t count, const int32_t *multiplier, const int32_t *shift, int32_t out_zp,
                                    int32_t act_min, int32_t act_max, int8_t *y, int32_t y_stride) {
    int32_t o;
    for (o = 0; o < count; o += 2) {
        int32_t acc0 = bias[o], acc1 = o + 1 < count ? bias[o + 1] : 0;
        mcuforge_dot2_s8(col, w + o * depth, w + (o + 1 < count ? o + 1 : o) * depth, depth, &acc0, &acc1);
        y[o * y_stride] = mcuforge_sat8(mcuforge_mbqm(acc0, multiplier[o], shift[o]) + out_zp, act_min, act_max);
        if (o + 1 < count)
            y[(o + 1) * y_stride] =
                mcuforge_sat8(mcuforge_mbqm(acc1, multiplier[o + 1], shift[o + 1]) + out_zp, act_min, act_max);
    }
}

#endif /* MCUFORGE_INT8_H */
