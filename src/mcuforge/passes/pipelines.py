"""Named pipelines: ordered lists of (pass name, options), each ordering constraint commented.

`resolve("float")` returns a named pipeline; any other string is parsed as the textual pipeline
syntax (`"canonicalize,fold-bn,fuse"`), where a pipeline name stands for its passes
(`"float,my-pass"`), so the CLI's `--passes` takes either.
"""
from __future__ import annotations

from .manager import parse_pipeline

FLOAT = [
    # Dropout/identity removal and constant folding first, so fold-bn sees conv -> batch_norm
    # directly and its weights as constants.
    ("canonicalize", {}),
    # BN folding before fusion: a conv whose activation was fused can no longer absorb a BN
    # that sits between it and the activation.
    ("fold-bn", {}),
    # Fusion after folding, so conv -> bn -> relu becomes one conv with act="relu".
    ("fuse", {}),
    # Folding leaves dead BN parameters and fusion may expose new common subexpressions.
    ("canonicalize", {}),
]

PLAN = [
    # The schedule fixes the lifetimes the planner packs, so it comes first.
    ("schedule", {}),
    ("memory-plan", {}),
]

DEPLOY = [
    # TFLite and the fastest C kernels are channel-last; the layout change adds and removes
    # transposes, so it runs before the schedule and the plan, which must see the final graph.
    ("to-nhwc", {}),
    *PLAN,
]

PIPELINES: dict[str, list[tuple[str, dict]]] = {
    "float": FLOAT,
    "planned": FLOAT + PLAN,
    "deploy": FLOAT + DEPLOY,
    "none": [],
}


def with_quantization(pipeline: list, scheme: str, io: str = "int8", weights: str | None = None,
                      **options) -> list[tuple[str, dict]]:
    """`pipeline` with `quantize{scheme, **options}` and `lower-quantized{io}` added: after the
    float passes (calibration sees the folded, fused graph, whose ranges are the ones the integer
    kernels produce) and before layout, scheduling and planning, which work on the integer graph.
    `weights` (a compressed format, e.g. "kmeans4") adds `compress-weights`, which re-quantizes
    the integer layers' weights, so it comes right after the lowering."""
    late = [i for i, (name, _) in enumerate(pipeline) if name in ("to-nhwc", "schedule", "memory-plan")]
    at = late[0] if late else len(pipeline)
    steps = [("quantize", {"scheme": scheme, **options}), ("lower-quantized", {"io": io})]
    steps += [("compress-weights", {"format": weights})] if weights else []
    return [*pipeline[:at], *steps, *pipeline[at:]]


def resolve(spec: str | list | None, emit=()) -> list[tuple[str, dict]]:
    """A named pipeline, a textual spec, or an explicit list -> list of (name, options).

    The default (None) is "deploy" when a channel-last backend (tflite, c) is emitted, else
    "planned": the float passes, then a schedule and a memory plan for the report."""
    if spec is None:
        return list(PIPELINES["deploy" if {"tflite", "c"} & set(emit) else "planned"])
    if isinstance(spec, str):
        return [step for name, opts in parse_pipeline(spec)
                for step in (PIPELINES[name] if name in PIPELINES and not opts else [(name, opts)])]
    return [(p, {}) if isinstance(p, str) else (p[0], dict(p[1])) for p in spec]


def with_exit_order(pipeline: list) -> list:
    """`pipeline` with `exit-order` right before its memory plan (or at its end)."""
    names = [name for name, _ in pipeline]
    at = names.index("memory-plan") if "memory-plan" in names else len(pipeline)
    return [*pipeline[:at], ("exit-order", {}), *pipeline[at:]]


def with_legalization(pipeline: list, steps) -> list:
    """`pipeline` with each of a backend's legalization `steps` it lacks, before the schedule and
    the memory plan (or at its end), so the plan is made for the graph the backend emits."""
    missing = [s for s in steps if s[0] not in [name for name, _ in pipeline]]
    names = [name for name, _ in pipeline]
    at = min([names.index(n) for n in ("schedule", "memory-plan") if n in names], default=len(pipeline))
    return [*pipeline[:at], *missing, *pipeline[at:]]


def with_pruning(pipeline: list, ratio) -> list:
    """`pipeline` with `prune-channels{ratio}` after its float passes (so it prunes the folded,
    fused graph) and before quantization, layout, scheduling and planning, which must see the
    pruned channels."""
    names = [name for name, _ in pipeline]
    late = [names.index(n) for n in ("quantize", "to-nhwc", "schedule", "memory-plan") if n in names]
    at = min(late, default=len(pipeline))
    return [*pipeline[:at], ("prune-channels", {"ratio": ratio}), *pipeline[at:]]
