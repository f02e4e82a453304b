"""Tensors larger than `ir.types.MAX_TENSOR_BYTES` are refused with a ResourceLimitError that
names the tensor and its bytes, before anything allocates them: declared in a .tflite or an
.onnx file, or made by a shape rule from attributes (tile, expand, resize, pad)."""
import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as fb
from onnx import helper

from mcuforge.backends.tflite.emit import AlignedBuilder, to_tflite
from mcuforge.errors import ModelLoadError, ResourceLimitError
from mcuforge.frontends.onnx import load_onnx
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir import types
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import DType, TensorType

HUGE = [2 ** 20, 2 ** 20, 64]  # 2^46 float32 elements: 256 TiB


def relu_tflite(shape=(2, 3)) -> bytes:
    """relu on a float input, written by the TFLite backend; then every tensor given `shape`."""
    g = Graph("relu")
    g.outputs = [g.op("relu", [g.add_input("x", TensorType((2, 3), DType.f32))])]
    m = fb.ModelT.InitFromPackedBuf(to_tflite(g, offline_plan=False), 0)
    for t in m.subgraphs[0].tensors:
        t.shape = list(shape)
    b = AlignedBuilder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def onnx_file(tmp_path, node, inits, x_shape, y_shape):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape)],
                              [onnx.numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_a_huge_tflite_tensor_is_refused_before_it_is_read():
    with pytest.raises(ResourceLimitError, match=r"tensor 0 \('x'\) .* of shape \[1048576, 1048576, 64\] would "
                                                 r"take 281,474,976,710,656 bytes, more than the 2,147,483,648") as e:
        load_tflite(relu_tflite(HUGE))
    assert isinstance(e.value, ModelLoadError) and e.value.exit_code == 3 and "microcontroller" in e.value.hint


def test_a_huge_onnx_graph_input_is_refused(tmp_path):
    with pytest.raises(ResourceLimitError, match=r"graph input 'x' of shape \[1048576, 1048576, 64\]"):
        load_onnx(onnx_file(tmp_path, helper.make_node("Relu", ["x"], ["y"]), {}, HUGE, HUGE))


@pytest.mark.parametrize("op,node,inits,y_shape", [
    ("tile", helper.make_node("Tile", ["x", "r"], ["y"], name="n"), {"r": np.array([2 ** 20, 2 ** 20], np.int64)},
     [2 ** 22, 2 ** 22]),
    ("tile", helper.make_node("Expand", ["x", "s"], ["y"], name="n"), {"s": np.array([2 ** 20, 2 ** 20, 4], np.int64)},
     [2 ** 20, 2 ** 20, 4]),
    ("pad", helper.make_node("Pad", ["x", "p"], ["y"], name="n"), {"p": np.array([0, 0, 2 ** 30, 2 ** 30], np.int64)},
     [2 ** 30 + 4, 2 ** 30 + 4]),
    ("resize", helper.make_node("Resize", ["x", "", "", "s"], ["y"], name="n", mode="nearest",
                                coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     {"s": np.array([1, 1, 2 ** 20, 2 ** 20], np.int64)}, [1, 1, 2 ** 20, 2 ** 20]),
])
def test_shape_rules_that_make_a_huge_result_are_refused(tmp_path, op, node, inits, y_shape):
    x_shape = [1, 1, 4, 4] if op == "resize" else [1, 4] if node.op_type == "Expand" else [4, 4]
    with pytest.raises(ResourceLimitError, match=f"the result of {op} node 'n' of shape .* would take"):
        load_onnx(onnx_file(tmp_path, node, inits, x_shape, y_shape))


def test_the_limit_is_a_module_constant(monkeypatch):
    data = relu_tflite()
    monkeypatch.setattr(types, "MAX_TENSOR_BYTES", 16)
    with pytest.raises(ResourceLimitError, match="tensor 0 .* would take 24 bytes, more than the 16"):
        load_tflite(data)
    monkeypatch.setattr(types, "MAX_TENSOR_BYTES", 24)
    assert load_tflite(data).inputs[0].shape == (2, 3)
