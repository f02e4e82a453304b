"""Names from the model never break generated code or paths: value and graph names with '../',
quotes, newlines, comment ends, trigraphs, backslashes, HTML and non-ASCII become sanitized text
in the C (which builds with -Werror and computes the interpreter's bytes), the file names stay
the fixed ones, and report.html shows them escaped."""
import subprocess

import numpy as np
import pytest

import mcuforge
from mcuforge import zoo
from mcuforge.ir.early_exit import quantize_input
from mcuforge.ir.interpreter import run

HOSTILE = ["../../etc/passwd", "a\"quote's", "new\nline", "end */ comment /* again", "ünïcødé ✓", "back\\slash\\",
           "#define X 1", "??/ trigraph", "<script>alert(1)</script>", "tab\there"]


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_hostile_names(tmp_path, quantize):
    model, (x,) = zoo.get("tiny_cnn")
    graph = mcuforge.trace(model, (x,))
    for i, v in enumerate(v for n in graph.nodes for v in n.outputs):
        v.name = f"{HOSTILE[i % len(HOSTILE)]}{i}"
    graph.inputs[0].name = "<b>in</b> */ put\n"
    graph.name = '../evil"graph*/'
    calibration = np.random.default_rng(0).standard_normal((4, *x.shape)).astype(np.float32)
    art = mcuforge.compile(graph, emit=("c", "onnx", "tflite"), out_dir=tmp_path / "out", quantize=quantize,
                           calibration=calibration if quantize else None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c", "model.onnx", "model.tflite", "report.html",
                                                                  "report.md"]
    c_dir = art.files["c"]
    for name in ("model.c", "model.h", "main_host.c", "main_qemu.c"):
        text = (c_dir / name).read_text()
        assert text.isascii() and "??" not in text and "end */ comment" not in text and 'a"quote' not in text
    assert '"<b>in</b> _/ put_"' in (c_dir / "model.h").read_text()  # the input's name, sanitized, in the docs
    subprocess.run(["make", "-s", "host"], cwd=c_dir, check=True, capture_output=True)
    xq = quantize_input(art.graph.inputs[0], x.numpy()) if quantize else x.numpy()
    done = subprocess.run([str(c_dir / "model_host")], input=xq.tobytes(), capture_output=True, check=True)
    want = run(art.graph, xq)[0]
    got = np.frombuffer(done.stdout, want.dtype).reshape(want.shape)
    if quantize:
        assert np.array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "<b>in</b>" not in html and "&lt;b&gt;in&lt;/b&gt;" in html
