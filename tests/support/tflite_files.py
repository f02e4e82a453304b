"""TFLite files written directly with the schema's object API, as another tool would (ops the
TFLite backend never emits, stored forms of constants, defects)."""
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from mcuforge.backends.tflite.emit import AlignedBuilder

T = fb.TensorType


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
