"""Knowledge distillation: fine-tune a compressed student (pruned, low-rank, QAT) against its float teacher.

The loss of a batch (x, y) is Hinton et al.'s: alpha * T^2 * KL(softmax(teacher(x) / T) ||
softmax(student(x) / T)) + (1 - alpha) * cross_entropy(student(x), y). The soft targets at
temperature T carry what the teacher knows about the classes it did not pick; T^2 keeps their
gradient on the scale of the hard loss's as T changes. alpha = 1 needs no labels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UsageError


def distill(teacher, student, data, epochs: int = 1, T: float = 4.0, alpha: float = 0.5, lr: float = 1e-3,
            optimizer=None) -> list[float]:
    """Trains `student` (its parameters, with Adam at `lr` unless an `optimizer` is given) for
    `epochs` passes over `data`, an iterable of (inputs, labels) batches read once per epoch (a
    DataLoader, a list); `teacher` (a module or any callable) is only evaluated. Returns each
    epoch's mean loss. The student is left in eval mode."""
    if T <= 0 or not 0 <= alpha <= 1:
        raise UsageError(f"distillation needs T > 0 and alpha in [0, 1], got T={T}, alpha={alpha}",
                         "T around 2..8 softens the teacher's targets; alpha weighs them against the labels")
    optimizer = optimizer or torch.optim.Adam(student.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        student.train()
        total, batches = 0.0, 0
        for x, y in data:
            with torch.no_grad():
                soft = F.log_softmax(teacher(x) / T, dim=-1)
            logits = student(x)
            loss = alpha * T * T * F.kl_div(F.log_softmax(logits / T, dim=-1), soft, reduction="batchmean",
                                             log_target=True)
            if alpha < 1:
                loss = loss + (1 - alpha) * F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        losses.append(total / max(batches, 1))
    student.eval()
    return losses
