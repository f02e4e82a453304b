/* int8 elementwise ops: add / sub / mul with broadcasting (TFLite's int8 ADD, SUB, MUL), table
 * lookups for unary functions, clamps, and requantization between integer types. All may run in
 * place. */
#include "mcuforge_int8.h"

static int32_t rescaled(int32_t v, int32_t zp, int32_t left_shift, int32_t multiplier, int32_t shift) {
    return mcuforge_mbqm((v - zp) * (1 << left_shift), multiplier, shift);
}

void mcuforge_add_s8(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b, int8_t *y) {
    const int32_t last = p->rank - 1, n = p->shape[last], sa = p->a_stride[last], sb = p->b_stride[last];
    const int32_t *strides[2];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row, i;
    strides[0] = p->a_stride;
    strides[1] = p->b_stride;
    for (row = 0; row < p->outer; ++row, y += n) {
        const int8_t *ar = a + off[0], *br = b + off[1];
        for (i = 0; i < n; ++i) {
            const int32_t va = rescaled(ar[i * sa], q->a_zp, q->left_shift, q->a_multiplier, q->a_shift);
            const int32_t vb = rescaled(br[i * sb], q->b_zp, q->left_shift, q->b_multiplier, q->b_shift);
            const int32_t sum = q->subtract ? va - vb : va + vb;
            y[i] = mcuforge_sat8(mcuforge_mbqm(sum, q->multiplier, q->shift) + q->out_zp, q->act_min, q->act_max);
        }
        mcuforge_next_row(p->rank, p->shape, idx, 2, off, strides);
    }
}

void mcuforge_mul_s8(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b, int8_t *y) {
    const int32_t last = p->rank - 1, n = p->shape[last], sa = p->a_stride[last], sb = p->b_stride[last];
    const int32_t *strides[2];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row, i;
    strides[0] = p->a_stride;
    strides[1] = p->b_stride;
    for (row = 0; row < p->outer; ++row, y += n) {
        const int8_t *ar = a + off[0], *br = b + off[1];
        for (i = 0; i < n; ++i) {
            const int32_t product = (ar[i * sa] - q->a_zp) * (br[i * sb] - q->b_zp);
            y[i] = mcuforge_sat8(mcuforge_mbqm(product, q->multiplier, q->shift) + q->out_zp, q->act_min, q->act_max);
        }
        mcuforge_next_row(p->rank, p->shape, idx, 2, off, strides);
    }
}

void mcuforge_lut_s8(const int8_t *x, int8_t *y, int32_t n, const int8_t *table) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = table[x[i] + 128];
}

void mcuforge_clamp_s8(const int8_t *x, int8_t *y, int32_t n, int32_t lo, int32_t hi) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = mcuforge_sat8(x[i], lo, hi);
}

static int32_t load(const void *x, int32_t type, int32_t i) {
    switch (type) {
    case MCUFORGE_I8: return ((const int8_t *)x)[i];
    case MCUFORGE_U8: return ((const uint8_t *)x)[i];
    case MCUFORGE_I16: return ((const int16_t *)x)[i];
    default: return ((const int32_t *)x)[i];
    }
}

void mcuforge_requantize(const void *x, int32_t in_type, void *y, int32_t out_type, int32_t n, int32_t in_zp,
                         int32_t out_zp, int32_t multiplier, int32_t shift) {
    static const int64_t lo[] = {-128, 0, -32768, INT32_MIN}, hi[] = {127, 255, 32767, INT32_MAX};
    int32_t i;
    for (i = 0; i < n; ++i) {
        int64_t v = (int64_t)mcuforge_mbqm((int32_t)((int64_t)load(x, in_type, i) - in_zp), multiplier, shift) + out_zp;
        v = v < lo[out_type] ? lo[out_type] : v > hi[out_type] ? hi[out_type] : v;
        switch (out_type) {
        case MCUFORGE_I8: ((int8_t *)y)[i] = (int8_t)v; break;
        case MCUFORGE_U8: ((uint8_t *)y)[i] = (uint8_t)v; break;
        case MCUFORGE_I16: ((int16_t *)y)[i] = (int16_t)v; break;
        default: ((int32_t *)y)[i] = (int32_t)v; break;
        }
    }
}
