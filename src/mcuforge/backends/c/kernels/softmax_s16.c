/* int16 softmax along the last axis (TFLite's int16 SOFTMAX; output scale 1/32768, zero point 0):
 * each difference to the row maximum rescaled to steps of 10/65535 and looked up in a table of
 * exp on [-10, 0]; the sum of those exps normalized to [1, 2) with 15 fraction bits and its
 * reciprocal looked up in a table of 1 / (1 + x) on [0, 1]; each exp times it. The tables (513
 * entries: 9 index bits, 7 interpolated ones) come from the compiler (ir/quant.py's EXP_LUT16 and
 * RECIPROCAL_LUT16). The exps wait in y, so x and y must not overlap. */
#include "mcuforge_int16.h"

/* TFLite's int16 LUTLookup of v in [-32768, 32767] */
static int32_t lookup(int32_t v, const int16_t *table) {
    const int32_t i = 256 + (v >> 7);
    return table[i] + (((table[i + 1] - table[i]) * (v & 0x7F) + 64) >> 7);
}

void mcuforge_softmax_s16(const int16_t *x, int16_t *y, int32_t rows, int32_t n, const int16_t *exps,
                          const int16_t *reciprocals, int32_t multiplier, int32_t shift) {
    int32_t r, i;
    for (r = 0; r < rows; ++r, x += n, y += n) {
        int32_t max = -32768, sum = 0, headroom = 0, reciprocal, right;
        for (i = 0; i < n; ++i) max = x[i] > max ? x[i] : max;
        for (i = 0; i < n; ++i) {
            y[i] = (int16_t)lookup(mcuforge_sat16((int64_t)mcuforge_mbqm(x[i] - max, multiplier, shift) + 32767,
                                                  -32768, 32767), exps);
            sum += y[i];
        }
        while (!((uint32_t)sum << headroom & 0x80000000u)) ++headroom; /* leading zeros; sum > 0 */
        reciprocal = lookup(mcuforge_sat16(((((int64_t)sum << (headroom - 1)) + (1 << 13)) >> 14) - (1 << 15) - (1 << 16),
                                           -32768, 32767), reciprocals);
        right = 31 - headroom;
        for (i = 0; i < n; ++i)
            y[i] = mcuforge_sat16(((int64_t)y[i] * reciprocal + (INT64_C(1) << (right - 1))) >> right, 0, 32767);
    }
}
