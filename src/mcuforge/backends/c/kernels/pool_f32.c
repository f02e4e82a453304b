/* float32 pooling and mean. Windows that reach past the input (padding, ceil mode) skip the
 * taps outside it; average pooling divides as torch does (see mcuforge_avg_pool_f32). Max
 * pooling is the one of every element type (MCUFORGE_DEFINE_MAX_POOL, mcuforge.h). */
#include <math.h>

#include "mcuforge.h"

MCUFORGE_DEFINE_MAX_POOL(float, f32, -INFINITY)

/* Number of window positions torch divides by along one axis: the window clipped to the padded
 * input, or to the input itself when padding is not counted. */
static int32_t divisor(int32_t start, int32_t k, int32_t size, int32_t pad_end, int32_t count_pad) {
    int32_t end = start + k < size + pad_end ? start + k : size + pad_end;
    if (!count_pad) {
        start = start > 0 ? start : 0;
        end = end < size ? end : size;
    }
    return end - start;
}

void mcuforge_avg_pool_f32(const mcuforge_pool *p, const float *x, float *y) {
    int32_t xs[4], ys[4], n, oy, ox, c, iy, ix;
    MCUFORGE_IO_STRIDES(p, p->c, p->c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
        const int32_t y1 = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
        const int32_t x1 = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;
        const float count = (float)(divisor(y0, p->k_h, p->in_h, p->pad_bottom, p->count_include_pad) *
                                    divisor(x0, p->k_w, p->in_w, p->pad_right, p->count_include_pad));
        for (c = 0; c < p->c; ++c) {
            float sum = 0.0f;
            for (iy = y0 > 0 ? y0 : 0; iy < y1; ++iy)
                for (ix = x0 > 0 ? x0 : 0; ix < x1; ++ix) sum += x[n * xs[0] + iy * xs[1] + ix * xs[2] + c * xs[3]];
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + c * ys[3]] = sum / count;
        }
    }
}

void mcuforge_adaptive_avg_pool_f32(const mcuforge_pool *p, const float *x, float *y) {
    /* torch's bins: output j averages inputs floor(j * in / out) .. ceil((j + 1) * in / out) - 1 */
    int32_t xs[4], ys[4], n, oy, ox, c, iy, ix;
    MCUFORGE_IO_STRIDES(p, p->c, p->c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        const int32_t y0 = oy * p->in_h / p->out_h, y1 = ((oy + 1) * p->in_h + p->out_h - 1) / p->out_h;
        const int32_t x0 = ox * p->in_w / p->out_w, x1 = ((ox + 1) * p->in_w + p->out_w - 1) / p->out_w;
        for (c = 0; c < p->c; ++c) {
            float sum = 0.0f;
            for (iy = y0; iy < y1; ++iy)
                for (ix = x0; ix < x1; ++ix) sum += x[n * xs[0] + iy * xs[1] + ix * xs[2] + c * xs[3]];
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + c * ys[3]] = sum / (float)((y1 - y0) * (x1 - x0));
        }
    }
}

void mcuforge_mean_f32(const float *x, float *y, int32_t outer, int32_t r, int32_t inner) {
    int32_t o, k, i;
    for (o = 0; o < outer; ++o, x += r * inner, y += inner) {
        for (i = 0; i < inner; ++i) y[i] = 0.0f;
        for (k = 0; k < r; ++k)
            for (i = 0; i < inner; ++i) y[i] += x[k * inner + i];
        for (i = 0; i < inner; ++i) y[i] /= (float)r;
    }
}

void mcuforge_reduce_f32(int32_t op, const float *x, float *y, int32_t outer, int32_t r, int32_t inner) {
    int32_t o, k, i;
    for (o = 0; o < outer; ++o, x += r * inner, y += inner) {
        for (i = 0; i < inner; ++i) y[i] = op == MCUFORGE_REDUCE_SUM ? 0.0f : x[i];
        for (k = op == MCUFORGE_REDUCE_SUM ? 0 : 1; k < r; ++k)
            for (i = 0; i < inner; ++i) {
                const float v = x[k * inner + i];
                y[i] = op == MCUFORGE_REDUCE_SUM ? y[i] + v : op == MCUFORGE_REDUCE_MAX ? fmaxf(y[i], v) : fminf(y[i], v);
            }
    }
}
