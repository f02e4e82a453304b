"""Tensor types of the IR: element type, static shape and optional quantization parameters.

Shapes are fully static (tuples of ints): microcontroller code is planned ahead of time, so the
frontends resolve every dimension from the example inputs.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ResourceLimitError

# The largest tensor the IR accepts, far beyond any microcontroller's memory: a shape from a file or
# a shape rule beyond it is refused before anything is allocated (tests lower it to try that).
MAX_TENSOR_BYTES = 1 << 31


class DType(enum.Enum):
    """Element types. The value is the short name used by the text form."""

    f32 = "f32"
    f16 = "f16"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u8 = "u8"
    bool = "bool"

    @property
    def np(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @classmethod
    def from_numpy(cls, dtype) -> "DType":
        dtype = np.dtype(dtype)
        for k, v in _NUMPY.items():
            if np.dtype(v) == dtype:
                return k
        raise ValueError(f"no IR dtype for numpy dtype {dtype}")


_NUMPY = {DType.f32: "float32", DType.f16: "float16", DType.i64: "int64", DType.i32: "int32",
          DType.i16: "int16", DType.i8: "int8", DType.u8: "uint8", DType.bool: "bool"}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    `axis` is None for per-tensor parameters (scale and zero_point of length 1) and the channel
    axis for per-channel ones.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "scale", tuple(float(s) for s in np.atleast_1d(self.scale)))
        object.__setattr__(self, "zero_point", tuple(int(z) for z in np.atleast_1d(self.zero_point)))
        if len(self.scale) != len(self.zero_point):
            raise ValueError("scale and zero_point must have the same length")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor quantization has one scale; give axis for per-channel")


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: DType = DType.f32
    quant: QuantParams | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)  # Python ints: huge dims do not wrap around

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype, self.quant)


def check_size(shape, itemsize: int, what: str) -> None:
    """Refuse a tensor of `shape` and `itemsize` bytes per element (`what` names it) that is
    larger than MAX_TENSOR_BYTES, with a ResourceLimitError saying how large it would be."""
    nbytes = math.prod(int(d) for d in shape) * itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise ResourceLimitError(f"{what} of shape {list(shape)} would take {nbytes:,} bytes, more than the "
                                 f"{MAX_TENSOR_BYTES:,} bytes mcuforge accepts for one tensor",
                                 "no microcontroller holds a tensor this large: check the shapes in the model "
                                 "(a corrupt or hostile size), or make the model smaller")
