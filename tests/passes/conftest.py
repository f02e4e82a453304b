"""The `apply` fixture shared by the pass tests (`float_zoo` is in tests/conftest.py)."""
import numpy as np
import pytest

from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager


@pytest.fixture
def apply():
    """`apply(graph, "pass-name", *inputs, **options) -> (ctx, outputs after)`.

    Runs one registered pass in place through the PassManager with verification after it, and
    checks the interpreter's outputs on `inputs` before and after the pass (within 1e-5).
    """
    def go(graph, name, *inputs, **options):
        before = run(graph, *inputs)
        ctx = PassManager([(name, options)], debug=True).run(graph)
        after = run(graph, *inputs)
        for b, a in zip(before, after, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        return ctx, after
    return go
