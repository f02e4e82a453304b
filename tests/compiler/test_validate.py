"""validate: the generated C against the original model on the user's samples (compiler/validate.py),
on the digits CNN trained as examples/digits_int8.py trains it: host and QEMU, labels, thresholds
and the CLI's exit code 5; the original from torch, an .onnx file (onnxruntime) and a .tflite file
(LiteRT)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import mcuforge
from mcuforge import zoo
from mcuforge.compiler.cli import main
from mcuforge.compiler.validate import sqnr, validate
from mcuforge.errors import UsageError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_int8.py"


@pytest.fixture(scope="module")
def digits():
    spec = importlib.util.spec_from_file_location("digits_int8_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x_train, x_test, y_train, y_test = example.data()
    model, (x,) = zoo.get("digits_cnn")
    example.train(model, x_train, y_train, epochs=8)
    return model, x, x_train[:200], x_test[:120], y_test[:120]


def test_host_int8_keeps_the_float_accuracy(digits):
    model, x, calibration, samples, labels = digits
    report = validate(model, samples, labels=labels, example_inputs=(x,), quantize="int8", calibration=calibration,
                      min_sqnr=15, min_top1=0.9)
    with torch.no_grad():
        want = model(torch.from_numpy(samples)).numpy()
    (out,) = report.outputs
    assert report.passed and report.samples == 120 and report.on == "host"
    assert out.accuracy[0] == pytest.approx(float(np.mean(want.argmax(1) == labels)))  # torch's, computed here
    assert out.accuracy[0] > 0.85 and abs(out.accuracy[0] - out.accuracy[1]) <= 0.03 and out.top1 >= 0.95
    assert 15 < out.sqnr_db < 80 and 0 < out.mean_error <= out.max_error
    assert report.worst_layers and all(db > 10 for _, _, db in report.worst_layers)


def test_qemu_gives_the_hosts_outputs(digits):
    model, x, calibration, samples, _ = digits
    options = dict(example_inputs=(x,), quantize="int8", calibration=calibration)
    host = validate(model, samples[:3], **options)
    qemu = validate(model, samples[:3], on="qemu", **options)
    assert qemu.on == "qemu" and vars(qemu.outputs[0]) == vars(host.outputs[0])  # bit-exact C on both


def test_a_float_model_matches_closely_and_thresholds_fail(digits):
    model, x, _, samples, _ = digits
    report = validate(model, samples[:20], example_inputs=(x,), min_sqnr=200, max_error=1e-9)
    (out,) = report.outputs
    assert out.sqnr_db > 80 and out.top1 == 1.0
    assert not report.passed and len(report.failures) == 2 and "below 200" in report.failures[0]


def test_onnx_and_tflite_originals(tmp_path, digits):
    model, x, calibration, samples, _ = digits
    art = mcuforge.compile(model, (x,), emit=("onnx", "tflite"), out_dir=tmp_path / "files")
    for path in (art.files["onnx"], art.files["tflite"]):
        report = validate(str(path), samples[:10], quantize="int8", calibration=calibration, min_top1=0.9)
        assert report.passed and report.outputs[0].sqnr_db > 15, path


def test_cli_exit_codes(tmp_path, digits, capsys):
    model, x, calibration, samples, labels = digits
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "net.py").write_text(
        "import torch\nfrom mcuforge import zoo\n\n\ndef make():\n    model, _ = zoo.get('digits_cnn')\n"
        f"    model.load_state_dict(torch.load({str(tmp_path / 'weights.pt')!r}))\n    return model\n\n\n"
        "example_inputs = (torch.zeros(1, 1, 8, 8),)\n")
    np.savez(tmp_path / "data.npz", x=samples[:30])
    np.save(tmp_path / "labels.npy", labels[:30])
    args = ["validate", f"{tmp_path / 'net.py'}:make", "--data", str(tmp_path / "data.npz"), "--quantize", "int8",
            "--calibration", str(tmp_path / "data.npz")]
    assert main(args + ["--labels", str(tmp_path / "labels.npy"), "--per-layer", "--min-sqnr", "10"]) == 0
    out = capsys.readouterr().out
    assert "SQNR dB" in out and "layers that lose the most" in out
    assert main(args + ["--min-sqnr", "300"]) == 5 and "FAILED" in capsys.readouterr().out


def test_sqnr():
    a = np.array([1.0, -2.0, 3.0])
    assert sqnr(a, a) == float("inf") and sqnr(a, a + 0.1) == pytest.approx(10 * np.log10(14 / 0.03))


def test_a_stateful_model_is_refused(tmp_path):
    from tests.support import wakeword
    (tmp_path / "alexa.tflite").write_bytes(wakeword.model("alexa"))
    with pytest.raises(UsageError, match="keeps state between calls"):
        validate(str(tmp_path / "alexa.tflite"), [np.zeros((1, 3, 40), np.float32)])
