/* int8 fully connected layer (TFLite's int8 FULLY_CONNECTED). */
#include "mcuforge_int8.h"

MCUFORGE_KERNEL(mcuforge_linear_s8)(const mcuforge_requant *q, const int8_t *x, const int8_t *w, const int32_t *bias,
                                    const int32_t *multiplier, const int32_t *shift, int8_t *y, int32_t rows,
                                    int32_t depth, int32_t out) {
    /* `bias` holds the layer's bias minus in_zp * (sum of the output's weights), so the sum of
     * (x - in_zp) * w is bias + x . w */
    mcuforge_gemm_s8(x, rows, w, depth, out, bias, multiplier, shift, q, y, out, 1);
}
