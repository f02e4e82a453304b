"""What a new user meets on the command line and in compile(): --prune / prune=, --input-shape
over a file's example inputs, outputs readable under the umask, defaults in --help, target names
whole at 80 columns."""
import os
import stat
import textwrap

import pytest

import mcuforge
from mcuforge.compiler.cli import build_parser, main

NET = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    def make():
        return Net()

    example_inputs = (torch.randn(1, 3, 8, 8),)
""")


def test_prune_removes_channels_through_compile_and_the_cli(tmp_path, capsys):
    from mcuforge import zoo
    model, inputs = zoo.get("resnet8")
    full = mcuforge.compile(model, inputs, emit=())
    pruned = mcuforge.compile(model, inputs, emit=(), prune=0.5)
    assert "prune-channels" in [r.name for r in pruned.report.passes]
    assert pruned.report.total_params < 0.5 * full.report.total_params
    assert pruned.ctx.pruning is not None and pruned.graph.inputs[0].shape == full.graph.inputs[0].shape
    assert main(["compile", "zoo:resnet8", "--prune", "0.5", "-o", str(tmp_path / "o"), "--json"]) == 0
    assert f'"params": {pruned.report.total_params}' in capsys.readouterr().out


def test_input_shape_wins_over_the_files_example_inputs(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    assert mcuforge.compile(f"{path}:make", emit=()).graph.inputs[0].shape == (1, 3, 8, 8)
    art = mcuforge.compile(f"{path}:make", emit=(), input_shapes=[(1, 3, 16, 12)])
    assert art.graph.inputs[0].shape == (1, 3, 16, 12) and art.graph.outputs[0].shape == (1, 8, 16, 12)


def test_outputs_get_the_umasks_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert main(["compile", "zoo:tiny_cnn", "--emit", "onnx,tflite,c", "-o", str(out), "-q"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for name in ("model.onnx", "model.tflite", "report.html", "c/model.c"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_help_shows_the_defaults():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["compile"].format_help().split())
    assert "(onnx, tflite, c, project: a firmware project for --target) (default: onnx)" in text and "(default: model)" in text
    assert not any(f"(default: {v})" in text for v in ("None", "False", "True", "[]"))


def test_target_names_are_whole_at_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for t in mcuforge.list_targets():
        assert any(line.split()[:1] == [t.name] for line in out.splitlines()), t.name


@pytest.mark.parametrize("argv", [["compile", "zoo:tiny_cnn", "--prune", "x", "-o", "o"]])
def test_a_bad_ratio_is_a_usage_error(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
