/* int8 elementwise ops: add / sub / mul with broadcasting (TFLite's int8 ADD, SUB, MUL), table
 * lookups for unary functions, clamps, and requantization between integer types. All may run in
 * place. add / sub / mul take each fixed-point multiply as one 64-bit multiply-add (below) for the
 * parameters TFLite's converter gives; other parameters take the loops the int16 kernels share
 * (MCUFORGE_DEFINE_QBINARY, mcuforge_int8.h). */
#include "mcuforge_int8.h"

/* The general loops: any parameters (the fast ones below take the usual ones) */
static MCUFORGE_DEFINE_QBINARY(add, s8_any, int8_t, MCUFORGE_QADD, mcuforge_sat8)
static MCUFORGE_DEFINE_QBINARY(mul, s8_any, int8_t, MCUFORGE_QMUL, mcuforge_sat8)

/* Both of mcuforge_mbqm's roundings folded into one 64-bit multiply-add and its high word: for a
 * multiplier m >= 0 and a right shift r >= 1, the doubling high multiply is floor((x * m + 2^30)
 * / 2^31) (ties upward) and the shift rounds half away from zero, so together they are
 * floor((x * m + k) / 2^(31 + r)) with k = 2^30 + 2^(30 + r) - [x < 0] * 2^31 (r = 0: k = 2^30);
 * the sign of x picks k with a mask, not a branch. */

/* An input of add / sub: v = mcuforge_mbqm((x - zp) * 2^20, m, -r) for int8 x, r <= 21, or -v
 * (negate: sub's second input). Scaled so that the result is the high word: d = (x - zp) *
 * 2^(21 - r) (one multiply-add, below 2^29), v = (d * m + k) >> 32 with k = 2^31 + 2^(31 - r) -
 * [d < 0] * 2^(32 - r) (r = 0: 2^31), below 2^32: a zero high word. -v = floor(-(d * m + k) /
 * 2^32) is the same with -d and 2^32 - 1 - k (at -d = 0 both k give 0). */
typedef struct {
    int32_t scale, offset, m;
    uint32_t k, k_neg;
} add_input;

static int add_input_init(add_input *in, int32_t zp, int32_t m, int32_t shift, int32_t negate) {
    const int32_t r = -shift;
    uint32_t k;
    if (m < 0 || r < 0 || r > 21) return 0;
    in->scale = negate ? -(1 << (21 - r)) : 1 << (21 - r);
    in->offset = -zp * in->scale;
    in->m = m;
    in->k_neg = r > 0 ? 1u << (32 - r) : 0u;
    k = r > 0 ? (1u << 31) + (1u << (31 - r)) : 1u << 31;
    in->k = negate ? 0xffffffffu - k + in->k_neg : k;
    return 1;
}

static inline int32_t add_input_apply(const add_input *in, int32_t x) {
    const int32_t d = x * in->scale + in->offset;
    const uint32_t k = in->k - (in->k_neg & (uint32_t)(d >> 31));
    return (int32_t)(((int64_t)d * in->m + (int64_t)k) >> 32);
}

/* The output stage: y = clamp(mcuforge_mbqm(x, m, -r) + zp) for any int32 x and 2 <= r <= 24, as
 * (x * m + k) >> 32 >> (r - 1) with k's low word 2^30 + [x < 0] * 2^31 (x's sign bit) and high
 * word 2^(r - 2) - [x < 0] + zp * 2^(r - 1) (adding zp there adds it after the shift). */
typedef struct {
    int32_t m, k_high, shift, lo, hi;
} out_stage;

static int out_stage_init(out_stage *o, int32_t m, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
    const int32_t r = -shift;
    if (m < 0 || r < 2 || r > 24) return 0;
    o->m = m, o->k_high = (1 << (r - 2)) + zp * (1 << (r - 1)), o->shift = r - 1, o->lo = lo, o->hi = hi;
    return 1;
}

static inline int8_t out_stage_apply(const out_stage *o, int32_t x) {
    const uint64_t k = (uint64_t)(uint32_t)(o->k_high + (x >> 31)) << 32 | (1u << 30 | ((uint32_t)x & 1u << 31));
    const int32_t v = (int32_t)(((int64_t)x * o->m + (int64_t)k) >> 32) >> o->shift;
    return (int8_t)(v < o->lo ? o->lo : v > o->hi ? o->hi : v);
}

#define CHUNK 32 /* elements per pass */

/* The rows of a broadcasting add or sub (mul 0: ia and ib, sub's negating) or mul (mul 1: the
 * zero points za, zb), their parameters in locals (the int8 stores cannot alias them: nothing is
 * reloaded per element). Each row in chunks, three passes each (a's terms onto the stack, b's
 * added or multiplied in, the output stage), so that the constants of each pass fit in a
 * Cortex-M's registers. Strides 1: straight loops (the calls with constants). */
static inline void binary_rows(const mcuforge_bcast *p, add_input ia, add_input ib, int32_t za, int32_t zb,
                               out_stage o, int32_t mul, const int8_t *a, const int8_t *b, int8_t *y, int32_t sa,
                               int32_t sb) {
    const int32_t n = p->shape[p->rank - 1];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, t[CHUNK], row, i0, i;
    for (row = 0; row < p->outer; ++row, y += n) {
        const int8_t *ar = a + off[0], *br = b + off[1];
        for (i0 = 0; i0 < n; i0 += CHUNK) {
            const int32_t count = n - i0 < CHUNK ? n - i0 : CHUNK;
            const int8_t *ac = ar + i0 * sa, *bc = br + i0 * sb;
            for (i = 0; i < count; ++i) t[i] = mul ? ac[i * sa] - za : add_input_apply(&ia, ac[i * sa]);
            for (i = 0; i < count; ++i)
                t[i] = mul ? t[i] * (bc[i * sb] - zb) : t[i] + add_input_apply(&ib, bc[i * sb]);
            for (i = 0; i < count; ++i) y[i0 + i] = out_stage_apply(&o, t[i]);
        }
        mcuforge_bcast_next(p, idx, off);
    }
}

static void binary(const mcuforge_bcast *p, add_input ia, add_input ib, int32_t za, int32_t zb, out_stage o,
                   int32_t mul, const int8_t *a, const int8_t *b, int8_t *y) {
    const int32_t sa = p->a_stride[p->rank - 1], sb = p->b_stride[p->rank - 1];
    if (sa == 1 && sb == 1 && mul) binary_rows(p, ia, ib, za, zb, o, 1, a, b, y, 1, 1);
    else if (sa == 1 && sb == 1) binary_rows(p, ia, ib, za, zb, o, 0, a, b, y, 1, 1);
    else binary_rows(p, ia, ib, za, zb, o, mul, a, b, y, sa, sb);
}

/* ---- the usual parameters in fewer operations: SMMLAR's form of both roundings ----
 * smmlar(a, b, acc) = acc + floor((a * b + 2^31) / 2^32) (one SMMLAR with the DSP extension).
 * The output stage doubled (out_stage's form times 2): clamp(mcuforge_mbqm(s, m, -r) + zp) =
 * clamp(smmlar(2s, m, c - [s < 0]) >> r), c = 2^(r - 1) + zp * 2^r, for 2 <= r <= 23 (then every
 * value fits 32 bits: |2s| < 2^29 for add's sums of two terms below 2^27, and mul's products).
 * add / sub: TFLite's converter rescales both inputs to twice the larger input scale, so that
 * input's multiplier is exactly 1/2 (2^30, shift 0) and its term (x - zp) * 2^19 ("h", no
 * rounding); the other input's ("g") term, add_input's form times 2^r, is mcuforge_mbqm((x - zp) *
 * 2^20, m, -r) = smmlar(d, m, 2^(r - 1) - [d < 0]) >> r with d = (x - zp) * 2^21, 1 <= r <= 4.
 * So 2 (h's term +- g's) = +-(x_h << 20) +- 2 t, h's zero point folded into t (times 2^r in its
 * starting value: below 2^30 for r <= 4). */
static inline int32_t smmlar(int32_t a, int32_t b, int32_t acc) {
#if defined(MCUFORGE_USE_DSP)
    int32_t v;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(v) : "r"(a), "r"(b), "r"(acc));
    return v;
#else
    return (int32_t)(((int64_t)a * b + (int64_t)((uint64_t)(uint32_t)acc << 32 | 1u << 31)) >> 32);
#endif
}

typedef struct {
    int32_t off, gc, gm, gr; /* g: d = x * 2^21 + off, t = smmlar(d, gm, gc - [d < 0]) >> gr */
    int32_t m, c, r, lo, hi; /* the doubled output stage, clamp [lo, hi] */
    int32_t op, h_is_b;      /* op: 2 sum = h + 2 t (0), h - 2 t (1), 2 t - h (2); mul: zero points in off, gc */
} pair_stage;

static int pair_out_init(pair_stage *f, const mcuforge_qadd *q) {
    const int32_t r = -q->shift;
    if (q->multiplier < 0 || r < 2 || r > 23 || q->act_min > q->act_max) return 0;
    f->m = q->multiplier, f->c = (1 << (r - 1)) + q->out_zp * (1 << r), f->r = r, f->lo = q->act_min;
    f->hi = q->act_max;
    return 1;
}

static int add_pair_init(pair_stage *f, const mcuforge_qadd *q) {
    const int32_t a_h = q->a_multiplier == 1 << 30 && q->a_shift == 0;
    const int32_t h_is_b = !a_h && q->b_multiplier == 1 << 30 && q->b_shift == 0;
    const int32_t gm = h_is_b ? q->a_multiplier : q->b_multiplier, gr = -(h_is_b ? q->a_shift : q->b_shift);
    const int32_t sign_h = h_is_b && q->subtract ? -1 : 1, sign_g = !h_is_b && q->subtract ? -1 : 1;
    if (q->left_shift != 20 || !(a_h || h_is_b) || gm < 0 || gr < 1 || gr > 4 || !pair_out_init(f, q)) return 0;
    f->off = -(h_is_b ? q->a_zp : q->b_zp) * (1 << 21), f->gm = gm, f->gr = gr, f->h_is_b = h_is_b;
    f->gc = (1 << (gr - 1)) - sign_h * sign_g * (h_is_b ? q->b_zp : q->a_zp) * (1 << (19 + gr));
    f->op = sign_g < 0 ? 1 : sign_h < 0 ? 2 : 0;
    return 1;
}

#if defined(MCUFORGE_USE_MVE)
/* pair_row on Helium, four int32 lanes a vector (tail-predicated): SMMLAR's floor((a * b + 2^31)
 * / 2^32) is VRMULH, its accumulator an add; add / sub's signs and scales of h and t folded into
 * one multiply and one multiply-accumulate by a scalar (VMUL, VMLA). About 17 instructions per
 * four lanes. */
static void pair_row_mve(const pair_stage *f, int32_t mul, const int8_t *h, const int8_t *g, int8_t *y, int32_t n) {
    const int32x4_t gm = vdupq_n_s32(f->gm), m = vdupq_n_s32(f->m), lo = vdupq_n_s32(f->lo), hi = vdupq_n_s32(f->hi);
    const int32_t off = f->off, gc = f->gc, ngr = -f->gr, nr = -f->r, c = f->c; /* (locals: y may alias f) */
    const int32_t sh = !mul && f->op == 2 ? -(1 << 20) : 1 << 20, sg = !mul && f->op == 1 ? -2 : 2;
    for (; n > 0; n -= 4, h += 4, g += 4, y += 4) {
        const mve_pred16_t p = vctp32q((uint32_t)n);
        const int32x4_t xh = vldrbq_z_s32(h, p), xg = vldrbq_z_s32(g, p);
        int32x4_t s;
        if (mul) {
            s = vmulq_s32(vmulq_n_s32(vsubq_n_s32(xh, off), 2), vsubq_n_s32(xg, gc));
        } else {
            const int32x4_t d = vaddq_n_s32(vshlq_n_s32(xg, 21), off);
            const int32x4_t t = vshlq_r_s32(vaddq_s32(vrmulhq_s32(d, gm), vaddq_n_s32(vshrq_n_s32(d, 31), gc)), ngr);
            s = vmlaq_n_s32(vmulq_n_s32(xh, sh), t, sg);
        }
        s = vshlq_r_s32(vaddq_s32(vrmulhq_s32(s, m), vaddq_n_s32(vshrq_n_s32(s, 31), c)), nr);
        vstrbq_p_s32(y, vminq_s32(vmaxq_s32(s, lo), hi), p);
    }
}
#elif defined(MCUFORGE_USE_DSP)
/* Four lanes a word: per lane, its bytes sign-extended from the words, 13 instructions; the
 * outputs (SSAT to int8) replace the h word's bytes, stored at the end. n4 >= 1 words; the end on
 * the stack (14 registers: 3 pointers, 2 words, 2 temporaries, 7 constants). */
#define MCUFORGE_ADD_LANE(rot, pos, op)                      \
    "sxtb %[t1], %[wg]" rot "\n\t"                          \
    "add %[t1], %[off], %[t1], lsl #21\n\t"                 \
    "add %[t2], %[gc], %[t1], asr #31\n\t"                  \
    "smmlar %[t2], %[t1], %[gm], %[t2]\n\t"                 \
    "asr %[t2], %[t2], %[gr]\n\t"                           \
    "sxtb %[t1], %[wh]" rot "\n\t"                          \
    "lsl %[t1], %[t1], #20\n\t"                             \
    op " %[t1], %[t1], %[t2], lsl #1\n\t"                   \
    "add %[t2], %[c], %[t1], asr #31\n\t"                   \
    "smmlar %[t2], %[t1], %[m], %[t2]\n\t"                  \
    "asr %[t2], %[t2], %[r]\n\t"                            \
    "ssat %[t2], #8, %[t2]\n\t"                             \
    "bfi %[wh], %[t2], #" pos ", #8\n\t"
#define MCUFORGE_ADD_WORDS(op)                                                                                     \
    __asm__ volatile("str %[t1], [sp, #-8]!\n\t"                                                                  \
                     "1:\n\t"                                                                                     \
                     "ldr %[wh], [%[h]], #4\n\t"                                                                  \
                     "ldr %[wg], [%[g]], #4\n\t" MCUFORGE_ADD_LANE("", "0", op)                                   \
                         MCUFORGE_ADD_LANE(", ror #8", "8", op) MCUFORGE_ADD_LANE(", ror #16", "16", op)          \
                             MCUFORGE_ADD_LANE(", ror #24", "24", op) "str %[wh], [%[y]], #4\n\t"                 \
                     "ldr %[t1], [sp]\n\t"                                                                        \
                     "cmp %[y], %[t1]\n\t"                                                                        \
                     "bne 1b\n\t"                                                                                 \
                     "add sp, sp, #8"                                                                             \
                     : [h] "+&r"(h), [g] "+&r"(g), [y] "+&r"(y), [wh] "=&r"(wh), [wg] "=&r"(wg), [t1] "+&r"(t1),      \
                       [t2] "=&r"(t2)                                                                             \
                     : [off] "r"(f->off), [gc] "r"(f->gc), [gm] "r"(f->gm), [gr] "r"(f->gr), [m] "r"(f->m),       \
                       [c] "r"(f->c), [r] "r"(f->r)                                                               \
                     : "cc", "memory")

/* mul: 2 (a - za) and (b - zb) as 16-bit pairs (SXTAB16 onto -2 za, twice, and onto -zb), SMULBB /
 * SMULTT, the output stage; 9 instructions a lane */
#define MCUFORGE_MUL_LANE(pos)                               \
    "add %[t2], %[c], %[t1], asr #31\n\t"                   \
    "smmlar %[t2], %[t1], %[m], %[t2]\n\t"                  \
    "asr %[t2], %[t2], %[r]\n\t"                            \
    "ssat %[t2], #8, %[t2]\n\t"                             \
    "bfi %[wa], %[t2], #" pos ", #8\n\t"
#define MCUFORGE_MUL_PAIRS(rot, lo, hi)                      \
    "sxtab16 %[ea], %[za], %[wa]" rot "\n\t"                \
    "sxtab16 %[ea], %[ea], %[wa]" rot "\n\t"                \
    "sxtab16 %[eb], %[zb], %[wb]" rot "\n\t"                \
    "smulbb %[t1], %[ea], %[eb]\n\t" MCUFORGE_MUL_LANE(lo)  \
    "smultt %[t1], %[ea], %[eb]\n\t" MCUFORGE_MUL_LANE(hi)

/* y[0, n) outside and 4 n4 inside the assembly (n4 >= 1), clamped afterwards unless [lo, hi] is int8's */
static void pair_words_dsp(const pair_stage *f, int32_t mul, const int8_t *h, const int8_t *g, int8_t *y,
                           int32_t n4) {
    int8_t *y0 = y;
    uint32_t wh, wg, t2, t1 = (uint32_t)(uintptr_t)(y + 4 * n4);
    if (mul) {
        const uint32_t za = (uint32_t)(-2 * f->off) & 0xffffu, zb = (uint32_t)(-f->gc) & 0xffffu;
        uint32_t ea, eb;
        __asm__ volatile("str %[t1], [sp, #-8]!\n\t"
                         "1:\n\t"
                         "ldr %[wa], [%[a]], #4\n\t"
                         "ldr %[wb], [%[b]], #4\n\t" MCUFORGE_MUL_PAIRS("", "0", "16")
                             MCUFORGE_MUL_PAIRS(", ror #8", "8", "24") "str %[wa], [%[y]], #4\n\t"
                         "ldr %[t1], [sp]\n\t"
                         "cmp %[y], %[t1]\n\t"
                         "bne 1b\n\t"
                         "add sp, sp, #8"
                         : [a] "+&r"(h), [b] "+&r"(g), [y] "+&r"(y), [wa] "=&r"(wh), [wb] "=&r"(wg), [t1] "+&r"(t1),
                           [t2] "=&r"(t2), [ea] "=&r"(ea), [eb] "=&r"(eb)
                         : [za] "r"(za | za << 16), [zb] "r"(zb | zb << 16), [m] "r"(f->m), [c] "r"(f->c),
                           [r] "r"(f->r)
                         : "cc", "memory");
    } else if (f->op == 0) {
        MCUFORGE_ADD_WORDS("add");
    } else if (f->op == 1) {
        MCUFORGE_ADD_WORDS("sub");
    } else {
        MCUFORGE_ADD_WORDS("rsb");
    }
    if (f->lo > -128 || f->hi < 127) { /* per byte: SSUB8 sets GE where y >= lo, SEL picks; then hi */
        const uint32_t lo = (uint32_t)(uint8_t)f->lo * 0x01010101u, hi = (uint32_t)(uint8_t)f->hi * 0x01010101u;
        for (; y0 < y; y0 += 4) {
            uint32_t w;
            memcpy(&w, y0, 4);
            __asm__("ssub8 %[t], %[w], %[lo]\n\t"
                    "sel %[w], %[w], %[lo]\n\t"
                    "ssub8 %[t], %[hi], %[w]\n\t"
                    "sel %[w], %[w], %[hi]"
                    : [w] "+&r"(w), [t] "=&r"(t2)
                    : [lo] "r"(lo), [hi] "r"(hi)
                    : "cc");
            memcpy(y0, &w, 4);
        }
    }
}
#undef MCUFORGE_ADD_LANE
#undef MCUFORGE_ADD_WORDS
#undef MCUFORGE_MUL_LANE
#undef MCUFORGE_MUL_PAIRS
#endif

/* n outputs of contiguous rows: h and g of add / sub (pair_stage), or a and b of mul (mul 1: the
 * zero points in off and gc); constants in locals, op and full (the clamp is int8's range: SSAT)
 * constants of each call */
static inline void pair_row(const pair_stage *f, int32_t mul, int32_t op, int32_t full, const int8_t *h,
                            const int8_t *g, int8_t *y, int32_t n) {
    const int32_t off = f->off, gc = f->gc, gm = f->gm, gr = f->gr, m = f->m, c = f->c, r = f->r, lo = f->lo;
    const int32_t hi = f->hi;
    int32_t i = 0, s, v;
#if defined(MCUFORGE_USE_MVE)
    pair_row_mve(f, mul, h, g, y, n);
    i = n;
#elif defined(MCUFORGE_USE_DSP)
    if (n >= 4) pair_words_dsp(f, mul, h, g, y, n / 4);
    i = n / 4 * 4;
#endif
    for (; i < n; ++i) {
        if (mul) {
            s = 2 * (h[i] - off) * (g[i] - gc);
        } else {
            const int32_t d = g[i] * (1 << 21) + off, t = smmlar(d, gm, gc + (d >> 31)) >> gr;
            const int32_t e = h[i] * (1 << 20);
            s = op == 0 ? e + 2 * t : op == 1 ? e - 2 * t : 2 * t - e;
        }
        v = smmlar(s, m, c + (s >> 31)) >> r;
        y[i] = (int8_t)(full ? mcuforge_ssat8(v) : mcuforge_sat8(v, lo, hi));
    }
}

/* pair_row over the rows of a broadcast whose rows are contiguous in a and b */
static void pair_rows(const mcuforge_bcast *p, const pair_stage *f, int32_t mul, const int8_t *a, const int8_t *b,
                      int8_t *y) {
    const int32_t n = p->shape[p->rank - 1];
#if defined(MCUFORGE_USE_DSP)
    const int32_t full = 0; /* only the rows' last values: one loop */
#else
    const int32_t full = f->lo == -128 && f->hi == 127;
#endif
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row;
    for (row = 0; row < p->outer; ++row, y += n) {
        const int8_t *ar = a + off[0], *br = b + off[1], *h = f->h_is_b ? br : ar, *g = f->h_is_b ? ar : br;
#define MCUFORGE_PAIR_ROW(mul, op, x0, x1) \
    (full ? pair_row(f, mul, op, 1, x0, x1, y, n) : pair_row(f, mul, op, 0, x0, x1, y, n))
        if (mul) MCUFORGE_PAIR_ROW(1, 0, ar, br);
        else if (f->op == 0) MCUFORGE_PAIR_ROW(0, 0, h, g);
        else if (f->op == 1) MCUFORGE_PAIR_ROW(0, 1, h, g);
        else MCUFORGE_PAIR_ROW(0, 2, h, g);
#undef MCUFORGE_PAIR_ROW
        mcuforge_bcast_next(p, idx, off);
    }
}

MCUFORGE_KERNEL(mcuforge_add_s8)(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b,
                                 int8_t *y) {
    add_input ia, ib;
    out_stage o;
    pair_stage f;
    const int32_t rows = p->a_stride[p->rank - 1] == 1 && p->b_stride[p->rank - 1] == 1;
    if (rows && add_pair_init(&f, q))
        pair_rows(p, &f, 0, a, b, y);
    else if (q->left_shift == 20 && add_input_init(&ia, q->a_zp, q->a_multiplier, q->a_shift, 0) &&
             add_input_init(&ib, q->b_zp, q->b_multiplier, q->b_shift, q->subtract) &&
             out_stage_init(&o, q->multiplier, q->shift, q->out_zp, q->act_min, q->act_max))
        binary(p, ia, ib, 0, 0, o, 0, a, b, y);
    else
        mcuforge_add_s8_any(p, q, a, b, y);
}

MCUFORGE_KERNEL(mcuforge_mul_s8)(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b,
                                 int8_t *y) {
    add_input none = {0, 0, 0, 0, 0};
    out_stage o;
    pair_stage f;
    if (p->a_stride[p->rank - 1] == 1 && p->b_stride[p->rank - 1] == 1 && pair_out_init(&f, q)) {
        f.off = q->a_zp, f.gc = q->b_zp, f.h_is_b = 0;
        pair_rows(p, &f, 1, a, b, y);
    } else if (out_stage_init(&o, q->multiplier, q->shift, q->out_zp, q->act_min, q->act_max))
        binary(p, none, none, q->a_zp, q->b_zp, o, 1, a, b, y);
    else
        mcuforge_mul_s8_any(p, q, a, b, y);
}

MCUFORGE_KERNEL(mcuforge_lut_s8)(const int8_t *x, int8_t *y, int32_t n, const int8_t *table) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = table[x[i] + 128];
}

MCUFORGE_KERNEL(mcuforge_clamp_s8)(const int8_t *x, int8_t *y, int32_t n, int32_t lo, int32_t hi) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = mcuforge_sat8(x[i], lo, hi);
}

MCUFORGE_KERNEL(mcuforge_requantize)(const void *x, int32_t in_type, void *y, int32_t out_type, int32_t n,
                                     int32_t in_zp, int32_t out_zp, int32_t multiplier, int32_t shift) {
    static const int64_t lo[] = {-128, 0, -32768, INT32_MIN}, hi[] = {127, 255, 32767, INT32_MAX};
    int32_t i;
    for (i = 0; i < n; ++i) {
        int64_t v = (int64_t)mcuforge_mbqm((int32_t)((int64_t)mcuforge_load_int(x, in_type, i) - in_zp), multiplier,
                                           shift) + out_zp;
        v = v < lo[out_type] ? lo[out_type] : v > hi[out_type] ? hi[out_type] : v;
        mcuforge_store_int(y, out_type, i, (int32_t)v);
    }
}
