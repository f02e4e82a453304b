"""States in the generated C: the four microWakeWord models built for the host and for the
Cortex-M4 (under QEMU), run over a stream of frames, byte-exact to TFLite Micro running the files
with their state carried; the state buffer sits outside the arena, is documented in the header and
set back by `<prefix>_reset()`."""
import subprocess

import pytest

import mcuforge
from mcuforge.backends.c.bench import qemu_outputs
from mcuforge.backends.c.emit import emit_c
from mcuforge.backends.c.size import measure
from tests.support import wakeword
from tests.support.cbuild import host_make


@pytest.mark.parametrize("name", wakeword.NAMES)
def test_micro_wake_word_in_c_matches_tflite_micro(tmp_path, name):
    probe = wakeword.probe(wakeword.model(name))  # its outputs: the model's, the new states, the logits
    art = mcuforge.compile(mcuforge.load_tflite(probe), emit=())
    out = emit_c(art.graph, tmp_path / "c", plan=art.plan)
    frames = wakeword.frames(seed=1)
    want = [b"".join(y.tobytes() for y in ys) for ys in wakeword.tflm_frames(probe, frames)]
    stream = b"".join(x.tobytes() for xs in frames for x in xs)
    got = subprocess.run([host_make(out, "gcc"), "-b"], input=stream, capture_output=True, check=True).stdout
    assert got == b"".join(want)
    assert qemu_outputs(out, frames, stream=True) == want
    header = (out / "model.h").read_text()
    assert f"#define MODEL_STATE_SIZE {art.plan.state_bytes}u" in header and "void model_reset(void);" in header
    assert art.plan.state_bytes >= sum(s.read.type.nbytes for s in art.graph.states)
    assert not set(art.plan.offsets) & set(art.plan.state_offsets)  # no state in the arena
    assert f"state {art.plan.state_bytes:,} B outside the arena" in art.report.plan_summary()
    size = measure(out)
    assert size.state == art.plan.state_bytes and f"state {size.state:,} B" in str(size)
    assert size.ram >= art.plan.arena_bytes + art.plan.state_bytes


def test_reset_starts_the_stream_again(tmp_path):
    """A runner calling reset between two passes over the same frames writes them twice alike."""
    art = mcuforge.compile(mcuforge.load_tflite(wakeword.model("alexa")), emit=())
    out = emit_c(art.graph, tmp_path / "c", plan=art.plan)
    (out / "twice.c").write_text("""#include <stdio.h>
#include "model.h"
int main(void) {
    static int8_t x[MODEL_INPUT0_BYTES];
    uint8_t y[MODEL_OUTPUT0_BYTES];
    const void *in[] = {x};
    void *outs[] = {y};
    int pass, k;
    for (pass = 0; pass < 2; ++pass, model_reset())
        for (k = 0; k < 40; ++k) {
            if (fread(x, 1, sizeof x, stdin) != sizeof x) rewind(stdin);
            if (model_invoke(in, outs) != 0) return 1;
            fwrite(y, 1, sizeof y, stdout);
        }
    return 0;
}
""")
    subprocess.run(["gcc", "-O1", "-Ikernels", "-o", "twice", "twice.c", "model.c", *map(str, (out / "kernels").glob("*.c")),
                    "-lm"], cwd=out, check=True)
    frames = wakeword.frames(seed=2)[:40]
    got = subprocess.run([out / "twice"], input=b"".join(x.tobytes() for xs in frames for x in xs),
                         capture_output=True, check=True).stdout
    want = b"".join(y.tobytes() for ys in wakeword.tflm_frames(wakeword.model("alexa"), frames) for y in ys)
    assert got == want + want
