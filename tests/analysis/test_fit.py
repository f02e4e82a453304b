"""The fit check: every compile with a target refuses a model that exceeds the part's SRAM or
flash before anything is written, whatever it emits (exit code 4 on the command line), names the
overflow and the tensors live at the peak, and `fit_check=False` / `--no-fit-check` overrides it."""
import numpy as np
import pytest

import mcuforge
from mcuforge import zoo
from mcuforge.analysis.fit import check_fit, peak_tensors
from mcuforge.backends.base import plan_for
from mcuforge.compiler.cli import main


@pytest.fixture(scope="module")
def resnet8():
    return zoo.get("resnet8")


@pytest.mark.parametrize("emit", [(), ("onnx",), ("tflite",)])
def test_a_float_resnet8_does_not_fit_an_stm32f446_whatever_is_emitted(tmp_path, resnet8, emit):
    """192 KiB of float activations live at once against 128 KiB of SRAM (the part's profile)."""
    model, inputs = resnet8
    out = tmp_path / "out"
    with pytest.raises(mcuforge.DoesNotFitError) as info:
        mcuforge.compile(model, inputs, target="stm32f446re", emit=emit, out_dir=out if emit else None)
    text = str(info.value)
    assert "SRAM: needs 196,608 B, stm32f446re has 131,072 B: 65,536 B too many" in text
    assert "features_0_0 (65,536 B)" in text and "int8" in info.value.hint
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_fit_check_false_writes_the_files(tmp_path, resnet8):
    model, inputs = resnet8
    art = mcuforge.compile(model, inputs, target="stm32f446re", emit=("onnx",), out_dir=tmp_path / "o", fit_check=False)
    assert art.plan.arena_bytes == 196_608 and (tmp_path / "o" / "model.onnx").is_file()


def test_the_cli_exits_4_for_every_command_with_a_target(tmp_path, capsys):
    out = tmp_path / "tfl"
    assert main(["compile", "zoo:resnet8", "--target", "stm32f446re", "--emit", "tflite", "-o", str(out)]) == 4
    assert not out.exists() and "does not fit stm32f446re" in capsys.readouterr().err
    assert main(["inspect", "zoo:resnet8", "--target", "stm32f446re"]) == 4
    assert main(["compile", "zoo:resnet8", "--target", "stm32f446re", "--emit", "onnx", "-o", str(out),
                 "--no-fit-check"]) == 0
    assert (out / "model.onnx").is_file()


def test_int8_fits_and_c_adds_its_runtime_and_code(tmp_path, resnet8):
    """The same model in int8 fits; the C backend's own check counts what the C links, so a flash
    just above the weights passes the compile-level check and fails the C one."""
    model, inputs = resnet8
    calibration = np.random.default_rng(0).standard_normal((4, 1, 3, 32, 32)).astype(np.float32)
    art = mcuforge.compile(model, inputs, target="stm32f446re", quantize="int8", calibration=calibration, emit=())
    weights = art.report.flash_bytes
    tight = mcuforge.load_target("stm32f446re").with_sizes(None, str(weights + 16))
    mcuforge.compile(model, inputs, target=tight, quantize="int8", calibration=calibration, emit=())
    with pytest.raises(mcuforge.DoesNotFitError, match=r"flash: needs [\d,]+ B \(weights [\d,]+ \+ code"):
        mcuforge.compile(model, inputs, target=tight, quantize="int8", calibration=calibration, emit=("c",),
                         out_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_check_fit_names_the_peak_and_checks_flash_without_a_plan(resnet8):
    graph = mcuforge.compile(*resnet8, passes="float", emit=()).graph
    plan = plan_for(graph, None)
    step, node, tensors = peak_tensors(plan)
    assert sum(b for _, b in tensors) == plan.arena_bytes and node == plan.schedule[step]
    tiny = mcuforge.load_target("stm32f446re").with_sizes("1K", "1K")
    with pytest.raises(mcuforge.DoesNotFitError) as info:
        check_fit(tiny, None, 2048)
    assert "SRAM: needs" not in str(info.value)
    assert "flash: needs 2,048 B (weights 2,048), stm32f446re has 1,024 B" in str(info.value)
    check_fit(tiny, None, 1024)  # exactly full fits
