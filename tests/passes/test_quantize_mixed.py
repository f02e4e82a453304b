"""Mixed int8 / int16x8 precision: layers named in keep_int16 (or picked by auto_mixed with
mixed="int16x8") run with int16 activations inside an int8 model, with requantize ops where the
types meet. Checked by structure, against TFLite Micro running the emitted .tflite (bit for bit),
onnxruntime running the QDQ ONNX export (1 LSB), the float model (SQNR), and the report / CLI
wiring."""
import json

import numpy as np
import onnxruntime as ort
import pytest

import mcuforge
from mcuforge.backends.onnx.emit import to_onnx
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.backends.tflite.runtime import run_tflm
from mcuforge.compiler.cli import main
from mcuforge.compiler.report import Report
from mcuforge.errors import UsageError
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType
from mcuforge.passes.manager import PassManager
from mcuforge.passes.quantize import sqnr

RNG = np.random.default_rng(0)


def samples(shape, n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32),) for _ in range(n)]


def mixed(float_zoo, name, io="int8", **options):
    """(ctx, integer graph, calibration samples) of zoo model `name` quantized with `options`."""
    g, (x,) = float_zoo(name)
    calib = samples(x.shape)
    ctx = PassManager([("quantize", {"calibration": calib, "quiet": True, **options}),
                       ("lower-quantized", {"io": io})], debug=True).run(g)
    return ctx, g, calib


WIDE = {"resnet8": ["features_1_body_1_0", "add", "features_2_shortcut", "head"],
        "unet_tiny": ["enc2_1_0", "up2", "cat", "up1_1_0"]}


@pytest.mark.parametrize("name", sorted(WIDE))
def test_keep_int16_layers_are_int16_with_requantize_at_the_edges_and_tflm_bit_exact(name, float_zoo):
    _, g, _ = mixed(float_zoo, name, keep_int16=WIDE[name])
    assert {v.dtype for v in g.inputs + g.outputs} == {DType.i8}
    for n in g.nodes:
        if n.op != "requantize" and n.name.removesuffix("_float") in WIDE[name]:  # an output is `<name>_float`
            assert n.outputs[0].dtype == DType.i16 and n.meta["int16"], n.name
            assert all(v.dtype == DType.i16 for v in n.inputs if not v.is_const)
            assert n.op not in ("qconv2d", "qlinear") or n.inputs[2].dtype == DType.i64  # int64 bias
        if n.op == "requantize":
            assert {n.inputs[0].dtype, n.outputs[0].dtype} <= {DType.i8, DType.i16}
        elif not n.meta.get("int16"):  # every other op reads and writes int8
            assert all(v.dtype in (DType.i8, DType.i32) for v in n.inputs + n.outputs), n.name
    assert 4 <= g.count("requantize")
    data = to_tflite(g)
    for _ in range(2):
        x = RNG.integers(-128, 128, g.inputs[0].shape).astype(np.int8)
        np.testing.assert_array_equal(run_tflm(data, x)[0], run(g, x)[0])


def test_mixed_qdq_onnx_matches_the_interpreter(float_zoo):
    """The QDQ export (opset 21: int16 QuantizeLinear; int64 biases stored dequantized) in
    onnxruntime, end to end, within 1 LSB of the interpreter on the QDQ graph."""
    ctx, g, calib = mixed(float_zoo, "resnet8", io="float", keep_int16=WIDE["resnet8"])
    qdq = ctx.qdq_graph
    model = to_onnx(qdq)
    assert model.opset_import[0].version == 21 and "DequantizeLinear" in {n.op_type for n in model.graph.node}
    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    scale = g.outputs[0].producer.attrs["scale"][0]
    for (x,) in calib:
        np.testing.assert_allclose(session.run(None, {qdq.inputs[0].name: x})[0], run(qdq, x)[0], atol=1.01 * scale)


def test_auto_mixed_int16_keeps_sensitive_layers_at_int16_and_reports_the_gain(float_zoo):
    plain_ctx, _, _ = mixed(float_zoo, "tiny_cnn")
    ctx, g, _ = mixed(float_zoo, "tiny_cnn", auto_mixed=0.5, mixed="int16x8")
    gains = {n.name: n.meta["mixed_gain"] for n in g.nodes if "mixed_gain" in n.meta}
    assert gains and all(gain >= 0.5 for gain in gains.values()) and not ctx.missed
    assert all(n.outputs[0].dtype == DType.i16 for n in g.nodes if n.name in gains)
    gained = ctx.quant["output_sqnr"] - plain_ctx.quant["output_sqnr"]
    assert gained >= sum(gains.values()) - 0.5  # the same measurement, on the same samples
    rows = {r[0]: r[1] for r in Report.build(g, quant=ctx.quant).quant_rows()}
    assert all(rows[k] == f"int16x8, auto_mixed: +{v:.1f} dB" for k, v in gains.items())


def test_int16_layers_keep_a_tensor_with_an_outlier_accurate():
    """The hidden tensor has one unit 300x larger than the others, which the output ignores: int8
    leaves the others a level or two, int16 (written by the first layer, read by the second) does not."""
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 8)).eval()
    with torch.no_grad():
        model[0].weight[0] *= 300
        model[1].weight[:, 0] = 0
    float_graph = mcuforge.compile(model, (torch.zeros(4, 16),), passes="float", emit=()).graph
    names = [n.name for n in float_graph.nodes]
    check = samples((4, 16), 8, seed=2)
    want = [[model(torch.from_numpy(x)).detach().numpy()] for (x,) in check]
    results = {}
    for keep in ([], names):
        g = float_graph.clone()
        PassManager([("quantize", {"calibration": samples((4, 16), 8), "quiet": True, "keep_int16": keep}),
                     ("lower-quantized", {"io": "float"})]).run(g)
        assert g.count("requantize") == (2 if keep else 0)  # int8 input -> int16, int16 output -> int8
        results[len(keep)] = sqnr(want, [run(g, x) for (x,) in check])
    assert results[2] > results[0] + 15, results


@pytest.mark.parametrize("options,message", [
    (dict(keep_int16=["nope"]), "unknown layer"),
    (dict(keep_int16=["head"], scheme="int16x8"), "mixed precision"),
    (dict(mixed="int4"), "mixed precision"),
])
def test_bad_mixed_options_are_refused(options, message, float_zoo):
    with pytest.raises(UsageError, match=message):
        mixed(float_zoo, "digits_cnn", **options)


def test_keep_int16_refuses_a_layer_without_an_int16_kernel():
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.LogSoftmax(-1)).eval()
    g = mcuforge.compile(model, (torch.zeros(1, 8),), passes="float", emit=()).graph
    name = next(n.name for n in g.nodes if n.op == "log_softmax")
    with pytest.raises(UsageError, match=f"without an int16 kernel: {name}"):
        PassManager([("quantize", {"calibration": samples((1, 8)), "quiet": True, "keep_int16": [name]})]).run(g)


def test_cli_keep_int16(tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", x=RNG.standard_normal((4, 1, 8, 8)).astype(np.float32))
    assert main(["compile", "zoo:digits_cnn", "-o", str(tmp_path / "out"), "--emit", "tflite", "--quantize", "int8",
                 "--calibration", str(tmp_path / "calib.npz"), "--keep-int16", "head", "--json"]) == 0
    json.loads(capsys.readouterr().out)
    assert "| int16x8 |" in (tmp_path / "out" / "report.md").read_text().replace("  ", " ")
