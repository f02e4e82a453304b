"""The memory planner's pieces: placement algorithms on random lifetimes (hypothesis), against a
brute-force search over offsets; alias rules on small graphs run in their arenas; check_plan on
broken plans; the timeline."""
import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuforge.analysis import memory
from mcuforge.analysis.memory import Buffer, MemoryPlan, PlanError, check_plan, format_timeline, plan_memory
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import TensorType

rng = np.random.default_rng(0)


@st.composite
def lifetimes(draw, max_buffers=12, max_size=64, steps=10):
    out = []
    for i in range(draw(st.integers(1, max_buffers))):
        first = draw(st.integers(0, steps - 1))
        out.append(Buffer(f"b{i}", draw(st.integers(1, max_size)), first, draw(st.integers(first, steps - 1))))
    return out


def as_plan(buffers, offsets, alignment, algorithm="test"):
    return MemoryPlan(arena_bytes=max(offsets[b.name] + b.size for b in buffers),
                      lower_bound_bytes=memory.lower_bound(buffers), alignment=alignment, algorithm=algorithm,
                      schedule=[], offsets=dict(offsets), sizes={b.name: b.size for b in buffers},
                      lifetimes={b.name: (b.first, b.last) for b in buffers}, aliases={})


def brute_force(buffers):
    """The least arena over every assignment of offsets (alignment 1)."""
    top = sum(b.size for b in buffers)
    best = top
    for offsets in itertools.product(*(range(top - b.size + 1) for b in buffers)):
        arena = max(o + b.size for o, b in zip(offsets, buffers))
        if arena < best and all(o1 + b1.size <= o2 or o2 + b2.size <= o1 or b1.last < b2.first or b2.last < b1.first
                                for (o1, b1), (o2, b2) in itertools.combinations(zip(offsets, buffers), 2)):
            best = arena
    return best


def arena(buffers, offsets):
    return max(offsets[b.name] + b.size for b in buffers)


@settings(max_examples=80, deadline=None)
@given(lifetimes(), st.sampled_from([1, 4, 16]))
def test_every_algorithm_gives_a_valid_plan_never_below_the_bound(buffers, alignment):
    results = {"size": memory.greedy_by_size(buffers, alignment), "breadth": memory.greedy_by_breadth(buffers, alignment)}
    results["two-ended"] = memory.two_ended(buffers, alignment, min(arena(buffers, o) for o in results.values()))
    algorithm, results["best"] = memory.best_offsets(buffers, alignment)
    for name, offsets in results.items():
        if offsets is not None:
            plan = as_plan(buffers, offsets, alignment, name)
            check_plan(plan)
            assert plan.arena_bytes >= plan.lower_bound_bytes
    assert arena(buffers, results["best"]) == min(arena(buffers, o) for o in results.values() if o is not None)


@settings(max_examples=60, deadline=None)
@given(lifetimes(max_buffers=7), st.sampled_from([1, 16]))
def test_exact_solver_is_never_beaten_by_the_heuristics(buffers, alignment):
    heuristics = [memory.greedy_by_size(buffers, alignment), memory.greedy_by_breadth(buffers, alignment)]
    heuristics.append(memory.two_ended(buffers, alignment, min(arena(buffers, o) for o in heuristics)))
    best = min(arena(buffers, o) for o in heuristics if o is not None)
    offsets = memory.exact(buffers, alignment, best + 1, budget=1_000_000)
    check_plan(as_plan(buffers, offsets, alignment))
    assert arena(buffers, offsets) <= best


@settings(max_examples=40, deadline=None)
@given(lifetimes(max_buffers=4, max_size=3, steps=4))
def test_exact_solver_finds_the_brute_force_optimum(buffers):
    offsets = memory.exact(buffers, 1, sum(b.size for b in buffers) + 1, budget=100_000)
    assert arena(buffers, offsets) == brute_force(buffers)


def test_exact_solver_beats_the_greedy_placements():
    # b0 and b3 never meet, but sorting by size puts b0 where b3 must go
    buffers = [Buffer("b0", 6, 0, 1), Buffer("b1", 5, 1, 2), Buffer("b2", 4, 2, 3), Buffer("b3", 5, 3, 4)]
    greedy = min(arena(buffers, f(buffers, 1)) for f in (memory.greedy_by_size, memory.greedy_by_breadth))
    algorithm, offsets = memory.best_offsets(buffers, 1)
    assert arena(buffers, offsets) == memory.lower_bound(buffers) == 11 < greedy
    assert algorithm in ("two-ended", "branch-and-bound")


def graph_of(build, shape=(1, 4, 3, 3)):
    g = Graph()
    g.outputs = build(g, g.add_input("x", TensorType(shape)))
    x = rng.standard_normal(shape).astype(np.float32)
    plan = plan_memory(g)
    check_plan(plan)
    for got, want in zip(memory.run_in_arena(g, plan, x), run(g, x), strict=True):
        np.testing.assert_array_equal(got, want)
    return g, plan


def w(g, cout=4, cin=4):
    return g.const(rng.standard_normal((cout, cin, 1, 1)), "w")


CONV = dict(stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1])


def test_activation_and_add_work_in_place_only_on_a_dying_input():
    def build(g, x):
        c = g.op("conv2d", [x, w(g)], CONV)
        r = g.op("relu", [c])  # c dies here: in place
        s = g.op("sigmoid", [r])  # r is used again below: not in place
        a = g.op("add", [s, r])  # r dies here, s does not
        return [a, g.op("mul", [s, g.const(np.float32(2), "two")]), g.op("tanh", [a])]  # a is an output: kept
    _, plan = graph_of(build)
    assert plan.aliases == {"relu": "conv2d", "add": "relu", "mul": "sigmoid"}


def test_concat_takes_its_inputs_in_place_only_when_slices_are_contiguous():
    def build(g, x):
        a, b = (g.op("conv2d", [x, w(g)], CONV) for _ in range(2))
        shared = g.op("conv2d", [x, w(g)], CONV)
        return [g.op("concat", [a, b, shared], {"axis": 1}), g.op("relu", [shared]),
                g.op("concat", [g.op("relu", [x]), g.op("sigmoid", [x])], {"axis": 2})]
    g, plan = graph_of(build)
    assert plan.aliases["conv2d"] == plan.aliases["conv2d_1"] == "concat" and "conv2d_2" not in plan.aliases
    assert plan.offsets["conv2d_1"] == plan.offsets["concat"] + 4 * 36
    assert "concat_1" not in plan.aliases.values()  # axis 2 of (1, 4, 3, 3): strided slices
    _, nchw = graph_of(lambda g, x: [g.op("concat", [g.op("relu", [x]), g.op("tanh", [x])], {"axis": 1})],
                       shape=(2, 4, 3, 3))
    assert "concat" not in nchw.aliases.values()  # two images: each input is two slices


def test_in_place_lowers_the_bound_and_views_cost_nothing():
    def build(g, x):
        y = x
        for op in ("relu", "sigmoid", "tanh", "reshape"):
            y = g.op(op, [y], {"shape": [1, 36]} if op == "reshape" else {})
        return [y]
    _, plan = graph_of(build)
    assert plan.lower_bound_bytes == plan.arena_bytes == 144  # one buffer for x and everything after


def broken(kind):
    plan = as_plan([Buffer("a", 32, 0, 1), Buffer("b", 32, 1, 2), Buffer("c", 16, 2, 2)],
                   {"a": 0, "b": 32, "c": 0}, 16)
    check_plan(plan)
    if kind == "overlap":
        plan.offsets["b"] = 16
    elif kind == "alignment":
        plan.offsets["c"] = 8
    elif kind == "outside":
        plan.arena_bytes = 48
    elif kind == "alias":
        plan.aliases["c"] = "a"
        plan.offsets["c"] = 24
    elif kind == "cycle":
        plan.aliases.update({"c": "a", "a": "c"})
    elif kind == "bound":
        plan.lower_bound_bytes = 100
    return plan


@pytest.mark.parametrize("kind, message", [("overlap", "overlap while both are live"), ("alignment", "not aligned"),
                                           ("outside", "not inside the arena"), ("alias", "is not inside a"),
                                           ("cycle", "loops"), ("bound", "below the lower bound")])
def test_check_plan_catches_broken_plans(kind, message):
    with pytest.raises(PlanError, match=message):
        check_plan(broken(kind))


def test_timeline_picture():
    buffers = [Buffer("in", 32, 0, 1), Buffer("mid", 32, 1, 2), Buffer("out", 16, 2, 2)]
    plan = as_plan(buffers, {"in": 0, "mid": 32, "out": 0}, 16)
    plan.schedule = ["first", "second", "third"]
    assert format_timeline(plan, width=8).splitlines()[2:] == [
        "   0  first                    |aaaa....| 32",
        "   1  second                   |aaaacccc| 64",
        "   2  third                    |bb..cccc| 48",
        "legend: a=in @0 32 B; b=out @0 16 B; c=mid @32 32 B",
    ]


def test_an_input_overlaps_its_output_where_the_rule_allows_and_it_pays():
    """A backend's overlap rule: conv's input dies there and shares the output's buffer, `lag`
    bytes after it (the group's extent: max(output, lag + input)), when that lowers the peak; a
    plan that puts it closer fails check_plan; a merge that would raise a later step is skipped."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 1, 3, 3)))  # 36 bytes; every other activation 144
    g.outputs = [g.op("conv2d", [g.op("relu", [g.op("conv2d", [x, w(g, 4, 1)], CONV)]), w(g)], CONV)]
    rule = {"conv2d_1": 16}
    plan = plan_memory(g, overlap=lambda n: rule.get(n.name), alignment=16)
    check_plan(plan)
    assert plan.overlaps == {"conv2d": ("conv2d_1", 16)} and plan.aliases == {"relu": "conv2d", "conv2d": "conv2d_1"}
    assert plan.offsets["relu"] - plan.offsets["conv2d_1"] == plan.offsets["conv2d"] - plan.offsets["conv2d_1"] == 16
    assert plan.arena_bytes == plan.lower_bound_bytes == 36 + 160  # x beside the shared 144 + 16 (not 2 x 144)
    x = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(memory.run_in_arena(g, plan, x)[0], run(g, x)[0])
    broken = dataclasses.replace(plan, offsets={**plan.offsets, "relu": plan.offsets["conv2d_1"] + 8,
                                                "conv2d": plan.offsets["conv2d_1"] + 8})  # (x moved out of the way)
    with pytest.raises(PlanError, match="conv2d starts 8 bytes after conv2d_1, but its kernel needs 16"):
        check_plan(broken)
    # a shared buffer of 300 + 144 bytes while conv2d lives beside x: more than it saves at conv2d_1
    assert plan_memory(g, overlap=lambda n: 300 if n.name == "conv2d_1" else None).overlaps == {}
