"""States out to TFLite as resource variables (CALL_ONCE of an initialisation subgraph, VAR_HANDLE,
READ_VARIABLE, ASSIGN_VARIABLE where the memory plan commits the write): TFLite Micro runs the
re-emitted microWakeWord models frame after frame as it runs the originals, with our offline plan
or its own, and the files import back to the same states."""
import numpy as np
import pytest

import mcuforge
from mcuforge.backends.tflite.emit import to_tflite
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir.interpreter import Session
from tests.support import wakeword


@pytest.mark.parametrize("name", wakeword.NAMES)
def test_re_emitted_micro_wake_word_runs_in_tflite_micro_as_the_original(name):
    probe = wakeword.probe(wakeword.model(name))
    art = mcuforge.compile(load_tflite(probe), emit=())
    frames = wakeword.frames(seed=3)
    want = wakeword.tflm_frames(probe, frames)
    for plan in (None, art.plan):
        ours = to_tflite(art.graph, plan)
        for k, (got, ref) in enumerate(zip(wakeword.tflm_frames(ours, frames), want, strict=True)):
            for i, (a, b) in enumerate(zip(got, ref, strict=True)):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}, offline plan {plan is not None}, frame {k}, "
                                                            f"output {i}")
    back = load_tflite(to_tflite(art.graph, art.plan))
    assert [s.read.name for s in back.states] == [s.read.name for s in art.graph.states]
    assert all(np.array_equal(a.init, b.init) for a, b in zip(back.states, art.graph.states))
    session = Session(back)
    for x, ref in zip(frames, want):
        for a, b in zip(session(*x), ref, strict=True):
            np.testing.assert_array_equal(a, b)
