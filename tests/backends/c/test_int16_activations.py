"""Integer int16 activations of int16x8 models (TFLite's int16 LOGISTIC, TANH and SOFTMAX, output
scale 1/32768 with zero point 0): the parameters and table math by hand; the interpreter on every
int16 input (softmax: every difference) against TFLite Micro running a one-op .tflite, bit for
bit, for input scales that take each of its code paths, and against the float op; the C kernels on
the same inputs (and on QEMU's Cortex-M4); an int16x8 model quantized end to end: no float op left, TFLite Micro and the
generated C (gcc, clang) bit for bit, close to torch. The ops without an int16 kernel in TFLite
Micro stay float islands and say why."""
import subprocess

import numpy as np
import pytest
import torch
from support.cbuild import calibration, check_host, host_and_m4, host_make
from torch import nn

import mcuforge
from mcuforge.backends.c.emit import emit_c
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.backends.tflite.runtime import run_tflm
from mcuforge.errors import Error
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir import quant as Q
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import evaluate, run
from mcuforge.ir.types import DType, QuantParams, TensorType
from mcuforge.passes.base import PassContext
from mcuforge.passes.manager import PassManager
from mcuforge.passes.quantize import sqnr

RNG = np.random.default_rng(5)
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16).reshape(1, -1)
OUT = QuantParams((1 / 32768,), (0,))
PARAMS = {"qlogistic": lambda s: Q.logistic_params(s, 0, "i16"), "qtanh": lambda s: Q.tanh_params(s, 0, "i16"),
          "qsoftmax": lambda s: {"axis": -1, **Q.softmax_params(1.0, s, "i16")}}
FLOAT = {"qlogistic": "sigmoid", "qtanh": "tanh", "qsoftmax": "softmax"}
# softmax rows (32767, 32767 - d) for every difference d = 0 .. 65535, and random rows of 1000
PAIRS = np.stack([np.full(65536, 32767), np.arange(32767, -32769, -1)], 1).astype(np.int16)
ROWS = RNG.integers(-32768, 32768, (8, 1000)).astype(np.int16)


def one_graph(ops, s_in, shape=ALL_INT16.shape) -> Graph:
    """The integer `ops` on one int16 input at scale `s_in`, each an output."""
    g = Graph("_".join(ops))
    x = g.add_input("x", TensorType(shape, DType.i16, QuantParams((s_in,), (0,))))
    g.outputs = [g.op(op, [x], PARAMS[op](s_in), out_types=[TensorType(shape, DType.i16, OUT)], name=op)
                 for op in ops]
    return g


# ---------------------------------------------------------------- by hand

def test_sigmoid_table():
    t = Q.SIGMOID_TABLE  # sigmoid(i / 24) in Q0.16
    assert t[0] == 32768 and t[24] == 47911 and t[48] == 57724  # sigmoid(0, 1, 2) * 65536 = 32768, 47910.9, 57723.6
    assert t[4] == 35493 and t[255] == 65535  # raised by one: 35492.4 and 65534.4
    assert (np.diff(t) >= 0).all() and len(t) == 256


@pytest.mark.parametrize("op,s_in,want", [
    ("qlogistic", 2 ** -12, (3, 0)),  # a power of two: x * 3 is x in steps of 1/12288
    ("qtanh", 2 ** -12, (3, 0)),
    ("qtanh", 2 ** -11, (6, 0)),  # tanh takes this power of two too
    ("qlogistic", 2 ** -11, (24576, 12)),  # logistic does not: 2^-11 * 12288 = 6, doubled 12 times
    ("qlogistic", 2 ** -12 * 1.0005, (3, 0)),  # within 1e-3 of a power of two in log2: taken as one
    ("qlogistic", 2 ** -12 * 1.01, (24821, 13)),  # 1% off: 3.03 * 2^13 = 24821.8, truncated
    ("qtanh", 0.001, (25165, 11)),  # 12.288 * 2^11 = 25165.8, truncated
    ("qlogistic", 1.5, (18432, 0)),  # 1.5 * 12288, no doubling
])
def test_sigmoid16_params(op, s_in, want):
    p = PARAMS[op](s_in)
    assert (p["multiplier"], p["shift"]) == want and p["in_zp"] == p["range_radius"] == 0


def test_sigmoid16_params_refuse_what_tflite_cannot_run():
    with pytest.raises(Error, match="zero point"):
        Q.logistic_params(0.001, 3, "i16")
    with pytest.raises(Error, match="above 32767 / 12288"):
        Q.tanh_params(3.0, 0, "i16")
    with pytest.raises(Error, match="above 2\\^15"):  # differences shifted left by more than 15 overflow int32
        Q.softmax_params(1.0, 6.0, "i16")


def test_interpolation_by_hand():
    x = np.array([[0, 4096, -4096, 2100, 32767]], np.int16)  # 0, 1, -1, 0.513, ~8 at scale 2^-12
    # logistic: x * 3 = 12288 is table entry 24 exactly: (47911 << 9 + 2^9) >> 10 = 23956 (0.73106 * 32768
    # = 23955.6); -1 mirrors it: (2^25 - (47911 << 9) + 2^9 - 1) >> 10 = 8812; 2100 * 3 = 6300 is entry
    # 12 (40794) plus 156/512 of the step to entry 13 (41432): (40794 << 9 + 156 * 638 + 2^9) >> 10 =
    # 20494 (sigmoid: 20494.4); 32767 * 3 is entry 191 (sigmoid(8) * 32768 = 32757.0)
    y = evaluate("qlogistic", [x], Q.logistic_params(2 ** -12, 0, "i16"))[0]
    assert y.tolist() == [[16384, 23956, 8812, 20494, 32757]]
    # tanh: 12288 with 8 fraction bits is entry 48 (sigmoid(2)): 57724 - 32768 = 24956 (0.76159 * 32768 = 24955.7);
    # 32767 * 3 is past entry 255: saturated
    y = evaluate("qtanh", [x], Q.tanh_params(2 ** -12, 0, "i16"))[0]
    assert y[0, :3].tolist() == [0, 24956, -24956] and y[0, 4] == 32767


def test_softmax_tables_and_a_row_by_hand():
    exp, rec = Q.EXP_LUT16, Q.RECIPROCAL_LUT16  # at output scale 2/65535: 1.0 is 32767.5
    assert len(exp) == len(rec) == 513 and exp[512] == rec[0] == 32767 and rec[512] == 16384
    assert (np.diff(exp) >= 0).all() and (np.diff(rec) <= 0).all() and exp[0] == 2  # exp(-10) * 32767.5 = 1.5
    # two equal inputs: each exp is entry 511 (32133) plus 127/128 of the step to 32767: 32762; the sum
    # 65524 has 16 leading zeros: normalized (65524 << 15 + 2^13) >> 14 = 131048, centered 32744: entry
    # 511 of 1/(1+x) (16400) minus 104/128 of its step of 16: 16387; (32762 * 16387 + 2^14) >> 15 = 16384
    assert evaluate("qsoftmax", [np.array([[5, 5]], np.int16)], PARAMS["qsoftmax"](0.001))[0].tolist() == [[16384] * 2]


# ---------------------------------------------------------------- every int16 input against TFLite Micro

SCALES = [2 ** -12, 2 ** -11, 2 ** -12 * 1.0004, 2 ** -12 * 1.01, 8 / 32767, 0.001, 3e-6, 2 ** -15, 1.5]
SOFTMAX_SCALES = [10 / 65535, 2 ** -12, 1e-4, 1e-6, 0.003, 0.1]  # shifts 1, 1, 0, -7, 5, 10


def check_against_tflite_micro(op, s_in, x):
    """`op` on `x`: TFLite Micro bit for bit, read back by the importer as the same op, close to float."""
    g = one_graph([op], s_in, x.shape)
    y = run(g, x)[0]
    data = to_tflite(g)
    np.testing.assert_array_equal(run_tflm(data, x)[0], y)
    back = load_tflite(data)
    assert [(n.op, n.attrs) for n in back.nodes] == [(n.op, n.attrs) for n in g.nodes]
    real = evaluate(FLOAT[op], [x.astype(np.float64) * np.float32(s_in)], {"axis": -1} if op == "qsoftmax" else {})[0]
    return np.abs(y / 32768 - real).max()


@pytest.mark.parametrize("op", ["qlogistic", "qtanh"])
@pytest.mark.parametrize("s_in", SCALES)
def test_every_int16_input_matches_tflite_micro(op, s_in):
    # the table's interpolation error: a few LSB of 1/32768 (TFLite's kernels' accuracy)
    assert check_against_tflite_micro(op, s_in, ALL_INT16) < 8 / 32768


@pytest.mark.parametrize("s_in", SOFTMAX_SCALES)
def test_every_softmax_difference_matches_tflite_micro(s_in):
    assert check_against_tflite_micro("qsoftmax", s_in, PAIRS) < 1e-4  # 3 LSB
    # the exp table stops at -10: each difference below still counts its first entry (2 / 32767.5),
    # which the 999 in a row of ROWS at the larger scales add up to
    assert check_against_tflite_micro("qsoftmax", s_in, ROWS) < 1e-4 + 999 * Q.EXP_LUT16[0] / 32767.5


def test_c_kernels_on_every_int16_input(tmp_path):
    g = one_graph(["qlogistic", "qtanh"], 0.001)
    s = one_graph(["qsoftmax"], 10 / 65535, PAIRS.shape)
    for graph, x in ((g, ALL_INT16), (s, PAIRS)):
        emit_c(graph, tmp_path / graph.name)
        binary = host_make(tmp_path / graph.name, "gcc")
        got = subprocess.run([binary], input=x.tobytes(), capture_output=True, check=True).stdout
        assert got == b"".join(y.tobytes() for y in run(graph, x))


def test_c_kernels_on_cortex_m4(tmp_path):
    graph = one_graph(["qlogistic", "qtanh", "qsoftmax"], 0.001, (64, 64))
    xs, host, m4, _ = host_and_m4(tmp_path, graph)
    assert m4 == host == b"".join(y.tobytes() for y in run(graph, *xs))


# ---------------------------------------------------------------- int16x8 models end to end

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(16, 32), nn.Linear(32, 24), nn.Linear(24, 8)

    def forward(self, x):
        return torch.softmax(self.c(torch.tanh(self.b(torch.sigmoid(self.a(x))))), -1)


def test_int16x8_model_has_no_float_island_and_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = Net().eval()
    for p in model.parameters():
        p.data *= 3  # inputs to the activations well beyond their linear range
    cal = [x * 2 for x in calibration((8, 16), 8)]
    graph = mcuforge.compile(model, (torch.zeros(8, 16),), emit=(), quantize="int16x8", calibration=cal).graph
    assert graph.count() == {"qlinear": 3, "qlogistic": 1, "qtanh": 1, "qsoftmax": 1}
    assert all(n.output.dtype == DType.i16 for n in graph.nodes)
    data = to_tflite(graph)
    s_in = graph.inputs[0].type.quant.scale[0]
    refs, outs = [], []
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((8, 16)).astype(np.float32) * 2
        xi = np.clip(np.round(x / s_in), -32768, 32767).astype(np.int16)
        y = run(graph, xi)[0]
        np.testing.assert_array_equal(run_tflm(data, xi)[0], y)
        with torch.no_grad():
            refs.append([model(torch.from_numpy(x)).numpy()])
        outs.append([y.astype(np.float32) / 32768])
    # 40.9 dB (the int8 weights dominate); 31.7 dB with these three ops float (their outputs then
    # clip at the calibrated range, where the integer ones have all of [0, 1] or [-1, 1])
    assert sqnr(refs, outs) > 38, sqnr(refs, outs)
    check_host(tmp_path, graph)


def quantized(model, shape, **options):
    g = mcuforge.compile(model, (torch.zeros(shape),), passes="float", emit=()).graph
    ctx = PassManager([("quantize", {"calibration": [(x,) for x in calibration(shape)], "quiet": True, **options}),
                       "lower-quantized"], debug=True).run(g, PassContext())
    return g, ctx


@pytest.mark.parametrize("act,op", [(nn.LogSoftmax(-1), "log_softmax"), (nn.Hardswish(), "hardswish")])
def test_ops_without_an_int16_kernel_stay_float_and_say_why(act, op):
    g, ctx = quantized(nn.Sequential(nn.Linear(8, 6), act).eval(), (2, 8), scheme="int16x8")
    assert g.count(op) == 1 and g.count("qlinear") == 1
    assert any(f"TFLite Micro has no int16 {op} kernel" in m for m in map(str, ctx.missed))


def test_keep_int16_takes_a_sigmoid_in_an_int8_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 4)).eval()
    g, _ = quantized(model, (2, 8))
    name = next(n.name for n in g.nodes if n.op == "qlogistic")
    g, _ = quantized(model, (2, 8), keep_int16=[name])
    node = g.find(name)
    assert node.inputs[0].dtype == node.output.dtype == DType.i16
    assert node.output.type.quant == OUT and g.count("requantize") == 2
    x = RNG.integers(-128, 128, (2, 8)).astype(np.int8)
    np.testing.assert_array_equal(run_tflm(to_tflite(g), x)[0], run(g, x)[0])
