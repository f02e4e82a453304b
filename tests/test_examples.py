"""Examples are tests: every examples/*.py and the README's Python snippet run here."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_python_snippet_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr


def test_readme_commands_run(tmp_path):
    """Every `mcuforge ...` line of the README's sh blocks (the quick start runs in .ci/run)."""
    readme = (ROOT / "README.md").read_text()
    lines = [ln.split("#")[0].strip() for b in re.findall(r"```sh\n(.*?)```", readme, re.S) for ln in b.splitlines()]
    commands = [ln for ln in lines if ln.startswith("mcuforge ")]
    assert len(commands) >= 5
    (tmp_path / "my_net.py").write_text(
        "import torch\n\ndef make_model():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n")
    subprocess.run([sys.executable, "-c", "import torch; torch.onnx.export(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),"
                    " torch.nn.BatchNorm2d(4).eval(), torch.nn.ReLU()), (torch.randn(1, 3, 8, 8),), 'model.onnx',"
                    " dynamo=False)"], cwd=tmp_path, check=True, capture_output=True)
    np.savez(tmp_path / "calib.npz", np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32))
    for cmd in commands:
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"


def test_tutorial_commands_run(tmp_path):
    """docs/tutorial.md, command by command, from a directory that sees the repository's examples."""
    text = (ROOT / "docs" / "tutorial.md").read_text()
    commands = [ln for b in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in b.splitlines() if ln.strip()]
    assert len(commands) >= 10
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    for cmd in commands:
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    assert (tmp_path / "build/tutorial/host_out.bin").read_bytes() == (tmp_path / "build/tutorial/out/c/output.bin").read_bytes()
    assert "predicted class" in subprocess.run(commands[4], shell=True, cwd=tmp_path, capture_output=True,
                                               text=True).stdout
    firmware = subprocess.run(commands[-1], shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert commands[-1].startswith("qemu-system-arm -M netduinoplus2") and firmware.stdout.strip().endswith("PASS")


def test_approximate_computing_commands_run(tmp_path):
    """docs/approximate.md, command by command; the sweep's plot is written."""
    text = (ROOT / "docs" / "approximate.md").read_text()
    commands = [ln for b in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in b.splitlines() if ln.strip()]
    assert len(commands) == 5
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    for cmd in commands:
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    assert "<svg" in (tmp_path / "build" / "sweep.html").read_text()
    assert "low-rank.params_saved" in (tmp_path / "build" / "fc_rank16" / "report.md").read_text()


def test_firmware_with_two_models(tmp_path):
    """examples/firmware: the README's command links kws (ds_cnn) and img (digits_cnn) into one
    Cortex-M4 ELF and runs it under QEMU; both outputs equal the host builds of the same C."""
    text = (ROOT / "examples" / "firmware" / "README.md").read_text()
    (cmd,) = [ln for b in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in b.splitlines() if ln.strip()]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    r = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "build" / "firmware"
    for prefix in ("kws", "img"):
        subprocess.run(["make", "-s", "host"], cwd=out / prefix / "c", check=True)
        host = subprocess.run([str(out / prefix / "c" / f"{prefix}_host")], input=(out / f"{prefix}_input.bin").read_bytes(),
                              capture_output=True, check=True).stdout
        assert (out / f"{prefix}_output.bin").read_bytes() == host
        printed = re.search(rf"^{prefix}:(.*)$", r.stdout, re.M).group(1).split()
        assert [int(v) for v in printed] == np.frombuffer(host, np.int8).tolist()
