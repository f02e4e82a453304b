/* float32 convolutions: general (im2col one output row at a time, then dot products), 1x1,
 * depthwise and transposed. */
#include "mcuforge.h"

static float dot_f32(const float *a, const float *b, int32_t n) {
    /* four partial sums: independent chains the compiler can pipeline */
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* 1x1, stride 1, no padding, one group: a matrix product per image. */
static void conv1x1_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias, float *y,
                        float act_min, float act_max) {
    const int32_t pixels = p->in_h * p->in_w, cin = p->in_c, cout = p->out_c;
    int32_t n, i, o, c;
    for (n = 0; n < p->n; ++n) {
        const float *xn = x + n * pixels * cin;
        float *yn = y + n * pixels * cout;
        if (p->nhwc) {
            for (i = 0; i < pixels; ++i)
                for (o = 0; o < cout; ++o)
                    yn[i * cout + o] = mcuforge_clampf((bias ? bias[o] : 0.0f) + dot_f32(xn + i * cin, w + o * cin, cin),
                                                       act_min, act_max);
            continue;
        }
        for (o = 0; o < cout; ++o) { /* channels first: accumulate whole planes */
            float *yo = yn + o * pixels;
            for (i = 0; i < pixels; ++i) yo[i] = bias ? bias[o] : 0.0f;
            for (c = 0; c < cin; ++c) {
                const float wv = w[o * cin + c], *xc = xn + c * pixels;
                for (i = 0; i < pixels; ++i) yo[i] += wv * xc[i];
            }
            for (i = 0; i < pixels; ++i) yo[i] = mcuforge_clampf(yo[i], act_min, act_max);
        }
    }
}

void mcuforge_conv2d_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias, float *y,
                         float *scratch, float act_min, float act_max) {
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, k = p->k_h * p->k_w * cg;
    int32_t xs[4], ys[4], n, g, oy, ox, ky, kx, c, o;
    if (scratch == NULL) {
        conv1x1_f32(p, x, w, bias, y, act_min, act_max);
        return;
    }
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    for (n = 0; n < p->n; ++n)
        for (g = 0; g < p->groups; ++g)
            for (oy = 0; oy < p->out_h; ++oy) {
                /* scratch[ox][ky][kx][c]: the receptive field of each pixel of this output row */
                float *col = scratch;
                for (ox = 0; ox < p->out_w; ++ox)
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        for (kx = 0; kx < p->k_w; ++kx, col += cg) {
                            const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const float *px = x + n * xs[0] + g * cg * xs[3];
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                                for (c = 0; c < cg; ++c) col[c] = 0.0f;
                                continue;
                            }
                            px += iy * xs[1] + ix * xs[2];
                            for (c = 0; c < cg; ++c) col[c] = px[c * xs[3]];
                        }
                    }
                for (ox = 0; ox < p->out_w; ++ox)
                    for (o = g * og; o < (g + 1) * og; ++o) {
                        const float acc = (bias ? bias[o] : 0.0f) + dot_f32(scratch + ox * k, w + o * k, k);
                        y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] = mcuforge_clampf(acc, act_min, act_max);
                    }
            }
}

void mcuforge_dwconv2d_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias, float *y,
                           float act_min, float act_max) {
    const int32_t mult = p->out_c / p->in_c;
    int32_t xs[4], ys[4], n, oy, ox, ky, kx, iy, ix, o;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        float *out = y + n * ys[0] + oy * ys[1] + ox * ys[2];
        for (o = 0; o < p->out_c; ++o) out[o * ys[3]] = bias ? bias[o] : 0.0f;
        MCUFORGE_FOR_TAPS(p, oy, ox, ky, kx, iy, ix) {
            const float *px = x + n * xs[0] + iy * xs[1] + ix * xs[2], *wk = w + (ky * p->k_w + kx) * p->out_c;
            if (mult == 1)
                for (o = 0; o < p->out_c; ++o) out[o * ys[3]] += px[o * xs[3]] * wk[o];
            else
                for (o = 0; o < p->out_c; ++o) out[o * ys[3]] += px[(o / mult) * xs[3]] * wk[o];
        }
        for (o = 0; o < p->out_c; ++o) out[o * ys[3]] = mcuforge_clampf(out[o * ys[3]], act_min, act_max);
    }
}

void mcuforge_conv_transpose2d_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias,
                                   float *y, float act_min, float act_max) {
    /* scatter: every input pixel adds its contribution to the outputs its taps reach */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups;
    int32_t xs[4], ys[4], n, iy, ix, c, ky, kx, o, i;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    for (n = 0; n < p->n; ++n)
        for (i = 0; i < p->out_h * p->out_w * p->out_c; ++i) {
            const int32_t ox = (i / p->out_c) % p->out_w, oy = i / (p->out_c * p->out_w);
            o = i % p->out_c;
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] = bias ? bias[o] : 0.0f;
        }
    for (n = 0; n < p->n; ++n)
        for (iy = 0; iy < p->in_h; ++iy)
            for (ix = 0; ix < p->in_w; ++ix)
                for (c = 0; c < p->in_c; ++c) {
                    const float v = x[n * xs[0] + iy * xs[1] + ix * xs[2] + c * xs[3]];
                    const int32_t g = c / cg;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t oy = iy * p->stride_h - p->pad_top + ky * p->dil_h;
                        if (oy < 0 || oy >= p->out_h) continue;
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ox = ix * p->stride_w - p->pad_left + kx * p->dil_w;
                            const float *wk = w + ((c * p->k_h + ky) * p->k_w + kx) * og;
                            float *out;
                            if (ox < 0 || ox >= p->out_w) continue;
                            out = y + n * ys[0] + oy * ys[1] + ox * ys[2] + g * og * ys[3];
                            for (o = 0; o < og; ++o) out[o * ys[3]] += v * wk[o];
                        }
                    }
                }
    for (i = 0; i < p->n * p->out_h * p->out_w * p->out_c; ++i) y[i] = mcuforge_clampf(y[i], act_min, act_max);
}
