"""backends/c/bench.py and the host runner's batch mode: seeded inputs as the header declares
them; `model_host -b` runs sample after sample, each output equal to the reference interpreter's
(int8: bit for bit); an incomplete last sample is an error; latency samples are positive.
Per-layer instructions from one QEMU run of the profile build (markers between layers), the
markers' absence from every other build, and the kernels' code size."""
import itertools
import re
import subprocess

import numpy as np
import pytest
import torch

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c import bench, size
from mcuforge.backends.c.emit import LAYER_KINDS, CEmitter, emit_c, layer_kind, render_c, resolve_plan
from mcuforge.errors import UsageError
from mcuforge.ir.interpreter import run


def test_batch_mode_matches_interpreter(tmp_path):
    model, (x,) = zoo.get("ds_cnn")
    calib = np.random.default_rng(0).standard_normal((4, *x.shape)).astype(np.float32)
    art = mcuforge.compile(model, (x,), quantize="int8", calibration=calib, emit=("c",), out_dir=tmp_path)
    c = art.files["c"]
    (x0,) = bench.random_inputs(c, seed=0)
    assert x0.dtype == np.int8 and x0.shape == tuple(art.graph.inputs[0].shape)
    samples = np.stack([bench.random_inputs(c, seed=s)[0] for s in range(3)])
    bench.make(c, "host")
    out = subprocess.run([str(c / "model_host"), "-b"], input=samples.tobytes(), capture_output=True, check=True).stdout
    want = np.stack([run(art.graph, s)[0] for s in samples])
    assert out == want.tobytes()
    r = subprocess.run([str(c / "model_host"), "-b"], input=samples.tobytes()[:-1], capture_output=True)
    assert r.returncode == 2 and b"incomplete" in r.stderr
    seconds = bench.host_latency(c, [x0], runs=3)
    assert len(seconds) == 3 and all(0 < s < 1 for s in seconds)


class Kinds(torch.nn.Module):
    """One layer of every kind the per-layer tables group by, and a reshape (no code)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 8, 1)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = torch.relu(self.pw(torch.relu(self.dw(y)))) + y
        return self.fc(torch.flatten(torch.nn.functional.max_pool2d(y, 2), 1))


@pytest.fixture(scope="module")
def kinds_int8():
    torch.manual_seed(0)
    calib = np.random.default_rng(0).standard_normal((4, 1, 3, 8, 8)).astype(np.float32)
    return mcuforge.compile(Kinds().eval(), (torch.randn(1, 3, 8, 8),), quantize="int8", calibration=calib, emit=())


def test_layer_counts_add_up_to_the_inference(kinds_int8, tmp_path):
    """One QEMU run of the profile build gives every layer's instructions: they and invoke's own
    share add up to the whole inference, which agrees with the SysTick count of the build without
    markers (to its 40-instruction tick plus the clock reads); a layer without code counts 0;
    counts are the same on a second run; the layers come in schedule order with their kinds."""
    graph = kinds_int8.graph
    plan = resolve_plan(graph, kinds_int8.plan)  # what emit_c uses: the kernels' scratch placed too
    emit_c(graph, tmp_path / "plain", plan=plan)
    emit_c(graph, tmp_path / "profile", plan=plan, profile=True)
    xs = bench.random_inputs(tmp_path / "plain", seed=0)
    profile = bench.qemu_layers(tmp_path / "profile", xs)
    assert [layer.name for layer in profile.layers] == list(plan.schedule)
    order = {n.name: n for n in graph.nodes}
    assert [layer.kind for layer in profile.layers] == [layer_kind(order[name]) for name in plan.schedule]
    assert set(LAYER_KINDS) - {"other"} <= {layer.kind for layer in profile.layers}
    emitter = CEmitter(graph, plan)
    emitter.lower_all()
    for layer, code in zip(profile.layers, emitter.nodes, strict=True):
        assert (layer.instructions > 0) == bool(code.calls), (layer, code.calls)
    assert sum(layer.instructions for layer in profile.layers) + profile.entry_exit == profile.whole
    assert 0 < profile.entry_exit < 200
    systick = bench.qemu_instructions(tmp_path / "plain", xs)
    assert abs(profile.whole - systick) < 80, (profile.whole, systick)
    assert bench.qemu_layers(tmp_path / "profile", xs) == profile
    # the project's own `make qemu-profile` prints the same marks
    (tmp_path / "profile" / "input.bin").write_bytes(b"".join(x.tobytes() for x in xs))
    r = subprocess.run(["make", "-s", "qemu-profile"], cwd=tmp_path / "profile", capture_output=True, text=True,
                       check=True)
    marks = [int(m) for m in re.findall(r"^mark (\d+)$", r.stderr, re.MULTILINE)]
    assert [b - a - 1 for a, b in itertools.pairwise(marks)][1:-1] == [layer.instructions for layer in profile.layers]


@pytest.mark.parametrize("board, dsp, mve", [("mps2-an386", True, False), ("mps2-an500", True, False),
                                             ("mps3-an547", True, True)])
def test_layer_counts_on_the_dsp_and_mve_builds(kinds_int8, tmp_path, board, dsp, mve):
    """The DSP build on the M4 and the M7, the MVE build on the M55 (its own memory map, a 32 MHz
    SysTick): the rows add up and match that build's SysTick count."""
    emit_c(kinds_int8.graph, tmp_path, plan=kinds_int8.plan, profile=True)
    xs = bench.random_inputs(tmp_path, seed=1)
    profile = bench.qemu_layers(tmp_path, xs, board, dsp, mve)
    assert profile.board == board and profile.dsp == dsp and profile.mve == mve
    assert sum(layer.instructions for layer in profile.layers) + profile.entry_exit == profile.whole
    assert abs(profile.whole - bench.qemu_instructions(tmp_path, xs, board, dsp, mve)) < 80


def test_mve_only_on_the_m55():
    with pytest.raises(UsageError, match="no MVE"):
        bench.qemu_instructions(".", [], "mps2-an386", mve=True)


def test_markers_cost_nothing_outside_the_profile_build(kinds_int8, tmp_path):
    """Without profile=True nothing of the markers is written; with it, `make cortex-m` builds the
    very same firmware bytes (the markers compile to nothing without -DMCUFORGE_PROFILE)."""
    plain = render_c(kinds_int8.graph, plan=kinds_int8.plan)
    profiled = render_c(kinds_int8.graph, plan=kinds_int8.plan, profile=True)
    assert not any(b"PROFILE" in data or b"profile" in data for data in plain.values())
    assert set(profiled) - set(plain) == {"layers.tsv", "qemu_marks.c"}
    images = []
    for name, files in (("plain", plain), ("profile", profiled)):
        for path, data in files.items():
            (tmp_path / name / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / path).write_bytes(data)
        bench.make(tmp_path / name, "cortex-m", tool="arm-none-eabi-gcc")
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "model.elf", "model.bin"], cwd=tmp_path / name,
                       check=True)
        images.append((tmp_path / name / "model.bin").read_bytes())
    assert images[0] == images[1] and len(images[0]) > 1000


def test_kernel_text_grows_with_the_dsp_paths(kinds_int8, tmp_path):
    """arm-none-eabi-size text of the kernels: positive, and the DSP build carries its extra paths."""
    emit_c(kinds_int8.graph, tmp_path, plan=kinds_int8.plan)
    plain, dsp = size.kernel_text(tmp_path, "cortex-m4"), size.kernel_text(tmp_path, "cortex-m4", dsp=True)
    assert 1000 < plain < dsp

