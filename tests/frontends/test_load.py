"""Explicit state pairs (`state={"h_in": "h_out"}` in compile and load_model, `--state IN=OUT` on
the command line): a recurrent cell that takes and returns its hidden state runs as a stateful
model, in the interpreter and in the C, equal to torch feeding the state back by hand."""
import subprocess

import numpy as np
import onnx
import pytest
import torch

import mcuforge
from mcuforge.compiler.cli import main
from mcuforge.errors import UsageError
from mcuforge.frontends.load import load_model
from tests.support.cbuild import host_make


class Cell(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.x, self.h, self.out = torch.nn.Linear(4, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)

    def forward(self, x, h):
        h = torch.tanh(self.x(x) + self.h(h))
        return self.out(h), h


EXAMPLE = (torch.randn(1, 4), torch.randn(1, 8))


def _torch_stream(model, xs) -> list[np.ndarray]:
    h, ys = torch.zeros(1, 8), []
    with torch.no_grad():
        for x in xs:
            y, h = model(torch.from_numpy(x), h)
            ys.append(y.numpy())
    return ys


def test_a_fed_back_hidden_state_runs_like_torch(tmp_path):
    torch.manual_seed(0)
    model = Cell().eval()
    art = mcuforge.compile(model, EXAMPLE, state={"h": "tanh"}, emit=("c",), out_dir=tmp_path / "o")
    assert [v.name for v in art.graph.inputs] == ["x"] and len(art.graph.outputs) == 1
    assert [s.read.name for s in art.graph.states] == ["h"] and not art.graph.states[0].init.any()
    xs = [np.random.default_rng(k).standard_normal((1, 4)).astype(np.float32) for k in range(20)]
    session, want = art.session(), _torch_stream(model, xs)
    for x, w in zip(xs, want):
        np.testing.assert_allclose(session(x)[0], w, rtol=1e-5, atol=1e-6)
    out = subprocess.run([host_make(art.files["c"], "gcc"), "-b"], input=b"".join(x.tobytes() for x in xs),
                         capture_output=True, check=True).stdout
    np.testing.assert_allclose(np.frombuffer(out, np.float32).reshape(-1, 1, 2), np.stack(want), rtol=1e-4, atol=1e-5)


def test_quantized_with_a_state_pair_keeps_the_state_in_float():
    torch.manual_seed(0)
    model = Cell().eval()
    xs = [np.random.default_rng(k).standard_normal((1, 4)).astype(np.float32) for k in range(20)]
    art = mcuforge.compile(model, EXAMPLE, state={"h": "tanh"}, emit=(), quantize="int8", calibration=xs, io="float")
    assert art.graph.states[0].read.dtype.value == "f32" and art.graph.count("qlinear") == 3
    session = art.session()
    got = np.stack([session(x)[0] for x in xs])
    np.testing.assert_allclose(got, np.stack(_torch_stream(model, xs)), atol=0.05)


def test_state_pairs_name_an_input_and_an_output_of_one_type():
    with pytest.raises(UsageError, match="state hh=tanh: input hh is not in the graph") as err:
        load_model(Cell(), EXAMPLE, state={"hh": "tanh"})
    assert "inputs: x, h; outputs: out, tanh" in err.value.hint
    with pytest.raises(UsageError, match=r"the input is f32\[1, 4\], the output f32\[1, 8\]"):
        load_model(Cell(), EXAMPLE, state={"x": "tanh"})


def test_cli_state_option(tmp_path, capsys):
    path = tmp_path / "cell.onnx"
    torch.onnx.export(Cell().eval(), EXAMPLE, path, input_names=["x", "h_in"], output_names=["y", "h_out"],
                      dynamo=False)
    assert [i.name for i in onnx.load(path).graph.input] == ["x", "h_in"]
    assert main(["compile", str(path), "--state", "h_in=h_out", "-o", str(tmp_path / "o")]) == 2
    assert "outputs: _out_Gemm, _Tanh" in capsys.readouterr().err  # the names the graph's outputs have
    assert main(["compile", str(path), "--state", "h_in=_Tanh", "--emit", "c,onnx", "-o", str(tmp_path / "o")]) == 0
    header = (tmp_path / "o" / "c" / "model.h").read_text()
    assert "MODEL_NUM_INPUTS 1" in header and 'state "h_in": float [1, 8]' in header
    back = onnx.load(tmp_path / "o" / "model.onnx").graph  # ONNX has no state: the pair again
    assert [i.name for i in back.input] == ["x", "h_in"] and [o.name for o in back.output][1:] == ["_Tanh"]
    assert main(["compile", str(path), "--state", "h_in", "-o", str(tmp_path / "p")]) != 0
    assert "give INPUT=OUTPUT" in capsys.readouterr().err

