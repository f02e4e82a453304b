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


def test_bench_qemu_per_layer_estimate_at_the_targets_clock(tmp_path, capsys):
    """--qemu --json: a record per layer, in schedule order, whose instructions add up (with
    invoke's own share) to the profile's total, near the SysTick count; the estimates are
    instructions x the core's cycles-per-instruction factor, milliseconds at the target's clock."""
    from mcuforge.backends.c.bench import CYCLES_PER_INSTRUCTION
    from mcuforge.compiler.targets import load_target
    target = load_target("nrf52840")
    assert main(["bench", "zoo:tiny_cnn", "--runs", "1", "--qemu", "--target", "nrf52840", "--json",
                 "-o", str(tmp_path)]) == 0
    r = json.loads(capsys.readouterr().out)
    estimate = r["estimate"]
    assert estimate["core"] == target.core == "cortex-m4" and estimate["clock_mhz"] == target.clock_mhz
    assert r["qemu_dsp"] is True and "nrf52840's 64 MHz" in estimate["note"]  # its M4F has the DSP extension
    layers, total = r["layers"], r["layer_total"]
    import mcuforge
    assert [layer["name"] for layer in layers] == list(mcuforge.compile(
        "zoo:tiny_cnn", emit=("c",), out_dir=tmp_path / "same", target=target).plan.schedule)
    assert 0 < total - sum(layer["instructions"] for layer in layers) < 200  # invoke's checks and copies
    assert abs(total - r["instructions"]) < 80
    cpi = CYCLES_PER_INSTRUCTION["cortex-m4"]
    for layer in layers:
        assert layer["est_cycles"] == pytest.approx(layer["instructions"] * cpi)
        assert layer["est_ms"] == pytest.approx(layer["instructions"] * cpi / (target.clock_mhz * 1e3))


def test_bench_qemu_prints_the_per_layer_table(tmp_path, capsys, monkeypatch):
    """The rich tables (on a 200-column terminal): every layer of the model, the totals by layer
    type, the estimate's factor and the target's clock named as an estimate."""
    import mcuforge
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["bench", "zoo:tiny_cnn", "--runs", "1", "--qemu", "--target", "stm32f446re", "-q"]) == 0
    text = capsys.readouterr().out
    assert "per layer, one QEMU run (mps2-an386, DSP build), exact instruction counts" in text
    assert "by layer type" in text and "est. ms" in text and "est. cycles" in text
    assert "estimate" in text and "stm32f446re's 180 MHz" in text
    for node in mcuforge.compile("zoo:tiny_cnn", emit=("c",), out_dir=tmp_path).graph.nodes:
        assert f" {node.name} " in text


def test_bench_without_target_has_cycles_but_no_milliseconds(tmp_path, capsys, monkeypatch):
    """No target, no clock: estimated cycles of the M4 build, no milliseconds, and the table says why;
    an emitted directory without markers says it has no per-layer counts."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["bench", "zoo:fc_autoencoder", "--runs", "1", "--qemu", "-q", "-o", str(tmp_path / "a")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "est. cycles" in text and "est. ms" not in text and "no --target: no clock for milliseconds" in text
    assert main(["compile", "zoo:fc_autoencoder", "--emit", "c", "-o", str(tmp_path / "b"), "-q"]) == 0
    assert main(["bench", str(tmp_path / "b"), "--runs", "1", "--qemu", "-q"]) == 0
    assert "no per-layer counts" in capsys.readouterr().out
