/* int8 log_softmax along the last axis (TFLite's int8 LOG_SOFTMAX; output scale 16/256, zero point
 * 127). Each difference to the row maximum, in Q5.26, minus the log of the sum of their exps: the
 * exps come from a compile-time table (Q0.31, computed by the reference interpreter's fixed-point
 * code), the log is TFLite's fixed-point log_x_for_x_greater_than_or_equal_to_1 (Q12.19 in, Q5.26
 * out), written here like the reference interpreter's (ir/quant.py) bit for bit. */
#include "mcuforge_int8.h"

#define SQRT_HALF 1518500250 /* constants in Q0.31 */
#define SQRT_SQRT_HALF 1805811301

static int32_t leading_zeros(int32_t x) { /* x > 0 */
    int32_t n = 0;
    while (!((uint32_t)x << n & 0x80000000u)) ++n;
    return n;
}

static int32_t saturate32(int64_t v) { return (int32_t)(v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v); }

/* log(a) for a >= 1 in Q12.19 -> Q5.26: a = r * 2^z with r in [sqrt(1/2), 1) (the better of two
 * normalizations), log(r) by a rational approximation around sqrt(sqrt(1/2)), summed in Q6.25 */
static int32_t log_q12_to_q5(int32_t a) {
    const int32_t quarter = 1 << 23, head_a = leading_zeros(a), head_b = leading_zeros(mcuforge_srdhm(a, SQRT_HALF)) - 1;
    const int32_t r_a = mcuforge_srmbpot(mcuforge_srdhm(mcuforge_srmbpot(a, head_a - 1), SQRT_HALF), 1);
    const int32_t r_b = mcuforge_srmbpot(a, head_b);
    const int32_t z_a = saturate32((int64_t)mcuforge_srmbpot(12 - head_a, 25) + quarter);
    const int32_t z_b = saturate32((int64_t)mcuforge_srmbpot(12 - head_b, 25) - quarter);
    const int32_t r = r_a < r_b ? r_a : r_b, z = z_a > z_b ? z_a : z_b;
    const int64_t half_sum = (int64_t)r + SQRT_SQRT_HALF;
    const int32_t p = (int32_t)((half_sum + (half_sum >= 0 ? 1 : -1)) / 2), q = 2 * (r - SQRT_SQRT_HALF);
    const int32_t q2 = mcuforge_srdhm(q, q);
    const int32_t num = mcuforge_srdhm(q, r) + mcuforge_srdhm(mcuforge_srdhm(q, q2), 117049297);
    const int32_t denom_minus_one = mcuforge_srdhm(p, 1057819769 + q + mcuforge_srdhm(127690142, q2)) +
                                    mcuforge_srdhm(638450708, q);
    return mcuforge_srmbpot(mcuforge_srdhm(z, 1488522236) + mcuforge_srdhm(mcuforge_rdbpot(num, 6),
                                                                           mcuforge_one_over_one_plus_x(denom_minus_one)),
                            1);
}

void mcuforge_log_softmax_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t n, const int32_t *exps,
                             int32_t multiplier, int32_t shift, int32_t diff_min, int32_t reverse_multiplier,
                             int32_t reverse_shift) {
    int32_t r, i;
    for (r = 0; r < rows; ++r, x += n, y += n) {
        int32_t max = -128, sum = 0, log_sum, lowest, min;
        for (i = 0; i < n; ++i) max = x[i] > max ? x[i] : max;
        for (i = 0; i < n; ++i)
            if (x[i] - max >= diff_min) sum += mcuforge_rdbpot(exps[x[i] - max + 255], 12); /* Q12.19 */
        log_sum = log_q12_to_q5(sum);
        /* the lowest difference whose result is representable: log_sum - 32 in input steps */
        lowest = mcuforge_mbqm((int32_t)((int64_t)log_sum + INT32_MIN), reverse_multiplier, reverse_shift);
        min = diff_min - 1 > lowest ? diff_min - 1 : lowest;
        for (i = 0; i < n; ++i) {
            const int32_t d = x[i] - max;
            y[i] = d <= min ? -128
                            : mcuforge_sat8(mcuforge_rdbpot(mcuforge_mbqm(d, multiplier, shift) - log_sum, 22) + 127,
                                            -128, 127);
        }
    }
}
