"""int16x8 models in C (int16 activations, int8 weights, int64 biases; kernels/*_s16.c): built
with gcc (-std=c99 -Wall -Wextra -Werror -pedantic; clang too, except for the zoo) and run on
random inputs over the whole int16 range, bit for bit against the reference interpreter. Every
zoo model; the op-family models of test_c_emit in both layouts (grouped, dilated, transposed and
depthwise-multiplier convs, pools, leaky relu, mul/sub, mean, float islands for what int16x8
keeps float); an int8 model with int16 layers (requantize between them); a few models on QEMU's
Cortex-M4, with the host's bytes; sums beyond int32 on the host and the M4's DSP build (SMLAD).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from support.cbuild import calibration, check_host, host_and_m4, host_make, qemu_make, qemu_run
from support.op_models import OPS

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.emit import emit_c
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType


def int16x8(float_zoo, name):
    graph, (x,) = float_zoo(name)
    return mcuforge.compile(graph, (x,), emit=(), quantize="int16x8", calibration=calibration(x.shape, 2)).graph


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_int16x8_bit_exact(tmp_path, float_zoo, name):
    graph = int16x8(float_zoo, name)
    assert {v.dtype for v in graph.inputs + graph.outputs} == {DType.i16}
    assert any(n.op in ("qconv2d", "qlinear") and n.inputs[0].dtype == DType.i16 for n in graph.nodes)
    check_host(tmp_path, graph, ("gcc",))  # clang builds every int16 kernel in the tests below


INT16_OPS = {"ops2d": {"qconv2d", "qconv_transpose2d", "qavg_pool2d", "max_pool2d", "qleaky_relu", "qmean", "qmul",
                       "qsub", "qadd", "clamp", "requantize", "qlogistic", "qtanh", "qsoftmax"},
             "ops1d": {"qconv1d", "qlinear", "qmul", "qsub", "qadd", "max_pool1d", "qtanh",
                       "qsoftmax"},
             "opsmath": set()}  # the kernels of every *_s16.c; the math ops stay float islands


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


def test_mixed_int8_int16(tmp_path, float_zoo):
    """int8 resnet8 with two convs of one residual block in int16x8 (keep_int16): requantize int8
    -> int16 before them and int16 -> int8 after, on the host and on the M4."""
    graph, (x,) = float_zoo("resnet8")
    graph = mcuforge.compile(graph, (x,), emit=(), quantize="int8", calibration=calibration(x.shape, 2),
                             keep_int16=["features_1_body_0_0", "features_1_body_1_0"]).graph
    convs = [(n.op, n.inputs[0].dtype, n.output.dtype) for n in graph.nodes if n.op in ("qconv2d", "requantize")]
    assert convs[1:5] == [("requantize", DType.i8, DType.i16), *[("qconv2d", DType.i16, DType.i16)] * 2,
                          ("requantize", DType.i16, DType.i8)], convs
    check_host(tmp_path / "host", graph)
    xs, host, m4, _ = host_and_m4(tmp_path / "m4", graph)
    assert m4 == host == b"".join(w.tobytes() for w in run(graph, *xs))


@pytest.mark.parametrize("name", ["ds_cnn", "unet_tiny"])
def test_int16x8_on_cortex_m4(tmp_path, float_zoo, name):
    graph = int16x8(float_zoo, name)
    xs, host, m4, _ = host_and_m4(tmp_path, graph)
    assert m4 == host == b"".join(w.tobytes() for w in run(graph, *xs))


class LongSums(torch.nn.Module):
    """Sums that outgrow int32: a fully connected layer 1600 deep with equal weights (127) on
    inputs near full scale (about 25,000) sums to about 5e9; a conv whose kernel rows are runs of 300 values
    (channels last); a 3x3 depthwise conv (four channels per pass) and a 12x12 one (over 128 taps:
    one channel at a time, in 64 bits)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(100, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.big = torch.nn.Conv2d(8, 8, 12, padding=4, groups=8)
        self.fc = torch.nn.Linear(1600, 6)
        with torch.no_grad():
            self.fc.weight.fill_(0.01)

    def forward(self, x):
        return self.big(self.dw(torch.relu(self.conv(x)))), self.fc(x.flatten(1))


def _set_zero_point(v, zp):
    """v's zero point is zp, and so are the attributes that name it (through layout ops, which keep it)."""
    v.type = dataclasses.replace(v.type, quant=dataclasses.replace(v.type.quant, zero_point=(zp,)))
    for user in v.users:
        if "in_zp" in user.attrs:
            user.attrs["in_zp"] = zp
    if v.producer is not None and "out_zp" in v.producer.attrs:
        v.producer.attrs["out_zp"] = zp
    elif v.producer is not None:
        _set_zero_point(v.producer.inputs[0], zp)


@pytest.mark.parametrize("zp", [0, 5])
def test_long_sums_on_m4_dsp(tmp_path, zp):
    """The int32 partial sums of the int16 kernels widen into 64 bits in time, on the host and on
    the Cortex-M4's DSP build (SMLAD), bit for bit the interpreter's; a nonzero input zero point
    (not TFLite's int16, which is symmetric) takes the kernels' correction for it."""
    torch.manual_seed(0)
    shape = (1, 100, 4, 4)
    graph = mcuforge.compile(LongSums().eval(), (torch.zeros(shape),), emit=(), quantize="int16x8",
                             calibration=[np.full(shape, 3.0, np.float32), *calibration(shape, 2)],
                             passes="float,to-nhwc").graph
    for n in graph.nodes:
        if "in_zp" in n.attrs:
            _set_zero_point(n.inputs[0], zp)
    rng = np.random.default_rng(0)
    xs = [np.full(graph.inputs[0].shape, round(2.9 / graph.inputs[0].type.quant.scale[0]), np.int16),
          rng.integers(-32768, 32768, graph.inputs[0].shape).astype(np.int16)]
    want = [b"".join(w.tobytes() for w in run(graph, x)) for x in xs]
    fc = run(graph, xs[0])[1]
    assert xs[0].flat[0] > 2**31 / 1600 / 127 and 0 < fc.min() and fc.max() < 32767  # beyond int32, not clamped
    emit_c(graph, tmp_path / "host")
    shutil.copytree(tmp_path / "host", tmp_path / "dsp", copy_function=os.link)
    with ThreadPoolExecutor(2) as pool:
        host = pool.submit(host_make, tmp_path / "host", "gcc")
        m4 = pool.submit(qemu_make, tmp_path / "dsp", ["TARGET=mps2-an386", "DSP=1"])
        host, m4 = host.result(), m4.result()
    for x, expected in zip(xs, want):
        assert subprocess.run([host], input=x.tobytes(), capture_output=True, check=True).stdout == expected
        assert qemu_run(m4, [x], "mps2-an386")[0] == expected
