"""Integer log_softmax (TFLite's int8 LOG_SOFTMAX, output 16/256 with zero point 127) end to end:
a float log_softmax quantized and lowered to `qlog_softmax`, against TFLite Micro running our
.tflite (bit for bit), LiteRT (1 LSB), onnxruntime running the QDQ ONNX export (1 LSB) and the
generated C built with gcc and clang (bit for bit)."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from support.cbuild import build_and_check, calibration
from torch import nn

import mcuforge
from mcuforge.backends.onnx.emit import to_onnx
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.backends.tflite.runtime import run_litert, run_tflm
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType, TensorType
from mcuforge.passes.base import PassContext
from mcuforge.passes.manager import PassManager

RNG = np.random.default_rng(3)


def lowered(shape, spread):
    """float log_softmax on inputs of standard deviation `spread`, quantized and lowered (io int8)
    -> (integer graph, QDQ graph)."""
    g = Graph("log_softmax")
    x = g.add_input("x", TensorType(shape, DType.f32))
    g.outputs = [g.op("log_softmax", [x], {"axis": -1}, name="y")]
    samples = [(RNG.standard_normal(shape).astype(np.float32) * spread,) for _ in range(3)]
    ctx = PassManager([("quantize", {"calibration": samples, "quiet": True}), "lower-quantized"]).run(g, PassContext())
    assert g.count() == {"qlog_softmax": 1} and not ctx.missed
    return g, ctx.qdq_graph


@pytest.mark.parametrize("shape,spread", [((2, 10), 1.0), ((3, 4, 33), 8.0), ((1, 1000), 0.3), ((5, 1), 2.0)])
def test_tflm_bit_exact_and_litert_within_one_lsb(shape, spread):
    g, _ = lowered(shape, spread)
    out = g.outputs[0].type.quant
    assert (out.scale[0], out.zero_point[0]) == (16 / 256, 127)
    data = to_tflite(g)
    back = load_tflite(data)  # and the importer reads the file back as the same op
    assert back.count() == {"qlog_softmax": 1}
    for _ in range(3):
        x = RNG.integers(-128, 128, shape).astype(np.int8)
        want = run(g, x)[0]
        np.testing.assert_array_equal(run_tflm(data, x)[0], want)
        np.testing.assert_array_equal(run(back, x)[0], want)
        assert np.abs(run_litert(data, x)[0].astype(int) - want).max() <= 1


def test_qdq_onnx_matches_the_interpreter():
    _, qdq = lowered((4, 20), 3.0)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    session = ort.InferenceSession(to_onnx(qdq).SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert [n.op_type for n in to_onnx(qdq).graph.node].count("LogSoftmax") == 1
    for _ in range(3):
        x = RNG.standard_normal((4, 20)).astype(np.float32) * 3
        np.testing.assert_allclose(session.run(None, {"x": x})[0], run(qdq, x)[0], atol=1.01 / 16, rtol=0)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        return torch.log_softmax(self.fc(x), -1)


@pytest.mark.parametrize("spread", [0.5, 8.0])
def test_c_bit_exact(tmp_path, spread):
    build_and_check(tmp_path, lowered((24, 33), spread)[0], seed=1)


def test_c_bit_exact_in_a_model(tmp_path):
    torch.manual_seed(0)
    graph = mcuforge.compile(Head().eval(), (torch.zeros(3, 12),), emit=(), quantize="int8",
                             calibration=calibration((3, 12))).graph
    assert "qlog_softmax" in graph.count()
    build_and_check(tmp_path, graph, seed=1)
