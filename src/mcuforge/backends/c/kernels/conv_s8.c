/* int8 convolutions (TFLite's int8 CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV): int32 sums of
 * (x - in_zp) * w, plus the bias, requantized per output channel, plus out_zp, clamped. */
#include "mcuforge_int8.h"

static int8_t requant(int32_t acc, const mcuforge_requant *q, int32_t multiplier, int32_t shift) {
    return mcuforge_sat8(mcuforge_mbqm(acc, multiplier, shift) + q->out_zp, q->act_min, q->act_max);
}

void mcuforge_conv2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y,
                        int8_t *scratch) {
    /* Padding is read as in_zp (im2col fills it in), so every tap adds x * w - in_zp * w and
     * `bias` already holds the conv's bias minus in_zp * (sum of the channel's weights). */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, k = p->k_h * p->k_w * cg;
    int32_t xs[4], ys[4], n, g, oy, ox, ky, kx, c;
    mcuforge_strides(p->nhwc, p->in_h, p->in_w, p->in_c, xs);
    mcuforge_strides(p->nhwc, p->out_h, p->out_w, p->out_c, ys);
    for (n = 0; n < p->n; ++n)
        for (g = 0; g < p->groups; ++g)
            for (oy = 0; oy < p->out_h; ++oy) {
                const int8_t *cols = scratch;
                if (scratch == NULL) { /* 1x1, stride 1, unpadded, channels last: the pixels are the columns */
                    cols = x + n * xs[0] + oy * xs[1];
                } else {
                    int8_t *col = scratch;
                    for (ox = 0; ox < p->out_w; ++ox)
                        for (ky = 0; ky < p->k_h; ++ky) {
                            const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                            for (kx = 0; kx < p->k_w; ++kx, col += cg) {
                                const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                                const int8_t *px = x + n * xs[0] + g * cg * xs[3];
                                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                                    for (c = 0; c < cg; ++c) col[c] = (int8_t)q->in_zp;
                                    continue;
                                }
                                px += iy * xs[1] + ix * xs[2];
                                if (xs[3] == 1) memcpy(col, px, (size_t)cg);
                                else for (c = 0; c < cg; ++c) col[c] = px[c * xs[3]];
                            }
                        }
                }
                for (ox = 0; ox < p->out_w; ++ox)
                    mcuforge_gemv_s8(cols + ox * k, w + g * og * k, bias + g * og, k, og, multiplier + g * og,
                                     shift + g * og, q->out_zp, q->act_min, q->act_max,
                                     y + n * ys[0] + oy * ys[1] + ox * ys[2] + g * og * ys[3], ys[3]);
            }
}

#define DW_BLOCK 16 /* output channels accumulated together (int32 on the stack) */

/* acc[o] += (x[o] - zp) * w[o] for `count` channels: a fixed count for full blocks, so that
 * compilers vectorize it */
static inline void dw_tap(int32_t *acc, const int8_t *x, const int8_t *w, int32_t zp, int32_t count) {
    int32_t o;
    for (o = 0; o < count; ++o) acc[o] += (x[o] - zp) * w[o];
}

void mcuforge_dwconv2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                          const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y) {
    const int32_t mult = p->out_c / p->in_c;
    int32_t xs[4], ys[4], n, oy, ox, ky, kx, o, o0;
    mcuforge_strides(p->nhwc, p->in_h, p->in_w, p->in_c, xs);
    mcuforge_strides(p->nhwc, p->out_h, p->out_w, p->out_c, ys);
    for (n = 0; n < p->n; ++n)
        for (oy = 0; oy < p->out_h; ++oy)
            for (ox = 0; ox < p->out_w; ++ox)
                for (o0 = 0; o0 < p->out_c; o0 += DW_BLOCK) {
                    const int32_t count = p->out_c - o0 < DW_BLOCK ? p->out_c - o0 : DW_BLOCK;
                    int32_t acc[DW_BLOCK];
                    for (o = 0; o < count; ++o) acc[o] = bias ? bias[o0 + o] : 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int8_t *px, *wk = w + (ky * p->k_w + kx) * p->out_c + o0;
                            if (ix < 0 || ix >= p->in_w) continue;
                            px = x + n * xs[0] + iy * xs[1] + ix * xs[2];
                            if (mult == 1 && xs[3] == 1 && count == DW_BLOCK)
                                dw_tap(acc, px + o0, wk, q->in_zp, DW_BLOCK);
                            else if (mult == 1 && xs[3] == 1)
                                dw_tap(acc, px + o0, wk, q->in_zp, count);
                            else
                                for (o = 0; o < count; ++o) acc[o] += (px[((o0 + o) / mult) * xs[3]] - q->in_zp) * wk[o];
                        }
                    }
                    for (o = 0; o < count; ++o)
                        y[n * ys[0] + oy * ys[1] + ox * ys[2] + (o0 + o) * ys[3]] =
                            requant(acc[o], q, multiplier[o0 + o], shift[o0 + o]);
                }
}

void mcuforge_conv_transpose2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x,
                                  const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                  const int32_t *shift, int8_t *y, int32_t *scratch) {
    /* scratch[oy][ox][o] collects the int32 sums of one image, then is requantized */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, size = p->out_h * p->out_w * p->out_c;
    int32_t xs[4], ys[4], n, iy, ix, c, ky, kx, o, i;
    mcuforge_strides(p->nhwc, p->in_h, p->in_w, p->in_c, xs);
    mcuforge_strides(p->nhwc, p->out_h, p->out_w, p->out_c, ys);
    for (n = 0; n < p->n; ++n) {
        for (i = 0; i < size; ++i) scratch[i] = 0;
        for (iy = 0; iy < p->in_h; ++iy)
            for (ix = 0; ix < p->in_w; ++ix)
                for (c = 0; c < p->in_c; ++c) {
                    const int32_t v = x[n * xs[0] + iy * xs[1] + ix * xs[2] + c * xs[3]] - q->in_zp;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t oy = iy * p->stride_h - p->pad_top + ky * p->dil_h;
                        if (oy < 0 || oy >= p->out_h) continue;
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ox = ix * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int8_t *wk = w + ((c * p->k_h + ky) * p->k_w + kx) * og;
                            int32_t *acc;
                            if (ox < 0 || ox >= p->out_w) continue;
                            acc = scratch + (oy * p->out_w + ox) * p->out_c + (c / cg) * og;
                            for (o = 0; o < og; ++o) acc[o] += v * wk[o];
                        }
                    }
                }
        for (i = 0; i < size; ++i) {
            const int32_t ox = (i / p->out_c) % p->out_w, oy = i / (p->out_c * p->out_w);
            o = i % p->out_c;
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] =
                requant(scratch[i] + (bias ? bias[o] : 0), q, multiplier[o], shift[o]);
        }
    }
}
