""".tflite -> IR: files we emit come back with the same numbers (float: the interpreter on the
imported graph vs the original; int8: vs TFLite Micro running the file, bit for bit); flatbuffers
built by hand the way other tools write them (SAME padding, depthwise multipliers, flattening
FULLY_CONNECTED, softmax beta, shrinking slices, int8 with per-channel weights) against LiteRT and
TFLite Micro; malformed files and unsupported ops get clear errors, never a crash."""
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from support.op_cases import FLOAT_CASES, TFLITE_HAS_NO, build, close, rnd
from support.tflite_files import Flatbuffer
from support.tflite_zoo import float_model, int8_model

import mcuforge
from mcuforge import zoo
from mcuforge.backends.tflite.emit import AlignedBuilder, to_tflite
from mcuforge.backends.tflite.runtime import run_litert, run_tflm
from mcuforge.errors import Error, ModelLoadError, UnsupportedOpError, UsageError
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir import interpreter
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import DType, TensorType
from mcuforge.ir.verify import verify
from mcuforge.passes.base import PassContext
from mcuforge.passes.manager import PassManager

OP, T = fb.BuiltinOperator, fb.TensorType
# What the emitter writes with builtins that have no IR op of their own
NOT_IMPORTED = {"layer_norm": "RSQRT", "layer_norm-2d-noparams": "RSQRT"}


@pytest.mark.parametrize("name", [n for n in FLOAT_CASES if n not in TFLITE_HAS_NO])  # emitted: test_tflite_emit
def test_emitted_op_comes_back_with_the_same_numbers(name):
    g, *_ = build(name)
    data = to_tflite(g)
    if name in NOT_IMPORTED:
        with pytest.raises(UnsupportedOpError, match=NOT_IMPORTED[name]):
            load_tflite(data)
        return
    back = load_tflite(data)
    verify(back)
    assert [v.shape for v in back.inputs] == [v.shape for v in g.inputs]
    xs = [rnd(*v.shape) for v in g.inputs]
    for got, want in zip(interpreter.run(back, *xs), interpreter.run(g, *xs), strict=True):
        close(got, want, rtol=1e-5)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_float_file_comes_back_like_torch(name):
    g, x, want = float_model(name)
    back = load_tflite(to_tflite(g))
    verify(back)
    close(interpreter.run(back, x)[0], want)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_int8_file_comes_back_bit_exact_to_tflm(name):
    """The integer attributes are recomputed from the file's scales: the imported graph must
    compute exactly what TFLite Micro computes from the same file."""
    _, _, data, inputs = int8_model(name)
    back = load_tflite(data)
    verify(back)
    x = inputs[0]
    for got, want in zip(interpreter.run(back, x), run_tflm(data, x), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["prelu-last", "prelu-dynamic-alpha"])
def test_int8_prelu_file_comes_back_bit_exact_to_tflm(name):
    """PRELU's two multipliers are recomputed from the scales of x, alpha (a nonzero zero point)
    and the result, as TFLite Micro's Prepare does."""
    g, *_ = build(name)
    calibration = [tuple(rnd(*v.shape) for v in g.inputs) for _ in range(4)]
    PassManager([("quantize", {"calibration": calibration, "quiet": True}), ("lower-quantized", {})]).run(
        g, PassContext())
    data = to_tflite(g)
    back = load_tflite(data)
    verify(back)
    assert back.count() == {"qprelu": 1} and back.nodes[0].attrs["alpha_zp"] != 0
    rng = np.random.default_rng(5)
    xs = [rng.integers(-128, 128, v.shape).astype(np.int8) for v in back.inputs]
    for got, want in zip(interpreter.run(back, *xs), run_tflm(data, *xs), strict=True):
        np.testing.assert_array_equal(got, want)


def hand_built_float() -> bytes:
    f = Flatbuffer()
    x = f.tensor([1, 9, 8, 3])
    y = f.op(OP.CONV_2D, [x, f.const(rnd(8, 3, 3, 3)), f.const(rnd(8))], [f.tensor([1, 5, 4, 8])],
             fb.Conv2DOptionsT(padding=fb.Padding.SAME, strideH=2, strideW=2, dilationHFactor=1, dilationWFactor=1,
                               fusedActivationFunction=fb.ActivationFunctionType.RELU6))
    y = f.op(OP.DEPTHWISE_CONV_2D, [y, f.const(rnd(1, 3, 3, 16)), f.const(rnd(16))], [f.tensor([1, 5, 4, 16])],
             fb.DepthwiseConv2DOptionsT(padding=fb.Padding.SAME, strideH=1, strideW=1, depthMultiplier=2,
                                        dilationHFactor=1, dilationWFactor=1))
    y = f.op(OP.AVERAGE_POOL_2D, [y], [f.tensor([1, 3, 2, 16])],  # SAME: the divisor counts valid taps only
             fb.Pool2DOptionsT(padding=fb.Padding.SAME, strideH=2, strideW=2, filterHeight=3, filterWidth=3))
    y = f.op(OP.TRANSPOSE_CONV, [f.const(np.array([1, 6, 4, 4], np.int32)), f.const(rnd(4, 3, 3, 16)), y],
             [f.tensor([1, 6, 4, 4])], fb.TransposeConvOptionsT(padding=fb.Padding.SAME, strideH=2, strideW=2))
    y = f.op(OP.PAD, [y, f.const(np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32))], [f.tensor([1, 7, 6, 4])])
    y = f.op(OP.MAX_POOL_2D, [y], [f.tensor([1, 3, 3, 4])],
             fb.Pool2DOptionsT(padding=fb.Padding.VALID, strideH=2, strideW=2, filterHeight=2, filterWidth=2))
    begin_end_strides = [f.const(np.array(v, np.int32)) for v in ([0, 1, 0, 0], [1, 2, 3, 4], [1, 1, 2, 1])]
    s = f.op(OP.STRIDED_SLICE, [y, *begin_end_strides], [f.tensor([1, 2, 4])],
             fb.StridedSliceOptionsT(shrinkAxisMask=0b10, endMask=0b1000))
    m = f.op(OP.MEAN, [y, f.const(np.array([1], np.int32))], [f.tensor([1, 3, 4])], fb.ReducerOptionsT(keepDims=False))
    c = f.op(OP.CONCATENATION, [s, m], [f.tensor([1, 5, 4])], fb.ConcatenationOptionsT(axis=1))
    y = f.op(OP.FULLY_CONNECTED, [c, f.const(rnd(6, 20)), -1], [f.tensor([1, 6])],  # flattens, no bias
             fb.FullyConnectedOptionsT(keepNumDims=False))
    y = f.op(OP.ADD, [y, f.const(rnd(6))], [f.tensor([1, 6])],
             fb.AddOptionsT(fusedActivationFunction=fb.ActivationFunctionType.RELU))
    y = f.op(OP.EXPAND_DIMS, [y, f.const(np.array(1, np.int32))], [f.tensor([1, 1, 6])])
    y = f.op(OP.SQUEEZE, [y], [f.tensor([1, 6])], fb.SqueezeOptionsT(squeezeDims=[1]))
    y = f.op(OP.SOFTMAX, [y], [f.tensor([1, 6])], fb.SoftmaxOptionsT(beta=0.5))
    return f.bytes([x], [y])


def test_hand_built_float_file_matches_litert_and_tflm():
    data = hand_built_float()
    back = load_tflite(data)
    verify(back)
    x = rnd(1, 9, 8, 3)
    ours = interpreter.run(back, x)[0]
    close(ours, run_litert(data, x)[0], rtol=1e-5)
    close(ours, run_tflm(data, x)[0], rtol=1e-5)


def hand_built_int8() -> bytes:
    """Float in, quantize, int8 conv (per-channel weights, fused RELU), max pool, RELU6, FC,
    softmax at TFLite's fixed 1/256 output scale, dequantize."""
    f, rng = Flatbuffer(), np.random.default_rng(3)
    x = f.tensor([1, 6, 6, 2])
    q = f.op(OP.QUANTIZE, [x], [f.tensor([1, 6, 6, 2], T.INT8, scale=0.02, zero_point=-3)])
    ws = np.array([0.01, 0.02, 0.015, 0.03])
    w = f.const(rng.integers(-127, 128, (4, 3, 3, 2)).astype(np.int8), scale=ws, zero_point=[0] * 4)
    y = f.op(OP.CONV_2D, [q, w, f.const(rng.integers(-500, 500, 4).astype(np.int32), scale=0.02 * ws, zero_point=[0] * 4)],
             [f.tensor([1, 6, 6, 4], T.INT8, scale=0.05, zero_point=-128)],
             fb.Conv2DOptionsT(padding=fb.Padding.SAME, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
                               fusedActivationFunction=fb.ActivationFunctionType.RELU))
    y = f.op(OP.MAX_POOL_2D, [y], [f.tensor([1, 3, 3, 4], T.INT8, scale=0.05, zero_point=-128)],
             fb.Pool2DOptionsT(padding=fb.Padding.SAME, strideH=2, strideW=2, filterHeight=2, filterWidth=2))
    y = f.op(OP.RELU6, [y], [f.tensor([1, 3, 3, 4], T.INT8, scale=0.05, zero_point=-128)])
    w = f.const(rng.integers(-127, 128, (5, 36)).astype(np.int8), scale=0.01, zero_point=0)
    y = f.op(OP.FULLY_CONNECTED, [y, w, f.const(rng.integers(-300, 300, 5).astype(np.int32), scale=0.0005, zero_point=0)],
             [f.tensor([1, 5], T.INT8, scale=0.1, zero_point=4)], fb.FullyConnectedOptionsT())
    y = f.op(OP.SOFTMAX, [y], [f.tensor([1, 5], T.INT8, scale=1 / 256, zero_point=-128)], fb.SoftmaxOptionsT(beta=1.0))
    y = f.op(OP.DEQUANTIZE, [y], [f.tensor([1, 5])])
    return f.bytes([x], [y])


def test_hand_built_int8_file_is_bit_exact_to_tflm():
    data = hand_built_int8()
    back = load_tflite(data)
    verify(back)
    assert {"qconv2d", "clamp", "qlinear", "qsoftmax", "quantize", "dequantize"} <= set(back.count())
    for _ in range(3):
        x = rnd(1, 6, 6, 2)
        np.testing.assert_array_equal(interpreter.run(back, x)[0], run_tflm(data, x)[0])


def test_unsupported_ops_are_all_listed_once():
    f = Flatbuffer()
    x = f.tensor([2, 3])
    a = f.op(OP.RSQRT, [x], [f.tensor([2, 3])])
    b = f.op(OP.COS, [x], [f.tensor([2, 3])])
    c = f.op(OP.CUSTOM, [x], [f.tensor([2, 3])], custom="MyOp")
    d = f.op(OP.ADD, [a, b], [f.tensor([2, 3])], fb.AddOptionsT())  # fed by unsupported ops: not listed
    with pytest.raises(UnsupportedOpError) as err:
        load_tflite(f.bytes([x], [d, c]))
    assert [i.op for i in err.value.items] == ["RSQRT", "COS", "CUSTOM 'MyOp'"]
    assert "cannot import" in str(err.value)


def test_malformed_files_raise_model_load_error(tmp_path):
    good = hand_built_float()
    cases = {"empty": b"", "text": b"hello, this is not a model at all",
             "no identifier": good[:4] + b"XXXX" + good[8:], "truncated": good[:len(good) // 3],
             "cut header": good[:10]}
    for what, data in cases.items():
        with pytest.raises(ModelLoadError, match="TFLite|truncated|corrupt") as err:
            load_tflite(data)
        assert err.value.hint, what
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_tflite(tmp_path / "missing.tflite")


def inconsistent(defect: str) -> bytes:
    """A well-formed flatbuffer (TFL3, complete) whose contents contradict each other."""
    f = Flatbuffer()
    x = f.tensor([2, 3])
    other = 7 if defect == "tensor index" else \
        f.tensor([2, 3], data=np.zeros(4, np.float32)) if defect == "short buffer" else x
    y = f.op(OP.ADD, [x, other], [f.tensor([2, 3])], fb.AddOptionsT())
    if defect == "operator code":
        f.ops[0].opcodeIndex = 5
    return f.bytes([x], [9 if defect == "output index" else y])


@pytest.mark.parametrize("defect,message", [
    ("tensor index", "operator 0 reads or writes a tensor index outside 0..1"),
    ("short buffer", r"tensor 1 \('t1'\) has 16 bytes of data, its shape needs 24"),
    ("operator code", "operator 0 uses operator code 5 of 1"),
    ("output index", "a subgraph input or output is not a tensor"),
])
def test_inconsistent_files_raise_model_load_error(defect, message):
    with pytest.raises(ModelLoadError, match=message) as err:
        load_tflite(inconsistent(defect))
    assert "corrupt" in str(err.value) and err.value.hint


def test_corrupted_bytes_never_crash():
    good, rng = hand_built_float(), np.random.default_rng(0)
    for _ in range(200):
        data = bytearray(good)
        for i in rng.integers(0, len(data), 4):
            data[i] = rng.integers(0, 256)
        try:
            load_tflite(bytes(data))
        except Error:
            pass  # ModelLoadError / UnsupportedOpError: told, not crashed


def test_public_api_and_compile_read_tflite_files(tmp_path):
    path = tmp_path / "hand.tflite"
    path.write_bytes(hand_built_float())
    g = mcuforge.load_tflite(path)
    assert g.name == "hand" and g.inputs[0].shape == (1, 9, 8, 3)
    art = mcuforge.compile(str(path), emit=("tflite",), out_dir=tmp_path / "out", passes="float")
    x = rnd(1, 9, 8, 3)
    close(run_tflm(art.files["tflite"].read_bytes(), x)[0], interpreter.run(g, x)[0], rtol=1e-5)
    with pytest.raises(UsageError, match="does not exist"):
        mcuforge.compile(str(tmp_path / "missing.tflite"), emit=())


# ---------------------------------------------------------------- compressed constants (float16, sparse)

def linear_file(w: np.ndarray) -> tuple[bytes, int]:
    """A one-FULLY_CONNECTED file by our emitter, and the index of its weight tensor."""
    g = Graph("fc")
    y = g.op("linear", [g.add_input("x", TensorType((3, w.shape[1]), DType.f32)),
                        g.const(w, "w"), g.const(rnd(w.shape[0]), "b")], dict(act="relu"))
    g.outputs = [y]
    data = to_tflite(g, offline_plan=False)
    return data, [t.name for t in model_of(data).subgraphs[0].tensors].index(b"w")


def model_of(data: bytes) -> fb.ModelT:
    return fb.ModelT.InitFromPackedBuf(data, 0)


def packed(m: fb.ModelT) -> bytes:
    b = AlignedBuilder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def stored_as(data: bytes, w: int, values: np.ndarray, dtype: int, through: int | None,
              sparsity: fb.SparsityParametersT | None = None) -> bytes:
    """`data` with tensor `w` computed by op `through` (DEQUANTIZE, DENSIFY; None: `w` itself is
    rewritten) from a new constant of `dtype` holding `values` (and `sparsity`), as TensorFlow's
    converter writes float16 and sparse weights."""
    m = model_of(data)
    sub, t = m.subgraphs[0], m.subgraphs[0].tensors[w]
    m.buffers.append(fb.BufferT(data=np.frombuffer(values.tobytes(), np.uint8)))
    c = fb.TensorT(shape=list(t.shape), type=dtype, name=t.name + b"_stored", buffer=len(m.buffers) - 1,
                   sparsity=sparsity)
    if through is None:
        sub.tensors[w] = c
        return packed(m)
    sub.tensors.append(c)
    t.buffer = 0
    m.operatorCodes.append(fb.OperatorCodeT(deprecatedBuiltinCode=through, builtinCode=through, version=1))
    sub.operators.insert(0, fb.OperatorT(opcodeIndex=len(m.operatorCodes) - 1, inputs=[len(sub.tensors) - 1],
                                         outputs=[w]))
    return packed(m)


def matches_litert(data: bytes, x: np.ndarray, want: np.ndarray | None = None, kernels="default"):
    back = load_tflite(data)
    verify(back)
    ours = interpreter.run(back, x)[0]
    close(ours, run_litert(data, x, kernels=kernels)[0], rtol=1e-5)
    if want is not None:
        close(ours, want, rtol=1e-5)


def test_float16_weights_behind_dequantize_fold_to_float32():
    w = rnd(5, 6)
    data, i = linear_file(w)
    x, w16 = rnd(3, 6), w.astype(np.float16)
    f16 = stored_as(data, i, w16, T.FLOAT16, OP.DEQUANTIZE)
    back = load_tflite(f16)
    assert back.count() == {"linear": 1} and back.nodes[0].inputs[1].dtype == DType.f32
    np.testing.assert_array_equal(back.nodes[0].inputs[1].data, w16.astype(np.float32))
    matches_litert(f16, x)


def vec(values, kind=fb.Int32VectorT):
    v = kind()
    v.values = [int(a) for a in values]
    return v


def dense(size):
    return fb.DimensionMetadataT(format=fb.DimensionType.DENSE, denseSize=size)


def csr(segments, indices, kind=fb.Int32VectorT):
    codes = {fb.Int32VectorT: fb.SparseIndexVector.Int32Vector, fb.Uint16VectorT: fb.SparseIndexVector.Uint16Vector,
             fb.Uint8VectorT: fb.SparseIndexVector.Uint8Vector}
    return fb.DimensionMetadataT(format=fb.DimensionType.SPARSE_CSR, arraySegmentsType=codes[kind],
                                 arraySegments=vec(segments, kind), arrayIndicesType=codes[kind],
                                 arrayIndices=vec(indices, kind))


def pruned(shape, block=(1, 1), seed=0):
    """A weight with about half of its `block`s zero."""
    rng = np.random.default_rng(seed)
    keep = rng.random((shape[0] // block[0], shape[1] // block[1])) < 0.5
    return (rnd(*shape) * np.kron(keep, np.ones(block))).astype(np.float32)


def csr_rows(w: np.ndarray, kind=fb.Int32VectorT) -> tuple[np.ndarray, fb.SparsityParametersT]:
    """Rows dense, columns SPARSE_CSR."""
    rows, cols = np.nonzero(w)
    sp = fb.SparsityParametersT(traversalOrder=[0, 1], dimMetadata=[
        dense(w.shape[0]), csr(np.searchsorted(rows, np.arange(w.shape[0] + 1)), cols, kind)])
    return w[rows, cols], sp


def csr_blocks(w: np.ndarray, b: int) -> tuple[np.ndarray, fb.SparsityParametersT]:
    """Blocks of 1 x b along the columns (block_map [1]), the blocks of each row SPARSE_CSR, the
    columns within a block DENSE: the layout of TensorFlow's 1x4 block-sparse weights."""
    blocks = w.reshape(w.shape[0], -1, b)
    rows, cols = np.nonzero(np.abs(blocks).sum(-1))
    sp = fb.SparsityParametersT(traversalOrder=[0, 1, 2], blockMap=[1], dimMetadata=[
        dense(w.shape[0]), csr(np.searchsorted(rows, np.arange(w.shape[0] + 1)), cols, fb.Uint16VectorT), dense(b)])
    return blocks[rows, cols].reshape(-1), sp


def transposed_csr(w: np.ndarray) -> tuple[np.ndarray, fb.SparsityParametersT]:
    """Columns first (traversal order [1, 0]): column-major CSR."""
    cols, rows = np.nonzero(w.T)
    sp = fb.SparsityParametersT(traversalOrder=[1, 0], dimMetadata=[
        dense(w.shape[1]), csr(np.searchsorted(cols, np.arange(w.shape[1] + 1)), rows, fb.Uint8VectorT)])
    return w[rows, cols], sp


@pytest.mark.parametrize("layout", ["rows", "blocks", "columns"])
def test_sparse_weights_behind_densify_match_litert(layout):
    w = pruned((6, 8), (1, 4) if layout == "blocks" else (1, 1))
    values, sp = {"rows": csr_rows, "blocks": lambda w: csr_blocks(w, 4), "columns": transposed_csr}[layout](w)
    data, i = linear_file(w)
    sparse = stored_as(data, i, values, T.FLOAT32, OP.DENSIFY, sp)
    back = load_tflite(sparse)
    assert back.count() == {"linear": 1}
    np.testing.assert_array_equal(back.nodes[0].inputs[1].data, w)
    x = rnd(3, 8)
    matches_litert(sparse, x, np.maximum(x @ w.T + back.nodes[0].inputs[2].data, 0))


def test_sparse_float16_weights_densify_then_dequantize():
    w = pruned((4, 8), seed=1)
    data, i = linear_file(w)
    values, sp = csr_rows(w.astype(np.float16))
    m = model_of(stored_as(data, i, np.zeros(w.shape, np.float16), T.FLOAT16, OP.DEQUANTIZE))
    sub = m.subgraphs[0]
    half = sub.operators[0].inputs[0]  # DEQUANTIZE's input becomes DENSIFY's output
    m.buffers.append(fb.BufferT(data=np.frombuffer(values.tobytes(), np.uint8)))
    sub.tensors.append(fb.TensorT(shape=[4, 8], type=T.FLOAT16, name=b"w_sparse", buffer=len(m.buffers) - 1,
                                  sparsity=sp))
    sub.tensors[half].buffer = 0
    m.operatorCodes.append(fb.OperatorCodeT(deprecatedBuiltinCode=OP.DENSIFY, builtinCode=OP.DENSIFY, version=1))
    sub.operators.insert(0, fb.OperatorT(opcodeIndex=len(m.operatorCodes) - 1, inputs=[len(sub.tensors) - 1],
                                         outputs=[half]))
    data = packed(m)
    back = load_tflite(data)
    np.testing.assert_array_equal(back.nodes[0].inputs[1].data, w.astype(np.float16).astype(np.float32))
    matches_litert(data, rnd(3, 8))


def test_sparse_weights_read_in_place_by_fully_connected():
    """Without DENSIFY: LiteRT's own FULLY_CONNECTED reads 1x4 block-sparse float weights (its
    XNNPACK delegate reads the stored values as a dense weight: not the oracle here)."""
    w = pruned((8, 16), (1, 4), seed=2)
    data, i = linear_file(w)
    values, sp = csr_blocks(w, 4)
    sparse = stored_as(data, i, values, T.FLOAT32, None, sp)
    matches_litert(sparse, rnd(3, 16), kernels="builtin")


@pytest.mark.parametrize("defect", ["segments", "indices", "values", "traversal"])
def test_inconsistent_sparsity_is_a_corrupt_file(defect):
    w = pruned((4, 6), seed=3)
    values, sp = csr_rows(w)
    level = sp.dimMetadata[1]
    if defect == "segments":
        level.arraySegments.values[-1] += 5
    elif defect == "indices":
        level.arrayIndices.values[0] = 6
    elif defect == "traversal":
        sp.traversalOrder = [0, 0]
    data, i = linear_file(w)
    data = stored_as(data, i, values[:-1] if defect == "values" else values, T.FLOAT32, OP.DENSIFY, sp)
    with pytest.raises(ModelLoadError, match="corrupt.*sparse tensor") as err:
        load_tflite(data)
    assert err.value.hint


def test_unsupported_ops_after_unsupported_ops_are_listed_too():
    """A chain of refused ops (26 PRELUs, as issue 18 found, before PRELU was imported): every one
    is reported, with its node, not only the first."""
    f = Flatbuffer()
    x = f.tensor([2, 3])
    y = f.op(OP.COS, [x], [f.tensor([2, 3])])
    y = f.op(OP.ADD, [y, f.const(rnd(3))], [f.tensor([2, 3])], fb.AddOptionsT())
    y = f.op(OP.RSQRT, [y], [f.tensor([2, 3])])
    y = f.op(OP.COS, [y], [f.tensor([2, 3])])
    y = f.op(OP.STRIDED_SLICE, [y, *(f.const(np.array(v, np.int32)) for v in ([0, 0], [2, 3], [1, -1]))],
             [f.tensor([2, 3])], fb.StridedSliceOptionsT())
    with pytest.raises(UnsupportedOpError) as err:
        load_tflite(f.bytes([x], [y]))
    assert [(i.op.split(":")[0], i.node) for i in err.value.items] == [
        ("COS", "t1"), ("RSQRT", "t4"), ("COS", "t5"), ("STRIDED_SLICE", "t9")]


def test_a_tensor_type_the_ir_has_not_is_unsupported_not_corrupt():
    f = Flatbuffer()
    x = f.tensor([2, 3])
    c = f.tensor([3], T.FLOAT64, np.ones(3))
    y = f.op(OP.ADD, [x, c], [f.tensor([2, 3])], fb.AddOptionsT())
    with pytest.raises(UnsupportedOpError, match="FLOAT64"):
        load_tflite(f.bytes([x], [y]))
