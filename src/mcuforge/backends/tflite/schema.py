"""The TFLite schema side of the backend: `Emitter` collects the tensors, buffers (deduplicated),
operator codes and operators of one subgraph as the schema's Python object API
(`ai_edge_litert.schema_py_generated`, shipped with LiteRT), which `emit.to_tflite` packs into a
flatbuffer. Lowerings (lower.py) call it; `Unsupported` is their refusal.
"""
from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ...frontends.tflite import DTYPES
from ...ir.graph import Value
from ...ir.types import DType, QuantParams

OP = fb.BuiltinOperator
SAME, VALID = fb.Padding.SAME, fb.Padding.VALID
ACTS = {"none": fb.ActivationFunctionType.NONE, "relu": fb.ActivationFunctionType.RELU,
         "relu6": fb.ActivationFunctionType.RELU6}
OFFLINE_PLAN = "OfflineMemoryAllocation"  # the metadata name TFLite Micro reads (micro_allocation_info.cc)
OFFLINE_PLAN_VERSION = 1


class Unsupported(Exception):
    """A lowering's refusal: the reason TFLite cannot express this node."""


class Emitter:
    """Collects the tensors, buffers and operators of one TFLite subgraph.

    Besides the tensors of IR values, lowerings make temporaries (a padded input, a reshaped
    view); `temps` lists them per IR node and `views` the (source, result) tensor pairs of the
    reshapes, for the offline memory plan."""

    def __init__(self):
        self.tensors: list[fb.TensorT] = []
        self.nbytes: list[int] = []  # per tensor
        self.operators: list[fb.OperatorT] = []
        self.opcodes: list[fb.OperatorCodeT] = []
        self.buffers = [fb.BufferT()]  # buffer 0 is empty: every activation tensor points at it
        self._buffer_of: dict[bytes, int] = {}  # buffer contents -> index (deduplication)
        self._opcode_of: dict[int, int] = {}
        self._index: dict[int, int] = {}  # id(Value) -> tensor index
        self.values: set[int] = set()  # tensors of non-constant IR values
        self.outputs: set[int] = set()  # id() of the graph's outputs
        self.temps: dict[str, list[int]] = {}  # IR node -> the temporaries its lowering made
        self.views: list[tuple[int, int]] = []  # (source, result) tensors of each RESHAPE
        self.node_ops: dict[str, list[fb.OperatorT]] = {}  # IR node -> its operators
        self._names: set[str] = set()
        self.current = ""  # the IR node being lowered; names the temporaries it makes

    # ------------------------------------------------------------ tensors
    def tensor(self, v: Value) -> int:
        """The tensor of IR value `v` (made on first use; a constant gets its buffer)."""
        if id(v) not in self._index:
            self._index[id(v)] = self._add(v.name, v.shape, v.dtype, v.type.quant, v.data)
            if not v.is_const:
                self.values.add(self._index[id(v)])
        return self._index[id(v)]

    def _add(self, name, shape, dtype: DType, quant: QuantParams | None = None, data=None) -> int:
        self.tensors.append(self.tensor_t(name, shape, dtype, quant, data))
        self.nbytes.append(math.prod(shape) * dtype.itemsize)
        return len(self.tensors) - 1

    def tensor_t(self, name, shape, dtype: DType, quant: QuantParams | None = None, data=None) -> fb.TensorT:
        """A tensor (its data in a buffer of this model) for any subgraph."""
        t = fb.TensorT(shape=[int(d) for d in shape], type=DTYPES[dtype], name=name)
        if quant is not None:
            t.quantization = fb.QuantizationParametersT(scale=list(quant.scale), zeroPoint=list(quant.zero_point),
                                                        quantizedDimension=quant.axis or 0)
        if data is not None:
            t.buffer = self.buffer(np.asarray(data, dtype.np))
        return t

    def resource(self, name: str) -> int:
        """A resource tensor (a VAR_HANDLE's result): no bytes of the arena."""
        self.tensors.append(fb.TensorT(shape=[], type=fb.TensorType.RESOURCE, name=f"{name}/handle"))
        self.nbytes.append(0)
        return len(self.tensors) - 1

    def fresh(self, base: str) -> str:
        """A new tensor name under the current node's (a '/' never appears in IR names)."""
        name, n = f"{self.current}/{base}", 0
        while name in self._names:
            n += 1
            name = f"{self.current}/{base}_{n}"
        self._names.add(name)
        return name

    def temp(self, like: Value, shape, base: str = "t") -> int:
        """A fresh activation tensor of `shape` with `like`'s dtype and quantization."""
        t = self._add(self.fresh(base), shape, like.dtype, like.type.quant)
        self.temps.setdefault(self.current, []).append(t)
        return t

    def const(self, array, base: str = "const", quant: QuantParams | None = None) -> int:
        a = np.asarray(array)
        return self._add(self.fresh(base), a.shape, DType.from_numpy(a.dtype), quant, a)

    def ints(self, values, base: str = "ints") -> int:
        return self.const(np.array(values, np.int32), base)

    def like_const(self, like: Value, array, base: str = "const") -> int:
        """A constant of `like`'s dtype and quantization (a pad value, a clamp bound)."""
        return self._add(self.fresh(base), np.shape(array), like.dtype, like.type.quant,
                         np.asarray(array, like.dtype.np))

    def buffer(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        key = data.tobytes()
        if key not in self._buffer_of:
            self._buffer_of[key] = len(self.buffers)
            self.buffers.append(fb.BufferT(data=data))
        return self._buffer_of[key]

    # ------------------------------------------------------------ operators
    def op(self, code: int, inputs, outputs, options=None):
        """Append one TFLite operator; `options` is the builtin's options object (e.g. Conv2DOptionsT)."""
        o = self.operator(code, inputs, outputs, options)
        self.operators.append(o)
        self.node_ops.setdefault(self.current, []).append(o)
        return outputs[0] if len(outputs) == 1 else outputs

    def operator(self, code: int, inputs, outputs, options=None) -> fb.OperatorT:
        """A TFLite operator of this model, for any subgraph."""
        if code not in self._opcode_of:
            self._opcode_of[code] = len(self.opcodes)
            self.opcodes.append(fb.OperatorCodeT(deprecatedBuiltinCode=min(code, OP.PLACEHOLDER_FOR_GREATER_OP_CODES),
                                                 builtinCode=code, version=1))
        o = fb.OperatorT(opcodeIndex=self._opcode_of[code], inputs=list(inputs), outputs=list(outputs))
        if options is not None:
            o.builtinOptionsType = getattr(fb.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        return o

    def unary(self, code, x: int, like: Value, shape, options=None, out: int | None = None) -> int:
        return self.op(code, [x], [self.temp(like, shape) if out is None else out], options)

    def reshape(self, x: int, like: Value, shape, out: int | None = None) -> int:
        out = self.temp(like, shape, "reshaped") if out is None else out
        self.views.append((x, out))
        return self.op(OP.RESHAPE, [x, self.ints(shape, "shape")], [out])

    def transpose(self, x: int, like: Value, shape, perm, out: int | None = None) -> int:
        """TRANSPOSE of tensor `x` (of `shape`) by `perm`."""
        out = self.temp(like, [shape[p] for p in perm], "transposed") if out is None else out
        return self.op(OP.TRANSPOSE, [x, self.ints(perm, "perm")], [out])
