"""compile(latency=True) / `--latency`: each layer's estimated cycles and milliseconds on the
target, from one QEMU run of the model's C with layer markers, in the report (text, markdown,
report.html) and `inspect`; checked against the SysTick count of the plain QEMU run."""
from __future__ import annotations

import re

import numpy as np
import pytest

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.bench import CYCLES_PER_INSTRUCTION, qemu_instructions, random_inputs
from mcuforge.compiler.cli import main
from mcuforge.errors import UsageError


def digits(tmp_path, target, **kw):
    model, example = zoo.get("digits_cnn")
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((1, 1, 8, 8)).astype(np.float32) for _ in range(4)]
    return mcuforge.compile(model, example, target=target, quantize="int8", calibration=calibration,
                            out_dir=tmp_path / "out", latency=True, **kw)


def test_per_layer_estimate_at_the_target_clock(tmp_path):
    art = digits(tmp_path, "stm32f446re", emit=("c",))
    lat, report = art.report.latency, art.report
    assert lat.board == "mps2-an386" and lat.dsp and lat.clock_mhz == 180
    assert sum(c.instructions for c in lat.profile.layers) + lat.profile.entry_exit == lat.profile.whole
    # an independent clock: the SysTick count of the emitted C's DSP build (40-instruction ticks)
    c_dir = art.files["c"]
    systick = qemu_instructions(c_dir, random_inputs(c_dir, seed=0), "mps2-an386", dsp=True)
    assert abs(systick - lat.profile.whole) < 80
    assert report.columns()[-2:] == ["est. cycles", "est. ms"]
    counts = {c.name: c.instructions for c in lat.profile.layers}
    for layer, row in zip(report.layers, report.rows()):
        cycles = counts[layer.name] * CYCLES_PER_INSTRUCTION["cortex-m4"]
        assert row[-2:] == [f"{cycles:,.0f}", f"{cycles / 180e3:.3f}"]
    assert report.totals()[-1] == f"{lat.profile.whole * 1.25 / 180e3:.3f}"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Latency (estimate)" in md and "| est. cycles | est. ms |" in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<th>est. ms</th>" in html and "Latency, an estimate" in html and "180 MHz" in html


def test_other_cores_get_cycles_without_milliseconds(tmp_path):
    """An M0+ part: the counts are of a Cortex-M4 build, so no milliseconds at its clock."""
    lat = digits(tmp_path, "rp2040", emit=()).report.latency
    assert lat.clock_mhz is None and "rp2040 is a cortex-m0plus" in lat.caption
    assert digits(tmp_path, "rp2040", emit=()).report.columns()[-1] == "est. cycles"


def test_needs_a_target(tmp_path):
    with pytest.raises(UsageError, match="latency estimate is made for a target"):
        digits(tmp_path, None, emit=())


def test_inspect_latency(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["inspect", "zoo:tiny_cnn", "--target", "stm32f746", "--latency"]) == 0
    out = capsys.readouterr().out
    assert "est. ms" in out and re.search(r"mps2-an500 \(DSP build\)", out) and "216 MHz" in out
