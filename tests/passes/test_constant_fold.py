"""constant-fold: constant subgraphs become constants computed by the interpreter."""
import numpy as np
import torch

from mcuforge.ir.graph import Graph
from mcuforge.ir.types import DType, QuantParams, TensorType

rng = np.random.default_rng(0)


def test_constant_subgraph_folds_in_one_sweep(apply):
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    w = rng.standard_normal((3, 2)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    wt = g.op("transpose", [g.const(w, "w")], {"perm": [1, 0]})
    shift = g.op("relu", [g.op("add", [g.const(b, "b"), g.const(np.float32(0.5), "half")])])
    g.outputs = [g.op("add", [g.op("mul", [x, wt]), shift])]
    a = rng.standard_normal((2, 3)).astype(np.float32)
    ctx, (out,) = apply(g, "constant-fold", a)
    assert g.count() == {"add": 1, "mul": 1}
    assert ctx.stats["constant-fold.folded"] == 3
    ref = torch.from_numpy(a) * torch.from_numpy(w).T + torch.relu(torch.from_numpy(b) + 0.5)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6)


def test_folded_constants_keep_the_declared_type(apply):
    g = Graph()
    x = g.add_input("x", TensorType((4,), DType.i8))
    q = QuantParams(0.5, 3)
    c = g.const(np.array([1, 2, 3, 4], np.int8), "c", dtype=DType.i8, quant=q)
    r = g.add_node("reshape", [c], {"shape": [2, 2]}, out_types=[TensorType((2, 2), DType.i8, q)]).output
    flat = g.op("reshape", [r], {"shape": [4]}, out_types=[TensorType((4,), DType.i8)])  # drops the quant
    g.outputs = [g.op("add", [x, flat]), r]
    apply(g, "constant-fold", np.arange(4, dtype=np.int8))
    assert g.count() == {"add": 1}
    folded_flat, folded_r = g.nodes[0].inputs[1], g.outputs[1]
    assert folded_flat.type == TensorType((4,), DType.i8) and folded_flat.data.dtype == np.int8
    assert folded_r.type == TensorType((2, 2), DType.i8, q) and folded_r.data.dtype == np.int8
    np.testing.assert_array_equal(folded_r.data, [[1, 2], [3, 4]])


def test_no_constants_no_change(apply):
    g = Graph()
    x = g.add_input("x", TensorType((3,)))
    g.outputs = [g.op("relu", [x])]
    ctx, _ = apply(g, "constant-fold", np.ones(3, np.float32))
    assert not ctx.stats["constant-fold.folded"] and g.count() == {"relu": 1}
