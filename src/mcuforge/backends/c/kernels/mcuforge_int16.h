/* The arithmetic of TFLite's int16x8 kernels (int16 activations, int8 weights, int64 bias),
 * matching mcuforge's reference interpreter (ir/interpreter.py, ir/quant.py) bit for bit: conv
 * and fully connected sums in 64 bits, requantized by the 64-bit MultiplyByQuantizedMultiplier;
 * the other ops use the int32 fixed-point steps of mcuforge_int8.h on int16 values.
 */
#ifndef MCUFORGE_INT16_H
#define MCUFORGE_INT16_H

#include "mcuforge_int8.h"

/* TFLite's int64 MultiplyByQuantizedMultiplier: acc * multiplier * 2^(shift - 31) with the
 * multiplier rounded to Q15 and one rounding, half up */
static inline int64_t mcuforge_mbqm64(int64_t acc, int32_t multiplier, int32_t shift) {
    const int64_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total = 15 - shift;
    return (acc * reduced + (INT64_C(1) << (total - 1))) >> total;
}

static inline int16_t mcuforge_sat16(int64_t v, int32_t lo, int32_t hi) {
    return (int16_t)(v < lo ? lo : v > hi ? hi : v);
}

/* the int16 output of a conv / fully connected sum */
static inline int16_t mcuforge_requant_s16(int64_t acc, const mcuforge_requant *q, int32_t multiplier,
                                           int32_t shift) {
    return mcuforge_sat16(mcuforge_mbqm64(acc, multiplier, shift) + q->out_zp, q->act_min, q->act_max);
}

/* sum of (x[i * stride] - zp) * w[i] over n taps, exact: int32 partial sums of 128 products
 * (each below 2^23 in magnitude) added up in 64 bits */
static inline int64_t mcuforge_dot_s16(const int16_t *x, int32_t stride, const int8_t *w, int32_t n, int32_t zp) {
    int64_t acc = 0;
    while (n > 0) {
        const int32_t m = n < 128 ? n : 128;
        int32_t part = 0, i;
        if (stride == 1)
            for (i = 0; i < m; ++i) part += (x[i] - zp) * w[i];
        else
            for (i = 0; i < m; ++i) part += (x[i * stride] - zp) * w[i];
        acc += part;
        x += m * stride;
        w += m;
        n -= m;
    }
    return acc;
}

#endif /* MCUFORGE_INT16_H */
