/* int16 elementwise ops: add / sub / mul with broadcasting (TFLite's int16 ADD, SUB, MUL: the
 * int8 arithmetic with 15 bits of headroom for add / sub: MCUFORGE_DEFINE_QBINARY of
 * mcuforge_int8.h), clamps and leaky relu. All may run in place. */
#include "mcuforge_int16.h"

MCUFORGE_DEFINE_QBINARY(add, s16, int16_t, MCUFORGE_QADD, mcuforge_sat16)
MCUFORGE_DEFINE_QBINARY(mul, s16, int16_t, MCUFORGE_QMUL, mcuforge_sat16)

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
