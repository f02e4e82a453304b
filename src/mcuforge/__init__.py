"""mcuforge: a graph compiler from PyTorch, ONNX and TFLite models to microcontrollers.

    import mcuforge
    art = mcuforge.compile(model, (example,), emit=("onnx",), out_dir="build")
    print(art.report)
    y, = art.run(x)

This file only re-exports; the code lives in the rooms a model flows through (frontends/, ir/,
analysis/, passes/, backends/, compiler/; docs/ARCHITECTURE.md).
"""
from .compiler.api import (
                     Artifact,
                     compile,
                     distill,
                     list_targets,
                     load_onnx,
                     load_target,
                     load_tflite,
                     qat,
                     to_torch,
                     trace,
)
from .errors import (
                     DoesNotFitError,
                     Error,
                     ModelLoadError,
                     ParseError,
                     PassError,
                     ShapeError,
                     UnsupportedOpError,
                     UsageError,
                     VerifyError,
)
from .ir.graph import Graph
from .ir.parser import parse
from .ir.printer import print_graph
from .version import __version__

__all__ = ["__version__", "compile", "qat", "distill", "trace", "to_torch", "load_onnx", "load_tflite", "load_target", "list_targets", "Artifact", "Graph", "parse",
           "print_graph", "Error", "UnsupportedOpError", "UsageError", "ModelLoadError", "ShapeError",
           "VerifyError", "PassError", "ParseError", "DoesNotFitError"]


