"""The fixed-point arithmetic of TFLite Micro's integer kernels, and the parameters of each integer op.

Two halves, both bit-exact to TFLite Micro's *reference* kernels:
- helpers that compute what tensorflow/lite/kernels/internal/common.h and gemmlowp's
  fixedpoint.h compute, vectorized over numpy int64 arrays that hold int32 values (inputs are
  assumed in the ranges the kernels guarantee; C's overflow cases are not emulated);
- one `*_params` function per integer op, computing its attributes (ops.py, "integer ops") from
  float scales and zero points as the op's Prepare in tflite-micro's kernels/*.cc does, and the
  lookup tables of its int16 LOGISTIC, TANH and SOFTMAX; `PARAMS` maps each integer op to its
  function, and `params(op, operand types, result type, attrs)` is what the rest calls.

Rounding: TFLite Micro's reference build leaves TFLITE_SINGLE_ROUNDING unset, so
`multiply_by_quantized_multiplier` is the "double rounding" one: a saturating rounding doubling
high multiply (ties round up), then a rounding right shift (ties round away from zero).

Scales: a .tflite file stores scales as float32 and TFLite Micro computes from those, so every
`*_params` function first rounds its scales to float32 and then follows the kernel's own mix of
float and double arithmetic (multipliers in double from float32 scales, activation clamps in
float32): the last bit of a multiplier depends on it. Checked op by op against the interpreter of
the tflite-micro package 0.dev20261023 (whose SUB, LEAKY_RELU and HARD_SWISH Prepare compute in
double, like ADD; older sources compute them in float).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import Error
from .types import DType

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def _d(scale) -> float:
    """A scale as TFLite Micro reads it: float32, widened to double."""
    return float(np.float32(scale))


def round_half_away(v: float) -> int:
    """C's std::round of one float: nearest integer, ties away from zero (exact, no v + 0.5)."""
    a = abs(v)
    r = math.floor(a)
    r += a - r >= 0.5
    return int(math.copysign(r, v))


# ---------------------------------------------------------------- fixed-point helpers

def saturating_rounding_doubling_high_mul(a, b, bits: int = 32):
    """gemmlowp's SaturatingRoundingDoublingHighMul (ARM SQRDMULH) on `bits`-bit values (32 or
    16): a * b / 2^(bits-1), rounded to nearest with ties upward (-0.5 -> 0); MIN * MIN, the one
    product that does not fit, saturates to MAX."""
    a, b = _i64(a), _i64(b)
    lo = -(1 << (bits - 1))
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << (bits - 2), 1 - (1 << (bits - 2)))
    high = np.sign(nudged) * (np.abs(nudged) >> (bits - 1))  # C division truncates toward zero
    return np.where((a == lo) & (b == lo), -lo - 1, high)


def saturating_doubling_high_mul16(a, b):
    """TFLite's 16-bit SaturatingDoublingHighMul (ARM SQDMULH): like the rounding one, but the
    quotient is truncated toward zero."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    return np.where((a == -32768) & (b == -32768), 32767, np.sign(ab) * (np.abs(ab) >> 15))


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero
    (an arithmetic right shift that rounds); `exponent` in 0..31, per element or scalar."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + ((x & mask) > threshold)


def saturating_rounding_multiply_by_pot(x, exponent: int):
    """gemmlowp's SaturatingRoundingMultiplyByPOT on int32: x * 2^exponent, saturating when
    shifting left, rounding (`rounding_divide_by_pot`) when shifting right."""
    x = _i64(x)
    if exponent <= 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def multiply_by_quantized_multiplier(x, multiplier, shift, acc64: bool = False):
    """TFLite's MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)).

    The int32 overload (acc64=False) is the double-rounding one of TFLite Micro's reference
    build: x * 2^max(shift, 0), then `saturating_rounding_doubling_high_mul`, then
    `rounding_divide_by_pot` by max(-shift, 0). The int64 overload (acc64=True, the int16x8
    kernels' 64-bit accumulators) rounds the multiplier to 16 bits first and rounds once, half up.
    """
    x, m, s = _i64(x), _i64(multiplier), _i64(shift)
    if acc64:
        reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
        total = 15 - s
        return (x * reduced + (np.int64(1) << (total - 1))) >> total
    left, right = np.maximum(s, 0), np.maximum(-s, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x << left, m), right)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: `real` = multiplier * 2^(shift - 31), multiplier a Q31 int32
    in [2^30, 2^31) (negative for negative `real`) -> (multiplier, shift).

    0 gives (0, 0); a mantissa that rounds up to 2^31 becomes 2^30 with the shift one higher;
    values below about 2^-32 (shift < -31) flush to (0, 0).
    """
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed, shift = q_fixed // 2, shift + 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


# The gemmlowp fixed-point functions below take and return raw int32 values of
# FixedPoint<int32, integer_bits>, i.e. real = raw * 2^(integer_bits - 31).

def _mul(a, b):  # product of two fixed-point values: the integer bits add up
    return saturating_rounding_doubling_high_mul(a, b)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: a Taylor series around -1/8."""
    constant_term, one_third = 1895147668, 715827883  # exp(-1/8), 1/3
    x = a + (1 << 28)  # a + 1/8
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4_over_4 = rounding_divide_by_pot(_mul(x2, x2), 2)
    poly = rounding_divide_by_pot(_mul(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + _mul(constant_term, x + poly)


# exp(-2^k) in Q0.31 for k = -2..4: the factors of the barrel shifter
_EXP_OF_MINUS_POT = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                     (2, 39332535), (3, 720401), (4, 242)]


def exp_on_negative_values(a, integer_bits: int):
    """gemmlowp's exp_on_negative_values: exp(a) for a <= 0 in Q`integer_bits` (at most 5, as
    TFLite uses it) -> Q0.31: exp of a's remainder modulo 1/4 by the Taylor series, times
    exp(-2^k) for each set bit k of the rest."""
    a = _i64(a)
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod, integer_bits))
    remainder = a_mod - a
    for k, factor in _EXP_OF_MINUS_POT:
        if integer_bits > k:
            result = np.where(remainder & (1 << (frac + k)), _mul(result, factor), result)
    return np.where(a == 0, INT32_MAX, result)


def _rounding_half_sum(a, b):
    """gemmlowp's RoundingHalfSum: (a + b) / 2, ties away from zero."""
    s = _i64(a) + _i64(b)
    s = s + np.where(s >= 0, 1, -1)
    return np.sign(s) * (np.abs(s) >> 1)


def _newton_reciprocal(a):
    """1 / (1 + a) for a in (0, 1) in Q0.31, as Q2.29 (three Newton-Raphson steps from 48/17 - 32/17 d)."""
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = 1515870810 + _mul(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - _mul(half_denominator, x)
        x = x + saturating_rounding_multiply_by_pot(_mul(x, one_minus), 2)
    return x


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp's one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a), Q0.31 in and out."""
    return saturating_rounding_multiply_by_pot(_newton_reciprocal(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp's one_minus_x_over_one_plus_x_for_x_in_0_1: (1 - a) / (1 + a), Q0.31 in and out."""
    return saturating_rounding_multiply_by_pot(_newton_reciprocal(a) - (1 << 29), 2)


def logistic(a, integer_bits: int):
    """gemmlowp's logistic: 1 / (1 + exp(-a)), Q`integer_bits` in, Q0.31 out."""
    a = _i64(a)
    positive = a > 0
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-np.abs(a), integer_bits))
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, INT32_MAX - if_positive))


def tanh(a, integer_bits: int):
    """gemmlowp's tanh: (1 - exp(-2|a|)) / (1 + exp(-2|a|)) with a's sign, Q`integer_bits` in,
    Q0.31 out."""
    a = _i64(a)
    # exp(2n) for n = -|a|: the same raw value read with one more integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-np.abs(a), integer_bits + 1))
    return np.where(a == 0, 0, np.where(a < 0, -t, t))


def get_reciprocal(x, integer_bits: int):
    """TFLite's GetReciprocal for x > 0 in Q`integer_bits`: (1/x scaled into [1/2, 1) as Q0.31,
    num_bits_over_unit) with 1/x = result * 2^-num_bits_over_unit."""
    x = _i64(x)
    headroom_plus_one = 32 - np.frexp(x.astype(np.float64))[1]  # count of leading zeros (x < 2^31)
    shifted_minus_one = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), integer_bits - headroom_plus_one


def _shift_left(x, exponent):
    """TFLite's SaturatingRoundingMultiplyByPOTParam for exponent >= 0 (per element)."""
    x, e = _i64(x), _i64(exponent)
    threshold = (np.int64(1) << (31 - e)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << e))


def clz(x):
    """Leading zero bits of positive int32 values."""
    return 32 - np.frexp(_i64(x).astype(np.float64))[1]


# log(2), sqrt(sqrt(1/2)), sqrt(1/2) and the coefficients of the rational approximation, Q0.31
_LOG_2, _SQRT_SQRT_HALF, _SQRT_HALF = 1488522236, 1805811301, 1518500250
_ALPHA_N, _ALPHA_D, _ALPHA_I, _ALPHA_F = 117049297, 127690142, 1057819769, 638450708


def log_x_for_x_greater_than_or_equal_to_1(a, input_bits: int, output_bits: int):
    """TFLite's log_x_for_x_greater_than_or_equal_to_1: log(a) for a >= 1, Q`input_bits` in,
    Q`output_bits` out. a = r * 2^z with r in [sqrt(1/2), 1) (the better of two normalizations,
    one premultiplied by sqrt(1/2)); log(r) by a rational approximation around sqrt(sqrt(1/2)),
    accumulated with one bit of headroom."""
    a, accum = _i64(a), output_bits + 1
    quarter = rounding_divide_by_pot(1 << 29, accum)
    headroom_a = clz(a)
    r_a = _shift_left(_mul(_shift_left(a, headroom_a - 1), _SQRT_HALF), 1)
    z_a = np.minimum(_shift_left(input_bits - headroom_a, 31 - accum) + quarter, INT32_MAX)
    headroom_b = clz(_mul(a, _SQRT_HALF)) - 1
    r_b = _shift_left(a, headroom_b)
    z_b = np.maximum(_shift_left(input_bits - headroom_b, 31 - accum) - quarter, INT32_MIN)
    r, z = np.minimum(r_a, r_b), np.maximum(z_a, z_b)
    p = _rounding_half_sum(r, _SQRT_SQRT_HALF)
    q = 2 * (r - _SQRT_SQRT_HALF)
    q2 = _mul(q, q)
    num = _mul(q, r) + _mul(_mul(q, q2), _ALPHA_N)
    denom_minus_one = _mul(p, _ALPHA_I + q + _mul(_ALPHA_D, q2)) + _mul(_ALPHA_F, q)
    log = _mul(z, _LOG_2) + _mul(rounding_divide_by_pot(num, accum), one_over_one_plus_x_for_x_in_0_1(denom_minus_one))
    return saturating_rounding_multiply_by_pot(log, accum - output_bits)


# ---------------------------------------------------------------- per-op parameters

def _range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(DType(dtype).np)
    return int(info.min), int(info.max)


def activation_range(act: str, scale: float, zero_point: int, dtype: str) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized: the integer clamp (act_min, act_max) of fused
    activation `act` ("none", "relu", "relu6") on an output of `scale`/`zero_point`/`dtype`."""
    lo, hi = _range(dtype)

    def q(real):  # TFLite computes real / scale in float32
        return zero_point + round_half_away(float(np.float32(real) / np.float32(scale)))
    if act not in ("none", "relu", "relu6"):
        raise ValueError(f"unknown fused activation '{act}'")
    if act != "none":
        lo = max(lo, q(0.0))
    if act == "relu6":
        hi = min(hi, q(6.0))
    return lo, hi


def fused_activation(act_min: int, act_max: int, scale: float, zero_point: int, dtype: str) -> str | None:
    """The fused activation whose `activation_range` is (act_min, act_max), or None (a clamp no
    TFLite activation produces)."""
    return next((a for a in ("none", "relu", "relu6")
                 if activation_range(a, scale, zero_point, dtype) == (act_min, act_max)), None)


def _smaller_than_one(real: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: the kernels that use it only shift right."""
    if not 0 < real < 1:
        raise Error(f"{what} multiplier {real:.6g} is outside (0, 1), which TFLite's kernel needs",
                    "the output scale is too small for the input scales; recalibrate the model")
    return quantize_multiplier(real)


def requantize_params(s_in, zp_in, s_out, zp_out, dtype: str = "i8") -> dict:
    """requantize (TFLite QUANTIZE between integer types): in_zp, out_zp, multiplier, shift, dtype."""
    m, s = quantize_multiplier(_d(s_in) / _d(s_out))
    return dict(in_zp=int(zp_in), out_zp=int(zp_out), multiplier=[m], shift=[s], dtype=dtype)


def conv_params(s_in, s_w, s_out, zp_in, zp_out, act: str, dtype: str = "i8") -> dict:
    """qconv1d/qconv2d/qconv_transpose2d (TFLite's PopulateConvolutionQuantizationParams): one
    multiplier/shift per weight scale from s_in * s_w[c] / s_out in double, and the clamp."""
    pairs = [quantize_multiplier(_d(s_in) * _d(sw) / _d(s_out)) for sw in s_w]
    lo, hi = activation_range(act, s_out, zp_out, dtype)
    return dict(in_zp=int(zp_in), out_zp=int(zp_out), multiplier=[m for m, _ in pairs],
                shift=[s for _, s in pairs], act_min=lo, act_max=hi)


linear_params = conv_params  # qlinear: FULLY_CONNECTED prepares per-channel and per-tensor alike


def add_params(s_a, zp_a, s_b, zp_b, s_out, zp_out, act: str, dtype: str = "i8") -> dict:
    """qadd and qsub: both inputs rescaled to twice the larger input scale with `left_shift` bits
    of headroom (20 for int8, 15 for int16), summed (subtracted), then rescaled to the output."""
    left_shift = 15 if dtype == "i16" else 20
    twice = 2 * max(_d(s_a), _d(s_b))
    real_a, real_b, real_out = _d(s_a) / twice, _d(s_b) / twice, twice / ((1 << left_shift) * _d(s_out))
    (am, ash), (bm, bsh), (m, s) = (_smaller_than_one(r, f"add/sub {w}")
                                    for r, w in [(real_a, "input a"), (real_b, "input b"), (real_out, "output")])
    lo, hi = activation_range(act, s_out, zp_out, dtype)
    return dict(a_zp=int(zp_a), b_zp=int(zp_b), out_zp=int(zp_out), left_shift=left_shift, a_multiplier=am,
                a_shift=ash, b_multiplier=bm, b_shift=bsh, multiplier=m, shift=s, act_min=lo, act_max=hi)


def mul_params(s_a, zp_a, s_b, zp_b, s_out, zp_out, act: str, dtype: str = "i8") -> dict:
    """qmul: one multiplier for s_a * s_b / s_out (double), and the clamp."""
    m, s = quantize_multiplier(_d(s_a) * _d(s_b) / _d(s_out))
    lo, hi = activation_range(act, s_out, zp_out, dtype)
    return dict(a_zp=int(zp_a), b_zp=int(zp_b), out_zp=int(zp_out), multiplier=m, shift=s, act_min=lo, act_max=hi)


def avg_pool_params(scale, zero_point, act: str = "none", dtype: str = "i8") -> dict:
    """qavg_pool1d/2d (input and output share scale and zero point): just the clamp."""
    lo, hi = activation_range(act, scale, zero_point, dtype)
    return dict(act_min=lo, act_max=hi)


def mean_params(s_in, zp_in, s_out, zp_out, count: int) -> dict:
    """qmean over `count` elements: the multiplier of s_in / s_out with 1/count folded in the way
    TFLite's QuantizedMeanOrSum does (shift by floor(log2(count)), at most 32, then an integer
    division), so the kernel needs no division."""
    m, s = quantize_multiplier(_d(s_in) / _d(s_out))
    k = min(count.bit_length() - 1, 32, 31 + s)
    if k < 0:  # no elements, or a scale ratio below the multiplier's range
        raise Error(f"mean over {count} elements with input/output scale ratio {_d(s_in) / _d(s_out):g}: "
                    "outside the range of TFLite's integer mean")
    return dict(in_zp=int(zp_in), out_zp=int(zp_out), multiplier=(m << k) // count, shift=s - k)


def softmax_params(beta: float, s_in, dtype: str = "i8") -> dict:
    """qsoftmax (int8 in, int8 out of scale 1/256 and zero point -128): the multiplier that turns
    input differences into Q5.26 (PreprocessSoftmaxScaling, capped at 2^31 - 1), and diff_min, the
    most negative difference whose exp still counts (CalculateInputRadius). int16 (out 1/32768, 0):
    the multiplier onto steps of 10/65535, `EXP_LUT16`'s (QuantizeMultiplier; a shift above 15
    would overflow TFLite's int32 differences), and diff_min -65535: every difference counts."""
    if dtype == "i16":
        m, s = quantize_multiplier(_d(s_in) * _d(beta) / (10 / 65535))
        if s > 15:
            raise Error(f"int16 softmax input scale {s_in} x beta {beta} is above 2^15 x 10/65535, which TFLite's "
                        "kernel cannot represent", "recalibrate the model so the softmax input has a smaller range")
        return dict(multiplier=m, shift=s, diff_min=-65535)
    real = min(_d(beta) * _d(s_in) * (1 << 26), (1 << 31) - 1.0)
    if real <= 1:
        raise Error(f"softmax input scale {s_in} x beta {beta} is below 2^-26, which TFLite's kernel cannot "
                    "represent", "recalibrate the model so the softmax input has a larger range")
    m, s = quantize_multiplier(real)
    return dict(multiplier=m, shift=s, diff_min=-math.floor(31 * 2.0 ** 26 / 2.0 ** s))


def log_softmax_params(s_in) -> dict:
    """qlog_softmax (int8 in, int8 out of scale 16/256 and zero point 127): `softmax_params`'
    multiplier, shift and diff_min (beta 1), and the inverse of that multiplier (reverse_multiplier,
    reverse_shift <= 0; PreprocessLogSoftmaxScalingExp) that maps the log-sum back to input steps."""
    p = softmax_params(1.0, s_in)
    rm, rs = _smaller_than_one((1 << (31 - p["shift"])) / p["multiplier"], "log_softmax reverse scaling")
    return dict(p, reverse_multiplier=rm, reverse_shift=rs)


def logistic_params(s_in, zp_in, dtype: str = "i8") -> dict:
    """qlogistic (int8: output scale 1/256, zero point -128) and qtanh (int8: 1/128, 0), which
    TFLite Micro prepares alike: the multiplier that turns inputs into Q4.27 (frexp + round, not
    QuantizeMultiplier) and range_radius, beyond which the result saturates. int16: `sigmoid16_params`."""
    if dtype == "i16":
        return sigmoid16_params(s_in, zp_in, (0,))
    q, shift = math.frexp(_d(s_in) * (1 << 27))
    return dict(in_zp=int(zp_in), range_radius=math.floor(15 * 2.0 ** 27 / 2.0 ** shift),
                multiplier=round_half_away(q * (1 << 31)), shift=shift)


def tanh_params(s_in, zp_in, dtype: str = "i8") -> dict:
    """qtanh: `logistic_params` for int8; for int16, `sigmoid16_params` takes the power of two 2^-11 too."""
    return sigmoid16_params(s_in, zp_in, (0, 1)) if dtype == "i16" else logistic_params(s_in, zp_in)


# TFLite's table for int16 LOGISTIC and TANH: sigmoid(i / 24), i = 0..255, in Q0.16, rounded, and
# one higher at these indices (against the error of interpolating where the curve bends; the last
# entry then reads 65535)
_RAISED = [4, 8, 12, 14, 15, 16, 17, 19, 20, 21, 22, 25, 27, 28, 29, 30, 31, 33, 34, 35, 37, 39, 40, 41, 43, 44,
           45, 46, 49, 50, 54, 62, 63, 64, 66, 82, 86, 93, 100, 103, 112, 116, 135, 255]
SIGMOID_TABLE = np.floor(65536 / (1 + np.exp(-np.arange(256) / 24)) + 0.5).astype(np.int64)
SIGMOID_TABLE[_RAISED] += 1


def _lut16(fn, input_scale: np.float32, input_zp: int) -> np.ndarray:
    """TFLite's LUTPopulate<int16_t>, in float32 as it computes: `fn` at 512 even steps over the
    int16 inputs at `input_scale` and `input_zp`, at output scale 2/65535 and zero point 0, each
    entry lowered by half its error at the middle of its step, and a last entry at the top, for
    lookups by 9 index bits and 7 interpolated ones (see interpreter._lookup16)."""
    f, rnd = np.float32, lambda v: np.sign(v) * np.floor(np.abs(v.astype(np.float64)) + 0.5)  # exact on float32
    lo, hi = input_scale * f(-32768 - input_zp), input_scale * f(32767 - input_zp)
    out_scale = f(2) / f(65535)
    inv = f(65536) / (out_scale * f(32767) - out_scale * f(-32768))
    step, i = (hi - lo) / f(512), np.arange(512, dtype=np.float32)
    val, mid, nxt = fn(lo + i * step), fn(lo + i * step + step / f(2)), fn(lo + (i + 1) * step)
    sample = rnd(val * inv)
    bias = rnd((rnd((nxt * inv + sample.astype(f)) / f(2)) - rnd(mid * inv)) / 2)
    return np.clip(np.append(sample - bias, rnd(fn(np.array([hi])) * inv)), -32768, 32767).astype(np.int64)


# TFLite's int16 SOFTMAX tables: exp on [-10, 0] (expf: exp rounded to float32) and 1 / (1 + x) on [0, 1]
EXP_LUT16 = _lut16(lambda v: np.exp(v.astype(np.float64)).astype(np.float32), np.float32(10) / np.float32(65535), 32767)
RECIPROCAL_LUT16 = _lut16(lambda v: np.float32(1) / (np.float32(1) + v), np.float32(1) / np.float32(65535), -32768)


def checked_log2(x) -> tuple[int, bool]:
    """TFLite's CheckedLog2 of a float32, in float32: log2(x) rounded, and whether x is a power of
    two (within 1e-3 of one in log2)."""
    f = np.float32
    log2 = f(math.log(_d(x))) * (f(1) / f(math.log(2.0)))
    rounded = round_half_away(float(log2))
    return rounded, bool(abs(log2 - f(rounded)) < f(1e-3))


def sigmoid16_params(s_in, zp_in, pot_shifts) -> dict:
    """qlogistic / qtanh on int16 (output scale 1/32768, zero point 0): `multiplier` (< 2^15) and
    right `shift` that bring the input to the table's steps of 1/(3 * 4096). A power-of-two scale
    for which that shift is in `pot_shifts` (2^-12 for logistic, also 2^-11 for tanh) multiplies
    by 3 << shift exactly; other scales by the scale times 12288, doubled while at most 16383.5 (the
    shift counts the doublings) and truncated. in_zp and range_radius are 0 (symmetric inputs; the
    table saturates by itself)."""
    if zp_in != 0:
        raise Error(f"int16 logistic/tanh input zero point {zp_in} is not 0, which TFLite's kernel needs",
                    "quantize int16 activations symmetrically")
    log2, pot = checked_log2(s_in)
    if pot and 12 + log2 in pot_shifts:
        return dict(in_zp=0, range_radius=0, multiplier=3 << (12 + log2), shift=0)
    m, shift = _d(s_in) * 4096 * 3, 0
    while m <= 32767 / 2 and shift <= 30:
        m, shift = m * 2, shift + 1
    if m > 32767:
        raise Error(f"int16 logistic/tanh input scale {s_in} is above 32767 / 12288, which TFLite's kernel "
                    "cannot represent", "recalibrate the model so the input range is smaller")
    return dict(in_zp=0, range_radius=0, multiplier=int(m), shift=shift)


def _to_q15(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier: a Q31 multiplier rounded to Q15."""
    return 32767 if m >= INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def hardswish_params(s_in, zp_in, s_out, zp_out) -> dict:
    """qhardswish (int8): Q15 multipliers of the "relu-ish" factor (the input at 1/128 of its
    scale, onto a scale where 3.0 is 32768) and of the output."""
    hires = _d(s_in) / 128
    om, oe = quantize_multiplier(hires / _d(s_out))
    rm, re = quantize_multiplier(hires / (3 / 32768))
    if oe > 0:
        raise Error(f"hardswish output scale {s_out} is below 1/128 of the input scale {s_in}, which TFLite's "
                    "kernel does not support", "recalibrate the model")
    return dict(in_zp=int(zp_in), out_zp=int(zp_out), relu_multiplier=_to_q15(rm), relu_shift=re,
                out_multiplier=_to_q15(om), out_shift=oe)


def leaky_relu_params(s_in, zp_in, s_out, zp_out, alpha: float) -> dict:
    """qleaky_relu: multipliers of s_in * alpha / s_out (negative for a negative alpha) and of
    s_in / s_out."""
    am, ash = quantize_multiplier(_d(s_in) * _d(alpha) / _d(s_out))
    im, ish = quantize_multiplier(_d(s_in) / _d(s_out))
    return dict(in_zp=int(zp_in), out_zp=int(zp_out), alpha_multiplier=am, alpha_shift=ash,
                id_multiplier=im, id_shift=ish)


def prelu_params(s_in, zp_in, s_alpha, zp_alpha, s_out, zp_out) -> dict:
    """qprelu: multipliers of s_in / s_out (x >= its zero point) and of s_in * s_alpha / s_out
    (the product of x and alpha, both centered, below it)."""
    im, ish = quantize_multiplier(_d(s_in) / _d(s_out))
    am, ash = quantize_multiplier(_d(s_in) * _d(s_alpha) / _d(s_out))
    return dict(in_zp=int(zp_in), alpha_zp=int(zp_alpha), out_zp=int(zp_out), id_multiplier=im, id_shift=ish,
                alpha_multiplier=am, alpha_shift=ash)


# ---------------------------------------------------------------- each op's integer form: its integer op and parameters

# float op -> the integer op lower-quantized makes of it (ops without one stay float)
INTEGER_OP = {"conv1d": "qconv1d", "conv2d": "qconv2d", "conv_transpose2d": "qconv_transpose2d",
              "linear": "qlinear", "add": "qadd", "sub": "qsub", "mul": "qmul", "avg_pool1d": "qavg_pool1d",
              "avg_pool2d": "qavg_pool2d", "mean": "qmean", "softmax": "qsoftmax", "log_softmax": "qlog_softmax",
              "sigmoid": "qlogistic", "tanh": "qtanh", "hardswish": "qhardswish", "leaky_relu": "qleaky_relu",
              "prelu": "qprelu"}
# TFLite Micro has no int16 kernel for these (its int16 PRELU wants int8 alpha: int16x8 quantizes it to int16)
INT8_ONLY = {"log_softmax", "hardswish", "prelu"}
# activation type -> float op -> the (scale, zero point) its integer kernel always writes
FIXED_OUTPUT = {"i8": {"softmax": (1 / 256, -128), "log_softmax": (16 / 256, 127), "sigmoid": (1 / 256, -128),
                       "tanh": (1 / 128, 0)},
                "i16": dict.fromkeys(("softmax", "sigmoid", "tanh"), (1 / 32768, 0))}


def _sz(t) -> tuple[float, int]:
    return t.quant.scale[0], t.quant.zero_point[0]


def _act(a: dict) -> str:
    return a.get("act", "none")


# integer op -> fn(operand types, result type, attrs) -> the op's kernel parameters, computed from
# the scales and zero points of its operands and result and the float attributes it folds in
# (`act`, softmax's `beta`, leaky relu's `alpha`; FOLDED lists those it does not keep). The
# quantize lowering, the TFLite importer and the verifier all take an op's parameters from here.
# Integer ops without parameters of their own (max pools, clamps, pads, reshapes) have no entry.
PARAMS = {
    **dict.fromkeys(("qconv1d", "qconv2d", "qconv_transpose2d", "qlinear"), lambda xs, y, a: conv_params(
        _sz(xs[0])[0], xs[1].quant.scale, _sz(y)[0], _sz(xs[0])[1], _sz(y)[1], _act(a), y.dtype.value)),
    **dict.fromkeys(("qadd", "qsub"), lambda xs, y, a: add_params(*_sz(xs[0]), *_sz(xs[1]), *_sz(y), _act(a),
                                                                   y.dtype.value)),
    "qmul": lambda xs, y, a: mul_params(*_sz(xs[0]), *_sz(xs[1]), *_sz(y), _act(a), y.dtype.value),
    "requantize": lambda xs, y, a: requantize_params(*_sz(xs[0]), *_sz(y), y.dtype.value),
    **dict.fromkeys(("qavg_pool1d", "qavg_pool2d"), lambda xs, y, a: avg_pool_params(*_sz(y), _act(a), y.dtype.value)),
    "qmean": lambda xs, y, a: mean_params(*_sz(xs[0]), *_sz(y), math.prod(xs[0].shape[ax] for ax in a["axes"])),
    "qsoftmax": lambda xs, y, a: softmax_params(a.get("beta", 1.0), _sz(xs[0])[0], y.dtype.value),
    "qlog_softmax": lambda xs, y, a: log_softmax_params(_sz(xs[0])[0]),
    "qlogistic": lambda xs, y, a: logistic_params(*_sz(xs[0]), y.dtype.value),
    "qtanh": lambda xs, y, a: tanh_params(*_sz(xs[0]), y.dtype.value),
    "qhardswish": lambda xs, y, a: hardswish_params(*_sz(xs[0]), *_sz(y)),
    "qleaky_relu": lambda xs, y, a: leaky_relu_params(*_sz(xs[0]), *_sz(y), a["alpha"]),
    "qprelu": lambda xs, y, a: prelu_params(*_sz(xs[0]), *_sz(xs[1]), *_sz(y)),
}
FOLDED = {"qsoftmax": "beta", "qleaky_relu": "alpha"}  # float attributes folded in, not kept on the op


def params(op: str, operands, result, attrs: dict | None = None) -> dict:
    """The kernel parameters of integer op `op` (PARAMS) for its operand and result TensorTypes."""
    return PARAMS[op](list(operands), result, attrs or {})
