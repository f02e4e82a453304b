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


def _is(v, value: float) -> bool:
    """`v` is a constant scalar equal to `value` (to float32 precision)."""
    return v.is_const and v.data.size == 1 and math.isclose(float(v.data.reshape(())), value, rel_tol=1e-6)


def _erf_gelu_arg(v):
    """x if `v` is 1 + erf(x / sqrt(2)) (the division possibly a product with 1/sqrt(2)), else None."""
    n = v.producer
    if n is None or n.op != "add" or n.attrs.get("act", "none") != "none":
        return None
    erf = next((a.producer for a, b in (n.inputs, n.inputs[::-1]) if _is(b, 1.0) and a.producer is not None
                and a.producer.op == "erf"), None)
    d = erf and erf.inputs[0].producer
    if d is None or d.attrs.get("act", "none") != "none":
        return None
    x, c = d.inputs
    return x if (d.op == "div" and _is(c, math.sqrt(2))) or (d.op == "mul" and _is(c, math.sqrt(0.5))) else None


def erf_gelu(g, m):
    """GELU written out with erf, as ONNX before opset 20 has it: x * (1 + erf(x / sqrt 2)) * 0.5 in
    either grouping and operand order -> one gelu (one kernel, a TFLite GELU, an int8 table)."""
    a, b = m.root.inputs
    for half, rest in ((a, b), (b, a)):
        inner = rest.producer
        if m.root.attrs["act"] != "none" or inner is None or inner.op != "mul" or inner.attrs["act"] != "none":
            continue
        for x, t in (inner.inputs, inner.inputs[::-1]):
            if (_is(half, 0.5) and _erf_gelu_arg(t) is x) or (_is(t, 0.5) and _erf_gelu_arg(half) is x):
                return m.replacement("gelu", [x], {"approximate": "none"})
    return None


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
    Rule(Pat("mul", [Pat.any("a"), Pat.any("b")]), erf_gelu),
]


def canonicalize(graph: Graph, ctx) -> bool:
    """Drops no-op ops, merges reshape/transpose chains, then folds constants, cse and dce.

    Rules: dropout and identity are removed; reshape(reshape(x)) becomes one reshape and a
    reshape to the input's shape is removed; a transpose with the identity permutation is
    removed and transpose(transpose(x)) becomes one; clamp(0, 6) becomes relu6 and
    clamp(0, inf) relu; GELU spelled with erf (ONNX before opset 20) becomes gelu. Then the `constant-fold`, `cse` and `dce` passes run once each.
    Preconditions: none (inference semantics: dropout is the identity). Preserves: graph outputs
    and the types of all surviving values. Limits: a rewrite that would make a graph output the
    same Value as a graph input or another output is skipped (see `ir.pattern`).
    """
    changed = rewrite(graph, RULES, ctx)
    for sub in (constant_fold, cse, dce):
        changed |= sub(graph, ctx)
    return changed
