"""Every zoo model, float and int8, on QEMU's Cortex-M4 (mps2-an386): one emitted project is
built for the host (gcc, `make host`) and for the M4 (`make cortex-m`), both run on the same
random input, and the M4's output bytes must equal the host's. The host's own output is checked
against the reference interpreter: int8 bit for bit, float within 1e-4 of the output's range
(as tests/backends/c/test_c_emit.py). The instructions of one inference are printed (pytest -s).
Weights beyond the 4 MB code memory go to the board's 16 MB PSRAM (see templates/mps2.ld.j2);
resnet18's float weights (46.8 MB) fit no Cortex-M4, QEMU's boards included: for it the test is
that the fit check says so (it runs on the host in test_c_emit.py).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from support.cbuild import host_and_m4

import mcuforge
from mcuforge import zoo
from mcuforge.ir.interpreter import run

CASES = [(name, scheme) for name in zoo.names() for scheme in ("float", "int8")
         if (name, scheme) != ("resnet18", "float")]  # see test_resnet18_float_fits_no_cortex_m4


@pytest.mark.parametrize("name,scheme", CASES)
def test_zoo_on_cortex_m4(tmp_path, float_zoo, name, scheme):
    graph, (x,) = float_zoo(name)  # traced once for both schemes
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


def test_resnet18_float_fits_no_cortex_m4(tmp_path, float_zoo):
    """46.8 MB of float weights: the compiler refuses every Cortex-M4 profile, by how much, and
    suggests int8 (whose resnet18 runs above)."""
    graph, (x,) = float_zoo("resnet18")
    for target in ("stm32f446re", "nrf52840"):
        with pytest.raises(mcuforge.DoesNotFitError, match=r"(?s)flash.*int8") as e:
            mcuforge.compile(graph, (x,), emit=("c",), target=target, out_dir=tmp_path / target)
        print(e.value)
        assert not (tmp_path / target).exists()  # nothing written
