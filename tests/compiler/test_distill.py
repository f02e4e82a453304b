"""mcuforge.distill: the loss goes down and the student's outputs move toward the teacher's, for a
float student and a QAT one."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mcuforge


def _setup(seed=0):
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # tiny batches: more threads only add contention
    teacher = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    with torch.no_grad():
        teacher[2].weight *= 4  # a confident teacher, as a trained one is
    x = torch.randn(256, 8)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    return teacher, nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4)), batches, torch.randn(128, 8)


def _gap(teacher, student, x) -> float:
    """KL(teacher || student) of their softmax outputs on x."""
    with torch.no_grad():
        return float(F.kl_div(F.log_softmax(student(x), 1), F.log_softmax(teacher(x), 1), reduction="batchmean",
                              log_target=True))


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_loss_decreases_and_student_moves_toward_teacher(alpha):
    teacher, student, data, held_out = _setup()
    before = _gap(teacher, student, held_out)
    losses = mcuforge.distill(teacher, student, data, epochs=10, T=3.0, alpha=alpha, lr=1e-2)
    assert len(losses) == 10 and losses[-1] < 0.75 * losses[0], losses
    assert _gap(teacher, student, held_out) < 0.7 * before
    assert not student.training


def test_qat_student():
    teacher, student, data, held_out = _setup(1)
    q = mcuforge.qat(student, (torch.zeros(1, 8),), calibration=np.random.default_rng(0).standard_normal((16, 1, 8))
                     .astype(np.float32))
    before = _gap(teacher, q, held_out)
    losses = mcuforge.distill(teacher, q, data, epochs=6, T=2.0, alpha=0.7, lr=1e-2)
    assert losses[-1] < losses[0] and _gap(teacher, q, held_out) < before


def test_bad_options():
    teacher, student, data, _ = _setup()
    for T, alpha in ((0.0, 0.5), (2.0, 1.5)):
        with pytest.raises(mcuforge.UsageError, match="T > 0"):
            mcuforge.distill(teacher, student, data, T=T, alpha=alpha)
