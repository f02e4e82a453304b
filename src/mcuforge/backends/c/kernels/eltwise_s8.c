/* int8 elementwise ops: add / sub / mul with broadcasting (TFLite's int8 ADD, SUB, MUL), table
 * lookups for unary functions, clamps, and requantization between integer types. All may run in
 * place. add / sub / mul are the int16 ones' too (MCUFORGE_DEFINE_QBINARY, mcuforge_int8.h). */
#include "mcuforge_int8.h"

MCUFORGE_DEFINE_QBINARY(add, s8, int8_t, MCUFORGE_QADD, mcuforge_sat8)
MCUFORGE_DEFINE_QBINARY(mul, s8, int8_t, MCUFORGE_QMUL, mcuforge_sat8)

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
