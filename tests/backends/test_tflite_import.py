""".tflite -> IR: files we emit come back with the same numbers (float: the interpreter on the
imported graph vs the original; int8: vs TFLite Micro running the file, bit for bit); flatbuffers
built by hand the way other tools write them (SAME padding, depthwise multipliers, flattening
FULLY_CONNECTED, softmax beta, shrinking slices, int8 with per-channel weights) against LiteRT and
TFLite Micro; malformed files and unsupported ops get clear errors, never a crash."""
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from test_onnx_emit import build, rnd
from test_tflite_emit import FLOAT_CASES, close
from tflite_zoo import float_model, int8_model

import mcuforge
from mcuforge import zoo
from mcuforge.backends.tflite.emit import AlignedBuilder, to_tflite
from mcuforge.backends.tflite.runtime import run_litert, run_tflm
from mcuforge.errors import Error, ModelLoadError, UnsupportedOpError, UsageError
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir import interpreter
from mcuforge.ir.verify import verify

OP, T = fb.BuiltinOperator, fb.TensorType
# What the emitter writes with builtins that have no IR op of their own
NOT_IMPORTED = {"layer_norm": "RSQRT", "layer_norm-2d-noparams": "RSQRT",
                "max_pool2d-dilated": "MAXIMUM", "max_pool2d-dilated-last": "MAXIMUM"}


@pytest.mark.parametrize("name", FLOAT_CASES)
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


class Flatbuffer:
    """A .tflite written directly with the schema's object API, as another tool would."""

    def __init__(self):
        self.tensors, self.ops, self.codes, self.buffers = [], [], [], [fb.BufferT()]

    def tensor(self, shape, dtype=T.FLOAT32, data=None, scale=None, zero_point=None, axis=0):
        t = fb.TensorT(shape=list(shape), type=dtype, name=f"t{len(self.tensors)}")
        if data is not None:
            self.buffers.append(fb.BufferT(data=np.ascontiguousarray(data).view(np.uint8).reshape(-1)))
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            t.quantization = fb.QuantizationParametersT(scale=list(np.atleast_1d(scale)), quantizedDimension=axis,
                                                        zeroPoint=list(np.atleast_1d(zero_point)))
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, array, **quant):
        a = np.asarray(array)
        dtype = {np.float32: T.FLOAT32, np.int32: T.INT32, np.int8: T.INT8}[a.dtype.type]
        return self.tensor(a.shape, dtype, a, **quant)

    def op(self, code, inputs, outputs, options=None, custom=None):
        self.codes.append(fb.OperatorCodeT(builtinCode=code, deprecatedBuiltinCode=min(code, 127), version=1,
                                           customCode=custom))
        o = fb.OperatorT(opcodeIndex=len(self.codes) - 1, inputs=inputs, outputs=outputs)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = getattr(fb.BuiltinOptions, type(options).__name__[:-1]), options
        self.ops.append(o)
        return outputs[0]

    def bytes(self, inputs, outputs) -> bytes:
        sub = fb.SubGraphT(tensors=self.tensors, inputs=inputs, outputs=outputs, operators=self.ops, name="hand")
        model = fb.ModelT(version=3, operatorCodes=self.codes, subgraphs=[sub], buffers=self.buffers)
        b = AlignedBuilder(1024)
        b.Finish(model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


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
    b = f.op(OP.EXP, [x], [f.tensor([2, 3])])
    c = f.op(OP.CUSTOM, [x], [f.tensor([2, 3])], custom="MyOp")
    d = f.op(OP.ADD, [a, b], [f.tensor([2, 3])], fb.AddOptionsT())  # fed by unsupported ops: not listed
    with pytest.raises(UnsupportedOpError) as err:
        load_tflite(f.bytes([x], [d, c]))
    assert [i.op for i in err.value.items] == ["RSQRT", "EXP", "CUSTOM 'MyOp'"]
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
