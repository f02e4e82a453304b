"""quantize: calibration + quantize/dequantize insertion. The scheme is checked against numpy
(weight and bias scales, fixed output scales, clamp tightening), numbers against torch (SQNR),
float islands and mixed precision by structure and numbers, and the compile / CLI wiring."""
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import mcuforge
from mcuforge.analysis.calibrate import OBSERVERS
from mcuforge.compiler.cli import main
from mcuforge.compiler.report import Report
from mcuforge.errors import UsageError
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType
from mcuforge.passes.manager import PassManager, PrintIR
from mcuforge.passes.pipelines import FLOAT
from mcuforge.passes.quantize import sqnr

rng = np.random.default_rng(0)


def float_graph(model, *shapes):
    torch.manual_seed(0)
    model = model.eval()
    graph = mcuforge.trace(model, tuple(torch.randn(s) for s in shapes))
    PassManager(FLOAT).run(graph)
    return model, graph


def data(*shapes, n=16, scale=1.0):
    return [tuple((rng.standard_normal(s) * scale).astype(np.float32) for s in shapes) for _ in range(n)]


def quantize(graph, samples, lower=None, **options):
    passes = [("quantize", {"calibration": samples, "quiet": True, **options})]
    passes += [("lower-quantized", {"io": lower})] if lower else []
    return PassManager(passes, debug=True).run(graph)


def torch_sqnr(model, graph, samples):
    with torch.no_grad():
        want = [[model(*map(torch.from_numpy, s)).numpy()] for s in samples]
    return sqnr(want, [run(graph, *s) for s in samples])


class Net(nn.Module):
    """conv (fused relu6) -> max pool -> + constant -> linear -> softmax."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 10)
        self.register_buffer("offset", torch.linspace(-0.5, 0.5, 4))

    def forward(self, x):
        y = nn.functional.max_pool2d(torch.clamp(self.conv(x), 0, 6), 2) + self.offset
        return torch.softmax(self.fc(y.flatten(1)), -1)


def params(node):
    return node.attrs["scale"], node.attrs["zero_point"]


def test_qdq_form_follows_the_int8_scheme():
    model, g = float_graph(Net(), (1, 3, 8, 8))
    samples = data((1, 3, 8, 8), scale=3)
    shown = []

    class Grab(PrintIR):
        def after(self, name, graph, changed, seconds):
            shown.append(str(graph))
    PassManager([("quantize", {"calibration": samples, "quiet": True})], instrumentations=[Grab()]).run(g)
    assert "quantize(" in shown[0] and "dequantize(" in shown[0]  # print_after shows the QDQ form
    by = {n.op: n for n in g.nodes if n.op not in ("quantize", "dequantize")}
    for n in by.values():  # every activation operand is dequantized, every result quantized
        assert all(v.is_const or v.producer.op == "dequantize" for v in n.inputs)
        assert [u.op for u in n.output.users] == ["quantize"]
    conv, fc = by["conv2d"], by["linear"]
    w = model.conv.weight.detach().numpy()
    w_dq = conv.inputs[1].producer
    w_scale = np.abs(w).reshape(4, -1).max(1) / 127  # symmetric, per output channel
    np.testing.assert_allclose(w_dq.attrs["scale"], w_scale, rtol=1e-6)
    assert w_dq.attrs["zero_point"] == [0] * 4 and w_dq.inputs[0].dtype == DType.i8
    np.testing.assert_array_equal(w_dq.inputs[0].data, np.round(w / w_scale[:, None, None, None]))
    x_scale = params(conv.inputs[0].producer)[0][0]
    b_dq = conv.inputs[2].producer
    assert b_dq.inputs[0].dtype == DType.i32
    np.testing.assert_allclose(b_dq.attrs["scale"], x_scale * w_scale, rtol=1e-6)
    np.testing.assert_array_equal(b_dq.inputs[0].data,
                                  np.round(model.conv.bias.detach().numpy() / (x_scale * w_scale)))
    conv_q = params(conv.output.users[0])
    pool = by["max_pool2d"]
    assert params(pool.output.users[0]) == conv_q == params(pool.inputs[0].producer)  # pools keep scales
    assert conv_q[1] == [-128] and conv_q[0][0] * 255 <= 6 + 1e-6  # relu6 range: [0, <= 6]
    assert params(by["softmax"].output.users[0]) == ([1 / 256], [-128])  # TFLite's fixed output scale
    assert fc.inputs[1].producer.inputs[0].type.quant.axis == 0
    assert torch_sqnr(model, g, samples) > 30


def test_a_clamp_tightens_its_producers_range():
    model, g = float_graph(nn.Sequential(nn.Linear(8, 8), nn.Hardtanh(-0.5, 0.5)), (2, 8))
    quantize(g, data((2, 8), scale=4))
    lin = next(n for n in g.nodes if n.op == "linear")
    scale, zp = params(lin.output.users[0])
    assert scale[0] == pytest.approx(1 / 255) and abs(zp[0]) <= 1  # [-0.5, 0.5], not the linear's range


def test_ops_without_integer_kernels_stay_float_between_dequantize_and_quantize():
    model, g = float_graph(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Conv2d(4, 2, 1)), (1, 3, 6, 6))
    samples = data((1, 3, 6, 6))
    ctx = quantize(g, samples, lower="int8")
    assert g.count() == {"dequantize": 1, "gelu": 1, "qconv2d": 2, "quantize": 1}
    gelu = next(n for n in g.nodes if n.op == "gelu")
    assert gelu.inputs[0].producer.op == "dequantize" and gelu.output.users[0].op == "quantize"
    (missed,) = ctx.missed
    assert missed.op == "gelu" and "no integer kernel for gelu" in missed.reason
    assert g.inputs[0].dtype == g.outputs[0].dtype == DType.i8
    x, y = g.inputs[0].type.quant, g.outputs[0].type.quant
    with torch.no_grad():
        want = [model(torch.from_numpy(s[0])).numpy() for s in samples]
    got = [(run(g, np.clip(np.round(s[0] / x.scale[0]) + x.zero_point[0], -128, 127).astype(np.int8))[0]
            .astype(np.float32) - y.zero_point[0]) * y.scale[0] for s in samples]
    assert sqnr([[w] for w in want], [[o] for o in got]) > 25


def sensitive_net():
    """Two linear layers; the first weighs input 0 (always 0 in `sensitive_data`) 300x more, so a
    per-tensor weight scale leaves its other weights a level or two: it is the sensitive one."""
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8))
    with torch.no_grad():
        model[0].weight[:, 0] *= 300
    return float_graph(model, (4, 16))


def sensitive_data():
    return [(x * np.r_[0, np.ones(15)].astype(np.float32),) for (x,) in data((4, 16))]


def test_sensitivity_finds_the_sensitive_layer_and_auto_mixed_keeps_it_float():
    model, g = sensitive_net()
    samples = sensitive_data()
    plain = g.clone()
    quantize(plain, samples, lower="float", per_channel=False)
    all_int8 = torch_sqnr(model, plain, samples)
    ctx = quantize(g, samples, lower="float", per_channel=False, sensitivity=True, auto_mixed=3.0)
    table = {n.name: n.meta["sensitivity"] for n in g.nodes if "sensitivity" in n.meta}
    worst = min(table, key=table.get)
    assert len(table) == 2 and g.find(worst).op == "linear" and g.find(worst).inputs[1].dtype == DType.f32
    assert any(m.node == worst and "kept float" in m.reason for m in ctx.missed)
    assert g.count("qlinear") == 1 and torch_sqnr(model, g, samples) > max(all_int8 + 10, 30)
    report = Report.build(g, quant=ctx.quant)
    assert any(r[0] == worst and r[1].startswith("float (kept float") for r in report.quant_rows())


def test_keep_float_names_layers_and_refuses_unknown_ones():
    model, g = sensitive_net()
    name = [n.name for n in g.nodes if n.op == "linear"][0]
    quantize(g, sensitive_data(), lower="int8", keep_float=[name])
    assert g.count("linear") == 1 and g.count("qlinear") == 1 and g.find(name).op == "linear"
    with pytest.raises(UsageError, match="unknown layer"):
        quantize(sensitive_net()[1], data((4, 16)), keep_float=["nope"])


@pytest.mark.parametrize("observer", OBSERVERS)
def test_every_observer_keeps_a_small_cnn_accurate(observer, float_zoo):
    g, _ = float_zoo("tiny_cnn")
    model, _ = mcuforge.zoo.get("tiny_cnn")
    samples = data((1, 3, 16, 16), n=24)
    quantize(g, samples, lower="float", observer=observer)
    assert torch_sqnr(model, g, samples) > 20


def test_int16x8_is_more_accurate_than_int8():
    """Weights already on the int8 grid, so the activations' precision is what differs."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.Flatten(), nn.Linear(144, 5))
    with torch.no_grad():
        for m in (model[0], model[2], model[4]):
            s = m.weight.abs().flatten(1).max(1).values / 127
            m.weight.copy_(torch.round(m.weight / s.view(-1, *[1] * (m.weight.dim() - 1))) * s.view(-1, *[1] * (m.weight.dim() - 1)))
    model, graph = float_graph(model, (1, 3, 8, 8))
    samples, results = data((1, 3, 8, 8), n=8), {}
    for scheme in ("int8", "int16x8"):
        g = graph.clone()
        quantize(g, samples, lower="float", scheme=scheme)
        results[scheme] = torch_sqnr(model, g, samples)
        acts = {v.dtype for n in g.nodes for v in n.outputs} - {DType.f32}
        biases = {c.dtype for c in g.constants() if c.dtype != DType.i8}
        assert (acts, biases) == (({DType.i8}, {DType.i32}) if scheme == "int8" else ({DType.i16}, {DType.i64}))
    assert results["int16x8"] > results["int8"] + 20 > 50, results


@pytest.mark.parametrize("options, message", [
    ({}, "needs calibration data"),
    ({"calibration": [(np.zeros((1, 3)),)]}, "input %input_1 has shape [1, 3]"),
    ({"calibration": [(np.zeros((4, 16)),)], "scheme": "int4"}, "unknown quantization scheme"),
    ({"calibration": [(np.zeros((4, 16)),)], "observer": "kl"}, "unknown observer"),
])
def test_bad_options_are_refused(options, message):
    _, g = sensitive_net()
    with pytest.raises(UsageError) as e:
        PassManager([("quantize", options)]).run(g)
    assert message in e.value.message


def test_a_quantized_graph_is_not_quantized_again():
    _, g = sensitive_net()
    quantize(g, data((4, 16)))
    with pytest.raises(UsageError, match="already quantized"):
        quantize(g, data((4, 16)))


def test_compile_quantizes_writes_qdq_onnx_and_reports(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).eval()
    x = torch.randn(1, 3, 8, 8)
    calib = rng.standard_normal((8, 1, 3, 8, 8)).astype(np.float32)
    art = mcuforge.compile(model, (x,), quantize="int8", calibration=calib, observer="mse", out_dir=tmp_path / "o")
    assert art.graph.count() == {"qconv2d": 1, "qlinear": 1, "reshape": 1} and art.graph.inputs[0].dtype == DType.i8
    ops = {n.op_type for n in onnx.load(art.files["onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops  # the QDQ form, not the integer one
    md = art.files["report_md"].read_text()
    assert "## Quantization" in md and "mse observer" in md and "| int8 |" in md
    assert art.report.flash_bytes < art.report.quant["float_weight_bytes"] / 3
    with pytest.raises(UsageError, match="needs calibration data"):
        mcuforge.compile(model, (x,), quantize="int8", emit=())
    with pytest.raises(UsageError, match="without quantize"):
        mcuforge.compile(model, (x,), calibration=calib, emit=())


def test_cli_quantizes_from_an_npz(tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((6, 1, 8, 8)).astype(np.float32))
    base = ["compile", "zoo:digits_cnn", "-o", str(tmp_path / "out")]
    assert main(base + ["--quantize", "int8", "--calibration", str(tmp_path / "calib.npz"), "--io", "float",
                        "--observer", "percentile", "--json"]) == 0
    assert (tmp_path / "out" / "model.onnx").exists() and json.loads(capsys.readouterr().out)["flash_bytes"] < 5000
    np.savez(tmp_path / "bad.npz", x=np.zeros((6, 1, 7, 8), np.float32))
    for extra, message in [([], "needs calibration data"), (["--calibration", str(tmp_path / "bad.npz")], "input %x")]:
        assert main(base + ["--quantize", "int8"] + extra) == 2
        assert message in capsys.readouterr().err


class Concats(nn.Module):
    """A concat of two convs (the second 4x larger, behind relu and a max pool) and, with
    `fixed`, of a sigmoid (its fixed output scale) and the graph input."""

    def __init__(self, fixed=False):
        super().__init__()
        self.a, self.b, self.fixed = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 2, 1), fixed

    def forward(self, x):
        y = [self.a(x), nn.functional.max_pool2d(torch.relu(4 * self.b(x)), 3, 1, 1)]
        return torch.cat(y + [torch.sigmoid(self.a(x)), x] * self.fixed, 1)


def tflm_bit_exact(g):
    from mcuforge.backends.tflite.emit import to_tflite
    from mcuforge.backends.tflite.runtime import run_tflm
    data = to_tflite(g)
    for x in rng.integers(-128, 128, (3, *g.inputs[0].shape)).astype(np.int8):
        np.testing.assert_array_equal(run_tflm(data, x)[0], run(g, x)[0])


def test_concat_inputs_share_the_concats_scale_and_need_no_requantize():
    model, g = float_graph(Concats(), (1, 3, 6, 6))
    samples = data((1, 3, 6, 6))
    quantize(g, samples, lower="float")
    assert g.count("requantize") == 0 and g.count("concat") == 1
    cat = next(n for n in g.nodes if n.op == "concat")
    assert {v.type.quant for v in cat.inputs} == {cat.output.type.quant}
    assert torch_sqnr(model, g, samples) > 30  # the smaller branch at the larger scale costs little
    _, g = float_graph(Concats(), (1, 3, 6, 6))
    quantize(g, samples, lower="int8")
    tflm_bit_exact(g)


def test_a_concat_input_with_a_fixed_scale_or_from_the_graph_input_is_requantized():
    _, g = float_graph(Concats(fixed=True), (1, 3, 6, 6))
    quantize(g, data((1, 3, 6, 6)), lower="int8")
    cat = next(n for n in g.nodes if n.op == "concat")
    assert [v.producer.op for v in cat.inputs] == ["qconv2d", "max_pool2d", "requantize", "requantize"]
    assert [getattr(v.producer.inputs[0].producer, "op", "input") for v in cat.inputs[2:]] == ["qlogistic", "input"]
    tflm_bit_exact(g)
