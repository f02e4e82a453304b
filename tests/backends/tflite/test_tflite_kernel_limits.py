"""The TFLite backend refuses integer layers whose scales TFLite's kernels reject or abort on,
naming the layer and the reason, instead of writing a file TFLite Micro aborts on (or aborting in
LiteRT's check of the file, which would take the compiler's process with it)."""
import numpy as np
import pytest
import torch

import mcuforge
from mcuforge.backends.tflite import emit, runtime
from mcuforge.errors import UnsupportedOpError
from mcuforge.ir.types import QuantParams, TensorType


class TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 6), torch.nn.Linear(4, 6)

    def forward(self, x):
        return torch.softmax(self.a(x) + self.b(x), -1)


def int8_graph(model=None):
    """`model` (TwoHeads: qlinear a, qlinear b, qadd add, qsoftmax softmax) quantized to int8, as the
    TFLite backend gets it."""
    torch.manual_seed(0)
    calibration = np.random.default_rng(0).standard_normal((8, 1, 4)).astype(np.float32)
    return mcuforge.compile((model or TwoHeads()).eval(), (torch.randn(1, 4),), emit=(), quantize="int8",
                            calibration=calibration).graph


def rescaled(g, node: str, scale: float, zero_point: int | None = None):
    """`g` with the output of `node` at another scale (and zero point): a file made elsewhere."""
    v = next(n for n in g.nodes if n.name == node).outputs[0]
    q = v.type.quant
    v.type = TensorType(v.shape, v.dtype, QuantParams([scale], [q.zero_point[0] if zero_point is None else zero_point]))
    return g


def test_softmax_input_scale_tflite_micro_aborts_on_is_refused(tmp_path, monkeypatch):
    g = rescaled(int8_graph(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Softmax(-1))), "_0", 1e-12)
    with pytest.raises(UnsupportedOpError, match=r"qsoftmax: softmax input scale 1e-12 .* below 2\^-26.*\(node _1\)"):
        emit.to_tflite(g)
    monkeypatch.setattr(emit, "_kernel_accepts", lambda n: None)  # the file the check keeps us from writing:
    (tmp_path / "m.tflite").write_bytes(emit.to_tflite(g))  # LiteRT loads it, TFLite Micro aborts
    with pytest.raises(RuntimeError, match="SIGABRT"):
        runtime.isolated("tflm_arena_bytes", tmp_path / "m.tflite", timeout=120)


def test_add_multipliers_out_of_range_are_refused_before_litert_sees_them():
    g = rescaled(int8_graph(), "a", 2.7e7)  # LiteRT's ADD aborts on these scales in its Prepare
    with pytest.raises(UnsupportedOpError, match=r"qadd: add/sub output multiplier .* outside \(0, 1\).*\(node add\)"):
        emit.to_tflite(g)


def test_softmax_output_not_at_the_kernels_fixed_scale_is_refused(tmp_path):
    g = rescaled(int8_graph(), "softmax", 0.01, 0)
    with pytest.raises(UnsupportedOpError, match=r"output scale 0.01 and zero point 0, but TFLite's kernel writes only "
                                                 r"0.00390625 and -128 \(node softmax\)"):
        emit.to_tflite(g)
