"""Named pipelines: ordered lists of (pass name, options), each ordering constraint commented.

`resolve("float")` returns a named pipeline; any other string is parsed as the textual pipeline
syntax (`"canonicalize,fold-bn,fuse"`), where a pipeline name stands for its passes
(`"float,my-pass"`), so the CLI's `--passes` takes either.
"""
from __future__ import annotations

from .pass_manager import parse_pipeline

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

PIPELINES: dict[str, list[tuple[str, dict]]] = {
    "float": FLOAT,
    "none": [],
}


def resolve(spec: str | list | None) -> list[tuple[str, dict]]:
    """A named pipeline, a textual spec, or an explicit list -> list of (name, options)."""
    if spec is None:
        return list(FLOAT)
    if isinstance(spec, str):
        return [step for name, opts in parse_pipeline(spec)
                for step in (PIPELINES[name] if name in PIPELINES and not opts else [(name, opts)])]
    return [(p, {}) if isinstance(p, str) else (p[0], dict(p[1])) for p in spec]
