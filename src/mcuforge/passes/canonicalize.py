"""Canonicalization: the simplest equivalent form of common op sequences."""
from __future__ import annotations

import math

from ..ir.graph import Graph
from ..ir.pattern import Pat, Rule, rewrite
from .constant_fold import constant_fold
from .cse import cse
from .dce import dce

X = Pat.any("x")


def forward(g, m):
    return m["x"]


def merge_reshapes(g, m):
    return m.replacement("reshape", [m["x"]], {"shape": m.root.attrs["shape"]})


def drop_noop_reshape(g, m):
    return m["x"] if m["x"].shape == m.root.output.shape else None


def drop_identity_transpose(g, m):
    perm = list(m.root.attrs["perm"])
    return m["x"] if perm == list(range(len(perm))) else None


def compose_transposes(g, m):
    inner, outer = m.node("t").attrs["perm"], m.root.attrs["perm"]
    return m.replacement("transpose", [m["x"]], {"perm": [inner[i] for i in outer]})


RULES = [
    Rule(Pat(("dropout", "identity"), [X]), forward, "drop_dropout_identity"),
    Rule(Pat("reshape", [Pat("reshape", [X])]), merge_reshapes),
    Rule(Pat("reshape", [X]), drop_noop_reshape),
    Rule(Pat("transpose", [X]), drop_identity_transpose),
    Rule(Pat("transpose", [Pat("transpose", [X], name="t")]), compose_transposes),
    Rule(Pat("clamp", [X], attrs={"min": 0, "max": 6}), lambda g, m: m.replacement("relu6", [m["x"]]),
         "clamp_to_relu6"),
    Rule(Pat("clamp", [X], attrs={"min": 0, "max": math.inf}), lambda g, m: m.replacement("relu", [m["x"]]),
         "clamp_to_relu"),
]


def canonicalize(graph: Graph, ctx) -> bool:
    """Drops no-op ops, merges reshape/transpose chains, then folds constants, cse and dce.

    Rules: dropout and identity are removed; reshape(reshape(x)) becomes one reshape and a
    reshape to the input's shape is removed; a transpose with the identity permutation is
    removed and transpose(transpose(x)) becomes one; clamp(0, 6) becomes relu6 and
    clamp(0, inf) relu. Then the `constant-fold`, `cse` and `dce` passes run once each.
    Preconditions: none (inference semantics: dropout is the identity). Preserves: graph outputs
    and the types of all surviving values. Limits: a rewrite that would make a graph output the
    same Value as a graph input or another output is skipped (see `ir.pattern`).
    """
    changed = rewrite(graph, RULES, ctx)
    for sub in (constant_fold, cse, dce):
        changed |= sub(graph, ctx)
    return changed
