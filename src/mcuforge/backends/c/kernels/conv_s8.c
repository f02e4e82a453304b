/* int8 convolutions (TFLite's int8 CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV): int32 sums of
 * (x - in_zp) * w, plus the bias, requantized per output channel, plus out_zp, clamped. */
#include "mcuforge_int8.h"

void mcuforge_conv2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y,
                        int8_t *scratch) {
    /* Padding is read as in_zp (im2col fills it in), so every tap adds x * w - in_zp * w and
     * `bias` already holds the conv's bias minus in_zp * (sum of the channel's weights). One
     * output row at a time: its im2col columns times the group's weights, a GEMM. */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, k = p->k_h * p->k_w * cg;
    int32_t xs[4], ys[4], n, g, oy, ox, ky, kx, c;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    if (scratch == NULL) { /* 1x1, stride 1, unpadded, channels last: the pixels are the columns, one GEMM */
        mcuforge_gemm_s8(x, p->n * p->out_h * p->out_w, w, k, og, bias, multiplier, shift, q, y, p->out_c, 1);
        return;
    }
    for (n = 0; n < p->n; ++n)
        for (g = 0; g < p->groups; ++g)
            for (oy = 0; oy < p->out_h; ++oy) {
                int8_t *col = scratch;
                /* a row of taps inside the image is one run of bytes when nothing lies between pixels */
                const int32_t run = xs[3] == 1 && xs[2] == cg && p->dil_w == 1 ? p->k_w * cg : 0;
                for (ox = 0; ox < p->out_w; ++ox)
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        const int32_t ix0 = ox * p->stride_w - p->pad_left;
                        if (run && iy >= 0 && iy < p->in_h && ix0 >= 0 && ix0 + p->k_w <= p->in_w) {
                            memcpy(col, x + n * xs[0] + iy * xs[1] + ix0 * xs[2], (size_t)run);
                            col += run;
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx, col += cg) {
                            const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int8_t *px = x + n * xs[0] + g * cg * xs[3];
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                                memset(col, q->in_zp, (size_t)cg);
                                continue;
                            }
                            px += iy * xs[1] + ix * xs[2];
                            if (xs[3] == 1) memcpy(col, px, (size_t)cg);
                            else for (c = 0; c < cg; ++c) col[c] = px[c * xs[3]];
                        }
                    }
                mcuforge_gemm_s8(scratch, p->out_w, w + g * og * k, k, og, bias + g * og,
                                 multiplier + g * og, shift + g * og, q,
                                 y + n * ys[0] + oy * ys[1] + g * og * ys[3], ys[2], ys[3]);
            }
}

/* acc[o] += (x[o] - zp) * w[o] over a block of channels: a fixed count, so that compilers vectorize
 * it, and products that fit 16 bits (|x - zp| <= 255, |w| <= 128), so that they multiply 8 lanes at once */
static inline void dw_tap(int32_t *acc, const int8_t *x, const int8_t *w, int32_t zp) {
    int32_t o;
    for (o = 0; o < MCUFORGE_RQ_LANES; ++o) acc[o] += (int16_t)((int16_t)(x[o] - zp) * w[o]);
}

/* acc[o] += v * w[o] over a block of channels, |v| <= 255: as dw_tap, one input value (restrict:
 * the int8 weights could otherwise alias the sums, which stops vectorization) */
static inline void scatter_tap(int32_t *restrict acc, const int8_t *restrict w, int32_t v) {
    int32_t o;
    for (o = 0; o < MCUFORGE_RQ_LANES; ++o) acc[o] += (int16_t)((int16_t)v * w[o]);
}

void mcuforge_dwconv2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                          const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y) {
    /* Blocks of MCUFORGE_RQ_LANES output channels (int32 sums on the stack), each over every output pixel */
    const int32_t mult = p->out_c / p->in_c;
    int32_t xs[4], ys[4], n, oy, ox, ky, kx, o, o0;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    for (o0 = 0; o0 < p->out_c; o0 += MCUFORGE_RQ_LANES) {
        const int32_t count = p->out_c - o0 < MCUFORGE_RQ_LANES ? p->out_c - o0 : MCUFORGE_RQ_LANES;
        const int32_t fast = mult == 1 && xs[3] == 1 && count == MCUFORGE_RQ_LANES;
        mcuforge_rq_lanes rq;
        mcuforge_rq_lanes_init(&rq, q, multiplier + o0, shift + o0, count);
        for (n = 0; n < p->n; ++n)
            for (oy = 0; oy < p->out_h; ++oy)
                for (ox = 0; ox < p->out_w; ++ox) {
                    int32_t acc[MCUFORGE_RQ_LANES] = {0};
                    int8_t out[MCUFORGE_RQ_LANES], *dst = y + n * ys[0] + oy * ys[1] + ox * ys[2] + o0 * ys[3];
                    if (bias != NULL)
                        for (o = 0; o < count; ++o) acc[o] = bias[o0 + o];
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int8_t *px, *wk = w + (ky * p->k_w + kx) * p->out_c + o0;
                            if (ix < 0 || ix >= p->in_w) continue;
                            px = x + n * xs[0] + iy * xs[1] + ix * xs[2];
                            if (fast)
                                dw_tap(acc, px + o0, wk, q->in_zp);
                            else
                                for (o = 0; o < count; ++o) acc[o] += (px[((o0 + o) / mult) * xs[3]] - q->in_zp) * wk[o];
                        }
                    }
                    mcuforge_rq_lanes_apply(&rq, acc, out);
                    if (ys[3] == 1 && count == MCUFORGE_RQ_LANES)
                        memcpy(dst, out, MCUFORGE_RQ_LANES);
                    else
                        for (o = 0; o < count; ++o) dst[o * ys[3]] = out[o];
                }
    }
}

void mcuforge_conv_transpose2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x,
                                  const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                  const int32_t *shift, int8_t *y, int32_t *scratch) {
    /* scratch[oy][ox][o] collects the int32 sums of one image, then is requantized */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, size = p->out_h * p->out_w * p->out_c;
    int32_t xs[4], ys[4], n, iy, ix, c, ky, kx, o, o0, i;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
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
                            for (o = 0; o + MCUFORGE_RQ_LANES <= og; o += MCUFORGE_RQ_LANES)
                                scatter_tap(acc + o, wk + o, v);
                            for (; o < og; ++o) acc[o] += v * wk[o];
                        }
                    }
                }
        for (o0 = 0; o0 < p->out_c; o0 += MCUFORGE_RQ_LANES) {
            const int32_t count = p->out_c - o0 < MCUFORGE_RQ_LANES ? p->out_c - o0 : MCUFORGE_RQ_LANES;
            mcuforge_rq_lanes rq;
            mcuforge_rq_lanes_init(&rq, q, multiplier + o0, shift + o0, count);
            for (i = 0; i < p->out_h * p->out_w; ++i) {
                int32_t acc[MCUFORGE_RQ_LANES] = {0};
                int8_t out[MCUFORGE_RQ_LANES], *dst = y + n * ys[0] + (i / p->out_w) * ys[1] + (i % p->out_w) * ys[2];
                for (o = 0; o < count; ++o) acc[o] = scratch[i * p->out_c + o0 + o] + (bias ? bias[o0 + o] : 0);
                mcuforge_rq_lanes_apply(&rq, acc, out);
                for (o = 0; o < count; ++o) dst[(o0 + o) * ys[3]] = out[o];
            }
        }
    }
}
