/* int16 x int8 convolutions (TFLite's int16x8 CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV):
 * direct loops over the taps inside the input (padding reads as the input zero point, i.e. adds
 * nothing), 64-bit sums, no scratch. Weight layouts as the int8 kernels' (mcuforge.h). */
#include "mcuforge_int16.h"

void mcuforge_conv2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x, const int8_t *w,
                         const int64_t *bias, const int32_t *multiplier, const int32_t *shift, int16_t *y) {
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups;
    int32_t xs[4], ys[4], n, oy, ox, o, ky, kx, iy, ix;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (o = 0; o < p->out_c; ++o) {
            const int16_t *group = x + n * xs[0] + (o / og) * cg * xs[3];
            int64_t acc = bias ? bias[o] : 0;
            MCUFORGE_FOR_TAPS(p, oy, ox, ky, kx, iy, ix) {
                acc += mcuforge_dot_s16(group + iy * xs[1] + ix * xs[2], xs[3],
                                        w + ((o * p->k_h + ky) * p->k_w + kx) * cg, cg, q->in_zp);
            }
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] =
                mcuforge_requant_s16(acc, q, multiplier[o], shift[o]);
        }
}

void mcuforge_dwconv2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x, const int8_t *w,
                           const int64_t *bias, const int32_t *multiplier, const int32_t *shift, int16_t *y) {
    const int32_t mult = p->out_c / p->in_c; /* output channel o reads input channel o / mult */
    int32_t xs[4], ys[4], n, oy, ox, o, ky, kx, iy, ix;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (o = 0; o < p->out_c; ++o) {
            int64_t acc = bias ? bias[o] : 0;
            MCUFORGE_FOR_TAPS(p, oy, ox, ky, kx, iy, ix) {
                acc += (int64_t)(x[n * xs[0] + iy * xs[1] + ix * xs[2] + (o / mult) * xs[3]] - q->in_zp) *
                       w[(ky * p->k_w + kx) * p->out_c + o];
            }
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] =
                mcuforge_requant_s16(acc, q, multiplier[o], shift[o]);
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
