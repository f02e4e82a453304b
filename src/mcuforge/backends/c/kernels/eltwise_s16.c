/* int16 elementwise ops: add / sub / mul with broadcasting (TFLite's int16 ADD, SUB, MUL: the
 * int8 arithmetic with 15 bits of headroom for add / sub), clamps and leaky relu. All may run
 * in place. */
#include "mcuforge_int16.h"

static int16_t add(const mcuforge_qadd *q, int32_t a, int32_t b) {
    const int32_t va = mcuforge_mbqm((a - q->a_zp) * (1 << q->left_shift), q->a_multiplier, q->a_shift);
    const int32_t vb = mcuforge_mbqm((b - q->b_zp) * (1 << q->left_shift), q->b_multiplier, q->b_shift);
    return mcuforge_sat16(mcuforge_mbqm(q->subtract ? va - vb : va + vb, q->multiplier, q->shift) + q->out_zp,
                          q->act_min, q->act_max);
}

static int16_t mul(const mcuforge_qadd *q, int32_t a, int32_t b) {
    return mcuforge_sat16(mcuforge_mbqm((a - q->a_zp) * (b - q->b_zp), q->multiplier, q->shift) + q->out_zp,
                          q->act_min, q->act_max);
}

static void binary(const mcuforge_bcast *p, const mcuforge_qadd *q, const int16_t *a, const int16_t *b, int16_t *y,
                   int16_t (*f)(const mcuforge_qadd *, int32_t, int32_t)) {
    const int32_t last = p->rank - 1, n = p->shape[last], sa = p->a_stride[last], sb = p->b_stride[last];
    const int32_t *strides[2];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row, i;
    strides[0] = p->a_stride;
    strides[1] = p->b_stride;
    for (row = 0; row < p->outer; ++row, y += n) {
        for (i = 0; i < n; ++i) y[i] = f(q, a[off[0] + i * sa], b[off[1] + i * sb]);
        mcuforge_next_row(p->rank, p->shape, idx, 2, off, strides);
    }
}

void mcuforge_add_s16(const mcuforge_bcast *p, const mcuforge_qadd *q, const int16_t *a, const int16_t *b,
                      int16_t *y) {
    binary(p, q, a, b, y, add); /* a static callee: compilers inline it */
}

void mcuforge_mul_s16(const mcuforge_bcast *p, const mcuforge_qadd *q, const int16_t *a, const int16_t *b,
                      int16_t *y) {
    binary(p, q, a, b, y, mul);
}

void mcuforge_clamp_s16(const int16_t *x, int16_t *y, int32_t n, int32_t lo, int32_t hi) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = mcuforge_sat16(x[i], lo, hi);
}

/* params: in_zp, out_zp, alpha_multiplier, alpha_shift, id_multiplier, id_shift (a negative
 * alpha multiplier: its magnitude is applied, then the sign) */
void mcuforge_leaky_relu_s16(const int16_t *x, int16_t *y, int32_t n, const int32_t *params) {
    const int32_t am = params[2] < 0 ? -params[2] : params[2];
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t d = x[i] - params[0];
        const int32_t v = d >= 0 ? mcuforge_mbqm(d, params[4], params[5])
                                 : mcuforge_mbqm(d, am, params[3]) * (params[2] < 0 ? -1 : 1);
        y[i] = mcuforge_sat16((int64_t)v + params[1], -32768, 32767);
    }
}
