"""mcuforge.compile(): inputs it accepts, Artifact, atomic output directories."""
import numpy as np
import pytest

import mcuforge
import mcuforge.backends
from mcuforge import zoo
from mcuforge.backends.base import Backend


def test_artifact_fields(tmp_path):
    model, inputs = zoo.get("tiny_cnn")
    art = mcuforge.compile(model, inputs, out_dir=tmp_path / "b")
    assert set(art.files) == {"onnx", "report", "report_md"} and all(p.is_file() for p in art.files.values())
    assert art.report.total_params == sum(v.type.numel for v in art.graph.constants())
    (y,) = art.run(inputs[0])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, model(*inputs).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_accepts_graph_without_mutating_it():
    model, inputs = zoo.get("tiny_cnn")
    g = mcuforge.trace(model, inputs)
    before = str(g)
    art = mcuforge.compile(g, emit=())
    assert str(g) == before and len(art.graph) < len(g)


def test_passes_option_forms():
    model, inputs = zoo.get("tiny_cnn")
    none = mcuforge.compile(model, inputs, emit=(), passes="none")
    text = mcuforge.compile(model, inputs, emit=(), passes="fold-bn")
    listed = mcuforge.compile(model, inputs, emit=(), passes=[("fold-bn", {})])
    assert none.graph.count("batch_norm") > 0
    assert text.graph.count() == listed.graph.count() and text.graph.count("batch_norm") == 0


def test_failed_emit_leaves_previous_output_untouched(tmp_path, monkeypatch):
    model, inputs = zoo.get("tiny_cnn")
    out = tmp_path / "build"
    mcuforge.compile(model, inputs, out_dir=out)
    first = (out / "model.onnx").read_bytes()

    def broken(graph, directory, ctx, options, prefix):
        (directory / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mcuforge.backends, "get", lambda name: Backend(name, broken))
    with pytest.raises(RuntimeError, match="disk on fire"):
        mcuforge.compile(model, inputs, out_dir=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]
    assert (out / "model.onnx").read_bytes() == first and not (out / "half.bin").exists()


def test_usage_errors():
    model, inputs = zoo.get("tiny_cnn")
    with pytest.raises(mcuforge.UsageError, match="unknown emit"):
        mcuforge.compile(model, inputs, emit=("verilog",), out_dir="x")
    with pytest.raises(mcuforge.UsageError, match="needs out_dir"):
        mcuforge.compile(model, inputs)
    with pytest.raises(mcuforge.UsageError, match="needs example inputs"):
        mcuforge.compile(model, emit=())
    with pytest.raises(mcuforge.UsageError, match="cannot compile a int"):
        mcuforge.compile(3, emit=())


def test_target_is_attached():
    model, inputs = zoo.get("tiny_cnn")
    art = mcuforge.compile(model, inputs, emit=(), target="stm32f746")
    assert art.target.sram == 320 * 1024 and art.ctx.target is art.target
