"""TFLite resource variables and CALL_ONCE imported as IR states: the four microWakeWord models of
the `pymicro-wakeword` wheel, run frame after frame in the interpreter, byte-exact to TFLite Micro
running the files with their state carried; and the files the importer refuses."""
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from mcuforge.errors import UnsupportedOpError
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir.interpreter import Session
from mcuforge.ir.verify import verify
from tests.support import wakeword

STATES = {"alexa": 6, "hey_jarvis": 6, "hey_mycroft": 6, "okay_nabu": 6}


@pytest.mark.parametrize("name", wakeword.NAMES)
def test_micro_wake_word_matches_tflite_micro_over_a_stream(name):
    data, probe = wakeword.model(name), wakeword.probe(wakeword.model(name))
    g, gp = load_tflite(data), load_tflite(probe)
    verify(g)
    assert len(g.states) == STATES[name]
    assert all(s.write is not s.read and s.init.dtype == np.int8 for s in g.states)
    frames = wakeword.frames()
    want, want_probe = wakeword.tflm_frames(data, frames), wakeword.tflm_frames(probe, frames)
    session, session_probe = Session(g), Session(gp)
    for k, (x, w, wp) in enumerate(zip(frames, want, want_probe, strict=True)):
        np.testing.assert_array_equal(session(*x)[0], w[0], err_msg=f"{name}, frame {k}")
        for i, (got, ref) in enumerate(zip(session_probe(*x), wp, strict=True)):
            np.testing.assert_array_equal(got, ref, err_msg=f"{name}, frame {k}, output {i}")
    assert len({int(w[-1].ravel()[0]) for w in want_probe}) > 5  # the logits vary: the state is exercised
    session.reset()
    np.testing.assert_array_equal(session(*frames[0])[0], want[0][0])


def _edited(edit) -> bytes:
    """alexa.tflite after `edit(model, main subgraph, init subgraph)`."""
    m = fb.ModelT.InitFromPackedBuf(wakeword.model("alexa"), 0)
    edit(m, m.subgraphs[0], m.subgraphs[1])
    return wakeword.pack(m)


def test_initialisation_that_computes_is_refused():
    def edit(m, main, init):  # its first assignment's value no longer a constant
        m.buffers.append(fb.BufferT())
        init.tensors[init.operators[1].inputs[1]].buffer = len(m.buffers) - 1
    with pytest.raises(UnsupportedOpError, match="CALL_ONCE: its subgraph 'NoOp' does more than assign constants"):
        load_tflite(_edited(edit))


def test_a_resource_without_its_handle_is_refused():
    def edit(m, main, init):  # the first VAR_HANDLE of the model goes
        main.operators = [o for i, o in enumerate(main.operators) if i != 1]
    with pytest.raises(UnsupportedOpError) as err:
        load_tflite(_edited(edit))
    assert "READ_VARIABLE: uses a resource no VAR_HANDLE of this subgraph made" in str(err.value)
    assert "ASSIGN_VARIABLE: uses a resource" in str(err.value)
