"""`apply` and `float_zoo` fixtures shared by the pass tests."""
import numpy as np
import pytest

import mcuforge
from mcuforge import zoo
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT


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


@pytest.fixture(scope="session")
def float_zoo():
    """`float_zoo(name) -> (graph, inputs)`: a zoo model traced and through the default float
    pipeline (once per session; each call gets a fresh clone), and its example inputs as arrays."""
    cache = {}

    def get(name):
        if name not in cache:
            model, inputs = zoo.get(name)
            graph = mcuforge.trace(model, inputs)
            PassManager(FLOAT).run(graph)
            cache[name] = graph, [x.numpy() for x in inputs]
        graph, inputs = cache[name]
        return graph.clone(), inputs
    return get
