"""canonicalize: no-op removal, reshape/transpose chains, clamp -> relu/relu6, then fold/cse/dce."""
import math

import numpy as np
import pytest
import torch

from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType

rng = np.random.default_rng(0)
SHAPE = (2, 3, 4)


def build(*steps):
    """x -> each (op, attrs) in turn -> output; returns the graph."""
    g = Graph()
    v = g.add_input("x", TensorType(SHAPE))
    for op, attrs in steps:
        v = g.op(op, [v], attrs)
    g.outputs = [v]
    return g


def canon(apply, g, torch_fn):
    a = rng.standard_normal(SHAPE).astype(np.float32) * 8
    ctx, (out,) = apply(g, "canonicalize", a)
    np.testing.assert_allclose(out, torch_fn(torch.from_numpy(a)).numpy(), rtol=1e-6)
    return ctx


@pytest.mark.parametrize("steps, torch_fn, after", [
    ([("dropout", {"p": 0.3}), ("identity", {}), ("relu", {})], torch.relu, {"relu": 1}),
    ([("reshape", {"shape": [6, 4]}), ("reshape", {"shape": [4, 6]}), ("reshape", {"shape": [24]})],
     lambda t: t.reshape(24), {"reshape": 1}),
    ([("reshape", {"shape": [6, 4]}), ("reshape", {"shape": list(SHAPE)}), ("relu", {})], torch.relu, {"relu": 1}),
    ([("transpose", {"perm": [0, 1, 2]}), ("relu", {})], torch.relu, {"relu": 1}),
    ([("transpose", {"perm": [2, 0, 1]}), ("transpose", {"perm": [0, 2, 1]})],
     lambda t: t.permute(2, 0, 1).permute(0, 2, 1), {"transpose": 1}),
    ([("transpose", {"perm": [2, 0, 1]}), ("transpose", {"perm": [1, 2, 0]}), ("relu", {})], torch.relu, {"relu": 1}),
    ([("clamp", {"min": 0.0, "max": 6.0})], lambda t: t.clamp(0, 6), {"relu6": 1}),
    ([("clamp", {"min": 0, "max": math.inf})], torch.relu, {"relu": 1}),
    ([("clamp", {"min": 0.0, "max": 5.0})], lambda t: t.clamp(0, 5), {"clamp": 1}),
    ([("clamp", {"min": -1.0, "max": math.inf})], lambda t: t.clamp(-1), {"clamp": 1}),
], ids=["dropout-identity", "reshape-chain", "reshape-roundtrip", "transpose-identity", "transpose-compose",
        "transpose-cancel", "clamp-relu6", "clamp-relu", "clamp-other", "clamp-min-only"])
def test_rules(apply, steps, torch_fn, after):
    g = build(*steps)
    canon(apply, g, torch_fn)
    assert g.count() == after


def test_composed_transpose_has_the_composed_perm(apply):
    g = build(("transpose", {"perm": [2, 0, 1]}), ("transpose", {"perm": [0, 2, 1]}))
    canon(apply, g, lambda t: t.permute(2, 1, 0))
    assert g.nodes[0].attrs["perm"] == [2, 1, 0]


def test_identity_between_input_and_output_stays(apply):
    g = build(("identity", {}))
    canon(apply, g, lambda t: t)
    assert g.count() == {"identity": 1}


def test_then_folds_constants_merges_and_drops_dead_code(apply):
    g = Graph()
    x = g.add_input("x", TensorType(SHAPE))
    w = rng.standard_normal(SHAPE[::-1]).astype(np.float32)
    wt = g.op("transpose", [g.op("dropout", [g.const(w, "w")])], {"perm": [2, 1, 0]})
    a1, a2 = g.op("add", [x, wt]), g.op("add", [x, wt])
    g.op("sigmoid", [a1])  # dead
    g.outputs = [g.op("mul", [a1, a2])]
    ctx = canon(apply, g, lambda t: (t + torch.from_numpy(w).permute(2, 1, 0)) ** 2)
    assert g.count() == {"add": 1, "mul": 1}
    assert dict(ctx.stats) == {"canonicalize.drop_dropout_identity": 1, "canonicalize.folded": 1,
                               "canonicalize.nodes": 1, "canonicalize.erased": 1}


@pytest.mark.parametrize("form", ["torch-export", "half-first", "times-inverse-sqrt2"])
def test_gelu_written_with_erf_becomes_gelu(apply, form):
    """ONNX's GELU before opset 20 (torch's export, and our own ONNX emitter's grouping) is one gelu."""
    g = Graph()
    x = g.add_input("x", TensorType(SHAPE))
    c = lambda v: g.const(np.float32(v), "c")  # noqa: E731
    scaled = g.op("mul", [x, c(math.sqrt(0.5))]) if form == "times-inverse-sqrt2" else g.op("div", [x, c(math.sqrt(2))])
    t = g.op("add", [c(1.0), g.op("erf", [scaled])])
    g.outputs = [g.op("mul", [g.op("mul", [x, t]), c(0.5)]) if form != "half-first" else
                 g.op("mul", [g.op("mul", [c(0.5), x]), t])]
    a = rng.standard_normal(SHAPE).astype(np.float32) * 4
    _, (out,) = apply(g, "canonicalize", a)  # which also checks it against the erf form (1e-5)
    np.testing.assert_allclose(out, torch.nn.functional.gelu(torch.from_numpy(a)).numpy(), rtol=1e-6, atol=1e-6)
    assert g.count() == {"gelu": 1}


def test_almost_gelu_stays(apply):
    g = Graph()
    x = g.add_input("x", TensorType(SHAPE))
    t = g.op("add", [g.op("erf", [g.op("div", [x, g.const(np.float32(1.5), "c")])]), g.const(np.float32(1), "one")])
    g.outputs = [g.op("mul", [g.op("mul", [x, t]), g.const(np.float32(0.5), "half")])]
    canon(apply, g, lambda t: t * (1 + torch.erf(t / 1.5)) * 0.5)
    assert g.count()["erf"] == 1 and "gelu" not in g.count()
