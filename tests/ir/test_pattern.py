"""Declarative patterns and the rewrite driver."""
import re

import numpy as np
import pytest
import torch

from mcuforge.ir import pattern
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.pattern import Match, Pat, Rule, rewrite
from mcuforge.ir.types import TensorType
from mcuforge.ir.verify import verify
from mcuforge.passes.base import PassContext

T = TensorType((2, 3))


def matches(p, v, g):
    return p.match(v, Match(g, v.producer))


def test_docstring_example_runs():
    code = re.search(r"Worked example.*?:\n\n(.*?)\n\n(?=\S)", pattern.__doc__, re.S).group(1)
    ns = {}
    exec(code.replace("\n    ", "\n").strip(), ns)
    g = Graph()
    x = g.add_input("x", T)
    y = g.op("relu", [g.op("relu", [g.op("div", [x, g.const(np.float32(2.0), "two")])])])
    g.outputs = [g.op("mul", [y, g.const(np.ones((1, 3), np.float32), "one")])]
    assert ns["simplify"](g, PassContext())
    verify(g)
    assert g.count() == {"mul": 1, "relu": 1}
    a = np.random.default_rng(0).standard_normal(T.shape).astype(np.float32)
    np.testing.assert_allclose(run(g, a)[0], torch.relu(torch.from_numpy(a) / 2).numpy(), rtol=1e-6)


def test_match_constraints():
    g = Graph()
    x, y = g.add_input("x", T), g.add_input("y", T)
    c = g.const(np.ones(3, np.float32), "c")
    xx = g.op("add", [x, x])
    xy = g.op("add", [x, y])
    conv_in = g.add_input("img", TensorType((1, 2, 4, 4)))
    w = g.const(np.ones((2, 2, 1, 1), np.float32), "w")
    conv = g.op("conv2d", [conv_in, w], dict(stride=(1, 1), pads=[0, 0, 0, 0], dilation=[1, 1]))
    xc = g.op("mul", [x, c])
    g.outputs = [xx, xy, conv, xc]
    same = Pat("add", [Pat.any("a"), Pat.any("a")])
    assert matches(same, xx, g) and not matches(same, xy, g)
    assert matches(Pat(("sub", "add")), xy, g) and not matches(Pat("sub"), xy, g)
    assert matches(Pat("conv2d", attrs={"stride": [1, 1], "act": "none"}), conv, g)  # tuple attr vs list
    assert not matches(Pat("conv2d", attrs={"act": "relu"}), conv, g)
    assert matches(Pat("conv2d", [Pat.any(), Pat.const()]), conv, g)
    assert not matches(Pat("conv2d", [Pat.any(), Pat.const(), Pat.const()]), conv, g)  # no bias
    assert matches(Pat("conv2d", [Pat.any(), ...]), conv, g)
    assert not matches(Pat("conv2d", [Pat.any()]), conv, g)  # all operands, unless `...`
    assert matches(Pat("mul", [Pat.any(const=False), Pat.const("k")]), xc, g)
    assert not matches(Pat("mul", [Pat.const(), Pat.any()]), xc, g)
    assert not matches(Pat("add", [Pat.any(one_use=True), Pat.any()]), xy, g)  # x has four users
    assert matches(Pat("add", [Pat.any(), Pat.any(one_use=True)]), xy, g)
    m = Match(g, xc.producer)
    assert Pat("mul", [Pat.any("x"), Pat.const("k", predicate=lambda v: v.shape == (3,))], name="r").match(xc, m)
    assert m["x"] is x and m["k"] is c and m.node("r") is xc.producer
    with pytest.raises(KeyError, match="no producer"):
        m.node("x")


def chain(n, op="relu"):
    g = Graph()
    v = g.add_input("x", T)
    for _ in range(n):
        v = g.op(op, [v])
    g.outputs = [v]
    return g


def test_driver_visits_each_node_a_bounded_number_of_times():
    n = 3000
    g = chain(n)
    visits, calls = [0], [0]

    def count(v):
        visits[0] += 1
        return False

    def drop_inner(g, m):
        calls[0] += 1
        return m["inner"]

    rules = [Rule(Pat("relu", predicate=count), lambda g, m: None),
             Rule(Pat("relu", [Pat("relu", name="inner")]), drop_inner)]
    assert rewrite(g, rules)
    assert g.count() == {"relu": 1} and calls[0] == n - 1
    assert visits[0] <= 3 * n


def test_driver_new_nodes_are_rewritten_again_and_order_stays_topological():
    n = 2000
    g = Graph()
    v = g.add_input("x", T)
    for i in range(n):
        v = g.op("reshape", [v], {"shape": [6] if i % 2 else [3, 2]})
    g.outputs = [g.op("relu", [v])]
    calls = [0]

    def merge(g, m):
        calls[0] += 1
        return m.replacement("reshape", [m["x"]], {"shape": m.root.attrs["shape"]})

    assert rewrite(g, [Rule(Pat("reshape", [Pat("reshape", [Pat.any("x")])]), merge)])
    verify(g)
    assert g.count() == {"relu": 1, "reshape": 1} and calls[0] == n - 1
    assert g.nodes[0].attrs["shape"] == [6]  # the last reshape's (n - 1 is odd)
    a = np.arange(6, dtype=np.float32).reshape(T.shape) - 3
    np.testing.assert_array_equal(run(g, a)[0], torch.relu(torch.from_numpy(a).reshape(6)).numpy())


def test_miss_reported_once_per_surviving_node_and_stats_counted():
    g = Graph()
    x = g.add_input("x", T)
    p = g.op("add", [x, x])
    r = g.op("relu", [p])  # declined while s uses p too, rewritten once s is gone
    s = g.op("mul", [p, g.const(np.zeros(T.shape, np.float32), "z")])
    t = g.op("relu", [r])  # declined, and again after r is replaced: its input has two users
    g.outputs = [g.op("relu6", [s]), t, g.op("relu6", [r])]
    ctx = PassContext(current_pass="t")

    def to_relu6(g, m):
        if len(m["p"].users) > 1:
            return m.miss(f"%{m['p'].name} has other users")
        return m.replacement("relu6", [m["p"]])

    rules = [Rule(Pat("relu", [Pat.any("p")]), to_relu6),
             Rule(Pat("mul", [Pat.any(), Pat.const("z")]), lambda g, m: m["z"], "zero")]
    assert rewrite(g, rules, ctx)
    verify(g)
    assert g.count() == {"add": 1, "relu": 1, "relu6": 3}
    (missed,) = ctx.missed
    assert (missed.node, missed.op, missed.pass_name) == (t.name, "relu", "t")
    assert missed.reason == f"%{t.producer.inputs[0].name} has other users"
    assert ctx.stats == {"t.to_relu6": 1, "t.zero": 1}


def test_rewrite_keeps_outputs_distinct_from_inputs():
    g = Graph()
    x = g.add_input("x", T)
    g.outputs = [g.op("identity", [x]), g.op("relu", [x])]
    fwd = Rule(Pat("identity", [Pat.any("x")]), lambda g, m: m["x"])
    assert not rewrite(g, [fwd])
    assert g.count() == {"identity": 1, "relu": 1}


def test_rules_that_undo_each_other_raise():
    g = chain(2)
    loop = Rule(Pat("relu", [Pat.any("x")]), lambda g, m: m.replacement("relu", [m["x"]]))
    with pytest.raises(RuntimeError, match="fixpoint"):
        rewrite(g, [loop], max_rewrites=50)


def test_callback_returning_wrong_number_of_values_raises():
    g = chain(1)
    bad = Rule(Pat("relu", [Pat.any("x")]), lambda g, m: [m["x"], m["x"]])
    with pytest.raises(ValueError, match="returned 2 values"):
        rewrite(g, [bad])
