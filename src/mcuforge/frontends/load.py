"""Turns what a user hands us into an IR graph: an nn.Module, an `.onnx` or `.tflite` file, a
`path/to/file.py:name` reference, a `zoo:name`, or a Graph.

Example inputs for a module come from the caller, from `input_shapes` (random inputs of those
shapes, which take precedence over the next source), or from an `example_inputs` attribute on
the module or next to the factory in its file (or the zoo's).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError, UsageError
from ..ir.graph import Graph


def import_file(path: Path):
    """The Python module at `path`, imported under a private name; an exception while importing
    it becomes a ModelLoadError."""
    spec = importlib.util.spec_from_file_location(f"mcuforge_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ModelLoadError(f"importing {path} failed: {type(e).__name__}: {e}",
                             f"check that `python {path}` runs") from None
    return module


def resolve_reference(ref: str):
    """`file.py:name` -> (nn.Module, example_inputs or None)."""
    import torch
    file, _, name = ref.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"model file {file} does not exist", "give MODEL as path/to/file.py:factory")
    module = import_file(path)
    if not hasattr(module, name):
        found = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        raise UsageError(f"{path} has no attribute '{name}'", f"names defined there: {', '.join(found)}")
    obj = getattr(module, name)
    if not isinstance(obj, torch.nn.Module):
        if not callable(obj):
            raise UsageError(f"{ref} is neither an nn.Module nor a callable returning one",
                             "point MODEL at a module instance or at a function that builds one")
        obj = obj()
    if not isinstance(obj, torch.nn.Module):
        raise UsageError(f"{ref} returned {type(obj).__name__}, not a torch.nn.Module",
                         "the factory must return an nn.Module instance")
    example = getattr(obj, "example_inputs", None) or getattr(module, "example_inputs", None)
    return obj, (example() if callable(example) else example)


def load_model(model, example_inputs=None, *, input_shapes=None, state=None) -> Graph:
    """Any supported model form -> a fresh Graph (the caller's Graph is cloned, not mutated).
    `state={"h_in": "h_out"}` feeds outputs back to inputs (`with_states`)."""
    graph = _load(model, example_inputs, input_shapes)
    return with_states(graph, state) if state else graph


def with_states(graph: Graph, pairs: dict) -> Graph:
    """`graph` with each input named in `pairs` made a state written from the output it names
    (`Graph.feed_back`; it starts at zero): a model that takes and returns its hidden state, run
    as a stateful one. The pairs must name an input and an output of one shape and dtype."""
    ins, outs = {v.name: v for v in graph.inputs}, {v.name: v for v in graph.outputs}
    for i, o in pairs.items():
        if i not in ins or o not in outs:
            raise UsageError(f"state {i}={o}: {'input ' + i if i not in ins else 'output ' + o} is not in the graph",
                             f"inputs: {', '.join(ins)}; outputs: {', '.join(outs)}")
        if (ins[i].shape, ins[i].dtype) != (outs[o].shape, outs[o].dtype):
            raise UsageError(f"state {i}={o}: the input is {ins[i].dtype.value}{list(ins[i].shape)}, the output "
                             f"{outs[o].dtype.value}{list(outs[o].shape)}", "pair an input with an output of its type")
        graph.feed_back(ins[i], outs[o])
    return graph


def _load(model, example_inputs, input_shapes) -> Graph:
    if isinstance(model, Graph):
        return model.clone()
    name = None
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.startswith("zoo:"):
            from .. import zoo
            if text[4:] not in zoo.MODELS:
                raise UsageError(f"no zoo model '{text[4:]}'", f"zoo models: {', '.join(zoo.names())}")
            model, zoo_inputs = zoo.get(text[4:])
            name = text[4:]
            example_inputs = example_inputs if example_inputs is not None or input_shapes else zoo_inputs
        elif text.endswith((".onnx", ".tflite")) or (Path(text).is_file() and ":" not in Path(text).name):
            if not Path(text).is_file():
                raise UsageError(f"model file {text} does not exist", "check the path (relative to the current directory)")
            if text.endswith(".tflite"):
                from .tflite import load_tflite
                return load_tflite(text)
            if not text.endswith(".onnx"):
                raise ModelLoadError(f"{text} is not a model mcuforge can read",
                                     "give an .onnx or .tflite file or path/to/file.py:factory")
            from .onnx import load_onnx
            return load_onnx(text, input_shapes=input_shapes)
        elif ":" in text:
            model, found = resolve_reference(text)
            example_inputs = example_inputs if example_inputs is not None or input_shapes else found
        else:
            raise UsageError(f"cannot read model '{text}'",
                             "give an .onnx or .tflite file, path/to/file.py:factory, or zoo:NAME")
    import torch
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"cannot compile a {type(model).__name__}",
                         "pass an nn.Module, a Graph, an .onnx path or 'file.py:factory'")
    if example_inputs is None and input_shapes:
        example_inputs = tuple(torch.randn(*s) for s in input_shapes)
    if example_inputs is None:
        raise UsageError(f"{type(model).__name__} needs example inputs to be traced",
                         "pass example_inputs=(tensor,...) or --input-shape 1,3,32,32")
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    example_inputs = tuple(torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
                           for x in example_inputs)
    from .fx import trace
    return trace(model.eval(), example_inputs, name)
