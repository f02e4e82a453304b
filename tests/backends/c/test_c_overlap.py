"""Inputs overlapping their node's output in the C arena (backends/c/ops.py overlap_lag, the
planner's overlap rule): the rule per kernel shape; the generated C bit for bit the interpreter's
with it on the host and the Cortex-M4 (plain and DSP), and wrong with one pixel less (the
kernels would overwrite inputs they have yet to read, which check_plan catches against the
rule); resnet8's arena below TFLite Micro's for the same model."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import torch
from support.cbuild import host_make, qemu_make, qemu_run
from torch import nn

import mcuforge
from mcuforge import zoo
from mcuforge.analysis.memory import check_plan, format_timeline, plan_memory
from mcuforge.backends.c.emit import emit_c
from mcuforge.backends.c.ops import overlap_lag, scratch_bytes
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.backends.tflite.runtime import tflm_arena_usage
from mcuforge.ir.interpreter import run


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 12, 3, padding=1, groups=12),
                         nn.ReLU(), nn.Conv2d(12, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 12, 3, stride=2,
                                                                                          padding=1, groups=12)).eval()


def int8_graph():
    rng = np.random.default_rng(0)
    return mcuforge.compile(small_net(), (torch.zeros(1, 1, 6, 5),), emit=(), passes="deploy", quantize="int8",
                            calibration=[rng.standard_normal((1, 1, 6, 5)).astype(np.float32) for _ in range(4)]).graph


def test_the_rule_per_kernel():
    g = int8_graph()
    lags = {n.name: overlap_lag(n) for n in g.nodes if n.op == "qconv2d"}
    # 6 x 5 images of 12 channels: the depthwise 3x3 needs one row and one pixel (6 x 12 bytes);
    # the im2col 3x3 convs one output row (5 x 12; from one channel, its 60-byte rows outrun the
    # 5-byte rows they read: 5 x 60 - 4 x 5); stride 2 writes behind what it reads
    assert lags == {"_0": 280, "_2": 72, "_4": 60, "_6.nhwc": 0}
    float_graph = mcuforge.compile(small_net(), (torch.zeros(1, 1, 6, 5),), emit=(), passes="deploy").graph
    assert all(overlap_lag(n) is None for n in float_graph.nodes)


def run_c(directory, graph, plan, builds=("gcc",)):
    emit_c(graph, directory / builds[0], plan=plan)
    x = np.random.default_rng(1).integers(-128, 128, graph.inputs[0].shape).astype(np.int8)
    outs = {}
    for build in builds:
        if build != builds[0]:
            shutil.copytree(directory / builds[0], directory / build, copy_function=os.link)
        if build == "gcc":
            outs[build] = subprocess.run([host_make(directory / build, "gcc")], input=x.tobytes(), capture_output=True,
                                         check=True).stdout
        else:
            qemu_make(directory / build, ["TARGET=mps2-an386", *(["DSP=1"] if build == "m4_dsp" else [])])
            outs[build] = qemu_run(directory / build, [x], "mps2-an386")[0]
    return outs, run(graph, x)[0].tobytes()


def test_bit_exact_with_the_rule_and_not_with_less(tmp_path):
    g = int8_graph()
    plan = plan_memory(g, scratch=scratch_bytes, overlap=overlap_lag)
    check_plan(plan)
    assert {o for o, _ in plan.overlaps.values()} >= {"_2", "_4"}  # the depthwise and the im2col conv overlap
    outs, want = run_c(tmp_path / "rule", g, plan, ("gcc", "m4", "m4_dsp"))
    assert all(out == want for out in outs.values()), [b for b, out in outs.items() if out != want]
    short = plan_memory(g, scratch=scratch_bytes, overlap=lambda n: overlap_lag(n) and overlap_lag(n) - 12)
    check_plan(short)  # consistent with its own (wrong) rule
    outs, want = run_c(tmp_path / "short", g, short)
    assert outs["gcc"] != want


def test_resnet8_below_tflite_micro():
    model, example = zoo.get("resnet8")
    rng = np.random.default_rng(1)
    calibration = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    art = mcuforge.compile(model, example, emit=(), passes="deploy", quantize="int8", calibration=calibration)
    ours = plan_memory(art.graph, scratch=scratch_bytes, overlap=overlap_lag)
    whole = plan_memory(art.graph, scratch=scratch_bytes)
    tflm = tflm_arena_usage(to_tflite(art.graph))["head"]  # its planned tensors and scratch, its own plan
    assert ours.arena_bytes < 0.8 * whole.arena_bytes and ours.arena_bytes < tflm
    # the op-level bound is the plan without overlaps' lower bound; the report says what went below it
    assert ours.whole_bound_bytes == whole.lower_bound_bytes == whole.whole_bound_bytes > ours.arena_bytes
    assert whole.below_bound() is None
    assert ours.below_bound() == (f"{whole.lower_bound_bytes - ours.arena_bytes:,} B below the whole-tensor bound "
                                  f"{whole.lower_bound_bytes:,} B: {len(ours.overlaps)} inputs overlapped by their "
                                  "outputs")
    assert ours.below_bound() in format_timeline(ours)
    print(f"resnet8 int8 arena: {ours.arena_bytes:,} B with overlaps, {whole.arena_bytes:,} B without, "
          f"TFLite Micro {tflm:,} B")
