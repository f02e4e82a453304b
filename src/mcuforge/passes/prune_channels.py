"""Structured channel pruning: the least important channels of each group removed for real."""
from __future__ import annotations

import numpy as np

from ..analysis.channels import Group, analyze, remove_channels
from ..analysis.prune_report import GroupRecord, PruneReport, measure
from ..errors import UsageError
from ..ir.graph import Graph

IMPORTANCE = ("l1", "l2", "bn_scale", "taylor")


def kept(n: int, ratio: float, round_to: int) -> int:
    """Channels a group of `n` keeps: n * (1 - ratio) rounded to a multiple of `round_to`, at
    least `round_to`, at most n (a group smaller than `round_to` stays whole)."""
    return min(n, max(round_to, int(n * (1 - ratio) / round_to + 0.5) * round_to))


def _per_channel(group: Group, role: str, fn, arrays: dict | None = None) -> np.ndarray:
    """Per channel of `group`: the sum over its members with `role` of fn(their slices of the
    constant, or of `arrays[constant name]` in its place)."""
    score = np.zeros(group.size)
    for m in group.members:
        a = m.value.data if arrays is None else arrays.get(m.value.name)
        if m.role == role and a is not None:
            score += fn(np.moveaxis(a, m.axis, 0).reshape(a.shape[m.axis], -1)).sum(1)[m.index].sum(1)
    return score


def _score(group: Group, importance: str) -> tuple[np.ndarray, str]:
    """(importance of each channel, the criterion used) for "l1", "l2" or "bn_scale"."""
    if importance == "bn_scale" and any(m.role == "bn_scale" for m in group.members):
        return _per_channel(group, "bn_scale", np.abs), "bn_scale"
    p = 2 if importance == "l2" else 1
    return _per_channel(group, "weight", lambda w: np.abs(w) ** p), "l2" if p == 2 else "l1"


def _taylor(graph: Graph, groups: list[Group], data, loss) -> list[np.ndarray]:
    """First-order Taylor importance (Molchanov et al. 2019): per channel and batch, the sum of
    weight x gradient over every weight of the channel (all the group's conv/linear weights),
    squared, summed over the batches of `data`. Gradients come from torch autograd on
    `to_torch(graph)` (in eval mode: batch norms use their running statistics)."""
    import torch

    from ..frontends.to_torch import to_torch
    module = to_torch(graph)
    params = dict(module.named_parameters())
    loss = loss or torch.nn.functional.cross_entropy
    scores = [np.zeros(g.size) for g in groups]
    for inputs, target in data:
        inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        out = module(*(torch.as_tensor(np.asarray(x, np.float32)) for x in inputs))
        grads = torch.autograd.grad(loss(out, torch.as_tensor(np.asarray(target))), list(params.values()))
        products = {}  # IR constant name -> weight x gradient, in the IR's layout
        for (key, p), grad in zip(params.items(), grads):
            name, perm = module.sources[key]
            a = (p * grad).detach().numpy()
            products[name] = a if perm is None else a.transpose(np.argsort(perm))
        for g, score in zip(groups, scores):
            score += _per_channel(g, "weight", lambda a: a, products) ** 2
    return scores


def _left_alone(g: Group, ratio: float, round_to: int, protect) -> str:
    """Why group `g` keeps all its channels, or "" when it is pruned."""
    if g.frozen:
        return "; ".join(g.frozen)
    if set(g.layers) & set(protect):
        return "protected"
    if not any(m.role == "weight" for m in g.members):
        return "no conv/linear weights"
    return f"ratio {ratio} keeps all {g.size}" if kept(g.size, ratio, round_to) == g.size else ""


def _check(graph: Graph, groups: list[Group], ratio, importance, round_to, protect, data):
    if importance not in IMPORTANCE:
        raise UsageError(f"unknown importance '{importance}'", f"choose one of {', '.join(IMPORTANCE)}")
    if importance == "taylor" and data is None:
        raise UsageError("importance='taylor' needs calibration data with targets",
                         "pass data=[(inputs, target), ...] (and loss=..., cross entropy by default)")
    if not (isinstance(round_to, int) and round_to >= 1):
        raise UsageError(f"round_to={round_to!r} must be a positive integer")
    ratios = ratio.values() if isinstance(ratio, dict) else [ratio]
    if not all(isinstance(r, (int, float)) and 0 <= r < 1 for r in ratios):
        raise UsageError(f"ratio {ratio!r} must be a number in [0, 1) or a dict of them per layer")
    known = {name for g in groups for name in g.layers}
    unknown = sorted({*(ratio if isinstance(ratio, dict) else ()), *protect} - known)
    if unknown:
        raise UsageError(f"prune-channels: no layer named {', '.join(unknown)}",
                         f"layers whose output channels can be named: {', '.join(sorted(known))}")
    quantized = [v.name for v in graph.constants() if v.type.quant is not None]
    if quantized:
        raise UsageError(f"prune-channels takes float graphs; %{quantized[0]} is quantized",
                         "prune before `quantize`")


def prune_channels(graph: Graph, ctx, ratio=0.5, importance="l1", round_to=8, protect=(), data=None,
                   loss=None) -> bool:
    """Removes the least important channels of every channel group: a smaller dense model.

    Channel groups come from `analysis.channels.analyze` (convs, their batch norms and biases,
    the convs that read them, both sides of residual adds, concat slices, flatten blocks,
    channel shuffles, depthwise and grouped convs). Each group that is not frozen (graph input
    or output, channel-mixing op) or protected keeps `kept(n, ratio, round_to)` of its n
    channels (units: a whole group of a grouped conv counts as one), and loses the others from
    every weight, bias, BN statistic and activation, downstream inputs included.

    Options: `ratio`, a fraction in [0, 1) or a dict {layer: fraction} (a group takes the
    smallest fraction of its layers, 0 if none is listed; a layer is a conv/linear node whose
    output channels the group holds); `importance` of each channel, all computed on the
    unpruned graph: "l1" / "l2" (sum of |w| / w^2 over every conv/linear weight slice of the
    channel, producers and consumers), "bn_scale" (|scale| of the group's batch norms, so run
    before fold-bn; groups without one use l1), "taylor" (see `_taylor`; needs `data`, an
    iterable of (inputs, target), and `loss(output, target)`, cross entropy by default);
    `round_to` (kept counts are multiples of it, never zero; a group smaller stays whole);
    `protect` (layer names whose groups stay whole).
    Records `ctx.stats` prune-channels.groups / .channels and a `PruneReport` in
    `ctx.pruning` (per group: removed channels, saved parameters, MACs, flash,
    arena). Preconditions: float graph (before quantize). Preserves: graph inputs and outputs
    and their shapes; every other channel count may shrink.
    """
    groups = analyze(graph)
    _check(graph, groups, ratio, importance, round_to, list(protect), data)
    scores = ([(s, "taylor") for s in _taylor(graph, groups, data, loss)] if importance == "taylor"
              else [_score(g, importance) for g in groups])  # all from the unpruned weights
    last = measure(graph)
    report = PruneReport(graph.name, last, last, [])
    for g in groups:
        r = min((ratio.get(name, 0) for name in g.layers), default=0) if isinstance(ratio, dict) else ratio
        rec = GroupRecord(g.id, g.layers, g.size, g.size, reason=_left_alone(g, r, round_to, protect))
        report.groups.append(rec)
        if rec.reason:
            if g.frozen and g.layers:
                ctx.miss(graph.find(g.layers[0]), f"channels not pruned: {rec.reason}")
            continue
        score, rec.importance = scores[g.id]
        rec.after = kept(g.size, r, round_to)
        rec.removed = sorted(np.argsort(score, kind="stable")[:g.size - rec.after].tolist())
        remove_channels(graph, g, rec.removed, groups)
        now = measure(graph)
        rec.saved, last = last - now, now
        ctx.stat("groups")
        ctx.stat("channels", len(rec.removed))
    report.after = last
    ctx.pruning = report
    return report.after != report.before
