"""C backend on the host: generated C built with gcc and clang (`make host`, -std=c99 -Wall
-Wextra -Werror -pedantic) and run on random inputs, against the reference interpreter
(int8: bit for bit; float: 1e-4 relative to the output's range) and, for float models, torch.
Each test builds its model with both compilers at once.

Every zoo model, float and int8; a model of every other op family (1-D and 2-D, channels first
and last, float and int8); determinism; two prefixed models in one program with a
caller-provided arena; the fit check; a golden file of the generated C.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.emit import RUNTIME_RAM, emit_c, render_c, resolve_plan
from mcuforge.ir import quant
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType, QuantParams, TensorType

CC = ("gcc", "clang")


def _make(directory, cc):
    r = subprocess.run(["make", "-s", "host", f"CC={cc}"], cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0, f"{cc} build in {directory} failed:\n{r.stdout}\n{r.stderr}"
    return directory / "model_host"


def build_and_check(directory, graph, model=None, seed=0):
    """Emit `graph`, build it with gcc and clang (in parallel), run both on random inputs and
    compare with the interpreter (int8: exactly; float: 1e-4 of the output's range) and torch."""
    emit_c(graph, directory / "gcc")
    shutil.copytree(directory / "gcc", directory / "clang", copy_function=os.link)  # the same sources
    with ThreadPoolExecutor(2) as pool:
        binaries = list(pool.map(_make, [directory / cc for cc in CC], CC))
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, v.shape).astype(np.int8) if v.dtype.value == "i8"
          else rng.standard_normal(v.shape).astype(v.dtype.np) for v in graph.inputs]
    refs = [run(graph, *xs)]
    if model is not None:
        with torch.no_grad():
            ref = model(*(torch.from_numpy(x) for x in xs))
        refs.append([t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))])
    for binary in binaries:
        out = subprocess.run([binary], input=b"".join(x.tobytes() for x in xs), capture_output=True,
                             check=True).stdout
        assert len(out) == sum(w.nbytes for w in refs[0]), binary
        got, at = [], 0
        for w in refs[0]:
            got.append(np.frombuffer(out[at:at + w.nbytes], w.dtype).reshape(w.shape))
            at += w.nbytes
        for ref in refs:
            for g, w in zip(got, ref):
                if w.dtype == np.float32:
                    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()), err_msg=str(binary))
                else:
                    np.testing.assert_array_equal(g, w, err_msg=str(binary))


def calibration(shape, n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


# ---------------------------------------------------------------- the zoo

@pytest.mark.parametrize("name", zoo.names())
def test_zoo_float(tmp_path, name):
    model, example = zoo.get(name)
    build_and_check(tmp_path, mcuforge.compile(model, example, emit=()).graph, model)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_int8_bit_exact(tmp_path, name):
    model, example = zoo.get(name)
    graph = mcuforge.compile(model, example, emit=(), quantize="int8",
                             calibration=calibration(zoo.MODELS[name].input_shape)).graph
    assert {v.dtype.value for v in graph.inputs + graph.outputs} == {"i8"}
    build_and_check(tmp_path, graph)


# ---------------------------------------------------------------- the other ops

class Ops2d(nn.Module):
    """The 2-D op families the zoo does not use: dilated depthwise with a multiplier, grouped and
    transposed convs, padded ceil-mode pools, every activation (PReLU too), broadcasting binary ops, resizes,
    pad, slice, split, adaptive pooling, softmaxes, mean, unfolded batch norm, layer norm."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(16, 32, 3, stride=2, padding=2, dilation=2, groups=16)
        self.grouped = nn.Conv2d(34, 8, 3, padding=(1, 0), groups=2)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(6)
        self.prelu = nn.PReLU(4)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.prelu.weight.copy_(torch.tensor([-0.5, 0.1, 0.9, 2.0]))

    def forward(self, x):
        y = F.relu(self.conv(x))
        z = torch.cat([F.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                       F.max_pool2d(y, 3, 2, 1, ceil_mode=True)], 1)
        u, v = self.dw(z).chunk(2, 1)
        w = torch.sigmoid(u) * torch.tanh(v) - F.hardswish(u) / (F.hardsigmoid(v) + 1.0)
        w = self.grouped(torch.cat([w, F.leaky_relu(u, 0.1), x[:, :2, ::3, ::3]], 1))  # x's scale: a requantize
        w = F.silu(w) + F.gelu(w) + F.gelu(w, approximate="tanh") + torch.clamp(w, -0.5, 0.7)
        t = self.up(w)
        t = self.bn(self.prelu(t) + F.relu6(t))
        r = F.interpolate(t, scale_factor=2, mode="nearest")[:, :, 1:15:2, ::2]
        b = F.interpolate(t, size=(7, 4), mode="bilinear", align_corners=False)
        c = F.interpolate(t, size=(7, 4), mode="bilinear", align_corners=True)
        s = F.adaptive_avg_pool2d(F.pad(r + b - c, (1, 0, 2, 1)), (3, 2))
        p = s.permute(0, 2, 3, 1).reshape(1, 6, 4)
        q = torch.softmax(p, -1) + torch.log_softmax(p, 1) + s.mean((2, 3), keepdim=True).reshape(1, 1, 4)
        return self.ln(q.transpose(1, 2)), F.adaptive_avg_pool2d(t, 1)


class Ops1d(nn.Module):
    """1-D convs and pools, a linear layer on a 3-D input, matmuls, per-channel broadcasting."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 5, stride=2, padding=2)
        self.c2 = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 6)
        self.scale = nn.Parameter(torch.randn(1, 8, 1))

    def forward(self, x):
        y = F.relu(self.c1(x))
        y = self.c2(y) * self.scale - y
        y = F.max_pool1d(y, 2) + F.avg_pool1d(y, 3, 2, 1)
        h = self.fc(y.transpose(1, 2))
        return torch.softmax(h @ h.transpose(1, 2), -1) @ h, torch.tanh(h).mean(1)


OPS = {"ops2d": (Ops2d, (1, 3, 12, 12)), "ops1d": (Ops1d, (1, 4, 32))}
INTEGER_OPS = {"ops2d": {"qconv2d", "qconv_transpose2d", "qavg_pool2d", "qsoftmax", "qlogistic", "qtanh", "qhardswish",
                         "qleaky_relu", "qprelu", "qmean", "qmul", "qsub", "requantize", "quantize", "dequantize"},
               "ops1d": {"qconv1d", "qlinear", "qtanh", "qmul", "qsub", "qmean", "qsoftmax"}}
VARIANTS = [f"{m}_{q}_{layout}" for m in OPS for q in ("float", "int8") for layout in ("nchw", "nhwc")]


def compile_ops(variant):
    name, q, layout = variant.split("_")
    cls, shape = OPS[name]
    torch.manual_seed(0)
    model = cls().eval()
    kw = dict(quantize="int8", calibration=calibration(shape, 8)) if q == "int8" else {}
    passes = "float,to-nhwc" if layout == "nhwc" else None
    art = mcuforge.compile(model, (torch.zeros(shape),), emit=(), passes=passes, **kw)
    return model, art.graph


@pytest.mark.parametrize("variant", VARIANTS)
def test_ops(tmp_path, variant):
    model, graph = compile_ops(variant)
    if "int8" in variant:  # the integer kernels, and float islands between quantize and dequantize
        assert INTEGER_OPS[variant.split("_")[0]] <= set(graph.count())
    build_and_check(tmp_path, graph, model if "float" in variant else None)


def test_qprelu_bit_exact(tmp_path):
    """int8 PRELU on 1024 random inputs, against constant per-channel slopes (the extremes among
    them) and against a computed alpha, at parameters whose alpha multiplier shifts left (s_in *
    s_alpha > s_out) and right."""
    g = Graph("prelu")
    q = lambda s, zp: QuantParams([s], [zp])  # noqa: E731
    x = g.add_input("x", TensorType((2, 128, 4), DType.i8, q(0.05, 7)))
    a = g.add_input("a", TensorType((4,), DType.i8, q(0.5, -20)))
    slopes = g.const(np.array([-128, -1, 40, 127], np.int8), "slopes", quant=q(0.01, 3))
    outs = []
    for alpha, s_out, zp_out in ((slopes, 0.02, -9), (a, 0.01, 100)):
        y = TensorType(x.shape, DType.i8, q(s_out, zp_out))
        attrs = quant.params("qprelu", [x.type, alpha.type], y)
        outs.append(g.op("qprelu", [x, alpha], attrs, out_types=[y]))
    assert quant.params("qprelu", [x.type, a.type], outs[1].type)["alpha_shift"] > 0
    g.outputs = outs
    build_and_check(tmp_path, g)


# ---------------------------------------------------------------- properties of the output

def test_deterministic():
    """Two compiles of the same model write the same bytes."""
    a, b = (render_c(compile_ops("ops2d_int8_nhwc")[1]) for _ in range(2))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert {"kernels/mcuforge_int8.h", "kernels/quant_f32.c"} <= a.keys()  # int8 kernels and float islands


MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "kws.h"
#include "img.h"
#include "mcuforge.h"

static uint8_t arena[IMG_ARENA_SIZE + 16] MCUFORGE_ALIGNED(16);
static uint8_t kx[KWS_INPUT0_BYTES], ix[IMG_INPUT0_BYTES], ky[KWS_OUTPUT0_BYTES], iy[IMG_OUTPUT0_BYTES];

int main(void) {
    const void *kin[] = {kx}, *iin[] = {ix};
    void *kout[] = {ky}, *iout[] = {iy};
    if (fread(kx, 1, sizeof kx, stdin) != sizeof kx || fread(ix, 1, sizeof ix, stdin) != sizeof ix) return 2;
    if (img_invoke_with_arena(arena, IMG_ARENA_SIZE - 1, iin, iout) != IMG_ERR_ARENA) return 3;
    if (img_invoke_with_arena(arena + 1, IMG_ARENA_SIZE, iin, iout) != IMG_ERR_ARENA) return 4;
    if (kws_invoke(kin, kout) != 0 || img_invoke_with_arena(arena, IMG_ARENA_SIZE, iin, iout) != 0) return 5;
    fwrite(ky, 1, sizeof ky, stdout);
    fwrite(iy, 1, sizeof iy, stdout);
    return 0;
}
"""


def test_two_prefixed_models_in_one_program(tmp_path):
    """An int8 and a float model with their own prefixes link into one program with one copy of
    the kernels; the second runs on a caller-provided arena whose size and alignment are checked."""
    graphs = {}
    for prefix, name, q in [("kws", "ds_cnn", True), ("img", "tiny_cnn", False)]:
        model, example = zoo.get(name)
        kw = dict(quantize="int8", calibration=calibration(zoo.MODELS[name].input_shape)) if q else {}
        art = mcuforge.compile(model, example, emit="c", out_dir=tmp_path / prefix, prefix=prefix, **kw)
        graphs[prefix] = art.graph
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for prefix in graphs:
        for f in (tmp_path / prefix / "c" / "kernels").iterdir():
            if (kernels / f.name).exists():  # the same kernel file in both models: one copy
                assert (kernels / f.name).read_bytes() == f.read_bytes()
            shutil.copy(f, kernels / f.name)
    (tmp_path / "main.c").write_text(MAIN)
    sources = ["main.c", "kws/c/kws.c", "img/c/img.c", *sorted(f"kernels/{f.name}" for f in kernels.glob("*.c"))]
    subprocess.run(["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Ikws/c", "-Iimg/c",
                    "-Ikernels", *sources, "-lm", "-o", "both"], cwd=tmp_path, check=True)
    defined = subprocess.run(["nm", "-g", "--defined-only", "both"], cwd=tmp_path, capture_output=True, text=True,
                             check=True).stdout
    ours = [s for s in re.findall(r" [TDBR] (\S+)$", defined, re.MULTILINE)
            if not s.startswith("_") and "@" not in s and s != "main"]
    assert ours and all(re.match(r"(kws|img|mcuforge)_", s) for s in ours), ours
    rng = np.random.default_rng(0)
    kx = rng.integers(-128, 128, graphs["kws"].inputs[0].shape).astype(np.int8)
    ix = rng.standard_normal(graphs["img"].inputs[0].shape).astype(np.float32)
    out = subprocess.run([tmp_path / "both"], input=kx.tobytes() + ix.tobytes(), capture_output=True, check=True).stdout
    (kw,), (iw,) = run(graphs["kws"], kx), run(graphs["img"], ix)
    assert out[:kw.nbytes] == kw.tobytes()
    np.testing.assert_allclose(np.frombuffer(out[kw.nbytes:], np.float32).reshape(iw.shape), iw, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- fit check

def test_does_not_fit_sram(tmp_path):
    model, example = zoo.get("tiny_cnn")
    target = mcuforge.load_target("stm32f446re").with_sizes(sram="8K")
    with pytest.raises(mcuforge.DoesNotFitError) as info:
        mcuforge.compile(model, example, emit="c", out_dir=tmp_path / "out", target=target)
    assert not (tmp_path / "out").exists()
    graph = mcuforge.compile(model, example, emit=()).graph
    arena = resolve_plan(graph, None).arena_bytes  # planned as the backend plans it
    msg = str(info.value)
    assert f"{arena + RUNTIME_RAM - 8192:,} B too many" in msg
    assert "features_0_0" in msg or "features_2_0" in msg  # the conv outputs live at the peak
    assert "int8" in msg and "SRAM" in msg and "flash" not in msg.split("hint")[0]


def test_does_not_fit_flash(tmp_path):
    model, example = zoo.get("ds_cnn")
    target = mcuforge.load_target("stm32f446re").with_sizes(flash="64K")
    with pytest.raises(mcuforge.DoesNotFitError, match=r"flash: needs [\d,]+ B \(weights 90,416 \+ code"):
        mcuforge.compile(model, example, emit="c", out_dir=tmp_path / "out", target=target)
    assert not (tmp_path / "out").exists()


def test_fits_and_cli(tmp_path):
    """The CLI writes the project for a target it fits, with the prefix in names and symbols."""
    from mcuforge.compiler.cli import main
    assert main(["compile", "zoo:tiny_cnn", "--emit", "c", "--prefix", "kws", "--target", "stm32f446re", "-q",
                 "-o", str(tmp_path / "out")]) == 0
    c = tmp_path / "out" / "c"
    assert sorted(p.name for p in c.iterdir()) == ["Makefile", "kernels", "kws.c", "kws.h", "main_host.c",
                                                   "main_qemu.c", "mps2.ld", "startup_mps2.c"]
    assert "int kws_invoke(const void *const inputs[], void *const outputs[]);" in (c / "kws.h").read_text()
    assert main(["compile", "zoo:ds_cnn", "--emit", "c", "--target", "stm32f446re", "--sram", "16K", "-q",
                 "-o", str(tmp_path / "small")]) == 4


def test_golden_c(golden):
    """The generated C of a small float model, reviewed like code (pytest --update-golden)."""
    from mcuforge.ir.graph import Graph
    from mcuforge.ir.types import TensorType
    g = Graph("small")
    x = g.add_input("x", TensorType((1, 2, 4, 4)))
    w = g.const(np.linspace(-1, 1, 3 * 2 * 3 * 3, dtype=np.float32).reshape(3, 2, 3, 3), "conv.weight")
    y = g.op("conv2d", [x, w, g.const(np.array([0.5, -0.25, 0.0], np.float32), "conv.bias")],
             dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1], act="relu"), name="conv")
    y = g.op("max_pool2d", [y], dict(kernel=[2, 2], stride=[2, 2], pads=[0, 0, 0, 0]), name="pool")
    y = g.op("reshape", [y], dict(shape=[1, 12]), name="flatten")
    g.outputs = [g.op("linear", [y, g.const(np.eye(2, 12, dtype=np.float32), "fc.weight")], name="fc")]
    files = render_c(g)
    golden("c_small/model.h", files["model.h"].decode())
    golden("c_small/model.c", files["model.c"].decode())
