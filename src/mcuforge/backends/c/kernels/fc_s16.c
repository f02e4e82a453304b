/* int16 x int8 fully connected layer (TFLite's int16x8 FULLY_CONNECTED): 64-bit sums. */
#include "mcuforge_int16.h"

void mcuforge_linear_s16(const mcuforge_requant *q, const int16_t *x, const int8_t *w, const int64_t *bias,
                         const int32_t *multiplier, const int32_t *shift, int16_t *y, int32_t rows, int32_t depth,
                         int32_t out) {
    int32_t r, o;
    for (r = 0; r < rows; ++r, x += depth, y += out)
        for (o = 0; o < out; ++o)
            y[o] = mcuforge_requant_s16((bias ? bias[o] : 0) + mcuforge_dot_s16(x, 1, w + o * depth, depth, q->in_zp),
                                        q, multiplier[o], shift[o]);
}
