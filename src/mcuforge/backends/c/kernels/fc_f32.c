/* float32 fully connected layer and batched matrix product. */
#include "mcuforge.h"

void mcuforge_linear_f32(const float *x, const float *w, const float *bias, float *y, int32_t rows, int32_t depth,
                         int32_t out, float act_min, float act_max) {
    int32_t r, o, i;
    for (r = 0; r < rows; ++r)
        for (o = 0; o < out; ++o) {
            const float *xr = x + r * depth, *wo = w + o * depth;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (i = 0; i + 4 <= depth; i += 4) {
                s0 += xr[i] * wo[i];
                s1 += xr[i + 1] * wo[i + 1];
                s2 += xr[i + 2] * wo[i + 2];
                s3 += xr[i + 3] * wo[i + 3];
            }
            for (; i < depth; ++i) s0 += xr[i] * wo[i];
            y[r * out + o] = mcuforge_clampf((bias ? bias[o] : 0.0f) + ((s0 + s1) + (s2 + s3)), act_min, act_max);
        }
}

void mcuforge_matmul_f32(const mcuforge_matmul *p, const float *a, const float *b, float *y) {
    int32_t t, i, j, k;
    for (t = 0; t < p->batch; ++t) {
        const float *at = a + t * p->a_batch_stride, *bt = b + t * p->b_batch_stride;
        float *yt = y + t * p->m * p->n;
        for (i = 0; i < p->m; ++i) {
            for (j = 0; j < p->n; ++j) yt[i * p->n + j] = 0.0f;
            for (k = 0; k < p->k; ++k) {
                const float av = at[i * p->k + k];
                for (j = 0; j < p->n; ++j) yt[i * p->n + j] += av * bt[k * p->n + j];
            }
        }
    }
}
