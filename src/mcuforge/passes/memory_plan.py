"""Static arena plan: the byte offset of every activation."""
from __future__ import annotations

from ..analysis.memory import check_plan, plan_memory
from ..ir.graph import Graph


def memory_plan(graph: Graph, ctx, alignment: int = 16, inplace: bool = True) -> bool:
    """Plans every activation's offset in one arena (analysis.memory.plan_memory) and checks the plan.

    Uses the current node order (run `schedule` first). Scratch buffers are planned when a
    backend put its `scratch(node) -> bytes` function in `ctx.scratch`, and inputs overlap their
    node's output where its `overlap(node)` rule in `ctx.overlap` allows;
    `inplace=False` keeps every op from writing over its input. Stores the MemoryPlan in
    `ctx.plan` and its arena, lower bound and alias counts as stats.
    Preserves: the graph (it is only read).
    """
    plan = plan_memory(graph, alignment=alignment, scratch=ctx.scratch, inplace=inplace, overlap=ctx.overlap)
    check_plan(plan)
    ctx.plan = plan
    ctx.stat("arena_bytes", plan.arena_bytes)
    ctx.stat("lower_bound_bytes", plan.lower_bound_bytes)
    ctx.stat("aliases", len(plan.aliases))
    return False
