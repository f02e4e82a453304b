/* int8 conv / depthwise conv / fully connected layers whose weights are stored compressed (the
 * formats of mcuforge/ir/wformat.py, described in mcuforge.h). The codes are decoded in the inner
 * loops; the results are those of the int8 kernels on the decoded weights, bit for bit (integer
 * sums are exact). pow2 weights cost a shift per tap, binary and ternary ones an add or a
 * subtract, int4 ones a multiply per tap and one per group, kmeans ones a codebook lookup. */
#include "mcuforge_int8.h"

static int8_t requant(int32_t acc, const mcuforge_requant *q, int32_t multiplier, int32_t shift) {
    return mcuforge_sat8(mcuforge_mbqm(acc, multiplier, shift) + q->out_zp, q->act_min, q->act_max);
}

/* code j of a row: bits [j * bits, (j + 1) * bits), least significant first */
static inline int32_t code_at(const uint8_t *row, int32_t j, int32_t bits) {
    const int32_t bit = j * bits, at = bit >> 3, lo = bit & 7;
    uint32_t v = row[at];
    if (lo + bits > 8) v |= (uint32_t)row[at + 1] << 8;
    return (int32_t)((v >> lo) & ((1u << bits) - 1u));
}

/* weight j of a row (aux: the codebook, or the row's group multipliers) */
static int32_t weight_at(const mcuforge_wpack *f, const uint8_t *row, const int8_t *aux, int32_t j) {
    const int32_t c = code_at(row, j, f->bits), half = 1 << (f->bits - 1);
    switch (f->scheme) {
    case MCUFORGE_W_POW2: return (c & 7) == 0 ? 0 : (c & 8 ? -1 : 1) * (1 << ((c & 7) - 1));
    case MCUFORGE_W_BINARY: return c ? 1 : -1;
    case MCUFORGE_W_KMEANS: return aux[c];
    default: /* ternary and int4: two's complement codes; int4 times the group's multiplier */
        return (c >= half ? c - 2 * half : c) * (f->scheme == MCUFORGE_W_INT4 ? aux[j / f->group] : 1);
    }
}

/* +-(x << (e - 1)) for a pow2 code: sign bit 3, e in bits 0..2 (0: the weight is zero) */
static inline int32_t pow2_term(int32_t x, uint32_t c) {
    const int32_t t = (c & 7u) ? (int32_t)((uint32_t)x << ((c & 7u) - 1u)) : 0;
    return c & 8u ? -t : t;
}

/* the 4-bit two's complement value of a nibble */
static inline int32_t int4(uint32_t c) {
    return (int32_t)(c & 15u) - (int32_t)(c & 8u) * 2;
}

/* x . (the row's k weights), a byte of codes at a time */
static int32_t dot_packed(const mcuforge_wpack *f, const int8_t *x, const uint8_t *row, const int8_t *aux, int32_t k) {
    int32_t acc = 0, j, i, g;
    switch (f->scheme) {
    case MCUFORGE_W_POW2: /* shifts, no multiply */
        for (j = 0; j + 2 <= k; j += 2)
            acc += pow2_term(x[j], row[j >> 1] & 15u) + pow2_term(x[j + 1], row[j >> 1] >> 4);
        return j < k ? acc + pow2_term(x[j], row[j >> 1] & 15u) : acc;
    case MCUFORGE_W_BINARY: /* +x or -x: the sum of x where the bit is set, twice, minus the sum of all */
        for (j = 0; j < k; j += 8) {
            const uint32_t b = row[j >> 3], n = k - j < 8 ? (uint32_t)(k - j) : 8u;
            int32_t all = 0, set = 0;
            for (i = 0; i < (int32_t)n; ++i) {
                all += x[j + i];
                set += (b >> i) & 1u ? x[j + i] : 0;
            }
            acc += 2 * set - all;
        }
        return acc;
    case MCUFORGE_W_TERNARY: /* +x, -x or nothing */
        for (j = 0; j < k; j += 4) {
            const uint32_t b = row[j >> 2], n = k - j < 4 ? (uint32_t)(k - j) : 4u;
            for (i = 0; i < (int32_t)n; ++i) {
                const uint32_t c = (b >> (2 * i)) & 3u;
                acc += c == 1u ? x[j + i] : c == 3u ? -x[j + i] : 0;
            }
        }
        return acc;
    case MCUFORGE_W_INT4: /* per group: x . q, times the group's multiplier */
        for (g = 0; g * f->group < k; ++g) {
            const int32_t end = (g + 1) * f->group < k ? (g + 1) * f->group : k;
            int32_t part = 0;
            for (j = g * f->group; j + 2 <= end; j += 2)
                part += x[j] * int4(row[j >> 1]) + x[j + 1] * int4(row[j >> 1] >> 4);
            if (j < end) part += x[j] * int4(row[j >> 1]);
            acc += part * aux[g];
        }
        return acc;
    default: /* kmeans: through the codebook (4-bit indices a byte at a time) */
        for (j = 0; f->bits == 4 && j + 2 <= k; j += 2)
            acc += x[j] * aux[row[j >> 1] & 15u] + x[j + 1] * aux[row[j >> 1] >> 4];
        for (; j < k; ++j) acc += x[j] * aux[code_at(row, j, f->bits)];
        return acc;
    }
}

void mcuforge_linear_packed_s8(const mcuforge_wpack *f, const mcuforge_requant *q, const int8_t *x, const uint8_t *w,
                               const int8_t *aux, const int32_t *bias, const int32_t *multiplier,
                               const int32_t *shift, int8_t *y, int32_t rows, int32_t depth, int32_t out) {
    int32_t r, o;
    for (r = 0; r < rows; ++r)
        for (o = 0; o < out; ++o)
            y[r * out + o] = requant(bias[o] + dot_packed(f, x + r * depth, w + o * f->row_bytes, aux + o * f->aux_row,
                                                          depth), q, multiplier[o], shift[o]);
}

void mcuforge_conv2d_packed_s8(const mcuforge_conv *p, const mcuforge_wpack *f, const mcuforge_requant *q,
                               const int8_t *x, const uint8_t *w, const int8_t *aux, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift, int8_t *y, int8_t *scratch) {
    /* one im2col column per output pixel and group (padding read as in_zp, which `bias` cancels) */
    const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups, k = p->k_h * p->k_w * cg;
    int32_t xs[4], ys[4], n, g, oy, ox, ky, kx, c, o;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (g = 0; g < p->groups; ++g) {
            const int8_t *col = scratch;
            if (scratch == NULL) { /* 1x1, stride 1, unpadded, channels last: the pixel is the column */
                col = x + n * xs[0] + oy * xs[1] + ox * xs[2];
            } else {
                int8_t *dst = scratch;
                for (ky = 0; ky < p->k_h; ++ky)
                    for (kx = 0; kx < p->k_w; ++kx, dst += cg) {
                        const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                        if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                            for (c = 0; c < cg; ++c) dst[c] = (int8_t)q->in_zp;
                            continue;
                        }
                        for (c = 0; c < cg; ++c)
                            dst[c] = x[n * xs[0] + iy * xs[1] + ix * xs[2] + (g * cg + c) * xs[3]];
                    }
            }
            for (o = g * og; o < (g + 1) * og; ++o)
                y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] =
                    requant(bias[o] + dot_packed(f, col, w + o * f->row_bytes, aux + o * f->aux_row, k), q,
                            multiplier[o], shift[o]);
        }
}

void mcuforge_dwconv2d_packed_s8(const mcuforge_conv *p, const mcuforge_wpack *f, const mcuforge_requant *q,
                                 const int8_t *x, const uint8_t *w, const int8_t *aux, const int32_t *bias,
                                 const int32_t *multiplier, const int32_t *shift, int8_t *y) {
    /* output channel o reads input channel o / (out_c / in_c) through its own k_h x k_w taps; taps
     * outside the input are skipped, so `bias` is the conv's own */
    const int32_t mult = p->out_c / p->in_c;
    int32_t xs[4], ys[4], n, oy, ox, ky, kx, o;
    MCUFORGE_IO_STRIDES(p, p->in_c, p->out_c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (o = 0; o < p->out_c; ++o) {
            const uint8_t *row = w + o * f->row_bytes;
            const int8_t *a = aux + o * f->aux_row;
            int32_t acc = bias ? bias[o] : 0;
            for (ky = 0; ky < p->k_h; ++ky) {
                const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                if (iy < 0 || iy >= p->in_h) continue;
                for (kx = 0; kx < p->k_w; ++kx) {
                    const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                    if (ix < 0 || ix >= p->in_w) continue;
                    acc += (x[n * xs[0] + iy * xs[1] + ix * xs[2] + (o / mult) * xs[3]] - q->in_zp) *
                           weight_at(f, row, a, ky * p->k_w + kx);
                }
            }
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + o * ys[3]] = requant(acc, q, multiplier[o], shift[o]);
        }
}
