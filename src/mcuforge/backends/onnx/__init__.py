"""The ONNX backend: a float model as float ONNX; a quantized one in its QDQ form (emit.py, the
interchange form other tools read) or as the integer graph in exact integer ONNX arithmetic that
onnxruntime runs bit for bit like the interpreter (integer.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ..base import Backend

FORMATS = {"qdq": "QuantizeLinear/DequantizeLinear, the interchange form",
           "integer": "bit-exact integer arithmetic"}


@dataclass(frozen=True)
class OnnxOptions:
    format: str = "qdq"  # how a quantized model is written: a key of FORMATS

    def __post_init__(self):
        if self.format not in FORMATS:
            raise UsageError(f"unknown ONNX format '{self.format}'",
                             " or ".join(f"onnx='{k}' ({v})" for k, v in FORMATS.items()))


def write(graph, out: Path, ctx, options: OnnxOptions, prefix: str) -> Path:
    path = out / f"{prefix}.onnx"
    if options.format == "integer":
        from .integer import save_integer_onnx
        save_integer_onnx(graph, path)
    else:  # the QDQ graph the quantize pass kept; a float model is the graph itself
        from .emit import save_onnx
        save_onnx(ctx.qdq_graph or graph, path)
    return path


BACKEND = Backend("onnx", write, options=OnnxOptions)
