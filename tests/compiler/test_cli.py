"""The command line: outputs, documented exit codes, one-paragraph errors, no partial output."""
import json
import subprocess
import sys
import textwrap

import pytest

from mcuforge.compiler.cli import main

NET = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Weird(torch.nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1) + torch.sort(x, 1).values

    def make():
        return Net()

    def weird():
        return Weird()

    not_a_model = 3
""")


@pytest.fixture
def netfile(tmp_path):
    p = tmp_path / "nets.py"
    p.write_text(NET)
    return p


def test_compile_zoo_model_writes_outputs(tmp_path, capsys):
    out = tmp_path / "build"
    assert main(["compile", "zoo:tiny_cnn", "-o", str(out), "--time-passes"]) == 0
    assert (out / "model.onnx").is_file() and (out / "report.md").is_file()
    text = capsys.readouterr().out
    assert "pass timings" in text and "fold-bn" in text and "conv2d" in text


def test_compile_file_factory_with_input_shape_and_json(netfile, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["compile", f"{netfile}:make", "--input-shape", "1,3,8,8", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["macs"] == 8 * 8 * 4 * 27 and summary["files"]["onnx"].endswith("model.onnx")


def test_print_after(netfile, tmp_path, capsys):
    assert main(["compile", f"{netfile}:make", "--input-shape", "1,3,8,8", "-o", str(tmp_path / "o"),
                 "--passes", "fold-bn,fuse", "--print-after", "fuse", "-q"]) == 0
    out = capsys.readouterr().out
    assert "IR after fuse" in out and 'act="relu"' in out and "IR after fold-bn" not in out


@pytest.mark.parametrize("argv, code, message", [
    (["compile", "{net}:weird", "--input-shape", "1,4", "-o", "{out}"], 3, "cumsum"),
    (["compile", "{net}:nope", "--input-shape", "1,4", "-o", "{out}"], 2, "has no attribute 'nope'"),
    (["compile", "{net}:not_a_model", "-o", "{out}"], 2, "neither an nn.Module"),
    (["compile", "{net}:make", "-o", "{out}"], 2, "needs example inputs"),
    (["compile", "missing.onnx", "-o", "{out}"], 2, "does not exist"),
    (["compile", "{net}", "-o", "{out}"], 3, "not a model"),
    (["compile", "{garbage}", "-o", "{out}"], 3, "garbage.onnx"),
    (["compile", "{net}:make", "--input-shape", "1,3,8,8", "--passes", "fold-bn,nope", "-o", "{out}"], 2, "unknown pass"),
    (["compile", "{net}:make", "--input-shape", "1,3,8,8", "--target", "pdp11", "-o", "{out}"], 2, "unknown target"),
    (["compile", "{net}:make", "--input-shape", "1,3,8,8", "-o", "{net}"], 2, "not a directory"),
    (["compile", "{net}:make", "--input-shape", "1,3,8,8", "-o", "{net}/sub"], 2, "cannot write the output"),
    (["compile", "{net}:make", "--input-shape", "3,8", "-o", "{out}"], 2, "example inputs"),
])
def test_errors_have_exit_codes_and_leave_nothing(argv, code, message, netfile, tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 definitely not protobuf \xff\xff")
    out = tmp_path / "never"
    argv = [a.format(net=netfile, out=out, garbage=garbage) for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "hint:" in err and "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.onnx", "nets.py"]


def test_unsupported_ops_are_all_listed_with_source(netfile, tmp_path, capsys):
    assert main(["compile", f"{netfile}:weird", "--input-shape", "1,4", "-o", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "cumsum" in err and "sort" in err and "nets.py" in err


def test_listing_commands(capsys):
    assert main(["targets"]) == 0 and "stm32f746" in capsys.readouterr().out
    assert main(["passes"]) == 0 and "fold-bn" in capsys.readouterr().out
    assert main(["ops"]) == 0 and "conv2d(x, w, b?)" in capsys.readouterr().out


def test_inspect_prints_table_ir_and_memory_timeline(capsys):
    assert main(["inspect", "zoo:tiny_cnn", "--ir", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "graph @" in out and "MACs" in out and "lower bound" in out and "algorithm" in out
    assert main(["inspect", "zoo:tiny_cnn", "--memory", "--passes", "float"]) == 2
    assert "no memory plan" in capsys.readouterr().err


def test_console_script_is_installed():
    r = subprocess.run([sys.executable, "-m", "mcuforge.compiler.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "exit codes" in r.stdout
    r = subprocess.run(["mcuforge", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "mcuforge" in r.stdout


def test_bash_completion_completes_subcommands_and_options(tmp_path):
    script = tmp_path / "c.sh"
    r = subprocess.run(["mcuforge", "completion", "bash"], capture_output=True, text=True, check=True)
    script.write_text(r.stdout + """
COMP_WORDS=(mcuforge co); COMP_CWORD=1; _mcuforge; echo "${COMPREPLY[@]}"
COMP_WORDS=(mcuforge compile --ti); COMP_CWORD=2; _mcuforge; echo "${COMPREPLY[@]}"
""")
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["compile completion", "--time-passes"]
