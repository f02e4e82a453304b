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

void mcuforge_add_s8(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b, int8_t *y) {
    add_input ia, ib;
    out_stage o;
    if (q->left_shift == 20 && add_input_init(&ia, q->a_zp, q->a_multiplier, q->a_shift, 0) &&
        add_input_init(&ib, q->b_zp, q->b_multiplier, q->b_shift, q->subtract) &&
        out_stage_init(&o, q->multiplier, q->shift, q->out_zp, q->act_min, q->act_max))
        binary(p, ia, ib, 0, 0, o, 0, a, b, y);
    else
        mcuforge_add_s8_any(p, q, a, b, y);
}

void mcuforge_mul_s8(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b, int8_t *y) {
    add_input none = {0, 0, 0, 0, 0};
    out_stage o;
    if (out_stage_init(&o, q->multiplier, q->shift, q->out_zp, q->act_min, q->act_max))
        binary(p, none, none, q->a_zp, q->b_zp, o, 1, a, b, y);
    else
        mcuforge_mul_s8_any(p, q, a, b, y);
}

void mcuforge_lut_s8(const int8_t *x, int8_t *y, int32_t n, const int8_t *table) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = table[x[i] + 128];
}

void mcuforge_clamp_s8(const int8_t *x, int8_t *y, int32_t n, int32_t lo, int32_t hi) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = mcuforge_sat8(x[i], lo, hi);
}

void mcuforge_requantize(const void *x, int32_t in_type, void *y, int32_t out_type, int32_t n, int32_t in_zp,
                         int32_t out_zp, int32_t multiplier, int32_t shift) {
    static const int64_t lo[] = {-128, 0, -32768, INT32_MIN}, hi[] = {127, 255, 32767, INT32_MAX};
    int32_t i;
    for (i = 0; i < n; ++i) {
        int64_t v = (int64_t)mcuforge_mbqm((int32_t)((int64_t)mcuforge_load_int(x, in_type, i) - in_zp), multiplier,
                                           shift) + out_zp;
        v = v < lo[out_type] ? lo[out_type] : v > hi[out_type] ? hi[out_type] : v;
        mcuforge_store_int(y, out_type, i, (int32_t)v);
    }
}
