"""IR -> ONNX: every op as a one-op graph, checked by onnx.checker, run by onnxruntime and compared
with torch (the oracle) and with the reference interpreter; channel-last layouts too."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from support.op_cases import CASES, T, build, last, rnd

from mcuforge.backends.onnx.emit import LOWERINGS, save_onnx, to_onnx
from mcuforge.errors import UnsupportedOpError, UsageError
from mcuforge.ir import interpreter, ops


def run_ort(model, arrays):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), arrays)})


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_torch_and_interpreter(name):
    g, ref, cl, opset = build(name)
    model = to_onnx(g, opset)
    onnx.checker.check_model(model, full_check=True)
    arrays = [rnd(*v.shape) for v in g.inputs]
    got = run_ort(model, arrays)
    torch_in = [T(np.moveaxis(a, -1, 1)) if cl else T(a) for a in arrays]
    want = ref(*torch_in)
    want = [t.numpy() for t in (want if isinstance(want, tuple) else (want,))]
    want = [last(w) if cl else w for w in want]
    assert len(got) == len(want)
    for o, w in zip(got, want):
        np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-5)
    for o, w in zip(interpreter.run(g, *arrays), got):
        np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-5)


def test_every_op_has_a_lowering_and_a_case():
    lowered = set(ops.OPS) - ops.with_tag("integer")  # integer ops export as their QDQ form instead
    assert set(LOWERINGS) == lowered
    assert {n.split("-")[0] for n in CASES} == lowered


def test_model_metadata_names_and_save(tmp_path):
    g, *_ = build("conv2d")
    model = to_onnx(g)
    assert model.producer_name == "mcuforge" and model.producer_version
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["x0"]
    out = model.graph.output[0]
    assert out.name == g.outputs[0].name
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == list(g.outputs[0].shape)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]  # the fused act after the op
    assert {i.name for i in model.graph.initializer} >= {v.name for v in g.constants()}
    path = save_onnx(g, tmp_path / "m.onnx", opset=18)
    assert onnx.load(path).opset_import[0].version == 18
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_channel_last_conv_transposes_weights_ahead_of_time():
    g, *_ = build("conv2d-last")
    types = [n.op_type for n in to_onnx(g).graph.node]
    assert types == ["Transpose", "Conv", "Transpose", "Relu"]


def test_bad_opset_and_missing_lowerings_are_reported(monkeypatch):
    g, *_ = build("layer_norm")
    with pytest.raises(UsageError, match="opset >= 17"):
        to_onnx(g, 16)
    with pytest.raises(UsageError, match="opset 12"):
        to_onnx(g, 12)
    monkeypatch.delitem(LOWERINGS, "layer_norm")
    with pytest.raises(UnsupportedOpError, match="layer_norm") as err:
        to_onnx(g)
    assert [i.node for i in err.value.items] == [g.nodes[0].name]


# What the emitter writes as several ONNX nodes (beyond fused activations, dropout as Identity and
# channel-last transposes, which `expected_counts` accounts for) comes back as several IR ops.
DECOMPOSED = {"gelu-opset17", "gelu-tanh-opset17", "avg_pool2d-ceil-cip1", "avg_pool2d-ceil-cip1-last",
              "linear-rank3-nobias-dynamic-weight", "batch_norm-axis-last",
              *(n for n in CASES if n.startswith("adaptive_avg_pool") and "(1, 1)" not in n)}


def expected_counts(g):
    counts = {}
    for n in g.nodes:
        for op in ["identity" if n.op == "dropout" else n.op, n.attrs.get("act", "none")] + \
                ["transpose"] * 2 * ("layout" in n.attrs and n.attrs["layout"][1] != "C"):
            if op != "none":
                counts[op] = counts.get(op, 0) + 1
    return dict(sorted(counts.items()))


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_through_onnx_keeps_ops_and_numbers(name):
    from mcuforge.frontends.onnx import load_onnx
    g, _, _, opset = build(name)
    back = load_onnx(to_onnx(g, opset))
    if name not in DECOMPOSED:
        assert back.count() == expected_counts(g)
    assert [tuple(v.shape) for v in back.inputs] == [tuple(v.shape) for v in g.inputs]
    arrays = [rnd(*v.shape) for v in g.inputs]
    for o, w in zip(interpreter.run(back, *arrays), interpreter.run(g, *arrays), strict=True):
        np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-5)
