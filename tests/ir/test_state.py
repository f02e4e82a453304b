"""States in the IR: a running sum kept across invocations, checked by the verifier, printed and
parsed back, carried by the interpreter's Session (and set back by reset), kept out of the arena
by the memory planner and alive through dce and clone."""
import numpy as np
import pytest

from mcuforge.analysis.memory import plan_memory
from mcuforge.errors import VerifyError
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import Session, run
from mcuforge.ir.parser import parse
from mcuforge.ir.types import DType, TensorType
from mcuforge.ir.verify import verify


def running_sum() -> Graph:
    """y = x + s; s <- y, s starting at 1: y after k calls is 1 + the sum of the k inputs."""
    g = Graph("running_sum")
    x = g.add_input("x", TensorType((1, 4), DType.f32))
    s = g.add_state("s", TensorType((1, 4), DType.f32), np.ones((1, 4)))
    y = g.op("add", [x, s], name="y")
    g.set_state_write(s, y)
    g.outputs = [g.op("relu", [y], name="out")]
    return g


def test_session_carries_the_state_and_reset_starts_again():
    g = running_sum()
    verify(g)
    xs = [np.full((1, 4), k, np.float32) for k in (1, 2, 3)]
    session = Session(g)
    assert [float(session(x)[0][0, 0]) for x in xs] == [2.0, 4.0, 7.0]
    session.reset()
    assert float(session(xs[0])[0][0, 0]) == 2.0
    assert float(run(g, xs[2])[0][0, 0]) == 4.0  # without a session: one call from the initial values


def test_text_form_round_trips():
    g = running_sum()
    text = str(g)
    assert "%s = state f32[1,4] [1.0, 1.0, 1.0, 1.0]" in text and "update %s = %y" in text
    back = parse(text)
    assert str(back) == text and back.states[0].write is back.find("y").output


def test_verifier_checks_every_state():
    g = running_sum()
    g.states[0].write = None
    with pytest.raises(VerifyError, match="state %s has no write"):
        verify(g)
    g = running_sum()
    g.set_state_write(g.states[0].read, g.inputs[0])  # x: of the state's type, fine
    verify(g)
    h = Graph()
    x = h.add_input("x", TensorType((1, 4), DType.f32))
    s = h.add_state("s", TensorType((1, 2), DType.f32))
    h.set_state_write(s, x)
    h.outputs = [x]
    with pytest.raises(VerifyError, match=r"state %s is f32\[1,2\] but is written from %x: f32\[1,4\]"):
        verify(h)


def test_state_outlives_dce_and_clone():
    g = running_sum()
    g.outputs = [g.inputs[0]]  # only the state's write still needs the add
    assert g.dce() == 1 and g.count("add") == 1
    c = g.clone()
    verify(c)
    assert c.states[0].write.producer.op == "add" and c.states[0].init is g.states[0].init


def test_states_live_in_their_own_buffer():
    g = running_sum()
    plan = plan_memory(g, alignment=16)
    assert plan.state_offsets == {"s": 0} and plan.state_bytes == 16
    assert "s" not in plan.offsets and plan.state_commits == {"s": 0}  # copied in right after the add


def test_a_write_is_committed_after_the_last_reader_of_the_old_value():
    g = running_sum()
    late = g.op("mul", [g.states[0].read, g.states[0].read], name="late")  # reads the old s after the relu
    g.outputs.append(late)
    plan = plan_memory(g, alignment=16)
    assert plan.schedule == ["y", "out", "late"] and plan.state_commits == {"s": 2}
    assert plan.lifetimes["y"] == (0, 2)  # kept until the copy


def test_rewrites_keep_a_state_write_whole():
    """fuse would put the relu into the add, which writes the state: it must not."""
    from mcuforge.passes.manager import PassManager
    from mcuforge.passes.pipelines import resolve
    g = running_sum()
    PassManager(resolve("float")).run(g)
    assert g.count("relu") == 1
    session = Session(g)
    assert [float(session(np.full((1, 4), -k, np.float32))[0][0, 0]) for k in (2, 1)] == [0.0, 0.0]
    assert float(session.state["s"][0, 0]) == -2.0
