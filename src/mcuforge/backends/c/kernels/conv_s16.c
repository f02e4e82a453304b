/* int16 x int8 convolutions (TFLite's int16x8 CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV):
 * direct loops over the taps inside the input (padding reads as the input zero point, i.e. adds
 * nothing), exact 64-bit sums built from int32 partial sums, no scratch. Weight layouts as the
 * int8 kernels' (mcuforge.h). */
#include "mcuforge_int16.h"

void mcuforge_conv2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x, const int8_t *w,
                         const int64_t *bias, const int32_t *multiplier, const int32_t *shift, int16_t *y) {
    /* Each output pixel, four channels of a group at a time (mcuforge_dot1x4_s16). The taps of a
     * kernel row inside the input are one run of values when nothing lies between them (channels
     * last, one group, no dilation): one dot product per row instead of one per tap. */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, k = p->k_h * p->k_w * cg, dw = p->dil_w;
    int32_t xs[4], ys[4], n, oy, ox, g, o, ky, kx, j;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        const int32_t merge = xs[3] == 1 && xs[2] == cg && dw == 1, ix0 = ox * p->stride_w - p->pad_left;
        const int32_t kx0 = ix0 < 0 ? (dw - 1 - ix0) / dw : 0, kx_end = (p->in_w - ix0 + dw - 1) / dw;
        const int32_t kx1 = kx_end < p->k_w ? kx_end : p->k_w, len = merge ? (kx1 - kx0) * cg : cg;
        int16_t *out = y + n * ys[0] + oy * ys[1] + ox * ys[2];
        for (g = 0; g < p->groups; ++g)
            for (o = g * og; o < (g + 1) * og; o += 4) {
                const int16_t *group = x + n * xs[0] + g * cg * xs[3];
                const int8_t *b[4];
                int64_t acc[4];
                for (j = 0; j < 4; ++j) { /* past the group's last channel: the last again, not stored */
                    const int32_t c = o + j < (g + 1) * og ? o + j : (g + 1) * og - 1;
                    b[j] = w + c * k;
                    acc[j] = bias ? bias[c] : 0;
                }
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (kx = kx0; kx < kx1; kx += merge ? p->k_w : 1) {
                        const int8_t *wr[4];
                        for (j = 0; j < 4; ++j) wr[j] = b[j] + (ky * p->k_w + kx) * cg;
                        mcuforge_dot1x4_s16(group + iy * xs[1] + (ix0 + kx * dw) * xs[2], xs[3], wr, len, q->in_zp,
                                            acc);
                    }
                }
                for (j = 0; j < 4 && o + j < (g + 1) * og; ++j)
                    out[(o + j) * ys[3]] = mcuforge_requant_s16(acc[j], q, multiplier[o + j], shift[o + j]);
            }
    }
}

void mcuforge_dwconv2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x, const int8_t *w,
                           const int64_t *bias, const int32_t *multiplier, const int32_t *shift, int16_t *y) {
    /* Each output pixel, four channels per pass over its taps, in int32 sums: kernels of at most
     * 128 taps, each product below 2^23 in magnitude (|x - zp| < 2^16). Other kernels, a channel
     * multiplier other than 1 or fewer than four channels: one channel at a time, in 64 bits. */
    const int32_t mult = p->out_c / p->in_c, dw = p->dil_w, zp = q->in_zp;
    const int32_t quad = mult == 1 && p->out_c >= 4 && p->k_h * p->k_w <= 128;
    int32_t xs[4], ys[4], n, oy, ox, o, c, ky, kx, iy, ix;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left, cs = xs[3], step = dw * xs[2];
        const int32_t kx0 = ix0 < 0 ? (dw - 1 - ix0) / dw : 0, kx_end = (p->in_w - ix0 + dw - 1) / dw;
        const int32_t kx1 = kx_end < p->k_w ? kx_end : p->k_w;
        int16_t *out = y + n * ys[0] + oy * ys[1] + ox * ys[2];
        for (o = 0; quad && o < p->out_c; o += 4) {
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, j;
            c = o + 4 <= p->out_c ? o : p->out_c - 4; /* the last pass: the last four channels */
            for (ky = 0; ky < p->k_h; ++ky) {
                const int16_t *px;
                const int8_t *wk = w + (ky * p->k_w + kx0) * p->out_c + c;
                iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                if (iy < 0 || iy >= p->in_h) continue;
                px = x + n * xs[0] + iy * xs[1] + (ix0 + kx0 * dw) * xs[2] + c * cs;
                for (kx = kx0; kx < kx1; ++kx, px += step, wk += p->out_c) {
                    s0 += (px[0] - zp) * wk[0], s1 += (px[cs] - zp) * wk[1];
                    s2 += (px[2 * cs] - zp) * wk[2], s3 += (px[3 * cs] - zp) * wk[3];
                }
            }
            for (j = 0; j < 4; ++j) {
                const int32_t s = j == 0 ? s0 : j == 1 ? s1 : j == 2 ? s2 : s3;
                out[(c + j) * ys[3]] = mcuforge_requant_s16((bias ? bias[c + j] : 0) + s, q, multiplier[c + j],
                                                            shift[c + j]);
            }
        }
        for (o = 0; !quad && o < p->out_c; ++o) {
            int64_t acc = bias ? bias[o] : 0;
            MCUFORGE_FOR_TAPS(p, oy, ox, ky, kx, iy, ix) {
                acc += (int64_t)(x[n * xs[0] + iy * xs[1] + ix * xs[2] + (o / mult) * xs[3]] - zp) *
                       w[(ky * p->k_w + kx) * p->out_c + o];
            }
            out[o * ys[3]] = mcuforge_requant_s16(acc, q, multiplier[o], shift[o]);
        }
    }
}

void mcuforge_conv_transpose2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x,
                                   const int8_t *w, const int64_t *bias, const int32_t *multiplier,
                                   const int32_t *shift, int16_t *y) {
    /* each output gathers the inputs iy with iy * stride - pad + ky * dil == oy (likewise x) */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups;
    int32_t xs[4], ys[4], n, oy, ox, o, ky, kx, c;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (o = 0; o < p->out_c; ++o) {
            const int32_t g = o / og;
            int64_t acc = bias ? bias[o] : 0;
            for (ky = 0; ky < p->k_h; ++ky) {
                const int32_t ty = oy + p->pad_top - ky * p->dil_h, iy = ty / p->stride_h;
                if (ty < 0 || ty % p->stride_h || iy >= p->in_h) continue;
                for (kx = 0; kx < p->k_w; ++kx) {
                    const int32_t tx = ox + p->pad_left - kx * p->dil_w, ix = tx / p->stride_w;
                    const int16_t *px = x + n * xs[0] + iy * xs[1] + ix * xs[2];
                    if (tx < 0 || tx % p->stride_w || ix >= p->in_w) continue;
                    for (c = g * cg; c < (g + 1) * cg; ++c)
                        acc += (int64_t)(px[c * xs[3]] - q->in_zp) *
                               w[((c * p->k_h + ky) * p->k_w + kx) * og + o - g * og];
                }
            }
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] =
                mcuforge_requant_s16(acc, q, multiplier[o], shift[o]);
        }
}
