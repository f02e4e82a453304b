"""Early exits in the generated C: after each exit head but the last, the confidence test of
`mcuforge.ir.early_exit.confidence_test` and, when it passes, a copy of the outputs computed so far
and `return <exit index>`. The test helpers are in templates/early_exit.c.j2."""
from __future__ import annotations

from ...ir.early_exit import Exit, confidence_test
from ...ir.graph import Graph
from . import ops


def add_exit_checks(e, graph: Graph, exits: list[Exit]) -> tuple[list[dict], set[str]]:
    """Sets `exit` on the NodeCode of each exit head of emitter `e`; returns (a record per exit
    for the header, the names of the C helpers used)."""
    step = {name: i for i, name in enumerate(e.plan.schedule)}
    records, helpers = [], set()
    for k, x in enumerate(exits):
        v = graph.outputs[x.output]
        records.append({"index": k, "output": x.output, "name": ops.c_text(v.name), "threshold": x.threshold})
        if x.threshold is None:
            continue
        t = confidence_test(v, x.threshold)
        helper = f"exit_{'max' if t.kind == 'probs' else 'logits'}_{'s8' if t.dtype == 'i8' else 'f32'}"
        args = [e.ptr(v), v.type.numel]
        if helper == "exit_logits_s8":
            args += [e.const(t.table, f"exit {k} exp table"), len(t.table)]
        args.append(int(t.bound) if t.dtype == "i8" else ops.flt(t.bound))
        at = step[v.producer.name]
        done = [(i, o) for i, o in enumerate(graph.outputs) if step[o.producer.name] <= at]
        e.nodes[at].exit = {"index": k, "name": ops.c_text(v.name), "threshold": x.threshold,
                            "test": f"{helper}({', '.join(map(str, args))})",
                            "copies": [(i, e.offset(o), o.type.nbytes, ops.c_text(o.name)) for i, o in done]}
        helpers.add(helper)
    return records, helpers
