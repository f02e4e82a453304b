"""An evaluation function for `mcuforge sweep` that needs no data set: the share of seeded random
inputs on which the compiled model picks the same class as the float torch model it came from
(zoo:digits_cnn). With a trained model and labelled data, return top-1 accuracy instead.

    mcuforge sweep zoo:digits_cnn --eval examples/sweep/agreement.py:top1_agreement --calibration calib.npz
"""
import numpy as np
import torch

from mcuforge import zoo


def top1_agreement(runner) -> float:
    """% of 64 seeded inputs where `runner` (the compiled graph) and torch agree on the top class."""
    model, _ = zoo.get("digits_cnn")
    xs = np.random.default_rng(7).standard_normal((64, 1, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = [int(model(torch.from_numpy(x)).argmax()) for x in xs]
    return 100 * float(np.mean([int(np.argmax(runner(x)[0])) == w for x, w in zip(xs, want)]))
