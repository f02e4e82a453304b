"""Post-training int8 quantization of a small CNN trained on scikit-learn's 8x8 digits.

Trains `mcuforge.zoo`'s digits_cnn for a few seconds, quantizes it with each calibration observer
(200 training images as calibration data), runs the integer graph in mcuforge's reference
interpreter (the integer arithmetic of TFLite Micro's kernels) on the held-out images, and
prints float and int8 top-1 accuracy. Checks that the best observer stays within 1 point of float.

    python examples/digits_int8.py
"""
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import mcuforge
from mcuforge import zoo
from mcuforge.analysis.calibrate import OBSERVERS
from mcuforge.ir.early_exit import quantize_input
from mcuforge.ir.interpreter import run


def data():
    digits = load_digits()
    x = (digits.images / 16.0 - 0.3).astype(np.float32)[:, None]  # (1797, 1, 8, 8), about zero-mean
    return train_test_split(x, digits.target, test_size=0.2, random_state=0)


def train(model, x, y, epochs=20, loss=torch.nn.functional.cross_entropy):
    """`model` trained with Adam on (x, y); `loss(model output, labels)`."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # batches of 32 8x8 images: more threads only add contention
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            loss(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def int8_accuracy(graph, x, y) -> float:
    """Top-1 accuracy of an integer graph (int8 input and output) on float images."""
    predictions = [int(np.argmax(run(graph, quantize_input(graph.inputs[0], sample))[0])) for sample in x]
    return 100 * float(np.mean(np.array(predictions) == y))


def main():
    x_train, x_test, y_train, y_test = data()
    model, (example,) = zoo.get("digits_cnn")
    train(model, x_train, y_train)
    with torch.no_grad():
        float_acc = 100 * float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    print(f"float32  top-1 {float_acc:.1f}%  ({len(x_test)} test images)")
    results = {}
    for observer in OBSERVERS:
        art = mcuforge.compile(model, (example,), emit=(), quantize="int8", calibration=x_train[:200],
                               observer=observer)
        results[observer] = int8_accuracy(art.graph, x_test, y_test)
        print(f"int8     top-1 {results[observer]:.1f}%  observer {observer:14s} "
              f"(output SQNR {art.report.quant['output_sqnr']:.1f} dB, weights {art.report.flash_bytes:,} B "
              f"from {art.report.quant['float_weight_bytes']:,} B)")
    best = max(results, key=results.get)
    print(f"best observer: {best}, {results[best] - float_acc:+.1f} points against float")
    assert results[best] >= float_acc - 1.0, "int8 lost more than 1 point of accuracy"


if __name__ == "__main__":
    main()
