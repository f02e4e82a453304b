"""The compile report: a per-layer table (op, output shape, MACs, parameters, activation bytes),
totals, the passes that ran, and the optimizations that did not happen with their reasons.

MACs count multiply-accumulates of the ops that have them (convolutions, linear, matmul);
elementwise work is not counted. Parameters are the elements of constant operands; flash bytes
are their bytes. Activation bytes are the bytes of a layer's results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir.graph import Graph, Node
from .pass_manager import Missed, PassRecord


def macs(node: Node) -> int:
    x, out = node.inputs[0], node.outputs[0]
    if node.op in ("conv1d", "conv2d"):
        w = node.inputs[1]
        return out.type.numel * (w.type.numel // w.shape[0])
    if node.op == "conv_transpose2d":
        w = node.inputs[1]
        c_in = x.shape[1] if node.attrs["layout"] == "NCHW" else x.shape[-1]
        return x.type.numel * (w.type.numel // c_in)
    if node.op == "linear":
        return out.type.numel * node.inputs[1].shape[1]
    if node.op == "matmul":
        return out.type.numel * x.shape[-1]
    return 0


@dataclass
class Layer:
    name: str
    op: str
    shape: tuple
    macs: int
    params: int
    param_bytes: int
    act_bytes: int
    source: str | None = None


@dataclass
class Report:
    model: str
    layers: list[Layer]
    passes: list[PassRecord] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @classmethod
    def build(cls, graph: Graph, passes=(), missed=(), stats=None) -> "Report":
        layers = []
        for n in graph.nodes:
            consts = [v for v in n.inputs if v.is_const]
            layers.append(Layer(n.name, n.op, n.outputs[0].shape, macs(n),
                                sum(v.type.numel for v in consts), sum(v.type.nbytes for v in consts),
                                sum(v.type.nbytes for v in n.outputs), n.meta.get("source")))
        return cls(graph.name, layers, list(passes), list(missed), dict(stats or {}))

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def flash_bytes(self) -> int:
        return sum(layer.param_bytes for layer in self.layers)

    def rows(self) -> list[list[str]]:
        return [[layer.name, layer.op, "x".join(map(str, layer.shape)) or "scalar", f"{layer.macs:,}",
                 f"{layer.params:,}", f"{layer.act_bytes:,}"] for layer in self.layers]

    HEADER = ["layer", "op", "output", "MACs", "params", "act bytes"]

    def totals(self) -> list[str]:
        return ["total", f"{len(self.layers)} layers", "", f"{self.total_macs:,}", f"{self.total_params:,}",
                f"{max((layer.act_bytes for layer in self.layers), default=0):,} max"]

    def to_rich(self):
        from rich.table import Table
        t = Table(title=f"{self.model}: per-layer report", show_footer=True)
        for h, f in zip(self.HEADER, self.totals()):
            t.add_column(h, footer=f, justify="right" if h in ("MACs", "params", "act bytes") else "left")
        for r in self.rows():
            t.add_row(*r)
        return t

    def to_markdown(self) -> str:
        lines = [f"# {self.model}", "", "| " + " | ".join(self.HEADER) + " |",
                 "|" + "---|" * len(self.HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in [*self.rows(), self.totals()]]
        if self.passes:
            lines += ["", "## Passes", "", "| pass | changed | ms | nodes before -> after |", "|---|---|---|---|"]
            lines += [f"| {p.name} | {'yes' if p.changed else 'no'} | {p.seconds * 1e3:.1f} | "
                      f"{p.nodes_before} -> {p.nodes_after} |" for p in self.passes]
        if self.missed:
            lines += ["", "## Not done, and why", "", "| pass | node | op | reason |", "|---|---|---|---|"]
            lines += [f"| {m.pass_name} | {m.node} | {m.op} | {m.reason} |" for m in self.missed]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in [*self.rows(), self.totals()])) for i, h in enumerate(self.HEADER)]
        fmt = lambda r: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        return "\n".join([fmt(self.HEADER), rule, *map(fmt, self.rows()), rule, fmt(self.totals())])


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024 ** exp:.1f} {'BKMG'[exp]}{'iB' if exp else ''}"
