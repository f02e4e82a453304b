"""quant.py: TFLite's fixed-point helpers on hand-computed values (edge cases included), and each
op's parameter function against values worked out by hand from TFLite Micro's Prepare formulas."""
import math

import numpy as np
import pytest

from mcuforge.errors import Error
from mcuforge.ir import quant as Q

MIN, MAX = -(1 << 31), (1 << 31) - 1
HALF = 1 << 30  # 0.5 as a Q31 multiplier


def ints(a):
    return np.asarray(a).tolist()


# ---------------------------------------------------------------- fixed-point helpers

def test_saturating_rounding_doubling_high_mul():
    srdhm = Q.saturating_rounding_doubling_high_mul
    assert ints(srdhm(MIN, MIN)) == MAX  # the one product that does not fit saturates
    assert ints(srdhm(MIN, MAX)) == -MAX  # -(2^31)(2^31 - 1) / 2^31, exact
    assert ints(srdhm(MAX, MAX)) == MAX - 1  # 2^31 - 2 + 2^-31 rounds down
    assert ints(srdhm(HALF, HALF)) == 1 << 29
    # a * b / 2^31 with ties: +0.5 -> 1, -0.5 -> 0, -1.5 -> -1 (the nudge rounds ties upward)
    assert ints(srdhm([1, -1, -3, 3], HALF)) == [1, 0, -1, 2]
    assert ints(srdhm([7, -7], 1 << 28)) == [1, -1]  # +-0.875
    assert ints(srdhm(-32768, -32768, 16)) == 32767
    assert ints(srdhm([16384, 3, -3], 16384, 16)) == [8192, 2, -1]  # Q15: 1.5 -> 2, -1.5 -> -1


def test_saturating_doubling_high_mul16_truncates():
    assert ints(Q.saturating_doubling_high_mul16([-32768, 3, -3, 16384], [-32768, 16384, 16384, 16384])) == \
        [32767, 1, -1, 8192]


def test_rounding_divide_by_pot():
    rdbpot = Q.rounding_divide_by_pot
    assert ints(rdbpot([5, -5, -4, 7, -6, -5, 6], [1, 1, 1, 2, 2, 2, 2])) == [3, -3, -2, 2, -2, -1, 2]
    # negative ties go away from zero: -2.5 -> -3, -1.5 -> -2
    assert ints(rdbpot([-5, -3], 1)) == [-3, -2]
    assert ints(rdbpot([MAX, MIN, 0, -1], 0)) == [MAX, MIN, 0, -1]  # shift 0 is the identity
    assert ints(rdbpot([MAX, MIN, HALF, -HALF, -HALF + 1, HALF - 1], 31)) == [1, -1, 1, -1, 0, 0]


def test_saturating_rounding_multiply_by_pot():
    srmpot = Q.saturating_rounding_multiply_by_pot
    assert ints(srmpot([3, -3, 1 << 29, -(1 << 29) - 1, (1 << 29) - 1], 2)) == [12, -12, MAX, MIN, MAX - 3]
    assert ints(srmpot([5, -5], -1)) == [3, -3]


def test_multiply_by_quantized_multiplier_double_rounding():
    mbqm = Q.multiply_by_quantized_multiplier
    assert ints(mbqm([100, 3, -3], HALF, 0)) == [50, 2, -1]  # x/2: the high multiply rounds ties up
    assert ints(mbqm(3, HALF, 2)) == 6  # left shift first: 12 * 0.5
    # 5 * 0.5 / 2 = 1.25: the high multiply rounds 2.5 -> 3, the shift 1.5 -> 2 (double rounding)
    assert ints(mbqm(5, HALF, -1)) == 2
    assert ints(mbqm(MAX, HALF, -31)) == 1  # 2^30 after the multiply, 0.5 after the shift -> 1
    per_channel = mbqm(np.array([[1000], [1000]]), np.array([[HALF], [3 << 29]]), np.array([[-1], [0]]))
    assert ints(per_channel) == [[250], [750]]


def test_multiply_by_quantized_multiplier_64_bit_accumulator():
    mbqm = Q.multiply_by_quantized_multiplier
    # the multiplier is rounded to 16 bits, then one rounding (half up) of x * m16 / 2^(15 - shift)
    assert ints(mbqm(5, HALF, -1, acc64=True)) == 1  # 1.25 -> 1, where the 32-bit path gives 2
    assert ints(mbqm([1 << 40, -3], HALF, 0, acc64=True)) == [1 << 39, -1]  # -1.5 -> -1
    assert ints(mbqm(1 << 16, 0x7FFF0000, 0, acc64=True)) == 0x7FFF * 2  # not rounded up past 16 bits
    assert ints(mbqm(1 << 16, MAX, 0, acc64=True)) == 0x7FFF * 2
    assert ints(mbqm(1 << 16, 0x7FFEFFFF, 0, acc64=True)) == 0x7FFF * 2  # (m + 2^15) >> 16


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (0.5, (HALF, 0)),
    (1.0, (HALF, 1)),
    (0.75, (3 << 29, 0)),
    (-0.5, (-HALF, 0)),
    (0.1, (1717986918, -3)),  # 0.8 * 2^31 = 1717986918.4
    (2.0 ** -31, (HALF, -30)),
    (2.0 ** -32, (HALF, -31)),  # the smallest shift kept
    (2.0 ** -33, (0, 0)),  # flushed to zero
    (1 - 2.0 ** -31, (MAX, 0)),
    (1 - 2.0 ** -33, (HALF, 1)),  # the mantissa rounds up to 2^31: halved, shift + 1
    (2 - 2.0 ** -35, (HALF, 2)),
    (2.0 ** 20 + 1, ((1 << 30) + (1 << 10), 21)),
])
def test_quantize_multiplier(real, expected):
    assert Q.quantize_multiplier(real) == expected


def test_round_half_away():
    assert [Q.round_half_away(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994, 2.4)] == \
        [1, 2, 3, -1, -3, 0, 2]


Q526, Q427 = 1 << 26, 1 << 27  # 1.0 in Q5.26 and Q4.27

# (input raw, output raw) of gemmlowp's fixedpoint.h, compiled from source and run on these inputs
GEMMLOWP = {
    "exp_on_negative_values Q5.26": [(0, MAX), (-Q526, 790015308), (-Q526 // 4, 1672462419),
                                     (-3 * Q526 - 12345, 106897225), (-(1 << 30), 242), (-MAX, 0), (-1, 2147483124),
                                     (-99999999, 483927993)],
    "exp_on_negative_values Q4.27": [(MIN, 242), (-Q427, 790015308), (-123456789, 855963115), (-7, 2147483044)],
    "logistic Q4.27": [(0, HALF), (1, 1073741948), (-1, 1073741699), (Q427, 1569936226), (-Q427, 577547421),
                       (300000000, 1939959380), (-300000000, 207524267), (2000000000, 2147482924), (-2000000000, 723),
                       (123456, 1074235766)],
    "tanh Q4.27": [(0, 0), (1, 260), (-1, -260), (Q427, 1635510876), (-Q427, -1635510876), (300000000, 2098890980),
                   (-300000000, -2098890980), (2000000000, MAX), (-2000000000, -MAX), (123456, 1975528)],
    "one_over_one_plus_x": [(0, MAX), (1, MAX), (HALF, 1431655762), (MAX, 1073741820), (123456789, 2030738432)],
    "one_minus_x_over_one_plus_x": [(0, MAX), (1, MAX), (HALF, 715827876), (MAX, -8), (123456789, 1913993216)],
}
FUNCTIONS = {
    "exp_on_negative_values Q5.26": lambda a: Q.exp_on_negative_values(a, 5),
    "exp_on_negative_values Q4.27": lambda a: Q.exp_on_negative_values(a, 4),
    "logistic Q4.27": lambda a: Q.logistic(a, 4),
    "tanh Q4.27": lambda a: Q.tanh(a, 4),
    "one_over_one_plus_x": Q.one_over_one_plus_x_for_x_in_0_1,
    "one_minus_x_over_one_plus_x": Q.one_minus_x_over_one_plus_x_for_x_in_0_1,
}


@pytest.mark.parametrize("name", GEMMLOWP)
def test_fixed_point_functions_match_gemmlowp(name):
    inputs, outputs = zip(*GEMMLOWP[name])
    assert ints(FUNCTIONS[name](np.array(inputs))) == list(outputs)


def test_fixed_point_functions_approximate_the_real_ones():
    a = -np.arange(0, 32 * Q526, Q526 // 7)  # -32 .. 0 in steps of 1/7
    assert np.abs(np.asarray(Q.exp_on_negative_values(a, 5)) / 2 ** 31 - np.exp(a / Q526)).max() < 2e-7
    a = np.arange(-16 * Q427 + 1, 16 * Q427, Q427 // 5)
    lg, th = np.asarray(Q.logistic(a, 4)), np.asarray(Q.tanh(a, 4))
    assert np.abs(lg / 2 ** 31 - 1 / (1 + np.exp(-a / Q427))).max() < 1e-7
    assert np.abs(th / 2 ** 31 - np.tanh(a / Q427)).max() < 2e-7
    assert ints(Q.logistic(-a, 4)) == ints(MAX - lg)  # 1 - logistic(x), exactly as gemmlowp does it
    assert ints(Q.tanh(-a, 4)) == ints(-th)


def test_reciprocals():
    a = np.arange(1, 64) * (MAX // 64)
    assert np.abs(np.asarray(Q.one_over_one_plus_x_for_x_in_0_1(a)) / 2 ** 31 - 1 / (1 + a / 2 ** 31)).max() < 4e-9
    assert np.abs(np.asarray(Q.one_minus_x_over_one_plus_x_for_x_in_0_1(a)) / 2 ** 31
                  - (1 - a / 2 ** 31) / (1 + a / 2 ** 31)).max() < 4e-9
    # 1/x for x in Q12.19 as (r, bits), 1/x = r * 2^-bits: 1.0 -> (1.0 saturated, 0),
    # 3.0 -> (2/3, 1), 1000.5 -> (512/1000.5, 9)
    recip, bits = Q.get_reciprocal(np.array([1 << 19, 3 << 19, 2001 << 18]), 12)
    assert ints(bits) == [0, 1, 9]
    assert ints(recip)[0] == MAX
    assert np.abs(np.asarray(recip) / 2 ** 31 - [1, 2 / 3, 512 / 1000.5]).max() < 2e-9


# ---------------------------------------------------------------- parameters

def test_activation_range():
    assert Q.activation_range("none", 0.1, -3, "i8") == (-128, 127)
    assert Q.activation_range("relu", 0.1, -3, "i8") == (-3, 127)
    assert Q.activation_range("relu6", 0.1, -3, "i8") == (-3, 57)  # -3 + round(6 / 0.1)
    assert Q.activation_range("relu6", 0.01, 100, "i8") == (100, 127)  # 700 clamps to the type
    assert Q.activation_range("relu", 0.5, -128, "i8") == (-128, 127)
    assert Q.activation_range("relu6", 1 / 4096, 0, "i16") == (0, 24576)
    assert Q.activation_range("relu6", 12.0, 0, "i8") == (0, 1)  # 6 / 12 = 0.5 rounds away from zero
    with pytest.raises(ValueError, match="gelu"):
        Q.activation_range("gelu", 0.1, 0, "i8")


def test_fused_activation_inverts_activation_range():
    for act in ("none", "relu", "relu6"):
        assert Q.fused_activation(*Q.activation_range(act, 0.05, -10, "i8"), 0.05, -10, "i8") == act
    assert Q.fused_activation(0, 5, 0.05, -10, "i8") is None


def test_requantize_params():
    assert Q.requantize_params(0.5, 3, 0.25, -2) == dict(in_zp=3, out_zp=-2, multiplier=[HALF], shift=[2], dtype="i8")
    assert Q.requantize_params(0.5, 3, 1.0, 0, "i16")["multiplier"] == [HALF]


def test_conv_and_linear_params():
    p = Q.conv_params(0.5, [0.25, 0.125], 1.0, 1, -1, "relu")
    assert p == dict(in_zp=1, out_zp=-1, multiplier=[HALF, HALF], shift=[-2, -3], act_min=-1, act_max=127)
    # per-tensor FULLY_CONNECTED also multiplies in double: 0.1f * 0.3f / 0.7f
    s_in, s_w, s_out = (float(np.float32(v)) for v in (0.1, 0.3, 0.7))
    expected = Q.quantize_multiplier(s_in * s_w / s_out)[0]
    assert Q.linear_params(0.1, [0.3], 0.7, 0, 0, "none")["multiplier"] == [expected]
    assert Q.conv_params(0.1, [0.3], 0.7, 0, 0, "none", "i16")["act_min"] == -32768


def test_scales_are_read_as_float32():
    # 0.1 as float32 is 0.100000001490116...; the multiplier of 0.1 / 1.0 keeps that last bit
    assert Q.requantize_params(0.1, 0, 1.0, 0)["multiplier"] == [Q.quantize_multiplier(float(np.float32(0.1)))[0]]
    assert Q.quantize_multiplier(0.1)[0] != Q.quantize_multiplier(float(np.float32(0.1)))[0]


def test_add_params():
    p = Q.add_params(0.5, 1, 0.25, 2, 1.0, 0, "none")
    # twice the larger input scale is 1.0: inputs x0.5 and x0.25, output 1.0 / (2^20 * 1.0)
    assert p == dict(a_zp=1, b_zp=2, out_zp=0, left_shift=20, a_multiplier=HALF, a_shift=0, b_multiplier=HALF,
                     b_shift=-1, multiplier=HALF, shift=-19, act_min=-128, act_max=127)
    p16 = Q.add_params(0.5, 0, 0.25, 0, 1.0, 0, "relu", "i16")
    assert (p16["left_shift"], p16["shift"], p16["act_min"], p16["act_max"]) == (15, -14, 0, 32767)
    with pytest.raises(Error, match="output multiplier"):
        Q.add_params(0.5, 0, 0.5, 0, 1e-7, 0, "none")  # 1 / (2^20 * 1e-7) > 1


def test_mul_params():
    assert Q.mul_params(0.5, 1, 0.25, -1, 0.0625, 3, "relu6") == \
        dict(a_zp=1, b_zp=-1, out_zp=3, multiplier=HALF, shift=2, act_min=3, act_max=99)


def test_avg_pool_params():
    assert Q.avg_pool_params(0.1, -3, "relu6") == dict(act_min=-3, act_max=57)


def test_mean_params_fold_the_count():
    # s_in / s_out = 1 -> (2^30, 1); 1/6 folds in: shift by floor(log2 6) = 2, (2^30 << 2) // 6
    assert Q.mean_params(0.5, 3, 0.5, -1, 6) == dict(in_zp=3, out_zp=-1, multiplier=715827882, shift=-1)
    assert Q.mean_params(0.5, 3, 0.5, -1, 1) == dict(in_zp=3, out_zp=-1, multiplier=HALF, shift=1)
    # the shift is capped at 31 + shift so the result's shift stays >= -31
    assert Q.mean_params(2.0 ** -20, 0, 1.0, 0, 1 << 20)["shift"] == -31


def test_softmax_params():
    # beta * s_in * 2^26 = 2^22 -> (2^30, 23); diff_min = -floor(31 * 2^26 / 2^23)
    assert Q.softmax_params(1.0, 2.0 ** -4) == dict(multiplier=HALF, shift=23, diff_min=-248)
    # a large scale caps the real multiplier at 2^31 - 1: every difference but 0 is ignored
    assert Q.softmax_params(1.0, 64.0) == dict(multiplier=MAX, shift=31, diff_min=0)
    assert Q.softmax_params(2.0, 2.0 ** -5) == Q.softmax_params(1.0, 2.0 ** -4)
    with pytest.raises(Error, match="2\\^-26"):
        Q.softmax_params(1.0, 2.0 ** -27)


def test_logistic_and_tanh_params():
    # s_in * 2^27 = 2^23 = 0.5 * 2^24 -> multiplier 2^30, shift 24; radius floor(15 * 2^27 / 2^24)
    assert Q.logistic_params(2.0 ** -4, 5) == dict(in_zp=5, range_radius=120, multiplier=HALF, shift=24)
    assert Q.tanh_params(2.0 ** -4, 5) == Q.logistic_params(2.0 ** -4, 5)
    p = Q.logistic_params(0.1, 0)  # float32(0.1) * 2^27 = 13421773 = 0.80000001 * 2^24
    assert (p["multiplier"], p["shift"], p["range_radius"]) == (13421773 << 7, 24, 120)


def test_hardswish_params():
    # input 1/16 at 1/128 is 2^-11; output x 2^-11 / 2^-5 = 2^-6 -> Q31 2^30, shift -5 -> Q15 2^14;
    # relu-ish x 2^-11 / (3 / 2^15) = 16/3 -> 0.666.. * 2^3 -> Q31 1431655765 -> Q15 0x5555
    assert Q.hardswish_params(1 / 16, 2, 1 / 32, -3) == dict(in_zp=2, out_zp=-3, relu_multiplier=0x5555, relu_shift=3,
                                                             out_multiplier=1 << 14, out_shift=-5)
    assert Q._to_q15(MAX) == 32767 and Q._to_q15(HALF) == 1 << 14
    with pytest.raises(Error, match="hardswish"):
        Q.hardswish_params(1.0, 0, 1 / 256, 0)  # an output multiplier above 1


def test_leaky_relu_params():
    assert Q.leaky_relu_params(0.5, 1, 0.25, 2, 0.25) == dict(in_zp=1, out_zp=2, alpha_multiplier=HALF, alpha_shift=0,
                                                            id_multiplier=HALF, id_shift=2)
    assert Q.leaky_relu_params(0.5, 1, 0.25, 2, -0.25)["alpha_multiplier"] == -HALF
    p = Q.leaky_relu_params(0.3, 0, 0.2, 0, 0.1)  # 0.15 = 0.6 * 2^-2
    assert p["alpha_shift"] == -2 and math.isclose(p["alpha_multiplier"] / 2 ** 31, 0.6, rel_tol=1e-7)
