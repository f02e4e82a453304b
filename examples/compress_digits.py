"""Compressed weights on a small CNN trained on scikit-learn's 8x8 digits: the accuracy/size sweep.

Trains `mcuforge.zoo`'s digits_cnn for a few seconds (as examples/digits_int8.py does), then
`mcuforge.compiler.sweep.sweep` compiles it as float, int8, and int8 with its weights compressed
into each format of `mcuforge.passes.compress_weights` (`mcuforge.compile(..., weights=FORMAT)`,
CLI `--weights FORMAT`), on a thread pool, and scores each with the same evaluation function:
top-1 accuracy on the held-out images through the reference interpreter (which the generated C
matches bit for bit). Prints the table (scheme, flash bytes of the weights, arena, accuracy) and
writes the accuracy-against-flash plot to sweep.html. No retraining: binary and ternary weights
show how much accuracy post-training compression costs on them. The CLI form of the same sweep is
`mcuforge sweep MODEL --eval file.py:fn --schemes ... --calibration x.npz`.

    python examples/compress_digits.py
"""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from digits_int8 import data, train

from mcuforge import zoo
from mcuforge.compiler.sweep import format_table, render_html, sweep

SCHEMES = ["float", "int8", *(f"int8+{f}" for f in ("kmeans4", "int4g32", "pow2", "kmeans3", "kmeans2", "ternary",
                                                     "binary"))]


def main():
    x_train, x_test, y_train, y_test = data()
    model, (example,) = zoo.get("digits_cnn")
    train(model, x_train, y_train)

    def accuracy(runner) -> float:  # top-1 % on the held-out images, whatever the scheme
        return 100 * float(np.mean([np.argmax(runner(x[None])[0]) == y for x, y in zip(x_test, y_test)]))

    with ThreadPoolExecutor(2) as pool:  # any concurrent.futures executor: a process pool, Ray's, Dask's
        points = sweep(model, SCHEMES, accuracy, executor=pool, example_inputs=(example,),
                       calibration=x_train[:200])
    print(format_table(points))
    Path("sweep.html").write_text(render_html(points, "digits_cnn"))
    print("accuracy against flash: sweep.html")
    with torch.no_grad():
        torch_acc = 100 * float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    acc = {p.scheme: p.accuracy for p in points}
    size = {p.scheme: p.flash_bytes for p in points}
    assert abs(acc["float"] - torch_acc) < 1e-9, "the float graph disagrees with torch"
    assert acc["int8"] >= acc["float"] - 1.0, "int8 lost more than 1 point"
    for s in ("int8+kmeans4", "int8+int4g32"):  # 4-bit formats: about int8's accuracy, in less flash
        assert acc[s] >= acc["int8"] - 2.0 and size[s] < 0.7 * size["int8"], (s, acc[s], size[s])
    assert all(size[s] < size["int8"] < size["float"] for s in SCHEMES[2:])


if __name__ == "__main__":
    main()
