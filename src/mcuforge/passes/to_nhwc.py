"""Channel-last layout: convolutions, pools and the ops between them in NHWC (NWC for 1-D)."""
from __future__ import annotations

from ..errors import UsageError
from ..ir import ops
from ..ir.graph import Graph, Node, Value
from ..ir.types import QuantParams, TensorType

LAYOUT = ops.with_tag("layout")
AXIS = {"softmax", "log_softmax", "qsoftmax", "batch_norm", "concat", "split", "quantize", "dequantize"}  # `axis`
MEANS = {"mean", "qmean", "reduce"}  # `axes` and `keepdims`


def _ident(rank: int) -> tuple:
    return tuple(range(rank))


def _cl(rank: int) -> tuple:
    """Channel-first axes in channel-last order: (0, 2, ..., rank - 1, 1)."""
    return (0, *range(2, rank), 1)


def _non1(shape, perm) -> list:
    """The axes of `perm` whose size is not 1: orders with the same ones store the same bytes."""
    return [a for a in perm if shape[a] != 1]


def _permuted(t: TensorType, perm) -> TensorType:
    q = t.quant
    if q is not None and q.axis is not None:
        q = QuantParams(q.scale, q.zero_point, list(perm).index(q.axis))
    return TensorType(tuple(t.shape[p] for p in perm), t.dtype, q)


def _follow(a, q, b) -> tuple | None:
    """The axis order `r` such that a tensor of shape `a` stored in axis order `q`, reshaped as
    stored, is the reshape to shape `b` stored in order `r`; None when the reshape merges or
    splits axes that `q` does not keep together and in order."""
    ia, ib = [i for i, d in enumerate(a) if d != 1], [i for i, d in enumerate(b) if d != 1]
    group, i, j = {}, 0, 0
    while i < len(ia):  # the smallest runs of axes of `a` and `b` with equal products
        ga, gb, pa, pb = [ia[i]], [ib[j]], a[ia[i]], b[ib[j]]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb:
                ga.append(ia[i])
                pa, i = pa * a[ia[i]], i + 1
            else:
                gb.append(ib[j])
                pb, j = pb * b[ib[j]], j + 1
        group.update({ax: (ga, gb) for ax in ga})
    stored, r, k = _non1(a, q), [], 0
    while k < len(stored):
        ga, gb = group[stored[k]]
        if stored[k:k + len(ga)] != ga:
            return None
        r, k = r + gb, k + len(ga)
    for known in (_ident(len(b)), _cl(len(b))) if len(b) >= 3 else (_ident(len(b)),):
        if _non1(b, known) == r:
            return known
    return tuple([ax for ax in range(len(b)) if b[ax] == 1] + r)


def _rule(n: Node, perms: list[tuple]):
    """How `n` runs when its operands are stored in axis orders `perms`: (the orders it needs
    its operands in, its attributes, its results' orders), or None: unchanged, on operands in
    their own order."""
    a, x = n.attrs, n.inputs[0]
    rank = x.type.rank
    if n.op in LAYOUT:
        if a["layout"][1] != "C":
            return None
        w = (*range(1, rank), 0) if "transpose" in n.op else _cl(rank)  # see the weight layouts in ops.py
        need = [_cl(rank) if i == 0 else w if n.opdef.inputs[i].rstrip("?") == "w" else _ident(v.type.rank)
                for i, v in enumerate(n.inputs)]
        return need, {**a, "layout": a["layout"][0] + a["layout"][2:] + a["layout"][1]}, [_cl(rank)]
    moved = [p for v, p in zip(n.inputs, perms) if not v.is_const and p != _ident(len(p))]
    if not moved:
        return None
    p, out = moved[0], [moved[0]] * len(n.outputs)
    rank = len(p)
    if "elementwise" in n.opdef.tags or n.op in AXIS:
        if n.outputs[0].type.rank != rank or any(not v.is_const and v.type.rank != rank for v in n.inputs):
            return None  # broadcasts a non-constant of another rank
        need = [p if v is x or v.type.rank and n.op != "batch_norm" else _ident(v.type.rank) for v in n.inputs]
        return need, {**a, "axis": p.index(ops.norm_axis(a["axis"], rank))} if n.op in AXIS else a, out
    if n.op == "slice":
        return [p], {**a, "axes": [p.index(ops.norm_axis(ax, rank)) for ax in a["axes"]]}, out
    if n.op == "pad":
        return [p], {**a, "pads": [a["pads"][ax] for ax in p] + [a["pads"][rank + ax] for ax in p]}, out
    if n.op == "tile":
        return [p], {**a, "repeats": [a["repeats"][ax] for ax in p]}, out
    if n.op in MEANS:
        axes = {ops.norm_axis(ax, rank) for ax in a["axes"]}
        kept = [ax for ax in p if ax not in axes]
        return [p], {**a, "axes": sorted(p.index(ax) for ax in axes)}, \
            [p if a["keepdims"] else tuple(sorted(kept).index(ax) for ax in kept)]
    if n.op == "reshape":
        b = n.output.shape
        r = _follow(x.shape, p, b)
        if r is not None:
            return [p], {**a, "shape": [b[i] for i in r]}, [r]
        r = _cl(len(b)) if len(b) >= 3 else _ident(len(b))  # a transpose first; channel-last after if it can
        need = _follow(b, r, x.shape)
        if need is None:
            r, need = _ident(len(b)), _follow(b, _ident(len(b)), x.shape)
        return [need], {**a, "shape": [b[i] for i in r]}, [r]
    return None


def to_nhwc(graph: Graph, ctx, io: str = "nchw") -> bool:
    """Rewrites layout-sensitive ops (tag "layout") to channel-last, and the ops between them to follow.

    Every op tagged "layout" in ops.py with a channel-first `layout` gets the channel-last one
    (NCHW -> NHWC, NCW -> NWC) and its constant weight the channel-last weight layout. The
    values between them keep a channel-last order through elementwise ops (constants that
    broadcast are permuted), batch_norm, softmax, concat, split, slice, pad, mean and
    (de)quantize (their axes remapped), through reshapes that keep the channel axis apart (a
    flatten after a global pool included), and through transposes, which are absorbed (so pairs
    that cancel disappear). An op that cannot follow gets its operand back in its own order: a
    transpose, or a free reshape when only size-1 axes move; each one is reported as missed.
    Graph inputs and outputs keep their layout unless `io="nhwc"`, which makes every graph input
    and output of rank >= 3 channel-last. Preserves: the graph's results and names.
    """
    if io not in ("nchw", "nhwc"):
        raise UsageError(f"to-nhwc: io='{io}' is not one of 'nchw', 'nhwc'")
    if not any(n.op in LAYOUT and n.attrs["layout"][1] == "C" for n in graph.nodes):
        return False
    env: dict[Value, tuple[Value, tuple]] = {}  # value -> (the value storing it, its axis order)
    made: dict[tuple, Value] = {}
    fresh: list[Node] = []

    def get(v: Value, perm: tuple, user: Node | None = None) -> Value:
        """`v` stored in axis order `perm`: as it is, a permuted constant, a free reshape or a transpose."""
        stored, q = env.get(v, (v, _ident(v.type.rank)))
        if q == perm:
            return stored
        if (id(v), perm) not in made:
            tag = "nhwc" if perm == _cl(len(perm)) else "nchw" if perm == _ident(len(perm)) else "perm"
            if v.is_const:
                pad = len(perm) - v.type.rank  # a constant that broadcasts gets leading 1s first
                qp = v.type.quant
                if qp is not None and qp.axis is not None:
                    qp = QuantParams(qp.scale, qp.zero_point, perm.index(qp.axis + pad))
                w = graph.const(v.data.reshape((1,) * pad + v.shape).transpose(perm), v.name, quant=qp)
            elif _non1(v.shape, q) == _non1(v.shape, perm):
                w = graph.op("reshape", [stored], {"shape": [v.shape[a] for a in perm]}, name=f"{v.name}.{tag}",
                             before=user)
            else:
                w = graph.op("transpose", [stored], {"perm": [q.index(a) for a in perm]}, name=f"{v.name}.{tag}",
                             before=user)
                ctx.stat("transposes")
                if user is not None:
                    edge = " (io='nhwc' would take channel-last input)" if v in graph.inputs else ""
                    ctx.miss(user, f"{user.op} needs %{v.name} in another axis order: a transpose goes before it{edge}")
            made[id(v), perm] = w
        return made[id(v), perm]

    if io == "nhwc":
        for i, v in enumerate(graph.inputs):
            if v.type.rank >= 3:
                graph.inputs[i] = Value(v.name, _permuted(v.type, _cl(v.type.rank)))
                env[v] = (graph.inputs[i], _cl(v.type.rank))
    for n in graph.nodes:
        perms = [env[v][1] if v in env else _ident(v.type.rank) for v in n.inputs]
        if n.op == "transpose":  # absorbed: no bytes move here; where they must, `get` transposes
            x = n.inputs[0]
            env[n.output] = (env[x][0] if x in env else x, tuple(n.attrs["perm"].index(a) for a in perms[0]))
            ctx.stat("transposes_absorbed")
            continue
        rule = _rule(n, perms)
        if rule is None:
            new = [get(v, _ident(v.type.rank), n) for v in n.inputs]
            if any(a is not b for a, b in zip(new, n.inputs)):
                graph.set_inputs(n, new)
            continue
        need, attrs, orders = rule
        m = graph.add_node(n.op, [get(v, p, n) for v, p in zip(n.inputs, need)], attrs, name=n.name, before=n,
                           out_types=[_permuted(v.type, p) for v, p in zip(n.outputs, orders)], meta=dict(n.meta))
        env.update({v: (w, p) for v, w, p in zip(n.outputs, m.outputs, orders)})
        fresh.append(m)
        ctx.stat("channel_last_layout_ops" if n.op in LAYOUT else "followers")
    outputs = [get(v, _cl(v.type.rank) if io == "nhwc" and v.type.rank >= 3 else _ident(v.type.rank))
               for v in graph.outputs]
    old_names = [v.name for v in graph.outputs]
    graph.outputs = outputs
    graph.dce()
    for m in fresh:
        for v in m.outputs:
            graph.reclaim_name(v)
    for w, name in zip(outputs, old_names):  # a transposed result keeps the name of the graph's output
        if w.name != name and w.producer is not None:
            src = w.producer.inputs[0]
            if src.name == name:
                graph.rename(src, f"{name}.{'nhwc' if w.producer.op == 'transpose' else 'view'}")
            graph.rename(w, name)
    return True
