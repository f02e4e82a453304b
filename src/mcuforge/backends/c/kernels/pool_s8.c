/* int8 pooling and mean (TFLite's int8 MAX_POOL_2D, AVERAGE_POOL_2D, MEAN). Pools keep the
 * input's scale and zero point; averages count the taps inside the input only. */
#include "mcuforge_int8.h"

void mcuforge_max_pool_s8(const mcuforge_pool *p, const int8_t *x, int8_t *y) {
    /* channels innermost: contiguous (and vectorized) runs when channels are last */
    int32_t xs[4], ys[4], n, oy, ox, c, ky, kx;
    mcuforge_strides(p->nhwc, p->in_h, p->in_w, p->c, xs);
    mcuforge_strides(p->nhwc, p->out_h, p->out_w, p->c, ys);
    for (n = 0; n < p->n; ++n)
        for (oy = 0; oy < p->out_h; ++oy)
            for (ox = 0; ox < p->out_w; ++ox) {
                int8_t *out = y + n * ys[0] + oy * ys[1] + ox * ys[2];
                for (c = 0; c < p->c; ++c) out[c * ys[3]] = -128;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                        const int8_t *px = x + n * xs[0] + iy * xs[1] + ix * xs[2];
                        if (ix < 0 || ix >= p->in_w) continue;
                        for (c = 0; c < p->c; ++c)
                            out[c * ys[3]] = px[c * xs[3]] > out[c * ys[3]] ? px[c * xs[3]] : out[c * ys[3]];
                    }
                }
            }
}

void mcuforge_avg_pool_s8(const mcuforge_pool *p, const int8_t *x, int8_t *y, int32_t act_min, int32_t act_max) {
    int32_t xs[4], ys[4], n, oy, ox, c, iy, ix;
    mcuforge_strides(p->nhwc, p->in_h, p->in_w, p->c, xs);
    mcuforge_strides(p->nhwc, p->out_h, p->out_w, p->c, ys);
    for (n = 0; n < p->n; ++n)
        for (oy = 0; oy < p->out_h; ++oy)
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
                const int32_t ya = y0 > 0 ? y0 : 0, xa = x0 > 0 ? x0 : 0;
                const int32_t yb = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
                const int32_t xb = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;
                const int32_t count = (yb - ya) * (xb - xa);
                for (c = 0; c < p->c; ++c) {
                    int32_t sum = 0, avg;
                    for (iy = ya; iy < yb; ++iy)
                        for (ix = xa; ix < xb; ++ix) sum += x[n * xs[0] + iy * xs[1] + ix * xs[2] + c * xs[3]];
                    /* rounded to nearest, ties away from zero */
                    avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    y[n * ys[0] + oy * ys[1] + ox * ys[2] + c * ys[3]] = mcuforge_sat8(avg, act_min, act_max);
                }
            }
}

void mcuforge_mean_s8(const int8_t *x, int8_t *y, int32_t outer, int32_t r, int32_t inner, int32_t in_zp,
                      int32_t out_zp, int32_t multiplier, int32_t shift) {
    /* the multiplier includes 1 / r */
    int32_t o, k, i;
    for (o = 0; o < outer; ++o, x += r * inner, y += inner)
        for (i = 0; i < inner; ++i) {
            int32_t sum = -in_zp * r;
            for (k = 0; k < r; ++k) sum += x[k * inner + i];
            y[i] = mcuforge_sat8(mcuforge_mbqm(sum, multiplier, shift) + out_zp, -128, 127);
        }
}
