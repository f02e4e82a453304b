"""Backends: IR -> files, each through one table of per-op lowerings (onnx/, tflite/, c/); project/
wraps the C in a firmware project for the target part.

Each backend's package defines `BACKEND` (a `base.Backend`: legalization, scratch, typed options,
emit); `get(name)` imports it when a compile asks for it, so `import mcuforge` loads none of them.
"""
from __future__ import annotations

import importlib

from ..errors import UsageError

NAMES = ("onnx", "tflite", "c", "project")


def get(name: str):
    """The `Backend` called `name` (UsageError naming the known ones otherwise)."""
    if name not in NAMES:
        raise UsageError(f"unknown emit target '{name}'", f"known: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").BACKEND
