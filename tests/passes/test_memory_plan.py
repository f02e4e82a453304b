"""memory-plan on every zoo model after to-nhwc and schedule: a checked plan at the lower bound,
and the model run inside the planned arena (as the generated C does) equal to the interpreter."""
import numpy as np
import pytest

from mcuforge import zoo
from mcuforge.analysis.memory import check_plan, format_timeline, plan_memory, run_in_arena
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager


def planned(float_zoo, name, **options):
    g, xs = float_zoo(name)
    ctx = PassManager(["to-nhwc", "schedule", ("memory-plan", options)], debug=True).run(g)
    return g, xs, ctx, ctx.plan


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_plan_reaches_the_lower_bound_and_runs_in_its_arena(float_zoo, name):
    g, xs, ctx, plan = planned(float_zoo, name)
    check_plan(plan)
    assert plan.schedule == [n.name for n in g.nodes]
    assert plan.arena_bytes == plan.lower_bound_bytes == ctx.schedule.peak
    assert ctx.stats["memory-plan.arena_bytes"] == plan.arena_bytes
    activations = [v for v in [*g.inputs, *(v for n in g.nodes for v in n.outputs)]]
    assert set(plan.offsets) == {v.name for v in activations}
    assert plan.arena_bytes < sum(v.type.nbytes for v in activations)
    for got, want in zip(run_in_arena(g, plan, *xs), run(g, *xs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_views_and_in_place_adds_share_bytes(float_zoo):
    g, xs, _, plan = planned(float_zoo, "resnet8")
    adds = [n for n in g.nodes if n.op == "add"]
    assert len(adds) == 3 and all(plan.aliases[n.name] in {v.name for v in n.inputs} for n in adds)
    (flatten,) = [n for n in g.nodes if n.op == "reshape"]
    assert plan.offsets[flatten.name] == plan.offsets[flatten.inputs[0].name]
    _, _, _, separate = planned(float_zoo, "resnet8", inplace=False)
    check_plan(separate)
    assert set(separate.aliases) == {flatten.name} and separate.arena_bytes >= plan.arena_bytes


def test_channel_concat_writes_its_inputs_in_place_in_nchw(float_zoo):
    """NCHW with one image: the fire modules' expand convs write straight into their concat."""
    g, xs = float_zoo("squeezenet1_1")
    plan = plan_memory(g)
    check_plan(plan)
    for cat in (n for n in g.nodes if n.op == "concat"):
        offset = plan.offsets[cat.name]
        for v in cat.inputs:
            assert plan.aliases[v.name] == cat.name and plan.offsets[v.name] == offset
            offset += v.type.nbytes
    for got, want in zip(run_in_arena(g, plan, *xs), run(g, *xs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_scratch_buffers_are_planned_for_their_step(float_zoo):
    g, xs = float_zoo("resnet8")
    ctx = PassManager(["to-nhwc", "schedule"]).run(g)
    ctx.scratch = lambda n: 4 * n.inputs[1].type.numel if n.op == "conv2d" else 0  # e.g. im2col
    PassManager(["memory-plan"]).run(g, ctx)
    plan = ctx.plan
    check_plan(plan)
    convs = [(i, n) for i, n in enumerate(g.nodes) if n.op == "conv2d"]
    assert all(plan.lifetimes[f"{n.name}.scratch"] == (i, i) for i, n in convs)
    assert plan.lower_bound_bytes > ctx.schedule.peak
    for got, want in zip(run_in_arena(g, plan, *xs), run(g, *xs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_timeline_draws_every_step(float_zoo):
    g, _, _, plan = planned(float_zoo, "tiny_cnn")
    text = format_timeline(plan, width=40)
    rows = [line for line in text.splitlines() if line[:4].strip().isdigit()]
    assert [r.split()[1] for r in rows] == [n.name[:24] for n in g.nodes]
    assert all(len(r.split("|")[1]) == 40 for r in rows)
    assert f"arena {plan.arena_bytes:,} B" in text and "legend:" in text
