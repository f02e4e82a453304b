"""Every bundled model end to end: trace, default float pipeline (BN folded, activations fused),
ONNX out, onnxruntime vs torch within 1e-4, and back in through ONNX import."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

import mcuforge
from mcuforge import zoo


def close(actual, expected, rtol=1e-4):
    scale = max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module", params=zoo.names())
def compiled(request, tmp_path_factory):
    model, inputs = zoo.get(request.param)
    with torch.no_grad():
        ref = model(*inputs)
    refs = [r.numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    art = mcuforge.compile(model, inputs, out_dir=tmp_path_factory.mktemp(request.param), debug=True)
    return art, [x.numpy() for x in inputs], refs


def test_pipeline_folds_and_fuses(compiled):
    art, _, _ = compiled
    counts = art.graph.count()
    assert "batch_norm" not in counts, counts
    assert "dropout" not in counts and "identity" not in counts, counts
    # every relu/relu6 sits on a producer that can absorb it, so none is left standalone
    assert counts.get("relu", 0) + counts.get("relu6", 0) == 0, counts
    assert not [m for m in art.report.missed if m.pass_name == "fold-bn"], art.report.missed


def test_interpreter_matches_torch(compiled):
    art, xs, refs = compiled
    for got, ref in zip(art.run(*xs), refs, strict=True):
        close(got, ref)


def test_onnxruntime_matches_torch(compiled):
    art, xs, refs = compiled
    sess = ort.InferenceSession(str(art.files["onnx"]), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
    for got, ref in zip(sess.run(None, feeds), refs, strict=True):
        close(got, ref)


def test_onnx_round_trip(compiled):
    art, xs, refs = compiled
    back = mcuforge.load_onnx(art.files["onnx"])
    again = mcuforge.compile(back, emit=())
    assert again.graph.count() == art.graph.count()
    for got, ref in zip(again.run(*xs), refs, strict=True):
        close(got, ref)
