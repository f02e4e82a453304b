"""Structural and per-op checks of a graph; the first broken rule raises `VerifyError(node, reason)`.

Structure: every operand is a graph input, a constant, or the result of an earlier node (so the
node list is a topological order); use lists agree with operands; value names are unique; graph
outputs are defined. Per op: the op exists, its arity and attributes fit the op table, fused
activations and enumerated attributes are known, and the result shapes and dtypes are what the
op table gives; an integer op's zero-point attributes match its quantized operand and result
types, and its multipliers and shifts are the ones `ir.quant` derives from their scales (so a pass
that changes a scale and forgets the kernel parameters is caught); compressed int8 weights hold
only values their `wfmt` can store. Constants hold data of
their declared type. States: each read is a plain value, each has exactly one write, defined in
the graph, and the write and the initial value have the read's shape, dtype and quantization
(the bytes are carried over as they are).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, VerifyError
from . import ops, quant, wformat
from .graph import Graph
from .printer import format_type


def verify(graph: Graph) -> None:
    defined: set[int] = set()
    names: set[str] = set()

    def define(v, where):
        if v.name in names:
            raise VerifyError(where, f"value name %{v.name} is defined twice")
        names.add(v.name)
        defined.add(id(v))

    for v in graph.inputs:
        if v.is_const or v.producer is not None:
            raise VerifyError(None, f"graph input %{v.name} must be a plain value")
        define(v, None)
    for s in graph.states:
        if s.read.is_const or s.read.producer is not None:
            raise VerifyError(None, f"state %{s.read.name} must be a plain value")
        define(s.read, None)
    for c in graph.constants():
        if tuple(c.data.shape) != c.shape or c.data.dtype != c.dtype.np:
            raise VerifyError(None, f"constant %{c.name} holds {c.data.dtype}{list(c.data.shape)}, "
                                    f"declared {c.dtype.value}{list(c.shape)}")
        define(c, None)

    for n in graph.nodes:
        where = n.name
        if n.op not in ops.OPS:
            raise VerifyError(where, f"unknown op '{n.op}'")
        d = ops.OPS[n.op]
        for i, v in enumerate(n.inputs):
            if id(v) not in defined:
                raise VerifyError(where, f"operand {i} (%{v.name}) is not defined before its use")
            if sum(u is n for u in v.users) != sum(x is v for x in n.inputs):
                raise VerifyError(where, f"use list of %{v.name} is out of date")
        lo, hi = d.arity()
        if not lo <= len(n.inputs) <= hi:
            raise VerifyError(where, f"{n.op} takes {lo}..{hi} operands, has {len(n.inputs)}")
        try:
            full = d.full_attrs(n.attrs)
        except KeyError as e:
            raise VerifyError(where, str(e.args[0])) from None
        if full != n.attrs:
            raise VerifyError(where, f"attributes not completed with defaults: {sorted(set(full) - set(n.attrs))}")
        if "act" in n.attrs and n.attrs["act"] not in ops.FUSED_ACTS:
            raise VerifyError(where, f"unknown fused activation '{n.attrs['act']}'")
        for k, allowed in d.choices.items():
            if n.attrs[k] not in allowed:
                raise VerifyError(where, f"{k}={n.attrs[k]!r} is not one of {allowed}")
        if len(n.outputs) != d.n_outputs(n.attrs):
            raise VerifyError(where, f"{n.op} has {d.n_outputs(n.attrs)} results, node has {len(n.outputs)}")
        try:
            types = d.result_types([v.type for v in n.inputs], n.attrs)
        except ShapeError as e:
            raise ShapeError(where, e.reason) from None
        for v, t in zip(n.outputs, types):
            if v.producer is not n:
                raise VerifyError(where, f"result %{v.name} does not point back to its node")
            if t.shape != v.shape:
                raise ShapeError(where, f"result %{v.name} has shape {list(v.shape)}, "
                                        f"the {n.op} shape rule gives {list(t.shape)}")
            if t.dtype != v.dtype:
                raise VerifyError(where, f"result %{v.name} has dtype {v.dtype.value}, {n.op} gives {t.dtype.value}")
            if "quant" in d.tags and t.quant != v.type.quant:  # quantize/dequantize set it; others keep it
                raise VerifyError(where, f"result %{v.name} has quantization {v.type.quant}, {n.op} gives {t.quant}")
            define(v, where)
        if "integer" in d.tags:
            _check_zero_points(n)
            _check_multipliers(n)
        if n.attrs.get("wfmt", "int8") != "int8":  # the int8 weights must be storable as the format says
            w = n.inputs[1]
            try:
                if not w.is_const or w.data.dtype != np.int8:
                    raise ValueError(f"compressed weight %{w.name} must be an int8 constant")
                wformat.codes(n.attrs["wfmt"], wformat.rows(w.data, n.op, n.attrs.get("layout", "")))
            except ValueError as e:
                raise VerifyError(where, str(e), "recompress the layer with the compress-weights pass") from None

    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(None, f"graph output %{v.name} is not defined")
    for s in graph.states:
        _check_state(s, defined)


def _check_state(s, defined: set[int]) -> None:
    r, w = s.read, s.write
    if w is None or id(w) not in defined:
        raise VerifyError(None, f"state %{r.name} has no write" if w is None else
                          f"state %{r.name} is written from %{w.name}, which is not defined")
    if (w.shape, w.dtype, w.type.quant) != (r.shape, r.dtype, r.type.quant):
        raise VerifyError(None, f"state %{r.name} is {format_type(r.type)} but is written from %{w.name}: "
                                f"{format_type(w.type)}",
                          "a state is carried over as bytes: write it with its own type")
    if (tuple(s.init.shape), s.init.dtype) != (r.shape, r.dtype.np):
        raise VerifyError(None, f"state %{r.name} starts at {s.init.dtype}{list(s.init.shape)}, "
                                f"declared {r.dtype.value}{list(r.shape)}")


_ZERO_POINT_OF = {"in_zp": lambda n: n.inputs[0], "a_zp": lambda n: n.inputs[0], "b_zp": lambda n: n.inputs[1],
                  "alpha_zp": lambda n: n.inputs[1], "out_zp": lambda n: n.outputs[0]}


def _check_zero_points(n) -> None:
    """An integer op's zero-point attributes agree with the quantized types of the values they describe."""
    for attr, value_of in _ZERO_POINT_OF.items():
        q = value_of(n).type.quant if attr in n.attrs else None
        if q is not None and set(q.zero_point) != {n.attrs[attr]}:
            raise VerifyError(n.name, f"{attr}={n.attrs[attr]} but %{value_of(n).name} has zero point "
                                      f"{list(q.zero_point)}", "recompute the attributes with mcuforge.ir.quant")


_FREE = ("act_min", "act_max", "in_zp", "out_zp", "a_zp", "b_zp", "alpha_zp", "dtype")  # clamps may be tightened; zps above


def _check_multipliers(n) -> None:
    y = n.outputs[0]
    if n.op not in quant.PARAMS or n.op in quant.FOLDED or any(v.type.quant is None for v in (*n.inputs[:2], y)):
        return  # (a weight without scales, or a float attribute not kept: nothing to derive from)
    for attr, want in quant.params(n.op, [v.type for v in n.inputs], y.type, n.attrs).items():
        if attr not in _FREE and attr in n.attrs and list(np.ravel(n.attrs[attr])) != list(np.ravel(want)):
            raise VerifyError(n.name, f"{attr}={n.attrs[attr]} but the scales of its operands and result give "
                                      f"{want}", "recompute the attributes with mcuforge.ir.quant")
