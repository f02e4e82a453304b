"""Output directories are written atomically: Ctrl-C during a compile leaves nothing behind and the
CLI exits 130; compiles into the same directory at once each leave a whole output, never a mix
or a temporary directory."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
CLI = "import sys\nfrom mcuforge.compiler.cli import main\nsys.exit(main(sys.argv[1:]))"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_ctrl_c_while_writing_leaves_no_output_and_exits_130(tmp_path):
    out = tmp_path / "out"
    p = cli("compile", "zoo:ds_cnn", "--emit", "c", "-o", str(out), "-q")
    deadline = time.monotonic() + 120
    while not any(d.name.startswith(".out.") for d in tmp_path.iterdir()):  # inside atomic_dir: emitting
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    assert p.wait(60) == 130
    assert list(tmp_path.iterdir()) == []


WRITER = """import sys
from pathlib import Path
from mcuforge.compiler.api import atomic_dir
for i in range(200):
    with atomic_dir(sys.argv[1]) as tmp:
        (tmp / "a").write_text(sys.argv[2] * 1000)
        (tmp / "b").write_text(sys.argv[2])
"""


def test_two_processes_replacing_one_directory_each_leave_a_whole_output(tmp_path):
    out = tmp_path / "out"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag], env=ENV, stderr=subprocess.PIPE,
                                text=True) for tag in "AB"]
    for w in writers:
        assert w.wait(120) == 0, w.stderr.read()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    tag = (out / "b").read_text()
    assert tag in "AB" and (out / "a").read_text() == tag * 1000


def test_two_compiles_into_one_directory_at_once(tmp_path):
    import mcuforge
    model = tmp_path / "m.onnx"
    mcuforge.compile("zoo:tiny_cnn", emit=("onnx",), out_dir=tmp_path / "src")
    (tmp_path / "src" / "model.onnx").rename(model)
    out = tmp_path / "out"
    runs = [cli("compile", str(model), "--emit", "c,onnx", "-o", str(out), "-q") for _ in range(2)]
    for r in runs:
        assert r.wait(300) == 0, r.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "out", "src"]
    assert (out / "model.onnx").is_file() and (out / "c" / "model.c").is_file()
