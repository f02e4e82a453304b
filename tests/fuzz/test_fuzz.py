"""The bounded fuzz run (a few hundred mutants of the seeds, the CLI on a tenth of them: no input
may end in a bug class), and one regression test per failure class the fuzzer found, each on a
small input made here from a seed or by hand."""
from pathlib import Path

import numpy as np
import onnx
import pytest
from harness import BUGS, Worker, campaign, make_seeds, mutant
from onnx import helper

from mcuforge.errors import ModelLoadError, ResourceLimitError, UnsupportedOpError
from mcuforge.frontends.onnx import load_onnx
from mcuforge.frontends.tflite import load_tflite


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seeds(tmp_path_factory.mktemp("seeds"))


def test_bounded_fuzz_finds_no_bug(seeds, tmp_path):
    counts, bugs = campaign(seeds, range(15), tmp_path, cli_every=10, worker=Worker(timeout=60))
    assert sum(counts.values()) == 15 * len(seeds) >= 300
    assert counts["ok"] and counts["typed"], counts
    assert not bugs, "\n".join(f"{seed} #{number}: {sig}" for sig, (seed, number) in bugs.items())
    assert not any(counts[b] for b in BUGS)


def test_mutants_are_deterministic(seeds):
    for seed in seeds[:4]:
        assert mutant(seed, 3) == mutant(seed, 3) and mutant(seed, 3)[0] != seed.read_bytes()


def small_onnx(tmp_path: Path, edit=None) -> Path:
    """y = relu(x + w), w a 2x3 float initializer; `edit(model)` changes it before it is saved."""
    w = onnx.numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["s"], name="add"),
                               helper.make_node("Relu", ["s"], ["y"], name="relu")], "small",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if edit:
        edit(model)
    path = tmp_path / "small.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_initializer_of_a_type_the_ir_has_not_is_unsupported(tmp_path):
    def to_uint64(m):
        m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.ones((2, 3), np.uint64), "w"))
        m.graph.node[0].op_type = "Sum"  # Add would need both operands of one type
    with pytest.raises(UnsupportedOpError, match="initializer of type UINT64"):
        load_onnx(small_onnx(tmp_path, to_uint64))


def test_onnx_initializer_data_that_does_not_fit_its_dims_is_corrupt(tmp_path):
    def grow(m):  # onnx.checker refuses data shorter than the dims, not longer
        m.graph.initializer[0].raw_data += bytes(4)
    with pytest.raises(ModelLoadError, match=r"initializer 'w' .* has 28 bytes of data, its dims \[2, 3\] need 24"):
        load_onnx(small_onnx(tmp_path, grow))

    def typed(m):
        w = m.graph.initializer[0]
        w.ClearField("raw_data")
        w.float_data.extend([1.0] * 7)
    with pytest.raises(ModelLoadError, match="has 7 values of data, its dims"):
        load_onnx(small_onnx(tmp_path, typed))


def test_onnx_names_that_are_not_utf8_are_corrupt(tmp_path):
    path = small_onnx(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"relu", b"r\xd7lu", 1))
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        load_onnx(path)


def test_onnx_shapes_inconsistent_with_the_op_are_corrupt(tmp_path):
    def conv(m):  # ONNX's shape inference does not compare a Conv's input and weight channels
        m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w"))
        m.graph.node[0].CopyFrom(helper.make_node("Conv", ["x", "w"], ["s"], name="conv"))
        for v, shape in ((m.graph.input[0], [1, 2, 4, 4]), (m.graph.output[0], [1, 2, 4, 4])):
            v.CopyFrom(helper.make_tensor_value_info(v.name, onnx.TensorProto.FLOAT, shape))
    with pytest.raises(ModelLoadError, match="inconsistent at node conv .*input has 2 channels"):
        load_onnx(small_onnx(tmp_path, conv))


def test_onnx_value_info_contradicting_inference_is_corrupt(tmp_path):
    def contradict(m):
        m.graph.value_info.append(helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, [5, 3]))
    with pytest.raises(ModelLoadError, match="shape inference failed"):
        load_onnx(small_onnx(tmp_path, contradict))


def test_tflite_quantization_arrays_out_of_range_are_corrupt(seeds):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb
    seed = next(s for s in seeds if s.name == "convnet_int8.tflite")

    def edited(change) -> bytes:
        m = fb.ModelT.InitFromPackedBuf(seed.read_bytes(), 0)
        change(next(t for t in m.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale
                    is not None and len(t.quantization.scale) > 1).quantization)
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
    for change, message in [(lambda q: setattr(q, "scale", [float("-inf")] * len(q.scale)), "not all finite"),
                            (lambda q: setattr(q, "quantizedDimension", 7), "scales for axis 7"),
                            (lambda q: setattr(q, "zeroPoint", [0]), "zero points for")]:
        with pytest.raises(ModelLoadError, match=message):
            load_tflite(edited(change))


def test_tflite_scales_the_kernel_rejects_are_unsupported(seeds):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb
    m = fb.ModelT.InitFromPackedBuf(next(s for s in seeds if s.name == "convnet_int8.tflite").read_bytes(), 0)
    sub = m.subgraphs[0]
    softmax = next(o for o in sub.operators if m.operatorCodes[o.opcodeIndex].builtinCode == fb.BuiltinOperator.SOFTMAX)
    sub.tensors[softmax.inputs[0]].quantization.scale = [1e-12]  # TFLite Micro aborts on it
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(UnsupportedOpError, match="SOFTMAX: softmax input scale .* below 2\\^-26"):
        load_tflite(bytes(b.Output()))


def test_onnx_per_axis_scales_that_do_not_fit_the_axis_are_corrupt(tmp_path):
    def dequantize(m):  # found by the fuzzer: the axis attribute dropped, so ONNX's default axis 1 is used
        m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.ones((2, 3), np.int8), "w"))
        m.graph.initializer.extend([onnx.numpy_helper.from_array(np.ones(2, np.float32), "scale"),
                                    onnx.numpy_helper.from_array(np.zeros(2, np.int8), "zp")])
        m.graph.node.insert(0, helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["wf"], name="dq"))
        m.graph.node[1].input[1] = "wf"
    with pytest.raises(ModelLoadError, match="inconsistent at node dq .*2 scales for axis 1 of"):
        load_onnx(small_onnx(tmp_path, dequantize))


def test_c_backend_refuses_tensors_of_a_type_it_has_no_kernel_for(tmp_path):
    import mcuforge

    def half(m):  # found by the fuzzer: a float16 input reached the C emitter
        m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
        m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.ones((2, 3), np.float16), "w"))
        m.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    with pytest.raises(UnsupportedOpError, match="on f16 tensors"):
        mcuforge.compile(str(small_onnx(tmp_path, half)), emit=("c",), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def one_node(tmp_path: Path, node, inits, out_shape, out_type=onnx.TensorProto.FLOAT) -> Path:
    """A model of `node` on initializers `inits` ({name: array}) alone, its output y of `out_shape`."""
    graph = helper.make_graph([node], "one", [], [helper.make_tensor_value_info("y", out_type, out_shape)],
                              [onnx.numpy_helper.from_array(a, k) for k, a in inits.items()])
    path = tmp_path / "one.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_onnx_folding_that_broadcasts_what_the_op_refuses_is_corrupt(tmp_path):
    inits = {"w": np.ones((2, 1), np.int8), "scale": np.ones(2, np.float32), "zp": np.zeros(2, np.int8)}
    path = one_node(tmp_path, helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["y"], name="dq"), inits, [2, 1])
    with pytest.raises(ModelLoadError, match="inconsistent at node dq .*2 scales for axis 1 of"):
        load_onnx(path)


def test_onnx_gemm_bias_that_does_not_broadcast_to_the_result_is_corrupt(tmp_path):
    def gemm(m):  # found by the fuzzer: a (5, 1) bias on a (1, 5) result
        m.graph.initializer.extend([onnx.numpy_helper.from_array(np.ones((5, 3), np.float32), "b"),
                                    onnx.numpy_helper.from_array(np.ones((5, 1), np.float32), "c")])
        m.graph.node[1].CopyFrom(helper.make_node("Gemm", ["s", "b", "c"], ["y"], name="gemm", transB=1))
        m.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 5]))
    with pytest.raises(ModelLoadError, match=r"inconsistent at node gemm .*C of shape \(5, 1\) does not broadcast"):
        load_onnx(small_onnx(tmp_path, gemm))


def test_onnx_folding_is_bounded_by_the_inferred_size(tmp_path):
    node = helper.make_node("ConstantOfShape", ["shape"], ["y"], name="huge")
    path = one_node(tmp_path, node, {"shape": np.array([2 ** 20, 2 ** 20], np.int64)}, [2 ** 20, 2 ** 20])
    with pytest.raises(ResourceLimitError, match=r"'y' of shape \[1048576, 1048576\]"):  # not folded: 2^40 elements
        load_onnx(path)


def test_c_backend_refuses_a_graph_input_of_a_type_it_has_no_kernel_for(seeds, tmp_path):
    """Found by the long run: a float16 graph input that no node reads reached the C emitter."""
    from mcuforge.compiler.cli import main
    seed = next(s for s in seeds if s.name == "convnet_float.onnx")
    path = tmp_path / "m.onnx"
    path.write_bytes(mutant(seed, 100219)[0])
    assert main(["compile", str(path), "--emit", "c", "-o", str(tmp_path / "out")]) == 3
    assert not (tmp_path / "out").exists()
