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
                switch (type) {
                case MCUFORGE_I8: ((int8_t *)y)[j] = (int8_t)q; break;
                case MCUFORGE_U8: ((uint8_t *)y)[j] = (uint8_t)q; break;
                case MCUFORGE_I16: ((int16_t *)y)[j] = (int16_t)q; break;
                default: ((int32_t *)y)[j] = (int32_t)q; break;
                }
            }
}

void mcuforge_dequantize_f32(const void *x, int32_t type, float *y, int32_t outer, int32_t c, int32_t inner,
                             const float *scale, const int32_t *zero_point) {
    int32_t o, k, i, j = 0;
    for (o = 0; o < outer; ++o)
        for (k = 0; k < c; ++k)
            for (i = 0; i < inner; ++i, ++j) {
                int32_t v;
                switch (type) {
                case MCUFORGE_I8: v = ((const int8_t *)x)[j]; break;
                case MCUFORGE_U8: v = ((const uint8_t *)x)[j]; break;
                case MCUFORGE_I16: v = ((const int16_t *)x)[j]; break;
                default: v = ((const int32_t *)x)[j]; break;
                }
                y[j] = (float)((int64_t)v - zero_point[k]) * scale[k];
            }
}
