/* int8 convolutions (TFLite's int8 CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV): int32 sums of
 * (x - in_zp) * w, plus the bias, requantized per output channel, plus out_zp, clamped. */
#include "mcuforge_int8.h"

/* memcpy, without a library call for the few bytes of a small im2col row (first layers: one or
 * three input channels) */
static inline void copy_bytes(int8_t *to, const int8_t *from, int32_t n) {
    if (n > 8) {
        memcpy(to, from, (size_t)n);
        return;
    }
    for (; n >= 4; n -= 4, to += 4, from += 4) memcpy(to, from, 4);
    for (; n > 0; --n) *to++ = *from++;
}

MCUFORGE_KERNEL(mcuforge_conv2d_s8)(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x,
                                    const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                    const int32_t *shift, int8_t *y, int8_t *scratch) {
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
                            copy_bytes(col, x + n * xs[0] + iy * xs[1] + ix0 * xs[2], run);
                            col += run;
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx, col += cg) {
                            const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int8_t *px = x + n * xs[0] + g * cg * xs[3];
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                                if (cg == 1) *col = (int8_t)q->in_zp;
                                else memset(col, q->in_zp, (size_t)cg);
                                continue;
                            }
                            px += iy * xs[1] + ix * xs[2];
                            if (xs[3] == 1) copy_bytes(col, px, cg);
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

#if defined(MCUFORGE_USE_DSP) && !defined(MCUFORGE_USE_MVE)
/* s[c] += (x[c] - zp) * w[c], c = 0..3, for one tap of four channels: one word of inputs and one
 * of weights, each unpacked by two SXTB16-style instructions into the even (0, 2) and odd (1, 3)
 * channels as 16-bit pairs, the input offset added in the same instruction (SXTAB16 with
 * nzp = -zp in both halves), then one 16 x 16 multiply-accumulate per channel (SMLABB / SMLATT).
 * The rotates are written in assembly: gcc does not fold them into the unpacking. */
#define MCUFORGE_DW_TAP(s, x, w, nzp)                                                            \
    do {                                                                                         \
        uint32_t xv_, wv_, xe_, xo_, we_, wo_;                                                   \
        memcpy(&xv_, (x), 4); /* unaligned loads are single instructions on the M4 */            \
        memcpy(&wv_, (w), 4);                                                                    \
        __asm__("sxtab16 %[xe], %[z], %[xv]\n\t"                                                 \
                "sxtab16 %[xo], %[z], %[xv], ror #8\n\t"                                         \
                "sxtb16 %[we], %[wv]\n\t"                                                        \
                "sxtb16 %[wo], %[wv], ror #8"                                                    \
                : [xe] "=&r"(xe_), [xo] "=&r"(xo_), [we] "=&r"(we_), [wo] "=r"(wo_)              \
                : [z] "r"(nzp), [xv] "r"(xv_), [wv] "r"(wv_));                                   \
        s[0] = (int32_t)__smlabb(xe_, we_, s[0]);                                                \
        s[2] = (int32_t)__smlatt(xe_, we_, s[2]);                                                \
        s[1] = (int32_t)__smlabb(xo_, wo_, s[1]);                                                \
        s[3] = (int32_t)__smlatt(xo_, wo_, s[3]);                                                \
    } while (0)

/* acc[0..3] += the taps of a window's rows x taps for four channels: x and w at the first tap,
 * x_row / w_row bytes to the next row, step / c_all to the next tap of a row. Its own function,
 * so that its loop's values stay in registers, whatever its caller keeps live. */
static __attribute__((noinline)) void dw_window4_dsp(int32_t *acc, const int8_t *x, const int8_t *w, int32_t rows,
                                                     int32_t taps, int32_t x_row, int32_t w_row, int32_t step,
                                                     int32_t c_all, uint32_t nzp) {
    int32_t s[4], kx;
    s[0] = acc[0], s[1] = acc[1], s[2] = acc[2], s[3] = acc[3];
    for (; rows > 0; --rows, x += x_row, w += w_row) {
        const int8_t *xp = x, *wp = w;
        for (kx = 0; kx < taps; ++kx, xp += step, wp += c_all) MCUFORGE_DW_TAP(s, xp, wp, nzp);
    }
    acc[0] = s[0], acc[1] = s[1], acc[2] = s[2], acc[3] = s[3];
}
#undef MCUFORGE_DW_TAP

/* One output pixel of a 3 x 3 depthwise conv for `groups` groups of four channels, the sums and
 * their requantization in one assembly loop (a C loop spills the sums and pointers): per group
 * the starting sums (bias and the input offset's share of the window), 9 taps of 2 loads, 4
 * unpackings into the 16-bit halves of the even and odd channels and 4 multiply-accumulates,
 * then mcuforge_rq_block's multiply-add requantization (every channel fast, act_max 127) of the
 * 4 sums into 4 bytes at y. xs / ws: bytes between the taps of a row of inputs / weights; x_row
 * from an input row to the next (the weights' are 3 * ws apart). 14 registers: 4 sums, 4
 * temporaries, 6 pointers and strides; x_row, groups, start and act_min live on the stack. */
#define MCUFORGE_DW3_TAP(x_at, w_at)         \
    "ldr %[t0], [%[x]" x_at "]\n\t"          \
    "ldr %[t1], [%[w]" w_at "]\n\t"          \
    "sxtb16 %[t2], %[t0]\n\t"                \
    "sxtb16 %[t0], %[t0], ror #8\n\t"        \
    "sxtb16 %[t3], %[t1]\n\t"                \
    "sxtb16 %[t1], %[t1], ror #8\n\t"        \
    "smlabb %[s0], %[t2], %[t3], %[s0]\n\t"  \
    "smlatt %[s2], %[t2], %[t3], %[s2]\n\t"  \
    "smlabb %[s1], %[t0], %[t1], %[s1]\n\t"  \
    "smlatt %[s3], %[t0], %[t1], %[s3]\n\t"
#define MCUFORGE_DW3_ROW \
    MCUFORGE_DW3_TAP("", "") MCUFORGE_DW3_TAP(", %[xs]", ", %[ws]") MCUFORGE_DW3_TAP(", %[xs], lsl #1", ", %[ws], lsl #1")
#define MCUFORGE_DW3_NEXT_ROW             \
    "ldr %[t0], [sp]\n\t"                 \
    "add %[x], %[x], %[t0]\n\t"           \
    "add %[w], %[w], %[ws], lsl #1\n\t"   \
    "add %[w], %[w], %[ws]\n\t"
#define MCUFORGE_DW3_REQUANTIZE(s, clamp)         /* t0: m, t1: high, t2: right, t3: the low word */ \
    "ldr %[t2], [%[rc], #8]\n\t"                                                                   \
    "ldrd %[t0], %[t1], [%[rc]], #16\n\t"                                                          \
    "and %[t3], %[" s "], #0x80000000\n\t"                                                         \
    "orr %[t3], %[t3], #0x40000000\n\t"                                                            \
    "add %[t1], %[t1], %[" s "], asr #31\n\t"                                                      \
    "smlal %[t3], %[t1], %[" s "], %[t0]\n\t"                                                      \
    "asr %[t1], %[t1], %[t2]\n\t"                                                                  \
    "ssat %[t1], #8, %[t1]\n\t" clamp                                                              \
    "strb %[t1], [%[y]], #1\n\t"
#define MCUFORGE_DW3_ACT_MIN /* act_min > -128 (SSAT clamps to -128 itself) */ \
    "ldr %[t0], [sp, #12]\n\t"                                                 \
    "cmp %[t1], %[t0]\n\t"                                                     \
    "it lt\n\t"                                                                \
    "movlt %[t1], %[t0]\n\t"
#define MCUFORGE_DW3_PIXEL(clamp)                                                                                     \
    __asm__ volatile("str %[t3], [sp, #-4]!\n\t" /* [sp, #12]: act_min */                                             \
                     "str %[t2], [sp, #-4]!\n\t" /* [sp, #8]: the next group's starting sums */                       \
                     "str %[t1], [sp, #-4]!\n\t" /* [sp, #4]: groups left */                                          \
                     "str %[t0], [sp, #-4]!\n\t" /* [sp]: x_row */                                                    \
                     "1:\n\t"                                                                                         \
                     "ldr %[t0], [sp, #8]\n\t"                                                                        \
                     "ldrd %[s0], %[s1], [%[t0]]\n\t"                                                                 \
                     "ldrd %[s2], %[s3], [%[t0], #8]\n\t"                                                             \
                     "add %[t0], %[t0], #16\n\t"                                                                      \
                     "str %[t0], [sp, #8]\n\t" MCUFORGE_DW3_ROW MCUFORGE_DW3_NEXT_ROW MCUFORGE_DW3_ROW                \
                         MCUFORGE_DW3_NEXT_ROW MCUFORGE_DW3_ROW                                                       \
                     "ldr %[t0], [sp]\n\t" /* back to the window's first tap, four channels on */                     \
                     "sub %[x], %[x], %[t0], lsl #1\n\t"                                                              \
                     "add %[x], %[x], #4\n\t"                                                                         \
                     "sub %[w], %[w], %[ws], lsl #2\n\t"                                                              \
                     "sub %[w], %[w], %[ws], lsl #1\n\t"                                                              \
                     "add %[w], %[w], #4\n\t" MCUFORGE_DW3_REQUANTIZE("s0", clamp)                                    \
                         MCUFORGE_DW3_REQUANTIZE("s1", clamp) MCUFORGE_DW3_REQUANTIZE("s2", clamp)                    \
                             MCUFORGE_DW3_REQUANTIZE("s3", clamp)                                                     \
                     "ldr %[t0], [sp, #4]\n\t"                                                                        \
                     "subs %[t0], %[t0], #1\n\t"                                                                      \
                     "str %[t0], [sp, #4]\n\t"                                                                        \
                     "bne 1b\n\t"                                                                                     \
                     "add sp, sp, #16"                                                                                \
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [x] "+&r"(x), [w] "+&r"(w),     \
                       [rc] "+&r"(rc), [y] "+&r"(y), [t0] "+&r"(t0), [t1] "+&r"(t1), [t2] "+&r"(t2), [t3] "+&r"(t3)         \
                     : [xs] "r"(xs), [ws] "r"(ws)                                                                     \
                     : "cc", "memory")
static inline void dw3x3_pixel_dsp(const int8_t *x, const int8_t *w, int32_t xs, int32_t ws, int32_t x_row,
                                   const int32_t *start, const mcuforge_rq_chan *rc, int8_t *y, int32_t groups,
                                   int32_t act_min) {
    int32_t s0, s1, s2, s3;
    uintptr_t t0 = (uintptr_t)x_row, t1 = (uintptr_t)groups, t2 = (uintptr_t)start, t3 = (uintptr_t)act_min;
    /* volatile: it stores to y, which no operand says */
    if (act_min == -128)
        MCUFORGE_DW3_PIXEL("");
    else
        MCUFORGE_DW3_PIXEL(MCUFORGE_DW3_ACT_MIN);
}
#undef MCUFORGE_DW3_TAP
#undef MCUFORGE_DW3_ROW
#undef MCUFORGE_DW3_NEXT_ROW
#undef MCUFORGE_DW3_REQUANTIZE
#undef MCUFORGE_DW3_ACT_MIN
#undef MCUFORGE_DW3_PIXEL

/* Channels [o0, o0 + count) (count a multiple of 4) of a 3 x 3 depthwise conv whose channels all
 * take the fast requantization: dw3x3_pixel_dsp per output pixel from `start`, the sums of the
 * bias and the input offset's share of the window; a window over the image's edge is copied
 * first, with in_zp (`pad`) where it leaves the image. */
static void dw3x3_block_dsp(const mcuforge_conv *p, const int8_t *x, const int8_t *w, const int32_t *start,
                            const mcuforge_rq_block *rq, const uint32_t *pad, int32_t o0, int32_t count, int8_t *y) {
    const int32_t c_all = p->out_c, x_row = p->dil_h * p->in_w * c_all, groups = count / 4;
    int32_t n, oy, ox, t, c, tap_offset[9];
    for (t = 0; t < 9; ++t) tap_offset[t] = (t / 3) * x_row + (t % 3) * c_all;
    for (n = 0; n < p->n; ++n)
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            /* bit 3 * ky + kx: tap (ky, kx) lies inside the image; here its rows */
            const uint32_t row_bits = (iy0 >= 0 && iy0 < p->in_h ? 7u : 0u) |
                                      (iy0 + p->dil_h >= 0 && iy0 + p->dil_h < p->in_h ? 7u << 3 : 0u) |
                                      (iy0 + 2 * p->dil_h >= 0 && iy0 + 2 * p->dil_h < p->in_h ? 7u << 6 : 0u);
            const int8_t *line = x + (n * p->in_h + iy0) * p->in_w * c_all + o0; /* (only read inside the image) */
            int8_t *out = y + (n * p->out_h + oy) * p->out_w * c_all + o0;
            for (ox = 0; ox < p->out_w; ++ox, out += c_all) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                uint32_t window[9][MCUFORGE_RQ_LANES / 4], inside;
                if (row_bits == 0x1ffu && ix0 >= 0 && ix0 + 3 <= p->in_w) {
                    dw3x3_pixel_dsp(line + ix0 * c_all, w + o0, c_all, c_all, x_row, start, rq->c, out, groups, rq->lo);
                    continue;
                }
                inside = row_bits & ((ix0 >= 0 && ix0 < p->in_w ? 1u : 0u) | (ix0 >= -1 && ix0 + 1 < p->in_w ? 2u : 0u) |
                                     (ix0 >= -2 && ix0 + 2 < p->in_w ? 4u : 0u)) * 0x49u;
                if (count == MCUFORGE_RQ_LANES) { /* a constant size: a few word moves per tap */
#define MCUFORGE_DW3_EDGE(t) \
    memcpy(window[t], inside >> (t) & 1 ? line + ix0 * c_all + tap_offset[t] : (const int8_t *)pad, sizeof window[0]);
                    MCUFORGE_DW3_EDGE(0) MCUFORGE_DW3_EDGE(1) MCUFORGE_DW3_EDGE(2)
                    MCUFORGE_DW3_EDGE(3) MCUFORGE_DW3_EDGE(4) MCUFORGE_DW3_EDGE(5)
                    MCUFORGE_DW3_EDGE(6) MCUFORGE_DW3_EDGE(7) MCUFORGE_DW3_EDGE(8)
#undef MCUFORGE_DW3_EDGE
                } else {
                    for (t = 0; t < 9; ++t)
                        for (c = 0; c < count; c += 4)
                            memcpy((int8_t *)window[t] + c,
                                   (inside >> t & 1 ? line + ix0 * c_all + tap_offset[t] : (const int8_t *)pad) + c, 4);
                }
                dw3x3_pixel_dsp((const int8_t *)window, w + o0, sizeof window[0], c_all, 3 * sizeof window[0], start,
                                rq->c, out, groups, rq->lo);
            }
        }
}

/* The depthwise conv of channels-last int8 data with one output channel per input channel, on
 * the DSP extension, per block of MCUFORGE_RQ_LANES channels: 3 x 3 windows whose channels all
 * take the fast requantization in dw3x3_block_dsp; others four channels at a time over the taps
 * inside the image (dw_window4_dsp), the channels past the last multiple of four one by one,
 * then mcuforge_rq_block_apply. */
static void dwconv_dsp(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                       const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y) {
    const int32_t c_all = p->out_c, row = p->in_w * c_all, step = p->dil_w * c_all, w_row = p->k_w * c_all;
    const uint32_t nzp = (uint32_t)(uint16_t)(-q->in_zp) * 0x10001u, zp4 = (uint32_t)(uint8_t)q->in_zp * 0x01010101u;
    int32_t n, oy, ox, o0, c, ky, kx;
    for (o0 = 0; o0 < c_all; o0 += MCUFORGE_RQ_LANES) {
        const int32_t count = c_all - o0 < MCUFORGE_RQ_LANES ? c_all - o0 : MCUFORGE_RQ_LANES, quads = count / 4 * 4;
        int32_t start[MCUFORGE_RQ_LANES]; /* each pixel's first sums */
        uint32_t pad[MCUFORGE_RQ_LANES / 4]; /* what a 3 x 3 window reads outside the image */
        mcuforge_rq_block rq;
        mcuforge_rq_block_init(&rq, q, multiplier + o0, shift + o0, count);
        for (c = 0; c < count; ++c) start[c] = bias != NULL ? bias[o0 + c] : 0;
        if (p->k_h == 3 && p->k_w == 3 && p->dil_w == 1 && rq.fast && rq.hi == 127 && quads == count) {
            for (c = 0; c < MCUFORGE_RQ_LANES / 4; ++c) pad[c] = zp4;
            for (c = 0; c < count; ++c)
                for (ky = 0; ky < 9; ++ky) start[c] -= q->in_zp * w[ky * c_all + o0 + c];
            dw3x3_block_dsp(p, x, w, start, &rq, pad, o0, count, y);
            continue;
        }
        for (n = 0; n < p->n; ++n)
            for (oy = 0; oy < p->out_h; ++oy) {
                const int32_t iy0 = oy * p->stride_h - p->pad_top;
                /* the rows of the window inside the image: ky0 <= ky < ky0 + rows */
                const int32_t ky0 = iy0 >= 0 ? 0 : (-iy0 + p->dil_h - 1) / p->dil_h;
                const int32_t ky_end = (p->in_h - iy0 + p->dil_h - 1) / p->dil_h;
                const int32_t rows = (ky_end < p->k_h ? ky_end : p->k_h) - ky0;
                for (ox = 0; ox < p->out_w; ++ox) {
                    const int32_t ix0 = ox * p->stride_w - p->pad_left;
                    const int32_t kx0 = ix0 >= 0 ? 0 : (-ix0 + p->dil_w - 1) / p->dil_w;
                    const int32_t kx_end = (p->in_w - ix0 + p->dil_w - 1) / p->dil_w;
                    const int32_t taps = (kx_end < p->k_w ? kx_end : p->k_w) - kx0;
                    const int8_t *first = x + (n * p->in_h + iy0 + ky0 * p->dil_h) * row + (ix0 + kx0 * p->dil_w) * c_all + o0;
                    const int8_t *w_first = w + ky0 * w_row + kx0 * c_all + o0;
                    int32_t acc[MCUFORGE_RQ_LANES];
                    memcpy(acc, start, sizeof acc);
                    for (c = 0; c < quads && rows > 0 && taps > 0; c += 4)
                        dw_window4_dsp(acc + c, first + c, w_first + c, rows, taps, p->dil_h * row, w_row, step, c_all,
                                       nzp);
                    for (; c < count; ++c) { /* the channels past the last multiple of four */
                        const int8_t *xr = first + c, *wr = w_first + c;
                        for (ky = 0; ky < rows; ++ky, xr += p->dil_h * row, wr += w_row)
                            for (kx = 0; kx < taps; ++kx) acc[c] += (xr[kx * step] - q->in_zp) * wr[kx * c_all];
                    }
                    mcuforge_rq_block_apply(&rq, acc, count, y + ((n * p->out_h + oy) * p->out_w + ox) * c_all + o0,
                                            NULL, 1, 1);
                }
            }
    }
}
#elif defined(MCUFORGE_USE_MVE)
/* The constants of a block of 16 channels of dwconv_mve, which its assembly reads: per group of
 * four channels the bias, the multipliers, the shifts split into left (>= 0) and -right (<= 0)
 * (mcuforge_rq_mve's), the predicate (the channels inside the layer); and the window's shape. */
typedef struct {
    int32x4_t start[4], m[4], left[4], nright[4], lo, hi;
    uint32_t live[4];
    int32_t taps, x_skip, w_skip, zp, nzp, c_all, x_tap, x_step;
} mcuforge_dw16;
#define MCUFORGE_DW16_AT(field) [field] "i"(offsetof(mcuforge_dw16, field))

/* `pixels` consecutive output pixels of a row for a block of 16 channels (x_step input bytes
 * apart) in assembly, gcc spilling the vectors of C intrinsics here: the four groups' sums start
 * at the bias, then (x - zp) * w over the window's taps inside the image, the same `rows` rows of
 * `taps` taps for each (x and w at the first; x_skip, w_skip: from a row's end to the next), per
 * tap and group two loads that widen four bytes into int32 lanes, the offset added, VMUL and VADD
 * (MVE multiply-accumulates only by a scalar), 24 instructions a tap; then mcuforge_rq_mve's
 * requantization of each group and a store of its four bytes. `mode`: 0 when all 16 channels lie
 * in the layer, 2 when 8 do (only two groups run), else 1 (9 to 15) or 3 (1 to 7), each group's
 * loads and store predicated (VPT; the loads read 0 past the layer's channels). */
#define MCUFORGE_DW16_P0(g) "ldr %[p], [%[b], %[live] + 4 * " g "]\n\tvmsr p0, %[p]\n\t"
#define MCUFORGE_DW16_P0_2(g) MCUFORGE_DW16_P0(g) "vpstt\n\t"
#define MCUFORGE_DW16_P0_1(g) MCUFORGE_DW16_P0(g) "vpst\n\t"
#define MCUFORGE_DW16_TAP(a, g, pred, sfx)                 \
    pred(g) "vldrb" sfx ".s32 %q[t0], [%[xp], #4 * " g "]\n\t" \
    "vldrb" sfx ".s32 %q[t1], [%[w], #4 * " g "]\n\t"       \
    "vadd.i32 %q[t0], %q[t0], %[nzp]\n\t"                  \
    "vmul.i32 %q[t0], %q[t0], %q[t1]\n\t"                  \
    "vadd.i32 %q[" a "], %q[" a "], %q[t0]\n\t"
#define MCUFORGE_DW16_RQ(a, g, pred, sfx)                        \
    "vldrw.u32 %q[t0], [%[b], %[left] + 16 * " g "]\n\t"         \
    "vldrw.u32 %q[t1], [%[b], %[m] + 16 * " g "]\n\t"            \
    "vshl.s32 %q[" a "], %q[" a "], %q[t0]\n\t"                  \
    "vqrdmulh.s32 %q[" a "], %q[" a "], %q[t1]\n\t"              \
    "vldrw.u32 %q[t0], [%[b], %[nright] + 16 * " g "]\n\t"       \
    "vand %q[t1], %q[" a "], %q[t0]\n\t"                         \
    "vshr.s32 %q[t1], %q[t1], #31\n\t"                           \
    "vqadd.s32 %q[" a "], %q[" a "], %q[t1]\n\t"                 \
    "vrshl.s32 %q[" a "], %q[" a "], %q[t0]\n\t"                 \
    "ldr %[p], [%[b], %[zp]]\n\t"                                \
    "vadd.i32 %q[" a "], %q[" a "], %[p]\n\t"                    \
    "vldrw.u32 %q[t0], [%[b], %[lo]]\n\t"                        \
    "vmax.s32 %q[" a "], %q[" a "], %q[t0]\n\t"                  \
    "vldrw.u32 %q[t0], [%[b], %[hi]]\n\t"                        \
    "vmin.s32 %q[" a "], %q[" a "], %q[t0]\n\t" pred(g)          \
    "vstrb" sfx ".32 %q[" a "], [%[y], #4 * " g "]\n\t"
#define MCUFORGE_DW16_NONE(g) ""
/* the groups of a pixel: all four, or the first two (a block of 8 channels or fewer) */
#define MCUFORGE_DW16_GROUPS4(op, pred, sfx) op("a0", "0", pred, sfx) op("a1", "1", pred, sfx) \
    op("a2", "2", pred, sfx) op("a3", "3", pred, sfx)
#define MCUFORGE_DW16_GROUPS2(op, pred, sfx) op("a0", "0", pred, sfx) op("a1", "1", pred, sfx)
#define MCUFORGE_DW16_PIXEL(groups, pred2, pred1, sfx)                                                       \
    __asm__ volatile("vldrw.u32 %q[a0], [%[b]]\n\t"                                                                  \
                     "vldrw.u32 %q[a1], [%[b], #16]\n\t"                                                             \
                     "vldrw.u32 %q[a2], [%[b], #32]\n\t"                                                             \
                     "vldrw.u32 %q[a3], [%[b], #48]\n\t"                                                             \
                     "cmp %[rows], #0\n\t"                                                                           \
                     "beq 3f\n\t"                                                                                    \
                     "1:\n\t"                                                                                        \
                     "ldr %[t], [%[b], %[taps]]\n\t"                                                                 \
                     "2:\n\t" groups(MCUFORGE_DW16_TAP, pred2, sfx)                                                 \
                     "add %[xp], %[xp], %[x_tap]\n\t"                                                                \
                     "add %[w], %[w], %[c_all]\n\t"                                                                  \
                     "subs %[t], %[t], #1\n\t"                                                                       \
                     "bne 2b\n\t"                                                                                    \
                     "ldr %[p], [%[b], %[x_skip]]\n\t"                                                               \
                     "add %[xp], %[xp], %[p]\n\t"                                                                    \
                     "ldr %[p], [%[b], %[w_skip]]\n\t"                                                               \
                     "add %[w], %[w], %[p]\n\t"                                                                      \
                     "subs %[rows], %[rows], #1\n\t"                                                                 \
                     "bne 1b\n\t"                                                                                    \
                     "3:\n\t" groups(MCUFORGE_DW16_RQ, pred1, sfx)                                                  \
                     : [a0] "=&w"(a0), [a1] "=&w"(a1), [a2] "=&w"(a2), [a3] "=&w"(a3), [t0] "=&w"(t0),               \
                       [t1] "=&w"(t1), [xp] "+&l"(x), [w] "+&l"(w), [rows] "+&r"(rows), [t] "=&r"(t), [p] "=&r"(pred_)  \
                     : [x_tap] "r"(b->x_tap), [c_all] "r"(b->c_all), [nzp] "r"(b->nzp), [b] "r"(b), [y] "r"(y),     \
                       MCUFORGE_DW16_AT(taps), MCUFORGE_DW16_AT(x_skip), MCUFORGE_DW16_AT(w_skip),                   \
                       MCUFORGE_DW16_AT(m), MCUFORGE_DW16_AT(left), MCUFORGE_DW16_AT(nright), MCUFORGE_DW16_AT(lo),  \
                       MCUFORGE_DW16_AT(hi), MCUFORGE_DW16_AT(zp), MCUFORGE_DW16_AT(live)                            \
                     : "cc", "memory")
static __attribute__((noinline)) void dw_run16_mve(const mcuforge_dw16 *b, const int8_t *x0, const int8_t *w0,
                                                   int32_t rows0, int8_t *y, int32_t pixels, int32_t mode) {
    for (; pixels > 0; --pixels, x0 += b->x_step, y += b->c_all) {
        const int8_t *x = x0, *w = w0;
        int32_t rows = rows0;
        int32x4_t a0, a1, a2, a3, t0, t1;
        uint32_t t, pred_;
        /* predicated: each group's predicate moved into P0, then VPT blocks of its two loads and its store */
        if (mode == 0) /* 16 channels */
            MCUFORGE_DW16_PIXEL(MCUFORGE_DW16_GROUPS4, MCUFORGE_DW16_NONE, MCUFORGE_DW16_NONE, "");
        else if (mode == 1) /* 9 to 15 */
            MCUFORGE_DW16_PIXEL(MCUFORGE_DW16_GROUPS4, MCUFORGE_DW16_P0_2, MCUFORGE_DW16_P0_1, "t");
        else if (mode == 2) /* 8 */
            MCUFORGE_DW16_PIXEL(MCUFORGE_DW16_GROUPS2, MCUFORGE_DW16_NONE, MCUFORGE_DW16_NONE, "");
        else /* 1 to 7 */
            MCUFORGE_DW16_PIXEL(MCUFORGE_DW16_GROUPS2, MCUFORGE_DW16_P0_2, MCUFORGE_DW16_P0_1, "t");
    }
}
#undef MCUFORGE_DW16_AT
#undef MCUFORGE_DW16_P0
#undef MCUFORGE_DW16_P0_2
#undef MCUFORGE_DW16_P0_1
#undef MCUFORGE_DW16_TAP
#undef MCUFORGE_DW16_RQ
#undef MCUFORGE_DW16_NONE
#undef MCUFORGE_DW16_GROUPS4
#undef MCUFORGE_DW16_GROUPS2
#undef MCUFORGE_DW16_PIXEL
/* The depthwise conv of channels-last int8 data with one output channel per input channel, on
 * Helium: per block of 16 channels (the last of fewer predicated) its constants as vectors, then
 * dw_run16_mve over the window's taps inside the image: per pixel where the window crosses the
 * image's edge, for all those of a row between them at once. */
static void dwconv_mve(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                       const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y) {
    const int32_t c_all = p->out_c, row = p->in_w * c_all, w_row = p->k_w * c_all;
    int32_t n, oy, ox, o0, g;
    mcuforge_dw16 b;
    b.nzp = -q->in_zp, b.zp = q->out_zp, b.lo = vdupq_n_s32(q->act_min), b.hi = vdupq_n_s32(q->act_max);
    b.c_all = c_all, b.x_tap = p->dil_w * c_all, b.x_step = p->stride_w * c_all;
    for (o0 = 0; o0 < c_all; o0 += 16) {
        const int32_t count = c_all - o0, mode = count >= 16 ? 0 : count > 8 ? 1 : count == 8 ? 2 : 3;
        for (g = 0; g < 4; ++g) {
            const int32_t left = c_all - o0 - 4 * g;
            const mve_pred16_t on = vctp32q((uint32_t)(left < 0 ? 0 : left));
            const int32x4_t sh = vldrwq_z_s32(shift + o0 + 4 * g, on);
            b.live[g] = on;
            b.start[g] = bias != NULL ? vldrwq_z_s32(bias + o0 + 4 * g, on) : vdupq_n_s32(0);
            b.m[g] = vldrwq_z_s32(multiplier + o0 + 4 * g, on);
            b.left[g] = vmaxq_s32(sh, vdupq_n_s32(0)), b.nright[g] = vminq_s32(sh, vdupq_n_s32(0));
        }
        for (n = 0; n < p->n; ++n)
            for (oy = 0; oy < p->out_h; ++oy) {
                const int32_t iy0 = oy * p->stride_h - p->pad_top;
                /* the rows of the window inside the image: ky0 <= ky < ky0 + rows */
                const int32_t ky0 = iy0 >= 0 ? 0 : (-iy0 + p->dil_h - 1) / p->dil_h;
                const int32_t ky_end = (p->in_h - iy0 + p->dil_h - 1) / p->dil_h;
                const int32_t rows = (ky_end < p->k_h ? ky_end : p->k_h) - ky0;
                for (ox = 0; ox < p->out_w; ++ox) {
                    const int32_t ix0 = ox * p->stride_w - p->pad_left;
                    const int32_t kx0 = ix0 >= 0 ? 0 : (-ix0 + p->dil_w - 1) / p->dil_w;
                    const int32_t kx_end = (p->in_w - ix0 + p->dil_w - 1) / p->dil_w;
                    const int32_t taps = (kx_end < p->k_w ? kx_end : p->k_w) - kx0;
                    /* a window inside the image's columns: so are those up to `last` */
                    const int32_t last = kx0 == 0 && taps == p->k_w
                                             ? (p->in_w - 1 - (p->k_w - 1) * p->dil_w + p->pad_left) / p->stride_w
                                             : ox;
                    const int32_t run = last < p->out_w ? last - ox + 1 : p->out_w - ox;
                    b.taps = taps, b.x_skip = p->dil_h * row - taps * b.x_tap, b.w_skip = (p->k_w - taps) * c_all;
                    dw_run16_mve(&b,
                                 x + (n * p->in_h + iy0 + ky0 * p->dil_h) * row + (ix0 + kx0 * p->dil_w) * c_all + o0,
                                 w + ky0 * w_row + kx0 * c_all + o0, rows > 0 && taps > 0 ? rows : 0,
                                 y + ((n * p->out_h + oy) * p->out_w + ox) * c_all + o0, run, mode);
                    ox += run - 1;
                }
            }
    }
}
#endif

MCUFORGE_KERNEL(mcuforge_dwconv2d_s8)(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x,
                                      const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                      const int32_t *shift, int8_t *y) {
    /* Blocks of MCUFORGE_RQ_LANES output channels (int32 sums on the stack), each over every output pixel */
    const int32_t mult = p->out_c / p->in_c;
    int32_t xs[4], ys[4], n, oy, ox, ky, kx, o, o0;
#if defined(MCUFORGE_USE_DSP) || defined(MCUFORGE_USE_MVE)
    if (mult == 1 && p->nhwc) {
#if defined(MCUFORGE_USE_MVE)
        dwconv_mve(p, q, x, w, bias, multiplier, shift, y);
#else
        dwconv_dsp(p, q, x, w, bias, multiplier, shift, y);
#endif
        return;
    }
#endif
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

MCUFORGE_KERNEL(mcuforge_conv_transpose2d_s8)(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x,
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
