"""Channel pruning end to end: train, prune 30% with each importance, fine-tune in torch, int8.

    python examples/prune_digits.py

Trains the zoo's digits_cnn on scikit-learn's 8x8 digits. Then, for each importance criterion
(l1, l2, bn_scale, taylor), the `prune-channels` pass removes 30% of the channels of every
channel group (before fold-bn, so that bn_scale sees the batch norms' scales), the smaller
model goes back to PyTorch with `mcuforge.to_torch` for a few epochs of fine-tuning, and is
compiled again, quantized to int8, to C. The int8 accuracies are those of the generated C, built
with `make host` and fed the whole test set through one process (`model_host -b`); the float
accuracy comes from mcuforge's reference interpreter (right after pruning, before fine-tuning,
from the `to_torch` module); parameters, MACs, flash and arena are those of one inference of the
compiled model. Every pruned int8 model must stay within 2 points of the unpruned float model.
"""
import subprocess
import tempfile
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

import mcuforge
from mcuforge import zoo
from mcuforge.analysis.prune_report import measure
from mcuforge.passes.manager import PassManager

t0 = time.perf_counter()
torch.set_num_threads(1)  # a model this small only loses time to threads
torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.images[:, None] / 16, dtype=torch.float32)  # (1797, 1, 8, 8) in [0, 1]
y = torch.tensor(digits.target)
order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
train, test = order[:1400], order[1400:]


def fit(model, epochs, lr):
    opt = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(epochs):
        for idx in train[torch.randperm(len(train))].split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(predict) -> float:
    """Test accuracy in %; `predict(batch of images) -> logits`."""
    return 100 * float(np.mean([np.argmax(predict(x[i:i + 1])) == y[i] for i in test.tolist()]))


def c_accuracy(c_dir) -> float:
    """Test accuracy in % of the generated C in `c_dir`: the test images, float32 one after the
    other, through one run of the host build in batch mode; float32 logits back."""
    subprocess.run(["make", "-s", "host"], cwd=c_dir, check=True)
    logits = subprocess.run([str(c_dir / "model_host"), "-b"], input=x[test].numpy().tobytes(), capture_output=True,
                            check=True).stdout
    return 100 * float(np.mean(np.frombuffer(logits, np.float32).reshape(len(test), -1).argmax(1) == y[test].numpy()))


def compiled(model, **quant):
    """`model` compiled for one image: float, its accuracy in the interpreter; quantized, that of
    its generated C. And its measures."""
    if not quant:
        art = mcuforge.compile(model, (x[:1],), emit=())
        return accuracy(lambda image: art.run(image)[0]), measure(art.graph)
    with tempfile.TemporaryDirectory() as out:
        art = mcuforge.compile(model, (x[:1],), emit=("c",), out_dir=out, **quant)
        return c_accuracy(art.files["c"]), measure(art.graph)


def row(name, acc, m, before="") -> str:
    return f"{name:<10} {m.params:>7,} {m.macs:>7,} {m.flash:>8,} {m.arena:>8,} {before:>7} {acc:>6.1f}%"


int8 = dict(quantize="int8", calibration=x[train[:256]], io="float")  # 256 single images; float in and out
model = fit(zoo.get("digits_cnn")[0], epochs=15, lr=1e-2)
base_acc, base_float = compiled(model)
rows = [row("float", base_acc, base_float), row("int8", *compiled(model, **int8))]
taylor_data = [(x[idx], y[idx]) for idx in train.split(200)]
for importance in ["l1", "l2", "bn_scale", "taylor"]:
    graph = mcuforge.trace(model, (x[:1],))
    options = dict(ratio=0.3, importance=importance, round_to=1, data=taylor_data if importance == "taylor" else None)
    ctx = PassManager([("canonicalize", {}), ("prune-channels", options)], debug=True).run(graph)
    report = ctx.pruning
    print(f"--- importance={importance}: removed " + ", ".join(
        f"{r.layers[0]} {r.removed}" for r in report.groups if r.removed) + f"\n{report}\n")
    pruned = mcuforge.to_torch(graph)  # takes any batch size: its reshapes keep the batch axis
    with torch.no_grad():
        pruned_acc = accuracy(pruned)
    tuned = fit(pruned, epochs=6, lr=3e-3)
    rows.append(row(f"{importance}", *compiled(tuned, **int8), f"{pruned_acc:.1f}%"))

print(f"{'model':<10} {'params':>7} {'MACs':>7} {'flash B':>8} {'arena B':>8} {'pruned':>7} {'final':>7}")
print("\n".join(rows))
print(f"(final: float in the interpreter, int8 in the generated C; rows l1..taylor: pruned 30%, accuracy right "
      f"after pruning, then after fine-tuning, int8)\n"
      f"{time.perf_counter() - t0:.1f} s")
for line in rows[2:]:
    assert float(line.split()[-1][:-1]) >= base_acc - 2, f"{line}: more than 2 points below float {base_acc:.1f}%"
