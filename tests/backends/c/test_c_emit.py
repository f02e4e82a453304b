"""C backend on the host: generated C built with gcc and clang (`make host`, -std=c99 -Wall
-Wextra -Werror -pedantic) and run on random inputs, against the reference interpreter
(int8: bit for bit; float: 1e-4 relative to the output's range) and, for float models, torch.
Each test builds its model with both compilers at once.

Every zoo model, float and int8; a model of every other op family (1-D and 2-D, channels first
and last, float and int8); determinism; two prefixed models in one program with a
caller-provided arena; the fit check; a golden file of the generated C.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from support.cbuild import build_and_check, calibration
from support.op_models import OPS

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.emit import RUNTIME_RAM, render_c, resolve_plan
from mcuforge.ir import quant
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import DType, QuantParams, TensorType

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

INTEGER_OPS = {"ops2d": {"qconv2d", "qconv_transpose2d", "qavg_pool2d", "qsoftmax", "qlogistic", "qtanh", "qhardswish",
                         "qleaky_relu", "qprelu", "qmean", "qmul", "qsub", "requantize", "quantize", "dequantize"},
               "ops1d": {"qconv1d", "qlinear", "qtanh", "qmul", "qsub", "qmean", "qsoftmax"},
               "opsmath": {"qadd", "qsub", "qtanh", "quantize", "dequantize"}}
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
                                                   "main_qemu.c", "mps2.ld", "mps3.ld", "startup_mps2.c"]
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
