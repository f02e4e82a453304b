/* int8 softmax along the last axis (TFLite's int8 SOFTMAX; output scale 1/256, zero point -128).
 * exp of each difference to the row maximum comes from a compile-time table (Q0.31, computed by
 * the reference interpreter's fixed-point code); the sum and its reciprocal are computed here
 * with gemmlowp's fixed-point steps. */
#include <string.h>

#include "mcuforge_int8.h"

/* the largest of x[0..n), n >= 1; with the DSP extension four bytes per step (SSUB8 sets the GE
 * flags where the new bytes are at least the maxima, SEL takes those), as the max pool does */
static inline int32_t row_max(const int8_t *x, int32_t n) {
    int32_t max = -128, i = 0;
#if defined(MCUFORGE_USE_DSP)
    if (n >= 4) {
        uint32_t m = 0x80808080u, w, t;
        int8_t lanes[4];
        int32_t j;
        for (; i + 4 <= n; i += 4) {
            memcpy(&w, x + i, 4);
            __asm__("ssub8 %[t], %[w], %[m]\n\t"
                    "sel %[m], %[w], %[m]"
                    : [m] "+&r"(m), [t] "=&r"(t)
                    : [w] "r"(w)
                    : "cc");
        }
        memcpy(lanes, &m, 4);
        for (j = 0; j < 4; ++j) max = lanes[j] > max ? lanes[j] : max;
    }
#endif
    for (; i < n; ++i) max = x[i] > max ? x[i] : max;
    return max;
}

void mcuforge_softmax_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t n, const int32_t *exps,
                         int32_t diff_min) {
    int32_t r, i;
    for (r = 0; r < rows; ++r, x += n, y += n) {
        const int32_t max = row_max(x, n);
        int32_t sum = 0, headroom = 0, reciprocal, exponent;
        for (i = 0; i < n; ++i)
            if (x[i] - max >= diff_min) sum += mcuforge_rdbpot(exps[x[i] - max + 255], 12); /* Q12.19 */
        while (!((uint32_t)sum << headroom & 0x80000000u)) ++headroom; /* leading zeros; sum > 0 */
        reciprocal = mcuforge_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
        exponent = 12 - headroom + 31 - 8; /* 1 / sum = reciprocal * 2^(headroom - 12) */
        for (i = 0; i < n; ++i) {
            const int32_t d = x[i] - max;
            y[i] = d < diff_min ? -128
                                : mcuforge_sat8(mcuforge_rdbpot(mcuforge_srdhm(reciprocal, exps[d + 255]), exponent) - 128,
                                                -128, 127);
        }
    }
}
