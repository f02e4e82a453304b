"""An early-exit CNN on scikit-learn's 8x8 digits: a cheap first exit, a deeper second one.

Trains both exits jointly for a few seconds, quantizes to int8, and for several confidence
thresholds prints the accuracy and the average MACs per image (the reference interpreter
stopping at the first exit whose largest softmax probability reaches the threshold). Then
builds the generated C for the host at each threshold and checks that, on every test image, it
takes the same exit and returns the same bytes as the interpreter.

    python examples/early_exit_digits.py
"""
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from digits_int8 import data, train
from torch import nn

import mcuforge
from mcuforge.backends.c.emit import emit_c
from mcuforge.ir.early_exit import quantize_input, resolve, run_dataset

THRESHOLDS = [0.5, 0.9, 0.99, 1.0]


class TwoExitCNN(nn.Module):
    """conv 1->8, then exit 1 (pool, dense: ~6k MACs); conv 8->16, pool, conv 16->32, exit 2 (~160k MACs)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.exit1 = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten())
        self.out = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        h = self.stem(x)
        return self.exit1(h), self.out(self.body(h))


def both_exits_loss(outputs, y):
    """Each exit trained as a classifier of its own."""
    return sum(nn.functional.cross_entropy(logits, y) for logits in outputs)


def c_exits(graph, exits, images, workdir) -> tuple[list[int], list[bytes]]:
    """The exit taken and the bytes of its output, per image, from the host build of the C code."""
    emit_c(graph, workdir, exits=exits)
    subprocess.run(["make", "-s", "host"], cwd=workdir, check=True)
    x = b"".join(quantize_input(graph.inputs[0], im).tobytes() for im in images)
    r = subprocess.run([str(Path(workdir) / "model_host"), "-b"], input=x, capture_output=True, check=True)
    taken = [int(line.split()[1]) for line in r.stderr.decode().splitlines() if line.startswith("exit ")]
    sizes = [v.type.nbytes for v in graph.outputs]
    rows = [r.stdout[i:i + sum(sizes)] for i in range(0, len(r.stdout), sum(sizes))]
    starts = np.cumsum([0, *sizes])
    return taken, [row[starts[exits[k].output]:starts[exits[k].output + 1]] for row, k in zip(rows, taken)]


def main():
    x_train, x_test, y_train, y_test = data()
    torch.manual_seed(0)
    model = train(TwoExitCNN(), x_train, y_train, epochs=15, loss=both_exits_loss)
    with torch.no_grad():
        e1, e2 = (100 * float((o.argmax(1).numpy() == y_test).mean()) for o in model(torch.from_numpy(x_test)))
    print(f"float32: exit 1 alone {e1:.1f}%, exit 2 alone {e2:.1f}% top-1 ({len(x_test)} test images)")
    art = mcuforge.compile(model, (torch.from_numpy(x_test[:1]),), emit=(), quantize="int8",
                           calibration=x_train[:200], exits={0: 0.9, 1: None})  # graph outputs 0 and 1
    names = [v.name for v in art.graph.outputs]
    print(f"int8 graph: {art.report.total_macs:,} MACs without exits; exits {names}")
    print(f"{'threshold':>9}  {'accuracy':>8}  {'avg MACs':>9}  {'of full':>7}  exit 1 taken")
    with tempfile.TemporaryDirectory() as tmp:
        for theta in THRESHOLDS:
            exits = resolve(art.graph, {names[0]: theta, names[1]: None})
            stats = run_dataset(art.graph, x_test, exits)
            accuracy = 100 * float(np.mean([np.argmax(o) for o in stats.outputs] == y_test))
            print(f"{theta:>9}  {accuracy:>7.1f}%  {stats.average_macs:>9,.0f}  "
                  f"{stats.average_macs / stats.full_macs:>7.1%}  {stats.taken[0]}/{len(x_test)}")
            taken, outputs = c_exits(art.graph, exits, x_test, Path(tmp) / f"c{theta}")
            assert taken == stats.exits, f"threshold {theta}: the C code took other exits than the interpreter"
            assert outputs == [o.tobytes() for o in stats.outputs], f"threshold {theta}: C and interpreter differ"
    print("C host build: same exit and output bytes as the interpreter on every test image, at every threshold")


if __name__ == "__main__":
    main()
