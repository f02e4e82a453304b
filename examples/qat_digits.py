"""Quantization-aware training with distillation after weight compression, on scikit-learn's 8x8 digits.

Trains `mcuforge.zoo`'s digits_cnn (as examples/digits_int8.py does). Then for each weight
format: post-training quantization with the weights compressed (`mcuforge.compile(...,
weights=FORMAT)`), and QAT from that same starting point (`mcuforge.qat`) fine-tuned for three
epochs against the float model (`mcuforge.distill`, T=4, alpha=0.5), compiled with
`mcuforge.compile(qat_module)`. Every accuracy is that of the generated C, built with `make host`
and fed the held-out images through one run (`model_host -b`); "weights" are the packed weight
bytes of the report, "M4 flash" what the model adds to a Cortex-M4 firmware (arm-none-eabi-size:
code, weights, tables). The script checks that the C logits of each QAT model equal its torch
forward pass bit for bit, and that QAT wins back at least half of what post-training compression
lost where it lost a point or more.

    python examples/qat_digits.py
"""
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from digits_int8 import data, train

import mcuforge
from mcuforge import zoo

FORMATS = ["int4g32", "kmeans2", "ternary"]


def c_logits(model, out: Path, **options) -> tuple[np.ndarray, object]:
    """`model` compiled to C (float in and out) in `out`, run on the test images: (logits, report)."""
    art = mcuforge.compile(model, options.pop("example", None), emit=("c",), out_dir=out, io="float", **options)
    subprocess.run(["make", "-s", "host"], cwd=art.files["c"], check=True)
    run = subprocess.run([str(art.files["c"] / "model_host"), "-b"], input=X_TEST.tobytes(), capture_output=True,
                         check=True)
    return np.frombuffer(run.stdout, np.float32).reshape(len(X_TEST), -1), art.report


def row(name: str, logits: np.ndarray, report) -> float:
    acc = 100 * float(np.mean(logits.argmax(1) == Y_TEST))
    flash = f"{report.mcu.text + report.mcu.data:,}" if report.mcu and report.mcu.core else "-"
    print(f"{name:<22} {acc:>6.1f}% {report.flash_bytes:>9,} {flash:>9}")
    return acc


X_TRAIN, X_TEST, Y_TRAIN, Y_TEST = data()


def main():
    torch.set_num_threads(1)  # batches of 64 8x8 images: more threads only add contention
    model, (example,) = zoo.get("digits_cnn")
    train(model, X_TRAIN, Y_TRAIN)
    xt, yt = torch.from_numpy(X_TRAIN), torch.from_numpy(Y_TRAIN)
    batches = [(xt[i], yt[i]) for i in torch.randperm(len(xt), generator=torch.Generator().manual_seed(0)).split(64)]
    print(f"{'model':<22} {'top-1':>7} {'weights':>9} {'M4 flash':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        with torch.no_grad():
            float_acc = 100 * float(np.mean(model(torch.from_numpy(X_TEST)).argmax(1).numpy() == Y_TEST))
        print(f"{'float (torch)':<22} {float_acc:>6.1f}%")
        row("int8 PTQ", *c_logits(model, Path(tmp, "int8"), example=(example,), quantize="int8",
                                  calibration=X_TRAIN[:200]))
        for fmt in FORMATS:
            ptq = row(f"{fmt} PTQ", *c_logits(model, Path(tmp, fmt), example=(example,), quantize="int8",
                                              calibration=X_TRAIN[:200], weights=fmt))
            q = mcuforge.qat(model, (example,), calibration=X_TRAIN[:200], weights=fmt)
            mcuforge.distill(model, q, batches, epochs=3, T=4.0, alpha=0.5, lr=1e-3)
            logits, report = c_logits(q, Path(tmp, f"{fmt}_qat"))
            with torch.no_grad():
                assert np.array_equal(logits, q(torch.from_numpy(X_TEST)).numpy()), "the C model is not the QAT model"
            qat = row(f"{fmt} QAT + distill", logits, report)
            lost = float_acc - ptq
            assert lost < 1 or qat - ptq >= lost / 2, f"{fmt}: QAT won back {qat - ptq:.1f} of {lost:.1f} points"


if __name__ == "__main__":
    main()
