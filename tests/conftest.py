"""Shared fixtures: golden-file comparison (`pytest --update-golden` rewrites the files)."""
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from the current output")


@pytest.fixture
def golden(request):
    """`golden(name, text)`: compare text with tests/golden/<name> (or rewrite it with --update-golden)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str):
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"missing golden file {path}; create it with pytest --update-golden and review it"
        assert text == path.read_text(), f"{path} differs; if the change is intended, run pytest --update-golden and review the diff"
    return check


@pytest.fixture(scope="session")
def float_zoo():
    """`float_zoo(name) -> (graph, inputs)`: a zoo model traced and run through the default float
    pipeline once per session (tracing dominates the time of zoo-wide tests), and its example
    inputs as arrays; every call returns a fresh clone of the graph, which the caller may change."""
    import mcuforge
    from mcuforge import zoo
    from mcuforge.passes.manager import PassManager
    from mcuforge.passes.pipelines import FLOAT
    cache = {}

    def get(name: str):
        if name not in cache:
            model, inputs = zoo.get(name)
            graph = mcuforge.trace(model, inputs)
            PassManager(FLOAT).run(graph)
            cache[name] = graph, tuple(x.numpy() for x in inputs)
        graph, inputs = cache[name]
        return graph.clone(), inputs
    return get
