"""arm-none-eabi-size figures in the compile report (backends/c/size.py): the model's own objects
built for the target's core; their RAM is the planned arena plus at most a few hundred bytes, their
flash holds at least the weights; TFLite Micro's arena beside ours; a missing toolchain is a
visible note, never a silent gap."""
import re
import shutil

import numpy as np
import pytest

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c import size


@pytest.mark.parametrize("target, core", [("rp2040", "cortex-m0plus"), ("nrf52840", "cortex-m4"),
                                          ("stm32f746", "cortex-m7"), (None, "cortex-m4")])
def test_report_has_mcu_sizes(tmp_path, target, core):
    model, (x,) = zoo.get("tiny_cnn")
    calib = np.random.default_rng(0).standard_normal((4, *x.shape)).astype(np.float32)
    art = mcuforge.compile(model, (x,), quantize="int8", calibration=calib, target=target, out_dir=tmp_path,
                           emit=("c", "tflite"))
    header = (tmp_path / "c" / "model.h").read_text()
    arena = int(re.search(r"MODEL_ARENA_SIZE (\d+)u", header).group(1))
    weights = int(re.search(r"MODEL_WEIGHT_BYTES (\d+)u", header).group(1))
    m = art.report.mcu
    assert m.core == core and m.arena == arena == art.plan.arena_bytes
    assert arena <= m.ram <= arena + 256 and m.flash > weights > 0
    assert m.tflm_arena > 0
    md, html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert f"flash {m.flash:,} B" in md and f"RAM {m.ram:,} B" in md and f"{m.tflm_arena:,} B" in md
    assert f"model data + bss on {core}" in html and "TFLite Micro arena" in html
    assert ("no target" in md) == (target is None)


def test_missing_toolchain_is_a_visible_note(tmp_path, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(size.shutil, "which", lambda name: None if name.startswith("arm-none-eabi") else real(name))
    art = mcuforge.compile("zoo:tiny_cnn", out_dir=tmp_path, emit=("c",), target="nrf52840")
    assert art.report.mcu.core == "" and art.report.mcu.tflm_arena is None
    note = "arm-none-eabi-gcc is not installed"
    assert note in (tmp_path / "report.md").read_text() and note in (tmp_path / "report.html").read_text()


def test_tflite_micro_aborting_leaves_the_process_alive(tmp_path, monkeypatch):
    """TFLite Micro aborts the process on some files (a failed check in a kernel's Prepare): here
    every Python started by this test gets a TFLite Micro whose interpreter calls abort()
    (sitecustomize), and compiling with C and TFLite still returns, the crash noted in the report."""
    import os
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os\nfrom tflite_micro.python.tflite_micro import runtime\n\n\n"
        "class Aborting:\n    @staticmethod\n    def from_bytes(*args, **kwargs):\n        os.abort()\n\n\n"
        "runtime.Interpreter = Aborting\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]))
    art = mcuforge.compile("zoo:tiny_cnn", emit=("c", "tflite"), out_dir=tmp_path / "o")
    assert art.report.mcu.tflm_arena is None
    assert "TFLite Micro's arena not measured: tflm_arena_bytes was killed by SIGABRT" in art.report.mcu.notes
    monkeypatch.setenv("PYTHONPATH", os.environ["PYTHONPATH"].split(os.pathsep, 1)[1])
    assert size.measure(art.files["c"], None, art.files["tflite"]).tflm_arena > 0
