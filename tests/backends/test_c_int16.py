"""int16x8 models in C (int16 activations, int8 weights, int64 biases; kernels/*_s16.c): built
with gcc (-std=c99 -Wall -Wextra -Werror -pedantic; clang too, except for the zoo) and run on
random inputs over the whole int16 range, bit for bit against the reference interpreter. Every
zoo model; the op-family models of test_c_emit in both layouts (grouped, dilated, transposed and
depthwise-multiplier convs, pools, leaky relu, mul/sub, mean, float islands for what int16x8
keeps float); an int8 model with int16 layers (requantize between them); a few models on QEMU's
Cortex-M4, with the host's bytes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from test_c_emit import CC, OPS, _make, calibration
from test_c_qemu_zoo import host_and_m4, random_inputs

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.emit import emit_c
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType


def check_host(directory, graph, compilers=CC, seed=0):
    """Emit `graph`, build it with `compilers`, run them on random inputs: their output bytes
    must be the interpreter's."""
    emit_c(graph, directory / "gcc")
    for cc in compilers[1:]:
        shutil.copytree(directory / "gcc", directory / cc, copy_function=os.link)
    with ThreadPoolExecutor(2) as pool:
        binaries = list(pool.map(_make, [directory / cc for cc in compilers], compilers))
    xs = random_inputs(graph, seed)
    want = b"".join(w.tobytes() for w in run(graph, *xs))
    for binary in binaries:
        out = subprocess.run([binary], input=b"".join(x.tobytes() for x in xs), capture_output=True, check=True).stdout
        assert out == want, binary


def int16x8(zoo_float, name):
    graph, x = zoo_float(name)
    return mcuforge.compile(graph, (x,), emit=(), quantize="int16x8", calibration=calibration(x.shape, 2)).graph


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_int16x8_bit_exact(tmp_path, zoo_float, name):
    graph = int16x8(zoo_float, name)
    assert {v.dtype for v in graph.inputs + graph.outputs} == {DType.i16}
    assert any(n.op in ("qconv2d", "qlinear") and n.inputs[0].dtype == DType.i16 for n in graph.nodes)
    check_host(tmp_path, graph, ("gcc",))  # clang builds every int16 kernel in the tests below


INT16_OPS = {"ops2d": {"qconv2d", "qconv_transpose2d", "qavg_pool2d", "max_pool2d", "qleaky_relu", "qmean", "qmul",
                       "qsub", "qadd", "clamp", "requantize", "qlogistic", "qtanh", "qsoftmax"},
             "ops1d": {"qconv1d", "qlinear", "qmul", "qsub", "qadd", "max_pool1d", "qtanh",
                       "qsoftmax"}}  # the kernels of every *_s16.c


@pytest.mark.parametrize("variant", [f"{m}_{layout}" for m in OPS for layout in ("nchw", "nhwc")])
def test_ops_int16x8(tmp_path, variant):
    name, layout = variant.split("_")
    cls, shape = OPS[name]
    torch.manual_seed(0)
    graph = mcuforge.compile(cls().eval(), (torch.zeros(shape),), emit=(), quantize="int16x8",
                             calibration=calibration(shape, 8), passes="float,to-nhwc" if layout == "nhwc" else None).graph
    int16 = {n.op for n in graph.nodes if n.inputs[0].dtype == DType.i16 and n.outputs[0].dtype == DType.i16}
    assert INT16_OPS[name] <= int16, INT16_OPS[name] - int16
    check_host(tmp_path, graph)


def test_mixed_int8_int16(tmp_path, zoo_float):
    """int8 resnet8 with two convs of one residual block in int16x8 (keep_int16): requantize int8
    -> int16 before them and int16 -> int8 after, on the host and on the M4."""
    graph, x = zoo_float("resnet8")
    graph = mcuforge.compile(graph, (x,), emit=(), quantize="int8", calibration=calibration(x.shape, 2),
                             keep_int16=["features_1_body_0_0", "features_1_body_1_0"]).graph
    convs = [(n.op, n.inputs[0].dtype, n.output.dtype) for n in graph.nodes if n.op in ("qconv2d", "requantize")]
    assert convs[1:5] == [("requantize", DType.i8, DType.i16), *[("qconv2d", DType.i16, DType.i16)] * 2,
                          ("requantize", DType.i16, DType.i8)], convs
    check_host(tmp_path / "host", graph)
    xs, host, m4, _ = host_and_m4(tmp_path / "m4", graph)
    assert m4 == host == b"".join(w.tobytes() for w in run(graph, *xs))


@pytest.mark.parametrize("name", ["ds_cnn", "unet_tiny"])
def test_int16x8_on_cortex_m4(tmp_path, zoo_float, name):
    graph = int16x8(zoo_float, name)
    xs, host, m4, _ = host_and_m4(tmp_path, graph)
    assert m4 == host == b"".join(w.tobytes() for w in run(graph, *xs))
