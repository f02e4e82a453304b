"""Every zoo model, float and int8, on QEMU's Cortex-M4 (mps2-an386): one emitted project is
built for the host (gcc, `make host`) and for the M4 (`make cortex-m`), both run on the same
random input, and the M4's output bytes must equal the host's. The host's own output is checked
against the reference interpreter: int8 bit for bit, float within 1e-4 of the output's range
(as tests/backends/test_c_emit.py). The instructions of one inference are printed (pytest -s).
Weights beyond the 4 MB code memory go to the board's 16 MB PSRAM (see templates/mps2.ld.j2);
resnet18's float weights (46.8 MB) fit no Cortex-M4, QEMU's boards included: for it the test is
that the fit check says so (it runs on the host in test_c_emit.py).
"""
from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_c_qemu import _qemu

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.emit import emit_c
from mcuforge.ir.interpreter import run


def _make(directory, goal: str):
    r = subprocess.run(["make", "-s", goal, "CC=gcc"], cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0, f"make {goal} in {directory} failed:\n{r.stdout}\n{r.stderr}"


def random_inputs(graph, seed=0) -> list[np.ndarray]:
    """Inputs covering each integer type's range, standard normal floats."""
    rng = np.random.default_rng(seed)
    return [rng.integers(np.iinfo(v.dtype.np).min, np.iinfo(v.dtype.np).max + 1, v.shape).astype(v.dtype.np)
            if v.dtype.value != "f32" else rng.standard_normal(v.shape).astype(np.float32) for v in graph.inputs]


def host_and_m4(directory, graph) -> tuple[list[np.ndarray], bytes, bytes, str]:
    """Emit `graph` once, build it for the host and the M4 in parallel, run both on random inputs:
    (inputs, host output bytes, QEMU output bytes, QEMU's log)."""
    emit_c(graph, directory)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(_make, [directory] * 2, ["host", "cortex-m"]))
    xs = random_inputs(graph)
    host = subprocess.run([directory / "model_host"], input=b"".join(x.tobytes() for x in xs), capture_output=True,
                          check=True).stdout
    m4, log = _qemu(directory, xs, "mps2-an386")
    return xs, host, m4, log


CASES = [(name, scheme) for name in zoo.names() for scheme in ("float", "int8")
         if (name, scheme) != ("resnet18", "float")]  # see test_resnet18_float_fits_no_cortex_m4


@pytest.mark.parametrize("name,scheme", CASES)
def test_zoo_on_cortex_m4(tmp_path, zoo_float, name, scheme):
    graph, x = zoo_float(name)  # traced once for both schemes
    kw = {}
    if scheme == "int8":
        rng = np.random.default_rng(1)
        kw = dict(quantize="int8", calibration=[rng.standard_normal(x.shape).astype(np.float32) for _ in range(2)])
    graph = mcuforge.compile(graph, (x,), emit=(), **kw).graph
    xs, host, m4, log = host_and_m4(tmp_path, graph)
    (want,) = run(graph, *xs)
    assert m4 == host  # the same C, the same bytes on the M4 as on the host
    got = np.frombuffer(host, want.dtype).reshape(want.shape)
    if scheme == "int8":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
        print(f"\n{name}: float max error {np.abs(got - want).max() / np.abs(want).max():.2e} of the output's range")
    instructions = int(re.search(r"\((\d+) instructions", log).group(1))
    print(f"{name} [{scheme}]: {instructions:,} instructions on the M4")


def test_resnet18_float_fits_no_cortex_m4(tmp_path, zoo_float):
    """46.8 MB of float weights: the compiler refuses every Cortex-M4 profile, by how much, and
    suggests int8 (whose resnet18 runs above)."""
    graph, x = zoo_float("resnet18")
    for target in ("stm32f446re", "nrf52840"):
        with pytest.raises(mcuforge.DoesNotFitError, match=r"(?s)flash.*int8") as e:
            mcuforge.compile(graph, (x,), emit=("c",), target=target, out_dir=tmp_path / target)
        print(e.value)
        assert not (tmp_path / target).exists()  # nothing written
