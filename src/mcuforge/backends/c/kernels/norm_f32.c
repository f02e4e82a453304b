/* float32 softmax / log-softmax along one axis and layer normalization over the trailing axes. */
#include <math.h>

#include "mcuforge.h"

void mcuforge_softmax_f32(const float *x, float *y, int32_t outer, int32_t n, int32_t inner, int32_t log) {
    int32_t o, i, k;
    for (o = 0; o < outer; ++o, x += n * inner, y += n * inner)
        for (i = 0; i < inner; ++i) {
            float m = x[i], sum = 0.0f;
            for (k = 1; k < n; ++k) m = x[k * inner + i] > m ? x[k * inner + i] : m;
            for (k = 0; k < n; ++k) sum += expf(x[k * inner + i] - m);
            for (k = 0; k < n; ++k)
                y[k * inner + i] = log ? x[k * inner + i] - m - logf(sum) : expf(x[k * inner + i] - m) / sum;
        }
}

void mcuforge_layer_norm_f32(const float *x, const float *scale, const float *bias, float *y, int32_t outer,
                             int32_t n, float eps) {
    int32_t o, k;
    for (o = 0; o < outer; ++o, x += n, y += n) {
        float mean = 0.0f, var = 0.0f, inv;
        for (k = 0; k < n; ++k) mean += x[k];
        mean /= (float)n;
        for (k = 0; k < n; ++k) var += (x[k] - mean) * (x[k] - mean);
        inv = 1.0f / sqrtf(var / (float)n + eps);
        for (k = 0; k < n; ++k) y[k] = (x[k] - mean) * inv * (scale ? scale[k] : 1.0f) + (bias ? bias[k] : 0.0f);
    }
}
