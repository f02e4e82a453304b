"""Every pass, listed once. A pass is `fn(graph, ctx, **options) -> changed`; see `passes.manager`.

File stem == pass name with '-' replaced by '_'. Users add their own passes with `register`
(see docs/writing-passes.md and examples/custom_pass.py).
"""
from .base import Pass
from .canonicalize import canonicalize
from .compress_weights import compress_weights
from .constant_fold import constant_fold
from .cse import cse
from .dce import dce
from .exit_order import exit_order
from .fold_bn import fold_bn
from .fuse import fuse
from .low_rank import low_rank
from .lower_quantized import lower_quantized
from .memory_plan import memory_plan
from .prune_channels import prune_channels
from .quantize import quantize
from .schedule import schedule
from .to_nhwc import to_nhwc

REGISTRY: dict[str, Pass] = {p.name: p for p in [
    Pass("canonicalize", canonicalize),
    Pass("compress-weights", compress_weights),
    Pass("constant-fold", constant_fold),
    Pass("cse", cse),
    Pass("dce", dce),
    Pass("exit-order", exit_order),
    Pass("fold-bn", fold_bn),
    Pass("fuse", fuse),
    Pass("low-rank", low_rank),
    Pass("lower-quantized", lower_quantized),
    Pass("memory-plan", memory_plan),
    Pass("prune-channels", prune_channels),
    Pass("quantize", quantize),
    Pass("schedule", schedule),
    Pass("to-nhwc", to_nhwc),
]}


def register(name: str):
    """Decorator adding a user-defined pass to `REGISTRY` under `name` (kebab-case)."""
    from ..errors import UsageError

    def add(fn):
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise UsageError(f"a pass named '{name}' is already registered", "choose another name")
        REGISTRY[name] = Pass(name, fn)
        return fn
    return add
