/* int16 x int8 fully connected layer (TFLite's int16x8 FULLY_CONNECTED): 64-bit sums, four
 * outputs per pass over a row. */
#include "mcuforge_int16.h"

void mcuforge_linear_s16(const mcuforge_requant *q, const int16_t *x, const int8_t *w, const int64_t *bias,
                         const int32_t *multiplier, const int32_t *shift, int16_t *y, int32_t rows, int32_t depth,
                         int32_t out) {
    int32_t r, o, j;
    for (r = 0; r < rows; ++r, x += depth, y += out)
        for (o = 0; o < out; o += 4) {
            const int8_t *b[4];
            int64_t acc[4];
            for (j = 0; j < 4; ++j) { /* past the last output: the last again, not stored */
                const int32_t c = o + j < out ? o + j : out - 1;
                b[j] = w + c * depth;
                acc[j] = bias ? bias[c] : 0;
            }
            mcuforge_dot1x4_s16(x, 1, b, depth, q->in_zp, acc);
            for (j = 0; j < 4 && o + j < out; ++j)
                y[o + j] = mcuforge_requant_s16(acc[j], q, multiplier[o + j], shift[o + j]);
        }
}
