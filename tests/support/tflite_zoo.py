"""The zoo compiled once per test session for the TFLite emit and import tests: each model's
float graph (default float pipeline) with torch's output, and its int8 graph (calibrated on random
inputs, integer inputs and outputs, channel-last, scheduled and planned) with its .tflite file."""
from functools import lru_cache

import numpy as np
import torch

import mcuforge
from mcuforge import zoo
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.passes.base import PassContext
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import resolve

INT8_PASSES = ["quantize", ("lower-quantized", {"io": "int8"}), "to-nhwc", "schedule", "memory-plan"]


@lru_cache(maxsize=None)
def float_model(name: str):
    """(float graph, example input, torch's output)."""
    model, inputs = zoo.get(name)
    with torch.no_grad():
        want = model(*inputs).numpy()
    return mcuforge.compile(model, inputs, passes="float", emit=()).graph, inputs[0].numpy(), want


@lru_cache(maxsize=None)
def int8_model(name: str):
    """(int8 graph, its memory plan, its .tflite bytes with the plan, random int8 inputs)."""
    g, x, _ = float_model(name)
    g = g.clone()
    rng = np.random.default_rng(0)
    calibration = [x, *(rng.standard_normal(x.shape).astype(np.float32) for _ in range(2))]
    passes = [(p, {"calibration": calibration, "quiet": True}) if p == "quantize" else p for p in INT8_PASSES]
    ctx = PassManager(resolve(passes)).run(g, PassContext())
    info = np.iinfo(np.int8)
    inputs = [rng.integers(info.min, info.max + 1, g.inputs[0].shape).astype(np.int8) for _ in range(3)]
    return g, ctx.plan, to_tflite(g, ctx.plan), inputs
