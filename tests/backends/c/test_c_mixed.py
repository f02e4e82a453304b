"""Mixed int8 / int16x8 models (quantize's keep_int16) in the C backend: built with gcc and clang
and run bit for bit against the reference interpreter (int16 layers, requantize int8 <-> int16)."""
import numpy as np
import pytest
from support.cbuild import build_and_check

import mcuforge
from mcuforge import zoo


@pytest.mark.parametrize("name,keep", [("tiny_cnn", ["features_2_0"]),
                                       ("resnet8", ["features_1_body_1_0", "add", "features_2_shortcut", "head"])])
def test_mixed_int8_int16_bit_exact(tmp_path, name, keep):
    model, inputs = zoo.get(name)
    x = inputs[0].numpy()
    calibration = [x] + [np.random.default_rng(k).standard_normal(x.shape).astype(np.float32) for k in range(3)]
    graph = mcuforge.compile(model, inputs, emit=(), quantize="int8", calibration=calibration, keep_int16=keep).graph
    assert graph.count("requantize") >= 2 and any(v.dtype.value == "i16" for n in graph.nodes for v in n.outputs)
    build_and_check(tmp_path, graph)
