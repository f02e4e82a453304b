"""Graph mutation API: use lists, replacement, erasure, topological order, clone."""
import numpy as np
import pytest

from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType
from mcuforge.ir.verify import verify


def chain(n=3):
    g = Graph("chain")
    x = g.add_input("x", TensorType((1, 4)))
    v = x
    for _ in range(n):
        v = g.op("relu", [v])
    g.outputs = [v]
    return g, x


def test_use_lists_follow_mutation():
    g, x = chain(2)
    r1, r2 = g.nodes
    assert x.users == [r1] and r1.output.users == [r2]
    s = g.op("sigmoid", [x], before=r2)
    g.set_input(r2, 0, s)
    assert r1.output.users == [] and s.users == [r2]
    g.erase(r1)
    verify(g)
    assert [n.op for n in g.nodes] == ["sigmoid", "relu"]


def test_erase_refuses_used_node():
    g, _ = chain(2)
    with pytest.raises(ValueError, match="still used"):
        g.erase(g.nodes[0])


def test_replace_all_uses_updates_outputs_and_dce():
    g, x = chain(3)
    last = g.nodes[-1]
    g.replace_all_uses(last.output, x)
    assert g.outputs == [x]
    assert g.dce() == 3 and len(g) == 0
    verify(g)


def test_toposort_restores_order_after_append():
    g, x = chain(1)
    relu = g.nodes[0]
    t = g.op("tanh", [x])  # appended after relu, then made its operand
    g.set_input(relu, 0, t)
    g.toposort()
    assert [n.op for n in g.nodes] == ["tanh", "relu"]
    verify(g)


def test_toposort_detects_cycles():
    g, x = chain(2)
    a, b = g.nodes
    g.set_input(a, 0, b.output)
    with pytest.raises(ValueError, match="cycle"):
        g.toposort()


def test_clone_is_independent_and_shares_constants():
    g = Graph()
    x = g.add_input("x", TensorType((1, 2)))
    c = g.const(np.ones((1, 2)), "c")
    g.outputs = [g.op("add", [x, c])]
    h = g.clone()
    assert str(h) == str(g)
    h.replace_all_uses(h.outputs[0], h.inputs[0])
    h.dce()
    assert len(g) == 1 and len(h) == 0
    assert h.constants() == [] and g.constants()[0].data is c.data


def test_constants_are_read_only_float32():
    g = Graph()
    c = g.const(np.arange(3.0), "c")
    assert c.dtype.value == "f32" and not c.data.flags.writeable


def test_unique_names():
    g = Graph()
    names = [g.unique_name("a") for _ in range(3)] + [g.unique_name("a/b c")]
    assert names == ["a", "a_1", "a_2", "a_b_c"]


def test_op_builder_checks_attrs():
    g, x = chain(0)
    with pytest.raises(KeyError, match="needs attribute 'perm'"):
        g.op("transpose", [x])
    with pytest.raises(KeyError, match="no attribute"):
        g.op("relu", [x], {"alpha": 1.0})
