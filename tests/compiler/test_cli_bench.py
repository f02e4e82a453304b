"""`mcuforge bench`: real builds of the generated C; host latency samples and the QEMU instruction
count of one inference, as a table and as JSON; documented exit codes."""
import json

import pytest

from mcuforge.compiler.cli import main
from mcuforge.ir.cost import macs


def test_bench_json_host_and_qemu(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["bench", "zoo:tiny_cnn", "-o", str(out), "--runs", "5", "--qemu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["runs"] == 5 and 0 < r["min_s"] <= r["median_s"] <= r["p90_s"] < 1
    # a float model without DSP tricks: at least one instruction per multiply-accumulate
    import mcuforge
    graph = mcuforge.compile("zoo:tiny_cnn", emit=()).graph
    assert r["instructions"] >= sum(macs(n) for n in graph.nodes) > 0
    assert r["qemu_board"] == "mps2-an386" and (out / "c" / "model_host").is_file()


def test_bench_an_emitted_directory_prints_a_table(tmp_path, capsys):
    assert main(["compile", "zoo:fc_autoencoder", "--emit", "c", "-o", str(tmp_path / "fc"), "-q"]) == 0
    capsys.readouterr()
    assert main(["bench", str(tmp_path / "fc"), "--runs", "3", "-q"]) == 0
    text = capsys.readouterr().out
    assert "median" in text and "p90" in text and "µs" in text


@pytest.mark.parametrize("argv, code, message", [
    (["bench", "zoo:tiny_cnn", "--runs", "0"], 2, "not a positive number"),
    (["bench", "{tmp}"], 2, "not a C project"),
    (["bench", "zoo:tiny_cnn", "--target", "rp2040", "--sram", "4K"], 4, "does not fit"),
])
def test_bench_exit_codes(argv, code, message, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == code
    assert message in capsys.readouterr().err


def test_compile_progress_and_sizes_respect_quiet(tmp_path, capsys):
    assert main(["compile", "zoo:tiny_cnn", "--emit", "c", "-o", str(tmp_path / "a"), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["compile", "zoo:tiny_cnn", "--emit", "c", "-o", str(tmp_path / "b")]) == 0
    assert "arm-none-eabi-size, cortex-m4: flash" in capsys.readouterr().out
