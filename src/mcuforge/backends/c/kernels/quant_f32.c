/* quantize (float32 -> integer) and dequantize (integer -> float32), per tensor or per channel
 * over [outer][c][inner]; rounding as the reference interpreter: float32 x / scale, rounded half
 * away from zero, plus the zero point, saturated. */
#include <math.h>

#include "mcuforge.h"

void mcuforge_quantize_f32(const float *x, void *y, int32_t type, int32_t outer, int32_t c, int32_t inner,
                           const float *scale, const int32_t *zero_point) {
    static const int32_t lo[] = {-128, 0, -32768, INT32_MIN}, hi[] = {127, 255, 32767, INT32_MAX};
    int32_t o, k, i, j = 0;
    for (o = 0; o < outer; ++o)
        for (k = 0; k < c; ++k)
            for (i = 0; i < inner; ++i, ++j) {
                const float v = x[j] / scale[k];
                float r = floorf(fabsf(v) + 0.5f);
                double q;
                r = v < 0.0f ? -r : r;
                q = (double)r + zero_point[k];
                q = q < lo[type] ? lo[type] : q > hi[type] ? hi[type] : q;
                mcuforge_store_int(y, type, j, (int32_t)q);
            }
}

void mcuforge_dequantize_f32(const void *x, int32_t type, float *y, int32_t outer, int32_t c, int32_t inner,
                             const float *scale, const int32_t *zero_point) {
    int32_t o, k, i, j = 0;
    for (o = 0; o < outer; ++o)
        for (k = 0; k < c; ++k)
            for (i = 0; i < inner; ++i, ++j)
                y[j] = (float)((int64_t)mcuforge_load_int(x, type, j) - zero_point[k]) * scale[k];
}
