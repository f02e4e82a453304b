"""The tutorial's model: a small CNN trained on scikit-learn's 8x8 digits (docs/tutorial.md).

    python examples/tutorial/digits.py train DIR    trains, writes DIR/digits.pt, DIR/calib.npz,
                                                    DIR/image.bin (one test image, raw float32)
    python examples/tutorial/digits.py check DIR FILE
                                                    prints the class in FILE (raw float32 logits)
                                                    and the true label of DIR/image.bin

`digits.py:trained` is the factory `mcuforge compile` loads (weights from $DIGITS_DIR, default
build/tutorial).
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from mcuforge import zoo


def trained() -> torch.nn.Module:
    model, _ = zoo.get("digits_cnn")
    model.load_state_dict(torch.load(Path(os.environ.get("DIGITS_DIR", "build/tutorial")) / "digits.pt"))
    return model.eval()


example_inputs = (torch.zeros(1, 1, 8, 8),)


def main(cmd: str, out: Path, *rest):
    digits = load_digits()
    x = (digits.images / 16.0 - 0.3).astype(np.float32)[:, None]
    y = digits.target
    if cmd == "train":
        torch.manual_seed(0)
        torch.set_num_threads(1)
        model, _ = zoo.get("digits_cnn")
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        xt, yt = torch.from_numpy(x[:1500]), torch.from_numpy(y[:1500])
        model.train()
        for _ in range(15):
            for idx in torch.randperm(len(xt)).split(32):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(torch.from_numpy(x[1500:])).argmax(1).numpy() == y[1500:]).mean()
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "digits.pt")
        np.savez(out / "calib.npz", x=x[:200])
        x[1500:1501].tofile(out / "image.bin")
        print(f"trained: float accuracy {acc * 100:.1f}% on {len(y) - 1500} held-out images")
    else:
        logits = np.fromfile(rest[0], np.float32)
        print(f"predicted class {logits.argmax()}, true label {y[1500]}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
