"""C backend, compressed weights (kernels/packed_s8.c): the generated C, built with gcc on the host
and with arm-none-eabi-gcc for QEMU's Cortex-M4, against the reference interpreter, bit for bit.

Host: every format on a network of every kernel path (padded 3x3 conv, grouped conv, depthwise,
1x1 conv, fully connected), channels first and channels last, and a 1-D network. QEMU: two
networks mixing the formats layer by layer (each format runs once in the dot-product kernels and
once in the depthwise one). Also: the weight blob holds the packed bytes (model.c is smaller).
"""
from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mcuforge
from mcuforge.backends.c.emit import emit_c
from mcuforge.ir import wformat
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import DEPLOY, FLOAT, PLAN

FORMATS = ["pow2", "binary", "ternary", "kmeans3", "kmeans4", "int4g32"]  # QEMU adds kmeans2, kmeans5, int4g64
LAYERS = ["conv", "grouped", "dw", "pw", "fc"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.fc = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.grouped(F.relu(self.conv(x))))
        return self.fc(F.relu(self.pw(F.relu(self.dw(x)))).flatten(1))


class Net1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 16, 5, padding=2)
        self.dw = nn.Conv1d(16, 16, 3, groups=16)
        self.fc = nn.Linear(16 * 14, 6)

    def forward(self, x):
        return self.fc(F.relu(self.dw(F.relu(self.conv(x)))).flatten(1))


def compressed(model, shape, formats: dict, layout: str):
    """`model` int8-quantized, its layers compressed as `formats` ({layer: format}), channels
    first ("planned") or last ("deploy"), verified after every pass."""
    torch.manual_seed(0)
    model.eval()
    for p in model.parameters():  # weights of the scale of trained ones, so that outputs vary
        p.data.normal_(0, 0.3)
    rng = np.random.default_rng(0)
    g = mcuforge.trace(model, (torch.randn(*shape),))
    steps = [("quantize", {"calibration": [rng.standard_normal(shape).astype(np.float32) for _ in range(8)],
                           "quiet": True}), ("lower-quantized", {})]
    steps += [("compress-weights", {"format": f, "layers": [name]}) for name, f in formats.items()]
    PassManager(FLOAT + steps + (DEPLOY if layout == "deploy" else PLAN), debug=True).run(g)
    assert {n.name: n.attrs["wfmt"] for n in g.nodes if "wfmt" in n.attrs} == formats
    return g


def inputs(g, seed=0):
    return [np.random.default_rng(seed).integers(-128, 128, v.shape).astype(np.int8) for v in g.inputs]


def host(directory, g, cc="gcc"):
    emit_c(g, directory)
    r = subprocess.run(["make", "-s", "host", f"CC={cc}"], cwd=directory, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    xs = inputs(g)
    out = subprocess.run([directory / "model_host"], input=b"".join(x.tobytes() for x in xs), capture_output=True,
                         check=True).stdout
    assert out == run(g, *xs)[0].tobytes()


@pytest.mark.parametrize("layout", ["planned", "deploy"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_host_bit_exact(tmp_path, fmt, layout):
    g = compressed(Net(), (1, 3, 8, 8), dict.fromkeys(LAYERS, fmt), layout)
    host(tmp_path, g, "clang" if fmt == "kmeans3" else "gcc")  # the same C through both compilers
    weights = int(re.search(r"Weights and other constants: (\d+) bytes", (tmp_path / "model.c").read_text()).group(1))
    packed = sum(wformat.packed_bytes(fmt, n.inputs[1].shape) for n in g.nodes if n.name in LAYERS)
    int8 = sum(n.inputs[1].type.nbytes for n in g.nodes if n.name in LAYERS)
    assert weights < int8 and packed <= weights <= packed + 700  # + biases, multipliers, shifts, alignment


@pytest.mark.parametrize("fmt", ["ternary", "int4g32"])
def test_host_bit_exact_1d(tmp_path, fmt):
    host(tmp_path, compressed(Net1d(), (1, 4, 16), dict.fromkeys(["conv", "dw", "fc"], fmt), "deploy"))


MIXED = [({"conv": "pow2", "grouped": "int4g32", "dw": "ternary", "pw": "kmeans3", "fc": "binary"}, "planned"),
         ({"conv": "kmeans5", "grouped": "ternary", "dw": "binary", "pw": "int4g32", "fc": "pow2"}, "deploy"),
         ({"conv": "binary", "grouped": "pow2", "dw": "kmeans4", "pw": "ternary", "fc": "kmeans2"}, "deploy"),
         ({"conv": "ternary", "grouped": "kmeans4", "dw": "pow2", "pw": "binary", "fc": "int4g64"}, "planned"),
         ({"conv": "int4g64", "grouped": "binary", "dw": "int4g32", "pw": "pow2", "fc": "ternary"}, "planned")]


def test_qemu_cortex_m4_bit_exact(tmp_path):
    graphs = [compressed(Net(), (1, 3, 8, 8), formats, layout) for formats, layout in MIXED]
    dirs = [emit_c(g, tmp_path / str(i)) for i, g in enumerate(graphs)]

    def build_and_run(i):
        d, xs = dirs[i], inputs(graphs[i])
        r = subprocess.run(["make", "-s", "cortex-m", "TARGET=mps2-an386"], cwd=d, capture_output=True, text=True,
                           check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        (d / "input.bin").write_bytes(b"".join(x.tobytes() for x in xs))
        r = subprocess.run(["make", "-s", "qemu", "TARGET=mps2-an386"], cwd=d, capture_output=True, text=True,
                           check=False, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        return (d / "output.bin").read_bytes(), run(graphs[i], *xs)[0].tobytes()

    with ThreadPoolExecutor(2) as pool:
        for i, (got, want) in enumerate(pool.map(build_and_run, range(len(MIXED)))):
            assert got == want, MIXED[i]
