"""Specialized kernels and `optimize` (backends/c/tune.py): which layers each mode specializes, the
cost model, `bench --tune`'s measurements and their cache, and the specialized C bit-exact (the
every-build tests of test_c_kernels_s8.py run every kernel path specialized too)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import mcuforge
from mcuforge.backends.c import bench, tune
from mcuforge.backends.c.emit import emit_c, render_c
from mcuforge.compiler.cli import main
from mcuforge.compiler.targets import load_target
from mcuforge.errors import UsageError
from mcuforge.ir.interpreter import run


class Stem(nn.Module):
    """A first conv on 3 channels (the cost model's clear win), a 1x1 conv (no gain), an average
    pool and a fully connected head, from an NCHW input (a transpose to channels last)."""

    def __init__(self):
        super().__init__()
        self.stem, self.pw, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.pw(torch.relu(self.stem(x))))
        return self.fc(nn.functional.adaptive_avg_pool2d(y, 1).flatten(1))


@pytest.fixture(scope="module")
def stem():
    torch.manual_seed(0)
    shape = (1, 3, 24, 24)
    rng = np.random.default_rng(1)
    calibration = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    return mcuforge.compile(Stem().eval(), (torch.zeros(shape),), emit=(), quantize="int8", calibration=calibration,
                            passes="deploy")


def specialized(files) -> list[str]:
    return [line.split("(")[0].strip() for line in files["model.c"].decode().splitlines()
            if "_special(" in line]


def test_modes_choose_by_the_cost_model(stem, tmp_path, monkeypatch):
    monkeypatch.setenv("MCUFORGE_CACHE", str(tmp_path))  # nothing measured: the cost model decides
    size, balanced, speed = (specialized(render_c(stem.graph, plan=stem.plan, optimize=m)) for m in tune.OPTIMIZE)
    assert size == []  # the cost model never expects less code
    assert "mcuforge_conv2d_s8_special" in balanced and len(balanced) < len(speed)
    model_c = render_c(stem.graph, plan=stem.plan)["model.c"].decode()  # balanced by default
    assert "optimize=balanced" in model_c and "chosen by the cost model" in model_c
    with pytest.raises(UsageError, match="unknown optimize 'fast'"):
        render_c(stem.graph, plan=stem.plan, optimize="fast")
    with pytest.raises(UsageError, match="unknown optimize"):
        mcuforge.compile(Stem().eval(), (torch.zeros(1, 3, 24, 24),), emit=(), optimize="fast")


def test_estimate_by_kind(stem):
    nodes = {n.op: n for n in stem.graph.nodes}
    stem_conv = next(n for n in stem.graph.nodes if n.op == "qconv2d" and n.inputs[0].shape[-1] == 3)
    assert tune.estimate(stem_conv, "kxk conv").saved > 0
    assert tune.estimate(nodes["qlinear"], "fully connected") == tune.Variant(0, 0, False)
    assert not tune.pays(tune.Variant(100, 100, True), "balanced") and tune.pays(tune.Variant(100, 100, True), "speed")
    assert tune.pays(tune.Variant(10, -500, True), "balanced")  # less code (the shared kernel dropped) and faster
    assert not tune.pays(tune.Variant(-5, 0, True), "speed")
    assert tune.pays(tune.Variant(0, -1, True), "size") and not tune.pays(tune.Variant(-1, -100, True), "size")
    assert not tune.pays(tune.Variant(10_000, 1, True), "size")


def test_tune_measures_caches_and_compile_uses_it(stem, tmp_path, monkeypatch):
    """Two QEMU runs (shared, specialized) give each candidate's saving; the cache makes the C
    backend choose from the counts; the chosen C still gives the interpreter's bytes."""
    monkeypatch.setenv("MCUFORGE_CACHE", str(tmp_path / "cache"))
    target = load_target("stm32f446re")
    t = bench.tune_layers(stem.graph, stem.plan, target, tmp_path / "work")
    assert t.board == "mps2-an386" and t.dsp and t.cache.is_file()
    kinds = {r[3] for r in t.rows}
    assert {"kxk conv", "1x1 conv", "pool", "fully connected"} <= kinds
    assert all(shared > 0 and special > 0 for *_, shared, special, _ in t.rows)
    first = next(r for r in t.rows if r[3] == "kxk conv")
    assert first[4] > first[5]  # the stem conv saves instructions specialized
    n_size, whole_size, code_size = t.choice("size")
    n_speed, whole_speed, code_speed = t.choice("speed")
    assert code_size <= 0 and whole_size <= t.whole and n_speed > 0 and whole_speed < t.whole
    files = render_c(stem.graph, plan=stem.plan, target=target, optimize="speed")
    model_c = files["model.c"].decode()
    assert "chosen by measurements of `mcuforge bench --tune`" in model_c
    measured = {r[1] for r in t.rows if tune.pays(tune.Variant(r[4] - r[5], r[6], True), "speed")}
    assert len(specialized(files)) == len(measured)
    out = tmp_path / "c"
    emit_c(stem.graph, out, plan=stem.plan, target=target, optimize="speed")
    xs = [np.random.default_rng(0).integers(-128, 128, v.shape).astype(np.int8) for v in stem.graph.inputs]
    want = b"".join(np.ascontiguousarray(y).tobytes() for y in run(stem.graph, *xs))
    assert bench.qemu_outputs(out, [xs], "mps2-an386", dsp=True) == [want]


def test_cli_bench_tune_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MCUFORGE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((4, 1, 3, 16, 16)).astype(np.float32))
    assert main(["bench", "zoo:tiny_cnn", "--quantize", "int8", "--calibration", str(tmp_path / "cal.npz"),
                 "--target", "stm32f446re", "--tune", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["qemu_board"] == "mps2-an386" and got["layers"]
    assert set(got["optimize"]) == set(tune.OPTIMIZE)
    assert got["optimize"]["size"]["code_bytes"] <= 0 and got["optimize"]["speed"]["instructions"] <= \
        got["optimize"]["size"]["instructions"]
