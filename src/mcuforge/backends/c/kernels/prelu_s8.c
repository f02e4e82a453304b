/* int8 PRELU (TFLite's): where x is at or above its zero point, x - zp requantized by the identity
 * multiplier; below it, (x - zp) * (alpha - alpha_zp) by the alpha multiplier. alpha broadcasts
 * as the second operand of a binary op (`p`). May run in place (y == x). */
#include "mcuforge_int8.h"

void mcuforge_prelu_s8(const mcuforge_bcast *p, const mcuforge_qprelu *q, const int8_t *x, const int8_t *alpha,
                       int8_t *y) {
    const int32_t last = p->rank - 1, n = p->shape[last], sx = p->a_stride[last], sa = p->b_stride[last];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, row, i;
    for (row = 0; row < p->outer; ++row, y += n) {
        const int8_t *xr = x + off[0], *ar = alpha + off[1];
        for (i = 0; i < n; ++i) {
            const int32_t d = xr[i * sx] - q->in_zp;
            const int32_t v = d >= 0 ? mcuforge_mbqm(d, q->id_multiplier, q->id_shift)
                                     : mcuforge_mbqm(d * (ar[i * sa] - q->alpha_zp), q->alpha_multiplier,
                                                     q->alpha_shift);
            y[i] = mcuforge_sat8(v + q->out_zp, -128, 127);
        }
        mcuforge_bcast_next(p, idx, off);
    }
}
