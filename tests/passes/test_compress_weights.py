"""compress-weights: per format, the layers' int8 values against the format's definition and
against the packed bytes decoded here by hand (the bytes the C kernels read); each compressed
layer's numbers against torch (float conv / linear on the decoded weights at their new scales,
requantized: within 1 LSB); TFLite Micro running the .tflite of a compressed model, bit-exact;
structure (ops, names and activation parameters unchanged), weight error per format, options,
the verifier's check and the report's flash bytes."""
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mcuforge
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.backends.tflite.runtime import run_tflm
from mcuforge.compiler.cli import main
from mcuforge.compiler.sweep import make_runner
from mcuforge.errors import UsageError, VerifyError
from mcuforge.ir import wformat
from mcuforge.ir.interpreter import evaluate, run
from mcuforge.ir.verify import verify
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT
from mcuforge.passes.quantize import sqnr

FORMATS = ["pow2", "binary", "ternary", "kmeans2", "kmeans3", "kmeans4", "kmeans8", "int4g32", "int4g128"]
WEIGHTED = ("qconv1d", "qconv2d", "qlinear")


class Net(nn.Module):
    """3x3 conv (padded), depthwise (stride 2), 1x1 conv, fully connected with 160 inputs (int4g128:
    a full and a short group)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 10, 1)
        self.fc = nn.Linear(160, 10)

    def forward(self, x):
        x = F.relu(self.pw(F.relu(self.dw(F.relu(self.conv(x))))))
        return self.fc(x.flatten(1))


def int8_graph(layout="planned", seed=0):
    torch.manual_seed(seed)
    model, rng = Net().eval(), np.random.default_rng(seed)
    g = mcuforge.trace(model, (torch.randn(1, 3, 8, 8),))
    samples = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(8)]
    steps = [("quantize", {"calibration": samples, "quiet": True}), ("lower-quantized", {})]
    PassManager(FLOAT + steps + ([("to-nhwc", {})] if layout == "deploy" else [])).run(g)
    return g


def compress(g, fmt, **options):
    """A compressed clone of `g` (verified after the pass) and the pass context."""
    g = g.clone()
    ctx = PassManager([("compress-weights", {"format": fmt, **options})], debug=True).run(g)
    return g, ctx


@pytest.fixture(scope="module")
def base():
    return int8_graph()


def rows_of(n):
    """The weight as [out][k_h][k_w][in] rows, computed here from the IR layout."""
    w = n.inputs[1].data
    if n.op != "qlinear" and n.attrs["layout"][1] == "C":
        w = np.moveaxis(w, 1, -1)
    return w.reshape(w.shape[0], -1).astype(np.int64)


def decode(fmt, packed, aux, k):
    """The int8 rows that packed bytes + aux stand for, by the format's definition (docs/numerics.md)."""
    scheme, bits, group = wformat.parse(fmt)
    b = np.unpackbits(packed, axis=1, bitorder="little")[:, :k * bits].reshape(len(packed), k, bits).astype(np.int64)
    c = (b << np.arange(bits)).sum(-1)
    signed = np.where(c >= 1 << (bits - 1), c - (1 << bits), c)
    if scheme == "pow2":
        return np.where(c & 7, np.where(c & 8, -1, 1) * 2 ** np.maximum((c & 7) - 1, 0), 0)
    if scheme == "binary":
        return 2 * c - 1
    if scheme == "kmeans":
        return aux.astype(np.int64)[c]
    if scheme == "int4":
        return signed * np.repeat(aux.astype(np.int64), group, axis=1)[:, :k]
    return signed


def allowed(fmt, r):
    """Whether int rows `r` are values format `fmt` can hold (checked from its definition)."""
    scheme, bits, group = wformat.parse(fmt)
    if scheme == "pow2":
        return set(np.abs(r).ravel()) <= {0, 1, 2, 4, 8, 16, 32, 64}
    if scheme in ("binary", "ternary"):
        return set(r.ravel()) <= ({-1, 1} if scheme == "binary" else {-1, 0, 1})
    if scheme == "kmeans":
        return len(np.unique(r)) <= 1 << bits
    for o in range(len(r)):
        for j in range(0, r.shape[1], group):
            v = r[o, j:j + group]
            if not any(np.all(v % m == 0) and np.abs(v).max() <= 7 * m for m in range(1, 128)):
                return False
    return True


@pytest.mark.parametrize("fmt", FORMATS)
def test_values_fit_the_format_and_the_packed_bytes_decode_to_them(base, fmt):
    g, ctx = compress(base, fmt)
    layers = [n for n in g.nodes if n.op in WEIGHTED]
    assert [n.attrs["wfmt"] for n in layers] == [fmt] * 4
    assert ctx.stats["compress-weights.compressed"] == 4
    for n in layers:
        r = rows_of(n)
        assert allowed(fmt, r), n.name
        codes, aux = wformat.codes(fmt, r)
        packed = wformat.pack(codes, wformat.parse(fmt)[1])
        np.testing.assert_array_equal(decode(fmt, packed, aux, r.shape[1]), r)
        assert packed.nbytes + aux.nbytes == wformat.packed_bytes(fmt, n.inputs[1].shape)


def torch_layer(n, x):
    """Layer `n` on integer input `x` in float (torch), requantized like TFLite: round, clamp."""
    (s_in, z_in), (s_out, z_out) = ((v.type.quant.scale[0], v.type.quant.zero_point[0])
                                    for v in (n.inputs[0], n.output))
    s_w = np.asarray(n.inputs[1].type.quant.scale, np.float64)
    xr = torch.from_numpy((x.astype(np.float64) - z_in) * s_in)
    w = torch.from_numpy(n.inputs[1].data.astype(np.float64) * s_w.reshape(-1, *[1] * (n.inputs[1].data.ndim - 1)))
    b = torch.from_numpy(n.inputs[2].data * s_in * s_w)
    a = n.attrs
    if n.op == "qlinear":
        y = F.linear(xr, w, b)
    else:
        p = a["pads"]
        y = F.conv2d(F.pad(xr, (p[1], p[3], p[0], p[2])), w, b, a["stride"], 0, a["dilation"], a["groups"])
    y = torch.round(y / s_out).numpy() + z_out
    return np.clip(y, a["act_min"], a["act_max"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_layer_against_torch_on_its_decoded_weights(base, fmt):
    g, _ = compress(base, fmt)
    x = np.random.default_rng(1).integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)
    trace = {g.inputs[0].name: x}
    run(g, x, trace=trace)
    for n in g.nodes:
        if n.op in WEIGHTED:
            (got,) = evaluate(n.op, [trace[n.inputs[0].name], *(v.data for v in n.inputs[1:])], n.attrs)
            assert np.abs(got.astype(np.int64) - torch_layer(n, trace[n.inputs[0].name])).max() <= 1, n.name


def test_tflite_micro_runs_the_compressed_weights_as_int8_bit_exactly():
    g, _ = compress(int8_graph("deploy"), "kmeans3")
    x = np.random.default_rng(2).integers(-128, 128, g.inputs[0].shape).astype(np.int8)
    np.testing.assert_array_equal(run_tflm(to_tflite(g), x)[0], run(g, x)[0])


def test_onnx_export_carries_the_compressed_weights(tmp_path):
    """The QDQ .onnx holds the compressed int8 weights, and onnxruntime computes what the integer
    graph computes (whole model, float in and out: SQNR; 1-LSB rounding differences travel)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(8)]
    art = mcuforge.compile(Net().eval(), (torch.randn(1, 3, 8, 8),), emit=("onnx",), out_dir=tmp_path,
                           quantize="int8", calibration=xs, weights="pow2")
    model = onnx.load(art.files["onnx"])
    weights = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2]
    assert len(weights) == 4 and all(allowed("pow2", w.reshape(len(w), -1).astype(np.int64)) for w in weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (si, zi), (so, zo) = ((v.type.quant.scale[0], v.type.quant.zero_point[0]) for v in (*art.graph.inputs,
                                                                                       *art.graph.outputs))
    ours = [[(art.run(np.clip(np.round(x / si) + zi, -128, 127).astype(np.int8))[0].astype(np.int64) - zo) * so]
            for x in xs]
    assert sqnr([session.run(None, {model.graph.input[0].name: x}) for x in xs], ours) > 30


def weight_sqnr(before, after):
    """dB of each compressed layer's real weights (w * s_w) against the int8 model's, over all layers."""
    def real(n):
        return rows_of(n) * np.asarray(n.inputs[1].type.quant.scale).reshape(-1, 1)
    pairs = [(real(a), real(b)) for a, b in zip(before.nodes, after.nodes) if a.op in WEIGHTED]
    noise = sum(((w - v) ** 2).sum() for w, v in pairs)
    return math.inf if noise == 0 else 10 * math.log10(sum((w ** 2).sum() for w, _ in pairs) / noise)


def test_weight_error_per_format(base):
    """More levels, less error (kmeans8 keeps the <= 255 int8 values exactly); binary's scale is
    the mean |w| of each channel (least squares)."""
    db = {fmt: weight_sqnr(base, compress(base, fmt)[0]) for fmt in FORMATS}
    assert db["kmeans8"] > 40 and db["int4g32"] > 20 and db["kmeans4"] > 20 and db["pow2"] > 14
    assert db["binary"] < db["ternary"] < db["kmeans2"] < db["kmeans3"] < db["kmeans4"] < db["kmeans8"]
    assert db["int4g32"] >= db["int4g128"] - 0.1
    g, _ = compress(base, "binary")
    for a, b in zip(base.nodes, g.nodes):
        if a.op in WEIGHTED:
            real = rows_of(a) * np.asarray(a.inputs[1].type.quant.scale).reshape(-1, 1)
            np.testing.assert_allclose(b.inputs[1].type.quant.scale, np.abs(real).mean(1), rtol=1e-6)


def test_structure_and_options(base):
    g, _ = compress(base, "int4g32", layers=["fc"])
    assert [n.op for n in g.nodes] == [n.op for n in base.nodes]
    assert [n.name for n in g.nodes] == [n.name for n in base.nodes]
    for a, b in zip(base.nodes, g.nodes):
        changed = {k for k in a.attrs if a.attrs[k] != b.attrs[k]}
        assert changed <= {"multiplier", "shift", "wfmt"}
        assert b.attrs.get("wfmt", "int8") == ("int4g32" if b.name == "fc" else "int8")
        if a.op in WEIGHTED:
            assert np.array_equal(a.inputs[1].data, b.inputs[1].data) == (b.name != "fc")
    with pytest.raises(UsageError, match="unknown weight format 'kmeans9'"):
        compress(base, "kmeans9")
    with pytest.raises(UsageError, match="no compressible layer named nope"):
        compress(base, "pow2", layers=["nope"])
    with pytest.raises(UsageError, match="without quantize"):
        mcuforge.compile(Net().eval(), (torch.randn(1, 3, 8, 8),), emit=(), weights="pow2")


def test_verifier_rejects_values_the_format_cannot_hold(base):
    g, _ = compress(base, "pow2")
    n = next(n for n in g.nodes if n.name == "fc")
    w = n.inputs[1].data.copy()
    w[0, 0] = 3
    g.set_input(n, 1, g.const(w, "bad", quant=n.inputs[1].type.quant))
    with pytest.raises(VerifyError, match=r"node fc: weight value 3 is not 0 or \+-2\^k"):
        verify(g)


def test_compile_option_report_and_warning():
    torch.manual_seed(0)
    model, rng = Net().eval(), np.random.default_rng(0)
    kw = {"emit": (), "quantize": "int8", "calibration": [rng.standard_normal((1, 3, 8, 8)).astype(np.float32)]}
    plain = mcuforge.compile(model, (torch.randn(1, 3, 8, 8),), **kw).report
    art = mcuforge.compile(model, (torch.randn(1, 3, 8, 8),), weights="ternary", **kw)
    fc = next(layer for layer in art.report.layers if layer.name == "fc")
    assert fc.param_bytes == 10 * 40 + 10 * 4  # 160 two-bit codes per output, and the int32 bias
    saved = sum(a - b for a, b in art.ctx.weights["layers"].values())
    assert art.report.flash_bytes == plain.flash_bytes - saved
    assert "WARNING: ternary weights" in art.report.to_markdown()
    assert "weights compressed to ternary, output SQNR" in art.report.quant_summary()
    # remeasured on the same samples as the int8 SQNR, against the same float outputs: ternary costs
    (samples, refs), q = art.ctx.quant_check, art.ctx.quant
    got = [make_runner(art.graph)(*s) for s in samples]  # float in, float out
    assert abs(sqnr(refs, got) - q["compressed_sqnr"]) < 0.5  # the integer graph, not only the QDQ one
    assert q["compressed_sqnr"] < q["output_sqnr"] - 3


def test_cli_weights_option(tmp_path):
    np.savez(tmp_path / "calib.npz", np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32))
    assert main(["compile", "zoo:digits_cnn", "--quantize", "int8", "--calibration", str(tmp_path / "calib.npz"),
                 "--weights", "kmeans4", "--emit", "c", "-o", str(tmp_path / "out")]) == 0
    assert "then weights compressed to kmeans4" in (tmp_path / "out" / "report.md").read_text()
    assert "head.weight_q_kmeans4 as kmeans4 codes" in (tmp_path / "out" / "c" / "model.c").read_text()
