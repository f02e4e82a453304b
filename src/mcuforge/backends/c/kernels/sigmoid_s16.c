/* int16 logistic and tanh (TFLite's int16 LOGISTIC and TANH; output scale 1/32768, zero point 0):
 * the input brought to steps of 1/12288 by an integer multiplier and a right shift rounding half
 * up, its magnitude interpolated linearly in the table of sigmoid(i / 24) in Q0.16 that the
 * compiler passes (ir/quant.py's SIGMOID_TABLE), the result mirrored for negative inputs.
 * tanh(x) = 2 sigmoid(2x) - 1 reads the table with 8 fraction bits per entry instead of 9. Both
 * may run in place. */
#include "mcuforge_int16.h"

/* |v| in the table with `bits` fraction bits per entry -> Q0.16 << bits; from entry 255 on, `top` */
static uint32_t interpolate(const int32_t *table, int32_t v, int32_t bits, uint32_t top) {
    const uint32_t a = (uint32_t)(v < 0 ? -v : v), i = a >> bits;
    if (i >= 255) return top;
    return ((uint32_t)table[i] << bits) + (a & ((1u << bits) - 1)) * (uint32_t)(table[i + 1] - table[i]);
}

/* both functions: the input in steps of 1/12288, its magnitude interpolated, the result mirrored
 * for negative inputs (a static callee with a constant `is_tanh`: compilers specialize it) */
static void sigmoid_or_tanh(const int16_t *x, int16_t *y, int32_t n, const int32_t *table, int32_t multiplier,
                            int32_t shift, int32_t is_tanh) {
    const int32_t round = shift > 0 ? 1 << (shift - 1) : 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t v = (x[i] * multiplier + round) >> shift;
        if (is_tanh) {
            const int32_t t = (int32_t)interpolate(table, v, 8, 0xFFFFu << 8);
            y[i] = (int16_t)((v >= 0 ? t - (1 << 23) + (1 << 7) : (1 << 23) - t + (1 << 7) - 1) >> 8);
        } else {
            const uint32_t t = interpolate(table, v, 9, 0x7FFFu << 10);
            y[i] = (int16_t)((v >= 0 ? t + (1u << 9) : (1u << 25) - t + (1u << 9) - 1) >> 10);
        }
    }
}

void mcuforge_logistic_s16(const int16_t *x, int16_t *y, int32_t n, const int32_t *table, int32_t multiplier,
                           int32_t shift) {
    sigmoid_or_tanh(x, y, n, table, multiplier, shift, 0);
}

void mcuforge_tanh_s16(const int16_t *x, int16_t *y, int32_t n, const int32_t *table, int32_t multiplier,
                       int32_t shift) {
    sigmoid_or_tanh(x, y, n, table, multiplier, shift, 1);
}
