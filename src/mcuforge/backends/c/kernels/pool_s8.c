/* int8 pooling and mean (TFLite's int8 MAX_POOL_2D, AVERAGE_POOL_2D, MEAN). Pools keep the
 * input's scale and zero point; averages count the taps inside the input only. The general bodies
 * are shared with the other element types (MCUFORGE_DEFINE_* of mcuforge.h and mcuforge_int8.h);
 * channels last (and mean's contiguous inner axis) take four channels a word: the sums of the
 * average pool and the mean in 16-bit halves of two words (up to 256 taps at a time), the max pool
 * (DSP build) four bytes at once. */
#include "mcuforge_int8.h"

static MCUFORGE_DEFINE_AVG_POOL(int8_t, s8_any, mcuforge_sat8)
static MCUFORGE_DEFINE_MEAN(int8_t, s8_any, int32_t, mcuforge_sat8, -128, 127)

#define TAPS 256 /* taps summed in 16-bit halves before they are added to the int32 sums */

/* s[0..3] += the sums of the four int8 channels at x over rows x cols taps (rows * cols <= TAPS),
 * row_step bytes from a row to the next, col_step from a tap to the next. With the DSP extension
 * SXTAB16 adds the even and the odd bytes into the signed 16-bit halves of two sums; else the
 * bytes made unsigned (x ^ 0x80: 128 more each), their even and odd bytes masked into the halves. */
static inline void sum4(const int8_t *x, int32_t rows, int32_t cols, int32_t row_step, int32_t col_step,
                        int32_t s[4]) {
    uint32_t even = 0, odd = 0, w, v;
    int32_t r, k;
#if defined(MCUFORGE_USE_DSP)
#define MCUFORGE_SUM4(w)                                   \
    __asm__("sxtab16 %[e], %[e], %[x]\n\t"                 \
            "sxtab16 %[o], %[o], %[x], ror #8"             \
            : [e] "+&r"(even), [o] "+&r"(odd)                \
            : [x] "r"(w))
#else
#define MCUFORGE_SUM4(w) ((w) ^= 0x80808080u, even += (w) & 0x00ff00ffu, odd += (w) >> 8 & 0x00ff00ffu)
#endif
    for (r = 0; r < rows; ++r, x += row_step) {
        const int8_t *px = x;
        for (k = cols; k >= 2; k -= 2, px += 2 * col_step) { /* two taps a step */
            memcpy(&w, px, 4);
            memcpy(&v, px + col_step, 4);
            MCUFORGE_SUM4(w);
            MCUFORGE_SUM4(v);
        }
        if (k) {
            memcpy(&w, px, 4);
            MCUFORGE_SUM4(w);
        }
    }
#undef MCUFORGE_SUM4
#if defined(MCUFORGE_USE_DSP)
    s[0] += (int16_t)even, s[1] += (int16_t)odd, s[2] += (int32_t)even >> 16, s[3] += (int32_t)odd >> 16;
#else
    r = 128 * rows * cols;
    s[0] += (int32_t)(even & 0xffffu) - r, s[1] += (int32_t)(odd & 0xffffu) - r;
    s[2] += (int32_t)(even >> 16) - r, s[3] += (int32_t)(odd >> 16) - r;
#endif
}

/* s[0..3] += four channels' sums over a window of rows x cols taps of any size, in blocks of TAPS
 * (rows one after the other in memory: one row) */
static inline void sum4_window(const int8_t *x, int32_t rows, int32_t cols, int32_t row_step, int32_t col_step,
                               int32_t s[4]) {
    int32_t kc, kr, r, k;
    if (row_step == cols * col_step) cols *= rows, rows = 1;
    kc = cols < TAPS ? cols : TAPS, kr = TAPS / kc;
    for (r = 0; r < rows; r += kr)
        for (k = 0; k < cols; k += kc)
            sum4(x + r * row_step + k * col_step, rows - r < kr ? rows - r : kr, cols - k < kc ? cols - k : kc,
                 row_step, col_step, s);
}

MCUFORGE_KERNEL(mcuforge_avg_pool_s8)(const mcuforge_pool *p, const int8_t *x, int8_t *y, int32_t act_min,
                                      int32_t act_max) {
    const int32_t c = p->c, row = p->in_w * c;
    int32_t n, oy, ox, c0, j, iy, ix;
    if (!p->nhwc || c < 4) {
        mcuforge_avg_pool_s8_any(p, x, y, act_min, act_max);
        return;
    }
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
        const int32_t ya = y0 > 0 ? y0 : 0, xa = x0 > 0 ? x0 : 0;
        const int32_t yb = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
        const int32_t xb = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;
        const int32_t count = (yb - ya) * (xb - xa);
        const int8_t *px = x + ((n * p->in_h + ya) * p->in_w + xa) * c;
        int8_t *out = y + ((n * p->out_h + oy) * p->out_w + ox) * c;
        for (c0 = 0; c0 < c; c0 += 4) {
            const int32_t lanes = c - c0 < 4 ? c - c0 : 4;
            int32_t s[4] = {0, 0, 0, 0};
            if (lanes == 4)
                sum4_window(px + c0, yb - ya, xb - xa, row, c, s);
            else /* the last channels of a count that is not a multiple of 4 */
                for (j = 0; j < lanes; ++j)
                    for (iy = 0; iy < yb - ya; ++iy)
                        for (ix = 0; ix < xb - xa; ++ix) s[j] += px[iy * row + ix * c + c0 + j];
            for (j = 0; j < lanes; ++j) {
                const int32_t avg = s[j] > 0 ? (s[j] + count / 2) / count : (s[j] - count / 2) / count;
                out[c0 + j] = mcuforge_sat8(avg, act_min, act_max);
            }
        }
    }
}

MCUFORGE_KERNEL(mcuforge_mean_s8)(const int8_t *x, int8_t *y, int32_t outer, int32_t r, int32_t inner, int32_t in_zp,
                                  int32_t out_zp, int32_t multiplier, int32_t shift) {
    int32_t o, i, j;
    if (inner < 4) {
        mcuforge_mean_s8_any(x, y, outer, r, inner, in_zp, out_zp, multiplier, shift);
        return;
    }
    for (o = 0; o < outer; ++o, x += r * inner, y += inner)
        for (i = 0; i < inner; i += 4) {
            const int32_t lanes = inner - i < 4 ? inner - i : 4;
            int32_t s[4] = {0, 0, 0, 0}, k;
            if (lanes == 4)
                sum4_window(x + i, r, 1, inner, 0, s);
            else
                for (j = 0; j < lanes; ++j)
                    for (k = 0; k < r; ++k) s[j] += x[k * inner + i + j];
            for (j = 0; j < lanes; ++j)
                y[i + j] = mcuforge_sat8(mcuforge_mbqm(s[j] - in_zp * r, multiplier, shift) + out_zp, -128, 127);
        }
}

static MCUFORGE_DEFINE_MAX_POOL(int8_t, s8_any, -128)

#if defined(MCUFORGE_USE_DSP)
/* channels last with the DSP extension: per tap the maxima of four channels at once (SSUB8 sets
 * the GE flags of the bytes where the input is at least the maximum, SEL takes those) */
MCUFORGE_KERNEL(mcuforge_max_pool_s8)(const mcuforge_pool *p, const int8_t *x, int8_t *y) {
    const int32_t c = p->c;
    int32_t n, oy, ox, ky, kx, c0;
    if (!p->nhwc || c < 4) {
        mcuforge_max_pool_s8_any(p, x, y);
        return;
    }
    MCUFORGE_FOR_PIXELS(p, n, oy, ox) {
        int8_t *out = y + ((n * p->out_h + oy) * p->out_w + ox) * c;
        for (c0 = 0; c0 < c; c0 += 4) {
            const int32_t at = c0 + 4 <= c ? c0 : c - 4; /* the last 4 channels: overlapping, the same maxima */
            uint32_t m = 0x80808080u, t;
            for (ky = 0; ky < p->k_h; ++ky) {
                const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                if (iy < 0 || iy >= p->in_h) continue;
                for (kx = 0; kx < p->k_w; ++kx) {
                    const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                    uint32_t w;
                    if (ix < 0 || ix >= p->in_w) continue;
                    memcpy(&w, x + ((n * p->in_h + iy) * p->in_w + ix) * c + at, 4);
                    __asm__("ssub8 %[t], %[w], %[m]\n\t"
                            "sel %[m], %[w], %[m]"
                            : [m] "+&r"(m), [t] "=&r"(t)
                            : [w] "r"(w)
                            : "cc");
                }
            }
            memcpy(out + at, &m, 4);
        }
    }
}
#else
MCUFORGE_KERNEL(mcuforge_max_pool_s8)(const mcuforge_pool *p, const int8_t *x, int8_t *y) {
    mcuforge_max_pool_s8_any(p, x, y);
}
#endif
