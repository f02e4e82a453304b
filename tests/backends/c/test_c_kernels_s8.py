"""The int8 GEMM (1x1 and kxk convs, fully connected layers) and the int8 add / sub / mul kernels
on odd shapes, bit for bit against the reference interpreter: on the host (gcc and clang) and
under QEMU on the Cortex-M4 (plain C and the DSP build), the Cortex-M7 (DSP build), the
Cortex-M3 (plain C, no DSP extension) and the Cortex-M55 (the Helium build, mps3-an547).

The shapes reach every branch of the DSP GEMM (mcuforge_gemm_dsp_s8): depths below 4, with an odd
number of 4-value steps and with a tail, one output channel, odd channel counts and counts that
are not a multiple of the 8-channel requantization block, odd pixel counts (a lone last column),
a fully connected layer with a single column, and channels whose shift takes the general
requantization (large weights, a relu6 clamp); of the Helium GEMM (mcuforge_gemm_mve_s8): pixel
counts not a multiple of 4 (the last columns times four channels, channel counts not a multiple
of 4), depths below 16, with whole 16-value steps and with a predicated tail; and of the
element-wise kernels: equal shapes,
broadcasting along the last axis (a stride 0) and along outer axes, add, sub and mul. Weights
quantized per channel and per tensor. Also the add / sub / mul arithmetic on its own, every pair
of int8 inputs for thousands of random parameter sets (ties and powers of two included), against
the general kernels, on every build.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.cbuild import calibration
from torch import nn

import mcuforge
from mcuforge.backends.c.emit import _ENV, emit_c
from mcuforge.ir.interpreter import run

KERNELS = Path(mcuforge.__file__).parent / "backends" / "c" / "kernels"
# build -> (make goal, make arguments, QEMU board or None for the host); "+special": every layer
# runs specialized (backends/c/tune.py: the kernels inlined with the layer's constants)
BUILDS = {"gcc": ("host", ["CC=gcc"], None), "clang": ("host", ["CC=clang"], None),
          "m4": ("cortex-m", ["TARGET=mps2-an386"], "mps2-an386"),
          "m4_dsp": ("cortex-m", ["TARGET=mps2-an386", "DSP=1"], "mps2-an386"),
          "m7_dsp": ("cortex-m", ["TARGET=mps2-an500", "DSP=1"], "mps2-an500"),
          "m3": ("cortex-m", ["TARGET=mps2-an385"], "mps2-an385"),
          "m55_mve": ("cortex-m", ["TARGET=mps3-an547", "MVE=1"], "mps3-an547")}
BUILDS |= {f"{b}+special": BUILDS[b] for b in ("gcc", "clang", "m4_dsp", "m3", "m55_mve")}


class OddShapes(nn.Module):
    """1x1 convs of depths 3 to 20 and 1 to 20 output channels over 5 x 7 pixels, a 3x3 conv
    (depth 108, 7 pixels a row), a conv with large weights clamped by relu6, residual adds, a
    broadcast add, sub and mul, a per-channel PRELU, fully connected layers of depths 700 and 3."""

    def __init__(self):
        super().__init__()
        self.pw1, self.pw2, self.pw3 = nn.Conv2d(3, 5, 1), nn.Conv2d(5, 9, 1), nn.Conv2d(9, 12, 1)
        self.k3 = nn.Conv2d(12, 7, 3, padding=1)
        self.pw4, self.pw5, self.one = nn.Conv2d(7, 20, 1), nn.Conv2d(20, 20, 1), nn.Conv2d(20, 1, 1)
        self.big = nn.Conv2d(20, 6, 1)
        self.shift = nn.Parameter(torch.randn(1, 20, 1, 1))
        self.fc1, self.fc2 = nn.Linear(700, 3), nn.Linear(3, 1)
        self.prelu = nn.PReLU(20)
        with torch.no_grad():
            self.big.weight.mul_(2000.0)
            self.prelu.weight.copy_(torch.linspace(-1.5, 2.0, 20))

    def forward(self, x):
        a = F.relu(self.pw3(F.relu(self.pw2(F.relu(self.pw1(x))))))
        b = F.relu(self.pw4(F.relu(self.k3(a))))
        c = self.prelu(self.pw5(b)) + b  # per-channel PRELU (prelu_s8.c), residual add of equal shapes
        gate = torch.sigmoid(self.one(c))  # one output channel
        d = c * gate - self.shift + c  # mul broadcast over channels, sub broadcast over pixels
        big = F.relu6(self.big(d))  # multipliers that take the general requantization
        y = self.fc2(F.relu(self.fc1(d.flatten(1))))
        return y, big, gate


def _build(directory: Path, build: str) -> Path:
    goal, args, _ = BUILDS[build]
    r = subprocess.run(["make", "-s", goal, *args], cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0, f"{build} build failed:\n{r.stdout}\n{r.stderr}"
    return directory


def _run(directory: Path, build: str, data: bytes) -> bytes:
    board = BUILDS[build][2]
    if board is None:
        return subprocess.run([directory / "model_host"], input=data, capture_output=True, check=True).stdout
    (directory / "input.bin").write_bytes(data)
    r = subprocess.run(["make", "-s", "qemu", f"TARGET={board}"], cwd=directory, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"QEMU run failed:\n{r.stdout}\n{r.stderr}"
    return (directory / "output.bin").read_bytes()


def every_build_matches(directory: Path, graph) -> None:
    """Emit `graph` once shared and once specialized, build it in every build of BUILDS (in
    parallel), run each on two seeded int8 inputs: their output bytes must be the interpreter's."""
    emit_c(graph, directory / "gcc", optimize="size")
    emit_c(graph, directory / "gcc+special", specialized=[n.name for n in graph.nodes])
    assert "_special(" in (directory / "gcc+special" / "model.c").read_text()
    for build in BUILDS:
        if build not in ("gcc", "gcc+special"):
            source = "gcc+special" if build.endswith("+special") else "gcc"
            shutil.copytree(directory / source, directory / build, copy_function=os.link)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(_build, [directory / b for b in BUILDS], BUILDS))
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        xs = [rng.integers(-128, 128, v.shape).astype(np.int8) for v in graph.inputs]
        want = b"".join(np.ascontiguousarray(y).tobytes() for y in run(graph, *xs))
        for build in BUILDS:
            assert _run(directory / build, build, b"".join(x.tobytes() for x in xs)) == want, build


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_odd_shapes_every_build(tmp_path, per_channel):
    torch.manual_seed(0)
    shape = (1, 3, 5, 7)
    graph = mcuforge.compile(OddShapes().eval(), (torch.zeros(shape),), emit=(), quantize="int8",
                             calibration=calibration(shape, 8), per_channel=per_channel).graph
    ops = graph.count()
    assert ops["qconv2d"] == 8 and ops["qlinear"] == 2 and {"qadd", "qsub", "qmul", "qprelu"} <= set(ops)
    shifts = [s for n in graph.nodes if n.op == "qconv2d" for s in n.attrs["shift"]]
    assert max(shifts) > -2  # some channel takes the general requantization
    every_build_matches(tmp_path, graph)


class OddDepthwise(nn.Module):
    """Depthwise convs reaching every path of the DSP depthwise kernel (conv_s8.c): 3 x 3 windows
    of whole 8-channel blocks (12 channels: a block of 8, one of 4), padding on every side,
    stride 2, a row dilation, windows over both edges of a 2 x 2 image; the general path for a
    column dilation, a 5 x 5 kernel, 6 channels (a tail of 2), large weights clamped by relu6 (the
    general requantization); a depth multiplier of 2 (the plain kernel). On the Helium build
    (dwconv_mve): blocks of 16 channels whole (20 channels) and predicated (12, 20, 6 and 8),
    clipped windows on every edge, runs of interior pixels, both dilations, stride 2."""

    def __init__(self):
        super().__init__()
        self.dw1 = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.rows = nn.Conv2d(12, 12, 3, padding=(2, 1), dilation=(2, 1), groups=12)
        self.pw1 = nn.Conv2d(12, 20, 1)
        self.s2 = nn.Conv2d(20, 20, 3, stride=2, padding=(1, 0), groups=20)
        self.cols = nn.Conv2d(20, 20, 3, padding=2, dilation=2, groups=20)
        self.k5 = nn.Conv2d(20, 20, 5, padding=2, groups=20)
        self.big = nn.Conv2d(20, 20, 3, padding=1, groups=20)
        self.pw2 = nn.Conv2d(20, 6, 1)
        self.tail = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6)
        self.mult = nn.Conv2d(6, 12, 3, padding=1, groups=6)
        self.pw3 = nn.Conv2d(6, 8, 1)
        self.small = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        with torch.no_grad():
            self.big.weight.mul_(2000.0)

    def forward(self, x):
        a = self.rows(F.relu(self.dw1(x)))
        b = F.relu(self.s2(self.pw1(a)))
        c = self.cols(b)
        d = F.relu6(self.k5(c)) + F.relu6(self.big(c))
        e = self.tail(self.pw2(d))
        return self.mult(e), self.small(F.relu(self.pw3(e)))


def test_depthwise_every_path_every_build(tmp_path):
    """Every path of the depthwise kernels (OddDepthwise, channels last) bit for bit the
    interpreter's in every build; the clamps of two 3 x 3 layers tightened (allowed: the verifier
    checks only that they lie inside the type): act_min above -128 (the compare after SSAT) and
    act_max below 127 (the general path)."""
    torch.manual_seed(0)
    shape = (1, 12, 9, 11)
    graph = mcuforge.compile(OddDepthwise().eval(), (torch.zeros(shape),), emit=(), quantize="int8",
                             calibration=calibration(shape, 8), passes="deploy").graph
    dw = {n.name: n for n in graph.nodes if n.op == "qconv2d" and n.attrs["groups"] > 1}
    assert len(dw) == 9 and all(n.attrs["layout"] == "NHWC" for n in dw.values())
    assert max(dw["big"].attrs["shift"]) > -2 and max(dw["dw1"].attrs["shift"]) <= -2
    assert dw["dw1"].attrs["act_min"] == -128 and dw["small.nhwc"].attrs["act_max"] == 127
    dw["dw1"].attrs["act_min"], dw["small.nhwc"].attrs["act_max"] = -100, 100
    every_build_matches(tmp_path, graph)


@pytest.mark.parametrize("build", [b for b in BUILDS if not b.endswith("+special")])
def test_binary_arithmetic_exhaustive(tmp_path, build):
    """mcuforge_add_s8 / mcuforge_mul_s8's fast paths (the converter's add / sub with one input
    multiplier exactly 1/2, in SMMLAR's form, four lanes a word on the DSP builds; the other
    parameters' one multiply-add per rounding pair) against the general kernels (MCUFORGE_QADD /
    MCUFORGE_QMUL, mcuforge_mbqm) on all 65536 input pairs, lengths 65533 to 65536 (the tails of
    the four-lane loops, a guard byte past the end), per random parameter set (zero points,
    multipliers including 2^30 and ones with many trailing zero bits, every shift, clamps), add,
    sub and mul: 3000 sets on the hosts (-O2), 120 per QEMU build."""
    goal, args, board = BUILDS[build]
    (tmp_path / "check.c").write_text(r"""
#include "eltwise_s8.c"
#include <stdio.h>
static uint64_t st = 88172645463325252u;
static uint32_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (uint32_t)st; }
static int32_t multiplier(void) {
    uint32_t m = 1u << 30 | (rnd() & 0x3fffffffu);
    switch (rnd() % 4) {
    case 1: return 1 << 30;
    case 2: return (int32_t)((m & ~((1u << (rnd() % 31)) - 1)) | 1u << 30);
    default: return (int32_t)m;
    }
}
void SysTick_Handler(void) {}
int main(void) {
    static int8_t a[65536], b[65536], y1[65537], y2[65537];
    mcuforge_bcast p = {1, 1, {65536}, {1}, {1}};
    int32_t i, t, bad = 0;
    for (i = 0; i < 65536; ++i) a[i] = (int8_t)(i & 255), b[i] = (int8_t)(i >> 8);
    for (t = 0; t < SETS; ++t) {
        mcuforge_qadd q;
        const int32_t op = t % 3, n = 65536 - (int32_t)(rnd() % 4);
        p.shape[0] = n;
        q.a_zp = (int32_t)(rnd() % 256) - 128, q.b_zp = (int32_t)(rnd() % 256) - 128;
        q.out_zp = (int32_t)(rnd() % 256) - 128, q.left_shift = 20;
        q.a_multiplier = multiplier(), q.b_multiplier = multiplier(), q.multiplier = multiplier();
        q.a_shift = -(int32_t)(rnd() % 23), q.b_shift = rnd() % 3 ? -(int32_t)(rnd() % 23) : 0;
        if (rnd() % 4) { /* the converter's: one input's multiplier 1/2, the other's shift mostly -1..-4 */
            const int32_t other = -1 - (int32_t)(rnd() % (rnd() % 4 ? 4 : 6));
            if (rnd() % 2) q.a_multiplier = 1 << 30, q.a_shift = 0, q.b_shift = other;
            else q.b_multiplier = 1 << 30, q.b_shift = 0, q.a_shift = other;
        }
        q.shift = op == 2 ? 2 - (int32_t)(rnd() % 30) : -16 - (int32_t)(rnd() % 11);
        q.act_min = rnd() % 2 ? -128 : q.out_zp, q.act_max = rnd() % 4 ? 127 : 100;
        q.subtract = op == 1;
        y1[n] = y2[n] = 7;
        if (op == 2) mcuforge_mul_s8(&p, &q, a, b, y1), mcuforge_mul_s8_any(&p, &q, a, b, y2);
        else mcuforge_add_s8(&p, &q, a, b, y1), mcuforge_add_s8_any(&p, &q, a, b, y2);
        bad += memcmp(y1, y2, (size_t)n + 1) != 0;
    }
    printf("%d\n", (int)bad);
    return bad != 0;
}
""")
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{KERNELS}", "check.c", "-o", "check"]
    if board is None:
        subprocess.run([build, "-DSETS=3000", *flags], cwd=tmp_path, check=True)
        r = subprocess.run([tmp_path / "check"], capture_output=True, text=True)
    else:  # the startup code and memory map of the generated projects
        ld = "mps3.ld" if board == "mps3-an547" else "mps2.ld"
        for name, template in (("startup.c", "startup_mps2.c.j2"), (ld, f"{ld}.j2")):
            (tmp_path / name).write_text(_ENV.get_template(template).render(version="test", weight_bytes=0))
        cpu = {"mps2-an386": "-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard",
               "mps2-an500": "-mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard",
               "mps2-an385": "-mcpu=cortex-m3 -mfloat-abi=soft", "mps3-an547": "-mcpu=cortex-m55 -mfloat-abi=hard"}
        defines = ["-DMCUFORGE_USE_DSP"] * ("DSP=1" in args or "MVE=1" in args) + ["-DMCUFORGE_USE_MVE"] * ("MVE=1" in args)
        subprocess.run(["arm-none-eabi-gcc", *cpu[board].split(), "-mthumb", *defines, "-DSETS=120", "-T", ld,
                        "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "startup.c", *flags],
                       cwd=tmp_path, check=True)
        r = subprocess.run(["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none", "-serial", "none",
                            "-semihosting-config", "enable=on,target=native", "-kernel", "check"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stdout + r.stderr


class OddPools(nn.Module):
    """Pools and means of every path of pool_s8.c: channels last in multiples of four and with a
    tail (6, 7 channels), fewer than four (the general loops), windows over the padding, strides,
    a global average of 21 x 14 = 294 taps (more than the 256 of one pass of 16-bit sums), a max
    pool of 2 x 2 windows, a mean over the spatial axes."""

    def __init__(self):
        super().__init__()
        self.c6, self.c7, self.c3 = nn.Conv2d(3, 6, 1), nn.Conv2d(3, 7, 1), nn.Conv2d(3, 3, 1)
        self.c8 = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        a, b, c, d = self.c6(x), self.c7(x), self.c3(x), self.c8(x)
        avg = F.avg_pool2d(a, 3, stride=2, padding=1, count_include_pad=False)
        mx = F.max_pool2d(b, 3, stride=2, padding=1)
        small = F.max_pool2d(c, 2) + F.avg_pool2d(c, 2)  # 3 channels: the general loops
        softmaxes = F.softmax(c.mean((2, 3)), -1), F.softmax(b.mean((2, 3)), -1), F.softmax(a.flatten(1), -1)
        return avg, mx, small, F.adaptive_avg_pool2d(d, 1), F.max_pool2d(d, 2), b.mean((2, 3)), d.mean((2, 3)), \
            *softmaxes


def test_pools_every_path_every_build(tmp_path):
    """Every path of the int8 pools and mean (OddPools, channels last) bit for bit the
    interpreter's in every build."""
    torch.manual_seed(0)
    shape = (1, 3, 21, 14)
    graph = mcuforge.compile(OddPools().eval(), (torch.zeros(shape),), emit=(), quantize="int8",
                             calibration=calibration(shape, 8), passes="deploy").graph
    ops = graph.count()
    assert ops["qavg_pool2d"] >= 2 and ops["max_pool2d"] >= 3 and ops.get("qmean", 0) >= 1, ops
    assert ops["qsoftmax"] == 3, ops
    assert all(n.attrs.get("layout", "NHWC") == "NHWC" for n in graph.nodes if "pool" in n.op)
    every_build_matches(tmp_path, graph)
