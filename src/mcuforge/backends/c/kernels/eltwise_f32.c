/* float32 elementwise ops: broadcasting binary ops, activations, per-channel affine. All may run
 * in place (y == a, y == b or y == x). */
#include <math.h>

#include "mcuforge.h"

void mcuforge_binary_f32(int32_t op, const mcuforge_bcast *p, const float *a, const float *b, float *y,
                         float act_min, float act_max) {
    const int32_t last = p->rank - 1, n = p->shape[last], sa = p->a_stride[last], sb = p->b_stride[last];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row, i;
    for (row = 0; row < p->outer; ++row, y += n) {
        const float *ar = a + off[0], *br = b + off[1];
        switch (op) {
        case MCUFORGE_ADD: for (i = 0; i < n; ++i) y[i] = ar[i * sa] + br[i * sb]; break;
        case MCUFORGE_SUB: for (i = 0; i < n; ++i) y[i] = ar[i * sa] - br[i * sb]; break;
        case MCUFORGE_MUL: for (i = 0; i < n; ++i) y[i] = ar[i * sa] * br[i * sb]; break;
        case MCUFORGE_PRELU:
            for (i = 0; i < n; ++i) y[i] = ar[i * sa] >= 0.0f ? ar[i * sa] : ar[i * sa] * br[i * sb];
            break;
        case MCUFORGE_MAXIMUM: for (i = 0; i < n; ++i) y[i] = fmaxf(ar[i * sa], br[i * sb]); break;
        case MCUFORGE_MINIMUM: for (i = 0; i < n; ++i) y[i] = fminf(ar[i * sa], br[i * sb]); break;
        case MCUFORGE_POW: for (i = 0; i < n; ++i) y[i] = powf(ar[i * sa], br[i * sb]); break;
        default: for (i = 0; i < n; ++i) y[i] = ar[i * sa] / br[i * sb]; break;
        }
        for (i = 0; i < n; ++i) y[i] = mcuforge_clampf(y[i], act_min, act_max);
        mcuforge_bcast_next(p, idx, off);
    }
}

static float sigmoidf(float v) {
    return 1.0f / (1.0f + expf(-v));
}

void mcuforge_unary_f32(int32_t op, const float *x, float *y, int32_t n, float alpha, float beta) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        float r;
        switch (op) {
        case MCUFORGE_RELU: r = v > 0.0f ? v : 0.0f; break;
        case MCUFORGE_RELU6: r = mcuforge_clampf(v, 0.0f, 6.0f); break;
        case MCUFORGE_CLAMP: r = mcuforge_clampf(v, alpha, beta); break;
        case MCUFORGE_LEAKY_RELU: r = v > 0.0f ? v : v * alpha; break;
        case MCUFORGE_SIGMOID: r = sigmoidf(v); break;
        case MCUFORGE_TANH: r = tanhf(v); break;
        case MCUFORGE_HARDSWISH: r = v * mcuforge_clampf(v + 3.0f, 0.0f, 6.0f) / 6.0f; break;
        case MCUFORGE_HARDSIGMOID: r = mcuforge_clampf(v + 3.0f, 0.0f, 6.0f) / 6.0f; break;
        case MCUFORGE_SILU: r = v * sigmoidf(v); break;
        case MCUFORGE_GELU: r = 0.5f * v * (1.0f + erff(v * 0.70710678f)); break;
        case MCUFORGE_ELU: r = v > 0.0f ? v : alpha * expm1f(v); break;
        case MCUFORGE_SOFTPLUS: r = (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v))); break;
        case MCUFORGE_EXP: r = expf(v); break;
        case MCUFORGE_LOG: r = logf(v); break;
        case MCUFORGE_SQRT: r = sqrtf(v); break;
        case MCUFORGE_ABS: r = fabsf(v); break;
        case MCUFORGE_SIGN: r = (float)((v > 0.0f) - (v < 0.0f)); break;
        case MCUFORGE_ERF: r = erff(v); break;
        default: /* MCUFORGE_GELU_TANH */
            r = 0.5f * v * (1.0f + tanhf(0.79788456f * (v + 0.044715f * v * v * v)));
            break;
        }
        y[i] = r;
    }
}

void mcuforge_affine_f32(const float *x, const float *scale, const float *shift, float *y, int32_t outer,
                         int32_t c, int32_t inner) {
    int32_t o, k, i;
    for (o = 0; o < outer; ++o)
        for (k = 0; k < c; ++k, x += inner, y += inner)
            for (i = 0; i < inner; ++i) y[i] = x[i] * scale[k] + shift[k];
}
