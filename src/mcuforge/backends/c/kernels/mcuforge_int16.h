/* The arithmetic of TFLite's int16x8 kernels (int16 activations, int8 weights, int64 bias),
 * matching mcuforge's reference interpreter (ir/interpreter.py, ir/quant.py) bit for bit: conv
 * and fully connected sums in 64 bits, requantized by the 64-bit MultiplyByQuantizedMultiplier;
 * the other ops use the int32 fixed-point steps of mcuforge_int8.h on int16 values.
 */
#ifndef MCUFORGE_INT16_H
#define MCUFORGE_INT16_H

#include "mcuforge_int8.h"

/* TFLite's int64 MultiplyByQuantizedMultiplier: acc * multiplier * 2^(shift - 31) with the
 * multiplier rounded to Q15 and one rounding, half up: floor((p + 2^(t - 1)) / 2^t) for
 * p = acc * Q15 multiplier and t = 15 - shift, computed as floor((floor(p / 2^(t - 1)) + 1) / 2),
 * the same integer in fewer 64-bit steps */
static inline int64_t mcuforge_mbqm64(int64_t acc, int32_t multiplier, int32_t shift) {
    const int32_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    return ((acc * reduced >> (14 - shift)) + 1) >> 1;
}

static inline int16_t mcuforge_sat16(int64_t v, int32_t lo, int32_t hi) {
    return (int16_t)(v < lo ? lo : v > hi ? hi : v);
}

/* the int16 output of a conv / fully connected sum */
static inline int16_t mcuforge_requant_s16(int64_t acc, const mcuforge_requant *q, int32_t multiplier,
                                           int32_t shift) {
    return mcuforge_sat16(mcuforge_mbqm64(acc, multiplier, shift) + q->out_zp, q->act_min, q->act_max);
}

/* An int16 value times an int8 weight is at most 2^22 in magnitude, so int32 sums of
 * MCUFORGE_S16_RUN such products cannot overflow (2^30); longer sums add runs up in 64 bits. */
#define MCUFORGE_S16_RUN 256

/* acc[j] += the sum over i < n of (x[i * stride] - zp) * w[j][i], exactly: four output channels
 * per pass, each x loaded once for four multiply-accumulates, as sum x * w - zp * sum w. With
 * MCUFORGE_USE_DSP (mcuforge_int8.h), unit strides take SMLAD: two 16 x 16 products per
 * instruction, the int8 weights sign-extended in pairs (SXTB16) and x regrouped to match. */
static inline void mcuforge_dot1x4_s16(const int16_t *x, int32_t stride, const int8_t *const *w, int32_t n,
                                       int32_t zp, int64_t *acc) {
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int32_t i0, i;
    for (i0 = 0; i0 < n; i0 += MCUFORGE_S16_RUN) {
        const int32_t end = n - i0 < MCUFORGE_S16_RUN ? n : i0 + MCUFORGE_S16_RUN;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        i = i0;
#if defined(MCUFORGE_USE_DSP)
        for (; stride == 1 && i + 4 <= end; i += 4) {
            uint32_t a, b, xe, xo, v0, v1, v2, v3;
            memcpy(&a, x + i, 4); /* x[i], x[i + 1] (little-endian halves) */
            memcpy(&b, x + i + 2, 4);
            xe = (a & 0xFFFFu) | b << 16, xo = a >> 16 | (b & 0xFFFF0000u); /* x[i], x[i + 2]; x[i + 1], x[i + 3] */
            memcpy(&v0, w0 + i, 4);
            memcpy(&v1, w1 + i, 4);
            memcpy(&v2, w2 + i, 4);
            memcpy(&v3, w3 + i, 4);
            s0 = (int32_t)__smlad(xo, __sxtb16(v0 >> 8 | v0 << 24), __smlad(xe, __sxtb16(v0), (uint32_t)s0));
            s1 = (int32_t)__smlad(xo, __sxtb16(v1 >> 8 | v1 << 24), __smlad(xe, __sxtb16(v1), (uint32_t)s1));
            s2 = (int32_t)__smlad(xo, __sxtb16(v2 >> 8 | v2 << 24), __smlad(xe, __sxtb16(v2), (uint32_t)s2));
            s3 = (int32_t)__smlad(xo, __sxtb16(v3 >> 8 | v3 << 24), __smlad(xe, __sxtb16(v3), (uint32_t)s3));
        }
#elif defined(MCUFORGE_WIDE_COLUMNS)
        for (; stride == 1 && i + 16 <= end; i += 16) { /* a fixed trip count: compilers vectorize this at -O2 */
            int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, j;
            for (j = 0; j < 16; ++j) {
                const int32_t v = x[i + j];
                t0 += v * w0[i + j], t1 += v * w1[i + j], t2 += v * w2[i + j], t3 += v * w3[i + j];
            }
            s0 += t0, s1 += t1, s2 += t2, s3 += t3;
        }
#endif
        for (; i < end; ++i) {
            const int32_t v = x[i * stride];
            s0 += v * w0[i], s1 += v * w1[i], s2 += v * w2[i], s3 += v * w3[i];
        }
        acc[0] += s0, acc[1] += s1, acc[2] += s2, acc[3] += s3;
    }
    if (zp != 0) { /* not TFLite's int16 (symmetric), but other int16 tensors may have one */
        int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0; /* |sum w| < 2^31 for n < 2^24 */
        for (i = 0; i < n; ++i) t0 += w0[i], t1 += w1[i], t2 += w2[i], t3 += w3[i];
        acc[0] -= (int64_t)zp * t0, acc[1] -= (int64_t)zp * t1, acc[2] -= (int64_t)zp * t2, acc[3] -= (int64_t)zp * t3;
    }
}

#endif /* MCUFORGE_INT16_H */
