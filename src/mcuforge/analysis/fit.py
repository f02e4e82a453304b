"""Does a model fit its target? The memory plan's arena against the part's SRAM and the weights
against its flash, with the tensors live at the peak named when the SRAM is short. `compile` checks
every model with a target before it writes anything; the C backend checks again with its runtime
RAM and the code of the kernels it links.
"""
from __future__ import annotations

import numpy as np

from ..errors import DoesNotFitError
from .memory import Buffer, MemoryPlan, step_bytes


def peak_tensors(plan: MemoryPlan, top: int = 5) -> tuple[int, str, list[tuple[str, int]]]:
    """(step, node, [(buffer, bytes)]) of the step with the most live bytes: what makes the peak.
    A buffer is a value that owns its bytes, live from the first to the last step of the values
    aliased to it."""
    spans: dict[str, list[int]] = {}
    for name in plan.sizes:
        root = name
        while root in plan.aliases:
            root = plan.aliases[root]
        first, last = plan.lifetimes[name]
        s = spans.setdefault(root, [first, last])
        s[0], s[1] = min(s[0], first), max(s[1], last)
    live = step_bytes([Buffer(k, plan.sizes[k], first, last) for k, (first, last) in spans.items()])
    if not live:
        return 0, "", []
    step = int(np.argmax(live))
    at = sorted(((k, plan.sizes[k]) for k, (first, last) in spans.items() if first <= step <= last),
                key=lambda t: (-t[1], t[0]))
    return step, plan.schedule[step] if plan.schedule else "", at[:top]


def check_fit(target, plan: MemoryPlan | None, weight_bytes: int, *, code_bytes: int = 0, runtime_ram: int = 0,
              is_float: bool = False):
    """Raise DoesNotFitError, naming the overflow and the tensors live at the peak, when the arena
    (plus the state buffer and `runtime_ram`) exceeds the target's SRAM or the weights (plus
    `code_bytes`) its flash. Without a plan only the flash is checked."""
    problems = []
    if plan is not None and plan.arena_bytes + plan.state_bytes + runtime_ram > target.sram:
        ram = plan.arena_bytes + plan.state_bytes + runtime_ram
        step, node, tensors = peak_tensors(plan)
        listed = ", ".join(f"{k} ({s:,} B)" for k, s in tensors)
        parts = "".join(f" + {what} {n:,}" for what, n in (("state", plan.state_bytes), ("runtime", runtime_ram)) if n)
        parts = f" (arena {plan.arena_bytes:,}{parts})" if parts else ""
        problems.append(f"SRAM: needs {ram:,} B{parts}, {target.name} has {target.sram:,} B: "
                        f"{ram - target.sram:,} B too many; the peak is at step {step} ({node}), where {listed} are live")
    if weight_bytes + code_bytes > target.flash:
        flash = weight_bytes + code_bytes
        parts = f"weights {weight_bytes:,} + code ~{code_bytes:,}" if code_bytes else f"weights {weight_bytes:,}"
        problems.append(f"flash: needs {flash:,} B ({parts}), {target.name} has {target.flash:,} B: "
                        f"{flash - target.flash:,} B too many")
    if problems:
        tips = ["quantize to int8 (quantize='int8', CLI --quantize int8: 4x smaller weights and activations)"] \
            if is_float else []
        tips += ["prune channels", "reorder the layers for a smaller peak (the schedule pass)",
                 "or choose a part with more SRAM/flash (--target, --sram, --flash)"]
        raise DoesNotFitError("the model does not fit " + target.name + ":\n  " + "\n  ".join(problems),
                              "; ".join(tips))
