"""What channel pruning did: parameters, MACs, flash and arena before and after, per group.

`measure(graph)` gives the four numbers (parameters and flash are the elements and bytes of the
constants, MACs as in `compiler.report`, arena the bytes of the smallest memory plan found by
`analysis.memory.plan_memory`). The `prune-channels` pass measures after each group it prunes,
so the per-group savings add up exactly to the total, and stores a `PruneReport` in
`ctx.pruning`; it renders as text, a rich table, or markdown.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..ir.cost import macs
from ..ir.graph import Graph
from .memory import plan_memory


@dataclass(frozen=True)
class Metrics:
    params: int
    macs: int
    flash: int
    arena: int

    def __sub__(self, other: "Metrics") -> "Metrics":
        return Metrics(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def measure(graph: Graph) -> Metrics:
    consts = graph.constants()
    return Metrics(sum(v.data.size for v in consts), sum(macs(n) for n in graph.nodes),
                   sum(v.data.nbytes for v in consts), plan_memory(graph).arena_bytes)


@dataclass
class GroupRecord:
    """One channel group: its channels before and after, which were removed, what that saved
    (`saved`, zero for a group left alone) or why it was left alone (`reason`)."""

    group: int
    layers: list[str]
    before: int
    after: int
    removed: list[int] = field(default_factory=list)
    importance: str = ""
    saved: Metrics = Metrics(0, 0, 0, 0)
    reason: str = ""


@dataclass
class PruneReport:
    model: str
    before: Metrics
    after: Metrics
    groups: list[GroupRecord]

    HEADER = ["group", "layers", "channels", "importance", "params", "MACs", "flash B", "arena B"]

    def rows(self) -> list[list[str]]:
        def layers(r):
            return ", ".join(r.layers[:2]) + (f" +{len(r.layers) - 2}" if len(r.layers) > 2 else "") or "-"
        return [[str(r.group), layers(r), f"{r.before} -> {r.after}", r.importance,
                 *(f"{-getattr(r.saved, f.name):,}" for f in fields(Metrics))]
                for r in self.groups if r.removed]

    def totals(self) -> list[list[str]]:
        return [[label, "", "", "", *(f"{getattr(m, f.name):,}" for f in fields(Metrics))]
                for label, m in (("before", self.before), ("after", self.after))]

    def skipped(self) -> list[GroupRecord]:
        return [r for r in self.groups if not r.removed]

    def to_rich(self):
        from rich.table import Table
        t = Table(title=f"{self.model}: channel pruning")
        for h in self.HEADER:
            t.add_column(h, justify="right" if h in ("params", "MACs", "flash B", "arena B") else "left")
        for r in [*self.rows(), *self.totals()]:
            t.add_row(*r)
        return t

    def to_markdown(self) -> str:
        lines = [f"# {self.model}: channel pruning", "", "| " + " | ".join(self.HEADER) + " |",
                 "|" + "---|" * len(self.HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in [*self.rows(), *self.totals()]]
        if self.skipped():
            lines += ["", "## Groups left alone", "", "| group | layers | channels | reason |", "|---|---|---|---|"]
            lines += [f"| {r.group} | {', '.join(r.layers) or '-'} | {r.before} | {r.reason} |" for r in self.skipped()]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        table = [self.HEADER, *self.rows(), *self.totals()]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.HEADER))]
        return "\n".join("  ".join(c.rjust(w) if i >= 4 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         for r in table)
